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


def _build(cls: type, *args: Any, **kwargs: Any) -> Module:
    """``cls(*args, **kwargs)``; a torch setting chainrule refuses becomes a ConversionError."""
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as error:  # chainrule's message names the setting
        raise ConversionError(f"{error}") from None


def _dtype(twin: Any) -> str | None:
    """The dtype of the twin's first floating parameter or buffer (None if it has none)."""
    for tensor in [*twin.parameters(), *twin.buffers()]:
        if tensor.is_floating_point():
            return str(tensor.dtype).replace("torch.", "")
    return None


def _state_to(layer: Module, twin: Any, params: tuple[str, ...],
              buffers: tuple[str, ...] = ()) -> Any:
    """``twin`` holding copies of ``layer``'s parameters and buffers (None stays None)."""
    for name in params:
        setattr(twin, name, to_torch_parameter(getattr(layer, name)))
    for name in buffers:
        setattr(twin, name, to_torch_buffer(getattr(layer, name)))
    return twin


def _state_from(twin: Any, layer: Module, params: tuple[str, ...],
                buffers: tuple[str, ...] = ()) -> Module:
    """``layer`` holding copies of ``twin``'s parameters and buffers (None stays None)."""
    for name in params:
        setattr(layer, name, from_torch_parameter(getattr(twin, name)))
    for name in buffers:
        layer.register_buffer(name, from_torch_buffer(getattr(twin, name)))
    return layer


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


def _conv_to(layer: Any, _children: dict[str, Any]) -> Any:
    # Conv1d/2d/3d and ConvTranspose1d/2d/3d: the torch class has the chainrule one's name.
    extra = {"output_padding": layer.output_padding} if layer.transposed else {}
    twin = getattr(require_torch().nn, type(layer).__name__)(
        layer.in_channels, layer.out_channels, layer.kernel_size, stride=layer.stride,
        padding=layer.padding, dilation=layer.dilation, groups=layer.groups,
        bias=layer.bias is not None, padding_mode=layer.padding_mode, device="meta", **extra)
    return _state_to(layer, twin, ("weight", "bias"))


def _conv_from(twin: Any, _children: dict[str, Module]) -> Module:
    cls = getattr(nn, type(twin).__name__)
    extra = {"output_padding": twin.output_padding} if cls.transposed else {}
    # A private generator: the throwaway initial values leave chainrule's own stream alone.
    layer = _build(cls, twin.in_channels, twin.out_channels, twin.kernel_size,
                   stride=twin.stride, padding=twin.padding, dilation=twin.dilation,
                   groups=twin.groups, bias=twin.bias is not None,
                   padding_mode=twin.padding_mode, generator=np.random.default_rng(0), **extra)
    return _state_from(twin, layer, ("weight", "bias"))


def _flatten_to(layer: nn.Flatten, _children: dict[str, Any]) -> Any:
    return require_torch().nn.Flatten(layer.start_axis, layer.end_axis)


def _flatten_from(twin: Any, _children: dict[str, Module]) -> nn.Flatten:
    return nn.Flatten(twin.start_dim, twin.end_dim)


def _batch_norm_to(layer: Any, _children: dict[str, Any]) -> Any:
    twin = getattr(require_torch().nn, type(layer).__name__)(
        layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
        bias=layer.bias is not None or not layer.affine,
        track_running_stats=layer.track_running_stats, device="meta")
    twin.weight = to_torch_parameter(layer.weight)
    twin.bias = to_torch_parameter(layer.bias)
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        setattr(twin, name, to_torch_buffer(getattr(layer, name)))
    return twin


def _batch_norm_from(twin: Any, _children: dict[str, Module]) -> Module:
    cls = getattr(nn, type(twin).__name__)  # BatchNorm1d, 2d or 3d
    dtype = _dtype(twin)
    layer = _build(cls, twin.num_features, eps=twin.eps, momentum=twin.momentum,
                   affine=twin.affine, bias=twin.bias is not None or not twin.affine,
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
    layer = _build(nn.LayerNorm, twin.normalized_shape, eps=twin.eps,
                   elementwise_affine=twin.elementwise_affine, bias=twin.bias is not None)
    layer.weight = from_torch_parameter(twin.weight)
    layer.bias = from_torch_parameter(twin.bias)
    return layer


def _register_simple(cr_type: type, torch_name: str, *settings: str,
                     fixed: dict[str, Any] | None = None) -> None:
    """A weightless layer, settings named alike; ``fixed``: torch-only values it computes with."""

    def to_fn(layer: Any, _children: dict[str, Any]) -> Any:
        values = {k: getattr(layer, k) for k in settings}
        return getattr(require_torch().nn, torch_name)(**values)

    def from_fn(twin: Any, _children: dict[str, Module]) -> Module:
        for name, value in (fixed or {}).items():
            if getattr(twin, name) != value:
                raise ConversionError(f"{name}={getattr(twin, name)!r} has no chainrule "
                                      f"equivalent ({cr_type.__name__} computes with {value})")
        # An inplace flag chainrule's layer lacks (ReLU, Dropout) is dropped: same values.
        return _build(cr_type, **{k: getattr(twin, k) for k in settings})

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


_RUNNING = ("running_mean", "running_var", "num_batches_tracked")


def _norm_to(layer: Any, _children: dict[str, Any]) -> Any:
    # GroupNorm, InstanceNorm1d/2d/3d and RMSNorm: the torch class has the chainrule one's name.
    torch_nn = require_torch().nn
    if isinstance(layer, nn.GroupNorm):
        twin = torch_nn.GroupNorm(layer.num_groups, layer.num_channels, eps=layer.eps,
                                  affine=layer.affine, bias=layer.bias is not None,
                                  device="meta")
        return _state_to(layer, twin, ("weight", "bias"))
    if isinstance(layer, nn.RMSNorm):
        twin = torch_nn.RMSNorm(layer.normalized_shape, eps=layer.eps,
                                elementwise_affine=layer.elementwise_affine, device="meta")
        return _state_to(layer, twin, ("weight",))
    twin = getattr(torch_nn, type(layer).__name__)(
        layer.num_features, eps=layer.eps, momentum=layer.momentum, affine=layer.affine,
        track_running_stats=layer.track_running_stats, bias=layer.bias is not None,
        device="meta")
    return _state_to(layer, twin, ("weight", "bias"), _RUNNING)


def _norm_from(twin: Any, _children: dict[str, Module]) -> Module:
    cls, dtype = getattr(nn, type(twin).__name__), _dtype(twin)
    if cls is nn.GroupNorm:
        layer = _build(cls, twin.num_groups, twin.num_channels, eps=twin.eps,
                       affine=twin.affine, dtype=dtype, bias=twin.bias is not None)
        return _state_from(twin, layer, ("weight", "bias"))
    if cls is nn.RMSNorm:
        layer = _build(cls, twin.normalized_shape, eps=twin.eps,
                       elementwise_affine=twin.elementwise_affine, dtype=dtype)
        return _state_from(twin, layer, ("weight",))
    layer = _build(cls, twin.num_features, eps=twin.eps, momentum=twin.momentum,
                   affine=twin.affine, track_running_stats=twin.track_running_stats,
                   dtype=dtype, bias=twin.bias is not None)
    return _state_from(twin, layer, ("weight", "bias"), _RUNNING)


def _prelu_to(layer: nn.PReLU, _children: dict[str, Any]) -> Any:
    twin = require_torch().nn.PReLU(layer.num_parameters, layer.init, device="meta")
    return _state_to(layer, twin, ("weight",))


def _prelu_from(twin: Any, _children: dict[str, Module]) -> Module:
    layer = _build(nn.PReLU, twin.num_parameters, twin.init, dtype=_dtype(twin))
    return _state_from(twin, layer, ("weight",))


def _embedding_to(layer: nn.Embedding, _children: dict[str, Any]) -> Any:
    twin = require_torch().nn.Embedding(
        layer.num_embeddings, layer.embedding_dim, padding_idx=layer.padding_idx,
        max_norm=layer.max_norm, norm_type=layer.norm_type,
        scale_grad_by_freq=layer.scale_grad_by_freq, sparse=layer.sparse, device="meta")
    return _state_to(layer, twin, ("weight",))


def _embedding_from(twin: Any, _children: dict[str, Module]) -> Module:
    # chainrule refuses max_norm and sparse=True itself, naming them.
    layer = _build(nn.Embedding, twin.num_embeddings, twin.embedding_dim,
                   padding_idx=twin.padding_idx, max_norm=twin.max_norm,
                   norm_type=twin.norm_type, scale_grad_by_freq=twin.scale_grad_by_freq,
                   sparse=twin.sparse, generator=np.random.default_rng(0))
    return _state_from(twin, layer, ("weight",))


def _bilinear_to(layer: nn.Bilinear, _children: dict[str, Any]) -> Any:
    twin = require_torch().nn.Bilinear(layer.in1_features, layer.in2_features,
                                       layer.out_features, bias=layer.bias is not None,
                                       device="meta")
    return _state_to(layer, twin, ("weight", "bias"))


def _bilinear_from(twin: Any, _children: dict[str, Module]) -> Module:
    layer = _build(nn.Bilinear, twin.in1_features, twin.in2_features, twin.out_features,
                   bias=twin.bias is not None, generator=np.random.default_rng(0))
    return _state_from(twin, layer, ("weight", "bias"))


_ATTENTION_STATE = ("in_proj_weight", "q_proj_weight", "k_proj_weight", "v_proj_weight",
                    "in_proj_bias", "bias_k", "bias_v")


def _attention_to(layer: Any, _children: dict[str, Any]) -> Any:
    twin = require_torch().nn.MultiheadAttention(
        layer.embed_dim, layer.num_heads, dropout=layer.dropout,
        bias=layer.in_proj_bias is not None, add_bias_kv=layer.bias_k is not None,
        add_zero_attn=layer.add_zero_attn, kdim=layer.kdim, vdim=layer.vdim,
        batch_first=layer.batch_first, device="meta")
    _state_to(layer.out_proj, twin.out_proj, ("weight", "bias"))
    return _state_to(layer, twin, _ATTENTION_STATE)


def _attention_from(twin: Any, _children: dict[str, Module]) -> Module:
    layer = _build(nn.MultiheadAttention, twin.embed_dim, twin.num_heads, dropout=twin.dropout,
                   bias=twin.in_proj_bias is not None, add_bias_kv=twin.bias_k is not None,
                   add_zero_attn=twin.add_zero_attn, kdim=twin.kdim, vdim=twin.vdim,
                   batch_first=twin.batch_first, dtype=_dtype(twin),
                   generator=np.random.default_rng(0))
    layer.generator = None  # the throwaway init's; dropout draws from chainrule's own stream
    _state_from(twin.out_proj, layer.out_proj, ("weight", "bias"))
    return _state_from(twin, layer, _ATTENTION_STATE)


def _recurrent_settings(layer: Any) -> dict[str, Any]:
    """The constructor settings torch's and chainrule's recurrent layers share."""
    names = (("input_size", "hidden_size", "bias") if not hasattr(layer, "num_layers") else
             ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout",
              "bidirectional"))
    values = {name: getattr(layer, name) for name in names}
    if type(layer).__name__ in ("RNN", "RNNCell"):
        values["nonlinearity"] = layer.nonlinearity
    return values


def _recurrent_to(layer: Any, _children: dict[str, Any]) -> Any:
    twin = getattr(require_torch().nn, type(layer).__name__)(**_recurrent_settings(layer),
                                                             device="meta")
    return _state_to(layer, twin, tuple(name for name, _ in layer.named_parameters()))


def _recurrent_from(twin: Any, _children: dict[str, Module]) -> Module:
    if getattr(twin, "proj_size", 0):
        raise ConversionError(f"proj_size={twin.proj_size} has no chainrule equivalent")
    layer = _build(getattr(nn, type(twin).__name__), **_recurrent_settings(twin),
                   dtype=_dtype(twin), generator=np.random.default_rng(0))
    if hasattr(layer, "generator"):
        layer.generator = None  # the throwaway init's; dropout draws from chainrule's stream
    return _state_from(twin, layer, tuple(name for name, _ in twin.named_parameters()))


register_converter(nn.Linear, "torch.nn.Linear", _linear_to, _linear_from)
for _rnn in (nn.RNN, nn.GRU, nn.LSTM, nn.RNNCell, nn.GRUCell, nn.LSTMCell):
    register_converter(_rnn, f"torch.nn.{_rnn.__name__}", _recurrent_to, _recurrent_from)
register_converter(nn.MultiheadAttention, "torch.nn.MultiheadAttention", _attention_to,
                   _attention_from)
register_converter(nn.GlobalAvgPool2d, "chainrule.check.torch_twins.GlobalAvgPool2d",
                   _global_pool_to, _global_pool_from)
register_converter(nn.ResidualBlock, "chainrule.check.torch_twins.ResidualBlock",
                   _residual_to, _residual_from)
for _conv in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
              nn.ConvTranspose3d):
    register_converter(_conv, f"torch.nn.{_conv.__name__}", _conv_to, _conv_from)
_MAX_POOL = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
_AVG_POOL = ("kernel_size", "stride", "padding", "ceil_mode", "count_include_pad")
for _pool in (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d):
    _register_simple(_pool, _pool.__name__, *_MAX_POOL)
_register_simple(nn.AvgPool1d, "AvgPool1d", *_AVG_POOL)  # torch's has no divisor_override
_register_simple(nn.AvgPool2d, "AvgPool2d", *_AVG_POOL, "divisor_override")
_register_simple(nn.AvgPool3d, "AvgPool3d", *_AVG_POOL, "divisor_override")
for _pool in (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d):
    _register_simple(_pool, _pool.__name__, "output_size")
for _pool in (nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d, nn.AdaptiveMaxPool3d):
    _register_simple(_pool, _pool.__name__, "output_size", "return_indices")
for _pool in (nn.MaxUnpool1d, nn.MaxUnpool2d, nn.MaxUnpool3d):
    _register_simple(_pool, _pool.__name__, "kernel_size", "stride", "padding")
register_converter(nn.Flatten, "torch.nn.Flatten", _flatten_to, _flatten_from)
_register_simple(nn.ReLU, "ReLU")
register_converter(nn.Sequential, "torch.nn.Sequential", _sequential_to, _sequential_from)
register_converter(nn.BatchNorm1d, "torch.nn.BatchNorm1d", _batch_norm_to, _batch_norm_from)
register_converter(nn.BatchNorm2d, "torch.nn.BatchNorm2d", _batch_norm_to, _batch_norm_from)
register_converter(nn.BatchNorm3d, "torch.nn.BatchNorm3d", _batch_norm_to, _batch_norm_from)
for _norm in (nn.GroupNorm, nn.InstanceNorm1d, nn.InstanceNorm2d, nn.InstanceNorm3d,
              nn.RMSNorm):
    register_converter(_norm, f"torch.nn.{_norm.__name__}", _norm_to, _norm_from)
register_converter(nn.LayerNorm, "torch.nn.LayerNorm", _layer_norm_to, _layer_norm_from)
_register_simple(nn.Tanh, "Tanh")
_register_simple(nn.Sigmoid, "Sigmoid")
_register_simple(nn.SiLU, "SiLU")
_register_simple(nn.LeakyReLU, "LeakyReLU", "negative_slope")
_register_simple(nn.GELU, "GELU", "approximate")
_register_simple(nn.Dropout, "Dropout", "p")
_register_simple(nn.Softplus, "Softplus", "beta", "threshold")
for _act in (nn.ELU, nn.CELU):
    _register_simple(_act, _act.__name__, "alpha", "inplace")
for _act in (nn.SELU, nn.Mish, nn.Hardswish, nn.Hardsigmoid):
    _register_simple(_act, _act.__name__, "inplace")
_register_simple(nn.LogSigmoid, "LogSigmoid")
_register_simple(nn.Softsign, "Softsign")
_register_simple(nn.Hardtanh, "Hardtanh", "min_val", "max_val", "inplace")
_register_simple(nn.ReLU6, "ReLU6", "inplace", fixed={"min_val": 0.0, "max_val": 6.0})
for _act in (nn.Softmax, nn.LogSoftmax, nn.Softmin, nn.GLU):
    _register_simple(_act, _act.__name__, "dim")
register_converter(nn.PReLU, "torch.nn.PReLU", _prelu_to, _prelu_from)
register_converter(nn.Embedding, "torch.nn.Embedding", _embedding_to, _embedding_from)
register_converter(nn.Bilinear, "torch.nn.Bilinear", _bilinear_to, _bilinear_from)
_register_simple(nn.Identity, "Identity")
_register_simple(nn.Unflatten, "Unflatten", "dim", "unflattened_size")
_register_simple(nn.CosineSimilarity, "CosineSimilarity", "dim", "eps")
_register_simple(nn.Upsample, "Upsample", "size", "scale_factor", "mode", "align_corners",
                 "recompute_scale_factor")
for _up in (nn.UpsamplingNearest2d, nn.UpsamplingBilinear2d):
    _register_simple(_up, _up.__name__, "size", "scale_factor")
_register_simple(nn.PixelShuffle, "PixelShuffle", "upscale_factor")
_register_simple(nn.PixelUnshuffle, "PixelUnshuffle", "downscale_factor")
for _pad in (nn.ZeroPad1d, nn.ZeroPad2d, nn.ZeroPad3d, nn.ReflectionPad1d, nn.ReflectionPad2d,
             nn.ReflectionPad3d, nn.ReplicationPad1d, nn.ReplicationPad2d, nn.ReplicationPad3d,
             nn.CircularPad1d, nn.CircularPad2d, nn.CircularPad3d):
    # torch's ZeroPad layers are ConstantPad ones: their value must still be zero.
    _register_simple(_pad, _pad.__name__, "padding",
                     fixed={"value": 0.0} if _pad.__name__.startswith("Zero") else None)
for _pad in (nn.ConstantPad1d, nn.ConstantPad2d, nn.ConstantPad3d):
    _register_simple(_pad, _pad.__name__, "padding", "value")
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
del _act, _conv, _norm, _pad, _pool, _rnn, _up  # the loops' names, not converters
