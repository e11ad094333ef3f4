"""Converting between chainrule models and their ``torch.nn`` twins: the registry of converters,
``to_torch``/``from_torch``, and the helpers a converter copies weights with.

Conversion goes through a registry keyed by layer type: each layer type has a function pair,
``to_fn(layer, children) -> torch module`` and ``from_fn(torch_layer, children) -> chainrule
module``, where ``children`` are the layer's sub-modules already converted (by name). Adding a
layer is one ``register_converter`` call::

    def _softplus_to(layer, children):
        return torch.nn.Softplus()

    def _softplus_from(twin, children):
        return Softplus()

    register_converter(Softplus, "torch.nn.Softplus", _softplus_to, _softplus_from)

chainrule's own layers register theirs in ``builtin_converters``, which ``chainrule.check``
imports. torch is imported only inside these functions: training with chainrule never needs it.
"""

from __future__ import annotations

import contextvars
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule.engine.tensor import Tensor
from chainrule.nn.fused import unfuse
from chainrule.nn.module import Module, Parameter

if TYPE_CHECKING:
    import torch

TORCH_REQUIREMENT = "torch==2.13.0"


def require_torch() -> Any:
    """torch, imported on first use, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "chainrule.check.parity compares against PyTorch, which is not installed: "
            f"pip install {TORCH_REQUIREMENT}  (chainrule itself trains without it)"
        ) from error
    return torch


class ConversionError(TypeError):
    """A model cannot be converted: a layer without a converter, or a setting with no twin."""


# ============================================================================= registry
@dataclass(frozen=True)
class Converter:
    """How one chainrule layer type and its torch twin turn into each other."""

    chainrule_type: type
    torch_type: type | str
    to_fn: Callable[[Any, dict[str, Any]], Any]
    from_fn: Callable[[Any, dict[str, Module]], Module] | None


# Keyed by chainrule type, in registration order: for from_torch, the latest registration that
# claims a torch type wins, like assignment into a dict.
_CONVERTERS: dict[type, Converter] = {}


def register_converter(cr_type: type, torch_type: type | str,
                       to_fn: Callable[[Any, dict[str, Any]], Any],
                       from_fn: Callable[[Any, dict[str, Module]], Module] | None = None
                       ) -> Converter:
    """Teach ``to_torch``/``from_torch`` one layer type (replacing an earlier registration).

    ``torch_type`` is the torch class or its dotted name (``"torch.nn.Linear"``, resolved only
    when needed, so registering does not import torch). ``to_fn(layer, children)`` returns the
    torch twin and ``from_fn(torch_layer, children)`` the chainrule layer; ``children`` maps
    each sub-module's name to its converted twin. Copy weights with ``to_torch_parameter`` and
    ``from_torch_parameter``; training mode is carried over for you. Leave ``from_fn`` out for
    a one-way converter, e.g. a debugging variant of a layer whose torch twin should keep
    converting back to the standard layer.
    """
    if not (isinstance(cr_type, type) and issubclass(cr_type, Module)):
        raise TypeError(f"register_converter: {cr_type!r} is not a chainrule Module class")
    if not isinstance(torch_type, (type, str)):
        raise TypeError(f"register_converter: torch_type must be a class or a dotted name "
                        f"like 'torch.nn.Linear', got {torch_type!r}")
    if not callable(to_fn) or (from_fn is not None and not callable(from_fn)):
        raise TypeError("register_converter: to_fn and from_fn must be functions")
    converter = Converter(cr_type, torch_type, to_fn, from_fn)
    _CONVERTERS.pop(cr_type, None)  # re-registering moves it last, so it wins for from_torch
    _CONVERTERS[cr_type] = converter
    return converter


def unregister_converter(cr_type: type) -> None:
    """Forget the converter of ``cr_type``."""
    if _CONVERTERS.pop(cr_type, None) is None:
        raise KeyError(f"unregister_converter: no converter is registered for {cr_type!r}")


def _resolve(torch_type: type | str) -> type:
    if isinstance(torch_type, type):
        return torch_type
    if torch_type.split(".")[0] == "torch":
        require_torch()  # a missing torch gets the install hint, not a bare ModuleNotFoundError
    parts = torch_type.split(".")
    obj: Any = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:  # a submodule its package does not import by itself
            obj = importlib.import_module(".".join(parts[:i + 1]))
    return obj


def _from_torch_table() -> dict[type, Converter]:
    table = {_resolve(c.torch_type): c for c in _CONVERTERS.values() if c.from_fn is not None}
    linear = require_torch().nn.Linear
    if linear in table:
        # torch.nn.MultiheadAttention keeps out_proj as this subclass of Linear, which only
        # changes how torch quantizes it: it is a Linear in every other way.
        from torch.nn.modules.linear import NonDynamicallyQuantizableLinear

        table.setdefault(NonDynamicallyQuantizableLinear, table[linear])
    return table


# Within one conversion: id(source tensor) -> (source, twin), so tied weights stay tied.
_TIES: contextvars.ContextVar[dict[int, tuple[Any, Any]] | None] = contextvars.ContextVar(
    "chainrule_parity_ties", default=None)


def to_torch_parameter(tensor: Tensor | None) -> torch.nn.Parameter | None:
    """A torch Parameter holding a copy of ``tensor`` (same dtype and requires_grad)."""
    if tensor is None:
        return None
    ties = _TIES.get()
    if ties is not None and id(tensor) in ties:
        return ties[id(tensor)][1]
    torch = require_torch()
    data = np.array(tensor.data, order="C", copy=True)  # the twin must not share memory
    twin = torch.nn.Parameter(torch.from_numpy(data), requires_grad=tensor.requires_grad)
    if ties is not None:
        ties[id(tensor)] = (tensor, twin)
    return twin


def from_torch_parameter(param: torch.Tensor | None) -> Parameter | None:
    """A chainrule Parameter holding a copy of a torch tensor (same dtype and requires_grad)."""
    if param is None:
        return None
    ties = _TIES.get()
    if ties is not None and id(param) in ties:
        return ties[id(param)][1]
    torch = require_torch()
    if param.dtype not in (torch.float32, torch.float64):
        raise ConversionError(f"a parameter has dtype {param.dtype}; chainrule keeps float32 "
                              "or float64 weights: call .float() or .double() on the torch "
                              "model first")
    data = param.detach().cpu().numpy().copy()
    twin = Parameter(data, requires_grad=param.requires_grad)
    if ties is not None:
        ties[id(param)] = (param, twin)
    return twin


def to_torch_buffer(tensor: Tensor | None) -> torch.Tensor | None:
    """A torch tensor holding a copy of a buffer (running statistics, counters)."""
    if tensor is None:
        return None
    return require_torch().from_numpy(np.array(tensor.data, order="C", copy=True))


def from_torch_buffer(buffer: torch.Tensor | None) -> np.ndarray | None:
    """A NumPy copy of a torch buffer, for ``Module.register_buffer``."""
    return None if buffer is None else buffer.detach().cpu().numpy().copy()


# ============================================================================= converting
def _describe(path: str, module: Any) -> str:
    kind = type(module).__name__
    if getattr(type(module), "bwd", None) is not None:
        kind += ", a hand-written layer with bwd"
    return f"{path or '<model>'} ({kind})"


def _convert(module: Any, path: str, table: dict[type, Converter], forward: bool,
             memo: dict[int, tuple[Any, Any]]) -> Any:
    """Convert children first, then ``module``; a module reached twice is converted once."""
    if id(module) in memo:
        return memo[id(module)][1]
    if forward:
        named = list(module.named_children())
    else:  # not named_children(): it skips a module listed twice, which would drop a layer
        named = [(name, child) for name, child in module._modules.items() if child is not None]
    children = {name: _convert(child, f"{path}.{name}" if path else name, table, forward, memo)
                for name, child in named}
    converter = table[type(module)]
    try:
        twin = (converter.to_fn if forward else converter.from_fn)(module, children)
    except ConversionError as error:
        raise ConversionError(f"{'to_torch' if forward else 'from_torch'}: "
                              f"{_describe(path, module)}: {error}") from None
    expected = require_torch().nn.Module if forward else Module
    if not isinstance(twin, expected):
        raise ConversionError(f"the converter of {type(module).__name__} returned a "
                              f"{type(twin).__name__}, not a {expected.__module__}."
                              f"{expected.__name__}")
    twin.training = module.training  # per module: a model may mix train and eval parts
    memo[id(module)] = (module, twin)
    return twin


def _refuse_unknown(modules: Iterable[tuple[str, Any]], known: Callable[[Any], bool],
                    direction: str, supported: list[str]) -> None:
    missing = [(path, m) for path, m in modules if not known(m)]
    if not missing:
        return
    raise ConversionError(
        f"{direction}: no converter for {', '.join(_describe(p, m) for p, m in missing)}. "
        f"Converters exist for: {', '.join(supported)}. To add a layer, register a function "
        f"pair: chainrule.check.register_converter({type(missing[0][1]).__name__}, "
        "torch.nn.<Twin>, to_fn, from_fn), where to_fn(layer, children) returns the torch "
        "module and from_fn(torch_layer, children) the chainrule one")


def _torch_name(cls: type) -> str:
    """'torch.nn.Linear' rather than 'torch.nn.modules.linear.Linear' where torch.nn has it."""
    if getattr(require_torch().nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def to_torch(model: Module) -> torch.nn.Module:
    """The torch.nn twin of a chainrule model: same names, weights copied, dtype and mode kept."""
    require_torch()  # first, so that a missing torch says how to install it
    if not isinstance(model, Module):
        raise TypeError(f"to_torch: expected a chainrule Module, got {type(model).__name__}")
    model = unfuse(model)  # torch.nn has the plain layers: nn.fuse's names and state are theirs
    _refuse_unknown(model.named_modules(), lambda m: type(m) in _CONVERTERS, "to_torch",
                    [t.__name__ for t in _CONVERTERS])
    token = _TIES.set({})
    try:
        return _convert(model, "", _CONVERTERS, True, {})
    finally:
        _TIES.reset(token)


def from_torch(torch_module: torch.nn.Module) -> Module:
    """The chainrule twin of a torch.nn model: same names, weights copied, dtype and mode kept."""
    torch = require_torch()
    if not isinstance(torch_module, torch.nn.Module):
        raise TypeError(f"from_torch: expected a torch.nn.Module, got "
                        f"{type(torch_module).__name__}")
    table = _from_torch_table()
    _refuse_unknown(torch_module.named_modules(), lambda m: type(m) in table, "from_torch",
                    [_torch_name(t) for t in table])
    token = _TIES.set({})
    try:
        return _convert(torch_module, "", table, False, {})
    finally:
        _TIES.reset(token)
