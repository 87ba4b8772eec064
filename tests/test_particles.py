"""The particle simulator: the shared clock, noise, projection, SGD, seeds, bad input."""

import numpy as np
import pytest
from scipy.linalg import expm

from solver import Energy, Entropy, Feature, Interaction, NetworkRisk, PorousMedium, Potential
from solver.particles import Ball, Box, SimulationError, simulate

A = np.array([[1.5, 0.5], [0.5, 1.0]])
QUADRATIC = Potential(lambda x: 0.5 * np.einsum("...i,ij,...j->...", x, A, x), grad=lambda x: x @ A)


def test_one_unit_of_particle_time_is_one_unit_of_pde_time(rng):
    """dθ/dt = −Aθ gives θ(1) = e^(−A) θ0; Euler's error is O(ε): halving ε halves it."""
    theta0 = rng.normal(size=(5, 2))
    exact = theta0 @ expm(-A).T
    errors = [np.abs(simulate(QUADRATIC, theta0, (0, 1), step=eps).theta[-1] - exact).max() for eps in (2e-3, 1e-3)]
    assert errors[1] < 2e-3
    assert errors[0] / errors[1] == pytest.approx(2, rel=0.05)


def test_quadratic_interaction_contracts_to_the_centre_of_mass(rng):
    theta0 = rng.normal(size=(40, 2)) + [1.0, -2.0]
    centre = theta0.mean(axis=0)
    run = simulate(Interaction(lambda z: 0.5 * np.sum(z**2, axis=-1)), theta0, (0, 1), step=1e-3,
                   save_at=[0, 0.5, 1])
    for t, theta in zip(run.t, run.theta):
        np.testing.assert_allclose(theta.mean(axis=0), centre, atol=1e-6)
        np.testing.assert_allclose(theta, centre + np.exp(-t) * (theta0 - centre), atol=2e-3)


def test_noise_matches_the_entropy_term(rng):
    """Potential |x|²/2 + Entropy(τ): Var(t) = e^(−2t) σ0² + τ(1 − e^(−2t)) (Ornstein–Uhlenbeck)."""
    tau, var0, t = 0.3, 0.25, 2.0
    theta0 = np.sqrt(var0) * rng.normal(size=(20000, 1))
    energy = Potential(lambda x: 0.5 * np.sum(x**2, axis=-1), grad=lambda x: x) + Entropy(tau)
    theta = simulate(energy, theta0, (0, t), step=2e-3, rng=rng).theta[-1]
    expected = np.exp(-2 * t) * var0 + tau * (1 - np.exp(-2 * t))
    assert theta.var() == pytest.approx(expected, rel=0.03)  # sampling error ~1%, Euler bias ~0.2%


@pytest.mark.parametrize("domain", [Box([-1, -1], [1, 1]), Ball([0, 0], 1.0)], ids=repr)
def test_projection_keeps_particles_inside(rng, domain):
    outward = Potential(lambda x: -np.sum(x**2, axis=-1), grad=lambda x: -2 * x)
    theta0 = domain.project(0.5 * rng.normal(size=(50, 2)))
    run = simulate(outward + Entropy(0.01), theta0, (0, 2), step=0.01, domain=domain, rng=rng, save_at=[0, 1, 2])
    assert all(domain.contains(theta).all() for theta in run.theta)
    assert not np.any(domain.contains(run.theta[-1] / 0.95))  # pushed out, held within 5% of the boundary


def test_seeds_decide_the_run():
    energy = QUADRATIC + Entropy(0.1)
    theta0 = np.zeros((10, 2))
    first, again = (simulate(energy, theta0, (0, 0.1), step=0.01, rng=7).theta for _ in range(2))
    other = simulate(energy, theta0, (0, 0.1), step=0.01, rng=8).theta
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_sgd_on_a_network_draws_batches_and_keeps_the_clock(rng):
    feature = Feature.fixed_output("tanh", 2)
    X = rng.normal(size=(200, 2))
    energy = NetworkRisk(feature, X, np.tanh(X @ [1.0, -1.0]))
    theta0 = 0.3 * rng.normal(size=(30, 2))
    run = simulate(energy, theta0, (0, 1), step=0.05, method="sgd", batch_size=8, rng=1, save_at=[0, 0.5, 1])
    assert run.steps == 20 and list(run.t) == [0, 0.5, 1]
    gd = simulate(energy, theta0, (0, 1), step=0.05).theta[-1]
    assert 0 < np.abs(run.theta[-1] - gd).max() < 0.5  # SGD is a noisy GD
    assert energy.risk(run.theta[-1], run.weights) < energy.risk(theta0, run.weights)


def test_sgd_with_a_sampler_draws_fresh_samples():
    """Online SGD on the population x ~ N(0, I₂): each step asks the sampler for a fresh
    batch (counted), and the population risk, estimated on a large sample, falls."""
    feature, teacher = Feature.fixed_output("tanh", 2), np.array([1.0, -1.0])
    calls = []

    def population(rng, size):
        calls.append(size)
        X = rng.normal(size=(size, 2))
        return X, np.tanh(X @ teacher)

    X_test, y_test = population(np.random.default_rng(5), 4000)
    calls.clear()
    energy = NetworkRisk(feature, X_test[:10], y_test[:10], sampler=population)
    risk = NetworkRisk(feature, X_test, y_test).risk
    theta0 = 0.3 * np.random.default_rng(6).normal(size=(50, 2))
    run = simulate(energy, theta0, (0, 2), step=0.05, method="sgd", batch_size=16, rng=2)
    assert calls == [16] * 40
    assert risk(run.theta[-1], run.weights) < 0.5 * risk(theta0, run.weights)


def test_a_nan_stops_the_run_and_keeps_what_was_computed():
    blow_up = Potential(lambda x: -np.sum(x**4, axis=-1), grad=lambda x: -4 * x**3)
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(
        SimulationError, match=r"non-finite particles at step \d+ \(t = "
    ) as error:
        simulate(blow_up, np.full((3, 1), 2.0), (0, 10), step=0.1, save_at=[0, 0.1, 10])
    partial = error.value.partial
    assert list(partial.t[:2]) == [0, 0.1] and np.all(np.isfinite(partial.theta))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"theta0": np.zeros(3)}, "theta0 must be a finite"),
        ({"theta0": np.zeros((0, 2))}, "theta0 must be a finite"),
        ({"theta0": np.full((2, 2), np.nan)}, "theta0 must be a finite"),
        ({"step": 0}, "step must be finite and > 0"),
        ({"step": np.inf}, "step must be finite and > 0"),
        ({"method": "adam"}, "method must be 'gd' or 'sgd'"),
        ({"method": "sgd", "batch_size": 0}, "batch_size must be a positive integer"),
        ({"method": "sgd", "batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"method": "sgd", "batch_size": True}, "batch_size must be a positive integer"),
        ({"t_span": (1, 0)}, "t_span must be"),
        ({"step": 0.3}, "whole number of steps"),
        ({"domain": Box([-0.5, -0.5], [0.5, 0.5]), "theta0": np.ones((3, 2))}, "3 particles start outside Box"),
        ({"domain": Box([-5], [5])}, r"the domain Box.* is 1D but the particles have dimension 2"),
        ({"domain": Box([-5] * 3, [5] * 3)}, r"is 3D but the particles have dimension 2"),
        ({"batch_size": 5}, "batch_size=5 is for method 'sgd', not 'gd'"),
        ({"method": "sgd", "batch_size": 2}, r"method 'sgd' draws mini-batches .* no term of Potential.* has data"),
        ({"step": 1e-9}, r"\(0, 1\) in steps of 1e-09 is 1e\+09 steps, more than max_steps = 10000000"),
        ({"max_steps": 9}, "is 10 steps, more than max_steps = 9"),
        ({"max_steps": 0}, "max_steps must be a positive integer"),
    ],
)
def test_bad_input(kwargs, message):
    arguments = {"theta0": np.zeros((3, 2)), "t_span": (0, 1), "step": 0.1, **kwargs}
    with pytest.raises(ValueError, match=message):
        simulate(QUADRATIC, arguments.pop("theta0"), arguments.pop("t_span"), **arguments)


def test_max_steps_allows_a_run_of_exactly_that_many_steps():
    run = simulate(QUADRATIC, np.ones((3, 2)), (0, 1), step=0.1, max_steps=10)
    assert run.steps == 10


def test_sgd_moves_the_terms_without_data_by_their_full_velocity(rng):
    """A potential beside a network risk: SGD draws the risk's batches, the potential's pull
    is whole. With every data point the same, a batch of 3 of the 6 averages to the data's
    mean, so SGD is gradient descent to round-off, and the potential moved the particles."""
    X = np.full((6, 1), 0.7)
    risk = NetworkRisk(Feature.neuron("tanh", 1), X, np.tanh(X[:, 0]))
    energy = risk + Potential(lambda x: 0.5 * np.sum(x**2, axis=-1), grad=lambda x: x)
    theta0 = rng.normal(size=(4, 2))
    sgd = simulate(energy, theta0, (0, 0.5), step=0.05, method="sgd", batch_size=3, rng=3)
    np.testing.assert_allclose(sgd.theta, simulate(energy, theta0, (0, 0.5), step=0.05).theta, rtol=1e-13,
                               atol=1e-15)
    assert not np.allclose(sgd.theta[-1], simulate(risk, theta0, (0, 0.5), step=0.05).theta[-1])


def test_dimension_and_porous_medium_errors():
    energy = NetworkRisk(Feature.neuron("relu", 1, bias=True), np.zeros((4, 1)), np.zeros(4))
    with pytest.raises(ValueError, match="theta0 has dimension 2 but NetworkRisk.* needs 3"):
        simulate(energy, np.zeros((5, 2)), (0, 1), step=0.1)
    with pytest.raises(ValueError, match="PorousMedium term has no particle version"):
        simulate(PorousMedium(2), np.zeros((5, 2)), (0, 1), step=0.1)


def test_a_diverging_run_stops_with_its_step_and_time(rng):
    """Gradient descent on |x|²/2 with ε = 3 multiplies θ by −2 every step (issue 14: it ran
    to |θ| ≈ 3e301 without a word); it stops once the particles are far out and their
    energy far above its start, and keeps what was computed."""
    energy = Potential(lambda x: 0.5 * np.sum(x**2, axis=-1), grad=lambda x: x)
    theta0 = rng.normal(size=(10, 2))
    with pytest.raises(SimulationError, match=r"diverging: max \|θ\| = .* particle energy .* at step (\d+) "
                                              r"\(t = \d+\); the run stopped there") as error:
        simulate(energy, theta0, (0, 3000), step=3.0, save_at=[0, 3, 3000])
    partial = error.value.partial
    assert 8 <= partial.steps <= 15 and partial.t[-1] == 3 * partial.steps
    np.testing.assert_array_equal(partial.theta[0], theta0)
    np.testing.assert_allclose(partial.theta[-1], (-2.0) ** partial.steps * theta0)


def test_a_run_going_far_out_on_a_falling_energy_goes_on():
    """dθ/dt = 2θ on −|x|² (the energy falls): θ grows 2e4 times, by the same rule as the PDE."""
    outward = Potential(lambda x: -np.sum(x**2, axis=-1), grad=lambda x: -2 * x)
    run = simulate(outward, np.ones((3, 1)), (0, 5), step=0.01)
    np.testing.assert_allclose(run.theta[-1], 1.02**500, rtol=1e-12)


def test_a_diverging_term_without_a_particle_energy_stops_far_out():
    class Outward(Energy):  # moves particles, declares no particle energy
        def particle_velocity(self, theta, weights, batch=None):
            return theta

    with pytest.raises(SimulationError, match=r"diverging: max \|θ\| = .* times the start\) at step (2\d) "):
        simulate(Outward(), np.ones((3, 1)), (0, 300), step=3.0)


def test_a_span_that_is_a_whole_number_of_steps_takes_all_of_them():
    """0.7 / 0.007 is 99.99999999999999 in floating point: the run still takes 100 Euler
    steps (it catches steps counted by truncation instead of rounding)."""
    theta0 = np.array([[1.0, -0.5], [0.3, 0.8]])
    run = simulate(QUADRATIC, theta0, (0, 0.7), step=0.007)
    assert run.steps == 100
    euler = theta0 @ np.linalg.matrix_power(np.eye(2) - 0.007 * A, 100).T
    np.testing.assert_allclose(run.theta[-1], euler, rtol=1e-12)


@pytest.mark.parametrize("domain", [Box([-1, -1], [1, 1]), Ball([0, 0], 1.0)], ids=repr)
def test_projected_gradient_descent_without_noise_stays_inside(rng, domain):
    """Projected GD (no Entropy term): every step ends with the projection, so particles
    pushed outwards stop on the boundary (it catches projection only with noise)."""
    outward = Potential(lambda x: -np.sum(x**2, axis=-1), grad=lambda x: -2 * x)
    theta0 = 0.5 * rng.normal(size=(50, 2))
    theta0 = domain.project(theta0[np.linalg.norm(theta0, axis=1) > 0.1])  # none too near 0: all reach the wall
    run = simulate(outward, theta0, (0, 2), step=0.01, domain=domain, save_at=[0, 1, 2])
    assert all(domain.contains(theta).all() for theta in run.theta)
    assert not np.any(domain.contains(run.theta[-1] / 0.95))


def test_sgd_draws_a_fresh_batch_each_step_from_its_generator(rng):
    """SGD's batches come from the run's generator: they differ from step to step, and two
    seeds give two runs (it catches every step drawing the same batch)."""
    feature, teacher = Feature.fixed_output("tanh", 2), np.array([1.0, -1.0])
    batches = []

    def population(generator, size):
        X = generator.normal(size=(size, 2))
        batches.append(X)
        return X, np.tanh(X @ teacher)

    energy = NetworkRisk(feature, np.zeros((1, 2)), np.zeros(1), sampler=population)
    theta0 = 0.3 * rng.normal(size=(10, 2))
    simulate(energy, theta0, (0, 0.2), step=0.05, method="sgd", batch_size=4, rng=1)
    assert len(batches) == 4
    assert all(not np.array_equal(batches[k], batches[k + 1]) for k in range(3))
    X = rng.normal(size=(50, 2))
    data = NetworkRisk(feature, X, np.tanh(X @ teacher))
    one, two = (simulate(data, theta0, (0, 0.2), step=0.05, method="sgd", batch_size=4, rng=seed).theta[-1]
                for seed in (1, 2))
    assert not np.allclose(one, two)


def test_a_run_far_out_whose_negative_energy_rises_a_little_goes_on():
    """The runaway rule stops a run whose energy rose by more than ENERGY_RISE_FACTOR times
    |E_0|; an energy that starts negative (−1/2) and rises towards 0 far out has not
    (it catches the allowance taken from E_0 instead of |E_0|, zero for a negative start)."""

    class Outward(Energy):
        def particle_velocity(self, theta, weights, batch=None):
            return theta

        def particle_energy(self, theta, weights):
            return float(weights @ (-1 / (1 + np.sum(theta**2, axis=1))))

    run = simulate(Outward(), np.ones((3, 1)), (0, 10), step=0.01)
    np.testing.assert_allclose(run.theta[-1], 1.01**1000, rtol=1e-12)
