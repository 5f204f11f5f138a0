"""The README's walkthrough, as a new user runs it: real processes, real HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

LIGHTGRID = [sys.executable, "-m", "lightgrid.cli"]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[dict[str, object]]:
    data = tmp_path / "demo"
    # A relative data directory, as `make demo` passes it.
    proc = subprocess.Popen([*LIGHTGRID, "demo", "--port", "0", "--data-dir", "demo"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 60
        while not (data / "demo.json").exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"demo did not start: {proc.stdout.read()}")  # type: ignore[union-attr]
            time.sleep(0.2)
        info = json.loads((data / "demo.json").read_text())
        _wait_http(str(info["url"]))
        yield info
    finally:
        proc.terminate()
        proc.wait(20)


def _wait_http(url: str) -> None:
    import httpx

    for _ in range(100):
        try:
            if httpx.get(f"{url}/api/v1/status", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not answer")


def run(info: dict[str, object], role: str, *args: str,
        check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "LIGHTGRID_URL": str(info["url"]),
           "LIGHTGRID_TOKEN": info["tokens"][role]}  # type: ignore[index]
    result = subprocess.run([*LIGHTGRID, *args], env=env, capture_output=True, text=True,
                            timeout=120)
    if check:
        assert result.returncode == 0, result.stderr + result.stdout
    return result


ARRAY_SCRIPT = """#!/bin/bash
#SBATCH --job-name=walkthrough
#SBATCH --account=alloy-sim
#SBATCH --array=0-9
#SBATCH --time=00:01:00
echo "this is task $SLURM_ARRAY_TASK_ID"
"""


def test_array_job_walkthrough(demo: dict[str, object], tmp_path: Path) -> None:
    script = tmp_path / "array.sh"
    script.write_text(ARRAY_SCRIPT)
    submitted = run(demo, "researcher", "submit", str(script), "--wait", "--json")
    rows = json.loads(submitted.stdout)
    assert len(rows) == 10 and {r["state"] for r in rows} == {"COMPLETED"}
    array_id = str(rows[0]["array_job_number"])

    logs = run(demo, "researcher", "logs", array_id).stdout
    for task in range(10):
        assert f"==> {array_id}_{task} (COMPLETED) <==\nthis is task {task}\n" in logs
    one = run(demo, "researcher", "logs", f"{array_id}_7").stdout
    assert one == "this is task 7\n"

    listed = json.loads(run(demo, "researcher", "jobs", "--json").stdout)
    assert {r["job_id"] for r in rows} <= {r["job_id"] for r in listed}

    other = run(demo, "other_tenant", "show", array_id, check=False)
    assert other.returncode != 0
    assert "not found" in other.stderr and "404" in other.stderr
    other_logs = run(demo, "other_tenant", "logs", f"{array_id}_3", check=False)
    assert other_logs.returncode != 0 and "404" in other_logs.stderr


def test_cli_errors_are_clear(demo: dict[str, object], tmp_path: Path) -> None:
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/bin/bash\n#SBATCH -A alloy-sim\n#SBATCH --time=forever\ntrue\n")
    result = run(demo, "researcher", "submit", str(bad), check=False)
    assert result.returncode == 1
    assert "line 3" in result.stderr and "--time" in result.stderr
    huge = tmp_path / "huge.sh"
    huge.write_text("#!/bin/bash\n#SBATCH -A alloy-sim\n#SBATCH -c 500\ntrue\n")
    result = run(demo, "researcher", "submit", str(huge), check=False)
    assert result.returncode == 1 and "largest node" in result.stderr
    missing = run(demo, "researcher", "submit", str(tmp_path / "nope.sh"), check=False)
    assert missing.returncode == 1 and "no such file" in missing.stderr
    env = {**os.environ, "LIGHTGRID_URL": str(demo["url"]), "LIGHTGRID_TOKEN": "lg_bad"}
    denied = subprocess.run([*LIGHTGRID, "jobs"], env=env, capture_output=True, text=True)
    assert denied.returncode == 1 and "401" in denied.stderr


def test_follow_logs_and_files(demo: dict[str, object], tmp_path: Path) -> None:
    script = tmp_path / "slow.sh"
    script.write_text("#!/bin/bash\n#SBATCH -A alloy-sim\nfor i in 1 2 3; do echo step $i; "
                      "sleep 0.5; done\n")
    job_id = json.loads(run(demo, "researcher", "submit", str(script), "--json").stdout)[
        "job_id"]
    followed = run(demo, "researcher", "logs", "-f", job_id).stdout
    assert followed == "step 1\nstep 2\nstep 3\n"

    local = tmp_path / "input.dat"
    local.write_bytes(os.urandom(300_000))
    run(demo, "researcher", "files", "put", str(local), "data/input.dat")
    listing = json.loads(run(demo, "researcher", "files", "ls", "data", "--json").stdout)
    assert [(e["name"], e["size"]) for e in listing] == [("input.dat", 300_000)]
    back = tmp_path / "back.dat"
    run(demo, "researcher", "files", "get", "data/input.dat", str(back))
    assert back.read_bytes() == local.read_bytes()
    run(demo, "researcher", "files", "rm", "data", "-r")
    escape = run(demo, "researcher", "files", "get", "../bob/x", check=False)
    assert escape.returncode == 1
