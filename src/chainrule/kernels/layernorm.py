"""LayerNorm over the last axis, forward and backward in compiled row passes.

A GPT normalises a (tokens, C) array twice a block. In NumPy the forward is seven passes
over it (mean, centre, square, mean, scale, weight, bias) and the backward nine; here each
row is read while it is in L1: its sums (float64 forward, the dtype's own backward, in SIMD
lanes), then one pass that writes the result.
Nothing here calls exp or tanh, so the loops lose nothing to NumPy's SIMD ufuncs. The
forward keeps each row's mean and 1 / std, not the normalised array: the backward rebuilds
xhat = (x - mean) inv_std from x as it reads it, so the op holds on to the input it already
had rather than a second array of its size.

x is taken as (rows, C), rows = the product of the leading axes; ``mean`` and ``inv_std``
keep them, with a last axis of 1, as the op's keepdims statistics did.
"""

from __future__ import annotations

import math

import numpy as np

from chainrule.kernels import jit
from chainrule.kernels.jit import prange


# ----------------------------------------------------------------------------- forward
@jit.loops(reassociate=True, threads=True)
def _layer_norm_loops(x, weight, bias, eps, out, mean, inv_std):
    """Per row of x (rows, C): mean and biased variance summed in float64 (two passes),
    inv_std = 1 / sqrt(var + eps), out = (x - mean) inv_std w + b."""
    rows, c = x.shape
    for r in prange(rows):  # rows are independent
        total = np.float64(0.0)  # not 0.0: in plain Python float32 + 0.0 stays float32
        for j in range(c):
            total += x[r, j]
        centre = total / c
        squares = np.float64(0.0)
        for j in range(c):
            d = x[r, j] - centre
            squares += d * d
        scale = 1.0 / math.sqrt(squares / c + eps)
        m, s = x.dtype.type(centre), x.dtype.type(scale)
        mean[r], inv_std[r] = m, s
        for j in range(c):
            h = (x[r, j] - m) * s
            if weight is not None:
                h = h * weight[j]
            if bias is not None:
                h = h + bias[j]
            out[r, j] = h


def layer_norm_reference(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
                         eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(out, mean, inv_std) of layer norm over x's last axis: out = (x - mean) inv_std w + b,
    inv_std = 1 / sqrt(var + eps) (biased var); mean and inv_std kept as (..., 1)."""
    mean = x.mean(axis=-1, keepdims=True)
    centered = x - mean
    inv_std = 1 / np.sqrt(np.mean(centered * centered, axis=-1, keepdims=True) + eps)
    out = centered * inv_std
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out, mean, inv_std


@jit.kernel(_layer_norm_loops, layer_norm_reference)
def layer_norm(x: np.ndarray, weight: np.ndarray | None, bias: np.ndarray | None,
               eps: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """layer_norm_reference's (out, mean, inv_std), each row in one compiled pass after its
    float64 sums: within rounding of the reference (its sums are in x's dtype)."""
    c = x.shape[-1]
    if c == 0:  # nothing to normalise: the reference's NaN statistics and warnings
        return layer_norm_reference(x, weight, bias, eps)
    rows = np.ascontiguousarray(x).reshape(-1, c)
    out = np.empty(x.shape, x.dtype)
    mean = np.empty(x.shape[:-1] + (1,), x.dtype)
    inv_std = np.empty(x.shape[:-1] + (1,), x.dtype)
    _layer_norm_loops(rows, weight, bias, float(eps), out.reshape(-1, c), mean.reshape(-1),
                      inv_std.reshape(-1))
    return out, mean, inv_std


# ----------------------------------------------------------------------------- backward
#: Rows whose weight and bias gradient terms are summed in x's dtype before each flush into
#: the float64 totals.
FLUSH_ROWS = 64


@jit.loops(reassociate=True)
def _layer_norm_grad_loops(grad, x, mean, inv_std, weight, grad_x, sum_gx, sum_g, part_gx,
                           part_g):
    """Per row, with xhat = (x - mean) inv_std and gh = grad w: dx = inv_std (gh - mean(gh) -
    xhat mean(gh xhat)), the means summed in the arrays' dtype; sum_gx += grad xhat and
    sum_g += grad over the rows, in float64, each a total of float32 partial sums
    (``part_gx``, ``part_g``: zeros of length C) over blocks of FLUSH_ROWS rows."""
    rows, c = grad.shape
    t = grad.dtype.type
    for r in range(rows):
        m, s = mean[r], inv_std[r]
        total, dot = t(0), t(0)
        for j in range(c):
            g, h = grad[r, j], (x[r, j] - m) * s
            if sum_gx is not None:
                part_gx[j] += g * h
            if sum_g is not None:
                part_g[j] += g
            if weight is not None:
                g = g * weight[j]
            total += g
            dot += g * h
        if (r + 1) % FLUSH_ROWS == 0 or r == rows - 1:
            for j in range(c):
                if sum_gx is not None:
                    sum_gx[j] += part_gx[j]
                    part_gx[j] = 0
                if sum_g is not None:
                    sum_g[j] += part_g[j]
                    part_g[j] = 0
        if grad_x is None:
            continue
        mean_g, mean_gh = t(total / c), t(dot / c)
        for j in range(c):
            g = grad[r, j]
            if weight is not None:
                g = g * weight[j]
            grad_x[r, j] = s * (g - mean_g - (x[r, j] - m) * s * mean_gh)


def layer_norm_grad_reference(grad: np.ndarray, x: np.ndarray, mean: np.ndarray,
                              inv_std: np.ndarray, weight: np.ndarray | None, need_x: bool,
                              need_weight: bool, need_bias: bool) -> tuple:
    """(d/dx, d/d weight, d/d bias) of layer norm over the last axis, each None where not
    needed: with xhat = (x - mean) inv_std and gh = grad w, d/dx = inv_std (gh - mean(gh) -
    xhat mean(gh xhat)) (means over the last axis); d/d weight = sum(grad xhat), d/d bias =
    sum(grad) over the rows."""
    xhat = (x - mean) * inv_std
    leading = tuple(range(xhat.ndim - 1))
    grad_x = None
    if need_x:
        grad_hat = grad if weight is None else grad * weight
        grad_x = inv_std * (grad_hat - grad_hat.mean(axis=-1, keepdims=True)
                            - xhat * (grad_hat * xhat).mean(axis=-1, keepdims=True))
    grad_weight = (grad * xhat).sum(axis=leading) if need_weight else None
    grad_bias = grad.sum(axis=leading) if need_bias else None
    return grad_x, grad_weight, grad_bias


@jit.kernel(_layer_norm_grad_loops, layer_norm_grad_reference)
def layer_norm_grad(grad: np.ndarray, x: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
                    weight: np.ndarray | None, need_x: bool, need_weight: bool,
                    need_bias: bool) -> tuple:
    """layer_norm_grad_reference's gradients in one compiled pass over each row for the sums
    and one for d/dx: within rounding of the reference (whose sums are all in x's dtype)."""
    c = x.shape[-1]
    if c == 0 or grad.shape != x.shape:  # grad of another shape: NumPy broadcasts it
        return layer_norm_grad_reference(grad, x, mean, inv_std, weight, need_x, need_weight,
                                         need_bias)
    g = np.ascontiguousarray(grad).reshape(-1, c)
    grad_x = np.empty(x.shape, x.dtype) if need_x else None
    sum_gx = np.zeros(c) if need_weight else None
    sum_g = np.zeros(c) if need_bias else None
    _layer_norm_grad_loops(g, np.ascontiguousarray(x).reshape(-1, c),
                           np.ascontiguousarray(mean).reshape(-1),
                           np.ascontiguousarray(inv_std).reshape(-1), weight,
                           None if grad_x is None else grad_x.reshape(-1, c), sum_gx, sum_g,
                           np.zeros(c, x.dtype), np.zeros(c, x.dtype))
    return (grad_x, None if sum_gx is None else sum_gx.astype(x.dtype),
            None if sum_g is None else sum_g.astype(x.dtype))
