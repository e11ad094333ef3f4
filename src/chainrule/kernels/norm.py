"""Batch normalisation's passes over a (values, C) matrix, and its fusion with max pooling.

Batch norm is memory-bound: a handful of multiply-adds per number read. Each pass here goes
a cache-sized block of rows at a time (the block's temporaries stay in cache), the blocks
split over threads, so the input is read twice in all (statistics, then the affine pass)
and the output written once. The per-channel sums are taken in float64 over BLAS products
(``reduce.precise_column_sums``) and combined in block order, so the same input on the same
number of threads gives the same bits.
"""

from __future__ import annotations

import numpy as np

from chainrule.kernels import jit
from chainrule.kernels.conv import (
    Pair,
    image_bytes,
    positions,
    route_to_winners_reference,
    tap,
    winners,
)
from chainrule.kernels.jit import prange
from chainrule.kernels.reduce import precise_column_sums
from chainrule.kernels.threads import block_rows, blocked_sum, over_batch, over_blocks

_DENSE = (1, 1)  # the dilation of a pooling window


def _mean_and_variance_blocked(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """mean_and_variance in NumPy passes over threads (where the compiled loop does not run).

    Each cache-sized block gets two passes — its mean, then its squares about that mean —
    while it sits in cache, so memory is read once; the blocks' results are combined in
    float64 with the pairwise formula of Chan, Golub and LeVeque (M2 = sum of the blocks'
    M2 + n_b (mean_b - mean)^2), in block order. A one-pass E[x^2] - E[x]^2 would lose digits
    to cancellation when the mean is large against the spread; this does not.
    """
    m = len(rows)
    if m == 0:  # no values: both are undefined, NaN as the reference (and NumPy) says
        return np.full(rows.shape[1], np.nan, rows.dtype), np.full(rows.shape[1], np.nan,
                                                                   rows.dtype)
    step = block_rows(rows.strides[0])
    parts: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}

    def run(lo: int, hi: int) -> None:
        for start in range(lo, hi, step):
            block = rows[start:min(start + step, hi)]
            block_mean = precise_column_sums(block) / len(block)
            centered = block - block_mean.astype(block.dtype)
            centered *= centered
            # The float64 mean moved by the rounding of the dtype's centre: correct the
            # squares for it (the sum of (x - c) is n (mean - c)), as a shifted two-pass does.
            offset = block_mean - block_mean.astype(block.dtype)
            m2 = precise_column_sums(centered) - len(block) * offset * offset
            parts[start] = (len(block), block_mean, m2)

    over_batch(m, run, rows.size)
    counts = np.array([parts[start][0] for start in sorted(parts)], np.float64)[:, None]
    means = np.stack([parts[start][1] for start in sorted(parts)])
    m2s = np.stack([parts[start][2] for start in sorted(parts)])
    mean = (counts * means).sum(axis=0) / m
    m2 = m2s.sum(axis=0) + (counts * (means - mean) ** 2).sum(axis=0)
    return mean.astype(rows.dtype), (m2 / m).astype(rows.dtype)


#: Bytes of rows per block of the compiled statistics: a block stays in L1 for its two passes.
STATISTICS_BLOCK_BYTES = 1 << 15


@jit.loops
def _mean_and_variance_loops(rows, block, mean, m2, sums, squares):
    """Per block of ``block`` rows: its column means and squares about them (float64, two
    passes while it sits in cache), merged into the running mean and m2 by Chan, Golub and
    LeVeque's formula, block after block."""
    count, channels = 0, rows.shape[1]
    for ch in range(channels):
        mean[ch], m2[ch] = 0.0, 0.0
    for start in range(0, rows.shape[0], block):
        stop = min(start + block, rows.shape[0])
        size = stop - start
        for ch in range(channels):
            sums[ch], squares[ch] = 0.0, 0.0
        for r in range(start, stop):
            row = rows[r]
            for ch in range(channels):
                sums[ch] += row[ch]
        for ch in range(channels):
            sums[ch] /= size  # the block's mean
        for r in range(start, stop):
            row = rows[r]
            for ch in range(channels):
                d = row[ch] - sums[ch]
                squares[ch] += d * d
        total = count + size
        for ch in range(channels):
            delta = sums[ch] - mean[ch]
            mean[ch] += delta * (size / total)
            m2[ch] += squares[ch] + delta * delta * (count * size / total)
        count = total


@jit.kernel(_mean_and_variance_loops, _mean_and_variance_blocked)
def mean_and_variance(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and biased variance of a (values, C) matrix, in its dtype.

    One compiled loop over blocks of rows: each block's mean and its squares about that mean
    in float64 while it is in cache (memory read once), the blocks merged in order by the
    pairwise formula (M2 = M2_a + M2_b + delta^2 n_a n_b / n). A one-pass E[x^2] - E[x]^2
    would lose digits to cancellation when the mean is large against the spread; this does
    not. Within float64 rounding of the reference, rounded to the dtype.
    """
    if len(rows) == 0 or rows.ndim != 2 or rows.strides[-1] != rows.itemsize:
        return _mean_and_variance_blocked(rows)
    channels = rows.shape[1]
    mean, m2 = np.empty(channels), np.empty(channels)
    block = max(STATISTICS_BLOCK_BYTES // max(rows.strides[0], 1), 1)
    _mean_and_variance_loops(rows, block, mean, m2, np.empty(channels), np.empty(channels))
    return mean.astype(rows.dtype), (m2 / len(rows)).astype(rows.dtype)


def mean_and_variance_reference(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and biased variance of a (values, C) matrix, in its dtype."""
    wide = rows.astype(np.float64)
    mean = wide.mean(axis=0)
    var = ((wide - mean) ** 2).mean(axis=0)
    return mean.astype(rows.dtype), var.astype(rows.dtype)


def _normalise_blocked(rows: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                       bias: np.ndarray | None) -> np.ndarray:
    """normalise in NumPy passes, a block at a time over threads (without the loops)."""
    out = np.empty_like(rows)

    def affine(lo: int, hi: int) -> None:
        block = out[lo:hi]
        np.subtract(rows[lo:hi], mean, out=block)
        block *= scale
        if bias is not None:
            block += bias

    over_blocks(len(rows), affine, rows.size, rows.strides[0])
    return out


@jit.loops(threads=True)
def _normalise_loops(rows, mean, scale, bias, out):
    """out[r, c] = (rows[r, c] - mean[c]) * scale[c] (+ bias[c]), the reference's three
    operations in its order, one row's channels at a time."""
    for r in prange(rows.shape[0]):  # rows are independent
        x, y = rows[r], out[r]
        for c in range(rows.shape[1]):
            v = (x[c] - mean[c]) * scale[c]
            y[c] = v if bias is None else v + bias[c]


@jit.kernel(_normalise_loops, _normalise_blocked)
def normalise(rows: np.ndarray, mean: np.ndarray, scale: np.ndarray,
              bias: np.ndarray | None) -> np.ndarray:
    """(rows - mean) * scale + bias per column: one compiled pass, the reference's bits.

    Centred first, as PyTorch does: rows * scale + (bias - mean * scale) is one operation
    fewer but loses float32 digits when the mean is large against the spread.
    """
    if rows.ndim != 2 or rows.strides[-1] != rows.itemsize or any(
            a is not None and a.shape != rows.shape[1:] for a in (mean, scale, bias)):
        return _normalise_blocked(rows, mean, scale, bias)
    out = np.empty(rows.shape, rows.dtype)
    _normalise_loops(rows, mean, scale, bias, out)
    return out


def normalise_reference(rows: np.ndarray, mean: np.ndarray, scale: np.ndarray,
                        bias: np.ndarray | None) -> np.ndarray:
    """(rows - mean) * scale + bias per column."""
    out = (rows - mean) * scale
    return out if bias is None else out + bias


def batch_norm_sums(grads: np.ndarray, rows: np.ndarray, mean: np.ndarray, want_sum: bool,
                    want_centered: bool) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-column sum(grads) and sum(grads * (rows - mean)) in grads' dtype (None where not
    wanted), both in one blocked pass, accumulated in float64."""
    if not (want_sum or want_centered):
        return None, None

    def sums(lo: int, hi: int) -> np.ndarray:
        block = grads[lo:hi]
        nothing = np.zeros(block.shape[1])
        if want_centered:
            product = rows[lo:hi] - mean
            product *= block
        return np.stack([precise_column_sums(block) if want_sum else nothing,
                         precise_column_sums(product) if want_centered else nothing])

    total, centered = blocked_sum(len(grads), sums, grads.size,
                                  grads.strides[0]).astype(grads.dtype)
    return (total if want_sum else None), (centered if want_centered else None)


def batch_norm_sums_reference(grads: np.ndarray, rows: np.ndarray, mean: np.ndarray,
                              want_sum: bool, want_centered: bool
                              ) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Per-column sum(grads) and sum(grads * (rows - mean)), None where not wanted."""
    total = grads.sum(axis=0, dtype=np.float64).astype(grads.dtype) if want_sum else None
    centered = None
    if want_centered:
        centered = (grads * (rows - mean)).sum(axis=0, dtype=np.float64).astype(grads.dtype)
    return total, centered


def batch_norm_input_grad(grads: np.ndarray, rows: np.ndarray, mean: np.ndarray,
                          a: np.ndarray, b: np.ndarray | None, c: np.ndarray | None
                          ) -> np.ndarray:
    """a * grads + (b * (rows - mean) + c) per column (just a * grads when b is None),
    a block at a time."""
    out = np.empty_like(grads)

    def chain(lo: int, hi: int) -> None:
        block = out[lo:hi]
        np.multiply(grads[lo:hi], a, out=block)
        if b is not None:
            centered = rows[lo:hi] - mean
            centered *= b
            centered += c
            block += centered

    over_blocks(len(grads), chain, grads.size, grads.strides[0])
    return out


def batch_norm_input_grad_reference(grads: np.ndarray, rows: np.ndarray, mean: np.ndarray,
                                    a: np.ndarray, b: np.ndarray | None, c: np.ndarray | None
                                    ) -> np.ndarray:
    """a * grads + (b * (rows - mean) + c) per column (just a * grads when b is None)."""
    if b is None:
        return grads * a
    return grads * a + ((rows - mean) * b + c)


def _signed_window_max_blocked(images: np.ndarray, sign: np.ndarray, kernel: Pair,
                               stride: Pair, out: Pair
                               ) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
    """signed_window_max in NumPy passes, a cache-sized block of images at a time, the blocks
    split over threads (where the compiled loops do not run)."""
    (i0, j0), *later = positions(kernel)
    best = np.empty(tap(images, i0, j0, stride, _DENSE, out).shape, images.dtype)
    larger = [np.empty(best.shape, bool) for _ in later]
    flip = bool((sign < 0).any())

    def pool(lo: int, hi: int) -> None:
        part, top = images[lo:hi], best[lo:hi]
        np.multiply(tap(part, i0, j0, stride, _DENSE, out), sign, out=top)
        for (i, j), mask in zip(later, larger):
            candidate = tap(part, i, j, stride, _DENSE, out)
            if flip:
                candidate = candidate * sign
            np.greater(candidate, top, out=mask[lo:hi])
            np.maximum(top, candidate, out=top)

    over_blocks(len(best), pool, images.size, image_bytes(images))
    return best, larger


def signed_window_max_reference(images: np.ndarray, sign: np.ndarray, kernel: Pair,
                                stride: Pair, out: Pair
                                ) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
    """Each window's max of sign * x, and where each position k > 0 beat all before it."""
    taps = [tap(images, i, j, stride, _DENSE, out) * sign for i, j in positions(kernel)]
    larger = [taps[k] > np.max(taps[:k], axis=0) for k in range(1, len(taps))]
    return np.max(taps, axis=0), larger


def _pooled_input_grad_blocked(images: np.ndarray, mean: np.ndarray, b: np.ndarray | None,
                               c: np.ndarray | None, scaled: np.ndarray,
                               larger: np.ndarray | list[np.ndarray], kernel: Pair,
                               stride: Pair, out: Pair) -> np.ndarray:
    """pooled_input_grad in NumPy passes, a cache-sized block at a time over threads."""
    grad = (np.zeros if b is None else np.empty)(images.shape, images.dtype)

    def route(lo: int, hi: int) -> None:
        part = grad[lo:hi]
        if b is not None:  # the paths through the batch statistics reach every x
            np.subtract(images[lo:hi], mean, out=part)
            part *= b
            part += c
        share = scaled[lo:hi]
        for i, j, won in winners(larger, kernel, lo, hi):
            target = tap(part, i, j, stride, _DENSE, out)
            target += share if won is None else share * won

    over_blocks(len(grad), route, grad.size, image_bytes(grad))
    return grad


def pooled_input_grad_reference(images: np.ndarray, mean: np.ndarray, b: np.ndarray | None,
                                c: np.ndarray | None, scaled: np.ndarray,
                                larger: np.ndarray | list[np.ndarray], kernel: Pair,
                                stride: Pair, out: Pair) -> np.ndarray:
    """b * (x - mean) + c everywhere (0 when b is None), plus ``scaled`` at the winners."""
    base = np.zeros_like(images) if b is None else (images - mean) * b + c
    return base + route_to_winners_reference(scaled, larger, images.shape, kernel, stride, out)


# ------------------------------------------------------------- compiled, with max pooling
# Channels-last images put a pixel's C channels side by side, so each loop below ends in a
# run over the channels: SIMD lanes, one window position at a time.
@jit.loops(threads=True)
def _signed_window_max_loops(images, sign, kernel_h, kernel_w, stride_h, stride_w, best,
                             larger):
    """best[n, oi, oj] = max over the window of sign * x (a NaN wins and stays), and
    larger[k - 1] = where window position k > 0 was strictly larger than all before it."""
    batch, out_h, out_w, channels = best.shape
    for n in prange(batch):  # images are independent
        for oi in range(out_h):
            for oj in range(out_w):
                top = best[n, oi, oj]
                h, w = oi * stride_h, oj * stride_w
                first = images[n, h, w]
                for ch in range(channels):
                    top[ch] = first[ch] * sign[ch]
                k = 0
                for i in range(kernel_h):
                    for j in range(kernel_w):
                        if i == 0 and j == 0:
                            continue
                        row, won = images[n, h + i, w + j], larger[k, n, oi, oj]
                        k += 1
                        for ch in range(channels):
                            x = row[ch] * sign[ch]
                            beats = x > top[ch]
                            won[ch] = beats
                            if beats or x != x:  # np.maximum's NaN, which then stays
                                top[ch] = x


@jit.kernel(_signed_window_max_loops, _signed_window_max_blocked)
def signed_window_max(images: np.ndarray, sign: np.ndarray, kernel: Pair, stride: Pair,
                      out: Pair) -> tuple[np.ndarray, np.ndarray | list[np.ndarray]]:
    """Each window's max of sign * x (sign per channel, +-1) over channels-last ``images``,
    and for each kernel position k > 0 where it was strictly larger than all before it (one
    (K - 1, N, out_h, out_w, C) bool array, indexed as the reference's list).

    Batch norm's y = s x + t is monotone in x for each channel, so this finds the windows'
    winners of y without writing y. One compiled pass over the windows: the reference's
    comparisons, so its bits.
    """
    if images.ndim != 4 or sign.shape != images.shape[-1:] or images.size == 0:
        return _signed_window_max_blocked(images, sign, kernel, stride, out)
    best = np.empty((images.shape[0], *out, images.shape[-1]), images.dtype)
    larger = np.empty((kernel[0] * kernel[1] - 1, *best.shape), bool)
    _signed_window_max_loops(images, sign, kernel[0], kernel[1], stride[0], stride[1], best,
                             larger)
    return best, larger


@jit.loops(threads=True)
def _pooled_input_grad_loops(images, mean, b, c, scaled, larger, kernel_h, kernel_w,
                             stride_h, stride_w, tiled, grad):
    """grad = b (x - mean) + c (0 where b is None), plus ``scaled`` at each window's winner
    (the last position strictly larger than all before it, else the first). ``tiled``: the
    windows cover every pixel once, so one pass over the windows writes everything."""
    batch, out_h, out_w, channels = scaled.shape
    zero = grad.dtype.type(0.0)
    if not tiled:
        for n in prange(batch):
            for h in range(grad.shape[1]):
                for w in range(grad.shape[2]):
                    row, x = grad[n, h, w], images[n, h, w]
                    for ch in range(channels):
                        row[ch] = zero if b is None else (x[ch] - mean[ch]) * b[ch] + c[ch]
    for n in prange(batch):  # images are independent
        winner = np.empty(channels, np.int64)  # each window's winning position, by channel
        for oi in range(out_h):
            for oj in range(out_w):
                share = scaled[n, oi, oj]
                for ch in range(channels):
                    winner[ch] = 0
                for k in range(larger.shape[0]):
                    won = larger[k, n, oi, oj]
                    for ch in range(channels):
                        if won[ch]:
                            winner[ch] = k + 1
                h, w = oi * stride_h, oj * stride_w
                k = 0
                for i in range(kernel_h):
                    for j in range(kernel_w):
                        row, x = grad[n, h + i, w + j], images[n, h + i, w + j]
                        for ch in range(channels):
                            add = share[ch] if winner[ch] == k else zero
                            if tiled:
                                base = zero if b is None else (x[ch] - mean[ch]) * b[ch] + c[ch]
                                row[ch] = base + add
                            else:
                                row[ch] += add
                        k += 1


@jit.kernel(_pooled_input_grad_loops, _pooled_input_grad_blocked)
def pooled_input_grad(images: np.ndarray, mean: np.ndarray, b: np.ndarray | None,
                      c: np.ndarray | None, scaled: np.ndarray,
                      larger: np.ndarray | list[np.ndarray], kernel: Pair, stride: Pair,
                      out: Pair) -> np.ndarray:
    """b * (x - mean) + c at every pixel of channels-last ``images`` (0 when b is None), plus
    ``scaled`` (the pooled gradient times s) at each window's winner. Compiled: one pass over
    the windows where they tile the images (a 2x2 pool of an even size), else one over the
    pixels and one over the windows."""
    if images.ndim != 4 or scaled.shape != (images.shape[0], *out, images.shape[-1]):
        return _pooled_input_grad_blocked(images, mean, b, c, scaled, larger, kernel, stride,
                                          out)
    masks = np.asarray(larger, bool) if len(larger) else np.empty((0, *scaled.shape), bool)
    tiled = (kernel == stride and out[0] * kernel[0] == images.shape[1]
             and out[1] * kernel[1] == images.shape[2])
    grad = np.empty(images.shape, images.dtype)
    # a pooled gradient from a flatten comes back (N, C, h, w): one copy costs less than
    # reading it a channel at a time
    scaled = np.ascontiguousarray(scaled)
    _pooled_input_grad_loops(images, mean, b, c, scaled, masks, kernel[0], kernel[1],
                             stride[0], stride[1], bool(tiled), grad)
    return grad
