"""/files: a home per user and a workspace per project.

`GET` lists a directory or streams a file, `PUT` uploads a request body streaming
(never held in memory, limited in size), `DELETE` removes, `POST ...?mkdir=1` makes a
directory. Every path stays inside its workspace.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from lightgrid.api.deps import CenterDep, PrincipalDep
from lightgrid.api.schemas import FileEntryOut
from lightgrid.center.access import Principal
from lightgrid.center.files import Workspace
from lightgrid.center.service import Center
from lightgrid.core.errors import Forbidden, NotFound

router = APIRouter(prefix="/files", tags=["files"])


def _workspace(center: Center, principal: Principal, space: str, *,
               write: bool) -> Workspace:
    """`home` (the caller's home) or `project:NAME` (a project workspace)."""
    if space == "home":
        return center.home(principal.username)
    kind, _, name = space.partition(":")
    if kind == "project" and name:
        pid = principal.project_names.get(name)
        if pid is None and not principal.is_operator:
            with center.factory() as session:
                from lightgrid.center.tenancy import get_project

                try:
                    project = get_project(session, name)
                except NotFound:
                    raise NotFound(f"project {name!r} not found", field="space") from None
                if not principal.can_see_project(project.id, project.org_id):
                    raise NotFound(f"project {name!r} not found", field="space")
                if write:
                    raise Forbidden("only project members can change its files")
        return center.project_workspace(name)
    raise NotFound(f"no file space {space!r} (use 'home' or 'project:NAME')", field="space")


async def _next(stream: AsyncIterator[bytes]) -> bytes:
    return await stream.__anext__()


def _entry(entry: object) -> FileEntryOut:
    return FileEntryOut(name=entry.name, type=entry.type, size=entry.size,  # type: ignore[attr-defined]
                        mtime=entry.mtime)  # type: ignore[attr-defined]


@router.get("/{space}", response_model=list[FileEntryOut])
def list_root(space: str, center: CenterDep, principal: PrincipalDep) -> list[FileEntryOut]:
    workspace = _workspace(center, principal, space, write=False)
    return [_entry(e) for e in workspace.list("")]


@router.get("/{space}/{path:path}")
def get_path(space: str, path: str, center: CenterDep, principal: PrincipalDep,
             offset: Annotated[int, Query(ge=0)] = 0) -> Response:
    """A directory's listing (JSON) or a file's bytes (streamed)."""
    workspace = _workspace(center, principal, space, write=False)
    entry = workspace.stat(path)
    if entry.type == "dir":
        return Response(
            content="[" + ",".join(_entry(e).model_dump_json()
                                   for e in workspace.list(path)) + "]",
            media_type="application/json")
    chunks: Iterator[bytes] = workspace.open_read(path, offset)
    return StreamingResponse(chunks, media_type="application/octet-stream")


@router.put("/{space}/{path:path}", response_model=FileEntryOut, status_code=201)
async def put_path(space: str, path: str, request: Request, center: CenterDep,
                   principal: PrincipalDep) -> FileEntryOut:
    """Upload the request body to `path`, streaming, replacing any old file."""
    workspace = await run_in_threadpool(_workspace, center, principal, space, write=True)
    stream: AsyncIterator[bytes] = request.stream()

    def chunks() -> Iterator[bytes]:
        # Runs in a worker thread; each chunk is pulled from the event loop.
        while True:
            try:
                chunk: bytes = anyio.from_thread.run(_next, stream)
            except StopAsyncIteration:
                return
            if chunk:
                yield chunk

    await anyio.to_thread.run_sync(lambda: workspace.write_stream(path, chunks()))
    return _entry(await run_in_threadpool(workspace.stat, path))


@router.post("/{space}/{path:path}", response_model=FileEntryOut, status_code=201)
def mkdir(space: str, path: str, center: CenterDep, principal: PrincipalDep) -> FileEntryOut:
    """Make a directory (and its parents)."""
    workspace = _workspace(center, principal, space, write=True)
    workspace.mkdir(path)
    return _entry(workspace.stat(path))


@router.delete("/{space}/{path:path}", status_code=204)
def delete_path(space: str, path: str, center: CenterDep, principal: PrincipalDep,
                recursive: bool = False) -> None:
    workspace = _workspace(center, principal, space, write=True)
    workspace.delete(path, recursive=recursive)
