"""Normalisation layers: BatchNorm1d/2d/3d, LayerNorm, GroupNorm, InstanceNorm1d/2d/3d and
RMSNorm; the ops live in chainrule.ops.norm."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.ops.norm import batch_norm, group_norm, instance_norm, layer_norm, rms_norm
from chainrule.ops.shape import reshape


class _BatchNorm(Module):
    """Shared by BatchNorm1d/2d/3d, which differ only in the input ranks they take.

    In training each channel is normalised with the batch's mean and biased variance, and the
    running statistics move towards them (``momentum``; None for a plain average over every
    batch so far, counted by ``num_batches_tracked``), the variance unbiased, as in PyTorch.
    In eval mode the running statistics normalise, so the layer is a fixed affine map. With
    ``track_running_stats=False`` there are none, and batch statistics are used in both modes.
    """

    ranks: ClassVar[tuple[int, ...]] = ()
    layout: ClassVar[str] = ""

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = True, track_running_stats: bool = True,
                 dtype: np.dtype | str | None = None, *, bias: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        num_features = validate.integer(name, "num_features", num_features, low=1)
        eps = validate.real(name, "eps", eps, low=0, low_open=True)
        momentum = validate.real(name, "momentum", momentum, 0, 1, optional=True)
        affine = validate.boolean(name, "affine", affine)
        with_bias = validate.boolean(name, "bias", bias) and affine  # PyTorch's keyword
        track_running_stats = validate.boolean(name, "track_running_stats", track_running_stats)
        dtype = validate.float_dtype(name, "dtype", dtype)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(init.full(num_features, 1, dtype)) if affine else None
        self.bias = Parameter(init.full(num_features, 0, dtype)) if with_bias else None
        tracked = track_running_stats
        self.register_buffer("running_mean", init.full(num_features, 0, dtype) if tracked else None)
        self.register_buffer("running_var", init.full(num_features, 1, dtype) if tracked else None)
        self.register_buffer("num_batches_tracked", np.array(0, np.int64) if tracked else None)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` per channel (axis 1)."""
        self._check_input(x)
        training, factor = self._batch_settings()
        out = batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                         training=training, momentum=factor, eps=self.eps)
        self._count_batch()
        return out

    # The steps every batch norm takes around its op (nn.BatchNormMaxPool2d takes them too).
    def _check_input(self, x: Any) -> None:
        shape = tuple(np.shape(x.data if isinstance(x, Tensor) else x))
        if len(shape) not in self.ranks or shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input "
                             f"{self.layout}, got shape {shape}")

    def _batch_settings(self) -> tuple[bool, float]:
        """(normalise with the batch's statistics?, how far the running ones move)."""
        factor = 0.0
        if self.training and self.running_mean is not None:
            seen = int(self.num_batches_tracked.data) + 1
            factor = 1 / seen if self.momentum is None else self.momentum
        return self.training or self.running_mean is None, factor

    def _count_batch(self) -> None:
        # After the op: a batch it refused is not counted.
        if self.training and self.running_mean is not None:
            self.num_batches_tracked.data += 1

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features or (N, C, L) sequences, per channel C."""

    ranks = (2, 3)
    layout = "(N, C) or (N, C, L) with C = num_features"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel C."""

    ranks = (4,)
    layout = "(N, C, H, W) with C = num_features"


class BatchNorm3d(_BatchNorm):
    """Batch normalisation of (N, C, D, H, W) volumes, per channel C."""

    ranks = (5,)
    layout = "(N, C, D, H, W) with C = num_features"


def _normalized_shape(name: str, normalized_shape: Any) -> tuple[int, ...]:
    """LayerNorm's and RMSNorm's ``normalized_shape`` as a tuple of sizes."""
    if validate.is_int(normalized_shape):
        return (validate.integer(name, "normalized_shape", normalized_shape, low=1),)
    if isinstance(normalized_shape, (tuple, list, np.ndarray)):
        shape = tuple(validate.integer(name, f"normalized_shape[{i}]", n, low=1)
                      for i, n in enumerate(normalized_shape))
        if not shape:
            raise ValueError(f"{name}: normalized_shape must name at least one size, got "
                             f"{normalized_shape!r}")
        return shape
    raise TypeError(f"{name}: normalized_shape must be an int or a tuple of ints, got "
                    f"{normalized_shape!r} ({type(normalized_shape).__name__})")


def _trailing(layer: str, shape: tuple[int, ...], normalized: tuple[int, ...]) -> None:
    k = len(normalized)
    if len(shape) < k or shape[len(shape) - k:] != normalized:
        wanted = ", ".join(map(str, normalized))
        raise ValueError(f"{layer}({normalized}): expected input (..., {wanted}), got shape "
                         f"{shape}")


def _shape_of(x: Any) -> tuple[int, ...]:
    return tuple(np.shape(x.data if isinstance(x, Tensor) else x))


class GroupNorm(Module):
    """Normalise each sample over groups of channels (and every axis after C), then scale and
    shift per channel (``weight`` ones, ``bias`` zeros, as in PyTorch)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True, dtype: np.dtype | str | None = None, *,
                 bias: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        num_groups = validate.integer(name, "num_groups", num_groups, low=1)
        num_channels = validate.integer(name, "num_channels", num_channels, low=1)
        if num_channels % num_groups:
            raise ValueError(f"{name}: num_channels={num_channels} must be divisible by "
                             f"num_groups={num_groups}")
        self.num_groups, self.num_channels = num_groups, num_channels
        self.eps = validate.real(name, "eps", eps, low=0, low_open=True)
        self.affine = validate.boolean(name, "affine", affine)
        with_bias = validate.boolean(name, "bias", bias) and self.affine
        dtype = validate.float_dtype(name, "dtype", dtype)
        self.weight = Parameter(init.full(num_channels, 1, dtype)) if self.affine else None
        self.bias = Parameter(init.full(num_channels, 0, dtype)) if with_bias else None

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` (N, C, ...) per group."""
        shape = _shape_of(x)
        if len(shape) < 2 or shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm({self.num_groups}, {self.num_channels}): expected "
                             f"input (N, {self.num_channels}, ...), got shape {shape}")
        return group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


class _InstanceNorm(Module):
    """Shared by InstanceNorm1d/2d/3d: each sample's channel normalised over its spatial axes.

    As in PyTorch: no affine map and no running statistics by default; with
    ``track_running_stats`` they move in training and normalise in eval. An input without
    the batch axis ((C, L) for InstanceNorm1d) is taken as a batch of one.
    """

    spatial: ClassVar[int] = 0

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1,
                 affine: bool = False, track_running_stats: bool = False,
                 dtype: np.dtype | str | None = None, *, bias: bool = True) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_features = validate.integer(name, "num_features", num_features, low=1)
        self.eps = validate.real(name, "eps", eps, low=0, low_open=True)
        self.momentum = validate.real(name, "momentum", momentum, 0, 1, optional=True)
        self.affine = validate.boolean(name, "affine", affine)
        self.track_running_stats = validate.boolean(name, "track_running_stats",
                                                    track_running_stats)
        with_bias = validate.boolean(name, "bias", bias) and self.affine
        dtype = validate.float_dtype(name, "dtype", dtype)
        n, tracked = self.num_features, self.track_running_stats
        self.weight = Parameter(init.full(n, 1, dtype)) if self.affine else None
        self.bias = Parameter(init.full(n, 0, dtype)) if with_bias else None
        self.register_buffer("running_mean", init.full(n, 0, dtype) if tracked else None)
        self.register_buffer("running_var", init.full(n, 1, dtype) if tracked else None)
        # Kept for PyTorch's state_dict; instance norm never counts batches (nor does torch).
        self.register_buffer("num_batches_tracked", np.array(0, np.int64) if tracked else None)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` per sample and channel."""
        shape = _shape_of(x)
        rank = self.spatial + 2
        if len(shape) not in (rank - 1, rank) or shape[len(shape) - rank + 1] != \
                self.num_features:
            axes = ("L",) if self.spatial == 1 else ("H", "W") if self.spatial == 2 else (
                "D", "H", "W")
            layout = ", ".join(axes)
            raise ValueError(f"{type(self).__name__}({self.num_features}): expected input "
                             f"(N, C, {layout}) or (C, {layout}) with C = num_features, got "
                             f"shape {shape}")
        unbatched = len(shape) == rank - 1
        if unbatched:
            x = reshape(x, (1,) + shape)
        out = instance_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            use_input_stats=self.training or not self.track_running_stats,
                            momentum=0.0 if self.momentum is None else self.momentum,
                            eps=self.eps)
        return reshape(out, shape) if unbatched else out

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    """Instance normalisation of (N, C, L) sequences."""

    spatial = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance normalisation of (N, C, H, W) images."""

    spatial = 2


class InstanceNorm3d(_InstanceNorm):
    """Instance normalisation of (N, C, D, H, W) volumes."""

    spatial = 3


class RMSNorm(Module):
    """Divide each sample by its root mean square over the trailing ``normalized_shape`` axes,
    then scale elementwise (``weight`` ones); ``eps`` None is the dtype's machine epsilon."""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float | None = None,
                 elementwise_affine: bool = True, dtype: np.dtype | str | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.normalized_shape = _normalized_shape(name, normalized_shape)
        self.eps = validate.real(name, "eps", eps, low=0, optional=True)
        self.elementwise_affine = validate.boolean(name, "elementwise_affine",
                                                   elementwise_affine)
        dtype = validate.float_dtype(name, "dtype", dtype)
        self.weight = (Parameter(init.full(self.normalized_shape, 1, dtype))
                       if self.elementwise_affine else None)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` over its trailing axes."""
        _trailing("RMSNorm", _shape_of(x), self.normalized_shape)
        return rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class LayerNorm(Module):
    """Normalise each sample over its trailing ``normalized_shape`` axes, then scale and shift
    elementwise (``weight`` ones, ``bias`` zeros, both of that shape, as in PyTorch)."""

    def __init__(self, normalized_shape: int | tuple[int, ...], eps: float = 1e-5,
                 elementwise_affine: bool = True, bias: bool = True,
                 dtype: np.dtype | str | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        if validate.is_int(normalized_shape):
            shape = (validate.integer(name, "normalized_shape", normalized_shape, low=1),)
        elif isinstance(normalized_shape, (tuple, list, np.ndarray)):
            shape = tuple(validate.integer(name, f"normalized_shape[{i}]", n, low=1)
                          for i, n in enumerate(normalized_shape))
            if not shape:
                raise ValueError(f"{name}: normalized_shape must name at least one size, got "
                                 f"{normalized_shape!r}")
        else:
            raise TypeError(f"{name}: normalized_shape must be an int or a tuple of ints, got "
                            f"{normalized_shape!r} ({type(normalized_shape).__name__})")
        eps = validate.real(name, "eps", eps, low=0, low_open=True)
        elementwise_affine = validate.boolean(name, "elementwise_affine", elementwise_affine)
        bias = validate.boolean(name, "bias", bias)
        dtype = validate.float_dtype(name, "dtype", dtype)
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        self.weight = Parameter(init.full(shape, 1, dtype)) if elementwise_affine else None
        self.bias = Parameter(init.full(shape, 0, dtype)) if elementwise_affine and bias else None

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` over its trailing axes."""
        shape = tuple(np.shape(x.data if isinstance(x, Tensor) else x))
        k = len(self.normalized_shape)
        if len(shape) < k or shape[len(shape) - k:] != self.normalized_shape:
            wanted = ", ".join(map(str, self.normalized_shape))
            raise ValueError(f"LayerNorm({self.normalized_shape}): expected input (..., "
                             f"{wanted}), got shape {shape}")
        return layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")
