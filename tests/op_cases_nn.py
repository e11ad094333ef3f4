"""Matrix cases for issue 13's losses, norms, embedding and other layers (area E)."""

from __future__ import annotations

import math
from typing import Any

import hypothesis.strategies as st
import numpy as np
import torch
import torch.nn.functional as F
from op_cases import SHAPE, SHAPE_1D_UP, Case, Draw, normal, positive

REDUCTION = st.sampled_from(["mean", "sum", "none"])


def _t(value: Any) -> Any:
    return None if value is None else torch.from_numpy(np.asarray(value))


def _class_shape(draw: Draw) -> tuple[tuple[int, ...], int]:
    """Scores' shape (C,), (N, C) or (N, C, d1[, d2]) and the class count."""
    classes = draw(st.integers(1, 4))
    layout = draw(st.sampled_from(["unbatched", "2d", "2d", "nd"]))
    if layout == "unbatched":
        return (classes,), classes
    n = draw(st.integers(1, 4))
    extra = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2))) if \
        layout == "nd" else ()
    return (n, classes) + extra, classes


def _sample_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    return () if len(shape) == 1 else (shape[0],) + shape[2:]


def build_cross_entropy(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    """Class indices or probabilities; weight, ignore_index, label_smoothing, any layout."""
    shape, classes = _class_shape(draw)
    scale = draw(st.sampled_from([1.0, 30.0]))
    logits = normal(rng, shape) * scale
    soft = draw(st.booleans())
    weight = positive(rng, (classes,)) if draw(st.booleans()) else None
    attrs: dict[str, Any] = {"weight": weight, "reduction": draw(REDUCTION),
                             "label_smoothing": draw(st.sampled_from([0.0, 0.0, 0.1, 0.4]))}
    if soft:
        probs = rng.uniform(0.05, 1.0, shape)
        probs /= probs.sum(axis=0 if len(shape) == 1 else 1, keepdims=True)
        return [logits, probs], attrs
    targets = rng.integers(0, classes, _sample_shape(shape))
    ignore = draw(st.sampled_from([-100, 0]))
    if (targets == ignore).all():
        ignore = -100  # some sample must count, or the mean is NaN
    if targets.size > 1 and ignore == -100 and draw(st.booleans()):
        targets.reshape(-1)[0] = -100  # one ignored sample (the others still count)
    return [logits, targets], {**attrs, "ignore_index": ignore}


def torch_cross_entropy(x: torch.Tensor, t: torch.Tensor, weight: Any = None,
                        ignore_index: int = -100, reduction: str = "mean",
                        label_smoothing: float = 0.0) -> torch.Tensor:
    return F.cross_entropy(x, t, _t(weight), ignore_index=ignore_index, reduction=reduction,
                           label_smoothing=label_smoothing)


def build_nll(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape, classes = _class_shape(draw)
    axis = 0 if len(shape) == 1 else 1
    scores = normal(rng, shape) * 2
    log_probs = scores - np.log(np.exp(scores).sum(axis=axis, keepdims=True))
    targets = rng.integers(0, classes, _sample_shape(shape))
    ignore = draw(st.sampled_from([-100, 1]))
    if (targets == ignore).all():
        ignore = -100
    weight = positive(rng, (classes,)) if draw(st.booleans()) else None
    return [log_probs, targets], {"weight": weight, "ignore_index": ignore,
                                  "reduction": draw(REDUCTION)}


def torch_nll(x: torch.Tensor, t: torch.Tensor, weight: Any, ignore_index: int,
              reduction: str) -> torch.Tensor:
    return F.nll_loss(x, t, _t(weight), ignore_index=ignore_index, reduction=reduction)


def build_bce(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    probs = rng.uniform(0.05, 0.95, shape)
    weight = positive(rng, shape[-1:] if shape and draw(st.booleans()) else shape) if draw(
        st.booleans()) else None
    return [probs, rng.uniform(0, 1, shape)], {"weight": weight, "reduction": draw(REDUCTION)}


def build_bce_logits(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    last = shape[-1:]

    def maybe() -> Any:
        return positive(rng, last if draw(st.booleans()) else shape) if draw(
            st.booleans()) else None
    return [normal(rng, shape) * 3, rng.uniform(0, 1, shape)], {
        "weight": maybe(), "pos_weight": maybe(), "reduction": draw(REDUCTION)}


def build_regression(extra: dict[str, st.SearchStrategy] | None = None,
                     kink: str | None = None) -> Any:
    """Two same-shape inputs, their difference kept 0.05 away from 0 (l1's kink) and, with
    ``kink``, from +-that option."""
    def build(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
        shape = draw(SHAPE)
        attrs = {"reduction": draw(REDUCTION)}
        for key, values in (extra or {}).items():
            attrs[key] = draw(values)
        a, b = normal(rng, shape) * 2, normal(rng, shape) * 2
        if kink is not None:
            diff = a - b
            near = np.abs(np.abs(diff) - attrs[kink]) < 0.05
            a = a + np.where(near, 0.1 * np.sign(diff + 1e-3), 0)
        near_zero = np.abs(a - b) < 0.05
        a = a + np.where(near_zero, 0.2, 0)
        return [np.asarray(a), b], attrs
    return build


def build_kl_div(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE)
    log_target = draw(st.booleans())
    target = normal(rng, shape) if log_target else rng.uniform(0.05, 1.0, shape)
    return [normal(rng, shape), target], {
        "reduction": draw(st.sampled_from(["mean", "batchmean", "sum", "none"])),
        "log_target": log_target}


def build_cosine(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE_1D_UP)
    n = len(shape)
    other = tuple(1 if draw(st.booleans()) else s for s in shape)[draw(st.integers(0, n - 1)):]
    pair = [normal(rng, shape), normal(rng, other)]
    if draw(st.booleans()):
        pair.reverse()
    return pair, {"axis": draw(st.integers(-n, n - 1)),
                  "eps": draw(st.sampled_from([1e-8, 1e-3]))}


def build_normalize(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE_1D_UP)
    p = draw(st.sampled_from([2.0, 1.0, 3.0, 1.5, math.inf]))
    x = normal(rng, shape)
    if p != 2.0:  # off x = 0 (the slope's kink) and off ties of the largest |x|
        x = (rng.permutation(x.size).reshape(shape) * 0.3 + 0.2) * rng.choice([-1, 1], shape)
    return [x], {"p": p, "axis": draw(st.integers(-len(shape), len(shape) - 1)),
                 "eps": draw(st.sampled_from([1e-12, 1e-3]))}


def build_group_norm(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    groups = draw(st.integers(1, 3))
    channels = groups * draw(st.integers(1, 2))
    spatial = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    if math.prod(spatial) * channels // groups == 1:
        spatial = spatial + (2,)  # a group of one value has no spread
    shape = (draw(st.integers(1, 3)), channels) + spatial
    affine = draw(st.booleans())
    weight = normal(rng, (channels,)) if affine else None
    bias = normal(rng, (channels,)) if affine and draw(st.booleans()) else None
    return [normal(rng, shape) * 2 + 1, weight, bias], {
        "num_groups": groups, "eps": draw(st.sampled_from([1e-5, 1e-3]))}


def build_rms_norm(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    shape = draw(SHAPE_1D_UP)
    k = draw(st.integers(1, len(shape)))
    norm_shape = shape[len(shape) - k:]
    weight = normal(rng, norm_shape) if draw(st.booleans()) else None
    return [normal(rng, shape) + 0.5, weight], {
        "normalized_shape": norm_shape if draw(st.booleans()) or k > 1 else norm_shape[0],
        "eps": draw(st.sampled_from([None, 1e-5, 1e-2]))}


def torch_rms_norm(x: torch.Tensor, w: Any, normalized_shape: Any, eps: Any) -> torch.Tensor:
    shape = (normalized_shape,) if isinstance(normalized_shape, int) else normalized_shape
    return F.rms_norm(x, shape, w, eps)


def build_embedding(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    rows, dim = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    index_shape = tuple(draw(st.lists(st.integers(1, 4), max_size=2)))
    indices = rng.integers(0, rows, index_shape)  # repeats on purpose: gradients add up
    padding = draw(st.one_of(st.none(), st.integers(-rows, rows - 1)))
    if padding is not None:
        # The padding row takes no gradient by design, which finite differences cannot know:
        # the indices stay off it here, and test_ops_nn checks a batch that uses it.
        if rows == 1:
            padding = None
        else:
            indices[indices == padding % rows] = (padding + 1) % rows
    # scale_grad_by_freq is not a derivative either: test_ops_nn checks it against torch.
    return [indices, normal(rng, (rows, dim))], {"padding_idx": padding}


def build_bilinear(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    lead = tuple(draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)))
    n1, n2, out = (draw(st.integers(1, 3)) for _ in range(3))
    bias = normal(rng, (out,)) if draw(st.booleans()) else None
    return [normal(rng, lead + (n1,)), normal(rng, lead + (n2,)), normal(rng, (out, n1, n2)),
            bias], {}


CASES: list[Case] = [
    Case("cross_entropy", "indices or probabilities, weight, ignore_index, smoothing, (N,C,d)",
         build_cross_entropy, torch_cross_entropy),
    Case("nll_loss", "weight, ignore_index, (C,), (N, C) and (N, C, d)", build_nll, torch_nll),
    Case("binary_cross_entropy", "probabilities, weight", build_bce,
         lambda x, t, weight, reduction: F.binary_cross_entropy(x, t, _t(weight),
                                                                reduction=reduction)),
    Case("binary_cross_entropy_with_logits", "weight, pos_weight", build_bce_logits,
         lambda x, t, weight, pos_weight, reduction: F.binary_cross_entropy_with_logits(
             x, t, _t(weight), reduction=reduction, pos_weight=_t(pos_weight))),
    Case("mse_loss", "reduction none", build_regression(),
         lambda x, t, reduction: F.mse_loss(x, t, reduction=reduction)),
    Case("l1_loss", "off zero", build_regression(),
         lambda x, t, reduction: F.l1_loss(x, t, reduction=reduction)),
    Case("smooth_l1_loss", "beta, off the kink",
         build_regression({"beta": st.sampled_from([1.0, 0.5, 0.0])}, kink="beta"),
         lambda x, t, reduction, beta: F.smooth_l1_loss(x, t, reduction=reduction, beta=beta)),
    Case("huber_loss", "delta, off the kink",
         build_regression({"delta": st.sampled_from([1.0, 0.5, 2.0])}, kink="delta"),
         lambda x, t, reduction, delta: F.huber_loss(x, t, reduction=reduction, delta=delta)),
    Case("kl_div", "log_target or not, batchmean", build_kl_div,
         lambda x, t, reduction, log_target: F.kl_div(x, t, reduction=reduction,
                                                      log_target=log_target)),
    Case("cosine_similarity", "broadcast, axis, eps", build_cosine,
         lambda a, b, axis, eps: F.cosine_similarity(a, b, dim=axis, eps=eps)),
    Case("normalize", "p, axis, eps", build_normalize,
         lambda x, p, axis, eps: F.normalize(x, p=p, dim=axis, eps=eps)),
    Case("group_norm", "groups, affine or not, (N, C, ...)", build_group_norm,
         lambda x, w, b, num_groups, eps: F.group_norm(x, num_groups, w, b, eps)),
    Case("rms_norm", "trailing axes, weight or not, eps", build_rms_norm, torch_rms_norm),
    Case("embedding", "repeats, padding_idx", build_embedding,
         lambda i, w, padding_idx: F.embedding(i, w, padding_idx)),
    Case("bilinear", "leading axes, bias or not", build_bilinear, F.bilinear),
]
