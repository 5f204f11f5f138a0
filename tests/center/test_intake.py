"""Group commit: concurrent submissions share a transaction, each gets its own answer."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lightgrid.center.access import Principal
from lightgrid.center.auth import load_principal
from lightgrid.center.jobs import Admission
from lightgrid.center.service import Center
from lightgrid.core.errors import InvalidRequest, NotFound
from lightgrid.core.jobs import JobSpec
from lightgrid.core.sbatch import parse_script
from lightgrid.store.models import Job, JobEvent, User
from tests.conftest import Tenants


def _principal(center: Center, username: str) -> Principal:
    with center.factory() as s:
        user = s.scalar(select(User).where(User.username == username))
        assert user is not None
        return load_principal(s, user)


def _spec(*directives: str) -> JobSpec:
    lines = "".join(f"#SBATCH {d}\n" for d in directives)
    return parse_script(f"#!/bin/sh\n{lines}true\n")


def _stored(center: Center) -> tuple[int, int]:
    with center.factory() as s:
        return (s.scalar(select(func.count()).select_from(Job)) or 0,
                s.scalar(select(func.count()).select_from(JobEvent)) or 0)


def test_a_batch_stores_the_valid_and_answers_each_refusal(center: Center,
                                                          tenants: Tenants) -> None:
    alice, bob = _principal(center, "alice"), _principal(center, "bob")
    results = center.jobs.submit_many([
        (alice, _spec("-A p1", "-J one")),
        (alice, _spec("-A p1", "-p nosuch")),
        (bob, _spec("-A p1")),  # not bob's project
        (bob, _spec("-J arr", "--array=0-2")),  # bob's only project is the default
        (alice, _spec("-A p2", "--dependency=afterok:999999")),
    ])
    one, bad_partition, foreign, array, missing_dep = results
    assert isinstance(one, list) and [r.name for r in one] == ["one"]
    assert isinstance(bad_partition, InvalidRequest) and bad_partition.field == "partition"
    assert isinstance(foreign, InvalidRequest) and foreign.field == "account"
    assert isinstance(array, list) and [r.array_task_id for r in array] == [0, 1, 2]
    assert isinstance(missing_dep, NotFound)
    # One block of numbers, in submission order; tasks of the array share its first.
    numbers = [r.number for r in one + array]
    assert numbers == list(range(numbers[0], numbers[0] + 4))
    assert {r.array_job_number for r in array} == {array[0].number}
    assert _stored(center) == (4, 4)
    with center.factory() as s:
        projects = dict(s.execute(select(Job.name, Job.project_id)).all())
    assert projects["one"] == one[0].project_id
    assert projects["arr"] == array[0].project_id != one[0].project_id


def test_a_hook_refusal_rolls_the_batch_back_and_each_is_submitted_alone(
        center: Center, tenants: Tenants) -> None:
    calls: list[str] = []

    def refuse_named_no(session: Session, adm: Admission, rows: Sequence[Job]) -> None:
        calls.append(rows[0].name)
        if rows[0].name == "no":
            raise InvalidRequest("not this one", field="name")

    center.jobs.admission_hooks.append(refuse_named_no)
    alice = _principal(center, "alice")
    results = center.jobs.submit_many([(alice, _spec("-A p1", f"-J {name}"))
                                       for name in ("a", "no", "b")])
    assert isinstance(results[1], InvalidRequest) and results[1].field == "name"
    stored = [r for r in results if isinstance(r, list)]
    assert [rows[0].name for rows in stored] == ["a", "b"]
    # The batch got as far as the refusal, then each submission ran on its own.
    assert calls == ["a", "no", "a", "no", "b"]
    assert _stored(center) == (2, 2)
    with center.factory() as s:
        assert sorted(s.scalars(select(Job.name))) == ["a", "b"]


def test_a_failure_while_storing_answers_every_caller_alone(center: Center,
                                                           tenants: Tenants) -> None:
    alice = _principal(center, "alice")
    real_store = center.jobs._store
    attempts = []

    def store_once_broken(session: Session, batch):  # type: ignore[no-untyped-def]
        attempts.append(len(batch))
        if len(attempts) == 1:
            raise RuntimeError("connection lost")
        return real_store(session, batch)

    center.jobs._store = store_once_broken  # type: ignore[method-assign]
    results = center.jobs.submit_many([(alice, _spec("-A p1")) for _ in range(3)])
    assert all(isinstance(r, list) for r in results)
    assert attempts == [3, 1, 1, 1]
    assert _stored(center)[0] == 3


def test_concurrent_submissions_share_commits_and_are_all_dispatched(
        center: Center, tenants: Tenants, monkeypatch: pytest.MonkeyPatch) -> None:
    sizes: list[int] = []
    real = center.jobs.submit_many

    def recording(items):  # type: ignore[no-untyped-def]
        sizes.append(len(items))
        return real(items)

    monkeypatch.setattr(center.jobs, "submit_many", recording)
    principals = [_principal(center, name) for name in ("alice", "amy", "pi", "bob")]
    answers: dict[int, object] = {}
    gate = threading.Barrier(40)

    def client(i: int) -> None:
        gate.wait()
        principal = principals[i % 4]
        account = "p3" if principal.username == "bob" else "p1"
        try:
            answers[i] = center.intake.submit(principal, _spec(f"-A {account}", f"-J c{i}"))
        except Exception as exc:
            answers[i] = exc

    threads = [threading.Thread(target=client, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    rows = [r for a in answers.values() if isinstance(a, list) for r in a]
    assert len(rows) == 40, [a for a in answers.values() if not isinstance(a, list)]
    assert len({r.number for r in rows}) == 40
    # Each answer shows the hand-over, and the store has it too.
    assert all(r.backend_id and r.reason == "Priority" for r in rows)
    with center.factory() as s:
        stored = dict(s.execute(select(Job.id, Job.backend_id)).all())
    assert stored == {r.id: r.backend_id for r in rows}
    assert sum(sizes) == 40 and max(sizes) > 1  # some submissions shared a transaction


def test_stopping_answers_every_queued_submission(center: Center, tenants: Tenants) -> None:
    alice = _principal(center, "alice")
    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(
        center.intake.submit(alice, _spec("-A p1")))) for _ in range(10)]
    for t in threads:
        t.start()
    center.intake.stop()
    for t in threads:
        t.join(30)
    assert len(results) == 10 and all(isinstance(r, list) for r in results)
    assert not center.intake.running
    # Stopped, it still submits (directly, in the caller's thread).
    [row] = center.intake.submit(alice, _spec("-A p1"))
    assert row.backend_id is not None
    assert _stored(center)[0] == 11
