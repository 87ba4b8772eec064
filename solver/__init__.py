"""solver: Wasserstein gradient flows ∂tμ = ∇·(μ∇F'(μ)) on grids, meshes and particles."""

import os

# Numba's parallel kernels run on OpenMP (libgomp) threads, which load with the first
# parallel kernel and read GOMP_SPINCOUNT then: how long an idle thread spins before it
# sleeps (300 000 by default). Between two kernels the time loops spend tens of µs in
# Python. On the 2-core test machine, with the default, about one RKL2 Barenblatt run at
# 256² in ten took 0.5–0.6 s instead of 0.2 s (9 of 82 runs); spinning 3000 times, none
# did (one took 0.29 s), at a cost of ~3% in the others. Set GOMP_SPINCOUNT to choose.
os.environ.setdefault("GOMP_SPINCOUNT", "3000")


def _cache_numba_kernels_somewhere():
    """Point Numba's cache at a per-user temporary folder, with a warning, when none of the
    places Numba would cache the kernels (``NUMBA_CACHE_DIR``, the package's
    ``__pycache__``, the user's cache folder) is writable: ``njit(cache=True)`` then raises
    at import ("no locator available"), e.g. for a user without write access to
    site-packages and a read-only home. Changes nothing when Numba can cache."""
    import tempfile
    import warnings

    from numba.core import caching, config

    kernels = os.path.join(os.path.dirname(__file__), "kernels", "upwind.py")
    implementation = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)  # by version
    locators = getattr(implementation, "_locator_classes", None)
    if locators is None or any(locator.from_function(_cache_numba_kernels_somewhere, kernels)
                               for locator in locators):
        return
    config.CACHE_DIR = os.path.join(tempfile.gettempdir(), f"wgf-numba-cache-{os.getuid()}")
    warnings.warn(f"Numba cannot write its cache beside the package, in NUMBA_CACHE_DIR or in the user's cache "
                  f"folder; the compiled kernels are cached in {config.CACHE_DIR} instead (set NUMBA_CACHE_DIR "
                  "to a writable folder to choose)", stacklevel=2)


_cache_numba_kernels_somewhere()

from .energies import BumpLimitRisk, BumpRisk, Energy, Entropy, Feature, Interaction, NetworkRisk, PorousMedium, Potential, Sum
from .fv import Solution, solve
from .grid import Grid

__all__ = ["Grid", "solve", "Solution", "Energy", "Sum", "BumpRisk", "BumpLimitRisk", "Entropy", "PorousMedium", "Potential", "Interaction",
           "Feature", "NetworkRisk"]
__version__ = "0.1.0"
