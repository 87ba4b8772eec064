"""Energy terms: each answers ``value``, ``first_variation``, ``max_diffusivity`` and
``second_variation_diagonal`` on a discretization given in every call, and declares how it
acts on particles (``particle_velocity`` and ``particle_energy``, Langevin noise, or none);
terms add with ``+`` (see :mod:`solver.energies.base`)."""

from .base import Energy, Sum
from .bump import BumpLimitRisk, BumpRisk
from .deconvolution import SpikeDeconvolution
from .interaction import Interaction
from .internal import Entropy, PorousMedium
from .lifted import LiftedNetworkRisk, LiftedReluRisk
from .network import Feature, NetworkRisk, teacher_labels
from .potential import Potential

__all__ = ["Energy", "Sum", "BumpRisk", "BumpLimitRisk", "Entropy", "PorousMedium", "Potential", "Interaction",
           "Feature", "NetworkRisk", "teacher_labels", "LiftedReluRisk", "LiftedNetworkRisk",
           "SpikeDeconvolution"]
