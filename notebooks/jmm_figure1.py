# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Bump networks: SGD, the fixed-δ PDE and the porous-medium limit (Javanmard–Mondelli–Montanari, Figure 1)
#
# N bumps of width δ fit a concave density f on Ω = [−1, 1]: f̂(x) = (1/N) Σ K^δ(x − wᵢ).
# As N → ∞, SGD on the centres wᵢ follows the Wasserstein gradient flow of
# F_δ(ρ) = ½ E_x[(f − K^δ∗ρ)²]; as δ → 0 that flow becomes the porous-medium equation with
# drift ∂tρ = (1/|Ω|) ∇·(ρ∇(ρ − f)), which is displacement convex and converges
# exponentially. `SOLVER_QUICK=1` (set by the test suite) runs one δ with a few neurons
# and writes to a temporary folder instead of `figures/jmm`
# (`benchmarks/jmm_figure1.py` writes the README's copies).

# %%
import os
import tempfile
from pathlib import Path

import numpy as np

from solver import Grid, jmm, problems

quick = bool(os.environ.get("SOLVER_QUICK"))
here = Path(globals().get("__file__", "notebooks/jmm_figure1.py")).resolve().parent
out = Path(tempfile.mkdtemp()) if quick else here / "figures" / "jmm"

# %% [markdown]
# The three flows for δ = 1/5, 1/10, 1/20, N = 200, five SGD seeds (quick: δ = 1/5,
# N = 50, one seed, to t = 1). SGD uses mini-batches with ε/B small enough that its own
# noise is negligible (see `solver.jmm.sgd_settings`).

# %%
if quick:
    result = jmm.figure1(deltas=(1 / 5,), n_neurons=50, seeds=(0,), cells=100, horizon=1.0,
                         snapshot_times=(0.5, 1.0), out=out)
else:
    result = jmm.figure1(out=out)
for delta, run in result["runs"].items():
    print(f"δ = {delta:g}: ε = {run['step']:.3g}, batch {run['batch']}; normalized risk at t = 1: "
          f"SGD {run['sgd'][20]:.4f}, fixed-δ PDE {run['pde'][20]:.4f}, limit {result['limit'][20]:.4f}")
    assert abs(run["sgd"][20] / run["pde"][20] - 1) < 0.3  # SGD follows the fixed-δ PDE
    assert run["pde"][20] > result["limit"][20]  # the limit fits faster than any δ > 0

# %% [markdown]
# ![Figure 1](figures/jmm/jmm_figure1.png)
#
# The limit's late-time decay against the prediction: linearizing around the minimizer
# ρ* = f gives ∂t u = (1/|Ω|) ∇·(f∇u), so the risk decays like e^(−2λ₁t) with λ₁ the
# smallest non-zero eigenvalue of that weighted Neumann operator. By t = 3 faster modes
# still contribute, so the measured rate is a little higher; `tests/test_bump.py` runs
# the limit to t = 9 and matches the prediction within 5%.

# %%
limit = problems.jmm_bumps(delta=0, cells=100)
predicted = limit.energy.decay_rate(Grid([(-1, 1)], 2000))
t, risk = result["t"], result["limit"]
late = t >= t[-1] / 2
measured = -np.polyfit(t[late], np.log(risk[late]), 1)[0]
print(f"risk decay rate: predicted 2λ₁ = {predicted:.4f}, measured on t ∈ [{t[late][0]:g}, {t[-1]:g}] = {measured:.4f}")
