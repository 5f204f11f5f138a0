"""Entry point of the `lightgrid` command; each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="lightgrid",
    help="Run a supercomputing center as a service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


_registered = False


def _register() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    from lightgrid.cli import admin, billing, files, jobs, limits, server, sim

    app.command()(server.serve)
    app.command()(server.demo)
    jobs.register(app)
    files.register(app)
    admin.register(app)
    sim.register(app)
    billing.register(app)
    limits.register(app)


def main() -> None:
    _register()
    app()
