"""Sparse spike deconvolution (BLASSO) on the torus: the PDE, particles and the convex solver.

Chizat's 2D set-up (preset ``deconvolution-2d``: three spikes, Dirichlet kernel |ω|_∞ ≤ 2,
λ ∈ {0, 1, 4}) and a 1D case (``deconvolution-1d``: f_c = 8, λ = 0.3, five spikes):

- the PDE ∂tν± = ∇·(ν±∇F'±) − 4F'±ν± on the periodic grid from ν± uniform (mass ¼ each)
  to t = 30 (Chizat's 3000 iterations of step 0.01;);
- the discrete BLASSO on the same cells (:meth:`SpikeDeconvolution.convex_reference`,
  KKT residual ≤ 1e-10), the optimum F* the PDE can reach;
- conic particle gradient descent (α = 4, β = 1: Chizat's α_C = β_C; η = 0.01, 3000
  iterations) from his starts: m = 100 on a 10×10 grid, m = 4 and m = 3 at his positions, all
  of mass ¼ in ν+; in 1D m = 5, 10, 100 equally spaced (η = 0.002, his 1D step: 0.01 is
  unstable at f_c = 8);
- plain gradient descent on particles (z, r) (explicit Euler, step 0.001 to t = 30) from the
  m = 100 start (r = ½, weights 1/m: the same masses).

Prints a table (energy reached, gaps, spike position error in cells, wall time), writes the
figures (default notebooks/figures/deconvolution: ``recovered_2d.png``, the PDE's ν+ at
t = 30 for λ = 1 with the true spikes and the conic atoms; ``optimality_gap.png``, the
normalized optimality gaps on a log scale against t), then a final JSON line with
``pde_energy_gap`` ((F − F*)/F* per λ; for λ = 0, where F* = 0, F − F* itself),
``spike_position_error`` (max over the spikes of the distance, in cells, from a true spike to
the centroid of ν+ on its 3×3 block of cells, per λ > 0) and ``conic_gd_energy_gap``
((F_m − F_best)/F_best per λ and m, F_best the lowest energy any run reached; for λ = 0
F_m itself).

Run: ``.venv/bin/python benchmarks/deconvolution.py [--quick] [--out DIR]`` (``--quick``:
24² cells, plain gradient descent for λ = 1 only; about two minutes).
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np

from solver import tune_process

T_END, STEP, STEP_1D, STEP_GD = 30.0, 0.01, 0.002, 0.001
CONIC_2D = {100: None, 4: np.pi + np.array([[0.5, -0.5], [2.1, -0.7], [0.3, 1.8], [0.5, 1.5]]),
            3: np.pi + np.array([[0.5, -0.5], [2.1, -0.7], [0.3, 1.8]])}


def chizat_grid_start(res=10):
    """His m = res² start: the centres of a res × res grid of T²."""
    axis = np.linspace(np.pi / res, 2 * np.pi - np.pi / res, res)
    return np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)


def spike_errors(grid, rho_plus, spikes):
    """For each true spike, the distance (sup norm, periodic, in cells) from it to the centroid
    of ν+ on its 3×3 block of cells (centres within 1.5 cells), and the block's mass."""
    h = 2 * np.pi / grid.base.shape[0]
    points = grid.base.points.reshape(-1, grid.dim)
    masses = (rho_plus * grid.base.weights[0]).reshape(-1)
    offsets = np.angle(np.exp(1j * (points[:, None, :] - spikes[None])))  # (K, m0, d) in (−π, π]
    errors, block_masses = [], []
    for k in range(len(spikes)):
        block = np.max(np.abs(offsets[:, k]), axis=1) < 1.5 * h
        mass = masses[block].sum()
        centroid = masses[block] @ offsets[block, k] / mass if mass > 0 else np.full(grid.dim, np.inf)
        errors.append(float(np.max(np.abs(centroid)) / h))
        block_masses.append(float(mass))
    return errors, block_masses


def run_pde(problem, t_end=T_END):
    """The PDE from the preset's start to ``t_end`` against the discrete optimum on its cells."""
    from solver import solve

    energy, grid = problem.energy, problem.grid
    start = time.perf_counter()
    reference = energy.convex_reference(grid)
    convex_seconds = time.perf_counter() - start
    start = time.perf_counter()
    solution = solve(energy, grid, problem.rho0, (0.0, t_end), save_at=[t_end])
    seconds = time.perf_counter() - start
    report = solution.invariants()
    value = energy.value(solution.rho[-1], grid)
    spikes = problem.teacher[:, :-1]
    errors, block_masses = spike_errors(grid, solution.rho[-1][0], spikes)
    _, reference_blocks = spike_errors(grid, reference.rho[0], spikes)
    return {"F": value, "F*": reference.value, "F0": energy.value(problem.rho0, grid),
            "gap": (value - reference.value) / reference.value if reference.value > 1e-12 else value - reference.value,
            "errors": errors, "block_masses": block_masses, "reference_blocks": reference_blocks,
            "t": np.asarray(solution.history["t"]), "energy": np.asarray(solution.history["energy"]),
            "rho": solution.rho[-1], "seconds": seconds, "convex_seconds": convex_seconds,
            "steps": solution.accepted, "invariants": report, "kkt": reference.minimum.kkt_residual}


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
    """Explicit Euler on particles θ = (z, r), weights 1/m, step 0.001 to t = 30 (0.01 is unstable: the
    masses grow, and the speed r²∇F'± of the positions with them)."""
    m = len(positions)
    theta, weights = np.concatenate([positions, np.full((m, 1), r)], axis=1), np.full(m, 1.0 / m)
    start, energies = time.perf_counter(), [energy.particle_energy(theta, weights)]
    for _ in range(round(T_END / STEP_GD)):
        theta = theta + STEP_GD * energy.particle_velocity(theta, weights)
        energies.append(energy.particle_energy(theta, weights))
    return {"energies": np.array(energies), "seconds": time.perf_counter() - start}


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
        best = min(min(r["energies"][-1] for r in conic_2d[lam].values()), run["F*"])
        for style, (m, r) in zip(("--", "-.", ":"), conic_2d[lam].items()):
            gap = (r["energies"] - best) / (r["energies"][0] - best)
            ax.semilogy(r["step"] * np.arange(len(gap)), np.maximum(gap, 1e-16), style, color=color, lw=1,
                        label=f"conic GD m = {m}" if color == "C0" else None)
    ax.set(xlabel="t (Chizat's iteration k at t = 0.01k)", ylabel="(F − F*)/(F₀ − F*)", ylim=(1e-12, 2),
           title="Normalized optimality gap\n(PDE: F* of its cells; particles: their best F)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(out / "optimality_gap.png", dpi=120)
    plt.close(fig)


def main():
    tune_process()
    from solver import problems

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="24² cells, plain GD for λ = 1 only")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "notebooks" / "figures"
                        / "deconvolution", help="folder for the figures")
    args = parser.parse_args()
    penalties, cells_2d, cells_1d = (0.0, 1.0, 4.0), 24 if args.quick else 32, 128

    rows, runs_2d, conic_2d, gd_2d = [], {}, {}, {}
    for lam in penalties:
        problem = problems.get("deconvolution-2d", penalty=lam, cells=cells_2d)
        spikes = problem.teacher[:, :-1]
        runs_2d[lam] = run = run_pde(problem)
        conic_2d[lam] = {m: run_conic(problem.energy, chizat_grid_start() if start is None else start)
                         for m, start in CONIC_2D.items()}
        if lam == 1.0 or not args.quick:
            gd_2d[lam] = run_plain_gd(problem.energy, chizat_grid_start())
        finals = [r["energies"][-1] for r in conic_2d[lam].values()] + (
            [gd_2d[lam]["energies"][-1]] if lam in gd_2d else [])
        best = min(finals + [run["F*"], run["F"]])
        run["best"] = best
        rows.append((f"2D λ = {lam:g}", f"PDE, {cells_2d}² cells", run["F"], relative(run["F"], run["F*"]),
                     max(run["errors"]) if lam > 0 else float("nan"), run["seconds"]))
        rows.append((f"2D λ = {lam:g}", "discrete BLASSO (same cells)", run["F*"], 0.0, float("nan"),
                     run["convex_seconds"]))
        for m, r in conic_2d[lam].items():
            rows.append((f"2D λ = {lam:g}", f"conic GD, m = {m}", r["energies"][-1],
                         relative(r["energies"][-1], run["F*"]), float("nan"), r["seconds"]))
        if lam in gd_2d:
            rows.append((f"2D λ = {lam:g}", "plain GD on (z, r), m = 100", gd_2d[lam]["energies"][-1],
                         relative(gd_2d[lam]["energies"][-1], run["F*"]), float("nan"), gd_2d[lam]["seconds"]))

    problem_1d = problems.get("deconvolution-1d", cells=cells_1d)
    run_1d = run_pde(problem_1d)
    conic_1d = {m: run_conic(problem_1d.energy, np.linspace(0, 2 * np.pi, m, endpoint=False)[:, None], STEP_1D)
                for m in (5, 10, 100)}
    rows.append(("1D λ = 0.3", f"PDE, {cells_1d} cells", run_1d["F"], run_1d["gap"], max(run_1d["errors"]),
                 run_1d["seconds"]))
    rows.append(("1D λ = 0.3", "discrete BLASSO (same cells)", run_1d["F*"], 0.0, float("nan"),
                 run_1d["convex_seconds"]))
    for m, r in conic_1d.items():
        rows.append(("1D λ = 0.3", f"conic GD, m = {m}", r["energies"][-1], relative(r["energies"][-1], run_1d["F*"]),
                     float("nan"), r["seconds"]))

    print(f"BLASSO ½|Φμ − y|² + λ|μ| to t = {T_END:g}; gap = (F − F*)/F* against the discrete optimum on the PDE's "
          f"cells (F − F* for λ = 0); spike error: centroid of ν+ near each true spike, in cells (max over spikes)")
    print("| case | method | energy | gap to the cells' F* | spike error (cells) | seconds |")
    print("|---|---|---|---|---|---|")
    for case, method, value, gap, error, seconds in rows:
        print(f"| {case} | {method} | {value:.10g} | {gap:.3g} | {error:.3g} | {seconds:.2f} |")
    for lam, run in runs_2d.items():
        inv = run["invariants"]
        print(f"2D λ = {lam:g}: {run['steps']} steps, mass drift {inv['mass_drift']:.2g}, min ρ {inv['min']:.2g}, "
              f"energy rise {inv['energy_rise']:.2g}, KKT {run['kkt']:.2g}; ν+ on the spikes' blocks "
              f"{np.round(run['block_masses'], 4).tolist()} (discrete optimum "
              f"{np.round(run['reference_blocks'], 4).tolist()}, true masses "
              f"{problem.teacher[:, -1].round(4).tolist()}); conic GD monotone: "
              f"{[r['monotone'] for r in conic_2d[lam].values()]}")
    figures(args.out, runs_2d, conic_2d, problem.grid, spikes)
    print(f"figures in {args.out}")
    print(json.dumps({
        "benchmark": "deconvolution", "quick": args.quick, "cells_2d": cells_2d, "cells_1d": cells_1d,
        "pde_energy_gap": {f"{lam:g}": run["gap"] for lam, run in runs_2d.items()} | {"1d": run_1d["gap"]},
        "spike_position_error": {f"{lam:g}": max(run["errors"]) for lam, run in runs_2d.items() if lam > 0}
        | {"1d": max(run_1d["errors"])},
        "conic_gd_energy_gap": {f"{lam:g}": {str(m): relative(r["energies"][-1], runs_2d[lam]["best"])
                                             for m, r in conic_2d[lam].items()} for lam in runs_2d},
        "conic_gd_below_cells_optimum": {f"{lam:g}": {str(m): relative(r["energies"][-1], runs_2d[lam]["F*"])
                                                      for m, r in conic_2d[lam].items()} for lam in runs_2d},
        "plain_gd_energy_gap": {f"{lam:g}": relative(r["energies"][-1], runs_2d[lam]["best"])
                                for lam, r in gd_2d.items()},
        "conic_gd_energy_gap_1d": {str(m): relative(r["energies"][-1], min(
            [run_1d["F*"]] + [c["energies"][-1] for c in conic_1d.values()])) for m, r in conic_1d.items()},
        "pde_seconds": sum(run["seconds"] for run in runs_2d.values()) + run_1d["seconds"],
    }))


if __name__ == "__main__":
    main()
