"""e^x for float32 inside compiled loops: a polynomial numba turns into SIMD.

A compiled loop that calls ``math.exp`` calls libm once per element; NumPy's ``np.exp`` runs
in SIMD but is a pass of its own over memory. ``exp_float32`` is the same maths written out
so that numba compiles it into the loop that calls it, vectorised, beside the arithmetic
around it (a softmax's shift and sum, a GELU's sigmoid) in one pass.

The method is the classic one (Cody and Waite's range reduction, a polynomial of Cephes'
``expf``): with n = round(x / ln 2) and r = x - n ln 2 (ln 2 split in two parts so that
n ln 2 is exact), |r| <= ln 2 / 2 and e^x = 2^n e^r, where e^r is a degree-7 polynomial
and 2^n is built from its bits. 2^n is applied as two halves, so that results in float32's
subnormal range come out right instead of flushing to zero. Accuracy: within 2 units in the
last place of float32 over its whole range (tests/test_kernels.py sweeps it against NumPy).
"""

from __future__ import annotations

import numpy as np

from chainrule.kernels import jit

LOG2E = 1.4426950408889634
#: ln 2 = LN2_HIGH + LN2_LOW, the first with few enough bits that n LN2_HIGH is exact
LN2_HIGH = 0.693359375
LN2_LOW = -2.12194440e-4
#: Cephes expf: e^r ~ 1 + r + r^2 (C5 + r (C4 + r (C3 + ...)))
C0, C1, C2, C3, C4, C5 = (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3,
                          4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1)
#: e^x overflows float32 above this (ln of its largest value) ...
HIGHEST = 88.72283935546875
#: ... and rounds to zero below this (ln of half its smallest subnormal)
LOWEST = -103.97208404541016


@jit.scalar
def exp_float32(x):
    """e^x for a float32 x, within 2 ulp: inf above HIGHEST, 0 below LOWEST, NaN for NaN."""
    f32 = np.float32
    y = min(max(x, f32(LOWEST)), f32(HIGHEST))
    n = np.floor(y * f32(LOG2E) + f32(0.5))
    r = y - n * f32(LN2_HIGH) - n * f32(LN2_LOW)
    p = ((((((f32(C0) * r + f32(C1)) * r + f32(C2)) * r + f32(C3)) * r + f32(C4)) * r
          + f32(C5)) * r * r + r + f32(1))
    k = np.int32(n)
    half = k >> 1  # 2^n as 2^half 2^(n - half): each factor a normal float32
    low = np.int32((half + np.int32(127)) << np.int32(23)).view(np.float32)
    high = np.int32((k - half + np.int32(127)) << np.int32(23)).view(np.float32)
    e = p * low * high
    if x > f32(HIGHEST):
        return f32(np.inf)
    if x < f32(LOWEST):
        return f32(0)
    return e if x == x else x
