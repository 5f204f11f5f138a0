"""Jobs, their state history, and the counters that number them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from lightgrid.store.base import Base, UTCDateTime, id_column, utcnow


class Counter(Base):
    """Named counters (job numbers on SQLite; PostgreSQL uses a sequence)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class Job(Base):
    """One job, or one task of an array job (tasks share `array_job_number`)."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_project_number", "project_id", "number"),
        Index("ix_jobs_user_number", "user_id", "number"),
        Index("ix_jobs_state_number", "state", "number"),
        Index("ix_jobs_array", "array_job_number", "array_task_id"),
    )

    id: Mapped[str] = id_column()
    number: Mapped[int] = mapped_column(BigInteger, unique=True)
    name: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"))
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id"), index=True)
    partition: Mapped[str] = mapped_column(String(64))
    qos: Mapped[str | None] = mapped_column(String(64), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="PENDING")
    reason: Mapped[str] = mapped_column(String(200), default="")
    script: Mapped[str] = mapped_column(Text)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Normalised request (TRES) and shape.
    cpus: Mapped[int] = mapped_column(Integer)
    mem: Mapped[int] = mapped_column(BigInteger)  # MiB
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    exclusive_nodes: Mapped[int] = mapped_column(Integer, default=0)
    nodes: Mapped[int] = mapped_column(Integer, default=1)
    gpu_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    time_limit: Mapped[int] = mapped_column(Integer)  # seconds
    workdir: Mapped[str] = mapped_column(Text)
    stdout_path: Mapped[str] = mapped_column(Text)
    stderr_path: Mapped[str] = mapped_column(Text)
    array_job_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    array_task_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # Set when the backend has accepted the job; NULL means "still to dispatch".
    backend_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    submit_time: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    start_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    end_time: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    exit_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    elapsed: Mapped[int | None] = mapped_column(Integer, nullable=True)
    cpu_time: Mapped[float | None] = mapped_column(Float, nullable=True)
    max_rss: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow,
                                                 onupdate=utcnow)


class JobEvent(Base):
    """Every state change of a job, for audit and `show`."""

    __tablename__ = "job_events"

    id: Mapped[str] = id_column()
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    from_state: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(200), default="")

