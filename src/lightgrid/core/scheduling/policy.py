"""The scheduling policy interface, queue orders, and the policy registry."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

from lightgrid.core.scheduling.job import SchedJob
from lightgrid.core.scheduling.state import ClusterState


def _size(amount: Any) -> float:
    """A scalar size of a resource amount: the amount itself, or its cpu component."""
    return float(amount if isinstance(amount, int | float) else amount.cpu)


class QueueOrder(ABC):
    """A priority order of the pending queue; ties fall back to (submit, key)."""

    name: ClassVar[str]

    def __init__(self, size: Callable[[Any], float] = _size) -> None:
        self.size = size

    @abstractmethod
    def priority(self, job: SchedJob, now: float) -> float:
        """Smaller runs first."""

    def sort(self, queue: list[SchedJob], now: float) -> list[SchedJob]:
        prio = self.priority
        return sorted(queue, key=lambda j: (prio(j, now), j.submit, j.key))


class SJF(QueueOrder):
    """Shortest estimate first."""

    name = "sjf"

    def priority(self, job: SchedJob, now: float) -> float:
        return float(job.estimate)


class WFP3(QueueOrder):
    """Favours jobs that waited long relative to their estimate, and large jobs."""

    name = "wfp3"

    def priority(self, job: SchedJob, now: float) -> float:
        wait = now - job.submit
        return -((wait / max(job.estimate, 1)) ** 3) * self.size(job.request)


class F1(QueueOrder):
    """A learned score of estimate, size and submit time (Carastan-Santos and de Camargo)."""

    name = "f1"

    def priority(self, job: SchedJob, now: float) -> float:
        return (math.log10(max(job.estimate, 1)) * self.size(job.request)
                + 870 * math.log10(max(job.submit, 1)))


ORDERS: dict[str, type[QueueOrder]] = {o.name: o for o in (SJF, WFP3, F1)}


class SchedulingPolicy(ABC):
    """Decides which pending jobs of a `ClusterState` start now.

    `schedule` starts jobs through the state (so `free` and `ends` follow) and returns
    them in start order. A policy may keep reusable work in `state.cache` as long as
    the result equals a pass computed from scratch.
    """

    name: ClassVar[str]

    def __init__(self, order: QueueOrder | None = None) -> None:
        self.order = order

    @abstractmethod
    def schedule(self, state: ClusterState, now: float) -> list[SchedJob]:
        """Start what this policy starts at `now`; return the started jobs."""

    def ordered(self, state: ClusterState, now: float) -> list[SchedJob]:
        """The queue in this policy's order (the state's own list when unordered)."""
        if self.order is None:
            return state.queue
        return self.order.sort(state.queue, now)

    def __repr__(self) -> str:
        order = f", order={self.order.name}" if self.order else ""
        return f"{type(self).__name__}({order.lstrip(', ')})"


def drop_started(state: ClusterState) -> None:
    """Remove started jobs from the state's queue, keeping its order."""
    state.queue[:] = [j for j in state.queue if j.start is None]


def policy_by_name(name: str, order: str | QueueOrder | None = None) -> SchedulingPolicy:
    """Build a policy by name ("fcfs", "easy", "conservative"), optionally with a
    queue order by name ("sjf", "wfp3", "f1") or instance."""
    from lightgrid.core.scheduling.conservative import Conservative
    from lightgrid.core.scheduling.easy import EASY
    from lightgrid.core.scheduling.fcfs import FCFS

    policies: dict[str, type[SchedulingPolicy]] = {
        "fcfs": FCFS, "easy": EASY, "conservative": Conservative}
    try:
        cls = policies[name.lower()]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose one of "
                         f"{', '.join(policies)}") from None
    if isinstance(order, str):
        try:
            order = ORDERS[order.lower()]()
        except KeyError:
            raise ValueError(f"unknown queue order {order!r}; choose one of "
                             f"{', '.join(ORDERS)}") from None
    return cls(order)


POLICY_NAMES = ("fcfs", "easy", "conservative")
