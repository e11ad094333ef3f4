"""Softmax over the keys, in place, forward and backward: attention's inner loop.

Attention turns scores into weights: scale, mask the keys a query may not see, subtract the
largest score, exp, divide by the sum. The kernels take the scores transposed, (..., S, L):
a row per key, a column per query, as ``key @ query^T`` gives them, and the softmax runs down
each column. The reason is the compiler. Along a row, a maximum or a sum carries one value
from element to element, and numba's loop of comparisons stays scalar; down the columns,
each step updates a whole row of running maxima or sums at once, independent lanes that the
compiler turns into SIMD (the row maximum measured about four times faster this way, and
NumPy's own maximum along a short last axis is slower still). BLAS reads either layout as it
is, so the products around the softmax cost the same.

Per (S, L) matrix, in float32: one compiled pass scales, masks and tracks each column's
maximum; one takes exp of each score minus its column's maximum (``exp_float32``, compiled
into the loop in SIMD) and sums the columns; one multiplies each column by 1 / its sum. In
float64, NumPy's exp runs between the compiled passes instead. The backward, dS = P (dP -
colsum(dP P)), is two passes. A query whose keys are all masked (-inf) gets weights 0, as in
PyTorch, not 0/0.
"""

from __future__ import annotations

import numpy as np

from chainrule.kernels import jit
from chainrule.kernels.exp import exp_float32


def _matrices(scores: np.ndarray) -> np.ndarray | None:
    """scores as (batch, S, L) without a copy, or None where it is not C-contiguous."""
    if not scores.flags.c_contiguous or scores.ndim < 2:
        return None
    return scores.reshape(int(np.prod(scores.shape[:-2])), *scores.shape[-2:])


# ----------------------------------------------------------------------------- forward
@jit.loops
def _shift_loops(scores, scale, causal, top):
    """Per (S, L) matrix: x = scale s, key j of query i set to -inf when causal and j > i;
    then each column minus its largest x (0 where all are -inf, so that column stays -inf).
    ``top`` (L,) is scratch space."""
    batch, keys, length = scores.shape
    hidden = scores.dtype.type(-np.inf)
    for b in range(batch):
        for i in range(length):
            top[i] = hidden
        for j in range(keys):
            first = j if causal else 0  # query i sees key j when j <= i
            # every column in one loop, the mask a select: a loop that starts at `first`
            # instead would not be vectorised
            for i in range(length):
                x = scores[b, j, i] * scale if i >= first else hidden
                scores[b, j, i] = x
                if x > top[i]:  # a NaN never wins; it still makes its own column NaN below
                    top[i] = x
        for i in range(length):
            if top[i] == hidden:
                top[i] = 0.0
        for j in range(keys):
            for i in range(length):
                scores[b, j, i] -= top[i]


@jit.loops
def _normalise_loops(weights, sums, divisors):
    """Per (S, L) matrix: each column divided by its sum (summed in float64 into ``sums``,
    rounded to ``divisors``), or left as it is where the sum is 0."""
    batch, keys, length = weights.shape
    for b in range(batch):
        for i in range(length):
            sums[i] = 0.0
        for j in range(keys):
            for i in range(length):
                sums[i] += weights[b, j, i]
        for i in range(length):
            divisors[i] = sums[i] if sums[i] != 0.0 else 1.0
        for j in range(keys):
            for i in range(length):
                weights[b, j, i] /= divisors[i]


@jit.loops(contract=True)
def _softmax_float32_loops(scores, scale, causal, top, sums):
    """Per (S, L) float32 matrix: x = scale s, masked as in _shift_loops; then e^(x - the
    column's largest x) and each column divided by its sum (times 1 / sum; a column summing
    to 0 stays 0). ``top`` and ``sums`` (L,) are scratch space."""
    batch, keys, length = scores.shape
    hidden = np.float32(-np.inf)
    for b in range(batch):
        for i in range(length):
            top[i] = hidden
        for j in range(keys):
            first = j if causal else 0  # the mask a select, as in _shift_loops
            for i in range(length):
                x = scores[b, j, i] * scale if i >= first else hidden
                scores[b, j, i] = x
                if x > top[i]:
                    top[i] = x
        for i in range(length):
            if top[i] == hidden:  # every key masked: exp(-inf - 0) = 0 below
                top[i] = 0.0
            sums[i] = 0.0
        for j in range(keys):
            for i in range(length):
                e = exp_float32(scores[b, j, i] - top[i])
                scores[b, j, i] = e
                sums[i] += e
        for i in range(length):
            sums[i] = 1 / sums[i] if sums[i] != 0 else np.float32(1)
        for j in range(keys):
            for i in range(length):
                scores[b, j, i] *= sums[i]


def softmax_columns_reference(scores: np.ndarray, scale: float, causal: bool) -> np.ndarray:
    """softmax(scale * scores) down axis -2, in place, and returned. scores are (..., S, L),
    keys by queries; when causal, key j > query i (top-left aligned, as PyTorch's
    is_causal) gets weight 0; a column with every key -inf gets zeros."""
    scores *= scores.dtype.type(scale)
    keys, length = scores.shape[-2:]
    if causal:
        scores[..., np.tril(np.ones((keys, length), bool), k=-1)] = -np.inf
    if scores.size == 0:
        return scores
    top = np.maximum.reduce(scores, axis=-2, keepdims=True)
    np.copyto(top, 0, where=np.isneginf(top))
    scores -= top
    np.exp(scores, out=scores)
    sums = np.add.reduce(scores, axis=-2, keepdims=True)
    np.copyto(sums, 1, where=sums == 0)
    scores /= sums
    return scores


@jit.kernel(_shift_loops, softmax_columns_reference)
def softmax_columns(scores: np.ndarray, scale: float, causal: bool) -> np.ndarray:
    """softmax_columns_reference in compiled passes: within rounding of the reference (in
    float32 one pass fewer and exp_float32's exp; in float64 NumPy's exp and float64 sums)."""
    matrices = _matrices(scores)
    if matrices is None or scores.size == 0:
        return softmax_columns_reference(scores, scale, causal)
    length = scores.shape[-1]
    top, divisors = np.empty(length, scores.dtype), np.empty(length, scores.dtype)
    if scores.dtype == np.float32:
        _softmax_float32_loops(matrices, np.float32(scale), bool(causal), top, divisors)
        return scores
    _shift_loops(matrices, scores.dtype.type(scale), bool(causal), top)
    np.exp(scores, out=scores)
    _normalise_loops(matrices, np.empty(length), divisors)
    return scores


# ----------------------------------------------------------------------------- backward
@jit.loops
def _softmax_grad_loops(grad, probs, scale, dots):
    """Per (S, L) matrix: grad = scale P (grad - colsum(grad P)), each column's sum in the
    arrays' dtype (``dots``), as the reference sums it."""
    batch, keys, length = grad.shape
    for b in range(batch):
        for i in range(length):
            dots[i] = 0.0
        for j in range(keys):
            for i in range(length):
                dots[i] += grad[b, j, i] * probs[b, j, i]
        for j in range(keys):
            for i in range(length):
                grad[b, j, i] = scale * (probs[b, j, i] * (grad[b, j, i] - dots[i]))


def softmax_columns_grad_reference(grad: np.ndarray, probs: np.ndarray,
                                   scale: float) -> np.ndarray:
    """The gradient of the (..., S, L) scores given softmax_columns' output P and dL/dP
    (``grad``, overwritten and returned): scale * P * (dP - colsum(dP * P)), softmax's
    Jacobian-vector product down each column, times the scale the scores were multiplied by."""
    column = np.add.reduce(grad * probs, axis=-2, keepdims=True)
    grad -= column
    grad *= probs
    if scale != 1:
        grad *= grad.dtype.type(scale)
    return grad


@jit.kernel(_softmax_grad_loops, softmax_columns_grad_reference)
def softmax_columns_grad(grad: np.ndarray, probs: np.ndarray, scale: float) -> np.ndarray:
    """softmax_columns_grad_reference in two compiled passes."""
    g, p = _matrices(grad), _matrices(probs)
    if g is None or p is None or grad.shape != probs.shape or grad.size == 0:
        return softmax_columns_grad_reference(grad, probs, scale)
    length = grad.shape[-1]
    _softmax_grad_loops(g, p, grad.dtype.type(scale), np.empty(length, grad.dtype))
    return grad
