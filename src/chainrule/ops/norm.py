"""Normalisation ops, each one fused primitive: batch_norm and layer_norm.

Both normalise x to xhat = (x - mean) / sqrt(var + eps) with the biased variance, then apply
an affine map. Written as a chain of elementwise ops and reductions, the backward would walk
a dozen nodes and keep a dozen arrays; fused, it is the compact formula in each docstring,
which keeps only xhat and 1 / sqrt(var + eps).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.function import Context, Function
from chainrule.parallel import over_batch
from chainrule.tensor import Tensor


def _channel_rows(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """``x`` (N, C, ...) as a (values, C) matrix, and the channels-last shape to undo it."""
    moved = np.moveaxis(x, 1, -1)
    return moved.reshape(-1, x.shape[1]), moved.shape


def _check_affine(op: str, name: str, value: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if value is not None and np.shape(value) != shape:
        raise ValueError(f"{op}: {name} must have shape {shape}, got {np.shape(value)}")


class BatchNorm(Function):
    """Normalise each channel (axis 1) over every other axis, then y = weight * xhat + bias.

    Training (or no running statistics): mean and biased var over the m values of a channel,
    xhat = (x - mean) / sqrt(var + eps);
      d/d bias = sum(grad),  d/d weight = sum(grad * xhat),
      d/dx = weight / (m sqrt(var + eps)) * (m grad - sum(grad) - xhat sum(grad * xhat))
    (sums per channel; the last two terms are the paths through the mean and the variance).
    With ``running_mean``/``running_var`` given in training they are updated in place, as in
    PyTorch: r = (1 - momentum) r + momentum * s, with the unbiased variance var * m / (m - 1).
    Eval: the running statistics are constants and y is affine in x;
      d/dx = grad * weight / sqrt(running_var + eps).
    """

    name = "batch_norm"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None = None,
                bias: np.ndarray | None = None, running_mean: np.ndarray | None = None,
                running_var: np.ndarray | None = None, training: bool = True,
                momentum: float = 0.1, eps: float = 1e-5) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"batch_norm: expects (batch, channels, ...) input, got shape "
                             f"{x.shape}")
        channels = x.shape[1]
        for name, value in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                            ("running_var", running_var)):
            _check_affine("batch_norm", name, value, (channels,))
        if (running_mean is None) != (running_var is None):
            raise ValueError("batch_norm: give both running_mean and running_var, or neither")
        count = x.size // max(channels, 1)
        if training and count == 1:
            raise ValueError("batch_norm: Expected more than 1 value per channel when "
                             f"training, got input size {x.shape}")
        use_batch = training or running_mean is None
        # Work on a (values, channels) matrix: a free view of channels-last memory (what the
        # conv ops return), so per-channel sums are vector-matrix products on every core and
        # the elementwise passes run over contiguous rows, split over threads.
        rows, moved_shape = _channel_rows(x)
        m = len(rows)
        ones = np.ones(m, rows.dtype)
        centered = np.empty_like(rows) if use_batch else None
        out = np.empty_like(rows)
        if use_batch:
            mean = (ones @ rows) / m

            def center(lo: int, hi: int) -> None:
                np.subtract(rows[lo:hi], mean, out=centered[lo:hi])
                np.multiply(centered[lo:hi], centered[lo:hi], out=out[lo:hi])

            over_batch(m, center, rows.size)
            var = (ones @ out) / m  # out holds the squares for now
            inv_std = 1 / np.sqrt(var + eps)
            if training and running_mean is not None:
                # In place, as torch does: these arrays are the layer's buffers.
                running_mean *= 1 - momentum
                running_mean += momentum * mean
                running_var *= 1 - momentum
                running_var += momentum * var * (count / (count - 1))
        else:
            # The statistics take the input's dtype, so float32 buffers do not demote float64.
            mean = running_mean.astype(x.dtype)
            inv_std = 1 / np.sqrt(running_var.astype(x.dtype) + eps)
        scale = inv_std if weight is None else weight * inv_std
        shift = -mean * scale if bias is None else bias - mean * scale

        def affine(lo: int, hi: int) -> None:
            if use_batch:
                np.multiply(centered[lo:hi], scale, out=out[lo:hi])
                if bias is not None:
                    out[lo:hi] += bias
            else:
                np.multiply(rows[lo:hi], scale, out=out[lo:hi])
                out[lo:hi] += shift

        over_batch(m, affine, rows.size)
        ctx.centered = centered if use_batch else None
        # Eval keeps the input (a view, no copy) in case the weight wants its gradient.
        ctx.inputs, ctx.mean = (None, None) if use_batch else (rows, mean)
        ctx.inv_std, ctx.weight, ctx.scale = inv_std, weight, scale
        ctx.use_batch, ctx.moved_shape, ctx.count = use_batch, moved_shape, count
        return np.moveaxis(out.reshape(moved_shape), -1, 1)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        rows, _ = _channel_rows(grad)
        m = len(rows)
        ones = np.ones(m, rows.dtype)
        centered, inv_std = ctx.centered, ctx.inv_std
        sum_grad = ones @ rows if need_bias or (need_x and ctx.use_batch) else None
        sum_grad_xhat = None
        scratch = np.empty_like(rows) if need_x or need_weight else None
        if ctx.use_batch and (need_weight or need_x):
            over_batch(m, lambda lo, hi: np.multiply(rows[lo:hi], centered[lo:hi],
                                                     out=scratch[lo:hi]), rows.size)
            sum_grad_xhat = (ones @ scratch) * inv_std  # sum(grad * xhat) per channel
        elif need_weight:  # eval: xhat from the running statistics, rebuilt here
            sum_grad_xhat = (ones @ (rows * (ctx.inputs - ctx.mean))) * inv_std
        grad_x = None
        if need_x:
            grad_x = np.empty_like(rows)
            if ctx.use_batch:
                # dx = scale (grad - sum(grad) / m - xhat sum(grad xhat) / m), with
                # xhat = centered * inv_std: three per-channel coefficients.
                k_grad = ctx.scale
                k_centered = -ctx.scale * inv_std * sum_grad_xhat / m
                k_const = -ctx.scale * sum_grad / m

                def chain(lo: int, hi: int) -> None:
                    np.multiply(centered[lo:hi], k_centered, out=grad_x[lo:hi])
                    grad_x[lo:hi] += k_const
                    np.multiply(rows[lo:hi], k_grad, out=scratch[lo:hi])
                    grad_x[lo:hi] += scratch[lo:hi]

                over_batch(m, chain, rows.size)
            else:
                over_batch(m, lambda lo, hi: np.multiply(rows[lo:hi], ctx.scale,
                                                         out=grad_x[lo:hi]), rows.size)
            grad_x = np.moveaxis(grad_x.reshape(ctx.moved_shape), -1, 1)
        return (grad_x, sum_grad_xhat if need_weight else None,
                sum_grad if need_bias else None)


class LayerNorm(Function):
    """Normalise over the last len(normalized_shape) axes, then y = weight * xhat + bias.

    xhat = (x - mean) / sqrt(var + eps), mean and biased var over the n normalised values of
    each sample; weight and bias have shape normalized_shape. With gh = grad * weight:
      d/d bias = grad summed over the leading axes,  d/d weight = (grad * xhat) summed likewise,
      d/dx = (gh - mean(gh) - xhat mean(gh * xhat)) / sqrt(var + eps)
    (means over the normalised axes; weight varies inside a group here, so it cannot be
    factored out as in batch_norm).
    """

    name = "layer_norm"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None = None,
                bias: np.ndarray | None = None, *, normalized_shape: int | tuple[int, ...],
                eps: float = 1e-5) -> np.ndarray:
        norm_shape = ((int(normalized_shape),) if isinstance(normalized_shape, (int, np.integer))
                      else tuple(int(n) for n in normalized_shape))
        k = len(norm_shape)
        if k == 0 or x.ndim < k or x.shape[x.ndim - k:] != norm_shape:
            raise ValueError(f"layer_norm: input shape {x.shape} does not end with "
                             f"normalized_shape {norm_shape}")
        _check_affine("layer_norm", "weight", weight, norm_shape)
        _check_affine("layer_norm", "bias", bias, norm_shape)
        axes = tuple(range(x.ndim - k, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        inv_std = 1 / np.sqrt(np.mean(centered * centered, axis=axes, keepdims=True) + eps)
        xhat = centered * inv_std
        out = xhat if weight is None else xhat * weight
        if bias is not None:
            out = out + bias
        ctx.xhat, ctx.inv_std, ctx.weight, ctx.axes = xhat, inv_std, weight, axes
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        xhat, axes = ctx.xhat, ctx.axes
        leading = tuple(range(xhat.ndim - len(axes)))
        grad_x = None
        if need_x:
            grad_hat = grad if ctx.weight is None else grad * ctx.weight
            grad_x = ctx.inv_std * (
                grad_hat - grad_hat.mean(axis=axes, keepdims=True)
                - xhat * (grad_hat * xhat).mean(axis=axes, keepdims=True))
        grad_weight = (grad * xhat).sum(axis=leading) if need_weight else None
        grad_bias = grad.sum(axis=leading) if need_bias else None
        return grad_x, grad_weight, grad_bias


def _array(value: Any) -> np.ndarray | None:
    return value.data if isinstance(value, Tensor) else value


def batch_norm(x: Any, running_mean: Any = None, running_var: Any = None, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation over all axes but axis 1 (PyTorch's argument order).

    In training the running statistics, if given, are updated in place; otherwise (eval) they
    normalise. Buffers are statistics, not inputs: no gradient flows to them.
    """
    return BatchNorm.apply(x, weight, bias, running_mean=_array(running_mean),
                           running_var=_array(running_var), training=training,
                           momentum=momentum, eps=eps)


def layer_norm(x: Any, normalized_shape: int | tuple[int, ...], weight: Any = None,
               bias: Any = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` axes."""
    return LayerNorm.apply(x, weight, bias, normalized_shape=normalized_shape, eps=eps)
