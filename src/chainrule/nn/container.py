"""Sequential: layers applied one after another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chainrule.nn.module import Module


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
        """Feed ``x`` through every layer."""
        for layer in self.layers:
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
