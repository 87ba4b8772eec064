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


BLOCK = 32  # contiguous cells per task along the last index


@njit(cache=True)
def _slope(left, centre, right):
    """Monotonized-central limited slope (times h) of a cell."""
    a, b, c = 2.0 * (centre - left), 0.5 * (right - left), 2.0 * (right - centre)
    return max(0.0, min(a, b, c)) + min(0.0, max(a, b, c))


@njit(cache=True)
def _flux(xi_west, xi_east, west_value, east_value, inv_h):
    """Upwind flux and |u| at a face, u = −(ξ_east − ξ_west)/h."""
    u = -(xi_east - xi_west) * inv_h
    return max(u, 0.0) * west_value + min(u, 0.0) * east_value, abs(u)


@njit(cache=True, parallel=True)
def _rate_along_lines(rho, xi, inv_h, periodic, second_order, rate, work):
    """The kernel for (a, n) arrays: lines of contiguous cells, one task per line;
    ``work`` is scratch of shape (a, 2, n + 1)."""
    a, n = rho.shape
    speed = np.zeros(a)
    for i in prange(a):
        slope, flux = work[i, 0], work[i, 1]
        slope[:] = 0.0
        flux[:] = 0.0
        if second_order:
            for j in range(0 if periodic else 1, n if periodic else n - 1):
                west = j - 1 if j > 0 else n - 1
                east = j + 1 if j < n - 1 else 0
                slope[j] = _slope(rho[i, west], rho[i, j], rho[i, east])
        top = 0.0
        for j in range(0 if periodic else 1, n):  # face j − ½ between cells j − 1 and j
            west = j - 1 if j > 0 else n - 1
            flux[j], u = _flux(xi[i, west], xi[i, j], rho[i, west] + 0.5 * slope[west],
                               rho[i, j] - 0.5 * slope[j], inv_h)
            top = max(top, u)
        if periodic:  # the face after the last cell is the face before the first
            flux[n] = flux[0]
        for j in range(n):
            rate[i, j] -= (flux[j + 1] - flux[j]) * inv_h
        speed[i] = top
    return speed.max()


@njit(cache=True, parallel=True)
def _rate_across_lines(rho, xi, inv_h, periodic, second_order, rate, work):
    """The kernel for (a, n, b) arrays, b > 1: tasks of one i and BLOCK values of l,
    with l innermost (contiguous); ``work`` is scratch of shape (tasks, 3, n + 1, BLOCK)."""
    a, n, b = rho.shape
    blocks = (b + BLOCK - 1) // BLOCK
    speed = np.zeros(a * blocks)
    for task in prange(a * blocks):
        i = task // blocks
        first = (task - i * blocks) * BLOCK
        width = min(BLOCK, b - first)
        slope, flux, speeds = work[task, 0], work[task, 1], work[task, 2]  # (n + 1, BLOCK), contiguous
        slope[:] = 0.0
        flux[:] = 0.0
        speeds[:] = 0.0
        if second_order:
            for j in range(0 if periodic else 1, n if periodic else n - 1):
                west = j - 1 if j > 0 else n - 1
                east = j + 1 if j < n - 1 else 0
                for k in range(width):
                    l = first + k
                    slope[j, k] = _slope(rho[i, west, l], rho[i, j, l], rho[i, east, l])
        for j in range(0 if periodic else 1, n):
            west = j - 1 if j > 0 else n - 1
            for k in range(width):
                l = first + k
                u = -(xi[i, j, l] - xi[i, west, l]) * inv_h
                flux[j, k] = max(u, 0.0) * (rho[i, west, l] + 0.5 * slope[west, k]) + min(u, 0.0) * (rho[i, j, l] - 0.5 * slope[j, k])
                speeds[j, k] = abs(u)
        if periodic:
            flux[n] = flux[0]
        for j in range(n):
            for k in range(width):
                rate[i, j, first + k] -= (flux[j + 1, k] - flux[j, k]) * inv_h
        speed[task] = speeds.max()
    return speed.max()


def axis_rate(rho, xi, inv_h, periodic, second_order, rate):
    """Add −(flux_(j+½) − flux_(j−½))/h along the middle axis of (a, n, b) arrays to ``rate``.

    Returns max |u| over the faces that carry flux. Along the last axis (b = 1) the
    cells of a line are contiguous and one task handles a line; otherwise tasks take
    blocks of the contiguous last index, innermost. (Neighbours are found without
    %: an integer division per cell costs more than the flux.)
    """
    a, n, b = rho.shape
    if b == 1:
        work = _scratch((a, 2, n + 1))
        return _rate_along_lines(rho[:, :, 0], xi[:, :, 0], inv_h, periodic, second_order, rate[:, :, 0], work)
    work = _scratch((a * ((b + BLOCK - 1) // BLOCK), 3, n + 1, BLOCK))
    return _rate_across_lines(rho, xi, inv_h, periodic, second_order, rate, work)


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
