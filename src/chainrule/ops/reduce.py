"""Reductions over axes. Backward spreads the upstream gradient back over the reduced axes.

any, all, argmax and argmin give bool or integer tensors, so they are plain functions, not ops.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.ops.sort import ValuesIndices, as_tensor, dtype_arg
from chainrule.validate import axes as _axes
from chainrule.validate import axis as _axis
from chainrule.validate import boolean, real, torch_names

Axis = int | Sequence[int] | None
_INT64 = np.dtype(np.int64)
# This module defines sum, max and min as ops; Python's own are reached as builtins.max etc.


def _spread(grad: np.ndarray, axes: tuple[int, ...], keepdims: bool,
            shape: tuple[int, ...]) -> np.ndarray:
    """Give the reduced axes back to ``grad`` (as size 1) and broadcast it to ``shape``."""
    if not keepdims:
        grad = np.expand_dims(grad, axes)
    return np.broadcast_to(grad, shape)


class SumOp(Function):
    """sum over axes;  every input element gets the upstream gradient of its sum"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: Axis = None, keepdims: bool = False,
                dtype: np.dtype | None = None) -> np.ndarray:
        ctx.axes = _axes("sum", "axis", axis, a.ndim, empty=False)
        if keepdims is not True and keepdims is not False:
            keepdims = boolean("sum", "keepdims", keepdims)
        ctx.keepdims, ctx.shape = keepdims, a.shape
        if dtype is None and a.dtype.kind != "f":
            dtype = _INT64  # PyTorch sums bool and every integer dtype in int64
        return a.sum(axis=ctx.axes, keepdims=keepdims, dtype=dtype)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return _spread(grad, ctx.axes, ctx.keepdims, ctx.shape)


class MeanOp(Function):
    """mean over axes;  every input element gets grad / (number of elements averaged)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: Axis = None, keepdims: bool = False,
                dtype: np.dtype | None = None) -> np.ndarray:
        ctx.axes = _axes("mean", "axis", axis, a.ndim, empty=False)
        if keepdims is not True and keepdims is not False:
            keepdims = boolean("mean", "keepdims", keepdims)
        if (a.dtype.kind != "f" and dtype is None) or (dtype is not None and dtype.kind != "f"):
            got = a.dtype if dtype is None else dtype
            raise TypeError(f"mean: needs a floating tensor or dtype, got {got} (PyTorch "
                            "refuses it too); convert first (x.float(), x.double()) or pass "
                            "dtype=np.float32")
        ctx.keepdims, ctx.shape = keepdims, a.shape
        ctx.count = int(np.prod([a.shape[i] for i in ctx.axes]))
        if ctx.count == 0:  # the mean of nothing is NaN, as in PyTorch, without a warning
            return np.full(np.sum(a, axis=ctx.axes, keepdims=keepdims).shape, np.nan,
                           a.dtype if dtype is None else dtype)
        return a.mean(axis=ctx.axes, keepdims=keepdims, dtype=dtype)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        if ctx.count == 0:  # no element to send a gradient to
            return np.zeros(ctx.shape, grad.dtype)
        return _spread(grad / ctx.count, ctx.axes, ctx.keepdims, ctx.shape)


class _ExtremeOp(Function, register=False):
    """Shared backward of max and min: the elements equal to the result share its gradient."""

    reduce: Any = None

    @classmethod
    def forward(cls, ctx: Context, a: np.ndarray, axis: Axis = None,
                keepdims: bool = False) -> np.ndarray:
        ctx.axes = _axes(cls.name, "axis", axis, a.ndim, empty=False)
        if keepdims is not True and keepdims is not False:
            keepdims = boolean(cls.name, "keepdims", keepdims)
        if a.size == 0:
            raise ValueError(f"{cls.name}: cannot reduce an empty tensor")
        out = cls.reduce(a, axis=ctx.axes, keepdims=True)
        ctx.a, ctx.out, ctx.keepdims = a, out, keepdims
        return out if keepdims else np.squeeze(out, ctx.axes)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        hits = ctx.a == ctx.out
        # Ties split the gradient equally (as torch.amax does), so the sum is preserved.
        share = hits / hits.sum(axis=ctx.axes, keepdims=True)
        if not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axes)
        return (grad * share).astype(grad.dtype, copy=False)


class MaxOp(_ExtremeOp):
    """max over axes;  the gradient goes to the maximal elements"""

    reduce = staticmethod(np.max)


class MinOp(_ExtremeOp):
    """min over axes;  the gradient goes to the minimal elements"""

    reduce = staticmethod(np.min)


class VarOp(Function):
    """sum((a - mean)^2) / (N - correction);  d/da = 2 (a - mean) / (N - correction)

    The mean's own dependence on ``a`` drops out because sum(a - mean) = 0.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: Axis = None, keepdims: bool = False,
                correction: int = 1) -> np.ndarray:
        ctx.axes = _axes("var", "axis", axis, a.ndim, empty=False)
        if keepdims is not True and keepdims is not False:
            keepdims = boolean("var", "keepdims", keepdims)
        if type(correction) is not int:
            correction = real("var", "correction", correction)
        count = int(np.prod([a.shape[i] for i in ctx.axes]))
        ctx.divisor = builtins.max(count - correction, 0)
        ctx.centered = a - a.mean(axis=ctx.axes, keepdims=True)
        ctx.keepdims = keepdims
        squares = np.square(ctx.centered).sum(axis=ctx.axes, keepdims=keepdims)
        with np.errstate(divide="ignore", invalid="ignore"):
            return squares / ctx.divisor

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        if not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axes)
        # divisor 0 (one element, correction 1): nan like the forward, not ZeroDivisionError.
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad * (np.float64(2) / ctx.divisor) * ctx.centered


class StdOp(Function):
    """sqrt(var);  d/da = (a - mean) / ((N - correction) std)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: Axis = None, keepdims: bool = False,
                correction: int = 1) -> np.ndarray:
        ctx.axes = _axes("std", "axis", axis, a.ndim, empty=False)
        if keepdims is not True and keepdims is not False:
            keepdims = boolean("std", "keepdims", keepdims)
        if type(correction) is not int:
            correction = real("std", "correction", correction)
        count = int(np.prod([a.shape[i] for i in ctx.axes]))
        ctx.divisor = builtins.max(count - correction, 0)
        ctx.centered = a - a.mean(axis=ctx.axes, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            ctx.out = np.sqrt(np.square(ctx.centered).sum(axis=ctx.axes, keepdims=True)
                              / ctx.divisor)
        return ctx.out if keepdims else np.squeeze(ctx.out, ctx.axes)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        if grad.ndim != ctx.out.ndim:
            grad = np.expand_dims(grad, ctx.axes)
        # Where std is 0 every element equals the mean; take slope 0 there, as PyTorch does.
        denominator = ctx.divisor * ctx.out
        scale = np.divide(1, denominator, out=np.zeros_like(denominator),
                          where=denominator != 0)
        return grad * ctx.centered * scale


class LogSumExpOp(Function):
    """log(sum(exp(a)));  d/da = exp(a - out) = softmax(a)

    The max is subtracted before exponentiating so that large inputs do not overflow.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: Axis = None,
                keepdims: bool = False) -> np.ndarray:
        ctx.axes = _axes("logsumexp", "axis", axis, a.ndim, empty=False)
        if keepdims is not True and keepdims is not False:
            keepdims = boolean("logsumexp", "keepdims", keepdims)
        shift = np.max(a, axis=ctx.axes, keepdims=True)
        shift = np.where(np.isfinite(shift), shift, 0)
        out = np.log(np.exp(a - shift).sum(axis=ctx.axes, keepdims=True)) + shift
        ctx.a, ctx.out = a, out
        return out if keepdims else np.squeeze(out, ctx.axes)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        if grad.ndim != ctx.out.ndim:
            grad = np.expand_dims(grad, ctx.axes)
        return grad * np.exp(ctx.a - ctx.out)


def _others_product(a: np.ndarray, axis: int) -> np.ndarray:
    """prod_{j != i} a_j along ``axis``, without dividing: exact where some a_j are 0."""
    n = a.shape[axis]
    one = np.ones_like(np.take(a, [0], axis))
    before = np.concatenate([one, np.cumprod(np.take(a, range(n - 1), axis), axis)], axis)
    flipped = np.flip(a, axis)
    after = np.concatenate([one, np.cumprod(np.take(flipped, range(n - 1), axis), axis)], axis)
    return before * np.flip(after, axis)


class ProdOp(Function):
    """product over one axis or all;  d/da_i = grad * prod_{j != i} a_j

    Without zeros that is grad * out / a_i (PyTorch's formula). With zeros it is the product
    of the elements before i times that of those after i, which never divides by a zero.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int | None = None, keepdims: bool = False,
                dtype: np.dtype | None = None) -> np.ndarray:
        if axis is not None:
            axis = _axis("prod", "dim", axis, a.ndim)
        keepdims = boolean("prod", "keepdims", keepdims)
        ctx.axes = tuple(range(a.ndim)) if axis is None else (axis,) if a.ndim else ()
        if dtype is None and a.dtype.kind != "f":
            dtype = _INT64  # as PyTorch: bool and integer products are int64
        ctx.a, ctx.keepdims = a, keepdims
        ctx.out = a.prod(axis=ctx.axes, keepdims=True, dtype=dtype)
        return ctx.out if keepdims else np.squeeze(ctx.out, ctx.axes)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        a, axes = ctx.a, ctx.axes
        if not ctx.keepdims:
            grad = np.expand_dims(grad, axes)
        if not axes:
            return grad
        if not (a == 0).any():
            return grad * (ctx.out / a)
        if len(axes) == 1:
            return grad * _others_product(a, axes[0])
        return grad * _others_product(a.reshape(-1), 0).reshape(a.shape)


class MedianOp(Function):
    """the lower median, of all elements or along an axis

    Along an axis the median is one element: d/da = grad put back at its index. Of all
    elements, the gradient is shared equally by every element equal to the median, as in
    PyTorch. A line holding NaN has median NaN, found at its first NaN.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int | None = None, keepdims: bool = False,
                indices: np.ndarray | None = None) -> np.ndarray:
        keepdims = boolean("median", "keepdims", keepdims)
        ctx.a, ctx.axis, ctx.keepdims = a, axis, keepdims
        if axis is None:
            if a.size == 0:
                return np.full((), np.nan, a.dtype)
            flat = a.reshape(-1)
            ctx.out = flat[_median_indices(flat, 0)].reshape(())
            return ctx.out
        axis = ctx.axis = _axis("median", "dim", axis, a.ndim)
        lines = a.reshape(1) if a.ndim == 0 else a
        if indices is None:
            indices = _median_indices(lines, axis)
        ctx.indices = indices = indices.reshape(np.expand_dims(np.take(lines, 0, axis),
                                                               axis).shape)
        values = np.take_along_axis(lines, indices, axis)
        if a.ndim == 0:
            return values.reshape(())
        return values if keepdims else np.squeeze(values, axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        a = ctx.a
        if ctx.axis is None:
            if a.size == 0:
                return np.zeros(a.shape, grad.dtype)
            hits = np.isnan(a) if np.isnan(ctx.out) else a == ctx.out
            return np.where(hits, grad / np.count_nonzero(hits), 0).astype(grad.dtype)
        lines = a.reshape(1) if a.ndim == 0 else a
        out = np.zeros(lines.shape, grad.dtype)
        np.put_along_axis(out, ctx.indices, grad.reshape(ctx.indices.shape), ctx.axis)
        return out.reshape(a.shape)


def _median_indices(lines: np.ndarray, axis: int) -> np.ndarray:
    """Where the lower median of each line is, keeping the axis (size 1).

    Stable sorting decides between equal values, which gives PyTorch's choice of index.
    """
    size = lines.shape[axis]
    if size == 0:
        raise ValueError(f"median: cannot take the median along dim {axis} of size 0")
    order = np.argsort(lines, axis=axis, kind="stable")
    position = np.full(np.expand_dims(np.take(lines, 0, axis), axis).shape, (size - 1) // 2)
    if lines.dtype.kind == "f":
        nans = np.isnan(lines).sum(axis=axis, keepdims=True)
        position = np.where(nans > 0, size - nans, position)  # the first NaN, sorted last
    return np.take_along_axis(order, position, axis)


@torch_names
def sum(a: Any, axis: Axis = None, keepdims: bool = False, *,  # noqa: A001
        dtype: Any = None) -> Tensor:
    """Sum over ``axis`` (all axes if None); bool and integers sum in int64 unless ``dtype``."""
    if dtype is None:
        return SumOp.apply(a, axis=axis, keepdims=keepdims)
    return SumOp.apply(a, axis=axis, keepdims=keepdims, dtype=dtype_arg("sum", dtype))


@torch_names
def mean(a: Any, axis: Axis = None, keepdims: bool = False, *, dtype: Any = None) -> Tensor:
    """Mean over ``axis`` (all axes if None) of a floating tensor, or in a float ``dtype``."""
    if dtype is None:
        return MeanOp.apply(a, axis=axis, keepdims=keepdims)
    return MeanOp.apply(a, axis=axis, keepdims=keepdims, dtype=dtype_arg("mean", dtype))


@torch_names
def prod(a: Any, axis: int | None = None, keepdims: bool = False, *,
         dtype: Any = None) -> Tensor:
    """Product over one ``axis`` or all (None); bool and integers multiply in int64."""
    return ProdOp.apply(as_tensor(a, "prod"), axis=axis, keepdims=keepdims,
                        dtype=dtype_arg("prod", dtype))


@torch_names
def amax(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Maximum over ``axis`` (all axes if None): ``max`` under PyTorch's other name."""
    return MaxOp.apply(a, axis=axis, keepdims=keepdims)


@torch_names
def amin(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Minimum over ``axis`` (all axes if None): ``min`` under PyTorch's other name."""
    return MinOp.apply(a, axis=axis, keepdims=keepdims)


def _truth(reduce: Any, op: str, a: Any, axis: Axis, keepdims: bool) -> Tensor:
    data = as_tensor(a, op)._data
    axes = _axes(op, "dim", axis, data.ndim)
    keepdims = boolean(op, "keepdims", keepdims)
    out = reduce(data, axis=axes, keepdims=keepdims)
    # PyTorch keeps uint8 for uint8 input (its old boolean type) and gives bool otherwise.
    return Tensor(out.astype(np.uint8) if data.dtype == np.uint8 else np.asarray(out))


@torch_names
def any(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Whether any element over ``axis`` is nonzero, as a bool tensor (no gradient)."""
    return _truth(np.any, "any", a, axis, keepdims)


@torch_names
def all(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Whether every element over ``axis`` is nonzero, as a bool tensor (no gradient)."""
    return _truth(np.all, "all", a, axis, keepdims)


def _arg_extreme(find: Any, op: str, a: Any, axis: int | None, keepdims: bool) -> Tensor:
    data = as_tensor(a, op)._data
    keepdims = boolean(op, "keepdims", keepdims)
    if data.dtype.kind == "b":
        raise TypeError(f"{op}: does not take a bool tensor (PyTorch refuses it too); "
                        "convert it first, e.g. x.long()")
    if axis is None:
        if data.size == 0:
            raise ValueError(f"{op}: an empty tensor has no {op[3:]}imum; give a dim along "
                             "which the tensor is not empty")
        found = find(data.reshape(-1))
        return Tensor(np.full((1,) * data.ndim if keepdims else (), found, np.int64))
    axis = _axis(op, "dim", axis, data.ndim)
    if data.ndim == 0:
        return Tensor(np.zeros((), np.int64))  # its one element is at index 0, as in PyTorch
    if data.shape[axis] == 0:
        raise ValueError(f"{op}: dim {axis} has size 0, so it has no {op[3:]}imum")
    return Tensor(find(data, axis=axis, keepdims=keepdims).astype(np.int64, copy=False))


@torch_names
def argmax(a: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the maximum over ``axis`` (of the flattened tensor if None); the first of ties,
    NaN counting as largest; int64, no gradient."""
    return _arg_extreme(np.argmax, "argmax", a, axis, keepdims)


@torch_names
def argmin(a: Any, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """Index of the minimum over ``axis`` (of the flattened tensor if None); the first of ties,
    NaN counting as smallest; int64, no gradient."""
    return _arg_extreme(np.argmin, "argmin", a, axis, keepdims)


@torch_names
def median(a: Any, axis: int | None = None, keepdims: bool = False
           ) -> Tensor | ValuesIndices:
    """The lower median: of all elements (a 0-d tensor) or along ``axis`` (values, indices)."""
    x = as_tensor(a, "median")
    if axis is None:
        return MedianOp.apply(x)
    axis = _axis("median", "dim", axis, x.ndim)
    lines = x._data.reshape(1) if x.ndim == 0 else x._data
    indices = _median_indices(lines, axis)
    values = MedianOp.apply(x, axis=axis, keepdims=keepdims, indices=indices)
    return ValuesIndices(values, Tensor(indices.reshape(values.shape)))


@torch_names
def max(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis`` (values only; use argmax for indices)."""
    return MaxOp.apply(a, axis=axis, keepdims=keepdims)


@torch_names
def min(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over ``axis`` (values only; use argmin for indices)."""
    return MinOp.apply(a, axis=axis, keepdims=keepdims)


@torch_names
def var(a: Any, axis: Axis = None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Variance over ``axis``; ``correction=1`` (default) divides by N - 1, as PyTorch does."""
    return VarOp.apply(a, axis=axis, keepdims=keepdims, correction=correction)


@torch_names
def std(a: Any, axis: Axis = None, keepdims: bool = False, correction: int = 1) -> Tensor:
    """Standard deviation over ``axis``; ``correction`` as in ``var``."""
    return StdOp.apply(a, axis=axis, keepdims=keepdims, correction=correction)


@torch_names
def logsumexp(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(a))) over ``axis``, stable for large values."""
    return LogSumExpOp.apply(a, axis=axis, keepdims=keepdims)
