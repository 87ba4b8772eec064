"""Global convergence on ``relu-circle``: the PDE, gradient descent on m neurons and convex
minimization on m random features, against the convex optimum.

Balanced ReLU units b(a·x)₊, a ∈ R², x uniform on the circle, a 5-neuron teacher, weight
decay λ (preset ``relu-circle``, Chizat–Bach 2018; Chizat 2022). Every method is scored by
its relative excess energy

    e = (F − F*) / (F(ν_0) − F*),

with ν_0 the uniform start (h = 0, F(ν_0) = R(0) + 2λ), the same denominator for all.

- PDE (the Wasserstein–Fisher–Rao flow of ν± on ``--cells`` cells of the circle): F* is
  ``LiftedReluRisk.convex_reference`` on the same cells, the exact minimum of the discrete
  energy; e at t = 1, 10, 100, 1000 (``--t-end``) and its wall time; the decay is fitted
  as a power of t over the last decade of saves.
- Gradient descent (``solver.particles.simulate``, explicit Euler steps ``--step``, from the
  balanced start a ~ Unif(S¹), b = ±1, weights 1/m) at m ∈ {5, 10, 20, 50, 100, 1000} until
  ``--gd-time``, mean over ``--seeds``; F* is the convex minimum on ``--fine`` equispaced
  directions (the particles' directions are continuous, so the cells' F* is not a lower
  bound for them; the two F* are reported, their difference is the cells' discretization
  error).
- Random features: :func:`solver.convex.convex_minimum` on m directions drawn like GD's
  start (magnitudes c± ≥ 0 only, the directions fixed), its exact minimum; same F* as GD.

The wall times are single runs (gradient descent's the mean over the seeds), after a short
untimed run of the PDE and of gradient descent in which Numba compiles (or loads) the kernels.

Run: ``.venv/bin/python benchmarks/global_convergence.py [--quick] [--figures DIR]``.
Prints a table, then a JSON line.
"""

import argparse
import json
import time

import numpy as np
from quick import resolve

from solver import problems, solve, tune_process
from solver.convex import convex_minimum
from solver.lift import circle_directions, relu_features
from solver.particles import simulate

MS = (5, 10, 20, 50, 100, 1000)


def start_energy(problem):
    """F(ν_0) of the uniform start (ν+ = ν−, so h = 0)."""
    return problem.energy.value(problem.rho0, problem.grid)


def fine_minimum(problem, directions):
    """F* on ``directions`` equispaced directions of the circle (the continuous min F, to the
    discretization error of that set)."""
    energy = energy_problem(problem)
    angles = 2 * np.pi * (np.arange(directions) + 0.5) / directions
    A = relu_features(circle_directions(angles), energy.inputs)
    return convex_minimum(A, energy.targets, penalty=energy.penalty, quadrature=energy.quadrature).value


def energy_problem(problem):
    """The ReluRegression (R, λ, inputs) behind the preset's lifted energy."""
    return problem.energy.problem


def pde_run(problem, save_at):
    """(seconds, energies at ``save_at``, the Solution) of the PDE from the uniform start."""
    start = time.perf_counter()
    solution = solve(problem.energy, problem.grid, problem.rho0, (save_at[0], save_at[-1]), save_at=save_at)
    seconds = time.perf_counter() - start
    return seconds, np.array([problem.energy.value(rho, problem.grid) for rho in solution.rho]), solution


def warm_up(problem, step):
    """A short untimed run of the PDE and of gradient descent."""
    solve(problem.energy, problem.grid, problem.rho0, (0.0, 0.1))
    simulate(problem.energy, problem.sample(np.random.default_rng(0), 4), (0.0, 2 * step), step=step, progress=False)


def gd_energy(problem, m, seed, t_end, step):
    """(seconds, F at t_end / 2 and at t_end) of plain gradient descent on m balanced neurons."""
    theta0 = problem.sample(np.random.default_rng(seed), m)
    start = time.perf_counter()
    run = simulate(problem.energy, theta0, (0.0, t_end), step=step, save_at=[t_end / 2, t_end], progress=False)
    seconds = time.perf_counter() - start
    return seconds, [problem.energy.particle_energy(theta, run.weights) for theta in run.theta]


def random_features_energy(problem, m, seed):
    """The convex minimum over magnitudes c± ≥ 0 on m random directions (GD's start's a_j)."""
    energy = energy_problem(problem)
    directions = problem.sample(np.random.default_rng(seed), m)[:, :-1]
    A = relu_features(directions, energy.inputs)
    return convex_minimum(A, energy.targets, penalty=energy.penalty, quadrature=energy.quadrature).value


def decay_exponent(times, excess):
    """The slope of log e against log t over the saves in the last decade of positive times."""
    times, excess = np.asarray(times), np.asarray(excess)
    keep = (times >= times[-1] / 10) & (times > 0) & (excess > 0)
    if np.count_nonzero(keep) < 2:
        return None
    return float(np.polyfit(np.log(times[keep]), np.log(excess[keep]), 1)[0])


def main():
    """Run the three methods; print the table and the JSON line (and the figures with --figures)."""
    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, help="cells of the circle (default 256, quick 64)")
    parser.add_argument("--n-data", type=int, default=256)
    parser.add_argument("--weight-decay", type=float, default=1e-3)
    parser.add_argument("--t-end", type=float, help="the PDE's horizon (default 1000, quick 100)")
    parser.add_argument("--gd-time", type=float, help="gradient descent's horizon (default 2000, quick 200)")
    parser.add_argument("--step", type=float, default=0.2, help="gradient descent's step")
    parser.add_argument("--seeds", type=int, help="seeds per m (default 3, quick 1)")
    parser.add_argument("--fine", type=int, help="directions of the reference F* for GD and RF (default 4096, "
                                                 "quick 512)")
    parser.add_argument("--ms", type=int, nargs="+", help=f"numbers of neurons (default {' '.join(map(str, MS))}, "
                                                          "quick 5 20 100)")
    parser.add_argument("--figures", help="write excess_vs_m.png and circle_density.png into this folder")
    parser.add_argument("--quick", action="store_true", help="small settings, for a smoke test")
    args = parser.parse_args()
    resolve(args, cells=(64, 256), t_end=(100.0, 1000.0), gd_time=(200.0, 2000.0), seeds=(1, 3), fine=(512, 4096),
            ms=([5, 20, 100], list(MS)))
    problem = problems.get("relu-circle", cells=args.cells, n_data=args.n_data, weight_decay=args.weight_decay)
    F0 = start_energy(problem)
    reference = problem.energy.convex_reference(problem.grid)
    fine = fine_minimum(problem, args.fine)
    warm_up(problem, args.step)

    save_at = np.unique(np.concatenate([[0.0], np.geomspace(1.0, args.t_end, 4 * int(np.log10(args.t_end)) + 1),
                                        [1.0, 10.0, 100.0, 1000.0]]))
    save_at = save_at[save_at <= args.t_end]
    pde_seconds, pde_energies, solution = pde_run(problem, save_at)
    pde_excess = (pde_energies - reference.value) / (F0 - reference.value)
    reported = [t for t in (1.0, 10.0, 100.0, 1000.0) if t <= args.t_end]

    gd, gd_seconds, gd_drop, rf = {}, {}, {}, {}
    for m in args.ms:
        runs = [gd_energy(problem, m, seed, args.gd_time, args.step) for seed in range(args.seeds)]
        halves = np.array([energies for _, energies in runs])
        gd[m] = [float((e - fine) / (F0 - fine)) for e in halves[:, 1]]
        gd_drop[m] = float(np.mean((halves[:, 0] - halves[:, 1]) / (F0 - fine)))
        gd_seconds[m] = float(np.mean([seconds for seconds, _ in runs]))
        rf[m] = [float((random_features_energy(problem, m, seed) - fine) / (F0 - fine)) for seed in range(args.seeds)]
    mean = {name: {m: float(np.mean(values[m])) for m in args.ms} for name, values in (("gd", gd), ("rf", rf))}

    print(f"relu-circle, λ = {args.weight_decay:g}, {args.n_data} quadrature points; relative excess "
          f"e = (F − F*)/(F(ν0) − F*), F(ν0) = {F0:.6g}")
    print(f"F* on the {args.cells} cells = {reference.value:.10g}; on {args.fine} directions = {fine:.10g} "
          f"(difference {reference.value - fine:.3g})")
    print()
    print(f"PDE on {args.cells} cells, wall {pde_seconds:.1f} s, {solution.accepted} steps")
    print("| t | F | e |")
    print("|---|---|---|")
    for t, F, e in zip(save_at, pde_energies, pde_excess):
        print(f"| {t:g} | {F:.8g} | {e:.3e} |")
    print()
    print(f"Gradient descent (step {args.step:g}, t = {args.gd_time:g}) and random features, mean over "
          f"{args.seeds} seed(s); e against F* on {args.fine} directions")
    print("| m | GD e | GD e per seed | GD drop over the last half | GD seconds | RF e | RF e per seed |")
    print("|---|---|---|---|---|---|---|")
    for m in args.ms:
        print(f"| {m} | {mean['gd'][m]:.3e} | {', '.join(f'{e:.1e}' for e in gd[m])} | {gd_drop[m]:.1e} | "
              f"{gd_seconds[m]:.2f} | {mean['rf'][m]:.3e} | {', '.join(f'{e:.1e}' for e in rf[m])} |")
    if args.figures:
        from pathlib import Path

        from solver.figures import circle_density, excess_against_m

        folder = Path(args.figures)
        folder.mkdir(parents=True, exist_ok=True)
        excess_against_m(folder / "excess_vs_m.png", args.ms, gd, rf, pde=float(pde_excess[-1]),
                         title=f"relu-circle, λ = {args.weight_decay:g}")
        picks = [k for k, t in enumerate(save_at) if t in (0.0, 10.0, 100.0, args.t_end)]
        shown = save_at[picks]
        run = simulate(problem.energy, problem.sample(np.random.default_rng(0), 20), (0.0, shown[-1]), step=args.step,
                       save_at=shown, progress=False)
        circle_density(folder / "circle_density.png", problem.grid.base.points, shown, solution.rho[picks],
                       problem.teacher, particles=run.theta,
                       title=f"relu-circle, λ = {args.weight_decay:g}: ν± on {args.cells} cells, 20 neurons")
    print(json.dumps({
        "benchmark": "global_convergence", "cells": args.cells, "n_data": args.n_data,
        "weight_decay": args.weight_decay, "start_energy": F0, "f_star_cells": reference.value, "f_star_fine": fine,
        "pde_times": save_at.tolist(), "pde_excess": pde_excess.tolist(),
        "pde_excess_at": {f"{t:g}": float(pde_excess[np.flatnonzero(save_at == t)[0]]) for t in reported},
        "pde_excess_final": float(pde_excess[-1]), "pde_seconds": pde_seconds, "pde_steps": solution.accepted,
        "pde_decay_exponent": decay_exponent(save_at, pde_excess),
        "pde_time_to_1e-3": next((float(t) for t, e in zip(save_at, pde_excess) if e <= 1e-3), None),
        "gd_time": args.gd_time, "gd_step": args.step, "seeds": args.seeds,
        "gd_excess": mean["gd"], "gd_excess_per_seed": gd, "gd_seconds": gd_seconds,
        "random_features_excess": mean["rf"], "random_features_excess_per_seed": rf,
    }))


if __name__ == "__main__":
    main()
