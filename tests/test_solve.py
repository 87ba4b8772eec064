"""Behaviour of ``solve``: save times, step bounds, step counts, silence off a terminal."""

import sys
import types
from functools import partial

import numpy as np
import pytest
from conftest import assert_invariants

from solver import Entropy, Grid, PorousMedium, Potential, solve
from solver.analytic import barenblatt, gaussian
from solver.fv import stable_step
from solver.timeloop import blas_controller, one_blas_thread


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
    explicit_limit = stable_step(energy.first_variation(rho0, grid), energy.max_diffusivity(rho0, grid), grid)
    solution = solve(energy, grid, rho0, (1, 2), scheme="implicit", dt=0.1)
    assert solution.history["dt"][1:].max() >= 50 * explicit_limit
    assert_invariants(solution)


def test_no_progress_output_off_a_terminal(capsys):
    grid, rho0 = barenblatt_start()
    solve(PorousMedium(2), grid, rho0, (1, 2))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_a_step_that_cannot_move_t_stops_at_once():
    """A step below the floor (1e-14 of the span) or too short to change t stops the run
    at its first step with one line naming the time, the step and its bound, instead of
    running max_steps = 10⁷ steps that do not advance."""
    grid, rho0 = barenblatt_start()
    with pytest.raises(RuntimeError, match=r"^solve: the step fell below 1e-14 at t=1: step 1 would be "
                       r"dt = 1e-300, bounded by max_step, where t \+ dt == t; the run cannot reach t1 = 2$"):
        solve(PorousMedium(2), grid, rho0, (1, 2), max_step=1e-300)
    with pytest.raises(RuntimeError, match=r"^solve: the step fell below 1e-14 at t=0: step 1 would be "
                       r"dt = 1e-15, bounded by max_step; the run cannot reach t1 = 1$"):
        solve(PorousMedium(2), grid, rho0, (0, 1), max_step=1e-15)
    with pytest.raises(RuntimeError, match=r"at t=1e\+17: step 1 would be dt = \S+, bounded by the scheme's "
                       r"stability limit, where t \+ dt == t;"):
        solve(PorousMedium(2), grid, rho0, (1e17, 1e17 + 1e3))


def test_the_implicit_step_cap_learns_after_a_rejection():
    """Ornstein–Uhlenbeck, τ = 0.5, dt = 0.005 at 32²: Newton fails at dt and converges at
    dt/2. A cap that doubled back to dt after each accepted step rejected every other step
    (102 accepted, 94 rejected, 30 Newton iterations each); growing cautiously after a
    rejection, 82 accepted and 8 rejected."""
    A, b = np.array([[2.0, 0.5], [0.5, 1.0]]), np.array([0.5, -0.5])
    energy = Potential(lambda x: 0.5 * np.einsum("...i,ij,...j->...", x - b, A, x - b)) + Entropy(0.5)
    grid = Grid([(-4, 4)] * 2, 32)
    rho0 = grid.cell_averages(partial(gaussian, mean=np.array([-1.0, 1.0]), cov=np.diag([0.36, 0.16])))
    solution = solve(energy, grid, rho0 / grid.integrate(rho0), (0, 0.25), scheme="implicit", dt=0.005)
    assert_invariants(solution)
    assert 0 < solution.rejected <= 0.15 * solution.accepted, (solution.accepted, solution.rejected)
    assert solution.newton_iterations >= solution.accepted + 30 * solution.rejected


def test_one_blas_thread_limits_every_blas_and_finds_them_again_after_an_import(monkeypatch):
    """Inside the time loop's context every BLAS runs one thread; the libraries are found
    once per set of imported modules (finding them costs milliseconds per solve)."""
    from threadpoolctl import threadpool_info

    with one_blas_thread():
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and set(blas) == {1}, blas
    found = blas_controller.cache_info().misses
    with one_blas_thread():
        pass
    assert blas_controller.cache_info().misses == found
    monkeypatch.setitem(sys.modules, "a_module_imported_since", types.ModuleType("a_module_imported_since"))
    with one_blas_thread():
        pass
    assert blas_controller.cache_info().misses == found + 1


def test_a_step_that_raises_the_energy_beyond_round_off_is_rejected(monkeypatch):
    """The energy test's allowance is round-off, not a tolerance: from the steady state of
    V = x (all the mass in the first cell, against the wall), a step that moves 1e-9 of the
    mass to the last cell (F rises by about 1e-9, against an allowance near 2e-14) is
    rejected, and retried; the run's energy never rises."""
    from solver.timeloop import SSPRK2

    attempt, calls = SSPRK2.attempt, []

    def uphill_first(self, rho, xi, dt):
        new = attempt(self, rho, xi, dt)
        calls.append(dt)
        if len(calls) == 1:
            moved = 1e-9 / self.grid.h[0]
            new[0] -= moved
            new[-1] += moved
        return new

    monkeypatch.setattr(SSPRK2, "attempt", uphill_first)
    grid = Grid([(0, 1)], 32)
    rho0 = np.zeros(32)
    rho0[0] = 32.0
    solution = solve(Potential(lambda x: x[..., 0]), grid, rho0, (0, 0.01))
    assert solution.rejected == 1 and len(calls) == solution.accepted + 1
    assert solution.invariants()["energy_rise"] == 0
    assert_invariants(solution)
