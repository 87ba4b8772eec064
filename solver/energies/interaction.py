"""The interaction energy ½ ∫∫ W(x − y) ρ(x) ρ(y), by the discretization's kernel convolution."""

import numpy as np

from .base import Energy, finite_difference_gradient, once_per_discretization


class Interaction(Energy):
    """½ ∫∫ W(x − y) ρ(x) ρ(y) dx dy with an even kernel W, so F'(ρ) = W ∗ ρ.

    The convolution (W ∗ ρ)(x_i) = Σ_j W(x_i − x_j) ρ_j w_j over the points and quadrature
    weights is the discretization's ``kernel_convolution(W)``: on a grid by FFT,
    zero-padded to twice the cells along wall axes (a linear convolution), circular along
    periodic axes, where the displacement is taken to its nearest periodic image; on a
    mesh a product with the matrix W(x_i − x_j) over the vertex pairs, kept (under MPI:
    the owned vertices i against every vertex j, the other ranks' masses gathered at each
    call). On particles F(μ_m) = ½ Σ_i Σ_j w_i w_j W(θ_i − θ_j).

    Parameters
    ----------
    W : callable
        ``W(z)`` maps displacements of shape (..., d) to values of shape (...);
        W(−z) = W(z).
    grad : callable, optional
        ``∇W(z)`` of shape (..., d), for particles; central differences if omitted.
    """

    local = False  # F' at a point sums over all points
    distributed = True  # the mesh's kernel_convolution gathers the other ranks' masses

    def __init__(self, W, grad=None):
        if not callable(W):
            raise ValueError("Interaction: W must be a callable W(z) of displacements z")
        self.W = W
        self.grad = grad

    def __repr__(self):
        return f"Interaction({getattr(self.W, '__name__', 'W')})"

    @once_per_discretization
    def convolution(self, grid):
        """The operator ρ ↦ W ∗ ρ on ``grid`` (W sampled once per grid)."""
        try:
            return grid.kernel_convolution(self.W)
        except ValueError as error:
            raise ValueError(f"Interaction: {error}") from None

    def check(self, grid):
        self.convolution(grid)

    def convolve(self, rho, grid):
        """(W ∗ ρ) at the cells (or vertices)."""
        return self.convolution(grid)(rho)

    def value(self, rho, grid):
        return self.value_and_first_variation(rho, grid)[0]

    def first_variation(self, rho, grid):
        return self.convolve(rho, grid)

    def value_and_first_variation(self, rho, grid):
        xi = self.convolve(rho, grid)
        return 0.5 * grid.integrate(rho * xi), xi

    def _rows(self, theta):
        """(i, θ_i − θ_j over j) one row at a time, which keeps memory at O(m d)."""
        for i in range(len(theta)):
            yield i, theta[i] - theta

    def particle_velocity(self, theta, weights, batch=None):
        """−Σ_j w_j ∇W(θ_i − θ_j)."""
        theta, weights = np.asarray(theta, dtype=float), np.asarray(weights, dtype=float)
        velocity = np.zeros_like(theta)
        for i, z in self._rows(theta):
            grad = self.grad(z) if self.grad else finite_difference_gradient(self.W, z)
            velocity[i] = -weights @ grad
        return velocity

    def particle_energy(self, theta, weights):
        """½ Σ_i Σ_j w_i w_j W(θ_i − θ_j) (the diagonal i = j included, as in ½∫∫W dμ dμ)."""
        theta, weights = np.asarray(theta, dtype=float), np.asarray(weights, dtype=float)
        return 0.5 * sum(weights[i] * (weights @ np.asarray(self.W(z), dtype=float)) for i, z in self._rows(theta))
