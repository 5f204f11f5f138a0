"""Conservative backfilling: every queued job holds a reservation."""

from __future__ import annotations

from typing import Any

from lightgrid.core.scheduling.job import SchedJob
from lightgrid.core.scheduling.plan import Plan
from lightgrid.core.scheduling.policy import SchedulingPolicy, drop_started
from lightgrid.core.scheduling.profile import profile_of_running
from lightgrid.core.scheduling.state import ClusterState


class Conservative(SchedulingPolicy):
    """Conservative backfilling, with the result of planning from scratch at every pass.

    The profile is built from the running jobs (each holding its resources until its
    estimated end); each queued job in order gets the earliest time >= now at which it
    fits for its whole estimate and is reserved there; those reserved at now start.

    With integer amounts and the queue in its own order, a `Plan` kept in
    `state.cache` gives the same starts while planning only as much of the queue as
    that needs (see `lightgrid.core.scheduling.plan`). Otherwise (resource vectors,
    priority orders) every pass plans the whole queue from scratch.
    """

    name = "conservative"

    def schedule(self, state: ClusterState, now: float) -> list[SchedJob]:
        fresh = state.fresh
        state.fresh = 0
        if self.order is not None or not Plan.usable(state):
            return self.from_scratch(state, now)
        plan = state.cache
        if type(plan) is not Plan or plan.owner is not self or plan.started != state.started:
            # Built from the running jobs and the whole queue as they are now.
            plan = state.cache = Plan(self, state, now)
            state.freed = []
            fresh = 0
        return plan.schedule(state, now, fresh)

    def from_scratch(self, state: ClusterState, now: float) -> list[SchedJob]:
        """Plan the queue from the running jobs alone (any amounts, any order)."""
        profile = profile_of_running(state, now)
        fit = profile.fit
        reserve = profile.reserve
        times = profile.times
        # A job cannot start before the one placed last with the same request and
        # estimate (it sees the same profile less more reservations): search from
        # there. An index stays a valid bound when steps are inserted before it.
        bound: dict[tuple[Any, float], int] = {}
        starting: list[SchedJob] = []
        for job in self.ordered(state, now):
            req = job.request
            est = job.estimate
            key = (req, est)
            k = fit(req, est, bound.get(key, 0))
            if k < 0:
                continue
            bound[key] = k
            if times[k] == now:
                starting.append(job)
            reserve(k, est, req)
        if starting:
            ends = state.ends
            free: Any = state.free
            for job in starting:
                free = free - job.request
                job.start = now
                ends.add((now + job.estimate, job.key, job))
            state.free = free
            drop_started(state)
        return starting
