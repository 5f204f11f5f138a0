"""Statements and usage reports, computed from ledger postings and charges.

A statement covers a set of customer accounts (a project's wallet and hold account;
an organization's wallet plus those of its projects) over a period. Every transaction
that changes the set's funds falls in exactly one line, so

    opening + top-ups - refunds + adjustments + organization transfers
            + invoiced credit + charges covered elsewhere - charges = closing

holds to the cent (`Statement.reconciles`), and opening/closing are the ledger's own
balances at the period's bounds. Periods are by posting time in the center's timezone.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal

from lightgrid.core.errors import InvalidRequest
from lightgrid.core.funds import Charge
from lightgrid.core.ledger import (
    Account,
    AccountKind,
    Ledger,
    TxnKind,
    org_wallet,
    project_hold,
    project_wallet,
)
from lightgrid.core.money import Money, total


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open interval [start, end) with a label such as ``2025-03``."""

    start: datetime
    end: datetime
    label: str

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise InvalidRequest("period bounds must be timezone-aware", field="period")
        if self.end <= self.start:
            raise InvalidRequest("a period must end after it starts", field="period")

    @classmethod
    def month(cls, year: int, month: int, tz: tzinfo) -> Period:
        """The calendar month in `tz` (e.g. Asia/Shanghai for a Chinese center)."""
        if not 1 <= month <= 12:
            raise InvalidRequest("month must be 1..12", field="month")
        start = datetime(year, month, 1, tzinfo=tz)
        end = datetime(year + month // 12, month % 12 + 1, 1, tzinfo=tz)
        return cls(start, end, f"{year:04d}-{month:02d}")

    def __contains__(self, at: datetime) -> bool:
        return self.start <= at < self.end


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """Charges of one project on one partition for one resource in the period."""

    project: str
    partition: str
    resource: str
    amount: Money


@dataclass(frozen=True, slots=True)
class TopUpLine:
    at: datetime
    owner: str
    amount: Money
    method: str
    reference: str


@dataclass(frozen=True, slots=True)
class Statement:
    """A period's movements of one customer's funds; see the module doc for the sum."""

    subject: str  # "project:P" or "org:O"
    period: Period
    currency: str
    opening: Money
    top_ups: Money
    refunds: Money
    adjustments: Money
    org_transfers: Money  # funds drawn from (+) or returned to (-) the organization
    invoiced: Money  # credit in use turned into a receivable
    covered_elsewhere: Money  # charges paid by the organization or left owing
    charges: Money
    closing: Money
    held_at_close: Money
    charge_lines: tuple[ChargeLine, ...]
    top_up_lines: tuple[TopUpLine, ...]

    @property
    def computed_closing(self) -> Money:
        return (self.opening + self.top_ups - self.refunds + self.adjustments
                + self.org_transfers + self.invoiced + self.covered_elsewhere
                - self.charges)

    @property
    def reconciles(self) -> bool:
        """The lines sum from the opening to the closing balance, to the cent."""
        return self.computed_closing == self.closing

    def charges_by(self, attribute: str) -> dict[str, Money]:
        """Charges summed by ``project``, ``partition`` or ``resource``."""
        out: dict[str, Money] = {}
        for line in self.charge_lines:
            key = getattr(line, attribute)
            out[key] = out.get(key, Money.zero(self.currency)) + line.amount
        return out


def _funds(ledger: Ledger, accounts: Sequence[Account], currency: str,
           before: datetime) -> Money:
    return total((ledger.credit_balance(a, currency, before=before) for a in accounts),
                 currency)


def statement(ledger: Ledger, *, subject: str, accounts: Sequence[Account],
              projects: Iterable[str], period: Period, currency: str) -> Statement:
    """The statement of the funds held in `accounts` (see `project_statement`)."""
    codes = {a.code for a in accounts}
    project_set = set(projects)
    zero = Money.zero(currency)
    sums: dict[str, Money] = defaultdict(lambda: zero)
    lines: dict[tuple[str, str, str], Money] = defaultdict(lambda: zero)
    top_ups: list[TopUpLine] = []
    for txn in ledger:
        if txn.created_at not in period:
            continue
        delta = -sum((p.amount for p in txn.postings
                      if p.account in codes and p.currency == currency), Decimal(0))
        if txn.kind is TxnKind.CAPTURE and txn.ref("project") in project_set:
            charged = zero
            for p in txn.postings:
                if p.currency == currency and p.account.startswith(
                        f"{AccountKind.REVENUE}:"):
                    share = Money(-p.amount, currency)
                    charged = charged + share
                    key = (p.ref("project") or "", Account.parse(p.account).owner,
                           p.ref("resource") or "")
                    lines[key] = lines[key] + share
            sums["charges"] = sums["charges"] + charged
            sums["covered"] = sums["covered"] + Money(delta, currency) + charged
            continue
        if delta == 0:
            continue  # internal: a hold or release within the set
        amount = Money(delta, currency)
        if txn.kind is TxnKind.TOPUP:
            sums["top_ups"] = sums["top_ups"] + amount
            top_ups.append(TopUpLine(txn.created_at, txn.ref("owner") or "", amount,
                                     txn.ref("method") or "", txn.ref("reference") or ""))
        elif txn.kind is TxnKind.REFUND:
            sums["refunds"] = sums["refunds"] - amount
        elif txn.kind is TxnKind.INVOICE:
            sums["invoiced"] = sums["invoiced"] + amount
        elif txn.kind in (TxnKind.HOLD, TxnKind.RELEASE):
            sums["transfers"] = sums["transfers"] + amount
        else:  # adjustments, and any kind added later, stay visible and reconciled
            sums["adjustments"] = sums["adjustments"] + amount
    holds = [a for a in accounts if a.kind is AccountKind.HOLD]
    return Statement(
        subject=subject, period=period, currency=currency,
        opening=_funds(ledger, accounts, currency, period.start),
        top_ups=sums["top_ups"], refunds=sums["refunds"], adjustments=sums["adjustments"],
        org_transfers=sums["transfers"], invoiced=sums["invoiced"],
        covered_elsewhere=sums["covered"], charges=sums["charges"],
        closing=_funds(ledger, accounts, currency, period.end),
        held_at_close=_funds(ledger, holds, currency, period.end),
        charge_lines=tuple(ChargeLine(p, part, res, amt)
                           for (p, part, res), amt in sorted(lines.items())),
        top_up_lines=tuple(top_ups))


def project_statement(ledger: Ledger, project: str, period: Period,
                      currency: str) -> Statement:
    """A project's statement: its wallet and its holds."""
    return statement(ledger, subject=f"project:{project}",
                     accounts=[project_wallet(project), project_hold(project)],
                     projects=[project], period=period, currency=currency)


def org_statement(ledger: Ledger, org: str, projects: Iterable[str], period: Period,
                  currency: str) -> Statement:
    """An organization's statement: its wallet and all its projects' funds together."""
    projects = sorted(projects)
    accounts = [org_wallet(org)]
    for p in projects:
        accounts += [project_wallet(p), project_hold(p)]
    return statement(ledger, subject=f"org:{org}", accounts=accounts, projects=projects,
                     period=period, currency=currency)


# ------------------------------------------------------------------ usage reports


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Usage of one user on one partition in one month (by job end time)."""

    month: str
    user: str
    partition: str
    jobs: int
    core_hours: Decimal
    gpu_hours: Decimal
    amount: Money


def usage_report(charges: Iterable[Charge], tz: tzinfo, currency: str, *,
                 project: str | None = None) -> list[UsageRow]:
    """Charged usage grouped by month, user and partition, sorted by those keys."""
    acc: dict[tuple[str, str, str], UsageRow] = {}
    for c in charges:
        if project is not None and c.project != project:
            continue
        key = (c.ended_at.astimezone(tz).strftime("%Y-%m"), c.user or "", c.partition)
        row = acc.get(key) or UsageRow(*key, 0, Decimal(0), Decimal(0),
                                       Money.zero(currency))
        acc[key] = UsageRow(*key, row.jobs + 1, row.core_hours + c.core_hours,
                            row.gpu_hours + c.gpu_hours, row.amount + c.amount)
    return [acc[k] for k in sorted(acc)]


# --------------------------------------------------------------------------- CSV


def _csv(rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        writer.writerow(row)
    return buf.getvalue()


def statement_csv(st: Statement) -> str:
    """The statement as CSV: ``section,project,partition,resource,detail,amount`` rows."""
    def row(section: str, amount: Money, project: str = "", partition: str = "",
            resource: str = "", detail: str = "") -> list[object]:
        return [section, project, partition, resource, detail, f"{amount.amount:.2f}"]

    rows: list[list[object]] = [
        ["section", "project", "partition", "resource", "detail", "amount"],
        row("opening_balance", st.opening, detail=st.period.start.isoformat())]
    rows += [row("top_up", t.amount, detail=f"{t.at.isoformat()} {t.method} {t.reference}")
             for t in st.top_up_lines]
    rows += [row("refunds", st.refunds), row("adjustments", st.adjustments),
             row("organization_transfers", st.org_transfers),
             row("invoiced_credit", st.invoiced),
             row("charges_covered_elsewhere", st.covered_elsewhere)]
    rows += [row("charge", line.amount, line.project, line.partition, line.resource)
             for line in st.charge_lines]
    rows += [row("charges_total", st.charges),
             row("closing_balance", st.closing, detail=st.period.end.isoformat()),
             row("held_at_close", st.held_at_close)]
    return _csv(rows)


def usage_csv(rows: Iterable[UsageRow]) -> str:
    """Usage rows as CSV with a header."""
    return _csv([["month", "user", "partition", "jobs", "core_hours", "gpu_hours",
                  "amount", "currency"]]
                + [[r.month, r.user, r.partition, r.jobs, f"{r.core_hours:.2f}",
                    f"{r.gpu_hours:.2f}", f"{r.amount.amount:.2f}", r.amount.currency]
                   for r in rows])
