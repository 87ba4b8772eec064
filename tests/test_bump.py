"""Bump networks (Javanmard–Mondelli–Montanari): kernels against NumPy, discrete first
variations against finite differences, the fixed-δ flow converging to its porous-medium
limit, the limit's decay rate against the linearized prediction, SGD converging to the
fixed-δ PDE as N grows, and bad input."""

import warnings

import numpy as np
import pytest
from conftest import assert_invariants

from solver import Grid, jmm, problems, solve
from solver.compare import fit_slope, wasserstein
from solver.domains import Annulus, Ball, Box
from solver.energies import BumpLimitRisk, BumpRisk, Entropy
from solver.energies.bump import bump_constants, cell_average_stencil
from solver.kernels import bump as kernels
from solver.particles import simulate

INTERVAL = Box([-1.0], [1.0])
f_1d = problems.jmm_target


@pytest.mark.parametrize("dim", [1, 2, 3])
def test_kernels_match_numpy(rng, dim):
    x, centres = rng.uniform(-1, 1, (57, dim)), rng.uniform(-1, 1, (31, dim))
    weights, coefficients = rng.random(31), rng.normal(size=57)
    delta, scale = 0.6, 1.7
    np.testing.assert_allclose(kernels.bump_sum(x, centres, weights, delta, scale),
                               kernels.bump_sum_reference(x, centres, weights, delta, scale), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(kernels.bump_gradient_sum(x, coefficients, centres, delta, scale),
                               kernels.bump_gradient_sum_reference(x, coefficients, centres, delta, scale),
                               rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("dim", [1, 2])
def test_bump_has_unit_mass_and_the_stencil_too(dim):
    Z = bump_constants(dim)[0]
    points, weights = Box([-1] * dim, [1] * dim).quadrature(1 / 64)
    assert weights @ kernels.unnormalized_bump(points) / Z == pytest.approx(1, abs=1e-10)
    grid = Grid([(-1, 1)] * dim, 40)
    for delta in (0.02, 0.12, 0.4):
        stencil = cell_average_stencil(grid, delta)
        assert stencil.sum() * grid.cell_volume == pytest.approx(1, abs=1e-13)
        np.testing.assert_allclose(stencil, np.flip(stencil), rtol=1e-12)  # even
    assert cell_average_stencil(grid, 0.02).shape == (1,) * dim  # δ < h/2: the identity


def test_small_bumps_on_a_grid_are_the_limit():
    grid = Grid([(-1, 1)], 50)
    rho = grid.cell_averages(lambda x: 1 + 0.5 * np.cos(3 * x[..., 0])) / 2
    tiny, limit = BumpRisk(f_1d, 0.01, INTERVAL), BumpLimitRisk(f_1d, INTERVAL)
    assert tiny.value(rho, grid) == pytest.approx(limit.value(rho, grid), rel=1e-13)
    np.testing.assert_allclose(tiny.first_variation(rho, grid), limit.first_variation(rho, grid), rtol=1e-12)


@pytest.mark.parametrize("energy", [BumpRisk(f_1d, 0.15, INTERVAL), BumpLimitRisk(f_1d, INTERVAL)], ids=repr)
def test_first_variation_is_the_gradient_of_the_discrete_energy(rng, energy):
    grid = Grid([(-1, 1)], 40)
    rho, direction = rng.random(40) + 0.1, rng.normal(size=40)
    step = 1e-6
    derivative = (energy.value(rho + step * direction, grid) - energy.value(rho - step * direction, grid)) / (2 * step)
    assert derivative == pytest.approx(grid.integrate(energy.first_variation(rho, grid) * direction), rel=1e-7)


def test_fft_and_direct_convolutions_agree(rng):
    grid = Grid([(-1, 1), (-1, 1)], 33)
    rho = rng.random(grid.shape)
    f = problems.jmm_square_target
    fft, direct = (BumpRisk(f, 0.2, Box([-1, -1], [1, 1]), convolution=method) for method in ("fft", "direct"))
    np.testing.assert_allclose(fft.first_variation(rho, grid), direct.first_variation(rho, grid),
                               rtol=1e-12, atol=1e-13)


class Vertices:
    """A grid's cell centres seen as scattered vertices with lumped masses: the mesh path."""

    def __init__(self, grid):
        self.points, self.dim = grid.points.reshape(-1, grid.dim), grid.dim
        self.weights = np.full(grid.size, grid.cell_volume)

    def integrate(self, values):
        return float(self.weights @ values)

    def initial_density(self, f):
        return f(self.points)

    def gather(self, values):
        return self.points, values


def test_vertex_sums_match_the_grid_up_to_discretization():
    grid = Grid([(-1, 1)], 400)
    rho = grid.cell_averages(lambda x: np.exp(-4 * x[..., 0] ** 2))
    energy = BumpRisk(f_1d, 0.2, INTERVAL)
    vertices = Vertices(grid)
    on_grid, on_vertices = energy.first_variation(rho, grid), energy.first_variation(rho.ravel(), vertices)
    assert np.abs(on_vertices - on_grid.ravel()).max() < 1e-3 * np.abs(on_grid).max()


def test_particle_velocity_is_minus_the_gradient_of_the_first_variation(rng):
    energy = BumpRisk(f_1d, 0.3, INTERVAL)
    theta, weights = rng.uniform(-0.6, 0.6, (25, 1)), np.full(25, 1 / 25)
    x, w = energy.quadrature

    def first_variation(points):  # F'(μ_m)(w) = 1/|Ω| ∫ (f̂ − f)(x) K^δ(x − w) dx
        residual = energy.predict(theta, weights, x) - energy.f_at_quadrature
        return kernels.bump_sum(points.reshape(-1, 1), x, w * residual, energy.delta, energy.scale) / energy.volume

    step = 1e-6
    gradient = (first_variation(theta + step) - first_variation(theta - step)) / (2 * step)
    np.testing.assert_allclose(energy.particle_velocity(theta, weights)[:, 0], -gradient, rtol=1e-6, atol=1e-9)


@pytest.mark.slow
def test_jmm_start_has_the_figures_normalized_risk():
    """jmm-bumps starts uniform on [−0.6, 0.6]: ∫(f − ρ₀)²/∫f² = 0.593 at t = 0, where the limit
    PDE's curve of Javanmard–Mondelli–Montanari's Figure 1 starts (≈ 0.6); [−¼, ¼] gave 2.51."""
    problem = problems.jmm_bumps(delta=0, cells=320)
    f = problems.jmm_target(problem.grid.points)
    risk = problem.grid.integrate((f - problem.rho0) ** 2) / problem.grid.integrate(f**2)
    assert risk == pytest.approx(0.5927, abs=2e-3)
    assert problem.grid.integrate(problem.rho0) == pytest.approx(1.0, rel=1e-12)
    assert problem.rho0.max() == pytest.approx(1 / 1.2) and problem.rho0[0] == 0
    theta = problem.sample(np.random.default_rng(0), 1000)
    assert theta.min() >= -0.6 and theta.max() <= 0.6 and theta.max() - theta.min() > 1.15


def test_limit_risk_decays_at_the_linearized_rate():
    problem = problems.jmm_bumps(delta=0, cells=100)
    times = np.linspace(0, 9, 37)
    solution = solve(problem.energy, problem.grid, problem.rho0, (0, 9), save_at=times)
    assert_invariants(solution)
    excess = [problem.energy.value(rho, problem.grid) for rho in solution.rho]  # F_0(ρ*) = 0: f is a density
    late = times >= 5
    measured = -np.polyfit(times[late], np.log(excess)[late], 1)[0]
    predicted = problem.energy.decay_rate(Grid([(-1, 1)], 2000))
    assert measured == pytest.approx(predicted, rel=0.05)
    assert predicted == pytest.approx(problem.energy.decay_rate(problem.grid), rel=1e-3)  # converged in h


@pytest.mark.slow
def test_limit_rate_in_two_dimensions():
    problem = problems.jmm_square(delta=0, cells=24)
    grid = problem.grid
    # off-centre: the slowest mode is odd, and the preset's symmetric start leaves it unexcited
    rho0 = grid.cell_averages(lambda x: (np.abs(x[..., 0] + 0.25) < 0.25) & (np.abs(x[..., 1] - 0.1) < 0.25)) / 0.25
    times = np.linspace(0, 16, 33)
    solution = solve(problem.energy, grid, rho0, (0, 16), save_at=times)
    assert_invariants(solution)
    excess = [problem.energy.value(rho, grid) for rho in solution.rho]
    measured = -np.polyfit(times[times >= 8], np.log(excess)[times >= 8], 1)[0]
    assert measured == pytest.approx(problem.energy.decay_rate(Grid([(-1, 1)] * 2, 64)), rel=0.05)


def test_minimizer_of_the_limit_is_the_clipped_target():
    grid = Grid([(-1, 1)], 200)
    energy = BumpLimitRisk(f_1d, INTERVAL)
    np.testing.assert_allclose(energy.minimizer(grid), energy.target_on(grid), atol=1e-12)
    half = energy.minimizer(grid, mass=0.5)
    assert grid.integrate(half) == pytest.approx(0.5, rel=1e-12)
    assert half.min() == 0 and np.ptp((energy.target_on(grid) - half)[half > 0]) < 1e-12  # f − c on the support


@pytest.mark.slow
def test_fixed_width_flow_converges_to_the_limit():
    grid = Grid([(-1, 1)], 320)
    limit = problems.jmm_bumps(delta=0, cells=320)
    reference = solve(limit.energy, grid, limit.rho0, (0, 3), save_at=[0, 1, 3], scheme="rkl2")
    distances = []
    for delta in (1 / 5, 1 / 10, 1 / 20, 1 / 40):
        energy = BumpRisk(problems.jmm_target, delta, INTERVAL)
        solution = solve(energy, grid, limit.rho0, (0, 3), save_at=[0, 1, 3], scheme="rkl2")
        assert_invariants(solution)
        distances.append([
            (grid.integrate(np.abs(solution.rho[k] - reference.rho[k])),
             wasserstein(grid, solution.rho[k], grid.points.reshape(-1, 1), weights=reference.rho[k].ravel()))
            for k in (1, 2)
        ])
    distances = np.array(distances)  # (δ, time, [L1, W2])
    assert np.all(np.diff(distances, axis=0) < 0), distances


@pytest.mark.slow
def test_sgd_converges_to_the_fixed_width_pde_as_n_grows():
    problem = problems.jmm_bumps(delta=0.2, cells=160)
    energy, times = problem.energy, [0, 0.5, 1]
    pde = solve(energy, problem.grid, problem.rho0, (0, 1), save_at=times)
    pde_risk = np.array([energy.value(rho, problem.grid) for rho in pde.rho[1:]])
    ns, gaps = (25, 100, 400, 1600), []
    for n in ns:
        risks = []
        for seed in range(8):
            rng = np.random.default_rng(seed)
            run = simulate(energy, problem.sample(rng, n), (0, 1), step=1e-3, method="sgd", batch_size=40,
                           domain=problem.domain, save_at=times, rng=rng)
            risks.append([energy.risk(theta, run.weights) for theta in run.theta[1:]])
        gaps.append(np.mean(np.abs(np.mean(risks, axis=0) - pde_risk) / pde_risk))
    assert gaps[-1] < 0.03 and fit_slope(ns, gaps) < -0.3, gaps


def test_noisy_sgd_matches_an_entropy_term():
    """SGD on the bump risk plus Entropy(τ) moves each particle from where an SGD run without
    it, of the same seed, takes it by the Langevin spread, E|θ − θ'|² = 2τt to first order in
    t (measured 1.01 and 1.04 times it over 5 steps for two seeds; noise of half or twice the
    variance would give 0.5 or 2). The runs share only their first batch (the noise draws
    from the same generator), so the difference holds their SGD noise too, small here."""
    risk, tau, t = BumpRisk(f_1d, 0.2, INTERVAL), 0.05, 0.005
    theta0 = np.random.default_rng(5).uniform(-0.5, 0.5, (4000, 1))
    for seed in (0, 1):
        noisy, plain = (simulate(energy, theta0, (0, t), step=1e-3, method="sgd", batch_size=10, domain=INTERVAL,
                                 rng=seed).theta[-1] for energy in (risk + Entropy(tau), risk))
        assert np.mean((noisy - plain) ** 2) == pytest.approx(2 * tau * t, rel=0.15)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: BumpRisk(f_1d, 0.0, INTERVAL), "delta .* must be finite and > 0, got 0.0"),
        (lambda: BumpRisk(f_1d, -0.1, INTERVAL), "delta .* must be finite and > 0"),
        (lambda: BumpRisk(f_1d, np.nan, INTERVAL), "delta .* must be finite and > 0"),
        (lambda: BumpRisk(f_1d, 1e-300, INTERVAL), r"would take about 10\^302 points, more than 5e\+07: take a wider"),
        (lambda: BumpRisk(f_1d, 1e-300, Box([-1, -1], [1, 1])), r"would take about 10\^603 points"),
        (lambda: BumpRisk(f_1d, 1e300, Box([-1, -1], [1, 1])), r"delta = 1e\+300 is too wide: the bump's height"),
        (lambda: BumpRisk(f_1d, 1e300, INTERVAL).check(Grid([(-1, 1)], 10)), r"a kernel of radius 1e\+300 spans more "
         r"than 1e\+05 cells of h = \[0.2\]"),
        (lambda: BumpRisk(lambda x: x[..., 0], 0.1, INTERVAL), "f is negative on Ω"),
        (lambda: BumpLimitRisk(lambda x: np.where(x[..., 0] > 0.5, np.inf, 1.0), INTERVAL), "f is not finite at x"),
        (lambda: BumpRisk(f_1d, 0.1, INTERVAL, noise=-1), "noise .* must be finite and >= 0"),
        (lambda: BumpRisk(f_1d, 0.1, INTERVAL, convolution="fast"), "convolution must be"),
        (lambda: BumpRisk(f_1d, 0.1, "[-1, 1]"), "domain must be a Box or Ball"),
        (lambda: BumpRisk("f", 0.1, INTERVAL), "f must be a callable"),
        (lambda: BumpRisk(f_1d, 0.1, INTERVAL).check(Grid([(-1, 2)], 10)), "must be the grid's box"),
        (lambda: BumpRisk(f_1d, 0.1, INTERVAL).check(Grid([(-1, 1)], 10, bc="periodic")), "with walls"),
        (lambda: BumpRisk(f_1d, 0.1, INTERVAL).check(Grid([(-1, 1)] * 2, 10)), "Ω has dimension 1"),
        # the kernels check no bounds: more weights than centres, centres or points in 2D
        (lambda: BumpRisk(f_1d, 0.1, INTERVAL).predict(np.zeros((3, 1)), np.ones(5)), r"weights of shape \(5,\)"),
        (lambda: BumpRisk(f_1d, 0.1, INTERVAL).risk(np.zeros((3, 2)), np.ones(3)), r"θ of shape \(3, 2\)"),
        (lambda: BumpRisk(f_1d, 0.1, INTERVAL).predict(np.zeros((3, 1)), np.ones(3), np.zeros((4, 2))),
         r"points x of shape \(4, 2\): give shapes \(m, 1\) and \(n, 1\)"),
    ],
)
def test_bad_input(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_particles_must_start_inside_the_domain():
    with pytest.raises(ValueError, match="2 particles start outside Box"):
        simulate(BumpRisk(f_1d, 0.2, INTERVAL), np.array([[0.0], [1.5], [-2.0]]), (0, 0.01), step=1e-3,
                 domain=INTERVAL)


def test_non_convex_domain_warns():
    with pytest.warns(UserWarning, match="is not convex. The displacement convexity of F_0"):
        BumpRisk(lambda x: np.ones(x.shape[:-1]), 0.2, Annulus([0, 0], 0.5, 1.0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for domain in (Ball([0, 0], 1.0), INTERVAL):
            BumpLimitRisk(lambda x: np.ones(x.shape[:-1]), domain)  # convex: no warning


def test_large_steps_warn():
    energy = BumpRisk(f_1d, 0.05, INTERVAL)
    with pytest.warns(UserWarning, match="not small against δ²"):
        simulate(energy, np.zeros((5, 1)), (0, 0.01), step=0.01, domain=INTERVAL)
    with pytest.warns(UserWarning, match="as noisy as Langevin noise"):
        simulate(energy, np.zeros((5, 1)), (0, 0.001), step=5e-5, method="sgd", batch_size=1, domain=INTERVAL, rng=0)


def test_disc_quadrature_and_sampling(rng):
    disc = Ball([0.0, 0.0], 1.0)
    points, weights = disc.quadrature(0.05)
    assert weights.sum() == pytest.approx(np.pi, rel=1e-12)
    assert weights @ (1 - np.sum(points**2, axis=-1)) == pytest.approx(np.pi / 2, rel=1e-12)
    sample = disc.sample(rng, 20000)
    assert np.all(disc.contains(sample)) and np.mean(np.sum(sample**2, axis=1)) == pytest.approx(0.5, abs=0.01)


def test_fixed_width_flow_on_the_square_approaches_the_limit():
    limit = problems.jmm_square(delta=0, cells=32)
    grid = limit.grid
    reference = solve(limit.energy, grid, limit.rho0, (0, 1))
    distances = []
    for delta in (0.4, 0.2, 0.1):
        solution = solve(problems.jmm_square(delta=delta, cells=32).energy, grid, limit.rho0, (0, 1))
        assert_invariants(solution)
        distances.append(grid.integrate(np.abs(solution.rho[-1] - reference.rho[-1])))
    assert np.all(np.diff(distances) < 0), distances


def test_sgd_on_the_disc_fits_a_concave_density():
    disc = Ball([0.0, 0.0], 1.0)
    energy = BumpRisk(lambda x: 2 / np.pi * (1 - np.sum(x**2, axis=-1)), 0.3, disc)
    rng = np.random.default_rng(0)
    start = 0.25 * disc.sample(rng, 400)
    run = simulate(energy, start, (0, 2), step=2e-3, method="sgd", batch_size=20, domain=disc, save_at=[0, 1, 2],
                   rng=rng)
    risks = [energy.risk(theta, run.weights) / energy.reference_risk for theta in run.theta]
    assert np.all(np.diff(risks) < 0) and risks[-1] < 0.1 * risks[0], risks
    assert np.all(disc.contains(run.theta[-1]))


@pytest.mark.parametrize("delta", [0.27, 0.33, 0.19])
def test_the_stencil_is_the_bump_averaged_over_each_cell(delta):
    """κ_k = (1/h)∫ over cell k of K^δ, by scipy's quad on the bump written out, on every
    cell the support touches (|k|h − h/2 < δ: ⌈δ/h − ½⌉ cells each side; δ/h = 2.7, 3.3 and
    1.9 reach 3, 3 and 2). Absolute 1e-7 of the peak: the edge cells, where the bump is
    flat to all orders, are 1e-4 off relative and 2e-8 of the peak."""
    import math

    import scipy.integrate

    grid = Grid([(-1, 1)], 20)
    h, normalization = grid.h[0], bump_constants(1)[0]

    def bump(y):
        return math.exp(-1 / (1 - (y / delta) ** 2)) / (normalization * delta) if abs(y) < delta else 0.0

    reach = math.ceil(delta / h - 0.5)
    expected = [scipy.integrate.quad(bump, (k - 0.5) * h, (k + 0.5) * h, epsabs=0, epsrel=1e-12)[0] / h
                for k in range(-reach, reach + 1)]
    stencil = cell_average_stencil(grid, delta)
    assert stencil.shape == (2 * reach + 1,)
    np.testing.assert_allclose(stencil, expected, rtol=0, atol=1e-7)


@pytest.mark.parametrize("shape, delta", [((64,), 0.2), ((24, 24), 0.3)])
def test_local_stiffness_is_the_diagonal_of_the_hessian(shape, delta):
    """F' is affine in ρ, so F'(ρ + e_j)_j − F'(ρ)_j at an interior cell (its stencil not cut
    by a wall) is ∂F'_j/∂ρ_j exactly, which ``local_stiffness`` gives."""
    dim = len(shape)
    grid = Grid([(-1, 1)] * dim, shape)
    energy = BumpRisk(lambda x: 1 + 0.5 * np.cos(np.sum(x, axis=-1)), delta, Box([-1] * dim, [1] * dim))
    rho = np.random.default_rng(0).random(grid.shape)
    cell = tuple(n // 2 for n in shape)
    bumped = rho.copy()
    bumped[cell] += 1.0
    diagonal = energy.first_variation(bumped, grid)[cell] - energy.first_variation(rho, grid)[cell]
    assert energy.local_stiffness(grid) == pytest.approx(diagonal, rel=1e-9)


def test_a_large_batch_moves_the_bumps_by_the_mean_velocity():
    """The SGD velocity (1/B) Σ_k (y_k − f̂(x_k)) ∇K^δ(x_k − θ) with x_k ~ Unif(Ω) has the
    mean E_x[(f − f̂)∇K^δ] = (1/|Ω|)∫_Ω(f − f̂)∇K^δ, the velocity by quadrature: at
    B = 10⁵ within 5% (here |Ω| = 2, so a batch velocity without the 1/|Ω| of the mean
    would be off by a factor 2)."""
    rng = np.random.default_rng(4)
    energy = BumpRisk(f_1d, 0.2, INTERVAL)
    theta, weights = rng.uniform(-0.8, 0.8, (30, 1)), np.full(30, 1 / 30)
    mean = energy.particle_velocity(theta, weights)
    batch = energy.particle_velocity(theta, weights, batch=energy.sample_batch(rng, 100_000))
    assert np.linalg.norm(batch - mean) <= 0.05 * np.linalg.norm(mean)


def test_the_annulus_projects_integrates_and_samples_on_the_ring():
    """Annulus(0, ½, 1): points inside the hole go to the inner circle, outside to the outer;
    its quadrature integrates 1 and r² over the ring, (3/4)π and (π/2)(1 − ½⁴); its samples
    lie in the ring with E r² = (1 + ¼)/2."""
    ring = Annulus([0.0, 0.0], 0.5, 1.0)
    points = np.array([[0.2, 0.0], [0.0, -0.1], [0.3, 0.4], [2.0, 0.0]])
    np.testing.assert_allclose(np.linalg.norm(ring.project(points), axis=1), [0.5, 0.5, 0.5, 1.0], rtol=1e-15)
    nodes, weights = ring.quadrature(0.05)
    assert weights.sum() == pytest.approx(0.75 * np.pi, rel=1e-12)
    assert weights @ np.sum(nodes**2, axis=1) == pytest.approx(np.pi / 2 * (1 - 0.5**4), rel=1e-12)
    sample = ring.sample(np.random.default_rng(1), 20000)
    assert ring.contains(sample).all()
    assert np.mean(np.sum(sample**2, axis=1)) == pytest.approx(0.625, abs=0.01)


def test_sgd_settings_keep_their_promises():
    """sgd_settings: ε ≤ ε*/10 divides the risk spacing, the largest such; B the smallest
    batch with SGD's temperature at most NOISE_RATIO of the limit's diffusivity (it catches
    ε ≤ ε* only)."""
    for delta in jmm.DELTAS:
        energy = problems.jmm_bumps(delta=delta, cells=50).energy
        step, batch = jmm.sgd_settings(energy)
        count = jmm.RISK_SPACING / step
        assert count == pytest.approx(round(count), abs=1e-9)
        assert step <= 0.1 * energy.stable_step() < jmm.RISK_SPACING / (round(count) - 1)
        diffusivity = float(np.max(energy.f_at_quadrature)) / energy.volume
        assert energy.sgd_temperature(step, batch) <= jmm.NOISE_RATIO * diffusivity
        assert batch == 1 or energy.sgd_temperature(step, batch - 1) > jmm.NOISE_RATIO * diffusivity


def test_figure1_risks_are_at_the_risk_times_and_estimates_at_the_snapshots():
    """A snapshot time beyond the horizon is saved but not a risk time: every risk curve has
    one value per t (it catches _risks keeping every save); the SGD estimate at a snapshot
    time s ≤ horizon gives back that run's normalized risk at s (it catches the estimate of
    the save before s)."""
    result = jmm.figure1(deltas=(1 / 5,), n_neurons=40, seeds=(0,), cells=100, horizon=0.5,
                         snapshot_times=(0.5, 0.75))
    run, t = result["runs"][1 / 5], result["t"]
    assert len(result["limit"]) == len(run["pde"]) == len(run["sgd"]) == len(t) == 11
    f, estimate = result["f"], run["sgd_estimates"][0.5]
    normalized = np.sum((f - estimate) ** 2) / np.sum(f**2)  # equal cells: the cell width cancels
    assert normalized == pytest.approx(run["sgd_runs"][0][-1], rel=0.01)
