"""Sequential: layers applied one after another."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from chainrule.nn.module import Module


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
        """Feed ``x`` through every layer, in order (``nn.fuse`` makes runs of them one op)."""
        for layer in self.layers:
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
