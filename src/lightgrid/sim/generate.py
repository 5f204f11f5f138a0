"""Synthetic workloads after the Lublin-Feitelson model of rigid batch jobs.

The model (Lublin and Feitelson, "The workload on parallel supercomputers: modeling
the characteristics of rigid jobs", JPDC 2003) draws, per job:

- size: serial with probability `serial_prob`; otherwise log2(size) is uniform on
  [u_low, u_med] with probability `u_prob`, else on [u_med, log2(machine)], and
  rounded to a whole power of two with probability `pow2_prob`;
- runtime: its natural log follows a hyper-gamma distribution, gamma(a1, b1) with
  probability p = pa * size + pb (clipped to [0, 1]), else gamma(a2, b2), so larger
  jobs tend to run longer;
- inter-arrival time: exp(gamma(a_arr, b_arr)) seconds, scaled by `load_scale`.

Defaults are the published batch-job parameters. Two departures from the model: the
daily arrival cycle is not reproduced, and runtimes are capped at `max_runtime`
(two days by default; the uncapped tail reaches years, beyond any site's limit).
Estimates are left unknown (field 9 = -1), i.e. exact. Output is SWF; the same seed
gives the same file.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO


@dataclass(frozen=True)
class LublinParams:
    """Model parameters (batch jobs, as published)."""

    serial_prob: float = 0.0244
    pow2_prob: float = 0.576
    u_low: float = 0.8
    u_med: float = 4.5
    u_prob: float = 0.86
    a1: float = 4.2
    b1: float = 0.94
    a2: float = 312.0
    b2: float = 0.03
    pa: float = -0.0054
    pb: float = 0.78
    a_arr: float = 10.23
    b_arr: float = 0.4871
    load_scale: float = 1.0
    max_runtime: int = 2 * 86400


def lublin_jobs(n: int, machine: int, seed: int = 0,
                params: LublinParams | None = None) -> Iterator[tuple[int, int, int, int]]:
    """Yield n jobs as (id, submit, runtime, procs), ids from 1, submit from 0."""
    p = params or LublinParams()
    rng = random.Random(seed)
    rand = rng.random
    gamma = rng.gammavariate
    u_high = math.log2(machine)
    u_med = min(p.u_med, u_high)
    u_low = min(p.u_low, u_med)
    t = 0.0
    for jid in range(1, n + 1):
        if machine == 1 or rand() < p.serial_prob:
            size = 1
        else:
            if rand() < p.u_prob:
                u = u_low + (u_med - u_low) * rand()
            else:
                u = u_med + (u_high - u_med) * rand()
            if rand() < p.pow2_prob:
                u = round(u)
            size = max(1, min(machine, round(2.0 ** u)))
        prob = min(1.0, max(0.0, p.pa * size + p.pb))
        log_run = gamma(p.a1, p.b1) if rand() < prob else gamma(p.a2, p.b2)
        runtime = max(1, min(p.max_runtime, round(math.exp(min(log_run, 50.0)))))
        yield jid, int(t), runtime, size
        t += math.exp(gamma(p.a_arr, p.b_arr)) * p.load_scale


def write_swf(out: IO[str], n: int, machine: int, seed: int = 0,
              params: LublinParams | None = None) -> None:
    """Write n generated jobs as a SWF file with a header naming the machine."""
    out.write("; Version: 2.2\n")
    out.write(f"; Note: synthetic, Lublin-Feitelson model, seed {seed}\n")
    out.write(f"; MaxJobs: {n}\n; MaxRecords: {n}\n")
    out.write(f"; MaxNodes: {machine}\n; MaxProcs: {machine}\n")
    write = out.write
    for jid, submit, runtime, size in lublin_jobs(n, machine, seed, params):
        write(f"{jid} {submit} -1 {runtime} {size} -1 -1 {size} -1 -1 1 -1 -1 -1 1 -1 -1 -1\n")
