"""Bad input gets a clear error naming the argument, what is wrong and what to do."""

import numpy as np
import pytest

from solver import Energy, Entropy, Grid, PorousMedium, Potential, solve
from solver.domains import Ball, Box
from solver.timeloop import SimulationError


@pytest.fixture
def grid():
    return Grid([(-1, 1), (-1, 1)], (6, 5))


def density(grid):
    return np.ones(grid.shape)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r: r - 2, "rho0 has negative values"),
        (lambda r: np.where(r > 0, np.nan, r), "rho0 holds NaN or infinite values"),
        (lambda r: r * np.inf, "rho0 holds NaN or infinite values"),
        (lambda r: 0 * r, "rho0 has zero mass"),
        (lambda r: r[:-1], r"rho0 has shape \(5, 5\) but the grid has shape \(6, 5\)"),
        (lambda r: r.ravel(), r"rho0 has shape \(30,\)"),
    ],
)
def test_bad_densities(grid, change, message):
    with pytest.raises(ValueError, match=message):
        solve(PorousMedium(2), grid, change(density(grid)), (0, 1))


@pytest.mark.parametrize("t_span", [(1, 1), (2, 1), (0, np.inf), (0, np.nan), (1,), "ab"])
def test_bad_time_spans(grid, t_span):
    with pytest.raises(ValueError, match="t_span must be"):
        solve(PorousMedium(2), grid, density(grid), t_span)


@pytest.mark.parametrize("save_at", [[-1], [0.5, 2], [np.nan], []])
def test_bad_save_times(grid, save_at):
    with pytest.raises(ValueError, match="save_at must be finite times inside t_span"):
        solve(PorousMedium(2), grid, density(grid), (0, 1), save_at=save_at)


@pytest.mark.parametrize("m", [1, 0.5, -2, np.nan])
def test_porous_medium_exponent(m):
    with pytest.raises(ValueError, match="m must be > 1.*use Entropy"):
        PorousMedium(m)


@pytest.mark.parametrize("tau", [-0.1, np.nan, np.inf])
def test_negative_temperature(tau):
    with pytest.raises(ValueError, match="tau must be finite and >= 0"):
        Entropy(tau)


def test_potential_not_finite_on_the_grid(grid):
    wall = Potential(lambda x: np.where(x[..., 0] > 0.6, np.inf, 0.0))
    with pytest.raises(ValueError, match=r"Potential: V is not finite on the grid \(e.g. at the cell \(5, 0\).*make V"):
        solve(wall, grid, density(grid), (0, 1))
    with pytest.raises(ValueError, match="Potential: V is not finite on the grid"):
        solve(PorousMedium(2) + Potential(np.full(grid.shape, np.nan)), grid, density(grid), (0, 1))


def test_potential_array_of_wrong_shape(grid):
    with pytest.raises(ValueError, match=r"V on the grid has shape \(3,\), expected \(6, 5\)"):
        solve(Potential(np.zeros(3)), grid, density(grid), (0, 1))


@pytest.mark.parametrize("bc", ["neumann", ("wall", "open"), ("wall",)])
def test_unknown_boundary_condition(bc):
    with pytest.raises(ValueError, match="bc must be one of"):
        Grid([(0, 1), (0, 1)], 4, bc=bc)


@pytest.mark.parametrize(
    "bounds, shape, message",
    [([(1, 0)], 4, "lo < hi"), ([(0, 1)] * 4, 4, "1 to 3 pairs"), ([(0, 1)], 1, "each >= 2"),
     ([(-1e308, 1e308)], 8, r"cells of sides \[inf\]: a cell's volume must be a positive finite number"),
     ([(0, 1e-200)] * 2, 8, "a cell's volume must be a positive finite number")],
)
def test_bad_grids(bounds, shape, message):
    with pytest.raises(ValueError, match=message):
        Grid(bounds, shape)


@pytest.mark.parametrize("save_at", [[0, 1, 0.5], [0, 0.5, 0.5, 1]], ids=["unsorted", "repeated"])
def test_save_times_are_kept_as_given_or_refused(grid, save_at):
    """One density per entry of save_at: times out of order or repeated are an error, not
    silently sorted and merged (which made len(t) != len(save_at))."""
    with pytest.raises(ValueError, match="save_at must be increasing, without repeats"):
        solve(PorousMedium(2), grid, density(grid), (0, 1), save_at=save_at)


@pytest.mark.parametrize("options, message", [
    ({"dt": 0.1}, "dt: the explicit scheme chooses its own steps and takes no dt"),
    ({"scheme": "rkl2", "dt": 0.1}, "dt: the rkl2 scheme chooses its own steps"),
    ({"scheme": "implicit", "max_step": 0.1}, "max_step: the implicit scheme takes no max_step"),
    ({"scheme": "implicit", "cfl": 0.5}, "cfl: the implicit scheme takes no cfl"),
    ({"scheme": "bdf2", "cfl": 0.5}, "cfl: the bdf2 scheme takes no cfl"),
    ({"tol": 1e-3}, "tol: the explicit scheme takes no tol"),
    ({"scheme": "implicit", "tol": 1e-3}, "tol: the implicit scheme takes no tol"),
])
def test_options_of_another_scheme_are_refused(grid, options, message):
    with pytest.raises(ValueError, match=message):
        solve(PorousMedium(2), grid, density(grid), (0, 1), **options)


@pytest.mark.parametrize("shape", [16.7, (6, 5.5), 16.0])
def test_cell_counts_are_integers(shape):
    with pytest.raises(ValueError, match="shape must give whole cell counts"):
        Grid([(-1, 1), (-1, 1)], shape)


def test_bad_scheme_options(grid):
    with pytest.raises(ValueError,
                       match=r"scheme must be one of \('explicit', 'rkl2', 'implicit', 'bdf2'\), got 'rk4'"):
        solve(PorousMedium(2), grid, density(grid), (0, 1), scheme="rk4")
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        solve(PorousMedium(2), grid, density(grid), (0, 1), scheme="implicit", dt=-1)
    with pytest.raises(ValueError, match="max_step must be > 0"):
        solve(PorousMedium(2), grid, density(grid), (0, 1), max_step=0)
    with pytest.raises(ValueError, match="cfl must be in"):
        solve(PorousMedium(2), grid, density(grid), (0, 1), cfl=2)
    for tol in (0, 1, -1e-3, np.nan):
        with pytest.raises(ValueError, match=r"tol must be in \(0, 1\)"):
            solve(PorousMedium(2), grid, density(grid), (0, 1), scheme="bdf2", tol=tol)
    with pytest.raises(ValueError, match="dt must be finite and > 0"):
        solve(PorousMedium(2), grid, density(grid), (0, 1), scheme="bdf2", dt=0)


def test_input_is_not_modified(grid):
    rho = density(grid)
    rho[0, 0] = 3
    before = rho.copy()
    solve(PorousMedium(2), grid, rho, (0, 0.01))
    np.testing.assert_array_equal(rho, before)


class TurnsNaN(Potential):
    """V = |x|²/2, whose first variation turns NaN from its ``after``-th evaluation on:
    everywhere, or (``first_row``) only in the first row of cells."""

    def __init__(self, after, first_row=False):
        super().__init__(lambda x: 0.5 * np.sum(x**2, axis=-1))
        self.after, self.first_row, self.calls = after, first_row, 0

    def first_variation(self, rho, grid):
        self.calls += 1
        xi = super().first_variation(rho, grid)
        if self.calls >= self.after:
            xi = xi.copy()
            xi[0 if self.first_row else slice(None)] = np.nan
        return xi


@pytest.mark.parametrize("scheme", ["explicit", "rkl2"])
def test_a_nan_far_from_the_mass_stops_the_run(scheme):
    """The kernels skip the faces between empty cells, so a NaN in F' there leaves ρ
    finite: the check on F' itself stops the run."""
    grid = Grid([(-1, 1), (-1, 1)], (40, 5))
    start = np.zeros(grid.shape)
    start[30:] = 1.0  # the mass does not reach the first row before t = 0.05
    energy = PorousMedium(2) + TurnsNaN(after=4, first_row=True)
    with pytest.raises(SimulationError, match=r"non-finite density, energy or first variation at step \d+ "):
        solve(energy, grid, start, (0, 0.05), scheme=scheme)


@pytest.mark.parametrize("scheme", ["explicit", "rkl2"])
def test_a_nan_during_a_run_stops_it_and_keeps_what_was_computed(grid, scheme):
    energy = PorousMedium(2) + TurnsNaN(after=8)
    message = r"non-finite density, energy or first variation at step \d+ \(from t = "
    with pytest.raises(SimulationError, match=message) as error:
        solve(energy, grid, density(grid), (0, 1), save_at=np.linspace(0, 1, 101), scheme=scheme)
    partial = error.value.partial
    assert partial.accepted >= 1 and np.all(np.isfinite(partial.rho))
    assert partial.t[0] == 0 and 0 < partial.t[-1] < 1 and len(partial.t) == len(partial.rho)
    assert partial.history["t"][-1] == partial.t[-1] and len(partial.history["t"]) == partial.accepted + 1
    np.testing.assert_allclose(grid.integrate(partial.rho[-1]), grid.integrate(density(grid)), rtol=1e-12)


class Custom(Energy):
    """A user's energy, with a value and a first variation as given."""

    def __init__(self, value, first_variation):
        self._value, self._first_variation = value, first_variation

    def value(self, rho, grid):
        return self._value(rho)

    def first_variation(self, rho, grid):
        return self._first_variation(rho)


@pytest.mark.parametrize(
    "energy, message",
    [
        (Custom(lambda rho: 0.0, lambda rho: np.zeros(rho.size - 1)),
         r"F'\(ρ\) must be an array of ρ's shape \(6, 5\), got shape \(29,\)"),
        (Custom(lambda rho: 0.0, lambda rho: 1.0), r"F'\(ρ\) must be an array of ρ's shape \(6, 5\), got shape \(\)"),
        (Custom(lambda rho: rho, lambda rho: rho), r"F\(ρ\) must be a number, got an array of shape \(6, 5\)"),
        (Custom(lambda rho: 0.0, lambda rho: np.where(rho > 0, np.nan, rho)),
         r"F\(ρ\) = 0.0 and F'\(ρ\) at the start are not all finite"),
        (Custom(lambda rho: np.inf, lambda rho: rho), "are not all finite"),
        (Energy(), r"Energy defines no value\(rho, grid\)"),
    ],
)
def test_an_energy_must_give_a_finite_number_and_an_array_of_rhos_shape(grid, energy, message):
    with pytest.raises((ValueError, NotImplementedError), match=message):
        solve(energy, grid, density(grid), (0, 0.01))


@pytest.mark.parametrize(
    "make, message",
    [(lambda: Box([np.nan], [1]), "need lower < upper"), (lambda: Box([-1e308], [1e308]), "need finite corners"),
     (lambda: Box([[0, 0]], [[1, 1]]), "one coordinate each"), (lambda: Ball([np.nan, 0], 1), "a finite center"),
     (lambda: Ball([0, 0], np.inf), "a finite radius > 0"), (lambda: Ball([0, 0], 0), "a finite radius > 0")],
)
def test_bad_domains(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("options, message", [
    ({"scheme": ["explicit"]}, r"scheme must be one of .* got \['explicit'\]"),
    ({"cfl": "0.5"}, "cfl must be a number, got '0.5'"),
    ({"scheme": "implicit", "dt": "0.1"}, "dt must be a number"),
    ({"max_step": None, "cfl": [0.5]}, "cfl must be a number"),
])
def test_options_of_the_wrong_type_are_refused(grid, options, message):
    with pytest.raises(ValueError, match=message):
        solve(PorousMedium(2), grid, density(grid), (0, 1), **options)


@pytest.mark.parametrize("bc", [None, 3, ["wall", None]])
def test_boundary_conditions_of_the_wrong_type_are_refused(bc):
    with pytest.raises(ValueError, match="bc must be one of"):
        Grid([(0, 1), (0, 1)], 4, bc=bc)


def test_cell_averages_of_a_function_of_the_wrong_shape_are_refused(grid):
    with pytest.raises(ValueError, match=r"f must map points of shape \(\.\.\., 2\) to values of shape \(\.\.\.\): "
                                         r"for points of shape \(6, 5, 2\) it gave \(6, 5, 2\)"):
        grid.cell_averages(lambda x: x)
