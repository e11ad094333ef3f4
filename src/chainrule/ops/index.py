"""Ops that pick or place elements by integer index: gather, scatter and their kin.

Backward sends each output element's gradient back to where the element came from; an input
element picked several times gets the sum of those gradients (np.add.at), so repeated indices
add up. Indices are checked, never wrapped: an index out of range is an IndexError, as in
PyTorch (take_along_dim alone takes negative indices, as PyTorch's does).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.ops.shape import ExpandOp, ReshapeOp, _as_tensor, _fill_value
from chainrule.validate import axis as _axis
from chainrule.validate import boolean, choice, real, torch_names


# ----------------------------------------------------------------------------- checks
def _index(op: str, index: Any, name: str = "index") -> np.ndarray:
    """An index as an integer array; bool and float indices are refused."""
    if isinstance(index, Tensor):
        index = index.data
    array = np.asarray(index)
    if array.dtype.kind not in "iu":
        raise TypeError(f"{op}: {name} must be an integer tensor, got {array.dtype}"
                        + ("; for a mask use masked_select or nonzero" if array.dtype.kind == "b"
                           else "; convert it with .long()"))
    return array


def _in_range(op: str, index: np.ndarray, size: int, axis: int, low: int = 0) -> None:
    if index.size and (index.min() < low or index.max() >= size):
        bad = index.min() if index.min() < low else index.max()
        raise IndexError(f"{op}: index {bad} is out of range for axis {axis} of size {size} "
                         f"(valid: {low} to {size - 1})")


def _same_dtype(op: str, a: np.ndarray, src: np.ndarray, name: str = "src") -> None:
    if src.dtype != a.dtype:
        raise TypeError(f"{op}: {name} is {src.dtype} but the tensor is {a.dtype}; they must "
                        f"match (PyTorch requires it too): convert {name} with .astype(...)")


def _lift(op: str, *arrays: Any) -> list[Any]:
    """A 0-d tensor's operands as 1-D ones (its index and src may be 0-d or 1-D)."""
    lifted = []
    for array in arrays:
        if isinstance(array, np.ndarray):
            if array.ndim > 1:
                raise ValueError(f"{op}: with a 0-d tensor, index and src must be 0-d or 1-D, "
                                 f"got shape {array.shape}")
            array = array.reshape(-1)
        lifted.append(array)
    return lifted


def _check_shapes(op: str, shape: tuple[int, ...], index: np.ndarray, axis: int,
                  src: np.ndarray | None = None) -> None:
    """index as PyTorch's gather and scatter take it: as many dims as the tensor, no larger
    along any axis but ``axis`` (and no larger than src anywhere)."""
    if index.ndim != len(shape):
        raise ValueError(f"{op}: index must have as many dims as the tensor ({len(shape)}), "
                         f"got index of shape {index.shape}")
    for d, n in enumerate(index.shape):
        if d != axis and n > shape[d]:
            raise ValueError(f"{op}: index of shape {index.shape} is larger than the tensor of "
                             f"shape {shape} along axis {d} (only axis {axis} may be larger)")
    if src is not None:
        if src.ndim != index.ndim or any(n > m for n, m in zip(index.shape, src.shape)):
            raise ValueError(f"{op}: index of shape {index.shape} must be no larger than src "
                             f"of shape {src.shape} along every axis")


def _grid(index: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    """The full NumPy index that picks, at each position of ``index``, the element at that
    position along every axis but ``axis``, and at ``index`` along it."""
    ndim = index.ndim
    return tuple(index if d == axis else np.arange(n).reshape((n,) + (1,) * (ndim - d - 1))
                 for d, n in enumerate(index.shape))


def _flat(shape: tuple[int, ...], index: np.ndarray, axis: int) -> np.ndarray:
    """The flat (C-order) position in ``shape`` each position of ``index`` points at."""
    return np.ravel_multi_index(_grid(index, axis), shape).reshape(-1)


def _leading(shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The part of src that index covers (src may be larger)."""
    return tuple(slice(0, n) for n in shape)


def _last_writes(targets: np.ndarray) -> np.ndarray:
    """For each write, whether it is the last one to its target (the write that lands)."""
    order = np.argsort(targets, kind="stable")
    ordered = targets[order]
    last = np.ones(targets.size, bool)
    last[:-1] = ordered[1:] != ordered[:-1]
    out = np.empty(targets.size, bool)
    out[order] = last
    return out


def _prepare(op: str, ctx: Context, a: np.ndarray, index: Any, src: Any, axis: Any
             ) -> tuple[np.ndarray, np.ndarray, Any, int]:
    """The checks shared by scatter, scatter_add and scatter_reduce, with 0-d tensors lifted
    to 1-D; keeps the shapes backward needs on ``ctx``."""
    index = _index(op, index)
    ctx.shape, ctx.index_shape = a.shape, index.shape
    ctx.src_shape = src.shape if isinstance(src, np.ndarray) else None
    if not a.ndim:
        a, index, src = _lift(op, a, index, src)
    axis = _axis(op, "axis", axis, a.ndim)
    _check_shapes(op, a.shape, index, axis, src if isinstance(src, np.ndarray) else None)
    _in_range(op, index, a.shape[axis], axis)
    ctx.lifted_shape, ctx.lifted_index = a.shape, index.shape
    ctx.lifted_src = src.shape if isinstance(src, np.ndarray) else None
    ctx.targets = _flat(a.shape, index, axis)
    return a, index, src, axis


def _src_gradient(ctx: Context, picked: np.ndarray) -> np.ndarray:
    """``picked`` (one value per index position) in place in zeros shaped like src."""
    out = np.zeros(ctx.lifted_src, picked.dtype)
    out[_leading(ctx.lifted_index)] = picked.reshape(ctx.lifted_index)
    return out.reshape(ctx.src_shape)


# ----------------------------------------------------------------------------- the ops
class GatherOp(Function):
    """out[i][j] = a[index[i][j]][j] (for axis 0; likewise along any axis);  the gradient is
    added back at the gathered positions, so an element gathered twice gets both"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, index: np.ndarray, axis: int = 0) -> np.ndarray:
        index = _index("gather", index)
        ctx.shape, out_shape = a.shape, index.shape
        if not a.ndim:
            a, index = _lift("gather", a, index)
        axis = _axis("gather", "axis", axis, a.ndim)
        _check_shapes("gather", a.shape, index, axis)
        _in_range("gather", index, a.shape[axis], axis)
        ctx.lifted_shape, ctx.lifted_index = a.shape, index.shape
        ctx.grid = _grid(index, axis)
        return a[ctx.grid].reshape(out_shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        out = np.zeros(ctx.lifted_shape, grad.dtype)
        np.add.at(out, ctx.grid, grad.reshape(ctx.lifted_index))
        return out.reshape(ctx.shape), None


class ScatterOp(Function):
    """a copy of a with src (or a number) written at index along axis;  d/da is the gradient
    with the overwritten positions zeroed, d/dsrc the gradient read back at index

    Where index repeats a target, the last write lands (a fixed rule: PyTorch leaves the choice
    open), and only that src element gets the target's gradient.
    """

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, index: np.ndarray, src: Any, axis: int = 0
                ) -> np.ndarray:
        if isinstance(src, np.ndarray):
            _same_dtype("scatter", a, src)
        else:
            src = _fill_value("scatter", src, a.dtype)
        a, index, src, axis = _prepare("scatter", ctx, a, index, src, axis)
        out = a.copy()
        flat = out.reshape(-1)
        if isinstance(src, np.ndarray):
            ctx.last = last = _last_writes(ctx.targets)
            flat[ctx.targets[last]] = src[_leading(index.shape)].reshape(-1)[last]
        else:
            flat[ctx.targets] = src
        return out.reshape(ctx.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, _, need_src = ctx.needs_input_grad
        g = grad.reshape(ctx.lifted_shape)
        grad_a = grad_src = None
        if need_a:
            grad_a = g.copy()
            grad_a.reshape(-1)[ctx.targets] = 0
            grad_a = grad_a.reshape(ctx.shape)
        if need_src:
            grad_src = _src_gradient(ctx, np.where(ctx.last, g.reshape(-1)[ctx.targets], 0))
        return grad_a, None, grad_src


class ScatterAddOp(Function):
    """a copy of a with src added at index along axis (repeats add up);  d/da = grad,
    d/dsrc = grad read back at index"""

    name = "scatter_add"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, index: np.ndarray, src: np.ndarray,
                axis: int = 0) -> np.ndarray:
        src = np.asarray(src)
        _same_dtype("scatter_add", a, src)
        a, index, src, axis = _prepare("scatter_add", ctx, a, index, src, axis)
        out = a.copy()
        np.add.at(out.reshape(-1), ctx.targets, src[_leading(index.shape)].reshape(-1))
        return out.reshape(ctx.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_src = ctx.needs_input_grad[2]
        picked = grad.reshape(-1)[ctx.targets] if need_src else None
        return grad, None, (_src_gradient(ctx, picked) if need_src else None)


_REDUCTIONS = ("sum", "prod", "mean", "amax", "amin")


def _identity(reduce: str, dtype: np.dtype) -> Any:
    """What a target starts from when the tensor's own value is left out (include_self=False)."""
    if reduce in ("sum", "mean"):
        return 0
    if reduce == "prod":
        return 1
    if dtype.kind == "f":
        return -np.inf if reduce == "amax" else np.inf
    if dtype.kind == "b":
        return reduce == "amin"
    info = np.iinfo(dtype)
    return info.min if reduce == "amax" else info.max


class ScatterReduceOp(Function):
    """each target of index reduced over the src values sent to it (and its own value, with
    include_self): sum, prod, mean, amax or amin;  positions no index names keep a.

    d/dsrc and d/da (for the values that take part): sum 1; mean 1/count; prod the product of
    the other values at the target (exact with zeros: counted, not divided by); amax/amin 1 for
    the values equal to the result, shared equally among ties, as in PyTorch.
    """

    name = "scatter_reduce"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, index: np.ndarray, src: np.ndarray,
                axis: int = 0, reduce: str = "sum", include_self: bool = True) -> np.ndarray:
        ctx.reduce = reduce = choice("scatter_reduce", "reduce", reduce, _REDUCTIONS)
        ctx.include = include = boolean("scatter_reduce", "include_self", include_self)
        src = np.asarray(src)
        _same_dtype("scatter_reduce", a, src)
        a, index, src, axis = _prepare("scatter_reduce", ctx, a, index, src, axis)
        targets = ctx.targets
        values = src[_leading(index.shape)].reshape(-1)
        out = a.reshape(-1).copy()
        count = np.bincount(targets, minlength=out.size)
        touched = count > 0
        if not include:
            out[touched] = _identity(reduce, a.dtype)
        ufunc = {"sum": np.add, "mean": np.add, "prod": np.multiply, "amax": np.maximum,
                 "amin": np.minimum}[reduce]
        ufunc.at(out, targets, values)
        if reduce == "mean":
            divisor = count[touched] + include
            if out.dtype.kind == "f":
                out[touched] /= divisor
            else:  # integer means round down, as PyTorch's do
                out[touched] //= divisor
        ctx.a, ctx.values, ctx.out = a.reshape(-1), values, out
        ctx.count, ctx.touched = count, touched
        return out.reshape(ctx.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        g = grad.reshape(-1)
        targets, touched, include, reduce = ctx.targets, ctx.touched, ctx.include, ctx.reduce
        a, values = ctx.a, ctx.values
        if reduce == "sum":
            self_share, src_grad = (g if include else np.where(touched, 0, g)), g[targets]
        elif reduce == "mean":
            share = g / np.maximum(ctx.count + include, 1)
            self_share = np.where(touched, share if include else 0, g)
            src_grad = share[targets]
        elif reduce == "prod":
            src_grad, own = _product_of_others(ctx, g)
            self_share = np.where(touched, own if include else 0, g)
        else:  # amax, amin: the values equal to the result share its gradient
            out = ctx.out
            hit_src = values == out[targets]
            hit_self = touched & (a == out) if include else np.zeros(a.size, bool)
            ties = np.bincount(targets, weights=hit_src, minlength=a.size) + hit_self
            share = g / np.maximum(ties, 1)
            src_grad = share[targets] * hit_src
            self_share = np.where(touched, share * hit_self, g)
        need_a, _, need_src = ctx.needs_input_grad
        return (self_share.reshape(ctx.shape) if need_a else None, None,
                _src_gradient(ctx, src_grad) if need_src else None)


def _product_of_others(ctx: Context, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """scatter_reduce's prod backward: for every value taking part at a target, the upstream
    gradient times the product of the other values there, found by counting zeros (never by
    dividing by one): (for each src value, for each element of a)."""
    targets, a, values, include = ctx.targets, ctx.a, ctx.values, ctx.include
    own_zero = (a == 0) & include
    zeros = np.bincount(targets, weights=values == 0, minlength=a.size) + own_zero
    nonzero_product = np.where(include & (a != 0), a, 1).astype(a.dtype)
    np.multiply.at(nonzero_product, targets, np.where(values == 0, 1, values))

    def others(x: np.ndarray, at: np.ndarray | slice) -> np.ndarray:
        product, count = nonzero_product[at], zeros[at]
        divided = np.divide(product, x, out=np.zeros_like(product), where=x != 0)
        return np.where(x != 0, np.where(count > 0, 0, divided),
                        np.where(count == 1, product, 0))

    return g[targets] * others(values, targets), g * others(a, slice(None))


class IndexAddOp(Function):
    """a copy of a with alpha * source[i] added at index[i] along axis (repeats add up);
    d/da = grad,  d/dsource = alpha * grad at index"""

    name = "index_add"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, index: np.ndarray, source: np.ndarray,
                axis: int = 0, alpha: Any = 1) -> np.ndarray:
        index = _index("index_add", index)
        source = np.asarray(source)
        _same_dtype("index_add", a, source, "source")
        alpha = _alpha("index_add", alpha, a.dtype)
        if index.ndim > 1:
            raise ValueError(f"index_add: index must be 1-D, got shape {index.shape}")
        ctx.shape, ctx.source_shape, ctx.alpha = a.shape, source.shape, alpha
        index = index.reshape(-1)
        if not a.ndim:
            a, source = a.reshape(1), source.reshape(-1) if source.ndim == 0 else source
        axis = _axis("index_add", "axis", axis, a.ndim)
        wanted = a.shape[:axis] + (index.size,) + a.shape[axis + 1:]
        if source.shape != wanted:
            raise ValueError(f"index_add: source must have shape {wanted} (the tensor's, with "
                             f"axis {axis} as long as index), got {ctx.source_shape}")
        _in_range("index_add", index, a.shape[axis], axis)
        ctx.axis, ctx.index, ctx.lifted_shape = axis, index, a.shape
        out = a.copy()
        np.add.at(np.moveaxis(out, axis, 0), index,
                  np.moveaxis(source if alpha == 1 else source * alpha, axis, 0))
        return out.reshape(ctx.shape)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        if not ctx.needs_input_grad[2]:
            return grad, None, None
        picked = np.take(grad.reshape(ctx.lifted_shape), ctx.index, axis=ctx.axis)
        if ctx.alpha != 1:
            picked = picked * ctx.alpha
        return grad, None, picked.reshape(ctx.source_shape)


def _alpha(op: str, alpha: Any, dtype: np.dtype) -> Any:
    """alpha as a number; a fraction for an integer tensor is refused, not truncated."""
    number = real(op, "alpha", alpha)
    if dtype.kind in "iub":
        if not number.is_integer():
            raise TypeError(f"{op}: alpha must be an int for a {dtype} tensor, got {alpha!r}")
        return int(number)
    return alpha if isinstance(alpha, (int, float)) else number


class IndexSelectOp(Function):
    """the slices at index along axis;  the gradient is added back at those slices, so a
    slice picked twice gets both"""

    name = "index_select"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, index: np.ndarray, axis: int = 0) -> np.ndarray:
        index = _index("index_select", index)
        if index.ndim > 1:
            raise ValueError(f"index_select: index must be 1-D (or 0-d), got shape "
                             f"{index.shape}")
        index = index.reshape(-1)
        axis = _axis("index_select", "axis", axis, a.ndim)
        ctx.shape, ctx.axis, ctx.index = a.shape, axis, index
        if not a.ndim:  # PyTorch: the one element, picked by a one-element index
            if index.size != 1:
                raise ValueError(f"index_select: a 0-d tensor takes an index of one value, got "
                                 f"{index.size}")
            _in_range("index_select", index, 1, axis)
            return a.copy()
        _in_range("index_select", index, a.shape[axis], axis)
        return np.take(a, index, axis=axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        if not ctx.shape:
            return grad, None
        out = np.zeros(ctx.shape, grad.dtype)
        np.add.at(np.moveaxis(out, ctx.axis, 0), ctx.index, np.moveaxis(grad, ctx.axis, 0))
        return out, None


# ----------------------------------------------------------------------------- functions
@torch_names
def gather(a: Any, axis: int, index: Any) -> Tensor:
    """Pick along ``axis`` at ``index`` (torch.gather): out[i][j] = a[index[i][j]][j] for 0."""
    return GatherOp.apply(a, _index("gather", index), axis=axis)


@torch_names
def scatter(a: Any, axis: int, index: Any, src: Any = None, *, value: Any = None,
            reduce: str | None = None) -> Tensor:
    """A copy of ``a`` with ``src`` (a tensor, or a number ``value``) written at ``index``;
    ``reduce='add'`` or ``'multiply'`` combines instead (PyTorch's older scatter_reduce)."""
    if (src is None) == (value is None):
        raise TypeError("scatter: give src (a tensor or a number) or value=, not both or "
                        "neither")
    index = _index("scatter", index)
    src = src if value is None else value
    if reduce is None:
        return ScatterOp.apply(a, index, src, axis=axis)
    reduce = choice("scatter", "reduce", reduce, ("add", "multiply"))
    if not isinstance(src, Tensor):
        a = _as_tensor(a)
        src = np.full(index.shape, _fill_value("scatter", src, a.dtype), a.dtype)
    if reduce == "add":
        return ScatterAddOp.apply(a, index, src, axis=axis)
    return ScatterReduceOp.apply(a, index, src, axis=axis, reduce="prod", include_self=True)


@torch_names
def scatter_add(a: Any, axis: int, index: Any, src: Any) -> Tensor:
    """A copy of ``a`` with ``src`` added at ``index`` along ``axis`` (repeats add up)."""
    return ScatterAddOp.apply(a, _index("scatter_add", index), src, axis=axis)


@torch_names
def scatter_reduce(a: Any, axis: int, index: Any, src: Any, reduce: str, *,
                   include_self: bool = True) -> Tensor:
    """Reduce the ``src`` values sent to each target ('sum', 'prod', 'mean', 'amax',
    'amin'), with the target's own value if ``include_self``."""
    return ScatterReduceOp.apply(a, _index("scatter_reduce", index), src, axis=axis,
                                 reduce=reduce, include_self=include_self)


@torch_names
def index_add(a: Any, axis: int, index: Any, source: Any, *, alpha: float = 1) -> Tensor:
    """A copy of ``a`` with ``alpha * source[i]`` added at ``index[i]`` along ``axis``."""
    return IndexAddOp.apply(a, _index("index_add", index), source, axis=axis, alpha=alpha)


@torch_names
def index_select(a: Any, axis: int, index: Any) -> Tensor:
    """The slices of ``a`` at ``index`` (1-D) along ``axis``."""
    return IndexSelectOp.apply(a, _index("index_select", index), axis=axis)


@torch_names
def take_along_dim(a: Any, indices: Any, axis: int | None = None) -> Tensor:
    """gather with broadcasting (torch.take_along_dim); with no axis, on the flattened tensor."""
    a = _as_tensor(a)
    index = _index("take_along_dim", indices, "indices")
    if axis is None:
        flat = ReshapeOp.apply(a, shape=(-1,))
        n = flat.shape[0]
        index = index.reshape(-1)
        _in_range("take_along_dim", index, n, 0, low=-n)
        return GatherOp.apply(flat, np.where(index < 0, index + n, index), axis=0)
    if index.ndim != a.ndim:
        raise ValueError(f"take_along_dim: indices must have as many dims as the tensor "
                         f"({a.ndim}), got shape {index.shape}")
    axis = _axis("take_along_dim", "axis", axis, a.ndim)
    n = a.shape[axis] if a.ndim else 1
    _in_range("take_along_dim", index, n, axis, low=-n)
    index = np.where(index < 0, index + n, index)
    try:
        common = list(np.broadcast_shapes(
            *(s[:axis] + (1,) + s[axis + 1:] for s in (a.shape, index.shape))))
    except ValueError:
        raise ValueError(f"take_along_dim: the shapes {a.shape} and {index.shape} do not "
                         f"broadcast outside axis {axis}") from None
    if a.ndim:
        wanted = tuple(common[:axis] + [a.shape[axis]] + common[axis + 1:])
        if wanted != a.shape:
            a = ExpandOp.apply(a, shape=wanted)
        index = np.broadcast_to(index, tuple(common[:axis] + [index.shape[axis]]
                                             + common[axis + 1:]))
    return GatherOp.apply(a, index, axis=axis)
