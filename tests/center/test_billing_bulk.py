"""The streaming ingestor on SQLite and PostgreSQL: every charge equals the core's
`price()` by the version in force at the job's start, revenue splits as `allocate()`,
each key is charged once, the ledger balances and reconciles, memory stays bounded."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from lightgrid.center import tenancy
from lightgrid.center.billing import ledger as sql
from lightgrid.center.billing import limits, prices
from lightgrid.center.billing.bulk import Ingestor, IngestStats
from lightgrid.center.billing.funds import Funds
from lightgrid.center.billing.ledger import exact
from lightgrid.center.billing.service import CENTER_TZ
from lightgrid.core.funds import ChargeKey, UsageRecord
from lightgrid.core.jobs import JobState
from lightgrid.core.ledger import revenue
from lightgrid.core.money import allocate
from lightgrid.core.pricing import Quote, Unpriced, price
from lightgrid.core.resources import Tres
from lightgrid.store.db import make_engine, make_sessionmaker, migrate
from lightgrid.store.models.billing import (
    ChargeRow,
    LedgerBalance,
    LedgerPosting,
    LedgerTransaction,
    ReviewRow,
)

BOOK: dict[str, Any] = {
    "currency": "CNY", "minimum_charge": "0.05",
    "tiers": {"academic": "0.20", "government": "0.15"},
    "cards": [{"partition": "cpu", "cpu": "0.05", "mem": "0.0125", "strategy": "max"},
              {"partition": "gpu", "cpu": "0.05", "mem": "0.001",
               "gpu": {"a100": "8.00", "*": "3.333"}},
              {"partition": "gpu", "qos": "urgent", "cpu": "0.10", "gpu": {"a100": "9.5"}},
              {"partition": "bigmem", "cpu": "0.08", "mem": "0.004"}]}
LATER = dict(BOOK, minimum_charge="0.10",
             cards=[{"partition": "cpu", "cpu": "0.07", "mem": "0.0100"},
                    {"partition": "bigmem", "cpu": "0.09", "mem": "0.005"}])
STATES = [JobState.COMPLETED] * 6 + [JobState.FAILED, JobState.TIMEOUT,
                                     JobState.CANCELLED, JobState.NODE_FAIL]


@pytest.fixture
def factory(db_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(db_url)
    migrate(engine)
    yield make_sessionmaker(engine)
    engine.dispose()


def setup(factory: sessionmaker[Session], now: datetime) -> list[str]:
    """Three organizations (one with a contract and credit), projects with little
    money, so charges draw on wallets, the organization and receivables."""
    funds = Funds("CNY", CENTER_TZ)
    names = []
    with factory() as s, s.begin():
        prices.add_version(s, "c", dict(BOOK, effective_from=now.isoformat()), now=now,
                           actor="t", currency="CNY")
        prices.add_version(s, "c", dict(LATER, effective_from=(
            now + timedelta(days=3)).isoformat()), now=now, actor="t", currency="CNY")
        for o, kind in enumerate(("university", "government_agency", "enterprise")):
            org = tenancy.create_org(s, f"org{o}", kind)
            for p in range(3):
                name = f"p{o}{p}"
                tenancy.create_project(s, org, name)
                names.append(name)
                funds.top_up(s, f"project:{name}", f"{(p + 1) * 40}.00",
                             method="bank_transfer", reference=name, at=now)
        prices.add_contract(s, "org2", {
            "effective_from": (now + timedelta(days=1)).isoformat(),
            "effective_until": (now + timedelta(days=2)).isoformat(),
            "cards": [{"partition": "gpu", "cpu": "0.02", "gpu": {"a100": "6.00"}}],
            "discount": "0.30"})
        limits.limit_row(s, "org:org1").credit_limit = Decimal("150.00")
    return names


def stream(n: int, projects: list[str], now: datetime, seed: int) -> Iterator[UsageRecord]:
    rng = random.Random(seed)
    for i in range(n):
        part = rng.choice(("cpu", "cpu", "gpu", "bigmem", "nowhere"))
        gpus = rng.choice((1, 2, 8)) if part == "gpu" else 0
        cpus = rng.choice((0, 1, 3, 16, 64))
        seconds = rng.choice((0, 1, 59, 3600, rng.randint(0, 200_000)))
        begin = now + timedelta(seconds=rng.randint(1, 4 * 86400))
        started = rng.random() > 0.05
        yield UsageRecord(
            key=ChargeKey("t", str(i % (n - 7)), rng.choice((0, 0, 0, 1))), job_id="",
            project=rng.choice(projects), partition=part,
            tres=Tres(cpus, cpus * rng.choice((512, 4096, 100_000)), gpus, 0),
            state=rng.choice(STATES), elapsed=seconds,
            started_at=begin if started else None,
            ended_at=begin + timedelta(seconds=seconds),
            user=rng.choice(("ann", "bo", None, 'quo"te\\tab\t')),
            qos=rng.choice((None, None, "urgent")),
            gpu_type=rng.choice(("a100", "h100")) if gpus else None,
            time_limit=rng.choice((None, 7200, 86400)))


def test_bulk_charges_match_the_core_once_and_reconcile(
        factory: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    projects = setup(factory, now)
    records = list(stream(3000, projects, now, 7))
    ingestor = Ingestor(factory, "c", Funds("CNY", CENTER_TZ), batch_size=257)
    first = ingestor.run(iter(records), now)
    unique = {str(r.key) for r in records}
    assert first.records == len(records)
    assert first.charged + first.reviewed == len(unique)
    assert first.skipped == len(records) - len(unique) > 0
    assert first.reviewed > 0 and first.batches == -(-len(records) // 257)

    with factory() as s:
        book = prices.load_book(s, "c")
        customers = {o: prices.customer(s, o, t) for o, t in
                     {v for v in ingestor._orgs.values()}}
        charges = {c.key: c for c in s.scalars(select(ChargeRow))}
        reviews = set(s.scalars(select(ReviewRow.key)))
        postings: dict[str, list[LedgerPosting]] = defaultdict(list)
        for p in s.scalars(select(LedgerPosting).order_by(LedgerPosting.line)):
            postings[p.transaction_id].append(p)
        txns = {t.id: t for t in s.scalars(select(LedgerTransaction))}
        balances = {b.account: exact(b.balance) for b in s.scalars(select(LedgerBalance))}
        sums = dict(s.execute(select(LedgerPosting.account, func.sum(
            LedgerPosting.amount)).group_by(LedgerPosting.account)).all())
    assert len(charges) == first.charged and len(reviews) == first.reviewed
    assert set(charges) | reviews == unique and not set(charges) & reviews

    seen: set[str] = set()
    versions_used = set()
    minimum_only = 0
    for record in records:
        key = str(record.key)
        if key in seen:
            continue  # a repeated key in the stream: the first one counts
        seen.add(key)
        org = ingestor._orgs[record.project][0]
        expected, quote = Decimal(0), None
        if record.started and record.started_at is not None:
            version = book.version_at(record.started_at)
            result = price(version, record.shape(), customers[org], at=record.started_at)
            if record.state not in version.waived_states and isinstance(result, Unpriced):
                assert key in reviews and key not in charges
                continue
            row = charges[key]
            assert row.price_version == version.version
            versions_used.add(version.version)
            if record.state not in version.waived_states:
                assert isinstance(result, Quote), key
                quote, expected = result, result.amount.amount
                assert (row.source, row.contract_id) == (str(result.source),
                                                         result.contract_id)
        else:
            row = charges[key]
        assert row.amount == expected, key
        assert row.from_funds + row.to_receivable == row.amount
        assert row.seconds == record.billable_seconds
        if expected == 0:
            assert row.transaction_id is None
            continue
        assert quote is not None
        assert row.transaction_id is not None
        legs = postings[row.transaction_id]
        assert sum(p.amount for p in legs) == 0
        assert [p.line for p in legs] == list(range(len(legs)))
        rev = [p for p in legs if p.account == revenue(record.partition).code]
        weights = quote.billed_weights()  # none: only the minimum (as the finish hook)
        labels = [str(r) for r, _ in weights] or ["review"]
        shares = allocate(quote.amount, [w for _, w in weights] or [Decimal(1)])
        assert [(p.resource, -p.amount) for p in rev] == [
            (label, m.amount) for label, m in zip(labels, shares, strict=True) if m.amount]
        minimum_only += not weights
        txn = txns[row.transaction_id]
        assert txn.refs == {"project": record.project, "key": key, "user": record.user,
                            "partition": record.partition}
    assert versions_used == {1, 2} and minimum_only > 0
    assert any(c.contract_id for c in charges.values())
    assert any(c.to_receivable for c in charges.values())

    # the ledger: balanced, balances are the sums of postings, revenue = charges
    assert sum(exact(v) for v in sums.values()) == 0
    for account, total in sums.items():
        assert balances[account] == exact(total), account
    revenue_total = -sum(exact(v) for a, v in sums.items() if a.startswith("revenue:"))
    assert revenue_total == sum(c.amount for c in charges.values())

    again = Ingestor(factory, "c", Funds("CNY", CENTER_TZ), batch_size=1000).run(
        iter(records), now)
    assert (again.charged, again.reviewed, again.skipped) == (0, 0, len(records))
    with factory() as s:
        assert s.scalar(select(func.count()).select_from(ChargeRow)) == len(charges)
        assert s.scalar(select(func.count()).select_from(LedgerPosting)) == sum(
            len(v) for v in postings.values())


def _count(session: Session, model: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


class Watched(Ingestor):
    """Records how far the stream was read ahead of what was posted."""

    pulled = 0
    posted = 0
    batches = 0
    ahead: list[int]
    fail_at: int | None = None

    def _commit(self, prepared: Any, at: datetime) -> IngestStats:
        self.ahead.append(self.pulled - self.posted)
        if self.fail_at is not None and self.batches == self.fail_at:
            raise RuntimeError("writer failed")
        stats = super()._commit(prepared, at)
        self.posted += len(prepared.rated)
        self.batches += 1
        return stats


def test_the_stream_is_read_a_bounded_way_ahead(factory: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    projects = setup(factory, now)
    ingestor = Watched(factory, "c", Funds("CNY", CENTER_TZ), batch_size=100, depth=2)
    ingestor.ahead = []

    def counted() -> Iterator[UsageRecord]:
        for record in stream(4000, projects, now, 3):
            ingestor.pulled += 1
            yield record

    stats = ingestor.run(counted(), now)
    assert stats.records == 4000 and stats.batches == 40
    # the batch being posted, `depth` waiting and one being rated (plus one read)
    assert max(ingestor.ahead) <= 100 * (2 + 2) + 1


def test_a_key_charged_before_is_skipped_even_when_now_unpriced(
        factory: sessionmaker[Session]) -> None:
    """Exactly once across batches and paths: keys already charged are skipped whether
    they would be charged again or sent to review, and in a batch mixing old and new
    keys only the new ones are charged."""
    now = datetime.now(UTC)
    projects = setup(factory, now)
    records = [r for r in stream(600, projects, now, 11)
               if r.started and r.partition == "cpu" and r.state is JobState.COMPLETED]
    first = Ingestor(factory, "c", Funds("CNY", CENTER_TZ), batch_size=50).run(
        iter(records[:40]), now)
    assert first.charged == len({str(r.key) for r in records[:40]}) > 0
    moved = [replace(r, partition="nowhere") for r in records[:40]]  # now unpriced
    again = Ingestor(factory, "c", Funds("CNY", CENTER_TZ), batch_size=50).run(
        iter(moved + records[40:]), now)
    assert again.reviewed == 0 and again.skipped >= len(moved)
    assert again.charged == len({str(r.key) for r in records}) - first.charged
    with factory() as s:
        assert _count(s, ReviewRow) == 0
        assert _count(s, ChargeRow) == len({str(r.key) for r in records})
        assert exact(s.scalar(select(func.sum(LedgerPosting.amount)))) == 0


class Meddled(Ingestor):
    """Moves wallets and a credit limit between batches, as other transactions may."""

    batches = 0
    rebuilt = 0
    org1_at_cut = Decimal(0)

    def _commit(self, prepared: Any, at: datetime) -> IngestStats:
        self.batches += 1
        with self.factory() as s, s.begin():
            if self.batches == 2:  # more funds than the batch was built with
                for project in ("p00", "p10", "p20"):
                    self.funds.top_up(s, f"project:{project}", "500.00",
                                      method="bank_transfer", reference=f"more-{project}",
                                      at=at)
            if self.batches == 3:  # less
                for project in ("p00", "p10", "p20"):
                    funds = -sql.balances(s, [f"wallet:project:{project}"])[
                        f"wallet:project:{project}"]
                    if funds > 0:
                        self.funds.refund(s, f"project:{project}", f"{funds:.2f}",
                                          method="bank_transfer", at=at, reason="gone",
                                          reference=f"back-{project}")
            if self.batches == 8:  # a smaller credit line: five more
                self.org1_at_cut = sql.balances(s, ["wallet:org:org1"])["wallet:org:org1"]
                limits.limit_row(s, "org:org1").credit_limit = self.org1_at_cut + 5
        return super()._commit(prepared, at)

    def _post(self, session: Session, prepared: Any, at: datetime) -> IngestStats:
        self.rebuilt += 1
        return super()._post(session, prepared, at)


def test_batches_built_ahead_are_rebuilt_when_balances_move(
        factory: sessionmaker[Session]) -> None:
    """Rows are built before their batch locks the wallets; a top-up, a refund or a new
    credit limit in between makes the batch be built again, so every draw is on the
    real balances: the project's funds, the organization's credit, the receivable."""
    now = datetime.now(UTC)
    projects = setup(factory, now)
    records = [r for r in stream(3000, projects, now, 13) if r.partition == "gpu"
               and r.project in ("p00", "p10", "p11", "p20")]
    with factory() as s, s.begin():
        limits.limit_row(s, "org:org1").credit_limit = Decimal("100000.00")
    ingestor = Meddled(factory, "c", Funds("CNY", CENTER_TZ), batch_size=20)
    stats = ingestor.run(iter(records), now)
    assert stats.batches == -(-len(records) // 20) >= 10
    assert 3 <= ingestor.rebuilt < stats.batches  # the moved batches, then in step again
    with factory() as s:
        balances = {b.account: exact(b.balance) for b in s.scalars(select(LedgerBalance))}
        sums = dict(s.execute(select(LedgerPosting.account, func.sum(
            LedgerPosting.amount)).group_by(LedgerPosting.account)).all())
        charges = list(s.scalars(select(ChargeRow)))
    assert sum(exact(v) for v in sums.values()) == 0
    for account, total in sums.items():
        assert balances[account] == exact(total), account
    for project in projects:  # never overdrawn, whatever the batch was built with
        assert balances.get(f"wallet:project:{project}", Decimal(0)) <= 0, project
    org1 = balances.get("wallet:org:org1", Decimal(0))
    assert 0 < ingestor.org1_at_cut < org1 <= ingestor.org1_at_cut + 5  # credit, within
    assert any(c.to_receivable for c in charges)
    assert all(c.from_funds + c.to_receivable == c.amount for c in charges)


def test_a_failed_batch_stops_the_run_and_a_replay_completes_it(
        factory: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    projects = setup(factory, now)
    records = list(stream(1000, projects, now, 5))
    broken = Watched(factory, "c", Funds("CNY", CENTER_TZ), batch_size=100)
    broken.ahead, broken.fail_at = [], 3
    with pytest.raises(RuntimeError, match="writer failed"):
        broken.run(iter(records), now)
    with factory() as s:
        done = _count(s, ChargeRow) + _count(s, ReviewRow)
    assert 0 < done < len({str(r.key) for r in records})
    replay = Ingestor(factory, "c", Funds("CNY", CENTER_TZ), batch_size=100).run(
        iter(records), now)
    with factory() as s:
        total = _count(s, ChargeRow) + _count(s, ReviewRow)
        trial = s.scalar(select(func.sum(LedgerPosting.amount)))
    assert total == len({str(r.key) for r in records}) == done + replay.charged + \
        replay.reviewed
    assert exact(trial) == 0
