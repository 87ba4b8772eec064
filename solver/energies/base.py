"""The energy interface shared by the grid solver, the mesh solver and the particles.

A discretization (a :class:`~solver.grid.Grid` or a :class:`~solver.fem.Mesh`) provides
``points`` (an array of shape ``rho.shape + (d,)``), ``weights`` (quadrature weights, the
shape of ``rho``) and ``integrate(values)``, and is passed to every call that concerns
densities. Densities are nodal/cell values of a density. Fast paths a discretization may
offer (``kernel_convolution``, ``cell_average_stencil``, ``separable_axes``) are asked
for by name, never by the discretization's type. A particle measure is μ_m = Σ_i w_i δ_θi,
given as ``theta`` (m, d) and ``weights`` (m,).
"""

import functools
import weakref

import numpy as np

_MISSING = object()


def particle_weights(weights, theta, name, masses=False):
    """The weights w_j of a particle measure Σ_j w_j δ_θj as a C-contiguous float array,
    after checking that there is one per row of ``theta`` (the Numba kernels check no
    bounds) and, if ``masses``, that each is finite and ≥ 0; ``name`` starts the error."""
    weights = np.asarray(weights, dtype=float)  # a number stays of shape (), not (1,)
    if weights.shape != (len(theta),):
        raise ValueError(f"{name}: weights of shape {weights.shape} for {len(theta)} particles θ_j: give one weight "
                         f"per row of θ, shape ({len(theta)},)")
    if masses:
        wrong = np.flatnonzero(~(np.isfinite(weights) & (weights >= 0)))
        if wrong.size:
            j = int(wrong[0])
            raise ValueError(f"{name}: weights must be finite and >= 0 (masses), got weights[{j}] = {weights[j]:g}")
    return np.ascontiguousarray(weights)


def once_per_discretization(method):
    """Decorate ``method(self, discretization)`` of an energy term so that it runs once per
    term and discretization and is reused after (grid tables, kernel transforms, stencils).

    The values are kept in the term, weakly keyed by the discretization: a term used on
    many grids keeps none of them alive, and a value must not refer to its discretization.
    """
    name = method.__name__

    @functools.wraps(method)
    def cached(self, discretization):
        caches = self.__dict__.setdefault("_per_discretization", {})
        values = caches.get(name)
        if values is None:
            values = caches[name] = weakref.WeakKeyDictionary()
        value = values.get(discretization, _MISSING)
        if value is _MISSING:
            value = values[discretization] = method(self, discretization)
        return value

    return cached


class Energy:
    """A term F(ρ) of a free energy; terms add with ``+`` into a :class:`Sum`.

    On grids and meshes (the discretization ``grid`` is an argument of every call)
    subclasses implement :meth:`value` and :meth:`first_variation`. Local terms (∫ f(ρ))
    also give the diffusivity max ρ f''(ρ) and f''(ρ) used by the adaptive explicit step
    and the Newton Jacobian of the implicit step; :meth:`check` raises early for a
    discretization the term cannot use. No method needs another to be called first.

    On particles, ``particles`` declares how the term acts on them:

    - ``"velocity"`` (the default): it moves them by :meth:`particle_velocity`
      (−∇θF'(μ_m)(θ_i)), and :meth:`particle_energy` is F(μ_m);
    - ``"noise"``: it becomes Langevin noise √(2Tε)·g at the temperature
      :attr:`temperature` (the entropy τ∫ρ log ρ, T = τ);
    - ``None``: it has no particle version (it needs a density, as ∫ρ^m does).

    ``local`` is False for terms whose F' at a point sums over every point (interaction,
    network risks, bumps). ``distributed`` says whether the term runs on a discretization
    whose points are split over MPI ranks (a mesh under ``mpirun``): local terms do; a
    nonlocal term does when it adds the other ranks' parts through the discretization
    (``sums``, ``gather``, ``kernel_convolution``) and says so by setting it True; the others
    are refused there.

    ``reaction`` is the rate β ≥ 0 of the Wasserstein–Fisher–Rao flow of the term,

        ∂tρ = ∇·(ρ∇F'(ρ)) − βF'(ρ)ρ,

    along which mass is not conserved but balanced, d/dt ∫ρ = −β∫F'ρ, and the energy
    still decreases, dF/dt = −∫ρ|∇F'|² − β∫F'²ρ ≤ 0 (the lifted energies of 2-homogeneous
    units: transport on the sphere plus the growth of the radii); 0, the default, is the
    Wasserstein flow. ``species`` names the species a term needs when the density is
    several densities on one base (:class:`solver.species.Species`), as a tuple of str;
    None (the default) for a term that acts on any density (a local term acts on each
    species alike).
    """

    local = True
    particles = "velocity"
    temperature = 0.0
    """The temperature T of a ``particles = "noise"`` term."""
    reaction = 0.0
    """β of the reaction −βF'ρ (0: a Wasserstein flow, mass conserved)."""
    species = None
    """The names of the species the term needs (a tuple of str), or None: any density."""

    @property
    def distributed(self):
        """Whether the term runs on points split over MPI ranks (default: local terms do)."""
        return self.local

    def value(self, rho, grid):
        """F(ρ) as a float."""
        raise NotImplementedError(f"{type(self).__name__} defines no value(rho, grid): an energy gives F(ρ), a number")

    def first_variation(self, rho, grid):
        """F'(ρ) = δF/δρ at the cells/nodes, an array of ``rho.shape``."""
        raise NotImplementedError(f"{type(self).__name__} defines no first_variation(rho, grid): an energy gives "
                                  "F'(ρ), an array of rho's shape")

    def value_and_first_variation(self, rho, grid):
        """Both at once; nonlocal terms override it to share their convolution."""
        return self.value(rho, grid), self.first_variation(rho, grid)

    def max_diffusivity(self, rho, grid):
        """max ρ f''(ρ) on ``grid``: the diffusion coefficient that limits the explicit step
        (0 if none)."""
        return 0.0

    def second_variation_diagonal(self, rho, grid):
        """∂F'_i/∂ρ_i on ``grid``: f''(ρ) of a local term, an array of ``rho.shape`` or a
        number (0 for terms whose first variation ignores the local ρ).

        The implicit scheme uses it for its Newton Jacobian; the coupling of nonlocal terms
        is left to the Newton iteration (an inexact Newton method).
        """
        return 0.0

    def particle_velocity(self, theta, weights, batch=None):
        """−∇θ F'(μ_m)(θ_i) for the particle measure μ_m = Σ_i w_i δ_θi, shape (m, d).

        ``batch`` is a mini-batch from ``sample_batch(rng, size)`` for SGD, for terms that
        average over data (the others ignore it).
        """
        raise NotImplementedError(self._no_particle_version("does not move particles"))

    def particle_energy(self, theta, weights):
        """F(μ_m) of the particle measure μ_m = Σ_i w_i δ_θi, a float; its gradient in θ_i
        is −w_i times :meth:`particle_velocity`."""
        raise NotImplementedError(self._no_particle_version("has no energy of a particle measure"))

    def _no_particle_version(self, what):
        name = type(self).__name__
        if self.particles == "noise":
            return f"{name} {what}: on particles it is Langevin noise at temperature {self.temperature:g}"
        if self.particles is None:
            return f"{name} {what}: it has no particle version (it needs a density)"
        return f"{name} {what}"

    def check(self, grid):
        """Raise ``ValueError`` if the term cannot be evaluated on ``grid``."""

    def __add__(self, other):
        if not isinstance(other, Energy):
            return NotImplemented
        return Sum([*_terms(self), *_terms(other)])


def _terms(energy):
    return energy.terms if isinstance(energy, Sum) else [energy]


class Sum(Energy):
    """F = Σ_k F_k: every question is answered by summing the terms' answers, but for
    :attr:`reaction` and :attr:`species`, which the terms must agree on, and :attr:`local`
    and :attr:`distributed`, which the sum is if all its terms are."""

    def __init__(self, terms):
        self.terms = list(terms)

    @property
    def local(self):
        """Whether every term is local (F' at a point depends on ρ there only)."""
        return all(term.local for term in self.terms)

    @property
    def distributed(self):
        """Whether every term runs on points split over MPI ranks."""
        return all(term.distributed for term in self.terms)

    def __repr__(self):
        return " + ".join(map(repr, self.terms))

    @property
    def reaction(self):
        """The common nonzero β of the terms (0 if none has one): a term without reaction
        (β = 0) joins any flow, F' of the sum then drives the reaction; ``ValueError`` if
        two terms give different nonzero β."""
        return self._common("reaction", lambda beta: beta != 0, 0.0)

    @property
    def species(self):
        """The common species names of the terms that need some (None if none does);
        ``ValueError`` if two terms name different species."""
        return self._common("species", lambda names: names is not None, None)

    def _common(self, name, given, default):
        """The one value of the attribute ``name`` over the terms for which ``given`` holds,
        else ``default``; ``ValueError`` if they differ."""
        found = []  # (value, the first term that has it)
        for term in self.terms:
            value = getattr(term, name)
            if given(value) and all(value != other for other, _ in found):
                found.append((value, term))
        if len(found) > 1:
            raise ValueError(f"the terms of {self!r} disagree on {name}: "
                             + ", ".join(f"{term!r} has {value!r}" for value, term in found))
        return found[0][0] if found else default

    def value(self, rho, grid):
        return sum(term.value(rho, grid) for term in self.terms)

    def first_variation(self, rho, grid):
        return sum(term.first_variation(rho, grid) for term in self.terms)

    def value_and_first_variation(self, rho, grid):
        pairs = [term.value_and_first_variation(rho, grid) for term in self.terms]
        return sum(v for v, _ in pairs), sum(xi for _, xi in pairs)

    def max_diffusivity(self, rho, grid):
        return sum(term.max_diffusivity(rho, grid) for term in self.terms)

    def second_variation_diagonal(self, rho, grid):
        return sum(term.second_variation_diagonal(rho, grid) for term in self.terms)

    def particle_velocity(self, theta, weights, batch=None):
        """The sum over the terms, but for the noise terms (not velocities); a term without a
        particle version raises. A ``batch`` goes to every term (one term that averages over
        data, as in SGD on a regularized risk)."""
        return sum(term.particle_velocity(theta, weights, batch) for term in self.terms if term.particles != "noise")

    def particle_energy(self, theta, weights):
        """The sum over all the terms: raises if one of them has no energy of a particle
        measure (an entropy: atoms have none)."""
        return sum(term.particle_energy(theta, weights) for term in self.terms)

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
