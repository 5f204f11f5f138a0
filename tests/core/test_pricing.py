from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from lightgrid.core.errors import InvalidRequest, NotFound
from lightgrid.core.money import money
from lightgrid.core.pricing import (
    Contract,
    Customer,
    Fallback,
    FallbackMode,
    JobShape,
    PriceBook,
    PriceBookVersion,
    PriceSource,
    Quote,
    RateCard,
    Resource,
    Strategy,
    Tier,
    Unpriced,
    price,
    price_at,
    quote_max,
)
from lightgrid.core.resources import Tres

T0 = datetime(2025, 1, 1, tzinfo=UTC)
D = Decimal

CPU = RateCard("cpu", cpu=D("0.10"), mem=D("0.01"))
GPU = RateCard("gpu", cpu=D("0.05"), gpu=(("a100", D("8.00")), ("v100", D("4.00"))))
EXCL = RateCard("big", node=D("5.00"))


def version(n=1, at=T0, cards=(CPU, GPU, EXCL), **kw):
    return PriceBookVersion(n, at, cards, **kw)


def priced(result) -> Quote:
    assert isinstance(result, Quote), result
    return result


def test_sum_strategy_breakdown():
    # 4 cores, 8 GiB for 2 h: 4*0.10*2 + 8*0.01*2 = 0.80 + 0.16
    q = priced(price(version(), JobShape("cpu", Tres(cpu=4, mem=8192), 7200)))
    assert q.amount == money("0.96")
    lines = {li.resource: li for li in q.lines}
    assert lines[Resource.CPU].quantity == 4 and lines[Resource.CPU].hours == 2
    assert lines[Resource.MEM].quantity == 8 and lines[Resource.MEM].unit == "GB-hour"
    assert lines[Resource.MEM].amount == D("0.16")
    assert q.source is PriceSource.BOOK and not q.minimum_applied
    assert q.as_dict()["amount"] == "0.96"


def test_max_strategy_bills_the_largest_of_its_group():
    # cpu 0.10/core-h and 4 GB per core -> mem 0.025/GB-h: max(cores, mem/4) * 0.10
    card = RateCard("cpu", cpu=D("0.10"), mem=D("0.025"), strategy=Strategy.MAX)
    v = version(cards=(card,))
    light = priced(price(v, JobShape("cpu", Tres(cpu=4, mem=4096), 3600)))
    assert light.amount == money("0.40")
    heavy = priced(price(v, JobShape("cpu", Tres(cpu=1, mem=64 * 1024), 3600)))
    assert heavy.amount == money("1.60")  # 64 GB / 4 = 16 core equivalents
    billed = [li.resource for li in heavy.lines if li.billed]
    assert billed == [Resource.MEM]


def test_max_strategy_adds_resources_outside_the_group():
    card = RateCard("gpu", cpu=D("0.10"), mem=D("0.025"), gpu=(("*", D("2")),),
                    strategy="max")
    q = priced(price(version(cards=(card,)), JobShape("gpu", Tres(cpu=8, mem=1024, gpu=1),
                                                      3600, gpu_type="h100")))
    assert q.amount == money("2.80")  # max(0.80, 0.025) + 2.00


def test_gpu_rate_by_model_and_qos_override():
    v = version(cards=(GPU, RateCard("gpu", qos="low", gpu=(("a100", D("3")),))))
    shape = JobShape("gpu", Tres(cpu=2, gpu=2), 3600, gpu_type="a100")
    assert priced(price(v, shape)).amount == money("16.10")
    low = JobShape("gpu", Tres(cpu=2, gpu=2), 3600, qos="low", gpu_type="a100")
    assert priced(price(v, low)).amount == money("6.00")
    other_qos = JobShape("gpu", Tres(cpu=2, gpu=2), 3600, qos="high", gpu_type="v100")
    assert priced(price(v, other_qos)).amount == money("8.10")


def test_exclusive_node_rate():
    q = priced(price(version(), JobShape("big", Tres(cpu=64, mem=1, node=2), 1800)))
    assert q.amount == money("5.00")


@pytest.mark.parametrize(("seconds", "expected"), [
    (1, "0.01"),     # 1 s of 1 core = 0.0000277..: the minimum 0.01 applies
    (17, "0.01"),    # 0.000472.. -> minimum
    (180, "0.01"),   # 0.005 exactly: rounds half-up to 0.01 (minimum not needed)
    (179, "0.01"),   # 0.004972..: below minimum
    (3600, "0.10"),
    (5418, "0.15"),  # 0.1505 -> 0.15
    (5418 + 1, "0.15"),
])
def test_rounding_and_minimum_charge(seconds, expected):
    v = version(cards=(RateCard("cpu", cpu=D("0.10")),), minimum_charge=D("0.01"))
    q = priced(price(v, JobShape("cpu", Tres(cpu=1), seconds)))
    assert q.amount == money(expected)


def test_minimum_charge_flags_and_zero_seconds():
    v = version(cards=(RateCard("cpu", cpu=D("0.10")),), minimum_charge=D("1.00"))
    q = priced(price(v, JobShape("cpu", Tres(cpu=1), 60)))
    assert q.amount == money("1.00") and q.minimum_applied
    zero = priced(price(v, JobShape("cpu", Tres(cpu=1), 0)))
    assert zero.amount.is_zero and not zero.minimum_applied


def test_rounding_happens_once_on_the_total():
    # Three lines of 0.004 each: rounding each would give 0.00; the total gives 0.01.
    card = RateCard("cpu", cpu=D("0.004"), mem=D("0.004"), node=D("0.004"))
    q = priced(price(version(cards=(card,)), JobShape("cpu", Tres(1, 1024, 0, 1), 3600)))
    assert q.amount == money("0.01")


def test_minimum_charge_must_be_whole_cents():
    with pytest.raises(InvalidRequest):
        version(minimum_charge=D("0.001"))


def test_tier_discounts():
    v = version(tier_discounts=((Tier.ACADEMIC, D("0.30")), (Tier.GOVERNMENT, D("0.1"))))
    shape = JobShape("cpu", Tres(cpu=10), 3600)  # 1.00 gross
    assert priced(price(v, shape)).amount == money("1.00")
    acad = priced(price(v, shape, Customer("lab", Tier.ACADEMIC)))
    assert acad.amount == money("0.70") and acad.discount_source == "tier:academic"
    assert priced(price(v, shape, Customer("gov", Tier.GOVERNMENT))).amount == money("0.90")
    assert priced(price(v, shape, Customer("co", Tier.ENTERPRISE))).amount == money("1.00")


def test_discount_out_of_range_refused():
    with pytest.raises(InvalidRequest):
        version(tier_discounts=((Tier.ACADEMIC, D("1.5")),))


def test_contract_overrides_tier_and_book():
    v = version(tier_discounts=((Tier.ACADEMIC, D("0.30")),))
    contract = Contract("c1", "lab", T0, cards=(RateCard("cpu", cpu=D("0.05")),),
                        discount=D("0.5"))
    who = Customer("lab", Tier.ACADEMIC, (contract,))
    cpu_job = JobShape("cpu", Tres(cpu=10), 3600)
    q = priced(price(v, cpu_job, who, at=T0))
    assert q.amount == money("0.50") and q.source is PriceSource.CONTRACT
    assert q.contract_id == "c1" and q.discount == 0
    # a partition the contract has no card for: book price with the contract discount
    gpu_job = JobShape("gpu", Tres(cpu=2, gpu=1), 3600, gpu_type="a100")
    q2 = priced(price(v, gpu_job, who, at=T0))
    assert q2.amount == money("4.05") and q2.discount_source == "contract:c1"


def test_contract_only_in_force_within_its_dates():
    contract = Contract("c1", "lab", T0 + timedelta(days=10), T0 + timedelta(days=20),
                        cards=(RateCard("cpu", cpu=D("0.01")),))
    who = Customer("lab", Tier.ENTERPRISE, (contract,))
    book = PriceBook("c", (version(),))
    job = JobShape("cpu", Tres(cpu=10), 3600)
    assert priced(price_at(book, job, who, T0 + timedelta(days=5))).amount == money("1.00")
    assert priced(price_at(book, job, who, T0 + timedelta(days=15))).amount == money("0.10")
    assert priced(price_at(book, job, who, T0 + timedelta(days=20))).amount == money("1.00")


def test_unpriced_partition_goes_to_review_by_default():
    result = price(version(), JobShape("nowhere", Tres(cpu=1), 60))
    assert isinstance(result, Unpriced) and "nowhere" in result.reason


def test_unpriced_gpu_model_goes_to_review():
    result = price(version(), JobShape("gpu", Tres(cpu=1, gpu=1), 60, gpu_type="h100"))
    assert isinstance(result, Unpriced) and "h100" in result.reason


def test_fallback_rate_charges_unpriced_jobs():
    fb = Fallback(FallbackMode.RATE, RateCard("*", cpu=D("0.20"), gpu=(("*", D("10")),)))
    v = version(fallback=fb)
    q = priced(price(v, JobShape("nowhere", Tres(cpu=5), 3600),
                     Customer("x", Tier.ACADEMIC)))
    assert q.amount == money("1.00") and q.source is PriceSource.FALLBACK
    assert q.fallback_reason and "nowhere" in q.fallback_reason
    g = priced(price(v, JobShape("gpu", Tres(gpu=1), 3600, gpu_type="h100")))
    assert g.amount == money("10.00")


def test_fallback_that_cannot_price_is_review():
    fb = Fallback(FallbackMode.RATE, RateCard("*", cpu=D("0.20")))
    result = price(version(fallback=fb), JobShape("x", Tres(gpu=1), 60, gpu_type="a"))
    assert isinstance(result, Unpriced)
    with pytest.raises(InvalidRequest):
        Fallback(FallbackMode.RATE)


def test_versions_select_the_one_in_force():
    v1 = version(1, T0)
    v2 = version(2, T0 + timedelta(days=15), cards=(RateCard("cpu", cpu=D("0.20")),))
    book = PriceBook("c", (v1, v2))
    assert book.version_at(T0 + timedelta(days=14, hours=23)).version == 1
    assert book.version_at(T0 + timedelta(days=15)).version == 2
    with pytest.raises(NotFound):
        book.version_at(T0 - timedelta(seconds=1))


def test_price_changes_never_rewrite_history():
    book = PriceBook("c", (version(1, T0),))
    now = T0 + timedelta(days=30)
    with pytest.raises(InvalidRequest, match="past"):
        book.with_version(version(2, now - timedelta(days=1)), now=now)
    newer = book.with_version(version(2, now), now=now)
    assert newer.version_at(now - timedelta(seconds=1)) is book.versions[0]
    with pytest.raises(InvalidRequest):
        PriceBook("c", (version(2, T0), version(1, T0 + timedelta(days=1))))
    with pytest.raises(InvalidRequest):
        PriceBook("c", (version(1, T0), version(2, T0)))


def test_naive_datetimes_refused():
    with pytest.raises(InvalidRequest):
        PriceBookVersion(1, datetime(2025, 1, 1), ())


def test_quote_max_takes_the_highest_scheduled_version():
    cheap = version(1, T0)
    dear = version(2, T0 + timedelta(days=1), cards=(RateCard("cpu", cpu=D("0.30")),))
    book = PriceBook("c", (cheap, dear))
    job = JobShape("cpu", Tres(cpu=1), 3600)
    q = priced(quote_max(book, job, None, T0))
    assert q.amount == money("0.30") and q.price_version == 2
    # once the dear version is in force, the cheap one is history
    assert priced(quote_max(book, job, None, T0 + timedelta(days=2))).price_version == 2


def test_quote_max_is_unpriced_if_any_version_cannot_price():
    later = version(2, T0 + timedelta(days=1), cards=(CPU,))
    book = PriceBook("c", (version(1, T0), later))
    gpu = JobShape("gpu", Tres(gpu=1), 3600, gpu_type="a100")
    assert isinstance(quote_max(book, gpu, None, T0), Unpriced)


def test_rate_card_validation():
    with pytest.raises(InvalidRequest):
        RateCard("cpu", cpu=0.1)
    with pytest.raises(InvalidRequest):
        RateCard("cpu", cpu=D("-1"))
    with pytest.raises(InvalidRequest):
        RateCard("gpu", gpu=(("a", D(1)), ("a", D(2))))
    with pytest.raises(InvalidRequest):
        version(cards=(CPU, CPU))
    with pytest.raises(InvalidRequest):
        JobShape("cpu", Tres(cpu=1), -1)
