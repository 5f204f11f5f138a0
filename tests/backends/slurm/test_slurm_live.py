"""SlurmBackend, association sync and accounting ingestion against the real testbed."""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lightgrid.backends.base import BackendDependency, SubmitRequest, UsageRecord
from lightgrid.backends.slurm import (
    AccountingIngester,
    AccountSpec,
    AssociationState,
    AssociationSync,
    IngestCursor,
    SlurmBackend,
    UserSpec,
)
from lightgrid.core.errors import BackendRejected, BackendUnavailable
from lightgrid.core.jobs import ArraySpec, DependencyKind, JobState
from lightgrid.core.resources import Allocation, Tres

Bed = Any  # the `testbed` fixture of conftest.py
T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float = 60,
               interval: float = 0.5) -> T:
    """Call `check` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)

pytestmark = pytest.mark.slurm

ROOT = "lgtests"  # every account these tests make lives below this one
JOBS = "lgt-jobs"


@pytest.fixture(scope="module")
def accounts(testbed: Bed) -> str:
    testbed.run("sacctmgr", "-i", "add", "account", ROOT, "parent=root", check=False)
    sync = AssociationSync(testbed.config(), managed_root=ROOT)
    report = sync.sync(AssociationState(accounts=(AccountSpec(JOBS, ROOT),),
                                        users=(UserSpec("root", (JOBS,)),)))
    assert report.ok, report.failed
    return JOBS


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("slurm-jobs")
    path.chmod(0o777)
    return path


def make_request(workdir: Path, script: str, *, account: str = JOBS, cpus: int = 1,
                 time_limit: int = 120, **kw: object) -> SubmitRequest:
    pid = kw.pop("job_id", None) or f"t-{uuid.uuid4().hex[:10]}"
    base: dict[str, object] = dict(
        job_id=pid, job_number=1, name=f"lgt-{pid}", user="root", account=account,
        partition="cpu", allocation=Allocation(Tres(cpus, 256 * cpus, 0, 0), 1, cpus,
                                               256 * cpus, 0),
        time_limit=time_limit, script="#!/bin/bash\n" + script + "\n",
        workdir=str(workdir), stdout=str(workdir / f"{pid}-%j.out"),
        stderr=str(workdir / f"{pid}-%j.err"))
    base.update(kw)
    return SubmitRequest(**base)  # type: ignore[arg-type]


def wait_state(backend: SlurmBackend, bid: str, states: set[JobState],
               timeout: float = 60) -> object:
    def check() -> object:
        status = backend.poll([bid]).get(bid)
        return status if status and status.state in states else None
    return wait_until(check, timeout)


def wait_terminal(backend: SlurmBackend, bids: list[str], timeout: float = 90) -> dict:
    def check() -> dict | None:
        got = backend.poll(bids)
        done = all(b in got and got[b].state.is_terminal for b in bids)
        return got if done else None
    return wait_until(check, timeout)


@pytest.fixture(scope="module")
def timeout_job(backend: SlurmBackend, accounts: str, workdir: Path) -> Iterator[str]:
    """A job over its one-minute limit, started first so the wait overlaps the rest."""
    req = make_request(workdir, "sleep 600", time_limit=60)
    yield backend.submit(req).backend_id


def test_submit_poll_usage_and_harmless_name(backend: SlurmBackend, accounts: str,
                                             workdir: Path, timeout_job: str) -> None:
    canary = workdir / "canary"
    canary.write_text("still here")
    hog = "python3 -c 'import time; b=bytearray(50<<20); time.sleep(3)'"
    req = make_request(workdir, f"echo \"$FOO\"; {hog}; exit 3",
                       name="--wrap=rm -rf " + str(canary), environment={"FOO": "a,b c"})
    bid = backend.submit(req).backend_id
    status = wait_terminal(backend, [bid])[bid]
    assert status.state is JobState.FAILED and status.exit_code == 3
    assert status.platform_job_id == req.job_id
    assert canary.exists()
    # %j names the platform's job number, as the platform expects the file.
    assert (workdir / f"{req.job_id}-{req.job_number}.out").read_text().strip() == "a,b c"
    record = wait_until(lambda: backend.usage([bid]).get(bid), 30)
    assert record.name == req.name and record.platform_job_id == req.job_id
    assert record.account == JOBS and record.partition == "cpu"
    assert record.state is JobState.FAILED and record.exit_code == 3
    assert record.tres.cpu == 1 and record.tres.mem == 256
    assert record.max_rss >= 40 << 20 and record.cpu_time > 0
    assert record.elapsed >= 0 and record.end_time is not None


def test_cancel(backend: SlurmBackend, accounts: str, workdir: Path) -> None:
    bid = backend.submit(make_request(workdir, "sleep 120")).backend_id
    wait_state(backend, bid, {JobState.RUNNING, JobState.PENDING})
    backend.cancel(bid)
    status = wait_state(backend, bid, {JobState.CANCELLED})
    assert status
    backend.cancel(bid)  # cancelling a finished job does nothing


def test_array_one_id_per_task(backend: SlurmBackend, accounts: str, workdir: Path) -> None:
    req = make_request(workdir, "sleep 1; exit $SLURM_ARRAY_TASK_ID",
                       array=ArraySpec((1, 2, 4), max_running=2),
                       stdout=str(workdir / "arr-%A_%a.out"))
    result = backend.submit(req)
    assert result.task_backend_ids == {i: f"{result.backend_id}_{i}" for i in (1, 2, 4)}
    ids = list(result.task_backend_ids.values())
    first = backend.poll(ids)
    assert set(first) == set(ids)
    done = wait_terminal(backend, ids)
    assert [done[b].exit_code for b in ids] == [1, 2, 4]
    usage = wait_until(lambda: (u := backend.usage(ids)) and len(u) == 3 and u, 30)
    assert all(u.platform_job_id == req.job_id for u in usage.values())


def test_dependency(backend: SlurmBackend, accounts: str, workdir: Path) -> None:
    first = backend.submit(make_request(workdir, "sleep 4")).backend_id
    second = backend.submit(make_request(workdir, "true", dependencies=[
        BackendDependency(DependencyKind.AFTEROK, (first,))])).backend_id
    status = backend.poll([second])[second]
    assert status.state is JobState.PENDING and status.reason == "Dependency"
    done = wait_terminal(backend, [first, second])
    assert done[second].state is JobState.COMPLETED
    assert done[second].start_time >= done[first].end_time


def test_slurm_refusals_are_rejected(backend: SlurmBackend, accounts: str,
                                     workdir: Path) -> None:
    with pytest.raises(BackendRejected, match=r"(?i)partition"):
        backend.submit(make_request(workdir, "true", partition="nope"))
    with pytest.raises(BackendRejected, match=r"(?i)account"):
        backend.submit(make_request(workdir, "true", account="no-such-account"))
    with pytest.raises(BackendRejected, match=r"(?i)node configuration|not available|processors"):
        backend.submit(make_request(workdir, "true", cpus=64))
    with pytest.raises(BackendRejected, match=r"(?i)time limit"):
        backend.submit(make_request(workdir, "true", time_limit=3 * 86400))


def test_cluster_views_and_estimate(backend: SlurmBackend, accounts: str,
                                    workdir: Path) -> None:
    nodes = {n.name: n for n in backend.nodes()}
    assert nodes["g1"].gpus == 2 and nodes["g1"].gpu_type == "a100"
    parts = {p.partition.name: p for p in backend.partitions()}
    assert {"cpu", "gpu"} <= set(parts)
    assert parts["gpu"].total.gpu == 2 and parts["cpu"].total.cpu == 8
    start = backend.estimate_start(make_request(workdir, "true"))
    assert start is not None
    gpu = make_request(workdir, "nvidia-smi || true", partition="gpu",
                       allocation=Allocation(Tres(1, 256, 1, 0), 1, 1, 256, 1, "a100"))
    bid = backend.submit(gpu).backend_id
    record = wait_until(lambda: backend.usage([bid]).get(bid), 60)
    assert record.tres.gpu == 1 and record.gpu_type == "a100"


def test_external_sbatch_job_is_ingested_once(testbed: Bed, backend: SlurmBackend,
                                              accounts: str, workdir: Path) -> None:
    begin = int(time.time()) - 5
    out = testbed.run("sbatch", "--parsable", f"--account={JOBS}", "--partition=cpu",
                      "--time=1", f"--output={workdir}/ext-%j.out",
                      input_text="#!/bin/bash\necho external\n").stdout
    ext_id = out.strip().split(";")[0]
    ours = backend.submit(make_request(workdir, "true")).backend_id
    wait_terminal(backend, [ext_id, ours])
    ing = AccountingIngester(testbed.config(), overlap=120, settle=0, batch_size=1,
                             start=begin)
    got: list[UsageRecord] = []
    cursor = wait_until(lambda: (c := ing.run(IngestCursor(), lambda b, c: None))
                        and c, 5)
    assert cursor.since >= begin

    def sink(batch: list[UsageRecord], cursor: IngestCursor) -> None:
        got.extend(batch)

    def both_seen() -> bool:
        got.clear()
        ing.run(IngestCursor(), sink)
        return {ext_id, ours} <= {r.backend_id for r in got}

    wait_until(both_seen, 30)
    ext = next(r for r in got if r.backend_id == ext_id)
    assert ext.platform_job_id is None and ext.user == "root" and ext.account == JOBS
    assert ext.state is JobState.COMPLETED and ext.exit_code == 0
    # Resume after a failure in the middle of the batches: nothing lost, nothing twice.
    got.clear()
    stored = IngestCursor()
    calls = {"n": 0}

    def flaky(batch: list[UsageRecord], cursor: IngestCursor) -> None:
        nonlocal stored
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("store failed")
        got.extend(batch)
        stored = cursor

    with pytest.raises(RuntimeError):
        ing.run(IngestCursor(), flaky)
    final = ing.run(stored, flaky)
    ids = [r.backend_id for r in got]
    assert len(ids) == len(set(ids)) and {ext_id, ours} <= set(ids)
    got.clear()
    ing.run(final, sink)
    assert not {ext_id, ours} & {r.backend_id for r in got}


def test_crash_between_sbatch_and_commit_adopts(testbed: Bed, backend: SlurmBackend,
                                                accounts: str, workdir: Path) -> None:
    req = make_request(workdir, "sleep 2")
    lost = backend.submit(req)  # the service dies before storing this id
    restarted = SlurmBackend(testbed.config(check_before_submit=True))
    found = restarted.find_by_platform_id(req.job_id)
    assert [s.backend_id for s in found] == [lost.backend_id]
    again = restarted.submit(req)  # a retried dispatch adopts instead of resubmitting
    assert again.backend_id == lost.backend_id
    wait_terminal(backend, [lost.backend_id])
    # Still found once finished (from the accounting database if purged from the queue).
    assert [s.backend_id for s in restarted.find_by_platform_id(req.job_id)] == [
        lost.backend_id]
    names = testbed.run("squeue", "-h", "-o", "%k").stdout.split()
    assert names.count(f"lightgrid:{req.job_id}") <= 1


def test_association_sync_round_trip_and_drift(testbed: Bed, accounts: str) -> None:
    top = "lgsync"
    testbed.run("sacctmgr", "-i", "add", "account", top, "parent=root", check=False)
    sync = AssociationSync(testbed.config(), managed_root=top)
    desired = AssociationState(
        accounts=(AccountSpec("lgs-org", top), AccountSpec("lgs-p1", "lgs-org"),
                  AccountSpec("lgs-p2", "lgs-org")),
        users=(UserSpec("lgsuser1", ("lgs-p1", "lgs-p2")), UserSpec("lgsuser2", ("lgs-p2",))),
        blocked_accounts=frozenset({"lgs-p2"}))
    report = sync.sync(desired)
    assert report.ok, report.failed
    assert sync.drift(desired) == []
    current = sync.current()
    assert {a.name: a.parent for a in current.accounts} == {
        "lgs-org": top, "lgs-p1": "lgs-org", "lgs-p2": "lgs-org"}
    assert current.blocked_accounts == {"lgs-p2"}
    # Someone changes Slurm by hand: drift is seen and repaired.
    testbed.run("sacctmgr", "-i", "remove", "user", "where", "name=lgsuser1",
                "account=lgs-p1")
    testbed.run("sacctmgr", "-i", "add", "account", "lgs-rogue", "parent=lgs-org")
    testbed.run("sacctmgr", "-i", "modify", "account", "where", "name=lgs-p2", "set",
                "GrpSubmitJobs=-1", "GrpJobs=-1")
    drift = sync.drift(desired)
    assert {"add-user lgsuser1@lgs-p1", "remove-account lgs-rogue",
            "block-account lgs-p2"} <= set(drift)
    assert sync.sync(desired).ok
    assert sync.drift(desired) == []
    # Removing everything from the desired state removes it from Slurm.
    assert sync.sync(AssociationState()).ok
    assert sync.current() == AssociationState()


def test_block_survives_slurmctld_restart(testbed: Bed, backend: SlurmBackend,
                                          accounts: str, workdir: Path) -> None:
    sync = AssociationSync(testbed.config(), managed_root=ROOT)
    blocked = AssociationState(
        accounts=(AccountSpec(JOBS, ROOT), AccountSpec("lgt-blocked", ROOT)),
        users=(UserSpec("root", (JOBS, "lgt-blocked")),),
        blocked_accounts=frozenset({"lgt-blocked"}))
    assert sync.sync(blocked).ok
    req = make_request(workdir, "true", account="lgt-blocked")

    def refused(attempt: str) -> bool:
        # slurmdbd pushes association changes to slurmctld a moment after sacctmgr.
        try:
            bid = backend.submit(dataclasses.replace(req, job_id=attempt + uuid.uuid4().hex))
        except BackendRejected as exc:
            assert "policy" in exc.message.lower() or "limit" in exc.message.lower()
            return True
        backend.cancel(bid.backend_id)
        return False

    wait_until(lambda: refused("before-restart"), 20)
    testbed.ctld("restart")
    assert refused("after-restart")
    assert sync.drift(blocked) == []
    unblocked = dataclasses.replace(blocked, blocked_accounts=frozenset())
    assert sync.sync(unblocked).ok
    wait_until(lambda: not refused("unblocked") or None, 20)
    bid = backend.submit(dataclasses.replace(req, job_id="unblocked")).backend_id
    assert wait_terminal(backend, [bid])[bid].state is JobState.COMPLETED


def test_slurmctld_down_then_back_loses_nothing(testbed: Bed, backend: SlurmBackend,
                                                accounts: str, workdir: Path) -> None:
    # Four jobs of four CPUs on two four-CPU nodes: two run, two wait.
    bids = [backend.submit(make_request(workdir, "sleep 5", cpus=4)).backend_id
            for _ in range(4)]
    wait_until(lambda: any(s.state is JobState.PENDING
                           for s in backend.poll(bids).values()), 20)
    testbed.ctld("stop")
    try:
        with pytest.raises(BackendUnavailable) as info:
            backend.submit(make_request(workdir, "true"))
        assert info.value.retryable
        with pytest.raises(BackendUnavailable):
            backend.poll(bids)
    finally:
        testbed.ctld("start")
    done = wait_terminal(backend, bids, timeout=120)
    assert all(done[b].state is JobState.COMPLETED for b in bids)


def test_time_limit_kill(backend: SlurmBackend, timeout_job: str) -> None:
    """Runs last: the one-minute job has been running throughout the module."""
    status = wait_state(backend, timeout_job, {JobState.TIMEOUT}, timeout=150)
    assert status
