"""Placement policies over Sites, with ints and with Tres."""

from __future__ import annotations

import math

from lightgrid.core.placement import PLACEMENTS, Site, placement_by_name
from lightgrid.core.resources import ZERO, Tres
from lightgrid.core.scheduling import ClusterState, SchedJob


def _sites():
    busy = ClusterState(10, 0)
    busy.start(SchedJob("r", 0, 8, 100), 0)
    idle = ClusterState(10, 0)
    small = ClusterState(2, 0)
    return [Site("busy", busy, price=1.0), Site("idle", idle, price=3.0, delay=50),
            Site("small", small, price=0.5)]


def test_every_placement_is_registered():
    assert set(PLACEMENTS) == {"home", "least-loaded", "earliest-start", "cheapest"}


def test_home_stays_unless_the_job_can_never_fit_there():
    sites = _sites()
    home = placement_by_name("home")
    assert home.choose(SchedJob(1, 0, 4, 10), 0, sites, 0) == 0
    assert home.choose(SchedJob(1, 0, 4, 10), 2, sites, 0) == 0  # small never fits 4
    assert home.choose(SchedJob(1, 0, 40, 10), 0, sites, 0) == -1


def test_earliest_start_accounts_for_the_transfer_delay():
    sites = _sites()
    es = placement_by_name("earliest-start")
    assert es.choose(SchedJob(1, 0, 4, 10), 0, sites, 0) == 1  # 50 beats 100
    sites[1].delay = 200
    assert es.choose(SchedJob(1, 0, 4, 10), 0, sites, 0) == 0  # 100 beats 200
    assert sites[0].start_estimate(SchedJob(1, 0, 2, 10), 0, moved=False) == 0


def test_ties_prefer_home():
    sites = _sites()
    es = placement_by_name("earliest-start")
    assert es.choose(SchedJob(1, 0, 1, 10), 2, sites, 0) == 2  # starts now at all three


def test_cheapest_and_least_loaded():
    sites = _sites()
    assert placement_by_name("cheapest").choose(SchedJob(1, 0, 2, 10), 0, sites, 0) == 2
    assert placement_by_name("cheapest").choose(SchedJob(1, 0, 4, 10), 2, sites, 0) == 0
    assert placement_by_name("least-loaded").choose(SchedJob(1, 0, 2, 10), 0, sites, 0) == 1


def test_placement_works_with_tres():
    a = ClusterState(Tres(8, 100, 0, 0), ZERO)
    b = ClusterState(Tres(8, 100, 4, 0), ZERO)
    sites = [Site("cpu", a), Site("gpu", b)]
    job = SchedJob("g", 0, Tres(2, 10, 1, 0), 60)
    assert placement_by_name("earliest-start").choose(job, 0, sites, 0) == 1
    assert math.isinf(sites[0].start_estimate(job, 0, moved=False))
    assert placement_by_name("least-loaded").choose(job, 0, sites, 0) == 1
