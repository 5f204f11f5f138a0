"""Side-by-side speed and results of lightgrid's simulator and AccaSim 1.1.3.

Both run as fresh processes on the same trace and policy, one after the other, each
timed from process start to exit (reading the trace included). AccaSim lives in its
own virtual environment (``--accasim-python``); create it with::

    python3 -m venv /tmp/accasim-venv && /tmp/accasim-venv/bin/pip install accasim==1.1.3

Usage::

    .venv/bin/python benchmarks/sim_vs_accasim.py --accasim-python /tmp/accasim-venv/bin/python \\
        --case HPC2N-2002-2.2-cln:easy --case CTC-SP2-1996-3.1-cln:fcfs --repeat 3

Reports, per case, the median wall time of each simulator, the speed ratio, and the
mean wait, mean bounded slowdown and job count each one computed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"

# Run inside AccaSim's environment: simulate, then summarise its per-job output.
ACCASIM_DRIVER = r'''
import collections, collections.abc, json, os, sys
collections.Mapping = collections.abc.Mapping  # removed in Python 3.10; AccaSim needs it
from accasim.base.simulator_class import Simulator
from accasim.base.scheduler_class import FirstInFirstOut, EASYBackfilling
from accasim.base.allocator_class import FirstFit

trace, procs, policy, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
config = os.path.join(out, "sys.json")
with open(config, "w") as f:
    json.dump({"groups": {"p": {"core": 1}}, "resources": {"p": procs}}, f)
dispatcher = (FirstInFirstOut(FirstFit()) if policy == "fcfs"
              else EASYBackfilling(FirstFit()))
schedule_format = {
    "format": "{job_id};{queue_time};{start_time};{end_time};{procs}",
    "attributes": {"job_id": ("id", "str"), "queue_time": ("queued_time", "int"),
                   "start_time": ("start_time", "int"), "end_time": ("end_time", "int"),
                   "procs": ("requested_nodes", "int")},
}
sim = Simulator(trace, config, dispatcher, RESULTS_FOLDER_NAME=os.path.join(out, "results"),
                SCHEDULE_OUTPUT=schedule_format, statistics_output=False,
                show_statistics=False)
sim.start_simulation()
'''

LIGHTGRID_DRIVER = r'''
import json, sys
from lightgrid.core.scheduling import policy_by_name
from lightgrid.sim.engine import simulate_trace
trace, procs, policy = sys.argv[1], int(sys.argv[2]), sys.argv[3]
print(json.dumps(simulate_trace(trace, policy_by_name(policy), procs).summary()))
'''


def _accasim_summary(out: str) -> dict[str, float]:
    waits, bslds = [], []
    for root, _dirs, files in os.walk(out):
        for name in files:
            if not name.startswith("sched-"):
                continue
            with open(os.path.join(root, name)) as f:
                for line in f:
                    parts = line.strip().split(";")
                    if len(parts) < 5:
                        continue
                    submit, start, end = int(parts[1]), int(parts[2]), int(parts[3])
                    wait, run = start - submit, end - start
                    waits.append(wait)
                    bslds.append(max(1.0, (wait + run) / max(run, 10)))
    n = len(waits)
    return {"jobs": n, "mean_wait": sum(waits) / n if n else 0.0,
            "mean_bsld": sum(bslds) / n if n else 0.0}


def _run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - t0
    if done.returncode:
        raise RuntimeError(f"{cmd[:3]} failed:\n{done.stderr[-2000:]}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accasim-python", required=True)
    parser.add_argument("--case", action="append", required=True,
                        help="TRACE:POLICY, TRACE a file name in shared/traces without .swf.gz")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from lightgrid.sim.swf import read_header

    rows = []
    for case in args.case:
        name, policy = case.split(":")
        gz = TRACES / f"{name}.swf.gz"
        procs = read_header(gz).processors()
        times: dict[str, list[float]] = {"accasim": [], "lightgrid": []}
        results: dict[str, dict[str, float]] = {}
        with tempfile.TemporaryDirectory() as tmp:
            # AccaSim reads plain text only, and divides by requested memory where a
            # trace has zeros; the model ignores memory, so blank those two fields.
            plain = os.path.join(tmp, f"{name}.swf")
            subprocess.run(f"gzip -dc {gz} | awk '/^;/ {{print; next}} NF == 18 "
                           f"{{$7 = -1; $10 = -1; print}}' > {plain}", shell=True, check=True)
            for _ in range(args.repeat):
                out = tempfile.mkdtemp(dir=tmp)
                elapsed, _ = _run([args.accasim_python, "-c", ACCASIM_DRIVER, plain,
                                   str(procs), policy, out])
                times["accasim"].append(elapsed)
                results["accasim"] = _accasim_summary(out)
                elapsed, stdout = _run([sys.executable, "-c", LIGHTGRID_DRIVER, str(gz),
                                        str(procs), policy])
                times["lightgrid"].append(elapsed)
                results["lightgrid"] = json.loads(stdout)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append({"trace": name, "policy": policy, "procs": procs,
                     "seconds": med, "runs": times,
                     "speedup": med["accasim"] / med["lightgrid"], "results": results})
        if not args.json:
            r = results
            print(f"{name} {policy}: accasim {med['accasim']:.2f}s, lightgrid "
                  f"{med['lightgrid']:.2f}s, {rows[-1]['speedup']:.1f}x | mean wait "
                  f"{r['accasim']['mean_wait']:.0f} vs {r['lightgrid']['mean_wait']:.0f}, "
                  f"mean bsld {r['accasim']['mean_bsld']:.2f} vs "
                  f"{r['lightgrid']['mean_bsld']:.2f}, jobs {r['accasim']['jobs']} vs "
                  f"{r['lightgrid']['jobs']}", flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
