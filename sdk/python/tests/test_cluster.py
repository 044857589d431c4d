"""The SDK against a real local cluster (`batch dev`): set BATCH_API and BATCH_TOKEN, as the
project's test suite does (tools/e2e/test/python-sdk.spec.ts); skipped without them."""
import os
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
import batchapi as batch  # noqa: E402
import sample_tasks as t  # noqa: E402

LIVE = bool(os.environ.get("BATCH_API") and os.environ.get("BATCH_TOKEN"))


@unittest.skipUnless(LIVE, "no cluster: set BATCH_API and BATCH_TOKEN (the test suite starts a local cluster for these)")
class ClusterTests(unittest.TestCase):
    def test_submit_returns_at_once_and_get_waits_for_the_result(self):
        ref = t.square.submit(7)
        self.assertRegex(ref.job_id, r"^[0-9a-z]+-[0-9a-f]+$")
        self.assertEqual(batch.get(ref, timeout=60), 49)

    def test_map_is_one_array_job_with_a_result_per_item(self):
        refs = t.square.map([1, 2, 3, 4])
        self.assertEqual(len({r.job_id for r in refs}), 1)
        self.assertEqual(batch.get(refs, timeout=60), [1, 4, 9, 16])

    def test_a_raising_task_raises_task_failed(self):
        with self.assertRaises(batch.TaskFailed) as cm:
            batch.get(t.boom.submit("broken"), timeout=60)
        self.assertEqual(cm.exception.state, "Failed")

    def test_retries_until_the_third_attempt_succeeds(self):
        with tempfile.TemporaryDirectory() as d:
            self.assertEqual(batch.get(t.flaky.submit(os.path.join(d, "attempts")), timeout=60), 3)

    def test_lists_jobs_by_label_selector_and_tasks_by_state(self):
        c = batch.client()
        run = os.urandom(4).hex()
        body = {"command": ["sh", "-c", "exit $((BATCH_TASK_INDEX % 2))"], "tasks": 4, "resources": {"cpu": "100m", "memory": "64Mi"}}
        failing = c.submit_job({**body, "name": f"py-{run}-a", "labels": {"run": run, "kind": "odd-fail"}})
        passing = c.submit_job({**body, "command": ["true"], "name": f"py-{run}-b", "labels": {"run": run}})
        for j in (failing, passing):
            c.wait_job(j["id"], timeout=60)
        self.assertEqual([j["id"] for j in c.iter_jobs(label_selector=f"run={run}")], sorted([failing["id"], passing["id"]]))
        self.assertEqual([j["id"] for j in c.iter_jobs(label_selector=f"run={run},!kind")], [passing["id"]])
        newest = c.list_jobs(name_prefix=f"py-{run}-", sort="-submitted", limit=1)
        self.assertEqual([j["id"] for j in newest["jobs"]], [passing["id"]])
        self.assertIn("nextPageToken", newest)
        # tasks 1 and 3 exit 1: which failed, and why
        failed = list(c.iter_tasks(failing["id"], state="Failed"))
        self.assertEqual([t["index"] for t in failed], [1, 3])
        self.assertTrue(all(t["exitCode"] == 1 for t in failed))
        with self.assertRaises(batch.InvalidArgument) as cm:
            c.list_jobs(label_selector="run in (a")
        self.assertEqual(cm.exception.field, "labelSelector")

    def test_api_errors_are_typed_and_name_the_field(self):
        with self.assertRaises(batch.InvalidArgument) as cm:
            batch.get(t.square.options(memory="lots").submit(1))
        self.assertEqual(cm.exception.field, "resources.memory")
        with self.assertRaises(batch.Unprocessable):
            t.square.options(queue="no-such-queue").submit(1)
        with self.assertRaises(batch.NotFound):
            batch.client().get_job("000000000-000000000000")

    def test_a_workflow_fans_out_over_a_result_and_reduces_it(self):
        with batch.workflow("py-sum-of-squares") as wf:
            xs = wf.step(t.shards, 4, name="shards")                       # [0, 1, 2, 3]
            sq = wf.map(t.square, from_step=xs, name="squares")            # 0, 1, 4, 9
            total = wf.step(t.add, inputs=[sq], name="total")              # 14
        view = wf.wait(timeout=120)
        self.assertEqual(view["phase"], "Succeeded", view)
        self.assertEqual(wf.result(sq), [0, 1, 4, 9])
        self.assertEqual(wf.result(total), 14)


if __name__ == "__main__":
    unittest.main()
