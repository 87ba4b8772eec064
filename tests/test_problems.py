"""The problem presets on the PDE side: energy decay, mass and positivity on every step;
global convergence of the ReLU teacher-student problem (c)."""

import numpy as np
import pytest
from conftest import assert_invariants

from solver import problems, solve


@pytest.mark.parametrize("name", ["tanh-teacher", "rbf-mixture"])
def test_presets_dissipate(name):
    problem = problems.get(name, cells=32, n_data=200)
    solution = solve(problem.energy, problem.grid, problem.rho0, (0, 1), save_at=[0, 0.5, 1])
    assert_invariants(solution)
    values = [problem.energy.value(rho, problem.grid) for rho in solution.rho]
    assert values[-1] < 0.95 * values[0], values


def test_relu_teacher_pde_risk_falls_toward_zero(relu_teacher_pde):
    """Chizat–Bach: from mass in every direction, the flow heads for the global minimum (zero
    risk): the risk falls at every save, below 0.12 of its start, and still falls at the end
    of this short run (the global convergence itself: tests/test_global_convergence.py)."""
    problem, times, solution = relu_teacher_pde
    assert_invariants(solution)
    risk = np.array([problem.energy.value(rho, problem.grid) for rho in solution.rho])
    assert np.all(np.diff(risk) < 0), risk
    assert risk[-1] < 0.12 * risk[0], risk / risk[0]
    assert risk[-1] / risk[-2] < 0.95  # still falling at the end


def test_an_option_the_preset_does_not_take_is_refused_by_name():
    with pytest.raises(ValueError, match="preset 'relu-sphere' does not take cells; it takes size, "):
        problems.get("relu-sphere", cells=10)


def test_unknown_preset():
    with pytest.raises(ValueError, match="unknown problem 'nope'; the presets are"):
        problems.get("nope")
