"""The job state machine and output file patterns."""

from __future__ import annotations

import itertools

import pytest

from lightgrid.core.errors import IllegalTransition
from lightgrid.core.jobs import (
    TERMINAL_STATES,
    TRANSITIONS,
    JobState,
    check_transition,
    expand_output_pattern,
)

S = JobState
ALLOWED = {
    (S.PENDING, S.RUNNING), (S.PENDING, S.CANCELLED), (S.PENDING, S.FAILED),
    (S.PENDING, S.NODE_FAIL),
    (S.RUNNING, S.COMPLETED), (S.RUNNING, S.FAILED), (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.TIMEOUT), (S.RUNNING, S.NODE_FAIL), (S.RUNNING, S.OUT_OF_MEMORY),
    (S.RUNNING, S.PENDING),
    *((t, S.PENDING) for t in TERMINAL_STATES),
}


def test_table_is_exactly_the_documented_one() -> None:
    assert set(TRANSITIONS) == ALLOWED


@pytest.mark.parametrize(("current", "target"), list(itertools.product(S, S)))
def test_every_pair(current: JobState, target: JobState) -> None:
    if (current, target) in ALLOWED:
        check_transition(current, target)
    else:
        with pytest.raises(IllegalTransition, match=f"{current} to {target}"):
            check_transition(current, target, job="7")


def test_terminal_states() -> None:
    assert {s for s in S if s.is_terminal} == set(S) - {S.PENDING, S.RUNNING}


@pytest.mark.parametrize(("pattern", "expected"), [
    ("slurm-%j.out", "slurm-42.out"),
    ("%A_%a.log", "40_2.log"),
    ("%x-%u.out", "train-alice.out"),
    ("%%j", "%j"),
    ("task%3a", "task002"),
    ("plain", "plain"),
])
def test_output_patterns(pattern: str, expected: str) -> None:
    assert expand_output_pattern(pattern, job_number=42, array_job=40, array_task=2,
                                 user="alice", name="train") == expected
