"""`SlurmBackend`: the backend interface over sbatch, squeue, sacct, sinfo, scancel.

Each job carries its platform id in its comment (``--comment=lightgrid:<id>``, stored
by slurmdbd with ``AccountingStoreFlags=job_comment``), so `find_by_platform_id`
finds it again after a crash between ``sbatch`` and the platform's commit. A submit
whose outcome is unknown (a timeout) is remembered; the next submit of that job first
looks for it and adopts it instead of submitting twice.

Resources are passed on the command line, where they override ``#SBATCH`` lines of
the script: the user's task layout (``--ntasks``, ``--cpus-per-task``) when it
reproduces the platform's allocation, otherwise a fixed shape
(``--nodes=N --ntasks-per-node=1 --cpus-per-task=C``), with ``--mem`` per node and GPUs.

A refusal naming the account or association (``Invalid account or account/partition
combination``) can mean that the association sync has not yet created what the
platform already admitted; with `on_missing_association` set, the backend asks it to
sync and retries for a few seconds before passing the refusal on.
"""

from __future__ import annotations

import logging
import math
import os
import pwd
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import IO

from lightgrid.backends.base import (
    Backend,
    JobStatus,
    NodeInfo,
    PartitionInfo,
    SubmitRequest,
    SubmitResult,
    UsageRecord,
)
from lightgrid.backends.slurm import parse
from lightgrid.backends.slurm.commands import SlurmCommands
from lightgrid.backends.slurm.config import SlurmConfig
from lightgrid.core.errors import BackendRejected, BackendUnavailable, InvalidRequest

log = logging.getLogger(__name__)

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_BACKEND_ID = re.compile(r"^\d+(?:_\d+)?$")
_CHUNK = 200
_STEP_GRACE = 120.0  # seconds to wait for a finished job's step records
_GONE = ("already completing or completed", "invalid job id", "job has already finished")
_NO_ASSOCIATION = re.compile(r"invalid account|account/partition combination"
                             r"|invalid user for account|user.*not.*associat", re.IGNORECASE)
_ASSOCIATION_WAIT = 8.0  # seconds to wait for slurmctld to learn a new association


def compact_indices(indices: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` as Slurm's ``1-3,7``."""
    parts: list[str] = []
    ordered = sorted(set(indices))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def output_pattern(pattern: str, req: SubmitRequest) -> str:
    """The Slurm filename pattern that writes where the platform expects the output.

    The platform names files by its own job numbers (``%j``, ``%A``) and expands ``%u``
    ``%x`` ``%N`` itself; those are filled in here. Per-task values of an array
    (``%a``, and ``%j``) are left to Slurm, one pattern serving every task.
    """
    array = req.array is not None
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] != "%" or i + 1 >= len(pattern):
            out.append(pattern[i])
            i += 1
            continue
        j = i + 1
        while j < len(pattern) and pattern[j].isdigit():
            j += 1
        width = int(pattern[i + 1:j]) if j > i + 1 else 0
        letter = pattern[j] if j < len(pattern) else ""
        token = pattern[i:j + 1]
        if letter == "%":
            out.append("%%")
        elif letter in ("a", "j") and array:
            out.append(token)
        elif letter in ("j", "A"):
            out.append(str(req.job_number).zfill(width))
        elif letter == "a":
            out.append("4294967294".zfill(width))
        elif letter in ("u", "x", "N"):
            value = {"u": req.user, "x": req.name, "N": "localhost"}[letter]
            out.append(value.replace("%", "%%"))
        else:
            out.append(token)
        i = j + 1
    return "".join(out)


def _check_text(field: str, value: str) -> str:
    if "\n" in value or "\r" in value or "\0" in value:
        raise InvalidRequest(f"{field} must be a single line", field=field)
    return value


def check_backend_id(backend_id: str) -> str:
    """Refuse anything but ``123`` or ``123_4`` before it reaches a command line."""
    if not _BACKEND_ID.match(backend_id):
        raise InvalidRequest(f"not a Slurm job id: {backend_id!r}", field="backend_id")
    return backend_id


class SlurmBackend(Backend):
    """Drives one Slurm cluster with its command-line tools."""

    kind = "slurm"

    def __init__(self, config: SlurmConfig) -> None:
        self.config = config
        self.commands = SlurmCommands(config)
        self._lock = threading.Lock()
        self._uncertain: set[str] = set()
        #: Called with (user, account) when Slurm refuses a job's account: should make
        #: the association exist and return True, or False when it should not exist.
        self.on_missing_association: Callable[[str, str], bool] | None = None

    # ------------------------------------------------------------ submit

    def sbatch_args(self, req: SubmitRequest) -> list[str]:
        """The sbatch options of `req`: one argv element each, values never options."""
        a = req.allocation
        minutes = max(1, math.ceil(req.time_limit / 60))
        args = [
            f"--job-name={_check_text('name', req.name)}",
            f"--account={_check_text('account', req.account)}",
            f"--partition={_check_text('partition', req.partition)}",
            f"--comment={self._comment(req)}",
            f"--time={minutes}",
            *self._layout(req), f"--mem={a.mem_per_node}M",
            f"--chdir={_check_text('workdir', req.workdir)}",
            f"--output={output_pattern(_check_text('stdout', req.stdout), req)}",
            f"--error={output_pattern(_check_text('stderr', req.stderr), req)}",
        ]
        if a.gpus_per_node:
            gtype = f"{a.gpu_type}:" if a.gpu_type else ""
            args.append(f"--gres=gpu:{_check_text('gres', gtype)}{a.gpus_per_node}")
        if a.tres.node:
            args.append("--exclusive")
        if req.qos:
            args.append(f"--qos={_check_text('qos', req.qos)}")
        if self.config.submit_as_user:
            args.append(f"--uid={_check_text('user', req.user)}")
        if req.dependencies:
            deps = ",".join(f"{d.kind.value}:" + ":".join(check_backend_id(b)
                                                            for b in d.backend_ids)
                            for d in req.dependencies)
            args.append(f"--dependency={deps}")
        if req.array is not None:
            spec = compact_indices(req.array.indices)
            if req.array.max_running:
                spec += f"%{req.array.max_running}"
            args.append(f"--array={spec}")
        return args

    def _comment(self, req: SubmitRequest) -> str:
        """The platform id first (what `find_by_platform_id` looks for), then the
        user's own comment."""
        _check_text("job_id", req.job_id)
        if not req.job_id or any(c.isspace() for c in req.job_id):
            raise InvalidRequest(f"bad platform job id {req.job_id!r}", field="job_id")
        text = f"{self.config.comment_prefix}{req.job_id}"
        if req.comment and req.comment.strip():
            text += " " + _check_text("comment", req.comment.strip())
        return text

    @staticmethod
    def _layout(req: SubmitRequest) -> list[str]:
        """Nodes, tasks and CPUs per task: the user's layout if it yields the platform's
        allocation, else one task per node with all of the node's CPUs."""
        a = req.allocation
        ntasks, cpt = req.ntasks, req.cpus_per_task or 1
        if ntasks and ntasks >= a.nodes and cpt >= 1:
            per_node = -(-ntasks // a.nodes) * cpt
            fits = per_node <= a.cpus_per_node
            same = ntasks * cpt == a.tres.cpu or (a.tres.node and fits)
            if fits and same:
                return [f"--nodes={a.nodes}", f"--ntasks={ntasks}", f"--cpus-per-task={cpt}"]
        return [f"--nodes={a.nodes}", "--ntasks-per-node=1", f"--ntasks={a.nodes}",
                f"--cpus-per-task={a.cpus_per_node}"]

    def _prepare_workdir(self, req: SubmitRequest) -> None:
        """Create the job's working directory (a home or workspace on a file system the
        nodes share); owned by the user when jobs run as the user."""
        path = req.workdir
        if not os.path.isabs(path) or os.path.isdir(path):
            return
        try:
            os.makedirs(path, exist_ok=True)
            if self.config.submit_as_user:
                entry = pwd.getpwnam(req.user)
                os.chown(path, entry.pw_uid, entry.pw_gid)
        except (OSError, KeyError) as exc:
            log.warning("cannot prepare working directory %s: %s", path, exc)

    def _export_file(self, req: SubmitRequest) -> IO[bytes] | None:
        if req.export.strip().upper() == "NONE" or not req.environment:
            return None
        chunks = []
        for key, value in req.environment.items():
            if not _ENV_NAME.match(key) or "\0" in value:
                raise InvalidRequest(f"invalid environment variable {key!r}",
                                     field="environment")
            chunks.append(f"{key}={value}".encode() + b"\0")
        handle = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller
        handle.write(b"".join(chunks))
        handle.flush()
        handle.seek(0)
        return handle

    def _run_sbatch(self, req: SubmitRequest, extra: Sequence[str]) -> tuple[str, str]:
        args = [*extra, *self.sbatch_args(req), f"--export={_check_text('export', req.export)}"]
        export = self._export_file(req)
        try:
            fds: tuple[int, ...] = ()
            if export is not None:
                fds = (export.fileno(),)
                args.append(f"--export-file={export.fileno()}")
            proc = self.commands.run("sbatch", args, input_text=req.script, pass_fds=fds)
        finally:
            if export is not None:
                export.close()
        return proc.stdout, proc.stderr

    def submit(self, request: SubmitRequest) -> SubmitResult:
        with self._lock:
            uncertain = request.job_id in self._uncertain
        if uncertain or self.config.check_before_submit:
            adopted = self.adopt(request)
            if adopted is not None:
                return adopted
        self._prepare_workdir(request)
        try:
            out = self._sbatch_with_association(request)
        except BackendUnavailable:
            # The job may or may not have reached slurmctld: look before resubmitting.
            with self._lock:
                self._uncertain.add(request.job_id)
            raise
        with self._lock:
            self._uncertain.discard(request.job_id)
        first = out.strip().splitlines()[0] if out.strip() else ""
        job_id = first.split(";")[0].strip()
        if not job_id.isdigit():
            raise BackendUnavailable(f"sbatch printed no job id: {out.strip()[:200]!r}")
        return self._result(job_id, request)

    def _sbatch_with_association(self, request: SubmitRequest) -> str:
        try:
            return self._run_sbatch(request, ["--parsable"])[0]
        except BackendRejected as exc:
            hook = self.on_missing_association
            if hook is None or not _NO_ASSOCIATION.search(exc.message):
                raise
            if not hook(request.user, request.account):
                raise
            first = exc
        # The association exists in slurmdbd now; slurmctld learns of it shortly after.
        deadline = time.monotonic() + _ASSOCIATION_WAIT
        while True:
            time.sleep(0.5)
            try:
                return self._run_sbatch(request, ["--parsable"])[0]
            except BackendRejected as exc:
                if not _NO_ASSOCIATION.search(exc.message) \
                        or time.monotonic() > deadline:
                    raise exc from first

    @staticmethod
    def _result(job_id: str, request: SubmitRequest) -> SubmitResult:
        if request.array is None:
            return SubmitResult(backend_id=job_id)
        return SubmitResult(backend_id=job_id,
                            task_backend_ids={i: f"{job_id}_{i}"
                                              for i in request.array.indices})

    def adopt(self, request: SubmitRequest) -> SubmitResult | None:
        """The result of an earlier submission of `request`, if Slurm has it."""
        found = self.find_by_platform_id(request.job_id)
        if not found:
            return None
        base = sorted({s.backend_id.split("_")[0] for s in found}, key=int)[0]
        log.warning("adopting Slurm job %s for platform job %s", base, request.job_id)
        with self._lock:
            self._uncertain.discard(request.job_id)
        return self._result(base, request)

    def estimate_start(self, request: SubmitRequest) -> datetime | None:
        _, err = self._run_sbatch(request, ["--test-only"])
        return parse.parse_test_only(err)

    # ------------------------------------------------------------ control

    def cancel(self, backend_id: str) -> None:
        try:
            self.commands.run("scancel", [check_backend_id(backend_id)])
        except BackendRejected as exc:
            if any(g in exc.message.lower() for g in _GONE):
                return
            raise

    def requeue(self, backend_id: str) -> None:
        self.commands.run("scontrol", ["requeue", check_backend_id(backend_id)])

    # ------------------------------------------------------------ states

    def _queue(self) -> list[parse.QueuedJob]:
        return parse.queued_jobs(self.commands.json("squeue", ["--all"]))

    def _sacct_json(self, ids: Sequence[str]) -> list[dict]:
        jobs: list[dict] = []
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            data = self.commands.json("sacct", ["-a", f"--clusters={self.config.cluster}",
                                                f"--jobs={','.join(chunk)}"])
            jobs.extend(data.get("jobs") or [])
        return jobs

    def exit_codes(self, ids: Sequence[str]) -> dict[str, int]:
        """Exit codes from ``sacct --parsable2`` (its JSON has them wrong in 22.05)."""
        out: dict[str, int] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i:i + _CHUNK]
            proc = self.commands.run("sacct", [
                "-a", "-n", "-P", "-X", f"--clusters={self.config.cluster}",
                f"--jobs={','.join(chunk)}", "--format=JobID,ExitCode"])
            out.update(parse.parse_exit_codes(proc.stdout))
        return out

    def poll(self, backend_ids: Iterable[str]) -> dict[str, JobStatus]:
        wanted = [check_backend_id(b) for b in dict.fromkeys(backend_ids)]
        if not wanted:
            return {}
        prefix = self.config.comment_prefix
        queued = parse.queue_statuses(self._queue(), prefix)
        out = {b: queued[b] for b in wanted if b in queued}
        missing = [b for b in wanted if b not in out]
        if missing:
            codes = self.exit_codes(missing)
            for job in self._sacct_json(missing):
                try:
                    for status in parse.sacct_status(job, prefix, codes):
                        if status.backend_id in missing:
                            out[status.backend_id] = status
                except ValueError:
                    log.warning("sacct job %s has an unknown state", job.get("job_id"))
        return out

    def usage(self, backend_ids: Iterable[str]) -> dict[str, UsageRecord]:
        """Usage of finished jobs; one whose record is still on its way to slurmdbd
        (the first seconds after its end) is left out until it is complete."""
        wanted = [check_backend_id(b) for b in dict.fromkeys(backend_ids)]
        if not wanted:
            return {}
        codes = self.exit_codes(wanted)
        out: dict[str, UsageRecord] = {}
        now = time.time()
        for job in self._sacct_json(wanted):
            if not parse.record_settled(job, now, _STEP_GRACE):
                continue  # steps not recorded yet: usage still incomplete
            record = parse.usage_record(job, self.config.comment_prefix, codes)
            if record is not None and record.backend_id in wanted:
                out[record.backend_id] = record
        return out

    def find_by_platform_id(self, platform_job_id: str) -> list[JobStatus]:
        """Jobs carrying this platform id: the queue first, then the accounting DB."""
        _check_text("platform_job_id", platform_job_id)
        prefix = self.config.comment_prefix
        found = {s.backend_id: s for job in self._queue()
                 if parse.platform_id(job.comment, prefix) == platform_job_id
                 for s in parse.queue_statuses([job], prefix).values()}
        since = datetime.now(UTC) - timedelta(days=self.config.reconcile_lookback_days)
        proc = self.commands.run("sacct", [
            "-a", "-n", "-P", "-X", f"--clusters={self.config.cluster}",
            f"--starttime={since:%Y-%m-%dT%H:%M:%S}", "--endtime=now",
            "--format=JobID,Comment"])
        candidates = []
        for line in proc.stdout.splitlines():
            job_id, sep, text = line.partition("|")
            if sep and parse.platform_id(text, prefix) == platform_job_id \
                    and _BACKEND_ID.match(job_id):
                candidates.append(job_id)
        candidates = [c for c in candidates if c not in found]
        if candidates:
            codes = self.exit_codes(candidates)
            for job in self._sacct_json(candidates):
                try:
                    statuses = parse.sacct_status(job, prefix, codes)
                except ValueError:
                    continue
                for status in statuses:
                    if status.platform_job_id == platform_job_id:
                        found.setdefault(status.backend_id, status)
        return [found[k] for k in sorted(found, key=_id_key)]

    # ------------------------------------------------------------ cluster

    def nodes(self) -> list[NodeInfo]:
        return parse.nodes_from_sinfo(self.commands.json("sinfo", []))

    def partitions(self) -> list[PartitionInfo]:
        proc = self.commands.run("scontrol", ["show", "partition", "--oneliner"])
        return parse.partitions_from(parse.parse_oneliner(proc.stdout), self.nodes(),
                                     self._queue())

    def ping(self) -> bool:
        """Whether slurmctld answers."""
        proc = self.commands.run("scontrol", ["ping"], check=False)
        return "UP" in proc.stdout


def _id_key(backend_id: str) -> tuple[int, int]:
    base, _, task = backend_id.partition("_")
    return int(base), int(task or -1)
