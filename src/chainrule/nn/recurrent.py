"""Recurrent layers: RNN, GRU, LSTM and their one-step cells; the ops live in
chainrule.ops.recurrent.

Parameters have PyTorch's names, shapes, order and init, so state dicts exchange with
``torch.nn.RNN``/``GRU``/``LSTM`` unchanged: for layer k (and ``_reverse`` for the backward
direction) ``weight_ih_lk`` (gates * hidden_size, input), ``weight_hh_lk``
(gates * hidden_size, hidden_size), ``bias_ih_lk`` and ``bias_hh_lk``, all drawn from
U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)). Each layer and direction runs its whole
sequence as one op on the tape.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor, _as_data
from chainrule.nn import init
from chainrule.nn.module import Module, Parameter
from chainrule.ops.elementwise import dropout as _dropout
from chainrule.ops.recurrent import (
    GRUCellOp,
    GRUSequenceOp,
    LSTMCellOp,
    LSTMSequenceOp,
    RNNCellOp,
    RNNSequenceOp,
)
from chainrule.ops.shape import concatenate, squeeze, stack, transpose, unsqueeze

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "GRU": 3, "LSTM": 4}


def _as_tensor(value: Any, what: str) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor(_as_data(value, where=what))


def _sizes(name: str, input_size: Any, hidden_size: Any, bias: Any) -> tuple[int, int, bool]:
    return (validate.integer(name, "input_size", input_size, low=1),
            validate.integer(name, "hidden_size", hidden_size, low=1),
            validate.boolean(name, "bias", bias))


class RNNBase(Module):
    """What RNN, GRU and LSTM share: the parameters of every layer and direction, the
    checks on input and initial states, and the loop over layers."""

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        mode = validate.choice(name, "mode", mode, tuple(_GATES))
        input_size, hidden_size, bias = _sizes(name, input_size, hidden_size, bias)
        num_layers = validate.integer(name, "num_layers", num_layers, low=1)
        batch_first = validate.boolean(name, "batch_first", batch_first)
        dropout = validate.real(name, "dropout", dropout, 0, 1)
        bidirectional = validate.boolean(name, "bidirectional", bidirectional)
        if validate.integer(name, "proj_size", proj_size, low=0) != 0:
            raise ValueError(f"{name}: proj_size is not supported (only 0, no projection); "
                             "add an nn.Linear after the layer instead")
        dtype = validate.float_dtype(name, "dtype", dtype)
        generator = validate.generator(name, "generator", generator)
        if dropout > 0 and num_layers == 1:
            # PyTorch's warning: dropout only acts between layers
            warnings.warn(f"{name}: dropout={dropout} and num_layers=1: dropout is applied "
                          "between layers only, so it does nothing here", UserWarning,
                          stacklevel=3)
        self.mode, self.input_size, self.hidden_size = mode, input_size, hidden_size
        self.num_layers, self.bias, self.batch_first = num_layers, bias, batch_first
        self.dropout, self.bidirectional, self.proj_size = dropout, bidirectional, 0
        self.generator = generator  # the dropout masks' source (chainrule's when None)
        directions = 2 if bidirectional else 1
        rows = _GATES[mode] * hidden_size
        self._flat_names: list[list[str]] = []
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * directions
            for direction in range(directions):
                suffix = f"_l{layer}" + ("_reverse" if direction else "")
                shapes = {f"weight_ih{suffix}": (rows, width),
                          f"weight_hh{suffix}": (rows, hidden_size)}
                if bias:
                    shapes.update({f"bias_ih{suffix}": (rows,), f"bias_hh{suffix}": (rows,)})
                for key, shape in shapes.items():
                    setattr(self, key, Parameter(init.empty(shape, dtype)))
                self._flat_names.append(list(shapes))
        self.reset_parameters(generator)

    def reset_parameters(self, generator: np.random.Generator | None = None) -> None:
        """Draw every weight and bias from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size))."""
        bound = 1 / math.sqrt(self.hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound, generator=generator)

    def flatten_parameters(self) -> None:
        """Nothing to do (PyTorch packs weights for cuDNN here); kept so ported code runs."""

    @property
    def all_weights(self) -> list[list[Parameter]]:
        """The parameters of each layer and direction, in PyTorch's order."""
        return [[getattr(self, key) for key in names] for names in self._flat_names]

    def _weights(self, index: int) -> list[Any]:
        """(w_ih, w_hh, b_ih, b_hh) of one layer and direction; biases None without bias."""
        params = self.all_weights[index]
        return params + [None, None] if len(params) == 2 else params

    def _states(self, hx: Any, batched: bool, batch: int, dtype: np.dtype) -> list[Any]:
        """The initial state of each layer and direction: a (B, H) tensor, or zeros."""
        name = type(self).__name__
        count = self.num_layers * (2 if self.bidirectional else 1)
        if hx is None:
            zeros = np.zeros((batch, self.hidden_size), dtype)
            return [zeros] * count
        hx = _as_tensor(hx, f"{name} hx")
        expected = (count, batch, self.hidden_size) if batched else (count, self.hidden_size)
        if hx.shape != expected:
            shape = ("(num_layers * num_directions, N, hidden_size)" if batched else
                     "(num_layers * num_directions, hidden_size)")
            raise ValueError(f"{name}: initial state must have shape {shape} = {expected}"
                             f"{'' if batched else ' for unbatched input'}, got {hx.shape}")
        if not batched:
            hx = unsqueeze(hx, 1)
        return [hx[k] for k in range(count)]

    def _input(self, input: Any) -> tuple[Tensor, bool]:
        """The input as (T, B, input_size), and whether it came with a batch axis."""
        name = type(self).__name__
        x = _as_tensor(input, f"{name} input")
        if x.ndim not in (2, 3):
            layout = "(N, L, H_in) with batch_first" if self.batch_first else "(L, N, H_in)"
            raise ValueError(f"{name}: input must be 3-D {layout} or 2-D (L, H_in) unbatched, "
                             f"got shape {x.shape}")
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input has {x.shape[-1]} features in its last axis, "
                             f"but input_size is {self.input_size}")
        if x.ndim == 2:
            return unsqueeze(x, 1), False
        return (transpose(x, 0, 1) if self.batch_first else x), True

    def _run(self, x: Tensor, initial: list[list[Any]]) -> tuple[Tensor, list[list[Tensor]]]:
        """The sequence through every layer: the last layer's output (T, B, D*H), and the
        final states of each layer and direction (each a list: h, or h and c)."""
        directions = 2 if self.bidirectional else 1
        finals: list[list[Tensor]] = []
        for layer in range(self.num_layers):
            outputs = []
            for direction in range(directions):
                k = layer * directions + direction
                reverse = direction == 1
                last = 0 if reverse else -1  # the reverse direction ends at step 0
                weights = self._weights(k)
                if self.mode == "LSTM":
                    both = LSTMSequenceOp.apply(x, *initial[k], *weights, reverse=reverse)
                    outputs.append(both[0])
                    finals.append([both[0, last], both[1, last]])
                elif self.mode == "GRU":
                    seq = GRUSequenceOp.apply(x, *initial[k], *weights, reverse=reverse)
                    outputs.append(seq)
                    finals.append([seq[last]])
                else:
                    seq = RNNSequenceOp.apply(
                        x, *initial[k], *weights, reverse=reverse,
                        nonlinearity="tanh" if self.mode == "RNN_TANH" else "relu")
                    outputs.append(seq)
                    finals.append([seq[last]])
            x = outputs[0] if directions == 1 else concatenate(outputs, axis=2)
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                x = _dropout(x, self.dropout, True, self.generator)
        return x, finals

    def _output(self, output: Tensor, batched: bool) -> Tensor:
        if not batched:
            return squeeze(output, 1)
        return transpose(output, 0, 1) if self.batch_first else output

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            text += f", num_layers={self.num_layers}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if self.batch_first is not False:
            text += f", batch_first={self.batch_first}"
        if self.dropout != 0:
            text += f", dropout={self.dropout}"
        if self.bidirectional is not False:
            text += f", bidirectional={self.bidirectional}"
        return text


class _HiddenOnly(RNNBase):
    """RNN and GRU: one state, h."""

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Tensor]:
        """(output, h_n): output (L, N, D*H) ((N, L, D*H) with batch_first), h_n
        (num_layers*D, N, H); without the N axis for unbatched input."""
        x, batched = self._input(input)
        states = self._states(hx, batched, x.shape[1], self.weight_ih_l0.dtype)
        output, finals = self._run(x, [[h] for h in states])
        h_n = stack([h for h, in finals], axis=0)
        return self._output(output, batched), h_n if batched else squeeze(h_n, 1)


class RNN(_HiddenOnly):
    """Elman RNN, h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu,
    over ``num_layers`` stacked layers (each optionally bidirectional), as torch.nn.RNN."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        nonlinearity = validate.choice("RNN", "nonlinearity", nonlinearity, ("tanh", "relu"))
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size,
                         hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype, generator=generator)
        self.nonlinearity = nonlinearity


class GRU(_HiddenOnly):
    """Gated recurrent unit (gates r, z, n, PyTorch's equations), over ``num_layers``
    stacked layers (each optionally bidirectional), as torch.nn.GRU."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, dtype=dtype, generator=generator)


class LSTM(RNNBase):
    """Long short-term memory (gates i, f, g, o, PyTorch's equations), over ``num_layers``
    stacked layers (each optionally bidirectional), as torch.nn.LSTM (without proj_size)."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, proj_size, dtype=dtype, generator=generator)

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """(output, (h_n, c_n)): output (L, N, D*H) ((N, L, D*H) with batch_first), h_n and
        c_n (num_layers*D, N, H); without the N axis for unbatched input."""
        x, batched = self._input(input)
        dtype = self.weight_ih_l0.dtype
        if hx is None:
            h0 = c0 = self._states(None, batched, x.shape[1], dtype)
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTM: hx must be a pair (h_0, c_0), got "
                                f"{type(hx).__name__}")
            h0 = self._states(hx[0], batched, x.shape[1], dtype)
            c0 = self._states(hx[1], batched, x.shape[1], dtype)
        output, finals = self._run(x, [[h, c] for h, c in zip(h0, c0)])
        h_n = stack([h for h, _ in finals], axis=0)
        c_n = stack([c for _, c in finals], axis=0)
        if not batched:
            h_n, c_n = squeeze(h_n, 1), squeeze(c_n, 1)
        return self._output(output, batched), (h_n, c_n)


# ----------------------------------------------------------------------------- cells
class RNNCellBase(Module):
    """What the cells share: weight_ih (gates*H, input), weight_hh (gates*H, H), bias_ih and
    bias_hh (gates*H,), drawn from U(-1/sqrt(H), 1/sqrt(H)), and the checks on the input."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool, num_chunks: int,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__()
        name = type(self).__name__
        input_size, hidden_size, bias = _sizes(name, input_size, hidden_size, bias)
        dtype = validate.float_dtype(name, "dtype", dtype)
        generator = validate.generator(name, "generator", generator)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        rows = num_chunks * hidden_size
        self.weight_ih = Parameter(init.empty((rows, input_size), dtype))
        self.weight_hh = Parameter(init.empty((rows, hidden_size), dtype))
        self.bias_ih = Parameter(init.empty(rows, dtype)) if bias else None
        self.bias_hh = Parameter(init.empty(rows, dtype)) if bias else None
        bound = 1 / math.sqrt(hidden_size)
        for param in self.parameters():
            init.uniform_(param, -bound, bound, generator=generator)

    def _input(self, input: Any) -> tuple[Tensor, bool]:
        """The input as (B, input_size), and whether it came with a batch axis."""
        name = type(self).__name__
        x = _as_tensor(input, f"{name} input")
        if x.ndim not in (1, 2) or x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input must be (N, {self.input_size}) or "
                             f"({self.input_size},) unbatched (input_size "
                             f"{self.input_size}), got shape {x.shape}")
        return (x, True) if x.ndim == 2 else (unsqueeze(x, 0), False)

    def _state(self, hx: Any, batched: bool, batch: int, what: str = "hx") -> Any:
        name = type(self).__name__
        if hx is None:
            return np.zeros((batch, self.hidden_size), self.weight_ih.dtype)
        hx = _as_tensor(hx, f"{name} {what}")
        expected = (batch, self.hidden_size) if batched else (self.hidden_size,)
        if hx.shape != expected:
            raise ValueError(f"{name}: {what} must have shape {expected} "
                             f"({'(N, hidden_size)' if batched else '(hidden_size,)'} for "
                             f"{'batched' if batched else 'unbatched'} input), got {hx.shape}")
        return hx if batched else unsqueeze(hx, 0)

    def _params(self) -> tuple[Any, ...]:
        return self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh

    def extra_repr(self) -> str:
        text = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            text += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            text += f", nonlinearity={self.nonlinearity}"
        return text


class RNNCell(RNNCellBase):
    """One Elman RNN step, h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), as torch.nn.RNNCell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        nonlinearity = validate.choice("RNNCell", "nonlinearity", nonlinearity,
                                       ("tanh", "relu"))
        super().__init__(input_size, hidden_size, bias, 1, dtype, generator)
        self.nonlinearity = nonlinearity

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        """The next hidden state, (N, H) (or (H,) for unbatched input)."""
        x, batched = self._input(input)
        h = RNNCellOp.apply(x, self._state(hx, batched, x.shape[0]), *self._params(),
                            nonlinearity=self.nonlinearity)
        return h if batched else squeeze(h, 0)


class GRUCell(RNNCellBase):
    """One GRU step (gates r, z, n), as torch.nn.GRUCell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, 3, dtype, generator)

    def forward(self, input: Any, hx: Any = None) -> Tensor:
        """The next hidden state, (N, H) (or (H,) for unbatched input)."""
        x, batched = self._input(input)
        h = GRUCellOp.apply(x, self._state(hx, batched, x.shape[0]), *self._params())
        return h if batched else squeeze(h, 0)


class LSTMCell(RNNCellBase):
    """One LSTM step (gates i, f, g, o), as torch.nn.LSTMCell."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 dtype: np.dtype | str | None = None,
                 generator: np.random.Generator | None = None) -> None:
        super().__init__(input_size, hidden_size, bias, 4, dtype, generator)

    def forward(self, input: Any, hx: Any = None) -> tuple[Tensor, Tensor]:
        """The next (h, c), each (N, H) (or (H,) for unbatched input)."""
        x, batched = self._input(input)
        if hx is None:
            h = c = self._state(None, batched, x.shape[0])
        else:
            if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                raise TypeError(f"LSTMCell: hx must be a pair (h, c), got "
                                f"{type(hx).__name__}")
            h = self._state(hx[0], batched, x.shape[0], "h")
            c = self._state(hx[1], batched, x.shape[0], "c")
        both = LSTMCellOp.apply(x, h, c, *self._params())
        if not batched:
            both = squeeze(both, 1)
        return both[0], both[1]
