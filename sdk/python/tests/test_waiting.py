"""`get` of many references applies one overall timeout: a stdlib HTTP server on loopback
stands in for the API, answering job `slow` only after the whole timeout has passed."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, List

import pytest

import batchapi as batch
import importlib
from batchapi.core import JobRef

TIMEOUT = 0.3


class Api(BaseHTTPRequestHandler):
    seen: List[str] = []

    def do_GET(self) -> None:
        Api.seen.append(self.path)
        body: Any
        if self.path.endswith("/events"):
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
        self.wfile.write(data)

    def log_message(self, *a: Any) -> None:
        pass


@pytest.fixture
def api() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    Api.seen = []
    previous = batch.core._default
    batch.configure(f"http://127.0.0.1:{server.server_address[1]}", "tok", retries=0)
    yield ""
    batch.core._default = previous
    server.shutdown()


def test_get_of_a_list_applies_one_timeout_to_all_its_jobs(api: str) -> None:
    refs: List[JobRef[int]] = [JobRef({"id": "slow"}, 0), JobRef({"id": "other"}, 0)]
    with pytest.raises(TimeoutError) as e:
        batch.get(refs, timeout=TIMEOUT)
    # the timeout was spent on the first job: the second is never waited for
    assert "other" in str(e.value)
    assert not any("/other" in p for p in Api.seen), Api.seen


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
