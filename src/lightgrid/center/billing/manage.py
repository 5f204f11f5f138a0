"""Price books, contracts, quotas, whitelist, spending caps and invoice requests."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lightgrid.center.access import Principal
from lightgrid.center.billing import limits, prices
from lightgrid.core.errors import Conflict, Forbidden, InvalidRequest, NotFound
from lightgrid.core.money import Money
from lightgrid.store.base import utcnow
from lightgrid.store.models import Organization, Project, User
from lightgrid.store.models.billing import ContractRow, InvoiceRow

if TYPE_CHECKING:
    from lightgrid.center.billing.service import Billing


def price_book(billing: Billing, principal: Principal) -> dict[str, Any]:
    """Every version (anyone signed in may read prices) and the one in force now."""
    with billing.factory() as session:
        book = billing.book(session)
    now = utcnow()
    current = next((v.version for v in reversed(book.versions)
                    if v.effective_from <= now), None)
    return {"center": billing.name, "currency": billing.currency, "current": current,
            "versions": [prices.version_dict(v) for v in book.versions]}


def add_price_version(billing: Billing, principal: Principal,
                      body: dict[str, Any]) -> dict[str, Any]:
    principal.require_finance()
    with billing.factory() as session, session.begin():
        version = prices.add_version(session, billing.name, body, now=utcnow(),
                                     actor=principal.username, currency=billing.currency)
        return prices.version_dict(version)


def contracts(billing: Billing, principal: Principal, org: str | None) -> list[dict[str, Any]]:
    with billing.factory() as session:
        q = select(ContractRow).order_by(ContractRow.effective_from)
        if org:
            billing._org(session, principal, org)
            q = q.where(ContractRow.org == org)
        else:
            principal.require_finance()
        return [_contract_dict(r) for r in session.scalars(q)]


def add_contract(billing: Billing, principal: Principal, org: str,
                 body: dict[str, Any]) -> dict[str, Any]:
    principal.require_finance()
    with billing.factory() as session, session.begin():
        if session.scalar(select(Organization.id).where(Organization.name == org)) is None:
            raise NotFound(f"organization {org!r} not found", field="org")
        prices.add_contract(session, org, body)
        row = session.scalars(select(ContractRow).where(ContractRow.org == org)
                              .order_by(ContractRow.created_at.desc())).first()
        assert row is not None
        return _contract_dict(row)


def _contract_dict(r: ContractRow) -> dict[str, Any]:
    return {"id": r.id, "org": r.org, "effective_from": r.effective_from.isoformat(),
            "effective_until": r.effective_until.isoformat() if r.effective_until else None,
            "discount": str(r.discount) if r.discount is not None else None,
            "cards": r.cards, "note": r.note}


# ------------------------------------------------------------------------- quotas


def grant_quota(billing: Billing, principal: Principal, project: str, kind: str,
                hours: object) -> list[dict[str, str]]:
    principal.require_finance()
    with billing.factory() as session, session.begin():
        billing._project(session, principal, project)
        limits.grant(session, project, kind, hours)
        return [_quota(q) for q in limits.quota_status(session, project)]


def show_quota(billing: Billing, principal: Principal, project: str) -> list[dict[str, str]]:
    with billing.factory() as session:
        billing._project(session, principal, project)
        return [_quota(q) for q in limits.quota_status(session, project)]


def _quota(q: Any) -> dict[str, str]:
    return {"kind": str(q.kind), "granted": f"{q.granted:.2f}", "used": f"{q.used:.2f}",
            "held": f"{q.held:.2f}", "remaining": f"{q.remaining:.2f}"}


# ------------------------------------------------------------- whitelist and caps


def whitelist(billing: Billing, principal: Principal, project: str, reason: str,
              expires_at: datetime | None) -> dict[str, Any]:
    principal.require_finance()
    with billing.factory() as session, session.begin():
        billing._project(session, principal, project)
        if expires_at is not None and expires_at.tzinfo is None:
            raise InvalidRequest("expires_at needs a timezone", field="expires_at")
        row = limits.set_whitelist(session, project, reason, expires_at,
                                   principal.username)
        return {"project": row.project, "reason": row.reason,
                "expires_at": row.expires_at.isoformat() if row.expires_at else None}


def unwhitelist(billing: Billing, principal: Principal, project: str) -> None:
    principal.require_finance()
    with billing.factory() as session, session.begin():
        limits.remove_whitelist(session, project)


def set_cap(billing: Billing, principal: Principal, project: str, user: str,
            limit: object, period: str) -> dict[str, str]:
    """A spending cap for USER in PROJECT; set by its PI, org admins or finance."""
    with billing.factory() as session, session.begin():
        billing._project(session, principal, project, manage=True)
        if session.scalar(select(User.id).where(User.username == user)) is None:
            raise NotFound(f"user {user!r} not found", field="user")
        row = limits.set_cap(session, project, user, Money.of(limit, billing.currency),
                             period)
        return {"project": project, "user": user, "limit": f"{row.limit:.2f}",
                "period": row.period}


# ----------------------------------------------------------------------- invoices


def _invoice_owner(billing: Billing, session: Session, principal: Principal,
                   owner: str) -> str:
    owner = billing.owner(session, principal, owner)
    scope, _, name = owner.partition(":")
    if scope == "org":
        org = session.scalar(select(Organization).where(Organization.name == name))
        assert org is not None
        if not principal.can_see_org(org.id):
            raise Forbidden(f"only admins of {name} and finance request its invoices")
    else:
        billing._project(session, principal, name, manage=True)
    return owner


def request_invoice(billing: Billing, principal: Principal, owner: str, amount: object,
                    note: str = "") -> dict[str, Any]:
    """An org admin (or PI) asks for an invoice for an amount."""
    value = Money.of(amount, billing.currency)
    if not value.is_positive:
        raise InvalidRequest("the amount must be positive", field="amount")
    with billing.factory() as session, session.begin():
        owner = _invoice_owner(billing, session, principal, owner)
        row = InvoiceRow(owner=owner, amount=value.amount, currency=billing.currency,
                         note=note[:500], requested_by=principal.username,
                         requested_at=utcnow())
        session.add(row)
        session.flush()
        return invoice_dict(row)


def issue_invoice(billing: Billing, principal: Principal, invoice_id: str,
                  number: str) -> dict[str, Any]:
    """Finance marks a requested invoice issued, with its number (unique)."""
    principal.require_finance()
    number = number.strip()
    if not number or len(number) > 64:
        raise InvalidRequest("an invoice number (1-64 characters) is required",
                             field="number")
    with billing.factory() as session, session.begin():
        row = session.get(InvoiceRow, invoice_id, with_for_update=True)
        if row is None:
            raise NotFound(f"invoice {invoice_id} not found", field="invoice")
        if row.state != "requested":
            raise Conflict(f"invoice {invoice_id} is already {row.state} as {row.number}",
                           field="state")
        if session.scalar(select(InvoiceRow.id).where(InvoiceRow.number == number)):
            raise Conflict(f"invoice number {number!r} is already used", field="number")
        row.state, row.number = "issued", number
        row.issued_by, row.issued_at = principal.username, utcnow()
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(f"invoice number {number!r} is already used",
                           field="number") from None
        return invoice_dict(row)


def invoices(billing: Billing, principal: Principal,
             state: str | None = None) -> list[dict[str, Any]]:
    """Finance sees all; others the invoices of what they administer."""
    with billing.factory() as session:
        q = select(InvoiceRow).order_by(InvoiceRow.requested_at)
        if state:
            q = q.where(InvoiceRow.state == state)
        rows = list(session.scalars(q))
        if principal.is_finance:
            return [invoice_dict(r) for r in rows]
        orgs = dict(session.execute(select(Organization.name, Organization.id)).all())
        projects = {n: (pid, oid) for n, pid, oid in session.execute(
            select(Project.name, Project.id, Project.org_id))}

        def visible(owner: str) -> bool:
            scope, _, name = owner.partition(":")
            if scope == "org":
                return name in orgs and principal.can_see_org(orgs[name])
            pid, oid = projects.get(name, ("", ""))
            return bool(pid) and principal.can_manage_project(pid, oid)
        return [invoice_dict(r) for r in rows if visible(r.owner)]


def invoice_dict(r: InvoiceRow) -> dict[str, Any]:
    return {"id": r.id, "owner": r.owner, "amount": f"{r.amount:.2f}",
            "currency": r.currency, "state": r.state, "note": r.note,
            "requested_by": r.requested_by, "requested_at": r.requested_at.isoformat(),
            "number": r.number, "issued_by": r.issued_by,
            "issued_at": r.issued_at.isoformat() if r.issued_at else None}
