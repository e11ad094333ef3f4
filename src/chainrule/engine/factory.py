"""Making tensors: from data, filled with a value, or drawn from a seeded generator."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.engine import backend
from chainrule.engine.tensor import Tensor

Shape = int | Sequence[int]


def _shape(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _float_dtype(dtype: Any) -> np.dtype:
    return backend.get_default_dtype() if dtype is None else np.dtype(dtype)


def tensor(data: Any, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor from nested lists, a number or an array (copied).

    Python floats become the default dtype (float32); NumPy float64 arrays stay float64;
    Python ints become int64.
    """
    if isinstance(data, Tensor):
        data = data.data
    copied = np.array(data, dtype=dtype, copy=True) if isinstance(data, np.ndarray) else data
    return Tensor(copied, dtype=dtype, requires_grad=requires_grad)


def from_numpy(array: np.ndarray, requires_grad: bool = False) -> Tensor:
    """A tensor sharing memory with ``array`` (its dtype is kept)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array, requires_grad=requires_grad)


def zeros(*shape: Shape, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of zeros."""
    return Tensor(np.zeros(_shape(shape), _float_dtype(dtype)), requires_grad=requires_grad)


def ones(*shape: Shape, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor of ones."""
    return Tensor(np.ones(_shape(shape), _float_dtype(dtype)), requires_grad=requires_grad)


def full(shape: Shape, value: float, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor filled with ``value``."""
    return Tensor(np.full(_shape((shape,)), value, _float_dtype(dtype)),
                  requires_grad=requires_grad)


def zeros_like(other: Tensor | np.ndarray, requires_grad: bool = False) -> Tensor:
    """Zeros with the shape and dtype of ``other``."""
    return Tensor(np.zeros_like(np.asarray(other)), requires_grad=requires_grad)


def ones_like(other: Tensor | np.ndarray, requires_grad: bool = False) -> Tensor:
    """Ones with the shape and dtype of ``other``."""
    return Tensor(np.ones_like(np.asarray(other)), requires_grad=requires_grad)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """An identity matrix (n by m)."""
    return Tensor(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def arange(start: float, stop: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in [start, stop); integers give int64 unless a dtype is given."""
    values = np.arange(start, stop, step) if stop is not None else np.arange(start)
    if dtype is None and values.dtype.kind == "f":
        dtype = backend.get_default_dtype()
    return Tensor(values, dtype=dtype, requires_grad=requires_grad)


def linspace(start: float, stop: float, num: int, dtype: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``num`` evenly spaced values from start to stop inclusive."""
    return Tensor(np.linspace(start, stop, num, dtype=_float_dtype(dtype)),
                  requires_grad=requires_grad)


def randn(*shape: Shape, dtype: Any = None, requires_grad: bool = False,
          generator: np.random.Generator | None = None) -> Tensor:
    """Standard normal samples from ``generator`` (the library's seeded one by default)."""
    rng = generator or backend.default_generator()
    dtype = _float_dtype(dtype)
    return Tensor(rng.standard_normal(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def rand(*shape: Shape, dtype: Any = None, requires_grad: bool = False,
         generator: np.random.Generator | None = None) -> Tensor:
    """Uniform samples in [0, 1)."""
    rng = generator or backend.default_generator()
    dtype = _float_dtype(dtype)
    return Tensor(rng.random(_shape(shape), dtype=dtype), requires_grad=requires_grad)


def randint(low: int, high: int, shape: Shape, generator: np.random.Generator | None = None
            ) -> Tensor:
    """Random int64 values in [low, high)."""
    rng = generator or backend.default_generator()
    return Tensor(rng.integers(low, high, _shape((shape,)), dtype=np.int64))
