"""The model code of train_pipeline.py, shipped to the nodes in the tasks' `working_dir` (this
directory, packed and uploaded once by its digest; each task runs in an unpacked copy, so
`import digits` finds this file there). Imported only inside the tasks: numpy and scikit-learn
come from the job's python environment (`requirements=`), not from the submitting machine.

A trained model travels between steps as an artifact in a task's result: its joblib bytes
(base64) with their SHA-256, which the reader checks before loading. The cluster keeps a result
over 64 KiB in its blob store and hands readers a reference to it, so no step needs a shared disk.
"""
import base64
import hashlib
import io
from typing import Any, Dict


def split() -> Dict[str, Any]:
    """The handwritten-digits data set (1,797 8×8 images, shipped inside scikit-learn) split 60/20/20,
    stratified with a fixed seed: every task that calls it gets the same arrays."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.4, stratify=y, random_state=0)
    x_val, x_test, y_val, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    return {"x_train": x_train, "y_train": y_train, "x_val": x_val, "y_val": y_val, "x_test": x_test, "y_test": y_test}


def fit(c: float, data: Dict[str, Any]) -> Any:
    """StandardScaler + LogisticRegression(C=c), fitted on the training split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000))
    model.fit(data["x_train"], data["y_train"])
    return model


def to_artifact(model: Any) -> Dict[str, Any]:
    """The model as JSON-ready data: its joblib bytes in base64, their size and SHA-256."""
    import joblib

    buf = io.BytesIO()
    joblib.dump(model, buf)
    raw = buf.getvalue()
    return {"format": "joblib", "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(), "data": base64.b64encode(raw).decode("ascii")}


def from_artifact(artifact: Dict[str, Any]) -> Any:
    """The model of `to_artifact`, after checking its bytes against their SHA-256."""
    import joblib

    raw = base64.b64decode(artifact["data"])
    if hashlib.sha256(raw).hexdigest() != artifact["sha256"]:
        raise ValueError("the model artifact's bytes do not match their sha256")
    return joblib.load(io.BytesIO(raw))
