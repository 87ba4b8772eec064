"""Implicit bias in d = 15 with particles only (Chizat–Bach 2020's experiment, seed 001):
test error against n and F1 margin against m, both layers against the output layer alone.

Data (REFERENCES.md, read from lchizat/2020-implicit-bias-wide-2NN): x = (1, u₁, u₂, z) ∈ R^d,
d = 15, with z uniform on [−½, ½]^(d−3) (uninformative) and (u₁, u₂) in a k×k grid of
clusters (k = 3): spacing Δ = 1/(3k − 1), centres Δ(1 + 3(p − 1)) − ½, p = 1…k, points
uniform in the disc of radius Δ around a centre drawn uniformly; half of the clusters
(drawn at random, ``--seed``) labelled −1, the others +1. The first coordinate 1 is the
bias, so the units are b(a·x)₊ without another one.

Training: :func:`solver.particles.simulate` (plain gradient descent, fixed step ``--step``,
mean-field time: dw_j/dt = −∇_w F'(μ)(w_j), weights 1/m) on
:class:`solver.LiftedReluRisk` with the logistic loss and λ = 0, from the balanced start
a_j ~ Unif(S^(d−1)), b_j = ±1, to t = ``--t-end``; "output layer" moves only b_j (a_j frozen
at the start). Reported: the test error on ``--n-test`` fresh points and the normalized
margin min_i y_i h(x_i) / ((1/m) Σ_j |w_j|²), Chizat–Bach's normalization (twice the F1
margin |ν+| + |ν−| of the lift for balanced neurons).

The PDE cannot live on S^14, so there is no PDE here (``implicit_bias.py`` has it on the circle).

Run: ``.venv/bin/python benchmarks/implicit_bias_d15.py [--quick]``: two tables (error
against n at m = ``--m``; margin against m at n = ``--n``), then a JSON line.
"""

import argparse
import json
import time

import numpy as np

from solver import LiftedReluRisk, tune_process
from solver.lift import balanced_relu_init
from solver.particles import simulate


def clusters(n, d, k, rng, signs):
    """n points of the k×k cluster law in R^d with their labels (module docstring)."""
    spacing = 1.0 / (3 * k - 1)
    centres = spacing * (1 + 3 * np.arange(k)) - 0.5
    cluster = rng.integers(0, k * k, n)
    radius, angle = spacing * np.sqrt(rng.uniform(0, 1, n)), rng.uniform(0, 2 * np.pi, n)
    u = np.stack([centres[cluster // k] + radius * np.cos(angle), centres[cluster % k] + radius * np.sin(angle)], 1)
    X = np.concatenate([np.ones((n, 1)), u, rng.uniform(-0.5, 0.5, (n, d - 3))], axis=1)
    return X, signs[cluster]


class OutputLayerOnly(LiftedReluRisk):
    """The same risk with the input weights a_j frozen: only db_j/dt = −G(a_j) moves."""

    def particle_velocity(self, theta, weights, batch=None):
        velocity = super().particle_velocity(theta, weights, batch)
        velocity[:, :-1] = 0.0
        return velocity


def train(kind, X, y, m, seed, step, t_end):
    """Particles after gradient descent to t_end: (energy, theta, weights)."""
    energy = (LiftedReluRisk if kind == "both layers" else OutputLayerOnly)(X, y, loss="logistic")
    theta0 = balanced_relu_init(m, X.shape[1], np.random.default_rng(seed))
    run = simulate(energy, theta0, (0.0, t_end), step=step, progress=False)
    return energy, run.theta[-1], run.weights


def margin(energy, theta, weights):
    """min_i y_i h(x_i) / ((1/m) Σ_j |w_j|²)."""
    return float(np.min(energy.targets * energy.predict(theta, weights))) / float(weights @ np.sum(theta**2, axis=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n up to 128, m up to 128, t to 2000, one seed")
    parser.add_argument("--d", type=int, default=15)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--m", type=int, default=None, help="neurons for the error against n (default 256; quick 64)")
    parser.add_argument("--n", type=int, default=None, help="points for the margin against m (default 256; quick 64)")
    parser.add_argument("--n-test", type=int, default=4000)
    parser.add_argument("--step", type=float, default=2.0, help="GD step (20 diverges: all units die)")
    parser.add_argument("--t-end", type=float, default=None, help="default 20000; quick 2000")
    parser.add_argument("--seeds", type=int, default=None, help="default 3; quick 1")
    parser.add_argument("--seed", type=int, default=0, help="the labelling of the clusters and the data")
    args = parser.parse_args()
    tune_process()
    ns = (32, 64, 128) if args.quick else (32, 64, 128, 256, 512)
    ms = (8, 32, 128) if args.quick else (8, 16, 32, 64, 128, 256, 512, 1024)
    m_fixed, n_fixed = args.m or (64 if args.quick else 256), args.n or (64 if args.quick else 256)
    t_end, seeds = args.t_end or (2000.0 if args.quick else 20000.0), args.seeds or (1 if args.quick else 3)
    kinds = ("both layers", "output layer")

    rng = np.random.default_rng(args.seed)
    signs = rng.permutation(np.repeat([1.0, -1.0], [(args.k**2 + 1) // 2, args.k**2 // 2]))
    X_test, y_test = clusters(args.n_test, args.d, args.k, rng, signs)
    start = time.perf_counter()

    errors = {kind: [] for kind in kinds}
    for n in ns:
        for kind in kinds:
            values = []
            for seed in range(seeds):
                X, y = clusters(n, args.d, args.k, np.random.default_rng(1000 * seed + n), signs)
                energy, theta, weights = train(kind, X, y, m_fixed, seed, args.step, t_end)
                values.append(float(np.mean(np.sign(energy.predict(theta, weights, X_test)) != y_test)))
            errors[kind].append(float(np.mean(values)))
    margins = {kind: [] for kind in kinds}
    for m in ms:
        for kind in kinds:
            values = []
            for seed in range(seeds):
                X, y = clusters(n_fixed, args.d, args.k, np.random.default_rng(1000 * seed + n_fixed), signs)
                values.append(margin(*train(kind, X, y, m, seed, args.step, t_end)))
            margins[kind].append(float(np.mean(values)))

    print(f"implicit bias, d = {args.d}, {args.k}x{args.k} clusters, logistic loss, plain GD step {args.step} to "
          f"t = {t_end:g}, {seeds} seed(s), {time.perf_counter() - start:.1f} s")
    print(f"test error against n (m = {m_fixed}, {args.n_test} test points)")
    print(f"{'n':>6} " + " ".join(f"{kind:>13}" for kind in kinds))
    for i, n in enumerate(ns):
        print(f"{n:6d} " + " ".join(f"{errors[kind][i]:13.4f}" for kind in kinds))
    print(f"normalized margin against m (n = {n_fixed})")
    print(f"{'m':>6} " + " ".join(f"{kind:>13}" for kind in kinds))
    for i, m in enumerate(ms):
        print(f"{m:6d} " + " ".join(f"{margins[kind][i]:13.5f}" for kind in kinds))
    print(json.dumps({"benchmark": "implicit_bias_d15", "quick": args.quick, "d": args.d, "k": args.k,
                      "t_end": t_end, "step": args.step, "seeds": seeds,
                      "test_error": {kind: dict(zip(map(str, ns), errors[kind])) for kind in kinds},
                      "margin": {kind: dict(zip(map(str, ms), margins[kind])) for kind in kinds}}))


if __name__ == "__main__":
    main()
