"""Reading Standard Workload Format traces (plain or gzip), streaming and strict.

Every job line must have 18 numeric fields; anything else raises `SwfError` naming the
file and line. Header comments (``; Key: value``) are collected into `SwfHeader`.
"""

from __future__ import annotations

import gzip
import io
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

FIELDS = ("job", "submit", "wait", "run", "procs", "cpu", "mem", "req_procs", "req_time",
          "req_mem", "status", "user", "group", "app", "queue", "partition", "prev",
          "think")

# Everything a numeric SWF line may contain; what survives deletion is malformed.
_NUMERIC = str.maketrans("", "", "0123456789.-+ \t\r\n")


class SwfError(ValueError):
    """A malformed SWF file; the message names the file and the line."""

    def __init__(self, path: str, line: int, why: str) -> None:
        super().__init__(f"{path}:{line}: {why}")
        self.path = path
        self.line = line


@dataclass
class SwfHeader:
    """The header comments of a trace; the numbers the simulator uses, and the rest."""

    max_procs: int = -1
    max_nodes: int = -1
    unix_start_time: int | None = None
    fields: dict[str, str] = field(default_factory=dict)

    def processors(self) -> int:
        """MaxProcs if positive, else MaxNodes, else -1."""
        return self.max_procs if self.max_procs > 0 else self.max_nodes


class SwfRecord(NamedTuple):
    """One job line, all 18 fields (floats only where the line has a decimal point)."""

    job: int
    submit: int
    wait: int
    run: int
    procs: int
    cpu: float
    mem: float
    req_procs: int
    req_time: int
    req_mem: float
    status: int
    user: int
    group: int
    app: int
    queue: int
    partition: int
    prev: int
    think: int


class SimJob(NamedTuple):
    """A job as the simulator's model sees it (see docs/simulation.md)."""

    id: int
    submit: int
    runtime: int
    procs: int
    estimate: int
    user: int
    queue: int


def open_text(path: str | Path) -> IO[str]:
    """Open a plain or gzip file as text (gzip recognised by its magic bytes)."""
    raw = open(path, "rb")  # noqa: SIM115 - handed to the caller
    magic = raw.peek(2)[:2] if hasattr(raw, "peek") else b""
    if magic == b"\x1f\x8b":
        return io.TextIOWrapper(io.BufferedReader(gzip.GzipFile(fileobj=raw), 1 << 20),
                                encoding="ascii", errors="strict", newline=None)
    return io.TextIOWrapper(raw, encoding="ascii", errors="strict", newline=None)


def _header_line(header: SwfHeader, text: str) -> None:
    body = text.lstrip(";").strip()
    key, sep, value = body.partition(":")
    if not sep or not key or " " in key.strip():
        return
    key = key.strip()
    value = value.strip()
    header.fields.setdefault(key, value)
    first = value.split()[0] if value.split() else ""
    try:
        number = int(first)
    except ValueError:
        return
    if key == "MaxProcs":
        header.max_procs = number
    elif key == "MaxNodes":
        header.max_nodes = number
    elif key == "UnixStartTime":
        header.unix_start_time = number


def read_header(path: str | Path) -> SwfHeader:
    """Parse the header comments before the first job line."""
    header = SwfHeader()
    with open_text(path) as f:
        try:
            for line in f:
                s = line.lstrip()
                if not s:
                    continue
                if s[0] != ";":
                    break
                _header_line(header, s)
        except UnicodeDecodeError as exc:
            raise SwfError(str(path), 0, f"not an ASCII SWF file ({exc})") from None
    return header


def _number(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:
        value = float(text)
        return int(value) if value.is_integer() else value


def _bad(path: str, lineno: int, line: str) -> SwfError:
    fields = line.split()
    if len(fields) != 18:
        return SwfError(path, lineno, f"expected 18 fields, found {len(fields)}")
    for name, text in zip(FIELDS, fields, strict=True):
        try:
            float(text)
        except ValueError:
            return SwfError(path, lineno, f"field {name!r} is not a number: {text!r}")
    return SwfError(path, lineno, "malformed line")


def iter_records(path: str | Path, limit: int | None = None) -> Iterator[SwfRecord]:
    """Yield every job line of a trace as an `SwfRecord` (the first `limit` lines)."""
    name = str(path)
    count = 0
    for start, lines in _line_chunks(path):
        for offset, raw in enumerate(lines):
            fields = raw.split()
            if not fields or fields[0][:1] == b";":
                continue
            if limit is not None and count >= limit:
                return
            line = raw.decode("ascii", "replace")
            if len(fields) != 18 or line.translate(_NUMERIC):
                raise _bad(name, start + offset, line)
            try:
                values = [_number(x.decode("ascii")) for x in fields]
            except ValueError:
                raise _bad(name, start + offset, line) from None
            count += 1
            yield SwfRecord(*values)  # type: ignore[arg-type]


_NUMERIC_BYTES = b"0123456789.-+ \t\r\n"


def _line_chunks(path: str | Path) -> Iterator[tuple[int, list[bytes]]]:
    """Yield (number of the first line, lines) for successive blocks of the file."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        inflate = zlib.decompressobj(wbits=47) if gz else None
        rest = b""
        lineno = 1
        while True:
            block = raw.read(1 << 20)
            if not block:
                break
            data = rest + (inflate.decompress(block) if inflate is not None else block)
            lines = data.split(b"\n")
            rest = lines.pop()
            if lines:
                yield lineno, lines
                lineno += len(lines)
        if inflate is not None:
            rest += inflate.flush()
        if rest.strip():
            yield lineno, [rest]


def iter_jobs(path: str | Path, procs: int, limit: int | None = None,
              skipped: list[int] | None = None) -> Iterator[SimJob]:
    """Yield the jobs of the model on a machine of `procs` processors, in file order.

    Each job is a plain tuple (id, submit, runtime, procs, estimate, user, queue), laid
    out like `SimJob`: id = field 1, submit = field 2, procs = field 8 if > 0 else
    field 5, estimate = field 9 if > 0 else the run time, runtime = min(run,
    estimate). Jobs with run < 0, procs <= 0 or procs > `procs` are not yielded; their
    count is added to ``skipped[0]`` when a list is given. `limit` keeps the first
    job lines (skipped ones included). Every line must have 18 numeric fields.
    """
    name = str(path)
    machine = procs
    left = limit if limit is not None else -1
    drop = 0
    numeric = _NUMERIC_BYTES
    try:
        for start, lines in _line_chunks(path):
            # One C-level pass checks the characters of the whole block; a block that
            # fails is re-read line by line to name the offending line.
            clean = not b"\n".join(lines).translate(None, numeric)
            lineno = start - 1
            for line in lines:
                lineno += 1
                fields = line.split()
                if len(fields) != 18:
                    if not fields or fields[0][:1] == b";":
                        continue
                    raise _bad(name, lineno, line.decode("ascii", "replace"))
                if not left:
                    return
                left -= 1
                if not clean and line.translate(None, numeric):
                    raise _bad(name, lineno, line.decode("ascii", "replace"))
                job: tuple[int, ...]
                try:
                    run = int(fields[3])
                    p = int(fields[7])
                    if p <= 0:
                        p = int(fields[4])
                    job = (int(fields[0]), int(fields[1]), run, p, int(fields[8]),
                           int(fields[11]), int(fields[14]))
                except ValueError:
                    job = _slow_job(name, lineno, fields)
                    run, p = job[2], job[3]
                if run < 0 or p <= 0 or p > machine:
                    drop += 1
                    continue
                est = job[4]
                if est <= 0:
                    yield (job[0], job[1], run, p, run, job[5], job[6])  # type: ignore[misc]
                else:
                    yield (job[0], job[1], run if run < est else est, p, est,  # type: ignore[misc]
                           job[5], job[6])
    finally:
        if skipped is not None:
            skipped[0] += drop


def _slow_job(name: str, lineno: int, fields: list[bytes]) -> tuple[int, ...]:
    try:
        v = [_integral(fields[i].decode("ascii")) for i in (0, 1, 3, 7, 8, 11, 14, 4)]
    except ValueError as exc:
        raise SwfError(name, lineno, str(exc)) from None
    return (v[0], v[1], v[2], v[3] if v[3] > 0 else v[7], v[4], v[5], v[6])


def _integral(text: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise ValueError(f"expected a whole number, found {text!r}")
    return int(value)
