"""Convex references on fixed directions: known minimizers, KKT conditions, two methods
against each other, and the F1 max-margin linear program on a case solved by hand."""

import numpy as np
import pytest

from solver.convex import _certify, convex_minimum, max_margin


def gaussian_relu_features(rng, n=100, K=10, dim=3):
    """A[i, k] = (s_k·x_i)₊ for random unit s_k and Gaussian x_i: full column rank."""
    S = rng.normal(size=(K, dim))
    S /= np.linalg.norm(S, axis=1, keepdims=True)
    X = rng.normal(size=(n, dim))
    return np.maximum(X @ S.T, 0.0)


@pytest.mark.parametrize("method", ["nnls", "active-set"])
def test_a_teacher_on_the_directions_is_recovered_with_zero_risk(rng, method):
    A = gaussian_relu_features(rng)
    truth = np.zeros(A.shape[1])
    truth[3], truth[7] = 1.3, -0.4
    solution = convex_minimum(A, A @ truth, method=method)
    assert solution.risk <= 1e-26
    np.testing.assert_allclose(solution.coefficients, truth, atol=1e-10)
    assert solution.kkt_residual <= 1e-10


def test_one_feature_is_soft_thresholding(rng):
    """K = 1: J = ½Σq(ca − y)² + λ'|c| is minimized by c = sign(β) max(|β| − λ'/Σqa², 0), β = Σqay/Σqa²."""
    a, y = rng.random(30), rng.normal(size=30) + 1.0
    q = rng.random(30)
    beta, curvature = (q * a) @ y / (q @ a**2), q @ a**2
    for penalty in [0.0, 0.3 * abs(beta) * curvature, 2 * abs(beta) * curvature]:
        solution = convex_minimum(a[:, None], y, penalty, quadrature=q, method="active-set")
        expected = np.sign(beta) * max(abs(beta) - penalty / curvature, 0.0)
        np.testing.assert_allclose(solution.coefficients, [expected], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("penalty", [1e-3, 1e-2, 1e-1])
def test_lasso_optimality_conditions_hold_and_perturbations_do_not_improve(rng, penalty):
    A = gaussian_relu_features(rng, n=60, K=40)
    y = rng.normal(size=60)
    solution = convex_minimum(A, y, penalty)
    c = np.concatenate([solution.c_plus, solution.c_minus])
    g = np.concatenate([solution.gradient_plus, solution.gradient_minus])
    assert np.all(c >= 0)
    assert np.all(g[c == 0] >= -1e-10)
    assert np.max(np.abs(g[c > 0])) <= 1e-10
    assert not np.any((solution.c_plus > 0) & (solution.c_minus > 0))
    assert 0 < np.count_nonzero(c) < len(c)

    def value(c_plus, c_minus):
        return 0.5 * np.mean((A @ (c_plus - c_minus) - y) ** 2) + penalty * np.sum(c_plus + c_minus)

    assert value(solution.c_plus, solution.c_minus) == pytest.approx(solution.value, rel=1e-14)
    for _ in range(20):
        step = 1e-4 * rng.normal(size=(2, A.shape[1]))
        assert value(np.maximum(solution.c_plus + step[0], 0), np.maximum(solution.c_minus + step[1], 0)) >= (
            solution.value - 1e-15)


@pytest.mark.parametrize("penalty", [0.0, 1e-2])
def test_l_bfgs_b_agrees_with_the_exact_methods(rng, penalty):
    A = gaussian_relu_features(rng, n=80, K=20)
    y = np.sin(3 * rng.normal(size=80))
    exact = convex_minimum(A, y, penalty)
    assert exact.method == ("nnls" if penalty == 0 else "active-set")
    with np.errstate(all="ignore"):  # L-BFGS-B's line search
        check = convex_minimum(A, y, penalty, method="l-bfgs-b", tol=1e-7)
    assert check.value == pytest.approx(exact.value, rel=1e-10)
    np.testing.assert_allclose(A @ check.coefficients, A @ exact.coefficients, atol=1e-5)


def test_nnls_without_penalty_is_weighted_least_squares(rng):
    A = gaussian_relu_features(rng, n=50, K=12)
    y, q = rng.normal(size=50), rng.random(50)
    solution = convex_minimum(A, y, quadrature=q)
    least_squares = np.linalg.lstsq(np.sqrt(q)[:, None] * A, np.sqrt(q) * y, rcond=None)[0]
    np.testing.assert_allclose(solution.coefficients, least_squares, atol=1e-10)
    np.testing.assert_allclose(solution.gradient_plus, 0.0, atol=1e-12)


def test_quadrature_weights_count_repeated_points(rng):
    """q = (2, 1, …)/n on distinct points is the plain mean over the data with point 0 twice."""
    A = gaussian_relu_features(rng, n=30, K=8)
    y = rng.normal(size=30)
    q = np.ones(30)
    q[0] = 2.0
    weighted = convex_minimum(A, y, 0.05, quadrature=q / 31)
    repeated = convex_minimum(np.vstack([A, A[:1]]), np.append(y, y[0]), 0.05)
    np.testing.assert_allclose(weighted.coefficients, repeated.coefficients, atol=1e-12)
    assert weighted.value == pytest.approx(repeated.value, rel=1e-13)


def test_bad_input_is_refused():
    A, y = np.eye(3), np.ones(3)
    with pytest.raises(ValueError, match="method='nnls' solves λ' = 0 only"):
        convex_minimum(A, y, 0.1, method="nnls")
    with pytest.raises(ValueError, match="penalty λ' must be finite and >= 0, got -1.0"):
        convex_minimum(A, y, -1.0)
    with pytest.raises(ValueError, match="quadrature must be 3 finite weights >= 0"):
        convex_minimum(A, y, quadrature=[1.0, -1.0, 1.0])
    with pytest.raises(ValueError, match=r"y must have shape \(3,\) to match the features' rows, got \(4,\)"):
        convex_minimum(A, np.ones(4))


def test_max_margin_by_hand():
    """A = [[2, 1], [1, 1]], y = (1, −1): with c = (u, −v), u, v ≥ 0, u + v = 1 the margins are
    2u − v = 3u − 1 and v − u = 1 − 2u, equal at u = 2/5: γ* = 1/5, c+ = (2/5, 0), c− = (0, 3/5)."""
    solution = max_margin(np.array([[2.0, 1.0], [1.0, 1.0]]), [1, -1])
    assert solution.margin == pytest.approx(0.2, abs=1e-12)
    np.testing.assert_allclose(solution.c_plus, [0.4, 0.0], atol=1e-12)
    np.testing.assert_allclose(solution.c_minus, [0.0, 0.6], atol=1e-12)
    np.testing.assert_allclose(solution.margins, [0.2, 0.2], atol=1e-12)


def test_max_margin_of_separable_random_data_is_the_smallest_margin(rng):
    A = gaussian_relu_features(rng, n=20, K=30)
    y = np.where(rng.random(20) < 0.5, -1.0, 1.0)
    solution = max_margin(A, y)
    assert solution.margin > 0
    assert np.sum(solution.c_plus + solution.c_minus) == pytest.approx(1.0, abs=1e-9)
    assert np.min(solution.margins) == pytest.approx(solution.margin, abs=1e-9)
    # any other combination on the unit ℓ1 ball does no better
    for _ in range(50):
        c = rng.normal(size=30)
        c /= np.sum(np.abs(c))
        assert np.min(y * (A @ c)) <= solution.margin + 1e-12


def test_max_margin_refuses_data_that_are_not_separable():
    """Points 1 and 3 are the same input with opposite labels: no feature separates them."""
    A = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"not separable.*γ\* = 0 .*data point i = [13] .*points \[(1, 3|3, 1)\]"):
        max_margin(A, [1, 1, -1, -1])


def test_max_margin_refuses_labels_outside_plus_minus_one():
    with pytest.raises(ValueError, match=r"labels must be in \{-1, 1\}.*\[0\.0\]"):
        max_margin(np.eye(2), [0, 1])


def test_the_kkt_residual_flags_points_that_are_not_optimal(rng):
    """The certificate, not only the solvers: at c± = 0 the residual is the bound's violation
    max_k (|Aᵀ(q ⊙ y)|_k − λ')⁺ (∂J/∂c± = ∓Aᵀ(q ⊙ y) + λ' must be ≥ 0 there); at the minimum
    it is round-off; with one active mass moved off the minimum it is at least that
    coordinate's gradient, ≠ 0. A residual blind to either condition would pass a solver stopped early."""
    A, y = gaussian_relu_features(rng, n=20), rng.normal(size=20)
    q, penalty = np.full(20, 1 / 20), 0.01
    zero = np.zeros(A.shape[1])
    at_zero = _certify(A, y, q, penalty, zero, zero, "by hand").kkt_residual
    assert at_zero == pytest.approx(max(np.abs(A.T @ (q * y)).max() - penalty, 0.0), rel=1e-12)
    assert at_zero > 0.1
    best = convex_minimum(A, y, penalty, quadrature=q)
    assert best.kkt_residual <= 1e-10
    k = int(np.argmax(best.c_plus))
    moved = best.c_plus.copy()
    moved[k] *= 1.01
    off = _certify(A, y, q, penalty, moved, best.c_minus, "by hand")
    assert off.kkt_residual >= abs(off.gradient_plus[k]) > 1e-6
