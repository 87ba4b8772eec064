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

**Classification** (``loss="logistic"`` or ``"exponential"``, labels y_i ∈ {−1, 1}):
R(h) = Σ_i q_i ℓ(h_i, y_i) with ℓ(p, y) = log(1 + e^(−yp)) or e^(−yp), and everything
above holds with r_i = q_i ∂ℓ(h_i, y_i) (:class:`solver.lift.ReluRegression`). Unregularized
(λ = 0) on separable data, F → 0 as the mass |ν+| + |ν−| grows without bound, and the
normalized margin min_i y_i h_i / (|ν+| + |ν−|) tends to the F1 max margin
(:func:`solver.convex.max_margin`, Chizat–Bach 2020; ``benchmarks/implicit_bias.py``).

**Particles** are the neurons w = (a, b) ∈ R^(p+1) themselves, moved by plain gradient
descent (:meth:`ReluRegression.network_velocity <solver.lift.ReluRegression.network_velocity>`),
which is what users run; :func:`solver.lift.lift` maps them to ν± for comparisons.
"""

import numpy as np

from ..lift import ReluRegression, circle_directions, lift, relu_features, relu_inputs
from .base import Energy, once_per_discretization
from .signed import ConvexReference, SignedMeasureRisk

__all__ = ["LiftedReluRisk", "LiftedNetworkRisk", "ConvexReference", "SPHERE_TOLERANCE"]

SPHERE_TOLERANCE = 1e-6
"""How far from 1 the norm of a sphere discretization's point may be."""


def check_on_unit_sphere(points, context, symbol):
    """Refuse ``points`` (…, p) off the unit sphere by more than :data:`SPHERE_TOLERANCE`,
    naming the worst one after ``context``."""
    points = np.asarray(points, dtype=float)
    radius = np.linalg.norm(points.reshape(-1, points.shape[-1]), axis=1)
    worst = int(np.argmax(np.abs(radius - 1)))
    if abs(radius[worst] - 1) > SPHERE_TOLERANCE:
        raise ValueError(f"{context} on the unit sphere; point {worst} has |{symbol}| = {radius[worst]:.6g} "
                         f"(allowed: within {SPHERE_TOLERANCE:g} of 1)")


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
    loss : {"square", "logistic", "exponential"}
        ℓ of R(h) = Σ_i q_i ℓ(h_i, y_i) (½(p − y)², log(1 + e^(−yp)), e^(−yp)); the last two
        need labels y_i ∈ {−1, 1}.

    Attributes
    ----------
    problem : solver.lift.ReluRegression
        R, r_i and the particle velocities.
    dim : int
        p + 1, the dimension of a particle w = (a, b).
    """

    reaction = 2.0

    def __init__(self, X, y, bias=False, quadrature=None, weight_decay=0.0, loss="square"):
        X = np.atleast_2d(np.asarray(X, dtype=float))
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(np.asarray(y, dtype=float)))):
            raise ValueError("LiftedReluRisk: X and y must be finite")
        self.bias = bool(bias)
        self.problem = ReluRegression.from_data(X, y, bias=self.bias, quadrature=quadrature,
                                                weight_decay=weight_decay, loss=loss)
        self.dim = self.problem.inputs.shape[1] + 1

    def __repr__(self):
        return (f"LiftedReluRisk(n={len(self.problem.targets)}, p={self.dim - 1}, "
                f"weight_decay={self.problem.weight_decay:g}, loss={self.problem.loss!r})")

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
        check_on_unit_sphere(base.points, "LiftedReluRisk: a 3D base must have its points", "x")
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

    def risk(self, h):
        """R(h) = Σ_i q_i ℓ(h_i, y_i)."""
        return self.problem.risk(h)

    def residuals(self, h):
        """r_i = q_i ∂ℓ(h_i, y_i)."""
        return self.problem.coefficients(h)

    def margin(self, rho, grid):
        """The normalized margin min_i y_i h_i / (|ν+| + |ν−|) (labels ±1; the F1 margin of
        :func:`solver.convex.max_margin` bounds it on the same cells)."""
        return float(np.min(self.targets * self.prediction(rho, grid))) / float(np.sum(self.masses(rho, grid)))

    def convex_reference(self, grid, tol=1e-10):
        """The square loss's convex minimum on the same cells (see SignedMeasureRisk); refused
        for the classification losses, whose infimum 0 is not attained (use
        :func:`solver.convex.max_margin` for their limit)."""
        if self.problem.loss != "square":
            raise ValueError(f"LiftedReluRisk.convex_reference: the {self.problem.loss} loss has no minimizer on "
                             f"separable data (F → 0 as the mass grows); compare margins with "
                             f"solver.convex.max_margin instead")
        return super().convex_reference(grid, tol)

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


HOMOGENEITY_TOLERANCE = 1e-9
"""Largest |Φ(tθ, x) − t²Φ(θ, x)| / max|t²Φ(θ, x)| the general lift accepts."""


def homogeneity_defect(network_risk, seed=0, count=8, scales=(0.5, 2.0, 3.0)):
    """max over a few random θ ~ N(0, I), t ∈ ``scales`` and the data x_i (the first 64) of
    |Φ(tθ, x) − t²Φ(θ, x)| / max|t²Φ(θ, x)|, with Φ as ``network_risk`` evaluates it
    (its :meth:`~solver.energies.network.NetworkRisk.predict` on one unit of weight 1): 0 up to
    round-off exactly when the feature is 2-homogeneous at those points."""
    rng = np.random.default_rng(seed)
    x = network_risk.X[:64]
    worst = 0.0
    for theta in rng.standard_normal((count, network_risk.dim)):
        for t in scales:
            scaled = network_risk.predict(t * theta, [1.0], x)
            expected = t**2 * network_risk.predict(theta, [1.0], x)
            worst = max(worst, float(np.max(np.abs(scaled - expected)) / max(np.max(np.abs(expected)), 1e-300)))
    return worst


def homogeneity_reason(feature):
    """Why a built-in ``feature`` is not 2-homogeneous in θ, or None when it is (a ReLU neuron
    c(a·x̃)₊ with output weight: c(ta·x̃)₊·t = t²c(a·x̃)₊)."""
    kind = getattr(feature, "kind", None)
    if kind == "rbf":
        return "a Gaussian c exp(−|x − z|²/(2s²)) is 1-homogeneous in c and not homogeneous in z"
    if kind == "neuron" and getattr(feature, "activation", None) != "relu":
        return f"the activation {feature.activation} is not positively homogeneous (σ(tu) ≠ tσ(u))"
    if kind == "neuron" and not getattr(feature, "output_weight", True):
        return "a ReLU unit σ(w·x̃) without output weight is 1-homogeneous, not 2-homogeneous"
    return None


class LiftedNetworkRisk(Energy):
    r"""The general conic lift of a 2-homogeneous network risk: one density ν on S^(p−1).

    For a unit Φ(w, x) 2-homogeneous in w ∈ R^p (Φ(tw, x) = t²Φ(w, x), t > 0: the ReLU
    neuron c(a·x̃)₊ with output weight, w = (a, c)), the risk of
    :class:`~solver.energies.network.NetworkRisk`, F(μ) = R(∫Φ dμ) + λ∫|w|² dμ with
    R(h) = (1/n)Σ_i ℓ(h(x_i), y_i), depends on μ only through ν = ∫ r² δ_s dμ, w = r s,
    |s| = 1 (:func:`solver.lift.lift_density` for a density on R^p):

        h(x) = ∫Φ(w, x) dμ = ∫ r²Φ(s, x) dμ = ∫Φ(s, x) dν(s),    λ∫|w|² dμ = λ|ν|,

    so F(ν) = R(∫Φ(s, ·) dν) + λ|ν|, with first variation

        F̃(s) = (1/n)Σ_i ∂ℓ(h(x_i), y_i) Φ(s, x_i) + λ.

    Gradient descent on the particles, dw/dt = −∇F'(μ)(w) with F'(μ)(w) = r²F̃(s), moves
    s by −∇_S F̃(s) (the radial part of ∇_w(r²F̃) is 2rF̃ s, its tangential part r∇_S F̃)
    and r² by d(r²)/dt = 2r dr/dt = −4r²F̃(s), so

        ∂tν = ∇_S·(ν∇_S F̃) − 4F̃ν,

    the Wasserstein–Fisher–Rao flow with transport 1 and **reaction β = 4**
    (the conic lift of Chizat–Bach 2018, §2, and Chizat, Math. Program. 2022; the balanced
    reduction of :class:`LiftedReluRisk` halves it to 2 by splitting ν by the sign of the
    output weight).

    **Discretization.** On a discretization whose points s_k lie on the unit sphere of R^p
    (``Mesh.sphere(size)`` for p = 3, lumped vertex areas w_k), ν ≈ Σ_k ρ_k w_k δ_(s_k),
    and F, F̃ are exactly those of the wrapped NetworkRisk on those points: its h = Σ_k
    w_kρ_kΦ(s_k, ·), its F' = Σ_i c_iΦ(s_k, x_i) + λ|s_k|² with |s_k| = 1. Nothing is
    copied: the data, the loss and the feature evaluation are the NetworkRisk's own.

    Parameters
    ----------
    network_risk : NetworkRisk
        Its feature must be 2-homogeneous in θ: checked by kind (ValueError naming the
        feature and why not) and numerically, Φ(tθ, x) = t²Φ(θ, x) at a few random θ and
        t (:func:`homogeneity_defect`, within :data:`HOMOGENEITY_TOLERANCE`), so a
        user-built feature is caught too.
    """

    reaction = 4.0
    local = False
    particles = None  # the particles are the NetworkRisk's own neurons w ∈ R^p

    def __init__(self, network_risk):
        feature = getattr(network_risk, "feature", None)
        if feature is None or not callable(getattr(network_risk, "value_and_first_variation", None)):
            raise ValueError(f"LiftedNetworkRisk: needs a NetworkRisk, got {network_risk!r}")
        reason = homogeneity_reason(feature)
        if reason is None:
            defect = homogeneity_defect(network_risk)
            if not defect <= HOMOGENEITY_TOLERANCE:
                reason = (f"Φ(tθ, x) − t²Φ(θ, x) is {defect:.3g} of t²Φ(θ, x) at random θ and t "
                          f"(allowed: {HOMOGENEITY_TOLERANCE:g})")
        if reason is not None:
            raise ValueError(f"LiftedNetworkRisk: the feature {feature!r} is not 2-homogeneous in θ: {reason}; "
                             "the conic lift needs Φ(tθ, x) = t²Φ(θ, x), e.g. Feature.neuron('relu', d, bias=...)")
        self.network_risk = network_risk
        self.dim = network_risk.dim

    def __repr__(self):
        return f"LiftedNetworkRisk({self.network_risk!r})"

    def check(self, grid):
        """Refuse species and any discretization whose points are not on the unit sphere of R^p."""
        if getattr(grid, "names", None) is not None:
            raise ValueError("LiftedNetworkRisk: the general lift is one density ν on the sphere, not species "
                             f"{tuple(grid.names)}")
        if grid.dim != self.dim:
            raise ValueError(f"LiftedNetworkRisk: θ ∈ R^{self.dim}, so ν lives on the sphere S^{self.dim - 1} of "
                             f"R^{self.dim}; got a discretization with points in R^{grid.dim}")
        check_on_unit_sphere(grid.points, "LiftedNetworkRisk: the points must be", "s")

    def value_and_first_variation(self, rho, grid):
        """F(ν) = R(h) + λ|ν| and F̃ at the points: the NetworkRisk's, on the sphere."""
        self.check(grid)
        return self.network_risk.value_and_first_variation(rho, grid)

    def value(self, rho, grid):
        return self.value_and_first_variation(rho, grid)[0]

    def first_variation(self, rho, grid):
        return self.value_and_first_variation(rho, grid)[1]
