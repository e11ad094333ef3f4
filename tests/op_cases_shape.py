"""Matrix cases for issue 13's shape and selection (area B); see op_cases.py.

Index inputs are int64 arrays (they pass through, with no gradient). Repeated indices are drawn
on purpose where PyTorch's gradient is defined for them (gather, scatter_add, index_add,
index_select, scatter_reduce: their gradients must add up); scatter draws distinct targets,
since which repeated write lands is left open by PyTorch.
"""

from __future__ import annotations

from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import torch
from op_cases import SHAPE, SHAPE_1D_UP, Case, Draw, distinct, normal

SMALL = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)


def _axis(draw: Draw, ndim: int) -> int:
    return draw(st.integers(-ndim, ndim - 1))


def build_repeat(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    extra = draw(st.integers(0, 2))
    sizes = tuple(draw(st.integers(0 if draw(st.booleans()) else 1, 3))
                  for _ in range(len(shape) + extra))
    return [normal(rng, shape)], {"sizes": sizes}


def build_roll(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE_1D_UP)
    n = len(shape)
    kind = draw(st.sampled_from(["flat", "int", "tuple"]))
    if kind == "flat":
        return [normal(rng, shape)], {"shifts": draw(st.integers(-7, 7)), "axes": None}
    if kind == "int":
        return [normal(rng, shape)], {"shifts": draw(st.integers(-7, 7)),
                                      "axes": _axis(draw, n)}
    axes = tuple(draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=3)))
    shifts = tuple(draw(st.integers(-5, 5)) for _ in axes)
    return [normal(rng, shape)], {"shifts": shifts, "axes": axes}


def torch_roll(a: torch.Tensor, shifts: Any, axes: Any) -> torch.Tensor:
    return torch.roll(a, shifts) if axes is None else torch.roll(a, shifts, axes)


def build_flip(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    n = len(shape)
    axes = draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True)) if n else []
    return [normal(rng, shape)], {"axes": tuple(a - n * draw(st.booleans()) for a in axes)}


def build_triangle(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4))
    return [normal(rng, shape)], {"diagonal": draw(st.integers(-4, 4))}


def build_diagonal(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=4, min_side=1, max_side=4))
    n = len(shape)
    first, second = draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
    return [normal(rng, shape)], {"offset": draw(st.integers(-3, 3)),
                                  "axis1": first - n * draw(st.booleans()),
                                  "axis2": second - n * draw(st.booleans())}


def build_diag_embed(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    n = len(shape) + 1
    first, second = draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2, unique=True))
    return [normal(rng, shape)], {"offset": draw(st.integers(-2, 2)),
                                  "axis1": first - n * draw(st.booleans()),
                                  "axis2": second - n * draw(st.booleans())}


def build_unfold(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=6))
    axis = _axis(draw, len(shape))
    size = draw(st.integers(1, shape[axis]))
    return [normal(rng, shape)], {"axis": axis, "size": size, "step": draw(st.integers(1, 3))}


def build_masked_fill(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape_a, shape_mask = draw(hnp.mutually_broadcastable_shapes(
        num_shapes=2, min_dims=0, max_dims=3, max_side=4)).input_shapes
    value = np.asarray(rng.standard_normal()) if draw(st.booleans()) else 2.5
    return [normal(rng, shape_a), rng.random(shape_mask) < 0.5, value], {}


def _index_for(draw: Draw, rng: np.random.Generator, shape: tuple[int, ...], axis: int,
               distinct_targets: bool = False) -> np.ndarray:
    """An index for gather/scatter: no larger than ``shape`` off ``axis``; repeats along it
    unless ``distinct_targets``."""
    own = [draw(st.integers(1, n)) for n in shape]
    n = shape[axis]
    if distinct_targets:
        own[axis] = draw(st.integers(1, n))
        ranks = np.argsort(rng.random(tuple(own[:axis]) + (n,) + tuple(own[axis + 1:])),
                           axis=axis)
        return np.take(ranks, np.arange(own[axis]), axis=axis).astype(np.int64)
    own[axis] = draw(st.integers(1, 5))
    return rng.integers(0, n, size=tuple(own))


def build_gather(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SMALL)
    axis = _axis(draw, len(shape))
    return [normal(rng, shape), _index_for(draw, rng, shape, axis % len(shape))], {"axis": axis}


def build_scatter(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SMALL)
    axis = _axis(draw, len(shape))
    index = _index_for(draw, rng, shape, axis % len(shape), distinct_targets=True)
    src = normal(rng, index.shape) if draw(st.booleans()) else 1.5
    return [normal(rng, shape), index, src], {"axis": axis}


def build_scatter_add(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SMALL)
    axis = _axis(draw, len(shape))
    index = _index_for(draw, rng, shape, axis % len(shape))
    return [normal(rng, shape), index, normal(rng, index.shape)], {"axis": axis}


def build_scatter_reduce(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SMALL)
    axis = _axis(draw, len(shape))
    index = _index_for(draw, rng, shape, axis % len(shape))
    reduce = draw(st.sampled_from(["sum", "prod", "mean", "amax", "amin"]))
    # One pool of well-separated values: no ties for amax/amin, no zeros for prod.
    size_a = int(np.prod(shape))
    pool = distinct(rng, (size_a + index.size,))
    if reduce == "prod":
        pool = rng.uniform(0.5, 1.5, pool.shape) * rng.choice([-1.0, 1.0], pool.shape)
    a, src = pool[:size_a].reshape(shape), pool[size_a:].reshape(index.shape)
    return [a, index, src], {"axis": axis, "reduce": reduce,
                             "include_self": draw(st.booleans())}


def build_index_add(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SMALL)
    axis = _axis(draw, len(shape))
    index = rng.integers(0, shape[axis], size=draw(st.integers(1, 5)))
    source_shape = list(shape)
    source_shape[axis] = index.size
    return [normal(rng, shape), index, normal(rng, tuple(source_shape))], {
        "axis": axis, "alpha": draw(st.sampled_from([1, -0.5, 2.0]))}


def build_index_select(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SMALL)
    axis = _axis(draw, len(shape))
    index = rng.integers(0, shape[axis], size=draw(st.integers(1, 6)))
    return [normal(rng, shape), index], {"axis": axis}


CASES: list[Case] = [
    Case("repeat", "counts, new leading dims, zeros", build_repeat,
         lambda a, sizes: a.repeat(sizes)),
    Case("roll", "flat, one axis, several (repeated) axes", build_roll, torch_roll),
    Case("flip", "axes, none, 0-d", build_flip, lambda a, axes: torch.flip(a, axes)),
    Case("tril", "diagonals, batched", build_triangle,
         lambda a, diagonal: torch.tril(a, diagonal)),
    Case("triu", "diagonals, batched", build_triangle,
         lambda a, diagonal: torch.triu(a, diagonal)),
    Case("diagonal", "offsets, any two axes", build_diagonal,
         lambda a, offset, axis1, axis2: torch.diagonal(a, offset, axis1, axis2)),
    Case("diag_embed", "offsets, any two axes", build_diag_embed,
         lambda a, offset, axis1, axis2: torch.diag_embed(a, offset, axis1, axis2)),
    Case("unfold", "size, step, overlapping windows", build_unfold,
         lambda a, axis, size, step: a.unfold(axis, size, step)),
    Case("masked_fill", "broadcast mask, number or 0-d tensor value", build_masked_fill,
         lambda a, mask, value: a.masked_fill(mask, value)),
    Case("gather", "repeated indices, smaller index", build_gather,
         lambda a, index, axis: torch.gather(a, axis, index)),
    Case("scatter", "src tensor or number, distinct targets", build_scatter,
         lambda a, index, src, axis: torch.scatter(a, axis, index, src)),
    Case("scatter_add", "repeated indices", build_scatter_add,
         lambda a, index, src, axis: torch.scatter_add(a, axis, index, src)),
    Case("scatter_reduce", "sum prod mean amax amin, include_self", build_scatter_reduce,
         lambda a, index, src, axis, reduce, include_self: torch.scatter_reduce(
             a, axis, index, src, reduce, include_self=include_self)),
    Case("index_add", "repeated indices, alpha", build_index_add,
         lambda a, index, source, axis, alpha: torch.index_add(a, axis, index, source,
                                                               alpha=alpha)),
    Case("index_select", "repeated indices", build_index_select,
         lambda a, index, axis: torch.index_select(a, axis, index)),
]
