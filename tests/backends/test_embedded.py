"""The embedded backend on its own: running, limits, and restart reconciliation."""

from __future__ import annotations

import os
import signal
import time
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from lightgrid.backends.base import SubmitRequest
from lightgrid.backends.embedded.backend import EmbeddedBackend, EmbeddedConfig
from lightgrid.backends.embedded.records import RUNNER_FILE, read_json
from lightgrid.core.jobs import JobState
from lightgrid.core.resources import NodeType, Partition, ResourceRequest, normalize

PART = Partition("cpu", (NodeType("n", 2, 4, 8192),))


def make(tmp_path: Path) -> EmbeddedBackend:
    backend = EmbeddedBackend(EmbeddedConfig(state_dir=tmp_path / "state", kill_grace=1.0,
                                             tick=0.05), {"cpu": PART})
    backend.start()
    return backend


def request(tmp_path: Path, number: int, body: str, *, cpus: int = 1,
            limit: int = 60) -> SubmitRequest:
    alloc = normalize(ResourceRequest(ntasks=cpus), PART)
    work = tmp_path / "work"
    return SubmitRequest(job_id=f"job-{number}", job_number=number, name=f"j{number}",
                         user="u", account="a", partition="cpu", allocation=alloc,
                         time_limit=limit, script=f"#!/bin/sh\n{body}\n", workdir=str(work),
                         stdout=str(work / "%j.out"), stderr=str(work / "%j.out"))


def wait_state(backend: EmbeddedBackend, bid: str, states: set[JobState],
               timeout: float = 20) -> JobState:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = backend.poll([bid])[bid].state
        if state in states:
            return state
        time.sleep(0.05)
    raise AssertionError(f"{bid} stuck in {backend.poll([bid])[bid].state}")


def test_usage_is_measured(tmp_path: Path) -> None:
    backend = make(tmp_path)
    try:
        # Burn about half a second of CPU and touch ~50 MB of memory.
        body = ("python3 -c \"import time; b=bytearray(50*1024*1024); t=time.process_time()\n"
                "while time.process_time()-t<0.5: pass\"")
        backend.submit(request(tmp_path, 1, body))
        wait_state(backend, "1", {JobState.COMPLETED})
        usage = backend.usage(["1"])["1"]
        assert usage.exit_code == 0 and usage.state is JobState.COMPLETED
        assert usage.cpu_time >= 0.45
        assert usage.max_rss >= 50 * 1024 * 1024
        assert usage.tres.cpu == 1 and usage.platform_job_id == "job-1"
    finally:
        backend.stop()


def test_fcfs_order_and_capacity(tmp_path: Path) -> None:
    backend = make(tmp_path)
    try:
        backend.submit(request(tmp_path, 1, "sleep 1", cpus=8))  # the whole partition
        backend.submit(request(tmp_path, 2, "true", cpus=1))
        wait_state(backend, "1", {JobState.RUNNING})
        time.sleep(0.3)
        assert backend.poll(["2"])["2"].state is JobState.PENDING
        wait_state(backend, "2", {JobState.COMPLETED})
        one, two = backend.poll(["1", "2"]).values()
        assert two.start_time is not None and one.end_time is not None
        assert two.start_time >= one.end_time
    finally:
        backend.stop()


def test_restart_adopts_live_runners_and_requeues_pending(tmp_path: Path) -> None:
    backend = make(tmp_path)
    backend.submit(request(tmp_path, 1, "sleep 2; echo done", cpus=8))
    backend.submit(request(tmp_path, 2, "echo second", cpus=8))
    wait_state(backend, "1", {JobState.RUNNING})
    backend.stop()
    del backend  # the service goes away; the runner of job 1 keeps going

    again = make(tmp_path)
    try:
        assert again.poll(["1"])["1"].state is JobState.RUNNING  # adopted
        assert again.poll(["2"])["2"].state is JobState.PENDING  # still queued
        wait_state(again, "1", {JobState.COMPLETED})
        wait_state(again, "2", {JobState.COMPLETED})
        assert (tmp_path / "work" / "1.out").read_text() == "done\n"
        assert (tmp_path / "work" / "2.out").read_text() == "second\n"
    finally:
        again.stop()


def test_restart_marks_vanished_runner_node_fail(tmp_path: Path) -> None:
    backend = make(tmp_path)
    backend.submit(request(tmp_path, 1, "sleep 30"))
    wait_state(backend, "1", {JobState.RUNNING})
    backend.stop()
    runner = read_json(tmp_path / "state" / "jobs" / "1" / RUNNER_FILE)
    proc = psutil.Process(runner["pid"])
    children = proc.children(recursive=True)
    os.kill(runner["pid"], signal.SIGKILL)  # the node "dies" while the service is down
    for child in children:
        child.kill()
    proc.wait(5)

    again = make(tmp_path)
    try:
        status = again.poll(["1"])["1"]
        assert status.state is JobState.NODE_FAIL
        assert "vanished" in status.reason
    finally:
        again.stop()


def test_memory_over_allocation_is_out_of_memory(tmp_path: Path) -> None:
    backend = make(tmp_path)
    try:
        req = request(tmp_path, 1, "python3 -c \"b=bytearray(400*1024*1024); "
                      "import time; time.sleep(5)\"")
        backend.submit(replace(req, allocation=normalize(ResourceRequest(mem_per_node=100),
                                                         PART)))
        final = wait_state(backend, "1", set(JobState) - {JobState.PENDING,
                                                          JobState.RUNNING})
        assert final is JobState.OUT_OF_MEMORY
    finally:
        backend.stop()


@pytest.mark.parametrize("bad", ["nosuch"])
def test_unknown_partition_is_rejected(tmp_path: Path, bad: str) -> None:
    from lightgrid.core.errors import BackendRejected

    backend = make(tmp_path)
    try:
        with pytest.raises(BackendRejected, match="invalid partition"):
            backend.submit(replace(request(tmp_path, 1, "true"), partition=bad))
    finally:
        backend.stop()


def test_requeue_of_a_job_cancelled_before_it_started_runs_its_script(
        tmp_path: Path) -> None:
    backend = make(tmp_path)
    try:
        backend.submit(request(tmp_path, 1, "sleep 2", cpus=8))  # fills the partition
        backend.submit(request(tmp_path, 2, "echo second", cpus=8))
        wait_state(backend, "1", {JobState.RUNNING})
        backend.cancel("2")
        assert backend.poll(["2"])["2"].state is JobState.CANCELLED
        backend.requeue("2")
        wait_state(backend, "2", {JobState.COMPLETED})
        assert (tmp_path / "work" / "2.out").read_text() == "second\n"
    finally:
        backend.stop()


def test_relative_state_dir_still_runs_jobs(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """Jobs run in their own directory: a relative state dir must not break them."""
    monkeypatch.chdir(tmp_path)
    backend = EmbeddedBackend(EmbeddedConfig(state_dir=Path("state"), tick=0.05),
                              {"cpu": PART})
    backend.start()
    try:
        backend.submit(request(tmp_path, 1, "echo ran"))
        assert wait_state(backend, "1", {JobState.COMPLETED, JobState.FAILED}) \
            is JobState.COMPLETED
    finally:
        backend.stop()


def test_submissions_are_journalled_until_their_jobs_get_a_directory(tmp_path: Path) -> None:
    from lightgrid.backends.embedded.backend import JOURNAL_FILE

    state = tmp_path / "state"
    config = EmbeddedConfig(state_dir=state, kill_grace=1.0, tick=0.05)
    backend = EmbeddedBackend(config, {"cpu": PART})  # not started: nothing runs
    for n in (1, 2):
        backend.submit(request(tmp_path, n, f"echo job {n}"))
    journal = state / JOURNAL_FILE
    assert len(journal.read_text().splitlines()) == 2
    assert not (state / "jobs" / "1").exists()  # no directory per submission
    # A crash mid-write leaves a torn line: that submission was never acknowledged.
    with open(journal, "a") as fh:
        fh.write('{"backend_id": "3", "plat')
    backend.stop()

    restarted = make(tmp_path)
    try:
        assert journal.read_text() == ""  # every journalled job has its directory now
        assert sorted(p.name for p in (state / "jobs").iterdir()) == ["1", "2"]
        for n in ("1", "2"):
            assert wait_state(restarted, n, {JobState.COMPLETED}) is JobState.COMPLETED
            assert (tmp_path / "work" / f"{n}.out").read_text() == f"job {n}\n"
        assert restarted.poll(["3"]) == {}
        # Jobs submitted now live in the journal until they start; once none is
        # left there, the journal is emptied.
        restarted.submit(request(tmp_path, 4, "echo four"))
        assert wait_state(restarted, "4", {JobState.COMPLETED}) is JobState.COMPLETED
        assert journal.read_text() == ""
    finally:
        restarted.stop()


def test_cancelling_a_journalled_job_keeps_its_script_for_a_requeue(tmp_path: Path) -> None:
    state = tmp_path / "state"
    backend = EmbeddedBackend(EmbeddedConfig(state_dir=state, kill_grace=1.0, tick=0.05),
                              {"cpu": PART})
    backend.submit(request(tmp_path, 7, "echo seven"))
    backend.cancel("7")
    assert backend.poll(["7"])["7"].state is JobState.CANCELLED
    assert (state / "jobs" / "7" / "job.json").exists()
    backend.requeue("7")
    backend.start()
    try:
        assert wait_state(backend, "7", {JobState.COMPLETED}) is JobState.COMPLETED
        assert (tmp_path / "work" / "7.out").read_text() == "seven\n"
    finally:
        backend.stop()
