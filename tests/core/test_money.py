from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightgrid.core.errors import InvalidRequest
from lightgrid.core.money import CENT, Money, allocate, money, round_charge, to_decimal, total


def test_constructor_accepts_text_int_decimal():
    assert money("12.3") == Money.of(Decimal("12.30"), "CNY")
    assert money(5).amount == Decimal("5.00")
    assert str(money("12.3")) == "12.30 CNY"
    assert money("1", "USD").currency == "USD"


@pytest.mark.parametrize("bad", [0.1, 1.0, True, "abc", "NaN", "Infinity", None, [1]])
def test_constructor_refuses_floats_and_junk(bad):
    with pytest.raises(InvalidRequest):
        money(bad)


def test_dataclass_path_is_checked_too():
    with pytest.raises(InvalidRequest):
        Money(0.5, "CNY")
    with pytest.raises(InvalidRequest):
        Money(Decimal("1.005"), "CNY")
    with pytest.raises(InvalidRequest):
        Money(Decimal("1"), "cny")


def test_sub_cent_refused_not_rounded():
    with pytest.raises(InvalidRequest, match="round_charge"):
        money("0.001")


@pytest.mark.parametrize(("raw", "expected"), [
    ("2.345", "2.35"), ("2.344999", "2.34"), ("0.005", "0.01"), ("0.004999", "0.00"),
    ("-2.345", "-2.35"), ("10", "10.00"), ("1.125", "1.13"),
])
def test_round_charge_is_half_up_to_the_cent(raw, expected):
    assert round_charge(Decimal(raw)) == Decimal(expected)
    assert Money.rounded(Decimal(raw)).amount == Decimal(expected)


def test_currency_mismatch_refused():
    with pytest.raises(InvalidRequest):
        money("1") + money("1", "USD")
    with pytest.raises(InvalidRequest):
        _ = money("1") < money("1", "USD")


def test_arithmetic_and_total():
    a, b = money("10.10"), money("0.20")
    assert a + b == money("10.30")
    assert a - b == money("9.90")
    assert -a == money("-10.10")
    assert total([a, b, b], "CNY") == money("10.50")
    assert total([], "CNY").is_zero


def test_to_decimal_field_name_in_error():
    with pytest.raises(InvalidRequest) as err:
        to_decimal(0.3, field="rate")
    assert err.value.field == "rate"


@given(st.integers(min_value=-10**9, max_value=10**9),
       st.lists(st.decimals(min_value=0, max_value=1000, places=4), min_size=1, max_size=8))
def test_allocate_sums_exactly(cents, weights):
    amount = Money(Decimal(cents) * CENT, "CNY")
    shares = allocate(amount, weights)
    assert len(shares) == len(weights)
    assert total(shares, "CNY") == amount
    if sum(weights) > 0:
        for w, s in zip(weights, shares, strict=True):
            if w == 0:
                assert s.is_zero


def test_allocate_is_deterministic_on_ties():
    assert [s.amount for s in allocate(money("0.01"), [Decimal(1), Decimal(1)])] == \
        [Decimal("0.01"), Decimal("0.00")]
    assert [s.amount for s in allocate(money("1.00"), [Decimal(1)] * 3)] == \
        [Decimal("0.34"), Decimal("0.33"), Decimal("0.33")]
