# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # Exact solutions of displacement-convex flows, and the grid solver against them
#
# Four Wasserstein gradient flows ∂tρ = ∇·(ρ∇F'(ρ)) whose solutions are known in closed
# form (`solver.analytic`; derivations in its docstrings):
#
# 1. porous medium F = ∫ρ²: the Barenblatt profile;
# 2. Fokker–Planck F = ∫Vρ + τ∫ρ log ρ with V = ½(x−b)ᵀA(x−b): Gaussians stay Gaussian
#    (Ornstein–Uhlenbeck);
# 3. quadratic interaction plus entropy F = ½∫∫|x−y|²/2 ρρ + τ∫ρ log ρ: the same, with
#    A = I and b the (conserved) centre of mass;
# 4. confined porous medium F = ∫ρ² + ∫ρ|x|²/2: exponential decay to a steady state,
#    F(ρ(t)) − F(ρ∞) ∝ e^(−2t).
#
# The first three are solved on 32², 64² and 128² cells (24² and 48² with `SOLVER_QUICK=1`,
# set by the test suite): the L1 error against the exact cell averages falls at the
# observed order printed; the fourth runs on the finest grid.

# %%
import os
from functools import partial

import matplotlib.pyplot as plt
import numpy as np

from solver import Entropy, Grid, Interaction, PorousMedium, Potential, solve
from solver.analytic import barenblatt, confined_steady_state, gaussian, ornstein_uhlenbeck

quick = bool(os.environ.get("SOLVER_QUICK"))
CELLS = (24, 48) if quick else (32, 64, 128)


def l1_errors(energy, exact, bounds, t_span):
    """L1 errors at t_span[1], one per grid of CELLS, and the finest solution."""
    errors = []
    for n in CELLS:
        grid = Grid(bounds, n)
        solution = solve(energy, grid, grid.cell_averages(partial(exact, t=t_span[0])), t_span)
        errors.append(grid.integrate(np.abs(solution.rho[-1] - grid.cell_averages(partial(exact, t=t_span[1])))))
    return np.array(errors), grid, solution


def order(errors):
    """Observed order: the slope of log error against log h."""
    return -np.polyfit(np.log(CELLS), np.log(errors), 1)[0]


# %% [markdown]
# ## 1. Barenblatt: ∂tρ = Δρ², 2D, from t = 1 to 2
#
# ρ(x, t) = t^(−α)(C − k|x|² t^(−2α/d))₊^(1/(m−1)), α = d/(d(m−1)+2), k = α(m−1)/(2md).
# Its free boundary is only Lipschitz, which holds the order between 1 and 2.

# %%
exact = partial(barenblatt, m=2, C=0.1)
errors, grid, solution = l1_errors(PorousMedium(2), exact, [(-2, 2)] * 2, (1.0, 2.0))
print("Barenblatt L1 errors:", errors, "order", round(order(errors), 2))
assert np.all(np.diff(errors) < 0) and order(errors) > 1

fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), constrained_layout=True)
middle = grid.shape[1] // 2
axes[0].plot(grid.axes[0], solution.rho[-1][:, middle], "o", ms=3, label="grid solver, t = 2")
axes[0].plot(grid.axes[0], grid.cell_averages(partial(exact, t=2.0))[:, middle], "k-", label="exact")
axes[0].set(xlabel="x₁ (x₂ ≈ 0)", title="Barenblatt profile")
axes[0].legend()
axes[1].loglog(CELLS, errors, "o-")
axes[1].set(xlabel="cells per axis", ylabel="L1 error", title="error against the grid")

# %% [markdown]
# ## 2. Fokker–Planck with an anisotropic potential (Ornstein–Uhlenbeck)
#
# mean(t) = b + e^(−At)(mean0 − b), Σ(t) = e^(−At)Σ0e^(−At) + τA⁻¹(I − e^(−2At)). Smooth,
# so the second-order scheme shows order about 2.

# %%
A, b, tau = np.array([[1.5, 0.5], [0.5, 1.0]]), np.array([0.3, -0.2]), 1.0
mean0, cov0 = np.array([-0.5, 0.5]), np.array([[0.6, 0.2], [0.2, 0.8]])


def fokker_planck(x, t):
    return gaussian(x, *ornstein_uhlenbeck(t, A, b, tau, mean0, cov0))


energy = Potential(lambda x: 0.5 * np.einsum("...i,ij,...j->...", x - b, A, x - b)) + Entropy(tau)
errors, grid, solution = l1_errors(energy, fokker_planck, [(-5, 5)] * 2, (0.0, 0.5))
print("Fokker–Planck L1 errors:", errors, "order", round(order(errors), 2))
assert order(errors) > 1.7

# %% [markdown]
# ## 3. Quadratic interaction plus entropy
#
# ∇(W∗ρ) = x − x̄ for W = |z|²/2 and unit mass: case 2 with A = I and b = x̄, which
# the flow keeps fixed.

# %%
mean0 = np.array([0.5, -0.3])


def interaction(x, t):
    return gaussian(x, *ornstein_uhlenbeck(t, np.eye(2), mean0, tau, mean0, cov0))


energy = Interaction(lambda z: 0.5 * np.sum(z**2, axis=-1)) + Entropy(tau)
errors, grid, solution = l1_errors(energy, interaction, [(-5, 5)] * 2, (0.0, 0.5))
centre = np.einsum("ab,abi->i", solution.rho[-1], grid.points) * grid.cell_volume
print("interaction L1 errors:", errors, "order", round(order(errors), 2), "centre of mass at t = 0.5:", centre)
assert order(errors) > 1.7 and np.allclose(centre, mean0, atol=1e-3)

# %% [markdown]
# ## 4. Confined porous medium: exponential decay to ρ∞
#
# ρ∞(x) = ((m−1)/m · (C − |x|²/2))₊^(1/(m−1)), C fixed by the mass (here by the discrete
# mass, which makes it the scheme's own steady state). The relative energy decays like
# e^(−2t) (Carrillo–McCann–Villani 2003).

# %%
grid = Grid([(-4, 4)] * 2, CELLS[-1])
rho0 = grid.cell_averages(lambda x: np.exp(-np.sum((x - [0.7, -0.4]) ** 2, axis=-1) / 0.5))
energy = PorousMedium(2) + Potential(lambda x: 0.5 * np.sum(x**2, axis=-1))
steady = confined_steady_state(grid.points, 2, grid.integrate(rho0), grid.weights)
times = np.linspace(0, 5, 51)
solution = solve(energy, grid, rho0, (0, 5), save_at=times)
gap = np.array([energy.value(rho, grid) for rho in solution.rho]) - energy.value(steady, grid)
late = (times >= 2) & (times <= 4.5)
rate = -np.polyfit(times[late], np.log(gap[late]), 1)[0]
print(f"fitted decay rate of F(ρ(t)) − F(ρ∞): {rate:.3f} (predicted 2)")
assert abs(rate - 2) < 0.2

fig, ax = plt.subplots(figsize=(5, 3.5), constrained_layout=True)
ax.semilogy(times, gap, label="F(ρ(t)) − F(ρ∞)")
ax.semilogy(times, gap[20] * np.exp(-2 * (times - times[20])), "k--", label="e^(−2t)")
ax.set(xlabel="t", title="confined porous medium")
ax.legend()
