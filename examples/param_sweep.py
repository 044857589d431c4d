"""Simulation: a parameter sweep as one array job (one task per parameter set), then a
reduce that tolerates failed points: it keeps what succeeded and reports what did not.

    python3 examples/param_sweep.py
"""
import math

import batchapi as batch


@batch.task(cpus=0.1, memory="64Mi")
def simulate(params):
    """A damped oscillator's energy after t seconds; an unstable setting fails like a diverging solver."""
    k, damping, t = params["k"], params["damping"], params["t"]
    if damping < 0:
        raise ArithmeticError(f"diverges for damping={damping}")
    return {"params": params, "energy": 0.5 * k * math.exp(-damping * t)}


if __name__ == "__main__":
    grid = [{"k": k, "damping": d, "t": 2.0} for k in (1.0, 2.0, 4.0) for d in (-0.1, 0.2, 0.5)]
    refs = simulate.map(grid)
    ok, failed = [], []
    for ref in refs:
        try:
            ok.append(batch.get(ref, timeout=180))
        except batch.TaskFailed as e:
            failed.append((grid[ref.index], e))
    assert len(ok) == 6 and len(failed) == 3, (len(ok), len(failed))
    best = min(ok, key=lambda r: r["energy"])
    print(f"ok: {len(ok)} of {len(grid)} points simulated, {len(failed)} diverged; lowest energy {best['energy']:.4f} at {best['params']}")
