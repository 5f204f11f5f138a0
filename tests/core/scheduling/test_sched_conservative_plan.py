"""Conservative's kept plan against a plain plan from scratch, on random histories."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightgrid.core.resources import ZERO, Tres
from lightgrid.core.scheduling import ClusterState, Conservative, SchedJob, SchedulingPolicy
from lightgrid.core.scheduling import plan as plan_module
from lightgrid.sim.engine import simulate
from lightgrid.sim.swf import SimJob


def plain_pass(state: ClusterState, now: float) -> list[SchedJob]:
    """One conservative pass written out plainly: every reservation is a (start, end,
    amount) triple and free amounts are summed afresh at every point looked at."""
    booked: list[tuple[float, float, Any]] = [
        (now, job.start + job.estimate, job.request) for job in state.running
        if job.start is not None and job.start + job.estimate > now]

    def free_at(x: float) -> Any:
        free = state.capacity
        for start, end, amount in booked:
            if start <= x < end:
                free = free - amount
        return free

    def fits(x: float, dur: float, req: Any) -> bool:
        points = [x] + [s for s, _e, _a in booked if x < s < x + dur]
        return all(req <= free_at(y) for y in points)

    started = []
    for job in list(state.queue):
        # Free amounts only grow at ends, so the earliest fit is now or at an end.
        for x in sorted({now} | {end for _s, end, _a in booked if end > now}):
            if fits(x, job.estimate, job.request):
                break
        else:
            continue  # larger than the machine
        if job.estimate > 0:
            booked.append((x, x + job.estimate, job.request))
        if x == now:
            started.append(job)
    for job in started:
        state.queue.remove(job)
        state.start(job, now)
    return started


class PlainConservative(SchedulingPolicy):
    name = "plain-conservative"

    def schedule(self, state: ClusterState, now: float) -> list[SchedJob]:
        state.fresh = 0
        return plain_pass(state, now)


# The kept plan in bytearrays (machines up to 255 units) or, with no machine small
# enough for bytes, in lists.
LAYOUTS = pytest.mark.parametrize("byte_limit", [plan_module.BYTE_LIMIT, 0],
                                  ids=["bytes", "lists"])


# (gap to the previous submit, procs, estimate, run time): gaps of 0 give equal
# timestamps, run times of 0 jobs that end the instant they start, run times below the
# estimate early ends; estimates of 0 reserve nothing.
trace_rows = st.lists(st.tuples(st.integers(0, 12), st.integers(1, 10), st.integers(0, 30),
                                st.integers(0, 30)), min_size=1, max_size=30)


def run(rows: list[tuple[int, int, int, int]], procs: int,
        policy: SchedulingPolicy) -> dict[int, tuple[int, int]]:
    jobs = []
    t = 0
    for i, (gap, p, est, runtime) in enumerate(rows):
        t += gap
        jobs.append(SimJob(i, t, min(runtime, est), min(p, procs), est, 0, 0))
    got: dict[int, tuple[int, int]] = {}
    simulate(jobs, procs, policy, on_job=lambda i, s, st, e, p: got.__setitem__(i, (st, e)))
    return got


@LAYOUTS
@settings(max_examples=300, deadline=None)
@given(rows=trace_rows, procs=st.sampled_from([1, 4, 10]))
def test_simulation_matches_planning_from_scratch(byte_limit, rows, procs):
    with patch.object(plan_module, "BYTE_LIMIT", byte_limit):
        assert run(rows, procs, Conservative()) == run(rows, procs, PlainConservative())


# Operations on a cluster between passes, as the embedded backend may do them.
ops = st.lists(st.one_of(
    st.tuples(st.just("tick"), st.integers(0, 8)),
    st.tuples(st.just("add"), st.integers(1, 12), st.integers(0, 20), st.booleans()),
    st.tuples(st.just("finish"), st.integers(0, 7)),
    st.tuples(st.just("remove"), st.integers(0, 7)),
    st.tuples(st.just("adopt"), st.integers(1, 4), st.integers(0, 20)),
    st.tuples(st.just("pass"),),
), min_size=1, max_size=60)


def replay(history: list[tuple[Any, ...]], capacity: Any, amount: Any) -> None:
    """Apply `history` to two clusters, one scheduled by `Conservative` and one by the
    plain pass, and compare what starts at every pass."""
    fast, plain = ClusterState(capacity, amount(0)), ClusterState(capacity, amount(0))
    policy, reference = Conservative(), PlainConservative()
    jobs: dict[int, tuple[SchedJob, SchedJob]] = {}
    now = 0
    for op in history:
        kind = op[0]
        if kind == "tick":
            now += op[1]
        elif kind == "add":
            _, procs, est, late = op
            key = len(jobs)
            # A late job is queued as if submitted before the others (out of order).
            submit = now - 1 if late and now > 0 else now
            pair = (SchedJob(key, submit, amount(procs), est),
                    SchedJob(key, submit, amount(procs), est))
            jobs[key] = pair
            fast.add(pair[0])
            plain.add(pair[1])
        elif kind == "finish":
            running = sorted(j.key for j in fast.running)
            if running:
                key = running[op[1] % len(running)]
                fast.finish(jobs[key][0], now)
                plain.finish(jobs[key][1], now)
        elif kind == "remove":
            if fast.queue:
                key = fast.queue[op[1] % len(fast.queue)].key
                fast.remove(jobs[key][0])
                plain.remove(jobs[key][1])
        elif kind == "adopt":
            # A job found running (e.g. after a restart), started from outside.
            _, procs, est = op
            if amount(procs) <= fast.free:
                key = len(jobs)
                pair = (SchedJob(key, now, amount(procs), est),
                        SchedJob(key, now, amount(procs), est))
                jobs[key] = pair
                fast.start(pair[0], now)
                plain.start(pair[1], now)
        else:
            got = [j.key for j in policy.schedule(fast, now)]
            want = [j.key for j in reference.schedule(plain, now)]
            assert got == want, f"at {now}"
            assert [j.key for j in fast.queue] == [j.key for j in plain.queue]


@LAYOUTS
@settings(max_examples=300, deadline=None)
@given(history=ops, capacity=st.sampled_from([6, 12]))
def test_cluster_histories_match_planning_from_scratch(byte_limit, history, capacity):
    with patch.object(plan_module, "BYTE_LIMIT", byte_limit):
        replay(history, capacity, int)


@settings(max_examples=100, deadline=None)
@given(history=ops)
def test_resource_vectors_plan_from_scratch_alike(history):
    def cpus(n: int) -> Tres:
        return Tres(n, 100 * n, n % 2, 0) if n else ZERO
    replay(history, Tres(12, 1200, 3, 0), cpus)


@LAYOUTS
@pytest.mark.parametrize("history", [
    # 1 is planned at 10 (the walk passes it to start 2), but no pass happens at 10.
    [("adopt", 4, 10), ("add", 10, 5, False), ("add", 2, 3, False), ("pass",), ("tick", 3),
     ("finish", 1), ("tick", 7), ("finish", 0), ("tick", 2), ("pass",)],
    # A running job outlives its estimate: it counts as ending now.
    [("adopt", 10, 10), ("add", 10, 5, False), ("pass",), ("tick", 12), ("pass",)],
    # A job with estimate 0 planned at 10 loses its room to a job backfilled at 9.
    [("adopt", 4, 10), ("add", 10, 0, False), ("pass",), ("tick", 9), ("add", 2, 3, False),
     ("pass",), ("tick", 1), ("finish", 0), ("pass",)],
], ids=["missed-start", "overdue", "estimate-0"])
def test_histories_worked_out(byte_limit, history):
    with patch.object(plan_module, "BYTE_LIMIT", byte_limit):
        replay(history, 10, int)
