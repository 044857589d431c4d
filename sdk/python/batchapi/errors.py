"""Typed errors, one per API error code (the `code` field of every error answer)."""
from typing import Optional


class BatchError(Exception):
    """An error answer of the API: `code` is stable, the message is for people."""

    def __init__(self, code: str, message: str, status: int = 0, field: Optional[str] = None, id: Optional[str] = None,
                 retry_after: Optional[float] = None):
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.message = message
        self.status = status
        self.field = field
        self.id = id
        self.retry_after = retry_after


class InvalidArgument(BatchError):
    """400: the request is malformed; `field` names the part at fault."""


class Unauthenticated(BatchError):
    """401: no token, or an unknown one."""


class Forbidden(BatchError):
    """403: the token may not do this."""


class NotFound(BatchError):
    """404: no such job, workflow or queue (or it belongs to another tenant)."""


class Conflict(BatchError):
    """409: the record changed meanwhile, or an idempotency key was reused with another body."""


class PayloadTooLarge(BatchError):
    """413: the request body is over the limit."""


class Unprocessable(BatchError):
    """422: unknown tenant or queue, or a task larger than its queue can ever hold."""


class RateLimited(BatchError):
    """429: a throttle refused it; `retry_after` says when to try again."""


class Unavailable(BatchError):
    """503: the control plane is overloaded or cannot reach etcd; retry after `retry_after`."""


class TaskFailed(Exception):
    """A task ended without success: `reason` (Error, OOMKilled, …), `exit_code`, and the job's id."""

    def __init__(self, job_id: str, index: Optional[int], state: str, reason: Optional[str] = None, exit_code: Optional[int] = None,
                 message: Optional[str] = None):
        where = f"task {index} of job {job_id}" if index is not None else f"job {job_id}"
        detail = message or ", ".join(x for x in [reason, f"exit code {exit_code}" if exit_code is not None else None] if x) or state
        super().__init__(f"{where} ended {state}: {detail}")
        self.job_id = job_id
        self.index = index
        self.state = state
        self.reason = reason
        self.exit_code = exit_code


_BY_STATUS = {400: InvalidArgument, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
              422: Unprocessable, 429: RateLimited, 503: Unavailable}


def error_from(status: int, body: object, retry_after: Optional[float] = None) -> BatchError:
    """The typed error of an answer: its `code` and fields when it has the error envelope, else by status."""
    e = body.get("error") if isinstance(body, dict) else None
    cls = _BY_STATUS.get(status, BatchError)
    if isinstance(e, dict) and isinstance(e.get("code"), str):
        return cls(e["code"], str(e.get("message", "")), status, e.get("field"), e.get("id"),
                   retry_after if retry_after is not None else e.get("retryAfterSeconds"))
    return cls("unavailable" if status >= 500 else "http_error", f"HTTP {status}: {body!r}"[:500], status, retry_after=retry_after)
