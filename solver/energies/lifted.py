r"""The lifted risk of balanced ReLU networks: two densities ν± on the circle or the sphere.

A ReLU neuron w = (a, b), a ∈ R^p, b ∈ R, computes Φ(w, x) = b (a·x̃)₊ (x̃ = [x; 1] with a
bias). Gradient descent on balanced neurons (|a| = |b|, the Chizat–Bach initialization,
which gradient descent keeps) is, by the conic lift of :mod:`solver.lift`, the flow of two
measures on the sphere S^(p−1): ν± = Σ_(sign b_j = ±1) ω_j |a_j|² δ_(a_j/|a_j|). They predict

    h(x) = ∫(s·x̃)₊ dν+(s) − ∫(s·x̃)₊ dν−(s),

and the energy F(μ) = R(h) + λ∫|w|² dμ of the neurons becomes, since |w|² = |a|² + b² = 2|a|²
on balanced neurons and the lifted masses are |a|²,

    F(ν+, ν−) = R(h) + 2λ (|ν+| + |ν−|),    R(h) = ½ Σ_i q_i (h(x_i) − y_i)².

Its first variations: perturbing ν± by εδν changes h by ±ε∫(s·x̃)₊ dδν, so with
r_i = q_i (h(x_i) − y_i) and G(s) = Σ_i r_i (s·x̃_i)₊,

    F'±(s) = ±G(s) + 2λ.

:mod:`solver.lift` shows that s_j moves by ds/dt = −∇_S(±G) and the mass m_j = ω_j|a_j|² by
dm/dt = −2(±G + 2λ) m, so the densities solve

    ∂tν± = ∇_S·(ν± ∇_S F'±) − 2 F'± ν±,

a Wasserstein–Fisher–Rao gradient flow with transport 1 and **reaction β = 2**
(:attr:`LiftedReluRisk.reaction`); the constant 2λ has no gradient, so it only acts through
the reaction, at the rate −4λ that decays the lifted mass |a|² of an idle neuron under
weight decay (|a|² = ½|w|² decays at 4λ when dw/dt = −2λw).

**Discretization.** On K cells (the circle grid's cells, the sphere mesh's vertices) with
directions s_k and quadrature weights w_k (arc lengths or lumped surface masses), a density
ρ±_k stands for the atoms ν± ≈ Σ_k ρ±_k w_k δ_(s_k). With the feature matrix
A_ik = (s_k·x̃_i)₊ (built once per discretization),

    h = A (w ⊙ (ρ+ − ρ−)),    G = Aᵀ r,
    F(ρ) = R(h) + 2λ Σ_k w_k (ρ+_k + ρ−_k),    ∂F/∂ρ±_k = w_k (±G_k + 2λ),

so F'± = ±G + 2λ at the cells is the derivative of the discrete F per unit of quadrature
weight, as the time loop needs. Both products are dense matrix–vector products of size
n × K, which NumPy gives to BLAS: at the sizes here (K up to a few thousand cells or
vertices, n up to a few thousand quadrature points) that is a few milliseconds, the feature
matrix fits in memory, and there are no per-axis tables to exploit (the circle has one
axis, the sphere mesh none), so no Numba kernel is needed. With masses c±_k = w_k ρ±_k the
discrete F is exactly the convex objective of :func:`solver.convex.convex_minimum` on the
same directions with penalty λ' = 2λ (:meth:`LiftedReluRisk.convex_reference`): the discrete
flow's energy can never fall below that F*.

**Directions.** The circle is ``Grid([[φ0, φ0 + 2π]], [K], bc="periodic")`` in the angle φ,
s = (cos φ, sin φ), densities per unit angle (p = 2: inputs x ∈ R² without bias, or x ∈ R
with a bias). A sphere is a discretization whose points are on the unit sphere of R³
(p = 3). The densities live on ``Species(base, ("plus", "minus"))``, shape (2, *base.shape).

**Particles** are the neurons w = (a, b) ∈ R^(p+1) themselves, moved by plain gradient
descent (:meth:`ReluRegression.network_velocity <solver.lift.ReluRegression.network_velocity>`),
which is what users run; :func:`solver.lift.lift` maps them to ν± for comparisons.
"""

import numpy as np

from ..lift import ReluRegression, circle_directions, lift, relu_features, relu_inputs
from .base import once_per_discretization
from .signed import ConvexReference, SignedMeasureRisk

__all__ = ["LiftedReluRisk", "ConvexReference", "SPHERE_TOLERANCE"]

SPHERE_TOLERANCE = 1e-6
"""How far from 1 the norm of a sphere discretization's point may be."""


class LiftedReluRisk(SignedMeasureRisk):
    """F(ν+, ν−) = R(h) + 2λ(|ν+| + |ν−|) for balanced ReLU units (see the module docstring).

    Parameters
    ----------
    X : array (n, d)
        The inputs x_i (data, or the nodes of a quadrature of the input law).
    y : array (n,)
        Targets.
    bias : bool
        x̃ = [x; 1] when True (then p = d + 1), x̃ = x otherwise (p = d).
    quadrature : array (n,), optional
        q_i ≥ 0 of R(h) = ½Σ q_i (h_i − y_i)²; default 1/n (the empirical mean).
    weight_decay : float
        λ ≥ 0 of the neurons' λ∫|w|² dμ.

    Attributes
    ----------
    problem : solver.lift.ReluRegression
        R, r_i and the particle velocities.
    dim : int
        p + 1, the dimension of a particle w = (a, b).
    """

    reaction = 2.0

    def __init__(self, X, y, bias=False, quadrature=None, weight_decay=0.0):
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(np.asarray(y, dtype=float)))):
            raise ValueError("LiftedReluRisk: X and y must be finite")
        self.bias = bool(bias)
        self.problem = ReluRegression.from_data(X, y, bias=self.bias, quadrature=quadrature,
                                                weight_decay=weight_decay)
        self.dim = self.problem.inputs.shape[1] + 1

    def __repr__(self):
        return (f"LiftedReluRisk(n={len(self.problem.targets)}, p={self.dim - 1}, "
                f"weight_decay={self.problem.weight_decay:g})")

    # discretizations -------------------------------------------------------------------
    def check(self, grid):
        """Refuse anything but ``Species(base, ("plus", "minus"))`` over the circle grid
        (p = 2) or a discretization with points on the unit sphere of R³ (p = 3)."""
        base = self.check_species(grid)
        p = self.dim - 1
        if base.dim == 1:
            self.check_periodic_turns(base, "the circle grid")
            if p != 2:
                raise ValueError(f"LiftedReluRisk: the inputs x̃ have p = {p} coordinates, so ν± live on "
                                 f"S^{p - 1}, not on the circle S¹ (give a sphere for p = 3)")
            return
        if base.dim != 3:
            raise ValueError(f"LiftedReluRisk: the base must be the circle (a 1D periodic grid of angles) or a "
                             f"sphere (points in R³); got a {base.dim}D discretization")
        radius = np.linalg.norm(np.asarray(base.points, dtype=float).reshape(-1, 3), axis=1)
        worst = int(np.argmax(np.abs(radius - 1)))
        if abs(radius[worst] - 1) > SPHERE_TOLERANCE:
            raise ValueError(f"LiftedReluRisk: a 3D base must have its points on the unit sphere; point {worst} "
                             f"has |x| = {radius[worst]:.6g} (allowed: within {SPHERE_TOLERANCE:g} of 1)")
        if p != 3:
            raise ValueError(f"LiftedReluRisk: the inputs x̃ have p = {p} coordinates, so ν± live on S^{p - 1}, "
                             f"not on the sphere S² (give the circle grid for p = 2)")

    @staticmethod
    def directions(base):
        """The unit vectors s_k of a base's cells or vertices, (K, p): (cos φ, sin φ) on the
        circle grid, the points themselves on a sphere."""
        if base.dim == 1:
            return circle_directions(np.asarray(base.points, dtype=float).reshape(-1))
        return np.asarray(base.points, dtype=float).reshape(-1, 3)

    @property
    def targets(self):
        """y."""
        return self.problem.targets

    @property
    def quadrature(self):
        """q."""
        return self.problem.quadrature

    @property
    def penalty(self):
        """λ' = 2λ."""
        return self.problem.penalty

    @once_per_discretization
    def cell_features(self, grid):
        """A[i, k] = (s_k·x̃_i)₊ and the weights w_k of the base, once per discretization."""
        self.check(grid)
        A = np.ascontiguousarray(relu_features(self.directions(grid.base), self.problem.inputs))
        return A, np.asarray(grid.base.weights, dtype=float).reshape(-1)

    # particles w = (a, b) ----------------------------------------------------------------
    def predict(self, theta, weights, x=None):
        """h(x) = Σ_j ω_j b_j (a_j·x̃)₊ at the data points, or at inputs ``x`` (m, d)."""
        theta = self._particles(theta)
        weights = np.asarray(weights, dtype=float)
        if x is None:
            return self.problem.network_prediction(theta, weights)
        return relu_features(theta[:, :-1], relu_inputs(x, self.bias)) @ (weights * theta[:, -1])

    def particle_energy(self, theta, weights):
        """F(μ_m) = R(h) + λΣ_j ω_j |w_j|² of the neurons (= F(ν±) of their lift when balanced)."""
        return self.problem.network_energy(self._particles(theta), np.asarray(weights, dtype=float))

    def particle_velocity(self, theta, weights, batch=None):
        """Plain gradient descent dw_j/dt = (−b_j ∇G(a_j) − 2λa_j, −G(a_j) − 2λb_j); full batch
        only (the population quadrature has no mini-batches)."""
        if batch is not None:
            raise ValueError("LiftedReluRisk: no mini-batches (method='gd' only): R is a fixed quadrature")
        return self.problem.network_velocity(self._particles(theta), np.asarray(weights, dtype=float))

    def check_particles(self, theta, weights=None):
        """Refuse particles that are not balanced (|a_j| ≠ |b_j|), whose flow is not that of
        ν±: :func:`solver.lift.lift` names the worst neuron."""
        theta = self._particles(theta)
        lift(theta, np.full(len(theta), 1.0 / len(theta)) if weights is None else weights)

    def _particles(self, theta):
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        if theta.shape[1] != self.dim:
            raise ValueError(f"LiftedReluRisk: particles are w = (a, b) ∈ R^{self.dim}, got shape {theta.shape}")
        return theta
