"""What the check package adds to hand-written layers (a Module with ``bwd``), through the
extension point nn offers for it (``nn.module.HandWrittenHooks``; nn never imports check):

- while ``watch_g_writes`` runs (``check`` uses it), every ``.g`` assignment a ``bwd`` makes is
  recorded, so that a gradient overwritten instead of added up can be diagnosed, and a
  missing ``.g`` is left to the check to report;
- a layer with ``cross_check = True`` (on its class or the instance) is differentiated a
  second way on its first backward, by autograd through its forward, and a disagreement
  raises ``GradientMismatchError`` with a diagnosis.

Importing this module installs the hooks; ``chainrule.check`` imports it, and ``import
chainrule`` imports ``chainrule.check``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from chainrule.check.comparison import compare
from chainrule.check.diagnosis import diagnose
from chainrule.engine.tensor import Tensor, enable_grad
from chainrule.nn.module import HandWrittenHooks, Module, set_hand_written_hooks


class GradientMismatchError(AssertionError):
    """A hand-written bwd and autograd through the same forward disagree."""


# While a check runs: id(tensor) -> every value assigned to its .g, in order. A gradient
# overwritten instead of added up shows here as two writes whose sum is the right answer.
_G_WRITES: dict[int, list[np.ndarray]] | None = None


@functools.cache
def _watched(cls: type) -> type:
    """A subclass of ``cls`` whose ``.g`` assignments are recorded (same memory layout)."""
    slot = Tensor.g

    def get(self: Tensor) -> Any:
        return slot.__get__(self, type(self))

    def put(self: Tensor, value: Any) -> None:
        if _G_WRITES is not None and value is not None:
            _G_WRITES.setdefault(id(self), []).append(
                np.array(value.data if isinstance(value, Tensor) else value, dtype=np.float64))
        slot.__set__(self, value)

    return type(f"Watched{cls.__name__}", (cls,), {"__slots__": (), "g": property(get, put)})


@contextlib.contextmanager
def watch_g_writes(module: Module) -> Iterator[dict[int, list[np.ndarray]]]:
    """Record every ``.g`` assignment made by hand-written ``bwd`` methods inside ``module``.

    Yields the record: id(tensor) -> the values assigned to its ``.g``, in order. The
    arguments of a hand-written call made meanwhile are kept in the module's
    ``_checked_args``, so that their writes can be found by position.
    """
    global _G_WRITES
    params = module.parameters()
    classes = [p.__class__ for p in params]
    outer, _G_WRITES = _G_WRITES, {}
    writes = _G_WRITES
    try:
        for p in params:
            p.__class__ = _watched(p.__class__)
        yield writes
    finally:
        _G_WRITES = outer  # a nested watch hands the outer one back its dict
        for p, cls in zip(params, classes):
            p.__class__ = cls


class _CheckHooks(HandWrittenHooks):
    """The hooks this module installs: the watch, and the two-path cross-check."""

    def arguments(self, module: Module, arrays: Sequence[Any]) -> list[Any]:
        """Arguments whose ``.g`` writes are recorded while a watch runs."""
        if _G_WRITES is None:
            return super().arguments(module, arrays)
        args = [_watched(Tensor)(a) if isinstance(a, np.ndarray) else a for a in arrays]
        module.__dict__["_checked_args"] = args  # so a check can find their .g writes
        return args

    def reports_missing_gradients(self) -> bool:
        """A running check reports a missing ``.g`` itself, with the finite differences."""
        return _G_WRITES is not None

    def cross_check(self, module: Module, args: list[Any], kwargs: dict[str, Any],
                    named: list[tuple[str, Tensor]], grad: np.ndarray,
                    hand: list[np.ndarray | None]) -> None:
        """Autograd through ``module.forward`` against ``bwd``'s gradients ``hand``."""
        _cross_check(module, args, kwargs, named, grad, hand)


def _cross_check(module: Module, args: list, kwargs: dict, named: list, grad: np.ndarray,
                 hand: list) -> None:
    """Differentiate ``module.forward`` a second way — by autograd through the primitives it
    is written with — and fail loudly if that disagrees with the hand-written ``bwd``."""
    auto = _autograd_gradients(module, args, kwargs, named, grad)
    names = [f"argument {i}" for i in range(len(args))] + [name for name, _ in named]
    tight = all(g.dtype == np.float64 for g in auto if g is not None)
    rtol, atol = (1e-7, 1e-9) if tight else (1e-3, 1e-5)
    for name, mine, theirs in zip(names, hand, auto):
        if mine is None or theirs is None:
            continue
        theirs = np.asarray(theirs, np.float64)
        # The check's one comparison: a NaN/inf from bwd where autograd is finite is wrong.
        finite = theirs[np.isfinite(theirs)]
        scale = max(float(np.abs(finite).max(initial=0.0)), 1.0)
        verdict = compare(theirs, mine, rtol, atol * scale, exact_inf=True)
        if verdict.ok:
            continue
        diagnosis = diagnose(theirs, np.asarray(mine, np.float64), name=name)
        if not verdict.nonfinite.any():  # (a NaN's diagnosis already says where and how many)
            diagnosis = (f"{verdict.describe(f'{name}.g', 'autograd', 'bwd')}. Diagnosis: "
                         f"{diagnosis}")
        raise GradientMismatchError(
            f"{type(module).__name__}: the hand-written bwd and autograd through forward "
            f"disagree on {name}.g: {diagnosis}")


def _autograd_gradients(module: Module, args: list, kwargs: dict, named: list,
                        grad: np.ndarray) -> list[np.ndarray | None]:
    """The gradients of the arguments and parameters by autograd through ``forward``; the
    parameters' own ``.grad`` and ``requires_grad`` are left as they were."""
    saved = [(p, p.grad, p.requires_grad) for _, p in named]
    try:
        for _, p in named:
            p.grad, p.requires_grad = None, True
        leaves = [Tensor(a.data, requires_grad=a.dtype.kind == "f")
                  if isinstance(a, Tensor) else a for a in args]
        with enable_grad():
            out = module.forward(*leaves, **kwargs)
        if not isinstance(out, Tensor) or not out.requires_grad:
            raise GradientMismatchError(
                f"{type(module).__name__}: cross_check needs forward written with chainrule "
                "ops (tensors in, tensors out) so that autograd can differentiate it too")
        out.backward(grad)
        auto = [t.grad if isinstance(t, Tensor) else None for t in leaves]
        return auto + [p.grad for _, p in named]
    finally:
        for p, old_grad, old_flag in saved:
            p.grad, p.requires_grad = old_grad, old_flag


set_hand_written_hooks(_CheckHooks())
