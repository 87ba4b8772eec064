"""PDE against particles: Wasserstein distances between a grid density and a particle
measure (computed with POT), and the rate of convergence in m.

A grid density is the measure Σ_cells ρ_c |cell| δ_(x_c) (or, with ``refine=k``, each
cell split into k^d sub-points of equal mass, which lowers the quantization floor: a
uniform cell against its centre is at W2² = Σ_axes h²/12, against k^d sub-points at
Σ h²/(12k²)). Both measures are normalized to probability measures.
"""

import numpy as np
import ot


def grid_measure(grid, rho, refine=1):
    """(points (N, d), weights (N,)) of the cells with mass, weights summing to 1."""
    rho = grid.check_density(rho, "rho")
    mass = rho.ravel() * grid.cell_volume
    keep = mass > 0
    points, weights = grid.points.reshape(-1, grid.dim)[keep], mass[keep] / mass.sum()
    if refine > 1:
        offsets = (np.arange(refine) + 0.5) / refine - 0.5
        sub = np.stack(np.meshgrid(*[offsets * h for h in grid.h], indexing="ij"), axis=-1).reshape(-1, grid.dim)
        points = (points[:, None, :] + sub[None, :, :]).reshape(-1, grid.dim)
        weights = np.repeat(weights / len(sub), len(sub))
    return points, weights


def coarsen(grid, rho, factor):
    """Merge blocks of factor^d cells: (centres of mass (N, d), masses (N,) summing to 1)."""
    rho = grid.check_density(rho, "rho")
    mass = rho * grid.cell_volume
    blocks = tuple(-(-n // factor) for n in grid.shape)
    index = np.ravel_multi_index(np.meshgrid(*[np.arange(n) // factor for n in grid.shape], indexing="ij"), blocks)
    total = np.bincount(index.ravel(), mass.ravel(), minlength=np.prod(blocks))
    moments = np.stack([np.bincount(index.ravel(), (mass * grid.points[..., k]).ravel(), minlength=len(total))
                        for k in range(grid.dim)], axis=-1)
    keep = total > 0
    return moments[keep] / total[keep, None], total[keep] / total.sum()


def _particles(theta, weights, dim):
    theta = np.asarray(theta, dtype=float)
    if theta.ndim != 2 or theta.shape[1] != dim or len(theta) == 0 or not np.all(np.isfinite(theta)):
        raise ValueError(f"theta must be a finite (m, {dim}) array of particles, got shape {theta.shape}")
    weights = np.full(len(theta), 1 / len(theta)) if weights is None else np.asarray(weights, dtype=float)
    if weights.shape != (len(theta),) or np.any(weights < 0) or not weights.sum() > 0:
        raise ValueError(f"weights must be {len(theta)} non-negative numbers with a positive sum")
    return theta, weights / weights.sum()


def wasserstein(grid, rho, theta, weights=None, p=2, method="exact", max_points=4000, n_projections=200,
                refine=1, seed=0):
    """W_p (p = 1 or 2) between the grid density ``rho`` and the particles ``theta``.

    1D: exact (``ot.wasserstein_1d``). 2D/3D: ``method="exact"`` solves the transport
    problem (``ot.emd2``); grids with more than ``max_points`` cells with mass are first
    coarsened by the smallest factor that fits (an error of up to about the block size).
    ``method="sliced"`` averages W_p^p over ``n_projections`` random directions (exact in
    each, seeded), then takes the p-th root: the fast option for large grids and m.
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    if method not in ("exact", "sliced"):
        raise ValueError(f"method must be 'exact' or 'sliced', got {method!r}")
    theta, weights = _particles(theta, weights, grid.dim)
    points, masses = grid_measure(grid, rho, refine)
    if grid.dim == 1:
        return float(ot.wasserstein_1d(points[:, 0], theta[:, 0], masses, weights, p=p) ** (1 / p))
    if method == "sliced":
        directions = np.random.default_rng(seed).standard_normal((n_projections, grid.dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        powers = [ot.wasserstein_1d(points @ u, theta @ u, masses, weights, p=p) for u in directions]
        return float(np.mean(powers) ** (1 / p))
    factor = 1
    while len(points) > max_points:
        factor += 1
        points, masses = coarsen(grid, rho, factor)
    cost = ot.dist(points, theta, metric="sqeuclidean" if p == 2 else "euclidean")
    value, log = ot.emd2(masses, weights, cost, numItermax=10_000_000, log=True)
    if log["warning"] is not None:
        raise RuntimeError(f"wasserstein: the transport solver did not converge ({log['warning']})")
    return float(max(value, 0.0) ** (1 / p))


def fit_slope(ms, distances):
    """Slope of log(distance) against log(m): the observed rate of convergence in m."""
    return float(np.polyfit(np.log(ms), np.log(distances), 1)[0])


def energy_of_particles(energy, theta, weights):
    """F(μ_m) of a network risk: the risk of the m-neuron network plus the weight decay
    (the studies below are for network problems)."""
    return energy.risk(theta, weights) + energy.weight_decay * weights @ np.sum(theta**2, axis=1)


def study(problem, ms, times, seeds, step, out=None, method="sliced", **solve_options):
    """The PDE against gradient descent on m particles, over ``ms``, ``times`` and ``seeds``.

    Solves the PDE once (``solve_options`` go to :func:`solver.solve`), runs GD with step
    ``step`` from i.i.d. samples of the initial density for every (m, seed), and measures
    at each time W2 and W1 (``method``: "sliced" or "exact"; W1 exact only if asked) and
    the energy gap |F(μ_m(t)) − F(ρ(t))|. Returns a dict with ``rows`` (one per m, seed,
    time), ``pde_energy`` and ``slopes`` (fitted slope of the seed-averaged W2 against m
    at each time). With ``out``, writes ``study.csv``, ``study.md`` and three figures.
    """
    from .fv import solve
    from .particles import simulate

    times = np.asarray(times, dtype=float)
    grid = problem.grid
    pde = solve(problem.energy, grid, problem.rho0, (times[0], times[-1]), save_at=times, **solve_options)
    pde_energy = np.array([problem.energy.value(rho, grid) for rho in pde.rho])
    rows, last_runs = [], {}
    for m in ms:
        for seed in seeds:
            run = simulate(problem.energy, problem.sample(np.random.default_rng(seed), m), (times[0], times[-1]),
                           step=step, save_at=times)
            last_runs[m] = run
            for k, (t, theta) in enumerate(zip(times, run.theta)):
                rows.append({"m": m, "seed": seed, "t": t,
                             "w2": wasserstein(grid, pde.rho[k], theta, method=method, refine=2),
                             "w1": wasserstein(grid, pde.rho[k], theta, p=1, method=method, refine=2),
                             "energy_gap": abs(energy_of_particles(problem.energy, theta, run.weights) - pde_energy[k]),
                             "particle_energy": energy_of_particles(problem.energy, theta, run.weights),
                             "pde_energy": pde_energy[k]})
    mean_w2 = {(m, t): np.mean([r["w2"] for r in rows if r["m"] == m and r["t"] == t]) for m in ms for t in times}
    slopes = {float(t): fit_slope(ms, [mean_w2[m, t] for m in ms]) for t in times} if len(ms) > 1 else {}
    result = {"rows": rows, "pde_energy": pde_energy, "slopes": slopes, "times": times, "ms": list(ms)}
    if out is not None:
        _write_study(problem, pde, result, mean_w2, last_runs, out)
    return result


def _write_study(problem, pde, result, mean_w2, last_runs, out):
    """study.csv, study.md, distance_vs_m.png, energy_vs_t.png, density_particles.png."""
    import csv
    from pathlib import Path

    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows, times, ms = result["rows"], result["times"], result["ms"]
    with open(out / "study.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [f"# {problem.name}: PDE against {len(rows) // len(times) // len(ms)} seed(s) of GD per m", "",
             "Mean W2 over seeds (sliced unless stated):", "",
             "| m | " + " | ".join(f"t = {t:g}" for t in times) + " |", "|---" * (len(times) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(f"{mean_w2[m, t]:.3e}" for t in times) + " |" for m in ms]
    if result["slopes"]:
        lines += ["", "Fitted slope of log W2 against log m: "
                  + ", ".join(f"t = {t:g}: {s:.2f}" for t, s in result["slopes"].items())]
    (out / "study.md").write_text("\n".join(lines) + "\n")

    fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    ax.loglog(ms, [mean_w2[m, times[-1]] for m in ms], "o-", label=f"W2 at t = {times[-1]:g}")
    ax.loglog(ms, mean_w2[ms[0], times[-1]] * (np.asarray(ms) / ms[0]) ** -0.5, "k--", label="m^(-1/2)")
    ax.set(xlabel="particles m", ylabel="W2(PDE, particles)", title=problem.name)
    ax.legend()
    fig.savefig(out / "distance_vs_m.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    ax.plot(times, result["pde_energy"], "k-", lw=2, label="PDE")
    for m in ms:
        ax.plot(times, [np.mean([r["particle_energy"] for r in rows if r["m"] == m and r["t"] == t]) for t in times],
                "o--", label=f"GD, m = {m}")
    ax.set(xlabel="t", ylabel="F (risk)", yscale="log", title=problem.name)
    ax.legend()
    fig.savefig(out / "energy_vs_t.png", dpi=110)
    plt.close(fig)

    grid, rho = problem.grid, pde.rho[-1]
    theta = last_runs[ms[-1]].theta[-1]
    fig, ax = plt.subplots(figsize=(4.6, 4), constrained_layout=True)
    if grid.dim == 1:
        ax.plot(grid.axes[0], rho, "k-", label="PDE")
        ax.hist(theta[:, 0], bins=grid.shape[0], range=tuple(grid.bounds[0]), density=True, alpha=0.5, label="particles")
        ax.legend()
    else:  # the first two coordinates (3D densities summed over the third)
        shown = rho if grid.dim == 2 else rho.sum(axis=2)
        ax.imshow(shown.T, origin="lower", extent=grid.bounds[:2].ravel(), cmap="Greys", aspect="auto")
        ax.plot(theta[:, 0], theta[:, 1], ".", ms=1.5, color="tab:red", alpha=0.5)
    ax.set(xlabel="θ₁", ylabel="θ₂", title=f"t = {times[-1]:g}: PDE density, {ms[-1]} particles")
    fig.savefig(out / "density_particles.png", dpi=110)
    plt.close(fig)
