"""Matrix cases for issue 13's elementwise maths and activations (area C); see op_cases.py.

Values keep away from the points where an op jumps or bends (integers for the rounding ops,
the bounds of hardtanh, +-3 for the hard activations, 0 for the ELU family, the points where
a / b is an integer for the divisions), so finite differences never straddle one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import torch
import torch.nn.functional as F
from op_cases import SHAPE, SHAPE_1D_UP, Case, Draw, binary, nonzero, normal, positive, unary


def uniform(low: float, high: float) -> Callable:
    def make(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.uniform(low, high, shape)
    return make


def scaled(factor: float) -> Callable:
    def make(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        return rng.standard_normal(shape) * factor
    return make


def off_points(x: np.ndarray, points: list[float], gap: float = 0.02) -> np.ndarray:
    """x with every value within ``gap`` of one of ``points`` pushed off it."""
    x = np.array(x, dtype=np.float64)
    for point in points:
        near = np.abs(x - point) < gap
        x[near] = point + 2 * gap
    return x


def off_integers(rng: np.random.Generator, shape: tuple[int, ...], scale: float = 1.0
                 ) -> np.ndarray:
    """Values k + f (k an integer, f in [0.1, 0.9]) times ``scale``: no integer near."""
    whole = rng.integers(-3, 4, shape)
    return (whole + rng.uniform(0.1, 0.9, shape)) * scale


def build_round(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    decimals = draw(st.sampled_from([0, 0, 1, 2, -1]))
    step = 10.0 ** -decimals
    shape = draw(SHAPE)
    # Off the half-way points (where rounding jumps) of the grid of step 10^-decimals.
    x = (rng.integers(-5, 6, shape) + rng.uniform(0.05, 0.45, shape)
         * rng.choice([-1.0, 1.0], shape) + 0.5) * step
    return [x], {"decimals": decimals}


def build_quotient(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    """a and b with a / b off the integers (where the divisions jump), b off zero."""
    shape_a, shape_b = draw(hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=3, max_side=3)).input_shapes
    full = np.broadcast_shapes(shape_a, shape_b)
    b = nonzero(rng, shape_b)
    a = off_integers(rng, full) * b
    return [a, b], {}


def build_div_round(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    inputs, _ = build_quotient(draw, rng)
    return inputs, {"rounding_mode": draw(st.sampled_from(["trunc", "floor"]))}


def build_lerp(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    if draw(st.booleans()):
        shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                        max_side=3)).input_shapes
        # Weights either side of 0.5, where the formula switches (the value does not jump).
        weight = rng.uniform(-0.5, 1.5, shapes[2])
        return [normal(rng, shapes[0]), normal(rng, shapes[1]), weight], {}
    shape_a, shape_b = draw(hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=3, max_side=3)).input_shapes
    weight = draw(st.sampled_from([0.0, 0.3, 0.5, 0.8, 1.0, 1.7, -0.4]))
    return [normal(rng, shape_a), normal(rng, shape_b), weight], {}


def build_softplus(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    beta = draw(st.sampled_from([1.0, 2.0, 0.5, -1.0]))
    threshold = draw(st.sampled_from([20.0, 1.0, 0.0]))
    x = scaled(3.0)(rng, draw(SHAPE))
    x = off_points(x * beta, [threshold]) / beta  # beta * x off the threshold
    return [x], {"beta": beta, "threshold": threshold}


def build_alpha(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    return [nonzero(rng, draw(SHAPE)) * 2], {"alpha": draw(st.sampled_from([1.0, 0.5, 2.0]))}


def build_hard(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    return [off_points(scaled(3.0)(rng, draw(SHAPE)), [-3.0, 3.0])], {}


def build_hardtanh(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    low, high = draw(st.sampled_from([(-1.0, 1.0), (-0.5, 2.0), (0.0, 6.0), (0.3, 0.3)]))
    x = off_points(scaled(3.0)(rng, draw(SHAPE)), [low, high])
    return [x], {"min_val": low, "max_val": high}


def build_glu(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = list(draw(SHAPE_1D_UP))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    shape[axis] = 2 * draw(st.integers(1, 3))
    return [scaled(2.0)(rng, tuple(shape))], {"axis": axis}


def build_prelu(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4))
    per_channel = len(shape) >= 2 and draw(st.booleans())
    count = shape[1] if per_channel else 1
    weight = rng.uniform(-0.5, 1.5, (count,) if per_channel or draw(st.booleans()) else ())
    return [nonzero(rng, shape), weight], {}


def _glu(a: torch.Tensor, axis: int) -> torch.Tensor:
    return F.glu(a, dim=axis)


def _div_round(a: torch.Tensor, b: torch.Tensor, rounding_mode: str) -> torch.Tensor:
    return torch.div(a, b, rounding_mode=rounding_mode)


def _round(a: torch.Tensor, decimals: int) -> torch.Tensor:
    return torch.round(a, decimals=decimals)


def _lerp(a: torch.Tensor, end: torch.Tensor, weight: Any) -> torch.Tensor:
    return torch.lerp(a, end, weight)


CASES: list[Case] = [
    Case("sin", "any", unary(scaled(3.0)), torch.sin),
    Case("cos", "any", unary(scaled(3.0)), torch.cos),
    Case("tan", "(-1.2, 1.2)", unary(uniform(-1.2, 1.2)), torch.tan),
    Case("asin", "(-0.9, 0.9)", unary(uniform(-0.9, 0.9)), torch.asin),
    Case("acos", "(-0.9, 0.9)", unary(uniform(-0.9, 0.9)), torch.acos),
    Case("atan", "any", unary(scaled(3.0)), torch.atan),
    Case("atan2", "broadcast, off the origin", binary(nonzero, nonzero), torch.atan2),
    Case("sinh", "any", unary(scaled(2.0)), torch.sinh),
    Case("cosh", "any", unary(scaled(2.0)), torch.cosh),
    Case("asinh", "any", unary(scaled(3.0)), torch.asinh),
    Case("acosh", "(1.1, 3)", unary(uniform(1.1, 3.0)), torch.acosh),
    Case("atanh", "(-0.9, 0.9)", unary(uniform(-0.9, 0.9)), torch.atanh),
    Case("log2", "positive", unary(positive), torch.log2),
    Case("log10", "positive", unary(positive), torch.log10),
    Case("log1p", "(-0.5, 2)", unary(uniform(-0.5, 2.0)), torch.log1p),
    Case("exp2", "any", unary(scaled(2.0)), torch.exp2),
    Case("expm1", "any, small too", unary(scaled(1e-3)), torch.expm1),
    Case("erf", "any", unary(scaled(1.5)), torch.erf),
    Case("erfinv", "(-0.95, 0.95)", unary(uniform(-0.95, 0.95)), torch.erfinv),
    Case("reciprocal", "off zero", unary(nonzero), torch.reciprocal),
    Case("rsqrt", "positive", unary(positive), torch.rsqrt),
    Case("square", "any", unary(), torch.square),
    Case("lerp", "tensor or number weight, broadcast", build_lerp, _lerp),
    Case("logaddexp", "broadcast", binary(scaled(3.0), scaled(3.0)), torch.logaddexp),
    Case("hypot", "broadcast, off the origin", binary(nonzero, nonzero), torch.hypot),
    Case("copysign", "off zero", binary(nonzero, nonzero), torch.copysign),
    Case("floor", "off the integers", unary(off_integers), torch.floor),
    Case("ceil", "off the integers", unary(off_integers), torch.ceil),
    Case("trunc", "off the integers", unary(off_integers), torch.trunc),
    Case("round", "decimals, off the half-way points", build_round, _round),
    Case("frac", "off the integers", unary(off_integers), torch.frac),
    Case("sign", "off zero", unary(nonzero), torch.sign),
    Case("div_round", "trunc or floor, off the jumps", build_div_round, _div_round),
    Case("remainder", "broadcast, off the jumps", build_quotient, torch.remainder),
    Case("fmod", "broadcast, off the jumps", build_quotient, torch.fmod),
    # activations
    Case("softplus", "beta, threshold", build_softplus,
         lambda a, beta, threshold: F.softplus(a, beta, threshold)),
    Case("elu", "alpha, off zero", build_alpha, lambda a, alpha: F.elu(a, alpha)),
    Case("celu", "alpha, off zero", build_alpha, lambda a, alpha: F.celu(a, alpha)),
    Case("selu", "off zero", unary(lambda r, s: nonzero(r, s) * 2), F.selu),
    Case("mish", "any", unary(scaled(3.0)), F.mish),
    Case("hardswish", "off +-3", build_hard, F.hardswish),
    Case("hardsigmoid", "off +-3", build_hard, F.hardsigmoid),
    Case("logsigmoid", "any", unary(scaled(4.0)), F.logsigmoid),
    Case("softsign", "any", unary(scaled(3.0)), F.softsign),
    Case("hardtanh", "bounds, off them", build_hardtanh,
         lambda a, min_val, max_val: F.hardtanh(a, min_val, max_val)),
    Case("glu", "axis", build_glu, _glu),
    Case("prelu", "one weight or one per channel", build_prelu, F.prelu),
]
