# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # A two-layer ReLU network: the mean-field PDE against gradient descent on m neurons
#
# Problem (c) of `solver.problems`: neurons θ = (a₁, a₀, c) ∈ R³ compute c·(a₁x + a₀)₊ on
# scalar inputs, a teacher of m0 = 5 neurons makes the labels, and the student starts
# with mass in every direction. Chizat–Bach: the Wasserstein gradient flow of the risk
# then reaches the global minimum, and gradient descent on a few times m0 neurons
# follows it. `SOLVER_QUICK=1` (set by the test suite) shortens the run and writes to a
# temporary folder instead of `figures/`.

# %%
import os
import tempfile
from pathlib import Path

import numpy as np

from solver import problems
from solver.compare import study

quick = bool(os.environ.get("SOLVER_QUICK"))
problem = problems.get("relu-teacher", cells=12 if quick else 24)
t_end = 4.0 if quick else problem.t_end
here = Path(globals().get("__file__", "notebooks/network_pde_vs_particles.py")).resolve().parent
out = Path(tempfile.mkdtemp()) if quick else here / "figures" / "relu_teacher"

# %% [markdown]
# The PDE once, and gradient descent (step 0.05, the same clock) for m = 25, 100 and
# 1000 neurons, three seeds each; W2 is sliced (the grid is 3D).

# %%
ms, seeds = ((25, 100), (0,)) if quick else ((25, 100, 1000), (0, 1, 2))
result = study(problem, ms=ms, times=np.linspace(0, t_end, 9), seeds=seeds, step=0.05, out=out)
print((out / "study.md").read_text())
risk = result["pde_energy"]
print("PDE risk relative to its start:", np.round(risk / risk[0], 3))
assert np.all(np.diff(risk) < 0)
