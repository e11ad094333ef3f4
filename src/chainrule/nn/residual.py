"""The residual block of ResNet (He et al., 2015): two 3x3 convs and a shortcut."""

from __future__ import annotations

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn.activation import ReLU
from chainrule.nn.container import Sequential
from chainrule.nn.conv import Conv2d
from chainrule.nn.module import Module
from chainrule.nn.norm import BatchNorm2d


class ResidualBlock(Module):
    """out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    The shortcut is the identity when shapes allow; with a stride or a change of width it is
    a 1x1 conv (same stride) and a BatchNorm, so the sum lines up. Convs carry no bias: the
    BatchNorm after each one has its own.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        # Checked here, so an error names the block rather than a conv inside it.
        name = type(self).__name__
        in_channels = validate.integer(name, "in_channels", in_channels, low=1)
        out_channels = validate.integer(name, "out_channels", out_channels, low=1)
        stride = validate.integer(name, "stride", stride, low=1)
        dtype = validate.float_dtype(name, "dtype", dtype)
        generator = validate.generator(name, "generator", generator)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        conv = {"bias": False, "dtype": dtype, "generator": generator}
        self.conv1 = Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, **conv)
        self.bn1 = BatchNorm2d(out_channels, dtype=dtype)
        self.relu = ReLU()
        self.conv2 = Conv2d(out_channels, out_channels, 3, padding=1, **conv)
        self.bn2 = BatchNorm2d(out_channels, dtype=dtype)
        self.shortcut = None
        if stride != 1 or in_channels != out_channels:
            self.shortcut = Sequential(Conv2d(in_channels, out_channels, 1, stride=stride, **conv),
                                       BatchNorm2d(out_channels, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        """Run the block on (N, in_channels, H, W) images."""
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        skip = x if self.shortcut is None else self.shortcut(x)
        return self.relu(out + skip)

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"
