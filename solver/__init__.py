"""solver: Wasserstein gradient flows ∂tμ = ∇·(μ∇F'(μ)) on grids, meshes and particles.

Importing the package changes nothing in the process (no environment variable, no
allocator setting); :func:`tune_process` makes the process-wide settings that speed up
the time loops, for whoever owns the process (the ``wgf`` command and the benchmarks call it).
"""

import os


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

from .energies import (  # noqa: E402  (after the Numba cache is settled)
    BumpLimitRisk,
    BumpRisk,
    Energy,
    Entropy,
    Feature,
    Interaction,
    LiftedNetworkRisk,
    LiftedReluRisk,
    NetworkRisk,
    PorousMedium,
    Potential,
    SpikeDeconvolution,
    Sum,
)
from .grid import Grid  # noqa: E402
from .process import tune_process  # noqa: E402
from .species import Species  # noqa: E402
from .timeloop import Solution, solve  # noqa: E402

__all__ = ["Grid", "Species", "solve", "Solution", "Energy", "Sum", "BumpRisk", "BumpLimitRisk", "Entropy",
           "PorousMedium", "Potential", "Interaction", "Feature", "NetworkRisk", "LiftedReluRisk", "LiftedNetworkRisk",
           "SpikeDeconvolution", "tune_process"]
__version__ = "0.1.0"
