"""Job submission, lookup, listing, cancel and requeue.

Submission is an outbox: the job rows are committed first (with no backend id), then
handed to the backend, then the backend id is stored. If the service dies in between,
`Dispatcher.reconcile` finds the job at the backend by its platform id and adopts it,
so a job is never submitted twice and never lost.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from lightgrid.center.access import Principal
from lightgrid.center.tenancy import get_project
from lightgrid.core.errors import Conflict, InvalidRequest, LightgridError, NotFound
from lightgrid.core.ids import new_id
from lightgrid.core.jobs import JobSpec, JobState, check_transition, expand_output_pattern
from lightgrid.core.resources import Allocation, Partition, normalize
from lightgrid.store.base import detached, utcnow
from lightgrid.store.models import Counter, Job, JobEvent, Organization, Project, User

MAX_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Admission:
    """What an admission hook sees of a submission before it is stored."""

    principal: Principal
    project: Project
    organization: Organization
    partition: Partition
    allocation: Allocation
    spec: JobSpec
    time_limit: int
    task_count: int


#: Called inside the submitting transaction after the job rows are inserted (they are
#: passed as detached, read-only objects); raise to refuse, and the whole submission
#: rolls back (e.g. not enough funds).
AdmissionHook = Callable[[Session, Admission, Sequence[Job]], None]


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A submission checked and resolved, ready to be numbered and inserted."""

    principal: Principal
    spec: JobSpec
    project: Project
    partition: Partition
    allocation: Allocation
    time_limit: int
    workdir: Path
    spec_json: dict[str, Any]
    indices: Sequence[int | None]

    def rows(self, numbers: Sequence[int], now: datetime) -> list[dict[str, Any]]:
        """Column values of each task's row, numbered `numbers`."""
        spec, principal, allocation = self.spec, self.principal, self.allocation
        name = spec.name or "script"
        default_out = "slurm-%A_%a.out" if spec.array else "slurm-%j.out"
        first = numbers[0]
        values: list[dict[str, Any]] = []
        for number, index in zip(numbers, self.indices, strict=True):
            def out_path(pattern: str | None, _n: int = number,
                         _i: int | None = index) -> str:
                expanded = expand_output_pattern(
                    pattern or default_out, job_number=_n,
                    array_job=first if spec.array else None, array_task=_i,
                    user=principal.username, name=name)
                return str(self.workdir / expanded)

            stdout = out_path(spec.stdout)
            values.append(dict(
                id=new_id(), number=number, name=name, user_id=principal.user_id,
                project_id=self.project.id, org_id=self.project.org_id,
                partition=self.partition.name, qos=spec.qos, state=JobState.PENDING.value,
                reason="Submitted", script=spec.script, spec=self.spec_json,
                cpus=allocation.tres.cpu, mem=allocation.tres.mem,
                gpus=allocation.tres.gpu, exclusive_nodes=allocation.tres.node,
                nodes=allocation.nodes, gpu_type=allocation.gpu_type,
                time_limit=self.time_limit, workdir=str(self.workdir), stdout_path=stdout,
                stderr_path=out_path(spec.stderr) if spec.stderr else stdout,
                array_job_number=first if spec.array else None, array_task_id=index,
                backend_id=None, submit_time=now, updated_at=now, start_time=None,
                end_time=None, exit_code=None, elapsed=None, cpu_time=None,
                max_rss=None))
        return values


def _member_project(principal: Principal, account: str | None) -> str | None:
    """The id of the project `account` names among the principal's (or their only one)."""
    if account is None:
        if len(principal.project_names) != 1:
            return None
        return next(iter(principal.project_names.values()))
    return principal.project_names.get(account)


@dataclass(frozen=True, slots=True)
class JobFilter:
    states: tuple[str, ...] = ()
    user: str | None = None
    project: str | None = None
    partition: str | None = None
    submitted_after: datetime | None = None
    submitted_before: datetime | None = None
    array_job: int | None = None


def parse_job_ref(ref: str) -> tuple[str, Any]:
    """A job reference: a number (``42``), an array task (``42_3``) or a platform id."""
    ref = ref.strip()
    if ref.isdigit():
        return "number", int(ref)
    if "_" in ref:
        head, _, tail = ref.partition("_")
        if head.isdigit() and tail.isdigit():
            return "task", (int(head), int(tail))
    if len(ref) == 36 and ref.count("-") == 4:
        return "id", ref
    raise InvalidRequest(f"{ref!r} is not a job number, array task (N_I) or job id",
                         field="job")


def _project_and_org() -> Any:
    p, o = Project.__table__.c, Organization.__table__.c
    return (select(p.id, p.org_id, p.name, p.display_name, p.active, p.created_at,
                   o.name.label("org_name"), o.display_name.label("org_display"), o.kind,
                   o.tier, o.created_at.label("org_created"))
            .join_from(Project.__table__, Organization.__table__, o.id == p.org_id)
            .where(p.id.in_(bindparam("pids", expanding=True))))


_PROJECTS_AND_ORGS = _project_and_org()


class JobService:
    """Jobs as the API and CLI see them; all authorization happens here."""

    def __init__(self, factory: sessionmaker[Session], partitions: dict[str, Partition],
                 default_partition: str, data_dir: Path) -> None:
        self.factory = factory
        self.partitions = partitions
        self.default_partition = default_partition
        self.data_dir = data_dir
        self.admission_hooks: list[AdmissionHook] = []

    # -- paths -------------------------------------------------------------------

    def home_dir(self, username: str) -> Path:
        return self.data_dir / "home" / username

    def project_dir(self, project: str) -> Path:
        return self.data_dir / "projects" / project

    def _workdir(self, spec: JobSpec, principal: Principal, project: Project) -> Path:
        home = self.home_dir(principal.username)
        if not spec.chdir:
            return home
        raw = spec.chdir
        roots = [home, self.project_dir(project.name)]
        path = Path(raw) if os.path.isabs(raw) else home / raw
        resolved = Path(os.path.normpath(path))
        for root in roots:
            if resolved == root or root in resolved.parents:
                return resolved
        raise InvalidRequest(f"--chdir {raw!r} is outside your home and project workspace",
                             field="chdir")

    # -- submission --------------------------------------------------------------

    def validate(self, principal: Principal, spec: JobSpec, session: Session,
                 projects: dict[str, Project] | None = None,
                 ) -> tuple[Project, Partition, Allocation, int]:
        """Resolve project and partition and normalise resources; raise on bad input.

        `projects` holds projects already read by id (a batch reads them at once).
        """
        project = self._project_for(session, principal, spec.account, projects or {})
        pname = spec.partition or self.default_partition
        partition = self.partitions.get(pname)
        if partition is None:
            known = ", ".join(sorted(self.partitions))
            raise InvalidRequest(f"unknown partition {pname!r} (known: {known})",
                                 field="partition")
        time_limit = spec.time_limit if spec.time_limit is not None else partition.default_time
        if time_limit <= 0:
            raise InvalidRequest("time limit must be positive", field="time_limit")
        if partition.max_time is not None and time_limit > partition.max_time:
            from lightgrid.core.sbatch import format_time

            raise InvalidRequest(
                f"time limit {format_time(time_limit)} exceeds the maximum "
                f"{format_time(partition.max_time)} of partition {partition.name!r}",
                field="time_limit")
        allocation = normalize(spec.resource_request(), partition)
        return project, partition, allocation, time_limit

    def _project_for(self, session: Session, principal: Principal,
                     account: str | None, projects: dict[str, Project]) -> Project:
        if account is None:
            if len(principal.project_names) == 1:
                account = next(iter(principal.project_names))
            else:
                names = ", ".join(sorted(principal.project_names)) or "none"
                raise InvalidRequest(f"no account (project) given; yours: {names}",
                                     field="account")
        pid = principal.project_names.get(account)
        if pid is None and not principal.is_operator:
            raise InvalidRequest(f"you are not a member of project {account!r}",
                                 field="account")
        if pid is None:
            pid = get_project(session, account).id
        project = projects.get(pid) or self._projects(session, {pid}).get(pid)
        if project is None or not project.active:
            raise InvalidRequest(f"project {account!r} is not active", field="account")
        return project

    def _projects(self, session: Session, ids: set[str]) -> dict[str, Project]:
        """Projects (with their organization) by id, in one plain SELECT (no ORM
        loading): this is on every submission."""
        if not ids:
            return {}
        out = {}
        for row in session.execute(_PROJECTS_AND_ORGS, {"pids": list(ids)}):
            org = detached(Organization, dict(
                id=row.org_id, name=row.org_name, display_name=row.org_display,
                kind=row.kind, tier=row.tier, created_at=row.org_created))
            out[row.id] = detached(Project, dict(
                id=row.id, org_id=row.org_id, name=row.name, display_name=row.display_name,
                active=row.active, created_at=row.created_at, organization=org))
        return out

    def submit(self, principal: Principal, spec: JobSpec) -> list[Job]:
        """Validate, admit and store a job (one row per array task); not yet dispatched.

        One transaction of a few statements (bulk inserts), because this is the hot
        path of the API.
        """
        with self.factory() as session, session.begin():
            prepared = self._prepare(session, principal, spec, {})
            [rows] = self._store(session, [prepared])
            self._admit(session, prepared, rows)
        return rows

    def submit_many(self, items: Sequence[tuple[Principal, JobSpec]]
                    ) -> list[list[Job] | Exception]:
        """Store several submissions in one transaction (group commit).

        Each item gets its rows or the error that refused it, exactly as `submit`
        would have answered alone. Refusals found before anything is written
        (validation, dependencies) leave the others in the shared transaction; a
        refusal by an admission hook, which may have written, rolls the batch back
        and every item is submitted again on its own, so a batch never stores a
        submission that alone would have been refused, nor loses one that alone would
        have been accepted.
        """
        if len(items) == 1:
            return [self._submit_alone(*items[0])]
        results: list[list[Job] | Exception] = []
        try:
            with self.factory() as session, session.begin():
                projects = self._projects(session, {
                    pid for principal, spec in items
                    if (pid := _member_project(principal, spec.account)) is not None})
                accepted: list[_Prepared] = []
                for principal, spec in items:
                    try:
                        prepared = self._prepare(session, principal, spec, projects)
                    except LightgridError as exc:
                        results.append(exc)
                        continue
                    accepted.append(prepared)
                    results.append([])
                stored = iter(self._store(session, accepted))
                for i, result in enumerate(results):
                    if isinstance(result, list):
                        results[i] = next(stored)
                for prepared, rows in zip(accepted, (r for r in results
                                                     if isinstance(r, list)), strict=True):
                    self._admit(session, prepared, rows)
        except Exception:  # each submission alone gets its own answer
            return [self._submit_alone(principal, spec) for principal, spec in items]
        return results

    def _submit_alone(self, principal: Principal, spec: JobSpec) -> list[Job] | Exception:
        try:
            return self.submit(principal, spec)
        except Exception as exc:  # handed to the waiting caller
            return exc

    def _prepare(self, session: Session, principal: Principal, spec: JobSpec,
                 projects: dict[str, Project]) -> _Prepared:
        project, partition, allocation, time_limit = self.validate(
            principal, spec, session, projects)
        deps = self._resolve_dependencies(session, principal, spec)
        spec_json = _spec_to_json(spec, deps)
        # Resolved names travel with the job, so dispatching needs no lookups.
        spec_json["account"] = project.name
        spec_json["user"] = principal.username
        return _Prepared(principal, spec, project, partition, allocation, time_limit,
                         self._workdir(spec, principal, project), spec_json,
                         spec.array.indices if spec.array else [None])

    def _store(self, session: Session, batch: Sequence[_Prepared]) -> list[list[Job]]:
        """Insert the rows (and their first event) of each prepared submission."""
        if not batch:
            return []
        numbers = iter(self._next_numbers(session, sum(len(p.indices) for p in batch)))
        now = utcnow()
        values: list[dict[str, Any]] = []
        groups: list[list[dict[str, Any]]] = []
        for prepared in batch:
            group = prepared.rows([next(numbers) for _ in prepared.indices], now)
            groups.append(group)
            values.extend(group)
        session.execute(insert(cast(Table, Job.__table__)), values)
        session.execute(insert(cast(Table, JobEvent.__table__)), [
            dict(id=new_id(), job_id=v["id"], at=now, from_state=None,
                 to_state=JobState.PENDING.value, reason="submitted") for v in values])
        # Hooks and callers see the stored rows as plain (detached) objects.
        return [[detached(Job, v) for v in group] for group in groups]

    def _admit(self, session: Session, prepared: _Prepared, rows: Sequence[Job]) -> None:
        if not self.admission_hooks:
            return
        admission = Admission(prepared.principal, prepared.project,
                              prepared.project.organization, prepared.partition,
                              prepared.allocation, prepared.spec, prepared.time_limit,
                              len(rows))
        for hook in self.admission_hooks:
            hook(session, admission, rows)

    def _next_numbers(self, session: Session, count: int) -> list[int]:
        if session.bind is not None and session.get_bind().dialect.name == "postgresql":
            rows = session.execute(text(
                "SELECT nextval('job_number_seq') FROM generate_series(1, :n)"),
                {"n": count}).scalars().all()
            return sorted(int(r) for r in rows)
        top = session.execute(
            update(Counter).where(Counter.name == "job_number")
            .values(value=Counter.value + count).returning(Counter.value)).scalar()
        if top is None:
            session.add(Counter(name="job_number", value=count))
            session.flush()
            top = count
        return list(range(int(top) - count + 1, int(top) + 1))

    def _resolve_dependencies(self, session: Session, principal: Principal,
                              spec: JobSpec) -> list[tuple[str, list[str]]]:
        out: list[tuple[str, list[str]]] = []
        for dep in spec.dependencies:
            ids: list[str] = []
            for ref in dep.job_ids:
                jobs = self._lookup(session, principal, ref)
                ids.extend(j.id for j in jobs)
            out.append((dep.kind.value, ids))
        return out

    # -- lookup ----------------------------------------------------------------

    def _lookup(self, session: Session, principal: Principal, ref: str) -> list[Job]:
        """Jobs a reference names (all tasks for an array job number), visible ones only."""
        kind, value = parse_job_ref(ref)
        query = select(Job)
        if kind == "number":
            query = query.where((Job.number == value) | (Job.array_job_number == value))
        elif kind == "task":
            query = query.where(Job.array_job_number == value[0],
                                Job.array_task_id == value[1])
        else:
            query = query.where(Job.id == value)
        condition = principal.job_filter()
        if condition is not None:
            query = query.where(condition)
        jobs = list(session.scalars(query.order_by(Job.number)))
        if kind == "number":
            # A plain job number names that job; an array's first number names the array.
            exact = [j for j in jobs if j.number == value and j.array_job_number is None]
            jobs = exact or [j for j in jobs if j.array_job_number == value]
        if not jobs:
            raise NotFound(f"job {ref} not found", field="job")
        return jobs

    def get(self, principal: Principal, ref: str) -> list[Job]:
        with self.factory() as session:
            return self._lookup(session, principal, ref)

    def events(self, principal: Principal, ref: str) -> list[JobEvent]:
        with self.factory() as session:
            jobs = self._lookup(session, principal, ref)
            return list(session.scalars(select(JobEvent).where(
                JobEvent.job_id.in_([j.id for j in jobs])).order_by(JobEvent.at)))

    def list_jobs(self, principal: Principal, flt: JobFilter, *, after: int | None = None,
             limit: int = 100) -> list[Job]:
        """A page of jobs by ascending number, starting after the cursor `after`."""
        limit = max(1, min(limit, MAX_PAGE))
        query = select(Job)
        condition = principal.job_filter()
        if condition is not None:
            query = query.where(condition)
        if flt.states:
            bad = [s for s in flt.states if s not in JobState.__members__]
            if bad:
                raise InvalidRequest(f"unknown state {bad[0]!r}", field="state")
            query = query.where(Job.state.in_(flt.states))
        with self.factory() as session:
            if flt.user:
                user = session.scalar(select(User.id).where(User.username == flt.user))
                query = query.where(Job.user_id == (user or "-"))
            if flt.project:
                project = session.scalar(select(Project.id).where(Project.name == flt.project))
                query = query.where(Job.project_id == (project or "-"))
            if flt.partition:
                query = query.where(Job.partition == flt.partition)
            if flt.submitted_after:
                query = query.where(Job.submit_time >= flt.submitted_after)
            if flt.submitted_before:
                query = query.where(Job.submit_time < flt.submitted_before)
            if flt.array_job is not None:
                query = query.where(Job.array_job_number == flt.array_job)
            if after is not None:
                query = query.where(Job.number > after)
            return list(session.scalars(query.order_by(Job.number).limit(limit)))

    def names(self, job_rows: Sequence[Job]) -> dict[str, tuple[str, str]]:
        """user id -> username and project id -> name, for rendering."""
        with self.factory() as session:
            users = dict(session.execute(select(User.id, User.username).where(
                User.id.in_({j.user_id for j in job_rows}))).all())
            projects = dict(session.execute(select(Project.id, Project.name).where(
                Project.id.in_({j.project_id for j in job_rows}))).all())
        return {k: ("user", v) for k, v in users.items()} | {
            k: ("project", v) for k, v in projects.items()}

    # -- state changes ----------------------------------------------------------

    def record_transition(self, session: Session, job: Job, target: JobState,
                          reason: str = "", at: datetime | None = None) -> None:
        """Move `job` to `target` through the transition table, with an event."""
        current = JobState(job.state)
        if current == target:
            job.reason = reason or job.reason
            return
        check_transition(current, target, job=str(job.number))
        job.state = target.value
        job.reason = reason
        session.add(JobEvent(job_id=job.id, at=at or utcnow(), from_state=current.value,
                             to_state=target.value, reason=reason))

    def check_cancellable(self, jobs: Sequence[Job]) -> list[Job]:
        live = [j for j in jobs if not JobState(j.state).is_terminal]
        if not live:
            raise Conflict(f"job {jobs[0].number} has already finished "
                           f"({jobs[0].state})", field="job")
        return live


#: JobSpec fields stored as they are (plain values); the others are converted below.
_PLAIN_SPEC_FIELDS = tuple(f.name for f in dataclasses.fields(JobSpec)
                           if f.name not in ("script", "array", "dependencies", "unknown"))


def _spec_to_json(spec: JobSpec, deps: list[tuple[str, list[str]]]) -> dict[str, Any]:
    # Field by field: dataclasses.asdict() deep-copies, which this hot path cannot afford.
    data: dict[str, Any] = {name: getattr(spec, name) for name in _PLAIN_SPEC_FIELDS}
    data["array"] = None
    data["dependencies"] = [{"kind": k, "job_ids": ids} for k, ids in deps]
    data["unknown"] = [{"line": u.line, "text": u.text} for u in spec.unknown]
    if spec.array:
        data["array"] = {"indices": list(spec.array.indices),
                         "max_running": spec.array.max_running}
    return data
