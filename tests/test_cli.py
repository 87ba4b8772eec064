"""The command line: results folders of `wgf run` and `wgf compare`, `wgf problems`,
`wgf plot`, `--help`, the example configs, and what an error leaves behind."""

import csv
import json
from functools import partial
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from cli_configs import barenblatt_config
from conftest import require

from solver import NetworkRisk, cli, problems
from solver.analytic import gaussian
from solver.cli import CONFIGS, main
from solver.config import load

# main() tunes its process first (solver.tune_process); here that is the test process, where OpenMP is loaded
# already, so the spin count cannot be set and it warns
pytestmark = pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")

ROOT = Path(__file__).resolve().parent.parent
BARENBLATT = barenblatt_config() + "saves = 3\n"

NETWORK = """
[problem]
name = "tanh-teacher"
cells = 12
n_data = 50
[time]
end = 0.2
saves = 3
[particles]
m = [20, 80]
step = 0.02
"""


def config_file(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_run_writes_a_results_folder(tmp_path):
    out = tmp_path / "results"
    assert main(["run", str(config_file(tmp_path, BARENBLATT)), "--out", str(out)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "results"]
    names = {"config.toml", "metadata.json", "densities.npz", "history.csv", "snapshots.png", "energy.png",
             "error.png", "animation.gif", "summary.md", "manifest.json"}
    assert {p.name for p in out.iterdir()} == names
    assert all((out / name).stat().st_size > 0 for name in names)
    assert (out / "config.toml").read_text() == BARENBLATT
    info = json.loads((out / "metadata.json").read_text())
    assert info["versions"]["numpy"] == np.__version__ and info["config"]["time"]["end"] == 1.5
    assert info["wall_seconds"] > 0 and info["config_file"].endswith("config.toml")
    with np.load(out / "densities.npz") as data:
        assert data["rho"].shape == (3, 16, 16) and np.array_equal(data["t"], [1.0, 1.25, 1.5])
        error = np.abs(data["rho"][-1] - data["exact"][-1]).sum() * (4 / 16) ** 2
    with open(out / "history.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert float(rows[0]["t"]) == 1.0 and float(rows[-1]["t"]) == 1.5
    summary = (out / "summary.md").read_text()
    assert f"| steps accepted / rejected | {len(rows) - 1} / " in summary
    assert f"L1 error against the exact solution at t = 1.5 | {error:.3e}" in summary
    assert 0 < error < 0.02 and "not exact here" not in summary


def test_the_summary_says_when_the_exact_profile_leaves_the_domain(tmp_path):
    """The Barenblatt profile of R^d is the solution only while its support is inside."""
    wide = BARENBLATT.replace("[time]", "C = 0.5\n[time]") + "[output]\nanimation = false\n"
    out = tmp_path / "results"
    assert main(["run", str(config_file(tmp_path, wide)), "--out", str(out)]) == 0
    assert "| **not exact here** | at t = 1.5 the profile's support reaches the cells along a wall" in (
        out / "summary.md").read_text()


def test_the_cells_on_the_boundary_are_those_along_a_wall():
    """What the summary checks the exact profile against: a grid's first and last cells along
    each axis with walls, none along a periodic one."""
    from solver import Grid

    walls = np.zeros((4, 5), dtype=bool)
    walls[[0, -1], :] = walls[:, [0, -1]] = True
    np.testing.assert_array_equal(Grid([(0, 1), (0, 2)], (4, 5)).on_boundary, walls)
    channel = Grid([(0, 1), (0, 2)], (4, 5), bc=("periodic", "wall"))
    np.testing.assert_array_equal(channel.on_boundary, np.isin(np.arange(5), [0, 4])[None, :].repeat(4, axis=0))
    assert not Grid([(0, 1)], 8, bc="periodic").on_boundary.any()


def test_the_summary_counts_newton_iterations(tmp_path):
    out = tmp_path / "results"
    implicit = BARENBLATT + 'scheme = "implicit"\ndt = 0.1\n[output]\nanimation = false\n'
    assert main(["run", str(config_file(tmp_path, implicit)), "--out", str(out)]) == 0
    lines = (out / "summary.md").read_text().splitlines()
    counts = lines.index(next(line for line in lines if line.startswith("| steps accepted / rejected |")))
    accepted = int(lines[counts].split("|")[2].split("/")[0])
    assert lines[counts + 1].startswith("| Newton iterations | ")
    assert int(lines[counts + 1].split("|")[2]) >= 2 * accepted  # at least one update and its check per step


def test_a_second_run_replaces_the_first(tmp_path):
    out = tmp_path / "results"
    config = str(config_file(tmp_path, BARENBLATT))
    assert main(["run", config, "--out", str(out)]) == 0
    first = (out / "summary.md").stat().st_ino  # a changed file would make the folder no longer the run's own
    assert main(["run", config, "--out", str(out)]) == 0
    assert (out / "summary.md").stat().st_ino != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml", "results"]


def test_compare_writes_the_study(tmp_path):
    out = tmp_path / "results"
    assert main(["compare", str(config_file(tmp_path, NETWORK)), "--out", str(out)]) == 0
    for name in ("study.csv", "study.md", "distance_vs_m.png", "energy_vs_t.png", "density_particles.png"):
        assert (out / name).stat().st_size > 0, name
    with open(out / "study.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 2 * 3  # m ∈ {20, 80}, one seed, three save times
    summary = (out / "summary.md").read_text()
    assert "PDE against gradient descent" in summary and "| 80 |" in summary
    assert json.loads((out / "metadata.json").read_text())["seeds"] == {"data": 0, "particles": [0]}


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.toml")), ids=lambda p: p.name)
def test_example_configs_are_valid(path, monkeypatch):
    if "[mesh]" in path.read_text():
        require("dolfinx")
        monkeypatch.chdir(ROOT)  # mesh paths are relative to the working directory
    run = load(path)
    assert run.save_at[-1] > run.save_at[0]


DISK_CONFIG = f"""
[mesh]
file = "{ROOT / 'meshes' / 'disk_0.msh'}"
[[energy]]
term = "porous-medium"
m = 2
[initial]
density = "barenblatt"
C = 0.02
[time]
start = 1.0
end = 1.5
saves = 3
"""


def test_mesh_partition_reaches_read(tmp_path, monkeypatch):
    require("dolfinx")
    from solver import fem

    read, options = fem.read, []
    monkeypatch.setattr(fem, "read", lambda path, **given: options.append(given) or read(path, **given))
    load(config_file(tmp_path, DISK_CONFIG.replace("[[energy]]", 'partition = "graph"\n[[energy]]')))
    assert options == [{"partition": "graph"}]


def test_run_on_a_mesh_writes_xdmf_and_mesh_figures(tmp_path):
    require("dolfinx")
    out = tmp_path / "results"
    assert main(["run", str(config_file(tmp_path, DISK_CONFIG)), "--out", str(out)]) == 0
    names = {"config.toml", "metadata.json", "densities.npz", "densities.xdmf", "densities.h5", "history.csv",
             "snapshots.png", "energy.png", "error.png", "animation.gif", "summary.md", "manifest.json"}
    assert {p.name for p in out.iterdir()} == names
    with np.load(out / "densities.npz") as data:
        rho, points, weights, exact = data["rho"], data["points"], data["weights"], data["exact"]
        assert rho.shape == (3, len(points)) and data["cells"].shape[1] == 3
    error = np.sum(np.abs(rho[-1] - exact[-1]) * weights)
    assert 0 < error < 2e-3 and f"{error:.3e}" in (out / "summary.md").read_text()
    summary = (out / "summary.md").read_text()
    assert "densities.xdmf (for ParaView)" in summary
    assert "not exact here" not in summary  # the support (radius 0.63) is inside; the mass's quadrature moves 1%
    (out / "snapshots.png").unlink()
    assert main(["plot", str(out)]) == 0 and (out / "snapshots.png").stat().st_size > 0


def test_problems_lists_every_preset(capsys):
    assert main(["problems"]) == 0
    lines = capsys.readouterr().out.splitlines()
    for name in problems.PRESETS:
        assert sum(line.split()[0] == name for line in lines if line.strip()) == 1, name


def test_plot_redraws_the_figures(tmp_path):
    out = tmp_path / "results"
    assert main(["run", str(config_file(tmp_path, BARENBLATT)), "--out", str(out)]) == 0
    for name in ("snapshots.png", "energy.png", "error.png", "animation.gif"):
        (out / name).unlink()
    assert main(["plot", str(out)]) == 0
    for name in ("snapshots.png", "energy.png", "error.png", "animation.gif"):
        assert (out / name).stat().st_size > 0, name


ONE_DIMENSION = """
[grid]
bounds = [[-3, 3]]
cells = [40]
[[energy]]
term = "quadratic-potential"
center = [0.5]
[[energy]]
term = "entropy"
tau = 0.2
[initial]
density = "gaussian"
mean = [-1.0]
std = [0.4]
[time]
end = 0.3
saves = 4
"""
THREE_DIMENSIONS = """
[problem]
name = "relu-teacher"
cells = 6
n_data = 20
[time]
end = 0.5
saves = 2
"""


def test_the_gaussian_start_is_the_normalized_gaussian_whatever_its_width(tmp_path):
    """``[initial] density = "gaussian"``: the cell averages of N(mean, diag(std²)) with unit
    mass (analytic.gaussian, normalized by hand), and for a std so wide that the Gaussian's
    constant would overflow in 2D (1e200 per axis) the uniform density, not a zero-mass error."""
    config = barenblatt_config().replace('"barenblatt"', '"gaussian"\nmean = [0.3, -0.2]\nstd = STD')
    run = load(config_file(tmp_path, config.replace("STD", "[0.4, 0.6]")))
    grid = run.grid
    expected = grid.cell_averages(partial(gaussian, mean=[0.3, -0.2], cov=np.diag([0.4, 0.6]) ** 2))
    np.testing.assert_allclose(run.rho0, expected / grid.integrate(expected), rtol=1e-12)
    wide = load(config_file(tmp_path, config.replace("STD", "[1e200, 1e200]"))).rho0
    np.testing.assert_allclose(wide, 1 / 16, rtol=1e-12)  # the box [−2, 2]²


@pytest.mark.parametrize("text", [ONE_DIMENSION, THREE_DIMENSIONS], ids=["1D", "3D"])
def test_runs_in_one_and_three_dimensions(tmp_path, text):
    out = tmp_path / "results"
    assert main(["run", str(config_file(tmp_path, text)), "--out", str(out)]) == 0
    with np.load(out / "densities.npz") as data:
        assert data["rho"].ndim == 1 + data["bounds"].shape[0]
    for name in ("snapshots.png", "energy.png", "animation.gif"):
        assert (out / name).stat().st_size > 0, name


@pytest.mark.parametrize("command", [[], ["run"], ["compare"], ["problems"], ["plot"]])
def test_help_on_every_command(command, capsys):
    with pytest.raises(SystemExit) as stop:
        main([*command, "--help"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: wgf {' '.join(command)}".rstrip())


def test_an_error_in_the_run_leaves_no_folder(tmp_path, monkeypatch, capsys):
    def fail(*args, **kwargs):
        raise RuntimeError("solve: the step fell below 1e-14")

    monkeypatch.setattr(cli, "solve", fail)
    assert main(["run", str(config_file(tmp_path, BARENBLATT)), "--out", str(tmp_path / "results")]) == 1
    assert capsys.readouterr().err == "wgf: error: the run failed: solve: the step fell below 1e-14\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.toml"]


def test_an_interrupted_run_keeps_its_checkpoint(tmp_path, monkeypatch, capsys):
    """Ctrl-C: the incomplete folder stays, with its last checkpoint, for --resume."""
    def interrupt(*args, checkpoint, **kwargs):
        checkpoint.every = 0
        checkpoint(cli.State(1.25, np.ones((16, 16)), 0.01, 3, 0, {key: [0.0] for key in cli.HISTORY}, []))
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "solve", interrupt)
    out = tmp_path / "results"
    assert main(["run", str(config_file(tmp_path, BARENBLATT)), "--out", str(out)]) == 130
    assert f"wgf run --resume {out}" in capsys.readouterr().err
    assert not out.exists()
    assert cli.load_state(tmp_path / "results.incomplete" / "checkpoint.npz").t == 1.25


def test_the_documented_configs_are_accepted(tmp_path):
    """What the config docstring and the README show is what the schema takes: the
    docstring's spelled-out grid, and the README's option delta of jmm-bumps."""
    from solver import config

    spelled_out = config.__doc__.split("or::\n")[1].split("\n\nwhere")[0]
    text = "\n".join(line[4:] for line in spelled_out.splitlines()) + "\n[time]\nend = 1.1\n"
    path = config_file(tmp_path, text.replace("cells = [128]", "cells = [8]"))
    assert "cells = [128]" in text and load(path).grid.shape == (8, 8)
    assert "option `delta`" in (ROOT / "README.md").read_text()
    run = load(config_file(tmp_path, '[problem]\nname = "jmm-bumps"\ndelta = 0.05\ncells = 64\n'))
    assert run.config["problem"]["delta"] == 0.05 and run.energy.delta == 0.05


def test_split_data_gives_each_rank_its_block_of_a_grid_network_risk(tmp_path):
    """Under MPI on a grid, a network risk's data is split over the ranks (it catches the
    split skipped; every rank then sums all the data, the same answer at P times the cost,
    which the serial-against-parallel comparisons cannot see)."""
    from solver.cli import Ranks, split_data

    config = tmp_path / "tanh.toml"
    config.write_text('[problem]\nname = "tanh-teacher"\ncells = 4\nn_data = 21\n')
    run = load(config)

    ranks = Ranks.__new__(Ranks)
    ranks.comm, ranks.rank, ranks.size = SimpleNamespace(rank=1, size=2), 1, 2
    terms = getattr(split_data(run, ranks).energy, "terms", None) or [split_data(run, ranks).energy]
    (risk,) = [term for term in terms if isinstance(term, NetworkRisk)]
    assert risk.comm is not None and risk.block == slice(10, 21)
    serial = [term for term in getattr(run.energy, "terms", [run.energy]) if isinstance(term, NetworkRisk)][0]
    assert serial.comm is None and serial.block == slice(0, 21)


def test_marginal_of_a_3d_density_integrates_out_the_last_axis():
    """The figures of a 3D run show ∫ρ dx₃: a density 1 on [0,1]²×[−1,2] has marginal 3
    (it catches the cell width of x₃ dropped)."""
    from solver.cli import marginal_2d

    bounds = np.array([[0.0, 1.0], [0.0, 1.0], [-1.0, 2.0]])
    np.testing.assert_allclose(marginal_2d(np.ones((3, 4, 5)), bounds), 3.0)
