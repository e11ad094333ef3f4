"""Function: an op's forward and hand-derived backward, on plain arrays, side by side.

Built-in ops and user-defined ops use this one API::

    class Cube(cr.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x ** 3

        @staticmethod
        def backward(ctx, grad):
            (x,) = ctx.saved_tensors
            return grad * 3 * x ** 2     # d(x^3)/dx = 3x^2, times the upstream gradient

    y = Cube.apply(t)

``forward`` receives NumPy arrays (tensors are unwrapped; other values pass through as they
are) and keyword attributes; it returns one array. ``backward`` receives the gradient of the
loss with respect to that output and returns one gradient per positional input (None where an
input needs none). A gradient may keep broadcast axes: the engine sums it back to the input's
shape, in one place, so no op has to.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from chainrule.engine import backend

_REGISTRY: dict[str, type[Function]] = {}


def registry() -> dict[str, type[Function]]:
    """All registered Functions by name (built-in ones and any user subclass that registered)."""
    return dict(_REGISTRY)


class Context:
    """What a Function's forward leaves for its backward.

    Set any attribute (``ctx.mask = x > 0``) or use ``save_for_backward``. ``needs_input_grad``
    tells, per positional input, whether a gradient is wanted, so backward can skip work.
    """

    needs_input_grad: tuple[bool, ...]
    saved_tensors: tuple[Any, ...] = ()

    def save_for_backward(self, *arrays: Any) -> None:
        """Keep arrays for backward; read them back as ``ctx.saved_tensors``."""
        self.saved_tensors = arrays


class Function:
    """Base class of every op: subclass it and define ``forward`` and ``backward``.

    Subclasses register themselves under ``name`` (by default the class name in lower case,
    without an ``Op`` suffix: ``AddOp`` is "add"); pass ``register=False`` in the class
    statement to keep a helper out of the registry. The built-in ops are all named ``...Op``,
    so that no op shares a name with the nn layer that calls it (``LinearOp`` vs ``Linear``).
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__.removesuffix("Op").lower()
        if register:
            other = _REGISTRY.get(cls.name)
            if other is not None and other.__qualname__ != cls.__qualname__:
                raise ValueError(
                    f"Function name {cls.name!r} is taken by {other.__module__}."
                    f"{other.__qualname__}; set a different `name` on {cls.__qualname__}"
                )
            _REGISTRY[cls.name] = cls

    @staticmethod
    def forward(ctx: Context, *args: Any, **attrs: Any) -> np.ndarray:
        """Compute the output array from input arrays; save what backward needs on ``ctx``."""
        raise NotImplementedError("a Function subclass must define forward(ctx, *arrays)")

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> Any:
        """Return d(loss)/d(input) for each positional input, given d(loss)/d(output)."""
        raise NotImplementedError("a Function subclass must define backward(ctx, grad)")

    @classmethod
    def apply(cls, *inputs: Any, **attrs: Any) -> Tensor:
        """Run forward on the inputs' arrays and, if any input needs a gradient, record it."""
        # One pass over the inputs: this runs for every op, and at a small network's sizes
        # its Python work is a measurable part of a training step.
        arrays = []
        parents = []
        needs = []
        for value in inputs:
            if isinstance(value, Tensor):
                arrays.append(value._data)
                # Every tensor input, gradient or not: backward checks that none of them
                # was changed in place since (a weight or the batch an op saved).
                parents.append(value)
                needs.append(value.requires_grad)
            else:
                arrays.append(value)
                parents.append(None)
                needs.append(False)
        if cls.same_dtype:  # inline: it runs for every such op call
            try:
                first = arrays[0].dtype
                for array in arrays:
                    if array is not None and array.dtype != first:
                        _refuse_mixed_dtypes(cls, arrays)
            except AttributeError:
                pass  # not an array (a list, say): forward says what it needs
        ctx = Context()
        ctx.needs_input_grad = tuple(needs)
        try:
            out = cls.forward(ctx, *arrays, **attrs)
        except ValueError as error:
            # NumPy's own shape errors do not say which op failed; ours start with the name.
            if str(error).startswith(cls.name + ":"):
                raise
            shapes = [np.shape(a) for a in arrays if a is not None]
            if str(error).startswith("operands could not be broadcast"):
                raise ValueError(f"{cls.name}: {backend.broadcast_failure(shapes)}") from None
            shown = " and ".join(str(shape) for shape in shapes)
            raise ValueError(f"{cls.name}: {error} (input shapes {shown})") from error
        if type(out) is not np.ndarray:
            out = _output_array(cls, out)
        dtype = out.dtype
        if dtype not in _TENSOR_DTYPES:
            backend.check_dtype(dtype, f"{cls.name} output")
        if STATE.sentinel is not None:
            STATE.sentinel.check_forward(cls, arrays, out)
        # Gradients flow only through floating outputs: astype(int64) and friends end the tape.
        if STATE.grad_enabled and True in needs and dtype.kind == "f":
            result = Tensor._from_op(out, cls, ctx, tuple(parents))
        else:
            result = Tensor._from_op(out, None, None, ())
        if cls.view and parents and parents[0] is not None and (
                out.base is not None or out is arrays[0]):
            result._counter = parents[0]._counter  # one array, one count of its changes
        if STATE.tracer is not None:
            STATE.tracer.record(cls, inputs, attrs, result)
        return result

    #: Set on ops that combine an input with weights (matmul, linear, conv, norms): their
    #: float inputs must share one dtype, as PyTorch requires, instead of NumPy promoting a
    #: float64 batch to run the whole network in float64 beside float32 weights.
    same_dtype: ClassVar[bool] = False
    #: Set on ops whose output may be a view of input 0's array (reshape, transpose, slicing):
    #: an in-place change through the view is a change of the input, and counts as one.
    view: ClassVar[bool] = False


def _output_array(fn: type[Function], out: Any) -> np.ndarray:
    """What a forward returned, as an array; None (a forgotten ``return``) is an error."""
    if out is None:
        raise TypeError(f"{fn.__name__}.forward returned None; it must return the output "
                        "array (did it forget `return`?)")
    if isinstance(out, Tensor):
        return out._data
    array = np.asarray(out)
    if array.dtype.kind == "O":
        raise TypeError(f"{fn.__name__}.forward returned a {type(out).__name__}, not an array "
                        "of numbers")
    return array


class DtypeMismatchError(TypeError):
    """An op that meets weights (``same_dtype``) was given inputs of different dtypes."""


def _refuse_mixed_dtypes(fn: type[Function], arrays: list[Any]) -> None:
    """The error for an op that needs one dtype (``same_dtype``) given several."""
    dtypes = [(i, a.dtype) for i, a in enumerate(arrays) if getattr(a, "dtype", None) is not None]
    (first, dtype), (index, other) = dtypes[0], next(d for d in dtypes if d[1] != dtypes[0][1])
    raise DtypeMismatchError(
        f"{fn.name}: input {first} is {dtype} but input {index} is {other}; {fn.name} needs one "
        f"dtype (PyTorch refuses mixed dtypes here too). Convert the input "
        f"(x.astype(np.float32), or cr.tensor(x, dtype=...)), or make the layer in the input's "
        f"dtype (dtype= when building it)"
    )


_TENSOR_DTYPES = frozenset(np.dtype(code) for code in "? b h i l q B H I L Q f d".split())


# Imported last: tensor.py imports the ops, which subclass Function, so Function must exist
# first whichever module is imported first.
from chainrule.engine.tensor import STATE, Tensor  # noqa: E402
