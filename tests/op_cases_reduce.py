"""Matrix cases for issue 13's scans, sorting, reductions, linear algebra (area A)."""

from __future__ import annotations

from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import torch
from op_cases import SHAPE, SHAPE_1D_UP, Case, Draw, distinct, nonzero, normal

TORCH_DTYPES = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def _axis(draw: Draw, ndim: int) -> int:
    """Any axis of a tensor with ``ndim`` dims, negative too (0 and -1 for a 0-d one)."""
    n = max(ndim, 1)
    return draw(st.integers(-n, n - 1))


def scan(make: Any = normal) -> Any:
    def build(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
        shape = draw(SHAPE)
        return [make(rng, shape)], {"axis": _axis(draw, len(shape))}
    return build


def with_zeros(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values of either sign in [0.5, 1.5], about one in four of them exactly 0."""
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    return np.where(rng.random(shape) < 0.25, 0.0, x)


def build_prod(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    axis = None if draw(st.booleans()) else _axis(draw, len(shape))
    make = draw(st.sampled_from([with_zeros, lambda r, s: np.abs(with_zeros(r, s)) + 0.5]))
    attrs: dict[str, Any] = {"axis": axis, "keepdims": draw(st.booleans())}
    if draw(st.booleans()):
        attrs["dtype"] = np.dtype(np.float64)
    return [make(rng, shape)], attrs


def torch_prod(a: torch.Tensor, axis: int | None, keepdims: bool, dtype: Any = None
               ) -> torch.Tensor:
    dtype = None if dtype is None else TORCH_DTYPES[dtype]
    if axis is None:
        out = torch.prod(a, dtype=dtype)
        return out.reshape((1,) * a.ndim) if keepdims else out
    return torch.prod(a, axis, keepdim=keepdims, dtype=dtype)


def build_in_dtype(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE_1D_UP)
    axis = None if draw(st.booleans()) else _axis(draw, len(shape))
    # Multiples of 1/64: their float32 sums are exact in any order, as torch's and NumPy's
    # orders differ.
    return [np.round(normal(rng, shape) * 64) / 64], {
        "axis": axis, "keepdims": draw(st.booleans()), "dtype": np.dtype(np.float32)}


def in_dtype(fn: Any) -> Any:
    def call(a: torch.Tensor, axis: Any, keepdims: bool, dtype: Any) -> torch.Tensor:
        dims = tuple(range(a.ndim)) if axis is None else axis
        return fn(a, dim=dims, keepdim=keepdims, dtype=TORCH_DTYPES[dtype])
    return call


def build_median(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    if draw(st.booleans()):
        return [distinct(rng, shape)], {}
    return [distinct(rng, shape)], {"axis": _axis(draw, len(shape)),
                                    "keepdims": draw(st.booleans())}


def torch_median(a: torch.Tensor, axis: int | None = None, keepdims: bool = False
                 ) -> torch.Tensor:
    if axis is None:
        return torch.median(a)
    return torch.median(a, axis, keepdim=keepdims).values


def build_mode(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    # Distinct values: with repeats, a finite-difference step would change which value is
    # most frequent. test_ops_reduce.py checks repeats and ties against torch.
    shape = draw(SHAPE)
    return [distinct(rng, shape)], {"axis": _axis(draw, len(shape)),
                                    "keepdims": draw(st.booleans())}


def build_sort(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    return [distinct(rng, shape)], {"axis": _axis(draw, len(shape)),
                                    "descending": draw(st.booleans())}


def build_topk(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    axis = _axis(draw, len(shape))
    size = shape[axis] if shape else 1
    return [distinct(rng, shape)], {"k": draw(st.integers(0 if shape else 1, size)),
                                    "axis": axis, "largest": draw(st.booleans()),
                                    "sorted": True}


# Equations: products, diagonals ('ii'), traces, labels summed away, implicit outputs, more
# than two operands, and '...' with broadcasting.
EQUATIONS = [
    "ij,jk->ik", "ij,jk", "ii->i", "ii->", "ii", "ij->", "ij->j", "i,j->ij", "bij,bjk->bik",
    "ij,ij->ij", "ij->ji", "ijk,jil->kl", "ij,jk,kl->il", "iij->j", "i,i->", "ba,cb", "Ab,bA",
    "i,i->i", "ii,i->i", "...ij,...jk->...ik", "...i->i", "i...->...i", "...,...->...",
    "bi,bj->bij", "i,->i",
]


def build_einsum(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    equation = draw(st.sampled_from(EQUATIONS))
    terms = equation.split("->")[0].split(",")
    sizes = {c: draw(st.integers(1, 3)) for c in sorted({c for c in equation if c.isalpha()})}
    batches = iter(draw(hnp.mutually_broadcastable_shapes(
        num_shapes=max(sum("..." in t for t in terms), 1), max_dims=2, max_side=3)).input_shapes)
    stretch = draw(st.booleans())  # some labels of size 1 in one operand, broadcast
    arrays = []
    for term in terms:
        shape: list[int] = []
        for char in term.replace("...", "."):
            if char == ".":
                shape.extend(next(batches))
            else:
                single = stretch and term.count(char) == 1 and draw(st.booleans())
                shape.append(1 if single else sizes[char])
        arrays.append(normal(rng, tuple(shape)))
    return arrays, {"equation": equation}


CASES: list[Case] = [
    Case("cumsum", "any axis, 0-d", scan(), lambda a, axis: torch.cumsum(a, axis)),
    Case("cumprod", "zeros in the input", scan(with_zeros),
         lambda a, axis: torch.cumprod(a, axis)),
    Case("cumprod", "no zeros", scan(nonzero), lambda a, axis: torch.cumprod(a, axis)),
    Case("cummax", "no ties", scan(distinct), lambda a, axis: torch.cummax(a, axis).values),
    Case("cummin", "no ties", scan(distinct), lambda a, axis: torch.cummin(a, axis).values),
    Case("logcumsumexp", "any axis", scan(lambda r, s: normal(r, s) * 3),
         lambda a, axis: torch.logcumsumexp(a, axis)),
    # Outputs near 150: a 1e-6 step's difference quotient carries ~1e-7 of rounding, as much
    # as the smallest slopes here (e^-15); a 1e-4 step is still exact for this smooth op.
    Case("logcumsumexp", "large values", scan(lambda r, s: normal(r, s) * 30 + 100),
         lambda a, axis: torch.logcumsumexp(a, axis), fd_eps=1e-4),
    Case("prod", "one axis or all, zeros, dtype", build_prod, torch_prod),
    # float32 output: its rounding swamps small steps; both are linear, so any step is exact.
    Case("sum", "dtype=float32", build_in_dtype, in_dtype(torch.sum), fd_eps=2.0,
         fd_rtol=1e-3),
    Case("mean", "dtype=float32", build_in_dtype, in_dtype(torch.mean), fd_eps=2.0,
         fd_rtol=1e-3),
    Case("median", "all or along an axis, no ties", build_median, torch_median),
    Case("mode", "along an axis, distinct values", build_mode,
         lambda a, axis, keepdims: torch.mode(a, axis, keepdims).values),
    Case("sort", "axis, descending, no ties", build_sort,
         lambda a, axis, descending: torch.sort(a, dim=axis, descending=descending).values),
    Case("topk", "k, axis, largest or smallest, no ties", build_topk,
         lambda a, k, axis, largest, sorted: torch.topk(a, k, axis, largest, sorted).values),
    Case("einsum", "products, diagonals, traces, '...', broadcasting", build_einsum,
         lambda *operands, equation: torch.einsum(equation, *operands)),
]
