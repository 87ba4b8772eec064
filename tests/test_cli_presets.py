"""`wgf run` and then `wgf plot` on every preset of solver.problems, at its smallest: each
writes its figures (the species presets theirs: the circle of the lifted ReLU problem, the
line and the image of the deconvolution tori)."""

import numpy as np
import pytest
from conftest import require

from solver import problems
from solver.cli import main, read_results
from solver.compare import study
from solver.config import load

pytestmark = pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")

SMALLEST = {"tanh-teacher": {"cells": 8, "n_data": 20}, "rbf-mixture": {"cells": 8, "n_data": 20},
            "relu-teacher": {"cells": 6, "n_data": 20}, "jmm-bumps": {"cells": 16}, "jmm-square": {"cells": 8},
            "relu-circle": {"cells": 16, "n_data": 16}, "relu-sphere": {"size": 0.6, "n_data": 20},
            "deconvolution-2d": {"cells": 8}, "deconvolution-1d": {"cells": 16}}
FIGURES = {"snapshots.png", "energy.png"}


def test_every_preset_has_its_smallest_options_here():
    assert set(SMALLEST) == set(problems.PRESETS)


@pytest.mark.parametrize("name", sorted(problems.PRESETS))
def test_run_then_plot_every_preset(tmp_path, name):
    """About 2 s a case (the file's 14 tests: 17 s on an idle machine, 42 s on two cores under a load of 4.6)."""
    if name == "relu-sphere":
        require("dolfinx")
    config = tmp_path / "config.toml"
    options = "".join(f"{key} = {value}\n" for key, value in SMALLEST[name].items())
    config.write_text(f'[problem]\nname = "{name}"\n{options}[time]\nend = 0.01\nsaves = 2\n'
                      "[output]\nanimation = false\n")
    out = tmp_path / "results"
    assert main(["run", str(config), "--out", str(out)]) == 0
    written = {p.name for p in out.iterdir()}
    assert FIGURES <= written and "animation.gif" not in written
    for figure in FIGURES:
        (out / figure).unlink()
    assert main(["plot", str(out)]) == 0
    assert all((out / figure).stat().st_size > 0 for figure in FIGURES)
    with np.load(out / "densities.npz") as data:
        problem = problems.get(name, **SMALLEST[name])
        if name.startswith("deconvolution"):  # the spikes (z_j, m_j) under their own key, no ReLU teacher
            assert "teacher" not in data
            np.testing.assert_array_equal(data["spikes"], np.column_stack([problem.energy.spikes,
                                                                           problem.energy.weights]))
        elif name in ("relu-circle", "relu-sphere"):
            assert "spikes" not in data
            np.testing.assert_array_equal(data["teacher"], problem.teacher)
        else:
            assert "spikes" not in data and "teacher" not in data
    if hasattr(problem.energy, "convex_reference"):  # the summary's F* and excess, recomputed from the files
        rows = dict(line.strip("| ").split(" | ") for line in (out / "summary.md").read_text().splitlines()
                    if line.startswith("| F* ") or line.startswith("| relative excess"))
        f_star = problem.energy.convex_reference(problem.grid).value
        energy = read_results(out)[1]["energy"]
        assert float(rows["F* (convex minimum on the same cells)"]) == pytest.approx(f_star, rel=1e-9)
        assert float(rows["relative excess (F − F*)/(F(ρ₀) − F*) at t = 0.01"]) == pytest.approx(
            (energy[-1] - f_star) / (energy[0] - f_star), rel=1e-3)
    assert main(["run", str(config), "--out", str(out)]) == 0  # the same command again replaces its own results


def test_plot_reads_a_deconvolution_folder_that_stored_its_spikes_as_the_teacher(tmp_path):
    """Folders written before the spikes had their own key hold the rows (z_j, m_j) as
    ``teacher``: `wgf plot` draws them as spikes (d + 1 columns on a d-dimensional torus)."""
    config = tmp_path / "config.toml"
    config.write_text('[problem]\nname = "deconvolution-1d"\ncells = 16\n[time]\nend = 0.01\nsaves = 2\n'
                      "[output]\nanimation = false\n")
    out = tmp_path / "results"
    assert main(["run", str(config), "--out", str(out)]) == 0
    with np.load(out / "densities.npz") as data:
        arrays = dict(data)
    arrays["teacher"] = arrays.pop("spikes")
    np.savez_compressed(out / "densities.npz", **arrays)
    (out / "snapshots.png").unlink()
    assert main(["plot", str(out)]) == 0 and (out / "snapshots.png").stat().st_size > 0


@pytest.mark.parametrize("name", ["deconvolution-1d", "deconvolution-2d"])
def test_particles_on_deconvolution_compare_the_pde_with_plain_and_conic_descent(tmp_path, name):
    """[particles] on a deconvolution preset: the config loads, `wgf compare` runs plain GD on
    (z, r) and conic GD from the same atoms against the PDE and writes the study (one row per
    method, m, seed and save time; both methods start at the same energy, the particle energy
    of the sample) into the results and the summary."""
    import csv

    config = tmp_path / "config.toml"
    config.write_text(f'[problem]\nname = "{name}"\ncells = 8\n[time]\nend = 0.02\nsaves = 3\n'
                      "[particles]\nm = [4, 6]\nstep = 0.005\n[output]\nanimation = false\n")
    assert load(config).particles["m"] == [4, 6]
    out = tmp_path / "results"
    assert main(["compare", str(config), "--out", str(out)]) == 0
    with open(out / "study.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 2 * 3 and {row["method"] for row in rows} == {"gd", "conic"}
    problem = problems.get(name, cells=8)
    for m in (4, 6):
        start = problem.energy.particle_energy(problem.sample(np.random.default_rng(0), m), np.full(m, 1 / m))
        for method in ("gd", "conic"):
            energies = [float(r["energy"]) for r in rows if r["method"] == method and int(r["m"]) == m]
            assert energies[0] == pytest.approx(start, rel=1e-12) and energies[-1] < energies[0]
    assert {"energy_vs_t.png", "distance_vs_m.png", "density_particles.png"} <= {p.name for p in out.iterdir()}
    assert "| conic GD | 6 |" in (out / "summary.md").read_text()


def test_study_refuses_species_without_a_study_and_still_takes_the_lifted_relu_problem():
    """Species whose energy is neither the lifted ReLU risk nor sparse deconvolution: refused by
    name before anything runs."""
    import dataclasses

    from solver import Entropy

    problem = dataclasses.replace(problems.get("deconvolution-1d", cells=8), name="entropy-species",
                                  energy=Entropy(1.0))
    with pytest.raises(ValueError, match="study: \\[particles\\] is not available for entropy-species: .*Entropy"):
        study(problem, [4], [0.0, 0.01], [0], 0.01)
    circle = problems.get("relu-circle", cells=16, n_data=16)
    result = study(circle, [4], [0.0, 0.01], [0], 0.01)
    assert len(result["rows"]) > 0
