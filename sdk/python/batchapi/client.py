"""The HTTP client: keep-alive connections, typed errors, retries of 429/503 honouring
Retry-After, a W3C `traceparent` on every call, and waiting on the job event stream."""
import json
import os
import random
import secrets
import threading
import time
import http.client
from datetime import datetime, timezone
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union
from urllib.parse import urlencode, urlsplit, quote

from .errors import BatchError, NotFound, RateLimited, Unavailable, WaitTimeout, error_from

TERMINAL = {"Succeeded", "Failed", "Cancelled", "Rejected"}


def _settings_file() -> str:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "batchapi", "config.json")


def _saved_context() -> Dict[str, str]:
    """The `batch` CLI's selected context (`batch dev` selects `dev`; `BATCH_CONTEXT` picks another), or {}."""
    try:
        with open(_settings_file()) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(saved, dict):
        return {}
    if "contexts" not in saved:
        return saved  # the file as `batch dev` wrote it before contexts: {api, token}
    name = os.environ.get("BATCH_CONTEXT") or saved.get("currentContext")
    ctx = (saved.get("contexts") or {}).get(name) if name else None
    return ctx if isinstance(ctx, dict) else {}


def new_traceparent(trace_id: Optional[str] = None) -> str:
    """A W3C trace context header: a new span in `trace_id` (a new trace when absent), sampled."""
    return f"00-{trace_id or secrets.token_hex(16)}-{secrets.token_hex(8)}-01"


class Client:
    """A connection to the BatchAPI admission service.

    `api` and `token` default to `BATCH_API` and `BATCH_TOKEN`, else the selected context of the
    `batch` CLI (`$XDG_CONFIG_HOME/batchapi/config.json`; `batch dev` writes and selects `dev`).
    `retries` bounds the retries of 429 and 503 (default 5); `timeout` is per request, in
    seconds (default 30).
    """

    def __init__(self, api: Optional[str] = None, token: Optional[str] = None, retries: int = 5, timeout: float = 30.0):
        saved: Dict[str, str] = {}
        if not (api or os.environ.get("BATCH_API")) or not (token or os.environ.get("BATCH_TOKEN")):
            saved = _saved_context()
        self.api = (api or os.environ.get("BATCH_API") or saved.get("api") or "").rstrip("/")
        self.token = token or os.environ.get("BATCH_TOKEN") or saved.get("token") or ""
        if not self.api or not self.token:
            raise ValueError("no API: set BATCH_API and BATCH_TOKEN, pass api= and token=, or start `batch dev`")
        u = urlsplit(self.api)
        self._host, self._port, self._https = u.hostname or "127.0.0.1", u.port, u.scheme == "https"
        self.retries = retries
        self.timeout = timeout
        self._local = threading.local()

    # -- transport -------------------------------------------------------------------------

    def _conn(self) -> http.client.HTTPConnection:
        c = getattr(self._local, "conn", None)
        if c is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            c = cls(self._host, self._port, timeout=self.timeout)
            self._local.conn = c
        return c

    def _drop(self) -> None:
        c = getattr(self._local, "conn", None)
        if c is not None:
            c.close()
        self._local.conn = None

    def request(self, method: str, path: str, body: Any = None, headers: Optional[Dict[str, str]] = None,
                traceparent: Optional[str] = None, parse: bool = True, deadline: Optional[float] = None) -> Tuple[int, Any, Dict[str, str]]:
        """One call with retries of 429/503 (Retry-After, else backoff with jitter) and of a
        dropped keep-alive connection; raises the typed error of any other failure. A success's
        body is parsed as JSON, or given as text with `parse=False`. With `deadline` (monotonic),
        each read waits no longer than the time left, and nothing is retried past it: the last
        failure is raised (a read cut by the deadline raises `TimeoutError`)."""
        raw_body = isinstance(body, (bytes, bytearray))
        data = None if body is None else bytes(body) if raw_body else json.dumps(body).encode()
        h = {"authorization": f"Bearer {self.token}", "accept": "application/json", "traceparent": traceparent or new_traceparent()}
        if data is not None:
            h["content-type"] = "application/gzip" if raw_body else "application/json"
        h.update(headers or {})
        attempt = 0
        while True:
            try:
                conn = self._conn()
                if deadline is not None:
                    _set_timeout(conn, _read_timeout(self.timeout, deadline))
                try:
                    conn.request(method, path, body=data, headers=h)
                    res = conn.getresponse()
                    raw = res.read()
                finally:
                    if deadline is not None:
                        _set_timeout(conn, self.timeout)  # the shared connection's own bound, for the next call
                status = res.status
                resp_headers = {k.lower(): v for k, v in res.getheaders()}
            except (ConnectionError, http.client.HTTPException, OSError):
                self._drop()
                if attempt >= self.retries or _passed(deadline):
                    raise
                attempt += 1
                _sleep_within(min(5.0, 0.1 * 2 ** attempt) * (0.5 + random.random()), deadline)
                continue
            text = raw.decode("utf-8", "replace")
            if status < 400 and not parse:
                return status, text, resp_headers
            try:
                parsed = json.loads(text) if text else None
            except ValueError:
                parsed = text
            if status < 400:
                return status, parsed, resp_headers
            retry_after = _retry_after(resp_headers.get("retry-after"))
            err = error_from(status, parsed, retry_after)
            if isinstance(err, (RateLimited, Unavailable)) and attempt < self.retries and not _passed(deadline):
                attempt += 1
                _sleep_within(retry_after if retry_after is not None else min(10.0, 0.2 * 2 ** attempt) * (0.5 + random.random()), deadline)
                continue
            raise err

    # -- jobs ------------------------------------------------------------------------------

    def submit_job(self, body: Dict[str, Any], idempotency_key: Optional[str] = None, traceparent: Optional[str] = None) -> Dict[str, Any]:
        """POST /v1/jobs; a retried submit with the same key returns the same job."""
        key = idempotency_key or secrets.token_hex(16)
        return _obj(self.request("POST", "/v1/jobs", body, {"idempotency-key": key}, traceparent)[1])

    def has_working_dir(self, digest: str) -> bool:
        """Whether the caller's tenant uploaded the working dir package `digest` (`sha256:<hex>`)."""
        try:
            self.request("GET", f"/v1/blobs/working-dirs/{quote(digest)}")
            return True
        except NotFound:
            return False

    def upload_working_dir(self, digest: str, gz: bytes) -> bool:
        """PUT /v1/blobs/working-dirs/{digest}: `gz` is the gzip of the tar whose digest is `digest`
        (`batchapi.working_dir.pack`); True when stored, False when the tenant already had it."""
        return self.request("PUT", f"/v1/blobs/working-dirs/{quote(digest)}", gz)[0] == 201

    def get_job(self, job_id: str, deadline: Optional[float] = None) -> Dict[str, Any]:
        """GET /v1/jobs/{id}. With `deadline` (`time.monotonic()` seconds), the call ends by then (see `request`)."""
        return _obj(self.request("GET", f"/v1/jobs/{quote(job_id)}", deadline=deadline)[1])

    def cancel_job(self, job_id: str) -> Dict[str, Any]:
        return _obj(self.request("DELETE", f"/v1/jobs/{quote(job_id)}")[1])

    def cancel_task(self, job_id: str, index: int) -> Dict[str, Any]:
        """DELETE /v1/jobs/{id}/tasks/{index}: cancels task ``index`` alone (pending, it ends at once;
        running, it is stopped); it never runs again. Returns the job's view. Raises `ApiError`
        ``conflict`` when the job or the task already ended."""
        return _obj(self.request("DELETE", f"/v1/jobs/{quote(job_id)}/tasks/{int(index)}")[1])

    def resubmit_job(self, job_id: str, *, queue: Optional[str] = None, priority: Optional[int] = None,
                     resources: Optional[Dict[str, Union[str, float]]] = None, labels: Optional[Dict[str, str]] = None,
                     env: Optional[Dict[str, str]] = None, idempotency_key: Optional[str] = None) -> Dict[str, Any]:
        """POST /v1/jobs/{id}/resubmit: a new job with the spec of job ``job_id`` (live or finished)
        as stored, labelled ``batch.resubmitted-from`` — in ``queue`` or with ``priority`` instead,
        and ``resources``, ``labels`` and ``env`` merged over its own. A retry with the same key
        returns the same new job."""
        changes: Dict[str, Any] = {k: v for k, v in {"queue": queue, "priority": priority, "resources": resources, "labels": labels, "env": env}.items()
                                   if v is not None}
        key = idempotency_key or secrets.token_hex(16)
        return _obj(self.request("POST", f"/v1/jobs/{quote(job_id)}/resubmit", changes, {"idempotency-key": key})[1])

    def results(self, job_id: str, deadline: Optional[float] = None) -> List[Dict[str, Any]]:
        """GET /v1/jobs/{id}/results: the tasks' results so far. With `deadline`, the call ends by then (see `request`)."""
        rows: List[Dict[str, Any]] = _obj(self.request("GET", f"/v1/jobs/{quote(job_id)}/results", deadline=deadline)[1])["results"]
        return rows

    def list_jobs(self, *, state: Optional[str] = None, queue: Optional[str] = None, tenant: Optional[str] = None,
                  label_selector: Optional[str] = None, name_prefix: Optional[str] = None, workflow: Optional[str] = None,
                  submitted_since: "Optional[Union[datetime, str]]" = None, submitted_before: "Optional[Union[datetime, str]]" = None,
                  finished_since: "Optional[Union[datetime, str]]" = None, finished_before: "Optional[Union[datetime, str]]" = None,
                  sort: Optional[str] = None, limit: Optional[int] = None, page_token: Optional[str] = None) -> Dict[str, Any]:
        """GET /v1/jobs: one page of jobs, live and finished: ``{"jobs": [...], "nextPageToken": ...}``.

        ``label_selector`` is Kubernetes' syntax (``"team=ml,env!=dev,tier in (a,b),gpu,!spot"``);
        times are ``datetime`` (naive ones are taken as UTC) or RFC 3339 text; ``sort`` is
        ``submitted`` (the default, oldest first), ``finished`` (finished jobs only), or either
        with a leading ``-`` for newest first. ``limit`` is 1 to 1000 (default 50)."""
        query = {"state": state, "queue": queue, "tenant": tenant, "labelSelector": label_selector, "namePrefix": name_prefix,
                 "workflow": workflow, "submittedSince": _rfc3339(submitted_since), "submittedBefore": _rfc3339(submitted_before),
                 "finishedSince": _rfc3339(finished_since), "finishedBefore": _rfc3339(finished_before), "sort": sort, "limit": limit,
                 "pageToken": page_token}
        return _obj(self.request("GET", "/v1/jobs" + _query(query))[1])

    def iter_jobs(self, **filters: Any) -> Iterator[Dict[str, Any]]:
        """Every job ``list_jobs(**filters)`` selects, page after page."""
        token: Optional[str] = None
        while True:
            page = self.list_jobs(**filters, page_token=token)
            yield from page["jobs"]
            token = page.get("nextPageToken")
            if not token:
                return

    def list_tasks(self, job_id: str, *, state: Optional[str] = None, limit: Optional[int] = None,
                   page_token: Optional[str] = None) -> Dict[str, Any]:
        """GET /v1/jobs/{id}/tasks: one row per task attempt (index, attempt, state, node, exit
        code, reason, times), by index; ``state="Failed"`` answers "which failed, and why".
        ``limit`` is 1 to 1000 (default 100)."""
        query = {"state": state, "limit": limit, "pageToken": page_token}
        return _obj(self.request("GET", f"/v1/jobs/{quote(job_id)}/tasks" + _query(query))[1])

    def iter_tasks(self, job_id: str, *, state: Optional[str] = None) -> Iterator[Dict[str, Any]]:
        """Every task attempt ``list_tasks`` gives, page after page."""
        token: Optional[str] = None
        while True:
            page = self.list_tasks(job_id, state=state, limit=1000, page_token=token)
            yield from page["tasks"]
            token = page.get("nextPageToken")
            if not token:
                return

    def usage(self, *, since: "Optional[Union[datetime, str]]" = None, until: "Optional[Union[datetime, str]]" = None,
              group_by: str = "tenant", tenant: Optional[str] = None, queue: Optional[str] = None,
              step: Optional[str] = None) -> Dict[str, Any]:
        """GET /v1/usage: CPU-core-hours, memory GiB-hours, GPU-hours, attempts (failed, preempted)
        and queue-wait p50/p99 of the task attempts that ended in [since, until) (default: the last
        7 days), by ``group_by``: ``tenant``, ``queue``, ``gpuModel`` or ``label:<key>``. Read from
        the history store: ``{"from", "to", "groupBy", "groups": [...], "truncated"}``. With
        ``step`` (``"hour"`` or ``"day"``, at most 800 in the window) each group also has a
        ``series`` of its hours step by step from ``since``."""
        if step is not None and step not in ("hour", "day"):
            raise ValueError(f"step: must be 'hour' or 'day', not {step!r}")
        query = {"from": _rfc3339(since), "to": _rfc3339(until), "groupBy": group_by, "tenant": tenant, "queue": queue, "step": step}
        return _obj(self.request("GET", "/v1/usage" + _query(query))[1])

    def logs(self, job_id: str, index: int = 0, *, stream: str = "stdout", attempt: Optional[int] = None) -> str:
        """GET /v1/jobs/{id}/tasks/{index}/logs: what task ``index`` wrote to ``stream``
        (``stdout``, the default, or ``stderr``) in ``attempt`` (default: its latest)."""
        query = {"stream": stream, "attempt": attempt}
        return str(self.request("GET", f"/v1/jobs/{quote(job_id)}/tasks/{int(index)}/logs" + _query(query), parse=False)[1])

    def why(self, job_id: str) -> Dict[str, Any]:
        """GET /v1/jobs/{id}/why: why the job is pending — its position, what blocks its tasks
        on how many nodes, the quota that stops it, and the smallest changes that would let it run."""
        return _obj(self.request("GET", f"/v1/jobs/{quote(job_id)}/why")[1])

    def wait_job(self, job_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """Waits for the job's end on its event stream (resumed after a dropped connection),
        falling back to polling if the stream is not available, and returns its view.

        `timeout` (seconds; default None: no limit) is a hard bound: `TimeoutError` naming the job
        once it passes, even while the stream stays open sending keep-alives (see `_events`)."""
        return self._wait(f"/v1/jobs/{quote(job_id)}", f"job {job_id}", timeout)

    # -- workflows -------------------------------------------------------------------------

    def submit_workflow(self, body: Dict[str, Any], idempotency_key: Optional[str] = None, traceparent: Optional[str] = None) -> Dict[str, Any]:
        key = idempotency_key or secrets.token_hex(16)
        return _obj(self.request("POST", "/v1/workflows", body, {"idempotency-key": key}, traceparent)[1])

    def get_workflow(self, wf_id: str) -> Dict[str, Any]:
        return _obj(self.request("GET", f"/v1/workflows/{quote(wf_id)}")[1])

    def cancel_workflow(self, wf_id: str) -> Dict[str, Any]:
        return _obj(self.request("DELETE", f"/v1/workflows/{quote(wf_id)}")[1])

    def retry_workflow(self, wf_id: str, idempotency_key: Optional[str] = None, traceparent: Optional[str] = None) -> Dict[str, Any]:
        """Re-runs a finished run that did not succeed from its failure (`POST /v1/workflows/{id}/retry`):
        returns the new run's view (`retryOf` is `wf_id`; reused steps carry `cached`). Raises
        `WorkflowNotRetryable` for a run still running or one that succeeded."""
        key = idempotency_key or secrets.token_hex(16)
        return _obj(self.request("POST", f"/v1/workflows/{quote(wf_id)}/retry", {}, {"idempotency-key": key}, traceparent)[1])

    def wait_workflow(self, wf_id: str, timeout: Optional[float] = None) -> Dict[str, Any]:
        """`wait_job` of a workflow run: its view once it ended; `TimeoutError` past `timeout` seconds."""
        return self._wait(f"/v1/workflows/{quote(wf_id)}", f"workflow {wf_id}", timeout)

    # -- waiting ---------------------------------------------------------------------------

    def _wait(self, path: str, what: str, timeout: Optional[float]) -> Dict[str, Any]:
        """The view of `path` once it is terminal. With `timeout`, `TimeoutError` (naming `what`)
        at the deadline, give or take the few milliseconds of closing the stream (or of the
        request in flight when polling, itself bounded by the time left)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        last_id: Optional[str] = None
        view: Optional[Dict[str, Any]] = None
        # Streams in a row that ended with no view: each waits twice as long before the next
        # (0.1 s, 0.2 s … 2 s), so a server that ends streams at once is not asked again and
        # again (every stream is a read against the tenant's read limit).
        empty = 0
        while deadline is None or time.monotonic() < deadline:
            got = False
            try:
                for event_id, view in self._events(f"{path}/events", last_id, deadline):
                    got = True
                    last_id = event_id or last_id
                    if view.get("phase") in TERMINAL:
                        return view
                empty = 0 if got else empty + 1
                if empty:
                    _sleep_within(min(2.0, 0.1 * 2 ** (empty - 1)), deadline)
            except NotImplementedError:
                return self._poll(path, what, timeout, deadline)
            except (RateLimited, Unavailable) as e:
                # A throttle refused the stream (429, 503): wait as it says, within the deadline, and
                # resume from the last event id, as every other call honours Retry-After.
                _sleep_within(e.retry_after if e.retry_after is not None else 1.0, deadline)
            except (ConnectionError, http.client.HTTPException, OSError):
                _sleep_within(0.2, deadline)  # resume from the last event id
        raise _timed_out(what, timeout, view)

    def _events(self, path: str, last_id: Optional[str], deadline: Optional[float]) -> Iterator[Tuple[Optional[str], Dict[str, Any]]]:
        """Server-sent events of a stream: (event id, view) pairs, until the server ends it or
        `deadline` (monotonic) passes.

        The server sends a `: keepalive` comment every 15 s, so a read that waits `idle` (the
        per-request timeout + 20 s) for a line means the connection is gone. A keep-alive resets
        that wait, so it cannot bound a wait with a deadline: each read also waits no longer than
        the time left, and the deadline is checked after every line; at the deadline the stream
        is closed and the iteration ends (the caller raises `TimeoutError`)."""
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        idle = self.timeout + 20
        conn = cls(self._host, self._port, timeout=_read_timeout(idle, deadline))
        try:
            headers = {"authorization": f"Bearer {self.token}", "accept": "text/event-stream", "traceparent": new_traceparent()}
            if last_id:
                headers["last-event-id"] = last_id
            conn.request("GET", path, headers=headers)
            # the socket the response reads, kept: `getresponse` drops the connection's own reference
            # when the response closes the connection at its end (HTTP/1.0, `connection: close`)
            sock = conn.sock
            if deadline is not None and sock is not None:
                sock.settimeout(_read_timeout(idle, deadline))  # the answer's head, within the time left too
            res = conn.getresponse()
            if res.status == 404 and path.endswith("/events"):
                body = res.read().decode("utf-8", "replace")
                # a missing job is a 404 with the error envelope naming it; a missing route has no id
                try:
                    parsed = json.loads(body)
                except ValueError:
                    parsed = body
                err = error_from(404, parsed)
                if err.id:
                    raise err
                raise NotImplementedError
            if res.status >= 400:
                raise error_from(res.status, json.loads(res.read() or b"null"), _retry_after(res.getheader("retry-after")))
            event_id: Optional[str] = None
            event: Optional[str] = None
            data: List[str] = []
            while True:
                if deadline is not None:
                    if time.monotonic() >= deadline:
                        return
                    if sock is not None:
                        sock.settimeout(_read_timeout(idle, deadline))
                try:
                    raw = res.readline()
                except TimeoutError:  # socket.timeout: the read waited as long as it may
                    if deadline is not None and time.monotonic() >= deadline:
                        return
                    raise  # `idle` with no line: the connection is gone, the caller resumes
                if not raw:
                    return
                line = raw.decode("utf-8").rstrip("\r\n")
                if line == "":
                    # "stream-closed" (e.g. slow_consumer) says why the server ends the stream next; the caller resumes
                    if data and event != "stream-closed":
                        yield event_id, _obj(json.loads("\n".join(data)))
                    event_id, event, data = None, None, []
                elif line.startswith("id:"):
                    event_id = line[3:].strip()
                elif line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    data.append(line[5:].lstrip())
        finally:
            conn.close()

    def _poll(self, path: str, what: str, timeout: Optional[float], deadline: Optional[float]) -> Dict[str, Any]:
        """`_wait` against a server without event streams: GET `path` until terminal or `deadline`."""
        delay = 0.1
        view: Optional[Dict[str, Any]] = None
        while deadline is None or time.monotonic() < deadline:
            try:
                view = _obj(self.request("GET", path, deadline=deadline)[1])
            except POLL_ERRORS:
                if not _passed(deadline):
                    raise
                break  # cut, or not retried, by the deadline: the wait's own TimeoutError below
            if view.get("phase") in TERMINAL:
                return view
            _sleep_within(delay, deadline)
            delay = min(2.0, delay * 1.5)
        raise _timed_out(what, timeout, view)


def _query(params: Dict[str, Any]) -> str:
    given = {k: str(v) for k, v in params.items() if v is not None and v != ""}
    return "?" + urlencode(given) if given else ""


def _rfc3339(t: "Optional[Union[datetime, str]]") -> Optional[str]:
    if t is None or isinstance(t, str):
        return t
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _obj(value: Any) -> Dict[str, Any]:
    """An answer that is a JSON object."""
    if not isinstance(value, dict):
        raise BatchError("http_error", f"expected a JSON object, got {type(value).__name__}")
    return value


#: What a poll with a deadline raises when the deadline cut its read, or left no time to retry a
#: refusal (429, 503) or a dropped connection; before the deadline these are the call's own errors.
POLL_ERRORS = (OSError, http.client.HTTPException, RateLimited, Unavailable)


def _passed(deadline: Optional[float]) -> bool:
    """Whether `deadline` (monotonic; None: none) has passed."""
    return deadline is not None and time.monotonic() >= deadline


def _read_timeout(idle: float, deadline: Optional[float]) -> float:
    """How long one read may wait: `idle`, or the time left before `deadline` when that is
    shorter (at least 1 ms: a socket timeout of 0 would make it non-blocking)."""
    return idle if deadline is None else max(0.001, min(idle, deadline - time.monotonic()))


def _set_timeout(conn: http.client.HTTPConnection, seconds: float) -> None:
    """The read timeout of `conn`: of its socket when connected, else of the connect to come."""
    conn.timeout = seconds
    if conn.sock is not None:
        try:
            conn.sock.settimeout(seconds)
        except OSError:
            pass  # closed under it: the next call fails on it, drops it and connects again


def _timed_out(what: str, timeout: Optional[float], view: Optional[Dict[str, Any]]) -> WaitTimeout:
    """The error of a wait whose `timeout` passed: names what it waited for, and its last phase seen."""
    phase = view.get("phase") if view else None
    kind, _, ident = what.partition(" ")
    hint = f"; `batch why {ident}` says why it has not ended" if kind == "job" else ""
    return WaitTimeout(f"{what} did not end within {round(timeout or 0, 3):g} s" + (f" (last phase {phase})" if phase else "")
                       + f": wait longer with a larger timeout{hint}", what, timeout, phase if isinstance(phase, str) else None)


def _sleep_within(pause: float, deadline: Optional[float]) -> None:
    """Sleeps `pause` seconds, or until `deadline` (monotonic) if that comes first."""
    time.sleep(pause if deadline is None else min(pause, max(0.0, deadline - time.monotonic())))


def _retry_after(value: Optional[str]) -> Optional[float]:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
