"""Internal energies ∫ f(ρ): the entropy and the porous medium."""

import numpy as np
from scipy.special import xlogy

from .base import Energy

# The entropy's first variation τ(log ρ + 1) is -∞ in vacuum; it is evaluated at
# max(ρ, TINY). A vacuum cell next to mass then sees a large but finite velocity, which
# the adaptive step resolves (it fills the cell in a few short steps).
TINY = np.finfo(float).tiny


class Entropy(Energy):
    """τ ∫ ρ log ρ: with a potential, the Fokker–Planck equation ∂tρ = ∇·(ρ∇V) + τΔρ.

    F'(ρ) = τ (log ρ + 1); diffusivity ρ f''(ρ) = τ. On particles it is Langevin noise at
    temperature τ (a particle measure has no entropy).
    """

    particles = "noise"

    def __init__(self, tau=1.0):
        tau = float(tau)
        if not np.isfinite(tau) or tau < 0:
            raise ValueError(f"Entropy: tau must be finite and >= 0, got {tau}")
        self.tau = tau

    def __repr__(self):
        return f"Entropy(tau={self.tau})"

    @property
    def temperature(self):
        """τ: the temperature of the Langevin noise it becomes on particles."""
        return self.tau

    def value(self, rho, grid):
        return self.tau * grid.integrate(xlogy(rho, rho))

    def first_variation(self, rho, grid):
        return self.tau * (np.log(np.maximum(rho, TINY)) + 1.0)

    def max_diffusivity(self, rho, grid):
        return self.tau

    def second_variation_diagonal(self, rho, grid):
        return self.tau / np.maximum(rho, TINY)


class PorousMedium(Energy):
    """∫ ρ^m / (m − 1), m > 1: the porous-medium equation ∂tρ = Δ(ρ^m).

    F'(ρ) = m ρ^(m−1) / (m − 1); diffusivity ρ f''(ρ) = m ρ^(m−1). m = 1 is the
    entropy (use :class:`Entropy`). It has no particle version: it needs a density.
    """

    particles = None

    def __init__(self, m=2.0):
        m = float(m)
        if not np.isfinite(m) or m <= 1:
            raise ValueError(
                f"PorousMedium: m must be > 1, got {m} (m = 1 is the entropy: use Entropy(tau))"
            )
        self.m = m

    def __repr__(self):
        return f"PorousMedium(m={self.m})"

    def value(self, rho, grid):
        return grid.integrate(rho**self.m) / (self.m - 1)

    def first_variation(self, rho, grid):
        power = rho if self.m == 2 else rho ** (self.m - 1)  # NumPy's ρ**1.0 takes the slow general pow
        return self.m / (self.m - 1) * power

    def max_diffusivity(self, rho, grid):
        return self.m * float(np.max(rho)) ** (self.m - 1)

    def second_variation_diagonal(self, rho, grid):
        return self.m * np.maximum(rho, TINY) ** (self.m - 2)
