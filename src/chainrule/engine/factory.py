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
    """A tensor filled with ``value``; its dtype follows the value as in PyTorch (a bool gives
    bool, an int int64, a float the default dtype) unless ``dtype`` is given."""
    if dtype is None:
        dtype = _value_dtype(value)
    return Tensor(np.full(_shape((shape,)), value, np.dtype(dtype)),
                  requires_grad=requires_grad)


def _value_dtype(value: Any) -> np.dtype:
    """The dtype PyTorch infers for a Python number."""
    if isinstance(value, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(value, (int, np.integer)):
        return np.dtype(np.int64)
    if isinstance(value, (float, np.floating)):
        return backend.get_default_dtype()
    raise TypeError(f"full: fill value must be a number, got {type(value).__name__}")


def empty(*shape: Shape, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """A tensor whose values are not set (NumPy's empty; read nothing from it before writing)."""
    return Tensor(np.empty(_shape(shape), _float_dtype(dtype)), requires_grad=requires_grad)


def _like(other: Any, dtype: Any) -> tuple[tuple[int, ...], np.dtype]:
    data = other.data if isinstance(other, Tensor) else np.asarray(other)
    return data.shape, data.dtype if dtype is None else backend.check_dtype(
        np.dtype(dtype), "dtype")


def zeros_like(other: Tensor | np.ndarray, dtype: Any = None,
               requires_grad: bool = False) -> Tensor:
    """Zeros with the shape of ``other`` and its dtype (or ``dtype``)."""
    shape, dtype = _like(other, dtype)
    return Tensor(np.zeros(shape, dtype), requires_grad=requires_grad)


def ones_like(other: Tensor | np.ndarray, dtype: Any = None,
              requires_grad: bool = False) -> Tensor:
    """Ones with the shape of ``other`` and its dtype (or ``dtype``)."""
    shape, dtype = _like(other, dtype)
    return Tensor(np.ones(shape, dtype), requires_grad=requires_grad)


def full_like(other: Tensor | np.ndarray, value: float, dtype: Any = None,
              requires_grad: bool = False) -> Tensor:
    """``value`` everywhere, with the shape of ``other`` and its dtype (or ``dtype``)."""
    shape, dtype = _like(other, dtype)
    return Tensor(np.full(shape, value, dtype), requires_grad=requires_grad)


def empty_like(other: Tensor | np.ndarray, dtype: Any = None,
               requires_grad: bool = False) -> Tensor:
    """An unset tensor with the shape of ``other`` and its dtype (or ``dtype``)."""
    shape, dtype = _like(other, dtype)
    return Tensor(np.empty(shape, dtype), requires_grad=requires_grad)


def rand_like(other: Tensor | np.ndarray, dtype: Any = None, requires_grad: bool = False,
              generator: np.random.Generator | None = None) -> Tensor:
    """Uniform [0, 1) values with the shape of ``other`` (its float dtype, or ``dtype``)."""
    shape, dtype = _like(other, dtype)
    if dtype.kind != "f":
        raise TypeError(f"rand_like: random values need a float dtype, got {dtype}; pass "
                        "dtype=np.float32")
    return rand(shape, dtype=dtype, requires_grad=requires_grad, generator=generator)


def randn_like(other: Tensor | np.ndarray, dtype: Any = None, requires_grad: bool = False,
               generator: np.random.Generator | None = None) -> Tensor:
    """Standard normal values with the shape of ``other`` (its float dtype, or ``dtype``)."""
    shape, dtype = _like(other, dtype)
    if dtype.kind != "f":
        raise TypeError(f"randn_like: random values need a float dtype, got {dtype}; pass "
                        "dtype=np.float32")
    return randn(shape, dtype=dtype, requires_grad=requires_grad, generator=generator)


def eye(n: int, m: int | None = None, dtype: Any = None, requires_grad: bool = False) -> Tensor:
    """An identity matrix (n by m)."""
    return Tensor(np.eye(n, m, dtype=_float_dtype(dtype)), requires_grad=requires_grad)


def arange(start: float, end: float | None = None, step: float = 1, dtype: Any = None,
           requires_grad: bool = False) -> Tensor:
    """Evenly spaced values in [start, end) (``arange(n)``: 0 to n - 1).

    As in PyTorch: integer arguments give int64, a float among them the default dtype; with an
    integer ``dtype`` start, end and step are first truncated to integers. A step of 0, a step
    pointing away from ``end``, and values that do not fit ``dtype`` are errors.
    """
    if end is None:
        start, end = 0, start
    for name, value in (("start", start), ("end", end), ("step", step)):
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"arange: {name} must be a number, got {value!r}")
        if not np.isfinite(value):
            raise ValueError(f"arange: {name} must be finite, got {value}")
    floats = any(isinstance(v, (float, np.floating)) for v in (start, end, step))
    if dtype is None:
        dtype = backend.get_default_dtype() if floats else np.dtype(np.int64)
    dtype = backend.check_dtype(np.dtype(dtype), "arange dtype")
    if step == 0 or (dtype.kind in "iub" and int(step) == 0):
        raise ValueError(f"arange: step must be nonzero{'' if step == 0 else ' as an integer'}"
                         f", got {step}")
    if (end - start) * step < 0:
        raise ValueError(f"arange: a step of {step} never goes from {start} to {end}; "
                         "swap them or flip the step's sign")
    # PyTorch counts the values with the arguments as given (for int64: truncated first), then
    # computes them, for an integer dtype, from the truncated start and step.
    if dtype == np.int64:
        start, end, step = int(start), int(end), int(step)
    if all(isinstance(v, (int, np.integer)) for v in (start, end, step)):
        count = max(-((int(start) - int(end)) // int(step)), 0)  # exact, even near 2**63
    else:
        count = max(int(np.ceil((end - start) / step)), 0)
    if dtype.kind in "iub":
        start, step = int(start), int(step)
    if dtype.kind in "iu" and count:
        last = start + (count - 1) * step
        info = np.iinfo(dtype)
        if not (info.min <= min(start, last) and max(start, last) <= info.max):
            raise ValueError(f"arange: values from {start} to {last} do not fit in {dtype} "
                             f"({info.min} to {info.max}); use a wider dtype such as int64")
        values = start + np.arange(count, dtype=np.int64) * step
    else:
        values = start + np.arange(count, dtype=np.float64) * step
    return Tensor(values.astype(dtype), requires_grad=requires_grad)


def linspace(start: float, end: float, steps: int, dtype: Any = None,
             requires_grad: bool = False) -> Tensor:
    """``steps`` evenly spaced values from start to end inclusive. Integer dtypes follow
    PyTorch: start and end are truncated to integers first, then each value toward zero."""
    from chainrule import validate

    steps = validate.integer("linspace", "steps", steps, low=0)
    dtype = backend.check_dtype(_float_dtype(dtype), "linspace dtype")
    if dtype.kind not in "iu":
        return Tensor(np.linspace(start, end, steps).astype(dtype), requires_grad=requires_grad)
    first, last = int(start), int(end)
    info = np.iinfo(dtype)
    if steps and not (info.min <= min(first, last) and max(first, last) <= info.max):
        raise ValueError(f"linspace: values from {start} to {end} do not fit in {dtype} "
                         f"({info.min} to {info.max}); use a wider dtype such as int64")
    if steps == 1:
        return Tensor(np.full(1, first, dtype))
    # PyTorch's kernel: a float64 step, each value counted from the nearer end with one fused
    # multiply-add (a single rounding, which extended precision reproduces), then truncated.
    index = np.arange(steps).astype(np.longdouble)
    step = np.longdouble((last - first) / (steps - 1))
    values = np.where(index < steps // 2, first + step * index,
                      last - step * (steps - 1 - index)).astype(np.float64)
    return Tensor(np.trunc(values).astype(dtype))


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


def randperm(n: int, dtype: Any = np.int64, generator: np.random.Generator | None = None
             ) -> Tensor:
    """A random permutation of 0 .. n - 1 (int64 by default)."""
    from chainrule import validate

    n = validate.integer("randperm", "n", n, low=0)
    rng = generator or backend.default_generator()
    return Tensor(rng.permutation(n).astype(dtype))
