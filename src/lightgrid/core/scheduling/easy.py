"""EASY backfilling: FCFS, then backfill around one reservation for the queue head."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections import deque
from heapq import heapify, heappop, heappush
from itertools import islice
from operator import attrgetter
from typing import Any

from lightgrid.core.scheduling.job import SchedJob
from lightgrid.core.scheduling.policy import SchedulingPolicy, drop_started
from lightgrid.core.scheduling.state import ClusterState

_place = attrgetter("submit", "key")
# Queues at least this long are scanned by groups; shorter ones job by job.
GROUPED = 64


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


class _Cache:
    """What `EASY` keeps in `state.cache` (unordered queues only).

    `groups`, while the queue is long (else None), holds every queued job under its
    ``(request, estimate)``, each group in queue order. `epoch`, `head`, `shadow` and
    `extra` describe the last pass: its reservation and the extra it left.
    """

    __slots__ = ("epoch", "extra", "groups", "head", "owner", "requeue", "shadow")

    def __init__(self, owner: EASY, state: ClusterState) -> None:
        self.owner = owner
        self.requeue = state.requeue
        self.groups: dict[tuple[Any, float], deque[SchedJob]] | None = None
        self.epoch = -1
        self.head: SchedJob | None = None
        self.shadow = math.inf
        self.extra: Any = state.zero

    def group(self, queue: list[SchedJob]) -> None:
        self.groups = {}
        self.append(queue)

    def append(self, jobs: Any) -> None:
        groups = self.groups
        if groups is None:
            return
        for job in jobs:
            key = (job.request, job.estimate)
            group = groups.get(key)
            if group is None:
                groups[key] = deque((job,))
            else:
                group.append(job)

    def drop(self, job: SchedJob) -> None:
        groups = self.groups
        if groups is None:
            return
        key = (job.request, job.estimate)
        group = groups[key]
        if group[0] is job:
            group.popleft()
        else:
            group.remove(job)
        if not group:
            del groups[key]


class EASY(SchedulingPolicy):
    """EASY backfilling.

    Starts jobs from the head while they fit; the first that does not (the head) gets
    a reservation at the shadow time. Each later job starts now if it fits and either
    ends (by its estimate) by the shadow time or uses only the extra resources; the
    reservation is not recomputed during the scan.

    With the queue in its own (submit, key) order, `state.cache` keeps the queued jobs
    grouped by (request, estimate), which is all the backfill rule looks at. During a
    scan `free` and `extra` only shrink, so a job that fails the rule fails it for the
    rest of the scan, and so does every later job of its group. The scan therefore
    visits groups, not jobs: the next job to start is the earliest (by submit, key)
    first member among the groups that pass the rule; a group that fails when its
    turn comes is dropped. The jobs started are those of a job-by-job scan, in the
    same order.

    Short queues are scanned job by job, where keeping the groups would cost more
    than it saves. Between passes where nothing finished or left the queue, only the newly appended
    jobs can start, under the same shadow time and the extra left by the last pass:
    the earlier jobs failed the rule under at least as much free, extra and time.
    """

    name = "easy"

    def schedule(self, state: ClusterState, now: float) -> list[SchedJob]:
        if self.order is not None:
            state.fresh = 0
            return self._schedule_ordered(state, now)
        fresh = state.fresh
        state.fresh = 0
        zero = state.zero
        ends = state.ends
        queue = state.queue
        cache = state.cache
        if (type(cache) is not _Cache or cache.owner is not self
                or cache.requeue != state.requeue):
            cache = state.cache = _Cache(self, state)
        elif fresh:
            cache.append(islice(queue, len(queue) - fresh, None))
        if not queue:
            cache.head = None
            return []
        if (cache.epoch == state.epoch and cache.head is queue[0]
                and (not ends or ends[0][0] >= now)):
            if not fresh or state.free == zero:
                return []
            return self._scan_tail(state, now, cache, len(queue) - fresh)
        free = state.free
        started: list[SchedJob] = []
        drop = cache.drop
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
            drop(job)
            i += 1
        if started:
            state.free = free
            del queue[:i]
        cache.epoch = state.epoch
        if i == n:
            cache.head = None
            return started
        head = queue[0]
        cache.head = head
        shadow, extra = shadow_and_extra(state, head.request, now)
        cache.shadow = shadow
        cache.extra = extra
        if free == zero:
            return started
        if len(queue) < GROUPED:
            cache.groups = None
            started.extend(self._scan_tail(state, now, cache, 1))
            return started
        if cache.groups is None:
            cache.group(queue)
        started.extend(self._scan_groups(state, now, cache, head))
        return started

    @staticmethod
    def _scan_groups(state: ClusterState, now: float, cache: _Cache,
                     head: SchedJob) -> list[SchedJob]:
        """Backfill every job but the head, group by group (see the class docstring)."""
        zero = state.zero
        free = state.free
        shadow = cache.shadow
        extra = cache.extra
        limit = shadow - now
        heap: list[tuple[float, Any, int, Any, float, deque[SchedJob], int]] = []
        groups = cache.groups
        assert groups is not None
        for (req, est), group in groups.items():
            if req <= free and (est <= limit or req <= extra):
                pos = 0
                if group[0] is head:
                    if len(group) == 1:
                        continue
                    pos = 1
                job = group[pos]
                heap.append((job.submit, job.key, len(heap), req, est, group, pos))
        if not heap:
            return []
        heapify(heap)
        ends = state.ends
        queue = state.queue
        started: list[SchedJob] = []
        while heap:
            _submit, _key, tie, req, est, group, pos = heappop(heap)
            if not req <= free:
                continue
            if est <= limit:
                pass
            elif req <= extra:
                extra = extra - req
            else:
                continue
            job = group[pos]
            del group[pos]
            free = free - req
            job.start = now
            ends.add((now + est, job.key, job))
            started.append(job)
            k = bisect_left(queue, (job.submit, job.key), key=_place)
            while queue[k] is not job:
                k += 1
            del queue[k]
            if free == zero:
                break
            if len(group) > pos:
                job = group[pos]
                heappush(heap, (job.submit, job.key, tie, req, est, group, pos))
        for job in started:
            key = (job.request, job.estimate)
            if key in groups and not groups[key]:
                del groups[key]
        if started:
            state.free = free
        cache.extra = extra
        return started

    @staticmethod
    def _scan_tail(state: ClusterState, now: float, cache: _Cache,
                   first: int) -> list[SchedJob]:
        """Backfill queue[first:] job by job under the cached reservation."""
        zero = state.zero
        free = state.free
        ends = state.ends
        queue = state.queue
        shadow = cache.shadow
        extra = cache.extra
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
            for idx in reversed(picked):
                del queue[idx]
            for job in started:
                cache.drop(job)
        cache.extra = extra
        return started

    def _schedule_ordered(self, state: ClusterState, now: float) -> list[SchedJob]:
        """One pass over the queue sorted by this policy's order; nothing is reused."""
        zero = state.zero
        ends = state.ends
        queue = self.ordered(state, now)
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
        state.free = free
        if i == n or free == zero:
            if started:
                drop_started(state)
            return started
        shadow, extra = shadow_and_extra(state, queue[i].request, now)
        for job in islice(queue, i + 1, None):
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
                if free == zero:
                    break
        state.free = free
        if started:
            drop_started(state)
        return started
