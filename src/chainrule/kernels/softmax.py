"""Softmax along the last axis, in place, forward and backward: attention's inner loop.

Attention turns a (..., L, S) array of scores into weights: scale, mask the keys a query may
not see, subtract each row's maximum, exp, divide by the row's sum. In NumPy that is seven
passes over an array of a few hundred kilobytes, and the row maximum along a short last axis
is one of NumPy's slow reductions. Here each row of S numbers is scaled, masked and shifted
in one compiled pass while it sits in L1, NumPy's SIMD exp runs once over the whole array
(a compiled exp is scalar and several times slower), and a second compiled pass sums and
divides each row. The backward, dS = P (dP - rowsum(dP P)), is one pass per row.

A row whose keys are all masked (-inf) comes out as zeros, as in PyTorch, not 0/0.
"""

from __future__ import annotations

import numpy as np

from chainrule.kernels import jit


def _rows(scores: np.ndarray) -> np.ndarray | None:
    """scores as (batch, L, S) without a copy, or None where it is not C-contiguous."""
    if not scores.flags.c_contiguous or scores.ndim < 2:
        return None
    return scores.reshape(int(np.prod(scores.shape[:-2])), *scores.shape[-2:])


# ----------------------------------------------------------------------------- forward
@jit.loops
def _shift_loops(scores, scale, causal):
    """Per row i of each (L, S) matrix: x = scale s (keys j > i set to -inf when causal),
    minus the row's largest x (0 where every key is -inf, so such a row stays -inf)."""
    batch, length, keys = scores.shape
    for b in range(batch):
        for i in range(length):
            end = min(i + 1, keys) if causal else keys
            top = -np.inf
            for j in range(end):
                x = scores[b, i, j] * scale
                scores[b, i, j] = x
                if x > top:  # a NaN never wins; it still makes its own row NaN below
                    top = x
            if top == -np.inf:
                top = 0.0
            shift = scores.dtype.type(top)
            for j in range(end):
                scores[b, i, j] -= shift
            for j in range(end, keys):
                scores[b, i, j] = -np.inf


@jit.loops(reassociate=True)
def _normalise_loops(weights):
    """Per row: divide by the row's sum (float64), or leave it where the sum is 0."""
    batch, length, keys = weights.shape
    for b in range(batch):
        for i in range(length):
            total = np.float64(0.0)  # not 0.0: in plain Python float32 + 0.0 stays float32
            for j in range(keys):
                total += weights[b, i, j]
            if total == 0.0:
                continue
            t = weights.dtype.type(total)
            for j in range(keys):
                weights[b, i, j] /= t


def softmax_rows_reference(scores: np.ndarray, scale: float, causal: bool) -> np.ndarray:
    """softmax(scale * scores) along the last axis, in place, and returned: when causal,
    key j > query i (top-left aligned, as PyTorch's is_causal) gets weight 0; a row with
    every key -inf gets zeros."""
    scores *= scores.dtype.type(scale)
    length, keys = scores.shape[-2:]
    if causal:
        scores[..., np.triu(np.ones((length, keys), bool), k=1)] = -np.inf
    if scores.size == 0:
        return scores
    top = np.maximum.reduce(scores, axis=-1, keepdims=True)
    np.copyto(top, 0, where=np.isneginf(top))
    scores -= top
    np.exp(scores, out=scores)
    sums = np.add.reduce(scores, axis=-1, keepdims=True)
    np.copyto(sums, 1, where=sums == 0)
    scores /= sums
    return scores


@jit.kernel(_shift_loops, softmax_rows_reference)
def softmax_rows(scores: np.ndarray, scale: float, causal: bool) -> np.ndarray:
    """softmax_rows_reference, in two compiled row passes around NumPy's exp: within
    rounding of the reference (its row sums run in another order)."""
    rows = _rows(scores)
    if rows is None or scores.size == 0:
        return softmax_rows_reference(scores, scale, causal)
    _shift_loops(rows, scores.dtype.type(scale), bool(causal))
    np.exp(scores, out=scores)
    _normalise_loops(rows)
    return scores


# ----------------------------------------------------------------------------- backward
@jit.loops(reassociate=True)
def _softmax_grad_loops(grad, probs, scale):
    """Per row: grad = scale P (grad - sum(grad P)), the sum in float64."""
    batch, length, keys = grad.shape
    for b in range(batch):
        for i in range(length):
            total = np.float64(0.0)
            for j in range(keys):
                total += grad[b, i, j] * probs[b, i, j]
            dot = grad.dtype.type(total)
            for j in range(keys):
                grad[b, i, j] = scale * (probs[b, i, j] * (grad[b, i, j] - dot))


def softmax_rows_grad_reference(grad: np.ndarray, probs: np.ndarray,
                                scale: float) -> np.ndarray:
    """The gradient of the scores given softmax's output P and dL/dP (``grad``, overwritten
    and returned): scale * P * (dP - rowsum(dP * P)), softmax's Jacobian-vector product
    times the scale the scores were multiplied by."""
    row = np.add.reduce(grad * probs, axis=-1, keepdims=True)
    grad -= row
    grad *= probs
    if scale != 1:
        grad *= grad.dtype.type(scale)
    return grad


@jit.kernel(_softmax_grad_loops, softmax_rows_grad_reference)
def softmax_rows_grad(grad: np.ndarray, probs: np.ndarray, scale: float) -> np.ndarray:
    """softmax_rows_grad_reference in one compiled pass per row (its sum in float64)."""
    rows, p = _rows(grad), _rows(probs)
    if rows is None or p is None or grad.shape != probs.shape or grad.size == 0:
        return softmax_rows_grad_reference(grad, probs, scale)
    _softmax_grad_loops(rows, p, grad.dtype.type(scale))
    return grad
