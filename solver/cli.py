"""The command line ``wgf`` (also ``python -m solver``).

``wgf run [CONFIG.toml] [--out DIR]`` solves the problem a TOML config describes (see
:mod:`solver.config`; without CONFIG, the built-in default ``solver/configs/network.toml``:
a mean-field network solved by the PDE and by gradient descent on particles) and writes
one results folder; ``wgf run --resume DIR`` continues an interrupted run from its last
checkpoint. ``wgf compare CONFIG.toml`` does the same with the comparison against
particles required; ``wgf problems`` lists the presets and the config's building blocks;
``wgf plot DIR`` redraws the figures of a results folder.

A run writes into ``DIR.incomplete`` and renames it to ``DIR`` only when everything is
written; it checkpoints there (atomically: write, then rename) every
``[output] checkpoint_seconds``. A config or argument that cannot run ends with a
one-line error, exit status 2, before anything is written; a run that fails (the solver
gives up, particles blow up) ends with a one-line error, exit status 1, and leaves no
folder.
"""

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

import numpy as np

from . import __version__, problems
from .config import ENERGIES, INITIAL_DENSITIES, ConfigError, load
from .process import tune_process
from .timeloop import SCHEMES, State, solve

CONFIGS = Path(__file__).parent / "configs"
DEFAULT_CONFIG = CONFIGS / "network.toml"
CHECKPOINT = "checkpoint.npz"
PACKAGES = ("numpy", "scipy", "numba", "matplotlib", "tqdm", "POT", "pillow")
HISTORY = ("t", "dt", "energy", "mass", "min")


class UsageError(Exception):
    """A command that cannot run as given (exit status 2, nothing written)."""


# ---------------------------------------------------------------------------- checkpoints
def write_atomically(path, write):
    """Call ``write(handle)`` on a temporary sibling of ``path``, sync it, then rename it to
    ``path``: a reader (or a crash) sees the old file or the new one, never half of one."""
    path = Path(path)
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "wb") as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def save_state(state, path):
    """Write a :class:`~solver.timeloop.State` to the npz file ``path`` atomically."""
    arrays = {"t": state.t, "rho": state.rho, "cap": state.cap, "accepted": state.accepted,
              "rejected": state.rejected, "saved": np.array(state.saved), "last_rejected": state.last_rejected,
              "since_rejection": state.since_rejection, "newton_iterations": state.newton_iterations}
    arrays.update({f"history_{key}": np.array(values) for key, values in state.history.items()})
    write_atomically(path, lambda handle: np.savez(handle, **arrays))


def load_state(path):
    """The :class:`~solver.timeloop.State` in the npz file ``path`` (as :func:`save_state` wrote it)."""
    with np.load(path) as data:
        return State(t=float(data["t"]), rho=data["rho"], cap=float(data["cap"]), accepted=int(data["accepted"]),
                     rejected=int(data["rejected"]), saved=list(data["saved"]),
                     history={key: list(data[f"history_{key}"]) for key in HISTORY},
                     last_rejected=float(data["last_rejected"]), since_rejection=int(data["since_rejection"]),
                     newton_iterations=int(data["newton_iterations"]))


class Checkpointer:
    """The ``checkpoint`` callback of :func:`~solver.timeloop.solve`: saves the state to ``path``
    when ``every`` wall seconds have passed since the last save (0: every step)."""

    def __init__(self, path, every):
        self.path, self.every, self.last = path, every, time.monotonic()

    def __call__(self, state):
        if time.monotonic() - self.last >= self.every:
            save_state(state, self.path)
            self.last = time.monotonic()


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


def write_results(folder, run, solution):
    """densities.npz and history.csv of the PDE solution, and the discretization's own
    files and arrays (on a mesh densities.xdmf, and the vertices, triangles and lumped
    masses for the figures; on a grid its bounds). Returns (files, array names): the
    discretization's own files (a dict of name → what it is for) and its arrays' names."""
    files, grid_arrays = run.grid.write_results(folder, solution.t, solution.rho)
    arrays = {"t": solution.t, "rho": solution.rho, **grid_arrays}
    if run.exact is not None:
        arrays["exact"] = np.array([run.exact(t) for t in solution.t])
    np.savez_compressed(folder / "densities.npz", **arrays)
    with open(folder / "history.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HISTORY)
        writer.writerows(zip(*(map(repr, map(float, solution.history[key])) for key in HISTORY)))
    return files, list(grid_arrays)


def read_results(folder):
    """(densities.npz as a dict, history.csv as a dict of arrays) of a results folder."""
    with np.load(folder / "densities.npz") as data:
        densities = dict(data)
    with open(folder / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    return densities, {key: np.array([float(row[key]) for row in rows]) for key in HISTORY}


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
    t, rho, bounds, points = densities["t"], densities["rho"], densities.get("bounds"), densities.get("points")
    shown = list(rho) if points is not None else [marginal_2d(r, bounds) for r in rho]
    top = max(float(np.max(s)) for s in shown)

    def draw(ax, k):
        ax.clear()
        if points is not None and points.shape[1] == 2:
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
                     + (" (vertices)" if points is not None and points.shape[1] == 3 else ""))

    picks = np.unique(np.linspace(0, len(t) - 1, min(4, len(t))).round().astype(int))
    fig, axes = plt.subplots(1, len(picks), figsize=(3.6 * len(picks), 3.3), constrained_layout=True, squeeze=False)
    for ax, k in zip(axes[0], picks):
        draw(ax, k)
    fig.savefig(folder / "snapshots.png", dpi=110)
    plt.close(fig)

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    energy = history["energy"]
    left.plot(history["t"], energy)
    left.set(xlabel="t", yscale="log" if energy.min() > 0 else "linear", title="energy F(ρ)")
    right.plot(history["t"], history["mass"] / history["mass"][0] - 1)
    right.set(xlabel="t", title="relative mass change")
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
        fig, ax = plt.subplots(figsize=(4.4, 3.8), constrained_layout=True)
        movie = FuncAnimation(fig, lambda k: draw(ax, k), frames=len(t))
        movie.save(folder / "animation.gif", writer=PillowWriter(fps=4))
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
    if run.exact is not None:
        error = run.grid.integrate(np.abs(solution.rho[-1] - run.exact(solution.t[-1])))
        lines.append(f"| L1 error against the exact solution at t = {solution.t[-1]:g} | {error:.3e} |")
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


# ---------------------------------------------------------------------------- commands
def staging_of(out):
    """The folder a run writes into before it is complete."""
    return out.with_name(out.name + ".incomplete")


def check_out(out):
    """Refuse an ``out`` that a run must not replace, before anything is written."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "metadata.json").exists():
        raise UsageError(f"--out {out} is a folder that is not wgf results; give another --out or empty it")
    if staging_of(out).exists():
        raise UsageError(f"{staging_of(out)} holds an interrupted run: continue it with `wgf run --resume {out}` "
                         "or delete it")


def execute(config_path, out, command, require_particles=False, resume=False):
    """Run a config into ``out`` (see the module docstring); returns the exit status."""
    staging = staging_of(out)
    run = load(config_path)
    if require_particles and not run.particles:
        raise ConfigError("particles: missing; `wgf compare` needs [particles] with m = [...] "
                          "(or use `wgf run`)")
    if not resume:
        check_out(out)
        staging.mkdir(parents=True)
        shutil.copyfile(config_path, staging / "config.toml")
        (staging / "metadata.json").write_text(json.dumps(metadata_of(run, command, config_path), indent=2) + "\n")
    info = json.loads((staging / "metadata.json").read_text())
    state = load_state(staging / CHECKPOINT) if (staging / CHECKPOINT).exists() else None
    try:
        start = time.perf_counter()
        solution = solve(run.energy, run.grid, run.rho0, (run.save_at[0], run.save_at[-1]), save_at=run.save_at,
                         checkpoint=Checkpointer(staging / CHECKPOINT, run.config["output"]["checkpoint_seconds"]),
                         resume=state, **run.solve_options)
        written = write_results(staging, run, solution)
        plot(staging, animation=run.config["output"]["animation"])
        if run.particles:
            from .compare import study

            particles = run.particles
            study(run.problem, particles["m"], run.save_at, particles["seeds"], particles["step"], out=staging,
                  method=particles["distance"], pde=solution)
        comparison = staging if run.particles else None
        (staging / "summary.md").write_text(summary(run, solution, Path(info["config_file"]).name, comparison,
                                                    written))
        info["wall_seconds"] = round(time.perf_counter() - start, 3)
        (staging / "metadata.json").write_text(json.dumps(info, indent=2) + "\n")
        (staging / CHECKPOINT).unlink(missing_ok=True)
    except KeyboardInterrupt:
        print(f"wgf: interrupted; continue with `wgf run --resume {out}`", file=sys.stderr)
        return 130
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    replace_folder(staging, out)
    print(f"wrote {out}/: summary.md, figures, densities; {solution.accepted} PDE steps")
    return 0


def replace_folder(new, out):
    """Rename ``new`` to ``out``; an earlier results folder ``out`` is removed only after."""
    old = None
    if out.exists():
        old = out.with_name(f"{out.name}.old-{os.getpid()}")
        out.rename(old)
    new.rename(out)
    if old is not None:
        shutil.rmtree(old)


def list_problems():
    """The text of ``wgf problems``."""
    lines = ["Presets ([problem] name = ...):"]
    for name, make in problems.PRESETS.items():
        problem = make(cells=4)
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
                              description="Solve the problem of a TOML config (default: the built-in network "
                              "problem, PDE against particles) and write one results folder.")
    run.add_argument("config", nargs="?", type=Path, help=f"TOML config (default: {DEFAULT_CONFIG.name})")
    run.add_argument("--out", type=Path, default=Path("results"), help="results folder (default: results)")
    run.add_argument("--resume", type=Path, metavar="DIR", help="continue the interrupted run of DIR")
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
    first (:func:`solver.process.tune_process`)."""
    tune_process()
    args = parser().parse_args(argv)
    command = "wgf " + " ".join(map(str, sys.argv[1:] if argv is None else argv))
    try:
        if args.command == "problems":
            print(list_problems())
            return 0
        if args.command == "plot":
            if not (args.results / "densities.npz").is_file():
                raise UsageError(f"{args.results} is not a results folder (no densities.npz)")
            plot(args.results)
            print(f"redrew the figures in {args.results}/")
            return 0
        if args.command == "run" and args.resume is not None:
            if args.config is not None:
                raise UsageError("--resume takes the config of the interrupted run: give no CONFIG")
            out = args.resume.with_name(args.resume.name.removesuffix(".incomplete"))
            if not (staging_of(out) / "config.toml").is_file():
                raise UsageError(f"nothing to resume: {staging_of(out)} holds no interrupted run")
            return execute(staging_of(out) / "config.toml", out, command, resume=True)
        config = args.config or DEFAULT_CONFIG
        return execute(config, args.out, command, require_particles=args.command == "compare")
    except (ConfigError, UsageError) as error:
        where = f"{args.config}: " if isinstance(error, ConfigError) and getattr(args, "config", None) else ""
        print(f"wgf: error: {where}{error}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError) as error:  # the run itself failed (its folder is gone)
        print(f"wgf: error: the run failed: {error}", file=sys.stderr)
        return 1
