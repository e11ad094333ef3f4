"""Reductions over axes. Backward spreads the upstream gradient back over the reduced axes."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.validate import axes as _axes
from chainrule.validate import boolean, real, torch_names

Axis = int | Sequence[int] | None
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
    def forward(ctx: Context, a: np.ndarray, axis: Axis = None,
                keepdims: bool = False) -> np.ndarray:
        ctx.axes = _axes("sum", "axis", axis, a.ndim, empty=False)
        if keepdims is not True and keepdims is not False:
            keepdims = boolean("sum", "keepdims", keepdims)
        ctx.keepdims, ctx.shape = keepdims, a.shape
        return a.sum(axis=ctx.axes, keepdims=keepdims)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return _spread(grad, ctx.axes, ctx.keepdims, ctx.shape)


class MeanOp(Function):
    """mean over axes;  every input element gets grad / (number of elements averaged)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: Axis = None,
                keepdims: bool = False) -> np.ndarray:
        ctx.axes = _axes("mean", "axis", axis, a.ndim, empty=False)
        if keepdims is not True and keepdims is not False:
            keepdims = boolean("mean", "keepdims", keepdims)
        ctx.keepdims, ctx.shape = keepdims, a.shape
        ctx.count = int(np.prod([a.shape[i] for i in ctx.axes]))
        if ctx.count == 0:  # the mean of nothing is NaN, as in PyTorch, without a warning
            return np.full(np.sum(a, axis=ctx.axes, keepdims=keepdims).shape, np.nan, a.dtype)
        return a.mean(axis=ctx.axes, keepdims=keepdims)

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


@torch_names
def sum(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:  # noqa: A001
    """Sum over ``axis`` (all axes if None)."""
    return SumOp.apply(a, axis=axis, keepdims=keepdims)


@torch_names
def mean(a: Any, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """Mean over ``axis`` (all axes if None)."""
    return MeanOp.apply(a, axis=axis, keepdims=keepdims)


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
