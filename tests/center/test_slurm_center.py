"""The center on the Slurm backend, against the real testbed: the API, dispatch,
association sync, outages, blocks, crash recovery and accounting ingestion."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from lightgrid.api.app import create_app
from lightgrid.backends.slurm import AssociationState, AssociationSync
from lightgrid.center import tenancy
from lightgrid.center.auth import issue_token
from lightgrid.center.billing import manage
from lightgrid.center.service import Center
from lightgrid.core.jobs import JobSpec
from lightgrid.settings import NodeTypeSettings, PartitionSettings, Settings, SlurmSettings
from lightgrid.store.models import Job
from lightgrid.store.models.accounting import IngestCursorRow, UsageRow
from lightgrid.store.models.billing import ChargeRow
from tests.backends.slurm.testbed import Testbed, require_testbed
from tests.helpers import script, submit, wait_for

pytestmark = pytest.mark.slurm
T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float = 60,
               interval: float = 0.5) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def partitions() -> list[PartitionSettings]:
    """The testbed's partitions, plus `bigmem`, which the platform has and Slurm not;
    `cpu` allows two days here, Slurm one."""
    return [
        PartitionSettings(name="cpu", default=True, max_time=2 * 86400, default_time=600,
                          node_types=[NodeTypeSettings(name="c", count=2, cores=4,
                                                       mem=4096)]),
        PartitionSettings(name="gpu", max_time=86400, default_time=600,
                          node_types=[NodeTypeSettings(name="g", count=1, cores=4, mem=8192,
                                                       gpus=2, gpu_type="a100")]),
        PartitionSettings(name="bigmem", max_time=86400, default_time=600,
                          node_types=[NodeTypeSettings(name="m", count=1, cores=4,
                                                       mem=4096)]),
    ]


@dataclass
class SlurmCenter:
    """A center on the testbed with one org, two projects, a member and an operator."""

    center: Center
    settings: Settings
    api: TestClient
    tag: str
    tokens: dict[str, str]

    def name(self, base: str) -> str:
        return f"{base}-{self.tag}"

    def headers(self, user: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[user]}"}


@pytest.fixture(scope="module")
def bed() -> Testbed:
    return require_testbed()


def center_settings(bed: Testbed, data: Path, tag: str) -> Settings:
    return Settings(center_name=f"t{tag}", data_dir=data,
                    database_url=f"sqlite:///{data / 'center.db'}", backend="slurm",
                    slurm=SlurmSettings(slurm_conf=bed.conf, cluster=bed.name,
                                        command_timeout=20),
                    partitions=partitions(), poll_interval=0.2, kill_grace_seconds=1)


def seed(center: Center, tag: str) -> dict[str, str]:
    tokens = {}
    with center.factory() as s, s.begin():
        org = tenancy.create_org(s, f"lab-{tag}", "key_laboratory")
        p1 = tenancy.create_project(s, org, f"p1-{tag}")
        p2 = tenancy.create_project(s, org, f"p2-{tag}")
        op = tenancy.create_user(s, "op", center_role="operator")
        fin = tenancy.create_user(s, "fin", center_role="finance")
        alice = tenancy.create_user(s, f"alice-{tag}")
        tenancy.add_member(s, p1, alice)
        tenancy.add_member(s, p2, alice)
        for key, user in (("op", op), ("fin", fin), ("alice", alice)):
            _, tokens[key] = issue_token(s, user, name="test")
    return tokens


def remove_accounts(bed: Testbed, root: str) -> None:
    sync = AssociationSync(bed.config(), managed_root=root)
    accounts = [a.name for a in sync.current().accounts]
    if accounts:
        bed.run("scancel", f"--account={','.join(accounts)}", check=False)
        time.sleep(1)
    sync.sync(AssociationState())
    bed.run("sacctmgr", "-i", "remove", "account", "where", f"name={root}",
            f"cluster={bed.name}", check=False)


@pytest.fixture(scope="module")
def make_center(bed: Testbed, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[Callable[[], SlurmCenter]]:
    made: list[SlurmCenter] = []

    def make() -> SlurmCenter:
        tag = uuid.uuid4().hex[:6]
        data = tmp_path_factory.mktemp(f"center-{tag}")
        data.chmod(0o755)
        settings = center_settings(bed, data, tag)
        center = Center.from_settings(settings)
        center.start()
        tokens = seed(center, tag)
        client = TestClient(create_app(center, manage_lifecycle=False))
        made.append(SlurmCenter(center, settings, client, tag, tokens))
        return made[-1]

    yield make
    for sc in made:
        sc.api.close()
        sc.center.close()
        remove_accounts(bed, f"lightgrid.{sc.settings.center_name}")


@pytest.fixture(scope="module")
def sc(make_center: Callable[[], SlurmCenter]) -> SlurmCenter:
    return make_center()


def associations(bed: Testbed, account: str) -> set[str]:
    """Users associated with `account` in slurmdbd."""
    out = bed.run("sacctmgr", "-n", "-P", "show", "associations", "where",
                  f"account={account}", f"cluster={bed.name}", "format=User").stdout
    return {line.strip() for line in out.splitlines() if line.strip()}


def test_api_job_runs_on_slurm_with_its_task_layout(bed: Testbed, sc: SlurmCenter) -> None:
    text = script('echo "tasks=$SLURM_NTASKS cpus=$SLURM_CPUS_PER_TASK"',
                  f"--account={sc.name('p1')}", "--ntasks=2", "--cpus-per-task=1",
                  "--time=00:02:00", "--comment=first-run")
    out = submit(sc.api, sc.headers("alice"), text)
    job = wait_for(sc.api, sc.headers("alice"), out["job_id"], timeout=60)[0]
    assert job["state"] == "COMPLETED" and job["exit_code"] == 0
    body = sc.api.get(f"/api/v1/jobs/{out['job_id']}/output", headers=sc.headers("alice"))
    assert body.text == "tasks=2 cpus=1\n"
    with sc.center.factory() as s:
        row = s.scalar(select(Job).where(Job.id == job["id"]))
        assert row is not None and row.backend_id
        backend_id = row.backend_id
    sacct = bed.run("sacct", "-n", "-P", "-X", f"--jobs={backend_id}",
                    "--format=JobID,Account,Comment,State").stdout.split("\n")[0]
    assert sacct.split("|") == [backend_id, sc.name("p1"), f"lightgrid:{job['id']} first-run",
                                "COMPLETED"]


def test_slurm_refusals_reach_the_user_as_400(sc: SlurmCenter) -> None:
    account = f"--account={sc.name('p1')}"
    for extra, words in ((["--partition=bigmem"], "invalid partition"),
                         (["--time=1-12:00:00"], "time limit")):
        response = sc.api.post("/api/v1/jobs", headers=sc.headers("alice"),
                               json={"script": script("true", account, *extra)})
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "backend_rejected" and words in error["message"].lower()
        listed = sc.api.get("/api/v1/jobs", headers=sc.headers("alice"),
                            params={"state": "FAILED"}).json()["items"]
        assert listed[-1]["reason"].lower().startswith("rejected:")


def test_association_sync_follows_tenancy_and_repairs_drift(bed: Testbed,
                                                            sc: SlurmCenter) -> None:
    op = sc.headers("op")
    org, project, user = sc.name("inst"), sc.name("newproj"), sc.name("bob")
    assert sc.api.post("/api/v1/orgs", headers=op,
                       json={"name": org, "kind": "university"}).status_code == 201
    assert sc.api.post("/api/v1/projects", headers=op,
                       json={"name": project, "org": org}).status_code == 201
    assert sc.api.post("/api/v1/users", headers=op,
                       json={"username": user, "password": "bob-password"}).status_code == 201
    assert sc.api.post(f"/api/v1/projects/{project}/members", headers=op,
                       json={"user": user}).status_code == 201
    # Committing the change wakes the sync: no explicit call needed.
    wait_until(lambda: user in associations(bed, project), 20)
    parent = bed.run("sacctmgr", "-n", "-P", "show", "associations", "where",
                     f"account={project}", f"cluster={bed.name}", "format=User,ParentName"
                     ).stdout
    assert f"|org.{org}" in parent
    # Someone removes the association by hand: the next sync finds and repairs it.
    bed.run("sacctmgr", "-i", "remove", "user", "where", f"name={user}",
            f"account={project}", f"cluster={bed.name}")
    assert user not in associations(bed, project)
    sync = sc.center.slurm_sync  # type: ignore[attr-defined]
    report = sync.run_once()
    assert f"add-user {user}@{project}" in report.drift and report.ok
    assert user in associations(bed, project)
    assert sync.run_once().drift == []
    # Removing the member removes the association.
    assert sc.api.delete(f"/api/v1/projects/{project}/members/{user}",
                         headers=op).status_code == 204
    wait_until(lambda: user not in associations(bed, project), 20)


def test_crash_between_sbatch_and_commit_adopts_on_restart(
        bed: Testbed, make_center: Callable[[], SlurmCenter]) -> None:
    sc = make_center()
    principal = sc.center.auth.authenticate(sc.tokens["alice"])
    spec = JobSpec(script="#!/bin/bash\nsleep 2\n", account=sc.name("p1"), time_limit=60)
    rows = sc.center.jobs.submit(principal, spec)
    request = sc.center.dispatcher._request(None, rows)
    assert request is not None
    lost = sc.center.backend.submit(request)  # ...and the service dies here
    sc.center.close()
    restarted = Center.from_settings(sc.settings)
    try:
        restarted.start()  # reconcile adopts the job instead of submitting it again
        with restarted.factory() as s:
            row = s.get(Job, rows[0].id)
            assert row is not None and row.backend_id == lost.backend_id
        restarted.dispatcher.dispatch_pending(min_age=0)

        def finished() -> bool:
            with restarted.factory() as s:
                job = s.get(Job, rows[0].id)
                return job is not None and job.state == "COMPLETED"
        wait_until(finished, 60)

        def recorded() -> list[str] | None:
            # slurmdbd may hold a just-finished job's record back for a few seconds.
            comments = bed.run("sacct", "-n", "-P", "-X", "-a", "--starttime=now-1hour",
                               "--format=Comment").stdout.splitlines()
            mine = [c for c in comments if c.split(" ")[0] == f"lightgrid:{rows[0].id}"]
            return mine or None
        assert len(wait_until(recorded, 30, interval=1)) == 1
    finally:
        restarted.close()
        sc.center = restarted  # closed again by the fixture; closing twice is harmless


@pytest.fixture(scope="module")
def billed(make_center: Callable[[], SlurmCenter]) -> SlurmCenter:
    """A center that sells: p1 has funds, p2 has none (so billing blocks it)."""
    sc = make_center()
    billing = sc.center.billing  # type: ignore[attr-defined]
    fin = sc.center.auth.authenticate(sc.tokens["fin"])
    manage.add_price_version(billing, fin, {
        "currency": "CNY", "cards": [{"partition": "cpu", "cpu": "0.10"},
                                     {"partition": "gpu", "cpu": "0.10",
                                      "gpu": {"a100": "5.00"}}]})
    billing.top_up(fin, f"project:{sc.name('p1')}", "1000", method="bank_transfer",
                   reference=f"ref-{sc.tag}")
    return sc


def blocked(bed: Testbed, account: str) -> bool:
    out = bed.run("sacctmgr", "-n", "-P", "show", "associations", "where",
                  f"account={account}", f"cluster={bed.name}", "format=User,GrpSubmit"
                  ).stdout
    return any(line.split("|") == ["", "0"] for line in out.splitlines())


def test_slurmctld_outage_queues_jobs_and_blocks_survive_it(bed: Testbed,
                                                            billed: SlurmCenter) -> None:
    sc, alice = billed, billed.headers("alice")
    wait_until(lambda: blocked(bed, sc.name("p2")), 20)  # no funds: blocked in slurmdbd
    assert not blocked(bed, sc.name("p1"))
    bed.ctld("stop")
    try:
        out = submit(sc.api, alice, script("echo back", f"--account={sc.name('p1')}",
                                           "--time=00:01:00"))
        job = sc.api.get(f"/api/v1/jobs/{out['job_id']}", headers=alice).json()[0]
        assert job["state"] == "PENDING" and job["reason"] == "BackendUnavailable"
        status = sc.api.get("/api/v1/status").json()
        assert status["backend_reachable"] is False and status["backend_error"]
    finally:
        bed.ctld("start")
    done = wait_for(sc.api, alice, out["job_id"], timeout=90)[0]
    assert done["state"] == "COMPLETED"
    assert sc.api.get("/api/v1/status").json()["backend_reachable"] is True
    # The block lives in slurmdbd: slurmctld enforces it again after its restart.
    assert blocked(bed, sc.name("p2"))
    refused = bed.run("sbatch", f"--account={sc.name('p2')}", "--time=1", "--wrap=true",
                      check=False)
    assert refused.returncode != 0 and "policy" in refused.stderr.lower()


def test_accounting_ingests_platform_and_external_jobs_once(bed: Testbed,
                                                            billed: SlurmCenter) -> None:
    sc, alice = billed, billed.headers("alice")
    out = submit(sc.api, alice, script(
        "python3 -c 'import time; b=bytearray(40<<20); time.sleep(2)'; exit 0",
        f"--account={sc.name('p1')}", "--time=00:02:00"))
    workdir = sc.settings.data_dir / "external"
    workdir.mkdir(exist_ok=True)
    external = bed.run("sbatch", "--parsable", f"--account={sc.name('p1')}", "--time=1",
                       f"--chdir={workdir}", "--output=ext-%j.out",
                       input_text="#!/bin/bash\nsleep 1\necho outside\n").stdout
    ext_id = external.strip().split(";")[0]
    job = wait_for(sc.api, alice, out["job_id"], timeout=60)[0]
    assert job["state"] == "COMPLETED"
    loop = next(t for t in sc.center.background if type(t).__name__ == "AccountingLoop")

    def stored() -> dict[str, UsageRow] | None:
        loop.run_once()
        with sc.center.factory() as s:
            rows = {r.backend_id: r for r in s.scalars(select(UsageRow).where(
                UsageRow.account == sc.name("p1")))}
        ours = any(r.job_id == job["id"] for r in rows.values())
        return rows if ext_id in rows and ours else None

    rows = wait_until(stored, 60, interval=2)
    ext = rows[ext_id]
    assert ext.external and ext.job_id is None and ext.state == "COMPLETED"
    assert ext.charge_key == f"{bed.name}/{ext_id}/0"
    ours = next(r for r in rows.values() if r.job_id == job["id"])
    assert not ours.external and ours.cpus == 1 and ours.exit_code == 0
    with sc.center.factory() as s:
        row = s.get(Job, job["id"])
        assert row is not None
        assert row.max_rss is not None and row.max_rss >= 30 << 20
        assert row.cpu_time is not None and row.cpu_time > 0 and row.elapsed is not None
        charges = s.scalar(select(func.count()).select_from(ChargeRow).where(
            ChargeRow.key == ext.charge_key))
        assert charges == 1
    # Again, and replayed from scratch: nothing is stored or charged twice. (The
    # testbed is shared with other tests, whose jobs may be ingested meanwhile: count
    # per record, not in total.)
    with sc.center.factory() as s:
        before = set(s.scalars(select(UsageRow.key)))
    loop.run_once()
    with sc.center.factory() as s, s.begin():
        s.execute(IngestCursorRow.__table__.delete())
    loop.run_once()
    with sc.center.factory() as s:
        after = list(s.scalars(select(UsageRow.key)))
        assert len(after) == len(set(after)) and before <= set(after)
        assert s.scalar(select(func.count()).select_from(ChargeRow).where(
            ChargeRow.key == ext.charge_key)) == 1
