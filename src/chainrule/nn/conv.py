"""Convolution and pooling layers on (N, C, H, W) images; the ops live in chainrule.ops.conv."""

from __future__ import annotations

import math

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.ops.conv import Pair, avg_pool2d, conv2d, max_pool2d, pair, pool_settings
from chainrule.ops.shape import flatten


class Conv2d(Module):
    """2-D convolution; ``weight`` is (out_channels, in_channels / groups, kh, kw), as in
    PyTorch, and is initialised like PyTorch (U(-1/sqrt(fan_in), 1/sqrt(fan_in)))."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | Pair,
                 stride: int | Pair = 1, padding: int | Pair = 0, dilation: int | Pair = 1,
                 groups: int = 1, bias: bool = True, dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        in_channels = validate.integer(name, "in_channels", in_channels, low=1)
        out_channels = validate.integer(name, "out_channels", out_channels, low=1)
        groups = validate.integer(name, "groups", groups, low=1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = pair(kernel_size, "kernel_size", name, 1)
        self.stride = pair(stride, "stride", name, 1)
        self.padding = pair(padding, "padding", name, 0)
        self.dilation = pair(dilation, "dilation", name, 1)
        bias = validate.boolean(name, "bias", bias)
        dtype = validate.float_dtype(name, "dtype", dtype)
        generator = validate.generator(name, "generator", generator)
        shape = (out_channels, in_channels // groups) + self.kernel_size
        bound = 1 / math.sqrt(math.prod(shape[1:]))
        self.weight = Parameter(init.empty(shape, dtype))
        init.uniform_(self.weight, -bound, bound, generator=generator)
        self.bias = None
        if bias:
            self.bias = Parameter(init.empty(out_channels, dtype))
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        """Convolve ``x`` of shape (N, in_channels, H, W)."""
        shape = np.shape(x.data if isinstance(x, Tensor) else x)
        if len(shape) != 4 or shape[1] != self.in_channels:
            raise ValueError(f"Conv2d({self.in_channels}, {self.out_channels}): expected input "
                             f"(N, {self.in_channels}, H, W), got shape {tuple(shape)}")
        return conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                      self.groups)

    def extra_repr(self) -> str:
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")
        if self.padding != (0, 0):
            text += f", padding={self.padding}"
        if self.dilation != (1, 1):
            text += f", dilation={self.dilation}"
        if self.groups != 1:
            text += f", groups={self.groups}"
        return text + ("" if self.bias is not None else ", bias=False")


class MaxPool2d(Module):
    """Max over windows; ``stride`` defaults to the kernel size."""

    def __init__(self, kernel_size: int | Pair, stride: int | Pair | None = None,
                 padding: int | Pair = 0) -> None:
        super().__init__()
        # Checked here too, so a bad layer fails where it is built, not in the first batch.
        pool_settings(kernel_size, stride, padding, type(self).__name__)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x: Tensor) -> Tensor:
        """Pool ``x`` of shape (N, C, H, W)."""
        return max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(MaxPool2d):
    """Mean over windows (padding counts as zeros); ``stride`` defaults to the kernel size."""

    def forward(self, x: Tensor) -> Tensor:
        """Pool ``x`` of shape (N, C, H, W)."""
        return avg_pool2d(x, self.kernel_size, self.stride, self.padding)


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
