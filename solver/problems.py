"""Named problem presets: the papers' set-ups, each solvable by the PDE and by particles.

``get(name, **options)`` returns a :class:`Problem`; ``PRESETS`` lists the names.
Every preset fixes its data with a seed, so the PDE and the particles see the same risk.
"""

import dataclasses
import inspect

import numpy as np

from .domains import Box
from .energies.bump import BumpLimitRisk, BumpRisk
from .energies.deconvolution import SpikeDeconvolution
from .energies.lifted import LiftedReluRisk
from .energies.network import Feature, NetworkRisk, teacher_labels
from .grid import Grid
from .lift import balanced_relu_init, circle_directions, relu_features, relu_inputs
from .species import Species


@dataclasses.dataclass
class Problem:
    """A gradient-flow problem on a discretization, with a way to draw particles from its start.

    Attributes
    ----------
    name, description, source : str
    energy : Energy
    grid : Grid or Species
        A grid, or, for the lifted ReLU and deconvolution presets, the species ν± on a
        circle or torus grid or a sphere mesh.
    rho0 : array
        Initial density on ``grid`` (cell averages, unit mass; the deconvolution presets'
        ν± have ¼ each, the lifted presets' ½ each).
    t_end : float
        The horizon the preset is meant to be run to.
    sample : callable
        ``sample(rng, m)`` → m particles whose measure approaches the initial density as m
        grows: i.i.d. draws, (m, d), on a grid; for species the particles of the flow they
        lift (neurons w = (a, b), atoms (z, r)), their signs alternating with the index.
    teacher : array or None
        The teacher's neurons (m0, d), when the labels come from a teacher network
        (for the lifted ReLU presets the rows w = (a, b) with |a| = 1).
    domain : Box or Ball or None
        The compact domain particles are projected onto (projected SGD), if any.
    """

    name: str
    description: str
    source: str
    energy: object
    grid: Grid
    rho0: np.ndarray
    t_end: float
    sample: object
    teacher: np.ndarray = None
    domain: object = None


def _gaussian_start(grid, mean, std):
    """N(mean, diag(std²)) as unit-mass cell averages on ``grid`` and as a sampler."""
    mean, std = np.asarray(mean, float), np.asarray(std, float)

    def density(x):
        return np.exp(-0.5 * np.sum(((x - mean) / std) ** 2, axis=-1))

    rho0 = grid.cell_averages(density)
    return rho0 / grid.integrate(rho0), lambda rng, m: mean + std * rng.standard_normal((m, len(mean)))


def tanh_teacher(cells=64, n_data=1000, seed=0):
    """(a) Fixed-output tanh neurons σ(w·x), w ∈ R², x ~ N(0, I₂), a teacher with m0 = 3
    neurons, square loss: the two-dimensional set-up of Mei–Montanari–Nguyen (2018)."""
    rng = np.random.default_rng(seed)
    feature = Feature.fixed_output("tanh", 2)
    teacher = np.array([[2.0, 0.5], [-1.0, 1.5], [0.5, -2.0]])
    X = rng.standard_normal((n_data, 2))
    grid = Grid([(-3, 3), (-3, 3)], cells)
    rho0, sample = _gaussian_start(grid, [0.0, 0.0], [0.5, 0.5])
    return Problem(
        "tanh-teacher", "2D: fixed-output tanh neurons learning a 3-neuron teacher (square loss)",
        "Mei, Montanari, Nguyen, A mean field view of the landscape of two-layer neural networks, PNAS 2018",
        NetworkRisk(feature, X, teacher_labels(feature, teacher, X)), grid, rho0, 2.0, sample, teacher,
    )


def rbf_mixture(cells=64, n_data=400, seed=0):
    """(b) Gaussian radial units Φ = c exp(−(x − z)²/(2·0.5)), θ = (c, z), on a 1D input
    x ~ Unif[−4, 4]; the target is the mixture with weights (1, −2, 1), centres (−2, 0, 2)
    and variances (0.5, 1, 0.5): the set-up of Rotskoff and Vanden-Eijnden's public code
    (rotskoff/neuron-birth-death)."""
    rng = np.random.default_rng(seed)
    feature = Feature.gaussian(1, np.sqrt(0.5))
    X = rng.uniform(-4, 4, size=(n_data, 1))
    weights, centres, variances = np.array([1.0, -2.0, 1.0]), np.array([-2.0, 0.0, 2.0]), np.array([0.5, 1.0, 0.5])
    y = np.exp(-((X - centres) ** 2) / (2 * variances)) @ weights
    grid = Grid([(-4, 4), (-4, 4)], cells)
    rho0, sample = _gaussian_start(grid, [0.0, 0.0], [0.5, 1.0])
    return Problem(
        "rbf-mixture", "2D: Gaussian radial units (weight, centre) fitting a 3-bump mixture on a 1D input",
        "Rotskoff, Vanden-Eijnden, Trainability and accuracy of neural networks: an interacting particle "
        "system approach, 2018 (github.com/rotskoff/neuron-birth-death)",
        NetworkRisk(feature, X, y), grid, rho0, 2.0, sample,
    )


def relu_teacher(cells=24, n_data=200, seed=0):
    """(c) ReLU neurons c·(a₁x + a₀)₊ with scalar input, bias and output weight, θ ∈ R³,
    x ~ Unif[−2, 2], a teacher of m0 = 5 neurons with unit-norm (a₁, a₀) and c = ±1:
    the Chizat–Bach illustration of global convergence (2-homogeneous units), from a
    start with mass in every direction, on the box [−3, 3]³."""
    rng = np.random.default_rng(seed)
    feature = Feature.neuron("relu", 1, bias=True)
    angles = np.array([0.3, 1.4, 2.5, 3.6, 4.9])
    teacher = np.stack([np.cos(angles), np.sin(angles), np.array([1.0, -1.0, 1.0, -1.0, 1.0])], axis=1)
    X = rng.uniform(-2, 2, size=(n_data, 1))
    grid = Grid([(-3, 3)] * 3, cells)
    rho0, sample = _gaussian_start(grid, [0.0, 0.0, 0.0], [0.5, 0.5, 0.5])
    return Problem(
        "relu-teacher", "3D: ReLU neurons with bias and output weight learning a 5-neuron teacher",
        "Chizat, Bach, On the global convergence of gradient descent for over-parameterized models "
        "using optimal transport, NeurIPS 2018",
        NetworkRisk(feature, X, teacher_labels(feature, teacher, X)), grid, rho0, 40.0, sample, teacher,
    )


CHIZAT_BACH = ("Chizat, Bach, On the global convergence of gradient descent for over-parameterized models using "
               "optimal transport, NeurIPS 2018 (§2, Figure 1); Chizat, Sparse optimization on measures with "
               "over-parameterized gradient descent, Math. Program. 2022 (the conic lift)")
CIRCLE_TEACHER_ANGLES = np.array([0.3, 0.85, 1.4, 1.95, 2.5])
"""Directions φ_j of the relu-circle teacher, s_j = (cos φ_j, sin φ_j): five in an open half-circle."""


def circle_quadrature(n):
    """x_i = (cos ψ_i, sin ψ_i), ψ_i = 2π(i + ½)/n, with weights q_i = 1/n: the midpoint rule
    for E over x ~ Unif(S¹), exact for trigonometric polynomials of degree < n; on the
    products of ReLU features (kinks, continuous) its error is O(n⁻²)."""
    return circle_directions(2 * np.pi * (np.arange(n) + 0.5) / n), np.full(n, 1.0 / n)


def _lifted_relu_problem(name, description, base, inputs, teacher, quadrature, weight_decay, t_end, bias):
    """The balanced lift of ReLU units learning ``teacher`` on ``inputs`` (see
    :func:`relu_circle`): ν± on ``base`` (the circle grid or a sphere mesh), both uniform
    with mass ½ (the lift of a_j ~ Unif(S^(p−1)), b_j = ±1 with weights 1/m, half of each
    sign: ν± = Σ_(ε_j = ±1) (1/m)|a_j|² δ_(a_j/|a_j|)); particles from the same start."""
    X = inputs[:, :-1] if bias else inputs
    y = relu_features(teacher[:, :-1], relu_inputs(X, bias)) @ teacher[:, -1]
    energy = LiftedReluRisk(X, y, bias=bias, quadrature=quadrature, weight_decay=weight_decay)
    grid = Species(base, ("plus", "minus"))
    area = base.integrate(np.ones(base.shape))  # 2π on the circle; the polyhedron's area, about 4π, on a sphere mesh
    rho0 = np.full(grid.shape, 0.5 / area)
    dim = teacher.shape[1] - 1
    return Problem(name, description, CHIZAT_BACH, energy, grid, rho0, t_end,
                   lambda rng, m: balanced_relu_init(m, dim, rng), teacher)


def circle_teacher(seed=0):
    """The relu-circle teacher: rows w_j = (cos φ_j, sin φ_j, b_j) at the angles
    :data:`CIRCLE_TEACHER_ANGLES`, output weights b_j ~ Unif(½, 3/2) from ``seed``."""
    weights = np.random.default_rng(seed).uniform(0.5, 1.5, len(CIRCLE_TEACHER_ANGLES))
    return np.concatenate([circle_directions(CIRCLE_TEACHER_ANGLES), weights[:, None]], axis=1)


def relu_circle(cells=256, n_data=256, weight_decay=1e-3, seed=0):
    """(d) Balanced ReLU units b(a·x)₊, a ∈ R², no bias, x uniform on the unit circle (the
    midpoint rule of :func:`circle_quadrature` on ``n_data`` points: the population square
    loss), learning a teacher of m0 = 5 neurons (:func:`circle_teacher`), with weight
    decay λ∫|w|² dμ: the conic lift ν± on the circle (a periodic grid of ``cells`` in the
    angle), ∂tν± = ∂φ(ν± ∂φ(±G)) − 2(±G + 2λ)ν±, from ν± uniform (Chizat–Bach's start
    a ~ Unif(S¹), b = ±1).

    The teacher is the sparse global minimizer only for some teachers. Without a bias the
    features (s·x)₊ have no odd Fourier harmonics beyond the first on the circle
    (max(cos θ, 0) = 1/π + ½cos θ + even harmonics), so adding to ν+ − ν− any measure
    with only odd harmonics ≥ 3 leaves h unchanged: e.g. (s·x)₊ − (−s·x)₊ = s·x, so
    the linear part can be moved between neurons. A teacher with output weights of both
    signs, or with directions around the whole circle, then need not be the only
    representation of least mass |ν+| + |ν−|, and with λ > 0 the minimizer need not be near
    it (measured with signs alternating over the directions 0.2, 0.8, …, 2.6: the least mass
    that predicts h exactly, a linear program over 2048 directions and the teacher's, is the
    teacher's 5, but at λ = 1e-7 the minimizer, of mass 4.9995, puts only 1.4–2.6 of it on
    the teacher's directions, and at λ = 1e-3 it has mass 1.3, at a risk of 3e-3, almost all
    off them). With positive output weights and directions in an open half-circle,
    as here, another representation ν' ≥ 0 would differ by η = Σ_j ε_j(δ_(φ_j+π) − δ_(φ_j))
    with Σ_j ε_j s_j = 0 (η has no first harmonic), impossible for ε ≥ 0, ε ≠ 0 when
    the s_j lie in a half-plane: the teacher is then the unique minimizer of the mass
    among the representations of h, and the λ > 0 minimizer is close to it (measured:
    λ = 1e-3 puts all mass on the two cells beside each teacher direction).

    Parameters
    ----------
    cells : int
        Cells of the circle grid [0, 2π) (periodic).
    n_data : int
        Quadrature points on the input circle.
    weight_decay : float
        λ ≥ 0 (1e-3: the issue's prototype; 0: pure risk minimization).
    seed : int
        Seed of the teacher's output weights.
    """
    inputs, quadrature = circle_quadrature(n_data)
    base = Grid([[0.0, 2 * np.pi]], [cells], bc="periodic")
    return _lifted_relu_problem(
        "relu-circle", f"circle: balanced ReLU units (conic lift, nu+- on S^1) learning a 5-neuron teacher, "
        f"lambda = {weight_decay:g}", base, inputs, circle_teacher(seed), quadrature, weight_decay, 1000.0, False)


def sphere_quadrature(n):
    """The Fibonacci lattice on S²: x_i = (r_i cos ψ_i, r_i sin ψ_i, z_i), z_i = 1 − (2i + 1)/n,
    r_i = √(1 − z_i²), ψ_i = π(1 + √5) i, with weights q_i = 1/n: a quasi-Monte Carlo rule
    for E over x ~ Unif(S²) (equal-area bands, low discrepancy)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    r, psi = np.sqrt(1 - z**2), np.pi * (1 + np.sqrt(5)) * (i - 0.5)
    return np.stack([r * np.cos(psi), r * np.sin(psi), z], axis=1), np.full(n, 1.0 / n)


def sphere_teacher(seed=0):
    """The relu-sphere teacher: rows w_j = (s_j, b_j), s_j ∈ S² the unit vectors along
    (cos φ_j, sin φ_j, z_j) with φ_j = :data:`CIRCLE_TEACHER_ANGLES` and
    z = (0.5, −0.3, 0.2, −0.5, 0.4) (all in the open half-space y > 0), b_j ~ Unif(½, 3/2)
    from ``seed`` (the same weights as :func:`circle_teacher`)."""
    directions = np.stack([np.cos(CIRCLE_TEACHER_ANGLES), np.sin(CIRCLE_TEACHER_ANGLES),
                           np.array([0.5, -0.3, 0.2, -0.5, 0.4])], axis=1)
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return np.concatenate([directions, circle_teacher(seed)[:, -1:]], axis=1)


def relu_sphere(size=0.2, n_data=1000, weight_decay=1e-3, seed=0):
    """(e) Balanced ReLU units b(a·x)₊, a ∈ R³, no bias, x uniform on the sphere S² (the
    Fibonacci rule of :func:`sphere_quadrature` on ``n_data`` points), learning a teacher of
    m0 = 5 neurons (:func:`sphere_teacher`) with weight decay λ: the conic lift ν± on S²,
    on the Delaunay sphere mesh ``Mesh.sphere(size)`` (needs DOLFINx), from ν± uniform.

    Why x on S² without a bias and not x on the circle with one (both give ν± on S²):
    with a bias the features (s·x̃)₊, x̃ = (cos ψ, sin ψ, 1), are functions on a circle
    while s ranges over the sphere, so many measures predict nearly the same h, and the
    penalty buys much mass for little risk: measured on 3000 directions, the λ = 1e-3
    minimizer has mass 2.96 against the teacher's 4.28, at a risk of 8e-4, half of it more
    than 0.1 rad and up to 0.9 rad from the teacher's directions. The teacher is still the
    least mass that predicts h exactly (a linear program on those directions and the
    teacher's), and the minimizer nears it only as λ → 0 (λ = 1e-7: 99.8% of the mass within
    0.1 rad). Without a bias on S²
    the features' kernel is, as on the circle (:func:`relu_circle`), the odd spherical
    harmonics of degree ≥ 3, and a teacher with positive output weights in an open
    half-space is the unique representation of least mass (measured: all the mass within
    0.09 rad, the resolution of the 3000 directions, of the teacher's).

    Parameters
    ----------
    size : float
        Edge length of the sphere mesh (0.4, 0.2, 0.1: about 100, 400, 1600 vertices).
    n_data : int
        Quadrature points on the input sphere.
    weight_decay : float
        λ ≥ 0.
    seed : int
        Seed of the teacher's output weights.
    """
    from .fem import Mesh

    inputs, quadrature = sphere_quadrature(n_data)
    return _lifted_relu_problem(
        "relu-sphere", f"sphere: balanced ReLU units (conic lift, nu+- on S^2, a mesh) learning a 5-neuron "
        f"teacher, lambda = {weight_decay:g}", Mesh.sphere(size), inputs, sphere_teacher(seed), quadrature,
        weight_decay, 200.0, False)


def cluster_classification(n, k, rng, labels, uniform=0):
    """n labelled points of Chizat–Bach 2020's cluster law (read from their public code,
    lchizat/2020-implicit-bias-wide-2NN): two informative coordinates (u₁, u₂) in a k×k grid
    of clusters in [−½, ½]² (spacing Δ = 1/(3k − 1), centres Δ(1 + 3(p − 1)) − ½ for
    p = 1…k), a point uniform in the disc of radius Δ around a centre drawn uniformly, then
    ``uniform`` uninformative coordinates uniform on [−½, ½]; the label is that of its cluster.

    With a bias (x̃ = [x; 1]) and ``uniform`` = 0 these are the 2D inputs whose units live on
    S² (``benchmarks/implicit_bias.py --case plane``); ``uniform`` = 12 is the seed's d = 15.

    Parameters
    ----------
    n : int
        Points.
    k : int
        Clusters per informative axis.
    rng : numpy.random.Generator
    labels : array (k*k,)
        The clusters' labels ±1, cluster (p, q) at index p·k + q (p along u₁).
    uniform : int
        Uninformative coordinates.

    Returns
    -------
    X : array (n, 2 + uniform)
    y : array (n,)
    """
    spacing = 1.0 / (3 * k - 1)
    centres = spacing * (1 + 3 * np.arange(k)) - 0.5
    cluster = rng.integers(0, k * k, n)
    radius, angle = spacing * np.sqrt(rng.uniform(0, 1, n)), rng.uniform(0, 2 * np.pi, n)
    u = np.stack([centres[cluster // k] + radius * np.cos(angle), centres[cluster % k] + radius * np.sin(angle)], 1)
    return np.concatenate([u, rng.uniform(-0.5, 0.5, (n, uniform))], axis=1), np.asarray(labels, dtype=float)[cluster]


JMM_SOURCE = ("Javanmard, Mondelli, Montanari, Analysis of a two-layer neural network via displacement convexity, "
              "Annals of Statistics 2020 (Figure 1; Ω, f and the start reconstructed from its figure and text)")


def jmm_target(x):
    """f(x) = (e − e^(x₁))/(e + e^(−1)) on [−1, 1]: concave, a probability density,
    f(−1) = tanh 1 and f(1) = 0 (the target of Javanmard–Mondelli–Montanari's Figure 1)."""
    return (np.e - np.exp(x[..., 0])) / (np.e + np.exp(-1))


def jmm_square_target(x):
    """f(x) = 3(2 − |x|²)/16 on [−1, 1]²: concave and a probability density."""
    return 3 * (2 - np.sum(x**2, axis=-1)) / 16


def _bump_problem(name, description, target, domain, delta, cells, start=0.25):
    """Bumps of width ``delta`` (0: the porous-medium limit) fitting ``target`` on the box
    ``domain``, started uniform on the centred box whose half-widths are ``start`` times the
    domain's (initialization concentrated near the centre of Ω)."""
    grid = Grid(np.stack([domain.lower, domain.upper], axis=-1), cells)
    energy = BumpLimitRisk(target, domain) if delta == 0 else BumpRisk(target, delta, domain)
    half = start * (domain.upper - domain.lower) / 2
    centre = (domain.upper + domain.lower) / 2
    rho0 = grid.cell_averages(lambda x: np.all(np.abs(x - centre) < half, axis=-1) / np.prod(2 * half))
    return Problem(name, description, JMM_SOURCE, energy, grid, rho0, 3.0,
                   lambda rng, m: rng.uniform(centre - half, centre + half, size=(m, grid.dim)), domain=domain)


JMM_START = 0.6
"""Half-width a of the start Unif[−a, a] of ``jmm-bumps`` (see :func:`jmm_bumps`)."""


def jmm_bumps(delta=0.1, cells=320):
    """1D bump network of width δ (δ = 0: the limit porous-medium flow) fitting
    :func:`jmm_target` on Ω = [−1, 1]: the set-up of Javanmard–Mondelli–Montanari's Figure 1.

    The start is uniform on [−a, a], a = :data:`JMM_START` = 0.6. The paper's text is not
    at hand (seed 004 is its abstract), so a is chosen to match its Figure 1: there the
    normalized risk ∫(f − ρ₀)²/∫f² of the limit PDE starts near 0.6. For ρ₀ = 1/(2a) on
    [−a, a], ∫(f − ρ₀)² = ∫f² − (1/a)∫_(−a)^a f + 1/(2a) with ∫_(−1)^1 f² = 0.5908, so the
    start's normalized risk is 2.51 for a = ¼ (the earlier start, four times the figure's),
    0.854 for a = ½, 0.593 for a = 0.6 (0.6 exactly at a = 0.5966) and 0.154 for the uniform
    density on Ω (a = 1): a = 0.6 is the round half-width that starts where the figure does,
    still concentrated near the centre of Ω as the paper describes."""
    return _bump_problem("jmm-bumps", f"1D: bumps of width {delta:g} fitting a concave density on [-1, 1]",
                         jmm_target, Box([-1.0], [1.0]), delta, cells, start=JMM_START)


def jmm_square(delta=0.1, cells=64):
    """2D bump network of width δ (δ = 0: the limit) fitting :func:`jmm_square_target` on
    Ω = [−1, 1]² (the grid stand-in for their disk; the disk needs the mesh solver)."""
    return _bump_problem("jmm-square", f"2D: bumps of width {delta:g} fitting a concave density on [-1, 1]^2",
                         jmm_square_target, Box([-1.0, -1.0], [1.0, 1.0]), delta, cells)


DECONVOLUTION_SOURCE = ("Chizat, Sparse optimization on measures with over-parameterized gradient descent, "
                        "Math. Program. 2022; set-ups of lchizat/2019-sparse-optim-measures")
CHIZAT_SPIKES_2D = np.pi + np.array([[0.0, 0.0], [1.7, -0.3], [0.7, 1.3]])
CHIZAT_MASSES_2D = np.array([1.1, 0.8, 1.0]) ** 2
SPIKES_1D = np.array([[0.9], [2.0], [3.3], [4.6], [5.5]])
MASSES_1D = np.array([0.8, 0.5, 1.0, 0.3, 0.7])


def _deconvolution_problem(name, description, spikes, masses, cutoff, penalty, cells, t_end):
    """BLASSO on the torus [0, 2π]^d (:class:`~solver.energies.deconvolution.SpikeDeconvolution`)
    on ``Species(torus, ("plus", "minus"))``, ν± uniform of mass ¼ each; particles θ = (z, r)
    with z uniform, r = ±1/√2 alternating (weights 1/m: mass ¼ per species, the same start)."""
    dim = spikes.shape[1]
    grid = Species(Grid([[0.0, 2 * np.pi]] * dim, [cells] * dim, bc="periodic"), ("plus", "minus"))
    rho0 = np.full(grid.shape, 0.25 / (2 * np.pi) ** dim)

    def sample(rng, m):
        r = np.where(np.arange(m) % 2 == 0, 1.0, -1.0) / np.sqrt(2)
        return np.concatenate([rng.uniform(0, 2 * np.pi, (m, dim)), r[:, None]], axis=1)

    return Problem(name, description, DECONVOLUTION_SOURCE, SpikeDeconvolution(spikes, masses, cutoff, penalty),
                   grid, rho0, t_end, sample, teacher=np.concatenate([spikes, masses[:, None]], axis=1))


def deconvolution_2d(penalty=1.0, cells=32):
    """Chizat's 2D deconvolution: Dirichlet kernel with frequencies −2…2 on T², spikes at
    π + (0, 0), π + (1.7, −0.3), π + (0.7, 1.3) of masses 1.21, 0.64, 1.0 (his r_obs = 1.1, 0.8,
    1.0 enter as r|r|), λ ∈ {0, 1, 4} in his normalization, which is ours
    (:mod:`solver.energies.deconvolution`); t_end = 30 is his 3000 iterations of step 0.01."""
    return _deconvolution_problem("deconvolution-2d", f"T^2: three spikes, Dirichlet kernel |ω| <= 2, λ = "
                                  f"{penalty:g}", CHIZAT_SPIKES_2D, CHIZAT_MASSES_2D, 2, penalty, cells, 30.0)


def deconvolution_1d(penalty=0.3, cells=128):
    """1D deconvolution with Chizat's 1D kernel (frequencies −8…8) and λ = 0.3; his spikes are
    random, ours five fixed ones at 0.9, 2.0, 3.3, 4.6, 5.5 with masses 0.8, 0.5, 1.0, 0.3, 0.7
    (separated by at least 0.9, about 2.3π/f_c on the period 2π)."""
    return _deconvolution_problem("deconvolution-1d", f"T^1: five spikes, Dirichlet kernel |ω| <= 8, λ = "
                                  f"{penalty:g}", SPIKES_1D, MASSES_1D, 8, penalty, cells, 30.0)


PRESETS = {"tanh-teacher": tanh_teacher, "rbf-mixture": rbf_mixture, "relu-teacher": relu_teacher,
           "jmm-bumps": jmm_bumps, "jmm-square": jmm_square, "relu-circle": relu_circle,
           "relu-sphere": relu_sphere, "deconvolution-2d": deconvolution_2d, "deconvolution-1d": deconvolution_1d}


def get(name, **options):
    """The preset ``name`` (see ``PRESETS``) built with ``options``: the keyword arguments of
    its function (cells, or size for the sphere mesh of ``relu-sphere``; n_data and seed for
    the networks, weight_decay for the lifted ones, delta for the bumps, penalty for the
    deconvolutions); ``ValueError`` naming the ones it takes for any other."""
    if name not in PRESETS:
        raise ValueError(f"unknown problem {name!r}; the presets are {sorted(PRESETS)}")
    takes = inspect.signature(PRESETS[name]).parameters
    unknown = sorted(set(options) - set(takes))
    if unknown:
        raise ValueError(f"preset {name!r} does not take {', '.join(unknown)}; it takes {', '.join(takes)}")
    return PRESETS[name](**options)
