"""The job record the scheduling policies work on."""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any


class SchedJob:
    """A job as the scheduler sees it.

    `request` is a resource amount (an `int` of processors in the simulator, a `Tres`
    in the embedded backend). `estimate` is the reservation length (the time limit);
    `runtime` is the true length when the caller knows it (the simulator), else None.
    `start` stays None until a policy starts the job. `data` is free for the caller.
    """

    __slots__ = ("data", "estimate", "key", "request", "runtime", "start", "submit")

    def __init__(self, key: Hashable, submit: float, request: Any, estimate: float,
                 runtime: float | None = None, data: Any = None) -> None:
        self.key = key
        self.submit = submit
        self.request = request
        self.estimate = estimate
        self.runtime = runtime
        self.start: float | None = None
        self.data = data

    @property
    def estimated_end(self) -> float:
        """start + estimate; only meaningful once started."""
        if self.start is None:
            raise ValueError(f"job {self.key!r} has not started")
        return self.start + self.estimate

    def __repr__(self) -> str:
        return (f"SchedJob({self.key!r}, submit={self.submit}, request={self.request!r}, "
                f"estimate={self.estimate}, start={self.start})")
