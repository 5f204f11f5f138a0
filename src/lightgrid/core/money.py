"""Money: `Decimal` amounts in a currency, built through one constructor.

Rules (see docs/billing.md):

* Amounts are `Decimal`, never `float`. `money()` / `Money.of()` are the only ways in;
  both refuse floats, booleans, NaN and infinities.
* A `Money` amount is always exact to the cent (``0.01``): it is what the ledger posts.
  An input with more places is refused, not silently rounded.
* Rate arithmetic (unit rate x quantity x hours, discounts) runs on plain `Decimal`
  in `RATE_CONTEXT` (34 significant digits), and the result is rounded once, half-up
  to the cent, by `round_charge()` at the point of posting.
"""

from __future__ import annotations

import decimal
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from lightgrid.core.errors import InvalidRequest

#: The posting precision: every ledger amount is a whole number of cents.
CENT = Decimal("0.01")
#: Context for rate arithmetic; 34 digits (IEEE decimal128) leaves far more than enough
#: room below the cent for any realistic job size.
RATE_CONTEXT = decimal.Context(prec=34, rounding=ROUND_HALF_UP,
                               traps=[decimal.InvalidOperation, decimal.DivisionByZero,
                                      decimal.Overflow])
DEFAULT_CURRENCY = "CNY"


def to_decimal(value: object, *, field: str = "amount") -> Decimal:
    """An exact `Decimal` from a `str`, `int` or `Decimal`; floats and booleans are refused.

    Floats carry binary rounding error (``0.1 + 0.2``), so they never become money or
    rates; pass the decimal text instead.
    """
    if isinstance(value, bool | float):
        raise InvalidRequest(f"{field}: give a decimal string, not {type(value).__name__} "
                             f"{value!r}", field=field)
    if isinstance(value, Decimal):
        out = value
    elif isinstance(value, int):
        out = Decimal(value)
    elif isinstance(value, str):
        try:
            out = Decimal(value.strip())
        except decimal.InvalidOperation:
            raise InvalidRequest(f"{field}: {value!r} is not a decimal number",
                                 field=field) from None
    else:
        raise InvalidRequest(f"{field}: expected a decimal string, got "
                             f"{type(value).__name__}", field=field)
    if not out.is_finite():
        raise InvalidRequest(f"{field}: {value!r} is not a finite number", field=field)
    return out


def check_currency(code: str) -> str:
    """Validate an ISO 4217-style code: three upper-case letters."""
    if not (isinstance(code, str) and len(code) == 3 and code.isalpha() and code.isupper()):
        raise InvalidRequest(f"currency {code!r} must be three upper-case letters",
                             field="currency")
    return code


def round_charge(value: Decimal) -> Decimal:
    """Round a rate-arithmetic result half-up to the cent (``2.345 -> 2.35``)."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP, context=RATE_CONTEXT)


@dataclass(frozen=True, slots=True, order=False)
class Money:
    """An amount exact to the cent, in one currency. Build it with `Money.of` or `money`."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        # Every construction path (including the dataclass one) goes through this check,
        # so no Money with a float or a sub-cent amount can exist.
        amount = to_decimal(self.amount)
        check_currency(self.currency)
        if amount != amount.quantize(CENT, context=RATE_CONTEXT):
            raise InvalidRequest(f"amount {amount} has more than two decimal places; "
                                 "round it with round_charge() first", field="amount")
        object.__setattr__(self, "amount", amount.quantize(CENT, context=RATE_CONTEXT))

    @classmethod
    def of(cls, value: object, currency: str = DEFAULT_CURRENCY) -> Money:
        """The one constructor: ``Money.of("12.30", "CNY")``; floats are refused."""
        return cls(to_decimal(value), currency)

    @classmethod
    def zero(cls, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(Decimal(0), currency)

    @classmethod
    def rounded(cls, value: Decimal, currency: str = DEFAULT_CURRENCY) -> Money:
        """Round a rate-arithmetic `Decimal` half-up to the cent and wrap it."""
        return cls(round_charge(to_decimal(value)), currency)

    def _same(self, other: object) -> Money:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise InvalidRequest(f"cannot combine {self.currency} with {other.currency}",
                                 field="currency")
        return other

    def __add__(self, other: Money) -> Money:
        return Money(self.amount + self._same(other).amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        return Money(self.amount - self._same(other).amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __abs__(self) -> Money:
        return Money(abs(self.amount), self.currency)

    def __lt__(self, other: Money) -> bool:
        return self.amount < self._same(other).amount

    def __le__(self, other: Money) -> bool:
        return self.amount <= self._same(other).amount

    def __gt__(self, other: Money) -> bool:
        return self.amount > self._same(other).amount

    def __ge__(self, other: Money) -> bool:
        return self.amount >= self._same(other).amount

    @property
    def is_zero(self) -> bool:
        return self.amount == 0

    @property
    def is_positive(self) -> bool:
        return self.amount > 0

    @property
    def is_negative(self) -> bool:
        return self.amount < 0

    def __str__(self) -> str:
        return f"{self.amount:.2f} {self.currency}"


def money(value: object, currency: str = DEFAULT_CURRENCY) -> Money:
    """Shorthand for `Money.of`."""
    return Money.of(value, currency)


def total(values: Iterable[Money], currency: str) -> Money:
    """The sum of `values` (all in `currency`); zero when empty."""
    out = Money.zero(currency)
    for value in values:
        out = out + value
    return out


def allocate(amount: Money, weights: Sequence[Decimal]) -> list[Money]:
    """Split `amount` over `weights` in cents, summing exactly to `amount`.

    Largest-remainder: each share is floored to the cent and the leftover cents go to
    the largest remainders (ties to the earlier weight), so the split is deterministic.
    With all weights zero, everything goes to the first share.
    """
    if not weights:
        raise InvalidRequest("allocate needs at least one weight", field="weights")
    if any(w < 0 for w in weights):
        raise InvalidRequest("allocation weights must not be negative", field="weights")
    cents = int((amount.amount / CENT).to_integral_value())
    sign = -1 if cents < 0 else 1
    cents = abs(cents)
    weight_sum = sum(weights, Decimal(0))
    if weight_sum == 0:
        shares = [cents] + [0] * (len(weights) - 1)
    else:
        exact = [RATE_CONTEXT.divide(RATE_CONTEXT.multiply(Decimal(cents), w), weight_sum)
                 for w in weights]
        shares = [int(e.to_integral_value(rounding=decimal.ROUND_FLOOR)) for e in exact]
        leftover = cents - sum(shares)
        order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
        for i in order[:leftover]:
            shares[i] += 1
    return [Money(Decimal(sign * s) * CENT, amount.currency) for s in shares]
