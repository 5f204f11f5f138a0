"""All models, imported so that `Base.metadata` is complete for migrations."""

from lightgrid.store.models import accounting, billing  # noqa: F401
from lightgrid.store.models.jobs import Counter, Job, JobEvent
from lightgrid.store.models.tenancy import (
    ApiToken,
    Membership,
    Organization,
    OrgRole,
    Project,
    User,
)

__all__ = ["ApiToken", "Counter", "Job", "JobEvent", "Membership", "OrgRole",
           "Organization", "Project", "User"]
