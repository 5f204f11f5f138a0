"""A step function of free resources over time, for planning reservations."""

from __future__ import annotations

from bisect import bisect_left
from itertools import repeat
from operator import sub
from typing import Any

from lightgrid.core.scheduling.state import ClusterState


class Profile:
    """Free resources over time: `avail[i]` is free during [times[i], times[i+1]).

    The last step lasts forever. Amounts only need ``+``, ``-`` and ``<=``.
    """

    __slots__ = ("avail", "times")

    def __init__(self, times: list[float], avail: list[Any]) -> None:
        self.times = times
        self.avail = avail

    @classmethod
    def of_running(cls, state: ClusterState, now: float) -> Profile:
        """Free resources from `now` on, each running job holding its resources until
        its estimated end (an end in the past counts as `now`)."""
        times: list[float] = [now]
        avail: list[Any] = [state.free]
        last = now
        for end, _key, job in state.ends:
            if end > last:
                times.append(end)
                avail.append(avail[-1] + job.request)
                last = end
            else:
                avail[-1] = avail[-1] + job.request
        return cls(times, avail)

    def fit(self, req: Any, duration: float, k: int = 0) -> int:
        """Index of the earliest step, from step `k` on, at whose start `req` fits for
        `duration`; -1 if there is none.

        A zero duration needs `req` free at the start instant only.
        """
        times = self.times
        avail = self.avail
        n = len(times)
        while True:
            while not req <= avail[k]:
                k += 1
                if k == n:
                    return -1
            end = times[k] + duration
            m = k + 1
            while m < n and times[m] < end:
                if not req <= avail[m]:
                    break
                m += 1
            else:
                return k
            k = m + 1
            if k == n:
                return -1

    def reserve(self, k: int, duration: float, req: Any) -> None:
        """Take `req` during [times[k], times[k] + duration)."""
        if duration <= 0:
            return
        times = self.times
        avail = self.avail
        end = times[k] + duration
        e = bisect_left(times, end, k + 1)
        if e == len(times) or times[e] != end:
            times.insert(e, end)
            avail.insert(e, avail[e - 1])
        if e - k == 1:
            avail[k] = avail[k] - req
        else:
            avail[k:e] = map(sub, avail[k:e], repeat(req, e - k))


class IntProfile(Profile):
    """A `Profile` of plain numbers, checking windows with C-level `min` over slices.

    Same results as `Profile`; `min` needs a total order, which vectors do not have.
    """

    __slots__ = ()

    def fit(self, req: Any, duration: float, k: int = 0) -> int:
        times = self.times
        avail = self.avail
        n = len(times)
        while True:
            while avail[k] < req:
                k += 1
                if k == n:
                    return -1
            start = times[k]
            m = bisect_left(times, start + duration, k + 1)
            if min(avail[k:m]) >= req:
                return k
            # Every start up to the last blocked step in the window overlaps it.
            m -= 1
            while avail[m] >= req:
                m -= 1
            k = m + 1
            if k >= n:
                return -1


def profile_of_running(state: ClusterState, now: float) -> Profile:
    """`Profile.of_running`, as an `IntProfile` when amounts are plain numbers."""
    base = Profile.of_running(state, now)
    if isinstance(state.zero, int | float):
        return IntProfile(base.times, base.avail)
    return base


def estimate_start(state: ClusterState, request: Any, estimate: float, now: float) -> float:
    """Earliest time >= `now` a new job with `request` would start if submitted now.

    Plans like conservative backfilling: running jobs hold their resources until their
    estimated ends, each queued job (in queue order) takes the earliest slot that fits
    for its whole estimate, then the new job takes the earliest slot after them.
    Returns infinity if `request` exceeds the capacity.
    """
    if not request <= state.capacity:
        return float("inf")
    profile = profile_of_running(state, now)
    fit = profile.fit
    reserve = profile.reserve
    for job in state.queue:
        k = fit(job.request, job.estimate)
        if k >= 0:
            reserve(k, job.estimate, job.request)
    k = fit(request, estimate)
    return profile.times[k] if k >= 0 else float("inf")
