"""Sequential: layers applied one after another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chainrule.nn.activation import ReLU
from chainrule.nn.conv import MaxPool2d
from chainrule.nn.linear import Linear
from chainrule.nn.module import Module
from chainrule.nn.norm import BatchNorm2d
from chainrule.ops.linalg import LinearReluOp
from chainrule.tensor import STATE


def _plain(layer: Module) -> bool:
    """No forward hooks: the layer may run inside a fused op."""
    return not layer.__dict__.get("_forward_hooks")


def _check_layer(owner: str, what: str, layer: Any) -> None:
    """A TypeError unless ``layer`` is a Module instance, with the likely fix."""
    if isinstance(layer, Module):
        return
    if isinstance(layer, type) and issubclass(layer, Module):
        hint = f"; build it first: {layer.__name__}(...)"
    elif isinstance(layer, (list, tuple, dict)):
        hint = "; pass the layers one by one: Sequential(*layers)"
    else:
        hint = ""
    kind = type(layer).__name__
    article = "an" if kind[0] in "aeiouAEIOU" else "a"
    raise TypeError(f"{owner}: {what} is {article} {kind}, not a Module{hint}")


class Sequential(Module):
    """Calls its layers in order; ``model[i]``, ``len(model)`` and iteration work."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            _check_layer(type(self).__name__, f"item {i}", layer)
        self.layers = list(layers)

    def forward(self, x: Any) -> Any:
        """Feed ``x`` through every layer.

        Some runs of layers go as one fused op, with the same numbers and one node on the tape
        instead of two or three: a Linear followed by a ReLU (``linear_relu``), and a
        BatchNorm2d followed by a MaxPool2d, and a ReLU if one comes next
        (``batch_norm_max_pool2d``). Not when a layer of the run has a forward hook or is a
        subclass, or while a Sentinel watches: there every layer is seen as itself.
        """
        layers = self.layers
        fuse = STATE.sentinel is None
        i, count = 0, len(layers)
        while i < count:
            layer = layers[i]
            i += 1
            if fuse and i < count and _plain(layer):
                kind = type(layer)
                if kind is Linear and type(layers[i]) is ReLU and _plain(layers[i]):
                    x = LinearReluOp.apply(x, layer.weight, layer.bias)
                    i += 1
                    continue
                if kind is BatchNorm2d and type(layers[i]) is MaxPool2d and _plain(layers[i]):
                    pool = layers[i]
                    relu = i + 1 < count and type(layers[i + 1]) is ReLU and _plain(
                        layers[i + 1])
                    x = layer._normalise(x, pool, relu)
                    i += 2 if relu else 1
                    continue
            x = layer(x)
        return x

    def append(self, layer: Module) -> Sequential:
        """Add a layer at the end."""
        _check_layer(f"{type(self).__name__}.append", "the layer", layer)
        self.layers.append(layer)
        return self

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Layers named by position, as torch.nn.Sequential does (``0.weight``)."""
        for i, layer in enumerate(self.layers):
            yield str(i), layer
