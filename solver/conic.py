"""Conic particle gradient descent on measures in two species (sphere, torus).

Chizat, "Sparse optimization on measures with over-parameterized gradient descent",
Math. Program. 2022 (its code: lchizat/2019-sparse-optim-measures).

A measure in two species, ν = Σ_j m_j δ_(s_j) with signs ε_j, on a manifold (the sphere of
:class:`solver.lift.SphereMeasure`, the torus of
:class:`solver.energies.deconvolution.TorusMeasure`), and an energy F(ν) whose first
variation at atom j is F'_j = F'_(ε_j)(s_j): for balanced ReLU units
(:class:`solver.lift.ReluRegression`) F(ν) = R(h) + λ'Σ_j m_j, λ' = 2λ, F'_j = ε_j G(s_j) + λ';
for sparse deconvolution (:class:`solver.energies.deconvolution.SpikeDeconvolution`)
F(ν) = ½|Φν − y|² + λΣ_j m_j, F'_j = ε_j Φ*(Φν − y)(s_j) + λ. One iteration of step η
moves every atom from the same ν_k:

    m_j ← m_j exp(−α η F'_j),                    (mirror retraction of the masses)
    s_j ← retract(s_j − β η ∇F'_j),              (s/|s| on the sphere, mod 2π on the torus)

the forward discretization of the Wasserstein–Fisher–Rao flow
∂tν± = β∇·(ν±∇F'±) − α F'± ν±. Chizat's code (lchizat/2019-sparse-optim-measures,
``PGD_2D``) writes the masses as r_j² and updates r_j ← r_j exp(−2α_C η F'_j),
s_j ← s_j − β_C η ∇F'_j, i.e. α = 4α_C, β = β_C here. With α = 2, β = 1 (the defaults
for ReLU units) the η → 0 limit for ReLU units is the lifted flow of plain gradient descent in w
(:func:`solver.lift.lifted_flow`); for deconvolution his α_C = β_C is α = 4, β = 1, the
PDE of :class:`~solver.energies.deconvolution.SpikeDeconvolution` (reaction 4). Iteration
k is the flow's time t = kη (the PDE's clock, as in :func:`solver.particles.simulate`). The masses
stay positive (an exact exponential factor); a zero mass stays zero, so the start must put
mass in every region.

The energy (``problem``) supplies ``lifted_energy(measure)``, ``conic_gradient(measure)``
→ (F'_j, ∇F'_j) and ``retract(points)``; the measure supplies ``points``, ``masses``,
``signs`` and ``moved(points, masses)``.
"""

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class ConicRun:
    """The result of :func:`conic_gradient_descent`.

    Attributes
    ----------
    measure : SphereMeasure or TorusMeasure
        ν after the last iteration.
    energies : array (iterations + 1,)
        F(ν_k) for k = 0 … iterations.
    """

    measure: object
    energies: np.ndarray


def conic_gradient_descent(problem, measure, step, iterations, reaction=None, transport=1.0):
    """Run conic particle gradient descent on the lifted energy of ``problem``.

    Parameters
    ----------
    problem : solver.lift.ReluRegression or solver.energies.deconvolution.SpikeDeconvolution
        Supplies the energy, F'_j with its gradient, and the retraction (module docstring).
    measure : SphereMeasure or TorusMeasure
        The start, with species (for ReLU units a balanced lift); masses ≥ 0.
    step : float
        η > 0.
    iterations : int
    reaction : float, optional
        α ≥ 0 of the module docstring; by default the problem's own ``problem.reaction``
        (2 for ReLU units, the lift of plain gradient descent; 4 for deconvolution).
    transport : float
        β ≥ 0 of the module docstring (default 1).
        transport = 0 is multiplicative-weights descent on the fixed directions (the
        Fisher–Rao part alone), a method for the convex problem of
        :func:`solver.convex.convex_minimum`.

    Returns
    -------
    ConicRun
    """
    if reaction is None:
        reaction = problem.reaction
    if measure.signs is None:
        raise ValueError("conic_gradient_descent: needs a measure with species (lift(..., balanced=True))")
    if np.any(measure.masses < 0):
        j = int(np.argmin(measure.masses))
        raise ValueError(f"conic_gradient_descent: a negative mass: masses[{j}] = {measure.masses[j]:g}")
    if not step > 0 or reaction < 0 or transport < 0:
        raise ValueError(f"conic_gradient_descent: need step > 0, reaction >= 0, transport >= 0; got {step}, "
                         f"{reaction}, {transport}")
    points, masses = measure.points.copy(), measure.masses.copy()
    energies = np.empty(iterations + 1)
    for k in range(iterations + 1):
        current = measure.moved(points, masses)
        with np.errstate(over="ignore", invalid="ignore"):
            energies[k] = problem.lifted_energy(current)
        if not np.isfinite(energies[k]):
            raise ValueError(f"conic_gradient_descent: the energy diverged at iteration {k} (F = {energies[k]}): "
                             f"the step η = {step:g} is too large")
        if k == iterations:
            break
        xi, gradient = problem.conic_gradient(current)
        exponent = -reaction * step * xi
        if np.max(exponent) > 700:
            raise ValueError(f"conic_gradient_descent: at iteration {k} the mass factor exp(−αηF') overflows "
                             f"(max −αηF' = {np.max(exponent):.3g}): the step η = {step:g} is too large")
        masses = masses * np.exp(exponent)
        points = problem.retract(points - transport * step * gradient)
    return ConicRun(measure.moved(points, masses), energies)
