"""Migrations and column types on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import Column, MetaData, String, Table, inspect, select

from lightgrid.store.base import MoneyColumn, UTCDateTime
from lightgrid.store.db import current_revision, make_engine, migrate


def test_migrate_is_idempotent_and_creates_every_table(db_url: str) -> None:
    engine = make_engine(db_url)
    migrate(engine)
    first = current_revision(engine)
    migrate(engine)
    assert current_revision(engine) == first is not None
    tables = set(inspect(engine).get_table_names())
    assert {"organizations", "projects", "users", "memberships", "api_tokens", "jobs",
            "job_events"} <= tables
    engine.dispose()


def test_money_and_time_columns_round_trip_exactly(db_url: str) -> None:
    engine = make_engine(db_url)
    meta = MetaData()
    table = Table("roundtrip", meta, Column("k", String(8), primary_key=True),
                  Column("amount", MoneyColumn), Column("at", UTCDateTime))
    meta.create_all(engine)
    amount = Decimal("123456789012.345678")
    at = datetime(2026, 11, 25, 1, 2, 3, 456000, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(table.insert().values(k="a", amount=amount, at=at))
        row = conn.execute(select(table.c.amount, table.c.at)).one()
    assert row.amount == amount and isinstance(row.amount, Decimal)
    assert row.at == at and row.at.tzinfo is not None
    with engine.begin() as conn, pytest.raises(Exception, match="Decimal"):
        conn.execute(table.insert().values(k="b", amount=1.5))
    engine.dispose()
