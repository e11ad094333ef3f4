"""Optimizer updates in cache-sized blocks, the blocks split over threads; Adam and SGD compiled.

An update is a chain of elementwise passes (Adam's is nine). Over a whole large parameter
each pass reads and writes main memory; over a block that fits in cache the arrays and the
temporaries stay there between passes. ``adam_update`` and ``sgd_update`` go further: one
compiled loop reads each element of the arrays once and writes the results, with no
temporaries at all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial

import numpy as np

from chainrule.kernels import jit, threads
from chainrule.kernels.jit import prange

# Elements per block of a blocked update (see docs/kernels.md for the sizes compared).
UPDATE_BLOCK = 1 << 18


def blocked_update(update: Callable[..., None], *arrays: np.ndarray) -> None:
    """Call ``update(*views)`` so that together the views cover ``arrays`` (of one shape).

    Large C-contiguous arrays go in flat cache-sized blocks, the blocks split over threads;
    anything else in one call with the arrays themselves. ``update`` must work elementwise
    and in place, so that blocks give the same bits as one call.
    """
    size = arrays[0].size
    if size < threads.MIN_ELEMENTS or not all(a.flags.c_contiguous for a in arrays):
        update(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]  # views: the arrays are contiguous

    def run(lo: int, hi: int) -> None:
        for start in range(lo, hi, UPDATE_BLOCK):
            stop = min(start + UPDATE_BLOCK, hi)
            update(*[f[start:stop] for f in flat])

    threads.over_batch(size, run, size)


def blocked_update_reference(update: Callable[..., None], *arrays: np.ndarray) -> None:
    """Call ``update(*arrays)`` once, on the whole arrays."""
    update(*arrays)


# ----------------------------------------------------------------------------- Adam, AdamW
def _adam_rule(lr: float, beta1: float, beta2: float, eps: float, weight_decay: float,
               decoupled: bool, step_size: float, bias_correction2: float,
               param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
               exp_avg_sq: np.ndarray) -> None:
    """One Adam step of ``param`` and its averages in place, in NumPy passes: step_size =
    lr / (1 - beta1**t), bias_correction2 = sqrt(1 - beta2**t). Elementwise, so it may run
    block by block. Python floats keep float32 arithmetic in float32 (weak scalars)."""
    if weight_decay != 0:
        if decoupled:
            param *= 1 - lr * weight_decay
        else:
            decayed = param * weight_decay  # a new array: p.grad is left as it was
            decayed += grad
            grad = decayed
    # One temporary serves every intermediate below (out= and in-place ops).
    tmp = np.empty_like(param)
    # m moves (1 - beta1) of the way towards g: torch's lerp form of the average.
    np.subtract(grad, exp_avg, out=tmp)
    tmp *= 1 - beta1
    exp_avg += tmp
    np.multiply(grad, grad, out=tmp)
    tmp *= 1 - beta2
    exp_avg_sq *= beta2
    exp_avg_sq += tmp
    np.sqrt(exp_avg_sq, out=tmp)
    tmp /= bias_correction2
    tmp += eps
    np.divide(exp_avg, tmp, out=tmp)
    tmp *= -step_size
    param += tmp


def _adam_corrections(lr: float, beta1: float, beta2: float, step: int) -> tuple[float, float]:
    """(step_size, bias_correction2) = (lr / (1 - beta1**t), sqrt(1 - beta2**t)), t = step."""
    return lr / (1 - beta1**step), math.sqrt(1 - beta2**step)


def adam_update_reference(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                          exp_avg_sq: np.ndarray, lr: float, beta1: float, beta2: float,
                          eps: float, weight_decay: float, decoupled: bool, step: int) -> None:
    """Adam's step ``step`` (from 1) in place, as torch.optim.Adam / AdamW: g += wd p (L2)
    or p *= 1 - lr wd (decoupled); m += (1 - beta1) (g - m); v = beta2 v + (1 - beta2) g²;
    p -= lr / (1 - beta1^t) m / (sqrt(v) / sqrt(1 - beta2^t) + eps). NumPy passes, one call."""
    step_size, bias_correction2 = _adam_corrections(lr, beta1, beta2, step)
    _adam_rule(lr, beta1, beta2, eps, weight_decay, decoupled, step_size, bias_correction2,
               param, grad, exp_avg, exp_avg_sq)


def _adam_update_blocked(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                         exp_avg_sq: np.ndarray, lr: float, beta1: float, beta2: float,
                         eps: float, weight_decay: float, decoupled: bool, step: int) -> None:
    """The reference's passes through ``blocked_update``: its bits, in cache-sized blocks
    (what runs where the compiled loop cannot: NumPy chosen, another dtype, strided arrays)."""
    rule = partial(_adam_rule, lr, beta1, beta2, eps, weight_decay, decoupled,
                   *_adam_corrections(lr, beta1, beta2, step))
    blocked_update(rule, param, grad, exp_avg, exp_avg_sq)


@jit.loops(threads=True)
def _adam_loops(param, grad, exp_avg, exp_avg_sq, lr, beta1, beta2, eps,
                weight_decay, mode, step_size, bias_correction2):
    """The reference's maths per element, in its order and in param's dtype, so its bits;
    mode 0: no weight decay, 1: decoupled (AdamW), 2: L2 (added to g)."""
    t = param.dtype.type
    keep, decay = t(1 - lr * weight_decay), t(weight_decay)
    towards, fade, rest = t(1 - beta1), t(beta2), t(1 - beta2)
    correction, tiny, step = t(bias_correction2), t(eps), t(-step_size)
    for i in prange(param.size):
        p, g = param[i], grad[i]
        if mode == 1:
            p = p * keep
        elif mode == 2:
            g = p * decay + g
        m = exp_avg[i] + (g - exp_avg[i]) * towards
        v = exp_avg_sq[i] * fade + (g * g) * rest
        exp_avg[i], exp_avg_sq[i] = m, v
        param[i] = p + (m / (np.sqrt(v) / correction + tiny)) * step


@jit.kernel(_adam_loops, _adam_update_blocked)
def adam_update(param: np.ndarray, grad: np.ndarray, exp_avg: np.ndarray,
                exp_avg_sq: np.ndarray, lr: float, beta1: float, beta2: float, eps: float,
                weight_decay: float, decoupled: bool, step: int) -> None:
    """adam_update_reference's step in one compiled loop over the flat arrays, in place: the
    reference's bits. Arrays that are not all C-contiguous of one shape go through the
    reference's passes in blocks."""
    arrays = (param, grad, exp_avg, exp_avg_sq)
    if not all(a.flags.c_contiguous and a.shape == param.shape for a in arrays):
        _adam_update_blocked(*arrays, lr, beta1, beta2, eps, weight_decay, decoupled, step)
        return
    mode = 0 if weight_decay == 0 else 1 if decoupled else 2
    # One thread: split over two (over_batch) an 800k-element AdamW step took 0.53 ms where
    # one loop took 0.45, the loop being bound by memory.
    _adam_loops(*(a.reshape(-1) for a in arrays), float(lr), float(beta1), float(beta2),
                float(eps), float(weight_decay), mode, *_adam_corrections(lr, beta1, beta2, step))


# ----------------------------------------------------------------------------- SGD
def _sgd_rule(lr: float, momentum: float, dampening: float, weight_decay: float,
              nesterov: bool, first: bool, param: np.ndarray, grad: np.ndarray,
              *buffer: np.ndarray) -> None:
    """One SGD step of ``param`` in place (with its momentum ``buffer`` if momentum > 0), in
    NumPy passes; ``first`` is the buffer's first step. Elementwise, so it may run block by
    block. Python floats keep float32 arithmetic in float32 (weak scalars)."""
    direction = grad
    if weight_decay != 0:
        direction = param * weight_decay  # a new array: p.grad is left as it was
        direction += grad
    if buffer:
        (buf,) = buffer
        if first:
            # As in torch, the buffer starts as the first gradient, undamped.
            buf[...] = direction
        else:
            buf *= momentum
            buf += direction if dampening == 0 else direction * (1 - dampening)
        if nesterov:
            look_ahead = buf * momentum
            look_ahead += direction
            direction = look_ahead
        else:
            direction = buf
    param += direction * -lr


def sgd_update_reference(param: np.ndarray, grad: np.ndarray, buf: np.ndarray | None,
                         lr: float, momentum: float, dampening: float, weight_decay: float,
                         nesterov: bool, first: bool) -> None:
    """torch.optim.SGD's step in place: g += wd p; with a momentum buffer (None without
    momentum) buf = g on the ``first`` step, else momentum buf + (1 - dampening) g; the
    direction is buf, or g + momentum buf with Nesterov; p -= lr direction. One call."""
    _sgd_rule(lr, momentum, dampening, weight_decay, nesterov, first, param, grad,
              *(() if buf is None else (buf,)))


def _sgd_update_blocked(param: np.ndarray, grad: np.ndarray, buf: np.ndarray | None,
                        lr: float, momentum: float, dampening: float, weight_decay: float,
                        nesterov: bool, first: bool) -> None:
    """The reference's passes through ``blocked_update``: its bits, in cache-sized blocks."""
    rule = partial(_sgd_rule, lr, momentum, dampening, weight_decay, nesterov, first)
    blocked_update(rule, param, grad, *(() if buf is None else (buf,)))


#: Parameters with fewer elements take the NumPy passes: plain SGD is one or two of them,
#: cheaper than the call into the compiled loop (a small MLP's biases, say).
SGD_MIN_SIZE = 1 << 12


@jit.loops(threads=True)
def _sgd_loops(param, grad, buf, lr, momentum, dampening, weight_decay, nesterov, first):
    """The reference's maths per element, in its order and in param's dtype: its bits."""
    t = param.dtype.type
    decay, keep, damped, step = t(weight_decay), t(momentum), t(1 - dampening), t(-lr)
    for i in prange(param.size):
        d = grad[i]
        if weight_decay != 0:
            d = param[i] * decay + d
        if buf is not None:
            if first:
                b = d
            elif dampening == 0:
                b = buf[i] * keep + d
            else:
                b = buf[i] * keep + d * damped
            buf[i] = b
            d = b * keep + d if nesterov else b
        param[i] = param[i] + d * step


@jit.kernel(_sgd_loops, _sgd_update_blocked)
def sgd_update(param: np.ndarray, grad: np.ndarray, buf: np.ndarray | None, lr: float,
               momentum: float, dampening: float, weight_decay: float, nesterov: bool,
               first: bool) -> None:
    """sgd_update_reference's step in one compiled loop over the flat arrays, in place: the
    reference's bits. Small arrays, and arrays that are not all C-contiguous of one shape,
    go through the reference's passes (in blocks)."""
    arrays = (param, grad) if buf is None else (param, grad, buf)
    if param.size < SGD_MIN_SIZE or not all(a.flags.c_contiguous and a.shape == param.shape
                                            for a in arrays):
        _sgd_update_blocked(param, grad, buf, lr, momentum, dampening, weight_decay,
                            nesterov, first)
        return
    _sgd_loops(param.reshape(-1), grad.reshape(-1), None if buf is None else buf.reshape(-1),
               float(lr), float(momentum), float(dampening), float(weight_decay),
               bool(nesterov), bool(first))
