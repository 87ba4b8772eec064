"""Cartesian cell-centred grids in 1D, 2D and 3D with per-axis boundary conditions."""

import operator

import numpy as np

BOUNDARY_CONDITIONS = ("wall", "periodic")


class Grid:
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
        bc = (bc,) * dim if isinstance(bc, str) else tuple(bc)
        unknown = [name for name in bc if name not in BOUNDARY_CONDITIONS]
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
        self.h = (bounds[:, 1] - bounds[:, 0]) / np.array(shape)
        self.cell_volume = float(np.prod(self.h))
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
            total += np.prod([w[i] for i in index]) * f(self.points + offset)
        return total / 2**self.dim

    def integrate(self, values):
        """``Σ_i values_i |cell|``: the integral of a cell-wise function."""
        return float(np.sum(values)) * self.cell_volume

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
