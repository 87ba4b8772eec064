"""Several species on one discretization (solver.species.Species): each species evolves as
it would alone on the base, the operators are the base's species by species, the energy
and the discretization agree on the species, and bad input gets a clear error."""

import numpy as np
import pytest
import scipy.sparse
from conftest import assert_invariants, require

from solver import Entropy, Grid, Interaction, Potential, Species, solve
from solver.energies import Sum

NAMES = ("plus", "minus")


@pytest.fixture
def circle():
    return Grid([(0, 2 * np.pi)], [40], bc="periodic")


@pytest.fixture
def species(circle):
    return Species(circle, NAMES)


def opposite_potentials(base):
    """V = cos x for the first species and −cos x for the second, as an array (S, *base.shape)."""
    cos = np.cos(base.points[..., 0])
    return np.stack([cos, -cos])


def two_bumps(base):
    """Two positive densities of different masses on the base."""
    x = base.points[..., 0]
    return np.stack([1 + 0.5 * np.sin(x), 0.5 + 0.25 * np.cos(2 * x)])


class Named(Potential):
    """A potential that names the species it needs."""

    def __init__(self, V, names):
        super().__init__(V)
        self.species = names


def test_the_shapes_and_the_reductions_are_over_all_species(circle, species):
    values = two_bumps(circle)
    assert species.shape == (2, 40) and species.dim == 1 and species.names == NAMES and species.global_size == 40
    assert species.points.shape == (2, 40, 1) and np.array_equal(species.points[1], circle.points)
    assert species.weights.shape == (2, 40) and np.array_equal(species.weights[0], circle.weights)
    masses = species.integrate_species(values)
    assert masses.shape == (2,) and np.allclose(masses, [2 * np.pi, np.pi], rtol=1e-14)
    assert species.integrate(values) == pytest.approx(3 * np.pi, rel=1e-14)
    assert species.minimum(values) == values[1].min() and species.maximum(values) == values[0].max()
    assert species.all_finite(values) and not species.all_finite(np.where(values == values.max(), np.inf, values))
    assert species.whole(values) is values  # a grid is whole on one process


def test_initial_density_takes_one_function_per_species(circle, species):
    fs = [lambda x: 1 + np.sin(x[..., 0]), lambda x: np.cos(x[..., 0]) ** 2]
    rho = species.initial_density(fs)
    assert rho.shape == species.shape
    assert all(np.array_equal(rho[k], circle.initial_density(fs[k])) for k in range(2))
    assert np.array_equal(species.initial_density(dict(zip(reversed(NAMES), reversed(fs)))), rho)
    with pytest.raises(ValueError, match=r"one function per species \('plus', 'minus'\), got 1"):
        species.initial_density(fs[:1])
    with pytest.raises(ValueError, match="one function per species"):
        species.initial_density({"plus": fs[0], "other": fs[1]})


@pytest.mark.parametrize("scheme", ["explicit", "rkl2"])
def test_each_species_evolves_as_alone_on_the_base(circle, species, scheme):
    """Transport inside each species and none between: with the steps fixed by max_step,
    the two species are the base's two runs to round-off, and each keeps its own mass."""
    V, rho0 = opposite_potentials(circle), two_bumps(circle)
    options = dict(scheme=scheme, max_step=0.002, save_at=[0, 0.1, 0.2])
    together = solve(Potential(V) + Entropy(0.2), species, rho0, (0, 0.2), **options)
    assert_invariants(together)
    assert together.history["dt"][1:].max() == pytest.approx(0.002)
    for k in range(2):
        alone = solve(Potential(V[k]) + Entropy(0.2), circle, rho0[k], (0, 0.2), **options)
        np.testing.assert_allclose(together.rho[:, k], alone.rho, rtol=1e-12, atol=1e-14)
        masses = [species.integrate_species(rho)[k] for rho in together.rho]
        assert np.allclose(masses, circle.integrate(rho0[k]), rtol=1e-13, atol=0)
    assert not np.allclose(together.rho[-1], rho0, rtol=1e-2)  # the species moved (oppositely)


def test_the_implicit_scheme_uses_the_block_diagonal_jacobian(circle, species):
    V, rho0 = opposite_potentials(circle), two_bumps(circle)
    xi = V + 0.2 * np.log(rho0)
    curvature = 0.2 / rho0
    blocks = [circle.jacobian(rho0[k], xi[k], curvature[k], 0.01) for k in range(2)]
    matrix = species.jacobian(rho0, xi, curvature, 0.01)
    assert scipy.sparse.issparse(matrix) and matrix.shape == (80, 80)
    dense = matrix.toarray()
    assert np.array_equal(dense, scipy.linalg.block_diag(*(block.toarray() for block in blocks)))
    assert not dense[:40, 40:].any() and not dense[40:, :40].any()
    together = solve(Potential(V) + Entropy(0.2), species, rho0, (0, 0.2), scheme="implicit", dt=0.02)
    assert_invariants(together, mass_rtol=1e-13)
    for k in range(2):
        alone = solve(Potential(V[k]) + Entropy(0.2), circle, rho0[k], (0, 0.2), scheme="implicit", dt=0.02)
        np.testing.assert_allclose(together.rho[-1, k], alone.rho[-1], rtol=1e-10)


def test_one_species_may_be_empty(circle, species):
    rho0 = np.stack([two_bumps(circle)[0], np.zeros(circle.shape)])
    solution = solve(Potential(opposite_potentials(circle)), species, rho0, (0, 0.5))
    assert_invariants(solution)
    assert not solution.rho[-1, 1].any()


def test_write_results_on_a_grid(tmp_path, circle, species):
    rho = np.stack([two_bumps(circle)] * 2)
    files, arrays = species.write_results(tmp_path, [0.0, 1.0], rho)
    assert files == {} and np.array_equal(arrays["bounds"], circle.bounds) and list(arrays["species"]) == list(NAMES)


def test_write_results_and_whole_on_a_mesh(tmp_path):
    require("dolfinx")
    import runpy
    from pathlib import Path

    from solver import fem

    generate = runpy.run_path(str(Path(__file__).resolve().parent.parent / "meshes" / "generate.py"))
    square = fem.read(generate["path"]("square", 0))
    species = Species(square, NAMES)
    rho = species.initial_density([lambda x: 1 + x[..., 0] ** 2, lambda x: 2 + x[..., 1]])
    files, arrays = species.write_results(tmp_path, [0.0], rho[None])
    assert set(files) == {f"{name}/densities.{ext}" for name in NAMES for ext in ("xdmf", "h5")}
    assert all((tmp_path / name).stat().st_size > 0 for name in files)
    # the whole mesh's arrays in the order of the vertices' coordinates (on any number of ranks)
    assert np.array_equal(arrays["weights"], square.whole(square.weights)) and list(arrays["species"]) == list(NAMES)
    order = np.lexsort(square.points.T[::-1])
    assert np.array_equal(species.whole(rho), rho[:, order]) and np.array_equal(species.part(species.whole(rho)), rho)


# -- the energy's species ------------------------------------------------------------------------
def test_the_energy_and_the_density_agree_on_the_species(circle, species):
    V, rho0 = opposite_potentials(circle), two_bumps(circle)
    assert_invariants(solve(Named(V, NAMES) + Entropy(0.2), species, rho0, (0, 0.1)))
    with pytest.raises(ValueError, match=r"needs the species \('a', 'b'\) but the density holds the species "
                                         r"\('plus', 'minus'\)"):
        solve(Named(V, ("a", "b")), species, rho0, (0, 0.1))
    with pytest.raises(ValueError, match=r"needs the species \('plus', 'minus'\) but the density holds one density: "
                                         r"run it on Species"):
        solve(Named(V[0], NAMES), circle, rho0[0], (0, 0.1))


def test_sum_rules_for_species_and_reaction(circle):
    plain, named = Potential(np.zeros(4)), Named(np.zeros(4), NAMES)
    assert plain.species is None and plain.reaction == 0.0
    assert (plain + Entropy(1.0)).species is None and (plain + named).species == NAMES
    assert (named + plain + Named(np.zeros(4), NAMES)).species == NAMES
    with pytest.raises(ValueError, match=r"disagree on species: .* has \('plus', 'minus'\), .* has \('a', 'b'\)"):
        Sum([named, Named(np.zeros(4), ("a", "b"))]).species
    one, two = Potential(np.zeros(4)), Potential(np.zeros(4))
    one.reaction, two.reaction = 2.0, 2.0
    assert (plain + Entropy(1.0)).reaction == 0.0 and (one + plain).reaction == 2.0 and (one + two).reaction == 2.0
    two.reaction = 4.0
    with pytest.raises(ValueError, match="disagree on reaction: .* has 2.0, .* has 4.0"):
        (one + plain + two).reaction


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("names, message", [
    ((), "one or more non-empty strings"),
    (("plus", ""), "one or more non-empty strings"),
    (("plus", 3), "one or more non-empty strings"),
    ("plus", "a sequence of species names"),
    (("plus", "minus", "plus"), r"distinct, got \('plus', 'minus', 'plus'\) \(plus repeated\)"),
])
def test_bad_names(circle, names, message):
    with pytest.raises(ValueError, match=message):
        Species(circle, names)


def test_the_base_must_be_a_discretization():
    with pytest.raises(ValueError, match="base must be a discretization"):
        Species(np.zeros(4), NAMES)


@pytest.mark.parametrize("change, message", [
    (lambda r: r[0], r"rho0 has shape \(40,\) but the species \('plus', 'minus'\) .* need shape \(2, 40\)"),
    (lambda r: np.stack([r[0]] * 3), r"rho0 has shape \(3, 40\)"),
    (lambda r: np.stack([r[0], r[1] - 1]), r"rho0 has negative values in species 'minus' \(min -0\.7"),
    (lambda r: np.stack([r[0] - 2, r[1]]), "rho0 has negative values in species 'plus'"),
    (lambda r: np.where(r == r.max(), np.nan, r), "rho0 holds NaN or infinite values"),
    (lambda r: 0 * r, "rho0 has zero mass in every species"),
])
def test_bad_densities(circle, species, change, message):
    with pytest.raises(ValueError, match=message):
        solve(Potential(opposite_potentials(circle)), species, change(two_bumps(circle)), (0, 1))


def test_an_interaction_on_species_is_refused(circle, species):
    with pytest.raises(ValueError, match=r"interaction \(kernel convolution\) on several species is not defined"):
        solve(Interaction(lambda z: np.cos(z[..., 0])), species, two_bumps(circle), (0, 1))


def test_error_norm_sums_the_species(circle, species):
    """Species.error_norm: the base's norm of each species, summed (bdf2's local error)."""
    values = np.random.default_rng(3).standard_normal(species.shape)
    assert species.error_norm(values) == pytest.approx(sum(circle.error_norm(part) for part in values))
    assert species.error_norm(values) < species.integrate(np.abs(values))  # W1 below L1 on the 1D base
