"""Simulation: a parameter sweep as one array job, then a reduce that tolerates failed points.

Each task integrates a driven, damped oscillator  x'' + c·x' + k·x = cos(ω·t)  with fourth-order
Runge–Kutta and measures its steady-state amplitude: sweeping the drive frequency ω for a few
dampings c traces resonance curves. Some settings are unstable (negative damping pumps energy in):
the solver detects the blow-up and the task fails, as a diverging solver does. The reduce keeps the
points that succeeded, reports the ones that did not, and finds each damping's resonance peak
(which sits near ω = √k for light damping).

    python3 param_sweep.py     (against `batch dev` or BATCH_API/BATCH_TOKEN)
"""
import math

import batchapi as batch

K = 4.0  # stiffness: the undamped natural frequency is √K = 2
DAMPINGS = [-0.5, 0.1, 0.4]
FREQUENCIES = [1.0, 1.5, 1.8, 2.0, 2.2, 2.5, 3.0]


@batch.task(cpus=0.1, memory="64Mi")
def simulate(point: dict) -> dict:
    """RK4 over 80 s (dt 0.01); the amplitude is max |x| over the last 20 s."""
    c, w = point["damping"], point["omega"]
    dt, steps, tail = 0.01, 8000, 2000

    def accel(t: float, x: float, v: float) -> float:
        return math.cos(w * t) - c * v - K * x

    x = v = t = 0.0
    amplitude = 0.0
    for i in range(steps):
        k1x, k1v = v, accel(t, x, v)
        k2x, k2v = v + dt / 2 * k1v, accel(t + dt / 2, x + dt / 2 * k1x, v + dt / 2 * k1v)
        k3x, k3v = v + dt / 2 * k2v, accel(t + dt / 2, x + dt / 2 * k2x, v + dt / 2 * k2v)
        k4x, k4v = v + dt * k3v, accel(t + dt, x + dt * k3x, v + dt * k3v)
        x += dt / 6 * (k1x + 2 * k2x + 2 * k3x + k4x)
        v += dt / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
        t += dt
        if not math.isfinite(x) or abs(x) > 1e6:
            raise ArithmeticError(f"diverged at t={t:.1f} s for damping={c} omega={w}: |x| = {abs(x):.3g}")
        if i >= steps - tail:
            amplitude = max(amplitude, abs(x))
    return {**point, "amplitude": amplitude}


def reduce_sweep(grid: list, refs: list) -> tuple:
    """The points that succeeded and the ones that failed (with why), each failed task once."""
    ok, failed = [], []
    for point, ref in zip(grid, refs):
        try:
            ok.append(batch.get(ref, timeout=300))
        except batch.TaskFailed as e:
            failed.append((point, str(e).splitlines()[0]))
    return ok, failed


if __name__ == "__main__":
    grid = [{"damping": c, "omega": w} for c in DAMPINGS for w in FREQUENCIES]
    refs = simulate.map(grid)
    ok, failed = reduce_sweep(grid, refs)
    for c in sorted({p["damping"] for p in ok}):
        curve = sorted((p for p in ok if p["damping"] == c), key=lambda p: p["omega"])
        peak = max(curve, key=lambda p: p["amplitude"])
        print(f"damping {c}: " + ", ".join(f"ω={p['omega']:g}→{p['amplitude']:.3f}" for p in curve) + f"; peak at ω={peak['omega']:g}")
    for point, why in failed:
        print(f"failed {point}: {why}")
    stable = [c for c in DAMPINGS if c > 0]
    # every stable point succeeded, every unstable one failed; light damping peaks at √K
    assert len(ok) == len(FREQUENCIES) * len(stable) and len(failed) == len(grid) - len(ok), (len(ok), len(failed))
    light = max((p for p in ok if p["damping"] == min(stable)), key=lambda p: p["amplitude"])
    assert abs(light["omega"] - math.sqrt(K)) < 0.25, light
    print(f"ok: {len(ok)} of {len(grid)} points simulated, {len(failed)} diverged; "
          f"resonance at ω={light['omega']:g} (√k = {math.sqrt(K):g}) with amplitude {light['amplitude']:.3f}")
