"""Launching a command on several MPI ranks with the MPI of the active environment.

Debian's DOLFINx brings Open MPI (``/usr/bin/mpirun``); the DOLFINx wheel brings MPICH
(``mpiexec``/``mpirun`` in the virtual environment's ``bin``, from the ``mpich`` wheel). The
two launchers take different options: Open MPI refuses to start as root without
``--allow-run-as-root`` and more ranks than it counts slots without ``--oversubscribe``;
MPICH's Hydra knows neither flag and stops on them. :func:`mpirun_command` picks the
launcher beside the running interpreter (else the first on ``PATH``), asks it for its
``--version`` and adds only the flags that implementation takes. Process binding is made
the same on both: Open MPI binds each rank to a core when there are at least as many
cores as ranks (and to none beyond); Hydra binds nothing unless asked, so it is given
``-bind-to core`` in the first case.

From the shell: ``python -m solver.mpi -n 2 PROGRAM [ARGS...]`` runs PROGRAM on 2 ranks
(e.g. ``.venv/bin/python -m solver.mpi -n 2 .venv/bin/python script.py``).
"""

import argparse
import functools
import os
import shutil
import subprocess
import sys
from pathlib import Path

LAUNCHERS = ("mpiexec", "mpirun")


@functools.lru_cache(maxsize=None)
def find_launcher(python=None):
    """The MPI launcher of the environment of ``python`` and its implementation.

    Parameters
    ----------
    python : str, optional
        An interpreter (default: the running one). Its own ``bin`` folder is searched first
        (not following the venv's symlink, so a venv's MPICH wins over the system's Open MPI),
        then ``PATH``.

    Returns
    -------
    (str, str)
        The launcher's path and ``"openmpi"``, ``"mpich"`` or ``"unknown"`` (from its ``--version``).

    Raises
    ------
    FileNotFoundError
        When neither ``mpiexec`` nor ``mpirun`` is found.
    """
    folder = Path(sys.executable if python is None else python).parent
    candidates = [folder / name for name in LAUNCHERS] + [shutil.which(name) for name in LAUNCHERS]
    launcher = next((str(path) for path in candidates if path and os.access(path, os.X_OK)), None)
    if launcher is None:
        raise FileNotFoundError(f"no MPI launcher ({' or '.join(LAUNCHERS)}) in {folder} or on PATH; "
                                "the project's environment brings one with DOLFINx (see README.md)")
    probe = subprocess.run([launcher, "--version"], capture_output=True, text=True, timeout=60)
    version = probe.stdout + probe.stderr
    implementation = "openmpi" if "Open MPI" in version or "OpenRTE" in version else (
        "mpich" if "HYDRA" in version or "MPICH" in version else "unknown")
    return launcher, implementation


def mpirun_command(ranks, *command, python=None):
    """The argument list that runs ``command`` on ``ranks`` MPI ranks.

    Open MPI gets ``--oversubscribe`` (more ranks than it counts cores) and, as root,
    ``--allow-run-as-root``; MPICH gets ``-bind-to core`` when this process may run on at
    least ``ranks`` cores (Open MPI's own default: each rank then keeps its core and its
    cache, where unbound Hydra ranks may move; on the loaded 2-core test machine the 2-rank
    mesh benchmark was faster bound in 5 of 8 alternating pairs, medians 4.1 s against
    4.2 s: within the noise); unknown launchers get no extra flag.

    Run it with an explicit environment, ``subprocess.run(command, env=dict(os.environ))``,
    from a process that may have initialized MPI (imported ``mpi4py.MPI`` or DOLFINx): MPI
    then adds its own variables to the process's C environment, which a child inherits when
    ``env`` is not given, and Open MPI's ``mpiexec`` started under them exits with status 1
    and no message. ``os.environ`` is Python's copy, taken before.

    Parameters
    ----------
    ranks : int
        Number of ranks, at least 1.
    *command : str
        The program and its arguments.
    python : str, optional
        The interpreter whose environment's launcher to use (see :func:`find_launcher`).

    Returns
    -------
    list of str

    Raises
    ------
    ValueError
        For ``ranks`` that is not an integer >= 1, or an empty command.
    """
    if isinstance(ranks, bool) or not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"ranks must be an integer >= 1, got {ranks!r}")
    if not command:
        raise ValueError("mpirun_command needs a command to run")
    launcher, implementation = find_launcher(python)
    flags = []
    if implementation == "openmpi":
        flags = ["--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0 else [])
    elif implementation == "mpich" and ranks <= available_cores():
        flags = ["-bind-to", "core"]
    return [launcher, *flags, "-n", str(ranks), *map(str, command)]


def available_cores():
    """The number of cores this process may run on (its affinity mask where the system
    has one, else every core)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv=None):
    """``python -m solver.mpi -n N PROGRAM [ARGS...]``: run PROGRAM on N ranks; exit with its status."""
    parser = argparse.ArgumentParser(prog="python -m solver.mpi", description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--ranks", type=int, required=True, help="number of MPI ranks (>= 1)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the program and its arguments")
    args = parser.parse_args(argv)
    try:
        command = mpirun_command(args.ranks, *args.command)
    except (ValueError, FileNotFoundError) as error:
        parser.error(str(error))
    return subprocess.run(command, env=dict(os.environ)).returncode  # not MPI's own variables: see mpirun_command


if __name__ == "__main__":
    sys.exit(main())
