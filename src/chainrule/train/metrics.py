"""Metrics: plain functions of (predictions, targets) that return a float."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.tensor import Tensor


def _array(value: Any) -> np.ndarray:
    return value.data if isinstance(value, Tensor) else np.asarray(value)


def accuracy(scores: Any, targets: Any) -> float:
    """Fraction of rows whose largest score is at the target class."""
    return float(np.mean(_array(scores).argmax(axis=-1) == _array(targets)))
