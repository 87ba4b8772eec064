"""The Numba upwind kernel against its NumPy reference, and its conservation; the
positivity step bound and the RKL2 stage kernel against their references."""

import numpy as np
import pytest
from conftest import observed_order

from solver import Grid
from solver.fv import upwind_rate
from solver.kernels.upwind import (
    grid_rate_reference,
    grid_stage,
    grid_stage_reference,
    positivity_rate,
    positivity_rate_reference,
)

SHAPES = [(7,), (40,), (6, 5), (33, 40), (4, 5, 6), (9, 3, 40)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bc", ["wall", "periodic"])
@pytest.mark.parametrize("second_order", [True, False])
def test_kernel_matches_numpy_reference(rng, shape, bc, second_order):
    grid = Grid([(0, 1)] * len(shape), shape, bc=bc)
    rho = rng.random(shape) * (rng.random(shape) > 0.2)  # with vacuum cells
    xi = rng.normal(size=shape)
    fast = upwind_rate(rho, xi, grid, second_order)
    slow = upwind_rate(rho, xi, grid, second_order, kernel=grid_rate_reference)
    assert np.max(np.abs(fast - slow)) <= 1e-12 * np.max(np.abs(slow))
    stale = np.full(shape, np.nan)  # ``out`` is overwritten, not added to
    assert upwind_rate(rho, xi, grid, second_order, out=stale) is stale
    assert np.max(np.abs(stale - slow)) <= 1e-12 * np.max(np.abs(slow))


@pytest.mark.parametrize("shape", [(60,), (40, 50), (20, 40), (12, 14, 16)])
@pytest.mark.parametrize("bc", ["wall", "periodic"])
@pytest.mark.parametrize("centre, radius", [(0.5, 0.3), (0.05, 0.3), (0.85, 0.15)])
def test_kernel_with_compact_support(rng, shape, bc, centre, radius):
    """Mass in a ball amid empty cells (the kernel skips the columns without flux): in
    the middle, across the boundary (against the wall, or wrapped around the periodic
    faces), or up to the last cells only (a periodic face with mass on one side): rate
    and stage still match the references, and an empty density has zero rate."""
    grid = Grid([(0, 1)] * len(shape), shape, bc=bc)
    offsets = [abs(x - centre) for x in np.meshgrid(*grid.axes, indexing="ij")]
    if bc == "periodic":
        offsets = [np.minimum(d, 1 - d) for d in offsets]  # around the torus
    distance = np.sqrt(sum(d**2 for d in offsets))
    rho = rng.random(shape) * (distance < radius)
    xi = rng.normal(size=shape)
    for second_order in (True, False):
        fast = upwind_rate(rho, xi, grid, second_order, out=np.full(shape, np.nan))
        slow = upwind_rate(rho, xi, grid, second_order, kernel=grid_rate_reference)
        assert np.max(np.abs(fast - slow)) <= 1e-12 * np.max(np.abs(slow))
        assert np.all(fast[distance > radius + 3 * grid.h.max()] == 0)
    args = (1.0 / grid.h, grid.periodic, True, rho[::-1].copy(), rng.random(shape), rng.normal(size=shape),
            np.array([1.7, -0.8, 0.013, -0.004]))
    fused, expected = np.full(shape, np.nan), np.empty(shape)
    assert grid_stage(rho, xi, *args, fused) == grid_stage_reference(rho, xi, *args, expected)
    assert np.max(np.abs(fused - expected)) <= 1e-12 * np.max(np.abs(expected))
    assert not np.any(upwind_rate(np.zeros(shape), xi, grid, out=np.full(shape, np.nan)))


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


@pytest.mark.parametrize("shape", SHAPES + [(2,), (2, 5), (2, 2, 3)])
@pytest.mark.parametrize("bc", ["wall", "periodic"])
def test_positivity_rate_matches_numpy_reference(rng, shape, bc):
    grid = Grid([(0, 1)] * len(shape), shape, bc=bc)
    xi = rng.normal(size=shape)
    inv_h = 1.0 / grid.h
    expected = positivity_rate_reference(xi, inv_h, grid.periodic)
    assert positivity_rate(xi, inv_h, grid.periodic) == pytest.approx(expected, rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("shape", [(40,), (33, 40), (9, 8, 10)])
@pytest.mark.parametrize("bc", ["wall", "periodic"])
@pytest.mark.parametrize("second_order", [True, False])
def test_euler_step_at_the_positivity_limit_stays_positive(rng, shape, bc, second_order):
    """dt = 1/positivity_rate keeps ρ + dt L(ρ) ≥ 0 on rough data with vacuum; twice
    that step does not (the bound is not loose by a factor 2)."""
    grid = Grid([(0, 1)] * len(shape), shape, bc=bc)
    lowest = {1.0: [], 2.0: []}
    for _ in range(20):
        rho = rng.random(shape) * (rng.random(shape) > 0.3)
        xi = rng.normal(size=shape)
        rate = upwind_rate(rho, xi, grid, second_order)
        limit = 1.0 / positivity_rate(xi, 1.0 / grid.h, grid.periodic)
        for factor in lowest:
            lowest[factor].append((rho + factor * limit * rate).min() / rho.max())
    assert min(lowest[1.0]) >= -1e-14
    assert min(lowest[2.0]) < -1e-3


def test_rate_into_an_unsuitable_array_is_refused():
    """A view the kernel would have to copy would lose the rate, an array it reads would be
    corrupted: both are errors."""
    grid = Grid([(0, 1)] * 2, (6, 5))
    rho = np.ones((6, 5))
    with pytest.raises(ValueError, match="C-contiguous"):
        upwind_rate(rho, rho, grid, out=np.empty((5, 6)).T)
    with pytest.raises(ValueError, match="shape"):
        upwind_rate(rho, rho, grid, out=np.empty(30))
    read_only = np.empty((6, 5))
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        upwind_rate(rho, rho, grid, out=read_only)
    with pytest.raises(ValueError, match="shares memory"):  # written while it is read: the rate would be wrong
        upwind_rate(rho, np.zeros((6, 5)), grid, out=rho)
    with pytest.raises(ValueError, match="C-contiguous"):
        grid_stage(rho, rho, 1.0 / grid.h, grid.periodic, True, rho, rho, rho, np.zeros(4), np.empty((5, 6)).T)


def test_first_order_flux_by_hand():
    """Two cells, wall boundaries: the single face moves mass downhill in ξ."""
    grid = Grid([(0, 2)], 2)
    rate = upwind_rate(np.array([1.0, 3.0]), np.array([0.0, 2.0]), grid, second_order=False)
    # u = −(2 − 0)/1 = −2 < 0: flux = u ρ_east = −6; cell 0 gains 6, cell 1 loses 6
    np.testing.assert_array_equal(rate, [6.0, -6.0])
    # each cell has one face with |u| = 2: 2|u|/h = 4; dt = 1/4 empties cell 1 exactly
    assert positivity_rate(np.array([0.0, 2.0]), 1.0 / grid.h, grid.periodic) == 4.0


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
    order = observed_order(1 / np.array([32, 64, 128]), errors)
    assert 1.8 <= order <= 2.3, (errors, order)  # measured 1.98


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bc", ["wall", "periodic"])
def test_rkl2_stage_matches_numpy_reference(rng, shape, bc):
    """The stage folded into the rate pass equals the rate kernel followed by the stage
    formula bit for bit, matches the NumPy reference, and counts the negative values."""
    grid = Grid([(0, 1)] * len(shape), shape, bc=bc)
    rho, previous, start = (rng.random(shape) * (rng.random(shape) > 0.2) for _ in range(3))
    xi, start_rate = rng.normal(size=shape), rng.normal(size=shape)
    coefficients = np.array([1.7, -0.8, 0.013, -0.004])
    mu, nu, a, b = coefficients
    args = (1.0 / grid.h, grid.periodic, True, previous, start, start_rate, coefficients)
    fused = np.full(shape, np.nan)
    negative = grid_stage(rho, xi, *args, fused)
    rate = upwind_rate(rho, xi, grid)
    np.testing.assert_array_equal(fused, mu * rho + nu * previous + (1.0 - mu - nu) * start + a * rate + b * start_rate)
    expected = np.empty(shape)
    assert grid_stage_reference(rho, xi, *args, expected) == negative == np.count_nonzero(fused < 0) > 0
    assert np.max(np.abs(fused - expected)) <= 1e-12 * np.max(np.abs(expected))


@pytest.mark.parametrize("shape", [(33,), (6, 5), (4, 5, 6)])
def test_positivity_rate_of_a_tilt_between_walls(shape):
    """ξ = x_k, a uniform tilt along axis k between walls: |u| = 1 on every face along k, so
    the rate is 2/h_k exactly; the jump across the walls (where a periodic axis wraps, n_k − 1
    cells long) is no face and must not count (random ξ rarely puts the maximum at an end)."""
    grid = Grid([(0, 1)] * len(shape), shape)
    for axis in range(len(shape)):
        xi = grid.points[..., axis]
        expected = 2 / grid.h[axis]
        assert positivity_rate(xi, 1.0 / grid.h, grid.periodic) == pytest.approx(expected, rel=1e-12)
        assert positivity_rate_reference(xi, 1.0 / grid.h, grid.periodic) == pytest.approx(expected, rel=1e-12)
