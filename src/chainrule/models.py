"""Model recipes by name, so a checkpoint can say how to rebuild its model."""

from __future__ import annotations

import inspect
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chainrule import nn

_RECIPES: dict[str, Callable[..., nn.Module]] = {}
_INPUTS: dict[str, str] = {}


def recipe(name: str, inputs: str = "flat"
           ) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register a function that builds a model from JSON-able keyword arguments.

    ``inputs`` says what the model eats: "flat" vectors (N, 784), "images" (N, 1, 28, 28)
    or "tokens", integer ids (B, T).
    """
    if inputs not in ("flat", "images", "tokens"):
        raise ValueError(f"recipe {name!r}: inputs must be 'flat', 'images' or 'tokens', got "
                         f"{inputs!r}")

    def register(build: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _RECIPES[name], _INPUTS[name] = build, inputs
        return build
    return register


def input_kind(name: str) -> str:
    """'flat', 'images' or 'tokens': the input layout recipe ``name`` expects."""
    if name not in _INPUTS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(recipes())}")
    return _INPUTS[name]


def recipes() -> list[str]:
    """Names of the registered model recipes."""
    return sorted(_RECIPES)


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build the model recipe ``name`` with ``kwargs``."""
    return _recipe(name)(**kwargs)


def _recipe(name: str) -> Callable[..., nn.Module]:
    if not isinstance(name, str) or name not in _RECIPES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(recipes())}")
    return _RECIPES[name]


#: bounds on what a recipe's settings may be: far past any model this library trains, and
#: small enough that a skeleton of them builds in moments (they may come from a file)
MAX_SETTING = 1 << 24
MAX_LIST = 64


def check_kwargs(name: str, kwargs: Mapping[str, Any]) -> None:
    """Refuse settings recipe ``name`` does not take, or that no real model has.

    For settings read from a file: each is a bool, a number of at most ``MAX_SETTING``, a short
    string, or a list of at most ``MAX_LIST`` such numbers. The recipe checks the rest.
    """
    build = _recipe(name)
    if not isinstance(kwargs, Mapping):
        raise TypeError(f"{name}: settings must be a mapping, got {type(kwargs).__name__}")
    taken = inspect.signature(build).parameters
    unknown = sorted(str(key) for key in kwargs if key not in taken)
    if unknown:
        raise ValueError(f"{name} takes no setting {', '.join(unknown)} (it takes "
                         f"{', '.join(taken)})")
    for key, value in kwargs.items():
        items = value if isinstance(value, (list, tuple)) else [value]
        if isinstance(value, (list, tuple)) and len(value) > MAX_LIST:
            raise ValueError(f"{name}: {key} lists {len(value)} entries, more than {MAX_LIST}")
        for item in items:
            if isinstance(item, bool) or item is None:
                continue
            if isinstance(item, str) and len(item) <= 100:
                continue
            if isinstance(item, (int, float)) and math.isfinite(item) and \
                    abs(item) <= MAX_SETTING:
                continue
            raise ValueError(f"{name}: {key}={value!r:.100} is not a setting a model can have "
                             f"(numbers up to {MAX_SETTING:,}, lists of them, or flags)")


def parameter_shapes(name: str, **kwargs: Any) -> dict[str, tuple[int, ...]]:
    """The state_dict shapes of recipe ``name``, learnt without allocating them (a skeleton
    built under ``nn.init.shapes_only``); the settings are checked with ``check_kwargs``."""
    check_kwargs(name, kwargs)
    with nn.init.shapes_only():
        skeleton = build_model(name, **kwargs)
    return {key: tuple(t.shape) for key, t in skeleton._named_state()}


def parameter_count(name: str, **kwargs: Any) -> int:
    """How many trainable numbers recipe ``name`` would have, without building it."""
    check_kwargs(name, kwargs)
    with nn.init.shapes_only():
        skeleton = build_model(name, **kwargs)
    return sum(p.size for p in skeleton.parameters())


def check_state_shapes(name: str, kwargs: Mapping[str, Any], state: Mapping[str, Any],
                       source: str = "the state") -> None:
    """Refuse a state_dict whose names or shapes are not those recipe ``name`` builds with
    ``kwargs``: a file's config must agree with its own tensors before a model is built."""
    try:
        wanted = parameter_shapes(name, **kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{source}: its settings do not build a {name}: {error}") from None
    problems = [f"{key}: the settings give {shape}, the file has {tuple(state[key].shape)}"
                for key, shape in wanted.items()
                if key in state and tuple(state[key].shape) != shape]
    missing = [key for key in wanted if key not in state]
    unexpected = [key for key in state if key not in wanted]
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if unexpected:
        problems.append(f"unexpected {', '.join(map(str, unexpected))}")
    if problems:
        raise ValueError(f"{source}: its settings and its tensors disagree (a damaged or "
                         f"edited file?): {'; '.join(problems)}")


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


@recipe("gpt", inputs="tokens")
def gpt(vocab_size: int = 65, block_size: int = 64, n_layer: int = 4, n_head: int = 4,
        n_embd: int = 128, dropout: float = 0.0, bias: bool = True, approximate: str = "tanh",
        dtype: str | None = None, generator: Any = None) -> nn.GPT:
    """nanoGPT's GPT: token and position embeddings, ``n_layer`` pre-LayerNorm blocks, a final
    LayerNorm and a head tied to the token embedding; (B, T) token ids -> (B, T, vocab_size)
    logits. The defaults are nanoGPT's CPU configuration for character-level Shakespeare.

    ``approximate`` is the GELU's form ('none': nanoGPT's exact erf, which chainrule computes
    per element in Python, slowly). ``dtype`` and ``generator`` are for code, not files.
    """
    return nn.GPT(vocab_size, block_size, n_layer, n_head, n_embd, dropout, bias, approximate,
                  dtype=dtype, generator=generator)
