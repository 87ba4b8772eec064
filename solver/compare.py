r"""PDE against particles: Wasserstein distances between a grid density and a particle
measure (computed with POT), and the rate of convergence in m.

A density ρ on a grid is the measure μ_h = Σ_c ρ_c |cell| δ_(x_c) over the cell centres
x_c, or, with ``refine=k``, each cell split into k^d sub-points of equal mass; particles
θ_i with weights w_i are ν_m = Σ_i w_i δ_(θ_i). Both are normalized to probability
measures, since their masses may differ by round-off. Distances are Euclidean in R^d, in
the units of θ: periodic axes are not wrapped (the particle simulator does not wrap them
either).

For a lifted energy (two species ν± on the circle or the sphere,
:class:`~solver.energies.lifted.LiftedReluRisk`), :func:`lifted_gaps` compares the PDE with
ReLU particles through their predictions, risks, lifted masses and, on the circle, the W1
distance between the normalized measures (:func:`circle_wasserstein`).
"""

from numbers import Integral

import numpy as np
import ot

from .energies.base import particle_weights
from .energies.deconvolution import SpikeDeconvolution
from .energies.lifted import LiftedReluRisk

EMD_MAX_ITERATIONS = 10**9
"""Network-simplex iterations allowed to ``ot.emd2``. The count needed grows about like
10 (N + m) (60000 for 2000 × 5000 points), so POT's default of 100000 already stops short
at 4000 × 10000, with only a warning and a wrong value (too high or too low)."""


def grid_measure(grid, rho, refine=1):
    """The grid density ``rho`` as a discrete probability measure.

    Every cell with positive mass ρ_c |cell| becomes a point at its centre, or with
    ``refine=k`` the k^d centres of its k × … × k subdivision, each with 1/k^d of the
    cell's mass. This lowers the quantization floor: a uniform cell against its centre is
    at W2² = Σ_axes h²/12, against its k^d sub-points at Σ_axes h²/(12k²).

    Parameters
    ----------
    grid : Grid
        The grid ``rho`` lives on.
    rho : array of ``grid.shape``
        Cell values of a density (not cell masses).
    refine : int
        Sub-points per cell and axis, ≥ 1.

    Returns
    -------
    points : array (N, d)
        Cell centres (or sub-cell centres) of the cells with positive mass.
    weights : array (N,)
        Their masses, normalized to sum to 1.
    """
    rho = grid.check_density(rho, "rho")
    _check_count(refine, "refine")
    mass = rho.ravel() * grid.cell_volume
    keep = mass > 0
    points, weights = grid.points.reshape(-1, grid.dim)[keep], mass[keep] / mass[keep].sum()
    if refine == 1:
        return points, weights
    offsets = (np.arange(refine) + 0.5) / refine - 0.5
    sub = np.stack(np.meshgrid(*[offsets * h for h in grid.h], indexing="ij"), axis=-1).reshape(-1, grid.dim)
    points = (points[:, None, :] + sub[None, :, :]).reshape(-1, grid.dim)
    return points, np.repeat(weights / len(sub), len(sub))


def coarsen(grid, rho, factor):
    """The grid density ``rho`` as a probability measure on blocks of factor^d cells.

    Each block B (partial at the high end of an axis whose cell count ``factor`` does not
    divide) becomes one point at its centre of mass Σ_(c∈B) m_c x_c / Σ_(c∈B) m_c, with
    mass Σ_(c∈B) m_c; blocks without mass are dropped. Mass and centre of mass are kept
    exactly; W_p to the full measure is at most about the block diagonal factor·|h|. Use
    it when the full grid is too large for exact transport.

    Parameters
    ----------
    grid : Grid
        The grid ``rho`` lives on.
    rho : array of ``grid.shape``
        Cell values of a density (not cell masses).
    factor : int
        Cells per block and axis, ≥ 1 (1 gives the cells themselves).

    Returns
    -------
    points : array (N, d)
        Centres of mass of the blocks with positive mass.
    weights : array (N,)
        Their masses, normalized to sum to 1.
    """
    rho = grid.check_density(rho, "rho")
    _check_count(factor, "factor")
    mass = rho * grid.cell_volume
    blocks = tuple(-(-n // factor) for n in grid.shape)
    block_of_cell = np.ravel_multi_index(
        np.meshgrid(*[np.arange(n) // factor for n in grid.shape], indexing="ij"), blocks
    ).ravel()
    total = np.bincount(block_of_cell, mass.ravel(), minlength=np.prod(blocks))
    moments = np.stack([np.bincount(block_of_cell, (mass * grid.points[..., k]).ravel(), minlength=len(total))
                        for k in range(grid.dim)], axis=-1)
    keep = total > 0
    return moments[keep] / total[keep, None], total[keep] / total[keep].sum()


def wasserstein(grid, rho, theta, weights=None, p=2, method="exact", max_points=4000, n_projections=200,
                refine=1, seed=0):
    r"""W_p between the grid density ``rho`` and the particles ``theta``, in the units of θ.

    W_p(μ, ν)^p = min over couplings γ of μ and ν of ∫ |x − y|^p dγ(x, y), for the
    normalized measures μ (of ``rho``, see :func:`grid_measure`) and ν (of the particles).

    - 1D grids: exact whatever ``method``, W_p^p = ∫_0^1 |F_μ^(-1)(q) − F_ν^(-1)(q)|^p dq
      by ``ot.wasserstein_1d`` (which returns W_p^p; the p-th root is taken here).
    - ``method="exact"`` (2D/3D): the network simplex ``ot.emd2`` on the N × m cost
      matrix |x_i − θ_j|^p (8Nm bytes; 10–25 s here for N = 4000, m = 10000). If the
      measure of ``rho`` has more than ``max_points`` points, the refinement is lowered
      until it fits; if the cells with mass alone are more, blocks of factor^d cells are
      merged (:func:`coarsen`) with the smallest factor that fits, which adds an error of
      up to about the block size factor·|h|.
    - ``method="sliced"``: SW_p = (mean over directions u of W_p^p(u·μ, u·ν))^(1/p) over
      ``n_projections`` random unit directions (from ``numpy.random.default_rng(seed)``),
      each exact by ``ot.wasserstein_1d``. SW_p ≤ W_p, and a translation by v has
      SW_2 ≈ |v|/√d (E(u·v)² = |v|²/d), not |v|: compare sliced values with sliced ones.
      Cost O(n_projections (N + m) log(N + m)): the option for large grids and m.

    Parameters
    ----------
    grid : Grid
        The grid ``rho`` lives on.
    rho : array of ``grid.shape``
        Cell values of a density (not cell masses).
    theta : array (m, d)
        Particle positions, d = ``grid.dim``.
    weights : array (m,), optional
        Non-negative particle weights (normalized here); 1/m each by default.
    p : {1, 2}
        Order of the distance.
    method : {"exact", "sliced"}
        How to compute it in 2D/3D (see above).
    max_points : int
        Most points the measure of ``rho`` may have for ``method="exact"``.
    n_projections : int
        Directions for ``method="sliced"``.
    refine : int
        Sub-points per cell and axis (see :func:`grid_measure`).
    seed : int or numpy.random.Generator
        Source of the sliced directions.

    Returns
    -------
    float
        W_p (or SW_p).

    Raises
    ------
    ValueError
        For a ``rho`` that is not a density on ``grid``, ``theta`` not a finite (m, d)
        array, bad ``weights``, ``p``, ``method`` or counts.
    RuntimeError
        If ``ot.emd2`` stops before optimality (its value would not be W_p).
    """
    if p not in (1, 2):
        raise ValueError(f"p must be 1 or 2, got {p!r}")
    if method not in ("exact", "sliced"):
        raise ValueError(f"method must be 'exact' or 'sliced', got {method!r}")
    for count, name in ((max_points, "max_points"), (n_projections, "n_projections"), (refine, "refine")):
        _check_count(count, name)
    rho = grid.check_density(rho, "rho")
    theta, weights = _particle_measure(theta, weights, grid.dim)
    if grid.dim == 1:
        points, masses = grid_measure(grid, rho, refine)
        return float(ot.wasserstein_1d(points[:, 0], theta[:, 0], masses, weights, p=p) ** (1 / p))
    if method == "sliced":
        points, masses = grid_measure(grid, rho, refine)
        directions = np.random.default_rng(seed).standard_normal((n_projections, grid.dim))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        powers = [ot.wasserstein_1d(points @ u, theta @ u, masses, weights, p=p) for u in directions]
        return float(np.mean(powers) ** (1 / p))
    points, masses = _exact_support(grid, rho, refine, max_points)
    cost = ot.dist(points, theta, metric="sqeuclidean" if p == 2 else "euclidean")
    value, log = ot.emd2(masses, weights, cost, numItermax=EMD_MAX_ITERATIONS, log=True)
    if log["warning"] is not None:
        raise RuntimeError(
            f"ot.emd2 stopped before optimality ({log['warning']}) on {len(points)} × {len(theta)} points, "
            "so its value is not W_p: lower max_points, or use method='sliced'"
        )
    return float(value ** (1 / p))


def fit_slope(ms, distances):
    """Slope of log(distance) against log(m) by least squares (``np.polyfit``): the observed
    rate of convergence in m (−1/2 is the Monte Carlo rate; W_p between i.i.d. samples
    and their law in d ≥ 3 dimensions is slower, m^(−1/d)).

    Parameters
    ----------
    ms : sequence of int
        Particle counts, at least two different ones.
    distances : sequence of float
        Positive distances, one per m.

    Returns
    -------
    float
        The fitted slope.
    """
    ms, distances = np.asarray(ms, dtype=float), np.asarray(distances, dtype=float)
    if ms.ndim != 1 or ms.shape != distances.shape or len(np.unique(ms)) < 2:
        raise ValueError(
            f"ms and distances must be two sequences of the same length with at least two different m, "
            f"got {ms.tolist()} and {distances.tolist()}"
        )
    if not (np.all(np.isfinite(ms)) and np.all(np.isfinite(distances)) and ms.min() > 0 and distances.min() > 0):
        raise ValueError(
            f"ms and distances must be finite and positive (their logarithms are fitted), "
            f"got {ms.tolist()} and {distances.tolist()}"
        )
    return float(np.polyfit(np.log(ms), np.log(distances), 1)[0])


def _check_count(value, name):
    """Raise ``ValueError`` naming ``name`` unless ``value`` is an integer ≥ 1."""
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def _particle_measure(theta, weights, dim):
    """``theta`` as a float (m, dim) array and its weights normalized to sum 1, checked."""
    theta = np.asarray(theta, dtype=float)
    if theta.ndim != 2 or theta.shape[1] != dim or len(theta) == 0:
        raise ValueError(
            f"theta must be an (m, {dim}) array, one row per particle with grid.dim = {dim} coordinates "
            f"and m >= 1, got shape {theta.shape}" + (" (use theta[:, None] for a 1D grid)" if dim == 1 else "")
        )
    if not np.all(np.isfinite(theta)):
        bad = int(np.count_nonzero(~np.all(np.isfinite(theta), axis=1)))
        raise ValueError(f"theta must be finite, but {bad} of its {len(theta)} particles hold NaN or infinite values")
    if weights is None:
        return theta, np.full(len(theta), 1 / len(theta))
    weights = particle_weights(weights, theta, "wasserstein", masses=True)
    if weights.sum() <= 0:
        raise ValueError("weights sum to zero: give at least one positive weight (or weights=None for 1/m each)")
    return theta, weights / weights.sum()


def _exact_support(grid, rho, refine, max_points):
    """The measure of ``rho`` with at most ``max_points`` points: ``refine`` lowered until it
    fits, else the cells merged by the smallest coarsening factor that fits."""
    cells = np.count_nonzero(rho)
    if cells <= max_points:
        while cells * refine**grid.dim > max_points:
            refine -= 1
        return grid_measure(grid, rho, refine)
    factor = 2
    points, masses = coarsen(grid, rho, factor)
    while len(points) > max_points:
        factor += 1
        points, masses = coarsen(grid, rho, factor)
    return points, masses


def energy_of_particles(energy, theta, weights):
    """F(μ_m) of the particle measure μ_m = Σ_i w_i δ_θi: ``energy.particle_energy``, for any
    energy whose terms have one (a network's risk plus weight decay, Σ w V(θ), ½ΣΣ w w W,
    a bump network's risk), NaN for an energy with a term that has none (an entropy: a
    particle measure has no density)."""
    try:
        return float(energy.particle_energy(theta, weights))
    except NotImplementedError:
        return np.nan


def species_study(energy):
    """The study of its own that :func:`study` hands an energy on species to, or None:
    :func:`lifted_study` for the ν± of ReLU neurons (particles are neurons w = (a, b)),
    :func:`deconvolution_study` for the ν± on the torus (particles are atoms θ = (z, r))."""
    studies = {LiftedReluRisk: lifted_study, SpikeDeconvolution: deconvolution_study}
    return next((own for kind, own in studies.items() if isinstance(energy, kind)), None)


def particles_refusal(problem):
    """Why :func:`study` cannot compare ``problem`` with particles, or None if it can: densities
    in species whose energy has no study of its own (the study of one density measures
    positions; the species of :class:`~solver.energies.lifted.LiftedReluRisk` go to
    :func:`lifted_study`, those of :class:`~solver.energies.deconvolution.SpikeDeconvolution`
    to :func:`deconvolution_study`)."""
    if getattr(problem.grid, "names", None) is None or species_study(problem.energy) is not None:
        return None
    return (f"[particles] is not available for {problem.name}: its densities are the species "
            f"{tuple(problem.grid.names)} of a {type(problem.energy).__name__}, and the comparison with particles "
            "measures one density, the neurons w = (a, b) of a lifted ReLU problem or the atoms (z, r) of sparse "
            "deconvolution")


def _pde_at(problem, times, pde, solve_options, caller):
    """The problem's PDE saved at the study's ``times``: solved (with ``solve_options``), or
    ``pde`` after checking that it was saved at exactly those times (its k-th save is
    compared with the particles at times[k])."""
    from .timeloop import solve

    if pde is None:
        return solve(problem.energy, problem.grid, problem.rho0, (times[0], times[-1]), save_at=times,
                     **solve_options)
    if solve_options:
        raise ValueError(f"{caller}: solve options {sorted(solve_options)} with a given pde: they would not be used")
    if np.shape(pde.rho)[1:] != problem.grid.shape:
        raise ValueError(f"{caller}: pde holds densities of shape {np.shape(pde.rho)[1:]}, not of the problem's "
                         f"discretization {problem.grid!r} ({problem.grid.shape})")
    if not np.array_equal(pde.t, times):
        raise ValueError(f"{caller}: pde was saved at t = {pde.t.tolist()}, not at the study's times "
                         f"{times.tolist()}: solve it with save_at=times")
    return pde


def study(problem, ms, times, seeds, step, out=None, method="sliced", pde=None, **solve_options):
    """The PDE against gradient descent on m particles, over ``ms`` (in increasing order),
    ``times`` and ``seeds``.

    Solves the PDE once (``solve_options`` go to :func:`solver.solve`; or give its
    :class:`~solver.timeloop.Solution` saved at ``times`` as ``pde``), runs GD with step
    ``step`` from i.i.d. samples of the initial density for every (m, seed) (projected onto
    the problem's ``domain`` when it has one, as the bump presets do), and measures
    at each time W2 and W1 (``method``: "sliced" or "exact"; W1 exact only if asked) and
    the energy gap |F(μ_m(t)) − F(ρ(t))| (:func:`energy_of_particles`; NaN for an
    energy without one). Returns a dict with ``rows`` (one per m, seed,
    time), ``pde_energy`` and ``slopes`` (fitted slope of the seed-averaged W2 against m
    at each time). With ``out``, writes ``study.csv``, ``study.md`` and three figures.
    A lifted ReLU problem (densities ν± in species, :class:`~solver.energies.lifted.LiftedReluRisk`)
    goes to :func:`lifted_study`, sparse deconvolution to :func:`deconvolution_study`; other
    species problems are refused (:func:`particles_refusal`).
    """
    from .particles import simulate

    ms = list(ms)
    if not ms or not all(isinstance(m, (int, np.integer)) and not isinstance(m, bool) and m > 0 for m in ms):
        raise ValueError(f"study: ms must be positive whole particle counts, got {ms!r}")
    ms = sorted(ms)
    if len(seeds) == 0:
        raise ValueError("study: seeds is empty: give at least one seed")
    own_study = species_study(problem.energy)
    if own_study is not None:
        return own_study(problem, ms, times, seeds, step, out=out, pde=pde, **solve_options)
    refusal = particles_refusal(problem)
    if refusal is not None:
        raise ValueError(f"study: {refusal}")
    times = np.asarray(times, dtype=float)
    grid = problem.grid
    pde = _pde_at(problem, times, pde, solve_options, "study")
    pde_energy = np.array([problem.energy.value(rho, grid) for rho in pde.rho])
    rows, last_runs = [], {}
    for m in ms:
        for seed in seeds:
            run = simulate(problem.energy, problem.sample(np.random.default_rng(seed), m), (times[0], times[-1]),
                           step=step, save_at=times, domain=problem.domain)
            last_runs[m] = run
            for k, (t, theta) in enumerate(zip(times, run.theta)):
                particle_energy = energy_of_particles(problem.energy, theta, run.weights)
                rows.append({"m": m, "seed": seed, "t": t,
                             "w2": wasserstein(grid, pde.rho[k], theta, method=method, refine=2),
                             "w1": wasserstein(grid, pde.rho[k], theta, p=1, method=method, refine=2),
                             "energy_gap": abs(particle_energy - pde_energy[k]),
                             "particle_energy": particle_energy, "pde_energy": pde_energy[k]})
    mean_w2 = {(m, t): np.mean([r["w2"] for r in rows if r["m"] == m and r["t"] == t]) for m in ms for t in times}
    slopes = {float(t): fit_slope(ms, [mean_w2[m, t] for m in ms]) for t in times} if len(ms) > 1 else {}
    result = {"rows": rows, "pde_energy": pde_energy, "slopes": slopes, "times": times, "ms": ms}
    if out is not None:
        _write_study(problem, pde, result, mean_w2, last_runs, out)
    return result


# lifted problems: ν± on the circle or the sphere against lifted particles --------------------
def circle_wasserstein(angles_u, masses_u, angles_v, masses_v):
    """W1 on the circle of circumference 2π between two measures given by atoms at angles.

    Both are normalized to probability measures first. On the circle of length 1 (angles as
    t = φ/2π mod 1) W1 = min over c of ∫_0^1 |F_u(t) − F_v(t) − c| dt, attained at a weighted
    median of D = F_u − F_v (the level median; Delon–Salomon–Sobolevski 2010, Hundrieser–Klatt–
    Munk 2022). D is constant between consecutive atoms of the two measures, so the integral is
    a weighted sum over those arcs (the last one wraps round to the first atom, where D = 0 as
    both are normalized); the result is scaled by 2π, in radians. This is the formula of POT's
    ``wasserstein1_circle``, written out since POT's exported ``ot.wasserstein_circle`` runs a
    binary search for every p (0.9.7), which meets 0/0 at atoms with equal angles; the tests
    check the two against each other. NaN when either measure has no mass (a normalized
    distance is then undefined).
    """
    measures = [(np.asarray(angles, dtype=float), np.asarray(masses, dtype=float))
                for angles, masses in ((angles_u, masses_u), (angles_v, masses_v))]
    for name, (angles, masses) in zip("uv", measures):
        if angles.ndim != 1 or masses.shape != angles.shape:
            raise ValueError(f"circle_wasserstein: the angles and masses of {name} must be 1D arrays of one length, "
                             f"got shapes {angles.shape} and {masses.shape}")
        if not (np.all(np.isfinite(angles)) and np.all(np.isfinite(masses)) and np.all(masses >= 0)):
            raise ValueError(f"circle_wasserstein: the angles and masses of {name} must be finite and the masses >= 0")
    (angles_u, masses_u), (angles_v, masses_v) = measures
    if masses_u.sum() <= 0 or masses_v.sum() <= 0:
        return np.nan
    turns = np.mod(np.concatenate([angles_u, angles_v]) / (2 * np.pi), 1.0)
    signed = np.concatenate([masses_u / masses_u.sum(), -masses_v / masses_v.sum()])
    order = np.argsort(turns, kind="stable")
    turns, difference = turns[order], np.cumsum(signed[order])
    arcs = np.diff(np.append(turns, 1.0 + turns[0]))
    by_level = np.argsort(difference, kind="stable")
    median = difference[by_level][np.searchsorted(np.cumsum(arcs[by_level]), 0.5)]
    return 2 * np.pi * float(arcs @ np.abs(difference - median))


def lifted_gaps(energy, grid, rho, theta, weights=None, balance_tol=0.05):
    r"""The PDE density ν± of a lifted energy against m ReLU particles w_j = (a_j, b_j).

    For :class:`~solver.energies.lifted.LiftedReluRisk` on ``Species(base, ("plus", "minus"))``:

    - ``prediction_gap`` = Σ_i q_i (h_PDE(x_i) − h_m(x_i))², the squared L² distance of the two
      predictions under the energy's quadrature q (the population law when q is one), h_PDE
      from the densities (``energy.prediction``), h_m the network's own prediction
      Σ_j ω_j b_j (a_j·x̃)₊ (``energy.predict``);
    - ``risk_gap`` = |R(h_m) − R(h_PDE)| and ``energy_gap`` = |F(μ_m) − F(ν_PDE)| (with weight decay);
    - per species σ ∈ {plus, minus}: ``mass_pde_σ`` = Σ_k w_k ρσ_k, ``mass_particles_σ`` the
      lifted mass Σ_(sign b_j = σ) ω_j|a_j|² (:func:`solver.lift.lift`), and on the circle
      ``w1_σ``, the W1 distance in radians between the two measures **normalized** to
      probabilities (:func:`circle_wasserstein`): the masses are not conserved by the flow and
      differ between the two, so shape and mass are reported apart (the mass difference is
      ``mass_particles_σ − mass_pde_σ``); NaN on a sphere (no distance computed there) or when
      one side has no mass.

    ``balance_tol`` is the relative imbalance ||a_j|² − b_j²|/(|a_j|² + b_j²) allowed by the lift:
    explicit Euler steps of size ε (``solver.particles.simulate``) keep |a|² − b² only up to
    ε²(|∂_t a|² − (∂_t b)²) per step, an imbalance of order ε·t like their time error (measured:
    1e-3 at ε = 0.02, t = 2 on a 3-neuron teacher), so the default is looser than the lift's
    1e-8; a start as far off as |b| = 0.9|a| (0.1) is refused. The lifted masses ω|a|² then
    differ from the prediction's ω|a||b| by that imbalance; the prediction gap uses the network
    itself.

    Parameters
    ----------
    energy : LiftedReluRisk
    grid : Species
    rho : array ``grid.shape``
        ρ± at one time.
    theta : array (m, p + 1)
        The particles at the same time.
    weights : array (m,), optional
        ω_j; 1/m by default.
    balance_tol : float

    Returns
    -------
    dict
    """
    from .lift import lift

    theta = np.atleast_2d(np.asarray(theta, dtype=float))
    weights = np.full(len(theta), 1 / len(theta)) if weights is None else np.asarray(weights, dtype=float)
    problem = energy.problem
    h_pde, h_m = energy.prediction(rho, grid), energy.predict(theta, weights)
    risk_pde, risk_m = problem.risk(h_pde), problem.risk(h_m)
    row = {"prediction_gap": float(problem.quadrature @ (h_pde - h_m) ** 2), "risk_gap": abs(risk_m - risk_pde),
           "risk_pde": risk_pde, "risk_particles": risk_m,
           "energy_gap": abs(energy.particle_energy(theta, weights) - energy.value(rho, grid))}
    measure = lift(theta, weights, tol=balance_tol)
    cells = energy.masses(rho, grid)
    circle = grid.base.dim == 1
    angles = np.asarray(grid.base.points, dtype=float).reshape(-1) if circle else None
    for name, sign, masses in (("plus", 1, cells[0]), ("minus", -1, cells[1])):
        directions, lifted = measure.species(sign)
        row[f"mass_pde_{name}"], row[f"mass_particles_{name}"] = float(masses.sum()), float(lifted.sum())
        row[f"w1_{name}"] = (circle_wasserstein(angles, masses, np.arctan2(directions[:, 1], directions[:, 0]),
                                                lifted) if circle else np.nan)
    return row


def lifted_rows(energy, grid, densities, trajectory, times=None, balance_tol=0.05):
    """:func:`lifted_gaps` at every save time: ``densities[k]`` (the PDE's ``Solution.rho``)
    against ``trajectory.theta[k]`` (a :class:`solver.particles.Trajectory` saved at the same
    times), one dict per time with its ``t``."""
    times = trajectory.t if times is None else np.asarray(times, dtype=float)
    if not (len(densities) == len(trajectory.theta) == len(times)):
        raise ValueError(f"lifted_rows: {len(densities)} densities, {len(trajectory.theta)} particle states and "
                         f"{len(times)} times: give both saved at the same times")
    return [{"t": float(t), **lifted_gaps(energy, grid, rho, theta, trajectory.weights, balance_tol)}
            for t, rho, theta in zip(times, densities, trajectory.theta)]

def _write_rows(out, rows):
    """Make the folder ``out`` and write ``rows`` (dicts with the same keys) to its study.csv;
    returns ``out`` as a Path."""
    import csv
    from pathlib import Path

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "study.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return out


def _write_study(problem, pde, result, mean_w2, last_runs, out):
    """study.csv, study.md, distance_vs_m.png, energy_vs_t.png, density_particles.png."""
    import matplotlib.pyplot as plt

    out = _write_rows(out, result["rows"])
    rows, times, ms = result["rows"], result["times"], result["ms"]
    lines = [f"# {problem.name}: PDE against {len(rows) // len(times) // len(ms)} seed(s) of GD per m", "",
             "Mean W2 over seeds (sliced unless stated):", "",
             "| m | " + " | ".join(f"t = {t:g}" for t in times) + " |", "|---" * (len(times) + 1) + "|"]
    lines += [f"| {m} | " + " | ".join(f"{mean_w2[m, t]:.3e}" for t in times) + " |" for m in ms]
    if result["slopes"]:
        lines += ["", "Fitted slope of log W2 against log m: "
                  + ", ".join(f"t = {t:g}: {s:.2f}" for t, s in result["slopes"].items())]
    (out / "study.md").write_text("\n".join(lines) + "\n")

    fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    ax.loglog(ms, [mean_w2[m, times[-1]] for m in ms], "o-", label=f"W2 at t = {times[-1]:g}")
    ax.loglog(ms, mean_w2[ms[0], times[-1]] * (np.asarray(ms) / ms[0]) ** -0.5, "k--", label="m^(-1/2)")
    ax.set(xlabel="particles m", ylabel="W2(PDE, particles)", title=problem.name)
    ax.legend()
    fig.savefig(out / "distance_vs_m.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    ax.plot(times, result["pde_energy"], "k-", lw=2, label="PDE")
    for m in ms:
        ax.plot(times, [np.mean([r["particle_energy"] for r in rows if r["m"] == m and r["t"] == t]) for t in times],
                "o--", label=f"GD, m = {m}")
    positive = min(result["pde_energy"]) > 0 and all(r["particle_energy"] > 0 for r in rows)
    ax.set(xlabel="t", ylabel="F (risk)", yscale="log" if positive else "linear", title=problem.name)
    ax.legend()
    fig.savefig(out / "energy_vs_t.png", dpi=110)
    plt.close(fig)

    grid, rho = problem.grid, pde.rho[-1]
    theta = last_runs[ms[-1]].theta[-1]
    fig, ax = plt.subplots(figsize=(4.6, 4), constrained_layout=True)
    if grid.dim == 1:
        ax.plot(grid.axes[0], rho, "k-", label="PDE")
        ax.hist(theta[:, 0], bins=grid.shape[0], range=tuple(grid.bounds[0]), density=True, alpha=0.5,
                label="particles")
        ax.legend()
    else:  # the first two coordinates (3D densities summed over the third)
        shown = rho if grid.dim == 2 else rho.sum(axis=2)
        ax.imshow(shown.T, origin="lower", extent=grid.bounds[:2].ravel(), cmap="Greys", aspect="auto")
        ax.plot(theta[:, 0], theta[:, 1], ".", ms=1.5, color="tab:red", alpha=0.5)
    ax.set(xlabel="θ₁", ylabel="θ₂", title=f"t = {times[-1]:g}: PDE density, {ms[-1]} particles")
    fig.savefig(out / "density_particles.png", dpi=110)
    plt.close(fig)


# the study of a lifted problem: ν± against balanced neurons ----------------------------------
STUDY_BALANCE_TOL = 1.0
"""The relative imbalance ||a|² − b²|/(|a|² + b²) per neuron that :func:`lifted_study` lets
:func:`solver.lift.lift` accept: any (it is at most 1). Euler steps of size ε add about
ε²(|∂_t a|² − (∂_t b)²) per step to |a|² − b², an absolute error of order ε·t; a neuron that
weight decay and the risk shrink (most of ν− here) has |a|² + b² falling exponentially, so
its relative imbalance grows without bound for every ε (measured: 5% on 2 of 20 neurons of
|a| ≈ 0.17 at t = 200, ε = 0.1 on the circle; 73% at |a| ≈ 0.014 on the sphere), while its
lifted mass ω|a|², all the comparison takes from it, is then negligible. What matters is
reported instead: the ``imbalance`` column, Σ_j ω_j||a_j|² − b_j²| / Σ_j ω_j(|a_j|² + b_j²),
the share of the neurons' squared norm that is out of balance (the predictions h_m are the
network's own and need no balance)."""


def lifted_study(problem, ms, times, seeds, step, out=None, pde=None, **solve_options):
    """:func:`study` for a lifted preset (``relu-circle``, ``relu-sphere``): the PDE's ν± on
    ``Species(base, ("plus", "minus"))`` against plain gradient descent on m balanced neurons.

    At every save time and for every (m, seed), :func:`lifted_rows` (prediction gap
    Σq(h_PDE − h_m)², risk and energy gaps, masses and circle W1 per species) and the
    relative excess energy e = (F − F*)/(F(ν_0) − F*) of both, with F* the convex minimum on
    the PDE's cells (``energy.convex_reference``) and ν_0 the PDE's start. ``slopes`` fits
    the seed-averaged prediction gap against m at each time (a squared L² distance between
    an m-sample average and its mean: slope −1 when the particles follow the PDE).

    Returns
    -------
    dict
        ``rows``, ``pde_energy``, ``pde_excess``, ``f_star``, ``slopes``, ``times``, ``ms``.
    """
    from .particles import simulate

    times, ms = np.asarray(times, dtype=float), sorted(ms)  # the figures take ms[0], ms[-1] as the least and most
    energy, grid = problem.energy, problem.grid
    pde = _pde_at(problem, times, pde, solve_options, "lifted_study")
    pde_energy = np.array([energy.value(rho, grid) for rho in pde.rho])
    f_star = energy.convex_reference(grid).value
    scale = energy.value(problem.rho0, grid) - f_star
    rows, last_runs = [], {}
    for m in ms:
        for seed in seeds:
            run = simulate(energy, problem.sample(np.random.default_rng(seed), m), (times[0], times[-1]), step=step,
                           save_at=times, progress=False)
            last_runs[m] = run
            for row in lifted_rows(energy, grid, pde.rho, run, times, balance_tol=STUDY_BALANCE_TOL):
                k = int(np.flatnonzero(times == row["t"])[0])
                particle_energy = energy.particle_energy(run.theta[k], run.weights)
                a2, b2 = np.sum(run.theta[k][:, :-1] ** 2, axis=1), run.theta[k][:, -1] ** 2
                rows.append({"m": m, "seed": seed, **row, "particle_excess": (particle_energy - f_star) / scale,
                             "pde_excess": (pde_energy[k] - f_star) / scale,
                             "imbalance": float(run.weights @ np.abs(a2 - b2) / (run.weights @ (a2 + b2)))})
    mean_gap = {(m, t): float(np.mean([r["prediction_gap"] for r in rows if r["m"] == m and r["t"] == t]))
                for m in ms for t in times}
    slopes = {float(t): fit_slope(ms, [mean_gap[m, t] for m in ms]) for t in times
              if len(ms) > 1 and all(mean_gap[m, t] > 0 for m in ms)}
    result = {"rows": rows, "pde_energy": pde_energy, "pde_excess": (pde_energy - f_star) / scale, "f_star": f_star,
              "slopes": slopes, "times": times, "ms": list(ms)}
    if out is not None:
        _write_lifted_study(problem, pde, result, mean_gap, last_runs, out)
    return result


def _write_lifted_study(problem, pde, result, mean_gap, last_runs, out):
    """study.csv, study.md, distance_vs_m.png (prediction gap), energy_vs_t.png (relative
    excess), density_particles.png (ν± with the particles of the smallest m)."""
    import matplotlib.pyplot as plt

    from .figures import circle_density, sphere_density

    out = _write_rows(out, result["rows"])
    rows, times, ms = result["rows"], result["times"], result["ms"]

    def mean(key, m, t):
        return float(np.mean([r[key] for r in rows if r["m"] == m and r["t"] == t]))

    seeds = len(rows) // len(times) // len(ms)
    lines = [f"# {problem.name}: PDE against {seeds} seed(s) of gradient descent per m", "",
             f"F* (convex minimum on the PDE's cells) = {result['f_star']:.10g}; relative excess "
             "e = (F − F*)/(F(ν0) − F*).", "",
             "| | " + " | ".join(f"t = {t:g}" for t in times) + " |", "|---" * (len(times) + 1) + "|",
             "| PDE e | " + " | ".join(f"{e:.3e}" for e in result["pde_excess"]) + " |"]
    lines += [f"| GD e, m = {m} | " + " | ".join(f"{mean('particle_excess', m, t):.3e}" for t in times) + " |"
              for m in ms]
    lines += [f"| gap Σq(h_PDE − h_m)², m = {m} | " + " | ".join(f"{mean_gap[m, t]:.3e}" for t in times) + " |"
              for m in ms]
    if result["slopes"]:
        lines += ["", "Fitted slope of the log prediction gap against log m: "
                  + ", ".join(f"t = {t:g}: {s:.2f}" for t, s in result["slopes"].items())]
    lines += ["", f"Largest imbalance Σω||a|² − b²| / Σω(|a|² + b²) of the Euler steps over every run and time: "
              f"{max(r['imbalance'] for r in rows):.2e}"]
    (out / "study.md").write_text("\n".join(lines) + "\n")

    fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    ax.loglog(ms, [mean_gap[m, times[-1]] for m in ms], "o-", label=f"t = {times[-1]:g}")
    ax.loglog(ms, mean_gap[ms[0], times[-1]] * (np.asarray(ms, float) / ms[0]) ** -1.0, "k--", label="m^(-1)")
    ax.set(xlabel="neurons m", ylabel="Σ q (h_PDE − h_m)²", title=problem.name)
    ax.legend()
    fig.savefig(out / "distance_vs_m.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 3.6), constrained_layout=True)
    tiny = np.finfo(float).tiny
    ax.plot(times, np.maximum(result["pde_excess"], tiny), "k-", lw=2, label="PDE")
    for m in ms:
        ax.plot(times, [max(mean("particle_excess", m, t), tiny) for t in times], "o--", label=f"GD, m = {m}")
    ax.set(xlabel="t", ylabel="(F − F*)/(F(ν0) − F*)", yscale="log", title=problem.name)
    ax.legend()
    fig.savefig(out / "energy_vs_t.png", dpi=110)
    plt.close(fig)

    if problem.grid.base.dim == 1:
        picks = np.unique(np.linspace(0, len(times) - 1, min(4, len(times))).round().astype(int))
        circle_density(out / "density_particles.png", problem.grid.base.points, times[picks],
                       np.asarray(pde.rho)[picks], problem.teacher, particles=last_runs[ms[0]].theta[picks],
                       title=f"{problem.name}: ν± (curves), m = {ms[0]} neurons")
    else:
        sphere_density(out / "density_particles.png", problem.grid.base.points, problem.grid.base.cells, pde.rho[-1],
                       problem.teacher, particles=last_runs[ms[0]].theta[-1],
                       title=f"{problem.name} at t = {times[-1]:g}: ν+ − ν−, m = {ms[0]} neurons (dots)")


# the study of sparse deconvolution: ν± against atoms θ = (z, r) ------------------------------
def deconvolution_study(problem, ms, times, seeds, step, out=None, pde=None, **solve_options):
    r""":func:`study` for a deconvolution preset (``deconvolution-2d``, ``deconvolution-1d``): the
    PDE's ν± against m particles moved two ways from the same start θ_j = (z_j, r_j)
    (``problem.sample``, weights ω = 1/m, masses ωr_j|r_j|):

    - ``"gd"``: plain gradient descent on (z, r) (:func:`solver.particles.simulate`, explicit
      Euler of step ``step``; positions move at r² times ∇F'±, so it is not the PDE's flow);
    - ``"conic"``: conic particle gradient descent on the atoms (:func:`solver.conic.conic_gradient_descent`,
      α = 4, β = 1, η = ``step``): the PDE's own flow on atoms.

    At every save time and for every (m, seed, method) a row holds the energy F (the PDE's F
    on the atoms, :meth:`~solver.energies.deconvolution.SpikeDeconvolution.lifted_energy`), the
    relative excess e = (F − F_c)/(F(ν_0) − F_c) of the particles and of the PDE, F_c the lower
    end of the continuous optimum's bracket
    (:meth:`~solver.energies.deconvolution.SpikeDeconvolution.continuous_reference`; the PDE
    stops at its cells' optimum F*, above F_c), the spike error (max over the true spikes of
    :meth:`~solver.energies.deconvolution.SpikeDeconvolution.spike_errors`, in the PDE's cells)
    and the run's wall seconds. A run whose energy rises between save times (a step too large
    for it: explicit Euler on r is stable for about ε < 1/(|G| + λ), and the positions of both
    move at speeds that grow with the masses) is reported by a RuntimeWarning.

    Returns
    -------
    dict
        ``rows``, ``pde_energy``, ``pde_excess``, ``pde_spike_error``, ``f_star`` (the cells'
        optimum), ``f_continuous`` (F_c), ``times``, ``ms``, ``final_atoms`` ({(method, m): the
        atoms of the last seed at the last time}).
    """
    import time
    import warnings

    from .conic import conic_gradient_descent
    from .particles import simulate

    times, ms = np.asarray(times, dtype=float), sorted(ms)  # the figures take ms[0], ms[-1] as the least and most
    energy, grid = problem.energy, problem.grid
    pde = _pde_at(problem, times, pde, solve_options, "deconvolution_study")
    h = 2 * np.pi / grid.base.shape[0]
    pde_energy = np.array([energy.value(rho, grid) for rho in pde.rho])
    f_star, f_continuous = energy.convex_reference(grid).value, energy.continuous_reference().lower
    scale = energy.value(problem.rho0, grid) - f_continuous
    pde_spike_error = [float(np.max(energy.spike_errors(energy.cell_atoms(rho, grid), h)[0])) for rho in pde.rho]
    iterations = np.round(np.diff(times) / step).astype(int)
    rows, final_atoms = [], {}
    for m in ms:
        for seed in seeds:
            theta0 = problem.sample(np.random.default_rng(seed), m)
            weights = np.full(m, 1.0 / m)
            trajectory = simulate(energy, theta0, (times[0], times[-1]), step=step, save_at=times, progress=False)
            gd = [energy.lift(theta, weights) for theta in trajectory.theta]
            start, conic = time.perf_counter(), [energy.lift(theta0, weights)]
            for count in iterations:
                conic.append(conic_gradient_descent(energy, conic[-1], step, int(count)).measure)
            runs = {"gd": (gd, trajectory.wall_time), "conic": (conic, time.perf_counter() - start)}
            for method, (measures, seconds) in runs.items():
                final_atoms[method, m] = measures[-1]
                values = [energy.lifted_energy(measure) for measure in measures]
                rise = float(np.max(np.diff(values), initial=0.0))
                if rise > 1e-9 * values[0]:
                    warnings.warn(f"deconvolution_study: the energy of {method} (m = {m}, seed {seed}) rose by "
                                  f"{rise:.3g} between save times: the step {step:g} is too large for it (plain "
                                  "GD on the 2D preset needs about 0.001, conic GD 0.01)", RuntimeWarning,
                                  stacklevel=2)
                for k, (t, measure, value) in enumerate(zip(times, measures, values)):
                    rows.append({"m": m, "seed": seed, "method": method, "t": float(t), "energy": value,
                                 "excess": (value - f_continuous) / scale, "pde_energy": pde_energy[k],
                                 "pde_excess": (pde_energy[k] - f_continuous) / scale,
                                 "spike_error": float(np.max(energy.spike_errors(measure, h)[0])),
                                 "pde_spike_error": pde_spike_error[k], "seconds": seconds})
    result = {"rows": rows, "pde_energy": pde_energy, "pde_excess": (pde_energy - f_continuous) / scale,
              "pde_spike_error": pde_spike_error, "f_star": f_star, "f_continuous": f_continuous, "times": times,
              "ms": list(ms), "final_atoms": final_atoms}
    if out is not None:
        _write_deconvolution_study(problem, pde, result, out)
    return result


def _write_deconvolution_study(problem, pde, result, out):
    """study.csv, study.md, energy_vs_t.png (relative excess), distance_vs_m.png (the spike
    error and the excess at the last time against m), density_particles.png (ν± at the last
    time with the atoms of the largest m)."""
    import matplotlib.pyplot as plt

    from .figures import torus_density

    out = _write_rows(out, result["rows"])
    rows, times, ms = result["rows"], result["times"], result["ms"]
    methods = {"gd": "plain GD on (z, r)", "conic": "conic GD"}

    def mean(key, method, m, t):
        return float(np.mean([r[key] for r in rows if r["m"] == m and r["method"] == method and r["t"] == t]))

    seeds = len(rows) // len(times) // len(ms) // len(methods)
    t = times[-1]
    lines = [f"# {problem.name}: PDE against {seeds} seed(s) of particles per m and method", "",
             f"F_c (lower end of the continuous optimum's bracket) = {result['f_continuous']:.10g}; F* (the "
             f"discrete optimum on the PDE's cells) = {result['f_star']:.10g}; relative excess "
             "e = (F − F_c)/(F(ν0) − F_c); spike error in cells (max over the spikes).", "",
             f"| method | m | F at t = {t:g} | e | spike error | seconds |", "|---|---|---|---|---|---|",
             f"| PDE | — | {result['pde_energy'][-1]:.10g} | {result['pde_excess'][-1]:.3e} | "
             f"{result['pde_spike_error'][-1]:.3g} | — |"]
    lines += [f"| {label} | {m} | {mean('energy', method, m, t):.10g} | {mean('excess', method, m, t):.3e} | "
              f"{mean('spike_error', method, m, t):.3g} | {mean('seconds', method, m, t):.2f} |"
              for method, label in methods.items() for m in ms]
    (out / "study.md").write_text("\n".join(lines) + "\n")

    tiny = np.finfo(float).tiny
    fig, ax = plt.subplots(figsize=(5.4, 3.8), constrained_layout=True)
    ax.plot(times, np.maximum(result["pde_excess"], tiny), "k-", lw=2, label="PDE")
    for method, style in (("gd", "o--"), ("conic", "s:")):
        for index, m in enumerate(ms):
            ax.plot(times, [max(mean("excess", method, m, s), tiny) for s in times], style, color=f"C{index}",
                    label=f"{methods[method]}, m = {m}")
    ax.set(xlabel="t", ylabel="(F − F_c)/(F(ν0) − F_c)", yscale="log", title=problem.name)
    ax.legend(fontsize=7)
    fig.savefig(out / "energy_vs_t.png", dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), constrained_layout=True)
    for method, style in (("gd", "o--"), ("conic", "s:")):
        axes[0].plot(ms, [mean("spike_error", method, m, t) for m in ms], style, label=methods[method])
        axes[1].plot(ms, [max(mean("excess", method, m, t), tiny) for m in ms], style, label=methods[method])
    axes[0].axhline(result["pde_spike_error"][-1], color="k", lw=1, label="PDE")
    axes[1].axhline(max(result["pde_excess"][-1], tiny), color="k", lw=1, label="PDE")
    limits = (min(ms) / 1.5, max(ms) * 1.5)  # the spike errors may all be ∞ (no atom near a spike)
    axes[0].set(xscale="log", xlim=limits, xlabel="particles m", ylabel=f"spike error (cells) at t = {t:g}")
    axes[1].set(xscale="log", yscale="log", xlim=limits, xlabel="particles m",
                ylabel=f"relative excess at t = {t:g}")
    axes[0].legend(fontsize=7)
    fig.savefig(out / "distance_vs_m.png", dpi=110)
    plt.close(fig)

    torus_density(out / "density_particles.png", problem.grid.base.bounds, times[-1:], pde.rho[-1:],
                  problem.teacher, title=f"ν± at t = {t:g}, atoms of m = {ms[-1]}",
                  atoms={methods[method]: result["final_atoms"][method, ms[-1]] for method in methods})
