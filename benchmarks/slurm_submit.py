"""Submissions per second: SlurmBackend.submit against a raw ``sbatch`` loop.

Both run in one process against the same testbed, interleaved in rounds so that the
noise of a shared machine falls on both alike. Every job depends on a held job, so
none runs; all are cancelled at the end.

    SLURM_CONF=$(scripts/slurm-testbed up | tail -1 | cut -d= -f2) \\
        .venv/bin/python benchmarks/slurm_submit.py --jobs 200 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

from lightgrid.backends.base import BackendDependency, SubmitRequest
from lightgrid.backends.slurm import (
    AccountSpec,
    AssociationState,
    AssociationSync,
    SlurmBackend,
    SlurmConfig,
    UserSpec,
)
from lightgrid.core.jobs import DependencyKind
from lightgrid.core.resources import Allocation, Tres

SCRIPT = "#!/bin/bash\ntrue\n"


def cluster_name(conf: Path) -> str:
    for line in conf.read_text().splitlines():
        if line.startswith("ClusterName="):
            return line.split("=", 1)[1].strip()
    raise SystemExit(f"no ClusterName in {conf}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=200, help="submissions per round and side")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--account", default="lgbench")
    args = parser.parse_args()
    conf = Path(os.environ.get("SLURM_CONF") or os.environ.get("LIGHTGRID_TEST_SLURM_CONF")
                or "")
    if not conf.is_file():
        print("set SLURM_CONF to the testbed's slurm.conf", file=sys.stderr)
        return 2
    config = SlurmConfig(slurm_conf=conf, cluster=cluster_name(conf))
    env = {"PATH": "/usr/bin:/bin", "SLURM_CONF": str(conf), "LANG": "C"}
    subprocess.run(["sacctmgr", "-i", "add", "account", "lgbench-root", "parent=root"],
                   env=env, capture_output=True, check=False)
    AssociationSync(config, managed_root="lgbench-root").sync(AssociationState(
        accounts=(AccountSpec(args.account, "lgbench-root"),),
        users=(UserSpec("root", (args.account,)),)))
    backend = SlurmBackend(config)
    workdir = Path("/tmp/lightgrid-bench")
    workdir.mkdir(exist_ok=True)
    # An anchor job held forever; every benchmark job depends on it and never runs.
    anchor = subprocess.run(["sbatch", "--parsable", "--hold", f"--account={args.account}",
                             "--output=/dev/null"], input=SCRIPT, env=env, text=True,
                            capture_output=True, check=True).stdout.strip()
    alloc = Allocation(Tres(1, 256, 0, 0), 1, 1, 256, 0)
    dep = [BackendDependency(DependencyKind.AFTEROK, (anchor,))]
    raw_argv = ["sbatch", "--parsable", f"--account={args.account}", "--partition=cpu",
                "--time=1", "--nodes=1", "--ntasks-per-node=1", "--ntasks=1",
                "--cpus-per-task=1", "--mem=256M", f"--chdir={workdir}",
                f"--output={workdir}/%j.out", f"--error={workdir}/%j.err",
                f"--dependency=afterok:{anchor}"]

    def raw(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            subprocess.run([*raw_argv, f"--job-name=raw-{i}", f"--comment=raw-{i}"],
                           input=SCRIPT, env=env, text=True, capture_output=True, check=True)
        return n / (time.perf_counter() - t0)

    def ours(n: int) -> float:
        t0 = time.perf_counter()
        for i in range(n):
            pid = uuid.uuid4().hex
            backend.submit(SubmitRequest(
                job_id=pid, job_number=i, name=f"lg-{i}", user="root", account=args.account,
                partition="cpu", allocation=alloc, time_limit=60, script=SCRIPT,
                workdir=str(workdir), stdout=f"{workdir}/%j.out", stderr=f"{workdir}/%j.err",
                dependencies=dep))
        return n / (time.perf_counter() - t0)

    raw_rates, our_rates = [], []
    try:
        for r in range(args.rounds):
            raw_rates.append(raw(args.jobs))
            our_rates.append(ours(args.jobs))
            print(f"round {r + 1}: raw sbatch {raw_rates[-1]:.1f}/s, "
                  f"SlurmBackend.submit {our_rates[-1]:.1f}/s", flush=True)
    finally:
        subprocess.run(["scancel", f"--account={args.account}"], env=env, check=False)
        subprocess.run(["scancel", anchor], env=env, check=False)
    raw_total = sum(raw_rates) / len(raw_rates)
    our_total = sum(our_rates) / len(our_rates)
    print(f"raw sbatch loop:     {raw_total:.1f} submissions/s")
    print(f"SlurmBackend.submit: {our_total:.1f} submissions/s")
    print(f"ratio: {our_total / raw_total:.2f} (target >= 0.9)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
