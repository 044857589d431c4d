"""ML training: preprocess → train (a gang: all workers start together, with retries) →
evaluate → register, with a cleanup step that runs only if something failed.

    python3 examples/train_pipeline.py

The local cluster has no GPUs, so the workers ask for CPU here; on a GPU cluster give `train`
`gpus=1` (each worker gets its devices as CUDA_VISIBLE_DEVICES).
"""
import json
import os
import sys
import tempfile

import batchapi as batch

WORK = os.environ.get("TRAIN_WORKDIR") or tempfile.mkdtemp(prefix="train-")


@batch.task(cpus=0.1, memory="64Mi")
def preprocess(workdir):
    data = [(x / 10.0, 3.0 * x / 10.0 + 1.0) for x in range(50)]  # y = 3x + 1
    with open(os.path.join(workdir, "data.json"), "w") as f:
        json.dump(data, f)
    return len(data)


@batch.task(cpus=0.1, memory="64Mi", gang=True, retries=2, tasks=2)
def train(workdir):
    """Each gang worker fits y = a·x + b by gradient descent on its half of the data."""
    rank = int(os.environ["BATCH_TASK_INDEX"])
    with open(os.path.join(workdir, "data.json")) as f:
        data = json.load(f)[rank::2]
    a = b = 0.0
    for _ in range(2000):
        ga = sum((a * x + b - y) * x for x, y in data) / len(data)
        gb = sum(a * x + b - y for x, y in data) / len(data)
        a, b = a - 0.1 * ga, b - 0.1 * gb
    return {"rank": rank, "a": a, "b": b}


@batch.task(cpus=0.1, memory="64Mi")
def evaluate(workers):
    a = sum(w["a"] for w in workers) / len(workers)
    b = sum(w["b"] for w in workers) / len(workers)
    return {"a": a, "b": b, "error": abs(a - 3.0) + abs(b - 1.0)}


@batch.task(cpus=0.1, memory="64Mi")
def register(workdir, model):
    if model["error"] > 0.05:
        raise ValueError(f"model not good enough to register: {model}")
    path = os.path.join(workdir, "model.json")
    with open(path, "w") as f:
        json.dump(model, f)
    return path


@batch.task(cpus=0.1, memory="64Mi")
def cleanup(workdir):
    for name in ("data.json",):
        p = os.path.join(workdir, name)
        if os.path.exists(p):
            os.remove(p)
    return "cleaned"


if __name__ == "__main__":
    with batch.workflow("train-linear") as wf:
        prep = wf.step(preprocess, WORK, name="preprocess")
        fit = wf.step(train, WORK, after=[prep], name="train")
        ev = wf.step(evaluate.options(name="evaluate"), fit.output)  # evaluate(train's result)
        reg = wf.step(register.options(name="register"), WORK, ev.output)
        wf.step(cleanup, WORK, after=[reg], when="failure", name="cleanup")
    view = wf.wait(timeout=240)
    phases = {s["name"]: s["phase"] for s in view["steps"]}
    if view["phase"] != "Succeeded":
        # What each failed step's job says, for whoever reads the failure.
        for s in view["steps"]:
            if s["phase"] == "Failed" and s["jobId"]:
                job = batch.client().get_job(s["jobId"])
                print(f"{s['name']}: {job.get('reason')} {job.get('taskCounts')}", file=sys.stderr)
                try:
                    print(f"  results: {batch.client().results(s['jobId'])}", file=sys.stderr)
                    _, err, _ = batch.client().request("GET", f"/v1/jobs/{s['jobId']}/tasks/0/logs?stream=stderr")
                    print(f"  stderr of task 0: {err}", file=sys.stderr)
                except batch.BatchError as e:
                    print(f"  results or log: {e}", file=sys.stderr)
        if phases.get("evaluate") == "Succeeded":
            print(f"evaluate's model: {wf.result(ev)}", file=sys.stderr)
    assert view["phase"] == "Succeeded", phases
    assert phases["cleanup"] == "Skipped", phases
    model = wf.result(ev)
    print(f"ok: trained y = {model['a']:.3f}x + {model['b']:.3f} on 2 gang workers, registered at {wf.result(reg)} ({phases})")
