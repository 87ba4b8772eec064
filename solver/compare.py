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
