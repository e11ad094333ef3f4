"""Pooling over 1-3 spatial dims with all of PyTorch's options, adaptive pooling, unpooling.

max_pool2d and avg_pool2d with their default options run the channels-last kernels of
chainrule.ops.conv; every other form is here. Both kinds of window are described per spatial
dim as a table of input positions (output position x tap; a position off the input is the
dim's size, a zero or -inf "sentinel" element appended past its end):

- max pooling gathers each window's elements at once (their flat positions are the sum of the
  dims' tables), takes the first largest as PyTorch does, and its backward adds each output's
  gradient at that winner (one bincount);
- average pooling and adaptive average pooling are separable: a sum over each dim's taps in
  turn, divided by the window's count; backward divides, then adds each tap's gradient back
  along each dim (the adjoint). resize.py's interpolation uses the same machinery with weights.

Max pooling takes every integer and bool dtype, in every form; PyTorch's CPU kernels refuse
some (max_pool1d and adaptive max pooling of integers, any bool), so there it answers where
PyTorch raises. Average pooling takes int64 as PyTorch does (division truncates toward zero).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.ops.conv import ntuple
from chainrule.ops.sort import ValuesIndices
from chainrule.validate import boolean, integer

_AXES = ("depth", "height", "width")


#: What ``return_indices=True`` gives: the pooled values and each winner's flat index into
#: its (unpadded) input plane, as PyTorch's max pooling returns them.
PoolResult = ValuesIndices


def spatial_shape(op: str, shape: tuple[int, ...], dims: int) -> tuple[int, ...]:
    """The last ``dims`` sizes of a batched or unbatched input, checked."""
    if len(shape) not in (dims + 1, dims + 2):
        raise ValueError(f"{op}: expects input shaped (batch, channels, {dims} spatial "
                         f"dim{'s' if dims > 1 else ''}) or without the batch dim, got shape "
                         f"{shape}")
    return shape[-dims:]


def pooled_size(op: str, n: int, kernel: int, stride: int, padding: int, dilation: int,
                ceil_mode: bool, axis: str) -> int:
    """PyTorch's pooling output length along one dim (ceil_mode: the last window must start
    inside the input or its left padding)."""
    span = dilation * (kernel - 1) + 1
    room = n + 2 * padding - span
    if room < 0:
        raise ValueError(f"{op}: the window spans {span} elements in {axis} but the padded "
                         f"input has only {n + 2 * padding}; use a smaller kernel or padding")
    out = (room + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= n + padding:
        out -= 1
    return out


def window_table(n: int, out: int, kernel: int, stride: int, padding: int, dilation: int
                 ) -> np.ndarray:
    """(out, kernel) input positions of each window's taps; n (the sentinel) off the input."""
    pos = (np.arange(out)[:, None] * stride - padding) + np.arange(kernel)[None, :] * dilation
    return np.where((pos >= 0) & (pos < n), pos, n)


def adaptive_bins(n: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's adaptive bins along one dim: [floor(i n / out), ceil((i + 1) n / out))."""
    i = np.arange(out)
    return i * n // out, -(-(i + 1) * n // out)


def adaptive_table(n: int, out: int) -> np.ndarray:
    """(out, widest bin) input positions of each bin; n (the sentinel) past a bin's end."""
    start, end = adaptive_bins(n, out)
    pos = start[:, None] + np.arange(int((end - start).max()) if out else 0)[None, :]
    return np.where(pos < end[:, None], pos, n)


def _settings(op: str, dims: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any
              ) -> tuple[tuple[int, ...], ...]:
    kernel = ntuple(kernel_size, dims, "kernel_size", op, 1)
    stride = kernel if stride is None or (isinstance(stride, (tuple, list)) and not stride) \
        else ntuple(stride, dims, "stride", op, 1)
    padding = ntuple(padding, dims, "padding", op, 0)
    dilation = ntuple(dilation, dims, "dilation", op, 1)
    if any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(f"{op}: padding {padding} must be at most half the kernel {kernel}")
    return kernel, stride, padding, dilation


def _dims(op: str, dims: Any) -> int:
    return integer(op, "dims", dims, low=1, high=3)


# ---------------------------------------------------------------------- max over windows
def flat_windows(tables: list[np.ndarray], spatial: tuple[int, ...]) -> np.ndarray:
    """The dims' tables combined: (windows, taps) flat positions in the input plane, C
    order, with prod(spatial) (the sentinel) where any dim's tap is off the input."""
    dims, size = len(tables), math.prod(spatial)
    steps = [math.prod(spatial[i + 1:]) for i in range(dims)]
    flat = np.zeros([1] * (2 * dims), np.intp)
    off = np.zeros([1] * (2 * dims), bool)
    for i, (table, n) in enumerate(zip(tables, spatial)):
        shape = [1] * (2 * dims)
        shape[i], shape[dims + i] = table.shape
        part = table.reshape(shape)
        flat, off = flat + part * steps[i], off | (part == n)
    flat = np.where(off, size, flat)
    windows = math.prod(t.shape[0] for t in tables)
    return flat.reshape(windows, -1)


def max_over_windows(x: np.ndarray, flat: np.ndarray, dims: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Each window's max (over x's planes) and the flat index of its first largest element;
    NaN wins, as in PyTorch."""
    size = math.prod(x.shape[-dims:])
    planes = x.reshape(-1, size)
    fill = -np.inf if x.dtype.kind == "f" else (
        False if x.dtype.kind == "b" else np.iinfo(x.dtype).min)
    extended = np.empty((len(planes), size + 1), x.dtype)
    extended[:, :size], extended[:, size] = planes, fill
    candidates = extended[:, flat]                       # (planes, windows, taps)
    best = candidates.argmax(axis=-1)  # the first largest, or the first NaN
    values = np.take_along_axis(candidates, best[..., None], -1)[..., 0]
    index = flat[np.arange(flat.shape[0]), best]
    if (index == size).any():  # a window whose max is the fill: its first real element, if any
        first = flat[np.arange(flat.shape[0]), (flat != size).argmax(axis=1)]
        index = np.where(index == size, first, index)
    return values, index


def add_at_winners(grad: np.ndarray, index: np.ndarray, shape: tuple[int, ...], dims: int
                   ) -> np.ndarray:
    """Each output's gradient added at its winner: max pooling's backward, one bincount."""
    size = math.prod(shape[-dims:])
    planes = index.shape[0]
    target = (index + (np.arange(planes) * size)[:, None]).ravel()
    weights = grad.reshape(-1)
    off = index.ravel() == size
    if off.any():  # a window wholly in the padding (dilation can make one): its max is the
        target, weights = target[~off], weights[~off]  # -inf fill, and no input gets a share
    out = np.bincount(target, weights=weights, minlength=planes * size)
    return out.astype(grad.dtype, copy=False).reshape(shape)


class _MaxOverWindowsOp(Function, register=False):
    """Shared forward and backward of max pooling and adaptive max pooling."""

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray, dims: int = 2, indices_out: list | None = None,
                **attrs: Any) -> np.ndarray:
        dims = _dims(cls.name, dims)
        spatial = spatial_shape(cls.name, x.shape, dims)
        tables = cls.tables(spatial, dims, **attrs)
        flat = flat_windows(tables, spatial)
        values, index = max_over_windows(x, flat, dims)
        ctx.index, ctx.shape, ctx.dims = index, x.shape, dims
        out_shape = x.shape[:-dims] + tuple(t.shape[0] for t in tables)
        if indices_out is not None:  # return_indices: the public function hands them out
            indices_out.append(index.reshape(out_shape).astype(np.int64))
        return values.reshape(out_shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return add_at_winners(grad, ctx.index, ctx.shape, ctx.dims)

    @staticmethod
    def tables(spatial: tuple[int, ...], dims: int, **attrs: Any) -> list[np.ndarray]:
        raise NotImplementedError


class MaxPoolOp(_MaxOverWindowsOp):
    """max over each window of 1-3 dims (dilation, ceil_mode, padding as -inf);  the
    gradient goes to the window's first largest element"""

    name = "max_pool"

    @staticmethod
    def tables(spatial: tuple[int, ...], dims: int, kernel_size: Any = 2, stride: Any = None,
               padding: Any = 0, dilation: Any = 1, ceil_mode: bool = False
               ) -> list[np.ndarray]:
        op = "max_pool"
        kernel, stride, padding, dilation = _settings(op, dims, kernel_size, stride, padding,
                                                      dilation)
        ceil_mode = boolean(op, "ceil_mode", ceil_mode)
        return [window_table(n, pooled_size(op, n, k, s, p, d, ceil_mode, axis), k, s, p, d)
                for n, k, s, p, d, axis in zip(spatial, kernel, stride, padding, dilation,
                                               _AXES[-dims:])]


def adaptive_sizes(op: str, output_size: Any, spatial: tuple[int, ...]) -> tuple[int, ...]:
    """output_size (an int or a tuple, None keeping the input's size) as one size per dim."""
    dims = len(spatial)
    if isinstance(output_size, (tuple, list)) and len(output_size) == dims:
        sizes = tuple(n if s is None else s for s, n in zip(output_size, spatial))
    else:
        sizes = output_size
    return ntuple(sizes, dims, "output_size", op, 0)


class AdaptiveMaxPoolOp(_MaxOverWindowsOp):
    """max over PyTorch's adaptive bins of 1-3 dims;  the gradient goes to each bin's first
    largest element"""

    name = "adaptive_max_pool"

    @staticmethod
    def tables(spatial: tuple[int, ...], dims: int, output_size: Any = 1) -> list[np.ndarray]:
        sizes = adaptive_sizes("adaptive_max_pool", output_size, spatial)
        if min(spatial) < 1:
            raise ValueError(f"adaptive_max_pool: cannot pool an empty input (spatial size "
                             f"{spatial})")
        return [adaptive_table(n, o) for n, o in zip(spatial, sizes)]


class MaxUnpoolOp(Function):
    """out[index] = x (zeros elsewhere), per plane;  d/dx = grad read at the indices"""

    name = "max_unpool"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, indices: np.ndarray,
                output_size: tuple[int, ...] = (1, 1)) -> np.ndarray:
        op = "max_unpool"
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"{op}: indices must be integers (max pooling's "
                            f"return_indices=True gives them), got {indices.dtype}")
        if indices.shape != x.shape:
            raise ValueError(f"{op}: indices shape {indices.shape} must equal the input's "
                             f"{x.shape}")
        dims = len(output_size)
        size = math.prod(output_size)
        flat = indices.reshape(-1, math.prod(x.shape[-dims:]) if x.ndim else 1)
        if flat.size and (flat.min() < 0 or flat.max() >= size):
            raise ValueError(f"{op}: indices must lie in [0, {size}) for the output size "
                             f"{tuple(output_size)}, got {flat.min()} to {flat.max()}")
        out = np.zeros((len(flat), size), x.dtype)
        np.put_along_axis(out, flat, x.reshape(flat.shape), axis=1)
        ctx.flat, ctx.shape = flat, x.shape
        return out.reshape(x.shape[:-dims] + tuple(output_size))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        planes = grad.reshape(len(ctx.flat), -1)
        return np.take_along_axis(planes, ctx.flat, axis=1).reshape(ctx.shape), None


# ---------------------------------------------------------------------- separable sums
def gather_along(x: np.ndarray, index: np.ndarray, weight: np.ndarray | None, axis: int
                 ) -> np.ndarray:
    """out[.., o, ..] = sum over taps t of weight[o, t] * x[.., index[o, t], ..], with index n
    (x's size there) reading a zero."""
    n = x.shape[axis]
    if (index == n).any():
        pad_shape = list(x.shape)
        pad_shape[axis] = 1
        x = np.concatenate([x, np.zeros(pad_shape, x.dtype)], axis=axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    out = None
    for t in range(index.shape[1]):
        part = np.take(x, index[:, t], axis=axis)
        if weight is not None:
            part *= weight[:, t].reshape(shape)
        out = part if out is None else np.add(out, part, out=out)
    if out is None:  # no taps: an empty output along this axis
        out_shape = list(x.shape)
        out_shape[axis] = index.shape[0]
        out = np.zeros(out_shape, x.dtype)
    return out


def scatter_along(grad: np.ndarray, index: np.ndarray, weight: np.ndarray | None, axis: int,
                  n: int) -> np.ndarray:
    """The adjoint of gather_along: each tap's weighted gradient added back where it read."""
    moved = np.moveaxis(grad, axis, 0)
    back = np.zeros((n + 1,) + moved.shape[1:], grad.dtype)
    shape = (-1,) + (1,) * (moved.ndim - 1)
    for t in range(index.shape[1]):
        part = moved if weight is None else moved * weight[:, t].reshape(shape)
        column = index[:, t]
        if len(np.unique(column)) == len(column):
            back[column] += part
        else:  # taps that read one element more than once: add.at sums every one
            np.add.at(back, column, part)
    return np.moveaxis(back[:n], 0, axis)


class SeparableOp(Function, register=False):
    """A linear map applied along each of the last dims in turn (last dim first), then
    divided by ``divisor``: ``taps`` gives each dim's (index, weight) tables.

    d/dx: the gradient divided by the divisor, then each dim's adjoint (every tap's
    weighted gradient added back where it read).
    """

    #: The integer dtypes PyTorch takes too (the sums stay integers, the division truncates
    #: toward zero, as its integer kernels do).
    integers: tuple[str, ...] = ()

    @classmethod
    def forward(cls, ctx: Context, x: np.ndarray, dims: int = 2, **attrs: Any) -> np.ndarray:
        if x.dtype.kind != "f" and x.dtype.name not in cls.integers:
            raise TypeError(f"{cls.name}: expects a floating input, got {x.dtype}; convert "
                            f"with .astype(np.float32)")
        dims = _dims(cls.name, dims)
        spatial = spatial_shape(cls.name, x.shape, dims)
        taps, divisor = cls.taps(spatial, x.dtype, **attrs)
        out = x
        first = x.ndim - dims
        for axis in reversed(range(first, x.ndim)):
            index, weight = taps[axis - first]
            out = gather_along(out, index, weight, axis)
        if divisor is not None and x.dtype.kind != "f":
            whole = divisor.astype(x.dtype)
            out = np.sign(out) * (np.abs(out) // whole)  # C's integer division truncates
        elif divisor is not None:
            out = out / divisor.astype(x.dtype)
        ctx.taps, ctx.divisor, ctx.spatial, ctx.first = taps, divisor, spatial, first
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        if ctx.divisor is not None:
            grad = grad / ctx.divisor.astype(grad.dtype)
        for i, (index, weight) in enumerate(ctx.taps):
            grad = scatter_along(grad, index, weight, ctx.first + i, ctx.spatial[i])
        return grad

    @staticmethod
    def taps(spatial: tuple[int, ...], dtype: np.dtype, **attrs: Any) -> tuple:
        raise NotImplementedError


def _outer(counts: list[np.ndarray]) -> np.ndarray:
    """The product of per-dim counts over the output grid."""
    total = np.ones((), np.float64)
    for c in counts:
        total = np.multiply.outer(total, c.astype(np.float64))
    return total


class AvgPoolOp(SeparableOp):
    """mean over each window of 1-3 dims (ceil_mode, count_include_pad, divisor_override);
    d/dx: each element gets grad / divisor from every window it lies in"""

    name = "avg_pool"
    integers = ("int64",)

    @staticmethod
    def taps(spatial: tuple[int, ...], dtype: np.dtype, kernel_size: Any = 2,
             stride: Any = None, padding: Any = 0, ceil_mode: bool = False,
             count_include_pad: bool = True, divisor_override: int | None = None) -> tuple:
        op = "avg_pool"
        dims = len(spatial)
        kernel, stride, padding, _ = _settings(op, dims, kernel_size, stride, padding, 1)
        ceil_mode = boolean(op, "ceil_mode", ceil_mode)
        count_include_pad = boolean(op, "count_include_pad", count_include_pad)
        divisor_override = integer(op, "divisor_override", divisor_override, low=1,
                                   optional=True)
        taps, counts = [], []
        for n, k, s, p, axis in zip(spatial, kernel, stride, padding, _AXES[-dims:]):
            out = pooled_size(op, n, k, s, p, 1, ceil_mode, axis)
            taps.append((window_table(n, out, k, s, p, 1), None))
            start = np.arange(out) * s - p
            end = np.minimum(start + k, n + p)
            counts.append(end - start if count_include_pad else
                          np.minimum(end, n) - np.maximum(start, 0))
        if divisor_override is not None:
            return taps, np.full([len(c) for c in counts], float(divisor_override))
        return taps, _outer(counts)


class AdaptiveAvgPoolOp(SeparableOp):
    """mean over PyTorch's adaptive bins of 1-3 dims;  d/dx: each element gets grad / bin
    size from every bin it lies in"""

    name = "adaptive_avg_pool"

    @staticmethod
    def taps(spatial: tuple[int, ...], dtype: np.dtype, output_size: Any = 1) -> tuple:
        sizes = adaptive_sizes("adaptive_avg_pool", output_size, spatial)
        if min(spatial) < 1:
            raise ValueError(f"adaptive_avg_pool: cannot pool an empty input (spatial size "
                             f"{spatial})")
        counts = []
        for n, o in zip(spatial, sizes):
            start, end = adaptive_bins(n, o)
            counts.append(end - start)
        return [(adaptive_table(n, o), None) for n, o in zip(spatial, sizes)], _outer(counts)


# ---------------------------------------------------------------------- public functions
def max_pool(x: Any, dims: int, kernel_size: Any, stride: Any, padding: Any, dilation: Any,
             ceil_mode: bool, return_indices: bool, op: str) -> Any:
    """Max pooling over ``dims`` spatial dims; (values, indices) with return_indices."""
    return_indices = boolean(op, "return_indices", return_indices)
    found: list | None = [] if return_indices else None
    out = MaxPoolOp.apply(x, dims=dims, kernel_size=kernel_size, stride=stride,
                          padding=padding, dilation=dilation, ceil_mode=ceil_mode,
                          indices_out=found)
    return PoolResult(out, Tensor(found[0])) if return_indices else out


def avg_pool(x: Any, dims: int, kernel_size: Any, stride: Any, padding: Any, ceil_mode: bool,
             count_include_pad: bool, divisor_override: int | None, op: str) -> Tensor:
    """Average pooling over ``dims`` spatial dims."""
    return AvgPoolOp.apply(x, dims=dims, kernel_size=kernel_size, stride=stride,
                           padding=padding, ceil_mode=ceil_mode,
                           count_include_pad=count_include_pad,
                           divisor_override=divisor_override)


def max_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
               ) -> Any:
    """Max over windows of (N, C, L) signals, as PyTorch's F.max_pool1d."""
    return max_pool(input, 1, kernel_size, stride, padding, dilation, ceil_mode,
                    return_indices, "max_pool1d")


def max_pool3d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               dilation: Any = 1, ceil_mode: bool = False, return_indices: bool = False
               ) -> Any:
    """Max over windows of (N, C, D, H, W) volumes, as PyTorch's F.max_pool3d."""
    return max_pool(input, 3, kernel_size, stride, padding, dilation, ceil_mode,
                    return_indices, "max_pool3d")


def avg_pool1d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True) -> Tensor:
    """Mean over windows of (N, C, L) signals, as PyTorch's F.avg_pool1d."""
    return avg_pool(input, 1, kernel_size, stride, padding, ceil_mode, count_include_pad, None,
                    "avg_pool1d")


def avg_pool3d(input: Any, kernel_size: Any, stride: Any = None, padding: Any = 0,
               ceil_mode: bool = False, count_include_pad: bool = True,
               divisor_override: int | None = None) -> Tensor:
    """Mean over windows of (N, C, D, H, W) volumes, as PyTorch's F.avg_pool3d."""
    return avg_pool(input, 3, kernel_size, stride, padding, ceil_mode, count_include_pad,
                    divisor_override, "avg_pool3d")


def _adaptive_max(x: Any, dims: int, output_size: Any, return_indices: bool, op: str) -> Any:
    return_indices = boolean(op, "return_indices", return_indices)
    found: list | None = [] if return_indices else None
    out = AdaptiveMaxPoolOp.apply(x, dims=dims, output_size=output_size, indices_out=found)
    return PoolResult(out, Tensor(found[0])) if return_indices else out


def adaptive_max_pool1d(input: Any, output_size: Any, return_indices: bool = False) -> Any:
    """Max over PyTorch's adaptive bins of (N, C, L) signals."""
    return _adaptive_max(input, 1, output_size, return_indices, "adaptive_max_pool1d")


def adaptive_max_pool2d(input: Any, output_size: Any, return_indices: bool = False) -> Any:
    """Max over PyTorch's adaptive bins of (N, C, H, W) images."""
    return _adaptive_max(input, 2, output_size, return_indices, "adaptive_max_pool2d")


def adaptive_max_pool3d(input: Any, output_size: Any, return_indices: bool = False) -> Any:
    """Max over PyTorch's adaptive bins of (N, C, D, H, W) volumes."""
    return _adaptive_max(input, 3, output_size, return_indices, "adaptive_max_pool3d")


def adaptive_avg_pool1d(input: Any, output_size: Any) -> Tensor:
    """Mean over PyTorch's adaptive bins of (N, C, L) signals."""
    return AdaptiveAvgPoolOp.apply(input, dims=1, output_size=output_size)


def adaptive_avg_pool2d(input: Any, output_size: Any) -> Tensor:
    """Mean over PyTorch's adaptive bins of (N, C, H, W) images."""
    return AdaptiveAvgPoolOp.apply(input, dims=2, output_size=output_size)


def adaptive_avg_pool3d(input: Any, output_size: Any) -> Tensor:
    """Mean over PyTorch's adaptive bins of (N, C, D, H, W) volumes."""
    return AdaptiveAvgPoolOp.apply(input, dims=3, output_size=output_size)


def unpool_size(op: str, shape: tuple[int, ...], dims: int, kernel_size: Any, stride: Any,
                padding: Any, output_size: Any) -> tuple[int, ...]:
    """max_unpool's output size: PyTorch's default (in - 1) * stride - 2 * padding + kernel,
    or ``output_size`` (its last dims), which must be within a stride of the default."""
    spatial = spatial_shape(op, shape, dims)
    kernel, stride, padding, _ = _settings(op, dims, kernel_size, stride, padding, 1)
    default = tuple((n - 1) * s - 2 * p + k for n, s, p, k in
                    zip(spatial, stride, padding, kernel))
    if output_size is None:
        return default
    sizes = tuple(output_size.shape if isinstance(output_size, Tensor) else output_size)
    if len(sizes) in (dims + 1, dims + 2):
        sizes = sizes[-dims:]
    sizes = ntuple(sizes, dims, "output_size", op, 0)
    for size, base, s in zip(sizes, default, stride):
        if not base - s < size < base + s:
            raise ValueError(f"{op}: output_size {sizes} must be within a stride {stride} of "
                             f"the default {default}")
    return sizes


def max_unpool1d(input: Any, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None) -> Tensor:
    """Max pooling's partial inverse: each value put back at its index, zeros elsewhere."""
    size = unpool_size("max_unpool1d", np.shape(_array(input)), 1, kernel_size, stride,
                       padding, output_size)
    return MaxUnpoolOp.apply(input, _array(indices), output_size=size)


def max_unpool2d(input: Any, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None) -> Tensor:
    """Max pooling's partial inverse: each value put back at its index, zeros elsewhere."""
    size = unpool_size("max_unpool2d", np.shape(_array(input)), 2, kernel_size, stride,
                       padding, output_size)
    return MaxUnpoolOp.apply(input, _array(indices), output_size=size)


def max_unpool3d(input: Any, indices: Any, kernel_size: Any, stride: Any = None,
                 padding: Any = 0, output_size: Any = None) -> Tensor:
    """Max pooling's partial inverse: each value put back at its index, zeros elsewhere."""
    size = unpool_size("max_unpool3d", np.shape(_array(input)), 3, kernel_size, stride,
                       padding, output_size)
    return MaxUnpoolOp.apply(input, _array(indices), output_size=size)


def _array(value: Any) -> np.ndarray:
    return value._data if isinstance(value, Tensor) else np.asarray(value)
