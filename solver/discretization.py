r"""What a discretization of ∂tρ = ∇·(ρ∇F'(ρ)) answers: the protocol that the time loop and
the energies talk to, implemented by :class:`solver.grid.Grid` (cell-centred finite
volumes on a box) and :class:`solver.fem.Mesh` (vertex-centred finite volumes on a
simplicial mesh, possibly distributed over MPI ranks).

A density is held as an array of :attr:`~Discretization.shape`: one value per cell (grid,
cell averages) or per vertex this rank owns (mesh, nodal values), with quadrature
points x_i (:attr:`~Discretization.points`) and weights w_i (:attr:`~Discretization.weights`,
cell volumes or lumped masses), so that ∫g dx ≈ Σ_i w_i g(x_i) over all ranks.

The spatial operator is the semi-discrete flux form

    dρ_i/dt = L(ρ, ξ)_i = −(1/w_i) Σ_(faces or edges ij) F_ij,   ξ = F'(ρ),

with F_ij = −F_ji (mass is conserved to round-off: Σ_i w_i L_i = 0) and F_ij of the sign
of ξ_i − ξ_j (the energy dissipates: dF/dt = Σ_i w_i ξ_i L_i ≤ 0). A discretization gives
L (:meth:`~Discretization.rate`), the forward-Euler step limits of L (positivity of the
transport part, stability of the linearized diffusion; :meth:`~Discretization.step_limits`),
the rate of the implicit scheme and its Newton matrix I − dt ∂L/∂ρ
(:meth:`~Discretization.implicit_rate`, :meth:`~Discretization.jacobian`) and the solve with
it, factored for reuse (:meth:`~Discretization.factor_jacobian`), the norm of an adaptive
scheme's local error (:meth:`~Discretization.error_norm`), global reductions (every
decision of the time loop is taken on them, so that all MPI ranks take the same one),
initial data from a function and the writer of its own results.

Fast paths that only some discretizations have (per-axis tables on a Cartesian grid,
FFT convolutions) are attributes or methods that are ``None`` here: a consumer asks for
them once and falls back to the general path, never tests the class.
"""

import abc
import math

import numpy as np
import scipy.sparse.linalg


class Discretization(abc.ABC):
    """A discretization of a domain Ω ⊂ R^d for densities (see the module doc).

    Attributes
    ----------
    dim : int
        The dimension d.
    shape : tuple of int
        The shape of a density on this rank.
    points : array, ``shape + (dim,)``
        The quadrature points (cell centres, vertices).
    weights : array, ``shape``
        The quadrature weights w_i (cell volumes, lumped masses).
    ranks : int
        The number of MPI ranks the points are split over: 1 on one process, and for a grid
        (every rank holds every cell); the communicator's size for a mesh under MPI.
    separable_axes : tuple of arrays or None
        On a Cartesian grid, the coordinates along each axis (``points`` is their
        tensor product): energies may build per-axis tables instead of tables over
        all points. None elsewhere.
    cell_average_stencil, stencil_convolution, diffusion_matrix : methods or None
        On a Cartesian grid (:class:`~solver.grid.Grid`): the cell averages of a kernel
        of compact support and the convolution with them (the bump networks), the
        finite-volume matrix of u ↦ −∇·(a∇u) (the bump limit's decay rate). None elsewhere.
    on_boundary : bool array of ``shape``, or None
        The points next to the boundary of Ω: a grid's cells along a wall, a mesh's vertices
        on its boundary (none on a closed surface or a periodic grid); None where the
        discretization does not say (species). What a run's summary checks an exact
        solution of R^d against (:func:`solver.cli.summary`).
    keeps_factors : bool
        Whether a simplified Newton method keeps a factored matrix of
        :meth:`factor_jacobian` across iterations (:meth:`solver.timeloop.BDF2.newton`): True
        where a factorization costs many evaluations of the rate (sparse LUs); False on a 1D
        grid with walls, whose banded solve costs about one.
    """

    dim: int
    shape: tuple
    points: np.ndarray
    weights: np.ndarray
    ranks = 1
    """The number of MPI ranks the points are split over (1: every point on this process)."""
    separable_axes = None
    keeps_factors = True
    cell_average_stencil = stencil_convolution = diffusion_matrix = on_boundary = None

    # -- global reductions (over every MPI rank; the plain answers on one process) ------
    @abc.abstractmethod
    def integrate(self, values):
        """Σ_i w_i values_i over the whole domain, a float (≈ ∫ values dx)."""

    @abc.abstractmethod
    def minimum(self, values):
        """min_i values_i over the whole domain, a float."""

    @abc.abstractmethod
    def maximum(self, values):
        """max_i values_i over the whole domain, a float."""

    @abc.abstractmethod
    def maxima(self, values):
        """The elementwise maxima over all ranks of a short list of per-rank numbers (one
        reduction for several maxima), an array."""

    @abc.abstractmethod
    def global_sum(self, number):
        """The sum over all ranks of a per-rank number (the number itself on one process)."""

    @property
    def global_size(self):
        """The number of points over all ranks: the most MPI ranks a run on it can use."""
        return self.global_sum(math.prod(self.shape))

    @abc.abstractmethod
    def all_finite(self, values):
        """Whether every value on every rank is finite, a bool."""

    def summary(self, rho, xi, stages=np.inf):
        """(∫ρ, min ρ, whether every ξ is finite, min of ``stages``) over the whole domain: what
        the time loop checks and records of each new state (ξ = F'(ρ)), with the minimum of
        the step's intermediate states (``stages``: this rank's, see
        :attr:`solver.timeloop.Stepper.stage_minimum`). A discretization over MPI ranks
        answers the four in one collective (:meth:`solver.fem.Mesh.summary`)."""
        return self.integrate(rho), self.minimum(rho), self.all_finite(xi), self.minimum([stages])

    def sums(self, values):
        """The elementwise sums Σ_ranks values over all ranks of an array of per-rank partial
        sums (one reduction; the same array on every rank), as a float array: the array
        itself on one process. A term whose values sum over the points (a network's output
        h(x) = Σ_j w_j Φ(θ_j, x) at its data) adds the ranks' parts with it."""
        return np.asarray(values, dtype=float)

    def gather(self, values):
        """(points (N, dim), values (N,)) of every point of the domain on every rank, the
        values of ``values`` (``shape``) in the points' order: what a term that sums over all
        pairs of points (x_i, x_j) needs of the other ranks (on one process: the points and
        values flattened). :class:`~solver.fem.Mesh` orders them by coordinates."""
        return self.points.reshape(-1, self.dim), np.asarray(values).ravel()

    # -- densities -------------------------------------------------------------------------
    @abc.abstractmethod
    def check_density(self, rho, name="rho0"):
        """``rho`` as a float array after checking that it is a density here: the right
        shape, finite, ≥ 0 and of positive mass; ``ValueError`` naming ``name`` otherwise."""

    @abc.abstractmethod
    def initial_density(self, f):
        """The density of ``f`` (a callable of points (..., d) → values) as this
        discretization holds it: cell averages on a grid, vertex values on a mesh."""

    def check_problem(self, energy, jacobian=False, species=None):
        """Raise ``ValueError`` if the time loop cannot run ``energy`` here (with the
        Newton ``jacobian`` if asked). Here: an energy that needs species
        (:attr:`~solver.energies.base.Energy.species`) runs on densities of exactly those
        species, ``species`` (the names a :class:`~solver.species.Species` on this
        discretization gives; None: one density)."""
        needed = energy.species
        if needed is not None and tuple(needed) != species:
            where = ("one density" if species is None else f"the species {species}")
            raise ValueError(f"{energy!r} needs the species {tuple(needed)} but the density holds {where}: run it on "
                             f"Species(discretization, {tuple(needed)})")

    # -- the spatial operators of the time loop --------------------------------------------
    @abc.abstractmethod
    def rate(self, rho, xi, second_order=True, out=None):
        """L(ρ, ξ) = dρ/dt of the explicit schemes, an array of ``shape`` (written into
        ``out`` if given); ``second_order`` asks for the limited reconstruction where the
        discretization has a first-order variant."""

    @abc.abstractmethod
    def step_limits(self, rho, xi, diffusivity):
        """(transport, parabolic): the global forward-Euler step limits of L at (ρ, ξ), ∞
        where a part is absent. ρ + dt L(ρ, ξ) ≥ 0 for dt ≤ transport; the linearized
        diffusion D Δρ, with D = ``diffusivity`` (max ρf''(ρ) on this rank), is stable for
        dt ≤ parabolic."""

    def rate_and_step_limits(self, rho, xi, diffusivity):
        """(:meth:`rate`, :meth:`step_limits`) at once, for discretizations whose kernel
        gives both in one pass."""
        return self.rate(rho, xi), self.step_limits(rho, xi, diffusivity)

    def rkl2_stage(self, current, xi, previous, start, start_rate, coefficients, out):
        """One RKL2 stage, written into ``out``:

            out = μ Y_(j−1) + ν Y_(j−2) + (1 − μ − ν) Y₀ + a L(Y_(j−1), ξ) + b L(Y₀),

        with (Y_(j−1), Y_(j−2), Y₀, L(Y₀)) = (``current``, ``previous``, ``start``,
        ``start_rate``) and (μ, ν, a, b) = ``coefficients``. Returns the number of negative
        values of ``out`` over all ranks. Here on :meth:`rate`; a grid does it in the
        rate's own pass.
        """
        mu, nu, a, b = coefficients
        rate = self.rate(current, xi)
        out[...] = mu * current + nu * previous + (1.0 - mu - nu) * start + a * rate + b * start_rate
        return self.global_sum(int(np.count_nonzero(out < 0)))

    @abc.abstractmethod
    def implicit_rate(self, rho, xi):
        """The rate L₁(ρ, ξ) of the backward-Euler scheme (a first-order or otherwise
        monotone variant of :meth:`rate`)."""

    @abc.abstractmethod
    def jacobian(self, rho, xi, curvature, dt, second_order=False):
        """I − dt ∂L₁/∂ρ as a ``scipy.sparse`` matrix (n × n, n the number of values on this
        rank), with ∂ξ_i/∂ρ_i = ``curvature`` (f''(ρ_i) of the local terms; the coupling
        of nonlocal terms is left out: an inexact Newton method); with ``second_order``,
        of the rate :meth:`rate` instead (the same where the discretization has one rate)."""

    def factor_jacobian(self, rho, xi, curvature, dt, second_order=False):
        """The solve ``rhs ↦ (I − dt ∂L/∂ρ)⁻¹ rhs`` (``rhs`` of ``shape``) with the matrix of
        :meth:`jacobian`, factored once for any number of right-hand sides (a simplified Newton
        method reuses it, :meth:`solver.timeloop.BDF2.newton`): a sparse LU with a
        minimum-degree order on the structure of Aᵀ + A (the matrix is structurally
        symmetric; on grids that order fills in about half as much as the default column
        order)."""
        matrix = self.jacobian(rho, xi, curvature, dt, second_order).tocsc()
        factors = scipy.sparse.linalg.splu(matrix, permc_spec="MMD_AT_PLUS_A")
        return lambda rhs: factors.solve(rhs.ravel()).reshape(rhs.shape)

    def error_norm(self, values):
        """The norm in which an adaptive scheme measures its local error (:class:`~solver.timeloop.BDF2`):
        here ∫|values| (L1); a 1D grid measures the cumulative mass instead (the W1 distance)."""
        return self.integrate(np.abs(values))

    # -- what the energies ask for ------------------------------------------------------------
    @abc.abstractmethod
    def kernel_convolution(self, W):
        """The operator ``values ↦ (W ∗ values)_i = Σ_j W(x_i − x_j) values_j w_j`` for an even
        kernel ``W(z)`` of displacements z (..., d) → (...), W sampled once here (a grid:
        by FFT; a mesh: the vertex-pair matrix)."""

    # -- results ---------------------------------------------------------------------------
    def whole(self, values):
        """``values`` (…, ``shape``) of every rank, as one array of the whole domain in the
        order of the arrays :meth:`write_results` gives (on one process: ``values``)."""
        return values

    def part(self, values):
        """The inverse of :meth:`whole`: this rank's values (…, ``shape``) of ``values`` of the
        whole domain in :meth:`whole`'s order (on one process: ``values``)."""
        return values

    @abc.abstractmethod
    def write_results(self, folder, times, densities):
        """Write this discretization's own files of a run (the densities at ``times``) into
        ``folder``; return (files, arrays): the files written (a dict of name → what it is
        for) and the arrays that describe the discretization in ``densities.npz`` (a dict
        of name → array)."""


def checked_out(out, shape, caller, inputs=()):
    """``out`` itself if it is a writable C-contiguous float array of ``shape`` that shares
    no memory with ``inputs``, a new array if it is None. The rate kernels write it in
    place, without checking bounds, while they read ``inputs``: a copy would lose what they
    write, a smaller array be written past, an overlap corrupt what they read."""
    shape = tuple(shape)
    if out is None:
        return np.empty(shape)
    if not (isinstance(out, np.ndarray) and out.shape == shape and out.dtype == float
            and out.flags.c_contiguous and out.flags.writeable):
        if isinstance(out, np.ndarray):
            got = (f"{out.dtype} {out.shape}" + ("" if out.flags.c_contiguous else ", not C-contiguous")
                   + ("" if out.flags.writeable else ", read-only"))
        else:
            got = type(out).__name__
        raise ValueError(f"{caller} writes into a writable, C-contiguous float array of shape {shape}, got {got}")
    if any(np.may_share_memory(out, values) for values in inputs):
        raise ValueError(f"{caller}'s out shares memory with its inputs (it is written while they are read)")
    return out


def sampled_kernel(W, displacements, discretization):
    """W at ``displacements`` (..., d) as a float array of shape (...), after checking, on
    every rank, that W maps each displacement to one finite value and is even,
    W(−z) = W(z) to round-off (the interaction's F' = W ∗ ρ is the first variation of
    ½∫∫W(x − y)ρ(x)ρ(y) only then). ``ValueError`` otherwise."""
    values = np.asarray(W(displacements), dtype=float)
    if values.shape != displacements.shape[:-1]:
        raise ValueError(f"W must map displacements of shape (..., d) to values of shape (...): for displacements of "
                         f"shape {displacements.shape} it gave {values.shape}")
    if not discretization.all_finite(values):
        raise ValueError("W is not finite at some displacement between the discretization's points")
    mirrored = np.asarray(W(-displacements), dtype=float)
    odd = not np.allclose(mirrored, values, rtol=1e-10, atol=1e-12 * np.abs(values).max(initial=0.0))
    if discretization.global_sum(int(odd)):
        raise ValueError("W must be even, W(−z) = W(z): it is not at some displacement between the discretization's "
                         "points")
    return values
