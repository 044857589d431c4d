"""`get` of many references applies one overall timeout: a stdlib HTTP server on loopback
stands in for the API, answering job `slow` only after the whole timeout has passed."""
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator, List

import pytest

import batchapi as batch
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
