"""Wallets, holds and exactly-once charges over the SQL ledger.

The same rules as the in-memory `lightgrid.core.funds.FundsBook`, with every balance
read under a row lock, so that parallel admissions cannot overspend. All functions
run inside the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lightgrid.center.billing import ledger as sql
from lightgrid.center.billing import limits
from lightgrid.core.errors import Conflict, InvalidRequest, NotFound, PaymentRequired
from lightgrid.core.funds import ChargeKey, UsageRecord
from lightgrid.core.ids import new_id
from lightgrid.core.jobs import JobState
from lightgrid.core.ledger import (
    MANUAL_ADJUSTMENT,
    Account,
    Leg,
    Transaction,
    TxnKind,
    cash,
    org_wallet,
    project_hold,
    project_wallet,
    receivable,
    revenue,
)
from lightgrid.core.money import Money, allocate
from lightgrid.core.pricing import Customer, PriceBook, Quote, Unpriced, price_at
from lightgrid.core.quotas import QuotaNeed
from lightgrid.core.resources import Tres
from lightgrid.store.models import Organization, Project
from lightgrid.store.models.billing import ChargeRow, HoldRow, LedgerTransaction, ReviewRow

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class Position:
    """A project's money now: see docs/billing.md for the terms."""

    project: str
    org: str
    balance: Money
    held: Money
    available: Money
    org_available: Money
    spendable: Money
    threshold: Money
    blocked: bool
    whitelisted: bool

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"project": self.project, "org": self.org,
                               "currency": self.balance.currency, "blocked": self.blocked,
                               "whitelisted": self.whitelisted}
        for name in ("balance", "held", "available", "org_available", "spendable",
                     "threshold"):
            out[name] = f"{getattr(self, name).amount:.2f}"
        return out


def project_org(session: Session, project: str) -> tuple[Project, Organization]:
    row = session.execute(select(Project, Organization).join(
        Organization, Organization.id == Project.org_id).where(
        Project.name == project)).first()
    if row is None:
        raise NotFound(f"project {project!r} not found", field="project")
    return row[0], row[1]


class Funds:
    """Money operations of one center, in one currency and timezone."""

    def __init__(self, currency: str, tz: tzinfo) -> None:
        self.currency = currency
        self.tz = tz

    def money(self, value: Decimal) -> Money:
        return Money(value, self.currency)

    def _amount(self, value: object, *, positive: bool = True) -> Money:
        amount = value if isinstance(value, Money) else Money.of(value, self.currency)
        if amount.currency != self.currency:
            raise InvalidRequest(f"this center bills in {self.currency}", field="currency")
        if positive and not amount.is_positive:
            raise InvalidRequest("the amount must be positive", field="amount")
        return amount

    def _wallet(self, session: Session, owner: str) -> tuple[str, Decimal]:
        """The wallet account of ``project:P`` / ``org:O`` and the credit it may use."""
        scope, _, name = owner.partition(":")
        if scope == "project":
            project_org(session, name)
            return project_wallet(name).code, _ZERO
        if scope == "org":
            if session.scalar(select(Organization.id).where(Organization.name == name)) \
                    is None:
                raise NotFound(f"organization {name!r} not found", field="owner")
            return org_wallet(name).code, limits.credit_limit(session, name)
        raise InvalidRequest(f"owner {owner!r} must be project:<name> or org:<name>",
                             field="owner")

    # -- positions

    def position(self, session: Session, project: str, at: datetime) -> Position:
        _, org = project_org(session, project)
        accounts = [project_wallet(project).code, project_hold(project).code,
                    org_wallet(org.name).code]
        bal = sql.balances(session, accounts)
        return self._position(session, project, org.name, bal, at)

    def _position(self, session: Session, project: str, org: str,
                  bal: dict[str, Decimal], at: datetime) -> Position:
        available = self.money(-bal[project_wallet(project).code])
        held = self.money(-bal[project_hold(project).code])
        org_avail = -bal[org_wallet(org).code] + limits.credit_limit(session, org)
        org_available = self.money(max(_ZERO, org_avail))
        spendable = available + org_available
        threshold = self.money(limits.threshold(session, project))
        listed = limits.whitelisted(session, project, at) is not None
        blocked = spendable <= threshold and not listed
        return Position(project, org, available + held, held, available, org_available,
                        spendable, threshold, blocked, listed)

    def org_position(self, session: Session, org: str) -> dict[str, str]:
        bal = sql.balances(session, [org_wallet(org).code, receivable(f"org:{org}").code])
        limit = limits.credit_limit(session, org)
        funds = -bal[org_wallet(org).code]
        return {"org": org, "currency": self.currency, "balance": f"{funds:.2f}",
                "credit_limit": f"{limit:.2f}",
                "available": f"{max(_ZERO, funds + limit):.2f}",
                "credit_in_use": f"{max(_ZERO, -funds):.2f}",
                "receivable": f"{bal[receivable(f'org:{org}').code]:.2f}"}

    def blocked_projects(self, session: Session, at: datetime) -> list[str]:
        names = session.scalars(select(Project.name).where(Project.active.is_(True)))
        return sorted(p for p in names if self.position(session, p, at).blocked)

    # -- money in and out

    def _post(self, session: Session, kind: TxnKind, legs: list[Leg], at: datetime,
              memo: str, refs: dict[str, object], receipt: str | None = None) -> Transaction:
        txn = Transaction.build(kind, legs, at, memo=memo, refs=refs)
        return sql.post(session, txn, receipt=receipt)

    def top_up(self, session: Session, owner: str, amount: object, *, method: str,
               reference: str, at: datetime, memo: str = "") -> Transaction:
        """Credit a wallet; the same (method, reference) again returns the first top-up."""
        wallet, _ = self._wallet(session, owner)
        value = self._amount(amount)
        method, reference = _method(method), _reference(reference)
        receipt = f"{method}:{reference}"
        prior = session.scalar(select(LedgerTransaction).where(
            LedgerTransaction.receipt == receipt))
        if prior is not None:
            refs = prior.refs or {}
            if prior.kind == TxnKind.TOPUP and refs.get("owner") == owner \
                    and Decimal(str(refs.get("amount"))) == value.amount:
                return sql.load(session, [prior.id])[0]
            raise Conflict(f"payment reference {reference!r} ({method}) is already used",
                           field="reference")
        sql.lock(session, [wallet], self.currency)
        return self._post(session, TxnKind.TOPUP, [Leg(cash(method), value),
                                                   Leg(_acct(wallet), -value)],
                          at, memo or f"top-up by {method}",
                          {"owner": owner, "method": method, "reference": reference,
                           "amount": value.amount}, receipt)

    def refund(self, session: Session, owner: str, amount: object, *, method: str,
               reference: str, at: datetime, reason: str) -> Transaction:
        """Pay funds back; only funds, never credit, can be refunded."""
        wallet, _ = self._wallet(session, owner)
        value = self._amount(amount)
        if not reason.strip():
            raise InvalidRequest("a refund needs a reason", field="reason")
        funds = -sql.lock(session, [wallet], self.currency)[wallet]
        if value.amount > funds:
            raise Conflict(f"{owner} has {funds:.2f} {self.currency} of funds; cannot "
                           f"refund {value}", field="amount")
        return self._post(session, TxnKind.REFUND, [Leg(_acct(wallet), value),
                                                    Leg(cash(_method(method)), -value)],
                          at, reason, {"owner": owner, "method": method,
                                       "reference": _reference(reference)})

    def adjust(self, session: Session, owner: str, amount: object, *, reason: str,
               at: datetime, actor: str) -> Transaction:
        """A manual correction with a reason: positive credits, negative debits."""
        if not reason.strip():
            raise InvalidRequest("an adjustment needs a reason", field="reason")
        wallet, credit = self._wallet(session, owner)
        value = self._amount(amount, positive=False)
        if value.is_zero:
            raise InvalidRequest("an adjustment must be nonzero", field="amount")
        room = -sql.lock(session, [wallet], self.currency)[wallet] + credit
        if value.is_negative and -value.amount > room:
            raise Conflict(f"{owner} has {room:.2f} {self.currency} available; cannot "
                           f"debit {-value}", field="amount")
        return self._post(session, TxnKind.ADJUSTMENT, [Leg(MANUAL_ADJUSTMENT, value),
                                                        Leg(_acct(wallet), -value)],
                          at, reason, {"owner": owner, "actor": actor})

    # -- admission

    def admit(self, session: Session, *, project: str, org: str, job_ids: list[str],
              per_task: Money, quota: QuotaNeed, user: str, at: datetime) -> list[HoldRow]:
        """Check blocking, the user's cap, funds and quota, then hold each task's cost."""
        wallet, hold = project_wallet(project).code, project_hold(project).code
        owallet = org_wallet(org).code
        bal = sql.lock(session, [wallet, hold, owallet], self.currency)
        pos = self._position(session, project, org, bal, at)
        needed = self.money(per_task.amount * len(job_ids))
        if pos.blocked:
            raise PaymentRequired(
                f"project {project} is blocked: available funds {pos.spendable} are at or "
                f"below its threshold {pos.threshold}; the job needs {needed}; a top-up "
                "unblocks it", field="project")
        limits.check_cap(session, project, user, needed, at, self.tz)
        if needed > pos.spendable:
            raise PaymentRequired(f"insufficient funds in project {project}: available "
                                  f"{pos.spendable}, needed {needed}", field="funds")
        total_need = QuotaNeed(quota.core_hours * len(job_ids), quota.gpu_hours * len(job_ids))
        limits.hold_quota(session, project, total_need)
        own = pos.available.amount
        org_room = pos.org_available.amount
        holds: list[HoldRow] = []
        for job_id in job_ids:
            if session.scalar(select(HoldRow.id).where(HoldRow.job_id == job_id)):
                raise Conflict(f"job {job_id} already has a hold", field="job")
            take_own = min(per_task.amount, max(own, _ZERO))
            take_org = min(per_task.amount - take_own, max(org_room, _ZERO))
            own -= take_own
            org_room -= take_org
            row = HoldRow(id=new_id(), job_id=job_id, project=project, org=org, user=user,
                          amount=per_task.amount, from_project=take_own, from_org=take_org,
                          core_hours=limits.hours(quota.core_hours),
                          gpu_hours=limits.hours(quota.gpu_hours), state="ACTIVE",
                          created_at=at)
            session.add(row)
            holds.append(row)
            if per_task.is_positive:
                self._post(session, TxnKind.HOLD, [
                    Leg(_acct(wallet), self.money(take_own)),
                    Leg(_acct(owallet), self.money(take_org)),
                    Leg(_acct(hold), -per_task)], at, f"hold for job {job_id}",
                    {"project": project, "job": job_id, "hold": row.id, "user": user})
        session.flush()
        return holds

    def active_hold(self, session: Session, job_id: str) -> HoldRow | None:
        return session.scalar(select(HoldRow).where(HoldRow.job_id == job_id,
                                                    HoldRow.state == "ACTIVE")
                              .with_for_update())

    def release(self, session: Session, job_id: str, at: datetime) -> HoldRow | None:
        """Release a job's whole hold (cancelled or never started); None if it had none."""
        hold = self.active_hold(session, job_id)
        if hold is None:
            return None
        self._return(session, hold, hold.amount, at)
        limits.settle_quota(session, hold.project,
                            QuotaNeed(hold.core_hours, hold.gpu_hours), QuotaNeed())
        hold.state, hold.closed_at = "RELEASED", at
        return hold

    def _return(self, session: Session, hold: HoldRow, amount: Decimal,
                at: datetime) -> str | None:
        """Post the unused part back to its sources, organization first."""
        if amount <= 0:
            return None
        back_org = min(amount, hold.from_org)
        back_own = amount - back_org
        txn = self._post(session, TxnKind.RELEASE, [
            Leg(project_hold(hold.project), self.money(amount)),
            Leg(org_wallet(hold.org), self.money(-back_org)),
            Leg(project_wallet(hold.project), self.money(-back_own))],
            at, f"release hold of job {hold.job_id}",
            {"project": hold.project, "job": hold.job_id, "hold": hold.id})
        return txn.id

    # -- charging

    def charge(self, session: Session, usage: UsageRecord, book: PriceBook,
               customer: Customer, *, at: datetime) -> ChargeRow | ReviewRow:
        """Charge one usage record exactly once, at the price in force when it started."""
        key = str(usage.key)
        done = session.scalar(select(ChargeRow).where(ChargeRow.key == key))
        if done is not None:
            return done
        review = session.scalar(select(ReviewRow).where(ReviewRow.key == key))
        if review is not None:
            return review
        if not usage.started or usage.started_at is None:
            return self._settle(session, usage, None, self.money(_ZERO), at,
                                "never started")
        try:
            version = book.version_at(usage.started_at)
        except NotFound as err:
            return self._review(session, usage, err.message, at)
        if usage.state in version.waived_states:
            return self._settle(session, usage, None, self.money(_ZERO), at,
                                f"{usage.state} is not charged", version.version)
        result = price_at(book, usage.shape(), customer, usage.started_at)
        if isinstance(result, Unpriced):
            return self._review(session, usage, result.reason, at)
        return self._settle(session, usage, result, result.amount, at, "")

    def _review(self, session: Session, usage: UsageRecord, reason: str,
                at: datetime) -> ReviewRow:
        row = ReviewRow(key=str(usage.key), job_id=usage.job_id, project=usage.project,
                        reason=reason[:300], usage=usage_to_json(usage), created_at=at)
        session.add(row)
        session.flush()
        return row

    def resolve_review(self, session: Session, key: str, amount: object, *, at: datetime,
                       note: str) -> ChargeRow:
        """Charge a reviewed record the amount the operator decided (zero allowed)."""
        done = session.scalar(select(ChargeRow).where(ChargeRow.key == key))
        if done is not None:
            return done
        row = session.scalar(select(ReviewRow).where(ReviewRow.key == key)
                             .with_for_update())
        if row is None:
            raise NotFound(f"no usage record {key} is under review", field="key")
        value = self._amount(amount, positive=False)
        if value.is_negative:
            raise InvalidRequest("a charge must not be negative", field="amount")
        if not note.strip():
            raise InvalidRequest("say why (note)", field="note")
        charge = self._settle(session, usage_from_json(row.usage), None, value, at,
                              f"reviewed: {note}")
        row.resolved_at, row.charge_id = at, charge.id
        return charge

    def _settle(self, session: Session, usage: UsageRecord, quote: Quote | None,
                amount: Money, at: datetime, note: str,
                version: int | None = None) -> ChargeRow:
        project, org = usage.project, project_org(session, usage.project)[1].name
        hold = self.active_hold(session, usage.job_id) if usage.job_id else None
        wallet, owallet = project_wallet(project).code, org_wallet(org).code
        bal = sql.lock(session, [wallet, owallet, project_hold(project).code],
                       self.currency)
        held = hold.amount if hold is not None else _ZERO
        from_hold = min(amount.amount, held)
        excess = amount.amount - from_hold
        own = max(_ZERO, -bal[wallet])
        org_room = max(_ZERO, -bal[owallet] + limits.credit_limit(session, org))
        take_own = min(excess, own)
        take_org = min(excess - take_own, org_room)
        owed = excess - take_own - take_org
        refs: dict[str, object] = {"project": project, "job": usage.job_id,
                                   "key": str(usage.key), "user": usage.user,
                                   "partition": usage.partition,
                                   "hold": hold.id if hold else None}
        txn_id = None
        if amount.is_positive:
            weights = quote.billed_weights() if quote else []
            labels = [str(r) for r, _ in weights] or ["review"]
            shares = allocate(amount, [w for _, w in weights] or [Decimal(1)])
            legs = [Leg(project_hold(project), self.money(from_hold)),
                    Leg(_acct(wallet), self.money(take_own)),
                    Leg(_acct(owallet), self.money(take_org)),
                    Leg(receivable(f"org:{org}"), self.money(owed))]
            legs += [Leg(revenue(usage.partition), -share, {"resource": label})
                     for label, share in zip(labels, shares, strict=True)]
            txn_id = self._post(session, TxnKind.CAPTURE, legs, at,
                                f"charge for job {usage.job_id or usage.key}", refs).id
        released = held - from_hold
        used = QuotaNeed.of(usage.tres, usage.billable_seconds) if amount.is_positive \
            else QuotaNeed()
        if hold is not None:
            self._return(session, hold, released, at)
            limits.settle_quota(session, project,
                                QuotaNeed(hold.core_hours, hold.gpu_hours), used)
            hold.state = "CAPTURED" if amount.is_positive else "RELEASED"
            hold.closed_at = at
        else:
            limits.settle_quota(session, project, QuotaNeed(), used)
        shape = usage.shape()
        row = ChargeRow(
            id=new_id(), key=str(usage.key), job_id=usage.job_id or None, project=project,
            user=usage.user, partition=usage.partition, qos=usage.qos,
            gpu_type=usage.gpu_type, state=str(usage.state), cpus=shape.tres.cpu,
            mem=shape.tres.mem, gpus=shape.tres.gpu, nodes=shape.tres.node,
            seconds=shape.seconds, amount=amount.amount, from_hold=from_hold,
            from_funds=take_own + take_org, to_receivable=owed, released=released,
            core_hours=limits.hours(used.core_hours), gpu_hours=limits.hours(used.gpu_hours),
            price_version=quote.price_version if quote else version,
            source=str(quote.source) if quote else ("review" if note.startswith("reviewed")
                                                    else "none"),
            contract_id=quote.contract_id if quote else None, started_at=usage.started_at,
            ended_at=usage.ended_at, created_at=at, transaction_id=txn_id, note=note[:300])
        session.add(row)
        session.flush()  # the unique key refuses a concurrent second charge
        return row

    def charges_total(self, session: Session, project: str) -> Money:
        return self.money(sql.exact(session.scalar(select(func.sum(ChargeRow.amount))
                                                   .where(ChargeRow.project == project))))


def _acct(code: str) -> Account:
    return Account.parse(code)


def _method(method: str) -> str:
    method = (method or "").strip()
    if not method or not method.replace("_", "").replace("-", "").isalnum():
        raise InvalidRequest("method must be a word such as bank_transfer", field="method")
    return method


def _reference(reference: str) -> str:
    reference = (reference or "").strip()
    if not reference or len(reference) > 200:
        raise InvalidRequest("a payment reference (1-200 characters) is required",
                             field="reference")
    return reference


def usage_to_json(u: UsageRecord) -> dict[str, Any]:
    return {"cluster": u.key.cluster, "backend_job": u.key.job_id, "run": u.key.run,
            "job_id": u.job_id, "project": u.project, "partition": u.partition,
            "tres": {"cpu": u.tres.cpu, "mem": u.tres.mem, "gpu": u.tres.gpu,
                     "node": u.tres.node},
            "state": str(u.state), "elapsed": u.elapsed, "ended_at": u.ended_at.isoformat(),
            "started_at": u.started_at.isoformat() if u.started_at else None,
            "user": u.user, "qos": u.qos, "gpu_type": u.gpu_type, "time_limit": u.time_limit}


def usage_from_json(d: dict[str, Any]) -> UsageRecord:
    return UsageRecord(
        key=ChargeKey(d["cluster"], d["backend_job"], int(d["run"])), job_id=d["job_id"],
        project=d["project"], partition=d["partition"], tres=Tres(**d["tres"]),
        state=JobState(d["state"]), elapsed=int(d["elapsed"]),
        ended_at=datetime.fromisoformat(d["ended_at"]),
        started_at=datetime.fromisoformat(d["started_at"]) if d["started_at"] else None,
        user=d["user"], qos=d["qos"], gpu_type=d["gpu_type"], time_limit=d["time_limit"])
