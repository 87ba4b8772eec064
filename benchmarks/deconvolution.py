"""Sparse spike deconvolution (BLASSO) on the torus: the PDE, particles and the convex solvers.

Chizat's 2D set-up (preset ``deconvolution-2d``: three spikes, Dirichlet kernel |ω|_∞ ≤ 2,
λ ∈ {0, 1, 4}) and a 1D case (``deconvolution-1d``: f_c = 8, λ = 0.3, five spikes):

- the PDE ∂tν± = ∇·(ν±∇F'±) − 4F'±ν± on the periodic grid from ν± uniform (mass ¼ each)
  to t = 30 (Chizat's 3000 iterations of step 0.01);
- the discrete BLASSO on the same cells (:meth:`SpikeDeconvolution.convex_reference`,
  KKT residual ≤ 1e-10), the optimum F* the PDE can reach;
- the continuous BLASSO optimum, bracketed independently of every particle run
  (:meth:`SpikeDeconvolution.continuous_reference`): the discrete BLASSO on 64² cells slid off
  the grid (an upper bound) and the dual point of its residual (a lower bound F_c; and a
  certified one, with the sup of Φ*p bounded by Bernstein's inequality instead of searched);
- conic particle gradient descent (α = 4, β = 1: Chizat's α_C = β_C; η = 0.01, 3000
  iterations) from his starts: m = 100 on a 10×10 grid, m = 4 and m = 3 at his positions, all
  of mass ¼ in ν+; in 1D m = 5, 10, 100 equally spaced (η = 0.002, his 1D step: 0.01 is
  unstable at f_c = 8);
- plain gradient descent on particles (z, r) (:func:`solver.particles.simulate`, step 0.001 to
  t = 30) from the m = 100 start (r = ½, weights 1/m: the same masses);
- the particle study (:func:`solver.compare.deconvolution_study`, what ``[particles]`` runs):
  plain and conic GD at m = 4, 10, 30, 100 from the preset's random start (half the atoms in
  ν−), step 0.001 (at 0.002 plain GD's energy rose at m = 30): energy, excess over F_c, spike
  error (null when no atom is near a spike), wall time.

Prints tables (energy reached, gaps, spike position error in cells, wall time), writes the
figures (default notebooks/figures/deconvolution: ``recovered_2d.png``, the PDE's ν+ at
t = 30 for λ = 1 with the true spikes and the conic atoms; ``optimality_gap.png``, the
normalized optimality gaps on a log scale against t), then a final JSON line with
``pde_energy_gap`` ((F − F*)/F* per λ; for λ = 0, where F* = 0, F − F* itself),
``spike_position_error`` (max over the spikes of the distance, in cells, from a true spike to
the centroid of ν+ on its 3×3 block of cells, per λ > 0), ``conic_gd_energy_gap``
((F_m − F_c)/F_c per λ and m, F_c the continuous reference's lower bound; for λ = 0, where
F_c = 0, F_m itself: an upper bound on the true relative gap), ``conic_gd_energy_gap_certified``
(the same against the certified lower bound), ``continuous_reference`` (the bracket per λ) and
``particle_study`` (per λ, method and m: excess, spike error, seconds).

Run: ``.venv/bin/python benchmarks/deconvolution.py [--quick] [--out DIR]`` (``--quick``:
24² cells, plain gradient descent and the particle study for λ = 1 only, the figures in a
temporary folder, not over the README's; a few minutes).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
from quick import figures_folder

from solver import tune_process

T_END, STEP, STEP_1D, STEP_GD, STEP_STUDY = 30.0, 0.01, 0.002, 0.001, 0.001
STUDY_TIMES, STUDY_MS = [0.0, 1.0, 3.0, 10.0, 30.0], (4, 10, 30, 100)
CONIC_2D = {100: None, 4: np.pi + np.array([[0.5, -0.5], [2.1, -0.7], [0.3, 1.8], [0.5, 1.5]]),
            3: np.pi + np.array([[0.5, -0.5], [2.1, -0.7], [0.3, 1.8]])}


def chizat_grid_start(res=10):
    """His m = res² start: the centres of a res × res grid of T²."""
    axis = np.linspace(np.pi / res, 2 * np.pi - np.pi / res, res)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def run_pde(problem, t_end=T_END):
    """The PDE from the preset's start to ``t_end`` against the discrete optimum on its cells."""
    from solver import solve

    energy, grid = problem.energy, problem.grid
    start = time.perf_counter()
    reference = energy.convex_reference(grid)
    convex_seconds = time.perf_counter() - start
    start = time.perf_counter()
    solution = solve(energy, grid, problem.rho0, (0.0, t_end), save_at=STUDY_TIMES)
    seconds = time.perf_counter() - start
    report = solution.invariants()
    value = energy.value(solution.rho[-1], grid)
    h = 2 * np.pi / grid.base.shape[0]
    errors, block_masses = energy.spike_errors(energy.cell_atoms(solution.rho[-1], grid), h)
    _, reference_blocks = energy.spike_errors(energy.cell_atoms(reference.rho, grid), h)
    start = time.perf_counter()
    continuous = energy.continuous_reference()
    continuous_seconds = time.perf_counter() - start
    return {"F": value, "F*": reference.value, "F0": energy.value(problem.rho0, grid),
            "gap": (value - reference.value) / reference.value if reference.value > 1e-12 else value - reference.value,
            "errors": errors, "block_masses": block_masses, "reference_blocks": reference_blocks,
            "t": np.asarray(solution.history["t"]), "energy": np.asarray(solution.history["energy"]),
            "rho": solution.rho[-1], "seconds": seconds, "convex_seconds": convex_seconds,
            "steps": solution.accepted, "invariants": report, "kkt": reference.minimum.kkt_residual,
            "solution": solution, "continuous": continuous, "continuous_seconds": continuous_seconds}


def run_conic(energy, positions, step=STEP, mass=0.25):
    from solver.conic import conic_gradient_descent
    from solver.energies.deconvolution import TorusMeasure

    m = len(positions)
    start = time.perf_counter()
    run = conic_gradient_descent(energy, TorusMeasure(np.mod(positions, 2 * np.pi), np.full(m, mass / m),
                                                      np.ones(m)), step, round(T_END / step), reaction=4.0)
    return {"energies": run.energies, "measure": run.measure, "seconds": time.perf_counter() - start, "step": step,
            "monotone": bool(np.all(np.diff(run.energies) <= 1e-12 * run.energies[0]))}


def run_plain_gd(energy, positions, r=0.5):
    """Plain gradient descent on particles θ = (z, r), weights 1/m, step 0.001 to t = 30
    (:func:`solver.particles.simulate`; 0.01 is unstable: the masses grow, and the speed r²∇F'±
    of the positions with them)."""
    from solver.particles import simulate

    m = len(positions)
    theta = np.concatenate([positions, np.full((m, 1), r)], axis=1)
    run = simulate(energy, theta, (0.0, T_END), step=STEP_GD, progress=False)
    return {"energy": energy.particle_energy(run.theta[-1], run.weights), "seconds": run.wall_time}


def relative(value, best):
    return (value - best) / best if best > 1e-12 else value - best


def figures(out, runs_2d, conic_2d, grid_2d, spikes):
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    lam = 1.0 if 1.0 in runs_2d else sorted(runs_2d)[0]
    run = runs_2d[lam]
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    n = grid_2d.base.shape[0]
    image = ax.imshow(run["rho"][0].T, origin="lower", extent=[0, 2 * np.pi, 0, 2 * np.pi], cmap="magma_r")
    fig.colorbar(image, ax=ax, label="ν+ density (PDE, t = 30)")
    ax.scatter(*spikes.T, s=120, facecolors="none", edgecolors="tab:blue", linewidths=1.5, label="true spikes")
    atoms = conic_2d[lam][100]["measure"]
    keep = atoms.masses > 1e-3 * atoms.masses.max()
    ax.scatter(*atoms.positions[keep].T, s=400 * atoms.masses[keep], marker="x", color="tab:green",
               label="conic GD, m = 100")
    ax.set(xlabel="z₁", ylabel="z₂", title=f"BLASSO on T², λ = {lam:g}, {n}² cells")
    ax.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "recovered_2d.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    for color, (lam, run) in zip(("C0", "C1", "C2"), sorted(runs_2d.items())):
        gap = (run["energy"] - run["F*"]) / (run["F0"] - run["F*"])
        ax.semilogy(run["t"], np.maximum(gap, 1e-16), color=color, lw=2, label=f"PDE, λ = {lam:g}")
        lower = run["continuous"].lower
        for style, (m, r) in zip(("--", "-.", ":"), conic_2d[lam].items()):
            gap = (r["energies"] - lower) / (r["energies"][0] - lower)
            ax.semilogy(r["step"] * np.arange(len(gap)), np.maximum(gap, 1e-16), style, color=color, lw=1,
                        label=f"conic GD m = {m}" if color == "C0" else None)
    ax.set(xlabel="t (Chizat's iteration k at t = 0.01k)", ylabel="(F − F*)/(F₀ − F*)", ylim=(1e-12, 2),
           title="Normalized optimality gap\n(PDE: F* of its cells; conic GD: the continuous F_c)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "optimality_gap.png", dpi=120)
    plt.close(fig)


def spike_error_cell(error, lam):
    """The table's spike error: none at λ = 0 (nothing concentrates), ∞ where no atom is near a spike."""
    return float("nan") if lam == 0 else float("inf") if error is None else error


def study_summary(result):
    """{method: {m: {excess, spike_error, seconds}}} at the last time (one seed)."""
    last = result["times"][-1]
    return {method: {str(row["m"]): {key: row[key] if np.isfinite(row[key]) else None
                                     for key in ("energy", "excess", "spike_error", "seconds")}
                     for row in result["rows"] if row["method"] == method and row["t"] == last}
            for method in ("gd", "conic")}


def main():
    tune_process()
    from solver import problems
    from solver.compare import deconvolution_study

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="24² cells, plain GD and the particle study for λ = 1 only")
    parser.add_argument("--out", type=Path, help="folder for the figures (default notebooks/figures/deconvolution; "
                                                 "with --quick a temporary folder)")
    args = parser.parse_args()
    args.out = figures_folder(args, "deconvolution")
    penalties, cells_2d, cells_1d = (0.0, 1.0, 4.0), 24 if args.quick else 32, 128

    rows, runs_2d, conic_2d, gd_2d, studies = [], {}, {}, {}, {}
    for lam in penalties:
        problem = problems.get("deconvolution-2d", penalty=lam, cells=cells_2d)
        runs_2d[lam] = run = run_pde(problem)
        continuous = run["continuous"]
        conic_2d[lam] = {m: run_conic(problem.energy, chizat_grid_start() if start is None else start)
                         for m, start in CONIC_2D.items()}
        full = lam == 1.0 or not args.quick
        if full:
            gd_2d[lam] = run_plain_gd(problem.energy, chizat_grid_start())
            studies[lam] = deconvolution_study(problem, STUDY_MS, STUDY_TIMES, [0], STEP_STUDY, pde=run["solution"])
        case = f"2D λ = {lam:g}"
        rows.append((case, f"PDE, {cells_2d}² cells", run["F"], relative(run["F"], run["F*"]),
                     relative(run["F"], continuous.lower), max(run["errors"]) if lam > 0 else float("nan"),
                     run["seconds"]))
        rows.append((case, "discrete BLASSO (same cells)", run["F*"], 0.0, relative(run["F*"], continuous.lower),
                     float("nan"), run["convex_seconds"]))
        rows.append((case, "continuous: slid atoms (upper) / dual bound (lower)",
                     f"{continuous.upper:.10g} / {continuous.lower:.10g}", relative(continuous.lower, run["F*"]), 0.0,
                     float("nan"), run["continuous_seconds"]))
        for m, r in conic_2d[lam].items():
            rows.append((case, f"conic GD, m = {m}", r["energies"][-1], relative(r["energies"][-1], run["F*"]),
                         relative(r["energies"][-1], continuous.lower), float("nan"), r["seconds"]))
        if lam in gd_2d:
            rows.append((case, "plain GD on (z, r), m = 100 (grid start)", gd_2d[lam]["energy"],
                         relative(gd_2d[lam]["energy"], run["F*"]), relative(gd_2d[lam]["energy"], continuous.lower),
                         float("nan"), gd_2d[lam]["seconds"]))
        for method, label in (("gd", "plain GD"), ("conic", "conic GD")) if full else ():
            for m, row in study_summary(studies[lam])[method].items():
                rows.append((case, f"{label}, m = {m} (random start, η = {STEP_STUDY:g})", row["energy"],
                             relative(row["energy"], run["F*"]), relative(row["energy"], continuous.lower),
                             spike_error_cell(row["spike_error"], lam), row["seconds"]))

    problem_1d = problems.get("deconvolution-1d", cells=cells_1d)
    run_1d = run_pde(problem_1d)
    continuous_1d = run_1d["continuous"]
    conic_1d = {m: run_conic(problem_1d.energy, np.linspace(0, 2 * np.pi, m, endpoint=False)[:, None], STEP_1D)
                for m in (5, 10, 100)}
    rows.append(("1D λ = 0.3", f"PDE, {cells_1d} cells", run_1d["F"], run_1d["gap"],
                 relative(run_1d["F"], continuous_1d.lower), max(run_1d["errors"]), run_1d["seconds"]))
    rows.append(("1D λ = 0.3", "discrete BLASSO (same cells)", run_1d["F*"], 0.0,
                 relative(run_1d["F*"], continuous_1d.lower), float("nan"), run_1d["convex_seconds"]))
    rows.append(("1D λ = 0.3", "continuous: slid atoms (upper) / dual bound (lower)",
                 f"{continuous_1d.upper:.10g} / {continuous_1d.lower:.10g}",
                 relative(continuous_1d.lower, run_1d["F*"]), 0.0, float("nan"), run_1d["continuous_seconds"]))
    for m, r in conic_1d.items():
        rows.append(("1D λ = 0.3", f"conic GD, m = {m}", r["energies"][-1], relative(r["energies"][-1], run_1d["F*"]),
                     relative(r["energies"][-1], continuous_1d.lower), float("nan"), r["seconds"]))

    print(f"BLASSO ½|Φμ − y|² + λ|μ| to t = {T_END:g}; gaps (F − F*)/F* against the discrete optimum on the PDE's "
          "cells and (F − F_c)/F_c against the continuous optimum's lower bound (F − F* and F − F_c for λ = 0); "
          "spike error: centroid of ν+ near each true spike, in cells (max over spikes)")
    print("| case | method | energy | gap to the cells' F* | gap to F_c | spike error (cells) | seconds |")
    print("|---|---|---|---|---|---|---|")
    for case, method, value, gap, continuous_gap, error, seconds in rows:
        value = value if isinstance(value, str) else f"{value:.10g}"
        print(f"| {case} | {method} | {value} | {gap:.3g} | {continuous_gap:.3g} | {error:.3g} | {seconds:.2f} |")
    for lam, run in runs_2d.items():
        inv, continuous = run["invariants"], run["continuous"]
        print(f"2D λ = {lam:g}: {run['steps']} steps, mass drift {inv['mass_drift']:.2g}, min ρ {inv['min']:.2g}, "
              f"energy rise {inv['energy_rise']:.2g}, KKT {run['kkt']:.2g}; ν+ on the spikes' blocks "
              f"{np.round(run['block_masses'], 4).tolist()} (discrete optimum "
              f"{np.round(run['reference_blocks'], 4).tolist()}, true masses "
              f"{problem.teacher[:, -1].round(4).tolist()}); conic GD monotone: "
              f"{[r['monotone'] for r in conic_2d[lam].values()]}; continuous bracket width "
              f"{continuous.upper - continuous.lower:.2g}, certified lower bound {continuous.certified_lower:.10g}")
    figures(args.out, runs_2d, conic_2d, problem.grid, problem.teacher[:, :-1])
    print(f"figures in {args.out}")
    print(json.dumps({
        "benchmark": "deconvolution", "quick": args.quick, "cells_2d": cells_2d, "cells_1d": cells_1d,
        "pde_energy_gap": {f"{lam:g}": run["gap"] for lam, run in runs_2d.items()} | {"1d": run_1d["gap"]},
        "spike_position_error": {f"{lam:g}": max(run["errors"]) for lam, run in runs_2d.items() if lam > 0}
        | {"1d": max(run_1d["errors"])},
        "continuous_reference": {f"{lam:g}": {"lower": run["continuous"].lower, "upper": run["continuous"].upper,
                                              "certified_lower": run["continuous"].certified_lower}
                                 for lam, run in runs_2d.items()}
        | {"1d": {"lower": continuous_1d.lower, "upper": continuous_1d.upper,
                  "certified_lower": continuous_1d.certified_lower}},
        "conic_gd_energy_gap": {f"{lam:g}": {str(m): relative(r["energies"][-1], runs_2d[lam]["continuous"].lower)
                                             for m, r in conic_2d[lam].items()} for lam in runs_2d}
        | {"1d": {str(m): relative(r["energies"][-1], continuous_1d.lower) for m, r in conic_1d.items()}},
        "conic_gd_energy_gap_certified": {
            f"{lam:g}": {str(m): relative(r["energies"][-1], runs_2d[lam]["continuous"].certified_lower)
                         for m, r in conic_2d[lam].items()} for lam in runs_2d}
        | {"1d": {str(m): relative(r["energies"][-1], continuous_1d.certified_lower) for m, r in conic_1d.items()}},
        "conic_gd_below_cells_optimum": {f"{lam:g}": {str(m): relative(r["energies"][-1], runs_2d[lam]["F*"])
                                                      for m, r in conic_2d[lam].items()} for lam in runs_2d},
        "plain_gd_energy_gap": {f"{lam:g}": relative(r["energy"], runs_2d[lam]["continuous"].lower)
                                for lam, r in gd_2d.items()},
        "particle_study": {f"{lam:g}": study_summary(result) for lam, result in studies.items()},
        "pde_seconds": sum(run["seconds"] for run in runs_2d.values()) + run_1d["seconds"],
    }))


if __name__ == "__main__":
    main()
