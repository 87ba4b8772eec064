"""The reaction of Wasserstein–Fisher–Rao flows, ∂tρ = ∇·(ρ∇F') − βF'ρ, in the time loop:
exact against the pure reaction (second order in time), positive, energy decreasing, the
mass balanced to round-off at every step (mass − mass₀ = source) and in agreement with
d/dt ∫ρ = −β∫F'ρ, convergent in space, the same on several species (each species
balanced alone), on meshes and under MPI; the schemes that cannot take it refuse it."""


import numpy as np
import pytest
from conftest import ROOT, assert_invariants, observed_order, require, serial_and_parallel

from solver import Entropy, Grid, Potential, Species, solve

BETA = 1.5


class Reacting(Potential):
    """∫Vρ driving a Wasserstein–Fisher–Rao flow of rate β (F' = V: transport down V,
    growth where V < 0, decay where V > 0)."""

    def __init__(self, V, beta=BETA):
        super().__init__(V)
        self.reaction = beta


@pytest.fixture
def circle():
    return Grid([(0, 2 * np.pi)], [64], bc="periodic")


def cosine(points):
    return np.cos(points[..., 0])


def wave(points):
    return 1 + 0.5 * np.sin(points[..., 0])


def assert_balanced(solution, rtol=1e-13):
    """Every accepted step, from the history: ρ ≥ 0, F not rising beyond round-off
    (:func:`conftest.assert_invariants`), and |mass − mass₀ − source| ≤ ``rtol`` mass₀."""
    h = solution.history
    assert set(h) == {"t", "dt", "energy", "mass", "min", "source"}
    assert np.abs(h["mass"] - h["mass"][0] - h["source"]).max() <= rtol * h["mass"][0]
    assert_invariants(solution, mass_rtol=rtol)


def assert_mass_follows_the_balance(solution, beta):
    """For F = ∫Vρ (F' = V, so ∫F'ρ = F): the source is the trapezoid sum of
    −β∫F'ρ dt = −βF dt over the steps, to O(dt²) (the scheme takes F' at its stage, not
    at the step's end)."""
    h = solution.history
    trapezoid = np.concatenate([[0.0], np.cumsum(-beta * h["dt"][1:] * (h["energy"][1:] + h["energy"][:-1]) / 2)])
    assert np.abs(h["source"] - trapezoid).max() <= h["dt"].max() ** 2 * np.abs(h["source"]).max()


# -- the pure reaction -------------------------------------------------------------------------
@pytest.mark.parametrize("c", [0.7, -0.7])
def test_a_constant_potential_is_a_pure_reaction_of_second_order(circle, c):
    """V = c: no transport, ρ(t) = ρ₀ exp(−βct) (decay for c > 0, growth for c < 0), and
    SSP-RK2 is second order in time."""
    rho0 = circle.initial_density(wave)
    steps = 2.0 ** -np.arange(2, 6)  # exact in binary: the steps land on t = 2 exactly
    errors = []
    for max_step in steps:
        solution = solve(Reacting(np.full(circle.shape, c)), circle, rho0, (0, 2), max_step=max_step)
        assert_balanced(solution)
        assert solution.history["dt"][1:] == pytest.approx(max_step)
        errors.append(np.abs(solution.rho[-1] - rho0 * np.exp(-BETA * c * 2)).max())
        assert solution.history["source"][-1] == pytest.approx(circle.integrate(rho0) * (np.exp(-BETA * c * 2) - 1),
                                                               rel=max_step**2)
    assert observed_order(steps, errors) == pytest.approx(2.0, abs=0.1), errors


def test_the_step_limit_gains_the_reaction(circle):
    """The forward-Euler limit of L_β: 1/(β max V) without transport, 1/(1/T + β max V⁺)
    with the transport limit T."""
    rho0 = circle.initial_density(wave)
    pure = solve(Reacting(np.full(circle.shape, 0.7)), circle, rho0, (0, 20))
    assert pure.history["dt"][1:-1] == pytest.approx(0.9 / (BETA * 0.7), rel=1e-14)
    V = circle.initial_density(cosine) + 2
    transport = circle.step_limits(rho0, V, 0.0)[0]
    both = solve(Reacting(V), circle, rho0, (0, 1))
    assert both.history["dt"][1] == pytest.approx(0.9 / (1 / transport + BETA * V.max()), rel=1e-14)
    assert both.history["dt"][1] < 0.9 * transport
    assert_balanced(both)


def test_growth_is_stepped_by_the_same_limit(circle):
    """Where F' < 0 the reaction grows mass, which positivity does not bound: the limit
    takes max |ξ|, so a pure growth without max_step keeps steps of 0.9/(β|c|), each of
    the accuracy of a decaying step at the same limit (ρ₀ e^(β|c|t) to t = 4, a hundredfold
    growth, missed by 25%; a single step to t = 4 reached a fifth of it; max_step for
    accuracy)."""
    rho0 = circle.initial_density(wave)
    growth = solve(Reacting(np.full(circle.shape, -0.7)), circle, rho0, (0, 4))
    assert growth.history["dt"][1:-1] == pytest.approx(0.9 / (BETA * 0.7), rel=1e-14)
    ratio = growth.rho[-1] / (rho0 * np.exp(BETA * 0.7 * 4))
    assert np.all((0.7 < ratio) & (ratio < 1)), ratio
    assert_balanced(growth)


# -- a Wasserstein–Fisher–Rao flow on the circle -----------------------------------------------
def test_wfr_flow_on_the_circle_is_positive_dissipative_balanced_and_converges(circle):
    """V = cos x on the periodic circle: mass moves toward x = π and grows there; every
    step keeps the invariants, and the grids converge at second order to a fine one."""
    def run(n):
        grid = Grid([(0, 2 * np.pi)], [n], bc="periodic")
        return grid, solve(Reacting(cosine), grid, grid.initial_density(wave), (0, 1))

    _, fine = run(1024)
    cells, errors = [32, 64, 128, 256], []
    for n in cells:
        grid, solution = run(n)
        assert_balanced(solution)
        assert_mass_follows_the_balance(solution, BETA)
        reference = fine.rho[-1].reshape(n, -1).mean(axis=1)  # the fine cells' averages over the coarse cells
        errors.append(grid.integrate(np.abs(solution.rho[-1] - reference)))
    assert solution.history["mass"][-1] > 1.5 * solution.history["mass"][0]  # the reaction made mass
    assert 1.7 <= observed_order(1 / np.array(cells), errors) <= 2.3, errors  # measured 1.88


def test_wfr_flow_with_entropy_reaches_the_unnormalized_gibbs_density():
    """F = ∫Vρ + τ∫ρ log ρ: the flow stops where F' = V + τ(log ρ + 1) = 0, at
    ρ = exp(−1 − V/τ), of any mass (a discrete fixed point too: ξ = 0 makes both the fluxes
    and the reaction vanish), reached at the rate βτ of the linearized reaction."""
    grid, tau = Grid([(0, 2 * np.pi)], [32], bc="periodic"), 0.5
    # about 900 steps; an energy test that took the round-off near ξ = 0 for a rise stalled here
    solution = solve(Reacting(cosine) + Entropy(tau), grid, grid.initial_density(wave), (0, 30), max_steps=3000)
    assert_balanced(solution)
    gibbs = np.exp(-1 - np.cos(grid.points[..., 0]) / tau)
    assert np.abs(solution.rho[-1] - gibbs).max() <= 1e-6 * gibbs.max()
    assert abs(solution.history["mass"][-1] - grid.integrate(wave(grid.points))) > 0.2  # mass did change


# -- several species ------------------------------------------------------------------------------
def test_wfr_flow_on_two_species_balances_each_species(circle):
    """Opposite potentials ±cos x on two species: each species is the base's flow alone
    (steps fixed by max_step), so each balances its own mass with its own source, and the
    total source is the sum of the two."""
    species = Species(circle, ("plus", "minus"))
    V = np.stack([circle.initial_density(cosine)] * 2) * np.array([[1.0], [-1.0]])
    rho0 = np.stack([circle.initial_density(wave), circle.initial_density(lambda x: 0.5 + 0.4 * np.cos(x[..., 0]))])
    save, step = np.linspace(0, 1, 9), 2.0**-7  # exact in binary: the steps land on the save times
    together = solve(Reacting(V), species, rho0, (0, 1), save_at=save, max_step=step)
    assert_balanced(together)
    assert together.history["dt"][1:] == pytest.approx(step)
    sources = []
    for k in range(2):
        alone = solve(Reacting(V[k]), circle, rho0[k], (0, 1), save_at=save, max_step=step)
        np.testing.assert_allclose(together.rho[:, k], alone.rho, rtol=1e-12)
        masses = np.array([species.integrate_species(rho)[k] for rho in together.rho])
        source = alone.history["source"][np.isin(alone.history["t"], save)]
        assert np.abs(masses - masses[0] - source).max() <= 1e-13 * masses[0]
        sources.append(alone.history["source"])
    np.testing.assert_allclose(together.history["source"], sources[0] + sources[1], rtol=1e-13, atol=1e-14)
    assert abs(sources[0][-1]) > 0.1 and abs(sources[1][-1]) > 0.1


# -- meshes ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def square():
    require("dolfinx")
    import runpy

    from solver import fem

    return fem.read(runpy.run_path(str(ROOT / "meshes" / "generate.py"))["path"]("square", 0))


def test_reaction_on_a_mesh(square):
    """The pure reaction to the SSP-RK2 factor per step exactly, and a flow down V = x₁ + 0.3
    (mass made on the left, lost on the right) keeping every invariant."""
    rho0 = square.initial_density(lambda x: 1 + 0.5 * x[..., 0] * x[..., 1])
    pure = solve(Reacting(np.full(square.shape, 0.7)), square, rho0, (0, 1), max_step=0.1)
    z = BETA * 0.7 * 0.1
    np.testing.assert_allclose(pure.rho[-1], rho0 * (1 - z + z * z / 2) ** 10, rtol=1e-13)
    assert_balanced(pure)
    flow = solve(Reacting(lambda x: x[..., 0] + 0.3), square, rho0, (0, 1))
    assert_balanced(flow)
    assert_mass_follows_the_balance(flow, BETA)
    assert flow.rho[-1][square.points[:, 0] < -0.9].min() > flow.rho[-1][square.points[:, 0] > 0.9].max()


MPI_SCRIPT = """
import sys
import numpy as np
from solver import Potential, Species, fem, solve
mesh = fem.read(sys.argv[1])
species = Species(mesh, ("plus", "minus"))
energy = Potential(np.stack([mesh.points[:, 0] + 0.3, 0.5 - mesh.points[:, 1]]))
energy.reaction = 1.5
solution = solve(energy, species, species.initial_density([lambda x: 1 + x[..., 0] ** 2, lambda x: 2 + x[..., 1]]),
                 (0, 1))
columns = [mesh.gather(part) for part in solution.rho[-1]]  # collective: on every rank
if mesh.comm.rank == 0:
    h = solution.history
    np.save(sys.argv[2], np.column_stack([columns[0][0], *(values for _, values in columns)]))
    np.save(sys.argv[2] + ".history.npy", np.column_stack([h[key] for key in ("t", "dt", "mass", "source")]))
"""


def test_reaction_on_species_under_mpi_gives_the_serial_answer(square, tmp_path):
    """The step limit takes max V⁺ over all ranks (V = x₁ + 0.3 peaks on one rank only): the
    same steps, densities and sources as in one process."""
    serial_and_parallel(MPI_SCRIPT, tmp_path, ROOT / "meshes" / "square_0.msh")
    # the vertices in one order: by coordinates rounded (gather sorts them by the last bits on the square's edges)
    serial, parallel = (np.load(tmp_path / f"{name}.npy") for name in ("serial", "parallel"))
    serial, parallel = (values[np.lexsort(np.round(values[:, :2], 12).T[::-1])] for values in (serial, parallel))
    np.testing.assert_allclose(parallel, serial, rtol=1e-12, atol=1e-14)
    serial, parallel = (np.load(tmp_path / f"{name}.npy.history.npy") for name in ("serial", "parallel"))
    np.testing.assert_allclose(parallel, serial, rtol=1e-12, atol=1e-14)
    assert np.abs(serial[:, 2] - serial[0, 2] - serial[:, 3]).max() <= 1e-13 * serial[0, 2]


# -- what the time loop refuses --------------------------------------------------------------------
@pytest.mark.parametrize("scheme, options", [("rkl2", {}), ("implicit", {"dt": 0.1}), ("bdf2", {})])
def test_the_schemes_without_reaction_refuse_it(circle, scheme, options):
    with pytest.raises(ValueError, match=r"has a reaction \(β = 1.5: a Wasserstein–Fisher–Rao flow\), which the "
                                         r"(RKL2|BackwardEuler|BDF2) scheme does not take; use scheme 'explicit'"):
        solve(Reacting(cosine), circle, circle.initial_density(wave), (0, 1), scheme=scheme, **options)


@pytest.mark.parametrize("beta", [-1.0, np.inf, np.nan])
def test_a_negative_or_non_finite_reaction_is_refused(circle, beta):
    with pytest.raises(ValueError, match="the reaction β must be finite and >= 0"):
        solve(Reacting(cosine, beta), circle, circle.initial_density(wave), (0, 1))


def test_terms_with_different_reactions_are_refused(circle):
    with pytest.raises(ValueError, match="disagree on reaction"):
        solve(Reacting(cosine, 1.0) + Reacting(cosine, 2.0), circle, circle.initial_density(wave), (0, 1))


def test_without_reaction_the_source_stays_zero(circle):
    solution = solve(Potential(cosine) + Entropy(0.1), circle, circle.initial_density(wave), (0, 1))
    assert not solution.history["source"].any()
    assert_balanced(solution, rtol=1e-14)
