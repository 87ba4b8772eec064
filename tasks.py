"""The project's two commands: ``python3 tasks.py run`` and ``python3 tasks.py test``.

Both first make (or reuse) the project-local virtual environment ``.venv``:

- As root on Debian, DOLFINx comes from Debian's ``python3-dolfinx`` package, which is
  built for the system interpreter ``/usr/bin/python3``; the environment is then made
  from that interpreter with ``--system-site-packages`` and NumPy is pinned below 2
  (Debian's DOLFINx/PETSc are built against NumPy 1.x).
- Otherwise the environment is made from the interpreter running this script; if that
  one cannot import DOLFINx, a message says how to get it (conda:
  ``conda install -c conda-forge fenics-dolfinx``) and the tests that need it skip.

The environment is rebuilt only when ``pyproject.toml`` or this file changed, so a
second call is quick. Extra arguments are passed on: ``python3 tasks.py test -k grid``.
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
SYSTEM_PYTHON = "/usr/bin/python3"
# DOLFINx for the system Python, venv support, and the X/GL libraries gmsh's wheel loads
APT_PACKAGES = ["python3-dolfinx", "python3-venv", "python3-dev", "libglu1-mesa", "libxcursor1",
                "libxinerama1", "libxft2"]


def sh(*cmd, **kwargs):
    """Run a command, echoing it, and stop on failure."""
    print("+", " ".join(map(str, cmd)), flush=True)
    subprocess.run(list(map(str, cmd)), check=True, **kwargs)


def imports_dolfinx(python):
    """Whether ``python`` can import DOLFINx."""
    if not Path(python).exists():
        return False
    probe = subprocess.run([python, "-c", "import dolfinx"], capture_output=True)
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


def fingerprint():
    """A hash of the files that decide what the environment holds."""
    digest = hashlib.sha256()
    for name in ("pyproject.toml", "tasks.py"):
        digest.update((ROOT / name).read_bytes())
    return digest.hexdigest()


def ensure_environment():
    """Make ``.venv`` with everything the project needs, unless it is up to date."""
    if STAMP.exists() and STAMP.read_text() == fingerprint() and PYTHON.exists():
        return
    with_dolfinx = install_debian_packages()
    base = SYSTEM_PYTHON if with_dolfinx else sys.executable
    if VENV.exists():
        shutil.rmtree(VENV)
    venv_args = ["--system-site-packages"] if with_dolfinx else []
    sh(base, "-m", "venv", *venv_args, VENV)
    pins = ["numpy<2"] if with_dolfinx else []
    sh(PYTHON, "-m", "pip", "install", "-q", "--upgrade", "pip")
    sh(PYTHON, "-m", "pip", "install", "-q", "-e", f"{ROOT}[test,bench,fem]", *pins)
    if not imports_dolfinx(PYTHON):
        print(
            "DOLFINx is not available, so the mesh tests will be skipped. Get it with\n"
            "  sudo apt-get install python3-dolfinx   (Debian/Ubuntu; then rerun this)\n"
            "  conda install -c conda-forge fenics-dolfinx   (anywhere, in a conda env)"
        )
    STAMP.write_text(fingerprint())


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
