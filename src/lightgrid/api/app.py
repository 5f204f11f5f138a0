"""The FastAPI application of one center."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

import lightgrid
from lightgrid.api import errors
from lightgrid.api.routes import auth, billing, files, jobs, system, tenancy
from lightgrid.center.service import Center

API_PREFIX = "/api/v1"


def create_app(center: Center, *, manage_lifecycle: bool = True) -> FastAPI:
    """The API for `center`; with `manage_lifecycle` the app starts and stops it."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if manage_lifecycle:
            center.start()
        try:
            yield
        finally:
            if manage_lifecycle:
                center.stop()

    app = FastAPI(title="lightgrid", version=lightgrid.__version__,
                  description=f"Center {center.settings.center_name}",
                  openapi_url=f"{API_PREFIX}/openapi.json", docs_url=f"{API_PREFIX}/docs",
                  redoc_url=None, lifespan=lifespan)
    app.state.center = center
    errors.install(app)
    for module in (auth, jobs, tenancy, files, system, billing):
        app.include_router(module.router, prefix=API_PREFIX)
    return app
