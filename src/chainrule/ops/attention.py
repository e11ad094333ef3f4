"""Scaled dot-product attention as one primitive, its backward written out.

For one query row q_i against keys k_j and values v_j (scale s, additive mask M, dropout keep
mask D with scale 1 / (1 - p)):

    S = s q k^T + M          the scores, (..., L, S)
    P = softmax(S)           along the keys
    A = P * D / (1 - p)      dropout on the attention weights
    O = A v                  the output, (..., L, Ev)

and, going back with dO:

    dv = A^T dO
    dA = dO v^T
    dP = dA * D / (1 - p)
    dS = P * (dP - rowsum(dP * P))      the softmax's Jacobian-vector product
    dq = s dS k,   dk = s dS^T q,   dM = dS (summed over the axes M was broadcast along)

One node on the tape instead of the dozen that matmul, scale, mask, softmax, dropout and
matmul would make, and no (..., L, S) intermediate kept beyond P and the dropout mask.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule import kernels, validate
from chainrule.engine import backend
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor, _as_data
from chainrule.ops.elementwise import CastOp

_OP = "scaled_dot_product_attention"


def _mT(a: np.ndarray) -> np.ndarray:  # noqa: N802 - the usual name for a matrix transpose
    return np.swapaxes(a, -1, -2)


def _keys_first(mask: np.ndarray) -> np.ndarray:
    """A (..., L, S) mask, or one that broadcasts to it, as a view laid out (..., S, L)."""
    return _mT(mask.reshape((1,) * (2 - mask.ndim) + mask.shape) if mask.ndim < 2 else mask)


def _check_inputs(query: np.ndarray, key: np.ndarray, value: np.ndarray
                  ) -> tuple[int, ...]:
    """The scores' shape (batch..., L, S) of q @ k^T, after checking the operands fit."""
    for name, array in (("query", query), ("key", key), ("value", value)):
        if array.ndim < 2:
            raise ValueError(f"{_OP}: {name} must have at least 2 dims (..., length, features), "
                             f"got shape {array.shape}")
        if array.dtype.kind != "f":
            raise TypeError(f"{_OP}: {name} must be floating, got {array.dtype}")
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(f"{_OP}: query, key and value must share one dtype (as in PyTorch), got "
                        f"{query.dtype}, {key.dtype} and {value.dtype}")
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(f"{_OP}: query's last axis ({query.shape[-1]}) and key's "
                         f"({key.shape[-1]}) must be equal: each query is compared with each "
                         f"key (shapes {query.shape} and {key.shape})")
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(f"{_OP}: key and value must hold as many positions, got key "
                         f"{key.shape} and value {value.shape} (axis -2)")
    try:
        np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise ValueError(f"{_OP}: the batch axes of query {query.shape}, key {key.shape} and "
                         f"value {value.shape} (all but the last two) do not broadcast"
                         ) from None
    # As in PyTorch, the masks fit the scores q @ k^T; value's batch axes may broadcast the
    # output further.
    return np.broadcast_shapes(query.shape[:-2], key.shape[:-2]) + (query.shape[-2],
                                                                     key.shape[-2])


def _check_mask(name: str, mask: np.ndarray, scores: tuple[int, ...]) -> None:
    """A mask must broadcast to the scores' shape without growing it."""
    try:
        fits = np.broadcast_shapes(mask.shape, scores) == scores
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"{_OP}: {name} of shape {mask.shape} does not broadcast to the "
                         f"attention scores' shape {scores} (batch..., L, S)")


class ScaledDotProductAttentionOp(Function):
    """softmax(scale q k^T + mask) (dropped out) @ v;  the backward in the module docstring:
    dS = P * (dP - rowsum(dP * P)),  dq = scale dS k,  dk = scale dS^T q,  dv = A^T dO.

    ``attn_mask``: None, bool (True: the key takes part) or float (added to the scores; it
    gets dS as its gradient). ``dropout_mask``: None or the bool keep mask of the attention
    weights, drawn by the caller (``scaled_dot_product_attention``) so a test can hand the
    same one to PyTorch; ``dropout_scale`` is 1 / (1 - p). A row whose keys are all masked
    gives 0 and no gradient, as PyTorch's does, instead of 0/0.
    """

    name = _OP

    @staticmethod
    def forward(ctx: Context, query: np.ndarray, key: np.ndarray, value: np.ndarray,
                attn_mask: np.ndarray | None = None, dropout_mask: np.ndarray | None = None,
                scale: float | None = None, is_causal: bool = False,
                dropout_scale: float = 1.0) -> np.ndarray:
        return _attend(ctx, query, key, value, attn_mask, dropout_mask, scale, is_causal,
                       dropout_scale)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return (*_attend_backward(ctx, grad, *ctx.needs_input_grad[:4]), None)


def _attend(ctx: Context, query: np.ndarray, key: np.ndarray, value: np.ndarray,
            attn_mask: np.ndarray | None, dropout_mask: np.ndarray | None,
            scale: float | None, is_causal: bool, dropout_scale: float,
            out: np.ndarray | None = None) -> np.ndarray:
    """The forward of the module docstring, keeping on ``ctx`` what the backward needs;
    the output written into ``out`` where given."""
    shape = _check_inputs(query, key, value)
    dtype = query.dtype
    if scale is None:
        scale = 1 / math.sqrt(query.shape[-1]) if query.shape[-1] else 1.0
    # The scores transposed, keys by queries (S, L): kernels.softmax_columns says why.
    scores = kernels.matmul(key, _mT(query))
    if is_causal and attn_mask is not None:
        raise ValueError(f"{_OP}: give attn_mask or is_causal=True, not both (PyTorch "
                         "refuses both too); fold the causal mask into attn_mask")
    if attn_mask is not None:
        _check_mask("attn_mask", attn_mask, shape)
        scores *= dtype.type(scale)
        if attn_mask.dtype == np.bool_:
            np.copyto(scores, -np.inf, where=~_keys_first(attn_mask))
        elif attn_mask.dtype == dtype:
            scores += _keys_first(attn_mask)
        else:
            raise TypeError(f"{_OP}: attn_mask must be bool or of the query's dtype "
                            f"{dtype}, got {attn_mask.dtype}")
    # softmax over the keys in place (shifted by the max, so exp cannot overflow; a query
    # with every key masked gets 0s, as in PyTorch, instead of 0/0)
    probs = kernels.softmax_columns(scores, 1.0 if attn_mask is not None else scale,
                                    is_causal)
    weights = probs
    keep = None
    if dropout_mask is not None:
        if dropout_mask.dtype != np.bool_:
            raise TypeError(f"{_OP}: dropout_mask must be a boolean array (True: kept), "
                            f"got {dropout_mask.dtype}")
        _check_mask("dropout_mask", dropout_mask, shape)
        keep = _keys_first(dropout_mask) * dtype.type(dropout_scale)
        weights = probs * keep
    # probs, keep and weights are (..., S, L), as the scores
    ctx.query, ctx.key, ctx.value, ctx.probs, ctx.keep = query, key, value, probs, keep
    ctx.weights, ctx.scale = weights, scale
    ctx.mask_shape = attn_mask.shape if attn_mask is not None else None
    return kernels.matmul(_mT(weights), value, out=out)


def _attend_backward(ctx: Context, grad: np.ndarray, need_q: bool, need_k: bool,
                     need_v: bool, need_mask: bool, into: tuple | None = None) -> tuple:
    """(dq, dk, dv, d mask) of the module docstring, each None where not needed; dq, dk
    and dv written into the three arrays ``into`` where given (no broadcasting then)."""
    query, key, value, probs = ctx.query, ctx.key, ctx.value, ctx.probs
    into_q, into_k, into_v = into if into is not None else (None, None, None)
    grad_v = grad_q = grad_k = grad_mask = None
    if need_v:
        grad_v = backend.unbroadcast(kernels.matmul(ctx.weights, grad, out=into_v),
                                     value.shape)
    if need_q or need_k or need_mask:
        grad_p = kernels.matmul(value, _mT(grad))  # dP transposed, as the scores
        if ctx.keep is not None:
            grad_p *= ctx.keep
        # dS = P * (dP - colsum(dP * P)) in place on dP's array, times the scale unless
        # the mask needs dS itself: then dq and dk take the scale afterwards
        fold = not need_mask
        scale = query.dtype.type(ctx.scale)
        grad_s = kernels.softmax_columns_grad(grad_p, probs, scale if fold else 1.0)
        if need_q:
            grad_q = kernels.matmul(_mT(grad_s), key, out=into_q)
            if not fold:
                grad_q *= scale
            grad_q = backend.unbroadcast(grad_q, query.shape)
        if need_k:
            grad_k = kernels.matmul(grad_s, query, out=into_k)
            if not fold:
                grad_k *= scale
            grad_k = backend.unbroadcast(grad_k, key.shape)
        if need_mask:
            grad_mask = backend.unbroadcast(_mT(grad_s), ctx.mask_shape)
    return grad_q, grad_k, grad_v, grad_mask


_PACKED = "self_attention"


def _heads(packed: np.ndarray, n_head: int) -> tuple[np.ndarray, tuple[int, ...]]:
    """(..., T, 3C) as the (..., T, 3, H, D) view of its queries, keys and values."""
    if packed.ndim < 2 or packed.shape[-1] % 3 or (packed.shape[-1] // 3) % n_head:
        raise ValueError(f"{_PACKED}: qkv must be (..., T, 3 * C) with C divisible by "
                         f"n_head ({n_head}): queries, keys and values side by side on the "
                         f"last axis, each split into n_head heads; got shape {packed.shape}")
    if packed.dtype.kind != "f":
        raise TypeError(f"{_PACKED}: qkv must be floating, got {packed.dtype}")
    *lead, t, three_c = packed.shape
    dim = three_c // 3 // n_head
    return packed.reshape(*lead, t, 3, n_head, dim), (*lead, n_head, t, t)


class SelfAttentionOp(Function):
    """Self-attention of packed projections, heads split and merged inside: for qkv
    (..., T, 3C) holding [queries | keys | values], each C wide and cut into H heads of D =
    C / H features (torch.nn.MultiheadAttention's in-projection layout, nanoGPT's c_attn),

        out = merge_heads(scaled_dot_product_attention(q, k, v)),   (..., T, C)

    and d qkv = [dq | dk | dv] with the heads merged back the same way. The maths is
    ScaledDotProductAttentionOp's (its backward, unchanged, runs inside); as one node it
    replaces the reshape, permute, three getitems, transpose and reshape a head split and
    merge would put on the tape, and their gradients' zero-filled copies and sums.
    """

    name = _PACKED

    @staticmethod
    def forward(ctx: Context, qkv: np.ndarray, dropout_mask: np.ndarray | None = None,
                n_head: int = 1, scale: float | None = None, is_causal: bool = False,
                dropout_scale: float = 1.0) -> np.ndarray:
        heads, _ = _heads(qkv, n_head)
        # (..., T, H, D) -> (..., H, T, D): views into qkv, no copy
        q, k, v = (np.swapaxes(heads[..., i, :, :], -3, -2) for i in range(3))
        # the heads' outputs go straight into their merged (..., T, H, D) places
        merged = np.empty(heads.shape[:-3] + heads.shape[-2:], qkv.dtype)
        _attend(ctx, q, k, v, None, dropout_mask, scale, is_causal, dropout_scale,
                out=np.swapaxes(merged, -3, -2))
        ctx.heads_shape = heads.shape
        return merged.reshape(qkv.shape[:-1] + (qkv.shape[-1] // 3,))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        shape = ctx.heads_shape  # (..., T, 3, H, D)
        heads_grad = np.swapaxes(grad.reshape(shape[:-3] + shape[-2:]), -3, -2)
        packed = np.empty(shape, grad.dtype)  # dq, dk, dv written into their places
        into = tuple(np.swapaxes(packed[..., i, :, :], -3, -2) for i in range(3))
        grads = _attend_backward(ctx, heads_grad, True, True, True, False, into)[:3]
        for place, g in zip(into, grads):
            if g is not place:  # a kernels.matmul that returned a new array (a backend's)
                np.copyto(place, g)
        return packed.reshape(shape[:-3] + (-1,)), None


def _operand(value: Any, name: str) -> Any:
    """A tensor stays as it is (the op checks its dtype); anything else becomes an array."""
    return value if isinstance(value, Tensor) else _as_data(value, where=f"{_OP} {name}")


def scaled_dot_product_attention(query: Any, key: Any, value: Any, attn_mask: Any = None,
                                 dropout_p: float = 0.0, is_causal: bool = False,
                                 scale: float | None = None, enable_gqa: bool = False, *,
                                 generator: np.random.Generator | None = None) -> Tensor:
    """softmax(query @ key^T * scale + mask) @ value, as torch.nn.functional's (one op)."""
    dropout_p = validate.real(_OP, "dropout_p", dropout_p, 0, 1)
    is_causal = validate.boolean(_OP, "is_causal", is_causal)
    scale = validate.real(_OP, "scale", scale, optional=True)
    if validate.boolean(_OP, "enable_gqa", enable_gqa):
        raise ValueError(f"{_OP}: enable_gqa=True is not supported; repeat key and value "
                         "along the head axis (repeat_interleave) to the query's head count")
    generator = validate.generator(_OP, "generator", generator)
    query, key, value = (_operand(query, "query"), _operand(key, "key"),
                         _operand(value, "value"))
    if attn_mask is not None:
        attn_mask = _operand(attn_mask, "attn_mask")
        kind = attn_mask.dtype.kind
        if kind == "f" and attn_mask.dtype != query.dtype and query.dtype.kind == "f":
            # PyTorch adds a float mask of another precision in the query's dtype.
            attn_mask = (CastOp.apply(attn_mask, dtype=query.dtype)
                         if isinstance(attn_mask, Tensor)
                         else attn_mask.astype(query.dtype))
        elif kind not in "bf":
            raise TypeError(f"{_OP}: attn_mask must be bool (True: the key takes part) or "
                            f"floating (added to the scores), got {attn_mask.dtype}")
    dropout_mask = None
    if dropout_p:
        q, k, v = (x.data if isinstance(x, Tensor) else x for x in (query, key, value))
        shape = _check_inputs(q, k, v)
        rng = generator if generator is not None else backend.default_generator()
        dropout_mask = rng.random(shape) >= dropout_p  # kept with probability 1 - p
    return ScaledDotProductAttentionOp.apply(
        query, key, value, attn_mask, dropout_mask, scale=scale, is_causal=is_causal,
        dropout_scale=0.0 if dropout_p == 1 else 1 / (1 - dropout_p))


def self_attention(qkv: Any, n_head: int, dropout_p: float = 0.0, is_causal: bool = False,
                   scale: float | None = None, *,
                   generator: np.random.Generator | None = None) -> Tensor:
    """Multi-head self-attention of packed projections qkv (..., T, 3C): [q | k | v], each cut
    into ``n_head`` heads, attended as scaled_dot_product_attention and merged to (..., T, C)."""
    n_head = validate.integer(_PACKED, "n_head", n_head, low=1)
    dropout_p = validate.real(_PACKED, "dropout_p", dropout_p, 0, 1)
    is_causal = validate.boolean(_PACKED, "is_causal", is_causal)
    scale = validate.real(_PACKED, "scale", scale, optional=True)
    generator = validate.generator(_PACKED, "generator", generator)
    qkv = _operand(qkv, "qkv")
    _, scores = _heads(qkv.data if isinstance(qkv, Tensor) else qkv, n_head)
    dropout_mask = None
    if dropout_p:
        rng = generator if generator is not None else backend.default_generator()
        dropout_mask = rng.random(scores) >= dropout_p  # as scaled_dot_product_attention's
    return SelfAttentionOp.apply(qkv, dropout_mask, n_head=n_head, scale=scale,
                                 is_causal=is_causal,
                                 dropout_scale=0.0 if dropout_p == 1 else 1 / (1 - dropout_p))
