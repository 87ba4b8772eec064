"""Cartesian cell-centred grids in 1D, 2D and 3D with per-axis boundary conditions: a
:class:`~solver.discretization.Discretization` whose spatial operators are the upwind
finite volumes of :mod:`solver.fv`."""

import functools
import math
import operator
from collections.abc import Iterable

import numpy as np
import scipy.fft
import scipy.linalg
import scipy.sparse
import scipy.sparse.linalg

from . import fv
from .discretization import Discretization, sampled_kernel
from .domains import composite_gauss
from .kernels.upwind import grid_stage

BOUNDARY_CONDITIONS = ("wall", "periodic")
STENCIL_LIMIT = 1e5  # cells of a cell-averaged kernel (each an integral over its cell, in Python)


class Grid(Discretization):
    """A box ``[lo_1, hi_1] × … × [lo_d, hi_d]`` cut into ``shape`` equal cells.

    Densities on the grid are arrays of ``shape`` holding cell averages of a density
    (not per-cell masses): the mass is ``grid.integrate(rho) = Σ ρ_i |cell|``.

    Parameters
    ----------
    bounds : sequence of (lo, hi)
        One pair per axis, ``lo < hi``.
    shape : int or sequence of int
        Cells per axis (an int is used for every axis), each ≥ 2.
    bc : str or sequence of str
        ``"wall"`` (no flux through the boundary, the default) or ``"periodic"``,
        for all axes or one per axis.
    """

    def __init__(self, bounds, shape, bc="wall"):
        bounds = np.asarray(bounds, dtype=float)
        if bounds.ndim != 2 or bounds.shape[1] != 2 or not 1 <= len(bounds) <= 3:
            raise ValueError(
                f"bounds must be 1 to 3 pairs (lo, hi), got {bounds.tolist()}; "
                "e.g. bounds=[(-2, 2), (-2, 2)] for a 2D box"
            )
        if not np.all(np.isfinite(bounds)) or np.any(bounds[:, 1] <= bounds[:, 0]):
            raise ValueError(f"bounds must be finite with lo < hi on every axis, got {bounds.tolist()}")
        dim = len(bounds)
        try:  # an integer type only: 16.7 cells is an error, not 16
            shape = (operator.index(shape),) * dim if np.isscalar(shape) else tuple(map(operator.index, shape))
        except TypeError:
            raise ValueError(f"shape must give whole cell counts (integers), got {shape!r}") from None
        if len(shape) != dim or min(shape) < 2:
            raise ValueError(f"shape must give {dim} cell counts, each >= 2, got {shape}")
        bc = tuple(bc) if isinstance(bc, Iterable) and not isinstance(bc, str) else (bc,) * dim
        unknown = [name for name in bc if not (isinstance(name, str) and name in BOUNDARY_CONDITIONS)]
        if len(bc) != dim or unknown:
            raise ValueError(
                f"bc must be one of {BOUNDARY_CONDITIONS} or {dim} of them (one per axis), "
                f"got {bc!r}"
            )
        self.bounds = bounds
        self.shape = shape
        self.bc = bc
        self.dim = dim
        self.periodic = tuple(name == "periodic" for name in bc)
        with np.errstate(over="ignore", under="ignore"):
            self.h = (bounds[:, 1] - bounds[:, 0]) / np.array(shape)
            self.cell_volume = float(np.prod(self.h))
        if not 0 < self.cell_volume < np.inf:  # hi − lo overflows for bounds near ±1.8e308; a cell may underflow
            raise ValueError(f"bounds {bounds.tolist()} with {shape} cells give cells of sides {self.h.tolist()}: "
                             "a cell's volume must be a positive finite number")
        self.axes = tuple(lo + (np.arange(n) + 0.5) * h for (lo, _), n, h in zip(bounds, shape, self.h))

    def __repr__(self):
        return f"Grid(bounds={self.bounds.tolist()}, shape={self.shape}, bc={self.bc})"

    @property
    def size(self):
        """Number of cells."""
        return int(np.prod(self.shape))

    @property
    def points(self):
        """Cell centres, an array of shape ``shape + (dim,)``."""
        return np.stack(np.meshgrid(*self.axes, indexing="ij"), axis=-1)

    @property
    def weights(self):
        """Quadrature weights of the cells (their volumes), an array of ``shape``."""
        return np.full(self.shape, self.cell_volume)

    @property
    def separable_axes(self):
        """The cell centres along each axis (``points`` is their tensor product)."""
        return self.axes

    def cell_averages(self, f, nodes=6):
        """Averages of ``f(x)`` (points of shape (..., d) → values) over every cell, by a
        tensor Gauss–Legendre rule with ``nodes`` points per axis.

        Use it for initial data and exact solutions: a point sample at the cell centre
        differs from the average by O(h²), and erratically so near a kink such as a
        free boundary, which shows up as a mass error.
        """
        x, w = np.polynomial.legendre.leggauss(nodes)
        total = np.zeros(self.shape)
        for index in np.ndindex(*(nodes,) * self.dim):
            offset = np.array([x[i] for i in index]) * self.h / 2
            values = np.asarray(f(self.points + offset), dtype=float)
            if values.shape != self.shape:
                raise ValueError(f"cell_averages: f must map points of shape (..., {self.dim}) to values of shape "
                                 f"(...): for points of shape {self.points.shape} it gave {values.shape}")
            total += np.prod([w[i] for i in index]) * values
        return total / 2**self.dim

    def initial_density(self, f):
        """The cell averages of ``f`` (:meth:`cell_averages`)."""
        return self.cell_averages(f)

    # -- reductions: one process holds every cell --------------------------------------
    def integrate(self, values):
        """``Σ_i values_i |cell|``: the integral of a cell-wise function."""
        return float(np.asarray(values).sum()) * self.cell_volume

    def minimum(self, values):
        """min_i values_i."""
        return float(np.asarray(values).min())

    def maximum(self, values):
        """max_i values_i."""
        return float(np.asarray(values).max())

    def maxima(self, values):
        """The numbers themselves, as an array (one process)."""
        return np.asarray(values, dtype=float)

    def global_sum(self, number):
        """The number itself (one process)."""
        return number

    def all_finite(self, values):
        """Whether every value is finite."""
        return bool(np.isfinite(values).all())

    def check_density(self, rho, name="rho0"):
        """Return ``rho`` as a float array after checking it is a density on this grid.

        Raises ``ValueError`` naming ``name`` if its shape differs from the grid's, if it
        holds NaN, infinite or negative values, or if its mass is zero.
        """
        rho = np.asarray(rho, dtype=float)
        if rho.shape != self.shape:
            raise ValueError(
                f"{name} has shape {rho.shape} but the grid has shape {self.shape}: "
                "give one value per cell (e.g. evaluate on grid.points)"
            )
        if not np.all(np.isfinite(rho)):
            raise ValueError(f"{name} holds NaN or infinite values: a density must be finite")
        if rho.min() < 0:
            raise ValueError(f"{name} has negative values (min {rho.min():.3g}): a density must be >= 0")
        if self.integrate(rho) <= 0:
            raise ValueError(f"{name} has zero mass: give a density with positive integral")
        return rho

    # -- the upwind finite volumes of solver.fv --------------------------------------------
    def rate(self, rho, xi, second_order=True, out=None):
        """The upwind rate −div(flux) (:func:`solver.fv.upwind_rate`)."""
        return fv.upwind_rate(rho, xi, self, second_order, out=out)

    def step_limits(self, rho, xi, diffusivity):
        """The forward-Euler limits (transport, parabolic) of :func:`solver.fv.step_limits`."""
        return fv.step_limits(xi, diffusivity, self)

    def rkl2_stage(self, current, xi, previous, start, start_rate, coefficients, out):
        """The RKL2 stage in the pass of the second-order rate
        (:func:`~solver.kernels.upwind.grid_stage`; ``out`` C-contiguous, sharing no memory
        with the other arrays)."""
        return grid_stage(current, np.ascontiguousarray(xi, dtype=float), self._inverse_h, self.periodic, True,
                          previous, start, start_rate, np.asarray(coefficients, dtype=float), out)

    def implicit_rate(self, rho, xi):
        """The first-order upwind rate."""
        return fv.upwind_rate(rho, xi, self, second_order=False)

    def jacobian(self, rho, xi, curvature, dt, second_order=False):
        """I − dt dL/dρ of the first-order upwind rate, or of the second-order one
        (:func:`solver.fv.upwind_jacobian`)."""
        return fv.upwind_jacobian(rho, xi, curvature, dt, self._faces, self._neighbours if second_order else None)

    def factor_jacobian(self, rho, xi, curvature, dt, second_order=False):
        """The solve ``rhs ↦ (I − dt ∂L/∂ρ)⁻¹ rhs``: on a 1D grid with walls the band matrix
        (two sub- and two super-diagonals, :func:`solver.fv.upwind_jacobian_bands`), solved by
        the banded LU of LAPACK at each call (linear cost, no symbolic analysis); otherwise
        (2D, 3D, a periodic 1D grid) SuperLU's LU of P A Pᵀ, P the grid's
        :func:`nested_dissection` order (the fill of an LU in that order grows like n log n in
        2D, where a minimum-degree order has none of the grid's geometry to go by: at 256² it
        factors 2–4 times faster than the minimum degree on Aᵀ + A with SuperLU's default
        pivoting, the meshes' LU, and about 1.4 times faster with the same pivoting as here,
        although that order's LU holds about half as many nonzeros), with threshold pivoting
        that keeps the diagonal as the pivot where it is at least a tenth of its column's
        largest entry and pivots otherwise (at fixed velocities I − dt ∂L₁/∂ρ is an M-matrix
        transposed: its diagonal is the largest entry of its column)."""
        if self._banded:
            neighbours = self._neighbours if second_order else None
            bands = fv.upwind_jacobian_bands(rho, xi, curvature, dt, self._faces, neighbours)
            return functools.partial(scipy.linalg.solve_banded, fv.BANDS, bands, check_finite=False)
        order = self._dissection
        matrix = self.jacobian(rho, xi, curvature, dt, second_order)[order][:, order].tocsc()
        factors = scipy.sparse.linalg.splu(matrix, permc_spec="NATURAL", diag_pivot_thresh=0.1,
                                           options={"SymmetricMode": True})

        def solve(rhs):
            solution = np.empty(self.size)
            solution[order] = factors.solve(rhs.ravel()[order])
            return solution.reshape(rhs.shape)

        return solve

    def error_norm(self, values):
        r"""On a 1D grid the mean over Ω of the cumulative mass's absolute value,

            ‖v‖ = (1/|Ω|) ∫_Ω |∫_lo^x v| dx = (h/|Ω|) Σ_i |Σ_(k≤i) v_k h|,

        which for two densities of equal mass is their W1 (earth mover's) distance over |Ω|
        (on a periodic axis an upper bound of it): the natural norm of a Wasserstein flow, and
        one that a front's displacement by a fraction of a cell changes by that fraction,
        not by the density's jump as in L1. ‖v‖ ≤ ∫|v|. In 2D and 3D: ∫|v| (L1)."""
        if self.dim != 1:
            return super().error_norm(values)
        return float(np.sum(np.abs(np.cumsum(values)))) * self.cell_volume**2 / (self.bounds[0, 1] - self.bounds[0, 0])

    @functools.cached_property
    def on_boundary(self):
        """The cells along a wall (the first and last along each axis that is not periodic)."""
        mask = np.zeros(self.shape, dtype=bool)
        for axis, periodic in enumerate(self.periodic):
            if not periodic:
                ends = [slice(None)] * self.dim
                ends[axis] = [0, -1]
                mask[tuple(ends)] = True
        return mask

    @functools.cached_property
    def _banded(self):
        return self.dim == 1 and not self.periodic[0]

    @property
    def keeps_factors(self):
        """False on a 1D grid with walls (a banded solve, about the cost of one rate), else True."""
        return not self._banded

    @functools.cached_property
    def _dissection(self):
        return nested_dissection(self.shape, self.periodic)

    @functools.cached_property
    def _faces(self):
        return fv.faces(self)

    @functools.cached_property
    def _neighbours(self):
        return fv.neighbours(self)

    @functools.cached_property
    def _inverse_h(self):
        return 1.0 / self.h

    # -- results -------------------------------------------------------------------------------
    def write_results(self, folder, times, densities):
        """No files of its own; the arrays: ``bounds``."""
        return {}, {"bounds": self.bounds}

    # -- fast paths offered to the energies --------------------------------------------------
    def kernel_convolution(self, W):
        """The operator ``values ↦ (W ∗ values)_i = Σ_j W(x_i − x_j) values_j |cell|`` on the
        cells, for an even kernel ``W(z)`` of displacements z (..., d) → (...).

        W is sampled once, here, at the grid's displacements; the operator convolves by
        FFT (``scipy.fft``): zero-padded to twice the cells along wall axes (a linear
        convolution), circular along periodic axes, where the displacement is taken to its
        nearest periodic image. The sum is exact for the cell values. ``ValueError`` if W
        is not finite or not even at some displacement, or not of their shape
        (:func:`~solver.discretization.sampled_kernel`).
        """
        offsets, fft_shape = [], []
        for n, h, periodic in zip(self.shape, self.h, self.periodic):
            size = n if periodic else 2 * n
            k = np.arange(size)
            offsets.append(np.where(k <= size // 2, k, k - size) * h)  # signed offsets (nearest image)
            fft_shape.append(size)
        values = sampled_kernel(W, np.stack(np.meshgrid(*offsets, indexing="ij"), axis=-1), self)
        return functools.partial(_fft_convolution, scipy.fft.rfftn(values), tuple(fft_shape),
                                 tuple(slice(0, n) for n in self.shape), self.cell_volume)

    def cell_average_stencil(self, kernel, radius):
        """The cell averages κ_k = (1/|cell|) ∫_(cell k) K(y) dy of a kernel K ≥ 0 that vanishes
        outside the ball of ``radius`` δ, scaled to unit mass (Σ_k κ_k |cell| = 1).

        The cells k = (k_1, …, k_d) are those around the origin's cell that the support
        reaches, |k_a| ≤ r_a = ⌈δ/h_a + ½⌉ − 1: an array of shape (2r_a + 1)_a. With it,
        :meth:`stencil_convolution` is exact for piecewise constant values. For δ < h/2 the
        stencil is the identity (κ_0 = 1/|cell|): the kernel lies in the centre cell. The
        averages use composite Gauss rules with sub-intervals ≤ δ/8 (relative error about
        1e-9 for the C^∞ bump) before the scaling.

        Parameters
        ----------
        kernel : callable
            K(y) for points y (..., d) → values (...), of any positive mass.
        radius : float
            δ > 0.
        """
        h = self.h
        if radius < 0.5 * h.min():  # the ball of radius δ lies inside the centre cell
            return np.full((1,) * self.dim, 1 / self.cell_volume)
        reach = [max(0, math.ceil(radius / ha + 0.5) - 1) for ha in h]
        if math.prod(2 * r + 1 for r in reach) > STENCIL_LIMIT:
            raise ValueError(f"a kernel of radius {radius:g} spans more than {STENCIL_LIMIT:.0e} cells of h = "
                             f"{h.tolist()}: take a narrower one")
        pieces = math.ceil(8 * h.max() / radius)
        rules = []
        for r, ha in zip(reach, h):
            x, w = composite_gauss(-0.5 * ha, 0.5 * ha, ha / pieces)
            rules.append((np.arange(-r, r + 1)[:, None] * ha + x[None, :], w / ha))  # a mean over the cell
        stencil = np.zeros([2 * r + 1 for r in reach])
        mean_weights = np.prod(np.meshgrid(*[w for _, w in rules], indexing="ij"), axis=0)
        for k in np.ndindex(*stencil.shape):
            points = np.stack(np.meshgrid(*[rules[a][0][k[a]] for a in range(self.dim)], indexing="ij"), axis=-1)
            stencil[k] = np.sum(mean_weights * kernel(points))
        return stencil / (np.sum(stencil) * self.cell_volume)

    def stencil_convolution(self, values, stencil, method="auto"):
        """(κ ∗ values)_i = Σ_k κ_k values_(i−k) |cell| for a stencil of odd shape centred on
        the origin's cell (:meth:`cell_average_stencil`): zero beyond walls, wrapped around
        periodic axes. ``method`` ("auto", "fft" or "direct") goes to
        ``scipy.signal.convolve`` ("auto": ``scipy.signal.choose_conv_method``)."""
        import scipy.signal  # here, not at the top: it imports scipy.stats, a fifth of `import solver`'s time

        pad = [(s // 2, s // 2) if periodic else (0, 0) for s, periodic in zip(stencil.shape, self.periodic)]
        if any(self.periodic):
            values = np.pad(values, pad, mode="wrap")
        if method == "auto":
            method = scipy.signal.choose_conv_method(values, stencil, mode="same")
        convolved = scipy.signal.convolve(values, stencil, mode="same", method=method)
        if any(self.periodic):
            convolved = convolved[tuple(slice(a, a + n) for (a, _), n in zip(pad, self.shape))]
        return convolved * self.cell_volume

    def diffusion_matrix(self, coefficient):
        """The finite-volume matrix A of u ↦ −∇·(a∇u) on the cells, as ``scipy.sparse`` CSR:
        (Au)_i = Σ_faces a_f (u_i − u_j)/h², a_f = ½(a_i + a_j) the mean of the two cells of
        the face; no flux through walls, periodic axes wrap. A is symmetric and ≥ 0, with
        the constants in its kernel.

        Parameters
        ----------
        coefficient : array of ``shape``
            a ≥ 0 at the cells.
        """
        a = np.asarray(coefficient, dtype=float).ravel()
        index = np.arange(self.size).reshape(self.shape)
        rows, cols, values = [], [], []
        for axis in range(self.dim):
            if self.periodic[axis]:
                west, east = index.ravel(), np.roll(index, -1, axis=axis).ravel()
            else:
                west, east = np.delete(index, -1, axis=axis).ravel(), np.delete(index, 0, axis=axis).ravel()
            face = 0.5 * (a[west] + a[east]) / self.h[axis] ** 2
            rows += [west, east, west, east]
            cols += [west, east, east, west]
            values += [face, face, -face, -face]
        return scipy.sparse.csr_matrix((np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
                                       shape=(self.size, self.size))


def nested_dissection(shape, periodic, separator=2, leaf=8):
    """The flat cell indices of a grid of ``shape`` in nested-dissection order (George 1973): a
    box is cut across its longest axis by a slab of ``separator`` cells, the two halves are
    ordered recursively (boxes of at most ``leaf`` cells per axis in their own order), then the
    slab. The second-order upwind Jacobian couples cells at most two apart along an axis, so
    a slab two cells wide leaves the halves uncoupled and an LU in this order fills in only
    inside the halves and the slabs. The cells on the seam of a periodic axis (its first and
    last layer) are ordered last: without them the box is one with walls.

    Parameters
    ----------
    shape : tuple of int
        Cells per axis.
    periodic : tuple of bool
        Per axis, whether it wraps around.
    separator, leaf : int
        The slab's width (the coupling distance) and the size below which a box is not cut.

    Returns
    -------
    array of int
        A permutation of ``range(prod(shape))``.
    """
    index = np.arange(math.prod(shape)).reshape(shape)
    seam = np.zeros(shape, dtype=bool)
    for axis, wraps in enumerate(periodic):
        if wraps and shape[axis] > 2:
            seam[(slice(None),) * axis + (0,)] = seam[(slice(None),) * axis + (-1,)] = True
    inner = tuple(slice(1, -1) if wraps and n > 2 else slice(None) for wraps, n in zip(periodic, shape))
    order = []

    def dissect(box):
        if max(box.shape) <= leaf:
            order.append(box.ravel())
            return
        axis = int(np.argmax(box.shape))
        start = box.shape[axis] // 2 - separator // 2
        halves = np.split(box, [start, start + separator], axis=axis)
        dissect(halves[0])
        dissect(halves[2])
        order.append(halves[1].ravel())

    dissect(index[inner])
    order.append(index[seam])
    return np.concatenate(order)


def _fft_convolution(transform, fft_shape, cells, cell_volume, values):
    """The convolution of :meth:`Grid.kernel_convolution` with the kernel's ``transform``."""
    convolved = scipy.fft.irfftn(scipy.fft.rfftn(values, fft_shape) * transform, fft_shape)
    return convolved[cells] * cell_volume
