"""The converters of chainrule's own layers, registered on import (``chainrule.check`` imports
this module). Each is a ``to_fn``/``from_fn`` pair as ``register_converter`` describes; a torch
setting with no chainrule equivalent is refused with a ``ConversionError`` that names it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import nn
from chainrule.check.converters import (
    ConversionError,
    from_torch_buffer,
    from_torch_parameter,
    register_converter,
    require_torch,
    to_torch_buffer,
    to_torch_parameter,
)
from chainrule.engine.tensor import Tensor
from chainrule.nn.module import Module


def _linear_to(layer: nn.Linear, _children: dict[str, Any]) -> Any:
    # On the meta device: building it draws no random numbers from torch's generator.
    twin = require_torch().nn.Linear(layer.in_features, layer.out_features,
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
    return require_torch().nn.Sequential(*children.values())


def _sequential_from(_twin: Any, children: dict[str, Module]) -> nn.Sequential:
    names = list(children)
    if names != [str(i) for i in range(len(names))]:
        raise ConversionError(f"its layers are named {', '.join(names)}, but a chainrule "
                              "Sequential numbers them 0, 1, ...: build the torch Sequential "
                              "from positional layers so the weights keep their names")
    return nn.Sequential(*children.values())


def _register_loss(cr_type: type, torch_name: str, *options: str) -> None:
    """A loss layer: ``reduction`` and ``options`` carry over (class weights as arrays)."""

    def to_fn(layer: Any, _children: dict[str, Any]) -> Any:
        torch = require_torch()
        values = {k: getattr(layer, k) for k in options}
        values = {k: torch.from_numpy(np.array(v)) if isinstance(v, (np.ndarray, Tensor))
                  else v for k, v in values.items()}
        return getattr(torch.nn, torch_name)(reduction=layer.reduction, **values)

    def from_fn(twin: Any, _children: dict[str, Module]) -> Module:
        values = {k: getattr(twin, k) for k in options}
        values = {k: v.detach().numpy().copy() if hasattr(v, "detach") else v
                  for k, v in values.items()}
        try:
            return cr_type(reduction=twin.reduction, **values)
        except (TypeError, ValueError) as error:
            raise ConversionError(f"{error}") from None

    to_fn.__name__, from_fn.__name__ = f"_{torch_name}_to", f"_{torch_name}_from"
    register_converter(cr_type, f"torch.nn.{torch_name}", to_fn, from_fn)


def _conv_to(layer: nn.Conv2d, _children: dict[str, Any]) -> Any:
    twin = require_torch().nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
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
    torch_nn = require_torch().nn
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
    return require_torch().nn.Flatten(layer.start_axis, layer.end_axis)


def _flatten_from(twin: Any, _children: dict[str, Module]) -> nn.Flatten:
    return nn.Flatten(twin.start_dim, twin.end_dim)


def _batch_norm_to(layer: Any, _children: dict[str, Any]) -> Any:
    twin = getattr(require_torch().nn, type(layer).__name__)(
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
    twin = require_torch().nn.LayerNorm(layer.normalized_shape, eps=layer.eps,
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
        values = {k: getattr(layer, k) for k in settings}
        return getattr(require_torch().nn, torch_name)(**values)

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
_register_loss(nn.MSELoss, "MSELoss")
_register_loss(nn.L1Loss, "L1Loss")
_register_loss(nn.SmoothL1Loss, "SmoothL1Loss", "beta")
_register_loss(nn.HuberLoss, "HuberLoss", "delta")
_register_loss(nn.KLDivLoss, "KLDivLoss", "log_target")
_register_loss(nn.BCELoss, "BCELoss", "weight")
_register_loss(nn.CrossEntropyLoss, "CrossEntropyLoss", "weight", "ignore_index",
               "label_smoothing")
_register_loss(nn.NLLLoss, "NLLLoss", "weight", "ignore_index")
_register_loss(nn.BCEWithLogitsLoss, "BCEWithLogitsLoss", "weight", "pos_weight")
