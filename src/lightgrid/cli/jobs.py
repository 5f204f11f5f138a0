"""Client commands for jobs: submit, jobs, show, cancel, requeue, logs, partitions."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from lightgrid.cli.client import Client, JsonOpt, TokenOpt, UrlOpt, console, fail, print_json
from lightgrid.core.sbatch import format_time

TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY"}


def _mem(mib: int) -> str:
    return f"{mib // 1024}G" if mib % 1024 == 0 else f"{mib}M"


def _tres(job: dict[str, Any]) -> str:
    t = job["tres"]
    out = f"cpu={t['cpu']},mem={_mem(t['mem'])}"
    if t["gpu"]:
        out += f",gpu={t['gpu']}" + (f":{job['gpu_type']}" if job.get("gpu_type") else "")
    return out


def jobs_table(rows: list[dict[str, Any]]) -> Table:
    table = Table(box=None, header_style="bold")
    for col in ("JOBID", "NAME", "USER", "PROJECT", "PARTITION", "STATE", "TIME",
                "TRES", "REASON"):
        table.add_column(col)
    for job in rows:
        table.add_row(job["job_id"], job["name"], job["user"], job["project"],
                      job["partition"], _state(job["state"]),
                      format_time(job["elapsed"] or 0), _tres(job),
                      job["reason"] if job["state"] == "PENDING" else "")
    return table


def _state(state: str) -> str:
    colour = {"COMPLETED": "green", "RUNNING": "cyan", "PENDING": "yellow"}.get(state, "red")
    return f"[{colour}]{state}[/{colour}]"


def submit(
    ctx: typer.Context,
    script: Annotated[Path, typer.Argument(help="Batch script with #SBATCH directives; "
                                           "extra sbatch options may follow")],
    wait: Annotated[bool, typer.Option("--wait", "-W", help="Wait until it ends")] = False,
    url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False,
) -> None:
    """Submit a batch script, like sbatch. Options after the script override directives."""
    if not script.is_file():
        fail(f"{script}: no such file")
    try:
        text = script.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{script}: cannot read: {exc}")
    client = Client(url, token)
    result = client.post("/jobs", json={"script": text, "args": list(ctx.args),
                                        "name": script.name})
    for warning in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {warning}", highlight=False)
    if not json_out:
        console.print(f"Submitted batch job {result['job_id']}", highlight=False)
    if wait:
        rows = _wait(client, result["job_id"])
        if json_out:
            print_json(rows)
        else:
            console.print(jobs_table(rows))
        failed = [r for r in rows if r["state"] != "COMPLETED"]
        raise typer.Exit(1 if failed else 0)
    if json_out:
        print_json(result)


def _wait(client: Client, ref: str, poll: float = 0.5) -> list[dict[str, Any]]:
    while True:
        rows = client.get(f"/jobs/{ref}")
        if all(r["state"] in TERMINAL for r in rows):
            return list(rows)
        time.sleep(poll)


def _all_pages(client: Client, params: dict[str, Any], limit: int | None) -> list[Any]:
    rows: list[Any] = []
    cursor = None
    while True:
        page = client.get("/jobs", params={**params, **({"cursor": cursor} if cursor else {})})
        rows.extend(page["items"])
        cursor = page["next_cursor"]
        if not cursor or (limit is not None and len(rows) >= limit):
            return rows[:limit] if limit is not None else rows


def jobs(
    state: Annotated[list[str] | None, typer.Option("--state", "-t",
                                                    help="e.g. PENDING,RUNNING")] = None,
    user: Annotated[str | None, typer.Option("--user", "-u")] = None,
    project: Annotated[str | None, typer.Option("--project", "-A")] = None,
    partition: Annotated[str | None, typer.Option("--partition", "-p")] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="at most N jobs")] = None,
    url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False,
) -> None:
    """List jobs you may see, like squeue/sacct."""
    params: dict[str, Any] = {"limit": min(limit or 500, 1000)}
    if state:
        params["state"] = ",".join(state)
    for key, value in (("user", user), ("project", project), ("partition", partition)):
        if value:
            params[key] = value
    rows = _all_pages(Client(url, token), params, limit)
    if json_out:
        print_json(rows)
    else:
        console.print(jobs_table(rows))


def show(job: Annotated[str, typer.Argument(help="N, N_I or a job id")],
         url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Show one job (or every task of an array), like scontrol show job."""
    rows = Client(url, token).get(f"/jobs/{job}")
    if json_out:
        print_json(rows)
        return
    for row in rows:
        table = Table(box=None, show_header=False)
        table.add_column(style="bold")
        table.add_column()
        for key in ("job_id", "id", "name", "user", "project", "partition", "state",
                    "reason", "nodes", "time_limit", "submit_time", "start_time",
                    "end_time", "elapsed", "exit_code", "cpu_time", "max_rss", "workdir",
                    "stdout", "stderr", "backend_id"):
            value = row.get(key)
            if key == "time_limit":
                value = format_time(value)
            table.add_row(key, "" if value is None else str(value))
        table.add_row("tres", _tres(row))
        console.print(table)
        console.print()


def cancel(job: Annotated[str, typer.Argument(help="N, N_I or a job id")],
           url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Cancel a job, or every task of an array, like scancel."""
    rows = Client(url, token).post(f"/jobs/{job}/cancel")
    if json_out:
        print_json(rows)
    else:
        console.print(jobs_table(rows))


def requeue(job: Annotated[str, typer.Argument(help="N, N_I or a job id")],
            url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Send a running or finished job back to the queue."""
    rows = Client(url, token).post(f"/jobs/{job}/requeue")
    if json_out:
        print_json(rows)
    else:
        console.print(jobs_table(rows))


def logs(
    job: Annotated[str, typer.Argument(help="N, N_I or a job id; an array shows every task")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing output "
                                         "until the job ends")] = False,
    stderr: Annotated[bool, typer.Option("--stderr", help="The error stream")] = False,
    tail: Annotated[int | None, typer.Option("--tail", "-n", help="Last N lines")] = None,
    url: UrlOpt = None, token: TokenOpt = None,
) -> None:
    """Print a job's output, while it runs and after."""
    client = Client(url, token)
    rows = client.get(f"/jobs/{job}")
    stream = "stderr" if stderr else "stdout"
    many = len(rows) > 1
    for row in rows:
        if many:
            console.print(f"[bold]==> {row['job_id']} ({row['state']}) <==[/bold]",
                          highlight=False)
        _print_output(client, row["id"], stream, tail, follow)


def _print_output(client: Client, job_id: str, stream: str, tail: int | None,
                  follow: bool) -> None:
    params: dict[str, Any] = {"stream": stream}
    if tail:
        params["tail"] = tail
    offset = 0
    out = sys.stdout.buffer
    while True:
        state = ""
        for response in client.stream("GET", f"/jobs/{job_id}/output", params=params):
            for chunk in response.iter_bytes():
                out.write(chunk)
            out.flush()
            state = response.headers.get("X-Job-State", "")
            offset = int(response.headers.get("X-Next-Offset", offset))
        if not follow or state in TERMINAL:
            if follow and state in TERMINAL:
                # One last read: the job may have written after our previous request.
                params = {"stream": stream, "offset": offset}
                for response in client.stream("GET", f"/jobs/{job_id}/output",
                                              params=params):
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                out.flush()
            return
        params = {"stream": stream, "offset": offset}
        with contextlib.suppress(KeyboardInterrupt):
            time.sleep(0.5)


def partitions(url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """Partitions with their nodes and load, like sinfo."""
    rows = Client(url, token).get("/partitions")
    if json_out:
        print_json(rows)
        return
    table = Table(box=None, header_style="bold")
    for col in ("PARTITION", "STATE", "NODES", "CPUS", "MEM", "GPUS", "ALLOC CPUS",
                "PENDING", "RUNNING", "TIMELIMIT"):
        table.add_column(col)
    for p in rows:
        gpus = ",".join(f"{nt['gpu_type'] or 'gpu'}:{nt['gpus'] * nt['count']}"
                        for nt in p["node_types"] if nt["gpus"]) or "-"
        name = p["name"] + ("*" if p["default"] else "")
        table.add_row(name, p["state"], str(sum(nt["count"] for nt in p["node_types"])),
                      str(p["total"]["cpu"]), _mem(p["total"]["mem"]), gpus,
                      str(p["allocated"]["cpu"]), str(p["pending_jobs"]),
                      str(p["running_jobs"]), format_time(p["max_time"]))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command(context_settings={"allow_extra_args": True,
                                  "ignore_unknown_options": True})(submit)
    for command in (jobs, show, cancel, requeue, logs, partitions):
        app.command()(command)
