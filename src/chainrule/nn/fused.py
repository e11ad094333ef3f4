"""Fused layers: a run of layers computed as one op, and ``fuse``, the explicit pass that
makes them.

``fuse(model)`` returns a copy of the model whose Sequential runs of Linear -> ReLU and
BatchNorm2d -> MaxPool2d (-> ReLU) are single layers, ``LinearReLU`` and
``BatchNormMaxPool2d``, each one op on the tape and one pass over memory fewer. The layers a
fused one absorbed stay in their places as ``Fused(layer)`` stand-ins that pass their input
through, so that ``print(model)`` shows what runs and ``state_dict()`` keeps the plain model's
names (``2.weight`` is still ``2.weight``): a checkpoint moves between the two as it is. The
fused model holds the very same parameters and buffers, so an optimizer made on either trains
both; its modules are its own, with their own attributes and train/eval mode (starting as the
plain one's), so set the mode on the one you run. ``unfuse`` gives the plain layers back.

``linear_relu`` gives the plain layers' numbers bit for bit. ``batch_norm_max_pool2d`` gives
their outputs and running statistics bit for bit, but sums its gradients in another order, so
they agree to rounding, not bit for bit (tests/test_fusion.py holds the two together).

What runs is the user's to see and to choose: nothing fuses unless ``fuse`` is called.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from chainrule import validate
from chainrule.engine.tensor import Tensor
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
        """The fused layer for ``linear`` and a ReLU: ``linear``'s parameters and attributes."""
        return _recast(linear, cls)

    def unfused(self) -> list[Module]:
        """The plain layer this one does the work of (its ReLU is a Fused stand-in)."""
        return [_recast(self, Linear)]


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
        """The fused layer for ``norm`` and ``pool`` (and a ReLU): ``norm``'s parameters,
        buffers and attributes, with ``pool``'s window."""
        fused = _recast(norm, cls)
        fused.kernel_size, fused.stride, fused.padding = pool.kernel_size, pool.stride, pool.padding
        fused.relu = relu
        return fused

    def unfused(self) -> list[Module]:
        """The plain BatchNorm2d this one does the work of (pool and ReLU are stand-ins)."""
        plain = _recast(self, BatchNorm2d)
        for name in ("kernel_size", "stride", "padding", "relu"):
            del plain.__dict__[name]
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
    """A copy of ``model`` with every fusable run in its Sequentials made one layer, at any
    depth; the same parameters and buffers, the same state_dict names (see the module doc).

    A run fuses when its layers are exactly Linear -> ReLU, or BatchNorm2d -> MaxPool2d with
    an optional ReLU after it, none of them with a forward hook (a hooked layer must run as
    itself), inside a container that is exactly ``Sequential`` (a subclass may run its layers
    otherwise, so its own layers stay as they are; the modules inside it are still fused).
    Every module of the copy is a new object of the same type, with its own attributes, hooks
    and train/eval mode, holding the very same Parameter and buffer tensors. ``model`` itself
    is not changed.
    """
    return _rebuilt(model, {}, _fused_run)


def unfuse(model: Module) -> Module:
    """A copy of ``model`` with its fused layers made plain again (``fuse``'s inverse), holding
    the same parameters and buffers."""
    return _rebuilt(model, {}, _plain_run)


def _rebuilt(module: Module, memo: dict[int, Module],
             rewrite: Callable[[list[Module]], list[Module]]) -> Module:
    """A copy of the module tree (a module used twice is copied once) in which the layers of
    every exact Sequential pass through ``rewrite``."""
    if id(module) in memo:
        return memo[id(module)]
    out = memo[id(module)] = _recast(module)
    if isinstance(module, Fused):  # its layer does not run: it is rewritten with its run
        return out
    for name, value in vars(module).items():
        if isinstance(value, Module):
            out.__dict__[name] = _rebuilt(value, memo, rewrite)
        elif isinstance(value, (list, tuple)) and any(isinstance(v, Module) for v in value):
            items = [_rebuilt(v, memo, rewrite) if isinstance(v, Module) else v for v in value]
            out.__dict__[name] = items if isinstance(value, list) else tuple(items)
        elif (isinstance(value, dict) and not name.startswith("_")
              and any(isinstance(v, Module) for v in value.values())):
            out.__dict__[name] = {k: _rebuilt(v, memo, rewrite) if isinstance(v, Module) else v
                                  for k, v in value.items()}
    if type(out) is Sequential:
        out.layers = rewrite(out.layers)
    return out


def _fused_run(layers: list[Module]) -> list[Module]:
    """A Sequential's layers with each fusable run made its fused layer and stand-ins."""
    fused: list[Module] = []
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
    return fused


def _plain_run(layers: list[Module]) -> list[Module]:
    """A Sequential's layers with each fused layer and its stand-ins made plain again."""
    plain: list[Module] = []
    for layer in layers:
        if isinstance(layer, Fused):
            original = _recast(layer.layer)
            original.training = layer.training
            plain.append(original)
        elif isinstance(layer, (LinearReLU, BatchNormMaxPool2d)):
            plain += layer.unfused()
        else:
            plain.append(layer)
    return plain


def _run_at(layers: list[Module], i: int) -> list[Module] | None:
    """The fused layer and the layers it absorbs, for a run starting at ``i`` (None: none)."""
    def plain(offset: int, kind: type) -> bool:
        j = i + offset
        return (j < len(layers) and type(layers[j]) is kind
                and not layers[j].__dict__.get("_forward_hooks"))

    if plain(0, Linear) and plain(1, ReLU):
        return [LinearReLU.of(layers[i]), layers[i + 1]]
    if plain(0, BatchNorm2d) and plain(1, MaxPool2d) and _plain_pool(layers[i + 1]):
        relu = plain(2, ReLU)
        head = BatchNormMaxPool2d.of(layers[i], layers[i + 1], relu)
        return [head, *layers[i + 1:i + (3 if relu else 2)]]
    return None


def _plain_pool(pool: MaxPool2d) -> bool:
    """True if the pooling uses only what the fused op does: no dilation, ceil_mode or
    indices (other settings would be dropped, so such a pair is left as it is)."""
    return (pool.dilation in (1, (1, 1)) and not pool.ceil_mode
            and not pool.return_indices)


def _recast(module: Module, cls: type | None = None) -> Any:
    """A new module of type ``cls`` (``module``'s own by default) holding ``module``'s
    attributes: the same parameters, buffers and settings; its own hook and buffer-name lists,
    so that hooking or changing one model leaves the other as it was."""
    out = object.__new__(cls or type(module))
    state = dict(vars(module))
    for name in ("_forward_hooks", "_buffer_names"):
        if name in state:
            state[name] = list(state[name])
    out.__dict__.update(state)
    return out
