"""Behaviour of ``solve``: save times, step bounds, step counts, silence off a terminal."""

from functools import partial

import numpy as np
from conftest import assert_invariants

from solver import Grid, PorousMedium, solve
from solver.analytic import barenblatt
from solver.fv import stable_step


def barenblatt_start(cells=32):
    grid = Grid([(-2, 2)], cells)
    return grid, grid.cell_averages(partial(barenblatt, t=1.0))


def test_save_times_are_hit_exactly_and_steps_are_bounded():
    grid, rho0 = barenblatt_start()
    save = [1.0, 1.1, 1.37, 2.0]
    solution = solve(PorousMedium(2), grid, rho0, (1, 2), save_at=save, max_step=0.01)
    np.testing.assert_array_equal(solution.t, save)
    assert solution.rho.shape == (4, 32)
    assert set(save) <= set(solution.history["t"])
    assert solution.history["dt"][1:].max() <= 0.01
    assert_invariants(solution)


def test_implicit_steps_far_beyond_the_explicit_limit():
    grid, rho0 = barenblatt_start(256)
    energy = PorousMedium(2)
    explicit_limit = stable_step(energy.first_variation(rho0, grid), energy.max_diffusivity(rho0), grid)
    solution = solve(energy, grid, rho0, (1, 2), scheme="implicit", dt=0.1)
    assert solution.history["dt"][1:].max() >= 50 * explicit_limit
    assert_invariants(solution)


def test_no_progress_output_off_a_terminal(capsys):
    grid, rho0 = barenblatt_start()
    solve(PorousMedium(2), grid, rho0, (1, 2))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
