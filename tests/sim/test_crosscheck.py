"""lightgrid's simulator against the plain reference in sim_reference.py, job by job."""

from __future__ import annotations

import os

import pytest
import sim_reference as ref
from test_engine_hand import DISCRIMINATING

from lightgrid.core.scheduling import policy_by_name
from lightgrid.sim.engine import simulate_trace

# (trace, extra procs, job lines for fcfs/easy, for conservative): prefixes keep the
# slow reference (it rebuilds everything at every step) to a few seconds.
CASES = [
    ("HPC2N-2002-2.2-cln.swf.gz", None, 5000, 3000),
    ("CTC-SP2-1996-3.1-cln.swf.gz", None, 2000, 250),
    ("KTH-SP2-1996-2.1-cln.swf.gz", None, 3000, 1000),
    ("SDSC-BLUE-2000-4.2-cln.swf.gz", None, 2500, 800),
    ("LLNL-Thunder-2007-1.1-cln.swf.gz", None, 3000, 1500),
    ("RICC-2010-2.swf.gz", 8192, 2500, 800),
    ("lublin_256.swf", None, 2000, 800),
]


def _compare(path: str, procs: int | None, limit: int, policy: str) -> None:
    machine, jobs, skipped = ref.read_trace(path, procs, limit)
    expected = ref.simulate(jobs, machine, policy)
    got: dict[int, tuple[int, int, int, int]] = {}
    metrics = simulate_trace(path, policy_by_name(policy), procs, limit,
                             on_job=lambda i, s, st, e, p: got.__setitem__(i, (s, st, e, p)))
    assert metrics.skipped == skipped
    assert len(got) == len(expected)
    wrong = [k for k in expected if got.get(k) != expected[k]]
    assert not wrong, f"{len(wrong)} jobs differ, first {wrong[0]}: " \
                      f"expected {expected[wrong[0]]}, got {got.get(wrong[0])}"


@pytest.mark.parametrize(("name", "procs", "limit", "climit"), CASES,
                         ids=[c[0].split("-")[0] for c in CASES])
@pytest.mark.parametrize("policy", ["fcfs", "easy", "conservative"])
def test_agrees_with_reference_on_shared_traces(traces, name, procs, limit, climit, policy):
    _compare(str(traces / name), procs, climit if policy == "conservative" else limit,
             policy)


@pytest.mark.parametrize("policy", ["fcfs", "easy", "conservative"])
def test_reference_agrees_on_the_hand_worked_trace(write_swf, policy):
    path = str(write_swf(10, DISCRIMINATING))
    _compare(path, None, 100, policy)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("LIGHTGRID_LONG_CROSSCHECK"),
                    reason="set LIGHTGRID_LONG_CROSSCHECK=1 for long prefixes")
@pytest.mark.parametrize("policy", ["fcfs", "easy", "conservative"])
@pytest.mark.parametrize("name", ["HPC2N-2002-2.2-cln.swf.gz", "KTH-SP2-1996-2.1-cln.swf.gz"])
def test_agrees_on_long_prefixes(traces, name, policy):
    _compare(str(traces / name), None, 20000 if policy != "conservative" else 6000, policy)


def test_every_profile_layout_plans_alike(traces, monkeypatch):
    """The plan kept in bytes, the plan kept in lists, and planning from scratch over
    the generic (Tres-capable) profile give one schedule."""
    from lightgrid.core.scheduling import conservative, plan, profile

    path = str(traces / "HPC2N-2002-2.2-cln.swf.gz")

    def run() -> dict[int, int]:
        got: dict[int, int] = {}
        simulate_trace(path, policy_by_name("conservative"), limit=3000,
                       on_job=lambda i, s, st, e, p: got.__setitem__(i, st))
        return got

    packed = run()
    monkeypatch.setattr(plan, "BYTE_LIMIT", 0)
    assert run() == packed
    monkeypatch.setattr(plan.Plan, "usable", staticmethod(lambda state: False))
    monkeypatch.setattr(conservative, "profile_of_running", profile.Profile.of_running)
    assert run() == packed
