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

On a Cartesian grid of θ the features separate into per-axis tables
(:func:`separable_tables`), and :func:`separable_first_variation` and
:func:`separable_predict` evaluate F' and h from them with a few flops per (cell, data
point) and no exponential. Their sums are reordered (``fastmath`` "reassoc" and
"contract" only: NaN and inf still propagate) so that they vectorize.
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


# Cartesian grids of θ ----------------------------------------------------------------
# How per-axis tables t_k combine into Φ/c at a (cell, data point) pair: with the ReLU
# the tables add up to the pre-activation u; otherwise they multiply, to e^(−u)
# (sigmoid), e^(2u) (tanh) or the Gaussian bump itself.
RELU_SUM, SIGMOID_PRODUCT, TANH_PRODUCT, BUMP_PRODUCT = 0, 1, 2, 3
EXPONENT_LIMIT = 700.0  # products of exponentials stay finite and nonzero below e^±700
REORDER = {"reassoc", "contract"}
CHUNK = 512  # data points per pass of separable_first_variation: 512 × 8 bytes per table row


@njit(cache=True, inline="always", fastmath=REORDER)
def _separable(form, a, b, c):
    """Φ/c at one pair from its three table entries."""
    if form == RELU_SUM:
        return max(a + b + c, 0.0)
    product = a * b * c
    if form == SIGMOID_PRODUCT:
        return 1.0 / (1.0 + product)
    if form == TANH_PRODUCT:
        return 1.0 - 2.0 / (1.0 + product)
    return product


@njit(cache=True, parallel=True, fastmath=REORDER)
def separable_first_variation(form, T0, T1, T2, coef, out):
    """out[l0, l1, l2] = Σ_i c_i g(T0[l0, i], T1[l1, i], T2[l2, i]) (``out`` flat, C order;
    tables T_k of shape (n_k, n)), parallel over (l0, l1). The data points go in chunks
    of ``CHUNK`` so that T2's chunk stays in cache while every task reads it."""
    n1, n2, n = T1.shape[0], T2.shape[0], coef.shape[0]
    out[:] = 0.0
    for lo in range(0, n, CHUNK):
        hi = min(n, lo + CHUNK)
        for task in prange(T0.shape[0] * n1):
            l0 = task // n1
            a, b, c = T0[l0, lo:hi], T1[task - l0 * n1, lo:hi], coef[lo:hi]
            for l2 in range(n2):
                row = T2[l2, lo:hi]
                total = 0.0
                for i in range(hi - lo):
                    total += c[i] * _separable(form, a[i], b[i], row[i])
                out[task * n2 + l2] += total


@njit(cache=True, parallel=True, fastmath=REORDER)
def separable_predict(form, U0, U1, U2, weights, out):
    """out[i] = Σ_(l0,l1,l2) w[l0, l1, l2] g(U0[i, l0], U1[i, l1], U2[i, l2]), parallel
    over data points; U_k = T_kᵀ, shape (n, n_k); ``weights`` has shape (n0, n1, n2)."""
    for i in prange(out.shape[0]):
        c = U2[i]
        total = 0.0
        for l0 in range(U0.shape[1]):
            for l1 in range(U1.shape[1]):
                a, b, row = U0[i, l0], U1[i, l1], weights[l0, l1]
                for l2 in range(c.shape[0]):
                    total += row[l2] * _separable(form, a, b, c[l2])
        out[i] = total


def separable_tables(spec, axes, X):
    """Per-axis tables in which Φ on the Cartesian grid ``axes`` of θ separates.

    Parameters
    ----------
    spec : tuple
        The feature (see the module docstring).
    axes : sequence of arrays
        The grid's coordinates along each component of θ.
    X : array (n, input_dim)
        The data points.

    Returns
    -------
    (form, tables, output_axis) or None
        Φ(θ, x_i) = c · g(t_1[l_1, i], …) at the cell (l_1, …), with g given by ``form``
        and the tables over the components of θ other than the output weight c:

        - neuron, u = Σ_k a_k x_k (+ b): t_k[l, i] = a_k[l] x_ik and t_b[l, i] = b[l],
          Φ/c = max(Σ t, 0) (ReLU); t_k = e^(−a_k[l] x_ik), t_b = e^(−b[l]),
          Φ/c = 1/(1 + Π t) (sigmoid); t_k = e^(2 a_k[l] x_ik), t_b = e^(2 b[l]),
          Φ/c = 1 − 2/(1 + Π t) (tanh);
        - Gaussian, θ = (c, z): t_k[l, i] = e^(−(x_ik − z_k[l])²/(2 s²)), Φ/c = Π t.

        ``output_axis`` is the component of θ that is c (None for fixed-output units).
        None when the exponents could reach ±``EXPONENT_LIMIT`` (the product could
        overflow): use the pointwise kernels then.
    """
    kind, code, output_weight, bias, width = spec
    axes = [np.asarray(axis, dtype=float) for axis in axes]
    p = X.shape[1]
    if kind == RBF:
        tables = [np.exp(-((X[None, :, k] - axes[1 + k][:, None]) ** 2) / (2 * width**2)) for k in range(p)]
        return BUMP_PRODUCT, tables, 0
    parts = [axes[k][:, None] * X[None, :, k] for k in range(p)]  # of the pre-activation u = Σ parts
    if bias:
        parts.append(np.repeat(axes[p][:, None], len(X), axis=1))
    output_axis = p + int(bias) if output_weight else None
    if code == RELU:
        return RELU_SUM, parts, output_axis
    form, scale = (SIGMOID_PRODUCT, -1.0) if code == SIGMOID else (TANH_PRODUCT, 2.0)
    exponents = [scale * part for part in parts]
    if sum(np.abs(e).max(initial=0.0) for e in exponents) >= EXPONENT_LIMIT:
        return None
    return form, [np.exp(e) for e in exponents], output_axis


def separable_matrix_reference(form, T0, T1, T2):
    """g of every (cell, data point) pair by NumPy broadcasting, shape (n0 n1 n2, n)."""
    if form == RELU_SUM:
        return np.maximum(T0[:, None, None] + T1[None, :, None] + T2[None, None, :], 0.0).reshape(-1, T0.shape[1])
    product = (T0[:, None, None] * T1[None, :, None] * T2[None, None, :]).reshape(-1, T0.shape[1])
    return {SIGMOID_PRODUCT: 1 / (1 + product), TANH_PRODUCT: 1 - 2 / (1 + product), BUMP_PRODUCT: product}[form]
