"""Quotas in core- and GPU-hours, blocking thresholds, whitelists and spending caps."""

from __future__ import annotations

from datetime import datetime, tzinfo
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lightgrid.center.billing.ledger import exact
from lightgrid.core.errors import InvalidRequest, PaymentRequired
from lightgrid.core.money import Money, to_decimal
from lightgrid.core.quotas import (
    CapPeriod,
    QuotaKind,
    QuotaNeed,
    QuotaStatus,
    SpendingCap,
    cap_shortfall,
    cap_window_start,
)
from lightgrid.store.models.billing import (
    ChargeRow,
    FundsLimit,
    HoldRow,
    QuotaRow,
    SpendingCapRow,
    WhitelistRow,
)

_ZERO = Decimal(0)
HOURS = Decimal("0.000001")


def hours(value: Decimal) -> Decimal:
    """Hours as stored: six decimal places."""
    return value.quantize(HOURS)


# ------------------------------------------------------------------------- quotas


def grant(session: Session, project: str, kind: str, amount: object) -> QuotaStatus:
    """Add hours (negative takes some back) to a project's grant of `kind`."""
    try:
        qkind = QuotaKind(kind)
    except ValueError:
        raise InvalidRequest("kind must be core_hours or gpu_hours", field="kind") from None
    delta = to_decimal(amount, field="hours")
    row = session.get(QuotaRow, (project, qkind.value), with_for_update=True)
    if row is None:
        row = QuotaRow(project=project, kind=qkind.value, granted=_ZERO, used=_ZERO,
                       held=_ZERO)
        session.add(row)
    if row.granted + delta < 0:
        raise InvalidRequest("a grant cannot become negative", field="hours")
    row.granted = hours(row.granted + delta)
    session.flush()
    return QuotaStatus(qkind, row.granted, row.used, row.held)


def quota_status(session: Session, project: str) -> list[QuotaStatus]:
    rows = session.scalars(select(QuotaRow).where(QuotaRow.project == project)
                           .order_by(QuotaRow.kind))
    return [QuotaStatus(QuotaKind(r.kind), r.granted, r.used, r.held) for r in rows]


def hold_quota(session: Session, project: str, need: QuotaNeed) -> None:
    """Reserve `need` under row locks; raises `PaymentRequired` when it does not fit."""
    rows = {r.kind: r for r in session.scalars(
        select(QuotaRow).where(QuotaRow.project == project).order_by(QuotaRow.kind)
        .with_for_update())}
    for kind in QuotaKind:
        row = rows.get(kind.value)
        wanted = hours(need.get(kind))
        if row is None or wanted <= 0:
            continue
        remaining = row.granted - row.used - row.held
        if wanted > remaining:
            label = kind.value.replace("_", "-")
            raise PaymentRequired(
                f"quota exceeded: project {project} has {remaining:.2f} {label} remaining "
                f"of {row.granted:.2f} granted; the job needs {wanted:.2f}", field="quota")
    for kind in QuotaKind:
        row = rows.get(kind.value)
        if row is not None:
            row.held = hours(row.held + need.get(kind))


def settle_quota(session: Session, project: str, held: QuotaNeed, used: QuotaNeed) -> None:
    """Free `held` hours and record `used` ones."""
    for kind in QuotaKind:
        if not held.get(kind) and not used.get(kind):
            continue
        row = session.get(QuotaRow, (project, kind.value), with_for_update=True)
        if row is not None:
            row.held = max(_ZERO, hours(row.held - held.get(kind)))
            row.used = hours(row.used + used.get(kind))


# ------------------------------------------------------------- limits and blocking


def limit_row(session: Session, owner: str, *, lock: bool = False) -> FundsLimit:
    row = session.get(FundsLimit, owner, with_for_update=lock or None)
    if row is None:
        row = FundsLimit(owner=owner, threshold=_ZERO, credit_limit=_ZERO)
        session.add(row)
        session.flush()
    return row


def credit_limit(session: Session, org: str) -> Decimal:
    row = session.get(FundsLimit, f"org:{org}")
    return row.credit_limit if row else _ZERO


def threshold(session: Session, project: str) -> Decimal:
    row = session.get(FundsLimit, f"project:{project}")
    return row.threshold if row else _ZERO


def whitelisted(session: Session, project: str, at: datetime) -> WhitelistRow | None:
    row = session.get(WhitelistRow, project)
    if row is None or (row.expires_at is not None and at >= row.expires_at):
        return None
    return row


def set_whitelist(session: Session, project: str, reason: str, expires_at: datetime | None,
                  actor: str) -> WhitelistRow:
    if not reason.strip():
        raise InvalidRequest("a whitelist entry needs a reason", field="reason")
    row = session.get(WhitelistRow, project)
    if row is None:
        row = WhitelistRow(project=project, reason=reason)
        session.add(row)
    row.reason, row.expires_at, row.created_by = reason, expires_at, actor
    session.flush()
    return row


def remove_whitelist(session: Session, project: str) -> None:
    row = session.get(WhitelistRow, project)
    if row is not None:
        session.delete(row)


# ----------------------------------------------------------------- spending caps


def set_cap(session: Session, project: str, user: str, limit: Money,
            period: str) -> SpendingCapRow:
    if limit.is_negative:
        raise InvalidRequest("a spending cap must not be negative", field="limit")
    try:
        CapPeriod(period)
    except ValueError:
        raise InvalidRequest("period must be month or total", field="period") from None
    row = session.get(SpendingCapRow, (project, user))
    if row is None:
        row = SpendingCapRow(project=project, user=user, limit=limit.amount)
        session.add(row)
    row.limit, row.period = limit.amount, period
    session.flush()
    return row


def user_spending(session: Session, project: str, user: str, since: datetime | None,
                  currency: str) -> tuple[Money, Money]:
    """(charged since `since`, held now) for `user` in `project`."""
    q = select(func.sum(ChargeRow.amount)).where(ChargeRow.project == project,
                                                 ChargeRow.user == user)
    if since is not None:
        q = q.where(ChargeRow.created_at >= since)
    held = session.scalar(select(func.sum(HoldRow.amount)).where(
        HoldRow.project == project, HoldRow.user == user, HoldRow.state == "ACTIVE"))
    return Money(exact(session.scalar(q)), currency), Money(exact(held), currency)


def check_cap(session: Session, project: str, user: str, needed: Money, at: datetime,
              tz: tzinfo) -> None:
    row = session.get(SpendingCapRow, (project, user))
    if row is None:
        return
    cap = SpendingCap(project, user, Money(row.limit, needed.currency), CapPeriod(row.period))
    spent, held = user_spending(session, project, user,
                                cap_window_start(cap.period, at, tz), needed.currency)
    why = cap_shortfall(cap, spent, held, needed)
    if why:
        raise PaymentRequired(why, field="spending_cap")
