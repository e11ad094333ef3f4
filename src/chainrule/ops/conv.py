"""Convolution and pooling on (N, C, H, W) arrays, with hand-derived backward passes.

Convolution is one big matrix product: a strided view lists every receptive field without
copying (``windows``), one reshape lays them out as rows (im2col), and the weights multiply
them all at once. Backward is two more matrix products; the input gradient is scattered back
with one strided add per kernel position (9 for a 3x3 kernel), never a loop over pixels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from chainrule.function import Context, Function
from chainrule.tensor import Tensor

Pair = tuple[int, int]


def pair(value: int | Pair, name: str, op: str, minimum: int) -> Pair:
    """``value`` as (height, width), checked against ``minimum``."""
    result = (value, value) if isinstance(value, (int, np.integer)) else tuple(value)
    if len(result) != 2 or any(not isinstance(v, (int, np.integer)) or v < minimum
                               for v in result):
        raise ValueError(f"{op}: {name} must be an integer >= {minimum} or a pair of them, "
                         f"got {value!r}")
    return int(result[0]), int(result[1])


def output_size(size: int, kernel: int, stride: int, padding: int, dilation: int,
                op: str, axis: str) -> int:
    """Output length along one axis; an error when the kernel does not fit."""
    span = dilation * (kernel - 1) + 1
    if size + 2 * padding < span:
        raise ValueError(f"{op}: the kernel spans {span} pixels in {axis} but the padded input "
                         f"has only {size + 2 * padding}; use a smaller kernel or more padding")
    return (size + 2 * padding - span) // stride + 1


def windows(x: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out: Pair) -> np.ndarray:
    """A (N, C, out_h, out_w, kh, kw) view of every receptive field of padded ``x``."""
    n, c = x.shape[:2]
    sn, sc, sh, sw = x.strides
    return as_strided(x, (n, c, out[0], out[1], kernel[0], kernel[1]),
                      (sn, sc, sh * stride[0], sw * stride[1], sh * dilation[0],
                       sw * dilation[1]), writeable=False)


def scatter_windows(grad_windows: np.ndarray, shape: tuple[int, ...], stride: Pair,
                    dilation: Pair) -> np.ndarray:
    """The adjoint of ``windows``: add each window's gradient back where it was read."""
    out = np.zeros(shape, grad_windows.dtype)
    _, _, out_h, out_w, kh, kw = grad_windows.shape
    for i in range(kh):
        for j in range(kw):
            top, left = i * dilation[0], j * dilation[1]
            out[:, :, top:top + stride[0] * out_h:stride[0],
                left:left + stride[1] * out_w:stride[1]] += grad_windows[:, :, :, :, i, j]
    return out


def _pad(x: np.ndarray, padding: Pair, value: float = 0.0) -> np.ndarray:
    if padding == (0, 0):
        return x
    widths = ((0, 0), (0, 0), (padding[0], padding[0]), (padding[1], padding[1]))
    return np.pad(x, widths, constant_values=value)


def _unpad(x: np.ndarray, padding: Pair) -> np.ndarray:
    ph, pw = padding
    return x[:, :, ph:x.shape[2] - ph, pw:x.shape[3] - pw]


def _check_images(x: np.ndarray, op: str, channels: int | None = None) -> None:
    if x.ndim != 4:
        raise ValueError(f"{op}: expects images shaped (batch, channels, height, width), got "
                         f"shape {x.shape}")
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{op}: expects {channels} input channels, got {x.shape[1]} "
                         f"(input shape {x.shape})")


class Conv2d(Function):
    """out[n, o] = sum over c, i, j of x[n, c, s*h + d*i, s*w + d*j] * W[o, c, i, j] + b[o]

    With rows = im2col(x): out = rows @ W.T (+ b). So d/dW = grad.T @ rows,
    d/d rows = grad @ W, scattered back to x (col2im), and d/db = grad summed over n, h, w.
    Groups split channels into independent convolutions, one matrix product each.
    """

    name = "conv2d"

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
        if groups < 1 or out_channels % groups:
            raise ValueError(f"conv2d: groups={groups} must divide out channels {out_channels}")
        _check_images(x, "conv2d", group_in * groups)
        out_h = output_size(x.shape[2], kh, stride[0], padding[0], dilation[0], "conv2d",
                            "height")
        out_w = output_size(x.shape[3], kw, stride[1], padding[1], dilation[1], "conv2d",
                            "width")
        padded = _pad(x, padding)
        views = windows(padded, (kh, kw), stride, dilation, (out_h, out_w))
        n = x.shape[0]
        group_out = out_channels // groups
        out = np.empty((n, out_h, out_w, out_channels), np.result_type(x, weight))
        rows_per_group = []
        for g in range(groups):
            # (N, Ho, Wo, C_g, kh, kw) rows: one receptive field per output pixel
            rows = views[:, g * group_in:(g + 1) * group_in].transpose(0, 2, 3, 1, 4, 5)
            rows = rows.reshape(n * out_h * out_w, group_in * kh * kw)
            w2 = weight[g * group_out:(g + 1) * group_out].reshape(group_out, -1)
            out[..., g * group_out:(g + 1) * group_out] = (rows @ w2.T).reshape(
                n, out_h, out_w, group_out)
            rows_per_group.append(rows)
        if bias is not None:
            out += bias
        ctx.rows, ctx.weight, ctx.groups = rows_per_group, weight, groups
        ctx.stride, ctx.padding, ctx.dilation = stride, padding, dilation
        ctx.padded_shape, ctx.out_hw = padded.shape, (out_h, out_w)
        return out.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_x, need_w, need_b = ctx.needs_input_grad
        weight, groups = ctx.weight, ctx.groups
        out_channels, group_in, kh, kw = weight.shape
        group_out = out_channels // groups
        n = grad.shape[0]
        out_h, out_w = ctx.out_hw
        grad_rows = grad.transpose(0, 2, 3, 1).reshape(-1, out_channels)
        grad_w = np.empty_like(weight) if need_w else None
        grad_windows = (np.empty((n, group_in * groups, out_h, out_w, kh, kw), grad.dtype)
                        if need_x else None)
        for g in range(groups):
            g_rows = grad_rows[:, g * group_out:(g + 1) * group_out]
            if need_w:
                grad_w[g * group_out:(g + 1) * group_out] = (g_rows.T @ ctx.rows[g]).reshape(
                    group_out, group_in, kh, kw)
            if need_x:
                w2 = weight[g * group_out:(g + 1) * group_out].reshape(group_out, -1)
                cols = (g_rows @ w2).reshape(n, out_h, out_w, group_in, kh, kw)
                grad_windows[:, g * group_in:(g + 1) * group_in] = cols.transpose(
                    0, 3, 1, 2, 4, 5)
        grad_x = None
        if need_x:
            grad_x = _unpad(scatter_windows(grad_windows, ctx.padded_shape, ctx.stride,
                                            ctx.dilation), ctx.padding)
        grad_b = grad.sum(axis=(0, 2, 3)) if need_b else None
        return grad_x, grad_w, grad_b


class _Pool(Function, register=False):
    """Shared set-up of the pooling ops: windows over the (padded) input."""

    fill = 0.0

    @classmethod
    def _views(cls, ctx: Context, x: np.ndarray, kernel: int | Pair, stride: Any,
               padding: int | Pair) -> np.ndarray:
        op = cls.name
        _check_images(x, op)
        kernel = pair(kernel, "kernel_size", op, 1)
        stride = kernel if stride is None else pair(stride, "stride", op, 1)
        padding = pair(padding, "padding", op, 0)
        if padding[0] * 2 > kernel[0] or padding[1] * 2 > kernel[1]:
            raise ValueError(f"{op}: padding {padding} must be at most half the kernel "
                             f"{kernel}")
        out = (output_size(x.shape[2], kernel[0], stride[0], padding[0], 1, op, "height"),
               output_size(x.shape[3], kernel[1], stride[1], padding[1], 1, op, "width"))
        padded = _pad(x, padding, cls.fill)
        ctx.kernel, ctx.stride, ctx.padding = kernel, stride, padding
        ctx.padded_shape = padded.shape
        return windows(padded, kernel, stride, (1, 1), out)


class MaxPool2d(_Pool):
    """max over each window;  the gradient goes to the window's (first) largest element"""

    name = "max_pool2d"
    fill = -np.inf

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray, kernel_size: int | Pair = 2,
                stride: int | Pair | None = None, padding: int | Pair = 0) -> np.ndarray:
        views = cls._views(ctx, x, kernel_size, stride, padding)
        flat = views.reshape(views.shape[:4] + (-1,))
        ctx.argmax = flat.argmax(axis=-1)  # first maximum, as PyTorch picks
        return np.take_along_axis(flat, ctx.argmax[..., None], axis=-1)[..., 0]

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        kh, kw = ctx.kernel
        picked = ctx.argmax[..., None] == np.arange(kh * kw)
        grad_windows = (grad[..., None] * picked).reshape(grad.shape + (kh, kw))
        return _unpad(scatter_windows(grad_windows, ctx.padded_shape, ctx.stride, (1, 1)),
                      ctx.padding)


class AvgPool2d(_Pool):
    """mean over each window (padding counts as zeros);  each element gets grad / window size"""

    name = "avg_pool2d"

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray, kernel_size: int | Pair = 2,
                stride: int | Pair | None = None, padding: int | Pair = 0) -> np.ndarray:
        views = cls._views(ctx, x, kernel_size, stride, padding)
        return views.mean(axis=(-2, -1))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        kh, kw = ctx.kernel
        spread = np.broadcast_to((grad / (kh * kw))[..., None, None], grad.shape + (kh, kw))
        return _unpad(scatter_windows(spread, ctx.padded_shape, ctx.stride, (1, 1)),
                      ctx.padding)


def conv2d(x: Any, weight: Any, bias: Any = None, stride: int | Pair = 1,
           padding: int | Pair = 0, dilation: int | Pair = 1, groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch) of (N, C, H, W) images."""
    return Conv2d.apply(x, weight, bias, stride=stride, padding=padding, dilation=dilation,
                        groups=groups)


def max_pool2d(x: Any, kernel_size: int | Pair = 2, stride: int | Pair | None = None,
               padding: int | Pair = 0) -> Tensor:
    """Max over windows (stride defaults to the kernel size)."""
    return MaxPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)


def avg_pool2d(x: Any, kernel_size: int | Pair = 2, stride: int | Pair | None = None,
               padding: int | Pair = 0) -> Tensor:
    """Mean over windows (stride defaults to the kernel size)."""
    return AvgPool2d.apply(x, kernel_size=kernel_size, stride=stride, padding=padding)
