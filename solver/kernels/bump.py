"""Bump-network kernels: sums of the scaled bump K^δ(u) = δ^(−d) K(u/δ) over pairs of
points, with

    K(u) = exp(−1/(1 − |u|²)) / Z_d  for |u| < 1,  0 otherwise

(C^∞, supported on the unit ball, unit mass). The kernels take the unnormalized bump and a
``scale`` = 1/(Z_d δ^d); pairs farther apart than δ are skipped. Each has a NumPy
reference (``*_reference``) that it is tested against to 1e-12. Parallel over blocks of
output points (``prange``), vectorized along a block with the exponential of
:mod:`solver.kernels.fastmath`; the sums run in the order of the scalar loops (pairs
outside the support add 0) and ``fastmath`` is off, so results match the references to
round-off.
"""

import numpy as np
from numba import njit, prange

from . import fastmath

BLOCK = 128  # points (or centres) a task holds in its vectors


@njit(cache=True, error_model="numpy")
def _offsets(rows, fixed, lo, delta, U, s):
    """U[k, l] = (fixed[k] − rows[k, lo + l])/δ and s[l] = Σ_k U[k, l]² for a block (rows:
    one per coordinate); True when some s[l] < 1 (the block meets the bump's support)."""
    nb = s.shape[0]
    for l in range(nb):
        s[l] = 0.0
    for k in range(rows.shape[0]):
        row, f = rows[k, lo : lo + nb], fixed[k]
        for l in range(nb):
            U[k, l] = (f - row[l]) / delta
            s[l] += U[k, l] ** 2
    inside = False
    for l in range(nb):
        inside |= s[l] < 1.0
    return inside


@njit(cache=True, error_model="numpy")
def _bump(s):
    """exp(−1/(1 − s)) for s < 1, else 0: the unnormalized bump at |u|² = s, branch-free
    (the exponential is computed and discarded outside the support)."""
    value = fastmath.exp(-1.0 / (1.0 - s))
    return value if s < 1.0 else 0.0


@njit(parallel=True, cache=True, error_model="numpy")
def bump_sum(x, centres, weights, delta, scale):
    """s_a = Σ_i w_i K^δ(x_a − c_i) for points x (n, d), centres (m, d), weights (m,);
    parallel over blocks of points, vectorized along the block; a centre whose support
    misses the whole block is skipped."""
    n = x.shape[0]
    xT = np.ascontiguousarray(x.T)
    out = np.zeros(n)
    for b in prange(-(-n // BLOCK)):
        lo = b * BLOCK
        nb = min(BLOCK, n - lo)
        U, s, total = np.empty((x.shape[1], nb)), np.empty(nb), np.zeros(nb)
        for i in range(centres.shape[0]):
            if _offsets(xT, centres[i], lo, delta, U, s):
                w = weights[i]
                for l in range(nb):
                    total[l] += w * _bump(s[l])
        for l in range(nb):
            out[lo + l] = scale * total[l]
    return out


@njit(parallel=True, cache=True, error_model="numpy")
def bump_gradient_sum(x, coefficients, centres, delta, scale):
    """v_i = Σ_a c_a ∇_w K^δ(x_a − w)|_(w = c_i), shape (m, d); parallel over blocks of
    centres, vectorized along the block.

    With u = (x_a − c_i)/δ: ∇_w K^δ(x_a − w) = −δ^(−1) (∇K^δ)(u) = scale · K₀(u) · 2u /
    (δ (1 − |u|²)²), K₀ the unnormalized bump.
    """
    d, m = x.shape[1], centres.shape[0]
    cT = np.ascontiguousarray(centres.T)
    out = np.zeros(centres.shape)
    for b in prange(-(-m // BLOCK)):
        lo = b * BLOCK
        nb = min(BLOCK, m - lo)
        U, s, factor, G = np.empty((d, nb)), np.empty(nb), np.empty(nb), np.zeros((d, nb))
        for a in range(x.shape[0]):
            if not _offsets(cT, x[a], lo, delta, U, s):
                continue
            c = coefficients[a]
            for l in range(nb):
                value = c * scale * fastmath.exp(-1.0 / (1.0 - s[l])) * 2.0 / (delta * (1.0 - s[l]) ** 2)
                factor[l] = value if s[l] < 1.0 else 0.0  # not 0/0 at s = 1
            for k in range(d):
                for l in range(nb):
                    G[k, l] += factor[l] * U[k, l]
        out[lo : lo + nb, :] = G.T
    return out


def unnormalized_bump(u):
    """K₀(u) = exp(−1/(1 − |u|²)) inside the unit ball, 0 outside; u of shape (..., d)."""
    s = np.sum(np.asarray(u, dtype=float) ** 2, axis=-1)
    inside = s < 1
    return np.where(inside, np.exp(-1 / np.where(inside, 1 - s, 1.0)), 0.0)


def bump_sum_reference(x, centres, weights, delta, scale):
    """NumPy reference of :func:`bump_sum` (all pairs at once)."""
    return scale * unnormalized_bump((x[:, None, :] - centres[None, :, :]) / delta) @ weights


def bump_gradient_sum_reference(x, coefficients, centres, delta, scale):
    """NumPy reference of :func:`bump_gradient_sum` (all pairs at once)."""
    u = (x[:, None, :] - centres[None, :, :]) / delta
    s = np.sum(u**2, axis=-1)
    factor = scale * unnormalized_bump(u) * 2 / (delta * np.where(s < 1, 1 - s, 1.0) ** 2)
    return np.einsum("a,ai,aik->ik", coefficients, factor, u)
