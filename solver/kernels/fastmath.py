r"""Elementwise functions that LLVM vectorizes: exp, tanh, sigmoid and softplus.

Numba turns ``math.exp`` into a call to libm's scalar ``exp`` (this Numba has no SVML), so
a loop that calls it runs one element at a time. The functions here are branch-free
arithmetic (selects, integer bit operations and a polynomial), so a ``for`` loop over
arrays that calls them vectorizes (``<8 x double>`` on AVX-512, ``<4 x double>`` on AVX2).
Each has a NumPy reference (``*_reference``) and is tested against it and against
extended-precision values over the whole float64 range (tests/test_fastmath.py).

**exp.** Range reduction x = k ln 2 + r, |r| ≤ ln 2 / 2 (a little more at ties):

- k = round(x / ln 2) by the shifter trick t = x log₂e + S, S = 1.5 · 2⁵², whose last
  bits are k (no float-to-integer conversion, which is undefined for NaN);
- r = (x − k L_hi) − k L_lo with ln 2 = L_hi + L_lo, L_hi of 32 significant bits
  (fdlibm's split): k L_hi is exact for |k| < 2²¹ and so is x − k L_hi (Sterbenz);
- e^r = 1 + (r + r² q(r)) with q the Taylor polynomial Σ_(j=2)^13 r^(j−2)/j!, whose
  truncation error r¹⁴/14! < 5e-18 is far below an ulp;
- 2^k = 2^⌊k/2⌋ · 2^(k − ⌊k/2⌋), each factor built in the exponent bits of a double, so
  that both are normal numbers for every k in [−1076, 1024]: e^x = e^r 2^⌊k/2⌋ 2^(k−⌊k/2⌋)
  then overflows to inf above log(DBL_MAX) ≈ 709.78 and rounds gradually through the
  subnormals (one rounding, in the last product) to 0 below log(2⁻¹⁰⁷⁵) ≈ −745.13.

x is first clamped to [−746, 710] (beyond those e^x is 0 or inf anyway) by comparisons
that let NaN through, so NaN propagates. Measured error: at most 1 ulp (normal results)
and 1 unit of 2⁻¹⁰⁷⁴ (subnormal results).

**tanh** x = tanh_half(2x), tanh_half(y) = tanh(y/2) = e/(e + 2) with e = expm1(y) =
2^k (e^r − 1) + (2^k − 1), y clamped to ±40 (tanh = ±1 in double beyond |x| ≈ 19.06): no
cancellation at small |y|, where e^r − 1 = r + r² q(r) keeps full relative accuracy
(tanh(x) = x for tiny x), nor for y < 0, where −1 < e ≤ 0 and 1 < e + 2 ≤ 2. 2^k is the
exponent field of the reduction's t itself (:data:`BIASED_SHIFT`: one shift), and the signs
are arranged so that ±0 gives ±0 without a copysign (see :func:`tanh_half`). The kernels
that evaluate tanh(a·x) call ``tanh_half`` on (2a)·x, which is 2(a·x) exactly.

**sigmoid** σ(x) = 1/(1 + e^(−x)) = n/(1 + z), z = e^(−|x|), n = 1 for x ≥ 0 and n = z
for x < 0: e^(−|x|) ≤ 1 never overflows, and σ(x) → e^x (subnormal included) as x → −∞.

**softplus** log(1 + e^x) = max(x, 0) + log1p(e^(−|x|)): log1p on [0, 1] as in fdlibm's
log, 1 + z = 2^j (1 + f) with j = 1 when z > √2 − 1 (f = (z − 1)/2, exact), else f = z,
then log(1 + f) = 2 atanh(s), s = f/(2 + f), |s| ≤ 0.1716, with fdlibm's minimax
polynomial R(s²) (coefficients Lg1–Lg7).

Bounds, which tests/test_fastmath.py holds them to against ``np.longdouble`` values on
8 million random inputs over the whole range and the edge values (largest errors seen:
0.99, 2.59, 2.25 and 1.66 ulp): exp 1 ulp, tanh (and tanh_half) 3 ulp (e^r − 1 loses a
bit to cancellation when k = 1), sigmoid 2.5 ulp, softplus 2 ulp.

``fastmath``: only ``contract``, which lets LLVM fuse a·b + c into one FMA (a single
rounding: the Horner steps only gain, and the reductions t = x log₂e + S and
x − k L_hi stay exact or round to an integer as before). No ``nnan``/``ninf`` (the
comparisons that pass NaN and inf through would be folded away), no ``reassoc`` (it would
cancel (t + S) − S and merge the two parts of ln 2), no ``arcp``/``afn``. The functions
are not ``inline="always"``: Numba would then compile their arithmetic under the
caller's flags; LLVM inlines them anyway and keeps their per-instruction flags.
``error_model="numpy"``: a division by zero gives inf or NaN instead of raising, so
that no exception branch stops the vectorizer (no divisor here can be 0 anyway).

What the vectorizer makes of it, on this machine (AVX-512, LLVM of llvmlite 0.50): a loop
``out[i] = exp(x[i])`` compiles to ``<8 x double>`` operations in zmm registers, with no
call left but the ``llvm.fabs``/``llvm.copysign`` intrinsics (``import solver`` lets LLVM
use 512-bit vectors, see :func:`solver._let_numba_use_512_bit_vectors`; by default its
cost model for this CPU prefers ``<4 x double>`` in ymm registers, then exp ran about 7×
faster than ``math.exp``; with zmm it is 1.5× faster again: 0.87–0.94 ns per element against
1.35 on one core of the loaded machine).

What bounds a tanh loop (the first variation's Σ_i c_i tanh(w·x_i), measured with
``llvm-mca -mcpu=icelake-server`` on the kernel's inner loop, 4 × 8 pairs per iteration):
per ``<8 x double>`` about 26 vector operations (the clamp 2, the reduction 4, the
polynomial 13, 2^k and e 3, e + 2 and the division's 3 micro-ops) on the two 512-bit ports
and one ``vdivpd``, which holds the divider for 16 cycles: both near 2 cycles per pair,
which no reformulation here avoids (a Newton reciprocal costs more port operations than
the division, and one division for two quotients as well). tanh_half and FMAs in the
kernel took the loop from 86 to 68 cycles per 32 pairs (the divider's floor: 64).
"""

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic
from scipy.special import expit

FLAGS = {"contract"}

LOG2E = 1.4426950408889634  # log₂ e
LN2_HI = 6.93147180369123816490e-01  # 0x3FE62E42FEE00000: ln 2 to 32 significant bits
LN2_LO = 1.90821492927058770002e-10  # ln 2 − LN2_HI
SHIFT = 6755399441055744.0  # 1.5 · 2⁵²: t = y + SHIFT rounds y to an integer held in t's last bits
BIASED_SHIFT = SHIFT + 1023.0  # t = y + BIASED_SHIFT holds k + 1023, the exponent field of 2^k, in its last bits
EXP_MAX = 710.0  # e^x = inf beyond log(DBL_MAX) = 709.78…
EXP_MIN = -746.0  # e^x = 0 below log(2⁻¹⁰⁷⁵) = −745.13…
TANH_HALF_LIMIT = 40.0  # tanh(y/2) rounds to ±1 beyond |y| ≈ 38.1
SQRT2_MINUS_1 = 0.41421356237309503
# 1/j! for j = 2, …, 13: e^r − 1 − r = r² Σ_j r^(j−2)/j!
E2, E3, E4, E5, E6, E7 = (1.0 / math.factorial(j) for j in range(2, 8))
E8, E9, E10, E11, E12, E13 = (1.0 / math.factorial(j) for j in range(8, 14))
# fdlibm e_log.c: log(1 + f) = f − f²/2 + s (f²/2 + R(s²)), R(w) = Σ Lg_i w^i
LG1, LG2, LG3 = 6.666666666666735130e-01, 3.999999999940941908e-01, 2.857142874366239149e-01
LG4, LG5 = 2.222219843214978396e-01, 1.818357216161805012e-01
LG6, LG7 = 1.531383769920937332e-01, 1.479819860511658591e-01


@intrinsic
def _bits(typingctx, x):
    """The IEEE 754 bits of a float64 as an int64 (a bitcast)."""
    if x != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def _from_bits(typingctx, n):
    """The float64 whose IEEE 754 bits are the int64 ``n`` (a bitcast)."""
    if n != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@njit(cache=True, fastmath=FLAGS, error_model="numpy")
def _power_of_two(k):
    """2^k for an integer k with −1022 ≤ k ≤ 1023 (the biased exponent k + 1023 in bits 52–62)."""
    return _from_bits((k + 1023) << 52)


@njit(cache=True, fastmath=FLAGS, error_model="numpy")
def _reduce(x, shift):
    """(t, r) with x = k ln 2 + r, |r| ≲ ln 2 / 2, k = t − shift an integer held in the
    last bits of t (``shift`` is SHIFT or BIASED_SHIFT); x finite and clamped (NaN gives
    NaN in r and a meaningless t)."""
    t = x * LOG2E + shift
    k = t - shift
    return t, (x - k * LN2_HI) - k * LN2_LO


@njit(cache=True, fastmath=FLAGS, error_model="numpy")
def _expm1_tail(r):
    """q(r) = Σ_(j=2)^13 r^(j−2)/j!, with which e^r − 1 = r + r² q(r) for |r| ≲ ln 2 / 2."""
    return E2 + r * (E3 + r * (E4 + r * (E5 + r * (E6 + r * (E7 + r * (E8 + r * (E9 + r * (E10 + r * (
        E11 + r * (E12 + r * E13))))))))))


@njit(cache=True, fastmath=FLAGS, error_model="numpy")
def exp(x):
    """e^x for a float64 x: to 1 ulp, inf above 709.78, subnormal then 0 below −708.4,
    NaN for NaN (see the module docstring)."""
    y = min(max(x, EXP_MIN), EXP_MAX)  # as in Python, min and max keep a first argument NaN
    t, r = _reduce(y, SHIFT)
    k = _bits(t) - _bits(SHIFT)
    half = k >> 1
    return (1.0 + (r + r * r * _expm1_tail(r))) * _power_of_two(half) * _power_of_two(k - half)


@njit(cache=True, fastmath=FLAGS, error_model="numpy")
def tanh_half(y):
    """tanh(y/2) = e/(e + 2), e = e^y − 1 = 2^k (e^r − 1) + (2^k − 1): to 3 ulp (of tanh),
    ±1 for ±inf, ±0 for ±0, NaN for NaN.

    e is computed as −(2^k m) − (1 − 2^k) with m = −r − r² q(r) = −(e^r − 1): a sum of two
    zeros is −0 only if both are, so it is m (not e^r − 1) that is ∓0 for r = ±0, and e
    that is ±0 for y = ±0, as tanh. 2^k is t's last 12 bits, k + 1023 (|k| ≤ 58), moved
    to the exponent field.
    """
    y = min(max(y, -TANH_HALF_LIMIT), TANH_HALF_LIMIT)  # NaN goes through (see exp)
    t, r = _reduce(y, BIASED_SHIFT)
    scale = _from_bits(_bits(t) << 52)
    minus_expm1_r = -r - r * r * _expm1_tail(r)
    e = -(scale * minus_expm1_r) - (1.0 - scale)
    return e / (e + 2.0)


@njit(cache=True, fastmath=FLAGS, error_model="numpy")
def tanh(x):
    """tanh x = tanh_half(2x) (2x exact): to 3 ulp, ±1 for ±inf, NaN for NaN."""
    return tanh_half(2.0 * x)


@njit(cache=True, fastmath=FLAGS, error_model="numpy")
def sigmoid(x):
    """σ(x) = 1/(1 + e^(−x)) = n/(1 + z), z = e^(−|x|), n = 1 (x ≥ 0) or z (x < 0): to 2.5 ulp."""
    z = exp(-abs(x))
    return (1.0 if x >= 0.0 else z) / (1.0 + z)


@njit(cache=True, fastmath=FLAGS, error_model="numpy")
def _log1p_unit(z):
    """log(1 + z) for 0 ≤ z ≤ 1 (NaN for NaN), fdlibm's log with j ∈ {0, 1}:
    1 + z = 2^j (1 + f), log(1 + f) = f − (h − s(h + R(s²))), h = f²/2, s = f/(2 + f)."""
    upper = z > SQRT2_MINUS_1
    f = 0.5 * (z - 1.0) if upper else z
    j = 1.0 if upper else 0.0
    s = f / (2.0 + f)
    w = s * s
    w2 = w * w
    R = w2 * (LG2 + w2 * (LG4 + w2 * LG6)) + w * (LG1 + w2 * (LG3 + w2 * (LG5 + w2 * LG7)))
    h = 0.5 * f * f
    return j * LN2_HI - ((h - (s * (h + R) + j * LN2_LO)) - f)


@njit(cache=True, fastmath=FLAGS, error_model="numpy")
def softplus(x):
    """log(1 + e^x) = max(x, 0) + log1p(e^(−|x|)): to 2 ulp, x for large x, e^x for very
    negative x, NaN for NaN."""
    return (x if x > 0.0 else 0.0) + _log1p_unit(exp(-abs(x)))


def exp_reference(x):
    """NumPy's e^x."""
    return np.exp(x)


def tanh_reference(x):
    """NumPy's tanh."""
    return np.tanh(x)


def sigmoid_reference(x):
    """SciPy's expit, 1/(1 + e^(−x))."""
    return expit(x)


def softplus_reference(x):
    """log(1 + e^x) as NumPy's logaddexp(0, x)."""
    return np.logaddexp(0.0, x)
