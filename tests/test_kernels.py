"""The Numba upwind kernel against its NumPy reference, and its conservation; the RKL2
stage kernel against its reference."""

import numpy as np
import pytest

from solver import Grid
from solver.fv import upwind_rate
from solver.kernels.stages import rkl2_stage, rkl2_stage_reference
from solver.kernels.upwind import grid_rate_reference

SHAPES = [(7,), (40,), (6, 5), (33, 40), (4, 5, 6), (9, 3, 40)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bc", ["wall", "periodic"])
@pytest.mark.parametrize("second_order", [True, False])
def test_kernel_matches_numpy_reference(rng, shape, bc, second_order):
    grid = Grid([(0, 1)] * len(shape), shape, bc=bc)
    rho = rng.random(shape) * (rng.random(shape) > 0.2)  # with vacuum cells
    xi = rng.normal(size=shape)
    fast, fast_speed = upwind_rate(rho, xi, grid, second_order, speeds=True)
    slow, slow_speed = upwind_rate(rho, xi, grid, second_order, speeds=True, kernel=grid_rate_reference)
    assert np.max(np.abs(fast - slow)) <= 1e-12 * np.max(np.abs(slow))
    np.testing.assert_allclose(fast_speed, slow_speed, rtol=1e-12)
    stale = np.full(shape, np.nan)  # ``out`` is overwritten, not added to
    assert upwind_rate(rho, xi, grid, second_order, out=stale) is stale
    assert np.max(np.abs(stale - slow)) <= 1e-12 * np.max(np.abs(slow))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bc", ["wall", "periodic"])
def test_rate_conserves_mass_and_dissipates(rng, shape, bc):
    """Σ dρ/dt |cell| = 0 (fluxes cancel) and dF/dt = Σ ξ dρ/dt |cell| ≤ 0 (upwinding)."""
    grid = Grid([(0, 1)] * len(shape), shape, bc=bc)
    rho = rng.random(shape)
    xi = rng.normal(size=shape)
    rate = upwind_rate(rho, xi, grid)
    assert abs(grid.integrate(rate)) <= 1e-12 * grid.integrate(np.abs(rate))
    assert grid.integrate(xi * rate) < 0


def test_rate_into_an_unsuitable_array_is_refused():
    """A view the kernel would have to copy would lose the rate: it is an error."""
    grid = Grid([(0, 1)] * 2, (6, 5))
    rho = np.ones((6, 5))
    with pytest.raises(ValueError, match="C-contiguous"):
        upwind_rate(rho, rho, grid, out=np.empty((5, 6)).T)
    with pytest.raises(ValueError, match="shape"):
        upwind_rate(rho, rho, grid, out=np.empty(30))


def test_first_order_flux_by_hand():
    """Two cells, wall boundaries: the single face moves mass downhill in ξ."""
    grid = Grid([(0, 2)], 2)
    rate, speed = upwind_rate(np.array([1.0, 3.0]), np.array([0.0, 2.0]), grid, second_order=False, speeds=True)
    # u = −(2 − 0)/1 = −2 < 0: flux = u ρ_east = −6; cell 0 gains 6, cell 1 loses 6
    np.testing.assert_array_equal(rate, [6.0, -6.0])
    assert speed[0] == 2.0


def test_reconstruction_is_second_order_on_smooth_data():
    """On a smooth periodic profile the rate converges to ∇·(ρ∇ξ) at order ≈ 2."""
    errors = []
    for n in (32, 64, 128):
        grid = Grid([(0, 2 * np.pi)], n, bc="periodic")
        x = grid.axes[0]
        rho, xi = 2 + np.sin(x), np.cos(x)
        exact = np.cos(x) * -np.sin(x) + (2 + np.sin(x)) * -np.cos(x)  # (ρ ξ')'
        rate = upwind_rate(rho, xi, grid)
        errors.append(grid.integrate(np.abs(rate - exact)))
    order = -np.polyfit(np.log([32, 64, 128]), np.log(errors), 1)[0]
    assert order >= 1.8, (errors, order)


@pytest.mark.parametrize("in_place", [False, True])
def test_rkl2_stage_matches_numpy_reference(rng, in_place):
    """The fused stage equals the NumPy expression, also when it overwrites Y_(j−2)
    (as SuperStep does), and returns the minimum."""
    current, previous, start, current_rate, start_rate = (rng.normal(size=1000) for _ in range(5))
    coefficients = (1.7, -0.8, 0.013, -0.004)
    expected = np.empty(1000)
    lowest_expected = rkl2_stage_reference(current, previous, start, current_rate, start_rate, *coefficients, expected)
    out = previous.copy() if in_place else np.empty(1000)
    lowest = rkl2_stage(current, out if in_place else previous, start, current_rate, start_rate, *coefficients, out)
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    assert lowest == pytest.approx(lowest_expected, rel=1e-12) and lowest == out.min()
