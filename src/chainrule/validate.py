"""Argument checks shared by layers, ops and optimizers.

Each check takes the owner (the layer, op or optimizer, as the user knows it), the argument's
name and its value, and either returns the value in a canonical form or raises an error that
names all three and says what was expected::

    integer("Linear", "in_features", 3.5, low=1)
    # TypeError: Linear: in_features must be an int, got 3.5 (float)

A value of the wrong kind is a TypeError, a value of the right kind out of range a ValueError,
as in PyTorch. The axis checks follow PyTorch's rules (a 0-d tensor takes axis 0 and -1), and
their out-of-range error, AxisError, is both a ValueError and an IndexError, so code written
against either convention catches it.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np

from chainrule.engine import backend

__all__ = [
    "AxisError", "axes", "axis", "boolean", "choice", "float_dtype", "generator", "integer",
    "is_int", "real", "torch_names",
]


class AxisError(ValueError, IndexError):
    """An axis outside a tensor's dims (a ValueError here, an IndexError in PyTorch)."""


def _kind(value: Any) -> str:
    """The value and its type, as error messages show them: ``3.5 (float)``."""
    return f"{value!r} ({type(value).__name__})"


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    """The range text of an error message: ``>= 0``, ``> 0``, ``in [0, 1)``."""
    if low is not None and high is not None:
        return (f"in {'(' if low_open else '['}{low:g}, {high:g}"
                f"{')' if high_open else ']'}")
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return "finite"


def is_int(value: Any) -> bool:
    """True for a Python or NumPy integer; False for bool, which Python counts as an int."""
    return type(value) is int or (isinstance(value, (int, np.integer))
                                  and not isinstance(value, bool))


def integer(owner: str, name: str, value: Any, low: int | None = None,
            high: int | None = None, *, optional: bool = False) -> int | None:
    """``value`` as an int in [low, high]; a float (even 3.0), bool, str or None is refused."""
    if value is None and optional:
        return None
    if not is_int(value):
        raise TypeError(f"{owner}: {name} must be an int{' or None' if optional else ''}, "
                        f"got {_kind(value)}")
    number = int(value)
    if (low is not None and number < low) or (high is not None and number > high):
        raise ValueError(f"{owner}: {name} must be {_bounds(low, high, False, False)}"
                         f"{' or None' if optional else ''}, got {number}")
    return number


def real(owner: str, name: str, value: Any, low: float | None = None,
         high: float | None = None, *, low_open: bool = False, high_open: bool = False,
         finite: bool = True, optional: bool = False) -> float | None:
    """``value`` as a float in [low, high]; nan and inf refused unless ``finite=False``.

    ``low_open`` / ``high_open`` exclude an end; a bool, str or None is a TypeError (None is
    passed through with ``optional=True``).
    """
    if value is None and optional:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{owner}: {name} must be a real number"
                        f"{' or None' if optional else ''}, got {_kind(value)}")
    number = float(value)
    # NaN fails every comparison, so it is refused whenever a bound is given.
    ok = ((not finite or math.isfinite(number))
          and (low is None or (number > low if low_open else number >= low))
          and (high is None or (number < high if high_open else number <= high)))
    if not ok:
        raise ValueError(f"{owner}: {name} must be {_bounds(low, high, low_open, high_open)}"
                         f"{' or None' if optional else ''}, got {value!r}")
    return number


def boolean(owner: str, name: str, value: Any) -> bool:
    """``value`` as a bool: True or False (NumPy's too); 0, 1, 'False' or None are refused."""
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{owner}: {name} must be True or False, got {_kind(value)}")


def _listing(choices: Sequence[Any]) -> str:
    """``'a', 'b' or 'c'``."""
    shown = [repr(c) for c in choices]
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]


def choice(owner: str, name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices`` (compared by type and value): else a TypeError if
    it is of none of their types (None for a str), a ValueError if it is another value."""
    for option in choices:
        # Same type first: True must not pass for 1, nor an array's == raise.
        if (type(value) is type(option) or isinstance(value, str) and isinstance(option, str)) \
                and value == option:
            return option
    error = ValueError if any(isinstance(value, type(c)) for c in choices) else TypeError
    raise error(f"{owner}: {name} must be {_listing(choices)}, got {value!r}")


def float_dtype(owner: str, name: str, value: Any) -> np.dtype:
    """``value`` (a dtype, its type or name) as float32 or float64; None: the default dtype."""
    if value is None:
        return backend.get_default_dtype()
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError):
        raise TypeError(f"{owner}: {name} must be float32 or float64 (e.g. np.float32 or "
                        f"'float64'), got {_kind(value)}") from None
    if dtype not in backend.FLOAT_DTYPES:
        raise TypeError(f"{owner}: {name} must be float32 or float64, got {dtype}; a layer's "
                        "parameters must be floating to take gradients")
    return dtype


def generator(owner: str, name: str, value: Any) -> np.random.Generator | None:
    """``value`` if it is a NumPy Generator or None (chainrule's own generator is used then)."""
    if value is None or isinstance(value, np.random.Generator):
        return value
    raise TypeError(f"{owner}: {name} must be a numpy.random.Generator (e.g. "
                    f"np.random.default_rng(0)) or None, got {_kind(value)}")


# ----------------------------------------------------------------------------- axes
def _out_of_range(owner: str, name: str, value: Any, ndim: int, result: bool) -> AxisError:
    n = ndim if ndim else 1
    if result:
        subject = f"the result's {ndim} dim{'' if ndim == 1 else 's'}"
    elif ndim == 0:
        subject = "a 0-d tensor"
    else:
        subject = f"a tensor with {ndim} dim{'' if ndim == 1 else 's'}"
    return AxisError(f"{owner}: {name} {value} is out of range for {subject} "
                     f"(valid: {-n} to {n - 1})")


def axis(owner: str, name: str, value: Any, ndim: int, *, result: bool = False) -> int:
    """``value`` as an axis in 0..ndim-1, counted from the end when negative.

    A 0-d tensor takes 0 and -1 (and 0 is returned), as in PyTorch; the caller handles that
    tensor, which has no axis NumPy would accept. ``result=True`` says ``ndim`` is the rank of
    the op's result (stack, unsqueeze), which the error message then names. Out of range is an
    AxisError (a ValueError and an IndexError); not an int (1.5, '0', True) a TypeError.
    """
    n = ndim if ndim else 1
    if type(value) is int and -n <= value < n:
        return value % n
    if not is_int(value):
        raise TypeError(f"{owner}: {name} must be an int, got {_kind(value)}")
    if not -n <= value < n:
        raise _out_of_range(owner, name, value, ndim, result)
    return int(value) % n


def axes(owner: str, name: str, value: Any, ndim: int, *, empty: bool = True,
         result: bool = False) -> tuple[int, ...]:
    """``value`` (None, an int or a sequence of ints) as a sorted tuple of distinct axes.

    None means every axis. On a 0-d tensor 0 and -1 are accepted and name no axis NumPy has,
    so the result is (). ``empty=False`` refuses ``()`` on a tensor with dims, where NumPy
    would reduce over no axis and PyTorch over all of them. ``result`` as for ``axis``.
    """
    if value is None:
        return tuple(range(ndim))
    if type(value) is int:
        n = ndim if ndim else 1
        if -n <= value < n:
            return (value % n,) if ndim else ()
        raise _out_of_range(owner, name, value, ndim, result)
    if is_int(value):
        return axes(owner, name, int(value), ndim, result=result)
    if not isinstance(value, (tuple, list, range)) and not (
            isinstance(value, np.ndarray) and value.ndim == 1):
        raise TypeError(f"{owner}: {name} must be an int, a tuple of ints or None, got "
                        f"{_kind(value)}")
    found = [axis(owner, name, a, ndim, result=result) for a in value]
    if len(set(found)) != len(found):
        repeated = next(a for a in found if found.count(a) > 1)
        shown = tuple(int(a) for a in value)
        raise ValueError(f"{owner}: {name} {shown} names axis {repeated} more than once")
    if not found and ndim and not empty:
        raise ValueError(f"{owner}: {name}=() names no axis: NumPy would reduce over none, "
                         "PyTorch over all; pass axis=None to reduce over every axis")
    return tuple(sorted(found)) if ndim else ()


# ----------------------------------------------------------------------------- PyTorch's names
#: PyTorch's keyword for each of chainrule's (NumPy's) keywords.
TORCH_NAMES = {"dim": "axis", "keepdim": "keepdims", "dim0": "axis0", "dim1": "axis1",
               "start_dim": "start_axis", "end_dim": "end_axis", "dims": "axes"}

F = TypeVar("F", bound=Callable[..., Any])


def torch_names(fn: F) -> F:
    """Let ``fn`` take PyTorch's keywords too: ``dim=`` for ``axis=``, ``keepdim=`` for
    ``keepdims=`` (see TORCH_NAMES); giving both spellings of one argument is a TypeError."""
    params = inspect.signature(fn).parameters
    renames = {torch: ours for torch, ours in TORCH_NAMES.items()
               if ours in params and torch not in params
               and params[ours].kind is not inspect.Parameter.VAR_POSITIONAL}
    if not renames:
        return fn
    owner = fn.__name__

    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        if kwargs:
            for torch_name, ours in renames.items():
                if torch_name in kwargs:
                    if ours in kwargs:
                        raise TypeError(f"{owner}: got both {ours}= and {torch_name}= "
                                        f"({torch_name} is PyTorch's name for {ours}); "
                                        "pass one")
                    kwargs[ours] = kwargs.pop(torch_name)
        return fn(*args, **kwargs)

    return call  # type: ignore[return-value]
