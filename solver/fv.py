"""Finite volumes on Cartesian grids, the spatial operators of :class:`~solver.grid.Grid`:
the upwind rate, its forward-Euler step limits and the Newton matrix of its first-order
variant. The time loop that uses them is :mod:`solver.timeloop`.

With u = −∂ξ/∂x on a face (ξ = F'(ρ)) and the upwind value ρ_up of the limited linear
reconstruction, the flux is u ρ_up: mass is conserved to round-off (fluxes cancel in
pairs) and the semi-discrete scheme dissipates the discrete energy exactly,
dF/dt = −Σ_faces u · flux |cell| ≤ 0, since the upwind flux has the sign of u.
"""

import functools

import numpy as np
import scipy.sparse

from .discretization import checked_out
from .kernels.upwind import grid_rate, positivity_rate

BANDS = (2, 2)  # sub- and super-diagonals of the second-order upwind Jacobian on a 1D grid


def upwind_rate(rho, xi, grid, second_order=True, *, out=None, kernel=grid_rate):
    """dρ/dt = −div(flux) of the upwind scheme.

    Parameters
    ----------
    rho, xi : arrays of the grid's shape
        The density and ξ = F'(ρ).
    grid : Grid
        Its cell widths and periodic axes.
    second_order : bool
        Limited linear reconstruction (else first-order upwind).
    out : array, optional
        A writable, C-contiguous float array of the grid's shape, sharing no memory with
        ``rho`` and ``xi``, to write the rate into (:func:`~solver.discretization.checked_out`).
    kernel : callable
        :func:`~solver.kernels.upwind.grid_rate` or its NumPy reference.
    """
    rho = np.ascontiguousarray(rho, dtype=float)
    xi = np.ascontiguousarray(xi, dtype=float)
    rate = checked_out(out, grid.shape, "upwind_rate", (rho, xi))
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


def upwind_jacobian(rho, xi, curvature, dt, faces, neighbours=None):
    """I − dt dL/dρ as a sparse matrix, L the first-order upwind rate, or the second-order
    one if ``neighbours`` (:func:`neighbours`) is given; without its zeros (the neighbours of
    flat slopes, wrapped around walls too: fill-in for an LU).

    On a face with u = −(ξ_E − ξ_W)/h, flux = u⁺ρ⁺_W + u⁻ρ⁻_E, with the face values
    ρ⁺_W = ρ_W + s_W/2 and ρ⁻_E = ρ_E − s_E/2 of the limited reconstruction (s = 0 at first
    order). With ∂ξ_i/∂ρ_i = f''(ρ_i) = ``curvature`` (the local terms; nonlocal couplings
    are left out) and ρ_up the upwind face value (ρ⁺_W if u > 0, else ρ⁻_E),

        dflux/dρ_k = u⁺ ∂ρ⁺_W/∂ρ_k + u⁻ ∂ρ⁻_E/∂ρ_k + ρ_up (f''_W δ_kW − f''_E δ_kE)/h,

    where the slope s_c of a cell, one of the three arguments of its limiter (or 0), is
    linear in ρ_(c−1), ρ_c, ρ_(c+1) with the coefficients of :func:`slope_derivatives`:
    the exact derivative wherever the limiter's choice and the upwind side do not switch.
    The flux leaves W and enters E at rate flux/h. ``faces`` as :func:`faces` gives them.
    """
    n = rho.size
    rows, cols, vals = _jacobian_entries(rho, xi, curvature, dt, faces, neighbours)
    matrix = scipy.sparse.csc_matrix((vals, (rows, cols)), shape=(n, n))
    matrix.eliminate_zeros()
    return matrix


def upwind_jacobian_bands(rho, xi, curvature, dt, faces, neighbours=None):
    """The matrix of :func:`upwind_jacobian` on a 1D grid with walls, in the band storage of
    ``scipy.linalg.solve_banded`` with ``BANDS`` = (2, 2) sub- and super-diagonals: A_ij at
    ``[2 + i − j, j]`` (the second-order flux of a face couples the cells W − 1 to E + 1;
    the zeros wrapped around the walls are left out)."""
    rows, cols, vals = _jacobian_entries(rho, xi, curvature, dt, faces, neighbours)
    inside = vals != 0
    lower, upper = BANDS
    band = lower + 1 + upper
    flat = (upper + rows[inside] - cols[inside]) * rho.size + cols[inside]
    return np.bincount(flat, weights=vals[inside], minlength=band * rho.size).reshape(band, rho.size)


def _jacobian_entries(rho, xi, curvature, dt, faces, neighbours):
    """(rows, columns, values) of :func:`upwind_jacobian`'s matrix, repeated entries to be summed."""
    r, x = rho.ravel(), xi.ravel()
    curvature = np.broadcast_to(curvature, rho.shape).ravel()
    rows, cols, vals = [np.arange(r.size)], [np.arange(r.size)], [np.ones(r.size)]
    for axis, (west, east, inv_h) in enumerate(faces):
        u = -(x[east] - x[west]) * inv_h
        ahead, behind = np.maximum(u, 0), np.minimum(u, 0)
        if neighbours is None:
            upwind, columns, at = np.where(u > 0, r[west], r[east]), [west, east], 0  # columns[at] is west
            d_flux = [ahead, behind]
        else:
            before, after, derivative = neighbours[axis](r)
            slope = derivative[0] * r[before] + derivative[1] * r + derivative[2] * r[after]
            upwind = np.where(u > 0, r[west] + 0.5 * slope[west], r[east] - 0.5 * slope[east])
            columns, at = [before[west], west, east, after[east]], 1
            d_flux = [0.5 * ahead * derivative[0][west],
                      ahead * (1 + 0.5 * derivative[1][west]) - 0.5 * behind * derivative[0][east],
                      behind * (1 - 0.5 * derivative[1][east]) + 0.5 * ahead * derivative[2][west],
                      -0.5 * behind * derivative[2][east]]
        d_flux[at] = d_flux[at] + upwind * curvature[west] * inv_h
        d_flux[at + 1] = d_flux[at + 1] - upwind * curvature[east] * inv_h
        # rate[west] -= flux·inv_h, rate[east] += flux·inv_h
        for cell, sign in ((west, dt * inv_h), (east, -dt * inv_h)):
            rows += [cell] * len(columns)
            cols += columns
            vals += [sign * d for d in d_flux]
    return np.concatenate(rows), np.concatenate(cols), np.concatenate(vals)


def slope_derivatives(rho, before, after, interior):
    """(∂s/∂ρ_(c−1), ∂s/∂ρ_c, ∂s/∂ρ_(c+1)) of the monotonized-central slope of every cell,
    s = minmod(2(ρ_c − ρ_(c−1)), (ρ_(c+1) − ρ_(c−1))/2, 2(ρ_(c+1) − ρ_c)): (−2, 2, 0),
    (−½, 0, ½) or (0, −2, 2) for the argument the limiter takes, 0 where it gives 0 and
    outside ``interior`` (the cells next to a wall); ``before``, ``after`` are the flat
    indices of the neighbours along the axis."""
    arguments = np.stack([2 * (rho - rho[before]), 0.5 * (rho[after] - rho[before]), 2 * (rho[after] - rho)])
    positive, negative = np.all(arguments > 0, axis=0), np.all(arguments < 0, axis=0)
    chosen = np.where(positive, np.argmin(arguments, axis=0), np.argmax(arguments, axis=0))
    active = (positive | negative) & interior
    table = np.array([[-2.0, 2.0, 0.0], [-0.5, 0.0, 0.5], [0.0, -2.0, 2.0]])
    return table[chosen].T * active


def neighbours(grid):
    """Per axis, ``ρ ↦ (before, after, slope derivatives)`` for :func:`upwind_jacobian`: the flat
    indices of each cell's neighbours along the axis (wrapped; the cells next to a wall have
    no slope) and :func:`slope_derivatives` at ρ (raveled)."""
    index = np.arange(grid.size).reshape(grid.shape)
    per_axis = []
    for axis in range(grid.dim):
        before, after = np.roll(index, 1, axis=axis).ravel(), np.roll(index, -1, axis=axis).ravel()
        interior = np.ones(grid.shape, dtype=bool)
        if not grid.periodic[axis]:
            interior[(slice(None),) * axis + (0,)] = interior[(slice(None),) * axis + (-1,)] = False
        per_axis.append(functools.partial(_with_slopes, before, after, interior.ravel()))
    return per_axis


def _with_slopes(before, after, interior, rho):
    """(before, after, :func:`slope_derivatives`) of one axis (see :func:`neighbours`)."""
    return before, after, slope_derivatives(rho, before, after, interior)


def faces(grid):
    """Flat indices of the (west, east) cells of every face that carries flux, per axis."""
    index = np.arange(grid.size).reshape(grid.shape)
    per_axis = []
    for axis in range(grid.dim):
        west = index if grid.periodic[axis] else np.delete(index, -1, axis=axis)
        east = np.roll(index, -1, axis=axis) if grid.periodic[axis] else np.delete(index, 0, axis=axis)
        per_axis.append((west.ravel(), east.ravel(), 1.0 / grid.h[axis]))
    return per_axis

