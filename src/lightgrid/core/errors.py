"""Domain errors. Each says whether the caller may retry.

The API maps them to HTTP in one place (`lightgrid.api.errors`); the CLI prints them.
"""

from __future__ import annotations


class LightgridError(Exception):
    """Base of every domain error.

    `retryable` tells the caller whether the same request may succeed later
    (a backend that is down) or never will (a request larger than any node).
    """

    retryable = False
    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled with its field (between a center's processes); the default keeps
        # only the positional message.
        return (_rebuild, (type(self), self.message, self.field))

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {"code": self.code, "message": self.message,
                                  "retryable": self.retryable}
        if self.field:
            out["field"] = self.field
        return out


class InvalidRequest(LightgridError):
    """The request is malformed or names something invalid; fix it and resend."""

    code = "invalid_request"


class InfeasibleRequest(InvalidRequest):
    """The request can never be satisfied here (e.g. larger than any node)."""

    code = "infeasible"


class NotFound(LightgridError):
    """The object does not exist, or the caller may not know that it exists."""

    code = "not_found"


class Unauthorized(LightgridError):
    """No valid credentials."""

    code = "unauthorized"


class Forbidden(LightgridError):
    """Valid credentials, but the role does not allow this action."""

    code = "forbidden"


class Conflict(LightgridError):
    """The request conflicts with the current state (e.g. a duplicate name)."""

    code = "conflict"


class IllegalTransition(Conflict):
    """A lifecycle transition that the transition table does not allow."""

    code = "illegal_transition"


class PaymentRequired(LightgridError):
    """Not enough available funds or quota; a top-up or a smaller request helps."""

    code = "payment_required"


class TooLarge(InvalidRequest):
    """An upload or value above a configured limit."""

    code = "too_large"


class BackendUnavailable(LightgridError):
    """The workload manager cannot be reached now; retry later."""

    retryable = True
    code = "backend_unavailable"


class BackendRejected(InvalidRequest):
    """The workload manager refused the request; its reason is in the message."""

    code = "backend_rejected"


def _rebuild(cls: type[LightgridError], message: str, field: str | None) -> LightgridError:
    return cls(message, field=field)
