"""Finance staff set limits from the command line, against a running demo center."""

from __future__ import annotations

import json

from tests.cli.test_demo_walkthrough import demo, run

__all__ = ["demo"]  # the fixture, re-used


def test_threshold_blocks_and_whitelist_lifts_it(demo: dict[str, object]) -> None:
    run(demo, "finance", "limits", "set", "battery-md", "--threshold", "100000")
    blocked = json.loads(run(demo, "finance", "limits", "blocked", "--json").stdout)
    assert "battery-md" in blocked
    run(demo, "finance", "limits", "whitelist", "battery-md", "--reason", "grant pending")
    blocked = json.loads(run(demo, "finance", "limits", "blocked", "--json").stdout)
    assert "battery-md" not in blocked
    run(demo, "finance", "limits", "unwhitelist", "battery-md")
    blocked = json.loads(run(demo, "finance", "limits", "blocked", "--json").stdout)
    assert "battery-md" in blocked


def test_cap_and_refusals(demo: dict[str, object]) -> None:
    capped = json.loads(run(demo, "finance", "limits", "cap", "alloy-sim", "alice", "50",
                            "--json").stdout)
    assert capped["user"] == "alice" and capped["limit"] == "50.00"
    denied = run(demo, "researcher", "limits", "cap", "alloy-sim", "alice", "5000",
                 check=False)
    assert denied.returncode == 1 and "403" in denied.stderr
    bad = run(demo, "finance", "limits", "set", "battery-md", "--threshold", "abc",
              check=False)
    assert bad.returncode == 1 and "threshold" in bad.stderr
