"""``check``: verify a Function's or Module's backward pass and say what is wrong with it.

Everything runs at float64 on copies (your module is not touched). Each input and parameter
that takes a gradient is compared with central finite differences of the forward pass (the
engine and tolerance rule of ``finite_differences``, which gradcheck shares); on a
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

from chainrule.check.comparison import (
    BACKWARD_HINT,
    first_index,
    nonfinite_message,
    unchecked_message,
    validate_settings,
)
from chainrule.check.diagnosis import diagnose
from chainrule.check.finite_differences import agreement, directions_agree, element_slopes
from chainrule.check.handwritten import watch_g_writes
from chainrule.check.parity import ConversionError, parity_report
from chainrule.engine.function import Context, Function, _output_array
from chainrule.engine.tensor import Tensor, no_grad
from chainrule.nn.module import GradientShapeError, Module


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
    kind: str = "wrong"  # or "unchecked": the reference was NaN/inf, nothing to compare with

    def describe(self) -> str:
        """A paragraph a learner can act on."""
        if self.kind == "unchecked":
            where = "" if self.element is None else f" at element {self.element}"
            text = f"gradient of {self.name} (shape {self.shape}) could not be checked{where}"
        elif self.element is None:
            text = f"gradient of {self.name} (shape {self.shape}) is wrong"
        else:
            text = (f"gradient of {self.name} (shape {self.shape}) is wrong at element "
                    f"{self.element}: finite differences give {self.expected:.6g}, backward "
                    f"gives {self.got:.6g} ({self.wrong} of {int(np.prod(self.shape))} "
                    "elements differ)")
        return f"  {text}.\n    Diagnosis: {self.diagnosis}"


@dataclass
class CheckReport:
    """What ``check`` compared and found; ``str(report)`` reads as a summary. It passes only
    when something was compared and all of it agreed."""

    target: str
    worst_error: dict[str, float] = field(default_factory=dict)
    mismatches: list[Mismatch] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    not_checked: str = ""  # why nothing could be compared at all ('' when something was)

    @property
    def passed(self) -> bool:
        """True when at least one gradient was compared and every one agreed."""
        return not self.mismatches and not self.not_checked and bool(self.worst_error)

    def __str__(self) -> str:
        if not self.mismatches and not self.passed:
            reason = self.not_checked or "no gradient was compared"
            lines = [f"check {self.target}: FAILED, nothing was checked: {reason}"]
        elif self.passed:
            count = len(self.worst_error)
            lines = [(f"check {self.target}: OK, {count} gradient{'s' if count != 1 else ''} "
                      f"agree{'s' if count == 1 else ''} with finite differences")]
            lines += [f"  {name}: largest error {error:.1e}"
                      for name, error in self.worst_error.items()]
        else:
            lines = [f"check {self.target}: FAILED"] + [m.describe() for m in self.mismatches]
        return "\n".join(lines + [f"  note: {note}" for note in self.notes])


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
        # The engine's own reading of what forward returned (None: a forgotten `return`).
        return _output_array(self.fn, self.fn.forward(Context(), *self.arrays, **self.attrs))

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

    A NaN/inf in a gradient is a failure, and so is a check that could not be made: a forward
    that is not finite at (or within ``eps`` of) the inputs, or nothing to compare (no
    non-empty floating input and no parameter, an empty output, ``wrt=[]``).

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
    validate_settings("check", positive=("eps", "directions"), rtol=rtol, atol=atol, eps=eps,
                      directions=directions, full_limit=full_limit)
    if isinstance(directions, float) or isinstance(full_limit, float):
        raise TypeError("check: directions and full_limit are counts; give whole numbers")
    rng = np.random.default_rng(seed)
    arrays = _prepare(inputs, what)
    floats = {i for i, x in enumerate(arrays) if _is_float(x)}
    chosen = floats if wrt is None else _chosen_inputs(wrt, len(arrays), floats)
    report = CheckReport(target=what)
    nothing = _why_nothing(target, wrt, chosen, floats)
    for attempt in range(1, 4):
        runner = (_FunctionRunner(target, list(arrays), attrs, chosen)
                  if isinstance(target, type) else _ModuleRunner(target, list(arrays), chosen))
        kinked = _compare(runner, report, rng, mode, rtol, atol, eps, directions, full_limit,
                          nothing)
        if not kinked:
            break
        report.notes.append(f"attempt {attempt}: {', '.join(kinked)} sat on a non-"
                            "differentiable point (left and right slopes differ); inputs "
                            "redrawn slightly away from it")
        arrays = [_nudge(x, rng) if _is_float(x) else x for x in arrays]
    if isinstance(target, Module) and torch is not False and not report.not_checked:
        _compare_with_torch(target, arrays, report, required=bool(torch))
    if raise_on_failure and not report.passed:
        raise GradientCheckError(str(report))
    return report


def _chosen_inputs(wrt: Any, count: int, floats: set[int]) -> set[int]:
    """The input positions ``wrt`` names, refusing ones that do not exist or take no grad."""
    if isinstance(wrt, (int, np.integer)) or not isinstance(wrt, Sequence) or isinstance(
            wrt, str):
        raise TypeError(f"check: wrt must be a list of input positions, e.g. wrt=[0], got "
                        f"{wrt!r}")
    chosen = set()
    for i in wrt:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TypeError(f"check: wrt={list(wrt)} holds {i!r}; give input positions as "
                            "integers, e.g. wrt=[0]")
        if not -count <= i < count:  # i % count would silently check a different input
            raise IndexError(f"check: wrt={list(wrt)} names input {i}, but there are only "
                             f"{count} input(s) (positions 0 to {count - 1})")
        chosen.add(int(i) % count)
    if not chosen <= floats:
        raise TypeError(f"check: wrt={list(wrt)} names inputs that are not floating "
                        f"arrays (floating inputs: {sorted(floats)})")
    return chosen


def _why_nothing(target: Any, wrt: Any, chosen: set[int], floats: set[int]) -> str:
    """What to say if no gradient ends up compared."""
    params = (f", and {type(target).__name__} has no parameters"
              if isinstance(target, Module) else "")
    if chosen:
        return (f"every input it was to check is empty{params}. Give inputs with at least "
                "one element")
    if wrt is not None and floats:
        return (f"wrt={list(wrt)} leaves out every input{params}. Name at least one floating "
                f"input in wrt (floating inputs: {sorted(floats)}), or leave wrt out")
    return (f"no input is a floating array (integer inputs, like class labels, take no "
            f"gradient){params}. Give the inputs that take a gradient as float arrays "
            "(e.g. x.astype(float))")


def _nudge(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` moved slightly, at its own scale, away from a kink."""
    finite = x[np.isfinite(x)]
    spread = float(np.std(finite)) if finite.size else 0.0
    return x + rng.normal(0, 0.05, x.shape) * max(spread, 0.1)


def _compare_with_torch(module: Module, arrays: list[Any], report: CheckReport,
                        required: bool) -> None:
    """Add PyTorch's verdict on the same forward and gradients (float64) to the report."""
    try:
        parity = parity_report(module, tuple(arrays))
    except (ImportError, ConversionError, ValueError) as error:
        if required:
            raise
        reason = ("torch is not installed" if isinstance(error, ImportError) else
                  "not every layer has a torch twin" if isinstance(error, ConversionError)
                  else str(error))
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
             rtol: float, atol: float, eps: float, directions: int, full_limit: int,
             nothing: str) -> list[str]:
    """Fill the report; return the names whose mismatch sits on a kink (worth a redraw)."""
    report.mismatches, report.worst_error, report.not_checked = [], {}, ""
    if not runner.slots:
        report.not_checked = nothing
        return []
    output = np.asarray(runner.output())
    report.not_checked = _unusable_output(runner, output)
    if report.not_checked:
        return []
    shape = output.shape
    # A scalar output is a loss: the top of the graph, where the upstream gradient is 1 and the
    # lesson's bwd (mse_grad) rightly ignores out.g. Weighting it randomly would fail them.
    weights = rng.standard_normal(shape) if shape else np.ones(shape)
    try:
        analytic = runner.gradients(weights)
    except GradientShapeError as error:  # a hand-written bwd set a .g of the wrong shape
        slot = runner.slot_for(error.what)
        x = slot.read()
        expected = element_slopes(_loss_along(runner, slot, weights, x), x, eps).values
        report.mismatches.append(Mismatch(slot.name, x.shape, None, np.nan, np.nan, 0,
                                          diagnose(expected, error.grad, name=slot.name)))
        report.notes.append("the other gradients are checked once this one has the right "
                            "shape")
        return []
    kinked_names, empty = [], []
    for slot in runner.slots:
        got, writes = analytic.get(slot.name, (None, []))
        x = slot.read()
        if got is not None:
            try:
                raw = np.asarray(got.data if isinstance(got, Tensor) else got)
                if raw.dtype.kind not in "fiub":  # complex would lose its imaginary part
                    raise TypeError(raw.dtype)
                got = raw.astype(np.float64)
            except (TypeError, ValueError):
                report.mismatches.append(Mismatch(
                    slot.name, x.shape, None, np.nan, np.nan, 0,
                    f"backward gives a {type(got).__name__} for it, which is not an array of "
                    f"real numbers; give an array of the input's shape {x.shape}"))
                continue
        if x.size == 0 and (got is None or got.shape == x.shape):
            empty.append(f"{slot.name} (shape {x.shape})")
            continue
        loss = _loss_along(runner, slot, weights, x)
        if got is None:
            expected = element_slopes(loss, x, eps).values
            verdict = agreement(expected, np.zeros_like(expected), rtol, atol)
            if verdict.unchecked.any():
                report.mismatches.append(_unchecked(slot.name, x, verdict))
            elif not verdict.ok:
                report.mismatches.append(Mismatch(
                    slot.name, x.shape, None, np.nan, np.nan, 0,
                    "backward gives no gradient for it (bwd never set its .g, or backward "
                    "returned None), yet the output depends on it. If it takes no gradient "
                    "(a target, say), leave it out: check(..., wrt=[the other inputs])."))
            else:
                report.worst_error[slot.name] = 0.0
            continue
        if mode == "random" or (mode == "auto" and x.size > full_limit):
            verdict = (directions_agree(loss, x, got, rng, eps, rtol, atol, directions)
                       if got.shape == x.shape else None)
            if verdict is not None and verdict.ok:
                report.worst_error[slot.name] = verdict.max_rel
                continue
            if x.size > 20 * full_limit:
                report.mismatches.append(_large_mismatch(slot.name, x, got, verdict))
                continue
        slopes = element_slopes(loss, x, eps)
        expected = slopes.values
        if got.shape != x.shape:
            report.mismatches.append(Mismatch(slot.name, x.shape, None, np.nan, np.nan, 0,
                                              diagnose(expected, got, writes, name=slot.name)))
            continue
        verdict = agreement(expected, got, rtol, atol)
        report.worst_error[slot.name] = verdict.max_rel
        if verdict.ok:
            continue
        if not verdict.wrong.any():
            report.mismatches.append(_unchecked(slot.name, x, verdict))
            continue
        if np.any(slopes.kinks & verdict.mismatch):
            kinked_names.append(slot.name)
        # A NaN/inf is named first: it is the element the diagnosis talks about.
        j = first_index(verdict.nonfinite if verdict.nonfinite.any() else verdict.wrong)
        report.mismatches.append(Mismatch(
            slot.name, x.shape, j, float(expected[j]), float(got[j]),
            int(verdict.wrong.sum()), diagnose(expected, got, writes, name=slot.name)))
    if empty:
        report.notes.append(f"nothing to compare for {', '.join(empty)}: it has no elements")
    if not report.worst_error and not report.mismatches:
        report.not_checked = nothing
    return kinked_names


def _unusable_output(runner: Any, output: np.ndarray) -> str:
    """Why no finite difference can be taken of this output ('' when they can)."""
    if output.dtype.kind not in "fiub":
        return (f"the output has dtype {output.dtype}; the check needs a real-valued "
                "output")
    if output.size == 0:
        return (f"the output is empty (shape {output.shape}), so there is nothing to "
                "differentiate; give inputs with at least one element")
    bad = ~np.isfinite(output)
    if not bad.any():
        return ""
    culprits = [f"{slot.name} holds NaN/inf" for slot in runner.slots
                if not np.isfinite(slot.read()).all()]
    return (f"the forward gives NaN/inf at these inputs ({int(bad.sum())} of {output.size} "
            f"output elements, first at {first_index(bad)}), so finite differences cannot "
            "be taken"
            + (f" ({'; '.join(culprits)})" if culprits else "")
            + ". Choose inputs where the forward is finite (for log or sqrt, positive ones)")


def _unchecked(name: str, x: np.ndarray, verdict: Any) -> Mismatch:
    """The gradient of ``name`` could not be checked: finite differences are NaN/inf."""
    j = first_index(verdict.unchecked)
    text = unchecked_message(f"the gradient of {name}", verdict.reference, verdict.unchecked,
                             "finite differences")
    return Mismatch(name, x.shape, j, float(verdict.reference[j]), float(verdict.got[j]),
                    int(verdict.unchecked.sum()),
                    f"{text}. The forward is finite at the inputs but not within eps of them: "
                    "move the inputs away from where it blows up (log or sqrt near 0, say)",
                    kind="unchecked")


def _large_mismatch(name: str, x: np.ndarray, got: np.ndarray, verdict: Any) -> Mismatch:
    """A random-direction failure on an input too large to take every element's slope."""
    if got.shape != x.shape:
        diagnosis = (f"the gradient has shape {got.shape}, but the input has shape "
                     f"{x.shape}.")
    elif verdict is not None and verdict.unchecked.any():
        return Mismatch(name, x.shape, None, np.nan, np.nan, 0,
                        "finite differences along a random direction are NaN/inf: the forward "
                        "is not finite within eps of these inputs; move them away from where "
                        "it blows up", kind="unchecked")
    elif not np.isfinite(got).all():  # the elements are known without any slope
        diagnosis = f"{nonfinite_message(f'the gradient of {name}', got)}. {BACKWARD_HINT}"
    else:
        diagnosis = ("disagrees with finite differences along a random direction; the input "
                     "is too large to locate the element (try a smaller one).")
    return Mismatch(name, x.shape, None, np.nan, np.nan, 0, diagnosis)


def _loss_along(runner: Any, slot: _Slot, weights: np.ndarray, x: np.ndarray
                ) -> Callable[[np.ndarray], float]:
    """sum(weights * output) as a function of one input or parameter (others held fixed)."""
    def loss(value: np.ndarray) -> float:
        slot.write(value)
        try:
            with np.errstate(all="ignore"):  # a NaN/inf here is judged, not warned about
                return float(np.sum(weights * runner.output()))
        finally:
            slot.write(x)

    return loss
