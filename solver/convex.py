"""Convex references for 2-homogeneous networks: the problem on fixed directions.

On K fixed directions s_k of the sphere, with features A_ik = Φ(s_k, x_i) (for ReLU units
A_ik = (s_k·x̃_i)₊, see :func:`solver.lift.relu_features`), a signed measure
ν = Σ_k (c+_k − c−_k) δ_(s_k) with masses c± ≥ 0 predicts h = A(c+ − c−), and

    min over c+, c− ≥ 0 of  J(c) = R(A(c+ − c−)) + λ' Σ_k (c+_k + c−_k),
    R(h) = ½ Σ_i q_i (h_i − y_i)²,                                            (1)

is convex. The square loss is normalized as :class:`solver.energies.network.NetworkRisk`
normalizes it: ℓ(h, y) = ½(h − y)² averaged over the data, i.e. q_i = 1/n by default;
other quadrature weights q_i ≥ 0 give a population loss (x uniform on the circle, …).
For balanced ReLU networks with weight decay λ∫|w|² dμ the penalty is λ' = 2λ
(|w|² = |a|² + b² = 2|a|² and the lifted masses are |a|², see :mod:`solver.lift`).

On the same directions as a discretized flow, (1) is the exact discrete global minimum
the flow should reach; on a much finer set it approximates the continuous min F.
The F1 max-margin classifier of Chizat–Bach 2020 on those directions is the linear
program of :func:`max_margin`; the F2 max margin (the kernel SVM of the features at fixed
directions, the limit of training the output layer only) is the QP of :func:`kernel_max_margin`.
"""

import dataclasses
import warnings

import numpy as np
from scipy import optimize

CONVEX_METHODS = ("auto", "nnls", "active-set", "l-bfgs-b")


@dataclasses.dataclass(frozen=True)
class ConvexMinimum:
    """The minimizer of (1) and its optimality certificate.

    Attributes
    ----------
    c_plus, c_minus : arrays (K,)
        The masses c± ≥ 0 on the directions.
    value : float
        J(c) = R(A(c+ − c−)) + λ'Σ(c+ + c−).
    risk : float
        R(A(c+ − c−)) alone.
    gradient_plus, gradient_minus : arrays (K,)
        ∂J/∂c± = ±Aᵀ(q ⊙ (h − y)) + λ'.
    kkt_residual : float
        max(max over c = 0 of (−∂J/∂c)₊, max over c > 0 of |∂J/∂c|): 0 exactly at the
        minimizer (the KKT conditions of a convex problem with bounds c ≥ 0).
    method : str
    """

    c_plus: np.ndarray
    c_minus: np.ndarray
    value: float
    risk: float
    gradient_plus: np.ndarray
    gradient_minus: np.ndarray
    kkt_residual: float
    method: str

    @property
    def coefficients(self):
        """The signed masses c+ − c−."""
        return self.c_plus - self.c_minus


def _check_problem(features, y, quadrature, penalty):
    A = np.asarray(features, dtype=float)
    y = np.asarray(y, dtype=float)
    if A.ndim != 2:
        raise ValueError(f"convex: features must be a matrix A[i, k] = Φ(s_k, x_i), got shape {A.shape}")
    if y.shape != (A.shape[0],):
        raise ValueError(f"convex: y must have shape ({A.shape[0]},) to match the features' rows, got {y.shape}")
    if not (np.all(np.isfinite(A)) and np.all(np.isfinite(y))):
        raise ValueError("convex: features and y must be finite")
    q = np.full(len(y), 1.0 / len(y)) if quadrature is None else np.asarray(quadrature, dtype=float)
    if q.shape != y.shape or not np.all(np.isfinite(q)) or np.any(q < 0):
        raise ValueError(f"convex: quadrature must be {len(y)} finite weights >= 0")
    penalty = float(penalty)
    if not np.isfinite(penalty) or penalty < 0:
        raise ValueError(f"convex: penalty λ' must be finite and >= 0, got {penalty}")
    return A, y, q, penalty


def _certify(A, y, q, penalty, c_plus, c_minus, method):
    """Return the value, gradients and KKT residual of (1) at c±."""
    h = A @ (c_plus - c_minus)
    risk = 0.5 * float(q @ (h - y) ** 2)
    correlation = A.T @ (q * (h - y))
    gradient_plus, gradient_minus = correlation + penalty, -correlation + penalty
    c, g = np.concatenate([c_plus, c_minus]), np.concatenate([gradient_plus, gradient_minus])
    kkt = max(float(np.max(np.maximum(-g[c == 0], 0.0), initial=0.0)), float(np.max(np.abs(g[c > 0]), initial=0.0)))
    value = risk + penalty * float(np.sum(c))
    return ConvexMinimum(c_plus, c_minus, value, risk, gradient_plus, gradient_minus, kkt, method)


def _active_set(M, target, penalty, tol, max_iterations):
    """Minimize J(c) = ½|Mc − ỹ|² + λ'1ᵀc over c ≥ 0 (Lawson–Hanson, generalized to λ' ≥ 0).

    In the quadratic form ½cᵀHc + fᵀc, H = MᵀM, f = −Mᵀỹ + λ'1, the gradient is
    g = Mᵀ(Mc − ỹ) + λ'. The passive set P holds the free coordinates. Each outer step frees
    the coordinate of most negative gradient; the inner loop minimizes over P with the
    others 0: if H_PP z = −f_P has a solution z > 0, c = z; if it has one with some
    z_i ≤ 0, c moves towards z until a coordinate reaches 0, which leaves P; if it has none
    (H_PP singular, −f_P outside its range), the least-squares residual d = −f_P − H_PP z
    lies in the null space of H_PP with fᵀd = −|d|² < 0, a direction of linear descent, and
    c moves along d to the bound: for λ' > 0 such a d has Σd < 0 (Md = 0 and fᵀd = λ'Σd),
    so the bound is reached; a residual without negative entries is round-off in the
    singular values lstsq cuts off, and z is taken as the solution. J decreases at every move. Only H_PP = M_PᵀM_P is
    formed, so K may be large.
    """
    c, passive = np.zeros(M.shape[1]), np.zeros(M.shape[1], dtype=bool)
    f_scale = max(1.0, float(np.max(np.abs(M.T @ target))) + penalty)
    for _ in range(max_iterations):
        g = M.T @ (M @ c - target) + penalty
        blocked = np.where(passive, np.inf, g)
        j = int(np.argmin(blocked))
        if blocked[j] >= -tol:
            return c
        passive[j] = True
        for _ in range(max_iterations):
            index = np.flatnonzero(passive)
            M_P = M[:, index]
            H_PP = M_P.T @ M_P
            rhs = M_P.T @ target - penalty
            z = np.linalg.lstsq(H_PP, rhs, rcond=None)[0]
            residual = rhs - H_PP @ z
            if np.max(np.abs(residual)) <= 1e-12 * f_scale or not np.any(residual < 0):
                # solvable (or a residual of round-off in the singular values lstsq cuts off)
                if np.all(z > 0):
                    c[:] = 0.0
                    c[index] = z
                    break
                direction, shrinking = z - c[index], z <= 0
            else:
                direction, shrinking = residual, residual < 0
            room = -direction[shrinking]
            step = np.min(np.divide(c[index][shrinking], room, out=np.zeros_like(room), where=room > 0))
            c[index] += step * direction
            leaving = index[c[index] <= 1e-15 * max(1.0, float(np.max(c)))]
            c[leaving] = 0.0
            passive[leaving] = False
        else:
            raise RuntimeError(f"convex: the active-set inner loop did not settle in {max_iterations} steps")
    raise RuntimeError(f"convex: the active-set method did not converge in {max_iterations} steps")


def convex_minimum(features, y, penalty=0.0, quadrature=None, method="auto", tol=1e-10):
    """Minimize (1): R(A(c+ − c−)) + λ'Σ(c+ + c−) over c± ≥ 0, to a KKT residual ≤ ``tol``.

    Write M = √q ⊙ [A, −A] (rows scaled by √q_i), ỹ = √q ⊙ y and c = (c+, c−). Then
    J(c) = ½|Mc − ỹ|² + λ'1ᵀc, a quadratic with Hessian H = MᵀM and linear part
    f = −Mᵀỹ + λ'1, so ∇J = Hc + f, i.e. ∂J/∂c± = ±Aᵀ(q ⊙ (h − y)) + λ'. The KKT conditions
    of the bounds c ≥ 0 are ∂J/∂c ≥ 0 where c = 0 and ∂J/∂c = 0 where c > 0; the returned
    ``kkt_residual`` measures both.

    Since ∂J/∂c+_k + ∂J/∂c−_k = 2λ', for λ' > 0 no direction carries both species at the
    minimum; for λ' = 0 the problem is weighted least squares in c+ − c− (∂J/∂c+ = 0
    everywhere at the minimum: the normal equations Aᵀ(q ⊙ (h − y)) = 0).

    Parameters
    ----------
    features : array (n, K)
        A[i, k] = Φ(s_k, x_i).
    y : array (n,)
    penalty : float
        λ' ≥ 0 (λ' = 2λ for balanced ReLU units with weight decay λ∫|w|² dμ).
    quadrature : array (n,), optional
        q_i ≥ 0; default 1/n (the empirical mean, as NetworkRisk).
    method : {"auto", "nnls", "active-set", "l-bfgs-b"}
        ``"nnls"`` (λ' = 0 only): :func:`scipy.optimize.nnls` on M, ỹ. ``"active-set"``:
        a Lawson–Hanson active-set method, exact up to round-off for any λ'.
        ``"l-bfgs-b"``: :func:`scipy.optimize.minimize` with bounds, an independent check
        (it warns when it stops above ``tol``). ``"auto"``: nnls for λ' = 0, else active-set.
    tol : float
        Required KKT residual (absolute, in the units of ∂J/∂c).

    Returns
    -------
    ConvexMinimum

    Raises
    ------
    ValueError
        For an unknown ``method``, ``"nnls"`` with λ' ≠ 0, and features, labels, weights
        or λ' that do not fit (shapes, non-finite values, λ' < 0).
    RuntimeError
        When nnls or the active-set method ends with a KKT residual above ``tol``, or the
        active-set iterations do not settle within their limit.
    """
    A, y, q, penalty = _check_problem(features, y, quadrature, penalty)
    if method not in CONVEX_METHODS:
        raise ValueError(f"convex_minimum: method must be one of {CONVEX_METHODS}, got {method!r}")
    if method == "auto":
        method = "nnls" if penalty == 0 else "active-set"
    if method == "nnls" and penalty != 0:
        raise ValueError("convex_minimum: method='nnls' solves λ' = 0 only; use 'active-set' or 'l-bfgs-b'")
    K = A.shape[1]
    root = np.sqrt(q)
    M = root[:, None] * np.concatenate([A, -A], axis=1)
    target = root * y
    if method == "nnls":
        c = optimize.nnls(M, target, maxiter=50 * M.shape[1])[0]
    else:
        if method == "active-set":
            c = _active_set(M, target, penalty, tol / 10, max_iterations=20 * M.shape[1] + 100)
        else:
            H, f = M.T @ M, -M.T @ target + penalty
            result = optimize.minimize(lambda c: (0.5 * c @ H @ c + f @ c, H @ c + f), np.zeros(2 * K), jac=True,
                                       method="L-BFGS-B", bounds=[(0, None)] * (2 * K),
                                       options={"ftol": 0.0, "gtol": tol / 10, "maxiter": 100000, "maxcor": 50})
            c = result.x
    solution = _certify(A, y, q, penalty, c[:K].copy(), c[K:].copy(), method)
    if solution.kkt_residual > tol:
        message = f"convex_minimum ({method}): KKT residual {solution.kkt_residual:.3g} > tol = {tol:g}"
        if method == "l-bfgs-b":
            warnings.warn(message, RuntimeWarning, stacklevel=2)
        else:
            raise RuntimeError(message)
    return solution


@dataclasses.dataclass(frozen=True)
class MaxMargin:
    """The F1 max-margin classifier on fixed directions.

    Attributes
    ----------
    margin : float
        γ* = max over Σ(c+ + c−) ≤ 1 of min_i y_i (A(c+ − c−))_i.
    c_plus, c_minus : arrays (K,)
    margins : array (n,)
        y_i h(x_i) at the maximizer (all ≥ γ*).
    """

    margin: float
    c_plus: np.ndarray
    c_minus: np.ndarray
    margins: np.ndarray

    @property
    def coefficients(self):
        """The signed masses c+ − c−."""
        return self.c_plus - self.c_minus


def _check_classification(features, y, name):
    """(A, y) as float arrays, refusing a shape mismatch and labels outside {−1, 1}."""
    A = np.asarray(features, dtype=float)
    y = np.asarray(y, dtype=float)
    if A.ndim != 2 or y.shape != (A.shape[0],):
        raise ValueError(f"{name}: need features (n, K) and labels (n,), got {A.shape} and {y.shape}")
    outside = ~np.isin(y, (-1.0, 1.0))
    if np.any(outside):
        raise ValueError(f"{name}: labels must be in {{-1, 1}}; got {np.unique(y[outside])[:5].tolist()} "
                         f"(at data points {np.flatnonzero(outside)[:5].tolist()})")
    return A, y


def max_margin(features, y, tol=1e-9):
    """Compute the F1 max margin on fixed directions, a linear program (Chizat–Bach 2020).

        maximize γ  over c+, c− ≥ 0, γ ∈ R
        subject to  y_i Σ_k (c+_k − c−_k) A_ik ≥ γ  (i = 1…n),   Σ_k (c+_k + c−_k) ≤ 1,

    solved by :func:`scipy.optimize.linprog` with HiGHS as min −γ with the margin rows
    −y_i A_i·(c+ − c−) + γ ≤ 0. c = 0, γ = 0 is feasible, so γ* ≥ 0; the data are separable
    by these features exactly when γ* > 0. When γ* ≤ ``tol`` no combination gives every
    point a positive margin, and the LP's dual names the blocking points: weights p_i ≥ 0
    on the margin rows with Σp_i = 1 and |Σ_i p_i y_i A_ik| ≤ γ* for all k (a convex
    combination of the points, signed by their labels, that every feature sees as ≈ 0).

    Parameters
    ----------
    features : array (n, K)
        A[i, k] = Φ(s_k, x_i).
    y : array (n,)
        Labels in {−1, 1}.
    tol : float
        Margins ≤ tol count as not separable.

    Returns
    -------
    MaxMargin

    Raises
    ------
    ValueError
        For labels outside {−1, 1}, and for data that these features do not separate
        (naming the smallest margin constraint y_i h(x_i) ≥ γ that cannot be met with γ > 0).
    RuntimeError
        When the linear program's solver (HiGHS) fails.
    """
    A, y = _check_classification(features, y, "max_margin")
    n, K = A.shape
    signed = y[:, None] * A
    A_ub = np.block([[-signed, signed, np.ones((n, 1))], [np.ones((1, 2 * K)), np.zeros((1, 1))]])
    b_ub = np.concatenate([np.zeros(n), [1.0]])
    cost = np.zeros(2 * K + 1)
    cost[-1] = -1.0
    result = optimize.linprog(cost, A_ub=A_ub, b_ub=b_ub, bounds=[(0, None)] * (2 * K) + [(None, None)],
                              method="highs")
    if result.status != 0:
        raise RuntimeError(f"max_margin: HiGHS failed: {result.message}")
    c_plus, c_minus, margin = result.x[:K], result.x[K:2 * K], float(result.x[-1])
    margins = signed @ (c_plus - c_minus)
    if margin <= tol:
        weights = -result.ineqlin.marginals[:n]
        blocking = np.flatnonzero(weights > 1e-9)
        blocking = blocking[np.argsort(margins[blocking], kind="stable")]
        worst = int(blocking[0]) if len(blocking) else int(np.argmin(margins))
        raise ValueError(
            f"max_margin: the data are not separable by these features "
            f"(F1 max margin γ* = {margin + 0.0:.3g} <= {tol:g}): "
            f"the smallest margin constraint y_i h(x_i) >= γ > 0 that fails is at data point i = {worst} "
            f"(y = {y[worst]:+g}, y_i h(x_i) = {margins[worst]:.3g}); the dual certificate puts weight on points "
            f"{blocking[:8].tolist()}")
    return MaxMargin(margin, c_plus, c_minus, margins)


@dataclasses.dataclass(frozen=True)
class KernelMaxMargin:
    """The F2 max-margin classifier of a random-feature kernel (the hard-margin SVM).

    Attributes
    ----------
    margin : float
        γ*₂ = max over ‖b‖_(L²(π)) ≤ 1 of min_i y_i h_b(x_i), h_b(x_i) = Σ_k π_k b_k A_ik.
    coefficients : array (K,)
        The output weights b of the maximizer (Σ_k π_k b_k² = 1).
    dual : array (n,)
        p on the simplex: the support-vector weights (γ*₂ = |Σ_i p_i y_i A_i·|_(L²(π))).
    margins : array (n,)
        y_i h_b(x_i) at the maximizer (all ≥ γ*₂ up to ``gap``).
    gap : float
        The duality gap |Σ_i p_i y_i A_i·|_(L²(π)) − min_i y_i h_b(x_i) ≥ 0, which bounds the
        error of ``margin``.
    """

    margin: float
    coefficients: np.ndarray
    dual: np.ndarray
    margins: np.ndarray
    gap: float


def _affine_minimizer(Q, support):
    """The minimizer of qᵀQq over {Σq = 1, q = 0 off ``support``}: the KKT system
    Q_SS q_S = μ1, 1ᵀq_S = 1 (least squares when Q_SS is singular)."""
    S = len(support)
    system = np.block([[Q[np.ix_(support, support)], -np.ones((S, 1))], [np.ones((1, S)), np.zeros((1, 1))]])
    q = np.zeros(len(Q))
    q[support] = np.linalg.lstsq(system, np.concatenate([np.zeros(S), [1.0]]), rcond=None)[0][:S]
    return q


def _nearest_point(Q, p, tol):
    """Wolfe's nearest-point method (Wolfe 1976) for min pᵀQp over the simplex, started from
    ``p`` (SLSQP's answer, support where p > 1e-8 max p): move to the affine minimizer on
    the support, or towards it until a weight reaches 0, which leaves the support (minor
    cycles); then, while some vertex i has (Qp)_i < pᵀQp (1 − tol) (a relative duality gap
    of :func:`kernel_max_margin` above ``tol``), add the one of least (Qp)_i (a major cycle).
    Exact once the support is right: SLSQP alone stops at gaps of 1e-8 to 1e-7 (1.04e-7 with
    SciPy 1.10 on the plane benchmark's data). At most ``len(p)`` major cycles."""
    p = np.where(p > 1e-8 * np.max(p), p, 0.0)
    p /= np.sum(p)
    support = np.flatnonzero(p)
    for _ in range(len(p)):
        while True:  # minor cycles
            q = _affine_minimizer(Q, support)
            if np.all(q[support] > 0):
                p = q
                break
            shrinking = support[q[support] <= 0]  # p > 0 there: the step to q stops where the first reaches 0
            ratios = p[shrinking] / (p[shrinking] - q[shrinking])
            p = p + np.min(ratios) * (q - p)
            p[shrinking[np.argmin(ratios)]] = 0.0
            support = support[p[support] > 0]
        gradient = Q @ p
        value = p @ gradient
        entering = int(np.argmin(gradient))
        if value - gradient[entering] <= tol * value or entering in support:
            return p
        support = np.append(support, entering)
    return p


def kernel_max_margin(features, y, weights=None, tol=1e-9):
    """Compute the F2 max margin: the hard-margin SVM of k(x, x') = Σ_k π_k Φ(s_k, x)Φ(s_k, x').

    With the features A_ik = Φ(s_k, x_i) of directions s_k of law π (weights π_k ≥ 0, Σπ_k = 1:
    a quadrature of the uniform start E_s, so k(x, x') ≈ E_s[Φ(s, x)Φ(s, x')]), the output
    weights b ∈ L²(π) predict h_b(x) = Σ_k π_k b_k Φ(s_k, x), and

        γ*₂ = max over Σ_k π_k b_k² ≤ 1 of min_i y_i h_b(x_i)
            = min over p ∈ simplex of |Σ_i p_i y_i A_i·|_(L²(π)) = min_p √(pᵀQp),

    Q_ij = y_i y_j k(x_i, x_j) (strong duality of a norm ball against a convex hull: the
    distance from 0 to the hull of the points y_i A_i·). The minimum over the simplex is a
    QP solved by :func:`scipy.optimize.minimize` with ``method="SLSQP"`` (n variables,
    gradient 2Qp, the constraint Σp = 1, bounds p ≥ 0), then finished by Wolfe's
    nearest-point method from SLSQP's support (:func:`_nearest_point`: KKT systems
    Q_SS p_S = μ1, Σp_S = 1 solved exactly, vertices added while the gap exceeds a tenth of
    ``tol``); the maximizer is b = z/|z| with
    z_k = Σ_i p_i y_i A_ik, and the duality gap √(pᵀQp) − min_i y_i h_b(x_i) ≥ 0 certifies
    it. For the ReLU features the F1 norm of h_b, Σπ_k|b_k| ≤ ‖b‖_(L²(π)), so γ*₂ ≤ γ*₁ of
    :func:`max_margin` on the same directions.

    Parameters
    ----------
    features : array (n, K)
        A[i, k] = Φ(s_k, x_i).
    y : array (n,)
        Labels in {−1, 1}.
    weights : array (K,), optional
        π_k ≥ 0 (normalized to sum 1); default 1/K.
    tol : float
        Required duality gap, relative to γ*₂; margins ≤ ``tol`` count as not separable.

    Returns
    -------
    KernelMaxMargin

    Raises
    ------
    ValueError
        For labels outside {−1, 1}, and for data the kernel does not separate (γ*₂ ≤ tol),
        naming the data point of smallest margin and the support of p.
    RuntimeError
        When the solve ends with a duality gap above ``tol`` γ*₂.
    """
    A, y = _check_classification(features, y, "kernel_max_margin")
    n, K = A.shape
    pi = np.full(K, 1.0 / K) if weights is None else np.asarray(weights, dtype=float)
    if pi.shape != (K,) or np.any(pi < 0) or not np.sum(pi) > 0:
        raise ValueError(f"kernel_max_margin: weights must be {K} numbers >= 0 with a positive sum")
    pi = pi / np.sum(pi)
    Z = y[:, None] * A * np.sqrt(pi)  # rows y_i A_i· in the coordinates where L²(π) is Euclidean
    Q = Z @ Z.T
    scale = float(np.max(np.abs(Q))) or 1.0
    result = optimize.minimize(lambda p: (p @ Q @ p / scale, 2 * Q @ p / scale), np.full(n, 1.0 / n), jac=True,
                               method="SLSQP", bounds=[(0, None)] * n,
                               constraints=[{"type": "eq", "fun": lambda p: np.sum(p) - 1,
                                             "jac": lambda p: np.ones_like(p)}],
                               options={"ftol": 1e-16, "maxiter": 10000})
    p = _nearest_point(Q, result.x, tol / 10)  # a tenth: the gap computed below from z passes
    z = Z.T @ p
    distance = float(np.linalg.norm(z))
    if distance <= tol:
        support = np.flatnonzero(p > 1e-9)  # the points whose signed features cancel: Σ p_i y_i A_i· ≈ 0
        worst = int(support[np.argmin((Q @ p)[support])])
        raise ValueError(f"kernel_max_margin: the data are not separable by this kernel (F2 max margin "
                         f"γ*₂ = {distance:.3g} <= {tol:g}): the smallest margin constraint y_i h(x_i) >= γ > 0 "
                         f"that fails is at data point i = {worst} (y = {y[worst]:+g}); the dual puts weight on "
                         f"points {support[:8].tolist()}")
    b = z / distance / np.sqrt(pi, out=np.zeros_like(pi), where=pi > 0)
    margins = Z @ z / distance
    gap = distance - float(np.min(margins))
    if gap > tol * distance:
        raise RuntimeError(f"kernel_max_margin: the solve stopped with a duality gap {gap:.3g} > {tol:g} γ*₂ "
                           f"(SLSQP: {result.message})")
    return KernelMaxMargin(float(np.min(margins)), b, p, margins, gap)
