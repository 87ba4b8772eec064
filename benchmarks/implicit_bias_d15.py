"""Implicit bias in d = 15 with particles only (Chizat–Bach 2020's experiment, seed 001):
test error against n and F1 margin against m, both layers against the output layer alone.

Data (read from Chizat's public code, lchizat/2020-implicit-bias-wide-2NN): x̃ = (u₁, u₂, z, 1) ∈ R^d,
d = 15, with z uniform on [−½, ½]^(d−3) (uninformative) and (u₁, u₂) in a k×k grid of
clusters (k = 3; :func:`solver.problems.cluster_classification`, the law of the plane case of
``implicit_bias.py`` with d − 3 more coordinates): spacing Δ = 1/(3k − 1), centres
Δ(1 + 3(p − 1)) − ½, p = 1…k, points uniform in the disc of radius Δ around a centre drawn
uniformly; half of the clusters (drawn at random, ``--seed``) labelled −1, the others +1.
The last coordinate 1 is the bias (Chizat's first: the law of a_j ~ Unif(S^(d−1)) does not
see the order), so the units are b(a·x̃)₊.

Training: gradient descent with the steps of ``implicit_bias.py`` (mean-field time,
dw_j/dt = −∇_w F'(μ)(w_j), weights 1/m; each step doubled after an accepted one and halved
when the loss would rise) on the logistic loss with λ = 0, from the balanced start
a_j ~ Unif(S^(d−1)), b_j = ±1, to t = ``--t-end``; "output layer" moves only b_j (a_j frozen
at the start). Why growing steps: on separable data the loss falls like 1/t and the margin
grows like log t, so plain gradient descent with a fixed step (step 2 to t = 2000, 1000
steps) stops in the early phase, where the output layer has not yet
separated the training set (negative margins) and both layers are far from their margin;
with steps that grow like t each decade costs about the same number of steps. Measured on the
quick sizes (one seed): from t = 1e4 to 1e6 to 1e8 the test errors move by less than 0.003 and
both layers' margins by 10% (0.0212, 0.0224, 0.0233 at m = 128): the classifiers have
converged by t = 1e4 and the margin creeps up like log t, so t = 1e6 (the default) suffices.
A problem the output layer cannot separate (m < n features) ends at a finite loss: its steps
shrink to the floor and a run stops after ``implicit_bias.MAX_STEPS`` steps, reported with
the time it reached. Reported: the test error on ``--n-test`` fresh points
and the normalized margin min_i y_i h(x_i) / ((1/m) Σ_j |w_j|²), Chizat–Bach's
normalization (twice the F1 margin |ν+| + |ν−| of the lift for balanced neurons).

The PDE cannot live on S^14, so there is no PDE here (``implicit_bias.py`` has it on the circle and on the sphere mesh).

Run: ``.venv/bin/python benchmarks/implicit_bias_d15.py [--quick]``: two tables (error
against n at m = ``--m``; margin against m at n = ``--n``), then a JSON line.
"""

import argparse
import json
import time

import numpy as np
from implicit_bias import gradient_descent
from quick import resolve

from solver import tune_process
from solver.lift import ReluRegression, balanced_relu_init, relu_features, relu_inputs
from solver.problems import cluster_classification

KINDS = ("both layers", "output layer")


def train(kind, X, y, m, seed, t_end):
    """The problem, the neurons after gradient descent to ``t_end`` and the time reached."""
    problem = ReluRegression.from_data(X, y, bias=True, loss="logistic")
    theta0 = balanced_relu_init(m, problem.inputs.shape[1], np.random.default_rng(seed))
    saved, reached = gradient_descent(problem, theta0, [t_end], output_layer_only=kind == "output layer")
    return problem, saved[-1], reached


def predict(theta, x):
    """h(x) = (1/m) Σ_j b_j (a_j·x̃)₊."""
    return relu_features(theta[:, :-1], relu_inputs(x, True)) @ theta[:, -1] / len(theta)


def margin(problem, theta):
    """min_i y_i h(x_i) / ((1/m) Σ_j |w_j|²)."""
    return float(np.min(problem.targets * predict(theta, problem.inputs[:, :-1]))) / float(np.mean(np.sum(theta**2, 1)))


def seed_average(kind, n, m, args, seeds, measure):
    """The mean over ``seeds`` of ``measure(problem, theta)`` after training ``kind`` on n points
    (drawn with the seed) with m neurons, and the least time reached (t_end unless a run stalled)."""
    values, reached = [], []
    for seed in range(seeds):
        X, y = cluster_classification(n, args.k, np.random.default_rng(1000 * seed + n), args.labels, args.d - 3)
        problem, theta, t = train(kind, X, y, m, seed, args.t_end)
        values.append(measure(problem, theta))
        reached.append(t)
    return float(np.mean(values)), min(reached)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="n up to 128, m up to 128, t to 1e4, one seed")
    parser.add_argument("--d", type=int, default=15)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--m", type=int, default=None, help="neurons for the error against n (default 256; quick 64)")
    parser.add_argument("--n", type=int, default=None, help="points for the margin against m (default 256; quick 64)")
    parser.add_argument("--n-test", type=int, default=4000)
    parser.add_argument("--t-end", type=float, default=None, help="default 1e6; quick 1e4")
    parser.add_argument("--seeds", type=int, default=None, help="default 3; quick 1")
    parser.add_argument("--seed", type=int, default=0, help="the labelling of the clusters and the test points")
    args = parser.parse_args()
    tune_process()
    ns = (32, 64, 128) if args.quick else (32, 64, 128, 256, 512)
    ms = (8, 32, 128) if args.quick else (8, 16, 32, 64, 128, 256, 512, 1024)
    resolve(args, m=(64, 256), n=(64, 256), t_end=(1e4, 1e6), seeds=(1, 3))
    m_fixed, n_fixed, seeds = args.m, args.n, args.seeds

    rng = np.random.default_rng(args.seed)
    args.labels = rng.permutation(np.repeat([1.0, -1.0], [(args.k**2 + 1) // 2, args.k**2 // 2]))
    X_test, y_test = cluster_classification(args.n_test, args.k, rng, args.labels, args.d - 3)
    start = time.perf_counter()

    def test_error(problem, theta):
        return float(np.mean(np.sign(predict(theta, X_test)) != y_test))

    errors = {kind: [seed_average(kind, n, m_fixed, args, seeds, test_error) for n in ns] for kind in KINDS}
    margins = {kind: [seed_average(kind, n_fixed, m, args, seeds, margin) for m in ms] for kind in KINDS}

    print(f"implicit bias, d = {args.d}, {args.k}x{args.k} clusters, logistic loss, gradient descent with growing "
          f"steps to t = {args.t_end:g}, {seeds} seed(s), {time.perf_counter() - start:.1f} s")
    print(f"test error against n (m = {m_fixed}, {args.n_test} test points; t reached when a run stalled)")
    print(f"{'n':>6} " + " ".join(f"{kind:>13}" for kind in KINDS))
    for i, n in enumerate(ns):
        print(f"{n:6d} " + " ".join(f"{errors[kind][i][0]:13.4f}" + stalled(errors[kind][i][1], args.t_end)
                                    for kind in KINDS))
    print(f"normalized margin against m (n = {n_fixed})")
    print(f"{'m':>6} " + " ".join(f"{kind:>13}" for kind in KINDS))
    for i, m in enumerate(ms):
        print(f"{m:6d} " + " ".join(f"{margins[kind][i][0]:13.5f}" + stalled(margins[kind][i][1], args.t_end)
                                    for kind in KINDS))
    print(json.dumps({"benchmark": "implicit_bias_d15", "quick": args.quick, "d": args.d, "k": args.k,
                      "t_end": args.t_end, "seeds": seeds,
                      "test_error": {kind: {str(n): e[0] for n, e in zip(ns, errors[kind])} for kind in KINDS},
                      "margin": {kind: {str(m): g[0] for m, g in zip(ms, margins[kind])} for kind in KINDS},
                      "stalled": sum(value[1] < args.t_end for kind in KINDS
                                     for value in errors[kind] + margins[kind])}))


def stalled(reached, t_end):
    """`` (t = …)`` after a value whose slowest run stalled before ``t_end``."""
    return f" (t = {reached:.3g})" if reached < t_end else ""


if __name__ == "__main__":
    main()
