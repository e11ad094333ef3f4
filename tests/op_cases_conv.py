"""Matrix cases for issue 13's convolution, pooling, padding, resizing (area D); see op_cases.py.

Every op here is linear in its input except max pooling (values are distinct there, so no
window has a tie within a finite-difference step) and the convolutions (bilinear in input and
weight), so finite differences are exact up to rounding.
"""

from __future__ import annotations

import math
from typing import Any

import hypothesis.strategies as st
import numpy as np
import torch
import torch.nn.functional as F
from op_cases import Case, Draw, distinct, normal


def _batch(draw: Draw, dims: int, sizes: list[int]) -> tuple[int, ...]:
    """A batched (N, C, *sizes) or unbatched (C, *sizes) shape."""
    lead = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    return (lead if draw(st.booleans()) else lead[1:]) + tuple(sizes)


# ----------------------------------------------------------------------------- pad
def build_pad(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    mode = draw(st.sampled_from(["constant", "reflect", "replicate", "circular"]))
    if mode == "constant":
        shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=4)))
        k = draw(st.integers(1, len(shape)))
    else:
        k = draw(st.integers(1, 3))
        shape = tuple(draw(st.integers(1, 2)) for _ in range(draw(st.integers(1, 2)))) + tuple(
            draw(st.integers(2, 4)) for _ in range(k))
    pad: list[int] = []
    for n in reversed(shape[len(shape) - k:]):
        before, after = draw(st.integers(-1, 3)), draw(st.integers(-1, 3))
        kept = n - max(-before, 0) - max(-after, 0)  # negative pads crop first
        if kept < 1:
            before, after = max(before, 0), max(after, 0)
            kept = n
        limit = {"reflect": kept - 1, "circular": kept}.get(mode, 3)
        pad += [min(before, limit), min(after, limit)]
    value = draw(st.sampled_from([0.0, 1.5])) if mode == "constant" else 0.0
    return [normal(rng, shape)], {"pad": tuple(pad), "mode": mode, "value": value}


def torch_pad(x: torch.Tensor, pad: tuple, mode: str, value: float) -> torch.Tensor:
    return F.pad(x, pad, mode=mode, value=value if mode == "constant" else None)


# ----------------------------------------------------------------------------- convolutions
def build_conv_nd(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    dims = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2]))
    channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3 if dims < 3 else 2)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, 1)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    sizes = [draw(st.integers(max(d * (k - 1) + 1 - 2 * p, 1), 5)) for k, d, p in
             zip(kernel, dilation, padding)]
    bias = normal(rng, (out_channels,)) if draw(st.booleans()) else None
    shape = (draw(st.integers(1, 2)), channels, *sizes)
    return [normal(rng, shape), normal(rng, (out_channels, channels // groups, *kernel)),
            bias], {"stride": stride, "padding": padding, "dilation": dilation,
                    "groups": groups}


def torch_conv_nd(x: torch.Tensor, w: torch.Tensor, b: Any, **attrs: Any) -> torch.Tensor:
    return getattr(F, f"conv{w.ndim - 2}d")(x, w, b, **attrs)


def build_conv_transpose_nd(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    dims = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 1, 2]))
    channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3 if dims < 3 else 2)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    sizes = [draw(st.integers(1, 4)) for _ in range(dims)]
    extra = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    padding = []
    for n, k, s, d, e in zip(sizes, kernel, stride, dilation, extra):
        full = (n - 1) * s + d * (k - 1) + 1 + e
        padding.append(draw(st.integers(0, min(1, (full - 1) // 2))))
    bias = normal(rng, (out_channels,)) if draw(st.booleans()) else None
    shape = (draw(st.integers(1, 2)), channels, *sizes)
    return [normal(rng, shape), normal(rng, (channels, out_channels // groups, *kernel)),
            bias], {"stride": stride, "padding": tuple(padding), "output_padding": extra,
                    "groups": groups, "dilation": dilation}


def torch_conv_transpose_nd(x: torch.Tensor, w: torch.Tensor, b: Any, **attrs: Any
                            ) -> torch.Tensor:
    return getattr(F, f"conv_transpose{w.ndim - 2}d")(x, w, b, **attrs)


# ----------------------------------------------------------------------------- pooling
def build_max_pool(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(dims))
    # Dilated taps can all fall in the padding (a -inf window, tested in test_ops_conv.py).
    padding = tuple(draw(st.integers(0, k // 2)) if d == 1 else 0
                    for k, d in zip(kernel, dilation))
    stride = draw(st.sampled_from([None, 1, 2, 3]))
    low = [max(d * (k - 1) + 1 - 2 * p, 1) for k, d, p in zip(kernel, dilation, padding)]
    sizes = [draw(st.integers(n, n + (3 if dims < 3 else 1))) for n in low]
    return [distinct(rng, _batch(draw, dims, sizes))], {
        "dims": dims, "kernel_size": kernel, "stride": stride, "padding": padding,
        "dilation": dilation, "ceil_mode": draw(st.booleans())}


def torch_max_pool(x: torch.Tensor, dims: int, **attrs: Any) -> torch.Tensor:
    return getattr(F, f"max_pool{dims}d")(x, **attrs)


def build_avg_pool(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    dims = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(dims))
    padding = tuple(draw(st.integers(0, k // 2)) for k in kernel)
    stride = draw(st.sampled_from([None, 1, 2, 3]))
    # PyTorch's avg_pool3d (only) refuses an input smaller than the kernel, padding or not.
    sizes = [draw(st.integers(max(k - 2 * p, 1) if dims < 3 else k, 6 if dims < 3 else 4))
             for k, p in zip(kernel, padding)]
    divisor = None if dims == 1 else draw(st.sampled_from([None, None, 3]))
    return [normal(rng, _batch(draw, dims, sizes))], {
        "dims": dims, "kernel_size": kernel, "stride": stride, "padding": padding,
        "ceil_mode": draw(st.booleans()), "count_include_pad": draw(st.booleans()),
        "divisor_override": divisor}


def torch_avg_pool(x: torch.Tensor, dims: int, divisor_override: Any, **attrs: Any
                   ) -> torch.Tensor:
    if dims > 1:
        attrs["divisor_override"] = divisor_override
    return getattr(F, f"avg_pool{dims}d")(x, **attrs)


def build_adaptive(make: Any) -> Any:
    def build(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
        dims = draw(st.integers(1, 3))
        sizes = [draw(st.integers(1, 7 if dims < 3 else 4)) for _ in range(dims)]
        out = tuple(draw(st.integers(1, n + 2)) for n in sizes)
        if dims > 1 and draw(st.booleans()):
            out = (None,) + out[1:]  # None keeps the input's size there
        size: Any = out[0] if dims == 1 or (len(set(out)) == 1 and draw(st.booleans())) \
            else out
        return [make(rng, _batch(draw, dims, sizes))], {"dims": dims, "output_size": size}
    return build


def _adaptive_torch(kind: str) -> Any:
    def call(x: torch.Tensor, dims: int, output_size: Any) -> torch.Tensor:
        return getattr(F, f"adaptive_{kind}_pool{dims}d")(x, output_size)
    return call


def build_max_unpool(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    dims = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 3)) for _ in range(dims)]
    kernel = [draw(st.integers(1, 3)) for _ in range(dims)]
    out = tuple(n * k for n, k in zip(sizes, kernel))  # the default size, stride = kernel
    shape = _batch(draw, dims, sizes)
    planes, per_plane = math.prod(shape[:-dims]), math.prod(sizes)
    # Distinct indices within a plane: with repeats which value wins is not defined.
    indices = np.stack([rng.permutation(math.prod(out))[:per_plane] for _ in range(planes)])
    return [normal(rng, shape), indices.reshape(shape).astype(np.int64)], {"output_size": out}


def torch_max_unpool(x: torch.Tensor, indices: torch.Tensor, output_size: tuple
                     ) -> torch.Tensor:
    dims = len(output_size)
    kernel = tuple(o // n for o, n in zip(output_size, x.shape[-dims:]))
    return getattr(F, f"max_unpool{dims}d")(x, indices, kernel, output_size=output_size)


# ----------------------------------------------------------------------------- resizing
_MODE_DIMS = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "linear": (1,),
              "bilinear": (2,), "bicubic": (2,), "trilinear": (3,)}


def build_interpolate(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    mode = draw(st.sampled_from(sorted(_MODE_DIMS)))
    dims = draw(st.sampled_from(_MODE_DIMS[mode]))
    sizes = [draw(st.integers(1, 5)) for _ in range(dims)]
    scales = None
    if draw(st.booleans()):
        factor = draw(st.sampled_from([0.5, 0.75, 1.5, 2.0, 2.5, 3.0]))
        out = tuple(max(math.floor(n * factor), 1) for n in sizes)
        if all(math.floor(n * factor) >= 1 for n in sizes):
            scales = (factor,) * dims
    else:
        out = tuple(draw(st.integers(1, 7)) for _ in range(dims))
    align = mode in ("linear", "bilinear", "bicubic", "trilinear") and draw(st.booleans())
    # torch 2.13's antialiased resize gives every row the same value when the output is one
    # pixel wide ((1, 1, 2, 2) to (3, 1) bicubic): resizing the height first and then the
    # width, in torch, gives the rows chainrule gives. So antialias is drawn only for outputs
    # wider than one pixel.
    antialias = (mode in ("bilinear", "bicubic") and draw(st.booleans()) and out[-1] > 1)
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), *sizes)
    return [normal(rng, shape)], {"dims": dims, "size": out, "scales": scales, "mode": mode,
                                  "align_corners": align, "antialias": antialias}


def torch_interpolate(x: torch.Tensor, dims: int, size: tuple, scales: Any, mode: str,
                      align_corners: bool, antialias: bool = False) -> torch.Tensor:
    align = align_corners if mode not in ("nearest", "nearest-exact") else None
    if scales is not None:
        return F.interpolate(x, scale_factor=scales, mode=mode, align_corners=align,
                             antialias=antialias)
    return F.interpolate(x, size=size, mode=mode, align_corners=align, antialias=antialias)


CASES: list[Case] = [
    Case("pad", "4 modes, negative pads crop", build_pad, torch_pad),
    Case("conv_nd", "1-3 dims: stride, padding, dilation, groups, bias", build_conv_nd,
         torch_conv_nd),
    Case("conv_transpose_nd", "1-3 dims: stride, padding, output_padding, groups, dilation",
         build_conv_transpose_nd, torch_conv_transpose_nd),
    Case("max_pool", "1-3 dims: dilation, ceil_mode, padding, unbatched", build_max_pool,
         torch_max_pool),
    Case("avg_pool", "1-3 dims: ceil_mode, count_include_pad, divisor_override",
         build_avg_pool, torch_avg_pool),
    Case("adaptive_max_pool", "1-3 dims, None sizes", build_adaptive(distinct),
         _adaptive_torch("max")),
    Case("adaptive_avg_pool", "1-3 dims, None sizes", build_adaptive(normal),
         _adaptive_torch("avg")),
    Case("max_unpool", "1-3 dims, distinct indices", build_max_unpool, torch_max_unpool),
    Case("interpolate", "nearest(-exact), (bi/tri)linear, bicubic, antialias; size or scale",
         build_interpolate, torch_interpolate),
]
