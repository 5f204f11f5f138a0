"""Request dependencies: the center and the authenticated principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from lightgrid.center.access import Principal
from lightgrid.center.service import Center

_bearer = HTTPBearer(auto_error=False)


async def get_center(request: Request) -> Center:
    # Async although it awaits nothing: FastAPI runs plain `def` dependencies in a
    # worker thread, a hop this one does not need.
    center: Center = request.app.state.center
    return center


async def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    center: Center = request.app.state.center
    token = credentials.credentials if credentials else None
    # A recently seen token needs no database: skip the worker-thread hop.
    principal = center.auth.cached(token)
    if principal is None:
        principal = await run_in_threadpool(center.auth.authenticate, token)
    return principal


CenterDep = Annotated[Center, Depends(get_center)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
