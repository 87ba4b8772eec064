"""Throughput of the network first variation F'(θ_j) = Σ_i c_i Φ(θ_j, x_i) on grid cells.

For 64² and 128² grids of parameters θ_j ∈ R² and 10³ and 10⁴ data points x_i ∈ R², in
(cells × data points) per second:

- ``kernel``: what the grid solver runs, ``SeparableCells.first_variation``: the Numba
  kernel ``solver.kernels.network.separable_first_variation`` on per-axis tables
  (Φ = σ(w·x) with w on a Cartesian grid separates: e^(2w·x) = e^(2w₁x₁) e^(2w₂x₂), so
  a pair costs a product, a division and a sum, and no exponential), both cores; the
  one-off cost of the tables is reported apart (``tables_seconds``);
- ``pointwise``: the Numba kernel for arbitrary points,
  ``solver.kernels.network.first_variation`` (meshes and particles use it);
- ``numpy``: the NumPy reference (broadcast the feature matrix, then a product);
- ``numpy_tables``: the NumPy reference of the table kernel (broadcast the tables);
- ``bound``: the memory-bound limit, a precomputed feature matrix streamed by one BLAS
  matrix-vector product (on as many threads as the kernels: both cores).

The medians are of ``--repeats`` calls; ``kernel``, ``pointwise`` and ``bound`` are called
in turn, round by round, so that the machine's load falls on them alike, and
``pointwise_fraction_of_bound_range`` is the range of the round-by-round ratio.

Features: fixed-output tanh units σ(w·x) (problem a) and fixed-output ReLU units.

An upwind flux needs F' only on faces next to a cell with mass. The benchmark also
measures, along the PDE runs of the 2D presets, the smallest fraction of cells with
ρ > 0: it is 1 (Gaussian starts are positive everywhere, and the scheme keeps positive
cells positive), so restricting F' to the support would skip nothing, and the solver
evaluates it on every cell.
Run: ``.venv/bin/python benchmarks/first_variation.py [--repeats 5] [--quick]``.
Prints a table, then a JSON line; its top-level figures are for the largest case of
the tanh units, the ``rows`` hold everything.
"""

import argparse
import json
import statistics
import time

import numpy as np

from solver import Feature, Grid, problems, solve, tune_process
from solver.energies.network import cell_evaluation
from solver.kernels import network as kernels


def wall_times(functions, repeats):
    """Wall times of each of ``functions`` (by name), ``repeats`` calls each after one warm-up
    call, interleaved: round r calls them in turn, starting at the r-th (the machine's load
    falls on all alike)."""
    names = list(functions)
    for name in names:
        functions[name]()
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            functions[name]()
            times[name].append(time.perf_counter() - start)
    return times


def median_seconds(function, repeats):
    """Median wall time of ``function()`` over ``repeats`` calls after one warm-up call."""
    return statistics.median(wall_times({"f": function}, repeats)["f"])


def measure(feature, cells, n_data, repeats, rng):
    """Throughputs of the grid kernel, the pointwise kernel, the NumPy references and
    the bound for one case."""
    grid = Grid([(-3, 3), (-3, 3)], cells)
    theta = np.ascontiguousarray(grid.points.reshape(-1, 2))
    X = rng.standard_normal((n_data, 2))
    coef = rng.standard_normal(n_data) / n_data
    spec, out = feature.spec, np.empty(len(theta))
    start = time.perf_counter()
    tables = cell_evaluation(feature, grid, X, "separable")
    tables_seconds = time.perf_counter() - start
    matrix = np.empty((len(theta), n_data))
    kernels.feature_matrix(spec, theta, X, matrix)
    fewer = max(1, repeats // 2)  # the slow ones
    times = wall_times({"kernel": lambda: tables.first_variation(coef),
                        "pointwise": lambda: kernels.first_variation(spec, theta, coef, X, out),
                        "bound": lambda: matrix @ coef}, repeats)
    seconds = {name: statistics.median(t) for name, t in times.items()}
    seconds["numpy"] = median_seconds(lambda: kernels.first_variation_reference(spec, theta, coef, X), fewer)
    seconds["numpy_tables"] = median_seconds(
        lambda: kernels.separable_matrix_reference(tables.form, *tables.tables) @ coef, fewer)
    per_round = [bound / pointwise for bound, pointwise in zip(times["bound"], times["pointwise"])]
    np.testing.assert_allclose(out, matrix @ coef, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(tables.first_variation(coef), matrix @ coef, rtol=1e-10, atol=1e-12)
    pairs = len(theta) * n_data
    return {"feature": feature.activation, "cells": len(theta), "data": n_data, "tables_seconds": tables_seconds,
            **{f"{name}_pairs_per_s": pairs / s for name, s in seconds.items()},
            "speedup_vs_numpy": seconds["numpy"] / seconds["kernel"],
            "speedup_vs_numpy_tables": seconds["numpy_tables"] / seconds["kernel"],
            "fraction_of_bound": seconds["bound"] / seconds["kernel"],
            "pointwise_speedup_vs_numpy": seconds["numpy"] / seconds["pointwise"],
            "pointwise_fraction_of_bound": seconds["bound"] / seconds["pointwise"],
            "pointwise_fraction_of_bound_range": [min(per_round), max(per_round)]}


def cells_with_mass(name, cells=32):
    """The smallest fraction of cells with ρ > 0 over 9 saves of preset ``name``'s PDE run."""
    problem = problems.get(name, cells=cells)
    times = np.linspace(0, problem.t_end, 9)
    solution = solve(problem.energy, problem.grid, problem.rho0, (0, problem.t_end), save_at=times)
    return float(min(np.mean(rho > 0) for rho in solution.rho))


def main():
    """Run the cases, print the table and the JSON line."""
    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small cases only, for a smoke test")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    sizes = [(32, 100)] if args.quick else [(64, 1000), (64, 10000), (128, 1000), (128, 10000)]
    rows = [measure(Feature.fixed_output(name, 2), cells, n, args.repeats, rng)
            for name in ("tanh", "relu") for cells, n in sizes]
    print("Pairs (cells × data points) per second; kernel = the grid solver's table kernel.")
    print("| units | cells | data | kernel | pointwise | NumPy | NumPy tables | bound | kernel × NumPy "
          "| kernel × NumPy tables | kernel / bound | pointwise / bound | tables (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['feature']} | {r['cells']} | {r['data']} | {r['kernel_pairs_per_s']:.3g} | "
              f"{r['pointwise_pairs_per_s']:.3g} | {r['numpy_pairs_per_s']:.3g} | "
              f"{r['numpy_tables_pairs_per_s']:.3g} | "
              f"{r['bound_pairs_per_s']:.3g} | {r['speedup_vs_numpy']:.1f} | {r['speedup_vs_numpy_tables']:.1f} | "
              f"{r['fraction_of_bound']:.2f} | {r['pointwise_fraction_of_bound']:.2f} | {r['tables_seconds']:.3f} |")
    support = {name: cells_with_mass(name) for name in ("tanh-teacher", "rbf-mixture")}
    print("Smallest fraction of cells with mass along the PDE runs (32² cells): "
          + ", ".join(f"{name} {value:.0%}" for name, value in support.items()))
    largest = rows[len(sizes) - 1]
    print(json.dumps({"benchmark": "first_variation", "cells_with_mass": support, "units": largest["feature"],
                      "cells": largest["cells"], "data": largest["data"],
                      "speedup_vs_numpy": largest["speedup_vs_numpy"],
                      "fraction_of_bound": largest["fraction_of_bound"],
                      "speedup_vs_numpy_tables": largest["speedup_vs_numpy_tables"],
                      "pointwise_speedup_vs_numpy": largest["pointwise_speedup_vs_numpy"],
                      "pointwise_fraction_of_bound": largest["pointwise_fraction_of_bound"],
                      "pointwise_fraction_of_bound_range": largest["pointwise_fraction_of_bound_range"],
                      "rows": rows}))


if __name__ == "__main__":
    main()
