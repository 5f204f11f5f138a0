"""`EmbeddedBackend`: a virtual cluster on the local machine.

Each partition is a `ClusterState` driven by the same policy code as the simulator
(`lightgrid.core.scheduling`); a job that the policy starts runs as a detached runner
process (`runner.py`) in its own working directory. A submission is appended to a
journal (`state_dir/submitted.jsonl`, one line per job, one write per submission);
the job gets its directory under `state_dir/jobs/` (`records.py`) when it starts, ends
or changes, and the journal is emptied whenever no job lives only there. A restart
gives every journalled job its directory, then re-queues pending jobs, adopts runners
still alive, and marks jobs whose runner vanished NODE_FAIL: none is silently lost.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lightgrid.backends.base import (
    Backend,
    JobStatus,
    NodeInfo,
    PartitionInfo,
    SubmitRequest,
    SubmitResult,
    UsageRecord,
)
from lightgrid.backends.embedded.records import (
    JOB_FILE,
    RUNNER_FILE,
    SCRIPT_FILE,
    STATUS_FILE,
    JobRecord,
    read_json,
    write_json_atomic,
)
from lightgrid.core.errors import BackendRejected
from lightgrid.core.jobs import DependencyKind, JobState, expand_output_pattern
from lightgrid.core.resources import Partition, Tres
from lightgrid.core.scheduling import ClusterState, SchedJob, estimate_start, policy_by_name

#: Submissions not yet given a job directory, one JSON line per job.
JOURNAL_FILE = "submitted.jsonl"


class EmbeddedConfig(BaseModel):
    """Settings of the embedded backend."""

    model_config = ConfigDict(extra="forbid")
    state_dir: Path
    policy: str = "easy"
    kill_grace: float = Field(default=10.0, ge=0)
    tick: float = Field(default=0.2, gt=0)
    cluster_name: str = "embedded"


@dataclass(slots=True)
class _Job:
    record: JobRecord
    directory: Path
    sched: SchedJob
    state: JobState = JobState.PENDING
    reason: str = "Priority"
    queued: bool = False  # in the partition's ClusterState queue (eligible)
    start_time: float | None = None
    end_time: float | None = None
    exit_code: int | None = None
    cpu_time: float = 0.0
    max_rss: int = 0
    process: subprocess.Popen[bytes] | None = None
    runner_pid: int | None = None
    runner_ctime: float | None = None
    dependents: list[str] = field(default_factory=list)
    requeue_requested: bool = False
    #: Set while the job lives only in the journal (no directory yet): its script.
    journalled_script: str | None = None


def _dt(ts: float | None) -> datetime | None:
    return datetime.fromtimestamp(ts, UTC) if ts is not None else None


class EmbeddedBackend(Backend):
    """Runs jobs as local processes on a configured virtual cluster."""

    kind = "embedded"

    def __init__(self, config: EmbeddedConfig, partitions: dict[str, Partition],
                 *, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._partition_map = dict(partitions)
        self._clock = clock
        self._policy = policy_by_name(config.policy)
        self._clusters = {name: ClusterState(p.capacity, Tres())
                          for name, p in partitions.items()}
        self._jobs: dict[str, _Job] = {}
        # Jobs not yet known to be finished: the scheduler round only walks these.
        self._active: dict[str, _Job] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._jobs_dir = config.state_dir.resolve() / "jobs"
        self._jobs_dir.mkdir(parents=True, exist_ok=True)
        self._journal_path = config.state_dir.resolve() / JOURNAL_FILE
        self._journalled = 0  # jobs that live only in the journal
        self._recover()
        self._journal = open(self._journal_path, "a")  # noqa: SIM115 - lives with self

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="embedded-scheduler",
                                            daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop scheduling; runners keep running and are adopted on the next start."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.config.tick)
            self._wake.clear()
            try:
                self.step()
            except Exception:  # pragma: no cover - keep the scheduler alive
                import logging

                logging.getLogger(__name__).exception("embedded scheduler step failed")

    # -- the interface ---------------------------------------------------------

    def submit(self, request: SubmitRequest) -> SubmitResult:
        partition = self._partition_map.get(request.partition)
        if partition is None:
            raise BackendRejected(f"invalid partition name specified: {request.partition!r}",
                                  field="partition")
        tasks: list[tuple[int | None, str, int]]
        if request.array is not None:
            if len(request.task_numbers) != len(request.array.indices):
                raise BackendRejected("array task numbers do not match the indices")
            tasks = list(zip(request.array.indices, request.task_job_ids,
                             request.task_numbers, strict=True))
        else:
            tasks = [(None, request.job_id, request.job_number)]
        deps = [(d.kind.value, list(d.backend_ids)) for d in request.dependencies]
        with self._lock:
            for _, _, number in tasks:
                if str(number) in self._jobs:
                    raise BackendRejected(f"job {number} was already submitted")
            for _kind, ids in deps:
                for dep in ids:
                    if dep not in self._jobs:
                        raise BackendRejected(f"dependency on unknown job {dep}",
                                              field="dependency")
            now = self._clock()
            group = str(request.job_number) if request.array is not None else None
            result: dict[int, str] = {}
            lines = []
            for index, platform_id, number in tasks:
                backend_id = str(number)
                stdout, stderr = (expand_output_pattern(
                    pattern, job_number=number, array_task=index,
                    array_job=request.job_number if index is not None else None,
                    user=request.user, name=request.name)
                    for pattern in (request.stdout, request.stderr))
                record = JobRecord(
                    backend_id=backend_id, platform_job_id=platform_id, name=request.name,
                    user=request.user, account=request.account, partition=request.partition,
                    tres=request.allocation.tres.as_dict(), nodes=request.allocation.nodes,
                    gpu_type=request.allocation.gpu_type, time_limit=request.time_limit,
                    workdir=request.workdir, stdout=stdout, stderr=stderr,
                    submit_time=now, environment=dict(request.environment),
                    dependencies=deps, array_group=group, array_task=index,
                    array_max_running=request.array.max_running if request.array else None,
                    kill_grace=self.config.kill_grace)
                lines.append(json.dumps({**record.to_json(), "script": request.script}))
                job = self._add(record, self._jobs_dir / backend_id)
                job.journalled_script = request.script
                if index is not None:
                    result[index] = backend_id
            # One append for the whole submission: no directory or file per job until
            # the job starts (the platform's database is the durable copy, and
            # reconciliation after a crash resubmits what the backend lost).
            self._journal.write("\n".join(lines) + "\n")
            self._journal.flush()
            self._journalled += len(tasks)
            self._wake.set()
        first = str(tasks[0][2])
        return SubmitResult(backend_id=first, task_backend_ids=result)

    def cancel(self, backend_id: str) -> None:
        with self._lock:
            job = self._jobs.get(backend_id)
            if job is None or job.state.is_terminal:
                return
            job.record.cancelled = True
            self._rewrite_record(job)
            if job.state is JobState.PENDING:
                if job.queued:
                    self._clusters[job.record.partition].remove(job.sched)
                    job.queued = False
                self._finish(job, JobState.CANCELLED, "cancelled", None, self._clock())
            elif job.runner_pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(job.runner_pid, signal.SIGTERM)
            self._wake.set()

    def requeue(self, backend_id: str) -> None:
        """Send a running or finished job back to the queue (like `scontrol requeue`)."""
        with self._lock:
            job = self._jobs.get(backend_id)
            if job is None:
                raise BackendRejected(f"invalid job id specified: {backend_id}")
            if job.state is JobState.PENDING:
                raise BackendRejected(f"job {backend_id} is pending execution")
            if job.state is JobState.RUNNING:
                job.requeue_requested = True
                if job.runner_pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(job.runner_pid, signal.SIGTERM)
            else:
                self._reset_to_pending(job)
            self._wake.set()

    def _materialize(self, job: _Job) -> None:
        """Give a job that lives only in the journal its directory and `job.json`."""
        if job.journalled_script is None:
            return
        job.directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(job.directory / JOB_FILE,
                          {**job.record.to_json(), "script": job.journalled_script},
                          durable=False)
        job.journalled_script = None
        self._journalled -= 1
        if self._journalled == 0:
            # Every journalled job has its directory now: start the journal afresh.
            os.ftruncate(self._journal.fileno(), 0)

    def _rewrite_record(self, job: _Job) -> None:
        """Save a changed record, keeping the script of a job that has not started."""
        self._materialize(job)
        data = job.record.to_json()
        if not (job.directory / SCRIPT_FILE).exists():
            old = read_json(job.directory / JOB_FILE) or {}
            if "script" in old:
                data["script"] = old["script"]
        write_json_atomic(job.directory / JOB_FILE, data)

    def _reset_to_pending(self, job: _Job) -> None:
        for name in (STATUS_FILE, RUNNER_FILE):
            with contextlib.suppress(FileNotFoundError):
                (job.directory / name).unlink()
        job.record.cancelled = False
        self._rewrite_record(job)
        job.state, job.reason = JobState.PENDING, "BeginTime"
        job.start_time = job.end_time = job.exit_code = None
        job.sched.start = None
        job.process, job.runner_pid, job.runner_ctime = None, None, None
        job.requeue_requested = False
        self._active[job.record.backend_id] = job

    def poll(self, backend_ids: Iterable[str]) -> dict[str, JobStatus]:
        out: dict[str, JobStatus] = {}
        with self._lock:
            for bid in backend_ids:
                job = self._jobs.get(bid)
                if job is not None:
                    out[bid] = JobStatus(
                        backend_id=bid, state=job.state, reason=job.reason,
                        start_time=_dt(job.start_time), end_time=_dt(job.end_time),
                        exit_code=job.exit_code, platform_job_id=job.record.platform_job_id)
        return out

    def usage(self, backend_ids: Iterable[str]) -> dict[str, UsageRecord]:
        out: dict[str, UsageRecord] = {}
        with self._lock:
            for bid in backend_ids:
                job = self._jobs.get(bid)
                if job is None or not job.state.is_terminal:
                    continue
                r = job.record
                elapsed = 0
                if job.start_time is not None and job.end_time is not None:
                    elapsed = max(0, round(job.end_time - job.start_time))
                out[bid] = UsageRecord(
                    backend_id=bid, platform_job_id=r.platform_job_id,
                    cluster=self.config.cluster_name, user=r.user, account=r.account,
                    partition=r.partition, state=job.state, exit_code=job.exit_code,
                    submit_time=_dt(r.submit_time), start_time=_dt(job.start_time),
                    end_time=_dt(job.end_time), elapsed=elapsed, cpu_time=job.cpu_time,
                    max_rss=job.max_rss,
                    tres=Tres(**r.tres) if job.start_time is not None else Tres(),
                    gpu_type=r.gpu_type, name=r.name)
        return out

    def partitions(self) -> list[PartitionInfo]:
        with self._lock:
            out = []
            for name, part in self._partition_map.items():
                cluster = self._clusters[name]
                jobs = [j for j in self._active.values() if j.record.partition == name]
                out.append(PartitionInfo(
                    partition=part, state="UP", total=part.capacity,
                    allocated=part.capacity - cluster.free,
                    pending_jobs=sum(1 for j in jobs if j.state is JobState.PENDING),
                    running_jobs=sum(1 for j in jobs if j.state is JobState.RUNNING)))
            return out

    def nodes(self) -> list[NodeInfo]:
        with self._lock:
            out = []
            for name, part in self._partition_map.items():
                allocated = part.capacity - self._clusters[name].free
                for nt in part.node_types:
                    for i in range(nt.count):
                        out.append(NodeInfo(
                            name=f"{name}-{nt.name}-{i + 1:03d}", partitions=(name,),
                            state="MIXED" if allocated.cpu else "IDLE", cpus=nt.cores,
                            mem=nt.mem, gpus=nt.gpus, gpu_type=nt.gpu_type))
            return out

    def estimate_start(self, request: SubmitRequest) -> datetime | None:
        with self._lock:
            cluster = self._clusters.get(request.partition)
            if cluster is None:
                raise BackendRejected(f"invalid partition name specified: "
                                      f"{request.partition!r}", field="partition")
            now = self._clock()
            when = estimate_start(cluster, request.allocation.tres, request.time_limit, now)
        return _dt(float(when))

    def find_by_platform_id(self, platform_job_id: str) -> list[JobStatus]:
        with self._lock:
            ids = [bid for bid, j in self._jobs.items()
                   if j.record.platform_job_id == platform_job_id]
        return list(self.poll(ids).values())

    # -- internals ---------------------------------------------------------------

    def _add(self, record: JobRecord, job_dir: Path) -> _Job:
        # Backend ids are job numbers: an int key keeps (submit, key) ties in number order.
        sched = SchedJob(key=int(record.backend_id), submit=record.submit_time,
                         request=Tres(**record.tres), estimate=record.time_limit)
        job = _Job(record=record, directory=job_dir, sched=sched)
        self._jobs[record.backend_id] = job
        self._active[record.backend_id] = job
        for _, ids in record.dependencies:
            for dep in ids:
                parent = self._jobs.get(dep)
                if parent is not None:
                    parent.dependents.append(record.backend_id)
        return job

    def _recover_journal(self) -> None:
        """Give every job the journal holds (and no directory does) its directory."""
        try:
            lines = self._journal_path.read_text().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue  # torn by a crash mid-write: never acknowledged, resubmitted
            job_dir = self._jobs_dir / str(data["backend_id"])
            if not (job_dir / JOB_FILE).exists():
                job_dir.mkdir(parents=True, exist_ok=True)
                write_json_atomic(job_dir / JOB_FILE, data, durable=False)
        self._journal_path.write_text("")

    def _recover(self) -> None:
        """Rebuild state from the journal and the job directories (a restart)."""
        self._recover_journal()
        entries = []
        for job_dir in self._jobs_dir.iterdir():
            data = read_json(job_dir / JOB_FILE)
            if data is None:
                continue
            entries.append((JobRecord.from_json(data), job_dir))
        entries.sort(key=lambda e: (e[0].submit_time, int(e[0].backend_id)
                                    if e[0].backend_id.isdigit() else 0))
        now = self._clock()
        for record, job_dir in entries:
            if record.partition not in self._partition_map:
                continue
            job = self._add(record, job_dir)
            status = read_json(job_dir / STATUS_FILE)
            runner = read_json(job_dir / RUNNER_FILE)
            if status is not None:
                self._apply_status(job, status)
            elif runner is not None:
                if _alive(runner["pid"], runner.get("ctime")):
                    job.state = JobState.RUNNING
                    job.reason = "None"
                    job.start_time = runner["start"]
                    job.runner_pid = runner["pid"]
                    job.runner_ctime = runner.get("ctime")
                    self._clusters[record.partition].start(job.sched, runner["start"])
                else:
                    job.start_time = runner["start"]
                    self._finish(job, JobState.NODE_FAIL, "runner vanished while the "
                                 "service was down", None, now, persist=True)
            elif record.cancelled:
                self._finish(job, JobState.CANCELLED, "cancelled", None, now, persist=True)

    def _apply_status(self, job: _Job, status: dict[str, object]) -> None:
        job.state = JobState(str(status["state"]))
        job.reason = str(status.get("reason") or "None")
        job.exit_code = status.get("exit_code")  # type: ignore[assignment]
        job.start_time = float(status["start_time"])  # type: ignore[arg-type]
        job.end_time = float(status["end_time"])  # type: ignore[arg-type]
        job.cpu_time = float(status.get("cpu_time") or 0.0)  # type: ignore[arg-type]
        job.max_rss = int(status.get("max_rss") or 0)  # type: ignore[call-overload]

    def _finish(self, job: _Job, state: JobState, reason: str, exit_code: int | None,
                now: float, *, persist: bool = True) -> None:
        job.state = state
        job.reason = reason
        job.exit_code = exit_code
        job.end_time = now
        if persist:
            self._materialize(job)
            write_json_atomic(job.directory / STATUS_FILE, {
                "state": state.value, "exit_code": exit_code,
                "start_time": job.start_time if job.start_time is not None else now,
                "end_time": now, "cpu_time": job.cpu_time, "max_rss": job.max_rss,
                "reason": reason})

    def step(self) -> None:
        """One scheduler round: reap runners, release dependents, run the policy."""
        with self._lock:
            now = self._clock()
            self._reap(now)
            self._update_eligibility(now)
            for cluster in self._clusters.values():
                started = self._policy.schedule(cluster, now)
                for sched in started:
                    self._launch(self._jobs[str(sched.key)], now)
                for sched in cluster.queue:
                    job = self._jobs[str(sched.key)]
                    job.reason = "Resources" if sched is cluster.queue[0] else "Priority"
            self._active = {bid: j for bid, j in self._active.items()
                            if not j.state.is_terminal}

    def _reap(self, now: float) -> None:
        for job in self._active.values():
            if job.state is not JobState.RUNNING:
                continue
            if job.process is not None and job.process.poll() is None:
                continue
            status = read_json(job.directory / STATUS_FILE)
            if status is None:
                if job.process is None and job.runner_pid is not None and _alive(
                        job.runner_pid, job.runner_ctime):
                    continue
                # The runner died without a word (killed, crashed): the node failed.
                self._clusters[job.record.partition].finish(job.sched, now)
                self._finish(job, JobState.NODE_FAIL, "runner exited without a status",
                             None, now)
                continue
            self._clusters[job.record.partition].finish(job.sched, now)
            if job.requeue_requested:
                self._reset_to_pending(job)
                continue
            self._apply_status(job, status)
            job.process = None

    def _dependency_verdict(self, job: _Job) -> bool | None:
        """True: satisfied; False: can never be satisfied; None: wait."""
        for kind, ids in job.record.dependencies:
            for dep_id in ids:
                dep = self._jobs.get(dep_id)
                if dep is None:
                    return False
                if kind == DependencyKind.AFTER.value:
                    if dep.state is JobState.PENDING:
                        return None
                    continue
                if not dep.state.is_terminal:
                    return None
                ok = dep.state is JobState.COMPLETED
                if kind == DependencyKind.AFTEROK.value and not ok:
                    return False
                if kind == DependencyKind.AFTERNOTOK.value and ok:
                    return False
        return True

    def _update_eligibility(self, now: float) -> None:
        running_in_group: dict[str, int] = {}
        for job in self._active.values():
            group = job.record.array_group
            if group is not None and (job.state is JobState.RUNNING or job.queued):
                running_in_group[group] = running_in_group.get(group, 0) + 1
        for job in list(self._active.values()):
            if job.state is not JobState.PENDING or job.queued:
                continue
            verdict = self._dependency_verdict(job)
            if verdict is None:
                job.reason = "Dependency"
                continue
            if verdict is False:
                # Like Slurm with kill_invalid_depend: never leave it pending forever.
                self._finish(job, JobState.CANCELLED, "DependencyNeverSatisfied", None, now)
                continue
            group = job.record.array_group
            limit = job.record.array_max_running
            if group is not None and limit is not None:
                if running_in_group.get(group, 0) >= limit:
                    job.reason = "JobArrayTaskLimit"
                    continue
                running_in_group[group] = running_in_group.get(group, 0) + 1
            self._clusters[job.record.partition].add(job.sched)
            job.queued = True

    def _launch(self, job: _Job, now: float) -> None:
        job.queued = False
        job.state = JobState.RUNNING
        job.reason = "None"
        job.start_time = now
        record = job.record
        Path(record.workdir).mkdir(parents=True, exist_ok=True)
        self._materialize(job)
        stored = read_json(job.directory / JOB_FILE) or {}
        script_path = job.directory / SCRIPT_FILE
        if "script" in stored:
            script_path.write_text(stored["script"])
            script_path.chmod(0o755)
        env = self._job_environment(record)
        record.environment = env
        write_json_atomic(job.directory / JOB_FILE, record.to_json())
        with open(job.directory / "runner.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "lightgrid.backends.embedded.runner",
                 str(job.directory)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                close_fds=True)
        job.process = proc
        job.runner_pid = proc.pid
        job.runner_ctime = _create_time(proc.pid)
        write_json_atomic(job.directory / RUNNER_FILE, {
            "pid": proc.pid, "ctime": job.runner_ctime, "start": now})

    def _job_environment(self, record: JobRecord) -> dict[str, str]:
        base = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
                "LANG": os.environ.get("LANG", "C.UTF-8"), "HOME": record.workdir,
                "USER": record.user, "LOGNAME": record.user}
        env = {**base, **record.environment}
        tres = record.tres
        env.update({
            "SLURM_JOB_ID": record.backend_id, "SLURM_JOBID": record.backend_id,
            "SLURM_JOB_NAME": record.name, "SLURM_JOB_ACCOUNT": record.account,
            "SLURM_JOB_PARTITION": record.partition, "SLURM_JOB_USER": record.user,
            "SLURM_JOB_NUM_NODES": str(record.nodes), "SLURM_NNODES": str(record.nodes),
            "SLURM_CPUS_ON_NODE": str(max(1, tres["cpu"] // max(record.nodes, 1))),
            "SLURM_MEM_PER_NODE": str(tres["mem"] // max(record.nodes, 1)),
            "SLURM_SUBMIT_DIR": record.workdir, "SLURM_CLUSTER_NAME": self.config.cluster_name,
            "LIGHTGRID_JOB_ID": record.platform_job_id,
        })
        if tres.get("gpu"):
            env["SLURM_GPUS_ON_NODE"] = str(tres["gpu"] // max(record.nodes, 1))
        if record.array_group is not None and record.array_task is not None:
            env["SLURM_ARRAY_JOB_ID"] = record.array_group
            env["SLURM_ARRAY_TASK_ID"] = str(record.array_task)
        return env

    def purge(self, older_than: float) -> int:
        """Delete records of jobs that ended before `older_than` (epoch seconds)."""
        removed = 0
        with self._lock:
            for bid, job in list(self._jobs.items()):
                if job.state.is_terminal and (job.end_time or 0) < older_than:
                    shutil.rmtree(job.directory, ignore_errors=True)
                    del self._jobs[bid]
                    removed += 1
        return removed


def _create_time(pid: int) -> float | None:
    try:
        import psutil

        return float(psutil.Process(pid).create_time())
    except Exception:
        return None


def _alive(pid: int, ctime: float | None) -> bool:
    """Whether `pid` is still the runner we started (not a recycled pid)."""
    try:
        import psutil

        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return ctime is None or abs(proc.create_time() - ctime) < 1.0
    except Exception:
        return False
