"""The Slurm testbed for the tests marked `slurm` (scripts/slurm-testbed)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from lightgrid.backends.slurm import SlurmBackend
from tests.backends.slurm.testbed import Testbed, require_testbed


@pytest.fixture(scope="session")
def testbed() -> Testbed:
    return require_testbed()


@pytest.fixture(scope="session")
def backend(testbed: Testbed) -> Iterator[SlurmBackend]:
    yield SlurmBackend(testbed.config(command_timeout=20))
