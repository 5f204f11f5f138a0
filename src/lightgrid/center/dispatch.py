"""Moving jobs between the store and the backend.

`Dispatcher.dispatch` hands stored jobs to the backend exactly once; `Dispatcher.sync`
polls the backend for state changes and records them (with usage when a job ends);
`Dispatcher.reconcile` runs at start-up and adopts jobs that the backend accepted just
before a crash. One in-process claim set keeps the request path and the background
loop from dispatching the same job twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import cast

from sqlalchemy import Table, case, select, update
from sqlalchemy.orm import Session, sessionmaker

from lightgrid.backends.base import (
    Backend,
    BackendDependency,
    JobStatus,
    SubmitRequest,
    SubmitResult,
    UsageRecord,
)
from lightgrid.center.jobs import JobService
from lightgrid.core.errors import BackendRejected, BackendUnavailable, LightgridError
from lightgrid.core.jobs import ArraySpec, DependencyKind, JobState
from lightgrid.core.resources import Allocation, Tres
from lightgrid.store.base import utcnow
from lightgrid.store.models import Job

log = logging.getLogger(__name__)

#: Called in the transaction that records a job's end, with its usage record.
FinishHook = Callable[[Session, Job, UsageRecord | None], None]


class Dispatcher:
    def __init__(self, factory: sessionmaker[Session], backend: Backend,
                 jobs: JobService) -> None:
        self.factory = factory
        self.backend = backend
        self.jobs = jobs
        self.finish_hooks: list[FinishHook] = []
        self._claims: set[str] = set()
        self._claim_lock = threading.Lock()
        self.backend_error: str | None = None

    # -- dispatch ----------------------------------------------------------------

    def _claim(self, job_ids: Sequence[str]) -> bool:
        with self._claim_lock:
            if any(j in self._claims for j in job_ids):
                return False
            self._claims.update(job_ids)
            return True

    def _release(self, job_ids: Sequence[str]) -> None:
        with self._claim_lock:
            self._claims.difference_update(job_ids)

    def dispatch(self, rows: Sequence[Job], *, fresh: bool = False) -> None:
        """Hand one submission (a job, or all tasks of one array) to the backend.

        `fresh` rows come straight from `JobService.submit` and are known to be
        undispatched, which saves re-reading them; other rows are re-read, and a job
        the backend already holds (accepted before an earlier failure) is adopted
        rather than submitted again. Raises BackendRejected after recording the
        refusal on the jobs; leaves them queued for a retry on BackendUnavailable.
        """
        ids = [r.id for r in rows]
        if not self._claim(ids):
            return
        try:
            if fresh:
                handed = self._hand_over(ids, self._request(None, rows))
                self._store_backend_ids(handed)
                _reflect(rows, handed)
                return
            with self.factory() as session:
                current = list(session.scalars(select(Job).where(Job.id.in_(ids))
                                               .order_by(Job.number)))
                if not current or any(r.backend_id for r in current) \
                        or current[0].state != JobState.PENDING.value:
                    return
                request = self._request(session, current)
            if request is not None and self._adopt_existing(current):
                return
            self._store_backend_ids(self._hand_over(ids, request))
        finally:
            self._release(ids)

    def _adopt_existing(self, rows: Sequence[Job]) -> bool:
        """Adopt a submission the backend already holds (under its platform id)."""
        try:
            found = self.backend.find_by_platform_id(rows[0].id)
        except BackendUnavailable:
            return False
        if not found:
            return False
        by_platform = {s.platform_job_id: s.backend_id for s in found}
        by_index = {int(s.backend_id.rsplit("_", 1)[1]): s.backend_id for s in found
                    if "_" in s.backend_id and s.backend_id.rsplit("_", 1)[1].isdigit()}
        pairs = []
        for row in rows:
            bid = by_platform.get(row.id) or (by_index.get(row.array_task_id)
                                               if row.array_task_id is not None else None)
            if bid is None and row is not rows[0]:
                # Backends that keep one platform id per task are asked per task.
                more = self.backend.find_by_platform_id(row.id)
                bid = more[0].backend_id if more else None
            if bid is None and len(rows) == 1:
                bid = found[0].backend_id
            if bid is not None:
                pairs.append((row.id, bid))
        self._store_backend_ids(pairs)
        log.info("adopted %d job(s) the backend already held", len(pairs))
        return True

    def _hand_over(self, ids: Sequence[str],
                   request: SubmitRequest | None) -> list[tuple[str, str]]:
        """Submit to the backend; returns (job id, backend id) pairs to store."""
        if request is None:
            return []
        try:
            result: SubmitResult | LightgridError = self.backend.submit(request)
        except (BackendUnavailable, BackendRejected) as exc:
            result = exc
        return self._accept(ids, request, result)

    def _accept(self, ids: Sequence[str], request: SubmitRequest,
                result: SubmitResult | LightgridError) -> list[tuple[str, str]]:
        """Record the backend's answer to one submission; raises its refusal."""
        if isinstance(result, BackendUnavailable):
            self.backend_error = result.message
            with self.factory() as session, session.begin():
                session.execute(update(Job).where(Job.id.in_(ids))
                                .values(reason="BackendUnavailable"))
            return []
        if isinstance(result, LightgridError):
            message = f"rejected: {result.message}"[:200]
            with self.factory() as session, session.begin():
                for row in session.scalars(select(Job).where(Job.id.in_(ids))):
                    self.jobs.record_transition(session, row, JobState.FAILED, message)
                    for hook in self.finish_hooks:
                        hook(session, row, None)
            raise result
        self.backend_error = None
        if request.array is None:
            return [(ids[0], result.backend_id)]
        return [(job_id, result.task_backend_ids[index]) for job_id, index
                in zip(request.task_job_ids, request.array.indices, strict=True)]

    def _store_backend_ids(self, pairs: Sequence[tuple[str, str]]) -> None:
        if not pairs:
            return
        table = cast(Table, Job.__table__)
        # One statement per 500 jobs: backend_id = CASE id WHEN ... END. Each stands
        # alone (a job whose id is not stored yet is adopted by platform id later).
        statements = [
            table.update().where(table.c.id.in_(list(chunk)))
            .values(backend_id=case(chunk, value=table.c.id), reason="Priority")
            for chunk in (dict(pairs[i:i + 500]) for i in range(0, len(pairs), 500))]
        engine = self.factory.kw["bind"]
        if engine.dialect.name == "postgresql":
            # Autocommit: a lone statement is its own transaction, without the round
            # trips of BEGIN and COMMIT (on the hot path of every submission).
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for statement in statements:
                    conn.execute(statement)
            return
        with self.factory() as session, session.begin():
            for statement in statements:
                session.execute(statement)

    # -- fresh submissions in batches -----------------------------------------------

    def dispatch_fresh(self, groups: Sequence[Sequence[Job]]) -> list[BaseException | None]:
        """Hand several fresh submissions to the backend in one batch, storing every
        backend id in one statement; returns each submission's error (or None), as
        `dispatch` would have raised it. The rows show the outcome (backend id,
        reason) afterwards."""
        outcomes: list[BaseException | None] = [None] * len(groups)
        claimed: list[str] = []
        todo: list[tuple[int, list[str], SubmitRequest]] = []
        for i, rows in enumerate(groups):
            ids = [r.id for r in rows]
            if not self._claim(ids):
                continue
            claimed.extend(ids)
            try:
                request = self._request(None, rows)
            except Exception as exc:  # handed to the waiting request
                outcomes[i] = exc
                continue
            if request is not None:  # None: waits for a dependency to be dispatched
                todo.append((i, ids, request))
            else:
                _reflect(rows, [])
        pairs: list[tuple[str, str]] = []
        try:
            results = self.backend.submit_batch([request for _, _, request in todo])
            for (i, ids, request), result in zip(todo, results, strict=True):
                try:
                    handed = self._accept(ids, request, result)
                except Exception as exc:
                    outcomes[i] = exc
                    continue
                pairs.extend(handed)
                _reflect(groups[i], handed)
            self._store_backend_ids(pairs)
        except Exception as exc:
            # Whatever the backend accepted is adopted by platform id on a retry.
            log.exception("dispatching a batch failed")
            outcomes = [error or exc for error in outcomes]
        finally:
            self._release(claimed)
        return outcomes

    def _request(self, session: Session | None,
                 rows: Sequence[Job]) -> SubmitRequest | None:
        first = rows[0]
        deps: list[BackendDependency] = []
        for dep in first.spec.get("dependencies", []):
            if session is None:
                with self.factory() as lookup:
                    backend_ids = list(lookup.scalars(select(Job.backend_id).where(
                        Job.id.in_(dep["job_ids"]))))
            else:
                backend_ids = list(session.scalars(select(Job.backend_id).where(
                    Job.id.in_(dep["job_ids"]))))
            if any(b is None for b in backend_ids):
                return None  # a dependency is not dispatched yet: wait for it
            deps.append(BackendDependency(DependencyKind(dep["kind"]),
                                          tuple(b for b in backend_ids if b)))
        array = None
        if first.array_job_number is not None:
            array = ArraySpec(tuple(r.array_task_id for r in rows
                                    if r.array_task_id is not None),
                              first.spec.get("array", {}).get("max_running"))
        spec = first.spec
        default_out = "slurm-%A_%a.out" if array else "slurm-%j.out"
        workdir = Path(first.workdir)
        stdout = str(workdir / (spec.get("stdout") or default_out))
        stderr = str(workdir / spec["stderr"]) if spec.get("stderr") else stdout
        tres = Tres(first.cpus, first.mem, first.gpus, first.exclusive_nodes)
        allocation = Allocation(tres=tres, nodes=first.nodes,
                                cpus_per_node=-(-first.cpus // first.nodes),
                                mem_per_node=-(-first.mem // first.nodes),
                                gpus_per_node=-(-first.gpus // first.nodes),
                                gpu_type=first.gpu_type)
        return SubmitRequest(
            job_id=first.id, job_number=first.number, name=first.name,
            user=first.spec["user"], account=first.spec["account"],
            partition=first.partition,
            allocation=allocation, time_limit=first.time_limit, script=first.script,
            workdir=first.workdir, stdout=stdout, stderr=stderr,
            environment=_export_env(spec.get("export") or "ALL"),
            export=spec.get("export") or "ALL", dependencies=deps, array=array,
            task_job_ids=[r.id for r in rows] if array else (),
            task_numbers=[r.number for r in rows] if array else (), qos=first.qos,
            ntasks=spec.get("ntasks"), cpus_per_task=spec.get("cpus_per_task"),
            comment=spec.get("comment"))

    def dispatch_pending(self, min_age: float = 5.0) -> int:
        """Retry every stored job that the backend has not accepted yet.

        Jobs younger than `min_age` seconds are left to the request that stored them.
        """
        cutoff = utcnow() - timedelta(seconds=min_age)
        with self.factory() as session:
            rows = list(session.scalars(select(Job).where(
                Job.backend_id.is_(None), Job.state == JobState.PENDING.value,
                Job.submit_time <= cutoff).order_by(Job.number)))
        groups: dict[object, list[Job]] = {}
        for row in rows:
            groups.setdefault(row.array_job_number or row.id, []).append(row)
        done = 0
        for group in groups.values():
            try:
                self.dispatch(group)
                done += 1
            except BackendRejected:
                continue
        return done

    def reconcile(self) -> None:
        """At start-up: re-dispatch what the backend lost, then every job not yet
        handed over (adopting those the backend accepted just before a crash)."""
        self._forget_lost()
        self.dispatch_pending(min_age=0)

    def _forget_lost(self) -> None:
        """Jobs the backend no longer knows at all are dispatched again."""
        with self.factory() as session:
            active = dict(session.execute(select(Job.id, Job.backend_id).where(
                Job.state == JobState.PENDING.value, Job.backend_id.is_not(None))).all())
        if not active:
            return
        try:
            known = self.backend.poll([b for b in active.values() if b])
        except BackendUnavailable:
            return
        lost = [job_id for job_id, bid in active.items() if bid not in known]
        if lost:
            log.warning("backend lost %d pending jobs; dispatching them again", len(lost))
            with self.factory() as session, session.begin():
                session.execute(update(Job).where(Job.id.in_(lost)).values(backend_id=None))

    # -- state sync ----------------------------------------------------------------

    def sync(self) -> int:
        """Record every state change the backend reports; returns how many changed."""
        with self.factory() as session:
            active = list(session.execute(select(Job.id, Job.backend_id, Job.state).where(
                Job.state.in_([JobState.PENDING.value, JobState.RUNNING.value]),
                Job.backend_id.is_not(None))).all())
        if not active:
            return 0
        try:
            statuses = self.backend.poll([b for _, b, _ in active if b])
        except BackendUnavailable as exc:
            self.backend_error = exc.message
            return 0
        self.backend_error = None
        changed = [(jid, statuses[bid]) for jid, bid, state in active
                   if bid in statuses and _differs(state, statuses[bid])]
        if not changed:
            return 0
        finished = [s.backend_id for _, s in changed if s.state.is_terminal]
        usage = self.backend.usage(finished) if finished else {}
        with self.factory() as session, session.begin():
            for job_id, status in changed:
                row = session.get(Job, job_id, with_for_update=True)
                if row is None:
                    continue
                self._apply(session, row, status, usage.get(status.backend_id))
        return len(changed)

    def _apply(self, session: Session, row: Job, status: JobStatus,
               usage: UsageRecord | None) -> None:
        current = JobState(row.state)
        target = status.state
        if current == target:
            row.reason = status.reason[:200]
            return
        if current is JobState.PENDING and target.is_terminal and status.start_time:
            # Started and ended between two polls: record the RUNNING step too.
            self.jobs.record_transition(session, row, JobState.RUNNING, "None",
                                        status.start_time)
        self.jobs.record_transition(session, row, target, status.reason[:200],
                                    status.end_time if target.is_terminal
                                    else status.start_time)
        if target is JobState.PENDING:  # requeued
            row.start_time = row.end_time = row.exit_code = None
            return
        row.start_time = status.start_time or row.start_time
        if target.is_terminal:
            row.end_time = status.end_time
            row.exit_code = status.exit_code
            if usage is not None:
                row.elapsed = usage.elapsed
                row.cpu_time = usage.cpu_time
                row.max_rss = usage.max_rss
            for hook in self.finish_hooks:
                hook(session, row, usage)

    def requeue(self, rows: Sequence[Job]) -> None:
        """Send running or finished jobs back to the queue (like `scontrol requeue`)."""
        for row in rows:
            if row.backend_id is not None:
                self.backend.requeue(row.backend_id)
        with self.factory() as session, session.begin():
            for row in session.scalars(select(Job).where(Job.id.in_([r.id for r in rows]))):
                self.jobs.record_transition(session, row, JobState.PENDING, "requeued")
                row.start_time = row.end_time = row.exit_code = None
                row.elapsed = row.cpu_time = row.max_rss = None

    def cancel(self, rows: Sequence[Job]) -> None:
        """Cancel jobs: at the backend when dispatched, directly when not."""
        undispatched = [r.id for r in rows if r.backend_id is None]
        for row in rows:
            if row.backend_id is not None:
                self.backend.cancel(row.backend_id)
        if undispatched:
            with self.factory() as session, session.begin():
                for row in session.scalars(select(Job).where(Job.id.in_(undispatched))):
                    if row.backend_id is None and not JobState(row.state).is_terminal:
                        self.jobs.record_transition(session, row, JobState.CANCELLED,
                                                    "cancelled")
                        for hook in self.finish_hooks:
                            hook(session, row, None)
        self.sync()


def _reflect(rows: Sequence[Job], handed: Sequence[tuple[str, str]]) -> None:
    """Show the outcome of a hand-over on the (detached) rows the request returns."""
    backend_ids = dict(handed)
    for row in rows:
        if row.id in backend_ids:
            row.backend_id, row.reason = backend_ids[row.id], "Priority"
        elif row.reason == "Submitted":
            row.reason = "BackendUnavailable"


def _differs(state: str, status: JobStatus) -> bool:
    return state != status.state.value


def _export_env(export: str) -> dict[str, str]:
    """Variables named in ``--export=NAME=value,...`` (ALL/NONE carry no values)."""
    out: dict[str, str] = {}
    if export.upper() in ("ALL", "NONE"):
        return out
    for item in export.split(","):
        name, sep, value = item.partition("=")
        if name.upper() in ("ALL", "NONE"):
            continue
        if sep:
            out[name] = value
    return out
