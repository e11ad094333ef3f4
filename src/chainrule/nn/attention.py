"""MultiheadAttention, laid out as torch.nn.MultiheadAttention so state dicts exchange; the
attention itself is one op, chainrule.ops.attention.scaled_dot_product_attention."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine import backend
from chainrule.engine.tensor import Tensor, _as_data
from chainrule.nn import init
from chainrule.nn.linear import Linear
from chainrule.nn.module import Module, Parameter
from chainrule.ops.attention import ScaledDotProductAttentionOp
from chainrule.ops.elementwise import DropoutOp
from chainrule.ops.linalg import linear
from chainrule.ops.loss import softmax
from chainrule.ops.shape import concatenate, expand

_NAME = "MultiheadAttention"


class MultiheadAttention(Module):
    """Attention over ``num_heads`` heads of ``embed_dim // num_heads`` features, as PyTorch's.

    Parameters as in torch: ``in_proj_weight`` (3 E, E) and ``in_proj_bias`` (3 E) stacking
    the query, key and value projections (or ``q_proj_weight``, ``k_proj_weight``,
    ``v_proj_weight`` when ``kdim``/``vdim`` differ from E), ``out_proj`` a Linear(E, E), and
    ``bias_k``/``bias_v`` (1, 1, E) with ``add_bias_kv``; the same initialisation (Xavier
    uniform in-projection, zero biases). Inputs are (L, N, E), or (N, L, E) with
    ``batch_first``, or unbatched (L, E). Masks follow torch.nn.MultiheadAttention's
    convention: a bool True means *masked out* (the opposite of scaled_dot_product_attention).
    A query whose keys are all masked is refused (torch returns NaN there).
    """

    def __init__(self, embed_dim: int, num_heads: int, dropout: float = 0.0, bias: bool = True,
                 add_bias_kv: bool = False, add_zero_attn: bool = False,
                 kdim: int | None = None, vdim: int | None = None, batch_first: bool = False,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        embed_dim = validate.integer(_NAME, "embed_dim", embed_dim, low=1)
        num_heads = validate.integer(_NAME, "num_heads", num_heads, low=1)
        if embed_dim % num_heads:
            raise ValueError(f"{_NAME}: embed_dim ({embed_dim}) must be divisible by num_heads "
                             f"({num_heads}): each head takes embed_dim // num_heads features")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.kdim = validate.integer(_NAME, "kdim", kdim, low=1, optional=True) or embed_dim
        self.vdim = validate.integer(_NAME, "vdim", vdim, low=1, optional=True) or embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.dropout = validate.real(_NAME, "dropout", dropout, 0, 1)
        self.batch_first = validate.boolean(_NAME, "batch_first", batch_first)
        self.head_dim = embed_dim // num_heads
        bias = validate.boolean(_NAME, "bias", bias)
        add_bias_kv = validate.boolean(_NAME, "add_bias_kv", add_bias_kv)
        self.add_zero_attn = validate.boolean(_NAME, "add_zero_attn", add_zero_attn)
        dtype = validate.float_dtype(_NAME, "dtype", dtype)
        self.generator = validate.generator(_NAME, "generator", generator)
        # Attributes in torch's registration order, so state_dict keys come out in its order.
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(init.empty((3 * embed_dim, embed_dim), dtype))
            init.xavier_uniform_(self.in_proj_weight, generator=generator)
            self.q_proj_weight = self.k_proj_weight = self.v_proj_weight = None
        else:
            self.in_proj_weight = None
            self.q_proj_weight = Parameter(init.empty((embed_dim, embed_dim), dtype))
            self.k_proj_weight = Parameter(init.empty((embed_dim, self.kdim), dtype))
            self.v_proj_weight = Parameter(init.empty((embed_dim, self.vdim), dtype))
            for weight in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(weight, generator=generator)
        self.in_proj_bias = None
        if bias:
            self.in_proj_bias = Parameter(init.full(3 * embed_dim, 0, dtype))
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype, generator=generator)
        if bias:
            init.zeros_(self.out_proj.bias)
        self.bias_k = self.bias_v = None
        if add_bias_kv:
            self.bias_k = Parameter(init.empty((1, 1, embed_dim), dtype))
            self.bias_v = Parameter(init.empty((1, 1, embed_dim), dtype))
            init.xavier_normal_(self.bias_k, generator=generator)
            init.xavier_normal_(self.bias_v, generator=generator)

    def forward(self, query: Any, key: Any, value: Any, key_padding_mask: Any = None,
                need_weights: bool = True, attn_mask: Any = None,
                average_attn_weights: bool = True, is_causal: bool = False
                ) -> tuple[Tensor, Tensor | None]:
        """(attention output, attention weights averaged over heads, or per head, or None)."""
        need_weights = validate.boolean(_NAME, "need_weights", need_weights)
        average = validate.boolean(_NAME, "average_attn_weights", average_attn_weights)
        if validate.boolean(_NAME, "is_causal", is_causal) and attn_mask is None:
            # torch's rule: is_causal is only a hint that attn_mask is the causal mask.
            raise ValueError(f"{_NAME}: is_causal=True needs attn_mask (the causal mask "
                             "itself; is_causal is only a hint, as in PyTorch)")
        same = query is key and key is value
        query, key, value = (_tensor(x, name) for x, name in
                             ((query, "query"), (key, "key"), (value, "value")))
        batched = self._check_shapes(query, key, value)
        if not batched:  # one sequence: a batch of one, dropped again at the end
            query, key, value = query[:, None], key[:, None], value[:, None]
        if not self.batch_first or not batched:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))
        batch, length, _ = query.shape
        q, k, v = self._project(query, key, value, same)
        masks = _Masks(self, key_padding_mask, attn_mask, batched, batch, length, key.shape[1])
        if self.bias_k is not None:
            k = concatenate([k, expand(self.bias_k, batch, 1, self.embed_dim)], 1)
            v = concatenate([v, expand(self.bias_v, batch, 1, self.embed_dim)], 1)
            masks.pad()
        heads, dim = self.num_heads, self.head_dim
        # (N, L, E) -> (N, H, L, D): one reshape and one transpose per operand, no loop
        q, k, v = (x.reshape(batch, x.shape[1], heads, dim).transpose(1, 2) for x in (q, k, v))
        if self.add_zero_attn:
            zeros = Tensor(np.zeros((batch, heads, 1, dim), q.dtype))
            k, v = concatenate([k, zeros], 2), concatenate([v, zeros], 2)
            masks.pad()
        mask = masks.combined(q.dtype)
        dropout = None
        if self.training and self.dropout:
            rng = self.generator if self.generator is not None else \
                backend.default_generator()
            dropout = rng.random((batch, heads, length, k.shape[2])) >= self.dropout
        keep_scale = 0.0 if self.dropout == 1 else 1 / (1 - self.dropout)
        out = ScaledDotProductAttentionOp.apply(q, k, v, mask, dropout,
                                                dropout_scale=keep_scale)
        out = self.out_proj(out.transpose(1, 2).reshape(batch, length, self.embed_dim))
        if not self.batch_first or not batched:
            out = out.transpose(0, 1)
        if not batched:
            out = out[:, 0]
        weights = None
        if need_weights:
            weights = _weights(q, k, mask, dropout, keep_scale)
            if average:
                weights = weights.mean(1)
            if not batched:
                weights = weights[0]
        return out, weights

    def _check_shapes(self, query: Tensor, key: Tensor, value: Tensor) -> bool:
        """Whether the inputs are batched; their shapes checked against the layer's sizes."""
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise ValueError(f"{_NAME}: query, key and value must all be 3-D (batched) or all "
                             f"2-D (one sequence), got shapes {query.shape}, {key.shape} and "
                             f"{value.shape}")
        for name, x, size in (("query", query, self.embed_dim), ("key", key, self.kdim),
                              ("value", value, self.vdim)):
            if x.shape[-1] != size:
                raise ValueError(f"{_NAME}: {name} must have {size} features (last axis), got "
                                 f"shape {x.shape}")
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"{_NAME}: key {key.shape} and value {value.shape} must hold the "
                             "same sequence and batch sizes")
        batch_axis = 0 if self.batch_first else 1
        if query.ndim == 3 and query.shape[batch_axis] != key.shape[batch_axis]:
            raise ValueError(f"{_NAME}: query {query.shape} and key {key.shape} must have the "
                             f"same batch size (axis {batch_axis}, batch_first="
                             f"{self.batch_first})")
        return query.ndim == 3

    def _project(self, query: Tensor, key: Tensor, value: Tensor, same: bool
                 ) -> tuple[Tensor, Tensor, Tensor]:
        """The query, key and value projections, (N, L, E) each."""
        e, bias = self.embed_dim, self.in_proj_bias
        biases = (None, None, None) if bias is None else (bias[:e], bias[e:2 * e], bias[2 * e:])
        if self._qkv_same_embed_dim:
            weight = self.in_proj_weight
            if same:  # self-attention: one product for all three, then split
                qkv = linear(query, weight, bias)
                return qkv[..., :e], qkv[..., e:2 * e], qkv[..., 2 * e:]
            weights = (weight[:e], weight[e:2 * e], weight[2 * e:])
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        return tuple(linear(x, w, b) for x, w, b in zip((query, key, value), weights, biases))

def _tensor(value: Any, name: str) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(_as_data(value, where=f"{_NAME} "
                                                                              f"{name}"))


class _Masks:
    """key_padding_mask and attn_mask in torch's convention, checked, shaped to broadcast to
    the (N, H, L, S) scores, and combined into one mask in scaled_dot_product_attention's."""

    def __init__(self, layer: MultiheadAttention, key_padding_mask: Any, attn_mask: Any,
                 batched: bool, batch: int, length: int, source: int) -> None:
        heads = layer.num_heads
        self.padding = self.attn = None
        if key_padding_mask is not None:
            pad = _mask(key_padding_mask, "key_padding_mask")
            wanted = (batch, source) if batched else (source,)
            if tuple(pad.shape) != wanted:
                raise ValueError(f"{_NAME}: key_padding_mask must have shape {wanted} "
                                 f"(batch, source length), got {tuple(pad.shape)}")
            self.padding = pad.reshape(batch, 1, 1, source)
        if attn_mask is not None:
            attn = _mask(attn_mask, "attn_mask")
            if attn.ndim == 2 and tuple(attn.shape) == (length, source):
                self.attn = attn
            elif attn.ndim == 3 and tuple(attn.shape) == (batch * heads, length, source):
                self.attn = attn.reshape(batch, heads, length, source)
            else:
                raise ValueError(f"{_NAME}: attn_mask must have shape ({length}, {source}) or "
                                 f"({batch * heads}, {length}, {source}) (batch * num_heads, "
                                 f"target length, source length), got {tuple(attn.shape)}")

    def pad(self) -> None:
        """One more key (bias_k, or add_zero_attn's zeros), which no mask hides."""
        for name in ("padding", "attn"):
            mask = getattr(self, name)
            if mask is not None:
                extra = np.zeros(mask.shape[:-1] + (1,), mask.dtype)
                setattr(self, name, concatenate([mask, Tensor(extra)], -1))

    def combined(self, dtype: np.dtype) -> Any:
        """None, a bool mask (True: the key takes part) or a float mask to add; a query with
        no key left is refused."""
        masks = [m for m in (self.attn, self.padding) if m is not None]
        if not masks:
            return None
        if all(m.dtype == np.bool_ for m in masks):
            hidden = masks[0].data if len(masks) == 1 else masks[0].data | masks[1].data
            if hidden.shape[-1] and hidden.all(axis=-1).any():
                _refuse_empty_rows()
            return ~hidden
        # As torch: a bool mask becomes 0 / -inf, and the two masks add.
        floats = [m if m.dtype != np.bool_ else
                  Tensor(np.where(m.data, -np.inf, 0).astype(dtype)) for m in masks]
        floats = [m if m.dtype == dtype else m.to(dtype) for m in floats]
        total = floats[0] if len(floats) == 1 else floats[0] + floats[1]
        if total.shape[-1] and np.isneginf(total.data).all(axis=-1).any():
            _refuse_empty_rows()
        return total


def _mask(value: Any, name: str) -> Tensor:
    mask = _tensor(value, name)
    if mask.dtype.kind not in "bf":
        raise TypeError(f"{_NAME}: {name} must be bool (True: masked out) or floating (added "
                        f"to the scores), got {mask.dtype}")
    return mask


def _refuse_empty_rows() -> None:
    raise ValueError(f"{_NAME}: key_padding_mask and attn_mask leave some query with every key "
                     "masked out; torch.nn.MultiheadAttention returns NaN for it. Leave each "
                     "query at least one key (F.scaled_dot_product_attention gives such rows 0)")


def _weights(q: Tensor, k: Tensor, mask: Any, dropout: np.ndarray | None,
             keep_scale: float) -> Tensor:
    """The attention weights per head (N, H, L, S), as the op computed them inside, through
    differentiable ops (the op itself returns only the output)."""
    scores = (q @ k.transpose(-1, -2)) * (1 / math.sqrt(q.shape[-1]))
    if mask is not None and getattr(mask, "dtype", None) == np.bool_:
        scores = scores.masked_fill(~np.asarray(mask), -math.inf)
    elif mask is not None:
        scores = scores + mask
    weights = softmax(scores, -1)
    if dropout is not None:
        weights = DropoutOp.apply(weights, dropout, scale=keep_scale)
    return weights
