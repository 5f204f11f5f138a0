"""`lightgrid serve` on the Slurm backend, as a new user runs it: a config file, real
processes, real HTTP, and Slurm's own tools to check the result."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from lightgrid.backends.slurm import AssociationState, AssociationSync
from tests.backends.slurm.testbed import Testbed, require_testbed

pytestmark = pytest.mark.slurm
LIGHTGRID = [sys.executable, "-m", "lightgrid.cli"]

CONFIG = """\
center_name = "{name}"
data_dir = "{data}"
backend = "slurm"
poll_interval = 0.5

[slurm]
slurm_conf = "{conf}"
cluster = "{cluster}"

[[partitions]]
name = "cpu"
default = true
max_time = 86400
default_time = 600
node_types = [{{ name = "c", count = 2, cores = 4, mem = 4096 }}]

[[partitions]]
name = "gpu"
max_time = 86400
node_types = [{{ name = "g", count = 1, cores = 4, mem = 8192, gpus = 2, gpu_type = "a100" }}]
"""

JOB = """#!/bin/bash
#SBATCH --job-name=hello
#SBATCH --time=00:01:00
#SBATCH --ntasks=1
echo "hello from $SLURM_CLUSTER_NAME"
"""


def cli(*args: str, env: dict[str, str] | None = None,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*LIGHTGRID, *args], capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Testbed, dict[str, str], str]]:
    bed = require_testbed()
    tag = uuid.uuid4().hex[:6]
    name = f"serve-{tag}"
    data = tmp_path / "center"
    config = tmp_path / "center.toml"
    config.write_text(CONFIG.format(name=name, data=data, conf=bed.conf, cluster=bed.name))
    token = cli("admin", "bootstrap", "op", "--config", str(config)).stdout.strip()
    proc = subprocess.Popen([*LIGHTGRID, "serve", "--config", str(config), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line and proc.poll() is not None:
                break
            match = re.search(r"on (http://\S+) \(backend: slurm", line)
            url = match.group(1) if match else None
        assert url, "lightgrid serve did not start"
        yield bed, {"LIGHTGRID_URL": url, "LIGHTGRID_TOKEN": token}, tag
    finally:
        proc.terminate()
        proc.wait(30)
        root = f"lightgrid.{name}"
        sync = AssociationSync(bed.config(), managed_root=root)
        sync.sync(AssociationState())
        bed.run("sacctmgr", "-i", "remove", "account", "where", f"name={root}", check=False)


def test_serve_submit_wait_logs_and_sacct(served: tuple[Testbed, dict[str, str], str],
                                          tmp_path: Path) -> None:
    bed, op, tag = served
    org, project, user = f"lab-{tag}", f"proj-{tag}", f"ada-{tag}"
    cli("org", "create", org, "--kind", "key_laboratory", env=op)
    cli("project", "create", project, "--org", org, env=op)
    cli("user", "create", user, "--password", "ada-password", env=op)
    cli("project", "add-member", project, user, env=op)
    token = cli("login", user, "--password", "ada-password", env=op).stdout.strip()
    me = {"LIGHTGRID_URL": op["LIGHTGRID_URL"], "LIGHTGRID_TOKEN": token}
    job = tmp_path / "hello.sh"
    job.write_text(JOB)
    submitted = cli("submit", str(job), "--wait", env=me)
    number = re.search(r"Submitted batch job (\d+)", submitted.stdout)
    assert number and "COMPLETED" in submitted.stdout
    assert cli("logs", number.group(1), env=me).stdout == f"hello from {bed.name}\n"
    shown = json.loads(cli("show", number.group(1), "--json", env=me).stdout)[0]
    sacct = bed.run("sacct", "-n", "-P", "-X", f"--jobs={shown['backend_id']}",
                    "--format=JobID,Account,State,Comment").stdout.splitlines()
    assert sacct == [f"{shown['backend_id']}|{project}|COMPLETED|lightgrid:{shown['id']}"]
