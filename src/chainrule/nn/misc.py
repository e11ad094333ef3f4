"""Small layers: Identity, Unflatten and CosineSimilarity."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn.module import Module
from chainrule.ops.loss import cosine_similarity
from chainrule.ops.shape import reshape


class Identity(Module):
    """Returns its input; any constructor arguments are ignored, as in PyTorch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Any) -> Any:
        """``input`` itself."""
        return input


class Unflatten(Module):
    """Split axis ``dim`` into ``unflattened_size`` (one entry may be -1)."""

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        name = type(self).__name__
        self.dim = validate.integer(name, "dim", dim)
        if not isinstance(unflattened_size, (tuple, list)) or not unflattened_size:
            raise TypeError(f"{name}: unflattened_size must be a non-empty tuple of ints, got "
                            f"{unflattened_size!r}")
        sizes = tuple(validate.integer(name, f"unflattened_size[{i}]", n, low=-1)
                      for i, n in enumerate(unflattened_size))
        if sizes.count(-1) > 1:
            raise ValueError(f"{name}: only one size in unflattened_size may be -1, got {sizes}")
        if 0 in sizes:
            raise ValueError(f"{name}: unflattened_size must not hold 0, got {sizes}")
        # Kept in the container it came in (a list or a tuple), as PyTorch keeps it
        self.unflattened_size = list(sizes) if isinstance(unflattened_size, list) else sizes

    def forward(self, input: Tensor) -> Tensor:
        """``input`` with axis ``dim`` split."""
        shape = tuple(np.shape(input.data if isinstance(input, Tensor) else input))
        axis = validate.axis("Unflatten", "dim", self.dim, len(shape))
        if not shape:
            raise ValueError("Unflatten: a 0-d tensor has no axis to split")
        sizes, known = tuple(self.unflattened_size), 1
        for n in sizes:
            known *= n if n != -1 else 1
        if (-1 not in sizes and known != shape[axis]) or (-1 in sizes and shape[axis] % known):
            raise ValueError(f"Unflatten: sizes {sizes} do not split axis {self.dim} of size "
                             f"{shape[axis]} (input shape {shape})")
        return reshape(input, shape[:axis] + sizes + shape[axis + 1:])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class CosineSimilarity(Module):
    """Cosine similarity of two inputs along ``dim`` (they broadcast)."""

    def __init__(self, dim: int = 1, eps: float = 1e-8) -> None:
        super().__init__()
        self.dim = validate.integer(type(self).__name__, "dim", dim)
        self.eps = validate.real(type(self).__name__, "eps", eps, low=0)

    def forward(self, x1: Any, x2: Any) -> Tensor:
        """cos(x1, x2) along ``dim``."""
        return cosine_similarity(x1, x2, self.dim, self.eps)
