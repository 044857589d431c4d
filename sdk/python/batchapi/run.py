"""The task runner: `python3 -m batchapi.run` on a node. Imports `BATCH_PY_CALL` (module:name),
calls it with `BATCH_PY_ARGS` (and `BATCH_MAP_ITEM` first for a map task, and the results of
`BATCH_PY_INPUTS` steps last), and writes the JSON of its return value to `BATCH_RESULT_PATH`.
An exception prints its traceback to stderr and exits 1 (no result is written)."""
import importlib
import json
import os
import sys
import traceback
from typing import Any, List


def _inputs(names: List[str]) -> List[Any]:
    """The results of the named steps of this task's workflow (a one-task step gives its value)."""
    from .client import Client
    c = Client()
    me = c.get_job(os.environ["BATCH_JOB_ID"])
    wf = c.get_workflow(me["labels"]["batch.workflow"])
    out = []
    for name in names:
        step = next(s for s in wf["steps"] if s["name"] == name)
        values = [r["value"] for r in sorted(c.results(step["jobId"]), key=lambda r: r["index"])]
        out.append(values[0] if c.get_job(step["jobId"])["tasks"] == 1 and values else values)
    return out


def main() -> int:
    module, _, name = os.environ["BATCH_PY_CALL"].partition(":")
    call = json.loads(os.environ.get("BATCH_PY_ARGS") or '{"args": [], "kwargs": {}}')
    args = list(call.get("args", []))
    if "BATCH_MAP_ITEM" in os.environ:
        args.insert(0, json.loads(os.environ["BATCH_MAP_ITEM"]))
    if os.environ.get("BATCH_PY_INPUTS"):
        args.extend(_inputs(json.loads(os.environ["BATCH_PY_INPUTS"])))
    try:
        target: Any = importlib.import_module(module)
        for part in name.split("."):
            target = getattr(target, part)
        fn = getattr(target, "fn", target)  # a Task wraps the function
        value = fn(*args, **call.get("kwargs", {}))
    except Exception:  # noqa: BLE001 - the task's error goes to its stderr
        traceback.print_exc()
        return 1
    path = os.environ.get("BATCH_RESULT_PATH")
    if path:
        with open(path, "w") as f:
            json.dump(value, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
