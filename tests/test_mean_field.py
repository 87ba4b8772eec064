"""The PDE against gradient descent on m neurons: W2 falls like m^(−1/2), the PDE's own
grid error is below the particle error at m = 10⁴, and on the ReLU teacher problem the
particles follow the PDE's risk to global convergence."""

import numpy as np
import pytest

from solver import problems, solve
from solver.compare import fit_slope, grid_measure, wasserstein
from solver.particles import simulate

MS = (100, 1000, 10000)


def sliced_w2(grid, rho, theta, weights=None):
    return wasserstein(grid, rho, theta, weights, method="sliced", n_projections=100, refine=2)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["tanh-teacher", "rbf-mixture"])
def test_particles_converge_to_the_pde_in_w2(name):
    t_end = 1.0
    solutions = {}
    for cells in (64, 128):
        problem = problems.get(name, cells=cells, n_data=300)
        solutions[cells] = solve(problem.energy, problem.grid, problem.rho0, (0, t_end), max_step=0.02).rho[-1]
    coarse_grid = problems.get(name, cells=64, n_data=300).grid
    grid_error = sliced_w2(problem.grid, solutions[128], *grid_measure(coarse_grid, solutions[64], refine=4))
    distances = []
    for m in MS:
        runs = [simulate(problem.energy, problem.sample(np.random.default_rng(seed), m), (0, t_end), step=0.02)
                for seed in range(2)]
        distances.append(np.mean([sliced_w2(problem.grid, solutions[128], run.theta[-1]) for run in runs]))
    slope = fit_slope(MS, distances)
    assert -0.65 <= slope <= -0.35, (distances, slope)
    assert grid_error < distances[-1] / 2, (grid_error, distances)


@pytest.mark.slow
def test_relu_particles_follow_the_pde_to_zero_risk(relu_teacher_pde):
    problem, times, solution = relu_teacher_pde
    pde = np.array([problem.energy.value(rho, problem.grid) for rho in solution.rho])
    late = times >= problem.t_end / 2
    for m, tolerance in ((25, 0.6), (100, 0.35), (1000, 0.1)):  # m ≥ 5 m0, m0 = 5
        risks = np.mean([[problem.energy.risk(theta, run.weights) for theta in run.theta]
                         for run in (simulate(problem.energy, problem.sample(np.random.default_rng(seed), m),
                                              (0, problem.t_end), step=0.05, save_at=times) for seed in range(3))],
                        axis=0)
        assert np.all(np.diff(risks[1:]) < 0), (m, risks)
        assert np.all(np.abs(risks[late] / pde[late] - 1) < tolerance), (m, risks / pde)
        assert risks[-1] < 0.2 * pde[0]
