"""`lightgrid sim` and `lightgrid sim-generate` through the CLI."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from lightgrid.cli.main import _register, app

_register()
runner = CliRunner()

JOBS = [(1, 0, 10, 7, 10), (2, 0, 10, 5, 10), (3, 0, 10, 8, 10), (4, 0, 25, 3, 25)]


def test_json_aggregates_and_jobs_csv(write_swf, tmp_path):
    out = tmp_path / "jobs.csv"
    r = runner.invoke(app, ["sim", str(write_swf(10, JOBS)), "--policy", "easy", "--json",
                            "--jobs-out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert set(summary) == {"jobs", "skipped", "mean_wait", "mean_bsld", "max_wait",
                            "utilization", "makespan"}
    assert summary["jobs"] == 4 and summary["max_wait"] == 25
    rows = list(csv.DictReader(out.open()))
    assert {int(r["id"]): int(r["start"]) for r in rows} == {1: 0, 4: 0, 2: 10, 3: 25}
    assert list(rows[0]) == ["id", "submit", "start", "end", "procs"]


def test_procs_and_limit_options(write_swf):
    r = runner.invoke(app, ["sim", str(write_swf(None, JOBS)), "--procs", "8", "--limit",
                            "3", "--json", "--policy", "fcfs"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["jobs"] == 3


def test_missing_size_is_an_error(write_swf):
    r = runner.invoke(app, ["sim", str(write_swf(None, JOBS))])
    assert r.exit_code == 2
    assert "--procs" in r.output


def test_malformed_trace_is_reported_with_its_line(tmp_path):
    bad = tmp_path / "bad.swf"
    bad.write_text("; MaxProcs: 4\n1 0 -1 5 1\n")
    r = runner.invoke(app, ["sim", str(bad)])
    assert r.exit_code == 2
    assert "bad.swf:2" in r.output


def test_plots_are_written(write_swf, tmp_path):
    r = runner.invoke(app, ["sim", str(write_swf(10, JOBS)), "--plot", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    for name in ("wait_cdf.png", "utilization.png", "queue.png"):
        assert (tmp_path / "p" / name).read_bytes()[:4] == b"\x89PNG"


def test_network_run_adds_center_column(write_swf, tmp_path):
    cfg = tmp_path / "net.toml"
    cfg.write_text('placement = "earliest-start"\n[[center]]\nname = "x"\nprocs = 10\n'
                   '[[center]]\nname = "y"\nprocs = 10\npolicy = "fcfs"\n')
    out = tmp_path / "jobs.csv"
    r = runner.invoke(app, ["sim", str(write_swf(None, JOBS)), "--network", str(cfg),
                            "--json", "--jobs-out", str(out)])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["jobs"] == 4 and set(summary["centers"]) == {"x", "y"}
    rows = list(csv.DictReader(out.open()))
    assert {r["center"] for r in rows} <= {"x", "y"} and len(rows) == 4


def test_generate_then_simulate(tmp_path):
    out = tmp_path / "gen.swf"
    r = runner.invoke(app, ["sim-generate", str(out), "--jobs", "200", "--procs", "64",
                            "--seed", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["sim", str(out), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["jobs"] == 200
