"""The energy interface shared by the grid solver, the mesh solver and the particles.

A discretization (a :class:`~solver.grid.Grid`, later a mesh) provides ``points`` (an
array of shape ``rho.shape + (d,)``), ``weights`` (quadrature weights, the shape of
``rho``) and ``integrate(values)``. Densities are nodal/cell values of a density.
"""

import numpy as np


class Energy:
    """A term F(ρ) of a free energy; terms add with ``+`` into a :class:`Sum`.

    Subclasses implement :meth:`value` and :meth:`first_variation`. Local terms
    (∫ f(ρ)) also give the diffusivity ρ f''(ρ) and f''(ρ) used by the adaptive
    explicit step and the Newton Jacobian of the implicit step; terms that know the
    gradient of their first variation at arbitrary points give :meth:`particle_velocity`.

    ``local`` is False for terms whose F' at a point sums over every point (interaction,
    network risks, bumps): on meshes those run in one process (not under MPI).
    """

    local = True

    def value(self, rho, grid):
        """F(ρ) as a float."""
        raise NotImplementedError

    def first_variation(self, rho, grid):
        """F'(ρ) = δF/δρ at the cells/nodes, an array of ``rho.shape``."""
        raise NotImplementedError

    def value_and_first_variation(self, rho, grid):
        """Both at once; nonlocal terms override it to share their convolution."""
        return self.value(rho, grid), self.first_variation(rho, grid)

    def max_diffusivity(self, rho):
        """max ρ f''(ρ): the diffusion coefficient that limits the explicit step (0 if none)."""
        return 0.0

    def second_variation_diagonal(self, rho):
        """f''(ρ) of a local term (0 for terms whose first variation ignores the local ρ).

        The implicit scheme uses it for its Newton Jacobian; nonlocal terms return 0 and
        their coupling is left to the Newton iteration (an inexact Newton method).
        """
        return 0.0

    def particle_velocity(self, theta, weights):
        """-∇θ F'(μ_m)(θ_i) for the particle measure μ_m = Σ_i w_i δ_θi, shape (m, d)."""
        raise NotImplementedError(f"{type(self).__name__} does not move particles")

    def check(self, grid):
        """Raise ``ValueError`` if the term cannot be evaluated on ``grid``."""

    def __add__(self, other):
        if not isinstance(other, Energy):
            return NotImplemented
        return Sum([*_terms(self), *_terms(other)])


def _terms(energy):
    return energy.terms if isinstance(energy, Sum) else [energy]


class Sum(Energy):
    """F = Σ_k F_k: every question is answered by summing the terms' answers."""

    def __init__(self, terms):
        self.terms = list(terms)

    def __repr__(self):
        return " + ".join(map(repr, self.terms))

    def value(self, rho, grid):
        return sum(term.value(rho, grid) for term in self.terms)

    def first_variation(self, rho, grid):
        return sum(term.first_variation(rho, grid) for term in self.terms)

    def value_and_first_variation(self, rho, grid):
        pairs = [term.value_and_first_variation(rho, grid) for term in self.terms]
        return sum(v for v, _ in pairs), sum(xi for _, xi in pairs)

    def max_diffusivity(self, rho):
        return sum(term.max_diffusivity(rho) for term in self.terms)

    def second_variation_diagonal(self, rho):
        return sum(term.second_variation_diagonal(rho) for term in self.terms)

    def particle_velocity(self, theta, weights):
        return sum(term.particle_velocity(theta, weights) for term in self.terms)

    def check(self, grid):
        for term in self.terms:
            term.check(grid)


def finite_difference_gradient(f, points, step=1e-6):
    """Central-difference gradient of a scalar field ``f`` at ``points`` (shape (..., d))."""
    points = np.asarray(points, dtype=float)
    grad = np.empty_like(points)
    for k in range(points.shape[-1]):
        e = np.zeros(points.shape[-1])
        e[k] = step * max(1.0, float(np.max(np.abs(points[..., k]), initial=0.0)))
        grad[..., k] = (f(points + e) - f(points - e)) / (2 * e[k])
    return grad
