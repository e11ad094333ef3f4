"""The losses, and the softmax and log-softmax they are built on.

Every loss is one fused primitive with its backward written out, and takes PyTorch's
``reduction``: 'mean' (default), 'sum' or 'none' (kl_div also 'batchmean'). Class weights
(``weight``, ``pos_weight``) are constants, as in PyTorch, which refuses their gradient.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule import kernels, validate
from chainrule.engine import backend
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor, _as_data
from chainrule.ops.elementwise import CastOp, _operands

REDUCTIONS = ("mean", "sum", "none")


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
        if a.size == 0:  # an empty axis has no max to shift by; PyTorch gives the empty result
            ctx.out, ctx.axis = a.copy(), axis
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
        if a.size == 0:  # as in SoftmaxOp
            ctx.out, ctx.axis = a.copy(), axis
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
    """(output - target)^2, reduced;  d/d output = 2 (output - target) * r,  d/d target = -that
    (r: 1/N for 'mean', 1 for 'sum', the upstream gradient per element for 'none')

    An output of shape target.shape + (1,) (the seed's (N, 1) model output against (N,)
    targets) is compared element for element, as if squeezed; its gradient keeps the 1.
    """

    name = "mse_loss"

    @staticmethod
    def forward(ctx: Context, output: np.ndarray, target: np.ndarray,
                reduction: str = "mean") -> np.ndarray:
        if reduction not in REDUCTIONS:
            raise ValueError(f"mse_loss: reduction must be 'mean', 'sum' or 'none', got "
                             f"{reduction!r}")
        squeeze = _mse_pair(output, target)
        diff = (output[..., 0] if squeeze else output) - target
        ctx.diff, ctx.shape = diff, output.shape
        if reduction == "none":
            ctx.scale = 2.0
            return diff * diff
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


def _float_tensor(value: Any, where: str) -> Any:
    """A tensor or array as a floating operand: integers and bools take the default dtype."""
    if isinstance(value, Tensor):
        if value.dtype.kind == "f":
            return value
        return CastOp.apply(value, dtype=backend.get_default_dtype())
    data = _as_data(value, where=where)
    return data if data.dtype.kind == "f" else data.astype(backend.get_default_dtype())


def _dtype_of(value: Any) -> np.dtype | None:
    if isinstance(value, Tensor):
        return value.dtype
    return getattr(value, "dtype", None)


@validate.torch_names
def softmax(input: Any, axis: int = -1, dtype: Any = None) -> Tensor:
    """Softmax along ``axis``; ``dtype`` casts the input first (as PyTorch's)."""
    return SoftmaxOp.apply(_cast_for_softmax(input, dtype, "softmax"), axis=axis)


@validate.torch_names
def log_softmax(input: Any, axis: int = -1, dtype: Any = None) -> Tensor:
    """Log of softmax along ``axis``, without overflow or log(0); ``dtype`` casts first."""
    return LogSoftmaxOp.apply(_cast_for_softmax(input, dtype, "log_softmax"), axis=axis)


def _cast_for_softmax(a: Any, dtype: Any, op: str) -> Any:
    if dtype is None:
        kind = getattr(_dtype_of(a), "kind", "f")
        return a if kind == "f" else _float_tensor(a, op)
    dtype = validate.float_dtype(op, "dtype", dtype)
    if isinstance(a, Tensor):
        return a if a.dtype == dtype else CastOp.apply(a, dtype=dtype)
    return _as_data(a, where=op).astype(dtype)


def mse(input: Any, target: Any, reduction: str = "mean") -> Tensor:
    """Mean squared error; an input of shape target.shape + (1,) is compared as if squeezed.
    (``input`` is PyTorch's keyword; reduction stays third, where the seed's callers pass it.)"""
    if not isinstance(target, Tensor):
        target = _as_data(target, where="mse target")
    input_data = input.data if isinstance(input, Tensor) else _as_data(input)
    if target.dtype.kind != "f" and input_data.dtype.kind == "f":
        target = np.asarray(target).astype(input_data.dtype)
    return MSELossOp.apply(input, target, reduction=reduction)


# ----------------------------------------------------------------------------- shared checks
def _reduction(op: str, value: Any, choices: tuple[str, ...] = REDUCTIONS) -> str:
    return validate.choice(op, "reduction", value, choices)


def _no_legacy(op: str, size_average: Any, reduce: Any) -> None:
    """PyTorch's deprecated size_average/reduce: kept in their places, refused when given."""
    for name, value in (("size_average", size_average), ("reduce", reduce)):
        if value is not None:
            raise ValueError(f"{op}: {name} is deprecated in PyTorch and not supported; pass "
                             "reduction='mean', 'sum' or 'none' instead")


def _mean_factor(count: float) -> float:
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


def _upstream(grad: np.ndarray, scale: float) -> Any:
    """The gradient each element of an elementwise loss receives: a Python float for a
    reduced loss (multiplying by it keeps the array's dtype), an array for 'none'."""
    return float(grad) * scale if grad.ndim == 0 else grad * scale


def weight_data(owner: str, name: str, value: Any) -> np.ndarray | None:
    """A weight argument (class weights, pos_weight) as a checked array of numbers; one that
    wants a gradient is refused, since none would reach it (PyTorch refuses it too)."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        if value.requires_grad:
            raise ValueError(f"{owner}: {name} takes no gradient (as in PyTorch); pass "
                             f"{name}.detach()")
        value = value.data
    if isinstance(value, str):
        raise TypeError(f"{owner}: {name} must be a tensor or None, got {value!r}; reduction "
                        "and the other options come after it (PyTorch's order), best by "
                        "keyword")
    array = _as_data(value, where=f"{owner} {name}")
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{owner}: {name} must hold numbers, got {array.dtype}")
    return array


def _constant(op: str, name: str, value: Any, dtype: np.dtype) -> np.ndarray | None:
    """A weight argument as an array of ``dtype`` (see weight_data)."""
    array = weight_data(op, name, value)
    return None if array is None else array.astype(dtype, copy=False)


def _broadcasts_to(op: str, name: str, value: np.ndarray | None,
                   shape: tuple[int, ...]) -> None:
    """A weight must broadcast to the input's shape without growing it."""
    if value is None:
        return
    try:
        fits = np.broadcast_shapes(value.shape, shape) == shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{op}: {name} of shape {value.shape} does not broadcast to the "
                         f"input's shape {shape}")


def _same_shape(op: str, a: np.ndarray, b: np.ndarray, what: str = "input") -> None:
    if a.shape != b.shape:
        raise ValueError(f"{op}: {what} shape {a.shape} and target shape {b.shape} differ; "
                         "chainrule does not broadcast a loss (PyTorch warns and broadcasts, "
                         "which is rarely what was meant). Reshape one of them")


# ----------------------------------------------------------------------------- classification
def _class_rows(x: np.ndarray, op: str) -> tuple[np.ndarray, tuple[int, ...]]:
    """Scores (C,), (N, C) or (N, C, d1, ...) as a (samples, C) matrix, and the sample shape
    ((), (N,) or (N, d1, ...)) that targets and per-sample losses have."""
    if x.ndim == 0:
        raise ValueError(f"{op}: expects (C,), (N, C) or (N, C, d1, ...) scores, got a 0-d "
                         "tensor")
    if x.ndim == 1:
        return x[None, :], ()
    if x.ndim == 2:
        return x, (x.shape[0],)
    return (np.moveaxis(x, 1, -1).reshape(-1, x.shape[1]),
            (x.shape[0],) + x.shape[2:])


def _unrows(grad_rows: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The inverse of ``_class_rows`` for a gradient of the (samples, C) matrix."""
    if len(shape) <= 2:
        return grad_rows if grad_rows.shape == shape else grad_rows.reshape(shape)
    moved = grad_rows.reshape((shape[0],) + shape[2:] + (shape[1],))
    return np.moveaxis(moved, -1, 1)


def _index_targets(targets: np.ndarray, sample_shape: tuple[int, ...], classes: int,
                   ignore_index: int, op: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Class indices as a flat array with ignored entries set to 0, and the mask of the kept
    ones (None when none is ignored). Out-of-range indices are refused."""
    if targets.shape != sample_shape or targets.dtype.kind not in "iu":
        raise ValueError(
            f"{op}: targets must be integer class indices of shape {sample_shape} (the scores' "
            f"shape without the class axis), got shape {targets.shape} of {targets.dtype}; "
            "class probabilities must be floating and of the scores' shape")
    flat = targets.reshape(-1)
    if not flat.size:
        return flat, None
    valid = None
    # Seen as unsigned, a negative index is huge: one reduction checks both bounds. An
    # ignore_index outside [0, classes), as PyTorch's -100, can only be hit by an index that
    # is out of range too, so in the common case that one reduction settles everything.
    in_range = np.maximum.reduce(_unsigned(flat)) < classes
    if not in_range or 0 <= ignore_index < classes:
        hits = flat == ignore_index
        if hits.any():
            valid = ~hits
            flat = np.where(valid, flat, 0)
            in_range = np.maximum.reduce(_unsigned(flat)) < classes
    if not in_range:
        bad = flat[(flat < 0) | (flat >= classes)]
        raise ValueError(f"{op}: class indices must lie in [0, {classes}) or equal "
                         f"ignore_index={ignore_index}, got {bad[0]}")
    return flat, valid


def _unsigned(flat: np.ndarray) -> np.ndarray:
    """Integer indices viewed as unsigned, so that a negative one reads as huge."""
    return flat if flat.dtype.kind == "u" else flat.view(np.dtype(f"u{flat.dtype.itemsize}"))


def _class_weights(op: str, weight: np.ndarray | None, classes: int) -> None:
    if weight is not None and weight.shape != (classes,):
        raise ValueError(f"{op}: weight must hold one number per class, shape ({classes},), "
                         f"got shape {weight.shape}")


def _sample_reduction(losses: np.ndarray, reduction: str, divisor: float,
                      sample_shape: tuple[int, ...]) -> tuple[np.ndarray, float]:
    """Per-sample losses reduced: 'mean' divides by ``divisor`` (the count, or the summed
    weights of the kept samples, as PyTorch does); 'none' keeps the sample shape."""
    if reduction == "none":
        return losses.reshape(sample_shape), 1.0
    total = np.add.reduce(losses, axis=None)
    if reduction == "sum":
        return np.asarray(total, dtype=losses.dtype), 1.0
    scale = _mean_factor(divisor)
    return np.asarray(total * scale, dtype=losses.dtype), scale


def _per_sample(grad: np.ndarray, scale: float, reduction: str) -> Any:
    """The upstream gradient per sample row: a float for mean/sum, a column for 'none'."""
    if reduction == "none":
        return grad.reshape(-1, 1) * scale
    # A Python float for a scalar: multiplying by it keeps the array's dtype, and it skips
    # an array operation on every training step.
    return float(grad) * scale


class CrossEntropyOp(Function):
    """Cross-entropy of softmax(logits) along the class axis, fused.

    Class indices y, class weights w (1 without), label smoothing e over C classes, p the
    softmax: per sample L = (1 - e) w_y (-log p_y) + e/C sum_c w_c (-log p_c), and
      d/d logits_k = p_k ((1 - e) w_y + e/C sum(w)) - (1 - e) w_y [k = y] - e/C w_k
    (plain: p - onehot(y)); samples whose target is ``ignore_index`` give 0 and no gradient,
    and 'mean' divides by the summed w_y of the kept samples.
    Class probabilities t (a float target of the logits' shape), t' = (1 - e) t + e/C:
      L = -sum_c w_c t'_c log p_c,  d/d logits_k = p_k sum_c(w_c t'_c) - w_k t'_k,
      d/d t_c = -(1 - e) w_c log p_c;  'mean' divides by the number of samples.
    One primitive instead of log_softmax + indexing: the backward is one subtraction, and the
    max-shift keeps it finite for logits in the thousands.
    """

    name = "cross_entropy"

    @staticmethod
    def forward(ctx: Context, logits: np.ndarray, targets: np.ndarray,
                weight: np.ndarray | None = None, ignore_index: int = -100,
                reduction: str = "mean", label_smoothing: float = 0.0) -> np.ndarray:
        op = "cross_entropy"
        if reduction not in REDUCTIONS:
            raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got "
                             f"{reduction!r}")
        if (weight is None and not label_smoothing and logits.ndim == 2 and targets.ndim == 1
                and targets.dtype.kind in "iu"):
            return _plain_cross_entropy(ctx, logits, targets, ignore_index, reduction)
        rows, sample_shape = _class_rows(logits, op)
        classes = rows.shape[1]
        _class_weights(op, weight, classes)
        probabilities = np.shape(targets) == logits.shape and targets.dtype.kind == "f"
        shifted = _shifted(rows, 1)
        exps = np.exp(shifted)
        sums = kernels.row_sums(exps)
        ctx.shape, ctx.reduction, ctx.weight = logits.shape, reduction, weight
        ctx.smoothing, ctx.probabilities = label_smoothing, probabilities
        if probabilities:
            out = _soft_targets(ctx, targets, shifted, sums, sample_shape)
        else:
            out = _hard_targets(ctx, targets, shifted, sums, sample_shape, ignore_index)
        exps /= sums  # the probabilities, in the array exp made
        ctx.probs = exps
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        upstream = _per_sample(grad, ctx.scale, ctx.reduction)
        if ctx.probabilities:
            grad_rows = ctx.probs * ctx.soft.sum(axis=1, keepdims=True) - ctx.soft
            grad_rows *= upstream
            grad_targets = None
            if ctx.needs_input_grad[1]:
                scaled = ctx.log_probs * (-(1 - ctx.smoothing) * upstream)
                if ctx.weight is not None:
                    scaled *= ctx.weight
                grad_targets = _unrows(scaled, ctx.shape)
            return _unrows(grad_rows, ctx.shape), grad_targets
        grad_rows = ctx.probs.copy()
        smoothing, weight = ctx.smoothing, ctx.weight
        if weight is None and not smoothing:  # the plain case, on the training hot path
            grad_rows[ctx.rows, ctx.targets] -= 1
        else:
            classes = grad_rows.shape[1]
            picked = 1.0 if weight is None else weight[ctx.targets]
            total = classes if weight is None else np.add.reduce(weight)
            grad_rows *= np.reshape((1 - smoothing) * picked + smoothing / classes * total,
                                    (-1, 1))
            grad_rows[ctx.rows, ctx.targets] -= (1 - smoothing) * picked
            if smoothing:
                grad_rows -= smoothing / classes * (1.0 if weight is None else weight)
        grad_rows *= upstream
        if ctx.valid is not None:  # after the product: a NaN mean (all ignored) is theirs
            grad_rows[~ctx.valid] = 0
        return _unrows(grad_rows, ctx.shape), None


def _plain_cross_entropy(ctx: Context, logits: np.ndarray, targets: np.ndarray,
                         ignore_index: int, reduction: str) -> np.ndarray:
    """cross_entropy of (N, C) logits at (N,) class indices, no weight or smoothing: the
    training step's case, in the fewest array passes (the general path gives the same)."""
    flat, valid = _index_targets(targets, (logits.shape[0],), logits.shape[1], ignore_index,
                                 "cross_entropy")
    losses, probs = kernels.cross_entropy_rows(logits, flat)
    rows = kernels.cached_arange(len(flat), np.intp)
    divisor = len(flat)
    if valid is not None:
        losses = np.where(valid, losses, 0)
        divisor = np.add.reduce(valid, axis=None)
    out, ctx.scale = _sample_reduction(losses, reduction, divisor, (logits.shape[0],))
    ctx.shape, ctx.reduction, ctx.weight, ctx.smoothing = logits.shape, reduction, None, 0.0
    ctx.probabilities, ctx.probs, ctx.rows, ctx.targets, ctx.valid = False, probs, rows, flat, valid
    return out


def _hard_targets(ctx: Context, targets: np.ndarray, shifted: np.ndarray, sums: np.ndarray,
                  sample_shape: tuple[int, ...], ignore_index: int) -> np.ndarray:
    """cross_entropy's loss at class indices; leaves on ``ctx`` what backward needs."""
    classes = shifted.shape[1]
    flat, valid = _index_targets(targets, sample_shape, classes, ignore_index, "cross_entropy")
    rows = kernels.cached_arange(len(flat), np.intp)
    log_sums = np.log(sums[:, 0])
    losses = log_sums - shifted[rows, flat]
    weight, smoothing = ctx.weight, ctx.smoothing
    picked = None
    if weight is not None:
        picked = weight[flat]
        losses *= picked
    if smoothing:
        if weight is None:
            spread = classes * log_sums - kernels.row_sums(shifted)[:, 0]
        else:
            spread = np.add.reduce(weight) * log_sums - shifted @ weight
        losses = (1 - smoothing) * losses + smoothing / classes * spread
    if valid is not None:
        losses = np.where(valid, losses, 0)
        picked = valid if picked is None else picked * valid
    divisor = len(flat) if picked is None else np.add.reduce(picked, axis=None)
    out, ctx.scale = _sample_reduction(losses, ctx.reduction, divisor, sample_shape)
    ctx.rows, ctx.targets, ctx.valid = rows, flat, valid
    return out


def _soft_targets(ctx: Context, targets: np.ndarray, shifted: np.ndarray, sums: np.ndarray,
                  sample_shape: tuple[int, ...]) -> np.ndarray:
    """cross_entropy's loss against class probabilities; leaves on ``ctx`` what backward
    needs."""
    smoothing, weight = ctx.smoothing, ctx.weight
    soft, _ = _class_rows(targets, "cross_entropy")
    if smoothing:
        soft = soft * (1 - smoothing) + smoothing / soft.shape[1]
    if weight is not None:
        soft = soft * weight
    log_probs = shifted - np.log(sums)
    losses = -np.einsum("ij,ij->i", log_probs, soft)
    out, ctx.scale = _sample_reduction(losses, ctx.reduction, len(losses), sample_shape)
    ctx.soft, ctx.log_probs = soft, log_probs
    return out


class NLLLossOp(Function):
    """-w_y log_probs[y] per sample (w the class weights, 1 without);
    d/d log_probs = -w_y at the target, 0 elsewhere. Samples whose target is ``ignore_index``
    give 0 and no gradient; 'mean' divides by the summed w_y of the kept samples."""

    name = "nll_loss"

    @staticmethod
    def forward(ctx: Context, log_probs: np.ndarray, targets: np.ndarray,
                weight: np.ndarray | None = None, ignore_index: int = -100,
                reduction: str = "mean") -> np.ndarray:
        op = "nll_loss"
        if reduction not in REDUCTIONS:
            raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none', got "
                             f"{reduction!r}")
        rows_matrix, sample_shape = _class_rows(log_probs, op)
        classes = rows_matrix.shape[1]
        _class_weights(op, weight, classes)
        flat, valid = _index_targets(targets, sample_shape, classes, ignore_index, op)
        rows = kernels.cached_arange(len(flat), np.intp)
        losses = -rows_matrix[rows, flat]
        picked = None if weight is None else weight[flat]
        if picked is not None:
            losses = losses * picked
        if valid is not None:
            losses = np.where(valid, losses, 0)
            picked = valid.astype(log_probs.dtype) if picked is None else picked * valid
        divisor = len(flat) if picked is None else np.add.reduce(picked, axis=None)
        out, ctx.scale = _sample_reduction(losses, reduction, divisor, sample_shape)
        ctx.shape, ctx.dtype, ctx.classes = log_probs.shape, log_probs.dtype, classes
        ctx.rows, ctx.targets, ctx.reduction, ctx.picked = rows, flat, reduction, picked
        ctx.valid = valid
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        grad_rows = np.zeros((len(ctx.rows), ctx.classes), ctx.dtype)
        per_sample = np.reshape(_per_sample(grad, ctx.scale, ctx.reduction), -1)
        if ctx.picked is not None:
            per_sample = per_sample * ctx.picked
        if ctx.valid is not None:  # 0, not NaN, where a NaN mean meets an ignored sample
            per_sample = np.where(ctx.valid, per_sample, 0)
        grad_rows[ctx.rows, ctx.targets] = -per_sample
        return _unrows(grad_rows, ctx.shape), None


class BCEOp(Function):
    """-w (t log x + (1 - t) log(1 - x)) on probabilities x, each log clamped at -100 (as
    PyTorch clamps it);  d/dx = w (x - t) / max(x (1 - x), 1e-12),
    d/dt = w (log(1 - x) - log x) (unclamped, as PyTorch's)"""

    name = "binary_cross_entropy"

    @staticmethod
    def forward(ctx: Context, probs: np.ndarray, targets: np.ndarray,
                weight: np.ndarray | None = None, reduction: str = "mean") -> np.ndarray:
        op = "binary_cross_entropy"
        _same_shape(op, probs, targets)
        if probs.size and not (np.all(probs >= 0) and np.all(probs <= 1)):
            raise ValueError(f"{op}: every input must lie in [0, 1] (probabilities), got "
                             f"{probs.min()}..{probs.max()}; for scores use "
                             "binary_cross_entropy_with_logits")
        _broadcasts_to(op, "weight", weight, probs.shape)
        with np.errstate(divide="ignore"):
            log_x = np.maximum(np.log(probs), -100)
            log_rest = np.maximum(np.log1p(-probs), -100)
        losses = -(targets * log_x + (1 - targets) * log_rest)
        if weight is not None:
            losses = losses * weight
        out, ctx.scale = _reduce_loss(losses, reduction, op)
        ctx.probs, ctx.targets, ctx.weight = probs, targets, weight
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_probs, need_targets = ctx.needs_input_grad
        upstream = _upstream(grad, ctx.scale)
        if ctx.weight is not None:
            upstream = upstream * ctx.weight
        x, t = ctx.probs, ctx.targets
        grad_probs = grad_targets = None
        if need_probs:
            grad_probs = upstream * (x - t) / np.maximum(x * (1 - x), 1e-12)
        if need_targets:
            with np.errstate(divide="ignore"):
                grad_targets = upstream * (np.log1p(-x) - np.log(x))
        return grad_probs, grad_targets


class BCEWithLogitsOp(Function):
    """w ((1 - t) x + l (log(1 + e^-|x|) + max(-x, 0))), l = 1 + (pos_weight - 1) t: the
    stable form of binary cross-entropy of sigmoid(x) against t (plain: max(x, 0) - x t +
    log(1 + e^-|x|));  d/dx = w ((1 - t) - l sigmoid(-x)) (plain: sigmoid(x) - t),
    d/dt = w (-x + (pos_weight - 1) softplus(-x))"""

    name = "binary_cross_entropy_with_logits"

    @staticmethod
    def forward(ctx: Context, logits: np.ndarray, targets: np.ndarray,
                weight: np.ndarray | None = None, pos_weight: np.ndarray | None = None,
                reduction: str = "mean") -> np.ndarray:
        op = "binary_cross_entropy_with_logits"
        if logits.shape != np.shape(targets):
            raise ValueError(f"{op}: logits shape {logits.shape} and targets shape "
                             f"{np.shape(targets)} must match")
        _broadcasts_to(op, "weight", weight, logits.shape)
        _broadcasts_to(op, "pos_weight", pos_weight, logits.shape)
        if pos_weight is None:
            losses = (np.maximum(logits, 0) - logits * targets
                      + np.log1p(np.exp(-np.abs(logits))))
        else:
            softplus = np.log1p(np.exp(-np.abs(logits))) + np.maximum(-logits, 0)
            losses = (1 - targets) * logits + (1 + (pos_weight - 1) * targets) * softplus
            ctx.softplus = softplus
        if weight is not None:
            losses = losses * weight
        out, ctx.scale = _reduce_loss(losses, reduction, op)
        ctx.logits, ctx.targets, ctx.weight, ctx.pos_weight = logits, targets, weight, pos_weight
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        upstream = _upstream(grad, ctx.scale)
        if ctx.weight is not None:
            upstream = upstream * ctx.weight
        need_logits, need_targets = ctx.needs_input_grad
        x, t, pos_weight = ctx.logits, ctx.targets, ctx.pos_weight
        grad_logits = grad_targets = None
        if need_logits:
            sigmoid = 0.5 * (1 + np.tanh(0.5 * x))
            if pos_weight is None:
                grad_logits = upstream * (sigmoid - t)
            else:
                grad_logits = upstream * ((1 - t) - (1 + (pos_weight - 1) * t) * (1 - sigmoid))
        if need_targets:
            grad_targets = -upstream * x
            if pos_weight is not None:
                grad_targets = grad_targets + upstream * (pos_weight - 1) * ctx.softplus
        return grad_logits, grad_targets


# ----------------------------------------------------------------------------- regression
class L1LossOp(Function):
    """|input - target|, reduced;  d/d input = sign(input - target) (0 where equal, as
    PyTorch's),  d/d target = -that"""

    name = "l1_loss"

    @staticmethod
    def forward(ctx: Context, input: np.ndarray, target: np.ndarray,
                reduction: str = "mean") -> np.ndarray:
        _same_shape("l1_loss", input, target)
        diff = input - target
        out, ctx.scale = _reduce_loss(np.abs(diff), reduction, "l1_loss")
        ctx.sign = np.sign(diff)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        grad_input = _upstream(grad, ctx.scale) * ctx.sign
        return grad_input, (-grad_input if ctx.needs_input_grad[1] else None)


class SmoothL1LossOp(Function):
    """d = input - target: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (beta 0: |d|);
    d/d input = d / beta where |d| < beta, else sign(d);  d/d target = -that"""

    name = "smooth_l1_loss"

    @staticmethod
    def forward(ctx: Context, input: np.ndarray, target: np.ndarray, reduction: str = "mean",
                beta: float = 1.0) -> np.ndarray:
        _same_shape("smooth_l1_loss", input, target)
        diff = input - target
        size = np.abs(diff)
        inside = size < beta
        with np.errstate(divide="ignore", invalid="ignore"):
            losses = np.where(inside, 0.5 * diff * diff / beta if beta else 0, size - 0.5 * beta)
        out, ctx.scale = _reduce_loss(losses, reduction, "smooth_l1_loss")
        ctx.slope = np.where(inside, diff / beta if beta else 0, np.sign(diff))
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        grad_input = _upstream(grad, ctx.scale) * ctx.slope
        return grad_input, (-grad_input if ctx.needs_input_grad[1] else None)


class HuberLossOp(Function):
    """d = input - target: 0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta);
    d/d input = clamp(d, -delta, delta);  d/d target = -that"""

    name = "huber_loss"

    @staticmethod
    def forward(ctx: Context, input: np.ndarray, target: np.ndarray, reduction: str = "mean",
                delta: float = 1.0) -> np.ndarray:
        _same_shape("huber_loss", input, target)
        diff = input - target
        size = np.abs(diff)
        losses = np.where(size < delta, 0.5 * diff * diff, delta * (size - 0.5 * delta))
        out, ctx.scale = _reduce_loss(losses, reduction, "huber_loss")
        ctx.slope = np.clip(diff, -delta, delta)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        grad_input = _upstream(grad, ctx.scale) * ctx.slope
        return grad_input, (-grad_input if ctx.needs_input_grad[1] else None)


class KLDivOp(Function):
    """KL divergence with ``input`` as log-probabilities: t (log t - input) per element (0
    where t = 0), or with ``log_target`` e^t (t - input);
      d/d input = -t (or -e^t),  d/d t = log t + 1 - input (NaN at t = 0, as PyTorch's),
      or e^t (t - input + 1).
    'batchmean' divides the sum by the first axis's size (a 0-d input: by 1)."""

    name = "kl_div"

    @staticmethod
    def forward(ctx: Context, input: np.ndarray, target: np.ndarray, reduction: str = "mean",
                log_target: bool = False) -> np.ndarray:
        op = "kl_div"
        _same_shape(op, input, target)
        if log_target:
            weight = np.exp(target)
            losses = weight * (target - input)
        else:
            weight = target
            with np.errstate(divide="ignore", invalid="ignore"):
                log_t = np.log(target)
                losses = np.where(target == 0, 0, target * log_t) - target * input
            ctx.log_t = log_t
        if reduction == "batchmean":
            out, _ = _reduce_loss(losses, "sum", op)
            ctx.scale = 1.0 / input.shape[0] if input.ndim else 1.0
            out = np.asarray(out * ctx.scale, dtype=losses.dtype)
        else:
            out, ctx.scale = _reduce_loss(losses, reduction, op)
        ctx.weight, ctx.input, ctx.target, ctx.log_target = weight, input, target, log_target
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        upstream = _upstream(grad, ctx.scale)
        need_input, need_target = ctx.needs_input_grad
        grad_input = -upstream * ctx.weight if need_input else None
        grad_target = None
        if need_target:
            if ctx.log_target:
                grad_target = upstream * ctx.weight * (ctx.target - ctx.input + 1)
            else:
                with np.errstate(invalid="ignore"):
                    slope = ctx.log_t + 1 - ctx.input
                    # xlogy's own derivative, t/t, is 0/0 at t = 0: PyTorch's NaN
                    grad_target = upstream * np.where(ctx.target == 0, np.nan, slope)
        return grad_input, grad_target


# ----------------------------------------------------------------------------- similarity
class CosineSimilarityOp(Function):
    """sum(x1/c1 * x2/c2) along ``axis``, c = max(||x||, eps) (PyTorch's form);
    with out kept along the axis, d/d x1 = grad (x2/(c1 c2) - out x1/(c1 ||x1||)), the
    second term 0 where ||x1|| = 0; x2 likewise. (Like PyTorch's, the gradient flows
    through the norm even where eps clamps it.)"""

    name = "cosine_similarity"

    @staticmethod
    def forward(ctx: Context, x1: np.ndarray, x2: np.ndarray, axis: int = 1,
                eps: float = 1e-8) -> np.ndarray:
        ctx.shapes = x1.shape, x2.shape
        x1, x2 = np.broadcast_arrays(x1, x2)
        axis = validate.axis("cosine_similarity", "axis", axis, x1.ndim)
        axis = axis if x1.ndim else None
        n1 = np.sqrt(np.sum(x1 * x1, axis=axis, keepdims=True))
        n2 = np.sqrt(np.sum(x2 * x2, axis=axis, keepdims=True))
        c1, c2 = np.maximum(n1, eps), np.maximum(n2, eps)
        out = np.sum((x1 / c1) * (x2 / c2), axis=axis, keepdims=True)
        ctx.save_for_backward(x1, x2, n1, n2, c1, c2, out)
        ctx.axis = axis
        return out if axis is None else np.squeeze(out, axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        x1, x2, n1, n2, c1, c2, out = ctx.saved_tensors
        upstream = grad if ctx.axis is None else np.expand_dims(grad, ctx.axis)
        need1, need2 = ctx.needs_input_grad

        def one(x: np.ndarray, other: np.ndarray, n: np.ndarray, c: np.ndarray,
                c_other: np.ndarray) -> np.ndarray:
            through_norm = np.divide(out, c * n, out=np.zeros_like(out), where=n != 0)
            return upstream * (other / (c * c_other) - through_norm * x)

        # The broadcast inputs' gradients summed back, the reduced axis included.
        return (backend.unbroadcast(one(x1, x2, n1, c1, c2), ctx.shapes[0]) if need1 else None,
                backend.unbroadcast(one(x2, x1, n2, c2, c1), ctx.shapes[1]) if need2 else None)


class NormalizeOp(Function):
    """x / max(||x||_p, eps) along ``axis``; with c = max(n, eps), n = ||x||_p,
    d/dx = grad / c - sum(grad x) / c^2 * dn/dx where n >= eps (0 where eps clamps),
    dn/dx = sign(x) |x|^(p-1) / n^(p-1) (p = inf: sign(x) at the maxima, shared by ties)"""

    name = "normalize"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, p: float = 2.0, axis: int = 1,
                eps: float = 1e-12) -> np.ndarray:
        axis = validate.axis("normalize", "axis", axis, x.ndim)
        axis = axis if x.ndim else None
        size = np.abs(x)
        if p == math.inf:
            norm = np.max(size, axis=axis, keepdims=True) if x.size else np.zeros(
                np.sum(size, axis=axis, keepdims=True).shape, x.dtype)
        elif p == 2:
            norm = np.sqrt(np.sum(x * x, axis=axis, keepdims=True))
        elif p == 1:
            norm = np.sum(size, axis=axis, keepdims=True)
        else:
            norm = np.sum(size ** p, axis=axis, keepdims=True) ** (1 / p)
        clamped = np.maximum(norm, eps)
        out = x / clamped
        ctx.save_for_backward(x, norm, clamped)
        ctx.p, ctx.axis, ctx.eps = p, axis, eps
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        x, norm, clamped = ctx.saved_tensors
        p, axis = ctx.p, ctx.axis
        direct = grad / clamped
        along = np.sum(grad * x, axis=axis, keepdims=True) / (clamped * clamped)
        along = np.where(norm >= ctx.eps, along, 0)  # clamp_min passes nothing below eps
        size = np.abs(x)
        with np.errstate(divide="ignore", invalid="ignore"):
            if p == math.inf:
                peak = (size == norm) | np.isnan(size)
                slope = np.sign(x) * peak / np.sum(peak, axis=axis, keepdims=True)
            elif p == 2:
                slope = np.where(norm != 0, x / norm, 0)
            elif p == 1:
                slope = np.sign(x)
            else:
                # |x|^(p-1) is inf at x = 0 for p < 1; the slope there is 0 (PyTorch's)
                slope = np.where((norm != 0) & (size != 0),
                                 np.sign(x) * size ** (p - 1) / norm ** (p - 1), 0)
        return direct - along * slope


# ----------------------------------------------------------------------------- public forms
def _targets_array(targets: Any) -> np.ndarray:
    return targets.data if isinstance(targets, Tensor) else np.asarray(targets)


def _scores(value: Any, op: str) -> Any:
    """A loss's score input: a float tensor as it is, integers at the default float dtype."""
    return value if isinstance(value, Tensor) and value.dtype.kind == "f" else _float_tensor(
        value, op)


def _ignore(op: str, value: Any) -> int:
    return validate.integer(op, "ignore_index", value)


def cross_entropy(input: Any, target: Any, weight: Any = None, size_average: None = None,
                  ignore_index: int = -100, reduce: None = None, reduction: str = "mean",
                  label_smoothing: float = 0.0) -> Tensor:
    """Softmax cross-entropy of (C,), (N, C) or (N, C, d1, ...) logits against class indices
    (the shape without C) or class probabilities (the logits' shape), as PyTorch's."""
    if (weight is None and size_average is None and reduce is None
            and type(label_smoothing) in (float, int) and label_smoothing == 0
            and type(ignore_index) is int and ignore_index == -100 and type(input) is Tensor
            and input._data.dtype.kind == "f" and type(reduction) is str
            and reduction in REDUCTIONS):
        # The plain call of every training step: nothing to convert or check beyond what the
        # op checks itself.
        targets = target._data if type(target) is Tensor else np.asarray(target)
        if targets.dtype.kind in "iu" and targets.ndim == input._data.ndim - 1:
            return CrossEntropyOp.apply(input, targets, reduction=reduction)
    op = "cross_entropy"
    _no_legacy(op, size_average, reduce)
    input = _scores(input, op)
    dtype = _dtype_of(input)
    weight = _constant(op, "weight", weight, dtype)
    smoothing = validate.real(op, "label_smoothing", label_smoothing, 0, 1)
    reduction = _reduction(op, reduction)
    ignore_index = _ignore(op, ignore_index)
    if not isinstance(target, Tensor):
        target = _as_data(target, where=f"{op} target")
    if target.dtype.kind == "f":
        if not isinstance(target, Tensor):
            target = target.astype(dtype, copy=False)  # a constant takes the logits' dtype
        if np.shape(target) != input.shape:
            raise ValueError(
                f"{op}: float targets are class probabilities and must have the logits' shape "
                f"{input.shape}, got {tuple(np.shape(target))}; class indices must be integers")
        if ignore_index != -100:
            raise ValueError(f"{op}: ignore_index applies to class indices, not to class "
                             "probabilities (PyTorch refuses it too)")
        if _dtype_of(target) != dtype:
            input, target = _operands(input, target)
            weight = None if weight is None else weight.astype(_dtype_of(input))
        return CrossEntropyOp.apply(input, target, weight=weight, reduction=reduction,
                                    label_smoothing=smoothing)
    targets = _targets_array(target)
    if targets.shape == input.shape and targets.shape and targets.dtype.kind in "iub":
        raise ValueError(f"{op}: targets of the logits' shape {input.shape} are class "
                         f"probabilities and must be floating, got {targets.dtype}")
    return CrossEntropyOp.apply(input, targets, weight=weight, ignore_index=ignore_index,
                                reduction=reduction, label_smoothing=smoothing)


def nll_loss(input: Any, target: Any, weight: Any = None, size_average: None = None,
             ignore_index: int = -100, reduce: None = None, reduction: str = "mean") -> Tensor:
    """Negative log-likelihood of (C,), (N, C) or (N, C, d1, ...) log-probabilities at class
    indices, as PyTorch's."""
    op = "nll_loss"
    _no_legacy(op, size_average, reduce)
    input = _scores(input, op)
    weight = _constant(op, "weight", weight, _dtype_of(input))
    return NLLLossOp.apply(input, _targets_array(target), weight=weight,
                           ignore_index=_ignore(op, ignore_index),
                           reduction=_reduction(op, reduction))


def _pair(op: str, input: Any, target: Any) -> list[Any]:
    """A loss's two operands in PyTorch's promoted dtype, and floating."""
    pair = [value if isinstance(value, (Tensor, np.ndarray)) else _as_data(value, where=op)
            for value in (input, target)]
    return [_float_tensor(value, op) for value in _operands(*pair)]


def binary_cross_entropy(input: Any, target: Any, weight: Any = None,
                         size_average: None = None, reduce: None = None,
                         reduction: str = "mean") -> Tensor:
    """Binary cross-entropy of probabilities ``input`` in [0, 1] against ``target``."""
    op = "binary_cross_entropy"
    _no_legacy(op, size_average, reduce)
    input, target = _pair(op, input, target)
    weight = _constant(op, "weight", weight, _dtype_of(input))
    return BCEOp.apply(input, target, weight=weight, reduction=_reduction(op, reduction))


def binary_cross_entropy_with_logits(input: Any, target: Any, weight: Any = None,
                                     size_average: None = None, reduce: None = None,
                                     reduction: str = "mean", pos_weight: Any = None) -> Tensor:
    """Binary cross-entropy of sigmoid(input) against targets in [0, 1], computed stably;
    ``pos_weight`` weighs the positive term (broadcast along the last axis, the classes)."""
    op = "binary_cross_entropy_with_logits"
    _no_legacy(op, size_average, reduce)
    if not isinstance(target, Tensor):
        target = _as_data(target, where=f"{op} targets")
    logits_dtype = _dtype_of(input) if isinstance(input, Tensor) else np.asarray(input).dtype
    if target.dtype != logits_dtype and not isinstance(target, Tensor):
        target = target.astype(logits_dtype)
    dtype = _dtype_of(input)
    return BCEWithLogitsOp.apply(input, target, weight=_constant(op, "weight", weight, dtype),
                                 pos_weight=_constant(op, "pos_weight", pos_weight, dtype),
                                 reduction=_reduction(op, reduction))


def l1_loss(input: Any, target: Any, size_average: None = None, reduce: None = None,
            reduction: str = "mean") -> Tensor:
    """Mean absolute error |input - target|, reduced."""
    _no_legacy("l1_loss", size_average, reduce)
    return L1LossOp.apply(*_pair("l1_loss", input, target),
                          reduction=_reduction("l1_loss", reduction))


def smooth_l1_loss(input: Any, target: Any, size_average: None = None, reduce: None = None,
                   reduction: str = "mean", beta: float = 1.0) -> Tensor:
    """Squared error below ``beta``, absolute error above it (0.5 d^2 / beta, |d| - beta/2)."""
    op = "smooth_l1_loss"
    _no_legacy(op, size_average, reduce)
    beta = validate.real(op, "beta", beta, low=0)
    return SmoothL1LossOp.apply(*_pair(op, input, target), reduction=_reduction(op, reduction),
                                beta=beta)


def huber_loss(input: Any, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Squared error below ``delta``, linear above it (0.5 d^2, delta (|d| - delta/2))."""
    op = "huber_loss"
    delta = validate.real(op, "delta", delta, low=0, low_open=True)
    # PyTorch's huber_loss takes the input's dtype (its other losses promote)
    input = _float_tensor(input, op)
    dtype = _dtype_of(input)
    if isinstance(target, Tensor):
        target = target if target.dtype == dtype else CastOp.apply(target, dtype=dtype)
    else:
        target = _as_data(target, where=op).astype(dtype, copy=False)
    return HuberLossOp.apply(input, target, reduction=_reduction(op, reduction), delta=delta)


def kl_div(input: Any, target: Any, size_average: None = None, reduce: None = None,
           reduction: str = "mean", log_target: bool = False) -> Tensor:
    """KL divergence of ``target`` from the log-probabilities ``input`` (PyTorch's
    argument order); reduction 'batchmean' gives the true KL divergence per sample."""
    op = "kl_div"
    _no_legacy(op, size_average, reduce)
    reduction = _reduction(op, reduction, ("mean", "batchmean", "sum", "none"))
    return KLDivOp.apply(*_pair(op, input, target), reduction=reduction,
                         log_target=validate.boolean(op, "log_target", log_target))


@validate.torch_names
def cosine_similarity(x1: Any, x2: Any, axis: int = 1, eps: float = 1e-8) -> Tensor:
    """Cosine of the angle between ``x1`` and ``x2`` along ``axis`` (they broadcast)."""
    op = "cosine_similarity"
    eps = validate.real(op, "eps", eps, low=0)
    return CosineSimilarityOp.apply(*_pair(op, x1, x2), axis=axis, eps=eps)


@validate.torch_names
def normalize(input: Any, p: float = 2.0, axis: int = 1, eps: float = 1e-12) -> Tensor:
    """``input`` divided by its p-norm along ``axis`` (at least ``eps``)."""
    op = "normalize"
    # Any p > 0, as PyTorch (p < 1 gives no norm, but the same formula)
    p = validate.real(op, "p", p, low=0, low_open=True, finite=False)
    eps = validate.real(op, "eps", eps, low=0)
    return NormalizeOp.apply(_float_tensor(input, op), p=p, axis=axis, eps=eps)
