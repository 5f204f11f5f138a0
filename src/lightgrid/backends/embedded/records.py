"""On-disk records of the embedded backend, one directory per job.

Like slurmctld's state save location, these files let the backend restart without
losing a job: `job.json` is written at submission, `runner.json` when the runner
process starts, and `status.json` (atomically) by the runner when the job ends.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

JOB_FILE = "job.json"
RUNNER_FILE = "runner.json"
STATUS_FILE = "status.json"
SCRIPT_FILE = "script"


@dataclass(slots=True)
class JobRecord:
    """What the runner needs to run one job (or one array task)."""

    backend_id: str
    platform_job_id: str
    name: str
    user: str
    account: str
    partition: str
    tres: dict[str, int]
    nodes: int
    gpu_type: str | None
    time_limit: int
    workdir: str
    stdout: str
    stderr: str
    submit_time: float
    environment: dict[str, str] = field(default_factory=dict)
    dependencies: list[tuple[str, list[str]]] = field(default_factory=list)
    array_group: str | None = None
    array_task: int | None = None
    array_max_running: int | None = None
    kill_grace: float = 10.0
    cancelled: bool = False

    def to_json(self) -> dict[str, Any]:
        # Shallow (asdict() deep-copies); the result is serialised at once.
        return {name: getattr(self, name) for name in _RECORD_FIELDS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobRecord:
        data = dict(data)
        data.pop("script", None)  # stored beside the record, not part of it
        data["dependencies"] = [(k, list(ids)) for k, ids in data.get("dependencies", [])]
        return cls(**data)


_RECORD_FIELDS = tuple(f.name for f in fields(JobRecord))


@dataclass(slots=True)
class RunnerStatus:
    """The outcome the runner writes when its job ends."""

    state: str
    exit_code: int | None
    start_time: float
    end_time: float
    cpu_time: float
    max_rss: int  # bytes
    reason: str = ""


def write_json_atomic(path: Path, data: Any, *, durable: bool = True) -> None:
    """Write by rename, so readers see the old or the new file, never a torn one.

    `durable` also fsyncs, so the file survives a power loss; a submission record does
    without (the platform's database is the durable copy, and reconciliation after a
    crash resubmits what the backend lost).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w") as fh:
        # One dumps() call: json.dump() encodes piecewise in pure Python.
        fh.write(json.dumps(data))
        if durable:
            fh.flush()
            os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_json(path: Path) -> Any | None:
    try:
        with open(path) as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None
    except json.JSONDecodeError:
        return None
