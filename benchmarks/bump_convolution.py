"""FFT against direct convolution for the fixed-δ first variation F_δ'(ρ) = K^δ∗(K^δ∗ρ − f)/|Ω|
on grids, across δ/h, and what ``convolution="auto"`` (``scipy.signal.choose_conv_method``)
picks.

Both methods compute the same zero-padded linear convolutions with the cell-averaged bump
stencil ((2r + 1)^d cells, r ≈ δ/h): direct costs O(N r^d), FFT O(N log N). Prints a table
of median seconds per evaluation (after a warm-up), then a JSON line with the crossover
δ/h (the smallest δ/h at which FFT wins) per grid and the worst slowdown of ``auto`` against
the faster method.

Run: ``.venv/bin/python benchmarks/bump_convolution.py [--quick]``.
"""

import argparse
import json
import statistics
import time

import numpy as np

from solver import Grid, tune_process
from solver.domains import Box
from solver.energies import BumpRisk

RATIOS = (1, 2, 4, 8, 16, 32)


def seconds(energy, rho, grid, repeats):
    """(median seconds of ``energy.first_variation`` after a warm-up that builds the stencil,
    the first variation)."""
    answer = energy.first_variation(rho, grid)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        energy.first_variation(rho, grid)
        times.append(time.perf_counter() - start)
    return statistics.median(times), answer


def main():
    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small grids, fewer ratios")
    args = parser.parse_args()
    grids = [Grid([(-1, 1)], 1024), Grid([(-1, 1)] * 2, 64)] if args.quick else \
        [Grid([(-1, 1)], 16384), Grid([(-1, 1)] * 2, 256)]
    ratios = RATIOS[:3] if args.quick else RATIOS
    rows, difference = [], 0.0
    for grid in grids:
        def f(x):
            return np.ones(x.shape[:-1])

        domain = Box(grid.bounds[:, 0], grid.bounds[:, 1])
        rho = np.random.default_rng(0).random(grid.shape)
        for ratio in ratios:
            delta = ratio * grid.h[0]
            runs = {method: seconds(BumpRisk(f, delta, domain, convolution=method), rho, grid, 3 if args.quick else 7)
                    for method in ("direct", "fft", "auto")}
            times = {method: median for method, (median, _) in runs.items()}
            direct = runs["direct"][1]
            difference = max(difference, *(float(np.abs(answer - direct).max() / np.abs(direct).max())
                                            for _, answer in runs.values()))
            rows.append({"cells": "×".join(map(str, grid.shape)), "delta_over_h": ratio, **times})
    print(f"Median seconds per F_δ' evaluation (two convolutions); the three methods' F' agree to {difference:.1e} "
          "(relative)")
    if difference > 1e-10:
        raise SystemExit(f"bump_convolution: direct and FFT convolution differ by {difference:.3g} (relative)")
    print("| cells | δ/h | direct | FFT | auto | faster |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        faster = "direct" if r["direct"] < r["fft"] else "FFT"
        print(f"| {r['cells']} | {r['delta_over_h']} | {r['direct']:.4g} | {r['fft']:.4g} | {r['auto']:.4g} "
              f"| {faster} |")
    crossover = {}
    for cells in dict.fromkeys(r["cells"] for r in rows):
        wins = [r["delta_over_h"] for r in rows if r["cells"] == cells and r["fft"] < r["direct"]]
        crossover[cells] = min(wins) if wins else None
    print(json.dumps({
        "benchmark": "bump_convolution", "crossover_delta_over_h": crossover,
        "auto_worst_slowdown": max(r["auto"] / min(r["direct"], r["fft"]) for r in rows),
        "max_difference": difference, "rows": rows,
    }))


if __name__ == "__main__":
    main()
