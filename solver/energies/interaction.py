"""The interaction energy ½ ∫∫ W(x − y) ρ(x) ρ(y), by FFT convolution."""

import numpy as np
import scipy.fft

from .base import Energy, finite_difference_gradient


MESH_MATRIX_LIMIT = 2**26  # entries of the vertex-pair matrix kept for meshes (512 MiB)


class Interaction(Energy):
    """½ ∫∫ W(x − y) ρ(x) ρ(y) dx dy with an even kernel W, so F'(ρ) = W ∗ ρ.

    On a grid the convolution (W ∗ ρ)(x_i) = Σ_j W(x_i − x_j) ρ_j |cell| is exact for
    the cell values and computed by FFT (``scipy.fft``): zero-padded to twice the cells
    along wall axes (a linear convolution), circular along periodic axes, where the
    displacement is taken to its nearest periodic image. On a mesh it is the direct sum
    Σ_j W(x_i − x_j) ρ_j m_j over the vertices with their lumped masses, by a product with
    the matrix W(x_i − x_j), kept (up to ``MESH_MATRIX_LIMIT`` entries).

    Parameters
    ----------
    W : callable
        ``W(z)`` maps displacements of shape (..., d) to values of shape (...);
        W(−z) = W(z).
    grad : callable, optional
        ``∇W(z)`` of shape (..., d), for particles; central differences if omitted.
    """

    local = False  # F' at a point sums over all points

    def __init__(self, W, grad=None):
        if not callable(W):
            raise ValueError("Interaction: W must be a callable W(z) of displacements z")
        self.W = W
        self.grad = grad
        self._cache = None

    def __repr__(self):
        return f"Interaction({getattr(self.W, '__name__', 'W')})"

    def kernel_transform(self, grid):
        """The real FFT of W sampled at the grid's displacements (once per grid)."""
        if self._cache is not None and self._cache[0] is grid:
            return self._cache[1]
        offsets = []
        for n, h, periodic in zip(grid.shape, grid.h, grid.periodic):
            k = np.arange(n if periodic else 2 * n)
            size = n if periodic else 2 * n
            k = np.where(k <= size // 2, k, k - size)  # signed offsets (nearest image)
            offsets.append(k * h)
        z = np.stack(np.meshgrid(*offsets, indexing="ij"), axis=-1)
        values = np.asarray(self.W(z), dtype=float)
        if not np.all(np.isfinite(values)):
            raise ValueError("Interaction: W is not finite at some displacement of the grid")
        transform = scipy.fft.rfftn(values)
        self._cache = (grid, transform)
        return transform

    def vertex_matrix(self, mesh):
        """W(x_i − x_j) over the vertex pairs of a mesh (once per mesh)."""
        if self._cache is not None and self._cache[0] is mesh:
            return self._cache[1]
        points = mesh.points
        if len(points) ** 2 > MESH_MATRIX_LIMIT:
            raise ValueError(f"Interaction on meshes sums over vertex pairs, with up to "
                             f"{int(MESH_MATRIX_LIMIT**0.5)} vertices: this mesh has {len(points)} (use a grid)")
        values = np.asarray(self.W(points[:, None, :] - points[None, :, :]), dtype=float)
        if not np.all(np.isfinite(values)):
            raise ValueError("Interaction: W is not finite at some displacement between the mesh's vertices")
        self._cache = (mesh, values)
        return values

    def check(self, grid):
        if hasattr(grid, "h"):
            self.kernel_transform(grid)
        else:
            self.vertex_matrix(grid)

    def convolve(self, rho, grid):
        """(W ∗ ρ) at the cells (or vertices)."""
        if not hasattr(grid, "h"):
            return self.vertex_matrix(grid) @ (rho * grid.weights)
        transform = self.kernel_transform(grid)
        fft_shape = [n if p else 2 * n for n, p in zip(grid.shape, grid.periodic)]
        conv = scipy.fft.irfftn(scipy.fft.rfftn(rho, fft_shape) * transform, fft_shape)
        return conv[tuple(slice(0, n) for n in grid.shape)] * grid.cell_volume

    def value(self, rho, grid):
        return self.value_and_first_variation(rho, grid)[0]

    def first_variation(self, rho, grid):
        return self.convolve(rho, grid)

    def value_and_first_variation(self, rho, grid):
        xi = self.convolve(rho, grid)
        return 0.5 * grid.integrate(rho * xi), xi

    def particle_velocity(self, theta, weights):
        theta = np.asarray(theta, dtype=float)
        velocity = np.zeros_like(theta)
        for i in range(len(theta)):  # one row at a time keeps memory at O(m d)
            z = theta[i] - theta
            grad = self.grad(z) if self.grad else finite_difference_gradient(self.W, z)
            velocity[i] = -np.asarray(weights) @ grad
        return velocity
