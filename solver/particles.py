"""The particle simulator: m particles (neurons) θ_i with weights 1/m, moved by the same
energy objects as the PDE.

Time is the PDE's clock: dθ_i/dt = −∇θF'(μ_m)(θ_i) with μ_m = Σ_i w_i δ_θi, and a step
of size ε advances time by ε (t = kε). Gradient descent (``method="gd"``) takes the
explicit Euler step θ ← θ + ε v(θ) with the full data; SGD (``"sgd"``) takes v from a
fresh mini-batch each step (terms that can draw one, via ``sample_batch``). Each term
declares how it acts on particles (``Energy.particles``): its velocity moves them, or it
becomes Langevin noise √(2Tε)·g, g ~ N(0, I), at its temperature T (noisy (S)GD at
temperature τ is the particle side of a PDE with an ``Entropy(τ)`` term), or it has no
particle version (``PorousMedium``) and the run is refused. With a ``domain``, every step
ends with the projection onto it (projected SGD).

A run that diverges stops with a :class:`SimulationError`: a non-finite particle, or
particles gone :data:`RUNAWAY_FACTOR` times farther out (max |θ|) than they started while
the energy of the particle measure (of the terms that move them) rose above its start by
:data:`ENERGY_RISE_FACTOR` times its size (gradient descent on a stable step lowers it);
where a term has no particle energy, the distance alone, beyond :data:`RUNAWAY_LIMIT`.
"""

import dataclasses
import time

import numpy as np
from tqdm.auto import tqdm

from .domains import Annulus, Ball, Box, Sphere  # noqa: F401  (the domains particles are projected onto)
from .energies import Sum
from .timeloop import SimulationError, check_times

RUNAWAY_FACTOR = 1e3
"""Particles this many times farther out than the start (max |θ|, at least 1) have the
energy of their measure checked, and again at each further factor 10."""
ENERGY_RISE_FACTOR = 1e3
"""A particle energy above E_0 + this × max(|E_0|, tiny) at such a check stops the run."""
RUNAWAY_LIMIT = 1e12
"""Without a particle energy to check, particles this many times farther out stop the run."""


@dataclasses.dataclass
class Trajectory:
    """What :func:`simulate` returns: ``theta[k]`` (m, d) at the save times ``t[k]``."""

    t: np.ndarray
    theta: np.ndarray
    weights: np.ndarray
    steps: int
    wall_time: float


def _split(energy):
    """(terms that move particles, total temperature of the noise terms), as the terms declare
    (``Energy.particles``)."""
    terms = energy.terms if isinstance(energy, Sum) else [energy]
    for term in terms:
        if term.particles is None:
            raise ValueError(f"simulate: a {type(term).__name__} term has no particle version (it needs a density)")
    moving = [term for term in terms if term.particles == "velocity"]
    return moving, sum(term.temperature for term in terms if term.particles == "noise")


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"simulate: {name} must be a positive integer, got {value!r}")
    return int(value)


def simulate(energy, theta0, t_span, *, step, method="gd", batch_size=None, domain=None,
             save_at=None, rng=None, max_steps=10_000_000, progress=None):
    """Run (S)GD on m particles from ``theta0`` over ``t_span`` with steps ``step`` = ε.

    Parameters
    ----------
    energy : Energy
        Terms with ``particle_velocity``, or that are noise (``Entropy``; see module doc).
    theta0 : array (m, d)
        Initial particles, weights 1/m.
    t_span : (t0, t1)
    step : float
        ε > 0. Each save time must be a whole number of steps from t0 (to 1e-9
        relative); the run ends at the last save time.
    method : {"gd", "sgd"}
        SGD draws a mini-batch of each term with data (``sample_batch``) every step; the
        other terms move by their whole velocity; an energy without data is refused.
    batch_size : int
        Mini-batch size for SGD.
    domain : Box, Ball, Annulus, Sphere or solver.fem.Mesh, optional
        Compact domain; particles are projected onto it after each step and must start in
        it. A 2D mesh (serial runs) is the polygon its boundary edges enclose; on a
        Sphere the projection is the normalization (a retraction: projected GD on S²).
    save_at : sequence of float, optional
        Default (t0, t1).
    rng : numpy.random.Generator or int
        The only source of randomness (SGD batches, noise).
    max_steps : int
        Refuse (ValueError), before the first step, a run of more steps than this (as
        :func:`solver.solve`'s ``max_steps``): a step far too small for its span.
    progress : bool, optional
        A tqdm bar; by default only in a terminal and after a second.
    """
    theta = np.array(theta0, dtype=float)
    if theta.ndim != 2 or len(theta) == 0 or not np.all(np.isfinite(theta)):
        raise ValueError(f"simulate: theta0 must be a finite (m, d) array with m >= 1, got shape {theta.shape}")
    step = float(step)
    if not np.isfinite(step) or step <= 0:
        raise ValueError(f"simulate: step must be finite and > 0, got {step}")
    if method not in ("gd", "sgd"):
        raise ValueError(f"simulate: method must be 'gd' or 'sgd', got {method!r}")
    if method == "sgd":
        batch_size = _positive_int(batch_size, "batch_size")
    elif batch_size is not None:
        raise ValueError(f"simulate: batch_size={batch_size!r} is for method 'sgd', not {method!r}: it would not be "
                         "used")
    t0, _, save_times = check_times(t_span, save_at)
    counts = (save_times - t0) / step
    if np.round(counts[-1]) > _positive_int(max_steps, "max_steps"):
        raise ValueError(f"simulate: {t_span} in steps of {step} is {counts[-1]:.3g} steps, more than max_steps = "
                         f"{max_steps}; take a longer step (or raise max_steps)")
    if np.any(np.abs(counts - np.round(counts)) > 1e-9 * np.maximum(counts, 1)):
        raise ValueError(f"simulate: every save time must be a whole number of steps {step} from t0 = {t0}")
    moving, tau = _split(energy)
    if method == "sgd" and not any(hasattr(term, "sample_batch") for term in moving):
        raise ValueError(f"simulate: method 'sgd' draws mini-batches of a term's data, and no term of {energy!r} has "
                         "data (a network or bump risk); use method 'gd'")
    for term in moving:
        if hasattr(term, "dim") and theta.shape[1] != term.dim:
            raise ValueError(f"simulate: theta0 has dimension {theta.shape[1]} but {term!r} needs {term.dim}")
    for term in moving:
        if hasattr(term, "check_particles"):  # e.g. the balanced start of a lifted energy
            term.check_particles(theta)
        if hasattr(term, "check_step"):
            term.check_step(step, batch_size if method == "sgd" else None)
    if domain is not None and domain.dim != theta.shape[1]:
        raise ValueError(f"simulate: the domain {domain!r} is {domain.dim}D but the particles have dimension "
                         f"{theta.shape[1]}")
    if domain is not None and not np.all(domain.contains(theta)):
        outside = np.flatnonzero(~domain.contains(theta))
        raise ValueError(f"simulate: {len(outside)} particles start outside {domain!r}, e.g. {theta[outside[0]]}")
    rng = np.random.default_rng(rng)
    weights = np.full(len(theta), 1 / len(theta))
    targets = np.round(counts).astype(int)
    runaway = Runaway(moving, theta, weights)
    saved, k, start = [], 0, time.perf_counter()
    with tqdm(total=int(targets[-1]), disable=None if progress is None else not progress, delay=1.0,
              unit="step") as bar:
        for target in targets:
            while k < target:
                velocity = sum(_velocity(term, theta, weights, method, batch_size, rng) for term in moving)
                new = theta + step * velocity
                if tau > 0:
                    new += np.sqrt(2 * tau * step) * rng.standard_normal(theta.shape)
                if domain is not None:
                    new = domain.project(new)
                problem = runaway.check(new)
                if problem:
                    partial = Trajectory(np.append(save_times[: len(saved)], t0 + k * step),
                                         np.array([*saved, theta]), weights, k, time.perf_counter() - start)
                    raise SimulationError(
                        f"simulate: {problem} at step {k + 1} (t = {t0 + (k + 1) * step:.6g}); "
                        f"the run stopped there: see .partial; try a smaller step", partial)
                theta, k = new, k + 1
                bar.update(1)
            saved.append(theta.copy())
    return Trajectory(save_times, np.array(saved), weights, k, time.perf_counter() - start)


class Runaway:
    """Tells a diverging run: non-finite particles, or particles far beyond their start
    whose energy rose far above its start (see the module doc)."""

    def __init__(self, moving, theta, weights):
        self.moving, self.weights = moving, weights
        self.start = max(float(np.abs(theta).max()), 1.0)
        self.energy0 = self.energy(theta)
        self.threshold = RUNAWAY_FACTOR * self.start

    def energy(self, theta):
        """The particle energy of the moving terms, None if one of them has none (a potential
        given by its values on a grid, say)."""
        try:
            return sum(term.particle_energy(theta, self.weights) for term in self.moving)
        except NotImplementedError:
            return None

    def check(self, theta):
        """What is wrong with the particles ``theta`` (a phrase), or None."""
        radius = float(np.abs(theta).max())
        if not np.isfinite(radius):
            return "non-finite particles"
        if radius <= self.threshold:
            return None
        self.threshold *= 10
        far = f"max |θ| = {radius:.3g} ({radius / self.start:.3g} times the start)"
        if self.energy0 is None:
            return f"diverging: {far}" if radius > RUNAWAY_LIMIT * self.start else None
        energy = self.energy(theta)
        allowed = ENERGY_RISE_FACTOR * max(abs(self.energy0), np.finfo(float).tiny)
        if energy is not None and energy > self.energy0 + allowed:
            return f"diverging: {far}, particle energy {energy:.3g} from {self.energy0:.3g} at the start"
        return None


def _velocity(term, theta, weights, method, batch_size, rng):
    if method == "sgd" and hasattr(term, "sample_batch"):
        return term.particle_velocity(theta, weights, batch=term.sample_batch(rng, batch_size))
    return term.particle_velocity(theta, weights)
