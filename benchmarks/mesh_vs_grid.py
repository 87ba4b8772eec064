"""Cost per unknown per step: the mesh solver (solver.fem) against the grid solver on the
same square problem.

The 2D Barenblatt solution (m = 2, C = 0.02) on [−1, 1]² from t = 1 to 1.2, explicit
SSP-RK2 steps on both: the square meshes of meshes/ (levels 2 to 4) and grids with about
as many cells as the mesh has vertices. Prints median wall time (after a warm-up), steps,
unknowns and microseconds per unknown per step, then a JSON line with the mesh's cost
over the grid's at the largest size (``mesh_over_grid``; target ≤ 1.3, issue 17).

Run: ``.venv/bin/python benchmarks/mesh_vs_grid.py [--quick]``.
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

from solver import Grid, PorousMedium, fem, solve, tune_process
from solver.analytic import barenblatt

MESHES = runpy.run_path(str(Path(__file__).resolve().parent.parent / "meshes" / "generate.py"))
EXACT = partial(barenblatt, C=0.02)


def timed(run, repeats):
    """(median seconds after one warm-up call, the last result)."""
    result = run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main():
    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="levels 1 and 2, one repeat")
    args = parser.parse_args()
    levels, repeats = ((1, 2), 1) if args.quick else ((2, 3, 4), 3)
    rows = []
    for level in levels:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            square = fem.read(MESHES["path"]("square", level))
        seconds, solution = timed(lambda: solve(PorousMedium(2), square, EXACT(square.points, 1.0), (1.0, 1.2)),
                                  repeats)
        rows.append({"solver": "mesh", "level": level, "unknowns": square.vertices, "seconds": seconds,
                     "steps": solution.accepted})
        n = int(round(np.sqrt(square.vertices)))
        grid = Grid([(-1, 1)] * 2, n)
        rho0 = grid.cell_averages(partial(EXACT, t=1.0))
        seconds, solution = timed(lambda: solve(PorousMedium(2), grid, rho0, (1.0, 1.2)), repeats)
        rows.append({"solver": "grid", "level": level, "unknowns": grid.size, "seconds": seconds,
                     "steps": solution.accepted})
    for r in rows:
        r["us_per_unknown_step"] = 1e6 * r["seconds"] / (r["unknowns"] * r["steps"])
    print("| solver | mesh level | unknowns | steps | median (s) | µs per unknown per step |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['solver']} | {r['level']} | {r['unknowns']} | {r['steps']} | {r['seconds']:.3f} "
              f"| {r['us_per_unknown_step']:.4f} |")
    mesh_row, grid_row = rows[-2], rows[-1]
    print(json.dumps({"benchmark": "mesh_vs_grid", "unknowns": mesh_row["unknowns"],
                      "mesh_us_per_unknown_step": mesh_row["us_per_unknown_step"],
                      "grid_us_per_unknown_step": grid_row["us_per_unknown_step"],
                      "mesh_over_grid": mesh_row["us_per_unknown_step"] / grid_row["us_per_unknown_step"],
                      "rows": rows}))


if __name__ == "__main__":
    main()
