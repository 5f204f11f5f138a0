"""`lightgrid files ls|put|get|rm|mkdir`: your home and your projects' workspaces."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.table import Table

from lightgrid.cli.client import Client, JsonOpt, TokenOpt, UrlOpt, console, fail, print_json

files_app = typer.Typer(help="Files in your home or a project workspace.",
                        no_args_is_help=True)
ProjectOpt = Annotated[str | None, typer.Option("--project", "-P",
                                                help="a project workspace instead of home")]


def _space(project: str | None) -> str:
    return f"project:{project}" if project else "home"


def _url(project: str | None, path: str) -> str:
    path = path.strip("/")
    base = f"/files/{quote(_space(project))}"
    return f"{base}/{quote(path)}" if path else base


@files_app.command("ls")
def ls(path: Annotated[str, typer.Argument()] = "", project: ProjectOpt = None,
       url: UrlOpt = None, token: TokenOpt = None, json_out: JsonOpt = False) -> None:
    """List a directory."""
    rows: list[dict[str, Any]] = Client(url, token).get(_url(project, path))
    if json_out:
        print_json(rows)
        return
    table = Table(box=None, header_style="bold")
    for col in ("TYPE", "SIZE", "MODIFIED", "NAME"):
        table.add_column(col)
    for row in rows:
        table.add_row(row["type"], str(row["size"]), row["mtime"][:19], row["name"])
    console.print(table)


@files_app.command("put")
def put(local: Path, remote: Annotated[str | None, typer.Argument()] = None,
        project: ProjectOpt = None, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Upload a file (streamed)."""
    if not local.is_file():
        fail(f"{local}: no such file")
    target = remote or local.name
    if target.endswith("/"):
        target += local.name

    def body() -> Iterator[bytes]:
        with open(local, "rb") as fh:
            while chunk := fh.read(1 << 20):
                yield chunk

    client = Client(url, token)
    data = client.request("PUT", _url(project, target), content=body()).json()
    console.print(f"{data['name']}: {data['size']} bytes", highlight=False)


@files_app.command("get")
def get(remote: str, local: Annotated[Path | None, typer.Argument()] = None,
        project: ProjectOpt = None, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Download a file (streamed); '-' as LOCAL writes to standard output."""
    import sys

    client = Client(url, token)
    target = local or Path(Path(remote).name)
    for response in client.stream("GET", _url(project, remote)):
        if response.headers.get("content-type", "").startswith("application/json"):
            fail(f"{remote} is a directory")
        if str(target) == "-":
            for chunk in response.iter_bytes():
                sys.stdout.buffer.write(chunk)
            return
        tmp = target.with_name(f".{target.name}.part")
        with open(tmp, "wb") as fh:
            for chunk in response.iter_bytes():
                fh.write(chunk)
        tmp.replace(target)
    console.print(f"saved {target}", highlight=False)


@files_app.command("rm")
def rm(remote: str, recursive: Annotated[bool, typer.Option("-r", "--recursive")] = False,
       project: ProjectOpt = None, url: UrlOpt = None, token: TokenOpt = None) -> None:
    """Delete a file, or a directory with -r."""
    Client(url, token).delete(_url(project, remote), params={"recursive": recursive})
    console.print(f"removed {remote}", highlight=False)


@files_app.command("mkdir")
def mkdir(remote: str, project: ProjectOpt = None, url: UrlOpt = None,
          token: TokenOpt = None) -> None:
    """Make a directory and its parents."""
    Client(url, token).post(_url(project, remote))
    console.print(f"made {remote}", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(files_app, name="files")
