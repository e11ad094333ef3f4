"""Module buffers: state that is saved and copied but never trained."""

from __future__ import annotations

import copy

import numpy as np
import pytest

import chainrule as cr
from chainrule import io, nn, optim


class Counter(nn.Module):
    """A layer with one parameter and two buffers, one of them an unused (None) slot."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(np.ones(3))
        self.register_buffer("total", np.zeros(3))
        self.register_buffer("spare", None)
        self.register_buffer("calls", np.array(0, np.int64))

    def forward(self, x):
        self.total.data += x.data.sum(0)
        self.calls.data += 1
        return x * self.weight


def test_buffers_are_state_but_not_parameters() -> None:
    model = nn.Sequential(Counter(), nn.Linear(3, 3, dtype="float64"))
    assert [n for n, _ in model.named_buffers()] == ["0.total", "0.calls"]
    assert [n for n, _ in model.named_parameters()] == ["0.weight", "1.weight", "1.bias"]
    assert len(model.buffers()) == 2 and not any(b.requires_grad for b in model.buffers())
    # Per module, parameters then buffers: PyTorch's state_dict order.
    assert list(model.state_dict()) == ["0.weight", "0.total", "0.calls", "1.weight",
                                        "1.bias"]
    model(cr.tensor(np.ones((2, 3)))).sum().backward()
    optimizer = optim.SGD(model.parameters(), lr=0.1)
    optimizer.step()  # the optimizer never sees a buffer
    np.testing.assert_array_equal(model[0].total.data, [2.0, 2.0, 2.0])
    assert model.state_dict()["0.calls"] == 1 and model[0].total.grad is None


def test_buffers_load_copy_and_deepcopy() -> None:
    layer = Counter()
    layer(cr.tensor(np.ones((4, 3))))
    state = layer.state_dict()
    state["total"][...] = 99  # a copy
    assert layer.total.data[0] == 4
    other = Counter()
    other.load_state_dict(layer.state_dict())
    np.testing.assert_array_equal(other.total.data, layer.total.data)
    assert int(other.calls.data) == 1
    with pytest.raises(ValueError, match="missing keys: calls"):
        other.load_state_dict({k: v for k, v in layer.state_dict().items() if k != "calls"})
    clone = copy.deepcopy(layer)
    clone(cr.tensor(np.ones((1, 3))))
    assert int(clone.calls.data) == 2 and int(layer.calls.data) == 1


def test_register_buffer_refuses_what_is_not_a_buffer() -> None:
    layer = Counter()
    with pytest.raises(KeyError, match="already has an attribute 'weight' that is not a buffer"):
        layer.register_buffer("weight", np.zeros(3))
    with pytest.raises(TypeError, match="a buffer takes no gradient"):
        layer.register_buffer("w2", nn.Parameter(np.zeros(3)))
    with pytest.raises(ValueError, match="must be an identifier"):
        layer.register_buffer("a.b", np.zeros(3))
    layer.register_buffer("total", np.full(3, 5.0))  # re-registering replaces the value
    assert layer.total.data[0] == 5.0
    assert [n for n, _ in layer.named_buffers()] == ["total", "calls"]


def test_weights_files_and_checkpoints_keep_buffers(tmp_path) -> None:
    layer = Counter()
    layer(cr.tensor(np.full((2, 3), 3.0)))
    io.save_weights(layer, tmp_path / "w.safetensors")
    loaded = io.load_weights(tmp_path / "w.safetensors")
    assert set(loaded) == {"weight", "total", "calls"} and loaded["calls"].shape == ()
    fresh = Counter()
    fresh.load_state_dict(loaded)
    np.testing.assert_array_equal(fresh.total.data, [6.0, 6.0, 6.0])
