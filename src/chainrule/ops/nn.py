"""Neural-network ops: softmax, log-softmax and the mean squared error loss."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.function import Context, Function
from chainrule.tensor import Tensor, _as_data


def _shifted(a: np.ndarray, axis: int) -> np.ndarray:
    """a minus its max along ``axis``: softmax is unchanged, and exp can no longer overflow."""
    shift = a.max(axis=axis, keepdims=True)
    return a - np.where(np.isfinite(shift), shift, 0)


class Softmax(Function):
    """s = exp(a) / sum(exp(a));  d/da = s * (grad - sum(grad * s))"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int = -1) -> np.ndarray:
        exps = np.exp(_shifted(a, axis))
        out = exps / exps.sum(axis=axis, keepdims=True)
        ctx.out, ctx.axis = out, axis
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        out = ctx.out
        return out * (grad - (grad * out).sum(axis=ctx.axis, keepdims=True))


class LogSoftmax(Function):
    """a - logsumexp(a);  d/da = grad - softmax(a) * sum(grad)"""

    name = "log_softmax"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int = -1) -> np.ndarray:
        shifted = _shifted(a, axis)
        out = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        ctx.out, ctx.axis = out, axis
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad - np.exp(ctx.out) * grad.sum(axis=ctx.axis, keepdims=True)


def _mse_pair(output: np.ndarray, target: np.ndarray) -> bool:
    """Check shapes for mse; True when the seed's trailing size-1 axis must be dropped."""
    if output.shape == target.shape:
        return False
    if output.shape == target.shape + (1,):
        return True
    raise ValueError(
        f"mse_loss: output shape {output.shape} and target shape {target.shape} differ. mse "
        "does not broadcast (an (N, 1) output minus (N,) targets silently makes an (N, N) "
        "matrix); only a trailing size-1 axis on the output is dropped. Reshape one of them."
    )


class MSELoss(Function):
    """mean((output - target)^2);  d/d output = 2 (output - target) / N,  d/d target = -that

    An output of shape target.shape + (1,) (the seed's (N, 1) model output against (N,)
    targets) is compared element for element, as if squeezed; its gradient keeps the 1.
    ``reduction`` is 'mean' (default) or 'sum'.
    """

    name = "mse_loss"

    @staticmethod
    def forward(ctx: Context, output: np.ndarray, target: np.ndarray,
                reduction: str = "mean") -> np.ndarray:
        if reduction not in ("mean", "sum"):
            raise ValueError(f"mse_loss: reduction must be 'mean' or 'sum', got {reduction!r}")
        squeeze = _mse_pair(output, target)
        diff = (output[..., 0] if squeeze else output) - target
        ctx.diff, ctx.shape = diff, output.shape
        ctx.scale = 2 / diff.size if reduction == "mean" else 2
        total = np.dot(diff.ravel(), diff.ravel())
        return np.asarray(total / diff.size if reduction == "mean" else total)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_output, need_target = ctx.needs_input_grad
        grad_diff = (grad * ctx.scale) * ctx.diff
        grad_output = grad_diff.reshape(ctx.shape) if need_output else None
        return grad_output, (-grad_diff if need_target else None)


def softmax(a: Any, axis: int = -1) -> Tensor:
    """Softmax along ``axis``."""
    return Softmax.apply(a, axis=axis)


def log_softmax(a: Any, axis: int = -1) -> Tensor:
    """Log of softmax along ``axis``, without overflow or log(0)."""
    return LogSoftmax.apply(a, axis=axis)


def mse(output: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error; an output of shape target.shape + (1,) is compared as if squeezed."""
    if not isinstance(target, Tensor):
        target = _as_data(target, where="mse target")
    output_data = output.data if isinstance(output, Tensor) else _as_data(output)
    if target.dtype.kind != "f" and output_data.dtype.kind == "f":
        target = np.asarray(target).astype(output_data.dtype)
    return MSELoss.apply(output, target, reduction=reduction)
