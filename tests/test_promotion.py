"""Type promotion of every binary op against PyTorch.

Each op meets every pair of operands from a grid: six dtypes (bool, uint8, int32, int64,
float32, float64) as a tensor with dims or as a 0-d tensor, and Python bool, int and float.
The result's dtype must be torch's, and so must its values. Where torch refuses the pair,
chainrule must refuse it too, with three exceptions said per op below: torch insists on tensors
(maximum(x, 2.0)), on one dtype (isclose) or on floats (logaddexp, hypot on integers), where
chainrule promotes by the same rule; then the dtype must be torch.result_type's (floating for
a float op) and the values torch's on operands converted to it.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import torch

import chainrule as cr

DTYPES = ["bool", "uint8", "int32", "int64", "float32", "float64"]
VALUES = {"bool": [True, False, True], "uint8": [1, 2, 3], "int32": [3, 1, 2],
          "int64": [2, 3, 1], "float32": [1.5, 0.25, 2.75], "float64": [0.75, 2.5, 1.25]}
ZERO_D = {"bool": True, "uint8": 2, "int32": 3, "int64": 1, "float32": 1.25, "float64": 0.5}
PYTHON = [True, 2, 1.75]


def grid() -> list[tuple[str, Any]]:
    """Every operand: (label, value), values as NumPy arrays or Python numbers."""
    found: list[tuple[str, Any]] = []
    for dtype in DTYPES:
        found.append((f"{dtype}[3]", np.array(VALUES[dtype], dtype=dtype)))
        found.append((f"{dtype}()", np.array(ZERO_D[dtype], dtype=dtype)))
    found += [(f"py {type(v).__name__}", v) for v in PYTHON]
    return found


def ours(value: Any) -> Any:
    return cr.tensor(value) if isinstance(value, np.ndarray) else value


def theirs(value: Any) -> Any:
    return torch.from_numpy(value.copy()) if isinstance(value, np.ndarray) else value


@dataclass
class Binary:
    name: str
    mine: Callable[[Any, Any], cr.Tensor]
    torch_fn: Callable[[Any, Any], torch.Tensor]
    #: torch refuses Python numbers (it wants two tensors): compare after promoting.
    tensors_only: bool = False
    #: torch refuses mixed dtypes: compare after promoting.
    one_dtype: bool = False
    #: a float op that torch refuses on integers: chainrule gives the default float dtype.
    float_op: bool = False


def _where(a: Any, b: Any) -> Any:
    condition = np.array([True, False, True])
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return torch.where(torch.from_numpy(condition), a, b)
    return cr.where(condition, a, b)


OPS = [
    Binary("add", cr.add, operator.add),
    Binary("sub", cr.sub, operator.sub),
    Binary("mul", cr.mul, operator.mul),
    Binary("div", cr.div, operator.truediv),
    Binary("pow", cr.pow, operator.pow),
    Binary("maximum", cr.maximum, torch.maximum, tensors_only=True),
    Binary("minimum", cr.minimum, torch.minimum, tensors_only=True),
    Binary("where", _where, _where),
    Binary("lt", cr.ops.lt, operator.lt),
    Binary("le", cr.ops.le, operator.le),
    Binary("gt", cr.ops.gt, operator.gt),
    Binary("ge", cr.ops.ge, operator.ge),
    Binary("eq", cr.ops.eq, operator.eq),
    Binary("ne", cr.ops.ne, operator.ne),
    Binary("atan2", cr.atan2, torch.atan2, tensors_only=True),
    Binary("logaddexp", cr.logaddexp, torch.logaddexp, tensors_only=True, float_op=True),
    Binary("hypot", cr.hypot, torch.hypot, tensors_only=True, float_op=True),
    Binary("copysign", cr.copysign, torch.copysign, tensors_only=True),
    Binary("remainder", cr.remainder, operator.mod),
    Binary("fmod", cr.fmod, torch.fmod, tensors_only=True),
    Binary("floor_divide", cr.floor_divide, operator.floordiv),
    Binary("div trunc", lambda a, b: cr.div(a, b, rounding_mode="trunc"),
           lambda a, b: torch.div(a, b, rounding_mode="trunc"), tensors_only=True),
    Binary("div floor", lambda a, b: cr.div(a, b, rounding_mode="floor"),
           lambda a, b: torch.div(a, b, rounding_mode="floor"), tensors_only=True),
    Binary("bitwise_and", cr.bitwise_and, operator.and_),
    Binary("bitwise_or", cr.bitwise_or, operator.or_),
    Binary("bitwise_xor", cr.bitwise_xor, operator.xor),
    Binary("bitwise_left_shift", cr.bitwise_left_shift, operator.lshift),
    Binary("bitwise_right_shift", cr.bitwise_right_shift, operator.rshift),
    Binary("isclose", cr.isclose, torch.isclose, tensors_only=True, one_dtype=True),
    # clamp's bounds promote too: an int64 tensor clamped at 0.5 is float32, not float64.
    Binary("clamp min", lambda a, b: cr.clamp(a, min=b), lambda a, b: torch.clamp(a, min=b)),
    Binary("clamp max", lambda a, b: cr.clamp(a, max=b), lambda a, b: torch.clamp(a, max=b)),
]


def _as_tensors(a: Any, b: Any, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    def convert(v: Any) -> torch.Tensor:
        return v.to(dtype) if isinstance(v, torch.Tensor) else torch.tensor(v, dtype=dtype)
    return convert(a), convert(b)


def expected(op: Binary, a: Any, b: Any) -> torch.Tensor | None:
    """torch's answer, or None where torch (and so chainrule) refuses the pair."""
    try:
        return op.torch_fn(a, b)
    except (TypeError, RuntimeError, NotImplementedError) as error:
        scalar = not isinstance(a, torch.Tensor) or not isinstance(b, torch.Tensor)
        refused_for = ("Tensor" in str(error) and scalar and op.tensors_only) or (
            op.one_dtype and "did not match" in str(error)) or (
            op.float_op and "not implemented for" in str(error))
        if not refused_for:
            return None
    dtype = torch.result_type(a, b)
    if op.float_op and not dtype.is_floating_point:
        dtype = torch.get_default_dtype()
    try:
        return op.torch_fn(*_as_tensors(a, b, dtype))
    except (TypeError, RuntimeError, NotImplementedError):
        return None


@pytest.mark.parametrize("op", OPS, ids=lambda op: op.name)
def test_result_dtype_and_values_match_torch(op: Binary) -> None:
    problems = []
    operands = grid()
    for label_a, a in operands:
        for label_b, b in operands:
            if not isinstance(a, np.ndarray) and not isinstance(b, np.ndarray):
                continue  # two Python numbers: no tensor to promote
            pair = f"{op.name}({label_a}, {label_b})"
            want = expected(op, theirs(a), theirs(b))
            try:
                got = op.mine(ours(a), ours(b))
            except (TypeError, ValueError, ZeroDivisionError, OverflowError) as error:
                if want is not None:
                    problems.append(f"{pair}: raised {type(error).__name__}: {error}")
                continue
            if want is None:
                problems.append(f"{pair}: torch refuses it, chainrule gave {got.dtype}")
                continue
            want_array = want.numpy()
            if got.dtype != want_array.dtype:
                problems.append(f"{pair}: dtype {got.dtype}, torch {want_array.dtype}")
            elif got.shape != want_array.shape:
                problems.append(f"{pair}: shape {got.shape}, torch {want_array.shape}")
            elif want_array.dtype.kind == "f":
                if not np.allclose(got.data, want_array, rtol=1e-6, atol=0, equal_nan=True):
                    problems.append(f"{pair}: values {got.data}, torch {want_array}")
            elif not np.array_equal(got.data, want_array):
                problems.append(f"{pair}: values {got.data}, torch {want_array}")
    assert not problems, "\n".join(problems[:40]) + f"\n({len(problems)} in all)"


def test_every_binary_op_of_area_c_is_in_the_grid() -> None:
    names = {op.name.split()[0] for op in OPS}
    for name in ["atan2", "logaddexp", "hypot", "copysign", "remainder", "fmod", "floor_divide",
                 "bitwise_and", "bitwise_or", "bitwise_xor", "bitwise_left_shift",
                 "bitwise_right_shift", "isclose", "lt", "le", "gt", "ge", "eq", "ne"]:
        assert name in names


def test_comparisons_compare_in_the_promoted_dtype() -> None:
    # int64 against a float compares as float32 in torch: 2**24 + 1 rounds to 2**24 there.
    big = cr.tensor([16777217])
    assert (big == 16777216.0).tolist() == (torch.tensor([16777217]) == 16777216.0).tolist()
    assert (big == 16777216.0).tolist() == [True]
    # float32 against a float64 0-d tensor compares as float32: 0.1 equals 0.1.
    tenth = cr.tensor(np.array([0.1], np.float32))
    assert (tenth == cr.tensor(np.float64(0.1))).tolist() == [True]
    assert (tenth < cr.tensor(np.float64(0.1))).tolist() == [False]
