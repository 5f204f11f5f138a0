"""`lightgrid limits ...` and `lightgrid contract ...`: blocking thresholds, credit
limits, whitelists, per-user spending caps and contract prices (finance staff)."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

import typer

from lightgrid.cli.client import Client, JsonOpt, TokenOpt, UrlOpt, console, fail, print_json

limits_app = typer.Typer(help="Blocking thresholds, credit limits, whitelists and "
                         "spending caps (finance).", no_args_is_help=True)
contract_app = typer.Typer(help="Per-organization contract prices (finance).",
                           no_args_is_help=True)


def _print(data: Any, json_out: bool) -> None:
    if json_out:
        print_json(data)
    elif isinstance(data, dict):
        for key, value in data.items():
            console.print(f"{key}: {value}", highlight=False)
    else:
        for item in data:
            console.print(str(item), highlight=False)


@limits_app.command("set")
def set_limits(
    owner: Annotated[str, typer.Argument(help="project name, project:NAME or org:NAME")],
    threshold: Annotated[str | None, typer.Option(help="a project is blocked when its "
                                                  "available funds fall to this")] = None,
    credit_limit: Annotated[str | None, typer.Option(help="an organization's credit "
                                                     "limit")] = None,
    url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False,
) -> None:
    """Set a project's blocking threshold or an organization's credit limit."""
    if threshold is None and credit_limit is None:
        fail("give --threshold or --credit-limit")
    body = {k: v for k, v in (("threshold", threshold), ("credit_limit", credit_limit))
            if v is not None}
    _print(Client(url, token).request("PUT", f"/limits/{owner}", json=body).json(), json_out)


@limits_app.command("blocked")
def blocked(url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Projects blocked from new submissions now."""
    _print(Client(url, token).get("/blocked"), json_out)


@limits_app.command("whitelist")
def whitelist(
    project: str,
    reason: Annotated[str, typer.Option(help="why the project may run while short")],
    expires: Annotated[str | None, typer.Option(help="ISO time with zone, e.g. "
                                                "2026-12-31T00:00:00+08:00")] = None,
    url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False,
) -> None:
    """Exempt a project from blocking (never from holds) until it expires."""
    body = {"reason": reason, "expires_at": expires}
    _print(Client(url, token).request("PUT", f"/whitelist/{project}", json=body).json(),
           json_out)


@limits_app.command("unwhitelist")
def unwhitelist(project: str, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """End a project's whitelist entry."""
    Client(url, token).delete(f"/whitelist/{project}")
    console.print(f"{project} is no longer whitelisted", highlight=False)


@limits_app.command("cap")
def cap(project: str, user: str, limit: str,
        period: Annotated[str, typer.Option(help="month or total")] = "month",
        url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Cap what USER may spend in PROJECT per month (or in total)."""
    body = {"limit": limit, "period": period}
    _print(Client(url, token).request("PUT", f"/caps/{project}/{user}", json=body).json(),
           json_out)


@contract_app.command("list")
def contract_list(org: Annotated[str | None, typer.Option()] = None, url: UrlOpt = None,
                  token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Contracts, of every organization or of one."""
    rows = Client(url, token).get("/contracts", params={"org": org} if org else {})
    if json_out:
        print_json(rows)
        return
    for row in rows:
        console.print(f"{row.get('id', '')}  {row.get('org', '')}  "
                      f"{row.get('effective_from', '')} .. {row.get('effective_until', '')}",
                      highlight=False)


@contract_app.command("add")
def contract_add(org: str,
                 file: Annotated[Path, typer.Argument(help="TOML: the contract's cards, "
                                                      "dates and discount")],
                 url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Add a contract whose prices override the price book for ORG."""
    try:
        body = tomllib.loads(file.read_text())
    except FileNotFoundError:
        fail(f"{file}: no such file")
    except tomllib.TOMLDecodeError as exc:
        fail(f"{file}: {exc}")
    _print(Client(url, token).post(f"/orgs/{org}/contracts", json=body), json_out)


def register(app: typer.Typer) -> None:
    app.add_typer(limits_app, name="limits")
    app.add_typer(contract_app, name="contract")
