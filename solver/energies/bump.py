r"""Bump networks of Javanmard–Mondelli–Montanari (2019): fitting a density f on a compact
convex Ω with f̂(x) = (1/N) Σ_i K^δ(x − w_i), the bump centres w_i being the parameters.

With data x ~ Unif(Ω) and E[y|x] = f(x), the mean-field risk of a density ρ of centres is

    F_δ(ρ) = ½ E_x[(f(x) − (K^δ∗ρ)(x))²] = 1/(2|Ω|) ∫_Ω (f − K^δ∗ρ)² dx,
    F_δ'(ρ)(w) = 1/|Ω| ∫_Ω (K^δ∗ρ − f)(x) K^δ(x − w) dx,

(:class:`BumpRisk`), and as δ → 0 it tends to F_0(ρ) = 1/(2|Ω|) ∫_Ω (f − ρ)²
(:class:`BumpLimitRisk`), whose flow ∂tρ = (1/|Ω|) ∇·(ρ ∇(ρ − f)) is a porous-medium
equation with drift: ∫ρ² is displacement convex and so is −f for concave f, hence
exponential convergence. K is the C^∞ bump of :mod:`solver.kernels.bump`; K^δ(u) =
δ^(−d) K(u/δ) has unit mass and support the ball of radius δ.
"""

import math
import warnings

import numpy as np
import scipy.integrate
import scipy.linalg
import scipy.optimize
import scipy.sparse.linalg

from ..domains import GAUSS_NODES
from ..kernels.bump import bump_gradient_sum, bump_sum, unnormalized_bump
from .base import Energy, once_per_discretization, particle_weights

UNIT_SPHERE_AREA = {1: 2.0, 2: 2 * math.pi, 3: 4 * math.pi}
QUADRATURE_LIMIT = 5e7  # points of the quadrature of Ω (a few arrays of 400 MB)
STEP_SAFETY = 0.1
"""Steps above this fraction of the stability estimate, and SGD noise above this fraction of
the limit's diffusivity, warn (:meth:`BumpRisk.check_step`)."""


def _radial_moment(function, dim):
    """|S^(d−1)| ∫_0^1 r^(d−1) function(r) dr: the integral over the unit ball of a radial function."""
    return UNIT_SPHERE_AREA[dim] * scipy.integrate.quad(lambda r: r ** (dim - 1) * function(r), 0, 1,
                                                        epsabs=0, epsrel=1e-13, limit=200)[0]


def bump_constants(dim):
    """(Z_d, ‖K‖²_L2, ‖∂₁K‖²_L2, ‖∂₁²K‖_L1) of the unit-mass bump K = K₀/Z_d in ``dim``
    dimensions.

    Z_d = ∫ exp(−1/(1 − |u|²)) du over the unit ball. With g = −1/(1 − s), s = |u|²:
    ∂₁K = K g₁, ∂₁²K = K (g₁² + g₁₁), g₁ = −2u₁/(1 − s)², g₁₁ = −2/(1 − s)² − 8u₁²/(1 − s)³.
    Z_d and ‖K‖² are radial integrals (``scipy.integrate.quad``); the two derivative norms
    use a midpoint rule on 400^d points for d ≤ 2, 120³ in 3D: ‖∂₁K‖² exact to round-off
    (a smooth integrand), ‖∂₁²K‖₁ within 4e-5 relative (its kink converges like n⁻²); they
    size the step warnings and :func:`solver.jmm.sgd_settings`' step and batch.
    """
    if dim not in UNIT_SPHERE_AREA:
        raise ValueError(f"bump networks are implemented in 1 to 3 dimensions, got {dim}")
    profile = lambda r: math.exp(-1 / (1 - r * r)) if r < 1 else 0.0  # noqa: E731
    Z = _radial_moment(profile, dim)
    l2 = _radial_moment(lambda r: profile(r) ** 2, dim) / Z**2
    n = 400 if dim <= 2 else 120
    axis = -1 + (np.arange(n) + 0.5) * 2 / n
    u = np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), axis=-1)
    s = np.sum(u**2, axis=-1)
    gap = np.where(s < 1, 1 - s, 1.0)  # 1 − s inside the ball (K vanishes outside)
    K, g1 = unnormalized_bump(u) / Z, -2 * u[..., 0] / gap**2
    first = K * g1
    second = K * (g1**2 - 2 / gap**2 - 8 * u[..., 0] ** 2 / gap**3)
    cell = (2 / n) ** dim
    return Z, l2, float(np.sum(first**2) * cell), float(np.sum(np.abs(second)) * cell)


def cell_average_stencil(grid, delta):
    """The cell-averaged bump κ_k = (1/|cell|) ∫_(cell k) K^δ(y) dy on ``grid``, of unit mass
    Σ_k κ_k |cell| = 1 (the grid's ``cell_average_stencil`` of the bump), or None where
    the discretization has no cells of one shape (a mesh).

    With it (K^δ∗ρ)_i = Σ_j κ_(i−j) ρ_j |cell| is exact for a piecewise constant ρ, and for
    δ < h/2 the stencil is the identity (κ_0 = 1/|cell|): on a fixed grid F_δ becomes F_0
    as δ → 0.
    """
    offered = getattr(grid, "cell_average_stencil", None)
    return None if offered is None else offered(lambda y: unnormalized_bump(y / delta), delta)


def _check_domain(domain, owner):
    for attribute in ("dim", "volume", "convex", "quadrature", "sample"):
        if not hasattr(domain, attribute):
            raise ValueError(f"{owner}: domain must be a Box or Ball of solver.domains, got {domain!r}")


class _FitToTarget(Energy):
    """Shared by the bump risks: the target f, the domain Ω, their checks and f on a
    discretization (cell averages on grids, nodal values on meshes)."""

    def __init__(self, f, domain, spacing=None):
        if not callable(f):
            raise ValueError(f"{type(self).__name__}: f must be a callable f(x) of points x (..., d)")
        _check_domain(domain, type(self).__name__)
        if not domain.convex:
            warnings.warn(
                f"{type(self).__name__}: Ω = {domain!r} is not convex. The displacement convexity of F_0 "
                "(hence the exponential convergence of the flow, Javanmard–Mondelli–Montanari) and the "
                "non-expansive projection onto Ω used by SGD both rely on a convex Ω; the flows are still "
                "computed, without that guarantee", stacklevel=3)
        self.f, self.domain, self.dim, self.volume = f, domain, domain.dim, domain.volume
        coarsest = self.volume ** (1 / self.dim) / (64 if self.dim == 1 else 16)  # ample for a smooth f
        spacing = coarsest if spacing is None else min(spacing, coarsest)
        digits = math.log10(self.volume) + self.dim * math.log10(GAUSS_NODES / spacing)  # of the rule's points
        if digits > math.log10(QUADRATURE_LIMIT):
            raise ValueError(f"{type(self).__name__}: the quadrature of Ω with sub-intervals of {spacing:.3g} (δ/8 in "
                             f"1D, δ/2 beyond) would take about 10^{digits:.0f} points, more than "
                             f"{QUADRATURE_LIMIT:.0e}: take a wider bump")
        self.quadrature = domain.quadrature(spacing)
        self.f_at_quadrature = self._checked_target(self.quadrature[0], "Ω (quadrature points)")
        self.reference_risk = float(self.quadrature[1] @ self.f_at_quadrature**2) / (2 * self.volume)
        """1/(2|Ω|) ∫_Ω f²: the risk of the zero network; risks divided by it are the
        normalized risks ∫(f − f̂)²/∫f² of the paper's figure."""

    def _checked_target(self, points, where):
        values = np.asarray(self.f(points), dtype=float)
        if values.shape != points.shape[:-1]:
            raise ValueError(f"{type(self).__name__}: f(x) must map points (..., {self.dim}) to values (...), "
                             f"got shape {values.shape} for points {points.shape}")
        bad = ~np.isfinite(values)
        if bad.any():
            raise ValueError(f"{type(self).__name__}: f is not finite at x = {points[bad][0]} on {where}: "
                             "f must be finite (square-integrable) on Ω")
        if values.min() < -1e-12 * np.abs(values).max():  # round-off on ∂Ω is not negative
            at = points.reshape(-1, self.dim)[np.argmin(values)]
            raise ValueError(f"{type(self).__name__}: f is negative on {where} (min f = {values.min():.3g} at "
                             f"x = {at}); f is the density the bumps fit and must be >= 0 on Ω")
        return np.maximum(values, 0.0)

    @once_per_discretization
    def target_on(self, geometry):
        """f on ``geometry`` as it holds densities (its ``initial_density``: cell averages on a
        grid, values at the vertices of a mesh); once per discretization."""
        if geometry.dim != self.dim:
            raise ValueError(f"{type(self).__name__}: Ω has dimension {self.dim} but the discretization has "
                             f"dimension {geometry.dim}")
        bounds = getattr(geometry, "bounds", None)  # a discretization of a box must be Ω's, with walls
        if bounds is not None and (any(geometry.periodic) or not np.allclose(bounds, np.stack(
                [getattr(self.domain, "lower", np.nan), getattr(self.domain, "upper", np.nan)], axis=-1))):
            raise ValueError(f"{type(self).__name__}: on a grid, Ω = {self.domain!r} must be the grid's box "
                             f"{bounds.tolist()} with walls (no periodic axes); use a mesh for other domains")
        self._checked_target(geometry.points, f"the points of {geometry!r}")
        return np.maximum(geometry.initial_density(self.f), 0.0)

    def check(self, geometry):
        self.target_on(geometry)


class BumpLimitRisk(_FitToTarget):
    """F_0(ρ) = 1/(2|Ω|) ∫_Ω (f − ρ)², the δ → 0 limit of :class:`BumpRisk`.

    F_0'(ρ) = (ρ − f)/|Ω|; a local term (diffusivity ρ/|Ω|, f'' = 1/|Ω| for the implicit
    Newton step). It has no particle version: N bumps of width 0 are not a function.

    Parameters
    ----------
    f : callable
        The target density, f(x) for points x of shape (..., d); finite and ≥ 0 on Ω.
    domain : Box or Ball
        Ω (see :mod:`solver.domains`); a non-convex Ω warns.
    spacing : float, optional
        The sub-intervals of the Gauss quadrature of Ω that gives the zero network's risk
        ½E f² (:attr:`reference_risk`); at most, and by default, |Ω|^(1/d)/64 in 1D and /16
        beyond.
    """

    particles = None

    def __repr__(self):
        return f"BumpLimitRisk(f={getattr(self.f, '__name__', 'f')}, {self.domain!r})"

    def value(self, rho, grid):
        return grid.integrate((self.target_on(grid) - rho) ** 2) / (2 * self.volume)

    def first_variation(self, rho, grid):
        return (rho - self.target_on(grid)) / self.volume

    def max_diffusivity(self, rho, grid):
        return float(np.max(rho)) / self.volume

    def second_variation_diagonal(self, rho, grid):
        return 1 / self.volume

    def minimizer(self, grid, mass=1.0):
        """The minimizer of F_0 among densities of the given mass on ``grid``:
        ρ* = (f − c)₊ with c such that ∫ρ* = mass (the KKT conditions of ∫(f − ρ)²
        under ρ ≥ 0, ∫ρ = mass); ρ* = f when f is a density of that mass."""
        f = self.target_on(grid)
        excess = lambda c: grid.integrate(np.maximum(f - c, 0)) - mass  # noqa: E731
        lower = grid.minimum(f) - mass / grid.integrate(np.ones(grid.shape)) - 1.0  # there ∫(f − c)₊ > mass
        c = scipy.optimize.brentq(excess, lower, grid.maximum(f), xtol=1e-15, rtol=1e-15)
        return np.maximum(f - c, 0)

    def decay_rate(self, grid, mass=1.0):
        """Predicted exponential rate of F_0(ρ(t)) − F_0(ρ*) at late times.

        Derivation: write ρ = ρ* + u with ∫u = 0. The flow ∂tρ = (1/|Ω|)∇·(ρ∇(ρ − f))
        has ∇(ρ* − f) = 0 on the support of ρ* = (f − c)₊, so to first order in u
        ∂t u = −A u with A u = −(1/|Ω|) ∇·(ρ* ∇u) and no flux through ∂Ω: a weighted
        Neumann operator, self-adjoint and ≥ 0 in L², with the constants as its kernel.
        Hence u(t) ≈ e^(−λ₁ t) φ₁ and F_0(ρ) − F_0(ρ*) = 1/(2|Ω|) ∫u² decays at the rate
        2λ₁, λ₁ the smallest non-zero eigenvalue of A. A is the grid's finite-volume
        ``diffusion_matrix`` with ρ* averaged to the faces (symmetric); λ₁ comes from
        LAPACK's dense symmetric solver up to 2000 cells, from a shift-invert Lanczos
        iteration above. Initial data orthogonal to φ₁ (symmetric data when φ₁ is odd, as on
        a square with a radial f) decay faster, at the rate of the slowest mode they excite.
        """
        if getattr(grid, "diffusion_matrix", None) is None:
            raise ValueError(f"BumpLimitRisk.decay_rate needs a Cartesian grid (its diffusion_matrix), got {grid!r}")
        A = grid.diffusion_matrix(self.minimizer(grid, mass)) / self.volume
        if grid.size <= 2000:
            eigenvalues = scipy.linalg.eigvalsh(A.toarray(), subset_by_index=[0, 1])
        else:
            eigenvalues = np.sort(scipy.sparse.linalg.eigsh(A, k=2, sigma=-1e-3, which="LM",
                                                             return_eigenvectors=False))
        return 2 * float(eigenvalues[1])


class BumpRisk(_FitToTarget):
    """F_δ(ρ) = 1/(2|Ω|) ∫_Ω (f − K^δ∗ρ)², the mean-field risk of N bumps of width δ.

    On a grid, (K^δ∗ρ)_i = Σ_j κ_(i−j) ρ_j |cell| with the cell-averaged bump κ of
    :func:`cell_average_stencil`, and the discrete energy 1/(2|Ω|) Σ_i |cell| r_i²,
    r = K^δ∗ρ − f, has the exact discrete first variation F_δ' = K^δ∗r / |Ω| (κ is even):
    two convolutions, zero-padded (the grid's ``stencil_convolution``). On a mesh
    (any discretization with ``points`` and lumped ``weights``) both are direct sums of
    the bump over vertex pairs (Numba), the bump sampled at the vertices: that needs δ
    well above the mesh size. Under MPI each rank sums at its own vertices over every
    vertex, the others' weighted values gathered (the discretization's ``gather``).
    Particles: f̂ = Σ_i w_i K^δ(· − w_i); the full gradient integrates over Ω by
    quadrature, SGD uses data (x_k, y_k) with x_k ~ Unif(Ω), y_k = f(x_k) + noise·g.

    Parameters
    ----------
    f : callable
        The target density f(x), points (..., d) to values (...); finite and ≥ 0 on Ω.
    delta : float
        The bump width δ > 0.
    domain : Box or Ball
        Ω (see :mod:`solver.domains`); a non-convex Ω warns.
    noise : float
        Standard deviation of the label noise y − f(x) of SGD samples (default 0).
    convolution : {"auto", "fft", "direct"}
        How grids convolve: ``"auto"`` lets ``scipy.signal.choose_conv_method`` pick.
        ``benchmarks/bump_convolution.py`` measured direct faster in 1D up to δ/h = 32
        (16384 cells), FFT faster in 2D from δ/h = 1 (256²), and "auto" within 1.3× of
        the faster.
    """

    local = False  # F' at a point sums over all points
    distributed = True  # on a mesh under MPI the sums gather the other ranks' values

    def __init__(self, f, delta, domain, noise=0.0, convolution="auto"):
        delta, noise = float(delta), float(noise)
        if not (np.isfinite(delta) and delta > 0):
            raise ValueError(f"BumpRisk: delta (the bump width) must be finite and > 0, got {delta}")
        if not (np.isfinite(noise) and noise >= 0):
            raise ValueError(f"BumpRisk: noise (the label noise std) must be finite and >= 0, got {noise}")
        if convolution not in ("auto", "fft", "direct"):
            raise ValueError(f"BumpRisk: convolution must be 'auto', 'fft' or 'direct', got {convolution!r}")
        self.delta, self.noise, self.convolution = delta, noise, convolution
        _check_domain(domain, "BumpRisk")
        super().__init__(f, domain, spacing=delta / 8 if domain.dim == 1 else delta / 2)
        self.normalization, self.l2_squared, self.slope_squared, self.curvature = bump_constants(self.dim)
        with np.errstate(over="ignore"):
            self.scale = 1 / (self.normalization * np.float64(delta) ** self.dim)
        if not self.scale > 0:
            raise ValueError(f"BumpRisk: delta = {delta:g} is too wide: the bump's height 1/(c δ^d) underflows to 0")

    def __repr__(self):
        return f"BumpRisk(f={getattr(self.f, '__name__', 'f')}, delta={self.delta:g}, {self.domain!r})"

    # -- densities on a grid or a mesh ---------------------------------------------------
    @once_per_discretization
    def stencil(self, geometry):
        """The cell-averaged bump κ on ``geometry`` (:func:`cell_average_stencil`, once per
        discretization), None where it offers none (a mesh)."""
        return cell_average_stencil(geometry, self.delta)

    def smooth(self, values, geometry):
        """K^δ ∗ values on ``geometry``: with the cell-averaged stencil where the discretization
        offers one (grids: ``stencil_convolution``), else by sums of the bump over the pairs of
        points with their quadrature weights (mesh vertices: at this rank's, over every
        rank's, from ``gather``)."""
        stencil = self.stencil(geometry)
        if stencil is not None:
            return geometry.stencil_convolution(values, stencil, self.convolution)
        sources, weighted = geometry.gather(values * geometry.weights)
        points = np.ascontiguousarray(geometry.points.reshape(-1, self.dim))
        return bump_sum(points, np.ascontiguousarray(sources), np.ascontiguousarray(weighted, dtype=float),
                        self.delta, self.scale).reshape(values.shape)

    def _residual_and_value(self, rho, grid):
        residual = self.smooth(rho, grid) - self.target_on(grid)
        return residual, grid.integrate(residual**2) / (2 * self.volume)

    def value(self, rho, grid):
        return self._residual_and_value(rho, grid)[1]

    def value_and_first_variation(self, rho, grid):
        residual, value = self._residual_and_value(rho, grid)
        return value, self.smooth(residual, grid) / self.volume

    def first_variation(self, rho, grid):
        return self.value_and_first_variation(rho, grid)[1]

    @once_per_discretization
    def local_stiffness(self, geometry):
        """∂F_δ'_j/∂ρ_j: |cell|² Σ_k κ_k² / |Ω| = Σ_k κ_k² / ((Σ_k κ_k)² |Ω|) with a stencil
        (1/|Ω| when δ < h/2, as for F_0); max_j m_j ‖K^δ‖²_L2 / |Ω| by vertex sums. The
        diagonal of the Hessian, for the explicit step limit and the Newton Jacobian."""
        stencil = self.stencil(geometry)
        if stencil is not None:
            return float(np.sum(stencil**2) / np.sum(stencil) ** 2) / self.volume
        return geometry.maximum(geometry.weights) * self.l2_squared / self.delta**self.dim / self.volume

    def check(self, geometry):
        super().check(geometry)
        self.local_stiffness(geometry)

    def max_diffusivity(self, rho, grid):
        return float(np.max(rho)) * self.local_stiffness(grid)

    def second_variation_diagonal(self, rho, grid):
        return self.local_stiffness(grid)

    # -- particles -------------------------------------------------------------------------
    def predict(self, theta, weights, x=None):
        """f̂(x) = Σ_i w_i K^δ(x − θ_i) at points x (n, d), by default the quadrature points of Ω."""
        theta = np.asarray(theta, dtype=float)
        x = self.quadrature[0] if x is None else np.asarray(x, dtype=float)
        if not (theta.ndim == x.ndim == 2 and theta.shape[1] == x.shape[1] == self.dim):  # the kernel checks no bounds
            raise ValueError(f"{type(self).__name__}: centres θ of shape {theta.shape} and points x of shape "
                             f"{x.shape}: give shapes (m, {self.dim}) and (n, {self.dim})")
        weights = particle_weights(weights, theta, type(self).__name__)
        return bump_sum(x, theta, weights, self.delta, self.scale)

    def risk(self, theta, weights):
        """1/(2|Ω|) ∫_Ω (f − f̂)² by quadrature on Ω: composite 8-point Gauss rules with
        sub-intervals δ/8 in 1D (relative error about 1e-9), δ/2 in 2D and 3D."""
        x, w = self.quadrature
        return float(w @ (self.f_at_quadrature - self.predict(theta, weights)) ** 2) / (2 * self.volume)

    def particle_energy(self, theta, weights):
        """F_δ(μ_m): the :meth:`risk` of the N bumps."""
        return self.risk(theta, weights)

    def sample_batch(self, rng, size):
        """(x, y): x ~ Unif(Ω), y = f(x) + noise·g with g ~ N(0, 1)."""
        x = self.domain.sample(rng, size)
        return x, self.f(x) + self.noise * rng.standard_normal(size)

    def particle_velocity(self, theta, weights, batch=None):
        """−∇_w F_δ'(μ)(θ_i) = E_x[(f − f̂)(x) ∇_w K^δ(x − w)] at w = θ_i: by quadrature on Ω,
        or from a batch (x_k, y_k) as (1/B) Σ_k (y_k − f̂(x_k)) ∇_w K^δ(x_k − θ_i) (SGD)."""
        theta = np.asarray(theta, dtype=float)
        if batch is None:
            x, w = self.quadrature
            coefficients = w * (self.f_at_quadrature - self.predict(theta, weights)) / self.volume
        else:
            x, y = batch
            coefficients = (y - self.predict(theta, weights, x)) / len(y)
        return bump_gradient_sum(x, coefficients, theta, self.delta, self.scale)

    def stable_step(self):
        """ε* = δ² |Ω| / (‖f‖∞ ‖∂₁²K‖_L1): explicit Euler on the mean-field ODE
        dw/dt = −∇F_δ'(w) is stable for ε < 2/L with L = sup|∇²F_δ'| ≤ ‖K^δ∗ρ − f‖∞
        ‖∇²K^δ‖_L1 / |Ω| = ‖K^δ∗ρ − f‖∞ ‖∇²K‖_L1 / (δ² |Ω|), taking ‖f‖∞ as the size
        of the residual."""
        return self.delta**2 * self.volume / (float(np.max(self.f_at_quadrature)) * self.curvature)

    def sgd_temperature(self, step, batch_size):
        """T = ε ‖f‖∞² ‖∂₁K‖²_L2 / (2B |Ω| δ^(d+2)): the temperature of the Langevin noise
        that SGD's own noise resembles. A step moves w by ε/B Σ_k r_k ∇_wK^δ(x_k − w), r the
        residual y − f̂, whose variance per coordinate is about (ε²/B) ‖r‖∞² ‖∂₁K^δ‖²_L2
        / |Ω| = 2Tε with ‖∂₁K^δ‖² = δ^(−d−2) ‖∂₁K‖². SGD follows the noiseless PDE when T
        is small against the limit's porous-medium diffusivity ρ/|Ω| ≈ ‖f‖∞/|Ω|: so
        ε/B ≪ δ^(d+2) / (‖f‖∞ ‖∂₁K‖²)."""
        f_max = float(np.max(self.f_at_quadrature))
        return step * f_max**2 * self.slope_squared / (2 * batch_size * self.volume * self.delta ** (self.dim + 2))

    def check_step(self, step, batch_size=None):
        """Warn when a step ε is not small against δ² (:meth:`stable_step`), and for SGD
        (``batch_size`` B) when its noise is not small (:meth:`sgd_temperature`)."""
        limit = self.stable_step()
        if step > STEP_SAFETY * limit:
            warnings.warn(
                f"BumpRisk: the step {step:g} is not small against δ² = {self.delta**2:g}: the mean-field "
                f"ODE is stable up to about ε* = δ²|Ω|/(‖f‖∞ ‖∂²K‖₁) = {limit:.3g}; the particles follow "
                f"the PDE only for ε ≪ ε*, take ε <= {STEP_SAFETY * limit:.2g}", stacklevel=3)
        if batch_size is None:
            return
        temperature, diffusivity = self.sgd_temperature(step, batch_size), np.max(self.f_at_quadrature) / self.volume
        if temperature > STEP_SAFETY * diffusivity:
            warnings.warn(
                f"BumpRisk: SGD with step {step:g} and batch {batch_size} is as noisy as Langevin noise at "
                f"temperature T = ε‖f‖∞²‖∂K‖²/(2B|Ω|δ^(d+2)) = {temperature:.3g}, not small against the "
                f"diffusivity ‖f‖∞/|Ω| = {diffusivity:.3g} of the limit PDE: SGD will not follow the "
                f"noiseless PDE; lower ε/B below {STEP_SAFETY * diffusivity / temperature * step / batch_size:.2g}",
                stacklevel=3)
