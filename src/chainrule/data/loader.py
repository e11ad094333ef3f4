"""DataLoader: batches of tensors cut from a dataset by fancy indexing, one array op per batch.

Randomness is a pure function of (seed, epoch[, batch]): the order of epoch e is
``default_rng([tag, seed, e]).permutation(n)`` and a batch's random transforms draw from
``default_rng([tag, seed, e, b])``. Nothing depends on how many epochs were run before, so a
training resumed with ``set_epoch(e)`` sees exactly the batches an uninterrupted run would.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule.data.transforms import BatchFn, Transform, apply_transform
from chainrule.engine.tensor import Tensor

# Keys for the two random streams. SeedSequence treats [a, b] and [a, b, 0] alike, so each
# stream keeps one key length and starts with its own tag to stay apart from the other.
_SHUFFLE_TAG = 0x5348  # "SH"
_TRANSFORM_TAG = 0x5452  # "TR"


def _int_at_least(value: Any, what: str, least: int = 0) -> int:
    if isinstance(value, bool):
        raise TypeError(f"DataLoader: {what} must be an int, got {value!r}")
    try:
        number = operator.index(value)
    except TypeError:
        raise TypeError(f"DataLoader: {what} must be an int, got {value!r}") from None
    if number < least:
        raise ValueError(f"DataLoader: {what} must be >= {least}, got {number}")
    return number


class DataLoader:
    """Iterate ``(x, y)`` tensor batches of ``dataset`` (anything with len and array indexing).

    Each ``iter(loader)`` yields the batches of epoch ``loader.epoch`` and then advances it by
    one, so ``for epoch in range(n): for xb, yb in loader: ...`` walks epochs 0..n-1. To
    resume at epoch e, call ``loader.set_epoch(e)`` first.
    """

    def __init__(self, dataset: Any, batch_size: int = 64, shuffle: bool = False,
                 seed: int = 0, drop_last: bool = False,
                 transform: Transform | BatchFn | None = None) -> None:
        if isinstance(dataset, (tuple, list)):
            raise TypeError("DataLoader: got a tuple/list; wrap the arrays as "
                            "ArrayDataset(x, y)")
        if not (hasattr(dataset, "__len__") and hasattr(dataset, "__getitem__")):
            raise TypeError(f"DataLoader: {type(dataset).__name__} has no len() and indexing; "
                            "wrap the arrays as ArrayDataset(x, y)")
        self.batch_size = _int_at_least(batch_size, "batch_size", 1)
        self.seed = _int_at_least(seed, "seed")
        if transform is not None and not callable(transform):
            raise TypeError(f"DataLoader: transform {transform!r} is not callable")
        self.dataset = dataset
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.transform = transform
        self.epoch = 0

    def __len__(self) -> int:
        """The number of batches in one epoch."""
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch`` (to resume a training run)."""
        self.epoch = _int_at_least(epoch, "epoch")

    def order(self, epoch: int | None = None) -> np.ndarray:
        """The sample indices of ``epoch`` (default: the next one) in the order they are served."""
        epoch = self.epoch if epoch is None else _int_at_least(epoch, "epoch")
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([_SHUFFLE_TAG, self.seed, epoch]).permutation(n)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        return self._batches(epoch)

    def _batches(self, epoch: int) -> Iterator[tuple[Tensor, Tensor]]:
        order = self.order(epoch)
        size = self.batch_size
        for b in range(len(self)):
            x, y = self.dataset[order[b * size:(b + 1) * size]]
            if self.transform is not None:
                rng = np.random.default_rng([_TRANSFORM_TAG, self.seed, epoch, b])
                x = apply_transform(self.transform, x, rng)
            yield Tensor(x), Tensor(y)

    def __repr__(self) -> str:
        return (f"DataLoader({self.dataset!r}, batch_size={self.batch_size}, "
                f"shuffle={self.shuffle}, seed={self.seed}, drop_last={self.drop_last}, "
                f"transform={self.transform!r}, epoch={self.epoch})")
