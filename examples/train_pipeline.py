"""ML training with a real library: scikit-learn, installed on the node through `requirements=`
(the node builds a virtual environment from `requirements.txt` once; nothing comes from the node's
own site-packages), trains and evaluates a digit classifier.

    prepare  → checks the environment and reports the data split (digits.split: 1,797 8×8 images
               shipped inside scikit-learn, 60/20/20, a fixed seed)
    train    → a map: one task per regularisation strength C, each fits a scaled logistic
               regression, scores it on the validation split, and returns the model as an
               artifact (its joblib bytes with their SHA-256) in its result
    evaluate → takes every candidate (train's results, in C order), loads the best by validation
               accuracy after checking its bytes, and scores it once on the held-out test split

The model code (digits.py) reaches the nodes in the tasks' `working_dir` (this directory, packed
and uploaded once by digest), and the model itself passes between steps in results: a result over
64 KiB is kept in the cluster's blob store and read by reference, so no step needs a shared disk.
Run it against `batch dev` or BATCH_API/BATCH_TOKEN, from any directory:

    python3 train_pipeline.py
"""
import os
import sys

import batchapi as batch

HERE = os.path.dirname(os.path.abspath(__file__))
# Pinned specifiers (a lock file with --hash lines works too): the node's pip installs them from its index.
REQUIREMENTS = batch.read_requirements(os.path.join(HERE, "requirements.txt"))
C_GRID = [0.01, 0.1, 1.0, 10.0]

ml = dict(cpus=0.5, memory="512Mi", requirements=REQUIREMENTS, working_dir=HERE)


@batch.task(**ml)
def prepare() -> dict:
    """The split's sizes, and where scikit-learn was imported from (the job's environment)."""
    import sklearn

    import digits

    d = digits.split()
    venv = os.environ.get("VIRTUAL_ENV", "")
    return {"train": len(d["y_train"]), "validation": len(d["y_val"]), "test": len(d["y_test"]), "sklearn": sklearn.__version__,
            "from_job_env": bool(venv) and os.path.abspath(sklearn.__file__).startswith(venv + os.sep)}


@batch.task(**ml, retries=1)
def train(c: float) -> dict:
    """Fits the model with regularisation C; its validation accuracy and the model as an artifact."""
    import digits

    d = digits.split()
    model = digits.fit(c, d)
    return {"c": c, "validation_accuracy": float(model.score(d["x_val"], d["y_val"])), "model": digits.to_artifact(model)}


@batch.task(**ml)
def evaluate(candidates: list) -> dict:
    """The best candidate by validation accuracy, loaded from its artifact and scored once on the test split."""
    import numpy as np

    import digits

    best = max(candidates, key=lambda m: m["validation_accuracy"])
    d = digits.split()
    model = digits.from_artifact(best["model"])
    majority = np.bincount(d["y_train"]).argmax()
    return {"c": best["c"], "validation_accuracy": best["validation_accuracy"], "model_sha256": best["model"]["sha256"],
            "model_bytes": best["model"]["bytes"], "test_accuracy": float(model.score(d["x_test"], d["y_test"])),
            "majority_baseline": float(np.mean(d["y_test"] == majority))}


if __name__ == "__main__":
    with batch.workflow("train-digits") as wf:
        prep = wf.step(prepare.options(name="prepare"))
        fits = wf.map(train.options(name="train", after=[prep]), C_GRID)
        best = wf.step(evaluate.options(name="evaluate"), fits.output)  # every candidate, in C_GRID order
    view = wf.wait(timeout=600)
    if view["phase"] != "Succeeded":
        for s in view["steps"]:
            if s["phase"] == "Failed" and s["jobId"]:
                _, err, _ = batch.client().request("GET", f"/v1/jobs/{s['jobId']}/tasks/0/logs?stream=stderr")
                print(f"{s['name']} failed; stderr of its task 0:\n{err}", file=sys.stderr)
    assert view["phase"] == "Succeeded", {s["name"]: s["phase"] for s in view["steps"]}
    data, model = wf.result(prep), wf.result(best)
    assert data["from_job_env"], f"scikit-learn was not imported from the job's python environment: {data}"
    print(f"scikit-learn {data['sklearn']} from the job's python environment; "
          f"{data['train']}/{data['validation']}/{data['test']} train/validation/test digits")
    for m in sorted(wf.result(fits), key=lambda m: m["c"]):
        print(f"  C={m['c']:g}: validation accuracy {m['validation_accuracy']:.3f}, model {m['model']['bytes']} bytes")
    print(f"ok: best C={model['c']:g}, test accuracy {model['test_accuracy']:.3f} vs majority class {model['majority_baseline']:.3f}; "
          f"model sha256:{model['model_sha256'][:12]} ({model['model_bytes']} bytes) passed as an artifact in train's result")
