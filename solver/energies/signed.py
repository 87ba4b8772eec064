r"""Energies of a signed measure ν+ − ν− seen through linear features: the shared discrete part.

The lifted ReLU risk (:mod:`solver.energies.lifted`) and sparse deconvolution
(:mod:`solver.energies.deconvolution`) both measure ν = ν+ − ν− by features: on the cells
(or vertices) k of a base with weights w_k a density stands for the atoms
ν± ≈ Σ_k w_k ρ±_k δ_(s_k), and with A_ik = φ_i(s_k) (n × K, built once per discretization)

    h = A(c+ − c−),   c±_k = w_k ρ±_k,
    F(ρ) = R(h) + λ'Σ_k (c+_k + c−_k),   R(h) = ½ Σ_i q_i (h_i − y_i)²,

so ∂F/∂ρ±_k = w_k(±G_k + λ') with G = Aᵀ(q ⊙ (h − y)): F'± = ±G + λ' at the cells is the
derivative of the discrete F per unit weight, as the time loop needs. In the masses c± the
discrete F is the convex problem of :func:`solver.convex.convex_minimum` on the same
directions (features A, quadrature q, penalty λ'), so its minimum F* bounds the discrete
flow's energy from below (:meth:`SignedMeasureRisk.convex_reference`).

A subclass supplies ``cell_features(grid)`` → (A, w), ``targets`` (y), ``quadrature`` (q)
and ``penalty`` (λ'); it may replace the square loss by another ℓ through ``risk`` (R) and
``residuals`` (r_i = q_i ∂ℓ(h_i, y_i), then G = Aᵀr), as the lifted ReLU risk's
classification losses do (the convex reference is then not the square-loss problem); its
``check(grid)`` starts from :meth:`SignedMeasureRisk.check_species`
(two species ν+, ν− on one base) and :meth:`SignedMeasureRisk.check_periodic_turns` (a
periodic grid whose every axis is one turn, length 2π: the circle or the torus T^d).
"""

import dataclasses

import numpy as np

from ..convex import convex_minimum
from .base import Energy


@dataclasses.dataclass(frozen=True)
class ConvexReference:
    """The convex minimum of a signed-measure energy on the cells of a discretization.

    Attributes
    ----------
    value : float
        F* = min over ρ± ≥ 0 of the discrete F (``value(rho, grid)`` ≥ F* for every density
        ρ on that discretization).
    rho : array (2, *base.shape)
        A minimizer as densities: ρ±_k = c±_k / w_k, so that ``value(rho, grid)`` is F*.
    minimum : solver.convex.ConvexMinimum
        The masses c± and the KKT certificate.
    """

    value: float
    rho: np.ndarray
    minimum: object


class SignedMeasureRisk(Energy):
    """F(ν+, ν−) = ½Σ_i q_i (h_i − y_i)² + λ'(|ν+| + |ν−|), h = A(c+ − c−) (module docstring)."""

    species = ("plus", "minus")
    local = False  # F' at a point sums over all points
    distributed = True  # on a mesh split over ranks h is summed over them (the discretization's sums)

    base_name = "base"  # how the refusals name the base discretization

    def check_species(self, grid):
        """The base of ``Species(base, ("plus", "minus"))``; refuse anything else.

        Returns
        -------
        Discretization
            ``grid.base``, on which ν+ and ν− both live.
        """
        name = type(self).__name__
        names, base = getattr(grid, "names", None), getattr(grid, "base", None)
        if names is None or base is None:
            raise ValueError(f"{name}: needs two species, Species({self.base_name}, {self.species}), got {grid!r}")
        if tuple(names) != self.species:
            raise ValueError(f"{name}: the species must be {self.species} (ν+ then ν−), got {tuple(names)}")
        return base

    def check_periodic_turns(self, base, what):
        """Refuse a base that is not a periodic grid whose every axis is one turn (length 2π,
        to 10⁻¹² relative): the circle of angles or the torus T^d = [0, 2π]^d.

        Parameters
        ----------
        base : Discretization
        what : str
            How the refusals name the base ("the circle grid", "the torus").
        """
        name = type(self).__name__
        periodic, bounds = getattr(base, "periodic", (False,) * base.dim), getattr(base, "bounds", None)
        if bounds is None or not all(periodic):
            raise ValueError(f"{name}: {what} must be a periodic Grid([[0, 2π], ...], ..., bc='periodic') on every "
                             f"axis; this one has walls")
        for axis, (lo, hi) in enumerate(bounds):
            length = float(hi - lo)
            if abs(length - 2 * np.pi) > 1e-12 * 2 * np.pi:
                raise ValueError(f"{name}: every axis of {what} must span one turn, an angle of length 2π; "
                                 f"got length {length:.12g} on axis {axis}")

    def cell_features(self, grid):
        """(A, w): the features at the base's cells (n, K) and the base's weights (K,)."""
        raise NotImplementedError

    def risk(self, h):
        """R(h) = ½ Σ_i q_i (h_i − y_i)²."""
        return 0.5 * float(self.quadrature @ (h - self.targets) ** 2)

    def residuals(self, h):
        """r_i = q_i ∂ℓ(h_i, y_i) = q_i (h_i − y_i) for the square loss; G = Aᵀr."""
        return self.quadrature * (h - self.targets)

    def masses(self, rho, grid):
        """c±_k = w_k ρ±_k, an array (2, K): the atoms of ν± at the cells."""
        _, w = self.cell_features(grid)
        return np.asarray(rho, dtype=float).reshape(2, -1) * w

    def prediction(self, rho, grid):
        """h = A(c+ − c−) (the ranks' parts added where the cells are split over ranks: one
        allreduce of a vector the size of the data)."""
        A, _ = self.cell_features(grid)
        plus, minus = self.masses(rho, grid)
        return grid.sums(A @ (plus - minus))

    def value_and_first_variation(self, rho, grid):
        """F = R(h) + λ'Σ_k w_k(ρ+_k + ρ−_k) and F'± = ±Aᵀr + λ', r = :meth:`residuals` (h)."""
        A, _ = self.cell_features(grid)
        h = self.prediction(rho, grid)
        G = A.T @ self.residuals(h)
        value = self.risk(h) + self.penalty * grid.global_sum(float(np.sum(self.masses(rho, grid))))
        return value, np.stack([G + self.penalty, -G + self.penalty]).reshape(np.shape(rho))

    def value(self, rho, grid):
        return self.value_and_first_variation(rho, grid)[0]

    def first_variation(self, rho, grid):
        return self.value_and_first_variation(rho, grid)[1]

    def convex_reference(self, grid, tol=1e-10):
        """F* = min over c± ≥ 0 of R(A(c+ − c−)) + λ'Σ(c+ + c−) on the same cells.

        The masses c±_k of the convex problem are the flow's atoms w_k ρ±_k (same A, same
        quadrature), so F* is the minimum of :meth:`value` over all densities on ``grid``,
        attained at ρ± = c±/w (:func:`solver.convex.convex_minimum`, KKT residual ≤ ``tol``).

        Returns
        -------
        ConvexReference
        """
        A, w = self.cell_features(grid)
        minimum = convex_minimum(A, self.targets, penalty=self.penalty, quadrature=self.quadrature, tol=tol)
        rho = (np.stack([minimum.c_plus, minimum.c_minus]) / w).reshape(grid.shape)
        return ConvexReference(minimum.value, rho, minimum)
