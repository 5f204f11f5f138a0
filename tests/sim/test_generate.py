"""The Lublin-Feitelson generator: reproducible, valid SWF, sane shapes."""

from __future__ import annotations

import io
import itertools
import statistics

from lightgrid.sim.generate import LublinParams, lublin_jobs, write_swf
from lightgrid.sim.swf import iter_jobs, read_header


def test_same_seed_same_jobs_other_seed_other_jobs():
    assert list(lublin_jobs(500, 128, seed=7)) == list(lublin_jobs(500, 128, seed=7))
    assert list(lublin_jobs(500, 128, seed=7)) != list(lublin_jobs(500, 128, seed=8))


def test_jobs_fit_the_machine_and_arrive_in_order():
    jobs = list(lublin_jobs(5000, 64, seed=1))
    assert [j[0] for j in jobs] == list(range(1, 5001))
    assert all(1 <= j[3] <= 64 and j[2] >= 1 for j in jobs)
    assert all(a[1] <= b[1] for a, b in itertools.pairwise(jobs))
    sizes = [j[3] for j in jobs]
    # Mostly small parallel jobs, many powers of two, some serial.
    assert statistics.median(sizes) <= 16
    assert sum(1 for s in sizes if s & (s - 1) == 0) > len(sizes) / 2
    assert 0 < sum(1 for s in sizes if s == 1) < len(sizes) / 4


def test_load_scale_compresses_arrivals():
    slow = list(lublin_jobs(1000, 64, seed=3))
    fast = list(lublin_jobs(1000, 64, seed=3, params=LublinParams(load_scale=0.5)))
    assert fast[-1][1] < slow[-1][1]


def test_written_swf_reads_back(tmp_path):
    buf = io.StringIO()
    write_swf(buf, 300, 32, seed=2)
    path = tmp_path / "g.swf"
    path.write_text(buf.getvalue())
    assert read_header(path).processors() == 32
    jobs = list(iter_jobs(path, 32))
    assert len(jobs) == 300
    assert [(j[0], j[1], j[2], j[3]) for j in jobs] == list(lublin_jobs(300, 32, seed=2))
