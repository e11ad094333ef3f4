"""Weight initialisation. Kaiming's point (the seed's lesson): scale weights by sqrt(gain/fan_in)
so that activations keep a standard deviation near 1 through many layers instead of exploding."""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from chainrule.engine import backend
from chainrule.engine.tensor import Tensor

_GAINS = {"linear": 1.0, "sigmoid": 1.0, "tanh": 5 / 3, "relu": math.sqrt(2.0)}


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """The factor that keeps the variance of activations after ``nonlinearity`` at 1."""
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else param
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity not in _GAINS:
        raise ValueError(f"calculate_gain: unknown nonlinearity {nonlinearity!r}; use one of "
                         f"{sorted(_GAINS) + ['leaky_relu']}")
    return _GAINS[nonlinearity]


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """(fan_in, fan_out) of a weight laid out (out, in, *kernel) as in PyTorch."""
    if len(shape) < 2:
        raise ValueError(f"fans: a weight needs at least 2 dims, got shape {shape}")
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _fill(tensor: Tensor, draw: Callable[[], np.ndarray]) -> Tensor:
    """Write ``draw()`` into ``tensor`` in place; under ``shapes_only`` draw nothing at all."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"nn.init fills a Tensor in place (e.g. layer.weight), got "
                        f"{type(tensor).__name__}")
    if _SHAPES_ONLY.active:
        return tensor  # no memory to fill, and the random stream is left as it was
    tensor.data[...] = draw()
    tensor._bump_version()  # in place: a graph recorded before this would be stale
    return tensor


class _Switch(threading.local):
    active = False


_SHAPES_ONLY = _Switch()


@contextlib.contextmanager
def shapes_only() -> Iterator[None]:
    """Build layers whose parameters and buffers take no memory, to learn a model's shapes and
    size before allocating it (what PyTorch calls the meta device).

    Inside the block ``empty`` and ``full`` return read-only zero-stride views and the init
    functions draw nothing (the random stream does not move), so a recipe's model costs a few
    bytes per layer whatever its widths. Such a model is a skeleton: do not train it.
    """
    previous, _SHAPES_ONLY.active = _SHAPES_ONLY.active, True
    try:
        yield
    finally:
        _SHAPES_ONLY.active = previous


def empty(shape: int | tuple[int, ...], dtype: Any) -> np.ndarray:
    """A new parameter array for an init function to fill (see ``shapes_only``)."""
    if _SHAPES_ONLY.active:
        return np.broadcast_to(np.zeros((), dtype), shape)
    return np.empty(shape, dtype)


def full(shape: int | tuple[int, ...], value: float, dtype: Any) -> np.ndarray:
    """A new array of ``value`` (BatchNorm's ones and zeros; see ``shapes_only``)."""
    if _SHAPES_ONLY.active:
        return np.broadcast_to(np.asarray(value, dtype), shape)
    return np.full(shape, value, dtype)


def _rng(generator: np.random.Generator | None) -> np.random.Generator:
    return generator or backend.default_generator()


def kaiming_normal_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                    nonlinearity: str = "relu",
                    generator: np.random.Generator | None = None) -> Tensor:
    """Fill with N(0, std^2), std = gain / sqrt(fan): He et al. 2015, the seed's sqrt(2/n_in)."""
    std = _gain(a, nonlinearity) / math.sqrt(_fan(tensor, mode))
    return _fill(tensor, lambda: _rng(generator).standard_normal(tensor.shape) * std)


def kaiming_uniform_(tensor: Tensor, a: float = 0.0, mode: str = "fan_in",
                     nonlinearity: str = "relu",
                     generator: np.random.Generator | None = None) -> Tensor:
    """Fill with U(-b, b), b = gain * sqrt(3 / fan): same variance as kaiming_normal_."""
    bound = _gain(a, nonlinearity) * math.sqrt(3.0 / _fan(tensor, mode))
    return _fill(tensor, lambda: _rng(generator).uniform(-bound, bound, tensor.shape))


def xavier_normal_(tensor: Tensor, gain: float = 1.0,
                   generator: np.random.Generator | None = None) -> Tensor:
    """Fill with N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out)) (Glorot & Bengio)."""
    fan_in, fan_out = fans(tensor.shape)
    std = gain * math.sqrt(2.0 / (fan_in + fan_out))
    return _fill(tensor, lambda: _rng(generator).standard_normal(tensor.shape) * std)


def xavier_uniform_(tensor: Tensor, gain: float = 1.0,
                    generator: np.random.Generator | None = None) -> Tensor:
    """Fill with U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = fans(tensor.shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return _fill(tensor, lambda: _rng(generator).uniform(-bound, bound, tensor.shape))


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0,
            generator: np.random.Generator | None = None) -> Tensor:
    """Fill with N(mean, std^2)."""
    return _fill(tensor, lambda: _rng(generator).normal(mean, std, tensor.shape))


def uniform_(tensor: Tensor, low: float = 0.0, high: float = 1.0,
             generator: np.random.Generator | None = None) -> Tensor:
    """Fill with U(low, high)."""
    return _fill(tensor, lambda: _rng(generator).uniform(low, high, tensor.shape))


def zeros_(tensor: Tensor) -> Tensor:
    """Fill with zeros."""
    return _fill(tensor, lambda: np.zeros(tensor.shape))


def ones_(tensor: Tensor) -> Tensor:
    """Fill with ones."""
    return _fill(tensor, lambda: np.ones(tensor.shape))


def _gain(a: float, nonlinearity: str) -> float:
    return calculate_gain(nonlinearity, a) if nonlinearity == "leaky_relu" \
        else calculate_gain(nonlinearity)


def _fan(tensor: Tensor, mode: str) -> int:
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = fans(tensor.shape)
    return fan_in if mode == "fan_in" else fan_out
