"""What the SDK refuses or builds before anything leaves the process, and what the runner does
on the node (run as a real child process): no cluster needed."""
import json
import os
import subprocess
import sys
import textwrap
from typing import Any, Dict

import pytest

import batchapi as batch
import sample_tasks as t
from batchapi.run import MAX_RESULT_BYTES, RESULT_NOT_JSON_EXIT, TRACEBACK_MARKER

SDK_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(batch.__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))


def run_task(env: Dict[str, str], tmp_path: Any, extra: Dict[str, str] = {}) -> "tuple[subprocess.CompletedProcess[str], Any]":
    """Runs `python -m batchapi.run` as the executor does, in an empty directory; returns the process and the result (or None)."""
    out = tmp_path / "result.json"
    node_env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_")}
    node_env.update({**env, **extra, "BATCH_RESULT_PATH": str(out)})
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    p = subprocess.run([sys.executable, "-m", "batchapi.run"], env=node_env, cwd=work, capture_output=True, text=True, timeout=60)
    return p, (json.loads(out.read_text()) if out.exists() else None)


# -- options ---------------------------------------------------------------------------------


def test_an_unknown_option_is_refused_naming_it_and_the_likely_one() -> None:
    with pytest.raises(batch.InvalidTask) as e:
        t.square.options(cpu=4)  # type: ignore[call-arg]
    assert (e.value.code, e.value.field) == ("unknown_option", "cpu")
    assert "did you mean 'cpus'?" in str(e.value)
    with pytest.raises(batch.InvalidTask) as e:
        batch.task(memroy="1Gi")  # type: ignore[call-overload]
    assert (e.value.code, e.value.field) == ("unknown_option", "memroy")
    assert "'memory'" in str(e.value)


@pytest.mark.parametrize("option, value", [
    ("cpus", "4"), ("cpus", -1), ("cpus", float("nan")), ("retries", 1.5), ("gang", 1), ("selector", {"gpu": 1}),
    ("tolerations", [{"key": "a", "efect": "NoSchedule"}]), ("when", "sometimes"), ("after", ["step-a"]),
    ("topology", "rack"), ("topology", {"required": "rack", "preferred": "block"}), ("topology", {"requried": "rack"}),
    ("topology", {"required": ""}), ("topology", {}),
    ("locks", "dataset/lidar"), ("locks", []), ("locks", ["a", "a"]), ("locks", [""]), ("limits", {"db": 0}), ("limits", {"db": True}),
    ("limits", {}), ("limits", ["db"]),
    ("max_running", 0), ("max_running", -3), ("max_running", 2.5), ("max_running", "50"), ("max_running", True),
    ("requirements", "numpy==2.1.0"), ("requirements", []), ("requirements", ["-e ."]), ("requirements", ["--index-url=https://x"]),
    ("requirements", ["a" * 201]), ("requirements", ["numpy"] * 501), ("requirements", [1]), ("requirements", [""]),
    ("requirements", ["numpy==2.1.0 --hash=sha256:abc"]), ("requirements", [f"numpy>=2 --hash=sha256:{'a' * 64}"]),
    ("requirements", [f"numpy==2.1.0 --hash=sha256:{'a' * 64}", "scipy==1.14.1"]),
])
def test_an_option_of_the_wrong_type_is_refused_naming_it(option: str, value: Any) -> None:
    with pytest.raises(batch.InvalidTask) as e:
        t.square.options(**{option: value})
    assert (e.value.code, e.value.field) == ("invalid_option", option)


def test_selector_labels_tolerations_and_spread_reach_the_job_request() -> None:
    body = t.square.options(selector={"gpu.model": "A100"}, labels={"team": "ml"}, spread=True,
                            tolerations=[{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]).job_body((3,))
    assert body["selector"] == {"gpu.model": "A100"}
    assert body["labels"] == {"team": "ml"}
    assert body["spread"] is True
    assert body["tolerations"] == [{"key": "dedicated", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}]


def test_requirements_reach_the_job_request_of_submit_map_and_a_step() -> None:
    reqs = ["scikit-learn==1.5.2", " numpy==2.1.0 "]
    assert t.square.options(requirements=reqs).job_body((3,))["python"] == {"requirements": ["scikit-learn==1.5.2", "numpy==2.1.0"]}
    assert t.square.options(requirements=("numpy==2.1.0",)).job_body((), items=[1, 2])["python"] == {"requirements": ["numpy==2.1.0"]}
    assert "python" not in t.square.job_body((3,))
    wf = batch.workflow("w")  # built, never submitted
    wf.step(t.square.options(name="sq", requirements=["numpy==2.1.0"]), 3)
    assert wf.request()["steps"][0]["job"]["python"] == {"requirements": ["numpy==2.1.0"]}
    # `python=` stays the interpreter's name, not the environment
    assert t.square.options(python="python3.12", requirements=["numpy==2.1.0"]).job_body((3,))["command"][0] == "python3.12"


def test_locks_and_limits_reach_the_job_request() -> None:
    body = t.square.options(locks=["dataset/lidar"], limits={"db/warehouse-conn": 2}).job_body((3,))
    assert (body["locks"], body["limits"]) == (["dataset/lidar"], {"db/warehouse-conn": 2})
    assert "locks" not in t.square.job_body((3,)) and "limits" not in t.square.job_body((3,))


def test_topology_reaches_the_job_request() -> None:
    assert t.square.options(gang=True, tasks=8, topology={"required": "rack"}).job_body((3,))["topology"] == {"required": "rack"}
    assert t.square.options(topology={"preferred": "block"}).job_body((3,))["topology"] == {"preferred": "block"}
    assert "topology" not in t.square.job_body((3,))


def test_max_running_reaches_the_job_request_of_submit_map_and_a_map_step() -> None:
    assert t.square.options(tasks=1000, max_running=50).job_body((3,))["maxRunning"] == 50
    assert t.square.options(max_running=10).job_body((), items=[1, 2, 3])["maxRunning"] == 10
    assert "maxRunning" not in t.square.job_body((3,))
    wf = batch.workflow("w", max_running=3)  # built, never submitted
    src = wf.step(t.shards.options(name="src"), 4)
    wf.map(t.square.options(name="sq", max_running=2), src)
    body = wf.request()
    assert body["maxRunning"] == 3
    assert body["steps"][1]["job"]["maxRunning"] == 2
    assert "maxRunning" not in body["steps"][0]["job"]
    assert "maxRunning" not in batch.workflow("w").request()


def test_max_running_given_as_a_keyword_of_the_call_says_it_is_an_option() -> None:
    wf = batch.workflow("w")  # built, never submitted
    with pytest.raises(batch.InvalidTask) as e:
        wf.map(t.square, [1, 2], max_running=3)
    assert e.value.code == "bad_arguments"
    assert "'max_running' is a task option: pass it as task.options(max_running=…)" in str(e.value)


@pytest.mark.parametrize("value", [0, 1001, 2.0, True, "3"])
def test_a_workflow_max_running_out_of_range_is_refused_naming_it(value: Any) -> None:
    with pytest.raises(batch.InvalidTask) as e:
        batch.workflow("w", max_running=value)
    assert (e.value.code, e.value.field) == ("invalid_option", "max_running")


def test_step_options_are_refused_outside_a_workflow() -> None:
    wf = batch.workflow("w")  # built, never submitted
    first = wf.step(t.shards.options(name="first"), 2)
    with pytest.raises(batch.InvalidTask) as e:
        t.square.options(after=[first]).submit(1)
    assert (e.value.code, e.value.field) == ("step_option_outside_workflow", "after")


def test_cache_and_cache_version_are_step_options_the_request_carries() -> None:
    wf = batch.workflow("w")  # built, never submitted
    prep = wf.step(t.shards.options(name="prep", cache=True), 2)
    wf.map(t.square.options(name="sq", cache=True, cache_version="v2"), prep)
    wf.step(t.shards.options(name="plain"), 1)
    steps = {s["name"]: s for s in wf.request()["steps"]}
    assert (steps["prep"].get("cache"), steps["prep"].get("cacheVersion")) == (True, None)
    assert (steps["sq"]["cache"], steps["sq"]["cacheVersion"]) == (True, "v2")
    assert "cache" not in steps["plain"] and "cacheVersion" not in steps["plain"]
    assert "cache" not in steps["sq"]["job"]


@pytest.mark.parametrize("options, field", [({"cache": "yes"}, "cache"), ({"cache": True, "cache_version": "v" * 65}, "cache_version"),
                                            ({"cache_version": "v2"}, "cache_version")])
def test_bad_cache_options_are_refused_naming_them(options: Dict[str, Any], field: str) -> None:
    wf = batch.workflow("w")  # built, never submitted
    with pytest.raises(batch.InvalidTask) as e:
        wf.step(t.shards.options(name="s", **options), 1)
    assert (e.value.code, e.value.field) == ("invalid_option", field)


def test_cache_outside_a_workflow_or_as_a_keyword_of_the_call_is_refused() -> None:
    with pytest.raises(batch.InvalidTask) as e:
        t.square.options(cache=True).submit(1)
    assert (e.value.code, e.value.field) == ("step_option_outside_workflow", "cache")
    with pytest.raises(batch.InvalidTask) as e:
        batch.workflow("w").step(t.square, 1, cache=True)
    assert "'cache' is a task option: pass it as task.options(cache=…)" in str(e.value)


# -- arguments ----------------------------------------------------------------------------------


def test_arguments_are_bound_against_the_signature_at_submit() -> None:
    with pytest.raises(batch.InvalidTask) as e:
        t.square.job_body((1, 2))
    assert e.value.code == "bad_arguments"
    assert "too many positional arguments" in str(e.value)
    with pytest.raises(batch.InvalidTask) as e:
        t.greet.job_body(("hi",), {"nmae": "ana"})
    assert "nmae" in str(e.value)
    # a map passes the item first: square takes nothing else
    with pytest.raises(batch.InvalidTask) as e:
        t.square.job_body((5,), items=[1, 2])
    assert "map passes the item" in str(e.value)
    # the deprecated inputs= puts the steps' outputs last: square(x) has no room for one more
    wf = batch.workflow("w")  # built, never submitted
    s = wf.step(t.shards.options(name="s"), 1)
    with pytest.raises(batch.InvalidTask) as e, pytest.warns(DeprecationWarning):
        wf.step(t.square.options(inputs=[s], name="x"), 1)
    assert e.value.code == "bad_arguments" and "too many positional arguments" in str(e.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), object(), {1, 2}])
def test_arguments_that_are_not_json_are_refused_at_submit(value: Any) -> None:
    with pytest.raises(batch.InvalidTask) as e:
        t.square.job_body((value,))
    assert (e.value.code, e.value.field) == ("arguments_not_json", "args")
    with pytest.raises(batch.InvalidTask) as e:
        t.square.job_body((), items=[1, value])
    assert (e.value.code, e.value.field) == ("arguments_not_json", "items")


def test_a_map_over_nothing_submits_nothing_and_is_an_empty_list() -> None:
    # no client is configured here: a submit would fail
    assert t.square.map([]) == []
    assert batch.get([]) == []


# -- the runner ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, says", [("nan", "Out of range float"), ("inf", "Out of range float"), ("object", "not JSON serializable"),
                                        ("big", f"over the {MAX_RESULT_BYTES}")])
def test_a_result_that_cannot_be_stored_ends_the_task_with_the_exit_code_never_retried(kind: str, says: str, tmp_path: Any) -> None:
    env = t.returns.job_body((kind, str(tmp_path / "attempts")))["env"]
    p, result = run_task(env, tmp_path)
    assert p.returncode == RESULT_NOT_JSON_EXIT == 65
    assert result is None
    assert TRACEBACK_MARKER in p.stderr and says in p.stderr
    # once: the function ran one time, and the job's retry policy never retries exit 65
    assert len(os.listdir(tmp_path / "attempts")) == 1
    assert t.returns.job_body((kind, "d"))["retry"]["failFastOnExitCodes"] == [65]


def test_the_runner_runs_once_as_main_without_a_warning(tmp_path: Any) -> None:
    """`import batchapi` must not import `batchapi.run`: `-m` would run it a second time as
    __main__ and print a RuntimeWarning into every task's stderr."""
    p, result = run_task(t.square.job_body((3,))["env"], tmp_path, {"PYTHONWARNINGS": "error::RuntimeWarning"})
    assert (p.returncode, result) == (0, 9), p.stderr
    assert "RuntimeWarning" not in p.stderr
    imported = subprocess.run([sys.executable, "-c", "import sys, batchapi; print('batchapi.run' in sys.modules)"], capture_output=True, text=True, timeout=60)
    assert imported.stdout.strip() == "False", imported.stderr


def test_a_node_with_a_blob_store_takes_a_result_up_to_its_bound(tmp_path: Any) -> None:
    """70 KiB is over what a node without a blob store keeps inline, under what one with it keeps."""
    env = t.returns.job_body(("big", str(tmp_path / "attempts")))["env"]
    p, result = run_task(env, tmp_path, {"BATCH_RESULT_MAX_BYTES": str(64 * 2**20)})
    assert (p.returncode, result) == (0, "x" * 70_000), p.stderr
    p, _ = run_task(env, tmp_path, {"BATCH_RESULT_MAX_BYTES": "1000"})
    assert p.returncode == RESULT_NOT_JSON_EXIT and "over the 1000 a task may return here" in p.stderr


def test_an_exception_prints_its_traceback_after_the_marker_and_exits_1(tmp_path: Any) -> None:
    p, result = run_task(t.boom.job_body(("broken",))["env"], tmp_path)
    assert (p.returncode, result) == (1, None)
    tb = p.stderr[p.stderr.rindex(TRACEBACK_MARKER):]
    assert 'raise ValueError(msg)' in tb and tb.rstrip().endswith("ValueError: broken")


# -- shipping functions of __main__, lambdas and closures ------------------------------------------

SCRIPT = textwrap.dedent('''
    import json, os, sys
    import batchapi as batch
    with open(os.environ["TOP_LEVEL_RUNS"], "a") as f:   # top-level code: must run once, here, never on the node
        f.write("ran\\n")

    SCALE = 10

    @batch.task(cpus=0.1)
    def scaled(x):
        return x * SCALE

    def make_adder(n):
        return batch.task(lambda x: x + n)

    def outer():
        offset = 5
        def inner(x):
            return x + offset
        return batch.task(inner)

    which = sys.argv[1]
    t = {"main": scaled, "lambda": make_adder(3), "closure": outer()}[which]
    print(json.dumps(t.job_body((4,))["env"]))
''')


def _submit_side(tmp_path: Any, which: str, *args: str) -> Dict[str, str]:
    script = tmp_path / "pipeline.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "TOP_LEVEL_RUNS": str(tmp_path / "runs"), "PYTHONPATH": os.pathsep.join([SDK_ROOT, HERE])}
    p = subprocess.run([sys.executable, *args, str(script), which], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return dict(json.loads(p.stdout.strip().splitlines()[-1]))


@pytest.mark.parametrize("which, expected", [("main", 40), ("lambda", 7), ("closure", 9)])
def test_functions_of_main_lambdas_and_closures_run_by_value_without_the_script(which: str, expected: int, tmp_path: Any) -> None:
    env = _submit_side(tmp_path, which)
    assert "BATCH_PY_CALL" not in env and env["BATCH_PY_FN_0"]
    os.remove(tmp_path / "pipeline.py")  # the node has no copy of the script
    p, result = run_task(env, tmp_path, {"TOP_LEVEL_RUNS": str(tmp_path / "runs")})
    assert p.returncode == 0, p.stderr
    assert result == expected
    # the script's top level ran once, when it was submitted; not on the node
    assert (tmp_path / "runs").read_text() == "ran\n"


def test_a_function_of_main_is_refused_at_submit_without_cloudpickle(tmp_path: Any) -> None:
    script = tmp_path / "pipeline.py"
    script.write_text("import sys\nsys.modules['cloudpickle'] = None  # not installed\n" + SCRIPT)
    env = {**os.environ, "TOP_LEVEL_RUNS": str(tmp_path / "runs"), "PYTHONPATH": os.pathsep.join([SDK_ROOT, HERE])}
    p = subprocess.run([sys.executable, str(script), "main"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "batchapi.errors.InvalidTask: function_not_shippable: scaled is defined in __main__" in p.stderr
    assert "pip install cloudpickle" in p.stderr


def test_python_c_functions_ship_by_value(tmp_path: Any) -> None:
    code = ("import json, batchapi as batch\n"
            "f = batch.task(lambda s: s.upper())\n"
            "print(json.dumps(f.job_body(('abc',))['env']))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SDK_ROOT, HERE])}
    p = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    node, result = run_task(json.loads(p.stdout), tmp_path)
    assert (node.returncode, result) == (0, "ABC"), node.stderr


def test_a_module_function_still_goes_by_name() -> None:
    env = t.square.job_body((2,))["env"]
    assert env["BATCH_PY_CALL"] == "sample_tasks:square"
    assert not any(k.startswith("BATCH_PY_FN_") for k in env)


def test_a_function_that_captures_too_much_is_refused_with_the_size() -> None:
    big = "x" * 300_000
    f = batch.task(lambda: len(big))
    with pytest.raises(batch.InvalidTask) as e:
        f.job_body(())
    assert (e.value.code, e.value.field) == ("too_large", "fn")


# -- typing ----------------------------------------------------------------------------------------

TYPED = textwrap.dedent('''
    import batchapi as batch

    @batch.task(cpus=1)
    def train(cfg: dict[str, float], epochs: int = 1) -> float:
        return 0.0

    ref = train.submit({"lr": 0.1}, epochs=2)
    reveal_type(ref)
    reveal_type(batch.get(ref))
    reveal_type(batch.get([ref]))
    train.submit("no")
    train.submit({"lr": 0.1}, epoch=2)
    train.options(cpu=4)
''')


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory: Any) -> str:
    """One mypy cache for this module's runs: the standard library's stubs are analysed once, not
    once a run (three cold runs took most of the Python suite's time); fresh for every session."""
    return str(tmp_path_factory.mktemp("mypy-cache"))


def mypy_strict(cache: str, *args: str, cwd: Any = None) -> "subprocess.CompletedProcess[str]":
    return subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", cache, *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": SDK_ROOT}, timeout=300)


def test_submit_is_checked_against_the_signature_by_mypy(tmp_path: Any, mypy_cache: str) -> None:
    (tmp_path / "typed.py").write_text(TYPED)
    p = mypy_strict(mypy_cache, "typed.py", cwd=tmp_path)
    out = p.stdout
    assert 'Revealed type is "batchapi.core.JobRef[builtins.float]"' in out or 'Revealed type is "batchapi.core.JobRef[float]"' in out, out
    assert 'typed.py:10: note: Revealed type is "float"' in out or 'Revealed type is "builtins.float"' in out, out
    assert 'Argument 1 to "submit" of "Task" has incompatible type "str"; expected "dict[str, float]"' in out, out
    assert 'Unexpected keyword argument "epoch" for "submit" of "Task"; did you mean "epochs"?' in out, out
    assert 'Unexpected keyword argument "cpu" for "options" of "Task"; did you mean "cpus"?' in out, out


def test_the_sdk_and_its_typed_uses_are_mypy_strict_clean(mypy_cache: str) -> None:
    # the SDK, and these tests and tasks as its users' code
    tests = [os.path.join(HERE, f) for f in ("sample_tasks.py", "test_cluster.py", "test_submit_checks.py", "test_waiting.py")]
    for target in (["-p", "batchapi"], tests):
        p = mypy_strict(mypy_cache, *target)
        assert p.returncode == 0, p.stdout


@pytest.mark.parametrize("fn_name, job_name", [("train_model", "train-model"), ("<lambda>", "lambda"), ("_private", "private"), ("__", "task")])
def test_default_job_names_are_ones_the_api_takes(fn_name: str, job_name: str) -> None:
    def f(x: int) -> int:
        return x

    f.__name__ = fn_name
    assert batch.task(f).job_body((1,))["name"] == job_name
