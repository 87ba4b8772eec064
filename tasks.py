"""The project's two commands: ``python3 tasks.py run`` and ``python3 tasks.py test``.

Both first make (or reuse) the project-local virtual environment ``.venv`` by one of two
paths, chosen here and printed on every call (and recorded in ``.venv/solver-env``):

- ``wheel``: with a Python >= 3.12 on this machine (pyenv's versions or ``PATH``), pip
  alone: the ``dolfinx-solver-real`` wheel (current DOLFINx, MPICH from the ``mpich``
  wheel), NumPy 2 and current py-pde. No root, no apt.
- ``debian``: as root on Debian, DOLFINx from Debian's ``python3-dolfinx`` package, which is
  built for the system interpreter ``/usr/bin/python3``; the environment is then made
  from that interpreter with ``--system-site-packages`` and NumPy is pinned below 2
  (Debian's DOLFINx/PETSc are built against NumPy 1.x). Without root on a machine whose
  system Python lacks DOLFINx the environment is made from the interpreter running this
  script, a message says how to get DOLFINx, and the tests that need it skip.

The default is ``DEFAULT_PATH`` where it is possible, else the other; ``SOLVER_ENV=wheel``
or ``SOLVER_ENV=debian`` forces one. The environment is rebuilt only when ``pyproject.toml``
or this file changed, or the path did, so a second call is quick. Extra arguments are passed
on: ``python3 tasks.py test -k grid``.
"""

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
PYTHON = VENV / "bin" / "python"
STAMP = VENV / ".installed"
RECORD = VENV / "solver-env"
SYSTEM_PYTHON = "/usr/bin/python3"
# DOLFINx for the system Python, venv support, and the X/GL libraries gmsh's wheel loads
APT_PACKAGES = ["python3-dolfinx", "python3-venv", "python3-dev", "libglu1-mesa", "libxcursor1",
                "libxinerama1", "libxft2"]
PATHS = ("debian", "wheel")
DEFAULT_PATH = "wheel"  # the whole suite passes on both; the wheel needs no root and brings NumPy 2
WHEEL_PYTHON = (3, 12)  # the oldest Python the DOLFINx wheel is built for


def sh(*cmd, **kwargs):
    """Run a command, echoing it, and stop on failure."""
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(list(map(str, cmd)), check=True, **kwargs)


def imports_dolfinx(python):
    """Whether ``python`` can import DOLFINx (mpi4py first: the wheel's DOLFINx needs the libmpi
    it loads, see solver/dolfinx_compat.py, which this script cannot import before ``.venv`` exists)."""
    if not Path(python).exists():
        return False
    probe = subprocess.run([python, "-c", "from mpi4py import MPI; import dolfinx"], capture_output=True)
    return probe.returncode == 0


def install_debian_packages():
    """As root on Debian, install DOLFINx for the system interpreter (and gmsh's libraries)."""
    if imports_dolfinx(SYSTEM_PYTHON) and not missing_apt_packages():
        return True
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return imports_dolfinx(SYSTEM_PYTHON)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    sh("apt-get", "update", "-qq", env=env)
    sh("apt-get", "install", "-y", "-qq", *APT_PACKAGES, env=env)
    return imports_dolfinx(SYSTEM_PYTHON)


def missing_apt_packages():
    """The APT_PACKAGES that dpkg does not report as installed (all, without dpkg)."""
    if shutil.which("dpkg-query") is None:
        return APT_PACKAGES
    query = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${Status}\\n", *APT_PACKAGES],
                           capture_output=True, text=True)
    installed = {line.split()[0] for line in query.stdout.splitlines() if line.endswith("installed")}
    return [name for name in APT_PACKAGES if name not in installed]


def python_version(python):
    """(major, minor) of the interpreter ``python``, or None if it does not run."""
    try:
        probe = subprocess.run([str(python), "-c", "import sys; print('%d %d' % sys.version_info[:2])"],
                               capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return tuple(map(int, probe.stdout.split())) if probe.returncode == 0 else None


def wheel_python():
    """An interpreter for the wheel path: the oldest Python >= 3.12 among pyenv's versions
    and ``python3.N``/``python3`` on ``PATH`` (the oldest, because compiled packages such as
    Numba support a new Python last), or None."""
    pyenv_root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv"))
    candidates = sorted(pyenv_root.glob("versions/*/bin/python3"))
    candidates += [shutil.which(name) for name in ("python3.12", "python3.13", "python3.14", "python3")]
    found = {}
    for candidate in filter(None, candidates):
        version = python_version(candidate)
        if version and version >= WHEEL_PYTHON and VENV not in Path(candidate).parents:
            found.setdefault(version, str(candidate))
    return found[min(found)] if found else None


def on_debian_as_root():
    """Whether the Debian path can install packages: root, with apt-get."""
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def choose_path():
    """(path, wheel interpreter or None): ``SOLVER_ENV`` if set, else ``DEFAULT_PATH`` where it
    is possible (wheel: a Python >= 3.12; debian: root with apt, or a system Python with
    DOLFINx), else the other."""
    forced = os.environ.get("SOLVER_ENV", "")
    if forced and forced not in PATHS:
        sys.exit(f"tasks.py: SOLVER_ENV must be one of {', '.join(PATHS)}, got {forced!r}")
    python = wheel_python()
    if forced == "wheel" and python is None:
        sys.exit("tasks.py: SOLVER_ENV=wheel needs a Python >= 3.12 (pyenv's versions or PATH); none found")
    possible = {"wheel": python is not None, "debian": on_debian_as_root() or imports_dolfinx(SYSTEM_PYTHON)}
    if forced:
        path = forced
    elif possible[DEFAULT_PATH]:
        path = DEFAULT_PATH
    else:
        path = next((name for name in PATHS if possible[name]), "debian")
    return path, python


def fingerprint(path):
    """A hash of what decides what the environment holds: the path and two files."""
    digest = hashlib.sha256(path.encode())
    for name in ("pyproject.toml", "tasks.py"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def make_wheel_environment(python):
    """``.venv`` on ``python`` (>= 3.12) with pip alone: the DOLFINx wheel, NumPy 2, current py-pde."""
    sh(python, "-m", "venv", VENV)
    sh(PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(PYTHON, "-m", "pip", "install", "-q", "-e", f"{ROOT}[test,bench,fem,dolfinx-wheel]")


def make_debian_environment():
    """``.venv`` on Debian's Python with its DOLFINx (as root: installed by apt), NumPy < 2."""
    with_dolfinx = install_debian_packages()
    base = SYSTEM_PYTHON if with_dolfinx else sys.executable
    venv_args = ["--system-site-packages"] if with_dolfinx else []
    sh(base, "-m", "venv", *venv_args, VENV)
    pins = ["numpy<2"] if with_dolfinx else []
    sh(PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(PYTHON, "-m", "pip", "install", "-q", "-e", f"{ROOT}[test,bench,fem]", *pins)


def describe_environment():
    """One line: DOLFINx, NumPy and Python of ``.venv`` (as far as they import)."""
    probe = ("import sys, numpy\n"
             "try:\n    from solver import dolfinx_compat\n    d = dolfinx_compat.load()[0].__version__\n"
             "except ImportError:\n    d = 'none'\n"
             "print(f'Python {sys.version.split()[0]}, DOLFINx {d}, NumPy {numpy.__version__}')")
    result = subprocess.run([PYTHON, "-c", probe], capture_output=True, text=True, cwd=ROOT)
    return result.stdout.strip() or f"(no answer: {result.stderr.strip()[-200:]})"


def ensure_environment():
    """Make ``.venv`` with everything the project needs, unless it is up to date; say which path it took."""
    path, python = choose_path()
    if not (STAMP.exists() and STAMP.read_text() == fingerprint(path) and PYTHON.exists()):
        if VENV.exists():
            shutil.rmtree(VENV)
        if path == "wheel":
            make_wheel_environment(python)
        else:
            make_debian_environment()
        if not imports_dolfinx(PYTHON):
            print(
                "DOLFINx is not available, so the mesh tests will be skipped. Get it with\n"
                "  a Python >= 3.12 on PATH or in pyenv (then rerun this: the wheel path)\n"
                "  sudo apt-get install python3-dolfinx   (Debian/Ubuntu; then rerun this)\n"
                "  conda install -c conda-forge fenics-dolfinx   (anywhere, in a conda env)"
            )
        RECORD.write_text(f"{path}: {describe_environment()}\n")
        STAMP.write_text(fingerprint(path))
    other = PATHS[1 - PATHS.index(path)]
    print(f"environment: the {path} path, {RECORD.read_text().split(': ', 1)[1].strip()} "
          f"(SOLVER_ENV={other} for the {other} path)", flush=True)


def main(argv):
    """Dispatch ``run`` or ``test``."""
    if not argv or argv[0] not in ("run", "test"):
        print(__doc__)
        print("usage: python3 tasks.py {run,test} [extra arguments]")
        return 2
    ensure_environment()
    command, extra = argv[0], argv[1:]
    if command == "run":
        cmd = [PYTHON, "-m", "solver", "run", *(extra or ["--out", ROOT / "results"])]
    else:
        cmd = [PYTHON, "-m", "pytest", *extra]
    print("+", " ".join(map(str, cmd)), flush=True)
    return subprocess.run(list(map(str, cmd)), cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
