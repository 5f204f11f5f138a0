"""Wall time of lightgrid's simulator on the shared traces, one fresh process per run.

Each run reads the trace (gzip) and simulates it; the time is from process start to
exit. Runs of all cases are interleaved round by round so that load from other work
on the machine spreads over every case; medians are reported.

Usage::

    .venv/bin/python benchmarks/sim_traces.py --policy easy --repeat 3
    .venv/bin/python benchmarks/sim_traces.py --policy conservative \\
        --trace HPC2N-2002-2.2-cln --repeat 3

``--baseline DIR`` also runs the package found in DIR (e.g. the ``src`` of a
``git worktree`` at an earlier commit) in the same rounds, for a side-by-side table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"
# RICC-2010-2 has no header: 1,024 nodes of 8 cores.
PROCS = {"RICC-2010-2": 8192}

DRIVER = r'''
import json, sys
from lightgrid.core.scheduling import policy_by_name
from lightgrid.sim.engine import simulate_trace
trace, policy, procs = sys.argv[1], sys.argv[2], sys.argv[3]
m = simulate_trace(trace, policy_by_name(policy), int(procs) if procs != "-" else None)
print(json.dumps(m.summary()))
'''


def all_traces() -> list[str]:
    return sorted(p.name.removesuffix(".swf.gz") for p in TRACES.glob("*.swf.gz"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="easy")
    parser.add_argument("--trace", action="append", help="name without .swf.gz (default: all)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", metavar="DIR",
                        help="also time the lightgrid package in DIR, side by side")
    args = parser.parse_args()
    names = args.trace or all_traces()
    sources = ["current"] + (["baseline"] if args.baseline else [])
    wall: dict[tuple[str, str], list[float]] = {}
    cpu: dict[tuple[str, str], list[float]] = {}
    results: dict[tuple[str, str], dict[str, float]] = {}
    for _ in range(args.repeat):
        for name in names:
            for src in sources:
                env = dict(os.environ)
                if src == "baseline":
                    env["PYTHONPATH"] = os.pathsep.join(
                        p for p in (args.baseline, env.get("PYTHONPATH")) if p)
                before = resource.getrusage(resource.RUSAGE_CHILDREN)
                t0 = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", DRIVER, str(TRACES / f"{name}.swf.gz"),
                     args.policy, str(PROCS.get(name, "-"))],
                    capture_output=True, text=True, check=True, env=env)
                wall.setdefault((name, src), []).append(time.perf_counter() - t0)
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu.setdefault((name, src), []).append(
                    (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime))
                results[name, src] = json.loads(done.stdout)
    print(f"policy {args.policy}, {args.repeat} runs each; median wall / CPU seconds")
    for name in names:
        for src in sources:
            r = results[name, src]
            label = name if src == "current" else "  (baseline)"
            same = "" if src == "current" or r == results[name, "current"] else "  DIFFERS"
            print(f"{label:28s} {statistics.median(wall[name, src]):7.2f} s wall "
                  f"{statistics.median(cpu[name, src]):7.2f} s cpu  jobs {r['jobs']:7d}  "
                  f"mean wait {r['mean_wait']:10.1f}  mean bsld {r['mean_bsld']:8.2f}  "
                  f"util {r['utilization']:.3f}{same}", flush=True)


if __name__ == "__main__":
    main()
