"""The SDK against a real local cluster (`batch dev`): set BATCH_API and BATCH_TOKEN, as the
project's test suite does (tools/e2e/test/python-sdk.spec.ts); skipped without them."""
import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Any, List

import pytest

import batchapi as batch
import sample_tasks as t

LIVE = bool(os.environ.get("BATCH_API") and os.environ.get("BATCH_TOKEN"))
pytestmark = pytest.mark.skipif(not LIVE, reason="no cluster: set BATCH_API and BATCH_TOKEN (the test suite starts a local cluster for these)")
SDK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(batch.__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))


def test_submit_returns_at_once_and_get_waits_for_the_result() -> None:
    ref = t.square.submit(7)
    assert ref.job_id
    assert batch.get(ref, timeout=60) == 49


def test_map_is_one_array_job_with_a_result_per_item() -> None:
    refs = t.square.map([1, 2, 3, 4])
    assert len({r.job_id for r in refs}) == 1
    assert batch.get(refs, timeout=60) == [1, 4, 9, 16]


def test_a_raising_task_raises_task_failed_with_the_remote_traceback() -> None:
    with pytest.raises(batch.TaskFailed) as e:
        batch.get(t.boom.submit("broken"), timeout=60)
    assert (e.value.state, e.value.exit_code) == ("Failed", 1)
    assert e.value.traceback is not None
    assert "raise ValueError(msg)" in e.value.traceback and e.value.traceback.endswith("ValueError: broken")
    assert "Remote traceback:" in str(e.value)


def test_retries_until_the_third_attempt_succeeds() -> None:
    with tempfile.TemporaryDirectory() as d:
        assert batch.get(t.flaky.submit(os.path.join(d, "attempts")), timeout=60) == 3


@pytest.mark.parametrize("kind", ["nan", "inf", "object", "big"])
def test_a_result_that_is_not_json_fails_the_task_once_never_retried(kind: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        ref = t.returns.submit(kind, os.path.join(d, "attempts"))  # retries=2
        with pytest.raises(batch.TaskFailed) as e:
            batch.get(ref, timeout=60)
        assert (e.value.state, e.value.exit_code) == ("Failed", 65)
        assert "ResultNotJSON" in str(e.value)
        assert len(os.listdir(os.path.join(d, "attempts"))) == 1
        assert [row["attempt"] for row in batch.tasks(ref)] == [1]


def test_a_script_function_runs_by_value_and_the_script_top_level_runs_once() -> None:
    with tempfile.TemporaryDirectory() as d:
        script = os.path.join(d, "pipeline.py")
        with open(script, "w") as f:
            f.write(textwrap.dedent('''
                import os
                import batchapi as batch
                with open(os.environ["TOP_LEVEL_RUNS"], "a") as f:  # no __main__ guard: must not run on the node
                    f.write("ran\\n")
                BASE = 100

                @batch.task(cpus=0.1, memory="64Mi")
                def shifted(x):
                    return BASE + x

                print("ok:", batch.get(shifted.map([1, 2]), timeout=60), batch.get(batch.task(lambda s: s[::-1]).submit("abc"), timeout=60))
            '''))
        env = {**os.environ, "TOP_LEVEL_RUNS": os.path.join(d, "runs"), "PYTHONPATH": SDK_ROOT}
        p = subprocess.run([sys.executable, script], cwd=d, env=env, capture_output=True, text=True, timeout=180)
        assert p.returncode == 0, p.stderr
        assert p.stdout.strip() == "ok: [101, 102] cba"
        with open(os.path.join(d, "runs")) as f:
            assert f.read() == "ran\n"


def test_get_of_many_and_wait_and_as_completed() -> None:
    with tempfile.TemporaryDirectory() as d:
        gate = os.path.join(d, "gate")
        slow = t.wait_for.submit(gate)
        fast = t.square.submit(3)
        ready, rest = batch.wait([slow, fast], num_returns=1)
        assert (ready, rest) == ([fast], [slow])
        # nothing more gets ready while the gate is shut: the timeout ends the wait
        ready, rest = batch.wait([slow], num_returns=1, timeout=0.5)
        assert (ready, rest) == ([], [slow])
        with pytest.raises(TimeoutError):
            batch.get([fast, slow], timeout=0.5)
        open(gate, "w").close()
        done = list(batch.as_completed([slow, fast], timeout=60))
        assert sorted(map(repr, done)) == sorted(map(repr, [slow, fast]))
        assert batch.get([fast, slow], timeout=60) == [9, gate]


def test_references_are_awaitable_from_asyncio() -> None:
    async def main() -> Any:
        a, b = t.square.submit(4), t.square.submit(5)
        one = await a
        both = await batch.get_async([a, b], timeout=60)
        ready, rest = await batch.wait_async([a, b], num_returns=2, timeout=60)
        return one, both, ready == [a, b], rest

    assert asyncio.run(main()) == (16, [16, 25], True, [])


def test_logs_tasks_why_list_and_cancel() -> None:
    run = os.urandom(4).hex()
    ref = t.say.options(labels={"run": run}).submit("hello from the node")
    assert batch.get(ref, timeout=60) == {"said": "hello from the node"}
    assert batch.logs(ref) == "hello from the node\n"
    rows = batch.tasks(ref)
    assert [(r["index"], r["attempt"], r["state"]) for r in rows] == [(0, 1, "Succeeded")]
    assert [j["id"] for j in batch.list(label_selector=f"run={run}")] == [ref.job_id]
    # a selector no node meets: pending, and `why` says what blocks it
    stuck = t.square.options(selector={"no.such.label": "x"}, labels={"run": run}).submit(1)
    why = batch.why(stuck)
    assert why["jobId"] == stuck.job_id and why["placeableNow"] == 0
    batch.cancel(stuck)
    assert stuck.wait(timeout=60)["phase"] == "Cancelled"


def test_tolerations_and_spread_are_accepted_by_the_api() -> None:
    ref = t.square.options(spread=True, tolerations=[{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]).submit(5)
    assert batch.get(ref, timeout=60) == 25


def test_lists_jobs_by_label_selector_and_tasks_by_state() -> None:
    c = batch.client()
    run = os.urandom(4).hex()
    body = {"command": ["sh", "-c", "exit $((BATCH_TASK_INDEX % 2))"], "tasks": 4, "resources": {"cpu": "100m", "memory": "64Mi"}}
    failing = c.submit_job({**body, "name": f"py-{run}-a", "labels": {"run": run, "kind": "odd-fail"}})
    passing = c.submit_job({**body, "command": ["true"], "name": f"py-{run}-b", "labels": {"run": run}})
    for j in (failing, passing):
        c.wait_job(j["id"], timeout=60)
    assert [j["id"] for j in c.iter_jobs(label_selector=f"run={run}")] == sorted([failing["id"], passing["id"]])
    assert [j["id"] for j in c.iter_jobs(label_selector=f"run={run},!kind")] == [passing["id"]]
    newest = c.list_jobs(name_prefix=f"py-{run}-", sort="-submitted", limit=1)
    assert [j["id"] for j in newest["jobs"]] == [passing["id"]]
    assert "nextPageToken" in newest
    # tasks 1 and 3 exit 1: which failed, and why
    failed = list(c.iter_tasks(failing["id"], state="Failed"))
    assert [x["index"] for x in failed] == [1, 3]
    assert all(x["exitCode"] == 1 for x in failed)
    with pytest.raises(batch.InvalidArgument) as e:
        c.list_jobs(label_selector="run in (a")
    assert e.value.field == "labelSelector"


def test_api_errors_are_typed_and_name_the_field() -> None:
    with pytest.raises(batch.InvalidArgument) as e:
        batch.get(t.square.options(memory="lots").submit(1))
    assert e.value.field == "resources.memory"
    with pytest.raises(batch.Unprocessable):
        t.square.options(queue="no-such-queue").submit(1)
    with pytest.raises(batch.NotFound):
        batch.client().get_job("000000000-000000000000")


def test_a_workflow_fans_out_over_a_result_and_reduces_it() -> None:
    with batch.workflow("py-sum-of-squares") as wf:
        xs = wf.step(t.shards.options(name="shards"), 4)  # [0, 1, 2, 3]
        sq = wf.map(t.square.options(name="squares"), xs.outputs)  # 0, 1, 4, 9
        total = wf.step(t.add.options(name="total"), sq.output)  # 14
    view = wf.wait(timeout=120)
    assert view["phase"] == "Succeeded", view
    assert wf.result(sq) == [0, 1, 4, 9]
    assert wf.result(total) == 14


def test_steps_outputs_are_typed_arguments_anywhere_and_a_fan_in_gets_a_list_in_map_order() -> None:
    with batch.workflow("py-promises") as wf:
        xs = wf.step(t.shards.options(name="xs"), 5)  # [0, 1, 2, 3, 4]
        sq = wf.map(t.square.options(name="sq"), xs.outputs)  # [0, 1, 4, 9, 16]
        back = wf.map(t.square.options(name="back"), [4, 3, 2, 1])  # [16, 9, 4, 1]: item order, not finishing order
        fan_in = wf.step(t.ordered.options(name="fan-in"), back.output)
        total = wf.step(t.weighted_sum.options(name="total"), sq.output, weight=2)  # 2 * 30 = 60
        kw = wf.step(t.weighted_sum.options(name="kw"), values=xs.output)  # a promise as a keyword: 10
        nested = wf.step(t.describe.options(name="nested"), {"sum": total.output, "$batch_input": "xs", "n": 1}, [kw.output, "x", [sq.output]])
    assert wf.wait(timeout=180)["phase"] == "Succeeded", wf.view
    assert wf.result(fan_in) == [16, 9, 4, 1]
    assert (wf.result(total), wf.result(kw)) == (60, 10)
    # the user's own "$batch_input" key is data, never a marker
    assert wf.result(nested) == {"payload": {"sum": 60, "$batch_input": "xs", "n": 1}, "extra": [10, "x", [[0, 1, 4, 9, 16]]]}
    assert wf.view is not None
    if batch.client().api != "local":  # the cluster's view says what the step reads (a local run's view has no dependencies)
        nested_view = next(s for s in wf.view["steps"] if s["name"] == "nested")
        assert (sorted(nested_view["dependsOn"]), nested_view["inputs"]) == (["kw", "sq", "total"], ["total", "kw", "sq"])
        # the step read its inputs with the workflow's read-only token: the user's own is nowhere in its job
        env = batch.client().get_job(nested_view["jobId"])["env"]
        assert "BATCH_TOKEN" not in env and env["BATCH_INPUTS_TOKEN"] == "***" and "BATCH_INPUTS" in env


def test_fan_out_results_are_always_lists_one_item_and_none_included() -> None:
    with batch.workflow("py-lists") as wf:
        one = wf.map(t.square.options(name="one"), [3])  # a one-task map: [9]
        none = wf.map(t.square.options(name="none"), [])  # a map over nothing: []
        zero = wf.step(t.shards.options(name="zero"), 0)  # []
        fanned = wf.map(t.square.options(name="fanned"), zero)  # a fan-out over nothing: []
        with pytest.warns(DeprecationWarning):  # inputs= (deprecated): the steps' outputs as the last positional arguments
            seen = wf.step(t.echo.options(name="seen", inputs=[one, none, fanned]))
            plus = wf.map(t.add.options(name="plus", inputs=[one]), [1, 2])  # add(item, [9]): 10, 11
            none_plus = wf.map(t.add.options(name="none-plus", inputs=[one]), [])  # []
    assert wf.wait(timeout=120)["phase"] == "Succeeded", wf.view
    assert (wf.result(one), wf.result(none), wf.result(fanned)) == ([9], [], [])
    assert wf.result(seen) == [[9], [], []]
    assert (wf.result(plus), wf.result(none_plus)) == ([10, 11], [])


def test_step_options_stay_apart_from_the_function_keywords() -> None:
    with batch.workflow("py-kwargs") as wf:
        first = wf.step(t.greet.options(name="first"), "hi", name="ana", after="lunch")  # greet's own name= and after=
        wf.step(t.greet.options(name="second", after=[first]), "bye")
        legacy = wf.step(t.shards, 2, name="legacy")  # shards takes no `name`: the old way still names the step
    assert wf.wait(timeout=120)["phase"] == "Succeeded", wf.view
    assert wf.result(first) == "hi, ana after lunch"
    assert wf.view is not None
    assert [s["name"] for s in wf.view["steps"]] == ["first", "second", "legacy"]
    assert wf.result(legacy) == [0, 1]



def _most_at_once(spans: List[List[float]]) -> int:
    return max(sum(1 for s, e in spans if s <= t < e) for t, _ in spans)


def test_max_running_bounds_a_map_and_a_workflow() -> None:
    refs = t.timed.options(max_running=2).map(range(6))
    assert _most_at_once(batch.get(refs, timeout=120)) <= 2
    with batch.workflow("py-limited", max_running=1) as wf:
        steps = [wf.step(t.timed.options(name=f"s{i}"), i) for i in range(3)]
        fan = wf.map(t.timed.options(name="fan", max_running=2), [1, 2, 3, 4])
    assert wf.wait(timeout=120)["phase"] == "Succeeded", wf.view
    assert _most_at_once([wf.result(s) for s in steps]) == 1
    assert _most_at_once(wf.result(fan)) <= 2


def test_a_semaphore_bounds_tasks_across_jobs_and_a_lock_runs_them_one_at_a_time() -> None:
    view = batch.put_semaphore("py/pool", capacity=2, description="two at a time")
    assert (view["capacity"], view["held"], view["description"]) == (2, 0, "two at a time")
    pooled = t.timed.options(limits={"py/pool": 1})
    refs = pooled.map(range(3)) + pooled.map(range(3))
    assert _most_at_once(batch.get(refs, timeout=120)) <= 2
    assert batch.get_semaphore("py/pool")["held"] == 0
    locked = t.timed.options(locks=["py/dataset"])
    assert _most_at_once(batch.get(locked.map(range(2)) + locked.map(range(2)), timeout=120)) == 1
    with pytest.raises(batch.Unprocessable) as e:
        t.square.options(limits={"py/none": 1}).submit(2)
    assert (e.value.code, e.value.field) == ("unknown_semaphore", "limits.py/none")
    batch.delete_semaphore("py/pool")
    with pytest.raises(batch.NotFound):
        batch.get_semaphore("py/pool")


def test_a_failed_step_raises_task_failed_with_the_remote_traceback() -> None:
    with batch.workflow("py-fails") as wf:
        bad = wf.step(t.boom.options(name="bad"), "step broke")
    assert wf.wait(timeout=120)["phase"] == "Failed"
    with pytest.raises(batch.TaskFailed) as e:
        wf.result(bad)
    assert e.value.traceback is not None and e.value.traceback.endswith("ValueError: step broke")


def test_cancelling_one_task_of_a_map_stops_only_it() -> None:
    with tempfile.TemporaryDirectory() as d:
        paths = [os.path.join(d, f"go-{i}") for i in range(3)]
        refs = t.wait_for.map(paths)
        time.sleep(0.3)
        batch.cancel(refs[1])
        batch.cancel(refs[1])  # again: nothing changes
        for p in (paths[0], paths[2]):
            open(p, "w").close()
        assert batch.get(refs[0], timeout=60) == paths[0]
        assert batch.get(refs[2], timeout=60) == paths[2]
        with pytest.raises(batch.TaskFailed) as e:
            batch.get(refs[1], timeout=60)
        # the job ends Cancelled: not every task ran, none failed
        assert e.value.state == "Cancelled"
        assert refs[1].wait(timeout=60)["phase"] == "Cancelled"
        batch.cancel(refs[0])  # a task that ended: nothing to cancel, no error
