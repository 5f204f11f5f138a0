"""Running Slurm's client tools: argument lists only, timeouts, and error mapping.

Every command gets a small fixed environment (PATH, SLURM_CONF, LANG=C, TZ=UTC) so that
nothing from the service's own environment (``SBATCH_*``, ``SLURM_*``) changes what
the tools do. A non-zero exit becomes `BackendUnavailable` when Slurm could not be
reached and `BackendRejected` (with Slurm's message) when Slurm said no.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
from collections.abc import Sequence
from typing import Any

from lightgrid.backends.slurm.config import SlurmConfig
from lightgrid.core.errors import BackendRejected, BackendUnavailable

log = logging.getLogger(__name__)

#: Messages meaning "cannot reach Slurm now" rather than "Slurm refuses".
_UNAVAILABLE = re.compile(
    r"unable to contact slurm controller|connection refused|socket timed out"
    r"|communication connection failure|zero bytes were transmitted"
    r"|unable to connect|connect failure|slurm_persist_conn_open|problem talking to"
    r"|slurmdbd.*(?:down|not responding)|munge (?:en|de)code failed|did you start munged"
    r"|temporarily unavailable|temporarily unable|transport endpoint|network is unreachable"
    r"|slurm backup controller in standby|slurmctld.*not responding"
    r"|error connecting to|could not establish a configuration source"
    r"|unable to establish|timed out",
    re.IGNORECASE)
_BENIGN = {"nothing found"}
_PREFIX = re.compile(r"^(?:s\w+): (?:error|fatal): ", re.IGNORECASE)


class SlurmTimeout(BackendUnavailable):
    """A command did not finish in time; what it did is unknown."""


def is_unavailable_message(text: str) -> bool:
    """Whether Slurm's message says it could not be reached (retry later)."""
    return bool(_UNAVAILABLE.search(text))


def clean_message(text: str) -> str:
    """Slurm's stderr as one line, without the ``sbatch: error:`` prefixes."""
    lines = [_PREFIX.sub("", line).strip() for line in text.splitlines()]
    seen: list[str] = []
    for line in lines:
        if line and line not in seen:
            seen.append(line)
    return "; ".join(seen)[:2000]


class SlurmCommands:
    """Runs one Slurm tool at a time; thread-safe (no shared mutable state)."""

    def __init__(self, config: SlurmConfig) -> None:
        self.config = config
        path = "/usr/bin:/bin:/usr/sbin:/sbin"
        if config.bin_dir:
            path = f"{config.bin_dir}:{path}"
        self.env = {"PATH": path, "SLURM_CONF": str(config.slurm_conf),
                    "LANG": "C", "LC_ALL": "C", "TZ": "UTC"}

    def tool(self, name: str) -> str:
        if self.config.bin_dir:
            return os.path.join(self.config.bin_dir, name)
        return name

    def run(self, name: str, args: Sequence[str], *, input_text: str | None = None,
            timeout: float | None = None, pass_fds: Sequence[int] = (),
            check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run `name` with `args` (a list, never a shell string); map failures."""
        argv = [self.tool(name), *args]
        try:
            proc = subprocess.run(
                argv, input=input_text, capture_output=True, text=True,
                timeout=timeout or self.config.command_timeout, env=self.env,
                pass_fds=tuple(pass_fds), check=False,
                stdin=None if input_text is not None else subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise SlurmTimeout(f"{name} did not answer within "
                               f"{exc.timeout:g} seconds") from exc
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"Slurm tool {name!r} not found") from exc
        except OSError as exc:
            raise BackendUnavailable(f"cannot run {name}: {exc}") from exc
        if check and proc.returncode != 0:
            raise self.error(name, proc)
        return proc

    @staticmethod
    def error(name: str, proc: subprocess.CompletedProcess[str]) -> Exception:
        text = (proc.stderr or "") + "\n" + (proc.stdout or "")
        message = clean_message(text) or f"{name} exited with status {proc.returncode}"
        if is_unavailable_message(text):
            return BackendUnavailable(f"Slurm unavailable: {message}")
        return BackendRejected(message)

    def json(self, name: str, args: Sequence[str], *,
             timeout: float | None = None) -> dict[str, Any]:
        """Run a tool with ``--json`` and decode its output; report its `errors`."""
        proc = self.run(name, [*args, "--json"], timeout=timeout)
        try:
            data = json.loads(proc.stdout)
        except ValueError as exc:
            raise BackendUnavailable(f"{name} --json printed no valid JSON: "
                                     f"{clean_message(proc.stderr) or exc}") from exc
        if not isinstance(data, dict):
            raise BackendUnavailable(f"{name} --json printed {type(data).__name__}")
        errors = data.get("errors") or []
        texts = [str(e.get("description") or e.get("error") or e) if isinstance(e, dict)
                 else str(e) for e in errors]
        texts = [t for t in texts if t.strip().lower() not in _BENIGN]
        if texts:
            text = "; ".join(texts)
            # squeue and sinfo print an error entry (and exit 0) when slurmctld is down.
            if name in ("squeue", "sinfo") or is_unavailable_message(text):
                raise BackendUnavailable(f"Slurm unavailable: {name}: {text}")
            log.warning("%s --json reported: %s", name, text)
        return data
