"""Convolution and pooling on (N, C, H, W) arrays, with hand-derived backward passes.

Convolution is one big matrix product: every receptive field laid out as a row (im2col),
and the weights multiply them all at once. Backward is two more matrix products; the input
gradient is the column gradient added back where each window read it (col2im). Inside,
images are channels-last; the API is (N, C, H, W). The fast forms of these passes are the
kernels in chainrule.kernels.conv.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import kernels
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.validate import integer, is_int

Pair = tuple[int, int]


def pair(value: int | Pair, name: str, op: str, minimum: int) -> Pair:
    """``value`` (an int or a pair of ints) as (height, width), each >= ``minimum``: a float
    or bool is a TypeError, a size below ``minimum`` a ValueError."""
    if type(value) is int and value >= minimum:
        return value, value
    if type(value) is tuple and len(value) == 2:
        h, w = value
        if type(h) is int and type(w) is int and h >= minimum and w >= minimum:
            return value
    return _checked_pair(value, name, op, minimum)


def _checked_pair(value: Any, name: str, op: str, minimum: int) -> Pair:
    """pair's slow path: NumPy ints and lists pass; anything else is explained."""
    wanted = f"{op}: {name} must be an int or a pair of ints"
    if is_int(value):
        parts = (value, value)
    elif isinstance(value, (tuple, list, np.ndarray)):
        parts = tuple(value)
        if len(parts) != 2:
            raise ValueError(f"{wanted}, got {value!r} ({len(parts)} values)")
    else:
        raise TypeError(f"{wanted}, got {value!r} ({type(value).__name__})")
    for part in parts:
        if not is_int(part):
            raise TypeError(f"{wanted}, got {value!r} (a {type(part).__name__} in it)")
    if parts[0] < minimum or parts[1] < minimum:
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return int(parts[0]), int(parts[1])


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                op: str, axis: str) -> int:
    """Output length along one axis; an error when the kernel does not fit."""
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(f"{op}: the kernel spans {span} pixels in {axis} but the padded input "
                         f"has only {size + 2 * padding}; use a smaller kernel or more padding")
    return (size + 2 * padding - span) // stride + 1


def pool_settings(kernel: int | Pair, stride: int | Pair | None, padding: int | Pair,
                  op: str) -> tuple[Pair, Pair, Pair]:
    """A pooling window's (kernel, stride, padding) as pairs, checked; stride defaults to the
    kernel, and padding may be at most half the kernel."""
    kernel = pair(kernel, "kernel_size", op, 1)
    stride = kernel if stride is None else pair(stride, "stride", op, 1)
    padding = pair(padding, "padding", op, 0)
    if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    return kernel, stride, padding


def _check_images(x: np.ndarray, op: str, channels: int | None = None) -> None:
    if x.ndim != 4:
        raise ValueError(f"{op}: expects images shaped (batch, channels, height, width), got "
                         f"shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{op}: expects {channels} input channels, got {x.shape[1]} "
                         f"(input shape {x.shape})")


class Conv2dOp(Function):
    """out[n, o] = sum over c, i, j of x[n, c, s*h + d*i, s*w + d*j] * W[o, c, i, j] + b[o]

    With rows = im2col(x) (one receptive field per output pixel, ordered (i, j, c)) and
    W as a matrix with the same column order: out = rows @ W.T (+ b). So d/dW = grad.T @ rows,
    d/dx = col2im(grad @ W) (each column's gradient added back where its window read), and
    d/db = grad summed over n, h, w. Groups split channels into independent convolutions,
    one matrix product each.
    """

    name = "conv2d"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                stride: int | Pair = 1, padding: int | Pair = 0, dilation: int | Pair = 1,
                groups: int = 1) -> np.ndarray:
        stride = pair(stride, "stride", "conv2d", 1)
        padding = pair(padding, "padding", "conv2d", 0)
        dilation = pair(dilation, "dilation", "conv2d", 1)
        if weight.ndim != 4:
            raise ValueError(f"conv2d: weight must be (out, in/groups, kh, kw), got shape "
                             f"{weight.shape}")
        out_channels, group_in, kh, kw = weight.shape
        if type(groups) is not int:
            groups = integer("conv2d", "groups", groups, low=1)
        if groups < 1 or out_channels % groups:
            raise ValueError(f"conv2d: groups={groups} must divide out channels {out_channels}")
        _check_images(x, "conv2d", group_in * groups)
        out_h = output_size(x.shape[2], kh, stride[0], padding[0], dilation[0], "conv2d",
                            "height")
        out_w = output_size(x.shape[3], kw, stride[1], padding[1], dilation[1], "conv2d",
                            "width")
        padded = kernels.channels_last(x, padding)
        views = kernels.windows(padded, (kh, kw), stride, dilation, (out_h, out_w))
        n = x.shape[0]
        group_out = out_channels // groups
        dtype = np.result_type(x, weight)
        # Weight columns in the rows' (i, j, c) order: (O, kh, kw, C_g) flattened.
        w_rows = weight.transpose(0, 2, 3, 1).reshape(out_channels, -1).astype(dtype, copy=False)
        out = np.empty((n, out_h, out_w, out_channels), dtype)
        flat_out = out.reshape(-1, out_channels)
        rows_per_group = []
        for g in range(groups):
            rows = kernels.im2col(views[..., g * group_in:(g + 1) * group_in], dtype)
            w2 = w_rows[g * group_out:(g + 1) * group_out]
            if groups == 1:
                np.matmul(rows, w2.T, out=flat_out)
            else:
                flat_out[:, g * group_out:(g + 1) * group_out] = rows @ w2.T
            rows_per_group.append(rows)
        if bias is not None:
            flat_out += bias
        ctx.rows, ctx.w_rows, ctx.weight_shape, ctx.groups = rows_per_group, w_rows, \
            weight.shape, groups
        ctx.stride, ctx.padding, ctx.dilation = stride, padding, dilation
        ctx.padded_shape, ctx.out_hw = padded.shape, (out_h, out_w)
        return out.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_x, need_w, need_b = ctx.needs_input_grad
        groups = ctx.groups
        out_channels, group_in, kh, kw = ctx.weight_shape
        group_out = out_channels // groups
        grad_rows = np.ascontiguousarray(grad.transpose(0, 2, 3, 1)).reshape(-1, out_channels)
        grad_w = grad_x = None
        if need_w:
            grad_w = np.empty((out_channels, kh, kw, group_in), grad.dtype)
            for g in range(groups):
                # rows.T @ grad, transposed after: the faster orientation for BLAS here.
                grad_w[g * group_out:(g + 1) * group_out] = (
                    ctx.rows[g].T @ grad_rows[:, g * group_out:(g + 1) * group_out]
                ).T.reshape(group_out, kh, kw, group_in)
            grad_w = np.ascontiguousarray(grad_w.transpose(0, 3, 1, 2))
        if need_x:
            padded = kernels.conv_input_grad(grad_rows, ctx.w_rows, ctx.padded_shape, (kh, kw),
                                             ctx.stride, ctx.dilation, ctx.out_hw, groups)
            grad_x = kernels.images(padded, ctx.padding)
        grad_b = kernels.column_sums(grad_rows) if need_b else None
        return grad_x, grad_w, grad_b


class _PoolOp(Function, register=False):
    """Shared set-up of the pooling ops: the padded channels-last input and the output size.

    Pooling goes one kernel position at a time (4 passes for 2x2): each pass is a strided
    slice, so there is no window array to build and no loop over pixels.
    """

    fill = 0.0

    @classmethod
    def _setup(cls, ctx: Context, x: np.ndarray, kernel: int | Pair, stride: Any,
               padding: int | Pair) -> np.ndarray:
        kernel, stride, padding = pool_window(ctx, x, kernel, stride, padding, cls.name)
        padded = kernels.channels_last(x, padding, cls.fill)
        ctx.padded_shape = padded.shape
        return padded


def pool_window(ctx: Context, x: np.ndarray, kernel: int | Pair, stride: Any,
                padding: int | Pair, op: str) -> tuple[Pair, Pair, Pair]:
    """Check pooling of images ``x``; leave kernel, stride, padding and out_hw on ``ctx``."""
    _check_images(x, op)
    kernel, stride, padding = pool_settings(kernel, stride, padding, op)
    ctx.out_hw = (output_size(x.shape[2], kernel[0], stride[0], padding[0], 1, op, "height"),
                  output_size(x.shape[3], kernel[1], stride[1], padding[1], 1, op, "width"))
    ctx.kernel, ctx.stride, ctx.padding = kernel, stride, padding
    return kernel, stride, padding


class MaxPool2dOp(_PoolOp):
    """max over each window;  the gradient goes to the window's (first) largest element

    Forward keeps, beside the max, where each kernel position k > 0 was strictly larger than
    everything before it. The winner of a window is the last position that was strictly
    larger — on ties the first, as PyTorch picks; a NaN wins its window, as in PyTorch.
    """

    name = "max_pool2d"
    fill = -np.inf

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray, kernel_size: int | Pair = 2,
                stride: int | Pair | None = None, padding: int | Pair = 0) -> np.ndarray:
        padded = cls._setup(ctx, x, kernel_size, stride, padding)
        best, ctx.larger = kernels.window_max(padded, ctx.kernel, ctx.stride, ctx.out_hw)
        return best.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        padded = kernels.route_to_winners(grad.transpose(0, 2, 3, 1), ctx.larger,
                                          ctx.padded_shape, ctx.kernel, ctx.stride, ctx.out_hw)
        return kernels.images(padded, ctx.padding)


class AvgPool2dOp(_PoolOp):
    """mean over each window (padding counts as zeros);  each element gets grad / window size
    from every window it lies in"""

    name = "avg_pool2d"

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray, kernel_size: int | Pair = 2,
                stride: int | Pair | None = None, padding: int | Pair = 0) -> np.ndarray:
        padded = cls._setup(ctx, x, kernel_size, stride, padding)
        return kernels.window_mean(padded, ctx.kernel, ctx.stride, ctx.out_hw).transpose(
            0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        share = grad.transpose(0, 2, 3, 1) * (1 / (ctx.kernel[0] * ctx.kernel[1]))
        padded = kernels.spread_over_windows(share, ctx.padded_shape, ctx.kernel, ctx.stride,
                                             ctx.out_hw)
        return kernels.images(padded, ctx.padding)


def conv2d(x: Any, weight: Any, bias: Any = None, stride: int | Pair = 1,
           padding: int | Pair = 0, dilation: int | Pair = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch) of (N, C, H, W) images."""
    return Conv2dOp.apply(x, weight, bias, stride=stride, padding=padding, dilation=dilation,
                        groups=groups)


def max_pool2d(x: Any, kernel_size: int | Pair = 2, stride: int | Pair | None = None,
               padding: int | Pair = 0) -> Tensor:
    """Max over windows (stride defaults to the kernel size)."""
    return MaxPool2dOp.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(x: Any, kernel_size: int | Pair = 2, stride: int | Pair | None = None,
               padding: int | Pair = 0) -> Tensor:
    """Mean over windows (stride defaults to the kernel size)."""
    return AvgPool2dOp.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)
