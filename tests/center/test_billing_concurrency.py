"""Parallel submissions never overspend: row locks (PostgreSQL) or BEGIN IMMEDIATE."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from lightgrid.center.service import Center
from lightgrid.core.errors import PaymentRequired
from lightgrid.core.money import round_charge
from lightgrid.core.sbatch import parse_script
from lightgrid.settings import Settings
from tests.center.billing_support import ACADEMIC, CPU_RATE, MEM_RATE, install_book, principal
from tests.conftest import seed_tenants
from tests.helpers import script

THREADS = 32
AFFORDABLE = 7


@pytest.fixture
def quiet(settings: Settings) -> Iterator[Center]:
    c = Center.from_settings(settings)
    yield c
    c.close()


def test_parallel_submissions_admit_exactly_what_the_wallet_covers(quiet: Center) -> None:
    tenants = seed_tenants(quiet)
    install_book(quiet, tenants, minimum_charge="0")
    billing = quiet.billing  # type: ignore[attr-defined]
    fin = principal(quiet, tenants, "fin")
    users = [principal(quiet, tenants, u) for u in ("alice", "amy", "pi")]
    spec = script("true", "-A p1", "-n 2", "--mem=2G", "-t 60")
    per_job = round_charge((2 * CPU_RATE + 2 * MEM_RATE) * (1 - ACADEMIC))
    billing.top_up(fin, "p1", str(per_job * AFFORDABLE), "bank_transfer", "conc")

    def attempt(i: int) -> bool:
        try:
            quiet.jobs.submit(users[i % len(users)], parse_script(spec))
            return True
        except PaymentRequired:
            return False

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(attempt, range(THREADS)))
    assert sum(results) == AFFORDABLE
    pos = billing.balance(fin, "p1")
    assert Decimal(pos["available"]) == 0
    assert Decimal(pos["held"]) == per_job * AFFORDABLE
    assert pos["active_holds"] == AFFORDABLE
