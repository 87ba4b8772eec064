"""The order in time of the explicit schemes: SSP-RK2 (``scheme="explicit"``) and RKL2
super-steps are second order, measured on a fixed grid against a run with a much
smaller step, so that the spatial error cancels; and RKL2's stages, against its
amplification factor on y' = λy."""

from functools import partial

import numpy as np
import pytest
from conftest import assert_invariants, observed_order

from solver import Entropy, Grid, Potential, solve
from solver.analytic import gaussian
from solver.timeloop import RKL_MAX_STAGES, rkl2_coefficients, rkl2_stages


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


def rkl2_amplification(stages, z):
    """R_s(z): one RKL2 step of :func:`rkl2_coefficients` on y' = λy, z = λ dt, from y = 1."""
    first, rows = rkl2_coefficients(stages)
    previous, current = np.ones_like(z), 1 + first * z
    for mu, nu, mu_rate, gamma_rate in rows:
        following = mu * current + nu * previous + (1 - mu - nu) + mu_rate * z * current + gamma_rate * z
        previous, current = current, following
    return current


def test_rkl2_stages_are_stable_and_second_order():
    """For dt = r forward-Euler parabolic limits (the eigenvalues of a diffusion then lie in
    z = λ dt ∈ [−2r, 0], by Gershgorin) the stages RKL2 takes, :func:`rkl2_stages`, are the
    fewest whose nominal limit (s² + s − 2)/4 covers r, and its amplification factor stays
    within 1 on the whole interval (one stage fewer, the count a +1/4 in place of +9/4 would
    give, is unstable for most r); and R_s(z) = e^z + O(z³) for every s."""
    for ratio in np.linspace(1.001, (RKL_MAX_STAGES**2 + RKL_MAX_STAGES - 2) / 4, 800):
        stages = rkl2_stages(ratio)
        assert (stages**2 + stages - 2) / 4 >= ratio > ((stages - 1) ** 2 + stages - 3) / 4, ratio
        assert np.abs(rkl2_amplification(stages, np.linspace(-2 * ratio, 0, 2001))).max() <= 1 + 1e-12, ratio
    z = -np.array([1e-3, 2e-3])
    for stages in (3, 10, RKL_MAX_STAGES):
        assert np.all(np.abs(rkl2_amplification(stages, z) - np.exp(z)) <= np.abs(z) ** 3), stages
