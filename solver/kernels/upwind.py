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
set ``rate`` to the sum over the axes. :func:`grid_stage` (reference
:func:`grid_stage_reference`) folds an RKL2 stage update into the same pass.
``fastmath`` is off: the fluxes must cancel exactly in the mass sum.

:func:`positivity_rate` (NumPy reference :func:`positivity_rate_reference`) gives the
step bound that keeps a forward-Euler step of the scheme positive, cell by cell.
"""

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
def _row_stage(current, previous, start, start_rate, coefficients, out):
    """out = μ current + ν previous + (1 − μ − ν) start + a out + b start_rate, with
    (μ, ν, a, b) = ``coefficients`` and the row's rate in ``out`` on entry; returns the
    number of negative values (counted apart: a min in the loop would stop it vectorizing)."""
    mu, nu, a, b = coefficients[0], coefficients[1], coefficients[2], coefficients[3]
    for l in range(out.size):
        out[l] = mu * current[l] + nu * previous[l] + (1.0 - mu - nu) * start[l] + a * out[l] + b * start_rate[l]
    negative = 0
    for l in range(out.size):
        negative += out[l] < 0.0
    return negative


@njit(cache=True)
def _mark_nonzero(row, marks):
    """marks[l] += |row[l]|: 0 where the rows marked are 0 (a loop that vectorizes, unlike a search)."""
    for l in range(marks.size):
        marks[l] += abs(row[l])


@njit(cache=True)
def _task_columns(rho, i, first, rows, periodic, periodic_line, marks):
    """The columns [lo, hi) outside which the rows first … first + rows − 1 of rho[i] have
    no flux: the nonzero values of those rows and the rows next to them, widened by one
    cell (the whole width along a periodic line). ``marks``: scratch of one row."""
    n, b = rho.shape[1], rho.shape[2]
    marks[:] = 0.0
    for j in range(first - 1, first + rows + 1):
        if periodic or 0 <= j < n:
            _mark_nonzero(rho[i, (j + n) % n], marks)
    lo = 0
    while lo < b and marks[lo] == 0.0:
        lo += 1
    if lo == b:
        return 0, 0
    if periodic_line:
        return 0, b
    hi = b
    while marks[hi - 1] == 0.0:
        hi -= 1
    return max(lo - 1, 0), min(hi + 1, b)


@njit(cache=True, parallel=True)
def _rate_rows(rho, xi, inv_h, periodic, along, inv_h_line, periodic_line, second_order, accumulate, stage, previous,
               start, start_rate, coefficients, out, work, line, marks):
    """The kernel for (a, n, b) arrays whose rows (i, j) are b contiguous cells: the rate
    of the fluxes across rows (the middle axis) and, if ``along``, along them (the last
    axis, a line). One task per i and block of up to ``ROWS`` rows j: it computes the
    slopes of its rows and of the two rows next to them, the fluxes through its faces and
    their divergence, so the tasks need no synchronization (one parallel region).

    A task works on the columns where its rows can have flux (:func:`_task_columns`):
    an empty cell with an empty neighbour has a zero limited slope, so its face values
    are 0 unless both its neighbours are nonzero; a face carries flux only next to a
    nonzero cell, and a cell's rate is nonzero only if it or a neighbour is. At the ends
    of those columns the cells are empty with empty neighbours outside, so their zero
    slopes and the zero fluxes beyond them (as at a wall) are the exact values.

    The rate overwrites ``out``, or is added to it if ``accumulate``. If ``stage``, each
    row of ``out`` then becomes the RKL2 stage (:func:`_row_stage`) of ``rho`` (current),
    ``previous``, ``start`` and ``start_rate``, and the kernel returns the number of
    negative values. Scratch: ``work`` (tasks, 2, ROWS + 2, b), ``line`` (tasks, 2, b + 1),
    ``marks`` (tasks, b)."""
    a, n, b = rho.shape
    blocks = (n + ROWS - 1) // ROWS
    negative = 0
    for task in prange(a * blocks):
        i = task // blocks
        first = (task - i * blocks) * ROWS
        rows = min(ROWS, n - first)
        lo, hi = _task_columns(rho, i, first, rows, periodic, periodic_line, marks[task])
        slope, flux = work[task, 0], work[task, 1]  # slope[k]: row first − 1 + k; flux[k]: face first + k
        line_slope, line_flux = line[task, 0, : hi - lo], line[task, 1, : hi - lo + 1]  # line_flux[l]: face l − ½
        line_slope[:] = 0.0
        line_flux[:] = 0.0
        if hi > lo:  # else no flux: the rows' rate is 0
            for k in range(rows + 2):
                j = first - 1 + k
                if second_order and (periodic or 0 < j < n - 1):
                    j = (j + n) % n
                    _row_slopes(rho[i, (j + n - 1) % n, lo:hi], rho[i, j, lo:hi], rho[i, (j + 1) % n, lo:hi],
                                slope[k, lo:hi])
                else:
                    slope[k, lo:hi] = 0.0
            for k in range(rows + 1):  # face j − ½ between rows j − 1 and j (faces 0 and n: walls, or one periodic)
                j = first + k
                if periodic or 0 < j < n:
                    w, e = (j + n - 1) % n, j % n
                    _row_fluxes(xi[i, w, lo:hi], xi[i, e, lo:hi], rho[i, w, lo:hi], rho[i, e, lo:hi],
                                slope[k, lo:hi], slope[k + 1, lo:hi], inv_h, flux[k, lo:hi])
                else:
                    flux[k, lo:hi] = 0.0
        for k in range(rows):
            j = first + k
            if not accumulate:
                out[i, j, :lo] = 0.0
                out[i, j, hi:] = 0.0
            if hi > lo:
                if along:
                    r, x = rho[i, j, lo:hi], xi[i, j, lo:hi]
                    if second_order:
                        _line_slopes(r, periodic_line, line_slope)
                    _line_fluxes(r, x, line_slope, periodic_line, inv_h_line, line_flux)
                _row_rate(flux[k, lo:hi], flux[k + 1, lo:hi], inv_h, line_flux, inv_h_line, accumulate,
                          out[i, j, lo:hi])
            if stage:
                negative += _row_stage(rho[i, j], previous[i, j], start[i, j], start_rate[i, j], coefficients,
                                       out[i, j])
    return negative


def grid_rate(rho, xi, inv_h, periodic, second_order, rate):
    """Set ``rate`` to −div(flux), the sum over the axes of −(flux_(j+½) − flux_(j−½))/h,
    for cell arrays of 1, 2 or 3 dimensions; ``inv_h`` and ``periodic`` hold 1/h and the
    periodicity per axis.

    One parallel pass in 1D and 2D: the rows of a task are lines along the last axis
    (neighbours are found without % per cell: an integer division costs more than the
    flux). In 3D, a first pass does the fluxes across the first axis (rows of n₁n₂ cells),
    a second the other two axes.
    """
    _passes(rho, xi, inv_h, periodic, second_order, rate, None)


def grid_stage(rho, xi, inv_h, periodic, second_order, previous, start, start_rate, coefficients, out):
    """An RKL2 stage in the same pass as the rate: ``out`` = μ ρ + ν previous +
    (1 − μ − ν) start + a L(ρ) + b start_rate, with L(ρ) the rate of :func:`grid_rate`
    (never stored) and (μ, ν, a, b) = ``coefficients``. ``out`` must be C-contiguous and
    share no memory with the other arrays. Returns the number of negative values in ``out``.
    """
    if not out.flags.c_contiguous:
        raise ValueError("grid_stage: out must be C-contiguous (a copy would lose the stage)")
    return _passes(rho, xi, inv_h, periodic, second_order, out, (previous, start, start_rate, coefficients))


def _passes(rho, xi, inv_h, periodic, second_order, out, stage):
    """:func:`grid_rate` (``stage`` None) or :func:`grid_stage` (``stage`` = (previous,
    start, start_rate, coefficients)); the number of negative values of a stage."""
    shape = rho.shape
    if rho.ndim == 1:
        return _rows(rho, xi, out, (1, 1) + shape, (1.0, False), (inv_h[0], periodic[0]), second_order, False, stage)
    if rho.ndim == 2:
        return _rows(rho, xi, out, (1,) + shape, (inv_h[0], periodic[0]), (inv_h[1], periodic[1]), second_order, False,
                     stage)
    _rows(rho, xi, out, (1, shape[0], shape[1] * shape[2]), (inv_h[0], periodic[0]), None, second_order, False, None)
    return _rows(rho, xi, out, shape, (inv_h[1], periodic[1]), (inv_h[2], periodic[2]), second_order, True, stage)


def _rows(rho, xi, out, shape, across, line, second_order, accumulate, stage):
    """:func:`_rate_rows` on (a, n, b) views of the arrays; ``across`` and ``line`` are
    (1/h, periodic) of the middle and last axes (``line`` None: no fluxes along the rows);
    ``stage`` as in :func:`_passes`. Returns the number of negative values of a stage.

    The kernel's scratch memory is allocated here, per call, so that calls from several
    threads share nothing. A module-wide cache of it cost the same: 126–145 µs against
    129–144 µs per 256² rate, 0.52–0.53 s of CPU against 0.53 s per 256² RKL2 Barenblatt
    run (one thread, three runs each); glibc reuses the freed blocks, without page faults."""
    a, n, b = shape
    tasks = a * ((n + ROWS - 1) // ROWS)
    inv_h_line, periodic_line = (0.0, False) if line is None else line
    previous, start, start_rate, coefficients = (rho, rho, rho, NO_COEFFICIENTS) if stage is None else stage
    return _rate_rows(rho.reshape(shape), xi.reshape(shape), across[0], across[1], line is not None, inv_h_line,
                      periodic_line, second_order, accumulate, stage is not None, previous.reshape(shape),
                      start.reshape(shape), start_rate.reshape(shape), coefficients, out.reshape(shape),
                      np.empty((tasks, 2, ROWS + 2, b)), np.empty((tasks, 2, b + 1)), np.empty((tasks, b)))


NO_COEFFICIENTS = np.zeros(4)  # the stage coefficients of a plain rate (unused)


@njit(cache=True)
def _neighbour(i, step, n, periodic):
    """The index of the cell ``step`` from i along an axis of n cells; i itself past a wall."""
    j = i + step
    if periodic:
        return j % n
    return j if 0 <= j < n else i


@njit(cache=True)
def _add_across(x, west, east, scale, total):
    """total += scale max(|x − west|, |east − x|), cell by cell."""
    for l in range(total.size):
        total[l] += scale * max(abs(x[l] - west[l]), abs(east[l] - x[l]))


@njit(cache=True)
def _add_along(x, periodic, scale, total):
    """total += scale max(|jump at the west face|, |jump at the east face|) along a line
    (0 at a wall face)."""
    n = x.size
    for l in range(1, n - 1):
        total[l] += scale * max(abs(x[l] - x[l - 1]), abs(x[l + 1] - x[l]))
    if n > 1:
        wrap = abs(x[0] - x[n - 1]) if periodic else 0.0
        total[0] += scale * max(wrap, abs(x[1] - x[0]))
        total[n - 1] += scale * max(abs(x[n - 1] - x[n - 2]), wrap)


@njit(cache=True, parallel=True)
def _positivity_rows(xi, scale, periodic, top):
    """top[row] = the largest Σ_k scale_k max(|ξ jump at the two faces along k|) over the
    cells of a row, for (n₀, n₁, n₂) arrays (the rows along the last axis)."""
    n0, n1, n2 = xi.shape
    for row in prange(n0 * n1):
        i = row // n1
        j = row - i * n1
        x = xi[i, j]
        total = np.zeros(n2)
        _add_across(x, xi[_neighbour(i, -1, n0, periodic[0]), j], xi[_neighbour(i, 1, n0, periodic[0]), j], scale[0],
                    total)
        _add_across(x, xi[i, _neighbour(j, -1, n1, periodic[1])], xi[i, _neighbour(j, 1, n1, periodic[1])], scale[1],
                    total)
        _add_along(x, periodic[2], scale[2], total)
        top[row] = total.max()


def positivity_rate(xi, inv_h, periodic):
    """max over the cells of Σ_k 2 max(|u|, on the cell's two faces along axis k)/h_k,
    u = −(jump of ξ)/h, wall faces excluded.

    A forward-Euler step of the upwind scheme, reconstructed or not, keeps ρ ≥ 0 if dt
    times this is ≤ 1: with the face values ρ^E_k, ρ^W_k ≥ 0 and ρ = Σ_k α_k (ρ^E_k + ρ^W_k)/2,
    the cell's new value is a sum of nonnegative terms when α_k ≥ 2 dt max|u_k|/h_k, and
    such α_k summing to 1 exist. This is the condition of Carrillo, Chertock and Huang
    cell by cell: their dt Σ_k 2 max|u_k|/h_k ≤ 1 takes each axis's maximum over the grid.
    """
    pad = 3 - xi.ndim
    scale = np.concatenate([np.zeros(pad), 2.0 * np.asarray(inv_h, dtype=float) ** 2])
    flags = np.concatenate([np.zeros(pad, dtype=bool), np.asarray(periodic, dtype=bool)])
    view = np.ascontiguousarray(xi, dtype=float).reshape((1,) * pad + xi.shape)
    top = np.empty(view.shape[0] * view.shape[1])
    _positivity_rows(view, scale, flags, top)
    return float(top.max())


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


def grid_rate_reference(rho, xi, inv_h, periodic, second_order, rate):
    """NumPy version of :func:`grid_rate` (same arguments, same effect)."""
    rate[:] = 0.0
    for axis in range(rho.ndim):
        axis_rate_reference(axis_view(rho, axis), axis_view(xi, axis), inv_h[axis], periodic[axis], second_order,
                            axis_view(rate, axis))


def grid_stage_reference(rho, xi, inv_h, periodic, second_order, previous, start, start_rate, coefficients, out):
    """NumPy version of :func:`grid_stage` (same arguments, same effect)."""
    mu, nu, a, b = coefficients
    rate = np.empty(rho.shape)
    grid_rate_reference(rho, xi, inv_h, periodic, second_order, rate)
    out[:] = mu * rho + nu * previous + (1.0 - mu - nu) * start + a * rate + b * start_rate
    return int(np.count_nonzero(out < 0))


def axis_rate_reference(rho, xi, inv_h, periodic, second_order, rate):
    """Add one axis's −(flux_(j+½) − flux_(j−½))/h to ``rate``, for (a, n, b) arrays with
    the axis in the middle."""
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
    flux_east = np.roll(flux, -1, axis=1)
    if not periodic:
        flux_east[:, n - 1, :] = 0.0
    rate -= (flux_east - flux) * inv_h


def positivity_rate_reference(xi, inv_h, periodic):
    """NumPy version of :func:`positivity_rate`."""
    total = np.zeros(xi.shape)
    for axis in range(xi.ndim):
        x = axis_view(xi, axis)
        west = np.abs(x - np.roll(x, 1, axis=1)) * inv_h[axis]  # |u| at each cell's west face (face 0 wraps)
        if not periodic[axis]:
            west[:, 0, :] = 0.0
        east = np.roll(west, -1, axis=1)  # the east face is the next cell's west face
        axis_view(total, axis)[:] += 2 * inv_h[axis] * np.maximum(west, east)
    return float(total.max())
