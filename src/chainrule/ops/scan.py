"""Scans along one axis: cumsum, cumprod, cummax, cummin, logcumsumexp.

Output k along the axis depends on inputs 0..k, so each backward gathers, for input i, the
upstream gradients of outputs i..n-1: a cumulative sum taken from the end of the axis.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.ops.sort import ValuesIndices, _PickOp, as_lines, as_tensor, cast, dtype_arg
from chainrule.validate import axis as _axis
from chainrule.validate import torch_names


def _reverse_cumsum(x: np.ndarray, axis: int) -> np.ndarray:
    """out_i = sum of x_k for k >= i along ``axis``."""
    return np.flip(np.cumsum(np.flip(x, axis), axis), axis)


def _integers_to_int64(x: Tensor, dtype: np.dtype | None) -> np.dtype | None:
    """PyTorch sums and multiplies bool and integer tensors in int64 unless told otherwise."""
    if dtype is None and x.dtype.kind in "biu":
        return np.dtype(np.int64)
    return dtype


class CumsumOp(Function):
    """cumsum along axis;  d/da = reversed cumsum of grad"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int = 0) -> np.ndarray:
        ctx.axis = _axis("cumsum", "dim", axis, a.ndim)
        # dtype: NumPy would sum int32 (and smaller) in int64; the public function has already
        # cast to the dtype PyTorch computes in.
        return np.cumsum(as_lines(a), ctx.axis, dtype=a.dtype).reshape(a.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return _reverse_cumsum(as_lines(grad), ctx.axis).reshape(grad.shape)


class CumprodOp(Function):
    """out_k = a_0 ... a_k along axis;  d/da_i = sum over k >= i of grad_k prod_{j<=k, j!=i} a_j

    Without zeros that is reversed_cumsum(grad * out)_i / a_i. Where a line has zeros, let z
    be its first: before z the same formula holds (out_k = 0 for k >= z adds nothing); at z it
    is reversed_cumsum(grad * cumprod(a with a_z = 1))_z; after z every product holds a_z = 0.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int = 0) -> np.ndarray:
        ctx.axis = _axis("cumprod", "dim", axis, a.ndim)
        ctx.a = as_lines(a)
        ctx.out = np.cumprod(ctx.a, ctx.axis, dtype=a.dtype)  # as cumsum: keep the dtype
        return ctx.out.reshape(a.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        a, out, axis = ctx.a, ctx.out, ctx.axis
        g = as_lines(grad)
        zero = a == 0
        if not zero.any():
            return (_reverse_cumsum(g * out, axis) / a).reshape(grad.shape)
        zeros_so_far = np.cumsum(zero, axis)
        before = zeros_so_far == 0
        first = zero & (zeros_so_far == 1)
        # Before the first zero: the plain formula, with a_i != 0 there.
        result = np.where(before, _reverse_cumsum(g * out, axis) / np.where(before, a, 1), 0)
        skipped = np.cumprod(np.where(first, 1, a), axis)  # the first zero taken out
        result += np.where(first, _reverse_cumsum(g * skipped, axis), 0)
        return result.astype(grad.dtype, copy=False).reshape(grad.shape)


class _CumExtremeOp(_PickOp, register=False):
    """Running max (min) along axis and where it was found;  d/da = grad added at those places

    Ties take the later position and a NaN is kept from where it appears, as in PyTorch.
    """

    accumulate: Any = None

    @classmethod
    def forward(cls, ctx: Context, a: np.ndarray, axis: int = 0,
                indices: np.ndarray | None = None) -> np.ndarray:
        axis = _axis(cls.name, "dim", axis, a.ndim)
        lines = as_lines(a)
        values = cls.accumulate(lines, axis)
        if indices is None:
            indices = _running_indices(lines, values, axis)
        _PickOp.keep(ctx, a, lines, as_lines(indices), axis, True)
        return values.reshape(a.shape)


def _running_indices(lines: np.ndarray, values: np.ndarray, axis: int) -> np.ndarray:
    """Where each running extreme was found: the last place it was reached (or NaN met)."""
    reached = lines == values
    if lines.dtype.kind == "f":
        reached |= np.isnan(lines)
    shape = [1] * lines.ndim
    shape[axis] = lines.shape[axis]
    positions = np.where(reached, np.arange(lines.shape[axis]).reshape(shape), 0)
    return np.maximum.accumulate(positions, axis)


class CummaxOp(_CumExtremeOp):
    """running maximum along axis"""

    accumulate = staticmethod(np.maximum.accumulate)


class CumminOp(_CumExtremeOp):
    """running minimum along axis"""

    accumulate = staticmethod(np.minimum.accumulate)


class LogCumSumExpOp(Function):
    """out_k = log(sum_{j<=k} exp(a_j));  d/da_i = sum over k >= i of grad_k exp(a_i - out_k)

    The forward is logaddexp accumulated, so large values do not overflow. The backward sums
    the positive and the negative gradients apart, each in log space:
    exp(a_i + reversed_logcumsumexp(log|grad| - out)_i).
    """

    name = "logcumsumexp"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int = 0) -> np.ndarray:
        ctx.axis = _axis("logcumsumexp", "dim", axis, a.ndim)
        if a.dtype.kind != "f":
            raise TypeError(f"logcumsumexp: needs a floating tensor, got {a.dtype}, as in "
                            "PyTorch; convert it first (x.float() or x.double())")
        ctx.a = as_lines(a)
        ctx.out = np.logaddexp.accumulate(ctx.a, ctx.axis)
        return ctx.out.reshape(a.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        a, out, axis = ctx.a, ctx.out, ctx.axis
        g = as_lines(grad)

        def reversed_lcse(x: np.ndarray) -> np.ndarray:
            return np.flip(np.logaddexp.accumulate(np.flip(x, axis), axis), axis)

        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            log_g = np.log(np.abs(g)) - out
            positive = reversed_lcse(np.where(g > 0, log_g, -np.inf))
            negative = reversed_lcse(np.where(g < 0, log_g, -np.inf))
            result = np.exp(positive + a) - np.exp(negative + a)
        return result.astype(grad.dtype, copy=False).reshape(grad.shape)


# ----------------------------------------------------------------------------- public
@torch_names
def cumsum(a: Any, axis: int, *, dtype: Any = None) -> Tensor:
    """Cumulative sum along ``axis``; bool and integer tensors sum in int64 unless ``dtype``."""
    x = as_tensor(a, "cumsum")
    x = cast(x, _integers_to_int64(x, dtype_arg("cumsum", dtype)))
    return CumsumOp.apply(x, axis=axis)


@torch_names
def cumprod(a: Any, axis: int, *, dtype: Any = None) -> Tensor:
    """Cumulative product along ``axis`` (exact gradient with zeros in the input)."""
    x = as_tensor(a, "cumprod")
    x = cast(x, _integers_to_int64(x, dtype_arg("cumprod", dtype)))
    return CumprodOp.apply(x, axis=axis)


def _cum_extreme(fn: type[_CumExtremeOp], a: Any, axis: int) -> ValuesIndices:
    x = as_tensor(a, fn.name)
    axis = _axis(fn.name, "dim", axis, x.ndim)
    lines = as_lines(x._data)
    indices = _running_indices(lines, fn.accumulate(lines, axis), axis)
    values = fn.apply(x, axis=axis, indices=indices)
    return ValuesIndices(values, Tensor(indices.reshape(x.shape)))


@torch_names
def cummax(a: Any, axis: int) -> ValuesIndices:
    """Running maximum along ``axis``: (values, indices of where each was found)."""
    return _cum_extreme(CummaxOp, a, axis)


@torch_names
def cummin(a: Any, axis: int) -> ValuesIndices:
    """Running minimum along ``axis``: (values, indices of where each was found)."""
    return _cum_extreme(CumminOp, a, axis)


@torch_names
def logcumsumexp(a: Any, axis: int) -> Tensor:
    """log(cumsum(exp(a))) along ``axis``, stable for large values."""
    return LogCumSumExpOp.apply(as_tensor(a, "logcumsumexp"), axis=axis)
