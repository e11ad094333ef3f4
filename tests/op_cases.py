"""One row of cases per registered op: how to draw its inputs, and its PyTorch twin.

A case's ``build(draw, rng)`` draws shapes, axes and options with hypothesis (``draw``) and
values with NumPy (``rng``, seeded by hypothesis), returning (inputs, attrs). Floating inputs
get gradients checked; other inputs (masks, constants) pass through. ``torch_fn`` receives the
same inputs as torch tensors and the same attrs.

Values are kept away from the points where an op is not differentiable (relu and abs at 0,
clamp at its bounds, ties in max/min), so finite differences are never flaky there; the
behaviour exactly at those points is tested against PyTorch in test_tensor.py.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import numpy as np
import torch
import torch.nn.functional as F

Draw = Callable[[st.SearchStrategy], Any]


@dataclass
class Case:
    """How to exercise one registered op."""

    op: str
    label: str
    build: Callable[[Draw, np.random.Generator], tuple[list[Any], dict[str, Any]]]
    torch_fn: Callable[..., torch.Tensor]
    fd_eps: float = 1e-6
    fd_rtol: float = 1e-5

    def __repr__(self) -> str:
        return f"{self.op}[{self.label}]"


# ----------------------------------------------------------------------------- value makers
def normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape)


def positive(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.uniform(0.5, 2.0, shape)


def nonzero(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Normal-ish values at least 0.1 away from 0 (the kink of relu and abs)."""
    return rng.uniform(0.1, 2.0, shape) * rng.choice([-1.0, 1.0], shape)


def distinct(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Values at least 0.25 apart, so max/min have no ties within a finite-difference step."""
    n = math.prod(shape)
    grid = rng.permutation(n) * 0.35 - 0.17 * n + rng.uniform(-0.05, 0.05, n)
    return grid.reshape(shape)


SHAPE = hnp.array_shapes(min_dims=0, max_dims=4, min_side=1, max_side=4)
SHAPE_1D_UP = hnp.array_shapes(min_dims=1, max_dims=4, min_side=1, max_side=4)


def _axes(draw: Draw, ndim: int) -> int | tuple[int, ...] | None:
    """None, one axis (maybe negative) or a tuple of distinct axes."""
    choice = draw(st.sampled_from(["none", "int", "tuple"]))
    if choice == "none":
        return None
    if choice == "int":
        return draw(st.integers(-ndim, ndim - 1))
    return tuple(draw(st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim,
                               unique=True)))


def _dims(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...] | int:
    return tuple(range(ndim)) if axis is None else axis


# ----------------------------------------------------------------------------- builders
def unary(make: Callable = normal, shape: st.SearchStrategy = SHAPE) -> Callable:
    def build(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
        return [make(rng, draw(shape))], {}
    return build


def binary(make_a: Callable = normal, make_b: Callable = normal) -> Callable:
    def build(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
        shape_a, shape_b = draw(hnp.mutually_broadcastable_shapes(
            num_shapes=2, min_dims=0, max_dims=4, max_side=4)).input_shapes
        return [make_a(rng, shape_a), make_b(rng, shape_b)], {}
    return build


def reduction(make: Callable = normal, with_correction: bool = False) -> Callable:
    def build(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
        shape = draw(SHAPE_1D_UP)
        axis = _axes(draw, len(shape))
        attrs: dict[str, Any] = {"axis": axis, "keepdims": draw(st.booleans())}
        if with_correction:
            axes = range(len(shape)) if axis is None else np.atleast_1d(axis)
            count = math.prod(shape[a] for a in axes)
            attrs["correction"] = draw(st.sampled_from([0, 1])) if count > 1 else 0
        return [make(rng, shape)], attrs
    return build


def along_axis(make: Callable = normal) -> Callable:
    def build(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
        shape = draw(SHAPE_1D_UP)
        return [make(rng, shape) * 3], {"axis": draw(st.integers(-len(shape), len(shape) - 1))}
    return build


def build_clamp(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    low, high = draw(st.sampled_from([(-0.5, 0.5), (-0.3, None), (None, 0.4)]))
    x = normal(rng, draw(SHAPE))
    for bound in (low, high):
        if bound is not None:  # keep values off the bounds, where the slope jumps
            near = np.abs(x - bound) < 0.02
            x[near] += 0.05
    return [x], {"low": low, "high": high}


def build_pow(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    if draw(st.booleans()):
        base, exponent = binary(positive, normal)(draw, rng)[0]
        return [base, exponent], {}
    # A constant exponent: negative bases are fine, and no gradient flows to the exponent.
    return [nonzero(rng, draw(SHAPE)), float(draw(st.sampled_from([2, 3, -1])))], {}


def build_where(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                    max_side=4)).input_shapes
    return [rng.random(shapes[0]) < 0.5, normal(rng, shapes[1]), normal(rng, shapes[2])], {}


def build_reshape(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    size = math.prod(shape)
    target = draw(st.sampled_from([(size,), (-1,), tuple(reversed(shape)), (1, size, 1),
                                   (shape[0], -1) if shape else (1,)]))
    return [normal(rng, shape)], {"shape": target}


def build_transpose(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE_1D_UP)
    n = len(shape)
    return [normal(rng, shape)], {"axis0": draw(st.integers(-n, n - 1)),
                                  "axis1": draw(st.integers(-n, n - 1))}


def build_permute(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE_1D_UP)
    return [normal(rng, shape)], {"axes": tuple(draw(st.permutations(range(len(shape)))))}


def build_squeeze(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = list(draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3)))
    for _ in range(draw(st.integers(0, 2))):
        shape.insert(draw(st.integers(0, len(shape))), 1)
    n = len(shape)
    axis = draw(st.one_of(st.none(), st.integers(-n, n - 1)))
    return [normal(rng, tuple(shape))], {"axis": axis}


def build_unsqueeze(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    n = len(shape)
    return [normal(rng, shape)], {"axis": draw(st.integers(-n - 1, n))}


def build_expand(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3))
    base = tuple(1 if draw(st.booleans()) else n for n in shape)
    target = tuple(draw(st.integers(1, 3)) if n == 1 else n for n in base)
    lead = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    if target and draw(st.booleans()):
        target = target[:-1] + (-1,)  # -1 keeps that size
    return [normal(rng, base)], {"shape": lead + target}


def build_flatten(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE_1D_UP)
    n = len(shape)
    start = draw(st.integers(0, n - 1))
    end = draw(st.integers(start, n - 1))
    return [normal(rng, shape)], {"start_axis": start - n * draw(st.booleans()),
                                  "end_axis": end - n * draw(st.booleans())}


def build_getitem(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=5))
    x = normal(rng, shape)
    kinds = ["basic", "int_array", "mask"] + (["mixed"] if len(shape) > 1 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "basic":
        index = draw(hnp.basic_indices(shape, min_dims=0, allow_newaxis=True))
    elif kind == "int_array":  # repeats on purpose: their gradients must add up
        index = rng.integers(-shape[0], shape[0], size=draw(st.integers(1, 6)))
    elif kind == "mask":
        index = rng.random(shape) < 0.5
    else:
        step = draw(st.sampled_from([1, -1]))
        index = (rng.integers(0, shape[0], size=3), slice(None, None, step))
    return [x], {"index": index}


def torch_index(index: Any) -> Any:
    if isinstance(index, np.ndarray):
        return torch.from_numpy(index)
    if isinstance(index, tuple):
        return tuple(torch_index(p) for p in index)
    return index


def _has_negative_step(index: Any) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, slice) and (p.step or 1) < 0 for p in parts)


def torch_getitem(a: torch.Tensor, index: Any) -> torch.Tensor:
    if _has_negative_step(index):
        # torch slices have no negative steps: let NumPy say which flat positions the index
        # picks, and gather those in torch (whose gather has its own, independent backward).
        positions = np.arange(a.numel()).reshape(tuple(a.shape))[index]
        return a.reshape(-1)[torch.from_numpy(positions.copy())]
    return a[torch_index(index)]


def build_join(stack: bool) -> Callable:
    def build(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
        shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=3))
        n = len(shape)
        axis = draw(st.integers(-n - 1, n) if stack else st.integers(-n, n - 1))
        arrays = []
        for _ in range(draw(st.integers(1, 3))):
            own = list(shape)
            if not stack:
                own[axis] = draw(st.integers(1, 3))
            arrays.append(normal(rng, tuple(own)))
        return arrays, {"axis": axis}
    return build


def build_matmul(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    m, k, n = (draw(st.integers(1, 4)) for _ in range(3))
    kind = draw(st.sampled_from(["2d", "batched", "vec_left", "vec_right", "dot"]))
    if kind == "2d":
        shapes = (m, k), (k, n)
    elif kind == "batched":
        batch_a, batch_b = draw(hnp.mutually_broadcastable_shapes(
            num_shapes=2, min_dims=0, max_dims=2, max_side=3)).input_shapes
        shapes = batch_a + (m, k), batch_b + (k, n)
    elif kind == "vec_left":
        shapes = (k,), tuple(draw(st.lists(st.integers(1, 3), max_size=1))) + (k, n)
    elif kind == "vec_right":
        shapes = tuple(draw(st.lists(st.integers(1, 3), max_size=1))) + (m, k), (k,)
    else:
        shapes = (k,), (k,)
    return [normal(rng, shapes[0]), normal(rng, shapes[1])], {}


def build_linear(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    n_in, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    bias = normal(rng, (n_out,)) if draw(st.booleans()) else None
    return [normal(rng, lead + (n_in,)), normal(rng, (n_out, n_in)), bias], {}


def build_linear_relu(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    """Linear's inputs, redrawn until no pre-activation lies within 0.01 of relu's kink."""
    lead = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=2)))
    n_in, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    with_bias = draw(st.booleans())
    for _ in range(1000):
        x, weight = normal(rng, lead + (n_in,)), normal(rng, (n_out, n_in))
        bias = normal(rng, (n_out,)) if with_bias else None
        pre = x @ weight.T + (0 if bias is None else bias)
        if np.abs(pre).min() >= 0.01:
            return [x, weight, bias], {}
    raise AssertionError("build_linear_relu: no draw kept clear of the kink")


def build_mse(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE_1D_UP)
    out_shape = shape + (1,) if draw(st.booleans()) else shape  # the seed's (N, 1) output
    return [normal(rng, out_shape), normal(rng, shape)], {
        "reduction": draw(st.sampled_from(["mean", "sum"]))}


def torch_mse(output: torch.Tensor, target: torch.Tensor, reduction: str) -> torch.Tensor:
    if output.shape != target.shape:
        output = output.squeeze(-1)
    return F.mse_loss(output, target, reduction=reduction)


def build_classification(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    n, classes = draw(st.integers(1, 6)), draw(st.integers(1, 5))
    scale = draw(st.sampled_from([1.0, 30.0]))  # large logits too: the fused op must stay exact
    return [normal(rng, (n, classes)) * scale, rng.integers(0, classes, n)], {
        "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}


def build_nll(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    (scores, targets), attrs = build_classification(draw, rng)
    log_probs = scores - np.log(np.exp(scores - scores.max(1, keepdims=True)).sum(
        1, keepdims=True)) - scores.max(1, keepdims=True)
    return [log_probs, targets], attrs


def build_bce(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    return [normal(rng, shape) * 3, rng.uniform(0, 1, shape)], {
        "reduction": draw(st.sampled_from(["mean", "sum", "none"]))}


def build_conv(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    groups = draw(st.sampled_from([1, 1, 2]))
    channels, out_channels = groups * draw(st.integers(1, 2)), groups * draw(st.integers(1, 2))
    kernel, dilation = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    padding, stride = draw(st.integers(0, 2)), draw(st.integers(1, 2))
    span = dilation * (kernel - 1) + 1
    height, width = (draw(st.integers(max(span - 2 * padding, 1), 6)) for _ in range(2))
    bias = normal(rng, (out_channels,)) if draw(st.booleans()) else None
    return [normal(rng, (draw(st.integers(1, 2)), channels, height, width)),
            normal(rng, (out_channels, channels // groups, kernel, kernel)), bias], {
        "stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


def build_pool(make: Callable) -> Callable:
    def build(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
        kernel = draw(st.integers(1, 3))
        padding = draw(st.integers(0, kernel // 2))
        stride = draw(st.sampled_from([None, 1, 2]))
        height, width = (draw(st.integers(max(kernel - 2 * padding, 1), 6)) for _ in range(2))
        shape = (draw(st.integers(1, 2)), draw(st.integers(1, 2)), height, width)
        return [make(rng, shape)], {"kernel_size": kernel, "stride": stride, "padding": padding}
    return build


def build_batch_norm(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    channels = draw(st.integers(1, 3))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    training = draw(st.booleans())
    # Training needs more than one value per channel (else it raises, as in PyTorch).
    batch = draw(st.integers(1 if spatial and math.prod(spatial) > 1 or not training else 2, 4))
    affine = draw(st.booleans())
    tracked = draw(st.booleans()) or not training  # eval without statistics is tested too
    stats = {"running_mean": normal(rng, (channels,)) if tracked else None,
             "running_var": positive(rng, (channels,)) if tracked else None}
    weight, bias = (normal(rng, (channels,)), normal(rng, (channels,))) if affine else (None,
                                                                                        None)
    return [normal(rng, (batch, channels) + spatial) * 2 + 1, weight, bias], {
        **stats, "training": training, "momentum": draw(st.sampled_from([0.1, 0.5])),
        "eps": draw(st.sampled_from([1e-5, 1e-3]))}


def torch_batch_norm(x: torch.Tensor, weight: Any, bias: Any, running_mean: Any,
                     running_var: Any, training: bool, momentum: float, eps: float
                     ) -> torch.Tensor:
    # Copies: the statistics are updated in place in training, by both libraries.
    def stat(a: Any) -> Any:
        return None if a is None else torch.from_numpy(a.copy())
    return F.batch_norm(x, stat(running_mean), stat(running_var), weight, bias, training,
                        momentum, eps)


def _as_if_twice(array: np.ndarray) -> np.ndarray:
    """sync_batch_norm's reduce as if a second process held the very same batch."""
    return 2 * array


def build_sync_batch_norm(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    """sync_batch_norm alone (reduce None: batch_norm's path) or as one of two processes
    with equal batches (the statistics, and so the gradients, are then the batch's own)."""
    inputs, attrs = build_batch_norm(draw, rng)
    return inputs, {**attrs, "reduce": draw(st.sampled_from([None, _as_if_twice]))}


def torch_sync_batch_norm(x: torch.Tensor, weight: Any, bias: Any, running_mean: Any,
                          running_var: Any, training: bool, momentum: float, eps: float,
                          reduce: Any) -> torch.Tensor:
    return torch_batch_norm(x, weight, bias, running_mean, running_var, training, momentum,
                            eps)


def build_batch_norm_max_pool(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    """batch_norm then max_pool2d (then relu): weights of either sign (the pooling follows
    the scale's sign), pool padding sometimes (the op then composes the two plain ops)."""
    kernel = draw(st.integers(1, 3))
    padding = draw(st.sampled_from([0, 0, kernel // 2]))
    stride = draw(st.sampled_from([None, 1, 2]))
    height, width = (draw(st.integers(max(kernel - 2 * padding, 2), 5)) for _ in range(2))
    channels, training = draw(st.integers(1, 3)), draw(st.booleans())
    shape = (draw(st.integers(1, 2)), channels, height, width)
    relu, affine = draw(st.booleans()), draw(st.booleans())
    attrs = {"training": training, "momentum": 0.1, "eps": draw(st.sampled_from([1e-5, 1e-3])),
             "kernel_size": kernel, "stride": stride, "padding": padding, "relu": relu}
    for _ in range(1000):
        x = distinct(rng, shape)  # no ties within a finite-difference step
        weight = nonzero(rng, (channels,)) if affine else None
        bias = normal(rng, (channels,)) if affine else None
        stats = {"running_mean": normal(rng, (channels,)),
                 "running_var": positive(rng, (channels,))} if not training or draw(
            st.booleans()) else {"running_mean": None, "running_var": None}
        pooled = torch_batch_norm_max_pool(
            torch.from_numpy(x), None if weight is None else torch.from_numpy(weight),
            None if bias is None else torch.from_numpy(bias), **stats,
            **{**attrs, "relu": False})
        if not relu or pooled.abs().min() >= 0.01:  # relu's kink out of reach
            return [x, weight, bias], {**stats, **attrs}
    raise AssertionError("build_batch_norm_max_pool: no draw kept clear of relu's kink")


def torch_batch_norm_max_pool(x: torch.Tensor, weight: Any, bias: Any, running_mean: Any,
                              running_var: Any, training: bool, momentum: float, eps: float,
                              kernel_size: int, stride: Any, padding: int, relu: bool
                              ) -> torch.Tensor:
    out = F.max_pool2d(torch_batch_norm(x, weight, bias, running_mean, running_var, training,
                                        momentum, eps), kernel_size, stride, padding)
    return torch.relu(out) if relu else out


def build_layer_norm(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE_1D_UP)
    k = draw(st.integers(1, len(shape)))
    norm_shape = shape[len(shape) - k:]
    affine = draw(st.booleans())
    weight = normal(rng, norm_shape) if affine else None
    bias = normal(rng, norm_shape) if affine and draw(st.booleans()) else None
    return [normal(rng, shape) * 2 + 1, weight, bias], {
        "normalized_shape": norm_shape if draw(st.booleans()) or k > 1 else norm_shape[0],
        "eps": draw(st.sampled_from([1e-5, 1e-3]))}


def build_dropout(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    # Sometimes one draw per leading position, broadcast over the last axis.
    mask_shape = shape[:-1] + (1,) if shape and draw(st.booleans()) else shape
    p = draw(st.sampled_from([0.0, 0.2, 0.5, 0.9]))
    return [normal(rng, shape), rng.random(mask_shape) >= p], {"scale": 1 / (1 - p)}


def torch_dropout(x: torch.Tensor, mask: torch.Tensor, scale: float) -> torch.Tensor:
    # torch's dropout is this product with a mask it draws itself (aten's _masked_scale);
    # tests/test_nn.py feeds torch's own mask through chainrule's op as well.
    return x * mask.to(x.dtype) * scale


def build_leaky_relu(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    return [nonzero(rng, draw(SHAPE))], {
        "negative_slope": draw(st.sampled_from([0.01, 0.2, -0.5, 1.5]))}


def build_gelu(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    return [normal(rng, draw(SHAPE)) * 3], {
        "approximate": draw(st.sampled_from(["none", "tanh"]))}


def build_norm(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    (x,), attrs = reduction(distinct)(draw, rng)
    order = draw(st.sampled_from([2, 1, 3, 0.5, math.inf, -math.inf, 0]))
    return [x], {"ord": order, **attrs}


def torch_norm(a: torch.Tensor, ord: float, axis: Any, keepdims: bool) -> torch.Tensor:
    return torch.linalg.vector_norm(a, ord=ord, dim=axis, keepdim=keepdims)


def _clamp(a: torch.Tensor, low: float | None, high: float | None) -> torch.Tensor:
    return torch.clamp(a, min=low, max=high)


def _reduce(fn: Callable) -> Callable:
    def call(a: torch.Tensor, axis: Any, keepdims: bool, **extra: Any) -> torch.Tensor:
        return fn(a, dim=_dims(axis, a.ndim), keepdim=keepdims, **extra)
    return call


CASES: list[Case] = [
    Case("add", "broadcast", binary(), torch.add),
    Case("sub", "broadcast", binary(), torch.sub),
    Case("mul", "broadcast", binary(), torch.mul),
    Case("div", "broadcast", binary(normal, nonzero), torch.div),
    Case("neg", "any", unary(), torch.neg),
    Case("clone", "any", unary(), torch.clone),
    Case("pow", "tensor or constant exponent", build_pow, torch.pow),
    # float32 rounding (1e-7 relative) swamps a 1e-6 difference step; cast is linear, so a
    # large step costs no accuracy.
    Case("cast", "float64 to float32",
         lambda draw, rng: ([normal(rng, draw(SHAPE))], {"dtype": np.dtype(np.float32)}),
         lambda a, dtype: a.to(torch.float32), fd_eps=1e-2, fd_rtol=1e-3),
    Case("exp", "any", unary(), torch.exp),
    Case("log", "positive", unary(positive), torch.log),
    Case("sqrt", "positive", unary(positive), torch.sqrt),
    Case("tanh", "any", unary(), torch.tanh),
    Case("sigmoid", "any", unary(lambda r, s: normal(r, s) * 4), torch.sigmoid),
    Case("relu", "off zero", unary(nonzero), torch.relu),
    Case("leaky_relu", "off zero, slopes", build_leaky_relu,
         lambda a, negative_slope: F.leaky_relu(a, negative_slope)),
    Case("silu", "any", unary(lambda r, s: normal(r, s) * 4), F.silu),
    Case("gelu", "exact erf or tanh form", build_gelu,
         lambda a, approximate: F.gelu(a, approximate=approximate)),
    Case("abs", "off zero", unary(nonzero), torch.abs),
    Case("clamp", "off the bounds", build_clamp, _clamp),
    Case("maximum", "broadcast", binary(), torch.maximum),
    Case("minimum", "broadcast", binary(), torch.minimum),
    Case("where", "broadcast", build_where,
         lambda c, a, b: torch.where(c, a, b)),
    Case("sum", "axes", reduction(), _reduce(torch.sum)),
    Case("mean", "axes", reduction(), _reduce(torch.mean)),
    Case("max", "axes", reduction(distinct), _reduce(torch.amax)),
    Case("min", "axes", reduction(distinct), _reduce(torch.amin)),
    Case("var", "axes", reduction(with_correction=True), _reduce(torch.var)),
    Case("std", "axes", reduction(with_correction=True), _reduce(torch.std)),
    Case("logsumexp", "axes", reduction(), _reduce(torch.logsumexp)),
    Case("norm", "p in 2, 1, 3, 0.5, inf, -inf, 0; axes", build_norm, torch_norm),
    Case("softmax", "axis", along_axis(), lambda a, axis: torch.softmax(a, dim=axis)),
    Case("log_softmax", "axis", along_axis(), lambda a, axis: torch.log_softmax(a, dim=axis)),
    Case("reshape", "shapes", build_reshape, lambda a, shape: a.reshape(shape)),
    Case("transpose", "axes", build_transpose,
         lambda a, axis0, axis1: torch.transpose(a, axis0, axis1)),
    Case("permute", "axes", build_permute, lambda a, axes: a.permute(axes)),
    Case("squeeze", "axes", build_squeeze,
         lambda a, axis: a.squeeze() if axis is None else a.squeeze(axis)),
    Case("unsqueeze", "axes", build_unsqueeze, lambda a, axis: a.unsqueeze(axis)),
    Case("expand", "shapes", build_expand, lambda a, shape: a.expand(shape)),
    Case("flatten", "axes", build_flatten,
         lambda a, start_axis, end_axis: torch.flatten(a, start_axis, end_axis)),
    Case("getitem", "slices, int arrays, masks", build_getitem, torch_getitem),
    Case("concatenate", "axis", build_join(stack=False),
         lambda *arrays, axis: torch.cat(arrays, dim=axis)),
    Case("stack", "axis", build_join(stack=True),
         lambda *arrays, axis: torch.stack(arrays, dim=axis)),
    Case("matmul", "2-D, batched, vectors", build_matmul, torch.matmul),
    Case("linear", "leading axes, bias or not", build_linear, F.linear),
    Case("linear_gelu", "leading axes, bias or not (GELU's tanh form)", build_linear,
         lambda x, w, b: F.gelu(F.linear(x, w, b), approximate="tanh")),
    Case("linear_relu", "leading axes, bias or not, off the kink", build_linear_relu,
         lambda x, w, b: torch.relu(F.linear(x, w, b))),
    Case("mse_loss", "equal shapes or trailing 1", build_mse, torch_mse),
    Case("conv2d", "stride, padding, dilation, groups, bias", build_conv, F.conv2d),
    Case("max_pool2d", "kernel, stride, padding", build_pool(distinct), F.max_pool2d),
    Case("avg_pool2d", "kernel, stride, padding (zeros counted)", build_pool(normal),
         lambda x, **attrs: F.avg_pool2d(x, count_include_pad=True, **attrs)),
    Case("batch_norm", "train or eval, affine or not, (N, C, ...)", build_batch_norm,
         torch_batch_norm),
    Case("sync_batch_norm", "one process, or two with equal batches", build_sync_batch_norm,
         torch_sync_batch_norm),
    Case("batch_norm_max_pool2d", "train or eval, either sign, padding, relu or not",
         build_batch_norm_max_pool, torch_batch_norm_max_pool),
    Case("layer_norm", "trailing axes, affine or not", build_layer_norm,
         lambda x, w, b, normalized_shape, eps: F.layer_norm(
             x, (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape,
             w, b, eps)),
    Case("dropout", "given mask, broadcast or not", build_dropout, torch_dropout),
    Case("cross_entropy", "class indices, large logits", build_classification,
         lambda x, t, reduction: F.cross_entropy(x, t, reduction=reduction)),
    Case("nll_loss", "class indices", build_nll,
         lambda x, t, reduction: F.nll_loss(x, t, reduction=reduction)),
    Case("binary_cross_entropy_with_logits", "targets in [0, 1]", build_bce,
         lambda x, t, reduction: F.binary_cross_entropy_with_logits(x, t, reduction=reduction)),
]
