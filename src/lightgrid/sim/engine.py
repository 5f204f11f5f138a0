"""The event loop of a single-center simulation.

At each event time t: every completion at t frees its processors, then every arrival
at t joins the queue, then one scheduling pass runs. A job that ends when it starts
completes in a further step at the same t (completions, no arrivals, one pass).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from heapq import heappop, heappush
from typing import Any

from lightgrid.core.scheduling import ClusterState, SchedJob, SchedulingPolicy
from lightgrid.sim.metrics import Metrics
from lightgrid.sim.swf import SimJob

# Called once per completed job: (id, submit, start, end, procs).
JobSink = Callable[[int, int, int, int, int], None]
# Called once per event step: (t, busy processors, queue length).
StepSink = Callable[[int, int, int], None]


class UnsortedTrace(Exception):
    """The job stream went back in time; the caller should sort and retry."""


@dataclass
class Timeline:
    """Samples of (time, busy processors, queue length), one per event step."""

    times: list[int] = field(default_factory=list)
    busy: list[int] = field(default_factory=list)
    queued: list[int] = field(default_factory=list)

    def record(self, t: int, busy: int, queued: int) -> None:
        self.times.append(t)
        self.busy.append(busy)
        self.queued.append(queued)


def simulate(jobs: Iterable[SimJob], procs: int, policy: SchedulingPolicy,
             on_job: JobSink | None = None, on_step: StepSink | None = None,
             on_progress: Callable[[int], None] | None = None) -> Metrics:
    """Replay `jobs` (sorted by submit time) on `procs` processors under `policy`.

    Raises `UnsortedTrace` if a job arrives before an event already processed.
    `on_progress` is called with the number of completed jobs every 65,536 of them.
    """
    state = ClusterState(procs, 0)
    schedule = policy.schedule
    finish = state.finish
    add = state.add
    heap: list[tuple[Any, Any, SchedJob]] = []
    it = iter(jobs)
    nxt = next(it, None)
    n = 0
    sum_wait: Any = 0
    max_wait: Any = 0
    sum_bsld = 0.0
    area: Any = 0
    first_submit = nxt[1] if nxt is not None else 0
    last_end = first_submit
    last_t = None
    while True:
        if heap:
            t = heap[0][0]
            if nxt is not None and nxt[1] < t:
                t = nxt[1]
        elif nxt is not None:
            t = nxt[1]
        else:
            break
        if last_t is not None and t < last_t:
            raise UnsortedTrace(f"job {nxt[0] if nxt else '?'} arrives at {t}, "
                                f"before time {last_t}")
        last_t = t
        while heap and heap[0][0] == t:
            job = heappop(heap)[2]
            finish(job, t)
            start = job.start
            submit = job.submit
            wait: Any = start - submit  # type: ignore[operator]
            run: Any = t - start
            sum_wait += wait
            if wait > max_wait:
                max_wait = wait
            bsld = (wait + run) / (run if run > 10 else 10)
            sum_bsld += bsld if bsld > 1.0 else 1.0
            area += job.request * run
            n += 1
            if on_job is not None:
                on_job(job.key, submit, start, t, job.request)  # type: ignore[arg-type]
            if on_progress is not None and not n & 0xFFFF:
                on_progress(n)
        while nxt is not None and nxt[1] == t:
            add(SchedJob(nxt[0], t, nxt[3], nxt[4], nxt[2]))
            nxt = next(it, None)
        for job in schedule(state, t):
            heappush(heap, (t + job.runtime, job.key, job))
        if on_step is not None:
            on_step(t, procs - state.free, len(state.queue))
    if n:
        last_end = last_t  # type: ignore[assignment]
    metrics = Metrics(procs=procs, jobs=n, sum_wait=sum_wait, max_wait=max_wait,
                      sum_bsld=sum_bsld, area=area, first_submit=first_submit if n else None,
                      last_end=last_end if n else None)
    if state.queue:
        raise RuntimeError(f"{len(state.queue)} jobs never started")
    return metrics


def simulate_trace(path: str, policy: SchedulingPolicy, procs: int | None = None,
                   limit: int | None = None, on_restart: Callable[[], None] | None = None,
                   **sinks: Any) -> Metrics:
    """Read a SWF trace and simulate it.

    If the file turns out not to be sorted by submit time, the jobs are sorted in
    memory and the run starts over (`on_restart` is called first, so sinks can reset).
    """
    from lightgrid.sim.swf import iter_jobs, read_header

    machine = procs if procs is not None else read_header(path).processors()
    if machine <= 0:
        raise ValueError(f"{path}: the header gives no MaxProcs or MaxNodes; pass --procs")
    skipped = [0]
    try:
        metrics = simulate(iter_jobs(path, machine, limit, skipped), machine, policy,
                           **sinks)
    except UnsortedTrace:
        if on_restart is not None:
            on_restart()
        skipped = [0]
        jobs = sorted(iter_jobs(path, machine, limit, skipped), key=lambda j: (j[1], j[0]))
        metrics = simulate(jobs, machine, policy, **sinks)
    metrics.skipped = skipped[0]
    return metrics
