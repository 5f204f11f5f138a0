"""Streaming ingestion of usage records: rate and post in batches, exactly once.

Each batch is one database transaction: keys already charged (or under review) are
skipped, the rest are priced by the version in force when each job started, the
wallets they draw on are locked once, and charges, transactions and postings go in
with binary COPY (PostgreSQL) or executemany (SQLite). A crash loses at most the
batches not yet committed, and replaying the stream charges nothing twice (the charge
key is unique). Records with a platform hold go through the finish hook instead; this
path is for accounting feeds (e.g. jobs submitted with plain ``sbatch``).

Rating and writing overlap: the calling thread rates batch k+1 while a writer thread
posts batch k (the database works while the client rates). At most `depth` rated
batches wait for the writer, so memory stays bounded whatever the stream's length.

Rating goes through `lightgrid.core.pricing.RateCache`: each job shape's per-hour
lines are computed once by `price()` and the amount for a record's seconds repeats
`price()`'s own Decimal arithmetic (tested to agree with it). The rounded amounts are
then exact whole cents, and the draw and the rows use them as integer millionths,
the unit `MoneyColumn` stores.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from json.encoder import encode_basestring_ascii as _js  # what json.dumps uses
from typing import Any, NamedTuple

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from lightgrid.center.billing import ledger as sql
from lightgrid.center.billing import limits, prices
from lightgrid.center.billing.funds import Funds
from lightgrid.core.funds import UsageRecord
from lightgrid.core.ids import new_id, uuid7
from lightgrid.core.ledger import org_wallet, project_wallet, receivable, revenue
from lightgrid.core.money import RATE_CONTEXT
from lightgrid.core.pricing import Customer, PriceBook, RateCache, Unpriced
from lightgrid.core.quotas import QuotaNeed
from lightgrid.store.base import MONEY_SCALE
from lightgrid.store.models import Organization, Project
from lightgrid.store.models.billing import ChargeRow, QuotaRow, ReviewRow

_ZERO = Decimal(0)
_HOUR = Decimal(3600)
_MICRO = 10 ** MONEY_SCALE
_CENT_MICROS = _MICRO // 100
_TXN_COLS = ("id", "kind", "created_at", "memo", "refs")
_TXN_TYPES = ("text", "text", "timestamptz", "text", "text")  # refs: JSON text
_POST_COLS = ("transaction_id", "line", "account", "amount", "currency", "created_at",
              "project", "partition", "resource")
_POST_TYPES = ("text", "int4", "text", "int8", "text", "timestamptz", "text", "text",
               "text")
_CHARGE_COLS = ("id", "key", "job_id", "project", "user", "partition", "qos", "gpu_type",
                "state", "cpus", "mem", "gpus", "nodes", "seconds", "amount", "from_hold",
                "from_funds", "to_receivable", "released", "core_hours", "gpu_hours",
                "price_version", "source", "contract_id", "started_at", "ended_at",
                "created_at", "transaction_id", "note")
_CHARGE_TYPES = ("text",) * 9 + ("int4",) * 5 + ("int8",) * 7 + (
    "int4", "text", "text", "timestamptz", "timestamptz", "timestamptz", "text", "text")
#: Money columns, written as integer millionths (MoneyColumn's storage).
_MONEY_COLS = {"amount", "from_hold", "from_funds", "to_receivable", "released",
               "core_hours", "gpu_hours"}


@dataclass
class IngestStats:
    records: int = 0
    charged: int = 0
    skipped: int = 0
    reviewed: int = 0
    batches: int = 0


class Rated(NamedTuple):
    """One record after rating, before the draw (which needs the locked balances)."""

    key: str
    record: UsageRecord
    org: str
    review: str | None  # the reason when no price covers the record
    cents: int  # the amount, rounded to the cent
    revenue: tuple[tuple[str, int], ...]  # (resource, cents), summing to `cents`
    version: int | None
    source: str
    contract: str | None
    core_hours: Decimal  # as billed (zero when nothing is charged), unrounded
    gpu_hours: Decimal
    seconds: int
    charged: bool  # a quote exists (else the note says "not charged")


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


_RAND_B = (1 << 62) - 1


def new_ids(n: int) -> list[str]:
    """`n` new UUIDv7 ids, increasing, after every id `new_id()` made before.

    One `uuid7()` gives the millisecond, the counter and a random start; the rest
    count up in its random field, so they sort after it and before any later id.
    """
    first = uuid7().int
    if (first & _RAND_B) + n > _RAND_B:  # would carry into the variant bits
        return [new_id() for _ in range(n)]
    out = []
    for value in range(first, first + n):
        h = f"{value:032x}"
        out.append(f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}")
    return out


def _refs(project: str, key: str, user: str | None, partition: str) -> str:
    """``json.dumps({"project": ..., "key": ..., "user": ..., "partition": ...})``."""
    u = "null" if user is None else _js(user)
    return (f'{{"project": {_js(project)}, "key": {_js(key)}, "user": {u}, '
            f'"partition": {_js(partition)}}}')


def _batches(records: Iterable[UsageRecord], size: int) -> Iterator[list[UsageRecord]]:
    it = iter(records)
    while batch := list(itertools.islice(it, size)):
        yield batch


class Ingestor:
    """Rates and posts a stream of usage records for one center."""

    def __init__(self, factory: sessionmaker[Session], center: str, funds: Funds,
                 *, batch_size: int = 10000, depth: int = 1) -> None:
        self.factory = factory
        self.center = center
        self.funds = funds
        self.currency = funds.currency
        self.batch_size = batch_size
        self.depth = max(1, depth)
        self._orgs: dict[str, tuple[str, str | None]] = {}
        self._customers: dict[str, Customer] = {}
        self.rates = RateCache()
        self._wallets: dict[str, str] = {}
        self._revenue: dict[str, str] = {}

    # ------------------------------------------------------------------ the pipeline

    def run(self, records: Iterable[UsageRecord], at: datetime) -> IngestStats:
        stats = IngestStats()
        with self.factory() as session:
            book = prices.load_book(session, self.center)
            for name, org, tier in session.execute(select(
                    Project.name, Organization.name, Organization.tier).join(
                    Organization, Organization.id == Project.org_id)):
                self._orgs[name] = (org, tier)
            for org_name, org_tier in set(self._orgs.values()):
                self._customers[org_name] = prices.customer(session, org_name, org_tier)
        self.rates = RateCache()  # contracts may have changed since the last run
        pending: queue.Queue[list[Rated] | None] = queue.Queue(maxsize=self.depth)
        failed: list[BaseException] = []

        def write() -> None:
            while (rated := pending.get()) is not None:
                if failed:
                    continue  # drain, so that the producer never blocks
                try:
                    with self.factory() as session, session.begin():
                        self._post(session, rated, at, stats)
                    stats.batches += 1
                except BaseException as exc:  # handed to the caller's thread
                    failed.append(exc)

        writer = threading.Thread(target=write, name="billing-ingest", daemon=True)
        writer.start()
        try:
            for batch in _batches(records, self.batch_size):
                if failed:
                    break
                pending.put(self._rate(batch, book))
        finally:
            pending.put(None)
            writer.join()
        if failed:
            raise failed[0]
        return stats

    # ------------------------------------------------------------------------ rating

    def _rate(self, batch: list[UsageRecord], book: PriceBook) -> list[Rated]:
        """Price a batch: pure, no database (runs while the writer posts)."""
        out: list[Rated] = []
        orgs, customers, rates = self._orgs, self._customers, self.rates
        mul, div = RATE_CONTEXT.multiply, RATE_CONTEXT.divide
        for record in batch:
            key = str(record.key)
            org = orgs[record.project][0]
            started_at = record.started_at
            if started_at is None or record.elapsed <= 0:  # never ran
                seconds = 0
                out.append(Rated(key, record, org, None, 0, (), None, "none", None,
                                 _ZERO, _ZERO, seconds, False))
                continue
            limit = record.time_limit  # UsageRecord.billable_seconds
            seconds = record.elapsed if limit is None else min(record.elapsed, limit)
            try:
                version = book.version_at(started_at)
            except Exception as exc:  # no version in force then: an operator decides
                out.append(Rated(key, record, org, str(exc), 0, (), None, "", None,
                                 _ZERO, _ZERO, seconds, False))
                continue
            if record.state in version.waived_states:
                out.append(Rated(key, record, org, None, 0, (), version.version, "none",
                                 None, _ZERO, _ZERO, seconds, False))
                continue
            rate = rates.rate(version, customers[org], started_at, record.partition,
                              record.tres, record.qos, record.gpu_type)
            if isinstance(rate, Unpriced):
                out.append(Rated(key, record, org, rate.reason, 0, (), None, "", None,
                                 _ZERO, _ZERO, seconds, False))
                continue
            amount, weights = rate.charge(seconds)
            cents = int(amount.scaleb(2))
            core = gpu = _ZERO
            legs: tuple[tuple[str, int], ...] = ()
            if cents > 0:
                if weights:
                    shares = split_cents(cents, [w for _, w in weights])
                    legs = tuple((str(r), s) for (r, _), s in zip(weights, shares,
                                                                    strict=True))
                else:  # only the minimum charge: labelled as the finish hook does
                    legs = (("review", cents),)
                hours = div(Decimal(seconds), _HOUR)  # QuotaNeed.of
                core = mul(Decimal(record.tres.cpu), hours)
                gpu = mul(Decimal(record.tres.gpu), hours)
            out.append(Rated(key, record, org, None, cents, legs, rate.price_version,
                             str(rate.source), rate.contract_id, core, gpu, seconds, True))
        return out

    # ----------------------------------------------------------------------- posting

    def _post(self, session: Session, rated: list[Rated], at: datetime,
              stats: IngestStats) -> None:
        stats.records += len(rated)
        seen = self._existing(session, [r.key for r in rated])
        fresh: list[Rated] = []
        for item in rated:
            if item.key in seen:
                stats.skipped += 1
                continue
            seen.add(item.key)
            if item.review is not None:
                self.funds._review(session, item.record, item.review, at)
                stats.reviewed += 1
            else:
                fresh.append(item)
        wallets, revenues = self._wallets, self._revenue
        for item in fresh:
            p = item.record.project
            if p not in wallets:
                wallets[p] = project_wallet(p).code
            if item.org not in wallets:
                wallets[item.org] = org_wallet(item.org).code
        orgs = {item.org for item in fresh}
        accounts = {wallets[item.record.project] for item in fresh} | {
            wallets[o] for o in orgs}
        bal = {a: int(v.scaleb(MONEY_SCALE)) for a, v in
               sql.lock(session, accounts, self.currency).items()}
        credit = {o: int(limits.credit_limit(session, o).scaleb(MONEY_SCALE)) for o in orgs}
        owed_to = {o: receivable(f"org:{o}").code for o in orgs}
        currency = self.currency
        txns: list[tuple[Any, ...]] = []
        posts: list[tuple[Any, ...]] = []
        charges: list[tuple[Any, ...]] = []
        deltas: dict[str, int] = defaultdict(int)
        used: dict[str, list[Decimal]] = defaultdict(lambda: [_ZERO, _ZERO])
        hours_q = limits.hours
        ids = iter(new_ids(len(fresh) + sum(1 for item in fresh if item.cents > 0)))
        for item in fresh:
            record, key, org = item.record, item.key, item.org
            project, partition = record.project, record.partition
            amount = item.cents * _CENT_MICROS
            wallet, owallet = wallets[project], wallets[org]
            w, ow = bal[wallet], bal[owallet]
            take_own = min(amount, -w) if w < 0 else 0
            rest = amount - take_own
            room = credit[org] - ow
            take_org = min(rest, room) if room > 0 else 0
            owed = rest - take_org
            txn_id = None
            core_micro = gpu_micro = 0
            if amount > 0:
                bal[wallet] = w + take_own
                bal[owallet] = ow + take_org
                txn_id = next(ids)
                rev = revenues.get(partition)
                if rev is None:
                    rev = revenues[partition] = revenue(partition).code
                line = 0
                for account, value in ((wallet, take_own), (owallet, take_org),
                                       (owed_to[org], owed)):
                    if value:
                        posts.append((txn_id, line, account, value, currency, at, project,
                                      partition, None))
                        deltas[account] += value
                        line += 1
                credited = 0
                for resource, share in item.revenue:
                    if share:
                        value = -share * _CENT_MICROS
                        posts.append((txn_id, line, rev, value, currency, at, project,
                                      partition, resource))
                        credited += value
                        line += 1
                deltas[rev] += credited
                if take_own + take_org + owed + credited != 0:  # as Transaction checks
                    raise AssertionError(f"unbalanced charge for {key}")
                txns.append((txn_id, "capture", at, f"charge for {key}",
                             _refs(project, key, record.user, partition)))
                use = used[project]
                use[0] += item.core_hours
                use[1] += item.gpu_hours
                core_micro = int(hours_q(item.core_hours).scaleb(MONEY_SCALE))
                gpu_micro = int(hours_q(item.gpu_hours).scaleb(MONEY_SCALE))
            tres = record.tres
            charges.append((
                next(ids), key, record.job_id or None, project, record.user, partition,
                record.qos, record.gpu_type, str(record.state), tres.cpu, tres.mem,
                tres.gpu, tres.node, item.seconds, amount, 0, take_own + take_org, owed, 0,
                core_micro, gpu_micro, item.version, item.source, item.contract,
                record.started_at, record.ended_at, at, txn_id,
                "" if item.charged else "not charged"))
        stats.charged += len(fresh)
        self._write(session, txns, posts, charges)
        sql.apply_deltas(session, {a: Decimal(v).scaleb(-MONEY_SCALE)
                                   for a, v in deltas.items() if v}, currency)
        granted = set(session.scalars(select(QuotaRow.project).where(
            QuotaRow.project.in_(list(used))))) if used else set()
        for project in sorted(granted):
            core, gpu = used[project]
            limits.settle_quota(session, project, QuotaNeed(), QuotaNeed(core, gpu))

    def _existing(self, session: Session, keys: list[str]) -> set[str]:
        """Keys of the batch already charged or under review."""
        if sql.dialect(session) == "postgresql":
            # One round trip; the keys travel as one JSON array (encoded in C) rather
            # than as a parameter array adapted key by key.
            rows = session.execute(text(
                "WITH k AS (SELECT json_array_elements_text(CAST(:keys AS json)) AS key) "
                "SELECT c.key FROM charges c JOIN k ON c.key = k.key UNION ALL "
                "SELECT r.key FROM billing_reviews r JOIN k ON r.key = k.key"),
                {"keys": json.dumps(keys)})
            return {key for key, in rows}
        seen = set(session.scalars(select(ChargeRow.key).where(ChargeRow.key.in_(keys))))
        return seen | set(session.scalars(select(ReviewRow.key).where(
            ReviewRow.key.in_(keys))))

    def _write(self, session: Session, txns: list[tuple[Any, ...]],
               posts: list[tuple[Any, ...]], charges: list[tuple[Any, ...]]) -> None:
        """Insert the rows; money columns hold integer millionths already."""
        if sql.dialect(session) == "postgresql":
            raw = session.connection().connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cur:  # type: ignore[attr-defined]
                for table, cols, types, rows in (
                        ("ledger_transactions", _TXN_COLS, _TXN_TYPES, txns),
                        ("ledger_postings", _POST_COLS, _POST_TYPES, posts),
                        ("charges", _CHARGE_COLS, _CHARGE_TYPES, charges)):
                    if not rows:
                        continue
                    quoted = ", ".join(f'"{c}"' for c in cols)
                    with cur.copy(f"COPY {table} ({quoted}) FROM STDIN "
                                  "(FORMAT BINARY)") as copy:
                        copy.set_types(list(types))
                        for row in rows:
                            copy.write_row(row)
            return
        from lightgrid.store.models.billing import LedgerPosting, LedgerTransaction

        for model, cols, rows in ((LedgerTransaction, _TXN_COLS, txns),
                                  (LedgerPosting, _POST_COLS, posts),
                                  (ChargeRow, _CHARGE_COLS, charges)):
            if rows:
                money = [i for i, c in enumerate(cols) if c in _MONEY_COLS]
                dicts = []
                for r in rows:
                    out = list(r)
                    for i in money:
                        out[i] = Decimal(out[i]).scaleb(-MONEY_SCALE)
                    dicts.append(dict(zip(cols, out, strict=True)))
                if model is LedgerTransaction:
                    for d in dicts:
                        d["refs"] = json.loads(d["refs"])
                session.execute(insert(model), dicts)
