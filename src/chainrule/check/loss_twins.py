"""The loss of a parity pass on both sides: a chainrule loss (a layer, a functional loss, or the
sum of the outputs when there are no targets) and its torch counterpart, and the two compared
alone on the same output.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule import nn
from chainrule.check.converters import require_torch, to_torch
from chainrule.check.recording import as_numpy
from chainrule.check.report import Diff, measure
from chainrule.engine.tensor import Tensor, enable_grad
from chainrule.nn.module import Module
from chainrule.ops import loss as ops_loss

_FUNCTIONAL_LOSSES = {
    ops_loss.cross_entropy: "cross_entropy",
    ops_loss.nll_loss: "nll_loss",
    ops_loss.binary_cross_entropy_with_logits: "binary_cross_entropy_with_logits",
    ops_loss.mse: "mse_loss",
}


@dataclass(frozen=True)
class LossPair:
    """One loss as a chainrule and as a torch function of (output, target), with the target
    each side takes (None for the sum of the outputs)."""

    name: str
    ours: Callable[[Any, Any], Any]
    theirs: Callable[[Any, Any], Any]
    ours_target: Any = None
    their_target: Any = None

    @property
    def torch_name(self) -> str:
        """The name of the torch side, for the report's type column."""
        return callable_name(self.theirs)


def loss_pair(loss: Any, targets: Any, out_dtype: np.dtype,
              torch_loss: Callable[[Any, Any], Any] | None) -> LossPair:
    """The loss ``parity_report`` was given, on both sides (see its docstring for defaults)."""
    if targets is None and loss is None:
        return LossPair("sum of outputs", lambda o, t: o.sum(), lambda o, t: o.sum())
    if targets is None:
        raise ValueError("parity_report: a loss needs targets")
    target = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
    if target.dtype.kind == "f":  # torch's losses want the output's dtype
        target = target.astype(out_dtype)
    name, ours, theirs = _functions(loss, target.dtype.kind in "iu", torch_loss)
    return LossPair(name, ours, theirs, target, require_torch().from_numpy(target.copy()))


def _torch_mse(reduction: str = "mean") -> Callable[[Any, Any], Any]:
    """torch's mse_loss with chainrule's trailing-1 rule: (N, 1) against (N,) is squeezed."""
    functional = require_torch().nn.functional

    def mse_loss(out: Any, target: Any) -> Any:
        if tuple(out.shape) == tuple(target.shape) + (1,):
            out = out.squeeze(-1)
        return functional.mse_loss(out, target.to(out.dtype), reduction=reduction)
    return mse_loss


def _functions(loss: Any, integer_targets: bool, torch_loss: Any
               ) -> tuple[str, Callable[[Any, Any], Any], Callable[[Any, Any], Any]]:
    """The loss's name, and it as a chainrule and as a torch function of (output, target)."""
    functional = require_torch().nn.functional
    if loss is None:
        loss = ops_loss.cross_entropy if integer_targets else ops_loss.mse
    func, keywords = loss, {}
    if isinstance(loss, functools.partial) and not loss.args:
        func, keywords = loss.func, dict(loss.keywords)
    if isinstance(loss, Module):
        name = repr(loss)
        if isinstance(loss, nn.MSELoss):
            theirs = _torch_mse(loss.reduction)
        else:
            theirs = to_torch(loss)
    elif func in _FUNCTIONAL_LOSSES:
        name = _FUNCTIONAL_LOSSES[func]
        if keywords:
            name += "(" + ", ".join(f"{k}={v!r}" for k, v in keywords.items()) + ")"
        theirs = (_torch_mse(**keywords) if func is ops_loss.mse
                  else functools.partial(getattr(functional, name.split("(")[0]), **keywords))
    elif torch_loss is not None:
        name, theirs = callable_name(loss), torch_loss
    else:
        raise TypeError(
            f"parity_report: no torch equivalent known for the loss {loss!r}. Pass a chainrule "
            "loss layer (nn.CrossEntropyLoss(), ...), one of nn.functional's losses, or "
            "torch_loss=<the torch function> alongside it")
    return name, loss, (torch_loss if torch_loss is not None else theirs)


def callable_name(fn: Any) -> str:
    """A function's name (a partial's function's), or its type's for a callable object."""
    fn = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(fn, "__name__", type(fn).__name__)


def run_loss_alone(pair: LossPair, out: np.ndarray, rtol: float, atol: float) -> list[Diff]:
    """Both losses on the chainrule model's output: value and gradient w.r.t. the output."""
    torch = require_torch()
    ours_out = Tensor(out.copy(), requires_grad=True)
    their_out = torch.from_numpy(out.copy()).requires_grad_()
    with enable_grad():
        ours = pair.ours(ours_out, pair.ours_target)
    with torch.enable_grad():
        theirs = pair.theirs(their_out, pair.their_target)
    ours.backward()
    theirs.backward()
    diffs = [measure("(loss)", "local loss", [(ours.data, as_numpy(theirs))], rtol, atol),
             measure("(loss)", "local output grad",
                     [(ours_out.grad, as_numpy(their_out.grad))], rtol, atol)]
    return [d for d in diffs if d is not None]
