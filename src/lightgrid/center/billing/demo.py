"""The demo center's price book, credit and opening funds (CNY).

battery-md starts with little money: enough for alice's small sample GPU job, not for
a large one, so the new-user walkthrough (quote, refused, top-up, accepted) works.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from lightgrid.center.billing import limits, prices
from lightgrid.center.billing.funds import Funds
from lightgrid.core.money import Money
from lightgrid.store.base import utcnow
from lightgrid.store.models.billing import PriceBookVersionRow

if TYPE_CHECKING:
    from lightgrid.center.service import Center

PRICE_BOOK: dict[str, Any] = {
    "currency": "CNY",
    "minimum_charge": "0.01",
    "note": "demo price book",
    "tiers": {"academic": "0.20", "government": "0.10", "enterprise": "0"},
    "fallback": {"mode": "review"},
    "cards": [
        # A core comes with 4 GB: memory beyond that is billed instead of cores.
        {"partition": "cpu", "cpu": "0.05", "mem": "0.0125", "strategy": "max"},
        {"partition": "gpu", "cpu": "0.05", "gpu": {"a100": "8.00"}},
        {"partition": "bigmem", "cpu": "0.08", "mem": "0.004"},
    ],
}

#: project -> opening top-up
FUNDS = {"alloy-sim": "2000.00", "battery-md": "20.00", "climate-lab": "500.00",
         "plasma": "500.00", "forecast": "800.00", "llm-train": "5000.00"}
CREDIT = {"deepmind-ai": "10000.00"}


def seed(center: Center) -> None:
    """Create the price book and opening funds once."""
    funds = Funds(center.settings.currency, ZoneInfo(center.settings.timezone))
    with center.factory() as session, session.begin():
        if session.scalar(select(PriceBookVersionRow.version).limit(1)) is not None:
            return
        now = utcnow()
        body = dict(PRICE_BOOK, currency=center.settings.currency)
        prices.add_version(session, center.settings.center_name, body, now=now,
                           actor="demo", currency=center.settings.currency)
        for org, limit in CREDIT.items():
            row = limits.limit_row(session, f"org:{org}")
            row.credit_limit = Money.of(limit, center.settings.currency).amount
        for project, amount in FUNDS.items():
            funds.top_up(session, f"project:{project}", amount, method="bank_transfer",
                         reference=f"DEMO-OPENING-{project}", at=now,
                         memo="opening balance")
