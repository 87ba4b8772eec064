"""Energy terms: each answers ``value``, ``first_variation`` and, where it can,
``particle_velocity``; terms add with ``+``."""

from .base import Energy, Sum
from .bump import BumpLimitRisk, BumpRisk
from .interaction import Interaction
from .internal import Entropy, PorousMedium
from .network import Feature, NetworkRisk, teacher_labels
from .potential import Potential

__all__ = ["Energy", "Sum", "BumpRisk", "BumpLimitRisk", "Entropy", "PorousMedium", "Potential", "Interaction", "Feature", "NetworkRisk",
           "teacher_labels"]
