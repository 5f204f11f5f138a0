"""The bulk ingestor's arithmetic against the core: per-hour rates and the integer
rating vs `price()`, cent splitting vs `allocate()`, hours, ids, JSON refs and the
binary COPY encoding. Pure, no database."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightgrid.center.billing import bulk, limits
from lightgrid.center.billing.bulk import _id_fields, _json, _Place, new_ids
from lightgrid.center.billing.rating import ShapeRate, micro_hours, split_cents
from lightgrid.core.ids import new_id
from lightgrid.core.money import RATE_CONTEXT, Money, allocate
from lightgrid.core.pricing import (
    Contract,
    Customer,
    Fallback,
    FallbackMode,
    HourlyRate,
    JobShape,
    PriceBookVersion,
    Quote,
    RateCache,
    RateCard,
    Resource,
    Strategy,
    Tier,
    Unpriced,
    hourly_rate,
    price,
)
from lightgrid.core.resources import Tres

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PARTITIONS = ("cpu", "gpu", "big")
MODELS = ("a100", "v100", "*")


@st.composite
def rates(draw: st.DrawFn, top: int = 10**6) -> Decimal:
    """Non-negative rates with up to 8 places (zero is common)."""
    return Decimal(draw(st.integers(0, top))).scaleb(-draw(st.integers(0, 8)))


@st.composite
def cards(draw: st.DrawFn, partition: str, qos: str | None) -> RateCard:
    models = draw(st.lists(st.sampled_from(MODELS), unique=True, max_size=3))
    return RateCard(partition, qos, cpu=draw(rates()), mem=draw(rates()),
                    node=draw(rates()), gpu=tuple((m, draw(rates())) for m in models),
                    strategy=draw(st.sampled_from(Strategy)),
                    max_of=frozenset(draw(st.sets(st.sampled_from(Resource)))))


@st.composite
def card_sets(draw: st.DrawFn) -> tuple[RateCard, ...]:
    keys = draw(st.lists(st.tuples(st.sampled_from(PARTITIONS),
                                   st.sampled_from((None, "high"))), unique=True,
                         max_size=5))
    return tuple(draw(cards(p, q)) for p, q in keys)


fractions = st.integers(0, 10**4).map(lambda n: Decimal(n).scaleb(-4))


@st.composite
def versions(draw: st.DrawFn) -> PriceBookVersion:
    fallback = Fallback()
    if draw(st.booleans()):
        fallback = Fallback(FallbackMode.RATE, draw(cards("*", None)))
    tiers = draw(st.lists(st.tuples(st.sampled_from(Tier), fractions),
                          unique_by=lambda t: t[0]))
    return PriceBookVersion(
        draw(st.integers(1, 5)), T0, draw(card_sets()), fallback=fallback,
        tier_discounts=tuple(tiers),
        minimum_charge=Decimal(draw(st.integers(0, 500))).scaleb(-2))


@st.composite
def customers(draw: st.DrawFn) -> Customer:
    contracts = []
    for i in range(draw(st.integers(0, 3))):
        start = T0 + timedelta(days=draw(st.integers(0, 60)))
        until = (start + timedelta(days=draw(st.integers(1, 60)))
                 if draw(st.booleans()) else None)
        contracts.append(Contract(f"c{i}", "org", start, until, draw(card_sets()),
                                  draw(st.none() | fractions)))
    return Customer("org", draw(st.none() | st.sampled_from(Tier)), tuple(contracts))


shapes = st.builds(
    lambda partition, qos, cpu, mem, gpu, node, gpu_type: (
        partition, qos, Tres(cpu, mem, gpu, node), gpu_type),
    st.sampled_from((*PARTITIONS, "other")), st.sampled_from((None, "high", "low")),
    st.integers(0, 256), st.integers(0, 4 * 1024 * 1024), st.integers(0, 8),
    st.integers(0, 4), st.sampled_from((None, "a100", "v100", "h100")))


@settings(max_examples=600, deadline=None)
@given(versions(), customers(), st.lists(shapes, min_size=1, max_size=4),
       st.lists(st.integers(0, 40 * 86400) | st.sampled_from((0, 1, 3600)),
                min_size=1, max_size=6),
       st.integers(0, 120))
def test_cached_rate_equals_price(version: PriceBookVersion, customer: Customer,
                                  shape_list: list[tuple[str, str | None, Tres, str | None]],
                                  seconds_list: list[int], day: int) -> None:
    cache = RateCache()
    at = T0 + timedelta(days=day, seconds=17)
    for partition, qos, tres, gpu_type in shape_list:
        for seconds in seconds_list:  # the first call fills the cache, the rest reuse it
            rate = cache.rate(version, customer, at, partition, tres, qos, gpu_type)
            quote = price(version, JobShape(partition, tres, seconds, qos, gpu_type),
                          customer, at=at)
            if isinstance(quote, Unpriced):
                assert isinstance(rate, Unpriced) and rate.reason == quote.reason
                continue
            assert isinstance(quote, Quote) and not isinstance(rate, Unpriced)
            amount, weights = rate.charge(seconds)
            assert amount == quote.amount.amount
            assert weights == quote.billed_weights()
            cents, resources, amounts = rate.cents(seconds)  # only the billed lines
            assert (cents, list(zip(resources, amounts, strict=True))) == (
                int(amount.scaleb(2)), weights)
            assert (rate.source, rate.contract_id, rate.price_version) == (
                quote.source, quote.contract_id, quote.price_version)
    assert len(cache) <= len(shape_list)


def expected_split(quote: Quote) -> tuple[int, tuple[tuple[Resource, int], ...]]:
    """The finish hook's numbers: the quote in cents and `allocate()` over its lines."""
    cents = int(quote.amount.amount.scaleb(2))
    weights = quote.billed_weights()
    if not weights:
        return cents, ()
    shares = allocate(quote.amount, [w for _, w in weights])
    return cents, tuple((r, int(m.amount.scaleb(2)))
                        for (r, _), m in zip(weights, shares, strict=True))


@settings(max_examples=600, deadline=None)
@given(versions(), customers(), st.lists(shapes, min_size=1, max_size=4),
       st.lists(st.integers(0, 40 * 86400) | st.sampled_from((0, 1, 36, 3600, 7200)),
                min_size=1, max_size=6),
       st.integers(0, 120))
def test_integer_rating_equals_price_and_allocate(
        version: PriceBookVersion, customer: Customer,
        shape_list: list[tuple[str, str | None, Tres, str | None]],
        seconds_list: list[int], day: int) -> None:
    at = T0 + timedelta(days=day, seconds=17)
    for partition, qos, tres, gpu_type in shape_list:
        rate = hourly_rate(version, JobShape(partition, tres, 3600, qos, gpu_type),
                           customer, at)
        if isinstance(rate, Unpriced):
            continue
        exact = ShapeRate(rate)
        for seconds in seconds_list:
            quote = price(version, JobShape(partition, tres, seconds, qos, gpu_type),
                          customer, at=at)
            assert isinstance(quote, Quote)
            assert exact.split(seconds) == expected_split(quote)


# Round rates, whole hours and equal or proportional lines: exact half cents, whole
# shares and tied remainders, where the integer path must defer to Decimal.
round_rates = st.sampled_from(("0", "0.005", "0.01", "0.0125", "0.05", "0.125", "1",
                               "0.333", "2.5")).map(Decimal)


@settings(max_examples=600, deadline=None)
@given(round_rates, round_rates, round_rates, st.sampled_from(Strategy),
       st.sampled_from((Decimal(0), Decimal("0.5"), Decimal("0.2"), Decimal("0.15"))),
       st.sampled_from((Decimal(0), Decimal("0.01"), Decimal("0.05"), Decimal("1.00"))),
       st.integers(0, 64), st.sampled_from((0, 512, 1024, 1536, 4096)), st.integers(0, 8),
       st.integers(1, 20) | st.integers(1, 200).map(lambda h: h * 36)
       | st.integers(1, 100).map(lambda h: h * 3600))
def test_integer_rating_on_ties(cpu: Decimal, mem: Decimal, gpu: Decimal,
                                strategy: Strategy, discount: Decimal, minimum: Decimal,
                                cores: int, mem_mb: int, gpus: int, seconds: int) -> None:
    card = RateCard("p", cpu=cpu, mem=mem, gpu=(("*", gpu),), strategy=strategy)
    version = PriceBookVersion(1, T0, (card,), minimum_charge=minimum,
                               tier_discounts=((Tier.ACADEMIC, discount),))
    customer = Customer("org", Tier.ACADEMIC)
    tres = Tres(cores, mem_mb, gpus, 0)
    rate = hourly_rate(version, JobShape("p", tres, 3600), customer, T0)
    quote = price(version, JobShape("p", tres, seconds), customer, at=T0)
    assert isinstance(rate, HourlyRate) and isinstance(quote, Quote)
    assert ShapeRate(rate).split(seconds) == expected_split(quote)


@given(st.integers(0, 10**4), st.integers(0, 10**8))
def test_micro_hours_equals_the_decimal_hours(units: int, seconds: int) -> None:
    hours = RATE_CONTEXT.multiply(Decimal(units), RATE_CONTEXT.divide(
        Decimal(seconds), Decimal(3600)))
    assert micro_hours(units, seconds) == int(limits.hours(hours).scaleb(6))


def test_cached_rate_follows_the_contract_in_force() -> None:
    card = RateCard("cpu", cpu=Decimal("1.00"))
    version = PriceBookVersion(1, T0, (card,), tier_discounts=((Tier.ACADEMIC,
                                                                Decimal("0.5")),))
    deal = Contract("deal", "org", T0 + timedelta(days=10), T0 + timedelta(days=20),
                    (RateCard("cpu", cpu=Decimal("0.30")),))
    customer = Customer("org", Tier.ACADEMIC, (deal,))
    cache = RateCache()
    tres = Tres(cpu=2)
    amounts = []
    for day in (1, 12, 25, 12):
        rate = cache.rate(version, customer, T0 + timedelta(days=day), "cpu", tres)
        assert not isinstance(rate, Unpriced)
        amounts.append(rate.charge(3600)[0])
    assert amounts == [Decimal("1.00"), Decimal("0.60"), Decimal("1.00"), Decimal("0.60")]
    assert len(cache) == 2


@settings(max_examples=1000, deadline=None)
@given(st.integers(1, 10**9),
       st.lists(st.integers(0, 10**12).map(lambda n: Decimal(n).scaleb(-9))
                | st.just(Decimal(0)), min_size=1, max_size=5))
def test_split_cents_equals_allocate(cents: int, weights: list[Decimal]) -> None:
    expected = allocate(Money(Decimal(cents).scaleb(-2), "CNY"), weights)
    assert split_cents(cents, weights) == [int(m.amount.scaleb(2)) for m in expected]


def test_new_ids_are_uuid7_unique_and_ordered() -> None:
    before = new_id()
    ids = new_ids(5000)
    fields = _id_fields(3)
    after = new_id()
    assert [f[:4] for f in fields] == [b"\x00\x00\x00$"] * 3
    ids += [f[4:].decode() for f in fields]
    assert len(set(ids)) == 5003
    assert [before, *ids, after] == sorted([before, *ids, after])
    for value in (ids[0], ids[-1]):
        parsed = uuid.UUID(value)
        assert str(parsed) == value and parsed.version == 7 and parsed.variant == uuid.RFC_4122


@pytest.mark.parametrize("low", [(1 << 48) - 3, (1 << 62) - 3])
def test_new_ids_across_a_wrap(monkeypatch: pytest.MonkeyPatch, low: int) -> None:
    """Counting past the last group's 12 digits changes the group before it; past the
    random field, each id comes from uuid7 itself."""
    first = uuid.UUID(new_id()).int & ~((1 << 62) - 1) | low
    monkeypatch.setattr(bulk, "uuid7", lambda: uuid.UUID(int=first))
    ids = bulk.new_ids(6)
    if low < 1 << 48:
        assert ids == [str(uuid.UUID(int=first + i)) for i in range(6)]
    assert len(set(ids)) == 6 and all(uuid.UUID(i).version == 7 for i in ids)


@given(st.text(min_size=1), st.text(), st.none() | st.text(), st.text(min_size=1))
def test_refs_is_json_dumps(project: str, key: str, user: str | None,
                            partition: str) -> None:
    place = _Place(project, "org", partition, "CNY", T0)
    assert place.refs(key, _json(user)) == json.dumps(
        {"project": project, "key": key, "user": user, "partition": partition})
