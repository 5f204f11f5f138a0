"""The SWF reader: gzip or plain, header fields, the model's fields, strictness."""

from __future__ import annotations

import gzip

import pytest

from conftest import swf_text
from lightgrid.sim.swf import SwfError, iter_jobs, iter_records, read_header


def test_header_fields(tmp_path):
    path = tmp_path / "h.swf"
    path.write_text("; Version: 2.2\n; UnixStartTime: 1027839845\n"
                    "; MaxNodes: 240 (batch partition)\n; MaxProcs: 480\n"
                    "; Note: free text, with: colons\n" + swf_text(None, [(1, 0, 5, 1, 5)]))
    h = read_header(path)
    assert (h.max_procs, h.max_nodes, h.unix_start_time) == (480, 240, 1027839845)
    assert h.processors() == 480
    assert h.fields["Version"] == "2.2"


def test_processors_fall_back_to_max_nodes(tmp_path):
    path = tmp_path / "h.swf"
    path.write_text("; MaxNodes: 64\n; MaxProcs: -1\n")
    assert read_header(path).processors() == 64


def test_gzip_and_plain_read_the_same(tmp_path):
    text = swf_text(8, [(1, 0, 5, 2, 10), (2, 3, 20, 4, -1), (3, 4, 5, 9, 5)])
    plain = tmp_path / "a.swf"
    plain.write_text(text)
    packed = tmp_path / "a.swf.gz"
    packed.write_bytes(gzip.compress(text.encode()))
    skipped = [0]
    jobs = list(iter_jobs(packed, 8, skipped=skipped))
    assert jobs == list(iter_jobs(plain, 8))
    # id, submit, runtime, procs, estimate (unknown -> runtime), user, queue
    assert jobs == [(1, 0, 5, 2, 10, 1, 1), (2, 3, 20, 4, 20, 2, 2)]
    assert skipped == [1]
    assert read_header(packed).processors() == 8


def test_requested_procs_fall_back_to_allocated(tmp_path):
    path = tmp_path / "a.swf"
    path.write_text("1 0 -1 30 6 -1 -1 -1 100 -1 1 1 1 -1 1 -1 -1 -1\n")
    assert list(iter_jobs(path, 8)) == [(1, 0, 30, 6, 100, 1, 1)]


def test_full_records(tmp_path):
    path = tmp_path / "a.swf"
    path.write_text("; c\n12 342343 5 553 40 552.21 -1 40 43200 -1 1 4 1 -1 -1 1 -1 -1\n")
    (rec,) = iter_records(path)
    assert rec.job == 12 and rec.cpu == pytest.approx(552.21) and rec.req_time == 43200


@pytest.mark.parametrize(("line", "why"), [
    ("1 0 -1 30 6 -1 -1 -1 100 -1 1 1 1 -1 1 -1 -1", "expected 18 fields, found 17"),
    ("1 0 -1 30 6 -1 -1 x 100 -1 1 1 1 -1 1 -1 -1 -1", "field 'req_procs' is not a number"),
    ("1 0 -1 30.5 6 -1 -1 -1 100 -1 1 1 1 -1 1 -1 -1 -1", "whole number"),
])
def test_malformed_lines_name_file_and_line(tmp_path, line, why):
    path = tmp_path / "bad.swf"
    good = "1 0 -1 30 6 -1 -1 -1 100 -1 1 1 1 -1 1 -1 -1 -1"
    path.write_text(f"; header\n{good}\n\n{line}\n")
    with pytest.raises(SwfError, match=why) as err:
        list(iter_jobs(path, 8))
    assert err.value.line == 4
    assert str(err.value).startswith(f"{path}:4:")
    if "whole" not in why:  # full records keep fractional values as floats
        with pytest.raises(SwfError):
            list(iter_records(path))


def test_malformed_line_in_a_gzip_block_is_found(tmp_path):
    rows = [(i, i, 5, 1, 5) for i in range(1, 2000)]
    text = swf_text(4, rows).replace("\n1500 1500 ", "\n1500 15x0 ")
    path = tmp_path / "bad.swf.gz"
    path.write_bytes(gzip.compress(text.encode()))
    with pytest.raises(SwfError, match=r"bad\.swf\.gz:1503:"):
        list(iter_jobs(path, 4))


def test_limit_counts_job_lines(tmp_path):
    path = tmp_path / "a.swf"
    path.write_text(swf_text(4, [(1, 0, 5, 9, 5), (2, 1, 5, 1, 5), (3, 2, 5, 1, 5)]))
    skipped = [0]
    assert [j[0] for j in iter_jobs(path, 4, limit=2, skipped=skipped)] == [2]
    assert skipped == [1]
    assert [r.job for r in iter_records(path, limit=2)] == [1, 2]
