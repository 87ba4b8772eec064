"""Stiff, long-horizon flows, where an implicit scheme is the right tool: ``bdf2`` against
``rkl2`` in the same run.

(a) The JMM limit PDE (``jmm-bumps`` with δ = 0: the porous medium with drift
∂tρ = ∇·(ρ∇(ρ − f))/|Ω|) on N cells from its compact-support start to t = T: the
normalized risk curve R(t) = ∫(f − ρ)²/∫f² at the save times t > 0 (at t = 0 the two grids'
start differs, whatever the scheme): its largest relative
deviation from rkl2's on the same cells (the error in time; target 1%) and from a reference
(bdf2 on ``--refine`` × N cells, tolerance /10) where the reference's R is at least 100
times the two grids' difference at T (near the steady state that difference is the
discrete steady states' risk, a spatial error that a comparison there would measure
instead), and the wall times (medians of ``--repeats`` runs, the two schemes interleaved);
``implicit_speedup`` is rkl2's median time over bdf2's, ``speedup_per_pair`` each pair's ratio. The explicit step is
bound by h² there (rkl2's super-steps by 410 forward-Euler limits).
(b) The 2D Barenblatt profile (m = 2, C = 0.1, box [−2, 2]², t from 1 to 4, as
``pme_vs_pypde``) on (M/4)², (M/2)² and M² cells: L1 errors and wall times;
``barenblatt_l1_ratio`` is bdf2's L1 error over rkl2's at M², ``barenblatt_order`` each
scheme's observed order (the least-squares slope of log L1 against log h; ≥ 1 expected with
the Lipschitz free boundary).
(c) The confined porous medium F = ∫ρ² + ∫ρ|x|²/2 in 2D from a displaced Gaussian to its
discrete steady state (:func:`solver.analytic.confined_steady_state`): the L1 distance to it
at t = 6, 12, 18 and the wall times.

Every scheme first runs a short untimed solve of each part's kind (Numba compiles or loads
its kernels there, not in a timed run); the times of (b) and (c) are single runs.
Prints a table per part, then a JSON line with the figures of the parts run.

Run: ``.venv/bin/python benchmarks/implicit_vs_rkl2.py [--quick] [--cells N] [--end T] [--cells2d M] [--repeats R]
[--parts a b c]`` (full: N = 4096, T = 30, M = 256, bdf2's tol 1e-3, all three parts; ``--quick``: N = 256,
T = 3, M = 16, tol 1e-2, seconds, for the flags not given; ``--parts b``: the Barenblatt part alone).
"""

import argparse
import json
import time
from functools import partial

import numpy as np
from quick import resolve

from solver import Grid, PorousMedium, Potential, problems, solve, tune_process
from solver.analytic import barenblatt, confined_steady_state


def timed(run):
    """(wall seconds, result) of one call."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def jmm_risks(cells, end, scheme, **options):
    """(save times, normalized risks, seconds, solution) of the JMM limit PDE on ``cells`` cells."""
    problem = problems.get("jmm-bumps", delta=0, cells=cells)
    times = np.unique(np.concatenate([np.linspace(0, end, 31), [t for t in (0.1, 0.25, 0.5, 1, 2) if t < end]]))
    seconds, solution = timed(lambda: solve(problem.energy, problem.grid, problem.rho0, (0, end), save_at=times,
                                            scheme=scheme, **options))
    zero = problem.energy.value(np.zeros(problem.grid.shape), problem.grid)
    return times, np.array([problem.energy.value(rho, problem.grid) / zero for rho in solution.rho]), seconds, solution


def row(name, scheme, seconds, solution, **figures):
    """A table row: what ran, its wall time, steps and Newton iterations, and ``figures``."""
    return {"case": name, "scheme": scheme, "seconds": seconds, "steps": solution.accepted,
            "rejected": solution.rejected, "newton_iterations": solution.newton_iterations, **figures}


def jmm_part(cells, end, tol, repeats, refine):
    """(a): the rows and the figures of the JMM limit PDE (see the module doc)."""
    times, reference, reference_seconds, _ = jmm_risks(refine * cells, end, "bdf2", tol=tol / 10)
    rows, deviation, curves, runs, last = [], {}, {}, {"bdf2": [], "rkl2": []}, {}
    for _ in range(repeats):  # interleaved: the machine's load falls on both schemes alike
        for scheme, options in (("bdf2", {"tol": tol}), ("rkl2", {})):
            _, curves[scheme], seconds, last[scheme] = jmm_risks(cells, end, scheme, **options)
            runs[scheme].append(seconds)
    for scheme, solution in last.items():
        above_floor = (reference >= 100 * abs(curves[scheme][-1] - reference[-1])) & (times > 0)
        deviation[scheme] = float(np.max(np.abs(curves[scheme][above_floor] / reference[above_floor] - 1)))
        rows.append(row(f"JMM limit, {cells} cells, t = {end:g}", scheme, float(np.median(runs[scheme])), solution,
                        all_seconds=runs[scheme], risk_deviation=deviation[scheme],
                        final_risk=float(curves[scheme][-1]), compared_until=float(times[above_floor].max())))
    same_cells = float(np.max(np.abs(curves["bdf2"] / curves["rkl2"] - 1)))
    seconds = {r["scheme"]: r["seconds"] for r in rows}
    speedups = [r / b for r, b in zip(runs["rkl2"], runs["bdf2"])]
    print(f"(a) JMM limit PDE: normalized risk against bdf2 on {refine * cells} cells (tol {tol / 10:g}, "
          f"{reference_seconds:.1f} s; R(t_end) = {reference[-1]:.3g}); bdf2 against rkl2 on {cells} cells: "
          f"{same_cells:.2e}")
    print(f"implicit_speedup {seconds['rkl2'] / seconds['bdf2']:.3g} (medians of {repeats} interleaved runs; "
          f"per pair {min(speedups):.3g} to {max(speedups):.3g})")
    print("| scheme | seconds | steps | rejected | Newton iterations | deviation from the reference | until t |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['scheme']} | {r['seconds']:.2f} | {r['steps']} | {r['rejected']} | {r['newton_iterations']} "
              f"| {r['risk_deviation']:.2e} | {r['compared_until']:g} |")
    return rows, {"implicit_speedup": seconds["rkl2"] / seconds["bdf2"], "speedup_per_pair": speedups,
                  "risk_deviation": deviation, "risk_deviation_same_cells": same_cells}


def barenblatt_part(cells2d, tol):
    """(b): the rows and the figures of the 2D Barenblatt profile on (M/4)², (M/2)² and M² cells."""
    exact = partial(barenblatt, m=2, C=0.1)
    sizes = [cells2d // 4, cells2d // 2, cells2d]
    rows, l1 = [], {"bdf2": [], "rkl2": []}
    print(f"(b) Barenblatt, m = 2, t from 1 to 4, {sizes[0]}² to {cells2d}²")
    print("| cells | scheme | seconds | steps | Newton iterations | L1 error |")
    print("|---|---|---|---|---|---|")
    for n in sizes:
        grid = Grid([(-2, 2)] * 2, n)
        for scheme, options in (("bdf2", {"tol": tol}), ("rkl2", {})):
            seconds, solution = timed(lambda: solve(PorousMedium(2), grid, grid.cell_averages(partial(exact, t=1.0)),
                                                    (1.0, 4.0), scheme=scheme, **options))
            l1[scheme].append(grid.integrate(np.abs(solution.rho[-1] - grid.cell_averages(partial(exact, t=4.0)))))
            rows.append(row(f"Barenblatt {n}²", scheme, seconds, solution, l1=l1[scheme][-1]))
            print(f"| {n}² | {scheme} | {seconds:.2f} | {solution.accepted} | {solution.newton_iterations} "
                  f"| {l1[scheme][-1]:.3e} |", flush=True)
    order = {scheme: float(np.polyfit(np.log(1 / np.array(sizes)), np.log(errors), 1)[0])
             for scheme, errors in l1.items()}
    print(f"observed order: bdf2 {order['bdf2']:.2f}, rkl2 {order['rkl2']:.2f}; "
          f"barenblatt_l1_ratio {l1['bdf2'][-1] / l1['rkl2'][-1]:.3g} at {cells2d}²")
    return rows, {"barenblatt_l1_ratio": l1["bdf2"][-1] / l1["rkl2"][-1], "barenblatt_order": order}


def confined_part(cells2d, tol):
    """(c): the rows of the confined porous medium on M² cells to its discrete steady state."""
    grid = Grid([(-4, 4)] * 2, cells2d)
    rho0 = grid.cell_averages(lambda x: np.exp(-np.sum((x - np.array([0.7, -0.4])) ** 2, axis=-1) / 0.5))
    energy = PorousMedium(2) + Potential(lambda x: 0.5 * np.sum(x**2, axis=-1))
    steady = confined_steady_state(grid.points, 2, grid.integrate(rho0), grid.weights)
    checkpoints = (0.0, 6.0, 12.0, 18.0)
    rows = []
    print(f"(c) confined porous medium, {cells2d}², L1 distance to the discrete steady state (relative to the mass)")
    print("| scheme | seconds | steps | Newton iterations | " + " | ".join(f"t = {t:g}" for t in checkpoints[1:])
          + " |")
    print("|---|---|---|---|" + "---|" * (len(checkpoints) - 1))
    for scheme, options in (("bdf2", {"tol": tol}), ("rkl2", {})):
        seconds, solution = timed(lambda: solve(energy, grid, rho0, (0.0, checkpoints[-1]), save_at=checkpoints,
                                                scheme=scheme, **options))
        distance = [grid.integrate(np.abs(rho - steady)) / grid.integrate(rho0) for rho in solution.rho[1:]]
        rows.append(row(f"confined porous medium {cells2d}²", scheme, seconds, solution, distances=distance))
        print(f"| {scheme} | {seconds:.2f} | {solution.accepted} | {solution.newton_iterations} | "
              + " | ".join(f"{d:.2e}" for d in distance) + " |")
    return rows, {}


def warm_up(tol):
    """A short untimed solve of each scheme on a small problem of each part's kind."""
    grid = Grid([(-2, 2)] * 2, 8)
    energy = PorousMedium(2) + Potential(lambda x: 0.5 * np.sum(x**2, axis=-1))
    for scheme, options in (("bdf2", {"tol": tol}), ("rkl2", {})):
        jmm_risks(32, 0.05, scheme, **options)
        for term in (PorousMedium(2), energy):
            solve(term, grid, grid.cell_averages(partial(barenblatt, t=1.0, m=2, C=0.1)), (1.0, 1.1), scheme=scheme,
                  **options)


def main():
    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="N = 256, T = 3, 16², tol 1e-2 (seconds)")
    parser.add_argument("--cells", type=int, help="cells of the 1D case (default 4096, quick 256)")
    parser.add_argument("--end", type=float, help="horizon T of the 1D case (default 30, quick 3)")
    parser.add_argument("--cells2d", type=int, help="cells per axis of the 2D cases (default 256, quick 16)")
    parser.add_argument("--tol", type=float, help="bdf2's tolerance (default 1e-3, quick 1e-2)")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved runs of each scheme in (a) (default 1)")
    parser.add_argument("--refine", type=int, default=2, help="the reference's cells over N (default 2)")
    parser.add_argument("--parts", nargs="+", choices=("a", "b", "c"), default=["a", "b", "c"],
                        help="the parts to run: (a) JMM limit, (b) Barenblatt, (c) confined (default all)")
    args = parser.parse_args()
    resolve(args, cells=(256, 4096), end=(3.0, 30.0), cells2d=(16, 256), tol=(1e-2, 1e-3))
    warm_up(args.tol)
    parts = {"a": partial(jmm_part, args.cells, args.end, args.tol, args.repeats, args.refine),
             "b": partial(barenblatt_part, args.cells2d, args.tol), "c": partial(confined_part, args.cells2d, args.tol)}
    rows, figures = [], {}
    for name in sorted(set(args.parts)):
        part_rows, part_figures = parts[name]()
        rows += part_rows
        figures.update(part_figures)
    print(json.dumps({"benchmark": "implicit_vs_rkl2", "cells": args.cells, "end": args.end, "cells2d": args.cells2d,
                      "tol": args.tol, "parts": sorted(set(args.parts)), **figures, "rows": rows}))


if __name__ == "__main__":
    main()
