"""ClusterState: queue order, removal, finishing, and the counters policies rely on."""

from __future__ import annotations

import pytest

from lightgrid.core.resources import ZERO, Tres
from lightgrid.core.scheduling import ClusterState, SchedJob


def job(key, submit=0, req=1, est=10):
    return SchedJob(key, submit, req, est)


def test_queue_keeps_submit_then_key_order_for_late_adds():
    s = ClusterState(10, 0)
    for j in (job(1, 0), job(3, 5), job(5, 9)):
        s.add(j)
    assert s.fresh == 3
    epoch = s.epoch
    s.add(job(2, 5))  # e.g. a dependency satisfied late: goes before 3 (same submit)
    s.add(job(0, 0))
    assert [j.key for j in s.queue] == [0, 1, 2, 3, 5]
    assert s.epoch == epoch + 2  # out-of-order adds invalidate reuse


def test_start_finish_track_free_and_running_by_estimated_end():
    s = ClusterState(10, 0)
    a, b = job("a", req=4, est=30), job("b", req=3, est=10)
    s.start(a, 0)
    s.start(b, 5)
    assert s.free == 3
    assert [j.key for j in s.running] == ["b", "a"]
    reshape = s.reshape
    s.freed = []  # a policy collecting early ends
    s.finish(b, 15)  # on its estimate: the plan is unchanged
    assert s.reshape == reshape
    assert s.freed == []
    s.finish(a, 20)  # early: its 4 units were held until 30
    assert s.reshape == reshape + 1
    assert s.freed == [(30, 4)]
    assert s.free == 10 and not s.running


def test_early_ends_are_only_collected_on_request():
    s = ClusterState(10, 0)
    a = job("a", req=4, est=30)
    s.start(a, 0)
    assert s.started == 1  # started from outside a policy's pass
    s.finish(a, 5)
    assert s.freed is None


def test_remove_drops_a_pending_job():
    s = ClusterState(10, 0)
    a, b = job(1), job(2)
    s.add(a)
    s.add(b)
    s.remove(a)
    assert s.queue == [b]


def test_finish_of_a_job_not_running_is_an_error():
    s = ClusterState(10, 0)
    with pytest.raises(ValueError, match="not running"):
        s.finish(job(1), 0)


def test_works_with_tres_vectors():
    s = ClusterState(Tres(8, 1000, 2, 0), ZERO)
    j = SchedJob("x", 0, Tres(4, 500, 1, 0), 60)
    s.start(j, 0)
    assert s.free == Tres(4, 500, 1, 0)
    s.finish(j, 60)
    assert s.free == Tres(8, 1000, 2, 0)
