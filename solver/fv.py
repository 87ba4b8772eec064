"""Finite volumes on Cartesian grids, the spatial operators of :class:`~solver.grid.Grid`:
the upwind rate, its forward-Euler step limits and the Newton matrix of its first-order
variant. The time loop that uses them is :mod:`solver.timeloop`.

With u = −∂ξ/∂x on a face (ξ = F'(ρ)) and the upwind value ρ_up of the limited linear
reconstruction, the flux is u ρ_up: mass is conserved to round-off (fluxes cancel in
pairs) and the semi-discrete scheme dissipates the discrete energy exactly,
dF/dt = −Σ_faces u · flux |cell| ≤ 0, since the upwind flux has the sign of u.
"""

import numpy as np
import scipy.sparse

from .kernels.upwind import grid_rate, positivity_rate


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


def upwind_jacobian(rho, xi, curvature, dt, faces):
    """I − dt dL₁/dρ as a sparse matrix, L₁ the first-order upwind rate.

    On a face with u = −(ξ_E − ξ_W)/h and upwind value ρ_up (ρ_W if u > 0, else ρ_E),
    flux = u ρ_up, so with ∂ξ_i/∂ρ_i = f''(ρ_i) = ``curvature`` (the local terms; nonlocal
    couplings are left out) dflux/dρ_W = u⁺ + ρ_up f''(ρ_W)/h and
    dflux/dρ_E = u⁻ − ρ_up f''(ρ_E)/h; the flux leaves W and enters E at rate flux/h.
    ``faces`` as :func:`faces` gives them.
    """
    r, x = rho.ravel(), xi.ravel()
    curvature = np.broadcast_to(curvature, rho.shape).ravel()
    rows, cols, vals = [np.arange(r.size)], [np.arange(r.size)], [np.ones(r.size)]
    for west, east, inv_h in faces:
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


def faces(grid):
    """Flat indices of the (west, east) cells of every face that carries flux, per axis."""
    index = np.arange(grid.size).reshape(grid.shape)
    per_axis = []
    for axis in range(grid.dim):
        west = index if grid.periodic[axis] else np.delete(index, -1, axis=axis)
        east = np.roll(index, -1, axis=axis) if grid.periodic[axis] else np.delete(index, 0, axis=axis)
        per_axis.append((west.ravel(), east.ravel(), 1.0 / grid.h[axis]))
    return per_axis

