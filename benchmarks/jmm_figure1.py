"""Figure 1 of Javanmard–Mondelli–Montanari: SGD on N = 200 bumps against the limit PDE
and the fixed-δ PDEs (see :mod:`solver.jmm`), with the time of the PDE part against the
SGD part.

Writes ``jmm_figure1.png`` and ``jmm_overlay.png`` (default: notebooks/figures/jmm, the
README's copies; with ``--quick`` a temporary folder), prints a table of the normalized risks
∫(f − f̂_t)²/∫f² at t = 0.5, 1, 2, 3 and the wall times (SGD's per seed), then a JSON line
with the same figures: ``pde_seconds`` (the limit and the fixed-δ PDEs), ``sgd_seconds``
(every seed and δ), ``sgd_seconds_per_seed`` and ``sgd_over_pde_time`` (the ratio of the
two totals, the start's compilation included in both).

Run: ``.venv/bin/python benchmarks/jmm_figure1.py [--quick] [--out DIR]``.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from quick import figures_folder, resolve

from solver import tune_process

REPORT_TIMES = (0.5, 1.0, 2.0, 3.0)


def main():
    tune_process()
    from solver import jmm  # after tune_process: jmm imports matplotlib, whose PIL loads libgomp (OpenMP)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one δ, N = 50, one seed, a coarse grid")
    parser.add_argument("--seeds", type=int, help="SGD runs per δ (default 5, quick 1)")
    parser.add_argument("--out", type=Path, help="folder for the figures (default notebooks/figures/jmm; with "
                                                 "--quick a temporary folder)")
    args = parser.parse_args()
    args.out = figures_folder(args, "jmm")
    resolve(args, seeds=(1, 5))
    if args.quick:
        result = jmm.figure1(deltas=(1 / 5,), n_neurons=50, seeds=tuple(range(args.seeds)), cells=100, out=args.out)
    else:
        result = jmm.figure1(seeds=tuple(range(args.seeds)), out=args.out)
    at = [int(np.argmin(np.abs(result["t"] - s))) for s in REPORT_TIMES]
    rows = [("limit PDE (δ = 0)", "", result["limit"][at], result["limit_seconds"])]
    for delta, run in result["runs"].items():
        rows.append((f"fixed-δ PDE, δ = {delta:g}", "", run["pde"][at], run["pde_seconds"]))
        rows.append((f"SGD, δ = {delta:g}, N = {result['n_neurons']}", f"ε = {run['step']:.3g}, B = {run['batch']}",
                     run["sgd"][at], run["sgd_seconds"] / len(result["seeds"])))
    print(f"Normalized risk ∫(f − f̂_t)²/∫f²; SGD averaged over {len(result['seeds'])} seeds, its time per seed; "
          f"figures in {args.out}")
    print("| run | settings | " + " | ".join(f"t = {s:g}" for s in REPORT_TIMES) + " | seconds |")
    print("|---|---|" + "---|" * len(REPORT_TIMES) + "---|")
    for name, settings, risks, seconds in rows:
        print(f"| {name} | {settings} | " + " | ".join(f"{r:.4g}" for r in risks) + f" | {seconds:.2f} |")
    pde_seconds = result["limit_seconds"] + sum(run["pde_seconds"] for run in result["runs"].values())
    sgd_seconds = sum(run["sgd_seconds"] for run in result["runs"].values())
    print(json.dumps({
        "benchmark": "jmm_figure1", "times": list(REPORT_TIMES), "n_neurons": result["n_neurons"],
        "seeds": len(result["seeds"]), "limit_pde": result["limit"][at].tolist(),
        "fixed_delta_pde": {f"{d:g}": run["pde"][at].tolist() for d, run in result["runs"].items()},
        "sgd_mean": {f"{d:g}": run["sgd"][at].tolist() for d, run in result["runs"].items()},
        "pde_seconds": pde_seconds, "sgd_seconds": sgd_seconds,
        "sgd_seconds_per_seed": sgd_seconds / len(result["seeds"]), "sgd_over_pde_time": sgd_seconds / pde_seconds,
    }))


if __name__ == "__main__":
    main()
