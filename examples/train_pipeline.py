"""ML training with a real library: scikit-learn, installed on the node through `requirements=`
(the node builds a virtual environment from `requirements.txt` once; nothing comes from the node's
own site-packages), trains and evaluates a digit classifier.

    prepare  → split the handwritten-digits data set (1,797 8×8 images, shipped inside scikit-learn)
               into train / validation / test arrays in a shared work directory
    train    → a map: one task per regularisation strength C, each fits a scaled logistic
               regression, scores it on the validation set and saves the model (joblib) beside the data
    evaluate → picks the best model by validation accuracy, loads it and scores it once on the
               held-out test set, against the majority-class baseline
    cleanup  → runs only if a step failed: removes the arrays

The model passes between steps as a file in the work directory (TRAIN_WORKDIR, default a new
temporary directory: on a one-machine cluster every task sees it; on a real cluster use a shared
mount). Run it against `batch dev` or BATCH_API/BATCH_TOKEN, from any directory:

    python3 train_pipeline.py
"""
import os
import sys
import tempfile

import batchapi as batch

HERE = os.path.dirname(os.path.abspath(__file__))
# Pinned specifiers (a lock file with --hash lines works too): the node's pip installs them from its index.
REQUIREMENTS = batch.read_requirements(os.path.join(HERE, "requirements.txt"))
WORK = os.environ.get("TRAIN_WORKDIR") or tempfile.mkdtemp(prefix="train-")
os.makedirs(WORK, exist_ok=True)
C_GRID = [0.01, 0.1, 1.0, 10.0]

ml = dict(cpus=0.5, memory="512Mi", requirements=REQUIREMENTS)


@batch.task(**ml)
def prepare(workdir: str) -> dict:
    """Splits the digits data set 60/20/20 (stratified, fixed seed) into `data.npz`."""
    import numpy as np
    import sklearn
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    np.savez(os.path.join(workdir, "data.npz"), x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test, y_test=y_test)
    venv = os.environ.get("VIRTUAL_ENV", "")
    return {"train": len(y_train), "validation": len(y_val), "test": len(y_test), "sklearn": sklearn.__version__,
            "from_job_env": bool(venv) and os.path.abspath(sklearn.__file__).startswith(venv + os.sep)}


@batch.task(**ml, retries=1)
def train(c: float, workdir: str) -> dict:
    """Fits StandardScaler + LogisticRegression(C=c) on the training split; saves it with joblib."""
    import joblib
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = np.load(os.path.join(workdir, "data.npz"))
    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    model.fit(d["x_train"], d["y_train"])
    path = os.path.join(workdir, f"model-C{c:g}.joblib")
    joblib.dump(model, path)
    return {"c": c, "validation_accuracy": float(model.score(d["x_val"], d["y_val"])), "model": path}


@batch.task(**ml)
def evaluate(workdir: str, candidates: list) -> dict:
    """The best candidate by validation accuracy, scored once on the test split."""
    import joblib
    import numpy as np

    best = max(candidates, key=lambda m: m["validation_accuracy"])
    d = np.load(os.path.join(workdir, "data.npz"))
    model = joblib.load(best["model"])
    majority = np.bincount(d["y_train"]).argmax()
    return {**best, "test_accuracy": float(model.score(d["x_test"], d["y_test"])),
            "majority_baseline": float(np.mean(d["y_test"] == majority))}


@batch.task(cpus=0.1, memory="64Mi")
def cleanup(workdir: str) -> str:
    p = os.path.join(workdir, "data.npz")
    if os.path.exists(p):
        os.remove(p)
    return "cleaned"


if __name__ == "__main__":
    with batch.workflow("train-digits") as wf:
        prep = wf.step(prepare.options(name="prepare"), WORK)
        fits = wf.map(train.options(name="train", after=[prep]), C_GRID, WORK)
        best = wf.step(evaluate.options(name="evaluate"), WORK, fits.output)  # every candidate, in C_GRID order
        wf.step(cleanup.options(name="cleanup", after=[best], when="failure"), WORK)
    view = wf.wait(timeout=600)
    phases = {s["name"]: s["phase"] for s in view["steps"]}
    if view["phase"] != "Succeeded":
        for s in view["steps"]:
            if s["phase"] == "Failed" and s["jobId"]:
                _, err, _ = batch.client().request("GET", f"/v1/jobs/{s['jobId']}/tasks/0/logs?stream=stderr")
                print(f"{s['name']} failed; stderr of its task 0:\n{err}", file=sys.stderr)
    assert view["phase"] == "Succeeded", phases
    assert phases["cleanup"] == "Skipped", phases
    data, model = wf.result(prep), wf.result(best)
    assert data["from_job_env"], f"scikit-learn was not imported from the job's python environment: {data}"
    print(f"scikit-learn {data['sklearn']} from the job's python environment; "
          f"{data['train']}/{data['validation']}/{data['test']} train/validation/test digits")
    for m in sorted(wf.result(fits), key=lambda m: m["c"]):
        print(f"  C={m['c']:g}: validation accuracy {m['validation_accuracy']:.3f}")
    print(f"ok: best C={model['c']:g}, test accuracy {model['test_accuracy']:.3f} vs majority class {model['majority_baseline']:.3f}; "
          f"model at {model['model']}")
