"""Finite volumes on Cartesian grids: the upwind rate, the explicit and implicit steps, ``solve``.

Time is the clock of the gradient flow ∂tρ = ∇·(ρ∇F'(ρ)): one unit of PDE time is
one unit of particle time (dθ/dt = −∇F'(μ)(θ)).

Every scheme conserves mass to round-off (fluxes cancel in pairs) and keeps ρ ≥ 0 by
rejecting, never clipping, a step that would make it negative. Each also rejects a step
that would raise the discrete energy F(ρ) = Σ f(ρ_i)|cell| + … beyond round-off; the
semi-discrete scheme dissipates it exactly, dF/dt = −Σ_faces u · flux |cell| ≤ 0, since
the upwind flux has the sign of u.
"""

import ctypes
import dataclasses
import functools
import os
import time

import numpy as np
import scipy.sparse
import scipy.sparse.linalg
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from .kernels.upwind import grid_rate, grid_stage, positivity_rate

JACOBIAN_FLOOR = 1e-8  # relative density at which the Newton Jacobian takes f'' near vacuum
ENERGY_RTOL = 1e-12  # round-off allowance for the energy test, relative to Σ|ρ ξ||cell|


def upwind_rate(rho, xi, grid, second_order=True, *, out=None, kernel=grid_rate):
    """dρ/dt = −div(flux) of the upwind scheme.

    Parameters
    ----------
    rho, xi : arrays of the grid's shape
        The density and ξ = F'(ρ).
    second_order : bool
        Limited linear reconstruction (else first-order upwind).
    out : array, optional
        A C-contiguous float array of the grid's shape to write the rate into.
    kernel : callable
        :func:`~solver.kernels.upwind.grid_rate` or its NumPy reference.
    """
    rho = np.ascontiguousarray(rho, dtype=float)
    xi = np.ascontiguousarray(xi, dtype=float)
    if out is not None and not (out.shape == grid.shape and out.dtype == float and out.flags.c_contiguous):
        raise ValueError(f"upwind_rate: out must be a C-contiguous float array of shape {grid.shape}, got "
                         f"{out.dtype} {out.shape}{'' if out.flags.c_contiguous else ', not C-contiguous'}")
    rate = np.empty(grid.shape) if out is None else out
    kernel(rho, xi, 1.0 / grid.h, grid.periodic, second_order, rate)
    return rate


def step_limits(xi, diffusivity, grid):
    """The forward-Euler step limits (transport, parabolic), ∞ where a part is absent.

    The reconstructed upwind step stays positive if dt Σ_k 2 max|u_k| / h_k ≤ 1 in every
    cell, with u_k on the cell's faces (:func:`~solver.kernels.upwind.positivity_rate`);
    the linearized diffusion D Δρ is stable if dt Σ_k 2D / h_k² ≤ 1.
    """
    transport, parabolic = positivity_rate(xi, 1.0 / grid.h, grid.periodic), np.sum(2 * diffusivity / grid.h**2)
    return (np.inf if transport == 0 else 1.0 / transport), (np.inf if parabolic == 0 else 1.0 / parabolic)


def stable_step(xi, diffusivity, grid):
    """The forward-Euler step limit: the smaller of :func:`step_limits`."""
    return min(step_limits(xi, diffusivity, grid))


def energy_tolerance(rho, xi, grid):
    """Round-off allowance when testing that the energy did not increase."""
    return ENERGY_RTOL * grid.integrate(np.abs(rho * xi)) + 1e-300


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
        ``mass``, ``min`` (min ρ).
    accepted, rejected : int
        Step counts; a step is rejected when it would make ρ negative, raise the
        energy, or (implicit) when Newton does not converge; it is retried shorter.
    wall_time : float
        Seconds spent in :func:`solve`.
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

    def invariants(self):
        """Worst values over the accepted steps: ``mass_drift`` (relative to the initial
        mass), ``min`` (of ρ) and ``energy_rise`` (largest one-step increase of F,
        relative to max |F|; 0 when F never rose)."""
        h = self.history
        scale = max(np.abs(h["energy"]).max(), np.finfo(float).tiny)
        return {
            "mass_drift": float(np.abs(h["mass"] - h["mass"][0]).max() / h["mass"][0]),
            "min": float(h["min"].min()),
            "energy_rise": float(max(np.diff(h["energy"]).max(initial=0.0), 0.0) / scale),
        }


class ExplicitStep:
    """Heun's method, the two-stage strong-stability-preserving Runge–Kutta (SSP-RK2),

        ρ¹ = ρ + dt L(ρ),   ρⁿ⁺¹ = ½ ρ + ½ (ρ¹ + dt L(ρ¹)),

    with L the second-order upwind rate. A convex combination of forward-Euler steps,
    so positive when both are within the forward-Euler limit :func:`stable_step` (times
    ``cfl``); the step is chosen by the limit at ρ, and a negative ρ¹ or ρⁿ⁺¹ (the limit
    at ρ¹ being shorter) rejects it.
    """

    def __init__(self, energy, grid, cfl=0.9):
        if not 0 < cfl <= 1:
            raise ValueError(f"cfl must be in (0, 1], got {cfl}")
        self.energy, self.grid, self.cfl = energy, grid, cfl

    def suggest(self, rho, xi):
        """Rate at ρ and the step the stability limits allow."""
        limit = stable_step(xi, self.energy.max_diffusivity(rho), self.grid)
        return upwind_rate(rho, xi, self.grid), self.cfl * limit

    def attempt(self, rho, rate, dt):
        """ρⁿ⁺¹, or None if a stage went negative."""
        stage = rho + dt * rate
        if stage.min() < 0:
            return None
        xi_stage = self.energy.first_variation(stage, self.grid)
        rate_stage = upwind_rate(stage, xi_stage, self.grid)
        new = 0.5 * rho + 0.5 * (stage + dt * rate_stage)
        return None if new.min() < 0 else new


RKL_MAX_STAGES = 40  # stages of the longest super-step (a step of 410 forward-Euler limits)


def rkl2_coefficients(stages):
    """(μ̃₁, [(μ_j, ν_j, μ̃_j, γ̃_j) for j = 2 … s]) of the s-stage RKL2 method (see :class:`SuperStep`)."""
    s = stages
    b = [1 / 3, 1 / 3, 1 / 3] + [(j * j + j - 2) / (2 * j * (j + 1)) for j in range(3, s + 1)]
    w1 = 4 / (s * s + s - 2)
    rows = []
    for j in range(2, s + 1):
        mu, nu = (2 * j - 1) / j * b[j] / b[j - 1], -(j - 1) / j * b[j] / b[j - 2]
        rows.append((mu, nu, mu * w1, -(1 - b[j - 1]) * mu * w1))
    return b[1] * w1, rows


class SuperStep(ExplicitStep):
    """Runge–Kutta–Legendre super-time-stepping, RKL2 (Meyer, Balsara and Aslam 2014):
    one step of s stages,

        Y₀ = ρ,  Y₁ = Y₀ + μ̃₁ dt L(Y₀),
        Y_j = μ_j Y_(j−1) + ν_j Y_(j−2) + (1 − μ_j − ν_j) Y₀ + μ̃_j dt L(Y_(j−1)) + γ̃_j dt L(Y₀),
        ρⁿ⁺¹ = Y_s,

    with b_j = (j² + j − 2)/(2j(j + 1)) (b₀ = b₁ = b₂ = 1/3), w₁ = 4/(s² + s − 2),
    μ_j = (2j − 1) b_j/(j b_(j−1)), ν_j = −(j − 1) b_j/(j b_(j−2)), μ̃₁ = b₁w₁, μ̃_j = μ_j w₁,
    γ̃_j = −(1 − b_(j−1)) μ̃_j; L the second-order upwind rate. Second order in time and
    stable for dt ≤ (s² + s − 2)/4 forward-Euler parabolic limits, so s ≈ 2√(dt/dt_par)
    stages do the work of dt/dt_par Euler steps: for diffusion-dominated flows (porous
    medium, entropy) far fewer rate evaluations than SSP-RK2. The transport (upwind CFL)
    limit still bounds dt, and at most ``max_stages`` stages are used. The stages are
    not convex combinations of Euler steps, so positivity is checked, not guaranteed: a
    negative stage rejects the step, which is retried shorter. Steps short enough for
    s = 2 (within one Euler limit: nothing to gain) are SSP-RK2 steps, positive by
    construction, so repeated rejections end in the explicit scheme's steps; that matters
    at the edge of vacuum with an entropy term, where the rate jumps as soon as mass arrives.
    """

    def __init__(self, energy, grid, cfl=0.9, max_stages=RKL_MAX_STAGES):
        super().__init__(energy, grid, cfl)
        self.max_stages = max_stages
        self.parabolic = np.inf

    def suggest(self, rho, xi):
        transport, parabolic = step_limits(xi, self.energy.max_diffusivity(rho), self.grid)
        self.parabolic = self.cfl * parabolic
        s = self.max_stages
        return upwind_rate(rho, xi, self.grid), min(self.cfl * transport, self.parabolic * (s * s + s - 2) / 4)

    def attempt(self, rho, rate, dt):
        """ρⁿ⁺¹ after the fewest stages whose stability limit covers ``dt``, or None if a stage went negative."""
        stages = int(np.ceil(np.sqrt(4 * dt / self.parabolic + 9 / 4) - 0.5))
        if stages <= 2:
            return super().attempt(rho, rate, dt)
        first, rows = rkl2_coefficients(stages)
        grid, inv_h = self.grid, 1.0 / self.grid.h
        previous, current = rho, rho + first * dt * rate
        spare = [np.empty_like(rho), np.empty_like(rho)]  # Y_j is written where neither Y_(j−1) nor Y_(j−2) is
        negative = current.min() < 0
        for mu, nu, mu_rate, gamma_rate in rows:
            if negative:
                return None
            following = spare.pop()
            xi = np.ascontiguousarray(self.energy.first_variation(current, grid), dtype=float)
            negative = grid_stage(current, xi, inv_h, grid.periodic, True, previous, rho, rate,
                                  np.array([mu, nu, mu_rate * dt, gamma_rate * dt]), following)
            if previous is not rho:
                spare.append(previous)  # Y_(j−2) is not needed after Y_j
            previous, current = current, following
        return None if negative else current


class ImplicitStep:
    """Backward Euler for the first-order upwind scheme, solved by Newton's method.

    Residual G(ρ) = ρ − ρⁿ − dt L₁(ρ) with L₁ the first-order upwind rate. The Jacobian
    is sparse: on a face with upwind value ρ_up, dflux/dρ_W = u⁺ + ρ_up f''(ρ_W)/h and
    dflux/dρ_E = u⁻ − ρ_up f''(ρ_E)/h, with f'' from the local terms (nonlocal terms are
    left to the iteration: an inexact Newton method). The exact solution of the
    discrete system is positive for every dt (its matrix at fixed u is an M-matrix
    transposed) and, for convex F, F(ρⁿ⁺¹) ≤ F(ρⁿ) − dt·dissipation.
    Newton stops when Σ|G||cell| ≤ ``rtol`` × mass, so the mass moves by less than that.
    Near vacuum f''(ρ) may be infinite (entropy, porous medium with m < 2): the Jacobian
    takes it at max(ρ, JACOBIAN_FLOOR·max ρ), and iterates are projected onto ρ ≥ 0.
    Both only steer the iteration; its end is judged by the true residual. An entropy
    term fills vacuum at once (its exact step is positive everywhere), but Newton fills
    one more layer of vacuum cells per iteration: from a density with a large vacuum
    region, prefer the explicit scheme or a positive start.
    """

    def __init__(self, energy, grid, rtol=1e-14, max_iterations=30):
        self.energy, self.grid, self.rtol, self.max_iterations = energy, grid, rtol, max_iterations
        self.faces = _faces(grid)
        self.newton_iterations = 0

    def attempt(self, rho, dt):
        """ρⁿ⁺¹, or None if Newton failed or the iterate is negative."""
        grid, energy = self.grid, self.energy
        mass = grid.integrate(rho)
        new = rho.copy()
        for _ in range(self.max_iterations):
            self.newton_iterations += 1
            xi = energy.first_variation(new, grid)
            rate = upwind_rate(new, xi, grid, second_order=False)
            residual = new - rho - dt * rate
            if not np.all(np.isfinite(residual)):
                return None
            if grid.integrate(np.abs(residual)) <= self.rtol * mass:
                return new if new.min() >= 0 else None
            jacobian = self.jacobian(new, xi, dt)
            # the matrix is structurally symmetric: a minimum-degree order on AᵀA + A
            # fills in about half as much as the default column order on grids
            step = scipy.sparse.linalg.spsolve(jacobian, residual.ravel(), permc_spec="MMD_AT_PLUS_A")
            step = step.reshape(grid.shape)
            new = np.maximum(new - step, 0.0)  # iterates stay in the domain of F'
        return None

    def jacobian(self, rho, xi, dt):
        """I − dt dL₁/dρ as a sparse matrix."""
        r, x = rho.ravel(), xi.ravel()
        floored = np.maximum(rho, JACOBIAN_FLOOR * rho.max())
        curvature = np.broadcast_to(self.energy.second_variation_diagonal(floored), rho.shape).ravel()
        rows, cols, vals = [np.arange(r.size)], [np.arange(r.size)], [np.ones(r.size)]
        for west, east, inv_h in self.faces:
            u = -(x[east] - x[west]) * inv_h
            upwind = np.where(u > 0, r[west], r[east])
            d_west = np.maximum(u, 0) + upwind * curvature[west] * inv_h
            d_east = np.minimum(u, 0) - upwind * curvature[east] * inv_h
            # rate[west] -= flux·inv_h, rate[east] += flux·inv_h
            for cell, sign in ((west, dt * inv_h), (east, -dt * inv_h)):
                rows += [cell, cell]
                cols += [west, east]
                vals += [sign * d_west, sign * d_east]
        n = r.size
        return scipy.sparse.csc_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
        )


def _faces(grid):
    """Flat indices of the (west, east) cells of every face that carries flux, per axis."""
    index = np.arange(grid.size).reshape(grid.shape)
    faces = []
    for axis in range(grid.dim):
        west = index if grid.periodic[axis] else np.delete(index, -1, axis=axis)
        east = np.roll(index, -1, axis=axis) if grid.periodic[axis] else np.delete(index, 0, axis=axis)
        faces.append((west.ravel(), east.ravel(), 1.0 / grid.h[axis]))
    return faces


def one_blas_thread():
    """A context in which BLAS (NumPy's matrix products) runs on one thread.

    The time loops alternate Numba's parallel kernels with BLAS products (the network
    risks' feature-matrix products, integrals); with both thread pools spinning for work
    on a 2-core machine, the network presets' PDE runs took 1.6 to 4.5 times longer than
    with one BLAS thread (measured on problems a, b, c)."""
    return threadpool_limits(limits=1, user_api="blas")


HEAP_TOP_PAD = 64 << 20  # bytes of freed memory glibc's malloc keeps at the top of its heap (see keep_freed_memory)


@functools.cache
def keep_freed_memory():
    """Ask glibc's malloc to keep ``HEAP_TOP_PAD`` bytes of freed memory instead of
    returning it to the system (``mallopt(M_TOP_PAD)``); True if it was set.

    The time loops allocate and free arrays of a few hundred kB many times per step;
    memory given back to the system page-faults again when it is reused. On the 256²
    Barenblatt run of ``scheme="rkl2"`` that was 25 000 faults per run and a fifth of
    its time (0.30 s against 0.24 s). Once per process, for the whole process; not on
    other C libraries, nor when the environment sets ``MALLOC_TOP_PAD_`` itself.
    """
    if "MALLOC_TOP_PAD_" in os.environ:
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    return mallopt(-2, HEAP_TOP_PAD) == 1  # M_TOP_PAD = -2 in malloc.h


def check_times(t_span, save_at):
    """Validate ``t_span`` and ``save_at``; return (t0, t1, sorted save times)."""
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


def check_scheme_options(scheme, dt, max_step, cfl):
    """Check the options of a time scheme: each is taken by the schemes it applies to and
    refused by the others (rather than ignored). Returns ``(cfl, max_step, dt)`` with the
    defaults of the scheme: ``cfl`` 0.9 and ``max_step`` ∞ for "explicit" and "rkl2",
    ``dt`` None (the caller's default) for "implicit"; the others None. Messages start with
    the option's name."""
    if scheme not in SCHEMES:
        raise ValueError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if scheme == "implicit":
        for name, value in (("cfl", cfl), ("max_step", max_step)):
            if value is not None:
                raise ValueError(f"{name}: the implicit scheme takes no {name} (it bounds the explicit schemes' "
                                 "steps); give its step as dt, or choose an explicit scheme")
        if dt is not None and not (np.isfinite(dt) and dt > 0):
            raise ValueError(f"dt must be finite and > 0, got {dt}")
        return None, None, dt
    if dt is not None:
        raise ValueError(f"dt: the {scheme} scheme chooses its own steps and takes no dt; bound them with max_step, "
                         "or choose scheme 'implicit' for a fixed step")
    cfl = 0.9 if cfl is None else cfl
    if not 0 < cfl <= 1:
        raise ValueError(f"cfl must be in (0, 1], got {cfl}")
    max_step = np.inf if max_step is None else max_step
    if not max_step > 0:
        raise ValueError(f"max_step must be > 0, got {max_step}")
    return cfl, max_step, None


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
        The current bound on the step (halved on a rejection, doubled after an accepted
        step).
    accepted, rejected : int
        Step counts so far.
    history : dict of lists
        As :attr:`Solution.history`, up to ``t``.
    saved : list of arrays
        The densities at the save times reached so far.
    """

    t: float
    rho: np.ndarray
    cap: float
    accepted: int
    rejected: int
    history: dict
    saved: list


SCHEMES = ("explicit", "rkl2", "implicit")


def solve(energy, grid, rho0, t_span, *, save_at=None, scheme="explicit", cfl=None, dt=None,
          max_step=None, max_steps=10_000_000, progress=None, checkpoint=None, resume=None):
    """Evolve ∂tρ = ∇·(ρ ∇F'(ρ)) on a grid (or a :class:`solver.fem.Mesh`) from ``rho0`` over ``t_span``.

    Parameters
    ----------
    energy : Energy
        The free energy F (a term or a sum of terms).
    grid : Grid or solver.fem.Mesh
        The grid, or a mesh (schemes "explicit" and "implicit", serial or under MPI;
        see :mod:`solver.fem`); ``rho0`` has its shape.
    rho0 : array
        Initial density (cell values, ≥ 0, finite, positive mass).
    t_span : (t0, t1)
        Start and end time, t0 < t1.
    save_at : sequence of float, optional
        Increasing times at which to keep ρ (default: t0 and t1); steps land on them exactly.
    scheme : {"explicit", "rkl2", "implicit"}
        Second-order upwind in space with, in time: SSP-RK2 and adaptive steps
        (``"explicit"``, a convex combination of positive Euler steps); RKL2 super-steps of up to
        ``RKL_MAX_STAGES`` stages (``"rkl2"``, explicit and second order, many times
        cheaper when diffusion limits the step, see :class:`SuperStep`); or backward
        Euler with Newton (``"implicit"``, first-order upwind, first order in time; for
        diffusion-dominated problems, at steps far beyond the explicit limit).
    cfl : float, optional
        Explicit schemes only: fraction of the forward-Euler limits used (default 0.9).
    dt : float, optional
        Implicit scheme only: the step (halved on rejection, regrown after); default
        (t1 − t0)/100.
    max_step : float, optional
        Explicit schemes only: an upper bound on the step, for accuracy in time when the
        stability limit allows long steps (slow transport); default none. An option given
        to a scheme it does not apply to is refused (ValueError), not ignored.
    max_steps : int
        Give up (RuntimeError) after this many attempted steps.
    progress : bool, optional
        Show a tqdm bar; by default only in a terminal and after a second.
    checkpoint : callable, optional
        Called as ``checkpoint(state)`` with a :class:`State` after every accepted step
        (its lists are the loop's own: write them out before returning).
    resume : State, optional
        Continue from this state of an earlier call with the same arguments, instead of
        from ``rho0``; the result is then bit for bit that of an uninterrupted call
        (``wall_time`` counts only this call).

    Returns
    -------
    Solution

    Raises
    ------
    SimulationError
        When a step gives a non-finite density, energy or first variation (a NaN in
        F', say): its
        ``partial`` is the :class:`Solution` up to the last finite state.

    Notes
    -----
    The first call asks glibc's malloc to keep freed memory for reuse, for the whole
    process (:func:`keep_freed_memory`: fewer page faults; set ``MALLOC_TOP_PAD_`` to
    choose otherwise).
    """
    cfl, max_step, dt = check_scheme_options(scheme, dt, max_step, cfl)
    rho = grid.check_density(rho0, "rho0").copy()
    t0, t1, save_times = check_times(t_span, save_at)
    energy.check(grid)
    if scheme == "implicit":
        dt_max = (t1 - t0) / 100 if dt is None else float(dt)
    if hasattr(grid, "stepper"):  # a mesh (solver.fem.Mesh) brings its own steps
        stepper = grid.stepper(scheme, energy, cfl)
    elif scheme == "implicit":
        stepper = ImplicitStep(energy, grid)
    else:
        stepper = (SuperStep if scheme == "rkl2" else ExplicitStep)(energy, grid, cfl)
    start = time.perf_counter()
    if resume is not None:
        if not (t0 <= resume.t <= t1 and len(resume.saved) <= len(save_times)):
            raise ValueError(f"resume: a state at t = {resume.t} with {len(resume.saved)} saves does not belong "
                             f"to t_span ({t0}, {t1}) with {len(save_times)} save times")
        rho = grid.check_density(resume.rho, "resume.rho").copy()
    value, xi = energy.value_and_first_variation(rho, grid)
    if resume is None:
        t, cap, accepted, rejected = t0, (dt_max if scheme == "implicit" else np.inf), 0, 0
        history = {"t": [t], "dt": [0.0], "energy": [value], "mass": [grid.integrate(rho)], "min": [rho.min()]}
        saved = [rho.copy()] if save_times[0] == t0 else []
    else:
        t, cap, accepted, rejected = resume.t, resume.cap, resume.accepted, resume.rejected
        history = {key: list(values) for key, values in resume.history.items()}
        saved = list(resume.saved)
    pending = list(save_times[len(saved):])
    bar = tqdm(total=t1 - t0, initial=t - t0, disable=None if progress is None else not progress, delay=1.0,
               unit="t", bar_format="{l_bar}{bar}| t={n:.3g}/{total:.3g} [{elapsed}<{remaining}]")
    keep_freed_memory()
    with bar, one_blas_thread():
        while pending:
            if accepted + rejected >= max_steps:
                raise RuntimeError(f"solve: max_steps={max_steps} reached at t={t:.6g} before t1={t1}")
            if scheme != "implicit":
                rate, limit = stepper.suggest(rho, xi)
                step = min(limit, cap, max_step, pending[0] - t)
                new = stepper.attempt(rho, rate, step)
            else:
                step = min(cap, pending[0] - t)
                new = stepper.attempt(rho, step)
            if new is not None:
                new_value, new_xi = energy.value_and_first_variation(new, grid)
                new_mass = grid.integrate(new)  # a NaN or inf anywhere makes it non-finite
                # ξ too: the kernels skip faces between empty cells, where a NaN in ξ would not show
                if not (np.isfinite(new_value) and np.isfinite(new_mass) and np.isfinite(new_xi).all()):
                    partial = Solution(grid, energy, scheme, np.append(save_times[: len(saved)], t),
                                       np.array([*saved, rho]), {key: np.array(val) for key, val in history.items()},
                                       accepted, rejected, time.perf_counter() - start)
                    raise SimulationError(
                        f"solve: non-finite density, energy or first variation at step {accepted + 1} (from "
                        f"t = {t:.6g} by dt = {step:.3g}); the run stopped there: .partial holds the saves reached "
                        f"and the state at t = {t:.6g}; check the energy's first variation for NaN", partial)
                if new_value > value and new_value > value + energy_tolerance(rho, xi, grid):  # the sum only if needed
                    new = None
            if new is None:
                rejected += 1
                cap = step / 2
                if cap < 1e-14 * (t1 - t0):
                    raise RuntimeError(f"solve: the step fell below {cap:.3g} at t={t:.6g}")
                continue
            accepted += 1
            cap = min(2 * cap, dt_max if scheme == "implicit" else np.inf)
            t = pending[0] if step == pending[0] - t else t + step
            rho, value, xi = new, new_value, new_xi
            for key, item in zip(history, (t, step, value, new_mass, rho.min())):
                history[key].append(item)
            bar.update(step)
            if t == pending[0]:
                saved.append(rho.copy())
                pending.pop(0)
            if checkpoint is not None:
                checkpoint(State(t, rho, cap, accepted, rejected, history, saved))
    return Solution(
        grid=grid, energy=energy, scheme=scheme, t=save_times, rho=np.array(saved),
        history={key: np.array(val) for key, val in history.items()},
        accepted=accepted, rejected=rejected, wall_time=time.perf_counter() - start,
    )
