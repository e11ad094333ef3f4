"""Resizing (PyTorch's F.interpolate): nearest, nearest-exact, (bi/tri)linear, bicubic, area.

Every mode is separable: along each spatial dim an output element is a weighted sum of a few
input elements (1 for nearest, 2 for linear, 4 for cubic), so the op is pool.SeparableOp with
per-dim tap tables, and backward adds each tap's weighted gradient back where it read. Source
positions follow PyTorch's CPU kernels exactly, float32 index arithmetic of the nearest modes
included, so the same pixels are picked. antialias=True (bilinear, bicubic) stretches the
filter over every input a downscaled output covers, as PyTorch's _aa kernels do. uint8 images
resize with the nearest modes; PyTorch's fixed-point uint8 (bi)linear/bicubic is refused.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.engine.tensor import Tensor
from chainrule.ops.pool import AdaptiveAvgPoolOp, SeparableOp
from chainrule.validate import boolean, choice, integer, is_int, real

MODES = ("nearest", "nearest-exact", "linear", "bilinear", "bicubic", "trilinear", "area")
_LINEAR_DIMS = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
_CUBIC_A = -0.75  # PyTorch's (and OpenCV's) cubic convolution constant


def _step(n: int, out: int, scale: float | None, align_corners: bool, dtype: np.dtype
          ) -> np.floating:
    """PyTorch's input step per output element, in the input's dtype."""
    t = dtype.type
    if align_corners:
        return t((n - 1) / (out - 1)) if out > 1 else t(0)
    return t(1.0 / scale) if scale is not None and scale > 0 else t(n) / t(out)


def _centres(step: np.floating, out: int, dtype: np.dtype) -> np.ndarray:
    """step * (dst + 0.5) - 0.5 rounded once to the dtype: PyTorch's compiled kernel fuses it
    into one multiply-add, which float64 arithmetic reproduces exactly for float32."""
    return (np.float64(step) * (np.arange(out) + 0.5) - 0.5).astype(dtype)


def _nearest_taps(n: int, out: int, scale: float | None, exact: bool, dtype: np.dtype
                  ) -> np.ndarray:
    """PyTorch's nearest source index: the position in the input's dtype, then floorf (a
    float32 floor), as its CPU kernel computes it."""
    step = _step(n, out, scale, False, dtype)
    if exact:
        source = np.maximum(_centres(step, out, dtype), 0) + dtype.type(0.5)
    else:
        source = step * np.arange(out).astype(dtype)
    index = np.floor(source.astype(np.float32)).astype(np.intp)
    return np.minimum(index, n - 1)[:, None]


def _source(n: int, out: int, scale: float | None, align_corners: bool, cubic: bool,
            dtype: np.dtype) -> np.ndarray:
    """PyTorch's real-valued source position of each output element."""
    step = _step(n, out, scale, align_corners, dtype)
    if align_corners:
        return step * np.arange(out).astype(dtype)
    source = _centres(step, out, dtype)
    return source if cubic else np.maximum(source, dtype.type(0))


def _floor_index(source: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's guard_index_and_lambda: floorf's index (at most n - 1) and the fraction."""
    index = np.minimum(np.floor(source.astype(np.float32)).astype(np.intp), n - 1)
    frac = np.clip(source - index.astype(source.dtype), 0, 1).astype(source.dtype)
    return index, frac


def _linear_taps(n: int, out: int, scale: float | None, align_corners: bool,
                 dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    if n == out:  # PyTorch copies when the size does not change
        return np.arange(out)[:, None], np.ones((out, 1), dtype)
    index, frac = _floor_index(_source(n, out, scale, align_corners, False, dtype), n)
    upper = index + (index < n - 1)
    return np.stack([index, upper], 1), np.stack([1 - frac, frac], 1).astype(dtype)


def _cubic_taps(n: int, out: int, scale: float | None, align_corners: bool, dtype: np.dtype
                ) -> tuple[np.ndarray, np.ndarray]:
    index, t = _floor_index(_source(n, out, scale, align_corners, True, dtype), n)
    a = dtype.type(_CUBIC_A)

    def near(x: np.ndarray) -> np.ndarray:  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x: np.ndarray) -> np.ndarray:  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    one = dtype.type(1)
    weights = np.stack([far(t + one), near(t), near(one - t), far(one - t + one)], 1)
    taps = np.clip(index[:, None] + np.arange(-1, 3)[None, :], 0, n - 1)
    return taps, weights.astype(dtype)


def _antialias_taps(n: int, out: int, scale: float | None, align_corners: bool, cubic: bool,
                    dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch's antialiased taps: the (bi)linear or cubic (a = -0.5, Keys') filter stretched
    by the downscale factor over every input it covers, the weights normalised to sum 1."""
    step = float(_step(n, out, scale, align_corners, dtype))
    support = (2.0 if cubic else 1.0) * max(step, 1.0)
    width = math.ceil(support) * 2 + 1
    centre = (step * (np.arange(out) + 0.5)).astype(dtype).astype(np.float64)
    # C casts to int64 truncating toward zero, which astype does too.
    low = np.maximum((centre - support + 0.5).astype(np.int64), 0)
    count = np.clip(np.minimum((centre + support + 0.5).astype(np.int64), n) - low, 0, width)
    taps = np.arange(width)[None, :]
    x = np.abs((taps + low[:, None] - centre[:, None] + 0.5) / max(step, 1.0))
    if cubic:
        a = -0.5
        weight = np.where(x < 1, ((a + 2) * x - (a + 3)) * x * x + 1,
                          np.where(x < 2, (((x - 5) * x + 8) * x - 4) * a, 0.0))
    else:
        weight = np.maximum(1 - x, 0.0)
    inside = taps < count[:, None]
    weight = np.where(inside, weight, 0.0)
    total = weight.sum(axis=1, keepdims=True)
    weight = np.where(total != 0, weight / np.where(total != 0, total, 1), 0.0)
    return np.where(inside, low[:, None] + taps, n), weight.astype(dtype)


class InterpolateOp(SeparableOp):
    """F.interpolate's nearest, nearest-exact, linear, bilinear, bicubic and trilinear modes
    as per-dim weighted taps;  d/dx: each tap's weighted gradient added back where it read"""

    name = "interpolate"
    integers = ("uint8",)  # PyTorch resizes uint8 images too

    @staticmethod
    def taps(spatial: tuple[int, ...], dtype: np.dtype, size: Sequence[int] = (1,),
             scales: Sequence[float | None] | None = None, mode: str = "nearest",
             align_corners: bool = False, antialias: bool = False) -> tuple:
        op = "interpolate"
        mode = choice(op, "mode", mode, MODES[:-1])
        if dtype.kind != "f" and mode not in ("nearest", "nearest-exact"):
            # PyTorch's uint8 kernel rounds fixed-point weights its own way; a float answer
            # rounded here would differ from it by one in places.
            raise TypeError(f"{op}: mode {mode!r} needs a floating input (uint8 images resize "
                            f"with mode='nearest' or 'nearest-exact'), got {dtype}; convert "
                            f"with .astype(np.float32)")
        if dtype.kind != "f":  # uint8: PyTorch finds the source pixels in float32
            dtype = np.dtype(np.float32)
        if len(size) != len(spatial):
            raise ValueError(f"{op}: size {tuple(size)} must give one size per spatial dim "
                             f"{spatial}")
        scales = [None] * len(spatial) if scales is None else list(scales)
        taps = []
        for n, out, scale in zip(spatial, size, scales):
            if n < 1 or out < 1:
                raise ValueError(f"{op}: input and output sizes must be positive, got input "
                                 f"{spatial} and output {tuple(size)}")
            if antialias:
                taps.append(_antialias_taps(n, out, scale, align_corners, mode == "bicubic",
                                            dtype))
            elif mode in ("nearest", "nearest-exact"):
                taps.append((_nearest_taps(n, out, scale, mode == "nearest-exact", dtype), None))
            elif mode == "bicubic":
                taps.append(_cubic_taps(n, out, scale, align_corners, dtype))
            else:
                taps.append(_linear_taps(n, out, scale, align_corners, dtype))
        return taps, None


def _per_dim(op: str, name: str, value: Any, dims: int, number: Any) -> list:
    if isinstance(value, (tuple, list)):
        if len(value) != dims:
            raise ValueError(f"{op}: {name} {tuple(value)!r} must have one entry per spatial "
                             f"dim ({dims})")
        return [number(v) for v in value]
    return [number(value)] * dims


def interpolate(input: Any, size: int | Sequence[int] | None = None,
                scale_factor: float | Sequence[float] | None = None, mode: str = "nearest",
                align_corners: bool | None = None, recompute_scale_factor: bool | None = None,
                antialias: bool = False) -> Tensor:
    """Resize (N, C, *spatial) to ``size`` or by ``scale_factor``, as F.interpolate."""
    op = "interpolate"
    mode = choice(op, "mode", mode, MODES)
    shape = np.shape(input._data if isinstance(input, Tensor) else input)
    dims = len(shape) - 2
    if not 1 <= dims <= 3:
        raise ValueError(f"{op}: expects a batched input (N, C, 1 to 3 spatial dims), got "
                         f"shape {shape}")
    wanted = _LINEAR_DIMS.get(mode)
    if wanted is not None and wanted != dims:
        raise ValueError(f"{op}: mode {mode!r} needs a {wanted + 2}-D input, got {dims + 2}-D "
                         f"(shape {shape})")
    if align_corners is not None:
        align_corners = boolean(op, "align_corners", align_corners)
        if wanted is None:
            raise ValueError(f"{op}: align_corners is for the interpolating modes "
                             f"(linear, bilinear, bicubic, trilinear), not {mode!r}")
    antialias = boolean(op, "antialias", antialias)
    if antialias and (mode not in ("bilinear", "bicubic") or dims != 2):
        raise ValueError(f"{op}: antialias=True is for mode='bilinear' or 'bicubic' on 4-D "
                         f"input (as in PyTorch), got mode {mode!r} and shape {shape}")
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor")
    spatial = shape[2:]
    scales: list[float | None] | None = None
    if size is not None:
        sizes = _per_dim(op, "size", size, dims, lambda v: _size(op, v))
    else:
        factors = _per_dim(op, "scale_factor", scale_factor, dims,
                           lambda v: real(op, "scale_factor", v, 0, low_open=True))
        sizes = [math.floor(float(n) * f) for n, f in zip(spatial, factors)]
        if recompute_scale_factor is not None:
            recompute_scale_factor = boolean(op, "recompute_scale_factor",
                                             recompute_scale_factor)
        scales = None if recompute_scale_factor else factors
    if mode == "area":
        return AdaptiveAvgPoolOp.apply(input, dims=dims, output_size=tuple(sizes))
    return InterpolateOp.apply(input, dims=dims, size=tuple(sizes),
                               scales=None if scales is None else tuple(scales), mode=mode,
                               align_corners=bool(align_corners), antialias=antialias)


def upsample(input: Any, size: int | Sequence[int] | None = None,
             scale_factor: float | Sequence[float] | None = None, mode: str = "nearest",
             align_corners: bool | None = None) -> Tensor:
    """F.upsample: PyTorch's deprecated spelling of interpolate."""
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input: Any, size: int | Sequence[int] | None = None,
                     scale_factor: float | Sequence[float] | None = None) -> Tensor:
    """F.upsample_nearest: interpolate with mode='nearest'."""
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input: Any, size: int | Sequence[int] | None = None,
                      scale_factor: float | Sequence[float] | None = None) -> Tensor:
    """F.upsample_bilinear: bilinear interpolation with align_corners=True, as PyTorch's."""
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


def _size(op: str, value: Any) -> int:
    if not is_int(value):
        raise TypeError(f"{op}: size must be an int or a tuple of ints, got {value!r}")
    if value < 1:
        raise ValueError(f"{op}: size must be >= 1, got {value}")
    return int(value)


def _factor(op: str, name: str, value: Any) -> int:
    return integer(op, name, value, low=1)


def pixel_shuffle(input: Any, upscale_factor: int) -> Tensor:
    """(*, C r^2, H, W) -> (*, C, H r, W r), as F.pixel_shuffle: a reshape and a permute."""
    op = "pixel_shuffle"
    r = _factor(op, "upscale_factor", upscale_factor)
    x = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
    if x.ndim < 3 or x.shape[-3] % (r * r):
        raise ValueError(f"{op}: expects (*, C * {r * r}, H, W) with channels divisible by "
                         f"upscale_factor^2 = {r * r}, got shape {x.shape}")
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    k = len(lead)
    parts = x.reshape(*lead, c // (r * r), r, r, h, w)
    order = (*range(k), k, k + 3, k + 1, k + 4, k + 2)
    return parts.permute(*order).reshape(*lead, c // (r * r), h * r, w * r)


def pixel_unshuffle(input: Any, downscale_factor: int) -> Tensor:
    """(*, C, H r, W r) -> (*, C r^2, H, W), as F.pixel_unshuffle: pixel_shuffle's inverse."""
    op = "pixel_unshuffle"
    r = _factor(op, "downscale_factor", downscale_factor)
    x = input if isinstance(input, Tensor) else Tensor(np.asarray(input))
    if x.ndim < 3 or x.shape[-2] % r or x.shape[-1] % r:
        raise ValueError(f"{op}: expects (*, C, H, W) with H and W divisible by "
                         f"downscale_factor {r}, got shape {x.shape}")
    lead, (c, h, w) = x.shape[:-3], x.shape[-3:]
    k = len(lead)
    parts = x.reshape(*lead, c, h // r, r, w // r, r)
    order = (*range(k), k, k + 2, k + 4, k + 1, k + 3)
    return parts.permute(*order).reshape(*lead, c * r * r, h // r, w // r)
