"""Unit tests of the SDK without a cluster: error mapping, retries honouring Retry-After,
traceparent, job bodies (a small stdlib HTTP server on loopback stands in for the API)."""
import json
import os
import sys
import threading
import time
import unittest
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import batchapi  # noqa: E402
from batchapi.client import Client  # noqa: E402
from batchapi.client import _query, _rfc3339  # noqa: E402
from batchapi.errors import error_from  # noqa: E402


class Fake(BaseHTTPRequestHandler):
    answers = []  # (status, body, headers) in order
    seen = []

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        Fake.seen.append({"path": self.path, "headers": dict(self.headers), "body": json.loads(self.rfile.read(n) or b"null")})
        status, body, headers = Fake.answers.pop(0)
        data = json.dumps(body).encode()
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST

    def log_message(self, *a):
        pass


class UnitTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = ThreadingHTTPServer(("127.0.0.1", 0), Fake)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.api = f"http://127.0.0.1:{cls.server.server_address[1]}"

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()

    def setUp(self):
        Fake.answers, Fake.seen = [], []

    def test_error_codes_map_to_typed_errors_with_their_field(self):
        e = error_from(400, {"error": {"code": "invalid_argument", "message": "bad", "field": "resources.cpu"}})
        self.assertIsInstance(e, batchapi.InvalidArgument)
        self.assertEqual((e.code, e.field), ("invalid_argument", "resources.cpu"))
        for status, cls in [(401, batchapi.Unauthenticated), (403, batchapi.Forbidden), (404, batchapi.NotFound), (409, batchapi.Conflict),
                            (422, batchapi.Unprocessable), (429, batchapi.RateLimited), (503, batchapi.Unavailable)]:
            self.assertIsInstance(error_from(status, {"error": {"code": "x", "message": "m"}}), cls)

    def test_resubmit_sends_only_the_changes_given_with_a_key(self):
        Fake.answers = [(201, {"id": "j-2"}, {}), (201, {"id": "j-3"}, {})]
        client = Client(self.api, "t")
        self.assertEqual(client.resubmit_job("j-1", priority=5, env={"LR": "0.01"})["id"], "j-2")
        self.assertEqual(Fake.seen[0]["path"], "/v1/jobs/j-1/resubmit")
        self.assertEqual(Fake.seen[0]["body"], {"priority": 5, "env": {"LR": "0.01"}})
        self.assertTrue(Fake.seen[0]["headers"].get("idempotency-key") or Fake.seen[0]["headers"].get("Idempotency-Key"))
        client.resubmit_job("j-1")
        self.assertEqual(Fake.seen[1]["body"], {})

    def test_retry_posts_to_the_run_with_a_key_and_returns_the_new_run(self):
        view = {"id": "wf-2", "name": "nightly", "phase": "Running", "retryOf": "wf-1", "steps": []}
        Fake.answers = [(201, view, {})]
        batchapi.configure(self.api, "t")
        new = batchapi.retry("wf-1")
        self.assertEqual((new.id, new.name, new.view), ("wf-2", "nightly", view))
        self.assertEqual((Fake.seen[0]["path"], Fake.seen[0]["body"]), ("/v1/workflows/wf-1/retry", {}))
        self.assertTrue(Fake.seen[0]["headers"].get("idempotency-key") or Fake.seen[0]["headers"].get("Idempotency-Key"))

    def test_a_run_that_cannot_be_retried_raises_workflow_not_retryable(self):
        Fake.answers = [(409, {"error": {"code": "workflow_not_retryable", "message": "workflow wf-1 succeeded", "id": "wf-1"}}, {})]
        with self.assertRaises(batchapi.WorkflowNotRetryable) as e:
            Client(self.api, "t").retry_workflow("wf-1")
        self.assertIsInstance(e.exception, batchapi.Conflict)
        self.assertEqual((e.exception.code, e.exception.status, e.exception.id), ("workflow_not_retryable", 409, "wf-1"))

    def test_usage_asks_for_steps_and_refuses_an_unknown_step_before_sending(self):
        Fake.answers = [(200, {"from": "a", "to": "b", "groupBy": "queue", "step": "day", "groups": [], "truncated": False}, {})]
        client = Client(self.api, "t")
        self.assertEqual(client.usage(group_by="queue", step="day")["step"], "day")
        self.assertEqual(Fake.seen[0]["path"], "/v1/usage?groupBy=queue&step=day")
        with self.assertRaisesRegex(ValueError, "step: must be 'hour' or 'day'"):
            client.usage(step="week")
        self.assertEqual(len(Fake.seen), 1)

    def test_retries_429_and_503_after_retry_after_then_succeeds(self):
        Fake.answers = [(429, {"error": {"code": "submit_rate_exceeded", "message": "slow down"}}, {"Retry-After": "0"}),
                        (503, {"error": {"code": "unavailable", "message": "busy"}}, {"Retry-After": "0"}),
                        (201, {"id": "j1"}, {})]
        c = Client(self.api, "tok", retries=3)
        self.assertEqual(c.submit_job({"command": ["true"]}, idempotency_key="k1"), {"id": "j1"})
        # the same idempotency key on every attempt, a bearer token and a W3C traceparent
        self.assertEqual([s["headers"]["idempotency-key"] for s in Fake.seen], ["k1", "k1", "k1"])
        self.assertEqual(Fake.seen[0]["headers"]["authorization"], "Bearer tok")
        self.assertRegex(Fake.seen[0]["headers"]["traceparent"], r"^00-[0-9a-f]{32}-[0-9a-f]{16}-01$")

    def test_gives_up_after_its_retries_with_the_typed_error(self):
        Fake.answers = [(429, {"error": {"code": "queue_full", "message": "full", "field": "queue"}}, {"Retry-After": "0"})] * 2
        c = Client(self.api, "tok", retries=1)
        with self.assertRaises(batchapi.RateLimited) as cm:
            c.submit_job({"command": ["true"]})
        self.assertEqual((cm.exception.code, cm.exception.field, cm.exception.retry_after), ("queue_full", "queue", 0.0))

    def test_a_task_call_becomes_a_runner_job_with_resources_retries_and_args(self):
        import sample_tasks
        body = sample_tasks.flaky.options(queue="q", gpus=0.5, timeout=30).job_body(("/tmp/x",))
        self.assertEqual(body["command"], ["python3", "-m", "batchapi.run"])
        self.assertEqual(body["env"]["BATCH_PY_CALL"], "sample_tasks:flaky")
        self.assertEqual(json.loads(body["env"]["BATCH_PY_ARGS"]), {"args": ["/tmp/x"], "kwargs": {}})
        self.assertIn(os.path.dirname(os.path.abspath(__file__)), body["env"]["PYTHONPATH"].split(os.pathsep))
        self.assertEqual(body["resources"], {"cpu": "0.1", "memory": "64Mi", "gpu": 0.5})
        # a result that is not JSON exits 65: never retried
        self.assertEqual((body["queue"], body["timeoutSeconds"], body["retry"]),
                         ("q", 30, {"maxAttempts": 3, "backoffSeconds": 0.1, "failFastOnExitCodes": [65]}))

    def test_the_runner_calls_the_function_and_writes_its_result(self):
        import subprocess
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "r.json")
            env = {**os.environ, "BATCH_PY_CALL": "sample_tasks:square", "BATCH_PY_ARGS": json.dumps({"args": [], "kwargs": {}}), "BATCH_MAP_ITEM": "7",
                   "BATCH_RESULT_PATH": out, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), os.path.dirname(os.path.dirname(batchapi.__file__))])}
            self.assertEqual(subprocess.run([sys.executable, "-m", "batchapi.run"], env=env).returncode, 0)
            with open(out) as f:
                self.assertEqual(json.load(f), 49)
            env.pop("BATCH_MAP_ITEM")
            env["BATCH_PY_CALL"] = "sample_tasks:boom"
            env["BATCH_PY_ARGS"] = json.dumps({"args": ["no"], "kwargs": {}})
            os.remove(out)
            p = subprocess.run([sys.executable, "-m", "batchapi.run"], env=env, capture_output=True, text=True)
            self.assertEqual(p.returncode, 1)
            self.assertIn("ValueError: no", p.stderr)
            self.assertFalse(os.path.exists(out))


class ListQueryTests(unittest.TestCase):
    def test_times_become_rfc3339_in_utc_and_naive_ones_are_utc(self):
        from datetime import datetime, timedelta, timezone
        self.assertEqual(_rfc3339(datetime(2026, 12, 1, 1, 0, tzinfo=timezone(timedelta(hours=1)))), "2026-12-01T00:00:00Z")
        self.assertEqual(_rfc3339(datetime(2026, 12, 1)), "2026-12-01T00:00:00Z")
        self.assertEqual(_rfc3339("2026-12-01T00:00:00Z"), "2026-12-01T00:00:00Z")
        self.assertIsNone(_rfc3339(None))

    def test_query_leaves_out_unset_values_and_escapes_the_rest(self):
        self.assertEqual(_query({"state": None, "labelSelector": "tier in (a,b)", "limit": 5}), "?labelSelector=tier+in+%28a%2Cb%29&limit=5")
        self.assertEqual(_query({"state": None, "queue": ""}), "")


if __name__ == "__main__":
    unittest.main()
