"""Ops that move elements around without changing them. Backward moves the gradient back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.validate import axes as _axes
from chainrule.validate import axis as _axis
from chainrule.validate import integer, is_int, torch_names


def _shape_args(shape: tuple) -> tuple[int, ...]:
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, np.ndarray)):
        return tuple(shape[0])
    return tuple(shape)


def _sizes(op: str, shape: tuple) -> tuple[int, ...]:
    """A target shape's entries as ints, each >= -1 (-1: the size is inferred or kept); a
    float, bool or str entry is a TypeError."""
    for n in shape:
        if type(n) is not int or n < -1:
            break
    else:
        return shape
    # NumPy would take any negative size for -1; PyTorch refuses, and so does this.
    return tuple(integer(op, f"size {i} of shape {tuple(shape)!r}", n, low=-1)
                 for i, n in enumerate(shape))


class ReshapeOp(Function):
    """the same elements in a new shape;  the gradient is reshaped back"""

    view = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        ctx.shape = a.shape
        shape = _sizes("reshape", shape)
        try:
            return a.reshape(shape)
        except ValueError:
            if list(shape).count(-1) > 1:
                raise ValueError(f"reshape: at most one size may be -1 (the size to infer), "
                                 f"got shape {tuple(shape)}") from None
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                f"into shape {tuple(shape)}"
            ) from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(ctx.shape)


class TransposeOp(Function):
    """swap two axes;  swapping them again puts the gradient back"""

    view = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis0: int, axis1: int) -> np.ndarray:
        ndim = a.ndim
        ctx.axis0 = axis0 = _axis("transpose", "axis0", axis0, ndim)
        ctx.axis1 = axis1 = _axis("transpose", "axis1", axis1, ndim)
        if not ndim:  # 0 and -1 both name the one "axis" of a 0-d tensor, as in PyTorch
            return a.view()
        return np.swapaxes(a, axis0, axis1)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        if ctx.axis0 == ctx.axis1:
            return grad
        return np.swapaxes(grad, ctx.axis0, ctx.axis1)


class PermuteOp(Function):
    """reorder axes;  the inverse permutation puts the gradient back"""

    view = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        ndim = a.ndim
        order = tuple(_axis("permute", "axis", ax, ndim) for ax in axes)
        if len(order) != ndim or len(set(order)) != ndim:
            raise ValueError(f"permute: {tuple(axes)} is not a permutation of the {ndim} axes "
                             f"of a tensor of shape {a.shape}")
        ctx.axes = order
        return np.transpose(a, order)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.transpose(grad, np.argsort(ctx.axes))


class SqueezeOp(Function):
    """drop size-1 axes;  the gradient is reshaped back"""

    view = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int | Sequence[int] | None = None
                ) -> np.ndarray:
        ctx.shape = a.shape
        if axis is None:
            return np.squeeze(a)
        # As in PyTorch, naming an axis whose size is not 1 leaves it in place.
        shape = a.shape
        return np.squeeze(a, tuple(ax for ax in _axes("squeeze", "axis", axis, a.ndim)
                                   if shape[ax] == 1))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(ctx.shape)


class UnsqueezeOp(Function):
    """insert a size-1 axis;  the gradient is reshaped back"""

    view = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int | Sequence[int]) -> np.ndarray:
        ctx.shape = a.shape
        # The new axis is counted in the result, which has one more dim (per axis inserted).
        if type(axis) is int or is_int(axis):
            return np.expand_dims(a, _axis("unsqueeze", "axis", axis, a.ndim + 1, result=True))
        if isinstance(axis, (tuple, list)):
            return np.expand_dims(a, _axes("unsqueeze", "axis", axis, a.ndim + len(axis),
                                           result=True))
        raise TypeError(f"unsqueeze: axis must be an int, got {axis!r} "
                        f"({type(axis).__name__})")

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(ctx.shape)


class ExpandOp(Function):
    """broadcast to a larger shape;  backward returns the gradient as is, and the engine's
    one unbroadcast sums the copies back to the input's shape"""

    view = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        shape = _sizes("expand", shape)
        lead = len(shape) - a.ndim
        if lead < 0:
            raise ValueError(f"expand: cannot expand shape {a.shape} to fewer dims {shape}")
        if -1 in shape[:lead]:
            raise ValueError(f"expand: -1 keeps an existing axis's size, but in {tuple(shape)} "
                             f"it is at a new leading axis of the tensor of shape {a.shape}; "
                             "give that axis's size")
        target = tuple(a.shape[i - lead] if n == -1 and i >= lead else n
                       for i, n in enumerate(shape))
        try:
            return np.broadcast_to(a, target)
        except ValueError:
            raise ValueError(f"expand: cannot expand shape {a.shape} to {tuple(shape)}: only "
                             "size-1 axes can grow") from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad


class FlattenOp(Function):
    """merge axes start..end into one;  the gradient is reshaped back"""

    view = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, start_axis: int = 0, end_axis: int = -1
                ) -> np.ndarray:
        ctx.shape = a.shape
        ndim = a.ndim
        start = _axis("flatten", "start_axis", start_axis, ndim)
        end = _axis("flatten", "end_axis", end_axis, ndim)
        if ndim == 0:
            return a.reshape(1)
        if start > end:
            raise ValueError(f"flatten: start_axis {start_axis} comes after end_axis {end_axis} "
                             f"for shape {a.shape}")
        return a.reshape(a.shape[:start] + (-1,) + a.shape[end + 1:])

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(ctx.shape)


def _is_basic(index: Any) -> bool:
    """True if ``index`` only slices (ints, slices, None, ...): no element can repeat."""
    parts = index if isinstance(index, tuple) else (index,)
    return all(isinstance(p, (int, np.integer, slice)) or p is None or p is Ellipsis
               for p in parts)


class GetItemOp(Function):
    """a[index];  the gradient is scattered back into zeros, added up where an integer array
    picks the same element twice"""

    view = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, index: Any) -> np.ndarray:
        ctx.shape, ctx.dtype, ctx.index = a.shape, a.dtype, index
        try:
            return a[index]
        except IndexError as error:
            raise IndexError(f"getitem: {error} (tensor shape {a.shape})") from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        out = np.zeros(ctx.shape, dtype=grad.dtype)
        if _is_basic(ctx.index):
            out[ctx.index] = grad
        else:
            np.add.at(out, ctx.index, grad)
        return out


def _arrays(arrays: tuple) -> tuple[np.ndarray, ...]:
    """The inputs of a join as arrays (a plain list or number among them becomes one)."""
    for a in arrays:
        if type(a) is not np.ndarray:
            return tuple(np.asarray(a) for a in arrays)
    return arrays


def _shapes(arrays: Sequence[np.ndarray]) -> str:
    return ", ".join(str(a.shape) for a in arrays)


class ConcatenateOp(Function):
    """join along an existing axis;  each input gets its slice of the gradient"""

    @staticmethod
    def forward(ctx: Context, *arrays: np.ndarray, axis: int = 0) -> np.ndarray:
        arrays = _arrays(arrays)
        first = arrays[0].shape
        if not first:
            raise ValueError("concatenate: cannot join 0-d tensors, which have no axis to join "
                             "along; use stack to make a new axis")
        ctx.axis = axis = _axis("concatenate", "axis", axis, len(first))
        head, tail = first[:axis], first[axis + 1:]
        for a in arrays:
            shape = a.shape
            if len(shape) != len(first):
                raise ValueError(f"concatenate: all tensors need the same number of dims, got "
                                 f"shapes {_shapes(arrays)}")
            if shape[:axis] != head or shape[axis + 1:] != tail:
                raise ValueError(f"concatenate: shapes {_shapes(arrays)} differ outside axis "
                                 f"{axis}")
        ctx.splits = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        return np.concatenate(arrays, axis=axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return tuple(np.split(grad, ctx.splits, axis=ctx.axis))


class StackOp(Function):
    """join along a new axis;  each input gets its index of the gradient"""

    @staticmethod
    def forward(ctx: Context, *arrays: np.ndarray, axis: int = 0) -> np.ndarray:
        arrays = _arrays(arrays)
        first = arrays[0].shape
        # The new axis is counted in the result, which has one more dim than the inputs.
        ctx.axis = axis = _axis("stack", "axis", axis, len(first) + 1, result=True)
        for a in arrays:
            if a.shape != first:
                raise ValueError(f"stack: all shapes must match, got {_shapes(arrays)}")
        return np.stack(arrays, axis=axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return tuple(np.moveaxis(grad, ctx.axis, 0))


def reshape(a: Any, *shape: int | Sequence[int]) -> Tensor:
    """The same elements in a new shape (one entry may be -1)."""
    return ReshapeOp.apply(a, shape=_shape_args(shape))


@torch_names
def transpose(a: Any, axis0: int = -2, axis1: int = -1) -> Tensor:
    """Swap two axes."""
    return TransposeOp.apply(a, axis0=axis0, axis1=axis1)


def permute(a: Any, *axes: int | Sequence[int]) -> Tensor:
    """Reorder the axes."""
    return PermuteOp.apply(a, axes=_shape_args(axes))


@torch_names
def squeeze(a: Any, axis: int | Sequence[int] | None = None) -> Tensor:
    """Remove size-1 axes (all, or those named in ``axis``)."""
    return SqueezeOp.apply(a, axis=axis)


@torch_names
def unsqueeze(a: Any, axis: int) -> Tensor:
    """Insert a size-1 axis at ``axis`` (counted in the result, as in PyTorch)."""
    return UnsqueezeOp.apply(a, axis=axis)


def expand(a: Any, *shape: int | Sequence[int]) -> Tensor:
    """Broadcast to ``shape`` (-1 keeps a size)."""
    return ExpandOp.apply(a, shape=_shape_args(shape))


@torch_names
def flatten(a: Any, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes ``start_axis``..``end_axis`` into one."""
    return FlattenOp.apply(a, start_axis=start_axis, end_axis=end_axis)


def _plain_index(index: Any) -> Any:
    """Tensors inside an index become their arrays (integer or bool)."""
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, tuple):
        return tuple(p.data if isinstance(p, Tensor) else p for p in index)
    if isinstance(index, list):
        return np.asarray(index)
    return index


def getitem(a: Any, index: Any) -> Tensor:
    """``a[index]``: ints, slices, None, Ellipsis, integer arrays and boolean masks."""
    return GetItemOp.apply(a, index=_plain_index(index))


def _tensor_list(op: str, tensors: Any) -> Sequence[Any]:
    """The tensors to join, as a sequence; one tensor (or array, or a str) is refused, since
    iterating it would join its rows."""
    if isinstance(tensors, (tuple, list)):
        if not tensors:
            raise ValueError(f"{op}: needs at least one tensor, got an empty "
                             f"{type(tensors).__name__}")
        return tensors
    if isinstance(tensors, (Tensor, np.ndarray, str, bytes)) or not hasattr(tensors, "__iter__"):
        raise TypeError(f"{op}: tensors must be a list or tuple of tensors, got a "
                        f"{type(tensors).__name__}; pass them as one list: {op}([a, b], axis)")
    return _tensor_list(op, tuple(tensors))


@torch_names
def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    return ConcatenateOp.apply(*_tensor_list("concatenate", tensors), axis=axis)


@torch_names
def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    return StackOp.apply(*_tensor_list("stack", tensors), axis=axis)


cat = concatenate
