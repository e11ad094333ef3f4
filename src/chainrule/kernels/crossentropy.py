"""Softmax cross-entropy over the rows of (N, C) logits at class indices, in one compiled pass.

A classifier's or a language model's loss: each row's log-sum-exp, minus the target's logit,
and the probabilities the backward needs. In NumPy that is a pass for the row maxima, one
for the shift, one for exp, one for the sums, one to divide, and a gather (six over the
logits); the loop here reads each row while it is in L1 and writes the probabilities once,
with ``exp_float32`` compiled into it. float32 only: float64 runs the reference.
"""

from __future__ import annotations

import math

import numpy as np

from chainrule.kernels import jit
from chainrule.kernels.exp import exp_float32

#: Logits up to this size are not shifted by their row's maximum (see the loops), fewer
#: where the row is so long that the sum of its e^x could overflow.
SAFE = 80.0


@jit.loops(reassociate=True, contract=True)
def _cross_entropy_loops(logits, targets, safe, losses, probs):
    """Per row x of (N, C) float32 logits, with m = max(x) (0 where infinite, or where every
    |x| <= safe): losses = log sum(e^(x - m)) - (x[target] - m), probs = e^(x - m) / that
    sum."""
    rows, classes = logits.shape
    for r in range(rows):
        # Shifting by the maximum only keeps exp from overflowing or underflowing: with
        # every |x| <= safe, e^x and its sum are normal float32s, and the shift is left out.
        # (A running maximum along a row is a chain of dependent compares, while a count
        # vectorises.)
        wild = 0
        for j in range(classes):
            wild += 0 if abs(logits[r, j]) <= safe else 1  # NaN counts too
        top = np.float32(0)
        if wild:
            top = logits[r, 0]
            for j in range(classes):
                if logits[r, j] > top:
                    top = logits[r, j]
            if not math.isfinite(top):  # NaN stays NaN below; shifting by an infinity
                top = np.float32(0)     # would make a NaN where the reference makes an inf
        total = np.float32(0)
        for j in range(classes):
            e = exp_float32(logits[r, j] - top)
            probs[r, j] = e
            total += e
        losses[r] = math.log(total) - (logits[r, targets[r]] - top)
        scale = np.float32(1) / total
        for j in range(classes):
            probs[r, j] *= scale


def cross_entropy_rows_reference(logits: np.ndarray, targets: np.ndarray
                                 ) -> tuple[np.ndarray, np.ndarray]:
    """(losses (N,), probs (N, C)): softmax cross-entropy of each row of (N, C) logits at
    the class index ``targets[n]``, log sum exp(x - m) - (x[t] - m) with m the row's maximum
    (0 where that is infinite), and softmax(x)."""
    top = np.max(logits, axis=1, keepdims=True) if logits.shape[1] else logits[:, :1]
    top = np.where(np.isinf(top), 0, top).astype(logits.dtype)
    shifted = logits - top
    exps = np.exp(shifted)
    sums = exps.sum(axis=1, keepdims=True)
    losses = np.log(sums[:, 0]) - shifted[np.arange(len(targets)), targets]
    return losses, exps / sums


@jit.kernel(_cross_entropy_loops, cross_entropy_rows_reference)
def cross_entropy_rows(logits: np.ndarray, targets: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray]:
    """cross_entropy_rows_reference in one compiled pass per row (float32): within rounding
    of the reference (its probabilities times 1 / sum, not divided by it)."""
    if logits.dtype != np.float32 or logits.ndim != 2 or logits.shape[1] == 0:
        return cross_entropy_rows_reference(logits, targets)
    rows = np.ascontiguousarray(logits)
    losses = np.empty(rows.shape[0], np.float32)
    probs = np.empty(rows.shape, np.float32)
    # C e^safe must stay under float32's largest value, e^88.72
    safe = np.float32(min(SAFE, 88.0 - math.log(rows.shape[1])))
    _cross_entropy_loops(rows, np.ascontiguousarray(targets, np.intp), safe, losses, probs)
    return losses, probs
