"""Entry point of the `lightgrid` command; each command group lives in its own module."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="lightgrid",
    help="Run a supercomputing center as a service.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


def _register() -> None:
    from lightgrid.cli import sim

    sim.register(app)


def main() -> None:
    _register()
    app()
