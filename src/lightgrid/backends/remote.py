"""The backend of another process of the same center.

When a center serves its API from several processes, only the main process runs the
backend (the embedded scheduler and its runners, or the Slurm client and its
polling). The other processes hold a `RemoteBackend`, which forwards every call of
the `Backend` interface over a local socket to the `BackendServer` of the main
process. Connections are authenticated with a secret the main process makes for
each run (`multiprocessing.connection`), the socket file is private to the service's
user, and only the interface's methods can be called.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime
from multiprocessing import AuthenticationError
from multiprocessing.connection import Client, Connection, Listener
from pathlib import Path
from typing import Any

from lightgrid.backends.base import (
    Backend,
    JobStatus,
    NodeInfo,
    PartitionInfo,
    SubmitRequest,
    SubmitResult,
    UsageRecord,
)
from lightgrid.core.errors import BackendUnavailable, InvalidRequest, LightgridError

log = logging.getLogger(__name__)

#: What a remote process may call.
METHODS = frozenset({"submit", "submit_batch", "cancel", "requeue", "poll", "usage",
                     "partitions", "nodes", "estimate_start", "find_by_platform_id"})


class BackendServer:
    """Serves a backend to the center's other processes (a thread per connection)."""

    def __init__(self, backend: Backend, address: Path, authkey: bytes) -> None:
        self.backend = backend
        self.address = address
        self._authkey = authkey
        self._listener: Listener | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[Connection] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.address.unlink()  # left by a previous run
        old_umask = os.umask(0o077)
        try:
            self._listener = Listener(str(self.address), family="AF_UNIX",
                                      authkey=self._authkey)
        finally:
            os.umask(old_umask)
        self._thread = threading.Thread(target=self._accept, name="backend-server",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting and end every open connection (callers see the backend
        unavailable)."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with self._lock:
            open_now = list(self._connections)
        for conn in open_now:
            # Shut the socket down under the serving thread, which then sees EOF.
            with contextlib.suppress(OSError), socket.socket(
                    fileno=os.dup(conn.fileno())) as sock:
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(FileNotFoundError):
            self.address.unlink()

    def _accept(self) -> None:
        while self._listener is not None:
            try:
                conn = self._listener.accept()
            except (OSError, EOFError, AuthenticationError):
                if self._listener is None:
                    return  # stopped
                log.warning("refused a backend connection", exc_info=True)
                continue
            threading.Thread(target=self._serve, args=(conn,), name="backend-conn",
                             daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        with self._lock:
            self._connections.add(conn)
        try:
            while True:
                try:
                    method, args = conn.recv()
                except (EOFError, OSError):
                    return
                try:
                    conn.send(self._call(method, args))
                except OSError:
                    return
        finally:
            with self._lock:
                self._connections.discard(conn)
            conn.close()

    def _call(self, method: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        if method not in METHODS:
            return "error", InvalidRequest(f"no backend method {method!r}")
        try:
            return "ok", getattr(self.backend, method)(*args)
        except LightgridError as exc:
            return "error", exc
        except Exception as exc:
            log.exception("backend call %s failed", method)
            return "error", BackendUnavailable(f"the backend failed: {exc}")


class RemoteBackend(Backend):
    """A `Backend` whose calls run in the center's main process."""

    def __init__(self, address: Path, authkey: bytes, kind: str) -> None:
        self.address = address
        self.kind = kind
        self._authkey = authkey
        self._local = threading.local()  # one connection per thread

    def _call(self, method: str, *args: Any) -> Any:
        conn: Connection | None = getattr(self._local, "conn", None)
        try:
            if conn is None:
                conn = Client(str(self.address), family="AF_UNIX", authkey=self._authkey)
                self._local.conn = conn
            conn.send((method, args))
            status, value = conn.recv()
        except (OSError, EOFError, AuthenticationError) as exc:
            self._local.conn = None
            if conn is not None:
                conn.close()
            raise BackendUnavailable(
                f"the center's main process is not reachable: {exc}") from exc
        if status == "error":
            raise value
        return value

    # start/stop: the main process runs the backend.

    def submit(self, request: SubmitRequest) -> SubmitResult:
        result: SubmitResult = self._call("submit", request)
        return result

    def submit_batch(self, requests: Sequence[SubmitRequest],
                     ) -> list[SubmitResult | LightgridError]:
        results: list[SubmitResult | LightgridError] = self._call(
            "submit_batch", list(requests))
        return results

    def cancel(self, backend_id: str) -> None:
        self._call("cancel", backend_id)

    def requeue(self, backend_id: str) -> None:
        self._call("requeue", backend_id)

    def poll(self, backend_ids: Iterable[str]) -> dict[str, JobStatus]:
        statuses: dict[str, JobStatus] = self._call("poll", list(backend_ids))
        return statuses

    def usage(self, backend_ids: Iterable[str]) -> dict[str, UsageRecord]:
        records: dict[str, UsageRecord] = self._call("usage", list(backend_ids))
        return records

    def partitions(self) -> list[PartitionInfo]:
        infos: list[PartitionInfo] = self._call("partitions")
        return infos

    def nodes(self) -> list[NodeInfo]:
        infos: list[NodeInfo] = self._call("nodes")
        return infos

    def estimate_start(self, request: SubmitRequest) -> datetime | None:
        start: datetime | None = self._call("estimate_start", request)
        return start

    def find_by_platform_id(self, platform_job_id: str) -> list[JobStatus]:
        found: list[JobStatus] = self._call("find_by_platform_id", platform_job_id)
        return found
