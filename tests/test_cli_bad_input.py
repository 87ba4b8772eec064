"""Malformed configs and arguments: each ends with a one-line error naming the problem,
exit status 2, and no results folder (nor a half-written one)."""

import subprocess
import sys

import pytest
from cli_configs import barenblatt_config

from solver import problems
from solver.cli import main

# main() tunes its process first (solver.tune_process); here that is the test process, where OpenMP is loaded
# already, so the spin count cannot be set and it warns
pytestmark = pytest.mark.filterwarnings("ignore:tune_process:RuntimeWarning")

GRID = barenblatt_config(end=1.1)
MESH = GRID.replace("[grid]\nbounds = [[-2, 2], [-2, 2]]\ncells = [16]\n", '[mesh]\nfile = "no/such.msh"\n')

PRESET = """
[problem]
name = "tanh-teacher"
cells = 8
n_data = 20
[time]
end = 0.1
saves = 3
[particles]
m = [10]
step = 0.01
"""

# (config text, words the error must contain)
BAD_CONFIGS = {
    "toml syntax": ("[grid\nbounds = 1", "not valid TOML"),
    "unknown table": (GRID + "[solver]\nfast = true\n", "solver: unknown table"),
    "unknown key": (GRID.replace("cells = [16]", "cells = [16]\ncels = 3"), "grid.cels: unknown key"),
    "misspelt time key": (GRID.replace("end = 1.1", "stop = 1.1"), "time.stop: unknown key"),
    "wrong type": (GRID.replace("cells = [16]", 'cells = "many"'), "grid.cells: must be a list of integers"),
    "float count": (GRID.replace("cells = [16]", "cells = [16.5]"), "grid.cells: must be a list of integers"),
    "bool as number": (GRID.replace("m = 2\n[initial]", "m = true\n[initial]"), "energy[0].m: must be a number > 1"),
    "porous m = 1": (GRID.replace("m = 2\n[initial]", "m = 1\n[initial]"), "energy[0].m: must be a number > 1"),
    "negative tau": (GRID + '[[energy]]\nterm = "entropy"\ntau = -1\n', "energy[1].tau: must be a number >= 0"),
    "unknown term": (GRID.replace('term = "porous-medium"', 'term = "porus"'), 'energy[0].term: must be one of'),
    "no energy": (GRID.replace('[[energy]]\nterm = "porous-medium"\nm = 2\n', ""), "energy: missing"),
    "energy as table": (GRID.replace("[[energy]]", "[energy]"), "energy: must be one or more [[energy]]"),
    "term parameter unknown": (GRID.replace("m = 2\n[initial]", "m = 2\nk = 1\n[initial]"),
                               "energy[0].k: unknown key"),
    "unknown density": (GRID.replace('"barenblatt"', '"gauss"'), "initial.density: must be one of"),
    "missing density key": (GRID.replace('"barenblatt"', '"gaussian"'), "initial.mean: missing"),
    "mean of wrong length": (GRID.replace('"barenblatt"', '"gaussian"\nmean = [0]\nstd = [1, 1]'),
                             "initial.mean: must have 2 entries"),
    "gaussian narrower than a float": (GRID.replace('"barenblatt"', '"gaussian"\nmean = [0.05, 0]\nstd = [1, 1e-300]'),
                                       "initial: initial density has zero mass"),  # was 'Singular matrix'

    "reversed bounds": (GRID.replace("[[-2, 2], [-2, 2]]", "[[2, -2], [-2, 2]]"), "grid: bounds must be finite"),
    "bounds not pairs": (GRID.replace("[[-2, 2], [-2, 2]]", "[[-2, 2, 3]]"), "grid.bounds: must be [[lo, hi]"),
    "too few cells": (GRID.replace("cells = [16]", "cells = [2]"), "grid.cells: must be a list of integers >= 4"),
    "cells per axis": (GRID.replace("cells = [16]", "cells = [16, 16, 16]"), "grid.cells: must give one count or 2"),
    "unknown bc": (GRID.replace("cells = [16]", 'cells = [16]\nbc = "open"'), "grid.bc: must be one of"),
    "reversed time": (GRID.replace("end = 1.1", "end = 0.5"), "time.end: must be a number > time.start"),
    "no end": (GRID.replace("end = 1.1", ""), "time.end: missing"),
    "one save": (GRID + "saves = 1\n", "time.saves: must be an integer >= 2"),
    "cfl above 1": (GRID + "cfl = 1.5\n", "time.cfl: must be a number > 0 and <= 1"),
    "unknown scheme": (GRID + 'scheme = "rk4"\n', 'time.scheme: must be one of "explicit", "rkl2", "implicit"'),
    "preset and grid": (PRESET + GRID.split("[time]")[0], "a config with [problem] (a preset) takes its grid"),
    "unknown preset": (PRESET.replace("tanh-teacher", "mnist"), "problem.name: must be one of"),
    "negative seed": (PRESET.replace("n_data = 20", "n_data = 20\nseed = -1"), "problem.seed: must be an integer >= 0"),
    "negative BLASSO penalty": ('[problem]\nname = "deconvolution-1d"\ncells = 8\npenalty = -1\n[time]\nend = 0.1\n',
                                "problem.penalty: must be a number >= 0"),
    "particles without preset": (GRID + "[particles]\nm = [10]\n", "particles: the comparison"),
    "empty particle list": (PRESET.replace("m = [10]", "m = []"), "particles.m: must be a list of integers"),
    "step not dividing saves": (PRESET.replace("step = 0.01", "step = 0.03"), "particles.step: must divide"),
    "unknown distance": (PRESET + 'distance = "w3"\n', "particles.distance: must be one of"),
    "animation not bool": (GRID + '[output]\nanimation = "yes"\n', "output.animation: must be true or false"),
    "missing mesh file": (MESH, "mesh.file: no/such.msh does not exist (relative paths are from the working"),
    "unknown partition": (MESH.replace('file = "no/such.msh"\n', 'file = "no/such.msh"\npartition = "metis"\n'),
                          'mesh.partition: must be one of "bisection", "graph"'),
    "grid and mesh": (GRID + '[mesh]\nfile = "disk.msh"\n', "mesh: a config solves on [grid] or on [mesh], not both"),
    "preset and mesh": (PRESET + '[mesh]\nfile = "disk.msh"\n', "a config with [problem] (a preset) takes its"),
    "zero particles": (PRESET.replace("m = [10]", "m = [0, 10]"), "particles.m: must be a list of integers >= 1"),
    "fractional particles": (PRESET.replace("m = [10]", "m = [2.5]"), "particles.m: must be a list of integers"),
    "dt with an explicit scheme": (GRID + "dt = 0.01\n", "time.dt: the explicit scheme chooses its own steps"),
    "dt with rkl2": (GRID + 'scheme = "rkl2"\ndt = 0.01\n', "time.dt: the rkl2 scheme chooses its own steps"),
    "max_step with implicit": (GRID + 'scheme = "implicit"\nmax_step = 0.01\n',
                               "time.max_step: the implicit scheme takes no max_step"),
    "cfl with implicit": (GRID + 'scheme = "implicit"\ncfl = 0.5\n', "time.cfl: the implicit scheme takes no cfl"),
    "max_step below the floor": (GRID + "max_step = 1e-300\n", "time.max_step: must be at least 1e-15 (1e-14 of "
                                                                 "time.end − time.start: the time loop stops at a "
                                                                 "shorter step), got 1e-300"),
    "dt below the floor": (GRID + 'scheme = "implicit"\ndt = 1e-16\n', "time.dt: must be at least 1e-15"),
    "tol with implicit": (GRID + 'scheme = "implicit"\ntol = 0.01\n', "time.tol: the implicit scheme takes no tol"),
    "tol of bdf2 not below 1": (GRID + 'scheme = "bdf2"\ntol = 1\n', "time.tol must be in (0, 1), got 1"),
    "delta of a preset without bumps": (PRESET.replace("n_data = 20", "n_data = 20\ndelta = 0.1"),
                                        "problem: preset 'tanh-teacher' does not take delta; it takes cells, "
                                        "n_data, seed"),
    "integer beyond a float": (GRID.replace("end = 1.1", "end = 1" + "0" * 400), "time.end: must be a number"),
    "integer beyond 64 bits": (PRESET.replace("n_data = 20", "n_data = 1" + "0" * 30),
                               "problem.n_data: must be an integer >= 1 and <= 1e+06"),
    "integers beyond 64 bits": (PRESET.replace("m = [10]", "m = [1" + "0" * 30 + "]"),
                                "particles.m: must be a list of integers >= 1 and <= 1e+06"),
    "cells beyond memory": (GRID.replace("[[-2, 2], [-2, 2]]", "[[-2, 2], [-2, 2], [-2, 2]]").replace(
        "cells = [16]", "cells = [4096]"), "grid.cells: [4096] on 3 axes (6.87e+10 cells, 9 saves) needs about"),
    "particles for the bump limit": (PRESET.replace("tanh-teacher", "jmm-bumps").replace("n_data = 20\n", "delta = 0\n")
                                     .replace("cells = 8", "cells = 64"),
                                     "particles: the preset jmm-bumps has no particle version of its energy"),
    "non-symmetric stiffness": (
        GRID + '[[energy]]\nterm = "quadratic-potential"\nstiffness = [[1, 2], [0, 1]]\ncenter = [0, 0]\n',
        "energy[1].stiffness: must be [[a]] or a symmetric 2×2"),
}


def run_quietly(argv, capsys):
    status = main(argv)
    return status, capsys.readouterr().err


@pytest.mark.parametrize("name", BAD_CONFIGS)
def test_bad_config(name, tmp_path, capsys):
    text, words = BAD_CONFIGS[name]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    out = tmp_path / "results"
    status, err = run_quietly(["run", str(path), "--out", str(out)], capsys)
    assert status == 2
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"wgf: error: {path}: ") and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_a_preset_option_it_does_not_take(tmp_path, capsys, monkeypatch):
    """A preset added to the registry later, with fewer options, is checked the same way."""
    monkeypatch.setitem(problems.PRESETS, "small", lambda cells=8: problems.tanh_teacher(cells, n_data=10))
    path = tmp_path / "bad.toml"
    path.write_text(PRESET.replace("tanh-teacher", "small").replace("cells = 8\n", ""))
    status, err = run_quietly(["run", str(path), "--out", str(tmp_path / "results")], capsys)
    assert status == 2 and "problem: preset 'small' does not take n_data; it takes cells" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_compare_needs_particles(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(PRESET.split("[particles]")[0])
    status, err = run_quietly(["compare", str(path), "--out", str(tmp_path / "results")], capsys)
    assert status == 2 and "particles: missing" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


def test_missing_config_file(tmp_path, capsys):
    status, err = run_quietly(["run", str(tmp_path / "none.toml"), "--out", str(tmp_path / "r")], capsys)
    assert status == 2 and "cannot read the config: No such file" in err
    assert list(tmp_path.iterdir()) == []


def test_out_must_be_a_folder(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("keep me")
    config = tmp_path / "c.toml"
    config.write_text(GRID)
    status, err = run_quietly(["run", str(config), "--out", str(target)], capsys)
    assert status == 2 and "is not a folder" in err
    assert target.read_text() == "keep me"


def test_out_of_other_files_is_kept(tmp_path, capsys):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    config = tmp_path / "c.toml"
    config.write_text(GRID)
    status, err = run_quietly(["run", str(config), "--out", str(target)], capsys)
    assert status == 2 and "not wgf results" in err
    assert [p.name for p in target.iterdir()] == ["notes.txt"]


def test_resume_without_interrupted_run(tmp_path, capsys):
    status, err = run_quietly(["run", "--resume", str(tmp_path / "r")], capsys)
    assert status == 2 and "nothing to resume" in err
    assert list(tmp_path.iterdir()) == []


def test_resume_takes_no_config(tmp_path, capsys):
    status, err = run_quietly(["run", str(tmp_path / "c.toml"), "--resume", str(tmp_path / "r")], capsys)
    assert status == 2 and "--resume takes the config of the interrupted run" in err
    assert list(tmp_path.iterdir()) == []


def test_plot_needs_results(tmp_path, capsys):
    status, err = run_quietly(["plot", str(tmp_path)], capsys)
    assert status == 2 and "not a results folder" in err


@pytest.mark.parametrize("args", [["jump"], [], ["run", "--out"], ["compare"], ["plot"]])
def test_bad_arguments_exit_2(tmp_path, args):
    """argparse's own errors, through the real entry point ``python -m solver``."""
    result = subprocess.run([sys.executable, "-m", "solver", *args], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wgf") and ": error:" in last, last
    assert list(tmp_path.iterdir()) == []


def test_exact_distances_beyond_memory(tmp_path, capsys, monkeypatch):
    from solver import config

    monkeypatch.setattr(config, "memory_bytes", lambda: 2**28)
    path = tmp_path / "bad.toml"
    path.write_text(PRESET.replace("m = [10]", "m = [10, 100000]") + 'distance = "exact"\n')
    status, err = run_quietly(["run", str(path), "--out", str(tmp_path / "results")], capsys)
    assert status == 2 and err.startswith(f"wgf: error: {path}: particles.distance: \"exact\" with m = 100000 "
                                          "particles (an N × m cost matrix, N = 256) needs about 0.381 GiB"), err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


@pytest.mark.parametrize("content", [b"\xff\xfe[grid]\x00\x01", "[grid]\nbounds = 'é'\n".encode("latin-1")],
                         ids=["binary", "latin-1"])
def test_a_config_that_is_not_utf8_text(tmp_path, capsys, content):
    path = tmp_path / "bad.toml"
    path.write_bytes(content)
    status, err = run_quietly(["run", str(path), "--out", str(tmp_path / "results")], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and "not a text file in UTF-8" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]


@pytest.mark.parametrize("out, words", [(".", "give the name of a results folder"),
                                        ("", "give the name of a results folder"),
                                        ("/", "give the name of a results folder"),
                                        ("file/results", "is a file, not a folder"),
                                        ("x" * 300, "File name too long"),
                                        ("x" * 250, "the name is too long for the folders a run makes beside it")],
                         ids=["dot", "empty", "root", "under a file", "too long", "too long for its staging folder"])
def test_outs_that_cannot_be_written(tmp_path, capsys, monkeypatch, out, words):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file").write_text("keep me")
    (tmp_path / "c.toml").write_text(GRID)
    status, err = run_quietly(["run", "c.toml", "--out", out], capsys)
    assert status == 2 and len(err.splitlines()) == 1 and words in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml", "file"]


def test_an_out_that_cannot_be_created(tmp_path, capsys, monkeypatch):
    """A read-only parent (simulated: the tests may run as root, who may write anyway)."""
    from pathlib import Path

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    config = tmp_path / "c.toml"
    config.write_text(GRID)
    status, err = run_quietly(["run", str(config), "--out", str(tmp_path / "r")], capsys)
    assert status == 1 and err == f"wgf: error: --out {tmp_path / 'r'}: cannot create {tmp_path / 'r.incomplete'}: " \
        "Permission denied; give a writable --out\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


@pytest.mark.parametrize("damage", ["no history", "truncated npz", "truncated history"])
def test_plot_of_a_damaged_folder(tmp_path, capsys, damage):
    (tmp_path / "c.toml").write_text(GRID + "[output]\nanimation = false\n")
    out = tmp_path / "r"
    assert main(["run", str(tmp_path / "c.toml"), "--out", str(out)]) == 0
    if damage == "no history":
        (out / "history.csv").unlink()
    elif damage == "truncated history":  # cut before a comma in the middle: its last row lacks columns
        data = (out / "history.csv").read_bytes()
        (out / "history.csv").write_bytes(data[: data.index(b",", len(data) // 2)])
    else:
        data = (out / "densities.npz").read_bytes()
        (out / "densities.npz").write_bytes(data[: len(data) // 2])
    capsys.readouterr()
    status, err = run_quietly(["plot", str(out)], capsys)
    assert status == 2 and len(err.splitlines()) == 1, err
    assert ("no history.csv" if damage == "no history" else "densities.npz or history.csv cannot be read") in err


NO_NUMBA_CACHE = """
import sys, tempfile
real = tempfile.TemporaryFile
def refuse(*args, dir=None, **kwargs):  # as Numba sees a folder it may not write
    if dir is not None and "wgf-numba-cache" not in str(dir):
        raise PermissionError(13, "Permission denied", dir)
    return real(*args, dir=dir, **kwargs)
tempfile.TemporaryFile = refuse
from solver.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_no_writable_numba_cache(tmp_path):
    """Numba raises at import when it can cache nowhere; the package falls back to a
    per-user temporary folder with a warning."""
    import os
    from pathlib import Path

    script = tmp_path / "run.py"
    script.write_text(NO_NUMBA_CACHE)
    (tmp_path / "c.toml").write_text(GRID + "[output]\nanimation = false\n")
    environment = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    result = subprocess.run([sys.executable, str(script), "run", "c.toml", "--out", "r"], cwd=tmp_path,
                            env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "Numba cannot write its cache" in result.stderr and "wgf-numba-cache" in result.stderr
