r"""Sparse spike deconvolution on the torus (BLASSO) as a flow of two densities ν±.

**The problem** (Chizat–Bach 2018, seed 003, "Example 2"; the set-up and its
normalization from the code of Chizat 2022, lchizat/2019-sparse-optim-measures). A signed sparse measure
μ* = Σ_k w_k δ_(z_k) on the torus T^d = [0, 2π)^d (d = 1, 2) is seen through the Dirichlet
kernel with cut-off f_c, i.e. through its Fourier coefficients μ̂(ω) = ∫e^(−iω·z) dμ(z) at
the frequencies Ω = {ω ∈ Z^d : |ω|_∞ ≤ f_c} ((2f_c + 1)^d of them; the square of Chizat's
``kx, ky in -nf:nf``). Real features: ω = 0 and one ω of each pair ±ω (the half set H, first
nonzero coordinate > 0) give

    ψ(z) = (1, √2 cos(ω·z), √2 sin(ω·z) for ω ∈ H) ∈ R^J,   J = (2f_c + 1)^d,

so that Σ_j ψ_j(z)ψ_j(z') = 1 + 2Σ_(ω∈H) cos(ω·(z − z')) = Σ_(ω∈Ω) e^(iω·(z−z')) = D(z − z'),
the Dirichlet kernel D(z) = Π_a sin((f_c + ½)z_a)/sin(z_a/2). With Φμ = ∫ψ dμ ∈ R^J and
y = Φμ* (+ noise), the BLASSO energy

    F(μ) = ½|Φμ − y|² + λ|μ| = ½∬D(z − z') d(μ − μ*)(z) d(μ − μ*)(z') + λ|μ|   (y = Φμ*)

is exactly Chizat's ``loss`` (½(a − b)ᵀK(a − b) + λΣ|a|, K = D at the atoms' differences):
**our λ is his λ**, and his set-ups' λ ∈ {0, 1, 4} (2D) and 0.3 (1D) carry over unchanged.
His spikes carry the masses r|r| of their ``r_obs`` (his 2D ``r_obs = [1.1, 0.8, 1.0]`` are
masses 1.21, 0.64, 1.0; the presets of :mod:`solver.problems` use his masses).

**Two species.** μ = ν+ − ν−, ν± ≥ 0. With c = Φ(ν+ − ν−) − y the residual and
G(z) = Φ*c (z) = ψ(z)·c, a perturbation ν± + εδν changes F by ε∫(±G + λ) dδν, so

    F'±(z) = ±G(z) + λ,     F(ν±) = ½|Φ(ν+ − ν−) − y|² + λ(|ν+| + |ν−|).

**Particles and the reaction.** A particle θ = (z, r) ∈ T^d × R with weight ω carries the
signed mass ω r|r| at z: μ = Σ_j ω_j r_j|r_j| δ_(z_j) and V(θ) = λr² (|r|r| | = r²). Then
F'(μ)(z, r) = r|r| G(z) + λr² = r² F'_(sign r)(z), and plain gradient descent
dθ/dt = −∇_θ F'(μ)(θ) reads

    dr/dt = −2|r|G(z) − 2λr = −2r F'±(z),      dz/dt = −r|r|∇G(z) = −r² ∇F'±(z),

so the mass m = ωr² of a particle obeys dm/dt = 2ωr dr/dt = −4 F'± m: **reaction β = 4**
(:attr:`SpikeDeconvolution.reaction`; checked against :meth:`particle_velocity` in
tests/test_deconvolution.py). Its positions move at r² times ∇F'±, which is not a velocity
field of ν± alone: plain gradient descent is a Wasserstein flow on T^d × R, not a flow of ν±.
Giving positions the conic metric (dz/dt = −∇F'±, Chizat's α_C = β_C, his updates
r ← r e^(−2α_C F'), z ← z − β_C ∇F') closes it: the masses and positions of the atoms
(:class:`TorusMeasure`, :func:`solver.conic.conic_gradient_descent` with α = 4, β = 1) are
the characteristics of

    ∂tν± = ∇·(ν± ∇F'±) − 4 F'± ν±,

the Wasserstein–Fisher–Rao gradient flow that :func:`solver.solve` integrates on
``Species(torus, ("plus", "minus"))``; Chizat's k-th iterate at step size 0.01 is t = 0.01k.
Plain gradient descent on (r, z) is offered as the particles users run
(:meth:`particle_velocity`); the same masses give the same energy.

**Discretization.** On a periodic grid of [0, 2π]^d with cell centres z_k and volumes w_k a
density stands for the atoms ν± ≈ Σ_k w_k ρ±_k δ_(z_k). With Ψ_jk = ψ_j(z_k) (J × K, built
once per grid),

    h = Ψ(w ⊙ (ρ+ − ρ−)),   G = Ψᵀ(h − y),   F(ρ) = ½|h − y|² + λΣ_k w_k(ρ+_k + ρ−_k),

and ∂F/∂ρ±_k = w_k(±G_k + λ): F'± at the cells is the derivative of the discrete F per unit
volume, as the time loop needs. J = (2f_c + 1)^d is small (25 in Chizat's 2D set-up), so the
two dense products cost J·K, no more than an FFT of the K cells (K log K) would; the
features are kept dense. The masses c±_k = w_k ρ±_k make the discrete F the non-negative
LASSO min over c± ≥ 0 of ½|Ψ(c+ − c−) − y|² + λΣ(c+ + c−) of
:func:`solver.convex.convex_minimum` (features Ψ, unit quadrature, penalty λ;
:meth:`SpikeDeconvolution.convex_reference`), the exact minimum of the discrete flow's
energy on the same cells (in the density variables ρ the features are Ψ·w, the same
problem). This discrete part is :class:`~solver.energies.signed.SignedMeasureRisk`, shared
with the lifted ReLU risk (features Ψ, targets y, unit quadrature, penalty λ).

**The continuous optimum** min over all measures of F lies below every discrete optimum
(atoms off the cells do better), so a method that moves its atoms freely (conic or plain
particle gradient descent) is measured against a bracket of it,
:meth:`SpikeDeconvolution.continuous_reference`:

- *upper bound*: a measure. The discrete BLASSO on a fine grid, its support's clusters of
  adjacent cells merged into one atom each (mass-weighted mean position, total mass), then
  slid: positions z_j and masses m_j ≥ 0 (signs fixed) moved by L-BFGS-B on F with
  ∂F/∂m_j = F'_j and ∂F/∂z_j = m_j∇F'_j. Its value F(μ̂) ≥ min F.
- *lower bound*: a dual feasible point. By ½|v|² = max_p (⟨p, v⟩ − ½|p|²),

      min_μ F(μ) ≥ max_p ⟨y, p⟩ − ½|p|² + inf_μ (λ|μ| − ∫Φ*p dμ) = max over ‖Φ*p‖_∞ ≤ λ of D(p),
      D(p) = ⟨y, p⟩ − ½|p|²,   Φ*p(z) = ψ(z)·p,

  (the inf is 0 when |Φ*p| ≤ λ everywhere, −∞ otherwise). The residual p = y − Φμ̂ scaled
  by s = min(1, λ/‖Φ*p‖_∞) is feasible, so D(sp) ≤ min F; at the optimum Φ*p = ±λ on the
  support and F(μ̂) − D(p) = λ|μ̂| − ∫Φ*p dμ̂ = 0. (Near it ⟨y, p⟩ − |p|² = ∫Φ*p dμ̂ ≥ 0, so
  D grows with s up to that end; far from it D is maximized on [0, min(1, λ/‖Φ*p‖_∞)] at
  s = ⟨y, p⟩/|p|² clipped, :meth:`SpikeDeconvolution.dual_value`.) The sup of the trigonometric polynomial
  η = Φ*p over the torus is read on an N^d grid (one FFT) and polished by BFGS from the
  grid's local maxima. Without any search it is also bounded: per variable η has degree
  ≤ f_c, so Bernstein's inequality gives |∂_a∂_b η| ≤ f_c²‖η‖_∞, and at a maximizer z*
  (∇η = 0) the nearest grid node (|z − z*|² ≤ d h²/4, h = 2π/N) has
  |η| ≥ ‖η‖_∞(1 − d² f_c² h²/8): ‖η‖_∞ ≤ max_grid |η| / (1 − d² f_c² h²/8), the
  ``certified_lower`` bound. For λ = 0 the only feasible p is 0 (the features are
  independent), D = 0: the optimum is 0 whenever y = Φμ* (no noise).
"""

import dataclasses
import itertools
from numbers import Integral

import numpy as np
import scipy.fft
from scipy import optimize

from ..convex import convex_minimum
from .base import once_per_discretization, particle_weights
from .signed import SignedMeasureRisk

TURN = 2 * np.pi


def frequencies(cutoff, dim):
    """The half set H: ω ∈ Z^d, |ω|_∞ ≤ f_c, first nonzero coordinate > 0, an (|H|, d) array."""
    grid = np.array(list(itertools.product(range(-cutoff, cutoff + 1), repeat=dim)), dtype=int)
    first = np.array([row[np.flatnonzero(row)[0]] if np.any(row) else 0 for row in grid])
    return grid[first > 0]


def dirichlet_kernel(z, cutoff):
    """D(z) = Σ_(|ω|_∞ ≤ f_c) e^(iω·z) = Π_a Σ_(k=−f_c)^(f_c) cos(k z_a), z of shape (..., d)."""
    z = np.asarray(z, dtype=float)
    k = np.arange(-cutoff, cutoff + 1)
    return np.prod(np.sum(np.cos(z[..., None] * k), axis=-1), axis=-1)


@dataclasses.dataclass(frozen=True)
class TorusMeasure:
    """Atoms on the torus in two species: ν± = Σ_(signs_j = ±1) masses_j δ_(positions_j).

    Attributes
    ----------
    positions : array (m, d)
        In [0, 2π)^d.
    masses : array (m,)
        ≥ 0.
    signs : array (m,) of ±1
    """

    positions: np.ndarray
    masses: np.ndarray
    signs: np.ndarray

    @property
    def points(self):
        """The positions (for :mod:`solver.conic`)."""
        return self.positions

    def moved(self, points, masses):
        """The same species with new positions and masses."""
        return dataclasses.replace(self, positions=points, masses=masses)


@dataclasses.dataclass(frozen=True)
class ContinuousReference:
    """A bracket of the continuous BLASSO minimum (module docstring, "The continuous optimum").

    Attributes
    ----------
    upper : float
        F(μ̂) of the slid atoms, ≥ min F.
    lower : float
        D(sp) with ‖Φ*p‖_∞ from the polished grid search, ≤ min F.
    certified_lower : float
        D(sp) with ‖Φ*p‖_∞ bounded by Bernstein's inequality from the grid alone, ≤ ``lower``.
    measure : TorusMeasure
        μ̂, the slid atoms.
    sup_correlation : float
        ‖Φ*p‖_∞ (polished) for the residual p = y − Φμ̂: λ at the optimum.
    """

    upper: float
    lower: float
    certified_lower: float
    measure: TorusMeasure
    sup_correlation: float


def support_clusters(points, cells, masses):
    """The support of masses on the cell centres of an n^d periodic grid, split into clusters of
    cells that touch (index distance ≤ 1 per axis, periodic), each cluster's cells a list.

    Parameters
    ----------
    points : array (n^d, d)
        The cell centres, C order.
    cells : int
        n.
    masses : array (n^d,)
        ≥ 0; the support is where they are > 0.
    """
    support = np.flatnonzero(masses > 0)
    index = np.stack(np.unravel_index(support, (cells,) * points.shape[1]), axis=1)
    offset = np.abs(index[:, None] - index[None])
    touching = np.all(np.minimum(offset, cells - offset) <= 1, axis=2)
    clusters, unseen = [], set(range(len(support)))
    while unseen:
        frontier, cluster = [unseen.pop()], []
        while frontier:
            i = frontier.pop()
            cluster.append(support[i])
            found = [j for j in np.flatnonzero(touching[i]) if j in unseen]
            unseen.difference_update(found)
            frontier += found
        clusters.append(cluster)
    return clusters


class SpikeDeconvolution(SignedMeasureRisk):
    """F(ν+, ν−) = ½|Φ(ν+ − ν−) − y|² + λ(|ν+| + |ν−|) on T^d (see the module docstring).

    Parameters
    ----------
    spikes : array (m0, d)
        Positions z_k of the true spikes, in [0, 2π]^d.
    weights : array (m0,)
        Their signed masses w_k.
    cutoff : int
        f_c ≥ 1: the frequencies |ω|_∞ ≤ f_c are observed.
    penalty : float
        λ ≥ 0.
    noise : array (J,), optional
        Added to y = Φμ*.

    Attributes
    ----------
    observations : array (J,)
        y.
    penalty : float
        λ (the λ' of :class:`~solver.energies.signed.SignedMeasureRisk`).
    dim : int
        d + 1, the dimension of a particle θ = (z, r).
    """

    reaction = 4.0
    base_name = "torus"

    def __init__(self, spikes, weights, cutoff, penalty=0.0, noise=None):
        spikes = np.asarray(spikes, dtype=float)
        if spikes.ndim == 1:
            spikes = spikes[:, None]
        if spikes.ndim != 2 or spikes.shape[1] not in (1, 2):
            raise ValueError(f"SpikeDeconvolution: spikes must be (m0, d) with d = 1 or 2, got {spikes.shape}")
        weights = particle_weights(weights, spikes, "SpikeDeconvolution")
        if not (np.all(np.isfinite(spikes)) and np.all(np.isfinite(weights))):
            raise ValueError("SpikeDeconvolution: spikes and weights must be finite")
        outside = np.flatnonzero(np.any((spikes < 0) | (spikes > TURN), axis=1))
        if len(outside):
            raise ValueError(f"SpikeDeconvolution: spike {outside[0]} at {spikes[outside[0]].tolist()} is outside the "
                             f"torus [0, 2π]^{spikes.shape[1]}")
        if isinstance(cutoff, bool) or int(cutoff) != cutoff or cutoff < 1:
            raise ValueError(f"SpikeDeconvolution: the frequency cut-off f_c must be an integer >= 1, got {cutoff!r}")
        penalty = float(penalty)
        if not np.isfinite(penalty) or penalty < 0:
            raise ValueError(f"SpikeDeconvolution: the penalty λ must be finite and >= 0, got {penalty}")
        self.spikes, self.weights, self.cutoff, self.penalty = spikes, weights, int(cutoff), penalty
        self.frequencies = frequencies(self.cutoff, spikes.shape[1])
        self.observations = self.features(spikes).T @ weights
        if noise is not None:
            noise = np.asarray(noise, dtype=float)
            if noise.shape != self.observations.shape or not np.all(np.isfinite(noise)):
                raise ValueError(f"SpikeDeconvolution: noise must be {self.observations.shape} finite values")
            self.observations = self.observations + noise
        self.dim = spikes.shape[1] + 1

    def __repr__(self):
        return (f"SpikeDeconvolution(m0={len(self.spikes)}, d={self.dim - 1}, cutoff={self.cutoff}, "
                f"penalty={self.penalty:g})")

    # features ---------------------------------------------------------------------------
    def features(self, z):
        """Ψ[k, j] = ψ_j(z_k) = (1, √2 cos(ω·z_k), √2 sin(ω·z_k) for ω ∈ H), shape (n, J)."""
        phase = np.atleast_2d(np.asarray(z, dtype=float)) @ self.frequencies.T
        return np.concatenate([np.ones((len(phase), 1)), np.sqrt(2) * np.cos(phase), np.sqrt(2) * np.sin(phase)],
                              axis=1)

    def correlation(self, z, residual):
        """G(z) = ψ(z)·c and its gradient ∇G(z) = √2 Σ_(ω∈H) ω(−c_cos sin(ω·z) + c_sin cos(ω·z))."""
        phase = np.atleast_2d(np.asarray(z, dtype=float)) @ self.frequencies.T
        half = len(self.frequencies)
        c_cos, c_sin = residual[1:1 + half], residual[1 + half:]
        G = self.features(z) @ residual
        gradient = np.sqrt(2) * (-np.sin(phase) * c_cos + np.cos(phase) * c_sin) @ self.frequencies
        return G, gradient

    # discretizations ----------------------------------------------------------------------
    def check(self, grid):
        """Refuse anything but ``Species(torus, ("plus", "minus"))``, the torus a periodic
        grid of [0, 2π]^d in the spikes' dimension."""
        base = self.check_species(grid)
        d = self.dim - 1
        if base.dim != d:
            raise ValueError(f"SpikeDeconvolution: the spikes live on T^{d}, the grid is {base.dim}D")
        self.check_periodic_turns(base, "the torus")

    @once_per_discretization
    def cell_features(self, grid):
        """Ψ[j, k] = ψ_j(z_k) at the cell centres (J, K) and the cell volumes w_k (K,)."""
        self.check(grid)
        points = np.asarray(grid.base.points, dtype=float).reshape(-1, self.dim - 1)
        return (np.ascontiguousarray(self.features(points).T),
                np.asarray(grid.base.weights, dtype=float).reshape(-1))

    @property
    def targets(self):
        """y, the observed Fourier coefficients."""
        return self.observations

    @property
    def quadrature(self):
        """Unit weights: R(h) = ½|h − y|²."""
        return np.ones(len(self.observations))

    # atoms on the torus (conic particle gradient descent) ---------------------------------
    def lifted_energy(self, measure):
        """F(ν±) = ½|Σ_j ε_j m_j ψ(z_j) − y|² + λΣ_j m_j."""
        residual = self.features(measure.positions).T @ (measure.signs * measure.masses) - self.observations
        return 0.5 * float(residual @ residual) + self.penalty * float(np.sum(measure.masses))

    def conic_gradient(self, measure):
        """F'_j = ε_j G(z_j) + λ and ∇F'_j = ε_j ∇G(z_j)."""
        residual = self.features(measure.positions).T @ (measure.signs * measure.masses) - self.observations
        G, gradient = self.correlation(measure.positions, residual)
        return measure.signs * G + self.penalty, measure.signs[:, None] * gradient

    @staticmethod
    def retract(points):
        """Back onto the torus: z mod 2π."""
        return np.mod(points, TURN)

    # the continuous optimum -------------------------------------------------------------
    def continuous_reference(self, cells=None, samples=None):
        """Bracket min F over all measures on T^d (module docstring, "The continuous optimum").

        Parameters
        ----------
        cells : int, optional
            n: the discrete BLASSO on the n^d cell centres starts the sliding (default 64 in
            2D, 512 in 1D).
        samples : int, optional
            N ≥ 4 d f_c: the grid on which ‖Φ*p‖_∞ is searched (default 2048 in 2D, 2^16 in 1D;
            the certified bound loses d² f_c² (2π/N)²/8 relative: 1.9e-5 and 7.4e-8 at f_c = 2, 8).

        Returns
        -------
        ContinuousReference
        """
        d = self.dim - 1
        cells = (64 if d == 2 else 512) if cells is None else cells
        samples = (2048 if d == 2 else 2**16) if samples is None else samples
        if isinstance(cells, bool) or not isinstance(cells, Integral) or cells < 1:
            raise ValueError(f"continuous_reference: cells must be an integer >= 1, got {cells!r}")
        if isinstance(samples, bool) or not isinstance(samples, Integral):
            raise ValueError(f"continuous_reference: samples must be an integer, got {samples!r}")
        if samples < 4 * d * self.cutoff:  # the frequencies stay apart mod N and 1 − d²f_c²h²/8 ≥ 0.69
            raise ValueError(f"continuous_reference: the search grid needs samples >= 4 d f_c = "
                             f"{4 * d * self.cutoff} per axis, got {samples}")
        axis = (np.arange(cells) + 0.5) * TURN / cells
        points = np.stack(np.meshgrid(*[axis] * d, indexing="ij"), axis=-1).reshape(-1, d)
        minimum = convex_minimum(self.features(points).T, self.observations, self.penalty, self.quadrature)
        atoms = [self._merged(points, masses, sign, cluster) for sign, masses in ((1.0, minimum.c_plus),
                                                                                   (-1.0, minimum.c_minus))
                 for cluster in support_clusters(points, cells, masses)]
        measure = self.slide(TorusMeasure(np.array([a[0] for a in atoms]).reshape(-1, d),
                                          np.array([a[1] for a in atoms]), np.array([a[2] for a in atoms])))
        residual = self.observations - self.features(measure.positions).T @ (measure.signs * measure.masses)
        sup, certified_sup = self.sup_correlation(residual, samples)
        return ContinuousReference(self.lifted_energy(measure), self.dual_value(residual, sup),
                                   self.dual_value(residual, certified_sup), measure, sup)

    @staticmethod
    def _merged(points, masses, sign, cluster):
        """One atom for a cluster of cells: (mass-weighted mean position, periodic, from the
        heaviest cell; total mass; sign)."""
        cluster = np.asarray(cluster)
        heaviest = points[cluster[np.argmax(masses[cluster])]]
        offsets = np.angle(np.exp(1j * (points[cluster] - heaviest)))
        total = float(np.sum(masses[cluster]))
        return np.mod(heaviest + masses[cluster] @ offsets / total, TURN), total, sign

    def slide(self, measure, newton_steps=5):
        """Atoms moved to a local minimum of F over their positions and masses ≥ 0 (signs kept).

        L-BFGS-B with ∂F/∂m_j = F'_j and ∂F/∂z_j = m_j∇F'_j (:meth:`conic_gradient`), then
        ``newton_steps`` Newton steps x ← x − H⁻¹∇F on the atoms that kept a mass (H by central
        differences of the gradient): L-BFGS-B alone leaves |F'_j − 0| ~ 1e-8 on the support,
        which the dual bound would pay for. No atoms (the optimum μ = 0 when λ ≥ ‖Φ*y‖_∞): nothing
        to move."""
        n, d = measure.positions.shape
        if n == 0:
            return measure

        def gradient(x):
            current = measure.moved(x[:n * d].reshape(n, d), x[n * d:])
            xi, grad_xi = self.conic_gradient(current)
            return np.concatenate([(current.masses[:, None] * grad_xi).ravel(), xi])

        def energy_and_gradient(x):
            return self.lifted_energy(measure.moved(x[:n * d].reshape(n, d), x[n * d:])), gradient(x)

        start = np.concatenate([measure.positions.ravel(), measure.masses])
        x = optimize.minimize(energy_and_gradient, start, jac=True, method="L-BFGS-B",
                              bounds=[(None, None)] * (n * d) + [(0, None)] * n,
                              options={"ftol": 0.0, "gtol": 1e-13, "maxiter": 100000, "maxcor": 50}).x
        alive = np.flatnonzero(np.concatenate([np.repeat(x[n * d:] > 0, d), x[n * d:] > 0]))
        for _ in range(newton_steps):
            hessian = np.empty((len(alive), len(alive)))
            for column, i in enumerate(alive):
                step = np.zeros_like(x)
                step[i] = 1e-6
                hessian[:, column] = (gradient(x + step) - gradient(x - step))[alive] / 2e-6
            x[alive] -= np.linalg.lstsq(hessian, gradient(x)[alive], rcond=None)[0]
        return measure.moved(self.retract(x[:n * d].reshape(n, d)), np.maximum(x[n * d:], 0.0))

    def dual_value(self, residual, sup):
        """max over s ∈ [0, min(1, λ/sup)] of D(sp) = s⟨y, p⟩ − s²|p|²/2, at s = ⟨y, p⟩/|p|² clipped
        to that segment: a lower bound on min F when sup ≥ ‖Φ*p‖_∞, never negative, and never
        larger for a larger sup."""
        limit = 1.0 if sup <= self.penalty else self.penalty / sup
        correlation, square = float(self.observations @ residual), float(residual @ residual)
        scale = min(limit, max(correlation / square, 0.0)) if square > 0 else 0.0
        return scale * correlation - 0.5 * scale**2 * square

    def sup_correlation(self, residual, samples):
        """‖η‖_∞ of η(z) = ψ(z)·p over T^d: (polished, certified upper bound).

        η = Re Σ_(ω∈{0}∪H) b_ω e^(iω·z), b_0 = p_0, b_ω = √2(p_cos − i p_sin), evaluated at the
        nodes 2πk/N by one inverse FFT; BFGS polishes from each grid local maximum of |η| above
        half the largest; the grid maximum divided by 1 − d² f_c² h²/8 bounds ‖η‖_∞ (module
        docstring)."""
        d, half = self.dim - 1, len(self.frequencies)
        coefficients = np.zeros((samples,) * d, dtype=complex)
        coefficients[(0,) * d] = residual[0]
        wrapped = tuple(np.mod(self.frequencies, samples).T)
        coefficients[wrapped] = np.sqrt(2) * (residual[1:1 + half] - 1j * residual[1 + half:])
        values = np.abs(np.real(scipy.fft.ifftn(coefficients) * samples**d))
        grid_max = float(values.max())
        if grid_max == 0:  # the N^d nodes determine η (N > 2f_c): η ≡ 0, and a flat grid has no peaks to polish
            return 0.0, 0.0
        peaks = values >= 0.5 * grid_max
        for shift in itertools.product((-1, 0, 1), repeat=d):
            if any(shift):
                peaks &= values >= np.roll(values, shift, axis=tuple(range(d)))
        best = grid_max
        for node in np.argwhere(peaks):
            start = node * TURN / samples
            sign = np.sign(self.correlation(start, residual)[0][0])

            def negative(z, sign=sign):
                G, gradient = self.correlation(z, residual)
                return -sign * G[0], -sign * gradient[0]

            result = optimize.minimize(negative, start, jac=True, method="BFGS", options={"gtol": 1e-13})
            best = max(best, -float(result.fun))
        h = TURN / samples
        return best, grid_max / (1 - d**2 * self.cutoff**2 * h**2 / 8)

    # the recovered spikes -------------------------------------------------------------------
    def cell_atoms(self, rho, grid):
        """The densities ρ± on ``grid`` as atoms: w_kρ±_k at the cell centres z_k, signs ±1."""
        points, w = np.asarray(grid.base.points, dtype=float).reshape(-1, self.dim - 1), self.cell_features(grid)[1]
        return TorusMeasure(np.concatenate([points, points]), (np.asarray(rho).reshape(2, -1) * w).ravel(),
                            np.repeat([1.0, -1.0], len(w)))

    def spike_errors(self, measure, h):
        """How well atoms recover each true spike z_k: the atoms of its sign within 1.5h of it
        (periodic sup norm: the 3×3 block of cells of size h around it), their mass-weighted
        mean offset from z_k and their total mass.

        Returns
        -------
        errors : array (m0,)
            |mean offset|_∞ / h, in cells (∞ when no atom of that sign is that near).
        masses : array (m0,)
            The mass near each spike.
        """
        offsets = np.angle(np.exp(1j * (measure.positions[:, None, :] - self.spikes[None])))  # (m, m0, d)
        errors, masses = np.full(len(self.spikes), np.inf), np.zeros(len(self.spikes))
        for k, sign in enumerate(np.where(self.weights < 0, -1.0, 1.0)):
            near = (np.max(np.abs(offsets[:, k]), axis=1) < 1.5 * h) & (measure.signs == sign)
            masses[k] = np.sum(measure.masses[near])
            if masses[k] > 0:
                errors[k] = np.max(np.abs(measure.masses[near] @ offsets[near, k])) / masses[k] / h
        return errors, masses

    # particles θ = (z, r) with signed mass ω r|r| ------------------------------------------
    def lift(self, theta, weights):
        """The atoms ν± of particles θ_j = (z_j, r_j): positions z_j mod 2π, masses ω_j r_j², signs sign(r_j)."""
        theta = self._particles(theta)
        r = theta[:, -1]
        return TorusMeasure(self.retract(theta[:, :-1]), np.asarray(weights, dtype=float) * r**2,
                            np.where(r < 0, -1.0, 1.0))

    def predict(self, theta, weights):
        """Φμ = Σ_j ω_j r_j|r_j| ψ(z_j) ∈ R^J."""
        theta = self._particles(theta)
        r = theta[:, -1]
        return self.features(theta[:, :-1]).T @ (np.asarray(weights, dtype=float) * r * np.abs(r))

    def particle_energy(self, theta, weights):
        """F(μ_m) = ½|Φμ − y|² + λΣ_j ω_j r_j²."""
        residual = self.predict(theta, weights) - self.observations
        return 0.5 * float(residual @ residual) + self.penalty * float(np.asarray(weights) @ self._particles(
            theta)[:, -1] ** 2)

    def particle_velocity(self, theta, weights, batch=None):
        """Plain gradient descent: dz/dt = −r|r|∇G(z), dr/dt = −2(|r|G(z) + λr)."""
        if batch is not None:
            raise ValueError("SpikeDeconvolution: no mini-batches (method='gd' only): y is a fixed set of "
                             "Fourier coefficients")
        theta = self._particles(theta)
        r = theta[:, -1]
        G, gradient = self.correlation(theta[:, :-1], self.predict(theta, weights) - self.observations)
        return np.concatenate([-(r * np.abs(r))[:, None] * gradient,
                               (-2 * (np.abs(r) * G + self.penalty * r))[:, None]], axis=1)

    def _particles(self, theta):
        theta = np.atleast_2d(np.asarray(theta, dtype=float))
        if theta.shape[1] != self.dim:
            raise ValueError(f"SpikeDeconvolution: particles are θ = (z, r) ∈ R^{self.dim}, got shape {theta.shape}")
        return theta
