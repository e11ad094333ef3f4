"""Padding (PyTorch's F.pad): constant, reflect, replicate and circular, with negative pads
cropping. Backward hands each output element's gradient back to the element it copied."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.validate import choice, is_int, real

MODES = ("constant", "reflect", "replicate", "circular")


def pad_widths(op: str, pad: Any, ndim: int) -> list[tuple[int, int]]:
    """PyTorch's flat pad tuple (last dim first: left, right, top, bottom, ...) as one
    (before, after) pair per padded dim, in dim order (the first pair is the outermost dim)."""
    if not isinstance(pad, (tuple, list)) or not all(is_int(p) for p in pad):
        raise TypeError(f"{op}: pad must be a tuple of ints (left, right, top, bottom, ...), "
                        f"got {pad!r}")
    if len(pad) % 2:
        raise ValueError(f"{op}: pad must have an even number of values (a before and an "
                         f"after for each dim), got {len(pad)}: {tuple(pad)}")
    if len(pad) // 2 > ndim:
        raise ValueError(f"{op}: pad {tuple(pad)} pads {len(pad) // 2} dims but the input has "
                         f"only {ndim}")
    pairs = [(int(pad[i]), int(pad[i + 1])) for i in range(0, len(pad), 2)]
    return pairs[::-1]


def _source(n: int, before: int, after: int) -> slice:
    """The part of a dim of size n that negative pads leave (the crop comes first)."""
    return slice(max(-before, 0), max(n - max(-after, 0), max(-before, 0)))


def _edge_index(mode: str, before: int, after: int, n: int) -> np.ndarray:
    """For each output position of one dim, the input position it copies (n: the input's
    size there, both pads >= 0)."""
    p = np.arange(-before, n + after)
    if mode == "replicate":
        return np.clip(p, 0, n - 1)
    if mode == "circular":
        return p % n
    p = np.abs(p)  # reflect: about the first element, and about the last one
    return np.where(p >= n, 2 * (n - 1) - p, p)


class PadOp(Function):
    """F.pad;  d/dx: each output element's gradient goes back to the element it copies
    (constant: the kept block; reflect/replicate/circular: summed where edges repeat it)"""

    name = "pad"

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, pad: Sequence[int] = (), mode: str = "constant",
                value: float = 0.0) -> np.ndarray:
        mode = choice("pad", "mode", mode, MODES)
        pairs = pad_widths("pad", pad, x.ndim)
        first = x.ndim - len(pairs)
        ctx.in_shape, ctx.mode = x.shape, mode
        crop = [slice(None)] * first
        for dim, (before, after) in enumerate(pairs, first):
            if x.shape[dim] + before + after < 0:
                raise ValueError(f"pad: dim {dim} of size {x.shape[dim]} padded by "
                                 f"({before}, {after}) would have a negative size")
            crop.append(_source(x.shape[dim], before, after))
        ctx.crop = tuple(crop)
        kept = x[ctx.crop]
        if mode == "constant":
            shape = x.shape[:first] + tuple(n + b + a for n, (b, a) in zip(x.shape[first:],
                                                                               pairs))
            out = np.full(shape, value, x.dtype)
            place = [slice(None)] * first + [
                slice(max(b, 0), max(b, 0) + k) for (b, _), k in zip(pairs, kept.shape[first:])]
            ctx.place = tuple(place)
            out[ctx.place] = kept
            return out
        _check_edge_modes(mode, pairs, x.ndim, kept.shape[first:])
        ctx.steps = []
        out = kept
        for dim, (before, after) in enumerate(pairs, first):
            before, after = max(before, 0), max(after, 0)
            if before or after:
                index = _edge_index(mode, before, after, out.shape[dim])
                ctx.steps.append((dim, before, after, index))
                out = np.take(out, index, axis=dim)
        return np.ascontiguousarray(out)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        grad_x = np.zeros(ctx.in_shape, grad.dtype)
        if ctx.mode == "constant":
            grad_x[ctx.crop] = grad[ctx.place]
            return grad_x
        for dim, before, after, index in reversed(ctx.steps):
            moved = np.moveaxis(grad, dim, 0)
            n = len(index) - before - after
            back = moved[before:before + n].copy()  # the middle block copies itself
            # The edges: replicate sends a whole edge to one element, so add.at, which sums
            # repeated indices (plain fancy-index += would keep only one of them).
            np.add.at(back, index[:before], moved[:before])
            np.add.at(back, index[before + n:], moved[before + n:])
            grad = np.moveaxis(back, 0, dim)
        grad_x[ctx.crop] = grad
        return grad_x


def _check_edge_modes(mode: str, pairs: list[tuple[int, int]], ndim: int,
                      kept: tuple[int, ...]) -> None:
    """PyTorch's limits for the copying modes: 1-3 padded dims of a batched or unbatched
    input, reflect's pads below the size, circular's at most the size."""
    dims = len(pairs)
    if not 1 <= dims <= 3 or ndim not in (dims + 1, dims + 2):
        raise ValueError(f"pad: mode {mode!r} pads the last 1, 2 or 3 dims of a (batched or "
                         f"unbatched) input, so {2 * dims} pad values need a {dims + 1}-D or "
                         f"{dims + 2}-D input, got {ndim}-D; use mode='constant' for others")
    for (before, after), n in zip(pairs, kept):
        widest = max(before, after)
        if mode == "reflect" and widest >= n and widest > 0:
            raise ValueError(f"pad: reflect pads must be smaller than the dim they pad, got "
                             f"({before}, {after}) for a dim of size {n}")
        if mode == "circular" and widest > n:
            raise ValueError(f"pad: circular pads must be at most the dim they pad, got "
                             f"({before}, {after}) for a dim of size {n}")
        if mode == "replicate" and widest > 0 and n == 0:
            raise ValueError("pad: replicate cannot pad a dim of size 0")


def pad(input: Any, pad: Sequence[int], mode: str = "constant",  # noqa: A002 - torch's name
        value: float | None = None) -> Tensor:
    """Pad (or, with negative values, crop) the last dims, as torch.nn.functional.pad."""
    mode = choice("pad", "mode", mode, MODES)
    value = 0.0 if value is None else real("pad", "value", value, finite=False)
    if value != 0 and mode != "constant":  # PyTorch lets a value of 0 through
        raise ValueError(f"pad: value= is for mode='constant' only, not {mode!r}")
    return PadOp.apply(input, pad=tuple(pad) if isinstance(pad, list) else pad, mode=mode,
                       value=value)
