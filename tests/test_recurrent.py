"""Recurrent layers (RNN, GRU, LSTM and their cells) against their torch.nn twins.

The ops themselves are in the verification matrix (op_cases_recurrent.py); here the layers:
outputs, final states and every gradient (input, initial states, parameters) at float64 for
several configurations, finite differences, state dicts, repr, dropout, and bad input.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
import torch
from layer_twins import F64, check_finite_differences, check_torch_twin, to_torch_state

import chainrule as cr
from chainrule import nn
from chainrule.engine.autograd import topological_order
from chainrule.engine.function import DtypeMismatchError

LAYERS = {
    "RNN": (lambda **kw: nn.RNN(**kw), lambda **kw: torch.nn.RNN(**kw)),
    "RNN-relu": (lambda **kw: nn.RNN(nonlinearity="relu", **kw),
                 lambda **kw: torch.nn.RNN(nonlinearity="relu", **kw)),
    "GRU": (lambda **kw: nn.GRU(**kw), lambda **kw: torch.nn.GRU(**kw)),
    "LSTM": (lambda **kw: nn.LSTM(**kw), lambda **kw: torch.nn.LSTM(**kw)),
}

# (label, constructor settings, input shape, give initial states)
CONFIGS = [
    ("one layer", {}, (5, 3, 4), False),
    ("initial states", {}, (5, 3, 4), True),
    ("two layers, bidirectional", {"num_layers": 2, "bidirectional": True}, (4, 2, 4), True),
    ("batch_first", {"batch_first": True}, (3, 5, 4), True),
    ("three layers, no bias", {"num_layers": 3, "bias": False}, (4, 2, 4), True),
    ("bidirectional, batch_first, 3 layers",
     {"num_layers": 3, "bidirectional": True, "batch_first": True}, (2, 4, 4), True),
    ("unbatched", {"num_layers": 2}, (5, 4), True),
    ("unbatched, bidirectional, batch_first", {"bidirectional": True, "batch_first": True},
     (5, 4), False),
    ("one step, batch 1", {"bidirectional": True}, (1, 1, 4), True),
]


def _states(layer: nn.Module, shape: tuple[int, ...], rng: np.random.Generator) -> list:
    count = layer.num_layers * (2 if layer.bidirectional else 1)
    batch = () if len(shape) == 2 else (shape[0] if layer.batch_first else shape[1],)
    states = 2 if isinstance(layer, nn.LSTM) else 1
    return [rng.standard_normal((count, *batch, layer.hidden_size)) for _ in range(states)]


def _pieces(result: Any) -> list:
    """(output, h_n) or (output, (h_n, c_n)) as a flat list."""
    output, state = result
    return [output, *state] if isinstance(state, tuple) else [output, state]


def compare_with_twin(layer: nn.Module, twin: torch.nn.Module, shape: tuple[int, ...],
                      with_states: bool) -> None:
    """Outputs, final states and the gradients of the input, the initial states and every
    parameter equal the twin's at float64 (the same state dict in both)."""
    twin.load_state_dict(to_torch_state(layer))
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape)
    states = _states(layer, shape, rng) if with_states else []
    ours = [cr.tensor(a, requires_grad=True) for a in [x, *states]]
    theirs = [torch.tensor(a, requires_grad=True) for a in [x, *states]]

    def call(module: Any, tensors: list) -> list:
        if not with_states:
            return _pieces(module(tensors[0]))
        hx = tuple(tensors[1:]) if len(tensors) == 3 else tensors[1]
        return _pieces(module(tensors[0], hx))

    got, expected = call(layer, ours), call(twin, theirs)
    assert len(got) == len(expected)
    for mine, reference in zip(got, expected):
        assert mine.shape == tuple(reference.shape)
        np.testing.assert_allclose(mine.data, reference.detach().numpy(), rtol=1e-10,
                                   atol=1e-12)
    weights = [rng.standard_normal(t.shape) for t in got]
    loss = sum((t * w).sum() for t, w in zip(got, weights))
    loss.backward()
    torch_loss = sum((t * torch.from_numpy(w)).sum() for t, w in zip(expected, weights))
    torch_loss.backward()
    for i, (mine, reference) in enumerate(zip(ours, theirs)):
        np.testing.assert_allclose(mine.grad, reference.grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=f"gradient of input {i}")
    twin_params = dict(twin.named_parameters())
    for key, param in layer.named_parameters():
        np.testing.assert_allclose(param.grad, twin_params[key].grad.numpy(), rtol=1e-9,
                                   atol=1e-12, err_msg=key)


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize("label, settings, shape, with_states", CONFIGS,
                         ids=[c[0] for c in CONFIGS])
def test_layer_matches_torch(kind: str, label: str, settings: dict, shape: tuple,
                             with_states: bool) -> None:
    make, make_torch = LAYERS[kind]
    layer = make(input_size=4, hidden_size=3, **settings, **F64)
    twin = make_torch(input_size=4, hidden_size=3, **settings).double()
    compare_with_twin(layer, twin, shape, with_states)


class Flat(nn.Module):
    """A recurrent layer's output and final states in one flat tensor (what the shared twin
    and finite-difference checks take)."""

    def __init__(self, rnn: nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: cr.Tensor) -> cr.Tensor:
        result = self.rnn(x)
        if isinstance(self.rnn, nn.LSTMCell):
            parts = list(result)
        elif isinstance(result, tuple):
            parts = _pieces(result)
        else:
            parts = [result]
        return cr.concatenate([p.reshape(-1) for p in parts])


class TorchFlat(torch.nn.Module):
    def __init__(self, rnn: torch.nn.Module) -> None:
        super().__init__()
        self.rnn = rnn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.rnn(x)
        if isinstance(self.rnn, torch.nn.LSTMCell):
            parts = list(result)
        elif isinstance(result, tuple):
            parts = _pieces(result)
        else:
            parts = [result]
        return torch.cat([p.reshape(-1) for p in parts])


TWIN_ROWS = [
    ("GRU 2 layers bidirectional", lambda: nn.GRU(3, 2, 2, bidirectional=True, **F64),
     lambda: torch.nn.GRU(3, 2, 2, bidirectional=True), (3, 2, 3)),
    ("LSTM batch_first", lambda: nn.LSTM(3, 2, batch_first=True, **F64),
     lambda: torch.nn.LSTM(3, 2, batch_first=True), (2, 3, 3)),
    ("RNN relu 2 layers", lambda: nn.RNN(3, 2, 2, "relu", **F64),
     lambda: torch.nn.RNN(3, 2, 2, "relu"), (3, 2, 3)),
    ("RNNCell", lambda: nn.RNNCell(3, 2, **F64), lambda: torch.nn.RNNCell(3, 2), (4, 3)),
    ("RNNCell relu unbatched", lambda: nn.RNNCell(3, 2, nonlinearity="relu", **F64),
     lambda: torch.nn.RNNCell(3, 2, nonlinearity="relu"), (3,)),
    ("GRUCell", lambda: nn.GRUCell(3, 2, **F64), lambda: torch.nn.GRUCell(3, 2), (4, 3)),
    ("LSTMCell no bias", lambda: nn.LSTMCell(3, 2, bias=False, **F64),
     lambda: torch.nn.LSTMCell(3, 2, bias=False), (4, 3)),
]


@pytest.mark.parametrize("name, make, make_torch, shape", TWIN_ROWS,
                         ids=[r[0] for r in TWIN_ROWS])
def test_shared_twin_and_finite_difference_checks(name: str, make: Any, make_torch: Any,
                                                  shape: tuple) -> None:
    check_torch_twin(name, lambda: Flat(make()), lambda: TorchFlat(make_torch().double()),
                     shape)
    check_finite_differences(lambda: Flat(make()), shape)


@pytest.mark.parametrize("kind", LAYERS)
def test_finite_differences_with_initial_states(kind: str) -> None:
    layer = LAYERS[kind][0](input_size=3, hidden_size=2, num_layers=2, bidirectional=True,
                            **F64)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 2, 3))
    states = _states(layer, x.shape, rng)

    def run(x: cr.Tensor, *hx: cr.Tensor) -> cr.Tensor:
        parts = _pieces(layer(x, hx if len(hx) == 2 else hx[0]))
        return cr.concatenate([p.reshape(-1) for p in parts])

    cr.check.gradcheck(run, [x, *states])


# ----------------------------------------------------------------------------- cells
CELLS = {
    "RNNCell": (lambda **kw: nn.RNNCell(**kw), lambda **kw: torch.nn.RNNCell(**kw)),
    "RNNCell-relu": (lambda **kw: nn.RNNCell(nonlinearity="relu", **kw),
                     lambda **kw: torch.nn.RNNCell(nonlinearity="relu", **kw)),
    "GRUCell": (lambda **kw: nn.GRUCell(**kw), lambda **kw: torch.nn.GRUCell(**kw)),
    "LSTMCell": (lambda **kw: nn.LSTMCell(**kw), lambda **kw: torch.nn.LSTMCell(**kw)),
}


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("batched", [True, False])
@pytest.mark.parametrize("with_state", [True, False])
def test_cell_matches_torch(kind: str, batched: bool, with_state: bool) -> None:
    make, make_torch = CELLS[kind]
    cell, twin = make(input_size=4, hidden_size=3, **F64), make_torch(input_size=4,
                                                                      hidden_size=3).double()
    twin.load_state_dict(to_torch_state(cell))
    rng = np.random.default_rng(1)
    lead = (2,) if batched else ()
    arrays = [rng.standard_normal((*lead, 4))]
    lstm = kind == "LSTMCell"
    if with_state:
        arrays += [rng.standard_normal((*lead, 3)) for _ in range(2 if lstm else 1)]
    ours = [cr.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]

    def call(module: Any, tensors: list) -> list:
        if len(tensors) == 1:
            out = module(tensors[0])
        else:
            out = module(tensors[0], tuple(tensors[1:]) if lstm else tensors[1])
        return list(out) if lstm else [out]

    got, expected = call(cell, ours), call(twin, theirs)
    weights = [rng.standard_normal(tuple(t.shape)) for t in expected]
    for mine, reference in zip(got, expected):
        assert mine.shape == tuple(reference.shape)
        np.testing.assert_allclose(mine.data, reference.detach().numpy(), rtol=1e-10)
    sum((t * w).sum() for t, w in zip(got, weights)).backward()
    sum((t * torch.from_numpy(w)).sum() for t, w in zip(expected, weights)).backward()
    for mine, reference in zip(ours, theirs):
        np.testing.assert_allclose(mine.grad, reference.grad.numpy(), rtol=1e-10)
    twin_params = dict(twin.named_parameters())
    for key, param in cell.named_parameters():
        np.testing.assert_allclose(param.grad, twin_params[key].grad.numpy(), rtol=1e-10,
                                   err_msg=key)


# ----------------------------------------------------------------------------- state, init
@pytest.mark.parametrize("kind", LAYERS)
def test_torch_state_dict_loads_and_gives_torch_outputs(kind: str) -> None:
    make, make_torch = LAYERS[kind]
    torch.manual_seed(0)
    twin = make_torch(input_size=4, hidden_size=3, num_layers=2, bidirectional=True)
    layer = make(input_size=4, hidden_size=3, num_layers=2, bidirectional=True)
    assert list(layer.state_dict()) == list(twin.state_dict())
    layer.load_state_dict({k: v.numpy() for k, v in twin.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((5, 2, 4)).astype(np.float32)
    for mine, reference in zip(_pieces(layer(cr.tensor(x))), _pieces(twin(torch.from_numpy(x)))):
        assert mine.dtype == np.float32
        np.testing.assert_allclose(mine.data, reference.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


@pytest.mark.parametrize("make", [lambda g: nn.GRU(5, 8, 2, bidirectional=True, generator=g),
                                  lambda g: nn.LSTMCell(5, 8, generator=g)])
def test_init_is_uniform_within_one_over_sqrt_hidden_and_seeded(make: Any) -> None:
    layer = make(np.random.default_rng(7))
    bound = 1 / math.sqrt(8)
    for key, param in layer.named_parameters():
        assert param.dtype == np.float32, key
        assert np.all(np.abs(param.data) <= bound), key
        assert param.data.std() > bound / 3, key  # drawn, not a constant
    again = make(np.random.default_rng(7))
    for key, value in layer.state_dict().items():
        np.testing.assert_array_equal(value, again.state_dict()[key])


def test_parameter_shapes_and_names_follow_torch() -> None:
    ours = nn.LSTM(5, 3, num_layers=2, bidirectional=True)
    theirs = torch.nn.LSTM(5, 3, num_layers=2, bidirectional=True)
    assert [(k, tuple(p.shape)) for k, p in ours.named_parameters()] == [
        (k, tuple(p.shape)) for k, p in theirs.named_parameters()]
    assert [[tuple(p.shape) for p in layer] for layer in ours.all_weights] == [
        [tuple(p.shape) for p in layer] for layer in theirs.all_weights]
    ours.flatten_parameters()  # a no-op, as ported code calls it


@pytest.mark.parametrize("ours, theirs", [
    (nn.RNN(4, 3), torch.nn.RNN(4, 3)),
    (nn.RNN(4, 3, 2, "relu", False, True, 0.5, True),
     torch.nn.RNN(4, 3, 2, "relu", False, True, 0.5, True)),
    (nn.GRU(4, 3, num_layers=2, batch_first=True), torch.nn.GRU(4, 3, num_layers=2,
                                                                batch_first=True)),
    (nn.LSTM(4, 3, bidirectional=True, bias=False), torch.nn.LSTM(4, 3, bidirectional=True,
                                                                  bias=False)),
    (nn.RNNCell(4, 3, nonlinearity="relu"), torch.nn.RNNCell(4, 3, nonlinearity="relu")),
    (nn.GRUCell(4, 3, bias=False), torch.nn.GRUCell(4, 3, bias=False)),
    (nn.LSTMCell(4, 3), torch.nn.LSTMCell(4, 3)),
])
def test_repr_matches_torch(ours: nn.Module, theirs: torch.nn.Module) -> None:
    assert repr(ours) == repr(theirs)


# ----------------------------------------------------------------------------- the tape
@pytest.mark.parametrize("kind", LAYERS)
def test_one_node_per_layer_and_direction(kind: str) -> None:
    layer = LAYERS[kind][0](input_size=4, hidden_size=3, num_layers=2, bidirectional=True)
    x = cr.tensor(np.ones((30, 2, 4), np.float32), requires_grad=True)
    output, state = layer(x)
    nodes = topological_order(output) + topological_order(
        state[0] if isinstance(state, tuple) else state)
    names = [node.grad_fn.name for node in {id(n): n for n in nodes}.values()]
    recurrent = [n for n in names if n.endswith("_sequence")]
    assert len(recurrent) == 4  # 2 layers x 2 directions, whatever the length
    assert len(names) <= 16, names  # and a few slices, joins and stacks around them


# ----------------------------------------------------------------------------- dropout
def test_dropout_between_layers() -> None:
    # p = 1 zeros every input to the layers above the first: deterministic, so torch agrees
    layer = nn.GRU(4, 3, num_layers=2, dropout=1.0, **F64)
    twin = torch.nn.GRU(4, 3, num_layers=2, dropout=1.0).double()
    compare_with_twin(layer, twin, (5, 2, 4), True)
    x = cr.tensor(np.random.default_rng(0).standard_normal((6, 3, 4)).astype(np.float32))
    partly = nn.LSTM(4, 3, num_layers=2, dropout=0.5, generator=np.random.default_rng(1))
    first = partly(x)[0].data
    partly.eval()
    plain = partly(x)[0].data
    assert not np.allclose(first, plain)  # training drew masks
    np.testing.assert_array_equal(partly(x)[0].data, plain)  # eval: none


def test_dropout_with_one_layer_warns_as_torch() -> None:
    with pytest.warns(UserWarning, match="between layers"):
        nn.GRU(4, 3, dropout=0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        nn.GRU(4, 3, num_layers=2, dropout=0.2)


# ----------------------------------------------------------------------------- dtypes
def test_float32_matches_torch_and_stays_float32() -> None:
    layer, twin = nn.GRU(6, 5, 2), torch.nn.GRU(6, 5, 2)
    twin.load_state_dict(to_torch_state(layer))
    x = np.random.default_rng(0).standard_normal((7, 3, 6)).astype(np.float32)
    out, h_n = layer(cr.tensor(x, requires_grad=True))
    expected, _ = twin(torch.from_numpy(x))
    assert out.dtype == h_n.dtype == np.float32
    np.testing.assert_allclose(out.data, expected.detach().numpy(), rtol=1e-5, atol=1e-6)
    out.sum().backward()
    assert layer.weight_hh_l1.grad.dtype == np.float32


def test_numpy_input_and_mixed_dtypes() -> None:
    layer = nn.RNN(4, 3)
    out, h_n = layer(np.ones((2, 1, 4), np.float32))  # an array is taken as a constant
    assert out.shape == (2, 1, 3) and h_n.shape == (1, 1, 3)
    with pytest.raises(DtypeMismatchError, match="rnn_sequence.*float64"):
        layer(np.ones((2, 1, 4)))


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("make, error, match", [
    (lambda: nn.GRU(0, 3), ValueError, "input_size must be >= 1"),
    (lambda: nn.GRU(4, 3.0), TypeError, "hidden_size must be an int"),
    (lambda: nn.LSTM(4, 3, num_layers=0), ValueError, "num_layers"),
    (lambda: nn.RNN(4, 3, nonlinearity="sigmoid"), ValueError, "'tanh' or 'relu'"),
    (lambda: nn.GRU(4, 3, dropout=1.5), ValueError, "dropout must be in"),
    (lambda: nn.GRU(4, 3, bias=1), TypeError, "bias must be True or False"),
    (lambda: nn.LSTM(4, 3, proj_size=2), ValueError, "proj_size is not supported"),
    (lambda: nn.GRU(4, 3, bidirectional="yes"), TypeError, "bidirectional"),
    (lambda: nn.GRUCell(4, -1), ValueError, "hidden_size"),
    (lambda: nn.RNNCell(4, 3, nonlinearity="gelu"), ValueError, "nonlinearity"),
    (lambda: nn.LSTM(4, 3, dtype="int32"), TypeError, "dtype"),
])
def test_bad_settings_are_refused(make: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("call, match", [
    (lambda: nn.GRU(4, 3)(np.ones((2, 1, 5), np.float32)),
     "5 features in its last axis, but input_size is 4"),
    (lambda: nn.GRU(4, 3)(np.ones((2, 1, 1, 4), np.float32)), "3-D .L, N, H_in."),
    (lambda: nn.GRU(4, 3, batch_first=True)(np.ones(4, np.float32)), "N, L, H_in"),
    (lambda: nn.GRU(4, 3, 2)(np.ones((2, 1, 4), np.float32), np.zeros((1, 1, 3), np.float32)),
     r"initial state must have shape .* = \(2, 1, 3\), got \(1, 1, 3\)"),
    (lambda: nn.GRU(4, 3)(np.ones((2, 4), np.float32), np.zeros((1, 1, 3), np.float32)),
     r"= \(1, 3\) for unbatched input, got \(1, 1, 3\)"),
    (lambda: nn.LSTM(4, 3)(np.ones((2, 1, 4), np.float32), np.zeros((1, 1, 3), np.float32)),
     "hx must be a pair"),
    (lambda: nn.GRU(4, 3)(np.ones((0, 2, 4), np.float32)), "sequence is empty"),
    (lambda: nn.GRUCell(4, 3)(np.ones((2, 5), np.float32)), "input must be"),
    (lambda: nn.GRUCell(4, 3)(np.ones((2, 4), np.float32), np.zeros((3, 3), np.float32)),
     r"hx must have shape \(2, 3\)"),
    (lambda: nn.LSTMCell(4, 3)(np.ones((2, 4), np.float32), np.zeros((2, 3), np.float32)),
     "hx must be a pair"),
])
def test_bad_input_is_refused(call: Any, match: str) -> None:
    with pytest.raises((ValueError, TypeError), match=match):
        call()


def test_functional_forms_check_their_arguments() -> None:
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal((3, 2, 4)), rng.standard_normal((2, 5))
    w_ih, w_hh = rng.standard_normal((15, 4)), rng.standard_normal((15, 5))
    assert cr.gru_sequence(x, h, w_ih, w_hh).shape == (3, 2, 5)
    assert cr.gru_cell(x[0], h, w_ih, w_hh).shape == (2, 5)
    with pytest.raises(ValueError, match=r"gru_sequence: w_hh must have shape \(15, 5\)"):
        cr.gru_sequence(x, h, w_ih, w_hh[:, :4])
    with pytest.raises(ValueError, match=r"gru_cell: input must be 2-D"):
        cr.gru_cell(x, h, w_ih, w_hh)
    with pytest.raises(ValueError, match=r"hx must be 2-D \(B, hidden_size\) with B = 2"):
        cr.gru_sequence(x, h[:1], w_ih, w_hh)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        cr.rnn_sequence(x, h, w_ih[:5], w_hh[:5], nonlinearity="sigmoid")
    hs, cs = cr.lstm_sequence(x, (h, h), np.vstack([w_ih, w_ih[:5]]),
                              np.vstack([w_hh, w_hh[:5]]))
    assert hs.shape == cs.shape == (3, 2, 5)
    with pytest.raises(TypeError, match=r"lstm_cell: hx must be a pair \(h, c\)"):
        cr.lstm_cell(x[0], h, w_ih, w_hh)
