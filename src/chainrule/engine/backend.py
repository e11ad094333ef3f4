"""The default dtype, the random generator and the one place broadcasting is undone.

Arrays are NumPy arrays. Where another array library or a compiled backend would plug in is
chainrule.kernels (see docs/kernels.md), not a module-wide alias for NumPy.
"""

from __future__ import annotations

import numpy as np

_default_dtype = np.dtype(np.float32)
_generator = np.random.default_rng(0)

#: dtypes a Tensor may hold; gradients flow only through the floating ones.
FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
SUPPORTED_KINDS = "fiub"  # float, signed int, unsigned int, bool


def get_default_dtype() -> np.dtype:
    """The dtype that Python floats and factory functions produce (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype: type | str | np.dtype) -> None:
    """Make ``dtype`` (float32 or float64) the default for new floating tensors."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"set_default_dtype: {dtype} is not supported; use float32 or float64")
    _default_dtype = dtype


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the library's generator (used by randn, rand, init functions and shuffling)."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator() -> np.random.Generator:
    """The library's current NumPy generator."""
    return _generator


def check_dtype(dtype: np.dtype, where: str) -> np.dtype:
    """Return ``dtype`` if a Tensor may hold it, else raise a TypeError that says what to do."""
    if dtype.kind not in SUPPORTED_KINDS:
        raise TypeError(
            f"{where}: dtype {dtype} is not supported; chainrule tensors hold float32/float64 "
            "(or integer/bool data without gradient). Convert with np.asarray(x, np.float32)."
        )
    if dtype.kind == "f" and dtype not in FLOAT_DTYPES:
        raise TypeError(
            f"{where}: dtype {dtype} is not supported; use float32 or float64 (e.g. .astype('f4'))"
        )
    return dtype


def unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum ``grad`` down to ``shape``: the adjoint of broadcasting ``shape`` up to grad.shape.

    Broadcasting prepends axes and stretches size-1 axes; both are copies of the same value, so
    the chain rule adds the gradients of all copies. This is the only place the engine does it.
    """
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    if extra:
        grad = grad.sum(axis=tuple(range(extra)))
    stretched = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    if stretched:
        grad = grad.sum(axis=stretched, keepdims=True)
    return grad


# ----------------------------------------------------------------------------- type promotion
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}


def result_dtype(*operands: object) -> np.dtype:
    """The dtype PyTorch gives an op on ``operands`` (arrays, tensors or Python numbers).

    The rule, written down once (docs/semantics.md): bool < integer < float. Operands with
    dims decide the dtype; a 0-d array or tensor counts only where its category is higher than
    all of theirs; a Python number only where its category is higher than every array's, and
    then it gives that category's default (``get_default_dtype()`` for a float, int64 for an
    int). So int64 tensor + 0.5 is float32, float32 tensor + float64 0-d tensor is float32,
    and int32 tensor + 7 stays int32, where NumPy would say float64, float64 and int32.
    """
    dims: list[np.dtype] = []
    zero: list[np.dtype] = []
    scalar = -1
    for value in operands:
        dtype = getattr(value, "dtype", None)
        if dtype is None or isinstance(value, np.generic):
            if isinstance(value, (bool, np.bool_)):
                kind = 0
            elif isinstance(value, (int, np.integer)):
                kind = 1
            elif isinstance(value, (float, np.floating)):
                kind = 2
            else:
                raise TypeError(f"cannot combine a {type(value).__name__} with tensors")
            scalar = max(scalar, kind)
        elif value.ndim:  # type: ignore[attr-defined]
            dims.append(dtype)
        else:
            zero.append(dtype)
    result = _promote(dims)
    category = _CATEGORY[result.kind] if result is not None else -1
    if zero:
        zero_type = _promote(zero)
        if _CATEGORY[zero_type.kind] > category:
            result, category = zero_type, _CATEGORY[zero_type.kind]
    if scalar > category:
        result = (np.dtype(np.bool_), np.dtype(np.int64), _default_dtype)[scalar]
    if result is None:
        raise TypeError("no array among the operands")
    return result


def _promote(dtypes: list[np.dtype]) -> np.dtype | None:
    """The highest category's dtypes promoted among themselves (int64 and float32: float32)."""
    if not dtypes:
        return None
    top = max(_CATEGORY[d.kind] for d in dtypes)
    return np.result_type(*[d for d in dtypes if _CATEGORY[d.kind] == top])


def broadcast_failure(shapes: list[tuple[int, ...]]) -> str:
    """Why ``shapes`` do not broadcast: both shapes and the first dimension that clashes."""
    shapes = [tuple(shape) for shape in shapes]
    width = max(len(shape) for shape in shapes)
    for back in range(1, width + 1):
        sizes = {shape[-back] for shape in shapes if len(shape) >= back} - {1}
        if len(sizes) > 1:
            first, second = sorted(sizes)[:2]
            return (f"shapes {' and '.join(str(s) for s in shapes)} do not broadcast: at "
                    f"dimension {-back} the sizes are {first} and {second}; each dimension, "
                    "counted from the end, must match or be 1")
    return f"shapes {' and '.join(str(s) for s in shapes)} do not broadcast"
