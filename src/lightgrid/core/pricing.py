"""Price books, rate cards, customer tiers, contracts and the job price calculation.

A center's `PriceBook` is a sequence of `PriceBookVersion`s, each in force from its
`effective_from` instant until the next one; adding a version never changes an
earlier one, so a job is always priced by the version in force when it started.

`price()` turns a job shape (partition, QOS, TRES, GPU model, seconds) into a `Quote`
with a per-resource breakdown, or `Unpriced` when nothing matches and the book's
fallback says the job must go to review. The rules are in docs/billing.md.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

from lightgrid.core.errors import InvalidRequest, NotFound
from lightgrid.core.jobs import JobState
from lightgrid.core.money import CENT as _CENT
from lightgrid.core.money import RATE_CONTEXT, Money, check_currency, to_decimal
from lightgrid.core.resources import Tres

_ZERO = Decimal(0)
_ONE = Decimal(1)
_SECONDS_PER_HOUR = Decimal(3600)
_MIB_PER_GB = Decimal(1024)


class Tier(enum.StrEnum):
    """Customer tiers; each price book version may give each a discount."""

    ACADEMIC = "academic"
    GOVERNMENT = "government"
    ENTERPRISE = "enterprise"


class Resource(enum.StrEnum):
    """Priced resources, each charged per unit-hour."""

    CPU = "cpu"
    MEM = "mem"
    GPU = "gpu"
    NODE = "node"


#: The unit each resource's rate is quoted in.
UNITS: dict[Resource, str] = {Resource.CPU: "core-hour", Resource.MEM: "GB-hour",
                              Resource.GPU: "card-hour", Resource.NODE: "node-hour"}


class Strategy(enum.StrEnum):
    """How resource amounts combine into a job's amount.

    SUM adds every resource (Slurm's TRESBillingWeights). MAX takes the largest of
    the resources in the card's `max_of` group and adds the others, which with
    ``cpu`` and ``mem`` priced per core-equivalent gives ``max(cores, mem / mem_per_core)``.
    """

    SUM = "sum"
    MAX = "max"


class FallbackMode(enum.StrEnum):
    """What happens to a job no rate card prices: charge a declared rate, or review."""

    RATE = "rate"
    REVIEW = "review"


class PriceSource(enum.StrEnum):
    BOOK = "book"
    CONTRACT = "contract"
    FALLBACK = "fallback"


def _rate(value: object, name: str) -> Decimal:
    out = to_decimal(value, field=name)
    if out < 0:
        raise InvalidRequest(f"{name} must not be negative", field=name)
    return out


def _fraction(value: object, name: str) -> Decimal:
    out = to_decimal(value, field=name)
    if not _ZERO <= out <= _ONE:
        raise InvalidRequest(f"{name} must be between 0 and 1", field=name)
    return out


def _aware(at: datetime, name: str = "at") -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise InvalidRequest(f"{name} must be a timezone-aware datetime", field=name)
    return at


@dataclass(frozen=True, slots=True)
class RateCard:
    """Unit-hour rates for one partition, optionally only for one QOS.

    `gpu` maps GPU models to card-hour rates; the model ``"*"`` prices any model not
    listed. Rates are `Decimal` with any number of places; only totals are rounded.
    """

    partition: str
    qos: str | None = None
    cpu: Decimal = _ZERO
    mem: Decimal = _ZERO
    node: Decimal = _ZERO
    gpu: tuple[tuple[str, Decimal], ...] = ()
    strategy: Strategy = Strategy.SUM
    max_of: frozenset[Resource] = frozenset({Resource.CPU, Resource.MEM})

    def __post_init__(self) -> None:
        if not self.partition:
            raise InvalidRequest("a rate card needs a partition", field="partition")
        for name in ("cpu", "mem", "node"):
            object.__setattr__(self, name, _rate(getattr(self, name), name))
        gpus = tuple((str(model), _rate(rate, f"gpu[{model}]")) for model, rate in self.gpu)
        if len({m for m, _ in gpus}) != len(gpus):
            raise InvalidRequest("a GPU model is listed twice", field="gpu")
        object.__setattr__(self, "gpu", gpus)
        object.__setattr__(self, "strategy", Strategy(self.strategy))
        object.__setattr__(self, "max_of", frozenset(Resource(r) for r in self.max_of))

    def gpu_rate(self, model: str | None) -> Decimal | None:
        """The card-hour rate for `model` (or the ``"*"`` rate); None if unpriced."""
        rates = dict(self.gpu)
        if model is not None and model in rates:
            return rates[model]
        return rates.get("*")

    def rate(self, resource: Resource, gpu_model: str | None = None) -> Decimal | None:
        if resource is Resource.GPU:
            return self.gpu_rate(gpu_model)
        return {Resource.CPU: self.cpu, Resource.MEM: self.mem,
                Resource.NODE: self.node}[resource]


@dataclass(frozen=True, slots=True)
class Fallback:
    """The declared treatment of jobs that no rate card prices."""

    mode: FallbackMode = FallbackMode.REVIEW
    card: RateCard | None = None

    def __post_init__(self) -> None:
        if self.mode is FallbackMode.RATE and self.card is None:
            raise InvalidRequest("a RATE fallback needs a rate card", field="fallback")


@dataclass(frozen=True, slots=True)
class PriceBookVersion:
    """One immutable version of a center's prices, in force from `effective_from`."""

    version: int
    effective_from: datetime
    cards: tuple[RateCard, ...]
    currency: str = "CNY"
    fallback: Fallback = field(default_factory=Fallback)
    tier_discounts: tuple[tuple[Tier, Decimal], ...] = ()
    minimum_charge: Decimal = _ZERO
    #: End states charged nothing: a node failure is the center's fault, not the user's.
    waived_states: frozenset[JobState] = frozenset({JobState.NODE_FAIL})
    note: str = ""

    def __post_init__(self) -> None:
        _aware(self.effective_from, "effective_from")
        check_currency(self.currency)
        if self.version < 1:
            raise InvalidRequest("version numbers start at 1", field="version")
        keys = [(c.partition, c.qos) for c in self.cards]
        if len(set(keys)) != len(keys):
            raise InvalidRequest("two rate cards for the same partition and QOS",
                                 field="cards")
        discounts = tuple((Tier(t), _fraction(d, f"discount[{t}]"))
                          for t, d in self.tier_discounts)
        object.__setattr__(self, "tier_discounts", discounts)
        minimum = _rate(self.minimum_charge, "minimum_charge")
        Money.of(minimum, self.currency)  # the minimum itself must be whole cents
        object.__setattr__(self, "minimum_charge", minimum)

    def card_for(self, partition: str, qos: str | None) -> RateCard | None:
        return _match(self.cards, partition, qos)

    def discount_for(self, tier: Tier | None) -> Decimal:
        return dict(self.tier_discounts).get(tier, _ZERO) if tier else _ZERO


def _match(cards: Iterable[RateCard], partition: str, qos: str | None) -> RateCard | None:
    """The card for (partition, qos), else the partition's any-QOS card."""
    general = None
    for card in cards:
        if card.partition != partition:
            continue
        if qos is not None and card.qos == qos:
            return card
        if card.qos is None:
            general = card
    return general


@dataclass(frozen=True, slots=True)
class Contract:
    """Negotiated prices for one organization over a period.

    Its `cards` override the book's cards for their partitions and are not discounted
    further; for other partitions the book applies with `discount` (when set) in place
    of the tier discount.
    """

    id: str
    organization: str
    effective_from: datetime
    effective_until: datetime | None = None
    cards: tuple[RateCard, ...] = ()
    discount: Decimal | None = None

    def __post_init__(self) -> None:
        _aware(self.effective_from, "effective_from")
        if self.effective_until is not None:
            _aware(self.effective_until, "effective_until")
            if self.effective_until <= self.effective_from:
                raise InvalidRequest("a contract must end after it starts",
                                     field="effective_until")
        if self.discount is not None:
            object.__setattr__(self, "discount", _fraction(self.discount, "discount"))

    def in_force(self, at: datetime) -> bool:
        return self.effective_from <= at and (self.effective_until is None
                                              or at < self.effective_until)


@dataclass(frozen=True, slots=True)
class Customer:
    """Who pays: the organization, its tier, and its contracts (any period)."""

    organization: str | None = None
    tier: Tier | None = None
    contracts: tuple[Contract, ...] = ()

    def contract_at(self, at: datetime) -> Contract | None:
        """The contract in force at `at`; the latest-starting one wins an overlap."""
        live = [c for c in self.contracts if c.in_force(at)]
        return max(live, key=lambda c: c.effective_from) if live else None


@dataclass(frozen=True, slots=True)
class PriceBook:
    """All versions of one center's prices, ordered by `effective_from`."""

    center: str
    versions: tuple[PriceBookVersion, ...] = ()

    def __post_init__(self) -> None:
        for before, after in zip(self.versions, self.versions[1:], strict=False):
            if (after.effective_from <= before.effective_from
                    or after.version <= before.version):
                raise InvalidRequest("price book versions must increase in number and "
                                     "effective date", field="versions")
            if after.currency != before.currency:
                raise InvalidRequest("a center's price book has one currency",
                                     field="currency")

    def version_at(self, at: datetime) -> PriceBookVersion:
        """The version in force at `at`; raises `NotFound` before the first one."""
        _aware(at)
        current = None
        for version in self.versions:
            if version.effective_from <= at:
                current = version
            else:
                break
        if current is None:
            raise NotFound(f"center {self.center!r} has no price book in force at "
                           f"{at.isoformat()}", field="price_book")
        return current

    def versions_from(self, at: datetime) -> tuple[PriceBookVersion, ...]:
        """The version in force at `at` and every later one already scheduled."""
        current = self.version_at(at)
        return tuple(v for v in self.versions if v.effective_from >= current.effective_from)

    def with_version(self, version: PriceBookVersion, *, now: datetime) -> PriceBook:
        """A new book with `version` appended; history is never rewritten.

        Refused when `version` would take effect before `now` (a retroactive change)
        or not after the latest version already in the book.
        """
        _aware(now, "now")
        if version.effective_from < now:
            raise InvalidRequest("a new price book version cannot take effect in the past "
                                 f"({version.effective_from.isoformat()} < "
                                 f"{now.isoformat()})", field="effective_from")
        return PriceBook(self.center, (*self.versions, version))


@dataclass(frozen=True, slots=True)
class JobShape:
    """What is priced: the allocation on a partition for a number of seconds."""

    partition: str
    tres: Tres
    seconds: int
    qos: str | None = None
    gpu_type: str | None = None

    def __post_init__(self) -> None:
        if self.seconds < 0:
            raise InvalidRequest("seconds must not be negative", field="seconds")
        if min(self.tres.cpu, self.tres.mem, self.tres.gpu, self.tres.node) < 0:
            raise InvalidRequest("TRES must not be negative", field="tres")

    def quantity(self, resource: Resource) -> Decimal:
        t = self.tres
        if resource is Resource.MEM:
            return RATE_CONTEXT.divide(Decimal(t.mem), _MIB_PER_GB)
        return Decimal({Resource.CPU: t.cpu, Resource.GPU: t.gpu,
                        Resource.NODE: t.node}[resource])

    @property
    def hours(self) -> Decimal:
        return RATE_CONTEXT.divide(Decimal(self.seconds), _SECONDS_PER_HOUR)


@dataclass(frozen=True, slots=True)
class LineItem:
    """One resource of a quote: quantity x unit rate x hours = amount (unrounded).

    Under the MAX strategy the resources in its group that are not the maximum have
    `billed` False: they are shown but not added.
    """

    resource: Resource
    quantity: Decimal
    unit: str
    unit_rate: Decimal
    hours: Decimal
    amount: Decimal
    billed: bool = True


@dataclass(frozen=True, slots=True)
class Quote:
    """A priced job: the breakdown and the final amount, rounded to the cent."""

    amount: Money
    lines: tuple[LineItem, ...]
    source: PriceSource
    strategy: Strategy
    price_version: int
    partition: str
    qos: str | None
    gpu_type: str | None
    seconds: int
    gross: Decimal  # billed line amounts, before discount
    discount_rate: Decimal
    discount: Decimal
    discount_source: str | None  # "tier:academic", "contract:<id>" or None
    minimum_charge: Decimal
    minimum_applied: bool
    contract_id: str | None = None
    fallback_reason: str | None = None

    @property
    def currency(self) -> str:
        return self.amount.currency

    def billed_weights(self) -> list[tuple[Resource, Decimal]]:
        """Billed line amounts by resource, for splitting the rounded amount."""
        return [(li.resource, li.amount) for li in self.lines if li.billed]

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready breakdown; decimals as strings."""
        return {
            "amount": str(self.amount.amount), "currency": self.currency,
            "source": str(self.source), "strategy": str(self.strategy),
            "price_version": self.price_version, "partition": self.partition,
            "qos": self.qos, "gpu_type": self.gpu_type, "seconds": self.seconds,
            "lines": [{"resource": str(li.resource), "quantity": str(li.quantity),
                       "unit": li.unit, "unit_rate": str(li.unit_rate),
                       "hours": str(li.hours), "amount": str(li.amount),
                       "billed": li.billed} for li in self.lines],
            "gross": str(self.gross), "discount_rate": str(self.discount_rate),
            "discount": str(self.discount), "discount_source": self.discount_source,
            "minimum_charge": str(self.minimum_charge),
            "minimum_applied": self.minimum_applied, "contract_id": self.contract_id,
            "fallback_reason": self.fallback_reason,
        }


@dataclass(frozen=True, slots=True)
class Unpriced:
    """No rate prices this job and the fallback is REVIEW: an operator must decide."""

    reason: str
    partition: str
    qos: str | None
    gpu_type: str | None
    price_version: int


def _why_unpriced(card: RateCard | None, shape: JobShape) -> str | None:
    if card is None:
        qos = f" / QOS {shape.qos!r}" if shape.qos else ""
        return f"no rate for partition {shape.partition!r}{qos}"
    if shape.tres.gpu and card.gpu_rate(shape.gpu_type) is None:
        return f"no GPU rate for model {shape.gpu_type or 'unspecified'!r} " \
               f"on partition {shape.partition!r}"
    return None


def _lines(card: RateCard, shape: JobShape) -> tuple[LineItem, ...]:
    hours = shape.hours
    lines: list[LineItem] = []
    for resource in Resource:
        quantity = shape.quantity(resource)
        if quantity == 0:
            continue
        rate = card.rate(resource, shape.gpu_type)
        assert rate is not None  # _why_unpriced has ruled this out
        amount = RATE_CONTEXT.multiply(RATE_CONTEXT.multiply(quantity, rate), hours)
        lines.append(LineItem(resource, quantity, UNITS[resource], rate, hours, amount))
    if card.strategy is Strategy.MAX:
        group = [li for li in lines if li.resource in card.max_of]
        if group:
            top = max(group, key=lambda li: li.amount)  # the first maximum wins a tie
            lines = [LineItem(li.resource, li.quantity, li.unit, li.unit_rate, li.hours,
                              li.amount, billed=li is top or li.resource not in card.max_of)
                     for li in lines]
    return tuple(lines)


def price(version: PriceBookVersion, shape: JobShape, customer: Customer | None = None,
          *, at: datetime | None = None) -> Quote | Unpriced:
    """Price `shape` under `version` for `customer` (contract chosen at `at`).

    Order: contract card, else book card, else the fallback. Discount (contract's or
    tier's) applies to book cards only; the minimum charge applies to any job that ran
    (seconds > 0); the result is rounded half-up to the cent once, at the end.
    """
    customer = customer or Customer()
    contract = customer.contract_at(at or version.effective_from) if customer else None
    card: RateCard | None = None
    source = PriceSource.BOOK
    fallback_reason = None
    if contract is not None:
        card = _match(contract.cards, shape.partition, shape.qos)
        if card is not None and _why_unpriced(card, shape) is not None:
            card = None  # the contract does not price this GPU model: use the book
        if card is not None:
            source = PriceSource.CONTRACT
    if card is None:
        card = version.card_for(shape.partition, shape.qos)
        reason = _why_unpriced(card, shape)
        if reason is not None:
            fallback = version.fallback
            if fallback.mode is FallbackMode.REVIEW or fallback.card is None:
                return Unpriced(reason, shape.partition, shape.qos, shape.gpu_type,
                                version.version)
            card, source, fallback_reason = fallback.card, PriceSource.FALLBACK, reason
            second = _why_unpriced(card, shape)
            if second is not None:
                return Unpriced(f"{reason}; fallback: {second}", shape.partition,
                                shape.qos, shape.gpu_type, version.version)
    assert card is not None

    lines = _lines(card, shape)
    gross = sum((li.amount for li in lines if li.billed), _ZERO)
    discount_rate, discount_source = _ZERO, None
    if source is PriceSource.BOOK:
        if contract is not None and contract.discount is not None:
            discount_rate, discount_source = contract.discount, f"contract:{contract.id}"
        elif customer.tier is not None and version.discount_for(customer.tier):
            discount_rate = version.discount_for(customer.tier)
            discount_source = f"tier:{customer.tier}"
    discount = RATE_CONTEXT.multiply(gross, discount_rate)
    net = gross - discount
    minimum_applied = shape.seconds > 0 and net < version.minimum_charge
    if minimum_applied:
        net = version.minimum_charge
    return Quote(
        amount=Money.rounded(net, version.currency), lines=lines, source=source,
        strategy=card.strategy, price_version=version.version, partition=shape.partition,
        qos=shape.qos, gpu_type=shape.gpu_type, seconds=shape.seconds, gross=gross,
        discount_rate=discount_rate, discount=discount, discount_source=discount_source,
        minimum_charge=version.minimum_charge, minimum_applied=minimum_applied,
        contract_id=contract.id if source is PriceSource.CONTRACT and contract else None,
        fallback_reason=fallback_reason)


def price_at(book: PriceBook, shape: JobShape, customer: Customer | None,
             at: datetime) -> Quote | Unpriced:
    """Price `shape` by the version (and contract) in force at `at`, e.g. a job's start."""
    return price(book.version_at(at), shape, customer, at=at)


def quote_max(book: PriceBook, shape: JobShape, customer: Customer | None,
              now: datetime) -> Quote | Unpriced:
    """The maximum cost of a job submitted at `now` that runs `shape.seconds`.

    A job is charged at the price in force when it starts, so the quote is the highest
    over the version in force now and every later version already scheduled (and the
    contracts in force at each one's start). Any `Unpriced` result wins: a job that
    might not be priceable cannot be quoted.
    """
    best: Quote | None = None
    for version in book.versions_from(now):
        at = max(now, version.effective_from)
        result = price(version, shape, customer, at=at)
        if isinstance(result, Unpriced):
            return result
        if best is None or result.amount > best.amount:
            best = result
    assert best is not None  # versions_from always has the version in force
    return best


# ------------------------------------------------------------------ per-hour rates


@dataclass(frozen=True, slots=True)
class HourlyRate:
    """`price()` for one job shape with the seconds left open, for bulk rating.

    The line amounts are linear in the hours, so everything but the hours is fixed per
    (version, customer's contract and tier, partition, QOS, GPU model, TRES): the
    lines' quantity x unit rate (`per_hour`), the strategy, the discount and the
    minimum. `charge(seconds)` then runs the same Decimal operations as `price()` in
    the same order (the line amounts, the MAX choice, the sum, the discount, the
    minimum, one rounding), so its result is the one `price()` gives, to the last digit.
    """

    resources: tuple[Resource, ...]
    per_hour: tuple[Decimal, ...]  # quantity x unit rate, per line, in RATE_CONTEXT
    in_group: tuple[bool, ...]  # the line is in the MAX group (always False for SUM)
    discount_rate: Decimal
    minimum_charge: Decimal
    source: PriceSource
    price_version: int
    contract_id: str | None
    #: Indexes of the billed lines when they do not depend on the hours (SUM, or a MAX
    #: group whose largest rate is far enough ahead to win at any hours), else None.
    billed: tuple[int, ...] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "billed", _fixed_lines(self.per_hour, self.in_group))

    def cents(self, seconds: int) -> tuple[int, tuple[Resource, ...], list[Decimal]]:
        """`charge()` in whole cents: (amount, billed resources, their line amounts).

        With fixed billed lines only those are multiplied (a MAX group's others would
        lose anyway); the additions, discount, minimum and rounding are `charge()`'s.
        """
        fixed = self.billed
        if fixed is None or seconds <= 0:
            amount, weights = self.charge(seconds)
            return (int(amount.scaleb(2)), tuple(r for r, _ in weights),
                    [a for _, a in weights])
        hours = RATE_CONTEXT.divide(Decimal(seconds), _SECONDS_PER_HOUR)
        mul = RATE_CONTEXT.multiply
        per_hour = self.per_hour
        amounts = [mul(per_hour[i], hours) for i in fixed]
        gross = sum(amounts, _ZERO)  # price()'s additions, in the same order
        # a zero discount leaves gross unchanged (gross has at most the context's digits)
        net = gross - mul(gross, self.discount_rate) if self.discount_rate else gross
        if net < self.minimum_charge:
            net = self.minimum_charge
        rounded = net.quantize(_CENT, rounding=ROUND_HALF_UP, context=RATE_CONTEXT)
        return int(rounded.scaleb(2)), tuple(self.resources[i] for i in fixed), amounts

    def charge(self, seconds: int) -> tuple[Decimal, list[tuple[Resource, Decimal]]]:
        """The rounded amount for `seconds` and the billed line amounts (the weights)."""
        hours = RATE_CONTEXT.divide(Decimal(seconds), _SECONDS_PER_HOUR)
        mul = RATE_CONTEXT.multiply
        if True in self.in_group:
            amounts = [mul(rate, hours) for rate in self.per_hour]
            top = -1
            for i, grouped in enumerate(self.in_group):  # the first maximum wins a tie
                if grouped and (top < 0 or amounts[i] > amounts[top]):
                    top = i
            weights = [(r, a) for i, (r, a, g) in enumerate(
                zip(self.resources, amounts, self.in_group, strict=True))
                if i == top or not g]
        else:
            weights = [(r, mul(rate, hours))
                       for r, rate in zip(self.resources, self.per_hour, strict=True)]
        gross = _ZERO
        for _, amount in weights:  # sum(..., _ZERO) in price(): the same additions
            gross = gross + amount
        net = gross - mul(gross, self.discount_rate)
        if seconds > 0 and net < self.minimum_charge:
            net = self.minimum_charge
        return net.quantize(_CENT, rounding=ROUND_HALF_UP, context=RATE_CONTEXT), weights


def _fixed_lines(per_hour: tuple[Decimal, ...],
                 in_group: tuple[bool, ...]) -> tuple[int, ...] | None:
    """The billed line indexes if the same for every positive number of hours.

    Each line amount is its per-hour rate times the hours, rounded to 34 digits, so a
    larger rate never gives a smaller amount: the group's first largest rate wins
    unless an earlier line's rate is so close below it that rounding could make the
    two amounts equal (then the earlier would win the tie); that case is left to
    `charge()`.
    """
    group = [i for i, g in enumerate(in_group) if g]
    if not group:
        return tuple(range(len(per_hour)))
    top = group[0]
    for i in group:
        if per_hour[i] > per_hour[top]:
            top = i
    margin = 1 + Fraction(1, 10 ** 30)  # far beyond two roundings at 34 digits
    if any(Fraction(per_hour[i]) * margin >= Fraction(per_hour[top])
           for i in group if i < top):
        return None
    return tuple(i for i, g in enumerate(in_group) if i == top or not g)


class RateCache:
    """Per-hour rates of one price book's job shapes, computed once through `price()`.

    Keys are (version number, tier, contract id, partition, QOS, GPU model, TRES), so
    one cache must serve one center's book (version numbers are unique within it) and
    the contracts it was filled with (contracts are immutable). `Unpriced` results
    are cached too: they depend on the shape, not on the seconds.
    """

    def __init__(self) -> None:
        self._rates: dict[tuple[object, ...], HourlyRate | Unpriced] = {}

    def __len__(self) -> int:
        return len(self._rates)

    def rate(self, version: PriceBookVersion, customer: Customer, at: datetime,
             partition: str, tres: Tres, qos: str | None = None,
             gpu_type: str | None = None) -> HourlyRate | Unpriced:
        """The per-hour rate of a job started at `at` (it picks the contract)."""
        contract = customer.contract_at(at) if customer.contracts else None
        key = (version.version, customer.tier, contract.id if contract else None,
               partition, qos, gpu_type, tres)
        found = self._rates.get(key)
        if found is None:
            found = self._rates[key] = hourly_rate(
                version, JobShape(partition, tres, 3600, qos, gpu_type), customer, at)
        return found


def hourly_rate(version: PriceBookVersion, shape: JobShape, customer: Customer,
                at: datetime) -> HourlyRate | Unpriced:
    """The `HourlyRate` of `shape` (its seconds are ignored), or `Unpriced`."""
    result = price(version, shape, customer, at=at)
    if isinstance(result, Unpriced):
        return result
    if result.source is PriceSource.FALLBACK:
        card = version.fallback.card
    elif result.source is PriceSource.CONTRACT:
        contract = customer.contract_at(at)
        assert contract is not None
        card = _match(contract.cards, shape.partition, shape.qos)
    else:
        card = version.card_for(shape.partition, shape.qos)
    assert card is not None
    group = card.max_of if card.strategy is Strategy.MAX else frozenset()
    return HourlyRate(
        resources=tuple(li.resource for li in result.lines),
        per_hour=tuple(RATE_CONTEXT.multiply(li.quantity, li.unit_rate)
                       for li in result.lines),
        in_group=tuple(li.resource in group for li in result.lines),
        discount_rate=result.discount_rate, minimum_charge=version.minimum_charge,
        source=result.source, price_version=version.version,
        contract_id=result.contract_id)
