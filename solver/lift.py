"""The conic lift of 2-homogeneous ReLU networks to measures on the sphere.

A neuron w = (a, b), a ∈ R^p (the input weights, with the bias coefficient when
x̃ = [x; 1]), b ∈ R, computes Φ(w, x) = b (a·x̃)₊, which is 2-homogeneous:
Φ(tw, x) = t² Φ(w, x) for t > 0. With particle weights ω_j (ω_j = 1/m for m neurons),
μ = Σ_j ω_j δ_(w_j) predicts h(x) = ∫Φ(w, x) dμ(w), and the energy is

    F(μ) = R(h) + λ∫|w|² dμ,    R(h) = ½ Σ_i q_i (h(x_i) − y_i)²,

the square loss with quadrature weights q_i (q_i = 1/n: the empirical mean, as
:class:`solver.energies.network.NetworkRisk`). Write r_i = q_i (h(x_i) − y_i); with a
classification loss R(h) = Σ_i q_i ℓ(h(x_i), y_i) (logistic or exponential,
:class:`ReluRegression`) everything below holds with r_i = q_i ∂ℓ(h(x_i), y_i).
Gradient descent on the particles, dw_j/dt = −∇_w F'(μ)(w_j), the time convention of
the whole package, uses F'(μ)(w) = b Σ_i r_i (a·x̃_i)₊ + λ(|a|² + b²):

    da/dt = −b ∇G(a) − 2λa,    db/dt = −G(a) − 2λb,

with G(s) = Σ_i r_i (s·x̃_i)₊ and ∇G(s) = Σ_i r_i 1{s·x̃_i > 0} x̃_i (so s·∇G(s) = G(s):
G is 1-homogeneous). Then d(|a|² − b²)/dt = −2b a·∇G − 4λ|a|² + 2bG + 4λb² = −4λ(|a|² − b²):
a balanced neuron (|a| = |b|) stays balanced.

**Balanced reduction.** Put a = ρ s with |s| = 1 and b = ε ρ, ε = sign(b) = ±1. Then

    d(ρ²)/dt = 2a·da/dt = −2ερ² s·∇G(s) − 4λρ² = −2(εG(s) + 2λ) ρ²,
    ds/dt = (I − ssᵀ)(da/dt)/ρ = −ε(∇G − (s·∇G)s) = −∇_S(εG)(s),

and h(x) = Σ_j ω_j ε_j ρ_j² (s_j·x̃)₊ = ∫(s·x̃)₊ dν+ − ∫(s·x̃)₊ dν−, with the two measures
ν± = Σ_(ε_j = ±1) ω_j |a_j|² δ_(s_j) on S^(p−1) (:func:`lift`). So ν± solve

    ∂tν± = ∇_S·(ν± ∇_S(±G)) − 2(±G + 2λ) ν±,

the Wasserstein–Fisher–Rao gradient flow (transport 1, reaction 2) of the lifted energy
F(ν+, ν−) = R(h) + 2λ(|ν+| + |ν−|) (λ∫|w|² dμ = 2λ∫|a|² dμ on balanced neurons), whose
first variations are ±G + 2λ. The convex problem on fixed directions
(:func:`solver.convex.convex_minimum`) has penalty λ' = 2λ.

**General lift.** For any 2-homogeneous Φ, w = r s with s ∈ S^(p) (here s in the space
of the whole w = (a, b)): ν = Σ_j ω_j |w_j|² δ_(s_j) predicts the same h with Φ(s, x)
(``lift(..., balanced=False)``); its flow has reaction 4 instead of 2 (Chizat–Bach 2018,
§2: d(r²)/dt = −4F̃(s)r²).

The flows here are NumPy references for particles (:func:`gradient_flow` in w,
:func:`lifted_flow` on the sphere) by classical Runge–Kutta steps, refined where a step
crosses a ReLU kink; the two are the same ODE in two coordinate systems, so their
predictions agree at fixed times up to the integrators' errors.
"""

import dataclasses

import numpy as np
from scipy import special

from .energies.base import particle_weights

LOSSES = ("square", "logistic", "exponential")
"""The losses ℓ(p, y) of :class:`ReluRegression`: ½(p − y)², log(1 + e^(−yp)) and e^(−yp)."""


def relu_inputs(X, bias=False):
    """x̃ = [x; 1] with a bias, x without, as an (n, p) array."""
    X = np.atleast_2d(np.asarray(X, dtype=float))
    return np.concatenate([X, np.ones((len(X), 1))], axis=1) if bias else X


def relu_features(directions, inputs):
    """A[i, k] = (s_k·x̃_i)₊ for directions s_k (K, p) and inputs x̃_i (n, p)."""
    return np.maximum(np.asarray(inputs, float) @ np.asarray(directions, float).T, 0.0)


def circle_directions(angles):
    """s(φ) = (cos φ, sin φ) for an array of angles, shape (..., 2)."""
    angles = np.asarray(angles, dtype=float)
    return np.stack([np.cos(angles), np.sin(angles)], axis=-1)


@dataclasses.dataclass(frozen=True)
class SphereMeasure:
    """Atoms on the unit sphere: ν = Σ_j masses_j δ_(directions_j), in species by sign.

    Attributes
    ----------
    directions : array (m, p)
        Unit vectors s_j.
    masses : array (m,)
        ≥ 0.
    signs : array (m,) of ±1, or None
        The species of each atom (ν+ where +1, ν− where −1) in the balanced reduction;
        None for the general lift (one measure).
    """

    directions: np.ndarray
    masses: np.ndarray
    signs: np.ndarray = None

    def prediction(self, inputs):
        """h(x̃_i) = Σ_j ε_j m_j (s_j·x̃_i)₊ = ∫(s·x̃)₊ dν+ − ∫(s·x̃)₊ dν− (balanced lift)."""
        if self.signs is None:
            raise ValueError("SphereMeasure.prediction: a general lift has no species; h = Σ m_j Φ(s_j, x)")
        return relu_features(self.directions, inputs) @ (self.signs * self.masses)

    def species(self, sign):
        """(directions, masses) of ν+ (sign = +1) or ν− (sign = −1)."""
        keep = self.signs == sign
        return self.directions[keep], self.masses[keep]

    @property
    def points(self):
        """The atoms' positions on the sphere (the directions), for :mod:`solver.conic`."""
        return self.directions

    def moved(self, points, masses):
        """The same species with new positions and masses."""
        return dataclasses.replace(self, directions=points, masses=masses)


def _check_particles(theta, weights, name):
    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    if theta.ndim != 2 or theta.shape[1] < 2:
        raise ValueError(f"{name}: theta must be (m, p + 1) rows w = (a, b), got shape {theta.shape}")
    if not np.all(np.isfinite(theta)):
        raise ValueError(f"{name}: theta must be finite")
    return theta, particle_weights(weights, theta, name, masses=True)


def _unit(vectors):
    """Rows normalized to length 1; a zero row becomes the first basis vector (its mass is 0)."""
    norms = np.linalg.norm(vectors, axis=1)
    out = np.zeros_like(vectors)
    out[:, 0] = 1.0
    nonzero = norms > 0
    out[nonzero] = vectors[nonzero] / norms[nonzero, None]
    return out, norms


def lift(theta, weights, balanced=True, tol=1e-8):
    """Map ReLU particles w_j = (a_j, b_j) with weights ω_j ≥ 0 to measures on the sphere.

    Balanced (default): directions s_j = a_j/|a_j| ∈ S^(p−1), masses ω_j|a_j|², species
    sign(b_j): the measures ν± of the module docstring, which predict the same h. It needs
    |a_j| = |b_j| (the Chizat–Bach initialization; gradient descent keeps it): a neuron with
    ||a_j|² − b_j²| > tol (|a_j|² + b_j²) is refused, naming the worst one.

    General (``balanced=False``): directions w_j/|w_j| ∈ S^p, masses ω_j|w_j|², no species.

    A zero row gets mass 0 and the first basis vector as its direction.

    Parameters
    ----------
    theta : array (m, p + 1)
        Rows w = (a, b), as :meth:`solver.energies.network.Feature.neuron` orders them.
    weights : array (m,)
        ω_j ≥ 0.
    balanced : bool
    tol : float
        Relative tolerance on the balance.

    Returns
    -------
    SphereMeasure
    """
    theta, weights = _check_particles(theta, weights, "lift")
    if not balanced:
        directions, norms = _unit(theta)
        return SphereMeasure(directions, weights * norms**2)
    a, b = theta[:, :-1], theta[:, -1]
    a2, b2 = np.sum(a**2, axis=1), b**2
    total = a2 + b2
    imbalance = np.divide(np.abs(a2 - b2), total, out=np.zeros_like(total), where=total > 0)
    if np.any(imbalance > tol):
        j = int(np.argmax(imbalance))
        raise ValueError(
            f"lift: the balanced reduction needs |a_j| = |b_j| (gradient descent keeps |a_j|² − b_j²); "
            f"{np.count_nonzero(imbalance > tol)} of {len(theta)} neurons are off by more than tol = {tol:g} "
            f"(relative), the worst j = {j} with |a| = {np.sqrt(a2[j]):.6g}, |b| = {abs(b[j]):.6g}, "
            f"||a|² − b²|/(|a|² + b²) = {imbalance[j]:.3g}; use lift(..., balanced=False) for the general lift")
    directions, norms = _unit(a)
    return SphereMeasure(directions, weights * norms**2, np.where(b < 0, -1.0, 1.0))


def lift_density(rho, grid, directions, nodes=48):
    """ν(s) = ∫₀^R r² ρ(rs) r^(p−1) dr at the unit vectors s = ``directions`` (K, p): the
    density per unit area of the lift ν = ∫ r² δ_s dμ of μ = ρ dθ on a Cartesian grid of R^p
    (the general lift, w = rs; polar coordinates dθ = r^(p−1) dr ds).

    ρ(rs) is the trilinear (multilinear) interpolation of the cell averages between the
    cell centres (held constant beyond the outer centres), the radial integral Gauss–Legendre
    with ``nodes`` points on [0, R], R the radius of the largest ball about 0 inside the box:
    the mass of μ beyond R is left out (its share of ∫|θ|²dμ is the caller's to check).
    Both errors are O(h²) for a smooth ρ (measured on the relu-teacher start, N(0, ¼I) on
    [−3, 3]³, whose exact lift is the constant 3σ²/(4π): see tests/test_two_ways.py).

    Parameters
    ----------
    rho : array, grid.shape
        Cell averages of a density on ``grid`` (a :class:`~solver.grid.Grid` of R^p).
    grid : Grid
    directions : array (K, p)
        Unit vectors, e.g. a sphere mesh's points.
    nodes : int
        Gauss–Legendre points along each ray.

    Returns
    -------
    array (K,)
        ν(s_k), a density per unit area of S^(p−1).
    """
    from scipy.interpolate import RegularGridInterpolator

    directions = np.atleast_2d(np.asarray(directions, dtype=float))
    if directions.shape[1] != grid.dim:
        raise ValueError(f"lift_density: directions must be unit vectors of R^{grid.dim} (the grid's), "
                         f"got shape {directions.shape}")
    bounds = np.asarray(grid.bounds, dtype=float)
    if np.any(bounds[:, 0] >= 0) or np.any(bounds[:, 1] <= 0):
        raise ValueError("lift_density: the grid must contain θ = 0 inside (the rays start there)")
    radius = float(np.min(np.abs(bounds)))
    interpolate = RegularGridInterpolator(grid.axes, np.asarray(rho, dtype=float).reshape(grid.shape),
                                          bounds_error=False, fill_value=None)
    t, q = np.polynomial.legendre.leggauss(nodes)
    r, q = radius * (t + 1) / 2, radius * q / 2
    p = grid.dim
    points = _unit(directions)[0][:, None, :] * r[None, :, None]  # (K, nodes, p)
    inside = np.clip(points, [axis[0] for axis in grid.axes], [axis[-1] for axis in grid.axes])
    values = interpolate(inside.reshape(-1, p)).reshape(len(directions), nodes)
    return values @ (q * r ** (p + 1))


def balanced_relu_init(m, dim, rng, signs="alternating"):
    """Draw the Chizat–Bach initialization: a_j ~ Unif(S^(dim−1)), b_j = ±1.

    Parameters
    ----------
    m : int
        Number of neurons.
    dim : int
        Dimension of a (the input dimension, plus 1 with a bias).
    rng : numpy.random.Generator
    signs : {"alternating", "random"}
        b_j = +1, −1, +1, … or independent fair signs.

    Returns
    -------
    theta : array (m, dim + 1)
        Rows (a_j, b_j) with |a_j| = |b_j| = 1.
    """
    if not isinstance(m, (int, np.integer)) or m < 1 or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"balanced_relu_init: m and dim must be positive integers, got m={m!r}, dim={dim!r}")
    a = rng.normal(size=(m, dim))
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    if signs == "alternating":
        b = np.where(np.arange(m) % 2 == 0, 1.0, -1.0)
    elif signs == "random":
        b = rng.choice([-1.0, 1.0], size=m)
    else:
        raise ValueError(f"balanced_relu_init: signs must be 'alternating' or 'random', got {signs!r}")
    return np.concatenate([a, b[:, None]], axis=1)


def _value_and_gradient(points, coefficients, inputs):
    """G(s) = Σ_i r_i (s·x̃_i)₊ and its Euclidean gradient Σ_i r_i 1{s·x̃_i > 0} x̃_i at each row s."""
    dots = points @ inputs.T
    return np.maximum(dots, 0.0) @ coefficients, (dots > 0) @ (coefficients[:, None] * inputs)


def first_variation(directions, coefficients, inputs):
    """G(s) = Σ_i r_i (s·x̃_i)₊ and its tangential gradient ∇_S G(s) = (I − ssᵀ)∇G(s).

    ∇G(s) = Σ_i r_i 1{s·x̃_i > 0} x̃_i is the Euclidean gradient of the 1-homogeneous
    extension; on the sphere only its tangential part moves s. With r_i = q_i ∂ℓ(h_i, y_i)
    (:meth:`ReluRegression.coefficients`) G is the lifted first variation E[∂ℓ(h, y)(s·x̃)₊].

    Parameters
    ----------
    directions : array (K, p)
        Points s_k (unit vectors; off the sphere the projection uses s/|s|).
    coefficients : array (n,)
        r_i.
    inputs : array (n, p)
        x̃_i.

    Returns
    -------
    G : array (K,)
    tangential : array (K, p)
    """
    directions = np.atleast_2d(np.asarray(directions, dtype=float))
    G, gradient = _value_and_gradient(directions, coefficients, inputs)
    radial = np.sum(gradient * directions, axis=1) / np.sum(directions**2, axis=1)
    return G, gradient - radial[:, None] * directions


def first_variation_on_circle(angles, coefficients, inputs):
    """G(φ) and dG/dφ for directions s(φ) = (cos φ, sin φ) on S¹.

    dG/dφ = ∇G(s)·s'(φ) with s'(φ) = (−sin φ, cos φ), the tangential gradient in the
    angle (|s'| = 1, so the flow ds/dt = −∇_S(εG) reads dφ/dt = −ε dG/dφ).

    Parameters
    ----------
    angles : array (K,)
    coefficients : array (n,)
        r_i.
    inputs : array (n, 2)
        x̃_i.

    Returns
    -------
    G, dG_dphi : arrays (K,)
    """
    angles = np.asarray(angles, dtype=float)
    G, tangential = first_variation(circle_directions(angles), coefficients, inputs)
    tangent = np.stack([-np.sin(angles), np.cos(angles)], axis=-1)
    return G, np.sum(tangential * tangent, axis=1)


@dataclasses.dataclass(frozen=True)
class ReluRegression:
    """Regression or classification by ReLU units b(a·x̃)₊, as particles and on the sphere.

    R(h) = Σ_i q_i ℓ(h_i, y_i), weight decay λ∫|w|² dμ (see the module docstring), with

    - ``"square"``: ℓ(p, y) = ½(p − y)², ∂ℓ = p − y;
    - ``"logistic"``: ℓ(p, y) = log(1 + e^(−yp)), ∂ℓ = −y σ(−yp) (σ the logistic sigmoid);
    - ``"exponential"``: ℓ(p, y) = e^(−yp), ∂ℓ = −y e^(−yp);

    the last two for labels y ∈ {−1, 1} (Chizat–Bach 2020's implicit bias: unregularized,
    the mass grows without bound and h/|ν| tends to the F1 max-margin classifier). Every
    formula of the lift holds with r_i = q_i ∂ℓ(h_i, y_i) (:meth:`coefficients`).

    Attributes
    ----------
    inputs : array (n, p)
        x̃_i (with the 1 of the bias already appended: :meth:`from_data`).
    targets : array (n,)
    quadrature : array (n,)
        q_i ≥ 0.
    weight_decay : float
        λ ≥ 0.
    loss : {"square", "logistic", "exponential"}
        ℓ (see above).
    """

    inputs: np.ndarray
    targets: np.ndarray
    quadrature: np.ndarray
    weight_decay: float = 0.0
    loss: str = "square"
    reaction = 2.0  # α of the lifted flow of plain gradient descent (solver.conic); a class constant, not a field

    @classmethod
    def from_data(cls, X, y, bias=False, quadrature=None, weight_decay=0.0, loss="square"):
        """From inputs x (n, d), targets y; q_i = 1/n unless given. The classification
        losses need labels y_i ∈ {−1, 1} (ValueError naming the first data point that is not)."""
        inputs = relu_inputs(X, bias)
        y = np.asarray(y, dtype=float)
        if y.shape != (len(inputs),):
            raise ValueError(f"ReluRegression: y must have shape ({len(inputs)},), got {y.shape}")
        q = np.full(len(y), 1.0 / len(y)) if quadrature is None else np.asarray(quadrature, dtype=float)
        if q.shape != y.shape or not np.all((q >= 0) & (q < np.inf)):  # NaN fails too
            raise ValueError(f"ReluRegression: quadrature must be {len(y)} finite weights >= 0")
        if not np.isfinite(weight_decay) or weight_decay < 0:
            raise ValueError(f"ReluRegression: weight_decay must be finite and >= 0, got {weight_decay}")
        if loss not in LOSSES:
            raise ValueError(f"ReluRegression: loss must be one of {LOSSES}, got {loss!r}")
        outside = np.flatnonzero(~np.isin(y, (-1.0, 1.0)))
        if loss != "square" and len(outside):
            i = int(outside[0])
            raise ValueError(f"ReluRegression: the {loss} loss needs labels y_i in {{-1, 1}}; {len(outside)} of "
                             f"{len(y)} are not, the first y[{i}] = {y[i]:g}")
        return cls(inputs, y, q, float(weight_decay), loss)

    @property
    def penalty(self):
        """λ' = 2λ, the penalty per unit of lifted mass."""
        return 2.0 * self.weight_decay

    def risk(self, h):
        """R(h) = Σ_i q_i ℓ(h_i, y_i): ½Σ q_i (h_i − y_i)², Σ q_i log(1 + e^(−y_i h_i)) or Σ q_i e^(−y_i h_i)."""
        if self.loss == "square":
            return 0.5 * float(self.quadrature @ (h - self.targets) ** 2)
        if self.loss == "logistic":
            return float(self.quadrature @ np.logaddexp(0.0, -self.targets * h))
        return float(self.quadrature @ np.exp(-self.targets * h))

    def coefficients(self, h):
        """r_i = q_i ∂ℓ(h_i, y_i): q_i (h_i − y_i), −q_i y_i σ(−y_i h_i) or −q_i y_i e^(−y_i h_i)."""
        if self.loss == "square":
            return self.quadrature * (h - self.targets)
        if self.loss == "logistic":
            return -self.quadrature * self.targets * special.expit(-self.targets * h)
        return -self.quadrature * self.targets * np.exp(-self.targets * h)

    # particles w = (a, b) in R^(p+1) ------------------------------------------------
    def network_prediction(self, theta, weights):
        """h(x̃_i) = Σ_j ω_j b_j (a_j·x̃_i)₊."""
        return relu_features(theta[:, :-1], self.inputs) @ (weights * theta[:, -1])

    def network_energy(self, theta, weights):
        """F(μ) = R(h) + λ Σ_j ω_j |w_j|²."""
        return self.risk(self.network_prediction(theta, weights)) + self.weight_decay * float(weights @ np.sum(
            theta**2, axis=1))

    def network_velocity(self, theta, weights):
        """dw_j/dt = −∇_w F'(μ)(w_j) = (−b_j ∇G(a_j) − 2λa_j, −G(a_j) − 2λb_j)."""
        r = self.coefficients(self.network_prediction(theta, weights))
        a, b = theta[:, :-1], theta[:, -1]
        G, gradient = _value_and_gradient(a, r, self.inputs)
        return np.concatenate([-b[:, None] * gradient - 2 * self.weight_decay * a,
                               (-G - 2 * self.weight_decay * b)[:, None]], axis=1)

    # the balanced lift: (s_j, m_j, ε_j) on the sphere --------------------------------
    def lifted_energy(self, measure):
        """F(ν±) = R(h) + 2λ Σ_j m_j."""
        return self.risk(measure.prediction(self.inputs)) + self.penalty * float(np.sum(measure.masses))

    def conic_gradient(self, measure):
        """F'_j = ε_j G(s_j) + 2λ at each atom and its tangential gradient ε_j ∇_S G(s_j)."""
        r = self.coefficients(measure.prediction(self.inputs))
        G, tangential = first_variation(measure.directions, r, self.inputs)
        return measure.signs * G + self.penalty, measure.signs[:, None] * tangential

    @staticmethod
    def retract(points):
        """Back onto the sphere: s/|s|."""
        return points / np.linalg.norm(points, axis=1, keepdims=True)

    def lifted_velocity(self, measure):
        """(ds_j/dt, dm_j/dt) = (−ε_j ∇_S G(s_j), −2(ε_j G(s_j) + 2λ) m_j)."""
        xi, gradient = self.conic_gradient(measure)
        return -gradient, -2.0 * xi * measure.masses


@dataclasses.dataclass(frozen=True)
class Trajectory:
    """A flow saved at given times.

    ``predictions[k]`` is h at ``times[k]``, ``states[k]`` the particles (theta) or the
    lifted measure then, ``energies[k]`` F.
    """

    times: np.ndarray
    predictions: np.ndarray
    energies: np.ndarray
    states: list


KINK_DEPTH = 12


def _rk4(velocity, state, times, step, retract, pattern):
    """Integrate by classical RK4 and return the states at ``times``.

    The state is a tuple of arrays; the steps are equal, of at most ``step``, between
    consecutive save times (from t = 0), with ``retract`` applied after every step.

    The ReLU velocity fields jump where a unit's activation pattern 1{a·x̃_i > 0} changes,
    and an RK4 step across such a kink is only first-order accurate there. A step whose
    ``pattern(state)`` differs at its two ends is therefore redone as two half steps,
    recursively down to step/2^KINK_DEPTH, which locates each crossing and makes its error
    negligible (one level of refinement divides the local error of the crossing step by
    about 4).
    """
    times = np.asarray(times, dtype=float)
    if times.ndim != 1 or np.any(np.diff(times) <= 0) or times[0] < 0 or not step > 0:
        raise ValueError("flow: times must increase from >= 0 and step must be > 0")

    def moved(state, rate, h):
        return tuple(x + h * v for x, v in zip(state, rate))

    def advance(state, h, depth):
        k1 = velocity(state)
        k2 = velocity(moved(state, k1, h / 2))
        k3 = velocity(moved(state, k2, h / 2))
        k4 = velocity(moved(state, k3, h))
        new = retract(moved(state, [u1 + 2 * u2 + 2 * u3 + u4 for u1, u2, u3, u4 in zip(k1, k2, k3, k4)], h / 6))
        if depth == 0 or np.array_equal(pattern(state), pattern(new)):
            return new
        return advance(advance(state, h / 2, depth - 1), h / 2, depth - 1)

    saved, t = [], 0.0
    for target in times:
        count = int(np.ceil((target - t) / step - 1e-9)) if target > t else 0
        for _ in range(count):
            state = advance(state, (target - t) / count, KINK_DEPTH)
        t = target
        saved.append(state)
    return saved


def gradient_flow(problem, theta, weights, times, step):
    """Run plain gradient descent in w, dw_j/dt = −∇_w F'(μ)(w_j), by RK4 (a reference).

    Steps across a ReLU kink are refined (see :func:`_rk4`).

    Parameters
    ----------
    problem : ReluRegression
    theta : array (m, p + 1)
        Rows w = (a, b).
    weights : array (m,)
        ω_j ≥ 0 (fixed).
    times : array
        Save times (increasing, from t = 0).
    step : float
        Largest RK4 step.

    Returns
    -------
    Trajectory
        ``states`` are the particles theta at the save times.
    """
    theta, weights = _check_particles(theta, weights, "gradient_flow")
    states = [s[0] for s in _rk4(lambda state: (problem.network_velocity(state[0], weights),), (theta,), times, step,
                                 retract=lambda state: state,
                                 pattern=lambda state: state[0][:, :-1] @ problem.inputs.T > 0)]
    return Trajectory(np.asarray(times, float), np.array([problem.network_prediction(th, weights) for th in states]),
                      np.array([problem.network_energy(th, weights) for th in states]), states)


def lifted_flow(problem, measure, times, step):
    """Run the balanced lifted particle flow on the sphere by RK4 (a reference).

        ds_j/dt = −ε_j ∇_S G(s_j),    dm_j/dt = −2(ε_j G(s_j) + 2λ) m_j,

    integrated in the ambient space (the tangential field keeps |s| = 1 exactly in
    continuous time), with s renormalized after every step (a retraction that changes the
    step by O(h⁵)); steps across a ReLU kink are refined as in :func:`gradient_flow`.

    Parameters
    ----------
    problem : ReluRegression
    measure : SphereMeasure
        A balanced lift (with signs).
    times : array
        Save times (increasing, from t = 0).
    step : float
        Largest RK4 step.

    Returns
    -------
    Trajectory
        ``states`` are SphereMeasures at the save times.
    """
    if measure.signs is None:
        raise ValueError("lifted_flow: needs a balanced lift with species (lift(..., balanced=True))")
    signs = measure.signs

    def velocity(state):
        return problem.lifted_velocity(SphereMeasure(state[0], state[1], signs))

    def retract(state):
        return state[0] / np.linalg.norm(state[0], axis=1, keepdims=True), state[1]

    states = [SphereMeasure(s, m, signs) for s, m in
              _rk4(velocity, (measure.directions, measure.masses), times, step, retract,
                   pattern=lambda state: state[0] @ problem.inputs.T > 0)]
    return Trajectory(np.asarray(times, float), np.array([nu.prediction(problem.inputs) for nu in states]),
                      np.array([problem.lifted_energy(nu) for nu in states]), states)
