"""Matrix cases for issue 14's attention, transformer, GPT (area S1); see op_cases.py."""

from __future__ import annotations

import math
from typing import Any

import hypothesis.strategies as st
import numpy as np
import torch
import torch.nn.functional as F
from op_cases import Case, Draw


def build_attention(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    """Query, key and value with broadcasting batch axes; no mask, a bool or float mask that
    broadcasts, or the causal mask; a given scale or the default; dropout sometimes."""
    batch = tuple(draw(st.lists(st.integers(1, 3), max_size=2)))
    # Each operand's batch axes: the full ones, or some of them set to 1 (broadcast).
    def batch_of() -> tuple[int, ...]:
        kept = [n if draw(st.booleans()) else 1 for n in batch]
        return tuple(kept[draw(st.integers(0, len(kept))):]) if draw(st.booleans()) else \
            tuple(kept)
    length, source = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    features, values = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    query = rng.standard_normal(batch_of() + (length, features))
    key = rng.standard_normal(batch_of() + (source, features))
    value = rng.standard_normal(batch_of() + (source, values))
    scores = np.broadcast_shapes(query.shape[:-2], key.shape[:-2]) + (length, source)
    mask_kind = draw(st.sampled_from(["none", "bool", "float", "causal"]))
    mask = None
    if mask_kind in ("bool", "float"):
        # A shape that broadcasts to the scores': trailing axes, some of them 1.
        ndim = draw(st.integers(1, len(scores)))
        mask_shape = tuple(n if draw(st.booleans()) else 1 for n in scores[len(scores) - ndim:])
        if mask_kind == "bool":
            mask = rng.random(mask_shape) < 0.7
            if draw(st.booleans()):
                mask[..., 0] = True  # most rows keep a key; some draws mask whole rows
        else:
            mask = rng.standard_normal(mask_shape)
    attrs: dict[str, Any] = {
        "scale": draw(st.sampled_from([None, 0.5, 1.3])),
        "is_causal": mask_kind == "causal"}
    dropout = None
    p = draw(st.sampled_from([0.0, 0.0, 0.3, 0.6]))
    if p:
        dropout = rng.random(scores) >= p
        attrs["dropout_scale"] = 1 / (1 - p)
    return [query, key, value, mask, dropout], attrs


def torch_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                    attn_mask: torch.Tensor | None, dropout: torch.Tensor | None,
                    scale: float | None, is_causal: bool, dropout_scale: float = 1.0
                    ) -> torch.Tensor:
    if attn_mask is not None:
        # torch 2.13's kernels raise IndexError on a 1-d mask of size 1 (found by hypothesis);
        # the mask broadcast to the scores' shape first is the same attention
        scores_shape = torch.broadcast_shapes(query.shape[:-2], key.shape[:-2]) + (
            query.shape[-2], key.shape[-2])
        attn_mask = attn_mask.expand(torch.broadcast_shapes(attn_mask.shape, scores_shape))
    if dropout is None:
        return F.scaled_dot_product_attention(query, key, value, attn_mask, 0.0, is_causal,
                                              scale=scale)
    # PyTorch draws its own dropout mask; with ours, this is its math path written out
    # (torch.nn.functional's documented reference implementation), fully masked rows
    # giving 0 as its kernels do.
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else scale
    scores = query @ key.transpose(-1, -2) * scale
    if is_causal:
        causal = torch.ones(scores.shape[-2:], dtype=torch.bool).tril()
        scores = scores.masked_fill(~causal, -math.inf)
    elif attn_mask is not None and attn_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attn_mask, -math.inf)
    elif attn_mask is not None:
        scores = scores + attn_mask
    dead = torch.isneginf(scores).all(-1, keepdim=True)
    probs = torch.softmax(scores.masked_fill(dead, 0), -1).masked_fill(dead, 0)
    return (probs * dropout.to(probs.dtype) * dropout_scale) @ value


def build_self_attention(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
    """Packed projections (batch..., T, 3C) with C = heads x features; causal or not, a given
    scale or the default, dropout sometimes."""
    batch = tuple(draw(st.lists(st.integers(1, 2), max_size=2)))
    length, heads, features = draw(st.integers(1, 4)), draw(st.integers(1, 3)), \
        draw(st.integers(1, 3))
    qkv = rng.standard_normal(batch + (length, 3 * heads * features))
    attrs: dict[str, Any] = {"n_head": heads, "scale": draw(st.sampled_from([None, 0.7])),
                             "is_causal": draw(st.booleans())}
    dropout = None
    p = draw(st.sampled_from([0.0, 0.0, 0.4]))
    if p:
        dropout = rng.random(batch + (heads, length, length)) >= p
        attrs["dropout_scale"] = 1 / (1 - p)
    return [qkv, dropout], attrs


def torch_self_attention(qkv: torch.Tensor, dropout: torch.Tensor | None, n_head: int,
                         scale: float | None, is_causal: bool, dropout_scale: float = 1.0
                         ) -> torch.Tensor:
    """Heads split and merged as nanoGPT's CausalSelfAttention, around torch_attention."""
    *lead, length, width = qkv.shape
    c = width // 3
    q, k, v = (x.reshape(*lead, length, n_head, c // n_head).transpose(-3, -2)
               for x in qkv.split(c, dim=-1))
    out = torch_attention(q, k, v, None, dropout, scale, is_causal, dropout_scale)
    return out.transpose(-3, -2).reshape(*lead, length, c)


CASES: list[Case] = [
    Case("scaled_dot_product_attention", "masks, causal, scale, dropout, broadcasting",
         build_attention, torch_attention),
    Case("self_attention", "packed heads, causal, scale, dropout, batch axes",
         build_self_attention, torch_self_attention),
]
