"""estimate_start: the conservative plan's start for a hypothetical new job."""

from __future__ import annotations

import math

from lightgrid.core.scheduling import ClusterState, SchedJob, estimate_start


def _state():
    # P=10; running: 6 procs until 10. Queued: 8 procs for 10 s, planned at [10, 20).
    s = ClusterState(10, 0)
    s.start(SchedJob("r", 0, 6, 10), 0)
    s.add(SchedJob("q", 0, 8, 10))
    return s


def test_fits_now_in_a_hole():
    assert estimate_start(_state(), 4, 5, 0) == 0


def test_waits_when_it_would_overlap_a_queued_reservation():
    # [0, 10) has 4 free but [10, 20) only 2: a 4-proc, 15 s job starts at 20.
    assert estimate_start(_state(), 4, 15, 0) == 20
    assert estimate_start(_state(), 2, 15, 0) == 0


def test_never_for_requests_beyond_capacity():
    assert math.isinf(estimate_start(_state(), 11, 1, 0))


def test_overdue_running_job_counts_as_ending_now():
    s = ClusterState(10, 0)
    s.start(SchedJob("r", 0, 10, 10), 0)
    assert estimate_start(s, 10, 5, 12) == 12


def test_does_not_change_the_state():
    s = _state()
    estimate_start(s, 4, 15, 0)
    assert [j.key for j in s.queue] == ["q"] and s.free == 4 and s.queue[0].start is None
