from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightgrid.core.errors import Conflict, InvalidRequest
from lightgrid.core.ledger import (
    Account,
    AccountKind,
    Ledger,
    Leg,
    Posting,
    Transaction,
    TxnKind,
    cash,
    project_wallet,
    revenue,
)
from lightgrid.core.money import CENT, Money, money

T0 = datetime(2025, 1, 1, tzinfo=UTC)


def topup(amount="10.00", at=T0):
    return Transaction.build(TxnKind.TOPUP, [Leg(cash("bank"), money(amount)),
                                             Leg(project_wallet("p"), -money(amount))], at,
                             refs={"owner": "project:p"})


def test_balanced_transaction_posts():
    ledger = Ledger()
    txn = ledger.post(topup())
    assert ledger.credit_balance(project_wallet("p"), "CNY") == money("10")
    assert ledger.balance(cash("bank"), "CNY") == money("10")
    assert {p.transaction_id for p in txn.postings} == {txn.id}
    assert txn.postings[0].ref("owner") == "project:p"


def test_unbalanced_transaction_cannot_be_built():
    with pytest.raises(InvalidRequest, match="unbalanced"):
        Transaction.build(TxnKind.TOPUP, [Leg(cash("bank"), money("10")),
                                          Leg(project_wallet("p"), -money("9.99"))], T0)


def test_unbalanced_transaction_cannot_be_constructed_directly():
    p1 = Posting("a", "t", "cash:bank", Decimal("1.00"), "CNY", T0)
    p2 = Posting("b", "t", "wallet:project:p", Decimal("-0.99"), "CNY", T0)
    with pytest.raises(InvalidRequest):
        Transaction("t", TxnKind.TOPUP, T0, (p1, p2))


def test_each_currency_must_balance_separately():
    with pytest.raises(InvalidRequest, match="USD"):
        # the raw numbers sum to zero, but CNY and USD each do not
        Transaction.build(TxnKind.ADJUSTMENT, [
            Leg(cash("bank"), money("1")), Leg(project_wallet("p"), -money("1", "USD"))], T0)


def test_single_or_empty_transactions_refused():
    with pytest.raises(InvalidRequest):
        Transaction.build(TxnKind.TOPUP, [Leg(cash("bank"), money("0"))], T0)


def test_postings_are_immutable_and_cents_only():
    txn = topup()
    with pytest.raises(AttributeError):
        txn.postings[0].amount = Decimal(5)
    with pytest.raises(InvalidRequest):
        Posting("a", "t", "cash:bank", Decimal("1.001"), "CNY", T0)
    with pytest.raises(InvalidRequest):
        Posting("a", "t", "nonsense", Decimal("1"), "CNY", T0)


def test_posting_of_another_transaction_refused():
    good = topup()
    with pytest.raises(InvalidRequest):
        Transaction("other", TxnKind.TOPUP, T0, good.postings)


def test_ledger_is_append_only_and_ordered():
    ledger = Ledger()
    txn = ledger.post(topup(at=T0 + timedelta(hours=1)))
    with pytest.raises(Conflict):
        ledger.post(txn)
    with pytest.raises(InvalidRequest):
        ledger.post(topup(at=T0))
    assert len(ledger) == 1


def test_balance_before_instant():
    ledger = Ledger()
    ledger.post(topup("5", T0))
    ledger.post(topup("7", T0 + timedelta(days=1)))
    w = project_wallet("p")
    assert ledger.credit_balance(w, "CNY", before=T0) == money("0")
    assert ledger.credit_balance(w, "CNY", before=T0 + timedelta(days=1)) == money("5")
    assert ledger.credit_balance(w, "CNY") == money("12")


def test_account_codes_round_trip():
    for acct in (project_wallet("p-1"), revenue("gpu"), Account(AccountKind.CASH, "a:b")):
        assert Account.parse(acct.code) == acct
    with pytest.raises(InvalidRequest):
        Account.parse("bogus:x")
    with pytest.raises(InvalidRequest):
        Account.parse("wallet")


cents = st.integers(min_value=-10**8, max_value=10**8).filter(bool)


@given(st.lists(st.lists(cents, min_size=1, max_size=5), min_size=1, max_size=20))
def test_every_posting_set_balances(batches):
    """Any legs, closed by a balancing leg, make a transaction whose postings sum to 0."""
    ledger = Ledger()
    accounts = [project_wallet("a"), project_wallet("b"), revenue("cpu"), cash("bank")]
    for i, batch in enumerate(batches):
        legs = [Leg(accounts[j % 4], Money(Decimal(c) * CENT, "CNY"))
                for j, c in enumerate(batch)]
        rest = -sum((leg.amount.amount for leg in legs), Decimal(0))
        legs.append(Leg(cash("clearing"), Money(rest, "CNY")))
        if sum(1 for leg in legs if not leg.amount.is_zero) < 2:
            continue
        txn = ledger.post(Transaction.build(TxnKind.ADJUSTMENT, legs,
                                            T0 + timedelta(seconds=i)))
        assert sum(p.amount for p in txn.postings) == 0
    assert all(v == 0 for v in ledger.trial_balance().values())
    assert sum((ledger.balance(a, "CNY").amount for a in ledger.accounts()),
               Decimal(0)) == 0
