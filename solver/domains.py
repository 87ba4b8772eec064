"""Compact domains Ω of parameter space: membership, projection (projected SGD), uniform
samples (data x ~ Unif(Ω)) and quadrature rules (risks integrated over Ω).

Each domain has ``dim``, ``volume`` |Ω|, ``convex`` (statements such as displacement
convexity of the bump-network limit rely on it), ``contains``, ``project``, ``sample``
and ``quadrature``. :class:`Sphere` is a surface (its ``dim`` the ambient dimension, its
``volume`` the surface measure): the parameter space of 2-homogeneous units w = r s.
"""

import math

import numpy as np

GAUSS_NODES = 8
"""Gauss–Legendre nodes per sub-interval of the composite quadrature rules."""


def composite_gauss(lower, upper, spacing):
    """Nodes and weights of the composite ``GAUSS_NODES``-point Gauss–Legendre rule on
    [lower, upper] with sub-intervals no longer than ``spacing``: exact for polynomials of
    degree 15 on each sub-interval."""
    if not spacing > 0:
        raise ValueError(f"quadrature spacing must be > 0, got {spacing}")
    pieces = max(1, math.ceil((upper - lower) / spacing))
    nodes, weights = np.polynomial.legendre.leggauss(GAUSS_NODES)
    edges = np.linspace(lower, upper, pieces + 1)
    half = 0.5 * np.diff(edges)[:, None]
    centres = 0.5 * (edges[1:] + edges[:-1])[:, None]
    return (centres + half * nodes).ravel(), (half * weights).ravel()


class Box:
    """The box [lower, upper] (per coordinate); projection clips."""

    convex = True

    def __init__(self, lower, upper):
        self.lower, self.upper = np.atleast_1d(np.asarray(lower, dtype=float)), np.atleast_1d(
            np.asarray(upper, dtype=float))
        if self.lower.shape != self.upper.shape or not np.all(self.lower < self.upper):  # NaN fails too
            raise ValueError(f"Box: need lower < upper coordinatewise, got {self.lower} and {self.upper}")
        self.dim = len(self.lower)
        with np.errstate(over="ignore"):
            self.volume = float(np.prod(self.upper - self.lower))
        if not (self.lower.ndim == 1 and np.isfinite(self.volume)):
            raise ValueError(f"Box: need finite corners (one coordinate each), got {self.lower} and {self.upper}")

    def __repr__(self):
        return f"Box({self.lower.tolist()}, {self.upper.tolist()})"

    def contains(self, theta):
        return np.all((theta >= self.lower) & (theta <= self.upper), axis=-1)

    def project(self, theta):
        return np.clip(theta, self.lower, self.upper)

    def sample(self, rng, size):
        """``size`` points drawn uniformly from the box, shape (size, dim)."""
        return rng.uniform(self.lower, self.upper, size=(size, self.dim))

    def quadrature(self, spacing):
        """(points (n, dim), weights (n,)): the tensor product of composite Gauss rules."""
        rules = [composite_gauss(lo, hi, spacing) for lo, hi in zip(self.lower, self.upper)]
        points = np.stack(np.meshgrid(*[x for x, _ in rules], indexing="ij"), axis=-1).reshape(-1, self.dim)
        weights = np.prod(np.meshgrid(*[w for _, w in rules], indexing="ij"), axis=0).ravel()
        return points, weights


class _Radial:
    """Shared by the ball and the annulus {inner ≤ |θ − center| ≤ outer} in 2D polar
    coordinates: radial projection, uniform samples and polar quadrature."""

    def __init__(self, center, inner, outer):
        self.center = np.atleast_1d(np.asarray(center, dtype=float))
        self.inner, self.outer = float(inner), float(outer)
        self.dim = len(self.center)

    def contains(self, theta):
        r = np.linalg.norm(theta - self.center, axis=-1)
        return (r >= self.inner * (1 - 1e-12)) & (r <= self.outer * (1 + 1e-12))

    def project(self, theta):
        offset = theta - self.center
        r = np.linalg.norm(offset, axis=-1, keepdims=True)
        return self.center + offset * np.clip(r, self.inner, self.outer) / np.maximum(r, 1e-300)

    def sample(self, rng, size):
        """Uniform points: a uniform direction and r^d uniform on [inner^d, outer^d]."""
        direction = rng.standard_normal((size, self.dim))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        r = rng.uniform(self.inner**self.dim, self.outer**self.dim, size=(size, 1)) ** (1 / self.dim)
        return self.center + r * direction

    def quadrature(self, spacing):
        """Polar rule in 2D: composite Gauss in r (weight r dr), the trapezoidal rule in
        the angle (spectrally accurate for periodic integrands) with arcs ≤ spacing/4 at
        the outer radius."""
        if self.dim != 2:
            raise ValueError(f"{self!r}: quadrature is implemented for 2D discs only, got dim {self.dim}")
        r, w = composite_gauss(self.inner, self.outer, spacing)
        angles = max(16, math.ceil(2 * math.pi * self.outer / (spacing / 4)))
        phi = 2 * math.pi * np.arange(angles) / angles
        points = self.center + np.stack([np.outer(r, np.cos(phi)), np.outer(r, np.sin(phi))], axis=-1).reshape(-1, 2)
        return points, np.repeat(w * r * 2 * math.pi / angles, angles)


class Ball(_Radial):
    """The closed ball |θ − center| ≤ radius; projection is radial."""

    convex = True

    def __init__(self, center, radius):
        if not (0 < float(radius) < np.inf and np.all(np.isfinite(center))):
            raise ValueError(f"Ball: need a finite center and a finite radius > 0, got {center} and {radius}")
        super().__init__(center, 0.0, radius)
        self.radius = self.outer
        self.volume = math.pi ** (self.dim / 2) / math.gamma(self.dim / 2 + 1) * self.radius**self.dim

    def __repr__(self):
        return f"Ball({self.center.tolist()}, {self.radius})"


class Annulus(_Radial):
    """The closed annulus inner ≤ |θ − center| ≤ outer (not convex); projection is radial."""

    convex = False

    def __init__(self, center, inner, outer):
        if not 0 < float(inner) < float(outer):
            raise ValueError(f"Annulus: need 0 < inner < outer, got {inner} and {outer}")
        super().__init__(center, inner, outer)
        if self.dim != 2:
            raise ValueError(f"Annulus: the center must have 2 coordinates, got {self.center.tolist()}")
        self.volume = math.pi * (self.outer**2 - self.inner**2)

    def __repr__(self):
        return f"Annulus({self.center.tolist()}, {self.inner}, {self.outer})"


class Sphere:
    r"""The sphere |θ − center| = radius in R^d (d = 2: a circle, d = 3: the 2-sphere S²), a
    compact manifold without boundary: particles on it are projected by normalization.

    ``dim`` is d, the ambient dimension (the number of coordinates of a point, as
    ``solver.fem.Mesh.dim`` on a surface mesh); ``volume`` is the surface measure
    |S| = 2π^(d/2)/Γ(d/2) r^(d−1) (2πr, 4πr²).
    """

    convex = False

    def __init__(self, center, radius=1.0):
        if not float(radius) > 0:
            raise ValueError(f"Sphere: radius must be > 0, got {radius}")
        self.center = np.atleast_1d(np.asarray(center, dtype=float))
        self.radius = float(radius)
        self.dim = len(self.center)
        if self.dim < 2:
            raise ValueError(f"Sphere: the center must have at least 2 coordinates, got {self.center.tolist()}")
        self.volume = 2 * math.pi ** (self.dim / 2) / math.gamma(self.dim / 2) * self.radius ** (self.dim - 1)

    def __repr__(self):
        return f"Sphere({self.center.tolist()}, {self.radius})"

    def contains(self, theta):
        """Whether | |θ − center| − radius | ≤ 1e-12 radius (on the sphere to round-off)."""
        return np.abs(np.linalg.norm(theta - self.center, axis=-1) - self.radius) <= 1e-12 * self.radius

    def project(self, theta):
        """center + radius (θ − center)/|θ − center|: the closest point of the sphere (any point
        of it for θ = center, which goes to center + radius e_1)."""
        offset = np.array(theta - self.center, dtype=float)
        r = np.linalg.norm(offset, axis=-1, keepdims=True)
        at_center = r[..., 0] == 0
        offset[at_center], r[at_center] = np.eye(self.dim)[0], 1.0
        return self.center + self.radius * offset / r

    def sample(self, rng, size):
        """Uniform points on the sphere: normalized standard Gaussians, shape (size, dim)."""
        direction = rng.standard_normal((size, self.dim))
        return self.center + self.radius * direction / np.linalg.norm(direction, axis=1, keepdims=True)

    def quadrature(self, spacing):
        """(points (n, dim), weights (n,)) with Σ weights g(points) ≈ ∫_S g dσ.

        d = 2: the trapezoidal rule in the angle (spectrally accurate for smooth periodic g),
        arcs ≤ spacing/4. d = 3: Archimedes' dσ = r dz dφ, composite Gauss in the height z ∈
        [−r, r] times the trapezoidal rule in the longitude φ (arcs ≤ spacing/4 on the
        equator): exact for polynomials of degree 15 in z on each sub-interval times
        trigonometric polynomials in φ of degree below the number of angles.
        """
        if self.dim not in (2, 3):
            raise ValueError(f"{self!r}: quadrature is implemented for circles and 2-spheres, got dim {self.dim}")
        angles = max(16, math.ceil(2 * math.pi * self.radius / (spacing / 4)))
        phi = 2 * math.pi * np.arange(angles) / angles
        circle = np.stack([np.cos(phi), np.sin(phi)], axis=-1)
        if self.dim == 2:
            return self.center + self.radius * circle, np.full(angles, 2 * math.pi * self.radius / angles)
        z, w = composite_gauss(-self.radius, self.radius, spacing)
        ring = np.sqrt(self.radius**2 - z**2)
        points = np.concatenate([ring[:, None, None] * circle, np.broadcast_to(z[:, None, None], (len(z), angles, 1))],
                                axis=-1).reshape(-1, 3)
        return self.center + points, np.repeat(w * self.radius * 2 * math.pi / angles, angles)
