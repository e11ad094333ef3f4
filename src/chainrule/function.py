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

    Subclasses register themselves under ``name`` (the lower-case class name by default); pass
    ``register=False`` in the class statement to keep a helper out of the registry.
    """

    name: ClassVar[str] = ""

    def __init_subclass__(cls, register: bool = True, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__.lower()
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
                arrays.append(value.data)
                if value.requires_grad:
                    parents.append(value)
                    needs.append(True)
                    continue
            else:
                arrays.append(value)
            parents.append(None)
            needs.append(False)
        ctx = Context()
        ctx.needs_input_grad = tuple(needs)
        try:
            out = cls.forward(ctx, *arrays, **attrs)
        except ValueError as error:
            # NumPy's own shape errors do not say which op failed; ours start with the name.
            if str(error).startswith(cls.name + ":"):
                raise
            shapes = " and ".join(str(np.shape(a)) for a in arrays if a is not None)
            raise ValueError(f"{cls.name}: {error} (input shapes {shapes})") from error
        if type(out) is not np.ndarray and isinstance(out, Tensor):
            out = out.data
        if STATE.sentinel is not None:
            out = np.asarray(out)
            STATE.sentinel.check_forward(cls, arrays, out)
        if STATE.grad_enabled and True in needs:
            return Tensor._from_op(out, cls, ctx, tuple(parents))
        return Tensor._from_op(out, None, None, ())


# Imported last: tensor.py imports the ops, which subclass Function, so Function must exist
# first whichever module is imported first.
from chainrule.tensor import STATE, Tensor  # noqa: E402
