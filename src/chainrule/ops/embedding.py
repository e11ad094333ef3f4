"""Embedding lookup and the bilinear form: the ops behind nn.Embedding and nn.Bilinear."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import kernels, validate
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor


class EmbeddingOp(Function):
    """out = weight[indices] (the rows, one per index);  d/d weight = the gradients of the
    output rows added into the rows they came from (an index seen twice gets both), the
    ``padding_idx`` row none; with ``scale_grad_by_freq`` each row's sum is divided by how
    often its index occurs in the batch."""

    name = "embedding"

    @staticmethod
    def forward(ctx: Context, indices: np.ndarray, weight: np.ndarray,
                padding_idx: int | None = None, scale_grad_by_freq: bool = False
                ) -> np.ndarray:
        op = "embedding"
        if weight.ndim != 2:
            raise ValueError(f"{op}: weight must be a (num_embeddings, embedding_dim) matrix, "
                             f"got shape {weight.shape}")
        if indices.dtype.kind not in "iu":
            raise TypeError(f"{op}: indices must be integers, got {indices.dtype}")
        rows = weight.shape[0]
        flat = indices.reshape(-1)
        if flat.size and (flat.min() < 0 or flat.max() >= rows):
            bad = flat[(flat < 0) | (flat >= rows)][0]
            raise IndexError(f"{op}: index {bad} is out of range for {rows} embeddings "
                             f"(valid: 0 to {rows - 1})")
        if padding_idx is not None:
            padding_idx = validate.integer(op, "padding_idx", padding_idx, -rows, rows - 1)
            padding_idx %= rows
        ctx.flat, ctx.shape, ctx.padding_idx = flat, weight.shape, padding_idx
        ctx.scale_grad_by_freq = scale_grad_by_freq
        return weight[indices]

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        if not ctx.needs_input_grad[1]:
            return None, None
        rows, dim = ctx.shape
        grads = grad.reshape(-1, dim)
        if ctx.scale_grad_by_freq:
            counts = np.bincount(ctx.flat, minlength=rows)
            grads = grads / counts[ctx.flat, None]
        grad_weight = np.zeros(ctx.shape, grad.dtype)
        kernels.scatter_add_rows(grad_weight, ctx.flat, grads)
        if ctx.padding_idx is not None:
            grad_weight[ctx.padding_idx] = 0
        return None, grad_weight


class BilinearOp(Function):
    """out[..., o] = x1[..., i] W[o, i, j] x2[..., j] + b[o];
      d/d x1 = grad W x2,  d/d x2 = grad W^T x1 (over o and the other input's axis),
      d/d W[o, i, j] = sum over the leading axes of grad_o x1_i x2_j,  d/d b = sum(grad)"""

    name = "bilinear"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x1: np.ndarray, x2: np.ndarray, weight: np.ndarray,
                bias: np.ndarray | None = None) -> np.ndarray:
        op = "bilinear"
        if weight.ndim != 3:
            raise ValueError(f"{op}: weight must be (out_features, in1_features, "
                             f"in2_features), got shape {weight.shape}")
        if x1.ndim == 0 or x1.shape[:-1] != x2.shape[:-1] or x1.shape[-1:] != weight.shape[1:2] \
                or x2.shape[-1:] != weight.shape[2:]:
            raise ValueError(f"{op}: inputs (..., {weight.shape[1]}) and (..., "
                             f"{weight.shape[2]}) with the same leading axes are needed for "
                             f"weight {weight.shape}, got {x1.shape} and {x2.shape}")
        if bias is not None and bias.shape != weight.shape[:1]:
            raise ValueError(f"{op}: bias must have shape {weight.shape[:1]}, got {bias.shape}")
        # x1 W first, (..., o, j), then against x2: two products instead of a 3-way einsum
        left = np.einsum("...i,oij->...oj", x1, weight, optimize=True)
        out = np.einsum("...oj,...j->...o", left, x2, optimize=True)
        if bias is not None:
            out = out + bias
        ctx.save_for_backward(x1, x2, weight, left)
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        x1, x2, weight, left = ctx.saved_tensors
        need_x1, need_x2, need_weight, need_bias = ctx.needs_input_grad
        grad_x1 = grad_x2 = grad_weight = grad_bias = None
        if need_x1:
            right = np.einsum("oij,...j->...oi", weight, x2, optimize=True)
            grad_x1 = np.einsum("...o,...oi->...i", grad, right, optimize=True)
        if need_x2:
            grad_x2 = np.einsum("...o,...oj->...j", grad, left, optimize=True)
        if need_weight:
            g = grad.reshape(-1, grad.shape[-1])
            a, b = x1.reshape(-1, x1.shape[-1]), x2.reshape(-1, x2.shape[-1])
            grad_weight = np.einsum("no,ni,nj->oij", g, a, b, optimize=True)
        if need_bias:
            grad_bias = grad.reshape(-1, grad.shape[-1]).sum(axis=0)
        return grad_x1, grad_x2, grad_weight, grad_bias


def _indices(value: Any) -> np.ndarray:
    data = value.data if isinstance(value, Tensor) else np.asarray(value)
    if data.dtype.kind not in "iu":
        raise TypeError(f"embedding: input must hold integer indices, got {data.dtype}")
    return data


def embedding(input: Any, weight: Any, padding_idx: int | None = None,
              max_norm: float | None = None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """Rows of ``weight`` at the integer indices ``input`` (PyTorch's F.embedding)."""
    op = "embedding"
    if max_norm is not None:
        raise ValueError(f"{op}: max_norm is not supported (it rescales weight in place "
                         "during forward); renormalise the weight yourself")
    validate.real(op, "norm_type", norm_type, finite=False)
    if validate.boolean(op, "sparse", sparse):
        raise ValueError(f"{op}: sparse=True is not supported: chainrule's gradients are dense")
    scale_grad_by_freq = validate.boolean(op, "scale_grad_by_freq", scale_grad_by_freq)
    padding_idx = validate.integer(op, "padding_idx", padding_idx, optional=True)
    return EmbeddingOp.apply(_indices(input), weight, padding_idx=padding_idx,
                             scale_grad_by_freq=scale_grad_by_freq)


def bilinear(input1: Any, input2: Any, weight: Any, bias: Any = None) -> Tensor:
    """x1 W x2 + b for each pair of rows (PyTorch's F.bilinear)."""
    return BilinearOp.apply(input1, input2, weight, bias)
