"""The checks every layer gets: its torch.nn twin (same state) and finite differences.

A test module lists (name, make, make_torch, input shape) rows and hands each to these.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

import chainrule as cr
from chainrule import nn
from chainrule.check import gradcheck

F64 = {"dtype": "float64"}


def to_torch_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v) for k, v in module.state_dict().items()}


def randomised(layer: nn.Module, seed: int = 0) -> nn.Module:
    """The layer with random float state (weights, running statistics; variances positive)."""
    rng = np.random.default_rng(seed)
    state = {k: (rng.uniform(0.5, 2.0, v.shape) if k.endswith("var") else
                 rng.standard_normal(v.shape)).astype(v.dtype) if v.dtype.kind == "f" else v
             for k, v in layer.state_dict().items()}
    layer.load_state_dict(state)
    return layer


def check_torch_twin(name: str, make: Callable[[], nn.Module],
                     make_torch: Callable[[], torch.nn.Module], shape: tuple[int, ...]) -> None:
    """Output, input gradient, parameter gradients and state equal the twin's (float64)."""
    layer, twin = make(), make_torch()
    twin.load_state_dict(to_torch_state(layer))
    x = np.random.default_rng(0).standard_normal(shape)
    ours, theirs = cr.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, expected = layer(ours), twin(theirs)
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-10)
    weights = np.random.default_rng(1).standard_normal(out.shape)
    out.backward(weights)
    expected.backward(torch.from_numpy(weights))
    np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=1e-10)
    twin_params = dict(twin.named_parameters())
    for key, param in layer.named_parameters():
        np.testing.assert_allclose(param.grad, twin_params[key].grad.numpy(), rtol=1e-10,
                                   err_msg=f"{name}: {key}")
    twin_state = twin.state_dict()  # buffers too: running statistics moved the same way
    assert list(layer.state_dict()) == list(twin_state)
    for key, value in layer.state_dict().items():
        np.testing.assert_allclose(value, twin_state[key].numpy(), rtol=1e-12,
                                   err_msg=f"{name}: {key}")


def check_finite_differences(make: Callable[[], nn.Module], shape: tuple[int, ...]) -> None:
    """The input gradient and every parameter's gradient pass gradcheck."""
    layer = make()
    x = np.random.default_rng(2).standard_normal(shape)
    gradcheck(layer, [x])
    for key, param in layer.named_parameters():
        # The layer's output as a function of this one parameter.
        result = gradcheck(lambda p, param=param: _call_with(layer, param, p, x), [param.data])
        assert result.worst_error[0] is not None, key


def _call_with(layer: nn.Module, param: cr.Tensor, value: cr.Tensor, x: np.ndarray) -> cr.Tensor:
    """The layer's output as a function of one parameter: that parameter is swapped for value."""
    for module in layer.modules():
        for attr, held in list(vars(module).items()):
            if held is param:
                # Past Module's guard on purpose: a plain tensor in a parameter's place is what
                # a functional call needs, and the parameter goes back right after.
                object.__setattr__(module, attr, value)
                try:
                    return layer(cr.tensor(x))
                finally:
                    object.__setattr__(module, attr, param)
    raise AssertionError("parameter not found")
