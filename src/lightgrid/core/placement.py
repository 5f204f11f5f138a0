"""Placement policies: which center of a network runs a job.

Pure core: a policy sees each candidate center through a `Site` (its scheduler state,
price and the transfer delay a move there costs) and returns an index. The simulator
and the national network broker both use these.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from lightgrid.core.scheduling import ClusterState, SchedJob, estimate_start


def _size(amount: Any) -> float:
    return float(amount if isinstance(amount, int | float) else amount.cpu)


@dataclass
class Site:
    """A candidate center as a placement policy sees it.

    `price` is per unit of size (processors, or cpus of a `Tres`) per second; `delay`
    is the data-transfer time before a job moved here can be queued.
    """

    name: str
    state: ClusterState
    price: float = 0.0
    delay: float = 0.0

    def fits(self, request: Any) -> bool:
        return bool(request <= self.state.capacity)

    def start_estimate(self, job: SchedJob, now: float, moved: bool) -> float:
        """When `job` would start here if submitted now (after the delay if moved)."""
        at = now + self.delay if moved else now
        return estimate_start(self.state, job.request, job.estimate, at)


class PlacementPolicy(ABC):
    """Chooses the center for a job; ties go to the home center, then the lowest index."""

    name: ClassVar[str]

    def __init__(self, size: Callable[[Any], float] = _size) -> None:
        self.size = size

    @abstractmethod
    def score(self, job: SchedJob, site: Site, now: float, moved: bool) -> float:
        """Lower is better."""

    def choose(self, job: SchedJob, home: int, sites: Sequence[Site], now: float) -> int:
        """Index of the site to run `job`; -1 if no site can ever fit it."""
        best = -1
        best_score = 0.0
        order = [home, *(i for i in range(len(sites)) if i != home)]
        for i in order:
            site = sites[i]
            if not site.fits(job.request):
                continue
            s = self.score(job, site, now, i != home)
            if best < 0 or s < best_score:
                best, best_score = i, s
        return best


class Home(PlacementPolicy):
    """No federation: the home center, or the first that fits if home never can."""

    name = "home"

    def score(self, job: SchedJob, site: Site, now: float, moved: bool) -> float:
        return 1.0 if moved else 0.0


class LeastLoaded(PlacementPolicy):
    """The center with the least work per unit of capacity (running plus queued size)."""

    name = "least-loaded"

    def score(self, job: SchedJob, site: Site, now: float, moved: bool) -> float:
        state = site.state
        size = self.size
        busy = size(state.capacity) - size(state.free)
        queued = sum(size(j.request) for j in state.queue)
        return (busy + queued) / size(state.capacity)


class EarliestStart(PlacementPolicy):
    """The center where the job would start first (like Slurm's ``will_run``)."""

    name = "earliest-start"

    def score(self, job: SchedJob, site: Site, now: float, moved: bool) -> float:
        return site.start_estimate(job, now, moved)


class Cheapest(PlacementPolicy):
    """The center where the job costs least (price x size x estimate)."""

    name = "cheapest"

    def score(self, job: SchedJob, site: Site, now: float, moved: bool) -> float:
        return site.price * self.size(job.request) * job.estimate


PLACEMENTS: dict[str, type[PlacementPolicy]] = {
    p.name: p for p in (Home, LeastLoaded, EarliestStart, Cheapest)}


def placement_by_name(name: str) -> PlacementPolicy:
    """Build a placement policy: "home", "least-loaded", "earliest-start", "cheapest"."""
    try:
        return PLACEMENTS[name.lower()]()
    except KeyError:
        raise ValueError(f"unknown placement {name!r}; choose one of "
                         f"{', '.join(PLACEMENTS)}") from None
