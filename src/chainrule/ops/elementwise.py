"""Elementwise ops. Each backward is the local derivative times the upstream gradient.

Binary ops broadcast; their backward returns gradients of the broadcast shape and the engine
sums them back to each input's shape.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import kernels
from chainrule.engine import backend
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor, _as_data, untaped
from chainrule.kernels import activation as activation_kernels


def _operands(*values: Any) -> list[Any]:
    """The operands of a broadcasting op, converted to the one dtype PyTorch would give them.

    ``backend.result_dtype`` is the rule. Python numbers stay Python numbers (NumPy treats them
    as weak, so ``x * 2`` stays float32); arrays and tensors of another dtype are converted,
    tensors through the differentiable cast.
    """
    if len(values) == 2:  # the fast paths: one dtype, or a float tensor and a Python number
        a, b = values
        if type(a) is Tensor:
            if type(b) is Tensor:
                if a._data.dtype == b._data.dtype:
                    return [a, b]
            elif type(b) in (float, int) and a._data.dtype.kind == "f":
                return [a, b]
        elif type(b) is Tensor and type(a) in (float, int) and b._data.dtype.kind == "f":
            return [a, b]
    datas = []
    for value in values:
        if isinstance(value, Tensor):
            datas.append(value._data)
        elif isinstance(value, np.generic):
            datas.append(value.item())  # NumPy scalars count as Python numbers, as in PyTorch
        elif isinstance(value, (bool, int, float)):
            datas.append(value)
        else:
            datas.append(_as_data(value))
    dtype = backend.result_dtype(*datas)
    out = []
    for value, data in zip(values, datas):
        if not isinstance(data, np.ndarray):
            out.append(data)
        elif data.dtype == dtype:
            out.append(value if isinstance(value, Tensor) else data)
        elif isinstance(value, Tensor):
            out.append(value.astype(dtype))
        else:
            out.append(data.astype(dtype))
    return out


def _operand_data(a: Any, b: Any, op: str) -> tuple[Any, Any]:
    """Both operands' data in the dtype the promotion rule gives them, for ops that record
    nothing (comparisons, bitwise ops); Python numbers stay Python numbers, as in _operands."""
    datas = []
    for value in (a, b):
        if isinstance(value, Tensor):
            datas.append(value._data)
        elif isinstance(value, np.generic):
            datas.append(value.item())
        elif isinstance(value, (bool, int, float)):
            datas.append(value)
        else:
            datas.append(_as_data(value, where=f"{op}: input"))
    if not any(isinstance(d, np.ndarray) for d in datas):
        raise TypeError(f"{op}: needs at least one tensor, got {type(a).__name__} and "
                        f"{type(b).__name__}")
    dtype = backend.result_dtype(*datas)
    return tuple(d.astype(dtype, copy=False) if isinstance(d, np.ndarray) else d
                 for d in datas)  # type: ignore[return-value]


def _binary(fn: type[Function], a: Any, b: Any) -> Tensor:
    return fn.apply(*_operands(a, b))


# ----------------------------------------------------------------------------- arithmetic
class AddOp(Function):
    """a + b"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a + b

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return grad, grad


class SubOp(Function):
    """a - b"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a - b

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return grad, (-grad if ctx.needs_input_grad[1] else None)


class MulOp(Function):
    """a * b"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, need_b = ctx.needs_input_grad
        return (grad * ctx.b if need_a else None), (grad * ctx.a if need_b else None)


class DivOp(Function):
    """a / b;  d/da = 1/b,  d/db = -a/b^2 = -out/b"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = a / b
        ctx.b, ctx.out = b, out
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, need_b = ctx.needs_input_grad
        grad_a = grad / ctx.b
        return (grad_a if need_a else None), (-grad_a * ctx.out if need_b else None)


class NegOp(Function):
    """-a"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        return -a

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return -grad


class PowOp(Function):
    """a ** b;  d/da = b a^(b-1),  d/db = a^b log(a) (defined for a > 0)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = a**b
        ctx.a, ctx.b, ctx.out = a, b, out
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, need_b = ctx.needs_input_grad
        a, b = ctx.a, ctx.b
        grad_a = grad_b = None
        with np.errstate(divide="ignore", invalid="ignore"):
            if need_a:
                # b = 0 makes a**b the constant 1: slope 0 even at a = 0 (not 0 * inf = nan).
                grad_a = np.where(b == 0, 0, grad * b * a ** (b - 1))
            if need_b:
                # At a = 0, b >= 0 the limit of a^b log(a) is 0; PyTorch takes the same value.
                grad_b = np.where((a == 0) & (b >= 0), 0, grad * ctx.out * np.log(a))
        return grad_a, grad_b


class CloneOp(Function):
    """a copy of a;  d/da = 1"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        return a.copy()

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad


class CastOp(Function):
    """a converted to another dtype; the gradient is converted back."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, dtype: np.dtype) -> np.ndarray:
        ctx.dtype = a.dtype
        return a.astype(dtype)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad.astype(ctx.dtype)


# ----------------------------------------------------------------------------- unary math
class ExpOp(Function):
    """e^a;  d/da = e^a = out"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        if a.dtype.kind != "f":
            a = a.astype(backend.get_default_dtype())  # integers give floats, as in PyTorch
        ctx.out = np.exp(a)
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * ctx.out


class LogOp(Function):
    """log(a);  d/da = 1/a"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        if a.dtype.kind != "f":
            a = a.astype(backend.get_default_dtype())
        ctx.a = a
        return np.log(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad / ctx.a


class SqrtOp(Function):
    """sqrt(a);  d/da = 1 / (2 sqrt(a))"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        if a.dtype.kind != "f":
            a = a.astype(backend.get_default_dtype())
        ctx.out = np.sqrt(a)
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad / (2 * ctx.out)


class TanhOp(Function):
    """tanh(a);  d/da = 1 - tanh(a)^2"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        if a.dtype.kind != "f":
            a = a.astype(backend.get_default_dtype())
        ctx.out = np.tanh(a)
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * (1 - ctx.out * ctx.out)


class SigmoidOp(Function):
    """1 / (1 + e^-a);  d/da = s (1 - s)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        if a.dtype.kind != "f":
            a = a.astype(backend.get_default_dtype())
        # The tanh form never overflows, unlike 1 / (1 + exp(-a)) for large negative a.
        out = 0.5 * (1 + np.tanh(0.5 * a))
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * ctx.out * (1 - ctx.out)


class ReluOp(Function):
    """max(a, 0);  d/da = 1 where a > 0, else 0 (0 at a = 0, as in PyTorch)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        out = np.maximum(a, 0)
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * (ctx.out > 0)


class LeakyReluOp(Function):
    """a where a > 0, else negative_slope * a;  d/da = 1 where a > 0, else negative_slope
    (the slope at 0 is negative_slope, as in PyTorch)"""

    name = "leaky_relu"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, negative_slope: float = 0.01) -> np.ndarray:
        positive = a > 0
        ctx.positive, ctx.slope = positive, negative_slope
        return np.where(positive, a, a * negative_slope)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.where(ctx.positive, grad, grad * ctx.slope)


class SiluOp(Function):
    """a * sigmoid(a) (also called swish);  d/da = s + a s (1 - s) = s (1 + a (1 - s))"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        if a.dtype.kind != "f":
            a = a.astype(backend.get_default_dtype())
        s = 0.5 * (1 + np.tanh(0.5 * a))  # sigmoid without overflow, as in SigmoidOp's forward
        ctx.a, ctx.s = a, s
        return a * s

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        s = ctx.s
        return grad * s * (1 + ctx.a * (1 - s))


# The error function elementwise (math.erf per element: NumPy has none and SciPy is not a
# dependency), shared with GELU's reference in kernels/activation.py.
_erf = activation_kernels._erf_reference


class GeluOp(Function):
    """a * Phi(a), Phi the standard normal CDF;  d/da = Phi(a) + a phi(a), phi its density

    approximate='none': Phi(a) = (1 + erf(a / sqrt 2)) / 2, with an exact erf.
    approximate='tanh' (PyTorch's): 0.5 a (1 + t), t = tanh(k (a + 0.044715 a^3)),
    k = sqrt(2 / pi);  d/da = 0.5 (1 + t) + 0.5 a (1 - t^2) k (1 + 3 * 0.044715 a^2).
    Both passes are one kernel each (kernels.gelu, kernels.gelu_grad): backward recomputes
    t or erf from a rather than keep a second array of the MLP's widest activation.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, approximate: str = "none") -> np.ndarray:
        if approximate not in ("none", "tanh"):
            raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
        if a.dtype.kind != "f":
            a = a.astype(backend.get_default_dtype())
        ctx.a, ctx.approximate = a, approximate
        return kernels.gelu(a, approximate)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return kernels.gelu_grad(ctx.a, grad, ctx.approximate)


class AbsOp(Function):
    """|a|;  d/da = sign(a) (0 at a = 0)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a
        return np.abs(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * np.sign(ctx.a)


class ClampOp(Function):
    """min(max(a, low), high);  d/da = 1 inside [low, high] (bounds included), else 0"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, low: float | None = None,
                high: float | None = None) -> np.ndarray:
        if low is None and high is None:
            raise ValueError("clamp: give at least one of min and max")
        ctx.a, ctx.low, ctx.high = a, low, high
        return np.clip(a, low, high)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        a = ctx.a
        if ctx.low is None:
            return grad * (a <= ctx.high)
        if ctx.high is None:
            return grad * (a >= ctx.low)
        return grad * ((a >= ctx.low) & (a <= ctx.high))


class MaximumOp(Function):
    """max(a, b) elementwise; the larger input takes the gradient, ties share it equally."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a, ctx.b = a, b
        return np.maximum(a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        share_a = ((ctx.a > ctx.b) + 0.5 * (ctx.a == ctx.b)).astype(grad.dtype)
        return grad * share_a, grad * (1 - share_a)


class MinimumOp(Function):
    """min(a, b) elementwise; the smaller input takes the gradient, ties share it equally."""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a, ctx.b = a, b
        return np.minimum(a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        share_a = ((ctx.a < ctx.b) + 0.5 * (ctx.a == ctx.b)).astype(grad.dtype)
        return grad * share_a, grad * (1 - share_a)


class WhereOp(Function):
    """a where condition else b; the condition takes no gradient."""

    @staticmethod
    def forward(ctx: Context, condition: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.condition = condition
        return np.where(condition, a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        zero = np.zeros((), grad.dtype)
        return None, np.where(ctx.condition, grad, zero), np.where(ctx.condition, zero, grad)


class DropoutOp(Function):
    """x * mask * scale;  d/dx = grad * mask * scale

    The boolean mask (which units survive) is an input that takes no gradient, drawn by the
    caller (``dropout`` below): backward reuses exactly the units forward kept, and a test can
    hand the same mask to PyTorch. ``scale`` is 1 / (1 - p), so the expected value is kept.
    The mask may broadcast (one draw per channel, say) but may not grow x.
    """

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, mask: np.ndarray, scale: float = 1.0
                ) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise ValueError(f"dropout: mask must be a boolean array, got {mask.dtype}")
        if np.broadcast_shapes(mask.shape, x.shape) != x.shape:
            raise ValueError(f"dropout: mask shape {mask.shape} does not broadcast to the "
                             f"input shape {x.shape}")
        keep = mask * x.dtype.type(scale)
        ctx.keep = keep
        return x * keep

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return grad * ctx.keep, None


def dropout(input: Any, p: float = 0.5, training: bool = True,
            generator: np.random.Generator | None = None) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by 1 / (1 - p) in training;
    the identity otherwise. The mask comes from ``generator`` or chainrule's own
    (``cr.manual_seed``); p = 1 gives zeros, as in PyTorch."""
    if not 0 <= p <= 1:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p}")
    if not training or p == 0:
        return input if isinstance(input, Tensor) else Tensor(
            _as_data(input, where="dropout input"))
    data = input.data if isinstance(input, Tensor) else _as_data(input, where="dropout input")
    rng = generator if generator is not None else backend.default_generator()
    mask = rng.random(data.shape) >= p  # kept with probability 1 - p
    return DropoutOp.apply(input, mask, scale=0.0 if p == 1 else 1 / (1 - p))


# ----------------------------------------------------------------------------- functions
def add(input: Any, other: Any) -> Tensor:
    """a + b with broadcasting."""
    return _binary(AddOp, input, other)


def _is_bool(value: Any) -> bool:
    return value.dtype == np.bool_ if isinstance(value, (Tensor, np.ndarray)) else (
        isinstance(value, (bool, np.bool_)))


def sub(input: Any, other: Any) -> Tensor:
    """a - b with broadcasting (not on bools, as in PyTorch)."""
    if _is_bool(input) or _is_bool(other):
        raise TypeError("sub: subtraction with a bool operand is not supported (PyTorch "
                        "refuses it too); to invert a mask use ~mask or logical not, else "
                        "convert with .astype('int64')")
    return _binary(SubOp, input, other)


def mul(input: Any, other: Any) -> Tensor:
    """a * b with broadcasting."""
    return _binary(MulOp, input, other)


def div(input: Any, other: Any, rounding_mode: str | None = None) -> Tensor:
    """a / b with broadcasting: true division (integers give the default float dtype, as in
    PyTorch), or rounded toward zero (``rounding_mode='trunc'``) or down (``'floor'``) in the
    promoted dtype."""
    if rounding_mode is not None:
        from chainrule.ops.maths import _rounded_div  # maths builds on this module

        return _rounded_div(input, other, rounding_mode)
    input, other = _operands(input, other)
    kinds = {getattr(v, "dtype", np.dtype(type(v))).kind for v in (input, other)}
    if "f" not in kinds:
        dtype = backend.get_default_dtype()
        input, other = (v.astype(dtype) if hasattr(v, "astype") else float(v)
                        for v in (input, other))
    return DivOp.apply(input, other)


def neg(input: Any) -> Tensor:
    """-a."""
    return NegOp.apply(input)


def pow(input: Any, exponent: Any) -> Tensor:  # noqa: A001 - the op's name
    """a ** b with broadcasting."""
    if _is_bool(input) or _is_bool(exponent):
        input, exponent = _operands(input, exponent)
        if _is_bool(input) and _is_bool(exponent):
            # PyTorch: a bool tensor to a Python bool's power stays bool; two bool tensors
            # (or a Python bool base) it refuses.
            if isinstance(exponent, (bool, np.bool_)) and isinstance(input, Tensor):
                return Tensor(input._data | (not exponent))
            raise TypeError("pow: not defined for two bool operands (PyTorch refuses it "
                            "too); convert with .astype('int64')")
        return PowOp.apply(input, exponent)
    return _binary(PowOp, input, exponent)


def clone(input: Any) -> Tensor:
    """A copy with its own memory; gradients flow through it."""
    return CloneOp.apply(input)


def exp(input: Any) -> Tensor:
    """e ** a."""
    return ExpOp.apply(input)


def log(input: Any) -> Tensor:
    """Natural logarithm."""
    return LogOp.apply(input)


def sqrt(input: Any) -> Tensor:
    """Square root."""
    return SqrtOp.apply(input)


def tanh(input: Any) -> Tensor:
    """Hyperbolic tangent."""
    return TanhOp.apply(input)


def sigmoid(input: Any) -> Tensor:
    """Logistic sigmoid 1 / (1 + e^-a)."""
    return SigmoidOp.apply(input)


def relu(input: Any) -> Tensor:
    """max(a, 0)."""
    return ReluOp.apply(input)


def leaky_relu(input: Any, negative_slope: float = 0.01) -> Tensor:
    """a where a > 0, else negative_slope * a."""
    return LeakyReluOp.apply(input, negative_slope=negative_slope)


def silu(input: Any) -> Tensor:
    """a * sigmoid(a) (swish)."""
    return SiluOp.apply(input)


def gelu(input: Any, approximate: str = "none") -> Tensor:
    """a * Phi(a) with the exact normal CDF, or PyTorch's tanh form (``approximate='tanh'``)."""
    return GeluOp.apply(input, approximate=approximate)


def abs(input: Any) -> Tensor:  # noqa: A001 - the op's name
    """|a| (not on bools, as in PyTorch)."""
    if _is_bool(input):
        raise TypeError("abs: not defined for bool tensors (PyTorch refuses them too); "
                        "convert first, e.g. x.astype('int64')")
    return AbsOp.apply(input)


def clamp(input: Any, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
    """Limit ``input`` to [min, max]; either bound may be None, a number or a tensor
    (broadcasting). The result takes the promoted dtype, as PyTorch's: an integer tensor
    clamped at 0.5 is float32."""
    if isinstance(input, (bool, int, float, np.generic)):
        raise TypeError(f"clamp: input must be a tensor, got {type(input).__name__} (PyTorch "
                        "refuses a number too)")
    if isinstance(min, (Tensor, np.ndarray)) or isinstance(max, (Tensor, np.ndarray)):
        # Tensor bounds as PyTorch gives them: a takes the gradient where it is inside
        # (the bounds included), a bound where it cuts; min > max gives max.
        out = input
        if min is not None:
            out = where(lt(out, min), min, out)
        if max is not None:
            out = where(gt(out, max), max, out)
        return out
    bounds = [v.item() if isinstance(v, np.generic) else v for v in (min, max) if v is not None]
    if isinstance(input, Tensor):
        dtype = backend.result_dtype(input._data, *bounds) if bounds else input.dtype
        if dtype == np.bool_:  # a bool tensor and a bool bound
            raise TypeError("clamp: not defined for a bool tensor with bool bounds (PyTorch "
                            "refuses it too); convert first, e.g. x.astype('int64')")
        if dtype != input.dtype:  # an integer tensor and a float bound (PyTorch's promotion)
            input = input.astype(dtype)
    return ClampOp.apply(input, low=min, high=max)


def maximum(input: Any, other: Any) -> Tensor:
    """Elementwise maximum with broadcasting."""
    return _binary(MaximumOp, input, other)


def minimum(input: Any, other: Any) -> Tensor:
    """Elementwise minimum with broadcasting."""
    return _binary(MinimumOp, input, other)


def where(condition: Any, input: Any, other: Any) -> Tensor:
    """Pick ``input`` where ``condition`` holds, else ``other`` (broadcasting)."""
    flags = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    if flags.dtype != np.bool_:  # nonzero is true: a comparison a tracer can follow
        flags = untaped("not_equal", {"a": condition, "b": 0}, Tensor(flags != 0))._data
    return WhereOp.apply(flags, *_operands(input, other))


def _compare(ufunc: np.ufunc, a: Any, b: Any) -> Tensor:
    """A comparison in the dtype the promotion rule gives the operands, as in PyTorch (an
    int64 tensor against 0.5 compares as float32; float32 against a float64 0-d tensor as
    float32)."""
    return untaped(ufunc.__name__, {"a": a, "b": b}, _compared(ufunc, a, b))


def _compared(ufunc: np.ufunc, a: Any, b: Any) -> Tensor:
    if type(a) is Tensor:  # the fast paths: one dtype, or a float tensor and a Python number
        if type(b) is Tensor:
            if a._data.dtype == b._data.dtype:
                return Tensor(ufunc(a._data, b._data))
        elif type(b) in (float, int) and a._data.dtype.kind == "f":
            return Tensor(ufunc(a._data, b))
    return Tensor(ufunc(*_operand_data(a, b, ufunc.__name__)))


def lt(input: Any, other: Any) -> Tensor:
    """a < b as a bool tensor (no gradient)."""
    return _compare(np.less, input, other)


def le(input: Any, other: Any) -> Tensor:
    """a <= b as a bool tensor (no gradient)."""
    return _compare(np.less_equal, input, other)


def gt(input: Any, other: Any) -> Tensor:
    """a > b as a bool tensor (no gradient)."""
    return _compare(np.greater, input, other)


def ge(input: Any, other: Any) -> Tensor:
    """a >= b as a bool tensor (no gradient)."""
    return _compare(np.greater_equal, input, other)


def eq(input: Any, other: Any) -> Tensor:
    """a == b as a bool tensor (no gradient)."""
    return _compare(np.equal, input, other)


def ne(input: Any, other: Any) -> Tensor:
    """a != b as a bool tensor (no gradient)."""
    return _compare(np.not_equal, input, other)
