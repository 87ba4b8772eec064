"""Energy terms: first variations against finite differences of the value, the FFT
convolution against a direct sum, sums of terms, particle velocities."""

import numpy as np
import pytest

from solver import Entropy, Grid, Interaction, PorousMedium, Potential, Sum


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
