"""Metrics: plain functions of (predictions, targets) that return a float."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.engine.tensor import Tensor


def _array(value: Any) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def accuracy(scores: Any, targets: Any) -> float:
    """Fraction of rows whose largest score is at the target class.

    ``scores`` are (N, C) class scores with C >= 2 and ``targets`` N integer class indices; for
    anything else (a regression's float targets, one output column) accuracy has no meaning
    and is refused rather than reported as a number; scores that are not finite give NaN.
    """
    scores, targets = _array(scores), _array(targets)
    if targets.dtype.kind not in "iu":
        raise TypeError(f"accuracy: targets must be integer class indices, got {targets.dtype}; "
                        "for a regression leave accuracy out (Learner(metrics={}) or a metric "
                        "of your own)")
    if scores.ndim < 1 or scores.shape[-1] < 2 or targets.shape != scores.shape[:-1]:
        raise ValueError(f"accuracy: expects (N, C) scores over C >= 2 classes and N targets, "
                         f"got scores {scores.shape} and targets {targets.shape}")
    if targets.size == 0:
        raise ValueError("accuracy: no samples; the accuracy of nothing has no value")
    if not np.isfinite(scores).all():
        return float("nan")  # argmax of a NaN row is 0: a number, but not an accuracy
    return float(np.mean(scores.argmax(axis=-1) == targets))
