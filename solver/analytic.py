"""Exact solutions of displacement-convex flows (see the tests and benchmarks).

The densities take points ``x`` of shape (..., d) and return values of shape (...);
:func:`barenblatt_mass` is a number and :func:`ornstein_uhlenbeck` the Gaussian's mean and
covariance at t.
"""

import numpy as np
from scipy.linalg import expm
from scipy.optimize import brentq
from scipy.special import gamma


def barenblatt(x, t, m=2.0, C=0.1):
    """Barenblatt solution of ∂tρ = Δ(ρ^m) in R^d (d = x.shape[-1]), F = ∫ρ^m/(m−1):

        ρ(x, t) = t^(−α) (C − k |x|² t^(−2α/d))₊^(1/(m−1)),
        α = d / (d(m−1) + 2),  k = α(m−1) / (2 m d).

    Substituting shows ∂tρ = Δρ^m inside the support; the free boundary moves with
    the pressure gradient (Vázquez, *The Porous Medium Equation*, §4.4).
    """
    x = np.asarray(x, dtype=float)
    d = x.shape[-1]
    alpha = d / (d * (m - 1) + 2)
    k = alpha * (m - 1) / (2 * m * d)
    r2 = np.sum(x**2, axis=-1)
    return t ** (-alpha) * np.maximum(C - k * r2 * t ** (-2 * alpha / d), 0.0) ** (1 / (m - 1))


def barenblatt_mass(d, m=2.0, C=0.1):
    """∫ barenblatt dx = C^(1/(m−1)+d/2) k^(−d/2) π^(d/2) Γ(m/(m−1)) / Γ(m/(m−1) + d/2)."""
    alpha = d / (d * (m - 1) + 2)
    k = alpha * (m - 1) / (2 * m * d)
    p = m / (m - 1)
    return C ** (1 / (m - 1) + d / 2) * k ** (-d / 2) * np.pi ** (d / 2) * gamma(p) / gamma(p + d / 2)


def gaussian(x, mean, cov):
    """The density of N(mean, cov) at ``x``."""
    x = np.asarray(x, dtype=float)
    mean = np.atleast_1d(np.asarray(mean, dtype=float))
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    z = x - mean
    quad = np.einsum("...i,ij,...j->...", z, np.linalg.inv(cov), z)
    return np.exp(-0.5 * quad) / np.sqrt((2 * np.pi) ** len(mean) * np.linalg.det(cov))


def ornstein_uhlenbeck(t, A, b, tau, mean0, cov0):
    """Mean and covariance at time t of the Fokker–Planck flow of F = ∫Vρ + τ∫ρ log ρ,
    V(x) = ½ (x−b)ᵀA(x−b), from N(mean0, cov0): the SDE dX = −A(X−b)dt + √(2τ) dB gives

        mean(t) = b + e^(−At)(mean0 − b),
        Σ(t) = e^(−At) Σ0 e^(−At) + τ A⁻¹ (I − e^(−2At))   (A symmetric).
    """
    A = np.atleast_2d(np.asarray(A, dtype=float))
    decay = expm(-A * t)
    mean = b + decay @ (np.asarray(mean0, dtype=float) - b)
    cov = decay @ np.asarray(cov0, dtype=float) @ decay + tau * np.linalg.solve(
        A, np.eye(len(A)) - expm(-2 * A * t)
    )
    return mean, cov


def confined_steady_state(x, m, mass, weights=None):
    """Steady state of F = ∫ρ^m/(m−1) + ∫ρ|x|²/2 with the given mass:

        ρ∞(x) = ((m−1)/m · (C − |x|²/2))₊^(1/(m−1)),

    (F'(ρ∞) + |x|²/2 = C on the support). With p = 1/(m−1), a = (m−1)/m,
    ∫ (C − |x|²/2)₊^p dx = (2πC)^(d/2) C^p Γ(p+1)/Γ(p+1+d/2), which fixes C.

    With quadrature ``weights`` (e.g. ``grid.weights`` and ``x = grid.points``), C is
    chosen instead so that Σ w ρ∞ = mass: this is then the exact steady state of the
    upwind scheme, whose face velocities −Δ(F' + V)/h vanish on the support and point
    into it from outside.
    """
    x = np.asarray(x, dtype=float)
    d = x.shape[-1]
    p, a = 1 / (m - 1), (m - 1) / m

    def profile(C):
        return (a * np.maximum(C - 0.5 * np.sum(x**2, axis=-1), 0.0)) ** p

    if weights is None:
        unit = a**p * (2 * np.pi) ** (d / 2) * gamma(p + 1) / gamma(p + 1 + d / 2)
        return profile((mass / unit) ** (1 / (p + d / 2)))
    C = brentq(lambda C: np.sum(weights * profile(C)) - mass, 0.0, 1.0 + 0.5 * np.sum(x**2, axis=-1).max()
               + (mass / np.sum(weights)) ** (m - 1) / a, xtol=1e-15, rtol=4 * np.finfo(float).eps)
    return profile(C)
