"""`Billing`: the center's money service, with authorization, in its own transactions.

The admission and finish hooks run inside the job service's transactions; everything
else opens its own. Roles: finance staff and operators move money and manage prices;
org admins and PIs read their statements; members see their projects' balance and
their own spending.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from lightgrid.center.access import Principal
from lightgrid.center.billing import ledger as sql
from lightgrid.center.billing import limits, prices
from lightgrid.center.billing.funds import Funds, project_org
from lightgrid.center.jobs import Admission
from lightgrid.core.errors import Forbidden, InvalidRequest, NotFound
from lightgrid.core.funds import ChargeKey, UsageRecord
from lightgrid.core.jobs import JobSpec, JobState
from lightgrid.core.ledger import org_wallet, project_hold, project_wallet
from lightgrid.core.money import Money
from lightgrid.core.pricing import JobShape, PriceBook, Quote, Unpriced, price_at, quote_max
from lightgrid.core.quotas import QuotaNeed
from lightgrid.core.resources import Tres
from lightgrid.core.statements import Period, Statement, statement
from lightgrid.store.base import utcnow
from lightgrid.store.models import Job, JobEvent, Organization, Project, User
from lightgrid.store.models.billing import ChargeRow, HoldRow, PriceBookVersionRow, ReviewRow

if TYPE_CHECKING:
    from lightgrid.backends.base import UsageRecord as BackendUsage
    from lightgrid.center.service import Center

#: Months, caps and statements follow the center's local time.
#: The default center time zone (settings.timezone overrides it per center).
CENTER_TZ = ZoneInfo("Asia/Shanghai")
TERMINAL = [s.value for s in JobState if s.is_terminal]


def parse_month(text: str) -> tuple[int, int]:
    try:
        year, month = (int(p) for p in text.split("-"))
    except ValueError:
        raise InvalidRequest(f"month {text!r} must look like 2026-11", field="month") from None
    if not 1 <= month <= 12 or not 2000 <= year <= 2200:
        raise InvalidRequest(f"month {text!r} must look like 2026-11", field="month")
    return year, month


class Billing:
    """Prices, funds, holds, charges, limits, statements and invoices of one center."""

    def __init__(self, center: Center, tz: ZoneInfo | None = None) -> None:
        tz = tz or ZoneInfo(center.settings.timezone)
        self.center = center
        self.factory = center.factory
        self.name = center.settings.center_name
        self.currency = center.settings.currency
        self.tz = tz
        self.funds = Funds(self.currency, tz)
        self._book: tuple[int | None, PriceBook] | None = None

    def book(self, session: Session) -> PriceBook:
        """The price book, parsed once per version: versions are append-only, so the
        newest version number tells whether the cached book is still whole.

        Within one transaction the version is looked up once (a batch of submissions
        admits many jobs in one transaction).
        """
        transaction = session.get_transaction()
        seen = session.info.get("price_book")
        if seen is not None and seen[0] is transaction:
            return cast(PriceBook, seen[1])
        top = session.scalar(select(func.max(PriceBookVersionRow.version)))
        cached = self._book
        if cached is not None and cached[0] == top:
            book = cached[1]
        else:
            book = prices.load_book(session, self.name)
            self._book = (top, book)
        if transaction is not None:
            session.info["price_book"] = (transaction, book)
        return book

    # -- hooks -----------------------------------------------------------------

    def admission_hook(self, session: Session, adm: Admission, rows: Sequence[Job]) -> None:
        """Hold each task's maximum cost (and hours); refuse what cannot be paid."""
        book = self.book(session)
        now = utcnow()
        if not book.versions or now < book.versions[0].effective_from:
            return  # the center does not sell yet
        shape = JobShape(adm.partition.name, adm.allocation.tres, adm.time_limit,
                         adm.spec.qos, adm.allocation.gpu_type)
        customer = prices.customer(session, adm.organization.name, adm.organization.tier)
        quote = quote_max(book, shape, customer, now)
        if isinstance(quote, Unpriced):
            raise InvalidRequest(f"cannot admit: {quote.reason}; the operator must add a "
                                 "price first", field="partition")
        self.funds.admit(session, project=adm.project.name, org=adm.organization.name,
                         job_ids=[r.id for r in rows], per_task=quote.amount,
                         quota=QuotaNeed.of(adm.allocation.tres, adm.time_limit),
                         user=adm.principal.username, at=now)

    def on_finish(self, session: Session, job: Job, usage: BackendUsage | None) -> None:
        """The dispatcher's finish hook."""
        self.finish_hook(session, job, usage)

    def finish_hook(self, session: Session, job: Job,
                    usage: BackendUsage | None) -> ChargeRow | ReviewRow | None:
        """Charge a finished job once (capture and release), or release its hold."""
        book = self.book(session)
        if not book.versions and self.funds.active_hold(session, job.id) is None:
            return None
        project = session.get(Project, job.project_id)
        user = session.get(User, job.user_id)
        assert project is not None and user is not None
        session.flush()
        runs = session.scalar(select(func.count()).select_from(JobEvent).where(
            JobEvent.job_id == job.id, JobEvent.to_state.in_(TERMINAL))) or 1
        started = job.start_time or (usage.start_time if usage else None)
        if usage is not None:
            elapsed = usage.elapsed
        elif job.elapsed is not None:
            elapsed = job.elapsed
        elif started and job.end_time:
            elapsed = max(0, int((job.end_time - started).total_seconds()))
        else:
            elapsed = 0
        tres = usage.tres if usage is not None and usage.tres.cpu else Tres(
            job.cpus, job.mem, job.gpus, job.exclusive_nodes)
        record = UsageRecord(
            key=ChargeKey(usage.cluster if usage else self.name, job.backend_id or job.id,
                          runs - 1),
            job_id=job.id, project=project.name, partition=job.partition, tres=tres,
            state=JobState(job.state), elapsed=elapsed, ended_at=job.end_time or utcnow(),
            started_at=started, user=user.username, qos=job.qos, gpu_type=job.gpu_type,
            time_limit=job.time_limit)
        return self.charge_record(session, record, book)

    def charge_record(self, session: Session, record: UsageRecord,
                      book: PriceBook | None = None) -> ChargeRow | ReviewRow:
        """Charge one usage record (from the hook or an ingestion) exactly once."""
        _, org = project_org(session, record.project)
        customer = prices.customer(session, org.name, org.tier)
        return self.funds.charge(session, record, book or self.book(session), customer,
                                 at=utcnow())

    # -- access helpers ------------------------------------------------------------

    def _project(self, session: Session, principal: Principal, name: str,
                 *, manage: bool = False) -> tuple[Project, Organization]:
        project, org = project_org(session, name)
        ok = (principal.can_manage_project(project.id, org.id) or principal.is_finance) \
            if manage else principal.can_see_project(project.id, org.id)
        if not ok:
            if principal.can_see_project(project.id, org.id):
                raise Forbidden(f"only the PI, org admins and finance see the statement "
                                f"of project {name}")
            raise NotFound(f"project {name!r} not found", field="project")
        return project, org

    def _org(self, session: Session, principal: Principal, name: str) -> Organization:
        org = session.scalar(select(Organization).where(Organization.name == name))
        if org is None or not principal.can_see_org(org.id):
            raise NotFound(f"organization {name!r} not found", field="org")
        return org

    def owner(self, session: Session, principal: Principal, owner: str) -> str:
        """``project:P`` / ``org:O`` (a bare name is a project), checked to exist."""
        scope, sep, name = owner.partition(":")
        if not sep:
            scope, name = "project", owner
        if scope == "project":
            project_org(session, name)
        elif scope == "org":
            if session.scalar(select(Organization.id).where(Organization.name == name)) \
                    is None:
                raise NotFound(f"organization {name!r} not found", field="owner")
        else:
            raise InvalidRequest("owner must be project:<name> or org:<name>", field="owner")
        return f"{scope}:{name}"

    # -- quotes and balances ------------------------------------------------------

    def quote(self, principal: Principal, spec: JobSpec) -> dict[str, Any]:
        """The maximum cost of a job before it is submitted, with the breakdown."""
        with self.factory() as session:
            project, partition, allocation, time_limit = self.center.jobs.validate(
                principal, spec, session)
            org = session.get(Organization, project.org_id)
            assert org is not None
            book = self.book(session)
            if not book.versions:
                raise NotFound("this center has no price book yet", field="price_book")
            now = utcnow()
            shape = JobShape(partition.name, allocation.tres, time_limit, spec.qos,
                             allocation.gpu_type)
            customer = prices.customer(session, org.name, org.tier)
            result = quote_max(book, shape, customer, max(now, book.versions[0].effective_from))
            tasks = len(spec.array.indices) if spec.array else 1
            pos = self.funds.position(session, project.name, now)
        if isinstance(result, Unpriced):
            return {"project": project.name, "priced": False, "reason": result.reason,
                    "tasks": tasks, "currency": self.currency}
        total = Money(result.amount.amount * tasks, self.currency)
        return {"project": project.name, "priced": True, "tasks": tasks,
                "per_task": result.as_dict(), "total": f"{total.amount:.2f}",
                "currency": self.currency, "time_limit": time_limit,
                "available": f"{pos.spendable.amount:.2f}",
                "sufficient": total <= pos.spendable and not pos.blocked,
                "blocked": pos.blocked}

    def balance(self, principal: Principal, project: str) -> dict[str, Any]:
        with self.factory() as session:
            self._project(session, principal, project)
            out = self.funds.position(session, project, utcnow()).as_dict()
            out["active_holds"] = session.scalar(select(func.count()).select_from(HoldRow)
                                                 .where(HoldRow.project == project,
                                                        HoldRow.state == "ACTIVE"))
            out["quotas"] = [_quota_dict(q) for q in limits.quota_status(session, project)]
            return out

    def balances(self, principal: Principal) -> list[dict[str, Any]]:
        with self.factory() as session:
            rows = session.execute(select(Project.name, Project.id, Project.org_id)
                                   .order_by(Project.name)).all()
            names = [n for n, pid, oid in rows if principal.can_see_project(pid, oid)]
            now = utcnow()
            return [self.funds.position(session, n, now).as_dict() for n in names]

    def org_balance(self, principal: Principal, org: str) -> dict[str, str]:
        with self.factory() as session:
            self._org(session, principal, org)
            return self.funds.org_position(session, org)

    def blocked_projects(self, at: datetime | None = None) -> list[str]:
        with self.factory() as session:
            return self.funds.blocked_projects(session, at or utcnow())

    # -- money movements (finance) -------------------------------------------------

    def top_up(self, principal: Principal, owner: str, amount: object, method: str,
               reference: str, memo: str = "") -> dict[str, Any]:
        principal.require_finance()
        with self.factory() as session, session.begin():
            txn = self.funds.top_up(session, self.owner(session, principal, owner), amount,
                                    method=method, reference=reference, at=utcnow(),
                                    memo=memo)
            return _txn_dict(txn)

    def refund(self, principal: Principal, owner: str, amount: object, method: str,
               reference: str, reason: str) -> dict[str, Any]:
        principal.require_finance()
        with self.factory() as session, session.begin():
            return _txn_dict(self.funds.refund(
                session, self.owner(session, principal, owner), amount, method=method,
                reference=reference, at=utcnow(), reason=reason))

    def adjust(self, principal: Principal, owner: str, amount: object,
               reason: str) -> dict[str, Any]:
        principal.require_finance()
        with self.factory() as session, session.begin():
            return _txn_dict(self.funds.adjust(
                session, self.owner(session, principal, owner), amount, reason=reason,
                at=utcnow(), actor=principal.username))

    def set_limits(self, principal: Principal, owner: str, *,
                   threshold: object | None = None,
                   credit_limit: object | None = None) -> dict[str, str]:
        principal.require_finance()
        with self.factory() as session, session.begin():
            owner = self.owner(session, principal, owner)
            row = limits.limit_row(session, owner, lock=True)
            if threshold is not None:
                row.threshold = Money.of(threshold, self.currency).amount
            if credit_limit is not None:
                if not owner.startswith("org:"):
                    raise InvalidRequest("only organizations have a credit limit",
                                         field="credit_limit")
                value = Money.of(credit_limit, self.currency)
                in_use = sql.balances(session, [org_wallet(owner[4:]).code])
                used = max(Decimal(0), next(iter(in_use.values())))
                if value.is_negative or value.amount < used:
                    raise InvalidRequest(f"the credit limit must be at least the credit in "
                                         f"use ({used:.2f})", field="credit_limit")
                row.credit_limit = value.amount
            return {"owner": owner, "threshold": f"{row.threshold:.2f}",
                    "credit_limit": f"{row.credit_limit:.2f}"}

    # -- charges and reviews --------------------------------------------------------

    def charges(self, principal: Principal, project: str,
                limit: int = 200) -> list[dict[str, Any]]:
        """Charges of a project: all for PIs and above, a member's own otherwise."""
        with self.factory() as session:
            p, org = self._project(session, principal, project)
            q = select(ChargeRow).where(ChargeRow.project == project)
            if not (principal.can_manage_project(p.id, org.id) or principal.is_finance):
                q = q.where(ChargeRow.user == principal.username)
            rows = session.scalars(q.order_by(ChargeRow.created_at.desc()).limit(limit))
            return [charge_dict(r) for r in rows]

    def explain(self, principal: Principal, key: str) -> dict[str, Any]:
        """A charge with its breakdown, recomputed from the immutable price version."""
        with self.factory() as session:
            row = session.scalar(select(ChargeRow).where(ChargeRow.key == key))
            if row is None:
                raise NotFound(f"no charge {key}", field="key")
            p, org = self._project(session, principal, row.project)
            if not (principal.can_manage_project(p.id, org.id) or principal.is_finance
                    or row.user == principal.username):
                raise NotFound(f"no charge {key}", field="key")
            out = charge_dict(row)
            if row.price_version and row.started_at and row.source in ("book", "contract",
                                                                       "fallback"):
                shape = JobShape(row.partition, Tres(row.cpus, row.mem, row.gpus, row.nodes),
                                 row.seconds, row.qos, row.gpu_type)
                result = price_at(self.book(session), shape,
                                  prices.customer(session, org.name, org.tier),
                                  row.started_at)
                if isinstance(result, Quote):
                    out["breakdown"] = result.as_dict()
                    out["reproduced"] = result.amount.amount == row.amount
            return out

    def reviews(self, principal: Principal) -> list[dict[str, Any]]:
        principal.require_finance()
        with self.factory() as session:
            rows = session.scalars(select(ReviewRow).where(ReviewRow.resolved_at.is_(None))
                                   .order_by(ReviewRow.created_at))
            return [{"key": r.key, "job_id": r.job_id, "project": r.project,
                     "reason": r.reason, "created_at": r.created_at.isoformat(),
                     "usage": r.usage} for r in rows]

    def resolve(self, principal: Principal, key: str, amount: object,
                note: str) -> dict[str, Any]:
        principal.require_operator()
        with self.factory() as session, session.begin():
            return charge_dict(self.funds.resolve_review(session, key, amount,
                                                         at=utcnow(), note=note))

    # -- statements ------------------------------------------------------------------

    def statement(self, principal: Principal, subject: str, month: str) -> Statement:
        """A month's statement of ``project:P`` or ``org:O``, reconciled to the ledger."""
        year, mon = parse_month(month)
        period = Period.month(year, mon, self.tz)
        with self.factory() as session:
            scope, _, name = subject.partition(":")
            if scope == "org":
                org = self._org(session, principal, name)
                projects = sorted(session.scalars(select(Project.name).where(
                    Project.org_id == org.id)))
                accounts = [org_wallet(name).code]
            elif scope == "project":
                self._project(session, principal, name, manage=True)
                projects, accounts = [name], []
            else:
                raise InvalidRequest("statements are for project:<name> or org:<name>",
                                     field="subject")
            for p in projects:
                accounts += [project_wallet(p).code, project_hold(p).code]
            holds = [a for a in accounts if a.startswith("hold:")]
            core = statement(sql.ledger_of(session, accounts, period.start, period.end),
                             subject=subject,
                             accounts=[_account(a) for a in accounts],
                             projects=projects, period=period, currency=self.currency)
            money = lambda v: Money(-v, self.currency)  # noqa: E731 - credit-normal funds
            return replace(
                core, opening=money(sql.sum_before(session, accounts, period.start)),
                closing=money(sql.sum_before(session, accounts, period.end)),
                held_at_close=money(sql.sum_before(session, holds, period.end)))

    def usage(self, principal: Principal, project: str,
              month: str | None = None) -> list[dict[str, Any]]:
        """Charged usage by month (of job end), user and partition."""
        with self.factory() as session:
            self._project(session, principal, project, manage=True)
            q = select(ChargeRow.ended_at, ChargeRow.user, ChargeRow.partition,
                       ChargeRow.core_hours, ChargeRow.gpu_hours, ChargeRow.amount).where(
                ChargeRow.project == project)
            acc: dict[tuple[str, str, str], list[Any]] = {}
            for ended, user, part, ch, gh, amount in session.execute(q):
                label = ended.astimezone(self.tz).strftime("%Y-%m")
                if month and label != month:
                    continue
                row = acc.setdefault((label, user or "", part),
                                     [0, Decimal(0), Decimal(0), Decimal(0)])
                row[0] += 1
                row[1] += ch
                row[2] += gh
                row[3] += sql.exact(amount)
        return [{"month": k[0], "user": k[1], "partition": k[2], "jobs": v[0],
                 "core_hours": f"{v[1]:.2f}", "gpu_hours": f"{v[2]:.2f}",
                 "amount": f"{v[3]:.2f}", "currency": self.currency}
                for k, v in sorted(acc.items())]


def _account(code: str) -> Any:
    from lightgrid.core.ledger import Account

    return Account.parse(code)


def _quota_dict(q: Any) -> dict[str, str]:
    return {"kind": str(q.kind), "granted": f"{q.granted:.2f}", "used": f"{q.used:.2f}",
            "held": f"{q.held:.2f}", "remaining": f"{q.remaining:.2f}"}


def _txn_dict(txn: Any) -> dict[str, Any]:
    return {"transaction_id": txn.id, "kind": str(txn.kind),
            "created_at": txn.created_at.isoformat(), "memo": txn.memo,
            "refs": dict(txn.refs),
            "postings": [{"account": p.account, "amount": f"{p.amount:.2f}",
                          "currency": p.currency} for p in txn.postings]}


def charge_dict(r: ChargeRow) -> dict[str, Any]:
    return {"key": r.key, "job_id": r.job_id, "project": r.project, "user": r.user,
            "partition": r.partition, "state": r.state, "amount": f"{r.amount:.2f}",
            "from_hold": f"{r.from_hold:.2f}", "from_funds": f"{r.from_funds:.2f}",
            "to_receivable": f"{r.to_receivable:.2f}", "released": f"{r.released:.2f}",
            "seconds": r.seconds, "core_hours": f"{r.core_hours:.2f}",
            "gpu_hours": f"{r.gpu_hours:.2f}", "price_version": r.price_version,
            "source": r.source, "started_at": r.started_at.isoformat()
            if r.started_at else None, "ended_at": r.ended_at.isoformat(),
            "created_at": r.created_at.isoformat(), "note": r.note}
