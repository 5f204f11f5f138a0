"""Aggregate metrics of a simulated schedule, accumulated as jobs complete."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Metrics:
    """Running sums over completed jobs; `summary` turns them into the reported figures.

    wait = start - submit; bounded slowdown = max(1, (wait + runtime) / max(runtime, 10));
    utilization = sum(procs x runtime) / (procs of the machine x (last end - first
    submit)); makespan = last end - first submit.
    """

    procs: int
    jobs: int = 0
    skipped: int = 0
    moved: int = 0
    sum_wait: float = 0.0
    max_wait: float = 0.0
    sum_bsld: float = 0.0
    area: float = 0.0
    first_submit: float | None = None
    last_end: float | None = None

    def add(self, submit: float, start: float, end: float, procs: int) -> None:
        """Account one completed job."""
        wait = start - submit
        run = end - start
        self.jobs += 1
        self.sum_wait += wait
        if wait > self.max_wait:
            self.max_wait = wait
        bsld = (wait + run) / (run if run > 10 else 10)
        self.sum_bsld += bsld if bsld > 1 else 1.0
        self.area += procs * run
        if self.first_submit is None or submit < self.first_submit:
            self.first_submit = submit
        if self.last_end is None or end > self.last_end:
            self.last_end = end

    def merge(self, other: Metrics) -> None:
        """Fold another center's sums into these (for network-wide figures)."""
        self.jobs += other.jobs
        self.skipped += other.skipped
        self.moved += other.moved
        self.sum_wait += other.sum_wait
        self.max_wait = max(self.max_wait, other.max_wait)
        self.sum_bsld += other.sum_bsld
        self.area += other.area
        for attr, pick in (("first_submit", min), ("last_end", max)):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            if theirs is not None:
                setattr(self, attr, theirs if mine is None else pick(mine, theirs))

    def summary(self) -> dict[str, Any]:
        """The reported aggregates (keys of ``lightgrid sim --json``)."""
        span = (self.last_end - self.first_submit
                if self.first_submit is not None and self.last_end is not None else 0)
        n = self.jobs
        return {
            "jobs": n,
            "skipped": self.skipped,
            "mean_wait": self.sum_wait / n if n else 0.0,
            "mean_bsld": self.sum_bsld / n if n else 0.0,
            "max_wait": self.max_wait,
            "utilization": self.area / (self.procs * span) if span > 0 else 0.0,
            "makespan": span,
        }
