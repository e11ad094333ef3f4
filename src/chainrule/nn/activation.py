"""Activation layers; each calls one registered op from chainrule.ops.elementwise or
chainrule.ops.activation (Softmin, Softmax and LogSoftmax the softmax ops)."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor
from chainrule.nn.module import Module, Parameter
from chainrule.ops import activation
from chainrule.ops.elementwise import gelu, leaky_relu, relu, sigmoid, silu, tanh
from chainrule.ops.loss import log_softmax, softmax


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
        self.negative_slope = _number(type(self).__name__, "negative_slope", negative_slope)

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


# ----------------------------------------------------------------------------- issue 13's
class _Inplace(Module):
    """An activation with PyTorch's ``inplace`` flag: accepted and shown in repr like
    PyTorch's, but the result is always a new tensor (chainrule changes no input in place)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = validate.boolean(type(self).__name__, "inplace", inplace)

    def _inplace_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


def _joined(*parts: str) -> str:
    return ", ".join(part for part in parts if part)


def _number(owner: str, name: str, value: float, **limits: Any) -> float:
    """``value`` checked as validate.real checks it, but kept as given when it is a Python
    int or float, so that repr shows what was passed, as PyTorch's does (``ELU(alpha=1)``)."""
    checked = validate.real(owner, name, value, **limits)
    return value if type(value) in (int, float) else checked


class Softplus(Module):
    """log(1 + exp(beta x)) / beta, linear where beta x > threshold."""

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        name = type(self).__name__
        self.beta = _number(name, "beta", beta)
        self.threshold = _number(name, "threshold", threshold, finite=False)

    def forward(self, x: Tensor) -> Tensor:
        """Apply softplus."""
        return activation.softplus(x, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class ELU(_Inplace):
    """x where x > 0, else alpha (exp(x) - 1)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.alpha = _number(type(self).__name__, "alpha", alpha)

    def forward(self, x: Tensor) -> Tensor:
        """Apply elu."""
        return activation.elu(x, self.alpha)

    def extra_repr(self) -> str:
        return _joined(f"alpha={self.alpha}", self._inplace_repr())


class CELU(_Inplace):
    """x where x > 0, else alpha (exp(x / alpha) - 1)."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.alpha = _number(type(self).__name__, "alpha", alpha)
        if self.alpha == 0:
            raise ValueError("CELU: alpha must not be 0 (it divides the input)")

    def forward(self, x: Tensor) -> Tensor:
        """Apply celu."""
        return activation.celu(x, self.alpha)

    def extra_repr(self) -> str:
        return _joined(f"alpha={self.alpha}", self._inplace_repr())


class SELU(_Inplace):
    """scale * elu(x, alpha) with the self-normalising constants."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply selu."""
        return activation.selu(x)

    def extra_repr(self) -> str:
        return self._inplace_repr()


class Mish(_Inplace):
    """x tanh(softplus(x))."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply mish."""
        return activation.mish(x)

    def extra_repr(self) -> str:
        return self._inplace_repr()


class Hardswish(_Inplace):
    """x relu6(x + 3) / 6."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply hardswish."""
        return activation.hardswish(x)

    def extra_repr(self) -> str:
        return self._inplace_repr()


class Hardsigmoid(_Inplace):
    """relu6(x + 3) / 6."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply hardsigmoid."""
        return activation.hardsigmoid(x)

    def extra_repr(self) -> str:
        return self._inplace_repr()


class LogSigmoid(Module):
    """log(sigmoid(x))."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply logsigmoid."""
        return activation.logsigmoid(x)


class Softsign(Module):
    """x / (1 + |x|)."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply softsign."""
        return activation.softsign(x)


class Hardtanh(_Inplace):
    """x clipped to [min_val, max_val]."""

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0,
                 inplace: bool = False) -> None:
        super().__init__(inplace)
        name = type(self).__name__
        self.min_val = _number(name, "min_val", min_val, finite=False)
        self.max_val = _number(name, "max_val", max_val, finite=False)
        if self.min_val > self.max_val:
            raise ValueError(f"{name}: min_val ({min_val}) cannot be greater than max_val "
                             f"({max_val})")

    def forward(self, x: Tensor) -> Tensor:
        """Apply hardtanh."""
        return activation.hardtanh(x, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return _joined(f"min_val={self.min_val}, max_val={self.max_val}", self._inplace_repr())


class ReLU6(Hardtanh):
    """min(max(x, 0), 6)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__(0.0, 6.0, inplace)

    def extra_repr(self) -> str:
        return self._inplace_repr()


class _AlongDim(Module):
    """A layer over one axis, ``dim`` as PyTorch names it (None: PyTorch's legacy choice)."""

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        if dim is not None:
            dim = validate.integer(type(self).__name__, "dim", dim)
        self.dim = dim

    def _axis(self, x: Tensor) -> int:
        if self.dim is not None:
            return self.dim
        return activation._implicit_axis(type(self).__name__, x.ndim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_AlongDim):
    """exp(x) / sum(exp(x)) along ``dim``."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply softmax."""
        return softmax(x, self._axis(x))


class LogSoftmax(_AlongDim):
    """x - logsumexp(x) along ``dim``."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply log_softmax."""
        return log_softmax(x, self._axis(x))


class Softmin(_AlongDim):
    """softmax(-x) along ``dim``."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply softmin."""
        return activation.softmin(x, self._axis(x))


class GLU(Module):
    """The first half of x along ``dim`` times the sigmoid of the second half."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = validate.integer(type(self).__name__, "dim", dim)

    def forward(self, x: Tensor) -> Tensor:
        """Apply glu."""
        return activation.glu(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class PReLU(Module):
    """x where x > 0, else weight * x; ``num_parameters`` weights (1, or one per channel),
    each starting at ``init``."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25,
                 dtype: np.dtype | str | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        self.num_parameters = validate.integer(name, "num_parameters", num_parameters, low=1)
        init = validate.real(name, "init", init)
        dtype = validate.float_dtype(name, "dtype", dtype)
        self.init = init
        self.weight = Parameter(np.full(self.num_parameters, init, dtype))

    def forward(self, x: Tensor) -> Tensor:
        """Apply prelu with the layer's weight."""
        return activation.prelu(x, self.weight)

    def extra_repr(self) -> str:
        return f"num_parameters={self.num_parameters}"
