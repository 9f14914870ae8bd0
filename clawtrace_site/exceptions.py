"""Domain errors. Services raise these; the API exception handler and the HTML views turn them
into a 4xx with the message, so a rule broken by the user never becomes a 500."""

from typing import Any


class ApplicationError(Exception):
    code = "invalid_request"
    status_code = 400

    def __init__(
        self, message: str, *, code: str | None = None, extra: dict[str, Any] | None = None
    ):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.extra = extra or {}


class NotAllowedError(ApplicationError):
    """The actor's role does not allow the action (their membership itself is not secret)."""

    code = "not_allowed"
    status_code = 403


class ConflictError(ApplicationError):
    """The action would break an invariant (last owner, already a member, used invitation)."""

    code = "conflict"
    status_code = 409
