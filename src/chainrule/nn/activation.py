"""Activation layers."""

from __future__ import annotations

from chainrule.nn.module import Module
from chainrule.ops.elementwise import relu
from chainrule.tensor import Tensor


class ReLU(Module):
    """max(x, 0) as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply relu."""
        return relu(x)
