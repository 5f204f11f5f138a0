"""`lightgrid serve` with several API processes: one port, one backend, same answers."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import psutil

from lightgrid.center.service import Center
from lightgrid.settings import load_settings
from tests.conftest import seed_tenants

LIGHTGRID = [sys.executable, "-m", "lightgrid.cli"]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_jobs(url: str, headers: dict[str, str], numbers: list[int], states: set[str],
               timeout: float = 60) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        seen = {}
        for n in numbers:
            [job] = httpx.get(f"{url}/jobs/{n}", headers=headers, timeout=10).json()
            seen[n] = job["state"]
        if all(s in states for s in seen.values()) or time.monotonic() > deadline:
            return seen
        time.sleep(0.3)


def test_two_api_processes_share_the_port_and_the_backend(db_url: str,
                                                          tmp_path: Path) -> None:
    port = _free_port()
    config = tmp_path / "center.toml"
    config.write_text(f'data_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n'
                      f'port = {port}\napi_workers = 2\npoll_interval = 0.2\n'
                      'kill_grace_seconds = 1.0\n')
    seeding = Center.from_settings(load_settings(config))
    tenants = seed_tenants(seeding)
    seeding.close()
    proc = subprocess.Popen([*LIGHTGRID, "serve", "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/api/v1"
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 60
        # Each call is a new connection, which the kernel gives to either process.
        while len(pids) < 2:
            assert time.monotonic() < deadline, f"only {pids} answered"
            try:
                status = httpx.get(f"{url}/status", timeout=5).json()
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if status["backend_reachable"]:
                pids.add(status["process_id"])
        children = {c.pid for c in psutil.Process(proc.pid).children(recursive=True)}
        assert pids - {proc.pid} <= children  # the other answer came from a worker

        alice = tenants.headers("alice")
        script = "#!/bin/sh\n#SBATCH -A p1 -t 1\necho hello from $SLURM_JOB_ID\n"
        numbers = []
        for _ in range(16):
            out = httpx.post(f"{url}/jobs", json={"script": script}, headers=alice,
                             timeout=30)
            assert out.status_code == 201, out.text
            [job] = out.json()["jobs"]
            assert job["backend_id"] and job["reason"] == "Priority"  # handed over
            numbers.append(job["number"])
        assert len(set(numbers)) == 16
        states = _wait_jobs(url, alice, numbers, {"COMPLETED"})
        assert set(states.values()) == {"COMPLETED"}, states
        for n in numbers[:4]:
            text = httpx.get(f"{url}/jobs/{n}/output", headers=alice, timeout=10).text
            assert text == f"hello from {n}\n"

        # Cancelling and listing partitions work from either process.
        sleepers = []
        for _ in range(4):
            out = httpx.post(f"{url}/jobs", json={"script": script.replace(
                "echo hello from $SLURM_JOB_ID", "sleep 60")}, headers=alice, timeout=30)
            sleepers.append(out.json()["jobs"][0]["number"])
        for n in sleepers:
            assert httpx.post(f"{url}/jobs/{n}/cancel", headers=alice,
                              timeout=30).status_code == 200
        assert set(_wait_jobs(url, alice, sleepers, {"CANCELLED"}).values()) == {"CANCELLED"}
        for _ in range(6):
            names = [p["name"] for p in httpx.get(f"{url}/partitions", headers=alice,
                                                    timeout=10).json()]
            assert names == ["cpu", "gpu", "bigmem"]
    finally:
        proc.terminate()
        output = proc.communicate(timeout=30)[0]
    # uvicorn shuts down gracefully, then lets SIGTERM end the process.
    assert proc.returncode in (0, -signal.SIGTERM), output
    # The API processes end with the main one.
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"
              for pid in children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in children if psutil.pid_exists(pid)
                and psutil.Process(pid).status() != "zombie"]
