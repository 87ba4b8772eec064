"""Implicit bias of unregularized classification (Chizat–Bach 2020) on the circle: the lifted
PDE tends to the F1 max-margin classifier, output-layer-only training to the F2 one.

Inputs x_i on the unit circle (``--n`` points at random angles), no bias, labels
y_i = sign h*(x_i) of a fixed 4-neuron teacher (separable by construction), the logistic
loss ℓ(p, y) = log(1 + e^(−yp)) (``--loss``), λ = 0. Balanced ReLU units b(a·x)₊ lift to
ν± on the circle of directions (:class:`solver.LiftedReluRisk`); the normalized margin of a
predictor h is

    γ(h) = min_i y_i h(x_i) / ‖h‖,

with ‖h‖ = |ν+| + |ν−| (the F1 norm, = ½Σ_j ω_j|w_j|² for balanced neurons: Chizat–Bach's
normalization Σ|w_j|²/m is twice it) or ‖b‖_(L²(π)) for output-layer training.

- References on the ``--cells`` cells of the circle: γ*₁ = :func:`solver.convex.max_margin`
  (the LP with HiGHS) and γ*₂ = :func:`solver.convex.kernel_max_margin` (the hard-margin SVM
  of k(x, x') = E_s[(s·x)₊(s·x')₊], s uniform, by the midpoint quadrature of the cells:
  SLSQP on its dual, certified by the duality gap); γ*₂ ≤ γ*₁.
- PDE: the Wasserstein–Fisher–Rao flow of ν± (``solve``, scheme "explicit") from ν± uniform
  (mass ½ each, h = 0) to t = ``--t-end``. Its steps grow by themselves: the step limits are
  Δφ/max|∂φF'| and 1/(2 max F'⁺), and F' = ±G with G = Σ r_i (s·x_i)₊, r_i ~ loss ~ 1/t
  once the data are separated (the mass grows like log t / γ), so dt ∝ t and each decade of
  t costs about the same number of steps (≈ 120). The normalized margin approaches γ*₁ at a
  rate of order 1/log t, so one cannot go "to convergence"; t = 1e12 is 12 decades past the
  separation (t ≈ 100), where the curve has flattened (it moves within about 2% over the last four
  decades), and it is bounded by γ*₁ on the cells (the LP is the max over all ν on them).
- Output layer only: directions fixed at the cells (the uniform start), output weights b_k
  with h = Σ_k π_k b_k (s_k·x)₊, π_k = Δφ/2π, the gradient flow in L²(π) from b = 0:
  db/dt = −G (the same G), by explicit Euler steps dt = 1/(Σ_i|r_i| max_i Σ_k π_k A_ik²),
  the inverse of a bound on the Hessian in L²(π) (ℓ'' ≤ |ℓ'| for both losses), which again
  grows like t. Its margin in L²(π) tends to γ*₂ (Soudry et al. 2018: gradient descent on
  a linear model tends to the L² max margin); its F1-normalized margin stays below γ*₁.
  (The Fisher–Rao part of the PDE alone, without transport, is *not* this: it is
  multiplicative-weights descent on c± ≥ 0, whose bias is towards the ℓ1 margin on the
  fixed directions, i.e. γ*₁ on the cells.)
- Particles: plain gradient descent on w = (a, b) (``ReluRegression.network_velocity``) at
  m ∈ {8, 32, 128, 1024} from the balanced start a_j ~ Unif(S¹), b_j = ±1, weights 1/m,
  ``--seeds`` seeds; explicit Euler steps doubled after every accepted step and halved when
  the loss would not decrease (the same growth as the PDE's controller). Their directions
  are continuous, so they can exceed the cells' γ*₁ by the cells' discretization error.

Run: ``.venv/bin/python benchmarks/implicit_bias.py [--quick] [--figures DIR]``. Prints the
margins against t and m, then a JSON line with ``pde_margin_ratio`` (final γ/γ*₁),
``output_layer_margin_ratio`` (final γ_L²/γ*₂), ``output_layer_f1_ratio`` (its γ/γ*₁),
``gd_margin_ratio`` per m (final γ/γ*₁, mean over seeds).
"""

import argparse
import json
import time

import numpy as np

from solver import Grid, LiftedReluRisk, Species, solve, tune_process
from solver.convex import kernel_max_margin, max_margin
from solver.lift import balanced_relu_init, circle_directions, relu_features

MS = (8, 32, 128, 1024)
TEACHER_ANGLES = np.array([0.3, 1.5, 2.7, 4.2])
TEACHER_WEIGHTS = np.array([1.0, -1.0, 1.0, -0.6])


def labelled_circle(n, seed=0):
    """x_i = (cos ψ_i, sin ψ_i), ψ_i ~ Unif(0, 2π), y_i = sign h*(x_i) for the teacher
    h*(x) = Σ_j b_j (s(φ_j)·x)₊ (``TEACHER_ANGLES``, ``TEACHER_WEIGHTS``)."""
    X = circle_directions(np.sort(np.random.default_rng(seed).uniform(0, 2 * np.pi, n)))
    h = relu_features(circle_directions(TEACHER_ANGLES), X) @ TEACHER_WEIGHTS
    return X, np.where(h >= 0, 1.0, -1.0)


def run_pde(energy, grid, times):
    """The lifted PDE from ν± uniform; γ(t)/1 at ``times`` (F1-normalized margins), the last ρ."""
    rho0 = np.full(grid.shape, 0.5 / (2 * np.pi))
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


def run_particles(problem, m, seed, times, max_steps=200_000):
    """Plain gradient descent on m balanced neurons (module docstring); γ at ``times``."""
    theta = balanced_relu_init(m, 2, np.random.default_rng(seed))
    weights = np.full(m, 1.0 / m)
    F, t, dt, steps, margins = problem.network_energy(theta, weights), 0.0, 0.1, 0, []
    for target in times:
        while t < target:
            steps += 1
            if steps > max_steps:
                raise RuntimeError(f"gradient descent: {max_steps} steps before t = {target:g} (m = {m})")
            step = min(dt, target - t)
            new = theta + step * problem.network_velocity(theta, weights)
            new_F = problem.network_energy(new, weights)
            if not new_F < F:
                dt = step / 2
                continue
            theta, F = new, new_F
            t = target if step == target - t else t + step
            dt = 2 * step if step == dt else dt
        mass = float(weights @ np.sum(theta[:, :-1] ** 2, axis=1))
        margins.append(float(np.min(problem.targets * problem.network_prediction(theta, weights))) / mass)
    return np.array(margins)


def figure(path, X, y, predictors, titles):
    """The sign of h in the input plane, the training points and the zero level set, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    u = np.linspace(-1.4, 1.4, 281)
    U, V = np.meshgrid(u, u)
    plane = np.stack([U.ravel(), V.ravel()], axis=1)
    fig, axes = plt.subplots(1, len(predictors), figsize=(4.2 * len(predictors), 4.2))
    for ax, predictor, title in zip(axes, predictors, titles):
        h = predictor(plane).reshape(U.shape)
        ax.contourf(U, V, np.sign(h), levels=[-1.5, 0, 1.5], colors=["#f4b6b6", "#b6c8f4"])
        ax.contour(U, V, h, levels=[0.0], colors="k", linewidths=1.2)
        ax.scatter(*X[y > 0].T, c="tab:blue", edgecolors="k", s=36, label="y = +1")
        ax.scatter(*X[y < 0].T, c="tab:red", edgecolors="k", s=36, label="y = −1")
        ax.add_patch(plt.Circle((0, 0), 1.0, fill=False, ls=":", color="gray"))
        ax.set_aspect("equal")
        ax.set_title(title, fontsize=10)
    axes[0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def margin_figure(path, times, curves):
    """Normalized margins against log t."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves.items():
        ax.semilogx(times, values, marker="o", ms=3, label=label)
    ax.axhline(1.0, color="k", lw=0.8)
    ax.axhline(0.9, color="k", lw=0.8, ls=":")
    ax.set_ylim(0, 1.1)
    ax.set_xlabel("t")
    ax.set_ylabel("normalized margin / its max-margin reference")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64 cells, t to 1e10, one seed")
    parser.add_argument("--cells", type=int, default=None, help="cells of the circle (default 256; quick 64)")
    parser.add_argument("--n", type=int, default=16, help="training points")
    parser.add_argument("--loss", default="logistic", choices=("logistic", "exponential"))
    parser.add_argument("--t-end", type=float, default=None, help="final time (default 1e12; quick 1e10)")
    parser.add_argument("--seeds", type=int, default=None, help="particle seeds per m (default 3; quick 1)")
    parser.add_argument("--figures", default=None, help="directory for the figures")
    args = parser.parse_args()
    tune_process()
    cells = args.cells or (64 if args.quick else 256)
    t_end = args.t_end or (1e10 if args.quick else 1e12)
    seeds = args.seeds or (1 if args.quick else 3)
    times = np.logspace(0, np.log10(t_end), int(round(np.log10(t_end))) + 1)

    X, y = labelled_circle(args.n)
    energy = LiftedReluRisk(X, y, loss=args.loss)
    grid = Species(Grid([[0.0, 2 * np.pi]], [cells], bc="periodic"), ("plus", "minus"))
    A, w = energy.cell_features(grid)
    pi = w / np.sum(w)
    gamma1, gamma2 = max_margin(A, y).margin, kernel_max_margin(A, y, weights=pi).margin

    start = time.perf_counter()
    pde, solution = run_pde(energy, grid, times)
    pde_time = time.perf_counter() - start
    start = time.perf_counter()
    out_l2, out_f1, b = run_output_layer(energy.problem, A, pi, times)
    out_time = time.perf_counter() - start
    gd, gd_time = {}, {}
    for m in MS:
        start = time.perf_counter()
        gd[m] = np.mean([run_particles(energy.problem, m, seed, times) for seed in range(seeds)], axis=0)
        gd_time[m] = time.perf_counter() - start

    print(f"implicit bias on the circle: n = {args.n}, {args.loss} loss, {cells} cells, "
          f"γ*1 = {gamma1:.6g} (LP), γ*2 = {gamma2:.6g} (SVM), γ*2/γ*1 = {gamma2 / gamma1:.4f}")
    print(f"PDE: {solution.accepted} steps ({solution.rejected} rejected), {pde_time:.2f} s, final mass "
          f"{solution.history['mass'][-1]:.4g}; output layer {out_time:.2f} s; GD "
          + ", ".join(f"m={m} {gd_time[m]:.2f} s" for m in MS))
    header = f"{'t':>8} {'PDE/γ1':>8} {'out L2/γ2':>10} {'out F1/γ1':>10} " + " ".join(f"{f'GD{m}/γ1':>9}" for m in MS)
    print(header)
    for k, t in enumerate(times):
        print(f"{t:8.0e} {pde[k] / gamma1:8.4f} {out_l2[k] / gamma2:10.4f} {out_f1[k] / gamma1:10.4f} "
              + " ".join(f"{gd[m][k] / gamma1:9.4f}" for m in MS))

    if args.figures:
        import pathlib

        directory = pathlib.Path(args.figures)
        directory.mkdir(parents=True, exist_ok=True)
        directions = circle_directions(np.asarray(grid.base.points, dtype=float).reshape(-1))
        c_plus, c_minus = energy.masses(solution.rho[-1], grid)
        figure(directory / "implicit_bias_predictors.png", X, y,
               [lambda x: relu_features(directions, x) @ (c_plus - c_minus),
                lambda x: relu_features(directions, x) @ (pi * b)],
               [f"both layers (PDE, t = {t_end:.0e}): γ/γ*1 = {pde[-1] / gamma1:.3f}",
                f"output layer only: γ_L2/γ*2 = {out_l2[-1] / gamma2:.3f}"])
        margin_figure(directory / "implicit_bias_margins.png", times,
                      {"PDE γ/γ*1": pde / gamma1, "output layer γ_L2/γ*2": out_l2 / gamma2,
                       "output layer γ_F1/γ*1": out_f1 / gamma1,
                       **{f"GD m={m} γ/γ*1": gd[m] / gamma1 for m in MS}})

    reached = np.flatnonzero(pde / gamma1 >= 0.9)
    print(json.dumps({
        "benchmark": "implicit_bias", "quick": args.quick, "loss": args.loss, "n": args.n, "cells": cells,
        "t_end": t_end, "gamma1": gamma1, "gamma2": gamma2,
        "pde_margin_ratio": pde[-1] / gamma1,
        "pde_time_reaching_0.9": float(times[reached[0]]) if len(reached) else None,
        "pde_min_ratio_after_reaching_0.9": float(np.min(pde[reached[0]:] / gamma1)) if len(reached) else None,
        "pde_max_ratio": float(np.max(pde / gamma1)),
        "output_layer_margin_ratio": out_l2[-1] / gamma2, "output_layer_f1_ratio": out_f1[-1] / gamma1,
        "gd_margin_ratio": {str(m): gd[m][-1] / gamma1 for m in MS},
        "pde_steps": solution.accepted, "pde_wall_time": pde_time}))


if __name__ == "__main__":
    main()
