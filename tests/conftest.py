"""Shared test set-up: strict floating point, a headless plot backend, seeded randomness,
and the invariants every solver run must keep."""

import importlib
import os
import runpy
import subprocess
import sys
from pathlib import Path

import matplotlib
import numba
import numpy as np
import pytest

from solver import dolfinx_compat

matplotlib.use("Agg")
np.seterr(all="raise", under="ignore")

ROOT = Path(__file__).resolve().parent.parent
MESHES = runpy.run_path(str(ROOT / "meshes" / "generate.py"))
"""The mesh generator's functions: ``MESHES["path"](name, level)`` is a mesh file, made if missing."""


@numba.njit(cache=True)
def _seed_numba(seed):
    np.random.seed(seed)


@pytest.fixture
def rng():
    """A seeded NumPy generator (Numba's own generator is seeded too)."""
    _seed_numba(1234)
    return np.random.default_rng(1234)


def assert_invariants(solution, mass_rtol=1e-12):
    """Every accepted step: mass within ``mass_rtol`` (relative), min ρ ≥ 0, energy not rising
    beyond round-off."""
    report = solution.invariants()
    assert report["mass_drift"] <= mass_rtol, report
    assert report["min"] >= 0, report
    assert report["energy_rise"] <= 1e-11, report
    assert solution.accepted == len(solution.history["t"]) - 1


def observed_order(h, errors):
    """The observed order of convergence: the slope of log error against log h, fitted by
    least squares over the mesh sizes ``h`` (any constant multiple of them: cell counts n
    give h ∝ 1/n)."""
    return float(np.polyfit(np.log(h), np.log(errors), 1)[0])


def cotangent_weights(points, triangles):
    """{(i, j): ½ Σ cot of the angles opposite edge ij} over the flat triangles (points in R³:
    a plane mesh with z = 0 added), the P1 stiffness's −K_ij."""
    weights = {}
    for k in range(3):
        a, b, c = triangles[:, k], triangles[:, (k + 1) % 3], triangles[:, (k + 2) % 3]
        u, v = points[b] - points[a], points[c] - points[a]
        cot = np.sum(u * v, axis=1) / np.linalg.norm(np.cross(u, v), axis=1)
        for i, j, w in zip(b, c, cot):
            key = (min(i, j), max(i, j))
            weights[key] = weights.get(key, 0.0) + 0.5 * w
    return weights


def require(name):
    """Import the optional module ``name``: skip without it, except under CI (CI=true),
    where the project's own set-up must have installed it, so its absence fails. DOLFINx
    comes through :func:`solver.dolfinx_compat.load` (the import order the wheel needs, the
    supported versions)."""
    try:
        if name == "dolfinx":
            return dolfinx_compat.load()[0]
        return importlib.import_module(name)
    except ImportError as error:
        reason = f"{name} is not importable ({error}); see README.md for how to install it"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@pytest.fixture
def dolfinx():
    """The dolfinx module (see :func:`require`)."""
    return require("dolfinx")


@pytest.fixture(scope="module")
def fem():
    """The ``solver.fem`` module, DOLFINx required (see :func:`require`)."""
    require("dolfinx")
    from solver import fem

    return fem


@pytest.fixture(scope="session")
def relu_teacher_pde():
    """The PDE side of the ReLU teacher problem (c) on its 3D grid, solved once per session
    (the suite's most expensive solve, shared by test_problems and test_mean_field):
    (problem, save times, solution)."""
    from solver import problems, solve

    problem = problems.get("relu-teacher")
    times = np.linspace(0, problem.t_end, 9)
    return problem, times, solve(problem.energy, problem.grid, problem.rho0, (0, problem.t_end), save_at=times)



def serial_and_parallel(script, tmp_path, *args, ranks=2):
    """Run the Python ``script`` (its text) as ``script ARGS OUT`` in one process and on
    ``ranks`` MPI ranks, this checkout first on the path; returns the two ``OUT`` paths
    (``serial.npy``, ``parallel.npy`` in ``tmp_path``)."""
    require("mpi4py")
    from solver.mpi import mpirun_command

    path = tmp_path / "run.py"
    path.write_text(script)
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    serial, parallel = tmp_path / "serial.npy", tmp_path / "parallel.npy"
    subprocess.run([sys.executable, str(path), *map(str, args), str(serial)], check=True, env=environment, timeout=600)
    subprocess.run(mpirun_command(ranks, sys.executable, path, *args, parallel), check=True, env=environment,
                   timeout=600)
    return serial, parallel
