"""GELU forward and backward in compiled passes, beside the NumPy passes they replace.

A GPT's MLP runs GELU on a (tokens, 4 n_embd) array every step. In NumPy each term of the
formula is a pass over that array (the tanh form takes six forward and nine backward); the
loops here read the input once and write the result once, and the exact form's erf is a
compiled call instead of Python's ``math.erf`` per element.
"""

from __future__ import annotations

import math

import numpy as np

from chainrule.kernels import jit
from chainrule.kernels.exp import exp_float32
from chainrule.kernels.layernorm import FLUSH_ROWS

SQRT_HALF = math.sqrt(0.5)
INV_SQRT_2PI = 1 / math.sqrt(2 * math.pi)
TANH_SCALE = math.sqrt(2 / math.pi)
TANH_CUBIC = 0.044715
_ERF = np.frompyfunc(math.erf, 1, 1)
#: Elements per block of the tanh form: its three passes (argument, np.tanh, result) run a
#: block at a time, so the tanh values stay in L2 between them instead of going to memory.
BLOCK = 1 << 15


def _erf_reference(a: np.ndarray) -> np.ndarray:
    """erf elementwise in a's dtype: NumPy has none, so Python's math.erf per element."""
    return np.asarray(_ERF(a), dtype=a.dtype)


# NumPy's tanh, exp and sqrt run in SIMD (several elements an instruction); a compiled
# loop calls libm once per element, tens of times slower for tanh (docs/kernels.md has the
# figures). In float32 the tanh form is one pass: 0.5 a (1 + tanh u) = a sigmoid(2u) = a /
# (1 + e^(-2u)), with exp_float32 compiled into the loop. In float64 the loops do the
# arithmetic around NumPy's tanh, in blocks. The exact form's erf has no NumPy ufunc at
# all: its loop calls math.erf per element, still ten times faster than Python's.

# ----------------------------------------------------------------------------- forward
@jit.loops
def _tanh_argument_loops(a, out):
    """out = k (a + c a^3), the tanh form's argument."""
    k, kc = a.dtype.type(TANH_SCALE), a.dtype.type(TANH_SCALE * TANH_CUBIC)
    for i in range(a.size):
        x = a[i]
        out[i] = x * (k + kc * x * x)


@jit.loops
def _gelu_finish_loops(a, t, out):
    """out = 0.5 a (1 + t)."""
    half = a.dtype.type(0.5)
    for i in range(a.size):
        out[i] = half * a[i] * (1 + t[i])


@jit.scalar
def gelu_tanh_float32(x):
    """x / (1 + e^(-2u)), u = k (x + c x^3), for a float32 x: the tanh form, 0.5 x (1 + tanh
    u), as a sigmoid."""
    k2, kc2 = np.float32(-2 * TANH_SCALE), np.float32(-2 * TANH_SCALE * TANH_CUBIC)
    return x / (np.float32(1) + exp_float32(x * (k2 + kc2 * x * x)))


@jit.scalar
def gelu_tanh_slope_float32(x):
    """s (1 + 2 x e s k (1 + 3 c x^2)), e = e^(-2u), s = 1 / (1 + e) = sigmoid(2u), for a
    float32 x: the tanh form's slope s + 2 x s (1 - s) u', with 1 - s written e s (no
    cancellation where s is near 1); where -2u > 80 the slope (under 1e-30) is 0, as the
    reference's is."""
    one, k2, kc2 = np.float32(1), np.float32(-2 * TANH_SCALE), np.float32(-2 * TANH_SCALE
                                                                          * TANH_CUBIC)
    k, k3c = np.float32(2 * TANH_SCALE), np.float32(6 * TANH_SCALE * TANH_CUBIC)
    x2 = x * x
    z = x * (k2 + kc2 * x2)
    e = exp_float32(z)
    s = one / (one + e)
    return s * (one + x * (e * s) * (k + k3c * x2)) if z <= np.float32(80) else x * np.float32(0)


@jit.loops(contract=True)
def _gelu_sigmoid_loops(a, out):
    """out = gelu_tanh_float32(a), for float32 a: the tanh form in one pass."""
    for i in range(a.size):
        out[i] = gelu_tanh_float32(a[i])


@jit.loops
def _gelu_erf_loops(a, out):
    """out = a Phi(a) = 0.5 a (1 + erf(a / sqrt 2)), erf in float64."""
    for i in range(a.size):
        x = a[i]
        out[i] = 0.5 * x * (1.0 + math.erf(x * SQRT_HALF))


def gelu_reference(a: np.ndarray, approximate: str) -> np.ndarray:
    """a Phi(a) in NumPy passes; ``approximate`` 'tanh' (PyTorch's tanh form) or 'none'."""
    if approximate == "none":
        return a * (0.5 * (1 + _erf_reference(a * SQRT_HALF)))
    t = np.tanh(a * (TANH_SCALE + TANH_SCALE * TANH_CUBIC * (a * a)))
    return 0.5 * a * (1 + t)


@jit.kernel(_gelu_finish_loops, gelu_reference)
def gelu(a: np.ndarray, approximate: str) -> np.ndarray:
    """GELU of a float array, a fresh array: a Phi(a), Phi in the tanh or the erf form."""
    flat = np.ascontiguousarray(a).reshape(-1)
    out = np.empty(a.shape, a.dtype)
    if approximate == "none":
        _gelu_erf_loops(flat, out.reshape(-1))
        return out
    result = out.reshape(-1)
    if a.dtype == np.float32:
        _gelu_sigmoid_loops(flat, result)
        return out
    t = np.empty(min(flat.size, BLOCK), a.dtype)
    for lo in range(0, flat.size, BLOCK):  # blocks, so t stays in cache between the passes
        hi = min(lo + BLOCK, flat.size)
        part = t[:hi - lo]
        _tanh_argument_loops(flat[lo:hi], part)
        np.tanh(part, out=part)
        _gelu_finish_loops(flat[lo:hi], part, result[lo:hi])
    return out


# ----------------------------------------------------------------------------- backward
@jit.loops
def _gelu_tanh_slope_loops(a, t, grad, out):
    """out = grad (0.5 (1 + t) + 0.5 a (1 - t^2) k (1 + 3 c a^2)), t = tanh(k (a + c a^3))."""
    half = a.dtype.type(0.5)
    k3c = a.dtype.type(3 * TANH_CUBIC)
    k = a.dtype.type(TANH_SCALE)
    for i in range(a.size):
        x, ti = a[i], t[i]
        out[i] = grad[i] * (half * (1 + ti) + half * x * (1 - ti * ti) * k * (1 + k3c * x * x))


@jit.loops(contract=True)
def _gelu_sigmoid_slope_loops(a, grad, out):
    """out = grad gelu_tanh_slope_float32(a), for float32 a: the tanh form's slope in one
    pass."""
    for i in range(a.size):
        out[i] = grad[i] * gelu_tanh_slope_float32(a[i])


@jit.loops
def _gelu_erf_slope_loops(a, grad, out):
    """out = grad (Phi(a) + a phi(a)), in float64."""
    for i in range(a.size):
        x = a[i]
        out[i] = grad[i] * (0.5 * (1.0 + math.erf(x * SQRT_HALF))
                            + x * INV_SQRT_2PI * math.exp(-0.5 * x * x))


def gelu_grad_reference(a: np.ndarray, grad: np.ndarray, approximate: str) -> np.ndarray:
    """grad times GELU's slope at a: Phi(a) + a phi(a), or in the tanh form
    0.5 (1 + t) + 0.5 a (1 - t^2) k (1 + 3 c a^2), t = tanh(k (a + c a^3))."""
    if approximate == "none":
        cdf = 0.5 * (1 + _erf_reference(a * SQRT_HALF))
        return grad * (cdf + a * INV_SQRT_2PI * np.exp(-0.5 * a * a))
    a2 = a * a
    t = np.tanh(a * (TANH_SCALE + TANH_SCALE * TANH_CUBIC * a2))
    slope = 0.5 * (1 + t) + 0.5 * a * (1 - t * t) * TANH_SCALE * (1 + 3 * TANH_CUBIC * a2)
    return grad * slope


@jit.kernel(_gelu_tanh_slope_loops, gelu_grad_reference)
def gelu_grad(a: np.ndarray, grad: np.ndarray, approximate: str) -> np.ndarray:
    """grad times GELU's slope at a (a's shape and dtype; grad broadcasts), a fresh array."""
    flat = np.ascontiguousarray(a).reshape(-1)
    g = np.ascontiguousarray(np.broadcast_to(grad, a.shape)).reshape(-1)
    out = np.empty(a.shape, a.dtype)
    if approximate == "none":
        _gelu_erf_slope_loops(flat, g, out.reshape(-1))
        return out
    result = out.reshape(-1)
    if a.dtype == np.float32:
        _gelu_sigmoid_slope_loops(flat, g, result)
        return out
    t = np.empty(min(flat.size, BLOCK), a.dtype)
    for lo in range(0, flat.size, BLOCK):
        hi = min(lo + BLOCK, flat.size)
        part = t[:hi - lo]
        _tanh_argument_loops(flat[lo:hi], part)
        np.tanh(part, out=part)
        _gelu_tanh_slope_loops(flat[lo:hi], part, g[lo:hi], result[lo:hi])
    return out


# ----------------------------------------------------------------------------- with a bias
@jit.loops(contract=True)
def _bias_gelu_loops(h, bias, out):
    """Per row of (rows, C) float32 h: h += bias (in place: the backward's input), out =
    gelu_tanh_float32(h)."""
    rows, cols = h.shape
    for r in range(rows):
        for j in range(cols):
            x = h[r, j] + bias[j]
            h[r, j] = x
            out[r, j] = gelu_tanh_float32(x)


def bias_gelu_reference(h: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """gelu(h + bias) in the tanh form, h (rows, C) updated in place to h + bias (what the
    backward needs); returns the GELU as a fresh array."""
    h += bias
    return gelu_reference(h, "tanh")


@jit.kernel(_bias_gelu_loops, bias_gelu_reference)
def bias_gelu(h: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """bias_gelu_reference in one compiled pass for float32 (the sigmoid form, as gelu)."""
    if (h.dtype != np.float32 or h.ndim != 2 or bias.shape != h.shape[1:]
            or not h.flags.c_contiguous):
        return bias_gelu_reference(h, bias)
    out = np.empty(h.shape, h.dtype)
    _bias_gelu_loops(h, np.ascontiguousarray(bias), out)
    return out


@jit.loops(contract=True)
def _bias_gelu_grad_loops(grad, pre, out, parts, sums):
    """Per row: out = grad times GELU's slope at pre (gelu_tanh_slope_float32), and each
    column's sum of out added into ``parts`` (float32, flushed into float64 ``sums`` every
    FLUSH_ROWS rows): the bias's gradient."""
    rows, cols = pre.shape
    for r in range(rows):
        for j in range(cols):
            g = grad[r, j] * gelu_tanh_slope_float32(pre[r, j])
            out[r, j] = g
            parts[j] += g
        if (r + 1) % FLUSH_ROWS == 0 or r == rows - 1:
            for j in range(cols):
                sums[j] += parts[j]
                parts[j] = 0


def bias_gelu_grad_reference(grad: np.ndarray, pre: np.ndarray
                             ) -> tuple[np.ndarray, np.ndarray]:
    """(d/d pre, d/d bias) of gelu(pre) in the tanh form, pre (rows, C) = h + bias: grad
    times the slope, and that summed over the rows."""
    dpre = gelu_grad_reference(pre, grad, "tanh")
    return dpre, dpre.sum(axis=0)


@jit.kernel(_bias_gelu_grad_loops, bias_gelu_grad_reference)
def bias_gelu_grad(grad: np.ndarray, pre: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """bias_gelu_grad_reference in one compiled pass for float32: the slope as gelu_grad's,
    the bias's sums in float32 blocks of FLUSH_ROWS rows added up in float64."""
    if (pre.dtype != np.float32 or pre.ndim != 2 or grad.shape != pre.shape
            or not pre.flags.c_contiguous):
        return bias_gelu_grad_reference(grad, pre)
    out = np.empty(pre.shape, pre.dtype)
    sums = np.zeros(pre.shape[1])
    _bias_gelu_grad_loops(np.ascontiguousarray(grad), pre, out,
                          np.zeros(pre.shape[1], pre.dtype), sums)
    return out, sums.astype(pre.dtype)
