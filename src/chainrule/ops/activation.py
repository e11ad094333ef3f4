"""Activations beyond relu/sigmoid/tanh: softplus, the ELU family, mish, the hard ones,
logsigmoid, softsign, hardtanh (relu6), glu and prelu; softmin over softmax.

The values and slopes at the kinks are PyTorch's: hardtanh and relu6 take slope 0 at their
bounds, hardswish and hardsigmoid at +-3 (hardswish's is 1 at 3), ELU and SELU take the
negative side's slope at 0, prelu the weight. Integer inputs give the default float dtype
(PyTorch refuses most of them), except hardtanh and relu6, which keep integers as PyTorch does.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine import backend
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor, _as_data
from chainrule.ops.elementwise import neg
from chainrule.ops.loss import softmax

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def _float(a: np.ndarray) -> np.ndarray:
    """``a`` for a float op: integers and bools become the default float dtype."""
    return a if a.dtype.kind == "f" else a.astype(backend.get_default_dtype())


def _input(a: Any, op: str) -> Any:
    return a if isinstance(a, Tensor) else _as_data(a, where=f"{op}: input")


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-z), never overflowing and exact to rounding on both sides: for z < 0 as
    e^z / (1 + e^z) (the tanh form would lose the digits of the tiny values there)."""
    small = np.exp(-np.abs(z))
    return np.where(z >= 0, 1, small) / (1 + small)


def _softplus(z: np.ndarray) -> np.ndarray:
    """log(1 + e^z) without overflow: max(z, 0) + log1p(e^-|z|)."""
    return np.maximum(z, 0) + np.log1p(np.exp(-np.abs(z)))


class SoftplusOp(Function):
    """log(1 + e^(beta a)) / beta, and a itself where beta a > threshold;
    d/da = sigmoid(beta a) (1 past the threshold)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, beta: float = 1.0, threshold: float = 20.0
                ) -> np.ndarray:
        a = _float(a)
        z = a * beta
        linear = z > threshold
        ctx.z, ctx.linear = z, linear
        with np.errstate(divide="ignore", invalid="ignore"):  # beta = 0 gives inf, as torch
            return np.where(linear, a, _softplus(z) / beta)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.where(ctx.linear, grad, grad * _sigmoid(ctx.z))


class EluOp(Function):
    """a for a > 0, else alpha (e^a - 1);  d/da = 1 for a > 0, else alpha e^a (alpha at 0)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, alpha: float = 1.0) -> np.ndarray:
        a = _float(a)
        positive = a > 0
        ctx.positive, ctx.alpha, ctx.a = positive, alpha, a
        return np.where(positive, a, alpha * np.expm1(np.minimum(a, 0)))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.where(ctx.positive, grad, grad * (ctx.alpha * np.exp(np.minimum(ctx.a, 0))))


class CeluOp(Function):
    """a for a > 0, else alpha (e^(a / alpha) - 1);  d/da = 1 for a > 0, else e^(a / alpha)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, alpha: float = 1.0) -> np.ndarray:
        if alpha == 0:
            raise ValueError("celu: alpha must not be 0 (it divides the input)")
        a = _float(a)
        positive = a > 0
        with np.errstate(over="ignore"):  # the branch np.where drops may overflow
            scaled = np.where(positive, 0, a) / alpha
        ctx.positive, ctx.scaled = positive, scaled
        with np.errstate(over="ignore"):
            return np.where(positive, a, alpha * np.expm1(scaled))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return np.where(ctx.positive, grad, grad * np.exp(ctx.scaled))


class SeluOp(Function):
    """scale * (a for a > 0, else alpha (e^a - 1)), the self-normalising constants;
    d/da = scale for a > 0, else scale alpha e^a"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        a = _float(a)
        positive = a > 0
        ctx.positive, ctx.a = positive, a
        return _SELU_SCALE * np.where(positive, a, _SELU_ALPHA * np.expm1(np.minimum(a, 0)))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        slope = np.where(ctx.positive, _SELU_SCALE,
                         (_SELU_SCALE * _SELU_ALPHA) * np.exp(np.minimum(ctx.a, 0)))
        return grad * slope.astype(grad.dtype, copy=False)


class MishOp(Function):
    """a tanh(softplus(a));  d/da = t + a sigmoid(a) (1 - t^2), t = tanh(softplus(a))"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        a = _float(a)
        t = np.tanh(_softplus(a))
        ctx.a, ctx.t = a, t
        return a * t

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        a, t = ctx.a, ctx.t
        return grad * (t + a * _sigmoid(a) * (1 - t * t))


class HardswishOp(Function):
    """a relu6(a + 3) / 6;  d/da = 0 for a <= -3, 1 for a >= 3, else a / 3 + 1/2"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        a = _float(a)
        ctx.a = a
        return a * (np.clip(a + 3, 0, 6) / 6)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        a = ctx.a
        slope = np.where(a <= -3, 0, np.where(a >= 3, 1, a / 3 + 0.5)).astype(grad.dtype)
        return grad * slope


class HardsigmoidOp(Function):
    """relu6(a + 3) / 6;  d/da = 1/6 strictly inside (-3, 3), else 0"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        a = _float(a)
        ctx.inside = (a > -3) & (a < 3)
        return np.clip(a + 3, 0, 6) / 6

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * ctx.inside / 6


class LogSigmoidOp(Function):
    """log(sigmoid(a)) = -softplus(-a);  d/da = sigmoid(-a)"""

    name = "logsigmoid"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        a = _float(a)
        ctx.a = a
        return -_softplus(-a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * _sigmoid(-ctx.a)


class SoftsignOp(Function):
    """a / (1 + |a|);  d/da = 1 / (1 + |a|)^2"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        a = _float(a)
        ctx.denominator = 1 + np.abs(a)
        return a / ctx.denominator

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        d = ctx.denominator
        return grad / (d * d)


class HardtanhOp(Function):
    """a clipped to [min_val, max_val];  d/da = 1 strictly inside, 0 at and beyond the bounds"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, min_val: float = -1.0, max_val: float = 1.0
                ) -> np.ndarray:
        if min_val > max_val:
            raise ValueError(f"hardtanh: min_val ({min_val}) cannot be greater than max_val "
                             f"({max_val})")
        if a.dtype.kind != "f":
            # PyTorch keeps integers, its bounds cut toward zero to the integer dtype.
            low, high = a.dtype.type(math.trunc(min_val)), a.dtype.type(math.trunc(max_val))
            return np.clip(a, low, high)
        ctx.inside = (a > min_val) & (a < max_val)
        return np.clip(a, a.dtype.type(min_val), a.dtype.type(max_val))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * ctx.inside


class GluOp(Function):
    """first * sigmoid(second), the halves of a along axis;
    d/d first = sigmoid(second),  d/d second = first s (1 - s)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int = -1) -> np.ndarray:
        if a.ndim == 0:
            raise ValueError("glu: needs a tensor with dims: a 0-d tensor has no halves")
        axis = validate.axis("glu", "axis", axis, a.ndim)
        if a.shape[axis] % 2:
            raise ValueError(f"glu: the size along axis {axis} must be even to halve it, got "
                             f"{a.shape[axis]}")
        a = _float(a)
        first, second = np.split(a, 2, axis=axis)
        s = _sigmoid(second)
        ctx.first, ctx.s, ctx.axis = first, s, axis
        return first * s

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        s = ctx.s
        grad_first = grad * s
        return np.concatenate([grad_first, grad_first * ctx.first * (1 - s)], axis=ctx.axis)


class PreluOp(Function):
    """a for a > 0, else weight * a, one weight per channel (axis 1) or one for all;
    d/da = 1 for a > 0, else weight (the weight at 0),  d/dweight = a where a <= 0, summed
    over everything but the channel axis"""

    same_dtype = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, weight: np.ndarray) -> np.ndarray:
        if not isinstance(weight, np.ndarray) or weight.ndim > 1:
            raise ValueError(f"prelu: weight must be a 0-d or 1-D tensor, got "
                             f"{np.ndim(weight)} dims")
        if a.dtype.kind != "f":
            raise TypeError(f"prelu: the input must be floating (as its weight), got {a.dtype}")
        count = weight.size
        channels = a.shape[1] if a.ndim >= 2 else 1
        if count != 1 and count != channels:
            raise ValueError(f"prelu: {count} weights for an input with {channels} channel"
                             f"{'' if channels == 1 else 's'} (axis 1 of shape {a.shape}); give "
                             "one weight, or one per channel")
        shaped = weight.reshape(()) if count == 1 else weight.reshape(
            (count,) + (1,) * (a.ndim - 2))
        positive = a > 0
        ctx.a, ctx.positive, ctx.shaped, ctx.weight_shape = a, positive, shaped, weight.shape
        return np.where(positive, a, shaped * a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, need_weight = ctx.needs_input_grad
        grad_a = np.where(ctx.positive, grad, grad * ctx.shaped) if need_a else None
        grad_weight = None
        if need_weight:
            negative_part = np.where(ctx.positive, 0, grad * ctx.a)
            if ctx.shaped.ndim == 0:
                total = negative_part.sum()
            else:
                total = negative_part.sum(axis=(0,) + tuple(range(2, negative_part.ndim)))
            grad_weight = np.asarray(total, grad.dtype).reshape(ctx.weight_shape)
        return grad_a, grad_weight


# ----------------------------------------------------------------------------- functions
def softplus(input: Any, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta * a)) / beta, linear where beta * a > threshold."""
    beta = validate.real("softplus", "beta", beta)
    threshold = validate.real("softplus", "threshold", threshold, finite=False)
    return SoftplusOp.apply(_input(input, "softplus"), beta=beta, threshold=threshold)


def elu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """a where a > 0, else alpha * (exp(a) - 1); ``inplace`` is accepted, the result is new."""
    alpha = validate.real("elu", "alpha", alpha)
    validate.boolean("elu", "inplace", inplace)
    return EluOp.apply(_input(input, "elu"), alpha=alpha)


def celu(input: Any, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """a where a > 0, else alpha * (exp(a / alpha) - 1)."""
    alpha = validate.real("celu", "alpha", alpha)
    validate.boolean("celu", "inplace", inplace)
    return CeluOp.apply(_input(input, "celu"), alpha=alpha)


def selu(input: Any, inplace: bool = False) -> Tensor:
    """scale * elu(a, alpha) with the self-normalising constants."""
    validate.boolean("selu", "inplace", inplace)
    return SeluOp.apply(_input(input, "selu"))


def mish(input: Any, inplace: bool = False) -> Tensor:
    """a * tanh(softplus(a))."""
    validate.boolean("mish", "inplace", inplace)
    return MishOp.apply(_input(input, "mish"))


def hardswish(input: Any, inplace: bool = False) -> Tensor:
    """a * relu6(a + 3) / 6."""
    validate.boolean("hardswish", "inplace", inplace)
    return HardswishOp.apply(_input(input, "hardswish"))


def hardsigmoid(input: Any, inplace: bool = False) -> Tensor:
    """relu6(a + 3) / 6."""
    validate.boolean("hardsigmoid", "inplace", inplace)
    return HardsigmoidOp.apply(_input(input, "hardsigmoid"))


def logsigmoid(input: Any) -> Tensor:
    """log(sigmoid(a)), without overflow."""
    return LogSigmoidOp.apply(_input(input, "logsigmoid"))


def softsign(input: Any) -> Tensor:
    """a / (1 + |a|)."""
    return SoftsignOp.apply(_input(input, "softsign"))


def hardtanh(input: Any, min_val: float = -1.0, max_val: float = 1.0,
             inplace: bool = False) -> Tensor:
    """a clipped to [min_val, max_val] (integers stay integers)."""
    min_val = validate.real("hardtanh", "min_val", min_val, finite=False)
    max_val = validate.real("hardtanh", "max_val", max_val, finite=False)
    validate.boolean("hardtanh", "inplace", inplace)
    return HardtanhOp.apply(_input(input, "hardtanh"), min_val=min_val, max_val=max_val)


def relu6(input: Any, inplace: bool = False) -> Tensor:
    """min(max(a, 0), 6): hardtanh(a, 0, 6), slope 0 at 0 and 6 as in PyTorch."""
    validate.boolean("relu6", "inplace", inplace)
    return HardtanhOp.apply(_input(input, "relu6"), min_val=0.0, max_val=6.0)


def _implicit_axis(op: str, ndim: int) -> int:
    """PyTorch's legacy choice when softmax-like ops get no dim (it warns, and so do we)."""
    warnings.warn(f"{op}: no dim given; using PyTorch's legacy choice (0 for 0-, 1- and 3-D "
                  "input, else 1). Pass dim= explicitly", UserWarning, stacklevel=3)
    return 0 if ndim in (0, 1, 3) else 1


def _as_dtype(a: Any, dtype: Any, op: str) -> Any:
    if dtype is None:
        return a
    dtype = validate.float_dtype(op, "dtype", dtype)
    return a.astype(dtype) if isinstance(a, Tensor) else _as_data(a, dtype, where=op)


@validate.torch_names
def softmin(input: Any, axis: int | None = None, dtype: Any = None) -> Tensor:
    """softmax(-a) along ``axis``; ``dtype`` converts the input first."""
    input = _as_dtype(_input(input, "softmin"), dtype, "softmin")
    if axis is None:
        axis = _implicit_axis("softmin", input.ndim)
    return softmax(neg(input), axis)


@validate.torch_names
def glu(input: Any, axis: int = -1) -> Tensor:
    """The first half of ``input`` along ``axis`` times the sigmoid of the second half."""
    return GluOp.apply(_input(input, "glu"), axis=axis)


def prelu(input: Any, weight: Any) -> Tensor:
    """a where a > 0, else weight * a; ``weight`` one value or one per channel (axis 1)."""
    return PreluOp.apply(_input(input, "prelu"), _input(weight, "prelu weight"))
