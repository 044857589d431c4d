"""Tasks the tests run on the local cluster (importable there by name: the SDK passes this
directory on the task's PYTHONPATH)."""
import os
import time
from typing import Any, Dict, List, Optional

import batchapi as batch


@batch.task(cpus=0.1, memory="64Mi")
def square(x: int) -> int:
    return x * x


@batch.task(cpus=0.1, memory="64Mi")
def add(*xs: Any) -> int:
    return sum(int(x) if isinstance(x, (int, float)) else int(sum(x)) for x in xs)


@batch.task(cpus=0.1, memory="64Mi")
def shards(n: int) -> List[int]:
    return list(range(n))


@batch.task(cpus=0.1, memory="64Mi")
def echo(*xs: Any) -> List[Any]:
    """Its inputs as it got them: what a downstream step sees of its inputs."""
    return list(xs)


@batch.task(cpus=0.1, memory="64Mi")
def boom(msg: str) -> None:
    raise ValueError(msg)


def _count_attempt(marker_dir: str) -> int:
    os.makedirs(marker_dir, exist_ok=True)
    n = len(os.listdir(marker_dir))
    open(os.path.join(marker_dir, str(n)), "w").close()
    return n + 1


@batch.task(cpus=0.1, memory="64Mi", retries=2, backoff=0.1)
def flaky(marker_dir: str) -> int:
    """Fails on its first two attempts, succeeds on the third (counts attempts in a directory)."""
    n = _count_attempt(marker_dir)
    if n < 3:
        raise RuntimeError(f"attempt {n} fails")
    return n


@batch.task(cpus=0.1, memory="64Mi", retries=2, backoff=0.1)
def returns(kind: str, marker_dir: str) -> Any:
    """Returns what cannot be stored — NaN, inf, an object, 70 KiB — counting its attempts."""
    _count_attempt(marker_dir)
    return {"nan": float("nan"), "inf": float("inf"), "object": object(), "big": "x" * 70_000}[kind]


@batch.task(cpus=0.1, memory="64Mi")
def greet(greeting: str, name: str = "world", after: Optional[str] = None) -> str:
    """Takes keywords named like step options: they must reach it."""
    return f"{greeting}, {name}" + (f" after {after}" if after else "")


@batch.task(cpus=0.1, memory="64Mi")
def wait_for(path: str) -> str:
    """Ends when `path` exists (the test creates it when it is ready to see this task end)."""
    while not os.path.exists(path):
        time.sleep(0.05)
    return path


@batch.task(cpus=0.1, memory="64Mi")
def say(text: str) -> Dict[str, str]:
    print(text, flush=True)
    return {"said": text}


@batch.task(cpus=0.1, memory="64Mi")
def timed(x: int) -> List[float]:
    """[start, end] of a 0.3 s run, in epoch seconds (for concurrency-limit checks)."""
    start = time.time()
    time.sleep(0.3)
    return [start, time.time()]


@batch.task(cpus=0.1, memory="64Mi")
def list_cwd() -> List[str]:
    """What the task's cwd holds (a `working_dir` test)."""
    return sorted(os.listdir("."))


@batch.task(cpus=0.1, memory="64Mi")
def weighted_sum(values: List[int], weight: int = 1) -> int:
    """A typed fan-in: the list of a map step's results, in item order."""
    assert isinstance(values, list), values
    return weight * sum(values)


@batch.task(cpus=0.1, memory="64Mi")
def describe(payload: Dict[str, Any], extra: List[Any]) -> Dict[str, Any]:
    """What it got, as it got it: steps' outputs nested in a dict and a list, and the user's own dict."""
    return {"payload": payload, "extra": extra}


@batch.task(cpus=0.1, memory="64Mi")
def ordered(values: List[int]) -> List[int]:
    """The fan-in as it got it (item order)."""
    return values
