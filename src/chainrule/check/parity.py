"""PyTorch parity: run one batch through a chainrule model and its ``torch.nn`` twin and say, per
layer, how far the outputs, the gradients of the outputs and the parameter gradients are apart,
and which layer disagrees with torch when given identical inputs.

The pass, step by step: copy the model (at the comparison's dtype) and build its twin; run the
batch through both with every row layer's calls recorded (``recording``); take the loss on
both sides (``loss_twins``) and backpropagate; then compare each row, and run each leaf layer
again alone on its recorded inputs and output gradient. The report's types are in ``report``,
conversion in ``converters``. torch is imported only when a parity tool runs.

The converter names are re-exported here, where they were first defined.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule.check.comparison import first_index, validate_settings
from chainrule.check.converters import (
    TORCH_REQUIREMENT,
    ConversionError,
    Converter,
    from_torch,
    from_torch_buffer,
    from_torch_parameter,
    register_converter,
    require_torch,
    to_torch,
    to_torch_buffer,
    to_torch_parameter,
    unregister_converter,
)
from chainrule.check.loss_twins import LossPair, loss_pair, run_loss_alone
from chainrule.check.recording import Calls, as_numpy, leaf_args, recorder, run_alone
from chainrule.check.report import Diff, LayerParity, ParityReport, measure
from chainrule.engine.tensor import Tensor, enable_grad
from chainrule.nn.fused import unfuse
from chainrule.nn.module import Module

if TYPE_CHECKING:
    import torch

__all__ = [
    "TORCH_REQUIREMENT", "ConversionError", "Converter", "Diff", "LayerParity", "ParityReport",
    "from_torch", "from_torch_buffer", "from_torch_parameter", "parity_report",
    "register_converter", "to_torch", "to_torch_buffer", "to_torch_parameter",
    "unregister_converter",
]


def parity_report(model: Module, inputs: Any, targets: Any = None, loss: Any = None,
                  torch_model: torch.nn.Module | None = None, rtol: float | None = None,
                  atol: float | None = None, *, dtype: Any = np.float64,
                  torch_loss: Callable[[Any, Any], Any] | None = None) -> ParityReport:
    """Run one batch through ``model`` and its torch twin and compare every layer.

    The comparison runs on copies, at ``dtype`` (float64 by default; None keeps the model's).
    ``torch_model`` defaults to ``to_torch(model)``; one you pass is copied and given the
    model's weights, matched by name. ``inputs`` is an array, or a tuple of arrays for a model
    taking several. The loss is the sum of the outputs when there are no ``targets``;
    otherwise ``loss`` (a chainrule loss layer or functional loss, default cross_entropy for
    integer targets and mse for float ones), with its torch counterpart chosen for you (or
    given as ``torch_loss``). A row is ✓ within tolerance, ✗ when the layer alone disagrees
    with its twin on identical inputs and output gradient, and ~ when it only inherits a
    difference from elsewhere. Tolerances apply to max |difference| / max |torch value|;
    by default rtol 1e-7, atol 1e-12 at float64 and rtol 1e-4, atol 1e-6 at float32.
    """
    torch = require_torch()
    if not isinstance(model, Module):
        raise TypeError(f"parity_report: expected a chainrule Module, got {type(model).__name__}")
    dtype = None if dtype is None else np.dtype(dtype)
    # A fused layer's output is its run's: compared layer by layer, the plain model is the
    # one torch.nn has a twin of (same parameters and names, so the same report).
    ours = _float_copy(unfuse(model), dtype)
    twin = _torch_twin(ours, torch_model, None if dtype is None else getattr(torch, dtype.name))
    arrays = _batch(inputs, dtype)
    rtol, atol = _tolerances(arrays, ours, rtol, atol)
    run = _forward_both(ours, twin, arrays)
    pair = loss_pair(loss, targets, run.ours_out.dtype, torch_loss)
    ours_loss, their_loss = _backward_both(run, pair)
    rows = [_input_row(run, rtol, atol), *_layer_rows(run, rtol, atol),
            _loss_row(run, pair, ours_loss, their_loss, rtol, atol)]
    return ParityReport(rows, str(arrays[0].dtype if dtype is None else dtype), pair.name,
                        (float(ours_loss.data), float(as_numpy(their_loss))), rtol, atol,
                        batch=arrays[0].shape[0] if arrays[0].ndim else None,
                        torch_version=torch.__version__,
                        nothing_compared=_nothing_compared(run.ours_out, rows))


# ----------------------------------------------------------------------------- the steps
def _float_copy(model: Module, dtype: np.dtype | None) -> Module:
    """A deep copy for the comparison: the user's model, hooks and gradients stay untouched."""
    clone = copy.deepcopy(model)
    for module in clone.modules():
        module.__dict__.pop("_forward_hooks", None)
        for value in vars(module).values():
            if isinstance(value, Tensor):
                value.grad = None
                if dtype is not None and value.dtype.kind == "f":
                    value.data = value.data.astype(dtype)
    return clone


def _torch_twin(model: Module, torch_model: Any, torch_dtype: Any) -> Any:
    """``to_torch(model)``, or a copy of ``torch_model`` given the model's weights by name."""
    torch = require_torch()
    if torch_model is None:
        return to_torch(model)
    twin = copy.deepcopy(torch_model)
    if torch_dtype is not None:
        twin = twin.to(torch_dtype)
    ours, theirs = dict(model.named_parameters()), dict(twin.named_parameters())
    problems = [f"missing in torch_model: {', '.join(sorted(set(ours) - set(theirs)))}"
                if set(ours) - set(theirs) else "",
                f"only in torch_model: {', '.join(sorted(set(theirs) - set(ours)))}"
                if set(theirs) - set(ours) else ""]
    problems += [f"{n}: shape {tuple(p.shape)} vs {tuple(theirs[n].shape)}"
                 for n, p in ours.items() if n in theirs and tuple(theirs[n].shape) != p.shape]
    problems = [p for p in problems if p]
    if problems:
        raise ValueError("parity_report: torch_model's parameters do not match the model's "
                         "by name and shape: " + "; ".join(problems))
    with torch.no_grad():  # compare computations, not initialisations
        for n, p in theirs.items():
            p.copy_(torch.from_numpy(ours[n].data))
        own_buffers = dict(model.named_buffers())  # running statistics too
        for n, b in twin.named_buffers():
            if n in own_buffers:
                b.copy_(torch.from_numpy(np.asarray(own_buffers[n].data)))
    return twin


def _batch(inputs: Any, dtype: np.dtype | None) -> list[Any]:
    """The inputs as copied arrays, floating ones at ``dtype``; NaN/inf in them is refused."""
    arrays = [np.asarray(x.data if isinstance(x, Tensor) else x)
              for x in (inputs if isinstance(inputs, tuple) else (inputs,))]
    arrays = [a.astype(dtype) if dtype is not None and a.dtype.kind == "f" else a.copy()
              for a in arrays]
    for i, a in enumerate(arrays):
        bad = ~np.isfinite(a) if a.dtype.kind == "f" else np.zeros(a.shape, bool)
        if bad.any():  # NaN in, NaN out on both sides: nothing would be learnt
            raise ValueError(f"parity_report: input {i} holds NaN/inf at {int(bad.sum())} of "
                             f"{a.size} elements (first at {first_index(bad)}); compare on "
                             "finite inputs")
    return arrays


def _tolerances(arrays: list[Any], model: Module, rtol: float | None,
                atol: float | None) -> tuple[float, float]:
    """The tolerances given, or the defaults for the lowest precision taking part."""
    float_kinds = {a.dtype for a in arrays if a.dtype.kind == "f"}
    float_kinds |= {p.dtype for p in model.parameters()}
    single = np.dtype(np.float32) in float_kinds
    rtol = rtol if rtol is not None else (1e-4 if single else 1e-7)
    atol = atol if atol is not None else (1e-6 if single else 1e-12)
    validate_settings("parity_report", rtol=rtol, atol=atol)
    return rtol, atol


def _rows_of(model: Module) -> list[tuple[str, Module]]:
    """Leaf layers, and containers that own parameters directly; each module once."""
    seen: set[int] = set()
    rows = []
    for name, module in model.named_modules():
        if id(module) in seen:
            continue
        seen.add(id(module))
        has_children = next(iter(module.named_children()), None) is not None
        owns = any("." not in n for n, _ in module.named_parameters())
        if not has_children or owns:
            rows.append((name, module))
    return rows


@dataclass
class _Pass:
    """One batch through the model copy and its twin, every row layer's calls recorded."""

    ours: Module
    twin: Any
    rows: list[tuple[str, Module]]  # the layers that get a row, by name
    theirs_by_name: dict[str, Any]
    ours_in: list[Any]
    their_in: list[Any]
    ours_out: Tensor
    their_out: Any
    ours_calls: dict[str, Calls]
    theirs_calls: dict[str, Calls]


def _forward_both(ours: Module, twin: Any, arrays: list[Any]) -> _Pass:
    """The forward pass on both sides, recording every row layer's calls."""
    torch = require_torch()
    theirs_by_name = dict(twin.named_modules())
    rows = _rows_of(ours)
    ours_calls = {name: Calls() for name, _ in rows}
    theirs_calls = {name: Calls() for name, _ in rows}
    handles = [module.register_forward_hook(recorder(ours_calls[name], Tensor))
               for name, module in rows]
    handles += [theirs_by_name[name].register_forward_hook(
        recorder(theirs_calls[name], torch.Tensor)) for name, _ in rows
        if name in theirs_by_name]
    ours_in = leaf_args(tuple(arrays), lambda a, f: Tensor(a.copy(), requires_grad=f))
    their_in = leaf_args(tuple(arrays), lambda a, f: torch.from_numpy(a.copy())
                         .requires_grad_(f))
    with enable_grad():
        ours_out = ours(*ours_in)
    with torch.enable_grad():
        their_out = twin(*their_in)
    for handle in handles:
        handle.remove()
    if not isinstance(ours_out, Tensor):
        raise TypeError(f"parity_report: the model returned a {type(ours_out).__name__}; it "
                        "needs to return one Tensor")
    return _Pass(ours, twin, rows, theirs_by_name, ours_in, their_in, ours_out, their_out,
                 ours_calls, theirs_calls)


def _backward_both(run: _Pass, pair: LossPair) -> tuple[Tensor, Any]:
    """Both losses, backpropagated; returns them (chainrule's, torch's)."""
    torch = require_torch()
    with enable_grad():
        ours_loss = pair.ours(run.ours_out, pair.ours_target)
    with torch.enable_grad():
        their_loss = pair.theirs(run.their_out, pair.their_target)
    if not isinstance(ours_loss, Tensor) or ours_loss.size != 1:
        raise ValueError(f"parity_report: the loss {pair.name} must be a single number: use "
                         "reduction 'mean' or 'sum'")
    ours_loss.backward()
    their_loss.backward()
    return ours_loss, their_loss


def _input_row(run: _Pass, rtol: float, atol: float) -> LayerParity:
    """The gradients that reach the batch itself."""
    pairs = [(o.grad, as_numpy(t.grad)) for o, t in zip(run.ours_in, run.their_in)
             if isinstance(o, Tensor) and o.requires_grad]
    return LayerParity("(input)", "input", "input",
                       output_grad=measure("(input)", "input grad", pairs, rtol, atol))


def _layer_rows(run: _Pass, rtol: float, atol: float) -> list[LayerParity]:
    """A row per layer of ``_rows_of``: its outputs and gradients, and its local run."""
    # Gradients first: the local runs accumulate into the same parameters.
    ours_grads = {n: (None if p.grad is None else p.grad.copy())
                  for n, p in run.ours.named_parameters()}
    their_params = dict(run.twin.named_parameters())
    return [_layer_row(run, name, module, ours_grads, their_params, rtol, atol)
            for name, module in run.rows]


def _layer_row(run: _Pass, name: str, module: Module, ours_grads: dict[str, Any],
               their_params: dict[str, Any], rtol: float, atol: float) -> LayerParity:
    """One layer against the torch layer of the same name."""
    their_module = run.theirs_by_name.get(name)
    row = LayerParity(name or "(model)", type(module).__name__,
                      type(their_module).__name__ if their_module is not None else "-",
                      calls=len(run.ours_calls[name].outputs))
    if their_module is None:
        row.matched, row.note = False, f"no torch layer named {name!r} in torch_model"
        return row
    mine, theirs = run.ours_calls[name], run.theirs_calls[name]
    if len(mine.outputs) != len(theirs.outputs):
        row.note = (f"called {len(mine.outputs)} times in chainrule, "
                    f"{len(theirs.outputs)} in torch")
    if not mine.outputs:
        row.note = row.note or "not called in this batch"
    row.forward = measure(row.name, "output", list(zip(mine.outputs, theirs.outputs)),
                          rtol, atol)
    row.output_grad = measure(row.name, "output grad", list(zip(mine.grads, theirs.grads)),
                              rtol, atol)
    row.param_grads = _own_param_grads(row.name, name, module, ours_grads, their_params,
                                       rtol, atol)
    if next(iter(module.named_children()), None) is None:
        row.local = run_alone(row.name, module, their_module, mine, rtol, atol)
    return row


def _own_param_grads(label: str, name: str, module: Module,
                     ours_grads: dict[str, np.ndarray | None], their_params: dict[str, Any],
                     rtol: float, atol: float) -> dict[str, Diff]:
    """The Diffs of the parameters ``module`` owns itself (a child's are in the child's row)."""
    diffs = {}
    for pname, _ in module.named_parameters():
        if "." in pname:
            continue
        full = f"{name}.{pname}" if name else pname
        theirs_p = their_params.get(full)
        their_grad = None if theirs_p is None or theirs_p.grad is None \
            else as_numpy(theirs_p.grad)
        diff = measure(label, f"{pname} grad", [(ours_grads[full], their_grad)], rtol, atol)
        if diff is not None:
            diffs[pname] = diff
    return diffs


def _loss_row(run: _Pass, pair: LossPair, ours_loss: Tensor, their_loss: Any, rtol: float,
              atol: float) -> LayerParity:
    """The loss's values, and both losses alone on chainrule's output."""
    row = LayerParity("(loss)", pair.name, pair.torch_name, forward=measure(
        "(loss)", "loss", [(ours_loss.data, as_numpy(their_loss))], rtol, atol))
    row.local = run_loss_alone(pair, run.ours_out.data, rtol, atol)
    return row


def _nothing_compared(out: Tensor, rows: list[LayerParity]) -> str:
    """Why the pass compared nothing ('' when it compared something)."""
    if out.size == 0:  # every gradient is trivially zero: agreeing says nothing
        return (f"the model's output is empty (shape {out.shape}); give a batch with at "
                "least one sample")
    if not any(d.compared for row in rows if row.name != "(loss)" for d in row.diffs()):
        return "no layer output or gradient had an element to compare"
    return ""
