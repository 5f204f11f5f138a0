"""Billing: price books, the double-entry ledger, holds, charges, limits, invoices.

Postings and transactions are append-only (the migrations add triggers refusing
UPDATE and DELETE); `ledger_balances` keeps each account's running balance and is the
row that admission locks (``SELECT ... FOR UPDATE``) so parallel holds cannot overspend.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from lightgrid.store.base import Base, MoneyColumn, UTCDateTime, id_column, utcnow


class PriceBookVersionRow(Base):
    """One immutable price book version; `body` holds cards, tiers, fallback, minimum."""

    __tablename__ = "price_book_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime, unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64), default="")


class ContractRow(Base):
    """Negotiated prices for one organization over a period."""

    __tablename__ = "contracts"

    id: Mapped[str] = id_column()
    org: Mapped[str] = mapped_column(String(64), index=True)
    effective_from: Mapped[datetime] = mapped_column(UTCDateTime)
    effective_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    discount: Mapped[Decimal | None] = mapped_column(MoneyColumn, nullable=True)
    cards: Mapped[list[Any]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerTransaction(Base):
    """A balanced set of postings. `receipt` (method/reference) makes top-ups idempotent.

    Append-only like its postings (database triggers, migration 0004).
    """

    __tablename__ = "ledger_transactions"
    __table_args__ = (
        # PostgreSQL: only the transactions that have a receipt (top-ups) are indexed;
        # SQLite keeps the table's unique constraint of the same name.
        Index("uq_ledger_transactions_receipt", "receipt", unique=True,
              postgresql_where=text("receipt IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    memo: Mapped[str] = mapped_column(String(500), default="")
    refs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    receipt: Mapped[str | None] = mapped_column(String(300), nullable=True)


class LedgerPosting(Base):
    """One signed line (+ debit, - credit) of a transaction; never updated or deleted."""

    __tablename__ = "ledger_postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="nonzero"),
        # PostgreSQL: funds accounts only, the ones read by period (migration 0004)
        Index("ix_ledger_postings_account_created", "account", "created_at",
              postgresql_where=text("account LIKE 'wallet:%' OR account LIKE 'hold:%'")),
    )

    # A foreign key on SQLite; on PostgreSQL one check per INSERT/COPY statement
    # (migration 0004) instead of one per posting.
    transaction_id: Mapped[str] = mapped_column(ForeignKey("ledger_transactions.id"),
                                                primary_key=True)
    line: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account: Mapped[str] = mapped_column(String(140))
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    currency: Mapped[str] = mapped_column(String(3))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    project: Mapped[str | None] = mapped_column(String(64), nullable=True)
    partition: Mapped[str | None] = mapped_column(String(64), nullable=True)
    resource: Mapped[str | None] = mapped_column(String(16), nullable=True)


class LedgerBalance(Base):
    """The running balance of one account: the sum of its postings."""

    __tablename__ = "ledger_balances"

    account: Mapped[str] = mapped_column(String(140), primary_key=True)
    currency: Mapped[str] = mapped_column(String(3))
    balance: Mapped[Decimal] = mapped_column(MoneyColumn, default=Decimal(0))


class FundsLimit(Base):
    """Per owner (``project:P`` / ``org:O``): a project's blocking threshold or an
    organization's credit limit."""

    __tablename__ = "funds_limits"

    owner: Mapped[str] = mapped_column(String(80), primary_key=True)
    threshold: Mapped[Decimal] = mapped_column(MoneyColumn, default=Decimal(0))
    credit_limit: Mapped[Decimal] = mapped_column(MoneyColumn, default=Decimal(0))


class HoldRow(Base):
    """Funds and quota hours reserved for one job's maximum cost."""

    __tablename__ = "holds"
    __table_args__ = (Index("ix_holds_project_state", "project", "state"),)

    id: Mapped[str] = id_column()
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), unique=True)
    project: Mapped[str] = mapped_column(String(64))
    org: Mapped[str] = mapped_column(String(64))
    user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    from_project: Mapped[Decimal] = mapped_column(MoneyColumn)
    from_org: Mapped[Decimal] = mapped_column(MoneyColumn)
    core_hours: Mapped[Decimal] = mapped_column(MoneyColumn, default=Decimal(0))
    gpu_hours: Mapped[Decimal] = mapped_column(MoneyColumn, default=Decimal(0))
    state: Mapped[str] = mapped_column(String(10), default="ACTIVE")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ChargeRow(Base):
    """The settled cost of one usage record; `key` (cluster/job/run) is unique.

    The breakdown is reproducible from the shape, the price version and the contract,
    all immutable, so it is recomputed on demand rather than stored.
    """

    __tablename__ = "charges"
    __table_args__ = (Index("ix_charges_project_created", "project", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    project: Mapped[str] = mapped_column(String(64))
    user: Mapped[str | None] = mapped_column(String(64), nullable=True)
    partition: Mapped[str] = mapped_column(String(64))
    qos: Mapped[str | None] = mapped_column(String(64), nullable=True)
    gpu_type: Mapped[str | None] = mapped_column(String(32), nullable=True)
    state: Mapped[str] = mapped_column(String(16))
    cpus: Mapped[int] = mapped_column(Integer, default=0)
    mem: Mapped[int] = mapped_column(Integer, default=0)
    gpus: Mapped[int] = mapped_column(Integer, default=0)
    nodes: Mapped[int] = mapped_column(Integer, default=0)
    seconds: Mapped[int] = mapped_column(Integer, default=0)
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    from_hold: Mapped[Decimal] = mapped_column(MoneyColumn)
    from_funds: Mapped[Decimal] = mapped_column(MoneyColumn)
    to_receivable: Mapped[Decimal] = mapped_column(MoneyColumn)
    released: Mapped[Decimal] = mapped_column(MoneyColumn)
    core_hours: Mapped[Decimal] = mapped_column(MoneyColumn)
    gpu_hours: Mapped[Decimal] = mapped_column(MoneyColumn)
    price_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    source: Mapped[str] = mapped_column(String(16))
    contract_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    transaction_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    note: Mapped[str] = mapped_column(String(300), default="")


class ReviewRow(Base):
    """A usage record no price covers, waiting for an operator's amount."""

    __tablename__ = "billing_reviews"

    id: Mapped[str] = id_column()
    key: Mapped[str] = mapped_column(String(200), unique=True)
    job_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    project: Mapped[str] = mapped_column(String(64), index=True)
    reason: Mapped[str] = mapped_column(String(300))
    usage: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    charge_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class QuotaRow(Base):
    """A project's grant in one kind of hours, with what is used and held."""

    __tablename__ = "quota_grants"

    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    granted: Mapped[Decimal] = mapped_column(MoneyColumn, default=Decimal(0))
    used: Mapped[Decimal] = mapped_column(MoneyColumn, default=Decimal(0))
    held: Mapped[Decimal] = mapped_column(MoneyColumn, default=Decimal(0))


class WhitelistRow(Base):
    """Exempts a project from blocking (not from holds) until `expires_at`."""

    __tablename__ = "billing_whitelist"

    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(300))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SpendingCapRow(Base):
    """The most one user may spend in one project, per month or in total."""

    __tablename__ = "spending_caps"

    project: Mapped[str] = mapped_column(String(64), primary_key=True)
    user: Mapped[str] = mapped_column(String(64), primary_key=True)
    limit: Mapped[Decimal] = mapped_column(MoneyColumn)
    period: Mapped[str] = mapped_column(String(8), default="month")


class InvoiceRow(Base):
    """An invoice request by a customer; finance issues it with its number."""

    __tablename__ = "invoices"

    id: Mapped[str] = id_column()
    owner: Mapped[str] = mapped_column(String(80), index=True)
    amount: Mapped[Decimal] = mapped_column(MoneyColumn)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[str] = mapped_column(String(10), default="requested")
    note: Mapped[str] = mapped_column(String(500), default="")
    requested_by: Mapped[str] = mapped_column(String(64))
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    number: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    issued_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
