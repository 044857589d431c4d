"""Local mode (`batchapi.init(local=True)`, `BATCH_LOCAL=1`): the cluster suite's scenarios, run
unchanged on this machine without a cluster — the same results, retries, errors, tracebacks and
workflow rules — and what only a local run does (no cluster calls, a timeout kills the attempt)."""
import os
import tempfile
import time
from typing import Iterator

import pytest

import batchapi as batch
import batchapi.core
import sample_tasks as t
from batchapi.local import LocalClient

# The cluster suite's scenarios, collected again here and run against a local run.
from test_cluster import (  # noqa: F401 - collected by pytest
    test_a_failed_step_raises_task_failed_with_the_remote_traceback, test_a_raising_task_raises_task_failed_with_the_remote_traceback,
    test_a_result_that_is_not_json_fails_the_task_once_never_retried, test_a_script_function_runs_by_value_and_the_script_top_level_runs_once,
    test_a_workflow_fans_out_over_a_result_and_reduces_it, test_fan_out_results_are_always_lists_one_item_and_none_included,
    test_get_of_many_and_wait_and_as_completed, test_map_is_one_array_job_with_a_result_per_item, test_max_running_bounds_a_map_and_a_workflow, test_references_are_awaitable_from_asyncio,
    test_retries_until_the_third_attempt_succeeds, test_step_options_stay_apart_from_the_function_keywords,
    test_steps_outputs_are_typed_arguments_anywhere_and_a_fan_in_gets_a_list_in_map_order,
    test_submit_returns_at_once_and_get_waits_for_the_result)


@pytest.fixture(autouse=True)
def local_run(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalClient]:
    """Every test runs locally (a script the test starts too: `BATCH_LOCAL=1` in its environment)."""
    monkeypatch.setenv("BATCH_LOCAL", "1")
    c = batch.init(local=True, workers=4)
    assert isinstance(c, LocalClient)
    yield c
    with batchapi.core._lock:
        batchapi.core._default = None
    c.close()


def test_batch_local_in_the_environment_selects_a_local_run() -> None:
    with batchapi.core._lock:
        batchapi.core._default = None
    c = batch.client()
    assert isinstance(c, LocalClient)
    try:
        assert batch.get(t.square.submit(6), timeout=60) == 36
    finally:
        c.close()


def test_logs_and_attempts_of_a_local_task() -> None:
    ref = t.say.submit("hello from here")
    assert batch.get(ref, timeout=60) == {"said": "hello from here"}
    assert batch.logs(ref) == "hello from here\n"
    assert [(r["index"], r["attempt"], r["state"], r["exitCode"]) for r in batch.tasks(ref)] == [(0, 1, "Succeeded", 0)]
    with tempfile.TemporaryDirectory() as d:
        flaky = t.flaky.submit(os.path.join(d, "attempts"))  # fails twice, then succeeds
        assert batch.get(flaky, timeout=60) == 3
        assert [r["state"] for r in batch.tasks(flaky)] == ["Failed", "Failed", "Succeeded"]
        assert "RuntimeError: attempt 1 fails" in batch.logs(flaky, stream="stderr", attempt=1)


def test_a_timeout_kills_the_attempt_and_a_cancel_ends_the_job() -> None:
    with tempfile.TemporaryDirectory() as d:
        never = os.path.join(d, "never")
        slow = t.wait_for.options(timeout=1).submit(never)
        with pytest.raises(batch.TaskFailed) as e:
            batch.get(slow, timeout=60)
        assert e.value.reason == "DeadlineExceeded"
        waiting = t.wait_for.submit(never)
        time.sleep(0.2)
        batch.cancel(waiting)
        assert waiting.wait(timeout=60)["phase"] == "Cancelled"


def test_when_failure_and_always_steps_and_skipped_ones() -> None:
    with batch.workflow("local-when") as wf:
        bad = wf.step(t.boom.options(name="bad"), "no")
        after_bad = wf.step(t.square.options(name="after-bad", after=[bad]), 2)  # success: skipped
        on_failure = wf.step(t.square.options(name="on-failure", after=[bad], when="failure"), 3)
        always = wf.step(t.square.options(name="always", after=[after_bad], when="always"), 4)
    view = wf.wait(timeout=60)
    assert view["phase"] == "Failed"
    phases = {s["name"]: s["phase"] for s in view["steps"]}
    assert phases == {"bad": "Failed", "after-bad": "Skipped", "on-failure": "Succeeded", "always": "Succeeded"}
    assert (wf.result(on_failure), wf.result(always)) == (9, 16)
    del after_bad


def test_calls_that_need_a_cluster_say_so() -> None:
    with pytest.raises(batch.BatchError) as e:
        list(batch.list(state="Failed"))
    assert e.value.code == "local_mode"


def test_requirements_are_refused_in_local_mode_never_ignored() -> None:
    with pytest.raises(batch.BatchError) as e:
        t.square.options(requirements=["numpy==2.1.0"]).submit(3)
    assert (e.value.code, e.value.field) == ("local_mode", "requirements")
    assert "install them here" in str(e.value)
    with pytest.raises(batch.BatchError) as e:
        with batch.workflow("py") as wf:
            wf.step(t.square.options(requirements=["numpy==2.1.0"]), 3)
    assert e.value.code == "local_mode"


def test_a_working_dir_is_the_tasks_cwd_less_what_is_ignored(local_run: LocalClient) -> None:
    with tempfile.TemporaryDirectory() as d:
        for name, text in {"data.txt": "x", "secret.env": "y", ".batchignore": "secret.env\n"}.items():
            with open(os.path.join(d, name), "w", encoding="utf-8") as f:
                f.write(text)
        ref = t.list_cwd.options(working_dir=d).submit()
        assert batch.get(ref, timeout=60) == [".batchignore", "data.txt"]
        # the same directory again: not packed or unpacked again
        assert batch.get(t.list_cwd.options(working_dir=d).submit(), timeout=60) == [".batchignore", "data.txt"]
        assert len(local_run._working_dirs) == 1


def test_a_workflow_step_runs_in_its_working_dir() -> None:
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "model.txt"), "w", encoding="utf-8") as f:
            f.write("m")
        with batch.workflow("wd") as wf:
            listed = wf.step(t.list_cwd.options(working_dir=d))
        assert wf.result(listed, timeout=60) == ["model.txt"]


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
