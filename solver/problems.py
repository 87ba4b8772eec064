"""Named problem presets: the papers' set-ups, each solvable by the PDE and by particles.

``get(name, **options)`` returns a :class:`Problem`; ``PRESETS`` lists the names.
Every preset fixes its data with a seed, so the PDE and the particles see the same risk.
"""

import dataclasses

import numpy as np

from .domains import Box
from .energies.bump import BumpLimitRisk, BumpRisk
from .energies.deconvolution import SpikeDeconvolution
from .energies.network import Feature, NetworkRisk, teacher_labels
from .grid import Grid
from .species import Species


@dataclasses.dataclass
class Problem:
    """A gradient-flow problem on a grid, with a way to draw particles from its start.

    Attributes
    ----------
    name, description, source : str
    energy : Energy
    grid : Grid
    rho0 : array
        Initial density on ``grid`` (cell averages, unit mass).
    t_end : float
        The horizon the preset is meant to be run to.
    sample : callable
        ``sample(rng, m)`` → (m, d) particles drawn i.i.d. from the initial density.
    teacher : array or None
        The teacher's neurons (m0, d), when the labels come from a teacher network.
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
    and variances (0.5, 1, 0.5): the set-up of Rotskoff–Vanden-Eijnden (REFERENCES)."""
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


JMM_SOURCE = ("Javanmard, Mondelli, Montanari, Analysis of a two-layer neural network via displacement convexity, "
              "Annals of Statistics 2020 (Figure 1; constants reconstructed in REFERENCES)")


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
    (separated by at least 0.9, about 2.3/f_c)."""
    return _deconvolution_problem("deconvolution-1d", f"T^1: five spikes, Dirichlet kernel |ω| <= 8, λ = "
                                  f"{penalty:g}", SPIKES_1D, MASSES_1D, 8, penalty, cells, 30.0)


PRESETS = {"tanh-teacher": tanh_teacher, "rbf-mixture": rbf_mixture, "relu-teacher": relu_teacher,
           "jmm-bumps": jmm_bumps, "jmm-square": jmm_square, "deconvolution-2d": deconvolution_2d,
           "deconvolution-1d": deconvolution_1d}


def get(name, **options):
    """The preset ``name`` (see ``PRESETS``) built with ``options`` (cells, and n_data and
    seed for the networks, delta for the bumps, penalty for the deconvolutions)."""
    if name not in PRESETS:
        raise ValueError(f"unknown problem {name!r}; the presets are {sorted(PRESETS)}")
    return PRESETS[name](**options)
