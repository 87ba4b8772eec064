"""Full-batch gradient descent on m neurons: ``solver.particles.simulate`` against PyTorch.

Both run the same mean-field gradient descent, from the same start, on the same data, for
the same steps: the square loss R(θ) = (1/2n) Σ_i (h(x_i) − y_i)², h = (1/m) Σ_j Φ(θ_j, x),
and θ_j ← θ_j − ε m ∇_θj R (ours: θ_j + ε v_j with v_j = −∇θF'(μ_m)(θ_j), the same step).
PyTorch is written the way users write it: CPU, float64, autograd, both threads,

    h = torch.tanh(X @ W.T).mean(1); loss = 0.5 * ((h - y)**2).mean(); loss.backward()
    with torch.no_grad(): W -= lr * m * W.grad; W.grad = None

(ReLU: ``(torch.relu(X @ A.T + b) * c).mean(1)``). Features: fixed-output tanh units
σ(w·x), w ∈ R² (the ``tanh-teacher`` preset's), and ReLU units c (a·x + b)₊ with bias and
output weight, θ ∈ R⁴; x ~ N(0, I₂), labels from a 3-neuron teacher of the same kind.
m ∈ {10³, 10⁴, 10⁵}, n ∈ {10³, 10⁴}, ε = 0.01; ``--steps`` steps (100) where
m n ≤ 2·10⁷, fewer beyond (so that m n × steps ≤ 2·10⁹, at least 10). Both trajectories
are saved at five step counts and compared (max |Δθ|). PyTorch keeps m × n matrices (the
pre-activations, the activations and their gradients): cases where four of them would
pass ``--torch-memory`` GB are run for ours only.

PyTorch is a peer, not a dependency: the benchmark uses it when it is importable (each
case in a child process, so that its thread pool and Numba's never share one) and says
so, timing ours only, when it is not. On these machines a CPU build for Python 3.11
lies in the local package cache: make an environment outside the repository with
``python3.11 -m venv ~/torchenv`` (any path), ``pip install torch==2.13.0`` (any other
request for torch downloads a CUDA build of several GB) and ``pip install -e .``, and run
the benchmark with that interpreter.

Run: ``python benchmarks/particles_vs_torch.py [--quick] [--repeats 3]``. Prints a table,
then a JSON line: ``speedup_vs_torch`` (torch's time over ours) for the largest case that
both ran, ``min_speedup`` over all cases, ``speedup_gate_case`` at m = 10⁴, n = 10³ (tanh),
and ``max_trajectory_difference``.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from quick import resolve

STEP = 0.01
TEACHERS = {  # rows θ* of the 3-neuron teachers
    "tanh": np.array([[2.0, 0.5], [-1.0, 1.5], [0.5, -2.0]]),  # the tanh-teacher preset's
    "relu": np.array([[1.0, 0.5, 0.2, 1.0], [-0.5, 1.0, -0.3, -1.0], [0.3, -1.0, 0.1, 1.0]]),
}


def case_data(units, m, n, seed=0):
    """(X, y, θ0): data x ~ N(0, I₂), teacher labels, and the start θ0 ~ N(0, 0.5² I)."""
    from solver import Feature
    from solver.energies.network import teacher_labels

    rng = np.random.default_rng(seed)
    feature = feature_of(Feature, units)
    X = rng.standard_normal((n, 2))
    y = teacher_labels(feature, TEACHERS[units], X)
    return X, y, 0.5 * rng.standard_normal((m, feature.dim))


def feature_of(Feature, units):
    return Feature.fixed_output("tanh", 2) if units == "tanh" else Feature.neuron("relu", 2, bias=True)


def steps_for(m, n, steps):
    """``steps`` where m n ≤ 2·10⁷, else 2·10⁹/(m n), at least 10."""
    return int(min(steps, max(10, 2e9 // (m * n))))


def save_steps(steps):
    """Five step counts from 0 to ``steps`` at which both trajectories are compared."""
    return np.unique(np.round(np.linspace(0, steps, 5)).astype(int))


def run_ours(units, X, y, theta0, saves):
    """(seconds, θ at the save steps) of ``solver.particles.simulate``."""
    from solver import Feature, NetworkRisk
    from solver.particles import simulate

    energy = NetworkRisk(feature_of(Feature, units), X, y)
    start = time.perf_counter()
    run = simulate(energy, theta0, (0.0, saves[-1] * STEP), step=STEP, save_at=saves * STEP, progress=False)
    return time.perf_counter() - start, run.theta


def run_torch(units, X, y, theta0, saves, threads):
    """(seconds, θ at the save steps) of the PyTorch loop (after a 2-step warm-up)."""
    import torch

    torch.set_num_threads(threads)
    X_t, y_t, m = torch.from_numpy(X), torch.from_numpy(y), len(theta0)

    def descend(theta, steps, snapshots=None):
        for k in range(steps + 1):
            if snapshots is not None and k in saves:
                snapshots.append(theta.detach().numpy().copy())
            if k == steps:
                return
            if units == "tanh":
                h = torch.tanh(X_t @ theta.T).mean(dim=1)
            else:
                h = (torch.relu(X_t @ theta[:, :2].T + theta[:, 2]) * theta[:, 3]).mean(dim=1)
            loss = 0.5 * ((h - y_t) ** 2).mean()
            loss.backward()
            with torch.no_grad():
                theta -= STEP * m * theta.grad
                theta.grad = None

    descend(torch.tensor(theta0, requires_grad=True), 2)
    theta, snapshots = torch.tensor(theta0, requires_grad=True), []
    start = time.perf_counter()
    descend(theta, int(saves[-1]), snapshots)
    return time.perf_counter() - start, np.array(snapshots)


def torch_worker(path):
    """Child process: read the case from ``path``, run the PyTorch loop, write the result back."""
    case = np.load(path)
    seconds, theta = run_torch(str(case["units"]), case["X"], case["y"], case["theta0"], case["saves"],
                               int(case["threads"]))
    np.savez(path, seconds=seconds, theta=theta)


def torch_in_child(units, X, y, theta0, saves, threads, repeats):
    """Median seconds and the trajectory of the PyTorch loop, each run in a fresh process."""
    times = []
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "case.npz")
        for _ in range(repeats):
            np.savez(path, units=units, X=X, y=y, theta0=theta0, saves=saves, threads=threads)
            subprocess.run([sys.executable, __file__, "--torch-worker", path], check=True)
            result = np.load(path)
            times.append(float(result["seconds"]))
            theta = result["theta"]
    return statistics.median(times), theta


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, help="steps where m n ≤ 2·10⁷ (default 100, quick 20)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="PyTorch's threads (Numba uses its own default)")
    parser.add_argument("--torch-memory", type=float, default=6.0, help="GB PyTorch's m × n matrices may take")
    parser.add_argument("--quick", action="store_true", help="m ∈ {10³, 10⁴}, n = 10³, 20 steps")
    parser.add_argument("--torch-worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.torch_worker:
        return torch_worker(args.torch_worker)
    from solver import tune_process

    tune_process()
    have_torch = importlib.util.find_spec("torch") is not None
    if have_torch:
        import torch

        peer = f"PyTorch {torch.__version__} (CPU, float64, autograd, {args.threads} threads)"
    else:
        peer = None
        print("PyTorch is not importable here: timing ours only (see the module docstring for a peer environment)")
    sizes = [(m, 1000) for m in (1000, 10000)] if args.quick else [
        (m, n) for n in (1000, 10000) for m in (1000, 10000, 100000)]
    resolve(args, steps=(20, 100))
    steps_cap = args.steps
    for units in TEACHERS:  # compile the kernels before timing
        run_ours(units, *case_data(units, 50, 40), save_steps(2))
    rows = []
    for units in TEACHERS:
        for m, n in sizes:
            X, y, theta0 = case_data(units, m, n)
            steps = steps_for(m, n, steps_cap)
            saves = save_steps(steps)
            runs = [run_ours(units, X, y, theta0, saves) for _ in range(args.repeats)]
            ours, theta = statistics.median(r[0] for r in runs), runs[0][1]
            row = {"units": units, "m": m, "n": n, "steps": steps, "ours_seconds": ours,
                   "ours_pairs_per_s": 2 * m * n * steps / ours, "torch_seconds": None, "speedup": None,
                   "max_difference": None}
            gigabytes = 4 * 8 * m * n / 1e9
            if have_torch and gigabytes <= args.torch_memory:
                seconds, theta_torch = torch_in_child(units, X, y, theta0, saves, args.threads, args.repeats)
                row.update(torch_seconds=seconds, speedup=seconds / ours,
                           max_difference=float(np.max(np.abs(theta - theta_torch))))
            elif have_torch:
                row["torch_skipped"] = f"needs about {gigabytes:.0f} GB"
            rows.append(row)
            print(f"done {units} m={m} n={n}: ours {ours:.3g} s, torch {row['torch_seconds']}", file=sys.stderr)
    print(f"Full-batch GD, ε = {STEP}, same data, start and steps; peer: {peer or 'none'}; "
          "pairs/s = 2 m n steps / seconds (a forward and a backward pass per step).")
    print("| units | m | n | steps | ours (s) | ours pairs/s | PyTorch (s) | PyTorch / ours | max |Δθ| |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        torch_cells = (f"{r['torch_seconds']:.3g} | {r['speedup']:.2f} | {r['max_difference']:.1e}"
                       if r["torch_seconds"] is not None else f"{r.get('torch_skipped', 'not run')} | | ")
        print(f"| {r['units']} | {r['m']} | {r['n']} | {r['steps']} | {r['ours_seconds']:.3g} | "
              f"{r['ours_pairs_per_s']:.3g} | {torch_cells} |")
    compared = [r for r in rows if r["speedup"] is not None]
    gate = [r["speedup"] for r in compared if (r["units"], r["m"], r["n"]) == ("tanh", 10000, 1000)]
    if compared:  # the README's targets
        slowest, apart = min(r["speedup"] for r in compared), max(r["max_difference"] for r in compared)
        verdict = lambda met: "met" if met else "NOT met"  # noqa: E731
        print(f"targets: the gate case (tanh, m = 10^4, n = 10^3) >= 5: "
              f"{verdict(gate[0] >= 5) + f' ({gate[0]:.2f})' if gate else 'not run'}; every case >= 1: "
              f"{verdict(slowest >= 1)} (min {slowest:.2f}); trajectories to 1e-12: {verdict(apart <= 1e-12)} "
              f"(max |Δθ| {apart:.1e})")
    largest = max(compared, key=lambda r: (r["m"] * r["n"], r["units"] == "tanh")) if compared else None
    print(json.dumps({
        "benchmark": "particles_vs_torch", "peer": peer, "quick": args.quick,
        "speedup_vs_torch": largest and largest["speedup"],
        "largest_case": largest and {k: largest[k] for k in ("units", "m", "n", "steps")},
        "min_speedup": min((r["speedup"] for r in compared), default=None),
        "speedup_gate_case": gate[0] if gate else None,
        "max_trajectory_difference": max((r["max_difference"] for r in compared), default=None),
        "rows": rows}))


if __name__ == "__main__":
    main()
