"""Parsing of captured Slurm 22.05 output; needs no Slurm."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lightgrid.backends.slurm import parse
from lightgrid.core.jobs import JobState

DATA = Path(__file__).parent / "data"


def load(name: str) -> dict:
    return json.loads((DATA / name).read_text())


@pytest.mark.parametrize(("slurm", "ours"), [
    ("PENDING", JobState.PENDING), ("REQUEUED", JobState.PENDING),
    ("REQUEUE_HOLD", JobState.PENDING), ("SPECIAL_EXIT", JobState.PENDING),
    ("RUNNING", JobState.RUNNING), ("CONFIGURING", JobState.RUNNING),
    ("COMPLETING", JobState.RUNNING), ("SUSPENDED", JobState.RUNNING),
    ("STOPPED", JobState.RUNNING), ("STAGE_OUT", JobState.RUNNING),
    ("COMPLETED", JobState.COMPLETED), ("FAILED", JobState.FAILED),
    ("CANCELLED by 0", JobState.CANCELLED), ("PREEMPTED", JobState.CANCELLED),
    ("TIMEOUT", JobState.TIMEOUT), ("DEADLINE", JobState.TIMEOUT),
    ("NODE_FAIL", JobState.NODE_FAIL), ("BOOT_FAIL", JobState.NODE_FAIL),
    ("OUT_OF_MEMORY", JobState.OUT_OF_MEMORY), ("REVOKED", JobState.CANCELLED),
])
def test_state_mapping(slurm: str, ours: JobState) -> None:
    assert parse.map_state(slurm) is ours


def test_every_state_is_mapped_and_unknown_refused() -> None:
    assert set(parse.SLURM_STATES.values()) == set(JobState)
    with pytest.raises(ValueError):
        parse.map_state("EXPLODED")


def test_reasons() -> None:
    assert parse.describe_reason("Resources").startswith("waiting")
    assert "association" in parse.describe_reason("AssocGrpSubmitJobsLimit")
    assert parse.is_blocked_reason("AssocGrpJobsLimit")
    assert parse.is_blocked_reason("DependencyNeverSatisfied")
    assert not parse.is_blocked_reason("Priority")


def test_exit_codes() -> None:
    assert parse.exit_code_from_status(768) == 3
    assert parse.exit_code_from_status(15) == 128 + 15
    assert parse.exit_code_from_status(0) == 0
    assert parse.exit_code_from_text("3:0") == 3
    assert parse.exit_code_from_text("0:9") == 137
    assert parse.parse_exit_codes((DATA / "sacct-exit.txt").read_text()) == {
        "9": 3, "10_1": 3, "10_2": 3, "10_3": 3}


def test_durations_gres_arrays() -> None:
    assert parse.parse_duration("1-00:00:00") == 86400
    assert parse.parse_duration("00:10:00") == 600
    assert parse.parse_duration("10:30") == 630
    assert parse.parse_duration("5") == 300
    assert parse.parse_duration("UNLIMITED") is None
    assert parse.parse_gres("gpu:a100:2(S:0-1)") == (2, "a100")
    assert parse.parse_gres("gpu:a100:0(IDX:N/A)") == (0, "a100")
    assert parse.parse_gres("(null)") == (0, None)
    assert parse.expand_array_tasks("2-4%1") == [2, 3, 4]
    assert parse.expand_array_tasks("1,4-8:2") == [1, 4, 6, 8]
    assert parse.bitmap_tasks("0xC") == [2, 3]


def test_squeue_sample() -> None:
    jobs = parse.queued_jobs(load("squeue.json"))
    statuses = parse.queue_statuses(jobs, "lightgrid:")
    # A failed job: raw wait status 768 is exit code 3.
    assert statuses["9"].state is JobState.FAILED and statuses["9"].exit_code == 3
    assert statuses["9"].platform_job_id == "p1"
    # A pending array record stands for each of its tasks not yet split off.
    assert statuses["13_1"].state is JobState.RUNNING
    for task in ("13_2", "13_3", "13_4"):
        assert statuses[task].state is JobState.PENDING
        assert statuses[task].reason == "JobArrayTaskLimit"
        assert statuses[task].platform_job_id == "arr1"
    assert statuses["14"].reason == "Dependency"
    assert statuses["14"].start_time is None


def test_sacct_sample_usage() -> None:
    codes = parse.parse_exit_codes((DATA / "sacct-exit.txt").read_text())
    records = [parse.usage_record(j, "lightgrid:", codes) for j in load("sacct.json")["jobs"]]
    by_id = {r.backend_id: r for r in records if r}
    rec = by_id["9"]
    assert rec.state is JobState.FAILED and rec.exit_code == 3
    assert rec.platform_job_id == "p1" and rec.account == "acct1"
    assert rec.tres.cpu == 1 and rec.tres.mem == 512
    assert rec.max_rss > 0 and rec.cpu_time >= 0 and rec.elapsed >= 0
    assert rec.end_time is not None and rec.end_time.tzinfo is UTC
    assert {"10_1", "10_2", "10_3"} <= set(by_id)


def test_sinfo_and_partitions() -> None:
    nodes = parse.nodes_from_sinfo(load("sinfo.json"))
    g1 = next(n for n in nodes if n.name == "g1")
    assert (g1.gpus, g1.gpu_type, g1.partitions) == (2, "a100", ("gpu",))
    records = parse.parse_oneliner((DATA / "partitions.txt").read_text())
    parts = {p.partition.name: p for p in parse.partitions_from(records, nodes)}
    assert parts["cpu"].partition.max_time == 86400
    assert parts["cpu"].partition.default_time == 600
    assert parts["gpu"].total.gpu == 2
    assert parts["gpu"].partition.gpu_types == {"a100"}


def test_test_only_output() -> None:
    text = ("sbatch: Job 5 to start at 2026-11-25T01:45:54 using 1 processors on nodes c1 "
            "in partition cpu")
    assert parse.parse_test_only(text) == datetime(2026, 11, 25, 1, 45, 54, tzinfo=UTC)
    assert parse.parse_test_only("nothing") is None
