"""Value parsers of lightgrid.core.sbatch: times, memory, arrays, dependencies, GPUs."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lightgrid.core.errors import InvalidRequest
from lightgrid.core.jobs import ArraySpec, Dependency, DependencyKind
from lightgrid.core.sbatch import (
    MAX_TIME,
    MEM_WHOLE_NODE,
    format_time,
    parse_array,
    parse_dependency,
    parse_gpus,
    parse_gres,
    parse_mem,
    parse_time,
    split_gres,
)

M, H, D = 60, 3600, 86400


@pytest.mark.parametrize(("value", "seconds"), [
    ("30", 30 * M),                      # minutes
    ("90", 90 * M),                      # minutes may exceed 59
    ("5:30", 5 * M + 30),                # minutes:seconds
    ("90:00", 90 * M),
    ("0:45", 45),
    ("2:03:04", 2 * H + 3 * M + 4),      # hours:minutes:seconds
    ("48:00:00", 48 * H),
    ("1-0", D),                          # days-hours
    ("2-12", 2 * D + 12 * H),
    ("1-2:30", D + 2 * H + 30 * M),      # days-hours:minutes
    ("3-04:05:06", 3 * D + 4 * H + 5 * M + 6),  # days-hours:minutes:seconds
    (" 10 ", 10 * M),
    ("365-0", 365 * D),                  # the maximum
    ("UNLIMITED", None),
    ("infinite", None),
    ("Unlimited", None),
    ("0", None),                         # as in Slurm, zero means no limit
    ("00:00:00", None),
])
def test_parse_time_accepts_every_slurm_format(value: str, seconds: int | None) -> None:
    assert parse_time(value) == seconds


@pytest.mark.parametrize(("value", "message"), [
    ("1:2:3:4", "is not a Slurm time (use minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM"),
    ("", "is not a Slurm time"),
    ("1h", "is not a Slurm time"),
    ("1.5", "is not a Slurm time"),
    ("1-", "is not a Slurm time"),
    ("-1", "is negative"),
    ("1-2:3:4:5", "is not a Slurm time"),
    ("1--2", "is not a Slurm time"),
    ("1:", "is not a Slurm time"),
    ("365-0:0:1", "longer than the maximum of 365 days"),
    ("999999999", "longer than the maximum of 365 days"),
    ("9" * 200, "is not a Slurm time"),
])
def test_parse_time_rejects(value: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_time(value)
    assert message in info.value.message
    assert f'"{value}"' in info.value.message


@pytest.mark.parametrize(("seconds", "text"), [
    (None, "UNLIMITED"),
    (0, "00:00:00"),
    (59, "00:00:59"),
    (3600, "01:00:00"),
    (86399, "23:59:59"),
    (86400, "1-00:00:00"),
    (2 * D + 3 * H + 4 * M + 5, "2-03:04:05"),
])
def test_format_time(seconds: int | None, text: str) -> None:
    assert format_time(seconds) == text


def test_format_time_refuses_negative() -> None:
    with pytest.raises(InvalidRequest, match="negative"):
        format_time(-1)


@given(st.one_of(st.none(), st.integers(min_value=1, max_value=MAX_TIME)))
def test_parse_time_of_format_time_round_trips(seconds: int | None) -> None:
    assert parse_time(format_time(seconds)) == seconds


_time_texts = st.one_of(
    st.integers(0, 10_000).map(str),
    st.tuples(st.integers(0, 999), st.integers(0, 59)).map(lambda t: f"{t[0]}:{t[1]:02d}"),
    st.tuples(st.integers(0, 99), st.integers(0, 59), st.integers(0, 59))
    .map(lambda t: f"{t[0]}:{t[1]:02d}:{t[2]:02d}"),
    st.tuples(st.integers(0, 364), st.integers(0, 23)).map(lambda t: f"{t[0]}-{t[1]}"),
    st.tuples(st.integers(0, 364), st.integers(0, 23), st.integers(0, 59),
              st.integers(0, 59)).map(lambda t: f"{t[0]}-{t[1]:02d}:{t[2]:02d}:{t[3]:02d}"),
    st.sampled_from(["UNLIMITED", "INFINITE"]),
)


@given(_time_texts)
def test_format_time_of_parse_time_round_trips(text: str) -> None:
    seconds = parse_time(text)
    rendered = format_time(seconds)
    assert parse_time(rendered) == seconds
    assert format_time(parse_time(rendered)) == rendered


@pytest.mark.parametrize(("value", "mib"), [
    ("4000", 4000),          # default unit MiB
    ("500M", 500),
    ("500m", 500),
    ("16G", 16 * 1024),
    ("16g", 16 * 1024),
    ("16GB", 16 * 1024),
    ("16GiB", 16 * 1024),
    ("2T", 2 * 1024 ** 2),
    ("1024K", 1),
    ("1K", 1),               # rounds up to a whole MiB
    ("1025K", 2),
    ("1048576G", 1024 ** 3),  # 1 PiB, the maximum
    ("0", MEM_WHOLE_NODE),
])
def test_parse_mem(value: str, mib: int) -> None:
    assert parse_mem(value) == mib


@pytest.mark.parametrize(("value", "message"), [
    ("-1", "is negative"),
    ("-4G", "is negative"),
    ("1.5G", "is not a memory size"),
    ("16X", "is not a memory size"),
    ("G", "is not a memory size"),
    ("", "is not a memory size"),
    ("1048577G", "more than the maximum of 1 PiB"),
    ("2P", "is not a memory size"),
])
def test_parse_mem_rejects(value: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_mem(value)
    assert message in info.value.message


@pytest.mark.parametrize(("value", "indices", "limit"), [
    ("0-3", (0, 1, 2, 3), None),
    ("1,3,5", (1, 3, 5), None),
    ("7", (7,), None),
    ("0-15:4", (0, 4, 8, 12), None),
    ("0-15:4,20,30-31%2", (0, 4, 8, 12, 20, 30, 31), 2),
    ("1-10:3", (1, 4, 7, 10), None),
    ("5,1-3,2", (1, 2, 3, 5), None),  # sorted, duplicates merged
    ("0-99%10", tuple(range(100)), 10),
    ("4000000", (4_000_000,), None),  # the largest index
    ("0-100000", tuple(range(100_001)), None),  # the most tasks
])
def test_parse_array(value: str, indices: tuple[int, ...], limit: int | None) -> None:
    assert parse_array(value) == ArraySpec(indices, limit)


@pytest.mark.parametrize(("value", "message"), [
    ("", "is not an array specification"),
    ("%4", "is not an array specification"),
    ("0-3%0", "limit after % must be a whole number of at least 1"),
    ("0-3%x", "limit after %"),
    ("-1", "must not be negative"),
    ("5-2", "ends before it starts"),
    ("0-10:0", "step in"),
    ("3:2", "a step needs a range"),
    ("a-b", "is not an index or a range"),
    ("1,,2", "is not an index or a range"),
    ("4000001", "above the maximum array index of 4000000"),
    ("0-100001", "more than the maximum of 100001 array tasks"),
    ("0-50000,60000-110000", "more than the maximum of 100001 array tasks"),
    ("0-4000000", "more than the maximum of 100001 array tasks"),
])
def test_parse_array_rejects(value: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_array(value)
    assert message in info.value.message


K = DependencyKind


@pytest.mark.parametrize(("value", "deps"), [
    ("afterok:123", [Dependency(K.AFTEROK, ("123",))]),
    ("afterany:1:2:3", [Dependency(K.AFTERANY, ("1", "2", "3"))]),
    ("afternotok:9", [Dependency(K.AFTERNOTOK, ("9",))]),
    ("after:9", [Dependency(K.AFTER, ("9",))]),
    ("AFTEROK:5", [Dependency(K.AFTEROK, ("5",))]),
    ("afterok:1:2,afterany:3", [Dependency(K.AFTEROK, ("1", "2")),
                                Dependency(K.AFTERANY, ("3",))]),
    ("afterok:123_4", [Dependency(K.AFTEROK, ("123_4",))]),
    ("afterok:0190f1e2-7c4a-7b3e-8a1d-5f2e3c4b5a69",
     [Dependency(K.AFTEROK, ("0190f1e2-7c4a-7b3e-8a1d-5f2e3c4b5a69",))]),
])
def test_parse_dependency(value: str, deps: list[Dependency]) -> None:
    assert parse_dependency(value) == deps


@pytest.mark.parametrize(("value", "message"), [
    ("afterok:1?afterany:2", "joined by ? (any one is enough) are not supported"),
    ("singleton", "is not a supported dependency kind (use after, afterok, afterany"),
    ("aftercorr:1", "is not a supported dependency kind"),
    ("afterok", "needs at least one job id"),
    ("afterok:", "needs at least one job id"),
    ("afterok:1::2", "is not a job id"),
    ("afterok:$x", "is not a job id"),
    ("after:12+5", "delays after a job id"),
    ("", "needs a kind and job ids"),
])
def test_parse_dependency_rejects(value: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_dependency(value)
    assert message in info.value.message


@pytest.mark.parametrize(("value", "gpu", "others"), [
    ("gpu", (None, 1), []),
    ("gpu:2", (None, 2), []),
    ("gpu:a100:2", ("a100", 2), []),
    ("gpu:a100", ("a100", 1), []),
    ("gpu:0", (None, 0), []),
    ("gpu:a100:2,shard:1", ("a100", 2), ["shard:1"]),
    ("shard:1,gpu:v100:4", ("v100", 4), ["shard:1"]),
    ("shard:2", (None, 0), ["shard:2"]),
    ("none", (None, 0), []),
])
def test_parse_gres(value: str, gpu: tuple[str | None, int], others: list[str]) -> None:
    assert parse_gres(value) == gpu
    assert split_gres(value)[1] == others


@pytest.mark.parametrize(("value", "message"), [
    ("gpu:-1", "must not be negative"),
    ("gpu:a100:2:x", "is not a GPU request"),
    ("gpu:a100:1,gpu:v100:1", "asks for GPUs twice"),
    ("gpu:2,", "has an empty item"),
    ("gpu:2000", "more than the maximum of 1024"),
    ("gpu:a$:1", "is not a GPU type or count"),
])
def test_parse_gres_rejects(value: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_gres(value)
    assert message in info.value.message


@pytest.mark.parametrize(("value", "gpu"), [
    ("4", (None, 4)),
    ("a100:4", ("a100", 4)),
    ("gpu:a100:4", ("a100", 4)),
])
def test_parse_gpus(value: str, gpu: tuple[str | None, int]) -> None:
    assert parse_gpus(value) == gpu


@pytest.mark.parametrize(("value", "message"), [
    ("a100", "has no GPU count"),
    ("-2", "must not be negative"),
    ("", "has no GPU count"),
])
def test_parse_gpus_rejects(value: str, message: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_gpus(value)
    assert message in info.value.message


@pytest.mark.parametrize("parser", [parse_time, parse_mem, parse_array, parse_dependency,
                                    parse_gres, parse_gpus])
@given(value=st.text(alphabet=st.sampled_from("0123456789-:,%?gpuaftk GMT\u0663"),
                     max_size=20))
def test_parsers_return_or_raise_invalid_request(parser: Any, value: str) -> None:
    try:
        parser(value)
    except InvalidRequest as err:
        assert err.message
