"""The MPI launcher: the environment's own mpirun with the flags its implementation takes."""

import json
import os
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from cli_configs import barenblatt_config
from conftest import MESHES, require, serial_and_parallel

import solver.mpi
from solver.mpi import available_cores, find_launcher, mpirun_command

# rank 0 prints the ranks gathered over the world: "[0, 1]" only if the launcher and mpi4py's
# MPI agree (a mismatched pair starts two worlds of one rank each, which print "[0]" twice)
PRINT_RANKS = "from mpi4py import MPI; ranks = MPI.COMM_WORLD.gather(MPI.COMM_WORLD.rank); ranks and print(ranks)"


def test_two_ranks_print_their_rank():
    require("mpi4py")
    # env given: this process may have initialized MPI (DOLFINx in other tests), whose own
    # variables a child would inherit otherwise, and Open MPI's mpiexec exits 1 under them
    result = subprocess.run(mpirun_command(2, sys.executable, "-c", PRINT_RANKS), capture_output=True, text=True,
                            timeout=300, env=dict(os.environ))
    report = f"{result.args}: exit status {result.returncode}, stdout {result.stdout!r}, stderr {result.stderr!r}"
    assert result.returncode == 0, report
    assert result.stdout == "[0, 1]\n", report


def test_flags_follow_the_implementation():
    launcher, implementation = find_launcher()
    command = mpirun_command(3, "prog", "arg")
    assert command[0] == launcher and command[-4:] == ["-n", "3", "prog", "arg"]
    flags = command[1:-4]
    if implementation == "openmpi":
        assert flags == ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    elif implementation == "mpich":
        assert flags == (["-bind-to", "core"] if available_cores() >= 3 else []), (implementation, flags)
    else:
        assert flags == [], (implementation, flags)


@pytest.mark.parametrize("implementation", ["openmpi", "mpich", "unknown"])
def test_each_implementation_binds_a_rank_per_core_unless_oversubscribed(implementation, monkeypatch):
    """Open MPI binds by itself (a core per rank while they fit, none beyond); MPICH is
    asked to do the same; an unknown launcher gets no flag."""
    monkeypatch.setattr(solver.mpi, "find_launcher", lambda python=None: ("mpiexec", implementation))
    monkeypatch.setattr(solver.mpi, "available_cores", lambda: 4)
    for ranks in (1, 4, 5):
        flags = mpirun_command(ranks, "prog")[1:-3]
        if implementation == "mpich":
            assert flags == (["-bind-to", "core"] if ranks <= 4 else []), (ranks, flags)
        else:
            assert "-bind-to" not in flags, (ranks, flags)


BOUND_CORES = ("import os; from mpi4py import MPI; cores = MPI.COMM_WORLD.gather(sorted(os.sched_getaffinity(0))); "
               "cores and print(cores)")


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or available_cores() < 2, reason="needs 2 cores")
def test_two_ranks_run_on_a_core_each():
    require("mpi4py")
    result = subprocess.run(mpirun_command(2, sys.executable, "-c", BOUND_CORES), capture_output=True, text=True,
                            timeout=300, env=dict(os.environ), check=True)
    first, second = json.loads(result.stdout)
    assert len(first) == len(second) == 1 and first != second, result.stdout


@pytest.mark.parametrize("ranks", [0, -1, 1.5, True, "2"])
def test_bad_rank_counts(ranks):
    with pytest.raises(ValueError, match=f"ranks must be an integer >= 1, got {ranks!r}"):
        mpirun_command(ranks, sys.executable, "-c", "pass")


def test_empty_command():
    with pytest.raises(ValueError, match="needs a command"):
        mpirun_command(2)


# ---------------------------------------------------------------------------- every energy under MPI
ROOT = Path(__file__).resolve().parent.parent
NONLOCAL = '''
import json, sys
import numpy as np
from mpi4py import MPI
from solver import Energy, Entropy, Grid, Interaction, PorousMedium, fem, problems, solve
from solver.domains import Ball
from solver.energies import BumpLimitRisk, BumpRisk
from solver.energies.network import Feature, NetworkRisk, teacher_labels
from solver.particles import simulate

comm, out = MPI.COMM_WORLD, {}
disk = fem.read(sys.argv[1])
start = np.exp(-8 * np.sum((disk.points - [0.2, 0.0]) ** 2, axis=-1))
start /= disk.integrate(start)
rng = np.random.default_rng(0)
feature = Feature.fixed_output("tanh", 2)
X = rng.standard_normal((301, 2))  # blocks of 150 and 151 points on 2 ranks
y = teacher_labels(feature, np.array([[2.0, 0.5], [-1.0, 1.5]]), X)
target = lambda x: 2 / np.pi * (1 - np.sum(x**2, axis=-1))  # noqa: E731
energies = {"network": NetworkRisk(feature, X, y, weight_decay=0.01) + Entropy(0.01),
            "bump": BumpRisk(target, 0.4, Ball([0.0, 0.0], 1.0)),
            "limit": BumpLimitRisk(target, Ball([0.0, 0.0], 1.0)),
            "interaction": Interaction(lambda z: np.sum(z**2, axis=-1)) + PorousMedium(2)}
for name, energy in energies.items():  # the vertices split over the ranks
    solution = solve(energy, disk, start, (0, 0.2), save_at=[0, 0.1, 0.2], max_step=0.02)
    out[name] = [disk.gather(rho)[1].tolist() for rho in solution.rho]
    out[name + " energy"] = solution.history["energy"].tolist()
lifted = problems.get("relu-sphere", size=0.4, n_data=100)  # ν± on a sphere mesh split over the ranks
solution = solve(lifted.energy, lifted.grid, lifted.rho0, (0, 2.0), save_at=[0, 1, 2])
out["lifted"] = [lifted.grid.base.gather(rho)[1].tolist() for rho in solution.rho[-1]]
out["lifted energy"], out["lifted source"] = solution.history["energy"].tolist(), solution.history["source"].tolist()
if comm.size > 1:
    try:
        solve(NetworkRisk(feature, X, y, comm=comm), disk, start, (0, 0.1))
    except ValueError as error:
        out["refused"] = str(error)
# a grid that every rank holds whole, the data split over the ranks; particles likewise
grid = Grid([(-3, 3), (-3, 3)], 16)
rho0 = grid.cell_averages(lambda x: np.exp(-2 * np.sum(x**2, axis=-1)))
risk = NetworkRisk(feature, X, y, weight_decay=0.01, comm=comm)
solution = solve(risk, grid, rho0 / grid.integrate(rho0), (0, 0.5), save_at=[0, 0.25, 0.5], max_step=0.05)
out["grid"], out["grid energy"] = solution.rho.tolist(), solution.history["energy"].tolist()
trajectory = simulate(risk, np.random.default_rng(1).standard_normal((50, 2)), (0, 0.5), step=0.01, save_at=[0, 0.5])
out["particles"] = trajectory.theta.tolist()
out["particle energy"] = [risk.particle_energy(trajectory.theta[-1], trajectory.weights)]
try:  # rank 0 reads, and its error ends every rank (none waits for the mesh)
    fem.read(sys.argv[3])
except ValueError as error:
    out["unreadable"] = comm.allgather(str(error))
if comm.rank == 0:
    open(sys.argv[2], "w").write(json.dumps(out))
'''


def launch(command, ranks=1, timeout=600):
    """``command`` on ``ranks`` MPI ranks (1: without mpirun) from the repository root, this
    checkout first on the path; the CompletedProcess, its failure reported whole."""
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(mpirun_command(ranks, *command) if ranks > 1 else list(map(str, command)), cwd=ROOT,
                            capture_output=True, text=True, timeout=timeout, env=environment)
    assert result.returncode == 0, f"{result.args}: exit status {result.returncode}, stderr {result.stderr[-3000:]}"
    return result


@pytest.mark.parametrize("ranks", [2, 3])
def test_nonlocal_energies_on_two_and_three_ranks_give_the_serial_answer(ranks, tmp_path):
    """On a disk mesh split over 2 ranks, and over 3 (more than the test machine's cores): the
    network risk (h summed over the ranks), the bump risk and the interaction (the other
    ranks' values gathered), the bump limit; the lifted ReLU risk (ν± with its reaction) on a
    sphere mesh split over the ranks; on a grid every rank holds, the network risk with its
    301 data points split unevenly over the ranks (a block's sums divided by n, not by its own
    size times the ranks), and gradient descent on particles likewise: all the serial answer
    to 1e-10. A corrupt mesh file ends every rank with rank 0's error."""
    require("dolfinx")
    require("mpi4py")
    script = tmp_path / "nonlocal.py"
    script.write_text(NONLOCAL)
    mesh, corrupt = ROOT / "meshes" / "disk_1.msh", tmp_path / "corrupt.msh"
    corrupt.write_text("$MeshFormat\nthis is not a mesh\n")
    launch([sys.executable, script, mesh, tmp_path / "serial.json", corrupt])
    launch([sys.executable, script, mesh, tmp_path / "parallel.json", corrupt], ranks=ranks)
    serial, parallel = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("serial", "parallel"))
    assert set(parallel) == set(serial) | {"refused"}
    unreadable = parallel.pop("unreadable")
    assert unreadable == serial.pop("unreadable") * ranks, unreadable
    assert "corrupt.msh is not a readable gmsh mesh" in unreadable[0]
    for key, expected in serial.items():
        expected, found = np.array(expected), np.array(parallel[key])
        assert found.shape == expected.shape, key
        np.testing.assert_allclose(found, expected, rtol=0, atol=1e-10 * np.abs(expected).max(), err_msg=key)
    for name in ("network", "bump", "limit", "interaction", "grid"):  # every one moves for several steps
        assert len(serial[name + " energy"]) > 10 and serial[name + " energy"][-1] < serial[name + " energy"][0], name
    assert "split one of them only" in parallel["refused"] and "give the risk no comm" in parallel["refused"]


# ---------------------------------------------------------------------------- the split of a mesh over the ranks
PARTITION = """
import json, sys
import numpy as np
from solver import PorousMedium, fem, solve
from solver.analytic import barenblatt

out = {}
for partition in fem.PARTITIONS:
    disk = fem.read(sys.argv[1], partition=partition)
    solution = solve(PorousMedium(2), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, 1.1))
    super_steps = solve(PorousMedium(2), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, 1.5), scheme="rkl2")
    out[partition] = {"weights": disk.gather(disk.weights)[1].tolist(),
                      "rho": disk.gather(solution.rho[-1])[1].tolist(),
                      "rho rkl2": disk.gather(super_steps.rho[-1])[1].tolist(),
                      "owned points": [points.tolist() for points in disk.comm.allgather(disk.points)],
                      "ghosts": disk.comm.allgather(0 if disk._ghosts is None else len(disk._ghosts._received)),
                      "messages": disk.comm.allgather(0 if disk._ghosts is None else len(disk._ghosts._requests))}
if disk.comm.rank == 0:
    open(sys.argv[2], "w").write(json.dumps(out))
"""


WHOLE = """
import json, sys
import numpy as np
from solver import fem

disk = fem.read(sys.argv[1])
described = repr(disk) if disk.comm.rank == 0 else ""  # one rank alone: no collective in it (it hung before)
values = np.sin(3 * disk.points[:, 0]) + disk.points[:, 1]
whole = disk.whole(values)
points, cells, weights = disk.write_results(sys.argv[2] + ".out", [0.0], [values])[1].values()
out = {"whole": whole.tolist(), "points": points.tolist(), "cells": cells.tolist(),
       "round trip": bool(np.array_equal(disk.part(whole), values)), "repr": described,
       "vertices": disk.comm.allgather(disk.vertices), "on boundary": disk.whole(disk.on_boundary * 1.0).tolist()}
if disk.comm.rank == 0:
    open(sys.argv[2], "w").write(json.dumps(out))
"""


def test_whole_densities_are_the_same_on_any_number_of_ranks(tmp_path):
    """A mesh's whole densities (what checkpoints and results hold) and its whole points and
    cells are the same arrays on 1 and on 2 ranks, and ``part`` undoes ``whole``: a
    checkpoint written on 2 ranks resumes on 1 and the other way round. One rank alone may
    print the mesh (its repr and vertex count are numbers every rank holds)."""
    require("dolfinx")
    serial, parallel = (json.loads(path.read_text()) for path in
                        serial_and_parallel(WHOLE, tmp_path, ROOT / "meshes" / "disk_1.msh"))
    assert serial["round trip"] and parallel["round trip"]
    assert serial["whole"] == parallel["whole"] and serial["points"] == parallel["points"]
    assert serial["cells"] == parallel["cells"]
    assert serial["repr"] == parallel["repr"] == f"Mesh('disk_1', 2D, {len(serial['whole'])} vertices)"
    assert parallel["vertices"] == [len(serial["whole"])] * 2
    radii = np.linalg.norm(serial["points"], axis=1)  # the boundary vertices are those on the unit circle
    assert serial["on boundary"] == parallel["on boundary"] == (radii > 1 - 1e-9).tolist()


def test_coordinate_bisection_cuts_the_longest_side_at_the_median():
    from solver.fem import coordinate_bisection

    points = np.random.default_rng(0).random((1001, 2)) * [3.0, 1.0]  # longest along x
    halves = coordinate_bisection(points, 2)
    assert np.bincount(halves).tolist() == [500, 501]
    assert points[halves == 0, 0].max() <= points[halves == 1, 0].min()
    thirds = coordinate_bisection(points, 3)  # 333 cut off along x, the other 668 halved along x again (2 by 1)
    assert np.bincount(thirds).tolist() == [333, 334, 334]
    assert points[thirds == 0, 0].max() <= points[thirds == 1, 0].min() and \
        points[thirds == 1, 0].max() <= points[thirds == 2, 0].min()
    quarters = coordinate_bisection(points[:, ::-1], 4)  # longest along the second axis now, then the first
    assert np.bincount(quarters).tolist() == [250, 250, 250, 251]
    assert coordinate_bisection(points, 1).tolist() == [0] * 1001
    assert coordinate_bisection(np.empty((0, 3)), 2).tolist() == []


def test_the_partitions_split_a_mesh_into_equal_parts_and_give_the_serial_answer(tmp_path):
    """The disk (level 1, h = 0.1) on 2 ranks: by either partition the lumped masses and
    short Barenblatt runs (explicit, and rkl2 with its stages in the kernel's pass) are the
    serial ones to 1e-10; by coordinate bisection the owned
    vertices are within 3% in number and apart along one axis up to a cell's size (a
    straight cut through the disk), and a rank's ghosts, the vertices across the cut, number
    between one and two per h along a chord of length 2."""
    require("dolfinx")
    require("mpi4py")
    serial, parallel = (json.loads(path.read_text()) for path in
                        serial_and_parallel(PARTITION, tmp_path, ROOT / "meshes" / "disk_1.msh"))
    for partition, expected in serial.items():
        for key in ("weights", "rho", "rho rkl2"):
            np.testing.assert_allclose(parallel[partition][key], expected[key], rtol=0,
                                       atol=1e-10 * np.max(expected[key]), err_msg=f"{partition} {key}")
    first, second = map(np.array, parallel["bisection"]["owned points"])
    assert abs(len(first) - len(second)) <= 0.03 * min(len(first), len(second)), (len(first), len(second))
    assert min(first[:, axis].max() - second[:, axis].min() for axis in (0, 1)) <= 0.15
    assert all(2 / 0.1 <= ghosts <= 2 * 2 / 0.1 for ghosts in parallel["bisection"]["ghosts"]), parallel["bisection"]


@pytest.mark.parametrize("ranks", [3, 4])
def test_three_and_four_ranks_give_the_serial_answer(ranks, tmp_path):
    """On 3 and 4 ranks (more than the test machine's 2 cores), by either partition: a rank
    has up to ranks − 1 neighbouring ranks (a message each way with each in every ghost
    exchange, and some rank has them all), every vertex is owned once, the lumped masses and
    the short Barenblatt runs (explicit and rkl2) are the serial ones to 1e-10, and the whole
    densities, points, cells and boundary vertices the serial ones."""
    require("dolfinx")
    require("mpi4py")
    mesh = ROOT / "meshes" / "disk_1.msh"
    serial, parallel = (json.loads(path.read_text()) for path in
                        serial_and_parallel(PARTITION, tmp_path, mesh, ranks=ranks))
    for partition, expected in serial.items():
        for key in ("weights", "rho", "rho rkl2"):
            np.testing.assert_allclose(parallel[partition][key], expected[key], rtol=0,
                                       atol=1e-10 * np.max(expected[key]), err_msg=f"{partition} {key}")
        owned = [tuple(point) for points in parallel[partition]["owned points"] for point in points]
        assert len(parallel[partition]["owned points"]) == ranks and all(parallel[partition]["owned points"])
        assert sorted(owned) == sorted(tuple(point) for point in serial[partition]["owned points"][0])
        assert max(parallel[partition]["messages"]) == 2 * (ranks - 1), parallel[partition]["messages"]
    serial, parallel = (json.loads(path.read_text()) for path in
                        serial_and_parallel(WHOLE, tmp_path, mesh, ranks=ranks))
    for key in ("whole", "points", "cells", "on boundary"):
        assert parallel[key] == serial[key], key
    assert parallel["round trip"] and parallel["vertices"] == [len(serial["whole"])] * ranks


def test_an_unknown_partition_is_refused_by_name():
    from solver import fem

    for make in (lambda: fem.read(ROOT / "meshes" / "disk_1.msh", partition="metis"),
                 lambda: fem.Mesh.sphere(0.4, partition="metis")):
        with pytest.raises(ValueError, match="unknown partition 'metis': the mesh's cells are split over the ranks "
                                             "by one of 'bisection', 'graph'"):
            make()


# ---------------------------------------------------------------------------- wgf run --ranks N
GRID_CONFIG = barenblatt_config(cells=4, end=1.1)  # 16 cells


@pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")  # main() tunes this process, too late here
@pytest.mark.parametrize("ranks, message", [(0, "--ranks 0: give a number of MPI ranks >= 1"),
                                            (-3, "--ranks -3: give a number of MPI ranks >= 1"),
                                            (17, "--ranks 17: more MPI ranks than the 16 points (vertices or cells) "
                                                 "of Grid(")])
def test_bad_rank_counts_are_refused_before_anything_starts(ranks, message, tmp_path, capsys):
    from solver.cli import main

    config = tmp_path / "tiny.toml"
    config.write_text(GRID_CONFIG)
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--ranks", str(ranks)]) == 2
    assert f"wgf: error: {message}" in capsys.readouterr().err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiny.toml"]


@pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")
@pytest.mark.parametrize("variable", ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE"])
def test_ranks_under_mpirun_are_refused_even_on_one_rank(variable, tmp_path, capsys, monkeypatch):
    """``mpirun -n 1 wgf run --ranks 2`` (Open MPI, or MPICH's PMI): mpirun cannot be nested."""
    from solver.cli import main

    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE", raising=False)
    monkeypatch.delenv("PMI_SIZE", raising=False)
    monkeypatch.setenv(variable, "1")
    config = tmp_path / "tiny.toml"
    config.write_text(GRID_CONFIG)
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--ranks", "2"]) == 2
    assert "--ranks 2: this wgf runs under mpirun already (1 rank(s)); give --ranks or mpirun, not both" in (
        capsys.readouterr().err)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiny.toml"]


@pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")
def test_more_ranks_than_vertices_is_refused(tmp_path, capsys):
    require("dolfinx")
    from solver.cli import main

    config = tmp_path / "disk.toml"
    mesh = f'[mesh]\nfile = "{ROOT / "meshes" / "disk_0.msh"}"\n'
    config.write_text(mesh + GRID_CONFIG[GRID_CONFIG.index("[[energy]]"):])
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--ranks", "124"]) == 2
    assert "--ranks 124: more MPI ranks than the 123 points (vertices or cells) of Mesh('disk_0'" in (
        capsys.readouterr().err)
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.incomplete").exists()


@pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")
def test_ranks_are_counted_against_the_points_of_one_species(tmp_path, capsys):
    """Two species share the 8 cells of the circle: 9 ranks are too many, not 17."""
    from solver.cli import main

    config = tmp_path / "circle.toml"
    config.write_text('[problem]\nname = "relu-circle"\ncells = 8\n')
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--ranks", "9"]) == 2
    assert "--ranks 9: more MPI ranks than the 8 points (vertices or cells) of Species(" in capsys.readouterr().err


def wgf(*args, ranks=2):
    """``wgf ARGS --ranks N`` as a new process (the launch through solver.mpi is its own)."""
    return launch([sys.executable, "-m", "solver", *args, "--ranks", ranks])


def test_a_grid_network_run_on_two_ranks_splits_its_data(tmp_path):
    """``wgf run --ranks 2`` of a network preset: the data split over the ranks (each rank
    holds the grid), the serial densities to 1e-10."""
    require("mpi4py")
    config = tmp_path / "tanh.toml"
    config.write_text('[problem]\nname = "tanh-teacher"\ncells = 16\nn_data = 3000\n'
                      "[time]\nend = 0.5\nsaves = 3\n[output]\nanimation = false\n")
    wgf("run", config, "--out", tmp_path / "serial", ranks=1)
    wgf("run", config, "--out", tmp_path / "parallel")
    with np.load(tmp_path / "serial" / "densities.npz") as a, np.load(tmp_path / "parallel" / "densities.npz") as b:
        assert a["rho"].shape == b["rho"].shape == (3, 16, 16)
        np.testing.assert_allclose(b["rho"], a["rho"], rtol=0, atol=1e-10 * a["rho"].max())
    assert "NetworkRisk" in (tmp_path / "parallel" / "summary.md").read_text()


def test_a_mesh_run_on_two_ranks_killed_then_resumed_is_the_uninterrupted_run(tmp_path):
    """SIGKILL to every process of a 2-rank mesh run (porous medium and an interaction, a
    checkpoint at every step, 1000 steps of at most 0.003: an idle machine finished the 190
    steps of unbounded ones before the kill), ``wgf run --resume --ranks 2``: the results are
    bit for bit those of an uninterrupted 2-rank run (the checkpoint holds the whole densities;
    the bisection splits the mesh the same way in every launch, so the sums are the same)."""
    require("dolfinx")
    require("mpi4py")
    from solver.cli import load_state, lock_holder

    config = tmp_path / "disk.toml"
    config.write_text(f'[mesh]\nfile = "{ROOT / "meshes" / "disk_1.msh"}"\n[[energy]]\nterm = "porous-medium"\n'
                      '[[energy]]\nterm = "gaussian-interaction"\nstrength = -0.5\n[initial]\ndensity = "barenblatt"\n'
                      "C = 0.02\n[time]\nstart = 1.0\nend = 4.0\nsaves = 5\nmax_step = 0.003\n"
                      "[output]\ncheckpoint_seconds = 0\nanimation = false\n")
    killed, whole, staging = tmp_path / "killed", tmp_path / "whole", tmp_path / "killed.incomplete"
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, "-m", "solver", "run", str(config), "--out", str(killed), "--ranks",
                                "2"], cwd=ROOT, env=environment, start_new_session=True, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if load_state(staging / "checkpoint.npz").accepted >= 30:
                break
        except Exception:  # noqa: BLE001 -- not written yet, or being replaced
            pass
        time.sleep(0.005)
    os.killpg(process.pid, signal.SIGKILL)  # the wgf process, the launcher and the ranks
    process.wait()
    deadline = time.monotonic() + 60
    while lock_holder(staging) is not None and time.monotonic() < deadline:  # rank 0 holds the lock
        time.sleep(0.1)
    assert lock_holder(staging) is None and not killed.exists()
    assert 1.0 < load_state(staging / "checkpoint.npz").t < 4.0  # killed mid-way: 30 of 1000 steps
    wgf("run", "--resume", killed)
    assert not staging.exists()
    wgf("run", config, "--out", whole)
    with np.load(killed / "densities.npz") as a, np.load(whole / "densities.npz") as b:
        assert a.files == b.files and all(np.array_equal(a[key], b[key]) for key in a.files)
    assert (killed / "history.csv").read_bytes() == (whole / "history.csv").read_bytes()
    assert (killed / "summary.md").read_text() == (whole / "summary.md").read_text()


def test_the_scaling_benchmark_compares_two_ranks_with_each_rank_alone_at_the_same_moment(monkeypatch):
    """benchmarks/mpi_scaling.py: the same-moment figures from known times (the mean of the
    ranks' solves alone over the 2-rank solve, the slower core over the faster, medians over a
    launch's solves), and its ``--quick`` run: the answers of 1 and 2 ranks agree, the mesh
    launches' floor gives the solve's numbers bit for bit (else the launch fails), and the JSON
    line carries every figure, a time alone per rank and solve."""
    require("dolfinx")
    script = ROOT / "benchmarks" / "mpi_scaling.py"
    monkeypatch.syspath_prepend(str(script.parent))  # its folder, as `python benchmarks/mpi_scaling.py` has it
    at_the_same_moment = runpy.run_path(str(script))["at_the_same_moment"]
    launches = [{"seconds": [1.0, 2.0, 4.0], "alone": [[2.0, 3.0], [4.0, 4.0], [3.0, 6.0]]},
                {"seconds": [1.0], "alone": [[1.5, 1.5]]}]
    assert at_the_same_moment(launches) == ([2.0, 1.5], [1.5, 1.0])
    result = subprocess.run([sys.executable, str(script), "--quick"], cwd=ROOT, capture_output=True, text=True,
                            timeout=600, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr
    fields = json.loads(result.stdout.strip().splitlines()[-1])
    for case in ("mesh", "network"):
        assert fields[f"{case}_max_difference"] <= 1e-10
        assert fields[f"{case}_core_spread"] >= 1 and fields[f"{case}_same_moment_speedup"] > 0
        assert np.shape(fields[f"{case}_alone_seconds_2"]) == (1, 1, 2)  # launches, solves, ranks
        assert fields[f"{case}_speedup"] > 0 and fields[f"{case}_best_speedup"] > 0
    assert fields["mesh_floor_speedup"] > 0 and np.shape(fields["mesh_floor_seconds_2"]) == (1, 1)
    assert "At the same moment" in result.stdout and "The floor" in result.stdout


# ---------------------------------------------------------------------------- launcher, reads, data split
@pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")
def test_ranks_relaunch_as_many_as_the_points_and_report_a_signal_as_128_plus_it(tmp_path, monkeypatch):
    """``--ranks 16`` on 16 cells is allowed (at most one rank per point), the launcher gets
    ``run CONFIG --out DIR`` on 16 ranks, and a launcher killed by SIGTERM (Popen status −15)
    gives exit status 143 as a shell would (it catches refusing ranks == points; −15
    returned as is)."""
    from solver import cli

    launched = []

    class Launcher:
        def __init__(self, command, env):
            launched.append(command)

        def wait(self):
            return -15

        def send_signal(self, signum):
            pass

    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE", raising=False)
    monkeypatch.delenv("PMI_SIZE", raising=False)
    monkeypatch.setattr(solver.mpi, "mpirun_command", lambda ranks, *command: ["mpirun", "-n", str(ranks), *command])
    monkeypatch.setattr(cli.subprocess, "Popen", Launcher)
    config = tmp_path / "tiny.toml"
    config.write_text(GRID_CONFIG)
    assert cli.main(["run", str(config), "--out", str(tmp_path / "out"), "--ranks", "16"]) == 143
    (command,) = launched
    assert command[:3] == ["mpirun", "-n", "16"] and command[-5:] == ["solver", "run", str(config), "--out",
                                                                       str(tmp_path / "out")]


HYDRA_VERSION = """HYDRA build details:
    Version:                                 4.2.0
    Release Date:                            Fri Feb  9 12:29:21 CST 2024
    CC:                              gcc
    Configure options:                       '--disable-option-checking' '--prefix=/opt/x' '--with-device=ch4:ofi'
    Process Manager:                         pmi
    Launchers available:                     ssh rsh fork slurm ll lsf sge manual persist
    Topology libraries available:            hwloc
    Resource management kernels available:   user slurm ll lsf sge pbs cobalt
    Demux engines available:                 poll select
"""


def _fake_environment(tmp_path, name, version_text):
    """A folder bin/ with a fake interpreter path and an executable launcher ``name`` that
    prints ``version_text`` for --version."""
    folder = tmp_path / "venv" / "bin"
    folder.mkdir(parents=True)
    launcher = folder / name
    (folder / "version.txt").write_text(version_text)
    launcher.write_text(f"#!/bin/sh\ncat '{folder / 'version.txt'}'\n")
    launcher.chmod(0o755)
    return str(folder / "python"), str(launcher)


@pytest.mark.parametrize("name, text, implementation", [
    ("mpiexec", HYDRA_VERSION, "mpich"),                                        # MPICH's Hydra (the DOLFINx wheel)
    ("mpirun", "mpirun (Open MPI) 5.0.3\n\nReport bugs to https://www.open-mpi.org/community/help/\n", "openmpi"),
    ("mpiexec", "mpiexec (OpenRTE) 1.10.7\n", "openmpi"),
    ("mpiexec", "Intel(R) MPI Library for Linux* OS, Version 2021.9\n", "unknown")])
def test_the_launcher_beside_the_interpreter_wins_and_its_implementation_is_recognized(tmp_path, name, text,
                                                                                      implementation):
    """The venv's own launcher is taken before the one on PATH (Open MPI here, in /usr/bin), and
    Hydra's --version text (which does not say "MPICH") is read as MPICH."""
    python, launcher = _fake_environment(tmp_path, name, text)
    find_launcher.cache_clear()
    try:
        assert find_launcher(python) == (launcher, implementation)
    finally:
        find_launcher.cache_clear()


def test_python_m_solver_mpi_exits_with_the_programs_status():
    """``python -m solver.mpi -n N PROGRAM``: the exit status is PROGRAM's (a script relies on
    it), and a bad -n is a usage error (status 2) before anything starts."""
    require("mpi4py")
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    failing = subprocess.run([sys.executable, "-m", "solver.mpi", "-n", "2", sys.executable, "-c",
                              "import sys; sys.exit(3)"], cwd=ROOT, env=environment, capture_output=True, text=True,
                             timeout=300)
    assert failing.returncode == 3, (failing.returncode, failing.stderr[-2000:])
    fine = subprocess.run([sys.executable, "-m", "solver.mpi", "-n", "2", sys.executable, "-c", "pass"], cwd=ROOT,
                          env=environment, capture_output=True, text=True, timeout=300)
    assert fine.returncode == 0, fine.stderr[-2000:]
    bad = subprocess.run([sys.executable, "-m", "solver.mpi", "-n", "0", sys.executable, "-c", "pass"], cwd=ROOT,
                         env=environment, capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "ranks must be an integer >= 1" in bad.stderr, bad.stderr


@pytest.mark.parametrize("n, size", [(301, 2), (1000, 3), (7, 4), (5, 5)])
def test_a_networks_data_blocks_cover_every_point_once(n, size):
    """NetworkRisk(comm=...) splits its n data points over the ranks: the blocks of ranks 0,
    1, ... are consecutive, disjoint and cover all n points, whatever n mod size (the MPI
    runs split 301 points only, over 2 and 3 ranks)."""
    from solver.energies.network import Feature, NetworkRisk

    rng = np.random.default_rng(0)
    X, y = rng.standard_normal((n, 2)), rng.standard_normal(n)
    feature = Feature.fixed_output("tanh", 2)
    covered = np.concatenate([np.arange(n)[NetworkRisk(feature, X, y, comm=SimpleNamespace(rank=rank, size=size)).block]
                              for rank in range(size)])
    assert covered.tolist() == list(range(n))


TAGGED = """
import json, sys
import gmsh
import numpy as np
from mpi4py import MPI
from solver import fem

if MPI.COMM_WORLD.rank == 0 and sys.argv[1] == "make":  # a square with its boundary tagged, as users tag them
    gmsh.initialize(interruptible=False)
    gmsh.option.setNumber("General.Terminal", 0)
    square = gmsh.model.occ.addRectangle(0, 0, 0, 1, 1)
    gmsh.model.occ.synchronize()
    gmsh.model.addPhysicalGroup(2, [square], 1)
    gmsh.model.addPhysicalGroup(1, [tag for _, tag in gmsh.model.getBoundary([(2, square)])], 2)
    gmsh.option.setNumber("Mesh.MeshSizeMax", 0.2)
    gmsh.model.mesh.generate(2)
    gmsh.write(sys.argv[2])
    gmsh.finalize()
MPI.COMM_WORLD.barrier()
mesh = fem.read(sys.argv[2])
out = {"tdim": mesh.tdim, "vertices": mesh.vertices, "area": mesh.integrate(np.ones(mesh.shape))}
if MPI.COMM_WORLD.rank == 0:
    open(sys.argv[3], "w").write(json.dumps(out))
"""


def test_a_mesh_with_tagged_boundary_lines_reads_the_same_on_two_ranks(tmp_path):
    """A gmsh file with physical groups on its boundary curves besides its surface (the usual
    way to mark boundaries): on 2 ranks the bisection reads the triangles, not the lines,
    the same mesh as in one process."""
    require("dolfinx")
    require("mpi4py")
    script, msh = tmp_path / "tagged.py", tmp_path / "tagged.msh"
    script.write_text(TAGGED)
    launch([sys.executable, script, "make", msh, tmp_path / "serial.json"])
    launch([sys.executable, script, "read", msh, tmp_path / "parallel.json"], ranks=2)
    serial, parallel = (json.loads((tmp_path / f"{name}.json").read_text()) for name in ("serial", "parallel"))
    assert serial["tdim"] == parallel["tdim"] == 2 and serial["vertices"] == parallel["vertices"], (serial, parallel)
    assert serial["area"] == pytest.approx(1.0, rel=1e-12) and parallel["area"] == pytest.approx(1.0, rel=1e-12)


RATE = """
import json, sys
import numpy as np
from solver import fem

out = {}
for path in sys.argv[1:-1]:
    m = fem.read(path)
    x = m.points
    rho = 1.5 + np.sin(3 * x[:, 0] + 1) * np.cos(2 * x[:, 1])  # > 0 and different at every vertex
    xi = np.cos(2 * x[:, 0]) + x[:, 1] ** 2 + rho
    out[path] = m.whole(m.rate(rho, xi)).tolist()
if m.comm.rank == 0:
    open(sys.argv[-1], "w").write(json.dumps(out))
"""


def test_the_rate_on_two_ranks_is_the_serial_rate_with_mass_everywhere(tmp_path):
    """dρ/dt of a density positive and different at every vertex (the Barenblatt and the
    mass-across-the-cut tests leave the ghosts of rank 0 mostly empty, so a ghost mixed up
    with another empty one goes unseen): on 2 ranks, gathered whole, the serial one to
    round-off. On disk_1 and sphere_1 rank 0's vertices touch rank 1's first vertex."""
    require("dolfinx")
    paths = [MESHES["path"]("disk", 1), ROOT / "meshes" / "sphere_1.msh"]
    serial, parallel = (json.loads(path.read_text()) for path in serial_and_parallel(RATE, tmp_path, *paths))
    for key, expected in serial.items():
        expected = np.array(expected)
        np.testing.assert_allclose(parallel[key], expected, rtol=0, atol=1e-12 * np.abs(expected).max(), err_msg=key)


BUMP_GLOBALS = """
import json, sys
import numpy as np
from solver import fem
from solver.domains import Ball
from solver.energies import BumpLimitRisk, BumpRisk

disk = fem.read(sys.argv[1])
target = lambda x: 2 / np.pi * (1 - np.sum(x**2, axis=-1))
out = {"stiffness": disk.comm.allgather(BumpRisk(target, 0.4, Ball([0.0, 0.0], 1.0)).local_stiffness(disk)),
       "minimizer": disk.whole(BumpLimitRisk(target, Ball([0.0, 0.0], 1.0)).minimizer(disk, mass=0.5)).tolist()}
if disk.comm.rank == 0:
    open(sys.argv[2], "w").write(json.dumps(out))
"""


def test_bump_quantities_over_all_vertices_are_the_serial_ones_on_every_rank(tmp_path):
    """What the bump energies take over every vertex is the same on each of 2 ranks and in
    one process: BumpRisk's local stiffness (max_j m_j, the step limit and Newton diagonal)
    and BumpLimitRisk's minimizer (f − c)₊ (c by bisection on global integrals: ranks with
    different brackets would pair their collectives at different c)."""
    require("dolfinx")
    serial, parallel = (json.loads(path.read_text()) for path in
                        serial_and_parallel(BUMP_GLOBALS, tmp_path, MESHES["path"]("disk", 1)))
    assert parallel["stiffness"] == pytest.approx(serial["stiffness"] * 2, rel=1e-13), (serial, parallel["stiffness"])
    np.testing.assert_allclose(parallel["minimizer"], serial["minimizer"], rtol=0, atol=1e-12)
