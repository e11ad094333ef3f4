"""Elementwise maths: trigonometric, hyperbolic, logarithms and exponentials, erf and erfinv,
rounding, lerp and the binary float ops, the integer divisions, bitwise ops and the tests
(isnan, isclose, ...).

As in PyTorch: a float op (sin, log2, erf, atan2, ...) given integers or bools computes in the
default float dtype; rounding, sign and square keep integers; the divisions and remainders
follow the type-promotion rule (``backend.result_dtype``), and an integer division by zero is
an error, as in PyTorch. The ops that give bool or integer results (isnan, bitwise_and, the
shifts) are plain functions: nothing about them is differentiable.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine import backend
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor, _as_data, untaped
from chainrule.ops.elementwise import _erf, _operand_data, _operands

_LN2 = math.log(2)
_LN10 = math.log(10)
_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)
_SQRT_PI_OVER_TWO = math.sqrt(math.pi) / 2


def _float(a: np.ndarray) -> np.ndarray:
    """``a`` for a float op: integers and bools become the default float dtype (PyTorch's)."""
    return a if a.dtype.kind == "f" else a.astype(backend.get_default_dtype())


def _input(a: Any, op: str) -> Any:
    """A tensor as it is; anything else as an array (Python floats take the default dtype)."""
    return a if isinstance(a, Tensor) else _as_data(a, where=f"{op}: input")


def _float_operands(a: Any, b: Any) -> list[Any]:
    """Both operands in their promoted dtype; the default float dtype if that is not floating."""
    a, b = _operands(a, b)
    kinds = {getattr(v, "dtype", np.dtype(type(v))).kind for v in (a, b)}
    if "f" not in kinds:
        dtype = backend.get_default_dtype()
        a, b = (v.astype(dtype) if hasattr(v, "astype") else float(v) for v in (a, b))
    return [a, b]


def _no_bool(a: np.ndarray, op: str) -> None:
    if a.dtype == np.bool_:
        raise TypeError(f"{op}: not defined for bool tensors (PyTorch refuses them too); "
                        "convert first, e.g. x.astype('int64')")


# ----------------------------------------------------------------------------- trigonometric
class SinOp(Function):
    """sin(a);  d/da = cos(a)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        return np.sin(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * np.cos(ctx.a)


class CosOp(Function):
    """cos(a);  d/da = -sin(a)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        return np.cos(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return -grad * np.sin(ctx.a)


class TanOp(Function):
    """tan(a);  d/da = 1 + tan(a)^2"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.out = np.tan(_float(a))
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * (1 + ctx.out * ctx.out)


class AsinOp(Function):
    """asin(a);  d/da = 1 / sqrt(1 - a^2)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        with np.errstate(invalid="ignore"):  # nan outside [-1, 1], as in PyTorch
            return np.arcsin(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad / np.sqrt(1 - ctx.a * ctx.a)


class AcosOp(Function):
    """acos(a);  d/da = -1 / sqrt(1 - a^2)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        with np.errstate(invalid="ignore"):
            return np.arccos(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return -grad / np.sqrt(1 - ctx.a * ctx.a)


class AtanOp(Function):
    """atan(a);  d/da = 1 / (1 + a^2)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        return np.arctan(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad / (1 + ctx.a * ctx.a)


class Atan2Op(Function):
    """atan2(a, b), the angle of the point (b, a);  d/da = b / (a^2 + b^2),
    d/db = -a / (a^2 + b^2) (both 0 at the origin, as in PyTorch)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a, ctx.b = a, b
        return np.arctan2(a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        a, b = ctx.a, ctx.b
        square = a * a + b * b
        scale = np.divide(grad, square, out=np.zeros(np.broadcast_shapes(
            np.shape(grad), np.shape(square)), grad.dtype), where=square != 0)
        need_a, need_b = ctx.needs_input_grad
        return (scale * b if need_a else None), (-scale * a if need_b else None)


# ----------------------------------------------------------------------------- hyperbolic
class SinhOp(Function):
    """sinh(a);  d/da = cosh(a)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        return np.sinh(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * np.cosh(ctx.a)


class CoshOp(Function):
    """cosh(a);  d/da = sinh(a)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        return np.cosh(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * np.sinh(ctx.a)


class AsinhOp(Function):
    """asinh(a);  d/da = 1 / sqrt(a^2 + 1)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        return np.arcsinh(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad / np.sqrt(ctx.a * ctx.a + 1)


class AcoshOp(Function):
    """acosh(a) for a >= 1;  d/da = 1 / sqrt(a^2 - 1)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        with np.errstate(invalid="ignore"):
            return np.arccosh(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return grad / np.sqrt(ctx.a * ctx.a - 1)


class AtanhOp(Function):
    """atanh(a) for |a| <= 1;  d/da = 1 / (1 - a^2)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.arctanh(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return grad / (1 - ctx.a * ctx.a)


# ----------------------------------------------------------------------------- logs and exps
class Log2Op(Function):
    """log2(a);  d/da = 1 / (a ln 2)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log2(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return grad / (ctx.a * _LN2)


class Log10Op(Function):
    """log10(a);  d/da = 1 / (a ln 10)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log10(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return grad / (ctx.a * _LN10)


class Log1pOp(Function):
    """log(1 + a), exact for small a;  d/da = 1 / (1 + a)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.log1p(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return grad / (1 + ctx.a)


class Exp2Op(Function):
    """2^a;  d/da = 2^a ln 2"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.out = np.exp2(_float(a))
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * ctx.out * _LN2


class Expm1Op(Function):
    """e^a - 1, exact for small a;  d/da = e^a = out + 1"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.out = np.expm1(_float(a))
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * (ctx.out + 1)


# ----------------------------------------------------------------------------- erf, erfinv
_ERFC = np.frompyfunc(math.erfc, 1, 1)


def _erfinv(y: np.ndarray) -> np.ndarray:
    """The inverse error function to float64 rounding: Winitzki's closed form as the first
    guess (relative error under 2e-3), then three Halley steps (each cubes the error).

    Near |y| = 1 the steps solve erfc(x) = 1 - |y| instead, since 1 - |y| is exact there
    while erf(x) - |y| would lose the digits that matter.
    """
    y64 = y.astype(np.float64)
    size = np.abs(y64)
    inside = size < 1  # nan fails it as well
    t = np.where(inside, size, 0.0)
    log_term = np.log1p(-t * t)
    k = 0.147
    first = 2 / (math.pi * k) + log_term / 2
    x = np.sqrt(np.sqrt(first * first - log_term / k) - first)
    near_one = t > 0.5
    complement = 1 - t  # exact for t in [0.5, 1] (Sterbenz)
    for _ in range(3):
        slope = _TWO_OVER_SQRT_PI * np.exp(-x * x)
        low = np.asarray(_erf(x), dtype=np.float64) - t
        high = np.asarray(_ERFC(x), dtype=np.float64) - complement
        # Halley's step for f = erf(x) - t (f'' = -2x f') and for g = erfc(x) - (1 - t).
        x = np.where(near_one, x + high / (slope - x * high), x - low / (slope + x * low))
    x = np.where(inside, np.copysign(x, y64), np.where(size == 1, np.copysign(np.inf, y64),
                                                       np.nan))
    return x.astype(y.dtype)


class ErfOp(Function):
    """erf(a);  d/da = 2 / sqrt(pi) * exp(-a^2)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.a = a = _float(a)
        return _erf(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * (_TWO_OVER_SQRT_PI * np.exp(-ctx.a * ctx.a))


class ErfinvOp(Function):
    """erfinv(a), the x with erf(x) = a;  d/da = sqrt(pi) / 2 * exp(out^2)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        ctx.out = _erfinv(_float(a))
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return grad * (_SQRT_PI_OVER_TWO * np.exp(ctx.out * ctx.out))


# ----------------------------------------------------------------------------- powers
class ReciprocalOp(Function):
    """1 / a;  d/da = -1 / a^2 = -out^2"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            ctx.out = 1 / _float(a)
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return -grad * ctx.out * ctx.out


class RsqrtOp(Function):
    """1 / sqrt(a);  d/da = -1 / (2 a^(3/2)) = -out^3 / 2"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            ctx.out = 1 / np.sqrt(_float(a))
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        out = ctx.out
        return grad * (-0.5 * out * out * out)


class SquareOp(Function):
    """a^2 (integers stay integers; bools become int64, as in PyTorch);  d/da = 2a"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        if a.dtype == np.bool_:
            a = a.astype(np.int64)
        ctx.a = a
        return a * a

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad * (2 * ctx.a)


# ----------------------------------------------------------------------------- binary floats
class LerpOp(Function):
    """a + weight (end - a);  d/da = 1 - weight,  d/dend = weight,  d/dweight = end - a

    Written as PyTorch writes it, end - (end - a)(1 - weight) for weight >= 0.5, so that
    weight 1 gives end exactly.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, end: np.ndarray, weight: Any) -> np.ndarray:
        ctx.weight, ctx.diff = weight, end - a
        return np.where(np.asarray(weight) < 0.5, a + weight * ctx.diff,
                        end - ctx.diff * (1 - weight))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, need_end, need_weight = ctx.needs_input_grad
        weighted = grad * ctx.weight
        return ((grad - weighted if need_a else None), (weighted if need_end else None),
                (grad * ctx.diff if need_weight else None))


class LogAddExpOp(Function):
    """log(e^a + e^b), computed as max(a, b) + log1p(e^-|a - b|);
    d/da = e^(a - out),  d/db = e^(b - out)"""

    name = "logaddexp"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            # Equal arguments (infinities too, where a - b is nan) are a + log 2.
            out = np.where(a == b, a + _LN2,
                           np.maximum(a, b) + np.log1p(np.exp(-np.abs(a - b))))
        ctx.a, ctx.b, ctx.out = a, b, out
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, need_b = ctx.needs_input_grad
        with np.errstate(invalid="ignore"):
            return ((grad * np.exp(ctx.a - ctx.out) if need_a else None),
                    (grad * np.exp(ctx.b - ctx.out) if need_b else None))


class HypotOp(Function):
    """sqrt(a^2 + b^2) without overflow;  d/da = a / out,  d/db = b / out
    (nan at the origin, as in PyTorch)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        ctx.a, ctx.b = a, b
        ctx.out = np.hypot(a, b)
        return ctx.out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, need_b = ctx.needs_input_grad
        with np.errstate(divide="ignore", invalid="ignore"):
            scale = grad / ctx.out
        return (scale * ctx.a if need_a else None), (scale * ctx.b if need_b else None)


class CopysignOp(Function):
    """|a| with the sign of b;  d/da = out / a (0 at a = 0),  d/db = 0, as in PyTorch"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        out = np.copysign(a, b)
        ctx.a, ctx.out = a, out
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        a = ctx.a
        ratio = np.divide(ctx.out, a, out=np.zeros(np.broadcast_shapes(
            np.shape(ctx.out), np.shape(a)), grad.dtype), where=a != 0)
        need_a, need_b = ctx.needs_input_grad
        return ((grad * ratio if need_a else None),
                (np.zeros_like(grad) if need_b else None))


# ----------------------------------------------------------------------------- rounding
class _ZeroSlopeOp(Function, register=False):
    """A piecewise-constant op: its slope is 0 wherever it has one, and PyTorch gives 0."""

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.zeros_like(grad)


class FloorOp(_ZeroSlopeOp):
    """floor(a) (integers unchanged);  d/da = 0"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        _no_bool(a, "floor")
        return np.floor(a) if a.dtype.kind == "f" else a.copy()


class CeilOp(_ZeroSlopeOp):
    """ceil(a) (integers unchanged);  d/da = 0"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        _no_bool(a, "ceil")
        return np.ceil(a) if a.dtype.kind == "f" else a.copy()


class TruncOp(_ZeroSlopeOp):
    """a rounded toward zero (integers unchanged);  d/da = 0"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        _no_bool(a, "trunc")
        return np.trunc(a) if a.dtype.kind == "f" else a.copy()


class RoundOp(_ZeroSlopeOp):
    """a rounded to ``decimals`` places, halves to even (as PyTorch and NumPy);  d/da = 0"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, decimals: int = 0) -> np.ndarray:
        decimals = validate.integer("round", "decimals", decimals)
        if a.dtype.kind != "f":
            _no_bool(a, "round")
            if decimals:
                raise TypeError(f"round: decimals={decimals} needs a floating tensor, got "
                                f"{a.dtype} (PyTorch refuses it too); convert with .float()")
            return a.copy()
        return np.round(a, decimals)


class SignOp(_ZeroSlopeOp):
    """-1, 0 or 1 by the sign of a (0 for nan, as in PyTorch; bools unchanged);  d/da = 0"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        if a.dtype == np.bool_:
            return a.copy()
        out = np.sign(a)
        if a.dtype.kind == "f":
            out = np.where(np.isnan(a), a.dtype.type(0), out)
        return out


class FracOp(Function):
    """a - trunc(a), the fractional part with a's sign;  d/da = 1"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray) -> np.ndarray:
        if a.dtype.kind != "f":
            raise TypeError(f"frac: needs a floating tensor, got {a.dtype} (PyTorch refuses "
                            "integers too; their fractional part is 0)")
        return a - np.trunc(a)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad


# ----------------------------------------------------------------------------- divisions
def _check_integer_divisor(a: np.ndarray, b: Any, op: str) -> None:
    """Integer division by zero is an error, as in PyTorch (NumPy would give 0 and warn)."""
    if a.dtype.kind in "iub" and not np.all(b):
        raise ZeroDivisionError(f"{op}: integer division by zero (the divisor holds a 0); "
                                "PyTorch raises too. Use a float dtype to get inf/nan")


def _trunc_divide(a: np.ndarray, b: Any) -> np.ndarray:
    """Integer a / b rounded toward zero, exactly (no detour through floats)."""
    quotient = np.floor_divide(a, b)
    rest = a - quotient * b
    return quotient + ((rest != 0) & ((a < 0) != (np.asarray(b) < 0))).astype(quotient.dtype)


class DivRoundOp(Function):
    """a / b rounded toward zero (``'trunc'``) or down (``'floor'``), in the promoted dtype;
    d/da = d/db = 0 (the quotient is piecewise constant; PyTorch gives 0 too)"""

    name = "div_round"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: Any, rounding_mode: str = "floor"
                ) -> np.ndarray:
        rounding_mode = validate.choice("div", "rounding_mode", rounding_mode,
                                        ("trunc", "floor"))
        _check_integer_divisor(a, b, "div" if rounding_mode == "trunc" else "floor_divide")
        if a.dtype.kind == "f":
            with np.errstate(divide="ignore", invalid="ignore"):
                if rounding_mode == "floor":
                    return np.floor_divide(a, b)  # PyTorch's algorithm: floor of fmod-based
                return np.trunc(a / b)
        if rounding_mode == "floor":
            return np.floor_divide(a, b)
        return _trunc_divide(a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        zero = np.zeros_like(grad)
        need_a, need_b = ctx.needs_input_grad
        return (zero if need_a else None), (zero if need_b else None)


class RemainderOp(Function):
    """a - b floor(a / b), with the sign of the divisor (Python's %);
    d/da = 1,  d/db = -floor(a / b)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: Any) -> np.ndarray:
        _check_integer_divisor(a, b, "remainder")
        ctx.a, ctx.b = a, b
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.remainder(a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, need_b = ctx.needs_input_grad
        grad_b = None
        if need_b:
            with np.errstate(divide="ignore", invalid="ignore"):
                grad_b = -grad * np.floor_divide(ctx.a, ctx.b)
        return (grad if need_a else None), grad_b


class FmodOp(Function):
    """a - b trunc(a / b), with the sign of the dividend (C's fmod);
    d/da = 1,  d/db = -trunc(a / b)"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: Any) -> np.ndarray:
        _check_integer_divisor(a, b, "fmod")
        ctx.a, ctx.b = a, b
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.fmod(a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, need_b = ctx.needs_input_grad
        grad_b = None
        if need_b:
            with np.errstate(divide="ignore", invalid="ignore"):
                grad_b = -grad * np.trunc(ctx.a / ctx.b)
        return (grad if need_a else None), grad_b


# ----------------------------------------------------------------------------- functions
def sin(input: Any) -> Tensor:
    """Sine (radians)."""
    return SinOp.apply(_input(input, "sin"))


def cos(input: Any) -> Tensor:
    """Cosine (radians)."""
    return CosOp.apply(_input(input, "cos"))


def tan(input: Any) -> Tensor:
    """Tangent (radians)."""
    return TanOp.apply(_input(input, "tan"))


def asin(input: Any) -> Tensor:
    """Inverse sine; nan outside [-1, 1]."""
    return AsinOp.apply(_input(input, "asin"))


def acos(input: Any) -> Tensor:
    """Inverse cosine; nan outside [-1, 1]."""
    return AcosOp.apply(_input(input, "acos"))


def atan(input: Any) -> Tensor:
    """Inverse tangent."""
    return AtanOp.apply(_input(input, "atan"))


def atan2(input: Any, other: Any) -> Tensor:
    """The angle of the point (other, a): atan(a / other) in the right quadrant."""
    return Atan2Op.apply(*_float_operands(input, other))


def sinh(input: Any) -> Tensor:
    """Hyperbolic sine."""
    return SinhOp.apply(_input(input, "sinh"))


def cosh(input: Any) -> Tensor:
    """Hyperbolic cosine."""
    return CoshOp.apply(_input(input, "cosh"))


def asinh(input: Any) -> Tensor:
    """Inverse hyperbolic sine."""
    return AsinhOp.apply(_input(input, "asinh"))


def acosh(input: Any) -> Tensor:
    """Inverse hyperbolic cosine; nan below 1."""
    return AcoshOp.apply(_input(input, "acosh"))


def atanh(input: Any) -> Tensor:
    """Inverse hyperbolic tangent; +-inf at +-1, nan beyond."""
    return AtanhOp.apply(_input(input, "atanh"))


def log2(input: Any) -> Tensor:
    """Base-2 logarithm."""
    return Log2Op.apply(_input(input, "log2"))


def log10(input: Any) -> Tensor:
    """Base-10 logarithm."""
    return Log10Op.apply(_input(input, "log10"))


def log1p(input: Any) -> Tensor:
    """log(1 + a), accurate for small a."""
    return Log1pOp.apply(_input(input, "log1p"))


def exp2(input: Any) -> Tensor:
    """2 ** a."""
    return Exp2Op.apply(_input(input, "exp2"))


def expm1(input: Any) -> Tensor:
    """e ** a - 1, accurate for small a."""
    return Expm1Op.apply(_input(input, "expm1"))


def erf(input: Any) -> Tensor:
    """The error function, to float64 accuracy."""
    return ErfOp.apply(_input(input, "erf"))


def erfinv(input: Any) -> Tensor:
    """The inverse error function on [-1, 1] (+-inf at +-1, nan beyond), to float64 rounding."""
    return ErfinvOp.apply(_input(input, "erfinv"))


def reciprocal(input: Any) -> Tensor:
    """1 / a (integers give the default float dtype)."""
    return ReciprocalOp.apply(_input(input, "reciprocal"))


def rsqrt(input: Any) -> Tensor:
    """1 / sqrt(a)."""
    return RsqrtOp.apply(_input(input, "rsqrt"))


def square(input: Any) -> Tensor:
    """a * a (integers stay integers)."""
    return SquareOp.apply(_input(input, "square"))


def lerp(input: Any, end: Any, weight: Any) -> Tensor:
    """a + weight * (end - a); ``weight`` a number or a tensor (broadcasting)."""
    if isinstance(weight, (Tensor, np.ndarray)):
        values = _operands(input, end, weight)
    else:
        values = _operands(input, end) + [validate.real("lerp", "weight", weight, finite=False)]
    for value, role in zip(values, ("input", "end", "weight")):
        kind = getattr(value, "dtype", np.dtype(type(value))).kind
        if kind != "f":
            raise TypeError(f"lerp: {role} must be floating, got {value!r:.40} (PyTorch "
                            "refuses integers too); convert with .float()")
    return LerpOp.apply(*values)


def logaddexp(input: Any, other: Any) -> Tensor:
    """log(exp(a) + exp(other)) without overflow."""
    return LogAddExpOp.apply(*_float_operands(input, other))


def hypot(input: Any, other: Any) -> Tensor:
    """sqrt(a ** 2 + other ** 2) without overflow."""
    return HypotOp.apply(*_float_operands(input, other))


def copysign(input: Any, other: Any) -> Tensor:
    """|a| with the sign of ``other`` (integers give the default float dtype)."""
    return CopysignOp.apply(*_float_operands(input, other))


def floor(input: Any) -> Tensor:
    """Round down (integers unchanged)."""
    return FloorOp.apply(_input(input, "floor"))


def ceil(input: Any) -> Tensor:
    """Round up (integers unchanged)."""
    return CeilOp.apply(_input(input, "ceil"))


def trunc(input: Any) -> Tensor:
    """Round toward zero (integers unchanged)."""
    return TruncOp.apply(_input(input, "trunc"))


def round(input: Any, decimals: int = 0) -> Tensor:  # noqa: A001 - the op's name
    """Round to ``decimals`` places, halves to even (PyTorch's and NumPy's rule)."""
    return RoundOp.apply(_input(input, "round"), decimals=decimals)


def frac(input: Any) -> Tensor:
    """a - trunc(a): the fractional part, with a's sign."""
    return FracOp.apply(_input(input, "frac"))


def sign(input: Any) -> Tensor:
    """-1, 0 or 1 by the sign of a (0 for nan, as in PyTorch)."""
    return SignOp.apply(_input(input, "sign"))


def _divisions(a: Any, b: Any, op: str) -> list[Any]:
    """The operands of an integer-capable division, promoted; bools refused as PyTorch does."""
    a, b = _operands(a, b)
    if not isinstance(a, (Tensor, np.ndarray)):
        # A Python number first: an array of the dtype the rule gave the other operand.
        a = np.asarray(a, b.dtype)
    for value in (a, b):
        if getattr(value, "dtype", None) == np.bool_:
            raise TypeError(f"{op}: not defined for bool tensors (PyTorch refuses them too); "
                            "convert first, e.g. x.astype('int64')")
    return [a, b]


def _rounded_div(a: Any, b: Any, rounding_mode: str) -> Tensor:
    """div with a rounding_mode: ops.div hands off here."""
    rounding_mode = validate.choice("div", "rounding_mode", rounding_mode, ("trunc", "floor"))
    return DivRoundOp.apply(*_divisions(a, b, "div"), rounding_mode=rounding_mode)


def floor_divide(input: Any, other: Any) -> Tensor:
    """a / b rounded down (Python's //), in the promoted dtype."""
    return DivRoundOp.apply(*_divisions(input, other, "floor_divide"), rounding_mode="floor")


def remainder(input: Any, other: Any) -> Tensor:
    """a - b * floor(a / b): the sign of the divisor, as Python's %."""
    return RemainderOp.apply(*_divisions(input, other, "remainder"))


def fmod(input: Any, other: Any) -> Tensor:
    """a - b * trunc(a / b): the sign of the dividend, as C's fmod."""
    return FmodOp.apply(*_divisions(input, other, "fmod"))


# ----------------------------------------------------------------------------- no gradient
def _data(a: Any, op: str) -> np.ndarray:
    return a._data if isinstance(a, Tensor) else _as_data(a, where=f"{op}: input")


def isnan(input: Any) -> Tensor:
    """True where a is nan (a bool tensor)."""
    return Tensor(np.isnan(_data(input, "isnan")))


def isinf(input: Any) -> Tensor:
    """True where a is +inf or -inf (a bool tensor)."""
    return Tensor(np.isinf(_data(input, "isinf")))


def isfinite(input: Any) -> Tensor:
    """True where a is neither inf nor nan (a bool tensor)."""
    return Tensor(np.isfinite(_data(input, "isfinite")))


def isclose(input: Any, other: Any, rtol: float = 1e-05, atol: float = 1e-08,
            equal_nan: bool = False) -> Tensor:
    """|a - other| <= atol + rtol * |other| elementwise (equal infinities count as close)."""
    rtol = validate.real("isclose", "rtol", rtol, low=0)
    atol = validate.real("isclose", "atol", atol, low=0)
    equal_nan = validate.boolean("isclose", "equal_nan", equal_nan)
    x, y = _operand_data(input, other, "isclose")
    if np.asarray(x).dtype.kind != "f":
        # Integers and bools: compared exactly, then with the tolerance in float64.
        x64, y64 = np.asarray(x, np.float64), np.asarray(y, np.float64)
        close = (np.asarray(x) == np.asarray(y)) | (
            np.abs(x64 - y64) <= atol + rtol * np.abs(y64))
        return Tensor(close)
    with np.errstate(invalid="ignore"):
        close = np.isclose(x, y, rtol=rtol, atol=atol, equal_nan=equal_nan)
    return Tensor(np.asarray(close))


def _integer_operands(a: Any, b: Any, op: str, bool_ok: bool = True) -> tuple[Any, Any]:
    """Both operands as arrays of their promoted dtype, which must be an integer (or bool)."""
    x, y = _operand_data(a, b, op)
    dtype = backend.result_dtype(x, y)
    if dtype.kind == "f" or (dtype == np.bool_ and not bool_ok):
        raise TypeError(f"{op}: needs integer{' or bool' if bool_ok else ''} tensors, got "
                        f"{dtype} (PyTorch refuses it too)")
    # A Python number out of the dtype's range is an OverflowError here, not a wrapped value.
    return np.asarray(x, dtype), np.asarray(y, dtype)


def bitwise_and(input: Any, other: Any) -> Tensor:
    """a & other on integer or bool tensors."""
    return untaped("bitwise_and", {"a": input, "b": other},
                   Tensor(np.bitwise_and(*_integer_operands(input, other, "bitwise_and"))))


def bitwise_or(input: Any, other: Any) -> Tensor:
    """a | other on integer or bool tensors."""
    return untaped("bitwise_or", {"a": input, "b": other},
                   Tensor(np.bitwise_or(*_integer_operands(input, other, "bitwise_or"))))


def bitwise_xor(input: Any, other: Any) -> Tensor:
    """a ^ other on integer or bool tensors."""
    return untaped("bitwise_xor", {"a": input, "b": other},
                   Tensor(np.bitwise_xor(*_integer_operands(input, other, "bitwise_xor"))))


def bitwise_not(input: Any) -> Tensor:
    """~a on integer or bool tensors (logical not for bools)."""
    data = _data(input, "bitwise_not")
    if data.dtype.kind == "f":
        raise TypeError(f"bitwise_not: needs an integer or bool tensor, got {data.dtype} "
                        "(PyTorch refuses it too)")
    return untaped("bitwise_not", {"a": input}, Tensor(np.invert(data)))


def _shift_counts(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, Any, int]:
    """The operands as arrays, the counts clipped into range, the out-of-range mask, bits."""
    x = np.asarray(x)
    bits = x.dtype.itemsize * 8
    counts = np.asarray(y)
    outside = (counts < 0) | (counts >= bits)
    return x, np.clip(counts, 0, bits - 1).astype(x.dtype), outside, bits


def bitwise_left_shift(input: Any, other: Any) -> Tensor:
    """a << other on integer tensors; a count below 0 or past the width gives 0 (PyTorch's)."""
    x, y = _integer_operands(input, other, "bitwise_left_shift", bool_ok=False)
    x, counts, outside, _ = _shift_counts(x, y)
    with np.errstate(over="ignore"):
        out = np.left_shift(x, counts)
    return Tensor(np.where(outside, np.zeros((), x.dtype), out))


def bitwise_right_shift(input: Any, other: Any) -> Tensor:
    """a >> other on integer tensors, the sign filling in; a count below 0 or past the width
    shifts everything out (0, or -1 for a negative a: PyTorch's)."""
    x, y = _integer_operands(input, other, "bitwise_right_shift", bool_ok=False)
    x, counts, outside, bits = _shift_counts(x, y)
    out = np.right_shift(x, counts)
    return Tensor(np.where(outside, np.right_shift(x, x.dtype.type(bits - 1)), out))


# PyTorch's other names for the same ops.
arcsin, arccos, arctan, arctan2 = asin, acos, atan, atan2
arcsinh, arccosh, arctanh = asinh, acosh, atanh
fix = trunc
