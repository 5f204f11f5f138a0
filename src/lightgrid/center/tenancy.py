"""Organizations, projects, users, memberships and tokens."""

from __future__ import annotations

import re
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from lightgrid.center.access import CENTER_ROLES, PROJECT_ROLES, Principal
from lightgrid.center.auth import hash_password, issue_token, verify_password
from lightgrid.core.errors import Conflict, InvalidRequest, NotFound, Unauthorized
from lightgrid.store.models import ApiToken, Membership, Organization, OrgRole, Project, User

T = TypeVar("T")

ORG_KINDS = ("university", "key_laboratory", "research_institute", "government_agency",
             "enterprise")
TIERS = ("academic", "government", "enterprise")
_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,62}$")


def check_name(value: str, field: str) -> str:
    """Names become Slurm account and user names: lowercase, short, no spaces."""
    if not _NAME.match(value):
        raise InvalidRequest(f"{field} {value!r} must be 2-63 characters of a-z, 0-9, '_' "
                             "or '-', starting with a letter", field=field)
    return value


def _flush_unique(session: Session, what: str, name: str) -> None:
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"{what} {name!r} already exists", field="name") from None


def create_org(session: Session, name: str, kind: str, display_name: str = "",
               tier: str | None = None) -> Organization:
    check_name(name, "name")
    if kind not in ORG_KINDS:
        raise InvalidRequest(f"kind must be one of {', '.join(ORG_KINDS)}", field="kind")
    tier = tier or {"government_agency": "government", "enterprise": "enterprise"}.get(
        kind, "academic")
    if tier not in TIERS:
        raise InvalidRequest(f"tier must be one of {', '.join(TIERS)}", field="tier")
    if session.scalar(select(Organization.id).where(Organization.name == name)):
        raise Conflict(f"organization {name!r} already exists", field="name")
    org = Organization(name=name, kind=kind, display_name=display_name or name, tier=tier)
    session.add(org)
    _flush_unique(session, "organization", name)
    return org


def create_project(session: Session, org: Organization, name: str,
                   display_name: str = "") -> Project:
    check_name(name, "name")
    if session.scalar(select(Project.id).where(Project.name == name)):
        raise Conflict(f"project {name!r} already exists", field="name")
    project = Project(org_id=org.id, name=name, display_name=display_name or name)
    session.add(project)
    _flush_unique(session, "project", name)
    return project


def create_user(session: Session, username: str, *, password: str | None = None,
                display_name: str = "", email: str = "",
                center_role: str | None = None) -> User:
    check_name(username, "username")
    if center_role is not None and center_role not in CENTER_ROLES:
        raise InvalidRequest(f"center_role must be one of {', '.join(CENTER_ROLES)}",
                             field="center_role")
    if password is not None and len(password) < 8:
        raise InvalidRequest("password must have at least 8 characters", field="password")
    if session.scalar(select(User.id).where(User.username == username)):
        raise Conflict(f"user {username!r} already exists", field="username")
    user = User(username=username, display_name=display_name or username, email=email,
                password_hash=hash_password(password) if password else None,
                center_role=center_role)
    session.add(user)
    _flush_unique(session, "user", username)
    return user


def add_member(session: Session, project: Project, user: User, role: str = "member") -> Membership:
    if role not in PROJECT_ROLES:
        raise InvalidRequest(f"role must be one of {', '.join(PROJECT_ROLES)}", field="role")
    existing = session.scalar(select(Membership).where(
        Membership.project_id == project.id, Membership.user_id == user.id))
    if existing:
        existing.role = role
        return existing
    membership = Membership(project_id=project.id, user_id=user.id, role=role)
    session.add(membership)
    session.flush()
    return membership


def remove_member(session: Session, project: Project, user: User) -> None:
    membership = session.scalar(select(Membership).where(
        Membership.project_id == project.id, Membership.user_id == user.id))
    if membership is None:
        raise NotFound(f"user {user.username!r} is not a member of {project.name!r}")
    session.delete(membership)


def add_org_admin(session: Session, org: Organization, user: User) -> None:
    if not session.scalar(select(OrgRole.id).where(OrgRole.org_id == org.id,
                                                   OrgRole.user_id == user.id)):
        session.add(OrgRole(org_id=org.id, user_id=user.id))
        session.flush()


def _lookup(session: Session, model: type[T], name_column: Any, value: str, what: str,
            field: str) -> T:
    """The one row whose name or id is `value`, or NotFound naming `field`."""
    found: T | None = session.scalars(select(model).where(
        (name_column == value) | (model.id == value))).first()  # type: ignore[attr-defined]
    if found is None:
        raise NotFound(f"{what} {value!r} not found", field=field)
    return found


def get_org(session: Session, name_or_id: str) -> Organization:
    return _lookup(session, Organization, Organization.name, name_or_id, "organization",
                   "org")


def get_project(session: Session, name_or_id: str) -> Project:
    return _lookup(session, Project, Project.name, name_or_id, "project", "project")


def get_user(session: Session, name_or_id: str) -> User:
    return _lookup(session, User, User.username, name_or_id, "user", "user")


def login(session: Session, username: str, password: str,
          ttl_days: int) -> tuple[ApiToken, str]:
    """Check a password and issue a new token; the same error for every failure."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not verify_password(user.password_hash, password):
        raise Unauthorized("wrong username or password")
    return issue_token(session, user, name="login", ttl_days=ttl_days)


def revoke_token(session: Session, principal: Principal, token_id: str) -> None:
    from lightgrid.store.base import utcnow

    row = session.get(ApiToken, token_id)
    if row is None or (row.user_id != principal.user_id and not principal.is_operator):
        raise NotFound(f"token {token_id!r} not found")
    row.revoked_at = utcnow()
