"""Hand-worked schedules: every policy and the tie rules of the model."""

from __future__ import annotations

import pytest

from lightgrid.core.scheduling import policy_by_name
from lightgrid.sim.engine import simulate_trace


def starts(path, policy: str, **kw) -> dict[int, int]:
    got: dict[int, int] = {}
    simulate_trace(str(path), policy_by_name(policy),
                   on_job=lambda i, s, st, e, p: got.__setitem__(i, st), **kw)
    return got


# P=10, all submitted at 0, run = estimate:
#   1: 7 procs, 10 s   2: 5 procs, 10 s   3: 8 procs, 10 s   4: 3 procs, 25 s
# FCFS: 2 waits for 1, 3 for 2, 4 for 3.
# EASY: 2 (head) is reserved at 10 with 10 - 5 = 5 extra; 4 exceeds the shadow but fits
#   in the extra, so it starts at 0 and delays 3 (not protected) to 25.
# Conservative: 3 is reserved at 20, and 4 would overlap it, so 4 waits until 30.
DISCRIMINATING = [(1, 0, 10, 7, 10), (2, 0, 10, 5, 10), (3, 0, 10, 8, 10),
                  (4, 0, 25, 3, 25)]


@pytest.mark.parametrize(("policy", "expected"), [
    ("fcfs", {1: 0, 2: 10, 3: 20, 4: 30}),
    ("easy", {1: 0, 4: 0, 2: 10, 3: 25}),
    ("conservative", {1: 0, 2: 10, 3: 20, 4: 30}),
])
def test_policies_differ_as_worked_out(write_swf, policy, expected):
    assert starts(write_swf(10, DISCRIMINATING), policy) == expected


def test_fcfs_stops_at_first_job_that_does_not_fit(write_swf):
    # 2 needs 6 of the 4 free, so 3 (which fits) waits behind it.
    path = write_swf(10, [(1, 0, 10, 6, 10), (2, 0, 5, 6, 5), (3, 1, 2, 2, 2)])
    assert starts(path, "fcfs") == {1: 0, 2: 10, 3: 10}


def test_easy_backfills_a_job_ending_before_the_shadow(write_swf):
    path = write_swf(10, [(1, 0, 10, 6, 10), (2, 0, 5, 6, 5), (3, 1, 2, 2, 2)])
    assert starts(path, "easy") == {1: 0, 2: 10, 3: 1}


def test_easy_extra_rule_uses_and_consumes_the_extra(write_swf):
    # Head 2 needs 8: shadow 10, extra 2. Job 3 (20 s) takes the extra; job 4 (20 s)
    # then finds none; job 5 ends by the shadow and takes the last 2 free.
    path = write_swf(10, [(1, 0, 10, 6, 10), (2, 0, 5, 8, 5), (3, 0, 20, 2, 20),
                          (4, 0, 20, 1, 20), (5, 0, 5, 2, 5)])
    assert starts(path, "easy") == {1: 0, 3: 0, 5: 0, 2: 10, 4: 15}


def test_easy_extra_counts_every_job_ending_at_the_shadow(write_swf):
    # 1 and 2 both end at 10: free then is 2 + 4 + 4 = 10, extra 10 - 5 = 5, so the
    # long job 4 (2 procs) may start now; counting only one of them would give 1.
    path = write_swf(10, [(1, 0, 10, 4, 10), (2, 0, 10, 4, 10), (3, 0, 5, 5, 5),
                          (4, 0, 100, 2, 100)])
    assert starts(path, "easy") == {1: 0, 2: 0, 4: 0, 3: 10}


def test_conservative_backfills_into_holes_and_starts_reservations_on_time(write_swf):
    # 2 is reserved at 10; 3 fits the hole [0, 5); 4 (20 s) only after 2, at 20;
    # 5 fits the hole [5, 10) left when 3 ends.
    path = write_swf(10, [(1, 0, 10, 5, 10), (2, 0, 10, 10, 10), (3, 0, 5, 5, 5),
                          (4, 0, 20, 5, 20), (5, 0, 5, 5, 5)])
    assert starts(path, "conservative") == {1: 0, 3: 0, 5: 5, 2: 10, 4: 20}


def test_conservative_moves_a_zero_estimate_job_when_its_room_is_taken(write_swf):
    # P=4. 1 (1 proc, 5 s) runs [0, 5). 2 (4 procs, estimate 0) needs all 4 free at its
    # start instant only: planned at 5, it reserves nothing. 3 (1 proc, 2 s) arrives at
    # 4 and fits [4, 6) at once. At 5, planning from scratch sees 3 running: 2 waits
    # until 6 (it does not start at 5 as planned at 4).
    path = write_swf(4, [(1, 0, 5, 1, 5), (2, 0, 0, 4, 0), (3, 4, 2, 1, 2)])
    assert starts(path, "conservative") == {1: 0, 3: 4, 2: 6}


@pytest.mark.parametrize("policy", ["fcfs", "easy", "conservative"])
def test_early_completion_lets_the_queue_move_up(write_swf, policy):
    # 1 is estimated at 10 s but ends at 3: 2 starts then, not at 10.
    path = write_swf(10, [(1, 0, 3, 10, 10), (2, 1, 5, 10, 5)])
    assert starts(path, policy) == {1: 0, 2: 3}


@pytest.mark.parametrize("policy", ["fcfs", "easy", "conservative"])
def test_completions_before_arrivals_and_queue_by_submit_then_id(write_swf, policy):
    # 1 ends at 10 when 4 arrives; 3 (submit 5) and 2 (submit 5, listed after 3) were
    # waiting: the queue order is (submit, id), so 2, then 3, then 4.
    path = write_swf(10, [(1, 0, 10, 10, 10), (3, 5, 5, 10, 5), (2, 5, 5, 10, 5),
                          (4, 10, 1, 10, 1)])
    assert starts(path, policy) == {1: 0, 2: 10, 3: 15, 4: 20}


@pytest.mark.parametrize("policy", ["fcfs", "easy", "conservative"])
def test_zero_runtime_job_completes_in_a_further_step(write_swf, policy):
    # 1 runs 0 s (estimate 100) and holds all 10 processors for the pass at 0; its
    # completion is a further step at 0, whose pass starts 2 at 0, not at 100.
    path = write_swf(10, [(1, 0, 0, 10, 100), (2, 0, 10, 10, 10)])
    steps: list[tuple[int, int, int]] = []
    got: dict[int, int] = {}
    simulate_trace(str(path), policy_by_name(policy),
                   on_job=lambda i, s, st, e, p: got.__setitem__(i, st),
                   on_step=lambda t, busy, q: steps.append((t, busy, q)))
    assert got == {1: 0, 2: 0}
    assert steps[:2] == [(0, 10, 1), (0, 10, 0)]


def test_job_is_killed_at_its_estimate(write_swf):
    ends: dict[int, int] = {}
    path = write_swf(10, [(1, 0, 50, 4, 20)])
    simulate_trace(str(path), policy_by_name("easy"),
                   on_job=lambda i, s, st, e, p: ends.__setitem__(i, e))
    assert ends == {1: 20}


def test_skipped_jobs_and_limit(write_swf):
    path = write_swf(10, [(1, 0, -1, 2, 5), (2, 0, 5, 0, 5), (3, 0, 5, 11, 5),
                          (4, 0, 5, 2, 5), (5, 1, 5, 2, 5)])
    m = simulate_trace(str(path), policy_by_name("fcfs"))
    assert (m.jobs, m.skipped) == (2, 3)
    m = simulate_trace(str(path), policy_by_name("fcfs"), limit=4)
    assert (m.jobs, m.skipped) == (1, 3)
    m = simulate_trace(str(path), policy_by_name("fcfs"), procs=11)
    assert (m.jobs, m.skipped) == (3, 2)


def test_metrics_follow_their_definitions(write_swf):
    # FCFS on P=10: 1 runs [0, 100) on 10; 2 (submitted 10, runs 5) waits 90.
    path = write_swf(10, [(1, 0, 100, 10, 100), (2, 10, 5, 5, 5)])
    s = simulate_trace(str(path), policy_by_name("fcfs")).summary()
    assert s["jobs"] == 2
    assert s["mean_wait"] == 45
    assert s["max_wait"] == 90
    # bsld: job 1 = 1; job 2 = (90 + 5) / max(5, 10) = 9.5
    assert s["mean_bsld"] == pytest.approx((1 + 9.5) / 2)
    assert s["makespan"] == 105
    assert s["utilization"] == pytest.approx((10 * 100 + 5 * 5) / (10 * 105))


def test_unsorted_trace_is_sorted_and_rerun(write_swf):
    path = write_swf(10, [(1, 0, 10, 10, 10), (2, 20, 5, 10, 5), (3, 5, 5, 10, 5)])
    restarts: list[int] = []
    got = {}
    simulate_trace(str(path), policy_by_name("fcfs"), on_restart=lambda: restarts.append(1),
                   on_job=lambda i, s, st, e, p: got.__setitem__(i, st))
    assert restarts == [1]
    assert got == {1: 0, 3: 10, 2: 20}
