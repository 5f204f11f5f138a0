"""Jobs through the REST API, on the embedded backend, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from lightgrid.center.service import Center
from lightgrid.store.models import Job
from tests.conftest import Tenants
from tests.helpers import script, submit, wait_for


def test_array_job_runs_every_task_and_each_has_its_own_output(
        api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    out = submit(api, h, script('echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_JOB_ID"',
                                "--array=0-9", "-A p1", "-t 1"))
    assert len(out["jobs"]) == 10
    rows = wait_for(api, h, out["job_id"])
    assert {r["state"] for r in rows} == {"COMPLETED"}
    assert sorted(r["array_task_id"] for r in rows) == list(range(10))
    for row in rows:
        text = api.get(f"/api/v1/jobs/{row['job_id']}/output", headers=h).text
        assert text == f"task {row['array_task_id']} of {out['job_number']}\n"
        assert row["stdout"].endswith(f"slurm-{out['job_number']}_{row['array_task_id']}.out")


def test_failed_job_records_exit_code_and_usage(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    out = submit(api, h, script("echo oops >&2; exit 3", "-A p1", "-e err.txt"))
    # The response already tells that the backend took the job.
    assert out["jobs"][0]["backend_id"] is not None
    assert out["jobs"][0]["reason"] == "Priority"
    [row] = wait_for(api, h, out["job_id"])
    assert row["state"] == "FAILED"
    assert row["exit_code"] == 3
    assert row["elapsed"] is not None and row["cpu_time"] is not None
    err = api.get(f"/api/v1/jobs/{out['job_id']}/output?stream=stderr", headers=h)
    assert err.text == "oops\n"
    events = api.get(f"/api/v1/jobs/{out['job_id']}/events", headers=h).json()
    assert [e["to_state"] for e in events] == ["PENDING", "RUNNING", "FAILED"]


def test_time_limit_kills_job_as_timeout(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    # --time=0:02 is two seconds (MM:SS); the runner sends SIGTERM, then SIGKILL.
    out = submit(api, h, script("trap '' TERM; sleep 60", "-A p1", "--time=0:02"))
    [row] = wait_for(api, h, out["job_id"], timeout=20)
    assert row["state"] == "TIMEOUT"
    assert 2 <= row["elapsed"] <= 8


def test_cancel_pending_and_running(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    running = submit(api, h, script("sleep 30", "-A p1", "-N 2", "--exclusive"))
    wait_for(api, h, running["job_id"], {"RUNNING"})
    pending = submit(api, h, script("true", "-A p1", "-n 2"))  # no node free: waits
    rows = wait_for(api, h, pending["job_id"], {"PENDING"})
    assert rows[0]["state"] == "PENDING"
    cancelled = api.post(f"/api/v1/jobs/{pending['job_id']}/cancel", headers=h)
    assert cancelled.status_code == 200
    assert cancelled.json()[0]["state"] == "CANCELLED"
    api.post(f"/api/v1/jobs/{running['job_id']}/cancel", headers=h)
    [row] = wait_for(api, h, running["job_id"])
    assert row["state"] == "CANCELLED"
    again = api.post(f"/api/v1/jobs/{running['job_id']}/cancel", headers=h)
    assert again.status_code == 409


def test_dependency_afterok_waits_and_afternotok_never_runs(
        api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    first = submit(api, h, script("sleep 1; echo first", "-A p1"))
    ok = submit(api, h, script("echo second", "-A p1",
                               f"--dependency=afterok:{first['job_id']}"))
    notok = submit(api, h, script("echo never", "-A p1",
                                  f"--dependency=afternotok:{first['job_id']}"))
    [a] = wait_for(api, h, first["job_id"])
    [b] = wait_for(api, h, ok["job_id"])
    [c] = wait_for(api, h, notok["job_id"])
    assert (a["state"], b["state"], c["state"]) == ("COMPLETED", "COMPLETED", "CANCELLED")
    assert b["start_time"] >= a["end_time"]
    assert c["reason"] == "DependencyNeverSatisfied"


def test_array_throttle_limits_running_tasks(api: TestClient, tenants: Tenants,
                                             center: Center) -> None:
    h = tenants.headers("alice")
    out = submit(api, h, script("sleep 1", "-A p1", "--array=1-4%1"))
    rows = wait_for(api, h, out["job_id"], timeout=40)
    spans = sorted((r["start_time"], r["end_time"]) for r in rows)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert start >= end  # never two tasks at once


def test_requeue_finished_job_runs_again(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    out = submit(api, h, script("echo run", "-A p1", "-o out.txt"))
    wait_for(api, h, out["job_id"])
    response = api.post(f"/api/v1/jobs/{out['job_id']}/requeue", headers=h)
    assert response.status_code == 200
    [row] = wait_for(api, h, out["job_id"])
    assert row["state"] == "COMPLETED"
    assert api.get(f"/api/v1/jobs/{out['job_id']}/output", headers=h).text == "run\nrun\n"
    states = [e["to_state"] for e in
              api.get(f"/api/v1/jobs/{out['job_id']}/events", headers=h).json()]
    assert states.count("COMPLETED") == 2 and "PENDING" in states[1:]


def test_output_follow_offsets(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    out = submit(api, h, script("echo one; sleep 1.5; echo two", "-A p1"))
    wait_for(api, h, out["job_id"], {"RUNNING", "COMPLETED"})
    first = api.get(f"/api/v1/jobs/{out['job_id']}/output", headers=h)
    offset = int(first.headers["X-Next-Offset"])
    wait_for(api, h, out["job_id"])
    rest = api.get(f"/api/v1/jobs/{out['job_id']}/output?offset={offset}", headers=h)
    assert (first.text + rest.text) == "one\ntwo\n"
    assert rest.headers["X-Job-State"] == "COMPLETED"
    tail = api.get(f"/api/v1/jobs/{out['job_id']}/output?tail=1", headers=h)
    assert tail.text == "two\n"


def test_json_spec_submission(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    response = api.post("/api/v1/jobs", headers=h, json={"spec": {
        "script": "echo $SLURM_JOB_NAME", "name": "from-json", "account": "p1",
        "ntasks": 2, "mem": "1G", "time": 5}})
    assert response.status_code == 201, response.text
    job = response.json()["jobs"][0]
    assert (job["name"], job["tres"]["cpu"], job["tres"]["mem"], job["time_limit"]) == (
        "from-json", 2, 1024, 300)
    wait_for(api, h, job["job_id"])
    assert api.get(f"/api/v1/jobs/{job['job_id']}/output", headers=h).text == "from-json\n"


def test_unknown_directives_are_reported(api: TestClient, tenants: Tenants) -> None:
    out = submit(api, tenants.headers("alice"),
                 script("true", "-A p1", "--mail-type=END", "--constraint=fast"))
    assert len(out["warnings"]) == 2
    assert out["warnings"][0].startswith("line 3:")
    assert "mail-type" in out["warnings"][0]


def _count(center: Center) -> int:
    with center.factory() as s:
        return int(s.scalar(select(func.count()).select_from(Job)) or 0)


BAD = [
    ("#!/bin/bash\n#SBATCH --time=1:2:3:4\ntrue\n", [], "time", "line 2"),
    ("#!/bin/bash\n#SBATCH -A p1 -p nosuch\ntrue\n", [], "partition", "nosuch"),
    ("#!/bin/bash\n#SBATCH -A nosuch\ntrue\n", [], "account", "nosuch"),
    ("#!/bin/bash\n#SBATCH -A p3\ntrue\n", [], "account", "p3"),
    ("#!/bin/bash\n#SBATCH -A p1\n#SBATCH -c 9\ntrue\n", [], "cpus", "largest node"),
    ("#!/bin/bash\n#SBATCH -A p1\n#SBATCH --mem=17G\ntrue\n", [], "mem", "memory"),
    ("#!/bin/bash\n#SBATCH -A p1\n#SBATCH -N 3\ntrue\n", [], "nodes", "3 nodes"),
    ("#!/bin/bash\n#SBATCH -A p1\n#SBATCH -p gpu\n#SBATCH --gres=gpu:h100:1\ntrue\n", [],
     "gres", "h100"),
    ("#!/bin/bash\n#SBATCH -A p1\n#SBATCH -t 2-00:00:00\ntrue\n", [], "time_limit",
     "exceeds"),
    ("#!/bin/bash\n#SBATCH -A p1\n#SBATCH -N -1\ntrue\n", [], "nodes", "line 3"),
    ("#!/bin/bash\n#SBATCH -A p1\n#SBATCH --dependency=afterok:999999\ntrue\n", [], "job",
     "999999"),
    ("#!/bin/bash\ntrue\n", ["-A", "p1", "--array=0-99999999"], "array", "array"),
    ("#!/bin/bash\ntrue\n", [], "account", "no account"),
    ("", [], "script", "empty"),
]


def test_bad_input_gets_4xx_naming_the_field_and_stores_nothing(
        api: TestClient, tenants: Tenants, center: Center) -> None:
    h = tenants.headers("alice")
    submit(api, h, script("true", "-A p1"))
    before = _count(center)
    for text, args, field, fragment in BAD:
        response = api.post("/api/v1/jobs", json={"script": text, "args": args}, headers=h)
        assert 400 <= response.status_code < 500, (text, response.text)
        error = response.json()["error"]
        assert field in (error.get("field") or ""), (text, error)
        assert fragment in error["message"], (text, error)
    assert _count(center) == before


def test_malformed_body_is_422_with_field(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    response = api.post("/api/v1/jobs", json={"spec": {"script": "true", "nodes": 0}},
                        headers=h)
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "spec.nodes"
    response = api.post("/api/v1/jobs", json={"script": "x", "spec": {"script": "y"}},
                        headers=h)
    assert response.status_code == 400


def test_list_is_paginated_and_filtered(api: TestClient, tenants: Tenants) -> None:
    h = tenants.headers("alice")
    for i in range(5):
        submit(api, h, script("true", "-A p1" if i % 2 else "-A p2", f"-J j{i}"))
    seen = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/jobs", params=params, headers=h).json()
        seen.extend(j["name"] for j in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [f"j{i}" for i in range(5)]
    p2 = api.get("/api/v1/jobs", params={"project": "p2"}, headers=h).json()["items"]
    assert [j["name"] for j in p2] == ["j0", "j2", "j4"]
    none = api.get("/api/v1/jobs", params={"partition": "gpu"}, headers=h).json()["items"]
    assert none == []
    bad = api.get("/api/v1/jobs", params={"state": "DONE"}, headers=h)
    assert bad.status_code == 400 and bad.json()["error"]["field"] == "state"
