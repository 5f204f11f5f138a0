"""Domain errors to HTTP, in one place."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lightgrid.core import errors as e

STATUS: list[tuple[type[e.LightgridError], int]] = [
    (e.TooLarge, 413),
    (e.IllegalTransition, 409),
    (e.InvalidRequest, 400),
    (e.NotFound, 404),
    (e.Unauthorized, 401),
    (e.Forbidden, 403),
    (e.Conflict, 409),
    (e.PaymentRequired, 402),
    (e.BackendUnavailable, 503),
]


def status_for(exc: e.LightgridError) -> int:
    for cls, status in STATUS:
        if isinstance(exc, cls):
            return status
    return 500


def install(app: FastAPI) -> None:
    @app.exception_handler(e.LightgridError)
    async def _domain(_request: Request, exc: e.LightgridError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, e.Unauthorized) else None
        if isinstance(exc, e.BackendUnavailable):
            headers = {"Retry-After": "30"}
        return JSONResponse({"error": exc.to_dict()}, status_code=status_for(exc),
                            headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
        field = ".".join(loc)
        message = f"{field}: {first.get('msg')}" if field else str(first.get("msg"))
        return JSONResponse({"error": {"code": "invalid_request", "message": message,
                                       "field": field, "retryable": False,
                                       "details": [{"loc": list(err.get("loc", ())),
                                                    "msg": err.get("msg")}
                                                   for err in exc.errors()]}},
                            status_code=422)
