"""Two-layer network energies: Numba kernels against NumPy references, gradients against
finite differences, and the particle velocity against the gradient of the m-neuron risk."""

import numpy as np
import pytest

from solver import Grid
from solver.energies import network
from solver.energies.network import Feature, NetworkRisk, teacher_labels
from solver.kernels import network as kernels

FEATURES = {
    "relu+bias": Feature.neuron("relu", 2, bias=True),
    "sigmoid": Feature.neuron("sigmoid", 2),
    "tanh+bias": Feature.neuron("tanh", 1, bias=True),
    "fixed tanh": Feature.fixed_output("tanh", 2),
    "fixed relu+bias": Feature.fixed_output("relu", 1, bias=True),
    "gaussian": Feature.gaussian(1, 0.7),
    "gaussian 2D": Feature.gaussian(2, 1.3),
}


def random_problem(rng, feature, n_theta=37, n_data=29):
    theta = rng.normal(size=(n_theta, feature.dim))
    X = rng.normal(size=(n_data, feature.input_dim))
    return theta, X


@pytest.mark.parametrize("name", FEATURES)
def test_kernels_match_numpy(rng, name):
    feature = FEATURES[name]
    spec = feature.spec
    theta, X = random_problem(rng, feature)
    weights, coef = rng.random(len(theta)), rng.normal(size=len(X))
    h = np.empty(len(X))
    kernels.predict(spec, theta, weights, X, h)
    np.testing.assert_allclose(h, kernels.predict_reference(spec, theta, weights, X), rtol=1e-12, atol=1e-12)
    xi = np.empty(len(theta))
    kernels.first_variation(spec, theta, coef, X, xi)
    np.testing.assert_allclose(xi, kernels.first_variation_reference(spec, theta, coef, X), rtol=1e-12, atol=1e-12)
    grad = np.empty_like(theta)
    kernels.gradient(spec, theta, coef, X, grad)
    np.testing.assert_allclose(grad, kernels.gradient_reference(spec, theta, coef, X), rtol=1e-12, atol=1e-12)
    matrix = np.empty((len(theta), len(X)))
    kernels.feature_matrix(spec, theta, X, matrix)
    np.testing.assert_allclose(matrix, kernels.feature_matrix_reference(spec, theta, X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", FEATURES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_kernels_propagate_nan_and_inf_as_numpy(rng, name, bad):
    """One NaN or ±inf in θ, in the data or in the weights and coefficients makes the
    outputs non-finite that it makes non-finite in the NumPy references (where 0·inf and
    0·NaN are NaN, e.g. at an inactive ReLU), and the other outputs still match. (A NaN
    there may come out as ±inf: c Σ_i … with c = inf where NumPy sums ±inf terms.)"""
    feature = FEATURES[name]
    spec = feature.spec
    for where in ["theta", "X", "values"]:
        theta, X = random_problem(rng, feature, n_theta=9, n_data=11)
        weights, coef = rng.normal(size=len(theta)), rng.normal(size=len(X))
        {"theta": theta, "X": X, "values": weights}[where][3, ...] = bad
        coef[4] = bad if where == "values" else coef[4]
        for kernel, reference, values, shape in [
                (kernels.predict, kernels.predict_reference, (weights,), len(X)),
                (kernels.first_variation, kernels.first_variation_reference, (coef,), len(theta)),
                (kernels.gradient, kernels.gradient_reference, (coef,), theta.shape),
                (kernels.feature_matrix, kernels.feature_matrix_reference, (), (len(theta), len(X)))]:
            out = np.empty(shape)
            with np.errstate(invalid="ignore", over="ignore"):
                kernel(spec, theta, *values, X, out)
                expected = reference(spec, theta, *values, X)
            message, finite = f"{kernel.__name__}, {bad} in {where}", np.isfinite(expected)
            np.testing.assert_array_equal(np.isfinite(out), finite, err_msg=message)
            np.testing.assert_allclose(out[finite], expected[finite], rtol=1e-12, atol=1e-12, err_msg=message)


@pytest.mark.parametrize("name", FEATURES)
def test_feature_gradient_against_finite_differences(rng, name):
    feature = FEATURES[name]
    theta, X = random_problem(rng, feature, n_theta=5, n_data=4)
    grad = kernels.feature_gradient_reference(feature.spec, theta, X)  # (N, n, D)
    eps = 1e-6
    for d in range(feature.dim):
        step = np.zeros(feature.dim)
        step[d] = eps
        numeric = (feature(theta + step, X) - feature(theta - step, X)) / (2 * eps)
        np.testing.assert_allclose(grad[..., d], numeric, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss", ["square", "logistic"])
@pytest.mark.parametrize("name", ["relu+bias", "fixed tanh", "gaussian"])
def test_particle_velocity_is_minus_gradient_of_the_risk(rng, name, loss):
    """For μ_m = Σ w_j δ_θj: ∂F(μ_m)/∂θ_j = w_j ∇θF'(μ_m)(θ_j), so v_j = −(1/w_j) ∂F/∂θ_j."""
    feature = FEATURES[name]
    theta, X = random_problem(rng, feature, n_theta=6, n_data=40)
    y = np.sign(rng.normal(size=len(X))) if loss == "logistic" else rng.normal(size=len(X))
    energy = NetworkRisk(feature, X, y, loss=loss, weight_decay=0.1)
    weights = np.full(len(theta), 1 / len(theta))

    def total(t):
        return energy.risk(t, weights) + energy.weight_decay * weights @ np.sum(t**2, axis=1)

    velocity = energy.particle_velocity(theta, weights)
    eps = 1e-6
    for j in (0, 3):
        for d in range(feature.dim):
            plus, minus = theta.copy(), theta.copy()
            plus[j, d] += eps
            minus[j, d] -= eps
            numeric = (total(plus) - total(minus)) / (2 * eps) / weights[j]
            assert velocity[j, d] == pytest.approx(-numeric, rel=1e-5, abs=1e-8)


@pytest.mark.parametrize("loss", ["square", "logistic"])
def test_grid_first_variation_is_the_derivative_of_the_value(rng, loss):
    feature = FEATURES["fixed tanh"]
    X = rng.normal(size=(50, 2))
    y = np.sign(rng.normal(size=50)) if loss == "logistic" else np.tanh(X @ [1.0, -0.5])
    energy = NetworkRisk(feature, X, y, loss=loss, weight_decay=0.05)
    grid = Grid([(-2, 2), (-1, 3)], (7, 6))
    rho, phi = rng.random(grid.shape), rng.normal(size=grid.shape)
    eps = 1e-6
    numeric = (energy.value(rho + eps * phi, grid) - energy.value(rho - eps * phi, grid)) / (2 * eps)
    assert numeric == pytest.approx(grid.integrate(energy.first_variation(rho, grid) * phi), rel=1e-7)


GRID_FEATURES = {name: FEATURES[name] for name in ("sigmoid", "tanh+bias", "fixed tanh", "fixed relu+bias",
                                                   "gaussian", "gaussian 2D")}
GRID_FEATURES["relu+bias 1D"] = Feature.neuron("relu", 1, bias=True)  # θ = (a, b, c), Chizat–Bach's 3D grid
GRID_FEATURES["fixed sigmoid 3D"] = Feature.fixed_output("sigmoid", 3)


@pytest.mark.parametrize("form", [kernels.RELU_SUM, kernels.SIGMOID_PRODUCT, kernels.TANH_PRODUCT,
                                  kernels.BUMP_PRODUCT])
def test_separable_kernels_match_numpy(rng, form):
    n = 2 * kernels.CHUNK + 31  # three chunks of data points, the last one short
    low, high = (-2.0, 2.0) if form == kernels.RELU_SUM else (0.2, 3.0)
    tables = [rng.uniform(low, high, size=(rows, n)) for rows in (3, 4, 5)]
    matrix = kernels.separable_matrix_reference(form, *tables)
    coef, weights = rng.normal(size=n), rng.random((3, 4, 5))
    xi, h = np.empty(60), np.empty(n)
    kernels.separable_first_variation(form, *tables, coef, xi)
    np.testing.assert_allclose(xi, matrix @ coef, rtol=1e-12, atol=1e-12)
    kernels.separable_predict(form, *[np.ascontiguousarray(t.T) for t in tables], weights, h)
    np.testing.assert_allclose(h, weights.ravel() @ matrix, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", GRID_FEATURES)
def test_cell_evaluations_agree(rng, name):
    """Per-axis tables, the feature matrix and the pointwise kernels give the same h and
    F' on grid cells (the tables and the others round differently: 1e-12 of the scale)."""
    feature = GRID_FEATURES[name]
    grid = Grid([(-2.0, 2.5), (-1.0, 3.0), (-3.0, 1.5)][: feature.dim], (7, 6, 5)[: feature.dim])
    X = rng.normal(size=(33, feature.input_dim))
    weights, coef = rng.random(grid.size), rng.normal(size=33)
    separable, matrix, pointwise = (network.cell_evaluation(feature, grid, X, method)
                                    for method in ("separable", "matrix", "pointwise"))
    assert isinstance(network.cell_evaluation(feature, grid, X), network.SeparableCells)
    h, xi = matrix.predict(weights), matrix.first_variation(coef)
    for other in (separable, pointwise):
        np.testing.assert_allclose(other.predict(weights), h, rtol=0, atol=1e-12 * np.abs(weights).sum())
        np.testing.assert_allclose(other.first_variation(coef), xi, rtol=0, atol=1e-12 * np.abs(coef).sum())


def test_cell_evaluation_falls_back_without_separable_tables(rng, monkeypatch):
    """Exponents beyond ±EXPONENT_LIMIT: no tables (their product could overflow); the
    feature matrix, or the pointwise kernels past MATRIX_LIMIT, give the same energy."""
    X = 200 * rng.normal(size=(40, 2))  # |2 w·x| reaches thousands
    grid = Grid([(-2, 2), (-1, 3)], (9, 8))
    rho = rng.random(grid.shape)
    assert isinstance(network.cell_evaluation(FEATURES["fixed tanh"], grid, X), network.MatrixCells)
    with pytest.raises(ValueError, match="do not separate"):
        network.cell_evaluation(FEATURES["fixed tanh"], grid, X, "separable")
    with_matrix = NetworkRisk(FEATURES["fixed tanh"], X, np.tanh(X[:, 0])).value_and_first_variation(rho, grid)
    monkeypatch.setattr(network, "MATRIX_LIMIT", 0)
    assert isinstance(network.cell_evaluation(FEATURES["fixed tanh"], grid, X), network.PointwiseCells)
    with_kernels = NetworkRisk(FEATURES["fixed tanh"], X, np.tanh(X[:, 0])).value_and_first_variation(rho, grid)
    assert np.isfinite(with_matrix[0]) and with_matrix[0] == pytest.approx(with_kernels[0], rel=1e-12)
    np.testing.assert_allclose(with_matrix[1], with_kernels[1], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="method must be one of"):
        network.cell_evaluation(FEATURES["fixed tanh"], grid, X, "fast")


def test_grid_and_particles_agree(rng):
    """The grid energy equals the particle energy of the measure Σ_cells ρ_c|cell| δ_(centre)."""
    feature = FEATURES["gaussian"]
    X = rng.normal(size=(30, 1))
    energy = NetworkRisk(feature, X, np.sin(X[:, 0]))
    grid = Grid([(-1, 1), (-2, 2)], (5, 8))
    rho = rng.random(grid.shape)
    theta, weights = grid.points.reshape(-1, 2), rho.ravel() * grid.cell_volume
    assert energy.value(rho, grid) == pytest.approx(energy.risk(theta, weights), rel=1e-12)


def test_teacher_is_a_zero_risk_student():
    feature = Feature.fixed_output("tanh", 2)
    teacher = np.array([[1.0, 0.5], [-0.5, 1.0], [0.2, -1.0]])
    X = np.random.default_rng(0).normal(size=(100, 2))
    energy = NetworkRisk(feature, X, teacher_labels(feature, teacher, X))
    assert energy.risk(teacher, np.full(3, 1 / 3)) == pytest.approx(0, abs=1e-30)
    assert energy.risk(teacher, np.full(3, 0.2)) > 1e-3


def test_bad_input():
    feature = Feature.neuron("relu", 2, bias=True)
    X, y = np.zeros((5, 2)), np.zeros(5)
    with pytest.raises(ValueError, match=r"X: inputs x ∈ R\^2 given as an array of shape \(5, 3\): give one of shape "
                                         r"\(n, 2\)"):
        NetworkRisk(feature, np.zeros((5, 3)), y)
    with pytest.raises(ValueError, match=r"given as an array of shape \(5, 2, 1\)"):
        NetworkRisk(feature, np.zeros((5, 2, 1)), y)
    with pytest.raises(ValueError, match="X holds no data point"):
        NetworkRisk(feature, np.zeros((0, 2)), np.zeros(0))
    with pytest.raises(ValueError, match=r"y must have shape \(5,\)"):
        NetworkRisk(feature, X, np.zeros(4))
    with pytest.raises(ValueError, match=r"logistic loss needs labels in \{-1, 1\}, got \[0.0\]"):
        NetworkRisk(feature, X, y, loss="logistic")
    with pytest.raises(ValueError, match="loss must be one of"):
        NetworkRisk(feature, X, y, loss="hinge")
    with pytest.raises(ValueError, match="weight_decay must be finite and >= 0"):
        NetworkRisk(feature, X, y, weight_decay=-1)
    energy = NetworkRisk(feature, X, y)
    with pytest.raises(ValueError, match=r"NetworkRisk: parameters θ ∈ R\^4 given as an array of shape \(2, 3\)"):
        energy.particle_velocity(np.zeros((2, 3)), np.full(2, 0.5))
    # the Numba kernels check no bounds: every shape is checked before them
    theta = np.ones((5, 4))
    for short_or_long in (np.ones(3), np.ones(7)):
        with pytest.raises(ValueError, match=r"NetworkRisk: weights of shape \(\d,\) for 5 particles"):
            energy.predict(theta, short_or_long)
        with pytest.raises(ValueError, match=r"weights of shape"):
            energy.risk(theta, short_or_long)
    with pytest.raises(ValueError, match=r"x: inputs x ∈ R\^2 given as an array of shape \(3, 1\)"):
        energy.predict(theta, np.ones(5), x=np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"the batch's X: inputs x ∈ R\^2 given as an array of shape \(5, 1\)"):
        energy.particle_velocity(theta, np.ones(5), batch=(np.ones((5, 1)), np.ones(5)))
    with pytest.raises(ValueError, match=r"the batch's y has shape \(4,\) for 5 inputs"):
        energy.particle_velocity(theta, np.ones(5), batch=(np.ones((5, 2)), np.ones(4)))
    with pytest.raises(ValueError, match=r"Feature: parameters θ ∈ R\^4 given as an array of shape \(1, 3\)"):
        feature(np.ones(3), X)
    with pytest.raises(ValueError, match=r"Feature: inputs x ∈ R\^2 given as an array of shape \(5, 3\)"):
        feature(theta, np.ones((5, 3)))
    with pytest.raises(ValueError, match="the grid is 2D but θ has dimension 4"):
        energy.value(np.ones((4, 4)), Grid([(0, 1)] * 2, 4))
    with pytest.raises(ValueError, match="activation must be one of"):
        Feature.neuron("gelu", 2)
    with pytest.raises(ValueError, match="width must be finite and > 0"):
        Feature.gaussian(1, 0)


def test_batches_draw_every_data_point_uniformly_with_its_label():
    """SGD's batches: each drawn input comes with its own label, and each of 3 data points is
    drawn a third of the time (within 5σ of the binomial's 10 000 of 30 000)."""
    X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]])
    y = np.array([10.0, 20.0, 30.0])
    energy = NetworkRisk(Feature.fixed_output("tanh", 2), X, y)
    inputs, labels = energy.sample_batch(np.random.default_rng(0), 30000)
    index = np.array([np.flatnonzero((X == row).all(axis=1))[0] for row in inputs])
    np.testing.assert_array_equal(labels, y[index])
    counts = np.bincount(index, minlength=3)
    assert np.all(np.abs(counts - 10000) < 5 * np.sqrt(30000 * (1 / 3) * (2 / 3))), counts


def test_on_ranks_keeps_the_loss_the_weight_decay_and_the_sampler(rng):
    """``on_ranks(None)`` is the same risk (it catches on_ranks dropping the logistic loss)."""
    def sampler(generator, size):
        return np.ones((size, 2)), np.ones(size)

    X = rng.normal(size=(40, 2))
    risk = NetworkRisk(Feature.fixed_output("tanh", 2), X, np.sign(X[:, 0] + 0.1), loss="logistic",
                       weight_decay=0.1, sampler=sampler)
    same = risk.on_ranks(None)
    assert (same.loss.name, same.weight_decay, same.sampler) == ("logistic", 0.1, sampler)
    theta, weights = rng.normal(size=(7, 2)), np.full(7, 1 / 7)
    assert same.particle_energy(theta, weights) == risk.particle_energy(theta, weights)
    np.testing.assert_array_equal(same.particle_velocity(theta, weights), risk.particle_velocity(theta, weights))


def test_grid_and_particle_energies_agree_with_weight_decay(rng):
    """The grid energy with weight decay equals the particle energy of the measure
    Σ_cells ρ_c|cell| δ_(centre): λ∫|θ|²dμ weighs each |θ_j|² by w_j (it catches
    particle_energy summing |θ_j|² unweighted)."""
    feature = Feature.gaussian(1, 0.7)
    X = rng.normal(size=(30, 1))
    energy = NetworkRisk(feature, X, np.sin(X[:, 0]), weight_decay=0.05)
    grid = Grid([(-1, 1), (-2, 2)], (5, 8))
    rho = rng.random(grid.shape)
    theta, weights = grid.points.reshape(-1, 2), rho.ravel() * grid.cell_volume
    assert energy.value(rho, grid) == pytest.approx(energy.particle_energy(theta, weights), rel=1e-12)
