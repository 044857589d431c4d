"""Tasks the integration tests run on the local cluster (importable there: the SDK passes this directory as PYTHONPATH)."""
import batchapi as batch


@batch.task(cpus=0.1, memory="64Mi")
def square(x):
    return x * x


@batch.task(cpus=0.1, memory="64Mi")
def add(*xs):
    return sum(x if isinstance(x, (int, float)) else sum(x) for x in xs)


@batch.task(cpus=0.1, memory="64Mi")
def shards(n):
    return list(range(n))


@batch.task(cpus=0.1, memory="64Mi")
def boom(msg):
    raise ValueError(msg)


@batch.task(cpus=0.1, memory="64Mi", retries=2, backoff=0.1)
def flaky(marker_dir):
    """Fails on its first two attempts, succeeds on the third (counts attempts in a directory)."""
    import os
    os.makedirs(marker_dir, exist_ok=True)
    n = len(os.listdir(marker_dir))
    open(os.path.join(marker_dir, str(n)), "w").close()
    if n < 2:
        raise RuntimeError(f"attempt {n + 1} fails")
    return n + 1
