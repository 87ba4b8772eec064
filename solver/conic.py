"""Conic particle gradient descent on measures on the sphere.

Chizat, "Sparse optimization on measures with over-parameterized gradient descent",
Math. Program. 2022 (seed 003).

A measure on the sphere in two species, ν = Σ_j m_j δ_(s_j) with signs ε_j
(:class:`solver.lift.SphereMeasure`), and the lifted energy of balanced ReLU units
F(ν) = R(h) + λ'Σ_j m_j, λ' = 2λ (:class:`solver.lift.ReluRegression`), whose first
variation at atom j is F'_j = ε_j G(s_j) + λ'. One iteration of step η moves every atom
from the same ν_k:

    m_j ← m_j exp(−α η F'_j),                    (mirror retraction of the masses)
    s_j ← (s_j − β η ε_j ∇_S G(s_j)) / |…|,       (normalization retracts onto the sphere)

the forward discretization of the Wasserstein–Fisher–Rao flow
∂tν± = β∇_S·(ν±∇_S F'±) − α F'± ν±. Chizat's code (lchizat/2019-sparse-optim-measures,
``PGD_2D``) writes the masses as r_j² and updates r_j ← r_j exp(−2α_C η F'_j),
s_j ← s_j − β_C η ∇F'_j, i.e. α = 4α_C, β = β_C here. With α = 2, β = 1 (the defaults)
the η → 0 limit is the lifted flow of plain gradient descent in w
(:func:`solver.lift.lifted_flow`). The masses stay positive (an exact exponential
factor); a zero mass stays zero, so the start must put mass in every region.
"""

import dataclasses

import numpy as np

from .lift import SphereMeasure, first_variation


@dataclasses.dataclass(frozen=True)
class ConicRun:
    """The result of :func:`conic_gradient_descent`.

    Attributes
    ----------
    measure : SphereMeasure
        ν after the last iteration.
    energies : array (iterations + 1,)
        F(ν_k) for k = 0 … iterations.
    """

    measure: SphereMeasure
    energies: np.ndarray


def conic_gradient_descent(problem, measure, step, iterations, reaction=2.0, transport=1.0):
    """Run conic particle gradient descent on the lifted energy of ``problem``.

    Parameters
    ----------
    problem : solver.lift.ReluRegression
        Supplies R, λ' = 2λ and the inputs.
    measure : SphereMeasure
        The start, with species (a balanced lift); masses ≥ 0.
    step : float
        η > 0.
    iterations : int
    reaction, transport : float
        α, β ≥ 0 of the module docstring (defaults: the lift of plain gradient descent).
        transport = 0 is multiplicative-weights descent on the fixed directions (the
        Fisher–Rao part alone), a method for the convex problem of
        :func:`solver.convex.convex_minimum`.

    Returns
    -------
    ConicRun
    """
    if measure.signs is None:
        raise ValueError("conic_gradient_descent: needs a measure with species (lift(..., balanced=True))")
    if np.any(measure.masses < 0):
        j = int(np.argmin(measure.masses))
        raise ValueError(f"conic_gradient_descent: a negative mass: masses[{j}] = {measure.masses[j]:g}")
    if not step > 0 or reaction < 0 or transport < 0:
        raise ValueError(f"conic_gradient_descent: need step > 0, reaction >= 0, transport >= 0; got {step}, "
                         f"{reaction}, {transport}")
    directions, masses, signs = measure.directions.copy(), measure.masses.copy(), measure.signs
    energies = np.empty(iterations + 1)
    for k in range(iterations + 1):
        with np.errstate(over="ignore", invalid="ignore"):
            h = SphereMeasure(directions, masses, signs).prediction(problem.inputs)
            energies[k] = problem.risk(h) + problem.penalty * float(np.sum(masses))
        if not np.isfinite(energies[k]):
            raise ValueError(f"conic_gradient_descent: the energy diverged at iteration {k} (F = {energies[k]}): "
                             f"the step η = {step:g} is too large")
        if k == iterations:
            break
        G, tangential = first_variation(directions, problem.coefficients(h), problem.inputs)
        exponent = -reaction * step * (signs * G + problem.penalty)
        if np.max(exponent) > 700:
            raise ValueError(f"conic_gradient_descent: at iteration {k} the mass factor exp(−αηF') overflows "
                             f"(max −αηF' = {np.max(exponent):.3g}): the step η = {step:g} is too large")
        masses = masses * np.exp(exponent)
        directions = directions - transport * step * signs[:, None] * tangential
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    return ConicRun(SphereMeasure(directions, masses, signs), energies)
