"""The scheduler's view of one cluster: free resources, pending queue, running jobs."""

from __future__ import annotations

from typing import Any

from sortedcontainers import SortedList

from lightgrid.core.scheduling.job import SchedJob


class ClusterState:
    """Free resources, the pending queue and the running jobs of one cluster.

    The queue is kept in (submit, key) order. Running jobs are kept in a sorted list of
    ``(estimated_end, key, job)`` entries (`ends`), so policies can walk them by
    estimated end. Resource amounts only need ``+``, ``-``, ``<=`` and ``==``.

    Counters let policies reuse work between passes without changing results:
    `epoch` moves on every finish, removal or out-of-order add; `reshape` moves only
    when the future resource profile changes in a way the previous pass did not
    foresee (a job ending off its estimate, a removal, an out-of-order add). `fresh`
    counts jobs appended to the end of the queue since the last pass; `requeue` moves
    when the queue changes otherwise than by such appends or by a policy starting
    jobs (a removal, an out-of-order add); `started` moves on every `start` (a job
    started by the caller rather than by a policy's pass). While `freed` is a list
    (a policy sets it), each job ending before its estimate appends its
    ``(estimated_end, request)`` to it.
    """

    __slots__ = ("cache", "capacity", "ends", "epoch", "free", "freed", "fresh", "queue",
                 "requeue", "reshape", "started", "zero")

    def __init__(self, capacity: Any, zero: Any) -> None:
        self.capacity = capacity
        self.zero = zero
        self.free = capacity
        self.queue: list[SchedJob] = []
        self.ends: SortedList = SortedList()
        self.epoch = 0
        self.reshape = 0
        self.requeue = 0
        self.fresh = 0
        self.started = 0
        self.freed: list[tuple[float, Any]] | None = None
        # Owned by the policy that schedules this state; see each policy.
        self.cache: Any = None

    @property
    def running(self) -> list[SchedJob]:
        """Running jobs, by estimated end (then key)."""
        return [entry[2] for entry in self.ends]

    def add(self, job: SchedJob) -> None:
        """Queue a pending job at its place by (submit, key)."""
        queue = self.queue
        if not queue or (queue[-1].submit, queue[-1].key) <= (job.submit, job.key):
            queue.append(job)
            self.fresh += 1
            return
        lo, hi = 0, len(queue)
        mark = (job.submit, job.key)
        while lo < hi:
            mid = (lo + hi) // 2
            other = queue[mid]
            if (other.submit, other.key) <= mark:
                lo = mid + 1
            else:
                hi = mid
        queue.insert(lo, job)
        self.epoch += 1
        self.reshape += 1
        self.requeue += 1

    def remove(self, job: SchedJob) -> None:
        """Drop a pending job (e.g. cancelled)."""
        self.queue.remove(job)
        self.epoch += 1
        self.reshape += 1
        self.requeue += 1

    def start(self, job: SchedJob, now: float) -> None:
        """Mark `job` started at `now` and hold its resources (policies call this)."""
        job.start = now
        self.free = self.free - job.request
        self.ends.add((now + job.estimate, job.key, job))
        self.started += 1

    def finish(self, job: SchedJob, now: float) -> None:
        """A running job ended at `now` (on, before or after its estimate)."""
        start = job.start
        if start is None:
            raise ValueError(f"job {job.key!r} is not running")
        end = start + job.estimate
        self.ends.remove((end, job.key, job))
        self.free = self.free + job.request
        self.epoch += 1
        if now != end:
            self.reshape += 1
            if now < end and self.freed is not None:
                self.freed.append((end, job.request))

    def earliest_end(self, now: float) -> float | None:
        """The earliest estimated end among running jobs, never before `now`."""
        if not self.ends:
            return None
        end: float = self.ends[0][0]
        return end if end > now else now
