"""BatchAPI's Python SDK (Python >= 3.10; `cloudpickle` optional, to ship functions of
scripts, notebooks, lambdas and closures by value).

    import batchapi as batch

    @batch.task(cpus=4, memory="16Gi", gpus=1, retries=3)
    def train(cfg: dict) -> float: ...

    ref = train.submit(cfg)     # returns at once: a Ref[float]
    batch.get(ref)              # waits; the result, or raises TaskFailed (with the remote traceback)
"""
from .client import Client
from .core import (JobRef, Ref, StepRef, Task, TaskOptions, Toleration, Workflow, as_completed, cancel, client, configure, get, get_async,
                   init, list_jobs, logs, retry, task, tasks, wait, wait_async, why, workflow)
from .requirements import read_requirements
from .semaphores import delete_semaphore, get_semaphore, put_semaphore, semaphores
from ._steps import Param
from .templates import param, run_template, templates
from .errors import (BatchError, Conflict, Forbidden, InvalidArgument, InvalidTask, NotFound, PayloadTooLarge, RateLimited, TaskFailed,
                     Unauthenticated, Unavailable, Unprocessable, WaitTimeout, WorkflowNotRetryable)

#: `batch.list(state="Failed", label_selector="team=ml")`: every job selected, page after page.
list = list_jobs  # noqa: A001 - the SDK's verb, like the CLI's `batch list`

__all__ = ["Client", "JobRef", "Ref", "StepRef", "Task", "TaskOptions", "Toleration", "Workflow", "as_completed", "cancel", "client",
           "configure", "delete_semaphore", "get", "get_async", "get_semaphore", "put_semaphore", "semaphores", "init", "list", "list_jobs", "logs",
           "read_requirements", "retry", "task", "tasks", "wait", "wait_async", "why", "workflow", "Param", "param", "run_template", "templates",
           "BatchError", "Conflict", "Forbidden", "InvalidArgument", "InvalidTask", "NotFound", "PayloadTooLarge", "RateLimited",
           "TaskFailed", "Unauthenticated", "Unavailable", "Unprocessable", "WaitTimeout", "WorkflowNotRetryable"]
__version__ = "0.2.0"
