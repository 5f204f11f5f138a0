"""Streaming ingestion of usage records: rate and post in batches, exactly once.

Each batch is one database transaction: keys already charged (or under review) are
skipped, the rest are priced by the version in force when each job started, the
wallets they draw on are locked once, and charges, transactions and postings go in
with COPY (PostgreSQL) or executemany (SQLite). A crash loses at most the batch in
flight, and replaying the stream charges nothing twice (the charge key is unique).
Records with a platform hold go through the finish hook instead; this path is for
accounting feeds (e.g. jobs submitted with plain ``sbatch``).
"""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, any_, bindparam, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, sessionmaker

from lightgrid.center.billing import ledger as sql
from lightgrid.center.billing import limits, prices
from lightgrid.center.billing.funds import Funds
from lightgrid.core.funds import UsageRecord
from lightgrid.core.ids import new_id
from lightgrid.core.ledger import org_wallet, project_wallet, receivable, revenue
from lightgrid.core.money import allocate
from lightgrid.core.pricing import Customer, PriceBook, Unpriced, price
from lightgrid.core.quotas import QuotaNeed
from lightgrid.store.base import MONEY_SCALE
from lightgrid.store.models import Organization, Project
from lightgrid.store.models.billing import ChargeRow, QuotaRow, ReviewRow

_ZERO = Decimal(0)
_TXN_COLS = ("id", "kind", "created_at", "memo", "refs")
_POST_COLS = ("transaction_id", "line", "account", "amount", "currency", "created_at",
              "project", "partition", "resource")
_MONEY_COLS = {"amount", "from_hold", "from_funds", "to_receivable", "released",
               "core_hours", "gpu_hours"}
_MICRO = Decimal(10) ** MONEY_SCALE
_CHARGE_COLS = ("id", "key", "job_id", "project", "user", "partition", "qos", "gpu_type",
                "state", "cpus", "mem", "gpus", "nodes", "seconds", "amount", "from_hold",
                "from_funds", "to_receivable", "released", "core_hours", "gpu_hours",
                "price_version", "source", "contract_id", "started_at", "ended_at",
                "created_at", "transaction_id", "note")


@dataclass
class IngestStats:
    records: int = 0
    charged: int = 0
    skipped: int = 0
    reviewed: int = 0
    batches: int = 0


def _batches(records: Iterable[UsageRecord], size: int) -> Iterator[list[UsageRecord]]:
    it = iter(records)
    while batch := list(itertools.islice(it, size)):
        yield batch


class Ingestor:
    """Rates and posts a stream of usage records for one center."""

    def __init__(self, factory: sessionmaker[Session], center: str, funds: Funds,
                 *, batch_size: int = 5000) -> None:
        self.factory = factory
        self.center = center
        self.funds = funds
        self.currency = funds.currency
        self.batch_size = batch_size
        self._orgs: dict[str, tuple[str, str | None]] = {}
        self._customers: dict[str, Customer] = {}

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
        for batch in _batches(records, self.batch_size):
            with self.factory() as session, session.begin():
                self._batch(session, batch, book, at, stats)
            stats.batches += 1
        return stats

    def _batch(self, session: Session, batch: list[UsageRecord], book: PriceBook,
               at: datetime, stats: IngestStats) -> None:
        stats.records += len(batch)
        keys = [str(r.key) for r in batch]
        seen = self._existing(session, keys)
        fresh: list[tuple[UsageRecord, str]] = []
        for record, key in zip(batch, keys, strict=True):
            if key in seen:
                stats.skipped += 1
            else:
                seen.add(key)
                fresh.append((record, key))
        priced = []
        for record, key in fresh:
            org, _ = self._orgs[record.project]
            result = self._price(book, record, self._customers[org])
            if isinstance(result, str):
                self.funds._review(session, record, result, at)
                stats.reviewed += 1
            else:
                priced.append((record, key, org, result))
        accounts = {a for r, _, org, _ in priced for a in (
            project_wallet(r.project).code, org_wallet(org).code)}
        bal = sql.lock(session, accounts, self.currency)
        credit = {org: limits.credit_limit(session, org) for org in {o for _, _, o, _ in priced}}
        txns, posts, charges = [], [], []
        deltas: dict[str, Decimal] = defaultdict(Decimal)
        used: dict[str, list[Decimal]] = defaultdict(lambda: [_ZERO, _ZERO])
        for record, key, org, (quote, version, source, contract) in priced:
            amount = quote.amount.amount if quote else _ZERO
            wallet, owallet = project_wallet(record.project).code, org_wallet(org).code
            own = max(_ZERO, -bal[wallet])
            take_own = min(amount, own)
            take_org = min(amount - take_own, max(_ZERO, -bal[owallet] + credit[org]))
            owed = amount - take_own - take_org
            bal[wallet] += take_own
            bal[owallet] += take_org
            txn_id = None
            if amount > 0:
                txn_id = new_id()
                legs: list[tuple[str, Decimal, str | None]] = [
                    (wallet, take_own, None), (owallet, take_org, None),
                    (receivable(f"org:{org}").code, owed, None)]
                weights = quote.billed_weights()
                shares = allocate(quote.amount, [w for _, w in weights])
                rev = revenue(record.partition).code
                legs += [(rev, -s.amount, str(r)) for (r, _), s in zip(weights, shares,
                                                                         strict=True)]
                legs = [leg for leg in legs if leg[1]]
                if sum(a for _, a, _ in legs) != 0:  # the same guarantee as Transaction
                    raise AssertionError(f"unbalanced charge for {key}")
                txns.append((txn_id, "capture", at, f"charge for {key}", json.dumps(
                    {"project": record.project, "key": key, "user": record.user,
                     "partition": record.partition})))
                for line, (account, value, resource) in enumerate(legs):
                    posts.append((txn_id, line, account, value, self.currency, at,
                                  record.project, record.partition, resource))
                    deltas[account] += value
                need = QuotaNeed.of(record.tres, record.billable_seconds)
                used[record.project][0] += need.core_hours
                used[record.project][1] += need.gpu_hours
            shape = record.shape()
            ch = QuotaNeed.of(record.tres, record.billable_seconds) if amount > 0 \
                else QuotaNeed()
            charges.append((
                new_id(), key, record.job_id or None, record.project, record.user,
                record.partition, record.qos, record.gpu_type, str(record.state),
                shape.tres.cpu, shape.tres.mem, shape.tres.gpu, shape.tres.node,
                shape.seconds, amount, _ZERO, take_own + take_org, owed, _ZERO,
                limits.hours(ch.core_hours), limits.hours(ch.gpu_hours), version, source,
                contract, record.started_at, record.ended_at, at, txn_id,
                "" if quote else "not charged"))
            stats.charged += 1
        self._write(session, txns, posts, charges)
        sql.apply_deltas(session, dict(deltas), self.currency)
        granted = set(session.scalars(select(QuotaRow.project).where(
            QuotaRow.project.in_(list(used))))) if used else set()
        for project in sorted(granted):
            core, gpu = used[project]
            limits.settle_quota(session, project, QuotaNeed(), QuotaNeed(core, gpu))

    def _existing(self, session: Session, keys: list[str]) -> set[str]:
        """Keys of the batch already charged or under review."""
        if sql.dialect(session) == "postgresql":
            arr = bindparam("keys", keys, type_=ARRAY(String))
            cond_c, cond_r = ChargeRow.key == any_(arr), ReviewRow.key == any_(arr)
        else:
            cond_c, cond_r = ChargeRow.key.in_(keys), ReviewRow.key.in_(keys)
        seen = set(session.scalars(select(ChargeRow.key).where(cond_c)))
        return seen | set(session.scalars(select(ReviewRow.key).where(cond_r)))

    def _price(self, book: PriceBook, record: UsageRecord,
               customer: Customer) -> str | tuple[Any, int | None, str, str | None]:
        """(quote or None when free, version, source, contract) or the review reason."""
        if not record.started or record.started_at is None:
            return None, None, "none", None
        try:
            version = book.version_at(record.started_at)
        except Exception as exc:  # no version in force then: an operator decides
            return str(exc)
        if record.state in version.waived_states:
            return None, version.version, "none", None
        result = price(version, record.shape(), customer, at=record.started_at)
        if isinstance(result, Unpriced):
            return result.reason
        return result, version.version, str(result.source), result.contract_id

    def _write(self, session: Session, txns: list[tuple[Any, ...]],
               posts: list[tuple[Any, ...]], charges: list[tuple[Any, ...]]) -> None:
        if sql.dialect(session) == "postgresql":
            raw = session.connection().connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cur:  # type: ignore[attr-defined]
                for table, cols, rows in (("ledger_transactions", _TXN_COLS, txns),
                                          ("ledger_postings", _POST_COLS, posts),
                                          ("charges", _CHARGE_COLS, charges)):
                    if not rows:
                        continue
                    quoted = ", ".join(f'"{c}"' for c in cols)
                    money = [i for i, c in enumerate(cols) if c in _MONEY_COLS]
                    with cur.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                        for row in rows:
                            out = list(row)
                            for i in money:  # MoneyColumn stores integer millionths
                                out[i] = int(out[i] * _MICRO)
                            copy.write_row(out)
            return
        from lightgrid.store.models.billing import LedgerPosting, LedgerTransaction

        for model, cols, rows in ((LedgerTransaction, _TXN_COLS, txns),
                                  (LedgerPosting, _POST_COLS, posts),
                                  (ChargeRow, _CHARGE_COLS, charges)):
            if rows:
                dicts = [dict(zip(cols, r, strict=True)) for r in rows]
                if model is LedgerTransaction:
                    for d in dicts:
                        d["refs"] = json.loads(d["refs"])
                session.execute(insert(model), dicts)
