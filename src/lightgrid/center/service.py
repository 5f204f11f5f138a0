"""`Center`: one supercomputing center, wired from its settings.

It owns the database engine, the backend, the services and the background loop that
dispatches and synchronises jobs. The API, the CLI's `serve` and `demo`, and the tests
all build a center through `Center.from_settings`.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from sqlalchemy import Engine

from lightgrid.backends.base import Backend
from lightgrid.center.auth import TokenAuthenticator
from lightgrid.center.billing import install_billing
from lightgrid.center.dispatch import Dispatcher
from lightgrid.center.files import Workspace, Workspaces
from lightgrid.center.intake import SubmissionIntake
from lightgrid.center.jobs import JobService
from lightgrid.core.errors import InvalidRequest
from lightgrid.settings import Settings
from lightgrid.store.db import make_engine, make_sessionmaker, migrate

log = logging.getLogger(__name__)


def make_backend(settings: Settings) -> Backend:
    """The backend named by the settings."""
    if settings.backend == "slurm":
        from lightgrid.backends.slurm import SlurmBackend, SlurmConfig

        if settings.slurm.slurm_conf is None:
            raise InvalidRequest("backend 'slurm' needs slurm.slurm_conf (the path of "
                                 "slurm.conf)", field="slurm.slurm_conf")
        return SlurmBackend(SlurmConfig(
            slurm_conf=settings.slurm.slurm_conf,
            cluster=settings.slurm.cluster or settings.center_name,
            command_timeout=settings.slurm.command_timeout,
            submit_as_user=settings.slurm.submit_as_user))
    from lightgrid.backends.embedded.backend import EmbeddedBackend, EmbeddedConfig

    return EmbeddedBackend(
        EmbeddedConfig(state_dir=settings.data_dir / "embedded",
                       kill_grace=settings.kill_grace_seconds,
                       cluster_name=settings.center_name),
        settings.partition_map())


class BackgroundTask(Protocol):
    """Work that runs while the center runs (Slurm association sync, accounting)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class Center:
    """A running center: store, backend, services and the sync loop."""

    def __init__(self, settings: Settings, engine: Engine, backend: Backend) -> None:
        self.settings = settings
        self.engine = engine
        self.factory = make_sessionmaker(engine)
        self.backend = backend
        self.partitions = settings.partition_map()
        self.jobs = JobService(self.factory, self.partitions, settings.default_partition,
                               settings.data_dir.resolve())
        self.dispatcher = Dispatcher(self.factory, backend, self.jobs)
        self.intake = SubmissionIntake(self.jobs, self.dispatcher)
        self.auth = TokenAuthenticator(self.factory)
        self.workspaces = Workspaces(settings.data_dir.resolve(),
                                     max_upload=settings.max_upload_bytes)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        #: Started after the backend (in order), stopped before it (in reverse).
        self.background: list[BackgroundTask] = []
        self._api_only = False
        install_billing(self)
        if backend.kind == "slurm":
            from lightgrid.center.slurm_sync import install_slurm

            install_slurm(self)

    @classmethod
    def from_settings(cls, settings: Settings, *, backend: Backend | None = None) -> Center:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        engine = make_engine(settings.db_url)
        migrate(engine)
        return cls(settings, engine, backend or make_backend(settings))

    # -- workspaces --------------------------------------------------------------

    def home(self, username: str) -> Workspace:
        return self.workspaces.home(username)

    def project_workspace(self, project: str) -> Workspace:
        return self.workspaces.project(project)

    # -- lifecycle ---------------------------------------------------------------

    def start(self, *, api_only: bool = False) -> None:
        """Start the backend, adopt what a crash left behind, then loop.

        `api_only` is for the extra API processes of a center whose main process runs
        the backend and the loops: only the submission intake starts.
        """
        self._api_only = api_only
        if api_only:
            self.intake.start()
            return
        self.backend.start()
        for task in self.background:
            task.start()
        self.dispatcher.reconcile()
        self.intake.start()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="center-sync", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._api_only:
            self.intake.stop()
            return
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.intake.stop()
        for task in reversed(self.background):
            task.stop()
        self.backend.stop()

    def close(self) -> None:
        self.stop()
        self.engine.dispose()

    def _loop(self) -> None:
        rounds = 0
        while not self._stop.is_set():
            self._wake.wait(self.settings.poll_interval)
            self._wake.clear()
            try:
                self.dispatcher.sync()
                rounds += 1
                if rounds % 10 == 0:
                    self.dispatcher.dispatch_pending()
            except Exception:  # pragma: no cover - the loop must survive anything
                log.exception("center sync failed")
