"""/jobs: submit, list, show, cancel, requeue, output."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from lightgrid.api.deps import CenterDep, PrincipalDep
from lightgrid.api.schemas import JobEventOut, JobOut, JobPage, SubmitIn, SubmitOut
from lightgrid.center.files import tail_of
from lightgrid.center.jobs import JobFilter
from lightgrid.core.errors import Conflict, InvalidRequest
from lightgrid.core.jobs import JobState

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post("", status_code=201, response_model=SubmitOut)
async def submit(body: SubmitIn, center: CenterDep, principal: PrincipalDep) -> Response:
    """Submit a batch script (with `#SBATCH` directives) or a JSON spec."""
    spec = body.to_spec()
    # Async on purpose: concurrent submissions are stored together by the intake's
    # worker (group commit), and waiting for it holds no thread.
    rows = await center.intake.submit_async(principal, spec)
    project_names = {pid: name for name, pid in principal.project_names.items()}
    if rows[0].project_id in project_names:
        names = {rows[0].user_id: ("user", principal.username),
                 rows[0].project_id: ("project", project_names[rows[0].project_id])}
    else:
        names = await run_in_threadpool(center.jobs.names, rows[:1])
    outs = [JobOut.of(r, names) for r in rows]
    warnings = [f"line {u.line}: {u.text}" for u in spec.unknown]
    first = outs[0]
    out = SubmitOut(job_number=first.array_job_number or first.number,
                    job_id=str(first.array_job_number or first.number), jobs=outs,
                    warnings=warnings)
    # Serialised here, once: the model is already valid, and FastAPI would validate
    # it again against `response_model` (which still documents the answer).
    return Response(out.model_dump_json(), status_code=201, media_type="application/json")


@router.get("", response_model=JobPage)
def list_jobs(
    center: CenterDep, principal: PrincipalDep,
    state: Annotated[list[str] | None, Query(description="repeat or comma-separate")] = None,
    user: str | None = None, project: str | None = None, partition: str | None = None,
    submitted_after: datetime | None = None, submitted_before: datetime | None = None,
    array_job: int | None = None,
    cursor: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> JobPage:
    """Jobs visible to the caller, oldest first, one page at a time."""
    states = tuple(s.strip().upper() for item in (state or []) for s in item.split(",")
                   if s.strip())
    after = None
    if cursor:
        if not cursor.isdigit():
            raise InvalidRequest("cursor is not valid", field="cursor")
        after = int(cursor)
    flt = JobFilter(states=states, user=user, project=project, partition=partition,
                    submitted_after=submitted_after, submitted_before=submitted_before,
                    array_job=array_job)
    rows = center.jobs.list_jobs(principal, flt, after=after, limit=limit + 1)
    more = len(rows) > limit
    rows = rows[:limit]
    names = center.jobs.names(rows)
    return JobPage(items=[JobOut.of(r, names) for r in rows],
                   next_cursor=str(rows[-1].number) if more and rows else None)


@router.get("/{ref}", response_model=list[JobOut])
def show(ref: str, center: CenterDep, principal: PrincipalDep) -> list[JobOut]:
    """A job, or every task of an array job."""
    rows = center.jobs.get(principal, ref)
    names = center.jobs.names(rows)
    return [JobOut.of(r, names) for r in rows]


@router.get("/{ref}/events", response_model=list[JobEventOut])
def events(ref: str, center: CenterDep, principal: PrincipalDep) -> list[JobEventOut]:
    return [JobEventOut(job_id=e.job_id, at=e.at, from_state=e.from_state,
                        to_state=e.to_state, reason=e.reason)
            for e in center.jobs.events(principal, ref)]


@router.post("/{ref}/cancel", response_model=list[JobOut])
def cancel(ref: str, center: CenterDep, principal: PrincipalDep) -> list[JobOut]:
    rows = center.jobs.get(principal, ref)
    live = center.jobs.check_cancellable(rows)
    center.dispatcher.cancel(live)
    rows = center.jobs.get(principal, ref)
    names = center.jobs.names(rows)
    return [JobOut.of(r, names) for r in rows]


@router.post("/{ref}/requeue", response_model=list[JobOut])
def requeue(ref: str, center: CenterDep, principal: PrincipalDep) -> list[JobOut]:
    rows = center.jobs.get(principal, ref)
    movable = [r for r in rows if r.state != JobState.PENDING.value and r.backend_id]
    if not movable:
        raise Conflict(f"job {ref} is pending: nothing to requeue", field="job")
    center.dispatcher.requeue(movable)
    rows = center.jobs.get(principal, ref)
    names = center.jobs.names(rows)
    return [JobOut.of(r, names) for r in rows]


@router.get("/{ref}/output")
async def output(ref: str, center: CenterDep, principal: PrincipalDep,
                 stream: Annotated[str, Query(pattern="^(stdout|stderr)$")] = "stdout",
                 offset: Annotated[int, Query(ge=0)] = 0,
                 tail: Annotated[int | None, Query(ge=1, le=100_000)] = None) -> Response:
    """A job's output from byte `offset` (or its last `tail` lines), streamed.

    Headers: `X-Job-State` (the job's state now) and `X-Next-Offset` (where the next
    request should continue, for following a running job).
    """
    rows = await run_in_threadpool(center.jobs.get, principal, ref)
    if len(rows) != 1:
        raise InvalidRequest(f"job {ref} is an array of {len(rows)} tasks: name one task "
                             f"as {rows[0].array_job_number}_INDEX", field="job")
    job = rows[0]
    path = Path(job.stdout_path if stream == "stdout" else job.stderr_path)
    headers = {"X-Job-State": job.state, "X-Job-Id": job.id}
    size = path.stat().st_size if path.exists() else 0
    if not path.exists():  # not started yet, or wrote nothing
        headers["X-Next-Offset"] = "0"
        return Response(b"", media_type="application/octet-stream", headers=headers)
    if tail is not None:
        data = await run_in_threadpool(_tail, path, tail)
        headers["X-Next-Offset"] = str(size)
        return Response(data, media_type="application/octet-stream", headers=headers)
    if offset > size:
        raise InvalidRequest(f"offset {offset} is past the end ({size} bytes)",
                             field="offset")
    headers["X-Next-Offset"] = str(size)
    return StreamingResponse(_read_range(path, offset, size),
                             media_type="application/octet-stream", headers=headers)


def _read_range(path: Path, start: int, end: int,
                chunk: int = 65536) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        fh.seek(start)
        left = end - start
        while left > 0:
            data = fh.read(min(chunk, left))
            if not data:
                break
            left -= len(data)
            yield data


def _tail(path: Path, lines: int) -> bytes:
    with open(path, "rb", buffering=0) as handle:
        return tail_of(handle, lines)
