"""The running Slurm testbed (scripts/slurm-testbed), for every test marked `slurm`.

Contract: ``LIGHTGRID_TEST_SLURM_CONF`` names the testbed's slurm.conf; without it the
tests skip with ``LIGHTGRID_TEST_SLURM_SKIP_REASON`` (or a hint how to start one).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from lightgrid.backends.slurm import SlurmConfig

REPO = Path(__file__).resolve().parents[3]
SKIP_REASON = os.environ.get(
    "LIGHTGRID_TEST_SLURM_SKIP_REASON",
    "Slurm testbed not running: run scripts/slurm-testbed up and set "
    "LIGHTGRID_TEST_SLURM_CONF")


class Testbed:
    """The running testbed: its config, and control of its slurmctld."""

    __test__ = False  # not a test class

    def __init__(self, conf: Path) -> None:
        self.conf = conf
        self.workdir = conf.parent.parent
        state_file = self.workdir / "testbed.json"
        state = json.loads(state_file.read_text()) if state_file.exists() else {}
        self.name = state.get("name") or self._cluster_name()
        self.env = {"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "SLURM_CONF": str(conf),
                    "TZ": "UTC"}

    def _cluster_name(self) -> str:
        for line in self.conf.read_text().splitlines():
            if line.startswith("ClusterName="):
                return line.split("=", 1)[1].strip()
        raise RuntimeError(f"no ClusterName in {self.conf}")

    def config(self, **kw: object) -> SlurmConfig:
        return SlurmConfig(slurm_conf=self.conf, cluster=self.name, **kw)  # type: ignore[arg-type]

    def ctld(self, action: str) -> None:
        subprocess.run([str(REPO / "scripts" / "slurm-testbed"), "ctld", action,
                        "--name", self.name, "--workdir", str(self.workdir)],
                       check=True, timeout=120, capture_output=True)

    def run(self, *argv: str, input_text: str | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), env=self.env, input=input_text, text=True,
                              capture_output=True, timeout=60, check=check)



def require_testbed() -> Testbed:
    """The testbed named by LIGHTGRID_TEST_SLURM_CONF, or skip the test."""
    conf = os.environ.get("LIGHTGRID_TEST_SLURM_CONF")
    if not conf:
        pytest.skip(SKIP_REASON)
    path = Path(conf)
    if not path.exists():
        pytest.skip(f"LIGHTGRID_TEST_SLURM_CONF={conf} does not exist")
    return Testbed(path)
