"""Declarative base and column types shared by every model module."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar, cast

from sqlalchemy import BigInteger, DateTime, MetaData, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from lightgrid.core.ids import new_id

T = TypeVar("T")

# Stable constraint names, so Alembic migrations are the same on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every database (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None,
                             dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


MONEY_SCALE = 6
_MICRO = Decimal(10) ** MONEY_SCALE


class MoneyColumn(TypeDecorator[Decimal]):
    """Exact amounts as integer millionths (BIGINT), Decimal in Python, never float.

    SQLite has no exact decimal type (NUMERIC columns turn into REAL), so amounts are
    stored as integers on every database: `SUM()` stays exact on both. Wrap SQL
    aggregates in `type_coerce(..., MoneyColumn())` to get Decimals back.
    """

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        if value is None:
            return None
        if not isinstance(value, Decimal):
            raise TypeError(f"money must be Decimal, got {type(value).__name__}")
        micro = value * _MICRO
        if micro != micro.to_integral_value():
            raise ValueError(f"{value} has more than {MONEY_SCALE} decimal places")
        return int(micro)

    def process_result_value(self, value: object, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return (Decimal(int(value)) / _MICRO).quantize(Decimal(1).scaleb(-MONEY_SCALE))  # type: ignore[call-overload]


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def id_column() -> Mapped[str]:
    """Primary key: a UUIDv7 string, globally unique across centers."""
    return mapped_column(String(36), primary_key=True, default=new_id)


def detached(cls: type[T], values: dict[str, Any]) -> T:
    """An instance of the mapped class `cls` holding `values`, never in a session.

    Built without the ORM's per-attribute events, which on the submission path cost
    more than the rest of building a row; later assignments are tracked as usual.
    Relationships may be given as already-built objects.
    """
    instance = cast(T, cls.__mapper__.class_manager.new_instance())  # type: ignore[attr-defined]
    instance.__dict__.update(values)
    return instance
