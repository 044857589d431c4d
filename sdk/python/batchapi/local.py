"""Local mode: `batchapi.init(local=True)` (or `BATCH_LOCAL=1`) runs tasks, maps and workflows on
this machine, without a cluster — for unit tests of pipelines and for trying code before it
goes to the fleet.

`LocalClient` answers the calls the SDK makes of the API (submit, get, results, tasks, logs,
cancel, workflows) itself. Each task is a child process of the same runner the nodes use
(`python -m batchapi.run`, with `sys.executable` when the task did not name a `python`), so
the semantics are the cluster's: arguments and results are JSON, a result that is not JSON
(NaN, inf, an object) fails the task and is never retried, an exception fails the attempt
with its traceback in stderr (and `TaskFailed.traceback`), `retries` with doubling `backoff`,
`timeout` kills the attempt. Workflows follow the cluster's rules: `when` success / failure /
always, a map over a step's results, inputs in map order, a map over nothing succeeding with
`[]`. What a local run does not do: resources, queues, priorities, selectors, images and
gangs are accepted and ignored (every task may run; at most `workers` at once), nothing
outlives the process, and `why` has nothing to explain.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Iterator, List, Optional, Set

from ._steps import step_results
from .client import TERMINAL, Client
from .errors import BatchError, Conflict, NotFound, TaskFailed, WaitTimeout

#: Where `python` (the task option) defaults on a node; locally that means this interpreter.
NODE_DEFAULT_PYTHON = "python3"


class _Job:
    def __init__(self, view: Dict[str, Any], body: Dict[str, Any], items: Optional[List[Any]]):
        self.view = view
        self.body = body
        self.items = items
        self.results: Dict[int, Any] = {}
        #: one row per attempt: index, attempt, state, exitCode, reason, startedAt, finishedAt
        self.attempts: List[Dict[str, Any]] = []
        self.procs: Set[subprocess.Popen[bytes]] = set()
        self.cancelled = False
        #: tasks cancelled one by one (`cancel_task`), tasks ended, and the process each task runs now
        self.cancelled_tasks: Set[int] = set()
        self.ended: Set[int] = set()
        self.running: Dict[int, "subprocess.Popen[bytes]"] = {}
        self.done = threading.Event()
        #: at most `maxRunning` of its tasks at once
        self.slots = threading.Semaphore(int(body["maxRunning"])) if body.get("maxRunning") else None


class LocalClient(Client):
    """The API, answered in this process; tasks run as child processes, at most `workers` at once
    (default: the CPU count). Files (logs, results) live in `workdir` (default a temporary
    directory), removed by `close()`. A call a local run cannot answer (listing jobs, usage,
    resubmitting, schedules) raises `BatchError` with code `local_mode`."""

    def __init__(self, workers: Optional[int] = None, workdir: Optional[str] = None):
        # no super().__init__: there is no API to reach
        self.api = "local"
        self.token = ""
        self.retries = 0
        self.timeout = 0.0
        self.workers = workers or os.cpu_count() or 2
        self._own_dir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="batchapi-local-")
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="batchapi-task")
        self._lock = threading.Condition()
        self._jobs: Dict[str, _Job] = {}
        self._workflows: Dict[str, Dict[str, Any]] = {}
        self._working_dirs: Dict[str, str] = {}

    def request(self, method: str, path: str, body: Any = None, headers: Optional[Dict[str, str]] = None,
                traceparent: Optional[str] = None, parse: bool = True, deadline: Optional[float] = None) -> "tuple[int, Any, Dict[str, str]]":
        raise BatchError("local_mode", f"{method} {path.split('?')[0]} has no local answer: it needs a cluster (batchapi.init(local=False))")

    def has_working_dir(self, digest: str) -> bool:
        return digest in self._working_dirs

    def upload_working_dir(self, digest: str, gz: bytes) -> bool:
        """Unpacks the package here, read-only, as a node would: the tasks of jobs naming it run in it."""
        import io
        import tarfile
        dest = os.path.join(self.workdir, "working-dirs", digest.split(":", 1)[-1])
        with tarfile.open(fileobj=io.BytesIO(gz), mode="r:gz") as t:
            t.extractall(dest)  # noqa: S202 - a package this process just packed (regular files, relative paths)
        for here, dirs, files in os.walk(dest, topdown=False):
            for name in files:
                path = os.path.join(here, name)
                os.chmod(path, 0o555 if os.stat(path).st_mode & 0o111 else 0o444)
            os.chmod(here, 0o555)
        self._working_dirs[digest] = dest
        return True

    def close(self) -> None:
        """Cancels what runs and removes the local files."""
        for job_id in list(self._jobs):
            self.cancel_job(job_id)
        self._pool.shutdown(wait=True)
        if self._own_dir:
            import shutil
            for dest in self._working_dirs.values():  # read-only: writable again to be removed
                for here, _dirs, _files in os.walk(dest):
                    os.chmod(here, 0o755)
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- jobs --------------------------------------------------------------------------------

    def submit_job(self, body: Dict[str, Any], idempotency_key: Optional[str] = None, traceparent: Optional[str] = None,
                   job_id: Optional[str] = None, labels: Optional[Dict[str, str]] = None) -> Dict[str, Any]:
        _refuse_python_env(body)
        items = body.get("items")
        tasks = len(items) if items is not None else int(body.get("tasks") or 1)
        job_id = job_id or f"local-{uuid.uuid4().hex[:12]}"
        view = {"id": job_id, "name": body.get("name", "task"), "phase": "Running", "tasks": tasks, "queue": body.get("queue", "default"),
                "labels": {**(body.get("labels") or {}), **(labels or {})}, "createdAt": _now_iso(),
                "counts": {"succeeded": 0, "failed": 0, "cancelled": 0}}
        job = _Job(view, body, items)
        with self._lock:
            self._jobs[job_id] = job
        if tasks == 0:
            self._finish(job)
        for index in range(tasks):
            self._pool.submit(self._run_task, job, index)
        return dict(view)

    def _job(self, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFound("not_found", f"no job {job_id} in this local run", 404, id=job_id)
        return job

    def get_job(self, job_id: str, deadline: Optional[float] = None) -> Dict[str, Any]:
        """The job's view (in memory: `deadline` is never reached)."""
        with self._lock:
            return dict(self._job(job_id).view)

    def cancel_job(self, job_id: str) -> Dict[str, Any]:
        job = self._job(job_id)
        with self._lock:
            job.cancelled = True
            procs = list(job.procs)
        for p in procs:
            p.kill()
        return self.get_job(job_id)

    def cancel_task(self, job_id: str, index: int) -> Dict[str, Any]:
        job = self._job(job_id)
        if not 0 <= index < int(job.view["tasks"]):
            raise NotFound("not_found", f"task {index} does not exist in job {job_id} (it has {job.view['tasks']})", 404, field="index", id=job_id)
        with self._lock:
            if index not in job.cancelled_tasks and (job.view["phase"] in TERMINAL or index in job.ended):
                raise Conflict("conflict", f"task {index} of job {job_id} already ended", 409, field="index", id=job_id)
            job.cancelled_tasks.add(index)
            p = job.running.get(index)
        if p is not None:
            p.kill()
        return self.get_job(job_id)

    def results(self, job_id: str, deadline: Optional[float] = None) -> List[Dict[str, Any]]:
        """The tasks' results so far (in memory: `deadline` is never reached)."""
        job = self._job(job_id)
        with self._lock:
            return [{"index": i, "value": v} for i, v in sorted(job.results.items())]

    def wait_job(self, job_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        if not self._job(job_id).done.wait(timeout):
            raise WaitTimeout(f"job {job_id} did not end within {timeout} s", f"job {job_id}", timeout, str(self._job(job_id).view["phase"]))
        return self.get_job(job_id)

    def list_tasks(self, job_id: str, *, state: Optional[str] = None, limit: Optional[int] = None, page_token: Optional[str] = None
                   ) -> Dict[str, Any]:
        return {"tasks": list(self.iter_tasks(job_id, state=state))}

    def iter_tasks(self, job_id: str, *, state: Optional[str] = None) -> Iterator[Dict[str, Any]]:
        job = self._job(job_id)
        with self._lock:
            rows = sorted((dict(a) for a in job.attempts), key=lambda a: (a["index"], a["attempt"]))
        return iter([r for r in rows if state is None or r["state"] == state])

    def logs(self, job_id: str, index: int = 0, *, stream: str = "stdout", attempt: Optional[int] = None) -> str:
        job = self._job(job_id)
        with self._lock:
            tried = [a["attempt"] for a in job.attempts if a["index"] == index]
        if not tried:
            raise NotFound("not_found", f"task {index} of job {job_id} has not run yet", 404, id=job_id)
        path = self._log_path(job_id, index, attempt or max(tried), stream)
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def why(self, job_id: str) -> Dict[str, Any]:
        self._job(job_id)
        return {"jobId": job_id, "local": True, "summary": "a local run places nothing: every task runs, at most `workers` at once"}

    def _log_path(self, job_id: str, index: int, attempt: int, stream: str) -> str:
        return os.path.join(self.workdir, job_id, f"{index}.{attempt}.{stream}")

    def _run_task(self, job: _Job, index: int) -> None:
        body = job.body
        retry = body.get("retry") or {}
        attempts = int(retry.get("maxAttempts", 1))
        backoff = float(retry.get("backoffSeconds", 1))
        fail_fast = set(retry.get("failFastOnExitCodes") or [])
        timeout = body.get("timeoutSeconds")
        command = list(body["command"])
        if command and command[0] == NODE_DEFAULT_PYTHON:
            command[0] = sys.executable
        os.makedirs(os.path.join(self.workdir, job.view["id"]), exist_ok=True)
        state = "Failed"

        def cancelled() -> bool:
            return job.cancelled or index in job.cancelled_tasks

        for attempt in range(1, attempts + 1):
            if cancelled():
                state = "Cancelled"
                break
            result_path = os.path.join(self.workdir, job.view["id"], f"{index}.{attempt}.result")
            env = {**os.environ, **{k: str(v) for k, v in (body.get("env") or {}).items()}, "BATCH_JOB_ID": job.view["id"],
                   "BATCH_TASK_INDEX": str(index), "BATCH_TASK_COUNT": str(job.view["tasks"]), "BATCH_ATTEMPT": str(attempt),
                   "BATCH_RESULT_PATH": result_path}
            env.pop("BATCH_LOCAL", None)
            if job.items is not None:
                env["BATCH_MAP_ITEM"] = json.dumps(job.items[index])
            if job.slots:
                job.slots.acquire()
            try:
                row: Dict[str, Any] = {"index": index, "attempt": attempt, "state": "Running", "node": "local", "startedAt": _now_iso()}
                with self._lock:
                    job.attempts.append(row)
                code, reason = self._attempt(job, command, env, index, attempt, timeout)
            finally:
                if job.slots:
                    job.slots.release()
            succeeded = code == 0 and not cancelled()
            value: Any = None
            if succeeded and os.path.exists(result_path):
                with open(result_path, encoding="utf-8") as f:
                    value = json.loads(f.read())
            with self._lock:
                row.update({"state": "Succeeded" if succeeded else ("Cancelled" if cancelled() else "Failed"), "exitCode": code,
                            "finishedAt": _now_iso(), **({} if succeeded or reason is None else {"reason": reason})})
                if succeeded and os.path.exists(result_path):
                    job.results[index] = value
            if succeeded:
                state = "Succeeded"
                break
            if cancelled():
                state = "Cancelled"
                break
            if code in fail_fast or attempt == attempts:
                break
            time.sleep(backoff * 2 ** (attempt - 1))
        with self._lock:
            job.ended.add(index)
            job.view["counts"][{"Succeeded": "succeeded", "Failed": "failed", "Cancelled": "cancelled"}[state]] += 1
            ended = sum(job.view["counts"].values())
        if ended == job.view["tasks"]:
            self._finish(job)

    def _attempt(self, job: _Job, command: List[str], env: Dict[str, str], index: int, attempt: int, timeout: Any) -> "tuple[int, Optional[str]]":
        jid = job.view["id"]
        with open(self._log_path(jid, index, attempt, "stdout"), "wb") as out, open(self._log_path(jid, index, attempt, "stderr"), "wb") as err:
            working_dir = (job.body.get("workingDir") or {}).get("digest")
            cwd = self._working_dirs[working_dir] if working_dir in self._working_dirs else os.getcwd()
            p = subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=cwd)
            with self._lock:
                job.procs.add(p)
                job.running[index] = p
            if index in job.cancelled_tasks:  # cancelled while it started
                p.kill()
            try:
                code = p.wait(timeout=float(timeout) if timeout else None)
                reason = None if code == 0 else "Error"
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                code, reason = -9, "DeadlineExceeded"
            finally:
                with self._lock:
                    job.procs.discard(p)
                    job.running.pop(index, None)
        return code, reason

    def _finish(self, job: _Job) -> None:
        with self._lock:
            c = job.view["counts"]
            # as the API: a cancelled job is Cancelled; else one failed task fails it; tasks cancelled one by one make it Cancelled
            phase = ("Cancelled" if job.cancelled and c["succeeded"] < job.view["tasks"]
                     else "Failed" if c["failed"] else "Cancelled" if c["cancelled"] else "Succeeded")
            job.view["phase"] = phase
            job.view["finishedAt"] = _now_iso()
            if phase == "Failed":
                job.view["reason"] = {"code": "TaskFailed", "message": f"{c['failed']} of {job.view['tasks']} tasks failed"}
            self._lock.notify_all()
        job.done.set()

    # -- workflows ---------------------------------------------------------------------------

    def submit_workflow(self, body: Dict[str, Any], idempotency_key: Optional[str] = None, traceparent: Optional[str] = None) -> Dict[str, Any]:
        for step in body["steps"]:
            _refuse_python_env(step.get("job") or {})
        wf_id = f"wf-local-{uuid.uuid4().hex[:12]}"
        steps = [{"name": s["name"], "phase": "Pending"} for s in body["steps"]]
        view = {"id": wf_id, "name": body["name"], "phase": "Running", "steps": steps, "createdAt": _now_iso()}
        with self._lock:
            self._workflows[wf_id] = view
        threading.Thread(target=self._drive, args=(wf_id, body), name=f"batchapi-{wf_id}", daemon=True).start()
        return self.get_workflow(wf_id)

    def get_workflow(self, wf_id: str) -> Dict[str, Any]:
        with self._lock:
            view = self._workflows.get(wf_id)
            if view is None:
                raise NotFound("not_found", f"no workflow {wf_id} in this local run", 404, id=wf_id)
            return {**view, "steps": [dict(s) for s in view["steps"]]}

    def cancel_workflow(self, wf_id: str) -> Dict[str, Any]:
        with self._lock:
            self._workflows[wf_id]["cancelRequested"] = True
            jobs = [s.get("jobId") for s in self._workflows[wf_id]["steps"] if s.get("jobId")]
        for j in jobs:
            self.cancel_job(j)
        return self.get_workflow(wf_id)

    def wait_workflow(self, wf_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while self._workflows[wf_id]["phase"] not in TERMINAL:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise WaitTimeout(f"workflow {wf_id} did not end within {timeout} s", f"workflow {wf_id}", timeout,
                                      str(self._workflows[wf_id]["phase"]))
                self._lock.wait(left)
        return self.get_workflow(wf_id)

    def _drive(self, wf_id: str, body: Dict[str, Any]) -> None:
        """Runs the steps as the cluster's controller decides them (`advance` in libs/workflows)."""
        specs = {s["name"]: s for s in body["steps"]}
        view = self._workflows[wf_id]
        by_name = {s["name"]: s for s in view["steps"]}
        while True:
            with self._lock:
                cancelling = bool(view.get("cancelRequested"))
                for s in view["steps"]:
                    if s["phase"] == "Running" and s.get("jobId"):
                        phase = self._jobs[s["jobId"]].view["phase"]
                        if phase in TERMINAL:
                            s["phase"] = "Failed" if phase == "Rejected" else phase
                ready: List[str] = []
                limit = body.get("maxRunning")
                running = sum(1 for s in view["steps"] if s["phase"] == "Running")
                for s in view["steps"]:
                    if s["phase"] != "Pending":
                        continue
                    if cancelling:
                        s["phase"] = "Cancelled"
                        continue
                    spec = specs[s["name"]]
                    deps = [by_name[d]["phase"] for d in dict.fromkeys([*spec.get("dependsOn", []), *spec.get("inputs", [])])]
                    done = all(p in _STEP_TERMINAL for p in deps)
                    failed = any(p in ("Failed", "Cancelled") for p in deps)
                    when = specs[s["name"]].get("when", "success")
                    if when == "failure":
                        decision = "run" if failed else ("skip" if done else "wait")
                    elif when == "always":
                        decision = "run" if done else "wait"
                    else:
                        decision = "run" if all(p == "Succeeded" for p in deps) else ("skip" if any(p in _STEP_TERMINAL and p != "Succeeded" for p in deps) else "wait")
                    if decision == "skip":
                        s["phase"] = "Skipped"
                    elif decision == "run" and (not limit or running < limit):  # at the workflow's limit: waits, in definition order
                        s["phase"] = "Running"
                        running += 1
                        ready.append(s["name"])
                if all(s["phase"] in _STEP_TERMINAL for s in view["steps"]):
                    failed_success = any(specs[s["name"]].get("when", "success") == "success" and s["phase"] in ("Failed", "Cancelled")
                                         for s in view["steps"])
                    view["phase"] = "Cancelled" if cancelling else ("Failed" if failed_success else "Succeeded")
                    view["finishedAt"] = _now_iso()
                    self._lock.notify_all()
                    return
            for name in ready:
                self._start_step(wf_id, specs, name)
            with self._lock:
                self._lock.wait(0.05)

    def _start_step(self, wf_id: str, specs: Dict[str, Dict[str, Any]], name: str) -> None:
        spec = specs[name]
        job = dict(spec["job"])
        job["name"] = name
        env = dict(job.get("env") or {})
        if spec.get("inputs"):
            # the node's runner reads its inputs through the API; locally they are handed over as values, by step name
            wf = self.get_workflow(wf_id)
            values = {}
            for i in spec["inputs"]:
                try:
                    values[i] = step_results(self, wf, i, bool(specs[i].get("map")))
                except TaskFailed:
                    pass  # a step that did not succeed has no output: the task fails when it reads it, as on a cluster
            path = os.path.join(self.workdir, f"{wf_id}.{name}.inputs.json")
            with open(path, "w", encoding="utf-8") as f:
                json.dump(values, f)
            env["BATCH_PY_INPUTS_FILE"] = path
            env.pop("BATCH_API", None)
        job["env"] = env
        m = spec.get("map")
        if m and "fromStep" in m:
            source = next(s for s in specs.values() if s["name"] == m["fromStep"])
            wf = self.get_workflow(wf_id)
            items = step_results(self, wf, m["fromStep"], bool(source.get("map")))
            items = items if isinstance(items, list) else [items]
            if not items:
                with self._lock:
                    next(s for s in self._workflows[wf_id]["steps"] if s["name"] == name)["phase"] = "Succeeded"
                    self._lock.notify_all()
                return
            job["items"] = items
        elif m:
            job["items"] = m["items"]
        job_id = f"{wf_id.replace('wf-', '')}-s{list(specs).index(name)}"
        self.submit_job(job, job_id=job_id, labels={"batch.workflow": wf_id})
        with self._lock:
            next(s for s in self._workflows[wf_id]["steps"] if s["name"] == name)["jobId"] = job_id


_STEP_TERMINAL = {"Succeeded", "Failed", "Cancelled", "Skipped"}


def _now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"


def _refuse_python_env(body: Dict[str, Any]) -> None:
    """Local mode runs every task with this interpreter: a job's `requirements=` (the node's venv)
    would be silently ignored, so it is refused instead."""
    if body.get("python"):
        raise BatchError("local_mode", "requirements= builds a virtual environment on a cluster's node; local mode runs tasks with this "
                         "interpreter: install them here (pip install ...) and leave requirements= out of local runs, or run on a cluster",
                         field="requirements")
