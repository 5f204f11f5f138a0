"""Conservative backfilling: every queued job holds a reservation."""

from __future__ import annotations

import math
from bisect import bisect_left
from typing import Any

from lightgrid.core.scheduling.job import SchedJob
from lightgrid.core.scheduling.policy import SchedulingPolicy, drop_started
from lightgrid.core.scheduling.profile import Profile, profile_of_running
from lightgrid.core.scheduling.state import ClusterState


class Conservative(SchedulingPolicy):
    """Conservative backfilling, with the result of planning from scratch at every pass.

    The profile is built from the running jobs (each holding its resources until its
    estimated end); each queued job in order gets the earliest time >= now at which it
    fits for its whole estimate and is reserved there; those reserved at now start.

    Work is reused from the previous plan (kept in `state.cache`) without changing
    the result:

    - while no job ended off its estimate and nothing left the queue out of turn, a
      fresh plan equals the previous one (same future profile, and nothing fitted
      between the passes), so only newly appended jobs are planned;
    - otherwise the plan is rebuilt, but resources can only have become more free
      before a horizon F (the latest estimated end of a job that ended early, or of
      a slot a job left), and less free only before G (the latest end of a slot a job
      moved to). A job whose previous slot at s still fits cannot start in [F, s), so
      its search looks before min(F, s) and then at s; if s >= G its previous slot
      still fits without checking.
    """

    name = "conservative"

    def schedule(self, state: ClusterState, now: float) -> list[SchedJob]:
        fresh = state.fresh
        state.fresh = 0
        horizon = state.released
        state.released = -math.inf
        cache = state.cache
        ends = state.ends
        mine = self.order is None and cache is not None and cache[0] is self
        if (mine and cache[1] == state.reshape and cache[3] >= now
                and (not ends or ends[0][0] >= now)):
            return self._extend(state, now, fresh)
        profile = profile_of_running(state, now)
        hints: dict[SchedJob, float] = cache[4] if mine else {}
        worse = -math.inf  # the latest time resources may have become less free
        if mine and cache[1] == state.reshape:
            horizon = worse = math.inf  # stale for another reason: check everything
        planned: dict[SchedJob, float] = {}
        starting: list[SchedJob] = []
        queue = self.ordered(state, now)
        fit = profile.fit
        fits_at = profile.fits_at
        reserve = profile.reserve
        times = profile.times
        for job in queue:
            req = job.request
            est = job.estimate
            old = hints.get(job)
            if old is None or old < now:
                k = fit(req, est)
            else:
                k = fit(req, est, 0, old if old < horizon else horizon)
                if k < 0:
                    k = bisect_left(times, old)
                    if (k == len(times) or times[k] != old
                            or (old < worse and not fits_at(req, est, k))):
                        k = fit(req, est, k)
            if k < 0:
                continue
            at = times[k]
            reserve(k, est, req)
            if at != old and est > 0:
                if old is not None and old + est > horizon:
                    horizon = old + est
                if at + est > worse:
                    worse = at + est
            if at == now:
                starting.append(job)
            else:
                planned[job] = at
        self._start(state, now, starting)
        if self.order is None:
            state.cache = (self, state.reshape, profile,
                           min(planned.values()) if planned else math.inf, planned)
        return starting

    def _extend(self, state: ClusterState, now: float, fresh: int) -> list[SchedJob]:
        """Keep the previous plan; plan the newly appended jobs after it."""
        cache = state.cache
        profile: Profile = cache[2]
        planned: dict[SchedJob, float] = cache[4]
        profile.advance(now)
        starting: list[SchedJob] = []
        if cache[3] == now:
            starting = [j for j in state.queue if planned.get(j) == now]
            for job in starting:
                del planned[job]
        if fresh:
            queue = state.queue
            fit = profile.fit
            reserve = profile.reserve
            times = profile.times
            for job in queue[len(queue) - fresh:]:
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
                    planned[job] = at
        self._start(state, now, starting)
        state.cache = (self, state.reshape, profile,
                       min(planned.values()) if planned else math.inf, planned)
        return starting

    @staticmethod
    def _start(state: ClusterState, now: float, starting: list[SchedJob]) -> None:
        if not starting:
            return
        ends = state.ends
        free: Any = state.free
        for job in starting:
            free = free - job.request
            job.start = now
            ends.add((now + job.estimate, job.key, job))
        state.free = free
        drop_started(state)
