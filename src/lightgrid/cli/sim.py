"""`lightgrid sim`: placeholder registration, replaced by the simulator's command."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the `sim` command to `app`."""
