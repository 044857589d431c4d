"""Typed errors, one per API error code (the `code` field of every error answer), the errors
the SDK raises itself before a call leaves the process (`InvalidTask`), and `TaskFailed`."""
from typing import Optional


class _CodedError(Exception):
    """What the SDK's coded errors share (`BatchError`, `InvalidTask`): a stable `code`, the
    `message` for people and the `field` at fault, said as `code: message (field f)`."""

    def __init__(self, code: str, message: str, field: Optional[str] = None):
        super().__init__(f"{code}: {message}" + (f" (field {field})" if field else ""))
        self.code = code
        self.message = message
        self.field = field


class BatchError(_CodedError):
    """An error answer of the API: `code` is stable, the message is for people."""

    def __init__(self, code: str, message: str, status: int = 0, field: Optional[str] = None, id: Optional[str] = None,
                 retry_after: Optional[float] = None):
        super().__init__(code, message, field)
        self.status = status
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


class WorkflowNotRetryable(Conflict):
    """409 `workflow_not_retryable`: a retry of a run that is still running (wait for its end, or
    cancel it) or that succeeded (nothing to re-run: submit it again); `id` names the run."""


class PayloadTooLarge(BatchError):
    """413: the request body is over the limit."""


class Unprocessable(BatchError):
    """422: unknown tenant or queue, a task larger than its queue can ever hold, or a workflow template's
    `missing_parameter` / `unknown_parameter` (`field` names `params.<name>`)."""


class RateLimited(BatchError):
    """429: a throttle refused it; `retry_after` says when to try again."""


class Unavailable(BatchError):
    """503: the control plane is overloaded or cannot reach etcd; retry after `retry_after`."""


class InvalidTask(_CodedError, TypeError):
    """Refused in this process, before anything was submitted: `code` is stable, `field` names
    the option or argument at fault.

    Codes: `unknown_option` (a misspelt option: the message suggests the right one),
    `invalid_option` (an option of the wrong type or value), `bad_arguments` (the arguments do
    not fit the function's signature), `arguments_not_json` (an argument or map item is not
    JSON: NaN, inf, or an object), `function_not_shippable` (a function from `__main__`, a
    notebook, a lambda or a closure, and `cloudpickle` is not installed), `too_large` (a
    shipped function or the arguments are over the size a job may carry), `step_option_outside_workflow`,
    `invalid_requirements` (`read_requirements`: a line of a requirements file that is not a
    specifier with its hashes; the message names the file and line).
    """


class WaitTimeout(TimeoutError):
    """A wait's `timeout` passed before what it waited for ended: `what` names it ("job <id>",
    "workflow <id>", or "references" for `as_completed`), `timeout` is the bound in seconds, and
    `phase` the last phase seen (None when none was). A `TimeoutError`, so code that catches that
    keeps working; catch this one to tell a wait's own deadline from a socket's timeout."""

    def __init__(self, message: str, what: str, timeout: Optional[float], phase: Optional[str] = None):
        super().__init__(message)
        self.what = what
        self.timeout = timeout
        self.phase = phase


class TaskFailed(Exception):
    """A task ended without success: `reason` (Error, OOMKilled, …), `exit_code`, the job's id,
    and `traceback`: the remote Python traceback the task printed (None when the task did not
    get to run the function, or its log is no longer reachable)."""

    def __init__(self, job_id: str, index: Optional[int], state: str, reason: Optional[str] = None, exit_code: Optional[int] = None,
                 message: Optional[str] = None, traceback: Optional[str] = None):
        where = f"task {index} of job {job_id}" if index is not None else f"job {job_id}"
        detail = message or ", ".join(x for x in [reason, f"exit code {exit_code}" if exit_code is not None else None] if x) or state
        text = f"{where} ended {state}: {detail}"
        if traceback:
            text += "\n\nRemote traceback:\n" + traceback.rstrip()
        super().__init__(text)
        self.job_id = job_id
        self.index = index
        self.state = state
        self.reason = reason
        self.exit_code = exit_code
        self.traceback = traceback


_BY_STATUS = {400: InvalidArgument, 401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
              422: Unprocessable, 429: RateLimited, 503: Unavailable}


_BY_CODE = {"workflow_not_retryable": WorkflowNotRetryable}


def error_from(status: int, body: object, retry_after: Optional[float] = None) -> BatchError:
    """The typed error of an answer: its `code` and fields when it has the error envelope (the
    class of its code when it has its own, else of its status), else by status."""
    e = body.get("error") if isinstance(body, dict) else None
    cls = _BY_STATUS.get(status, BatchError)
    if isinstance(e, dict) and e.get("code") in _BY_CODE:
        cls = _BY_CODE[e["code"]]
    if isinstance(e, dict) and isinstance(e.get("code"), str):
        return cls(e["code"], str(e.get("message", "")), status, e.get("field"), e.get("id"),
                   retry_after if retry_after is not None else e.get("retryAfterSeconds"))
    return cls("unavailable" if status >= 500 else "http_error", f"HTTP {status}: {body!r}"[:500], status, retry_after=retry_after)
