"""The one element-by-element comparison behind every check: a value under test (a backward
pass, chainrule's result) against its reference (finite differences, autograd, torch).

``x <= tolerance`` is False when x is NaN, so a comparison written as "fail where the error is
too big" passes a NaN gradient. Here every element falls in exactly one bin instead:

- agrees: both finite and within tolerance, or (for an exact reference) the same infinity;
- mismatch: both finite and beyond tolerance (or a finite value against an exact infinity);
- nonfinite: NaN or +/-inf under test where the reference is finite: always wrong;
- unchecked: the reference itself is NaN (or, for finite differences, infinite), so that
  element could not be checked: a failure too, never a pass.

Equal infinities agree only for an exact reference (``exact_inf=True``, e.g. torch: both
giving -inf for log(0) is the same answer). A finite-difference quotient that is infinite
only says the forward overflowed near the input, so nothing was learnt there. NaN never
agrees with NaN: it is not a value, and two computations failing alike verifies nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["BACKWARD_HINT", "FORWARD_HINT", "Comparison", "compare", "first_index",
           "nonfinite_message", "unchecked_message", "validate_settings"]

# What to do about each kind of non-finite value, for the end of a message.
BACKWARD_HINT = ("The true gradient is finite there, so backward produced it: look for a "
                 "division by zero, a log or sqrt of a value <= 0, or an exp that overflows.")
FORWARD_HINT = ("The forward is not finite at or right next to these inputs: choose inputs "
                "where it is finite (for log or sqrt, positive ones).")


@dataclass(frozen=True)
class Comparison:
    """Where a value under test departs from its reference; every mask has the reference's
    shape and every element is in at most one of them (in none when it agrees)."""

    reference: np.ndarray
    got: np.ndarray
    mismatch: np.ndarray  # both finite (or an exact infinity) and beyond tolerance
    nonfinite: np.ndarray  # NaN/inf under test where the reference is finite
    unchecked: np.ndarray  # the reference is not usable there: nothing to compare with
    max_abs: float  # largest |got - reference|; inf when any element is nonfinite/unchecked
    max_rel: float  # largest |got - reference| / max(|reference|, 1); inf likewise

    @property
    def wrong(self) -> np.ndarray:
        """Elements known to be wrong: a mismatch or a NaN/inf under test."""
        return self.mismatch | self.nonfinite

    @property
    def ok(self) -> bool:
        """True when every element agrees (an empty comparison is ok: count ``compared``)."""
        return not (self.mismatch.any() or self.nonfinite.any() or self.unchecked.any())

    @property
    def size(self) -> int:
        """How many elements there are."""
        return int(self.reference.size)

    @property
    def compared(self) -> int:
        """How many elements were actually compared (those with a usable reference)."""
        return self.size - int(self.unchecked.sum())

    def where(self) -> tuple[int, ...] | None:
        """The element ``describe`` talks about: the first NaN/inf under test, else the first
        mismatch, else the first unchecked element; None when ok."""
        for mask in (self.nonfinite, self.mismatch, self.unchecked):
            if mask.any():
                return first_index(mask)
        return None

    def describe(self, what: str, reference: str = "the reference",
                 tested: str = "the value under test") -> str:
        """One sentence on the disagreement at ``where()`` ('' when ok), naming ``what``."""
        if self.nonfinite.any():
            return nonfinite_message(what, self.got, self.nonfinite, self.reference, reference)
        if self.mismatch.any():
            j = first_index(self.mismatch)
            return (f"{what} differs from {reference} at {int(self.mismatch.sum())} of "
                    f"{self.size} elements (first at {j}: {tested} gives "
                    f"{float(self.got[j]):.6g}, {reference} {float(self.reference[j]):.6g})")
        if self.unchecked.any():
            return unchecked_message(what, self.reference, self.unchecked, reference)
        return ""


def compare(reference: Any, got: Any, rtol: float, atol: float, *, scale: float | None = None,
            exact_inf: bool = False) -> Comparison:
    """Compare ``got`` with ``reference`` element by element, NaN and inf included.

    An element agrees when ``|got - reference| <= atol + rtol * |reference|`` (or
    ``atol + rtol * scale`` when one ``scale`` is given for the whole tensor). A NaN/inf in
    ``got`` where the reference is finite is always wrong. ``exact_inf`` says whether an
    infinite reference is a true value to match (a torch result) or, by default, a sign that
    the reference could not be computed there (finite differences). Shapes must be equal.
    """
    validate_settings("compare", rtol=rtol, atol=atol,
                      **({} if scale is None else {"scale": scale}))
    reference = np.asarray(reference, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    if reference.shape != got.shape:
        raise ValueError(f"compare: the reference has shape {reference.shape} but the value "
                         f"under test {got.shape}; compare arrays of the same shape")
    ref_finite, got_finite = np.isfinite(reference), np.isfinite(got)
    both = ref_finite & got_finite
    with np.errstate(over="ignore", invalid="ignore"):
        gap = np.where(both, np.abs(got - reference), 0.0)
        bound = atol + rtol * (np.abs(reference) if scale is None else scale)
    mismatch = both & ~(gap <= bound)  # "not <=": an overflow to inf or NaN is beyond it
    if exact_inf:
        infinite = np.isinf(reference)
        same = infinite & (got == reference)
        unchecked = np.isnan(reference)
        mismatch |= infinite & got_finite  # torch says inf, we give a number: a disagreement
        nonfinite = ~got_finite & ~same & ~unchecked
    else:
        unchecked = ~ref_finite
        nonfinite = ref_finite & ~got_finite
    if nonfinite.any() or unchecked.any() or (mismatch & ~both).any():
        max_abs = max_rel = float("inf")
    else:
        max_abs = float(gap.max(initial=0.0))
        with np.errstate(over="ignore", invalid="ignore"):
            relative = gap / np.maximum(np.abs(np.where(both, reference, 0.0)), 1.0)
        max_rel = float(relative.max(initial=0.0))
    return Comparison(reference, got, mismatch, nonfinite, unchecked, max_abs, max_rel)


def validate_settings(where: str, *, positive: tuple[str, ...] = (), **values: Any) -> None:
    """Refuse a tolerance, step or count that would make a check pass vacuously or crash.

    Every value must be a finite real number >= 0 (an infinite atol would pass anything), and
    rtol below 1;
    those named in ``positive`` must be > 0 (eps = 0 divides by zero, directions = 0 compares
    nothing).
    """
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float, np.integer,
                                                             np.floating)):
            raise TypeError(f"{where}: {name} must be a number, got {value!r}")
        if not np.isfinite(value) or value < 0 or (name in positive and value == 0):
            bound = "> 0" if name in positive else ">= 0"
            raise ValueError(f"{where}: {name} must be a finite number {bound}, got {value!r}")
        if name == "rtol" and value >= 1:
            raise ValueError(f"{where}: rtol must be below 1, got {value!r}: a relative "
                             "tolerance of 1 or more lets a gradient twice too large pass")


def first_index(mask: np.ndarray) -> tuple[int, ...]:
    """The first True element of ``mask`` in C order, as a plain tuple of ints."""
    j = int(np.argmax(np.asarray(mask).reshape(-1)))
    return tuple(int(i) for i in np.unravel_index(j, np.shape(mask)))


def nonfinite_message(what: str, got: np.ndarray, mask: np.ndarray | None = None,
                      reference: np.ndarray | None = None,
                      reference_name: str = "the reference") -> str:
    """'NaN/inf in ``what``': how many elements, which kinds, and the first one."""
    got = np.asarray(got, dtype=np.float64)
    mask = ~np.isfinite(got) if mask is None else np.asarray(mask)
    j = first_index(mask)
    kinds = " and ".join(k for k, m in (("NaN", np.isnan(got)), ("inf", np.isinf(got)))
                         if (m & mask).any())
    text = (f"NaN/inf in {what}: {int(mask.sum())} of {got.size} elements are {kinds} "
            f"(first at {j}: {float(got[j])}")
    if reference is not None:
        text += f"; {reference_name}: {float(np.asarray(reference)[j]):.6g}"
    return text + ")"


def unchecked_message(what: str, reference: np.ndarray, mask: np.ndarray | None = None,
                      reference_name: str = "the reference") -> str:
    """Why ``what`` could not be checked: its reference is NaN/inf (how many, the first)."""
    reference = np.asarray(reference, dtype=np.float64)
    mask = ~np.isfinite(reference) if mask is None else np.asarray(mask)
    j = first_index(mask)
    return (f"could not check {what}: NaN/inf in {reference_name} at {int(mask.sum())} of "
            f"{reference.size} elements (first at {j}: {float(reference[j])}), so there is "
            "nothing to compare with there")
