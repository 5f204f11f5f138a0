"""The HTTP client the CLI's client commands share, and how they report errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Annotated, Any, NoReturn

import httpx
import typer
from rich.console import Console

# Piped output keeps whole lines rather than wrapping at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 220)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 220)

UrlOpt = Annotated[str | None, typer.Option("--url", envvar="LIGHTGRID_URL",
                                            help="Center URL, e.g. http://127.0.0.1:8000")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="LIGHTGRID_TOKEN",
                                              help="API token")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON")]


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    raise typer.Exit(code)


class Client:
    """A thin wrapper over httpx that turns API errors into CLI messages."""

    def __init__(self, url: str | None, token: str | None) -> None:
        if not url:
            fail("no center URL: pass --url or set LIGHTGRID_URL")
        self.base = url.rstrip("/") + "/api/v1"
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=self.base, headers=headers, timeout=60.0)

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code < 400:
            return response
        try:
            error = response.json().get("error", {})
            message = error.get("message") or response.text
            field = error.get("field")
        except (json.JSONDecodeError, AttributeError):
            message, field = response.text, None
        suffix = f" [{field}]" if field else ""
        fail(f"{message}{suffix} (HTTP {response.status_code})")

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._check(self.http.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            fail(f"cannot reach {self.base}: {exc}")

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.request("GET", path, **kwargs).json()

    def post(self, path: str, **kwargs: Any) -> Any:
        response = self.request("POST", path, **kwargs)
        return response.json() if response.content else None

    def delete(self, path: str, **kwargs: Any) -> None:
        self.request("DELETE", path, **kwargs)

    def stream(self, method: str, path: str, **kwargs: Any) -> Iterator[httpx.Response]:
        try:
            with self.http.stream(method, path, **kwargs) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                yield response
        except httpx.TransportError as exc:
            fail(f"cannot reach {self.base}: {exc}")


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")

