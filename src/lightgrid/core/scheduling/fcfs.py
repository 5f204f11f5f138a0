"""First come, first served: start from the head while the head fits."""

from __future__ import annotations

from lightgrid.core.scheduling.job import SchedJob
from lightgrid.core.scheduling.policy import SchedulingPolicy, drop_started
from lightgrid.core.scheduling.state import ClusterState


class FCFS(SchedulingPolicy):
    """Start jobs in queue order; stop at the first that does not fit."""

    name = "fcfs"

    def schedule(self, state: ClusterState, now: float) -> list[SchedJob]:
        state.fresh = 0
        queue = self.ordered(state, now)
        started: list[SchedJob] = []
        free = state.free
        ends = state.ends
        for job in queue:
            req = job.request
            if not req <= free:
                break
            free = free - req
            job.start = now
            ends.add((now + job.estimate, job.key, job))
            started.append(job)
        if started:
            state.free = free
            if queue is state.queue:
                del queue[:len(started)]
            else:
                drop_started(state)
        return started
