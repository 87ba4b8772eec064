"""The command line ``wgf`` (also ``python -m solver``).

``wgf run [CONFIG.toml] [--out DIR]`` solves the problem a TOML config describes (see
:mod:`solver.config`; without CONFIG, the built-in default ``solver/configs/relu-circle.toml``:
the conic lift of a ReLU network on the circle solved by the PDE, by gradient descent on
particles and against its convex minimum) and writes
one results folder; ``wgf run --resume DIR`` continues an interrupted run from its last
checkpoint; ``--ranks N`` runs either on N MPI ranks (:func:`relaunch`). ``wgf compare
CONFIG.toml`` does the same with the comparison against particles required; ``wgf
problems`` lists the presets and the config's building blocks; ``wgf plot DIR`` redraws
the figures of a results folder.

A run writes into ``DIR.incomplete`` (locked by ``.wgf-lock``, its process id) and
moves it to ``DIR`` only when everything is written, listed in ``manifest.json``; it
replaces an earlier ``DIR`` only when that manifest lists exactly what the folder holds
(:func:`check_out`), and the move survives a kill (:func:`swap_in`). It checkpoints
(atomically: write, sync, rename) every ``[output] checkpoint_seconds``, on SIGINT and
SIGTERM, and when the PDE is solved, with a :func:`fingerprint` of the config that a
resume must match. A config or argument that cannot run ends with a one-line error, exit
status 2, before anything is written; a run that fails in the solver ends with a
one-line error, exit status 1, and leaves no folder; one stopped by its environment (a
full disk, a signal, a folder in use) says so in one line and keeps what can be resumed.
Under ``mpirun`` rank 0 alone writes the folders and decides for every rank (:class:`Ranks`);
a mesh is split over the ranks (each its vertices), and on a grid, which every rank holds
whole, the terms that sum over a data set split the data over them (:func:`split_data`).
"""

import argparse
import contextlib
import csv
import dataclasses
import errno
import glob
import hashlib
import inspect
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from . import __version__, problems
from .config import ENERGIES, INITIAL_DENSITIES, ConfigError, load
from .process import tune_process
from .timeloop import HISTORY, SCHEMES, State, solve

CONFIGS = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIGS / "relu-circle.toml"
CHECKPOINT = "checkpoint.npz"
MANIFEST = "manifest.json"
LOCK = ".wgf-lock"
REPLACED = ".wgf-replaced"
PACKAGES = ("numpy", "scipy", "numba", "matplotlib", "tqdm", "POT", "pillow")
LISTING_OPTIONS = {"cells": 4, "size": 1.0}
"""What ``wgf problems`` builds each preset with (those of the options it takes): the smallest."""


def launcher_size():
    """The number of ranks of the ``mpirun`` that launched this process, by Open MPI's or a
    PMI launcher's environment (MPICH's), or None outside one."""
    size = os.environ.get("OMPI_COMM_WORLD_SIZE") or os.environ.get("PMI_SIZE")
    return int(size) if size else None


class UsageError(Exception):
    """A command that cannot run as given (exit status 2, nothing written)."""


# ---------------------------------------------------------------------------- processes
class EnvironmentProblem(Exception):
    """A run that its environment stops (a folder in use, a full disk, an unreadable
    checkpoint): exit status 1, one line; whatever can be resumed is kept."""


class DiskFull(EnvironmentProblem):
    """The disk filled up while writing ``path``."""

    def __init__(self, path):
        super().__init__(path)
        self.path = Path(path)


class Interrupted(Exception):
    """SIGINT or SIGTERM stopped the run (after a final checkpoint when it was solving)."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


class Ranks:
    """The processes of one run: the MPI ranks under ``mpirun``, else this process alone.

    Rank 0 alone touches the results folders; every decision is made there and broadcast
    (:meth:`decide`), so all ranks take the same branch, and an error there is raised on
    every rank. An MPI run is recognised by Open MPI's or a PMI launcher's environment,
    so that a serial run never imports mpi4py.
    """

    def __init__(self):
        size = launcher_size() or 1
        self.comm = None
        if size > 1:
            from mpi4py import MPI

            self.comm, self.maximum = MPI.COMM_WORLD, MPI.MAX
        self.rank = 0 if self.comm is None else self.comm.rank
        self.size = 1 if self.comm is None else self.comm.size

    def decide(self, make):
        """``make()`` run on rank 0; its result, or the exception it raised, on every rank."""
        if self.comm is None:
            return make()
        outcome = None
        if self.rank == 0:
            try:
                outcome = (True, make())
            except Exception as error:  # noqa: BLE001 -- re-raised on every rank below
                outcome = (False, error)
        succeeded, value = self.comm.bcast(outcome, root=0)
        if not succeeded:
            raise value
        return value

    def agree(self, make):
        """``make()`` run on every rank; its result there, or on every rank the exception
        the lowest failing rank raised."""
        try:
            outcome = (True, make())
        except Exception as error:  # noqa: BLE001 -- re-raised on every rank below
            outcome = (False, error)
        if self.comm is None:
            outcomes = [outcome]
        else:
            outcomes = self.comm.allgather(outcome)
        for succeeded, value in outcomes:
            if not succeeded:
                raise value
        return outcome[1]

    def all_reach(self, seconds=10.0):
        """Whether every rank reaches this call within ``seconds`` (a non-blocking
        barrier): after an error, whether it happened on all of them."""
        if self.comm is None:
            return True
        request, deadline = self.comm.Ibarrier(), time.monotonic() + seconds
        while not request.Test():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.01)
        return True

    def any(self, flag):
        """Whether ``flag`` holds on some rank."""
        return bool(flag) if self.comm is None else bool(self.comm.allreduce(bool(flag), op=self.maximum))

    def any_each(self, *flags):
        """Whether each of ``flags`` holds on some rank, in one reduction (a tuple of bools)."""
        if self.comm is None:
            return tuple(map(bool, flags))
        anywhere = np.empty(len(flags))
        self.comm.Allreduce(np.array(flags, dtype=float), anywhere, op=self.maximum)
        return tuple(map(bool, anywhere))


@contextlib.contextmanager
def writing(path):
    """Turn a full disk (ENOSPC, or a full quota, EDQUOT) while writing ``path`` into :class:`DiskFull`."""
    try:
        yield
    except OSError as error:
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(path) from error
        raise


# ---------------------------------------------------------------------------- checkpoints
def write_atomically(path, write):
    """Call ``write(handle)`` on a temporary sibling of ``path``, sync it, then rename it to
    ``path``: a reader (or a crash, or a full disk) sees the old file or the new one, never
    half of one. A full disk raises :class:`DiskFull` and leaves the old file."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    try:
        with writing(path), open(temporary, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def write_json(path, data):
    """``data`` as indented JSON in ``path``, atomically (:func:`write_atomically`)."""
    write_atomically(path, lambda handle: handle.write((json.dumps(data, indent=2) + "\n").encode()))


def fingerprint(run):
    """What makes a run's result: the version of the solver, its git commit when it runs
    from a checkout (else None), and the config without its ``[output]`` table, as plain
    JSON (energy terms and the initial density as the tables of the TOML file), to be
    stored in every checkpoint and compared on resume."""
    config = {key: value for key, value in run.config.items() if key != "output"}
    if "energy" in config:
        config["energy"] = [{"term": name, **parameters} for name, parameters in config["energy"]]
    if "initial" in config:
        name, parameters = config["initial"]
        config["initial"] = {"density": name, **parameters}
    commit = git_commit()
    return json.loads(json.dumps({"solver": __version__, "commit": commit and commit["commit"], "config": config}))


def changed_keys(old, new, prefix=""):
    """The keys (``time.end``, ``grid.bounds``, ``energy[0].tau``) whose values differ
    between two configs as JSON trees (tables by their keys, lists of tables by index)."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [key for name in sorted(set(old) | set(new), key=str)
                for key in changed_keys(old.get(name), new.get(name), f"{prefix}.{name}" if prefix else str(name))]
    if (isinstance(old, list) and isinstance(new, list) and len(old) == len(new)
            and all(isinstance(item, dict) for item in old + new)):
        return [key for k, (a, b) in enumerate(zip(old, new)) for key in changed_keys(a, b, f"{prefix}[{k}]")]
    return [] if old == new else [prefix]


def save_state(state, path, run_fingerprint=None):
    """Write a :class:`~solver.timeloop.State` (and the run's :func:`fingerprint`) to the npz
    file ``path`` atomically."""
    arrays = {"t": state.t, "rho": state.rho, "cap": state.cap, "accepted": state.accepted,
              "rejected": state.rejected, "saved": np.array(state.saved), "last_rejected": state.last_rejected,
              "since_rejection": state.since_rejection, "newton_iterations": state.newton_iterations,
              "fingerprint": np.array(json.dumps(run_fingerprint))}
    if state.saved_at is not None:
        arrays["saved_at"] = np.array(state.saved_at, dtype=float)
    arrays.update({f"history_{key}": np.array(values) for key, values in state.history.items()})
    write_atomically(path, lambda handle: np.savez(handle, **arrays))


def load_state(path):
    """The :class:`~solver.timeloop.State` in the npz file ``path`` (as :func:`save_state` wrote it)."""
    return load_checkpoint(path)[0]


def load_checkpoint(path):
    """(State, fingerprint or None) of the npz file ``path``; :class:`EnvironmentProblem`
    naming the file if it cannot be read (truncated, corrupt, not a checkpoint)."""
    try:
        with np.load(path) as data:
            state = State(t=float(data["t"]), rho=data["rho"], cap=float(data["cap"]),
                          accepted=int(data["accepted"]), rejected=int(data["rejected"]), saved=list(data["saved"]),
                          history=history_of(data),
                          last_rejected=float(data["last_rejected"]), since_rejection=int(data["since_rejection"]),
                          newton_iterations=int(data["newton_iterations"]),
                          saved_at=tuple(data["saved_at"].tolist()) if "saved_at" in data.files else None)
            stored = json.loads(str(data["fingerprint"])) if "fingerprint" in data.files else None
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise EnvironmentProblem(f"{path} cannot be read ({type(error).__name__}: {error}); it is not a whole "
                                 f"checkpoint: delete it to restart the interrupted run from its start with "
                                 f"--resume") from None
    return state, stored


def history_of(checkpoint):
    """The history lists of an open checkpoint; one written before the reaction term has no
    ``source``, which is then 0 (the runs of that time had no reaction)."""
    history = {key: list(checkpoint[f"history_{key}"]) for key in HISTORY if f"history_{key}" in checkpoint.files}
    history.setdefault("source", [0.0] * len(history["t"]))
    return {key: history[key] for key in HISTORY}


class Checkpointer:
    """The ``checkpoint`` callback of :func:`~solver.timeloop.solve`: saves the state to ``path``
    when ``every`` wall seconds have passed since the last save (0: every step), and at
    once, ending the run with :class:`Interrupted`, after SIGINT or SIGTERM (``stop``, set
    by :func:`stopping_on_signals`; under MPI when any rank got one).

    Under MPI every rank takes part in every save, at the same steps (when it is time on
    some rank): the densities are gathered whole (``grid``'s
    :meth:`~solver.discretization.Discretization.whole`, in the order of the results) and
    rank 0 writes the one file, so a checkpoint does not depend on how the mesh was split
    (another partition, or DOLFINx 0.5's graph partitioner from one launch to the next) nor
    on the number of ranks (:func:`resume_state` gives each rank its part: a mesh's whole
    densities are in the order of its vertices' coordinates, on one rank too).

    :meth:`save_last` writes the last state it was given (after ``solve`` returns: then
    a failure in writing the results is resumed without solving again)."""

    def __init__(self, path, every, run_fingerprint=None, ranks=None, grid=None):
        self.path, self.every, self.fingerprint, self.grid = path, every, run_fingerprint, grid
        self.ranks = Ranks() if ranks is None else ranks
        self.last, self.state, self.stop, self.solving = time.monotonic(), None, None, False

    def __call__(self, state):
        self.state = state
        stop, due = self.ranks.any_each(self.stop is not None, time.monotonic() - self.last >= self.every)
        if stop or due:
            self.save_last()
        if stop:
            raise Interrupted(self.stop or signal.SIGINT)

    def save_last(self):
        """Write the last state given (if any) to ``path``."""
        if self.state is None:
            return
        state = dataclasses.replace(self.state, rho=self.grid.whole(self.state.rho),  # whole: collective under MPI
                                    saved=list(self.grid.whole(np.array(self.state.saved))) if self.state.saved else [])
        self.ranks.decide(lambda: save_state(state, self.path, self.fingerprint))
        self.last = time.monotonic()


@contextlib.contextmanager
def stopping_on_signals(checkpointer):
    """SIGINT and SIGTERM ask ``checkpointer`` to checkpoint and stop at the next step
    while it is ``solving``; otherwise (or on a second signal) they interrupt at once.
    Outside the main thread, signals are left alone."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        if checkpointer.solving and checkpointer.stop is None:
            checkpointer.stop = signum
        else:
            raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)


# ---------------------------------------------------------------------------- results
def metadata_of(run, command, config_path):
    """Package versions, seeds, git commit, command line and config of a run, as a dict."""
    versions = {"python": platform.python_version(), "solver": __version__}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    seeds = {}
    if "seed" in run.config.get("problem", {}):
        seeds["data"] = run.config["problem"]["seed"]
    if run.particles:
        seeds["particles"] = run.particles["seeds"]
    return {"command": command, "config_file": str(config_path),
            "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "versions": versions, "seeds": seeds, "git": git_commit(), "platform": platform.platform(),
            "config": run.config}


def git_commit():
    """The commit (and whether the tree has changes) of the checkout holding this package,
    or None outside a git checkout."""
    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "-C", here, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        status = subprocess.run(["git", "-C", here, "status", "--porcelain"], capture_output=True, text=True,
                                timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return {"commit": head.stdout.strip(), "changed_files": len(status.stdout.splitlines())}


def write_results(folder, run, solution, ranks=None):
    """densities.npz and history.csv of the PDE solution, and the discretization's own
    files and arrays (on a mesh densities.xdmf, and the vertices, triangles and lumped
    masses for the figures; on a grid its bounds). Under MPI every rank takes part (the
    xdmf, the gathered values: :meth:`~solver.discretization.Discretization.whole`) and
    rank 0 writes the rest. Returns (files, array names): the discretization's own files
    (a dict of name → what it is for) and its arrays' names."""
    ranks = Ranks() if ranks is None else ranks
    files, grid_arrays = run.grid.write_results(folder, solution.t, solution.rho)
    arrays = {"t": solution.t, "rho": run.grid.whole(solution.rho), **grid_arrays}
    if run.exact is not None:
        arrays["exact"] = run.grid.whole(np.array([run.exact(t) for t in solution.t]))
    marks = marked_points(run)
    grid_arrays = {**grid_arrays, **marks}
    arrays.update(marks)
    if ranks.rank != 0:
        return files, list(grid_arrays)
    np.savez_compressed(folder / "densities.npz", **arrays)
    with writing(folder / "history.csv"), open(folder / "history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HISTORY)
        writer.writerows(zip(*(map(repr, map(float, solution.history[key])) for key in HISTORY)))
    return files, list(grid_arrays)


def marked_points(run):
    """What the species presets' figures mark, as arrays for densities.npz: ``teacher``, the
    teacher's neurons w_j = (a_j, b_j) of a lifted ReLU problem
    (:class:`~solver.energies.lifted.LiftedReluRisk`), or ``spikes``, the rows (z_j, m_j) of
    the spikes' positions and masses of sparse deconvolution
    (:class:`~solver.energies.deconvolution.SpikeDeconvolution`); none for other energies."""
    from .energies.deconvolution import SpikeDeconvolution
    from .energies.lifted import LiftedReluRisk

    if isinstance(run.energy, SpikeDeconvolution):
        return {"spikes": np.column_stack([run.energy.spikes, run.energy.weights])}
    if isinstance(run.energy, LiftedReluRisk) and run.problem is not None and run.problem.teacher is not None:
        return {"teacher": run.problem.teacher}
    return {}


def read_results(folder):
    """(densities.npz as a dict, history.csv as a dict of arrays) of a results folder."""
    with np.load(folder / "densities.npz") as data:
        densities = dict(data)
    with open(folder / "history.csv", newline="") as handle:
        reader = csv.DictReader(handle, restval="")  # a row cut short reads as "", a ValueError below
        rows = list(reader)
    # a folder written before the reaction existed has no source column: its runs had none
    known = [key for key in HISTORY if key != "source" or "source" in (reader.fieldnames or ())]
    history = {key: np.array([float(row[key]) for row in rows]) for key in known}
    return densities, {"source": np.zeros(len(rows)), **history}


def marginal_2d(rho, bounds):
    """What a figure shows of a density: 2D as is, 3D summed over the last axis (the
    marginal density of the first two coordinates), 1D as is."""
    if rho.ndim == 3:
        return rho.sum(axis=2) * (bounds[2, 1] - bounds[2, 0]) / rho.shape[2]
    return rho


def plot(folder, animation=True):
    """snapshots.png, energy.png (energy and mass), error.png (when the exact solution is
    known) and animation.gif of a results folder, from its densities.npz and history.csv."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    densities, history = read_results(folder)
    if "species" in densities:
        plot_species(folder, densities, history, animation)
        return
    t, rho, bounds, points = densities["t"], densities["rho"], densities.get("bounds"), densities.get("points")
    shown = list(rho) if points is not None else [marginal_2d(r, bounds) for r in rho]
    top = max(float(np.max(s)) for s in shown)

    surface = points is not None and points.shape[1] == 3 and densities["cells"].shape[1] == 3
    axes_options = {"subplot_kw": {"projection": "3d"}} if surface else {}

    def draw(ax, k):
        ax.clear()
        if surface:  # a triangle surface in R³ (a sphere): a 3D view
            from .fem import plot_surface

            plot_surface(ax, points, densities["cells"], shown[k], clim=(0, top))
            ax.set(xlabel="x₁", ylabel="x₂", zlabel="x₃")
        elif points is not None and points.shape[1] == 2:
            ax.tripcolor(points[:, 0], points[:, 1], densities["cells"], shown[k], shading="gouraud", vmin=0,
                         vmax=top)
            ax.set(xlabel="x₁", ylabel="x₂", aspect="equal")
        elif points is not None:  # a 3D mesh: the vertices seen along x₃
            ax.scatter(points[:, 0], points[:, 1], c=shown[k], s=3, vmin=0, vmax=top)
            ax.set(xlabel="x₁", ylabel="x₂", aspect="equal")
        elif shown[k].ndim == 1:
            x = np.linspace(*bounds[0], len(shown[k]) + 1)
            ax.stairs(shown[k], x, fill=True)
            ax.set(ylim=(0, 1.05 * top), xlabel="x", ylabel="ρ")
        else:
            ax.imshow(shown[k].T, origin="lower", extent=bounds[:2].ravel(), cmap="viridis", vmin=0, vmax=top,
                      aspect="auto")
            ax.set(xlabel="x₁", ylabel="x₂")
        ax.set_title(f"t = {t[k]:.3g}" + (" (marginal of x₁, x₂)" if rho.ndim == 4 else "")
                     + (" (vertices)" if points is not None and points.shape[1] == 3 and not surface else ""))

    picks = np.unique(np.linspace(0, len(t) - 1, min(4, len(t))).round().astype(int))
    fig, axes = plt.subplots(1, len(picks), figsize=(3.6 * len(picks), 3.3), constrained_layout=True, squeeze=False,
                             **axes_options)
    for ax, k in zip(axes[0], picks):
        draw(ax, k)
    fig.savefig(folder / "snapshots.png", dpi=110)
    plt.close(fig)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    energy = history["energy"]
    left.plot(history["t"], energy)
    left.set(xlabel="t", yscale="log" if energy.min() > 0 else "linear", title="energy F(ρ)")
    right.plot(history["t"], (history["mass"] - history["source"]) / history["mass"][0] - 1)
    right.set(xlabel="t", title="relative mass change" + (" less the reaction's" if history["source"].any() else ""))
    fig.savefig(folder / "energy.png", dpi=110)
    plt.close(fig)

    if "exact" in densities:
        if points is not None:
            weights = densities["weights"]  # lumped masses
        else:
            weights = np.prod((bounds[:, 1] - bounds[:, 0]) / np.array(rho.shape[1:]))  # the cell volume
        errors = np.sum(np.abs(rho - densities["exact"]) * weights, axis=tuple(range(1, rho.ndim)))
        fig, ax = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
        ax.plot(t, errors, "o-")
        ax.set(xlabel="t", ylabel="‖ρ − ρ_exact‖_L1", yscale="log", title="Error against the exact solution")
        fig.savefig(folder / "error.png", dpi=110)
        plt.close(fig)

    if animation:
        fig, ax = plt.subplots(figsize=(4.4, 3.8), constrained_layout=True, **axes_options)
        movie = FuncAnimation(fig, lambda k: draw(ax, k), frames=len(t))
        movie.save(folder / "animation.gif", writer=PillowWriter(fps=4))
        plt.close(fig)


def plot_species(folder, densities, history, animation=True):
    """The figures of densities in species ν±, by what they live on: snapshots.png (on the
    circle of a lifted ReLU problem :func:`solver.figures.circle_density` at four save times,
    with the teacher; on a sphere :func:`solver.figures.sphere_density` at the last; on the
    deconvolution torus T¹ or T² :func:`solver.figures.torus_density` at four save times,
    with the spikes), energy.png (F and the mass of each species over time: the reaction
    does not conserve mass) and animation.gif (each species against the angle on the circle
    or against z on T¹; on a sphere ν+ − ν− at the vertices of its upper half; on T² the
    image of ν+ − ν−)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation, PillowWriter

    from .figures import circle_density, sphere_density, torus_density

    t, rho, names, teacher = densities["t"], densities["rho"], densities["species"], densities.get("teacher")
    points, bounds, spikes = densities.get("points"), densities.get("bounds"), densities.get("spikes")
    if spikes is None and teacher is not None and points is None and teacher.shape[1] == len(bounds) + 1:
        spikes, teacher = teacher, None  # a folder written when the spikes (z, m) were stored as the teacher
    picks = np.unique(np.linspace(0, len(t) - 1, min(4, len(t))).round().astype(int))
    if points is not None:
        kind, weights = "sphere", densities["weights"]
        sphere_density(folder / "snapshots.png", points, densities["cells"], rho[-1], teacher,
                       title=f"ν+ − ν− at t = {t[-1]:g}")
    else:
        weights = np.prod((bounds[:, 1] - bounds[:, 0]) / np.array(rho.shape[2:]))  # the cell volume
        if len(bounds) == 1 and spikes is None:  # the circle of angles of a lifted ReLU problem
            kind, ((lo, hi),) = "circle", bounds
            axis = lo + (np.arange(rho.shape[-1]) + 0.5) * (hi - lo) / rho.shape[-1]
            circle_density(folder / "snapshots.png", axis, t[picks], rho[picks], teacher)
        else:  # the deconvolution torus T^d
            kind = "line" if len(bounds) == 1 else "image"
            axis = bounds[0, 0] + (np.arange(rho.shape[2]) + 0.5) * (bounds[0, 1] - bounds[0, 0]) / rho.shape[2]
            torus_density(folder / "snapshots.png", bounds, t[picks], rho[picks], spikes)
    masses = np.sum(rho * weights, axis=tuple(range(2, rho.ndim)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    energy = history["energy"]
    left.plot(history["t"], energy)
    left.set(xlabel="t", yscale="log" if energy.min() > 0 else "linear", title="energy F(ν)")
    for k, name in enumerate(names):
        right.plot(t, masses[:, k], "o-", label=str(name))
    right.set(xlabel="t", title="mass of each species (not conserved: reaction)")
    right.legend()
    fig.savefig(folder / "energy.png", dpi=110)
    plt.close(fig)
    if not animation:
        return
    if kind in ("circle", "line"):
        fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)

        def draw(k):
            ax.clear()
            for part, name, color in zip(rho[k], names, ("tab:red", "tab:blue", "tab:green")):
                ax.plot(axis, part, color=color, label=str(name))
            for z in [] if spikes is None else spikes[:, 0]:
                ax.axvline(z, color="k", ls="--", lw=0.7)
            per = "radian" if kind == "circle" else "unit length"
            ax.set(xlabel="angle φ" if kind == "circle" else "z", ylabel=f"density per {per}",
                   ylim=(0, 1.05 * float(np.max(rho))), title=f"t = {t[k]:.3g}")
            ax.legend()
    elif kind == "image":  # T²: ν+ − ν− with the spikes
        fig, ax = plt.subplots(figsize=(4.4, 3.8), constrained_layout=True)
        signed = rho[:, 0] - rho[:, 1]
        top = max(float(np.max(np.abs(signed))), 1e-300)

        def draw(k):
            ax.clear()
            ax.imshow(signed[k].T, origin="lower", extent=bounds.ravel(), cmap="coolwarm", vmin=-top, vmax=top)
            if spikes is not None:
                ax.scatter(spikes[:, 0], spikes[:, 1], marker="*", s=120, c="k")
            ax.set(xlabel="z₁", ylabel="z₂", title=f"t = {t[k]:.3g}: ν+ − ν−")
    else:  # the sphere seen from one side: the vertices coloured by ν+ − ν− (the first two species)
        fig, ax = plt.subplots(figsize=(4.4, 3.8), constrained_layout=True)
        signed = rho[:, 0] - rho[:, 1]
        top = max(float(np.max(np.abs(signed))), 1e-300)

        def draw(k):
            ax.clear()
            front = points[:, 2] >= 0
            ax.scatter(points[front, 0], points[front, 1], c=signed[k, front], s=8, cmap="coolwarm", vmin=-top,
                       vmax=top)
            ax.set(xlabel="s₁", ylabel="s₂", aspect="equal", title=f"t = {t[k]:.3g}: ν+ − ν− (s₃ ≥ 0)")

    FuncAnimation(fig, draw, frames=len(t)).save(folder / "animation.gif", writer=PillowWriter(fps=4))
    plt.close(fig)


def summary(run, solution, config_name, comparison, written):
    """The text of summary.md; ``written`` is what :func:`write_results` returned."""
    report = solution.invariants()
    title = run.config["problem"]["name"] if run.problem else config_name
    lines = [f"# {title}", "", f"config: `{config_name}`; energy: `{run.energy!r}`; grid: `{run.grid!r}`", "",
             f"solver {__version__}, {solution.scheme} scheme, t from {solution.t[0]:g} to {solution.t[-1]:g}", "",
             "| quantity | value |", "|---|---|",
             f"| F(ρ) at start / end | {solution.history['energy'][0]:.6g} / {solution.history['energy'][-1]:.6g} |",
             f"| steps accepted / rejected | {solution.accepted} / {solution.rejected} |",
             *([f"| Newton iterations | {solution.newton_iterations} |"] if solution.newton_iterations else []),
             f"| max relative mass drift | {report['mass_drift']:.2e} |",
             f"| min ρ over all steps | {report['min']:.3g} |",
             f"| max energy rise over a step | {report['energy_rise']:.2e} |"]
    if hasattr(run.energy, "convex_reference"):  # a lifted energy: its global minimum on the same cells
        f_star, energy = run.energy.convex_reference(run.grid).value, solution.history["energy"]
        masses = run.grid.integrate_species(solution.rho[-1])
        lines += [f"| F* (convex minimum on the same cells) | {f_star:.10g} |",
                  f"| relative excess (F − F*)/(F(ρ₀) − F*) at t = {solution.t[-1]:g} | "
                  f"{(energy[-1] - f_star) / (energy[0] - f_star):.3e} |",
                  f"| mass of each species at t = {solution.t[-1]:g} | "
                  + ", ".join(f"{name} {mass:.6g}" for name, mass in zip(run.grid.names, masses)) + " |"]
    if run.exact is not None:
        exact = run.exact(solution.t[-1])
        error = run.grid.integrate(np.abs(solution.rho[-1] - exact))
        lines.append(f"| L1 error against the exact solution at t = {solution.t[-1]:g} | {error:.3e} |")
        # the profile of R^d is the solution while its support is inside; it spreads: the end decides
        if run.grid.maximum(np.where(run.grid.on_boundary, exact, 0.0)) > 0:
            lines.append(f"| **not exact here** | at t = {solution.t[-1]:g} the profile's support reaches the "
                         "cells along a wall or the vertices on the boundary: the profile of R^d is the solution "
                         "only while its support stays inside, and the error above may not be the "
                         "discretization's |")
    files, arrays = written
    lines += ["", f"Files: config.toml (the config run), metadata.json, densities.npz (t, rho, {', '.join(arrays)}"
              + (", exact" if run.exact is not None else "") + "), "
              + "".join(f"{name} ({what}), " for name, what in files.items())
              + "history.csv (one row per accepted step), snapshots.png, energy.png"
              + (", error.png" if run.exact is not None else "")
              + (", animation.gif" if run.config["output"]["animation"] else "") + "."]
    if comparison:
        lines += ["", "## PDE against gradient descent on particles", "",
                  (comparison / "study.md").read_text().split("\n", 1)[1].strip(), "",
                  "Files: study.csv (every m, seed and time), distance_vs_m.png, energy_vs_t.png, "
                  "density_particles.png."]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- results folders
def staging_of(out):
    """The folder a run writes into before it is complete."""
    return out.with_name(out.name + ".incomplete")


def starting_of(out):
    """The folder this process makes its staging folder in (renamed to :func:`staging_of`
    when whole): the longest name a run gives a folder beside ``out``."""
    return out.with_name(f"{out.name}.incomplete-starting-{os.getpid()}")


def digest(path):
    """The SHA-256 of a file's bytes, in hex."""
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def file_identities(folder):
    """Each file under ``folder``, by its name there, with its inode, modification time and
    size: a file written since (in place or replaced) differs in one of them."""
    return {path.relative_to(folder).as_posix(): (info.st_ino, info.st_mtime_ns, info.st_size)
            for path in folder.rglob("*") if path.is_file() for info in [path.stat()]}


def write_manifest(folder, before=None):
    """``manifest.json``: every file a run wrote into ``folder`` (its results, not the
    checkpoint or the lock), with its size and SHA-256. Written last: a staging folder
    with a manifest is complete. With ``before``, the folder's :func:`file_identities`
    when the run began writing its results: only config.toml and the files written since;
    a file someone else put into the staging folder is left out, so that the results
    folder holding it is never replaced."""
    now = file_identities(folder)
    files = {name: {"bytes": now[name][2], "sha256": digest(folder / name)} for name in sorted(now)
             if Path(name).name not in (MANIFEST, LOCK) and not Path(name).name.startswith("checkpoint")
             and (before is None or name == "config.toml" or before.get(name) != now[name])}
    write_json(folder / MANIFEST, {"solver": __version__, "files": files})


def foreign_files(folder):
    """What in ``folder`` its manifest does not list as it was written (files added,
    changed or replaced by a link, in it or in its subfolders, such as a species' folder
    of mesh files; empty folders), by their paths in the folder, or None when it has no
    readable manifest. The lock and a replaced folder half removed (names of ours, see
    :func:`swap_in`) do not count."""
    try:
        listed = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    foreign = []
    for path in sorted(folder.rglob("*")):  # links to folders are not followed: they are foreign themselves
        name = path.relative_to(folder).as_posix()
        if name.split("/")[0] in (MANIFEST, LOCK, REPLACED):
            continue
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                foreign.append(name)
            continue
        entry = listed.get(name)
        if (path.is_symlink() or not path.is_file() or entry is None or path.stat().st_size != entry["bytes"]
                or digest(path) != entry["sha256"]):
            foreign.append(name)
    return foreign


def check_out(out):
    """Refuse an ``out`` that a run must not write or replace, before anything is written:
    a run replaces a folder only when its manifest lists exactly what it holds."""
    try:
        check_replaceable(out)
    except OSError as error:  # a name too long, a loop of links, …
        raise UsageError(f"--out {out}: {error.strerror}; give another --out") from None


def check_replaceable(out):
    """:func:`check_out` (OSError from the file system passes)."""
    if out.name in ("", ".", "..") or out.resolve() == Path(out.resolve().anchor):
        raise UsageError(f"--out {str(out) or repr('')}: give the name of a results folder to create or replace "
                         "(e.g. --out results)")
    if out.name.endswith(".incomplete"):
        results = out.with_name(out.name.removesuffix(".incomplete"))
        raise UsageError(f"--out {out}: names ending in .incomplete are staging folders of interrupted runs; give "
                         f"the results folder's own name, and `wgf run --resume {results}` to continue one")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise UsageError(f"--out {out}: {parent} is a file, not a folder; give another --out")
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder; give another --out")
    if out.is_dir() and any(out.iterdir()):
        foreign = foreign_files(out)
        if foreign is None:
            raise UsageError(f"--out {out} is a folder that is not wgf results (no manifest.json); give another "
                             "--out or empty it")
        if foreign:
            shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
            raise UsageError(f"--out {out} holds what its run did not write, or changed since: {shown}; a run "
                             "replaces the whole folder, so move those out of it or give another --out")
    existing = next(folder for folder in (out.parent, *out.parent.parents) if folder.is_dir())
    longest, limit = len(os.fsencode(starting_of(out).name)), os.pathconf(existing, "PC_NAME_MAX")
    if longest > limit:
        raise UsageError(f"--out {out}: the name is too long for the folders a run makes beside it ("
                         f"{starting_of(out).name}, {longest} bytes; this file system allows {limit}); give a "
                         "shorter --out")


def lock_holder(folder):
    """The process (``pid`` or ``pid on host``) holding ``folder``'s lock file, or None if
    there is none or its process is gone (a stale lock)."""
    try:
        pid, host = (folder / LOCK).read_text().split()[:2]
        pid = int(pid)
    except (OSError, ValueError):
        return None
    if host != socket.gethostname():
        return f"{pid} on {host}"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return str(pid)


def take_lock(folder, out):
    """Create ``folder``'s lock file with this process's id, or :class:`EnvironmentProblem`
    if a live process holds it; a stale lock (its process gone) is replaced."""
    for _ in range(2):
        try:
            descriptor = os.open(folder / LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = lock_holder(folder)
            if holder is not None:
                raise EnvironmentProblem(f"{out} is in use by process {holder}; wait for it to finish (or stop it "
                                         "and then `wgf run --resume`)") from None
            (folder / LOCK).unlink(missing_ok=True)
            continue
        with os.fdopen(descriptor, "w") as handle:
            handle.write(f"{os.getpid()} {socket.gethostname()}\n")
        return
    raise EnvironmentProblem(f"{out} is in use by another process that is starting; try again")


def swap_in(staging, out):
    """Move the complete ``staging`` folder to ``out``, replacing an earlier results folder.

    The steps, in this order: remove the checkpoints; move ``out`` (checked ours) into
    the staging folder as ``.wgf-replaced``; rename the staging folder to ``out``; remove
    ``out/.wgf-replaced`` and the lock. A kill after any step leaves a state
    :func:`finish_swap` recognises (the manifest marks a complete staging folder; the old
    results are in one of two places of ours), so no run is lost and none is redone.
    """
    for path in staging.glob("checkpoint*.npz"):
        path.unlink()
    if out.exists():
        out.rename(staging / REPLACED)
    staging.rename(out)
    shutil.rmtree(out / REPLACED, ignore_errors=True)
    (out / LOCK).unlink(missing_ok=True)


def finish_swap(out):
    """Complete what a killed run left of its final swap (see :func:`swap_in`); returns
    whether a complete run was moved into place."""
    staging = staging_of(out)
    if out.is_dir() and (out / REPLACED).exists():
        shutil.rmtree(out / REPLACED)
    if out.is_dir() and (out / LOCK).exists() and lock_holder(out) is None:
        (out / LOCK).unlink()
    if not (staging / MANIFEST).is_file() or lock_holder(staging) is not None:
        return False
    check_out(out)
    swap_in(staging, out)
    return True


# ---------------------------------------------------------------------------- commands
def start_staging(config_path, out, run, command):
    """Rank 0's part of a new run: finish an interrupted swap, check ``out``, and make the
    staging folder with its lock, the config and metadata.json, atomically: they are
    written in ``DIR.incomplete-starting-PID``, renamed to ``DIR.incomplete`` when whole
    (a kill before leaves that folder, removed by the next run once its process is gone).
    A disk full here leaves nothing (there is nothing to resume)."""
    check_out(out)
    staging = staging_of(out)
    for debris in out.parent.glob(f"{glob.escape(out.name)}.incomplete-starting-*"):
        if lock_holder(debris) is None:
            shutil.rmtree(debris, ignore_errors=True)
    if finish_swap(out):
        print(f"wgf: finished moving the completed run of {staging} to {out}", file=sys.stderr)
    check_out(out)
    if staging.exists():
        refuse_staging(staging, out)
    starting = starting_of(out)
    try:
        starting.mkdir(parents=True)
    except OSError as error:
        raise EnvironmentProblem(f"--out {out}: cannot create {staging}: {error.strerror}; give a writable "
                                 "--out") from None
    try:
        take_lock(starting, out)
        with writing(staging / "config.toml"):
            shutil.copyfile(config_path, starting / "config.toml")
        write_json(starting / "metadata.json", metadata_of(run, command, config_path))
        starting.rename(staging)
    except DiskFull as error:
        shutil.rmtree(starting, ignore_errors=True)
        raise EnvironmentProblem(f"disk full while writing {error.path.name}; nothing was computed: run again once "
                                 "there is room") from None
    except OSError as error:
        shutil.rmtree(starting, ignore_errors=True)
        if staging.exists():  # another run made it meanwhile
            refuse_staging(staging, out)
        raise EnvironmentProblem(f"--out {out}: cannot write {staging}: {error.strerror}") from None


def refuse_staging(staging, out):
    """Why a new run cannot use ``out`` while ``staging`` exists: in use, or interrupted."""
    holder = lock_holder(staging)
    if holder is not None:
        raise EnvironmentProblem(f"{out} is in use by process {holder}; wait for it to finish or give another --out")
    raise UsageError(f"{staging} holds an interrupted run: continue it with `wgf run --resume {out}` or delete that "
                     "folder")


def open_resume(out, ranks):
    """Rank 0's part of a resume, before anything changes: lock the staging folder and
    read its metadata. Returns the metadata."""
    staging = staging_of(out)
    take_lock(staging, out)
    try:
        return json.loads((staging / "metadata.json").read_text())
    except (OSError, ValueError) as error:
        (staging / LOCK).unlink(missing_ok=True)
        raise EnvironmentProblem(f"{staging / 'metadata.json'} cannot be read ({error}); it is not a whole run "
                                 f"folder: delete {staging} and run again") from None


def check_checkpoint(path, run):
    """The state in the checkpoint ``path`` (None if there is none), refused with a
    UsageError when it was written for another config, solver version or commit."""
    if not path.exists():
        return None
    state, stored = load_checkpoint(path)
    if stored is None:
        raise UsageError(f"{path} holds no fingerprint of its run (an older solver wrote it); it cannot be checked "
                         "against the config, so it is not resumed: delete it to restart the run from its start")
    current = fingerprint(run)
    if stored.get("solver") != current["solver"]:
        raise UsageError(f"{path} was written by solver {stored.get('solver')}, this is solver {current['solver']}; "
                         "resume it with that version, or delete it to restart the run from its start")
    if None not in (stored.get("commit"), current["commit"]) and stored["commit"] != current["commit"]:
        raise UsageError(f"{path} was written by the solver of commit {stored['commit'][:12]}, this is commit "
                         f"{current['commit'][:12]}; resume it with that commit checked out, or delete it to restart "
                         "the run from its start")
    changed = changed_keys(stored.get("config"), current["config"])
    if changed:
        raise UsageError(f"the config of {path.parent} differs from the one its checkpoint was computed with, in "
                         f"{', '.join(changed)}; undo the change to resume, or run the changed config into another "
                         "--out")
    return state


def split_data(run, ranks):
    """The run with, under MPI on a discretization that every rank holds whole (a grid), its
    terms that sum over a data set split over the ranks (their ``on_ranks``: a network risk
    computes F' on its block of data, and the blocks' parts are added over the ranks);
    otherwise (one process, a mesh split over the ranks) the run as it is. The particles of a
    ``[particles]`` comparison keep the whole problem (rank 0 runs them)."""
    if ranks.comm is None or run.grid.ranks > 1:
        return run
    terms = [term.on_ranks(ranks.comm) if hasattr(term, "on_ranks") else term
             for term in getattr(run.energy, "terms", [run.energy])]
    return dataclasses.replace(run, energy=sum(terms[1:], terms[0]))


def resume_state(path, run, ranks):
    """The state a resume starts from, or None to start the run from its beginning: the
    checkpoint ``path`` (:func:`check_checkpoint`), read by rank 0; each rank takes its part
    of the whole densities the checkpoint holds (the discretization's ``part``), whatever
    the split and the number of ranks of the run that wrote it."""
    state = ranks.decide(lambda: check_checkpoint(path, run))
    if state is None:
        return state
    return dataclasses.replace(state, rho=run.grid.part(state.rho), saved=[run.grid.part(rho) for rho in state.saved])


def execute(config_path, out, command, require_particles=False, resume=False):
    """Run a config into ``out`` (see the module docstring); returns the exit status."""
    ranks = Ranks()
    run = split_data(load(config_path), ranks)
    points = run.grid.global_size
    if ranks.size > points:
        raise UsageError(f"{ranks.size} MPI ranks for the {points} points (vertices or cells) of {run.grid!r}: "
                         f"run on at most {points} ranks")
    if require_particles and not run.particles:
        raise ConfigError("particles: missing; `wgf compare` needs [particles] with m = [...] "
                          "(or use `wgf run`)")
    if not resume:
        ranks.decide(lambda: check_out(out))
    staging = staging_of(out)
    if resume:
        if ranks.decide(lambda: finish_swap(out)):
            if ranks.rank == 0:
                print(f"wgf: {staging} was complete; moved it to {out}", file=sys.stderr)
            return 0
        info = ranks.decide(lambda: open_resume(out, ranks))
    else:
        ranks.decide(lambda: start_staging(config_path, out, run, command))
        info = json.loads((staging / "metadata.json").read_text()) if ranks.rank == 0 else None
    path = staging / CHECKPOINT
    checkpointer = Checkpointer(path, run.config["output"]["checkpoint_seconds"], fingerprint(run), ranks, run.grid)
    solved = False
    try:
        state = resume_state(path, run, ranks) if resume else None
        start = time.perf_counter()
        with stopping_on_signals(checkpointer):
            checkpointer.solving = True
            solution = solve(run.energy, run.grid, run.rho0, (run.save_at[0], run.save_at[-1]), save_at=run.save_at,
                             checkpoint=checkpointer, resume=state, **run.solve_options)
            checkpointer.solving = False
            solved = True
            checkpointer.save_last()
            finish_results(run, solution, staging, info, start, ranks)
    except BaseException as error:
        disk_full = isinstance(error, DiskFull) and (f"disk full while writing {error.path.name}; the run can be "
                                                     f"resumed with `wgf run --resume {out}` once there is room")
        if not ranks.all_reach():  # the error of some ranks only: the others wait in a collective
            print(f"wgf: error on rank {ranks.rank} of {ranks.size}: {disk_full or repr(error)}; ending every rank",
                  file=sys.stderr)
            ranks.comm.Abort(1)
        if isinstance(error, (Interrupted, KeyboardInterrupt)):
            signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
            ranks.decide(lambda: print(f"wgf: interrupted; continue with `wgf run --resume {out}`", file=sys.stderr))
            release(staging, ranks)
            return 128 + signum
        if disk_full:
            release(staging, ranks)
            raise EnvironmentProblem(disk_full) from None
        if resume or solved:  # a failed resume leaves the folder as it found it; a solved run can be resumed
            release(staging, ranks)
        else:
            ranks.decide(lambda: shutil.rmtree(staging, ignore_errors=True))
        raise
    ranks.decide(lambda: swap_into_place(staging, out))
    if ranks.rank == 0:
        print(f"wrote {out}/: summary.md, figures, densities; {solution.accepted} PDE steps")
    return 0


def release(staging, ranks):
    """Remove this run's lock from ``staging`` (rank 0)."""
    ranks.decide(lambda: (staging / LOCK).unlink(missing_ok=True))


def swap_into_place(staging, out):
    """The final swap of a complete ``staging`` (rank 0), after checking again that the
    earlier ``out`` is still only ours."""
    try:
        check_out(out)
    except UsageError as error:
        (staging / LOCK).unlink(missing_ok=True)
        raise UsageError(f"{error}; the new results wait complete in {staging}: then `wgf run --resume {out}` "
                         "moves them into place") from None
    swap_in(staging, out)


def finish_results(run, solution, staging, info, start, ranks):
    """Write the results, figures, particle study, summary and metadata of a solved run
    into ``staging``, then its manifest of what it wrote (a full disk raises :class:`DiskFull`)."""
    before = file_identities(staging) if ranks.rank == 0 else None
    with writing(staging / "densities.npz"):
        written = write_results(staging, run, solution, ranks)
    name = Path(info["config_file"]).name if ranks.rank == 0 else ""
    text = summary(run, solution, name, None, written)  # on every rank: a mesh sums over the ranks

    def rest():
        with writing(staging / "figures"):
            plot(staging, animation=run.config["output"]["animation"])
        comparison = None
        if run.particles:
            from .compare import study

            particles = run.particles
            with writing(staging / "study.csv"):
                study(run.problem, particles["m"], run.save_at, particles["seeds"], particles["step"], out=staging,
                      method=particles["distance"], pde=solution)
            comparison = staging
        with writing(staging / "summary.md"):
            (staging / "summary.md").write_text(
                summary(run, solution, name, comparison, written) if comparison else text)
        info["wall_seconds"] = round(time.perf_counter() - start, 3)
        write_json(staging / "metadata.json", info)
        write_manifest(staging, before)

    ranks.decide(rest)


def list_problems():
    """The text of ``wgf problems``."""
    lines = ["Presets ([problem] name = ...):"]
    for name, make in problems.PRESETS.items():
        takes = inspect.signature(make).parameters
        try:  # the smallest discretization of each preset: a grid of 4 cells, the coarsest sphere mesh
            problem = make(**{key: value for key, value in LISTING_OPTIONS.items() if key in takes})
        except ImportError as error:  # a mesh preset without DOLFINx
            lines.append(f"  {name:<15} {(make.__doc__ or '').split(chr(10))[0].strip()} (needs {error.name})")
            continue
        lines.append(f"  {name:<15} {problem.description}; t_end = {problem.t_end:g}")
    lines.append("Energy terms ([[energy]] term = ...):")
    lines += [f"  {name:<22} {term.help}; keys: {', '.join(term.keys) or 'none'}" for name, term in ENERGIES.items()]
    lines.append("Initial densities ([initial] density = ...):")
    lines += [f"  {name:<15} {term.help}; keys: {', '.join(term.keys) or 'none'}"
              for name, term in INITIAL_DENSITIES.items()]
    lines.append("Time schemes ([time] scheme = ...):")
    lines += [f"  {name:<15} {stepper.summary}" for name, stepper in SCHEMES.items()]
    lines.append(f"Example configs: {CONFIGS}")
    return "\n".join(lines)


def parser():
    """The argument parser of ``wgf``."""
    main_parser = argparse.ArgumentParser(prog="wgf", description="Wasserstein gradient flows on grids, "
                                          "against gradient descent on particles.")
    main_parser.add_argument("--version", action="version", version=f"solver {__version__}")
    commands = main_parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser("run", help="solve a config and write a results folder",
                              description="Solve the problem of a TOML config (default: the flagship, "
                              f"{DEFAULT_CONFIG.name}: the lifted ReLU network on the circle, PDE against "
                              "gradient descent) and write one results folder.")
    run.add_argument("config", nargs="?", type=Path, help=f"TOML config (default: {DEFAULT_CONFIG.name})")
    run.add_argument("--out", type=Path, default=Path("results"), help="results folder (default: results)")
    run.add_argument("--resume", type=Path, metavar="DIR", help="continue the interrupted run of DIR")
    run.add_argument("--ranks", type=int, metavar="N", help="run on N MPI ranks (through the environment's mpirun; "
                     "a mesh is split over them, on a grid the data of a network risk); resume with the same N")
    compare = commands.add_parser("compare", help="the PDE against gradient descent on particles",
                                  description="Like run, for configs with a [particles] table (required).")
    compare.add_argument("config", type=Path, help="TOML config with [problem] and [particles]")
    compare.add_argument("--out", type=Path, default=Path("results"), help="results folder (default: results)")
    commands.add_parser("problems", help="list the presets, energy terms and initial densities",
                        description="List the presets, energy terms and initial densities a config may name.")
    plot_parser = commands.add_parser("plot", help="redraw the figures of a results folder",
                                      description="Redraw snapshots.png, energy.png, error.png and animation.gif "
                                      "from densities.npz and history.csv.")
    plot_parser.add_argument("results", type=Path, help="a results folder written by wgf run")
    return main_parser


def main(argv=None):
    """Entry point of ``wgf``; returns the exit status. The process is wgf's: it is tuned
    first (:func:`solver.process.tune_process`). Under MPI, an error that reaches here on
    one rank only ends every rank (``MPI.Abort``) rather than leave them waiting."""
    tune_process()
    args = parser().parse_args(argv)
    command = "wgf " + " ".join(map(str, sys.argv[1:] if argv is None else argv))
    ranks = Ranks()
    try:
        return command_status(args, command)
    except (ConfigError, UsageError) as error:
        where = f"{args.config}: " if isinstance(error, ConfigError) and getattr(args, "config", None) else ""
        status, message = 2, f"wgf: error: {where}{error}"
    except EnvironmentProblem as error:
        status, message = 1, f"wgf: error: {error}"
    except (RuntimeError, ValueError) as error:  # the run itself failed
        status, message = 1, f"wgf: error: the run failed: {error}"
    except BaseException:
        if ranks.comm is not None:
            import traceback

            traceback.print_exc()
            ranks.comm.Abort(1)
        raise
    if ranks.rank == 0:
        print(message, file=sys.stderr)
    return status


def command_status(args, command):
    """Run the parsed command; returns the exit status (errors as exceptions)."""
    if args.command == "problems":
        print(list_problems())
        return 0
    if args.command == "plot":
        redraw(args.results)
        print(f"redrew the figures in {args.results}/")
        return 0
    if args.command == "run" and args.resume is not None:
        if args.config is not None:
            raise UsageError("--resume takes the config of the interrupted run: give no CONFIG")
        if args.resume.name.removesuffix(".incomplete") in ("", ".", ".."):
            raise UsageError(f"--resume {args.resume}: give the results folder of the interrupted run")
        out = args.resume.with_name(args.resume.name.removesuffix(".incomplete"))
        if not (staging_of(out) / "config.toml").is_file():
            raise UsageError(f"nothing to resume: {staging_of(out)} holds no interrupted run")
        if args.ranks is not None:
            return relaunch(args.ranks, staging_of(out) / "config.toml", ["--resume", out])
        return execute(staging_of(out) / "config.toml", out, command, resume=True)
    config = args.config or DEFAULT_CONFIG
    if getattr(args, "ranks", None) is not None:
        return relaunch(args.ranks, config, [config, "--out", args.out])
    return execute(config, args.out, command, require_particles=args.command == "compare")


def relaunch(ranks, config_path, arguments):
    """``wgf run ARGUMENTS --ranks N``: ``wgf run ARGUMENTS`` on N MPI ranks, through the
    launcher of this environment (:func:`solver.mpi.mpirun_command`), with SIGINT and
    SIGTERM passed on to it; returns its exit status. Refused before anything starts: N < 1,
    a process already under ``mpirun``, a config that cannot run (checked here, on one
    process), and more ranks than the points (vertices or cells) of its discretization."""
    if ranks < 1:
        raise UsageError(f"--ranks {ranks}: give a number of MPI ranks >= 1")
    launched = launcher_size()
    if launched is not None:  # even of one rank: mpirun cannot be called from under mpirun
        raise UsageError(f"--ranks {ranks}: this wgf runs under mpirun already ({launched} rank(s)); give "
                         "--ranks or mpirun, not both")
    grid = load(config_path).grid
    points = grid.global_size
    if ranks > points:
        raise UsageError(f"--ranks {ranks}: more MPI ranks than the {points} points (vertices or cells) of "
                         f"{grid!r}; give at most {points}")
    from .mpi import mpirun_command

    try:
        command = mpirun_command(ranks, sys.executable, "-m", "solver", "run", *map(str, arguments))
    except FileNotFoundError as error:
        raise EnvironmentProblem(f"--ranks {ranks}: {error}") from None
    package_root = str(Path(__file__).resolve().parent.parent)  # the ranks import this solver
    path = os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    # an explicit environment: not MPI's own variables if this process initialized MPI (solver.mpi)
    launcher = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": path})
    main_thread = threading.current_thread() is threading.main_thread()  # only there can it take signals
    previous = {signum: signal.signal(signum, lambda signum, frame: launcher.send_signal(signum))
                for signum in (signal.SIGINT, signal.SIGTERM) if main_thread}
    try:
        status = launcher.wait()
    finally:
        for signum, action in previous.items():
            signal.signal(signum, action)
    return 128 - status if status < 0 else status


def redraw(folder):
    """``wgf plot``: the figures of a results folder again (its manifest updated), or a
    UsageError naming what is missing or unreadable."""
    for name in ("densities.npz", "history.csv"):
        if not (folder / name).is_file():
            raise UsageError(f"{folder} is not a results folder (no {name})")
    try:
        read_results(folder)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:
        raise UsageError(f"{folder}: densities.npz or history.csv cannot be read ({type(error).__name__}: "
                         f"{error}); run the config again to rewrite them") from None
    ours = foreign_files(folder) == []
    with writing(folder / "figures"):
        plot(folder)
        if ours:  # a folder that held only its run's files still does
            write_manifest(folder)
