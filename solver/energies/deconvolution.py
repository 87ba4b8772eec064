r"""Sparse spike deconvolution on the torus (BLASSO) as a flow of two densities ν±.

**The problem** (Chizat 2022, seed 003, "Example 2"). A signed sparse measure
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
"""

import dataclasses
import itertools

import numpy as np

from .base import once_per_discretization
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
        weights = np.asarray(weights, dtype=float)
        if spikes.ndim != 2 or spikes.shape[1] not in (1, 2) or weights.shape != (len(spikes),):
            raise ValueError(f"SpikeDeconvolution: spikes must be (m0, d) with d = 1 or 2 and weights (m0,), got "
                             f"{spikes.shape} and {weights.shape}")
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
