"""solver: Wasserstein gradient flows ∂tμ = ∇·(μ∇F'(μ)) on grids, meshes and particles."""

from .energies import BumpLimitRisk, BumpRisk, Energy, Entropy, Feature, Interaction, NetworkRisk, PorousMedium, Potential, Sum
from .fv import Solution, solve
from .grid import Grid

__all__ = ["Grid", "solve", "Solution", "Energy", "Sum", "BumpRisk", "BumpLimitRisk", "Entropy", "PorousMedium", "Potential", "Interaction",
           "Feature", "NetworkRisk"]
__version__ = "0.1.0"
