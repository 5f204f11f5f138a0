"""The double-entry ledger: accounts, immutable postings, balanced transactions.

Sign convention: a posting's amount is positive for a debit and negative for a credit,
so every `Transaction` sums to zero in each currency. The check runs in
`Transaction.__post_init__`: an unbalanced transaction cannot be constructed at all.

Chart of accounts (``<kind>:<owner>``; see docs/billing.md for the posting templates):

=====================  =========================================================
``wallet:project:P``   prepaid funds of project P (credit balance = funds)
``wallet:org:O``       funds of organization O; may go negative to its credit limit
``hold:project:P``     funds reserved for P's admitted jobs (credit balance)
``revenue:<partition>`` earned charges, per partition (credit balance)
``cash:<method>``      money received/paid out by method, e.g. ``cash:bank_transfer``
``receivable:<owner>`` amounts a customer owes: invoices, charges beyond its funds
``adjustment:manual``  the operator's side of manual adjustments
=====================  =========================================================
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from lightgrid.core.errors import Conflict, InvalidRequest
from lightgrid.core.ids import new_id
from lightgrid.core.money import Money


class AccountKind(enum.StrEnum):
    WALLET = "wallet"
    HOLD = "hold"
    REVENUE = "revenue"
    CASH = "cash"
    RECEIVABLE = "receivable"
    ADJUSTMENT = "adjustment"


@dataclass(frozen=True, slots=True, order=True)
class Account:
    """A ledger account: its kind and its owner (``project:P``, ``org:O``, a partition)."""

    kind: AccountKind
    owner: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", AccountKind(self.kind))
        if not self.owner:
            raise InvalidRequest("an account needs an owner", field="account")

    @property
    def code(self) -> str:
        return f"{self.kind}:{self.owner}"

    @classmethod
    def parse(cls, code: str) -> Account:
        kind, sep, owner = code.partition(":")
        if not sep:
            raise InvalidRequest(f"account code {code!r} must be kind:owner", field="account")
        try:
            return cls(AccountKind(kind), owner)
        except ValueError:
            raise InvalidRequest(f"unknown account kind {kind!r}", field="account") from None

    def __str__(self) -> str:
        return self.code


def project_wallet(project: str) -> Account:
    return Account(AccountKind.WALLET, f"project:{project}")


def org_wallet(org: str) -> Account:
    return Account(AccountKind.WALLET, f"org:{org}")


def project_hold(project: str) -> Account:
    return Account(AccountKind.HOLD, f"project:{project}")


def revenue(partition: str) -> Account:
    return Account(AccountKind.REVENUE, partition)


def cash(method: str) -> Account:
    return Account(AccountKind.CASH, method)


def receivable(owner: str) -> Account:
    """`owner` is ``project:P`` or ``org:O``, as for wallets."""
    return Account(AccountKind.RECEIVABLE, owner)


MANUAL_ADJUSTMENT = Account(AccountKind.ADJUSTMENT, "manual")


class TxnKind(enum.StrEnum):
    """What a transaction does; each has one posting template (docs/billing.md)."""

    TOPUP = "topup"
    REFUND = "refund"
    ADJUSTMENT = "adjustment"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    INVOICE = "invoice"
    PAYMENT = "payment"


Refs = tuple[tuple[str, str], ...]


def _refs(mapping: Mapping[str, object] | None) -> Refs:
    if not mapping:
        return ()
    return tuple(sorted((str(k), str(v)) for k, v in mapping.items() if v is not None))


@dataclass(frozen=True, slots=True)
class Posting:
    """One immutable line of a transaction: a signed amount on one account."""

    id: str
    transaction_id: str
    account: str
    amount: Decimal  # + debit, - credit; whole cents
    currency: str
    created_at: datetime
    memo: str = ""
    refs: Refs = ()

    def __post_init__(self) -> None:
        Money(self.amount, self.currency)  # whole cents, valid currency, no float
        if self.amount == 0:
            raise InvalidRequest("a posting must move a nonzero amount", field="amount")
        Account.parse(self.account)

    @property
    def money(self) -> Money:
        return Money(self.amount, self.currency)

    def ref(self, key: str) -> str | None:
        return dict(self.refs).get(key)


@dataclass(frozen=True, slots=True)
class Leg:
    """An input to `Transaction.build`: an account, a signed amount and its own refs."""

    account: Account
    amount: Money
    refs: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Transaction:
    """A set of postings that balances in every currency; checked on construction."""

    id: str
    kind: TxnKind
    created_at: datetime
    postings: tuple[Posting, ...]
    memo: str = ""
    refs: Refs = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", TxnKind(self.kind))
        if self.created_at.tzinfo is None:
            raise InvalidRequest("created_at must be timezone-aware", field="created_at")
        if len(self.postings) < 2:
            raise InvalidRequest("a transaction needs at least two postings",
                                 field="postings")
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for p in self.postings:
            if p.transaction_id != self.id or p.created_at != self.created_at:
                raise InvalidRequest(f"posting {p.id} does not belong to transaction "
                                     f"{self.id}", field="postings")
            sums[p.currency] += p.amount
        unbalanced = {c: s for c, s in sums.items() if s != 0}
        if unbalanced:
            detail = ", ".join(f"{c} off by {s}" for c, s in sorted(unbalanced.items()))
            raise InvalidRequest(f"unbalanced transaction: {detail}", field="postings")

    @classmethod
    def build(cls, kind: TxnKind, legs: Iterable[Leg], at: datetime, *, memo: str = "",
              refs: Mapping[str, object] | None = None, id: str | None = None) -> Transaction:
        """Make a transaction from legs (zero legs are dropped); raises if unbalanced."""
        txn_id = id or new_id()
        common = _refs(refs)
        postings = tuple(
            Posting(new_id(), txn_id, leg.account.code, leg.amount.amount,
                    leg.amount.currency, at, memo,
                    tuple(sorted((dict(common) | dict(_refs(leg.refs))).items())))
            for leg in legs if not leg.amount.is_zero)
        return cls(txn_id, kind, at, postings, memo, common)

    def ref(self, key: str) -> str | None:
        return dict(self.refs).get(key)


class Ledger:
    """An append-only, in-memory ledger: the reference semantics for the SQL store."""

    def __init__(self) -> None:
        self._txns: list[Transaction] = []
        self._ids: set[str] = set()
        self._by_account: dict[str, list[Posting]] = defaultdict(list)

    def post(self, txn: Transaction) -> Transaction:
        """Append `txn`. Refuses a repeated id and a time before the last transaction."""
        if txn.id in self._ids:
            raise Conflict(f"transaction {txn.id} is already posted", field="id")
        if self._txns and txn.created_at < self._txns[-1].created_at:
            # A back-dated posting could land in a month whose statement is issued.
            raise InvalidRequest("transactions must be posted in time order",
                                 field="created_at")
        self._txns.append(txn)
        self._ids.add(txn.id)
        for p in txn.postings:
            self._by_account[p.account].append(p)
        return txn

    @property
    def transactions(self) -> tuple[Transaction, ...]:
        return tuple(self._txns)

    def __iter__(self) -> Iterator[Transaction]:
        return iter(tuple(self._txns))

    def __len__(self) -> int:
        return len(self._txns)

    def postings(self, account: Account | None = None) -> tuple[Posting, ...]:
        if account is None:
            return tuple(p for t in self._txns for p in t.postings)
        return tuple(self._by_account.get(account.code, ()))

    def accounts(self) -> tuple[Account, ...]:
        return tuple(Account.parse(code) for code in sorted(self._by_account))

    def balance(self, account: Account, currency: str, *,
                before: datetime | None = None) -> Money:
        """The signed (debit-positive) balance, of postings strictly before `before`."""
        amount = sum((p.amount for p in self._by_account.get(account.code, ())
                      if p.currency == currency
                      and (before is None or p.created_at < before)), Decimal(0))
        return Money(amount, currency)

    def credit_balance(self, account: Account, currency: str, *,
                       before: datetime | None = None) -> Money:
        """The balance of a credit-normal account (wallets, holds, revenue) as positive."""
        return -self.balance(account, currency, before=before)

    def trial_balance(self) -> dict[str, Decimal]:
        """Sum of every posting per currency; zero for every currency, always."""
        sums: dict[str, Decimal] = defaultdict(Decimal)
        for t in self._txns:
            for p in t.postings:
                sums[p.currency] += p.amount
        return dict(sums)
