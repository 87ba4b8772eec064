"""`wgf run` and then `wgf plot` on every preset of solver.problems, at its smallest: each
writes its figures (the species presets theirs: the circle of the lifted ReLU problem, the
line and the image of the deconvolution tori)."""

import numpy as np
import pytest
from conftest import require

from solver import problems
from solver.cli import main
from solver.compare import study
from solver.config import ConfigError, load

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
def test_particles_are_refused_for_deconvolution_at_config_load(tmp_path, name):
    """[particles] on a deconvolution preset: refused when the config loads (and by `wgf run`,
    exit 2), not an AttributeError of the lifted ReLU study mid-run."""
    config = tmp_path / "config.toml"
    config.write_text(f'[problem]\nname = "{name}"\ncells = 8\n[time]\nend = 0.02\nsaves = 3\n'
                      "[particles]\nm = [10]\nstep = 0.01\n")
    refusal = rf"particles: \[particles\] is not available for {name}: .*SpikeDeconvolution"
    with pytest.raises(ConfigError, match=refusal):
        load(config)
    assert main(["run", str(config), "--out", str(tmp_path / "results")]) == 2
    assert not (tmp_path / "results").exists()


def test_study_refuses_deconvolution_and_still_takes_the_lifted_relu_problem():
    problem = problems.get("deconvolution-1d", cells=8)
    with pytest.raises(ValueError, match="study: \\[particles\\] is not available for deconvolution-1d"):
        study(problem, [4], [0.0, 0.01], [0], 0.01)
    circle = problems.get("relu-circle", cells=16, n_data=16)
    result = study(circle, [4], [0.0, 0.01], [0], 0.01)
    assert len(result["rows"]) > 0
