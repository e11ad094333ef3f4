"""Convolution and pooling on (N, C, H, W) arrays, with hand-derived backward passes.

Convolution is one big matrix product: a strided view lists every receptive field without
copying (``_windows``), one reshape lays them out as rows (im2col), and the weights multiply
them all at once. Backward is two more matrix products; the input gradient is added back
with one strided add per kernel position (9 for a 3x3 kernel), never a loop over pixels.
Inside, images are channels-last (see ``_channels_last``); the API is (N, C, H, W).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from chainrule.function import Context, Function
from chainrule.parallel import over_batch, over_blocks
from chainrule.tensor import Tensor
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


def _channels_last(x: np.ndarray, padding: Pair, fill: float = 0.0) -> np.ndarray:
    """(N, C, H, W) images as a contiguous, padded (N, H', W', C) array.

    Channels last keeps each pixel's channels next to each other in memory, so the rows of
    im2col and every per-kernel-position slice below are copied in runs of C numbers, not one
    number at a time. Arrays this module returns are transposed views of channels-last
    memory, so a stack of conv, ReLU and pooling layers stays in this layout and the transposes
    cost nothing.
    """
    n, c, h, w = x.shape
    ph, pw = padding
    nhwc = x.transpose(0, 2, 3, 1)
    if ph == pw == 0 and nhwc.flags.c_contiguous:
        return nhwc
    out = np.empty((n, h + 2 * ph, w + 2 * pw, c), x.dtype)

    def copy(lo: int, hi: int) -> None:
        part = out[lo:hi]
        part[:, :ph], part[:, h + ph:], part[:, :, :pw], part[:, :, w + pw:] = (fill,) * 4
        part[:, ph:ph + h, pw:pw + w] = nhwc[lo:hi]

    over_batch(n, copy, out.size)
    return out


def _windows(x: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out: Pair
             ) -> np.ndarray:
    """A (N, out_h, out_w, kh, kw, C) view of every receptive field of channels-last ``x``."""
    n, _, _, c = x.shape
    sn, sh, sw, sc = x.strides
    return as_strided(x, (n, out[0], out[1], kernel[0], kernel[1], c),
                      (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1],
                       sc), writeable=False)


def _tap(x: np.ndarray, i: int, j: int, stride: Pair, dilation: Pair, out: Pair
         ) -> np.ndarray:
    """The (N, out_h, out_w, C) slice that kernel position (i, j) reads from channels-last x."""
    top, left = i * dilation[0], j * dilation[1]
    return x[:, top:top + stride[0] * (out[0] - 1) + 1:stride[0],
             left:left + stride[1] * (out[1] - 1) + 1:stride[1]]


def _im2col(views: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The (N, out_h, out_w, kh, kw, C) windows as ``dtype`` rows, one per output pixel, in
    (i, j, c) order (the copy converts, so mixed dtypes cost no extra pass).

    With one input channel (a first layer on grey images) a row would be gathered one number
    at a time; instead each kernel position's image is copied whole into a column, and the
    rows are that matrix transposed (a view: BLAS takes either layout).
    """
    n, out_h, out_w, kh, kw, c = views.shape
    if c == 1:
        cols = np.empty((kh * kw, n, out_h, out_w), dtype)

        def copy(lo: int, hi: int) -> None:
            for k in range(kh * kw):
                cols[k, lo:hi] = views[lo:hi, :, :, k // kw, k % kw, 0]

        over_batch(n, copy, cols.size)
        return cols.reshape(kh * kw, -1).T
    rows = np.empty((n * out_h * out_w, kh * kw * c), dtype)
    blocks = rows.reshape(views.shape)
    over_batch(n, lambda lo, hi: np.copyto(blocks[lo:hi], views[lo:hi]), rows.size)
    return rows


def _image_bytes(x: np.ndarray) -> int:
    """Bytes of one image of a batch (defined for an empty batch too)."""
    return int(np.prod(x.shape[1:])) * x.itemsize


def _images(x_nhwc: np.ndarray, padding: Pair) -> np.ndarray:
    """Channels-last padded memory back as logical (N, C, H, W), padding cut off (a view)."""
    ph, pw = padding
    h, w = x_nhwc.shape[1] - 2 * ph, x_nhwc.shape[2] - 2 * pw
    return x_nhwc[:, ph:ph + h, pw:pw + w].transpose(0, 3, 1, 2)


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
    d/d rows = grad @ W, computed and added back to x one kernel position at a time (9
    products and strided adds for a 3x3 kernel), and d/db = grad summed over n, h, w. Groups
    split channels into independent convolutions, one matrix product each.
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
        padded = _channels_last(x, padding)
        views = _windows(padded, (kh, kw), stride, dilation, (out_h, out_w))
        n = x.shape[0]
        group_out = out_channels // groups
        dtype = np.result_type(x, weight)
        # Weight columns in the rows' (i, j, c) order: (O, kh, kw, C_g) flattened.
        w_rows = weight.transpose(0, 2, 3, 1).reshape(out_channels, -1).astype(dtype, copy=False)
        out = np.empty((n, out_h, out_w, out_channels), dtype)
        flat_out = out.reshape(-1, out_channels)
        rows_per_group = []
        for g in range(groups):
            rows = _im2col(views[..., g * group_in:(g + 1) * group_in], dtype)
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
        out_hw = ctx.out_hw
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
            padded = np.zeros(ctx.padded_shape, grad.dtype)
            n = grad.shape[0]
            # One product per kernel position, added where that position read: each product
            # lands in one contiguous buffer, where the whole (pixels, kh*kw*C) column matrix
            # would be read back with a stride (measured: 11.1 -> 8.7 ms for a 32->64 3x3
            # conv on 128 14x14 images).
            part = np.empty((len(grad_rows), group_in), grad.dtype)
            images = part.reshape(n, *out_hw, group_in)
            for g in range(groups):
                g_rows = grad_rows[:, g * group_out:(g + 1) * group_out]
                w2 = ctx.w_rows[g * group_out:(g + 1) * group_out]
                target = padded[..., g * group_in:(g + 1) * group_in]
                for k in range(kh * kw):
                    np.matmul(g_rows, w2[:, k * group_in:(k + 1) * group_in], out=part)
                    _tap(target, k // kw, k % kw, ctx.stride, ctx.dilation, out_hw)[...] += images
            grad_x = _images(padded, ctx.padding)
        # A vector-matrix product sums over the pixels on every core; .sum(0) uses one.
        grad_b = np.ones(len(grad_rows), grad_rows.dtype) @ grad_rows if need_b else None
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
        padded = _channels_last(x, padding, cls.fill)
        ctx.padded_shape = padded.shape
        return padded

    @staticmethod
    def _taps(ctx: Context) -> list[tuple[int, int, int]]:
        kh, kw = ctx.kernel
        return [(i * kw + j, i, j) for i in range(kh) for j in range(kw)]


def pool_window(ctx: Context, x: np.ndarray, kernel: int | Pair, stride: Any,
                padding: int | Pair, op: str) -> tuple[Pair, Pair, Pair]:
    """Check pooling of images ``x``; leave kernel, stride, padding and out_hw on ``ctx``."""
    _check_images(x, op)
    kernel, stride, padding = pool_settings(kernel, stride, padding, op)
    ctx.out_hw = (output_size(x.shape[2], kernel[0], stride[0], padding[0], 1, op, "height"),
                  output_size(x.shape[3], kernel[1], stride[1], padding[1], 1, op, "width"))
    ctx.kernel, ctx.stride, ctx.padding = kernel, stride, padding
    return kernel, stride, padding


def window_winners(ctx: Context, lo: int, hi: int
                   ) -> Iterator[tuple[int, int, np.ndarray | None]]:
    """Each kernel position (i, j), last first, with where it won its window, over images
    lo:hi (None: everywhere). ``ctx.larger[k - 1]`` marks where position k was strictly
    larger than all before it; the winner is the last such position — on ties the first, as
    PyTorch picks."""
    taken = None  # windows already won by a later kernel position
    for k, i, j in reversed(_PoolOp._taps(ctx)):
        if k == 0:
            won = None if taken is None else ~taken
        else:
            larger = ctx.larger[k - 1][lo:hi]
            won = larger if taken is None else larger & ~taken
            taken = larger.copy() if taken is None else np.logical_or(taken, larger,
                                                                      out=taken)
        yield i, j, won


class MaxPool2dOp(_PoolOp):
    """max over each window;  the gradient goes to the window's (first) largest element

    Forward keeps a running max over the kernel positions and, for each position k > 0, where
    it was strictly larger than everything before it. The winner of a window is the last
    position that was strictly larger — on ties the first, as PyTorch picks.
    """

    name = "max_pool2d"
    fill = -np.inf

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray, kernel_size: int | Pair = 2,
                stride: int | Pair | None = None, padding: int | Pair = 0) -> np.ndarray:
        padded = cls._setup(ctx, x, kernel_size, stride, padding)
        taps = cls._taps(ctx)
        first = _tap(padded, 0, 0, ctx.stride, (1, 1), ctx.out_hw)
        best = np.empty(first.shape, x.dtype)
        ctx.larger = [np.empty(first.shape, bool) for _ in taps[1:]]

        def pool(lo: int, hi: int) -> None:
            part, top = padded[lo:hi], best[lo:hi]
            top[...] = _tap(part, 0, 0, ctx.stride, (1, 1), ctx.out_hw)
            for (_, i, j), larger in zip(taps[1:], ctx.larger):
                candidate = _tap(part, i, j, ctx.stride, (1, 1), ctx.out_hw)
                # A NaN wins its window, as in PyTorch (the last NaN, if several).
                np.greater(candidate, top, out=larger[lo:hi])
                larger[lo:hi] |= np.isnan(candidate)
                np.maximum(top, candidate, out=top)

        over_blocks(len(best), pool, padded.size, _image_bytes(padded))
        return best.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        grad_nhwc = grad.transpose(0, 2, 3, 1)
        covered = (ctx.stride == ctx.kernel and
                   all(o * k == p for o, k, p in zip(ctx.out_hw, ctx.kernel,
                                                     ctx.padded_shape[1:3])))
        # Windows that tile the input exactly write every pixel once: no zero fill, no adds.
        padded = (np.empty if covered else np.zeros)(ctx.padded_shape, grad.dtype)
        overlapping = ctx.stride[0] < ctx.kernel[0] or ctx.stride[1] < ctx.kernel[1]

        def route(lo: int, hi: int) -> None:
            upstream, part = grad_nhwc[lo:hi], padded[lo:hi]
            for i, j, won in window_winners(ctx, lo, hi):
                if won is None:
                    won = np.ones(upstream.shape, bool)
                target = _tap(part, i, j, ctx.stride, (1, 1), ctx.out_hw)
                if overlapping:
                    target += upstream * won
                elif covered:
                    np.multiply(upstream, won, out=target)
                else:
                    np.copyto(target, upstream, where=won)

        over_blocks(len(grad_nhwc), route, padded.size, _image_bytes(padded))
        return _images(padded, ctx.padding)


class AvgPool2dOp(_PoolOp):
    """mean over each window (padding counts as zeros);  each element gets grad / window size"""

    name = "avg_pool2d"

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray, kernel_size: int | Pair = 2,
                stride: int | Pair | None = None, padding: int | Pair = 0) -> np.ndarray:
        padded = cls._setup(ctx, x, kernel_size, stride, padding)
        taps = cls._taps(ctx)
        total = np.empty(_tap(padded, 0, 0, ctx.stride, (1, 1), ctx.out_hw).shape, x.dtype)

        def pool(lo: int, hi: int) -> None:
            part, block = padded[lo:hi], total[lo:hi]
            block[...] = _tap(part, 0, 0, ctx.stride, (1, 1), ctx.out_hw)
            for _, i, j in taps[1:]:
                block += _tap(part, i, j, ctx.stride, (1, 1), ctx.out_hw)
            block *= 1 / (ctx.kernel[0] * ctx.kernel[1])

        over_blocks(len(total), pool, padded.size, _image_bytes(padded))
        return total.transpose(0, 3, 1, 2)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        share = grad.transpose(0, 2, 3, 1) * (1 / (ctx.kernel[0] * ctx.kernel[1]))
        padded = np.zeros(ctx.padded_shape, grad.dtype)
        taps = AvgPool2dOp._taps(ctx)

        def spread(lo: int, hi: int) -> None:
            part = padded[lo:hi]
            for _, i, j in taps:
                _tap(part, i, j, ctx.stride, (1, 1), ctx.out_hw)[...] += share[lo:hi]

        over_blocks(len(share), spread, padded.size, _image_bytes(padded))
        return _images(padded, ctx.padding)


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
