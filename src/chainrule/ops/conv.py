"""Convolution and pooling on (N, C, H, W) arrays, with hand-derived backward passes.

Convolution is one big matrix product: every receptive field laid out as a row (im2col),
and the weights multiply them all at once. Backward is two more matrix products; the input
gradient is the column gradient added back where each window read it (col2im). Inside,
images are channels-last; the API is (N, C, H, W). The fast forms of these passes are the
kernels in chainrule.kernels.conv.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from chainrule import kernels
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.validate import choice, integer, is_int

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
    return ntuple(value, 2, name, op, minimum, "a pair of ints")  # type: ignore[return-value]


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
    # PyTorch reads an empty stride ([] or ()) as the default, the kernel size.
    stride = kernel if stride is None or (type(stride) in (tuple, list) and not stride) \
        else pair(stride, "stride", op, 1)
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
                kernels.matmul(rows, w2.T, out=flat_out)
            else:
                flat_out[:, g * group_out:(g + 1) * group_out] = kernels.matmul(rows, w2.T)
            rows_per_group.append(rows)
        if bias is not None:
            kernels.add_bias(flat_out, bias)
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
                grad_w[g * group_out:(g + 1) * group_out] = kernels.matmul(
                    ctx.rows[g].T, grad_rows[:, g * group_out:(g + 1) * group_out]
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


def _ndim(x: Any) -> int:
    return x._data.ndim if isinstance(x, Tensor) else np.ndim(x)


def _kernel_ready(x: Any) -> bool:
    """False for what the 2-d pooling kernels cannot take but the general path can:
    unbatched (C, H, W) images and integer or bool ones (they have no -inf to pad with)."""
    data = x._data if isinstance(x, Tensor) else np.asarray(x)
    return data.ndim != 3 and data.dtype.kind == "f"


def conv2d(input: Any, weight: Any, bias: Any = None,
           stride: int | Pair = 1, padding: int | Pair | str = 0, dilation: int | Pair = 1,
           groups: int = 1) -> Tensor:
    """2-D convolution (cross-correlation, as in PyTorch) of (N, C, H, W) images."""
    if type(padding) is not str and _ndim(input) != 3:
        return Conv2dOp.apply(input, weight, bias, stride=stride, padding=padding,
                              dilation=dilation, groups=groups)
    return _conv(input, weight, bias, stride, padding, dilation, groups, 2, "conv2d")


def max_pool2d(input: Any, kernel_size: int | Pair = 2,
               stride: int | Pair | None = None, padding: int | Pair = 0,
               dilation: int | Pair = 1, ceil_mode: bool = False,
               return_indices: bool = False) -> Any:
    """Max over windows (stride defaults to the kernel size); PyTorch's F.max_pool2d."""
    if (dilation == 1 or dilation == (1, 1)) and ceil_mode is False and return_indices is False \
            and _kernel_ready(input):
        return MaxPool2dOp.apply(input, kernel_size=kernel_size, stride=stride, padding=padding)
    return _pool.max_pool(input, 2, kernel_size, stride, padding, dilation, ceil_mode,
                          return_indices, "max_pool2d")


def avg_pool2d(input: Any, kernel_size: int | Pair = 2,
               stride: int | Pair | None = None, padding: int | Pair = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """Mean over windows (stride defaults to the kernel size); PyTorch's F.avg_pool2d."""
    if ceil_mode is False and count_include_pad is True and divisor_override is None \
            and _kernel_ready(input):
        return AvgPool2dOp.apply(input, kernel_size=kernel_size, stride=stride, padding=padding)
    return _pool.avg_pool(input, 2, kernel_size, stride, padding, ceil_mode, count_include_pad,
                          divisor_override, "avg_pool2d")


# ---------------------------------------------------------------------- any number of dims
# conv3d and the transposed convolutions share one N-d path: channels-last im2col through a
# strided view of every receptive field, and its adjoint (col2im), one kernel position at a
# time. A transposed convolution is the input gradient of a convolution, so its forward is
# col2im and its backward the convolution's forward and weight gradient.

def ntuple(value: Any, n: int, name: str, op: str, minimum: int,
           kind: str | None = None) -> tuple[int, ...]:
    """``value`` (an int or n ints) as an n-tuple of ints, each >= ``minimum``; ``kind``
    names the n ints in errors (``a tuple of n ints`` by default)."""
    wanted = f"{op}: {name} must be an int or {kind or f'a tuple of {n} ints'}"
    if is_int(value):
        parts = (value,) * n
    elif isinstance(value, (tuple, list, np.ndarray)):
        parts = tuple(value)
        if len(parts) != n:
            raise ValueError(f"{wanted}, got {value!r} ({len(parts)} values)")
    else:
        raise TypeError(f"{wanted}, got {value!r} ({type(value).__name__})")
    for part in parts:  # every part's kind first, then the sizes
        if not is_int(part):
            raise TypeError(f"{wanted}, got {value!r} (a {type(part).__name__} in it)")
    if any(part < minimum for part in parts):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {value!r}")
    return tuple(int(p) for p in parts)


def _channels_last_nd(x: np.ndarray, padding: tuple[int, ...], shape: tuple[int, ...],
                      dtype: np.dtype) -> np.ndarray:
    """(N, C, *S) as a contiguous zero-padded (N, *shape, C) array, x starting at padding."""
    out = np.zeros((x.shape[0], *shape, x.shape[1]), dtype)
    inner = tuple(slice(p, p + s) for p, s in zip(padding, x.shape[2:]))
    out[(slice(None), *inner)] = np.moveaxis(x, 1, -1)
    return out


def _windows_nd(x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
                dilation: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
    """A read-only (N, *out, *kernel, C) view of every receptive field of channels-last x."""
    strides = x.strides
    spatial = strides[1:-1]
    return as_strided(x, (x.shape[0], *out, *kernel, x.shape[-1]),
                      (strides[0], *(s * t for s, t in zip(spatial, stride)),
                       *(s * d for s, d in zip(spatial, dilation)), strides[-1]),
                      writeable=False)


def _im2col_nd(padded: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...],
               dilation: tuple[int, ...], out: tuple[int, ...], groups: int) -> list[np.ndarray]:
    """Per group, the receptive fields as rows (one per output pixel) in (kernel..., c) order."""
    views = _windows_nd(padded, kernel, stride, dilation, out)
    group_in = padded.shape[-1] // groups
    pixels = padded.shape[0] * math.prod(out)
    rows = []
    for g in range(groups):
        block = np.empty((pixels, math.prod(kernel) * group_in), padded.dtype)
        block.reshape(views.shape[:-1] + (group_in,))[...] = \
            views[..., g * group_in:(g + 1) * group_in]
        rows.append(block)
    return rows


def _times_weights(rows: list[np.ndarray], w_rows: np.ndarray) -> np.ndarray:
    """rows @ W.T group by group: the (pixels, O) output of a convolution."""
    groups = len(rows)
    group_out = w_rows.shape[0] // groups
    out = np.empty((len(rows[0]), w_rows.shape[0]), rows[0].dtype)
    for g, block in enumerate(rows):
        kernels.matmul(block, w_rows[g * group_out:(g + 1) * group_out].T,
                       out=out[:, g * group_out:(g + 1) * group_out])
    return out


def _weight_grad(grad_rows: np.ndarray, rows: list[np.ndarray], kernel: tuple[int, ...]
                 ) -> np.ndarray:
    """d/dW of rows @ W.T, as a (O, C/groups, *kernel) weight: grad.T @ rows per group."""
    groups = len(rows)
    group_out = grad_rows.shape[1] // groups
    group_in = rows[0].shape[1] // math.prod(kernel)
    parts = [kernels.matmul(grad_rows[:, g * group_out:(g + 1) * group_out].T, rows[g])
             .reshape(group_out, *kernel, group_in) for g in range(groups)]
    return np.ascontiguousarray(np.moveaxis(np.concatenate(parts), -1, 1))


def _conv_settings(op: str, x: np.ndarray, weight: np.ndarray, stride: Any, padding: Any,
                   dilation: Any, groups: Any, transposed: bool
                   ) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...], int]:
    """The checked (dims, stride, padding, dilation, groups) of an N-d convolution."""
    if x.dtype.kind != "f" or weight.dtype.kind != "f":
        raise TypeError(f"{op}: expects floating input and weight, got {x.dtype} and "
                        f"{weight.dtype}; convert with .astype(np.float32)")
    dims = weight.ndim - 2
    if not 1 <= dims <= 3:
        layout = "(in, out/groups, k...)" if transposed else "(out, in/groups, k...)"
        raise ValueError(f"{op}: weight must be {layout} with 1 to 3 kernel dims, got shape "
                         f"{weight.shape}")
    if x.ndim != dims + 2:
        raise ValueError(f"{op}: expects input shaped (batch, channels, {dims} spatial dims) "
                         f"for a weight of shape {weight.shape}, got shape {x.shape}")
    groups = integer(op, "groups", groups, low=1)
    channels = weight.shape[0]
    if channels % groups:
        which = "in" if transposed else "out"
        raise ValueError(f"{op}: groups={groups} must divide {which} channels {channels}")
    wanted = channels if transposed else weight.shape[1] * groups
    if x.shape[1] != wanted:
        raise ValueError(f"{op}: expects {wanted} input channels, got {x.shape[1]} (input "
                         f"shape {x.shape}, weight shape {weight.shape})")
    return (dims, ntuple(stride, dims, "stride", op, 1), ntuple(padding, dims, "padding", op, 0),
            ntuple(dilation, dims, "dilation", op, 1), groups)


_AXES = ("depth", "height", "width")


class ConvNdOp(Function):
    """out[n, o, p] = sum over c, k of x[n, c, s*p + d*k] * W[o, c, k] + b[o], any 1-3 dims

    With rows = im2col(x) and W flattened in the same (k..., c) order: out = rows @ W.T + b,
    so d/dW = grad.T @ rows, d/dx = col2im(grad @ W) (each column's gradient added back where
    its window read) and d/db = grad summed over all but the channel axis; groups split the
    channels into independent products.
    """

    name = "conv_nd"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1
                ) -> np.ndarray:
        dims, stride, padding, dilation, groups = _conv_settings(
            "conv_nd", x, weight, stride, padding, dilation, groups, False)
        kernel = weight.shape[2:]
        out = tuple(output_size(n, k, s, p, d, "conv_nd", axis) for n, k, s, p, d, axis in
                    zip(x.shape[2:], kernel, stride, padding, dilation, _AXES[-dims:]))
        padded = _channels_last_nd(x, padding, tuple(n + 2 * p for n, p in
                                                      zip(x.shape[2:], padding)), x.dtype)
        rows = _im2col_nd(padded, kernel, stride, dilation, out, groups)
        w_rows = np.moveaxis(weight, 1, -1).reshape(weight.shape[0], -1)
        flat = _times_weights(rows, w_rows)
        if bias is not None:
            flat += bias
        ctx.rows = rows if ctx.needs_input_grad[1] else None
        ctx.w_rows, ctx.kernel, ctx.out, ctx.groups = w_rows, kernel, out, groups
        ctx.stride, ctx.padding, ctx.dilation = stride, padding, dilation
        ctx.padded_shape, ctx.in_shape = padded.shape, x.shape
        return np.moveaxis(flat.reshape(x.shape[0], *out, weight.shape[0]), -1, 1)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_rows = np.ascontiguousarray(np.moveaxis(grad, 1, -1)).reshape(-1, grad.shape[1])
        grad_x = grad_w = grad_b = None
        if need_w:
            grad_w = _weight_grad(grad_rows, ctx.rows, ctx.kernel)
        if need_x:
            padded = kernels.conv_input_grad(grad_rows, ctx.w_rows, ctx.padded_shape,
                                             ctx.kernel, ctx.stride, ctx.dilation, ctx.out,
                                             ctx.groups)
            inner = tuple(slice(p, p + n) for p, n in zip(ctx.padding, ctx.in_shape[2:]))
            grad_x = np.moveaxis(padded[(slice(None), *inner)], -1, 1)
        if need_b:
            grad_b = grad_rows.sum(axis=0)
        return grad_x, grad_w, grad_b


class ConvTransposeNdOp(Function):
    """the adjoint of a convolution in x (a "deconvolution"), any 1-3 dims

    out = crop(col2im(x_rows @ W)) + b with W (in, out/groups, k...) as the convolution's
    weight matrix; so d/dx = im2col(pad(grad)) @ W.T (the convolution's forward),
    d/dW = x_rows.T @ im2col(pad(grad)) per group, d/db = grad summed but over channels.
    """

    name = "conv_transpose_nd"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None,
                stride: Any = 1, padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                dilation: Any = 1) -> np.ndarray:
        op = "conv_transpose_nd"
        dims, stride, padding, dilation, groups = _conv_settings(
            op, x, weight, stride, padding, dilation, groups, True)
        extra = ntuple(output_padding, dims, "output_padding", op, 0)
        for e, s, d in zip(extra, stride, dilation):
            if e >= max(s, d):
                raise ValueError(f"{op}: output_padding {extra} must be smaller than the "
                                 f"stride {stride} or the dilation {dilation}")
        kernel = weight.shape[2:]
        full = tuple((n - 1) * s + d * (k - 1) + 1 + e for n, s, d, k, e in
                     zip(x.shape[2:], stride, dilation, kernel, extra))
        size = tuple(f - 2 * p for f, p in zip(full, padding))
        if min(size) < 1:
            raise ValueError(f"{op}: padding {padding} leaves an output of size {size} for "
                             f"input {x.shape}; use less padding")
        out_channels = weight.shape[1] * groups
        x_rows = np.ascontiguousarray(np.moveaxis(x, 1, -1)).reshape(-1, x.shape[1])
        w_rows = np.moveaxis(weight, 1, -1).reshape(weight.shape[0], -1)
        padded = kernels.conv_input_grad(x_rows, w_rows, (x.shape[0], *full, out_channels),
                                         kernel, stride, dilation, x.shape[2:], groups)
        out = padded[(slice(None), *(slice(p, p + n) for p, n in zip(padding, size)))]
        if bias is not None:
            out = out + bias
        ctx.x_rows = x_rows if ctx.needs_input_grad[1] else None
        ctx.w_rows, ctx.kernel, ctx.groups, ctx.full = w_rows, kernel, groups, full
        ctx.stride, ctx.padding, ctx.dilation, ctx.in_shape = stride, padding, dilation, x.shape
        return np.moveaxis(out, -1, 1)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = grad_w = grad_b = None
        if need_x or need_w:
            padded = _channels_last_nd(grad, ctx.padding, ctx.full, grad.dtype)
            rows = _im2col_nd(padded, ctx.kernel, ctx.stride, ctx.dilation, ctx.in_shape[2:],
                              ctx.groups)
            if need_x:
                flat = _times_weights(rows, ctx.w_rows)
                grad_x = np.moveaxis(flat.reshape(ctx.in_shape[0], *ctx.in_shape[2:], -1), -1, 1)
            if need_w:
                grad_w = _weight_grad(ctx.x_rows, rows, ctx.kernel)
        if need_b:
            grad_b = grad.sum(axis=(0, *range(2, grad.ndim)))
        return grad_x, grad_w, grad_b


def _same_padding(op: str, padding: str, kernel: tuple[int, ...], stride: Any, dilation: Any
                  ) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """padding='same'/'valid' as (symmetric padding, extra after) per dim: 'same' with an
    even kernel span pads one more after, as PyTorch does."""
    dims = len(kernel)
    padding = choice(op, "padding", padding, ("same", "valid"))
    if padding == "valid":
        return (0,) * dims, (0,) * dims
    if ntuple(stride, dims, "stride", op, 1) != (1,) * dims:
        raise ValueError(f"{op}: padding='same' needs stride 1 (as in PyTorch), got {stride!r}")
    total = [d * (k - 1) for d, k in zip(ntuple(dilation, dims, "dilation", op, 1), kernel)]
    return tuple(t // 2 for t in total), tuple(t % 2 for t in total)


def _conv(x: Any, weight: Any, bias: Any, stride: Any, padding: Any, dilation: Any, groups: Any,
          dims: int, op: str) -> Tensor:
    """A convolution over ``dims`` spatial dims: unbatched inputs, string padding, conv1d
    as conv2d over one-pixel-high images, conv3d through the N-d path."""
    x, w = _as_tensor(x), _as_tensor(weight)
    if w.ndim != dims + 2:
        raise ValueError(f"{op}: weight must be (out, in/groups, {dims} kernel dims), got "
                         f"shape {w.shape}")
    if x.ndim == dims + 1:  # unbatched, as PyTorch takes it
        return _conv(x.unsqueeze(0), w, bias, stride, padding, dilation, groups, dims,
                     op).squeeze(0)
    if isinstance(padding, str):
        padding, after = _same_padding(op, padding, w.shape[2:], stride, dilation)
        if any(after):
            x = _pad.pad(x, tuple(v for a in reversed(after) for v in (0, a)))
    if dims == 2:
        return Conv2dOp.apply(x, w, bias, stride=stride, padding=padding, dilation=dilation,
                              groups=groups)
    if dims == 1:
        if x.ndim != 3:
            raise ValueError(f"{op}: expects input shaped (batch, channels, length) or "
                             f"(channels, length), got shape {x.shape}")
        # A one-pixel-high image: the 2-d path and its kernels, with height settings of 1.
        out = Conv2dOp.apply(x.unsqueeze(2), w.unsqueeze(2), bias,
                             stride=(1,) + ntuple(stride, 1, "stride", op, 1),
                             padding=(0,) + ntuple(padding, 1, "padding", op, 0),
                             dilation=(1,) + ntuple(dilation, 1, "dilation", op, 1),
                             groups=groups)
        return out.squeeze(2)
    return ConvNdOp.apply(x, w, bias, stride=stride, padding=padding, dilation=dilation,
                          groups=groups)


def _as_tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(np.asarray(value))


def conv1d(input: Any, weight: Any, bias: Any = None,
           stride: int | tuple[int] = 1, padding: int | tuple[int] | str = 0,
           dilation: int | tuple[int] = 1, groups: int = 1) -> Tensor:
    """1-D convolution of (N, C, L) signals, as PyTorch's F.conv1d."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 1, "conv1d")


def conv3d(input: Any, weight: Any, bias: Any = None,
           stride: int | tuple[int, int, int] = 1,
           padding: int | tuple[int, int, int] | str = 0,
           dilation: int | tuple[int, int, int] = 1, groups: int = 1) -> Tensor:
    """3-D convolution of (N, C, D, H, W) volumes, as PyTorch's F.conv3d."""
    return _conv(input, weight, bias, stride, padding, dilation, groups, 3, "conv3d")


def _conv_transpose(x: Any, weight: Any, bias: Any, stride: Any, padding: Any,
                    output_padding: Any, groups: Any, dilation: Any, dims: int, op: str
                    ) -> Tensor:
    x, w = _as_tensor(x), _as_tensor(weight)
    if w.ndim != dims + 2:
        raise ValueError(f"{op}: weight must be (in, out/groups, {dims} kernel dims), got "
                         f"shape {w.shape}")
    if isinstance(padding, str):
        raise TypeError(f"{op}: padding must be an int or a tuple of ints (PyTorch has no "
                        f"padding={padding!r} for transposed convolutions)")
    if x.ndim == dims + 1:
        return _conv_transpose(x.unsqueeze(0), w, bias, stride, padding, output_padding, groups,
                               dilation, dims, op).squeeze(0)
    return ConvTransposeNdOp.apply(x, w, bias, stride=stride, padding=padding,
                                   output_padding=output_padding, groups=groups,
                                   dilation=dilation)


def conv_transpose1d(input: Any, weight: Any, bias: Any = None,
                     stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                     groups: int = 1, dilation: Any = 1) -> Tensor:
    """Transposed 1-D convolution; weight (in, out/groups, k), as PyTorch's."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 1, "conv_transpose1d")


def conv_transpose2d(input: Any, weight: Any, bias: Any = None,
                     stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                     groups: int = 1, dilation: Any = 1) -> Tensor:
    """Transposed 2-D convolution; weight (in, out/groups, kh, kw), as PyTorch's."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 2, "conv_transpose2d")


def conv_transpose3d(input: Any, weight: Any, bias: Any = None,
                     stride: Any = 1, padding: Any = 0, output_padding: Any = 0,
                     groups: int = 1, dilation: Any = 1) -> Tensor:
    """Transposed 3-D convolution; weight (in, out/groups, kd, kh, kw), as PyTorch's."""
    return _conv_transpose(input, weight, bias, stride, padding, output_padding, groups,
                           dilation, 3, "conv_transpose3d")


# Imported last: pool and pad build on this module's helpers.
from chainrule.ops import pad as _pad  # noqa: E402
from chainrule.ops import pool as _pool  # noqa: E402
