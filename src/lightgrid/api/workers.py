"""Serving one center's API from several processes.

One Python process answers at most about one core's worth of requests. With
`api_workers = N` (N > 1), `lightgrid serve` keeps the center in its main process
(the backend, the dispatch and sync loops, the background tasks) and starts N - 1
more API processes. All of them listen on the same port (SO_REUSEPORT: the kernel
spreads the connections), store submissions themselves (each with its own group
commit), and reach the backend through the main process's `BackendServer`
(`lightgrid.backends.remote`). A request therefore gets the same answer from any
process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from pathlib import Path

from lightgrid.backends.remote import BackendServer, RemoteBackend
from lightgrid.center.service import Center
from lightgrid.settings import Settings

log = logging.getLogger(__name__)

BACKEND_SOCKET = "backend.sock"


def listen(host: str, port: int, *, shared: bool = False) -> socket.socket:
    """A listening socket; `shared` lets the center's other processes bind it too."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def serve_socket(app: object, sock: socket.socket) -> None:
    """Run the ASGI `app` on `sock` until SIGINT/SIGTERM."""
    import uvicorn

    config = uvicorn.Config(app, log_level="warning", access_log=False,  # type: ignore[arg-type]
                            timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def start_api_workers(center: Center, count: int, host: str,
                      port: int) -> list[BaseProcess]:
    """Serve `center`'s backend to `count` more API processes on `host:port`.

    The backend server becomes one of the center's background tasks (it starts and
    stops with the center); the processes stop when this one exits.
    """
    if count <= 0:
        return []
    address = center.settings.data_dir.resolve() / BACKEND_SOCKET
    authkey = secrets.token_bytes(32)
    center.background.append(BackendServer(center.backend, address, authkey))
    context = multiprocessing.get_context("spawn")
    workers: list[BaseProcess] = []
    for number in range(1, count + 1):
        process = context.Process(
            target=_api_worker, name=f"lightgrid-api-{number}", daemon=True,
            args=(center.settings, host, port, address, authkey, os.getpid()))
        process.start()
        workers.append(process)
    return workers


def _api_worker(settings: Settings, host: str, port: int, address: Path, authkey: bytes,
                parent: int) -> None:
    from lightgrid.api.app import create_app
    from lightgrid.store.db import make_engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True,
                     name="parent-watch").start()
    center = Center(settings, make_engine(settings.db_url),
                    RemoteBackend(address, authkey, settings.backend))
    center.start(api_only=True)
    try:
        serve_socket(create_app(center, manage_lifecycle=False),
                     listen(host, port, shared=True))
    finally:
        center.close()


def _exit_with_parent(parent: int) -> None:
    # A worker outliving its main process would answer with no backend behind it.
    while os.getppid() == parent:
        time.sleep(1.0)
    log.warning("the center's main process is gone; stopping this API process")
    os.kill(os.getpid(), signal.SIGTERM)
