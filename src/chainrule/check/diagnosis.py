"""``diagnose``: name the known mistake that turns a true gradient into the one backward gave.

The patterns, checked in this order: a NaN/inf (or a reference that is itself NaN/inf, so
nothing can be said), a wrong shape (transposed, or a missing sum over a broadcast axis), a
gradient assigned several times in bwd where the uses should have been added up, zeros, a
transposed square gradient, a wrong sign, and a constant factor (a 2, a mean's 1/n).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from chainrule.check.comparison import (
    BACKWARD_HINT,
    FORWARD_HINT,
    compare,
    nonfinite_message,
    unchecked_message,
)
from chainrule.engine.backend import unbroadcast


def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    """``a`` agrees with the reference ``b`` everywhere (NaN/inf never agree)."""
    return a.shape == b.shape and compare(b, a, rtol, atol).ok


def diagnose(expected: np.ndarray, got: np.ndarray, writes: Sequence[np.ndarray] = (),
             rtol: float = 1e-4, atol: float = 1e-7, *, name: str | None = None) -> str:
    """Name the known mistake that turns the true gradient ``expected`` into ``got``.

    ``name`` (an input or parameter) goes into the text. A NaN/inf in ``got`` where
    ``expected`` is finite is named first, ahead of every other pattern; an ``expected`` that
    is itself NaN/inf means the gradient could not be checked, and the text says so.
    """
    expected = np.asarray(expected, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    what = f"the gradient of {name}" if name else "the gradient"
    if got.shape == expected.shape:
        verdict = compare(expected, got, rtol, atol)
        if verdict.nonfinite.any():
            return _nonfinite_advice(nonfinite_message(
                what, got, verdict.nonfinite, expected, "the true gradient"))
        if verdict.unchecked.any():
            return _unchecked_advice(unchecked_message(what, expected, verdict.unchecked,
                                                       "the true gradient"))
    elif not np.isfinite(got).all():
        return (_nonfinite_advice(nonfinite_message(what, got)) + " Also: "
                + _diagnose_shape(expected, got, rtol, atol))
    elif not np.isfinite(expected).all():
        return _unchecked_advice(unchecked_message(what, expected, None, "the true gradient"))
    atol = max(atol, 1e-6 * float(np.max(np.abs(expected), initial=0.0)))
    if got.shape != expected.shape:
        return _diagnose_shape(expected, got, rtol, atol)
    if len(writes) > 1:
        total = np.sum([np.asarray(w, dtype=np.float64) for w in writes], axis=0)
        if total.shape == expected.shape and _close(total, expected, rtol, atol):
            return (f".g was assigned {len(writes)} times in bwd and only the last value "
                    "stayed: a tensor used twice gets the sum of the gradients of its uses. "
                    "Add them (inp.g = inp.g + ...) instead of overwriting.")
    if np.any(expected) and not np.any(got):
        return ("backward gives zeros: is the input used in forward, and does bwd set its "
                ".g (or backward return its gradient)?")
    if got.ndim == 2 and got.shape[0] == got.shape[1] and _close(got.T, expected, rtol, atol):
        return ("the gradient is transposed. For y = x @ W: dW = x.T @ dy and dx = dy @ W.T; "
                "check which side each factor goes on.")
    with np.errstate(over="ignore", invalid="ignore"):
        squared = float(np.sum(expected * expected))
        factor = float(np.sum(got * expected)) / squared if squared > 0 else np.nan
    scaled = (np.isfinite(squared) and np.isfinite(factor) and abs(factor - 1) > 1e-3
              and _close(got, factor * expected, rtol, atol))
    if scaled and abs(factor + 1) < 1e-3:
        return ("wrong sign: backward gives exactly minus the gradient. Check the sign of each "
                "term (d(a - b)/db = -1).")
    if scaled:
        return (f"off by a constant factor: backward is {factor:.6g} times the true "
                f"gradient{_factor_hint(factor)}.")
    return ("no known pattern. Re-derive this gradient step by step, starting at the element "
            "named above.")


def _nonfinite_advice(text: str) -> str:
    return f"{text}. {BACKWARD_HINT}"


def _unchecked_advice(text: str) -> str:
    return f"{text}. {FORWARD_HINT}"


def _diagnose_shape(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> str:
    if got.ndim == 2 and got.shape == expected.shape[::-1]:
        return (f"the gradient is transposed: it has shape {got.shape}, the input "
                f"{expected.shape}. For y = x @ W, dW = x.T @ dy (not dy.T @ x).")
    try:
        summed = unbroadcast(got, expected.shape)
    except (ValueError, IndexError):
        summed = None
    if summed is None or summed.shape != expected.shape:
        return f"the gradient has shape {got.shape}, but the input has shape {expected.shape}."
    extra = got.ndim - expected.ndim
    axes = list(range(extra)) + [extra + i for i, n in enumerate(expected.shape)
                                 if n == 1 and got.shape[extra + i] != 1]
    named = ("axis " if len(axes) == 1 else "axes ") + ", ".join(map(str, axes))
    verdict = (f"summed over {named} it is right" if _close(summed, expected, rtol, atol)
               else f"sum it over {named}")
    return (f"missing sum over a broadcast axis: the gradient has shape {got.shape}, the input "
            f"{expected.shape} was broadcast to it in forward; {verdict} "
            "(e.g. b.g = out.g.sum(0)).")


def _factor_hint(factor: float) -> str:
    if abs(factor - 2) < 1e-3:
        return "; a 2 too many, or a missing 1/2"
    if abs(factor - 0.5) < 1e-3:
        return "; a missing 2, like the 2 in d(x^2)/dx = 2x (mse's 2 (x - y) / n)"
    n = round(factor)
    if n >= 3 and abs(factor - n) < 1e-3:
        return f"; a mean's 1/n missing (n = {n})?"
    if factor > 0 and round(1 / factor) >= 3 and abs(1 / factor - round(1 / factor)) < 1e-3:
        return f"; divided by {round(1 / factor)} once too often (a mean's 1/n twice?)"
    return ""
