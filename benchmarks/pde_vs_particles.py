"""Time to the mean-field risk curve of problem (a) within 1%: the PDE against particles.

Problem (a) (``tanh-teacher``: fixed-output tanh units, 3-neuron teacher) on [0, T]. The
reference is the PDE's risk curve on a fine grid (``--reference-cells``). The PDE's cost
is the wall time of the coarsest grid whose curve is within ``--tolerance`` (relative,
max over the save times) of the reference. The particles' cost is the mean wall time of
gradient descent (step ``--step``) with the smallest m, from the list, whose curve, averaged
over the seeds, is within the tolerance; the finite-m risk carries an O(1/m) bias (the
variance of the m-neuron network), which is what sets that m. ``pde_speedup`` is the
particles' time over the PDE's.

Run: ``.venv/bin/python benchmarks/pde_vs_particles.py [--quick]``. Prints a table, then a
JSON line.
"""

import argparse
import json
import time

import numpy as np
from quick import resolve

from solver import problems, solve, tune_process
from solver.particles import simulate


def pde_curve(cells, times, n_data):
    """(seconds, risk at the save times) of the PDE on ``cells``² cells (after a warm-up)."""
    problem = problems.get("tanh-teacher", cells=cells, n_data=n_data)
    run = lambda: solve(problem.energy, problem.grid, problem.rho0, (0, times[-1]), save_at=times, max_step=0.05)  # noqa: E731
    run()
    start = time.perf_counter()
    solution = run()
    seconds = time.perf_counter() - start
    return seconds, np.array([problem.energy.value(rho, problem.grid) for rho in solution.rho])


def particle_curve(m, seed, times, n_data, step):
    """(seconds, risk at the save times) of gradient descent on m particles."""
    problem = problems.get("tanh-teacher", cells=8, n_data=n_data)  # the grid is not used
    theta0 = problem.sample(np.random.default_rng(seed), m)
    start = time.perf_counter()
    run = simulate(problem.energy, theta0, (0, times[-1]), step=step, save_at=times)
    seconds = time.perf_counter() - start
    return seconds, np.array([problem.energy.risk(theta, run.weights) for theta in run.theta])


def main():
    """Find the cheapest PDE and particle runs within the tolerance; print table and JSON."""
    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--t-end", type=float, default=2.0)
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--n-data", type=int, default=300)
    parser.add_argument("--step", type=float, default=0.02)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--reference-cells", type=int, help="cells per axis of the reference PDE (default 128, "
                                                            "quick 32)")
    parser.add_argument("--quick", action="store_true", help="coarse settings, for a smoke test")
    args = parser.parse_args()
    resolve(args, reference_cells=(32, 128))
    times = np.linspace(0, args.t_end, 11)
    grids = (8, 16) if args.quick else (8, 12, 16, 24, 32, 48, 64)
    ms = (100, 1000) if args.quick else (100, 1000, 10000, 30000, 100000, 300000)
    _, reference = pde_curve(args.reference_cells, times, args.n_data)

    def error(curve):
        return float(np.max(np.abs(curve / reference - 1)))

    particle_curve(10, 0, times[:2], args.n_data, args.step)  # untimed: Numba compiles (or loads) the kernels here
    rows = []
    for cells in grids:
        seconds, curve = pde_curve(cells, times, args.n_data)
        rows.append({"method": "pde", "size": cells, "seconds": seconds, "error": error(curve)})
    for m in ms:
        runs = [particle_curve(m, seed, times, args.n_data, args.step) for seed in range(args.seeds)]
        mean_curve = np.mean([curve for _, curve in runs], axis=0)
        rows.append({"method": "particles", "size": m, "seconds": float(np.mean([s for s, _ in runs])),
                     "error": error(mean_curve)})
        if rows[-1]["error"] <= args.tolerance:
            break
    print(f"tanh-teacher risk curve on [0, {args.t_end}], reference: PDE on {args.reference_cells}² cells; "
          f"error = max relative deviation; particles averaged over {args.seeds} seeds")
    print("| method | cells² or m | seconds | error |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['size']} | {r['seconds']:.3f} | {r['error']:.2e} |")

    def cheapest(method):
        ok = [r for r in rows if r["method"] == method and r["error"] <= args.tolerance]
        return min(ok, key=lambda r: r["seconds"]) if ok else None

    pde, particles = cheapest("pde"), cheapest("particles")
    for method, run in (("PDE", pde), ("particle", particles)):
        if run is None:
            print(f"no {method} run came within the tolerance {args.tolerance:g}: pde_speedup is null")
    print(json.dumps({
        "benchmark": "pde_vs_particles", "tolerance": args.tolerance,
        "pde_cells": pde and pde["size"], "pde_seconds": pde and pde["seconds"],
        "particles_m": particles and particles["size"], "particles_seconds": particles and particles["seconds"],
        "pde_speedup": (particles["seconds"] / pde["seconds"]) if pde and particles else None,
        "rows": rows,
    }))


if __name__ == "__main__":
    main()
