"""PNG plots of a simulated schedule: wait-time CDF, utilization and queue length."""

from __future__ import annotations

from array import array
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt


class Recorder:
    """Collects what the plots need while a simulation runs (sinks for the engine)."""

    def __init__(self) -> None:
        self.waits: array[int] = array("q")
        self.times: array[int] = array("q")
        self.busy: array[int] = array("q")
        self.queued: array[int] = array("q")

    def job(self, key: int, submit: int, start: int, end: int, procs: int,
            *_center: str) -> None:
        self.waits.append(start - submit)

    def step(self, t: int, busy: int, queued: int) -> None:
        if self.times and self.times[-1] == t:
            self.busy[-1] = busy
            self.queued[-1] = queued
            return
        self.times.append(t)
        self.busy.append(busy)
        self.queued.append(queued)

    def reset(self) -> None:
        self.__init__()  # type: ignore[misc]


def binned(times: Sequence[int], values: Sequence[int],
           bins: int = 300) -> tuple[list[float], list[float]]:
    """Time-weighted means of a step function over equal time bins."""
    if len(times) < 2:
        return list(map(float, times)), list(map(float, values))
    t = np.asarray(times, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    # The integral of a step function is piecewise linear between its steps, so it
    # can be interpolated exactly at the bin edges.
    area = np.concatenate(([0.0], np.cumsum(v[:-1] * np.diff(t))))
    edges = np.linspace(t[0], t[-1], bins + 1)
    at_edges = np.interp(edges, t, area)
    width = edges[1] - edges[0]
    means = np.diff(at_edges) / width
    mids = (edges[:-1] + edges[1:]) / 2
    return mids.tolist(), means.tolist()


def wait_cdf(ax: plt.Axes, waits: Sequence[int], label: str) -> None:
    ordered = sorted(waits)
    n = len(ordered)
    if not n:
        return
    step = max(1, n // 5000)
    xs = [max(ordered[i], 1) / 3600 for i in range(0, n, step)] + [max(ordered[-1], 1) / 3600]
    ys = [i / n for i in range(0, n, step)] + [1.0]
    ax.step(xs, ys, where="post", label=label)


def write_plots(out_dir: str | Path, runs: dict[str, Recorder], procs: int,
                title: str) -> list[Path]:
    """Write wait_cdf.png, utilization.png and queue.png; one curve per run."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, rec in runs.items():
        wait_cdf(ax, rec.waits, label)
    ax.set_xscale("log")
    ax.set_xlabel("wait (hours, log scale)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title(f"{title}: wait-time CDF")
    ax.grid(alpha=0.3)
    ax.legend()
    paths.append(out / "wait_cdf.png")
    fig.tight_layout()
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    for name, attr, ylabel, scale in (
            ("utilization.png", "busy", "utilization", 1.0 / procs),
            ("queue.png", "queued", "queued jobs", 1.0)):
        fig, ax = plt.subplots(figsize=(7, 4))
        for label, rec in runs.items():
            xs, ys = binned(rec.times, getattr(rec, attr))
            t0 = xs[0] if xs else 0
            ax.plot([(x - t0) / 86400 for x in xs], [y * scale for y in ys], label=label,
                    linewidth=0.8)
        ax.set_xlabel("days since first event")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {ylabel} over time")
        ax.grid(alpha=0.3)
        ax.legend()
        paths.append(out / name)
        fig.tight_layout()
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths
