"""Two-layer network kernels: the prediction h_μ(x_i) = Σ_j w_j Φ(θ_j, x_i), the first
variation Σ_i c_i Φ(θ_j, x_i) and its gradient Σ_i c_i ∇θΦ(θ_j, x_i).

A feature Φ is described by a tuple ``spec = (kind, activation, output_weight, bias,
width)`` of scalars (see :class:`solver.energies.network.Feature`):

- kind NEURON: u = a·x̃ with x̃ = [x; 1] if ``bias`` else x, and Φ = c σ(u) with the
  output weight c = θ[-1] if ``output_weight`` (θ = (a, c)), else Φ = σ(u) (θ = a);
- kind RBF: θ = (c, z), Φ = c exp(−|x − z|² / (2 width²)).

:func:`feature_matrix` tabulates Φ[j, i] for grids, whose θ_j never move. Each kernel
has a NumPy reference (``*_reference``) built on the feature matrix
Φ[j, i] = Φ(θ_j, x_i), tested against it to 1e-12.

The pointwise kernels write Φ = c σ(u) (σ = exp for Gaussians, u their exponent) and
run on the exponentials of :mod:`solver.kernels.fastmath` (no libm call), which LLVM
vectorizes. :func:`predict`, :func:`first_variation` and :func:`feature_matrix` take θ
and the data as tuples of one contiguous array per coordinate (:func:`_factors`; the
bias is the weight of a column of ones), whose length is part of the Numba type: the
loop over coordinates in u = Σ_k a_k x̃_k unrolls, and one loop along the data (F') or
the neurons (h) computes u, σ and the weighted sum in vector registers, the output
weight c_j multiplying the sums once. Those sums are split into vector lanes and u and
the weighted sum use FMAs (``fastmath`` "reassoc" and "contract" in
:func:`_sum_of_features` only): they match the references to round-off.
:func:`gradient` holds a block of up to ``BLOCK`` neurons per task and loops over the
data in order, σ and σ' from one evaluation per pair, the sums in the order of a scalar
loop.

On a Cartesian grid of θ the features separate into per-axis tables
(:func:`separable_tables`), and :func:`separable_first_variation` and
:func:`separable_predict` evaluate F' and h from them with a few flops per (cell, data
point) and no exponential. Their sums are reordered (``fastmath`` "reassoc" and
"contract" only: NaN and inf still propagate) so that they vectorize.
"""

import numpy as np
from numba import njit, prange
from scipy.special import expit

from . import fastmath

NEURON, RBF = 0, 1
RELU, SIGMOID, TANH = 0, 1, 2
EXP = 3  # σ of Gaussian features, Φ = c e^u with u = −|x − z|²/(2s²)
BLOCK = 256  # neurons (or data points) a task holds in its vectors: a few 2 KiB rows in L1
TASKS = 8  # the fewest tasks a kernel splits its items into, when they are enough (load balance)
NUMPY_ERRORS = "numpy"  # x/0 gives inf or NaN, no exception branch to stop the vectorizer


@njit(cache=True, error_model=NUMPY_ERRORS)
def _block_size(count):
    """Items per task: at most ``BLOCK``, a multiple of 8 (whole vectors), and small enough
    to make ``TASKS`` tasks when ``count`` allows (the thread count is not known to a
    cached kernel)."""
    per_task = -(-count // TASKS)
    return max(8, min(BLOCK, -(-per_task // 8) * 8))


@njit(cache=True, inline="always", error_model=NUMPY_ERRORS)
def _linear(a, j, x, i):
    """u = Σ_k a_k[j] x_k[i] over the tuples ``a`` and ``x`` (their length is part of the
    type: the loop unrolls inside the vectorized loops that call this)."""
    u = a[0][j] * x[0][i]
    for k in range(1, len(a)):
        u += a[k][j] * x[k][i]
    return u


@njit(cache=True, inline="always", error_model=NUMPY_ERRORS)
def _gaussian_exponent(scale, z, j, x, i):
    """u = scale Σ_k (x_k[i] − z_k[j])², scale = −1/(2s²)."""
    r2 = (x[0][i] - z[0][j]) ** 2
    for k in range(1, len(z)):
        r2 += (x[k][i] - z[k][j]) ** 2
    return scale * r2


@njit(cache=True, fastmath={"reassoc", "contract"}, error_model=NUMPY_ERRORS)
def _sum_of_features(code, scale, fixed, f, varying, weights):
    """Σ_v weights[v] σ(u(fixed at f, varying at v)), u = a·x̃ (neurons; for tanh a is
    doubled, see :func:`_factors`) or the Gaussian exponent (code EXP): one loop that LLVM
    vectorizes along v, σ evaluated and summed in registers (``reassoc`` lets it split the
    sum into vector lanes, ``contract`` fuses u's products and the weighted sum into FMAs),
    the activation chosen outside it."""
    total = 0.0
    if code == RELU:
        for v in range(weights.shape[0]):
            total += weights[v] * max(_linear(fixed, f, varying, v), 0.0)
    elif code == SIGMOID:
        for v in range(weights.shape[0]):
            total += weights[v] * fastmath.sigmoid(_linear(fixed, f, varying, v))
    elif code == TANH:
        for v in range(weights.shape[0]):
            total += weights[v] * fastmath.tanh_half(_linear(fixed, f, varying, v))
    else:
        for v in range(weights.shape[0]):
            total += weights[v] * fastmath.exp(_gaussian_exponent(scale, fixed, f, varying, v))
    return total


@njit(cache=True, error_model=NUMPY_ERRORS)
def _accumulate_with_slope(code, u, weight, total, g):
    """total[l] += weight σ(u[l]) and g[l] = weight σ'(u[l]) over a block, from one
    evaluation of σ per element: σ' = σ(1 − σ) (sigmoid), 1 − σ² (tanh), σ (exp), 1 for
    u > 0 else 0 (ReLU)."""
    if code == RELU:
        for l in range(u.shape[0]):
            total[l] += weight * max(u[l], 0.0)
            g[l] = weight * (1.0 if u[l] > 0.0 else 0.0)  # a NaN or inf weight gives NaN where σ' = 0
    elif code == SIGMOID:
        for l in range(u.shape[0]):
            s = fastmath.sigmoid(u[l])
            total[l] += weight * s
            g[l] = weight * (s * (1.0 - s))
    elif code == TANH:
        for l in range(u.shape[0]):
            t = fastmath.tanh(u[l])
            total[l] += weight * t
            g[l] = weight * (1.0 - t * t)
    else:
        for l in range(u.shape[0]):
            e = fastmath.exp(u[l])
            total[l] += weight * e
            g[l] = weight * e


@njit(cache=True, error_model=NUMPY_ERRORS)
def _dot(rows, fixed, p, lo, u):
    """u[l] = Σ_(k<p) rows[k, lo + l] fixed[k]: a ⋅ x for a block of neurons (rows = θᵀ,
    fixed = x_i), summed in k order."""
    first = rows[0, lo : lo + u.shape[0]]
    for l in range(u.shape[0]):
        u[l] = first[l] * fixed[0]
    for k in range(1, p):
        row, f = rows[k, lo : lo + u.shape[0]], fixed[k]
        for l in range(u.shape[0]):
            u[l] += row[l] * f


@njit(cache=True, error_model=NUMPY_ERRORS)
def _gaussian_exponents(thetaT, x, p, width, lo, u):
    """u[l] = −Σ_(k<p) (x[k] − z_k[lo + l])² / (2 width²) = −|x − z|²/(2s²) for a block of
    Gaussian centres z (rows 1 to p of θᵀ)."""
    for l in range(u.shape[0]):
        u[l] = 0.0
    for k in range(p):
        row, f = thetaT[1 + k, lo : lo + u.shape[0]], x[k]
        for l in range(u.shape[0]):
            u[l] += (f - row[l]) ** 2
    for l in range(u.shape[0]):
        u[l] = -u[l] / (2.0 * width**2)


@njit(cache=True, error_model=NUMPY_ERRORS)
def _pre_activations_of_neurons(spec, thetaT, lo, x, u):
    """Φ(θ_(lo+l), x) = c σ(u[l]) for a block of parameters (θᵀ: one row per component):
    u = a·x̃ (neurons) or −|x − z|²/(2s²) (Gaussians, σ = exp)."""
    p = x.shape[0]
    if spec[0] == RBF:
        _gaussian_exponents(thetaT, x, p, spec[4], lo, u)
        return
    _dot(thetaT, x, p, lo, u)
    if spec[3]:
        bias = thetaT[p, lo : lo + u.shape[0]]
        for l in range(u.shape[0]):
            u[l] += bias[l]


@njit(cache=True, error_model=NUMPY_ERRORS)
def _activation_code(spec):
    """σ of Φ = c σ(u): the neuron's activation, or exp for Gaussians."""
    return EXP if spec[0] == RBF else spec[1]


@njit(cache=True, error_model=NUMPY_ERRORS)
def _output_row(spec, width):
    """The component of θ that is the output weight c (−1: none, c = 1)."""
    if spec[0] == RBF:
        return 0
    return width - 1 if spec[2] else -1


@njit(cache=True, parallel=True, error_model=NUMPY_ERRORS)
def _predict(code, scale, theta, weights, x, out):
    """out[i] = Σ_j weights[j] σ(u(θ_j, x_i)), parallel over data points."""
    for i in prange(out.shape[0]):
        out[i] = _sum_of_features(code, scale, x, i, theta, weights)


@njit(cache=True, parallel=True, error_model=NUMPY_ERRORS)
def _first_variation(code, scale, theta, coef, x, out):
    """out[j] = Σ_i coef[i] σ(u(θ_j, x_i)), parallel over parameters."""
    for j in prange(out.shape[0]):
        out[j] = _sum_of_features(code, scale, theta, j, x, coef)


@njit(cache=True, parallel=True, error_model=NUMPY_ERRORS)
def _feature_matrix(code, scale, theta, x, out):
    """out[j, i] = σ(u(θ_j, x_i)), parallel over j, vectorized along the data."""
    for j in prange(out.shape[0]):
        row = out[j]
        if code == RELU:
            for i in range(row.shape[0]):
                row[i] = max(_linear(theta, j, x, i), 0.0)
        elif code == SIGMOID:
            for i in range(row.shape[0]):
                row[i] = fastmath.sigmoid(_linear(theta, j, x, i))
        elif code == TANH:
            for i in range(row.shape[0]):
                row[i] = fastmath.tanh_half(_linear(theta, j, x, i))
        else:
            for i in range(row.shape[0]):
                row[i] = fastmath.exp(_gaussian_exponent(scale, theta, j, x, i))


def _columns(A, first, count):
    """Columns ``first`` to ``first + count − 1`` of A as a tuple of contiguous arrays."""
    return tuple(np.ascontiguousarray(A[:, first + k], dtype=float) for k in range(count))


def _factors(spec, theta, X):
    """Φ(θ_j, x_i) = c_j σ(u(θ_j, x_i)) in the kernels' terms: (activation code, scale,
    θ's part in u, the data's part in u, c or None).

    Neurons: u = Σ_k a_k x̃_k, the tuples (a_k) and (x̃_k) with x̃ = [x; 1] (the bias a
    weight of a column of ones); Gaussians: u = scale Σ_k (x_k − z_k)², scale = −1/(2s²),
    code EXP. Each part is a tuple of one contiguous array per coordinate (θ's over the
    parameters, the data's over the points), which the kernels' inner loops unroll over.
    For tanh θ's part is doubled: the kernels evaluate tanh u = tanh_half(2u)
    (:func:`solver.kernels.fastmath.tanh_half`) on (2a)·x̃, which is 2(a·x̃) exactly."""
    kind, code, output_weight, bias, width = spec
    p = X.shape[1]
    if kind == RBF:
        return EXP, -0.5 / width**2, _columns(theta, 1, p), _columns(X, 0, p), theta[:, 0]
    x = _columns(X, 0, p) + ((np.ones(len(X)),) if bias else ())
    a = _columns(2.0 * theta if code == TANH else theta, 0, p + bias)
    return code, 1.0, a, x, (theta[:, -1] if output_weight else None)


def predict(spec, theta, weights, X, out):
    """out[i] = Σ_j w_j c_j σ(u(θ_j, x_i)) = Σ_j w_j Φ(θ_j, x_i): parallel over data points,
    the sum over neurons vectorized (:func:`_sum_of_features`)."""
    code, scale, a, x, c = _factors(spec, theta, X)
    _predict(code, scale, a, np.ascontiguousarray(weights if c is None else weights * c, dtype=float), x, out)


def first_variation(spec, theta, coef, X, out):
    """out[j] = c_j Σ_i coef_i σ(u(θ_j, x_i)) = Σ_i coef_i Φ(θ_j, x_i): parallel over
    parameters, the sum over data vectorized (:func:`_sum_of_features`)."""
    code, scale, a, x, c = _factors(spec, theta, X)
    _first_variation(code, scale, a, np.ascontiguousarray(coef, dtype=float), x, out)
    if c is not None:
        out *= c


@njit(cache=True, parallel=True, error_model=NUMPY_ERRORS)
def gradient(spec, theta, coef, X, out):
    """out[j] = Σ_i coef_i ∇θΦ(θ_j, x_i), parallel over blocks of parameters θ_j,
    vectorized along the block; σ and σ' come from one evaluation per pair (fused forward
    and backward), and c_j multiplies the sums once at the end. Neurons Φ = c σ(u),
    u = a·x̃: ∂Φ/∂c = σ(u), ∇_aΦ = c σ'(u) x̃; Gaussians Φ = c e^u, u = −|x − z|²/(2s²):
    ∂Φ/∂c = e^u, ∇_zΦ = c e^u (x − z)/s²."""
    m, p, width = theta.shape[0], X.shape[1], theta.shape[1]
    thetaT = np.ascontiguousarray(theta.T)
    code, output = _activation_code(spec), _output_row(spec, width)
    rbf, bias = spec[0] == RBF, spec[3] and spec[0] != RBF
    first = 1 if rbf else 0  # the row of G where ∇_a (∇_z) starts
    block = _block_size(m)
    for b in prange(-(-m // block)):
        lo = b * block
        nb = min(block, m - lo)
        u, g = np.empty(nb), np.empty(nb)
        G = np.zeros((width + 1, nb))  # row `width`: Σ_i coef_i σ(u) when c is fixed (then unused)
        value = G[output] if output >= 0 else G[width]
        for i in range(X.shape[0]):
            x = X[i]
            _pre_activations_of_neurons(spec, thetaT, lo, x, u)
            _accumulate_with_slope(code, u, coef[i], value, g)
            for k in range(p):
                row, xk = G[first + k], x[k]
                if rbf:
                    z = thetaT[1 + k, lo : lo + nb]
                    for l in range(nb):
                        row[l] += g[l] * (xk - z[l])
                else:
                    for l in range(nb):
                        row[l] += g[l] * xk
            if bias:
                for l in range(nb):
                    G[p, l] += g[l]
        if output >= 0:
            c = thetaT[output, lo : lo + nb]
            scale = 1.0 / spec[4] ** 2 if rbf else 1.0
            for k in range(width):
                if k != output:
                    for l in range(nb):
                        G[k, l] *= c[l] * scale
        out[lo : lo + nb, :] = G[:width].T


def feature_matrix(spec, theta, X, out):
    """out[j, i] = Φ(θ_j, x_i), parallel over j, vectorized along the data."""
    code, scale, a, x, c = _factors(spec, theta, X)
    _feature_matrix(code, scale, a, x, out)
    if c is not None:
        out *= c[:, None]


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
