"""Rating usage records in integers, with exactly the cents `price()` and `allocate()`
give, for the bulk ingestor.

A job shape's billed line amounts are its per-hour rates times seconds / 3600, so its
exact charge before rounding is ``c x seconds`` cents for a rational ``c`` fixed by the
shape (rates, discount). `price()` computes the same value in Decimal (34 digits, the
sums in the default context's 28), which stays within 3e-27 of the gross amount of the
exact one. Rounding half-up to the cent therefore gives the same cents unless the exact
value lies within that distance of a half cent; `ShapeRate` checks, in integers, that it
is at least 1e-20 of the gross (plus a cent) away, and otherwise takes the Decimal path.
The revenue split is the same: each line's exact share is ``cents x rate_i / sum of
rates``, and largest-remainder allocation agrees with the Decimal one unless a share is
within the margin of a whole cent or two remainders are within it of each other.
"""

from __future__ import annotations

import decimal
from collections.abc import Sequence
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction
from itertools import pairwise
from math import lcm

from lightgrid.core.money import RATE_CONTEXT
from lightgrid.core.pricing import HourlyRate, Resource

_ZERO = Decimal(0)
_MARGIN = 10 ** 20  # 1 / the relative margin kept from a rounding boundary

#: (resource, cents) per billed line, summing to the amount
Shares = tuple[tuple[Resource, int], ...]


def split_cents(cents: int, weights: Sequence[Decimal]) -> list[int]:
    """`lightgrid.core.money.allocate` on whole cents (same arithmetic, same result).

    Largest remainder: shares floored to the cent, leftover cents to the largest
    remainders, ties to the earlier weight; all weights zero puts it all on the first.
    """
    if len(weights) == 1:
        return [cents]
    sign = -1 if cents < 0 else 1
    cents = abs(cents)
    weight_sum = sum(weights, _ZERO)
    if weight_sum == 0:
        return [sign * cents] + [0] * (len(weights) - 1)
    whole = Decimal(cents)
    exact = [RATE_CONTEXT.divide(RATE_CONTEXT.multiply(whole, w), weight_sum)
             for w in weights]
    shares = [int(e.to_integral_value(rounding=ROUND_FLOOR)) for e in exact]
    leftover = cents - sum(shares)
    if leftover:
        order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
        for i in order[:leftover]:
            shares[i] += 1
    return [sign * s for s in shares]


def micro_hours(units: int, seconds: int) -> int:
    """``limits.hours(units x seconds / 3600)`` in millionths of an hour, exactly.

    The exact value is a multiple of 1/9 micro-hour, never half-way, so rounding it to
    the nearest is what the Decimal path (34 digits, then half-even) gives.
    """
    return (units * seconds * 5000 + 9) // 18


class ShapeRate:
    """An `HourlyRate` rated in integers: `split(seconds)` is ``(cents, shares)``."""

    __slots__ = ("_den", "_den2", "_least", "_none", "_num2", "_pair", "_parts", "_quiet",
                 "_quiet_cents", "_single", "_total", "rate", "resources")

    def __init__(self, rate: HourlyRate) -> None:
        self.rate = rate
        self.resources: tuple[Resource, ...] = ()
        self._parts: tuple[int, ...] = ()
        self._num2 = self._den = self._den2 = self._least = self._total = 0
        self._quiet = self._quiet_cents = 0  # 0: always the Decimal path
        self._single: Resource | None = None
        self._pair: tuple[int, int] | None = None
        self._none: tuple[tuple[Resource, int], ...] = ()
        fixed = rate.billed
        least = Fraction(rate.minimum_charge) * 100
        # the error bound assumes at least the default context's 28 digits for the sums
        if fixed is None or least.denominator != 1 or decimal.getcontext().prec < 28:
            return
        self.resources = tuple(rate.resources[i] for i in fixed)
        per_hour = [Fraction(rate.per_hour[i]) for i in fixed]
        gross = sum(per_hour, Fraction(0)) / 36  # cents per second
        net = gross * (1 - Fraction(rate.discount_rate))
        self._num2, self._den = 2 * net.numerator, net.denominator
        self._den2 = 2 * net.denominator
        self._least = int(least)
        # Below `_quiet` seconds the margin in units of the remainder, den2 x (gross
        # cents + 2) / 10**20, is under one, so any non-zero remainder is far enough.
        room = _MARGIN - 2 * self._den2
        if room > 0:
            self._quiet = int(room / (self._den2 * gross)) - 1 if gross else 10 ** 12
        scale = lcm(*(p.denominator for p in per_hour)) if per_hour else 1
        self._parts = tuple(int(p * scale) for p in per_hour)
        self._total = sum(self._parts)
        # up to `_quiet_cents` the split's margin is below one remainder unit too
        self._quiet_cents = _MARGIN // self._total - 2 if self._total else 0
        if len(self.resources) == 1:
            self._single = self.resources[0]
        rated = [i for i, part in enumerate(self._parts) if part]
        if len(rated) == 2:
            self._pair = (rated[0], rated[1])
        self._none = tuple((r, 0) for r in self.resources)

    def split(self, seconds: int) -> tuple[int, Shares]:
        """The amount in cents for `seconds` and its split over the billed lines."""
        if 0 < seconds <= self._quiet:
            cents, rest = divmod(self._num2 * seconds + self._den, self._den2)  # half-up
            if rest:  # not exactly half a cent: the Decimal amount rounds the same way
                if cents < self._least:  # the minimum (whole cents) wins
                    cents = self._least
                if self._single is not None:
                    return cents, ((self._single, cents),)
                shares = self._shares(cents)
                if shares is not None:
                    return cents, shares
        cents, resources, amounts = self.rate.cents(seconds)
        return cents, tuple(zip(resources, split_cents(cents, amounts) if amounts else (),
                                strict=True))

    def _shares(self, cents: int) -> Shares | None:
        """Largest remainder on the exact shares; None when too close to call.

        A share that is exactly whole stays whole on the Decimal path too: a tiny error
        below it floors one cent lower with a remainder of almost one, and that
        remainder wins back the cent before any fractional one.
        """
        parts, total = self._parts, self._total
        if total == 0 or cents <= 0:
            return None
        margin = 0 if cents <= self._quiet_cents else total * (cents + 1) // _MARGIN
        pair = self._pair
        if pair is not None:  # two billed lines with a rate (the rest have none)
            i, j = pair
            floor, rest = divmod(cents * parts[i], total)
            if rest:  # the other remainder is total - rest; one cent left over
                if not margin < rest < total - margin or abs(2 * rest - total) <= margin:
                    return None
                if 2 * rest > total:
                    floor += 1
            shares = list(self._none)
            shares[i] = (self.resources[i], floor)
            shares[j] = (self.resources[j], cents - floor)
            return tuple(shares)
        floors = []
        remainders = []
        for part in parts:
            floor, rest = divmod(cents * part, total)
            if rest and not margin < rest < total - margin:
                return None
            floors.append(floor)
            remainders.append(rest)
        ranked = sorted(range(len(parts)), key=lambda i: (-remainders[i], i))
        for a, b in pairwise(ranked):
            if remainders[b] and remainders[a] - remainders[b] <= margin:
                return None
        for i in ranked[:cents - sum(floors)]:
            floors[i] += 1
        return tuple(zip(self.resources, floors, strict=True))
