"""The second-order implicit scheme (``scheme="bdf2"``, :class:`solver.timeloop.BDF2`): its
observed order in space and time together, on the Barenblatt profile, and its invariants
on every step from a start with vacuum."""

import json
import subprocess
import sys
from functools import partial

import numpy as np
import pytest
from conftest import ROOT, assert_invariants, observed_order

from solver import Entropy, Grid, PorousMedium, Potential, problems, solve, timeloop
from solver.analytic import barenblatt, gaussian, ornstein_uhlenbeck
from solver.discretization import Discretization
from solver.grid import nested_dissection
from solver.timeloop import BDF2


def test_second_order_in_space_and_time():
    """Ornstein–Uhlenbeck (V = x²/2, τ = 1) from N(0.3, 0.5) to t = 1 against the exact Gaussian,
    h and the tolerance refined together (tol = h²/2: the steps' error ∝ tol ∝ h²). Measured
    order 2.07 (errors 1.4e-3 to 2.3e-5 on 50 to 400 cells)."""
    A, b, tau = np.array([[1.0]]), np.array([0.0]), 1.0

    def exact(x, t):
        return gaussian(x, *ornstein_uhlenbeck(t, A, b, tau, np.array([0.3]), np.array([[0.5]])))

    energy = Potential(lambda x: 0.5 * np.sum(x**2, axis=-1)) + Entropy(tau)
    cells, errors = (50, 100, 200, 400), []
    for n in cells:
        grid = Grid([(-5, 5)], n)
        solution = solve(energy, grid, grid.cell_averages(partial(exact, t=0.0)), (0, 1), scheme="bdf2",
                         tol=0.5 * (10 / n) ** 2)
        assert_invariants(solution)
        errors.append(grid.integrate(np.abs(solution.rho[-1] - grid.cell_averages(partial(exact, t=1.0)))))
    assert 1.8 <= observed_order(1 / np.asarray(cells), errors) <= 2.3, errors
    assert errors[-1] <= 4e-5, errors


def test_barenblatt_order():
    """The porous medium (m = 2) in 1D from the Barenblatt profile at t = 1 to t = 2: order ≥ 1
    with the Lipschitz free boundary, as the explicit schemes. The error in time
    is kept below the spatial one: bdf2 controls it in W1 in 1D (Grid.error_norm), a norm in
    which tol 1e-3 leaves an L1 error of 3.5e-5 from 100 cells on; tol 3e-5 leaves 1.3e-6
    (measured: 4.2e-5 to 1.3e-6 on 50 to 400 cells, about 160 steps each)."""
    cells, errors = (50, 100, 200, 400), []
    for n in cells:
        grid = Grid([(-2, 2)], n)
        solution = solve(PorousMedium(2), grid, grid.cell_averages(partial(barenblatt, t=1.0)), (1, 2),
                         scheme="bdf2", tol=3e-5)
        assert_invariants(solution)
        errors.append(grid.integrate(np.abs(solution.rho[-1] - grid.cell_averages(partial(barenblatt, t=2.0)))))
    assert 1.0 <= observed_order(1 / np.asarray(cells), errors) <= 2.3, errors
    assert errors[-1] <= 5e-5, errors


@pytest.mark.parametrize("first_step", [None, 1e-3, 1.0])
def test_invariants_from_vacuum_at_any_first_step(first_step):
    """The JMM limit flow (porous medium with drift) from Unif[−0.6, 0.6]: vacuum on both sides,
    a jump at the front. Every step is positive, keeps the mass and lowers the energy, whatever
    the first step (the long ones are rejected by the error estimate or taken by backward Euler)."""
    problem = problems.get("jmm-bumps", delta=0, cells=128)
    solution = solve(problem.energy, problem.grid, problem.rho0, (0, 3), scheme="bdf2", dt=first_step)
    assert_invariants(solution)
    risk = [problem.energy.value(rho, problem.grid) for rho in solution.rho]
    assert risk[1] < 0.01 * risk[0], risk


@pytest.mark.parametrize("shape, bc", [((30,), "wall"), ((12, 9), ("periodic", "wall")), ((5, 6, 4), "wall")])
def test_second_order_jacobian_is_the_derivative_of_the_rate(shape, bc):
    """I − dt ∂L₂/∂ρ (limited reconstruction, both upwind sides, vacuum cells) against central
    differences of ρ ↦ ρ − dt L₂(ρ) (one-sided at the empty cells)."""
    grid = Grid([(-1, 1)] * len(shape), shape, bc=bc)
    energy = PorousMedium(2) + Potential(lambda x: np.sum(np.sin(3 * x), axis=-1))
    rho = np.random.default_rng(0).random(shape) + 0.1
    rho.ravel()[::7] = 0.0
    dt, eps = 0.3, 1e-7

    def G(r):
        return (r - dt * grid.rate(r, energy.first_variation(r, grid))).ravel()

    matrix = grid.jacobian(rho, energy.first_variation(rho, grid), energy.second_variation_diagonal(rho, grid), dt,
                           second_order=True).toarray()
    differences = np.empty_like(matrix)
    for k in range(rho.size):
        bump = np.zeros(rho.size)
        bump[k] = eps
        up, down = rho + bump.reshape(shape), rho - bump.reshape(shape) if rho.ravel()[k] > eps else rho
        differences[:, k] = (G(up) - G(down)) / (eps if rho.ravel()[k] <= eps else 2 * eps)
    assert np.abs(matrix - differences).max() <= 1e-6 * np.abs(differences).max()


def test_benchmark_quick():
    """benchmarks/implicit_vs_rkl2.py --quick --repeats 2: its three tables and the JSON line
    (two interleaved pairs timed), bdf2's risk curve within 1% of the reference, its Barenblatt
    L1 error within 3× of rkl2's and its observed order there ≥ 1 (2.0 on 4² to 16²), and both
    schemes at the confined porous medium's steady state by t = 18."""
    script = ROOT / "benchmarks" / "implicit_vs_rkl2.py"
    result = subprocess.run([sys.executable, str(script), "--quick", "--repeats", "2"], capture_output=True, text=True,
                            cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line[:3] for line in lines if line.startswith("(")] == ["(a)", "(b)", "(c)"]
    data = json.loads(lines[-1])
    assert data["benchmark"] == "implicit_vs_rkl2" and data["implicit_speedup"] > 0
    assert len(data["speedup_per_pair"]) == 2 and min(data["speedup_per_pair"]) > 0, data["speedup_per_pair"]
    assert data["risk_deviation"]["bdf2"] < 0.01 and data["risk_deviation_same_cells"] < 0.01, data
    assert data["barenblatt_l1_ratio"] <= 3, data["barenblatt_l1_ratio"]
    assert data["barenblatt_order"]["bdf2"] >= 1, data["barenblatt_order"]
    assert all(row["distances"][-1] < 1e-5 for row in data["rows"] if "distances" in row), data["rows"]


@pytest.mark.parametrize("second_order", [False, True])
def test_banded_solve_equals_the_sparse_one(second_order):
    """On a 1D grid with walls, Grid.factor_jacobian's banded LU (fv.upwind_jacobian_bands)
    gives the sparse LU's answer, vacuum cells and both upwind sides included."""
    grid = Grid([(-1, 1)], 40)
    energy = PorousMedium(2) + Potential(lambda x: np.sum(np.sin(3 * x), axis=-1))
    rho = np.random.default_rng(1).random(grid.shape) + 0.1
    rho[::7] = 0.0
    xi, curvature, rhs = energy.first_variation(rho, grid), energy.second_variation_diagonal(rho + 0.1, grid), rho - 0.5
    banded = grid.factor_jacobian(rho, xi, curvature, 0.3, second_order)(rhs)
    sparse = Discretization.factor_jacobian(grid, rho, xi, curvature, 0.3, second_order)(rhs)
    matrix = grid.jacobian(rho, xi, curvature, 0.3, second_order)
    assert np.abs(matrix @ sparse - rhs).max() <= 1e-12 and np.abs(banded - sparse).max() <= 1e-12


@pytest.mark.parametrize("second_order", [False, True])
@pytest.mark.parametrize("shape, bc", [((24, 20), "wall"), ((21, 18), ("periodic", "wall")), ((16, 16), "periodic"),
                                       ((12, 10, 11), "wall")])
def test_dissection_solve_equals_the_minimum_degree_one(shape, bc, second_order):
    """In 2D and 3D, Grid.factor_jacobian's LU in nested-dissection order gives the answer of the
    base's LU in minimum-degree order (the solve bdf2 used before), vacuum cells and both upwind
    sides included; the order is a permutation of the cells."""
    grid = Grid([(-1, 1)] * len(shape), shape, bc=bc)
    order = nested_dissection(grid.shape, grid.periodic)
    assert np.array_equal(np.sort(order), np.arange(grid.size))
    energy = PorousMedium(2) + Potential(lambda x: np.sum(np.sin(3 * x), axis=-1))
    rho = np.random.default_rng(3).random(grid.shape) + 0.1
    rho.ravel()[::7] = 0.0
    xi, curvature, rhs = energy.first_variation(rho, grid), energy.second_variation_diagonal(rho + 0.1, grid), rho - 0.5
    dissection = grid.factor_jacobian(rho, xi, curvature, 0.3, second_order)(rhs)
    minimum_degree = Discretization.factor_jacobian(grid, rho, xi, curvature, 0.3, second_order)(rhs)
    matrix = grid.jacobian(rho, xi, curvature, 0.3, second_order)
    assert np.abs(matrix @ dissection.ravel() - rhs.ravel()).max() <= 1e-12
    assert np.abs(dissection - minimum_degree).max() <= 1e-12


@pytest.mark.parametrize("kept_step", [0.02, 1.0])
def test_chord_newton_equals_newton(kept_step):
    """BDF2.newton with a matrix kept from another step (``kept_step`` against this step's 0.01:
    near, and so far off that its first correction fails to halve the residual and is undone)
    reaches the solution of Newton with a new matrix at every iteration, within the stopping
    rule's tolerance (measured: 3.7e-6 of the step's change, and 0 after the undone correction), with
    the same mass to round-off; the near matrix needs no factorization, the far one one."""
    grid = Grid([(-2, 2)] * 2, 24)
    energy = PorousMedium(2)
    rho = grid.cell_averages(partial(barenblatt, t=1.0))
    start = rho + 0.01 * grid.rate(rho, energy.first_variation(rho, grid))
    solutions = {}
    for name in ("exact", "chord"):
        stepper = BDF2(energy, grid, tol=1e-3)
        if name == "chord":
            stepper.factors, stepper.factored_order = stepper.factor(rho, energy.first_variation(rho, grid), kept_step,
                                                                     True), True
        solutions[name] = stepper.newton(rho, 0.01, start, rho)
        assert solutions[name] is not None and solutions[name].min() >= 0
        assert abs(grid.integrate(solutions[name]) - grid.integrate(rho)) <= 1e-14 * grid.integrate(rho)
        if name == "chord":  # the near matrix is kept; the far one is replaced once, at the start
            assert stepper.factorizations == (0 if kept_step == 0.02 else 1), stepper.factorizations
    change = grid.error_norm(solutions["exact"] - rho)
    assert grid.error_norm(solutions["chord"] - solutions["exact"]) <= 1e-4 * change, change


def test_no_fallback_at_the_steady_state(monkeypatch):
    """From the discrete Gibbs state of a potential with entropy (ξ = F' = 0 to round-off, so
    the test's Σ|ρξ|w part vanishes) every BDF2 step is kept: F's round-off of a few ulps is
    within :func:`~solver.timeloop.energy_tolerance`. With the tolerance's ulps of F left
    out, 3 of the 9 steps fell back to backward Euler (F up by 2–4e-16)."""
    steppers = []

    class Recorded(BDF2):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            steppers.append(self)

    monkeypatch.setitem(timeloop.SCHEMES, "bdf2", Recorded)
    grid = Grid([(-4, 4)], 64)
    potential = lambda x: 0.5 * np.sum(x**2, axis=-1)  # noqa: E731
    energy = Potential(potential) + Entropy(1.0)
    gibbs = np.exp(-potential(grid.points) - 1.0)
    solution = solve(energy, grid, gibbs, (0, 10), scheme="bdf2", dt=0.1)
    assert solution.accepted >= 5 and steppers[0].fallbacks == 0, (solution.accepted, steppers[0].fallbacks)
    assert np.abs(solution.rho[-1] - gibbs).max() <= 1e-13


def test_error_norm_is_the_cumulative_mass_in_1d():
    """Grid.error_norm in 1D: (h/|Ω|) Σ_i |Σ_(k≤i) v_k h| by hand (a unit mass moved by one cell
    of h = 0.5 on [0, 2] gives W1 = 0.5 over |Ω| = 2); the L1 integral in 2D."""
    grid = Grid([(0, 2)], 4)
    assert grid.error_norm(np.array([2.0, -2.0, 0.0, 0.0])) == pytest.approx(0.25)
    assert grid.error_norm(np.array([1.0, 0.0, 0.0, -1.0])) == pytest.approx(0.5 * (0.5 + 0.5 + 0.5) / 2)
    plane = Grid([(0, 2)] * 2, 4)
    values = np.random.default_rng(2).standard_normal(plane.shape)
    assert plane.error_norm(values) == pytest.approx(plane.integrate(np.abs(values)))


@pytest.mark.parametrize("steps", [(0.01, 0.01, 0.01), (0.01, 0.015, 0.008)])
def test_the_error_estimate_is_the_local_error(steps):
    """Milne's estimate E_c/(E_c + |E_p|)‖ρⁿ⁺¹ − p‖ against the true local error: BDF2 from
    three exact past states of the semi-discrete flow (Ornstein–Uhlenbeck on 200 cells, SSP-RK2
    at a 64th of the step as the reference) to ρ(tₙ + dt), equal and unequal steps (d₂, d₁,
    dt). Their ratio tends to 1 as the steps shrink (measured 1.09 and 1.05 at these steps,
    1.04 and 1.05 at half of them); a wrong weight (0.4 for 2/11 at equal steps) gives 2.2."""
    grid = Grid([(-5, 5)], 200)
    energy = Potential(lambda x: 0.5 * np.sum(x**2, axis=-1)) + Entropy(1.0)
    rho0 = grid.cell_averages(partial(gaussian, mean=[0.3], cov=[[0.5]]))
    ratios = []
    for scale in (1.0, 0.5):
        d2, d1, dt = (scale * step for step in steps)
        times = np.cumsum([0.0, d2, d1, dt])
        exact = solve(energy, grid, rho0, (0, times[-1]), save_at=times, max_step=dt / 64).rho
        stepper = BDF2(energy, grid, tol=1e-6)  # Newton to a hundredth of 1e-6 of the step's change
        stepper.past = [(exact[1], d1), (exact[0], d2)]
        predictor = stepper.predictor(exact[2], energy.first_variation(exact[2], grid), dt)
        omega = dt / d1  # BDF2's variable-step coefficients (the class doc)
        history = ((1 + omega) ** 2 * exact[2] - omega**2 * exact[1]) / (1 + 2 * omega)
        new = stepper.newton(history, (1 + omega) / (1 + 2 * omega) * dt, predictor, exact[2])
        ratios.append(stepper.local_error(new, predictor, dt) / grid.error_norm(new - exact[3]))
    assert 0.9 <= ratios[0] <= 1.2 and abs(ratios[1] - 1) < abs(ratios[0] - 1), ratios


def test_dissection_keeps_the_fill_of_a_minimum_degree_order():
    """The order matters for speed only (any permutation solves alike): the LU of the 128²
    second-order Newton matrix in nested-dissection order fills no more than 1.5 times
    COLAMD's (measured 1.08; a one-line separator instead of two, 3.9)."""
    import scipy.sparse.linalg

    grid = Grid([(-1, 1)] * 2, (128, 128))
    rho = np.random.default_rng(3).random(grid.shape) + 0.1
    energy = PorousMedium(2) + Potential(lambda x: np.sum(np.sin(3 * x), axis=-1))
    matrix = grid.jacobian(rho, energy.first_variation(rho, grid), energy.second_variation_diagonal(rho, grid), 0.3,
                           True)
    order = nested_dissection(grid.shape, grid.periodic)
    options = {"diag_pivot_thresh": 0.1, "options": {"SymmetricMode": True}}
    dissection = scipy.sparse.linalg.splu(matrix[order][:, order].tocsc(), permc_spec="NATURAL", **options)
    colamd = scipy.sparse.linalg.splu(matrix.tocsc(), permc_spec="COLAMD", **options)
    assert dissection.L.nnz + dissection.U.nnz <= 1.5 * (colamd.L.nnz + colamd.U.nnz)
