"""What each layer saw in the parity pass, and each layer run again alone on exactly that.

A forward hook on a layer (on both sides) records every call's inputs and output, and a hook
on the output records the gradient that flows back into it. ``run_alone`` then feeds a layer
and its torch twin those same inputs and output gradient, so a difference that remains is the
layer's own, not one it inherits from the layers before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.check.converters import require_torch
from chainrule.check.report import Diff, measure
from chainrule.engine.tensor import Tensor, enable_grad
from chainrule.nn.module import Module


@dataclass
class Calls:
    """What a layer saw on each call: inputs, output, and the gradient of that output."""

    args: list[tuple] = field(default_factory=list)
    outputs: list[np.ndarray | None] = field(default_factory=list)
    grads: list[np.ndarray | None] = field(default_factory=list)


def as_numpy(value: Any) -> Any:
    """A NumPy copy of a chainrule or torch tensor or an array; anything else as it is."""
    torch = require_torch()
    if isinstance(value, Tensor):
        return value.data.copy()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    return value.copy() if isinstance(value, np.ndarray) else value


def recorder(calls: Calls, tensor_type: type) -> Callable[[Any, tuple, Any], None]:
    """A forward hook that appends each call to ``calls`` (``tensor_type``: whose tensors)."""
    def hook(_module: Any, args: tuple, out: Any) -> None:
        index = len(calls.outputs)
        calls.args.append(tuple(as_numpy(a) for a in args))
        calls.grads.append(None)
        if not isinstance(out, tensor_type):
            calls.outputs.append(None)
            return
        calls.outputs.append(as_numpy(out))
        if out.requires_grad:
            def keep(grad: Any) -> None:
                calls.grads[index] = as_numpy(grad)
            out.register_hook(keep)
    return hook


def leaf_args(arrays: tuple, make: Callable[[np.ndarray, bool], Any]) -> list[Any]:
    """Each array made a leaf by ``make(array, requires_grad)``, floating ones taking a
    gradient; other arguments pass through."""
    return [make(a, a.dtype.kind == "f") if isinstance(a, np.ndarray) else a for a in arrays]


@dataclass
class _AlonePairs:
    """(chainrule, torch) pairs gathered over a layer's calls, per compared quantity."""

    outputs: list[tuple] = field(default_factory=list)
    arg_grads: dict[int, list[tuple]] = field(default_factory=dict)
    param_grads: dict[str, list[tuple]] = field(default_factory=dict)


def run_alone(name: str, layer: Module, twin: Any, calls: Calls, rtol: float,
              atol: float) -> list[Diff]:
    """Run the layer and its twin alone on each recorded call: identical inputs and grads."""
    pairs = _AlonePairs()
    for args, grad in zip(calls.args, calls.grads):
        _run_call(layer, twin, args, grad, pairs)
    diffs = [measure(name, "local output", pairs.outputs, rtol, atol)]
    for i, arg_pairs in pairs.arg_grads.items():
        label = "local input grad" if len(pairs.arg_grads) == 1 else f"local input {i} grad"
        diffs.append(measure(name, label, arg_pairs, rtol, atol))
    diffs += [measure(name, f"local {p} grad", param_pairs, rtol, atol)
              for p, param_pairs in pairs.param_grads.items()]
    return [d for d in diffs if d is not None]


def _run_call(layer: Module, twin: Any, args: tuple, grad: np.ndarray | None,
              pairs: _AlonePairs) -> None:
    """One recorded call through both: its output, and its gradients when it had one."""
    torch = require_torch()
    ours_in = leaf_args(args, lambda a, f: Tensor(a.copy(), requires_grad=f))
    their_in = leaf_args(args, lambda a, f: torch.from_numpy(a.copy()).requires_grad_(f))
    layer.zero_grad()
    with enable_grad():
        out = layer(*ours_in)
    with torch.enable_grad():
        their_out = twin(*their_in)
    if not isinstance(out, Tensor) or not isinstance(their_out, torch.Tensor):
        return
    pairs.outputs.append((out.data, as_numpy(their_out)))
    if grad is None or not out.requires_grad or not their_out.requires_grad:
        return
    out.backward(grad)
    wanted = [t for t in their_in if isinstance(t, torch.Tensor) and t.requires_grad]
    trainable = [(n, p) for n, p in twin.named_parameters() if p.requires_grad]
    got = torch.autograd.grad(their_out, wanted + [p for _, p in trainable],
                              torch.from_numpy(grad), allow_unused=True)
    leaves = [t for t in ours_in if isinstance(t, Tensor) and t.requires_grad]
    for i, (mine, g) in enumerate(zip(leaves, got)):
        pairs.arg_grads.setdefault(i, []).append((mine.grad, as_numpy(g)))
    own = dict(layer.named_parameters())
    for (pname, _), g in zip(trainable, got[len(wanted):]):
        if pname in own:
            pairs.param_grads.setdefault(pname, []).append((own[pname].grad, as_numpy(g)))
