"""Reductions over the rows or columns of a matrix, and the constant arrays losses reuse.

NumPy reduces along an axis with a loop per output element, which is slow in two common
shapes: a column sum over many rows of few columns, and a row-wise reduction of a batch of
few classes. Both are rewritten as what the hardware does well: a product with a vector of
ones (BLAS, every core), or a reduction over a transposed copy (one long loop per column).
"""

from __future__ import annotations

from typing import Any

import numpy as np

CHUNK = 128  # rows summed in the input's precision before the float64 total takes over
FEW = 32  # classes up to which row-wise work on (N, C) scores goes column by column

_CONSTANTS: dict[tuple, np.ndarray] = {}


def precise_column_sums(block: np.ndarray) -> np.ndarray:
    """Per-column sums of a (rows, C) block, in float64.

    Chunks of CHUNK rows are summed by one BLAS product with a vector of ones, the chunk
    totals in float64: the rounding error stays near float64's over the whole sum, while a
    plain float32 sum over thousands of rows drifts.
    """
    whole = len(block) // CHUNK * CHUNK
    ones = np.ones(CHUNK, block.dtype)
    total = (ones @ block[:whole].reshape(whole // CHUNK, CHUNK, block.shape[1])).sum(
        axis=0, dtype=np.float64)
    if whole < len(block):
        total += block[whole:].sum(axis=0, dtype=np.float64)
    return total


def precise_column_sums_reference(block: np.ndarray) -> np.ndarray:
    """Per-column sums of a (rows, C) block, in float64."""
    return block.sum(axis=0, dtype=np.float64)


def column_sums(matrix: np.ndarray) -> np.ndarray:
    """Per-column sums of a (rows, C) matrix in its dtype, as one vector-matrix product.

    BLAS's product sums over the rows on every core; ``matrix.sum(0)`` uses one.
    """
    return np.ones(len(matrix), matrix.dtype) @ matrix


def column_sums_reference(matrix: np.ndarray) -> np.ndarray:
    """Per-column sums of a (rows, C) matrix in its dtype."""
    return matrix.sum(axis=0)


def row_sums(a: np.ndarray) -> np.ndarray:
    """Sums of the rows of (N, C) ``a``, shaped (N, 1).

    With few columns, a product with a column of ones sums all rows at once (BLAS);
    reducing each short row costs NumPy a loop set-up per row.
    """
    if a.shape[1] <= FEW:
        return a @ cached_ones((a.shape[1], 1), a.dtype)
    return np.add.reduce(a, axis=1, keepdims=True)


def row_sums_reference(a: np.ndarray) -> np.ndarray:
    """Sums of the rows of (N, C) ``a``, shaped (N, 1)."""
    return a.sum(axis=1, keepdims=True)


def max_along(a: np.ndarray, axis: int) -> np.ndarray:
    """The max of ``a`` along ``axis``, the axis kept with size 1.

    For (N, C) scores with few classes the transposed copy reduces all rows at once, column
    by column. The ufunc's own reduce is called, not ``ndarray.max``, whose Python wrapper
    costs more than the work at a loss's sizes.
    """
    if a.ndim == 2 and axis % 2 == 1 and a.shape[1] <= FEW:
        return np.maximum.reduce(np.ascontiguousarray(a.T), axis=0)[:, None]
    return np.maximum.reduce(a, axis=axis, keepdims=True)


def max_along_reference(a: np.ndarray, axis: int) -> np.ndarray:
    """The max of ``a`` along ``axis``, the axis kept with size 1."""
    return np.max(a, axis=axis, keepdims=True)


def cached_ones(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A read-only array of ones, made once per shape and dtype (np.ones is Python code)."""
    key = ("ones", shape, np.dtype(dtype))
    array = _CONSTANTS.get(key)
    if array is None:
        array = _remember(key, np.ones(shape, dtype))
    return array


def cached_ones_reference(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """A read-only array of ones."""
    return _read_only(np.ones(shape, dtype))


def cached_arange(n: int, dtype: Any) -> np.ndarray:
    """A read-only 0, 1, ..., n - 1, made once per length and dtype."""
    key = ("arange", n, np.dtype(dtype))
    array = _CONSTANTS.get(key)
    if array is None:
        array = _remember(key, np.arange(n, dtype=dtype))
    return array


def cached_arange_reference(n: int, dtype: Any) -> np.ndarray:
    """A read-only 0, 1, ..., n - 1."""
    return _read_only(np.arange(n, dtype=dtype))


def _remember(key: tuple, array: np.ndarray) -> np.ndarray:
    if len(_CONSTANTS) < 256:  # a bound, for programs that see many batch sizes
        _CONSTANTS[key] = array
    return _read_only(array)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array
