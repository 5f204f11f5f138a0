import csv
import io
from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightgrid.core.errors import Conflict, InvalidRequest, PaymentRequired
from lightgrid.core.funds import Charge, ChargeKey, FundsBook, UsageRecord
from lightgrid.core.jobs import JobState
from lightgrid.core.ledger import TxnKind
from lightgrid.core.money import Money, money, total
from lightgrid.core.pricing import PriceBook, PriceBookVersion, RateCard
from lightgrid.core.resources import Tres
from lightgrid.core.statements import (
    Period,
    org_statement,
    project_statement,
    statement_csv,
    usage_csv,
    usage_report,
)

D = Decimal
SH = ZoneInfo("Asia/Shanghai")
MARCH = Period.month(2025, 3, SH)
BOOK = PriceBook("c", (PriceBookVersion(1, datetime(2025, 1, 1, tzinfo=SH), (
    RateCard("cpu", cpu=D("0.10"), mem=D("0.01")),
    RateCard("gpu", cpu=D("0.10"), gpu=(("a100", D("8")),))), minimum_charge=D("0.01")),))


def at(day, hour=12):
    return datetime(2025, 3, 1, tzinfo=SH) + timedelta(days=day - 1, hours=hour)


def run(fb, job, project, partition, tres, start, seconds, user="alice", gpu=None):
    fb.admit(job, project, money("50"), at=start, user=user)
    rec = UsageRecord(ChargeKey("local", job), job, project, partition, tres,
                      JobState.COMPLETED, seconds, start + timedelta(seconds=seconds),
                      started_at=start, user=user, gpu_type=gpu, time_limit=seconds)
    return fb.charge(rec, BOOK, None, at=start + timedelta(seconds=seconds))


def scenario() -> FundsBook:
    fb = FundsBook("CNY", tz=SH)
    fb.open_project("p")
    fb.top_up("project:p", money("100"), method="bank_transfer", reference="FEB",
              at=datetime(2025, 2, 10, tzinfo=SH))
    run(fb, "feb", "p", "cpu", Tres(cpu=8), datetime(2025, 2, 20, tzinfo=SH), 7200)
    fb.top_up("project:p", money("500"), method="bank_transfer", reference="MAR",
              at=at(3))
    run(fb, "a", "p", "cpu", Tres(cpu=16, mem=65536), at(4), 3 * 3600 + 17)
    run(fb, "b", "p", "gpu", Tres(cpu=4, gpu=2), at(5), 5400, user="bob", gpu="a100")
    fb.refund("project:p", money("20"), method="bank_transfer", reference="RF",
              at=at(6), reason="overpaid")
    fb.adjust("project:p", money("3.33"), reason="outage credit", at=at(7))
    fb.admit("open", "p", money("12.34"), at=at(31, 20))  # still held at month end
    # starts 23:30 on 31 March local, charged 00:30 on 1 April: April's statement
    run(fb, "late", "p", "cpu", Tres(cpu=1), at(31, 23) + timedelta(minutes=30), 3600)
    return fb


def test_project_statement_reconciles_to_the_ledger():
    fb = scenario()
    st_ = project_statement(fb.ledger, "p", MARCH, "CNY")
    assert st_.reconciles
    assert st_.opening == money("100") - money("1.60")  # February's job
    assert st_.top_ups == money("500") and st_.refunds == money("20")
    assert st_.adjustments == money("3.33")
    assert st_.held_at_close == money("12.34") + money("50")  # "late" is running
    march_charges = [c for c in fb.charges if c.created_at in MARCH]
    assert st_.charges == total((c.amount for c in march_charges), "CNY")
    # the ledger's own balance at the bounds, independently
    w = fb.ledger.credit_balance
    from lightgrid.core.ledger import project_hold, project_wallet
    end = (w(project_wallet("p"), "CNY", before=MARCH.end)
           + w(project_hold("p"), "CNY", before=MARCH.end))
    assert st_.closing == end
    by_part = st_.charges_by("partition")
    assert set(by_part) == {"cpu", "gpu"}
    assert by_part["gpu"] == money("24.60")  # 4*0.10*1.5 + 2*8*1.5
    assert st_.charges_by("resource")["gpu"] == money("24.00")


def test_consecutive_months_chain():
    fb = scenario()
    april = Period.month(2025, 4, SH)
    mar = project_statement(fb.ledger, "p", MARCH, "CNY")
    apr = project_statement(fb.ledger, "p", april, "CNY")
    assert apr.opening == mar.closing and apr.reconciles
    assert apr.charges == money("0.10")
    assert apr.closing == fb.balance("p")


def test_org_statement_covers_projects_and_credit():
    fb = FundsBook("CNY", tz=SH)
    fb.open_org("o", money("1000"))
    fb.open_project("q", org="o")
    fb.open_project("r", org="o")
    fb.top_up("project:q", money("10"), method="bank", reference="q1", at=at(1))
    fb.top_up("org:o", money("5"), method="bank", reference="o1", at=at(1))
    run(fb, "q1", "q", "gpu", Tres(cpu=1, gpu=1), at(2), 3600, gpu="a100")  # 8.10
    run(fb, "r1", "r", "gpu", Tres(cpu=1, gpu=1), at(3), 7200, gpu="a100")  # 16.20
    fb.invoice("org:o", at=at(28), reference="INV-2025-03")
    q = project_statement(fb.ledger, "q", MARCH, "CNY")
    r = project_statement(fb.ledger, "r", MARCH, "CNY")
    o = org_statement(fb.ledger, "o", ["q", "r"], MARCH, "CNY")
    for s in (q, r, o):
        assert s.reconciles, s
    assert o.charges == money("24.30") == q.charges + r.charges
    assert r.org_transfers == money("16.20")  # r has no funds of its own
    assert o.invoiced == money("11.20")  # 24.30 - 10 - 5 - (q's hold drawn from org)
    assert o.closing == fb.org_balance("o") + fb.balance("q") + fb.balance("r")
    assert o.charges_by("project") == {"q": money("8.10"), "r": money("16.20")}


def test_charges_beyond_funds_are_covered_elsewhere():
    fb = FundsBook("CNY", tz=SH)
    fb.open_project("p")
    fb.top_up("project:p", money("1"), method="bank", reference="a", at=at(1))
    rec = UsageRecord(ChargeKey("local", "x"), "x", "p", "cpu", Tres(cpu=100),
                      JobState.COMPLETED, 3600, at(2, 13), started_at=at(2))
    c = fb.charge(rec, BOOK, None, at=at(2, 13))  # a job that never had a hold
    assert isinstance(c, Charge)
    st_ = project_statement(fb.ledger, "p", MARCH, "CNY")
    assert st_.reconciles and st_.charges == money("10.00")
    assert st_.covered_elsewhere == money("9.00") == c.to_receivable
    assert st_.closing.is_zero


def test_statement_csv_sums_match():
    st_ = project_statement(scenario().ledger, "p", MARCH, "CNY")
    rows = list(csv.DictReader(io.StringIO(statement_csv(st_))))
    charge_rows = [r for r in rows if r["section"] == "charge"]
    assert sum(D(r["amount"]) for r in charge_rows) == st_.charges.amount
    assert rows[-2]["section"] == "closing_balance"
    assert D(rows[-2]["amount"]) == st_.closing.amount
    assert any("MAR" in r["detail"] for r in rows if r["section"] == "top_up")


def test_usage_report_by_user_partition_month():
    fb = scenario()
    rows = usage_report(fb.charges, SH, "CNY", project="p")
    keys = [(r.month, r.user, r.partition) for r in rows]
    assert keys == [("2025-02", "alice", "cpu"), ("2025-03", "alice", "cpu"),
                    ("2025-03", "bob", "gpu"), ("2025-04", "alice", "cpu")]
    bob = rows[2]
    assert bob.jobs == 1 and bob.gpu_hours == D("3") and bob.core_hours == D("6")
    assert total((r.amount for r in rows), "CNY") == total((c.amount for c in fb.charges),
                                                          "CNY")
    text = usage_csv(rows)
    assert text.splitlines()[0].startswith("month,user,partition")


def test_period_validation():
    with pytest.raises(InvalidRequest):
        Period.month(2025, 13, SH)
    dec = Period.month(2024, 12, SH)
    assert dec.end == datetime(2025, 1, 1, tzinfo=SH)
    with pytest.raises(InvalidRequest):
        Period(at(2), at(1), "x")


ops = st.lists(st.tuples(st.sampled_from(["topup", "refund", "adjust", "job", "cancel",
                                          "invoice"]),
                         st.integers(1, 20000), st.sampled_from(["p", "q"]),
                         st.integers(0, 3)),
               max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops)
def test_every_month_reconciles_to_the_cent(steps):
    fb = FundsBook("CNY", tz=SH)
    fb.open_org("o", money("50"))
    fb.open_project("p")
    fb.open_project("q", org="o")
    now = datetime(2025, 1, 1, tzinfo=SH)
    for n, (kind, cents, project, extra) in enumerate(steps):
        now += timedelta(days=3, hours=extra, seconds=cents % 61)
        amount = Money(D(cents) / 100, "CNY")
        try:
            if kind == "topup":
                fb.top_up(f"project:{project}", amount, method="bank", reference=f"t{n}",
                          at=now)
            elif kind == "refund":
                fb.refund(f"project:{project}", amount, method="bank", reference=f"r{n}",
                          at=now, reason="r")
            elif kind == "adjust":
                fb.adjust(f"project:{project}", amount if extra % 2 else -amount,
                          reason="a", at=now)
            elif kind == "job":
                fb.admit(f"j{n}", project, money("5"), at=now)
                if extra:
                    rec = UsageRecord(ChargeKey("c", f"j{n}"), f"j{n}", project, "cpu",
                                      Tres(cpu=extra * 3), JobState.COMPLETED, cents,
                                      now, started_at=now, time_limit=cents)
                    fb.charge(rec, BOOK, None, at=now)
            elif kind == "cancel":
                active = fb.holds(project, None)
                if active and active[-1].state == "ACTIVE":
                    fb.release(active[-1].job_id, at=now)
            else:
                fb.invoice("org:o", at=now, reference=f"i{n}")
        except (PaymentRequired, Conflict):
            pass
    previous = None
    for month in range(1, 13):
        period = Period.month(2025, month, SH)
        sts = [project_statement(fb.ledger, "p", period, "CNY"),
               org_statement(fb.ledger, "o", ["q"], period, "CNY")]
        for s in sts:
            assert s.reconciles
        if previous:
            assert [s.opening for s in sts] == [s.closing for s in previous]
        previous = sts
        charged = total((-p.money for t in fb.ledger if t.kind is TxnKind.CAPTURE
                         and t.created_at in period for p in t.postings
                         if p.account.startswith("revenue:")), "CNY")
        assert sts[0].charges + sts[1].charges == charged
    assert previous is not None
    assert previous[0].closing == fb.balance("p")
    assert previous[1].closing == fb.org_balance("o") + fb.balance("q")
