"""Reductions over axes. Backward spreads the upstream gradient back over the reduced axes.

any, all, argmax and argmin give bool or integer tensors, so they are plain functions, not ops.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.engine import backend
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.ops import elementwise as _elementwise
from chainrule.ops.sort import ValuesIndices, _PickOp, as_lines, as_tensor, dtype_arg
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
        empty = [i for i in ctx.axes if a.shape[i] == 0]
        if empty:  # an empty tensor reduced along its other dims is fine, as in PyTorch
            raise ValueError(f"{cls.name}: cannot reduce over dim {empty[0]} of size 0: it has "
                             "no maximum or minimum")
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
        if a.dtype.kind != "f":  # bool and integers: in the default float dtype, as PyTorch
            a = a.astype(backend.get_default_dtype())
        # initial: the log of an empty sum is -inf, as in PyTorch, not NumPy's error
        shift = np.max(a, axis=ctx.axes, keepdims=True, initial=-np.inf)
        shift = np.where(np.isfinite(shift), shift, 0)
        with np.errstate(divide="ignore"):  # log(0) = -inf: an empty sum, or all -inf
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


class ModeOp(_PickOp):
    """the most frequent value along an axis (the smallest of equally frequent ones);  d/da =
    grad put back at its index, the last place it occurs, as in PyTorch"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int = -1, keepdims: bool = False,
                indices: np.ndarray | None = None) -> np.ndarray:
        axis = _axis("mode", "dim", axis, a.ndim)
        keepdims = boolean("mode", "keepdims", keepdims)
        lines = as_lines(a)
        if indices is None:
            indices = _mode_indices(lines, axis)
        _PickOp.keep(ctx, a, lines, indices, axis, False)
        values = np.take_along_axis(lines, indices, axis)
        if a.ndim == 0:
            return values.reshape(())
        return values if keepdims else np.squeeze(values, axis)


def _mode_indices(lines: np.ndarray, axis: int) -> np.ndarray:
    """Where the mode of each line is, keeping the axis (size 1): runs of equal values in the
    sorted line are counted, the first longest run (the smallest value) wins."""
    size = lines.shape[axis]
    if size == 0:
        raise ValueError(f"mode: cannot take the mode along dim {axis} of size 0")
    moved = np.moveaxis(lines, axis, -1)
    flat = moved.reshape(-1, size)
    rows = flat.shape[0]
    ordered = np.sort(flat, axis=1)
    starts = np.ones(flat.shape, bool)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    runs = np.arange(rows)[:, None] * size + np.cumsum(starts, axis=1) - 1
    best = np.argmax(np.bincount(runs.ravel(), minlength=rows * size)[runs], axis=1)
    value = ordered[np.arange(rows), best][:, None]
    hits = flat == value
    if flat.dtype.kind == "f":
        hits |= np.isnan(flat) & np.isnan(value)
    last = np.where(hits, np.arange(size), -1).max(axis=1)
    return np.moveaxis(last.reshape(moved.shape[:-1] + (1,)), -1, axis)


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
def mode(a: Any, axis: int = -1, keepdims: bool = False) -> ValuesIndices:
    """The most frequent value along ``axis`` (the smallest if several are) and the index of
    its last occurrence: (values, indices), as torch.mode."""
    x = as_tensor(a, "mode")
    axis = _axis("mode", "dim", axis, x.ndim)
    indices = _mode_indices(as_lines(x._data), axis)
    values = ModeOp.apply(x, axis=axis, keepdims=keepdims, indices=indices)
    return ValuesIndices(values, Tensor(indices.reshape(values.shape)))


def _is_other(value: Any) -> bool:
    """Whether max's second argument is torch's ``other`` tensor: one with dims (a 0-d tensor
    stays refused as an axis, which it cannot be)."""
    return isinstance(value, (Tensor, np.ndarray)) and value.ndim > 0


def _elementwise_form(op: str, other: Any, keepdims: Any) -> None:
    """torch.max(a, b) is maximum(a, b): it takes no keepdim."""
    if keepdims is not False:
        raise TypeError(f"{op}(input, other) compares two tensors elementwise and takes no "
                        "keepdim; pass a dim (an int) to reduce")


@torch_names
def max(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Maximum over ``axis`` (values only; use argmax for indices); ``max(a, b)`` with a tensor
    ``b`` is ``maximum(a, b)``, as in PyTorch."""
    if _is_other(axis):
        _elementwise_form("max", axis, keepdims)
        return _elementwise.maximum(a, axis)
    return MaxOp.apply(a, axis=axis, keepdims=keepdims)


@torch_names
def min(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Minimum over ``axis`` (values only; use argmin for indices); ``min(a, b)`` with a tensor
    ``b`` is ``minimum(a, b)``, as in PyTorch."""
    if _is_other(axis):
        _elementwise_form("min", axis, keepdims)
        return _elementwise.minimum(a, axis)
    return MinOp.apply(a, axis=axis, keepdims=keepdims)


def _correction(op: str, unbiased: Any, correction: Any) -> Any:
    """The correction from PyTorch's two spellings: ``unbiased`` (True: N - 1, False: N) or
    ``correction`` (1 if neither is given); not both."""
    if unbiased is None:
        return 1 if correction is None else correction
    if correction is not None:
        raise TypeError(f"{op}: got both unbiased= and correction=; pass one (unbiased=True "
                        "is correction=1)")
    return 1 if boolean(op, "unbiased", unbiased) else 0


def _torch_var_args(op: str, axis: Any, unbiased: Any) -> tuple[Any, Any]:
    """PyTorch's ``var(x, unbiased)`` overload: a bool where the axis goes is ``unbiased``."""
    if axis is True or axis is False or isinstance(axis, np.bool_):
        if unbiased is not None:
            raise TypeError(f"{op}: got unbiased twice (a bool in the dim's place is "
                            "unbiased, as in torch.var(x, False))")
        return None, bool(axis)
    return axis, unbiased


@torch_names
def var(a: Any, axis: Axis = None, unbiased: bool | None = None, keepdims: bool = False, *,
        correction: float | None = None) -> Tensor:
    """Variance over ``axis``, dividing by N - ``correction`` (1 by default, as PyTorch);
    ``unbiased=False`` is correction 0. Positional arguments follow torch.var:
    ``var(x, dim, unbiased, keepdim)`` and ``var(x, unbiased)``."""
    axis, unbiased = _torch_var_args("var", axis, unbiased)
    correction = _correction("var", unbiased, correction)
    return VarOp.apply(a, axis=axis, keepdims=keepdims, correction=correction)


@torch_names
def std(a: Any, axis: Axis = None, unbiased: bool | None = None, keepdims: bool = False, *,
        correction: float | None = None) -> Tensor:
    """Standard deviation over ``axis``; arguments as in ``var``."""
    axis, unbiased = _torch_var_args("std", axis, unbiased)
    correction = _correction("std", unbiased, correction)
    return StdOp.apply(a, axis=axis, keepdims=keepdims, correction=correction)


@torch_names
def logsumexp(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """log(sum(exp(a))) over ``axis``, stable for large values."""
    return LogSumExpOp.apply(a, axis=axis, keepdims=keepdims)
