"""Price book versions and contracts in the store, parsed from TOML or JSON.

A version's body is kept as submitted (decimals as strings) and parsed by the core on
load, so what was stored is exactly what prices every job started under it.
"""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from lightgrid.core.errors import InvalidRequest
from lightgrid.core.jobs import JobState
from lightgrid.core.money import check_currency, to_decimal
from lightgrid.core.pricing import (
    Contract,
    Customer,
    Fallback,
    FallbackMode,
    PriceBook,
    PriceBookVersion,
    RateCard,
    Resource,
    Strategy,
    Tier,
)
from lightgrid.store.models.billing import ContractRow, PriceBookVersionRow

_CARD_KEYS = {"partition", "qos", "cpu", "mem", "node", "gpu", "strategy", "max_of"}
_VERSION_KEYS = {"effective_from", "currency", "cards", "tiers", "fallback",
                 "minimum_charge", "waived_states", "note"}


def _plain(value: Any) -> Any:
    """JSON-safe copy: decimals as strings; floats are refused by the core later."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def parse_toml(text: str) -> dict[str, Any]:
    """A price book version or contract from TOML; bare numbers are read as decimals."""
    try:
        data: dict[str, Any] = _plain(tomllib.loads(text, parse_float=Decimal))
        return data
    except tomllib.TOMLDecodeError as exc:
        raise InvalidRequest(f"TOML: {exc}", field="body") from None


def parse_instant(value: Any, field: str) -> datetime:
    if isinstance(value, datetime):
        at = value
    else:
        try:
            at = datetime.fromisoformat(str(value))
        except ValueError:
            raise InvalidRequest(f"{field}: {value!r} is not an ISO 8601 instant",
                                 field=field) from None
    if at.tzinfo is None:
        raise InvalidRequest(f"{field}: give a timezone, e.g. 2026-12-01T00:00:00+08:00",
                             field=field)
    return at.astimezone(UTC)


def parse_card(data: Any, where: str) -> RateCard:
    if not isinstance(data, dict):
        raise InvalidRequest(f"{where}: a rate card is a table", field=where)
    unknown = set(data) - _CARD_KEYS
    if unknown:
        raise InvalidRequest(f"{where}: unknown key {sorted(unknown)[0]!r}", field=where)
    gpu = data.get("gpu") or {}
    if not isinstance(gpu, dict):
        raise InvalidRequest(f"{where}.gpu: map GPU models to rates", field=f"{where}.gpu")
    try:
        return RateCard(
            partition=str(data.get("partition") or ""), qos=data.get("qos"),
            cpu=to_decimal(data.get("cpu", "0"), field=f"{where}.cpu"),
            mem=to_decimal(data.get("mem", "0"), field=f"{where}.mem"),
            node=to_decimal(data.get("node", "0"), field=f"{where}.node"),
            gpu=tuple((m, to_decimal(r, field=f"{where}.gpu.{m}")) for m, r in gpu.items()),
            strategy=Strategy(data.get("strategy", "sum")),
            max_of=frozenset(Resource(r) for r in data.get("max_of", ["cpu", "mem"])))
    except ValueError as exc:
        raise InvalidRequest(f"{where}: {exc}", field=where) from None


def parse_version(number: int, body: dict[str, Any]) -> PriceBookVersion:
    """A core version from a stored or submitted body; errors name the field."""
    unknown = set(body) - _VERSION_KEYS
    if unknown:
        raise InvalidRequest(f"unknown price book key {sorted(unknown)[0]!r}",
                             field=sorted(unknown)[0])
    cards = body.get("cards") or []
    if not isinstance(cards, list):
        raise InvalidRequest("cards: give a list of rate cards", field="cards")
    fb = body.get("fallback") or {}
    try:
        mode = FallbackMode(fb.get("mode", "review"))
        states = frozenset(JobState(s) for s in body.get("waived_states", ["NODE_FAIL"]))
        tiers = tuple((Tier(t), to_decimal(d, field=f"tiers.{t}"))
                      for t, d in (body.get("tiers") or {}).items())
    except ValueError as exc:
        raise InvalidRequest(str(exc), field="body") from None
    return PriceBookVersion(
        version=number,
        effective_from=parse_instant(body.get("effective_from"), "effective_from"),
        cards=tuple(parse_card(c, f"cards[{i}]") for i, c in enumerate(cards)),
        currency=check_currency(body.get("currency", "CNY")),
        fallback=Fallback(mode, parse_card(fb["card"], "fallback.card")
                          if fb.get("card") else None),
        tier_discounts=tiers,
        minimum_charge=to_decimal(body.get("minimum_charge", "0"), field="minimum_charge"),
        waived_states=states, note=str(body.get("note", "")))


def load_book(session: Session, center: str) -> PriceBook:
    rows = session.scalars(select(PriceBookVersionRow).order_by(PriceBookVersionRow.version))
    return PriceBook(center, tuple(parse_version(r.version, r.body) for r in rows))


def add_version(session: Session, center: str, body: dict[str, Any], *, now: datetime,
                actor: str, currency: str) -> PriceBookVersion:
    """Append a version taking effect now or later; history is never rewritten."""
    body = _plain(dict(body))
    body.setdefault("effective_from", now.isoformat())
    book = load_book(session, center)
    number = (book.versions[-1].version + 1) if book.versions else 1
    version = parse_version(number, body)
    if version.currency != currency:
        raise InvalidRequest(f"this center bills in {currency}, not {version.currency}",
                             field="currency")
    book.with_version(version, now=now)  # refuses the past and out-of-order versions
    body["effective_from"] = version.effective_from.isoformat()
    session.add(PriceBookVersionRow(version=number, effective_from=version.effective_from,
                                    currency=version.currency, body=body,
                                    note=version.note[:500], created_by=actor))
    session.flush()
    return version


def version_dict(v: PriceBookVersion) -> dict[str, Any]:
    def card(c: RateCard) -> dict[str, Any]:
        return {"partition": c.partition, "qos": c.qos, "cpu": str(c.cpu),
                "mem": str(c.mem), "node": str(c.node),
                "gpu": {m: str(r) for m, r in c.gpu}, "strategy": str(c.strategy),
                "max_of": sorted(str(r) for r in c.max_of)}
    return {"version": v.version, "effective_from": v.effective_from.isoformat(),
            "currency": v.currency, "cards": [card(c) for c in v.cards],
            "tiers": {str(t): str(d) for t, d in v.tier_discounts},
            "minimum_charge": str(v.minimum_charge),
            "fallback": {"mode": str(v.fallback.mode),
                         "card": card(v.fallback.card) if v.fallback.card else None},
            "waived_states": sorted(str(s) for s in v.waived_states), "note": v.note}


def add_contract(session: Session, org: str, body: dict[str, Any]) -> Contract:
    body = _plain(dict(body))
    unknown = set(body) - {"effective_from", "effective_until", "cards", "discount", "note"}
    if unknown:
        raise InvalidRequest(f"unknown contract key {sorted(unknown)[0]!r}",
                             field=sorted(unknown)[0])
    row = ContractRow(org=org, cards=body.get("cards") or [], note=str(body.get("note", "")),
                      effective_from=parse_instant(body.get("effective_from"),
                                                   "effective_from"),
                      effective_until=parse_instant(body["effective_until"],
                                                    "effective_until")
                      if body.get("effective_until") else None,
                      discount=to_decimal(body["discount"], field="discount")
                      if body.get("discount") is not None else None)
    contract = contract_of(row)  # validates before storing
    session.add(row)
    session.flush()
    return contract


def contract_of(row: ContractRow) -> Contract:
    return Contract(id=row.id or "", organization=row.org,
                    effective_from=row.effective_from, effective_until=row.effective_until,
                    cards=tuple(parse_card(c, f"cards[{i}]")
                                for i, c in enumerate(row.cards or [])),
                    discount=row.discount)


def customer(session: Session, org: str, tier: str | None) -> Customer:
    rows = session.scalars(select(ContractRow).where(ContractRow.org == org))
    return Customer(org, Tier(tier) if tier else None, tuple(contract_of(r) for r in rows))
