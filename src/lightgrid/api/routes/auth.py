"""/auth: password login and API tokens."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from lightgrid.api.deps import CenterDep, PrincipalDep
from lightgrid.api.schemas import LoginIn, TokenIn, TokenOut, WhoAmI
from lightgrid.center import tenancy
from lightgrid.center.auth import issue_token
from lightgrid.store.models import ApiToken, User

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post("/login", response_model=TokenOut, status_code=201)
def login(body: LoginIn, center: CenterDep) -> TokenOut:
    """Exchange a username and password for a new API token."""
    with center.factory() as session, session.begin():
        row, plain = tenancy.login(session, body.username, body.password,
                                   center.settings.token_ttl_days)
        return TokenOut(id=row.id, token=plain, name=row.name, prefix=row.prefix,
                        created_at=row.created_at, expires_at=row.expires_at)


@router.get("/whoami", response_model=WhoAmI)
def whoami(principal: PrincipalDep) -> WhoAmI:
    return WhoAmI(user_id=principal.user_id, username=principal.username,
                  center_role=principal.center_role,
                  projects={name: principal.projects[pid]
                            for name, pid in principal.project_names.items()},
                  admin_orgs=sorted(principal.admin_orgs))


@router.post("/tokens", response_model=TokenOut, status_code=201)
def create_token(body: TokenIn, center: CenterDep, principal: PrincipalDep) -> TokenOut:
    """A new token for yourself, or (operators) for another user."""
    with center.factory() as session, session.begin():
        if body.user and body.user != principal.username:
            principal.require_operator()
            user = tenancy.get_user(session, body.user)
        else:
            me = session.get(User, principal.user_id)
            assert me is not None
            user = me
        row, plain = issue_token(session, user, name=body.name,
                                 ttl_days=body.ttl_days or center.settings.token_ttl_days)
        return TokenOut(id=row.id, token=plain, name=row.name, prefix=row.prefix,
                        created_at=row.created_at, expires_at=row.expires_at)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(center: CenterDep, principal: PrincipalDep) -> list[TokenOut]:
    with center.factory() as session:
        rows = session.scalars(select(ApiToken).where(
            ApiToken.user_id == principal.user_id).order_by(ApiToken.created_at))
        return [TokenOut(id=r.id, name=r.name, prefix=r.prefix, created_at=r.created_at,
                         expires_at=r.expires_at, revoked_at=r.revoked_at) for r in rows]


@router.delete("/tokens/{token_id}", status_code=204)
def revoke_token(token_id: str, center: CenterDep, principal: PrincipalDep) -> None:
    with center.factory() as session, session.begin():
        tenancy.revoke_token(session, principal, token_id)
    center.auth.invalidate()
