"""Distances between a grid density and particles (POT), coarsening, refinement, rates in m."""

import numpy as np
import pytest

from solver import Grid, particles, problems
from solver.compare import coarsen, fit_slope, grid_measure, study, wasserstein


def translated_copy(grid, rho, shift):
    points, weights = grid_measure(grid, rho)
    return points + shift, weights


@pytest.mark.parametrize("p", [1, 2])
def test_one_dimension_is_exact(rng, p):
    grid = Grid([(0, 1)], 20)
    rho = rng.random(20)
    theta, w = translated_copy(grid, rho, [0.0])
    assert wasserstein(grid, rho, theta, w, p=p) == pytest.approx(0, abs=1e-12)
    theta, w = translated_copy(grid, rho, [0.3])
    assert wasserstein(grid, rho, theta, w, p=p) == pytest.approx(0.3, rel=1e-12)


@pytest.mark.parametrize("p", [1, 2])
def test_exact_in_two_dimensions(rng, p):
    grid = Grid([(0, 1), (0, 2)], (6, 7))
    rho = rng.random(grid.shape)
    theta, w = translated_copy(grid, rho, [0.0, 0.0])
    assert wasserstein(grid, rho, theta, w, p=p) == pytest.approx(0, abs=1e-7)
    theta, w = translated_copy(grid, rho, [0.3, -0.4])
    assert wasserstein(grid, rho, theta, w, p=p) == pytest.approx(0.5, rel=1e-9)
    cloud = rng.normal(size=(30, 2))
    import ot

    points, masses = grid_measure(grid, rho)
    direct = ot.emd2(masses, np.full(30, 1 / 30), ot.dist(points, cloud, "sqeuclidean" if p == 2 else "euclidean"))
    assert wasserstein(grid, rho, cloud, p=p) == pytest.approx(direct ** (1 / p), rel=1e-9)


def test_sliced_for_a_translation(rng):
    """A translation by v projects to u·v: sliced W2 = |v| (mean cos²)^½ ≈ |v|/√2 in 2D."""
    grid = Grid([(0, 1), (0, 1)], 8)
    rho = rng.random(grid.shape)
    theta, w = translated_copy(grid, rho, [0.3, 0.4])
    sliced = wasserstein(grid, rho, theta, w, method="sliced", n_projections=2000)
    assert sliced == pytest.approx(0.5 / np.sqrt(2), rel=0.03)
    assert sliced <= wasserstein(grid, rho, theta, w)


def test_refinement_lowers_the_quantization_floor():
    grid = Grid([(0, 1)], 10)
    rho = np.ones(10)
    uniform = (np.arange(100000) + 0.5)[:, None] / 100000
    h = 0.1
    assert wasserstein(grid, rho, uniform) == pytest.approx(h / np.sqrt(12), rel=0.01)
    assert wasserstein(grid, rho, uniform, refine=4) == pytest.approx(h / (4 * np.sqrt(12)), rel=0.01)


def test_coarsening_keeps_mass_and_centre(rng):
    grid = Grid([(0, 1), (0, 1)], (7, 5))
    rho = rng.random(grid.shape)
    points, masses = coarsen(grid, rho, 3)
    assert len(points) == 3 * 2 and masses.sum() == pytest.approx(1)
    fine_points, fine_masses = grid_measure(grid, rho)
    np.testing.assert_allclose(masses @ points, fine_masses @ fine_points)


def test_coarsening_when_too_many_cells(rng):
    grid = Grid([(-3, 3), (-3, 3)], 40)
    rho = np.exp(-np.sum(grid.points**2, axis=-1))
    cloud = rng.normal(size=(300, 2)) / np.sqrt(2)
    full = wasserstein(grid, rho, cloud)
    coarse = wasserstein(grid, rho, cloud, max_points=500)
    assert coarse == pytest.approx(full, abs=0.05)


def test_empirical_measures_converge_at_rate_one_half():
    grid = Grid([(-4, 4), (-4, 4)], 128)
    rho = np.exp(-0.5 * np.sum(grid.points**2, axis=-1))
    ms = [100, 1000, 10000]
    distances = [np.mean([wasserstein(grid, rho, np.random.default_rng(seed).normal(size=(m, 2)), method="sliced",
                                      n_projections=50, refine=2) for seed in range(3)]) for m in ms]
    assert -0.65 <= fit_slope(ms, distances) <= -0.35, distances


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"theta": np.zeros((3, 1))}, r"theta must be an \(m, 2\) array"),
        ({"theta": np.zeros((0, 2))}, r"m >= 1, got shape \(0, 2\)"),
        ({"theta": np.full((3, 2), np.nan)}, "theta must be finite, but 3 of its 3 particles"),
        ({"weights": -np.ones(3)}, r"wasserstein: weights must be finite and >= 0 \(masses\), got weights\[0\] = -1"),
        ({"weights": [1, 1, np.inf]}, r"weights must be finite and >= 0 \(masses\), got weights\[2\] = inf"),
        ({"weights": np.ones(2)}, r"wasserstein: weights of shape \(2,\) for 3 particles θ_j: give one weight per row"),
        ({"weights": np.zeros(3)}, "weights sum to zero"),
        ({"p": 3}, "p must be 1 or 2"),
        ({"method": "fast"}, "method must be 'exact' or 'sliced'"),
        ({"refine": 0}, "refine must be an integer >= 1"),
        ({"max_points": 2.5}, "max_points must be an integer >= 1"),
        ({"n_projections": True}, "n_projections must be an integer >= 1"),
        ({"rho": np.ones((4, 4))}, r"rho has shape \(4, 4\) but the grid has shape \(5, 5\)"),
    ],
)
def test_bad_input(kwargs, message):
    grid = Grid([(0, 1), (0, 1)], 5)
    arguments = {"rho": np.ones((5, 5)), "theta": np.zeros((3, 2)), **kwargs}
    with pytest.raises(ValueError, match=message):
        wasserstein(grid, arguments.pop("rho"), arguments.pop("theta"), **arguments)


@pytest.mark.parametrize(
    "ms, distances, message",
    [
        ([100, 100], [0.1, 0.05], "at least two different m"),
        ([100, 1000], [0.1], "the same length"),
        ([100, 1000], [0.1, 0.0], "finite and positive"),
        ([0, 1000], [0.1, 0.05], "finite and positive"),
    ],
)
def test_fit_slope_bad_input(ms, distances, message):
    with pytest.raises(ValueError, match=message):
        fit_slope(ms, distances)


def test_study_writes_its_report(tmp_path):
    from solver import problems
    from solver.compare import study

    problem = problems.get("rbf-mixture", cells=24, n_data=60)
    result = study(problem, ms=(20, 80), times=[0, 0.1, 0.2], seeds=[0, 1], step=0.02, out=tmp_path)
    assert len(result["rows"]) == 2 * 2 * 3
    assert set(result["slopes"]) == {0.0, 0.1, 0.2}
    gaps = [row["energy_gap"] for row in result["rows"]]
    assert all(np.isfinite(gaps)) and max(gaps) < 0.5 * result["pde_energy"][0]
    assert "Fitted slope of log W2 against log m" in (tmp_path / "study.md").read_text()
    assert (tmp_path / "study.csv").read_text().count("\n") == 13
    for name in ("distance_vs_m.png", "energy_vs_t.png", "density_particles.png"):
        assert (tmp_path / name).stat().st_size > 0


@pytest.mark.parametrize("ms", [[], [0, 10], [2.5], [-3], [True]])
def test_study_bad_particle_counts(ms):
    from solver import problems
    from solver.compare import study

    with pytest.raises(ValueError, match=r"study: ms must be positive whole particle counts"):
        study(problems.get("rbf-mixture", cells=8, n_data=10), ms=ms, times=[0, 0.1], seeds=[0], step=0.05)


def test_study_refuses_a_pde_saved_at_other_times_and_no_seeds():
    """Its rows compare the k-th save with the particles at times[k]."""
    from solver import solve

    problem = problems.get("rbf-mixture", cells=8, n_data=10)
    pde = solve(problem.energy, problem.grid, problem.rho0, (0.0, 0.05), save_at=[0.0, 0.01, 0.05])
    with pytest.raises(ValueError, match=r"pde was saved at t = \[0.0, 0.01, 0.05\], not at the study's times"):
        study(problem, [4], [0.0, 0.02], [0], 0.01, pde=pde)
    with pytest.raises(ValueError, match=r"solve options \['scheme'\] with a given pde"):
        study(problem, [4], [0.0, 0.01, 0.05], [0], 0.01, pde=pde, scheme="rkl2")
    other = problems.get("rbf-mixture", cells=6, n_data=10)
    with pytest.raises(ValueError, match=r"pde holds densities of shape \(8, 8\), not of the problem's"):
        study(other, [4], [0.0, 0.01, 0.05], [0], 0.01, pde=pde)
    with pytest.raises(ValueError, match="seeds is empty"):
        study(problem, [4], [0.0, 0.01, 0.05], [], 0.01, pde=pde)
    assert len(study(problem, [4], [0.0, 0.01, 0.05], [0], 0.01, pde=pde)["rows"]) == 3


def test_study_runs_the_ms_in_increasing_order():
    """Its figures take the first and the last m as the smallest and the largest."""
    from solver import solve

    problem = problems.get("rbf-mixture", cells=8, n_data=10)
    pde = solve(problem.energy, problem.grid, problem.rho0, (0.0, 0.05), save_at=[0.0, 0.01, 0.05])
    result = study(problem, [6, 4], [0.0, 0.01, 0.05], [0], 0.01, pde=pde)
    assert result["ms"] == [4, 6] and [row["m"] for row in result["rows"]] == [4] * 3 + [6] * 3
    from solver.compare import lifted_study  # called directly, not through study

    result = lifted_study(problems.get("relu-circle", cells=16, n_data=16), [6, 4], [0.0, 0.01], [0], 0.01)
    assert result["ms"] == [4, 6] and [row["m"] for row in result["rows"]] == [4] * 2 + [6] * 2


def test_study_reports_the_energy_gap_of_any_energy_with_a_particle_energy(tmp_path):
    """Potential + Interaction: F(μ_m) = Σ w V + ½ΣΣ w w W against the PDE's F(ρ) at every time."""
    from solver import Entropy, Interaction, Potential
    from solver.compare import energy_of_particles, study
    from solver.problems import Problem

    grid = Grid([(-3, 3), (-3, 3)], 24)
    rho0 = grid.cell_averages(lambda x: np.exp(-2 * np.sum(x**2, axis=-1)))
    energy = (Potential(lambda x: 0.5 * np.sum(x**2, axis=-1), grad=lambda x: x)
              + Interaction(lambda z: -np.exp(-0.5 * np.sum(z**2, axis=-1)),
                            grad=lambda z: z * np.exp(-0.5 * np.sum(z**2, axis=-1))[..., None]))
    problem = Problem("confined-attraction", "", "", energy, grid, rho0 / grid.integrate(rho0), 0.2,
                      lambda rng, m: 0.5 * rng.standard_normal((m, 2)))
    result = study(problem, ms=(50, 400), times=[0, 0.1, 0.2], seeds=[0, 1], step=0.02, out=tmp_path)
    rows = result["rows"]
    assert np.all(np.isfinite([row["energy_gap"] for row in rows])) and max(row["energy_gap"] for row in rows) < 0.2
    gap = {m: np.mean([row["energy_gap"] for row in rows if row["m"] == m]) for m in (50, 400)}
    assert gap[400] < 0.03 and gap[400] < gap[50]  # Monte Carlo: the PDE energy falls from -0.08 to -0.24
    for m, seed in [(50, 0), (50, 1), (400, 0), (400, 1)]:  # the particles' energy falls as the PDE's does
        first, last = [row["particle_energy"] for row in rows if (row["m"], row["seed"]) == (m, seed)][::2]
        assert last < first - 0.1
    assert "energy_gap" in (tmp_path / "study.csv").read_text().splitlines()[0]
    theta = np.random.default_rng(0).normal(size=(4, 2))
    assert np.isnan(energy_of_particles(energy + Entropy(0.1), theta, np.full(4, 0.25)))
    on_the_grid = Potential(0.5 * np.sum(grid.points**2, axis=-1), grad=lambda x: x)  # V by its values: none either
    assert np.isnan(energy_of_particles(on_the_grid, theta, np.full(4, 0.25)))


def test_the_study_projects_particles_onto_the_problem_domain(monkeypatch):
    """The bump presets declare Ω: gradient descent in the study stays in it (projected
    SGD), so the distances compare measures on the same domain."""
    problem = problems.get("jmm-bumps", delta=0.2, cells=32)
    seen = []
    original = particles.simulate

    def recording(*args, **kwargs):
        seen.append(kwargs.get("domain"))
        return original(*args, **kwargs)

    monkeypatch.setattr(particles, "simulate", recording)
    result = study(problem, [20], [0.0, 0.1], [0], 0.05)
    assert seen == [problem.domain] and problem.domain is not None
    assert len(result["rows"]) == 2
