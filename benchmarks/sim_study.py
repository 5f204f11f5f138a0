"""The worked study of docs/simulation.md: its numbers and its plots (docs/img/).

1. EASY against FCFS on one trace.
2. The same trace split over three centers (homes by user), `home` placement against
   `earliest-start`.

Usage::

    .venv/bin/python benchmarks/sim_study.py --trace CTC-SP2-1996-3.1-cln \\
        --network-limit 40000 --out docs/img
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from lightgrid.core.scheduling import policy_by_name
from lightgrid.sim.engine import simulate_trace
from lightgrid.sim.network import CenterConfig, NetworkConfig, simulate_network_trace
from lightgrid.sim.plots import Recorder, write_plots
from lightgrid.sim.swf import read_header

TRACES = Path(__file__).resolve().parents[1].parent / "shared" / "traces"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", default="CTC-SP2-1996-3.1-cln")
    parser.add_argument("--network-limit", type=int, default=40000)
    parser.add_argument("--out", default="docs/img")
    args = parser.parse_args()
    path = str(TRACES / f"{args.trace}.swf.gz")
    procs = read_header(path).processors()
    out = Path(args.out)
    report: dict[str, object] = {"trace": args.trace, "procs": procs}

    runs = {}
    for policy in ("fcfs", "easy"):
        rec = Recorder()
        t0 = time.perf_counter()
        m = simulate_trace(path, policy_by_name(policy), procs, on_job=rec.job,
                           on_step=rec.step, on_restart=rec.reset)
        report[policy] = m.summary() | {"seconds": round(time.perf_counter() - t0, 2)}
        runs[f"{policy}, {procs} procs"] = rec
    for p in write_plots(out / "policies", runs, procs, args.trace):
        print("wrote", p)

    # Three centers adding up to the machine, each running EASY.
    sizes = [procs // 2, procs // 3, procs - procs // 2 - procs // 3]
    centers = [CenterConfig(n, s, "easy") for n, s in zip("ABC", sizes, strict=True)]
    net_runs = {}
    for placement in ("home", "earliest-start"):
        config = NetworkConfig(centers, placement, "user")
        rec = Recorder()
        t0 = time.perf_counter()
        result = simulate_network_trace(path, config, args.network_limit, on_job=rec.job,
                                        on_restart=rec.reset)
        report[f"network-{placement}"] = result.summary() | {
            "seconds": round(time.perf_counter() - t0, 2)}
        net_runs[placement] = rec
    (out / "network").mkdir(parents=True, exist_ok=True)
    from lightgrid.sim.plots import plt, wait_cdf

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, rec in net_runs.items():
        wait_cdf(ax, rec.waits, label)
    ax.set_xscale("log")
    ax.set_xlabel("wait (hours, log scale)")
    ax.set_ylabel("fraction of jobs")
    ax.set_title(f"{args.trace}, first {args.network_limit} jobs, centers {sizes}")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "network" / "wait_cdf.png", dpi=110)
    print("wrote", out / "network" / "wait_cdf.png")
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
