"""Upwind finite-volume fluxes of the continuity equation ∂tρ = ∇·(ρ ∇ξ), ξ = F'(ρ).

The scheme is that of Carrillo, Chertock and Huang (2015). Along one axis, the face
j − ½ lies between the cells j − 1 and j, and

    u_(j−½) = −(ξ_j − ξ_(j−1)) / h,
    flux_(j−½) = max(u, 0) ρ⁺_(j−1) + min(u, 0) ρ⁻_j,
    dρ_j/dt = −(flux_(j+½) − flux_(j−½)) / h,

where ρ⁺_c = ρ_c + s_c/2 and ρ⁻_c = ρ_c − s_c/2 are the east and west face values of a
limited linear reconstruction with the monotonized-central slope
s_c = minmod(2(ρ_c − ρ_(c−1)), (ρ_(c+1) − ρ_(c−1))/2, 2(ρ_(c+1) − ρ_c)) (s = 0 in the
cells next to a wall, and everywhere for the first-order scheme). Face values lie
between neighbouring cell values, so they are ≥ 0 when ρ is. Wall faces carry no flux;
along a periodic axis the last and first cells are neighbours.

An array is viewed as (a, n, b): a lines before an axis, n cells on it, b after it (a
C-contiguous reshape, so one kernel serves 1D, 2D and 3D).

:func:`grid_rate` is the Numba version; :func:`grid_rate_reference` is the plain NumPy
version it is tested against, one axis at a time (:func:`axis_rate_reference`). Both
set ``rate`` to the sum over the axes and can report max |u| per axis over the faces
that carry flux. ``fastmath`` is off: the fluxes must cancel exactly in the mass sum.
"""

import functools
import math

import numpy as np
from numba import njit, prange


@njit(cache=True, inline="always")
def _slope(left, centre, right):
    """Monotonized-central limited slope (times h) of a cell."""
    a, b, c = 2.0 * (centre - left), 0.5 * (right - left), 2.0 * (right - centre)
    return max(0.0, min(a, b, c)) + min(0.0, max(a, b, c))


@njit(cache=True, inline="always")
def _flux(xi_west, xi_east, west_value, east_value, inv_h):
    """Upwind flux at a face, u = −(ξ_east − ξ_west)/h."""
    u = -(xi_east - xi_west) * inv_h
    return max(u, 0.0) * west_value + min(u, 0.0) * east_value


ROWS = 16  # rows of cells per task of _rate_rows

# The loops over the cells of a row or line are functions of their own: inside the large
# parallel kernel LLVM did not vectorize them, on their own it does.


@njit(cache=True)
def _row_slopes(west, centre, east, slope):
    """The slopes of a row of cells ``centre`` between the rows ``west`` and ``east``."""
    for l in range(slope.size):
        slope[l] = _slope(west[l], centre[l], east[l])


@njit(cache=True)
def _row_fluxes(xi_west, xi_east, rho_west, rho_east, slope_west, slope_east, inv_h, flux):
    """The fluxes through the faces between the rows of cells ``west`` and ``east``."""
    for l in range(flux.size):
        flux[l] = _flux(xi_west[l], xi_east[l], rho_west[l] + 0.5 * slope_west[l], rho_east[l] - 0.5 * slope_east[l],
                        inv_h)


@njit(cache=True)
def _line_slopes(r, periodic, slope):
    """The slopes of a line of contiguous cells (0 in the cells next to a wall)."""
    n = r.size
    for j in range(1, n - 1):
        slope[j] = _slope(r[j - 1], r[j], r[j + 1])
    if periodic and n > 1:
        slope[0] = _slope(r[n - 1], r[0], r[1])
        slope[n - 1] = _slope(r[n - 2], r[n - 1], r[0])
    else:
        slope[0] = slope[n - 1] = 0.0


@njit(cache=True)
def _line_fluxes(r, x, slope, periodic, inv_h, flux):
    """flux[j]: the flux through the face j − ½ of a line of n contiguous cells (flux[n] = flux[0]:
    the face after the last cell is the face before the first, a wall or the periodic face)."""
    n = r.size
    for j in range(1, n):
        flux[j] = _flux(x[j - 1], x[j], r[j - 1] + 0.5 * slope[j - 1], r[j] - 0.5 * slope[j], inv_h)
    flux[0] = _flux(x[n - 1], x[0], r[n - 1] + 0.5 * slope[n - 1], r[0] - 0.5 * slope[0], inv_h) if periodic else 0.0
    flux[n] = flux[0]


@njit(cache=True)
def _row_rate(west, east, inv_h, line_flux, inv_h_line, accumulate, out):
    """out = −(east − west)/h − (line_flux[l + 1] − line_flux[l])/h_line, or out minus that."""
    for l in range(out.size):
        change = (east[l] - west[l]) * inv_h + (line_flux[l + 1] - line_flux[l]) * inv_h_line
        out[l] = out[l] - change if accumulate else -change


@njit(cache=True)
def _max_jump(west, east):
    """max |east − west| (0 for empty arrays)."""
    top = 0.0
    for l in range(west.size):
        top = max(top, abs(east[l] - west[l]))
    return top


@njit(cache=True, parallel=True)
def _rate_rows(rho, xi, inv_h, periodic, along, inv_h_line, periodic_line, second_order, accumulate, measure,
               rate, speeds, work, line):
    """The kernel for (a, n, b) arrays whose rows (i, j) are b contiguous cells: the rate
    of the fluxes across rows (the middle axis) and, if ``along``, along them (the last
    axis, a line). One task per i and block of up to ``ROWS`` rows j: it computes the
    slopes of its rows and of the two rows next to them, the fluxes through its faces and
    their divergence, so the tasks need no synchronization (one parallel region).

    ``rate`` is overwritten, or added to if ``accumulate``. If ``measure``, ``speeds[task]``
    gets the task's max |u| across and along (in loops apart: a max in the flux loops
    would stop them vectorizing). Scratch: ``work`` (tasks, 2, ROWS + 2, b), ``line``
    (tasks, 2, b + 1)."""
    a, n, b = rho.shape
    blocks = (n + ROWS - 1) // ROWS
    for task in prange(a * blocks):
        i = task // blocks
        first = (task - i * blocks) * ROWS
        rows = min(ROWS, n - first)
        slope, flux = work[task, 0], work[task, 1]  # slope[k]: row first − 1 + k; flux[k]: face first + k
        for k in range(rows + 2):
            j = first - 1 + k
            if second_order and (periodic or 0 < j < n - 1):
                j = (j + n) % n
                _row_slopes(rho[i, (j + n - 1) % n], rho[i, j], rho[i, (j + 1) % n], slope[k])
            else:
                slope[k, :] = 0.0
        top = 0.0
        for k in range(rows + 1):  # face j − ½ between rows j − 1 and j (faces 0 and n: walls, or one periodic face)
            j = first + k
            if periodic or 0 < j < n:
                w, e = (j + n - 1) % n, j % n
                _row_fluxes(xi[i, w], xi[i, e], rho[i, w], rho[i, e], slope[k], slope[k + 1], inv_h, flux[k])
                if measure and k < rows:  # the block's last face is the next block's first
                    top = max(top, _max_jump(xi[i, w], xi[i, e]))
            else:
                flux[k, :] = 0.0
        speeds[task, 0] = top * inv_h
        top = 0.0
        line_slope, line_flux = line[task, 0], line[task, 1]  # line_flux[l]: face l − ½ of the row
        line_slope[:] = 0.0
        line_flux[:] = 0.0
        for k in range(rows):
            if along:
                r, x = rho[i, first + k], xi[i, first + k]
                if second_order:
                    _line_slopes(r, periodic_line, line_slope[:b])
                _line_fluxes(r, x, line_slope, periodic_line, inv_h_line, line_flux)
                if measure:
                    top = max(top, _max_jump(x[:-1], x[1:]), abs(x[0] - x[b - 1]) if periodic_line else 0.0)
            _row_rate(flux[k], flux[k + 1], inv_h, line_flux, inv_h_line, accumulate, rate[i, first + k])
        speeds[task, 1] = top * inv_h_line


def grid_rate(rho, xi, inv_h, periodic, second_order, rate, speeds=None):
    """Set ``rate`` to −div(flux), the sum over the axes of −(flux_(j+½) − flux_(j−½))/h,
    for cell arrays of 1, 2 or 3 dimensions; ``inv_h`` and ``periodic`` hold 1/h and the
    periodicity per axis. If ``speeds`` (one entry per axis) is given, it gets max |u|
    over the faces that carry flux.

    One parallel pass in 1D and 2D: the rows of a task are lines along the last axis
    (neighbours are found without % per cell: an integer division costs more than the
    flux). In 3D, a first pass does the fluxes across the first axis (rows of n₁n₂ cells),
    a second the other two axes.
    """
    shape, measure = rho.shape, speeds is not None
    if rho.ndim == 1:
        found = _rows(rho, xi, rate, (1, 1) + shape, (1.0, False), (inv_h[0], periodic[0]), second_order, False, measure)
        found = found[1:]
    elif rho.ndim == 2:
        found = _rows(rho, xi, rate, (1,) + shape, (inv_h[0], periodic[0]), (inv_h[1], periodic[1]), second_order, False,
                      measure)
    else:
        first = _rows(rho, xi, rate, (1, shape[0], shape[1] * shape[2]), (inv_h[0], periodic[0]), None, second_order,
                      False, measure)
        rest = _rows(rho, xi, rate, shape, (inv_h[1], periodic[1]), (inv_h[2], periodic[2]), second_order, True, measure)
        found = (first[0], *rest)
    if measure:
        speeds[:] = found


def _rows(rho, xi, rate, shape, across, line, second_order, accumulate, measure):
    """:func:`_rate_rows` on (a, n, b) views of the arrays; ``across`` and ``line`` are
    (1/h, periodic) of the middle and last axes (``line`` None: no fluxes along the rows).
    Returns max |u| (across, along) if ``measure``, else zeros."""
    a, n, b = shape
    tasks = a * ((n + ROWS - 1) // ROWS)
    speeds = _scratch("speeds", (tasks, 2))
    inv_h_line, periodic_line = (0.0, False) if line is None else line
    _rate_rows(rho.reshape(shape), xi.reshape(shape), across[0], across[1], line is not None, inv_h_line, periodic_line,
               second_order, accumulate, measure, rate.reshape(shape), speeds, _scratch("work", (tasks, 2, ROWS + 2, b)),
               _scratch("line", (tasks, 2, b + 1)))
    return speeds.max(axis=0) if measure else (0.0, 0.0)


@functools.lru_cache(maxsize=16)
def _scratch(use, shape):
    """Scratch memory for ``use``, kept between calls: fresh large arrays page-fault on
    every use, which costs more than the fluxes themselves."""
    return np.empty(shape)


def _minmod_reference(a, b, c):
    positive = (a > 0) & (b > 0) & (c > 0)
    negative = (a < 0) & (b < 0) & (c < 0)
    return np.where(positive, np.minimum(np.minimum(a, b), c), 0.0) + np.where(
        negative, np.maximum(np.maximum(a, b), c), 0.0
    )


def axis_view(array, axis):
    """``array`` viewed as (a, n, b) with n the cells along ``axis`` (no copy)."""
    shape = array.shape
    return array.reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :]))


def grid_rate_reference(rho, xi, inv_h, periodic, second_order, rate, speeds=None):
    """NumPy version of :func:`grid_rate` (same arguments, same effect)."""
    rate[:] = 0.0
    for axis in range(rho.ndim):
        speed = axis_rate_reference(axis_view(rho, axis), axis_view(xi, axis), inv_h[axis], periodic[axis],
                                    second_order, axis_view(rate, axis))
        if speeds is not None:
            speeds[axis] = speed


def axis_rate_reference(rho, xi, inv_h, periodic, second_order, rate):
    """Add one axis's −(flux_(j+½) − flux_(j−½))/h to ``rate``, for (a, n, b) arrays with
    the axis in the middle; return max |u| over the faces that carry flux."""
    n = rho.shape[1]
    left, right = np.roll(rho, 1, axis=1), np.roll(rho, -1, axis=1)
    slope = _minmod_reference(2 * (rho - left), 0.5 * (right - left), 2 * (right - rho))
    if not second_order:
        slope[:] = 0.0
    elif not periodic:
        slope[:, [0, n - 1], :] = 0.0
    # faces 0..n-1 are the west faces of the cells (face 0 wraps to the last cell)
    u = -(xi - np.roll(xi, 1, axis=1)) * inv_h
    east_value = np.roll(rho + 0.5 * slope, 1, axis=1)  # ρ⁺ of the west neighbour
    west_value = rho - 0.5 * slope
    flux = np.where(u > 0, u * east_value, u * west_value)
    if not periodic:
        flux[:, 0, :] = 0.0
        u = u[:, 1:, :]
    flux_east = np.roll(flux, -1, axis=1)
    if not periodic:
        flux_east[:, n - 1, :] = 0.0
    rate -= (flux_east - flux) * inv_h
    return float(np.abs(u).max(initial=0.0))
