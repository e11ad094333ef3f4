"""Transforms that act on a whole batch array at once (axis 0 is the batch).

A ``Transform`` is called as ``t(x, rng)``; random ones draw from ``rng``, which the
DataLoader derives from (seed, epoch, batch index) so that every batch is reproducible, also
in a resumed run. Plain callables taking just ``x`` work in ``Compose`` and as a loader's
``transform`` too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

BatchFn = Callable[[np.ndarray], np.ndarray]


class Transform:
    """Base class: ``__call__(x, rng=None)`` maps a batch array to a batch array."""

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def apply_transform(transform: Transform | BatchFn, x: np.ndarray,
                    rng: np.random.Generator | None) -> np.ndarray:
    """Call ``transform`` on a batch, handing ``rng`` only to Transform objects."""
    return transform(x, rng) if isinstance(transform, Transform) else transform(x)


class Compose(Transform):
    """Apply transforms in order; random ones share the batch's generator, in sequence."""

    def __init__(self, transforms: Sequence[Transform | BatchFn]) -> None:
        self.transforms = list(transforms)
        for t in self.transforms:
            if not callable(t):
                raise TypeError(f"Compose: {t!r} is not callable")

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        for t in self.transforms:
            x = apply_transform(t, x, rng)
        return x

    def __repr__(self) -> str:
        return f"Compose([{', '.join(map(repr, self.transforms))}])"


class ToFloat(Transform):
    """uint8 pixels -> float32 in [0, 1] (divided by 255); floats are only cast."""

    def __init__(self, dtype: Any = np.float32) -> None:
        self.dtype = np.dtype(dtype)
        if self.dtype.kind != "f":
            raise TypeError(f"ToFloat: {self.dtype} is not a floating dtype")

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if x.dtype == np.uint8:
            return x.astype(self.dtype) / self.dtype.type(255)
        if x.dtype.kind == "f":
            return x.astype(self.dtype, copy=False)
        raise TypeError(f"ToFloat: expected uint8 pixels or floats, got {x.dtype}; the /255 "
                        "scaling is only defined for uint8")


class Normalize(Transform):
    """``(x - mean) / std``; a sequence gives one value per channel (axis 1)."""

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = np.asarray(mean, dtype=np.float64)
        self.std = np.asarray(std, dtype=np.float64)
        if self.mean.ndim > 1 or self.std.ndim > 1:
            raise ValueError("Normalize: mean and std must be numbers or 1-D sequences")
        if self.mean.size != self.std.size and 1 not in (self.mean.size, self.std.size):
            raise ValueError(f"Normalize: {self.mean.size} means but {self.std.size} stds")
        if not np.all(self.std > 0):
            raise ValueError(f"Normalize: std must be positive, got {self.std.tolist()}")

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if x.dtype.kind != "f":
            raise TypeError(f"Normalize: expected floats, got {x.dtype}; put ToFloat() first")
        mean, std = self.mean.astype(x.dtype), self.std.astype(x.dtype)
        if mean.ndim or std.ndim:
            channels = max(mean.size, std.size)
            if x.ndim < 2 or (channels != 1 and x.shape[1] != channels):
                raise ValueError(f"Normalize: {channels} channel values for a batch of shape "
                                 f"{x.shape} (channels are axis 1)")
            tail = (1,) * (x.ndim - 2)
            mean, std = mean.reshape(-1, *tail), std.reshape(-1, *tail)
        return (x - mean) / std

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean.tolist()}, std={self.std.tolist()})"


class Flatten(Transform):
    """(N, ...) -> (N, prod(...)): 28x28 images become MLP rows of 784."""

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        return x.reshape(len(x), -1)


class AddChannel(Transform):
    """(N, H, W) -> (N, 1, H, W), the layout convolutions expect."""

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if x.ndim != 3:
            raise ValueError(f"AddChannel: expected (N, H, W), got {x.shape}; use "
                             "Reshape(1, 28, 28) for flattened rows")
        return x[:, None]


class Reshape(Transform):
    """(N, ...) -> (N, *shape), e.g. ``Reshape(1, 28, 28)`` for rows of 784."""

    def __init__(self, *shape: int) -> None:
        self.shape = tuple(int(n) for n in shape)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        try:
            return x.reshape(len(x), *self.shape)
        except ValueError:
            raise ValueError(f"Reshape: cannot reshape a batch of {x.shape} to "
                             f"(N, {', '.join(map(str, self.shape))})") from None

    def __repr__(self) -> str:
        return f"Reshape{self.shape}"


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right (its last axis) with probability ``p``.

    Without an ``rng`` it draws from its own generator, seeded by ``seed``.
    """

    def __init__(self, p: float = 0.5, seed: int = 0) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"RandomHorizontalFlip: p must lie in [0, 1], got {p}")
        self.p = float(p)
        self._own = np.random.default_rng(seed)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if x.ndim < 3:
            raise ValueError(f"RandomHorizontalFlip: expected images (N, ..., H, W), got "
                             f"{x.shape}; flip before Flatten")
        flip = (rng if rng is not None else self._own).random(len(x)) < self.p
        out = x.copy()
        out[flip] = x[flip, ..., ::-1]
        return out

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class RandomShift(Transform):
    """Move each image by up to ``max_shift`` pixels in each direction, filling with zeros.

    The classic augmentation for digits: a few pixels of translation do not change the class
    and make a small training set look larger. One gather for the whole batch, no loop.
    """

    def __init__(self, max_shift: int = 2, seed: int = 0) -> None:
        if max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be >= 0, got {max_shift}")
        self.max_shift = int(max_shift)
        self._own = np.random.default_rng(seed)

    def __call__(self, x: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        if x.ndim < 3:
            raise ValueError(f"RandomShift: expected images (N, ..., H, W), got {x.shape}; "
                             "shift before Flatten")
        s = self.max_shift
        if s == 0:
            return x
        n, height, width = len(x), x.shape[-2], x.shape[-1]
        offsets = (rng if rng is not None else self._own).integers(0, 2 * s + 1, (2, n))
        padding = [(0, 0)] * (x.ndim - 2) + [(s, s), (s, s)]
        padded = np.pad(x, padding)
        rows = offsets[0][:, None] + np.arange(height)  # (n, H): source row of each output row
        cols = offsets[1][:, None] + np.arange(width)
        batch = np.arange(n)[:, None, None]
        moved = np.moveaxis(padded, (-2, -1), (1, 2))  # (n, H+2s, W+2s, ...)
        out = moved[batch, rows[:, :, None], cols[:, None, :]]
        return np.moveaxis(out, (1, 2), (-2, -1))

    def __repr__(self) -> str:
        return f"RandomShift(max_shift={self.max_shift})"
