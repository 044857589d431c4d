"""BatchAPI's Python SDK (standard library only, Python >= 3.9).

    import batchapi as batch

    @batch.task(cpus=4, memory="16Gi", gpus=1, retries=3)
    def train(cfg): ...

    ref = train.submit(cfg)     # returns at once
    batch.get(ref)              # waits; the result, or raises TaskFailed
"""
from .client import Client
from .core import JobRef, StepRef, Task, Workflow, client, configure, get, task, workflow
from .errors import (BatchError, Conflict, Forbidden, InvalidArgument, NotFound, PayloadTooLarge, RateLimited, TaskFailed,
                     Unauthenticated, Unavailable, Unprocessable)

__all__ = ["Client", "JobRef", "StepRef", "Task", "Workflow", "client", "configure", "get", "task", "workflow", "BatchError", "Conflict",
           "Forbidden", "InvalidArgument", "NotFound", "PayloadTooLarge", "RateLimited", "TaskFailed", "Unauthenticated", "Unavailable",
           "Unprocessable"]
__version__ = "0.1.0"
