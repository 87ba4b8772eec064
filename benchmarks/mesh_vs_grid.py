"""Cost per unknown per step: the mesh solver (solver.fem) against the grid solver on the
same square problem.

The 2D Barenblatt solution (m = 2, C = 0.02) on [−1, 1]² from t = 1 to 1.2, explicit
SSP-RK2 steps on both: the square meshes of meshes/ (levels 2 to 4) and grids with about
as many cells as the mesh has vertices. At each level the two solvers are timed in
alternation (mesh, grid, mesh, grid, … ``--repeats`` times each after a warm-up of each),
so a change of the machine's load hits both. Prints median wall times, steps, unknowns
and microseconds per unknown per step, the spread of the ratios of the alternating pairs
and each solver's L1 error against the exact profile at t = 1.2 (what the cost buys); then
a JSON line with the mesh's cost over the grid's at the largest size (``mesh_over_grid``,
the ratio of the medians; target ≤ 1.3, issue 17) and the range of the pairs' ratios
(``pair_ratios``).

Run: ``.venv/bin/python benchmarks/mesh_vs_grid.py [--quick] [--repeats R]``.
"""

import argparse
import json
import runpy
import statistics
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
from quick import resolve

from solver import Grid, PorousMedium, fem, solve, tune_process
from solver.analytic import barenblatt

MESHES = runpy.run_path(str(Path(__file__).resolve().parent.parent / "meshes" / "generate.py"))
EXACT = partial(barenblatt, C=0.02)


def alternated(runs, repeats):
    """The wall times of ``repeats`` calls of each of ``runs`` (name → function), called in
    turn after one warm-up call each: (times by name, the last result by name)."""
    results = {name: run() for name, run in runs.items()}
    times = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            start = time.perf_counter()
            results[name] = run()
            times[name].append(time.perf_counter() - start)
    return times, results


def main():
    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="levels 1 and 2, one repeat")
    parser.add_argument("--repeats", type=int, help="timed solves of each solver per level (default 7, quick 1)")
    args = parser.parse_args()
    resolve(args, repeats=(1, 7))
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    levels, repeats = ((1, 2) if args.quick else (2, 3, 4)), args.repeats
    rows = []
    for level in levels:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            square = fem.read(MESHES["path"]("square", level))
        grid = Grid([(-1, 1)] * 2, int(round(np.sqrt(square.vertices))))
        starts = {"mesh": (square, EXACT(square.points, 1.0)),
                  "grid": (grid, grid.cell_averages(partial(EXACT, t=1.0)))}
        unknowns = {"mesh": square.vertices, "grid": grid.size}
        times, solutions = alternated({name: partial(solve, PorousMedium(2), *start, (1.0, 1.2))
                                       for name, start in starts.items()}, repeats)
        errors = {"mesh": square.integrate(np.abs(solutions["mesh"].rho[-1] - EXACT(square.points, 1.2))),
                  "grid": grid.integrate(np.abs(solutions["grid"].rho[-1] - grid.cell_averages(partial(EXACT, t=1.2))))}
        cost = {name: np.array(times[name]) / (unknowns[name] * solutions[name].accepted) for name in starts}
        pairs = cost["mesh"] / cost["grid"]
        for name in starts:
            rows.append({"solver": name, "level": level, "unknowns": unknowns[name],
                         "seconds": statistics.median(times[name]), "steps": solutions[name].accepted,
                         "us_per_unknown_step": 1e6 * statistics.median(cost[name]), "l1_error": errors[name],
                         "pair_ratios": [float(pairs.min()), float(pairs.max())]})
    print(f"| solver | mesh level | unknowns | steps | median (s) | µs per unknown per step "
          f"| mesh/grid, pairs ({repeats}) | L1 error at t = 1.2 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['solver']} | {r['level']} | {r['unknowns']} | {r['steps']} | {r['seconds']:.3f} "
              f"| {r['us_per_unknown_step']:.4f} | {r['pair_ratios'][0]:.2f}–{r['pair_ratios'][1]:.2f} "
              f"| {r['l1_error']:.2e} |")
    mesh_row, grid_row = rows[-2], rows[-1]
    print(json.dumps({"benchmark": "mesh_vs_grid", "unknowns": mesh_row["unknowns"], "repeats": repeats,
                      "mesh_us_per_unknown_step": mesh_row["us_per_unknown_step"],
                      "grid_us_per_unknown_step": grid_row["us_per_unknown_step"],
                      "mesh_over_grid": mesh_row["us_per_unknown_step"] / grid_row["us_per_unknown_step"],
                      "pair_ratios": mesh_row["pair_ratios"], "rows": rows}))


if __name__ == "__main__":
    main()
