"""Who may see and do what.

A member sees their own jobs in their projects; a PI all jobs of
their projects; an org admin everything in their organizations; an operator
everything. Finance staff see all money but not job scripts. Objects outside a
principal's reach answer NotFound, so nothing leaks that they exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import false, or_

from lightgrid.core.errors import Forbidden
from lightgrid.store.models import Job

OPERATOR = "operator"
FINANCE = "finance"
ORG_ADMIN = "org_admin"
PI = "pi"
MEMBER = "member"
PROJECT_ROLES = (PI, MEMBER)
CENTER_ROLES = (OPERATOR, FINANCE)


@dataclass(frozen=True)
class Principal:
    """An authenticated user and everything their roles reach."""

    user_id: str
    username: str
    center_role: str | None = None
    #: project id -> role ("pi" or "member")
    projects: dict[str, str] = field(default_factory=dict)
    #: project name -> project id, for the projects above
    project_names: dict[str, str] = field(default_factory=dict)
    #: organizations this user administers
    admin_orgs: frozenset[str] = frozenset()

    @property
    def is_operator(self) -> bool:
        return self.center_role == OPERATOR

    @property
    def is_finance(self) -> bool:
        return self.center_role in (OPERATOR, FINANCE)

    def require_operator(self) -> None:
        if not self.is_operator:
            raise Forbidden("this action needs the operator role")

    def require_finance(self) -> None:
        if not self.is_finance:
            raise Forbidden("this action needs the finance or operator role")

    def can_submit_to(self, project_id: str) -> bool:
        return project_id in self.projects

    def can_see_job(self, job: Job) -> bool:
        if self.is_operator or job.org_id in self.admin_orgs:
            return True
        role = self.projects.get(job.project_id)
        if role == PI:
            return True
        return role == MEMBER and job.user_id == self.user_id

    def can_manage_job(self, job: Job) -> bool:
        """Cancel or requeue: the owner, the project's PI, org admins, operators."""
        return self.can_see_job(job)

    def can_see_project(self, project_id: str, org_id: str) -> bool:
        return (self.is_finance or org_id in self.admin_orgs
                or project_id in self.projects)

    def can_manage_project(self, project_id: str, org_id: str) -> bool:
        return (self.is_operator or org_id in self.admin_orgs
                or self.projects.get(project_id) == PI)

    def can_see_org(self, org_id: str) -> bool:
        return self.is_finance or org_id in self.admin_orgs

    def job_filter(self) -> Any:
        """A SQL condition selecting exactly the jobs this principal may see."""
        if self.is_operator:
            return None
        clauses: list[Any] = []
        if self.admin_orgs:
            clauses.append(Job.org_id.in_(self.admin_orgs))
        pi_projects = [p for p, r in self.projects.items() if r == PI]
        if pi_projects:
            clauses.append(Job.project_id.in_(pi_projects))
        member_projects = [p for p, r in self.projects.items() if r == MEMBER]
        if member_projects:
            clauses.append(Job.project_id.in_(member_projects) & (Job.user_id == self.user_id))
        return or_(*clauses) if clauses else false()
