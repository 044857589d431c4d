"""Tasks, references, waiting and workflows.

How a function gets to the node: a task runs `python3 -m batchapi.run` there (`batchapi.run`).
A function defined at module level in an importable file goes **by name** (`module:qualname`;
the SDK puts its module's root directory, the SDK and the submitter's `PYTHONPATH` on the
task's `PYTHONPATH`, so a local cluster or a shared filesystem needs nothing more). A function
defined in `__main__` (a script, a notebook, a REPL, `python -c`), a lambda or a closure goes
**by value**: its cloudpickle, when `cloudpickle` is importable here (and on the node); without
it, `submit` refuses it with `InvalidTask(code="function_not_shippable")`. The submitting script
is never imported on the node. Arguments, map items and results are JSON.
"""
from __future__ import annotations

import asyncio
import base64
import difflib
import inspect
import json
import math
import os
import re
import sys
import threading
import time
import types
import typing
import warnings
from typing import (TYPE_CHECKING, Any, Callable, Dict, Generator, Generic, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple,
                    TypedDict, TypeVar, Union, cast, overload)

from typing import Concatenate, ParamSpec

from ._steps import encode_arguments, param_env, step_results
from .client import POLL_ERRORS, TERMINAL, Client, _passed, _timed_out, new_traceparent
from .errors import BatchError, Conflict, InvalidTask, TaskFailed, WaitTimeout
from .requirements import MAX_REQUIREMENT_CHARS, MAX_REQUIREMENTS, mixed_hashes, requirement_problem
from ._wire import RESULT_NOT_JSON_EXIT, TRACEBACK_MARKER
from .working_dir import upload as upload_working_dir

if TYPE_CHECKING:
    from typing_extensions import Unpack

P = ParamSpec("P")
Q = ParamSpec("Q")
R = TypeVar("R")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
A = TypeVar("A")

_default: Optional[Client] = None
_lock = threading.Lock()

#: Largest environment value the API takes, in UTF-8 bytes (`MAX_ENV_VALUE_BYTES`).
MAX_ENV_VALUE_BYTES = 32 * 1024
#: Largest pickled function shipped by value, in bytes of base64 (spread over `BATCH_PY_FN_<i>` values of 30,000 characters).
MAX_SHIPPED_FUNCTION_BYTES = 240_000
_FN_CHUNK = 30_000


def client() -> Client:
    """The client every task and `get` use by default: from the environment (see `Client`), or a
    local run (`batchapi.local.LocalClient`) when `BATCH_LOCAL=1`."""
    global _default
    with _lock:
        if _default is None:
            _default = _local_client() if os.environ.get("BATCH_LOCAL", "") in ("1", "true") else Client()
        return _default


def _local_client(workers: Optional[int] = None) -> Client:
    from .local import LocalClient
    return LocalClient(workers)


def init(api: Optional[str] = None, token: Optional[str] = None, *, local: bool = False, workers: Optional[int] = None, **kw: Any) -> Client:
    """Chooses where tasks run: a cluster (`api` and `token`, default `BATCH_API`/`BATCH_TOKEN` or
    the CLI's context; other keywords as `Client`), or — `local=True` — this machine, each task a
    child process of the same runner, at most `workers` at once (default the CPU count), with
    the cluster's semantics for results, retries, errors and workflows (`batchapi.local`). The
    same as `BATCH_LOCAL=1` for `local`. Replaces the default client (a local one is closed)."""
    global _default
    with _lock:
        old, _default = _default, (_local_client(workers) if local else Client(api, token, **kw))
        new = _default
    close = getattr(old, "close", None)
    if close is not None and old is not new:
        close()
    return new


def configure(api: Optional[str] = None, token: Optional[str] = None, **kw: Any) -> Client:
    """Sets the default client explicitly."""
    global _default
    with _lock:
        _default = Client(api, token, **kw)
        return _default


# -- options ---------------------------------------------------------------------------------


class Toleration(TypedDict, total=False):
    """A node taint a task tolerates, as in Kubernetes."""

    key: str
    operator: str  # "Equal" (default) or "Exists"
    value: str
    effect: str  # "NoSchedule", "PreferNoSchedule" or "NoExecute"


class TaskOptions(TypedDict, total=False):
    """The options of `@batchapi.task(...)` and `.options(...)`; any other name is refused."""

    cpus: float
    """CPU cores per task. Default 1."""
    memory: str
    """Memory per task, Kubernetes quantity ("256Mi", "16Gi"). Default "256Mi"."""
    gpus: float
    """GPUs per task; a fraction shares one device. Default 0."""
    retries: int
    """Extra attempts after a failure. Default 0. A result that is not JSON is never retried."""
    backoff: float
    """Seconds before the first retry (doubling after). Default 1."""
    timeout: float
    """Seconds one attempt may run (rounded up to whole seconds). Default none."""
    queue: str
    """Queue. Default "default"."""
    priority: int
    """-1000 to 1000, higher first. Default 0."""
    image: str
    """Container image of each task on the Kubernetes backend. Default the executor's."""
    working_dir: str
    """A local directory shipped to the nodes as each task's cwd (read-only there): packed less
    `.git/` and what its `.gitignore` and `.batchignore` name, at most 100 MiB of tar, uploaded once
    per content. Modules in it import on the node (`python -m` puts the cwd first on the path).
    Process executors only. Default none."""
    requirements: Sequence[str]
    """Python requirement specifiers (pinned lines such as "scikit-learn==1.5.2", at most 500 of at
    most 200 characters; no pip options, paths or URLs, but each line may carry
    `--hash=sha256:<64 hex>` options, then every line must: `batch.read_requirements(path)` reads a
    `pip-compile --generate-hashes` lock file, and the node installs it with `--require-hashes`): the node builds a virtual environment with
    them once per content and its interpreter (pip from the index its operator configured) and runs
    the task with its `python3`. A build that fails ends the attempt NodeError with pip's output in
    the task's stderr. Process executors only; refused in local mode (BatchError `local_mode`).
    Default none: the node's own `python3`."""
    gang: bool
    """All tasks start together or none do. Default False."""
    tasks: int
    """Identical tasks of one `submit` (each sees `BATCH_TASK_INDEX`). Default 1."""
    max_running: int
    """Most tasks of the job running at once, at least 1 (an array job of `tasks=` or `map`; Slurm's
    `--array=…%N`); the others wait for a slot. In a workflow, a map step's limit on its tasks.
    Default unlimited."""
    locks: Sequence[str]
    """Mutexes each running task holds alone, by name (e.g. "dataset/lidar-2026-11"; "global/…" for
    ones an operator shares): two tasks naming the same lock never run at once, across jobs and
    workflows of the tenant. At most 8. Default none."""
    limits: Mapping[str, int]
    """Units of named semaphores each running task holds, e.g. {"db/warehouse-conn": 1}: a task
    starts only when it can take them (`batchapi.put_semaphore` sets a capacity). At most 8.
    Default none."""
    env: Mapping[str, str]
    """Extra environment variables of the task. Default none."""
    name: str
    """The job's name (in a workflow: the step's name). Default the function's name, `_` as `-`."""
    python: str
    """The interpreter on the node. Default "python3"."""
    selector: Mapping[str, str]
    """Node labels a node must have, e.g. {"gpu.model": "A100"}. Default none."""
    labels: Mapping[str, str]
    """Labels of the job (for `batch list -l`). Default none."""
    tolerations: Sequence[Toleration]
    """Node taints tolerated. Default none."""
    spread: bool
    """Prefer the emptiest nodes instead of packing. Default False."""
    topology: Mapping[str, str]
    """Topology-aware placement of a gang or job: {"required": "rack"} (every task in one domain of
    that level, or wait) or {"preferred": "rack"} (as few domains as fit, then the level above).
    Levels are the cluster's (`BATCH_TOPOLOGY_LEVELS`; by default block, rack, host). Default none."""
    after: Sequence["StepRef[Any]"]
    """Workflow steps only: steps this one runs after. Default none."""
    inputs: Sequence["StepRef[Any]"]
    """Deprecated (pass `step.output` as an argument instead): workflow steps only, steps whose
    results are passed as extra positional arguments, last. Default none."""
    when: str
    """Workflow steps only: "success" (default), "failure" or "always"."""
    cache: bool
    """Workflow steps only: memoize the step. When its inputs — the function and its arguments, its
    `working_dir` and `requirements`, the results of the steps it depends on, `cache_version` — match
    a step of your tenant that succeeded within the cluster's cache lifetime (7 days by default), it
    is not run: it reuses that step's results (its view shows `cached`). Needs the cluster's history
    store. Default False."""
    cache_version: str
    """Workflow steps only, with `cache=True`: part of the cache key; change it (at most 64
    characters) to run the step again with the same inputs. Default ""."""


OPTION_NAMES = sorted(TaskOptions.__optional_keys__ | TaskOptions.__required_keys__)
STEP_OPTIONS = ("after", "inputs", "when", "cache", "cache_version")
MAX_CACHE_VERSION_CHARS = 64
_NUMBERS = {"cpus", "gpus", "retries", "backoff", "timeout", "priority", "tasks", "max_running"}
_INTEGERS = {"retries", "priority", "tasks", "max_running"}
_POSITIVE = {"max_running"}
_TEXTS = {"memory", "queue", "image", "name", "python", "when", "working_dir", "cache_version"}
_BOOLS = {"gang", "spread", "cache"}
_MAPS = {"env", "selector", "labels"}
_TOLERATION_KEYS = {"key", "operator", "value", "effect"}


def check_options(options: Mapping[str, Any]) -> None:
    """Refuses an unknown option (naming the closest known one) or one of the wrong type."""
    for k, v in options.items():
        if k not in OPTION_NAMES:
            near = difflib.get_close_matches(k, OPTION_NAMES, n=1, cutoff=0.6)
            hint = f"; did you mean {near[0]!r}?" if near else f"; options are {', '.join(OPTION_NAMES)}"
            raise InvalidTask("unknown_option", f"unknown task option {k!r}{hint}", k)
        bad = None
        if k in _NUMBERS:
            number = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
            least = 1 if k in _POSITIVE else 0
            if not number or (k in _INTEGERS and v != int(v)) or (v < least and k != "priority"):
                bad = "a whole number" if k in _INTEGERS else "a finite number"
                bad += "" if k == "priority" else f" ≥ {least}"
        elif k in _TEXTS and not isinstance(v, str):
            bad = "a string"
        elif k in _BOOLS and not isinstance(v, bool):
            bad = "True or False"
        elif k in _MAPS and not (isinstance(v, Mapping) and all(isinstance(a, str) and isinstance(b, str) for a, b in v.items())):
            bad = "a dict of strings to strings"
        elif k == "tolerations" and not (isinstance(v, (list, tuple)) and all(isinstance(t, Mapping) and set(t) <= _TOLERATION_KEYS for t in v)):
            bad = f"a list of dicts with keys among {sorted(_TOLERATION_KEYS)}"
        elif k in ("after", "inputs") and not (isinstance(v, (list, tuple)) and all(isinstance(s, StepRef) for s in v)):
            bad = "a list of steps (what wf.step and wf.map return)"
        elif k == "topology" and not (isinstance(v, Mapping) and len(v) == 1 and set(v) <= {"required", "preferred"}
                                      and all(isinstance(level, str) and level for level in v.values())):
            bad = 'one of {"required": level} or {"preferred": level}, the level a name such as "rack"'
        elif k == "requirements" and not (isinstance(v, (list, tuple)) and 0 < len(v) <= MAX_REQUIREMENTS
                                          and all(isinstance(r, str) and requirement_problem(r) is None for r in v)
                                          and mixed_hashes(list(v)) is None):
            bad = (f"a list of 1 to {MAX_REQUIREMENTS} requirement specifiers such as \"scikit-learn==1.5.2\" (each at most "
                   f"{MAX_REQUIREMENT_CHARS} characters, no pip options but --hash=sha256:… on every line or none; "
                   "batch.read_requirements(path) reads a lock file)")
        elif k == "locks" and not (isinstance(v, (list, tuple)) and 0 < len(v) <= 8 and all(isinstance(n, str) and n for n in v)
                                  and len(set(v)) == len(v)):
            bad = 'a list of 1 to 8 distinct lock names such as "dataset/lidar"'
        elif k == "limits" and not (isinstance(v, Mapping) and 0 < len(v) <= 8 and all(
                isinstance(n, str) and n and isinstance(u, int) and not isinstance(u, bool) and u >= 1 for n, u in v.items())):
            bad = 'a dict of 1 to 8 semaphore names to whole numbers ≥ 1, such as {"db/warehouse-conn": 1}'
        elif k == "cache_version" and len(v) > MAX_CACHE_VERSION_CHARS:
            bad = f"at most {MAX_CACHE_VERSION_CHARS} characters"
        elif k == "when" and v not in ("success", "failure", "always"):
            bad = '"success", "failure" or "always"'
        if bad:
            raise InvalidTask("invalid_option", f"option {k!r} must be {bad}, not {v!r}", k)


# -- shipping the function -------------------------------------------------------------------


def _by_value_reason(fn: Callable[..., Any]) -> Optional[str]:
    """Why `fn` cannot be imported by name on the node (None when it can)."""
    qualname = getattr(fn, "__qualname__", "")
    module = getattr(fn, "__module__", None)
    if module in (None, "__main__"):
        return "defined in __main__ (a script, notebook, REPL or `python -c`)"
    if "<lambda>" in qualname:
        return "a lambda"
    if "<locals>" in qualname:
        return "defined inside another function (a closure)"
    mod = sys.modules.get(str(module))
    if mod is None or not getattr(mod, "__file__", None):
        return f"defined in module {module}, which has no file"
    target: Any = mod
    for part in qualname.split("."):
        target = getattr(target, part, None)
    if target is not fn and getattr(target, "fn", None) is not fn:
        return f"not reachable as {module}.{qualname}"
    return None


def _module_root(fn: Callable[..., Any]) -> Optional[str]:
    """The directory that must be on the task's path for `fn`'s module (and its neighbours) to import."""
    name = getattr(fn, "__module__", None) or "__main__"
    path = getattr(sys.modules.get(name), "__file__", None)
    if not path:
        return os.getcwd() if name == "__main__" else None
    root = os.path.dirname(os.path.abspath(str(path)))
    if name != "__main__":
        for _ in range(name.count(".")):
            root = os.path.dirname(root)
    return root


def _python_path(root: Optional[str]) -> str:
    sdk_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = [p for p in [root, sdk_root, os.environ.get("PYTHONPATH")] if p]
    return os.pathsep.join(dict.fromkeys(os.pathsep.join(parts).split(os.pathsep)))


def ship(fn: Callable[..., Any]) -> Dict[str, str]:
    """The environment that brings `fn` to the node: `BATCH_PY_CALL` (by name) or
    `BATCH_PY_FN_<i>` (by value, cloudpickle), and `PYTHONPATH`."""
    env = {"PYTHONPATH": _python_path(_module_root(fn))}
    reason = _by_value_reason(fn)
    if reason is None:
        env["BATCH_PY_CALL"] = f"{fn.__module__}:{fn.__qualname__}"
        return env
    name = getattr(fn, "__qualname__", repr(fn))
    try:
        import cloudpickle  # type: ignore[import-untyped, unused-ignore]
    except ImportError:
        raise InvalidTask("function_not_shippable",
                          f"{name} is {reason}: the node cannot import it by name. Install cloudpickle (`pip install cloudpickle`, "
                          "here and on the nodes) to ship it by value, or define it at module level in a file", "fn") from None
    try:
        data = base64.b64encode(cloudpickle.dumps(fn)).decode("ascii")
    except Exception as e:  # noqa: BLE001 - anything cloudpickle cannot serialise
        raise InvalidTask("function_not_shippable", f"{name} is {reason} and cannot be pickled: {e}", "fn") from e
    if len(data) > MAX_SHIPPED_FUNCTION_BYTES:
        raise InvalidTask("too_large", f"{name} pickles to {len(data)} bytes of base64, over {MAX_SHIPPED_FUNCTION_BYTES}: it captures "
                          "large globals or closure variables; pass large data through files, or define it in a module", "fn")
    env["BATCH_PY_VERSION"] = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for i in range(0, len(data), _FN_CHUNK):
        env[f"BATCH_PY_FN_{i // _FN_CHUNK}"] = data[i:i + _FN_CHUNK]
    return env


def _json(value: Any, what: str, field: str) -> str:
    try:
        return json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise InvalidTask("arguments_not_json", f"{what} must be JSON (numbers, strings, lists, dicts, booleans, None; not NaN or inf): {e}",
                          field) from None


_PLACEHOLDER = object()


def _default_name(fn_name: str) -> str:
    """A job or step name from a function's: `_` as `-`, what the API refuses left out (`<lambda>` is `lambda`)."""
    name = re.sub(r"[^A-Za-z0-9.-]", "", fn_name.replace("_", "-")).strip(".-")
    return name[:63] or "task"


def bind_arguments(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], *, leading: int = 0) -> None:
    """Checks a call against `fn`'s signature, with `leading` arguments the node adds first (the map item)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin without a signature: the node will tell
    try:
        sig.bind(*([_PLACEHOLDER] * leading), *args, **kwargs)
    except TypeError as e:
        extra = " (a map passes the item as the first argument)" if leading else ""
        # A keyword the function does not take but a task option has this name (max_running=…): say where it goes.
        misplaced = [k for k in kwargs if k in OPTION_NAMES and k not in sig.parameters]
        extra += f"; {misplaced[0]!r} is a task option: pass it as task.options({misplaced[0]}=…)" if misplaced else ""
        raise InvalidTask("bad_arguments", f"{getattr(fn, '__qualname__', fn)}{sig}: {e}{extra}", "args") from None


# -- references ------------------------------------------------------------------------------


class JobRef(Generic[T_co]):
    """A submitted task (`index` of an array job), or a job as a whole (`index` None); `T` is the
    function's return type. `Ref` is the same class."""

    def __init__(self, job: Dict[str, Any], index: Optional[int] = None):
        self.job = job
        self.job_id: str = job["id"]
        self.index = index
        self.trace_id: Optional[str] = job.get("traceId")

    def __repr__(self) -> str:
        return f"JobRef({self.job_id}{'' if self.index is None else f'[{self.index}]'})"

    def wait(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits for the job's end and returns its view."""
        return client().wait_job(self.job_id, timeout)

    def cancel(self) -> None:
        """Cancels this task alone when the reference is one task of an array job (a `map`'s),
        else the whole job: pending it never starts, running it is stopped; it never runs again.
        Cancelling a task that already ended changes nothing."""
        if self.index is None:
            client().cancel_job(self.job_id)
            return
        try:
            client().cancel_task(self.job_id, self.index)
        except Conflict:
            pass  # the task or its job already ended: nothing to cancel

    def result(self, timeout: Optional[float] = None) -> T_co:
        return get(self, timeout)

    def __await__(self) -> Generator[Any, None, T_co]:
        """`await ref` in a coroutine: `get(ref)` without blocking the event loop (it waits in a worker thread)."""
        return asyncio.to_thread(get, self).__await__()


Ref = JobRef


class Task(Generic[P, R]):
    """A function that runs as a BatchAPI task. Made by `@batchapi.task(...)`."""

    def __init__(self, fn: Callable[P, R], options: Mapping[str, Any]):
        check_options(options)
        self.fn = fn
        self.opts: Dict[str, Any] = dict(options)
        self.__name__ = getattr(fn, "__name__", "task")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__module__ = getattr(fn, "__module__", __name__)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.__wrapped__ = fn

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Calls the function here, as a plain function."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"Task({self.__qualname__}, {self.opts})"

    def options(self, **overrides: Unpack[TaskOptions]) -> Task[P, R]:
        """The same task with other options, e.g. `train.options(queue="ml-research")`; in a
        workflow also the step's `name`, `after` and `when`."""
        return Task(self.fn, {**self.opts, **overrides})

    def job_body(self, args: Sequence[Any] = (), kwargs: Optional[Mapping[str, Any]] = None, items: Optional[List[Any]] = None,
                 mapped: bool = False, workflow: Optional[Workflow] = None) -> Dict[str, Any]:
        """The job request of a call: the runner command, its env, resources and policies (the
        call is checked against the function's signature first; `mapped`: the node passes a map
        item first, as it does when `items` are given). Steps' outputs among the arguments go as
        markers: only in a step of `workflow`."""
        kwargs = dict(kwargs or {})
        bind_arguments(self.fn, args, kwargs, leading=1 if items is not None or mapped else 0)
        o = self.opts
        params: List[str] = []
        call = _json(encode_arguments({"args": list(args), "kwargs": kwargs}, _promised_step(workflow), params), "the arguments", "args")
        if len(call.encode()) > MAX_ENV_VALUE_BYTES:
            raise InvalidTask("too_large", f"the arguments are {len(call.encode())} bytes of JSON, over {MAX_ENV_VALUE_BYTES}; "
                              "pass large data through files", "args")
        env = {**ship(self.fn), "BATCH_PY_ARGS": call, **param_env(params), **{k: str(v) for k, v in (o.get("env") or {}).items()}}
        resources: Dict[str, Any] = {"cpu": str(o.get("cpus", 1)), "memory": str(o.get("memory", "256Mi"))}
        if o.get("gpus"):
            resources["gpu"] = o["gpus"]
        body: Dict[str, Any] = {"name": o.get("name") or _default_name(self.__name__), "command": [o.get("python", "python3"), "-m", "batchapi.run"],
                                "env": env, "resources": resources}
        for key, api_key in (("queue", "queue"), ("priority", "priority"), ("image", "image"), ("gang", "gang"), ("spread", "spread")):
            if o.get(key) is not None:
                body[api_key] = o[key]
        for key in ("selector", "labels"):
            if o.get(key):
                body[key] = dict(o[key])
        if o.get("tolerations"):
            body["tolerations"] = [dict(t) for t in o["tolerations"]]
        if o.get("topology"):
            body["topology"] = dict(o["topology"])
        if o.get("working_dir"):
            body["workingDir"] = {"digest": upload_working_dir(client(), o["working_dir"])}
        if o.get("requirements"):
            body["python"] = {"requirements": [str(r).strip() for r in o["requirements"]]}
        if o.get("timeout") is not None:
            body["timeoutSeconds"] = int(math.ceil(o["timeout"]))
        if o.get("retries"):
            # a result that is not JSON ends the attempt with RESULT_NOT_JSON_EXIT: never run the computation again for it
            body["retry"] = {"maxAttempts": int(o["retries"]) + 1, "backoffSeconds": float(o.get("backoff", 1)),
                             "failFastOnExitCodes": [RESULT_NOT_JSON_EXIT]}
        if o.get("max_running") is not None:
            body["maxRunning"] = int(o["max_running"])
        if o.get("locks"):
            body["locks"] = list(o["locks"])
        if o.get("limits"):
            body["limits"] = {str(n): int(u) for n, u in o["limits"].items()}
        if items is not None:
            _json(items, "the map items", "items")
            body["items"] = items
        elif o.get("tasks"):
            body["tasks"] = int(o["tasks"])
        return body

    def _direct(self) -> None:
        step_only = [k for k in STEP_OPTIONS if k in self.opts]
        if step_only:
            raise InvalidTask("step_option_outside_workflow", f"{step_only[0]!r} is an option of workflow steps (wf.step); "
                              "this call submits a job", step_only[0])

    def submit(self, *args: P.args, **kwargs: P.kwargs) -> JobRef[R]:
        """Submits one call; returns at once with a reference (`batchapi.get(ref)` waits)."""
        self._direct()
        return JobRef(client().submit_job(self.job_body(args, kwargs), traceparent=new_traceparent()), 0)

    def map(self: Task[Concatenate[A, Q], R], items: Iterable[A], *args: Q.args, **kwargs: Q.kwargs) -> List[JobRef[R]]:
        """One array job: task i calls the function with `items[i]` (then `args`); one reference
        per item, in order. No items: no job, and an empty list."""
        self._direct()
        listed = list(items)
        if not listed:
            return []
        job = client().submit_job(self.job_body(args, kwargs, items=listed), traceparent=new_traceparent())
        return [JobRef(job, i) for i in range(len(listed))]


@overload
def task(fn: Callable[P, R]) -> Task[P, R]: ...


@overload
def task(fn: None = None, **options: Unpack[TaskOptions]) -> Callable[[Callable[P, R]], Task[P, R]]: ...


def task(fn: Optional[Callable[P, R]] = None, **options: Any) -> Union[Task[P, R], Callable[[Callable[P, R]], Task[P, R]]]:
    """Makes a function a task: `@batchapi.task(cpus=4, memory="16Gi", gpus=1, retries=3)`.

    Options (`TaskOptions`; any other name is refused with `InvalidTask`): `cpus` (default 1),
    `memory` (default "256Mi"), `gpus` (default 0; a fraction shares one device), `retries`
    (extra attempts on failure, default 0) with `backoff` seconds (default 1), `timeout` seconds
    per attempt, `queue`, `priority`, `image` (Kubernetes backend), `gang`, `tasks`, `max_running`
    (most tasks running at once, default unlimited), `env`,
    `name`, `python` (the interpreter on the node, default "python3"), `selector`, `labels`,
    `tolerations`, `spread`, `topology`.
    """
    check_options(options)
    if fn is not None:
        return Task(fn, options)

    def wrap(f: Callable[P, R]) -> Task[P, R]:
        return Task(f, options)

    return wrap


# -- waiting ---------------------------------------------------------------------------------


def _remaining(deadline: Optional[float], timeout: Optional[float], what: str) -> Optional[float]:
    """Seconds left until `deadline` (None: no limit); `WaitTimeout` naming `what` when none are."""
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise _timed_out(what, timeout, None)
    return left


@overload
def get(ref: JobRef[T], timeout: Optional[float] = None) -> T: ...


@overload
def get(ref: Sequence[JobRef[T]], timeout: Optional[float] = None) -> List[T]: ...


@overload
def get(ref: Workflow, timeout: Optional[float] = None) -> Dict[str, Any]: ...


def get(ref: Union[JobRef[T], Sequence[JobRef[T]], Workflow], timeout: Optional[float] = None) -> Any:
    """Waits and returns the result (a list of results for a list of references, `[]` for
    none); raises `TaskFailed` (with the remote traceback) if a task did not succeed.
    `timeout` (seconds) bounds the whole wait, however many jobs; `WaitTimeout` (a `TimeoutError`) past it."""
    if isinstance(ref, Workflow):
        return ref.wait(timeout)
    deadline = None if timeout is None else time.monotonic() + timeout
    refs = [ref] if isinstance(ref, JobRef) else list(ref)
    views: Dict[str, Dict[str, Any]] = {}
    results: Dict[str, Dict[int, Any]] = {}
    for r in refs:
        if r.job_id not in views:
            try:
                views[r.job_id] = client().wait_job(r.job_id, _remaining(deadline, timeout, f"job {r.job_id}"))
            except WaitTimeout as e:  # said with the whole wait's timeout, not the time that was left of it
                raise _timed_out(e.what, timeout, {"phase": e.phase} if e.phase else None) from None
            results[r.job_id] = {x["index"]: x["value"] for x in client().results(r.job_id)}
    out = [_value(r, views[r.job_id], results[r.job_id]) for r in refs]
    return out[0] if isinstance(ref, JobRef) else out


def _remote_traceback(job_id: str, index: int) -> Optional[str]:
    """What follows the last `TRACEBACK_MARKER` in the task's stderr (None if unreachable)."""
    try:
        text = client().logs(job_id, index, stream="stderr")
    except (BatchError, OSError):
        return None
    at = text.rfind(TRACEBACK_MARKER)
    return text[at + len(TRACEBACK_MARKER):].strip("\n") if at >= 0 else None


def _value(ref: JobRef[Any], view: Dict[str, Any], results: Dict[int, Any]) -> Any:
    """The runner writes a result exactly when the function returned, so a result means success."""
    index = ref.index or 0
    if index in results:
        return results[index]
    if view["phase"] == "Succeeded":
        return None
    reason = view.get("reason") or {}
    code, exit_code = reason.get("code"), None
    try:
        rows = [t for t in client().iter_tasks(ref.job_id, state="Failed") if t.get("index") == index]
        if rows:
            last = max(rows, key=lambda t: int(t.get("attempt", 0)))
            code, exit_code = last.get("reason") or code, last.get("exitCode")
    except BatchError:
        pass
    tb = _remote_traceback(ref.job_id, index)
    message = None
    if tb:
        message = tb.strip().splitlines()[-1]
    elif reason.get("message"):
        message = reason["message"]
    else:
        # What the task's last failed attempt says (its reason code and exit code), when it failed.
        said = ", ".join(x for x in (str(code) if code else "", f"exit code {exit_code}" if exit_code is not None else "") if x)
        message = f"task {index} returned no result{f' ({said})' if said else ''} (see `batch logs {ref.job_id} --task {index} --stderr`)"
    raise TaskFailed(ref.job_id, ref.index, view["phase"], code, exit_code, message, tb)


def _ready(refs: Sequence[JobRef[Any]], deadline: Optional[float]) -> List[bool]:
    """Which references are ready now: the task has a result, or its job ended. Each request ends
    by `deadline` (a read cut there raises `TimeoutError`)."""
    ended: Dict[str, bool] = {}
    have: Dict[str, set[int]] = {}
    for r in refs:
        if r.job_id not in ended:
            ended[r.job_id] = client().get_job(r.job_id, deadline)["phase"] in TERMINAL
            have[r.job_id] = set() if ended[r.job_id] else {int(x["index"]) for x in client().results(r.job_id, deadline)}
    return [ended[r.job_id] or (r.index or 0) in have[r.job_id] for r in refs]


def _wait_ready(refs: Sequence[JobRef[Any]], num_returns: int, deadline: Optional[float]) -> List[bool]:
    """Polls until `num_returns` of `refs` are ready or `deadline` passed, whichever is first: a poll
    cut by the deadline counts what the poll before it saw (a reference, once ready, stays so)."""
    delay = 0.05
    ready = [False] * len(refs)
    while True:
        try:
            ready = _ready(refs, deadline)
        except POLL_ERRORS:
            if not _passed(deadline):
                raise
            return ready  # cut, or not retried, by the deadline
        if sum(ready) >= num_returns or (deadline is not None and time.monotonic() >= deadline):
            return ready
        time.sleep(delay if deadline is None else max(0.0, min(delay, deadline - time.monotonic())))
        delay = min(1.0, delay * 2)


def wait(refs: Sequence[JobRef[T]], num_returns: int = 1, timeout: Optional[float] = None) -> Tuple[List[JobRef[T]], List[JobRef[T]]]:
    """Like Ray's `wait`: returns `(ready, not_ready)` once `num_returns` of `refs` are ready (a
    task is ready when it has a result or its job ended), or when `timeout` seconds passed
    (then `ready` may be shorter). Order is kept; `ready` has at most `num_returns`."""
    refs = list(refs)
    if not 0 <= num_returns <= len(refs):
        raise ValueError(f"num_returns must be between 0 and {len(refs)} (the references given), not {num_returns}")
    deadline = None if timeout is None else time.monotonic() + timeout
    flags = _wait_ready(refs, num_returns, deadline)
    ready: List[JobRef[T]] = []
    rest: List[JobRef[T]] = []
    for r, ok in zip(refs, flags):
        (ready if ok and len(ready) < num_returns else rest).append(r)
    return ready, rest


def as_completed(refs: Sequence[JobRef[T]], timeout: Optional[float] = None) -> Iterator[JobRef[T]]:
    """The references in the order they become ready (then `get(ref)` does not wait);
    `WaitTimeout` (a `TimeoutError`) if some are not ready within `timeout` seconds (over the whole iteration)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = list(refs)
    while pending:
        flags = _wait_ready(pending, 1, deadline)
        if not any(flags):
            raise WaitTimeout(f"{len(pending)} of {len(refs)} references were not ready within {timeout} s", "references", timeout)
        yield from (r for r, ok in zip(pending, flags) if ok)
        pending = [r for r, ok in zip(pending, flags) if not ok]


async def get_async(refs: Sequence[JobRef[T]], timeout: Optional[float] = None) -> List[T]:
    """`get(refs, timeout)` for asyncio: the results of many references, waited for in a worker
    thread (one reference: `await ref`)."""
    return await asyncio.to_thread(get, refs, timeout)


async def wait_async(refs: Sequence[JobRef[T]], num_returns: int = 1, timeout: Optional[float] = None) -> Tuple[List[JobRef[T]], List[JobRef[T]]]:
    """`wait(refs, num_returns, timeout)` for asyncio, in a worker thread."""
    return await asyncio.to_thread(wait, refs, num_returns, timeout)


# -- the rest of a job's life ----------------------------------------------------------------


def logs(ref: JobRef[Any], stream: str = "stdout", attempt: Optional[int] = None) -> str:
    """What the task wrote to `stream` ("stdout", the default, or "stderr") in `attempt` (default: its latest)."""
    return client().logs(ref.job_id, ref.index or 0, stream=stream, attempt=attempt)


def why(ref: JobRef[Any]) -> Dict[str, Any]:
    """Why the job is pending: position, blockers with node counts, quota, counterfactuals."""
    return client().why(ref.job_id)


def tasks(ref: JobRef[Any], state: Optional[str] = None) -> List[Dict[str, Any]]:
    """One row per attempt of the task (`ref.index`), or of every task of the job for a job ref
    (`index` None): attempt, state, node, exit code, reason, times. `state` filters ("Failed")."""
    rows = list(client().iter_tasks(ref.job_id, state=state))
    return rows if ref.index is None else [t for t in rows if t.get("index") == ref.index]


def cancel(ref: Union[JobRef[Any], Workflow]) -> None:
    """Cancels a workflow; a job (every task of it) for a job's reference; one task alone for a
    reference to one task of an array job (a `map`'s): it never runs again, the others run on."""
    ref.cancel()


def list_jobs(**filters: Any) -> Iterator[Dict[str, Any]]:
    """Every job `Client.list_jobs(**filters)` selects (live and finished), page after page:
    `state`, `queue`, `label_selector`, `name_prefix`, `workflow`, `submitted_since`, `sort`, …"""
    return client().iter_jobs(**filters)


# -- workflows -------------------------------------------------------------------------------


class StepRef(Generic[T_co]):
    """A step of a workflow being built; `T` is what it returns (a map step: the list of its
    tasks' results). `is_map`: its results are a list (one per item). `fn`: the step's function,
    whose return annotation `wf.step` checks arguments against. Pass `step.output` as an argument of
    another step to hand it the result; `wf.map(t, step.outputs)` fans out over it."""

    def __init__(self, wf: Workflow, name: str, is_map: bool = False, fn: Optional[Callable[..., Any]] = None, listed: bool = False):
        self.wf = wf
        self.name = name
        self.is_map = is_map
        self.fn = fn
        #: its result is a list of what `fn` returns (a map step; also a map over no items, which runs as one task returning [])
        self.listed = is_map or listed

    def __repr__(self) -> str:
        return f"StepRef({self.name})"

    @property
    def output(self) -> T_co:
        """The step's result, as an argument of another step of the same workflow (`wf.step(train,
        prep.output, lr=0.1)`, also inside a list or dict): a map step's list of results in item
        order, another step's value (the list of its tasks' values when it has several). The
        argument's step then depends on this one and reads it when it runs."""
        return cast(T_co, StepOutput(self))

    @property
    def outputs(self) -> T_co:
        """What `wf.map(t, step.outputs)` fans out over: one task per element of the step's list
        result (a map step's results, or a one-task step's returned list), in order."""
        return cast(T_co, StepOutput(self, fan_out=True))


class StepOutput:
    """A promise of a step's result (`StepRef.output`, `StepRef.outputs`): a placeholder among a
    step's arguments, sent as a marker the node's runner replaces by the value."""

    def __init__(self, step: StepRef[Any], fan_out: bool = False):
        self.step = step
        self.fan_out = fan_out

    def __repr__(self) -> str:
        return f"{self.step.name}.{'outputs' if self.fan_out else 'output'}"

    def returns(self) -> Any:
        """The type the step returns as far as annotations say (a map step: a list of it); None when unknown."""
        hints = _type_hints(self.step.fn) if self.step.fn is not None else {}
        if "return" not in hints:
            return None
        r = hints["return"]
        return List[r] if self.step.listed else r  # type: ignore[valid-type]


def _promised_step(wf: Optional[Workflow], found: Optional[List[StepRef[Any]]] = None) -> Callable[[Any], Optional[str]]:
    """What `encode_arguments` asks of each argument: the step a `StepOutput` promises (collected in
    `found`); refuses one of another workflow, or one outside a workflow (`wf` None)."""
    def promise(value: Any) -> Optional[str]:
        if isinstance(value, StepRef):
            raise InvalidTask("bad_arguments", f"a step ({value.name}) is not a value: pass {value.name}.output to hand over its result", "args")
        if not isinstance(value, StepOutput):
            return None
        if wf is None:
            raise InvalidTask("bad_arguments", f"{value!r} is a workflow step's result: pass it to wf.step or wf.map of its workflow", "args")
        if value.step.wf is not wf:
            raise InvalidTask("bad_arguments", f"{value!r} is a step of workflow {value.step.wf.name}, not of {wf.name}", "args")
        if value.fan_out:
            raise InvalidTask("bad_arguments", f"{value!r} is what wf.map fans out over (its `over`); pass {value.step.name}.output as an argument", "args")
        if found is not None and value.step not in found:
            found.append(value.step)
        return value.step.name
    return promise


# -- definition-time type checks of step outputs ----------------------------------------------


def _type_hints(fn: Callable[..., Any]) -> Dict[str, Any]:
    """`typing.get_type_hints` of `fn` (of a `Task`, its function), or {} when they cannot be resolved."""
    try:
        return typing.get_type_hints(getattr(fn, "fn", fn))
    except Exception:  # noqa: BLE001 - a forward reference that does not resolve, a builtin: nothing to check
        return {}


_UNIONS: Tuple[Any, ...] = (Union, types.UnionType)
_NUMERIC = {float: (int, bool), complex: (int, float, bool)}


def _type_name(t: Any) -> str:
    """`int`, `list[str]`, `Optional[int]`: a type as its annotation reads."""
    if isinstance(t, type) and typing.get_origin(t) is None:
        return t.__name__
    return str(t).replace("typing.", "")


def _compatible(expected: Any, given: Any) -> bool:
    """False only when a value of type `given` (what a step returns, after its trip through JSON)
    can never be a `expected` (a parameter's annotation); True when it can or it cannot be told."""
    if expected is Any or given is Any or expected is object:
        return True
    eo, go = typing.get_origin(expected), typing.get_origin(given)
    if eo in _UNIONS:
        return any(_compatible(e, given) for e in typing.get_args(expected))
    if go in _UNIONS:
        return any(_compatible(expected, g) for g in typing.get_args(given))
    if expected is None:
        expected = type(None)
    if given is None:
        given = type(None)
    ecls, gcls = eo or expected, go or given
    if not isinstance(ecls, type) or not isinstance(gcls, type):
        return True  # a TypeVar, Literal, NewType, Annotated, a string: not decided here
    if gcls in _NUMERIC.get(ecls, ()):
        return True
    if gcls is tuple and ecls is not tuple:
        gcls = list  # JSON makes a tuple a list
    try:
        if not issubclass(gcls, ecls):
            return ecls is tuple and issubclass(gcls, list)  # and a tuple parameter gets the list
    except TypeError:
        return True  # a TypedDict, a Protocol: not decided here
    ea, ga = typing.get_args(expected), typing.get_args(given)
    if len(ea) == 1 and len(ga) == 1:
        return _compatible(ea[0], ga[0])
    if len(ea) == 2 and len(ga) == 2 and Ellipsis not in ea and Ellipsis not in ga:
        return _compatible(ea[0], ga[0]) and _compatible(ea[1], ga[1])
    return True


def _element_type(t: Any) -> Any:
    """The type of the items a fan-out over a result of type `t` gets (None when unknown)."""
    args = typing.get_args(t)
    origin = typing.get_origin(t)
    if isinstance(origin, type) and issubclass(origin, (list, tuple, set, frozenset)) and len(args) == 1:
        return args[0]
    return None


def check_step_types(fn: Callable[..., Any], args: Sequence[Any], kwargs: Mapping[str, Any], *, item: Any = None, leading: int = 0) -> None:
    """Refuses (`InvalidTask` code `type_mismatch`, naming the parameter) a step output given to a
    parameter whose annotation it can never satisfy, by the producing step's return annotation
    (and a fan-out's item type, `item`, for the first parameter). Skips what annotations leave open."""
    hints = _type_hints(fn)
    if not hints:
        return
    try:
        bound = inspect.signature(getattr(fn, "fn", fn)).bind_partial(*([_PLACEHOLDER] * leading), *args, **kwargs)
    except (TypeError, ValueError):
        return  # bind_arguments says what is wrong
    name = getattr(fn, "__qualname__", repr(fn))
    if leading and item is not None:
        first = next(iter(bound.arguments), None)
        if first is not None and first in hints and not _compatible(hints[first], item):
            raise InvalidTask("type_mismatch", f"{name}: parameter {first!r} (the fan-out's item) expects {_type_name(hints[first])}, but the items "
                              f"are {_type_name(item)}", first)
    params = inspect.signature(getattr(fn, "fn", fn)).parameters
    for pname, value in bound.arguments.items():
        if pname not in hints:
            continue
        kind = params[pname].kind
        values = list(value) if kind is inspect.Parameter.VAR_POSITIONAL else list(value.values()) if kind is inspect.Parameter.VAR_KEYWORD else [value]
        for v in values:
            if not isinstance(v, StepOutput):
                continue
            given = v.returns()
            if given is not None and not _compatible(hints[pname], given):
                raise InvalidTask("type_mismatch", f"{name}: parameter {pname!r} expects {_type_name(hints[pname])}, but step {v.step.name!r} "
                                  f"returns {_type_name(given)}", pname)


def _legacy_step_kwargs(fn: Callable[..., Any], kwargs: Dict[str, Any], names: Sequence[str]) -> Dict[str, Any]:
    """Step options passed the old way, as keywords of `wf.step`/`wf.map`, that `fn` does not take
    itself (a keyword the function takes is always the function's)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return {}
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    legacy = {n: kwargs.pop(n) for n in names if n in kwargs and n not in params and not takes_any}
    if legacy:
        warnings.warn(f"step options as keywords of wf.step/wf.map ({', '.join(legacy)}) are deprecated: use "
                      f"wf.step(task.options({', '.join(f'{k}=…' for k in legacy)}), …)", DeprecationWarning, stacklevel=3)
    return legacy


class Workflow:
    """A DAG of steps, submitted as one workflow when the `with` block ends.

        with batchapi.workflow("nightly") as wf:
            shards = wf.step(list_shards.options(name="shards"))
            parts = wf.map(process, shards.outputs)                      # fan-out over shards' result
            total = wf.step(reduce, parts.output)                        # fan-in: parts' results, a list in item order
            wf.step(cleanup.options(after=[total], when="failure"))
        print(wf.result(total))

    Every keyword of `wf.step(t, *args, **kwargs)` is the function's own; any argument may be
    another step's `output`; the step's name, `after`, `when`, `cache` and `cache_version` come
    from `t.options(...)` (memoize a
    step: `wf.step(train.options(cache=True, cache_version="v2"), cfg)`), and so does a map step's limit on
    its tasks: `wf.map(process.options(max_running=10), shards)`. `max_running` of the workflow
    is the most steps running at once (default unlimited); waiting steps start in definition order.
    """

    def __init__(self, name: str, queue: Optional[str] = None, deadline: Optional[float] = None, max_running: Optional[int] = None):
        if max_running is not None and (isinstance(max_running, bool) or not isinstance(max_running, int) or not 1 <= max_running <= 1000):
            raise InvalidTask("invalid_option", f"workflow option 'max_running' must be a whole number from 1 to 1000, not {max_running!r}", "max_running")
        self.name = name
        self.queue = queue
        self.deadline = deadline
        self.max_running = max_running
        self.steps: List[Dict[str, Any]] = []
        self.id: Optional[str] = None
        self.view: Optional[Dict[str, Any]] = None

    def __enter__(self) -> Workflow:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.submit()

    def _add(self, t: Task[Any, Any], body: Dict[str, Any], after: Sequence[StepRef[Any]], extra: Dict[str, Any], is_map: bool,
             listed: bool = False) -> StepRef[Any]:
        step_name = t.opts.get("name") or f"{_default_name(t.__name__)[:56]}-{len(self.steps)}"
        if any(s["name"] == step_name for s in self.steps):
            raise InvalidTask("invalid_option", f"workflow {self.name} already has a step named {step_name!r}", "name")
        body.pop("name", None)
        if t.opts.get("cache_version") is not None and not t.opts.get("cache"):
            raise InvalidTask("invalid_option", "option 'cache_version' versions the step's cache: set cache=True too, or remove it", "cache_version")
        memo: Dict[str, Any] = {"cache": True} if t.opts.get("cache") else {}
        if memo and t.opts.get("cache_version"):
            memo["cacheVersion"] = t.opts["cache_version"]
        step = {"name": step_name, "job": body, "dependsOn": list(dict.fromkeys(a.name for a in after)), "when": t.opts.get("when", "success"),
                **extra, **memo}
        self.steps.append(step)
        return StepRef(self, step_name, is_map, t.fn, listed)

    def _legacy_inputs(self, t: Task[Any, Any], args: Sequence[Any]) -> Tuple[Task[Any, Any], List[Any]]:
        """`inputs=` (deprecated): the steps' outputs as the last positional arguments."""
        inputs = list(t.opts.get("inputs") or ())
        if not inputs:
            return t, list(args)
        warnings.warn("the step option inputs= is deprecated: pass the steps' outputs as arguments, e.g. wf.step(train, prep.output)",
                      DeprecationWarning, stacklevel=3)
        return Task(t.fn, {k: v for k, v in t.opts.items() if k != "inputs"}), list(args) + [i.output for i in inputs]

    def _call(self, t: Task[Any, Any], args: Sequence[Any], kwargs: Dict[str, Any], item: Any = None, mapped: bool = False
              ) -> Tuple[Dict[str, Any], List[StepRef[Any]], Dict[str, Any]]:
        """The job body of a step's call, the steps whose outputs it takes, and the step's `inputs`."""
        found: List[StepRef[Any]] = []
        encode_arguments([list(args), kwargs], _promised_step(self, found))  # checks and collects the promises
        check_step_types(t.fn, args, kwargs, item=item, leading=1 if mapped else 0)
        body = t.job_body(args, kwargs, mapped=mapped, workflow=self)
        return body, found, ({"inputs": [f.name for f in found]} if found else {})

    def step(self, t: Task[..., R], *args: Any, **kwargs: Any) -> StepRef[R]:
        """A step that calls `t(*args, **kwargs)` once its `after` steps and the steps whose outputs
        it takes are done, as its `when` says. Any argument may be another step's `output` (also
        inside a list or dict): `wf.step(train, prep.output, lr=0.1)`; an annotated parameter is
        checked against that step's return annotation (`InvalidTask` code `type_mismatch`)."""
        legacy = _legacy_step_kwargs(t.fn, kwargs, ("name", "after", "when", "inputs"))
        if legacy:
            t = Task(t.fn, {**t.opts, **legacy})
        t, call_args = self._legacy_inputs(t, args)
        body, found, extra = self._call(t, call_args, kwargs)
        deps = list(t.opts.get("after") or ()) + found
        return self._add(t, body, deps, extra, False)

    def map(self, t: Task[..., R], over: Union[Sequence[Any], StepRef[Any], None] = None, *args: Any, **kwargs: Any) -> StepRef[List[R]]:
        """A fan-out step: one task per item of `over` — a list, or a step's list result
        (`prep.outputs`; `prep` itself or `prep.output` mean the same) — calling `t(item, *args,
        **kwargs)`; the other arguments may be steps' outputs as in `step`. Its result is always a
        list, in item order: of one for one item, `[]` for none (downstream steps get `[]`)."""
        legacy = _legacy_step_kwargs(t.fn, kwargs, ("items", "from_step", "name", "after"))
        if "items" in legacy or "from_step" in legacy:
            over = legacy.pop("items", None) if "items" in legacy else legacy.pop("from_step")
        if legacy:
            t = Task(t.fn, {**t.opts, **legacy})
        if over is None:
            raise InvalidTask("bad_arguments", "wf.map needs what to map over: a list of items or a step's outputs", "over")
        t, call_args = self._legacy_inputs(t, args)
        source: Optional[StepRef[Any]] = over.step if isinstance(over, StepOutput) else over if isinstance(over, StepRef) else None
        if source is not None and source.wf is not self:
            raise InvalidTask("bad_arguments", f"wf.map over step {source.name} of workflow {source.wf.name}, not of {self.name}", "over")
        item = _element_type(StepOutput(source).returns()) if source is not None else None
        body, found, extra = self._call(t, call_args, kwargs, item=item, mapped=True)
        deps = list(t.opts.get("after") or ()) + found
        if source is not None:
            return self._add(t, body, deps + [source], {**extra, "map": {"fromStep": source.name}}, True)
        items = list(cast(Sequence[Any], over))
        if not items:
            # the API takes no map over nothing: a step whose one task returns [] (read as a value, it is the empty list)
            body["env"] = {k: v for k, v in body["env"].items() if not k.startswith("BATCH_PY_FN_")}
            body["env"].update({"BATCH_PY_CALL": "batchapi.run:empty_list", "BATCH_PY_ARGS": '{"args": [], "kwargs": {}}'})
            body.pop("retry", None)
            return self._add(t, body, deps, {}, False, listed=True)
        _json(items, "the map items", "items")
        return self._add(t, body, deps, {**extra, "map": {"items": items}}, True)

    def request(self) -> Dict[str, Any]:
        """The body `submit` sends (`POST /v1/workflows`): the steps so far and the workflow's options."""
        api = None
        if any(s.get("inputs") for s in self.steps):
            try:
                api = client().api  # the controller adds BATCH_INPUTS and a read-only token; the runner needs the API's address
            except (BatchError, ValueError):
                pass  # no client configured yet (a body built to look at): submit configures one
        steps = [{**s, "job": {**s["job"], "env": {"BATCH_API": api, **s["job"]["env"]}}} if api and s.get("inputs") else s for s in self.steps]
        body: Dict[str, Any] = {"name": self.name, "steps": steps}
        if self.queue:
            body["queue"] = self.queue
        if self.deadline:
            body["deadlineSeconds"] = int(self.deadline)
        if self.max_running is not None:
            body["maxRunning"] = self.max_running
        return body

    def submit(self) -> Workflow:
        self.view = client().submit_workflow(self.request(), traceparent=new_traceparent())
        self.id = self.view["id"]
        return self

    def _id(self) -> str:
        if self.id is None:
            raise RuntimeError(f"workflow {self.name} is not submitted yet (it is when its `with` block ends)")
        return self.id

    def wait(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits for the workflow's end; returns its view (phase and each step's phase)."""
        self.view = client().wait_workflow(self._id(), timeout)
        return self.view

    def result(self, step: StepRef[T], timeout: Optional[float] = None) -> T:
        """The results of a step once the workflow ended: a map step's list (`[]` for no items),
        another step's value (the list of its tasks' values when it has several). A failed step
        raises `TaskFailed` of its first failed task, with its remote traceback."""
        view = self.view if self.view and self.view.get("phase") not in (None, "Running") else self.wait(timeout)
        s: Dict[str, Any] = next((x for x in view["steps"] if x["name"] == step.name), {})
        if s.get("phase") == "Failed" and s.get("jobId"):
            failed = next(iter(client().iter_tasks(s["jobId"], state="Failed")), None)
            if failed is not None:
                get(JobRef({"id": s["jobId"]}, int(failed["index"])))  # raises TaskFailed with the task's remote traceback
        return cast(T, step_results(client(), view, step.name, step.is_map))

    def cancel(self) -> None:
        client().cancel_workflow(self._id())

    def retry(self) -> Workflow:
        """Re-runs this finished run from its failure: see `batchapi.retry`."""
        return retry(self)

    def register(self, name: str, parameters: Optional[Mapping[str, Any]] = None, description: Optional[str] = None) -> Dict[str, Any]:
        """Registers this workflow (built without `with`, which would submit it) as workflow
        template `name`, a new version when it changed; `parameters`: name -> None (required), a
        default string, or `{"default", "description", "pattern"}`. Place them with
        `batchapi.param(name)`; run with `batchapi.run_template`. See `batchapi.templates`."""
        from .templates import register_workflow
        return register_workflow(self, name, parameters, description)


def retry(run: Union[str, Workflow]) -> Workflow:
    """Re-run from failure: a new run of a finished run that did not succeed (a `Workflow` or its
    id; live or archived) that runs its failed, cancelled and skipped steps and every step after
    them, and reuses the other steps' results (their step shows `cached` with the original job).
    Returns the new run (`wf.wait()`, `wf.result(step)` with the first run's step references).
    Raises `WorkflowNotRetryable` (code `workflow_not_retryable`) for a run still running or one
    that succeeded; `NotFound` for an unknown id."""
    run_id = run._id() if isinstance(run, Workflow) else run
    view = client().retry_workflow(run_id, traceparent=new_traceparent())
    wf = Workflow(str(view.get("name", "workflow")))
    wf.id, wf.view = str(view["id"]), view
    return wf


def workflow(name: str, queue: Optional[str] = None, deadline: Optional[float] = None, max_running: Optional[int] = None) -> Workflow:
    """`with batchapi.workflow("nightly", max_running=4) as wf: ...` — see `Workflow`. `max_running`:
    most steps running at once (default unlimited)."""
    return Workflow(name, queue, deadline, max_running)
