"""Fused layers: a run of layers computed as one op, and ``fuse``, the explicit pass that
makes them.

``fuse(model)`` returns a model whose Sequential runs of Linear -> ReLU and BatchNorm2d ->
MaxPool2d (-> ReLU) are single layers, ``LinearReLU`` and ``BatchNormMaxPool2d``, each one op
on the tape and one pass over memory fewer. The layers a fused one absorbed stay in their places
as ``Fused(layer)`` stand-ins that pass their input through, so that ``print(model)`` shows what
runs and ``state_dict()`` keeps the plain model's names (``2.weight`` is still ``2.weight``): a
checkpoint moves between the two as it is. The fused model holds the very same parameters and
buffers, so an optimizer made on either trains both; each model has its own train/eval mode
(the fused one starts in the plain one's), so set it on the one you run. ``unfuse`` gives the
plain layers back.

What runs is the user's to see and to choose: nothing fuses unless ``fuse`` is called.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn import init
from chainrule.nn.activation import ReLU
from chainrule.nn.container import Sequential
from chainrule.nn.conv import MaxPool2d
from chainrule.nn.linear import Linear
from chainrule.nn.module import Module
from chainrule.nn.norm import BatchNorm2d, _BatchNorm
from chainrule.ops.conv import Pair, pool_settings
from chainrule.ops.linalg import LinearReluOp
from chainrule.ops.norm import batch_norm_max_pool2d


class LinearReLU(Linear):
    """relu(x @ weight.T + bias): a Linear and the ReLU after it, as one op (``linear_relu``)."""

    def forward(self, x: Tensor) -> Tensor:
        """relu(x @ weight.T + bias)."""
        return LinearReluOp.apply(x, self.weight, self.bias)

    @classmethod
    def of(cls, linear: Linear) -> LinearReLU:
        """The fused layer for ``linear`` and a ReLU, holding ``linear``'s own parameters."""
        with init.shapes_only():  # no arrays of its own: it takes linear's
            fused = cls(linear.in_features, linear.out_features, bias=linear.bias is not None,
                        dtype=linear.weight.dtype)
        fused.weight, fused.bias = linear.weight, linear.bias
        fused.training = linear.training
        return fused

    def unfused(self) -> list[Module]:
        """The plain layer this one does the work of (its ReLU is a Fused stand-in)."""
        with init.shapes_only():
            plain = Linear(self.in_features, self.out_features, bias=self.bias is not None,
                           dtype=self.weight.dtype)
        plain.weight, plain.bias = self.weight, self.bias
        plain.training = self.training
        return [plain]


class BatchNormMaxPool2d(_BatchNorm):
    """BatchNorm2d, then MaxPool2d, then (with ``relu``) ReLU, as one op
    (``batch_norm_max_pool2d``): each window is pooled on the input by the sign of its
    channel's scale, and only the pooled values are normalised. Its parameters, buffers and
    their names are those of the BatchNorm2d."""

    ranks = (4,)
    layout = "(N, C, H, W) with C = num_features"

    def __init__(self, num_features: int, kernel_size: int | Pair,
                 stride: int | Pair | None = None, padding: int | Pair = 0, relu: bool = False,
                 eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, dtype: Any = None) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, dtype)
        pool_settings(kernel_size, stride, padding, type(self).__name__)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.relu = validate.boolean(type(self).__name__, "relu", relu)

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` per channel, pool it and, with ``relu``, clip it at 0."""
        self._check_input(x)
        training, factor = self._batch_settings()
        out = batch_norm_max_pool2d(
            x, self.running_mean, self.running_var, self.weight, self.bias, training=training,
            momentum=factor, eps=self.eps, kernel_size=self.kernel_size, stride=self.stride,
            padding=self.padding, relu=self.relu)
        self._count_batch()
        return out

    @classmethod
    def of(cls, norm: BatchNorm2d, pool: MaxPool2d, relu: bool) -> BatchNormMaxPool2d:
        """The fused layer for ``norm`` and ``pool`` (and a ReLU), holding ``norm``'s state."""
        with init.shapes_only():
            fused = cls(norm.num_features, pool.kernel_size, pool.stride, pool.padding, relu,
                        norm.eps, norm.momentum, norm.affine, norm.track_running_stats,
                        _dtype_of(norm))
        _share_state(norm, fused)
        fused.training = norm.training
        return fused

    def unfused(self) -> list[Module]:
        """The plain BatchNorm2d this one does the work of (pool and ReLU are stand-ins)."""
        with init.shapes_only():
            plain = BatchNorm2d(self.num_features, self.eps, self.momentum, self.affine,
                                self.track_running_stats, _dtype_of(self))
        _share_state(self, plain)
        plain.training = self.training
        return [plain]

    def extra_repr(self) -> str:
        return (f"{super().extra_repr()}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, relu={self.relu}")


class Fused(Module):
    """A layer whose work the fused layer before it does: it passes its input through, and
    shows in print(model) which layer it stands for. ``layer`` is that plain layer."""

    def __init__(self, layer: Module) -> None:
        super().__init__()
        self.layer = layer  # not a child (see named_children): it does not run
        self.training = layer.training

    def forward(self, x: Any) -> Any:
        """``x`` as it is: the fused layer before this one has applied this layer already."""
        return x

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """None: the layer stood for does not run, so nothing of it is part of this model."""
        return iter(())

    def __repr__(self) -> str:
        return f"Fused({self.layer!r})"


def fuse(model: Module) -> Module:
    """``model`` with every fusable run inside its Sequentials (nested ones too) made one
    layer; the same parameters and buffers, the same state_dict names (see the module doc).

    A run fuses when its layers are exactly Linear -> ReLU, or BatchNorm2d -> MaxPool2d with
    an optional ReLU after it, and none of them has a forward hook (a hooked layer must run as
    itself); subclasses are left alone (they may compute something else). Other modules are
    returned as they are; the model given is not changed.
    """
    if not isinstance(model, Sequential):
        return model
    layers, fused = [fuse(layer) for layer in model], []
    i = 0
    while i < len(layers):
        run = _run_at(layers, i)
        if run is None:
            fused.append(layers[i])
            i += 1
            continue
        head, *absorbed = run
        fused += [head, *(Fused(layer) for layer in absorbed)]
        i += len(run)
    return _like(model, fused)


def unfuse(model: Module) -> Module:
    """The plain model of a fused one (``fuse``'s inverse), sharing its parameters."""
    if not isinstance(model, Sequential):
        return model
    layers: list[Module] = []
    for layer in model:
        if isinstance(layer, Fused):
            layers.append(layer.layer)
        elif isinstance(layer, (LinearReLU, BatchNormMaxPool2d)):
            layers += layer.unfused()
        else:
            layers.append(unfuse(layer))
    return _like(model, layers)


def _run_at(layers: list[Module], i: int) -> list[Module] | None:
    """The fused layer and the layers it absorbs, for a run starting at ``i`` (None: none)."""
    def plain(offset: int, kind: type) -> bool:
        j = i + offset
        return (j < len(layers) and type(layers[j]) is kind
                and not layers[j].__dict__.get("_forward_hooks"))

    if plain(0, Linear) and plain(1, ReLU):
        return [LinearReLU.of(layers[i]), layers[i + 1]]
    if plain(0, BatchNorm2d) and plain(1, MaxPool2d):
        relu = plain(2, ReLU)
        head = BatchNormMaxPool2d.of(layers[i], layers[i + 1], relu)
        return [head, *layers[i + 1:i + (3 if relu else 2)]]
    return None


def _like(model: Sequential, layers: list[Module]) -> Sequential:
    """A Sequential of ``layers`` in ``model``'s mode."""
    out = Sequential(*layers)
    out.training = model.training
    return out


def _dtype_of(norm: _BatchNorm) -> Any:
    state = norm.weight if norm.weight is not None else norm.running_mean
    return None if state is None else state.dtype


def _share_state(source: _BatchNorm, target: _BatchNorm) -> None:
    """Make ``target`` hold ``source``'s parameters and buffers, the same objects."""
    target.weight, target.bias = source.weight, source.bias
    for name in ("running_mean", "running_var", "num_batches_tracked"):
        target.register_buffer(name, getattr(source, name))
