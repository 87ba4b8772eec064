"""The RKL2 stage update of :class:`solver.fv.SuperStep` in one pass over the cells.

    Y_j = μ Y_(j−1) + ν Y_(j−2) + (1 − μ − ν) Y₀ + a L(Y_(j−1)) + b L(Y₀),

with a = μ̃_j dt and b = γ̃_j dt. NumPy makes a temporary array per term; the kernel
writes Y_j into ``out`` and returns its minimum (the positivity check).
:func:`rkl2_stage_reference` is the NumPy version it is tested against. ``fastmath``
is off: each cell's value is computed as in the reference, in the same order.
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def rkl2_stage(current, previous, start, current_rate, start_rate, mu, nu, a, b, out):
    """out = μ current + ν previous + (1 − μ − ν) start + a current_rate + b start_rate
    (flat arrays); returns min(out)."""
    lowest = np.inf
    for k in prange(out.size):
        value = mu * current[k] + nu * previous[k] + (1.0 - mu - nu) * start[k] + a * current_rate[k] + b * start_rate[k]
        out[k] = value
        lowest = min(lowest, value)
    return lowest


def rkl2_stage_reference(current, previous, start, current_rate, start_rate, mu, nu, a, b, out):
    """NumPy version of :func:`rkl2_stage`."""
    out[:] = mu * current + nu * previous + (1.0 - mu - nu) * start + a * current_rate + b * start_rate
    return out.min()
