"""Commercial operation of a center over the SQL store: prices, funds, holds, charges.

`install_billing(center)` attaches a `Billing` service as ``center.billing`` and
registers its admission and finish hooks; `blocked_projects(session, at)` lists the
projects the workload manager must block (rebuilt from the ledger after any restart).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session

from lightgrid.center.billing.funds import Funds
from lightgrid.center.billing.service import CENTER_TZ, Billing

if TYPE_CHECKING:
    from lightgrid.center.service import Center

__all__ = ["Billing", "blocked_projects", "install_billing", "seed_billing"]


def install_billing(center: Center) -> Billing:
    """Create ``center.billing`` and hook it into admission and job completion."""
    billing = Billing(center)
    center.billing = billing  # type: ignore[attr-defined]
    center.jobs.admission_hooks.append(billing.admission_hook)
    center.dispatcher.finish_hooks.append(billing.on_finish)
    return billing


def blocked_projects(session: Session, at: datetime, currency: str = "CNY") -> list[str]:
    """Names of every project blocked at `at` (for the Slurm association sync)."""
    return Funds(currency, CENTER_TZ).blocked_projects(session, at)


def seed_billing(center: Center) -> None:
    """The demo's price book, tiers and funds (see `lightgrid.center.billing.demo`)."""
    from lightgrid.center.billing.demo import seed

    seed(center)
