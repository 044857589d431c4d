"""Steps' outputs as arguments (`prep.output`, `prep.outputs`), checked where the workflow is
defined: the markers in `BATCH_PY_ARGS` (and the escaping of data that looks like one), the step's
`inputs` and dependencies, type checks against annotations, and the runner putting values in place.
Nothing here reaches a cluster."""
import json
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional

import pytest

import batchapi as batch
import sample_tasks as t
from batchapi._steps import decode_arguments, encode_arguments

SDK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(batch.__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))


@batch.task
def label(x: str) -> str:
    return x


@batch.task
def maybe(x: Optional[int] = None) -> Optional[int]:
    return x


@batch.task
def ratio(x: float) -> float:
    return x


@batch.task
def loose(x, y: Any) -> None:  # type: ignore[no-untyped-def]
    pass


@batch.task
def table(rows: Dict[str, List[int]]) -> int:
    return len(rows)


def _args(step: Dict[str, Any]) -> Any:
    return json.loads(step["job"]["env"]["BATCH_PY_ARGS"])


def test_an_output_is_a_marker_in_place_and_the_step_reads_and_depends_on_its_step() -> None:
    wf = batch.workflow("w")  # built, never submitted
    xs = wf.step(t.shards.options(name="xs"), 3)
    sq = wf.map(t.square.options(name="sq"), xs.outputs)
    total = wf.step(t.weighted_sum.options(name="total"), sq.output, weight=2)
    kw = wf.step(t.weighted_sum.options(name="kw"), values=xs.output)
    nested = wf.step(t.describe.options(name="nested"), {"a": total.output}, [kw.output, [sq.output]])
    steps = {s["name"]: s for s in wf.request()["steps"]}
    assert steps["sq"]["map"] == {"fromStep": "xs"} and steps["sq"]["dependsOn"] == ["xs"] and "inputs" not in steps["sq"]
    assert _args(steps["total"]) == {"args": [{"$batch_input": "sq"}], "kwargs": {"weight": 2}}
    assert (steps["total"]["inputs"], steps["total"]["dependsOn"]) == (["sq"], ["sq"])
    assert _args(steps["kw"]) == {"args": [], "kwargs": {"values": {"$batch_input": "xs"}}}
    assert _args(steps["nested"])["args"] == [{"a": {"$batch_input": "total"}}, [{"$batch_input": "kw"}, [{"$batch_input": "sq"}]]]
    assert steps["nested"]["inputs"] == ["total", "kw", "sq"]
    for s in steps.values():  # no user token in any step: the controller gives a read-only one
        assert "BATCH_TOKEN" not in s["job"]["env"]
    assert nested.name == "nested"


def test_wf_map_over_a_step_its_output_or_its_outputs_is_one_fan_out() -> None:
    wf = batch.workflow("w")
    xs = wf.step(t.shards.options(name="xs"), 3)
    for i, over in enumerate([xs, xs.output, xs.outputs]):
        wf.map(t.square.options(name=f"m{i}"), over)
    assert [s.get("map") for s in wf.request()["steps"][1:]] == [{"fromStep": "xs"}] * 3


@pytest.mark.parametrize("data", [
    {"$batch_input": "xs"},
    {"$batch_literal": {"$batch_input": "xs"}},
    [{"$batch_x": 1, "y": [{"$batch_input": "z"}]}],
    {"plain": {"$batch_input": 3}, "list": [1, "$batch_input"]},
])
def test_user_data_that_looks_like_a_marker_is_escaped_and_comes_back_unchanged(data: Any) -> None:
    wf = batch.workflow("w")
    wf.step(t.echo.options(name="e"), data)
    sent = _args(wf.request()["steps"][0])
    assert "inputs" not in wf.request()["steps"][0]
    assert decode_arguments(sent, {}) == {"args": [data], "kwargs": {}}
    assert decode_arguments(encode_arguments(data, lambda v: None), {"xs": "NOT THIS"}) == data


def test_a_marker_with_no_value_fails_loudly_at_run_time() -> None:
    with pytest.raises(KeyError, match="step 'prep'"):
        decode_arguments({"$batch_input": "prep"}, {})


@pytest.mark.parametrize("task, args, kwargs, field", [
    (t.square, ("shards",), {}, "x"),  # square(x: int) given List[int]
    (label, ("shards",), {}, "x"),  # label(x: str) given List[int]
    (t.weighted_sum, ("square",), {}, "values"),  # List[int] expected, int given
    (t.weighted_sum, ("sq",), {"weight": "label"}, "weight"),  # int expected, str given (as a keyword)
    (t.weighted_sum, ("words",), {}, "values"),  # List[int] expected, List[str] given (a map of label)
    (table, ("shards",), {}, "rows"),  # a dict expected, a list given
])
def test_an_output_whose_annotated_type_cannot_fit_the_parameter_is_refused_naming_it(task: Any, args: Any, kwargs: Any, field: str) -> None:
    wf = batch.workflow("w")
    steps = {"shards": wf.step(t.shards.options(name="shards"), 2), "square": wf.step(t.square.options(name="square"), 2),
             "label": wf.step(label.options(name="label"), "a"), "sq": wf.map(t.square.options(name="sq"), [1, 2]),
             "words": wf.map(label.options(name="words"), ["a"])}
    with pytest.raises(batch.InvalidTask) as e:
        wf.step(task, *[steps[a].output for a in args], **{k: steps[v].output for k, v in kwargs.items()})
    assert (e.value.code, e.value.field) == ("type_mismatch", field)
    assert f"parameter {field!r} expects" in str(e.value) and "returns" in str(e.value)


def test_what_annotations_allow_or_leave_open_is_accepted() -> None:
    wf = batch.workflow("w")
    sq = wf.map(t.square.options(name="sq"), [1, 2])  # List[int]
    one = wf.step(t.square.options(name="one"), 2)  # int
    anything = wf.step(t.echo.options(name="any"), 1)  # List[Any]
    untyped = wf.step(batch.task(lambda: 1).options(name="untyped"))  # no annotation at all
    wf.step(t.weighted_sum.options(name="a"), sq.output, weight=one.output)
    wf.step(maybe.options(name="b"), one.output)  # Optional[int] takes an int
    wf.step(ratio.options(name="c"), one.output)  # a float parameter takes an int
    wf.step(t.weighted_sum.options(name="d"), anything.output)  # List[Any] fits List[int]: not decided, accepted
    wf.step(label.options(name="e"), untyped.output)
    wf.step(loose.options(name="f"), sq.output, one.output)
    wf.step(t.add.options(name="g"), sq.output, one.output)  # *xs: Any


def test_a_map_over_no_items_is_typed_as_a_list_too() -> None:
    wf = batch.workflow("w")
    none = wf.map(t.square.options(name="none"), [])  # runs as one task returning []: still a List[int]
    wf.step(t.weighted_sum.options(name="ok"), none.output)
    with pytest.raises(batch.InvalidTask) as e:
        wf.step(t.square.options(name="bad"), none.output)
    assert (e.value.code, e.value.field) == ("type_mismatch", "x")


def test_a_fan_out_item_is_checked_against_the_first_parameter() -> None:
    wf = batch.workflow("w")
    xs = wf.step(t.shards.options(name="xs"), 3)  # List[int]: items are int
    wf.map(t.square.options(name="ok"), xs.outputs)
    with pytest.raises(batch.InvalidTask) as e:
        wf.map(label.options(name="bad"), xs.outputs)
    assert (e.value.code, e.value.field) == ("type_mismatch", "x") and "fan-out's item" in str(e.value)


def test_outputs_outside_their_workflow_and_steps_as_values_are_refused() -> None:
    wf, other = batch.workflow("w"), batch.workflow("other")
    xs = wf.step(t.shards.options(name="xs"), 3)
    for call in (lambda: t.square.job_body((xs.output,)), lambda: other.step(t.square, xs.output), lambda: wf.step(t.square, xs),
                 lambda: wf.step(t.square, xs.outputs), lambda: other.map(t.square, xs.outputs)):
        with pytest.raises(batch.InvalidTask) as e:
            call()
        assert e.value.code == "bad_arguments"


def test_deprecated_inputs_pass_outputs_last_without_the_users_token() -> None:
    wf = batch.workflow("w")
    xs = wf.step(t.shards.options(name="xs"), 3)
    with pytest.warns(DeprecationWarning, match="inputs= is deprecated"):
        wf.step(t.echo.options(name="e", inputs=[xs]), "first")
    e = wf.request()["steps"][1]
    assert _args(e) == {"args": ["first", {"$batch_input": "xs"}], "kwargs": {}}
    assert (e["inputs"], e["dependsOn"]) == (["xs"], ["xs"]) and "BATCH_TOKEN" not in e["job"]["env"]


def test_the_runner_puts_each_value_in_place(tmp_path: Any) -> None:
    values = tmp_path / "inputs.json"
    values.write_text(json.dumps({"total": 60, "kw": 10, "sq": [0, 1, 4]}))
    result = tmp_path / "result.json"
    wf = batch.workflow("w")
    total, kw, sq = (wf.step(t.square.options(name=n), 1) for n in ("total", "kw", "sq"))
    wf.step(t.describe.options(name="nested"), {"a": total.output, "$batch_input": "kw"}, [kw.output, [sq.output]])
    env = {**os.environ, **wf.request()["steps"][-1]["job"]["env"], "BATCH_PY_INPUTS_FILE": str(values), "BATCH_RESULT_PATH": str(result),
           "PYTHONPATH": os.pathsep.join([SDK_ROOT, HERE])}
    p = subprocess.run([sys.executable, "-m", "batchapi.run"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(result.read_text()) == {"payload": {"a": 60, "$batch_input": "kw"}, "extra": [10, [[0, 1, 4]]]}


TYPED = '''
from typing import List
import batchapi as batch

@batch.task
def prep(n: int) -> List[int]:
    return list(range(n))

@batch.task
def train(xs: List[int], lr: float = 0.1) -> float:
    return 0.0

with batch.workflow("typed") as wf:
    p = wf.step(prep, 3)
    reveal_type(p)
    reveal_type(p.output)
    m = wf.map(train, [[1]])
    reveal_type(m.output)
    wf.step(train, p.output, lr=0.2)
'''


def test_mypy_sees_a_steps_output_as_what_its_function_returns(tmp_path: Any) -> None:
    (tmp_path / "typed.py").write_text(TYPED)
    p = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path / "cache"), "typed.py"], cwd=tmp_path,
                       capture_output=True, text=True, env={**os.environ, "PYTHONPATH": SDK_ROOT}, timeout=300)
    out = p.stdout.replace("builtins.", "")
    assert 'typed.py:15: note: Revealed type is "batchapi.core.StepRef[list[int]]"' in out, out
    assert 'typed.py:16: note: Revealed type is "list[int]"' in out, out
    assert 'typed.py:18: note: Revealed type is "list[float]"' in out, out
    assert p.returncode == 0 and "error" not in out, out
