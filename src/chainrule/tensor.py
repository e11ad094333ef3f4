"""Tensor: a NumPy array that remembers which Function made it, and the tape walk (backward)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from chainrule import backend


class _State:
    """Engine-wide switches, in one object that every module imports by name.

    (``from chainrule import tensor`` would give the factory function of that name.)
    """

    __slots__ = ("grad_enabled", "sentinel")

    def __init__(self) -> None:
        self.grad_enabled = True
        self.sentinel: Any = None  # a check.Sentinel while one is active


STATE = _State()


def is_grad_enabled() -> bool:
    """Whether new ops are recorded on the tape."""
    return STATE.grad_enabled


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        # A stack, not one slot: the same object may be entered again while active (a
        # decorated function that recurses, or one context manager reused).
        self._previous: list[bool] = []

    def __enter__(self) -> None:
        self._previous.append(STATE.grad_enabled)
        STATE.grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        STATE.grad_enabled = self._previous.pop()


def no_grad() -> _GradMode:
    """Context manager (or decorator) in which ops are not recorded: inference, optimizer steps."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Context manager (or decorator) that records ops again inside a ``no_grad`` block."""
    return _GradMode(True)


# Marks a node whose saved buffers were released by a backward() without retain_graph.
_FREED = object()


def _as_data(value: Any, dtype: Any = None, where: str = "tensor") -> np.ndarray:
    """Turn ``value`` into an ndarray with a supported dtype (Python floats -> default dtype)."""
    if isinstance(value, Tensor):
        value = value._data
    if isinstance(value, np.ndarray):
        array = value if dtype is None else value.astype(dtype, copy=False)
    else:
        if isinstance(value, (list, tuple)):
            value = _unwrap_tensors(value, where)
        try:
            array = np.asarray(value, dtype=dtype)
        except (ValueError, TypeError) as error:
            raise _conversion_error(value, where, error) from None
        if dtype is None and array.dtype == np.float64 and not isinstance(value, np.generic):
            # Python floats carry no precision of their own: they take the default dtype.
            array = array.astype(backend.get_default_dtype())
    if array.dtype.kind == "O" and not isinstance(value, np.ndarray):
        raise TypeError(f"{where}: cannot make a tensor from {type(value).__name__}; give "
                        "numbers, nested lists of numbers or a NumPy array")
    backend.check_dtype(array.dtype, where)
    return array


def _unwrap_tensors(items: list | tuple, where: str) -> Any:
    """Nested lists with the tensors in them replaced by their arrays; a tensor that needs a
    gradient is refused, since copying its values would silently cut it from the tape."""
    if not any(isinstance(item, (Tensor, list, tuple)) for item in items):
        return items
    unwrapped = []
    for item in items:
        if isinstance(item, Tensor):
            if item.requires_grad:
                raise TypeError(f"{where}: the list holds a tensor that requires a gradient; "
                                "making a tensor copies values and would cut it from the "
                                "tape. Use cr.stack([...]) to keep the gradient (or detach() "
                                "it first)")
            item = item._data
        elif isinstance(item, (list, tuple)):
            item = _unwrap_tensors(item, where)
        unwrapped.append(item)
    return unwrapped


def _conversion_error(value: Any, where: str, error: Exception) -> Exception:
    """NumPy's complaint about ``value``, said in terms of what to fix."""
    if isinstance(value, (list, tuple)) and "inhomogeneous" in str(error):
        return ValueError(f"{where}: the nested lists are ragged (rows of different lengths, "
                          f"or numbers mixed with lists): every row must have the same length. "
                          f"NumPy said: {error}")
    return TypeError(f"{where}: cannot make a tensor from {type(value).__name__} ({error})")


class Tensor:
    """An n-dimensional array with reverse-mode autograd.

    ``data`` is the NumPy array; ``grad`` is a NumPy array of the same shape, filled in by
    ``backward()`` for leaves with ``requires_grad=True``. A tensor made by an op remembers the
    op (``grad_fn``), the op's context and its input tensors: that record is the tape.
    """

    __slots__ = ("_data", "_counter", "grad", "requires_grad", "grad_fn", "_ctx", "_parents",
                 "_born", "_retains_grad", "_hooks", "name", "g", "__weakref__")
    # Let NumPy hand `ndarray + tensor` to Tensor.__radd__ instead of converting the tensor.
    __array_ufunc__ = None

    def __init__(self, data: Any, dtype: Any = None, requires_grad: bool = False,
                 name: str | None = None) -> None:
        self._data = _as_data(data, dtype)
        if requires_grad and self._data.dtype.kind != "f":
            raise TypeError(
                f"tensor: only floating tensors can require gradients, got {self._data.dtype}; "
                "create it with dtype=float32 or float64"
            )
        # A tensor that shares another's array shares its version counter (see _version).
        shared = isinstance(data, Tensor) and data._data is self._data
        self._counter: list[int] = data._counter if shared else [0]
        self._born = 0
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self.grad_fn: type | None = None  # the Function class that made this tensor
        self._ctx: Any = None
        self._parents: tuple[Tensor | None, ...] = ()
        self._retains_grad = False
        self._hooks: list | None = None
        self.name = name
        self.g: Any = None  # the seed's hand-written gradient slot, used by Module.bwd layers

    @classmethod
    def _from_op(cls, data: np.ndarray, fn: type | None, ctx: Any,
                 parents: tuple[Tensor | None, ...]) -> Tensor:
        """Wrap an op's output without re-checking its dtype (the fast path of Function.apply).

        ``parents`` are the op's inputs (None where an input is not a tensor). ``_born`` is the
        modification clock at this moment: backward refuses the op if any of them, or this
        output, was changed in place later (see ``_version``).
        """
        out = cls.__new__(cls)
        out._data = data
        out._counter = [0]
        out.grad = None
        out.requires_grad = fn is not None
        out.grad_fn = fn
        out._ctx = ctx
        out._parents = parents
        out._born = _CLOCK[0]
        out._retains_grad = False
        out._hooks = None
        out.name = None
        out.g = None
        return out

    # ----------------------------------------------------------------- data and its version
    @property
    def data(self) -> np.ndarray:
        """The NumPy array this tensor holds (shared, not copied)."""
        return self._data

    @data.setter
    def data(self, value: Any) -> None:
        if value is self._data:
            # `t.data += 1` and the other augmented assignments change the array in place
            # and then assign it back: ops that kept the array for backward must learn of it.
            self._bump_version()
            return
        array = _as_data(value, where="data")
        if self.requires_grad and array.dtype.kind != "f":
            raise TypeError(f"data: this tensor requires a gradient, so its data must be "
                            f"float32 or float64, got {array.dtype}")
        # A new array: what ops saved is the old one, still intact, so nothing is bumped.
        self._data = array

    @property
    def _version(self) -> int:
        """When this tensor's array was last changed in place by chainrule's own means: a
        stamp of a clock that ticks at every such change (0 for never), so it only grows.

        Optimizer steps, load_state_dict, the init functions and augmented assignment to
        ``.data`` (``t.data -= lr * t.grad``) tick it, on every tensor sharing the array too
        (``detach()``, ``Parameter(t)``, views such as ``t.T`` or ``t[1:]``). Backward refuses
        an op whose input or output changed after the op ran. Writes straight into the NumPy
        array (``t.data[0] = 1``, ``np.copyto``, or into the array given to ``from_numpy``) are
        invisible to chainrule: see README.
        """
        return self._counter[0]

    def _bump_version(self) -> None:
        """Record an in-place change of this tensor's array (for the backward check)."""
        _CLOCK[0] += 1
        self._counter[0] = _CLOCK[0]

    # ----------------------------------------------------------------- basic properties
    @property
    def shape(self) -> tuple[int, ...]:
        """The shape of ``data``."""
        return self._data.shape

    @property
    def ndim(self) -> int:
        """Number of dimensions."""
        return self._data.ndim

    @property
    def size(self) -> int:
        """Number of elements."""
        return self._data.size

    @property
    def dtype(self) -> np.dtype:
        """The NumPy dtype of ``data``."""
        return self._data.dtype

    @property
    def is_leaf(self) -> bool:
        """True for tensors not made by a recorded op (parameters, inputs)."""
        return self.grad_fn is None

    def numpy(self) -> np.ndarray:
        """The underlying NumPy array (shared, not copied)."""
        return self._data

    def item(self) -> float | int | bool:
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise ValueError(
                f"item(): tensor of shape {self.shape} has {self.size} elements, not 1")
        return self._data.item()

    def tolist(self) -> Any:
        """The data as nested Python lists."""
        return self._data.tolist()

    def detach(self) -> Tensor:
        """A tensor sharing this data but cut from the tape (no gradient flows through it)."""
        out = Tensor._from_op(self._data, None, None, ())
        out._counter = self._counter  # one array, one version count
        return out

    def clone(self) -> Tensor:
        """A copy with its own memory; unlike detach(), gradients flow through it."""
        return _ops.clone(self)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set ``requires_grad`` in place on a leaf; returns self."""
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach() instead")
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only floating tensors can require gradients, "
                            f"this one is {self.dtype}")
        self.requires_grad = requires_grad
        return self

    def register_hook(self, hook: Any) -> HookHandle:
        """Call ``hook(grad)`` when this tensor's gradient is complete during backward.

        A hook may return a replacement gradient (or None to keep it). Returns a handle whose
        ``remove()`` unregisters the hook.
        """
        if not self.requires_grad:
            raise RuntimeError("register_hook: this tensor does not require a gradient")
        if self._hooks is None:
            self._hooks = []
        self._hooks.append(hook)
        return HookHandle(self._hooks, hook)

    def retain_grad(self) -> Tensor:
        """Keep ``grad`` on this non-leaf tensor after backward (leaves always keep it)."""
        self._retains_grad = True
        return self

    def astype(self, dtype: Any) -> Tensor:
        """A copy converted to ``dtype``; differentiable between float dtypes, and the end of
        the tape for integer and bool ones (as in PyTorch)."""
        from chainrule.ops.elementwise import CastOp

        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"astype: {dtype!r} is not a dtype") from None
        return CastOp.apply(self, dtype=backend.check_dtype(dtype, "astype"))

    def float(self) -> Tensor:
        """Convert to the default float dtype (float32 unless changed)."""
        return self.astype(backend.get_default_dtype())

    def double(self) -> Tensor:
        """Convert to float64."""
        return self.astype(np.float64)

    def long(self) -> Tensor:
        """Convert to int64 (no gradient)."""
        return Tensor(self._data.astype(np.int64))

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        for i in range(len(self)):
            yield self[i]

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.size} elements is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self._data)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        return self._data if dtype is None else self._data.astype(dtype)

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        body = np.array2string(self._data, separator=", ", prefix="tensor(", precision=4,
                               threshold=200, edgeitems=3)
        extras = []
        if self.dtype != backend.get_default_dtype() and self.dtype != np.int64 \
                and self.dtype != np.bool_:
            extras.append(f"dtype={self.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # ----------------------------------------------------------------- the tape walk
    def backward(self, gradient: Any = None, retain_graph: bool = False) -> None:
        """Fill ``grad`` of every leaf this tensor depends on, by the chain rule.

        Nodes are visited in reverse topological order, so each node's gradient is complete
        (summed over all its uses) before its Function's backward turns it into input gradients.
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward(): this tensor does not require a gradient: none of the tensors it was "
                "computed from has requires_grad=True (or it was computed under no_grad())"
            )
        if gradient is None:
            if self._data.size != 1:
                raise RuntimeError(
                    f"backward(): the tensor has shape {self.shape}; gradients are implicit only "
                    "for a single-element output. Pass backward(gradient) with that shape, or "
                    "reduce it first (e.g. .sum() or .mean())"
                )
            gradient = np.array(1, self._data.dtype)  # (np.ones is Python code)
            if self._data.ndim:
                gradient = np.full(self._data.shape, gradient)
        else:
            gradient = _as_data(gradient, self.dtype, "backward(gradient)")
            if gradient.shape != self.shape:
                raise ValueError(
                    f"backward(): gradient has shape {gradient.shape} but the tensor has shape "
                    f"{self.shape}; they must match"
                )
        grads: dict[int, np.ndarray] = {id(self): gradient}
        # Gradients of leaves nobody watches, summed as they arrive and stored at the end:
        # .grad + ((g1 + g2) + g3), the order torch adds in.
        leaves: dict[int, tuple[Tensor, np.ndarray]] = {}
        sentinel = STATE.sentinel
        for node in reversed(_topological_order(self)):
            grad = grads.pop(id(node), None)
            if grad is None:
                continue
            if node._hooks:
                grad = _run_hooks(node, grad)
            fn = node.grad_fn
            if fn is None:
                _accumulate(node, grad)
                continue
            if node._retains_grad:  # a copy: fn.backward below still gets (and may change) grad
                _accumulate(node, grad, may_keep=False)
            ctx = node._ctx
            if ctx is _FREED:
                raise RuntimeError(
                    f"backward() through {fn.__name__} a second time: its saved buffers were "
                    "freed by the first backward(). Pass retain_graph=True to the first call"
                )
            parents = node._parents
            if _CLOCK[0] > node._born:  # something changed in place since the op ran
                _check_unchanged(node, fn)
            returned = fn.backward(ctx, grad)
            # A list, so that each gradient's last reference can be dropped before it is
            # handed on: _accumulate keeps an array nothing else holds instead of copying it.
            if type(returned) is tuple:
                input_grads = list(returned)
            elif returned is None and True in ctx.needs_input_grad:
                raise TypeError(
                    f"{fn.__name__}.backward returned None, but input "
                    f"{ctx.needs_input_grad.index(True)} needs a gradient: did it forget "
                    "`return`? Return one gradient per input (None only for inputs that need "
                    "none), as a tuple when there are several"
                )
            else:
                input_grads = [returned]
            returned = grad = None
            if len(input_grads) != len(parents):
                listed = type(input_grads[0]) is list and len(input_grads) == 1
                raise RuntimeError(
                    f"{fn.__name__}.backward returned {len(input_grads)} gradients for "
                    f"{len(parents)} inputs; return one per input (None for no gradient)"
                    + (", as a tuple: a list counts as one gradient" if listed else "")
                )
            for index, parent in enumerate(parents):
                if parent is None:
                    continue
                input_grad = input_grads[index]
                if input_grad is None or not parent.requires_grad:
                    continue
                input_grads[index] = None
                data = parent._data
                if type(input_grad) is not np.ndarray or input_grad.dtype != data.dtype:
                    input_grad = _as_gradient(input_grad, data.dtype, fn, index)
                if input_grad.shape != data.shape:
                    input_grad = _fit_to(input_grad, data.shape, node._data.shape, fn, index)
                if sentinel is not None:
                    sentinel.check_backward(fn, index, input_grad)
                if parent.grad_fn is None and not parent._hooks:
                    # A leaf nobody watches (a parameter, usually) is not in the order: its
                    # gradients are summed here and stored after the walk.
                    key = id(parent)
                    held = leaves.get(key)
                    leaves[key] = (parent, input_grad if held is None else held[1] + input_grad)
                    held = None
                    continue
                key = id(parent)
                held = grads.get(key)
                # Out of place: an op may hand the same array to two inputs (add does).
                grads[key] = input_grad if held is None else held + input_grad
                held = None
            input_grad = None
            if not retain_graph:
                node._ctx = _FREED
        while leaves:
            # popitem: the dict lets go of the gradient, so _accumulate may keep it uncopied.
            _, (leaf, leaf_grad) = leaves.popitem()
            _accumulate(leaf, leaf_grad)

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

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over ``axis`` (all axes if None)."""
        return _ops.sum(self, axis, keepdims)

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over ``axis`` (all axes if None)."""
        return _ops.mean(self, axis, keepdims)

    def max(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Maximum over ``axis``; ties share the gradient equally."""
        return _ops.max(self, axis, keepdims)

    def min(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        """Minimum over ``axis``; ties share the gradient equally."""
        return _ops.min(self, axis, keepdims)

    def var(self, axis: int | Sequence[int] | None = None, keepdims: bool = False,
            correction: int = 1) -> Tensor:
        """Variance over ``axis`` with Bessel's ``correction`` (1, as in PyTorch, by default)."""
        return _ops.var(self, axis, keepdims, correction)

    def std(self, axis: int | Sequence[int] | None = None, keepdims: bool = False,
            correction: int = 1) -> Tensor:
        """Standard deviation over ``axis`` (``correction`` as in var)."""
        return _ops.std(self, axis, keepdims, correction)

    def logsumexp(self, axis: int | Sequence[int] | None = None, keepdims: bool = False
                  ) -> Tensor:
        """log(sum(exp(x))) over ``axis``, computed without overflow."""
        return _ops.logsumexp(self, axis, keepdims)

    def softmax(self, axis: int = -1) -> Tensor:
        """exp(x) / sum(exp(x)) along ``axis``, computed without overflow."""
        return _ops.softmax(self, axis)

    def log_softmax(self, axis: int = -1) -> Tensor:
        """x - logsumexp(x) along ``axis``."""
        return _ops.log_softmax(self, axis)

    def argmax(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the maxima (no gradient)."""
        return Tensor(np.argmax(self._data, axis=axis, keepdims=keepdims))

    def argmin(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """Indices of the minima (no gradient)."""
        return Tensor(np.argmin(self._data, axis=axis, keepdims=keepdims))

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

    def squeeze(self, axis: int | Sequence[int] | None = None) -> Tensor:
        """Remove size-1 axes (all of them, or those in ``axis``)."""
        return _ops.squeeze(self, axis)

    def unsqueeze(self, axis: int) -> Tensor:
        """Insert a size-1 axis at ``axis``."""
        return _ops.unsqueeze(self, axis)

    def expand(self, *shape: int | Sequence[int]) -> Tensor:
        """Broadcast to ``shape`` without copying (-1 keeps a size)."""
        return _ops.expand(self, *shape)

    def flatten(self, start_axis: int = 0, end_axis: int = -1) -> Tensor:
        """Merge the axes from ``start_axis`` to ``end_axis`` into one."""
        return _ops.flatten(self, start_axis, end_axis)


class HookHandle:
    """Returned by register_hook and register_forward_hook; ``remove()`` unregisters."""

    def __init__(self, hooks: list, hook: Any) -> None:
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        """Unregister the hook (removing twice is harmless)."""
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


def _topological_order(root: Tensor) -> list[Tensor]:
    """Every tensor needing a gradient that ``root`` depends on, inputs before outputs,
    except leaves without hooks (backward sums their gradients and stores them after the walk).

    Iterative depth-first search, so deep graphs (hundreds of layers) do not hit the recursion
    limit.
    """
    order: list[Tensor] = []
    visited: set[int] = {id(root)}
    # Each entry: a node and an iterator over its parents still to visit.
    stack = [(root, iter(root._parents))]
    while stack:
        node, parents = stack[-1]
        for parent in parents:
            if parent is None or not parent.requires_grad or id(parent) in visited:
                continue
            if parent.grad_fn is not None or parent._hooks:  # unwatched leaves: see backward
                visited.add(id(parent))
                stack.append((parent, iter(parent._parents)))
                break
        else:  # every parent done: the node goes after them
            stack.pop()
            order.append(node)
    return order


# References to ``grad`` while _accumulate runs when nothing else holds it: the caller's
# local, the parameter and getrefcount's own argument. Checked on CPython up to 3.13; 3.14
# counts borrowed references differently, and other interpreters have no getrefcount: there
# gradients are copied.
_PRIVATE_REFS = 3
_refcount = getattr(sys, "getrefcount", None) if sys.version_info < (3, 14) else None


def _accumulate(tensor: Tensor, grad: np.ndarray, may_keep: bool = True) -> None:
    """Add ``grad`` into ``tensor.grad`` (gradients of a tensor used twice add up)."""
    if tensor.grad is None:
        # Keep the array itself when nothing else can see it (a fresh result no other
        # tensor, op or hook holds, not a view); otherwise a copy, since a later
        # accumulation adds into tensor.grad in place. Saves a parameter-sized copy per
        # parameter per step.
        if (may_keep and _refcount is not None and _refcount(grad) <= _PRIVATE_REFS
                and grad.base is None and grad.dtype == tensor._data.dtype):
            flags = grad.flags
            if flags.writeable and flags.c_contiguous:
                tensor.grad = grad
                return
        tensor.grad = np.array(grad, dtype=tensor._data.dtype, copy=True)
    else:
        tensor.grad += grad


def _fit_to(grad: np.ndarray, shape: tuple[int, ...], out_shape: tuple[int, ...], fn: type,
            index: int) -> np.ndarray:
    """Sum ``grad`` over the axes that broadcasting ``shape`` into the output added or
    stretched; any other mismatch is the op's mistake, and the error says so.

    An axis counts as broadcast only when the output has it too, with the gradient's size, at
    the same place counted from the right (as broadcasting aligns shapes): a gradient with an
    axis the output lacks is not one the engine may guess a sum for.
    """
    extra = grad.ndim - len(shape)
    offset = len(out_shape) - grad.ndim
    broadcast = extra >= 0 and offset >= 0
    if broadcast:
        for axis, size in enumerate(grad.shape):
            own = shape[axis - extra] if axis >= extra else 1
            if size != own and not (own == 1 and size == out_shape[axis + offset]):
                broadcast = False
                break
    if not broadcast:
        raise RuntimeError(
            f"{fn.__name__}.backward returned a gradient of shape {grad.shape} for input "
            f"{index} of shape {shape} (the output has shape {out_shape}). A gradient must have "
            "its input's shape, or the shape that input was broadcast to in the output (the "
            "engine sums that back); sum any other axes in backward yourself"
        )
    return backend.unbroadcast(grad, shape)


def _as_gradient(value: Any, dtype: np.dtype, fn: type, index: int) -> np.ndarray:
    """A gradient a backward returned, as an array of its input's dtype (as PyTorch casts)."""
    array = np.asarray(value._data if isinstance(value, Tensor) else value)
    if array.dtype.kind not in "fiub":
        raise TypeError(f"{fn.__name__}.backward returned a gradient of dtype {array.dtype} "
                        f"for input {index}; return a float array of the input's dtype ({dtype})")
    return array if array.dtype == dtype else array.astype(dtype)


def _run_hooks(node: Tensor, grad: np.ndarray) -> np.ndarray:
    """Call the tensor's hooks in order; each may replace the gradient with one of its shape."""
    for hook in node._hooks:
        replaced = hook(grad)
        if replaced is None:
            continue
        replaced = np.asarray(replaced._data if isinstance(replaced, Tensor) else replaced)
        if replaced.shape != grad.shape or replaced.dtype.kind not in "fiub":
            name = getattr(hook, "__qualname__", type(hook).__name__)
            raise RuntimeError(
                f"hook {name} on a tensor of shape {node.shape} returned a gradient of shape "
                f"{replaced.shape} and dtype {replaced.dtype}; return an array of shape "
                f"{grad.shape} (or None to keep the gradient as it is)"
            )
        grad = replaced if replaced.dtype == grad.dtype else replaced.astype(grad.dtype)
    return grad


def _check_unchanged(node: Tensor, fn: type) -> None:
    """Refuse ``fn``'s backward if an input, or its output, was changed in place after it ran:
    the backward would read the new values, a silently wrong gradient."""
    for index, parent in enumerate(node._parents):
        if parent is not None and parent._counter[0] > node._born:
            raise RuntimeError(_modified(fn, f"input {index}", parent))
    if node._counter[0] > node._born:
        raise RuntimeError(_modified(fn, "the output", node))


def _modified(fn: type, what: str, tensor: Tensor) -> str:
    name = f" ({tensor.name})" if tensor.name else ""
    return (f"backward(): {what}{name} of {fn.__name__} (shape {tensor.shape}) was modified "
            f"in place after {fn.__name__} ran: an optimizer step, load_state_dict or an "
            "in-place write to .data in between. Its backward would use the new values and "
            "give a wrong gradient. Run the forward again after the change, or change a copy "
            "(t.clone())")


#: The modification clock: it ticks at every in-place change chainrule sees, and a tensor's
#: counter holds the tick of its last change, so "changed after the op ran" is one comparison.
_CLOCK = [0]


# Imported last: the ops build Tensors, so they need this module complete first.
from chainrule import ops as _ops  # noqa: E402
