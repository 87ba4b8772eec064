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

An array is viewed along one axis as (a, n, b): a lines before the axis, n cells on
it, b after it (a C-contiguous reshape, so one kernel serves 1D, 2D and 3D).

:func:`axis_rate` is the Numba kernel; :func:`axis_rate_reference` is the plain NumPy
version it is tested against. Both add the axis's contribution to ``rate`` and return
max |u| over the faces that carry flux. ``fastmath`` is off: the fluxes must cancel
exactly in the mass sum.
"""

import functools

import numpy as np
from numba import njit, prange


@njit(cache=True)
def _slope(left, centre, right):
    """Monotonized-central limited slope (times h) of a cell."""
    a, b, c = 2.0 * (centre - left), 0.5 * (right - left), 2.0 * (right - centre)
    return max(0.0, min(a, b, c)) + min(0.0, max(a, b, c))


@njit(cache=True, inline="always")
def _flux(xi_west, xi_east, west_value, east_value, inv_h):
    """Upwind flux at a face, u = −(ξ_east − ξ_west)/h."""
    u = -(xi_east - xi_west) * inv_h
    return max(u, 0.0) * west_value + min(u, 0.0) * east_value


@njit(cache=True, parallel=True)
def _rate_along_lines(rho, xi, inv_h, periodic, second_order, rate, work):
    """The kernel for (a, n) arrays: lines of contiguous cells, one task per line;
    ``work`` is scratch of shape (a, 2, n + 1). The interior loops have no wrap-around
    indices (they vectorize); a periodic line's ends are done apart."""
    a, n = rho.shape
    speed = np.zeros(a)
    for i in prange(a):
        r, x = rho[i], xi[i]
        slope, flux = work[i, 0], work[i, 1]
        slope[:] = 0.0
        if second_order:
            for j in range(1, n - 1):
                slope[j] = _slope(r[j - 1], r[j], r[j + 1])
            if periodic:
                slope[0] = _slope(r[n - 1], r[0], r[1])
                slope[n - 1] = _slope(r[n - 2], r[n - 1], r[0])
        top = 0.0
        for j in range(1, n):  # face j − ½ between cells j − 1 and j
            flux[j] = _flux(x[j - 1], x[j], r[j - 1] + 0.5 * slope[j - 1], r[j] - 0.5 * slope[j], inv_h)
            top = max(top, abs(x[j] - x[j - 1]))
        if periodic:  # the face before the first cell is the face after the last
            flux[0] = _flux(x[n - 1], x[0], r[n - 1] + 0.5 * slope[n - 1], r[0] - 0.5 * slope[0], inv_h)
            top = max(top, abs(x[0] - x[n - 1]))
        else:
            flux[0] = 0.0
        flux[n] = flux[0]
        for j in range(n):
            rate[i, j] -= (flux[j + 1] - flux[j]) * inv_h
        speed[i] = top * inv_h
    return speed.max()


ROWS = 16  # rows of cells per task of _rate_across_lines


@njit(cache=True, parallel=True)
def _rate_across_lines(rho, xi, inv_h, periodic, second_order, rate, work, speeds):
    """The kernel for (a, n, b) arrays, b > 1, whose rows (i, j) are b contiguous cells:
    one task per i and block of up to ``ROWS`` rows j. A task computes the slopes of its
    rows and of the two rows next to them, the fluxes through its faces and their
    divergence, so the tasks need no synchronization (one parallel region). ``work`` is
    scratch of shape (tasks, 2, ROWS + 2, b), ``speeds`` of shape (tasks,)."""
    a, n, b = rho.shape
    blocks = (n + ROWS - 1) // ROWS
    for task in prange(a * blocks):
        i = task // blocks
        first = (task - i * blocks) * ROWS
        rows = min(ROWS, n - first)
        slope, flux = work[task, 0], work[task, 1]  # slope[k]: row first − 1 + k; flux[k]: face first + k
        for k in range(rows + 2):
            j = first - 1 + k
            s = slope[k]
            if second_order and (periodic or 0 < j < n - 1):
                j = (j + n) % n
                west, centre, east = rho[i, (j + n - 1) % n], rho[i, j], rho[i, (j + 1) % n]
                for l in range(b):
                    s[l] = _slope(west[l], centre[l], east[l])
            else:
                s[:] = 0.0
        top = 0.0
        for k in range(rows + 1):  # face j − ½ between rows j − 1 and j (faces 0 and n: walls, or one periodic face)
            j = first + k
            f = flux[k]
            if periodic or 0 < j < n:
                w, e = (j + n - 1) % n, j % n
                xi_west, xi_east, rho_west, rho_east = xi[i, w], xi[i, e], rho[i, w], rho[i, e]
                slope_west, slope_east = slope[k], slope[k + 1]
                for l in range(b):
                    f[l] = _flux(xi_west[l], xi_east[l], rho_west[l] + 0.5 * slope_west[l],
                                 rho_east[l] - 0.5 * slope_east[l], inv_h)
                if k < rows:  # the block's last face is the next block's first
                    for l in range(b):
                        top = max(top, abs(xi_east[l] - xi_west[l]))
            else:
                f[:] = 0.0
        for k in range(rows):
            r, west, east = rate[i, first + k], flux[k], flux[k + 1]
            for l in range(b):
                r[l] -= (east[l] - west[l]) * inv_h
        speeds[task] = top * inv_h
    return speeds.max()


def axis_rate(rho, xi, inv_h, periodic, second_order, rate):
    """Add −(flux_(j+½) − flux_(j−½))/h along the middle axis of (a, n, b) arrays to ``rate``.

    Returns max |u| over the faces that carry flux. Along the last axis (b = 1) the
    cells of a line are contiguous and one task handles a line; otherwise a task handles
    a block of rows of b contiguous cells. (Neighbours are found without % per cell: an
    integer division costs more than the flux.)
    """
    a, n, b = rho.shape
    if b == 1:
        work = _scratch((a, 2, n + 1))
        return _rate_along_lines(rho[:, :, 0], xi[:, :, 0], inv_h, periodic, second_order, rate[:, :, 0], work)
    tasks = a * ((n + ROWS - 1) // ROWS)
    return _rate_across_lines(rho, xi, inv_h, periodic, second_order, rate, _scratch((tasks, 2, ROWS + 2, b)),
                              _scratch((tasks,)))


@functools.lru_cache(maxsize=16)
def _scratch(shape):
    """Scratch memory kept between calls: fresh large arrays page-fault on every use,
    which costs more than the fluxes themselves."""
    return np.empty(shape)


def _minmod_reference(a, b, c):
    positive = (a > 0) & (b > 0) & (c > 0)
    negative = (a < 0) & (b < 0) & (c < 0)
    return np.where(positive, np.minimum(np.minimum(a, b), c), 0.0) + np.where(
        negative, np.maximum(np.maximum(a, b), c), 0.0
    )


def axis_rate_reference(rho, xi, inv_h, periodic, second_order, rate):
    """NumPy version of :func:`axis_rate` (same arguments, same effect)."""
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
