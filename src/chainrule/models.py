"""Model recipes by name, so a checkpoint can say how to rebuild its model."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from chainrule import nn

_RECIPES: dict[str, Callable[..., nn.Module]] = {}
_INPUTS: dict[str, str] = {}


def recipe(name: str, inputs: str = "flat"
           ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a function that builds a model from JSON-able keyword arguments.

    ``inputs`` says what the model eats: "flat" vectors (N, 784) or "images" (N, 1, 28, 28).
    """
    if inputs not in ("flat", "images"):
        raise ValueError(f"recipe {name!r}: inputs must be 'flat' or 'images', got {inputs!r}")

    def register(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _RECIPES[name], _INPUTS[name] = build, inputs
        return build
    return register


def input_kind(name: str) -> str:
    """'flat' or 'images': the input layout recipe ``name`` expects."""
    if name not in _INPUTS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(recipes())}")
    return _INPUTS[name]


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
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@recipe("cnn", inputs="images")
def cnn(channels: Sequence[int] = (32, 64), hidden: int = 128, classes: int = 10,
        in_channels: int = 1, size: int = 28, dropout: float = 0.1) -> nn.Sequential:
    """Conv blocks (3x3 conv, BatchNorm, 2x2 max-pool, ReLU) then a two-layer classifier.

    The default is the "2 conv + pooling + BN" net of the Fashion-MNIST benchmark table
    (~0.42M parameters on 28x28 inputs).
    """
    if not channels:
        raise ValueError("cnn: give at least one conv width in channels")
    layers: list[nn.Module] = []
    width = in_channels
    for out in channels:
        if size < 2:
            raise ValueError(f"cnn: {len(channels)} pooling stages shrink a {size}-pixel input "
                             "to nothing; use fewer channels entries")
        # Conv without bias: the BatchNorm right after it has one. Pool before ReLU: the
        # same function (max commutes with ReLU), on a quarter of the pixels.
        layers += [nn.Conv2d(width, out, 3, padding=1, bias=False), nn.BatchNorm2d(out),
                   nn.MaxPool2d(2), nn.ReLU()]
        width, size = out, size // 2
    layers += [nn.Flatten(), nn.Dropout(dropout), nn.Linear(width * size * size, hidden),
               nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, classes)]
    return nn.Sequential(*layers)


@recipe("resnet", inputs="images")
def resnet(widths: Sequence[int] = (16, 32, 64), blocks: Sequence[int] = (1, 1, 1),
           classes: int = 10, in_channels: int = 1) -> nn.Sequential:
    """A small ResNet: a 3x3 stem, stages of residual blocks (each later stage halves the
    resolution and widens), global average pooling and a linear classifier.

    ``blocks`` (1, 1, 1) gives an 8-layer net; (2, 2, 2) the CIFAR ResNet-14 layout.
    """
    if len(widths) != len(blocks) or not widths or min(blocks) < 1:
        raise ValueError(f"resnet: widths and blocks need one entry per stage and at least "
                         f"one block each, got widths={widths}, blocks={blocks}")
    layers: list[nn.Module] = [nn.Conv2d(in_channels, widths[0], 3, padding=1, bias=False),
                               nn.BatchNorm2d(widths[0]), nn.ReLU()]
    width = widths[0]
    for stage, (out, count) in enumerate(zip(widths, blocks)):
        for block in range(count):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(nn.ResidualBlock(width, out, stride))
            width = out
    layers += [nn.GlobalAvgPool2d(), nn.Linear(width, classes)]
    return nn.Sequential(*layers)
