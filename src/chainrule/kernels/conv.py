"""Convolution and pooling kernels on channels-last (N, H, W, C) images.

Channels last keeps each pixel's channels next to each other in memory, so the rows of
im2col and every per-kernel-position slice are copied in runs of C numbers, not one number
at a time. A strided view lists every receptive field without copying (``windows``); a
kernel position's slice of all windows at once is ``tap``. Pooling and the input gradient
of a convolution go one kernel position at a time (9 passes for 3x3): each pass is one
strided slice, so there is no loop over pixels. The passes run over cache-sized blocks of
images split over threads (``kernels.threads``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import as_strided

from chainrule.kernels import jit
from chainrule.kernels.blas import matmul
from chainrule.kernels.jit import prange
from chainrule.kernels.threads import over_batch, over_blocks

Pair = tuple[int, int]
_DENSE = (1, 1)  # the dilation of a pooling window


# ---------------------------------------------------------------------- layout helpers
def tap(x: np.ndarray, i: int, j: int, stride: Pair, dilation: Pair, out: Pair) -> np.ndarray:
    """The (N, out_h, out_w, C) slice that kernel position (i, j) reads from channels-last x."""
    top, left = i * dilation[0], j * dilation[1]
    return x[:, top:top + stride[0] * (out[0] - 1) + 1:stride[0],
             left:left + stride[1] * (out[1] - 1) + 1:stride[1]]


def tap_nd(x: np.ndarray, position: tuple[int, ...], stride: tuple[int, ...],
           dilation: tuple[int, ...], out: tuple[int, ...]) -> np.ndarray:
    """``tap`` for any number of spatial dims: the (N, *out, C) slice one position reads."""
    return x[(slice(None), *(slice(p * d, p * d + s * (o - 1) + 1, s) for p, d, s, o in
                             zip(position, dilation, stride, out)))]


def positions(kernel: Pair) -> list[tuple[int, int]]:
    """The kernel positions (i, j) in row-major order."""
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def images(x_nhwc: np.ndarray, padding: Pair) -> np.ndarray:
    """Channels-last padded memory back as logical (N, C, H, W), padding cut off (a view)."""
    ph, pw = padding
    h, w = x_nhwc.shape[1] - 2 * ph, x_nhwc.shape[2] - 2 * pw
    return x_nhwc[:, ph:ph + h, pw:pw + w].transpose(0, 3, 1, 2)


def image_bytes(x: np.ndarray) -> int:
    """Bytes of one image of a batch (defined for an empty batch too)."""
    return int(np.prod(x.shape[1:])) * x.itemsize


# ---------------------------------------------------------------------- im2col
def channels_last(x: np.ndarray, padding: Pair, fill: float = 0.0) -> np.ndarray:
    """(N, C, H, W) images as a contiguous, padded (N, H', W', C) array.

    Arrays the conv ops return are transposed views of channels-last memory, so a stack of
    conv, ReLU and pooling layers stays in this layout and the transpose here is free. The
    copy, where one is needed, is split over threads.
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


def channels_last_reference(x: np.ndarray, padding: Pair, fill: float = 0.0) -> np.ndarray:
    """(N, C, H, W) images as a contiguous, padded (N, H', W', C) array."""
    ph, pw = padding
    return np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (ph, ph), (pw, pw), (0, 0)),
                  constant_values=fill)


def windows(x: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out: Pair
            ) -> np.ndarray:
    """A read-only (N, out_h, out_w, kh, kw, C) view of every receptive field of ``x``."""
    n, _, _, c = x.shape
    sn, sh, sw, sc = x.strides
    return as_strided(x, (n, out[0], out[1], kernel[0], kernel[1], c),
                      (sn, sh * stride[0], sw * stride[1], sh * dilation[0], sw * dilation[1],
                       sc), writeable=False)


def windows_reference(x: np.ndarray, kernel: Pair, stride: Pair, dilation: Pair, out: Pair
                      ) -> np.ndarray:
    """Every receptive field of ``x`` as a new (N, out_h, out_w, kh, kw, C) array."""
    rows = [np.stack([tap(x, i, j, stride, dilation, out) for j in range(kernel[1])], axis=3)
            for i in range(kernel[0])]
    return np.stack(rows, axis=3)


def im2col(views: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The (N, out_h, out_w, kh, kw, C) windows as ``dtype`` rows, one per output pixel, in
    (i, j, c) order; the copy converts, so mixed dtypes cost no extra pass.

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


def im2col_reference(views: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The windows as ``dtype`` rows, one per output pixel, in (i, j, c) order."""
    n, out_h, out_w, kh, kw, c = views.shape
    return views.reshape(n * out_h * out_w, kh * kw * c).astype(dtype)


def _by_position(grad_rows: np.ndarray, w_rows: np.ndarray, padded_shape: tuple[int, ...],
                 kernel: tuple[int, ...], stride: tuple[int, ...], dilation: tuple[int, ...],
                 out: tuple[int, ...], groups: int, compiled: bool) -> np.ndarray:
    """conv_input_grad's products, one per group and kernel position, each added where that
    position read: by the compiled loop (``compiled``: one group, 2-D) or NumPy's strided add."""
    out_channels = w_rows.shape[0]
    group_out, group_in = out_channels // groups, padded_shape[-1] // groups
    padded = np.zeros(padded_shape, grad_rows.dtype)
    part = np.empty((len(grad_rows), group_in), grad_rows.dtype)
    image_part = part.reshape(padded_shape[0], *out, group_in)
    for g in range(groups):
        g_rows = grad_rows[:, g * group_out:(g + 1) * group_out]
        w2 = w_rows[g * group_out:(g + 1) * group_out]
        target = padded[..., g * group_in:(g + 1) * group_in]
        for k, position in enumerate(itertools.product(*map(range, kernel))):
            matmul(g_rows, w2[:, k * group_in:(k + 1) * group_in], out=part)
            if compiled:
                _add_tap_loops(padded, image_part, position[0] * dilation[0],
                               position[1] * dilation[1], stride[0], stride[1])
            else:
                tap_nd(target, position, stride, dilation, out)[...] += image_part
    return padded


def _conv_input_grad_numpy(grad_rows: np.ndarray, w_rows: np.ndarray,
                           padded_shape: tuple[int, ...], kernel: tuple[int, ...],
                           stride: tuple[int, ...], dilation: tuple[int, ...],
                           out: tuple[int, ...], groups: int) -> np.ndarray:
    """conv_input_grad with NumPy's strided adds (where the compiled loop does not run)."""
    return _by_position(grad_rows, w_rows, padded_shape, kernel, stride, dilation, out, groups,
                        compiled=False)


@jit.loops(threads=True)
def _add_tap_loops(padded, part, top, left, stride_h, stride_w):
    """padded[n, top + oi stride_h, left + oj stride_w] += part[n, oi, oj], a pixel's channels
    at a time (both channels-last and C-contiguous)."""
    batch, out_h, out_w, channels = part.shape
    for n in prange(batch):  # images are independent
        for oi in range(out_h):
            for oj in range(out_w):
                target, source = padded[n, top + oi * stride_h, left + oj * stride_w], \
                    part[n, oi, oj]
                for ch in range(channels):
                    target[ch] += source[ch]


@jit.kernel(_add_tap_loops, _conv_input_grad_numpy)
def conv_input_grad(grad_rows: np.ndarray, w_rows: np.ndarray, padded_shape: tuple[int, ...],
                    kernel: tuple[int, ...], stride: tuple[int, ...],
                    dilation: tuple[int, ...], out: tuple[int, ...], groups: int
                    ) -> np.ndarray:
    """col2im(grad_rows @ w_rows) per group: the gradient of the padded channels-last input,
    for any number of spatial dims (conv2d's and the N-d convolutions').

    ``grad_rows`` is (pixels, O) and ``w_rows`` (O, k...*C_g) in im2col's (kernel..., c)
    column order. One product per kernel position, added where that position read: each
    product lands in one contiguous buffer, where the whole (pixels, k...*C_g) matrix would be
    read back with a stride. The adds are a compiled loop over the pixels for one group in 2-D
    (the same additions in the same order as NumPy's strided add, so its bits), NumPy's
    strided adds otherwise.
    """
    return _by_position(grad_rows, w_rows, padded_shape, kernel, stride, dilation, out, groups,
                        compiled=groups == 1 and len(kernel) == 2)


def conv_input_grad_reference(grad_rows: np.ndarray, w_rows: np.ndarray,
                              padded_shape: tuple[int, ...], kernel: tuple[int, ...],
                              stride: tuple[int, ...], dilation: tuple[int, ...],
                              out: tuple[int, ...], groups: int) -> np.ndarray:
    """col2im(grad_rows @ w_rows) per group, the column matrix made whole."""
    out_channels = w_rows.shape[0]
    group_out, group_in = out_channels // groups, padded_shape[-1] // groups
    padded = np.zeros(padded_shape, grad_rows.dtype)
    for g in range(groups):
        cols = (grad_rows[:, g * group_out:(g + 1) * group_out]
                @ w_rows[g * group_out:(g + 1) * group_out])
        cols = cols.reshape(padded_shape[0], *out, *kernel, group_in)
        target = padded[..., g * group_in:(g + 1) * group_in]
        spatial = (slice(None),) * (1 + len(out))
        for position in itertools.product(*map(range, kernel)):
            tap_nd(target, position, stride, dilation, out)[...] += cols[(*spatial, *position)]
    return padded


# ---------------------------------------------------------------------- pooling
def window_max(padded: np.ndarray, kernel: Pair, stride: Pair, out: Pair
               ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each window's max, and for each kernel position k > 0 where it was strictly larger
    than every position before it (``larger[k - 1]``); a NaN counts as larger, so it wins.

    A running max over the kernel positions, a cache-sized block of images at a time.
    """
    later = positions(kernel)[1:]
    best = np.empty(tap(padded, 0, 0, stride, _DENSE, out).shape, padded.dtype)
    larger = [np.empty(best.shape, bool) for _ in later]

    def pool(lo: int, hi: int) -> None:
        part, top = padded[lo:hi], best[lo:hi]
        top[...] = tap(part, 0, 0, stride, _DENSE, out)
        for (i, j), mask in zip(later, larger):
            candidate = tap(part, i, j, stride, _DENSE, out)
            np.greater(candidate, top, out=mask[lo:hi])
            mask[lo:hi] |= np.isnan(candidate)
            np.maximum(top, candidate, out=top)

    over_blocks(len(best), pool, padded.size, image_bytes(padded))
    return best, larger


def window_max_reference(padded: np.ndarray, kernel: Pair, stride: Pair, out: Pair
                         ) -> tuple[np.ndarray, list[np.ndarray]]:
    """Each window's max, and where each kernel position k > 0 beat all before it."""
    taps = [tap(padded, i, j, stride, _DENSE, out) for i, j in positions(kernel)]
    larger = [(taps[k] > np.max(taps[:k], axis=0)) | np.isnan(taps[k])
              for k in range(1, len(taps))]
    return np.max(taps, axis=0), larger


def winners(larger: list[np.ndarray], kernel: Pair, lo: int, hi: int
            ) -> Iterator[tuple[int, int, np.ndarray | None]]:
    """Each kernel position (i, j), last first, with where it won its window among images
    lo:hi (None: everywhere). The winner is the last position strictly larger than all
    before it: on ties the first, as PyTorch picks."""
    taken = None  # windows already won by a later kernel position
    for k, (i, j) in reversed(list(enumerate(positions(kernel)))):
        if k == 0:
            won = None if taken is None else ~taken
        else:
            mask = larger[k - 1][lo:hi]
            won = mask if taken is None else mask & ~taken
            taken = mask.copy() if taken is None else np.logical_or(taken, mask, out=taken)
        yield i, j, won


def route_to_winners(grad_nhwc: np.ndarray, larger: list[np.ndarray],
                     padded_shape: tuple[int, ...], kernel: Pair, stride: Pair, out: Pair
                     ) -> np.ndarray:
    """Max pooling's backward: each window's gradient added at its winner (``window_max``'s
    ``larger`` decides), as a padded channels-last array."""
    covered = (stride == kernel and
               all(o * k == p for o, k, p in zip(out, kernel, padded_shape[1:3])))
    # Windows that tile the input exactly write every pixel once: no zero fill, no adds.
    padded = (np.empty if covered else np.zeros)(padded_shape, grad_nhwc.dtype)
    overlapping = stride[0] < kernel[0] or stride[1] < kernel[1]

    def route(lo: int, hi: int) -> None:
        upstream, part = grad_nhwc[lo:hi], padded[lo:hi]
        for i, j, won in winners(larger, kernel, lo, hi):
            if won is None:
                won = np.ones(upstream.shape, bool)
            target = tap(part, i, j, stride, _DENSE, out)
            if overlapping:
                target += upstream * won
            elif covered:
                np.multiply(upstream, won, out=target)
            else:
                np.copyto(target, upstream, where=won)

    over_blocks(len(grad_nhwc), route, padded.size, image_bytes(padded))
    return padded


def route_to_winners_reference(grad_nhwc: np.ndarray, larger: list[np.ndarray],
                               padded_shape: tuple[int, ...], kernel: Pair, stride: Pair,
                               out: Pair) -> np.ndarray:
    """Max pooling's backward: each window's gradient added at its winner."""
    winner = np.zeros(grad_nhwc.shape, np.intp)
    for k, mask in enumerate(larger, start=1):
        winner[mask] = k
    padded = np.zeros(padded_shape, grad_nhwc.dtype)
    for k, (i, j) in enumerate(positions(kernel)):
        tap(padded, i, j, stride, _DENSE, out)[...] += grad_nhwc * (winner == k)
    return padded


def window_mean(padded: np.ndarray, kernel: Pair, stride: Pair, out: Pair) -> np.ndarray:
    """Each window's mean: a running sum over the kernel positions, block by block."""
    rest = positions(kernel)[1:]
    total = np.empty(tap(padded, 0, 0, stride, _DENSE, out).shape, padded.dtype)

    def pool(lo: int, hi: int) -> None:
        part, block = padded[lo:hi], total[lo:hi]
        block[...] = tap(part, 0, 0, stride, _DENSE, out)
        for i, j in rest:
            block += tap(part, i, j, stride, _DENSE, out)
        block *= 1 / (kernel[0] * kernel[1])

    over_blocks(len(total), pool, padded.size, image_bytes(padded))
    return total


def window_mean_reference(padded: np.ndarray, kernel: Pair, stride: Pair, out: Pair
                          ) -> np.ndarray:
    """Each window's mean."""
    return windows_reference(padded, kernel, stride, _DENSE, out).mean(axis=(3, 4))


def spread_over_windows(share: np.ndarray, padded_shape: tuple[int, ...], kernel: Pair,
                        stride: Pair, out: Pair) -> np.ndarray:
    """Every pixel's sum of ``share`` over the windows it lies in (padded, channels-last):
    the adjoint of taking windows, one strided add per kernel position."""
    padded = np.zeros(padded_shape, share.dtype)
    taps = positions(kernel)

    def spread(lo: int, hi: int) -> None:
        part = padded[lo:hi]
        for i, j in taps:
            tap(part, i, j, stride, _DENSE, out)[...] += share[lo:hi]

    over_blocks(len(share), spread, padded.size, image_bytes(padded))
    return padded


def spread_over_windows_reference(share: np.ndarray, padded_shape: tuple[int, ...],
                                  kernel: Pair, stride: Pair, out: Pair) -> np.ndarray:
    """Every pixel's sum of ``share`` over the windows it lies in, pixel by pixel."""
    padded = np.zeros(padded_shape, share.dtype)
    for y in range(out[0]):
        for x in range(out[1]):
            top, left = y * stride[0], x * stride[1]
            padded[:, top:top + kernel[0], left:left + kernel[1]] += share[:, y, x, None, None]
    return padded
