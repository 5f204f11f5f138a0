"""Parsers for the values of sbatch options: times, memory sizes, arrays, dependencies, GRES.

Each parser raises `InvalidRequest` whose message names the bad value and says what a
good one looks like; the option and script parsers add the option name and the line.
"""

from __future__ import annotations

import re

from lightgrid.core.errors import InvalidRequest
from lightgrid.core.jobs import ArraySpec, Dependency, DependencyKind

#: ``--mem=0`` asks for all the memory of each node, as in Slurm. It is kept as
#: ``JobSpec.mem_per_node == MEM_WHOLE_NODE`` (0 MiB) and resolved against the node type
#: when the request is normalised.
MEM_WHOLE_NODE = 0

MAX_NODES = 100_000
MAX_TASKS = 10_000_000
MAX_CPUS_PER_TASK = 100_000
MAX_GPUS_PER_NODE = 1_024
MAX_GPUS = 10_000_000
MAX_TIME = 365 * 86_400  # seconds
MAX_MEM = 1024 ** 3  # MiB: 1 PiB
MAX_ARRAY_INDEX = 4_000_000
MAX_ARRAY_TASKS = 100_001

_TIME_FORMATS = "use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS"
_N = r"[0-9]{1,100}"  # bounded, so that int() never meets an absurdly long number
_TIME_RE = re.compile(
    rf"(?:(?P<days>{_N})-(?P<dh>{_N})(?::(?P<dm>{_N})(?::(?P<ds>{_N}))?)?)"
    rf"|(?P<a>{_N})(?::(?P<b>{_N})(?::(?P<c>{_N}))?)?"
)
_MEM_RE = re.compile(rf"(?P<num>{_N})(?P<unit>[KMGTkmgt])?(?:[iI]?[bB])?")
_MEM_FACTOR = {"K": 1, "M": 1024, "G": 1024 ** 2, "T": 1024 ** 3}  # in KiB
_DIGITS = re.compile(_N)
_JOB_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_GPU_TYPE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def q(value: str) -> str:
    """A value quoted for an error message."""
    return f'"{value}"'


def parse_count(value: str, *, what: str, minimum: int = 1, maximum: int) -> int:
    """A whole number in ``[minimum, maximum]``; `what` names it in messages (``nodes``)."""
    text = value.strip()
    if text.startswith("-") and _DIGITS.fullmatch(text[1:]):
        raise InvalidRequest(f"{q(value)} is negative; {what} must be from {minimum} "
                             f"to {maximum}")
    if not _DIGITS.fullmatch(text):
        raise InvalidRequest(f"{q(value)} is not a whole number of {what}")
    n = int(text)
    if n < minimum:
        raise InvalidRequest(f"{what} must be at least {minimum}, not {n}")
    if n > maximum:
        raise InvalidRequest(f"{n} {what} is more than the maximum of {maximum}")
    return n


def parse_time(value: str) -> int | None:
    """A Slurm time limit in seconds; ``INFINITE``/``UNLIMITED`` (and ``0``) give None.

    Accepts ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M`` and ``D-H:M:S``. As in Slurm,
    the leading field is unbounded (``90`` and ``90:00`` are 90 minutes) and a limit
    of zero means no limit.
    """
    text = value.strip()
    if text.upper() in ("INFINITE", "UNLIMITED"):
        return None
    m = _TIME_RE.fullmatch(text)
    if not m:
        if text.startswith("-"):
            raise InvalidRequest(f"{q(value)} is negative; a time limit must be positive "
                                 f"({_TIME_FORMATS})")
        raise InvalidRequest(f"{q(value)} is not a Slurm time ({_TIME_FORMATS})")
    if m["days"] is not None:
        days, hours = int(m["days"]), int(m["dh"])
        minutes, seconds = int(m["dm"] or 0), int(m["ds"] or 0)
    elif m["c"] is not None:
        days, hours, minutes, seconds = 0, int(m["a"]), int(m["b"]), int(m["c"])
    else:
        days, hours = 0, 0
        minutes, seconds = int(m["a"]), int(m["b"] or 0)
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total > MAX_TIME:
        raise InvalidRequest(f"{q(value)} is longer than the maximum of 365 days "
                             "(use UNLIMITED for no limit)")
    return total or None


def format_time(seconds: int | None) -> str:
    """Render a time limit as Slurm prints it: ``D-HH:MM:SS``, ``HH:MM:SS`` or ``UNLIMITED``."""
    if seconds is None:
        return "UNLIMITED"
    if seconds < 0:
        raise InvalidRequest(f"a time of {seconds} seconds is negative")
    minutes, secs = divmod(seconds, 60)
    hours, mins = divmod(minutes, 60)
    days, hrs = divmod(hours, 24)
    if days:
        return f"{days}-{hrs:02d}:{mins:02d}:{secs:02d}"
    return f"{hrs:02d}:{mins:02d}:{secs:02d}"


def parse_mem(value: str) -> int:
    """A memory size in MiB: a whole number with an optional K, M, G or T suffix.

    Without a suffix the unit is MiB, as in Slurm; kilobytes round up to whole MiB.
    ``0`` is returned as `MEM_WHOLE_NODE`; callers that cannot use it refuse it.
    """
    text = value.strip()
    m = _MEM_RE.fullmatch(text)
    if not m:
        if text.startswith("-"):
            raise InvalidRequest(f"{q(value)} is negative; memory must be a size like "
                                 "4000, 500M or 16G")
        raise InvalidRequest(f"{q(value)} is not a memory size (use a whole number with "
                             "an optional K, M, G or T suffix, e.g. 500M or 16G; "
                             "the default unit is MiB)")
    kib = int(m["num"]) * _MEM_FACTOR[(m["unit"] or "M").upper()]
    mib = -(-kib // 1024)
    if mib > MAX_MEM:
        raise InvalidRequest(f"{q(value)} is more than the maximum of 1 PiB")
    return mib


def parse_array(value: str) -> ArraySpec:
    """``--array``: indices and ranges with steps, then an optional ``%limit``.

    E.g. ``0-15:4,20,30-31%2``. Indices are sorted and duplicates merged.
    """
    text = value.strip()
    body, sep, limit_text = text.partition("%")
    max_running: int | None = None
    if sep:
        if not _DIGITS.fullmatch(limit_text) or int(limit_text) < 1:
            raise InvalidRequest(f"{q(value)}: the limit after % must be a whole number "
                                 "of at least 1, e.g. 0-99%10")
        max_running = int(limit_text)
    if not body:
        raise InvalidRequest(f"{q(value)} is not an array specification (use e.g. "
                             "0-15, 1,3,5, 0-15:4 or 0-99%10)")
    ranges: list[range] = []
    count = 0
    for item in body.split(","):
        r = _parse_array_item(item, value)
        count += len(r)
        if count > MAX_ARRAY_TASKS:
            raise InvalidRequest(f"{q(value)} asks for more than the maximum of "
                                 f"{MAX_ARRAY_TASKS} array tasks")
        ranges.append(r)
    indices = sorted({i for r in ranges for i in r})
    return ArraySpec(tuple(indices), max_running)


def _parse_array_item(item: str, whole: str) -> range:
    span, colon, step_text = item.partition(":")
    start_text, dash, end_text = span.partition("-")
    if not _DIGITS.fullmatch(start_text) or (dash and not _DIGITS.fullmatch(end_text)):
        if item.startswith("-"):
            raise InvalidRequest(f"{q(whole)}: array indices must not be negative")
        raise InvalidRequest(f"{q(whole)}: {q(item)} is not an index or a range "
                             "(use N, N-M or N-M:STEP)")
    start = int(start_text)
    end = int(end_text) if dash else start
    step = 1
    if colon:
        if not dash:
            raise InvalidRequest(f"{q(whole)}: a step needs a range, e.g. 0-15:4")
        if not _DIGITS.fullmatch(step_text) or int(step_text) < 1:
            raise InvalidRequest(f"{q(whole)}: the step in {q(item)} must be a whole "
                                 "number of at least 1")
        step = int(step_text)
    if end < start:
        raise InvalidRequest(f"{q(whole)}: the range {q(item)} ends before it starts")
    if end > MAX_ARRAY_INDEX:
        raise InvalidRequest(f"{q(whole)}: index {end} is above the maximum array index "
                             f"of {MAX_ARRAY_INDEX}")
    return range(start, end + 1, step)


def parse_dependency(value: str) -> list[Dependency]:
    """``--dependency``: ``KIND:ID[:ID...]`` terms joined by ``,`` (all must hold).

    Kinds are after, afterok, afterany and afternotok. ``?`` (any one may hold),
    ``singleton`` and the other Slurm kinds are refused.
    """
    text = value.strip()
    if "?" in text:
        raise InvalidRequest(f"{q(value)}: dependencies joined by ? (any one is enough) "
                             "are not supported; join them with , (all must hold)")
    if not text:
        raise InvalidRequest("a dependency needs a kind and job ids, e.g. afterok:123")
    kinds = ", ".join(k.value for k in DependencyKind)
    out: list[Dependency] = []
    for term in text.split(","):
        kind_text, _, ids_text = term.partition(":")
        try:
            kind = DependencyKind(kind_text.strip().lower())
        except ValueError:
            raise InvalidRequest(f"{q(value)}: {q(kind_text)} is not a supported dependency "
                                 f"kind (use {kinds})") from None
        ids = tuple(ids_text.split(":")) if ids_text else ()
        if not ids:
            raise InvalidRequest(f"{q(value)}: {kind.value} needs at least one job id, "
                                 f"e.g. {kind.value}:123")
        for job_id in ids:
            if "+" in job_id:
                raise InvalidRequest(f"{q(value)}: delays after a job id (+minutes) are "
                                     "not supported")
            if not _JOB_ID_RE.fullmatch(job_id):
                raise InvalidRequest(f"{q(value)}: {q(job_id)} is not a job id")
        out.append(Dependency(kind, ids))
    return out


def split_gres(value: str) -> tuple[tuple[str | None, int] | None, list[str]]:
    """Split a GRES list into the GPU request (type, count per node) and the other items."""
    gpu: tuple[str | None, int] | None = None
    others: list[str] = []
    for item in value.strip().split(","):
        item = item.strip()
        if not item:
            raise InvalidRequest(f"{q(value)} has an empty item (use e.g. gpu:a100:2)")
        name, _, rest = item.partition(":")
        if name.lower() in ("gpu", "gres/gpu"):
            if gpu is not None:
                raise InvalidRequest(f"{q(value)} asks for GPUs twice; ask for one GPU "
                                     "type per job")
            gpu = _parse_gpu_item(rest, whole=value, per="node",
                                  maximum=MAX_GPUS_PER_NODE, default=1)
        elif name.lower() == "none" and not rest:
            continue
        else:
            others.append(item)
    return gpu, others


def parse_gres(value: str) -> tuple[str | None, int]:
    """``--gres``: the GPU type (or None) and GPUs per node; ``(None, 0)`` without GPUs.

    GRES other than ``gpu`` are not returned; `split_gres` gives them.
    """
    gpu, _ = split_gres(value)
    return gpu if gpu is not None else (None, 0)


def parse_gpus(value: str) -> tuple[str | None, int]:
    """``--gpus``/``-G`` (and ``--gpus-per-node``): ``[type:]N``, e.g. ``a100:4``."""
    text = value.strip()
    if text.lower().startswith("gpu:"):
        text = text[4:]
    return _parse_gpu_item(text, whole=value, per="job", maximum=MAX_GPUS, default=None)


def _parse_gpu_item(rest: str, *, whole: str, per: str, maximum: int,
                    default: int | None) -> tuple[str | None, int]:
    parts = rest.split(":") if rest else []
    if parts and _DIGITS.fullmatch(parts[-1]):
        count_text: str | None = parts.pop()
    else:
        count_text = None
    if len(parts) > 1:
        raise InvalidRequest(f"{q(whole)} is not a GPU request (use [type:]count, "
                             "e.g. a100:2)")
    gpu_type = parts[0] if parts else None
    if gpu_type is not None and not _GPU_TYPE_RE.fullmatch(gpu_type):
        if gpu_type.startswith("-"):
            raise InvalidRequest(f"{q(whole)}: the GPU count must not be negative")
        raise InvalidRequest(f"{q(whole)}: {q(gpu_type)} is not a GPU type or count")
    if count_text is None:
        if default is None:
            raise InvalidRequest(f"{q(whole)} has no GPU count (use [type:]count, "
                                 "e.g. a100:2)")
        return gpu_type, default
    count = int(count_text)
    if count > maximum:
        raise InvalidRequest(f"{q(whole)}: {count} GPUs per {per} is more than the "
                             f"maximum of {maximum}")
    return gpu_type, count
