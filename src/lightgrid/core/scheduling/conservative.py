"""Conservative backfilling: every queued job holds a reservation."""

from __future__ import annotations

import math
from typing import Any

from lightgrid.core.scheduling.job import SchedJob
from lightgrid.core.scheduling.policy import SchedulingPolicy, drop_started
from lightgrid.core.scheduling.profile import Profile
from lightgrid.core.scheduling.state import ClusterState


class Conservative(SchedulingPolicy):
    """Conservative backfilling, planned from scratch at every pass.

    The profile is built from the running jobs (each holding its resources until its
    estimated end); each queued job in order gets the earliest time >= now at which it
    fits for its whole estimate and is reserved there; those reserved at now start.

    While no job ends off its estimate and nothing leaves the queue out of turn, a
    fresh plan would reproduce the previous one exactly (the future profile is the
    same, and nothing fitted between the passes), so the previous plan is kept in
    `state.cache` and only newly appended jobs are planned.
    """

    name = "conservative"

    def schedule(self, state: ClusterState, now: float) -> list[SchedJob]:
        fresh = state.fresh
        state.fresh = 0
        cache = state.cache
        ends = state.ends
        if (self.order is None and cache is not None and cache[0] is self
                and cache[1] == state.reshape and cache[4] >= now
                and (not ends or ends[0][0] >= now)):
            profile: Profile = cache[2]
            by_time: dict[float, list[SchedJob]] = cache[3]
            profile.advance(now)
            queue = state.queue
            starting = by_time.pop(now, [])
            new = queue[len(queue) - fresh:] if fresh else []
        else:
            profile = Profile.of_running(state, now)
            by_time = {}
            starting = []
            queue = self.ordered(state, now)
            new = queue
        fit = profile.fit
        reserve = profile.reserve
        times = profile.times
        for job in new:
            req = job.request
            est = job.estimate
            k = fit(req, est)
            if k < 0:
                continue
            at = times[k]
            reserve(k, est, req)
            if at == now:
                starting.append(job)
            else:
                slot = by_time.get(at)
                if slot is None:
                    by_time[at] = [job]
                else:
                    slot.append(job)
        if starting:
            free: Any = state.free
            for job in starting:
                free = free - job.request
                job.start = now
                ends.add((now + job.estimate, job.key, job))
            state.free = free
            drop_started(state)
        if self.order is None:
            state.cache = (self, state.reshape, profile, by_time,
                           min(by_time) if by_time else math.inf)
        return starting
