"""`lightgrid serve` and `lightgrid demo`."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path
from typing import Annotated

import typer

from lightgrid.cli.client import console, fail
from lightgrid.core.errors import LightgridError


def _bind(host: str, port: int, *, shared: bool = False) -> socket.socket:
    from lightgrid.api.workers import listen

    try:
        return listen(host, port, shared=shared)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror}")


def _run(app: object, sock: socket.socket) -> None:
    from lightgrid.api.workers import serve_socket

    serve_socket(app, sock)


def serve(
    config: Annotated[Path | None, typer.Option(help="settings TOML file",
                                                envvar="LIGHTGRID_CONFIG")] = None,
    host: Annotated[str | None, typer.Option()] = None,
    port: Annotated[int | None, typer.Option()] = None,
    data_dir: Annotated[Path | None, typer.Option()] = None,
) -> None:
    """Run the center's API service (and its backend) until stopped."""
    from lightgrid.api.app import create_app
    from lightgrid.center.service import Center
    from lightgrid.settings import load_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        settings = load_settings(config, host=host, port=port, data_dir=data_dir)
        center = Center.from_settings(settings)
    except LightgridError as exc:
        fail(exc.message)
    workers = settings.api_workers
    sock = _bind(settings.host, settings.port, shared=workers > 1)
    port = sock.getsockname()[1]
    if workers > 1:
        from lightgrid.api.workers import start_api_workers

        start_api_workers(center, workers - 1, settings.host, port)
    console.print(f"lightgrid center {settings.center_name!r} on "
                  f"http://{settings.host}:{port} "
                  f"(backend: {settings.backend}, database: {center.engine.url.drivername}, "
                  f"API processes: {workers})", highlight=False)
    _run(create_app(center), sock)


def demo(
    port: Annotated[int, typer.Option(help="0 picks a free port")] = 8000,
    data_dir: Annotated[Path, typer.Option(help="where the demo keeps its state")] = Path(
        "var/demo"),
    host: Annotated[str, typer.Option()] = "127.0.0.1",
) -> None:
    """Start a demo center with a virtual cluster, tenants, users and sample jobs."""
    from lightgrid.api.app import create_app
    from lightgrid.center.demo import seed
    from lightgrid.center.service import Center
    from lightgrid.settings import load_settings

    try:
        settings = load_settings(None, data_dir=data_dir, host=host, port=port,
                                 kill_grace_seconds=2.0, poll_interval=0.5)
        center = Center.from_settings(settings)
    except LightgridError as exc:
        fail(exc.message)
    sock = _bind(host, port)
    url = f"http://{host}:{sock.getsockname()[1]}"
    center.backend.start()
    tokens = seed(center)
    center.backend.stop()
    (data_dir / "demo.json").write_text(json.dumps(
        {"url": url, "tokens": tokens.as_dict()}, indent=2) + "\n")
    console.print(f"[bold]lightgrid demo center[/bold] at {url}  (API docs: {url}/api/v1/docs)",
                  highlight=False)
    console.print(f"tokens written to {data_dir / 'demo.json'}:", highlight=False)
    for role, token in tokens.as_dict().items():
        console.print(f"  {role:13s} {token}", highlight=False)
    console.print(f"try:  export LIGHTGRID_URL={url} LIGHTGRID_TOKEN={tokens.researcher}\n"
                  "      lightgrid jobs", highlight=False)
    _run(create_app(center), sock)
