"""Classification losses of the lifted ReLU energy (logistic, exponential; λ = 0) and the
max-margin references (solver.convex.max_margin, solver.convex.kernel_max_margin): F' against
finite differences, the PDE's invariants, the refusals, the margins against brute force."""

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from conftest import assert_invariants

from solver import Grid, LiftedReluRisk, Species, solve
from solver.lift import ReluRegression, balanced_relu_init, circle_directions, relu_features

LOSSES = ["logistic", "exponential"]


def circle(cells):
    return Grid([[0.0, 2 * np.pi]], [cells], bc="periodic")


def labelled_data(rng, n=24):
    """Points on the unit circle labelled by the sign of a 4-neuron network (separable)."""
    X = circle_directions(rng.uniform(0, 2 * np.pi, n))
    teacher = balanced_relu_init(4, 2, rng)
    y = np.sign(relu_features(teacher[:, :-1], X) @ teacher[:, -1])
    return X, np.where(y == 0, 1.0, y)


@pytest.mark.parametrize("loss", LOSSES)
def test_risk_and_residuals_are_the_loss_and_its_derivative(rng, loss):
    """R(h) = Σ q_i ℓ(h_i, y_i) against the formula, r_i = ∂R/∂h_i against central differences."""
    X, y = labelled_data(rng)
    q = rng.uniform(0.5, 1.5, len(y)) / len(y)
    problem = ReluRegression.from_data(X, y, quadrature=q, loss=loss)
    h = rng.normal(size=len(y))
    loss_values = np.log1p(np.exp(-y * h)) if loss == "logistic" else np.exp(-y * h)
    assert problem.risk(h) == pytest.approx(float(q @ loss_values), rel=1e-14)
    eps, r = 1e-6, problem.coefficients(h)
    for i in [0, 5, 17]:
        e = np.zeros(len(y))
        e[i] = eps
        assert (problem.risk(h + e) - problem.risk(h - e)) / (2 * eps) == pytest.approx(r[i], rel=1e-7, abs=1e-14)
    assert np.all(np.sign(r) == -y)  # every point pulls h towards its label


@pytest.mark.parametrize("loss", LOSSES)
def test_first_variation_is_the_derivative_of_the_value(rng, loss):
    """(F(ρ + εe_k) − F(ρ − εe_k))/(2ε) = w_k F'_k for cells of either species."""
    X, y = labelled_data(rng)
    energy = LiftedReluRisk(X, y, loss=loss)
    grid = Species(circle(32), ("plus", "minus"))
    rho = rng.uniform(0.05, 1.0, size=grid.shape)
    xi = energy.first_variation(rho, grid)
    eps, w = 1e-5, 2 * np.pi / 32
    for index in [(0, 0), (0, 7), (1, 13), (1, 31)]:
        e = np.zeros(grid.shape)
        e[index] = eps
        numeric = (energy.value(rho + e, grid) - energy.value(rho - e, grid)) / (2 * eps)
        assert numeric == pytest.approx(w * xi[index], rel=1e-7, abs=1e-13)


def test_particles_and_the_lift_use_the_same_loss(rng):
    """The network's prediction and energy of balanced neurons equal the lifted measure's."""
    from solver.lift import lift

    X, y = labelled_data(rng)
    problem = ReluRegression.from_data(X, y, loss="logistic")
    theta = 1.7 * balanced_relu_init(9, 2, rng)
    weights = np.full(9, 1 / 9)
    measure = lift(theta, weights)
    assert problem.network_energy(theta, weights) == pytest.approx(problem.lifted_energy(measure), rel=1e-13)


@pytest.mark.parametrize("loss", LOSSES)
def test_pde_on_species_keeps_positivity_the_energy_and_the_mass_balance(rng, loss):
    """λ = 0: ρ ≥ 0, F not increasing, mass − mass₀ − source = 0 to round-off; the mass grows
    (the loss only falls by growing h) and the loss falls."""
    X, y = labelled_data(rng)
    energy = LiftedReluRisk(X, y, loss=loss)
    grid = Species(circle(64), ("plus", "minus"))
    rho0 = np.full(grid.shape, 0.5 / (2 * np.pi))
    solution = solve(energy, grid, rho0, (0.0, 50.0))
    assert_invariants(solution)
    mass, F = solution.history["mass"], solution.history["energy"]
    assert mass[-1] > 1.5 * mass[0]
    assert F[-1] < 0.5 * F[0]
    assert np.abs(solution.history["source"][-1]) > 0.4 * mass[0]


@pytest.mark.parametrize("loss", LOSSES)
def test_classification_losses_refuse_labels_outside_plus_minus_one(loss):
    X = circle_directions(np.linspace(0, 3, 4))
    with pytest.raises(ValueError, match=r"labels y_i in \{-1, 1\}.*y\[2\] = 0\.5"):
        LiftedReluRisk(X, [1, -1, 0.5, 1], loss=loss)
    with pytest.raises(ValueError, match="loss must be one of"):
        LiftedReluRisk(X, [1, -1, 1, 1], loss="hinge")
    with pytest.raises(ValueError, match="max_margin"):
        LiftedReluRisk(X, [1, -1, 1, 1], loss=loss).convex_reference(Species(circle(8), ("plus", "minus")))


def test_kernel_max_margin_against_brute_force():
    """K = 2 features, 3 points: γ*₂ = max over the ellipse π₁b₁² + π₂b₂² = 1 of the smallest
    margin, found by a sweep of the angle, then a finer one around its best (spacing 2e-9: the
    error at a kink of the min is below 1e-8 times the margins' slopes)."""
    from solver.convex import kernel_max_margin

    A = np.array([[2.0, 0.3], [0.5, 1.0], [1.0, 1.5]])
    y = np.array([1.0, -1.0, 1.0])
    pi = np.array([0.3, 0.7])
    solution = kernel_max_margin(A, y, weights=pi)

    def sweep(angle):
        b = np.stack([np.cos(angle) / np.sqrt(pi[0]), np.sin(angle) / np.sqrt(pi[1])])
        margins = np.min(y[:, None] * (A @ (pi[:, None] * b)), axis=0)
        return angle[np.argmax(margins)], np.max(margins)

    best, _ = sweep(np.linspace(0, 2 * np.pi, 100001))
    _, brute = sweep(np.linspace(best - 1e-4, best + 1e-4, 100001))
    assert solution.margin == pytest.approx(brute, abs=1e-9)
    assert solution.margin > 0.05
    assert pi @ solution.coefficients**2 == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(solution.margins, y * (A @ (pi * solution.coefficients)), rtol=1e-12)
    assert 0 <= solution.gap <= 1e-9 * solution.margin


def test_kernel_max_margin_is_below_the_f1_max_margin_and_beats_random_output_weights(rng):
    """γ*₂ ≤ γ*₁ on the same directions (Σπ|b| ≤ ‖b‖_L²(π)); no random b on the unit L²(π)
    sphere does better than γ*₂; the dual p sits on the support vectors (margin = γ*₂)."""
    from solver.convex import kernel_max_margin, max_margin

    X, y = labelled_data(rng, n=16)
    angles = 2 * np.pi * (np.arange(48) + 0.5) / 48
    A = relu_features(circle_directions(angles), X)
    f2, f1 = kernel_max_margin(A, y), max_margin(A, y)
    assert 0 < f2.margin < f1.margin
    for _ in range(200):
        b = rng.normal(size=48)
        b /= np.sqrt(np.mean(b**2))
        assert np.min(y * (A @ b) / 48) <= f2.margin + 1e-12
    support = f2.dual > 1e-6
    np.testing.assert_allclose(f2.margins[support], f2.margin, rtol=1e-6)


def test_nearest_point_finds_the_minimum_from_any_start(rng):
    """Wolfe's method (the end of kernel_max_margin's solve) from a single vertex (major
    cycles add the support) and from every vertex at once (minor cycles remove what does not
    belong) reaches the same p: optimal on the simplex, (Qp)_i ≥ pᵀQp (1 − 1e-12) for every
    i, with a support of few points, and the square of kernel_max_margin's margin."""
    from solver.convex import _nearest_point, kernel_max_margin

    X, y = labelled_data(rng, n=40)
    A = relu_features(circle_directions(2 * np.pi * (np.arange(64) + 0.5) / 64), X)
    Z = y[:, None] * A / 8.0  # π = 1/64: the rows in L²(π) coordinates
    Q = Z @ Z.T
    answers = [_nearest_point(Q, start, 1e-14) for start in (np.eye(40)[0], np.ones(40))]
    for p in answers:
        assert np.all(p >= 0) and np.sum(p) == pytest.approx(1.0, abs=1e-14)
        value = p @ Q @ p
        assert np.min(Q @ p) >= value * (1 - 1e-12)
        assert 2 <= np.count_nonzero(p) < 40 / 2
    assert answers[0] @ Q @ answers[0] == pytest.approx(answers[1] @ Q @ answers[1], rel=1e-13)
    np.testing.assert_allclose(answers[0], answers[1], atol=1e-10)
    assert kernel_max_margin(A, y).margin ** 2 == pytest.approx(answers[0] @ Q @ answers[0], rel=1e-12)


def test_kernel_max_margin_refuses_inseparable_data_and_bad_labels():
    from solver.convex import kernel_max_margin

    A = np.array([[1.0, 0.0], [0.5, 0.5], [0.0, 1.0], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"not separable by this kernel.*data point i = [13] .*points \[(1, 3|3, 1)\]"):
        kernel_max_margin(A, [1, 1, -1, -1])
    with pytest.raises(ValueError, match=r"labels must be in \{-1, 1\}"):
        kernel_max_margin(np.eye(2), [0, 1])


def test_pde_normalized_margin_reaches_and_keeps_ninety_percent_of_the_f1_max_margin():
    """The lifted PDE, logistic loss, λ = 0, on 64 cells, 16 points labelled by a teacher
    (the set-up of benchmarks/implicit_bias.py): min_i y_i h_i / |ν| ≥ 0.9 γ*₁ (the LP on the
    same cells) at every decade from t = 1e4 to 1e8 (measured 0.919 … 0.952), never above γ*₁
    (the LP maximizes over all ν on the cells), and the steps grow with t (≈ 120 per decade)."""
    from solver.convex import max_margin

    X = circle_directions(np.sort(np.random.default_rng(0).uniform(0, 2 * np.pi, 16)))
    h = relu_features(circle_directions([0.3, 1.5, 2.7, 4.2]), X) @ np.array([1.0, -1.0, 1.0, -0.6])
    y = np.where(h >= 0, 1.0, -1.0)
    energy = LiftedReluRisk(X, y, loss="logistic")
    grid = Species(circle(64), ("plus", "minus"))
    gamma1 = max_margin(energy.cell_features(grid)[0], y).margin
    times = np.logspace(0, 8, 9)
    solution = solve(energy, grid, np.full(grid.shape, 0.5 / (2 * np.pi)), (0.0, times[-1]), save_at=times)
    ratios = np.array([energy.margin(rho, grid) for rho in solution.rho]) / gamma1
    assert np.all(ratios[4:] >= 0.9), ratios
    assert np.all(ratios <= 1 + 1e-9), ratios
    assert solution.accepted < 2000
    assert_invariants(solution)


def xor_clusters():
    """The plane case of benchmarks/implicit_bias.py: 32 points of the XOR of 2×2 clusters in
    [−½, ½]² (labels drawn by seed 0)."""
    from solver.problems import cluster_classification

    rng = np.random.default_rng(0)
    return cluster_classification(32, 2, rng, rng.permutation([1.0, 1.0, -1.0, -1.0]))


def test_pde_on_the_sphere_mesh_with_a_bias_reaches_and_keeps_ninety_percent_of_the_f1_max_margin(fem):
    """2D inputs with a bias (x̃ = (u, 1)): ν± on Species(Mesh.sphere(0.4)) (101 vertices),
    logistic loss, λ = 0, the XOR clusters: min_i y_i h_i / |ν| ≥ 0.9 γ*₁ (the LP on the
    vertices) at every decade from t = 1e5 to 1e8 (measured 0.912 … 0.943), never above γ*₁,
    the steps growing with t (338 to t = 1e10); the invariants at every step."""
    from solver.convex import max_margin

    X, y = xor_clusters()
    energy = LiftedReluRisk(X, y, bias=True, loss="logistic")
    mesh = fem.Mesh.sphere(0.4)
    grid = Species(mesh, ("plus", "minus"))
    gamma1 = max_margin(energy.cell_features(grid)[0], y).margin
    times = np.logspace(0, 8, 9)
    rho0 = np.full(grid.shape, 0.5 / mesh.integrate(np.ones(mesh.shape)))
    solution = solve(energy, grid, rho0, (0.0, times[-1]), save_at=times)
    ratios = np.array([energy.margin(rho, grid) for rho in solution.rho]) / gamma1
    assert np.all(ratios[5:] >= 0.9), ratios
    assert np.all(ratios <= 1 + 1e-9), ratios
    assert solution.accepted < 600
    assert_invariants(solution)


def test_plane_benchmark_quick(fem, tmp_path):
    """benchmarks/implicit_bias.py --case plane on the 0.4 mesh to t = 1e8: the PDE above
    0.9 γ*₁ from its first decade there on (measured 0.943 at the end), output-layer training
    near γ*₂ (0.955) and far below γ*₁ in F1 norm (0.66), γ*₂ < γ*₁, gradient descent with
    m = 32 and 128 above 0.8 γ*₁ (0.91, 0.96), the F1 max margin on 20000 directions spread
    over more than 4 of them, and the three figures."""
    root = pathlib.Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "benchmarks" / "implicit_bias.py"), "--case", "plane",
                             "--quick", "--size", "0.4", "--t-end", "1e8", "--ms", "32", "128",
                             "--figures", str(tmp_path)], capture_output=True, text=True, cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("implicit bias on the plane") and any("PDE/γ1" in line for line in lines)
    data = json.loads(lines[-1])
    assert data["case"] == "plane" and data["directions"] == 101
    assert 0.9 <= data["pde_margin_ratio"] <= 1 + 1e-9
    assert data["pde_min_ratio_after_reaching_0.9"] >= 0.9
    assert 0.9 <= data["output_layer_margin_ratio"] <= 1 + 1e-9
    assert data["output_layer_f1_ratio"] < 0.8
    assert data["gamma2"] < data["gamma1"] <= data["gamma1_fine"] and data["gamma1_fine_support"] > 4
    assert set(data["gd_margin_ratio"]) == {"32", "128"}
    assert all(0.8 < value < 1.1 for value in data["gd_margin_ratio"].values())
    for name in ("implicit_bias_plane_predictors.png", "implicit_bias_plane_margins.png",
                 "implicit_bias_plane_margin_vs_m.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_benchmark_quick(tmp_path):
    """benchmarks/implicit_bias.py --quick: the table, the JSON line, the PDE above 0.9 γ*₁
    (measured 0.959), output-layer training near γ*₂ (0.975) and below γ*₁ in F1 norm
    (0.845), gradient descent per m, and the two figures."""
    root = pathlib.Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "benchmarks" / "implicit_bias.py"), "--quick",
                             "--figures", str(tmp_path)], capture_output=True, text=True, cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("implicit bias on the circle") and any("PDE/γ1" in line for line in lines)
    data = json.loads(lines[-1])
    assert 0.9 <= data["pde_margin_ratio"] <= 1 + 1e-9
    assert data["pde_min_ratio_after_reaching_0.9"] >= 0.9
    assert 0.9 <= data["output_layer_margin_ratio"] <= 1 + 1e-9
    assert data["output_layer_f1_ratio"] < 0.9
    assert data["gamma2"] < data["gamma1"]
    assert set(data["gd_margin_ratio"]) == {"8", "32", "128", "1024"}
    assert all(0.5 < value < 1.1 for value in data["gd_margin_ratio"].values())
    for name in ("implicit_bias_circle_predictors.png", "implicit_bias_circle_margins.png",
                 "implicit_bias_circle_margin_vs_m.png"):
        assert (tmp_path / name).stat().st_size > 0


def test_d15_benchmark_quick():
    """benchmarks/implicit_bias_d15.py --quick (growing steps to t = 1e4): both tables and the
    JSON line; training both layers gives a larger normalized margin than the output layer
    alone at m = 32 and 128 (measured 0.019, 0.021 against −0.0010, −0.0008), test errors are
    below chance on 4000 points, and at n = 128 both layers' error is below 0.4 and below the
    output layer's (measured 0.33 against 0.44; the constant classifier errs on 4/9)."""
    root = pathlib.Path(__file__).resolve().parents[1]
    result = subprocess.run([sys.executable, str(root / "benchmarks" / "implicit_bias_d15.py"), "--quick"],
                            capture_output=True, text=True, cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("implicit bias, d = 15") and any(line.startswith("test error") for line in lines)
    data = json.loads(lines[-1])
    assert set(data["test_error"]["both layers"]) == {"32", "64", "128"}
    for m in ("32", "128"):
        assert data["margin"]["both layers"][m] > 0.01 > data["margin"]["output layer"][m]
    assert all(0 <= error < 0.5 for kind in data["test_error"].values() for error in kind.values())
    assert data["test_error"]["both layers"]["128"] < min(0.4, data["test_error"]["output layer"]["128"])
