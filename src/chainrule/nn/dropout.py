"""Dropout layer; the op lives in chainrule.ops.elementwise."""

from __future__ import annotations

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn.module import Module
from chainrule.ops.elementwise import dropout


class Dropout(Module):
    """In training, zero each element with probability ``p`` and scale the others by
    1 / (1 - p); in eval mode, the identity.

    Masks come from ``generator`` if given, else from chainrule's generator at call time
    (so ``cr.manual_seed`` makes a run repeatable). p = 1 zeros everything, as in PyTorch.
    """

    def __init__(self, p: float = 0.5, generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.p = validate.real(name, "p", p, 0, 1)
        self.generator = validate.generator(name, "generator", generator)

    def forward(self, x: Tensor) -> Tensor:
        """Drop elements of ``x`` (training mode only)."""
        return dropout(x, self.p, self.training, self.generator)

    def extra_repr(self) -> str:
        return f"p={self.p}"
