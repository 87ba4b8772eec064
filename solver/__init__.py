"""solver: Wasserstein gradient flows ∂tμ = ∇·(μ∇F'(μ)) on grids, meshes and particles.

Importing the package sets no environment variable of its own (threadpoolctl, which it
imports, sets ``KMP_DUPLICATE_LIB_OK=True`` when unset) and no allocator setting; it makes
one Numba setting, on CPUs with AVX-512 only (:func:`_let_numba_use_512_bit_vectors`), and
points Numba's cache elsewhere only where it could cache nowhere
(:func:`_cache_numba_kernels_somewhere`).
:func:`tune_process` makes the process-wide settings that speed up the time loops, for
whoever owns the process (the ``wgf`` command and the benchmarks call it).
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


def _let_numba_use_512_bit_vectors():
    """On a CPU with AVX-512, let LLVM vectorize the kernels with 512-bit vectors.

    LLVM's cost model for Intel's AVX-512 server CPUs prefers 256-bit vectors (its tuning
    feature ``prefer-256-bit``: older ones lowered their clock for 512-bit arithmetic), so
    the pointwise kernels' loops compiled to ``<4 x double>``. Numba builds its code
    generator once per process, with the first ``njit`` decoration, from
    ``numba.core.config.CPU_FEATURES`` (``NUMBA_CPU_FEATURES``; the host's features when
    unset): this sets it, before the package defines a kernel, to the host's features
    plus ``-prefer-256-bit``. With ``<8 x double>`` the tanh loops of the network kernels ran 1.3–1.5
    times faster on the test machine (Intel Xeon, Emerald Rapids; README, Benchmarks).

    It applies to every Numba function compiled in the process afterwards. It does nothing
    when the CPU lacks AVX-512, when the user chose the CPU (``NUMBA_CPU_NAME`` or
    ``NUMBA_CPU_FEATURES`` set), or when Numba's code generator exists already (a Numba
    function was defined before the first ``import solver``). Numba's cache keys a compiled
    kernel by the CPU's name and this feature string, so a cache is reused only with the
    same CPU and setting.
    """
    from numba.core import config, registry
    from numba.core.codegen import get_host_cpu_features

    user_choice = config.CPU_NAME is not None or config.CPU_FEATURES is not None
    generator_built = "_toplevel_target_context" in vars(registry.cpu_target)  # functools.cached_property
    features = get_host_cpu_features()
    if not user_choice and not generator_built and "+avx512f" in features.split(","):
        config.CPU_FEATURES = features + ",-prefer-256-bit"


_cache_numba_kernels_somewhere()
_let_numba_use_512_bit_vectors()

from .energies import (  # noqa: E402  (after the Numba cache and features are settled)
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
