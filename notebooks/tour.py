# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # A tour of `solver`: the porous-medium equation against its exact solution
#
# The porous-medium equation ∂tρ = Δ(ρ²) is the Wasserstein gradient flow of
# F(ρ) = ∫ρ². From a Barenblatt profile it stays a Barenblatt profile, so the grid
# solver can be checked against the exact answer. `SOLVER_QUICK=1` (set by the test
# suite) makes the grid small.

# %%
import os
from functools import partial

import matplotlib.pyplot as plt
import numpy as np

from solver import Grid, PorousMedium, solve
from solver.analytic import barenblatt

cells = 32 if os.environ.get("SOLVER_QUICK") else 128
grid = Grid([(-2, 2), (-2, 2)], cells)
exact = partial(barenblatt, m=2, C=0.1)
solution = solve(PorousMedium(2), grid, grid.cell_averages(partial(exact, t=1.0)), (1, 4), save_at=[1, 2, 3, 4])
print(solution.accepted, "steps;", solution.invariants())

# %% [markdown]
# Snapshots, and the L1 error against the exact cell averages.

# %%
fig, axes = plt.subplots(1, 4, figsize=(14, 3.4), constrained_layout=True)
for ax, t, rho in zip(axes, solution.t, solution.rho):
    image = ax.imshow(rho.T, origin="lower", extent=grid.bounds.ravel(), cmap="viridis")
    ax.set_title(f"t = {t:g}")
    fig.colorbar(image, ax=ax, shrink=0.8)
fig.suptitle(f"Porous medium ∂tρ = Δρ², Barenblatt start, {cells}² cells")
errors = [grid.integrate(np.abs(rho - grid.cell_averages(partial(exact, t=t))))
          for t, rho in zip(solution.t, solution.rho)]
print("L1 errors:", np.array(errors))
assert errors[-1] < (2e-3 if cells == 32 else 1e-4)
if not os.environ.get("SOLVER_QUICK"):
    fig.savefig(os.path.join(os.path.dirname(os.path.abspath(__file__)), "figures", "barenblatt.png"), dpi=110)
