"""TOML configs for ``wgf``: a schema, validation up front, and the objects a config builds.

A config is either a named problem preset or a grid (or mesh) problem spelled out::

    [problem]                      # a preset of solver.problems (see `wgf problems`)
    name = "tanh-teacher"
    cells = 48

or::

    [grid]
    bounds = [[-2, 2], [-2, 2]]
    cells = [128]                  # one count for every axis, or one per axis
    [[energy]]                     # one table per term; the terms are added
    term = "porous-medium"
    m = 2
    [initial]
    density = "barenblatt"
    t = 1.0

where ``[mesh] file = "meshes/disk_1.msh"`` (a gmsh mesh, read by :func:`solver.fem.read`;
relative paths from the working directory) may stand in place of ``[grid]``; then
``[time]`` (start, end, saves, scheme, …), optionally ``[particles]`` (gradient descent
on m particles against the PDE; presets only) and ``[output]``. Every table and key is
listed in :data:`SCHEMA`, :data:`ENERGIES` and :data:`INITIAL_DENSITIES`, with its type,
default and allowed range; :func:`load` rejects anything else with a :class:`ConfigError`
that names the key and what is allowed.

New energies enter by one entry in :data:`ENERGIES`: a :class:`Term` with the
constructor and its parameters.
"""

import dataclasses
import inspect
import os
import tomllib
from functools import partial
from numbers import Integral, Real
from pathlib import Path

import numpy as np

from . import fem, problems
from .analytic import barenblatt
from .energies import Entropy, Interaction, PorousMedium, Potential
from .grid import BOUNDARY_CONDITIONS, Grid
from .timeloop import SCHEMES, STEP_FLOOR, check_scheme_options

REQUIRED = object()
EXACT_MAX_POINTS = 4000  # solver.compare.wasserstein's max_points
ARRAYS_PER_CELL = 24
"""Arrays of a grid's shape a run holds besides its saves (stages, rates, F', limits):
for the memory estimate of :func:`check_fits`."""


class ConfigError(ValueError):
    """A config that cannot run; the message names the key and what is allowed."""


@dataclasses.dataclass(frozen=True)
class Key:
    """One key of a table: its kind, default and allowed values.

    ``kind`` is "number", "integer", "string", "boolean", "numbers" (a list of
    numbers), "integers" (a list of integers) or "matrix" (a list of lists of numbers).
    ``low``/``high`` bound numbers (``low_open`` makes the lower bound strict), ``choices``
    lists the allowed strings, ``length`` the allowed list lengths.
    """

    kind: str
    default: object = REQUIRED
    help: str = ""
    low: float = None
    high: float = None
    low_open: bool = False
    choices: tuple = None
    length: tuple = None

    def allowed(self):
        """What the key accepts, in words."""
        words = {"number": "a number", "integer": "an integer", "string": "a string", "boolean": "true or false",
                 "numbers": "a list of numbers", "integers": "a list of integers",
                 "matrix": "a list of lists of numbers"}[self.kind]
        if self.choices:
            words = "one of " + ", ".join(f'"{c}"' for c in self.choices)
        if self.low is not None:
            words += f" {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            words += f"{' and' if self.low is not None else ''} <= {self.high:g}"
        if self.length:
            words += f" of length {' or '.join(map(str, self.length))}"
        return words

    def check(self, name, value):
        """``value`` converted to its Python type; ConfigError if it is not allowed."""
        def fail():
            raise ConfigError(f"{name}: must be {self.allowed()}, got {value!r}")

        def number(item, integer):
            if isinstance(item, bool) or not isinstance(item, Integral if integer else Real):
                fail()
            try:
                item = int(item) if integer else float(item)
            except OverflowError:  # an integer beyond the largest float
                fail()
            if not integer and not np.isfinite(item):  # a Python int is finite, however long
                fail()
            if self.low is not None and (item <= self.low if self.low_open else item < self.low):
                fail()
            if self.high is not None and item > self.high:
                fail()
            return item

        if self.kind in ("number", "integer"):
            return number(value, self.kind == "integer")
        if self.kind == "string":
            if not isinstance(value, str) or (self.choices and value not in self.choices):
                fail()
            return value
        if self.kind == "boolean":
            if not isinstance(value, bool):
                fail()
            return value
        if not isinstance(value, list) or (self.length and len(value) not in self.length) or not value:
            fail()
        if self.kind == "matrix":
            if not all(isinstance(row, list) and len(row) == len(value[0]) and row for row in value):
                fail()
            return [[number(item, False) for item in row] for row in value]
        return [number(item, self.kind == "integers") for item in value]


@dataclasses.dataclass(frozen=True)
class Term:
    """A registry entry: ``build(**parameters)`` makes the term or density."""

    build: object
    keys: dict
    help: str


def _quadratic_potential(stiffness, center):
    """V(x) = ½ (x − b)ᵀ A (x − b) with A = ``stiffness`` (a number or a matrix), b = ``center``."""
    A, b = np.atleast_2d(stiffness), np.asarray(center)

    def V(x):
        z = x - b
        return 0.5 * np.einsum("...i,ij,...j->...", z, A, z)

    return Potential(V, grad=lambda x: (x - b) @ A)


def _quadratic_interaction():
    """W(z) = |z|²/2: attraction to the centre of mass."""
    return Interaction(lambda z: 0.5 * np.sum(z**2, axis=-1), grad=lambda z: z)


def _gaussian_interaction(strength, width):
    """W(z) = strength · exp(−|z|²/(2 width²)) (strength < 0 attracts)."""
    def W(z):
        return strength * np.exp(-0.5 * np.sum(z**2, axis=-1) / width**2)

    return Interaction(W, grad=lambda z: -z / width**2 * W(z)[..., None])


ENERGIES = {
    "entropy": Term(Entropy, {"tau": Key("number", 1.0, "temperature τ in τ∫ρ log ρ", low=0)},
                    "τ ∫ρ log ρ (noise on the particle side)"),
    "porous-medium": Term(PorousMedium, {"m": Key("number", 2.0, "exponent m", low=1, low_open=True)},
                          "∫ρ^m/(m−1), the porous-medium equation ∂tρ = Δρ^m"),
    "quadratic-potential": Term(
        _quadratic_potential,
        {"stiffness": Key("matrix", [[1.0]], "A: [[a]] for a·I, or a d×d symmetric matrix (positive definite: a well)"),
         "center": Key("numbers", REQUIRED, "b, one coordinate per axis")},
        "∫Vρ with V(x) = ½(x−b)ᵀA(x−b) (Fokker–Planck / Ornstein–Uhlenbeck with an entropy)"),
    "quadratic-interaction": Term(_quadratic_interaction, {}, "½∫∫|x−y|²/2 ρ(x)ρ(y)"),
    "gaussian-interaction": Term(
        _gaussian_interaction,
        {"strength": Key("number", -1.0, "s in W = s·exp(−|z|²/2w²); < 0 attracts"),
         "width": Key("number", 1.0, "w", low=0, low_open=True)},
        "½∫∫W(x−y)ρ(x)ρ(y) with a Gaussian W"),
}
"""Energy terms a config may name in ``[[energy]] term = …``, with their parameters."""


def _gaussian_density(mean, std):
    """N(mean, diag(std²)) as a callable density up to its constant, exp(−½ Σ_k ((x_k −
    mean_k)/std_k)²): :func:`_initial` normalizes it on the domain, and the constant
    (2π)^(d/2) Π_k std_k leaves the floating-point range for some std in 2D and 3D (1e-160
    in each of two axes: 2π·1e-320, whose reciprocal overflows; an overflow of the exponent
    gives 0, not NaN)."""
    mean, std = np.asarray(mean, dtype=float), np.asarray(std, dtype=float)

    def density(x):
        with np.errstate(over="ignore", under="ignore"):
            return np.exp(-0.5 * np.sum(((x - mean) / std) ** 2, axis=-1))

    return density


def _barenblatt_density(t, m, C):
    """The Barenblatt profile at time t (the exact solution for the energy porous-medium m)."""
    return partial(barenblatt, t=t, m=m, C=C)


def _uniform_density():
    """The uniform density on the box."""
    return lambda x: np.ones(x.shape[:-1])


INITIAL_DENSITIES = {
    "gaussian": Term(_gaussian_density, {"mean": Key("numbers", REQUIRED, "one coordinate per axis"),
                                         "std": Key("numbers", REQUIRED, "one per axis", low=0, low_open=True)},
                     "N(mean, diag(std²)), cut to the box and normalized"),
    "barenblatt": Term(_barenblatt_density, {"t": Key("number", 1.0, "time of the profile", low=0, low_open=True),
                                             "m": Key("number", 2.0, "exponent", low=1, low_open=True),
                                             "C": Key("number", 0.1, "height constant", low=0, low_open=True)},
                       "the Barenblatt profile of ∂tρ = Δρ^m at time t"),
    "uniform": Term(_uniform_density, {}, "constant on the box"),
}
"""Initial densities a config may name in ``[initial] density = …``."""

SCHEMA = {
    "problem": {
        "name": Key("string", REQUIRED, "a preset", choices=problems.PRESETS),  # the live registry
        "cells": Key("integer", None, "cells per axis (default: the preset's)", low=4, high=256),
        "n_data": Key("integer", None, "data points (default: the preset's)", low=1, high=10**6),
        "seed": Key("integer", None, "seed of the preset's data (default: the preset's)", low=0),
        "delta": Key("number", None, "bump width δ of jmm-bumps and jmm-square (0: the porous-medium limit)", low=0),
        "weight_decay": Key("number", None, "weight decay λ of relu-circle and relu-sphere", low=0),
        "size": Key("number", None, "edge length of relu-sphere's sphere mesh", low=0, high=1, low_open=True),
        "penalty": Key("number", None, "λ of deconvolution-2d and deconvolution-1d (the BLASSO's λ|μ|)", low=0),
    },
    "grid": {
        "bounds": Key("matrix", REQUIRED, "[[lo, hi], …], one pair per axis (1 to 3 axes)"),
        "cells": Key("integers", REQUIRED, "cells per axis: one count for all, or one per axis", low=4, high=4096),
        "bc": Key("string", "wall", "boundary condition on every axis", choices=BOUNDARY_CONDITIONS),
    },
    "mesh": {
        "file": Key("string", REQUIRED, "a gmsh .msh file (relative paths from the working directory)"),
        "partition": Key("string", fem.DEFAULT_PARTITION, "how its cells are split over MPI ranks "
                         "(solver.fem.PARTITIONS)", choices=tuple(fem.PARTITIONS)),
    },
    "time": {
        "start": Key("number", 0.0, "t0"),
        "end": Key("number", None, "t1 > t0 (default: the preset's horizon)"),
        "saves": Key("integer", 9, "equally spaced save times from start to end", low=2, high=1000),
        "scheme": Key("string", "explicit", "time stepping (see `wgf problems`)", choices=tuple(SCHEMES)),
        "cfl": Key("number", None, "explicit and rkl2 only: fraction of the stable step (default 0.9)", low=0,
                   high=1, low_open=True),
        "max_step": Key("number", None, "explicit, rkl2 and bdf2 only: largest step", low=0, low_open=True),
        "dt": Key("number", None, "implicit: the step; bdf2: the first step", low=0, low_open=True),
        "tol": Key("number", None, "bdf2 only: error tolerance of the adaptive steps, < 1 (default 1e-3)", low=0,
                   low_open=True),
    },
    "particles": {
        "m": Key("integers", REQUIRED, "particle counts", low=1, high=10**6),
        "seeds": Key("integers", [0], "seeds of the initial samples", low=0),
        "step": Key("number", 0.02, "gradient-descent step ε (time t = kε)", low=0, low_open=True),
        "distance": Key("string", "sliced", "how W1/W2 are computed", choices=("sliced", "exact")),
    },
    "output": {
        "checkpoint_seconds": Key("number", 30.0, "wall seconds between checkpoints", low=0),
        "animation": Key("boolean", True, "write animation.gif"),
    },
}
"""The tables of a config, their keys, kinds, defaults and ranges (``energy`` and
``initial`` name an entry of :data:`ENERGIES` and :data:`INITIAL_DENSITIES`)."""


@dataclasses.dataclass
class Run:
    """A validated config, built: what ``wgf run`` needs.

    ``config`` is the checked config with its defaults filled in (``time.end`` too);
    ``problem`` is the preset (None for a problem spelled out); ``grid`` a Grid or a
    :class:`solver.fem.Mesh`; ``particles`` the ``[particles]`` table or None;
    ``exact(t)`` the exact solution (cell averages, or vertex values on a mesh) when known.
    """

    config: dict
    grid: Grid
    energy: object
    rho0: np.ndarray
    save_at: np.ndarray
    solve_options: dict
    particles: dict = None
    problem: object = None
    exact: object = None


def _table(name, raw, keys):
    """Check the table ``raw`` against ``keys``; fill defaults."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: must be a table [{name}], got {raw!r}")
    unknown = sorted(set(raw) - set(keys))
    if unknown:
        allowed = ", ".join(keys) if keys else "no keys"
        raise ConfigError(f"{name}.{unknown[0]}: unknown key; [{name}] allows {allowed}")
    table = {}
    for key, spec in keys.items():
        if key in raw:
            table[key] = spec.check(f"{name}.{key}", raw[key])
        elif spec.default is REQUIRED:
            raise ConfigError(f"{name}.{key}: missing; it must be {spec.allowed()} ({spec.help})")
        else:
            table[key] = spec.default
    return table


def _entry(name, raw, registry, selector):
    """Check a table that names a registry entry by ``selector``; return (entry name, parameters)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{name}: must be a table, got {raw!r}")
    choice = Key("string", REQUIRED, choices=tuple(registry)).check(f"{name}.{selector}", raw.get(selector))
    parameters = _table(name, {k: v for k, v in raw.items() if k != selector}, registry[choice].keys)
    return choice, parameters


def validate(raw):
    """The config ``raw`` (parsed TOML) checked and completed with defaults; ConfigError if not."""
    unknown = sorted(set(raw) - set(SCHEMA) - {"energy", "initial"})
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown table; a config has {', '.join([*SCHEMA, 'energy', 'initial'])}")
    config = {name: _table(name, raw[name], keys) for name, keys in SCHEMA.items() if name in raw}
    if "problem" in raw:
        spelled_out = sorted({"grid", "mesh", "energy", "initial"} & set(raw))
        if spelled_out:
            raise ConfigError(f"{spelled_out[0]}: a config with [problem] (a preset) takes its grid, energy and "
                              "initial density from the preset; remove one or the other")
    else:
        if "grid" in raw and "mesh" in raw:
            raise ConfigError("mesh: a config solves on [grid] or on [mesh], not both; remove one")
        missing = [name for name in ("grid" if "mesh" not in raw else "mesh", "energy", "initial") if name not in raw]
        if missing:
            raise ConfigError(f"{missing[0]}: missing; give [problem] name = a preset, or [grid] (or [mesh]), "
                              "[[energy]] and [initial]")
        if "particles" in raw:
            raise ConfigError("particles: the comparison with particles needs a network problem: give "
                              "[problem] name = one of " + ", ".join(problems.PRESETS))
        if not isinstance(raw["energy"], list) or not raw["energy"]:
            raise ConfigError("energy: must be one or more [[energy]] tables, each with term = one of "
                              + ", ".join(ENERGIES))
        config["energy"] = [_entry(f"energy[{k}]", term, ENERGIES, "term") for k, term in enumerate(raw["energy"])]
        config["initial"] = _entry("initial", raw["initial"], INITIAL_DENSITIES, "density")
    config.setdefault("time", _table("time", {}, SCHEMA["time"]))
    time = config["time"]
    try:
        check_scheme_options(time["scheme"], time["dt"], time["max_step"], time["cfl"], time["tol"])
    except ValueError as error:
        raise ConfigError(f"time.{error}") from None
    config.setdefault("output", _table("output", {}, SCHEMA["output"]))
    return config


def build(config):
    """The grid, energy, initial density and solver options of a validated config.

    Errors the library raises on building (a box with lo ≥ hi, a potential of the wrong
    dimension, …) come back as ConfigError naming the table.
    """
    time = dict(config["time"])
    if "problem" in config:
        table, name = config["problem"], config["problem"]["name"]
        options = {key: value for key, value in table.items() if key != "name" and value is not None}
        problem = _built("problem", lambda: problems.get(name, **options))  # refuses an option it does not take
        takes = inspect.signature(problems.PRESETS[name]).parameters
        defaults = {key: p.default for key, p in takes.items() if table.get(key) is None}
        config = dict(config, problem={**table, **defaults})
        grid, energy, rho0, exact = problem.grid, problem.energy, problem.rho0, None
        if time["end"] is None:
            time["end"] = time["start"] + problem.t_end
    else:
        problem = None
        grid = _built("mesh", lambda: _mesh(config["mesh"])) if "mesh" in config else _built(
            "grid", lambda: _grid(config["grid"], time["saves"]))
        energy = _built("energy", lambda: _energy(config["energy"], grid))
        rho0, exact = _built("initial", lambda: _initial(config["initial"], grid, config["energy"], time["start"]))
        if time["end"] is None:
            raise ConfigError("time.end: missing; it must be a number > time.start")
    if not time["end"] > time["start"]:
        raise ConfigError(f"time.end: must be a number > time.start ({time['start']:g}), got {time['end']:g}")
    floor = STEP_FLOOR * (time["end"] - time["start"])
    for key in ("max_step", "dt"):
        if time[key] is not None and time[key] < floor:
            raise ConfigError(f"time.{key}: must be at least {floor:g} ({STEP_FLOOR:g} of time.end − time.start: "
                              f"the time loop stops at a shorter step), got {time[key]:g}")
    options = {"scheme": time["scheme"]}
    options.update({key: time[key] for key in ("cfl", "max_step", "dt", "tol") if time[key] is not None})
    if "particles" in config:
        interval, step = (time["end"] - time["start"]) / (time["saves"] - 1), config["particles"]["step"]
        steps_per_save = interval / step
        if round(steps_per_save) < 1 or abs(steps_per_save - round(steps_per_save)) > 1e-9 * steps_per_save:
            raise ConfigError(f"particles.step: must divide (time.end − time.start)/(time.saves − 1) = {interval:g} "
                              f"a whole number of times, so that every save time is a whole number of steps; "
                              f"got {step:g}")
        _check_particles(config["particles"], problem, config["problem"]["name"], grid)
    save_at = np.linspace(time["start"], time["end"], time["saves"])
    return Run(dict(config, time=time), grid, energy, rho0, save_at, options, config.get("particles"), problem, exact)


def _check_particles(table, problem, name, grid):
    """Refuse ``[particles]`` for a preset the comparison cannot run (species that are
    neither a lifted ReLU problem nor sparse deconvolution:
    :func:`solver.compare.particles_refusal`; an energy that does not move particles:
    gradient descent needs ``particle_velocity``), and exact distances whose cost matrix
    would not fit in memory."""
    from .compare import particles_refusal

    refusal = particles_refusal(problem)
    if refusal is not None:
        raise ConfigError(f"particles: {refusal}; remove [particles]")
    theta = problem.sample(np.random.default_rng(0), 2)
    try:
        problem.energy.particle_velocity(theta, np.full(2, 0.5))
    except NotImplementedError as error:
        raise ConfigError(f"particles: the preset {name} has no particle version of its energy to compare "
                          f"with ({error}); remove [particles] (or use a network preset: tanh-teacher, "
                          "rbf-mixture, relu-teacher)") from None
    if table["distance"] == "exact" and grid.dim > 1:
        points = min(grid.size * 2**grid.dim, EXACT_MAX_POINTS)  # the measure the study uses (refine=2), capped
        check_fits("particles.distance", 2 * 8 * points * max(table["m"]),
                   f'"exact" with m = {max(table["m"])} particles (an N × m cost matrix, N = {points})')


def _built(table, make):
    """``make()``, with a library ValueError turned into a ConfigError naming ``table``."""
    try:
        return make()
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"{table}: {error}") from None


def memory_bytes():
    """The physical memory of this machine in bytes (None if unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(key, needed, what):
    """ConfigError naming ``key`` if ``needed`` bytes exceed this machine's memory."""
    memory = memory_bytes()
    if memory is not None and needed > memory:
        raise ConfigError(f"{key}: {what} needs about {needed / 2**30:.3g} GiB of memory, more than this machine's "
                          f"{memory / 2**30:.3g} GiB; make it smaller")


def _grid(table, saves):
    bounds = table["bounds"]
    if not all(len(pair) == 2 for pair in bounds):
        raise ConfigError(f"grid.bounds: must be [[lo, hi], …], one pair per axis, got {bounds!r}")
    cells = table["cells"]
    if len(cells) not in (1, len(bounds)):
        raise ConfigError(f"grid.cells: must give one count or {len(bounds)} (one per axis), got {cells!r}")
    count = int(np.prod(cells * len(bounds) if len(cells) == 1 else cells, dtype=float))
    # the saves, the history's densities, ~20 work arrays of the steps and the first variation
    check_fits("grid.cells", 8 * count * (saves + ARRAYS_PER_CELL), f"{cells} on {len(bounds)} axes "
               f"({count:.3g} cells, {saves} saves)")
    return Grid(bounds, cells[0] if len(cells) == 1 else cells, table["bc"])


def _mesh(table):
    """The :class:`solver.fem.Mesh` of ``[mesh] file``, split over the MPI ranks by ``partition``."""
    path = Path(table["file"])
    if not path.is_file():
        raise ConfigError(f"mesh.file: {path} does not exist (relative paths are from the working directory "
                          f"{Path.cwd()}; meshes/generate.py makes the standard meshes)")
    try:
        return fem.read(path, partition=table["partition"])
    except ImportError as error:
        raise ConfigError(f"mesh: {error}") from None


def at_points(density, grid):
    """A density (a callable of points) as the discretization holds it: cell averages on a
    grid, values at the vertices on a mesh."""
    return grid.initial_density(density)


def _energy(terms, grid):
    built = []
    for k, (name, parameters) in enumerate(terms):
        for key, value in parameters.items():
            if isinstance(value, list) and key != "stiffness" and len(value) != grid.dim:
                raise ConfigError(f"energy[{k}].{key}: must have {grid.dim} entries, one per axis, got {value!r}")
        if name == "quadratic-potential":
            stiffness = np.asarray(parameters["stiffness"])
            if stiffness.shape == (1, 1):
                stiffness = stiffness[0, 0] * np.eye(grid.dim)
            if stiffness.shape != (grid.dim, grid.dim) or not np.allclose(stiffness, stiffness.T):
                raise ConfigError(f"energy[{k}].stiffness: must be [[a]] or a symmetric {grid.dim}×{grid.dim} "
                                  f"matrix, got {parameters['stiffness']!r}")
            parameters = dict(parameters, stiffness=stiffness)
        built.append(ENERGIES[name].build(**parameters))
    energy = sum(built[1:], built[0])
    energy.check(grid)
    return energy


def _initial(entry, grid, energy_terms, start):
    """The initial density (cell averages, or vertex values on a mesh: unit mass, or the
    profile's own mass for Barenblatt) and, when the energy is the one porous-medium term
    the Barenblatt profile solves on a flat domain (not on a surface mesh such as a sphere),
    the exact solution at the same points as a callable of the time t (the profile at its own
    time ``t`` + (t − ``start``))."""
    name, parameters = entry
    for key, value in parameters.items():
        if isinstance(value, list) and len(value) != grid.dim:
            raise ConfigError(f"initial.{key}: must have {grid.dim} entries, one per axis, got {value!r}")
    rho0 = at_points(INITIAL_DENSITIES[name].build(**parameters), grid)
    exact = None
    if name == "barenblatt":
        if energy_terms == [("porous-medium", {"m": parameters["m"]})] and not getattr(grid, "surface", False):
            exact = lambda t: at_points(  # noqa: E731
                _barenblatt_density(parameters["t"] + t - start, parameters["m"], parameters["C"]), grid)
    elif grid.integrate(rho0) > 0:
        rho0 = rho0 / grid.integrate(rho0)
    return grid.check_density(rho0, "initial density"), exact


def load(path):
    """Read, validate and build the TOML config at ``path``; ConfigError if it cannot run."""
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except OSError as error:
        raise ConfigError(f"cannot read the config: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"not valid TOML: {error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"not a text file in UTF-8 (byte {error.start}: {error.reason}); a config is TOML "
                          "text") from None
    return build(validate(raw))
