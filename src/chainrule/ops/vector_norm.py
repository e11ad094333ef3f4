"""The vector p-norm over axes (``torch.norm``, ``torch.linalg.vector_norm``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor

Axis = int | Sequence[int] | None


class NormOp(Function):
    """||a||_p = (sum |a|^p)^(1/p) over axes;  d/da = sign(a) |a|^(p-1) / ||a||_p^(p-1)

    p = 2 gives a / ||a||; p = 1 gives sign(a); p = inf (-inf) sends the gradient to the
    elements of largest (smallest) magnitude, split equally among ties; p = 0 counts the
    nonzero elements and has slope 0. Where the norm is 0 the slope is 0, as in PyTorch.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, ord: float = 2, axis: Axis = None,
                keepdims: bool = False) -> np.ndarray:
        if a.dtype.kind != "f":
            raise TypeError(f"norm: expects a floating tensor, got {a.dtype}; convert it "
                            "with x.float()")
        ctx.axes = validate.axes("norm", "dim", axis, a.ndim, empty=False)
        keepdims = validate.boolean("norm", "keepdim", keepdims)
        ord = validate.real("norm", "p", ord, finite=False)
        if math.isnan(ord):
            raise ValueError("norm: p must be a number or inf, got nan")
        magnitude = np.abs(a)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            if ord == math.inf:
                out = magnitude.max(axis=ctx.axes, keepdims=True, initial=0)
            elif ord == -math.inf:
                if a.size == 0:
                    raise ValueError("norm: the -inf norm of an empty tensor is not defined")
                out = magnitude.min(axis=ctx.axes, keepdims=True)
            elif ord == 0:
                out = (a != 0).sum(axis=ctx.axes, keepdims=True).astype(a.dtype)
            elif ord == 1:
                out = magnitude.sum(axis=ctx.axes, keepdims=True)
            elif ord == 2:
                out = np.sqrt(np.square(a).sum(axis=ctx.axes, keepdims=True))
            else:
                out = (magnitude ** ord).sum(axis=ctx.axes, keepdims=True) ** (1 / ord)
        ctx.a, ctx.out, ctx.ord, ctx.keepdims = a, out, ord, keepdims
        return out if keepdims else np.squeeze(out, ctx.axes)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        a, out, p = ctx.a, ctx.out, ctx.ord
        if not ctx.keepdims:
            grad = np.expand_dims(grad, ctx.axes)
        if p == 0:
            return np.zeros_like(a)
        if p == 1:
            return grad * np.sign(a)
        if math.isinf(p):
            hits = np.abs(a) == out
            return grad * np.sign(a) * hits / hits.sum(axis=ctx.axes, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == 2:
                slope = a / out
            else:
                slope = np.sign(a) * np.abs(a) ** (p - 1) / out ** (p - 1)
        return grad * np.where(out == 0, 0, slope)


@validate.torch_names
def norm(a: Any, p: float | str = 2, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """The vector p-norm over ``axis`` (all elements if None); p may be inf, -inf, 0 or
    'fro' (the 2-norm of the flattened elements, as torch.norm's default)."""
    if p == "fro":
        p = 2
    elif isinstance(p, str):
        raise ValueError(f"norm: p={p!r} is a matrix norm, which chainrule does not have; "
                         "use a number (2, 1, inf, ...) or 'fro'")
    return NormOp.apply(a, ord=p, axis=axis, keepdims=keepdims)


@validate.torch_names
def vector_norm(a: Any, ord: float = 2, axis: Axis = None, keepdims: bool = False) -> Tensor:
    """torch.linalg.vector_norm: the ``ord``-norm over ``axis`` (all elements if None)."""
    return NormOp.apply(a, ord=ord, axis=axis, keepdims=keepdims)
