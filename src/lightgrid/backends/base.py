"""The workload-manager boundary.

A `Backend` is what the center core needs from a workload manager: submit, cancel,
poll states, fetch usage records, list partitions and nodes, estimate a start time,
and find jobs by their platform id after a crash. The embedded backend
(`lightgrid.backends.embedded`) and the Slurm backend (`lightgrid.backends.slurm`)
implement it; nothing else in the platform knows which one runs.

Errors: `BackendUnavailable` (retry later) and `BackendRejected` (the manager said no,
with its reason) from `lightgrid.core.errors`.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from lightgrid.core.errors import BackendRejected, BackendUnavailable, LightgridError
from lightgrid.core.jobs import ArraySpec, DependencyKind, JobState
from lightgrid.core.resources import Allocation, Partition, Tres


@dataclass(frozen=True, slots=True)
class BackendDependency:
    """A dependency on jobs already known to the backend, by backend id."""

    kind: DependencyKind
    backend_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SubmitRequest:
    """One submission, already validated, normalised and admitted by the platform.

    For an array, `array` holds the task indices and `task_job_ids` the platform id
    of each task, in the same order; the backend returns one backend id per task.
    """

    job_id: str  # platform id (of the first task for arrays)
    job_number: int
    name: str
    user: str
    account: str
    partition: str
    allocation: Allocation
    time_limit: int  # seconds
    script: str
    workdir: str
    stdout: str  # absolute path; the backend expands Slurm's %j %A %a %u %x per task
    stderr: str
    environment: Mapping[str, str] = field(default_factory=dict)
    export: str = "ALL"
    dependencies: Sequence[BackendDependency] = ()
    array: ArraySpec | None = None
    task_job_ids: Sequence[str] = ()
    task_numbers: Sequence[int] = ()
    qos: str | None = None
    #: The user's task layout, when known (the allocation is the same either way).
    ntasks: int | None = None
    cpus_per_task: int | None = None
    #: The user's own comment; a backend may keep the platform id in its own field.
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class SubmitResult:
    """Backend ids: one for a plain job, one per array task (index -> id)."""

    backend_id: str
    task_backend_ids: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobStatus:
    """What the backend says of one job now."""

    backend_id: str
    state: JobState
    reason: str = ""
    start_time: datetime | None = None
    end_time: datetime | None = None
    exit_code: int | None = None
    platform_job_id: str | None = None


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What a finished job used: the input to billing.

    `platform_job_id` is None for jobs submitted outside lightgrid (plain `sbatch`).
    """

    backend_id: str
    platform_job_id: str | None
    cluster: str
    user: str
    account: str
    partition: str
    state: JobState
    exit_code: int | None
    submit_time: datetime | None
    start_time: datetime | None
    end_time: datetime | None
    elapsed: int  # seconds
    cpu_time: float  # seconds of CPU actually used (user + system)
    max_rss: int  # bytes
    tres: Tres
    gpu_type: str | None = None
    name: str = ""
    qos: str | None = None


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    partitions: tuple[str, ...]
    state: str
    cpus: int
    mem: int  # MiB
    gpus: int = 0
    gpu_type: str | None = None
    alloc_cpus: int = 0
    alloc_mem: int = 0
    alloc_gpus: int = 0


@dataclass(frozen=True, slots=True)
class PartitionInfo:
    partition: Partition
    state: str = "UP"
    total: Tres = field(default_factory=Tres)
    allocated: Tres = field(default_factory=Tres)
    pending_jobs: int = 0
    running_jobs: int = 0


class Backend(abc.ABC):
    """A workload manager. Implementations are thread-safe."""

    #: Short name used in configuration (`embedded`, `slurm`).
    kind: str = ""

    def start(self) -> None:  # noqa: B027 - optional hook
        """Start background work (schedulers, pollers). Called once by the service."""

    def stop(self) -> None:  # noqa: B027 - optional hook
        """Stop background work; running jobs keep running where the manager allows."""

    @abc.abstractmethod
    def submit(self, request: SubmitRequest) -> SubmitResult:
        """Hand a job to the manager. Raises BackendRejected / BackendUnavailable."""

    def submit_batch(self, requests: Sequence[SubmitRequest],
                     ) -> list[SubmitResult | LightgridError]:
        """Submit several jobs: each one's result, or the error that refused it.

        The default submits one by one; a backend that reaches its manager through a
        connection (`RemoteBackend`) sends the whole batch at once.
        """
        results: list[SubmitResult | LightgridError] = []
        for request in requests:
            try:
                results.append(self.submit(request))
            except (BackendRejected, BackendUnavailable) as exc:
                results.append(exc)
        return results

    @abc.abstractmethod
    def cancel(self, backend_id: str) -> None:
        """Cancel a pending or running job; cancelling a finished job does nothing."""

    @abc.abstractmethod
    def poll(self, backend_ids: Iterable[str]) -> dict[str, JobStatus]:
        """Current states of the given jobs; unknown ids are left out."""

    @abc.abstractmethod
    def usage(self, backend_ids: Iterable[str]) -> dict[str, UsageRecord]:
        """Usage records of the given finished jobs; unfinished ones are left out."""

    @abc.abstractmethod
    def partitions(self) -> list[PartitionInfo]:
        """Partitions with their capacity and load."""

    @abc.abstractmethod
    def nodes(self) -> list[NodeInfo]:
        """Nodes with their state and allocation."""

    @abc.abstractmethod
    def estimate_start(self, request: SubmitRequest) -> datetime | None:
        """When the job would start if submitted now (like ``sbatch --test-only``)."""

    @abc.abstractmethod
    def find_by_platform_id(self, platform_job_id: str) -> list[JobStatus]:
        """Jobs the manager knows under this platform id (crash reconciliation)."""

    def requeue(self, backend_id: str) -> None:
        """Send a job back to the queue. Optional; default refuses."""
        raise BackendRejected(f"{self.kind} backend cannot requeue jobs")
