"""Tensor: a NumPy array that remembers which Function made it; grad mode; version stamps.

The tape walk itself is chainrule.engine.autograd; the operators and op methods (``x + y``,
``x.sum()``) are chainrule.engine.tensor_methods, which Tensor inherits.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule.engine import backend
from chainrule.engine.tensor_methods import TensorMethods


class _State(threading.local):
    """The engine's switches, one set per thread (as PyTorch's grad mode is), in one object
    that every module imports by name.

    (``from chainrule import tensor`` would give the factory function of that name.)
    """

    def __init__(self) -> None:  # run once in each thread that uses STATE
        self.grad_enabled = True
        self.sentinel: Any = None  # a check.Sentinel while one is active
        self.tracer: Any = None  # an export.Trace while one records
        self.saved_modes: list[bool] = []  # what each open no_grad/enable_grad restores


STATE = _State()


def untaped(name: str, args: dict[str, Any], out: Tensor) -> Tensor:
    """``out``, made by an op that is no Function (comparisons, logical and bitwise ops:
    bool or integer results, no gradient), told to the active tracer if there is one."""
    if STATE.tracer is not None:
        STATE.tracer.record_untaped(name, args, out)
    return out


def is_grad_enabled() -> bool:
    """Whether new ops are recorded on the tape."""
    return STATE.grad_enabled


class _GradMode(contextlib.ContextDecorator):
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    # The modes to restore are kept on the thread's own stack, not on this object: one object
    # may be entered again while active (a decorated function that recurses) and from several
    # threads at once (a decorated function), and blocks nest within a thread.
    def __enter__(self) -> None:
        state = STATE
        state.saved_modes.append(state.grad_enabled)
        state.grad_enabled = self.enabled

    def __exit__(self, *exc: object) -> None:
        STATE.grad_enabled = STATE.saved_modes.pop()


def no_grad() -> _GradMode:
    """Context manager (or decorator) in which ops are not recorded: inference, optimizer steps."""
    return _GradMode(False)


def enable_grad() -> _GradMode:
    """Context manager (or decorator) that records ops again inside a ``no_grad`` block."""
    return _GradMode(True)


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


def _shape_of(shape: tuple) -> tuple[int, ...]:
    """``f(2, 3)`` and ``f((2, 3))`` both mean the shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


class Size(int):
    """A tensor's element count that, called, gives its shape: ``x.size == x.numel()`` as in
    NumPy, ``x.size() == x.shape`` and ``x.size(0) == x.shape[0]`` as in PyTorch."""

    shape: tuple[int, ...]

    def __new__(cls, count: int, shape: tuple[int, ...]) -> Size:
        size = super().__new__(cls, count)
        size.shape = shape
        return size

    def __call__(self, dim: int | None = None) -> tuple[int, ...] | int:
        if dim is None:
            return self.shape
        from chainrule import validate

        if not self.shape:
            raise validate.AxisError(f"size: a 0-d tensor has no dimension {dim}")
        return self.shape[validate.axis("size", "dim", dim, len(self.shape))]


class Tensor(TensorMethods):
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
    def size(self) -> Size:
        """Number of elements (NumPy's ``x.size``); called, the shape (PyTorch's ``x.size()``,
        ``x.size(0)``)."""
        return Size(self._data.size, self._data.shape)

    def numel(self) -> int:
        """Number of elements."""
        return self._data.size

    def dim(self) -> int:
        """Number of dimensions (PyTorch's name for ndim)."""
        return self._data.ndim

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

    def int(self) -> Tensor:
        """Convert to int32 (no gradient)."""
        return self.astype(np.int32)

    def bool(self) -> Tensor:
        """Convert to bool (no gradient)."""
        return self.astype(np.bool_)

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """PyTorch's ``x.to(dtype)``: convert to ``dtype`` (a NumPy dtype, its name, or another
        tensor's); a device ('cpu') is accepted and is always this one."""
        dtype = kwargs.pop("dtype", None)
        kwargs.pop("copy", None)
        if kwargs.pop("device", "cpu") not in ("cpu", None) or kwargs:
            raise TypeError(f"to: chainrule runs on the CPU only; got {kwargs or 'a device'}")
        for arg in args:
            if isinstance(arg, Tensor):
                dtype = arg.dtype
            elif isinstance(arg, str) and arg.split(":")[0] in ("cuda", "mps", "xpu", "meta"):
                raise TypeError(f"to: chainrule runs on the CPU only; got the device {arg!r}")
            elif arg != "cpu":
                dtype = arg
        if dtype is None:
            return self
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"to: {dtype!r} is neither a dtype nor 'cpu'") from None
        return self if dtype == self.dtype else self.astype(dtype)

    def type(self, dtype: Any = None) -> Tensor | str:
        """The dtype's name with no argument; else a copy converted to ``dtype``."""
        return str(self.dtype) if dtype is None else self.to(dtype)

    def type_as(self, other: Tensor) -> Tensor:
        """Convert to ``other``'s dtype."""
        return self.to(other.dtype)

    def cpu(self) -> Tensor:
        """This tensor (chainrule tensors always live in main memory)."""
        return self

    def contiguous(self) -> Tensor:
        """This tensor if its array is C-contiguous, else a contiguous copy (with gradient)."""
        return self if self._data.flags.c_contiguous else _ops.clone(self)

    def is_contiguous(self) -> bool:
        """True if the array is C-contiguous."""
        return bool(self._data.flags.c_contiguous)

    def is_floating_point(self) -> bool:
        """True for float32 and float64 tensors."""
        return self.dtype.kind == "f"

    def stride(self, dim: int | None = None) -> tuple[int, ...] | int:
        """Steps between elements along each axis, counted in elements (PyTorch's unit)."""
        strides = tuple(step // self._data.itemsize for step in self._data.strides)
        if dim is None:
            return strides
        from chainrule import validate

        return strides[validate.axis("stride", "dim", dim, self.ndim)]

    def element_size(self) -> int:
        """Bytes per element."""
        return self._data.itemsize

    def nelement(self) -> int:
        """Number of elements."""
        return self._data.size

    def ndimension(self) -> int:
        """Number of dimensions."""
        return self._data.ndim

    def new_tensor(self, data: Any, dtype: Any = None) -> Tensor:
        """A tensor of ``data`` in this tensor's dtype (or ``dtype``)."""
        return Tensor(np.array(data, dtype=self.dtype if dtype is None else dtype))

    def new_zeros(self, *shape: Any, dtype: Any = None) -> Tensor:
        """Zeros of ``shape`` in this tensor's dtype (or ``dtype``)."""
        return self.new_full(_shape_of(shape), 0, dtype=dtype)

    def new_ones(self, *shape: Any, dtype: Any = None) -> Tensor:
        """Ones of ``shape`` in this tensor's dtype (or ``dtype``)."""
        return self.new_full(_shape_of(shape), 1, dtype=dtype)

    def new_empty(self, *shape: Any, dtype: Any = None) -> Tensor:
        """An unset tensor of ``shape`` in this tensor's dtype (or ``dtype``)."""
        return Tensor(np.empty(_shape_of(shape), self.dtype if dtype is None else dtype))

    def new_full(self, shape: Any, fill_value: Any, dtype: Any = None) -> Tensor:
        """``fill_value`` everywhere, of ``shape``, in this tensor's dtype (or ``dtype``)."""
        return Tensor(np.full(_shape_of((shape,)), fill_value,
                              self.dtype if dtype is None else dtype))

    def expand_as(self, other: Tensor) -> Tensor:
        """Broadcast to ``other``'s shape."""
        return _ops.expand(self, other.shape)

    def view_as(self, other: Tensor) -> Tensor:
        """Reshape to ``other``'s shape."""
        return _ops.reshape(self, other.shape)

    reshape_as = view_as

    def equal(self, other: Any) -> bool:
        """True if ``other`` has this shape and every element is equal."""
        other_data = other._data if isinstance(other, Tensor) else np.asarray(other)
        return self.shape == other_data.shape and bool(np.array_equal(self._data, other_data))

    def allclose(self, other: Any, rtol: float = 1e-05, atol: float = 1e-08,
                 equal_nan: bool = False) -> bool:
        """True if every element is within atol + rtol * |other| of ``other``."""
        other_data = other._data if isinstance(other, Tensor) else np.asarray(other)
        return bool(np.allclose(self._data, other_data, rtol=rtol, atol=atol,
                                equal_nan=equal_nan))

    # ----------------------------------------------------------------- in place
    def _assign(self, op: str, result: Any) -> Tensor:
        """Write ``result`` into this tensor's array: PyTorch's in-place ops (``x.add_(y)``).

        The tape does not record them: on a tensor that requires a gradient they are refused
        while gradients are recorded (an optimizer's step runs under ``no_grad``, as in
        PyTorch). Any op that saved this array for its backward learns of the change through
        the version count, and its backward refuses to run.
        """
        if self.requires_grad and STATE.grad_enabled:
            instead = ("build the values out of place (cr.where(mask, value, x))"
                       if op == "__setitem__" else f"write x = x.{op.rstrip('_')}(...)")
            raise RuntimeError(
                f"{op}: this tensor requires a gradient, and chainrule does not record "
                f"in-place changes on the tape; {instead} instead, or make the change under "
                "`with cr.no_grad():`")
        data = result._data if isinstance(result, Tensor) else np.asarray(result)
        if not np.can_cast(data.dtype, self.dtype, "same_kind"):
            raise TypeError(f"{op}: the result is {data.dtype}, which cannot be written into "
                            f"this {self.dtype} tensor in place; convert it first")
        np.copyto(self._data, np.broadcast_to(data, self.shape)
                  if data.shape != self.shape else data, casting="same_kind")
        self._bump_version()
        return self

    def _in_place(self, op: str, compute: Any, *args: Any, **kwargs: Any) -> Tensor:
        """Run ``compute`` without recording it, then write the result in place."""
        if self.requires_grad and STATE.grad_enabled:
            return self._assign(op, self)  # refused, with the reason
        with no_grad():
            result = compute(self, *args, **kwargs)
        if result.shape != self.shape:
            raise ValueError(f"{op}: the result has shape {result.shape}, which does not fit "
                             f"this tensor's {self.shape} in place")
        return self._assign(op, result)

    def __setitem__(self, index: Any, value: Any) -> None:
        """``x[index] = value`` in place, with the rules of the in-place ops (see _assign)."""
        if self.requires_grad and STATE.grad_enabled:
            self._assign("__setitem__", self)  # refused, with the reason
        from chainrule.ops.shape import _plain_index

        data = value._data if isinstance(value, Tensor) else np.asarray(value)
        if not np.can_cast(data.dtype, self.dtype, "same_kind") and not (
                data.ndim == 0 and data.dtype.kind in "iub" and self.dtype.kind in "iubf"):
            raise TypeError(f"__setitem__: a {data.dtype} value cannot be written into this "
                            f"{self.dtype} tensor; convert it first")
        self._data[_plain_index(index)] = data
        self._bump_version()

    def add_(self, other: Any, alpha: float = 1) -> Tensor:
        """In place: self += alpha * other."""
        return self._in_place("add_", lambda x: x + (other if alpha == 1 else other * alpha))

    def sub_(self, other: Any, alpha: float = 1) -> Tensor:
        """In place: self -= alpha * other."""
        return self._in_place("sub_", lambda x: x - (other if alpha == 1 else other * alpha))

    def mul_(self, other: Any) -> Tensor:
        """In place: self *= other."""
        return self._in_place("mul_", lambda x: x * other)

    def div_(self, other: Any) -> Tensor:
        """In place: self /= other."""
        return self._in_place("div_", lambda x: x / other)

    def pow_(self, exponent: Any) -> Tensor:
        """In place: self **= exponent."""
        return self._in_place("pow_", lambda x: x ** exponent)

    def neg_(self) -> Tensor:
        """In place: self = -self."""
        return self._in_place("neg_", lambda x: -x)

    def clamp_(self, min: Any = None, max: Any = None) -> Tensor:  # noqa: A002
        """In place: limit to [min, max]."""
        return self._in_place("clamp_", lambda x: x.clamp(min, max))

    def masked_fill_(self, mask: Any, value: Any) -> Tensor:
        """In place: ``value`` where ``mask`` holds."""
        return self._in_place("masked_fill_", lambda x: x.masked_fill(mask, value))

    def clamp_min_(self, min: Any) -> Tensor:  # noqa: A002
        """In place: limit from below."""
        return self._in_place("clamp_min_", lambda x: x.clamp(min, None))

    def clamp_max_(self, max: Any) -> Tensor:  # noqa: A002
        """In place: limit from above."""
        return self._in_place("clamp_max_", lambda x: x.clamp(None, max))

    def exp_(self) -> Tensor:
        """In place: e ** self."""
        return self._in_place("exp_", lambda x: x.exp())

    def log_(self) -> Tensor:
        """In place: the natural logarithm."""
        return self._in_place("log_", lambda x: x.log())

    def sqrt_(self) -> Tensor:
        """In place: the square root."""
        return self._in_place("sqrt_", lambda x: x.sqrt())

    def abs_(self) -> Tensor:
        """In place: |self|."""
        return self._in_place("abs_", lambda x: x.abs())

    def relu_(self) -> Tensor:
        """In place: max(self, 0)."""
        return self._in_place("relu_", lambda x: x.relu())

    def sigmoid_(self) -> Tensor:
        """In place: the logistic sigmoid."""
        return self._in_place("sigmoid_", lambda x: x.sigmoid())

    def tanh_(self) -> Tensor:
        """In place: the hyperbolic tangent."""
        return self._in_place("tanh_", lambda x: x.tanh())

    def fill_(self, value: Any) -> Tensor:
        """In place: every element set to ``value``."""
        return self._assign("fill_", np.asarray(value._data if isinstance(value, Tensor)
                                                 else value, dtype=self.dtype))

    def zero_(self) -> Tensor:
        """In place: every element set to 0."""
        return self._assign("zero_", np.zeros((), self.dtype))

    def copy_(self, source: Any) -> Tensor:
        """In place: the values of ``source`` (broadcast to this shape), in this dtype."""
        data = source._data if isinstance(source, Tensor) else np.asarray(source)
        if np.broadcast_shapes(data.shape, self.shape) != self.shape:
            raise ValueError(f"copy_: a source of shape {data.shape} does not broadcast to "
                             f"{self.shape}")
        return self._assign("copy_", data.astype(self.dtype, copy=False))

    def uniform_(self, low: float = 0.0, high: float = 1.0,
                 generator: np.random.Generator | None = None) -> Tensor:
        """In place: values drawn uniformly from [low, high)."""
        rng = generator or backend.default_generator()
        return self._assign("uniform_", rng.uniform(low, high, self.shape).astype(self.dtype))

    def normal_(self, mean: float = 0.0, std: float = 1.0,
                generator: np.random.Generator | None = None) -> Tensor:
        """In place: values drawn from N(mean, std^2)."""
        rng = generator or backend.default_generator()
        return self._assign("normal_", rng.normal(mean, std, self.shape).astype(self.dtype))

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
        (summed over all its uses) before its Function's backward turns it into input
        gradients: chainrule.engine.autograd, a page to read. ``gradient`` is needed for a tensor of
        more than one element; after the walk the graph's saved buffers are freed unless
        ``retain_graph``.
        """
        _autograd.backward(self, gradient, retain_graph)


class HookHandle:
    """Returned by register_hook and register_forward_hook; ``remove()`` unregisters."""

    def __init__(self, hooks: list, hook: Any) -> None:
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        """Unregister the hook (removing twice is harmless)."""
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)


#: The modification clock: it ticks at every in-place change chainrule sees, and a tensor's
#: counter holds the tick of its last change, so "changed after the op ran" is one comparison.
_CLOCK = [0]


# Imported last: the ops and the tape walk use Tensor, so they need this module complete.
from chainrule import ops as _ops  # noqa: E402
from chainrule.engine import autograd as _autograd  # noqa: E402
from chainrule.engine import tensor_methods as _methods  # noqa: E402

_methods._ops = _ops
