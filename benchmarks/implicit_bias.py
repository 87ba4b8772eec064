"""Implicit bias of unregularized classification (Chizat–Bach 2020): the lifted PDE tends to
the F1 max-margin classifier, output-layer-only training to the F2 one, gradient descent on m
neurons to the F1 one as m grows.

Two cases (``--case``), logistic loss ℓ(p, y) = log(1 + e^(−yp)) (``--loss``), λ = 0:

- ``circle``: inputs x_i on the unit circle (``--n`` points at random angles), no bias,
  labels y_i = sign h*(x_i) of a fixed 4-neuron teacher (separable by construction). Units
  b(a·x)₊ lift to ν± on the circle of directions (a periodic grid of ``--cells`` cells).
- ``plane``: 2D inputs with a bias, x̃ = (u₁, u₂, 1): the seed's cluster law in the plane
  (:func:`solver.problems.cluster_classification`, ``--k``×``--k`` clusters in [−½, ½]²,
  labels of the clusters drawn by ``--label-seed``; k = 2 gives the XOR of four clusters),
  ``--n`` points. Units b(a·x̃)₊ lift to ν± on S², the sphere mesh ``Mesh.sphere(--size)``
  (lumped vertex areas). Why these data for the "margin against m" panel: XOR is not
  linearly separable and its F1 max-margin classifier is spread over many directions (the
  LP on 20000 directions puts its mass on 10 of them, against 5 on the circle data), so 8
  balanced neurons from a random start (4 of each sign) cannot place one neuron at each
  and stop at a smaller margin, or at a ReLU kink before separating; on the circle data the
  max margin is carried by a few directions and m = 8 already reaches it.

The normalized margin of a predictor h is

    γ(h) = min_i y_i h(x_i) / ‖h‖,

with ‖h‖ = |ν+| + |ν−| (the F1 norm, = ½Σ_j ω_j|w_j|² for balanced neurons: Chizat–Bach's
normalization Σ|w_j|²/m is twice it) or ‖b‖_(L²(π)) for output-layer training.

- References on the same directions (cells or mesh vertices): γ*₁ = :func:`solver.convex.max_margin`
  (the LP with HiGHS) and γ*₂ = :func:`solver.convex.kernel_max_margin` (the hard-margin SVM
  of k(x, x') = E_s[(s·x̃)₊(s·x̃')₊], s uniform, by the quadrature π of the cells or vertices:
  SLSQP on its dual, certified by the duality gap); γ*₂ ≤ γ*₁. On the plane the LP is also
  solved on 20000 Fibonacci directions (the continuum's γ*₁ within their resolution), which
  particles, whose directions are free, may approach beyond the mesh's γ*₁.
- PDE: the Wasserstein–Fisher–Rao flow of ν± (``solve``, scheme "explicit") from ν± uniform
  (mass ½ each, h = 0) to t = ``--t-end``. Its steps grow by themselves: the step limits are
  h/max|∇F'| and 1/(2 max F'⁺), and F' = ±G with G = Σ r_i (s·x̃_i)₊, r_i ~ loss ~ 1/t
  once the data are separated (the mass grows like log t / γ), so dt ∝ t and each decade of
  t costs about the same number of steps (≈ 120 on the circle, 50–60 on the sphere mesh). The
  normalized margin approaches γ*₁ at a rate of order 1/log t, so one cannot go "to
  convergence"; t = 1e12 is ten decades past the separation (t ≈ 100), where the curve has
  flattened (it moves within about 2% over the last four decades), and it is bounded by γ*₁
  on the cells (the LP is the max over all ν on them).
- Output layer only: directions fixed at the cells (the uniform start), output weights b_k
  with h = Σ_k π_k b_k (s_k·x̃)₊, π_k the normalized cell or vertex weights, the gradient flow
  in L²(π) from b = 0: db/dt = −G (the same G), by explicit Euler steps
  dt = 1/(Σ_i|r_i| max_i Σ_k π_k A_ik²), the inverse of a bound on the Hessian in L²(π)
  (ℓ'' ≤ |ℓ'| for both losses), which again grows like t. Its margin in L²(π) tends to γ*₂
  (Soudry et al. 2018: gradient descent on a linear model tends to the L² max margin); its
  F1-normalized margin stays below γ*₁. (The Fisher–Rao part of the PDE alone, without
  transport, is *not* this: it is multiplicative-weights descent on c± ≥ 0, whose bias is
  towards the ℓ1 margin on the fixed directions, i.e. γ*₁ on the cells.)
- Particles: plain gradient descent on w = (a, b) (``ReluRegression.network_velocity``) at
  m ∈ {8, 32, 128, 1024} from the balanced start a_j ~ Unif(S^(p−1)), b_j = ±1, weights 1/m,
  ``--seeds`` seeds; explicit Euler steps doubled after every accepted step and halved when
  the loss would rise by more than round-off (10⁻¹² relative: at a minimum of a non-separable
  problem F changes by round-off only) (the same growth as the PDE's controller), down to a floor of
  10⁻⁶ max(t, 1) where the step is taken anyway: at a ReLU kink (a neuron's hyperplane on a
  data point, which the bias makes common) no step lowers the loss and gradient descent
  zigzags across it, as fixed-step gradient descent does. A run that spends ``MAX_STEPS``
  steps there stops and reports the margin it reached (and the time, in the table). Their
  directions are continuous, so they can exceed the cells' γ*₁ by the cells' discretization error.

Run: ``.venv/bin/python benchmarks/implicit_bias.py [--case plane] [--quick] [--figures DIR]``.
Prints the margins against t and m, then a JSON line with ``pde_margin_ratio`` (final γ/γ*₁),
``output_layer_margin_ratio`` (final γ_L²/γ*₂), ``output_layer_f1_ratio`` (its γ/γ*₁),
``gd_margin_ratio`` per m (final γ/γ*₁, mean over seeds) and ``gd_runs`` (each seed's).
"""

import argparse
import json
import time

import numpy as np
from quick import resolve

from solver import Grid, LiftedReluRisk, Species, figures, solve, tune_process
from solver.convex import kernel_max_margin, max_margin
from solver.lift import balanced_relu_init, circle_directions, relu_features, relu_inputs
from solver.problems import cluster_classification, sphere_quadrature

MS = (8, 32, 128, 1024)
MAX_STEPS = 50_000
KINK_STEP = 1e-6
ROUND_OFF = 1e-12
TEACHER_ANGLES = np.array([0.3, 1.5, 2.7, 4.2])
TEACHER_WEIGHTS = np.array([1.0, -1.0, 1.0, -0.6])


def labelled_circle(n, seed=0):
    """x_i = (cos ψ_i, sin ψ_i), ψ_i ~ Unif(0, 2π), y_i = sign h*(x_i) for the teacher
    h*(x) = Σ_j b_j (s(φ_j)·x)₊ (``TEACHER_ANGLES``, ``TEACHER_WEIGHTS``)."""
    X = circle_directions(np.sort(np.random.default_rng(seed).uniform(0, 2 * np.pi, n)))
    h = relu_features(circle_directions(TEACHER_ANGLES), X) @ TEACHER_WEIGHTS
    return X, np.where(h >= 0, 1.0, -1.0)


def labelled_plane(n, k, seed=0):
    """n points of the k×k cluster law in the plane, half of the clusters labelled −1 at random."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat([1.0, -1.0], [(k * k + 1) // 2, k * k // 2]))
    return cluster_classification(n, k, rng, labels)


def run_pde(energy, grid, times):
    """The lifted PDE from ν± uniform (mass ½ each); γ(t) at ``times`` (F1-normalized margins), the solution."""
    rho0 = np.full(grid.shape, 0.5 / grid.base.integrate(np.ones(grid.base.shape)))
    solution = solve(energy, grid, rho0, (0.0, times[-1]), save_at=times, progress=False)
    margins = np.array([energy.margin(rho, grid) for rho in solution.rho])
    return margins, solution


def run_output_layer(problem, A, pi, times):
    """Gradient flow db/dt = −Aᵀr on the output weights (module docstring); the margins in
    L²(π) and in F1 normalization at ``times``, and the final b."""
    b, t, l2, f1 = np.zeros(A.shape[1]), 0.0, [], []
    feature_norm = float(np.max(A**2 @ pi))
    for target in times:
        while t < target:
            r = problem.coefficients(A @ (pi * b))
            dt = min(1.0 / (np.sum(np.abs(r)) * feature_norm), target - t)
            b = b - dt * (A.T @ r)
            t = target if dt == target - t else t + dt
        worst = float(np.min(problem.targets * (A @ (pi * b))))
        l2.append(worst / np.sqrt(pi @ b**2))
        f1.append(worst / (pi @ np.abs(b)))
    return np.array(l2), np.array(f1), b


def gradient_descent(problem, theta, times, output_layer_only=False):
    """Plain gradient descent on the neurons ``theta`` (weights 1/m) with the module
    docstring's steps; with ``output_layer_only`` the input weights a_j stay put (only
    db_j/dt = −G(a_j) moves). The neurons at ``times`` (after a stall of ``MAX_STEPS`` steps
    at a kink, the last ones) and the time reached."""
    weights = np.full(len(theta), 1.0 / len(theta))
    F, t, dt, steps, saved = problem.network_energy(theta, weights), 0.0, 0.1, 0, []
    for target in times:
        while t < target and steps < MAX_STEPS:
            step = min(dt, target - t)
            velocity = problem.network_velocity(theta, weights)
            if output_layer_only:
                velocity[:, :-1] = 0.0
            new = theta + step * velocity
            new_F = problem.network_energy(new, weights)
            if new_F > F + ROUND_OFF * abs(F) and step > KINK_STEP * max(t, 1.0):
                dt = step / 2
                continue
            theta, F, steps = new, new_F, steps + 1
            t = target if step == target - t else t + step
            dt = 2 * step if step == dt else dt
        saved.append(theta)
    return saved, t


def run_particles(problem, m, seed, times):
    """Gradient descent on m balanced neurons from a_j ~ Unif(S^(p−1)), b_j = ±1; the
    F1-normalized margins min_i y_i h(x_i) / Σ_j ω_j|a_j|² at ``times`` and the time reached."""
    saved, reached = gradient_descent(problem, balanced_relu_init(m, problem.inputs.shape[1],
                                                                  np.random.default_rng(seed)), times)
    weights = np.full(m, 1.0 / m)
    margins = [float(np.min(problem.targets * problem.network_prediction(theta, weights)))
               / float(weights @ np.sum(theta[:, :-1] ** 2, axis=1)) for theta in saved]
    return np.array(margins), reached


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", default="circle", choices=("circle", "plane"))
    parser.add_argument("--quick", action="store_true",
                        help="circle: 64 cells; plane: mesh size 0.2; t to 1e10, one seed")
    parser.add_argument("--cells", type=int, default=None, help="circle: cells (default 256; quick 64)")
    parser.add_argument("--size", type=float, default=None, help="plane: sphere mesh size (default 0.1; quick 0.2)")
    parser.add_argument("--n", type=int, default=None, help="training points (default: circle 16, plane 32)")
    parser.add_argument("--k", type=int, default=2, help="plane: clusters per axis")
    parser.add_argument("--label-seed", type=int, default=0, help="plane: the clusters' labels and the points")
    parser.add_argument("--loss", default="logistic", choices=("logistic", "exponential"))
    parser.add_argument("--t-end", type=float, default=None, help="final time (default 1e12; quick 1e10)")
    parser.add_argument("--seeds", type=int, default=None, help="particle seeds per m (default 3; quick 1)")
    parser.add_argument("--ms", type=int, nargs="+", default=list(MS), help="neurons of gradient descent")
    parser.add_argument("--figures", default=None, help="directory for the figures")
    args = parser.parse_args()
    ms = args.ms
    tune_process()
    resolve(args, t_end=(1e10, 1e12), seeds=(1, 3), cells=(64, 256), size=(0.2, 0.1))
    t_end, seeds = args.t_end, args.seeds
    times = np.logspace(0, np.log10(t_end), int(round(np.log10(t_end))) + 1)

    if args.case == "circle":
        n = args.n or 16
        X, y = labelled_circle(n)
        resolution = args.cells
        base = Grid([[0.0, 2 * np.pi]], [resolution], bc="periodic")
    else:
        from solver.fem import Mesh

        n = args.n or 32
        X, y = labelled_plane(n, args.k, args.label_seed)
        resolution = args.size
        base = Mesh.sphere(resolution)
    bias = args.case == "plane"
    energy = LiftedReluRisk(X, y, bias=bias, loss=args.loss)
    grid = Species(base, ("plus", "minus"))
    A, w = energy.cell_features(grid)
    pi = w / np.sum(w)
    gamma1 = max_margin(A, y).margin
    gamma2 = kernel_max_margin(A, y, weights=pi, tol=1e-7).margin  # the gap on the plane: ~1e-12 of γ*₂
    fine = sphere_quadrature(20000)[0] if bias else circle_directions(2 * np.pi * np.arange(20000) / 20000)
    fine_solution = max_margin(relu_features(fine, relu_inputs(X, bias)), y)
    fine_masses = fine_solution.c_plus + fine_solution.c_minus
    fine_support = int(np.sum(fine_masses > 1e-9 * np.sum(fine_masses)))

    start = time.perf_counter()
    pde, solution = run_pde(energy, grid, times)
    pde_time = time.perf_counter() - start
    start = time.perf_counter()
    out_l2, out_f1, b = run_output_layer(energy.problem, A, pi, times)
    out_time = time.perf_counter() - start
    gd, gd_runs, gd_time, reached = {}, {}, {}, {}
    for m in ms:
        start = time.perf_counter()
        runs = [run_particles(energy.problem, m, seed, times) for seed in range(seeds)]
        gd_time[m] = time.perf_counter() - start
        gd_runs[m] = np.array([run[0][-1] / gamma1 for run in runs])
        gd[m] = np.mean([run[0] for run in runs], axis=0)
        reached[m] = [run[1] for run in runs]

    where = (f"{resolution} cells of the circle" if args.case == "circle"
             else f"the sphere mesh of size {resolution:g} ({base.vertices} vertices), {args.k}x{args.k} clusters")
    print(f"implicit bias on the {args.case}: n = {n}, {args.loss} loss, {where}, "
          f"γ*1 = {gamma1:.6g} (LP), γ*2 = {gamma2:.6g} (SVM), γ*2/γ*1 = {gamma2 / gamma1:.4f}; "
          f"LP on 20000 directions: γ*1 = {fine_solution.margin:.6g} on {fine_support} directions")
    print(f"PDE: {solution.accepted} steps ({solution.rejected} rejected), {pde_time:.2f} s, final mass "
          f"{solution.history['mass'][-1]:.4g}; output layer {out_time:.2f} s; GD "
          + ", ".join(f"m={m} {gd_time[m]:.2f} s" for m in ms))
    header = f"{'t':>8} {'PDE/γ1':>8} {'out L2/γ2':>10} {'out F1/γ1':>10} " + " ".join(f"{f'GD{m}/γ1':>9}" for m in ms)
    print(header)
    for k, t in enumerate(times):
        print(f"{t:8.0e} {pde[k] / gamma1:8.4f} {out_l2[k] / gamma2:10.4f} {out_f1[k] / gamma1:10.4f} "
              + " ".join(f"{gd[m][k] / gamma1:9.4f}" for m in ms))
    print("final γ/γ*1 of gradient descent per seed (time reached when it stalled at a kink before t_end)")
    for m in ms:
        print(f"  m = {m:5d}: " + ", ".join(f"{ratio:.3f}" + (f" (t = {t:.3g})" if t < t_end else "")
                                           for ratio, t in zip(gd_runs[m], reached[m])))

    if args.figures:
        import pathlib

        directory = pathlib.Path(args.figures)
        directory.mkdir(parents=True, exist_ok=True)
        directions = energy.directions(base)
        c_plus, c_minus = energy.masses(solution.rho[-1], grid)
        figures.input_plane_predictors(
            directory / f"implicit_bias_{args.case}_predictors.png", X, y,
            [lambda x: relu_features(directions, relu_inputs(x, bias)) @ (c_plus - c_minus),
             lambda x: relu_features(directions, relu_inputs(x, bias)) @ (pi * b)],
            [f"both layers (PDE, t = {t_end:.0e}): γ/γ*1 = {pde[-1] / gamma1:.3f}",
             f"output layer only: γ_L2/γ*2 = {out_l2[-1] / gamma2:.3f}"],
            extent=0.75 if bias else 1.4, unit_circle=not bias)
        figures.margin_curves(directory / f"implicit_bias_{args.case}_margins.png", times,
                              {"PDE γ/γ*1": pde / gamma1, "output layer γ_L2/γ*2": out_l2 / gamma2,
                               "output layer γ_F1/γ*1": out_f1 / gamma1,
                               **{f"GD m={m} γ/γ*1": gd[m] / gamma1 for m in ms}})
        figures.margins_against_m(directory / f"implicit_bias_{args.case}_margin_vs_m.png", ms,
                                  [gd_runs[m] for m in ms], pde[-1] / gamma1,
                                  title=f"{args.case}: final margins at t = {t_end:.0e}")

    above = np.flatnonzero(pde / gamma1 >= 0.9)
    print(json.dumps({
        "benchmark": "implicit_bias", "case": args.case, "quick": args.quick, "loss": args.loss, "n": n,
        "resolution": resolution, "directions": int(A.shape[1]), "t_end": t_end, "gamma1": gamma1, "gamma2": gamma2,
        "gamma1_fine": fine_solution.margin, "gamma1_fine_support": fine_support,
        "pde_margin_ratio": pde[-1] / gamma1,
        "pde_time_reaching_0.9": float(times[above[0]]) if len(above) else None,
        "pde_min_ratio_after_reaching_0.9": float(np.min(pde[above[0]:] / gamma1)) if len(above) else None,
        "pde_max_ratio": float(np.max(pde / gamma1)),
        "output_layer_margin_ratio": out_l2[-1] / gamma2, "output_layer_f1_ratio": out_f1[-1] / gamma1,
        "gd_margin_ratio": {str(m): gd[m][-1] / gamma1 for m in ms},
        "gd_runs": {str(m): gd_runs[m].tolist() for m in ms},
        "pde_steps": solution.accepted, "pde_wall_time": pde_time}))


if __name__ == "__main__":
    main()
