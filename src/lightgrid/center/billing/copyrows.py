"""PostgreSQL binary COPY rows, built from bytes the ingestor encodes once and reuses.

A binary COPY stream is a signature, then per row a field count and per field a
32-bit length (-1 for NULL) and the value: UTF-8 text, big-endian integers, or a
timestamp as microseconds since 2000-01-01 UTC. Most fields of a charge and its
postings repeat across records (project, accounts, partition, currency, the posting
time, a job shape), so the ingestor keeps them encoded and a row is a join of a few
cached pieces and one `struct` pack of the numbers. `decode` turns a stream back into
rows, for SQLite (no COPY) and for the tests.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from lightgrid.store.base import MONEY_SCALE

SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # no flags, no header extension
TRAILER = b"\xff\xff"
NULL = b"\xff\xff\xff\xff"
I32 = struct.Struct(">i").pack
_HEAD = struct.Struct(">h").pack
_INT4 = struct.Struct(">ii").pack
_INT8 = struct.Struct(">iq").pack
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # PostgreSQL's; timestamptz counts from it
MICROSECOND = timedelta(microseconds=1)

#: (column, kind) per table, in the order the ingestor writes them; kinds: text, json,
#: int4, money (int8 millionths, `MoneyColumn`'s storage), timestamptz.
Columns = Sequence[tuple[str, str]]
TRANSACTION: Columns = (("id", "text"), ("memo", "text"), ("refs", "json"),
                        ("kind", "text"), ("created_at", "timestamptz"))
POSTING: Columns = (("transaction_id", "text"), ("line", "int4"), ("amount", "money"),
                    ("account", "text"), ("resource", "text"), ("project", "text"),
                    ("partition", "text"), ("currency", "text"),
                    ("created_at", "timestamptz"))
CHARGE: Columns = (
    ("id", "text"), ("key", "text"), ("transaction_id", "text"), ("user", "text"),
    ("job_id", "text"), ("state", "text"),
    # one pack: CHARGE_NUMBERS_STARTED (CHARGE_NUMBERS and a NULL if never started)
    ("seconds", "int4"), ("amount", "money"), ("from_funds", "money"),
    ("to_receivable", "money"), ("core_hours", "money"), ("gpu_hours", "money"),
    ("ended_at", "timestamptz"), ("started_at", "timestamptz"),
    # per job shape and price: shape()
    ("partition", "text"), ("qos", "text"), ("gpu_type", "text"), ("cpus", "int4"),
    ("mem", "int4"), ("gpus", "int4"), ("nodes", "int4"), ("price_version", "int4"),
    ("source", "text"), ("contract_id", "text"), ("note", "text"),
    # per project and run: charge_tail()
    ("project", "text"), ("from_hold", "money"), ("released", "money"),
    ("created_at", "timestamptz"))
TRANSACTION_HEAD = _HEAD(len(TRANSACTION))
POSTING_HEAD = _HEAD(len(POSTING))
CHARGE_HEAD = _HEAD(len(CHARGE))
#: (4, line, 8, amount) of a posting
POSTING_NUMBERS = struct.Struct(">iiiq").pack
#: (4, seconds, 8, amount, 8, from_funds, 8, to_receivable, 8, core, 8, gpu, 8, ended)
CHARGE_NUMBERS = struct.Struct(">ii" + "iq" * 6).pack
#: the same and (8, started)
CHARGE_NUMBERS_STARTED = struct.Struct(">ii" + "iq" * 7).pack


def text(value: str | None) -> bytes:
    if value is None:
        return NULL
    data = value.encode()
    return I32(len(data)) + data


def int4(value: int | None) -> bytes:
    return NULL if value is None else _INT4(4, value)


def int8(value: int) -> bytes:
    return _INT8(8, value)


def micros(at: datetime) -> int:
    """A timezone-aware instant as PostgreSQL's binary timestamptz value."""
    return (at - EPOCH) // MICROSECOND


def timestamptz(at: datetime | None) -> bytes:
    return NULL if at is None else _INT8(8, micros(at))


def shape(partition: str, qos: str | None, gpu_type: str | None, cpus: int, mem: int,
          gpus: int, nodes: int, version: int | None, source: str,
          contract_id: str | None, note: str) -> bytes:
    """The charge columns fixed by a job shape and its price (see `CHARGE`)."""
    return b"".join((text(partition), text(qos), text(gpu_type), int4(cpus), int4(mem),
                     int4(gpus), int4(nodes), int4(version), text(source),
                     text(contract_id), text(note)))


def charge_tail(project: str, at: datetime) -> bytes:
    """The last charge columns: the project, nothing from a hold or released, when."""
    return text(project) + int8(0) + int8(0) + timestamptz(at)


def posting_tail(account: str, resource: str | None, project: str, partition: str,
                 currency: str, at: datetime) -> bytes:
    """A posting's columns after its amount (see `POSTING`)."""
    return b"".join((text(account), text(resource), text(project), text(partition),
                     text(currency), timestamptz(at)))


def transaction_tail(kind: str, at: datetime) -> bytes:
    return text(kind) + timestamptz(at)


def decode(data: bytes, columns: Columns) -> Iterator[dict[str, object]]:
    """The rows of a binary COPY stream, as `insert()` takes them: money as `Decimal`,
    JSON parsed, timestamps aware (UTC)."""
    if not data.startswith(SIGNATURE):
        raise ValueError("not a binary COPY stream")
    pos = len(SIGNATURE)
    while True:
        (count,) = struct.unpack_from(">h", data, pos)
        pos += 2
        if count == -1:
            break
        if count != len(columns):
            raise ValueError(f"a row of {count} fields for {len(columns)} columns")
        row: dict[str, object] = {}
        for name, kind in columns:
            (size,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if size < 0:
                row[name] = None
                continue
            raw = data[pos:pos + size]
            pos += size
            if kind == "text":
                row[name] = raw.decode()
            elif kind == "json":
                row[name] = json.loads(raw)
            elif kind == "int4":
                row[name] = int.from_bytes(raw, "big", signed=True)
            elif kind == "money":
                row[name] = Decimal(int.from_bytes(raw, "big", signed=True)).scaleb(
                    -MONEY_SCALE)
            else:  # timestamptz
                row[name] = EPOCH + timedelta(
                    microseconds=int.from_bytes(raw, "big", signed=True))
        yield row
