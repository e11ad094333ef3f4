"""Loss functions as layers; the functional forms live with the ops."""

from __future__ import annotations

from typing import Any

from chainrule.nn.module import Module
from chainrule.ops.nn import mse
from chainrule.tensor import Tensor


class MSELoss(Module):
    """Mean squared error; an (N, 1) output against (N,) targets is compared as if squeezed."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = reduction

    def forward(self, output: Tensor, target: Any) -> Tensor:
        """The loss between ``output`` and ``target``."""
        return mse(output, target, self.reduction)
