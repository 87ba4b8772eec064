"""The vectorizing elementwise functions of solver.kernels.fastmath: accuracy in ulp against
extended precision (np.longdouble, 64-bit significand on x86-64) and against their NumPy
references over the whole float64 range, NaN and inf propagation, signed zeros, and the
vectorization of a loop that calls them (its optimized LLVM IR)."""

import re

import numpy as np
import pytest
from numba import njit
from numba.core import config

from solver.kernels import fastmath

EDGES = np.array([
    0.0, -0.0, np.inf, -np.inf, np.nan, 710.0, -710.0, 709.782712893384, 709.7827128933841, 709.78, -708.4,
    -708.39, -745.1332191019411, -745.14, -745.0, -746.0, 746.0, 5e-324, -5e-324, 1e-310, -1e-310,
    2.2250738585072014e-308, 1e-300, 1e-20, -1e-20, 1e-8, 0.34657359027997264, -0.34657359027997264,
    0.6931471805599453, 19.06, -19.06, 20.0, -20.0, 40.0, 36.7, -36.7, 1.7976931348623157e308,
    -1.7976931348623157e308, 0.41421356237309503, np.log(np.sqrt(2) - 1), -np.log(np.sqrt(2) - 1)])

# (function, NumPy reference, extended-precision truth, ulp bound, where the NumPy reference is itself accurate)
FUNCTIONS = {
    "exp": (fastmath.exp, fastmath.exp_reference, np.exp, 1.0, None),
    "tanh": (fastmath.tanh, fastmath.tanh_reference, np.tanh, 3.0, None),
    # what the network kernels call, on doubled pre-activations
    "tanh_half": (fastmath.tanh_half, lambda v: fastmath.tanh_reference(v / 2), lambda v: np.tanh(v / 2), 3.0, None),
    # SciPy's expit is 1/(1 + e^(−x)): it flushes to 0 below −709.78 where σ(x) ≈ e^x is subnormal
    "sigmoid": (fastmath.sigmoid, fastmath.sigmoid_reference,
                lambda v: np.where(v >= 0, 1 / (1 + np.exp(-v)), np.exp(v) / (1 + np.exp(v))), 2.5, -708.0),
    "softplus": (fastmath.softplus, fastmath.softplus_reference, lambda v: np.logaddexp(np.longdouble(0), v),
                 2.0, None),
}


def on_array(function):
    """A compiled loop out[i] = function(x[i])."""
    @njit
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = function(x[i])
        return out
    return apply


def inputs(rng, size=200_000):
    """Random inputs over the whole range (uniform on [−750, 750], [−40, 40] and [−1, 1],
    and log-uniform magnitudes from the subnormals to 10³ with random signs), then the edges."""
    magnitudes = 10.0 ** rng.uniform(-324, 3, size)
    return np.concatenate([rng.uniform(-750, 750, size), rng.uniform(-40, 40, size), rng.uniform(-1, 1, size),
                           np.where(rng.random(size) < 0.5, -magnitudes, magnitudes), EDGES])


def ulp_error(values, truth):
    """|values − truth| in units of the spacing of float64 at truth (2⁻¹⁰⁷⁴ for subnormals, inf at
    DBL_MAX)."""
    with np.errstate(over="ignore"):  # the spacing at DBL_MAX is inf
        spacing = np.spacing(np.abs(truth.astype(np.float64))).astype(np.longdouble)
    return np.asarray(np.abs(values.astype(np.longdouble) - truth) / spacing, dtype=np.float64)


@pytest.mark.skipif(np.finfo(np.longdouble).nmant < 63, reason="needs x87 extended precision for the truth")
@pytest.mark.parametrize("name", FUNCTIONS)
def test_accuracy_over_the_whole_range(rng, name):
    function, reference, truth_of, bound, reference_from = FUNCTIONS[name]
    x = inputs(rng)
    ours = on_array(function)(x)
    with np.errstate(all="ignore"):
        truth = truth_of(x.astype(np.longdouble))
        expected = reference(x)
        rounded = truth.astype(np.float64)
    assert np.array_equal(np.isnan(ours), np.isnan(x))  # NaN in, NaN out, and nowhere else
    special = ~np.isnan(x) & ~np.isfinite(rounded)
    np.testing.assert_array_equal(ours[special], rounded[special])  # ±inf where the value overflows
    finite = np.isfinite(rounded)
    assert ulp_error(ours[finite], truth[finite]).max() <= bound
    assert np.array_equal(np.signbit(ours[~np.isnan(x)]), np.signbit(rounded[~np.isnan(x)]))  # −0 stays −0
    # beside the NumPy reference: the bound plus the reference's own rounding
    accurate = finite if reference_from is None else finite & (x >= reference_from)
    assert ulp_error(ours[accurate], expected[accurate].astype(np.longdouble)).max() <= bound + 1


def test_exp_overflow_underflow_and_subnormals():
    exp = on_array(fastmath.exp)
    x = np.array([709.78, 709.79, 710.0, 1e300, np.inf, -745.0, -745.2, -746.0, -1e300, -np.inf, -740.0])
    values = exp(x)
    assert np.isfinite(values[0]) and np.all(values[1:5] == np.inf)
    assert values[5] == 5e-324 and np.all(values[6:10] == 0.0)  # gradual underflow, then 0
    assert 0 < values[10] < np.finfo(float).tiny  # a subnormal
    np.testing.assert_array_equal(values[10], np.exp(-740.0))


def test_limits_of_tanh_sigmoid_softplus():
    x = np.array([np.inf, -np.inf, 800.0, -800.0, 5e-324, -5e-324])
    np.testing.assert_array_equal(on_array(fastmath.tanh)(x), [1.0, -1.0, 1.0, -1.0, 5e-324, -5e-324])
    np.testing.assert_array_equal(on_array(fastmath.sigmoid)(x), [1.0, 0.0, 1.0, 0.0, 0.5, 0.5])
    np.testing.assert_array_equal(on_array(fastmath.softplus)(x)[:4], [np.inf, 0.0, 800.0, 0.0])
    assert on_array(fastmath.sigmoid)(np.array([-740.0]))[0] == np.exp(-740.0)  # e^x, subnormal, not 0


@pytest.mark.parametrize("name", FUNCTIONS)
def test_loop_vectorizes(name):
    """A loop over an array that calls the function compiles to vector instructions and
    calls no scalar libm function (the point of the module)."""
    apply = on_array(FUNCTIONS[name][0])
    apply(np.zeros(4))
    llvm = apply.inspect_llvm(apply.signatures[0])
    assert re.search(r"<(2|4|8) x double>", llvm)
    assert not re.search(r"call [^\n]*@(exp|tanh|log1p|log|expm1)\(", llvm)
    if "-prefer-256-bit" in (config.CPU_FEATURES or ""):  # set by `import solver` on AVX-512 CPUs
        assert "<8 x double>" in llvm and "zmm" in apply.inspect_asm(apply.signatures[0])
