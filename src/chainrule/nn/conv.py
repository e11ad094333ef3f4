"""Convolution layers over 1-3 spatial dims, and the 2-d pooling layers; the ops live in
chainrule.ops.conv (the other pooling layers are in nn/pool.py)."""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.ops.conv import (
    Pair,
    _conv_transpose,
    avg_pool2d,
    conv1d,
    conv2d,
    conv3d,
    max_pool2d,
    ntuple,
    pair,
    pool_settings,
)
from chainrule.ops.pad import pad
from chainrule.ops.shape import flatten

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _padding(name: str, value: Any, dims: int) -> tuple[int, ...] | str:
    """A conv layer's padding: ints per dim, or 'same' / 'valid' as PyTorch takes them."""
    if isinstance(value, str):
        if value not in ("same", "valid"):
            raise TypeError(f"{name}: padding must be an int, a tuple of ints, 'same' or "
                            f"'valid', got {value!r}")
        return value
    return ntuple(value, dims, "padding", name, 0)


class _ConvNd(Module):
    """What Conv1d/2d/3d and ConvTranspose1d/2d/3d share: checked settings, PyTorch's
    initialisation (U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias), its repr."""

    dims: ClassVar[int] = 2
    transposed: ClassVar[bool] = False

    def _setup(self, in_channels: Any, out_channels: Any, kernel_size: Any, stride: Any,
               padding: Any, dilation: Any, groups: Any, bias: Any, padding_mode: Any,
               dtype: Any, generator: Any, output_padding: Any = 0) -> None:
        name, dims = type(self).__name__, self.dims
        in_channels = validate.integer(name, "in_channels", in_channels, low=1)
        out_channels = validate.integer(name, "out_channels", out_channels, low=1)
        groups = validate.integer(name, "groups", groups, low=1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = ntuple(kernel_size, dims, "kernel_size", name, 1)
        self.stride = ntuple(stride, dims, "stride", name, 1)
        self.padding = _padding(name, padding, dims)
        self.dilation = ntuple(dilation, dims, "dilation", name, 1)
        self.padding_mode = validate.choice(name, "padding_mode", padding_mode, PADDING_MODES)
        if self.transposed:
            if isinstance(self.padding, str):
                raise TypeError(f"{name}: padding must be an int or a tuple of ints, got "
                                f"{padding!r}")
            if self.padding_mode != "zeros":
                raise ValueError(f"{name}: only padding_mode='zeros' is supported (as in "
                                 f"PyTorch), got {padding_mode!r}")
            self.output_padding = ntuple(output_padding, dims, "output_padding", name, 0)
            for extra, s, d in zip(self.output_padding, self.stride, self.dilation):
                if extra >= max(s, d):
                    raise ValueError(f"{name}: output_padding {self.output_padding} must be "
                                     f"smaller than the stride or the dilation")
        if self.padding == "same" and self.stride != (1,) * dims:
            raise ValueError(f"{name}: padding='same' needs stride 1, got {self.stride}")
        self._pads = self._edge_pads()
        bias = validate.boolean(name, "bias", bias)
        dtype = validate.float_dtype(name, "dtype", dtype)
        generator = validate.generator(name, "generator", generator)
        if self.transposed:
            shape = (in_channels, out_channels // groups) + self.kernel_size
        else:
            shape = (out_channels, in_channels // groups) + self.kernel_size
        bound = 1 / math.sqrt(math.prod(shape[1:]))
        self.weight = Parameter(init.empty(shape, dtype))
        init.uniform_(self.weight, -bound, bound, generator=generator)
        self.bias = None
        if bias:
            self.bias = Parameter(init.empty(out_channels, dtype))
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def _edge_pads(self) -> tuple[int, ...] | None:
        """F.pad's tuple (last dim first) for a padding_mode other than zeros."""
        if self.padding_mode == "zeros":
            return None
        pads: list[int] = []
        for i in reversed(range(self.dims)):
            if self.padding == "valid":
                before = after = 0
            elif self.padding == "same":
                total = self.dilation[i] * (self.kernel_size[i] - 1)
                before, after = total // 2, total - total // 2
            else:
                before = after = self.padding[i]
            pads += [before, after]
        return tuple(pads)

    def _check_input(self, x: Any) -> None:
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        # Batched (N, C, *spatial) or, as PyTorch takes it, unbatched (C, *spatial).
        if len(shape) not in (self.dims + 1, self.dims + 2) or \
                shape[-self.dims - 1] != self.in_channels:
            spatial = ", ".join(("D", "H", "W")[3 - self.dims:]) if self.dims > 1 else "L"
            raise ValueError(f"{type(self).__name__}({self.in_channels}, {self.out_channels}): "
                             f"expected input (N, {self.in_channels}, {spatial}), got shape "
                             f"{tuple(shape)}; an unbatched input is ({self.in_channels}, "
                             f"{spatial})")

    def _convolve(self, x: Tensor, fn: Any) -> Tensor:
        if self._pads is not None:
            x = pad(x, self._pads, self.padding_mode)
            return fn(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return fn(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                  self.groups)

    def extra_repr(self) -> str:
        zero = (0,) * self.dims
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != zero:
            text += f", padding={self.padding}"
        if self.dilation != (1,) * self.dims:
            text += f", dilation={self.dilation}"
        if self.transposed and self.output_padding != zero:
            text += f", output_padding={self.output_padding}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        if self.bias is None:
            text += ", bias=False"
        if self.padding_mode != "zeros":
            text += f", padding_mode={self.padding_mode}"
        return text


class Conv2d(_ConvNd):
    """2-D convolution; ``weight`` is (out_channels, in_channels / groups, kh, kw), as in
    PyTorch, and is initialised like PyTorch (U(-1/sqrt(fan_in), 1/sqrt(fan_in)))."""

    dims = 2

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Pair,
                 stride: int | Pair = 1, padding: int | Pair | str = 0,
                 dilation: int | Pair = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, padding_mode, dtype, generator)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` of shape (N, in_channels, H, W)."""
        self._check_input(x)
        if self._pads is None and type(self.padding) is not str:  # the hot path, as it was
            return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                          self.groups)
        return self._convolve(x, conv2d)


class Conv1d(_ConvNd):
    """1-D convolution of (N, C, L) signals; ``weight`` is (out, in / groups, k)."""

    dims = 1

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int],
                 stride: int | tuple[int] = 1, padding: int | tuple[int] | str = 0,
                 dilation: int | tuple[int] = 1, groups: int = 1, bias: bool = True,
                 padding_mode: str = "zeros", dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, padding_mode, dtype, generator)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` of shape (N, in_channels, L)."""
        self._check_input(x)
        return self._convolve(x, conv1d)


class Conv3d(_ConvNd):
    """3-D convolution of (N, C, D, H, W) volumes; ``weight`` is (out, in / groups, kd, kh,
    kw)."""

    dims = 3

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, dilation: Any = 1, groups: int = 1,
                 bias: bool = True, padding_mode: str = "zeros",
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, padding_mode, dtype, generator)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` of shape (N, in_channels, D, H, W)."""
        self._check_input(x)
        return self._convolve(x, conv3d)


class _ConvTransposeNd(_ConvNd):
    """Transposed convolution: ``weight`` is (in_channels, out_channels / groups, k...), as
    in PyTorch; ``forward(x, output_size)`` picks the output_padding that reaches a size."""

    transposed = True

    def __init__(self, in_channels: int, out_channels: int, kernel_size: Any,
                 stride: Any = 1, padding: Any = 0, output_padding: Any = 0, groups: int = 1,
                 bias: bool = True, dilation: Any = 1, padding_mode: str = "zeros",
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                    bias, padding_mode, dtype, generator, output_padding)

    def forward(self, x: Tensor, output_size: Any = None) -> Tensor:
        """Transpose-convolve ``x`` of shape (N, in_channels, *spatial)."""
        self._check_input(x)
        extra = self.output_padding
        if output_size is not None:
            extra = self._output_padding(np.shape(x.data if isinstance(x, Tensor) else x),
                                         output_size)
        return _conv_transpose(x, self.weight, self.bias, self.stride, self.padding, extra,
                               self.groups, self.dilation, self.dims, type(self).__name__)

    def _output_padding(self, shape: tuple[int, ...], output_size: Any) -> tuple[int, ...]:
        name, dims = type(self).__name__, self.dims
        sizes = tuple(output_size)
        lead = len(shape) - dims  # batch and channels, or channels alone when unbatched
        if len(sizes) == dims + lead:
            sizes = sizes[lead:]
        sizes = ntuple(sizes, dims, "output_size", name, 1)
        extra = []
        for n, size, k, s, p, d in zip(shape[lead:], sizes, self.kernel_size, self.stride,
                                       self.padding, self.dilation):
            smallest = (n - 1) * s - 2 * p + d * (k - 1) + 1
            if not smallest <= size < smallest + s:
                raise ValueError(f"{name}: output_size {sizes} is not reachable; each size "
                                 f"must be in [{smallest}, {smallest + s - 1}] for this input")
            extra.append(size - smallest)
        return tuple(extra)


class ConvTranspose1d(_ConvTransposeNd):
    """Transposed 1-D convolution; ``weight`` is (in, out / groups, k)."""

    dims = 1


class ConvTranspose2d(_ConvTransposeNd):
    """Transposed 2-D convolution; ``weight`` is (in, out / groups, kh, kw)."""

    dims = 2


class ConvTranspose3d(_ConvTransposeNd):
    """Transposed 3-D convolution; ``weight`` is (in, out / groups, kd, kh, kw)."""

    dims = 3


class MaxPool2d(Module):
    """Max over windows; ``stride`` defaults to the kernel size. PyTorch's options:
    ``dilation``, ``ceil_mode`` and ``return_indices`` (then forward gives values and
    indices, for MaxUnpool2d)."""

    def __init__(self, kernel_size: int | Pair, stride: int | Pair | None = None,
                 padding: int | Pair = 0, dilation: int | Pair = 1,
                 return_indices: bool = False, ceil_mode: bool = False) -> None:
        super().__init__()
        name = type(self).__name__
        # Checked here too, so a bad layer fails where it is built, not in the first batch.
        pool_settings(kernel_size, stride, padding, name)
        # As PyTorch keeps it: no stride means the kernel size.
        self.stride = kernel_size if stride is None else stride
        self.kernel_size, self.padding = kernel_size, padding
        pair(dilation, "dilation", name, 1)
        self.dilation = dilation
        self.return_indices = validate.boolean(name, "return_indices", return_indices)
        self.ceil_mode = validate.boolean(name, "ceil_mode", ceil_mode)

    def forward(self, x: Tensor) -> Any:
        """Pool ``x`` of shape (N, C, H, W)."""
        return max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                          self.ceil_mode, self.return_indices)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class AvgPool2d(MaxPool2d):
    """Mean over windows; ``stride`` defaults to the kernel size. PyTorch's options:
    ``ceil_mode``, ``count_include_pad`` (padding counts as zeros by default) and
    ``divisor_override``."""

    def __init__(self, kernel_size: int | Pair, stride: int | Pair | None = None,
                 padding: int | Pair = 0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override: int | None = None) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode=ceil_mode)
        name = type(self).__name__
        del self.dilation, self.return_indices
        self.count_include_pad = validate.boolean(name, "count_include_pad", count_include_pad)
        self.divisor_override = validate.integer(name, "divisor_override", divisor_override,
                                                 low=1, optional=True)

    def forward(self, x: Tensor) -> Tensor:
        """Pool ``x`` of shape (N, C, H, W)."""
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                          self.count_include_pad, self.divisor_override)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class Flatten(Module):
    """Merge axes ``start_axis``..``end_axis`` (all but the batch axis by default)."""

    def __init__(self, start_axis: int = 1, end_axis: int = -1) -> None:
        super().__init__()
        name = type(self).__name__
        start_axis = validate.integer(name, "start_axis", start_axis)
        end_axis = validate.integer(name, "end_axis", end_axis)
        # Counted from the same end, the order is known before any input is seen.
        if (start_axis < 0) == (end_axis < 0) and start_axis > end_axis:
            raise ValueError(f"{name}: start_axis {start_axis} comes after end_axis {end_axis}")
        self.start_axis, self.end_axis = start_axis, end_axis

    def forward(self, x: Tensor) -> Tensor:
        """Flatten ``x``."""
        return flatten(x, self.start_axis, self.end_axis)


class GlobalAvgPool2d(Module):
    """Mean over all pixels of each channel: (N, C, H, W) -> (N, C).

    PyTorch spells it ``nn.AdaptiveAvgPool2d(1)`` followed by ``nn.Flatten()``.
    """

    def forward(self, x: Tensor) -> Tensor:
        """Average ``x`` of shape (N, C, H, W) over H and W."""
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if len(shape) != 4:
            raise ValueError(f"GlobalAvgPool2d: expected input (N, C, H, W), got shape "
                             f"{tuple(shape)}")
        return x.mean(axis=(2, 3))
