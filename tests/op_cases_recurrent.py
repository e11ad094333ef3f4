"""Matrix cases for issue 14's recurrent layers (area S2); see op_cases.py.

Each op is checked against PyTorch's own cell functions (torch.rnn_tanh_cell, torch.gru_cell,
torch.lstm_cell), looped over the steps for the sequence ops, so the equations and gate order
are PyTorch's and not a re-derivation of ours.
"""

from __future__ import annotations

from typing import Any

import hypothesis.strategies as st
import numpy as np
import torch
from op_cases import Case, Draw

GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def build_recurrent(kind: str, sequence: bool) -> Any:
    """Inputs (x, hx[, cx], w_ih, w_hh, b_ih, b_hh): small sizes, biases drawn or None."""

    def build(draw: Draw, rng: np.random.Generator) -> tuple[list, dict]:
        batch, features, hidden = (draw(st.integers(1, 3)), draw(st.integers(1, 4)),
                                   draw(st.integers(1, 4)))
        gates = GATES[kind] * hidden
        x_shape = ((draw(st.integers(1, 4)),) if sequence else ()) + (batch, features)
        states = [rng.standard_normal((batch, hidden))
                  for _ in range(2 if kind == "lstm" else 1)]
        weights = [rng.standard_normal((gates, features)) * 0.6,
                   rng.standard_normal((gates, hidden)) * 0.6]
        biases = ([rng.standard_normal(gates) * 0.5 for _ in range(2)]
                  if draw(st.booleans()) else [None, None])
        attrs: dict[str, Any] = {}
        if kind == "rnn":
            attrs["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
        if sequence:
            attrs["reverse"] = draw(st.booleans())
        return [rng.standard_normal(x_shape), *states, *weights, *biases], attrs

    return build


def _torch_step(kind: str, nonlinearity: str) -> Any:
    if kind == "rnn":
        return torch.rnn_tanh_cell if nonlinearity == "tanh" else torch.rnn_relu_cell
    return torch.gru_cell


def torch_cell(kind: str) -> Any:
    def run(x: torch.Tensor, *rest: Any, nonlinearity: str = "tanh") -> torch.Tensor:
        if kind == "lstm":
            h, c, *params = rest
            return torch.stack(torch.lstm_cell(x, (h, c), *params))
        return _torch_step(kind, nonlinearity)(x, *rest)

    return run


def torch_sequence(kind: str) -> Any:
    def run(x: torch.Tensor, *rest: Any, nonlinearity: str = "tanh",
            reverse: bool = False) -> torch.Tensor:
        steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
        if kind == "lstm":
            h, c, *params = rest
            hs, cs = {}, {}
            for t in steps:
                h, c = torch.lstm_cell(x[t], (h, c), *params)
                hs[t], cs[t] = h, c
            return torch.stack([torch.stack([hs[t] for t in range(x.shape[0])]),
                                torch.stack([cs[t] for t in range(x.shape[0])])])
        h, *params = rest
        step, hs = _torch_step(kind, nonlinearity), {}
        for t in steps:
            h = step(x[t], h, *params)
            hs[t] = h
        return torch.stack([hs[t] for t in range(x.shape[0])])

    return run


CASES: list[Case] = [
    Case("rnn_cell", "tanh or relu, bias or not", build_recurrent("rnn", False),
         torch_cell("rnn")),
    Case("gru_cell", "bias or not", build_recurrent("gru", False), torch_cell("gru")),
    Case("lstm_cell", "bias or not", build_recurrent("lstm", False), torch_cell("lstm")),
    Case("rnn_sequence", "tanh or relu, reverse, bias or not", build_recurrent("rnn", True),
         torch_sequence("rnn")),
    Case("gru_sequence", "reverse, bias or not", build_recurrent("gru", True),
         torch_sequence("gru")),
    Case("lstm_sequence", "reverse, bias or not", build_recurrent("lstm", True),
         torch_sequence("lstm")),
]
