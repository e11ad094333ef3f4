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

    def div(self, other: Any) -> Tensor:
        """Elementwise quotient (broadcasting)."""
        return _ops.div(self, other)

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
    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes if None)."""
        return _ops.sum(self, axis, keepdims)

    @torch_names
    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (all axes if None)."""
        return _ops.mean(self, axis, keepdims)

    @torch_names
    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; ties share the gradient equally."""
        return _ops.max(self, axis, keepdims)

    @torch_names
    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Minimum over ``axis``; ties share the gradient equally."""
        return _ops.min(self, axis, keepdims)

    @torch_names
    def var(self, axis: int | Sequence[int] | None = None, keepdims: bool = False,
            correction: int = 1) -> Tensor:
        """Variance over ``axis`` with Bessel's ``correction`` (1, as in PyTorch, by default)."""
        return _ops.var(self, axis, keepdims, correction)

    @torch_names
    def std(self, axis: int | Sequence[int] | None = None, keepdims: bool = False,
            correction: int = 1) -> Tensor:
        """Standard deviation over ``axis`` (``correction`` as in var)."""
        return _ops.std(self, axis, keepdims, correction)

    @torch_names
    def logsumexp(self, axis: int | Sequence[int] | None = None, keepdims: bool = False
                  ) -> Tensor:
        """log(sum(exp(x))) over ``axis``, computed without overflow."""
        return _ops.logsumexp(self, axis, keepdims)

    @torch_names
    def softmax(self, axis: int = -1) -> Tensor:
        """exp(x) / sum(exp(x)) along ``axis``, computed without overflow."""
        return _ops.softmax(self, axis)

    @torch_names
    def log_softmax(self, axis: int = -1) -> Tensor:
        """x - logsumexp(x) along ``axis``."""
        return _ops.log_softmax(self, axis)

    @torch_names
    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the maxima (no gradient)."""
        return _indices(np.argmax, self, axis, keepdims, "argmax")

    @torch_names
    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the minima (no gradient)."""
        return _indices(np.argmin, self, axis, keepdims, "argmin")

    def any(self) -> bool:
        """True if any element is nonzero."""
        return bool(self._data.any())

    def all(self) -> bool:
        """True if every element is nonzero."""
        return bool(self._data.all())

    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        """The same elements in a new shape (one entry may be -1)."""
        return _ops.reshape(self, *shape)

    view = reshape

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
    def squeeze(self, axis: int | Sequence[int] | None = None) -> Tensor:
        """Remove size-1 axes (all of them, or those in ``axis``)."""
        return _ops.squeeze(self, axis)

    @torch_names
    def unsqueeze(self, axis: int) -> Tensor:
        """Insert a size-1 axis at ``axis``."""
        return _ops.unsqueeze(self, axis)

    def expand(self, *shape: int | Sequence[int]) -> Tensor:
        """Broadcast to ``shape`` without copying (-1 keeps a size)."""
        return _ops.expand(self, *shape)

    @torch_names
    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor:
        """Merge the axes from ``start_axis`` to ``end_axis`` into one."""
        return _ops.flatten(self, start_axis, end_axis)


    # >>> area A: scans, sorting, reductions, linear algebra
    # <<< area A
    # >>> area B: shape and selection
    # <<< area B
    # >>> area C: elementwise maths and activations
    # <<< area C
    # >>> area D: convolution, pooling, padding, resizing
    # <<< area D
    # >>> area E: losses, normalisation, embedding and other layers
    # <<< area E

def _indices(find: Any, tensor: Tensor, axis: int | None, keepdims: bool, op: str) -> Tensor:
    """argmax/argmin: NumPy's answer, with the axis checked as every op checks one."""
    from chainrule import validate
    from chainrule.engine.tensor import Tensor

    data = tensor._data
    if axis is not None:
        axis = validate.axis(op, "axis", axis, data.ndim)
        if data.ndim == 0:
            axis = None  # a 0-d tensor: its one element is at index 0, as in PyTorch
    return Tensor(find(data, axis=axis, keepdims=keepdims))
