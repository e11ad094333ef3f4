"""Finite-difference gradient checks: does backward agree with the slope of forward?

For a random output weighting u, the scalar L(x) = sum(u * f(x)) has gradient
dL/dx = backward(u). Central differences estimate the same quantity, along every element
(full mode) or a few random directions (random mode), with the engine and the tolerance rule
that ``check`` uses too (``finite_differences``). Run in float64: in float32 the difference
quotient loses about half its digits.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.check.comparison import (
    BACKWARD_HINT,
    FORWARD_HINT,
    first_index,
    nonfinite_message,
    unchecked_message,
    validate_settings,
)
from chainrule.check.finite_differences import agreement, direction_slopes, element_slopes
from chainrule.engine.function import DtypeMismatchError
from chainrule.engine.tensor import Tensor
from chainrule.nn.module import Module


class GradcheckError(AssertionError):
    """A gradient disagrees with finite differences; the message says where and by how much."""


@dataclass
class GradcheckResult:
    """What a check compared: the worst relative error per input (None for untested inputs,
    including empty ones); never NaN, since a check that cannot give a number fails."""

    mode: str
    worst_error: list[float | None] = field(default_factory=list)


def _scalar(fn: Callable[..., Any], arrays: Sequence[Any], weights: np.ndarray) -> float:
    inputs = [Tensor(a) if isinstance(a, np.ndarray) else a for a in arrays]
    out = fn(*inputs)
    with np.errstate(all="ignore"):  # a NaN/inf here is judged by the comparison
        return float(np.sum(weights * (out.data if isinstance(out, Tensor) else out)))


def _positions(wrt: Any, arrays: list[Any]) -> list[int]:
    """The input positions ``wrt`` names, each an existing floating array."""
    floats = [i for i, a in enumerate(arrays) if isinstance(a, np.ndarray) and a.dtype.kind == "f"]
    if wrt is None:
        return floats
    if isinstance(wrt, (int, np.integer, str)) or not isinstance(wrt, Sequence):
        raise TypeError(f"gradcheck: wrt must be a list of input positions, e.g. wrt=[0], got "
                        f"{wrt!r}")
    chosen: list[int] = []
    for i in wrt:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"gradcheck: wrt={list(wrt)} holds {i!r}; give input positions as "
                            "integers")
        if not -len(arrays) <= i < len(arrays):
            raise IndexError(f"gradcheck: wrt={list(wrt)} names input {i}, but there are "
                             f"{len(arrays)} input(s)")
        i = int(i) % len(arrays)
        if i not in floats:
            raise TypeError(f"gradcheck: wrt names input {i}, which is not a floating array "
                            f"(floating inputs: {floats})")
        if i not in chosen:
            chosen.append(i)
    return chosen


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], mode: str = "auto",
              eps: float = 1e-6, rtol: float = 1e-5, atol: float = 1e-7,
              wrt: Sequence[int] | None = None, directions: int = 3,
              seed: int = 0, full_limit: int = 64) -> GradcheckResult:
    """Compare ``fn``'s backward with central differences of its forward.

    ``inputs`` are arrays (or non-array constants passed through); floating arrays listed in
    ``wrt`` (all floating ones by default) get gradients. ``mode`` is 'random' (a few random
    directions per input, cheap), 'full' (every element: the whole Jacobian-vector product),
    or 'auto' (full when an input has at most ``full_limit`` elements). Raises GradcheckError
    naming the input and element that disagree, for a NaN/inf gradient, for a forward that is
    not finite at the inputs, and when nothing could be compared (no non-empty floating
    input). Floating inputs are taken at float64; a Module ``fn`` runs as a float64 copy, so
    its parameters and their gradients are left untouched.
    """
    if mode not in ("auto", "full", "random"):
        raise ValueError(f"gradcheck: mode must be 'auto', 'full' or 'random', got {mode!r}")
    validate_settings("gradcheck", positive=("eps", "directions"), rtol=rtol, atol=atol,
                      eps=eps, directions=directions, full_limit=full_limit)
    if isinstance(directions, float) or isinstance(full_limit, float):
        raise TypeError("gradcheck: directions and full_limit are counts; give whole numbers")
    rng = np.random.default_rng(seed)
    if isinstance(fn, Module):
        fn = copy.deepcopy(fn)
        for param in fn.parameters():
            param.data = param.data.astype(np.float64)
    arrays = [np.asarray(a.data if isinstance(a, Tensor) else a)
              if isinstance(a, (np.ndarray, list, Tensor)) else a for a in inputs]
    arrays = [a.astype(np.float64) if isinstance(a, np.ndarray) and a.dtype.kind == "f" else a
              for a in arrays]
    given = wrt
    wrt = _positions(wrt, arrays)
    checked = [i for i in wrt if arrays[i].size > 0]
    if wrt and not checked:
        raise GradcheckError(f"gradcheck: nothing was checked: every input it was to check is "
                             f"empty (shapes {[arrays[i].shape for i in wrt]}); give inputs "
                             "with at least one element")
    if not wrt:
        raise GradcheckError(
            "gradcheck: nothing was checked: "
            + (f"wrt={list(given)} names no input; name the floating inputs to check, or "
               "leave wrt out" if given is not None else
               "no input is a floating array (integer inputs take no gradient); give the "
               "inputs that take a gradient as float arrays (e.g. x.astype(float))"))
    tensors = [Tensor(a, requires_grad=(i in wrt)) if isinstance(a, np.ndarray) else a
               for i, a in enumerate(arrays)]
    try:
        out = fn(*tensors)
    except DtypeMismatchError as error:
        # Inputs are taken to float64 here, and layers a closure reaches are not.
        raise DtypeMismatchError(
            f"gradcheck: {error}. gradcheck runs in float64: pass the Module itself (it is "
            "checked as a float64 copy), or build the layers with dtype=np.float64") from error
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    _check_output(out.data)
    weights = rng.standard_normal(out.shape)
    if out.requires_grad:
        out.backward(weights.astype(out.dtype))
    result = GradcheckResult(mode=mode, worst_error=[None] * len(arrays))
    for i in checked:
        x = arrays[i]
        analytic = tensors[i].grad if tensors[i].grad is not None else np.zeros_like(x)
        analytic = np.asarray(analytic, dtype=np.float64)
        if analytic.shape != x.shape:
            raise GradcheckError(f"gradient of input {i} has shape {analytic.shape}, but the "
                                 f"input has shape {x.shape}")
        use_full = mode == "full" or (mode == "auto" and x.size <= full_limit)

        def loss_at(shifted: np.ndarray, i: int = i) -> float:
            return _scalar(fn, arrays[:i] + [shifted] + arrays[i + 1:], weights)

        if use_full:
            result.worst_error[i] = _full(loss_at, x, analytic, i, eps, rtol, atol)
        else:
            result.worst_error[i] = _random(loss_at, x, analytic, i, rng, eps, rtol, atol,
                                            directions)
    return result


def _check_output(out: np.ndarray) -> None:
    """Refuse an output that finite differences cannot be taken of."""
    # An empty output is allowed: the gradient of a non-empty input must still come back as
    # zeros of its shape (an empty slice, say), and that is compared.
    bad = ~np.isfinite(out)
    if bad.any():
        raise GradcheckError(
            f"gradcheck: the check could not be made: the forward gives NaN/inf at these "
            f"inputs ({int(bad.sum())} of {out.size} output elements, first at "
            f"{first_index(bad)}). {FORWARD_HINT}")


def _full(loss_at: Callable[[np.ndarray], float], x: np.ndarray, analytic: np.ndarray,
          i: int, eps: float, rtol: float, atol: float) -> float:
    """Every element's slope against backward; the worst relative error."""
    verdict = agreement(element_slopes(loss_at, x, eps).values, analytic, rtol, atol)
    what = f"the gradient of input {i} (shape {x.shape})"
    if verdict.nonfinite.any():
        raise GradcheckError(nonfinite_message(what, analytic, verdict.nonfinite,
                                               verdict.reference, "finite differences")
                             + f". {BACKWARD_HINT}")
    if verdict.mismatch.any():
        j = first_index(verdict.mismatch)
        raise GradcheckError(
            f"gradient of input {i} (shape {x.shape}) disagrees with finite differences "
            f"at element {j}: finite differences give {verdict.reference[j]:.8g}, backward "
            f"gives {analytic[j]:.8g} ({int(verdict.mismatch.sum())} of {x.size} elements "
            "differ)")
    if verdict.unchecked.any():
        raise GradcheckError(unchecked_message(what, verdict.reference, verdict.unchecked,
                                               "finite differences")
                             + ": the forward is not finite right next to these inputs; "
                             "move them away from where it blows up")
    return verdict.max_rel


def _random(loss_at: Callable[[np.ndarray], float], x: np.ndarray, analytic: np.ndarray,
            i: int, rng: np.random.Generator, eps: float, rtol: float, atol: float,
            directions: int) -> float:
    """A few random directional derivatives against backward's; the worst relative error."""
    numeric, along = direction_slopes(loss_at, x, analytic, rng, eps, directions)
    verdict = agreement(numeric, along, rtol, atol)
    for k in range(directions):  # the first direction that fails is the one reported
        if verdict.unchecked[k]:
            raise GradcheckError(
                f"could not check the gradient of input {i} (shape {x.shape}): finite "
                f"differences along a random direction give {numeric[k]}: the forward is not "
                "finite right next to these inputs; move them away from where it blows up")
        if verdict.nonfinite[k]:  # the NaN/inf elements are known without more slopes
            raise GradcheckError(nonfinite_message(
                f"the gradient of input {i} (shape {x.shape})", analytic) + f". {BACKWARD_HINT}")
        if verdict.mismatch[k]:
            raise GradcheckError(
                f"gradient of input {i} (shape {x.shape}) disagrees with finite "
                f"differences along a random direction: the slope along that (unit) "
                f"direction is {numeric[k]:.8g} by finite differences, {along[k]:.8g} by "
                "backward")
    return verdict.max_rel
