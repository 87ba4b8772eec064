r"""Several densities on one discretization: the species of a signed or multi-type measure.

A signed measure ν = ν⁺ − ν⁻ (the output weights of a 2-homogeneous network, lifted to
the sphere) is two positive densities, ν±, on one base space; in general S species
ρ = (ρ¹, …, ρ^S) on a base :class:`~solver.discretization.Discretization` (a grid, a
mesh, the circle or the sphere) evolve by

    ∂tρᵏ = ∇·(ρᵏ∇ξᵏ) − βξᵏρᵏ,   ξᵏ = δF/δρᵏ,   k = 1 … S,

with transport inside each species and none between them (the reaction, when β ≠ 0,
only scales each species where it is). :class:`Species` is itself a discretization whose
densities have shape ``(S, *base.shape)``: its spatial operators are the base's, species
by species, and its reductions run over all species at once, so the time loop and the
local energies (∫f(ρ) acts on each species alike, F' = f'(ρᵏ) in species k) work on it
unchanged. The mass and the energy are sums over the species,
∫ρ = Σ_k ∫ρᵏ, dF/dt = Σ_k Σ_i w_i ξᵏ_i Lᵏ_i ≤ 0, and each species keeps its own mass
balance d/dt ∫ρᵏ = −β∫ξᵏρᵏ (:meth:`Species.integrate_species`).
"""

import collections.abc
from pathlib import Path

import numpy as np
import scipy.sparse

from .discretization import Discretization


class Species(Discretization):
    """S species on one base discretization, one density each (see the module doc).

    Parameters
    ----------
    base : Discretization
        The space every species lives on (:class:`~solver.grid.Grid`,
        :class:`~solver.fem.Mesh`).
    names : sequence of str
        The species' names, distinct and non-empty, in the order of the first axis of a
        density (e.g. ``("plus", "minus")``); an energy that needs species
        (:attr:`~solver.energies.base.Energy.species`) must name the same ones.

    Attributes
    ----------
    base, names
        As given (``names`` a tuple).
    dim : int
        The base's dimension.
    shape : tuple
        ``(S, *base.shape)``.
    points : array ``(S, *base.shape, dim)``
        The base's points, the same for every species (a read-only broadcast).
    weights : array ``(S, *base.shape)``
        The base's weights, the same for every species (a read-only broadcast).
    """

    def __init__(self, base, names):
        if not isinstance(base, Discretization):
            raise ValueError(f"Species: base must be a discretization (a Grid or a Mesh), got {base!r}")
        if isinstance(names, str) or not isinstance(names, collections.abc.Iterable):
            raise ValueError(f"Species: names must be a sequence of species names such as ('plus', 'minus'), "
                             f"got {names!r}")
        names = tuple(names)
        if not names or not all(isinstance(name, str) and name for name in names):
            raise ValueError(f"Species: names must be one or more non-empty strings, got {names!r}")
        if len(set(names)) != len(names):
            repeated = sorted({name for name in names if names.count(name) > 1})
            raise ValueError(f"Species: the names must be distinct, got {names!r} ({', '.join(repeated)} repeated)")
        self.base, self.names = base, names
        self.dim = base.dim
        self.shape = (len(names), *base.shape)
        self.points = np.broadcast_to(base.points, (*self.shape, self.dim))
        self.weights = np.broadcast_to(base.weights, self.shape)

    def __repr__(self):
        return f"Species({self.base!r}, {self.names!r})"

    # -- global reductions: over every species (and every rank, through the base) ---------
    def integrate(self, values):
        """Σ_k Σ_i w_i values^k_i: the base's integral of the sum over the species."""
        return self.base.integrate(np.sum(values, axis=0))

    def error_norm(self, values):
        """Σ_k the base's :meth:`~solver.discretization.Discretization.error_norm` of species k."""
        return sum(self.base.error_norm(part) for part in values)

    def integrate_species(self, values):
        """(Σ_i w_i values^k_i)_k: the integral of each species (its mass, for a density),
        an array (S,)."""
        return np.array([self.base.integrate(part) for part in values])

    def minimum(self, values):
        """min over the species and the base's points."""
        return self.base.minimum(np.min(values, axis=0))

    def maximum(self, values):
        """max over the species and the base's points."""
        return self.base.maximum(np.max(values, axis=0))

    def maxima(self, values):
        """The base's elementwise maxima over the ranks of a few per-rank numbers."""
        return self.base.maxima(values)

    def global_sum(self, number):
        """The base's sum over the ranks of a per-rank number."""
        return self.base.global_sum(number)

    @property
    def global_size(self):
        """The base's points over all ranks: the species share them, and so do the ranks' parts."""
        return self.base.global_size

    def all_finite(self, values):
        """Whether every value of every species is finite (on every rank)."""
        return self.base.all_finite(values)

    # -- densities -------------------------------------------------------------------------
    def check_density(self, rho, name="rho0"):
        """``rho`` as a float array after checking that it is a density of the species: the
        shape ``(S, *base.shape)``, finite, ≥ 0 in every species (a negative value names
        its species) and of positive total mass (a species may be empty)."""
        rho = np.asarray(rho, dtype=float)
        if rho.shape != self.shape:
            raise ValueError(f"{name} has shape {rho.shape} but the species {self.names} on {self.base!r} need "
                             f"shape {self.shape}: one density of the base's shape {tuple(self.base.shape)} per "
                             f"species (e.g. species.initial_density([f_1, …, f_S]))")
        if not self.all_finite(rho):
            raise ValueError(f"{name} holds NaN or infinite values: a density must be finite")
        for species, part in zip(self.names, rho):
            lowest = self.base.minimum(part)
            if lowest < 0:
                raise ValueError(f"{name} has negative values in species {species!r} (min {lowest:.3g}): each "
                                 "species' density must be >= 0")
        if not self.integrate(rho) > 0:
            raise ValueError(f"{name} has zero mass in every species: give a density with a positive integral")
        return rho

    def initial_density(self, fs):
        """The densities of the callables ``fs`` (one per species, in the order of
        :attr:`names`, or a mapping name → callable) on the base, stacked: an array of
        :attr:`shape`."""
        if isinstance(fs, collections.abc.Mapping):
            if set(fs) != set(self.names):
                raise ValueError(f"Species: initial_density needs one function per species {self.names}, got "
                                 f"{tuple(fs)}")
            fs = [fs[name] for name in self.names]
        fs = list(fs) if isinstance(fs, collections.abc.Iterable) else [fs]
        if len(fs) != len(self.names):
            raise ValueError(f"Species: initial_density needs one function per species {self.names}, got {len(fs)}")
        return np.stack([self.base.initial_density(f) for f in fs])

    def check_problem(self, energy, jacobian=False, species=None):
        """The energy's :attr:`~solver.energies.base.Energy.species` must be :attr:`names`
        (or None); then the base's checks (:meth:`Discretization.check_problem`)."""
        self.base.check_problem(energy, jacobian, species=self.names)

    # -- the spatial operators: the base's, species by species -----------------------------
    def _each(self, values):
        """``values`` as one array per species (a number or an array broadcast to :attr:`shape`)."""
        return np.broadcast_to(values, self.shape)

    def rate(self, rho, xi, second_order=True, out=None):
        """The base's rate in each species, Lᵏ = L(ρᵏ, ξᵏ)."""
        out = np.empty(self.shape) if out is None else out
        for part, xi_part, rate in zip(rho, self._each(xi), out):
            self.base.rate(part, xi_part, second_order, out=rate)
        return out

    def step_limits(self, rho, xi, diffusivity):
        """The smaller over the species of the base's (transport, parabolic) limits."""
        limits = [self.base.step_limits(part, xi_part, diffusivity) for part, xi_part in zip(rho, self._each(xi))]
        return tuple(np.min(limits, axis=0))

    def rate_and_step_limits(self, rho, xi, diffusivity):
        """(:meth:`rate`, the smaller over the species of the base's limits), each species in
        one pass of the base's ``rate_and_step_limits``."""
        rates, limits = zip(*(self.base.rate_and_step_limits(part, xi_part, diffusivity)
                              for part, xi_part in zip(rho, self._each(xi))))
        return np.stack(rates), tuple(np.min(limits, axis=0))

    def rkl2_stage(self, current, xi, previous, start, start_rate, coefficients, out):
        """The base's RKL2 stage in each species (``out`` C-contiguous); the negative values
        of all species."""
        return sum(self.base.rkl2_stage(*parts, coefficients, out_part)
                   for *parts, out_part in zip(current, self._each(xi), previous, start, start_rate, out))

    def implicit_rate(self, rho, xi):
        """The base's implicit rate in each species."""
        return np.stack([self.base.implicit_rate(part, xi_part) for part, xi_part in zip(rho, self._each(xi))])

    def jacobian(self, rho, xi, curvature, dt, second_order=False):
        """I − dt ∂L/∂ρ: block diagonal, the base's matrix of each species (the species
        are coupled by no flux), in the order of a density raveled (species first)."""
        blocks = [self.base.jacobian(part, xi_part, curvature_part, dt, second_order)
                  for part, xi_part, curvature_part in zip(rho, self._each(xi), self._each(curvature))]
        return scipy.sparse.block_diag(blocks, format=blocks[0].format)

    # -- what the energies ask for ------------------------------------------------------------
    def kernel_convolution(self, W):
        """Refused: a convolution W ∗ ρ would have to say how the species interact (within
        each, or all together); an energy that needs one convolves on :attr:`base`
        (``species.base.kernel_convolution(W)``) and combines the species itself."""
        raise ValueError(f"{self!r}: an interaction (kernel convolution) on several species is not defined here; "
                         f"an energy that needs one must name its species and convolve each on the base "
                         f"(species.base.kernel_convolution)")

    # -- results ---------------------------------------------------------------------------
    def whole(self, values):
        """``values`` (…, S, *base.shape) of every rank with each species as the base gathers it."""
        return self.base.whole(values)

    def part(self, values):
        """The inverse of :meth:`whole`: this rank's part of each species, as the base takes it."""
        return self.base.part(values)

    @property
    def ranks(self):
        """The number of MPI ranks the base's points are split over."""
        return self.base.ranks

    def sums(self, values):
        """The base's elementwise sums over the ranks."""
        return self.base.sums(values)

    def write_results(self, folder, times, densities):
        """The base's files of each species in a folder of the species' name (a mesh:
        ``plus/densities.xdmf``, …; none for a grid, which writes no files of its own); the
        base's arrays and ``species`` (the names)."""
        files, arrays = {}, {}
        for k, name in enumerate(self.names):
            Path(folder, name).mkdir(exist_ok=True)
            own, arrays = self.base.write_results(Path(folder, name), times, np.asarray(densities)[:, k])
            files.update({f"{name}/{file}": f"species {name}: {what}" for file, what in own.items()})
            if not own:
                Path(folder, name).rmdir()  # an empty folder the manifest cannot list: the next run would refuse it
        return files, {**arrays, "species": np.array(self.names)}
