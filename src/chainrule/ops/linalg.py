"""Matrix products: matmul (1-D, 2-D, batched), the fused linear layer x @ W.T + b, einsum,
and the PyTorch forms over matmul: dot, mv, bmm, addmm, baddbmm, outer.

Every product goes through kernels.matmul, which runs the small ones on one BLAS thread.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule import kernels
from chainrule.engine.function import Context, DtypeMismatchError, Function
from chainrule.engine.tensor import Tensor
from chainrule.ops import elementwise as _elementwise
from chainrule.ops import shape as _shape
from chainrule.ops.sort import as_tensor
from chainrule.validate import real


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


#: A bias gradient over at least this many elements is summed by BLAS.
_BLAS_COLUMN_SUMS = 1 << 16


def _linear_forward(ctx: Context, x: np.ndarray, weight: np.ndarray,
                    bias: np.ndarray | None, op: str = "linear") -> np.ndarray:
    if weight.ndim != 2 or x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"{op}: input of shape {x.shape} does not fit weight of shape {weight.shape} "
            f"(out_features, in_features): the input's last axis must be {weight.shape[-1]}"
        )
    ctx.x, ctx.weight = x, weight
    if x.ndim > 2:
        # One (rows, in) @ (in, out) product: NumPy would run a product per leading index,
        # each too small to keep BLAS busy (a GPT's (B, T, C) activations ran at half speed).
        out = kernels.matmul(x.reshape(-1, x.shape[-1]), weight.T).reshape(
            x.shape[:-1] + (weight.shape[0],))
    else:
        out = kernels.matmul(x, weight.T)
    if bias is not None:
        if bias.dtype == out.dtype:
            kernels.add_bias(out, bias)  # in place: out is a fresh array
        else:
            out = out + bias
    return out


def _linear_backward(ctx: Context, grad: np.ndarray) -> tuple:
    x, weight = ctx.x, ctx.weight
    need_x, need_w, need_b = ctx.needs_input_grad
    shape = grad.shape
    if grad.ndim != 2:  # leading axes (or none): they all count as the batch, in one product
        grad, x = grad.reshape(-1, grad.shape[-1]), x.reshape(-1, x.shape[-1])
    grad_x = kernels.matmul(grad, weight) if need_x else None
    if grad_x is not None and len(shape) != 2:
        grad_x = grad_x.reshape(shape[:-1] + (weight.shape[1],))
    grad_w = kernels.matmul(grad.T, x) if need_w else None
    grad_b = None
    if need_b:
        # Small: the ufunc's reduce itself (ndarray.sum's wrapper costs more than the sum);
        # large: one BLAS product with a row of ones, on every core.
        grad_b = (kernels.column_sums(grad) if grad.size >= _BLAS_COLUMN_SUMS
                  else np.add.reduce(grad, axis=0))
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


class LinearGeluOp(Function):
    """gelu(x @ W.T + b), GELU in its tanh form: a Linear and the GELU after it, one node.

    With h = x @ W.T + b: d/dh = grad * gelu'(h) (GeluOp's slope), and from d/dh on it is
    LinearOp's backward, d/db the column sums of d/dh. In float32 the bias and the GELU are
    one compiled pass (kernels.bias_gelu), and d/dh and d/db another (bias_gelu_grad): a
    GPT's MLP saves a pass over its widest activation each way. h is kept for the backward.
    """

    name = "linear_gelu"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, x: np.ndarray, weight: np.ndarray,
                bias: np.ndarray | None = None) -> np.ndarray:
        fused = bias is not None and bias.dtype == x.dtype
        pre = _linear_forward(ctx, x, weight, None if fused else bias, "linear_gelu")
        rows = pre.reshape(-1, pre.shape[-1])
        ctx.fused, ctx.pre = fused, pre
        out = kernels.bias_gelu(rows, bias) if fused else kernels.gelu(rows, "tanh")
        return out.reshape(pre.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        pre = ctx.pre
        rows = pre.reshape(-1, pre.shape[-1])
        grads = np.ascontiguousarray(grad).reshape(rows.shape)
        if ctx.fused:
            dpre, grad_b = kernels.bias_gelu_grad(grads, rows)
        else:
            dpre, grad_b = kernels.gelu_grad(rows, grads, "tanh"), None
        x, weight = ctx.x, ctx.weight
        need_x, need_w, need_b = ctx.needs_input_grad
        grad_x = (kernels.matmul(dpre, weight).reshape(x.shape[:-1] + (weight.shape[1],))
                  if need_x else None)
        grad_w = kernels.matmul(dpre.T, x.reshape(-1, x.shape[-1])) if need_w else None
        if need_b and grad_b is None:  # a bias of another dtype: the plain sums
            grad_b = np.add.reduce(dpre, axis=0)
        return grad_x, grad_w, grad_b if need_b else None


def matmul(a: Any, b: Any) -> Tensor:
    """Matrix product with NumPy's rules for 1-D and batched operands."""
    return MatMulOp.apply(a, b)


def linear(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """x @ weight.T + bias, with weight of shape (out_features, in_features)."""
    return LinearOp.apply(x, weight, bias)


def linear_gelu(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """gelu(x @ weight.T + bias, approximate='tanh') in one op, fused."""
    return LinearGeluOp.apply(x, weight, bias)


def linear_relu(x: Any, weight: Any, bias: Any = None) -> Tensor:
    """relu(x @ weight.T + bias) in one op: ``relu(linear(x, weight, bias))``, fused."""
    return LinearReluOp.apply(x, weight, bias)


# ----------------------------------------------------------------------------- einsum
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def _parse_term(term: str, where: str) -> tuple[list[str], bool]:
    """The labels of one subscript term, with '...' kept as one '.' entry."""
    if term.count("...") > 1 or term.replace("...", "").count("."):
        raise ValueError(f"einsum: {where} {term!r} may hold one '...' and no other '.'")
    labels: list[str] = []
    rest = term.replace("...", ".")
    for char in rest:
        if char != "." and char not in _LETTERS:
            raise ValueError(f"einsum: {where} {term!r} holds {char!r}; subscripts are the "
                             "letters a-z and A-Z, and '...'")
        labels.append(char)
    return labels, "." in labels


def _parse_equation(equation: str, shapes: list[tuple[int, ...]]
                    ) -> tuple[list[list[str]], list[str], dict[str, int]]:
    """Each operand's labels and the output's, '...' replaced by letters the equation does not
    use (aligned from the right, as broadcasting aligns), and each label's broadcast size."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(shapes):
        raise ValueError(f"einsum: the equation {equation!r} has {len(terms)} operand "
                         f"term{'s' if len(terms) != 1 else ''} but {len(shapes)} operand"
                         f"{'s were' if len(shapes) != 1 else ' was'} given")
    parsed = [_parse_term(term, f"operand {i}'s subscripts") for i, term in enumerate(terms)]
    spare = [c for c in _LETTERS if c not in equation]
    extra = 0
    for i, ((labels, ellipsis), shape) in enumerate(zip(parsed, shapes)):
        named = len(labels) - ellipsis
        if len(shape) < named or (not ellipsis and len(shape) != named):
            raise ValueError(f"einsum: operand {i} has {len(shape)} dims but its subscripts "
                             f"{terms[i]!r} name {named}"
                             f"{' and no ... was given' if not ellipsis else ''}")
        extra = max(extra, len(shape) - named)
    if extra > len(spare):
        raise ValueError("einsum: too many dims under '...' for the letters left over")
    broadcast = spare[:extra]
    full: list[list[str]] = []
    for (labels, ellipsis), shape in zip(parsed, shapes):
        own = len(shape) - (len(labels) - ellipsis)
        full.append([x for label in labels
                     for x in (broadcast[extra - own:] if label == "." else [label])])
    sizes: dict[str, int] = {}
    for i, (labels, shape) in enumerate(zip(full, shapes)):
        seen: dict[str, int] = {}
        for label, size in zip(labels, shape):
            if seen.setdefault(label, size) != size:
                raise ValueError(f"einsum: subscript {label} is repeated in operand {i} with "
                                 f"different sizes, {seen[label]} and {size}")
            known = sizes.setdefault(label, size)
            if known != size and 1 not in (known, size):
                raise ValueError(f"einsum: subscript {label} has size {known} in one operand "
                                 f"and {size} in operand {i}; sizes must match or be 1")
            sizes[label] = max(known, size)
    if arrow:
        out_labels, ellipsis = _parse_term(rhs, "the output subscripts")
        out = [x for label in out_labels for x in (broadcast if label == "." else [label])]
        for label in out:
            if out.count(label) > 1:
                raise ValueError(f"einsum: output subscript {label} appears more than once")
            if label not in sizes:
                raise ValueError(f"einsum: output subscript {label} is in no operand's "
                                 "subscripts")
    else:  # implicit: '...' first, then the letters used once, in alphabetical (ASCII) order
        letters = [x for labels, _ in parsed for x in labels if x != "."]
        out = broadcast + sorted(c for c in set(letters) if letters.count(c) == 1)
    return full, out, sizes


def _einsum(terms: list[list[str]], out: list[str], arrays: list[np.ndarray]) -> np.ndarray:
    spec = ",".join("".join(t) for t in terms) + "->" + "".join(out)
    return np.einsum(spec, *arrays, optimize=len(arrays) > 1)


class EinsumOp(Function):
    """Einstein summation;  the gradient of each operand is itself an einsum

    out[o] = sum over the other labels of prod_k a_k[t_k]. For operand i, d/da_i[t_i] =
    einsum(the other operands and grad -> t_i): each term of the sum that a_i[t_i] appears in,
    with a_i taken out. Three cases need more than that one einsum. A label only operand i
    has (summed away) appears nowhere else: the gradient does not depend on it, so it is
    broadcast along it. A label repeated in t_i ('ii') names a diagonal: the gradient is the
    einsum over the distinct labels, written onto that diagonal, zeros elsewhere. An axis of
    size 1 that broadcast against a larger one gets the sum over that axis.
    """

    same_dtype = True

    @staticmethod
    def forward(ctx: Context, *operands: np.ndarray, equation: str = "") -> np.ndarray:
        terms, out, sizes = _parse_equation(equation, [a.shape for a in operands])
        views = [np.broadcast_to(a, [sizes[x] for x in t]) for a, t in zip(operands, terms)]
        ctx.terms, ctx.out, ctx.sizes, ctx.views = terms, out, sizes, views
        ctx.own_shapes = [a.shape for a in operands]
        result = np.asarray(_einsum(terms, out, views))
        # einsum may hand back a view of an operand ('ij->ji', 'ii->i'): an op output is new.
        if any(np.may_share_memory(result, a) for a in operands):
            result = result.copy()
        return result

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return tuple(_einsum_grad(ctx, i, grad) if need else None
                     for i, need in enumerate(ctx.needs_input_grad))


def _einsum_grad(ctx: Context, i: int, grad: np.ndarray) -> np.ndarray:
    terms, sizes = ctx.terms, ctx.sizes
    term = terms[i]
    others = [t for j, t in enumerate(terms) if j != i] + [ctx.out]
    arrays = [v for j, v in enumerate(ctx.views) if j != i] + [grad]
    present = {x for t in others for x in t}
    distinct = list(dict.fromkeys(term))
    kept = [x for x in distinct if x in present]
    g = _einsum(others, kept, arrays)
    # Labels only this operand has: the gradient is constant along them.
    g = np.broadcast_to(g.reshape([sizes[x] if x in present else 1 for x in distinct]),
                        [sizes[x] for x in distinct])
    own = dict(zip(term, ctx.own_shapes[i]))
    stretched = tuple(k for k, x in enumerate(distinct) if own[x] == 1 and sizes[x] != 1)
    if stretched:
        g = g.sum(axis=stretched, keepdims=True)
    if len(distinct) == len(term):
        return g
    # Repeated labels: write g onto the diagonal they name, through a strided view.
    result = np.zeros(ctx.own_shapes[i], grad.dtype)
    strides = [sum(result.strides[k] for k, y in enumerate(term) if y == x) for x in distinct]
    np.lib.stride_tricks.as_strided(result, g.shape, strides)[...] = g
    return result



def einsum(equation: str, *operands: Any) -> Tensor:
    """Einstein summation: ``einsum('ij,jk->ik', a, b)`` or ``einsum('ij,jk', [a, b])``."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum: the first argument must be the equation string, got "
                        f"{type(equation).__name__}; the sublist form einsum(a, [0, 1], ...) "
                        "is not supported, write einsum('ij,jk->ik', a, b)")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum: give at least one operand")
    tensors = [as_tensor(a, "einsum") for a in operands]
    return EinsumOp.apply(*tensors, equation=equation)


def _need_dims(op: str, name: str, x: Tensor, ndim: int) -> None:
    if x.ndim != ndim:
        raise ValueError(f"{op}: {name} must be {ndim}-D, got shape {x.shape}"
                         + ("; use matmul for batched or broadcast products" if ndim > 1
                            else ""))


def _same_dtype(op: str, a: Tensor, b: Tensor) -> None:
    if a.dtype != b.dtype:
        raise DtypeMismatchError(f"{op}: input 0 is {a.dtype} but input 1 is {b.dtype}; {op} "
                                 "needs one dtype, as in PyTorch: convert one (x.astype(...))")


def outer(a: Any, b: Any) -> Tensor:
    """Outer product of two 1-D tensors: out[i, j] = a[i] * b[j]."""
    a, b = as_tensor(a, "outer"), as_tensor(b, "outer")
    _need_dims("outer", "input", a, 1)
    _need_dims("outer", "vec2", b, 1)
    return _elementwise.mul(_shape.reshape(a, (-1, 1)), _shape.reshape(b, (1, -1)))


def dot(a: Any, b: Any) -> Tensor:
    """Inner product of two 1-D tensors of one size and dtype."""
    a, b = as_tensor(a, "dot"), as_tensor(b, "dot")
    _need_dims("dot", "input", a, 1)
    _need_dims("dot", "tensor", b, 1)
    _same_dtype("dot", a, b)
    if a.shape != b.shape:
        raise ValueError(f"dot: the vectors have {a.shape[0]} and {b.shape[0]} elements; "
                         "they must have the same number")
    return MatMulOp.apply(a, b)


def mv(mat: Any, vec: Any) -> Tensor:
    """Matrix-vector product of a 2-D and a 1-D tensor."""
    mat, vec = as_tensor(mat, "mv"), as_tensor(vec, "mv")
    _need_dims("mv", "input", mat, 2)
    _need_dims("mv", "vec", vec, 1)
    _same_dtype("mv", mat, vec)
    if mat.shape[1] != vec.shape[0]:
        raise ValueError(f"mv: matrix of shape {mat.shape} and vector of shape {vec.shape} "
                         f"do not align: the vector needs {mat.shape[1]} elements")
    return MatMulOp.apply(mat, vec)


def bmm(a: Any, b: Any) -> Tensor:
    """Batched matrix product of (b, n, m) and (b, m, p) tensors (no broadcasting)."""
    a, b = as_tensor(a, "bmm"), as_tensor(b, "bmm")
    _check_bmm("bmm", a, b)
    return MatMulOp.apply(a, b)


def _check_bmm(op: str, a: Tensor, b: Tensor) -> None:
    _need_dims(op, "batch1" if op == "baddbmm" else "input", a, 3)
    _need_dims(op, "batch2" if op == "baddbmm" else "mat2", b, 3)
    _same_dtype(op, a, b)
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise ValueError(f"{op}: shapes {a.shape} and {b.shape} do not fit (b, n, m) and "
                         f"(b, m, p): the batch sizes must be equal and the first's last "
                         f"axis ({a.shape[2]}) must equal the second's middle one; "
                         "matmul broadcasts batches, bmm does not")


def _check_mm(op: str, a: Tensor, b: Tensor) -> None:
    _need_dims(op, "mat1", a, 2)
    _need_dims(op, "mat2", b, 2)
    _same_dtype(op, a, b)
    if a.shape[1] != b.shape[0]:
        raise ValueError(f"{op}: mat1 of shape {a.shape} and mat2 of shape {b.shape} do not "
                         f"align: mat2 needs {a.shape[1]} rows")


def _scaled_sum(op: str, x: Any, product: Tensor, beta: Any, alpha: Any) -> Tensor:
    """beta * x + alpha * product, with x ignored (NaN too) at beta = 0, as in PyTorch."""
    beta, alpha = real(op, "beta", beta), real(op, "alpha", alpha)
    x = as_tensor(x, op)
    if x.dtype != product.dtype:
        raise DtypeMismatchError(f"{op}: input is {x.dtype} but the matrices are "
                                 f"{product.dtype}; {op} needs one dtype, as in PyTorch")
    try:
        np.broadcast_shapes(x.shape, product.shape)
    except ValueError:
        raise ValueError(f"{op}: input of shape {x.shape} does not broadcast to the "
                         f"product's shape {product.shape}") from None
    if np.broadcast_shapes(x.shape, product.shape) != product.shape:
        raise ValueError(f"{op}: input of shape {x.shape} does not broadcast to the "
                         f"product's shape {product.shape}")
    if product.dtype.kind in "iub":  # integer matrices take integer factors, as in PyTorch
        for name, number in (("beta", beta), ("alpha", alpha)):
            if not number.is_integer():
                raise TypeError(f"{op}: {name} must be an int for {product.dtype} tensors, got "
                                f"{number!r}")
        beta, alpha = int(beta), int(alpha)
    if alpha != 1:
        product = _elementwise.mul(product, alpha)
    if beta == 0:
        if x.requires_grad:  # input still gets its (zero) gradient, as in PyTorch; NaN too
            return _elementwise.add(product, _shape.masked_fill(x, np.True_, 0))
        return product
    return _elementwise.add(x if beta == 1 else _elementwise.mul(x, beta), product)


def baddbmm(input: Any, batch1: Any, batch2: Any, *, beta: float = 1,  # noqa: A002
            alpha: float = 1) -> Tensor:
    """beta * input + alpha * bmm(batch1, batch2); input broadcasts to (b, n, p)."""
    a, b = as_tensor(batch1, "baddbmm"), as_tensor(batch2, "baddbmm")
    _check_bmm("baddbmm", a, b)
    return _scaled_sum("baddbmm", input, MatMulOp.apply(a, b), beta, alpha)


def addmm(input: Any, mat1: Any, mat2: Any, *, beta: float = 1,  # noqa: A002
          alpha: float = 1) -> Tensor:
    """beta * input + alpha * (mat1 @ mat2); input broadcasts to (n, p)."""
    a, b = as_tensor(mat1, "addmm"), as_tensor(mat2, "addmm")
    _check_mm("addmm", a, b)
    return _scaled_sum("addmm", input, MatMulOp.apply(a, b), beta, alpha)
