"""solver: Wasserstein gradient flows ∂tμ = ∇·(μ∇F'(μ)) on grids, meshes and particles.

Importing the package changes nothing in the process (no environment variable, no
allocator setting); :func:`tune_process` makes the process-wide settings that speed up
the time loops, for whoever owns the process (the ``wgf`` command and the benchmarks call it).
"""

from .energies import BumpLimitRisk, BumpRisk, Energy, Entropy, Feature, Interaction, NetworkRisk, PorousMedium, Potential, Sum
from .timeloop import Solution, solve
from .grid import Grid
from .process import tune_process

__all__ = ["Grid", "solve", "Solution", "Energy", "Sum", "BumpRisk", "BumpLimitRisk", "Entropy", "PorousMedium", "Potential", "Interaction",
           "Feature", "NetworkRisk", "tune_process"]
__version__ = "0.1.0"
