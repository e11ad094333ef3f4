"""Logical ops: bool results, so no gradient and no Function (they end the tape)."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor, _as_data, untaped


def _data(value: Any) -> np.ndarray | bool | int | float:
    if isinstance(value, Tensor):
        return value.data
    if isinstance(value, (bool, int, float)):
        return value
    return _as_data(value)


def logical_and(a: Any, b: Any) -> Tensor:
    """Elementwise ``a and b`` (nonzero is true), a bool tensor."""
    return untaped("logical_and", {"a": a, "b": b}, Tensor(np.logical_and(_data(a), _data(b))))


def logical_or(a: Any, b: Any) -> Tensor:
    """Elementwise ``a or b`` (nonzero is true), a bool tensor."""
    return untaped("logical_or", {"a": a, "b": b}, Tensor(np.logical_or(_data(a), _data(b))))


def logical_xor(a: Any, b: Any) -> Tensor:
    """Elementwise exclusive or (nonzero is true), a bool tensor."""
    return untaped("logical_xor", {"a": a, "b": b}, Tensor(np.logical_xor(_data(a), _data(b))))


def logical_not(a: Any) -> Tensor:
    """Elementwise ``not a`` (nonzero is true), a bool tensor."""
    return untaped("logical_not", {"a": a}, Tensor(np.logical_not(_data(a))))


@validate.torch_names
def count_nonzero(a: Any, axis: int | tuple[int, ...] | None = None) -> Tensor:
    """The number of nonzero elements over ``axis`` (all if None), as int64."""
    data = np.asarray(_data(a))
    axes = validate.axes("count_nonzero", "dim", axis, data.ndim, empty=False)
    return Tensor(np.count_nonzero(data, axis=axes).astype(np.int64))
