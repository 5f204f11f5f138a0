"""The demo center's tenants, users and sample jobs."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from lightgrid.center import tenancy
from lightgrid.center.auth import issue_token, load_principal
from lightgrid.center.billing import seed_billing
from lightgrid.center.service import Center
from lightgrid.core.sbatch import parse_script
from lightgrid.store.models import Organization, User

#: (name, kind, display name, projects)
ORGANIZATIONS = [
    ("nkl-materials", "key_laboratory", "National Key Laboratory of Advanced Materials",
     ["alloy-sim", "battery-md"]),
    ("east-univ", "university", "East China University of Science", ["climate-lab"]),
    ("prov-inst", "research_institute", "Provincial Institute of Physical Sciences",
     ["plasma"]),
    ("met-bureau", "government_agency", "Provincial Meteorological Bureau", ["forecast"]),
    ("deepmind-ai", "enterprise", "Horizon AI Technologies Co., Ltd.", ["llm-train"]),
]

#: (username, role in center, [(project, role)])
USERS = [
    ("admin", "operator", []),
    ("finance", "finance", []),
    ("alice", None, [("alloy-sim", "member"), ("battery-md", "member")]),
    ("wang-pi", None, [("alloy-sim", "pi")]),
    ("li", None, [("climate-lab", "pi")]),
    ("chen", None, [("plasma", "pi")]),
    ("zhao", None, [("forecast", "pi")]),
    ("bob", None, [("llm-train", "member")]),
]

SAMPLE_JOBS = [
    """#!/bin/bash
#SBATCH --job-name=hello
#SBATCH --partition=cpu
#SBATCH --account=alloy-sim
#SBATCH --ntasks=4
#SBATCH --time=00:05:00
echo "hello from job $SLURM_JOB_ID on $(hostname)"
""",
    """#!/bin/bash
#SBATCH --job-name=sweep
#SBATCH --account=alloy-sim
#SBATCH --array=0-3%2
#SBATCH --cpus-per-task=2
#SBATCH --mem=4G
#SBATCH --time=10
#SBATCH --output=sweep-%A_%a.out
echo "task $SLURM_ARRAY_TASK_ID of array $SLURM_ARRAY_JOB_ID"
sleep 2
""",
    """#!/bin/bash
#SBATCH --job-name=train
#SBATCH --partition=gpu
#SBATCH --account=battery-md
#SBATCH --gres=gpu:a100:2
#SBATCH --cpus-per-task=16
#SBATCH --time=1:00:00
echo "training on $SLURM_GPUS_ON_NODE GPUs"
sleep 5
""",
]


@dataclass(frozen=True)
class DemoTokens:
    operator: str
    finance: str
    researcher: str
    pi: str
    other_tenant: str

    def as_dict(self) -> dict[str, str]:
        return {"operator": self.operator, "finance": self.finance,
                "researcher": self.researcher, "pi": self.pi,
                "other_tenant": self.other_tenant}


def seed(center: Center, *, sample_jobs: bool = True) -> DemoTokens:
    """Create the demo tenants (once) and fresh tokens; submit the sample jobs."""
    with center.factory() as session, session.begin():
        if session.scalar(select(Organization.id).limit(1)) is None:
            for name, kind, display, projects in ORGANIZATIONS:
                org = tenancy.create_org(session, name, kind, display)
                for project in projects:
                    tenancy.create_project(session, org, project)
            for username, role, memberships in USERS:
                user = tenancy.create_user(session, username, password=f"{username}-demo-pw",
                                           center_role=role)
                for project, prole in memberships:
                    tenancy.add_member(session, tenancy.get_project(session, project), user,
                                       prole)
            tenancy.add_org_admin(session, tenancy.get_org(session, "nkl-materials"),
                                  tenancy.get_user(session, "wang-pi"))
            fresh = True
        else:
            fresh = False
        tokens = {}
        for username in ("admin", "finance", "alice", "wang-pi", "bob"):
            holder = session.scalar(select(User).where(User.username == username))
            assert holder is not None
            _, tokens[username] = issue_token(session, holder, name="demo")
    if fresh:
        seed_billing(center)
    if sample_jobs and fresh:
        with center.factory() as session:
            alice = session.scalar(select(User).where(User.username == "alice"))
            assert alice is not None
            principal = load_principal(session, alice)
        for script in SAMPLE_JOBS:
            rows = center.jobs.submit(principal, parse_script(script))
            center.dispatcher.dispatch(rows, fresh=True)
    return DemoTokens(operator=tokens["admin"], finance=tokens["finance"],
                      researcher=tokens["alice"], pi=tokens["wang-pi"],
                      other_tenant=tokens["bob"])
