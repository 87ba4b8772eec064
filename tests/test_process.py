"""The library leaves its user's process alone: importing it changes no environment
variable and, of Numba's settings, only lets LLVM use 512-bit vectors on AVX-512 CPUs
(when neither the user nor an earlier Numba function fixed the CPU features); the
process-wide settings are the opt-in ``tune_process``, and two solves in two threads do
not share scratch memory."""

import json
import os
import subprocess
import sys
import threading
import warnings
from functools import partial

import numpy as np
import pytest

from solver import Entropy, Grid, PorousMedium, Potential, solve, tune_process
from solver.analytic import barenblatt, gaussian
from solver.process import keep_freed_memory


def run_python(code, environment):
    """The stdout lines of ``python -c code`` in a fresh process with exactly ``environment``."""
    result = subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True, text=True, check=True)
    return result.stdout.splitlines()


def environment_without_spin_count(**extra):
    return {**{key: value for key, value in os.environ.items() if key != "GOMP_SPINCOUNT"}, **extra}


def test_importing_solver_changes_no_environment_variable():
    code = ("import json, os; before = dict(os.environ); import solver, solver.cli; "
            "print(json.dumps([before, dict(os.environ)]))")
    before, after = json.loads(run_python(code, environment_without_spin_count())[-1])
    assert "GOMP_SPINCOUNT" not in before
    assert after == before


def environment_without_numba_cpu(**extra):
    """The environment without a user's choice of Numba's CPU (which the import keeps)."""
    chosen = ("NUMBA_CPU_NAME", "NUMBA_CPU_FEATURES")
    return {**{key: value for key, value in os.environ.items() if key not in chosen}, **extra}


def host_has_avx512():
    from numba.core.codegen import get_host_cpu_features

    return "+avx512f" in get_host_cpu_features().split(",")


@pytest.mark.parametrize("before", ["", "import numba; numba.njit(lambda x: x); "])
def test_importing_solver_lets_numba_use_512_bit_vectors_on_avx512_only(before):
    """Numba's CPU features become the host's plus -prefer-256-bit on an AVX-512 CPU, at
    the import, before the package defines a kernel; not when a Numba function was defined
    before (Numba's code generator then exists with its features), and never on other CPUs."""
    code = (f"{before}import json; from numba.core import config; from numba.core.codegen import "
            "get_host_cpu_features; import solver; print(json.dumps([config.CPU_FEATURES, get_host_cpu_features()]))")
    features, host = json.loads(run_python(code, environment_without_numba_cpu())[-1])
    if host_has_avx512() and not before:
        assert features == host + ",-prefer-256-bit"
    else:
        assert features is None


def test_importing_solver_keeps_the_users_numba_cpu_features():
    code = ("from numba.core import config; before = config.CPU_FEATURES; import solver; "
            "print(before, config.CPU_FEATURES)")
    chosen = environment_without_numba_cpu(NUMBA_CPU_FEATURES="+avx2,+fma")
    assert run_python(code, chosen)[-1] == "+avx2,+fma +avx2,+fma"
    chosen = environment_without_numba_cpu(NUMBA_CPU_NAME="generic")
    assert run_python(code, chosen)[-1] == " "  # Numba's own default, kept


def test_tune_process_sets_the_spin_count_unless_set():
    """GOMP_SPINCOUNT (read when OpenMP loads, with the first parallel kernel) becomes 30000,
    and a value the environment already has is kept."""
    code = ("import json, os, warnings; warnings.simplefilter('error'); import solver; "
            "settings = solver.tune_process(); print(json.dumps([os.environ['GOMP_SPINCOUNT'], settings]))")
    value, settings = json.loads(run_python(code, environment_without_spin_count())[-1])
    assert value == "30000" and settings["GOMP_SPINCOUNT"] == "30000"
    value, settings = json.loads(run_python(code, environment_without_spin_count(GOMP_SPINCOUNT="123"))[-1])
    assert value == "123" and "GOMP_SPINCOUNT" not in settings


def test_tune_process_warns_when_openmp_is_already_loaded():
    """After a parallel kernel has run, libgomp has read its environment: too late to set it."""
    code = ("import os, warnings; import numpy as np; from solver import Grid, PorousMedium, solve, tune_process; "
            "grid = Grid([(0, 1)], 32); solve(PorousMedium(2), grid, np.ones(grid.shape), (0, 0.01)); "
            "warnings.simplefilter('error'); tune_process()")
    with pytest.raises(subprocess.CalledProcessError) as failure:
        run_python(code, environment_without_spin_count())
    assert "RuntimeWarning: tune_process: OpenMP (libgomp) is already loaded" in failure.value.stderr


def test_steps_do_not_page_fault_on_reused_memory():
    """tune_process has glibc keep freed memory (keep_freed_memory): a repeated run reuses
    its arrays' pages, a few faults, not the ~230 per step of memory returned to the system."""
    resource = pytest.importorskip("resource")
    with warnings.catch_warnings():  # OpenMP is loaded in this process already (conftest imports matplotlib)
        warnings.simplefilter("ignore", RuntimeWarning)
        tune_process()
    if not keep_freed_memory():  # cached: tune_process's own call
        pytest.skip("not glibc, or MALLOC_TOP_PAD_ set in the environment")
    grid = Grid([(-2, 2), (-2, 2)], 256)
    rho0 = grid.cell_averages(partial(barenblatt, m=2, C=0.1, t=1.0))
    run = partial(solve, PorousMedium(2), grid, rho0, (1.0, 1.1), scheme="rkl2")
    run()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    solution = run()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    assert solution.accepted >= 5
    assert faults < 100


def test_two_solves_in_two_threads_give_the_serial_answers():
    """The kernels' scratch memory belongs to each call: two solves at once, of different
    problems on grids of one shape (which shared a per-shape cache of scratch memory
    before, and then failed this test), give the answers of the same solves one after
    the other, bit for bit."""
    square, wider = Grid([(-2, 2)] * 2, 128), Grid([(-3, 3)] * 2, 128)
    runs = [
        partial(solve, PorousMedium(2), square, square.cell_averages(partial(barenblatt, m=2, C=0.1, t=1.0)),
                (1.0, 1.5), scheme="rkl2"),
        partial(solve, Potential(lambda x: 0.5 * np.sum(x**2, axis=-1)) + Entropy(0.5), wider,
                wider.cell_averages(partial(gaussian, mean=np.full(2, 0.3), cov=0.5 * np.eye(2))), (0.0, 0.2)),
    ]
    serial = [run().rho for run in runs]
    threaded = [[], []]

    def work(k):
        for _ in range(3):  # repeated, so that the two threads' kernels overlap
            threaded[k].append(runs[k]().rho)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for expected, answers in zip(serial, threaded):
        assert len(answers) == 3 and all(np.array_equal(answer, expected) for answer in answers)
