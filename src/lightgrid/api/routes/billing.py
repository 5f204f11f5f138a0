"""Billing: quotes, balances, money movements, prices, quotas, statements, invoices."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response
from pydantic import AfterValidator, Field

from lightgrid.api.deps import CenterDep, PrincipalDep
from lightgrid.api.schemas import Strict, SubmitIn
from lightgrid.center.billing import manage
from lightgrid.center.billing.service import Billing
from lightgrid.center.service import Center
from lightgrid.center.statement_pdf import render_statement_pdf
from lightgrid.core.errors import InvalidRequest
from lightgrid.core.statements import statement_csv
from lightgrid.store.base import utcnow

router = APIRouter(tags=["billing"])
def _decimal_text(value: str) -> str:
    """Refuse what is not a finite decimal here, so the error names the field."""
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite amount")
    return value


Amount = Annotated[str, Field(description="decimal string, e.g. \"100.00\"",
                              max_length=40), AfterValidator(_decimal_text)]


def _billing(center: Center) -> Billing:
    return center.billing  # type: ignore[attr-defined]


class MoneyIn(Strict):
    owner: str = Field(description="project:<name>, org:<name>, or a project name",
                       max_length=80)
    amount: Amount
    method: str = Field(default="bank_transfer", max_length=40)
    reference: str = Field(default="", max_length=200)
    memo: str = Field(default="", max_length=500)
    reason: str = Field(default="", max_length=500)


class LimitsIn(Strict):
    threshold: Amount | None = None
    credit_limit: Amount | None = None


class GrantIn(Strict):
    kind: str = Field(description="core_hours or gpu_hours")
    hours: Amount


class WhitelistIn(Strict):
    reason: str = Field(max_length=300)
    expires_at: datetime | None = None


class CapIn(Strict):
    limit: Amount
    period: str = "month"


class ResolveIn(Strict):
    amount: Amount
    note: str = Field(max_length=300)


class InvoiceIn(Strict):
    owner: str = Field(max_length=80)
    amount: Amount
    note: str = Field(default="", max_length=500)


class IssueIn(Strict):
    number: str = Field(max_length=64)


@router.post("/quotes")
def quote(body: SubmitIn, center: CenterDep, principal: PrincipalDep) -> dict[str, Any]:
    """The maximum cost of a job (same body as POST /jobs), before submitting it."""
    return _billing(center).quote(principal, body.to_spec())


@router.get("/balances")
def balances(center: CenterDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    """Balances of every project the caller may see."""
    return _billing(center).balances(principal)


@router.get("/balances/{project}")
def balance(project: str, center: CenterDep, principal: PrincipalDep) -> dict[str, Any]:
    return _billing(center).balance(principal, project)


@router.get("/orgs/{org}/balance")
def org_balance(org: str, center: CenterDep, principal: PrincipalDep) -> dict[str, str]:
    return _billing(center).org_balance(principal, org)


@router.post("/topups", status_code=201)
def top_up(body: MoneyIn, center: CenterDep, principal: PrincipalDep) -> dict[str, Any]:
    """Finance: credit a wallet; the same (method, reference) again is the same top-up."""
    return _billing(center).top_up(principal, body.owner, body.amount, body.method,
                                   body.reference, body.memo)


@router.post("/refunds", status_code=201)
def refund(body: MoneyIn, center: CenterDep, principal: PrincipalDep) -> dict[str, Any]:
    return _billing(center).refund(principal, body.owner, body.amount, body.method,
                                   body.reference, body.reason)


@router.post("/adjustments", status_code=201)
def adjust(body: MoneyIn, center: CenterDep, principal: PrincipalDep) -> dict[str, Any]:
    return _billing(center).adjust(principal, body.owner, body.amount, body.reason)


@router.put("/limits/{owner}")
def set_limits(owner: str, body: LimitsIn, center: CenterDep,
               principal: PrincipalDep) -> dict[str, str]:
    """Finance: a project's blocking threshold or an organization's credit limit."""
    return _billing(center).set_limits(principal, owner, threshold=body.threshold,
                                       credit_limit=body.credit_limit)


@router.get("/blocked")
def blocked(center: CenterDep, principal: PrincipalDep) -> list[str]:
    principal.require_finance()
    return _billing(center).blocked_projects()


@router.get("/pricebook")
def price_book(center: CenterDep, principal: PrincipalDep) -> dict[str, Any]:
    return manage.price_book(_billing(center), principal)


@router.post("/pricebook/versions", status_code=201)
def add_price_version(center: CenterDep, principal: PrincipalDep,
                      body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    """Finance: append a version (decimals as strings) taking effect now or later."""
    return manage.add_price_version(_billing(center), principal, body)


@router.get("/contracts")
def contracts(center: CenterDep, principal: PrincipalDep,
              org: str | None = None) -> list[dict[str, Any]]:
    return manage.contracts(_billing(center), principal, org)


@router.post("/orgs/{org}/contracts", status_code=201)
def add_contract(org: str, center: CenterDep, principal: PrincipalDep,
                 body: Annotated[dict[str, Any], Body()]) -> dict[str, Any]:
    return manage.add_contract(_billing(center), principal, org, body)


@router.get("/quotas/{project}")
def show_quota(project: str, center: CenterDep,
               principal: PrincipalDep) -> list[dict[str, str]]:
    return manage.show_quota(_billing(center), principal, project)


@router.post("/quotas/{project}")
def grant_quota(project: str, body: GrantIn, center: CenterDep,
                principal: PrincipalDep) -> list[dict[str, str]]:
    return manage.grant_quota(_billing(center), principal, project, body.kind, body.hours)


@router.put("/whitelist/{project}")
def whitelist(project: str, body: WhitelistIn, center: CenterDep,
              principal: PrincipalDep) -> dict[str, Any]:
    return manage.whitelist(_billing(center), principal, project, body.reason,
                            body.expires_at)


@router.delete("/whitelist/{project}", status_code=204)
def unwhitelist(project: str, center: CenterDep, principal: PrincipalDep) -> Response:
    manage.unwhitelist(_billing(center), principal, project)
    return Response(status_code=204)


@router.put("/caps/{project}/{user}")
def set_cap(project: str, user: str, body: CapIn, center: CenterDep,
            principal: PrincipalDep) -> dict[str, str]:
    return manage.set_cap(_billing(center), principal, project, user, body.limit,
                          body.period)


@router.get("/charges")
def charges(center: CenterDep, principal: PrincipalDep, project: str,
            limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[dict[str, Any]]:
    """A project's charges; members see only their own."""
    return _billing(center).charges(principal, project, limit)


@router.get("/charges/{key:path}")
def explain(key: str, center: CenterDep, principal: PrincipalDep) -> dict[str, Any]:
    """One charge with its breakdown, recomputed from its price version."""
    return _billing(center).explain(principal, key)


@router.get("/reviews")
def reviews(center: CenterDep, principal: PrincipalDep) -> list[dict[str, Any]]:
    """Usage records no price covers, waiting for the operator."""
    return _billing(center).reviews(principal)


@router.post("/reviews/resolve")
def resolve(center: CenterDep, principal: PrincipalDep, key: str,
            body: ResolveIn) -> dict[str, Any]:
    return _billing(center).resolve(principal, key, body.amount, body.note)


@router.get("/statements/{scope}/{name}")
def statement(scope: str, name: str, center: CenterDep, principal: PrincipalDep,
              month: Annotated[str, Query(pattern=r"^\d{4}-\d{2}$")],
              format: Annotated[str, Query(pattern="^(json|csv|pdf)$")] = "json",
              ) -> Any:
    """A monthly statement of a project or organization, as JSON, CSV or PDF."""
    if scope not in ("project", "org"):
        raise InvalidRequest("scope must be project or org", field="scope")
    billing = _billing(center)
    st = billing.statement(principal, f"{scope}:{name}", month)
    filename = f"statement-{scope}-{name}-{month}"
    if format == "csv":
        return Response(statement_csv(st), media_type="text/csv", headers={
            "Content-Disposition": f'attachment; filename="{filename}.csv"'})
    if format == "pdf":
        pdf = render_statement_pdf(st, center_name=billing.name, generated_at=utcnow())
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="{filename}.pdf"'})
    def m(v: Any) -> str:
        return f"{v.amount:.2f}"
    return {"subject": st.subject, "period": st.period.label, "currency": st.currency,
            "opening": m(st.opening), "top_ups": m(st.top_ups), "refunds": m(st.refunds),
            "adjustments": m(st.adjustments), "org_transfers": m(st.org_transfers),
            "invoiced": m(st.invoiced), "covered_elsewhere": m(st.covered_elsewhere),
            "charges": m(st.charges), "closing": m(st.closing),
            "held_at_close": m(st.held_at_close), "reconciles": st.reconciles,
            "charge_lines": [{"project": c.project, "partition": c.partition,
                              "resource": c.resource, "amount": m(c.amount)}
                             for c in st.charge_lines],
            "top_up_lines": [{"at": t.at.isoformat(), "owner": t.owner,
                              "amount": m(t.amount), "method": t.method,
                              "reference": t.reference} for t in st.top_up_lines]}


@router.get("/usage/{project}")
def usage(project: str, center: CenterDep, principal: PrincipalDep,
          month: Annotated[str | None, Query(pattern=r"^\d{4}-\d{2}$")] = None,
          ) -> list[dict[str, Any]]:
    """Charged usage by month, user and partition."""
    return _billing(center).usage(principal, project, month)


@router.post("/invoices", status_code=201)
def request_invoice(body: InvoiceIn, center: CenterDep,
                    principal: PrincipalDep) -> dict[str, Any]:
    return manage.request_invoice(_billing(center), principal, body.owner, body.amount,
                                  body.note)


@router.post("/invoices/{invoice_id}/issue")
def issue_invoice(invoice_id: str, body: IssueIn, center: CenterDep,
                  principal: PrincipalDep) -> dict[str, Any]:
    return manage.issue_invoice(_billing(center), principal, invoice_id, body.number)


@router.get("/invoices")
def invoices(center: CenterDep, principal: PrincipalDep,
             state: str | None = None) -> list[dict[str, Any]]:
    return manage.invoices(_billing(center), principal, state)
