"""Ops that move elements around without changing them. Backward moves the gradient back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.function import Context, Function
from chainrule.ops.reduce import normalize_axes
from chainrule.tensor import Tensor


def _shape_args(shape: tuple) -> tuple[int, ...]:
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


class Reshape(Function):
    """the same elements in a new shape;  the gradient is reshaped back"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        ctx.shape = a.shape
        try:
            return a.reshape(shape)
        except ValueError:
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                f"into shape {tuple(shape)}"
            ) from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(ctx.shape)


class Transpose(Function):
    """swap two axes;  swapping them again puts the gradient back"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis0: int, axis1: int) -> np.ndarray:
        ctx.axis0, ctx.axis1 = axis0, axis1
        return np.swapaxes(a, axis0, axis1)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.swapaxes(grad, ctx.axis0, ctx.axis1)


class Permute(Function):
    """reorder axes;  the inverse permutation puts the gradient back"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
        if sorted(ax % max(a.ndim, 1) for ax in axes) != list(range(a.ndim)):
            raise ValueError(f"permute: {tuple(axes)} is not a permutation of the {a.ndim} axes "
                             f"of a tensor of shape {a.shape}")
        ctx.axes = axes
        return np.transpose(a, axes)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.transpose(grad, np.argsort([ax % grad.ndim for ax in ctx.axes]))


class Squeeze(Function):
    """drop size-1 axes;  the gradient is reshaped back"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int | Sequence[int] | None = None
                ) -> np.ndarray:
        ctx.shape = a.shape
        if axis is None:
            return np.squeeze(a)
        # As in PyTorch, naming an axis whose size is not 1 leaves it in place.
        axes = tuple(ax for ax in normalize_axes(axis, a.ndim, "squeeze") if a.shape[ax] == 1)
        return np.squeeze(a, axes)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(ctx.shape)


class Unsqueeze(Function):
    """insert a size-1 axis;  the gradient is reshaped back"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int) -> np.ndarray:
        ctx.shape = a.shape
        return np.expand_dims(a, axis)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return grad.reshape(ctx.shape)


class Expand(Function):
    """broadcast to a larger shape;  backward returns the gradient as is, and the engine's
    one unbroadcast sums the copies back to the input's shape"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        lead = len(shape) - a.ndim
        if lead < 0:
            raise ValueError(f"expand: cannot expand shape {a.shape} to fewer dims {shape}")
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


class Flatten(Function):
    """merge axes start..end into one;  the gradient is reshaped back"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, start_axis: int = 0, end_axis: int = -1
                ) -> np.ndarray:
        ctx.shape = a.shape
        if a.ndim == 0:
            return a.reshape(1)
        start, end = start_axis % a.ndim, end_axis % a.ndim
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


class GetItem(Function):
    """a[index];  the gradient is scattered back into zeros, added up where an integer array
    picks the same element twice"""

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


class Concatenate(Function):
    """join along an existing axis;  each input gets its slice of the gradient"""

    @staticmethod
    def forward(ctx: Context, *arrays: np.ndarray, axis: int = 0) -> np.ndarray:
        ctx.axis = axis
        ctx.splits = np.cumsum([a.shape[axis] for a in arrays])[:-1]
        try:
            return np.concatenate(arrays, axis=axis)
        except ValueError:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(f"concatenate: shapes {shapes} differ outside axis {axis}") from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return tuple(np.split(grad, ctx.splits, axis=ctx.axis))


class Stack(Function):
    """join along a new axis;  each input gets its index of the gradient"""

    @staticmethod
    def forward(ctx: Context, *arrays: np.ndarray, axis: int = 0) -> np.ndarray:
        ctx.axis = axis
        try:
            return np.stack(arrays, axis=axis)
        except ValueError:
            shapes = ", ".join(str(a.shape) for a in arrays)
            raise ValueError(f"stack: all shapes must match, got {shapes}") from None

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return tuple(np.moveaxis(grad, ctx.axis, 0))


def reshape(a: Any, *shape: int | Sequence[int]) -> Tensor:
    """The same elements in a new shape (one entry may be -1)."""
    return Reshape.apply(a, shape=_shape_args(shape))


def transpose(a: Any, axis0: int = -2, axis1: int = -1) -> Tensor:
    """Swap two axes."""
    return Transpose.apply(a, axis0=axis0, axis1=axis1)


def permute(a: Any, *axes: int | Sequence[int]) -> Tensor:
    """Reorder the axes."""
    return Permute.apply(a, axes=_shape_args(axes))


def squeeze(a: Any, axis: int | Sequence[int] | None = None) -> Tensor:
    """Remove size-1 axes (all, or those named in ``axis``)."""
    return Squeeze.apply(a, axis=axis)


def unsqueeze(a: Any, axis: int) -> Tensor:
    """Insert a size-1 axis at ``axis``."""
    return Unsqueeze.apply(a, axis=axis)


def expand(a: Any, *shape: int | Sequence[int]) -> Tensor:
    """Broadcast to ``shape`` (-1 keeps a size)."""
    return Expand.apply(a, shape=_shape_args(shape))


def flatten(a: Any, start_axis: int = 0, end_axis: int = -1) -> Tensor:
    """Merge axes ``start_axis``..``end_axis`` into one."""
    return Flatten.apply(a, start_axis=start_axis, end_axis=end_axis)


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
    return GetItem.apply(a, index=_plain_index(index))


def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis."""
    if not tensors:
        raise ValueError("concatenate: needs at least one tensor")
    return Concatenate.apply(*tensors, axis=axis)


def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    return Stack.apply(*tensors, axis=axis)


cat = concatenate
