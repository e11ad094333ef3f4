"""Normalisation layers: BatchNorm1d, BatchNorm2d and LayerNorm; the ops live in
chainrule.ops.norm."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.ops.norm import batch_norm, layer_norm


class _BatchNorm(Module):
    """Shared by BatchNorm1d and BatchNorm2d, which differ only in the input ranks they take.

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
                 dtype: np.dtype | str | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        num_features = validate.integer(name, "num_features", num_features, low=1)
        eps = validate.real(name, "eps", eps, low=0, low_open=True)
        momentum = validate.real(name, "momentum", momentum, 0, 1, optional=True)
        affine = validate.boolean(name, "affine", affine)
        track_running_stats = validate.boolean(name, "track_running_stats", track_running_stats)
        dtype = validate.float_dtype(name, "dtype", dtype)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(init.full(num_features, 1, dtype)) if affine else None
        self.bias = Parameter(init.full(num_features, 0, dtype)) if affine else None
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
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) features or (N, C, L) sequences, per channel C."""

    ranks = (2, 3)
    layout = "(N, C) or (N, C, L) with C = num_features"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) images, per channel C."""

    ranks = (4,)
    layout = "(N, C, H, W) with C = num_features"


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
                f"elementwise_affine={self.elementwise_affine}")
