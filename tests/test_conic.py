"""Conic particle gradient descent: the lifted flow in the limit of small steps, energy
decrease, and global convergence to the convex optimum over fine directions."""

import dataclasses

import numpy as np
import pytest
from conftest import observed_order

from solver.conic import conic_gradient_descent
from solver.convex import convex_minimum
from solver.lift import (
    ReluRegression,
    SphereMeasure,
    balanced_relu_init,
    circle_directions,
    lift,
    lifted_flow,
    relu_features,
)

TEACHER = np.array([0.4, 2.5, 4.4])  # angles of a 3-neuron teacher with output signs +, −, +


@pytest.fixture(scope="module")
def problem():
    """Inputs x on the unit circle (60-point midpoint quadrature of the uniform population,
    no bias: ν± on S¹), labels of the teacher, weight decay λ = 0.01 (λ' = 0.02)."""
    X = circle_directions(2 * np.pi * (np.arange(60) + 0.5) / 60)
    y = relu_features(circle_directions(TEACHER), X) @ np.array([1.0, -1.0, 1.0])
    return ReluRegression.from_data(X, y, weight_decay=0.01)


def uniform_start(m):
    """m atoms per species at the midpoints of m equal arcs, total mass ½ each."""
    directions = circle_directions(2 * np.pi * (np.arange(m) + 0.5) / m)
    return SphereMeasure(np.vstack([directions, directions]), np.full(2 * m, 0.5 / m),
                         np.concatenate([np.ones(m), -np.ones(m)]))


def convex_value(problem, K, offset=0.0):
    directions = circle_directions(2 * np.pi * (np.arange(K) + offset) / K)
    solution = convex_minimum(relu_features(directions, problem.inputs), problem.targets, problem.penalty,
                              quadrature=problem.quadrature)
    assert solution.kkt_residual <= 1e-10
    return solution.value


def test_small_steps_follow_the_lifted_flow_to_first_order(problem, rng):
    """With α = 2, β = 1 the iteration is a first-order discretization of the lifted flow of
    gradient descent in w: the error at t = 1 halves with η (measured ratios 1.9, 2.2, 1.9)."""
    start = lift(balanced_relu_init(6, 2, rng), np.full(6, 1 / 6))
    reference = lifted_flow(problem, start, [1.0], 1e-3).predictions[0]
    errors = [np.max(np.abs(conic_gradient_descent(problem, start, eta, round(1 / eta)).measure.prediction(
        problem.inputs) - reference)) for eta in (0.04, 0.02, 0.01)]
    assert 0.85 < observed_order([0.04, 0.02, 0.01], errors) < 1.15, errors


def test_relu_units_default_to_the_reaction_of_plain_gradient_descent(problem):
    """ReluRegression.reaction is the α = 2 of the lift of gradient descent in w, the default;
    the default is the problem's own reaction, not a constant 2 (a problem whose reaction
    reads 3 runs the α = 3 run)."""
    assert problem.reaction == 2.0
    def run(problem, **options):
        return conic_gradient_descent(problem, uniform_start(8), 0.05, 20, **options).energies

    np.testing.assert_array_equal(run(problem), run(problem, reaction=2.0))
    reacting_at_three = type("ReactingAtThree", (type(problem),), {"reaction": 3.0})
    other = reacting_at_three(**{field.name: getattr(problem, field.name) for field in dataclasses.fields(problem)
                                 if field.init})
    np.testing.assert_array_equal(run(other), run(problem, reaction=3.0))
    assert not np.allclose(run(other), run(problem))


def test_energy_never_increases_for_a_small_step(problem):
    energies = conic_gradient_descent(problem, uniform_start(32), 0.05, 2000).energies
    assert np.all(np.diff(energies) <= 0), np.max(np.diff(energies))
    assert energies[-1] < 0.2 * energies[0]


def test_many_particles_from_a_uniform_start_reach_the_optimum_over_fine_directions(problem):
    """32 atoms per species, η = 0.2, 3000 iterations, against the convex minimum F*_K on K
    equally spaced directions: F*_8192 is the reference, |F*_2048 − F*_8192| the
    discretization error of the finest directions. The moving particles end within twice that
    of F*_8192 (measured 1e-7 below it, the error 6.3e-7) and far below F*_32 on the
    32 directions they started from (3.1e-4 above F*_8192)."""
    fine, finer = convex_value(problem, 2048), convex_value(problem, 8192)
    coarse = convex_value(problem, 32, offset=0.5)
    discretization = abs(fine - finer)
    run = conic_gradient_descent(problem, uniform_start(32), 0.2, 3000)
    assert abs(run.energies[-1] - finer) <= 2 * discretization
    assert run.energies[-1] < coarse - 100 * discretization
    # the masses gather near the teacher's directions, with the teacher's signs
    angles = np.arctan2(run.measure.directions[:, 1], run.measure.directions[:, 0]) % (2 * np.pi)
    heavy = run.measure.masses > 0.05 * run.measure.masses.max()
    distance = np.abs((angles[heavy, None] - TEACHER[None, :] + np.pi) % (2 * np.pi) - np.pi)
    assert np.all(distance.min(axis=1) < 0.1)
    nearest = distance.argmin(axis=1)
    np.testing.assert_array_equal(run.measure.signs[heavy], np.array([1.0, -1.0, 1.0])[nearest])


def test_without_transport_it_is_multiplicative_weights_on_the_fixed_directions(problem):
    """β = 0: the directions stay put and the masses approach the convex optimum on them."""
    start = uniform_start(32)
    run = conic_gradient_descent(problem, start, 2.0, 3000, transport=0.0)
    np.testing.assert_allclose(run.measure.directions, start.directions, atol=1e-14)
    assert run.energies[-1] - convex_value(problem, 32, offset=0.5) <= 1e-6


def test_bad_input_is_refused(problem):
    start = uniform_start(4)
    with pytest.raises(ValueError, match=r"negative mass: masses\[1\] = -1"):
        conic_gradient_descent(problem, SphereMeasure(start.directions, np.where(np.arange(8) == 1, -1.0,
                                                                                  start.masses), start.signs), 0.1, 1)
    with pytest.raises(ValueError, match="species"):
        conic_gradient_descent(problem, SphereMeasure(start.directions, start.masses), 0.1, 1)
    with pytest.raises(ValueError, match="step η = 1000 is too large"):
        conic_gradient_descent(problem, start, 1000.0, 5)


def test_one_iteration_is_the_exact_mirror_step(problem):
    """One iteration: m_j ← m_j exp(−αηF'_j) exactly (masses stay positive, however large
    the step), s_j ← retract(s_j − βη∇F'_j) (it catches the linearized mass update
    m_j(1 − αηF'_j)₊)."""
    start = uniform_start(8)
    eta = 0.5
    xi, gradient = problem.conic_gradient(start)
    run = conic_gradient_descent(problem, start, eta, 1)
    np.testing.assert_allclose(run.measure.masses, start.masses * np.exp(-2.0 * eta * xi), rtol=1e-13)
    np.testing.assert_allclose(run.measure.points, problem.retract(start.points - eta * gradient), rtol=1e-13)


def test_negative_transport_is_refused(problem):
    """β < 0 would be ascent in the directions (it catches the check of transport dropped)."""
    with pytest.raises(ValueError, match="transport >= 0"):
        conic_gradient_descent(problem, uniform_start(4), 0.1, 1, transport=-1.0)
