"""Model summaries: each layer's output shape, parameters and multiply-adds, with totals.

    print(model.summary((1, 784)))            # or cr.summary(model, (1, 784))
    chainrule summary --model cnn

The model runs once on zeros of the given shape, traced (chainrule.export.trace), so every
figure comes from what the forward really did: output shapes from each layer's last call,
multiply-adds from each op's arguments (matrix products and convolutions; elementwise ops
count none, as torchinfo and Keras count), parameters from each layer's own tensors, a tied
one counted once. "Activations" is the bytes of every op's output in one forward (views of
another op's output are free): about what training keeps for backward, and what a batch costs
in memory beyond the weights.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.engine.tensor import Tensor
from chainrule.export.trace import array_of, trace
from chainrule.nn.module import Module

#: op name -> multiply-adds of one call, from its bound arguments and output
MULT_ADDS: dict[str, Callable[[dict[str, Any], np.ndarray], int]] = {}


def _counts(*names: str) -> Callable:
    def register(fn: Callable[[dict[str, Any], np.ndarray], int]) -> Callable:
        for name in names:
            MULT_ADDS[name] = fn
        return fn
    return register


@_counts("linear", "linear_relu", "linear_gelu")
def _linear(args: dict[str, Any], out: np.ndarray) -> int:
    return out.size * array_of(args["weight"]).shape[-1]


@_counts("matmul")
def _matmul(args: dict[str, Any], out: np.ndarray) -> int:
    a = array_of(args["a"])
    return max(out.size, 1) * a.shape[-1]


@_counts("conv2d", "conv_nd")
def _conv(args: dict[str, Any], out: np.ndarray) -> int:
    weight = array_of(args["weight"])
    return out.size * int(np.prod(weight.shape[1:]))


@_counts("self_attention")
def _self_attention(args: dict[str, Any], out: np.ndarray) -> int:
    batch_time, width = int(np.prod(out.shape[:-1])), out.shape[-1]
    return 2 * batch_time * out.shape[-2] * width  # scores, then weights @ values


@_counts("scaled_dot_product_attention")
def _attention(args: dict[str, Any], out: np.ndarray) -> int:
    keys = array_of(args["key"]).shape[-2]
    return 2 * out.size * keys


@_counts("rnn_sequence", "gru_sequence", "lstm_sequence")
def _recurrent(args: dict[str, Any], out: np.ndarray) -> int:
    w_ih, w_hh = array_of(args["w_ih"]), array_of(args["w_hh"])
    x = array_of(args["input"])
    steps_batch = int(np.prod(x.shape[:-1]))
    return steps_batch * (w_ih.size + w_hh.size)


@dataclass
class Row:
    """One layer of a summary."""

    name: str
    kind: str
    output_shape: tuple[int, ...] | None
    params: int
    mult_adds: int
    tied: list[str] = field(default_factory=list)
    same_as: str = ""  # the first name of a layer that is used under two


@dataclass
class Summary:
    """A model's summary; ``str()`` (and the REPL) show it as a table."""

    rows: list[Row]
    input_shape: tuple[int, ...]
    total_params: int
    trainable_params: int
    param_bytes: int
    buffer_bytes: int
    mult_adds: int
    activation_bytes: int

    def __str__(self) -> str:
        labels = [f"{row.name} ({row.kind})" for row in self.rows]
        width = max([len("layer (type)"), *map(len, labels)]) + 2
        head = f"{'layer (type)':<{width}}{'output shape':>20}{'params':>12}{'mult-adds':>15}"
        lines = [head, "-" * len(head)]
        for label, row in zip(labels, self.rows):
            shape = "-" if row.output_shape is None else str(tuple(row.output_shape))
            params = ("tied" if row.tied else f"= {row.same_as}" if row.same_as else
                      f"{row.params:,}" if row.params else "-")
            adds = f"{row.mult_adds:,}" if row.mult_adds else "-"
            lines.append(f"{label:<{width}}{shape:>20}{params:>12}{adds:>15}")
        lines.append("-" * len(head))
        batch = self.input_shape[0] if self.input_shape else 1
        lines += [
            f"parameters: {self.total_params:,} ({_size(self.param_bytes)}), trainable "
            f"{self.trainable_params:,}; buffers {_size(self.buffer_bytes)}",
            f"mult-adds for one batch of {batch}: {_count(self.mult_adds)}",
            f"activations of one forward (every op's output, batch {batch}): "
            f"{_size(self.activation_bytes)}",
        ]
        for row in self.rows:
            if row.tied:
                lines.append(f"{row.name}'s {', '.join(row.tied)} is another layer's parameter "
                             "(tied), counted there")
            if row.same_as:
                lines.append(f"{row.name} is the layer {row.same_as}, called again: its "
                             f"parameters and mult-adds are counted at {row.same_as}")
        return "\n".join(lines)

    __repr__ = __str__


def summary(model: Module, input_shape: Sequence[int], dtype: Any = None) -> Summary:
    """The summary of ``model`` run once on zeros of ``input_shape`` (batch first).

    ``dtype`` is the input's (default: the model's parameters' dtype; give an integer dtype
    for token ids).
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: expected a chainrule Module, got {type(model).__name__}")
    shape = tuple(input_shape) if not isinstance(input_shape, int) else (input_shape,)
    if not shape or any(isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 1
                        for d in shape):
        raise ValueError(f"summary: input_shape must be positive whole numbers, batch first "
                         f"(e.g. (1, 784)), got {input_shape!r}")
    if dtype is None:
        params = model.parameters()
        dtype = params[0]._data.dtype if params else np.float32
    outputs: dict[int, tuple[int, ...] | None] = {}
    handles = []
    for module in model.modules():
        def keep(layer: Module, _args: tuple, out: Any) -> None:
            outputs[id(layer)] = tuple(out.shape) if hasattr(out, "shape") else None
        handles.append(module.register_forward_hook(keep))
    try:
        recorded, _ = trace(model, Tensor(np.zeros(shape, dtype=dtype)), training=False)
    finally:
        for handle in handles:
            handle.remove()
    adds: dict[str, int] = {}
    activations = 0
    for call in recorded.calls:
        count = MULT_ADDS.get(call.fn.name)
        if count is not None:
            adds[call.layer] = adds.get(call.layer, 0) + int(count(call.args, call.output._data))
        out = call.output._data
        if not (getattr(call.fn, "view", False) and out.base is not None):  # views are free
            activations += out.nbytes
    rows, seen, first_name = [], set(), {}
    for name, module in model.named_modules():  # as the model defines them, parents first
        if not name or id(module) not in outputs:
            continue  # the model itself (its totals are below), or a layer not called
        if id(module) in first_name:  # one layer under two names: its calls count at the first
            rows.append(Row(name, type(module).__name__, outputs[id(module)], 0, 0,
                            same_as=first_name[id(module)]))
            continue
        first_name[id(module)] = name
        own = _own_parameters(module)
        tied = [key for key, p in own if id(p) in seen]
        count = sum(p._data.size for key, p in own if id(p) not in seen)
        seen.update(id(p) for _, p in own)
        leaf = not any(True for _ in module.named_children())
        if leaf or own or name in adds:  # a container without work of its own is left out
            rows.append(Row(name, type(module).__name__, outputs[id(module)], count,
                            adds.get(name, 0), tied))
    params = model.parameters()
    buffers = [b for _, b in model.named_buffers()]
    return Summary(rows, shape, sum(p._data.size for p in params),
                   sum(p._data.size for p in params if p.requires_grad),
                   sum(p._data.nbytes for p in params), sum(b._data.nbytes for b in buffers),
                   sum(adds.values()), activations)


def _own_parameters(module: Module) -> list[tuple[str, Tensor]]:
    inner = {id(p) for _, child in module.named_children() for p in child.parameters()}
    return [(key, p) for key, p in module.named_parameters() if id(p) not in inner]


def _size(nbytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes} B"


def _count(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f} {unit} ({n:,})"
    return f"{n:,}"
