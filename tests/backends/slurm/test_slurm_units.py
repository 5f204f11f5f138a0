"""Slurm backend pieces that need no cluster: argv, errors, ingestion cursor, sync plan."""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lightgrid.backends.base import BackendDependency, SubmitRequest, UsageRecord
from lightgrid.backends.slurm import (
    AccountingIngester,
    AccountSpec,
    AssociationState,
    AssociationSync,
    IngestCursor,
    SlurmBackend,
    SlurmConfig,
    UserSpec,
)
from lightgrid.backends.slurm.commands import SlurmTimeout, clean_message
from lightgrid.core.errors import BackendRejected, BackendUnavailable, InvalidRequest
from lightgrid.core.jobs import ArraySpec, DependencyKind, JobState
from lightgrid.core.resources import Allocation, Tres

FAKE_SBATCH = """#!/usr/bin/env python3
import json, os, sys
log = os.environ.get("SLURM_CONF") + ".calls"
mode = open(os.path.dirname(log) + "/mode").read().strip()
fd_file = [a.split("=", 1)[1] for a in sys.argv if a.startswith("--export-file=")]
env_text = os.read(int(fd_file[0]), 65536).decode() if fd_file else ""
with open(log, "a") as fh:
    fh.write(json.dumps({"argv": sys.argv[1:], "stdin": sys.stdin.read(),
                         "env": env_text, "environ": sorted(os.environ)}) + "\\n")
if mode == "down":
    sys.stderr.write("sbatch: error: Batch job submission failed: Unable to contact slurm "
                     "controller (connect failure)\\n")
    sys.exit(1)
if mode == "reject":
    sys.stderr.write("sbatch: error: Batch job submission failed: Invalid account or "
                     "account/partition combination specified\\n")
    sys.exit(1)
if mode == "hang":
    import time; time.sleep(10)
print("42;testcluster")
"""


def request(**kw: object) -> SubmitRequest:
    base: dict[str, object] = dict(
        job_id="job-1", job_number=1, name="n", user="alice", account="lab",
        partition="cpu", allocation=Allocation(Tres(4, 2048, 0, 0), 1, 4, 2048, 0),
        time_limit=90, script="#!/bin/bash\necho hi\n", workdir="/tmp", stdout="/tmp/o",
        stderr="/tmp/e")
    base.update(kw)
    return SubmitRequest(**base)  # type: ignore[arg-type]


@pytest.fixture
def fake(tmp_path: Path) -> tuple[SlurmBackend, Path]:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    tool = bindir / "sbatch"
    tool.write_text(FAKE_SBATCH)
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    (tmp_path / "mode").write_text("ok")
    conf = tmp_path / "slurm.conf"
    cfg = SlurmConfig(slurm_conf=conf, cluster="testcluster", bin_dir=bindir,
                      command_timeout=2)
    return SlurmBackend(cfg), tmp_path


def calls(tmp: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp / "slurm.conf.calls").read_text().splitlines()]


def test_argv_keeps_user_text_inside_one_element() -> None:
    backend = SlurmBackend(SlurmConfig(slurm_conf=Path("/x"), cluster="c"))
    args = backend.sbatch_args(request(name="--wrap=rm -rf /", account="lab"))
    assert "--job-name=--wrap=rm -rf /" in args
    assert not any(a.startswith("--wrap") for a in args)
    assert "--comment=lightgrid:job-1" in args
    assert "--time=2" in args  # 90 s rounds up to whole minutes
    assert "--cpus-per-task=4" in args and "--mem=2048M" in args
    with pytest.raises(InvalidRequest):
        backend.sbatch_args(request(name="a\n#SBATCH --uid=0"))


def test_argv_task_layout_comment_and_output_names() -> None:
    backend = SlurmBackend(SlurmConfig(slurm_conf=Path("/x"), cluster="c"))
    args = backend.sbatch_args(request(ntasks=4, cpus_per_task=1, comment="calib run",
                                       job_number=7, stdout="/w/out-%j-%x-%%.txt"))
    layout = [a for a in args if a.startswith(("--nodes", "--ntasks", "--cpus-per-task"))]
    assert layout == ["--nodes=1", "--ntasks=4", "--cpus-per-task=1"]
    assert "--comment=lightgrid:job-1 calib run" in args
    assert "--output=/w/out-7-n-%%.txt" in args  # the platform's number, not Slurm's
    # A layout that does not give the allocation falls back to one task per node.
    fallback = backend.sbatch_args(request(ntasks=1, cpus_per_task=1))
    assert "--ntasks-per-node=1" in fallback and "--cpus-per-task=4" in fallback
    arr = backend.sbatch_args(request(array=ArraySpec((1, 2)), job_number=9,
                                      stdout="/w/%A_%a-%j.out"))
    assert "--output=/w/9_%a-%j.out" in arr  # per-task values stay Slurm's


def test_argv_gpus_arrays_dependencies() -> None:
    backend = SlurmBackend(SlurmConfig(slurm_conf=Path("/x"), cluster="c"))
    args = backend.sbatch_args(request(
        allocation=Allocation(Tres(8, 8192, 2, 1), 1, 8, 8192, 2, "a100"),
        array=ArraySpec((1, 2, 3, 7), max_running=2),
        dependencies=[BackendDependency(DependencyKind.AFTEROK, ("12", "13_2"))]))
    assert "--gres=gpu:a100:2" in args and "--exclusive" in args
    assert "--array=1-3,7%2" in args
    assert "--dependency=afterok:12:13_2" in args
    with pytest.raises(InvalidRequest):
        backend.sbatch_args(request(dependencies=[
            BackendDependency(DependencyKind.AFTER, ("1,2 --uid=0",))]))


def test_submit_passes_script_on_stdin_and_env_by_fd(fake: tuple[SlurmBackend, Path]) -> None:
    backend, tmp = fake
    os.environ["SBATCH_ACCOUNT"] = "stolen"  # must not reach sbatch
    try:
        result = backend.submit(request(environment={"FOO": "a,b c", "BAR": "x=y"}))
    finally:
        del os.environ["SBATCH_ACCOUNT"]
    assert result.backend_id == "42"
    call = calls(tmp)[0]
    assert call["stdin"] == "#!/bin/bash\necho hi\n"
    assert call["env"] == "FOO=a,b c\0BAR=x=y\0"
    assert "SBATCH_ACCOUNT" not in call["environ"]
    assert call["argv"][0] == "--parsable"
    arr = backend.submit(request(array=ArraySpec((0, 5))))
    assert arr.task_backend_ids == {0: "42_0", 5: "42_5"}


def test_errors_are_mapped(fake: tuple[SlurmBackend, Path]) -> None:
    backend, tmp = fake
    (tmp / "mode").write_text("reject")
    with pytest.raises(BackendRejected, match="Invalid account"):
        backend.submit(request())
    (tmp / "mode").write_text("down")
    with pytest.raises(BackendUnavailable) as info:
        backend.submit(request())
    assert info.value.retryable
    (tmp / "mode").write_text("hang")
    with pytest.raises(SlurmTimeout):
        backend.submit(request(job_id="slow"))
    assert "slow" in backend._uncertain


def test_missing_tool_is_unavailable(tmp_path: Path) -> None:
    backend = SlurmBackend(SlurmConfig(slurm_conf=tmp_path / "c", cluster="c",
                                       bin_dir=tmp_path))
    with pytest.raises(BackendUnavailable):
        backend.cancel("1")
    with pytest.raises(InvalidRequest):
        backend.cancel("1; rm -rf /")


def test_clean_message() -> None:
    text = "sbatch: error: invalid partition specified: nope\nsbatch: error: Batch job " \
           "submission failed: Invalid partition name specified\n"
    assert clean_message(text) == ("invalid partition specified: nope; Batch job submission "
                                   "failed: Invalid partition name specified")


# ---------------------------------------------------------------- ingestion cursor


def rec(bid: str, end: int) -> UsageRecord:
    t = datetime.fromtimestamp(end, tz=UTC)
    return UsageRecord(backend_id=bid, platform_job_id=None, cluster="c", user="u",
                       account="a", partition="cpu", state=JobState.COMPLETED, exit_code=0,
                       submit_time=t, start_time=t, end_time=t, elapsed=0, cpu_time=0.0,
                       max_rss=0, tres=Tres(1, 1, 0, 0))


class FakeIngester(AccountingIngester):
    def __init__(self, records: list[UsageRecord], **kw: int) -> None:
        super().__init__(SlurmConfig(slurm_conf=Path("/x"), cluster="c"), **kw)
        self.records = records

    def fetch(self, start: int, end: int) -> list[UsageRecord]:
        return [r for r in self.records
                if r.end_time and start <= r.end_time.timestamp() <= end]


def test_ingestion_overlap_dedup_and_resume() -> None:
    records = [rec(str(i), 1000 + i) for i in range(10)]
    ing = FakeIngester(records, overlap=50, settle=0, batch_size=3, start=900)
    got: list[str] = []
    stored = IngestCursor()
    fail_on = {"batch": 2}

    def sink(batch: list[UsageRecord], cursor: IngestCursor) -> None:
        nonlocal stored
        fail_on["batch"] -= 1
        if fail_on["batch"] == 0:
            raise RuntimeError("store down")
        got.extend(r.backend_id for r in batch)
        stored = cursor  # the store commits records and cursor together

    with pytest.raises(RuntimeError):
        ing.run(IngestCursor(), sink, now=1005)
    cursor = IngestCursor.from_json(stored.to_json())
    fail_on["batch"] = -1
    cursor = ing.run(cursor, sink, now=1005)
    assert got == ["0", "1", "2", "3", "4", "5"]
    # A job slurmdbd learns of late (ended inside the overlap) is still picked up once.
    ing.records.append(rec("late", 1001))
    cursor = ing.run(cursor, sink, now=1020)
    cursor = ing.run(cursor, sink, now=1030)
    assert sorted(got) == sorted([str(i) for i in range(10)] + ["late"])
    assert len(got) == len(set(got))


# ---------------------------------------------------------------- association plan


def test_association_plan() -> None:
    sync = AssociationSync(SlurmConfig(slurm_conf=Path("/x"), cluster="c"))
    current = AssociationState(
        accounts=(AccountSpec("org1"), AccountSpec("oldproj", "org1"),
                  AccountSpec("proj1", "root")),
        users=(UserSpec("bob", ("oldproj",)),),
        blocked_accounts=frozenset({"proj1"}))
    desired = AssociationState(
        accounts=(AccountSpec("proj1", "org1"), AccountSpec("org1"),
                  AccountSpec("proj2", "org1")),
        users=(UserSpec("alice", ("proj1", "proj2")), UserSpec("bob", ("proj2",))),
        blocked_accounts=frozenset({"proj2"}))
    plan = [str(c) for c in sync.plan(desired, current)]
    assert plan.index("add-account proj2") < plan.index("add-user alice@proj1,proj2")
    assert "move-account proj1" in plan
    assert "remove-user bob@oldproj" in plan
    assert "block-account proj2" in plan and "unblock-account proj1" in plan
    assert plan[-1] == "remove-account oldproj"
    assert sync.plan(desired, desired) == []
    with pytest.raises(InvalidRequest):
        sync.plan(AssociationState(accounts=(AccountSpec("x y=1"),)), current)
