"""Accounting ingestion: every finished job of the cluster, from ``sacct``, stored once.

`AccountingLoop` runs `AccountingIngester` every `interval` seconds. Each batch is
stored in one transaction together with the cursor that covers it: the usage records
(`UsageRow`, unique per run of a backend job), the usage of the platform jobs they
belong to (elapsed, CPU time, max RSS, exit code; TRES stay on the usage record), and,
for jobs submitted outside lightgrid under a project's account, a charge through
billing (whose own unique key refuses a second one). A crash between two batches
resumes from the last stored cursor; a replayed record is recognised by its key.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lightgrid.backends.base import UsageRecord
from lightgrid.backends.slurm import AccountingIngester, IngestCursor, SlurmConfig
from lightgrid.core.errors import LightgridError
from lightgrid.core.funds import ChargeKey
from lightgrid.core.funds import UsageRecord as ChargeableUsage
from lightgrid.core.jobs import JobState
from lightgrid.store.base import utcnow
from lightgrid.store.models import Job, Project
from lightgrid.store.models.accounting import IngestCursorRow, UsageRow

if TYPE_CHECKING:
    from lightgrid.center.service import Center

log = logging.getLogger(__name__)

#: A job's usage is taken from a record that ended this close to the job's end.
END_SLACK = timedelta(seconds=5)


def usage_key(record: UsageRecord) -> str:
    """Unique per run: cluster, backend id and end time (a requeued job ends again)."""
    end = int(record.end_time.timestamp()) if record.end_time else 0
    return f"{record.cluster}/{record.backend_id}@{end}"


def match_jobs(records: Sequence[UsageRecord], by_backend_id: Mapping[str, Job],
               by_id: Mapping[str, Job]) -> dict[str, Job]:
    """The platform job of each record (by usage key), where there is one.

    A record carries the platform id of the job (of the first task, for an array)
    and its backend id; both must agree, so a reused Slurm job id (after a cluster
    reinstall) never lands on an old job. A job whose backend id was not stored yet
    (a crash after ``sbatch``) is found by its platform id alone.
    """
    out: dict[str, Job] = {}
    for record in records:
        pid = record.platform_job_id
        if pid is None:
            continue
        first = by_id.get(pid)
        job = by_backend_id.get(record.backend_id)
        if job is not None and (job.id == pid or (
                first is not None and first.array_job_number is not None
                and job.array_job_number == first.array_job_number)):
            out[usage_key(record)] = job
        elif first is not None and first.backend_id is None \
                and first.array_job_number is None:
            out[usage_key(record)] = first
    return out


def usage_row(record: UsageRecord, job: Job | None) -> dict[str, Any]:
    assert record.end_time is not None
    return dict(
        key=usage_key(record), cluster=record.cluster, backend_id=record.backend_id,
        job_id=job.id if job is not None else None,
        external=record.platform_job_id is None, user=record.user[:64],
        account=record.account[:80], partition=record.partition[:64], qos=record.qos,
        name=record.name[:200], state=record.state.value, exit_code=record.exit_code,
        submit_time=record.submit_time, start_time=record.start_time,
        end_time=record.end_time, elapsed=record.elapsed, cpu_time=record.cpu_time,
        max_rss=record.max_rss, cpus=record.tres.cpu, mem=record.tres.mem,
        gpus=record.tres.gpu, gpu_type=record.gpu_type)


def apply_usage(job: Job, record: UsageRecord) -> bool:
    """Give a finished platform job its usage from the record of its last run."""
    if not JobState(job.state).is_terminal or record.end_time is None:
        return False
    if job.end_time is not None and record.end_time < job.end_time - END_SLACK:
        return False  # an earlier run of a requeued job
    job.elapsed = record.elapsed
    job.cpu_time = record.cpu_time
    job.max_rss = record.max_rss
    if record.exit_code is not None:
        job.exit_code = record.exit_code
    return True


class AccountingLoop:
    """Ingests the cluster's accounting in the background; `run_once` for one pass."""

    def __init__(self, center: Center, config: SlurmConfig, *, interval: float = 30.0,
                 ingester: AccountingIngester | None = None) -> None:
        self.center = center
        self.factory = center.factory
        self.cluster = config.cluster
        self.ingester = ingester or AccountingIngester(config)
        self.interval = interval
        self.last_error: str | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- one pass ------------------------------------------------------------------

    def cursor(self) -> IngestCursor:
        with self.factory() as session:
            row = session.get(IngestCursorRow, self.cluster)
            return IngestCursor.from_json(row.cursor if row else None)

    def run_once(self, *, now: float | None = None) -> IngestCursor:
        """Ingest everything that ended since the stored cursor; returns the new one."""
        with self._lock:
            cursor = self.ingester.run(self.cursor(), self.store, now=now)
            self._save_cursor(cursor)
            self.last_error = None
            return cursor

    def _save_cursor(self, cursor: IngestCursor) -> None:
        with self.factory() as session, session.begin():
            self._put_cursor(session, cursor)

    def _put_cursor(self, session: Session, cursor: IngestCursor) -> None:
        row = session.get(IngestCursorRow, self.cluster, with_for_update=True)
        if row is None:
            session.add(IngestCursorRow(name=self.cluster, cursor=cursor.to_json(),
                                        updated_at=utcnow()))
        else:
            row.cursor, row.updated_at = cursor.to_json(), utcnow()

    def store(self, batch: list[UsageRecord], cursor: IngestCursor) -> None:
        """The ingester's sink: records, job usage, charges and cursor, all or nothing."""
        records = [r for r in batch if r.end_time is not None]
        keys = [usage_key(r) for r in records]
        with self.factory() as session, session.begin():
            known = set(session.scalars(select(UsageRow.key).where(UsageRow.key.in_(keys))))
            fresh = list({usage_key(r): r for r in records
                          if usage_key(r) not in known}.values())
            jobs = self._jobs(session, fresh)
            runs = self._runs(session, fresh)
            for record in fresh:
                key = usage_key(record)
                job = jobs.get(key)
                values = usage_row(record, job)
                if job is not None:
                    apply_usage(job, record)
                elif record.platform_job_id is None:
                    values["charge_key"] = self._charge_external(session, record, runs[key])
                session.add(UsageRow(**values))
            self._put_cursor(session, cursor)
        if fresh:
            log.info("accounting: stored %d usage records", len(fresh))

    def _jobs(self, session: Session, records: Sequence[UsageRecord]) -> dict[str, Job]:
        pids = {r.platform_job_id for r in records if r.platform_job_id}
        if not pids:
            return {}
        bids = [r.backend_id for r in records if r.platform_job_id]
        by_bid = {j.backend_id: j for j in session.scalars(select(Job).where(
            Job.backend_id.in_(bids))) if j.backend_id}
        by_id = {j.id: j for j in session.scalars(select(Job).where(Job.id.in_(pids)))}
        return match_jobs(records, by_bid, by_id)

    def _runs(self, session: Session, records: Sequence[UsageRecord]) -> dict[str, int]:
        """The run number of each record: earlier stored runs of the same backend job."""
        bids = {r.backend_id for r in records}
        before = dict(session.execute(select(UsageRow.backend_id, func.count()).where(
            UsageRow.cluster == self.cluster, UsageRow.backend_id.in_(bids))
            .group_by(UsageRow.backend_id)).all()) if bids else {}
        out: dict[str, int] = {}
        ordered = sorted(records, key=lambda r: (r.end_time or utcnow(), r.backend_id))
        for record in ordered:
            out[usage_key(record)] = before.get(record.backend_id, 0)
            before[record.backend_id] = out[usage_key(record)] + 1
        return out

    def _charge_external(self, session: Session, record: UsageRecord,
                         run: int) -> str | None:
        """Charge a job submitted outside lightgrid to its project, once billing sells."""
        billing: Any = getattr(self.center, "billing", None)
        if billing is None or not session.scalar(
                select(Project.id).where(Project.name == record.account)):
            return None
        book = billing.book(session)
        if not book.versions:
            return None
        assert record.end_time is not None
        usage = ChargeableUsage(
            key=ChargeKey(record.cluster or self.cluster, record.backend_id, run),
            job_id="", project=record.account, partition=record.partition,
            tres=record.tres, state=record.state, elapsed=record.elapsed,
            ended_at=record.end_time, started_at=record.start_time, user=record.user,
            qos=record.qos, gpu_type=record.gpu_type)
        billing.charge_record(session, usage, book)
        return str(usage.key)

    # -- background ----------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="slurm-accounting",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=60)
            self._thread = None

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except LightgridError as exc:
                self.last_error = exc.message
                log.warning("accounting ingestion failed: %s", exc.message)
            except Exception:  # pragma: no cover - the loop must survive anything
                log.exception("accounting ingestion failed")
            self._wake.wait(self.interval)
            self._wake.clear()


def usage_of(session: Session, job_ids: Iterable[str]) -> dict[str, UsageRow]:
    """The latest usage record of each platform job (TRES, CPU time, max RSS...)."""
    out: dict[str, UsageRow] = {}
    for row in session.scalars(select(UsageRow).where(UsageRow.job_id.in_(list(job_ids)))
                               .order_by(UsageRow.end_time)):
        if row.job_id:
            out[row.job_id] = row
    return out
