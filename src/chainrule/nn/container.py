"""Sequential: layers applied one after another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chainrule.nn.activation import ReLU
from chainrule.nn.linear import Linear
from chainrule.nn.module import Module
from chainrule.ops.linalg import LinearRelu
from chainrule.tensor import STATE


class Sequential(Module):
    """Calls its layers in order; ``model[i]``, ``len(model)`` and iteration work."""

    def __init__(self, *layers: Module) -> None:
        super().__init__()
        for i, layer in enumerate(layers):
            if not isinstance(layer, Module):
                raise TypeError(f"Sequential: item {i} is a {type(layer).__name__}, "
                                "not a Module")
        self.layers = list(layers)

    def forward(self, x: Any) -> Any:
        """Feed ``x`` through every layer.

        A Linear directly followed by a ReLU runs as one fused op (``linear_relu``): the same
        numbers, one node on the tape instead of two. Not when either layer has a forward hook,
        is a subclass, or a Sentinel watches, so that every layer is seen as itself there.
        """
        layers = self.layers
        fuse = STATE.sentinel is None
        i, count = 0, len(layers)
        while i < count:
            layer = layers[i]
            i += 1
            if (fuse and type(layer) is Linear and i < count and type(layers[i]) is ReLU
                    and not layer.__dict__.get("_forward_hooks")
                    and not layers[i].__dict__.get("_forward_hooks")):
                x = LinearRelu.apply(x, layer.weight, layer.bias)
                i += 1
            else:
                x = layer(x)
        return x

    def append(self, layer: Module) -> Sequential:
        """Add a layer at the end."""
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
