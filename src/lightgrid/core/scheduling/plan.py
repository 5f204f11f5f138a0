"""The conservative plan of a cluster whose amounts are plain integers, kept between passes.

A `Plan` holds, over one sorted list of breakpoints (`times`), two step functions:
`run`, the units free when only the running jobs hold theirs (each until its
estimated end), and `free`, what is left once the planned jobs hold their
reservations as well. `run` is kept up to date as jobs start and end early, not
rebuilt from the running jobs at every pass.

Every pass starts the jobs a plan from scratch would start (see `Conservative`):
walking the queue in order, each job at the earliest start where it fits in what
the jobs before it left. The walk is lazy:

- Only a prefix of the queue (`done` jobs) is planned, with the starts in `slot`.
  The walk stops as soon as no later job can start now: there is less free now than
  the smallest request queued, or, for each request size queued, the shortest
  estimate of that size is longer than that much stays free from now. A later pass
  walks on only if that no longer holds. Stopping early is exact because a job's
  place never depends on the jobs after it.
- The prefix is kept from pass to pass while a plan from scratch would place it
  alike: no job ended off its estimate or outlived it, none left or joined the
  queue out of turn, no planned start was missed, no job was started from outside,
  and no job started while one with estimate 0 was planned (that one reserves
  nothing at its start, so a later job may take the room it needs there). The jobs
  started since hold what they had reserved, and those started out of queue order
  were placed around the reservations before them, so each planned job keeps its
  earliest fit. Otherwise the walk starts again from `run`.

Machines of at most 255 units keep the profiles as bytearrays: a job's "has room"
mask is then one `bytes.translate`, windows are checked with `find`/`rfind`, and a
reservation is one `translate` of a slice, all in C. Larger machines use lists.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import Counter
from itertools import compress, repeat
from operator import add, ne, or_, sub
from typing import Any

from lightgrid.core.scheduling.job import SchedJob
from lightgrid.core.scheduling.policy import drop_started
from lightgrid.core.scheduling.state import ClusterState

# The largest capacity kept in bytearrays (one byte per step).
BYTE_LIMIT = 255

_ROOM: list[bytes | None] = [None] * (BYTE_LIMIT + 1)
_TAKE: list[bytes | None] = [None] * (BYTE_LIMIT + 1)
_GIVE: list[bytes | None] = [None] * (BYTE_LIMIT + 1)


def room_table(req: int) -> bytes:
    """Translate table mapping a free amount to 1 if `req` fits in it, else 0."""
    table = _ROOM[req]
    if table is None:
        table = _ROOM[req] = bytes(v >= req for v in range(256))
    return table


def take_table(req: int) -> bytes:
    """Translate table subtracting `req` (only applied where it fits)."""
    table = _TAKE[req]
    if table is None:
        table = _TAKE[req] = bytes((v - req) & 0xFF for v in range(256))
    return table


def give_table(req: int) -> bytes:
    """Translate table adding `req` (only applied where the sum stays in range)."""
    table = _GIVE[req]
    if table is None:
        table = _GIVE[req] = bytes((v + req) & 0xFF for v in range(256))
    return table


def slack(n: int) -> int:
    """How long a grid of `n` breakpoints may grow before it is compacted."""
    return n + n // 2 + 32


class Plan:
    """A cluster's conservative plan for integer amounts (see the module docstring).

    `owner` is the policy that made it; `reshape`, `requeue` and `started` are the
    state's counters it last saw (`reshape` is set to -1 to walk from scratch at the
    next pass); `first` is the earliest start in `slot`; `bare` says whether `slot`
    may hold a job with estimate 0; `kinds` counts the queued jobs by (request,
    estimate) and `shortest` gives, per request, the smallest estimate among them
    (None until recomputed); `packed` says whether the profiles are bytearrays;
    `limit` is the grid length that triggers dropping breakpoints where neither
    profile changes.
    """

    __slots__ = ("bare", "capacity", "done", "first", "free", "kinds", "limit", "owner",
                 "packed", "requeue", "reshape", "run", "shortest", "slot", "started", "times")

    def __init__(self, owner: Any, state: ClusterState, now: float) -> None:
        self.owner = owner
        self.capacity = state.capacity
        self.started = state.started
        self.reshape = state.reshape
        times: list[float] = [now]
        run: list[int] = [state.free]
        last = now
        for end, _key, job in state.ends:
            if end > last:
                times.append(end)
                run.append(run[-1] + job.request)
                last = end
            else:
                run[-1] += job.request
        self.times = times
        self.run: Any = run
        self.packed = False
        if state.capacity <= BYTE_LIMIT:
            # Bytes need whole amounts in 0..255 (free only leaves that range if the
            # caller started more than the capacity).
            try:
                self.run = bytearray(run)
                self.packed = True
            except (TypeError, ValueError):
                pass
        self.free: Any = self.run[:]
        self.slot: dict[SchedJob, float] = {}
        self.done = 0
        self.first = math.inf
        self.bare = False
        self.limit = slack(len(times))
        self.requeue = state.requeue
        self.kinds: Counter[tuple[Any, float]] = Counter()
        self.shortest: dict[Any, float] | None = None
        self.count(state.queue)

    @staticmethod
    def usable(state: ClusterState) -> bool:
        """Whether a state's amounts suit a `Plan` (plain, non-negative integers)."""
        return type(state.capacity) is int and state.capacity >= 0

    def schedule(self, state: ClusterState, now: float, fresh: int) -> list[SchedJob]:
        """One pass at `now` (see the module docstring); returns the jobs started."""
        self.advance(now)
        freed = state.freed
        if freed:
            self.release(freed, now)
            freed.clear()
        queue = state.queue
        if state.requeue != self.requeue:
            self.requeue = state.requeue
            self.kinds.clear()
            self.count(queue)
        elif fresh:
            self.count(queue[len(queue) - fresh:])
        # The planned prefix stands unless a plan from scratch would see it
        # differently now (see the module docstring).
        ends = state.ends
        if (state.reshape != self.reshape or self.first < now
                or (ends and ends[0][0] < now)):
            self.reshape = state.reshape
            self.free = self.run[:]
            self.slot = {}
            self.done = 0
            self.first = math.inf
            self.bare = False
        slot = self.slot
        starting: list[SchedJob] = []
        if self.first == now:
            starting = [job for job in queue[:self.done] if slot.get(job) == now]
            for job in starting:
                del slot[job]
        if self.done < len(queue):
            self.walk(queue, now, starting)
        self.first = min(slot.values()) if slot else math.inf
        if starting and self.bare:
            # A planned job with estimate 0 holds nothing at its start, so a later job
            # starting now may take the room it needs there: walk from scratch next.
            self.reshape = -1
        self.start(state, now, starting)
        if len(self.times) > self.limit:
            self.compact()
        return starting

    def count(self, jobs: list[SchedJob]) -> None:
        """Add `jobs` to `kinds` (those that can never fit are left out)."""
        kinds = self.kinds
        cap = self.capacity
        for job in jobs:
            req = job.request
            if type(req) is not int and self.packed:
                # Bytes hold whole units only: keep lists from now on.
                self.packed = False
                self.run = list(self.run)
                self.free = list(self.free)
            if req <= cap:
                kinds[req, job.estimate] += 1
        self.shortest = None

    def advance(self, now: float) -> None:
        """Forget the past: the profiles start at `now`."""
        times = self.times
        k = bisect_right(times, now) - 1
        if k > 0:
            del times[:k]
            del self.run[:k]
            del self.free[:k]
        times[0] = now

    def point(self, t: float) -> int:
        """Index of breakpoint `t`, added (splitting its step) if missing."""
        times = self.times
        k = bisect_left(times, t)
        if k == len(times) or times[k] != t:
            times.insert(k, t)
            self.run.insert(k, self.run[k - 1])
            self.free.insert(k, self.free[k - 1])
        return k

    def release(self, freed: list[tuple[float, Any]], now: float) -> None:
        """Jobs ended before their estimates: their units are free until those ends."""
        for end, req in freed:
            if end > now:
                e = self.point(end)
                run = self.run
                if self.packed:
                    run[:e] = run[:e].translate(give_table(req))
                else:
                    run[:e] = map(add, run[:e], repeat(req, e))

    def start(self, state: ClusterState, now: float, starting: list[SchedJob]) -> None:
        """Start `starting` at `now`: the state holds them and so does `run`."""
        if not starting:
            return
        ends = state.ends
        free: Any = state.free
        run = self.run
        kinds = self.kinds
        for job in starting:
            req = job.request
            est = job.estimate
            free = free - req
            job.start = now
            ends.add((now + est, job.key, job))
            kind = (req, est)
            if kinds[kind] == 1:
                del kinds[kind]
                self.shortest = None
            else:
                kinds[kind] -= 1
            if est > 0:
                e = self.point(now + est)
                if self.packed:
                    run[:e] = run[:e].translate(take_table(req))
                else:
                    run[:e] = map(sub, run[:e], repeat(req, e))
        state.free = free
        drop_started(state)
        self.done -= len(starting)

    def idle(self, now: float) -> float | None:
        """None if no queued job can start now in `free`; else a time such that one
        still can while `free` does not change before it."""
        shortest = self.shortest
        if shortest is None:
            shortest = self.shortest = {}
            for (req, est) in self.kinds:
                if est < shortest.get(req, math.inf):
                    shortest[req] = est
        cur = self.free
        times = self.times
        here = cur[0]
        for req, est in shortest.items():
            if req > here:
                continue
            if est <= 0:
                # It needs room at the instant now only.
                return times[1] if len(times) > 1 else math.inf
            # Does the shortest job of this size fit from now?
            m = bisect_left(times, now + est, 1)
            if self.packed:
                if cur.translate(_ROOM[req] or room_table(req)).find(0, 0, m) < 0:
                    return now + est
            elif min(cur[:m]) >= req:
                return now + est
        return None

    def walk(self, queue: list[SchedJob], now: float, starting: list[SchedJob]) -> None:
        """Plan `queue` from `done` on, each job at its earliest fit in `free` (then
        reserved there), until no later job can start now. Jobs placed at `now` go to
        `starting`, the others to `slot`."""
        if self.packed:
            self._walk_bytes(queue, now, starting)
        else:
            self._walk_list(queue, now, starting)

    def _walk_bytes(self, queue: list[SchedJob], now: float,
                    starting: list[SchedJob]) -> None:
        times = self.times
        run = self.run
        cur = self.free
        slot = self.slot
        cap = self.capacity
        small = min(req for req, _est in self.kinds) if self.kinds else cap + 1
        done = self.done
        n = len(queue)
        # Whether a later job can start now needs checking again only once `free`
        # changed before `watch` (see `idle`); -inf: check before the next job.
        watch = -math.inf
        # A job cannot start before the last one placed with the same request and
        # estimate (it sees the same profile less more reservations), so its search
        # starts there. An index stays a valid bound when steps are inserted before it.
        bound: dict[tuple[int, float], int] = {}
        bound_get = bound.get
        rooms = _ROOM
        takes = _TAKE
        e = 0
        end = 0.0
        while done < n:
            if cur[0] < small:
                break
            if watch < now:
                until = self.idle(now)
                if until is None:
                    break
                watch = until
            job = queue[done]
            done += 1
            req = job.request
            est = job.estimate
            if req > cap:
                continue  # never fits
            key = (req, est)
            mask = cur.translate(rooms[req] or room_table(req))
            k = mask.find(1, bound_get(key, 0))
            if est > 0:
                while True:
                    end = times[k] + est
                    e = bisect_left(times, end, k + 1)
                    # Every start up to the last blocked step in the window is blocked.
                    b = mask.rfind(0, k, e)
                    if b < 0:
                        break
                    k = mask.find(1, b + 1)
                if e == len(times) or times[e] != end:
                    times.insert(e, end)
                    cur.insert(e, cur[e - 1])
                    run.insert(e, run[e - 1])
                cur[k:e] = cur[k:e].translate(takes[req] or take_table(req))
            bound[key] = k
            at = times[k]
            if at < watch:
                watch = -math.inf
            if at == now:
                starting.append(job)
            else:
                slot[job] = at
                if est <= 0:
                    self.bare = True
        self.done = done

    def _walk_list(self, queue: list[SchedJob], now: float,
                   starting: list[SchedJob]) -> None:
        times = self.times
        run = self.run
        cur = self.free
        slot = self.slot
        cap = self.capacity
        small = min(req for req, _est in self.kinds) if self.kinds else cap + 1
        done = self.done
        n = len(queue)
        watch = -math.inf  # as in `_walk_bytes`
        bound: dict[tuple[int, float], int] = {}
        bound_get = bound.get
        e = 0
        end = 0.0
        while done < n:
            if cur[0] < small:
                break
            if watch < now:
                until = self.idle(now)
                if until is None:
                    break
                watch = until
            job = queue[done]
            done += 1
            req = job.request
            est = job.estimate
            if req > cap:
                continue  # never fits
            key = (req, est)
            k = bound_get(key, 0)
            while True:
                while cur[k] < req:
                    k += 1
                if est <= 0:
                    break
                end = times[k] + est
                e = bisect_left(times, end, k + 1)
                if min(cur[k:e]) >= req:
                    break
                # Every start up to the last blocked step in the window is blocked.
                m = e - 1
                while cur[m] >= req:
                    m -= 1
                k = m + 1
            if est > 0:
                if e == len(times) or times[e] != end:
                    times.insert(e, end)
                    cur.insert(e, cur[e - 1])
                    run.insert(e, run[e - 1])
                if e - k == 1:
                    cur[k] -= req
                else:
                    cur[k:e] = map(sub, cur[k:e], repeat(req, e - k))
            bound[key] = k
            at = times[k]
            if at < watch:
                watch = -math.inf
            if at == now:
                starting.append(job)
            else:
                slot[job] = at
                if est <= 0:
                    self.bare = True
        self.done = done

    def compact(self) -> None:
        """Drop breakpoints where neither profile changes (left by early ends and by
        reservations given up), so the grid does not grow with the number of passes."""
        run = self.run
        free = self.free
        keep = [True]
        keep.extend(map(or_, map(ne, run[1:], run[:-1]), map(ne, free[1:], free[:-1])))
        self.times = list(compress(self.times, keep))
        if self.packed:
            self.run = bytearray(compress(run, keep))
            self.free = bytearray(compress(free, keep))
        else:
            self.run = list(compress(run, keep))
            self.free = list(compress(free, keep))
        self.limit = slack(len(self.times))
