"""Funds: wallets, holds, admission and exactly-once charging.

`FundsBook` is the in-memory reference implementation: every money movement is a
balanced `Transaction` in its `Ledger`, following the templates in docs/billing.md.
The store's SQL implementation must behave the same way; tests can run both.

Terms for a project P (optionally drawing on its organization O):

* balance(P)   = funds in wallet:project:P + funds in hold:project:P
* held(P)      = funds in hold:project:P (the sum of P's ACTIVE holds)
* available(P) = balance(P) - held(P), never negative (a project has no credit)
* org_available(O) = wallet:org:O + credit limit, never negative
* spendable(P) = available(P) + org_available(O): what a new hold may take
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from decimal import Decimal

from lightgrid.core.errors import (
    Conflict,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    PaymentRequired,
)
from lightgrid.core.ids import new_id
from lightgrid.core.jobs import JobState
from lightgrid.core.ledger import (
    MANUAL_ADJUSTMENT,
    Account,
    Ledger,
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
from lightgrid.core.money import DEFAULT_CURRENCY, Money, allocate, total
from lightgrid.core.pricing import Customer, JobShape, PriceBook, Quote, Unpriced, price_at
from lightgrid.core.quotas import (
    BlockStatus,
    QuotaBook,
    QuotaNeed,
    SpendingCap,
    Whitelist,
    block_status,
    cap_shortfall,
    cap_window_start,
)
from lightgrid.core.resources import Tres

# --------------------------------------------------------------------------- holds


class HoldState(enum.StrEnum):
    ACTIVE = "ACTIVE"
    CAPTURED = "CAPTURED"
    RELEASED = "RELEASED"


#: Every allowed (from, to) pair: a hold is closed exactly once.
HOLD_TRANSITIONS: frozenset[tuple[HoldState, HoldState]] = frozenset({
    (HoldState.ACTIVE, HoldState.CAPTURED), (HoldState.ACTIVE, HoldState.RELEASED)})


@dataclass(frozen=True, slots=True)
class Hold:
    """Funds (and quota hours) reserved for one job's maximum cost.

    `sources` records which wallets funded it (project first, then organization), so
    the unused part goes back where it came from.
    """

    id: str
    job_id: str
    project: str
    amount: Money
    created_at: datetime
    sources: tuple[tuple[str, Money], ...] = ()
    user: str | None = None
    quota: QuotaNeed = field(default_factory=QuotaNeed)
    state: HoldState = HoldState.ACTIVE
    closed_at: datetime | None = None

    def moved(self, to: HoldState, at: datetime) -> Hold:
        """This hold in state `to`; raises `IllegalTransition` outside the table."""
        if (self.state, to) not in HOLD_TRANSITIONS:
            raise IllegalTransition(f"hold {self.id} (job {self.job_id}): cannot go from "
                                    f"{self.state} to {to}", field="state")
        return replace(self, state=to, closed_at=at)


# ------------------------------------------------------------------------ charging


@dataclass(frozen=True, slots=True, order=True)
class ChargeKey:
    """The idempotency key of a charge: one run of one backend job.

    `run` is the backend's restart count, so a requeued job's second run is a second
    charge while a replayed record of the same run is not.
    """

    cluster: str
    job_id: str
    run: int = 0

    def __str__(self) -> str:
        return f"{self.cluster}/{self.job_id}/{self.run}"


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """What a finished job used, as the backend's accounting reports it."""

    key: ChargeKey
    job_id: str  # the platform job id; its hold is found by it
    project: str
    partition: str
    tres: Tres
    state: JobState
    elapsed: int  # seconds
    ended_at: datetime
    started_at: datetime | None = None
    user: str | None = None
    qos: str | None = None
    gpu_type: str | None = None
    time_limit: int | None = None  # seconds

    @property
    def started(self) -> bool:
        return self.started_at is not None and self.elapsed > 0

    @property
    def billable_seconds(self) -> int:
        """Elapsed seconds, capped at the time limit (the kill grace period is free)."""
        if not self.started:
            return 0
        if self.time_limit is not None:
            return min(self.elapsed, self.time_limit)
        return self.elapsed

    def shape(self) -> JobShape:
        return JobShape(self.partition, self.tres, self.billable_seconds, self.qos,
                        self.gpu_type)


@dataclass(frozen=True, slots=True)
class Charge:
    """The settled cost of one usage record. `amount` = from_hold + from_funds + to_receivable."""

    id: str
    key: str
    job_id: str
    project: str
    partition: str
    state: JobState
    amount: Money
    from_hold: Money
    from_funds: Money  # beyond the hold, from available funds
    to_receivable: Money  # beyond available funds: owed by the customer
    released: Money
    created_at: datetime
    ended_at: datetime
    core_hours: Decimal
    gpu_hours: Decimal
    user: str | None = None
    started_at: datetime | None = None
    hold_id: str | None = None
    quote: Quote | None = None
    transaction_ids: tuple[str, ...] = ()
    note: str = ""


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """A usage record no price covers; its hold stays ACTIVE until an operator decides."""

    key: str
    usage: UsageRecord
    reason: str
    created_at: datetime
    hold_id: str | None = None


ChargeResult = Charge | ReviewItem

# ----------------------------------------------------------------------- the book


@dataclass(slots=True)
class _Project:
    org: str | None
    threshold: Money


def _owner(owner: str) -> tuple[str, str]:
    scope, sep, ident = owner.partition(":")
    if not sep or scope not in ("project", "org") or not ident:
        raise InvalidRequest(f"owner {owner!r} must be project:<id> or org:<id>",
                             field="owner")
    return scope, ident


class FundsBook:
    """Wallets, holds, charges and limits over one in-memory ledger, in one currency."""

    def __init__(self, currency: str = DEFAULT_CURRENCY, *, ledger: Ledger | None = None,
                 tz: tzinfo | None = None) -> None:
        self.currency = currency
        self.ledger = ledger or Ledger()
        self.quotas = QuotaBook()
        self.tz = tz or UTC
        self._projects: dict[str, _Project] = {}
        self._orgs: dict[str, Money] = {}
        self._holds: dict[str, Hold] = {}
        self._active: dict[str, str] = {}  # job id -> active hold id
        self._charges: dict[str, Charge] = {}
        self._reviews: dict[str, ReviewItem] = {}
        self._receipts: dict[tuple[str, str], Transaction] = {}
        self._whitelist: dict[str, Whitelist] = {}
        self._caps: dict[tuple[str, str], SpendingCap] = {}

    # -- setup

    def _money(self, value: Money) -> Money:
        if not isinstance(value, Money):
            raise InvalidRequest("amounts must be Money (use money('12.30'))",
                                 field="amount")
        if value.currency != self.currency:
            raise InvalidRequest(f"this center bills in {self.currency}, not "
                                 f"{value.currency}", field="currency")
        return value

    def open_org(self, org: str, credit_limit: Money | None = None) -> None:
        if org in self._orgs:
            raise Conflict(f"organization {org} already has a wallet", field="org")
        self._orgs[org] = Money.zero(self.currency)
        self.set_credit_limit(org, credit_limit or Money.zero(self.currency))

    def set_credit_limit(self, org: str, limit: Money) -> None:
        """Change the credit limit; refused below the credit already in use."""
        self._org(org)
        limit = self._money(limit)
        if limit.is_negative:
            raise InvalidRequest("a credit limit must not be negative", field="credit_limit")
        in_use = -self.ledger.credit_balance(org_wallet(org), self.currency)
        if in_use > limit:
            raise Conflict(f"organization {org} already uses {in_use} of credit; the limit "
                           f"cannot go below that", field="credit_limit")
        self._orgs[org] = limit

    def open_project(self, project: str, *, org: str | None = None,
                     threshold: Money | None = None) -> None:
        """Open a project wallet; with `org`, it also draws on the organization wallet."""
        if project in self._projects:
            raise Conflict(f"project {project} already has a wallet", field="project")
        if org is not None:
            self._org(org)
        self._projects[project] = _Project(org, self._money(threshold or
                                                            Money.zero(self.currency)))

    def set_threshold(self, project: str, threshold: Money) -> None:
        self._project(project).threshold = self._money(threshold)

    def _project(self, project: str) -> _Project:
        try:
            return self._projects[project]
        except KeyError:
            raise NotFound(f"project {project} has no wallet", field="project") from None

    def _org(self, org: str) -> Money:
        try:
            return self._orgs[org]
        except KeyError:
            raise NotFound(f"organization {org} has no wallet", field="org") from None

    def _wallet(self, owner: str) -> tuple[Account, Money]:
        """The wallet account of `owner` and the credit it may use."""
        scope, ident = _owner(owner)
        if scope == "project":
            self._project(ident)
            return project_wallet(ident), Money.zero(self.currency)
        return org_wallet(ident), self._org(ident)

    # -- balances

    def balance(self, project: str) -> Money:
        """Funds in the project's wallet and holds."""
        return self.available(project) + self.held(project)

    def held(self, project: str) -> Money:
        self._project(project)
        return self.ledger.credit_balance(project_hold(project), self.currency)

    def available(self, project: str) -> Money:
        """The project's own funds not held; never negative."""
        self._project(project)
        return self.ledger.credit_balance(project_wallet(project), self.currency)

    def org_balance(self, org: str) -> Money:
        self._org(org)
        return self.ledger.credit_balance(org_wallet(org), self.currency)

    def org_available(self, org: str) -> Money:
        """Organization funds plus unused credit; never negative."""
        return self.org_balance(org) + self._org(org)

    def spendable(self, project: str) -> Money:
        """What a new hold of this project can take: its own and its organization's."""
        own = self.available(project)
        org = self._project(project).org
        return own + self.org_available(org) if org else own

    def outstanding(self, owner: str) -> Money:
        """Amount the owner owes (invoices and charges beyond funds), not yet paid."""
        _owner(owner)
        return self.ledger.balance(receivable(owner), self.currency)

    # -- money in and out

    def top_up(self, owner: str, amount: Money, *, method: str, reference: str,
               at: datetime, memo: str = "") -> Transaction:
        """Credit a wallet from a payment. Replaying the same (method, reference) returns
        the first transaction; reusing it for a different amount or owner is a Conflict."""
        wallet, _ = self._wallet(owner)
        amount = self._positive(amount)
        prior = self._receipts.get((method, reference))
        if prior is not None:
            if prior.kind is TxnKind.TOPUP and prior.ref("owner") == owner \
                    and prior.ref("amount") == str(amount.amount):
                return prior
            raise Conflict(f"payment reference {reference!r} ({method}) is already used",
                           field="reference")
        txn = self._post(TxnKind.TOPUP, [Leg(cash(method), amount), Leg(wallet, -amount)],
                         at, memo or f"top-up by {method}",
                         {"owner": owner, "method": method, "reference": reference,
                          "amount": amount.amount})
        self._receipts[(method, reference)] = txn
        return txn

    def refund(self, owner: str, amount: Money, *, method: str, reference: str,
               at: datetime, reason: str) -> Transaction:
        """Pay funds back to the customer; only funds, never credit, can be refunded."""
        wallet, _ = self._wallet(owner)
        amount = self._positive(amount)
        funds = self.ledger.credit_balance(wallet, self.currency)
        if amount > funds:
            raise Conflict(f"{owner} has {funds} of funds; cannot refund {amount}",
                           field="amount")
        return self._post(TxnKind.REFUND, [Leg(wallet, amount), Leg(cash(method), -amount)],
                          at, reason, {"owner": owner, "method": method,
                                       "reference": reference})

    def adjust(self, owner: str, amount: Money, *, reason: str, at: datetime,
               actor: str | None = None) -> Transaction:
        """A manual correction: positive credits the wallet, negative debits it."""
        if not reason.strip():
            raise InvalidRequest("an adjustment needs a reason", field="reason")
        wallet, credit = self._wallet(owner)
        amount = self._money(amount)
        if amount.is_zero:
            raise InvalidRequest("an adjustment must be nonzero", field="amount")
        room = self.ledger.credit_balance(wallet, self.currency) + credit
        if amount.is_negative and -amount > room:
            raise Conflict(f"{owner} has {room} available; cannot debit {-amount}",
                           field="amount")
        return self._post(TxnKind.ADJUSTMENT, [Leg(MANUAL_ADJUSTMENT, amount),
                                               Leg(wallet, -amount)],
                          at, reason, {"owner": owner, "actor": actor})

    def invoice(self, owner: str, *, at: datetime, reference: str) -> Transaction | None:
        """Turn credit in use (a negative wallet) into a receivable; None if none is used.

        The credit becomes available again; an unpaid invoice is for the operator to
        pursue (e.g. by blocking), not something admission sees.
        """
        wallet, _ = self._wallet(owner)
        used = -self.ledger.credit_balance(wallet, self.currency)
        if not used.is_positive:
            return None
        return self._post(TxnKind.INVOICE, [Leg(receivable(owner), used),
                                            Leg(wallet, -used)],
                          at, f"invoice {reference}", {"owner": owner,
                                                       "reference": reference})

    def record_payment(self, owner: str, amount: Money, *, method: str, reference: str,
                       at: datetime) -> Transaction:
        """A payment against what the owner owes; more than that is a top-up instead."""
        self._wallet(owner)
        amount = self._positive(amount)
        owed = self.outstanding(owner)
        if amount > owed:
            raise Conflict(f"{owner} owes {owed}; record the rest as a top-up",
                           field="amount")
        if (method, reference) in self._receipts:
            raise Conflict(f"payment reference {reference!r} ({method}) is already used",
                           field="reference")
        txn = self._post(TxnKind.PAYMENT, [Leg(cash(method), amount),
                                           Leg(receivable(owner), -amount)],
                         at, f"payment by {method}", {"owner": owner, "method": method,
                                                      "reference": reference})
        self._receipts[(method, reference)] = txn
        return txn

    def _positive(self, amount: Money) -> Money:
        amount = self._money(amount)
        if not amount.is_positive:
            raise InvalidRequest("the amount must be positive", field="amount")
        return amount

    def _post(self, kind: TxnKind, legs: Iterable[Leg], at: datetime, memo: str,
              refs: dict[str, object]) -> Transaction:
        return self.ledger.post(Transaction.build(kind, legs, at, memo=memo, refs=refs))

    # -- limits

    def set_whitelist(self, entry: Whitelist) -> None:
        self._project(entry.project)
        self._whitelist[entry.project] = entry

    def remove_whitelist(self, project: str) -> None:
        self._whitelist.pop(project, None)

    def block_status(self, project: str, at: datetime) -> BlockStatus:
        cfg = self._project(project)
        return block_status(project, self.spendable(project), cfg.threshold,
                            self._whitelist.get(project), at)

    def blocked_projects(self, at: datetime) -> list[str]:
        """Every blocked project: the backend's block list is rebuilt from this."""
        return sorted(p for p in self._projects if self.block_status(p, at).blocked)

    def set_cap(self, cap: SpendingCap) -> None:
        self._project(cap.project)
        self._money(cap.limit)
        self._caps[(cap.project, cap.user)] = cap

    def remove_cap(self, project: str, user: str) -> None:
        self._caps.pop((project, user), None)

    def user_spending(self, project: str, user: str, at: datetime) -> tuple[Money, Money]:
        """(charged, held) for `user` in `project` within the cap window at `at`."""
        cap = self._caps.get((project, user))
        since = cap_window_start(cap.period, at, self.tz) if cap else None
        charged = total((c.amount for c in self._charges.values()
                         if c.project == project and c.user == user
                         and (since is None or c.created_at >= since)), self.currency)
        held = total((h.amount for h in self._holds.values()
                      if h.state is HoldState.ACTIVE and h.project == project
                      and h.user == user), self.currency)
        return charged, held

    # -- admission

    def check_admission(self, project: str, amount: Money, *, at: datetime,
                        user: str | None = None, quota: QuotaNeed | None = None) -> None:
        """Raise `PaymentRequired` if a job of maximum cost `amount` may not be admitted."""
        amount = self._money(amount)
        status = self.block_status(project, at)
        if status.blocked:
            raise PaymentRequired(status.message, field="project")
        cap = self._caps.get((project, user)) if user else None
        if cap is not None:
            spent, held = self.user_spending(project, cap.user, at)
            why = cap_shortfall(cap, spent, held, amount)
            if why:
                raise PaymentRequired(why, field="spending_cap")
        have = self.spendable(project)
        if amount > have:
            raise PaymentRequired(f"insufficient funds in project {project}: available "
                                  f"{have}, needed {amount}", field="funds")
        if quota is not None:
            why = self.quotas.shortfall(project, quota)
            if why:
                raise PaymentRequired(f"quota exceeded: {why}", field="quota")

    def admit(self, job_id: str, project: str, cost: Quote | Unpriced | Money, *,
              at: datetime, user: str | None = None,
              quota: QuotaNeed | None = None) -> Hold:
        """Check and place a hold for the job's maximum cost (and hours).

        Raises `InvalidRequest` for an unpriced job (an operator must price it first),
        `PaymentRequired` when blocked, over a cap, short of funds or of quota, and
        `Conflict` when the job already has an active hold.
        """
        if isinstance(cost, Unpriced):
            raise InvalidRequest(f"cannot admit: {cost.reason}; the operator must add a "
                                 "price first", field="partition")
        amount = cost.amount if isinstance(cost, Quote) else cost
        if job_id in self._active:
            raise Conflict(f"job {job_id} already has an active hold", field="job")
        self.check_admission(project, amount, at=at, user=user, quota=quota)
        sources = self._draw(project, amount)
        legs = [Leg(account, value) for account, value in sources]
        hold = Hold(new_id(), job_id, project, amount, at,
                    tuple((a.code, v) for a, v in sources), user, quota or QuotaNeed())
        if amount.is_positive:
            legs.append(Leg(project_hold(project), -amount))
            self._post(TxnKind.HOLD, legs, at, f"hold for job {job_id}",
                       {"project": project, "job": job_id, "hold": hold.id, "user": user})
        self.quotas.hold(hold.id, project, hold.quota)
        self._holds[hold.id] = hold
        self._active[job_id] = hold.id
        return hold

    def _draw(self, project: str, amount: Money) -> list[tuple[Account, Money]]:
        """Split `amount` over the project wallet, then its organization's (as far as
        they reach); the caller handles any part left over."""
        out: list[tuple[Account, Money]] = []
        rest = amount
        own = self.available(project)
        take = min(rest, own) if own.is_positive else Money.zero(self.currency)
        if take.is_positive:
            out.append((project_wallet(project), take))
            rest = rest - take
        org = self._projects[project].org
        if org and rest.is_positive:
            room = self.org_available(org)
            take = min(rest, room) if room.is_positive else Money.zero(self.currency)
            if take.is_positive:
                out.append((org_wallet(org), take))
        return out

    def hold_for(self, job_id: str) -> Hold | None:
        hold_id = self._active.get(job_id)
        return self._holds[hold_id] if hold_id else None

    def holds(self, project: str | None = None,
              state: HoldState | None = None) -> list[Hold]:
        return [h for h in self._holds.values()
                if (project is None or h.project == project)
                and (state is None or h.state is state)]

    def release(self, job_id: str, *, at: datetime) -> Hold:
        """Release a job's whole hold (cancelled or never started)."""
        hold = self.hold_for(job_id)
        if hold is None:
            raise NotFound(f"job {job_id} has no active hold", field="job")
        self._return(hold, hold.amount, at)
        self.quotas.settle(hold.id, QuotaNeed())
        return self._close(hold, HoldState.RELEASED, at)

    def _return(self, hold: Hold, amount: Money, at: datetime) -> Transaction | None:
        """Post the unused `amount` of `hold` back to its sources, organization first,
        so the project's own prepaid funds are the ones spent."""
        if not amount.is_positive:
            return None
        legs = [Leg(project_hold(hold.project), amount)]
        rest = amount
        for code, funded in reversed(hold.sources):
            back = min(rest, funded)
            if back.is_positive:
                legs.append(Leg(Account.parse(code), -back))
                rest = rest - back
        return self._post(TxnKind.RELEASE, legs, at, f"release hold of job {hold.job_id}",
                          {"project": hold.project, "job": hold.job_id, "hold": hold.id})

    def _close(self, hold: Hold, to: HoldState, at: datetime) -> Hold:
        closed = hold.moved(to, at)
        self._holds[hold.id] = closed
        self._active.pop(hold.job_id, None)
        return closed

    # -- charging

    @property
    def charges(self) -> tuple[Charge, ...]:
        return tuple(self._charges.values())

    def reviews(self) -> list[ReviewItem]:
        """Usage records waiting for an operator's price, oldest first."""
        return [r for k, r in self._reviews.items() if k not in self._charges]

    def charge(self, usage: UsageRecord, book: PriceBook, customer: Customer | None, *,
               at: datetime) -> ChargeResult:
        """Charge one usage record exactly once, at the price in force when it started.

        A key already charged returns the existing `Charge`; one under review returns
        its `ReviewItem`. Never-started jobs and waived end states (NODE_FAIL by
        default) cost nothing and release the whole hold.
        """
        key = str(usage.key)
        if key in self._charges:
            return self._charges[key]
        if key in self._reviews:
            return self._reviews[key]
        self._project(usage.project)
        if not usage.started or usage.started_at is None:
            return self._settle(usage, None, Money.zero(self.currency), at,
                                "never started")
        try:
            version = book.version_at(usage.started_at)
        except NotFound as err:
            return self._review(usage, err.message, at)
        if usage.state in version.waived_states:
            return self._settle(usage, None, Money.zero(self.currency), at,
                                f"{usage.state} is not charged")
        result = price_at(book, usage.shape(), customer, usage.started_at)
        if isinstance(result, Unpriced):
            return self._review(usage, result.reason, at)
        return self._settle(usage, result, result.amount, at, "")

    def _review(self, usage: UsageRecord, reason: str, at: datetime) -> ReviewItem:
        hold = self.hold_for(usage.job_id)
        item = ReviewItem(str(usage.key), usage, reason, at, hold.id if hold else None)
        self._reviews[item.key] = item
        return item

    def resolve_review(self, key: str, amount: Money, *, at: datetime, note: str) -> Charge:
        """Charge a reviewed usage record the amount the operator decided (may be zero)."""
        if key in self._charges:
            return self._charges[key]
        item = self._reviews.get(key)
        if item is None:
            raise NotFound(f"no usage record {key} is under review", field="key")
        amount = self._money(amount)
        if amount.is_negative:
            raise InvalidRequest("a charge must not be negative", field="amount")
        return self._settle(item.usage, None, amount, at, f"reviewed: {note}")

    def _settle(self, usage: UsageRecord, quote: Quote | None, amount: Money,
                at: datetime, note: str) -> Charge:
        key = str(usage.key)
        hold = self.hold_for(usage.job_id)
        held = hold.amount if hold else Money.zero(self.currency)
        from_hold = min(amount, held)
        excess = amount - from_hold
        legs: list[Leg] = []
        if from_hold.is_positive:
            legs.append(Leg(project_hold(usage.project), from_hold))
        from_funds = Money.zero(self.currency)
        for account, value in self._draw(usage.project, excess):
            legs.append(Leg(account, value))
            from_funds = from_funds + value
        owed = excess - from_funds
        if owed.is_positive:
            org = self._projects[usage.project].org
            payer = f"org:{org}" if org else f"project:{usage.project}"
            legs.append(Leg(receivable(payer), owed))
        refs: dict[str, object] = {"project": usage.project, "job": usage.job_id,
                                   "key": key, "user": usage.user,
                                   "partition": usage.partition,
                                   "hold": hold.id if hold else None}
        txn_ids: list[str] = []
        if amount.is_positive:
            weights = quote.billed_weights() if quote else []
            labels = [str(r) for r, _ in weights] or ["review"]
            shares = allocate(amount, [w for _, w in weights] or [Decimal(1)])
            legs += [Leg(revenue(usage.partition), -share, {"resource": label})
                     for label, share in zip(labels, shares, strict=True)]
            txn_ids.append(self._post(TxnKind.CAPTURE, legs, at,
                                      f"charge for job {usage.job_id}", refs).id)
        released = held - from_hold
        if hold is not None:
            back = self._return(hold, released, at)
            if back is not None:
                txn_ids.append(back.id)
        used = QuotaNeed.of(usage.tres, usage.billable_seconds) if amount.is_positive \
            else QuotaNeed()
        if hold is not None:
            self.quotas.settle(hold.id, used)
            self._close(hold, HoldState.CAPTURED if amount.is_positive
                        else HoldState.RELEASED, at)
        else:
            self.quotas.record(usage.project, used)
        charge = Charge(
            new_id(), key, usage.job_id, usage.project, usage.partition, usage.state,
            amount, from_hold, from_funds, owed, released, at, usage.ended_at,
            used.core_hours, used.gpu_hours, usage.user, usage.started_at,
            hold.id if hold else None, quote, tuple(txn_ids), note)
        self._charges[key] = charge
        return charge
