"""EASY backfilling: FCFS, then backfill around one reservation for the queue head."""

from __future__ import annotations

import math
from itertools import islice
from typing import Any

from lightgrid.core.scheduling.job import SchedJob
from lightgrid.core.scheduling.policy import SchedulingPolicy, drop_started
from lightgrid.core.scheduling.state import ClusterState


def shadow_and_extra(state: ClusterState, need: Any, now: float) -> tuple[float, Any]:
    """When the head (needing `need`) can start, and what is spare at that time.

    The shadow time is the earliest estimated end of a running job at which the free
    resources (free now plus those of every running job ending by then) cover `need`;
    estimated ends in the past count as `now`. `extra` is what is free at the shadow
    time, counting every job ending exactly then, minus `need`. A request that never
    fits gets an infinite shadow time and no extra.
    """
    avail = state.free
    it = iter(state.ends)
    for end, _key, job in it:
        avail = avail + job.request
        if need <= avail:
            for end2, _key2, job2 in it:
                if end2 != end:
                    break
                avail = avail + job2.request
            return (end if end > now else now), avail - need
    return math.inf, state.zero


class EASY(SchedulingPolicy):
    """EASY backfilling.

    Starts jobs from the head while they fit; the first that does not (the head) gets
    a reservation at the shadow time. Each later job starts now if it fits and either
    ends (by its estimate) by the shadow time or uses only the extra resources; the
    reservation is not recomputed during the scan.

    Between passes where nothing finished or left the queue, only the newly appended
    jobs can start, under the same shadow time and the extra left by the last pass;
    this is what `state.cache` holds.
    """

    name = "easy"

    def schedule(self, state: ClusterState, now: float) -> list[SchedJob]:
        fresh = state.fresh
        state.fresh = 0
        zero = state.zero
        ends = state.ends
        cache = state.cache
        if (self.order is None and cache is not None and cache[0] is self
                and cache[1] == state.epoch and state.queue and cache[2] is state.queue[0]
                and (not ends or ends[0][0] >= now)):
            if not fresh or state.free == zero:
                return []
            return self._scan(state, now, state.queue, len(state.queue) - fresh,
                              cache[3], cache[4])
        queue = self.ordered(state, now)
        if not queue:
            state.cache = None
            return []
        free = state.free
        started: list[SchedJob] = []
        n = len(queue)
        i = 0
        while i < n:
            job = queue[i]
            req = job.request
            if not req <= free:
                break
            free = free - req
            job.start = now
            ends.add((now + job.estimate, job.key, job))
            started.append(job)
            i += 1
        if started:
            state.free = free
            if queue is state.queue:
                del queue[:i]
            else:
                drop_started(state)
                queue = queue[i:]
        if i == n:
            state.cache = None
            return started
        shadow, extra = shadow_and_extra(state, queue[0].request, now)
        if free == zero:
            state.cache = (self, state.epoch, queue[0], shadow, extra)
            return started
        started.extend(self._scan(state, now, queue, 1, shadow, extra))
        return started

    def _scan(self, state: ClusterState, now: float, queue: list[SchedJob], first: int,
              shadow: float, extra: Any) -> list[SchedJob]:
        """Backfill queue[first:] around the head's reservation."""
        zero = state.zero
        free = state.free
        ends = state.ends
        started: list[SchedJob] = []
        picked: list[int] = []
        for idx, job in enumerate(islice(queue, first, None), first):
            req = job.request
            if req <= free:
                if now + job.estimate <= shadow:
                    pass
                elif req <= extra:
                    extra = extra - req
                else:
                    continue
                free = free - req
                job.start = now
                ends.add((now + job.estimate, job.key, job))
                started.append(job)
                picked.append(idx)
                if free == zero:
                    break
        if started:
            state.free = free
            if queue is state.queue:
                for idx in reversed(picked):
                    del queue[idx]
            else:
                drop_started(state)
        if self.order is None:
            state.cache = (self, state.epoch, state.queue[0], shadow, extra)
        return started
