"""Pooling over 1 and 3 dims, adaptive pooling, unpooling, resizing and padding layers.

MaxPool2d and AvgPool2d live in nn/conv.py (the training hot path); every layer here hands
its work to one op in chainrule.ops.pool, .resize or .pad.
"""

from __future__ import annotations

from typing import Any, ClassVar

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn.module import Module
from chainrule.ops import pool as _pool
from chainrule.ops.conv import ntuple
from chainrule.ops.pad import pad
from chainrule.ops.resize import MODES, interpolate, pixel_shuffle, pixel_unshuffle


class _MaxPoolNd(Module):
    dims: ClassVar[int] = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 dilation: Any = 1, return_indices: bool = False,
                 ceil_mode: bool = False) -> None:
        super().__init__()
        name = type(self).__name__
        # Checked here, kept as given (PyTorch's repr shows them so).
        _pool._settings(name, self.dims, kernel_size, stride, padding, dilation)
        self.kernel_size, self.padding, self.dilation = kernel_size, padding, dilation
        self.stride = kernel_size if stride is None else stride
        self.return_indices = validate.boolean(name, "return_indices", return_indices)
        self.ceil_mode = validate.boolean(name, "ceil_mode", ceil_mode)

    def forward(self, x: Tensor) -> Any:
        """Pool ``x`` (batched or not)."""
        return _pool.max_pool(x, self.dims, self.kernel_size, self.stride, self.padding,
                              self.dilation, self.ceil_mode, self.return_indices,
                              type(self).__name__)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool1d(_MaxPoolNd):
    """Max over windows of (N, C, L) signals; PyTorch's options."""

    dims = 1


class MaxPool3d(_MaxPoolNd):
    """Max over windows of (N, C, D, H, W) volumes; PyTorch's options."""

    dims = 3


class _AvgPoolNd(Module):
    dims: ClassVar[int] = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True,
                 divisor_override: int | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        _pool._settings(name, self.dims, kernel_size, stride, padding, 1)
        self.kernel_size, self.padding = kernel_size, padding
        self.stride = kernel_size if stride is None else stride
        self.ceil_mode = validate.boolean(name, "ceil_mode", ceil_mode)
        self.count_include_pad = validate.boolean(name, "count_include_pad", count_include_pad)
        self.divisor_override = validate.integer(name, "divisor_override", divisor_override,
                                                 low=1, optional=True)

    def forward(self, x: Tensor) -> Tensor:
        """Pool ``x`` (batched or not)."""
        return _pool.avg_pool(x, self.dims, self.kernel_size, self.stride, self.padding,
                              self.ceil_mode, self.count_include_pad, self.divisor_override,
                              type(self).__name__)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of (N, C, L) signals; PyTorch's options (no divisor_override, as
    in PyTorch)."""

    dims = 1

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0,
                 ceil_mode: bool = False, count_include_pad: bool = True) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        name = type(self).__name__  # PyTorch keeps these three as 1-tuples here (only)
        self.kernel_size = ntuple(self.kernel_size, 1, "kernel_size", name, 1)
        self.stride = ntuple(self.stride, 1, "stride", name, 1)
        self.padding = ntuple(self.padding, 1, "padding", name, 0)


class AvgPool3d(_AvgPoolNd):
    """Mean over windows of (N, C, D, H, W) volumes; PyTorch's options."""

    dims = 3


class _AdaptivePool(Module):
    dims: ClassVar[int] = 1

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(output_size, (tuple, list)) and len(output_size) == self.dims:
            for size in output_size:
                if size is not None:
                    validate.integer(name, "output_size", size, low=0)
            self.output_size = tuple(output_size)
        else:
            ntuple(output_size, self.dims, "output_size", name, 0)
            self.output_size = output_size  # kept as given, as PyTorch's repr shows it

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class _AdaptiveAvg(_AdaptivePool):
    def forward(self, x: Tensor) -> Tensor:
        """Pool ``x`` (batched or not) to ``output_size``."""
        return _pool.AdaptiveAvgPoolOp.apply(x, dims=self.dims, output_size=self.output_size)


class AdaptiveAvgPool1d(_AdaptiveAvg):
    """Mean over PyTorch's adaptive bins: (N, C, L) -> (N, C, output_size)."""

    dims = 1


class AdaptiveAvgPool2d(_AdaptiveAvg):
    """Mean over PyTorch's adaptive bins: (N, C, H, W) -> (N, C, *output_size)."""

    dims = 2


class AdaptiveAvgPool3d(_AdaptiveAvg):
    """Mean over PyTorch's adaptive bins of (N, C, D, H, W) volumes."""

    dims = 3


class _AdaptiveMax(_AdaptivePool):
    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = validate.boolean(type(self).__name__, "return_indices",
                                               return_indices)

    def forward(self, x: Tensor) -> Any:
        """Pool ``x`` (batched or not) to ``output_size``."""
        return _pool._adaptive_max(x, self.dims, self.output_size, self.return_indices,
                                   type(self).__name__)


class AdaptiveMaxPool1d(_AdaptiveMax):
    """Max over PyTorch's adaptive bins: (N, C, L) -> (N, C, output_size)."""

    dims = 1


class AdaptiveMaxPool2d(_AdaptiveMax):
    """Max over PyTorch's adaptive bins: (N, C, H, W) -> (N, C, *output_size)."""

    dims = 2


class AdaptiveMaxPool3d(_AdaptiveMax):
    """Max over PyTorch's adaptive bins of (N, C, D, H, W) volumes."""

    dims = 3


class _MaxUnpool(Module):
    dims: ClassVar[int] = 2

    def __init__(self, kernel_size: Any, stride: Any = None, padding: Any = 0) -> None:
        super().__init__()
        name = type(self).__name__
        self.kernel_size, self.stride, self.padding, _ = _pool._settings(
            name, self.dims, kernel_size, stride, padding, 1)

    def forward(self, x: Tensor, indices: Any, output_size: Any = None) -> Tensor:
        """Put each value of ``x`` back at its index from max pooling's return_indices."""
        name = type(self).__name__
        data = x.data if isinstance(x, Tensor) else x
        size = _pool.unpool_size(name, data.shape, self.dims, self.kernel_size, self.stride,
                                 self.padding, output_size)
        return _pool.MaxUnpoolOp.apply(x, _pool._array(indices), output_size=size)

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool1d(_MaxUnpool):
    """MaxPool1d's partial inverse: values at their indices, zeros elsewhere."""

    dims = 1


class MaxUnpool2d(_MaxUnpool):
    """MaxPool2d's partial inverse: values at their indices, zeros elsewhere."""

    dims = 2


class MaxUnpool3d(_MaxUnpool):
    """MaxPool3d's partial inverse: values at their indices, zeros elsewhere."""

    dims = 3


class Upsample(Module):
    """Resize by ``size`` or ``scale_factor`` (F.interpolate's modes)."""

    def __init__(self, size: Any = None, scale_factor: Any = None, mode: str = "nearest",
                 align_corners: bool | None = None,
                 recompute_scale_factor: bool | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        if (size is None) == (scale_factor is None):
            raise ValueError(f"{name}: give exactly one of size and scale_factor")
        self.size, self.scale_factor = size, scale_factor
        self.mode = validate.choice(name, "mode", mode, MODES)
        self.align_corners = align_corners
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x: Tensor) -> Tensor:
        """Resize ``x`` (N, C, *spatial)."""
        return interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                           self.recompute_scale_factor)

    def extra_repr(self) -> str:
        shown = (f"size={self.size}" if self.size is not None
                 else f"scale_factor={float(self.scale_factor)!r}"
                 if not isinstance(self.scale_factor, (tuple, list))
                 else f"scale_factor={tuple(float(f) for f in self.scale_factor)}")
        return f"{shown}, mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    """Nearest-neighbour upsampling of (N, C, H, W) images, PyTorch's older layer."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear upsampling with align_corners=True, as PyTorch's older layer does it."""

    def __init__(self, size: Any = None, scale_factor: Any = None) -> None:
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


class _Pad(Module):
    dims: ClassVar[int] = 2
    mode: ClassVar[str] = "constant"

    def __init__(self, padding: Any, value: float | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        if isinstance(padding, (tuple, list)) and len(padding) == 2 * self.dims:
            self.padding = tuple(validate.integer(name, "padding", p) for p in padding)
        else:
            self.padding = ntuple(padding, 2 * self.dims, "padding", name, -(2 ** 62))
        self.value = value

    def forward(self, x: Tensor) -> Tensor:
        """Pad the last dims of ``x``."""
        return pad(x, self.padding, self.mode, self.value)

    def extra_repr(self) -> str:
        return f"{self.padding}" + ("" if self.value is None else f", value={self.value}")


class ZeroPad1d(_Pad):
    """Zeros around the last dim: padding (left, right) or one int."""

    dims = 1

    def __init__(self, padding: Any) -> None:
        super().__init__(padding, 0.0)

    def extra_repr(self) -> str:
        return f"{self.padding}"


class ZeroPad2d(ZeroPad1d):
    """Zeros around the last two dims: padding (left, right, top, bottom) or one int."""

    dims = 2


class ZeroPad3d(ZeroPad1d):
    """Zeros around the last three dims: six pads or one int."""

    dims = 3


class ConstantPad1d(_Pad):
    """``value`` around the last dim: padding (left, right) or one int."""

    dims = 1

    def extra_repr(self) -> str:
        return f"padding={self.padding}, value={self.value}"

    def __init__(self, padding: Any, value: float) -> None:
        super().__init__(padding, validate.real(type(self).__name__, "value", value,
                                                finite=False))


class ConstantPad2d(ConstantPad1d):
    """``value`` around the last two dims: padding (left, right, top, bottom) or one int."""

    dims = 2


class ConstantPad3d(ConstantPad1d):
    """``value`` around the last three dims: six pads or one int."""

    dims = 3


class ReflectionPad1d(_Pad):
    """The last dim reflected about its edges (edge not repeated)."""

    dims, mode = 1, "reflect"

    def __init__(self, padding: Any) -> None:
        super().__init__(padding)


class ReflectionPad2d(ReflectionPad1d):
    """The last two dims reflected about their edges (edges not repeated)."""

    dims = 2


class ReflectionPad3d(ReflectionPad1d):
    """The last three dims reflected about their edges."""

    dims = 3


class ReplicationPad1d(ReflectionPad1d):
    """The last dim's edge values repeated."""

    dims, mode = 1, "replicate"


class ReplicationPad2d(ReflectionPad1d):
    """The last two dims' edge values repeated."""

    dims, mode = 2, "replicate"


class ReplicationPad3d(ReflectionPad1d):
    """The last three dims' edge values repeated."""

    dims, mode = 3, "replicate"


class CircularPad1d(ReflectionPad1d):
    """The last dim wrapped around."""

    dims, mode = 1, "circular"


class CircularPad2d(ReflectionPad1d):
    """The last two dims wrapped around."""

    dims, mode = 2, "circular"


class CircularPad3d(ReflectionPad1d):
    """The last three dims wrapped around."""

    dims, mode = 3, "circular"


class PixelShuffle(Module):
    """(*, C r^2, H, W) -> (*, C, H r, W r)."""

    def __init__(self, upscale_factor: int) -> None:
        super().__init__()
        self.upscale_factor = validate.integer(type(self).__name__, "upscale_factor",
                                               upscale_factor, low=1)

    def forward(self, x: Tensor) -> Tensor:
        """Move channel blocks into pixels."""
        return pixel_shuffle(x, self.upscale_factor)

    def extra_repr(self) -> str:
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """(*, C, H r, W r) -> (*, C r^2, H, W)."""

    def __init__(self, downscale_factor: int) -> None:
        super().__init__()
        self.downscale_factor = validate.integer(type(self).__name__, "downscale_factor",
                                                 downscale_factor, low=1)

    def forward(self, x: Tensor) -> Tensor:
        """Move pixel blocks into channels."""
        return pixel_unshuffle(x, self.downscale_factor)

    def extra_repr(self) -> str:
        return f"downscale_factor={self.downscale_factor}"
