"""Shared set-up for the billing tests: a price book, principals, usage records."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from lightgrid.center.access import Principal
from lightgrid.center.billing import manage
from lightgrid.center.service import Center
from lightgrid.core.funds import ChargeKey, UsageRecord
from lightgrid.core.jobs import JobState
from lightgrid.core.resources import Tres
from tests.conftest import Tenants

CPU_RATE = Decimal("0.10")
MEM_RATE = Decimal("0.02")
GPU_RATE = Decimal("5.00")
ACADEMIC = Decimal("0.25")
MINIMUM = Decimal("0.50")


def book(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "currency": "CNY", "minimum_charge": str(MINIMUM),
        "tiers": {"academic": str(ACADEMIC)},
        "cards": [{"partition": "cpu", "cpu": str(CPU_RATE), "mem": str(MEM_RATE)},
                  {"partition": "gpu", "cpu": str(CPU_RATE),
                   "gpu": {"a100": str(GPU_RATE)}}]}
    body.update(changes)
    return body


def principal(center: Center, tenants: Tenants, username: str) -> Principal:
    return center.auth.authenticate(tenants.tokens[username])


def install_book(center: Center, tenants: Tenants, **changes: Any) -> dict[str, Any]:
    return manage.add_price_version(center.billing,  # type: ignore[attr-defined]
                                    principal(center, tenants, "fin"), book(**changes))


def usage(project: str, job: str, *, cpus: int = 4, mem: int = 0, gpus: int = 0,
          seconds: int = 3600, partition: str = "cpu", state: JobState = JobState.COMPLETED,
          started: datetime | None = None, run: int = 0, user: str = "alice",
          time_limit: int | None = None) -> UsageRecord:
    start = started or datetime.now(UTC)  # after the book (which starts "now")
    return UsageRecord(key=ChargeKey("test", job, run), job_id="", project=project,
                       partition=partition, tres=Tres(cpus, mem, gpus, 0), state=state,
                       elapsed=seconds, ended_at=start + timedelta(seconds=seconds),
                       started_at=start, user=user,
                       gpu_type="a100" if gpus else None, time_limit=time_limit)
