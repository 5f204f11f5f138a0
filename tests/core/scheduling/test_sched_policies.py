"""The policies driven directly through ClusterState, with ints and with Tres."""

from __future__ import annotations

import pytest

from lightgrid.core.resources import ZERO, Tres
from lightgrid.core.scheduling import (
    EASY,
    F1,
    FCFS,
    SJF,
    WFP3,
    ClusterState,
    Conservative,
    SchedJob,
    policy_by_name,
)


def keys(jobs):
    return [j.key for j in jobs]


@pytest.mark.parametrize("name", ["fcfs", "easy", "conservative"])
def test_registry_builds_each_policy(name):
    p = policy_by_name(name)
    assert p.name == name
    assert isinstance(policy_by_name(name.upper(), "sjf").order, SJF)


def test_registry_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown policy"):
        policy_by_name("lottery")
    with pytest.raises(ValueError, match="unknown queue order"):
        policy_by_name("easy", "random")


def _tres_state():
    # 2 GPUs in total: GPU jobs queue behind each other even when CPUs are free.
    s = ClusterState(Tres(16, 64000, 2, 0), ZERO)
    running = SchedJob("r", 0, Tres(2, 1000, 2, 0), 100)
    s.start(running, 0)
    s.add(SchedJob("gpu", 1, Tres(2, 1000, 1, 0), 50))
    s.add(SchedJob("cpu-long", 2, Tres(8, 8000, 0, 0), 500))
    s.add(SchedJob("cpu-short", 3, Tres(4, 4000, 0, 0), 10))
    return s


@pytest.mark.parametrize(("policy", "expected"), [
    (FCFS(), []),
    # Head "gpu" is reserved at 100 with extra cpu 14 / gpu 1; both CPU jobs fit it.
    (EASY(), ["cpu-long", "cpu-short"]),
    (Conservative(), ["cpu-long", "cpu-short"]),
])
def test_policies_work_on_tres_vectors(policy, expected):
    s = _tres_state()
    assert keys(policy.schedule(s, 5)) == expected
    assert [j.key for j in s.queue] == ["gpu", *(["cpu-long", "cpu-short"] if not expected
                                                  else [])]


def test_conservative_protects_every_reservation_with_tres():
    s = ClusterState(Tres(10, 100, 0, 0), ZERO)
    s.start(SchedJob("r", 0, Tres(7, 10, 0, 0), 10), 0)
    for k, (cpu, est) in enumerate([(5, 10), (8, 10), (3, 25)]):
        s.add(SchedJob(k, 0, Tres(cpu, 10, 0, 0), est))
    # Same shape as the hand-worked int trace: job 2 would overlap job 1's slot.
    assert keys(Conservative().schedule(s, 0)) == []
    assert keys(EASY().schedule(_copy(s), 0)) == [2]


def _copy(state):
    c = ClusterState(state.capacity, state.zero)
    for entry in state.ends:
        job = entry[2]
        c.start(SchedJob(job.key, job.submit, job.request, job.estimate), job.start)
    for job in state.queue:
        c.add(SchedJob(job.key, job.submit, job.request, job.estimate))
    return c


def test_overrunning_job_counts_as_ending_now():
    # In the backend a job may outlive its estimate while being killed.
    s = ClusterState(10, 0)
    s.start(SchedJob("late", 0, 6, 10), 0)
    s.add(SchedJob("head", 1, 8, 10))
    s.add(SchedJob("small", 2, 4, 100))
    # At 50 "late" should have ended at 10: the head's shadow is now (50), extra 2.
    assert keys(EASY().schedule(s, 50)) == []
    s2 = ClusterState(10, 0)
    s2.start(SchedJob("late", 0, 6, 10), 0)
    s2.add(SchedJob("head", 1, 8, 10))
    s2.add(SchedJob("tiny", 2, 2, 100))
    assert keys(EASY().schedule(s2, 50)) == ["tiny"]


def test_easy_reuses_its_pass_only_while_nothing_changed():
    s = ClusterState(10, 0)
    pol = EASY()
    s.add(SchedJob(1, 0, 6, 10))
    s.add(SchedJob(2, 0, 8, 10))
    assert keys(pol.schedule(s, 0)) == [1]
    # Head 2 is reserved at 10 with extra 10 - 8 = 2. Only new jobs are scanned now.
    s.add(SchedJob(3, 1, 2, 5))  # ends by the shadow: starts
    s.add(SchedJob(4, 1, 2, 50))  # uses the extra: starts
    s.add(SchedJob(5, 1, 1, 50))  # nothing free is left
    assert keys(pol.schedule(s, 1)) == [3, 4]
    s.add(SchedJob(6, 2, 1, 1))
    assert keys(pol.schedule(s, 2)) == []  # still nothing free
    three = next(j for j in s.running if j.key == 3)
    s.finish(three, 4)  # ends early: a full pass; 6 ends by the shadow, 5 has no extra
    assert keys(pol.schedule(s, 4)) == [6]


def test_conservative_cancellation_lets_later_jobs_move_up():
    s = ClusterState(10, 0)
    pol = Conservative()
    s.start(SchedJob("r", 0, 10, 10), 0)
    a, b = SchedJob("a", 1, 10, 100), SchedJob("b", 2, 10, 5)
    s.add(a)
    s.add(b)
    assert pol.schedule(s, 1) == []
    s.remove(a)
    s.finish(s.running[0], 10)
    assert keys(pol.schedule(s, 10)) == ["b"]


@pytest.mark.parametrize(("order", "submit", "first"), [
    (SJF(), 995, "short"),
    (WFP3(), 995, "big-old"),  # (1000/1000)^3 * 4 beats (5/10)^3 * 4
    (WFP3(), 900, "short"),  # (100/10)^3 * 4 beats (1000/1000)^3 * 4
    (F1(), 995, "big-old"),  # the submit-time term dominates
])
def test_priority_orders_reorder_the_queue(order, submit, first):
    s = ClusterState(4, 0)
    s.add(SchedJob("big-old", 0, 4, 1000))
    s.add(SchedJob("short", submit, 4, 10))
    started = FCFS(order).schedule(s, 1000)
    assert keys(started) == [first]
    assert len(s.queue) == 1
