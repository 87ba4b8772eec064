"""Process-wide settings that make the solver faster, as an opt-in: :func:`tune_process`.

Importing :mod:`solver` makes none of these settings (it changes only what
:mod:`solver`'s own doc lists: threadpoolctl's ``KMP_DUPLICATE_LIB_OK`` and Numba's CPU
features on AVX-512). The two settings here act on the whole process, on every library
in it, so they are the choice of whoever owns the process: the ``wgf`` command and the
scripts in ``benchmarks/`` call :func:`tune_process` first thing; a program that uses
the solver as a library may call it too.
"""

import ctypes
import functools
import os
import sys
import warnings

SPIN_COUNT = "30000"  # GOMP_SPINCOUNT set by tune_process: busy-wait iterations of an idle OpenMP thread
HEAP_TOP_PAD = 64 << 20  # bytes of freed memory glibc's malloc keeps at the top of its heap (see keep_freed_memory)


def tune_process():
    """Set up the process for the solver's time loops; returns the settings made, by name.

    1. ``GOMP_SPINCOUNT=30000`` unless the environment sets it. Numba's parallel kernels
       run on OpenMP (libgomp) threads, which load with the first parallel kernel and read
       ``GOMP_SPINCOUNT`` then: how long an idle thread spins before it sleeps (300 000
       by default). Between two kernels the time loops spend 0.1–0.3 ms in Python and
       NumPy; a thread that fell asleep there took about 0.1 ms to wake on the 2-core test
       machine (a VM), for every parallel kernel. Measured there, 30 000 spins last between
       0.3 and 1 ms, 3000 less than 0.1 ms and 300 000 more than 3 ms; the 256² ``rkl2``
       Barenblatt run to t = 4 took 0.39 s (median of 36; 0.29–0.51) with 30 000, 0.40 s
       (0.31–0.47) with 300 000 and 0.59 s (0.46–1.09) with 3000, and the explicit steps of
       ``benchmarks/mesh_vs_grid.py`` were about a third faster than with 3000, on mesh and
       grid alike. (3000 had been chosen when about one such run in ten took 2.5–3 times
       longer with the default; none of those 108 runs did, with any of the three.) The
       setting only takes effect if made before libgomp loads: with the process's first
       parallel Numba kernel, or earlier with a library that links it (on Debian, importing
       matplotlib, gmsh, POT or DOLFINx loads it). Called after that, it warns
       (``RuntimeWarning``) and sets nothing.
    2. :func:`keep_freed_memory`: glibc's malloc keeps 64 MB of freed memory for reuse
       instead of returning it to the system (``mallopt(M_TOP_PAD)``), which saved a fifth
       of the time of the 256² RKL2 Barenblatt run (25 000 page faults per run before).

    Returns
    -------
    dict
        ``{"GOMP_SPINCOUNT": value}`` if it set that variable, ``{"M_TOP_PAD": bytes}`` if
        glibc took the setting (both when both were made; empty when neither was).
    """
    settings = {}
    if "GOMP_SPINCOUNT" not in os.environ:
        if openmp_loaded():
            warnings.warn("tune_process: OpenMP (libgomp) is already loaded (a parallel kernel ran before), so "
                          "GOMP_SPINCOUNT would have no effect; call tune_process() first thing, or set "
                          "GOMP_SPINCOUNT in the environment", RuntimeWarning, stacklevel=2)
        else:
            os.environ["GOMP_SPINCOUNT"] = settings["GOMP_SPINCOUNT"] = SPIN_COUNT
    if keep_freed_memory():
        settings["M_TOP_PAD"] = HEAP_TOP_PAD
    return settings


def openmp_loaded():
    """Whether libgomp is loaded in this process (from ``/proc/self/maps``: any copy, such
    as the one a wheel bundles under another name); False where that file does not exist."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open("/proc/self/maps") as maps:
            return "libgomp" in maps.read()
    except OSError:
        return False


@functools.cache
def keep_freed_memory():
    """Ask glibc's malloc to keep ``HEAP_TOP_PAD`` bytes of freed memory instead of
    returning it to the system (``mallopt(M_TOP_PAD)``); True if it was set.

    The time loops allocate and free arrays of a few hundred kB many times per step;
    memory given back to the system page-faults again when it is reused. On the 256²
    Barenblatt run of ``scheme="rkl2"`` that was 25 000 faults per run and a fifth of
    its time (0.30 s against 0.24 s). Once per process, for the whole process; not on
    other C libraries, nor when the environment sets ``MALLOC_TOP_PAD_`` itself.
    """
    if "MALLOC_TOP_PAD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return mallopt(-2, HEAP_TOP_PAD) == 1  # M_TOP_PAD = -2 in malloc.h
