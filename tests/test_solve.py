"""Behaviour of ``solve``: save times, step bounds, step counts, silence off a terminal."""

import os
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
from conftest import assert_invariants

from solver import Grid, PorousMedium, solve
from solver.analytic import barenblatt
from solver.fv import keep_freed_memory, stable_step


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


def test_steps_do_not_page_fault_on_reused_memory():
    """solve has glibc keep freed memory (keep_freed_memory): a repeated run reuses its
    arrays' pages, a few faults, not the ~230 per step of memory returned to the system."""
    resource = pytest.importorskip("resource")
    grid = Grid([(-2, 2), (-2, 2)], 256)
    rho0 = grid.cell_averages(partial(barenblatt, m=2, C=0.1, t=1.0))
    run = partial(solve, PorousMedium(2), grid, rho0, (1.0, 1.1), scheme="rkl2")
    run()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    solution = run()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    if not keep_freed_memory():  # cached: solve's own call, if it made one
        pytest.skip("not glibc, or MALLOC_TOP_PAD_ set in the environment")
    assert solution.accepted >= 5
    assert faults < 100


def test_idle_threads_spin_briefly_unless_told_otherwise():
    """Importing solver sets GOMP_SPINCOUNT (read when OpenMP loads, with the first
    parallel kernel), keeping a value the environment already has."""
    code = "import os, solver; print(os.environ['GOMP_SPINCOUNT'])"
    for given, expected in ((None, "3000"), ("123", "123")):
        env = {key: value for key, value in os.environ.items() if key != "GOMP_SPINCOUNT"}
        if given is not None:
            env["GOMP_SPINCOUNT"] = given
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
        assert result.stdout.split() == [expected]
