"""The losses, and the softmax and log-softmax they are built on."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule import kernels, validate
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor, _as_data


def _shifted(a: np.ndarray, axis: int) -> np.ndarray:
    """a minus its max along ``axis``: softmax is unchanged, and exp can no longer overflow."""
    shift = kernels.max_along(a, axis)
    # A sum that is not finite is a cheap test for an infinite max.
    if not math.isfinite(np.add.reduce(shift, axis=None)):
        # a row of infinities: shifting by inf would give nan
        shift = np.where(np.isfinite(shift), shift, 0)
    return a - shift


class SoftmaxOp(Function):
    """s = exp(a) / sum(exp(a));  d/da = s * (grad - sum(grad * s))"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int = -1) -> np.ndarray:
        axis = validate.axis("softmax", "axis", axis, a.ndim)
        if a.ndim == 0:  # one value along the axis: its share is all of it, as in PyTorch
            ctx.out, ctx.axis = np.ones_like(a), None
            return ctx.out
        exps = np.exp(_shifted(a, axis))
        out = exps / exps.sum(axis=axis, keepdims=True)
        ctx.out, ctx.axis = out, axis
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        out = ctx.out
        return out * (grad - (grad * out).sum(axis=ctx.axis, keepdims=True))


class LogSoftmaxOp(Function):
    """a - logsumexp(a);  d/da = grad - softmax(a) * sum(grad)"""

    name = "log_softmax"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int = -1) -> np.ndarray:
        axis = validate.axis("log_softmax", "axis", axis, a.ndim)
        if a.ndim == 0:
            ctx.out, ctx.axis = np.zeros_like(a), None
            return ctx.out
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


class MSELossOp(Function):
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
        mean = _mean_factor(diff.size) if reduction == "mean" else 1.0
        ctx.scale = 2 * mean
        total = np.dot(diff.ravel(), diff.ravel())
        return np.asarray(total * mean, dtype=diff.dtype)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_output, need_target = ctx.needs_input_grad
        grad_diff = (grad * ctx.scale) * ctx.diff
        grad_output = grad_diff.reshape(ctx.shape) if need_output else None
        return grad_output, (-grad_diff if need_target else None)


@validate.torch_names
def softmax(a: Any, axis: int = -1) -> Tensor:
    """Softmax along ``axis``."""
    return SoftmaxOp.apply(a, axis=axis)


@validate.torch_names
def log_softmax(a: Any, axis: int = -1) -> Tensor:
    """Log of softmax along ``axis``, without overflow or log(0)."""
    return LogSoftmaxOp.apply(a, axis=axis)


def mse(output: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error; an output of shape target.shape + (1,) is compared as if squeezed."""
    if not isinstance(target, Tensor):
        target = _as_data(target, where="mse target")
    output_data = output.data if isinstance(output, Tensor) else _as_data(output)
    if target.dtype.kind != "f" and output_data.dtype.kind == "f":
        target = np.asarray(target).astype(output_data.dtype)
    return MSELossOp.apply(output, target, reduction=reduction)


def _class_targets(logits: np.ndarray, targets: np.ndarray, op: str) -> np.ndarray:
    """Check (N, C) logits against (N,) integer class indices in [0, C)."""
    if logits.ndim != 2:
        raise ValueError(f"{op}: expects (batch, classes) scores, got shape {logits.shape}")
    if targets.shape != (logits.shape[0],) or targets.dtype.kind not in "iu":
        raise ValueError(
            f"{op}: targets must be {logits.shape[0]} integer class indices (shape "
            f"({logits.shape[0]},)), got shape {targets.shape} of {targets.dtype}"
        )
    # Seen as unsigned, a negative index is huge: one reduction checks both bounds.
    unsigned = targets if targets.dtype.kind == "u" else targets.view(
        np.dtype(f"u{targets.dtype.itemsize}"))
    if targets.size and np.maximum.reduce(unsigned) >= logits.shape[1]:
        raise ValueError(f"{op}: class indices must lie in [0, {logits.shape[1]}), got "
                         f"{targets.min()}..{targets.max()}")
    return targets


def _mean_factor(count: int) -> float:
    """1 / count for a mean; NaN for an empty batch, whose mean PyTorch also calls NaN."""
    return 1 / count if count else math.nan


def _reduce_loss(losses: np.ndarray, reduction: str, op: str) -> tuple[np.ndarray, float]:
    """The reduced loss and the factor each element's gradient carries."""
    if reduction == "mean":
        # sum * (1/n), not .mean(): the same number without mean's Python-level set-up,
        # which is a large share of a small network's step.
        scale = _mean_factor(losses.size)
        return np.asarray(np.add.reduce(losses, axis=None) * scale, dtype=losses.dtype), scale
    if reduction == "sum":
        return np.asarray(losses.sum()), 1.0
    if reduction == "none":
        return losses, 1.0
    raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _spread_loss_grad(grad: np.ndarray, scale: float, reduction: str) -> np.ndarray:
    """The upstream gradient per element: a scalar for mean/sum, one per sample for none."""
    if reduction == "none":
        return grad[:, None] * scale
    # A Python float for a scalar: multiplying by it keeps the array's dtype, and it skips
    # an array operation on every training step.
    return float(grad) * scale


class CrossEntropyOp(Function):
    """-log softmax(logits)[target], fused;  d/d logits = softmax(logits) - onehot(target)

    One primitive instead of log_softmax + indexing: the backward is one subtraction, and the
    max-shift keeps it finite for logits in the thousands.
    """

    name = "cross_entropy"

    @staticmethod
    def forward(ctx: Context, logits: np.ndarray, targets: np.ndarray,
                reduction: str = "mean") -> np.ndarray:
        targets = _class_targets(logits, targets, "cross_entropy")
        shifted = _shifted(logits, 1)
        exps = np.exp(shifted)
        sums = kernels.row_sums(exps)
        rows = kernels.cached_arange(len(targets), np.intp)
        losses = np.log(sums[:, 0]) - shifted[rows, targets]
        out, ctx.scale = _reduce_loss(losses, reduction, "cross_entropy")
        exps /= sums  # the probabilities, in the array exp made
        ctx.probs, ctx.rows, ctx.targets, ctx.reduction = exps, rows, targets, reduction
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        grad_logits = ctx.probs.copy()
        grad_logits[ctx.rows, ctx.targets] -= 1
        grad_logits *= _spread_loss_grad(grad, ctx.scale, ctx.reduction)
        return grad_logits, None


class NLLLossOp(Function):
    """-log_probs[target];  d/d log_probs = -1 at the target, 0 elsewhere"""

    name = "nll_loss"

    @staticmethod
    def forward(ctx: Context, log_probs: np.ndarray, targets: np.ndarray,
                reduction: str = "mean") -> np.ndarray:
        targets = _class_targets(log_probs, targets, "nll_loss")
        rows = kernels.cached_arange(len(targets), np.intp)
        out, ctx.scale = _reduce_loss(-log_probs[rows, targets], reduction, "nll_loss")
        ctx.shape, ctx.dtype = log_probs.shape, log_probs.dtype
        ctx.rows, ctx.targets, ctx.reduction = rows, targets, reduction
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        grad_log_probs = np.zeros(ctx.shape, ctx.dtype)
        per_sample = _spread_loss_grad(grad, ctx.scale, ctx.reduction)
        grad_log_probs[ctx.rows, ctx.targets] = -np.reshape(per_sample, -1)
        return grad_log_probs, None


class BCEWithLogitsOp(Function):
    """max(x, 0) - x t + log(1 + e^-|x|), the stable form of binary cross-entropy of
    sigmoid(x) against t;  d/dx = sigmoid(x) - t,  d/dt = -x"""

    name = "binary_cross_entropy_with_logits"

    @staticmethod
    def forward(ctx: Context, logits: np.ndarray, targets: np.ndarray,
                reduction: str = "mean") -> np.ndarray:
        if logits.shape != np.shape(targets):
            raise ValueError(f"binary_cross_entropy_with_logits: logits shape {logits.shape} "
                             f"and targets shape {np.shape(targets)} must match")
        losses = np.maximum(logits, 0) - logits * targets + np.log1p(np.exp(-np.abs(logits)))
        out, ctx.scale = _reduce_loss(losses, reduction, "binary_cross_entropy_with_logits")
        ctx.logits, ctx.targets = logits, targets
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        upstream = grad * ctx.scale
        need_logits, need_targets = ctx.needs_input_grad
        sigmoid = 0.5 * (1 + np.tanh(0.5 * ctx.logits))
        grad_logits = upstream * (sigmoid - ctx.targets) if need_logits else None
        return grad_logits, (-upstream * ctx.logits if need_targets else None)


def _int_targets(targets: Any) -> np.ndarray:
    return targets.data if isinstance(targets, Tensor) else np.asarray(targets)


def cross_entropy(logits: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """Softmax cross-entropy of (N, C) logits against (N,) class indices."""
    return CrossEntropyOp.apply(logits, _int_targets(targets), reduction=reduction)


def nll_loss(log_probs: Any, targets: Any, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of (N, C) log-probabilities at (N,) class indices."""
    return NLLLossOp.apply(log_probs, _int_targets(targets), reduction=reduction)


def binary_cross_entropy_with_logits(logits: Any, targets: Any,
                                     reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of sigmoid(logits) against targets in [0, 1], computed stably."""
    if not isinstance(targets, Tensor):
        targets = _as_data(targets, where="binary_cross_entropy_with_logits targets")
    logits_dtype = logits.dtype if isinstance(logits, Tensor) else np.asarray(logits).dtype
    if targets.dtype != logits_dtype and not isinstance(targets, Tensor):
        targets = targets.astype(logits_dtype)
    return BCEWithLogitsOp.apply(logits, targets, reduction=reduction)
