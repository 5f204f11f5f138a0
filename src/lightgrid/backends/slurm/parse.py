"""Slurm 22.05 output -> lightgrid's statuses, usage records, nodes and partitions.

Pure functions over already-decoded data, so they are tested from captured samples.
What Slurm 22.05 really prints (checked on the testbed):

* ``squeue --json``: ``job_state`` is one string, times are epoch seconds, ``exit_code``
  is the raw wait status (``768`` = exit 3, ``15`` = signal 15), and a pending array
  is one record with ``array_task_string`` (``"2-3%2"``) until tasks split off. Its
  ``--jobs`` filter is ignored: the full queue always comes back.
* ``sacct --json``: ``state.current``, ``time.*`` in epoch seconds, ``comment.job``,
  TRES as lists of ``{type, name, count}``; per-step usage maximums sit under
  ``steps[].tres.requested.max`` (``mem`` in bytes). Its ``exit_code`` is wrong in
  22.05 (``SUCCESS``/0 for a job that exited 3), so exit codes come from
  ``sacct --parsable2`` (`parse_exit_codes`).
* ``sinfo --json`` lists nodes only; ``scontrol`` has no ``--json`` in 22.05, so
  partitions come from ``scontrol show partition --oneliner`` (`parse_oneliner`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lightgrid.backends.base import JobStatus, NodeInfo, PartitionInfo, UsageRecord
from lightgrid.core.jobs import JobState
from lightgrid.core.resources import NodeType, Partition, Tres

_S = JobState

#: Every job state (and state flag shown as a state) of Slurm 22.05.
SLURM_STATES: dict[str, JobState] = {
    "PENDING": _S.PENDING,
    "REQUEUED": _S.PENDING,        # being put back in the queue
    "REQUEUE_HOLD": _S.PENDING,    # requeued and held
    "REQUEUE_FED": _S.PENDING,     # requeued by a federation sibling
    "RESV_DEL_HOLD": _S.PENDING,   # held after its reservation was deleted
    "SPECIAL_EXIT": _S.PENDING,    # requeued in a held state after a special exit
    "RUNNING": _S.RUNNING,
    "CONFIGURING": _S.RUNNING,     # allocated, nodes booting
    "POWER_UP_NODE": _S.RUNNING,   # allocated, nodes powering up
    "COMPLETING": _S.RUNNING,      # ended, epilog still running: not final yet
    "STAGE_OUT": _S.RUNNING,       # ended, burst buffer stage-out running
    "SIGNALING": _S.RUNNING,
    "RESIZING": _S.RUNNING,
    "SUSPENDED": _S.RUNNING,       # still holds its allocation
    "STOPPED": _S.RUNNING,         # SIGSTOP-ed, still holds its allocation
    "UPDATE_DB": _S.RUNNING,       # a database update is pending
    "COMPLETED": _S.COMPLETED,
    "COMPLETE": _S.COMPLETED,
    "FAILED": _S.FAILED,
    "LAUNCH_FAILED": _S.FAILED,
    "RECONFIG_FAIL": _S.FAILED,
    "CANCELLED": _S.CANCELLED,
    "PREEMPTED": _S.CANCELLED,     # preempted and not requeued
    "REVOKED": _S.CANCELLED,       # a federation sibling ran it instead
    "TIMEOUT": _S.TIMEOUT,
    "DEADLINE": _S.TIMEOUT,        # ended at its --deadline
    "NODE_FAIL": _S.NODE_FAIL,
    "BOOT_FAIL": _S.NODE_FAIL,
    "OUT_OF_MEMORY": _S.OUT_OF_MEMORY,
}

#: Reasons a state was reached that are worth keeping next to the mapped state.
STATE_REASONS: dict[str, str] = {
    "REQUEUED": "Requeued", "REQUEUE_HOLD": "JobHeldAdmin", "REQUEUE_FED": "Requeued",
    "RESV_DEL_HOLD": "ReservationDeleted", "SPECIAL_EXIT": "JobHeldUser",
    "CONFIGURING": "Configuring", "POWER_UP_NODE": "PowerUpNode",
    "COMPLETING": "Completing", "STAGE_OUT": "StageOut", "SIGNALING": "Signaling",
    "RESIZING": "Resizing", "SUSPENDED": "Suspended", "STOPPED": "Stopped",
    "PREEMPTED": "Preempted", "REVOKED": "Revoked", "DEADLINE": "Deadline",
    "BOOT_FAIL": "BootFail", "LAUNCH_FAILED": "LaunchFailed",
    "RECONFIG_FAIL": "ReconfigFail",
}

#: Pending reasons, by Slurm's code, with what they mean for the user.
REASONS: dict[str, str] = {
    "None": "no reason",
    "Priority": "other jobs of higher priority are ahead",
    "Resources": "waiting for resources to become free",
    "Dependency": "waiting for a job it depends on",
    "DependencyNeverSatisfied": "a dependency can never be satisfied",
    "BeginTime": "its earliest start time has not come",
    "JobHeldUser": "held by the user",
    "JobHeldAdmin": "held by an administrator",
    "JobArrayTaskLimit": "the array's limit on tasks running at once is reached",
    "PartitionDown": "the partition is down",
    "PartitionInactive": "the partition is inactive",
    "PartitionNodeLimit": "more nodes than the partition allows",
    "PartitionTimeLimit": "longer than the partition allows",
    "PartitionConfig": "asks for more than the partition's nodes have",
    "ReqNodeNotAvail": "a required node is down, drained or reserved",
    "NodeDown": "a node it needs is down",
    "BadConstraints": "its constraints can never be satisfied",
    "InvalidAccount": "its account is invalid",
    "InvalidQOS": "its QOS is invalid",
    "QOSNotAllowed": "its QOS is not allowed for this association",
    "Reservation": "waiting for its reservation",
    "Licenses": "waiting for licenses",
    "Cleaning": "a previous run is still being cleaned up",
    "launch failed requeued held": "launch failed; requeued and held",
    "NonZeroExitCode": "ended with a non-zero exit code",
    "TimeLimit": "reached its time limit",
    "OutOfMemory": "ran out of memory",
    "SystemFailure": "a system failure",
    "FrontEndDown": "no front end node is available",
    "InactiveLimit": "reached the inactivity limit",
    "Prolog": "the prolog is running",
    "Requeued": "requeued",
}

#: Pending reasons that mean the job will not start without a change by someone.
BLOCKED_REASONS = frozenset({
    "DependencyNeverSatisfied", "BadConstraints", "InvalidAccount", "InvalidQOS",
    "QOSNotAllowed", "PartitionNodeLimit", "PartitionTimeLimit", "PartitionConfig",
    "JobHeldUser",
    "JobHeldAdmin", "launch failed requeued held",
})

_LIMIT = re.compile(r"^(Assoc|QOS)(Grp|Max|Min)?(\w*?)(Limit|RunMinutes|Minutes)?$")


def map_state(slurm_state: str) -> JobState:
    """Slurm's state name (``"CANCELLED by 0"`` too) as a `JobState`.

    Raises ValueError for a name Slurm 22.05 does not have.
    """
    key = slurm_state.strip().split()[0].upper() if slurm_state.strip() else ""
    key = key.rstrip("+")
    if key not in SLURM_STATES:
        raise ValueError(f"unknown Slurm job state {slurm_state!r}")
    return SLURM_STATES[key]


def describe_reason(code: str) -> str:
    """A short explanation of a Slurm pending reason (limits included)."""
    if code in REASONS:
        return REASONS[code]
    m = _LIMIT.match(code)
    if m:
        owner = "association" if m.group(1) == "Assoc" else "QOS"
        return f"an {owner} limit is reached ({code})"
    return code


def is_blocked_reason(code: str) -> bool:
    """Whether the job cannot start until someone changes something."""
    if code in BLOCKED_REASONS:
        return True
    # GrpSubmitJobs/GrpJobs of 0 (a block) show as Assoc*Limit; they stay until lifted.
    return bool(_LIMIT.match(code)) and code.startswith(("AssocGrp", "AssocMax"))


def exit_code_from_status(raw: int | None) -> int | None:
    """A raw wait status as an exit code; a signal ``n`` becomes ``128 + n``."""
    if raw is None:
        return None
    signal = raw & 0x7F
    return 128 + signal if signal else (raw >> 8) & 0xFF


def exit_code_from_text(text: str) -> int | None:
    """sacct's ``EXIT:SIGNAL`` as an exit code; a signal ``n`` becomes ``128 + n``."""
    try:
        code_s, _, sig_s = text.partition(":")
        code, sig = int(code_s), int(sig_s or 0)
    except ValueError:
        return None
    return 128 + sig if sig else code


def epoch(value: Any) -> datetime | None:
    """Epoch seconds as an aware UTC datetime; 0 and missing mean unknown."""
    if isinstance(value, dict):
        value = value.get("number") if value.get("set", True) else None
    if not value or not isinstance(value, int | float) or value <= 0:
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def parse_duration(text: str) -> int | None:
    """Slurm's time format (``D-HH:MM:SS``, ``HH:MM:SS``, ``MM:SS``, ``M``) in seconds.

    ``UNLIMITED``/``INFINITE``/``NONE`` give None.
    """
    text = text.strip()
    if not text or text.upper() in ("UNLIMITED", "INFINITE", "NONE", "N/A"):
        return None
    days = 0
    if "-" in text:
        d, _, text = text.partition("-")
        days = int(d)
        parts = [int(p) for p in text.split(":")]
        while len(parts) < 3:
            parts.append(0)  # D-HH, D-HH:MM
    else:
        parts = [int(p) for p in text.split(":")]
        if len(parts) == 1:
            parts = [0, parts[0], 0]  # minutes
        elif len(parts) == 2:
            parts = [0, *parts]  # MM:SS
    h, m, s = parts[:3]
    return ((days * 24 + h) * 60 + m) * 60 + s


def parse_gres(text: str) -> tuple[int, str | None]:
    """GPU count and type from a GRES string like ``gpu:a100:2(S:0-1),gpu:v100:1``."""
    count, gtype = 0, None
    for item in re.split(r",(?![^(]*\))", text or ""):
        item = re.sub(r"\(.*?\)", "", item).strip()
        if not item.startswith("gpu"):
            continue
        fields = item.split(":")
        try:
            n = int(fields[-1]) if len(fields) > 1 else 1
        except ValueError:
            n = 0
        if len(fields) == 3:
            gtype = gtype or fields[1]
        count += n
    return count, gtype


def expand_array_tasks(text: str) -> list[int]:
    """Task indices of an array expression such as ``2-3%2`` or ``1,4-8:2``."""
    text = text.split("%")[0].strip().strip("[]")
    out: list[int] = []
    for part in filter(None, text.split(",")):
        rng, _, step_s = part.partition(":")
        lo_s, _, hi_s = rng.partition("-")
        lo = int(lo_s)
        hi = int(hi_s) if hi_s else lo
        out.extend(range(lo, hi + 1, int(step_s) if step_s else 1))
    return out


def bitmap_tasks(hexmap: str) -> list[int]:
    """Task indices of sacct's pending-array bitmap (``"0xC"`` -> [2, 3])."""
    try:
        bits = int(hexmap, 16)
    except ValueError:
        return []
    return [i for i in range(bits.bit_length()) if bits >> i & 1]


def platform_id(comment: str | None, prefix: str) -> str | None:
    """The platform job id carried in a job comment (its first word), if any."""
    if comment and comment.startswith(prefix):
        words = comment[len(prefix):].split(maxsplit=1)
        return words[0] if words else None
    return None


# ---------------------------------------------------------------- squeue


@dataclass(frozen=True, slots=True)
class QueuedJob:
    """One record of ``squeue --json``, reduced to what lightgrid uses."""

    backend_ids: tuple[str, ...]  # one, or every task of a pending array record
    job_id: int
    status: JobState
    reason: str
    user: str
    account: str
    partition: str
    comment: str
    start_time: datetime | None
    end_time: datetime | None
    exit_code: int | None


def queued_jobs(data: Mapping[str, Any]) -> list[QueuedJob]:
    """Records of ``squeue --json``; unknown states are skipped."""
    out = []
    for job in data.get("jobs") or []:
        try:
            state = map_state(str(job.get("job_state", "")))
        except ValueError:
            continue
        job_id = int(job["job_id"])
        array_job = int(job.get("array_job_id") or 0)
        task = job.get("array_task_id")
        if array_job and task is not None:
            ids: tuple[str, ...] = (f"{array_job}_{task}",)
        elif array_job:
            ids = tuple(f"{array_job}_{i}"
                        for i in expand_array_tasks(job.get("array_task_string") or ""))
        else:
            ids = (str(job_id),)
        raw_state = str(job.get("job_state", ""))
        reason = str(job.get("state_reason") or "None")
        if reason == "None" and raw_state in STATE_REASONS:
            reason = STATE_REASONS[raw_state]
        running_or_done = state is not JobState.PENDING
        out.append(QueuedJob(
            backend_ids=ids, job_id=job_id, status=state, reason=reason,
            user=str(job.get("user_name") or ""), account=str(job.get("account") or ""),
            partition=str(job.get("partition") or ""), comment=str(job.get("comment") or ""),
            start_time=epoch(job.get("start_time")) if running_or_done else None,
            end_time=epoch(job.get("end_time")) if state.is_terminal else None,
            exit_code=exit_code_from_status(job.get("exit_code"))
            if state.is_terminal else None))
    return out


def queue_statuses(jobs: Iterable[QueuedJob], prefix: str) -> dict[str, JobStatus]:
    """`JobStatus` per backend id from `queued_jobs`."""
    out: dict[str, JobStatus] = {}
    for job in jobs:
        for bid in job.backend_ids:
            out[bid] = JobStatus(backend_id=bid, state=job.status, reason=job.reason,
                                 start_time=job.start_time, end_time=job.end_time,
                                 exit_code=job.exit_code,
                                 platform_job_id=platform_id(job.comment, prefix))
    return out


# ---------------------------------------------------------------- sacct


def sacct_backend_ids(job: Mapping[str, Any]) -> list[str]:
    """Backend ids of one ``sacct --json`` record (all tasks of a pending array)."""
    array = job.get("array") or {}
    array_job = int(array.get("job_id") or 0)
    if array_job:
        if array.get("task_id") is not None:
            return [f"{array_job}_{array['task_id']}"]
        return [f"{array_job}_{i}" for i in bitmap_tasks(str(array.get("task") or ""))]
    return [str(job["job_id"])]


def _comment(job: Mapping[str, Any]) -> str | None:
    comment = job.get("comment")
    if isinstance(comment, dict):
        return comment.get("job")
    return comment if isinstance(comment, str) else None


def _tres(items: Iterable[Mapping[str, Any]] | None) -> tuple[Tres, str | None]:
    cpu = mem = gpu = 0
    gtype = None
    for item in items or []:
        count = int(item.get("count") or 0)
        kind, name = item.get("type"), item.get("name")
        if kind == "cpu":
            cpu = count
        elif kind == "mem":
            mem = count
        elif kind == "gres" and name == "gpu":
            gpu = count
        elif kind == "gres" and isinstance(name, str) and name.startswith("gpu:"):
            gtype = name.split(":", 1)[1]
    return Tres(cpu=cpu, mem=mem, gpu=gpu), gtype


def _seconds(value: Any) -> float:
    if isinstance(value, dict):
        return float(value.get("seconds") or 0) + float(value.get("microseconds") or 0) / 1e6
    return float(value or 0)


def sacct_state(job: Mapping[str, Any]) -> JobState:
    state = job.get("state")
    current = state.get("current") if isinstance(state, dict) else state
    return map_state(str(current or ""))


def sacct_status(job: Mapping[str, Any], prefix: str,
                 exit_codes: Mapping[str, int] | None = None) -> list[JobStatus]:
    """`JobStatus` of each backend id in one ``sacct --json`` record."""
    state = sacct_state(job)
    times = job.get("time") or {}
    reason = (job.get("state") or {}).get("reason") or "None"
    out = []
    for bid in sacct_backend_ids(job):
        code = (exit_codes or {}).get(bid) if state.is_terminal else None
        out.append(JobStatus(
            backend_id=bid, state=state, reason=str(reason),
            start_time=epoch(times.get("start")) if state is not JobState.PENDING else None,
            end_time=epoch(times.get("end")) if state.is_terminal else None,
            exit_code=code, platform_job_id=platform_id(_comment(job), prefix)))
    return out


def usage_record(job: Mapping[str, Any], prefix: str,
                 exit_codes: Mapping[str, int] | None = None) -> UsageRecord | None:
    """A `UsageRecord` of one finished ``sacct --json`` record, else None.

    CPU time sums user and system time over the steps; max RSS is the largest
    per-task maximum of any step.
    """
    try:
        state = sacct_state(job)
    except ValueError:
        return None
    ids = sacct_backend_ids(job)
    if not state.is_terminal or len(ids) != 1:
        return None
    bid = ids[0]
    times = job.get("time") or {}
    tres, gtype = _tres((job.get("tres") or {}).get("allocated"))
    cpu_time = 0.0
    max_rss = 0
    for step in job.get("steps") or []:
        st = step.get("time") or {}
        cpu_time += _seconds(st.get("user")) + _seconds(st.get("system"))
        usage = (step.get("tres") or {}).get("requested") or {}
        for item in usage.get("max") or []:
            if item.get("type") == "mem":
                max_rss = max(max_rss, int(item.get("count") or 0))
    if not cpu_time:
        cpu_time = _seconds(times.get("user")) + _seconds(times.get("system"))
    assoc = job.get("association") or {}
    qos = job.get("qos")
    return UsageRecord(
        backend_id=bid, platform_job_id=platform_id(_comment(job), prefix),
        cluster=str(job.get("cluster") or assoc.get("cluster") or ""),
        user=str(job.get("user") or assoc.get("user") or ""),
        account=str(job.get("account") or assoc.get("account") or ""),
        partition=str(job.get("partition") or ""), state=state,
        exit_code=(exit_codes or {}).get(bid),
        submit_time=epoch(times.get("submission")), start_time=epoch(times.get("start")),
        end_time=epoch(times.get("end")), elapsed=int(times.get("elapsed") or 0),
        cpu_time=round(cpu_time, 6), max_rss=max_rss, tres=tres, gpu_type=gtype,
        name=str(job.get("name") or ""), qos=str(qos) if qos else None)


def record_settled(job: Mapping[str, Any], now: float, grace: float,
                   min_age: float = 10.0) -> bool:
    """Whether a finished job's accounting record is complete.

    slurmdbd learns a short job's details a few seconds after its end: until then the
    record may lack its steps (CPU time, max RSS) or carry the placeholder name
    ``allocation``. A record is taken `min_age` seconds after the job ended, once it
    looks complete, or after `grace` seconds in any case.
    """
    times = job.get("time") or {}
    age = now - float(times.get("end") or 0)
    if age < min_age:
        return False
    started = bool(times.get("start"))
    incomplete = started and (not job.get("steps") or job.get("name") == "allocation")
    return not incomplete or age > grace


def parse_exit_codes(text: str) -> dict[str, int]:
    """Exit codes by backend id from ``sacct -n -P -X -o JobID,ExitCode``."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        job_id, sep, code = line.strip().partition("|")
        if not sep:
            continue
        value = exit_code_from_text(code)
        if value is not None and "[" not in job_id:
            out[job_id] = value
    return out


# ---------------------------------------------------------------- nodes, partitions


def nodes_from_sinfo(data: Mapping[str, Any]) -> list[NodeInfo]:
    """`NodeInfo` of each node in ``sinfo --json``."""
    out = []
    for node in data.get("nodes") or []:
        gpus, gtype = parse_gres(str(node.get("gres") or ""))
        used, _ = parse_gres(str(node.get("gres_used") or ""))
        flags = [str(f).lower() for f in node.get("state_flags") or []]
        state = "+".join([str(node.get("state") or "unknown").lower(), *flags])
        out.append(NodeInfo(
            name=str(node["name"]), partitions=tuple(node.get("partitions") or ()),
            state=state, cpus=int(node.get("cpus") or 0),
            mem=int(node.get("real_memory") or 0), gpus=gpus, gpu_type=gtype,
            alloc_cpus=int(node.get("alloc_cpus") or 0),
            alloc_mem=int(node.get("alloc_memory") or 0), alloc_gpus=used))
    return out


def parse_oneliner(text: str) -> list[dict[str, str]]:
    """Records of ``scontrol show ... --oneliner``: one ``Key=Value ...`` line each."""
    out = []
    for line in text.splitlines():
        record: dict[str, str] = {}
        for token in line.split():
            key, sep, value = token.partition("=")
            if sep:
                record[key] = value
        if record:
            out.append(record)
    return out


def partitions_from(records: Iterable[Mapping[str, str]], nodes: Iterable[NodeInfo],
                    jobs: Iterable[QueuedJob] = ()) -> list[PartitionInfo]:
    """`PartitionInfo` from ``scontrol show partition`` records, nodes and the queue."""
    nodes = list(nodes)
    jobs = list(jobs)
    out = []
    for rec in records:
        name = rec.get("PartitionName", "")
        members = [n for n in nodes if name in n.partitions]
        shapes: dict[tuple[int, int, int, str | None], list[NodeInfo]] = {}
        for node in members:
            shapes.setdefault((node.cpus, node.mem, node.gpus, node.gpu_type), []).append(node)
        node_types = tuple(
            NodeType(name=group[0].name if len(group) == 1 else f"{name}-{i}",
                     count=len(group), cores=cpus, mem=mem, gpus=gpus, gpu_type=gtype)
            for i, ((cpus, mem, gpus, gtype), group) in enumerate(sorted(
                shapes.items(), key=lambda kv: kv[0][:3])))
        if not node_types:
            continue
        def_mem = rec.get("DefMemPerCPU", "")
        partition = Partition(
            name=name, node_types=node_types,
            max_time=parse_duration(rec.get("MaxTime", "UNLIMITED")),
            default_time=parse_duration(rec.get("DefaultTime", "NONE"))
            or parse_duration(rec.get("MaxTime", "UNLIMITED")) or 3600,
            default_mem_per_cpu=int(def_mem) if def_mem.isdigit() else None)
        total = Tres(sum(n.cpus for n in members), sum(n.mem for n in members),
                     sum(n.gpus for n in members), len(members))
        allocated = Tres(sum(n.alloc_cpus for n in members),
                         sum(n.alloc_mem for n in members),
                         sum(n.alloc_gpus for n in members),
                         sum(1 for n in members if n.alloc_cpus >= n.cpus > 0))
        in_part = [j for j in jobs if j.partition == name]
        out.append(PartitionInfo(
            partition=partition, state=rec.get("State", "UNKNOWN"), total=total,
            allocated=allocated,
            pending_jobs=sum(len(j.backend_ids) for j in in_part
                             if j.status is JobState.PENDING),
            running_jobs=sum(1 for j in in_part if j.status is JobState.RUNNING)))
    return out


_TEST_ONLY = re.compile(r"to start at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)")


def parse_test_only(text: str) -> datetime | None:
    """The start time in ``sbatch --test-only`` output (printed in UTC by our env)."""
    m = _TEST_ONLY.search(text)
    if not m:
        return None
    return datetime.fromisoformat(m.group(1)).replace(tzinfo=UTC)
