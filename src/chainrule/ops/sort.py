"""Sorting: sort, argsort and topk, and what the ops returning (values, indices) share.

Such an op picks values out of its input along one axis; its backward puts each upstream
gradient back at the position its value came from (positions picked twice add up).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from chainrule.engine import backend
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor, _as_data
from chainrule.validate import axis as _axis
from chainrule.validate import boolean, integer, torch_names


class ValuesIndices(NamedTuple):
    """What sort, topk, cummax, median(dim), ... return, as PyTorch's ``return_types``."""

    values: Tensor
    indices: Tensor


# ----------------------------------------------------------------------------- shared helpers
def as_tensor(value: Any, owner: str) -> Tensor:
    """``value`` itself if it is a tensor, else a new tensor of it (an error names ``owner``)."""
    return value if isinstance(value, Tensor) else Tensor(_as_data(value, where=owner))


def dtype_arg(owner: str, value: Any) -> np.dtype | None:
    """A ``dtype=`` argument as a NumPy dtype chainrule tensors hold (None passes through)."""
    if value is None:
        return None
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"{owner}: dtype must be a NumPy dtype (np.float64, 'int64', ...), got "
                        f"{value!r} ({type(value).__name__})") from None
    return backend.check_dtype(dtype, f"{owner}: dtype")


def cast(tensor: Tensor, dtype: np.dtype | None) -> Tensor:
    """``tensor`` converted to ``dtype`` first, as PyTorch's ``dtype=`` does (None: as is)."""
    if dtype is None or tensor.dtype == dtype:
        return tensor
    return tensor.astype(dtype)


def as_lines(a: np.ndarray) -> np.ndarray:
    """A 0-d array as one line of one element: PyTorch lets such a tensor take dim 0."""
    return a.reshape(1) if a.ndim == 0 else a


def scatter(grad: np.ndarray, indices: np.ndarray, axis: int, shape: tuple[int, ...],
            repeats: bool = False) -> np.ndarray:
    """The adjoint of ``take_along_axis(a, indices, axis)``: zeros of ``shape`` with ``grad``
    put at ``indices``; with ``repeats`` an index met twice gets the sum of its gradients."""
    if not repeats or not grad.size:  # nothing repeats in an empty tensor (nor reshapes)
        out = np.zeros(shape, grad.dtype)
        np.put_along_axis(out, indices, grad, axis)
        return out
    # One flat bincount over (line, position) pairs: exact sums, no Python loop.
    size = shape[axis]
    idx = np.moveaxis(indices, axis, -1)
    lines = idx.shape[:-1]
    flat = (np.arange(int(np.prod(lines)))[:, None] * size
            + idx.reshape(-1, idx.shape[-1])).ravel()
    sums = np.bincount(flat, weights=np.moveaxis(grad, axis, -1).ravel(),
                       minlength=int(np.prod(lines)) * size)
    return np.moveaxis(sums.reshape(lines + (size,)), -1, axis).astype(grad.dtype, copy=False)


def stable_order(a: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Stable argsort along ``axis``: equal values keep their order, NaN counts as largest."""
    if not descending:
        return np.argsort(a, axis=axis, kind="stable")
    # Ascending on the reversed line, read backwards: values descend, ties keep their order
    # and NaN comes first, as in PyTorch. (Negating would break NaN, bool and unsigned.)
    order = np.argsort(np.flip(a, axis), axis=axis, kind="stable")
    return a.shape[axis] - 1 - np.flip(order, axis)


class _PickOp(Function, register=False):
    """Values taken from ``a`` at ``indices`` along an axis;  d/da = grad put back there."""

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        grad = grad.reshape(ctx.indices.shape)
        out = scatter(grad, ctx.indices, ctx.axis, ctx.lines, ctx.repeats)
        return out.reshape(ctx.shape)

    @staticmethod
    def keep(ctx: Context, a: np.ndarray, lines: np.ndarray, indices: np.ndarray,
             axis: int, repeats: bool) -> None:
        """Save what ``backward`` needs; ``repeats``: a position may be picked twice per line."""
        ctx.indices, ctx.axis, ctx.lines, ctx.shape = indices, axis, lines.shape, a.shape
        ctx.repeats = repeats


# ----------------------------------------------------------------------------- sort
class SortOp(_PickOp):
    """a sorted along axis (stable);  d/da = grad put back at each value's old position"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int = -1, descending: bool = False,
                indices: np.ndarray | None = None) -> np.ndarray:
        axis = _axis("sort", "dim", axis, a.ndim)
        lines = as_lines(a)
        if indices is None:
            indices = stable_order(lines, axis, boolean("sort", "descending", descending))
        indices = as_lines(indices)
        _PickOp.keep(ctx, a, lines, indices, axis, False)
        return np.take_along_axis(lines, indices, axis).reshape(a.shape)


class TopKOp(_PickOp):
    """the k largest (or smallest) along axis;  d/da = grad put back at the chosen positions"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, k: int = 1, axis: int = -1, largest: bool = True,
                sorted: bool = True, indices: np.ndarray | None = None) -> np.ndarray:
        axis = _axis("topk", "dim", axis, a.ndim)
        lines = as_lines(a)
        if indices is None:
            indices = _topk_indices(lines, k, axis, largest, sorted)
        _PickOp.keep(ctx, a, lines, indices, axis, False)
        values = np.take_along_axis(lines, indices, axis)
        return values.reshape(()) if a.ndim == 0 and values.size == 1 else values


def _topk_indices(lines: np.ndarray, k: Any, axis: int, largest: Any,
                  sorted: Any) -> np.ndarray:  # noqa: A002 - PyTorch's name
    size = lines.shape[axis]
    k = integer("topk", "k", k, low=0)
    if k > size:
        raise ValueError(f"topk: k={k} is larger than the {size} elements along dim {axis}; "
                         f"pass k <= {size}")
    boolean("topk", "sorted", sorted)  # sorted=False allows any order: sorted is one
    order = stable_order(lines, axis, boolean("topk", "largest", largest))
    return np.take(order, np.arange(k), axis=axis)


# ----------------------------------------------------------------------------- public
@torch_names
def sort(a: Any, axis: int = -1, descending: bool = False, stable: bool = False
         ) -> ValuesIndices:
    """Sort along ``axis``: (values, indices); equal values keep their order (always stable)."""
    x = as_tensor(a, "sort")
    boolean("sort", "stable", stable)  # the sort is stable either way
    axis = _axis("sort", "dim", axis, x.ndim)
    indices = stable_order(as_lines(x._data), axis, boolean("sort", "descending", descending))
    values = SortOp.apply(x, axis=axis, indices=indices)
    return ValuesIndices(values, Tensor(indices.reshape(x.shape)))


@torch_names
def argsort(a: Any, axis: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """The indices that sort ``a`` along ``axis`` (int64; stable; no gradient)."""
    x = as_tensor(a, "argsort")
    boolean("argsort", "stable", stable)
    axis = _axis("argsort", "dim", axis, x.ndim)
    order = stable_order(as_lines(x._data), axis, boolean("argsort", "descending", descending))
    return Tensor(order.reshape(x.shape))


@torch_names
def topk(a: Any, k: int, axis: int = -1, largest: bool = True, sorted: bool = True  # noqa: A002
         ) -> ValuesIndices:
    """The ``k`` largest (``largest=False``: smallest) values along ``axis``, and their indices.

    Equal values are taken in the order they come in (PyTorch leaves the order of ties open).
    """
    x = as_tensor(a, "topk")
    axis = _axis("topk", "dim", axis, x.ndim)
    indices = _topk_indices(as_lines(x._data), k, axis, largest, sorted)
    values = TopKOp.apply(x, k=k, axis=axis, indices=indices)
    return ValuesIndices(values, Tensor(indices.reshape(values.shape)))
