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


@njit(cache=True, parallel=True)
def _rate_across_lines(rho, xi, inv_h, periodic, second_order, rate, work, speeds):
    """The kernel for (a, n, b) arrays, b > 1, in three parallel passes over the rows
    (i, j) of b contiguous cells: slopes, then the fluxes through the faces j − ½ (and
    their max |u|), then the divergence. ``work`` is scratch of shape (2, a, n, b) for
    the slopes and fluxes; ``speeds`` of shape (a, n)."""
    a, n, b = rho.shape
    slope, flux = work[0], work[1]
    for task in prange(a * n):
        i = task // n
        j = task - i * n
        s = slope[i, j]
        if second_order and (periodic or 0 < j < n - 1):
            west, centre = rho[i, j - 1 if j > 0 else n - 1], rho[i, j]
            east = rho[i, j + 1 if j < n - 1 else 0]
            for l in range(b):
                s[l] = _slope(west[l], centre[l], east[l])
        else:
            s[:] = 0.0
    for task in prange(a * n):  # face j − ½ between cells j − 1 and j (face 0: a wall, or periodic)
        i = task // n
        j = task - i * n
        f = flux[i, j]
        top = 0.0
        if j > 0 or periodic:
            w = j - 1 if j > 0 else n - 1
            xi_west, xi_east, rho_west, rho_east = xi[i, w], xi[i, j], rho[i, w], rho[i, j]
            slope_west, slope_east = slope[i, w], slope[i, j]
            for l in range(b):
                f[l] = _flux(xi_west[l], xi_east[l], rho_west[l] + 0.5 * slope_west[l],
                             rho_east[l] - 0.5 * slope_east[l], inv_h)
                top = max(top, abs(xi_east[l] - xi_west[l]))
        else:
            f[:] = 0.0
        speeds[i, j] = top * inv_h
    for task in prange(a * n):
        i = task // n
        j = task - i * n
        west, r = flux[i, j], rate[i, j]
        if j < n - 1 or periodic:
            east = flux[i, j + 1 if j < n - 1 else 0]
            for l in range(b):
                r[l] -= (east[l] - west[l]) * inv_h
        else:  # the wall after the last row
            for l in range(b):
                r[l] += west[l] * inv_h
    return speeds.max()


def axis_rate(rho, xi, inv_h, periodic, second_order, rate):
    """Add −(flux_(j+½) − flux_(j−½))/h along the middle axis of (a, n, b) arrays to ``rate``.

    Returns max |u| over the faces that carry flux. Along the last axis (b = 1) the
    cells of a line are contiguous and one task handles a line; otherwise the passes go
    over rows of b contiguous cells. (Neighbours are found without %: an integer
    division per cell costs more than the flux.)
    """
    a, n, b = rho.shape
    if b == 1:
        work = _scratch((a, 2, n + 1))
        return _rate_along_lines(rho[:, :, 0], xi[:, :, 0], inv_h, periodic, second_order, rate[:, :, 0], work)
    return _rate_across_lines(rho, xi, inv_h, periodic, second_order, rate, _scratch((2, a, n, b)), _scratch((a, n)))


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
