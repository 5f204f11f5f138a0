"""Billing commands: quote, balance, topup, refund, adjust, pricebook, quota, statement,
invoice, reviews, usage."""

from __future__ import annotations

import json
import sys
import tomllib
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lightgrid.cli.client import Client, JsonOpt, TokenOpt, UrlOpt, console, fail, print_json

pricebook_app = typer.Typer(help="Price books (finance manages them).", no_args_is_help=True)
quota_app = typer.Typer(help="Core-hour and GPU-hour quotas.", no_args_is_help=True)
invoice_app = typer.Typer(help="Invoice requests.", no_args_is_help=True)


def _table(rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in columns:
        table.add_column(col.upper(), justify="right" if col in (
            "amount", "balance", "held", "available", "spendable", "granted", "used",
            "remaining", "total") else "left")
    for row in rows:
        table.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    return table


def _show(data: Any, columns: list[str], json_out: bool) -> None:
    if json_out:
        print_json(data)
    else:
        console.print(_table(data if isinstance(data, list) else [data], columns))


def _read(path: Path) -> str:
    if not path.is_file():
        fail(f"{path}: no such file")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{path}: cannot read: {exc}")


def quote(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="Batch script; extra sbatch options may "
                                           "follow")],
    url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False,
) -> None:
    """The maximum cost of a job before submitting it, with the breakdown."""
    data = Client(url, token).post("/quotes", json={"script": _read(script),
                                                    "args": list(ctx.args),
                                                    "name": script.name})
    if json_out:
        print_json(data)
        return
    if not data["priced"]:
        fail(f"cannot be priced: {data['reason']}")
    q = data["per_task"]
    rows = [{"resource": li["resource"], "quantity": li["quantity"], "unit": li["unit"],
             "rate": li["unit_rate"], "hours": f"{Decimal(li['hours']):.4f}",
             "amount": f"{Decimal(li['amount']):.4f}" + ("" if li["billed"] else " (not billed)")}
            for li in q["lines"]]
    console.print(_table(rows, ["resource", "quantity", "unit", "rate", "hours", "amount"]))
    if q["discount_source"]:
        console.print(f"discount {q['discount_rate']} ({q['discount_source']})")
    tasks = f" x {data['tasks']} tasks" if data["tasks"] > 1 else ""
    console.print(f"maximum cost: {q['amount']}{tasks} = {data['total']} {data['currency']} "
                  f"(price version {q['price_version']}); project {data['project']} has "
                  f"{data['available']} available", highlight=False)
    if not data["sufficient"]:
        console.print("[red]not enough funds: this job would be refused[/red]")


def balance(project: Annotated[str | None, typer.Argument()] = None,
            url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Balance, holds and available funds of PROJECT (or every project you see)."""
    client = Client(url, token)
    data = client.get(f"/balances/{project}") if project else client.get("/balances")
    _show(data, ["project", "balance", "held", "available", "spendable", "currency",
                 "blocked"], json_out)


def _money(path: str, owner: str, amount: str, url: str | None, token: str | None,
           json_out: bool, **extra: str) -> None:
    data = Client(url, token).post(path, json={"owner": owner, "amount": amount, **extra})
    if json_out:
        print_json(data)
    else:
        console.print(f"{data['kind']} {data['transaction_id']}: " + ", ".join(
            f"{p['account']} {p['amount']}" for p in data["postings"]), highlight=False)


OwnerArg = Annotated[str, typer.Argument(help="project name, project:NAME or org:NAME")]


def topup(owner: OwnerArg, amount: str,
          method: Annotated[str, typer.Option(help="e.g. bank_transfer")] = "bank_transfer",
          reference: Annotated[str, typer.Option(help="payment reference")] = "",
          memo: str = "", url: UrlOpt = None, token: TokenOpt = None,
          json_out: JsonOpt = False) -> None:
    """Credit a wallet from a payment (finance)."""
    if not reference:
        fail("--reference is required (the payment's reference)")
    _money("/topups", owner, amount, url, token, json_out, method=method,
           reference=reference, memo=memo)


def refund(owner: OwnerArg, amount: str,
           reason: Annotated[str, typer.Option()],
           method: str = "bank_transfer", reference: str = "",
           url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Pay funds back to the customer (finance)."""
    _money("/refunds", owner, amount, url, token, json_out, method=method,
           reference=reference or "refund", reason=reason)


def adjust(owner: OwnerArg, amount: Annotated[str, typer.Argument(help="signed amount")],
           reason: Annotated[str, typer.Option()],
           url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """A manual correction with a reason (finance)."""
    _money("/adjustments", owner, amount, url, token, json_out, reason=reason)


@pricebook_app.command("show")
def pricebook_show(url: UrlOpt = None, token: TokenOpt = None,
                   json_out: JsonOpt = False) -> None:
    """Every price book version; the current one is marked."""
    data = Client(url, token).get("/pricebook")
    if json_out:
        print_json(data)
        return
    for v in data["versions"]:
        mark = " (current)" if v["version"] == data["current"] else ""
        console.print(f"[bold]version {v['version']}[/bold]{mark} from "
                      f"{v['effective_from']}, minimum {v['minimum_charge']}, tiers "
                      f"{v['tiers']}, fallback {v['fallback']['mode']}", highlight=False)
        rows = [{"partition": c["partition"], "qos": c["qos"], "cpu": c["cpu"],
                 "mem": c["mem"], "node": c["node"],
                 "gpu": ", ".join(f"{m}={r}" for m, r in c["gpu"].items()),
                 "strategy": c["strategy"]} for c in v["cards"]]
        console.print(_table(rows, ["partition", "qos", "cpu", "mem", "gpu", "node",
                                    "strategy"]))


@pricebook_app.command("add-version")
def pricebook_add(file: Annotated[Path, typer.Argument(help="TOML price book version")],
                  url: UrlOpt = None, token: TokenOpt = None,
                  json_out: JsonOpt = False) -> None:
    """Append a price book version from a TOML file (it takes effect now or later)."""
    try:
        body = tomllib.loads(_read(file), parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        fail(f"{file}: {exc}")
    data = Client(url, token).post("/pricebook/versions",
                                   content=json.dumps(body, default=str),
                                   headers={"Content-Type": "application/json"})
    if json_out:
        print_json(data)
    else:
        console.print(f"price book version {data['version']} takes effect "
                      f"{data['effective_from']}", highlight=False)


@quota_app.command("grant")
def quota_grant(project: str, hours: str,
                kind: Annotated[str, typer.Option(help="core_hours or gpu_hours")] =
                "core_hours", url: UrlOpt = None, token: TokenOpt = None,
                json_out: JsonOpt = False) -> None:
    """Add HOURS (negative takes back) to PROJECT's grant (finance)."""
    data = Client(url, token).post(f"/quotas/{project}", json={"kind": kind, "hours": hours})
    _show(data, ["kind", "granted", "used", "held", "remaining"], json_out)


@quota_app.command("show")
def quota_show(project: str, url: UrlOpt = None, token: TokenOpt = None,
               json_out: JsonOpt = False) -> None:
    _show(Client(url, token).get(f"/quotas/{project}"),
          ["kind", "granted", "used", "held", "remaining"], json_out)


def statement(
    name: Annotated[str, typer.Argument(help="project name or org:NAME")],
    month: Annotated[str, typer.Option(help="e.g. 2026-11")],
    format: Annotated[str, typer.Option("--format", help="csv, pdf or json")] = "csv",
    output: Annotated[Path | None, typer.Option("-o", "--output")] = None,
    url: UrlOpt = None, token: TokenOpt = None,
) -> None:
    """A monthly statement as CSV, PDF or JSON (to stdout or -o FILE)."""
    if format not in ("csv", "pdf", "json"):
        fail("--format must be csv, pdf or json")
    scope, _, subject = name.partition(":") if ":" in name else ("project", "", name)
    response = Client(url, token).request("GET", f"/statements/{scope}/{subject}",
                                          params={"month": month, "format": format})
    if output is not None:
        output.write_bytes(response.content)
        console.print(f"wrote {output}")
    elif format == "pdf":
        fail("a PDF needs -o FILE")
    else:
        sys.stdout.write(response.text if format != "json" else
                         json.dumps(response.json(), indent=2) + "\n")


def usage(project: str, month: Annotated[str | None, typer.Option()] = None,
          url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Charged usage by month, user and partition."""
    params = {"month": month} if month else {}
    _show(Client(url, token).get(f"/usage/{project}", params=params),
          ["month", "user", "partition", "jobs", "core_hours", "gpu_hours", "amount"],
          json_out)


@invoice_app.command("request")
def invoice_request(owner: OwnerArg, amount: str, note: str = "", url: UrlOpt = None,
                    token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Ask for an invoice for AMOUNT (org admins, PIs)."""
    _show(Client(url, token).post("/invoices", json={"owner": owner, "amount": amount,
                                                     "note": note}),
          ["id", "owner", "amount", "state"], json_out)


@invoice_app.command("issue")
def invoice_issue(invoice_id: str, number: Annotated[str, typer.Option()],
                  url: UrlOpt = None, token: TokenOpt = None,
                  json_out: JsonOpt = False) -> None:
    """Mark an invoice issued with its number (finance)."""
    _show(Client(url, token).post(f"/invoices/{invoice_id}/issue", json={"number": number}),
          ["id", "owner", "amount", "state", "number"], json_out)


@invoice_app.command("list")
def invoice_list(state: str | None = None, url: UrlOpt = None, token: TokenOpt = None,
                 json_out: JsonOpt = False) -> None:
    params = {"state": state} if state else {}
    _show(Client(url, token).get("/invoices", params=params),
          ["id", "owner", "amount", "state", "number", "requested_by"], json_out)


def reviews(resolve: Annotated[str | None, typer.Option(help="KEY to settle")] = None,
            amount: Annotated[str | None, typer.Option()] = None,
            note: Annotated[str, typer.Option()] = "",
            url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Usage records no price covers; settle one with --resolve KEY --amount A --note N."""
    client = Client(url, token)
    if resolve:
        if amount is None:
            fail("--amount is required with --resolve")
        data = client.post("/reviews/resolve", params={"key": resolve},
                           json={"amount": amount, "note": note})
        _show(data, ["key", "project", "amount", "note"], json_out)
        return
    _show(client.get("/reviews"), ["key", "project", "reason", "created_at"], json_out)


def register(app: typer.Typer) -> None:
    extra = {"allow_extra_args": True, "ignore_unknown_options": True}
    app.command(context_settings=extra)(quote)
    for command in (balance, topup, refund, adjust, statement, usage, reviews):
        app.command()(command)
    app.add_typer(pricebook_app, name="pricebook")
    app.add_typer(quota_app, name="quota")
    app.add_typer(invoice_app, name="invoice")
