"""Accounting: finished jobs as the workload manager recorded them, and where
ingestion stands.

`UsageRow` holds one run of one backend job (platform jobs and jobs submitted outside
lightgrid alike); its `key` (cluster/backend id/end time) is unique, so storing the
same record twice is refused by the database. `IngestCursorRow` is committed in the
same transaction as the rows it covers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lightgrid.store.base import Base, UTCDateTime, id_column, utcnow


class UsageRow(Base):
    """What one run of one backend job used (``sacct``'s record of it)."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_account_end", "account", "end_time"),
        Index("ix_usage_records_cluster_backend", "cluster", "backend_id"),
    )

    id: Mapped[str] = id_column()
    key: Mapped[str] = mapped_column(String(200), unique=True)
    cluster: Mapped[str] = mapped_column(String(64))
    backend_id: Mapped[str] = mapped_column(String(64))
    #: The platform job, when the record carries a platform id we know.
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), nullable=True,
                                               index=True)
    #: True for jobs submitted outside lightgrid (plain ``sbatch``).
    external: Mapped[bool] = mapped_column(default=False)
    user: Mapped[str] = mapped_column(String(64))
    account: Mapped[str] = mapped_column(String(80))
    partition: Mapped[str] = mapped_column(String(64))
    qos: Mapped[str | None] = mapped_column(String(64), nullable=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    state: Mapped[str] = mapped_column(String(16))
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    submit_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    elapsed: Mapped[int] = mapped_column(Integer)  # seconds
    cpu_time: Mapped[float] = mapped_column(Float)  # seconds
    max_rss: Mapped[int] = mapped_column(BigInteger)  # bytes
    cpus: Mapped[int] = mapped_column(Integer)
    mem: Mapped[int] = mapped_column(BigInteger)  # MiB
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    gpu_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    #: The billing charge key, once billing took the record (external jobs).
    charge_key: Mapped[str | None] = mapped_column(String(200), nullable=True)
    ingested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class IngestCursorRow(Base):
    """Where accounting ingestion of one cluster stands (an opaque JSON cursor)."""

    __tablename__ = "ingest_cursors"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
