"""A center restarted mid-flight loses nothing and submits nothing twice."""

from __future__ import annotations

import time

from sqlalchemy import select

from lightgrid.center.auth import load_principal
from lightgrid.center.service import Center
from lightgrid.core.sbatch import parse_script
from lightgrid.settings import Settings
from lightgrid.store.models import Job, User
from tests.conftest import seed_tenants


def _principal(center: Center, username: str):  # type: ignore[no-untyped-def]
    with center.factory() as s:
        user = s.scalar(select(User).where(User.username == username))
        assert user is not None
        return load_principal(s, user)


def _wait(center: Center, job_id: str, states: set[str], timeout: float = 20) -> Job:
    deadline = time.monotonic() + timeout
    while True:
        with center.factory() as s:
            job = s.get(Job, job_id)
            assert job is not None
            if job.state in states:
                return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job stuck in {job.state}")
        time.sleep(0.1)


def test_crash_between_backend_submit_and_commit_adopts_the_job(settings: Settings) -> None:
    center = Center.from_settings(settings)
    center.backend.start()
    seed_tenants(center)
    principal = _principal(center, "alice")
    [row] = center.jobs.submit(principal, parse_script("#!/bin/sh\n#SBATCH -A p1\necho once\n"))
    # The backend accepts the job, then the service dies before storing the backend id.
    request = center.dispatcher._request(center.factory(), [row])
    assert request is not None
    center.backend.submit(request)
    center.backend.stop()
    center.engine.dispose()

    restarted = Center.from_settings(settings)
    restarted.start()
    try:
        job = _wait(restarted, row.id, {"COMPLETED"})
        assert job.backend_id == str(row.number)
        found = restarted.backend.find_by_platform_id(row.id)
        assert len(found) == 1  # adopted, never submitted a second time
        with open(job.stdout_path) as fh:
            assert fh.read() == "once\n"
    finally:
        restarted.close()


def test_jobs_running_across_a_restart_are_followed_to_the_end(settings: Settings) -> None:
    center = Center.from_settings(settings)
    center.start()
    seed_tenants(center)
    principal = _principal(center, "alice")
    rows = center.jobs.submit(principal, parse_script(
        "#!/bin/sh\n#SBATCH -A p1\nsleep 2\necho survived\n"))
    center.dispatcher.dispatch(rows, fresh=True)
    _wait(center, rows[0].id, {"RUNNING"})
    center.close()  # the service stops; the job's runner does not

    restarted = Center.from_settings(settings)
    restarted.start()
    try:
        job = _wait(restarted, rows[0].id, {"COMPLETED", "FAILED", "NODE_FAIL"})
        assert job.state == "COMPLETED" and job.exit_code == 0
        with open(job.stdout_path) as fh:
            assert fh.read() == "survived\n"
    finally:
        restarted.close()


def test_backend_down_keeps_submissions_queued(settings: Settings) -> None:
    """A submission the backend cannot take now stays PENDING and is dispatched later."""
    from lightgrid.core.errors import BackendUnavailable

    center = Center.from_settings(settings)
    center.start()
    try:
        seed_tenants(center)
        real_submit = center.backend.submit

        def down(_request):  # type: ignore[no-untyped-def]
            raise BackendUnavailable("controller unreachable")

        center.backend.submit = down  # type: ignore[method-assign]
        rows = center.jobs.submit(_principal(center, "alice"),
                                  parse_script("#!/bin/sh\n#SBATCH -A p1\necho later\n"))
        center.dispatcher.dispatch(rows, fresh=True)
        with center.factory() as s:
            job = s.get(Job, rows[0].id)
            assert job is not None
            assert (job.state, job.backend_id, job.reason) == ("PENDING", None,
                                                               "BackendUnavailable")
        center.backend.submit = real_submit  # type: ignore[method-assign]
        center.dispatcher.dispatch_pending(min_age=0)
        assert _wait(center, rows[0].id, {"COMPLETED"}).state == "COMPLETED"
    finally:
        center.close()
