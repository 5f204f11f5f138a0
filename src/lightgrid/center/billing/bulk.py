"""Streaming ingestion of usage records: rate and post in batches, exactly once.

Each batch is one database transaction: keys already charged (or under review) are
skipped, the rest are priced by the version in force when each job started, every
balance row the batch moves is locked once (in account order), and charges,
transactions and postings go in with binary COPY (PostgreSQL) or executemany
(SQLite). A crash loses at most the batches not yet committed, and replaying the
stream charges nothing twice: the charge key is unique, and on PostgreSQL a batch
whose COPY finds a key charged already is rolled back and posted again with every
key looked up first (so the common case, new keys, needs no look-up). Records with a platform
hold go through the finish hook instead; this path is for accounting feeds (e.g.
jobs submitted with plain ``sbatch``).

The client's work and the database's overlap: the calling thread rates batch k+1
and builds its rows while a writer thread posts batch k. The rows are built against
the wallet balances and credit limits the earlier batches will leave; the writer
locks the balance rows and posts them as built only if the database agrees, else it
rolls back and builds them again under the lock (a top-up or another charge in
between), and the batches queued behind are posted before any more are built. At
most `depth` built batches wait for the writer, so memory stays bounded whatever the
stream's length.

Rating prices each job shape once (`hourly_rate`, through `price()`) and then, per
record, computes the cents in integers with the result `price()` and `allocate()`
give (`rating.ShapeRate`, falling back to their Decimal steps near a rounding tie).
The draw and the rows use integer millionths, the unit `MoneyColumn` stores. The rows
are PostgreSQL binary COPY data from pieces encoded once per project, partition,
account and job shape (`copyrows`); SQLite decodes the same bytes into inserts.
"""

from __future__ import annotations

import itertools
import json
import queue
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from json.encoder import encode_basestring_ascii as _js  # what json.dumps uses
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from lightgrid.center.billing import copyrows as cr
from lightgrid.center.billing import ledger as sql
from lightgrid.center.billing import limits, prices
from lightgrid.center.billing.funds import Funds
from lightgrid.center.billing.rating import ShapeRate, micro_hours
from lightgrid.core.funds import UsageRecord
from lightgrid.core.ids import new_id, uuid7
from lightgrid.core.ledger import org_wallet, project_wallet, receivable, revenue
from lightgrid.core.money import RATE_CONTEXT
from lightgrid.core.pricing import (
    Customer,
    JobShape,
    PriceBook,
    PriceBookVersion,
    Resource,
    Unpriced,
    hourly_rate,
)
from lightgrid.core.quotas import QuotaNeed
from lightgrid.store.base import MONEY_SCALE
from lightgrid.store.models import Organization, Project
from lightgrid.store.models.billing import (
    ChargeRow,
    FundsLimit,
    LedgerPosting,
    LedgerTransaction,
    QuotaRow,
    ReviewRow,
)

_ZERO = Decimal(0)
_HOUR = Decimal(3600)
_CENT_MICROS = 10 ** MONEY_SCALE // 100
_NEVER = datetime.max.replace(tzinfo=UTC)
_ID_FIELD = "\x00\x00\x00$"  # the COPY length field of a 36-character id
_MEMO = b"charge for "

#: One record after rating, before the draw (which needs the balances): (key, record,
#: the charge's shape columns (`copyrows.shape`), amount in cents, revenue legs as
#: (resource, cents), core and GPU micro-hours, billable seconds, the reason when no
#: price covers it (None when priced), its project and partition (`_Place`)).
Rated = tuple[str, UsageRecord, bytes, int, tuple[tuple[str, int], ...], int, int, int,
              str | None, "_Place"]


@dataclass
class IngestStats:
    records: int = 0
    charged: int = 0
    skipped: int = 0
    reviewed: int = 0
    batches: int = 0

    def add(self, other: IngestStats) -> None:
        self.records += other.records
        self.charged += other.charged
        self.skipped += other.skipped
        self.reviewed += other.reviewed
        self.batches += other.batches


_RAND_B = (1 << 62) - 1
_LOW = (1 << 48) - 1  # the id's last group: 12 hex digits


def _id_runs(n: int) -> list[tuple[str, range]] | None:
    """`n` new UUIDv7 ids as runs of (first four groups, values of the last group).

    One `uuid7()` gives the millisecond, the counter and a random start; the rest
    count up in its random field, so they sort after it and before any later id.
    None if counting up would carry into the variant bits.
    """
    first = uuid7().int
    if (first & _RAND_B) + n > _RAND_B:
        return None
    runs = []
    value, end = first, first + n
    while value < end:  # the first four groups change only when the last one wraps
        h = f"{value:032x}"
        stop = min(end, (value | _LOW) + 1)
        runs.append((f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-",
                     range(value & _LOW, (stop - 1 & _LOW) + 1)))
        value = stop
    return runs


def new_ids(n: int) -> list[str]:
    """`n` new UUIDv7 ids, increasing, after every id `new_id()` made before."""
    runs = _id_runs(n)
    if runs is None:
        return [new_id() for _ in range(n)]
    return [f"{head}{low:012x}" for head, lows in runs for low in lows]


def _id_fields(n: int) -> list[bytes]:
    """`new_ids(n)` as binary COPY fields (length and UTF-8)."""
    runs = _id_runs(n)
    if runs is None:
        return [(_ID_FIELD + i).encode() for i in new_ids(n)]
    return [f"{_ID_FIELD}{head}{low:012x}".encode() for head, lows in runs for low in lows]


def _json(value: str | None) -> str:
    return "null" if value is None else _js(value)


def _charged_already(exc: BaseException) -> bool:
    """A COPY refused by the unique charge key: a key of the batch is charged already."""
    return (getattr(exc, "sqlstate", None) == "23505"
            and getattr(getattr(exc, "diag", None), "constraint_name", None)
            == "uq_charges_key")


def _batches(records: Iterable[UsageRecord], size: int) -> Iterator[list[UsageRecord]]:
    it = iter(records)
    while batch := list(itertools.islice(it, size)):
        yield batch


class _Price:
    """A job shape's hourly rate (or why it has none) and its encoded charge columns."""

    __slots__ = ("rate", "reason", "shape")

    def __init__(self, rate: ShapeRate | None, reason: str | None, shape: bytes) -> None:
        self.rate, self.reason, self.shape = rate, reason, shape


class _Place:
    """One project's charges on one partition in one run: the accounts they move and
    the row pieces that repeat (encoded once)."""

    __slots__ = ("charge_tail", "legs", "org", "org_wallet", "owed", "project",
                 "refs_head", "refs_tail", "revenue", "revenue_legs", "txn_tail", "wallet")

    def __init__(self, project: str, org: str, partition: str, currency: str,
                 at: datetime) -> None:
        self.project, self.org = project, org
        self.wallet = project_wallet(project).code
        self.org_wallet = org_wallet(org).code
        self.owed = receivable(f"org:{org}").code
        self.revenue = revenue(partition).code
        #: the revenue legs' columns after the amount, by resource (or "review")
        self.revenue_legs = {r: cr.posting_tail(self.revenue, r, project, partition,
                                                currency, at)
                             for r in (*(str(r) for r in Resource), "review")}
        #: the wallet legs' columns after the amount: project, organization, receivable
        self.legs = tuple(cr.posting_tail(a, None, project, partition, currency, at)
                          for a in (self.wallet, self.org_wallet, self.owed))
        self.charge_tail = cr.charge_tail(project, at)
        self.refs_head = f'{{"project": {_js(project)}, "key": '
        self.refs_tail = f', "partition": {_js(partition)}}}'
        self.txn_tail = cr.transaction_tail("capture", at)

    def refs(self, key: str, user: str) -> str:
        """The transaction's refs, as ``json.dumps`` writes them; `user` in JSON."""
        return f'{self.refs_head}{_js(key)}, "user": {user}{self.refs_tail}'


def _accounts(places: Iterable[_Place]) -> set[str]:
    """The balance rows a batch on `places` moves (and locks)."""
    return {a for p in places for a in (p.wallet, p.org_wallet, p.owed, p.revenue)}


class _Rows:
    """A batch's charges, transactions and postings as binary COPY pieces (joined as
    they are), with the balance changes and quota seconds they carry."""

    __slots__ = ("charges", "deltas", "posts", "txns", "used")

    def __init__(self) -> None:
        self.charges: list[bytes] = []
        self.txns: list[bytes] = []
        self.posts: list[bytes] = []
        self.deltas: dict[str, int] = defaultdict(int)
        self.used: dict[str, list[int]] = {}  # project: [core seconds, GPU seconds]


@dataclass(slots=True)
class _Prepared:
    """A rated batch: its first records per key, split into priced ones (`fresh`) and
    ones for review, and the priced ones' rows, built against the funds balances and
    credit limits (integer millionths) expected when it is posted."""

    seq: int
    rated: list[Rated]
    fresh: list[Rated]
    reviews: list[Rated]
    skipped: int  # keys repeated within the batch
    places: list[_Place]
    expected: dict[str, int]  # funds balances before the batch
    credit: dict[str, int]
    rows: _Rows


class _Stale(Exception):
    """A prepared batch no longer fits the database: build it again under lock."""


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
        self._projects: dict[str, tuple[str, Customer]] = {}
        self._prices: dict[tuple[object, ...], _Price] = {}
        self._idle: dict[tuple[object, ...], bytes] = {}
        self._places: dict[tuple[str, str], _Place] = {}
        self._users: dict[str | None, tuple[bytes, str]] = {}
        self._states: dict[str, bytes] = {}
        #: funds balances and credit limits as the batches built so far will leave
        #: them, the changes of the batches not yet posted (by number), and a lock:
        #: the calling thread builds, the writer posts and corrects
        self._expected: dict[str, int] = {}
        self._credit: dict[str, int] = {}
        self._unposted: dict[int, dict[str, int]] = {}
        self._built = 0
        self._lock = threading.Lock()
        self._rebuilt = threading.Event()

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
            # every wallet and credit line (missing ones are zero), to build against
            self._expected = {a: int(b) for a, b in session.execute(text(
                "SELECT account, balance FROM ledger_balances "
                "WHERE account LIKE 'wallet:%'"))}
            self._credit = {o[4:]: int(c) for o, c in session.execute(text(
                "SELECT owner, credit_limit FROM funds_limits WHERE owner LIKE 'org:%'"))}
        self._projects = {p: (o, self._customers[o]) for p, (o, _) in self._orgs.items()}
        # contracts may have changed since the last run; `at` is in the cached rows
        self._prices, self._idle, self._places = {}, {}, {}
        self._unposted = {}
        self._rebuilt.clear()
        pending: queue.Queue[_Prepared | None] = queue.Queue(maxsize=self.depth)
        failed: list[BaseException] = []

        def write() -> None:
            while (prepared := pending.get()) is not None:
                try:
                    if not failed:  # else drain, so that the producer never blocks
                        stats.add(self._commit(prepared, at))
                except BaseException as exc:  # handed to the caller's thread
                    failed.append(exc)
                finally:
                    pending.task_done()

        writer = threading.Thread(target=write, name="billing-ingest", daemon=True)
        writer.start()
        try:
            for batch in _batches(records, self.batch_size):
                if failed:
                    break
                rated = self._rate(batch, book, at)
                if self._rebuilt.is_set():
                    # A batch was built again: the ones queued behind it were built on
                    # the old expectation too. Let them be posted before building on.
                    pending.join()
                    self._rebuilt.clear()
                pending.put(self._prepare(rated, at))
        finally:
            pending.put(None)
            writer.join()
        if failed:
            raise failed[0]
        return stats

    # ------------------------------------------------------------------------ rating

    def _rate(self, batch: list[UsageRecord], book: PriceBook,
              at: datetime) -> list[Rated]:
        """Price a batch: pure, no database (runs while the writer posts)."""
        out: list[Rated] = []
        append = out.append
        projects, cache, places = self._projects, self._prices, self._places
        last = book.versions[-1] if book.versions else None
        last_from = last.effective_from if last else _NEVER
        for record in batch:
            key = str(record.key)
            place = places.get((record.project, record.partition))
            if place is None:
                place = self._place(record, at)
            started, elapsed = record.started_at, record.elapsed
            if started is None or elapsed <= 0:  # never ran
                append((key, record, self._idle_shape(None, record), 0, (), 0, 0, 0, None,
                        place))
                continue
            limit = record.time_limit  # UsageRecord.billable_seconds
            seconds = elapsed if limit is None or elapsed < limit else limit
            # the latest version is in force for most records; version_at finds the
            # others and refuses naive times
            version = last if started.tzinfo is not None and started >= last_from else None
            if version is None:
                try:
                    version = book.version_at(started)
                except Exception as exc:  # no version in force then: an operator decides
                    append((key, record, b"", 0, (), 0, 0, seconds, str(exc), place))
                    continue
            if record.state in version.waived_states:
                append((key, record, self._idle_shape(version.version, record), 0, (), 0,
                        0, seconds, None, place))
                continue
            customer = projects[record.project][1]
            contract = customer.contract_at(started) if customer.contracts else None
            tres = record.tres
            shape_key = (version.version, customer.tier, contract.id if contract else None,
                         record.partition, record.qos, record.gpu_type, tres.cpu, tres.mem,
                         tres.gpu, tres.node)
            price = cache.get(shape_key)
            if price is None:
                price = cache[shape_key] = self._price(version, customer, started, record)
            rate = price.rate
            if rate is None:
                append((key, record, b"", 0, (), 0, 0, seconds, price.reason, place))
                continue
            cents, shares = rate.split(seconds)
            if cents <= 0:
                append((key, record, price.shape, 0, (), 0, 0, seconds, None, place))
                continue
            # only the minimum charge (no billed line): labelled as the finish hook does
            legs = shares or (("review", cents),)
            append((key, record, price.shape, cents, legs, micro_hours(tres.cpu, seconds),
                    micro_hours(tres.gpu, seconds), seconds, None, place))
        return out

    def _price(self, version: PriceBookVersion, customer: Customer, started: datetime,
               record: UsageRecord) -> _Price:
        tres = record.tres
        rate = hourly_rate(version, JobShape(record.partition, tres, 3600, record.qos,
                                             record.gpu_type), customer, started)
        if isinstance(rate, Unpriced):
            return _Price(None, rate.reason, b"")
        return _Price(ShapeRate(rate), None, cr.shape(
            record.partition, record.qos, record.gpu_type, tres.cpu, tres.mem, tres.gpu,
            tres.node, rate.price_version, str(rate.source), rate.contract_id, ""))

    def _idle_shape(self, version: int | None, record: UsageRecord) -> bytes:
        """The shape columns of a record charged nothing (never ran, or waived)."""
        tres = record.tres
        key = (version, record.partition, record.qos, record.gpu_type, tres.cpu, tres.mem,
               tres.gpu, tres.node)
        found = self._idle.get(key)
        if found is None:
            found = self._idle[key] = cr.shape(
                record.partition, record.qos, record.gpu_type, tres.cpu, tres.mem,
                tres.gpu, tres.node, version, "none", None, "not charged")
        return found

    # --------------------------------------------------------------- building rows

    def _prepare(self, rated: list[Rated], at: datetime) -> _Prepared:
        """Build a rated batch's rows in the calling thread, against the balances the
        earlier batches leave (`_expected`); the writer checks them under lock."""
        seen: set[str] = set()
        fresh: list[Rated] = []
        reviews: list[Rated] = []
        skipped = 0
        for item in rated:
            if item[0] in seen:  # repeated within the batch: the first one counts
                skipped += 1
                continue
            seen.add(item[0])
            (fresh if item[8] is None else reviews).append(item)
        places = list({item[9] for item in fresh})
        with self._lock:
            expected = {a: self._expected.get(a, 0) for p in places
                        for a in (p.wallet, p.org_wallet)}
            credit = {p.org: self._credit.get(p.org, 0) for p in places}
        end = dict(expected)
        rows = self._rows(fresh, end, credit)
        effect = {a: v - expected[a] for a, v in end.items() if v != expected[a]}
        with self._lock:
            self._built += 1
            seq = self._built
            self._unposted[seq] = effect
            for account, change in effect.items():
                self._expected[account] = self._expected.get(account, 0) + change
        return _Prepared(seq, rated, fresh, reviews, skipped, places, expected, credit,
                         rows)

    def _place(self, record: UsageRecord, at: datetime) -> _Place:
        place = self._places[record.project, record.partition] = _Place(
            record.project, self._projects[record.project][0], record.partition,
            self.currency, at)
        return place

    def _rows(self, fresh: list[Rated], bal: dict[str, int],
              credit: dict[str, int]) -> _Rows:
        """Draw each charge on its wallets (`bal`, integer millionths, is moved along)
        and encode its charge, transaction and postings."""
        rows = _Rows()
        deltas, used = rows.deltas, rows.used
        txns, posts, charges = rows.txns, rows.posts, rows.charges
        users, states = self._users, self._states
        text_field, null, i32 = cr.text, cr.NULL, cr.I32
        leg_numbers, numbers, numbers_started = (cr.POSTING_NUMBERS, cr.CHARGE_NUMBERS,
                                                 cr.CHARGE_NUMBERS_STARTED)
        charge_head, txn_head, posting_head = (cr.CHARGE_HEAD, cr.TRANSACTION_HEAD,
                                               cr.POSTING_HEAD)
        epoch, microsecond = cr.EPOCH, cr.MICROSECOND
        next_id = iter(_id_fields(len(fresh) + sum(1 for item in fresh if item[3] > 0))
                       ).__next__
        for key, record, shape, cents, legs, core, gpu, seconds, _, place in fresh:
            project = record.project
            user = record.user
            who = users.get(user)
            if who is None:  # its COPY field and its JSON
                who = users[user] = (text_field(user), _json(user))
            state = states.get(record.state)
            if state is None:
                state = states[record.state] = text_field(str(record.state))
            encoded_key = key.encode()
            key_field = i32(len(encoded_key))
            amount = cents * _CENT_MICROS
            take_own = take_org = owed = 0
            txn_field = null
            if amount > 0:
                wallet, owallet = place.wallet, place.org_wallet
                w, ow = bal[wallet], bal[owallet]
                take_own = min(amount, -w) if w < 0 else 0
                rest = amount - take_own
                room = credit[place.org] - ow
                take_org = min(rest, room) if room > 0 else 0
                owed = rest - take_org
                txn_field = next_id()
                head = posting_head + txn_field
                line = 0
                if take_own:
                    bal[wallet] = w + take_own
                    deltas[wallet] += take_own
                    posts += (head, leg_numbers(4, 0, 8, take_own), place.legs[0])
                    line = 1
                if take_org:
                    bal[owallet] = ow + take_org
                    deltas[owallet] += take_org
                    posts += (head, leg_numbers(4, line, 8, take_org), place.legs[1])
                    line += 1
                if owed:
                    deltas[place.owed] += owed
                    posts += (head, leg_numbers(4, line, 8, owed), place.legs[2])
                    line += 1
                credited = 0
                revenue_legs = place.revenue_legs
                for resource, share in legs:
                    if share:
                        value = -share * _CENT_MICROS
                        posts += (head, leg_numbers(4, line, 8, value),
                                  revenue_legs[resource])
                        credited += value
                        line += 1
                deltas[place.revenue] += credited
                if take_own + take_org + owed + credited != 0:  # as Transaction checks
                    raise AssertionError(f"unbalanced charge for {key}")
                encoded_refs = place.refs(key, who[1]).encode()
                txns += (txn_head, txn_field, i32(len(encoded_key) + len(_MEMO)), _MEMO,
                         encoded_key, i32(len(encoded_refs)), encoded_refs, place.txn_tail)
                use = used.get(project)
                if use is None:
                    use = used[project] = [0, 0]
                use[0] += record.tres.cpu * seconds
                use[1] += record.tres.gpu * seconds
            job = record.job_id
            started = record.started_at
            ended = (record.ended_at - epoch) // microsecond
            charges += (
                charge_head, next_id(), key_field, encoded_key, txn_field, who[0],
                text_field(job) if job else null, state,
                (numbers(4, seconds, 8, amount, 8, take_own + take_org, 8, owed, 8, core,
                         8, gpu, 8, ended) + null) if started is None else
                numbers_started(4, seconds, 8, amount, 8, take_own + take_org, 8, owed,
                                8, core, 8, gpu, 8, ended, 8,
                                (started - epoch) // microsecond),
                shape, place.charge_tail)
        return rows

    # ----------------------------------------------------------------------- posting

    def _commit(self, prepared: _Prepared, at: datetime) -> IngestStats:
        """Post one batch in its own transaction: the rows built beforehand if the
        balances and limits are still those expected and no key was charged already,
        else (rolled back and) built again under lock with every key looked up."""
        try:
            with self.factory() as session, session.begin():
                return self._post_prepared(session, prepared, at)
        except _Stale:
            pass
        except Exception as exc:
            if not _charged_already(exc):
                raise
        with self.factory() as session, session.begin():
            return self._post(session, prepared, at)

    def _post_prepared(self, session: Session, p: _Prepared, at: datetime) -> IngestStats:
        """On PostgreSQL the priced keys are not looked up among the charges: the
        unique index refuses one charged already (the COPY fails, see `_commit`)."""
        stats = IngestStats(records=len(p.rated), skipped=p.skipped, batches=1)
        postgres = sql.dialect(session) == "postgresql"
        sent = [item[0] for item in p.reviews]
        seen = self._existing(session, [item[0] for item in p.fresh] + sent,
                              sent if postgres else None)
        if any(item[0] in seen for item in p.fresh):
            raise _Stale
        for item in p.reviews:
            if item[0] in seen:
                stats.skipped += 1
            else:
                self.funds._review(session, item[1], item[8] or "", at)
                stats.reviewed += 1
        locked = sql.lock_micros(session, _accounts(p.places), self.currency)
        if (any(locked[a] != v for a, v in p.expected.items())
                or self._credit_limits(session, p.credit) != p.credit):
            raise _Stale  # moved by another transaction since the run read them
        stats.charged = len(p.fresh)
        self._finish(session, p.rows, locked)
        with self._lock:
            self._unposted.pop(p.seq, None)
        return stats

    def _post(self, session: Session, prepared: _Prepared,
              at: datetime) -> IngestStats:
        """Post a batch with every key looked up and its rows built again under lock;
        the batches built after it are corrected by the difference it makes."""
        rated = prepared.rated
        stats = IngestStats(records=len(rated), batches=1)
        seen = self._existing(session, [r[0] for r in rated])
        fresh: list[Rated] = []
        for item in rated:
            key = item[0]
            if key in seen:
                stats.skipped += 1
                continue
            seen.add(key)
            if item[8] is not None:
                self.funds._review(session, item[1], item[8], at)
                stats.reviewed += 1
            else:
                fresh.append(item)
        locked = sql.lock_micros(session, _accounts(prepared.places), self.currency)
        credit = self._credit_limits(session, {p.org: 0 for p in prepared.places})
        bal = dict(locked)
        rows = self._rows(fresh, bal, credit)
        with self._lock:  # what is posted now, and what the batches behind it add
            del self._unposted[prepared.seq]
            for account in prepared.expected:
                self._expected[account] = bal[account] + sum(
                    e.get(account, 0) for e in self._unposted.values())
            self._credit.update(credit)
        self._rebuilt.set()
        stats.charged = len(fresh)
        self._finish(session, rows, locked)
        return stats

    def _credit_limits(self, session: Session, orgs: dict[str, int]) -> dict[str, int]:
        """The credit limits of `orgs` (keys), integer millionths."""
        out = dict.fromkeys(orgs, 0)
        for owner, limit in session.execute(select(
                FundsLimit.owner, FundsLimit.credit_limit).where(
                FundsLimit.owner.in_([f"org:{o}" for o in orgs]))):
            out[owner[4:]] = int(limit.scaleb(MONEY_SCALE))
        return out

    def _finish(self, session: Session, rows: _Rows, locked: dict[str, int]) -> None:
        """Insert the rows, move the locked balances, record quota hours."""
        self._write(session, rows.txns, rows.posts, rows.charges)
        sql.set_micros(session, {a: locked[a] + d for a, d in rows.deltas.items() if d})
        used = rows.used
        granted = set(session.scalars(select(QuotaRow.project).where(
            QuotaRow.project.in_(list(used))))) if used else set()
        for project in sorted(granted):
            # the summed seconds, once: the stored hours (six places) are those of the
            # per-record sum (see micro_hours)
            core_seconds, gpu_seconds = used[project]
            limits.settle_quota(session, project, QuotaNeed(), QuotaNeed(
                RATE_CONTEXT.divide(Decimal(core_seconds), _HOUR),
                RATE_CONTEXT.divide(Decimal(gpu_seconds), _HOUR)))

    def _existing(self, session: Session, keys: list[str],
                  charged: list[str] | None = None) -> set[str]:
        """Keys of the batch under review, or charged (of `charged` only, if given)."""
        probe = keys if charged is None else charged
        if sql.dialect(session) == "postgresql":
            # One round trip; the keys travel as JSON arrays (encoded in C) rather than
            # as parameter arrays adapted key by key.
            rows = session.execute(text(
                "SELECT r.key FROM billing_reviews r JOIN (SELECT json_array_elements_text("
                "CAST(:keys AS json)) AS key) k ON r.key = k.key UNION ALL "
                "SELECT c.key FROM charges c JOIN (SELECT json_array_elements_text("
                "CAST(:probe AS json)) AS key) p ON c.key = p.key"),
                {"keys": json.dumps(keys), "probe": json.dumps(probe)})
            return {key for key, in rows}
        seen = set(session.scalars(select(ChargeRow.key).where(ChargeRow.key.in_(probe))))
        return seen | set(session.scalars(select(ReviewRow.key).where(
            ReviewRow.key.in_(keys))))

    def _write(self, session: Session, txns: list[bytes], posts: list[bytes],
               charges: list[bytes]) -> None:
        """COPY the rows in: charges first (a key charged already fails the batch before
        the rest is sent), transactions before their postings (which are checked
        against them when the statement ends)."""
        tables: list[tuple[Any, cr.Columns, list[bytes]]] = [
            (ChargeRow, cr.CHARGE, charges), (LedgerTransaction, cr.TRANSACTION, txns),
            (LedgerPosting, cr.POSTING, posts)]
        if sql.dialect(session) == "postgresql":
            raw = session.connection().connection.dbapi_connection
            assert raw is not None
            with raw.cursor() as cur:  # type: ignore[attr-defined]
                for model, columns, rows in tables:
                    if not rows:
                        continue
                    names = ", ".join(f'"{name}"' for name, _ in columns)
                    with cur.copy(f"COPY {model.__tablename__} ({names}) FROM STDIN "
                                  "(FORMAT BINARY)") as copy:
                        copy.write(cr.SIGNATURE)
                        copy.write(b"".join(rows))
                        copy.write(cr.TRAILER)
            return
        for model, columns, rows in tables:
            if rows:
                session.execute(insert(model), list(cr.decode(
                    cr.SIGNATURE + b"".join(rows) + cr.TRAILER, columns)))
