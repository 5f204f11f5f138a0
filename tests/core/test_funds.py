import contextlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from lightgrid.core.errors import (
    Conflict,
    IllegalTransition,
    InvalidRequest,
    NotFound,
    PaymentRequired,
)
from lightgrid.core.funds import (
    Charge,
    ChargeKey,
    FundsBook,
    HoldState,
    ReviewItem,
    UsageRecord,
)
from lightgrid.core.jobs import JobState
from lightgrid.core.ledger import TxnKind
from lightgrid.core.money import Money, money, total
from lightgrid.core.pricing import (
    Fallback,
    FallbackMode,
    JobShape,
    PriceBook,
    PriceBookVersion,
    Quote,
    RateCard,
    quote_max,
)
from lightgrid.core.quotas import (
    BlockAction,
    CapPeriod,
    QuotaKind,
    QuotaNeed,
    SpendingCap,
    Whitelist,
    block_change,
)
from lightgrid.core.resources import Tres

D = Decimal
T0 = datetime(2025, 3, 1, tzinfo=UTC)
CARDS = (RateCard("cpu", cpu=D("0.10")), RateCard("gpu", cpu=D("0.10"),
                                                  gpu=(("a100", D("8")),)))
BOOK = PriceBook("c1", (PriceBookVersion(1, T0 - timedelta(days=30), CARDS,
                                         minimum_charge=D("0.01")),))
FOUR = Tres(cpu=4, mem=4096)  # 0.40 per hour


def new_book(**projects) -> FundsBook:
    fb = FundsBook("CNY")
    fb.open_project("p")
    return fb


def funded(amount="100") -> FundsBook:
    fb = new_book()
    fb.top_up("project:p", money(amount), method="bank_transfer", reference="r1", at=T0)
    return fb


def quote(tres=FOUR, seconds=3600, partition="cpu", book=BOOK, at=T0, gpu=None) -> Quote:
    q = quote_max(book, JobShape(partition, tres, seconds, gpu_type=gpu), None, at)
    assert isinstance(q, Quote)
    return q


def usage(job="j1", state=JobState.COMPLETED, elapsed=1800, started=T0, tres=FOUR,
          partition="cpu", run=0, limit=3600, project="p", user="alice") -> UsageRecord:
    return UsageRecord(ChargeKey("local", job, run), job, project, partition, tres, state,
                       elapsed, (started or T0) + timedelta(seconds=elapsed),
                       started_at=started, user=user, time_limit=limit)


def charged(result) -> Charge:
    assert isinstance(result, Charge), result
    return result


# ------------------------------------------------------------------ wallets


def test_top_up_balance_and_available():
    fb = funded("100")
    assert fb.balance("p") == fb.available("p") == money("100")
    assert fb.held("p").is_zero


def test_top_up_replay_is_idempotent_and_reference_reuse_conflicts():
    fb = funded("100")
    again = fb.top_up("project:p", money("100"), method="bank_transfer", reference="r1",
                      at=T0)
    assert len(fb.ledger) == 1 and again is fb.ledger.transactions[0]
    with pytest.raises(Conflict):
        fb.top_up("project:p", money("50"), method="bank_transfer", reference="r1", at=T0)


def test_refund_and_adjustments():
    fb = funded("100")
    with pytest.raises(Conflict):
        fb.refund("project:p", money("100.01"), method="bank_transfer", reference="x",
                  at=T0, reason="leaving")
    fb.refund("project:p", money("40"), method="bank_transfer", reference="x", at=T0,
              reason="leaving")
    fb.adjust("project:p", money("5"), reason="goodwill", at=T0)
    fb.adjust("project:p", money("-15"), reason="correction", at=T0)
    assert fb.available("p") == money("50")
    with pytest.raises(Conflict):
        fb.adjust("project:p", money("-50.01"), reason="too much", at=T0)
    with pytest.raises(InvalidRequest):
        fb.adjust("project:p", money("1"), reason=" ", at=T0)


def test_wrong_currency_and_unknown_owner():
    fb = new_book()
    with pytest.raises(InvalidRequest):
        fb.top_up("project:p", money("1", "USD"), method="m", reference="r", at=T0)
    with pytest.raises(NotFound):
        fb.top_up("project:nope", money("1"), method="m", reference="r", at=T0)
    with pytest.raises(InvalidRequest):
        fb.top_up("p", money("1"), method="m", reference="r", at=T0)
    with pytest.raises(InvalidRequest):
        fb.top_up("project:p", money("-1"), method="m", reference="r", at=T0)


# ------------------------------------------------------------ admission, holds


def test_admission_refused_states_available_and_needed():
    fb = funded("0.30")
    with pytest.raises(PaymentRequired) as err:
        fb.admit("j1", "p", quote(), at=T0)
    assert "available 0.30 CNY" in err.value.message
    assert "needed 0.40 CNY" in err.value.message
    assert not fb.holds()


def test_hold_moves_funds_from_available_to_held():
    fb = funded("1")
    hold = fb.admit("j1", "p", quote(), at=T0, user="alice")
    assert hold.amount == money("0.40") and hold.state is HoldState.ACTIVE
    assert fb.held("p") == money("0.40")
    assert fb.available("p") == money("0.60")
    assert fb.balance("p") == money("1")
    with pytest.raises(Conflict):
        fb.admit("j1", "p", quote(), at=T0)


def test_unpriced_job_refused_at_admission():
    from lightgrid.core.pricing import Unpriced
    fb = funded()
    result = quote_max(BOOK, JobShape("nowhere", FOUR, 60), None, T0)
    assert isinstance(result, Unpriced)
    with pytest.raises(InvalidRequest, match="nowhere"):
        fb.admit("j1", "p", result, at=T0)


# Elapsed seconds of a 1 h limit job of 4 cores (0.40/h), and the expected charge.
END_STATES = [
    (JobState.COMPLETED, T0, 1800, "0.20"),
    (JobState.FAILED, T0, 600, "0.07"),            # 0.0666.. -> 0.07
    (JobState.CANCELLED, None, 0, "0.00"),         # cancelled before start
    (JobState.CANCELLED, T0, 900, "0.10"),         # cancelled after start
    (JobState.TIMEOUT, T0, 3630, "0.40"),          # grace beyond the limit is free
    (JobState.NODE_FAIL, T0, 1200, "0.00"),        # waived: the center's failure
    (JobState.OUT_OF_MEMORY, T0, 60, "0.01"),      # 0.00666.. -> minimum 0.01
]


@pytest.mark.parametrize(("state", "started", "elapsed", "expected"), END_STATES)
def test_hold_and_capture_for_every_end_state(state, started, elapsed, expected):
    fb = funded("10")
    hold = fb.admit("j1", "p", quote(), at=T0)
    c = charged(fb.charge(usage(state=state, started=started, elapsed=elapsed), BOOK,
                          None, at=T0 + timedelta(hours=2)))
    assert c.amount == money(expected)
    assert c.from_hold == money(expected) and c.to_receivable.is_zero
    assert c.released == hold.amount - money(expected)
    closed = fb.holds()[0]
    assert closed.state is (HoldState.CAPTURED if c.amount.is_positive
                            else HoldState.RELEASED)
    assert fb.held("p").is_zero
    assert fb.available("p") == money("10") - money(expected)
    revenue = sum((p.amount for p in fb.ledger.postings() if p.account == "revenue:cpu"),
                  D(0))
    assert -revenue == money(expected).amount


def test_cancel_before_start_releases_whole_hold():
    fb = funded("10")
    fb.admit("j1", "p", quote(), at=T0)
    released = fb.release("j1", at=T0)
    assert released.state is HoldState.RELEASED
    assert fb.available("p") == money("10")
    with pytest.raises(NotFound):
        fb.release("j1", at=T0)


def test_hold_transition_table():
    fb = funded("10")
    hold = fb.admit("j1", "p", quote(), at=T0)
    done = hold.moved(HoldState.CAPTURED, T0)
    with pytest.raises(IllegalTransition):
        done.moved(HoldState.RELEASED, T0)
    with pytest.raises(IllegalTransition):
        hold.moved(HoldState.ACTIVE, T0)


def test_exactly_once_charging_under_replay():
    fb = funded("10")
    fb.admit("j1", "p", quote(), at=T0)
    record = usage()
    first = charged(fb.charge(record, BOOK, None, at=T0 + timedelta(hours=1)))
    postings = len(fb.ledger)
    for i in range(3):
        again = fb.charge(record, BOOK, None, at=T0 + timedelta(hours=2 + i))
        assert again is first
    assert len(fb.ledger) == postings
    assert fb.available("p") == money("9.80")
    # a requeued second run of the same backend job is a new key, a new charge
    second = charged(fb.charge(usage(run=1, elapsed=3600), BOOK, None,
                               at=T0 + timedelta(hours=3)))
    assert second.key == "local/j1/1" and second.amount == money("0.40")
    assert second.hold_id is None and second.from_funds == money("0.40")


def test_each_job_charged_at_price_in_force_when_it_started():
    mid = T0 + timedelta(days=15)
    dearer = PriceBookVersion(2, mid, (RateCard("cpu", cpu=D("0.20")),))
    book = BOOK.with_version(dearer, now=T0)
    fb = funded("100")
    fb.admit("early", "p", quote(book=book), at=T0)  # quoted at the dearer price
    fb.admit("late", "p", quote(book=book), at=T0)
    early = charged(fb.charge(usage("early", started=mid - timedelta(hours=2),
                                    elapsed=3600), book, None, at=mid + timedelta(days=1)))
    late = charged(fb.charge(usage("late", started=mid, elapsed=3600), book, None,
                             at=mid + timedelta(days=1)))
    assert early.amount == money("0.40") and early.quote and early.quote.price_version == 1
    assert late.amount == money("0.80") and late.quote and late.quote.price_version == 2
    assert fb.available("p") == money("98.80")


def test_charge_beyond_hold_draws_funds_then_receivable():
    # a dearer version added after admission: the hold falls short
    fb = funded("0.50")
    fb.admit("j1", "p", quote(), at=T0)  # 0.40 held, 0.10 left
    dearer = PriceBookVersion(2, T0 + timedelta(hours=1), (RateCard("cpu", cpu=D("0.30")),))
    book = BOOK.with_version(dearer, now=T0 + timedelta(minutes=1))
    c = charged(fb.charge(usage(started=T0 + timedelta(hours=1), elapsed=3600), book, None,
                          at=T0 + timedelta(hours=3)))
    assert c.amount == money("1.20")
    assert (c.from_hold, c.from_funds, c.to_receivable) == (money("0.40"), money("0.10"),
                                                            money("0.70"))
    assert fb.available("p").is_zero
    assert fb.outstanding("project:p") == money("0.70")


def test_usage_without_price_goes_to_review_and_keeps_its_hold():
    fb = funded("10")
    fb.admit("j1", "p", quote(), at=T0)
    gone = PriceBookVersion(2, T0 + timedelta(minutes=5), (CARDS[1],))  # no cpu card
    book = BOOK.with_version(gone, now=T0 + timedelta(minutes=1))
    record = usage(started=T0 + timedelta(minutes=10))
    item = fb.charge(record, book, None, at=T0 + timedelta(hours=2))
    assert isinstance(item, ReviewItem) and "cpu" in item.reason
    assert fb.reviews() == [item]
    assert fb.charge(record, book, None, at=T0 + timedelta(hours=3)) is item
    assert fb.held("p") == money("0.40")  # never dropped, never free
    c = fb.resolve_review(item.key, money("0.25"), at=T0 + timedelta(hours=4),
                          note="priced as cpu")
    assert c.amount == money("0.25") and c.from_hold == money("0.25")
    assert fb.reviews() == [] and fb.held("p").is_zero
    assert fb.charge(record, book, None, at=T0 + timedelta(hours=5)) is c
    assert fb.available("p") == money("9.75")


def test_usage_before_any_price_book_goes_to_review():
    fb = funded("10")
    early = usage(started=T0 - timedelta(days=365))
    item = fb.charge(early, BOOK, None, at=T0 + timedelta(hours=1))
    assert isinstance(item, ReviewItem) and "no price book" in item.reason


def test_usage_without_price_charged_by_fallback_rate():
    fb = funded("10")
    v = PriceBookVersion(1, T0, (), fallback=Fallback(FallbackMode.RATE,
                                                       RateCard("*", cpu=D("0.50"))))
    book = PriceBook("c", (v,))
    c = charged(fb.charge(usage(partition="odd", elapsed=3600), book, None,
                          at=T0 + timedelta(hours=2)))
    assert c.amount == money("2.00") and c.quote and c.quote.fallback_reason


def test_charge_splits_revenue_by_resource():
    fb = funded("100")
    tres = Tres(cpu=3, gpu=1)
    fb.admit("g", "p", quote(tres=tres, partition="gpu", gpu="a100"), at=T0)
    rec = UsageRecord(ChargeKey("local", "g"), "g", "p", "gpu", tres, JobState.COMPLETED,
                      3600, T0 + timedelta(hours=1), started_at=T0, gpu_type="a100",
                      time_limit=3600)
    c = charged(fb.charge(rec, BOOK, None, at=T0 + timedelta(hours=1)))
    txn = next(t for t in fb.ledger if t.kind is TxnKind.CAPTURE)
    by_res = {p.ref("resource"): -p.amount for p in txn.postings
              if p.account == "revenue:gpu"}
    assert by_res == {"cpu": D("0.30"), "gpu": D("8.00")}
    assert c.core_hours == 3 and c.gpu_hours == 1


# ----------------------------------------------------------------- org wallets


def test_project_draws_on_org_credit_and_invoice():
    fb = FundsBook("CNY")
    fb.open_org("o", money("100"))
    fb.open_project("q", org="o")
    fb.top_up("project:q", money("0.20"), method="bank", reference="a", at=T0)
    hold = fb.admit("j1", "q", quote(), at=T0)
    assert [(code, m) for code, m in hold.sources] == [
        ("wallet:project:q", money("0.20")), ("wallet:org:o", money("0.20"))]
    assert fb.org_available("o") == money("99.80")
    c = charged(fb.charge(usage(project="q", elapsed=2700), BOOK, None,
                          at=T0 + timedelta(hours=1)))
    assert c.amount == money("0.30")
    # the unused 0.10 goes back to the organization; the project's own funds are spent
    assert fb.available("q").is_zero and fb.org_balance("o") == money("-0.10")
    inv = fb.invoice("org:o", at=T0 + timedelta(days=1), reference="INV-1")
    assert inv is not None and fb.org_balance("o").is_zero
    assert fb.outstanding("org:o") == money("0.10")
    assert fb.invoice("org:o", at=T0 + timedelta(days=1), reference="INV-2") is None
    with pytest.raises(Conflict):
        fb.record_payment("org:o", money("1"), method="bank", reference="p",
                          at=T0 + timedelta(days=2))
    fb.record_payment("org:o", money("0.10"), method="bank", reference="p",
                      at=T0 + timedelta(days=2))
    assert fb.outstanding("org:o").is_zero


def test_credit_limit_cannot_drop_below_use():
    fb = FundsBook("CNY")
    fb.open_org("o", money("10"))
    fb.open_project("q", org="o")
    fb.admit("j", "q", money("6"), at=T0)
    with pytest.raises(Conflict):
        fb.set_credit_limit("o", money("5"))
    fb.set_credit_limit("o", money("6"))
    with pytest.raises(PaymentRequired):
        fb.admit("k", "q", money("0.01"), at=T0)


# ------------------------------------------------------------- blocking, caps


def test_blocking_and_unblocking():
    fb = new_book()
    fb.set_threshold("p", money("10"))
    fb.top_up("project:p", money("15"), method="bank", reference="a", at=T0)
    before = fb.block_status("p", T0)
    assert not before.blocked
    fb.admit("j1", "p", money("5"), at=T0)
    after = fb.block_status("p", T0)
    assert after.blocked and fb.blocked_projects(T0) == ["p"]
    assert block_change(before, after) is BlockAction.BLOCK
    with pytest.raises(PaymentRequired, match="blocked"):
        fb.admit("j2", "p", money("0.01"), at=T0)
    fb.top_up("project:p", money("1"), method="bank", reference="b", at=T0)
    unblocked = fb.block_status("p", T0)
    assert not unblocked.blocked
    assert block_change(after, unblocked) is BlockAction.UNBLOCK
    assert block_change(unblocked, unblocked) is None


def test_whitelist_with_expiry():
    fb = new_book()
    fb.set_threshold("p", money("10"))
    fb.top_up("project:p", money("5"), method="bank", reference="a", at=T0)
    fb.set_whitelist(Whitelist("p", "grant pending", T0 + timedelta(days=1)))
    assert not fb.block_status("p", T0).blocked
    fb.admit("j1", "p", money("5"), at=T0)  # whitelisting exempts from blocking only
    with pytest.raises(PaymentRequired, match="insufficient"):
        fb.admit("j2", "p", money("0.01"), at=T0)
    assert fb.block_status("p", T0 + timedelta(days=1)).blocked
    fb.remove_whitelist("p")
    assert fb.block_status("p", T0).blocked


def test_user_spending_cap_counts_holds_and_charges_per_month():
    fb = funded("100")
    fb.set_cap(SpendingCap("p", "alice", money("1.00")))
    fb.admit("j1", "p", quote(), at=T0, user="alice")  # 0.40 held
    fb.admit("j2", "p", quote(), at=T0, user="alice")  # 0.80
    with pytest.raises(PaymentRequired, match="spending cap"):
        fb.admit("j3", "p", quote(), at=T0, user="alice")
    fb.admit("j3", "p", quote(), at=T0, user="bob")  # other users are not capped
    fb.charge(usage("j1", elapsed=3600), BOOK, None, at=T0 + timedelta(hours=1))
    charged_, held = fb.user_spending("p", "alice", T0 + timedelta(hours=1))
    assert (charged_, held) == (money("0.40"), money("0.40"))
    april = datetime(2025, 4, 1, tzinfo=UTC)
    fb.release("j2", at=april)
    fb.admit("j4", "p", quote(), at=april, user="alice")  # new month, fresh cap
    fb.set_cap(SpendingCap("p", "alice", money("0.50"), CapPeriod.TOTAL))
    with pytest.raises(PaymentRequired):
        fb.admit("j5", "p", quote(), at=april, user="alice")


# ---------------------------------------------------------------------- quotas


def test_quota_holds_and_usage():
    fb = funded("100")
    fb.quotas.grant("p", QuotaKind.CORE_HOURS, 10)
    need = QuotaNeed.of(FOUR, 7200)  # 8 core-hours
    fb.admit("j1", "p", quote(seconds=7200), at=T0, quota=need)
    with pytest.raises(PaymentRequired, match="core-hours"):
        fb.admit("j2", "p", quote(), at=T0, quota=QuotaNeed.of(FOUR, 3600))
    assert fb.holds(state=HoldState.ACTIVE)[0].job_id == "j1"
    fb.charge(usage("j1", elapsed=3600, limit=7200), BOOK, None, at=T0 + timedelta(hours=1))
    status = fb.quotas.status("p", QuotaKind.CORE_HOURS)
    assert status is not None
    assert (status.used, status.held, status.remaining) == (4, 0, 6)
    fb.admit("j2", "p", quote(), at=T0 + timedelta(hours=1), quota=QuotaNeed.of(FOUR, 3600))
    assert fb.quotas.status("p", QuotaKind.GPU_HOURS) is None  # no grant: unlimited


def test_released_quota_is_not_used():
    fb = funded("100")
    fb.quotas.grant("p", QuotaKind.GPU_HOURS, 2)
    need = QuotaNeed.of(Tres(gpu=2), 3600)
    fb.admit("j1", "p", money("1"), at=T0, quota=need)
    fb.release("j1", at=T0)
    status = fb.quotas.status("p", QuotaKind.GPU_HOURS)
    assert status is not None and status.used == 0 and status.remaining == 2


# ------------------------------------------------------- property: any sequence

amounts = st.integers(min_value=1, max_value=5000).map(lambda c: Money(D(c) / 100, "CNY"))
OWNERS = ["project:p", "project:q", "project:r", "org:o"]
PROJECTS = ["p", "q", "r"]
STATES = [JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.TIMEOUT,
          JobState.NODE_FAIL, JobState.OUT_OF_MEMORY]


class FundsMachine(RuleBasedStateMachine):
    """Random operations in any order; the invariants must hold after every step."""

    @initialize(limit=amounts)
    def setup(self, limit):
        self.fb = FundsBook("CNY")
        self.fb.open_org("o", limit)
        self.fb.open_project("p")
        self.fb.open_project("q", org="o")
        self.fb.open_project("r", org="o")
        self.book = BOOK
        self.now = T0
        self.jobs = 0
        self.refs = 0
        for owner in ("project:p", "project:q"):
            self.fb.top_up(owner, money("20"), method="bank", reference=owner, at=T0)

    def tick(self) -> datetime:
        self.now += timedelta(minutes=7)
        return self.now

    def ref(self) -> str:
        self.refs += 1
        return f"ref{self.refs}"

    @rule(owner=st.sampled_from(OWNERS), amount=amounts)
    def top_up(self, owner, amount):
        self.fb.top_up(owner, amount, method="bank", reference=self.ref(), at=self.tick())

    @rule(owner=st.sampled_from(OWNERS), amount=amounts)
    def refund(self, owner, amount):
        with contextlib.suppress(Conflict):
            self.fb.refund(owner, amount, method="bank", reference=self.ref(),
                           at=self.tick(), reason="r")

    @rule(owner=st.sampled_from(OWNERS), amount=amounts, up=st.booleans())
    def adjust(self, owner, amount, up):
        with contextlib.suppress(Conflict):
            self.fb.adjust(owner, amount if up else -amount, reason="fix", at=self.tick())

    @rule(project=st.sampled_from(PROJECTS), cpus=st.integers(1, 16),
          hours=st.integers(1, 12))
    def admit(self, project, cpus, hours):
        self.jobs += 1
        q = quote(Tres(cpu=cpus), hours * 3600, book=self.book, at=self.now)
        try:
            self.fb.admit(f"j{self.jobs}", project, q, at=self.tick(), user="u")
        except PaymentRequired:
            event("admission refused")

    @precondition(lambda self: self.fb.holds(state=HoldState.ACTIVE))
    @rule(data=st.data(), state=st.sampled_from(STATES), frac=st.floats(0, 1.2),
          replay=st.booleans(), dearer=st.booleans())
    def finish(self, data, state, frac, replay, dearer):
        hold = data.draw(st.sampled_from(self.fb.holds(state=HoldState.ACTIVE)))
        if dearer:  # the price rises after admission: the hold may fall short
            self.reprice("0.90")
        limit = int(hold.amount.amount * 36000) or 1  # seconds at 0.10/core-h, 1 core
        elapsed = int(limit * D(str(frac)))
        started = self.tick() if elapsed else None
        rec = UsageRecord(ChargeKey("c", hold.job_id), hold.job_id, hold.project, "cpu",
                          Tres(cpu=1), state, elapsed, self.now + timedelta(seconds=elapsed),
                          started_at=started, time_limit=limit)
        first = self.fb.charge(rec, self.book, None, at=self.now)
        assert isinstance(first, Charge)
        event("charged beyond funds" if first.to_receivable.is_positive else
              "charged beyond hold" if first.from_funds.is_positive else "charged")
        if replay:
            assert self.fb.charge(rec, self.book, None, at=self.tick()) is first

    @precondition(lambda self: self.fb.holds(state=HoldState.ACTIVE))
    @rule(data=st.data())
    def cancel(self, data):
        hold = data.draw(st.sampled_from(self.fb.holds(state=HoldState.ACTIVE)))
        self.fb.release(hold.job_id, at=self.tick())

    @rule(rate=st.sampled_from(["0.05", "0.30", "0.90"]))
    def reprice(self, rate):
        # a new price after admission can make a charge exceed its hold
        v = PriceBookVersion(self.book.versions[-1].version + 1, self.tick(),
                             (RateCard("cpu", cpu=D(rate)),), minimum_charge=D("0.01"))
        self.book = self.book.with_version(v, now=self.now)

    @rule()
    def invoice(self):
        self.fb.invoice("org:o", at=self.tick(), reference=self.ref())

    @rule(limit=amounts)
    def set_limit(self, limit):
        with contextlib.suppress(Conflict):
            self.fb.set_credit_limit("o", limit)

    @invariant()
    def ledger_balances(self):
        assert all(v == 0 for v in self.fb.ledger.trial_balance().values())
        for txn in self.fb.ledger:
            assert sum(p.amount for p in txn.postings) == 0

    @invariant()
    def available_is_balance_minus_holds(self):
        for p in PROJECTS:
            active = total((h.amount for h in self.fb.holds(p, HoldState.ACTIVE)), "CNY")
            assert self.fb.held(p) == active
            assert self.fb.available(p) == self.fb.balance(p) - self.fb.held(p)

    @invariant()
    def never_below_minus_credit_limit(self):
        for p in PROJECTS:
            assert self.fb.available(p) >= Money.zero("CNY")
            assert self.fb.spendable(p) >= Money.zero("CNY")
        assert self.fb.org_balance("o") >= -self.fb._orgs["o"]

    @invariant()
    def charges_add_up(self):
        for c in self.fb.charges:
            assert c.amount == c.from_hold + c.from_funds + c.to_receivable


FundsMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40,
                                          deadline=None)
TestFundsProperties = FundsMachine.TestCase
