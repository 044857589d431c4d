"""The task runner: `python3 -m batchapi.run` on a node.

It loads the function — by value from `BATCH_PY_FN_0`, `BATCH_PY_FN_1`, … (base64 of its
cloudpickle, for functions of `__main__`, notebooks, lambdas and closures: the submitting
script is never imported here, so its top-level code never runs on the node), else by name
from `BATCH_PY_CALL` (`module:qualname`) — and calls it with `BATCH_PY_ARGS` (JSON), with
`BATCH_MAP_ITEM` first for a map task. Each marker of a step's output among the arguments
(`{"$batch_input": "prep"}`, see `batchapi._steps`) is replaced by that step's result: read from
the API (`BATCH_API`) with the step's own inputs token (`BATCH_INPUTS_TOKEN`, read-only, minted by
the workflow controller) from the jobs `BATCH_INPUTS` names, or — a local run — from the JSON
object of values in `BATCH_PY_INPUTS_FILE`. Each template parameter's marker
(`{"$batch_param": "date"}`) is replaced by the value of `BATCH_PARAM_date`.

The result is checked inside the attempt, before anything is written: a value that is not
JSON (NaN, inf, an object) or is over what the node keeps (`BATCH_RESULT_MAX_BYTES`: 64 KiB
without a blob store, 64 MiB by default with one) exits `RESULT_NOT_JSON_EXIT` (65, EX_DATAERR), an
exit code the SDK puts in the job's `retry.failFastOnExitCodes`, so a finished computation is
never run again for a result it cannot store. An exception prints `TRACEBACK_MARKER` and its
traceback to stderr and exits 1 (retried under the task's `retries`); no result is written.
"""
import base64
import importlib
import json
import os
import pickle
import sys
import traceback
from typing import Any, Callable, Dict, List

# Re-exported: the runner's exit code and marker, defined apart so that the client need not import this module.
from ._wire import RESULT_NOT_JSON_EXIT as RESULT_NOT_JSON_EXIT, TRACEBACK_MARKER as TRACEBACK_MARKER

#: Largest result a node keeps without a blob store, in UTF-8 bytes of JSON. A node with one keeps
#: larger results there (by reference) and says its bound in `BATCH_RESULT_MAX_BYTES`.
MAX_RESULT_BYTES = 64 * 1024


def result_max_bytes() -> int:
    """The largest result this node keeps: `BATCH_RESULT_MAX_BYTES` (set by the executor), else `MAX_RESULT_BYTES`."""
    try:
        return max(1, int(os.environ.get("BATCH_RESULT_MAX_BYTES") or MAX_RESULT_BYTES))
    except ValueError:
        return MAX_RESULT_BYTES


def empty_list() -> List[Any]:
    """The call of a workflow map step over no items: its result is the empty list."""
    return []


def _inputs() -> Dict[str, Any]:
    """The results of this step's inputs by step name: a map step gives a list (of one for one
    item, empty for none); another step its value (a list for a step of many tasks)."""
    if os.environ.get("BATCH_PY_INPUTS_FILE"):  # a local run hands the inputs' results over as values
        with open(os.environ["BATCH_PY_INPUTS_FILE"], encoding="utf-8") as f:
            values: Dict[str, Any] = json.load(f)
        return values
    specs = json.loads(os.environ.get("BATCH_INPUTS") or "[]")
    if not specs:
        return {}
    from ._steps import input_value
    from .client import Client

    if not os.environ.get("BATCH_API"):
        raise RuntimeError("this step reads the outputs of other steps but its environment has no BATCH_API (the API's address)")
    c = Client(os.environ["BATCH_API"], os.environ.get("BATCH_INPUTS_TOKEN", ""))
    return {spec["step"]: input_value(c, spec) for spec in specs}


def _load() -> Callable[..., Any]:
    if "BATCH_PY_FN_0" in os.environ:
        want = os.environ.get("BATCH_PY_VERSION")
        have = f"{sys.version_info[0]}.{sys.version_info[1]}"
        if want and want != have:
            raise RuntimeError(f"this function was shipped by value from Python {want}; the node runs Python {have} "
                               "(set the task's python= option to an interpreter of the same version)")
        chunks = []
        i = 0
        while f"BATCH_PY_FN_{i}" in os.environ:
            chunks.append(os.environ[f"BATCH_PY_FN_{i}"])
            i += 1
        try:
            fn = pickle.loads(base64.b64decode("".join(chunks)))
        except ModuleNotFoundError as e:
            if e.name == "cloudpickle":
                raise RuntimeError("this function was shipped by value: install cloudpickle on the node (pip install cloudpickle)") from e
            raise
        return getattr(fn, "fn", fn)  # type: ignore[no-any-return]
    module, _, name = os.environ["BATCH_PY_CALL"].partition(":")
    target: Any = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return getattr(target, "fn", target)  # type: ignore[no-any-return]  # a Task wraps the function


def _failed(message: str) -> None:
    print(TRACEBACK_MARKER, file=sys.stderr)
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    call: Dict[str, Any] = json.loads(os.environ.get("BATCH_PY_ARGS") or '{"args": [], "kwargs": {}}')
    try:
        from ._steps import decode_arguments, param_of_env_name

        inputs = _inputs()
        params = {name: v for k, v in os.environ.items() if (name := param_of_env_name(k)) is not None}
        args = list(decode_arguments(list(call.get("args", [])), inputs, params))
        kwargs = decode_arguments(call.get("kwargs", {}), inputs, params)
        if "BATCH_MAP_ITEM" in os.environ:
            args.insert(0, json.loads(os.environ["BATCH_MAP_ITEM"]))
        fn = _load()
        value = fn(*args, **kwargs)
    except Exception:  # noqa: BLE001 - the task's error goes to its stderr
        _failed(traceback.format_exc())
        return 1
    name = getattr(fn, "__qualname__", "the function")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as e:
        _failed(f"ResultNotJSON: the result of {name} is not JSON ({e}); return numbers, strings, lists, dicts, "
                "booleans or None (not NaN or inf) — the task is not retried for this")
        return RESULT_NOT_JSON_EXIT
    size, limit = len(text.encode("utf-8")), result_max_bytes()
    if size > limit:
        _failed(f"ResultNotJSON: the result of {name} is {size} bytes of JSON, over the {limit} a task may return here; "
                "write large data to storage and return its location — the task is not retried for this")
        return RESULT_NOT_JSON_EXIT
    path = os.environ.get("BATCH_RESULT_PATH")
    if path:
        with open(path, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
