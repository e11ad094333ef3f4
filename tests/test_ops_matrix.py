"""The verification matrix: every registered op against PyTorch autograd and finite differences.

For each op, hypothesis draws shapes (with broadcasting), axes and options; both checks run at
float64. Adding an op means adding one Case to op_cases.py or an op_cases_<area>.py; an op
with no case fails here.
"""

from __future__ import annotations

import os

import hypothesis.strategies as st
import numpy as np
import op_cases_attention
import op_cases_conv
import op_cases_elementwise
import op_cases_nn
import op_cases_recurrent
import op_cases_reduce
import op_cases_shape
import pytest
import torch
from hypothesis import given, settings
from op_cases import CASES as CORE_CASES
from op_cases import Case

import chainrule as cr
from chainrule.check import gradcheck
from chainrule.engine.function import _REGISTRY, Function

CASES = (CORE_CASES + op_cases_reduce.CASES + op_cases_shape.CASES + op_cases_elementwise.CASES
         + op_cases_conv.CASES + op_cases_nn.CASES + op_cases_attention.CASES
         + op_cases_recurrent.CASES)
EXAMPLES = int(os.environ.get("CHAINRULE_MATRIX_EXAMPLES", "12"))
CASES_BY_OP = {case.op for case in CASES}


def builtin_ops() -> dict[str, type[Function]]:
    return {name: fn for name, fn in cr.registry().items()
            if fn.__module__.startswith("chainrule.")}


def ops_without_cases() -> list[str]:
    return sorted(set(builtin_ops()) - CASES_BY_OP)


def test_every_registered_op_has_a_case() -> None:
    assert ops_without_cases() == [], "registered ops with no case in op_cases.py"
    assert sorted(CASES_BY_OP - set(builtin_ops())) == [], "cases for ops that do not exist"


def test_a_new_op_without_a_case_is_caught() -> None:
    class Unlisted(Function):
        __module__ = "chainrule.ops.probe"

        @staticmethod
        def forward(ctx, a):
            return a

        @staticmethod
        def backward(ctx, grad):
            return grad

    try:
        assert ops_without_cases() == ["unlisted"]
    finally:
        _REGISTRY.pop("unlisted")


def draw_case(case: Case, data: st.DataObject) -> tuple[list, dict]:
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    inputs, attrs = case.build(data.draw, rng)
    # NumPy hands back scalars for 0-d draws; the op gets 0-d arrays, as from a tensor.
    return [np.asarray(x) if isinstance(x, np.generic) else x for x in inputs], attrs


def _is_float(value: object) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_matches_torch_autograd(case: Case, data: st.DataObject) -> None:
    inputs, attrs = draw_case(case, data)
    ours = [cr.Tensor(x, requires_grad=True) if _is_float(x) else x for x in inputs]
    theirs = [torch.tensor(x, requires_grad=True) if _is_float(x)
              else torch.from_numpy(x) if isinstance(x, np.ndarray) else x for x in inputs]
    out = _REGISTRY[case.op].apply(*ours, **attrs)
    expected = case.torch_fn(*theirs, **attrs)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-6, atol=1e-9,
                               err_msg=f"{case}: forward differs from PyTorch")
    assert out.shape == tuple(expected.shape), f"{case}: output shape"
    assert out.dtype == expected.detach().numpy().dtype, f"{case}: output dtype"

    weights = np.random.default_rng(0).standard_normal(out.shape).astype(out.dtype)
    out.backward(weights)
    wanted = [t for t in theirs if isinstance(t, torch.Tensor) and t.requires_grad]
    torch_grads = torch.autograd.grad(expected, wanted, torch.from_numpy(weights),
                                      allow_unused=True)
    float_inputs = [t for t in ours if isinstance(t, cr.Tensor) and t.requires_grad]
    for i, (mine, reference) in enumerate(zip(float_inputs, torch_grads)):
        reference = np.zeros(mine.shape) if reference is None else reference.numpy()
        assert mine.grad is not None, f"{case}: input {i} got no gradient"
        assert mine.grad.shape == mine.shape and mine.grad.dtype == mine.dtype
        np.testing.assert_allclose(mine.grad, reference, rtol=1e-6, atol=1e-9,
                                   err_msg=f"{case}: gradient of input {i} differs from PyTorch")


@pytest.mark.parametrize("case", CASES, ids=repr)
@settings(max_examples=EXAMPLES)
@given(data=st.data())
def test_matches_finite_differences(case: Case, data: st.DataObject) -> None:
    inputs, attrs = draw_case(case, data)
    op = _REGISTRY[case.op]
    gradcheck(lambda *xs: op.apply(*xs, **attrs), inputs, eps=case.fd_eps, rtol=case.fd_rtol,
              seed=data.draw(st.integers(0, 1000), label="direction seed"))
