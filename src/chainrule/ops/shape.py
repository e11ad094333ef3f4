"""Ops that move elements around without changing them. Backward moves the gradient back."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from chainrule.engine import backend
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor
from chainrule.ops.elementwise import CloneOp
from chainrule.validate import axes as _axes
from chainrule.validate import axis as _axis
from chainrule.validate import boolean, choice, integer, is_int, torch_names


def _shape_args(shape: tuple) -> tuple[int, ...]:
    """Accept both ``f(2, 3)`` and ``f((2, 3))``."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, np.ndarray)):
        return tuple(shape[0])
    return tuple(shape)


def _one_spelling(op: str, name: str, given: tuple, keyword: Any) -> tuple:
    """A shape given positionally or by keyword (PyTorch's ``shape=``/``size=``), not both."""
    if given:
        raise TypeError(f"{op}: got a shape both positionally and as {name}=; pass one")
    return (keyword,)


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
                raise ValueError(f"reshape: only one dimension can be -1 (the size to infer), "
                                 f"got shape {tuple(shape)}") from None
            known = int(np.prod([n for n in shape if n != -1]))
            wanted = (f"a multiple of {known} elements" if -1 in shape
                      else f"{known} element{'' if known == 1 else 's'}")
            raise ValueError(
                f"reshape: cannot reshape a tensor of shape {a.shape} ({a.size} elements) "
                f"into shape {tuple(shape)}, which needs {wanted}"
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
        index = ctx.index
        # One boolean mask picks each element at most once, as basic indices do.
        if _is_basic(index) or type(index) is np.ndarray and index.dtype == np.bool_:
            out[index] = grad
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
        ctx.left_out = None
        if len(arrays) > 1 and any(a.shape == (0,) for a in arrays):
            kept = tuple(a for a in arrays if a.shape != (0,))
            if kept:  # PyTorch's legacy rule: 1-D empty tensors join anything, adding nothing
                ctx.left_out, arrays = [a.shape == (0,) for a in arrays], kept
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
        pieces = np.split(grad, ctx.splits, axis=ctx.axis)
        if ctx.left_out is None:
            return tuple(pieces)
        kept = iter(pieces)
        return tuple(np.zeros(0, grad.dtype) if out else next(kept) for out in ctx.left_out)


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


def reshape(a: Any, *sizes: int | Sequence[int], shape: Sequence[int] | None = None
            ) -> Tensor:
    """The same elements in a new shape (one entry may be -1); ``shape=`` as torch.reshape."""
    if shape is not None:
        sizes = _one_spelling("reshape", "shape", sizes, shape)
    return ReshapeOp.apply(a, shape=_shape_args(sizes))


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


def expand(a: Any, *sizes: int | Sequence[int], size: Sequence[int] | None = None) -> Tensor:
    """Broadcast to a shape (-1 keeps a size); ``size=`` as PyTorch's."""
    if size is not None:
        sizes = _one_spelling("expand", "size", sizes, size)
    return ExpandOp.apply(a, shape=_shape_args(sizes))


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


def _one_dtype(tensors: Sequence[Any]) -> Sequence[Any]:
    """The tensors to join, in the dtype PyTorch joins them in (int64 and float32: float32,
    where NumPy would say float64); converted by the differentiable cast."""
    first = getattr(tensors[0], "dtype", None)
    if first is not None and all(getattr(t, "dtype", None) == first for t in tensors):
        return tensors
    joined = [_as_tensor(t) for t in tensors]
    # 1-element stand-ins: every input counts as a tensor with dims, as in torch.cat.
    dtype = backend.result_dtype(*(np.empty(1, t.dtype) for t in joined))
    return [t if t.dtype == dtype else t.astype(dtype) for t in joined]


@torch_names
def concatenate(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join tensors along an existing axis; as in PyTorch, 1-D empty tensors (shape (0,))
    are left out, so ``cat([torch.tensor([]), x])`` is x."""
    return ConcatenateOp.apply(*_one_dtype(_tensor_list("concatenate", tensors)), axis=axis)


@torch_names
def stack(tensors: Sequence[Any], axis: int = 0) -> Tensor:
    """Join same-shaped tensors along a new axis."""
    return StackOp.apply(*_one_dtype(_tensor_list("stack", tensors)), axis=axis)


cat = concatenate


# ----------------------------------------------------------------------------- more shape ops
def _also_named(**pairs: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Let a function take PyTorch keywords that validate.TORCH_NAMES does not list
    (``dim2=`` for ``axis2=``, ``dimension=`` for ``axis=``); both spellings is a TypeError."""
    def wrap(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def call(*args: Any, **kwargs: Any) -> Any:
            for theirs, ours in pairs.items():
                if theirs in kwargs:
                    if ours in kwargs:
                        raise TypeError(f"{fn.__name__}: got both {ours}= and {theirs}= "
                                        f"({theirs} is PyTorch's name for {ours}); pass one")
                    kwargs[ours] = kwargs.pop(theirs)
            return fn(*args, **kwargs)
        return call
    return wrap


def _as_tensor(a: Any) -> Tensor:
    return a if isinstance(a, Tensor) else Tensor(a)


def _ints(op: str, name: str, value: Any) -> tuple[int, ...]:
    """An int or a sequence of ints, as a tuple."""
    if is_int(value):
        return (int(value),)
    if not isinstance(value, (tuple, list)):
        raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got {value!r} "
                        f"({type(value).__name__})")
    return tuple(integer(op, name, v) for v in value)


class RepeatOp(Function):
    """copies of the tensor side by side along each axis (torch's Tensor.repeat);  d/da sums
    the gradient over the copies"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, sizes: tuple[int, ...]) -> np.ndarray:
        sizes = tuple(integer("repeat", f"repeat count {i}", n, low=0)
                      for i, n in enumerate(sizes))
        if len(sizes) < a.ndim:
            raise ValueError(f"repeat: got {len(sizes)} repeat counts {sizes} for a tensor of "
                             f"shape {a.shape}; give one per dim (more add leading dims)")
        ctx.padded = (1,) * (len(sizes) - a.ndim) + a.shape
        ctx.sizes, ctx.shape = sizes, a.shape
        return np.tile(a, sizes)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        # Axis k of the output is (copy, element) pairs: split it so, and sum over the copies.
        split = [n for pair in zip(ctx.sizes, ctx.padded) for n in pair]
        return grad.reshape(split).sum(axis=tuple(range(0, len(split), 2))).reshape(ctx.shape)


class RollOp(Function):
    """elements shifted cyclically along axes (along the flattened tensor if none);  the
    gradient is shifted back"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, shifts: int | Sequence[int],
                axes: int | Sequence[int] | None = None) -> np.ndarray:
        steps = _ints("roll", "shifts", shifts)
        if axes is None:
            if len(steps) != 1:
                raise ValueError(f"roll: without dims the tensor is rolled flattened, by one "
                                 f"shift; got shifts {steps}: give dims= too")
            ctx.shifts, ctx.axes = steps[0], None
            return np.roll(a, steps[0])
        found = tuple(_axis("roll", "dims", ax, a.ndim) for ax in _ints("roll", "dims", axes))
        if len(found) != len(steps):
            raise ValueError(f"roll: shifts {steps} and dims {found} must have the same length")
        ctx.shifts, ctx.axes = steps, found
        if not a.ndim:  # a 0-d tensor's one element stays where it is
            return a.copy()
        return np.roll(a, steps, found)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        if ctx.axes is None:
            return np.roll(grad, -ctx.shifts)
        if not grad.ndim:
            return grad
        return np.roll(grad, tuple(-s for s in ctx.shifts), ctx.axes)


class FlipOp(Function):
    """the order of elements reversed along axes (a copy, as in PyTorch);  the gradient is
    flipped back"""

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axes: int | Sequence[int]) -> np.ndarray:
        ctx.axes = _axes("flip", "dims", axes, a.ndim)
        return np.flip(a, ctx.axes).copy()

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.flip(grad, ctx.axes)


class _TriangleOp(Function, register=False):
    """Shared by tril and triu: keep one triangle of the last two axes, zero the rest; the
    gradient keeps the same triangle."""

    keep: Any = None

    @classmethod
    def forward(cls, ctx: Context, a: np.ndarray, diagonal: int = 0) -> np.ndarray:
        if a.ndim < 2:
            raise ValueError(f"{cls.name}: needs a tensor with at least 2 dims (a matrix or a "
                             f"batch of them), got shape {a.shape}")
        ctx.k = integer(cls.name, "diagonal", diagonal)
        return cls.keep(a, ctx.k)

    @classmethod
    def backward(cls, ctx: Context, grad: np.ndarray) -> np.ndarray:
        return cls.keep(grad, ctx.k)


class TrilOp(_TriangleOp):
    """the lower triangle (on and below diagonal k) of the last two axes;  d/da keeps it too"""

    keep = staticmethod(np.tril)


class TriuOp(_TriangleOp):
    """the upper triangle (on and above diagonal k) of the last two axes;  d/da keeps it too"""

    keep = staticmethod(np.triu)


def _onto_diagonal(shape: tuple[int, ...], values: np.ndarray, offset: int, axis1: int,
                   axis2: int) -> np.ndarray:
    """Zeros of ``shape`` with ``values``' last axis on diagonal ``offset`` of the
    (axis1, axis2) planes, its other axes along the remaining axes in order."""
    out = np.zeros(shape, values.dtype)
    planes = np.moveaxis(out, (axis1, axis2), (-2, -1))  # a view: writes land in out
    i = np.arange(values.shape[-1])
    planes[..., i + max(-offset, 0), i + max(offset, 0)] = values
    return out


def _two_axes(op: str, axis1: Any, axis2: Any, ndim: int, result: bool = False
              ) -> tuple[int, int]:
    first = _axis(op, "axis1", axis1, ndim, result=result)
    second = _axis(op, "axis2", axis2, ndim, result=result)
    if first == second:
        raise ValueError(f"{op}: axis1 and axis2 both name axis {first}; a diagonal needs two "
                         "different axes")
    return first, second


class DiagonalOp(Function):
    """diagonal ``offset`` of the (axis1, axis2) planes, as a new last axis (a view);  the
    gradient goes back onto that diagonal, zeros elsewhere"""

    view = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, offset: int = 0, axis1: int = 0, axis2: int = 1
                ) -> np.ndarray:
        ctx.axes = _two_axes("diagonal", axis1, axis2, a.ndim)
        ctx.offset = integer("diagonal", "offset", offset)
        ctx.shape = a.shape
        out = np.diagonal(a, ctx.offset, *ctx.axes)
        if a.flags.writeable:  # NumPy's diagonal is read-only; PyTorch's view can be written
            out.flags.writeable = True
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return _onto_diagonal(ctx.shape, grad, ctx.offset, *ctx.axes)


class DiagEmbedOp(Function):
    """the last axis laid on diagonal ``offset`` of new (axis1, axis2) planes, zeros
    elsewhere;  the gradient is that diagonal of the upstream gradient"""

    name = "diag_embed"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, offset: int = 0, axis1: int = -2,
                axis2: int = -1) -> np.ndarray:
        ctx.axes = _two_axes("diag_embed", axis1, axis2, a.ndim + 1, result=True)
        ctx.offset = offset = integer("diag_embed", "offset", offset)
        n = a.shape[-1] + abs(offset)
        shape = list(a.shape[:-1])
        for ax in sorted(ctx.axes):
            shape.insert(ax, n)
        return _onto_diagonal(tuple(shape), a, offset, *ctx.axes)

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        return np.diagonal(grad, ctx.offset, *ctx.axes)


class UnfoldOp(Function):
    """windows of ``size`` every ``step`` along an axis, as a new last axis (a view);  each
    element's gradient is the sum over the windows that hold it"""

    view = True

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, axis: int, size: int, step: int) -> np.ndarray:
        ctx.axis = axis = _axis("unfold", "dimension", axis, a.ndim)
        ctx.size = size = integer("unfold", "size", size, low=0)
        ctx.step = step = integer("unfold", "step", step, low=1)
        ctx.shape = a.shape
        length = a.shape[axis] if a.ndim else 1
        if size > length:
            raise ValueError(f"unfold: size {size} is larger than dimension {axis}'s length "
                             f"{length} (tensor shape {a.shape})")
        if not a.ndim:
            return a.reshape(1)[:size]
        windows = np.lib.stride_tricks.sliding_window_view(a, size, axis=axis,
                                                           writeable=a.flags.writeable)
        return windows[(slice(None),) * axis + (slice(None, None, step),)]

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> np.ndarray:
        if not ctx.shape:
            return grad.sum(keepdims=True).reshape(())
        out = np.zeros(ctx.shape, grad.dtype)
        starts = np.arange(grad.shape[ctx.axis]) * ctx.step
        where = starts[:, None] + np.arange(ctx.size)  # (window, offset) -> position
        # Windows overlap when step < size: np.add.at adds every window's share.
        np.add.at(np.moveaxis(out, ctx.axis, -1), (Ellipsis, where),
                  np.moveaxis(grad, ctx.axis, -2))
        return out


def _fill_value(op: str, value: Any, dtype: np.dtype) -> Any:
    """A fill value as stored in ``dtype``: NaN, inf or a number outside an integer dtype's
    range is refused rather than stored as garbage."""
    if isinstance(value, np.ndarray):
        if value.ndim:
            raise ValueError(f"{op}: value must be a number or a 0-d tensor, got a tensor of "
                             f"shape {value.shape}")
        number = value.item()
    elif isinstance(value, (bool, int, float, np.bool_, np.integer, np.floating)):
        number = value.item() if isinstance(value, np.generic) else value
    else:
        raise TypeError(f"{op}: value must be a number or a 0-d tensor, got {value!r} "
                        f"({type(value).__name__})")
    if dtype.kind in "iu" and not isinstance(number, bool):
        info = np.iinfo(dtype)
        if not (np.isfinite(number) and info.min <= number <= info.max):
            raise ValueError(f"{op}: value {number} cannot be stored in a {dtype} tensor")
    return value


class MaskedFillOp(Function):
    """value where mask is True, a elsewhere (a and mask broadcast);  d/da = grad where the
    mask is False, d/dvalue = the sum of grad where it is True"""

    name = "masked_fill"

    @staticmethod
    def forward(ctx: Context, a: np.ndarray, mask: np.ndarray, value: Any) -> np.ndarray:
        mask = np.asarray(mask)
        if mask.dtype != np.bool_:
            raise TypeError(f"masked_fill: mask must be a bool tensor, got {mask.dtype}; make "
                            "one with a comparison (x > 0) or .astype(bool)")
        value = _fill_value("masked_fill", value, a.dtype)
        try:
            shape = np.broadcast_shapes(a.shape, mask.shape)
        except ValueError:
            raise ValueError(f"masked_fill: the mask's shape {mask.shape} does not broadcast "
                             f"with the tensor's shape {a.shape}") from None
        out = np.array(np.broadcast_to(a, shape))
        # Unsafe casting stores 2.7 in an int tensor as 2, as PyTorch does.
        np.copyto(out, value, casting="unsafe", where=mask)
        ctx.mask = mask
        return out

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        need_a, _, need_value = ctx.needs_input_grad
        mask = ctx.mask
        grad_a = np.where(mask, 0, grad) if need_a else None
        grad_value = None
        if need_value:
            grad_value = np.asarray(np.sum(grad, where=np.broadcast_to(mask, grad.shape)))
        return grad_a, None, grad_value


def _slice_along(a: Tensor, axis: int, start: int | None, stop: int | None) -> Tensor:
    """a[start:stop] along ``axis``: a view, whose gradient goes back into place."""
    return GetItemOp.apply(a, index=(slice(None),) * axis + (slice(start, stop),))


def _no_0d(op: str, a: Tensor) -> None:
    if not a.ndim:
        raise ValueError(f"{op}: needs a tensor with at least 1 dim, got a 0-d tensor")


# ----------------------------------------------------------------------------- their functions
def repeat(a: Any, *sizes: int | Sequence[int]) -> Tensor:
    """The tensor repeated ``sizes[k]`` times along axis k (torch's Tensor.repeat)."""
    return RepeatOp.apply(a, sizes=_shape_args(sizes))


def tile(a: Any, *dims: int | Sequence[int]) -> Tensor:
    """Like repeat, but fewer counts than dims repeat the last axes (torch.tile)."""
    a = _as_tensor(a)
    reps = _shape_args(dims)
    return RepeatOp.apply(a, sizes=(1,) * (a.ndim - len(reps)) + tuple(reps))


@torch_names
def roll(a: Any, shifts: int | Sequence[int], axes: int | Sequence[int] | None = None
         ) -> Tensor:
    """Shift elements cyclically by ``shifts`` along ``axes`` (the flattened tensor if None)."""
    return RollOp.apply(a, shifts=shifts, axes=axes)


@torch_names
def flip(a: Any, axes: int | Sequence[int]) -> Tensor:
    """Reverse the order of elements along ``axes`` (PyTorch's ``dims``)."""
    return FlipOp.apply(a, axes=axes)


def fliplr(a: Any) -> Tensor:
    """Reverse the order of columns (axis 1)."""
    a = _as_tensor(a)
    if a.ndim < 2:
        raise ValueError(f"fliplr: needs a tensor with at least 2 dims, got shape {a.shape}")
    return FlipOp.apply(a, axes=1)


def flipud(a: Any) -> Tensor:
    """Reverse the order of rows (axis 0)."""
    a = _as_tensor(a)
    _no_0d("flipud", a)
    return FlipOp.apply(a, axes=0)


def tril(a: Any, diagonal: int = 0) -> Tensor:
    """The lower triangle of the last two axes (on and below ``diagonal``), zeros above."""
    return TrilOp.apply(a, diagonal=diagonal)


def triu(a: Any, diagonal: int = 0) -> Tensor:
    """The upper triangle of the last two axes (on and above ``diagonal``), zeros below."""
    return TriuOp.apply(a, diagonal=diagonal)


@_also_named(dim2="axis2")
@torch_names
def diagonal(a: Any, offset: int = 0, axis1: int = 0, axis2: int = 1) -> Tensor:
    """Diagonal ``offset`` of the (axis1, axis2) planes, as a last axis (a view)."""
    return DiagonalOp.apply(a, offset=offset, axis1=axis1, axis2=axis2)


@_also_named(dim2="axis2")
@torch_names
def diag_embed(a: Any, offset: int = 0, axis1: int = -2, axis2: int = -1) -> Tensor:
    """The last axis laid on diagonal ``offset`` of new (axis1, axis2) planes."""
    return DiagEmbedOp.apply(a, offset=offset, axis1=axis1, axis2=axis2)


def diag(a: Any, diagonal: int = 0) -> Tensor:
    """1-D: a matrix with ``a`` on diagonal ``diagonal``; 2-D: that diagonal (a copy)."""
    a = _as_tensor(a)
    if a.ndim == 1:
        return DiagEmbedOp.apply(a, offset=diagonal, axis1=0, axis2=1)
    if a.ndim == 2:
        return CloneOp.apply(DiagonalOp.apply(a, offset=diagonal, axis1=0, axis2=1))
    raise ValueError(f"diag: takes a 1-D or 2-D tensor, got shape {a.shape}; use diagonal or "
                     "diag_embed for batches")


@_also_named(dimension="axis")
@torch_names
def unfold(a: Any, axis: int, size: int, step: int) -> Tensor:
    """Windows of ``size`` every ``step`` along ``axis``, as a new last axis (a view)."""
    return UnfoldOp.apply(a, axis=axis, size=size, step=step)


def masked_fill(a: Any, mask: Any, value: Any) -> Tensor:
    """``value`` where ``mask`` is True, ``a`` elsewhere; a 0-d tensor value takes a gradient."""
    return MaskedFillOp.apply(a, mask.data if isinstance(mask, Tensor) else mask, value)


def masked_select(a: Any, mask: Any) -> Tensor:
    """The elements of ``a`` where the (broadcast) bool ``mask`` is True, as a 1-D tensor."""
    a = _as_tensor(a)
    mask = np.asarray(mask.data if isinstance(mask, Tensor) else mask)
    if mask.dtype != np.bool_:
        raise TypeError(f"masked_select: mask must be a bool tensor, got {mask.dtype}")
    try:
        shape = np.broadcast_shapes(a.shape, mask.shape)
    except ValueError:
        raise ValueError(f"masked_select: the mask's shape {mask.shape} does not broadcast "
                         f"with the tensor's shape {a.shape}") from None
    if a.shape != shape:
        a = ExpandOp.apply(a, shape=shape)
    return GetItemOp.apply(a, index=np.broadcast_to(mask, shape))


@torch_names
def split(a: Any, split_size_or_sections: int | Sequence[int], axis: int = 0
          ) -> tuple[Tensor, ...]:
    """Pieces of ``split_size`` along ``axis`` (the last may be smaller), or of the listed
    sizes; views whose gradients add up."""
    a = _as_tensor(a)
    _no_0d("split", a)
    axis = _axis("split", "axis", axis, a.ndim)
    n = a.shape[axis]
    if is_int(split_size_or_sections):
        size = integer("split", "split_size", split_size_or_sections, low=0)
        if size == 0 and n:
            raise ValueError(f"split: split_size 0 only splits an axis of length 0; axis {axis}"
                             f" has length {n}")
        bounds = list(range(0, n, size)) + [n] if n else [0, 0]
    elif isinstance(split_size_or_sections, (tuple, list)):
        sizes = [integer("split", f"size {i}", s, low=0)
                 for i, s in enumerate(split_size_or_sections)]
        if sum(sizes) != n:
            raise ValueError(f"split: sizes {sizes} add up to {sum(sizes)}, but axis {axis} "
                             f"has length {n}")
        bounds = [0, *np.cumsum(sizes).tolist()]
    else:
        raise TypeError(f"split: split_size_or_sections must be an int or a list of ints, got "
                        f"{split_size_or_sections!r}")
    return tuple(_slice_along(a, axis, lo, hi) for lo, hi in zip(bounds, bounds[1:]))


@torch_names
def chunk(a: Any, chunks: int, axis: int = 0) -> tuple[Tensor, ...]:
    """At most ``chunks`` equal pieces along ``axis`` (the last may be smaller), as PyTorch."""
    a = _as_tensor(a)
    _no_0d("chunk", a)
    chunks = integer("chunk", "chunks", chunks, low=1)
    axis = _axis("chunk", "axis", axis, a.ndim)
    n = a.shape[axis]
    if not n:
        return tuple(_slice_along(a, axis, 0, 0) for _ in range(chunks))
    return split(a, -(-n // chunks), axis)


@torch_names
def tensor_split(a: Any, indices_or_sections: Any, axis: int = 0) -> tuple[Tensor, ...]:
    """``sections`` near-equal pieces (the first ones one longer), or pieces cut at the listed
    indices, along ``axis``."""
    a = _as_tensor(a)
    _no_0d("tensor_split", a)
    axis = _axis("tensor_split", "axis", axis, a.ndim)
    n = a.shape[axis]
    cuts = indices_or_sections
    if isinstance(cuts, Tensor):
        cuts = cuts.data
    if isinstance(cuts, np.ndarray):
        if cuts.dtype.kind not in "iu" or cuts.ndim > 1:
            raise TypeError(f"tensor_split: a tensor of indices_or_sections must be 0-d or 1-D "
                            f"integers, got {cuts.dtype} of shape {cuts.shape}")
        cuts = cuts.item() if not cuts.ndim else cuts.tolist()
    if is_int(cuts):
        sections = integer("tensor_split", "sections", cuts, low=1)
        size, extra = divmod(n, sections)
        bounds = np.cumsum([0] + [size + 1] * extra + [size] * (sections - extra)).tolist()
    elif isinstance(cuts, (tuple, list)):
        # Python's slicing of each stretch, as PyTorch (and NumPy's array_split) cut them.
        bounds = [0, *(integer("tensor_split", "index", i) for i in cuts), n]
    else:
        raise TypeError(f"tensor_split: indices_or_sections must be an int or a list of ints, "
                        f"got {cuts!r}")
    return tuple(_slice_along(a, axis, lo, hi) for lo, hi in zip(bounds, bounds[1:]))


@torch_names
def unbind(a: Any, axis: int = 0) -> tuple[Tensor, ...]:
    """The slices along ``axis``, each without that axis (views whose gradients add up)."""
    a = _as_tensor(a)
    _no_0d("unbind", a)
    axis = _axis("unbind", "axis", axis, a.ndim)
    lead = (slice(None),) * axis
    return tuple(GetItemOp.apply(a, index=lead + (i,)) for i in range(a.shape[axis]))


def movedim(a: Any, source: int | Sequence[int], destination: int | Sequence[int]) -> Tensor:
    """Move axes ``source`` to positions ``destination``; the others keep their order."""
    a = _as_tensor(a)
    ndim = a.ndim
    sources, destinations = (_ints("movedim", "source", source),
                             _ints("movedim", "destination", destination))
    if len(sources) != len(destinations):
        raise ValueError(f"movedim: source {sources} and destination {destinations} must name "
                         "the same number of axes")
    sources = tuple(_axis("movedim", "source", s, ndim) for s in sources)
    destinations = tuple(_axis("movedim", "destination", d, ndim) for d in destinations)
    for name, found in (("source", sources), ("destination", destinations)):
        if len(set(found)) != len(found):
            raise ValueError(f"movedim: {name} {found} names an axis more than once")
    if not ndim:
        return PermuteOp.apply(a, axes=())
    order = [ax for ax in range(ndim) if ax not in sources]
    for d, s in sorted(zip(destinations, sources)):
        order.insert(d, s)
    return PermuteOp.apply(a, axes=tuple(order))


moveaxis = movedim


@torch_names
def narrow(a: Any, axis: int, start: int, length: int) -> Tensor:
    """``length`` elements from ``start`` along ``axis`` (a view)."""
    a = _as_tensor(a)
    _no_0d("narrow", a)
    axis = _axis("narrow", "axis", axis, a.ndim)
    n = a.shape[axis]
    if isinstance(start, Tensor) and start.ndim == 0:
        start = start.item()
    start = integer("narrow", "start", start, low=-n, high=n)
    start += n if start < 0 else 0
    length = integer("narrow", "length", length, low=0)
    if start + length > n:
        raise ValueError(f"narrow: start {start} + length {length} runs past the end of axis "
                         f"{axis}, which has length {n}")
    return _slice_along(a, axis, start, start + length)


@torch_names
def swapaxes(a: Any, axis0: int, axis1: int) -> Tensor:
    """Swap two axes (transpose under NumPy's and PyTorch's other name)."""
    return TransposeOp.apply(a, axis0=axis0, axis1=axis1)


swapdims = swapaxes


@torch_names
def unflatten(a: Any, axis: int, sizes: Sequence[int]) -> Tensor:
    """Axis ``axis`` split into ``sizes`` (one may be -1), as torch.unflatten (a view)."""
    a = _as_tensor(a)
    _no_0d("unflatten", a)
    axis = _axis("unflatten", "axis", axis, a.ndim)
    if not isinstance(sizes, (tuple, list)):
        raise TypeError(f"unflatten: sizes must be a tuple or list of ints, got {sizes!r}")
    if not sizes:
        raise ValueError("unflatten: sizes must not be empty")
    sizes = tuple(integer("unflatten", f"size {i}", s, low=-1) for i, s in enumerate(sizes))
    if sizes.count(-1) > 1:
        raise ValueError(f"unflatten: only one dimension can be -1, got sizes {sizes}")
    n, known = a.shape[axis], int(np.prod([s for s in sizes if s != -1]))
    if -1 in sizes:
        if known == 0 or n % known:
            raise ValueError(f"unflatten: axis {axis} of length {n} cannot be split into sizes "
                             f"{sizes}")
        sizes = tuple(n // known if s == -1 else s for s in sizes)
    elif known != n:
        raise ValueError(f"unflatten: sizes {sizes} hold {known} elements, but axis {axis} has "
                         f"length {n}")
    return ReshapeOp.apply(a, shape=a.shape[:axis] + sizes + a.shape[axis + 1:])


def meshgrid(*tensors: Any, indexing: str = "ij") -> tuple[Tensor, ...]:
    """Coordinate grids from 1-D tensors ('ij': matrix indexing, 'xy': Cartesian); expanded
    views whose gradients sum back to the inputs."""
    if len(tensors) == 1 and isinstance(tensors[0], (tuple, list)):
        tensors = tuple(tensors[0])
    if not tensors:
        raise ValueError("meshgrid: needs at least one tensor")
    indexing = choice("meshgrid", "indexing", indexing, ("ij", "xy"))
    grids = [_as_tensor(t) for t in tensors]
    for i, t in enumerate(grids):
        if t.ndim > 1:
            raise ValueError(f"meshgrid: tensor {i} has shape {t.shape}; each must be 0-d or 1-D")
    dtypes = sorted({str(t.dtype) for t in grids})
    if len(dtypes) > 1:
        raise TypeError(f"meshgrid: all tensors must have one dtype (as PyTorch requires), got "
                        f"{', '.join(dtypes)}")
    sizes = [t.numel() for t in grids]
    axes = list(range(len(grids)))
    if indexing == "xy" and len(grids) > 1:  # the first two inputs run along columns and rows
        axes[0], axes[1] = 1, 0
    shape = [0] * len(grids)
    for n, ax in zip(sizes, axes):
        shape[ax] = n
    out = []
    for t, n, ax in zip(grids, sizes, axes):
        own = [1] * len(grids)
        own[ax] = n
        out.append(ExpandOp.apply(ReshapeOp.apply(t, shape=tuple(own)), shape=tuple(shape)))
    return tuple(out)


def nonzero(a: Any, *, as_tuple: bool = False) -> Tensor | tuple[Tensor, ...]:
    """Indices of the nonzero elements: an (n, ndim) int64 tensor, or one 1-D tensor per axis
    with ``as_tuple`` (no gradient)."""
    data = a.data if isinstance(a, Tensor) else np.asarray(a)
    if boolean("nonzero", "as_tuple", as_tuple):
        if not data.ndim:  # PyTorch treats a 0-d tensor as 1-D here
            data = data.reshape(1)
        return tuple(Tensor(i.astype(np.int64)) for i in np.nonzero(data))
    return Tensor(np.argwhere(data).astype(np.int64))


def one_hot(a: Any, num_classes: int = -1) -> Tensor:
    """Class indices as one-hot rows: int64 of shape a.shape + (num_classes,); -1 infers it."""
    data = a.data if isinstance(a, Tensor) else np.asarray(a)
    if data.dtype.kind not in "iu":
        raise TypeError(f"one_hot: needs an integer tensor of class indices, got {data.dtype}; "
                        "convert it with .long()")
    num_classes = integer("one_hot", "num_classes", num_classes, low=-1)
    if data.size and data.min() < 0:
        raise ValueError(f"one_hot: class values must be non-negative, got {data.min()}")
    if num_classes == -1:
        if not data.size:
            raise ValueError("one_hot: cannot infer num_classes from an empty tensor; pass "
                             "num_classes=")
        num_classes = int(data.max()) + 1
    elif data.size and data.max() >= num_classes:
        raise ValueError(f"one_hot: class value {data.max()} is not smaller than "
                         f"num_classes={num_classes}")
    return Tensor((data[..., None] == np.arange(num_classes)).astype(np.int64))
