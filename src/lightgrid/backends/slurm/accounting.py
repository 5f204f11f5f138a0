"""Incremental accounting ingestion: finished jobs from ``sacct --json`` as usage records.

Every finished job of the cluster is taken, also those submitted with plain ``sbatch``
on a login node (their `UsageRecord.platform_job_id` is None). Jobs are selected by end
time; each pass re-reads `overlap` seconds before the cursor, because slurmdbd may
learn of a job after later ones, and drops what the cursor says was delivered.

The sink receives records in batches together with the cursor that covers them. A sink
that stores both in one transaction makes ingestion exactly-once: after a failure,
resuming from the last cursor it stored neither loses nor repeats a record.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from lightgrid.backends.base import UsageRecord
from lightgrid.backends.slurm import parse
from lightgrid.backends.slurm.commands import SlurmCommands
from lightgrid.backends.slurm.config import SlurmConfig

#: Terminal states, as sacct's ``--state`` letters.
FINISHED_STATES = "BF,CA,CD,DL,F,NF,OOM,PR,TO"

Sink = Callable[[list[UsageRecord], "IngestCursor"], None]


@dataclass(frozen=True, slots=True)
class IngestCursor:
    """Where ingestion stands: jobs that ended before `since` are all delivered, and
    `seen` lists jobs that ended within the overlap that were delivered too."""

    since: int = 0  # epoch seconds
    seen: frozenset[str] = field(default_factory=frozenset)

    def to_json(self) -> str:
        return json.dumps({"since": self.since, "seen": sorted(self.seen)})

    @classmethod
    def from_json(cls, text: str | None) -> IngestCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(since=int(data.get("since", 0)), seen=frozenset(data.get("seen", ())))


def _epoch(dt: datetime | None) -> int:
    return int(dt.timestamp()) if dt else 0


def _fmt(ts: int) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")


class AccountingIngester:
    """Pulls finished jobs since a cursor and hands them to a sink; resumable."""

    def __init__(self, config: SlurmConfig, *, overlap: int = 600, settle: int = 10,
                 batch_size: int = 200, window: int = 6 * 3600,
                 start: int | None = None) -> None:
        self.config = config
        self.commands = SlurmCommands(config)
        self.overlap = overlap
        self.settle = settle
        self.batch_size = batch_size
        self.window = window
        #: Where a fresh cursor starts (default: a day ago).
        self.start = start

    def fetch(self, start: int, end: int) -> list[UsageRecord]:
        """Usage records of jobs of this cluster that ended in ``[start, end]``."""
        window = [f"--clusters={self.config.cluster}", f"--starttime={_fmt(start)}",
                  f"--endtime={_fmt(end)}", f"--state={FINISHED_STATES}"]
        data = self.commands.json("sacct", ["-a", *window])
        proc = self.commands.run("sacct", ["-a", "-n", "-P", "-X", *window,
                                           "--format=JobID,ExitCode"])
        codes = parse.parse_exit_codes(proc.stdout)
        out = []
        now = time.time()
        for job in data.get("jobs") or []:
            if not parse.record_settled(job, now, self.overlap / 2):
                continue  # taken on a later pass, within the overlap
            record = parse.usage_record(job, self.config.comment_prefix, codes)
            if record is None or record.end_time is None:
                continue
            if start <= _epoch(record.end_time) <= end:
                out.append(record)
        return out

    def run(self, cursor: IngestCursor, sink: Sink, *, now: float | None = None) -> IngestCursor:
        """Deliver every job that ended after `cursor` (up to now); return the new cursor.

        If the sink raises, the exception propagates; the last cursor the sink was
        given covers exactly the records it accepted.
        """
        end = int(now if now is not None else time.time()) - self.settle
        if not cursor.since:
            cursor = IngestCursor(since=self.start if self.start is not None
                                  else end - 86400)
        lo = max(0, cursor.since - self.overlap)
        while lo <= end:
            hi = min(end, lo + self.window)
            records = [r for r in self.fetch(lo, hi) if self._key(r) not in cursor.seen]
            records.sort(key=lambda r: (_epoch(r.end_time), self._key(r)))
            unique = list({self._key(r): r for r in records}.values())
            for i in range(0, len(unique), self.batch_size):
                batch = unique[i:i + self.batch_size]
                cursor = self._advance(cursor, batch, max(cursor.since,
                                                          _epoch(batch[-1].end_time)))
                sink(batch, cursor)
            cursor = self._advance(cursor, [], max(cursor.since, hi))
            if hi >= end:
                break
            lo = hi
        return cursor

    def _advance(self, cursor: IngestCursor, batch: Sequence[UsageRecord],
                 since: int) -> IngestCursor:
        floor = since - self.overlap
        seen = {k for k in cursor.seen if int(k.rsplit("@", 1)[1]) >= floor}
        seen.update(self._key(r) for r in batch)
        return IngestCursor(since=since, seen=frozenset(seen))

    @staticmethod
    def _key(record: UsageRecord) -> str:
        """Unique per job run: id, and end time (a requeued job ends more than once)."""
        return f"{record.backend_id}@{_epoch(record.end_time)}"
