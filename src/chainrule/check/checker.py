"""``check``: verify a Function's or Module's backward pass and say what is wrong with it.

Everything runs at float64 on copies (your module is not touched). Each input and parameter
that takes a gradient is compared with central finite differences of the forward pass; on a
mismatch the report names the input, the element, the two values, and — when the pattern is a
known mistake — a diagnosis: transposed gradient, wrong sign, off by a constant factor,
missing sum over a broadcast axis, a gradient overwritten instead of added up, or zeros.

Points where the forward is not differentiable (relu at 0, ties in max) make finite
differences meaningless there. ``check`` notices such a kink (the left and right slopes
differ) and redraws the inputs a little away from it, so it does not fail for that reason.
"""

from __future__ import annotations

import copy
import inspect
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.backend import unbroadcast
from chainrule.function import Context, Function
from chainrule.nn.module import GradientShapeError, Module, watch_g_writes
from chainrule.tensor import Tensor, no_grad


class GradientCheckError(AssertionError):
    """A backward pass disagrees with finite differences; the message says where and why."""


@dataclass
class Mismatch:
    """One wrong gradient: where it is, how wrong, and the likely mistake."""

    name: str
    shape: tuple[int, ...]
    element: tuple[int, ...] | None
    expected: float
    got: float
    wrong: int
    diagnosis: str

    def describe(self) -> str:
        """A paragraph a learner can act on."""
        if self.element is None:
            text = f"gradient of {self.name} (shape {self.shape}) is wrong"
        else:
            text = (f"gradient of {self.name} (shape {self.shape}) is wrong at element "
                    f"{self.element}: finite differences give {self.expected:.6g}, backward "
                    f"gives {self.got:.6g} ({self.wrong} of {int(np.prod(self.shape))} "
                    "elements differ)")
        return f"  {text}.\n    Diagnosis: {self.diagnosis}"


@dataclass
class CheckReport:
    """What ``check`` compared and found; ``str(report)`` reads as a summary."""

    target: str
    worst_error: dict[str, float] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when every gradient agreed."""
        return not self.mismatches

    def __str__(self) -> str:
        if self.passed:
            count = len(self.worst_error)
            lines = [f"check {self.target}: OK, {count} gradient{'s' if count != 1 else ''} "
                     f"agree{'s' if count == 1 else ''} with finite differences"]
            lines += [f"  {name}: largest error {error:.1e}"
                      for name, error in self.worst_error.items()]
        else:
            lines = [f"check {self.target}: FAILED"] + [m.describe() for m in self.mismatches]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


# ----------------------------------------------------------------------------- diagnosis
def _close(a: np.ndarray, b: np.ndarray, rtol: float, atol: float) -> bool:
    return a.shape == b.shape and bool(np.all(np.abs(a - b) <= atol + rtol * np.abs(b)))


def diagnose(expected: np.ndarray, got: np.ndarray, writes: Sequence[np.ndarray] = (),
             rtol: float = 1e-4, atol: float = 1e-7) -> str:
    """Name the known mistake that turns the true gradient ``expected`` into ``got``."""
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
    squared = float(np.sum(expected * expected))
    if squared > 0:
        factor = float(np.sum(got * expected)) / squared
        if abs(factor - 1) > 1e-3 and _close(got, factor * expected, rtol, atol):
            if abs(factor + 1) < 1e-3:
                return ("wrong sign: backward gives exactly minus the gradient. Check the "
                        "sign of each term (d(a - b)/db = -1).")
            return (f"off by a constant factor: backward is {factor:.6g} times the true "
                    f"gradient{_factor_hint(factor)}.")
    return ("no known pattern. Re-derive this gradient step by step, starting at the element "
            "named above.")


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


# ----------------------------------------------------------------------------- runners
@dataclass
class _Slot:
    """Something that gets a gradient: an input or a parameter."""

    name: str
    read: Callable[[], np.ndarray]
    write: Callable[[np.ndarray], None]


class _FunctionRunner:
    """Calls a Function's forward and backward directly, on arrays, bypassing the engine:
    so a gradient of the wrong shape is seen as the user wrote it."""

    def __init__(self, fn: type[Function], arrays: list[Any], attrs: dict[str, Any],
                 wrt: set[int]) -> None:
        self.fn, self.arrays, self.attrs, self.wrt = fn, arrays, attrs, wrt
        names = _positional_names(fn.forward, len(arrays), skip=1)
        self.slots = [_Slot(names[i], lambda i=i: self.arrays[i],
                            lambda v, i=i: self.arrays.__setitem__(i, v))
                      for i in sorted(wrt)]

    def output(self) -> np.ndarray:
        return np.asarray(self.fn.forward(Context(), *self.arrays, **self.attrs))

    def gradients(self, weights: np.ndarray) -> dict[str, tuple[Any, list]]:
        ctx = Context()
        ctx.needs_input_grad = tuple(i in self.wrt for i in range(len(self.arrays)))
        self.fn.forward(ctx, *self.arrays, **self.attrs)
        result = self.fn.backward(ctx, weights)
        if not isinstance(result, tuple):
            result = (result,)
        if len(result) != len(self.arrays):
            raise GradientCheckError(
                f"check {self.fn.__name__}: backward returned {len(result)} gradients for "
                f"{len(self.arrays)} inputs; return one per input (None for no gradient)")
        names = _positional_names(self.fn.forward, len(self.arrays), skip=1)
        return {names[i]: (g, []) for i, g in enumerate(result) if i in self.wrt}


class _ModuleRunner:
    """Runs a float64 copy of a Module through the engine; watches hand-written ``.g``."""

    def __init__(self, module: Module, arrays: list[Any], wrt: set[int]) -> None:
        self.module, self.arrays, self.wrt = copy.deepcopy(module), arrays, wrt
        self.params = list(self.module.named_parameters())
        for _, p in self.params:
            p.data = p.data.astype(np.float64)
        names = _positional_names(self.module.forward, len(arrays), skip=0)
        self.slots = [_Slot(names[i], lambda i=i: self.arrays[i],
                            lambda v, i=i: self.arrays.__setitem__(i, v))
                      for i in sorted(wrt)]
        self.slots += [_Slot(name, lambda p=p: p.data, lambda v, p=p: setattr(p, "data", v))
                       for name, p in self.params]

    def slot_for(self, what: str) -> _Slot:
        """The slot HandWritten calls ``what`` ('argument 0' or a parameter's name)."""
        if what.startswith("argument "):
            index = int(what.split()[1])
            return next(s for s in self.slots if s.name.startswith(f"input {index}"))
        return next(s for s in self.slots if s.name == what)

    def output(self) -> np.ndarray:
        with no_grad():
            out = self.module(*self._tensors(grad=False))
        return np.asarray(out.data if isinstance(out, Tensor) else out)

    def _tensors(self, grad: bool) -> list[Any]:
        return [Tensor(x, requires_grad=grad and _is_float(x)) if isinstance(x, np.ndarray)
                else x for x in self.arrays]

    def gradients(self, weights: np.ndarray) -> dict[str, tuple[Any, list]]:
        tensors = [Tensor(x, requires_grad=i in self.wrt) if isinstance(x, np.ndarray) else x
                   for i, x in enumerate(self.arrays)]
        for _, p in self.params:
            p.grad, p.requires_grad = None, True
        with watch_g_writes(self.module) as writes:
            out = self.module(*tensors)
            out.backward(weights)
        watched_args = self.module.__dict__.pop("_checked_args", [])
        names = _positional_names(self.module.forward, len(self.arrays), skip=0)
        result = {}
        for i, t in enumerate(tensors):
            if isinstance(t, Tensor) and t.requires_grad:
                arg = watched_args[i] if i < len(watched_args) else None
                result[names[i]] = (t.grad, writes.get(id(arg), []))
        for name, p in self.params:
            result[name] = (p.grad, writes.get(id(p), []))
        return result


def _positional_names(forward: Callable, count: int, skip: int) -> list[str]:
    try:
        parameters = list(inspect.signature(forward).parameters.values())[skip:]
    except (TypeError, ValueError):
        parameters = []
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY,
                                                      p.POSITIONAL_OR_KEYWORD)]
    return [f"input {i} ({names[i]})" if i < len(names) else f"input {i}" for i in range(count)]


def _check_count(forward: Callable, count: int, skip: int, what: str) -> None:
    try:
        parameters = list(inspect.signature(forward).parameters.values())[skip:]
    except (TypeError, ValueError):
        return
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY,
                                                      p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if not len(required) <= count <= len(positional):
        wanted = (str(len(required)) if len(required) == len(positional)
                  else f"{len(required)} to {len(positional)}")
        raise TypeError(f"check: {what}.forward takes {wanted} input(s), got {count}")


def _is_float(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype.kind == "f"


def _prepare(inputs: Sequence[Any], what: str) -> list[Any]:
    prepared = []
    for i, x in enumerate(inputs):
        x = x.data if isinstance(x, Tensor) else x
        if isinstance(x, (list, tuple, float, int)):
            x = np.asarray(x, dtype=np.float64 if isinstance(x, float) else None)
        if isinstance(x, np.ndarray):
            if x.dtype.kind not in "fiub":
                raise TypeError(f"check: input {i} of {what} has dtype {x.dtype}; give real "
                                "floating arrays (integer ones pass through without gradient)")
            x = x.astype(np.float64) if x.dtype.kind == "f" else x.copy()
        prepared.append(x)
    return prepared


# ----------------------------------------------------------------------------- check
def check(target: Any, *inputs: Any, wrt: Sequence[int] | None = None, mode: str = "auto",
          seed: int = 0, rtol: float = 1e-5, atol: float = 1e-7, eps: float = 1e-6,
          directions: int = 4, full_limit: int = 2000, raise_on_failure: bool = True,
          torch: bool | None = None, **attrs: Any) -> CheckReport:
    """Verify the backward pass of a Function subclass or a Module instance.

    ``inputs`` are arrays: floating ones get gradients (at float64); integer ones, like class
    labels, pass through; ``wrt`` limits the check to some input positions (e.g. ``wrt=[0]``
    to leave out a float target). Keyword arguments go to a Function's forward. ``mode`` is 'full'
    (every element: finds the wrong one), 'random' (a few random directions: cheap for big
    inputs) or 'auto' (full up to ``full_limit`` elements per input). Raises
    GradientCheckError carrying the report unless ``raise_on_failure`` is False.

    A Module is also compared with its PyTorch twin (``parity_report``) when torch is
    installed and every layer has a converter; ``torch=False`` skips that, ``torch=True``
    insists on it.
    """
    if isinstance(target, type) and issubclass(target, Function):
        what, skip = target.__name__, 1
    elif isinstance(target, Module):
        what, skip = type(target).__name__, 0
    elif isinstance(target, type) and issubclass(target, Module):
        raise TypeError(f"check: {target.__name__} is a Module class; pass an instance, "
                        f"e.g. check({target.__name__}(...), x)")
    else:
        raise TypeError(
            f"check: expected a Function subclass or a Module instance, got "
            f"{type(target).__name__}. Put your forward/backward in a cr.Function subclass, "
            "or your layer in a cr.nn.Module (forward + bwd)")
    if not inputs:
        raise TypeError(f"check: give {what} its input arrays")
    _check_count(target.forward, len(inputs), skip, what)
    if mode not in ("auto", "full", "random"):
        raise ValueError(f"check: mode must be 'auto', 'full' or 'random', got {mode!r}")
    rng = np.random.default_rng(seed)
    arrays = _prepare(inputs, what)
    floats = {i for i, x in enumerate(arrays) if _is_float(x)}
    chosen = floats if wrt is None else {i % len(arrays) for i in wrt}
    if not chosen <= floats:
        raise TypeError(f"check: wrt={list(wrt or [])} names inputs that are not floating "
                        f"arrays (floating inputs: {sorted(floats)})")
    report = CheckReport(target=what)
    for attempt in range(1, 4):
        runner = (_FunctionRunner(target, list(arrays), attrs, chosen)
                  if isinstance(target, type) else _ModuleRunner(target, list(arrays), chosen))
        kinked = _compare(runner, report, rng, mode, rtol, atol, eps, directions, full_limit)
        if not kinked:
            break
        report.notes.append(f"attempt {attempt}: {', '.join(kinked)} sat on a non-"
                            "differentiable point (left and right slopes differ); inputs "
                            "redrawn slightly away from it")
        arrays = [x + rng.normal(0, 0.05, x.shape) * max(float(np.std(x)), 0.1)
                  if _is_float(x) else x for x in arrays]
    if isinstance(target, Module) and torch is not False:
        _compare_with_torch(target, arrays, report, required=bool(torch))
    if raise_on_failure and not report.passed:
        raise GradientCheckError(str(report))
    return report


def _compare_with_torch(module: Module, arrays: list[Any], report: CheckReport,
                        required: bool) -> None:
    """Add PyTorch's verdict on the same forward and gradients (float64) to the report."""
    from chainrule.check.parity import ConversionError, parity_report

    try:
        parity = parity_report(module, tuple(arrays))
    except (ImportError, ConversionError) as error:
        if required:
            raise
        reason = "torch is not installed" if isinstance(error, ImportError) else \
            "not every layer has a torch twin"
        report.notes.append(f"PyTorch comparison skipped: {reason}")
        return
    if parity.ok:
        worst = parity.worst
        report.notes.append("PyTorch agrees on every layer's output and gradients (largest "
                            f"relative difference {worst.max_rel if worst else 0:.1e})")
        return
    flagged = ", ".join(parity.flagged) or "no single layer (differences spread)"
    report.mismatches.append(Mismatch(
        "the model vs its PyTorch twin", (), None, np.nan, np.nan, 0,
        f"PyTorch disagrees; layers that differ on identical inputs: {flagged}.\n"
        + textwrap.indent(str(parity), "      ")))


def _compare(runner: Any, report: CheckReport, rng: np.random.Generator, mode: str,
             rtol: float, atol: float, eps: float, directions: int,
             full_limit: int) -> list[str]:
    """Fill the report; return the names whose mismatch sits on a kink (worth a redraw)."""
    shape = runner.output().shape
    # A scalar output is a loss: the top of the graph, where the upstream gradient is 1 and the
    # lesson's bwd (mse_grad) rightly ignores out.g. Weighting it randomly would fail them.
    weights = rng.standard_normal(shape) if shape else np.ones(shape)
    report.mismatches, report.worst_error = [], {}
    try:
        analytic = runner.gradients(weights)
    except GradientShapeError as error:  # a hand-written bwd set a .g of the wrong shape
        slot = runner.slot_for(error.what)
        x = slot.read()
        expected, _ = _central_differences(_loss_along(runner, slot, weights, x), x, eps)
        report.mismatches.append(Mismatch(slot.name, x.shape, None, np.nan, np.nan, 0,
                                          diagnose(expected, error.grad)))
        report.notes.append("the other gradients are checked once this one has the right "
                            "shape")
        return []
    kinked_names = []
    for slot in runner.slots:
        got, writes = analytic.get(slot.name, (None, []))
        x = slot.read()
        if got is None:
            expected, _ = _central_differences(_loss_along(runner, slot, weights, x), x, eps)
            if np.any(np.abs(expected) > atol):
                report.mismatches.append(Mismatch(
                    slot.name, x.shape, None, np.nan, np.nan, 0,
                    "backward gives no gradient for it (bwd never set its .g, or backward "
                    "returned None), yet the output depends on it. If it takes no gradient "
                    "(a target, say), leave it out: check(..., wrt=[the other inputs])."))
            else:
                report.worst_error[slot.name] = 0.0
            continue
        got = np.asarray(
            got.data if isinstance(got, Tensor) else got, dtype=np.float64)

        loss = _loss_along(runner, slot, weights, x)
        if mode == "random" or (mode == "auto" and x.size > full_limit):
            if got.shape == x.shape and _directions_agree(loss, x, got, rng, eps, rtol, atol,
                                                          directions):
                report.worst_error[slot.name] = float("nan")
                continue
            if x.size > 20 * full_limit:
                report.mismatches.append(Mismatch(
                    slot.name, x.shape, None, np.nan, np.nan, 0,
                    "disagrees with finite differences along a random direction; the input "
                    "is too large to locate the element (try a smaller one)."))
                continue
        expected, kinks = _central_differences(loss, x, eps)
        if got.shape != x.shape:
            report.mismatches.append(Mismatch(slot.name, x.shape, None, np.nan, np.nan, 0,
                                              diagnose(expected, got, writes)))
            continue
        wrong = np.abs(expected - got) > atol + rtol * np.abs(expected)
        report.worst_error[slot.name] = float(np.max(
            np.abs(expected - got) / np.maximum(np.abs(expected), 1.0), initial=0.0))
        if not wrong.any():
            continue
        if np.any(kinks & wrong):
            kinked_names.append(slot.name)
        j = int(np.argmax(wrong.reshape(-1)))
        report.mismatches.append(Mismatch(
            slot.name, x.shape, tuple(int(i) for i in np.unravel_index(j, x.shape)),
            float(expected.reshape(-1)[j]), float(got.reshape(-1)[j]), int(wrong.sum()),
            diagnose(expected, got, writes)))
    return kinked_names


def _loss_along(runner: Any, slot: _Slot, weights: np.ndarray, x: np.ndarray
                ) -> Callable[[np.ndarray], float]:
    """sum(weights * output) as a function of one input or parameter (others held fixed)."""
    def loss(value: np.ndarray) -> float:
        slot.write(value)
        try:
            return float(np.sum(weights * runner.output()))
        finally:
            slot.write(x)

    return loss


def _central_differences(loss: Callable[[np.ndarray], float], x: np.ndarray, eps: float
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The slope along every element, and which elements sit on a kink."""
    flat = x.reshape(-1)
    slopes = np.zeros(flat.size)
    kinks = np.zeros(flat.size, dtype=bool)
    centre = loss(x)
    for j in range(flat.size):
        shifted = flat.copy()
        shifted[j] += eps
        plus = loss(shifted.reshape(x.shape))
        shifted[j] = flat[j] - eps
        minus = loss(shifted.reshape(x.shape))
        slopes[j] = (plus - minus) / (2 * eps)
        right, left = (plus - centre) / eps, (centre - minus) / eps
        kinks[j] = abs(right - left) > 1e-3 * max(abs(right), abs(left), 1.0)
    return slopes.reshape(x.shape), kinks.reshape(x.shape)


def _directions_agree(loss: Callable[[np.ndarray], float], x: np.ndarray, got: np.ndarray,
                      rng: np.random.Generator, eps: float, rtol: float, atol: float,
                      directions: int) -> bool:
    for _ in range(directions):
        v = rng.standard_normal(x.shape)
        numeric = (loss(x + eps * v) - loss(x - eps * v)) / (2 * eps)
        if abs(numeric - float(np.sum(got * v))) > atol * np.sqrt(x.size) + rtol * abs(numeric):
            return False
    return True
