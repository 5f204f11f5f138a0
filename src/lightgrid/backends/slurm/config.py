"""Typed configuration of the Slurm backend."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class SlurmConfig(BaseModel):
    """Where the cluster is and how to talk to it.

    `slurm_conf` is passed as SLURM_CONF to every command; `bin_dir` holds the Slurm
    client tools (found on PATH when unset).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    slurm_conf: Path
    cluster: str = Field(min_length=1)
    command_timeout: float = Field(default=30.0, gt=0)
    bin_dir: Path | None = None
    #: Submit with ``--uid=<user>`` (the service runs as root or SlurmUser).
    submit_as_user: bool = False
    #: Prefix of the job comment carrying the platform job id.
    comment_prefix: str = Field(default="lightgrid:", min_length=1)
    #: Look for an existing job with the same platform id before every ``sbatch``
    #: (always done after an ``sbatch`` whose outcome was unknown).
    check_before_submit: bool = False
    #: How far back `find_by_platform_id` searches the accounting database.
    reconcile_lookback_days: int = Field(default=14, ge=1)
