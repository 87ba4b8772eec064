r"""The time loop of ∂tρ = ∇·(ρ∇F'(ρ)) − βF'(ρ)ρ on any
:class:`~solver.discretization.Discretization`: steppers of one interface, the table of
schemes, and one step controller (:func:`solve`).

Time is the clock of the gradient flow: one unit of PDE time is one unit of particle time
(dθ/dt = −∇F'(μ)(θ)).

A stepper advances the semi-discrete system dρ/dt = L(ρ, ξ) − βξρ, ξ = F'(ρ), of the
discretization by one step (β = ``energy.reaction``, 0 but for Wasserstein–Fisher–Rao
flows, see :class:`SSPRK2`): :meth:`Stepper.propose` gives the longest step its stability allows at ρ, and
:meth:`Stepper.attempt` takes a step dt and returns ρⁿ⁺¹, or None to reject it. The
controller chooses dt = min(proposal, cap, ``max_step``, time to the next save), lands on
the save times exactly, and rejects a step whose result is negative somewhere (never
clipped), or that raises the discrete energy F(ρ) beyond round-off (the semi-discrete
schemes dissipate it exactly). A rejection sets the cap to half the rejected step; an
accepted step doubles it, except in the ``CAUTIOUS_STEPS`` accepted steps after a
rejection, where it grows by ``CAUTIOUS_GROWTH`` and stays below the rejected step divided
by that factor: a scheme that fails at some step size is not sent back to it at once
(without that, an implicit run that fails at dt and succeeds at dt/2 rejected every other
step). A step too short to
move t (t + dt == t, or dt < ``STEP_FLOOR`` (t1 − t0)) stops the run with one line that
names the time, the step and what bounded it.

Without reaction (β = 0) every scheme conserves mass to round-off (the fluxes cancel in
pairs). With it the mass is balanced instead, d/dt ∫ρ = −β∫ξρ: the explicit scheme (the
only one that takes β ≠ 0) records the mass its step added, exactly as the step computed
it, and the history's ``source`` sums them, so that mass − mass₀ − source stays at
round-off (:meth:`Solution.invariants`).

Every decision (rejection, the energy test, stopping on a non-finite value) is taken on
the discretization's global reductions, so that under MPI every rank takes the same one.
"""

import abc
import contextlib
import dataclasses
import functools
import numbers
import sys
import time

import numpy as np
from threadpoolctl import ThreadpoolController
from tqdm.auto import tqdm

JACOBIAN_FLOOR = 1e-8  # relative density at which the Newton Jacobian takes f'' near vacuum
ENERGY_RTOL = 1e-12  # round-off allowance for the energy test, relative to Σ|ρ ξ| w_i
ENERGY_ULPS = 16  # and in units of round-off of |F| (see energy_tolerance)
RKL_MAX_STAGES = 40  # stages of the longest super-step (a step of 410 forward-Euler limits)
STEP_FLOOR = 1e-14  # the shortest step, relative to t1 − t0: below it, or where t + dt == t, the run stops
CAUTIOUS_GROWTH = 1.25  # per accepted step, for CAUTIOUS_STEPS accepted steps after a rejection
CAUTIOUS_STEPS = 20
NEWTON_FRACTION = 1e-2  # bdf2's Newton stops at this fraction of the error it allows (see BDF2.newton)
MASS_ULPS = 4  # and with the mass kept to this many units of round-off


class SimulationError(ValueError):
    """A run produced a non-finite value; ``partial`` holds what was computed up to the
    last finite state (the saves reached, then that state)."""

    def __init__(self, message, partial):
        super().__init__(message)
        self.partial = partial


@dataclasses.dataclass
class Solution:
    """What :func:`solve` returns.

    Attributes
    ----------
    t : array (k,)
        The save times.
    rho : array (k, *grid.shape)
        The densities at the save times.
    history : dict of arrays
        One entry per accepted step (and the initial state): ``t``, ``dt``, ``energy``,
        ``mass``, ``min`` (min ρ), ``source`` (the mass the reaction added since the
        start; 0 without reaction).
    accepted, rejected : int
        Step counts; a step is rejected when it would make ρ negative, raise the
        energy, or (implicit) when Newton does not converge; it is retried shorter.
    wall_time : float
        Seconds spent in :func:`solve`.
    newton_iterations : int
        Newton iterations of the implicit scheme (0 for explicit schemes).
    """

    grid: object
    energy: object
    scheme: str
    t: np.ndarray
    rho: np.ndarray
    history: dict
    accepted: int
    rejected: int
    wall_time: float
    newton_iterations: int = 0

    def invariants(self):
        """Worst values over the accepted steps: ``mass_drift`` = max |mass − mass₀ − source|
        / mass₀ (the mass balance, mass conservation without reaction), ``min`` (of ρ) and
        ``energy_rise`` (largest one-step increase of F, relative to max |F|; 0 when F
        never rose)."""
        h = self.history
        scale = max(np.abs(h["energy"]).max(), np.finfo(float).tiny)
        return {
            "mass_drift": float(np.abs(h["mass"] - h["mass"][0] - h["source"]).max() / h["mass"][0]),
            "min": float(h["min"].min()),
            "energy_rise": float(max(np.diff(h["energy"]).max(initial=0.0), 0.0) / scale),
        }


HISTORY = ("t", "dt", "energy", "mass", "min", "source")  # the keys of Solution.history, in the loop's order


@dataclasses.dataclass
class State:
    """What the time loop of :func:`solve` carries from one accepted step to the next.

    ``solve(..., resume=state)`` continues from it bit for bit: ρ, t and the adaptive
    step cap come back exactly, and F(ρ), F'(ρ) are recomputed from ρ (deterministically).

    Attributes
    ----------
    t : float
        The time reached.
    rho : array
        The density at ``t``.
    cap : float
        The current bound on the step (half the rejected step after a rejection, then grown
        after each accepted step, see the module doc).
    accepted, rejected : int
        Step counts so far.
    history : dict of lists
        As :attr:`Solution.history`, up to ``t``.
    saved : list of arrays
        The densities at the save times reached so far.
    saved_at : tuple of float or None
        Those save times (None in a state written before they were kept, or built without
        them).
    last_rejected : float
        The last rejected step (∞ before the first rejection).
    since_rejection : int
        Accepted steps since then (the cap grows cautiously for ``CAUTIOUS_STEPS`` of them).
    newton_iterations : int
        Newton iterations so far (implicit scheme).
    """

    t: float
    rho: np.ndarray
    cap: float
    accepted: int
    rejected: int
    history: dict
    saved: list
    last_rejected: float = np.inf
    since_rejection: int = CAUTIOUS_STEPS
    newton_iterations: int = 0
    saved_at: tuple = None


def check_times(t_span, save_at):
    """Validate ``t_span`` and ``save_at``; return (t0, t1, save times as an array)."""
    try:
        t0, t1 = (float(t) for t in t_span)
    except (TypeError, ValueError):
        raise ValueError(f"t_span must be a pair (t0, t1), got {t_span!r}") from None
    if not (np.isfinite(t0) and np.isfinite(t1)) or t1 <= t0:
        raise ValueError(f"t_span must be finite with t0 < t1, got ({t0}, {t1}): an empty or reversed span")
    save = np.array([t0, t1] if save_at is None else save_at, dtype=float).ravel()
    if save.size == 0 or not np.all(np.isfinite(save)) or save.min() < t0 or save.max() > t1:
        raise ValueError(f"save_at must be finite times inside t_span [{t0}, {t1}], got {save_at!r}")
    if np.any(np.diff(save) <= 0):
        raise ValueError(f"save_at must be increasing, without repeats (one density is kept per entry), got "
                         f"{save_at!r}")
    return t0, t1, save


def one_blas_thread():
    """A context in which BLAS (NumPy's matrix products) runs on one thread.

    The time loops alternate Numba's parallel kernels with BLAS products (the network
    risks' feature-matrix products, integrals); with both thread pools spinning for work
    on a 2-core machine, the network presets' PDE runs took 1.6 to 4.5 times longer than
    with one BLAS thread (measured on problems a, b, c)."""
    return blas_controller(len(sys.modules)).limit(limits=1, user_api="blas")


@functools.lru_cache(maxsize=1)
def blas_controller(modules):
    """The thread pools (BLAS, OpenMP) loaded in this process, found once for a number of
    imported ``modules``: finding them inspects every loaded shared library, 3–20 ms with
    DOLFINx loaded, which every :func:`solve` paid (on 2 MPI ranks as on 1); a module
    imported since may have loaded another BLAS, so they are found again then."""
    return ThreadpoolController()


# ------------------------------------------------------------------------------- steppers
class Stepper(abc.ABC):
    """One scheme's step for :func:`solve`, on any discretization ``grid``.

    The controller calls :meth:`propose` at the accepted state (ρ, ξ = F'(ρ)), then
    :meth:`attempt` with a step no longer than the proposal (nor than :attr:`ceiling`).

    Attributes
    ----------
    summary : str
        One line on the scheme (listed by ``wgf problems``).
    needs_jacobian : bool
        Whether the scheme asks the discretization for its Newton matrix.
    options : tuple of str
        The options of :func:`solve` it takes ("cfl", "max_step", "dt" or "tol"); the others
        are refused (:func:`check_scheme_options`).
    ceiling : float
        The largest step the controller may grow its cap to (∞: no bound of the scheme's own).
    newton_iterations : int
        Newton iterations so far (0 for explicit schemes).
    reacts : bool
        Whether the scheme takes a reaction β = ``energy.reaction`` ≠ 0 (the others refuse it).
    reaction : float
        β.
    source : float
        The mass the reaction added in the last step :meth:`attempt` returned (0 without).
    stage_minimum : float
        This rank's minimum of the intermediate states of the last :meth:`attempt` that the
        controller must find ≥ 0 on every rank for the step to stand (∞: none, the scheme
        checked its stages itself). The controller reduces it with the new state's summary,
        in the same collective.
    """

    summary = ""
    stage_minimum = np.inf
    needs_jacobian = False
    reacts = False
    options = ("cfl", "max_step")  # the options of solve this scheme takes (see check_scheme_options)

    def __init__(self, energy, grid):
        grid.check_problem(energy, jacobian=self.needs_jacobian)
        self.energy, self.grid = energy, grid
        self.ceiling = np.inf
        self.newton_iterations = 0
        self.reaction, self.source = float(energy.reaction), 0.0
        if not (np.isfinite(self.reaction) and self.reaction >= 0):
            raise ValueError(f"{energy!r}: the reaction β must be finite and >= 0 (the reaction −βF'ρ dissipates F "
                             f"only for β >= 0), got {self.reaction}")
        if self.reaction and not self.reacts:
            raise ValueError(f"{energy!r} has a reaction (β = {self.reaction:g}: a Wasserstein–Fisher–Rao flow), "
                             f"which the {type(self).__name__} scheme does not take; use scheme 'explicit'")

    @classmethod
    def from_options(cls, energy, grid, *, cfl, dt, t_span, tol=None):
        """The stepper for :func:`solve`'s options (explicit schemes: ``cfl``)."""
        return cls(energy, grid, cfl)

    @abc.abstractmethod
    def propose(self, rho, xi):
        """The longest step the scheme's stability allows at (ρ, ξ), ∞ if it has no bound."""

    @abc.abstractmethod
    def attempt(self, rho, xi, dt):
        """ρⁿ⁺¹ after a step dt from the state of the last :meth:`propose`, or None to reject it."""


class SSPRK2(Stepper):
    """Heun's method, the two-stage strong-stability-preserving Runge–Kutta (SSP-RK2),

        ρ¹ = ρ + dt L_β(ρ),   ρⁿ⁺¹ = ½ ρ + ½ (ρ¹ + dt L_β(ρ¹)),   L_β(ρ) = L(ρ, ξ) − βξρ,

    with L the discretization's (second-order) rate, ξ = F'(ρ) and β = ``energy.reaction``
    (the Wasserstein–Fisher–Rao flow; β = 0 the Wasserstein one). A convex combination of
    forward-Euler steps, so positive when both are within the forward-Euler limit (the
    smaller of the discretization's ``step_limits``, times ``cfl``); the step is chosen by
    the limit at ρ, and a negative ρ¹ or ρⁿ⁺¹ (the limit at ρ¹ being shorter) rejects it.
    Sufficient for positivity, not guaranteed: the rejection is the guarantee. Both are
    tested by the controller, in the one reduction of the new state's summary
    (:attr:`stage_minimum`): ρⁿ⁺¹ is computed even from a negative ρ¹, and discarded.

    The reaction: ρ + dt L_β = θ(ρ + (dt/θ) L) + (1 − θ) ρ(1 − dt βξ/(1 − θ)) is ≥ 0 when
    dt/θ is within the transport limit T and dt/(1 − θ) ≤ 1/(β max ξ⁺); the best θ gives
    the limit 1/(1/T + β max ξ⁺). Where ξ < 0 the reaction grows mass: positivity sets no
    bound there, accuracy does (without one, a pure growth to t = 4 took one step and
    missed e^(4β|ξ|) by a factor 5), so the limit is taken with max |ξ| in place of max ξ⁺,
    1/(1/T + β max|ξ|) (max over the whole discretization: every rank takes the same
    step). The mass changes by ∫(ρⁿ⁺¹ − ρ) = −β dt/2 (∫ξρ + ∫ξ¹ρ¹) (the transport
    fluxes cancel), kept in :attr:`source`; the energy dissipates,
    dF/dt = Σ w ξ L − β∫ξ²ρ ≤ 0, checked by the controller as for every scheme.
    """

    summary = "SSP-RK2 (Heun) with adaptive steps within the forward-Euler limits: second order, the default"
    reacts = True

    def __init__(self, energy, grid, cfl=0.9):
        if not 0 < cfl <= 1:
            raise ValueError(f"cfl must be in (0, 1], got {cfl}")
        super().__init__(energy, grid)
        self.cfl = cfl
        self.rate = None  # L(ρ) at the state of the last proposal

    def propose(self, rho, xi):
        """``cfl`` times the smaller forward-Euler limit at ρ (with the reaction's, see the
        class doc); keeps L_β(ρ) for :meth:`attempt`."""
        grid, beta = self.grid, self.reaction
        self.rate, (transport, parabolic) = grid.rate_and_step_limits(rho, xi, self.energy.max_diffusivity(rho, grid))
        if beta:
            self.rate -= beta * xi * rho
            reaction = beta * grid.maximum(np.abs(xi))  # the fastest relative change of mass by the reaction
            if reaction > 0:
                transport = 1.0 / (1.0 / transport + reaction)
        return self.cfl * min(transport, parabolic)

    def attempt(self, rho, xi, dt):
        """ρⁿ⁺¹, with this rank's min ρ¹ in :attr:`stage_minimum` (the controller rejects the
        step if ρ¹ or ρⁿ⁺¹ is negative on a rank); :attr:`source` the mass the reaction added."""
        grid, beta = self.grid, self.reaction
        stage = dt * self.rate
        stage += rho  # ρ¹ = ρ + dt L_β(ρ), with one temporary array
        self.stage_minimum = float(stage.min(initial=np.inf))
        with np.errstate(invalid="ignore", divide="ignore") if self.stage_minimum < 0 else contextlib.nullcontext():
            xi_stage = self.energy.first_variation(stage, grid)  # F' of a negative ρ¹ (NaN for ρ^m): discarded
        rate_stage = grid.rate(stage, xi_stage)
        if beta:
            rate_stage -= beta * xi_stage * stage
        new = dt * rate_stage
        new += stage
        new += rho
        new *= 0.5  # ½ρ + ½(ρ¹ + dt L_β(ρ¹)) with one temporary array: the same numbers but for subnormal ones
        if beta:
            self.source = -beta * dt / 2 * (grid.integrate(xi * rho) + grid.integrate(xi_stage * stage))
        return new


def rkl2_coefficients(stages):
    """(μ̃₁, [(μ_j, ν_j, μ̃_j, γ̃_j) for j = 2 … s]) of the s-stage RKL2 method (see :class:`RKL2`)."""
    s = stages
    b = [1 / 3, 1 / 3, 1 / 3] + [(j * j + j - 2) / (2 * j * (j + 1)) for j in range(3, s + 1)]
    w1 = 4 / (s * s + s - 2)
    rows = []
    for j in range(2, s + 1):
        mu, nu = (2 * j - 1) / j * b[j] / b[j - 1], -(j - 1) / j * b[j] / b[j - 2]
        rows.append((mu, nu, mu * w1, -(1 - b[j - 1]) * mu * w1))
    return b[1] * w1, rows


def rkl2_stages(ratio):
    """The fewest stages s whose RKL2 step is stable for ``ratio`` = dt/dt_par forward-Euler
    parabolic limits, (s² + s − 2)/4 ≥ ratio: s = ⌈√(4 ratio + 9/4) − ½⌉."""
    return int(np.ceil(np.sqrt(4 * ratio + 9 / 4) - 0.5))


class RKL2(SSPRK2):
    """Runge–Kutta–Legendre super-time-stepping, RKL2 (Meyer, Balsara and Aslam 2014):
    one step of s stages,

        Y₀ = ρ,  Y₁ = Y₀ + μ̃₁ dt L(Y₀),
        Y_j = μ_j Y_(j−1) + ν_j Y_(j−2) + (1 − μ_j − ν_j) Y₀ + μ̃_j dt L(Y_(j−1)) + γ̃_j dt L(Y₀),
        ρⁿ⁺¹ = Y_s,

    with b_j = (j² + j − 2)/(2j(j + 1)) (b₀ = b₁ = b₂ = 1/3), w₁ = 4/(s² + s − 2),
    μ_j = (2j − 1) b_j/(j b_(j−1)), ν_j = −(j − 1) b_j/(j b_(j−2)), μ̃₁ = b₁w₁, μ̃_j = μ_j w₁,
    γ̃_j = −(1 − b_(j−1)) μ̃_j; L the discretization's rate (each stage by its
    ``rkl2_stage``: on grids in the rate's own pass). Second order in time and stable for
    dt ≤ (s² + s − 2)/4 forward-Euler parabolic limits, so s ≈ 2√(dt/dt_par) stages do the
    work of dt/dt_par Euler steps: for diffusion-dominated flows (porous medium, entropy)
    far fewer rate evaluations than SSP-RK2. The transport (positivity) limit still bounds
    dt, and at most ``max_stages`` stages are used. The stages are not convex combinations
    of Euler steps, so positivity is checked, not guaranteed: a negative stage rejects the
    step, which is retried shorter. Steps short enough for s = 2 (within one Euler limit:
    nothing to gain) are SSP-RK2 steps, positive by construction, so repeated rejections
    end in the explicit scheme's steps; that matters at the edge of vacuum with an entropy
    term, where the rate jumps as soon as mass arrives.
    """

    summary = ("Runge–Kutta–Legendre super-steps of up to 40 stages: second order, far cheaper when "
               "diffusion limits the step")
    reacts = False

    def __init__(self, energy, grid, cfl=0.9, max_stages=RKL_MAX_STAGES):
        super().__init__(energy, grid, cfl)
        self.max_stages = max_stages
        self.parabolic = np.inf

    def propose(self, rho, xi):
        """The transport limit, or the parabolic one times (s² + s − 2)/4 at s = ``max_stages``."""
        self.rate, (transport, parabolic) = self.grid.rate_and_step_limits(
            rho, xi, self.energy.max_diffusivity(rho, self.grid))
        self.parabolic = self.cfl * parabolic
        s = self.max_stages
        return min(self.cfl * transport, self.parabolic * (s * s + s - 2) / 4)

    def attempt(self, rho, xi, dt):
        """ρⁿ⁺¹ after the fewest stages whose stability limit covers ``dt``, or None if a stage went negative."""
        self.stage_minimum = np.inf  # its stages are checked here; SSP-RK2's (s = 2) by the controller
        stages = rkl2_stages(dt / self.parabolic)
        if stages <= 2:
            return super().attempt(rho, xi, dt)
        first, rows = rkl2_coefficients(stages)
        grid, rate = self.grid, self.rate
        previous, current = rho, rho + first * dt * rate
        spare = [np.empty_like(rho), np.empty_like(rho)]  # Y_j is written where neither Y_(j−1) nor Y_(j−2) is
        negative = grid.minimum(current) < 0
        for mu, nu, mu_rate, gamma_rate in rows:
            if negative:
                return None
            following = spare.pop()
            negative = grid.rkl2_stage(current, self.energy.first_variation(current, grid), previous, rho, rate,
                                       np.array([mu, nu, mu_rate * dt, gamma_rate * dt]), following)
            if previous is not rho:
                spare.append(previous)  # Y_(j−2) is not needed after Y_j
            previous, current = current, following
        return None if negative else current


class BackwardEuler(Stepper):
    """Backward Euler, solved by Newton's method: G(ρ) = ρ − ρⁿ − dt L₁(ρ) = 0 with L₁ the
    discretization's ``implicit_rate`` (on grids the first-order upwind rate) and the
    Jacobian I − dt ∂L₁/∂ρ of its ``jacobian``, with ∂ξ_i/∂ρ_i = f''(ρ_i) from the local
    terms (nonlocal terms are left to the iteration: an inexact Newton method).

    The exact solution of the discrete system is positive for every dt (its matrix at
    fixed velocities is an M-matrix transposed) and, for convex F,
    F(ρⁿ⁺¹) ≤ F(ρⁿ) − dt·dissipation. Newton stops when Σ|G| w_i ≤ ``rtol`` × mass, so the
    mass moves by less than that. Near vacuum f''(ρ) may be infinite (entropy, porous
    medium with m < 2): the Jacobian takes it at max(ρ, JACOBIAN_FLOOR·max ρ), and
    iterates are projected onto ρ ≥ 0. Both only steer the iteration; its end is judged
    by the true residual. An entropy term fills vacuum at once (its exact step is positive
    everywhere), but Newton fills one more layer of vacuum cells per iteration: from a
    density with a large vacuum region, prefer the explicit scheme or a positive start.
    The step is ``dt`` (:attr:`ceiling`), shortened by the controller after a rejection.
    """

    summary = ("backward Euler with Newton and a sparse Jacobian, first order: for stiff diffusion at steps "
               "far beyond the explicit limit")
    needs_jacobian = True
    options = ("dt",)

    def __init__(self, energy, grid, dt, rtol=1e-14, max_iterations=30):
        super().__init__(energy, grid)
        self.ceiling, self.rtol, self.max_iterations = dt, rtol, max_iterations

    @classmethod
    def from_options(cls, energy, grid, *, cfl, dt, t_span, tol=None):
        """The stepper of step ``dt`` (checked by :func:`check_scheme_options`; default: a
        hundredth of ``t_span``)."""
        return cls(energy, grid, (t_span[1] - t_span[0]) / 100 if dt is None else float(dt))

    def propose(self, rho, xi):
        """No stability bound: ∞."""
        return np.inf

    def attempt(self, rho, xi, dt):
        """ρⁿ⁺¹, or None if Newton failed or the iterate is negative."""
        grid, energy = self.grid, self.energy
        mass = grid.integrate(rho)
        new = rho.copy()
        for _ in range(self.max_iterations):
            self.newton_iterations += 1
            xi_new = energy.first_variation(new, grid)
            residual = new - rho - dt * grid.implicit_rate(new, xi_new)
            if not grid.all_finite(residual):
                return None
            if grid.integrate(np.abs(residual)) <= self.rtol * mass:
                return new  # ≥ 0: ρⁿ, or projected
            # iterates stay in the domain of F'
            new = np.maximum(new - self.factor(new, xi_new, dt)(residual), 0.0)
        return None

    def jacobian(self, rho, xi, dt, second_order=False):
        """I − dt ∂L₁/∂ρ at ρ (of L₂ with ``second_order``), with f'' of the local terms at
        max(ρ, JACOBIAN_FLOOR·max ρ)."""
        return self.grid.jacobian(rho, xi, self.curvature(rho), dt, second_order)

    def factor(self, rho, xi, dt, second_order=False):
        """The solve with the matrix of :meth:`jacobian`, factored for many right-hand sides
        (the discretization's ``factor_jacobian``: banded on 1D grids with walls, nested
        dissection on the other grids, a sparse LU in minimum-degree order on meshes)."""
        return self.grid.factor_jacobian(rho, xi, self.curvature(rho), dt, second_order)

    def curvature(self, rho):
        """f''(max(ρ, JACOBIAN_FLOOR·max ρ)) of the local terms: finite where ρ = 0."""
        floored = np.maximum(rho, JACOBIAN_FLOOR * self.grid.maximum(rho))
        return self.energy.second_variation_diagonal(floored, self.grid)


class BDF2(BackwardEuler):
    r"""Variable-step BDF2 with the second-order (limited) upwind rate L₂ (the discretization's
    ``rate``), adaptive steps from an embedded error estimate, and backward Euler as the
    positive fallback: second order in space and time where the solution is smooth,
    positive, mass-conserving and energy-dissipating for every step.

    With the last step d₁ = tₙ − tₙ₋₁, the step dt and ω = dt/d₁, ρⁿ⁺¹ solves

        ρⁿ⁺¹ − γ dt L₂(ρⁿ⁺¹) = a ρⁿ + b ρⁿ⁻¹,
        a = (1 + ω)²/(1 + 2ω),  b = −ω²/(1 + 2ω),  γ = (1 + ω)/(1 + 2ω)

    (the derivative at tₙ₊₁ of the quadratic through the three states; ω = 0, the first
    step, is backward Euler; a + b = 1, so mass is conserved), by Newton's method
    with the matrix I − γ dt ∂L₂/∂ρ of the discretization's ``jacobian`` (local curvature f''
    only, as :class:`BackwardEuler`; factored by the discretization's ``factor_jacobian``: a
    banded LU, linear cost, on 1D grids with walls, an LU in nested-dissection order on the
    other grids, a minimum-degree one on meshes; kept across iterations and steps while the
    corrections converge, a simplified Newton method), or that of the first-order rate L₁ where the
    iteration stalls (see :meth:`newton`). Every update keeps the mass exactly (wᵀ(I − γ dt ∂L/∂ρ) = wᵀ for both
    rates), iterates are projected onto ρ ≥ 0, and Newton stops when the residual is a
    hundredth of the error allowed (see :meth:`newton`).

    No linear multistep method of order 2 is positive for every step (Bolley and Crouzeix
    1978), and BDF2's b < 0. The safeguard, as in the positivity-preserving implicit
    schemes of Bailo, Carrillo and Hu (2020) and the BDF2 finite volumes of Gallouët,
    Natale and Todeschi (2022, there on a JKO form): the BDF2 step is kept only when its
    Newton iteration converges (to ρⁿ⁺¹ ≥ 0: the iterates are projected onto ρ ≥ 0, and the
    stop asks for the mass kept) and F(ρⁿ⁺¹) ≤ F(ρⁿ) (within round-off,
    :func:`energy_tolerance`); otherwise the step is taken by :class:`BackwardEuler`
    (first-order rate, positive for every dt, energy decreasing for convex F) at the same dt,
    counted in :attr:`fallbacks`; if its Newton fails too the step is rejected and retried
    shorter.

    The error estimate (Milne's device): the predictor p is the extrapolation through the
    last states: quadratic through ρⁿ⁻², ρⁿ⁻¹, ρⁿ when there are three, else forward Euler
    ρⁿ + dt L₂(ρⁿ). With three states and d₂ = tₙ₋₁ − tₙ₋₂ the local errors are
    ρ'''E/6 with E_c = dt²(dt + d₁)²/(2dt + d₁) (BDF2) and E_p = −dt(dt + d₁)(dt + d₁ + d₂)
    (the predictor), so the error of ρⁿ⁺¹ is about e = E_c/(E_c + |E_p|)·|ρⁿ⁺¹ − p| (2/11 of it
    at equal steps); with fewer states e = ½|ρⁿ⁺¹ − p| (forward Euler's error, conservative for
    the second step). Both vanish against the step's change as dt → 0, so a rejected step is
    retried shorter until it passes. The error is measured against the step's change,
    r = ∫|e| / (tol ∫|ρⁿ⁺¹ − ρⁿ| + 100 rtol mass): each step's change is right to a fraction
    ``tol`` of itself (errors below 100 times Newton's round-off tolerance ``rtol`` pass, so
    that the steps grow at a steady state instead of chasing round-off), so the steps stay
    short where the solution moves fast (from a compact-support start the front moves a few
    cells per step, where Newton needs a few iterations, whereas backward Euler at a fixed
    step fills one layer of vacuum per Newton iteration) and grow where it settles, with the
    relaxation time rather than with the distance to the steady state. A step with r > 1 is rejected; the next one is
    dt·min(2, max(0.2, 0.9 r^(−1/q))), q = 3 with three states, else 2 (and at most
    ``max_step``). The first step is ``dt`` if given, else tol·mass/∫|L₂(ρ⁰)|.

    The multistep history lives in the stepper: a run resumed from a :class:`State` starts
    it again (the first step after the resume is a backward-Euler step), so a resumed
    ``bdf2`` run is as accurate as an uninterrupted one, not equal to it bit for bit.
    """

    summary = ("BDF2 with the second-order rate, Newton with its sparse Jacobian, adaptive steps from an error "
               "estimate, backward Euler where BDF2 is not positive: second order, for stiff long runs")
    options = ("dt", "max_step", "tol")

    def __init__(self, energy, grid, tol=1e-3, first_step=None, rtol=1e-13, max_iterations=30):
        if not 0 < tol < 1:
            raise ValueError(f"tol must be in (0, 1), got {tol}")
        super().__init__(energy, grid, np.inf, rtol, max_iterations)
        self.tol, self.suggestion = tol, first_step
        self.current, self.past = None, []  # ρⁿ and [(ρⁿ⁻¹, d₁), (ρⁿ⁻², d₂)], newest first
        self.result, self.result_step = None, None  # the last attempt's ρⁿ⁺¹ (accepted if it comes back as ρⁿ)
        self.fallbacks = 0
        self.factors, self.factored_order, self.factorizations = None, None, 0  # the kept Newton matrix (newton)

    @classmethod
    def from_options(cls, energy, grid, *, cfl, dt, t_span, tol=None):
        """The stepper of tolerance ``tol`` (default 1e-3) and first step ``dt`` (default: from the rate)."""
        return cls(energy, grid, 1e-3 if tol is None else tol, dt)

    def propose(self, rho, xi):
        """The step of the error estimate (the first: ``dt``, or tol·mass/∫|L₂(ρ)|); records
        the state ρ as ρⁿ, the last attempt's result becoming history when it was accepted."""
        if self.result is not None and rho is self.result:
            self.past = [(self.current, self.result_step)] + self.past[:1]
        elif rho is not self.current:
            self.past = []
        self.current, self.result = rho, None
        if self.suggestion is None:
            change = self.grid.integrate(np.abs(self.grid.rate(rho, xi)))
            self.suggestion = np.inf if change == 0 else self.tol * self.grid.integrate(rho) / change
        return self.suggestion

    def attempt(self, rho, xi, dt):
        """ρⁿ⁺¹ of BDF2 when positive and energy-decreasing, else of backward Euler; None when
        the error estimate exceeds ``tol`` or both Newton iterations failed."""
        grid, energy = self.grid, self.energy
        omega = dt / self.past[0][1] if self.past else 0.0
        a, b, gamma = (1 + omega) ** 2 / (1 + 2 * omega), -omega**2 / (1 + 2 * omega), (1 + omega) / (1 + 2 * omega)
        history = a * rho + b * self.past[0][0] if self.past else rho
        predictor = self.predictor(rho, xi, dt)
        new = self.newton(history, gamma * dt, predictor, rho)
        value = energy.value(rho, grid)
        if new is None or energy.value(new, grid) > value + energy_tolerance(rho, xi, value, grid):
            self.fallbacks += 1
            self.result, self.result_step = super().attempt(rho, xi, dt), dt
            return self.result
        order = 3 if len(self.past) == 2 else 2
        mass = grid.integrate(rho)
        ratio = (self.local_error(new, predictor, dt)
                 / (self.tol * grid.error_norm(new - rho) + self.rtol / NEWTON_FRACTION * mass))
        self.suggestion = dt * min(2.0, max(0.2, 0.9 * ratio ** (-1 / order))) if ratio > 0 else 2 * dt
        if ratio > 1:
            return None
        self.result, self.result_step = new, dt
        return new

    def local_error(self, new, predictor, dt):
        """The estimate of ρⁿ⁺¹'s local error in ``error_norm``, E_c/(E_c + |E_p|)·‖ρⁿ⁺¹ − p‖
        with three states (see the class doc), else ½‖ρⁿ⁺¹ − p‖."""
        if len(self.past) < 2:
            return 0.5 * self.grid.error_norm(new - predictor)
        d1, d2 = self.past[0][1], self.past[1][1]
        e_bdf2, e_predictor = dt**2 * (dt + d1) ** 2 / (2 * dt + d1), dt * (dt + d1) * (dt + d1 + d2)
        return e_bdf2 / (e_bdf2 + e_predictor) * self.grid.error_norm(new - predictor)

    def predictor(self, rho, xi, dt):
        """The extrapolation of the last three states to tₙ + dt (with fewer, ρⁿ + dt L₂(ρⁿ))."""
        if len(self.past) < 2:
            return rho + dt * self.grid.rate(rho, xi)
        (previous, d1), (oldest, d2) = self.past
        # the Lagrange weights at tₙ + dt of the nodes tₙ, tₙ₋₁ = tₙ − d₁, tₙ₋₂ = tₙ − d₁ − d₂
        return ((dt + d1) * (dt + d1 + d2) / (d1 * (d1 + d2)) * rho - dt * (dt + d1 + d2) / (d1 * d2) * previous
                + dt * (dt + d1) / ((d1 + d2) * d2) * oldest)

    def newton(self, history, step, start, rho):
        """The solution ρ ≥ 0 of G(ρ) = ρ − history − step·L₂(ρ) = 0 from ``start`` (projected
        onto ρ ≥ 0), or None.

        Converged when Σ|G| w_i ≤ ``rtol`` × mass, or when ‖G‖ ≤ ``NEWTON_FRACTION``·tol·
        ‖ρⁿ⁺¹ − ρ‖ (a hundredth of the error allowed, in the norm of the error estimate, the
        discretization's ``error_norm``) and the mass is that of ``history`` within
        ``MASS_ULPS`` units of round-off (an update keeps it, the projection may not). The
        residual stands for the iterate's error, ρ − ρ* ≈ (I − step ∂L/∂ρ)⁻¹G, and that inverse
        does not enlarge it in L1 for the first-order rate (an M-matrix whose columns sum to 1)
        nor, in 1D, in W1 (the cumulative masses follow the primitive scheme, monotone too);
        for the second-order rate this is a heuristic, checked by the benchmark's risk curve.

        The matrix is that of L₂ (:meth:`jacobian` with ``second_order``: quadratic convergence
        where neither the limiters nor the upwind sides switch) until an iteration with a
        matrix made at its own iterate fails to halve Σ|G| w_i, then that of L₁ (a defect
        correction: linear convergence, but it does not cycle where the limiters switch, as in
        the tails of a Gaussian). Where factoring costs many evaluations of the rate (the
        discretization's ``keeps_factors``: sparse LUs, not a 1D grid's banded solve), the matrix
        is factored once (the discretization's ``factor_jacobian``) and kept across iterations
        and steps, a simplified (chord) Newton method, while each correction at least halves
        Σ|G| w_i; a correction with the kept matrix that does not is undone, and the matrix
        factored anew at the iterate before it (:attr:`factorizations` counts them). Any matrix
        I − s ∂L/∂ρ keeps the mass (wᵀ(I − s ∂L/∂ρ) = wᵀ), and the iteration is judged by the
        true residual G, so this changes the cost, not the stopping rule: from the predictor,
        within a few times the allowed error of ρⁿ⁺¹, one or two chord corrections reach the
        stop (on the 2D Barenblatt case, 16 factorizations in 163 steps at 128², against one
        per step with a new matrix at every iteration)."""
        grid, energy = self.grid, self.energy
        mass = grid.integrate(history)
        new, second_order, own, previous = np.maximum(start, 0.0), True, False, None
        for _ in range(self.max_iterations):
            self.newton_iterations += 1
            xi_new = energy.first_variation(new, grid)
            residual = new - history - step * grid.rate(new, xi_new)
            finite = grid.all_finite(residual)
            size = grid.integrate(np.abs(residual)) if finite else np.inf
            if finite and (size <= self.rtol * mass or (
                    grid.error_norm(residual) <= NEWTON_FRACTION * self.tol * grid.error_norm(new - rho)
                    and abs(grid.integrate(new) - mass) <= MASS_ULPS * np.finfo(float).eps * mass)):
                return new
            halved = previous is None or size <= previous[3] / 2
            if not halved and not own:  # the kept matrix failed: back to the last iterate, factored there
                new, xi_new, residual, size = previous
            elif not finite:
                return None
            second_order = second_order and (halved or not own)
            # own: the matrix is factored at this iterate (exact Newton), else the kept one is used
            own = (not halved or not grid.keeps_factors or self.factors is None
                   or self.factored_order != second_order)
            if own:
                self.factors, self.factored_order = self.factor(new, xi_new, step, second_order), second_order
                self.factorizations += 1
            previous = new, xi_new, residual, size
            new = np.maximum(new - self.factors(residual), 0.0)
        return None


SCHEMES = {"explicit": SSPRK2, "rkl2": RKL2, "implicit": BackwardEuler, "bdf2": BDF2}
"""The time schemes by name (``solve(..., scheme=name)``, ``[time] scheme`` of a config);
each stepper class's ``summary`` says what it is in one line."""


def check_scheme_options(scheme, dt, max_step, cfl, tol=None):
    """Check the options of a time scheme: each is taken by the schemes it applies to
    (``options`` of the stepper in :data:`SCHEMES`) and refused by the others, rather than
    ignored. Returns ``(cfl, max_step, dt)`` with the scheme's defaults: ``cfl`` 0.9 and
    ``max_step`` ∞ for the schemes that take them, ``dt`` None (the stepper's default) for the
    implicit ones; the options a scheme does not take are None. ``tol`` (bdf2's error
    tolerance, in (0, 1)) is checked and left to the stepper's default when None. Messages
    start with the option's name."""
    if not (isinstance(scheme, str) and scheme in SCHEMES):
        raise ValueError(f"scheme must be one of {tuple(SCHEMES)}, got {scheme!r}")
    for name, value in (("cfl", cfl), ("max_step", max_step), ("dt", dt), ("tol", tol)):
        if value is not None and not isinstance(value, numbers.Real):
            raise ValueError(f"{name} must be a number, got {value!r}")
    takes = SCHEMES[scheme].options
    if dt is not None and "dt" not in takes:
        raise ValueError(f"dt: the {scheme} scheme chooses its own steps and takes no dt; bound them with max_step, "
                         "or choose scheme 'implicit' for a fixed step")
    for name, value in (("cfl", cfl), ("max_step", max_step)):
        if value is not None and name not in takes:
            raise ValueError(f"{name}: the {scheme} scheme takes no {name} (it bounds the explicit schemes' "
                             "steps); give its step as dt, or choose an explicit scheme")
    if tol is not None and "tol" not in takes:
        raise ValueError(f"tol: the {scheme} scheme takes no tol (the error tolerance of the adaptive implicit "
                         "scheme); choose scheme 'bdf2'")
    if tol is not None and not 0 < tol < 1:
        raise ValueError(f"tol must be in (0, 1), got {tol}")
    if "cfl" in takes:
        cfl = 0.9 if cfl is None else cfl
        if not 0 < cfl <= 1:
            raise ValueError(f"cfl must be in (0, 1], got {cfl}")
    if "max_step" in takes:
        max_step = np.inf if max_step is None else max_step
        if not max_step > 0:
            raise ValueError(f"max_step must be > 0, got {max_step}")
    if dt is not None and not (np.isfinite(dt) and dt > 0):
        raise ValueError(f"dt must be finite and > 0, got {dt}")
    return cfl, max_step, dt


# ---------------------------------------------------------------------------- the controller
def energy_tolerance(rho, xi, value, grid):
    """Round-off allowance when testing that the energy did not increase: ``ENERGY_RTOL``
    of Σ|ρξ|w (the scale of a step's change of F) plus ``ENERGY_ULPS`` units of round-off
    of F itself. The second part matters at the steady state of a reaction, where ξ = F' → 0
    on the support and ρ = 0 off it, so Σ|ρξ|w → 0 while F keeps a round-off of a few ulps
    (the deconvolution presets, F ≈ 2.8; the Gibbs density of a potential with entropy):
    with the first part alone the test rejected every step there."""
    return ENERGY_RTOL * grid.integrate(np.abs(rho * xi)) + ENERGY_ULPS * np.finfo(float).eps * abs(value) + 1e-300


def check_resume(state, t0, t1, save_times, grid):
    """Refuse a :class:`State` that is not of a run over (t0, t1) with these save times:
    history and step counts that do not fit each other (a state kept from ``checkpoint``
    without a copy, whose lists went on growing), its t outside the span, a run that
    started at another t0, saves other than at the save times ≤ t (their number, and
    their times: :attr:`State.saved_at`, or, in a state without it, whether a step landed
    on each; resumed with other save times, the saves would carry the wrong times or one
    behind t would never be reached), or saves of another shape. A state of the same start
    and saves up to its t but another t1 ≥ t or other save times after t is not told
    apart: the run may then differ from an uninterrupted one (the implicit scheme's
    default dt is (t1 − t0)/100; a rejected step may have been bounded by the other next
    save time)."""
    steps = {key: len(state.history.get(key, ())) for key in HISTORY}
    if set(steps.values()) != {state.accepted + 1}:
        raise ValueError(f"resume: the history's lengths {steps} do not all match {state.accepted} accepted steps "
                         "plus the start (keep copy.deepcopy(state) of checkpoint's state: its lists are the loop's)")
    reached = int(np.count_nonzero(save_times <= state.t))
    if not (t0 <= state.t <= t1 and len(state.saved) == reached):
        raise ValueError(f"resume: a state at t = {state.t} with {len(state.saved)} saves does not belong to "
                         f"t_span ({t0}, {t1}) with the save times {list(save_times)}, {reached} of them at or "
                         f"before t: resume with the t_span and save_at of the run that made it")
    if state.history["t"][0] != t0:
        raise ValueError(f"resume: the state's run started at t = {state.history['t'][0]}: it does not belong to "
                         f"t_span ({t0}, {t1}); resume with the t_span and save_at of the run that made it")
    if state.saved_at is not None:
        if list(state.saved_at) != save_times[:reached].tolist():
            raise ValueError(f"resume: the state's saves are at t = {list(state.saved_at)}, not at the save times "
                             f"{save_times[:reached].tolist()} up to its t = {state.t}; resume with the t_span and "
                             "save_at of the run that made it")
    elif missed := sorted(set(save_times[:reached].tolist()) - set(state.history["t"])):  # without saved_at: landings
        raise ValueError(f"resume: no step of the state's run landed on the save times {missed}: it does not belong "
                         f"to the save times {save_times.tolist()}; resume with the t_span and save_at of the run that "
                         "made it")
    wrong = [i for i, rho in enumerate(state.saved) if np.shape(rho) != grid.shape]
    if wrong:
        raise ValueError(f"resume: saves {wrong} have shapes other than the discretization's {grid.shape}")


def check_start(energy, value, xi, rho, grid):
    """Refuse an energy whose F at the start is not a finite number or whose F' is not a
    finite array of ρ's shape (the loop then checks each new state's finiteness)."""
    if np.ndim(value) != 0:
        raise ValueError(f"{energy!r}: its value F(ρ) must be a number, got an array of shape {np.shape(value)}")
    if np.shape(xi) != rho.shape:
        raise ValueError(f"{energy!r}: its first variation F'(ρ) must be an array of ρ's shape {rho.shape}, got "
                         f"shape {np.shape(xi)}")
    if not (np.isfinite(value) and grid.all_finite(xi)):
        raise ValueError(f"{energy!r}: F(ρ) = {value} and F'(ρ) at the start are not all finite (a NaN or an "
                         "overflow in the energy at the initial density)")


def solve(energy, grid, rho0, t_span, *, save_at=None, scheme="explicit", cfl=None, dt=None,
          max_step=None, tol=None, max_steps=10_000_000, progress=None, checkpoint=None, resume=None):
    """Evolve ∂tρ = ∇·(ρ ∇F'(ρ)) − βF'(ρ)ρ on a discretization from ``rho0`` over ``t_span``.

    β = ``energy.reaction`` is 0 (a Wasserstein gradient flow: mass conserved) but for
    Wasserstein–Fisher–Rao flows (lifted energies), whose mass is balanced instead,
    d/dt ∫ρ = −β∫F'ρ, and which only the explicit scheme takes.

    Parameters
    ----------
    energy : Energy
        The free energy F (a term or a sum of terms), with its reaction β ≥ 0.
    grid : Discretization
        A :class:`~solver.grid.Grid`, a :class:`solver.fem.Mesh` (serial or under MPI;
        there the implicit schemes, ``"implicit"`` and ``"bdf2"``, and the nonlocal terms
        that are not ``distributed`` are refused) or a :class:`~solver.species.Species` on
        either; ``rho0`` has its shape.
    rho0 : array
        Initial density (cell or vertex values, ≥ 0, finite, positive mass).
    t_span : (t0, t1)
        Start and end time, t0 < t1.
    save_at : sequence of float, optional
        Increasing times at which to keep ρ (default: t0 and t1); steps land on them exactly.
    scheme : {"explicit", "rkl2", "implicit", "bdf2"}
        A key of :data:`SCHEMES`: SSP-RK2 and adaptive steps (``"explicit"``, a convex
        combination of positive Euler steps, see :class:`SSPRK2`); RKL2 super-steps of up
        to ``RKL_MAX_STAGES`` stages (``"rkl2"``, explicit and second order, many times
        cheaper when diffusion limits the step, see :class:`RKL2`); backward Euler with
        Newton (``"implicit"``, first order; for diffusion-dominated problems, at steps far
        beyond the explicit limit, see :class:`BackwardEuler`); or BDF2 with adaptive steps
        and a positive backward-Euler fallback (``"bdf2"``, second order, for stiff and
        long-horizon flows, see :class:`BDF2`); all but the first refuse a reaction (β ≠ 0,
        ValueError). In space, the discretization's own operators (on grids second-order
        upwind, first-order for the implicit scheme and bdf2's fallback).
    cfl : float, optional
        Explicit schemes only: fraction of the forward-Euler limits used (default 0.9).
    dt : float, optional
        Implicit schemes only: the step of ``"implicit"`` (halved on rejection, regrown
        cautiously after; default (t1 − t0)/100), the first step of ``"bdf2"`` (default
        tol·mass/∫|L(ρ0)|).
    max_step : float, optional
        Explicit schemes and bdf2: an upper bound on the step, for accuracy in time when the
        stability limit allows long steps (slow transport); default none. An option given
        to a scheme it does not apply to is refused (ValueError), not ignored.
    tol : float, optional
        bdf2 only: the error tolerance of its adaptive steps, relative to each step's change,
        in (0, 1) (default 1e-3; see :class:`BDF2`).
    max_steps : int
        Give up (RuntimeError) after this many attempted steps.
    progress : bool, optional
        Show a tqdm bar; by default only in a terminal and after a second.
    checkpoint : callable, optional
        Called as ``checkpoint(state)`` with a :class:`State` after every accepted step
        (its lists are the loop's own: write them out before returning).
    resume : State, optional
        Continue from this state of an earlier call with the same arguments (a state of
        another start or other saves up to its t is refused, see :func:`check_resume`),
        instead of from ``rho0``; the result is then bit for bit that of an uninterrupted
        call (``wall_time`` counts only this call), except for ``"bdf2"``, whose two-step
        history restarts (:class:`BDF2`).

    Returns
    -------
    Solution

    Raises
    ------
    SimulationError
        When a step gives a non-finite density, energy or first variation (a NaN in
        F', say) anywhere (on any rank, all ranks raise it): its ``partial`` is the
        :class:`Solution` up to the last finite state.
    """
    cfl, max_step, dt = check_scheme_options(scheme, dt, max_step, cfl, tol)
    rho = grid.check_density(rho0, "rho0").copy()
    t0, t1, save_times = check_times(t_span, save_at)
    energy.check(grid)
    stepper = SCHEMES[scheme].from_options(energy, grid, cfl=cfl, dt=dt, t_span=(t0, t1), tol=tol)
    start = time.perf_counter()
    if resume is not None:
        check_resume(resume, t0, t1, save_times, grid)
        rho = grid.check_density(resume.rho, "resume.rho").copy()
    value, xi = energy.value_and_first_variation(rho, grid)
    check_start(energy, value, xi, rho, grid)
    if resume is None:
        t, cap, accepted, rejected = t0, stepper.ceiling, 0, 0
        last_rejected, since_rejection = np.inf, CAUTIOUS_STEPS
        history = {"t": [t], "dt": [0.0], "energy": [value], "mass": [grid.integrate(rho)],
                   "min": [grid.minimum(rho)], "source": [0.0]}
        saved = [rho.copy()] if save_times[0] == t0 else []
    else:
        t, cap, accepted, rejected = resume.t, resume.cap, resume.accepted, resume.rejected
        last_rejected, since_rejection = resume.last_rejected, resume.since_rejection
        stepper.newton_iterations = resume.newton_iterations
        history = {key: list(values) for key, values in resume.history.items()}
        saved = list(resume.saved)
    pending = list(save_times[len(saved):])
    floor = STEP_FLOOR * (t1 - t0)

    def solution(times, densities):
        return Solution(grid, energy, scheme, times, densities, {key: np.array(val) for key, val in history.items()},
                        accepted, rejected, time.perf_counter() - start, stepper.newton_iterations)

    bar = tqdm(total=t1 - t0, initial=t - t0, disable=None if progress is None else not progress, delay=1.0,
               unit="t", bar_format="{l_bar}{bar}| t={n:.3g}/{total:.3g} [{elapsed}<{remaining}]")
    with bar, one_blas_thread():
        while pending:
            if accepted + rejected >= max_steps:
                raise RuntimeError(f"solve: max_steps={max_steps} reached at t={t:.6g} before t1={t1}")
            bounds = {"the scheme's stability limit": stepper.propose(rho, xi), "the step cap": cap,
                      "max_step": np.inf if max_step is None else max_step}
            step = min(*bounds.values(), pending[0] - t)
            if step != pending[0] - t and (step < floor or t + step == t):
                bound = min(bounds, key=bounds.get)
                raise RuntimeError(
                    f"solve: the step fell below {floor:.3g} at t={t:.6g}: step {accepted + rejected + 1} "
                    f"would be dt = {step:.3g}, bounded by {bound}"
                    + (" after rejections" if bound == "the step cap" else "")
                    + (", where t + dt == t" if t + step == t else "")
                    + f"; the run cannot reach t1 = {t1:.6g}")
            new = stepper.attempt(rho, xi, step)
            if new is not None:
                with np.errstate(invalid="ignore", divide="ignore"):  # F of a negative ρⁿ⁺¹ (rejected below) may be
                    new_value, new_xi = energy.value_and_first_variation(new, grid)  # NaN; of a positive one it stops
                # a NaN or inf anywhere makes the mass non-finite; ξ is checked too: the kernels
                # skip faces between empty cells, where a NaN in ξ would not show
                new_mass, new_min, xi_finite, stage_min = grid.summary(new, new_xi, stepper.stage_minimum)
                if stage_min < 0 or new_min < 0:  # negative: rejected (a NaN in ρ makes new_min NaN: stopped below)
                    new = None
                elif not (np.isfinite(new_value) and np.isfinite(new_mass) and xi_finite):
                    raise SimulationError(
                        f"solve: non-finite density, energy or first variation at step {accepted + 1} (from "
                        f"t = {t:.6g} by dt = {step:.3g}); the run stopped there: .partial holds the saves reached "
                        f"and the state at t = {t:.6g}; check the energy's first variation for NaN",
                        solution(np.append(save_times[: len(saved)], t), np.array([*saved, rho])))
                # the sum of the tolerance only if needed
                elif new_value > value and new_value > value + energy_tolerance(rho, xi, value, grid):
                    new = None
            if new is None:
                rejected += 1
                cap, last_rejected, since_rejection = step / 2, step, 0
                continue
            accepted += 1
            since_rejection += 1
            if since_rejection <= CAUTIOUS_STEPS:
                cap = min(CAUTIOUS_GROWTH * cap, last_rejected / CAUTIOUS_GROWTH, stepper.ceiling)
            else:
                cap = min(2 * cap, stepper.ceiling)
            t = pending[0] if step == pending[0] - t else t + step
            rho, value, xi = new, new_value, new_xi
            for key, item in (("t", t), ("dt", step), ("energy", value), ("mass", new_mass),
                              ("min", new_min), ("source", history["source"][-1] + stepper.source)):
                history[key].append(item)
            bar.update(step)
            if t == pending[0]:
                saved.append(rho.copy())
                pending.pop(0)
            if checkpoint is not None:
                checkpoint(State(t, rho, cap, accepted, rejected, history, saved, last_rejected, since_rejection,
                                 stepper.newton_iterations, tuple(save_times[: len(saved)].tolist())))
    return solution(save_times, np.array(saved))
