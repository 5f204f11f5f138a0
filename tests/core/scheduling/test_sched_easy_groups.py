"""EASY's grouped backfill scan against a plain job-by-job pass, on random histories."""

from __future__ import annotations

import random

import pytest

from lightgrid.core.resources import ZERO, Tres
from lightgrid.core.scheduling import EASY, ClusterState, SchedJob, easy, shadow_and_extra


def plain_easy(state: ClusterState, now: float) -> list[SchedJob]:
    """EASY from scratch: FCFS, then one scan of every later job."""
    free = state.free
    started: list[SchedJob] = []
    queue = list(state.queue)
    i = 0
    while i < len(queue) and queue[i].request <= free:
        free = free - queue[i].request
        started.append(queue[i])
        i += 1
    for job in started:
        state.start(job, now)
    if i < len(queue) and free != state.zero:
        shadow, extra = shadow_and_extra(state, queue[i].request, now)
        for job in queue[i + 1:]:
            if job.request <= free:
                if now + job.estimate <= shadow:
                    pass
                elif job.request <= extra:
                    extra = extra - job.request
                else:
                    continue
                free = free - job.request
                state.start(job, now)
                started.append(job)
                if free == state.zero:
                    break
    state.queue[:] = [j for j in state.queue if j.start is None]
    return started


def _history(seed: int, tres: bool) -> list[tuple]:
    rng = random.Random(seed)
    sizes = [1, 2, 3, 5, 8]
    ests = [5, 10, 40]
    ops: list[tuple] = []
    for step in range(120):
        ops.append(("tick", step * 3))
        for _ in range(rng.randrange(4)):
            size = rng.choice(sizes)
            req = Tres(size, 100 * rng.choice([1, 2]), rng.choice([0, 0, 1]), 0) if tres \
                else size
            # Mostly appended; sometimes submitted in the past (an out-of-order add).
            submit = step * 3 - (rng.randrange(10) if rng.random() < 0.1 else 0)
            ops.append(("add", submit, req, rng.choice(ests)))
        if rng.random() < 0.05:
            ops.append(("remove", rng.random()))
    return ops


def _run(ops: list[tuple], tres: bool, policy: object) -> list[tuple]:
    cap = Tres(12, 1000, 2, 0) if tres else 12
    state = ClusterState(cap, ZERO if tres else 0)
    rng = random.Random(7)
    log: list[tuple] = []
    key = 0
    for op in ops:
        if op[0] == "add":
            key += 1
            state.add(SchedJob(key, op[1], op[2], op[3]))
        elif op[0] == "remove":
            if state.queue:
                state.remove(state.queue[int(op[1] * len(state.queue))])
        else:
            now = op[1]
            for job in [j for j in state.running
                        if j.start + rng.choice([j.estimate, j.estimate // 2]) <= now]:
                state.finish(job, now)
            started = (policy.schedule(state, now) if isinstance(policy, EASY)
                       else plain_easy(state, now))
            log.append((now, [j.key for j in started]))
    return log


@pytest.mark.parametrize("grouped", [1, 8, easy.GROUPED])
@pytest.mark.parametrize("tres", [False, True])
@pytest.mark.parametrize("seed", range(6))
def test_grouped_scan_starts_what_a_plain_scan_starts(seed, tres, grouped, monkeypatch):
    monkeypatch.setattr(easy, "GROUPED", grouped)
    ops = _history(seed, tres)
    assert _run(ops, tres, EASY()) == _run(ops, tres, None)
