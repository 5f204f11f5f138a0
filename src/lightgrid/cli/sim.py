"""`lightgrid sim` and `lightgrid sim-generate`: replay and generate workload traces."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from lightgrid.core.scheduling import POLICY_NAMES, policy_by_name

_FIELDS = ("jobs", "skipped", "mean_wait", "mean_bsld", "max_wait", "utilization",
           "makespan")


class _CsvSink:
    """Writes one row per completed job; starts over when the run restarts."""

    def __init__(self, f: IO[str], network: bool) -> None:
        self.f = f
        self.network = network
        self.reset()

    def reset(self) -> None:
        self.f.seek(0)
        self.f.truncate()
        self.writer = csv.writer(self.f, lineterminator="\n")
        header = ["id", "submit", "start", "end", "procs"]
        self.writer.writerow([*header, "center"] if self.network else header)
        self.row = self.writer.writerow

    def __call__(self, *job: Any) -> None:
        self.row(job)


def _fanout(*sinks: Any) -> Any:
    live = [s for s in sinks if s is not None]
    if not live:
        return None
    if len(live) == 1:
        return live[0]

    def call(*args: Any) -> None:
        for s in live:
            s(*args)
    return call


def _print_summary(console: Console, title: str, summary: dict[str, Any]) -> None:
    table = Table(title=title, show_header=True)
    table.add_column("scope")
    for name in (*_FIELDS, "moved"):
        if name in summary:
            table.add_column(name, justify="right")

    def cells(s: dict[str, Any]) -> list[str]:
        out = []
        for name in (*_FIELDS, "moved"):
            if name not in summary:
                continue
            v = s.get(name, "")
            out.append(f"{v:.4f}" if name == "utilization" else
                       f"{v:.2f}" if isinstance(v, float) else str(v))
        return out
    table.add_row("all", *cells(summary))
    for name, s in summary.get("centers", {}).items():
        table.add_row(name, *cells(s))
    console.print(table)


def sim(
    trace: Annotated[Path, typer.Argument(help="SWF trace, plain or gzip", exists=True,
                                          dir_okay=False)],
    policy: Annotated[str, typer.Option(help="fcfs | easy | conservative")] = "easy",
    order: Annotated[str | None, typer.Option(help="queue order: sjf | wfp3 | f1")] = None,
    procs: Annotated[int | None, typer.Option(help="processors (default: header)")] = None,
    limit: Annotated[int | None, typer.Option(help="read only the first N job lines")] = None,
    network: Annotated[Path | None, typer.Option(
        help="multi-center TOML file (centers, placement, homes)", exists=True,
        dir_okay=False)] = None,
    jobs_out: Annotated[Path | None, typer.Option(help="per-job CSV output")] = None,
    plot: Annotated[Path | None, typer.Option(help="directory for PNG plots")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON aggregates")] = False,
) -> None:
    """Replay a workload trace through a scheduling policy (or a network of centers)."""
    from lightgrid.sim.engine import simulate_trace
    from lightgrid.sim.swf import SwfError, read_header

    console = Console(stderr=True)
    if policy not in POLICY_NAMES:
        raise typer.BadParameter(f"choose one of {', '.join(POLICY_NAMES)}",
                                 param_hint="--policy")
    try:
        header = read_header(trace)
    except SwfError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    recorder = None
    if plot is not None:
        from lightgrid.sim.plots import Recorder
        recorder = Recorder()
    out_file = open(jobs_out, "w+", newline="") if jobs_out else None  # noqa: SIM115
    csv_sink = _CsvSink(out_file, network is not None) if out_file else None

    def restart() -> None:
        if csv_sink is not None:
            csv_sink.reset()
        if recorder is not None:
            recorder.reset()

    try:
        if network is not None:
            from lightgrid.sim.network import ConfigError, load_network, simulate_network_trace
            try:
                config = load_network(network)
            except (ConfigError, OSError) as exc:
                console.print(f"[red]error:[/red] {exc}")
                raise typer.Exit(2) from None
            result = simulate_network_trace(
                str(trace), config, limit,
                on_job=_fanout(csv_sink, recorder.job if recorder else None),
                on_restart=restart)
            summary = result.summary()
            machine = sum(c.procs for c in config.centers)
            title = f"{trace.name}: {config.placement}, {len(config.centers)} centers"
        else:
            machine = procs if procs is not None else header.processors()
            if machine <= 0:
                console.print(f"[red]error:[/red] {trace}: the header gives no MaxProcs "
                              "or MaxNodes; pass --procs")
                raise typer.Exit(2)
            total = limit or _records(header)
            with _progress(console, total, as_json) as progress:
                metrics = simulate_trace(
                    str(trace), policy_by_name(policy, order), machine, limit,
                    on_restart=restart,
                    on_job=_fanout(csv_sink, recorder.job if recorder else None),
                    on_step=recorder.step if recorder else None,
                    on_progress=progress)
            summary = metrics.summary()
            title = f"{trace.name}: {policy}{'+' + order if order else ''}, {machine} procs"
    except SwfError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    finally:
        if out_file is not None:
            out_file.close()
    if recorder is not None and plot is not None:
        from lightgrid.sim.plots import write_plots
        write_plots(plot, {title.split(": ")[1]: recorder}, machine, trace.name)
    if as_json:
        typer.echo(json.dumps(summary))
    else:
        _print_summary(Console(), title, summary)


def _records(header: Any) -> int | None:
    for key in ("MaxRecords", "MaxJobs"):
        value = header.fields.get(key, "").split()
        if value and value[0].isdigit():
            return int(value[0])
    return None


class _progress:
    """A progress bar on stderr for long runs when stderr is a terminal."""

    def __init__(self, console: Console, total: int | None, quiet: bool) -> None:
        self.enabled = (not quiet and sys.stderr.isatty() and total is not None
                        and total > 200_000)
        self.total = total
        self.console = console

    def __enter__(self) -> Any:
        if not self.enabled:
            return None
        from rich.progress import Progress
        self.bar = Progress(console=self.console, transient=True)
        self.bar.start()
        task = self.bar.add_task("simulating", total=self.total)
        return lambda n: self.bar.update(task, completed=n)

    def __exit__(self, *exc: Any) -> None:
        if self.enabled:
            self.bar.stop()


def sim_generate(
    out: Annotated[Path, typer.Argument(help="SWF file to write")],
    jobs: Annotated[int, typer.Option(help="number of jobs")] = 10_000,
    procs: Annotated[int, typer.Option(help="machine size")] = 256,
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    load: Annotated[float, typer.Option(help="inter-arrival scale (<1: busier)")] = 1.0,
) -> None:
    """Generate a synthetic workload (Lublin-Feitelson model) as SWF."""
    from lightgrid.sim.generate import LublinParams, write_swf

    if jobs < 0 or procs < 1 or load <= 0:
        raise typer.BadParameter("jobs >= 0, procs >= 1 and load > 0 are required")
    with open(out, "w", buffering=1 << 20) as f:
        write_swf(f, jobs, procs, seed, LublinParams(load_scale=load))


def register(app: typer.Typer) -> None:
    """Add the `sim` and `sim-generate` commands to `app`."""
    app.command("sim")(sim)
    app.command("sim-generate")(sim_generate)
