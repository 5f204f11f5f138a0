"""The double-entry ledger in SQL: post balanced transactions, lock and read balances.

`post` writes a core `Transaction` (already checked to balance when it was built) and
moves the running balances in `ledger_balances`. Callers first `lock` every balance
row they will read or change, in account order, so parallel transactions never
deadlock and a balance read under the lock stays true until commit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal

from sqlalchemy import ColumnElement, and_, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from lightgrid.core.ledger import Ledger, Posting, Transaction, TxnKind
from lightgrid.core.money import CENT
from lightgrid.store.base import MONEY_SCALE
from lightgrid.store.models.billing import LedgerBalance, LedgerPosting, LedgerTransaction

_ZERO = Decimal(0)


def dialect(session: Session) -> str:
    return session.get_bind().dialect.name


def dialect_of(factory: sessionmaker[Session]) -> str:
    bind = factory.kw.get("bind")
    return bind.dialect.name if bind is not None else ""


def exact(value: object) -> Decimal:
    """A SQL aggregate as an exact cent amount (SQLite sums NUMERIC as floats)."""
    if value is None:
        return _ZERO
    return Decimal(str(value)).quantize(CENT)


def ensure_accounts(session: Session, accounts: Iterable[str], currency: str) -> None:
    """Create missing balance rows (zero) without touching existing ones."""
    rows = [{"account": a, "currency": currency, "balance": _ZERO} for a in set(accounts)]
    if not rows:
        return
    ins = postgresql.insert if dialect(session) == "postgresql" else sqlite.insert
    session.execute(ins(LedgerBalance).on_conflict_do_nothing(
        index_elements=["account"]), rows)


def lock(session: Session, accounts: Iterable[str], currency: str) -> dict[str, Decimal]:
    """Lock the balance rows of `accounts` (in account order) and return the balances.

    On PostgreSQL this is ``SELECT ... FOR UPDATE``; SQLite already holds the write
    lock from ``BEGIN IMMEDIATE``.
    """
    codes = sorted(set(accounts))
    ensure_accounts(session, codes, currency)
    rows = session.execute(select(LedgerBalance.account, LedgerBalance.balance)
                           .where(LedgerBalance.account.in_(codes))
                           .order_by(LedgerBalance.account).with_for_update()).all()
    return {a: exact(b) for a, b in rows}


def balances(session: Session, accounts: Iterable[str]) -> dict[str, Decimal]:
    """Current balances (debit-positive) without locking; missing accounts are zero."""
    codes = sorted(set(accounts))
    out = dict.fromkeys(codes, _ZERO)
    for account, balance in session.execute(select(
            LedgerBalance.account, LedgerBalance.balance).where(
            LedgerBalance.account.in_(codes))):
        out[account] = exact(balance)
    return out


def micros(balances: dict[str, Decimal]) -> dict[str, int]:
    """Balances in integer millionths (what `MoneyColumn` stores)."""
    return {a: int(v.scaleb(MONEY_SCALE)) for a, v in balances.items()}


def apply_deltas(session: Session, deltas: dict[str, Decimal], currency: str) -> None:
    """Move balances by `deltas`; the rows are locked first, in account order."""
    current = lock(session, deltas, currency)
    rows = [{"account": a, "balance": current[a] + deltas[a]} for a in sorted(deltas)
            if deltas[a]]
    if rows:  # one executemany (pipelined on PostgreSQL) by primary key
        session.execute(update(LedgerBalance), rows)


def lock_micros(session: Session, accounts: Iterable[str],
                currency: str) -> dict[str, int]:
    """`lock`, with the balances in integer millionths (what `MoneyColumn` stores).

    On PostgreSQL the missing rows are created and the rows locked with one statement
    each, the accounts passed as one array (the bulk ingestor locks hundreds per batch).
    """
    codes = sorted(set(accounts))
    if dialect(session) != "postgresql":
        return micros(lock(session, codes, currency))
    session.execute(text(
        "INSERT INTO ledger_balances (account, currency, balance) "
        "SELECT a, :currency, 0 FROM unnest(CAST(:accounts AS text[])) AS a "
        "ON CONFLICT (account) DO NOTHING"), {"accounts": codes, "currency": currency})
    rows = session.execute(text(
        "SELECT account, balance FROM ledger_balances "
        "WHERE account = ANY(CAST(:accounts AS text[])) ORDER BY account FOR UPDATE"),
        {"accounts": codes})
    return {a: int(b) for a, b in rows}


def set_micros(session: Session, balances: dict[str, int]) -> None:
    """Write new balances (integer millionths) of rows the caller has locked."""
    if not balances:
        return
    codes = sorted(balances)
    if dialect(session) == "postgresql":
        session.execute(text(
            "UPDATE ledger_balances AS b SET balance = v.balance FROM unnest("
            "CAST(:accounts AS text[]), CAST(:balances AS bigint[])) AS v(account, balance) "
            "WHERE b.account = v.account"),
            {"accounts": codes, "balances": [balances[a] for a in codes]})
        return
    session.execute(update(LedgerBalance), [
        {"account": a, "balance": Decimal(balances[a]).scaleb(-MONEY_SCALE)} for a in codes])


def posting_rows(txn: Transaction) -> list[dict[str, object]]:
    return [{"transaction_id": txn.id, "line": i, "account": p.account,
             "amount": p.amount, "currency": p.currency, "created_at": p.created_at,
             "project": p.ref("project"), "partition": p.ref("partition"),
             "resource": p.ref("resource")} for i, p in enumerate(txn.postings)]


def post(session: Session, txn: Transaction, *, receipt: str | None = None) -> Transaction:
    """Append `txn` and its postings and move the balances, in the caller's transaction."""
    session.execute(insert(LedgerTransaction), [{
        "id": txn.id, "kind": str(txn.kind), "created_at": txn.created_at,
        "memo": txn.memo[:500], "refs": dict(txn.refs), "receipt": receipt}])
    session.execute(insert(LedgerPosting), posting_rows(txn))
    deltas: dict[str, Decimal] = defaultdict(Decimal)
    currency = txn.postings[0].currency
    for p in txn.postings:
        deltas[p.account] += p.amount
    apply_deltas(session, dict(deltas), currency)
    return txn


#: On PostgreSQL only the postings of funds accounts (wallets, holds), the ones read by
#: period, are indexed by (account, created_at) (migration 0004); a query for those
#: accounts states the index's condition, word for word, so the planner can use it.
_FUNDS_KINDS = ("wallet:", "hold:")
_FUNDS_ACCOUNTS = text("(account LIKE 'wallet:%' OR account LIKE 'hold:%')")


def _of_accounts(accounts: Sequence[str]) -> ColumnElement[bool]:
    clause = LedgerPosting.account.in_(accounts)
    if all(a.startswith(_FUNDS_KINDS) for a in accounts):
        return and_(clause, _FUNDS_ACCOUNTS)
    return clause


def sum_before(session: Session, accounts: Sequence[str], before: datetime) -> Decimal:
    """The summed signed balance of `accounts` over postings strictly before `before`."""
    if not accounts:
        return _ZERO
    return exact(session.scalar(select(func.sum(LedgerPosting.amount)).where(
        _of_accounts(accounts), LedgerPosting.created_at < before)))


def load(session: Session, transaction_ids: Sequence[str]) -> list[Transaction]:
    """Core transactions (with every posting) by id, in posting-time order."""
    out: list[Transaction] = []
    ids = list(transaction_ids)
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        txns = {t.id: t for t in session.scalars(select(LedgerTransaction).where(
            LedgerTransaction.id.in_(chunk)))}
        lines: dict[str, list[LedgerPosting]] = defaultdict(list)
        for p in session.scalars(select(LedgerPosting).where(
                LedgerPosting.transaction_id.in_(chunk)).order_by(
                LedgerPosting.transaction_id, LedgerPosting.line)):
            lines[p.transaction_id].append(p)
        for tid, t in txns.items():
            refs = tuple(sorted((str(k), str(v)) for k, v in (t.refs or {}).items()))
            postings = tuple(
                Posting(f"{tid}/{p.line}", tid, p.account, exact(p.amount),
                        p.currency, t.created_at, t.memo,
                        tuple(sorted({**dict(refs), **({"resource": p.resource}
                                                      if p.resource else {})}.items())))
                for p in lines[tid])
            out.append(Transaction(tid, TxnKind(t.kind), t.created_at, postings, t.memo, refs))
    out.sort(key=lambda t: (t.created_at, t.id))
    return out


def ledger_of(session: Session, accounts: Sequence[str], start: datetime,
              end: datetime) -> Ledger:
    """An in-memory ledger of every transaction touching `accounts` in [start, end)."""
    ids = list(session.scalars(select(LedgerPosting.transaction_id).where(
        _of_accounts(accounts), LedgerPosting.created_at >= start,
        LedgerPosting.created_at < end).distinct()))
    ledger = Ledger()
    for txn in load(session, ids):
        ledger.post(txn)
    return ledger
