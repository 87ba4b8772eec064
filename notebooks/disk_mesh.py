# ---
# jupyter:
#   jupytext:
#     formats: py:percent
# ---

# %% [markdown]
# # The unit disk on a mesh: Barenblatt, and bump networks against SGD
#
# Parameter spaces are not always boxes. Here the mesh solver (`solver.fem`, DOLFINx)
# runs on gmsh meshes of the unit disk from `meshes/`:
#
# 1. the porous-medium equation ∂tρ = Δ(ρ²) from a Barenblatt profile, against the exact
#    solution at three refinements (the observed L1 order);
# 2. bump networks of width δ fitting the concave density f(x) = (2/π)(1 − |x|²) on the
#    disk (Javanmard–Mondelli–Montanari): the fixed-δ PDE on the mesh against SGD on N
#    bumps, projected after every step onto the mesh's domain.
#
# `SOLVER_QUICK=1` (set by the test suite) uses coarser meshes and fewer bumps. The
# meshes are made on demand by `meshes/generate.py`.

# %%
import os
import runpy
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from solver import PorousMedium, fem, solve
from solver.analytic import barenblatt
from solver.domains import Ball
from solver.energies import BumpRisk
from solver.particles import simulate

QUICK = bool(os.environ.get("SOLVER_QUICK"))
ROOT = Path(__file__).resolve().parent.parent if "__file__" in globals() else Path.cwd().parent
mesh_path = runpy.run_path(str(ROOT / "meshes" / "generate.py"))["path"]

# %% [markdown]
# ## 1. Barenblatt on the disk
#
# C = 0.02 keeps the support inside the disk up to t = 2, so the Barenblatt profile is
# the exact solution there. The error is Σ_i m_i |ρ_i − ρ(x_i)| with the lumped masses m_i.

# %%
levels = (1, 2) if QUICK else (1, 2, 3)
sizes, errors = [], []
for level in levels:
    disk = fem.read(mesh_path("disk", level))
    solution = solve(PorousMedium(2), disk, barenblatt(disk.points, 1.0, C=0.02), (1.0, 2.0))
    errors.append(disk.integrate(np.abs(solution.rho[-1] - barenblatt(disk.points, 2.0, C=0.02))))
    sizes.append(0.2 / 2**level)
    print(f"level {level}: {disk.vertices} vertices, {solution.accepted} steps, L1 error {errors[-1]:.2e}, "
          f"invariants {solution.invariants()}")
order = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
print(f"observed L1 order {order:.2f}")
assert order > 1.5

fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), constrained_layout=True)
art = disk.plot(solution.rho[-1], ax=axes[0], cmap="viridis")
fig.colorbar(art, ax=axes[0], shrink=0.8)
axes[0].set_title(f"ρ at t = 2 ({disk.vertices} vertices)")
axes[1].loglog(sizes, errors, "o-")
axes[1].set(xlabel="mesh size h", ylabel="L1 error at t = 2", title=f"observed order {order:.2f}")

# %% [markdown]
# ## 2. Bump networks on the disk: the fixed-δ PDE against projected SGD
#
# F_δ(ρ) = 1/(2|Ω|) ∫_Ω (f − K^δ∗ρ)², δ = 0.3, started uniform on a disk of radius 0.4
# around (0.2, 0). SGD takes a fresh mini-batch of 20 points x ~ Unif(Ω) each step of
# size ε = 2·10⁻³ (t = kε) and projects the bump centres onto the mesh's polygon.

# %%
disk = fem.read(mesh_path("disk", 2))
energy = BumpRisk(lambda x: 2 / np.pi * (1 - np.sum(x**2, axis=-1)), 0.3, Ball([0.0, 0.0], 1.0))
start = (np.sum((disk.points - [0.2, 0.0]) ** 2, axis=-1) < 0.16).astype(float)
times = [0, 0.25, 0.5, 1] if QUICK else [0, 0.25, 0.5, 1, 2]
pde = solve(energy, disk, start / disk.integrate(start), (0, times[-1]), save_at=times)
rng = np.random.default_rng(0)
bumps = 200 if QUICK else 1000
sgd = simulate(energy, [0.2, 0.0] + Ball([0.0, 0.0], 0.4).sample(rng, bumps), (0, times[-1]), step=2e-3,
               method="sgd", batch_size=20, domain=disk, save_at=times, rng=rng)
pde_risk = np.array([energy.value(rho, disk) for rho in pde.rho]) / energy.reference_risk
sgd_risk = np.array([energy.risk(theta, sgd.weights) for theta in sgd.theta]) / energy.reference_risk
for t, a, b in zip(times, pde_risk, sgd_risk):
    print(f"t = {t:<5g} normalized risk: PDE {a:.4f}, SGD (N = {bumps}) {b:.4f}")
assert np.all(np.diff(pde_risk) < 0) and np.all(disk.contains(sgd.theta[-1]))
assert np.allclose(sgd_risk, pde_risk, rtol=0.25)

fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), constrained_layout=True)
disk.plot(pde.rho[-1], ax=axes[0], cmap="viridis")
axes[0].plot(*sgd.theta[-1].T, ".", color="white", markersize=2)
axes[0].set_title(f"PDE density and SGD bumps at t = {times[-1]:g}")
axes[1].semilogy(times, pde_risk, "o-", label="PDE on the mesh")
axes[1].semilogy(times, sgd_risk, "s--", label=f"SGD, N = {bumps}")
axes[1].set(xlabel="t", ylabel="risk / risk of ρ = 0", title="normalized risk")
axes[1].legend()
