"""Two-layer network kernels: the prediction h_μ(x_i) = Σ_j w_j Φ(θ_j, x_i), the first
variation Σ_i c_i Φ(θ_j, x_i) and its gradient Σ_i c_i ∇θΦ(θ_j, x_i).

A feature Φ is described by a tuple ``spec = (kind, activation, output_weight, bias,
width)`` of scalars (see :class:`solver.energies.network.Feature`):

- kind NEURON: u = a·x̃ with x̃ = [x; 1] if ``bias`` else x, and Φ = c σ(u) with the
  output weight c = θ[-1] if ``output_weight`` (θ = (a, c)), else Φ = σ(u) (θ = a);
- kind RBF: θ = (c, z), Φ = c exp(−|x − z|² / (2 width²)).

:func:`feature_matrix` tabulates Φ[j, i] for grids, whose θ_j never move. Each kernel
has a NumPy reference (``*_reference``) built on the feature matrix
Φ[j, i] = Φ(θ_j, x_i), tested against it to 1e-12. ``fastmath`` is off: results must
match the reference to round-off.
"""

import math

import numpy as np
from numba import njit, prange
from scipy.special import expit

NEURON, RBF = 0, 1
RELU, SIGMOID, TANH = 0, 1, 2


@njit(cache=True, inline="always")
def _tanh(u):
    """tanh(u) = 1 − 2/(1 + e^(2u)): one ``exp``, about 4× faster than libm's ``tanh``
    in these loops. Its error is a few ulp of 1 in absolute terms (relative to tanh(u) it
    grows like 1e-16/|u| as u → 0), which the sums Σ_i c_i Φ(θ, x_i) do not see."""
    return 1.0 - 2.0 / (1.0 + math.exp(2.0 * u))


@njit(cache=True, inline="always")
def activation(code, u):
    """σ(u) for ReLU, sigmoid or tanh."""
    if code == RELU:
        return max(u, 0.0)
    if code == SIGMOID:
        return 1.0 / (1.0 + math.exp(-u))
    return _tanh(u)


@njit(cache=True, inline="always")
def activation_slope(code, u):
    """σ'(u) (the ReLU's is 1 for u > 0, else 0)."""
    if code == RELU:
        return 1.0 if u > 0.0 else 0.0
    if code == SIGMOID:
        s = 1.0 / (1.0 + math.exp(-u))
        return s * (1.0 - s)
    t = _tanh(u)
    return 1.0 - t * t


@njit(cache=True, inline="always")
def _pre_activation(spec, theta, j, X, i):
    u = 0.0
    for k in range(X.shape[1]):
        u += theta[j, k] * X[i, k]
    if spec[3]:
        u += theta[j, X.shape[1]]
    return u


@njit(cache=True, inline="always")
def _rbf_bump(spec, theta, j, X, i):
    r2 = 0.0
    for k in range(X.shape[1]):
        r2 += (X[i, k] - theta[j, 1 + k]) ** 2
    return math.exp(-r2 / (2.0 * spec[4] ** 2))


@njit(cache=True, inline="always")
def feature(spec, theta, j, X, i):
    """Φ(θ_j, x_i) (rows of ``theta`` and ``X`` by index: no per-pair array views)."""
    if spec[0] == RBF:
        return theta[j, 0] * _rbf_bump(spec, theta, j, X, i)
    value = activation(spec[1], _pre_activation(spec, theta, j, X, i))
    return theta[j, theta.shape[1] - 1] * value if spec[2] else value


@njit(cache=True, inline="always")
def add_feature_gradient(spec, theta, j, X, i, scale, out):
    """out[j] += scale · ∇θΦ(θ_j, x_i)."""
    p = X.shape[1]
    last = theta.shape[1] - 1
    if spec[0] == RBF:
        bump = _rbf_bump(spec, theta, j, X, i)
        out[j, 0] += scale * bump
        factor = scale * theta[j, 0] * bump / spec[4] ** 2
        for k in range(p):
            out[j, 1 + k] += factor * (X[i, k] - theta[j, 1 + k])
        return
    u = _pre_activation(spec, theta, j, X, i)
    slope = scale * activation_slope(spec[1], u)
    if spec[2]:
        slope *= theta[j, last]
        out[j, last] += scale * activation(spec[1], u)
    for k in range(p):
        out[j, k] += slope * X[i, k]
    if spec[3]:
        out[j, p] += slope


@njit(cache=True, parallel=True)
def predict(spec, theta, weights, X, out):
    """out[i] = Σ_j w_j Φ(θ_j, x_i), parallel over the data points i."""
    for i in prange(X.shape[0]):
        total = 0.0
        for j in range(theta.shape[0]):
            if weights[j] != 0.0:
                total += weights[j] * feature(spec, theta, j, X, i)
        out[i] = total


@njit(cache=True, parallel=True)
def first_variation(spec, theta, coef, X, out):
    """out[j] = Σ_i c_i Φ(θ_j, x_i), parallel over the parameters θ_j."""
    for j in prange(theta.shape[0]):
        total = 0.0
        for i in range(X.shape[0]):
            total += coef[i] * feature(spec, theta, j, X, i)
        out[j] = total


@njit(cache=True, parallel=True)
def gradient(spec, theta, coef, X, out):
    """out[j] = Σ_i c_i ∇θΦ(θ_j, x_i), parallel over the parameters θ_j."""
    for j in prange(theta.shape[0]):
        out[j, :] = 0.0
        for i in range(X.shape[0]):
            add_feature_gradient(spec, theta, j, X, i, coef[i], out)


@njit(cache=True, parallel=True)
def feature_matrix(spec, theta, X, out):
    """out[j, i] = Φ(θ_j, x_i), parallel over j."""
    for j in prange(theta.shape[0]):
        for i in range(X.shape[0]):
            out[j, i] = feature(spec, theta, j, X, i)


def feature_matrix_reference(spec, theta, X):
    """Φ[j, i] = Φ(θ_j, x_i) by NumPy broadcasting, shape (N, n)."""
    kind, code, output_weight, bias, width = spec
    p = X.shape[1]
    if kind == RBF:
        r2 = np.sum((X[None, :, :] - theta[:, None, 1:]) ** 2, axis=-1)
        return theta[:, :1] * np.exp(-r2 / (2 * width**2))
    u = theta[:, :p] @ X.T + (theta[:, p : p + 1] if bias else 0.0)
    sigma = {RELU: lambda v: np.maximum(v, 0.0), SIGMOID: expit, TANH: np.tanh}[code]
    return theta[:, -1:] * sigma(u) if output_weight else sigma(u)


def feature_gradient_reference(spec, theta, X):
    """∇θΦ(θ_j, x_i) by NumPy broadcasting, shape (N, n, D)."""
    kind, code, output_weight, bias, width = spec
    p = X.shape[1]
    if kind == RBF:
        diff = X[None, :, :] - theta[:, None, 1:]
        bump = np.exp(-np.sum(diff**2, axis=-1) / (2 * width**2))
        return np.concatenate([bump[..., None], theta[:, None, :1] * bump[..., None] * diff / width**2], axis=-1)
    u = theta[:, :p] @ X.T + (theta[:, p : p + 1] if bias else 0.0)
    slope = {RELU: lambda v: (v > 0).astype(float), SIGMOID: lambda v: expit(v) * expit(-v),
             TANH: lambda v: 1 - np.tanh(v) ** 2}[code](u)
    inputs = np.concatenate([X, np.ones((len(X), 1))], axis=1) if bias else X
    parts = [(theta[:, -1:] * slope if output_weight else slope)[..., None] * inputs[None, :, :]]
    if output_weight:
        parts.append(feature_matrix_reference((kind, code, False, bias, width), theta, X)[..., None])
    return np.concatenate(parts, axis=-1)


def predict_reference(spec, theta, weights, X):
    """NumPy version of :func:`predict`."""
    return weights @ feature_matrix_reference(spec, theta, X)


def first_variation_reference(spec, theta, coef, X):
    """NumPy version of :func:`first_variation`."""
    return feature_matrix_reference(spec, theta, X) @ coef


def gradient_reference(spec, theta, coef, X):
    """NumPy version of :func:`gradient`."""
    return np.einsum("jid,i->jd", feature_gradient_reference(spec, theta, X), coef)
