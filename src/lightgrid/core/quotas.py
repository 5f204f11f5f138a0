"""Limits on admission: core-hour and GPU-hour quotas, blocking, spending caps.

Quotas are not money and are kept apart from the ledger, but they follow the same
hold discipline: admission holds the job's maximum hours, completion uses the actual
hours and frees the rest. A project with no grant of a kind is not limited in it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal

from lightgrid.core.errors import Conflict, InvalidRequest, PaymentRequired
from lightgrid.core.money import RATE_CONTEXT, Money, to_decimal
from lightgrid.core.resources import Tres

_ZERO = Decimal(0)


class QuotaKind(enum.StrEnum):
    CORE_HOURS = "core_hours"
    GPU_HOURS = "gpu_hours"


@dataclass(frozen=True, slots=True)
class QuotaNeed:
    """Hours a job uses (or may use): cores x hours and GPUs x hours."""

    core_hours: Decimal = _ZERO
    gpu_hours: Decimal = _ZERO

    @classmethod
    def of(cls, tres: Tres, seconds: int) -> QuotaNeed:
        hours = RATE_CONTEXT.divide(Decimal(seconds), Decimal(3600))
        return cls(RATE_CONTEXT.multiply(Decimal(tres.cpu), hours),
                   RATE_CONTEXT.multiply(Decimal(tres.gpu), hours))

    def get(self, kind: QuotaKind) -> Decimal:
        return self.core_hours if kind is QuotaKind.CORE_HOURS else self.gpu_hours


@dataclass(frozen=True, slots=True)
class QuotaStatus:
    """One project's position in one kind of quota."""

    kind: QuotaKind
    granted: Decimal
    used: Decimal
    held: Decimal

    @property
    def remaining(self) -> Decimal:
        """Granted minus used minus held: what a new job may still hold."""
        return self.granted - self.used - self.held


class QuotaBook:
    """In-memory quota state; the reference semantics for the store."""

    def __init__(self) -> None:
        self._granted: dict[tuple[str, QuotaKind], Decimal] = {}
        self._used: dict[tuple[str, QuotaKind], Decimal] = {}
        self._holds: dict[str, tuple[str, QuotaNeed]] = {}

    def grant(self, project: str, kind: QuotaKind, hours: object) -> None:
        """Add `hours` (may be negative to take some back) to a project's grant."""
        delta = to_decimal(hours, field="hours")
        key = (project, QuotaKind(kind))
        new = self._granted.get(key, _ZERO) + delta
        if new < 0:
            raise InvalidRequest("a grant cannot become negative", field="hours")
        self._granted[key] = new

    def status(self, project: str, kind: QuotaKind) -> QuotaStatus | None:
        """The project's status in `kind`, or None when it has no grant (unlimited)."""
        key = (project, kind)
        if key not in self._granted:
            return None
        held = sum((need.get(kind) for p, need in self._holds.values() if p == project),
                   _ZERO)
        return QuotaStatus(kind, self._granted[key], self._used.get(key, _ZERO), held)

    def shortfall(self, project: str, need: QuotaNeed) -> str | None:
        """Why `need` does not fit the project's remaining quota, or None if it fits."""
        for kind in QuotaKind:
            status = self.status(project, kind)
            wanted = need.get(kind)
            if status is not None and wanted > 0 and wanted > status.remaining:
                label = kind.value.replace("_", "-")
                return (f"project {project} has {status.remaining:.2f} {label} remaining "
                        f"of {status.granted:.2f} granted; the job needs {wanted:.2f}")
        return None

    def hold(self, hold_id: str, project: str, need: QuotaNeed) -> None:
        """Reserve `need`; raises `PaymentRequired` when it does not fit."""
        if hold_id in self._holds:
            raise Conflict(f"quota hold {hold_id} exists", field="hold")
        why = self.shortfall(project, need)
        if why:
            raise PaymentRequired(f"quota exceeded: {why}", field="quota")
        self._holds[hold_id] = (project, need)

    def settle(self, hold_id: str, used: QuotaNeed) -> None:
        """Free the hold and record `used` hours (zero for a release)."""
        project, _ = self._holds.pop(hold_id)
        self.record(project, used)

    def record(self, project: str, used: QuotaNeed) -> None:
        """Record hours used by a job that had no quota hold."""
        for kind in QuotaKind:
            key = (project, kind)
            if used.get(kind) and key in self._granted:
                self._used[key] = self._used.get(key, _ZERO) + used.get(kind)


# ------------------------------------------------------------ blocking and caps


@dataclass(frozen=True, slots=True)
class Whitelist:
    """Exempts a project from blocking (not from holds) until `expires_at`."""

    project: str
    reason: str
    expires_at: datetime | None = None

    def active(self, at: datetime) -> bool:
        return self.expires_at is None or at < self.expires_at


@dataclass(frozen=True, slots=True)
class BlockStatus:
    project: str
    blocked: bool
    available: Money
    threshold: Money
    whitelisted: bool

    @property
    def message(self) -> str:
        if not self.blocked:
            return f"project {self.project} is not blocked"
        return (f"project {self.project} is blocked: available funds {self.available} "
                f"are at or below its threshold {self.threshold}; a top-up unblocks it")


def block_status(project: str, available: Money, threshold: Money,
                 whitelist: Whitelist | None, at: datetime) -> BlockStatus:
    """Blocked when available funds are at or below the threshold, unless whitelisted."""
    listed = whitelist is not None and whitelist.active(at)
    return BlockStatus(project, available <= threshold and not listed, available,
                       threshold, listed)


class BlockAction(enum.StrEnum):
    BLOCK = "block"
    UNBLOCK = "unblock"


def block_change(before: BlockStatus | None, after: BlockStatus) -> BlockAction | None:
    """What the backend must be told when the status moves from `before` to `after`."""
    was = before.blocked if before is not None else False
    if after.blocked and not was:
        return BlockAction.BLOCK
    if was and not after.blocked:
        return BlockAction.UNBLOCK
    return None


class CapPeriod(enum.StrEnum):
    MONTH = "month"
    TOTAL = "total"


@dataclass(frozen=True, slots=True)
class SpendingCap:
    """The most one user may spend inside one project, per calendar month or in total."""

    project: str
    user: str
    limit: Money
    period: CapPeriod = CapPeriod.MONTH


def cap_window_start(period: CapPeriod, at: datetime, tz: tzinfo) -> datetime | None:
    """Start of the window a cap counts spending in (None: since the beginning)."""
    if period is CapPeriod.TOTAL:
        return None
    local = at.astimezone(tz)
    return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def cap_shortfall(cap: SpendingCap, spent: Money, held: Money, needed: Money) -> str | None:
    """Why `needed` more would break the cap, or None when it fits."""
    if spent + held + needed <= cap.limit:
        return None
    left = cap.limit - spent - held
    return (f"spending cap of user {cap.user} in project {cap.project}: {left} left of "
            f"{cap.limit} this {cap.period}, the job needs {needed}")
