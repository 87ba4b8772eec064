"""The potential energy ∫ V ρ."""

import numpy as np

from .base import Energy, finite_difference_gradient, once_per_discretization


class Potential(Energy):
    """∫ V(x) ρ(x) dx, with F'(ρ) = V; on particles Σ_i w_i V(θ_i), moved by −∇V.

    Parameters
    ----------
    V : callable or array
        ``V(x)`` maps points of shape (..., d) to values of shape (...), or an array of
        values at the cells of the grid it will be used on.
    grad : callable, optional
        ``∇V(x)`` of shape (..., d), for particles; central differences of ``V`` if
        omitted.
    """

    def __init__(self, V, grad=None):
        self.V = V
        self.grad = grad

    def __repr__(self):
        return f"Potential({getattr(self.V, '__name__', 'array')})"

    @once_per_discretization
    def values_on(self, grid):
        """V at the cells of ``grid`` (checked finite, computed once per grid)."""
        values = np.asarray(self.V(grid.points) if callable(self.V) else self.V, dtype=float)
        if values.shape != tuple(grid.shape):
            raise ValueError(
                f"Potential: V on the grid has shape {values.shape}, expected {tuple(grid.shape)}"
            )
        if not np.all(np.isfinite(values)):
            bad = np.argwhere(~np.isfinite(values))[0]
            raise ValueError(
                f"Potential: V is not finite on the grid (e.g. at the cell {tuple(bad.tolist())}, "
                f"x = {grid.points[tuple(bad)]}); make V finite on the whole box"
            )
        return values

    def check(self, grid):
        self.values_on(grid)

    def value(self, rho, grid):
        return grid.integrate(self.values_on(grid) * rho)

    def first_variation(self, rho, grid):
        return self.values_on(grid)

    def _particle_potential(self):
        if not callable(self.V):
            raise ValueError("Potential: particles need V as a callable (or grad=), not an array")
        return self.V

    def particle_velocity(self, theta, weights, batch=None):
        """−∇V(θ_i)."""
        grad = self.grad(theta) if self.grad else finite_difference_gradient(self._particle_potential(), theta)
        return -np.asarray(grad, dtype=float)

    def particle_energy(self, theta, weights):
        """Σ_i w_i V(θ_i); NotImplementedError for V given by its values on a grid (the
        particles may still move by a ``grad`` given beside them)."""
        if not callable(self.V):
            raise NotImplementedError("Potential: V given as an array has no energy of a particle measure")
        return float(np.asarray(weights, dtype=float) @ self.V(np.asarray(theta, dtype=float)))
