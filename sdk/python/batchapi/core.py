"""Tasks, references, waiting and workflows.

Packaging model: a task runs `python3 -m batchapi.run` on a node, which imports the function by
module and name and calls it with JSON arguments — the SDK ships the call, not the source. The
function's module (and this SDK) must be importable on the node: the same checkout or a shared
filesystem (the SDK passes the submitter's module root and `PYTHONPATH` as the task's
`PYTHONPATH`), or an image with the code installed (`image=` on the Kubernetes backend).
"""
import functools
import json
import os
import sys
import threading
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .client import Client, new_traceparent
from .errors import TaskFailed

_default: Optional[Client] = None
_lock = threading.Lock()


def client() -> Client:
    """The client every task and `get` use by default (from the environment; see `Client`)."""
    global _default
    with _lock:
        if _default is None:
            _default = Client()
        return _default


def configure(api: Optional[str] = None, token: Optional[str] = None, **kw: Any) -> Client:
    """Sets the default client explicitly."""
    global _default
    with _lock:
        _default = Client(api, token, **kw)
        return _default


class JobRef:
    """A submitted job (one task, or an array job as a whole)."""

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
        client().cancel_job(self.job_id)

    def result(self, timeout: Optional[float] = None) -> Any:
        return get(self, timeout)


def _module_of(fn: Callable[..., Any]) -> Tuple[str, Optional[str]]:
    """The importable module name of `fn` and the directory that must be on the task's path."""
    mod = sys.modules.get(fn.__module__)
    name = fn.__module__
    path = getattr(mod, "__file__", None)
    if name == "__main__" and path:
        name = os.path.splitext(os.path.basename(path))[0]
    if not path:
        return name, None
    root = os.path.dirname(os.path.abspath(path))
    for _ in range(name.count(".")):
        root = os.path.dirname(root)
    return name, root


def _python_path(root: Optional[str]) -> str:
    sdk_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parts = [p for p in [root, sdk_root, os.environ.get("PYTHONPATH")] if p]
    return os.pathsep.join(dict.fromkeys(parts))


class Task:
    """A function that runs as a BatchAPI task. Made by `@batchapi.task(...)`."""

    def __init__(self, fn: Callable[..., Any], options: Dict[str, Any]):
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.opts = options

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Calls the function here, as a plain function."""
        return self.fn(*args, **kwargs)

    def options(self, **overrides: Any) -> "Task":
        """The same task with other options, e.g. `train.options(queue="ml-research")`."""
        return Task(self.fn, {**self.opts, **overrides})

    def job_body(self, args: Sequence[Any] = (), kwargs: Optional[Dict[str, Any]] = None, items: Optional[List[Any]] = None,
                 inputs: Optional[List[str]] = None) -> Dict[str, Any]:
        """The job request of a call: the runner command, its env, resources and policies."""
        module, root = _module_of(self.fn)
        o = self.opts
        env = {
            "BATCH_PY_CALL": f"{module}:{self.fn.__qualname__}",
            "BATCH_PY_ARGS": json.dumps({"args": list(args), "kwargs": kwargs or {}}),
            "PYTHONPATH": _python_path(root),
            **{k: str(v) for k, v in (o.get("env") or {}).items()},
        }
        if inputs:
            c = client()
            env.update({"BATCH_PY_INPUTS": json.dumps(inputs), "BATCH_API": c.api, "BATCH_TOKEN": c.token})
        resources: Dict[str, Any] = {"cpu": str(o.get("cpus", 1)), "memory": str(o.get("memory", "256Mi"))}
        if o.get("gpus"):
            resources["gpu"] = o["gpus"]
        body: Dict[str, Any] = {"name": o.get("name") or self.fn.__name__.replace("_", "-"), "command": [o.get("python", "python3"), "-m", "batchapi.run"],
                                "env": env, "resources": resources}
        for key, api_key in (("queue", "queue"), ("priority", "priority"), ("timeout", "timeoutSeconds"), ("image", "image"), ("gang", "gang")):
            if o.get(key) is not None:
                body[api_key] = o[key]
        if o.get("retries"):
            body["retry"] = {"maxAttempts": int(o["retries"]) + 1, "backoffSeconds": float(o.get("backoff", 1))}
        if items is not None:
            body["items"] = items
        elif o.get("tasks"):
            body["tasks"] = int(o["tasks"])
        return body

    def submit(self, *args: Any, **kwargs: Any) -> JobRef:
        """Submits one call; returns at once with a reference (`batchapi.get(ref)` waits)."""
        return JobRef(client().submit_job(self.job_body(args, kwargs), traceparent=new_traceparent()), 0)

    def map(self, items: Sequence[Any], *args: Any, **kwargs: Any) -> List[JobRef]:
        """One array job: task i calls the function with `items[i]` (then `args`); one reference per item."""
        items = list(items)
        job = client().submit_job(self.job_body(args, kwargs, items=items), traceparent=new_traceparent())
        return [JobRef(job, i) for i in range(len(items))]


def task(fn: Optional[Callable[..., Any]] = None, **options: Any) -> Any:
    """Makes a function a task: `@batchapi.task(cpus=4, memory="16Gi", gpus=1, retries=3)`.

    Options: `cpus` (default 1), `memory` (default "256Mi"), `gpus` (default 0; a fraction shares
    one device), `retries` (extra attempts on failure, default 0) with `backoff` seconds (default 1),
    `timeout` seconds per attempt, `queue`, `priority`, `image` (Kubernetes backend), `gang`, `env`,
    `name`, `python` (the interpreter on the node, default "python3").
    """
    if fn is not None and callable(fn):
        return Task(fn, {})
    return lambda f: Task(f, options)


Ref = Union[JobRef, "Workflow", Sequence[JobRef]]


def get(ref: Any, timeout: Optional[float] = None) -> Any:
    """Waits and returns the result (or a list of results for a list of references); raises
    `TaskFailed` with the task's reason and exit code if it did not succeed."""
    if isinstance(ref, (list, tuple)):
        views: Dict[str, Dict[str, Any]] = {}
        results: Dict[str, Dict[int, Any]] = {}
        out = []
        for r in ref:
            if r.job_id not in views:
                views[r.job_id] = client().wait_job(r.job_id, timeout)
                results[r.job_id] = {x["index"]: x["value"] for x in client().results(r.job_id)}
            out.append(_value(r, views[r.job_id], results[r.job_id]))
        return out
    if isinstance(ref, Workflow):
        return ref.wait(timeout)
    view = client().wait_job(ref.job_id, timeout)
    return _value(ref, view, {x["index"]: x["value"] for x in client().results(ref.job_id)})


def _value(ref: JobRef, view: Dict[str, Any], results: Dict[int, Any]) -> Any:
    """The runner writes a result exactly when the function returned, so a result means success."""
    index = ref.index or 0
    if index in results:
        return results[index]
    if view["phase"] == "Succeeded":
        return None
    reason = view.get("reason") or {}
    raise TaskFailed(ref.job_id, ref.index, view["phase"], reason.get("code"), None,
                     reason.get("message") or f"task {index} returned no result (see `batch logs {ref.job_id} --task {index} --stderr`)")


class StepRef:
    """A step of a workflow being built."""

    def __init__(self, wf: "Workflow", name: str):
        self.wf = wf
        self.name = name

    def __repr__(self) -> str:
        return f"StepRef({self.name})"


class Workflow:
    """A DAG of steps, submitted as one workflow when the `with` block ends.

        with batchapi.workflow("nightly") as wf:
            shards = wf.step(list_shards)
            parts = wf.map(process, from_step=shards)          # fan-out over shards' result
            total = wf.step(reduce, inputs=[parts])            # fan-in: gets parts' results
            wf.step(cleanup, after=[total], when="failure")
        print(wf.result(total))
    """

    def __init__(self, name: str, queue: Optional[str] = None, deadline: Optional[float] = None):
        self.name = name
        self.queue = queue
        self.deadline = deadline
        self.steps: List[Dict[str, Any]] = []
        self.id: Optional[str] = None
        self.view: Optional[Dict[str, Any]] = None

    def __enter__(self) -> "Workflow":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            self.submit()

    def _add(self, t: Task, body: Dict[str, Any], name: Optional[str], after: Sequence[StepRef], when: str, extra: Dict[str, Any]) -> StepRef:
        step_name = name or f"{t.fn.__name__.replace('_', '-')}-{len(self.steps)}"
        body.pop("name", None)
        step = {"name": step_name, "job": body, "dependsOn": [a.name for a in after], "when": when, **extra}
        self.steps.append(step)
        return StepRef(self, step_name)

    def step(self, t: Task, *args: Any, after: Sequence[StepRef] = (), when: str = "success", inputs: Sequence[StepRef] = (),
             name: Optional[str] = None, **kwargs: Any) -> StepRef:
        """A step that calls `t(*args, **kwargs)` after `after` (and `inputs`, whose results it gets
        as extra positional arguments); `when`: "success" (default), "failure" or "always"."""
        deps = list(after) + [i for i in inputs if i not in after]
        return self._add(t, t.job_body(args, kwargs, inputs=[i.name for i in inputs] or None), name, deps, when, {})

    def map(self, t: Task, items: Optional[Sequence[Any]] = None, from_step: Optional[StepRef] = None, *args: Any,
            after: Sequence[StepRef] = (), name: Optional[str] = None, **kwargs: Any) -> StepRef:
        """A fan-out step: one task per item of `items`, or of `from_step`'s result."""
        deps = list(after) + ([from_step] if from_step is not None and from_step not in after else [])
        m = {"items": list(items)} if items is not None else {"fromStep": from_step.name}
        return self._add(t, t.job_body(args, kwargs), name, deps, "success", {"map": m})

    def submit(self) -> "Workflow":
        body: Dict[str, Any] = {"name": self.name, "steps": self.steps}
        if self.queue:
            body["queue"] = self.queue
        if self.deadline:
            body["deadlineSeconds"] = int(self.deadline)
        self.view = client().submit_workflow(body, traceparent=new_traceparent())
        self.id = self.view["id"]
        return self

    def wait(self, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits for the workflow's end; returns its view (phase and each step's phase)."""
        self.view = client().wait_workflow(self.id, timeout)
        return self.view

    def result(self, step: StepRef, timeout: Optional[float] = None) -> Any:
        """The results of a step once the workflow ended: the value of a one-task step, else the list."""
        view = self.view if self.view and self.view.get("phase") not in (None, "Running") else self.wait(timeout)
        s = next(x for x in view["steps"] if x["name"] == step.name)
        if s["phase"] != "Succeeded" or not s.get("jobId"):
            raise TaskFailed(s.get("jobId") or "-", None, s["phase"], message=f"step {step.name} ended {s['phase']}")
        values = [r["value"] for r in sorted(client().results(s["jobId"]), key=lambda r: r["index"])]
        job = client().get_job(s["jobId"])
        return values[0] if job["tasks"] == 1 and values else values

    def cancel(self) -> None:
        client().cancel_workflow(self.id)


def workflow(name: str, queue: Optional[str] = None, deadline: Optional[float] = None) -> Workflow:
    """`with batchapi.workflow("nightly") as wf: ...` — see `Workflow`."""
    return Workflow(name, queue, deadline)
