"""Energy terms: first variations against finite differences of the value, the FFT
convolution against a direct sum, sums of terms, particle velocities."""

import numpy as np
import pytest

from solver import Energy, Entropy, Grid, Interaction, PorousMedium, Potential, Sum


def quadratic(x):
    return 0.5 * np.sum(x**2, axis=-1) + np.sin(x[..., 0])


def quadratic_grad(x):
    g = np.array(x, dtype=float)
    g[..., 0] += np.cos(x[..., 0])
    return g


def gaussian_kernel(z):
    return np.exp(-np.sum(z**2, axis=-1)) - 0.3 * np.sum(z**2, axis=-1)


def energies():
    return [
        Entropy(0.7),
        PorousMedium(2),
        PorousMedium(3.5),
        Potential(quadratic),
        Interaction(gaussian_kernel),
        PorousMedium(2) + Potential(quadratic) + Interaction(gaussian_kernel) + Entropy(0.1),
    ]


@pytest.mark.parametrize("energy", energies(), ids=repr)
@pytest.mark.parametrize("bc", ["wall", "periodic"])
def test_first_variation_is_the_derivative_of_the_value(rng, energy, bc):
    """d/dε F(ρ + εφ) at 0 equals Σ F'(ρ) φ |cell| (central difference, ε = 1e-6)."""
    grid = Grid([(-1, 1.5), (-2, 1)], (9, 7), bc=bc)
    rho = 0.5 + rng.random(grid.shape)
    phi = rng.normal(size=grid.shape)
    eps = 1e-6
    numeric = (energy.value(rho + eps * phi, grid) - energy.value(rho - eps * phi, grid)) / (2 * eps)
    exact = grid.integrate(energy.first_variation(rho, grid) * phi)
    assert numeric == pytest.approx(exact, rel=1e-7, abs=1e-9)


@pytest.mark.parametrize("bc", [("wall", "wall"), ("periodic", "wall"), ("periodic", "periodic")])
def test_fft_convolution_matches_direct_sum(rng, bc):
    grid = Grid([(-1, 1), (0, 3)], (8, 11), bc=bc)
    rho = rng.random(grid.shape)
    x = grid.points.reshape(-1, 2)
    z = x[:, None, :] - x[None, :, :]
    lengths = grid.bounds[:, 1] - grid.bounds[:, 0]
    for axis, periodic in enumerate(grid.periodic):
        if periodic:  # nearest periodic image
            z[..., axis] -= lengths[axis] * np.round(z[..., axis] / lengths[axis])
    direct = (gaussian_kernel(z) @ rho.ravel()) * grid.cell_volume
    fft = Interaction(gaussian_kernel).first_variation(rho, grid)
    np.testing.assert_allclose(fft.ravel(), direct, rtol=1e-12, atol=1e-12)


def test_sum_adds_terms_and_flattens():
    a, b, c = Entropy(1), PorousMedium(2), Potential(quadratic)
    total = a + b + c
    assert isinstance(total, Sum) and total.terms == [a, b, c]
    grid = Grid([(0, 1)], 10)
    rho = np.linspace(0.1, 1, 10)
    assert total.value(rho, grid) == pytest.approx(sum(t.value(rho, grid) for t in (a, b, c)))
    np.testing.assert_allclose(total.first_variation(rho, grid), sum(t.first_variation(rho, grid) for t in (a, b, c)))
    assert total.max_diffusivity(rho, grid) == pytest.approx(1 + 2 * 1.0)
    with pytest.raises(TypeError):
        a + 1


def test_a_sum_is_local_or_distributed_if_all_its_terms_are():
    class Serial(Energy):  # a nonlocal term that runs in one process only
        local = False

    entropy, interaction = Entropy(1), Interaction(lambda z: np.sum(z**2, axis=-1))
    assert (entropy + PorousMedium(2)).local and (entropy + PorousMedium(2)).distributed
    assert not (entropy + interaction).local and (entropy + interaction).distributed
    assert not (entropy + Serial()).local and not (entropy + Serial()).distributed


def test_local_terms_by_formula():
    grid = Grid([(0, 1)], 4)
    rho = np.array([0.0, 0.5, 1.0, 2.0])
    assert Entropy(2).value(rho, grid) == pytest.approx(2 * 0.25 * (0.5 * np.log(0.5) + 2 * np.log(2)))
    np.testing.assert_allclose(PorousMedium(3).first_variation(rho, grid), 1.5 * rho**2)
    assert PorousMedium(3).max_diffusivity(rho, grid) == pytest.approx(3 * 4)


def test_potential_particle_velocity_is_minus_gradient(rng):
    theta = rng.normal(size=(5, 2))
    with_grad = Potential(quadratic, grad=quadratic_grad).particle_velocity(theta, np.full(5, 0.2))
    by_differences = Potential(quadratic).particle_velocity(theta, np.full(5, 0.2))
    np.testing.assert_allclose(with_grad, -quadratic_grad(theta))
    np.testing.assert_allclose(by_differences, with_grad, atol=1e-7)


def test_interaction_particle_velocity(rng):
    """−Σ_j w_j ∇W(θ_i − θ_j); for W = |z|²/2 it is −(θ_i − θ̄)."""
    theta = rng.normal(size=(6, 3))
    w = np.full(6, 1 / 6)
    energy = Interaction(lambda z: 0.5 * np.sum(z**2, axis=-1))
    np.testing.assert_allclose(energy.particle_velocity(theta, w), -(theta - theta.mean(axis=0)), atol=1e-7)
    exact = Interaction(gaussian_kernel, grad=lambda z: z * (-2 * np.exp(-np.sum(z**2, -1)) - 0.6)[..., None])
    np.testing.assert_allclose(
        Interaction(gaussian_kernel).particle_velocity(theta, w), exact.particle_velocity(theta, w), atol=1e-7
    )
    with pytest.raises(NotImplementedError, match="Entropy does not move particles"):
        Entropy(1).particle_velocity(theta, w)


def particle_terms():
    """(term, particle dimension) for every term that moves particles, and a sum."""
    from solver import BumpRisk, Feature, NetworkRisk, problems
    from solver.domains import Box

    data = np.random.default_rng(3)
    X = data.normal(size=(30, 2))
    network = NetworkRisk(Feature.neuron("tanh", 2), X, np.sin(X[:, 0]), weight_decay=0.1)
    exact_interaction = Interaction(gaussian_kernel,
                                    grad=lambda z: z * (-2 * np.exp(-np.sum(z**2, -1)) - 0.6)[..., None])
    return [
        (Potential(quadratic), 2),
        (Potential(quadratic, grad=quadratic_grad), 2),
        (Interaction(gaussian_kernel), 2),
        (exact_interaction, 2),
        (network, 3),
        (BumpRisk(problems.jmm_target, 0.3, Box([-1.0], [1.0])), 1),
        (Potential(quadratic, grad=quadratic_grad) + exact_interaction, 2),
    ]


@pytest.mark.parametrize("energy, dim", particle_terms(), ids=lambda p: repr(p) if not isinstance(p, int) else "")
def test_particle_velocity_is_minus_the_gradient_of_the_particle_energy(rng, energy, dim):
    """v_i = −∇θ_i F(μ_m) / w_i, by central differences of the particle energy (unequal weights)."""
    theta = rng.uniform(-0.6, 0.6, (6, dim))
    weights = rng.uniform(0.5, 1.5, 6)
    weights /= weights.sum()
    step = 1e-6
    gradient = np.empty_like(theta)
    for i, k in np.ndindex(*theta.shape):
        e = np.zeros_like(theta)
        e[i, k] = step
        gradient[i, k] = (energy.particle_energy(theta + e, weights)
                          - energy.particle_energy(theta - e, weights)) / (2 * step)
    np.testing.assert_allclose(energy.particle_velocity(theta, weights), -gradient / weights[:, None],
                               rtol=1e-5, atol=1e-6)


def test_a_sum_moves_and_weighs_particles_as_its_terms_add(rng):
    terms = [Potential(quadratic, grad=quadratic_grad), Interaction(gaussian_kernel), Entropy(0.3)]
    total = terms[0] + terms[1] + terms[2]
    theta, weights = rng.normal(size=(7, 2)), np.full(7, 1 / 7)
    np.testing.assert_allclose(total.particle_velocity(theta, weights),
                               terms[0].particle_velocity(theta, weights) + terms[1].particle_velocity(theta, weights))
    assert (terms[0] + terms[1]).particle_energy(theta, weights) == pytest.approx(
        terms[0].particle_energy(theta, weights) + terms[1].particle_energy(theta, weights), rel=1e-14)
    assert [term.particles for term in terms] == ["velocity", "velocity", "noise"] and terms[2].temperature == 0.3
    with pytest.raises(NotImplementedError, match="Entropy has no energy of a particle measure: on particles it is "
                                                  "Langevin noise at temperature 0.3"):
        total.particle_energy(theta, weights)


def test_particle_energies_by_formula(rng):
    theta, weights = rng.normal(size=(5, 2)), rng.random(5)
    W = lambda z: np.sum(z**2, axis=-1)  # noqa: E731
    pairs = sum(weights[i] * weights[j] * W(theta[i] - theta[j]) for i in range(5) for j in range(5))
    assert Interaction(W).particle_energy(theta, weights) == pytest.approx(0.5 * pairs, rel=1e-14)
    assert Potential(quadratic).particle_energy(theta, weights) == pytest.approx(weights @ quadratic(theta), rel=1e-14)


@pytest.mark.parametrize("method", ["particle_velocity", "particle_energy"])
def test_terms_without_a_particle_version_say_so(rng, method):
    from solver import BumpLimitRisk, problems
    from solver.domains import Box

    theta, weights = rng.normal(size=(3, 1)), np.full(3, 1 / 3)
    for term in (PorousMedium(2), BumpLimitRisk(problems.jmm_target, Box([-1.0], [1.0])),
                 Potential(quadratic) + PorousMedium(3)):
        with pytest.raises(NotImplementedError, match="PorousMedium|BumpLimitRisk") as error:
            getattr(term, method)(theta, weights)
        assert "it has no particle version (it needs a density)" in str(error.value)


@pytest.mark.parametrize("bc", [("wall", "wall"), ("periodic", "wall"), ("periodic", "periodic")])
def test_stencil_convolution_matches_direct_sum(rng, bc):
    """Σ_k κ_k v_(i−k) |cell|: zero beyond walls, wrapped around periodic axes (a stencil wider
    than the 4 cells of the first axis wraps more than once)."""
    grid = Grid([(-1, 1), (0, 3)], (4, 11), bc=bc)
    values, stencil = rng.random(grid.shape), rng.random((7, 3))
    expected = np.zeros(grid.shape)
    for i in np.ndindex(*grid.shape):
        for k in np.ndindex(*stencil.shape):
            j = [i[a] - (k[a] - stencil.shape[a] // 2) for a in range(2)]
            if all(p or 0 <= j[a] < grid.shape[a] for a, p in enumerate(grid.periodic)):
                expected[i] += stencil[k] * values[tuple(j[a] % grid.shape[a] for a in range(2))]
    for method in ("direct", "fft", "auto"):
        np.testing.assert_allclose(grid.stencil_convolution(values, stencil, method), expected * grid.cell_volume,
                                   rtol=1e-12)


@pytest.mark.parametrize("bc", ["wall", "periodic"])
def test_diffusion_matrix(bc):
    """Symmetric, constants in its kernel, and −(a u')' for a = 1 + sin(x)/4, u = cos x (u' = 0
    at the walls) to O(h²) (the wall cells to O(h))."""
    grid = Grid([(0, 2 * np.pi)], 200, bc=bc)
    x = grid.axes[0]
    A = grid.diffusion_matrix(1 + np.sin(x) / 4)
    assert abs(A - A.T).max() == 0 and np.abs(A @ np.ones(200)).max() < 1e-10
    error = A @ np.cos(x) - (np.cos(x) + np.sin(x) * np.cos(x) / 2)
    assert np.abs(error[1:-1]).max() < 1e-3 and np.abs(error).max() < (1e-3 if bc == "periodic" else 0.1)


def test_values_are_kept_per_discretization_and_go_with_it():
    """Alternating grids gives each its own V (not the last grid's), and a grid that is gone
    leaves nothing behind in the term."""
    import gc

    energy = Potential(quadratic)
    coarse, fine = Grid([(0, 1)], 4), Grid([(0, 1)], 8)
    for grid in (coarse, fine, coarse, fine):
        np.testing.assert_array_equal(energy.first_variation(np.ones(grid.shape), grid), quadratic(grid.points))
    assert energy.values_on(coarse) is energy.values_on(coarse)
    del coarse, grid
    gc.collect()
    assert list(energy._per_discretization["values_on"].keys()) == [fine]


def test_bump_risk_needs_no_check_first():
    """max_diffusivity and second_variation_diagonal get the grid: no state set by check()."""
    from solver import BumpRisk, problems
    from solver.domains import Box

    grid = Grid([(-1, 1)], 40)
    rho = np.linspace(0.5, 1.5, 40)
    fresh, checked = BumpRisk(problems.jmm_target, 0.2, Box([-1.0], [1.0])), BumpRisk(problems.jmm_target, 0.2,
                                                                                    Box([-1.0], [1.0]))
    checked.check(grid)
    stencil = checked.stencil(grid)
    stiffness = np.sum(stencil**2) * grid.cell_volume**2 / checked.volume  # ∂F'_j/∂ρ_j = |cell|² Σ κ² / |Ω|
    assert fresh.second_variation_diagonal(rho, grid) == pytest.approx(stiffness, rel=1e-14)
    assert fresh.max_diffusivity(rho, grid) == pytest.approx(1.5 * stiffness, rel=1e-14)


@pytest.mark.parametrize(
    "W, message",
    [
        (lambda z: z[..., 0], r"W must be even, W\(−z\) = W\(z\)"),
        (lambda z: z, r"W must map displacements of shape \(\.\.\., d\) to values of shape \(\.\.\.\): for "
         r"displacements of shape \(16, 1\) it gave \(16, 1\)"),
        (lambda z: 1.0, r"W must map .* it gave \(\)"),
        (lambda z: 1 / np.sum(z**2, axis=-1), "W is not finite at some displacement"),
    ],
)
def test_interaction_kernel_must_be_even_finite_and_of_the_displacements_shape(W, message):
    grid = Grid([(-1, 1)], 8)
    with pytest.raises(ValueError, match="Interaction: " + message), np.errstate(divide="ignore"):
        Interaction(W).check(grid)
