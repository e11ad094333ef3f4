"""Linear layers: Linear, y = x @ W.T + b, with W laid out (out_features, in_features) as in
PyTorch, and Bilinear, y = x1 W x2 + b."""

from __future__ import annotations

import math

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.ops.embedding import BilinearOp
from chainrule.ops.linalg import LinearOp


class Linear(Module):
    """Fully connected layer.

    ``weight`` has shape (out_features, in_features), PyTorch's layout, so a state_dict moves
    between chainrule and ``torch.nn.Linear`` unchanged. (The seed's ``x @ w`` keeps w as
    (in, out): the transpose of this.) Initialised like PyTorch: U(-1/sqrt(in), 1/sqrt(in))
    for weight and bias; call ``init.kaiming_normal_(layer.weight)`` for the seed's init.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        in_features = validate.integer(name, "in_features", in_features, low=1)
        out_features = validate.integer(name, "out_features", out_features, low=1)
        bias = validate.boolean(name, "bias", bias)
        dtype = validate.float_dtype(name, "dtype", dtype)
        generator = validate.generator(name, "generator", generator)
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features)
        self.weight = Parameter(init.empty((out_features, in_features), dtype))
        init.uniform_(self.weight, -bound, bound, generator=generator)
        self.bias = None
        if bias:
            self.bias = Parameter(init.empty(out_features, dtype))
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, x: Tensor) -> Tensor:
        """x @ weight.T + bias."""
        return LinearOp.apply(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Bilinear(Module):
    """y = x1 W x2 + b for each pair of rows: ``weight`` (out_features, in1_features,
    in2_features), initialised like PyTorch's, U(-1/sqrt(in1), 1/sqrt(in1)), bias too."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True, dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        in1_features = validate.integer(name, "in1_features", in1_features, low=1)
        in2_features = validate.integer(name, "in2_features", in2_features, low=1)
        out_features = validate.integer(name, "out_features", out_features, low=1)
        bias = validate.boolean(name, "bias", bias)
        dtype = validate.float_dtype(name, "dtype", dtype)
        generator = validate.generator(name, "generator", generator)
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        bound = 1 / math.sqrt(in1_features)
        self.weight = Parameter(init.empty((out_features, in1_features, in2_features), dtype))
        init.uniform_(self.weight, -bound, bound, generator=generator)
        self.bias = None
        if bias:
            self.bias = Parameter(init.empty(out_features, dtype))
            init.uniform_(self.bias, -bound, bound, generator=generator)

    def forward(self, input1: Tensor, input2: Tensor) -> Tensor:
        """x1 W x2 + b."""
        return BilinearOp.apply(input1, input2, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
