"""PyTorch parity: turn a chainrule model into its ``torch.nn`` twin and back, and compare one
batch through both, layer by layer.

Conversion goes through a registry keyed by layer type: each layer type has a function pair,
``to_fn(layer, children) -> torch module`` and ``from_fn(torch_layer, children) -> chainrule
module``, where ``children`` are the layer's sub-modules already converted (by name). Adding a
layer is one ``register_converter`` call::

    def _softplus_to(layer, children):
        return torch.nn.Softplus()

    def _softplus_from(twin, children):
        return Softplus()

    register_converter(Softplus, "torch.nn.Softplus", _softplus_to, _softplus_from)

``parity_report`` runs one batch through a model and its twin and says, per layer, how far the
outputs, the gradients of the outputs and the parameter gradients are apart, and which layer
disagrees with torch when given identical inputs.

torch is imported only inside these functions: training with chainrule never needs it.
"""

from __future__ import annotations

import contextvars
import copy
import functools
import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule import nn
from chainrule.check.comparison import (
    compare,
    first_index,
    nonfinite_message,
    validate_settings,
)
from chainrule.nn.module import Module, Parameter
from chainrule.ops import loss as ops_loss
from chainrule.tensor import Tensor, enable_grad

if TYPE_CHECKING:
    import torch

TORCH_REQUIREMENT = "torch==2.13.0"


def _torch() -> Any:
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
        _torch()  # a missing torch gets the install hint, not a bare ModuleNotFoundError
    parts = torch_type.split(".")
    obj: Any = importlib.import_module(parts[0])
    for i, part in enumerate(parts[1:], start=1):
        try:
            obj = getattr(obj, part)
        except AttributeError:  # a submodule its package does not import by itself
            obj = importlib.import_module(".".join(parts[:i + 1]))
    return obj


def _from_torch_table() -> dict[type, Converter]:
    return {_resolve(c.torch_type): c for c in _CONVERTERS.values() if c.from_fn is not None}


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
    torch = _torch()
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
    torch = _torch()
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
    return _torch().from_numpy(np.array(tensor.data, order="C", copy=True))


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
    expected = _torch().nn.Module if forward else Module
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
    if getattr(_torch().nn, cls.__name__, None) is cls:
        return f"torch.nn.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def to_torch(model: Module) -> torch.nn.Module:
    """The torch.nn twin of a chainrule model: same names, weights copied, dtype and mode kept."""
    _torch()  # first, so that a missing torch says how to install it
    if not isinstance(model, Module):
        raise TypeError(f"to_torch: expected a chainrule Module, got {type(model).__name__}")
    _refuse_unknown(model.named_modules(), lambda m: type(m) in _CONVERTERS, "to_torch",
                    [t.__name__ for t in _CONVERTERS])
    token = _TIES.set({})
    try:
        return _convert(model, "", _CONVERTERS, True, {})
    finally:
        _TIES.reset(token)


def from_torch(torch_module: torch.nn.Module) -> Module:
    """The chainrule twin of a torch.nn model: same names, weights copied, dtype and mode kept."""
    torch = _torch()
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


# ----------------------------------------------------------------------------- built-ins
def _linear_to(layer: nn.Linear, _children: dict[str, Any]) -> Any:
    # On the meta device: building it draws no random numbers from torch's generator.
    twin = _torch().nn.Linear(layer.in_features, layer.out_features,
                              bias=layer.bias is not None, device="meta")
    twin.weight = to_torch_parameter(layer.weight)
    twin.bias = to_torch_parameter(layer.bias)
    return twin


def _linear_from(twin: Any, _children: dict[str, Module]) -> nn.Linear:
    # A private generator: the throwaway initial values leave chainrule's own stream alone.
    layer = nn.Linear(twin.in_features, twin.out_features, bias=twin.bias is not None,
                      generator=np.random.default_rng(0))
    layer.weight = from_torch_parameter(twin.weight)
    layer.bias = from_torch_parameter(twin.bias)
    return layer


def _sequential_to(_layer: nn.Sequential, children: dict[str, Any]) -> Any:
    return _torch().nn.Sequential(*children.values())


def _sequential_from(_twin: Any, children: dict[str, Module]) -> nn.Sequential:
    names = list(children)
    if names != [str(i) for i in range(len(names))]:
        raise ConversionError(f"its layers are named {', '.join(names)}, but a chainrule "
                              "Sequential numbers them 0, 1, ...: build the torch Sequential "
                              "from positional layers so the weights keep their names")
    return nn.Sequential(*children.values())


def _register_loss(cr_type: type, torch_name: str, reductions: tuple[str, ...],
                   defaults: dict[str, Any]) -> None:
    """A loss layer: only ``reduction`` carries over; other torch options must be defaults."""

    def to_fn(layer: Any, _children: dict[str, Any]) -> Any:
        return getattr(_torch().nn, torch_name)(reduction=layer.reduction)

    def from_fn(twin: Any, _children: dict[str, Module]) -> Module:
        for name, default in defaults.items():
            value = getattr(twin, name, default)
            if (value is not None) if default is None else value != default:
                raise ConversionError(f"{name}={value!r} has no chainrule equivalent")
        if twin.reduction not in reductions:
            raise ConversionError(f"reduction={twin.reduction!r}: chainrule's {cr_type.__name__}"
                                  f" takes {' or '.join(map(repr, reductions))}")
        return cr_type(twin.reduction)

    to_fn.__name__, from_fn.__name__ = f"_{torch_name}_to", f"_{torch_name}_from"
    register_converter(cr_type, f"torch.nn.{torch_name}", to_fn, from_fn)


def _conv_to(layer: nn.Conv2d, _children: dict[str, Any]) -> Any:
    twin = _torch().nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                              stride=layer.stride, padding=layer.padding,
                              dilation=layer.dilation, groups=layer.groups,
                              bias=layer.bias is not None, device="meta")
    twin.weight = to_torch_parameter(layer.weight)
    twin.bias = to_torch_parameter(layer.bias)
    return twin


def _conv_from(twin: Any, _children: dict[str, Module]) -> nn.Conv2d:
    if twin.padding_mode != "zeros" or isinstance(twin.padding, str):
        raise ConversionError(f"padding={twin.padding!r}, padding_mode={twin.padding_mode!r}: "
                              "chainrule's Conv2d pads with zeros by a number of pixels")
    layer = nn.Conv2d(twin.in_channels, twin.out_channels, twin.kernel_size, twin.stride,
                      twin.padding, twin.dilation, twin.groups, bias=twin.bias is not None,
                      generator=np.random.default_rng(0))
    layer.weight = from_torch_parameter(twin.weight)
    layer.bias = from_torch_parameter(twin.bias)
    return layer


def _pool_to(layer: nn.MaxPool2d, _children: dict[str, Any]) -> Any:
    torch_nn = _torch().nn
    if isinstance(layer, nn.AvgPool2d):
        return torch_nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding,
                                  count_include_pad=True)
    return torch_nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)


def _pool_from(twin: Any, _children: dict[str, Module]) -> Module:
    options = {"ceil_mode": False, "dilation": 1, "return_indices": False,
               "count_include_pad": True, "divisor_override": None}
    for name, default in options.items():
        if getattr(twin, name, default) not in (default, (default, default)):
            raise ConversionError(f"{name}={getattr(twin, name)!r} has no chainrule equivalent")
    cls = nn.AvgPool2d if type(twin).__name__ == "AvgPool2d" else nn.MaxPool2d
    return cls(twin.kernel_size, twin.stride, twin.padding)


def _flatten_to(layer: nn.Flatten, _children: dict[str, Any]) -> Any:
    return _torch().nn.Flatten(layer.start_axis, layer.end_axis)


def _flatten_from(twin: Any, _children: dict[str, Module]) -> nn.Flatten:
    return nn.Flatten(twin.start_dim, twin.end_dim)


def _batch_norm_to(layer: Any, _children: dict[str, Any]) -> Any:
    twin = getattr(_torch().nn, type(layer).__name__)(
        layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
        track_running_stats=layer.track_running_stats, device="meta")
    twin.weight = to_torch_parameter(layer.weight)
    twin.bias = to_torch_parameter(layer.bias)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        setattr(twin, name, to_torch_buffer(getattr(layer, name)))
    return twin


def _batch_norm_from(twin: Any, _children: dict[str, Module]) -> Module:
    cls = nn.BatchNorm2d if type(twin).__name__ == "BatchNorm2d" else nn.BatchNorm1d
    state = twin.weight if twin.weight is not None else twin.running_mean
    dtype = str(state.dtype).replace("torch.", "") if state is not None else None
    layer = cls(twin.num_features, eps=twin.eps, momentum=twin.momentum, affine=twin.affine,
                track_running_stats=twin.track_running_stats, dtype=dtype)
    if twin.affine:
        layer.weight = from_torch_parameter(twin.weight)
        layer.bias = from_torch_parameter(twin.bias)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        layer.register_buffer(name, from_torch_buffer(getattr(twin, name)))
    return layer


def _layer_norm_to(layer: nn.LayerNorm, _children: dict[str, Any]) -> Any:
    twin = _torch().nn.LayerNorm(layer.normalized_shape, eps=layer.eps,
                                 elementwise_affine=layer.elementwise_affine,
                                 bias=layer.bias is not None, device="meta")
    twin.weight = to_torch_parameter(layer.weight)
    twin.bias = to_torch_parameter(layer.bias)
    return twin


def _layer_norm_from(twin: Any, _children: dict[str, Module]) -> nn.LayerNorm:
    layer = nn.LayerNorm(twin.normalized_shape, eps=twin.eps,
                         elementwise_affine=twin.elementwise_affine,
                         bias=twin.bias is not None)
    layer.weight = from_torch_parameter(twin.weight)
    layer.bias = from_torch_parameter(twin.bias)
    return layer


def _register_simple(cr_type: type, torch_name: str, *settings: str) -> None:
    """A layer without weights whose settings have the same names on both sides."""

    def to_fn(layer: Any, _children: dict[str, Any]) -> Any:
        return getattr(_torch().nn, torch_name)(**{k: getattr(layer, k) for k in settings})

    def from_fn(twin: Any, _children: dict[str, Module]) -> Module:
        return cr_type(**{k: getattr(twin, k) for k in settings})  # inplace: same values

    to_fn.__name__, from_fn.__name__ = f"_{torch_name}_to", f"_{torch_name}_from"
    register_converter(cr_type, f"torch.nn.{torch_name}", to_fn, from_fn)


def _twins() -> Any:
    from chainrule.check import torch_twins  # imports torch: only when converting
    return torch_twins


def _global_pool_to(_layer: Any, _children: dict[str, Any]) -> Any:
    return _twins().GlobalAvgPool2d()


def _global_pool_from(_twin: Any, _children: dict[str, Module]) -> Module:
    return nn.GlobalAvgPool2d()


def _residual_to(layer: Any, children: dict[str, Any]) -> Any:
    return _twins().ResidualBlock(children["conv1"], children["bn1"], children["conv2"],
                                  children["bn2"], children.get("shortcut"))


def _residual_from(twin: Any, children: dict[str, Module]) -> Module:
    conv1, conv2 = children["conv1"], children["conv2"]
    # A private generator, as for Linear and Conv2d: the throwaway initial values leave
    # chainrule's own stream alone.
    block = nn.ResidualBlock(conv1.in_channels, conv1.out_channels, conv1.stride[0],
                             generator=np.random.default_rng(0))
    # Swap in the converted layers: they carry the twin's weights and running statistics.
    block.conv1, block.bn1, block.conv2, block.bn2 = conv1, children["bn1"], conv2, \
        children["bn2"]
    block.shortcut = children.get("shortcut")
    return block


register_converter(nn.Linear, "torch.nn.Linear", _linear_to, _linear_from)
register_converter(nn.GlobalAvgPool2d, "chainrule.check.torch_twins.GlobalAvgPool2d",
                   _global_pool_to, _global_pool_from)
register_converter(nn.ResidualBlock, "chainrule.check.torch_twins.ResidualBlock",
                   _residual_to, _residual_from)
register_converter(nn.Conv2d, "torch.nn.Conv2d", _conv_to, _conv_from)
register_converter(nn.MaxPool2d, "torch.nn.MaxPool2d", _pool_to, _pool_from)
register_converter(nn.AvgPool2d, "torch.nn.AvgPool2d", _pool_to, _pool_from)
register_converter(nn.Flatten, "torch.nn.Flatten", _flatten_to, _flatten_from)
_register_simple(nn.ReLU, "ReLU")
register_converter(nn.Sequential, "torch.nn.Sequential", _sequential_to, _sequential_from)
register_converter(nn.BatchNorm1d, "torch.nn.BatchNorm1d", _batch_norm_to, _batch_norm_from)
register_converter(nn.BatchNorm2d, "torch.nn.BatchNorm2d", _batch_norm_to, _batch_norm_from)
register_converter(nn.LayerNorm, "torch.nn.LayerNorm", _layer_norm_to, _layer_norm_from)
_register_simple(nn.Tanh, "Tanh")
_register_simple(nn.Sigmoid, "Sigmoid")
_register_simple(nn.SiLU, "SiLU")
_register_simple(nn.LeakyReLU, "LeakyReLU", "negative_slope")
_register_simple(nn.GELU, "GELU", "approximate")
_register_simple(nn.Dropout, "Dropout", "p")
_ALL_REDUCTIONS = ("mean", "sum", "none")
_register_loss(nn.MSELoss, "MSELoss", ("mean", "sum"), {})
_register_loss(nn.CrossEntropyLoss, "CrossEntropyLoss", _ALL_REDUCTIONS,
               {"weight": None, "ignore_index": -100, "label_smoothing": 0.0})
_register_loss(nn.NLLLoss, "NLLLoss", _ALL_REDUCTIONS, {"weight": None, "ignore_index": -100})
_register_loss(nn.BCEWithLogitsLoss, "BCEWithLogitsLoss", _ALL_REDUCTIONS,
               {"weight": None, "pos_weight": None})


# ============================================================================= the report
@dataclass(frozen=True)
class Diff:
    """The largest difference between a chainrule array and its torch counterpart."""

    layer: str
    quantity: str  # "output", "output grad", "weight grad", "local output", ...
    max_abs: float
    max_rel: float  # max_abs over the largest |torch value|: digits of agreement, not noise
    ok: bool
    problem: str = ""  # NaN/inf on one side, or nothing to compare with: said in words
    compared: int | None = None  # how many elements were compared (None: not counted)
    wrong: int | None = None  # how many are known to differ (None: not counted)
    uncomparable: int = 0  # how many could not be compared: torch gives NaN there

    @property
    def disagrees(self) -> bool:
        """Some element is known to differ, not merely uncomparable (torch gives NaN)."""
        if self.ok:
            return False
        return self.wrong is None or self.wrong > 0 or not self.uncomparable

    def __str__(self) -> str:
        text = (f"{self.layer} {self.quantity}: {_number(self.max_rel)} relative, "
                f"{_number(self.max_abs)} absolute{'' if self.ok else ' (beyond tolerance)'}")
        return f"{text}; {self.problem}" if self.problem else text


@dataclass
class LayerParity:
    """One row of the report: a layer (or the input, or the loss) and its differences."""

    name: str
    type: str
    torch_type: str
    forward: Diff | None = None
    output_grad: Diff | None = None
    param_grads: dict[str, Diff] = field(default_factory=dict)
    local: list[Diff] = field(default_factory=list)  # the layer alone, on identical inputs
    calls: int = 0
    matched: bool = True  # False when the torch model has no layer of this name
    note: str = ""

    def diffs(self) -> list[Diff]:
        """Every difference in this row."""
        found = [self.forward, self.output_grad, *self.param_grads.values(), *self.local]
        return [d for d in found if d is not None]

    @property
    def local_ok(self) -> bool:
        """The layer by itself agrees with its twin (False also when it has no twin).

        A local run that torch answers with NaN too (fed a NaN from elsewhere) is no
        disagreement of this layer's; the row is still not ok."""
        return self.matched and not any(d.disagrees for d in self.local)

    @property
    def ok(self) -> bool:
        """Everything in this row is within tolerance."""
        return self.local_ok and all(d.ok for d in self.diffs())

    @property
    def status(self) -> str:
        """✓ agrees; ✗ disagrees on identical inputs; ~ differs only by inheritance."""
        return "✓" if self.ok else "✗" if not self.local_ok else "~"


@dataclass
class ParityReport:
    """What ``parity_report`` compared; ``print(report)`` shows it as a table."""

    rows: list[LayerParity]
    dtype: str
    loss_name: str
    loss: tuple[float, float]  # (chainrule, torch)
    rtol: float
    atol: float
    batch: int | None = None
    torch_version: str = ""
    nothing_compared: str = ""  # why the comparison compared nothing ('' when it did)

    @property
    def ok(self) -> bool:
        """Something was compared, and every output, gradient and local check agrees."""
        return not self.nothing_compared and all(row.ok for row in self.rows)

    @property
    def flagged(self) -> list[str]:
        """Names of the rows that disagree with torch on identical inputs (✗)."""
        return [row.name for row in self.rows if row.status == "✗"]

    @property
    def worst(self) -> Diff | None:
        """The largest relative difference anywhere in the report."""
        diffs = [d for row in self.rows for d in row.diffs()]
        return max(diffs, key=lambda d: d.max_rel, default=None)

    def __str__(self) -> str:
        batch = f"one batch of {self.batch}" if self.batch is not None else "one batch"
        title = (f"parity chainrule vs torch {self.torch_version}: {batch} at {self.dtype}, "
                 f"loss {self.loss_name} ({self.loss[0]:.10g} vs {self.loss[1]:.10g})")
        scale = ("cells: max |chainrule - torch| / max |torch| per tensor, ! beyond tolerance "
                 f"(rtol {self.rtol:g}, atol {self.atol:g})")
        local = "local: the layer alone, fed identical inputs and output gradient in both"
        lines = [title, scale, local, ""]
        header = ("layer", "type", "forward", "output grad", "parameter grads", "local", "")
        table = [header] + [(
            row.name, row.type, _cell(row.forward), _cell(row.output_grad),
            "  ".join(f"{n} {_cell(d)}" for n, d in row.param_grads.items()) or "-",
            _cell(max(row.local, key=lambda d: d.max_rel, default=None)), row.status,
        ) for row in self.rows]
        widths = [max(len(r[i]) for r in table) for i in range(len(header))]
        for r in table:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
        for row in self.rows:
            if row.note:
                lines.append(f"  {row.name}: {row.note}")
        # The layers that disagree on their own come first: that is where a NaN starts.
        ordered = sorted(self.rows, key=lambda row: row.status != "✗")
        problems = [d.problem for row in ordered
                    for d in sorted(row.diffs(), key=lambda d: d not in row.local)
                    if d.problem]
        lines += [f"  {problem}" for problem in problems[:_PROBLEMS_SHOWN]]
        if len(problems) > _PROBLEMS_SHOWN:
            lines.append(f"  ... and {len(problems) - _PROBLEMS_SHOWN} more like these")
        lines.append("")
        worst = self.worst
        largest = f"largest difference: {worst}" if worst else "nothing compared"
        if self.nothing_compared:
            lines.append(f"FAILED: nothing was compared: {self.nothing_compared}")
        elif self.ok:
            lines.append(f"OK: every layer agrees with torch ({largest})")
        else:
            flagged = [r for r in self.rows if r.status == "✗"]
            if flagged:
                named = ", ".join(f"{r.name} ({r.type})" for r in flagged)
                inherited = any(r.status == "~" for r in self.rows)
                lines.append(f"FAILED: disagrees with torch on identical inputs: {named}"
                             + (". Rows marked ~ only inherit that difference" * inherited))
            elif any(d.uncomparable for row in self.rows for d in row.diffs()):
                lines.append("FAILED: torch gives NaN as well, so some values could not be "
                             "compared (see above): choose inputs where the model is finite")
            else:
                lines.append("FAILED: every layer agrees with torch on its own, yet the "
                             "results differ: look at the code between layers (a container's "
                             "forward) or the loss")
            lines.append(largest)
        return "\n".join(lines)


_PROBLEMS_SHOWN = 6  # NaN lines: the first few say where it starts; the rest inherit it


def _number(x: float) -> str:
    return "0" if x == 0 else f"{x:.1e}"


def _cell(diff: Diff | None) -> str:
    return "-" if diff is None else _number(diff.max_rel) + ("" if diff.ok else "!")


def _compare(layer: str, quantity: str, pairs: list[tuple[Any, Any]], rtol: float,
             atol: float) -> Diff | None:
    """Max abs and scale-relative difference over ``pairs``; a missing gradient counts as 0.

    Goes through the shared comparison: a NaN/inf in chainrule's value where torch's is
    finite is a failure, the same infinity on both sides agrees (torch's value is exact), and
    a NaN from torch means that element could not be compared, which is a failure too.
    """
    prepared = []
    for ours, theirs in pairs:
        if ours is None and theirs is None:
            continue
        ours = np.zeros_like(theirs) if ours is None else np.asarray(ours, np.float64)
        theirs = np.zeros_like(ours) if theirs is None else np.asarray(theirs, np.float64)
        if ours.shape != theirs.shape:
            return Diff(layer, f"{quantity} (shapes {ours.shape} vs {theirs.shape})",
                        np.inf, np.inf, False, compared=0)
        prepared.append((ours, theirs))
    if not prepared:
        return None
    # One scale for the whole tensor: the tolerance is relative to its largest finite value.
    scale = max(float(np.abs(t[np.isfinite(t)]).max(initial=0.0)) for _, t in prepared)
    max_abs, ok, compared, wrong, uncomparable, problem = 0.0, True, 0, 0, 0, ""
    for ours, theirs in prepared:
        verdict = compare(theirs, ours, rtol, atol, scale=scale, exact_inf=True)
        max_abs = max(max_abs, verdict.max_abs)
        ok = ok and verdict.ok
        compared += verdict.compared
        wrong += int(verdict.wrong.sum())
        uncomparable += int(verdict.unchecked.sum())
        if problem:
            continue
        if verdict.nonfinite.any():
            problem = nonfinite_message(f"chainrule's {quantity} at {layer}", ours,
                                        verdict.nonfinite, theirs, "torch")
        elif verdict.unchecked.any():
            j = first_index(verdict.unchecked)
            problem = (f"could not compare the {quantity} at {layer}: torch gives NaN at "
                       f"{int(verdict.unchecked.sum())} of {theirs.size} elements (first at "
                       f"{j}, where chainrule gives {float(ours[j]):.6g})")
    rel = max_abs / scale if scale > 0 else (0.0 if max_abs == 0 else np.inf)
    return Diff(layer, quantity, max_abs, rel, ok, problem=problem, compared=compared,
                wrong=wrong, uncomparable=uncomparable)


# ----------------------------------------------------------------------------- recording
@dataclass
class _Calls:
    """What a layer saw on each call: inputs, output, and the gradient of that output."""

    args: list[tuple] = field(default_factory=list)
    outputs: list[np.ndarray | None] = field(default_factory=list)
    grads: list[np.ndarray | None] = field(default_factory=list)


def _numpy(value: Any) -> Any:
    torch = _torch()
    if isinstance(value, Tensor):
        return value.data.copy()
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    return value.copy() if isinstance(value, np.ndarray) else value


def _recorder(calls: _Calls, tensor_type: type) -> Callable[[Any, tuple, Any], None]:
    def hook(_module: Any, args: tuple, out: Any) -> None:
        index = len(calls.outputs)
        calls.args.append(tuple(_numpy(a) for a in args))
        calls.grads.append(None)
        if not isinstance(out, tensor_type):
            calls.outputs.append(None)
            return
        calls.outputs.append(_numpy(out))
        if out.requires_grad:
            def keep(grad: Any) -> None:
                calls.grads[index] = _numpy(grad)
            out.register_hook(keep)
    return hook


def _leaf_args(arrays: tuple, make: Callable[[np.ndarray, bool], Any]) -> list[Any]:
    return [make(a, a.dtype.kind == "f") if isinstance(a, np.ndarray) else a for a in arrays]


def _local(name: str, layer: Module, twin: Any, calls: _Calls, rtol: float,
           atol: float) -> list[Diff]:
    """Run the layer and its twin alone on each recorded call: identical inputs and grads."""
    torch = _torch()
    outputs: list[tuple] = []
    arg_grads: dict[int, list[tuple]] = {}
    param_grads: dict[str, list[tuple]] = {}
    own = dict(layer.named_parameters())
    theirs = dict(twin.named_parameters())
    for args, grad in zip(calls.args, calls.grads):
        ours_in = _leaf_args(args, lambda a, f: Tensor(a.copy(), requires_grad=f))
        their_in = _leaf_args(args, lambda a, f: torch.from_numpy(a.copy()).requires_grad_(f))
        layer.zero_grad()
        with enable_grad():
            out = layer(*ours_in)
        with torch.enable_grad():
            their_out = twin(*their_in)
        if not isinstance(out, Tensor) or not isinstance(their_out, torch.Tensor):
            continue
        outputs.append((out.data, _numpy(their_out)))
        if grad is None or not out.requires_grad or not their_out.requires_grad:
            continue
        out.backward(grad)
        wanted = [t for t in their_in if isinstance(t, torch.Tensor) and t.requires_grad]
        trainable = [(n, p) for n, p in theirs.items() if p.requires_grad]
        got = torch.autograd.grad(their_out, wanted + [p for _, p in trainable],
                                  torch.from_numpy(grad), allow_unused=True)
        leaves = [t for t in ours_in if isinstance(t, Tensor) and t.requires_grad]
        for i, (mine, g) in enumerate(zip(leaves, got)):
            arg_grads.setdefault(i, []).append((mine.grad, _numpy(g) if g is not None
                                                else None))
        for (pname, _), g in zip(trainable, got[len(wanted):]):
            if pname in own:
                param_grads.setdefault(pname, []).append(
                    (own[pname].grad, _numpy(g) if g is not None else None))
    diffs = [_compare(name, "local output", outputs, rtol, atol)]
    for i, pairs in arg_grads.items():
        label = "local input grad" if len(arg_grads) == 1 else f"local input {i} grad"
        diffs.append(_compare(name, label, pairs, rtol, atol))
    diffs += [_compare(name, f"local {p} grad", pairs, rtol, atol)
              for p, pairs in param_grads.items()]
    return [d for d in diffs if d is not None]


# ----------------------------------------------------------------------------- losses
_FUNCTIONAL_LOSSES = {
    ops_loss.cross_entropy: "cross_entropy",
    ops_loss.nll_loss: "nll_loss",
    ops_loss.binary_cross_entropy_with_logits: "binary_cross_entropy_with_logits",
    ops_loss.mse: "mse_loss",
}


def _torch_mse(reduction: str = "mean") -> Callable[[Any, Any], Any]:
    """torch's mse_loss with chainrule's trailing-1 rule: (N, 1) against (N,) is squeezed."""
    functional = _torch().nn.functional

    def mse_loss(out: Any, target: Any) -> Any:
        if tuple(out.shape) == tuple(target.shape) + (1,):
            out = out.squeeze(-1)
        return functional.mse_loss(out, target.to(out.dtype), reduction=reduction)
    return mse_loss


def _loss_pair(loss: Any, integer_targets: bool, torch_loss: Any
               ) -> tuple[str, Callable[[Any, Any], Any], Callable[[Any, Any], Any]]:
    """The loss's name, and it as a chainrule and as a torch function of (output, target)."""
    functional = _torch().nn.functional
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
        name, theirs = _callable_name(loss), torch_loss
    else:
        raise TypeError(
            f"parity_report: no torch equivalent known for the loss {loss!r}. Pass a chainrule "
            "loss layer (nn.CrossEntropyLoss(), ...), one of nn.functional's losses, or "
            "torch_loss=<the torch function> alongside it")
    return name, loss, (torch_loss if torch_loss is not None else theirs)


# ----------------------------------------------------------------------------- the pass
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


def _torch_twin(model: Module, torch_model: Any, torch_dtype: Any) -> Any:
    torch = _torch()
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
    torch = _torch()
    if not isinstance(model, Module):
        raise TypeError(f"parity_report: expected a chainrule Module, got {type(model).__name__}")
    dtype = None if dtype is None else np.dtype(dtype)
    ours_model = _float_copy(model, dtype)
    twin = _torch_twin(ours_model, torch_model,
                       None if dtype is None else getattr(torch, dtype.name))

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
    float_kinds = {a.dtype for a in arrays if a.dtype.kind == "f"}
    float_kinds |= {p.dtype for p in ours_model.parameters()}
    single = np.dtype(np.float32) in float_kinds
    rtol = rtol if rtol is not None else (1e-4 if single else 1e-7)
    atol = atol if atol is not None else (1e-6 if single else 1e-12)
    validate_settings("parity_report", rtol=rtol, atol=atol)

    # Record every row layer's calls on both sides.
    theirs_by_name = dict(twin.named_modules())
    rows = _rows_of(ours_model)
    ours_calls = {name: _Calls() for name, _ in rows}
    theirs_calls = {name: _Calls() for name, _ in rows}
    handles = [module.register_forward_hook(_recorder(ours_calls[name], Tensor))
               for name, module in rows]
    handles += [theirs_by_name[name].register_forward_hook(
        _recorder(theirs_calls[name], torch.Tensor)) for name, _ in rows
        if name in theirs_by_name]

    ours_in = _leaf_args(tuple(arrays), lambda a, f: Tensor(a.copy(), requires_grad=f))
    their_in = _leaf_args(tuple(arrays), lambda a, f: torch.from_numpy(a.copy())
                          .requires_grad_(f))
    with enable_grad():
        ours_out = model_out = ours_model(*ours_in)
    with torch.enable_grad():
        their_out = twin(*their_in)
    for handle in handles:
        handle.remove()
    if not isinstance(model_out, Tensor):
        raise TypeError(f"parity_report: the model returned a {type(model_out).__name__}; it "
                        "needs to return one Tensor")

    if targets is None and loss is None:
        loss_name = "sum of outputs"
        ours_loss_fn, their_loss_fn = (lambda o, t: o.sum()), (lambda o, t: o.sum())
        ours_t = their_t = None
    elif targets is None:
        raise ValueError("parity_report: a loss needs targets")
    else:
        target = np.asarray(targets.data if isinstance(targets, Tensor) else targets)
        if target.dtype.kind == "f":  # torch's losses want the output's dtype
            target = target.astype(model_out.dtype)
        loss_name, ours_loss_fn, their_loss_fn = _loss_pair(loss, target.dtype.kind in "iu",
                                                            torch_loss)
        ours_t, their_t = target, torch.from_numpy(target.copy())
    with enable_grad():
        ours_loss = ours_loss_fn(ours_out, ours_t)
    with torch.enable_grad():
        their_loss = their_loss_fn(their_out, their_t)
    if not isinstance(ours_loss, Tensor) or ours_loss.size != 1:
        raise ValueError(f"parity_report: the loss {loss_name} must be a single number: use "
                         "reduction 'mean' or 'sum'")
    ours_loss.backward()
    their_loss.backward()

    report_rows = [LayerParity("(input)", "input", "input", output_grad=_compare(
        "(input)", "input grad",
        [(o.grad, _numpy(t.grad) if t.grad is not None else None)
         for o, t in zip(ours_in, their_in) if isinstance(o, Tensor) and o.requires_grad],
        rtol, atol))]
    their_params = dict(twin.named_parameters())
    # Gradients first: the local runs below accumulate into the same parameters.
    ours_grads = {n: (None if p.grad is None else p.grad.copy())
                  for n, p in ours_model.named_parameters()}
    for name, module in rows:
        their_module = theirs_by_name.get(name)
        row = LayerParity(name or "(model)", type(module).__name__,
                          type(their_module).__name__ if their_module is not None else "-",
                          calls=len(ours_calls[name].outputs))
        report_rows.append(row)
        if their_module is None:
            row.matched, row.note = False, f"no torch layer named {name!r} in torch_model"
            continue
        mine, theirs = ours_calls[name], theirs_calls[name]
        if len(mine.outputs) != len(theirs.outputs):
            row.note = (f"called {len(mine.outputs)} times in chainrule, "
                        f"{len(theirs.outputs)} in torch")
        if not mine.outputs:
            row.note = row.note or "not called in this batch"
        row.forward = _compare(row.name, "output", list(zip(mine.outputs, theirs.outputs)),
                               rtol, atol)
        row.output_grad = _compare(row.name, "output grad", list(zip(mine.grads, theirs.grads)),
                                   rtol, atol)
        for pname, _ in module.named_parameters():
            if "." in pname:
                continue  # a child's parameter: reported in the child's row
            full = f"{name}.{pname}" if name else pname
            theirs_p = their_params.get(full)
            their_grad = None if theirs_p is None or theirs_p.grad is None \
                else _numpy(theirs_p.grad)
            diff = _compare(row.name, f"{pname} grad", [(ours_grads[full], their_grad)],
                            rtol, atol)
            if diff is not None:
                row.param_grads[pname] = diff
        if next(iter(module.named_children()), None) is None:
            row.local = _local(row.name, module, their_module, mine, rtol, atol)

    loss_row = LayerParity("(loss)", loss_name, _callable_name(their_loss_fn),
                           forward=_compare("(loss)", "loss", [(ours_loss.data,
                                                                _numpy(their_loss))],
                                            rtol, atol))
    loss_row.local = _local_loss(ours_loss_fn, their_loss_fn, model_out.data, ours_t, their_t,
                                 rtol, atol)
    report_rows.append(loss_row)
    nothing = ""
    if model_out.size == 0:  # every gradient is trivially zero: agreeing says nothing
        nothing = (f"the model's output is empty (shape {model_out.shape}); give a batch "
                   "with at least one sample")
    elif not any(d.compared for row in report_rows if row.name != "(loss)"
                 for d in row.diffs()):
        nothing = "no layer output or gradient had an element to compare"
    return ParityReport(report_rows, str(arrays[0].dtype if dtype is None else dtype),
                        loss_name, (float(ours_loss.data), float(_numpy(their_loss))),
                        rtol, atol, batch=arrays[0].shape[0] if arrays[0].ndim else None,
                        torch_version=torch.__version__, nothing_compared=nothing)


def _callable_name(fn: Any) -> str:
    fn = fn.func if isinstance(fn, functools.partial) else fn
    return getattr(fn, "__name__", type(fn).__name__)


def _local_loss(ours_fn: Callable, theirs_fn: Callable, out: np.ndarray, ours_t: Any,
                their_t: Any, rtol: float, atol: float) -> list[Diff]:
    """Both losses on the chainrule model's output: value and gradient w.r.t. the output."""
    torch = _torch()
    ours_out = Tensor(out.copy(), requires_grad=True)
    their_out = torch.from_numpy(out.copy()).requires_grad_()
    with enable_grad():
        ours = ours_fn(ours_out, ours_t)
    with torch.enable_grad():
        theirs = theirs_fn(their_out, their_t)
    ours.backward()
    theirs.backward()
    diffs = [_compare("(loss)", "local loss", [(ours.data, _numpy(theirs))], rtol, atol),
             _compare("(loss)", "local output grad",
                      [(ours_out.grad, _numpy(their_out.grad))], rtol, atol)]
    return [d for d in diffs if d is not None]
