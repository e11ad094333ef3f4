"""Tracing: run a model once and keep every op call it made, with its arguments by name.

The tape keeps only what backward needs (a Function, its context and its tensor inputs).
An exporter needs more: each op's attributes (a convolution's stride, a reshape's shape),
the values that were not tensors, the layer each op ran in, and ops that record nothing on
the tape because no input wanted a gradient. ``Function.apply`` hands each call to the
active ``Trace``; nothing is recorded, and nothing costs more, when none is active.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.engine import backend
from chainrule.engine.function import Function
from chainrule.engine.tensor import STATE, Tensor, no_grad
from chainrule.nn.module import Module

_SIGNATURES: dict[type, inspect.Signature] = {}


@dataclass(frozen=True)
class _Untaped:
    """Stands for the Function of a call that has none (a comparison, logical or bitwise op,
    named as ``engine.tensor.untaped`` was told)."""

    name: str


def array_of(value: Any) -> np.ndarray:
    """A call's argument as an array: a tensor's own, or the value as NumPy has it."""
    return value._data if isinstance(value, Tensor) else np.asarray(value)


@dataclass
class Call:
    """One op call: its Function, its arguments by parameter name, its output, its layer."""

    fn: type[Function] | _Untaped
    args: dict[str, Any]
    output: Tensor
    layer: str


class Trace:
    """What ``Function.apply`` records while this is ``STATE.tracer``: a list of ``Call``."""

    def __init__(self, model: Module | None = None) -> None:
        self.calls: list[Call] = []
        self.layers: list[Module] = []  # modules being called, outermost first
        self._names: dict[int, str] = {}
        for name, module in model.named_modules() if model is not None else ():
            self._names.setdefault(id(module), name)  # a layer used twice: its first name
        self._previous: Trace | None = None

    def record(self, fn: type[Function], inputs: tuple, attrs: dict[str, Any],
               output: Tensor) -> None:
        """Keep one call (Function.apply calls this after every forward)."""
        self.calls.append(Call(fn, _bind(fn, inputs, attrs), output, self._layer()))

    def _layer(self) -> str:
        for module in reversed(self.layers):  # the innermost named layer
            layer = self._names.get(id(module), "")
            if layer:
                return layer
        return ""

    def record_untaped(self, name: str, args: dict[str, Any], output: Tensor) -> None:
        """Keep a call that no Function makes (a comparison: bool results, no gradient)."""
        self.calls.append(Call(_Untaped(name), args, output, self._layer()))

    def __enter__(self) -> Trace:
        self._previous, STATE.tracer = STATE.tracer, self
        return self

    def __exit__(self, *exc: object) -> None:
        STATE.tracer = self._previous
        self.layers.clear()


def _bind(fn: type[Function], inputs: tuple, attrs: dict[str, Any]) -> dict[str, Any]:
    """The call's arguments by forward's parameter names, defaults filled in."""
    signature = _SIGNATURES.get(fn)
    if signature is None:
        signature = _SIGNATURES[fn] = inspect.signature(fn.forward)
    bound = signature.bind(None, *inputs, **attrs)
    bound.apply_defaults()
    args = dict(bound.arguments)
    args.pop(next(iter(signature.parameters)))  # ctx
    for name, parameter in signature.parameters.items():
        if parameter.kind is inspect.Parameter.VAR_KEYWORD:
            args.update(args.pop(name, {}))
    return args


@contextmanager
def _kept_state(model: Module) -> Iterator[None]:
    """Run a block and put back the model's buffers and the global random stream after it:
    a traced forward in training mode must not move BatchNorm's running statistics."""
    buffers = [(buffer, buffer._data.copy()) for _, buffer in model.named_buffers()]
    stream = backend.default_generator().bit_generator.state
    try:
        yield
    finally:
        for buffer, data in buffers:
            buffer._data[...] = data
        backend.default_generator().bit_generator.state = stream


@contextmanager
def in_mode(model: Module, training: bool | None) -> Iterator[None]:
    """Run a block with every layer of ``model`` in training (or eval) mode, then give each
    layer back its own mode (a frozen BatchNorm inside a training model stays frozen).
    None leaves the modes as they are."""
    modes = [(module, module.training) for module in model.modules()]
    if training is not None:
        model.train(training)
    try:
        yield
    finally:
        for module, mode in modes:
            module.training = mode


def trace(model: Module, *inputs: Any, training: bool | None = None) -> tuple[Trace, Any]:
    """Run ``model(*inputs)`` once without recording a tape; return the trace and the output.

    ``training`` runs it in training (True) or eval (False) mode rather than the layers' own.
    The model's modes, buffers and the global random stream are as they were afterwards.
    """
    with in_mode(model, training), _kept_state(model), Trace(model) as recorded, no_grad():
        output = model(*inputs)
    return recorded, output
