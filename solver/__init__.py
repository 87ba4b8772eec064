"""solver: Wasserstein gradient flows ∂tμ = ∇·(μ∇F'(μ)) on grids, meshes and particles."""

import os

# Numba's parallel kernels run on OpenMP (libgomp) threads, which load with the first
# parallel kernel and read GOMP_SPINCOUNT then: how long an idle thread spins before it
# sleeps (300 000 by default). Between two kernels the time loops spend tens of µs in
# Python. On the 2-core test machine, with the default, about one RKL2 Barenblatt run at
# 256² in ten took 0.5–0.6 s instead of 0.2 s (9 of 82 runs); spinning 3000 times, none
# did (one took 0.29 s), at a cost of ~3% in the others. Set GOMP_SPINCOUNT to choose.
os.environ.setdefault("GOMP_SPINCOUNT", "3000")

from .energies import BumpLimitRisk, BumpRisk, Energy, Entropy, Feature, Interaction, NetworkRisk, PorousMedium, Potential, Sum
from .timeloop import Solution, solve
from .grid import Grid

__all__ = ["Grid", "solve", "Solution", "Energy", "Sum", "BumpRisk", "BumpLimitRisk", "Entropy", "PorousMedium", "Potential", "Interaction",
           "Feature", "NetworkRisk"]
__version__ = "0.1.0"
