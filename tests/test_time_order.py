"""The order in time of the explicit schemes: SSP-RK2 (``scheme="explicit"``) and RKL2
super-steps are second order, measured on a fixed grid against a run with a much
smaller step, so that the spatial error cancels."""

from functools import partial

import numpy as np
import pytest
from conftest import assert_invariants, observed_order

from solver import Entropy, Grid, Potential, solve
from solver.analytic import gaussian


# (scheme, cells, step): each step below the run's stability limits, so that max_step sets every step.
# On 40 cells SSP-RK2's limit is the parabolic one, ≈ 0.018; on 200 cells RKL2 takes super-steps of
# 8, 11 and 15 stages (parabolic limit ≈ 7e-4) and the transport limit is ≈ 0.06.
@pytest.mark.slow
@pytest.mark.parametrize("scheme, cells, step", [("explicit", 40, 0.004), ("rkl2", 200, 0.01)])
def test_second_order_in_time(scheme, cells, step):
    """Ornstein–Uhlenbeck, V = |x|²/2 with τ = 1, from N(0.3, 1): a smooth flow (the Gaussian
    moves to 0). Steps dt, 2dt, 4dt; the reference takes dt/16. Measured orders 2.01 (SSP-RK2)
    and 1.96 (RKL2)."""
    grid = Grid([(-4, 4)], cells)
    energy = Potential(lambda x: 0.5 * np.sum(x**2, axis=-1)) + Entropy(1.0)
    rho0 = grid.cell_averages(partial(gaussian, mean=[0.3], cov=[[1.0]]))
    run = partial(solve, energy, grid, rho0, (0.0, 0.8), scheme=scheme)
    reference = run(max_step=step / 16).rho[-1]
    steps, errors = (step, 2 * step, 4 * step), []
    for dt in steps:
        solution = run(max_step=dt)
        assert_invariants(solution)
        assert solution.rejected == 0 and np.allclose(solution.history["dt"][1:], dt, rtol=1e-9, atol=0), dt
        errors.append(grid.integrate(np.abs(solution.rho[-1] - reference)))
    assert 1.8 <= observed_order(steps, errors) <= 2.3, errors
