"""Bump-network kernels: sums of the scaled bump K^δ(u) = δ^(−d) K(u/δ) over pairs of
points, with

    K(u) = exp(−1/(1 − |u|²)) / Z_d  for |u| < 1,  0 otherwise

(C^∞, supported on the unit ball, unit mass). The kernels take the unnormalized bump and a
``scale`` = 1/(Z_d δ^d); pairs farther apart than δ are skipped. Each has a NumPy
reference (``*_reference``) that it is tested against to 1e-12. Parallel over the output
points (``prange``); ``fastmath`` is off so results match the references to round-off.
"""

import math

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)
def bump_sum(x, centres, weights, delta, scale):
    """s_a = Σ_i w_i K^δ(x_a − c_i) for points x (n, d), centres (m, d), weights (m,)."""
    out = np.zeros(x.shape[0])
    for a in prange(x.shape[0]):
        total = 0.0
        for i in range(centres.shape[0]):
            s = 0.0
            for k in range(x.shape[1]):
                s += ((x[a, k] - centres[i, k]) / delta) ** 2
            if s < 1.0:
                total += weights[i] * math.exp(-1.0 / (1.0 - s))
        out[a] = scale * total
    return out


@njit(parallel=True, cache=True)
def bump_gradient_sum(x, coefficients, centres, delta, scale):
    """v_i = Σ_a c_a ∇_w K^δ(x_a − w)|_(w = c_i), shape (m, d).

    With u = (x_a − c_i)/δ: ∇_w K^δ(x_a − w) = −δ^(−1) (∇K^δ)(u) = scale · K₀(u) · 2u /
    (δ (1 − |u|²)²), K₀ the unnormalized bump.
    """
    d = x.shape[1]
    out = np.zeros(centres.shape)
    u = np.empty((centres.shape[0], d))
    for i in prange(centres.shape[0]):
        for a in range(x.shape[0]):
            s = 0.0
            for k in range(d):
                u[i, k] = (x[a, k] - centres[i, k]) / delta
                s += u[i, k] ** 2
            if s < 1.0:
                factor = coefficients[a] * scale * math.exp(-1.0 / (1.0 - s)) * 2.0 / (delta * (1.0 - s) ** 2)
                for k in range(d):
                    out[i, k] += factor * u[i, k]
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
