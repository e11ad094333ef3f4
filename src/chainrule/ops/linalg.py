"""Matrix products: matmul (1-D, 2-D, batched) and the fused linear layer x @ W.T + b.

Every product goes through kernels.matmul, which runs the small ones on one BLAS thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import kernels
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor


def _mT(a: np.ndarray) -> np.ndarray:  # noqa: N802 - the usual name for a matrix transpose
    return np.swapaxes(a, -1, -2)


class MatMulOp(Function):
    """a @ b;  d/da = grad @ b^T,  d/db = a^T @ grad  (the seed's lin_grad)

    A 1-D operand is a row (left) or column (right) vector, as in NumPy. Batch axes broadcast,
    and the engine sums the gradient over the axes an operand was broadcast along.
    """

    same_dtype = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if a.ndim == 0 or b.ndim == 0:
            raise ValueError(f"matmul: operands must have at least 1 dim, got shapes "
                             f"{a.shape} and {b.shape}; use * for scalars")
        if a.shape[-1] != b.shape[-2 if b.ndim > 1 else 0]:
            raise ValueError(
                f"matmul: shapes {a.shape} and {b.shape} do not align: the last axis of the "
                f"first ({a.shape[-1]}) must equal the "
                f"{'second-to-last' if b.ndim > 1 else 'only'} axis of the second"
            )
        ctx.a, ctx.b = a, b
        return kernels.matmul(a, b)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        a, b = ctx.a, ctx.b
        need_a, need_b = ctx.needs_input_grad
        if a.ndim == 1 and b.ndim == 1:
            return (grad * b if need_a else None), (grad * a if need_b else None)
        # Treat vectors as matrices with a size-1 axis, then drop that axis again.
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = grad
        if a.ndim == 1:
            g2 = np.expand_dims(g2, -2)
        if b.ndim == 1:
            g2 = np.expand_dims(g2, -1)
        grad_a = grad_b = None
        if need_a:
            grad_a = kernels.matmul(g2, _mT(b2))
            if a.ndim == 1:
                grad_a = grad_a[..., 0, :]
        if need_b:
            grad_b = kernels.matmul(_mT(a2), g2)
            if b.ndim == 1:
                grad_b = grad_b[..., 0]
        return grad_a, grad_b


def _linear_forward(ctx: Context, x: np.ndarray, weight: np.ndarray,
                    bias: np.ndarray | None, op: str = "linear") -> np.ndarray:
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"{op}: input of shape {x.shape} does not fit weight of shape {weight.shape} "
            f"(out_features, in_features): the input's last axis must be {weight.shape[-1]}"
        )
    ctx.x, ctx.weight = x, weight
    out = kernels.matmul(x, weight.T)
    if bias is not None:
        if bias.dtype == out.dtype:
            out += bias  # in place: out is a fresh array
        else:
            out = out + bias
    return out


def _linear_backward(ctx: Context, grad: np.ndarray) -> tuple:
    x, weight = ctx.x, ctx.weight
    need_x, need_w, need_b = ctx.needs_input_grad
    grad_x = kernels.matmul(grad, weight) if need_x else None
    if grad.ndim != 2:  # leading axes: they all count as the batch
        grad, x = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
    grad_w = kernels.matmul(grad.T, x) if need_w else None
    # The ufunc's reduce itself: ndarray.sum's Python wrapper costs more than a small sum.
    grad_b = np.add.reduce(grad, axis=0) if need_b else None
    return grad_x, grad_w, grad_b


class LinearOp(Function):
    """x @ W.T + b with W stored (out_features, in_features), as in PyTorch.

    d/dx = grad @ W,   d/dW = grad^T @ x,   d/db = grad summed over all leading axes.
    Fused so that one node on the tape does what three (matmul, transpose, add) would.
    """

    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray,
                bias: np.ndarray | None = None) -> np.ndarray:
        return _linear_forward(ctx, x, weight, bias)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return _linear_backward(ctx, grad)


class LinearReluOp(Function):
    """relu(x @ W.T + b): a Linear layer and the ReLU after it, as one node on the tape.

    With h = x @ W.T + b and out = max(h, 0): d/dh = grad where out > 0, else 0 (0 at h = 0,
    as for relu), and from d/dh on it is LinearOp's backward. ``Sequential`` uses it for a
    Linear followed by a ReLU (neither with hooks): at a small network's sizes the Python
    work of one op fewer on the tape is a noticeable share of a training step.
    """

    name = "linear_relu"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray,
                bias: np.ndarray | None = None) -> np.ndarray:
        out = _linear_forward(ctx, x, weight, bias, "linear_relu")
        np.maximum(out, 0, out=out)  # out is a fresh array: the pre-activation is not needed
        ctx.out = out
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return _linear_backward(ctx, grad * (ctx.out > 0))


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's rules for 1-D and batched operands."""
    return MatMulOp.apply(a, b)


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """x @ weight.T + bias, with weight of shape (out_features, in_features)."""
    return LinearOp.apply(x, weight, bias)


def linear_relu(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """relu(x @ weight.T + bias) in one op: ``relu(linear(x, weight, bias))``, fused."""
    return LinearReluOp.apply(x, weight, bias)
