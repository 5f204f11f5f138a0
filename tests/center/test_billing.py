"""Billing over the SQL store (SQLite and PostgreSQL): pricing, holds, charges, limits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import delete, insert, select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from lightgrid.center.billing import blocked_projects, manage
from lightgrid.center.billing.service import Billing
from lightgrid.center.service import Center
from lightgrid.core.errors import InvalidRequest, PaymentRequired
from lightgrid.core.jobs import JobState
from lightgrid.core.money import round_charge
from lightgrid.core.sbatch import parse_script
from lightgrid.settings import Settings
from lightgrid.store.base import utcnow
from lightgrid.store.models import Job
from lightgrid.store.models.billing import (
    ChargeRow,
    HoldRow,
    LedgerPosting,
    LedgerTransaction,
    ReviewRow,
)
from tests.center.billing_support import (
    ACADEMIC,
    CPU_RATE,
    GPU_RATE,
    MEM_RATE,
    MINIMUM,
    install_book,
    principal,
    usage,
)
from tests.conftest import Tenants, seed_tenants
from tests.helpers import script


@pytest.fixture
def quiet(settings: Settings) -> Iterator[Center]:
    """A center that is not started: submitted jobs stay PENDING, undispatched."""
    c = Center.from_settings(settings)
    yield c
    c.close()


def bill(c: Center) -> Billing:
    return c.billing  # type: ignore[attr-defined]


def fund(c: Center, tenants: Tenants, owner: str, amount: str, ref: str) -> None:
    bill(c).top_up(principal(c, tenants, "fin"), owner, amount, "bank_transfer", ref)


def charge(c: Center, record: object) -> ChargeRow | ReviewRow:
    with c.factory() as s, s.begin():
        return bill(c).charge_record(s, record)  # type: ignore[arg-type]


def available(c: Center, tenants: Tenants, project: str) -> Decimal:
    return Decimal(bill(c).balance(principal(c, tenants, "fin"), project)["available"])


def test_rounding_half_up_and_minimum_charge(quiet: Center) -> None:
    tenants = seed_tenants(quiet)
    install_book(quiet, tenants)
    fund(quiet, tenants, "p1", "100.00", "r1")
    # 1 core for 1000 s at 0.10/core-hour, less the academic discount: below the minimum.
    small = charge(quiet, usage("p1", "small", cpus=1, seconds=1000))
    assert isinstance(small, ChargeRow)
    assert small.amount == MINIMUM
    # 33 cores and 1.5 GB for 1234 s: rounded once, half-up, to the cent.
    rec = usage("p1", "odd", cpus=33, mem=1536, seconds=1234)
    exact = (33 * CPU_RATE + Decimal(1536) / 1024 * MEM_RATE) * Decimal(1234) / 3600
    assert exact * (1 - ACADEMIC) > MINIMUM
    row = charge(quiet, rec)
    assert isinstance(row, ChargeRow)
    assert row.amount == round_charge(exact * (1 - ACADEMIC))
    # A record that never started pays nothing, not the minimum.
    never = charge(quiet, usage("p1", "never", seconds=0))
    assert isinstance(never, ChargeRow) and never.amount == 0


def test_tier_discount_and_contract_override(quiet: Center, tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants)
    contract_rate = Decimal("3.00")
    manage.add_contract(bill(c), principal(c, tenants, "fin"), "corp", {
        "effective_from": (utcnow() - timedelta(days=1)).isoformat(),
        "cards": [{"partition": "gpu", "gpu": {"a100": str(contract_rate)}}],
        "discount": "0.10"})
    fund(c, tenants, "p1", "500.00", "r1")
    fund(c, tenants, "p3", "500.00", "r3")
    lab = charge(c, usage("p1", "lab-gpu", cpus=0, gpus=2, partition="gpu"))
    corp = charge(c, usage("p3", "corp-gpu", cpus=0, gpus=2, partition="gpu"))
    corp_cpu = charge(c, usage("p3", "corp-cpu", cpus=8))
    assert isinstance(lab, ChargeRow) and isinstance(corp, ChargeRow)
    assert isinstance(corp_cpu, ChargeRow)
    assert lab.amount == round_charge(2 * GPU_RATE * (1 - ACADEMIC))
    assert corp.amount == round_charge(2 * contract_rate)  # contract card: no discount
    assert corp.source == "contract"
    assert corp_cpu.amount == round_charge(8 * CPU_RATE * (1 - Decimal("0.10")))


@pytest.fixture
def tenants_quiet(quiet: Center) -> Tenants:
    return seed_tenants(quiet)


def test_price_change_mid_month_charges_price_at_start(quiet: Center,
                                                       tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants)
    change = utcnow() + timedelta(seconds=2)
    new_rate = CPU_RATE * 2
    install_book(c, tenants, effective_from=change.isoformat(),
                 cards=[{"partition": "cpu", "cpu": str(new_rate)}])
    with pytest.raises(InvalidRequest):  # history is never rewritten
        install_book(c, tenants, effective_from=(utcnow() - timedelta(days=1)).isoformat())
    fund(c, tenants, "p1", "100.00", "r1")
    before = charge(c, usage("p1", "before", cpus=10, started=change - timedelta(seconds=1)))
    after = charge(c, usage("p1", "after", cpus=10, started=change + timedelta(minutes=1)))
    assert isinstance(before, ChargeRow) and isinstance(after, ChargeRow)
    assert (before.price_version, after.price_version) == (1, 2)
    assert before.amount == round_charge(10 * CPU_RATE * (1 - ACADEMIC))
    assert after.amount == round_charge(10 * new_rate * (1 - ACADEMIC))


def cpu_cost(job: Job, seconds: int) -> Decimal:
    """What the test book charges a cpu-partition job row for `seconds`."""
    per_hour = job.cpus * CPU_RATE + Decimal(job.mem) / 1024 * MEM_RATE
    return round_charge(per_hour * Decimal(seconds) / 3600 * (1 - ACADEMIC))


def _submit(c: Center, tenants: Tenants, user: str, body: str, *directives: str) -> list[Job]:
    return c.jobs.submit(principal(c, tenants, user), parse_script(script(body, *directives)))


def _finish(c: Center, job_id: str, state: JobState, seconds: int | None) -> None:
    """Record a job's end as the dispatcher does, with the finish hooks."""
    with c.factory() as s, s.begin():
        row = s.get(Job, job_id)
        assert row is not None
        now = utcnow()  # started after the test's price book took effect
        if seconds is not None:
            c.jobs.record_transition(s, row, JobState.RUNNING, "", now)
            row.start_time, row.elapsed = now, seconds
        c.jobs.record_transition(s, row, state, "", now)
        row.end_time = now + timedelta(seconds=seconds or 0)
        for hook in c.dispatcher.finish_hooks:
            hook(s, row, None)


@pytest.mark.parametrize(("state", "seconds"), [
    (JobState.COMPLETED, 1800), (JobState.FAILED, 600), (JobState.CANCELLED, 900),
    (JobState.TIMEOUT, 7200), (JobState.OUT_OF_MEMORY, 60), (JobState.NODE_FAIL, 1800),
    (JobState.CANCELLED, None)])
def test_hold_then_capture_or_release_for_every_end_state(
        quiet: Center, tenants_quiet: Tenants, state: JobState, seconds: int | None) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants, minimum_charge="0")
    fund(c, tenants, "p1", "50.00", "r1")
    [job] = _submit(c, tenants, "alice", "true", "-A p1", "-n 4", "-t 60")
    hold = cpu_cost(job, 3600)  # the time limit at most
    assert available(c, tenants, "p1") == Decimal("50.00") - hold
    _finish(c, job.id, state, seconds)
    billable = min(seconds or 0, 3600)
    expected = Decimal(0) if state is JobState.NODE_FAIL or not seconds else cpu_cost(
        job, billable)
    with c.factory() as s:
        [row] = s.scalars(select(ChargeRow).where(ChargeRow.job_id == job.id)).all()
        [h] = s.scalars(select(HoldRow).where(HoldRow.job_id == job.id)).all()
    assert row.amount == expected
    assert row.from_hold + row.released == hold
    assert h.state == ("CAPTURED" if expected else "RELEASED")
    pos = bill(c).balance(principal(c, tenants, "fin"), "p1")
    assert Decimal(pos["available"]) == Decimal("50.00") - expected
    assert Decimal(pos["held"]) == 0


def test_array_holds_per_task_and_refuses_with_both_amounts(
        quiet: Center, tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants, minimum_charge="0")
    fund(c, tenants, "p1", "1000.00", "r0")
    [probe] = _submit(c, tenants, "alice", "true", "-A p1", "-c 2", "-t 60")
    per_task = cpu_cost(probe, 3600)
    bill(c).refund(principal(c, tenants, "fin"), "p1",
                   str(Decimal("1000.00") - per_task * 4), "bank_transfer", "x", "test")
    with pytest.raises(PaymentRequired) as err:
        _submit(c, tenants, "alice", "true", "-A p1", "-c 2", "-t 60", "--array=0-3")
    assert f"available {per_task * 3:.2f} CNY" in err.value.message
    assert f"needed {per_task * 4:.2f} CNY" in err.value.message
    rows = _submit(c, tenants, "alice", "true", "-A p1", "-c 2", "-t 60", "--array=0-2")
    assert len(rows) == 3 and available(c, tenants, "p1") == 0


def test_replayed_finish_hook_charges_once(quiet: Center, tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants)
    fund(c, tenants, "p1", "50.00", "r1")
    [job] = _submit(c, tenants, "alice", "true", "-A p1", "-n 2", "-t 60")
    _finish(c, job.id, JobState.COMPLETED, 1200)
    left = available(c, tenants, "p1")
    for _ in range(3):  # the hook (or an ingestion) runs again for the same end
        with c.factory() as s, s.begin():
            row = s.get(Job, job.id)
            for hook in c.dispatcher.finish_hooks:
                hook(s, row, None)  # type: ignore[arg-type]
    with c.factory() as s:
        assert s.scalar(select(text("count(*)")).select_from(ChargeRow)) == 1
    assert available(c, tenants, "p1") == left


def test_crash_mid_batch_then_replay_charges_each_record_once(
        quiet: Center, tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants)
    fund(c, tenants, "p1", "500.00", "r1")
    records = [usage("p1", f"job{i}", cpus=i + 1) for i in range(6)]
    with pytest.raises(RuntimeError), c.factory() as s, s.begin():
        for r in records[:4]:
            bill(c).charge_record(s, r)
        raise RuntimeError("ingestion crashed")
    with c.factory() as s:
        assert s.scalar(select(text("count(*)")).select_from(ChargeRow)) == 0
    charge(c, records[0])
    with c.factory() as s, s.begin():
        for r in records:  # replay the whole batch
            bill(c).charge_record(s, r)
    with c.factory() as s:
        rows = s.scalars(select(ChargeRow)).all()
        assert sorted(r.key for r in rows) == sorted(str(r.key) for r in records)
        total = sum((r.amount for r in rows), Decimal(0))
    assert available(c, tenants, "p1") == Decimal("500.00") - total
    with pytest.raises(IntegrityError), c.factory() as s, s.begin():  # the DB guard
        dup = rows[0]
        s.add(ChargeRow(**{k: getattr(dup, k) for k in ChargeRow.__table__.columns.keys()  # noqa: SIM118
                           if k != "id"}, id="x" * 36))


def test_postings_are_immutable_in_the_database(quiet: Center,
                                                tenants_quiet: Tenants) -> None:
    install_book(quiet, tenants_quiet)
    fund(quiet, tenants_quiet, "p1", "10.00", "r1")
    with pytest.raises(DBAPIError), quiet.factory() as s, s.begin():
        s.execute(update(LedgerPosting).values(amount=Decimal("1")))
    with pytest.raises(DBAPIError), quiet.factory() as s, s.begin():
        s.execute(delete(LedgerPosting))
    # transactions too, so a posting's transaction never goes away
    with pytest.raises(DBAPIError), quiet.factory() as s, s.begin():
        s.execute(update(LedgerTransaction).values(memo="changed"))
    with pytest.raises(DBAPIError), quiet.factory() as s, s.begin():
        s.execute(delete(LedgerTransaction))
    if quiet.engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError), quiet.factory() as s, s.begin():
            s.execute(text("TRUNCATE ledger_transactions CASCADE"))
    # a posting needs its transaction (a foreign key on SQLite, a per-statement check
    # on PostgreSQL), whether the statement inserts one row or many
    with quiet.factory() as s:
        real = s.scalars(select(LedgerPosting.transaction_id)).first()
    for ids in (["no-such-transaction"], [real, "no-such-transaction", real]):
        with pytest.raises(IntegrityError), quiet.factory() as s, s.begin():
            s.execute(insert(LedgerPosting), [{
                "transaction_id": t, "line": 100 + i, "account": "x", "amount": Decimal(1),
                "currency": "CNY", "created_at": utcnow()} for i, t in enumerate(ids)])
    with quiet.factory() as s, s.begin():  # postings of existing transactions go in
        s.execute(insert(LedgerPosting), [{
            "transaction_id": real, "line": 100 + i, "account": "x",
            "amount": Decimal(v), "currency": "CNY", "created_at": utcnow()}
            for i, v in enumerate((1, -1))])


def test_unpriced_job_is_reviewed_never_free_nor_dropped(
        quiet: Center, tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants)
    fund(c, tenants, "p1", "100.00", "r1")
    op = principal(c, tenants, "op")
    item = charge(c, usage("p1", "odd-part", partition="fpga"))
    assert isinstance(item, ReviewRow)
    assert [r["key"] for r in bill(c).reviews(op)] == ["test/odd-part/0"]
    assert charge(c, usage("p1", "odd-part", partition="fpga")).id == item.id  # replay
    decided = Decimal("7.50")
    done = bill(c).resolve(op, "test/odd-part/0", str(decided), "priced as cpu")
    assert Decimal(done["amount"]) == decided
    assert bill(c).reviews(op) == []
    assert available(c, tenants, "p1") == Decimal("100.00") - decided
    # Admission refuses what cannot be priced (the operator must add a price).
    with pytest.raises(InvalidRequest):
        _submit(c, tenants, "alice", "true", "-A p1", "-p gpu", "--gres=gpu:h100:1")


def test_fallback_rate_charges_unpriced_job(quiet: Center, tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    fallback = Decimal("0.30")
    install_book(c, tenants, fallback={"mode": "rate",
                                       "card": {"partition": "*", "cpu": str(fallback)}})
    fund(c, tenants, "p1", "100.00", "r1")
    row = charge(c, usage("p1", "fb", cpus=2, partition="fpga"))
    assert isinstance(row, ChargeRow) and row.source == "fallback"
    assert row.amount == round_charge(2 * fallback)


def test_blocking_unblocking_whitelist_and_cap(quiet: Center, tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants, minimum_charge="0")
    fin = principal(c, tenants, "fin")
    with c.factory() as s:
        assert "p1" in blocked_projects(s, utcnow())
    with pytest.raises(PaymentRequired, match="blocked"):
        _submit(c, tenants, "alice", "true", "-A p1", "-t 60")
    fund(c, tenants, "p1", "5.00", "r1")
    assert "p1" not in bill(c).blocked_projects()
    _submit(c, tenants, "alice", "true", "-A p1", "-t 60")
    bill(c).set_limits(fin, "p1", threshold="10.00")
    assert "p1" in bill(c).blocked_projects()
    manage.whitelist(bill(c), fin, "p1", "grant pending", utcnow() + timedelta(hours=1))
    assert "p1" not in bill(c).blocked_projects()
    assert "p1" in bill(c).blocked_projects(utcnow() + timedelta(hours=2))  # expired
    bill(c).set_limits(fin, "p1", threshold="0")
    [first] = _submit(c, tenants, "amy", "true", "-A p1", "-t 60")
    one_job = cpu_cost(first, 3600)
    manage.set_cap(bill(c), principal(c, tenants, "pi"), "p1", "amy", str(one_job * 2),
                   "month")
    _submit(c, tenants, "amy", "true", "-A p1", "-t 60")
    with pytest.raises(PaymentRequired, match="spending cap"):
        _submit(c, tenants, "amy", "true", "-A p1", "-t 60")


def test_quota_hours_are_held_and_refused(quiet: Center, tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants)
    fund(c, tenants, "p1", "100.00", "r1")
    manage.grant_quota(bill(c), principal(c, tenants, "fin"), "p1", "core_hours", "6")
    [job] = _submit(c, tenants, "alice", "true", "-A p1", "-n 4", "-t 60")
    with pytest.raises(PaymentRequired, match="core-hours"):
        _submit(c, tenants, "alice", "true", "-A p1", "-n 4", "-t 60")
    _finish(c, job.id, JobState.COMPLETED, 900)
    [q] = manage.show_quota(bill(c), principal(c, tenants, "alice"), "p1")
    assert Decimal(q["used"]) == 1 and Decimal(q["held"]) == 0
    assert Decimal(q["remaining"]) == 5


def test_organization_credit_covers_projects(quiet: Center, tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants, minimum_charge="0")
    bill(c).set_limits(principal(c, tenants, "fin"), "org:lab", credit_limit="100.00")
    fund(c, tenants, "p1", "0.10", "r1")
    [job] = _submit(c, tenants, "alice", "true", "-A p1", "-n 4", "-t 60")
    org = bill(c).org_balance(principal(c, tenants, "fin"), "lab")
    hold = cpu_cost(job, 3600)
    assert Decimal(org["credit_in_use"]) == hold - Decimal("0.10")
    _finish(c, job.id, JobState.CANCELLED, None)
    org = bill(c).org_balance(principal(c, tenants, "fin"), "lab")
    assert Decimal(org["credit_in_use"]) == 0
    assert available(c, tenants, "p1") == Decimal("0.10")


def test_statement_reconciles_to_the_ledger(quiet: Center, tenants_quiet: Tenants) -> None:
    c, tenants = quiet, tenants_quiet
    install_book(c, tenants)
    fin = principal(c, tenants, "fin")
    fund(c, tenants, "p1", "300.00", "r1")
    fund(c, tenants, "p2", "40.00", "r2")
    bill(c).refund(fin, "p1", "25.00", "bank_transfer", "rf1", "overpaid")
    bill(c).adjust(fin, "p1", "-3.33", "correction")
    for i in range(5):
        charge(c, usage("p1", f"s{i}", cpus=i + 1, gpus=i % 2,
                        partition="gpu" if i % 2 else "cpu"))
    charge(c, usage("p2", "p2job", cpus=3))
    [job] = _submit(c, tenants, "alice", "true", "-A p1", "-n 2", "-t 60")  # stays held
    month = datetime.now(bill(c).tz).strftime("%Y-%m")
    st = bill(c).statement(fin, "project:p1", month)
    assert st.reconciles
    pos = bill(c).balance(fin, "p1")
    assert st.closing.amount == Decimal(pos["balance"])
    assert st.held_at_close.amount == Decimal(pos["held"])
    with c.factory() as s:
        charged = sum(s.scalars(select(ChargeRow.amount).where(ChargeRow.project == "p1")),
                      Decimal(0))
    assert st.charges.amount == charged
    org = bill(c).statement(fin, "org:lab", month)
    assert org.reconciles and org.closing.amount == st.closing.amount + Decimal(
        bill(c).balance(fin, "p2")["balance"])
    next_month = (st.period.end + timedelta(days=1)).astimezone(UTC)
    later = bill(c).statement(fin, "project:p1", next_month.strftime("%Y-%m"))
    assert later.opening == st.closing
    assert job.id


def test_streaming_ingestion_charges_each_record_once(quiet: Center,
                                                      tenants_quiet: Tenants) -> None:
    from lightgrid.center.billing.bulk import Ingestor

    c, tenants = quiet, tenants_quiet
    install_book(c, tenants)
    fund(c, tenants, "p1", "1.00", "r1")  # too little: the rest is owed by the org
    records = [usage("p1", f"feed{i}", cpus=i + 1) for i in range(12)]
    ingestor = Ingestor(c.factory, c.settings.center_name, bill(c).funds, batch_size=5)
    first = ingestor.run(iter(records), utcnow())
    again = ingestor.run(iter(records), utcnow())
    assert (first.charged, again.charged, again.skipped) == (12, 0, 12)
    with c.factory() as s:
        rows = s.scalars(select(ChargeRow)).all()
        total = sum((r.amount for r in rows), Decimal(0))
        owed = sum((r.to_receivable for r in rows), Decimal(0))
    assert total == sum((max(MINIMUM, round_charge((i + 1) * CPU_RATE * (1 - ACADEMIC)))
                         for i in range(12)), Decimal(0))
    assert owed == total - Decimal("1.00")
    assert available(c, tenants, "p1") == 0
    month = datetime.now(bill(c).tz).strftime("%Y-%m")
    assert bill(c).statement(principal(c, tenants, "fin"), "org:lab", month).reconciles
