"""Normalisation ops, each one fused primitive: batch_norm, layer_norm, batch_norm_max_pool2d.

Each normalises x to xhat = (x - mean) / sqrt(var + eps) with the biased variance, then applies
an affine map. Written as a chain of elementwise ops and reductions, the backward would walk
a dozen nodes and keep a dozen arrays; fused, it is the compact formula in each docstring,
and keeps per-channel statistics beside one array (layer_norm over the last axis and
batch_norm: the input, which the tape holds anyway; layer_norm over several axes: xhat).
batch_norm works on x as a (values, channels) matrix, a free view of the channels-last memory
the conv ops return; its passes over that matrix are the kernels in chainrule.kernels.norm.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule import kernels, validate
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.ops.conv import MaxPool2dOp, Pair, pool_window


def _channel_rows(x: np.ndarray) -> tuple[np.ndarray, tuple[int, ...]]:
    """``x`` (N, C, ...) as a (values, C) matrix, and the channels-last shape to undo it."""
    moved = np.moveaxis(x, 1, -1)
    return moved.reshape(math.prod(moved.shape[:-1]), x.shape[1]), moved.shape


def _check_affine(op: str, name: str, value: np.ndarray | None, shape: tuple[int, ...]) -> None:
    if value is not None and np.shape(value) != shape:
        raise ValueError(f"{op}: {name} must have shape {shape}, got {np.shape(value)}")


class BatchNormOp(Function):
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
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None = None,
                bias: np.ndarray | None = None, running_mean: np.ndarray | None = None,
                running_var: np.ndarray | None = None, training: bool = True,
                momentum: float = 0.1, eps: float = 1e-5) -> np.ndarray:
        if _batch_statistics(ctx, x, weight, bias, running_mean, running_var, training,
                             momentum, eps):
            return x.copy()  # an empty batch: empty output, statistics untouched (as PyTorch)
        # y = (x - mean) * scale + bias per channel, scale = weight / sqrt(var + eps)
        return _normalised(ctx)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        if ctx.empty:
            nothing = np.zeros(ctx.channels, grad.dtype)
            return (grad.copy() if need_x else None, nothing if need_weight else None,
                    nothing if need_bias else None)
        grads, _ = _channel_rows(grad)
        # sum(grad) and sum(grad * (x - mean)) per channel, in one pass
        sum_grad, sum_grad_centered = kernels.batch_norm_sums(grads, ctx.rows, ctx.mean,
                                                              *_wanted_sums(ctx))
        grad_x = None
        if need_x:
            a, b, c = _input_grad_coefficients(ctx, sum_grad, sum_grad_centered)
            grad_x = kernels.batch_norm_input_grad(grads, ctx.rows, ctx.mean, a, b, c)
            grad_x = np.moveaxis(grad_x.reshape(ctx.moved_shape), -1, 1)
        grad_weight = sum_grad_centered * ctx.inv_std if need_weight else None
        return grad_x, grad_weight, sum_grad if need_bias else None


class SyncBatchNormOp(Function):
    """batch_norm in training whose statistics are those of every process's batch together.

    ``reduce`` sums an array over the processes (a float64 allreduce; None: one process,
    where this is batch_norm). With m_r values of a channel here and m = sum of them:
      mean = reduce(sum x) / m,  var = reduce(sum (x - mean)^2) / m   (two passes, exact),
    y = weight xhat + bias as in batch_norm, the running statistics moved on every process
    alike (var unbiased by m / (m - 1)). Backward: each process's loss is the mean over its
    own batch and the trainer weights its gradients by w_r = m_r / m (distributed's
    DataParallel), so the global loss's gradient reaches this process scaled by 1 / w_r;
    with S_g = reduce(w_r sum grad) and S_c = reduce(w_r sum grad (x - mean)),
      d/dx = scale (grad - S_g / m_r - (x - mean) inv_std^2 S_c / m_r),   scale = weight inv_std,
    which is batch_norm's d/dx for m_r = m, w_r = 1; d/d weight = sum(grad xhat) and d/d bias
    = sum(grad) stay this process's own sums, for the trainer to weight and add. In eval (or
    without batch statistics to share) it is batch_norm, with no communication.
    """

    name = "sync_batch_norm"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None = None,
                bias: np.ndarray | None = None, running_mean: np.ndarray | None = None,
                running_var: np.ndarray | None = None, training: bool = True,
                momentum: float = 0.1, eps: float = 1e-5, reduce: Any = None) -> np.ndarray:
        ctx.synced = training and reduce is not None
        if not ctx.synced:
            return BatchNormOp.forward(ctx, x, weight, bias, running_mean, running_var,
                                       training, momentum, eps)
        # an empty batch here still shares its (zero) sums: the others wait for them
        _batch_statistics(ctx, x, weight, bias, running_mean, running_var, training,
                          momentum, eps, reduce)
        ctx.reduce, ctx.share = reduce, len(ctx.rows) / ctx.count
        return x.copy() if ctx.empty else _normalised(ctx)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        if not ctx.synced:
            return BatchNormOp.backward(ctx, grad)
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        grads, _ = _channel_rows(grad)
        sum_grad, sum_centered = kernels.batch_norm_sums(grads, ctx.rows, ctx.mean, True, True)
        # every process reduces, whatever it needs: the others wait for this collective
        shared = ctx.reduce(ctx.share * np.concatenate([sum_grad, sum_centered]).astype(
            np.float64))
        grad_x = None
        if need_x and not ctx.empty:
            # batch_norm's coefficients, with the shared sums over this process's m_r values
            a, b, c = _input_grad_coefficients(
                ctx, *(part.astype(grad.dtype) for part in np.split(shared, 2)))
            grad_x = kernels.batch_norm_input_grad(grads, ctx.rows, ctx.mean, a, b, c)
            grad_x = np.moveaxis(grad_x.reshape(ctx.moved_shape), -1, 1)
        elif need_x:
            grad_x = grad.copy()
        grad_weight = sum_centered * ctx.inv_std if need_weight else None
        return grad_x, grad_weight, sum_grad if need_bias else None


def sync_batch_norm(input: Any, running_mean: Any = None, running_var: Any = None,
                    weight: Any = None, bias: Any = None, training: bool = True,
                    momentum: float = 0.1, eps: float = 1e-5, reduce: Any = None) -> Tensor:
    """batch_norm whose training statistics are summed over processes by ``reduce`` (an
    allreduce of a float64 array; None for one process): see SyncBatchNormOp."""
    return SyncBatchNormOp.apply(input, weight, bias, running_mean=_array(running_mean),
                                 running_var=_array(running_var), training=training,
                                 momentum=momentum, eps=eps, reduce=reduce)


def _batch_statistics(ctx: Context, x: np.ndarray, weight: np.ndarray | None,
                      bias: np.ndarray | None, running_mean: np.ndarray | None,
                      running_var: np.ndarray | None, training: bool, momentum: float,
                      eps: float, reduce: Any = None) -> bool:
    """Check batch_norm's inputs, find the statistics (updating the running ones in training)
    and leave on ``ctx`` what the affine pass and backward need. True for an empty batch.

    ``reduce`` (sync_batch_norm's, in training) sums arrays over processes: the statistics
    are then every process's batch's together (``_shared_statistics``), and ``ctx.count``
    the number of values they are over."""
    op = "batch_norm" if reduce is None else "sync_batch_norm"
    if x.ndim < 2:
        raise ValueError(f"{op}: expects (batch, channels, ...) input, got shape {x.shape}")
    channels = x.shape[1]
    for name, value in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                        ("running_var", running_var)):
        _check_affine(op, name, value, (channels,))
    if (running_mean is None) != (running_var is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    count = x.size // max(channels, 1)
    if training and count == 1 and reduce is None:
        raise ValueError("batch_norm: Expected more than 1 value per channel when "
                         f"training, got input size {x.shape}")
    use_batch = training or running_mean is None
    rows, moved_shape = _channel_rows(x)
    ctx.empty, ctx.channels, ctx.count = len(rows) == 0, channels, count
    if ctx.empty and reduce is None:
        return True
    if use_batch:
        if reduce is not None:
            mean, var, count = _shared_statistics(rows, reduce, x.dtype)
            ctx.count = count
        else:
            mean, var = kernels.mean_and_variance(rows)
        if training and running_mean is not None:
            # In place, as torch does: these arrays are the layer's buffers.
            running_mean *= 1 - momentum
            running_mean += momentum * mean
            running_var *= 1 - momentum
            running_var += momentum * var * (count / (count - 1))
    else:
        # The statistics take the input's dtype, so float32 buffers do not demote float64.
        mean = running_mean.astype(x.dtype)
        var = running_var.astype(x.dtype)
    inv_std = 1 / np.sqrt(var + eps)
    scale = inv_std if weight is None else weight * inv_std
    ctx.bias = bias
    ctx.rows, ctx.mean, ctx.inv_std, ctx.scale = rows, mean, inv_std, scale
    ctx.use_batch, ctx.moved_shape = use_batch, moved_shape
    return False


def _shared_statistics(rows: np.ndarray, reduce: Any, dtype: np.dtype
                       ) -> tuple[np.ndarray, np.ndarray, int]:
    """(mean, biased var, count) of the (values, C) ``rows`` of every process together:
    the counts and sums reduced, then the squared deviations from that mean (two passes,
    as exact as one process's), in float64."""
    local = np.concatenate([[len(rows)], np.add.reduce(rows, axis=0, dtype=np.float64)])
    total = reduce(local)
    m = int(round(total[0]))
    if m < 2:
        raise ValueError("sync_batch_norm: Expected more than 1 value per channel when "
                         f"training, got {m} over every process")
    mean = total[1:] / m
    centered = rows - mean.astype(dtype)
    var = reduce(np.einsum("ij,ij->j", centered, centered, dtype=np.float64)) / m
    return mean.astype(dtype), var.astype(dtype), m


def _normalised(ctx: Context) -> np.ndarray:
    """batch_norm's output y = (x - mean) * scale + bias, as (N, C, ...)."""
    out = kernels.normalise(ctx.rows, ctx.mean, ctx.scale, ctx.bias)
    return np.moveaxis(out.reshape(ctx.moved_shape), -1, 1)


def _wanted_sums(ctx: Context) -> tuple[bool, bool]:
    """Which per-channel sums backward needs: of grad, and of grad * (x - mean)."""
    need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
    through_stats = need_x and ctx.use_batch
    return need_bias or through_stats, need_weight or through_stats


def _input_grad_coefficients(ctx: Context, sum_grad: np.ndarray | None,
                             sum_grad_centered: np.ndarray | None) -> tuple:
    """(a, b, c) with d/dx = a grad + b (x - mean) + c per channel (b, c None in eval).

    dx = scale (grad - sum(grad) / m - xhat sum(grad xhat) / m), xhat = (x - mean) inv_std.
    """
    if not ctx.use_batch:
        return ctx.scale, None, None
    m = len(ctx.rows)
    b = -ctx.scale * ctx.inv_std * ctx.inv_std * sum_grad_centered / m
    return ctx.scale, b, -ctx.scale * sum_grad / m


class LayerNormOp(Function):
    """Normalise over the last len(normalized_shape) axes, then y = weight * xhat + bias.

    xhat = (x - mean) / sqrt(var + eps), mean and biased var over the n normalised values of
    each sample; weight and bias have shape normalized_shape. With gh = grad * weight:
      d/d bias = grad summed over the leading axes,  d/d weight = (grad * xhat) summed likewise,
      d/dx = (gh - mean(gh) - xhat mean(gh * xhat)) / sqrt(var + eps)
    (means over the normalised axes; weight varies inside a group here, so it cannot be
    factored out as in batch_norm). Over one axis (the last, a GPT's case) both passes are
    the compiled kernels ``kernels.layer_norm`` and ``kernels.layer_norm_grad``.
    """

    name = "layer_norm"
    same_dtype = True

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
        ctx.weight, ctx.axes = weight, axes
        if k == 1:  # the last axis alone (a GPT's case): the compiled row kernels
            out, ctx.mean, ctx.inv_std = kernels.layer_norm(x, weight, bias, eps)
            ctx.x = x  # the backward rebuilds xhat from x: no second array of x's size
            return out
        mean = x.mean(axis=axes, keepdims=True)
        centered = x - mean
        inv_std = 1 / np.sqrt(np.mean(centered * centered, axis=axes, keepdims=True) + eps)
        xhat = centered * inv_std
        out = xhat if weight is None else xhat * weight
        if bias is not None:
            out = out + bias
        ctx.xhat, ctx.inv_std = xhat, inv_std
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        axes = ctx.axes
        if len(axes) == 1:
            return kernels.layer_norm_grad(grad, ctx.x, ctx.mean, ctx.inv_std, ctx.weight,
                                           need_x, need_weight, need_bias)
        xhat = ctx.xhat
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


def batch_norm(input: Any, running_mean: Any = None, running_var: Any = None, weight: Any = None,
               bias: Any = None, training: bool = False, momentum: float = 0.1,
               eps: float = 1e-5) -> Tensor:
    """Batch normalisation over all axes but axis 1 (PyTorch's argument order).

    In training the running statistics, if given, are updated in place; otherwise (eval) they
    normalise. Buffers are statistics, not inputs: no gradient flows to them.
    """
    return BatchNormOp.apply(input, weight, bias, running_mean=_array(running_mean),
                           running_var=_array(running_var), training=training,
                           momentum=momentum, eps=eps)


def layer_norm(input: Any, normalized_shape: int | tuple[int, ...], weight: Any = None,
               bias: Any = None, eps: float = 1e-5) -> Tensor:
    """Layer normalisation over the trailing ``normalized_shape`` axes."""
    return LayerNormOp.apply(input, weight, bias, normalized_shape=normalized_shape, eps=eps)


class GroupNormOp(Function):
    """Normalise x (N, C, ...) over each group of C / num_groups channels and every axis after
    C, per sample, then y = weight[c] * xhat + bias[c].

    xhat = (x - mean) / sqrt(var + eps), mean and biased var over the m values of a group;
    with gh = grad * weight[c] and means over the group,
      d/dx = (gh - mean(gh) - xhat mean(gh * xhat)) / sqrt(var + eps),
      d/d weight = sum(grad * xhat), d/d bias = sum(grad), both over every axis but C.
    """

    name = "group_norm"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None = None,
                bias: np.ndarray | None = None, *, num_groups: int,
                eps: float = 1e-5) -> np.ndarray:
        if x.ndim < 2:
            raise ValueError(f"group_norm: expects (N, C, ...) input, got shape {x.shape}")
        channels = x.shape[1]
        if channels % num_groups:
            raise ValueError(f"group_norm: num_groups={num_groups} must divide the "
                             f"{channels} channels of input shape {x.shape}")
        _check_affine("group_norm", "weight", weight, (channels,))
        _check_affine("group_norm", "bias", bias, (channels,))
        groups = x.reshape(x.shape[0], num_groups, -1)
        if groups.shape[2] == 0:
            raise ValueError(f"group_norm: input shape {x.shape} has no values to normalise")
        mean = groups.mean(axis=2, keepdims=True)
        centered = groups - mean
        inv_std = 1 / np.sqrt(np.mean(centered * centered, axis=2, keepdims=True) + eps)
        xhat = (centered * inv_std).reshape(x.shape)
        per_channel = (channels,) + (1,) * (x.ndim - 2)
        out = xhat if weight is None else xhat * weight.reshape(per_channel)
        if bias is not None:
            out = out + bias.reshape(per_channel)
        ctx.xhat, ctx.inv_std, ctx.num_groups = xhat, inv_std, num_groups
        ctx.weight, ctx.per_channel = weight, per_channel
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        xhat = ctx.xhat
        others = (0,) + tuple(range(2, xhat.ndim))
        grad_x = None
        if need_x:
            grad_hat = grad if ctx.weight is None else grad * ctx.weight.reshape(ctx.per_channel)
            shape = (xhat.shape[0], ctx.num_groups, -1)
            gh, xh = grad_hat.reshape(shape), xhat.reshape(shape)
            grad_x = ctx.inv_std * (gh - gh.mean(axis=2, keepdims=True)
                                    - xh * (gh * xh).mean(axis=2, keepdims=True))
            grad_x = grad_x.reshape(xhat.shape)
        grad_weight = (grad * xhat).sum(axis=others) if need_weight else None
        grad_bias = grad.sum(axis=others) if need_bias else None
        return grad_x, grad_weight, grad_bias


class RMSNormOp(Function):
    """y = weight * x / sqrt(mean(x^2) + eps), the mean over the trailing normalized_shape
    axes;  with r = 1 / sqrt(mean(x^2) + eps), xhat = x r, gh = grad * weight:
      d/dx = r (gh - xhat mean(gh * xhat)),  d/d weight = (grad * xhat) over the leading axes
    """

    name = "rms_norm"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None = None, *,
                normalized_shape: int | tuple[int, ...], eps: float | None = None
                ) -> np.ndarray:
        norm_shape = _shape_tuple(normalized_shape)
        k = len(norm_shape)
        if k == 0 or x.ndim < k or x.shape[x.ndim - k:] != norm_shape:
            raise ValueError(f"rms_norm: input shape {x.shape} does not end with "
                             f"normalized_shape {norm_shape}")
        _check_affine("rms_norm", "weight", weight, norm_shape)
        if eps is None:  # PyTorch's default: the machine epsilon of the input's dtype
            eps = float(np.finfo(x.dtype).eps)
        axes = tuple(range(x.ndim - k, x.ndim))
        inv_rms = 1 / np.sqrt(np.mean(x * x, axis=axes, keepdims=True) + eps)
        xhat = x * inv_rms
        ctx.xhat, ctx.inv_rms, ctx.weight, ctx.axes = xhat, inv_rms, weight, axes
        return xhat if weight is None else xhat * weight

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_x, need_weight = ctx.needs_input_grad[:2]
        xhat, axes = ctx.xhat, ctx.axes
        grad_x = None
        if need_x:
            grad_hat = grad if ctx.weight is None else grad * ctx.weight
            grad_x = ctx.inv_rms * (grad_hat
                                    - xhat * (grad_hat * xhat).mean(axis=axes, keepdims=True))
        leading = tuple(range(xhat.ndim - len(axes)))
        grad_weight = (grad * xhat).sum(axis=leading) if need_weight else None
        return grad_x, grad_weight


def _shape_tuple(normalized_shape: int | tuple[int, ...]) -> tuple[int, ...]:
    if isinstance(normalized_shape, (int, np.integer)):
        return (int(normalized_shape),)
    return tuple(int(n) for n in normalized_shape)


def group_norm(input: Any, num_groups: int, weight: Any = None, bias: Any = None,
               eps: float = 1e-5) -> Tensor:
    """Group normalisation of (N, C, ...) input: ``num_groups`` groups of channels."""
    num_groups = validate.integer("group_norm", "num_groups", num_groups, low=1)
    eps = validate.real("group_norm", "eps", eps, low=0)
    return GroupNormOp.apply(input, weight, bias, num_groups=num_groups, eps=eps)


def rms_norm(input: Any, normalized_shape: int | tuple[int, ...], weight: Any = None,
             eps: float | None = None) -> Tensor:
    """RMS normalisation over the trailing ``normalized_shape`` axes (eps None: the dtype's
    machine epsilon, as PyTorch's)."""
    eps = validate.real("rms_norm", "eps", eps, low=0, optional=True)
    return RMSNormOp.apply(input, weight, normalized_shape=normalized_shape, eps=eps)


def instance_norm(input: Any, running_mean: Any = None, running_var: Any = None,
                  weight: Any = None, bias: Any = None, use_input_stats: bool = True,
                  momentum: float = 0.1, eps: float = 1e-5) -> Tensor:
    """Instance normalisation of (N, C, ...) input: each sample's channel over its spatial
    axes (PyTorch's F.instance_norm).

    With ``use_input_stats`` it is group_norm with one group per channel, and the running
    statistics, if given, move in place towards the mean over the batch of each instance's
    mean and unbiased variance; without, the running statistics normalise (batch_norm's eval).
    """
    op = "instance_norm"
    use_input_stats = validate.boolean(op, "use_input_stats", use_input_stats)
    momentum = validate.real(op, "momentum", momentum)
    eps = validate.real(op, "eps", eps, low=0)
    data = input.data if isinstance(input, Tensor) else np.asarray(input)
    if data.ndim < 3:
        raise ValueError(f"{op}: expects (N, C, L), (N, C, H, W) or (N, C, D, H, W) input, "
                         f"got shape {data.shape}")
    channels = data.shape[1]
    mean_buffer, var_buffer = _array(running_mean), _array(running_var)
    for name, value in (("running_mean", mean_buffer), ("running_var", var_buffer)):
        _check_affine(op, name, value, (channels,))
    if (mean_buffer is None) != (var_buffer is None):
        raise ValueError(f"{op}: give both running_mean and running_var, or neither")
    if not use_input_stats:
        if mean_buffer is None:
            raise ValueError(f"{op}: use_input_stats=False normalises with the running "
                             "statistics: give running_mean and running_var")
        return BatchNormOp.apply(input, weight, bias, running_mean=mean_buffer,
                                 running_var=var_buffer, training=False, eps=eps)
    spatial = math.prod(data.shape[2:])
    if spatial <= 1:
        raise ValueError(f"{op}: Expected more than 1 spatial element when training, got "
                         f"input size {data.shape}")
    out = GroupNormOp.apply(input, weight, bias, num_groups=channels, eps=eps)
    if mean_buffer is not None and data.shape[0]:
        axes = tuple(range(2, data.ndim))
        # In place, as torch does: these arrays are the layer's buffers.
        mean_buffer *= 1 - momentum
        mean_buffer += momentum * data.mean(axis=axes).mean(axis=0)
        var_buffer *= 1 - momentum
        var_buffer += momentum * data.var(axis=axes, ddof=1).mean(axis=0)
    return out


class BatchNormMaxPool2dOp(Function):
    """max_pool2d(batch_norm(x)), then relu if ``relu``: one node on the tape.

    batch_norm is affine per channel, y = s x + t, so with s > 0 the window's largest y sits
    where its largest x does (with s < 0, its smallest): the windows are found on x itself,
    and only the pooled values are normalised — the full-size y is never written. Backward:
    the output's gradient g reaches y only at the winners, so the per-channel sums batch_norm
    needs (of g, and of g (x - mean)) are taken over the pooled arrays, and
      d/dx = b (x - mean) + c everywhere, plus s g at each window's winner
    (b, c as in batch_norm's d/dx = s grad + b (x - mean) + c; eval: b = c = 0). Where that shortcut
    does not hold — a channel with s = 0 (every y of a window tied: torch gives the first the
    gradient), non-finite statistics, pool padding, an empty batch — the op runs batch_norm
    and max_pool2d themselves, one after the other.

    The output is bit for bit that of the separate ops, and so are the gradients, but for
    one case: where float rounding makes two different x of a window normalise to the same
    y, the gradient goes to the larger x, where max_pool2d would give it to the first.
    """

    name = "batch_norm_max_pool2d"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray | None = None,
                bias: np.ndarray | None = None, running_mean: np.ndarray | None = None,
                running_var: np.ndarray | None = None, training: bool = True,
                momentum: float = 0.1, eps: float = 1e-5, kernel_size: int | Pair = 2,
                stride: int | Pair | None = None, padding: int | Pair = 0,
                relu: bool = False) -> np.ndarray:
        # The pooling is checked first: a refused batch must leave the running statistics
        # as they were, as it does when the layers run one by one.
        kernel, stride, pad = pool_window(ctx, x, kernel_size, stride, padding, "max_pool2d")
        empty = _batch_statistics(ctx, x, weight, bias, running_mean, running_var, training,
                                  momentum, eps)
        scale = None if empty else ctx.scale
        ctx.fast = (not empty and pad == (0, 0) and bool(np.isfinite(scale).all())
                    and bool((scale != 0).all()))
        out = _pool_normalised(ctx) if ctx.fast else None
        if out is None:
            ctx.fast = False
            y = x.copy() if empty else _normalised(ctx)
            ctx.pool = Context()
            ctx.pool.needs_input_grad = (True,)
            out = MaxPool2dOp.forward(ctx.pool, y, kernel, stride, pad)
        ctx.relu = relu
        if relu:
            np.maximum(out, 0, out=out)  # out is this op's own array
            ctx.out = out
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        if ctx.relu:
            grad = grad * (ctx.out > 0)
        if not ctx.fast:
            return BatchNormOp.backward(ctx, MaxPool2dOp.backward(ctx.pool, grad))
        need_x, need_weight, need_bias = ctx.needs_input_grad[:3]
        upstream = grad.transpose(0, 2, 3, 1)  # (N, out_h, out_w, C), like the pooled x
        want_sum, want_centered = _wanted_sums(ctx)
        sum_grad = sum_grad_centered = None
        if want_sum or want_centered:  # sum(g) and sum(g (x - mean)) over the pooled arrays
            flat = np.ascontiguousarray(upstream).reshape(-1, upstream.shape[-1])
            sum_grad = kernels.precise_column_sums(flat).astype(flat.dtype)
            centered = ctx.winners.reshape(flat.shape) - ctx.mean
            centered *= flat
            sum_grad_centered = kernels.precise_column_sums(centered).astype(flat.dtype)
        grad_x = None
        if need_x:
            a, b, c = _input_grad_coefficients(ctx, sum_grad, sum_grad_centered)
            images = ctx.rows.reshape(ctx.moved_shape)  # channels-last x
            # b (x - mean) + c everywhere, plus a g at each window's winner
            grad_nhwc = kernels.pooled_input_grad(images, ctx.mean, b, c, upstream * a,
                                                  ctx.larger, ctx.kernel, ctx.stride,
                                                  ctx.out_hw)
            grad_x = grad_nhwc.transpose(0, 3, 1, 2)
        grad_weight = sum_grad_centered * ctx.inv_std if need_weight else None
        return grad_x, grad_weight, sum_grad if need_bias else None


def _pool_normalised(ctx: Context) -> np.ndarray | None:
    """The fast forward: pool x by the sign of each channel's scale, normalise the pooled
    values; None if x holds a NaN."""
    images = ctx.rows.reshape(ctx.moved_shape)  # (N, H, W, C), a view
    sign = np.sign(ctx.scale).astype(images.dtype)
    best, ctx.larger = kernels.signed_window_max(images, sign, ctx.kernel, ctx.stride,
                                                 ctx.out_hw)
    if np.isnan(np.add.reduce(best, axis=None)):
        return None  # a NaN in x (eval mode): max_pool2d's own NaN rules decide
    np.multiply(best, sign, out=best)  # the winners' x (sign is +-1: exact)
    ctx.winners = best
    # The same rounding as batch_norm's affine pass: these are its outputs at the winners.
    out = kernels.normalise(best.reshape(-1, best.shape[-1]), ctx.mean, ctx.scale, ctx.bias)
    return out.reshape(best.shape).transpose(0, 3, 1, 2)


def batch_norm_max_pool2d(x: Any, running_mean: Any = None, running_var: Any = None,
                          weight: Any = None, bias: Any = None, training: bool = False,
                          momentum: float = 0.1, eps: float = 1e-5, kernel_size: int | Pair = 2,
                          stride: int | Pair | None = None, padding: int | Pair = 0,
                          relu: bool = False) -> Tensor:
    """``max_pool2d(batch_norm(x, ...), kernel_size, stride, padding)`` (then relu if asked),
    fused: the same numbers without the full-size normalised array."""
    return BatchNormMaxPool2dOp.apply(
        x, weight, bias, running_mean=_array(running_mean), running_var=_array(running_var),
        training=training, momentum=momentum, eps=eps, kernel_size=kernel_size, stride=stride,
        padding=padding, relu=relu)
