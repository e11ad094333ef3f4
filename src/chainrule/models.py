"""Model recipes by name, so a checkpoint can say how to rebuild its model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from chainrule import nn

_RECIPES: dict[str, Callable[..., nn.Module]] = {}


def recipe(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a function that builds a model from JSON-able keyword arguments."""
    def register(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _RECIPES[name] = build
        return build
    return register


def recipes() -> list[str]:
    """Names of the registered model recipes."""
    return sorted(_RECIPES)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model recipe ``name`` with ``kwargs``."""
    if name not in _RECIPES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(recipes())}")
    return _RECIPES[name](**kwargs)


@recipe("mlp")
def mlp(in_features: int = 784, hidden: Sequence[int] = (256, 128), classes: int = 10
        ) -> nn.Sequential:
    """Linear layers with ReLU between them: in_features -> *hidden -> classes."""
    sizes = [in_features, *hidden, classes]
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)
