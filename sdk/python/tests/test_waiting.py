"""`get` of many references applies one overall timeout: a stdlib HTTP server on loopback
stands in for the API, answering job `slow` only after the whole timeout has passed."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterator, List, Optional

import pytest

import batchapi as batch
import importlib
from batchapi.core import JobRef

TIMEOUT = 0.3


class Api(BaseHTTPRequestHandler):
    seen: List[str] = []
    release = threading.Event()  # job `hung`'s requests answer when it is set (at the fixture's end), or after 20 s

    def do_GET(self) -> None:
        Api.seen.append(self.path)
        body: Any
        if self.path.startswith("/v1/jobs/hung"):
            Api.release.wait(20)  # a server that does not answer within the client's wait
            status, body = 200, {"id": "hung", "phase": "Running", "tasks": 1}
        elif self.path.endswith("/events"):
            status, body = 404, {"error": "no such route"}  # no stream: the SDK polls
        elif self.path == "/v1/jobs/slow":
            time.sleep(TIMEOUT * 2)  # ends after the whole get's timeout
            status, body = 200, {"id": "slow", "phase": "Succeeded", "tasks": 1}
        elif self.path.endswith("/results"):
            status, body = 200, {"results": [{"index": 0, "value": 1}]}
        else:
            status, body = 200, {"id": self.path.rsplit("/", 1)[-1], "phase": "Running", "tasks": 1}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        try:
            self.wfile.write(data)
        except OSError:
            pass  # the client went away (job `hung`, cut at its deadline)

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Api.seen, Api.release = [], threading.Event()
    previous = batch.core._default
    batch.configure(f"http://127.0.0.1:{server.server_address[1]}", "tok", retries=0)
    yield ""
    batch.core._default = previous
    Api.release.set()
    server.shutdown()


def test_get_of_a_list_applies_one_timeout_to_all_its_jobs(api: str) -> None:
    refs: List[JobRef[int]] = [JobRef({"id": "slow"}, 0), JobRef({"id": "other"}, 0)]
    with pytest.raises(batch.WaitTimeout) as e:
        batch.get(refs, timeout=TIMEOUT)
    # the timeout was spent on the first job, cut at the deadline: the second is never waited for
    assert "job slow did not end within 0.3 s" in str(e.value), str(e.value)
    assert isinstance(e.value, TimeoutError) and (e.value.what, e.value.timeout) == ("job slow", TIMEOUT)
    assert not any("/other" in p for p in Api.seen), Api.seen


def test_wait_and_as_completed_end_at_their_timeout_while_a_poll_is_unanswered(api: str) -> None:
    # `wait` and `as_completed` poll; a poll in flight at the deadline used to run on for up to the
    # client's per-request timeout (30 s), here until the server answers after 20 s. Each poll's reads
    # now end at the deadline, and the wait returns (or raises) what it knew by then.
    ref: JobRef[int] = JobRef({"id": "hung"}, 0)
    t0 = time.monotonic()
    ready, rest = batch.wait([ref], timeout=TIMEOUT)
    assert (ready, rest) == ([], [ref])
    assert TIMEOUT <= time.monotonic() - t0 < 8, f"wait ended after {time.monotonic() - t0:.1f} s for a {TIMEOUT} s timeout"
    t0 = time.monotonic()
    with pytest.raises(batch.WaitTimeout) as e:
        next(batch.as_completed([ref], timeout=TIMEOUT))
    assert "1 of 1 references were not ready within 0.3 s" in str(e.value), str(e.value)
    assert (e.value.what, e.value.timeout) == ("references", TIMEOUT)
    assert TIMEOUT <= time.monotonic() - t0 < 8, f"as_completed ended after {time.monotonic() - t0:.1f} s for a {TIMEOUT} s timeout"


class Throttled(BaseHTTPRequestHandler):
    """The job's event stream is refused twice (429 read_rate_exceeded, Retry-After: 0.05), then
    sends the terminal view."""

    events = 0

    def do_GET(self) -> None:
        if not self.path.endswith("/events"):
            self.send_error(500)
            return
        Throttled.events += 1
        if Throttled.events <= 2:
            data = json.dumps({"error": {"code": "read_rate_exceeded", "message": "over its read limit"}}).encode()
            self.send_response(429)
            self.send_header("content-type", "application/json")
            self.send_header("retry-after", "0.05")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        view = json.dumps({"id": "j", "phase": "Succeeded", "tasks": 1})
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        self.wfile.write(f"id: 1\nevent: job\ndata: {view}\n\n".encode())

    def log_message(self, *a: Any) -> None:
        pass


def test_waiting_honours_retry_after_when_the_event_stream_is_throttled() -> None:
    # Seen in CI: a job's wait raised RateLimited (429 on /events) instead of waiting Retry-After
    # and resuming, as every other call of the client does.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Throttled)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Throttled.events = 0
    try:
        client = batch.Client(f"http://127.0.0.1:{server.server_address[1]}", "tok", retries=0)
        view = client.wait_job("j", timeout=10)
        assert view["phase"] == "Succeeded"
        assert Throttled.events == 3  # two refusals, each waited out, then the stream
    finally:
        server.shutdown()


class Ending(BaseHTTPRequestHandler):
    """The job's event stream ends at once with no view three times, then sends the terminal view."""

    events = 0

    def do_GET(self) -> None:
        Ending.events += 1
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.end_headers()
        if Ending.events > 3:
            view = json.dumps({"id": "j", "phase": "Succeeded", "tasks": 1})
            self.wfile.write(f"id: 1\nevent: job\ndata: {view}\n\n".encode())

    def log_message(self, *a: Any) -> None:
        pass


def test_waiting_backs_off_when_streams_end_with_no_view(monkeypatch: pytest.MonkeyPatch) -> None:
    # Seen in CI: streams that the server ended at once were opened again with no pause, until the
    # tenant's read limit refused them (429). Each empty stream in a row now waits twice as long.
    server = ThreadingHTTPServer(("127.0.0.1", 0), Ending)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Ending.events = 0
    pauses: List[float] = []
    monkeypatch.setattr(importlib.import_module("batchapi.client").time, "sleep", lambda s: pauses.append(round(s, 3)))
    try:
        client = batch.Client(f"http://127.0.0.1:{server.server_address[1]}", "tok", retries=0)
        assert client.wait_job("j", timeout=10)["phase"] == "Succeeded"
        assert Ending.events == 4
        assert pauses == [0.1, 0.2, 0.4]  # 0.1 × 2^(k − 1) after the k-th empty stream in a row
    finally:
        server.shutdown()


class KeepalivesOnly(BaseHTTPRequestHandler):
    """A job that never ends, streamed as the admission service streams it (event-stream.ts): HTTP/1.1,
    chunked, the current view as `id:`/`event: job`/`data:`, then only a `: keepalive` comment every
    `keepalive` seconds (15 s on the service), until the client goes away or `ends_after` seconds
    passed (then the terminal view, and the stream ends)."""

    protocol_version = "HTTP/1.1"
    keepalive = 0.2
    ends_after: Optional[float] = None
    streams = 0
    stop = threading.Event()
    left = threading.Event()  # set when a write found the client gone

    def do_GET(self) -> None:
        if not self.path.endswith("/events"):
            self.send_error(500)
            return
        KeepalivesOnly.streams += 1
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        job = self.path.split("/")[-2]
        opened = time.monotonic()
        try:
            self._chunk(f"id: 7\nevent: job\ndata: {json.dumps({'id': job, 'phase': 'Running', 'tasks': 1})}\n\n")
            while not KeepalivesOnly.stop.wait(self.keepalive):
                if self.ends_after is not None and time.monotonic() - opened >= self.ends_after:
                    self._chunk(f"id: 8\nevent: job\ndata: {json.dumps({'id': job, 'phase': 'Succeeded', 'tasks': 1})}\n\n")
                    self.wfile.write(b"0\r\n\r\n")
                    return
                self._chunk(": keepalive\n\n")
        except OSError:
            KeepalivesOnly.left.set()
        self.close_connection = True

    def _chunk(self, text: str) -> None:
        data = text.encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def keepalives_only() -> Iterator[str]:
    KeepalivesOnly.streams, KeepalivesOnly.ends_after = 0, None
    KeepalivesOnly.stop, KeepalivesOnly.left = threading.Event(), threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepalivesOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    previous = batch.core._default
    batch.configure(f"http://127.0.0.1:{server.server_address[1]}", "tok", retries=0)
    yield f"http://127.0.0.1:{server.server_address[1]}"
    batch.core._default = previous
    KeepalivesOnly.stop.set()  # ends a stream a regressed wait still holds, so its thread ends too
    server.shutdown()
    server.server_close()


def _within(seconds: float, call: Callable[[], Any]) -> "tuple[float, Any]":
    """`call()` in a thread: (seconds it took, what it returned or raised); fails the test, instead
    of hanging it, when the call has not returned after `seconds`."""
    out: List[Any] = []
    started = time.monotonic()

    def run() -> None:
        try:
            out.append(call())
        except BaseException as e:  # noqa: BLE001 - handed to the test to assert on
            out.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still waiting after {seconds} s: the wait's timeout was not enforced"
    return time.monotonic() - started, out[0]


def test_get_raises_timeout_on_time_while_the_stream_sends_only_keepalives(keepalives_only: str) -> None:
    # Seen in CI: `batch.get(ref, timeout=300)` on a job that never ended was still waiting when
    # jest killed the run at 400 s: the stream's keep-alives (every 15 s) kept each read within
    # its socket timeout, and the deadline was checked only between streams.
    ref: JobRef[int] = JobRef({"id": "forever"}, 0)
    # Without the fix the wait never ends (keep-alives come every 0.2 s): a bound of several times
    # the timeout tells the two apart without judging the speed of a busy CI machine.
    took, raised = _within(8.0, lambda: batch.get(ref, timeout=1))
    assert isinstance(raised, batch.WaitTimeout), raised
    assert "job forever" in str(raised) and "1 s" in str(raised), str(raised)
    assert (raised.what, raised.timeout, raised.phase) == ("job forever", 1, "Running")
    assert took >= 0.9, took  # not before the deadline
    assert KeepalivesOnly.streams == 1  # one stream, held (not reopened) until the deadline
    assert KeepalivesOnly.left.wait(2.0), "the stream was not closed at the deadline"


@pytest.mark.parametrize("timeout", [20.0, None])
def test_keepalives_keep_one_stream_open_until_the_job_ends(keepalives_only: str, timeout: Optional[float]) -> None:
    # A deadline bounds the reads, it does not cut the stream short; and without a timeout the
    # wait goes on as long as the keep-alives come.
    KeepalivesOnly.ends_after = 0.8
    client = batch.Client(keepalives_only, "tok", retries=0)
    took, view = _within(30.0, lambda: client.wait_job("ends", timeout=timeout))
    assert isinstance(view, dict) and view["phase"] == "Succeeded", view
    assert KeepalivesOnly.streams == 1
