"""Sparse spike deconvolution (solver.energies.deconvolution): the features against the
Dirichlet kernel, F against Chizat's loss, F' as the derivative of the discrete F, the
reaction 4 against plain gradient descent on (z, r), the discrete BLASSO optimum, the PDE on
Chizat's three spikes (T²) and on five spikes on T¹, λ = 0, conic particle gradient descent with
m = 3, 4 and 100, the continuous optimum's bracket (slid atoms, dual bound), the particles
against the PDE's energy and against that optimum, the particle study's warning, and the
refusals."""

import numpy as np
import pytest
from conftest import assert_invariants

from solver import Grid, Species, SpikeDeconvolution, solve
from solver.conic import conic_gradient_descent
from solver.energies.deconvolution import TorusMeasure, dirichlet_kernel

CHIZAT_SPIKES = np.pi + np.array([[0.0, 0.0], [1.7, -0.3], [0.7, 1.3]])
CHIZAT_MASSES = np.array([1.1, 0.8, 1.0]) ** 2  # his r_obs, masses r|r|
SPIKES_1D = np.array([0.9, 2.0, 3.3, 4.6, 5.5])
MASSES_1D = np.array([0.8, 0.5, 1.0, 0.3, 0.7])


def torus(cells, dim=2):
    return Species(Grid([[0.0, 2 * np.pi]] * dim, [cells] * dim, bc="periodic"), ("plus", "minus"))


def chizat(penalty):
    return SpikeDeconvolution(CHIZAT_SPIKES, CHIZAT_MASSES, 2, penalty)


def uniform_start(grid, mass=0.25):
    """ν± uniform, each of total mass ``mass``."""
    return np.full(grid.shape, mass / (2 * np.pi) ** grid.dim)


def cells_from(points, spikes, h):
    """The periodic sup-norm distance of each point to each spike, in cells, shape (n, m0)."""
    difference = np.angle(np.exp(1j * (points[:, None, :] - spikes[None, :, :])))
    return np.max(np.abs(difference), axis=2) / h


@pytest.mark.parametrize("dim, cutoff", [(1, 3), (2, 2)])
def test_features_reproduce_the_dirichlet_kernel(rng, dim, cutoff):
    """ψ(z)·ψ(z') = D(z − z') = Π_a sin((f_c + ½)u_a)/sin(u_a/2), J = (2f_c + 1)^d features."""
    energy = SpikeDeconvolution(rng.uniform(0, 2 * np.pi, (2, dim)), [1.0, -0.5], cutoff)
    z, z2 = rng.uniform(0, 2 * np.pi, (7, dim)), rng.uniform(0, 2 * np.pi, (5, dim))
    u = z[:, None, :] - z2[None, :, :]
    closed = np.prod(np.sin((cutoff + 0.5) * u) / np.sin(u / 2), axis=-1)
    np.testing.assert_allclose(energy.features(z) @ energy.features(z2).T, closed, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dirichlet_kernel(u, cutoff), closed, rtol=1e-12, atol=1e-12)
    assert energy.features(z).shape == (7, (2 * cutoff + 1) ** dim)


def test_value_is_chizats_loss_and_the_grid_energy_of_its_cell_atoms(rng):
    """F(ν±) = ½(a − b)ᵀK(a − b) + λΣ|a| with K the Dirichlet kernel at the atoms' differences
    (Chizat's PGD_2D loss, same λ), and the grid's F is that of the atoms w_kρ±_k at the centres."""
    energy = chizat(1.0)
    m = 6
    measure = TorusMeasure(rng.uniform(0, 2 * np.pi, (m, 2)), rng.uniform(0.1, 1, m), np.array([1, -1] * 3, float))
    a, b = measure.signs * measure.masses, CHIZAT_MASSES
    K = dirichlet_kernel(measure.positions[:, None] - measure.positions[None], 2)
    Kxy = dirichlet_kernel(measure.positions[:, None] - CHIZAT_SPIKES[None], 2)
    Kyy = dirichlet_kernel(CHIZAT_SPIKES[:, None] - CHIZAT_SPIKES[None], 2)
    loss = (a @ K @ a + b @ Kyy @ b - 2 * a @ Kxy @ b) / 2 + 1.0 * np.sum(np.abs(a))
    assert energy.lifted_energy(measure) == pytest.approx(loss, rel=1e-12)

    grid = torus(6)
    rho = rng.uniform(0, 1, grid.shape)
    points, w = grid.base.points.reshape(-1, 2), grid.base.weights.reshape(-1)
    atoms = TorusMeasure(np.concatenate([points, points]), (rho.reshape(2, -1) * w).ravel(), np.repeat([1.0, -1], 36))
    assert energy.value(rho, grid) == pytest.approx(energy.lifted_energy(atoms), rel=1e-12)
    xi, _ = energy.conic_gradient(atoms)
    np.testing.assert_allclose(energy.first_variation(rho, grid).ravel(), xi, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("penalty", [0.0, 0.7])
def test_first_variation_is_the_derivative_of_the_value(rng, penalty):
    """(F(ρ + εe_k) − F(ρ − εe_k))/(2ε) = w_k F'_k (F is quadratic: exact to round-off)."""
    energy = chizat(penalty)
    grid = torus(8)
    rho = rng.uniform(0.05, 1, grid.shape)
    xi, w = energy.first_variation(rho, grid), (2 * np.pi / 8) ** 2
    for index in [(0, 0, 0), (0, 3, 5), (1, 7, 2), (1, 4, 4)]:
        e = np.zeros(grid.shape)
        e[index] = 1e-3
        numeric = (energy.value(rho + e, grid) - energy.value(rho - e, grid)) / 2e-3
        assert numeric == pytest.approx(w * xi[index], rel=1e-8, abs=1e-12)


def test_plain_gradient_descent_on_particles_has_reaction_four(rng):
    """Particles θ = (z, r), weight ω, mass ωr|r|: particle_velocity is −(1/ω)∇_θ of the particle
    energy (central differences), each particle's mass m = ωr² changes at dm/dt = −4F'±(z)m (the
    energy's reaction, F' from the lift's conic_gradient), and dz/dt = −r²∇F'±(z)."""
    energy = chizat(0.5)
    m = 5
    theta = np.concatenate([rng.uniform(0, 2 * np.pi, (m, 2)), rng.normal(size=(m, 1))], axis=1)
    weights = np.full(m, 1 / m)
    velocity = energy.particle_velocity(theta, weights)
    for j in range(m):
        for i in range(3):
            e = np.zeros_like(theta)
            e[j, i] = 1e-5
            numeric = (energy.particle_energy(theta + e, weights) - energy.particle_energy(theta - e, weights)) / 2e-5
            assert -numeric / weights[j] == pytest.approx(velocity[j, i], rel=1e-6, abs=1e-8)
    measure = energy.lift(theta, weights)
    xi, gradient = energy.conic_gradient(measure)
    r = theta[:, -1]
    np.testing.assert_allclose(2 * weights * r * velocity[:, -1], -energy.reaction * xi * measure.masses, rtol=1e-12)
    np.testing.assert_allclose(velocity[:, :2], -(r**2)[:, None] * gradient, rtol=1e-12, atol=1e-14)
    assert energy.reaction == 4.0 and energy.species == ("plus", "minus") and energy.local is False
    assert energy.particle_energy(theta, weights) == pytest.approx(energy.lifted_energy(measure), rel=1e-13)


def test_particle_energy_is_the_pde_energy_of_the_empirical_measure(rng):
    """Particles θ_j = (z_j, r_j) at cell centres (two sharing a cell, signs mixed, weights ω_j):
    their energy ½|Σ_j ω_j r_j|r_j| ψ(z_j) − y|² + λΣ_j ω_j r_j² is the PDE's discrete F of the
    densities ρ±_k = Σ_(j in cell k, sign ±) ω_j r_j² / w_k, and the PDE's F'± at those cells is
    the atoms' F'_j; :meth:`cell_atoms` gives those densities back as the same atoms' energy."""
    energy, grid = chizat(0.7), torus(8)
    points, w = grid.base.points.reshape(-1, 2), grid.base.weights.reshape(-1)
    cells = np.array([3, 17, 17, 40, 63])
    theta = np.column_stack([points[cells] + 2 * np.pi * np.array([[0, 0], [1, 0], [0, 0], [0, -1], [0, 0]]),
                             [0.8, -1.3, 0.4, 1.1, -0.6]])
    weights = rng.uniform(0.1, 1.0, len(cells))
    rho = np.zeros((2, len(w)))
    for cell, r, omega in zip(cells, theta[:, -1], weights):
        rho[0 if r > 0 else 1, cell] += omega * r**2 / w[cell]
    rho = rho.reshape(grid.shape)
    assert energy.particle_energy(theta, weights) == pytest.approx(energy.value(rho, grid), rel=1e-12)
    measure = energy.lift(theta, weights)
    xi, _ = energy.conic_gradient(measure)
    species = np.where(theta[:, -1] > 0, 0, 1)
    np.testing.assert_allclose(energy.first_variation(rho, grid).reshape(2, -1)[species, cells], xi, rtol=1e-12)
    assert energy.lifted_energy(energy.cell_atoms(rho, grid)) == pytest.approx(energy.value(rho, grid), rel=1e-12)


def test_conic_gradient_is_the_derivative_of_the_atoms_energy(rng):
    """∂F/∂m_j = F'_j and ∂F/∂z_j = m_j∇F'_j (central differences of lifted_energy), which the
    conic step and the sliding of the continuous reference use."""
    energy = chizat(0.5)
    measure = TorusMeasure(rng.uniform(0, 2 * np.pi, (4, 2)), rng.uniform(0.2, 1.0, 4), np.array([1.0, -1, 1, -1]))
    xi, gradient = energy.conic_gradient(measure)
    for j in range(4):
        e = np.zeros(4)
        e[j] = 1e-6
        numeric = (energy.lifted_energy(measure.moved(measure.positions, measure.masses + e))
                   - energy.lifted_energy(measure.moved(measure.positions, measure.masses - e))) / 2e-6
        assert numeric == pytest.approx(xi[j], rel=1e-6, abs=1e-8)
        for axis in range(2):
            shift = np.zeros((4, 2))
            shift[j, axis] = 1e-6
            numeric = (energy.lifted_energy(measure.moved(measure.positions + shift, measure.masses))
                       - energy.lifted_energy(measure.moved(measure.positions - shift, measure.masses))) / 2e-6
            assert numeric == pytest.approx(measure.masses[j] * gradient[j, axis], rel=1e-6, abs=1e-8)


def test_plain_and_conic_descent_reach_the_continuous_optimum_with_three_and_four_particles():
    """Plain gradient descent on θ = (z, r) (explicit Euler through solver.particles.simulate,
    weights 1/m) and conic GD, λ = 1: from the three true spikes with their masses (m = 3) and
    from Chizat's four positions with mass ¼ (m = 4), both end at the lower end of the
    continuous reference (measured 4e-15 relative for plain GD, m = 3 at t = 10 and m = 4 at
    t = 30; conic GD 4e-15 and 1e-11). Plain GD's positions move at r² times conic GD's speed, so
    the paths differ; the optimum they reach does not."""
    from solver.particles import simulate

    energy = chizat(1.0)
    optimum = energy.continuous_reference().lower
    starts = {3: (CHIZAT_SPIKES, CHIZAT_MASSES, 10.0),
              4: (np.pi + np.array([[0.5, -0.5], [2.1, -0.7], [0.3, 1.8], [0.5, 1.5]]), np.full(4, 0.25 / 4), 30.0)}
    for m, (positions, masses, t_end) in starts.items():
        weights = np.full(m, 1.0 / m)
        theta = np.column_stack([positions, np.sqrt(masses / weights)])
        plain = simulate(energy, theta, (0.0, t_end), step=0.005, progress=False).theta[-1]
        conic = conic_gradient_descent(energy, energy.lift(theta, weights), 0.01, 3000).energies[-1]
        for value in (energy.particle_energy(plain, weights), conic):
            assert 0 <= (value - optimum) / optimum < 1e-9, (m, value, optimum)
        errors, near = energy.spike_errors(energy.lift(plain, weights), 2 * np.pi / 32)
        assert np.all(errors < 0.5) and np.all(near > 0.3), (errors, near)


def test_the_particle_study_warns_when_a_step_lets_the_energy_rise():
    """Conic GD at η = 0.02 from the preset's m = 10 sample oscillates (F measured 31.8, 29.6, 42.0
    at t = 0, 1, 2): the study warns and names the method and m; at η = 0.002 it does not, and its
    rows measure the excess over F_c, the continuous optimum's lower bound (below the 8² cells'
    optimum F*), relative to the PDE's start: e = (F − F_c)/(F(ν0) − F_c)."""
    import warnings

    from solver import problems
    from solver.compare import deconvolution_study

    problem = problems.get("deconvolution-2d", cells=8)
    with pytest.warns(RuntimeWarning, match=r"energy of conic \(m = 10, seed 0\) rose .* step 0.02 is too large"):
        deconvolution_study(problem, [10], np.linspace(0.0, 2.0, 3), [0], 0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = deconvolution_study(problem, [10, 6], np.linspace(0.0, 0.2, 3), [0], 0.002)
    assert result["ms"] == [6, 10]  # in increasing order: the figures take the first and the last
    f_c, start = result["f_continuous"], problem.energy.value(problem.rho0, problem.grid)
    assert f_c < result["f_star"] and result["pde_excess"][0] == pytest.approx(1.0, rel=1e-14)
    for row in result["rows"]:
        assert row["excess"] == pytest.approx((row["energy"] - f_c) / (start - f_c), rel=1e-14)


def test_spike_errors_measure_the_atoms_near_each_spike_of_its_sign():
    """An atom 0.4 cells off each spike (sup norm), one of the wrong sign on a spike and one far:
    errors 0.4 cells, masses those of the near atoms of the right sign; no atom near: ∞. A negative
    spike next to z = 0: its atoms across the cut count, mass-weighted, and a positive atom does not."""
    energy, h = chizat(1.0), 0.2
    offset = np.array([0.4 * h, -0.1 * h])
    measure = TorusMeasure(np.concatenate([CHIZAT_SPIKES + offset, CHIZAT_SPIKES[:1], [[0.1, 0.1]]]),
                           np.array([1.0, 2.0, 3.0, 5.0, 7.0]), np.array([1.0, 1, 1, -1, 1]))
    errors, masses = energy.spike_errors(measure, h)
    np.testing.assert_allclose(errors, 0.4, rtol=1e-12)
    np.testing.assert_array_equal(masses, [1.0, 2.0, 3.0])
    errors, masses = energy.spike_errors(measure.moved(measure.positions + 1.0, measure.masses), h)
    assert np.all(np.isinf(errors)) and np.all(masses == 0)
    # a negative spike at z = 0.05 on T¹: atoms of its sign 0.1 either side of it across z = 0 (masses
    # 1 and 3: mean offset 0.05, a quarter cell) and a positive atom on it, which does not count
    energy = SpikeDeconvolution([0.05, 3.0], [-1.0, 1.0], 2)
    measure = TorusMeasure(np.array([[2 * np.pi - 0.05], [0.15], [0.05]]), np.array([1.0, 3.0, 10.0]),
                           np.array([-1.0, -1, 1]))
    errors, masses = energy.spike_errors(measure, h)
    assert errors[0] == pytest.approx(0.25, rel=1e-12) and masses[0] == 4.0 and np.isinf(errors[1])


@pytest.mark.parametrize("penalty", [0.0, 1.0])
def test_convex_reference_is_the_minimum_of_the_discrete_energy(rng, penalty):
    """F* = value(ρ*), KKT ≤ 1e-10, F above F* at random densities and on steps from ρ* that keep
    ρ ≥ 0; the same LASSO in the density variables (features Ψ times the cell volumes, as scipy's
    bounded least squares sees it for λ = 0) has the same minimum."""
    from scipy.optimize import lsq_linear

    energy = chizat(penalty)
    grid = torus(12)
    reference = energy.convex_reference(grid)
    assert reference.minimum.kkt_residual <= 1e-10 and reference.rho.min() >= 0
    assert energy.value(reference.rho, grid) == pytest.approx(reference.value, rel=1e-12, abs=1e-14)
    for _ in range(3):
        assert energy.value(rng.uniform(0, 0.1, grid.shape), grid) > reference.value
        assert energy.value(reference.rho + rng.uniform(0, 1e-3, grid.shape), grid) >= reference.value - 1e-13
    Psi, w = energy.cell_features(grid)
    if penalty == 0:
        features = np.concatenate([Psi * w, -Psi * w], axis=1)
        rho = lsq_linear(features, energy.observations, bounds=(0, np.inf), tol=1e-14).x
        assert 0.5 * np.sum((features @ rho - energy.observations) ** 2) <= 1e-12 and reference.value <= 1e-12
    else:
        assert reference.value > penalty * 0.5 * np.sum(CHIZAT_MASSES)  # the shrinkage costs something


@pytest.mark.parametrize("penalty", [1.0, 4.0])
def test_pde_on_the_three_spikes_reaches_the_discrete_blasso_optimum(penalty):
    """Chizat's 2D set-up on 32² cells from uniform ν± (mass ¼ each) to t = 30 (his 3000 steps
    of 0.01): every step keeps ρ ≥ 0, F non-increasing and the mass balance with the reaction's
    source; (F − F*)/F* measured 2.6e-8 (λ = 1) and 7.0e-8 (λ = 4) at t = 30; ν+ ends within
    one cell of the true spikes (all but 2e-7 of its mass on the 3×3 blocks of cells around
    them), each spike's block holding the mass the discrete optimum puts there (to 8.7e-6 and
    1.6e-6; the optimum's own are the spikes' masses shrunk by the penalty: 1.17, 0.58, 0.94
    and 0.99, 0.40, 0.80 for 1.21, 0.64, 1), and ν− vanishes (< 1e-20)."""
    energy = chizat(penalty)
    grid = torus(32)
    reference = energy.convex_reference(grid)
    rho0 = uniform_start(grid)
    times = [1.0, 3.0, 10.0, 30.0]
    solution = solve(energy, grid, rho0, (0.0, times[-1]), save_at=times)
    assert_invariants(solution)
    assert np.max(np.abs(solution.history["source"])) > 1.0  # the reaction moved mass
    values = np.array([energy.value(rho, grid) for rho in solution.rho])
    assert np.all(values >= reference.value - 1e-12) and np.all(np.diff(values) < 0), values
    assert (values[-1] - reference.value) / reference.value < 1e-6, values
    h = 2 * np.pi / 32
    plus, minus = solution.rho[-1] * grid.base.weights
    distance = cells_from(grid.base.points.reshape(-1, 2), CHIZAT_SPIKES, h)
    near = distance < 1.5
    assert plus.ravel()[near.any(axis=1)].sum() > (1 - 1e-6) * plus.sum()
    optimum = reference.rho[0] * grid.base.weights
    block_masses = np.array([[masses.ravel()[near[:, k]].sum() for k in range(3)] for masses in (plus, optimum)])
    np.testing.assert_allclose(*block_masses, rtol=0, atol=3e-5)
    assert np.all(block_masses[1] < CHIZAT_MASSES) and np.all(block_masses[1] > CHIZAT_MASSES - 0.08 * penalty)
    assert minus.sum() < 1e-20


def test_pde_follows_conic_particle_gradient_descent_as_the_cells_shrink():
    """The PDE (reaction 4, transport 1) and conic GD (α = 4, β = 1, η = 0.001) from atoms at
    the cell centres carrying the same start are the same flow: the relative energy gap at
    t = 0.5 falls with h (measured 3.9 %, 0.98 %, 0.27 % on 16², 32², 64² cells). With the
    reaction 2 of the ReLU lift in the conic run the gap on 32² is 1.9 % instead."""
    gaps = {}
    for cells in (16, 32):
        energy, grid = chizat(1.0), torus(cells)
        rho0 = uniform_start(grid)
        pde = solve(energy, grid, rho0, (0.0, 0.5))
        points, w = grid.base.points.reshape(-1, 2), grid.base.weights.reshape(-1)
        atoms = TorusMeasure(np.concatenate([points, points]), (rho0.reshape(2, -1) * w).ravel(),
                             np.repeat([1.0, -1.0], len(w)))
        conic = conic_gradient_descent(energy, atoms, 0.001, 500, reaction=energy.reaction).energies[-1]
        gaps[cells] = abs(energy.value(pde.rho[-1], grid) - conic) / conic
    assert gaps[32] < 0.015 and gaps[32] < gaps[16] / 3, gaps


def test_conic_descent_defaults_to_the_problems_own_reaction():
    """Without ``reaction`` conic gradient descent on deconvolution runs α = 4 (the energy's
    reaction, the PDE's β), not the 2 of the ReLU lift: the default run is the α = 4 run to
    the bit and differs from the α = 2 one."""
    energy = chizat(1.0)
    positions = np.pi + np.array([[0.5, -0.5], [2.1, -0.7], [0.3, 1.8], [0.5, 1.5]])
    start = TorusMeasure(positions, np.full(4, 0.25 / 4), np.ones(4))
    default = conic_gradient_descent(energy, start, 0.01, 50).energies
    assert energy.reaction == 4.0
    np.testing.assert_array_equal(default, conic_gradient_descent(energy, start, 0.01, 50, reaction=4.0).energies)
    assert abs(default[-1] - conic_gradient_descent(energy, start, 0.01, 50, reaction=2.0).energies[-1]) \
        > 1e-3 * default[-1]


def test_pde_runs_on_at_the_optimum_without_the_step_collapsing():
    """24² cells, λ = 1, to t = 100: at the optimum ξ = 0 on the support and ρ ≈ 0 off it, so
    Σ|ρξ|w → 0 while F ≈ 2.8 keeps its round-off; the energy test's allowance of a few ulps of
    F (timeloop.energy_tolerance) keeps steps accepted (without it the step fell below its floor
    at t = 61.4 after 75 605 steps; now 5945 steps, F − F* = 4e-15, F rising by 3e-16 of F at
    worst)."""
    energy = chizat(1.0)
    grid = torus(24)
    solution = solve(energy, grid, uniform_start(grid), (0.0, 100.0))
    assert_invariants(solution)
    assert solution.accepted < 20_000
    assert energy.value(solution.rho[-1], grid) - energy.convex_reference(grid).value < 1e-12


def test_pde_in_1d_reaches_the_discrete_blasso_optimum():
    """T¹, f_c = 8 and λ = 0.3 (Chizat's 1D kernel and λ), five spikes, 128 cells, t = 30:
    (F − F*)/F* measured 3.2e-10; all but 1e-9 of ν+ within one cell of the spikes."""
    energy = SpikeDeconvolution(SPIKES_1D, MASSES_1D, 8, 0.3)
    grid = torus(128, dim=1)
    reference = energy.convex_reference(grid)
    solution = solve(energy, grid, uniform_start(grid), (0.0, 30.0), save_at=[10.0, 30.0])
    assert_invariants(solution)
    value = energy.value(solution.rho[-1], grid)
    assert 0 <= (value - reference.value) / reference.value < 1e-6
    plus = (solution.rho[-1] * grid.base.weights)[0]
    near = cells_from(grid.base.points.reshape(-1, 1), SPIKES_1D[:, None], 2 * np.pi / 128) < 1.5
    assert plus[near.any(axis=1)].sum() > (1 - 1e-6) * plus.sum()
    assert np.all([plus[near[:, k]].sum() > 0.5 * MASSES_1D[k] for k in range(5)])


def test_conic_particle_gradient_descent_with_3_4_and_100_atoms_reaches_one_energy():
    """Chizat's starts (m = 100: a 10×10 grid; m = 3, 4: his positions; total mass ¼), α = 4,
    β = 1 (his α_C = β_C), η = 0.01, 3000 iterations, λ = 1: energies non-increasing, the three
    final energies equal to 1e-8 relative (measured 3e-11), below the 32²-cell optimum by the
    discretization's 0.45 % (measured)."""
    energy = chizat(1.0)
    ax = np.linspace(np.pi / 10, 2 * np.pi - np.pi / 10, 10)
    starts = [np.stack(np.meshgrid(ax, ax, indexing="ij"), -1).reshape(-1, 2),
              np.pi + np.array([[0.5, -0.5], [2.1, -0.7], [0.3, 1.8], [0.5, 1.5]]),
              np.pi + np.array([[0.5, -0.5], [2.1, -0.7], [0.3, 1.8]])]
    finals = []
    for positions in starts:
        m = len(positions)
        run = conic_gradient_descent(energy, TorusMeasure(np.mod(positions, 2 * np.pi), np.full(m, 0.25 / m),
                                                          np.ones(m)), 0.01, 3000, reaction=4.0)
        assert np.all(np.diff(run.energies) <= 1e-12 * run.energies[0])
        finals.append(run.energies[-1])
    assert np.ptp(finals) < 1e-8 * finals[0], finals
    grid_optimum = energy.convex_reference(torus(32)).value
    assert 0 < (grid_optimum - finals[0]) / grid_optimum < 0.01, (finals, grid_optimum)


def test_at_zero_penalty_the_pde_and_the_references_reach_zero_with_different_measures():
    """λ = 0 (the first of Chizat's λ ∈ {0, 1, 4}): y = Φμ* and the 2·16² cells' masses span the
    J = 25 features, so the discrete optimum is F* = 0 (measured 8e-30) and so is the continuous
    one (the dual bound is D(0) = 0). The PDE from uniform ν± reaches it (F measured 6e-12 at
    t = 3, 1e-24 at t = 30, from F₀ = 30.2), conic GD with Chizat's m = 3 too (1.3e-28), but
    the minimizer is not unique: the PDE keeps mass on every cell (the reaction only scales it)
    with |ν+| + |ν−| = 3.53, the reference's basic solution has at most 25 atoms and mass 4.20,
    and neither is μ* (mass 2.85). So the energy is tested here, not the measure."""
    energy = chizat(0.0)
    grid = torus(16)
    reference = energy.convex_reference(grid)
    assert reference.value < 1e-24 and energy.continuous_reference().lower == 0.0
    rho0 = uniform_start(grid)
    solution = solve(energy, grid, rho0, (0.0, 30.0), save_at=[3.0, 30.0])
    assert_invariants(solution)
    values = [energy.value(rho, grid) for rho in solution.rho]
    assert values[0] < 1e-9 * energy.value(rho0, grid) and values[-1] < 1e-18, values
    np.testing.assert_allclose(energy.prediction(solution.rho[-1], grid), energy.observations, atol=1e-9)
    pde_masses, reference_masses = (energy.masses(rho, grid) for rho in (solution.rho[-1], reference.rho))
    assert np.all(pde_masses > 0) and np.count_nonzero(reference_masses) <= 25
    assert abs(pde_masses.sum() - reference_masses.sum()) > 0.1 and np.abs(pde_masses - reference_masses).sum() > 1
    positions = np.pi + np.array([[0.5, -0.5], [2.1, -0.7], [0.3, 1.8]])
    conic = conic_gradient_descent(energy, TorusMeasure(positions, np.full(3, 0.25 / 3), np.ones(3)), 0.01, 3000)
    assert conic.energies[-1] < 1e-24


@pytest.mark.parametrize("penalty", [1.0, 4.0])
def test_continuous_reference_brackets_the_optimum_that_conic_descent_reaches(penalty):
    """The continuous BLASSO minimum, independently of any particle run: the discrete BLASSO on
    64² cells, its clusters merged and slid (L-BFGS-B, then Newton) give an upper bound; the
    dual point p = y − Φμ̂ scaled to ‖Φ*p‖_∞ ≤ λ a lower bound. Measured: the bracket is 4e-15
    (λ = 1) and 7e-16 (λ = 4) wide, ‖Φ*p‖_∞ = λ to 4e-15; the certified lower bound (no search,
    Bernstein on a 2048² grid) sits 1.8e-5 below. It is below every discrete optimum (32² cells:
    0.45 % at λ = 1); conic GD from Chizat's m = 3 start ends inside it to 1e-9 (measured
    equal to the upper bound to 16 digits), and the slid atoms are within 0.1 of the spikes."""
    energy = chizat(penalty)
    reference = energy.continuous_reference()
    assert reference.certified_lower <= reference.lower <= reference.upper
    assert reference.upper - reference.lower < 1e-12 * reference.upper
    assert reference.lower - reference.certified_lower < 1e-4 * reference.upper
    assert reference.sup_correlation == pytest.approx(penalty, rel=1e-12)
    assert energy.convex_reference(torus(32)).value > reference.upper * (1 + 1e-3)
    positions = np.pi + np.array([[0.5, -0.5], [2.1, -0.7], [0.3, 1.8]])
    conic = conic_gradient_descent(energy, TorusMeasure(positions, np.full(3, 0.25 / 3), np.ones(3)), 0.01, 3000)
    assert 0 <= (conic.energies[-1] - reference.lower) / reference.lower < 1e-9
    distance = cells_from(reference.measure.positions, CHIZAT_SPIKES, 1.0)
    assert len(reference.measure.masses) == 3 and np.all(distance.min(axis=0) < 0.1), distance
    # the dual bound is a lower bound whatever the residual: here one of a poor measure
    poor = TorusMeasure(CHIZAT_SPIKES + 0.2, CHIZAT_MASSES, np.ones(3))
    residual = energy.observations - energy.features(poor.positions).T @ poor.masses
    assert energy.dual_value(residual, energy.sup_correlation(residual, 512)[1]) < reference.lower



def test_dual_value_is_the_best_bound_on_the_ray_of_any_residual():
    """Residuals far from the optimum, p = y − Φ(cμ*) = (1 − c)y, where s* = ⟨y, p⟩/|p|² = 1/(1 − c)
    is not the end of the feasible segment s ∈ [0, min(1, λ/‖Φ*p‖_∞)]: c = 3 (s* = −½ at λ = 1)
    and c = −1 (s* = ½ at λ = 100, where μ = 0 is optimal with F = ½|y|²). D is the maximum of
    s⟨y, p⟩ − s²|p|²/2 on that segment (0 and ½|y|² = 30.25; the end s = min(1, λ/sup) gave −2.031,
    with the certified sup −2.029, above it, and 0), so it is never negative and never larger for a
    larger sup: the certified bound stays below the searched one."""
    for penalty, c in ((1.0, 3.0), (100.0, -1.0)):
        energy = chizat(penalty)
        y = energy.observations
        residual = (1 - c) * y
        sup, certified = energy.sup_correlation(residual, 256)
        scales = np.linspace(0.0, min(1.0, penalty / sup), 10001)
        best = np.max(scales * (y @ residual) - 0.5 * scales**2 * (residual @ residual))
        assert energy.dual_value(residual, sup) == pytest.approx(best, rel=1e-12, abs=1e-12)
        assert 0.0 <= energy.dual_value(residual, certified) <= energy.dual_value(residual, sup)
    assert energy.dual_value(residual, sup) == pytest.approx(0.5 * y @ y, rel=1e-14)


def test_continuous_reference_in_1d():
    """T¹, f_c = 8, λ = 0.3: the bracket is 8e-15 wide (measured), the certified bound 7e-8 below."""
    energy = SpikeDeconvolution(SPIKES_1D, MASSES_1D, 8, 0.3)
    reference = energy.continuous_reference()
    assert reference.upper - reference.lower < 1e-12 * reference.upper
    assert 0 <= reference.lower - reference.certified_lower < 1e-6 * reference.upper
    assert energy.convex_reference(torus(128, dim=1)).value > reference.upper


# bad input ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cutoff", [0, -1, 0.5, 1.5, True])
def test_refuses_a_frequency_cutoff_below_one_or_not_an_integer(cutoff):
    with pytest.raises(ValueError, match=r"cut-off f_c must be an integer >= 1"):
        SpikeDeconvolution(CHIZAT_SPIKES, CHIZAT_MASSES, cutoff)


@pytest.mark.parametrize("bad", [(1, 0, 6.5), (2, 1, -0.1)])
def test_refuses_spikes_outside_the_torus(bad):
    index, axis, value = bad
    spikes = CHIZAT_SPIKES.copy()
    spikes[index, axis] = value
    with pytest.raises(ValueError, match=rf"spike {index} at .* is outside the torus \[0, 2π\]\^2"):
        SpikeDeconvolution(spikes, CHIZAT_MASSES, 2)
    with pytest.raises(ValueError, match=r"spike 0 .* outside the torus \[0, 2π\]\^1"):
        SpikeDeconvolution([7.0, 1.0], [1.0, 1.0], 2)


def test_continuous_reference_refuses_a_search_grid_that_aliases_the_frequencies_and_bad_sizes():
    with pytest.raises(ValueError, match=r"samples >= 4 d f_c = 16 per axis, got 15"):
        chizat(1.0).continuous_reference(cells=16, samples=15)
    for cells in (0, -3, 8.5, True):
        with pytest.raises(ValueError, match=rf"cells must be an integer >= 1, got {cells!r}"):
            chizat(1.0).continuous_reference(cells=cells)
    with pytest.raises(ValueError, match=r"samples must be an integer, got 2048.5"):
        chizat(1.0).continuous_reference(samples=2048.5)


def test_refuses_spikes_and_weights_that_are_not_finite_or_do_not_match():
    with pytest.raises(ValueError, match="spikes and weights must be finite"):
        SpikeDeconvolution([[np.nan, 1.0]], [1.0], 2)
    with pytest.raises(ValueError, match="spikes and weights must be finite"):
        SpikeDeconvolution([1.0, 2.0], [1.0, np.inf], 2)
    with pytest.raises(ValueError, match=r"SpikeDeconvolution: weights of shape \(2,\) for 3 particles"):
        SpikeDeconvolution(CHIZAT_SPIKES, CHIZAT_MASSES[:2], 2)
    with pytest.raises(ValueError, match="d = 1 or 2"):
        SpikeDeconvolution(np.ones((2, 3)), np.ones(2), 2)


@pytest.mark.parametrize("penalty", [-1e-3, -4.0, np.nan])
def test_refuses_a_negative_penalty(penalty):
    with pytest.raises(ValueError, match=r"penalty λ must be finite and >= 0"):
        SpikeDeconvolution(CHIZAT_SPIKES, CHIZAT_MASSES, 2, penalty)


def test_refuses_the_wrong_torus_and_species():
    energy = chizat(1.0)
    with pytest.raises(ValueError, match="needs two species"):
        energy.check(Grid([[0, 2 * np.pi]] * 2, [4, 4], bc="periodic"))
    with pytest.raises(ValueError, match=r"species must be \('plus', 'minus'\)"):
        energy.check(Species(Grid([[0, 2 * np.pi]] * 2, [4, 4], bc="periodic"), ("minus", "plus")))
    with pytest.raises(ValueError, match="the spikes live on T\\^2, the grid is 1D"):
        energy.check(torus(8, dim=1))
    with pytest.raises(ValueError, match="periodic"):
        energy.check(Species(Grid([[0, 2 * np.pi]] * 2, [4, 4]), ("plus", "minus")))
    with pytest.raises(ValueError, match="length 2π"):
        energy.check(Species(Grid([[0, np.pi]] * 2, [4, 4], bc="periodic"), ("plus", "minus")))
    with pytest.raises(ValueError, match=r"particles are θ = \(z, r\) ∈ R\^3"):
        energy.particle_velocity(np.zeros((2, 2)), np.ones(2))


@pytest.mark.parametrize("name, dim, cells", [("deconvolution-2d", 2, 8), ("deconvolution-1d", 1, 32)])
def test_presets_start_particles_and_densities_alike(rng, name, dim, cells):
    """The presets: ν± uniform of mass ¼ each; sample(rng, m) gives particles (z, r) whose lift has
    mass ¼ per species and whose positions z are uniform on the torus, axis by axis (W1 on the
    circle to 256 even atoms 0.017–0.025 at m = 4000; all at one point would be π/2); the PDE
    dissipates with its invariants on a coarse grid."""
    from solver import problems
    from solver.compare import circle_wasserstein

    problem = problems.get(name, cells=cells)
    assert problem.grid.shape == (2,) + (cells,) * dim
    np.testing.assert_allclose(problem.grid.integrate_species(problem.rho0), [0.25, 0.25], rtol=1e-13)
    theta = problem.sample(rng, 10)
    measure = problem.energy.lift(theta, np.full(10, 0.1))
    assert theta.shape == (10, dim + 1)
    assert measure.masses[measure.signs > 0].sum() == pytest.approx(0.25)
    assert measure.masses[measure.signs < 0].sum() == pytest.approx(0.25)
    positions, even = problem.sample(rng, 4000)[:, :dim], (np.arange(256) + 0.5) * 2 * np.pi / 256
    for axis in range(dim):
        assert circle_wasserstein(positions[:, axis], np.ones(4000), even, np.ones(256)) < 0.06
    solution = solve(problem.energy, problem.grid, problem.rho0, (0.0, 1.0), save_at=[1.0])
    assert_invariants(solution)
    assert problem.energy.value(solution.rho[-1], problem.grid) < 0.5 * problem.energy.value(problem.rho0,
                                                                                              problem.grid)



def test_continuous_reference_when_the_optimum_is_the_zero_measure():
    """λ ≥ ‖Φ*y‖_∞ (here λ = 100): the optimum is μ = 0, with F = ½|y|², and the bracket closes on
    it with no atom to slide; y = 0 (zero weights): F = 0 and ‖Φ*p‖_∞ = 0 at once (η ≡ 0 is flat on
    the whole 2048² grid, which must not start a polish at every node)."""
    energy = chizat(100.0)
    reference = energy.continuous_reference(cells=16, samples=64)
    assert len(reference.measure.masses) == 0
    half_y2 = 0.5 * float(energy.observations @ energy.observations)
    assert reference.upper == half_y2 and reference.lower == pytest.approx(half_y2, rel=1e-14)
    assert reference.certified_lower == pytest.approx(half_y2, rel=1e-14)
    reference = SpikeDeconvolution(CHIZAT_SPIKES, np.zeros(3), 2, 1.0).continuous_reference(cells=16)
    assert (reference.upper, reference.lower, reference.certified_lower, reference.sup_correlation) == (0, 0, 0, 0)

def trigonometric_residual(energy, amplitudes, center):
    """p with η(z) = ψ(z)·p = Σ_ω A_ω cos(ω·(z − z0)) (ω ∈ H): p_cos = A cos(ω·z0)/√2, p_sin = A sin(ω·z0)/√2."""
    residual = np.zeros(1 + 2 * len(energy.frequencies))
    for omega, amplitude in amplitudes.items():
        j = int(np.flatnonzero(np.all(energy.frequencies == omega, axis=1))[0])
        phase = float(np.dot(omega, center))
        residual[1 + j] = amplitude * np.cos(phase) / np.sqrt(2)
        residual[1 + len(energy.frequencies) + j] = amplitude * np.sin(phase) / np.sqrt(2)
    return residual


@pytest.mark.parametrize("dim", [1, 2])
def test_sup_correlation_finds_the_maximum_between_nodes_and_bounds_it(dim):
    """η with known ‖η‖_∞ whose maximizer z0 sits half-way between the nodes of a coarse grid
    (N = 4 d f_c + 4 per axis, f_c = 2). The Dirichlet kernel η = D(z − z0) (p = ψ(z0), sup 5^d):
    its side lobes are below half its peak, so only z0's node starts the polish, and the polished
    sup is 5^d (grid max 4.66 in 1D, 23.8 in 2D; a search started at the mirrored node −z0
    stops at a side lobe). η = Π_a cos(f_c(z_a − z0_a)), where the grid loses the most (grid max
    0.866 and 0.905): the certified sup is ≥ 1 (measured 1.0036 and 1.127; Bernstein's constant
    4× smaller would give 0.897 and 0.951)."""
    cutoff, samples = 2, 4 * dim * 2 + 4
    energy = SpikeDeconvolution(np.full((1, dim), 1.0), [1.0], cutoff)
    h = 2 * np.pi / samples
    center = (np.array([3, 7][:dim]) + 0.5) * h
    # cos(f_c u1)cos(f_c u2) = ½cos(f_c(u1 + u2)) + ½cos(f_c(u1 − u2))
    sharp = {(cutoff,): 1.0} if dim == 1 else {(cutoff, cutoff): 0.5, (cutoff, -cutoff): 0.5}
    for residual, top in ((energy.features(center)[0], 5.0**dim), (trigonometric_residual(energy, sharp, center), 1.0)):
        assert energy.correlation(center, residual)[0][0] == pytest.approx(top, rel=1e-14)
        polished, certified = energy.sup_correlation(residual, samples)
        assert polished == pytest.approx(top, rel=1e-12)
        assert top <= certified < top / (1 - dim**2 * cutoff**2 * h**2 / 8)
