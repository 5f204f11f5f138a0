"""/orgs, /projects, /users: tenancy administration."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select
from sqlalchemy.orm import Session

from lightgrid.api.deps import CenterDep, PrincipalDep
from lightgrid.api.schemas import (
    MemberIn,
    MemberOut,
    OrgAdminIn,
    OrgIn,
    OrgOut,
    ProjectIn,
    ProjectOut,
    UserIn,
    UserOut,
)
from lightgrid.center import tenancy
from lightgrid.center.access import Principal
from lightgrid.core.errors import Forbidden, NotFound
from lightgrid.store.models import Membership, Organization, Project, User

router = APIRouter(tags=["tenancy"])


def _org_out(org: Organization) -> OrgOut:
    return OrgOut(id=org.id, name=org.name, display_name=org.display_name, kind=org.kind,
                  tier=org.tier, created_at=org.created_at)


def _project_out(project: Project, org_name: str) -> ProjectOut:
    return ProjectOut(id=project.id, name=project.name, display_name=project.display_name,
                      org=org_name, active=project.active, created_at=project.created_at)


def _user_out(user: User) -> UserOut:
    return UserOut(id=user.id, username=user.username, display_name=user.display_name,
                   email=user.email, center_role=user.center_role, active=user.active,
                   created_at=user.created_at)


@router.post("/orgs", status_code=201, response_model=OrgOut)
def create_org(body: OrgIn, center: CenterDep, principal: PrincipalDep) -> OrgOut:
    principal.require_operator()
    with center.factory() as session, session.begin():
        org = tenancy.create_org(session, body.name, body.kind, body.display_name, body.tier)
        return _org_out(org)


@router.get("/orgs", response_model=list[OrgOut])
def list_orgs(center: CenterDep, principal: PrincipalDep) -> list[OrgOut]:
    with center.factory() as session:
        orgs = session.scalars(select(Organization).order_by(Organization.name)).all()
        return [_org_out(o) for o in orgs if principal.can_see_org(o.id)]


@router.get("/orgs/{name}", response_model=OrgOut)
def show_org(name: str, center: CenterDep, principal: PrincipalDep) -> OrgOut:
    with center.factory() as session:
        org = tenancy.get_org(session, name)
        if not principal.can_see_org(org.id):
            raise NotFound(f"organization {name!r} not found", field="org")
        return _org_out(org)


@router.post("/orgs/{name}/admins", status_code=204)
def add_org_admin(name: str, body: OrgAdminIn, center: CenterDep,
                  principal: PrincipalDep) -> None:
    principal.require_operator()
    with center.factory() as session, session.begin():
        tenancy.add_org_admin(session, tenancy.get_org(session, name),
                              tenancy.get_user(session, body.user))
    center.auth.invalidate()


@router.post("/projects", status_code=201, response_model=ProjectOut)
def create_project(body: ProjectIn, center: CenterDep,
                   principal: PrincipalDep) -> ProjectOut:
    with center.factory() as session, session.begin():
        org = tenancy.get_org(session, body.org)
        if not (principal.is_operator or org.id in principal.admin_orgs):
            raise NotFound(f"organization {body.org!r} not found", field="org")
        project = tenancy.create_project(session, org, body.name, body.display_name)
        return _project_out(project, org.name)


@router.get("/projects", response_model=list[ProjectOut])
def list_projects(center: CenterDep, principal: PrincipalDep) -> list[ProjectOut]:
    with center.factory() as session:
        rows = session.execute(select(Project, Organization.name).join(
            Organization, Organization.id == Project.org_id).order_by(Project.name)).all()
        return [_project_out(p, org) for p, org in rows
                if principal.can_see_project(p.id, p.org_id)]


def _visible_project(session: Session, principal: Principal, name: str) -> Project:
    project = tenancy.get_project(session, name)
    if not principal.can_see_project(project.id, project.org_id):
        raise NotFound(f"project {name!r} not found", field="project")
    return project


@router.get("/projects/{name}", response_model=ProjectOut)
def show_project(name: str, center: CenterDep, principal: PrincipalDep) -> ProjectOut:
    with center.factory() as session:
        project = _visible_project(session, principal, name)
        return _project_out(project, project.organization.name)


@router.get("/projects/{name}/members", response_model=list[MemberOut])
def list_members(name: str, center: CenterDep, principal: PrincipalDep) -> list[MemberOut]:
    with center.factory() as session:
        project = _visible_project(session, principal, name)
        rows = session.execute(select(User.username, Membership.role).join(
            Membership, Membership.user_id == User.id).where(
            Membership.project_id == project.id).order_by(User.username)).all()
        return [MemberOut(user=u, role=r) for u, r in rows]


@router.post("/projects/{name}/members", status_code=201, response_model=MemberOut)
def add_member(name: str, body: MemberIn, center: CenterDep,
               principal: PrincipalDep) -> MemberOut:
    with center.factory() as session, session.begin():
        project = _visible_project(session, principal, name)
        if not principal.can_manage_project(project.id, project.org_id):
            raise Forbidden("only the project's PI, org admins and operators add members")
        user = tenancy.get_user(session, body.user)
        membership = tenancy.add_member(session, project, user, body.role)
        out = MemberOut(user=user.username, role=membership.role)
    center.auth.invalidate()
    return out


@router.delete("/projects/{name}/members/{username}", status_code=204)
def remove_member(name: str, username: str, center: CenterDep,
                  principal: PrincipalDep) -> None:
    with center.factory() as session, session.begin():
        project = _visible_project(session, principal, name)
        if not principal.can_manage_project(project.id, project.org_id):
            raise Forbidden("only the project's PI, org admins and operators remove members")
        tenancy.remove_member(session, project, tenancy.get_user(session, username))
    center.auth.invalidate()


@router.post("/users", status_code=201, response_model=UserOut)
def create_user(body: UserIn, center: CenterDep, principal: PrincipalDep) -> UserOut:
    principal.require_operator()
    with center.factory() as session, session.begin():
        user = tenancy.create_user(session, body.username, password=body.password,
                                   display_name=body.display_name, email=body.email,
                                   center_role=body.center_role)
        return _user_out(user)


@router.get("/users", response_model=list[UserOut])
def list_users(center: CenterDep, principal: PrincipalDep) -> list[UserOut]:
    principal.require_operator()
    with center.factory() as session:
        return [_user_out(u) for u in session.scalars(select(User).order_by(User.username))]
