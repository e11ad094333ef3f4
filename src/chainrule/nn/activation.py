"""Activation layers; each calls one registered op from chainrule.ops.elementwise."""

from __future__ import annotations

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn.module import Module
from chainrule.ops.elementwise import gelu, leaky_relu, relu, sigmoid, silu, tanh


class ReLU(Module):
    """max(x, 0) as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply relu."""
        return relu(x)


class Tanh(Module):
    """tanh(x) as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply tanh."""
        return tanh(x)


class Sigmoid(Module):
    """1 / (1 + e^-x) as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply the logistic sigmoid."""
        return sigmoid(x)


class LeakyReLU(Module):
    """x where x > 0, else negative_slope * x."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = validate.real(type(self).__name__, "negative_slope",
                                            negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        """Apply leaky relu."""
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class SiLU(Module):
    """x * sigmoid(x) (swish) as a layer."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply silu."""
        return silu(x)


class GELU(Module):
    """x * Phi(x): exact (``approximate='none'``, an erf per element) or PyTorch's tanh form."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = validate.choice(type(self).__name__, "approximate", approximate,
                                           ("none", "tanh"))

    def forward(self, x: Tensor) -> Tensor:
        """Apply gelu."""
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"
