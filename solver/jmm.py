"""The reproduction of Figure 1 of Javanmard–Mondelli–Montanari: SGD on N bumps of width δ
against the porous-medium limit PDE, with the fixed-δ PDE between them.

d = 1, Ω = [−1, 1], f = :func:`solver.problems.jmm_target`, N = 200, δ ∈ {1/5, 1/10,
1/20}. The PDEs use RKL2 super-steps (``scheme="rkl2"``: within 3e-4 of the SSP-RK2
risks, many times faster on these diffusion-limited flows). Left panels: f and the SGD
estimate f̂_t = (1/N) Σ_i K^δ(· − w_i(t)) (seed 0) at t = 0.5, 1, 2, 5, with K^δ∗ρ_t of the
fixed-δ PDE dashed. Right panels: the normalized risk ∫(f − f̂_t)²/∫f² against t on a log
scale: SGD (mean over seeds), the limit PDE (δ = 0) and the fixed-δ PDE. A last figure
overlays the three δ with the limit.

SGD here draws mini-batches: a step ε and a batch B with ε ≤ ε*/10 (stability, see
:meth:`~solver.energies.bump.BumpRisk.stable_step`) and ε/B small enough that SGD's own
noise is 2% of the limit's diffusivity (:meth:`~solver.energies.bump.BumpRisk.sgd_temperature`):
the mean-field regime the figure is about, at a fraction of the cost of single samples.
"""

import math
import time

import matplotlib.pyplot as plt
import numpy as np

from . import problems
from .particles import simulate
from .timeloop import solve

DELTAS = (1 / 5, 1 / 10, 1 / 20)
SNAPSHOT_TIMES = (0.5, 1.0, 2.0, 5.0)
RISK_HORIZON = 3.0
RISK_SPACING = 0.05
NOISE_RATIO = 0.02
"""SGD's noise temperature as a fraction of the limit's diffusivity ‖f‖∞/|Ω|."""


def sgd_settings(energy, spacing=RISK_SPACING):
    """(ε, B): the largest step ≤ ε*/10 that divides ``spacing``, and the smallest batch
    whose noise temperature is at most ``NOISE_RATIO`` of the limit's diffusivity."""
    step = spacing / math.ceil(spacing / (0.1 * energy.stable_step()))
    diffusivity = float(np.max(energy.f_at_quadrature)) / energy.volume
    return step, max(1, math.ceil(energy.sgd_temperature(step, 1) / (NOISE_RATIO * diffusivity)))


def figure1(deltas=DELTAS, n_neurons=200, seeds=(0, 1, 2, 3, 4), cells=200, horizon=RISK_HORIZON,
            snapshot_times=SNAPSHOT_TIMES, out=None, progress=None):
    """Run the limit PDE, the fixed-δ PDEs and SGD; return their risks (and write figures).

    Parameters
    ----------
    deltas : sequence of float
        Bump widths.
    n_neurons : int
        N, the number of SGD particles.
    seeds : sequence of int
        SGD runs per δ (initial particles and samples).
    cells : int
        Grid cells on [−1, 1] for the PDEs.
    horizon : float
        Risks are saved every 0.05 on [0, horizon].
    snapshot_times : sequence of float
        Times of the left panels' estimates (multiples of 0.05).
    out : path, optional
        Folder for ``jmm_figure1.png`` and ``jmm_overlay.png``.
    progress : bool, optional
        tqdm bars of the runs.

    Returns
    -------
    dict
        ``t`` (risk times), ``limit`` (normalized risks of the limit PDE), and per δ:
        ``pde``, ``sgd`` (mean over seeds), ``sgd_runs``, ``step``, ``batch``; the
        estimates at the snapshot times; ``pde_seconds`` and ``sgd_seconds``.
    """
    t = np.round(np.arange(0, horizon + 1e-9, RISK_SPACING), 10)
    save = np.union1d(t, snapshot_times)
    end = save[-1]
    limit = problems.jmm_bumps(delta=0, cells=cells)
    grid, x = limit.grid, limit.grid.axes[0]
    start = time.perf_counter()
    limit_run = solve(limit.energy, grid, limit.rho0, (0, end), save_at=save, scheme="rkl2", progress=progress)
    result = {"t": t, "x": x, "f": limit.energy.target_on(grid), "snapshot_times": list(snapshot_times),
              "limit": _risks(limit.energy, grid, limit_run, t), "deltas": list(deltas), "runs": {},
              "limit_seconds": time.perf_counter() - start, "n_neurons": n_neurons, "seeds": list(seeds)}
    for delta in deltas:
        problem = problems.jmm_bumps(delta=delta, cells=cells)
        energy = problem.energy
        start = time.perf_counter()
        pde = solve(energy, grid, problem.rho0, (0, end), save_at=save, scheme="rkl2", progress=progress)
        pde_seconds = time.perf_counter() - start
        step, batch = sgd_settings(energy)
        start, sgd_risks, estimates = time.perf_counter(), [], None
        for seed in seeds:
            rng = np.random.default_rng(seed)
            run = simulate(energy, problem.sample(rng, n_neurons), (0, end), step=step, method="sgd",
                           batch_size=batch, domain=problem.domain, save_at=save, rng=rng, progress=progress)
            keep = np.isin(save, t)
            sgd_risks.append([energy.risk(theta, run.weights) / energy.reference_risk for theta in run.theta[keep]])
            if estimates is None:
                estimates = {s: energy.predict(run.theta[list(save).index(s)], run.weights, x[:, None])
                             for s in snapshot_times}
        result["runs"][delta] = {
            "pde": _risks(energy, grid, pde, t), "sgd": np.mean(sgd_risks, axis=0), "sgd_runs": np.array(sgd_risks),
            "step": step, "batch": batch, "sgd_estimates": estimates,
            "pde_estimates": {s: energy.smooth(pde.rho[list(save).index(s)], grid) for s in snapshot_times},
            "pde_seconds": pde_seconds, "sgd_seconds": time.perf_counter() - start,
        }
    if out is not None:
        plot(result, out)
    return result


def _risks(energy, grid, solution, times):
    """Normalized risks F(ρ(t))/F(0) of a PDE solution at ``times``."""
    return np.array([energy.value(rho, grid) / energy.reference_risk
                     for s, rho in zip(solution.t, solution.rho) if s in times])


def plot(result, out):
    """Write ``jmm_figure1.png`` (per δ: estimates, then risks) and ``jmm_overlay.png``."""
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    deltas, t = result["deltas"], result["t"]
    colors = plt.cm.viridis(np.linspace(0, 0.85, len(result["snapshot_times"])))
    fig, axes = plt.subplots(len(deltas), 2, figsize=(10, 3.2 * len(deltas)), squeeze=False)
    for (left, right), delta in zip(axes, deltas):
        run = result["runs"][delta]
        left.plot(result["x"], result["f"], "k", lw=2, label="f")
        for color, s in zip(colors, result["snapshot_times"]):
            left.plot(result["x"], run["sgd_estimates"][s], color=color, label=f"SGD t={s:g}")
            left.plot(result["x"], run["pde_estimates"][s], "--", color=color, lw=1)
        left.set(title=f"δ = {delta:g}: f and f̂_t (dashed: fixed-δ PDE)", xlabel="x")
        left.legend(fontsize=7)
        right.semilogy(t, run["sgd"], label=f"SGD, N = {result['n_neurons']} ({len(result['seeds'])} seeds)")
        right.semilogy(t, run["pde"], "--", label="fixed-δ PDE")
        right.semilogy(t, result["limit"], "k", label="limit PDE (δ = 0)")
        right.set(title=f"δ = {delta:g}: normalized risk", xlabel="t", ylabel="∫(f − f̂)² / ∫f²")
        right.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "jmm_figure1.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(6, 4))
    for delta in deltas:
        line = ax.semilogy(t, result["runs"][delta]["sgd"], label=f"SGD δ = {delta:g}")[0]
        ax.semilogy(t, result["runs"][delta]["pde"], "--", color=line.get_color(), lw=1)
    ax.semilogy(t, result["limit"], "k", lw=2, label="limit PDE")
    ax.set(xlabel="t", ylabel="∫(f − f̂)² / ∫f²", title="SGD (solid), fixed-δ PDE (dashed), limit PDE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "jmm_overlay.png", dpi=110)
    plt.close(fig)
