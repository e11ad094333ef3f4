"""The operators and methods of a Tensor, each one line handing its work to an op.

``Tensor`` inherits them (``class Tensor(TensorMethods)``), so tensor.py holds only what a
tensor is: its data, its place on the tape and its version. Every method here is a
registered op from ``chainrule.ops`` (or a plain NumPy call for the few that record nothing),
so ``x + y`` and ``cr.add(x, y)`` are the same op.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from chainrule.validate import torch_names

if TYPE_CHECKING:
    from chainrule.engine.tensor import Tensor

#: chainrule.ops, filled in by tensor.py once the ops exist (they need Tensor to be defined
#: first, and Tensor needs this class): the one piece of wiring between the two modules.
_ops: Any = None


class TensorMethods:
    """Python's operators and the op methods (``x.sum()``, ``x.relu()``, ...) of a Tensor."""

    __slots__ = ()

    # ----------------------------------------------------------------- operators
    def __add__(self, other: Any) -> Tensor:
        return _ops.add(self, other)

    def __radd__(self, other: Any) -> Tensor:
        return _ops.add(other, self)

    def __sub__(self, other: Any) -> Tensor:
        return _ops.sub(self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return _ops.sub(other, self)

    def __mul__(self, other: Any) -> Tensor:
        return _ops.mul(self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return _ops.mul(other, self)

    def __truediv__(self, other: Any) -> Tensor:
        return _ops.div(self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return _ops.div(other, self)

    def __neg__(self) -> Tensor:
        return _ops.neg(self)

    def __pow__(self, exponent: Any) -> Tensor:
        return _ops.pow(self, exponent)

    def __rpow__(self, base: Any) -> Tensor:
        return _ops.pow(base, self)

    def __matmul__(self, other: Any) -> Tensor:
        return _ops.matmul(self, other)

    def __rmatmul__(self, other: Any) -> Tensor:
        return _ops.matmul(other, self)

    def __getitem__(self, index: Any) -> Tensor:
        return _ops.getitem(self, index)

    def __lt__(self, other: Any) -> Tensor:
        return _ops.lt(self, other)

    def __le__(self, other: Any) -> Tensor:
        return _ops.le(self, other)

    def __gt__(self, other: Any) -> Tensor:
        return _ops.gt(self, other)

    def __ge__(self, other: Any) -> Tensor:
        return _ops.ge(self, other)

    def __eq__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.eq(self, other)

    def __ne__(self, other: Any) -> Tensor:  # type: ignore[override]
        return _ops.ne(self, other)

    # ----------------------------------------------------------------- methods
    def add(self, other: Any) -> Tensor:
        """Elementwise sum (broadcasting)."""
        return _ops.add(self, other)

    def sub(self, other: Any) -> Tensor:
        """Elementwise difference (broadcasting)."""
        return _ops.sub(self, other)

    def mul(self, other: Any) -> Tensor:
        """Elementwise product (broadcasting)."""
        return _ops.mul(self, other)

    def div(self, other: Any, rounding_mode: str | None = None) -> Tensor:
        """Elementwise quotient (broadcasting); ``rounding_mode`` None, 'trunc' or 'floor'."""
        return _ops.div(self, other, rounding_mode)

    def pow(self, exponent: Any) -> Tensor:
        """Elementwise power (broadcasting)."""
        return _ops.pow(self, exponent)

    def matmul(self, other: Any) -> Tensor:
        """Matrix product with NumPy's rules (1-D, 2-D and batched)."""
        return _ops.matmul(self, other)

    def exp(self) -> Tensor:
        """Elementwise e**x."""
        return _ops.exp(self)

    def log(self) -> Tensor:
        """Elementwise natural logarithm."""
        return _ops.log(self)

    def sqrt(self) -> Tensor:
        """Elementwise square root."""
        return _ops.sqrt(self)

    def tanh(self) -> Tensor:
        """Elementwise hyperbolic tangent."""
        return _ops.tanh(self)

    def sigmoid(self) -> Tensor:
        """Elementwise logistic sigmoid."""
        return _ops.sigmoid(self)

    def relu(self) -> Tensor:
        """Elementwise max(x, 0)."""
        return _ops.relu(self)

    def leaky_relu(self, negative_slope: float = 0.01) -> Tensor:
        """Elementwise x where x > 0, else negative_slope * x."""
        return _ops.leaky_relu(self, negative_slope)

    def silu(self) -> Tensor:
        """Elementwise x * sigmoid(x)."""
        return _ops.silu(self)

    def gelu(self, approximate: str = "none") -> Tensor:
        """Elementwise x * Phi(x), exact or in PyTorch's tanh form."""
        return _ops.gelu(self, approximate)

    def abs(self) -> Tensor:
        """Elementwise absolute value."""
        return _ops.abs(self)

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:
        """Limit values to [min, max]; either bound may be None."""
        return _ops.clamp(self, min, max)

    def clamp_min(self, min: float) -> Tensor:
        """Limit values from below (the seed's relu is ``x.clamp_min(0.)``)."""
        return _ops.clamp(self, min, None)

    def clamp_max(self, max: float) -> Tensor:
        """Limit values from above."""
        return _ops.clamp(self, None, max)

    def maximum(self, other: Any) -> Tensor:
        """Elementwise maximum of two tensors (broadcasting)."""
        return _ops.maximum(self, other)

    @torch_names
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False, *,
            dtype: Any = None) -> Tensor:
        """Sum over ``axis`` (all axes if None); bool and integers sum in int64."""
        if dtype is None:
            return _ops.sum(self, axis, keepdims)
        return _ops.sum(self, axis, keepdims, dtype=dtype)

    @torch_names
    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False, *,
             dtype: Any = None) -> Tensor:
        """Mean over ``axis`` (all axes if None) of a floating tensor, or in a float dtype."""
        if dtype is None:
            return _ops.mean(self, axis, keepdims)
        return _ops.mean(self, axis, keepdims, dtype=dtype)

    @torch_names
    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; ties share the gradient equally."""
        return _ops.max(self, axis, keepdims)

    @torch_names
    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Minimum over ``axis``; ties share the gradient equally."""
        return _ops.min(self, axis, keepdims)

    @torch_names
    def var(self, axis: int | Sequence[int] | None = None, unbiased: bool | None = None,
            keepdims: bool = False, *, correction: float | None = None) -> Tensor:
        """Variance over ``axis`` with Bessel's ``correction`` (1, as in PyTorch, by default);
        positional arguments as torch's: ``x.var(dim, unbiased, keepdim)``."""
        return _ops.var(self, axis, unbiased, keepdims, correction=correction)

    @torch_names
    def std(self, axis: int | Sequence[int] | None = None, unbiased: bool | None = None,
            keepdims: bool = False, *, correction: float | None = None) -> Tensor:
        """Standard deviation over ``axis`` (arguments as in var)."""
        return _ops.std(self, axis, unbiased, keepdims, correction=correction)

    @torch_names
    def logsumexp(self, axis: int | Sequence[int] | None = None, keepdims: bool = False
                  ) -> Tensor:
        """log(sum(exp(x))) over ``axis``, computed without overflow."""
        return _ops.logsumexp(self, axis, keepdims)

    @torch_names
    def norm(self, p: float | str = 2, axis: int | Sequence[int] | None = None,
             keepdims: bool = False) -> Tensor:
        """The vector p-norm over ``axis`` (all elements if None)."""
        return _ops.norm(self, p, axis, keepdims)

    @torch_names
    def softmax(self, axis: int = -1, dtype: Any = None) -> Tensor:
        """exp(x) / sum(exp(x)) along ``axis``, computed without overflow."""
        return _ops.softmax(self, axis, dtype)

    @torch_names
    def log_softmax(self, axis: int = -1, dtype: Any = None) -> Tensor:
        """x - logsumexp(x) along ``axis``."""
        return _ops.log_softmax(self, axis, dtype)

    @torch_names
    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the maxima, int64 (of the flattened tensor if ``axis`` is None)."""
        return _ops.argmax(self, axis, keepdims)

    @torch_names
    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the minima, int64 (of the flattened tensor if ``axis`` is None)."""
        return _ops.argmin(self, axis, keepdims)

    @torch_names
    def any(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Whether any element (over ``axis``) is nonzero: a bool tensor; ``if x.any():`` works."""
        return _ops.any(self, axis, keepdims)

    @torch_names
    def all(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Whether every element (over ``axis``) is nonzero: a bool tensor."""
        return _ops.all(self, axis, keepdims)

    def reshape(self, *sizes: int | Sequence[int], shape: Sequence[int] | None = None
                ) -> Tensor:
        """The same elements in a new shape (one entry may be -1); ``shape=`` as PyTorch's."""
        return _ops.reshape(self, *sizes, shape=shape)

    def view(self, *shape: int | Sequence[int]) -> Tensor:
        """The same elements in a new shape (one entry may be -1), as reshape."""
        if len(shape) == 1 and isinstance(shape[0], (type, np.dtype, str)):
            raise TypeError("view(dtype): reinterpreting the bytes as another dtype is not "
                            "supported; convert the values with astype(dtype)")
        return _ops.reshape(self, *shape)

    @torch_names
    def transpose(self, axis0: int = -2, axis1: int = -1) -> Tensor:
        """Swap two axes (the last two by default)."""
        return _ops.transpose(self, axis0, axis1)

    def t(self) -> Tensor:
        """Transpose of a 2-D tensor (as in the seed's ``w.t()``)."""
        if self.ndim != 2:
            raise ValueError(f"t(): expects a 2-D tensor, got shape {self.shape}; use transpose")
        return _ops.transpose(self, 0, 1)

    @property
    def T(self) -> Tensor:  # noqa: N802 - the name NumPy and PyTorch use
        """All axes reversed."""
        return _ops.permute(self, *reversed(range(self.ndim)))

    def permute(self, *axes: int | Sequence[int]) -> Tensor:
        """Reorder the axes."""
        return _ops.permute(self, *axes)

    @torch_names
    def squeeze(self, *axes: int | Sequence[int], axis: int | Sequence[int] | None = None
                ) -> Tensor:
        """Remove size-1 axes (all of them, or those named: ``x.squeeze(0, 2)``, a tuple too)."""
        if axes:
            if axis is not None:
                raise TypeError("squeeze: got axes both positionally and by keyword; pass one")
            axis = axes[0] if len(axes) == 1 else axes
        return _ops.squeeze(self, axis)

    @torch_names
    def unsqueeze(self, axis: int) -> Tensor:
        """Insert a size-1 axis at ``axis``."""
        return _ops.unsqueeze(self, axis)

    def expand(self, *sizes: int | Sequence[int], size: Sequence[int] | None = None
               ) -> Tensor:
        """Broadcast to a shape without copying (-1 keeps a size); ``size=`` as PyTorch's."""
        return _ops.expand(self, *sizes, size=size)

    @torch_names
    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor:
        """Merge the axes from ``start_axis`` to ``end_axis`` into one."""
        return _ops.flatten(self, start_axis, end_axis)


    # ----------------------------------------------------------------- PyTorch's other names
    def neg(self) -> Tensor:
        """Elementwise -x."""
        return _ops.neg(self)

    negative = neg

    def clip(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        """PyTorch's other name for clamp."""
        return self.clamp(min, max)

    def where(self, condition: Any, other: Any) -> Tensor:
        """This tensor where ``condition`` holds, else ``other`` (torch's x.where(c, y))."""
        return _ops.where(condition, self, other)

    def mm(self, other: Any) -> Tensor:
        """Matrix product of two 2-D tensors."""
        if self.ndim != 2 or getattr(other, "ndim", 0) != 2:
            raise ValueError(f"mm: expects two 2-D tensors, got shapes {self.shape} and "
                             f"{getattr(other, 'shape', None)}; use matmul for other shapes")
        return _ops.matmul(self, other)

    @property
    def mT(self) -> Tensor:  # noqa: N802 - PyTorch's name
        """The last two axes swapped (a batch of transposed matrices)."""
        if self.ndim < 2:
            raise ValueError(f"mT: needs at least 2 dims, got shape {self.shape}")
        return _ops.transpose(self, -2, -1)

    def eq(self, other: Any) -> Tensor:
        """self == other, a bool tensor."""
        return _ops.eq(self, other)

    def ne(self, other: Any) -> Tensor:
        """self != other, a bool tensor."""
        return _ops.ne(self, other)

    def lt(self, other: Any) -> Tensor:
        """self < other, a bool tensor."""
        return _ops.lt(self, other)

    def le(self, other: Any) -> Tensor:
        """self <= other, a bool tensor."""
        return _ops.le(self, other)

    def gt(self, other: Any) -> Tensor:
        """self > other, a bool tensor."""
        return _ops.gt(self, other)

    def ge(self, other: Any) -> Tensor:
        """self >= other, a bool tensor."""
        return _ops.ge(self, other)

    def logical_and(self, other: Any) -> Tensor:
        """Elementwise ``self and other``, a bool tensor."""
        return _ops.logical_and(self, other)

    def logical_or(self, other: Any) -> Tensor:
        """Elementwise ``self or other``, a bool tensor."""
        return _ops.logical_or(self, other)

    def logical_xor(self, other: Any) -> Tensor:
        """Elementwise exclusive or, a bool tensor."""
        return _ops.logical_xor(self, other)

    def logical_not(self) -> Tensor:
        """Elementwise ``not self``, a bool tensor."""
        return _ops.logical_not(self)

    @torch_names
    def count_nonzero(self, axis: int | Sequence[int] | None = None) -> Tensor:
        """The number of nonzero elements over ``axis`` (all if None)."""
        return _ops.count_nonzero(self, axis)

    def addcmul(self, tensor1: Any, tensor2: Any, value: float = 1) -> Tensor:
        """self + value * tensor1 * tensor2."""
        return self + value * tensor1 * tensor2

    def addcdiv(self, tensor1: Any, tensor2: Any, value: float = 1) -> Tensor:
        """self + value * tensor1 / tensor2."""
        return self + value * tensor1 / tensor2

    # ------------------------------------------- scans, sorting, reductions, linear algebra
    @torch_names
    def cumsum(self, axis: int, *, dtype: Any = None) -> Tensor:
        """Cumulative sum along ``axis``."""
        return _ops.cumsum(self, axis, dtype=dtype)

    @torch_names
    def cumprod(self, axis: int, *, dtype: Any = None) -> Tensor:
        """Cumulative product along ``axis``."""
        return _ops.cumprod(self, axis, dtype=dtype)

    @torch_names
    def cummax(self, axis: int) -> Any:
        """Running maximum along ``axis``: (values, indices)."""
        return _ops.cummax(self, axis)

    @torch_names
    def cummin(self, axis: int) -> Any:
        """Running minimum along ``axis``: (values, indices)."""
        return _ops.cummin(self, axis)

    @torch_names
    def logcumsumexp(self, axis: int) -> Tensor:
        """log(cumsum(exp(x))) along ``axis``, stable for large values."""
        return _ops.logcumsumexp(self, axis)

    @torch_names
    def prod(self, axis: int | None = None, keepdims: bool = False, *,
             dtype: Any = None) -> Tensor:
        """Product over one ``axis`` or all."""
        return _ops.prod(self, axis, keepdims, dtype=dtype)

    @torch_names
    def amax(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis`` (as ``max``)."""
        return _ops.amax(self, axis, keepdims)

    @torch_names
    def amin(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Minimum over ``axis`` (as ``min``)."""
        return _ops.amin(self, axis, keepdims)

    @torch_names
    def median(self, axis: int | None = None, keepdims: bool = False) -> Any:
        """Lower median: of all elements, or along ``axis`` as (values, indices)."""
        return _ops.median(self, axis, keepdims)

    @torch_names
    def mode(self, axis: int = -1, keepdims: bool = False) -> Any:
        """Most frequent value along ``axis`` (the smallest of ties): (values, indices)."""
        return _ops.mode(self, axis, keepdims)

    @torch_names
    def sort(self, axis: int = -1, descending: bool = False, stable: bool = False) -> Any:
        """Sort along ``axis`` (stable): (values, indices)."""
        return _ops.sort(self, axis, descending, stable)

    @torch_names
    def argsort(self, axis: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
        """Indices that sort along ``axis`` (stable)."""
        return _ops.argsort(self, axis, descending, stable)

    @torch_names
    def topk(self, k: int, axis: int = -1, largest: bool = True, sorted: bool = True) -> Any:
        """The ``k`` largest (or smallest) along ``axis``: (values, indices)."""
        return _ops.topk(self, k, axis, largest, sorted)

    def outer(self, other: Any) -> Tensor:
        """Outer product of two 1-D tensors."""
        return _ops.outer(self, other)

    def dot(self, other: Any) -> Tensor:
        """Inner product of two 1-D tensors."""
        return _ops.dot(self, other)

    def mv(self, vec: Any) -> Tensor:
        """Matrix-vector product."""
        return _ops.mv(self, vec)

    def bmm(self, mat2: Any) -> Tensor:
        """Batched matrix product of 3-D tensors."""
        return _ops.bmm(self, mat2)

    def baddbmm(self, batch1: Any, batch2: Any, *, beta: float = 1, alpha: float = 1) -> Tensor:
        """beta * self + alpha * bmm(batch1, batch2)."""
        return _ops.baddbmm(self, batch1, batch2, beta=beta, alpha=alpha)

    def addmm(self, mat1: Any, mat2: Any, *, beta: float = 1, alpha: float = 1) -> Tensor:
        """beta * self + alpha * (mat1 @ mat2)."""
        return _ops.addmm(self, mat1, mat2, beta=beta, alpha=alpha)
    # ----------------------------------------------------------------- shape and selection
    def reshape_as(self, other: Tensor) -> Tensor:
        """Reshape to ``other``'s shape."""
        return _ops.reshape(self, other.shape)

    view_as = reshape_as

    def expand_as(self, other: Tensor) -> Tensor:
        """Broadcast to ``other``'s shape without copying."""
        return _ops.expand(self, other.shape)

    def repeat(self, *sizes: int | Sequence[int]) -> Tensor:
        """The tensor repeated ``sizes[k]`` times along axis k (a copy)."""
        return _ops.repeat(self, *sizes)

    def tile(self, *dims: int | Sequence[int]) -> Tensor:
        """Like repeat; fewer counts than dims repeat the last axes."""
        return _ops.tile(self, *dims)

    @torch_names
    def roll(self, shifts: int | Sequence[int], axes: int | Sequence[int] | None = None
             ) -> Tensor:
        """Shift elements cyclically along ``axes`` (the flattened tensor if None)."""
        return _ops.roll(self, shifts, axes)

    def flip(self, *axes: int | Sequence[int], dims: int | Sequence[int] | None = None
             ) -> Tensor:
        """Reverse the order of elements along ``dims`` (``x.flip(0)``, ``x.flip((0, 1))``)."""
        if dims is not None:
            if axes:
                raise TypeError("flip: got dims both positionally and as dims=; pass one")
            return _ops.flip(self, dims)
        return _ops.flip(self, axes[0] if len(axes) == 1 else axes)

    def fliplr(self) -> Tensor:
        """Reverse the order of columns."""
        return _ops.fliplr(self)

    def flipud(self) -> Tensor:
        """Reverse the order of rows."""
        return _ops.flipud(self)

    def tril(self, diagonal: int = 0) -> Tensor:
        """The lower triangle of the last two axes, zeros above ``diagonal``."""
        return _ops.tril(self, diagonal)

    def triu(self, diagonal: int = 0) -> Tensor:
        """The upper triangle of the last two axes, zeros below ``diagonal``."""
        return _ops.triu(self, diagonal)

    def diag(self, diagonal: int = 0) -> Tensor:
        """1-D: a matrix with this on a diagonal; 2-D: that diagonal."""
        return _ops.diag(self, diagonal)

    def diagonal(self, offset: int = 0, dim1: int = 0, dim2: int = 1) -> Tensor:
        """Diagonal ``offset`` of the (dim1, dim2) planes, as a last axis (a view)."""
        return _ops.diagonal(self, offset, dim1, dim2)

    def diag_embed(self, offset: int = 0, dim1: int = -2, dim2: int = -1) -> Tensor:
        """The last axis laid on diagonal ``offset`` of new (dim1, dim2) planes."""
        return _ops.diag_embed(self, offset, dim1, dim2)

    def unfold(self, dimension: int, size: int, step: int) -> Tensor:
        """Windows of ``size`` every ``step`` along ``dimension``, as a new last axis (a view)."""
        return _ops.unfold(self, dimension, size, step)

    def masked_fill(self, mask: Any, value: Any) -> Tensor:
        """``value`` where ``mask`` is True, this tensor elsewhere."""
        return _ops.masked_fill(self, mask, value)

    def masked_select(self, mask: Any) -> Tensor:
        """The elements where ``mask`` is True, as a 1-D tensor."""
        return _ops.masked_select(self, mask)

    def nonzero(self, *, as_tuple: bool = False) -> Any:
        """Indices of the nonzero elements (int64, no gradient)."""
        return _ops.nonzero(self, as_tuple=as_tuple)

    @torch_names
    def gather(self, axis: int, index: Any) -> Tensor:
        """Pick along ``axis`` at ``index``."""
        return _ops.gather(self, axis, index)

    @torch_names
    def scatter(self, axis: int, index: Any, src: Any = None, *, value: Any = None,
                reduce: str | None = None) -> Tensor:
        """A copy with ``src`` (a tensor or a number) written at ``index`` along ``axis``."""
        return _ops.scatter(self, axis, index, src, value=value, reduce=reduce)

    @torch_names
    def scatter_add(self, axis: int, index: Any, src: Any) -> Tensor:
        """A copy with ``src`` added at ``index`` along ``axis``."""
        return _ops.scatter_add(self, axis, index, src)

    @torch_names
    def scatter_reduce(self, axis: int, index: Any, src: Any, reduce: str, *,
                       include_self: bool = True) -> Tensor:
        """A copy with the ``src`` values at each target reduced ('sum', 'prod', 'mean',
        'amax', 'amin')."""
        return _ops.scatter_reduce(self, axis, index, src, reduce, include_self=include_self)

    @torch_names
    def index_add(self, axis: int, index: Any, source: Any, *, alpha: float = 1) -> Tensor:
        """A copy with ``alpha * source[i]`` added at ``index[i]`` along ``axis``."""
        return _ops.index_add(self, axis, index, source, alpha=alpha)

    @torch_names
    def index_select(self, axis: int, index: Any) -> Tensor:
        """The slices at ``index`` along ``axis``."""
        return _ops.index_select(self, axis, index)

    @torch_names
    def take_along_dim(self, indices: Any, axis: int | None = None) -> Tensor:
        """gather with broadcasting; with no axis, on the flattened tensor."""
        return _ops.take_along_dim(self, indices, axis)

    @torch_names
    def split(self, split_size: int | Sequence[int], axis: int = 0) -> tuple[Tensor, ...]:
        """Pieces of ``split_size`` (or of the listed sizes) along ``axis`` (views)."""
        return _ops.split(self, split_size, axis)

    @torch_names
    def chunk(self, chunks: int, axis: int = 0) -> tuple[Tensor, ...]:
        """At most ``chunks`` equal pieces along ``axis`` (views)."""
        return _ops.chunk(self, chunks, axis)

    @torch_names
    def tensor_split(self, indices_or_sections: Any, axis: int = 0) -> tuple[Tensor, ...]:
        """Near-equal sections, or pieces cut at the listed indices, along ``axis``."""
        return _ops.tensor_split(self, indices_or_sections, axis)

    @torch_names
    def unbind(self, axis: int = 0) -> tuple[Tensor, ...]:
        """The slices along ``axis``, each without it (views)."""
        return _ops.unbind(self, axis)

    def movedim(self, source: int | Sequence[int], destination: int | Sequence[int]
                ) -> Tensor:
        """Move axes ``source`` to positions ``destination``."""
        return _ops.movedim(self, source, destination)

    moveaxis = movedim

    @torch_names
    def narrow(self, axis: int, start: int, length: int) -> Tensor:
        """``length`` elements from ``start`` along ``axis`` (a view)."""
        return _ops.narrow(self, axis, start, length)

    @torch_names
    def swapaxes(self, axis0: int, axis1: int) -> Tensor:
        """Swap two axes."""
        return _ops.swapaxes(self, axis0, axis1)

    swapdims = swapaxes

    @torch_names
    def unflatten(self, axis: int, sizes: Sequence[int]) -> Tensor:
        """Split axis ``axis`` into ``sizes`` (one may be -1)."""
        return _ops.unflatten(self, axis, sizes)
    # ------------------------------------------------------ elementwise maths and activations
    def __floordiv__(self, other: Any) -> Tensor:
        return _ops.floor_divide(self, other)

    def __rfloordiv__(self, other: Any) -> Tensor:
        return _ops.floor_divide(other, self)

    def __mod__(self, other: Any) -> Tensor:
        return _ops.remainder(self, other)

    def __rmod__(self, other: Any) -> Tensor:
        return _ops.remainder(other, self)

    def __and__(self, other: Any) -> Tensor:
        return _ops.bitwise_and(self, other)

    def __rand__(self, other: Any) -> Tensor:
        return _ops.bitwise_and(other, self)

    def __or__(self, other: Any) -> Tensor:
        return _ops.bitwise_or(self, other)

    def __ror__(self, other: Any) -> Tensor:
        return _ops.bitwise_or(other, self)

    def __xor__(self, other: Any) -> Tensor:
        return _ops.bitwise_xor(self, other)

    def __rxor__(self, other: Any) -> Tensor:
        return _ops.bitwise_xor(other, self)

    def __lshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_left_shift(self, other)

    def __rlshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_left_shift(other, self)

    def __rshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_right_shift(self, other)

    def __rrshift__(self, other: Any) -> Tensor:
        return _ops.bitwise_right_shift(other, self)

    def __invert__(self) -> Tensor:
        return _ops.bitwise_not(self)

    def __abs__(self) -> Tensor:
        return _ops.abs(self)

    def sin(self) -> Tensor:
        """Elementwise sine."""
        return _ops.sin(self)

    def cos(self) -> Tensor:
        """Elementwise cosine."""
        return _ops.cos(self)

    def tan(self) -> Tensor:
        """Elementwise tangent."""
        return _ops.tan(self)

    def asin(self) -> Tensor:
        """Elementwise inverse sine."""
        return _ops.asin(self)

    def acos(self) -> Tensor:
        """Elementwise inverse cosine."""
        return _ops.acos(self)

    def atan(self) -> Tensor:
        """Elementwise inverse tangent."""
        return _ops.atan(self)

    def sinh(self) -> Tensor:
        """Elementwise hyperbolic sine."""
        return _ops.sinh(self)

    def cosh(self) -> Tensor:
        """Elementwise hyperbolic cosine."""
        return _ops.cosh(self)

    def asinh(self) -> Tensor:
        """Elementwise inverse hyperbolic sine."""
        return _ops.asinh(self)

    def acosh(self) -> Tensor:
        """Elementwise inverse hyperbolic cosine."""
        return _ops.acosh(self)

    def atanh(self) -> Tensor:
        """Elementwise inverse hyperbolic tangent."""
        return _ops.atanh(self)

    def arcsin(self) -> Tensor:
        """Elementwise inverse sine."""
        return _ops.arcsin(self)

    def arccos(self) -> Tensor:
        """Elementwise inverse cosine."""
        return _ops.arccos(self)

    def arctan(self) -> Tensor:
        """Elementwise inverse tangent."""
        return _ops.arctan(self)

    def arcsinh(self) -> Tensor:
        """Elementwise inverse hyperbolic sine."""
        return _ops.arcsinh(self)

    def arccosh(self) -> Tensor:
        """Elementwise inverse hyperbolic cosine."""
        return _ops.arccosh(self)

    def arctanh(self) -> Tensor:
        """Elementwise inverse hyperbolic tangent."""
        return _ops.arctanh(self)

    def log2(self) -> Tensor:
        """Elementwise base-2 logarithm."""
        return _ops.log2(self)

    def log10(self) -> Tensor:
        """Elementwise base-10 logarithm."""
        return _ops.log10(self)

    def log1p(self) -> Tensor:
        """Elementwise log(1 + x)."""
        return _ops.log1p(self)

    def exp2(self) -> Tensor:
        """Elementwise 2**x."""
        return _ops.exp2(self)

    def expm1(self) -> Tensor:
        """Elementwise exp(x) - 1."""
        return _ops.expm1(self)

    def erf(self) -> Tensor:
        """Elementwise error function."""
        return _ops.erf(self)

    def erfinv(self) -> Tensor:
        """Elementwise inverse error function."""
        return _ops.erfinv(self)

    def reciprocal(self) -> Tensor:
        """Elementwise 1 / x."""
        return _ops.reciprocal(self)

    def rsqrt(self) -> Tensor:
        """Elementwise 1 / sqrt(x)."""
        return _ops.rsqrt(self)

    def square(self) -> Tensor:
        """Elementwise x * x."""
        return _ops.square(self)

    def floor(self) -> Tensor:
        """Elementwise round down."""
        return _ops.floor(self)

    def ceil(self) -> Tensor:
        """Elementwise round up."""
        return _ops.ceil(self)

    def trunc(self) -> Tensor:
        """Elementwise round toward zero."""
        return _ops.trunc(self)

    def fix(self) -> Tensor:
        """Elementwise round toward zero."""
        return _ops.fix(self)

    def frac(self) -> Tensor:
        """Elementwise x - trunc(x)."""
        return _ops.frac(self)

    def sign(self) -> Tensor:
        """Elementwise sign (-1, 0, 1)."""
        return _ops.sign(self)

    def isnan(self) -> Tensor:
        """True where x is nan."""
        return _ops.isnan(self)

    def isinf(self) -> Tensor:
        """True where x is infinite."""
        return _ops.isinf(self)

    def isfinite(self) -> Tensor:
        """True where x is finite."""
        return _ops.isfinite(self)

    def bitwise_not(self) -> Tensor:
        """Elementwise ~x (integers, bools)."""
        return _ops.bitwise_not(self)

    def atan2(self, other: Any) -> Tensor:
        """Elementwise atan2(x, other)."""
        return _ops.atan2(self, other)

    def arctan2(self, other: Any) -> Tensor:
        """Elementwise atan2(x, other)."""
        return _ops.arctan2(self, other)

    def logaddexp(self, other: Any) -> Tensor:
        """Elementwise log(exp(x) + exp(other))."""
        return _ops.logaddexp(self, other)

    def hypot(self, other: Any) -> Tensor:
        """Elementwise sqrt(x**2 + other**2)."""
        return _ops.hypot(self, other)

    def copysign(self, other: Any) -> Tensor:
        """|x| with the sign of other."""
        return _ops.copysign(self, other)

    def floor_divide(self, other: Any) -> Tensor:
        """Elementwise x // other (rounded down)."""
        return _ops.floor_divide(self, other)

    def remainder(self, other: Any) -> Tensor:
        """Elementwise x % other (the divisor's sign)."""
        return _ops.remainder(self, other)

    def fmod(self, other: Any) -> Tensor:
        """Elementwise C fmod (the dividend's sign)."""
        return _ops.fmod(self, other)

    def bitwise_and(self, other: Any) -> Tensor:
        """Elementwise x & other."""
        return _ops.bitwise_and(self, other)

    def bitwise_or(self, other: Any) -> Tensor:
        """Elementwise x | other."""
        return _ops.bitwise_or(self, other)

    def bitwise_xor(self, other: Any) -> Tensor:
        """Elementwise x ^ other."""
        return _ops.bitwise_xor(self, other)

    def bitwise_left_shift(self, other: Any) -> Tensor:
        """Elementwise x << other."""
        return _ops.bitwise_left_shift(self, other)

    def bitwise_right_shift(self, other: Any) -> Tensor:
        """Elementwise x >> other."""
        return _ops.bitwise_right_shift(self, other)

    def minimum(self, other: Any) -> Tensor:
        """Elementwise minimum of two tensors (broadcasting)."""
        return _ops.minimum(self, other)

    def prelu(self, weight: Any) -> Tensor:
        """x where x > 0, else weight * x."""
        return _ops.prelu(self, weight)

    def round(self, decimals: int = 0) -> Tensor:
        """Elementwise round to ``decimals`` places, halves to even."""
        return _ops.round(self, decimals)

    def lerp(self, end: Any, weight: Any) -> Tensor:
        """self + weight * (end - self)."""
        return _ops.lerp(self, end, weight)

    def isclose(self, other: Any, rtol: float = 1e-05, atol: float = 1e-08,
                equal_nan: bool = False) -> Tensor:
        """|self - other| <= atol + rtol * |other| elementwise."""
        return _ops.isclose(self, other, rtol, atol, equal_nan)

    def divide(self, other: Any, rounding_mode: str | None = None) -> Tensor:
        """Elementwise quotient (div's other name)."""
        return _ops.div(self, other, rounding_mode)

    def true_divide(self, other: Any) -> Tensor:
        """Elementwise true quotient."""
        return _ops.div(self, other)
