"""Jobs: the Slurm state vocabulary, the transition table, and the job specification.

`JobSpec` is what a user asks for, whether written as `#SBATCH` directives
(`lightgrid.core.sbatch`) or as a JSON document; both become the same object.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass, field

from lightgrid.core.errors import IllegalTransition
from lightgrid.core.resources import ResourceRequest


class JobState(enum.StrEnum):
    """Job states, named as Slurm names them."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES


TERMINAL_STATES = frozenset({
    JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT,
    JobState.NODE_FAIL, JobState.OUT_OF_MEMORY,
})

_S = JobState
#: Every allowed (from, to) pair. A requeue sends a running or finished job back to
#: PENDING, as `scontrol requeue` does; nothing else leaves a terminal state.
TRANSITIONS: frozenset[tuple[JobState, JobState]] = frozenset(
    {(_S.PENDING, _S.RUNNING), (_S.PENDING, _S.CANCELLED), (_S.PENDING, _S.FAILED),
     (_S.PENDING, _S.NODE_FAIL)}
    | {(_S.RUNNING, to) for to in TERMINAL_STATES}
    | {(_S.RUNNING, _S.PENDING)}
    | {(terminal, _S.PENDING) for terminal in TERMINAL_STATES}
)


def check_transition(current: JobState, target: JobState, *, job: str = "") -> None:
    """Raise `IllegalTransition` unless the table allows `current -> target`."""
    if (current, target) not in TRANSITIONS:
        who = f"job {job}: " if job else ""
        raise IllegalTransition(f"{who}cannot go from {current} to {target}",
                                field="state")


class DependencyKind(enum.StrEnum):
    AFTER = "after"
    AFTEROK = "afterok"
    AFTERANY = "afterany"
    AFTERNOTOK = "afternotok"


@dataclass(frozen=True, slots=True)
class Dependency:
    """``--dependency=KIND:ID[:ID...]``; ids are job numbers or platform ids."""

    kind: DependencyKind
    job_ids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ArraySpec:
    """``--array``: the task indices and the optional ``%limit`` on tasks running at once."""

    indices: tuple[int, ...]
    max_running: int | None = None


@dataclass(frozen=True, slots=True)
class UnknownDirective:
    """A directive lightgrid does not act on; kept and reported, never dropped."""

    line: int
    text: str


@dataclass(slots=True)
class JobSpec:
    """Everything a submission asks for. Unset fields take partition defaults."""

    script: str = ""
    name: str | None = None
    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    nodes: int | None = None  # None: as few as the tasks need
    ntasks: int = 1
    cpus_per_task: int = 1
    mem_per_node: int | None = None  # MiB
    mem_per_cpu: int | None = None  # MiB
    gpus_per_node: int = 0
    gpus_total: int = 0
    gpu_type: str | None = None
    exclusive: bool = False
    time_limit: int | None = None  # seconds
    stdout: str | None = None
    stderr: str | None = None
    array: ArraySpec | None = None
    chdir: str | None = None
    export: str = "ALL"
    dependencies: list[Dependency] = field(default_factory=list)
    comment: str | None = None
    unknown: list[UnknownDirective] = field(default_factory=list)

    def resource_request(self) -> ResourceRequest:
        return ResourceRequest(
            nodes=self.nodes, ntasks=self.ntasks, cpus_per_task=self.cpus_per_task,
            mem_per_node=self.mem_per_node, mem_per_cpu=self.mem_per_cpu,
            gpus_per_node=self.gpus_per_node, gpus_total=self.gpus_total,
            gpu_type=self.gpu_type, exclusive=self.exclusive)


#: `%`, an optional zero-padding width (Slurm allows e.g. %3a), then the letter.
_PATTERN_TOKEN = re.compile(r"%(\d*)(.?)", re.DOTALL)


def expand_output_pattern(pattern: str, *, job_number: int, array_job: int | None = None,
                          array_task: int | None = None, user: str = "",
                          name: str = "", node: str = "localhost") -> str:
    """Expand Slurm's filename patterns: %j %A %a %u %x %N %%."""
    if "%" not in pattern:
        return pattern

    def expand(token: re.Match[str]) -> str:
        width, letter = token.group(1), token.group(2)
        if letter == "%":
            return "%"
        if letter == "j":
            number = job_number
        elif letter == "A":
            number = array_job if array_job is not None else job_number
        elif letter == "a":
            number = array_task if array_task is not None else 4294967294
        elif letter == "u":
            return user
        elif letter == "x":
            return name
        elif letter == "N":
            return node
        else:
            return token.group(0)  # not a pattern Slurm knows: kept as written
        return str(number).zfill(int(width)) if width else str(number)

    return _PATTERN_TOKEN.sub(expand, pattern)
