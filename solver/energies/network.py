"""Mean-field two-layer networks: the risk F(μ) = E[ℓ(h_μ(x), y)] + λ∫|θ|² dμ.

A network with m neurons θ_i and weights 1/m is h(x) = Σ_i w_i Φ(θ_i, x) = ∫Φ(θ, x) dμ;
as a function of μ the risk has the first variation

    F'(μ)(θ) = E[∂ℓ(h_μ(x), y) Φ(θ, x)] + λ|θ|²,

and gradient descent on the neurons, dθ_i/dt = −∇θF'(μ_m)(θ_i), is the Wasserstein
gradient flow of F in the limit m → ∞ (Chizat–Bach 2018, Mei–Montanari–Nguyen 2018).
One unit of PDE time is one unit of gradient-descent time. The expectation is over an
empirical data set (x_i, y_i); SGD draws mini-batches from it or from a sampler.

Under MPI the sums are split over ranks in one of two ways, each with one reduction per
evaluation. On a mesh split over ranks (each rank owns some vertices θ_j), each rank sums
h(x_i) = Σ_j w_j Φ(θ_j, x_i) over its own vertices at every data point, and the parts are
added over the ranks (an allreduce of a vector the size of the data set); F' at its own
vertices then needs nothing more. A risk given a communicator (``comm``, or
:meth:`NetworkRisk.on_ranks`) splits instead the data set over its ranks, where every rank
holds all the cells of a grid (or all the particles): each rank computes h on its block of
data and the block's part of F' = Σ_i c_i Φ(·, x_i) on every cell (or of the particles'
velocities), and those parts, with the block's loss, are added over the ranks (an
allreduce of a vector the size of the grid). ``wgf run`` under ``mpirun`` does the latter
by itself on grids.
"""

import dataclasses
import math

import numpy as np
from scipy.special import expit

from ..kernels import network as kernels
from .base import Energy, once_per_discretization, particle_weights

# Cells that cannot use per-axis tables (mesh vertices) keep the feature matrix
# Φ[cell, data point] when it has at most this many entries (8 bytes each: 1 GiB); each
# evaluation of F' is then two matrix-vector products.
MATRIX_LIMIT = 2**27
ACTIVATIONS = {"relu": kernels.RELU, "sigmoid": kernels.SIGMOID, "tanh": kernels.TANH}


def rows_of(values, width, what):
    """``values`` as a C-contiguous (n, ``width``) float array, after checking its shape (the
    Numba kernels check no bounds); ``what`` names them in the error."""
    values = np.ascontiguousarray(np.atleast_2d(values), dtype=float)
    if values.ndim != 2 or values.shape[1] != width:
        raise ValueError(f"{what} given as an array of shape {values.shape}: give one of shape (n, {width})")
    return values


@dataclasses.dataclass(frozen=True)
class Feature:
    """A unit Φ(θ, x) of a two-layer network on inputs x ∈ R^input_dim.

    Make one with :meth:`neuron` (Φ = c σ(a·x̃), θ = (a, c), x̃ = [x; 1] with a bias),
    :meth:`fixed_output` (Φ = σ(w·x̃), θ = w) or :meth:`gaussian` (θ = (c, z),
    Φ = c exp(−|x − z|²/(2 s²))). ``dim`` is the dimension of θ.
    """

    kind: str
    input_dim: int
    activation: str = "relu"
    output_weight: bool = True
    bias: bool = False
    width: float = 1.0

    def __post_init__(self):
        if self.kind not in ("neuron", "rbf"):
            raise ValueError(f"Feature: kind must be 'neuron' or 'rbf', got {self.kind!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"Feature: activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if not isinstance(self.input_dim, (int, np.integer)) or self.input_dim < 1:
            raise ValueError(f"Feature: input_dim must be a positive integer, got {self.input_dim!r}")
        if not np.isfinite(self.width) or self.width <= 0:
            raise ValueError(f"Feature: width must be finite and > 0, got {self.width}")

    @classmethod
    def neuron(cls, activation, input_dim, bias=False):
        """Φ(θ, x) = c σ(a·x̃), θ = (a, c) ∈ R^(input_dim + bias + 1)."""
        return cls("neuron", input_dim, activation, output_weight=True, bias=bias)

    @classmethod
    def fixed_output(cls, activation, input_dim, bias=False):
        """Φ(θ, x) = σ(w·x̃), θ = w ∈ R^(input_dim + bias)."""
        return cls("neuron", input_dim, activation, output_weight=False, bias=bias)

    @classmethod
    def gaussian(cls, input_dim, width):
        """Φ(θ, x) = c exp(−|x − z|²/(2 width²)), θ = (c, z) ∈ R^(1 + input_dim)."""
        return cls("rbf", input_dim, width=float(width))

    @property
    def dim(self):
        """Dimension of the parameter θ."""
        if self.kind == "rbf":
            return 1 + self.input_dim
        return self.input_dim + int(self.bias) + int(self.output_weight)

    @property
    def spec(self):
        """The scalar description the Numba kernels take."""
        kind = kernels.RBF if self.kind == "rbf" else kernels.NEURON
        return (kind, ACTIVATIONS[self.activation], self.output_weight, self.bias, float(self.width))

    def __call__(self, theta, X):
        """Φ(θ_j, x_i) as an (N, n) matrix."""
        return kernels.feature_matrix_reference(self.spec, self.parameters(theta, "Feature"), self.inputs(X, "Feature"))

    def parameters(self, theta, caller):
        """``theta`` as an (m, dim) float array, after checking its shape (the kernels do not)."""
        return rows_of(theta, self.dim, f"{caller}: parameters θ ∈ R^{self.dim}")

    def inputs(self, X, caller):
        """``X`` as an (n, input_dim) float array, after checking its shape (the kernels do not)."""
        return rows_of(X, self.input_dim, f"{caller}: inputs x ∈ R^{self.input_dim}")


class SquareLoss:
    """ℓ(h, y) = ½(h − y)², ∂ℓ = h − y."""

    name = "square"

    def value(self, h, y):
        return 0.5 * (h - y) ** 2

    def derivative(self, h, y):
        return h - y

    def check_labels(self, y):
        pass


class LogisticLoss:
    """ℓ(h, y) = log(1 + e^(−yh)) for labels y ∈ {−1, 1}, ∂ℓ = −y σ(−yh)."""

    name = "logistic"

    def value(self, h, y):
        return np.logaddexp(0.0, -y * h)

    def derivative(self, h, y):
        return -y * expit(-y * h)

    def check_labels(self, y):
        if not np.all(np.isin(y, (-1.0, 1.0))):
            bad = np.unique(y[~np.isin(y, (-1.0, 1.0))])[:5]
            raise ValueError(f"NetworkRisk: the logistic loss needs labels in {{-1, 1}}, got {bad.tolist()}")


LOSSES = {"square": SquareLoss(), "logistic": LogisticLoss()}


class PointwiseCells:
    """h and F' at the cell points θ_j by the pointwise kernels (any points, no memory)."""

    def __init__(self, spec, theta, X):
        self.spec, self.theta, self.X = spec, theta, X

    def predict(self, weights):
        """h(x_i) = Σ_j w_j Φ(θ_j, x_i)."""
        out = np.empty(len(self.X))
        kernels.predict(self.spec, self.theta, weights, self.X, out)
        return out

    def first_variation(self, coef):
        """Σ_i c_i Φ(θ_j, x_i) for every j."""
        out = np.empty(len(self.theta))
        kernels.first_variation(self.spec, self.theta, coef, self.X, out)
        return out


class MatrixCells:
    """h and F' from the cached feature matrix Φ[j, i] = Φ(θ_j, x_i): two BLAS
    matrix–vector products, h = Φᵀw and F' = Φc."""

    def __init__(self, spec, theta, X):
        self.matrix = np.empty((len(theta), len(X)))
        kernels.feature_matrix(spec, theta, X, self.matrix)

    def predict(self, weights):
        """h = Φᵀw."""
        return weights @ self.matrix

    def first_variation(self, coef):
        """Φc."""
        return self.matrix @ coef


class SeparableCells:
    """h and F' on a Cartesian grid of θ from per-axis tables (see
    :func:`solver.kernels.network.separable_tables`): Φ(θ, x_i) = c g(t_1[l_1, i], …),
    so each (cell, data point) pair costs a few flops and no exponential. The output
    weight c factors out: F'(…, c) = c Σ_i c_i g(…), and h sums w c over the c axis first.
    """

    def __init__(self, form, tables, output_axis, axes):
        identity = np.zeros if form == kernels.RELU_SUM else np.ones
        padded = [identity((1, tables[0].shape[1])) for _ in range(3 - len(tables))] + list(tables)
        self.form, self.shape, self.output_axis = form, tuple(len(axis) for axis in axes), output_axis
        self.output = None if output_axis is None else axes[output_axis]
        self.tables = [np.ascontiguousarray(t) for t in padded]
        self.transposed = [np.ascontiguousarray(t.T) for t in padded]
        self.padded_shape = tuple(len(t) for t in padded)

    def predict(self, weights):
        """h(x_i) = Σ_cells w Φ, with w summed against c over the output-weight axis."""
        w = weights.reshape(self.shape)
        if self.output_axis is not None:
            w = np.moveaxis(w, self.output_axis, -1) @ self.output
        out = np.empty(self.transposed[0].shape[0])
        kernels.separable_predict(self.form, *self.transposed, np.ascontiguousarray(w.reshape(self.padded_shape)), out)
        return out

    def first_variation(self, coef):
        """Σ_i c_i Φ(θ, x_i) on every cell (flat, C order)."""
        out = np.empty(math.prod(self.padded_shape))
        kernels.separable_first_variation(self.form, *self.tables, coef, out)
        if self.output_axis is None:
            return out
        reduced = [n for axis, n in enumerate(self.shape) if axis != self.output_axis]
        along_output = [-1 if axis == self.output_axis else 1 for axis in range(len(self.shape))]
        return (np.expand_dims(out.reshape(reduced), self.output_axis) * self.output.reshape(along_output)).ravel()


CELL_METHODS = ("auto", "separable", "matrix", "pointwise")


def cell_evaluation(feature, grid, X, method="auto"):
    """How h and F' are evaluated on the cells (or mesh vertices) of ``grid``.

    ``method="auto"`` takes :class:`SeparableCells` where the discretization offers
    ``separable_axes`` (a Cartesian grid; unless an exponential table could overflow),
    else :class:`MatrixCells` when the matrix has at most ``MATRIX_LIMIT`` entries, else
    :class:`PointwiseCells`; the others force one
    (for tests and benchmarks).
    """
    if method not in CELL_METHODS:
        raise ValueError(f"cell_evaluation: method must be one of {CELL_METHODS}, got {method!r}")
    axes = getattr(grid, "separable_axes", None)
    if method in ("auto", "separable") and axes is not None:
        separable = kernels.separable_tables(feature.spec, axes, X)
        if separable is not None:
            return SeparableCells(*separable, axes)
    if method == "separable":
        raise ValueError("cell_evaluation: the features do not separate on these cells (a mesh, or "
                         f"exponents beyond ±{kernels.EXPONENT_LIMIT:g})")
    theta = np.ascontiguousarray(grid.points.reshape(-1, grid.dim))
    if method == "matrix" or (method == "auto" and len(theta) * len(X) <= MATRIX_LIMIT):
        return MatrixCells(feature.spec, theta, X)
    return PointwiseCells(feature.spec, theta, X)


def teacher_labels(feature, theta_star, X, weights=None):
    """y_i = Σ_k w_k Φ(θ*_k, x_i), the labels of a teacher network (default w_k = 1/m0)."""
    theta_star = np.atleast_2d(np.asarray(theta_star, dtype=float))
    weights = np.full(len(theta_star), 1 / len(theta_star)) if weights is None else np.asarray(weights, float)
    return weights @ feature(theta_star, X)


class NetworkRisk(Energy):
    """F(μ) = (1/n) Σ_i ℓ(h_μ(x_i), y_i) + λ ∫|θ|² dμ over parameters θ ∈ R^feature.dim.

    Parameters
    ----------
    feature : Feature
        The unit Φ(θ, x).
    X, y : arrays (n, input_dim) and (n,)
        The data set the risk averages over (full-batch gradient descent and the PDE).
    loss : {"square", "logistic"}
    weight_decay : float
        λ ≥ 0.
    sampler : callable, optional
        ``sampler(rng, size) -> (X, y)``: fresh samples for SGD; without it, SGD draws
        mini-batches from (X, y) with replacement.
    comm : mpi4py communicator, optional
        Split the data over its ranks (see the module doc): rank r of P sums over the block
        i ∈ [⌊rn/P⌋, ⌊(r+1)n/P⌋) of the data, and F' on the cells of a grid, the risk and the
        full-batch particle velocities are added over the ranks (one ``Allreduce`` per
        evaluation). Every rank holds the whole grid or all the particles and takes the same
        steps, so each must call the same methods. Not on a mesh split over ranks (there the
        vertices are split; give no ``comm``). SGD mini-batches are not split (each rank draws
        the same batch from the same generator).
    """

    local = False  # F' at a point sums over all points
    distributed = True  # on a mesh split over ranks h is summed over them (the discretization's sums)

    def __init__(self, feature, X, y, loss="square", weight_decay=0.0, sampler=None, comm=None):
        if loss not in LOSSES:
            raise ValueError(f"NetworkRisk: loss must be one of {sorted(LOSSES)}, got {loss!r}")
        X = feature.inputs(X, "NetworkRisk: X")
        y = np.ascontiguousarray(np.asarray(y, dtype=float))
        if len(X) == 0:
            raise ValueError("NetworkRisk: X holds no data point: give at least one")
        if y.shape != (len(X),):
            raise ValueError(f"NetworkRisk: y must have shape ({len(X)},) to match X, got {y.shape}")
        if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
            raise ValueError("NetworkRisk: X and y must be finite")
        weight_decay = float(weight_decay)
        if not np.isfinite(weight_decay) or weight_decay < 0:
            raise ValueError(f"NetworkRisk: weight_decay must be finite and >= 0, got {weight_decay}")
        self.loss = LOSSES[loss]
        self.loss.check_labels(y)
        self.feature, self.X, self.y = feature, X, y
        self.weight_decay, self.sampler = weight_decay, sampler
        self.dim = feature.dim
        self.comm = None if comm is None or comm.size == 1 else comm
        rank, size = (0, 1) if self.comm is None else (self.comm.rank, self.comm.size)
        self.block = slice(len(X) * rank // size, len(X) * (rank + 1) // size)
        """The data points this rank sums over (all of them without ``comm``)."""

    def __repr__(self):
        return f"NetworkRisk({self.feature.kind}/{self.feature.activation}, {self.loss.name}, n={len(self.X)})"

    def on_ranks(self, comm):
        """The same risk with its data split over the ranks of ``comm`` (the ``comm``
        parameter; None: not split)."""
        return NetworkRisk(self.feature, self.X, self.y, self.loss.name, self.weight_decay, self.sampler, comm)

    def _over_ranks(self, partial):
        """The sums over the ranks of ``comm`` of this rank's ``partial`` sums over its block of
        data (an array; itself without ``comm``)."""
        if self.comm is None:
            return partial
        from mpi4py import MPI

        total = np.empty_like(partial)
        self.comm.Allreduce(np.ascontiguousarray(partial), total, op=MPI.SUM)
        return total

    def _block(self):
        """(X, y) of this rank's block of data."""
        return np.ascontiguousarray(self.X[self.block]), self.y[self.block]

    # particles and grids share these three -------------------------------------------
    def predict(self, theta, weights, x=None):
        """h_μ(x) = Σ_j w_j Φ(θ_j, x) at the data points (or at the inputs ``x`` (n, input_dim))."""
        theta = self.feature.parameters(theta, "NetworkRisk")
        x = self.X if x is None else self.feature.inputs(x, "NetworkRisk: x")
        return self._prediction(theta, particle_weights(weights, theta, "NetworkRisk"), x)

    def _prediction(self, theta, weights, x):
        """h_μ at the inputs x, from arrays already checked (the kernel checks no bounds)."""
        out = np.empty(len(x))
        kernels.predict(self.feature.spec, theta, weights, x, out)
        return out

    def risk(self, theta, weights):
        """(1/n) Σ_i ℓ(h_μ(x_i), y_i), without the weight decay (with ``comm``: each rank
        sums over its block, the sums added over the ranks)."""
        if self.comm is None:
            return float(np.mean(self.loss.value(self.predict(theta, weights), self.y)))
        X, y = self._block()
        partial = np.sum(self.loss.value(self.predict(theta, weights, X), y))
        return float(self._over_ranks(np.array([partial]))[0]) / len(self.y)

    # grids -----------------------------------------------------------------------------
    @once_per_discretization
    def cells(self, grid):
        """|θ_j|² at the cell centres and the :func:`cell_evaluation` of h and F' (at this
        rank's block of data); computed once per grid."""
        self.check(grid)
        squared_norm = np.sum(grid.points.reshape(-1, grid.dim) ** 2, axis=1)
        return squared_norm, cell_evaluation(self.feature, grid, self._block()[0])

    def check(self, grid):
        if grid.dim != self.dim:
            raise ValueError(
                f"NetworkRisk: the grid is {grid.dim}D but θ has dimension {self.dim}: "
                "the grid must be over the parameter space"
            )
        if self.comm is not None and grid.ranks > 1:
            raise ValueError(f"NetworkRisk: its data is split over {self.comm.size} ranks (comm) and the points of "
                             f"{grid!r} over {grid.ranks}: split one of them only; on a mesh under MPI give the "
                             "risk no comm (each rank sums over its own vertices)")

    def value_and_first_variation(self, rho, grid):
        """F and F' on the cells: h_μ(x_i) = Σ_j w_j Φ(θ_j, x_i) from w = ρ|cell| (the ranks'
        parts added where the points are split over ranks), then F' = Σ_i c_i Φ(·, x_i) with
        c_i = ∂ℓ(h_μ(x_i), y_i)/n (the ranks' parts, with the loss, added where the data is
        split over ranks; see :func:`cell_evaluation` for how)."""
        squared_norm, evaluation = self.cells(grid)
        weights = np.ascontiguousarray(rho.ravel() * grid.weights.ravel())  # cell volumes, or lumped masses
        h = grid.sums(evaluation.predict(weights))  # at this rank's block of data
        y = self.y[self.block]
        coef = self.loss.derivative(h, y) / len(self.y)
        totals = self._over_ranks(np.append(evaluation.first_variation(coef), np.sum(self.loss.value(h, y))))
        xi, risk = totals[:-1], totals[-1] / len(self.y)
        value = float(risk) + self.weight_decay * grid.global_sum(float(squared_norm @ weights))
        return value, (xi + self.weight_decay * squared_norm).reshape(grid.shape)

    def value(self, rho, grid):
        return self.value_and_first_variation(rho, grid)[0]

    def first_variation(self, rho, grid):
        return self.value_and_first_variation(rho, grid)[1]

    # particles -------------------------------------------------------------------------
    def sample_batch(self, rng, size):
        """A mini-batch (X_b, y_b): from the sampler, or drawn from the data with replacement."""
        if self.sampler is not None:
            X, y = self.sampler(rng, size)
            return np.ascontiguousarray(X, dtype=float), np.asarray(y, dtype=float)
        index = rng.integers(len(self.X), size=size)
        return self.X[index], self.y[index]

    def _checked_batch(self, X, y):
        """A mini-batch (X_b, y_b) after checking that it fits the feature and itself."""
        X, y = self.feature.inputs(X, "NetworkRisk: the batch's X"), np.asarray(y, dtype=float)
        if y.shape != (len(X),):
            raise ValueError(f"NetworkRisk: the batch's y has shape {y.shape} for {len(X)} inputs: give shape "
                             f"({len(X)},)")
        return X, y

    def particle_energy(self, theta, weights):
        """F(μ_m) = (1/n) Σ_i ℓ(h_μm(x_i), y_i) + λ Σ_j w_j |θ_j|²: the risk of the m-neuron
        network plus the weight decay."""
        return self.risk(theta, weights) + self.weight_decay * float(np.asarray(weights) @ np.sum(
            np.asarray(theta, dtype=float) ** 2, axis=1))

    def particle_velocity(self, theta, weights, batch=None):
        """−∇θF'(μ_m)(θ_j), from the full data or from a mini-batch (X_b, y_b). With ``comm``
        the full data's sum over i is split: each rank sums over its block, the gradients are
        added over the ranks."""
        theta = self.feature.parameters(theta, "NetworkRisk")
        weights = particle_weights(weights, theta, "NetworkRisk")
        X, y = self._block() if batch is None else self._checked_batch(*batch)  # C-contiguous (n, input_dim)
        h = self._prediction(theta, weights, X)
        coef = self.loss.derivative(h, y) / (len(self.y) if batch is None else len(y))
        grad = np.empty_like(theta)
        kernels.gradient(self.feature.spec, theta, coef, X, grad)
        if batch is None:
            grad = self._over_ranks(grad)
        return -grad - 2 * self.weight_decay * theta
