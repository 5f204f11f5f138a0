"""Helpers shared by the simulator tests."""

from __future__ import annotations

from pathlib import Path

import pytest

TRACES = Path(__file__).resolve().parents[3] / "shared" / "traces"


def swf_text(procs: int | None, jobs: list[tuple[int, int, int, int, int]]) -> str:
    """A SWF file from (id, submit, run, procs, estimate) rows; estimate -1 = unknown."""
    lines = ["; Version: 2.2"]
    if procs is not None:
        lines += [f"; MaxNodes: {procs}", f"; MaxProcs: {procs}"]
    for jid, submit, run, p, est in jobs:
        lines.append(f"{jid} {submit} -1 {run} {p} -1 -1 {p} {est} -1 1 {jid % 7} 1 -1 "
                     f"{jid % 3} -1 -1 -1")
    return "\n".join(lines) + "\n"


@pytest.fixture
def write_swf(tmp_path: Path):
    def write(procs: int | None, jobs: list[tuple[int, int, int, int, int]],
              name: str = "t.swf") -> Path:
        path = tmp_path / name
        path.write_text(swf_text(procs, jobs))
        return path
    return write


@pytest.fixture
def traces() -> Path:
    if not TRACES.is_dir():
        pytest.skip(f"shared traces not found at {TRACES}")
    return TRACES
