"""Shared test set-up: strict floating point, a headless plot backend, seeded randomness,
and the invariants every solver run must keep."""

import importlib
import os

import matplotlib
import numba
import numpy as np
import pytest

from solver import dolfinx_compat

matplotlib.use("Agg")
np.seterr(all="raise", under="ignore")


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
