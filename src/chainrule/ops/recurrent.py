"""Recurrent cells and sequences: the Elman RNN (tanh or relu), the GRU and the LSTM.

Each is one fused op with its backward written out, in PyTorch's equations and gate order
(weights ``w_ih`` (gates * hidden, input), ``w_hh`` (gates * hidden, hidden), biases
(gates * hidden,), optional). A ``*_cell`` op is one time step; a ``*_sequence`` op runs one
layer in one direction over a whole (T, B, input) sequence as one node on the tape, which is
what makes it fast: the input projections of all T steps are one matrix product before the
loop, each step is one small product with ``w_hh`` and a few elementwise passes, and backward
accumulates every weight gradient in one product over all steps after its loop.

Backward runs the steps in reverse (backpropagation through time): the gradient reaching a
step's state is the output's own gradient there plus what flows back from the next step
(``carry``). Writing ``a`` for a gate's pre-activation and ``da`` for d(loss)/d(a), with
the ``da`` of every step stacked as dA (T*B rows), the weight gradients are
dW_ih = dA_i^T X, dW_hh = dA_h^T H_prev, db = column sums of dA, and dX = dA_i W_ih.

The forward pre-activations are kept gate-major, (gates, T, B, H): each gate of a step is one
contiguous block, so the elementwise passes run over contiguous memory (over (B, gates*H)
column slices NumPy pays a loop set-up per row). What goes into a product is kept step-major,
(T, B, gates*H), instead: a step's h W_hh^T is one (B, H) x (H, gates*H) product, its carry
d gh W_hh one (B, gates*H) x (gates*H, H) product, and each weight gradient one product over
all steps, where the gate-major layout costs a product per gate (twice the time at these
sizes). A step's elementwise work is one kernel (kernels.gru_step, lstm_step and their
gradients, in kernels/recurrent.py), which reads and writes both layouts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule import kernels, validate
from chainrule.engine.function import Context, Function
from chainrule.engine.tensor import Tensor

NONLINEARITIES = ("tanh", "relu")


# ----------------------------------------------------------------------------- shared pieces
def _check(op: str, x: np.ndarray, states: Sequence[np.ndarray], w_ih: np.ndarray,
           w_hh: np.ndarray, b_ih: np.ndarray | None, b_hh: np.ndarray | None,
           gates: int) -> tuple[int, int, int]:
    """(T, B, H) of a (T, B, input) sequence, or refuse shapes that do not fit together."""
    if x.ndim != 3:
        raise ValueError(f"{op}: input must be 3-D (T, B, input_size), got shape {x.shape}")
    steps, batch, features = x.shape
    if steps == 0:
        raise ValueError(f"{op}: the sequence is empty (T = 0); give at least one step")
    names = ("hx", "cx")
    for name, state in zip(names, states):
        if state.ndim != 2 or state.shape[0] != batch:
            raise ValueError(f"{op}: {name} must be 2-D (B, hidden_size) with B = {batch}, "
                             f"the input's batch, got shape {state.shape}")
    hidden = states[0].shape[1]
    for name, state in zip(names[1:], states[1:]):
        if state.shape != states[0].shape:
            raise ValueError(f"{op}: {name} must have hx's shape {states[0].shape}, got "
                             f"{state.shape}")
    expected = {"w_ih": (gates * hidden, features), "w_hh": (gates * hidden, hidden),
                "b_ih": (gates * hidden,), "b_hh": (gates * hidden,)}
    for name, array in zip(expected, (w_ih, w_hh, b_ih, b_hh)):
        if array is not None and array.shape != expected[name]:
            raise ValueError(
                f"{op}: {name} must have shape {expected[name]} ({gates} gate"
                f"{'s' if gates > 1 else ''} x hidden_size {hidden}"
                f"{', input_size ' + str(features) if name == 'w_ih' else ''}"
                f"{', hidden_size' if name == 'w_hh' else ''}), got {array.shape}")
    return steps, batch, hidden


def _input_projection(x: np.ndarray, w_ih: np.ndarray, b_ih: np.ndarray | None,
                      gates: int) -> np.ndarray:
    """x W_ih^T + b_ih for every step at once, gate-major: (gates, T, B, H), a fresh array."""
    steps, batch, features = x.shape
    per_gate = w_ih.reshape(gates, -1, features).transpose(0, 2, 1)  # (gates, input, H)
    out = kernels.matmul(x.reshape(steps * batch, features), per_gate)
    if b_ih is not None:
        out += b_ih.reshape(gates, 1, -1)
    return out.reshape(gates, steps, batch, -1)


def _order(steps: int, reverse: bool) -> range:
    """The time steps in the order a direction visits them."""
    return range(steps - 1, -1, -1) if reverse else range(steps)


def _start(states: np.ndarray, initial: np.ndarray, t: int, reverse: bool) -> np.ndarray:
    """The state step t started from: the previous step's in the direction's order, or the
    initial state at the step where the run began."""
    if reverse:
        return initial if t == len(states) - 1 else states[t + 1]
    return initial if t == 0 else states[t - 1]


def _sums(d: np.ndarray) -> np.ndarray:
    """The bias gradient of step-major (T, B, gates * H) gradients: their column sums."""
    return kernels.column_sums(d.reshape(-1, d.shape[-1]))


def _hidden_weight_gradient(d_hid: np.ndarray, states: np.ndarray, initial: np.ndarray,
                            reverse: bool) -> np.ndarray:
    """dW_hh = sum over steps of d_hid_t^T h_prev_t, d_hid step-major (T, B, gates * H),
    h_prev being the states shifted one step (views, no copy) and the initial state where
    the run began."""
    steps, batch, width = d_hid.shape
    if reverse:
        later, earlier, first = d_hid[:-1], states[1:], d_hid[-1]
    else:
        later, earlier, first = d_hid[1:], states[:-1], d_hid[0]
    grad = kernels.matmul(first.T, initial)
    if steps > 1:
        rows = (steps - 1) * batch
        grad += kernels.matmul(later.reshape(rows, width).T, earlier.reshape(rows, -1))
    return grad


def _weight_gradients(ctx: Context, d_in: np.ndarray, d_hid: np.ndarray, states: np.ndarray,
                      first: int) -> list[np.ndarray | None]:
    """(dx, dw_ih, dw_hh, db_ih, db_hh) from the pre-activation gradients of all steps.

    ``d_in`` is d(loss)/d(x W_ih^T + b_ih) and ``d_hid`` that of h W_hh^T + b_hh, both
    step-major (T, B, gates * H); ``states`` (T, B, H)
    every step's output state (``ctx.hx`` the initial one); ``first`` the position of w_ih
    among the op's inputs (the states come before it).
    """
    needs = (*ctx.needs_input_grad, False, False)  # the biases may not have been passed
    x, w_ih = ctx.x, ctx.w_ih
    need_x, need_wih, need_whh, need_bih, need_bhh = (needs[0], *needs[first:first + 4])
    dx = dw_ih = dw_hh = db_ih = db_hh = None
    if need_x or need_wih:
        rows = d_in.reshape(-1, d_in.shape[-1])  # (T * B, gates * H)
        if need_x:
            dx = kernels.matmul(rows, w_ih).reshape(x.shape)
        if need_wih:
            dw_ih = kernels.matmul(rows.T, x.reshape(rows.shape[0], -1))
    if need_whh:
        dw_hh = _hidden_weight_gradient(d_hid, states, ctx.hx, ctx.reverse)
    if need_bih:
        db_ih = _sums(d_in)
    if need_bhh:
        # one array per parameter: two gradients sharing memory could be changed together
        db_hh = db_ih.copy() if d_hid is d_in and need_bih else _sums(d_hid)
    return [dx, dw_ih, dw_hh, db_ih, db_hh]


def _keep(ctx: Context, x: np.ndarray, w_ih: np.ndarray, w_hh: np.ndarray,
          reverse: bool) -> None:
    ctx.x, ctx.w_ih, ctx.w_hh, ctx.reverse = x, w_ih, w_hh, reverse


# ----------------------------------------------------------------------------- Elman RNN
def _rnn_forward(ctx: Context, op: str, x: np.ndarray, hx: np.ndarray, w_ih: np.ndarray,
                 w_hh: np.ndarray, b_ih: np.ndarray | None, b_hh: np.ndarray | None,
                 nonlinearity: str, reverse: bool) -> np.ndarray:
    """h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) for every step: (T, B, H)."""
    validate.choice(op, "nonlinearity", nonlinearity, NONLINEARITIES)
    steps, _, _ = _check(op, x, (hx,), w_ih, w_hh, b_ih, b_hh, 1)
    if b_hh is not None:  # both biases add outright: one pass over the projections
        b_ih = b_hh if b_ih is None else b_ih + b_hh
    out = _input_projection(x, w_ih, b_ih, 1)[0]  # each step's pre-activation, then its h
    w_hh_t, h = w_hh.T, hx
    for t in _order(steps, reverse):
        h_t = out[t]
        h_t += kernels.matmul(h, w_hh_t)
        if nonlinearity == "tanh":
            np.tanh(h_t, out=h_t)
        else:
            np.maximum(h_t, 0, out=h_t)
        h = h_t
    _keep(ctx, x, w_ih, w_hh, reverse)
    ctx.hx, ctx.out, ctx.nonlinearity = hx, out, nonlinearity
    return out


def _rnn_backward(ctx: Context, grad: np.ndarray) -> list[np.ndarray | None]:
    """da_t = (grad_t + carry) * act'(a_t), act' = 1 - h_t^2 (tanh) or [h_t > 0] (relu);
    carry into step t-1 = da_t W_hh; d hx = the carry out of the first step."""
    out, w_hh = ctx.out, ctx.w_hh
    d_pre = np.empty(out.shape, out.dtype)  # step-major: one gate
    carry = np.zeros_like(ctx.hx)
    for t in _order(out.shape[0], not ctx.reverse):
        d = d_pre[t]
        np.add(grad[t], carry, out=d)
        h_t = out[t]
        if ctx.nonlinearity == "tanh":
            d *= 1 - h_t * h_t
        else:
            d *= h_t > 0
        carry = kernels.matmul(d, w_hh)
    dx, dw_ih, dw_hh, db_ih, db_hh = _weight_gradients(ctx, d_pre, d_pre, out, 2)
    return [dx, carry if ctx.needs_input_grad[1] else None, dw_ih, dw_hh, db_ih, db_hh]


class RNNCellOp(Function):
    """One Elman RNN step, h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu.

    With d a = grad * act'(a) (1 - h'^2 for tanh, [h' > 0] for relu, 0 at 0 as in PyTorch):
    d/dx = d a W_ih, d/dh = d a W_hh, d/dW_ih = d a^T x, d/dW_hh = d a^T h, d/db = sum d a.
    """

    name = "rnn_cell"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, input: np.ndarray, hx: np.ndarray, w_ih: np.ndarray,
                w_hh: np.ndarray, b_ih: np.ndarray | None = None,
                b_hh: np.ndarray | None = None, nonlinearity: str = "tanh") -> np.ndarray:
        _cell_input("rnn_cell", input)
        return _rnn_forward(ctx, "rnn_cell", input[None], hx, w_ih, w_hh, b_ih, b_hh,
                            nonlinearity, False)[0]

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return _cell_gradients(ctx, _rnn_backward(ctx, grad[None]))


class RNNSequenceOp(Function):
    """A whole sequence through one Elman RNN layer in one direction: (T, B, H), every h_t.

    Step by step as ``rnn_cell``; backward runs the steps in reverse, each step's d a being
    (grad_t + carry) * act'(a_t) with carry = d a_{t+1} W_hh (the next step, in the
    direction's order), and the weight gradients one product over all steps.
    """

    name = "rnn_sequence"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, input: np.ndarray, hx: np.ndarray, w_ih: np.ndarray,
                w_hh: np.ndarray, b_ih: np.ndarray | None = None,
                b_hh: np.ndarray | None = None, nonlinearity: str = "tanh",
                reverse: bool = False) -> np.ndarray:
        return _rnn_forward(ctx, "rnn_sequence", input, hx, w_ih, w_hh, b_ih, b_hh,
                            nonlinearity, validate.boolean("rnn_sequence", "reverse", reverse))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return _per_input(ctx, _rnn_backward(ctx, grad))


# ----------------------------------------------------------------------------- GRU
def _gru_forward(ctx: Context, op: str, x: np.ndarray, hx: np.ndarray, w_ih: np.ndarray,
                 w_hh: np.ndarray, b_ih: np.ndarray | None, b_hh: np.ndarray | None,
                 reverse: bool) -> np.ndarray:
    """PyTorch's GRU over every step: (T, B, H). Per step, with gi = x W_ih^T + b_ih and
    gh = h W_hh^T + b_hh in (r, z, n) gates:
    r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z), n = tanh(gi_n + r * gh_n),
    h' = (1 - z) * n + z * h."""
    steps, batch, hidden = _check(op, x, (hx,), w_ih, w_hh, b_ih, b_hh, 3)
    # acts holds each step's input projections, then in place its r, z, n.
    # r and z add both biases outright; b_hn sits inside r * (...), so it waits for the loop.
    b_hn = None if b_hh is None else b_hh[2 * hidden:]
    if b_hh is not None:
        outright = np.concatenate([b_hh[:2 * hidden], np.zeros(hidden, b_hh.dtype)])
        b_ih = outright if b_ih is None else b_ih + outright
    acts = _input_projection(x, w_ih, b_ih, 3)
    gh_n = np.empty((steps, batch, hidden), x.dtype)  # kept: dr = dn_pre * gh_n
    out = np.empty((steps, batch, hidden), x.dtype)
    b_hn = np.zeros(hidden, x.dtype) if b_hn is None else b_hn
    w_hh_t, h = w_hh.T, hx
    for t in _order(steps, reverse):
        # the step's elementwise work: kernels.gru_step (in kernels/recurrent.py)
        kernels.gru_step(acts[:, t], kernels.matmul(h, w_hh_t), b_hn, gh_n[t], h, out[t])
        h = out[t]
    _keep(ctx, x, w_ih, w_hh, reverse)
    ctx.hx, ctx.out, ctx.acts, ctx.gh_n = hx, out, acts, gh_n
    return out


def _gru_backward(ctx: Context, grad: np.ndarray) -> list[np.ndarray | None]:
    """With dh = grad_t + carry: dn = dh (1 - z), dz = dh (h - n), and dh z flows straight
    to h; dn_pre = dn (1 - n^2); dr = dn_pre gh_n; dr_pre = dr r (1 - r);
    dz_pre = dz z (1 - z). d gi = (dr_pre, dz_pre, dn_pre), d gh = (dr_pre, dz_pre,
    dn_pre r), and carry = dh z + d gh W_hh."""
    out, acts, gh_n, w_hh = ctx.out, ctx.acts, ctx.gh_n, ctx.w_hh
    steps, batch, hidden = out.shape
    d_gi = np.empty((steps, batch, 3 * hidden), out.dtype)  # step-major, for the products
    d_gh = np.empty_like(d_gi)
    carry = np.zeros_like(ctx.hx)  # d gh_next W_hh
    carry_z = np.zeros_like(ctx.hx)  # dh_next z_next, the straight path
    for t in _order(steps, not ctx.reverse):
        kernels.gru_step_grad(grad[t], carry, carry_z, acts[:, t],
                              _start(out, ctx.hx, t, ctx.reverse), gh_n[t], d_gi[t], d_gh[t])
        carry = kernels.matmul(d_gh[t], w_hh)
    carry += carry_z
    dx, dw_ih, dw_hh, db_ih, db_hh = _weight_gradients(ctx, d_gi, d_gh, out, 2)
    return [dx, carry if ctx.needs_input_grad[1] else None, dw_ih, dw_hh, db_ih, db_hh]


class GRUCellOp(Function):
    """One GRU step, PyTorch's equations and gate order (r, z, n):
    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr), z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)), h' = (1 - z) * n + z * h.

    With dn_pre = grad (1 - z)(1 - n^2), dz_pre = grad (h - n) z (1 - z),
    dr_pre = dn_pre (W_hn h + b_hn) r (1 - r): d gi = (dr_pre, dz_pre, dn_pre),
    d gh = (dr_pre, dz_pre, dn_pre r); d/dx = d gi W_ih, d/dh = grad z + d gh W_hh,
    d/dW_ih = d gi^T x, d/dW_hh = d gh^T h, d/db_ih = sum d gi, d/db_hh = sum d gh.
    """

    name = "gru_cell"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, input: np.ndarray, hx: np.ndarray, w_ih: np.ndarray,
                w_hh: np.ndarray, b_ih: np.ndarray | None = None,
                b_hh: np.ndarray | None = None) -> np.ndarray:
        _cell_input("gru_cell", input)
        return _gru_forward(ctx, "gru_cell", input[None], hx, w_ih, w_hh, b_ih, b_hh,
                            False)[0]

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return _cell_gradients(ctx, _gru_backward(ctx, grad[None]))


class GRUSequenceOp(Function):
    """A whole sequence through one GRU layer in one direction: (T, B, H), every h_t.

    Each step as ``gru_cell``; backward runs the steps in reverse, the gradient reaching
    h_t being grad_t plus the carry from the next step (d/dh of ``gru_cell`` there).
    """

    name = "gru_sequence"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, input: np.ndarray, hx: np.ndarray, w_ih: np.ndarray,
                w_hh: np.ndarray, b_ih: np.ndarray | None = None,
                b_hh: np.ndarray | None = None, reverse: bool = False) -> np.ndarray:
        return _gru_forward(ctx, "gru_sequence", input, hx, w_ih, w_hh, b_ih, b_hh,
                            validate.boolean("gru_sequence", "reverse", reverse))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return _per_input(ctx, _gru_backward(ctx, grad))


# ----------------------------------------------------------------------------- LSTM
def _lstm_forward(ctx: Context, op: str, x: np.ndarray, hx: np.ndarray, cx: np.ndarray,
                  w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None,
                  b_hh: np.ndarray | None, reverse: bool) -> np.ndarray:
    """PyTorch's LSTM over every step: (2, T, B, H), the h_t then the c_t. Per step, with
    a = x W_ih^T + b_ih + h W_hh^T + b_hh in (i, f, g, o) gates: i, f, o the sigmoids of
    theirs, g = tanh(a_g); c' = f c + i g, h' = o tanh(c')."""
    steps, batch, hidden = _check(op, x, (hx, cx), w_ih, w_hh, b_ih, b_hh, 4)
    if b_hh is not None:  # both biases add outright: one pass over the projections
        b_ih = b_hh if b_ih is None else b_ih + b_hh
    acts = _input_projection(x, w_ih, b_ih, 4)  # the pre-activations, then the gates
    out = np.empty((2, steps, batch, hidden), x.dtype)
    tanh_c = np.empty((steps, batch, hidden), x.dtype)
    w_hh_t, h, c = w_hh.T, hx, cx
    for t in _order(steps, reverse):
        # the step's elementwise work: kernels.lstm_step (in kernels/recurrent.py)
        kernels.lstm_step(acts[:, t], kernels.matmul(h, w_hh_t), c, out[1, t], tanh_c[t],
                          out[0, t])
        h, c = out[0, t], out[1, t]
    _keep(ctx, x, w_ih, w_hh, reverse)
    ctx.hx, ctx.cx, ctx.out, ctx.acts, ctx.tanh_c = hx, cx, out, acts, tanh_c
    return out


def _lstm_backward(ctx: Context, grad: np.ndarray) -> list[np.ndarray | None]:
    """With dh = grad_h + carry_h, dc = grad_c + carry_c + dh o (1 - tanh(c)^2):
    do = dh tanh(c), di = dc g, df = dc c_prev, dg = dc i, carry_c = dc f; through the
    gates da = (di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)); carry_h = da W_hh."""
    out, acts, tanh_c, w_hh = ctx.out, ctx.acts, ctx.tanh_c, ctx.w_hh
    _, steps, batch, hidden = out.shape
    d_pre = np.empty((steps, batch, 4 * hidden), out.dtype)  # step-major, for the products
    carry_h, carry_c = np.zeros_like(ctx.hx), np.zeros_like(ctx.cx)
    for t in _order(steps, not ctx.reverse):
        kernels.lstm_step_grad(grad[0, t], grad[1, t], carry_h, carry_c, acts[:, t],
                               tanh_c[t], _start(out[1], ctx.cx, t, ctx.reverse), d_pre[t])
        carry_h = kernels.matmul(d_pre[t], w_hh)
    needs = ctx.needs_input_grad
    dx, dw_ih, dw_hh, db_ih, db_hh = _weight_gradients(ctx, d_pre, d_pre, out[0], 3)
    return [dx, carry_h if needs[1] else None, carry_c if needs[2] else None,
            dw_ih, dw_hh, db_ih, db_hh]


class LSTMCellOp(Function):
    """One LSTM step, PyTorch's equations and gate order (i, f, g, o): with
    a = W_ih x + b_ih + W_hh h + b_hh, i = sigmoid(a_i), f = sigmoid(a_f), g = tanh(a_g),
    o = sigmoid(a_o); c' = f * c + i * g, h' = o * tanh(c'). Returns (2, B, H): h', c'.

    With dc = grad_c' + grad_h' o (1 - tanh(c')^2): d a = (dc g i(1-i), dc c f(1-f),
    dc i (1-g^2), grad_h' tanh(c') o(1-o)); d/dc = dc f, d/dh = d a W_hh, d/dx = d a W_ih,
    d/dW_ih = d a^T x, d/dW_hh = d a^T h, d/db_ih = d/db_hh = sum d a.
    """

    name = "lstm_cell"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, input: np.ndarray, hx: np.ndarray, cx: np.ndarray,
                w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None = None,
                b_hh: np.ndarray | None = None) -> np.ndarray:
        _cell_input("lstm_cell", input)
        return _lstm_forward(ctx, "lstm_cell", input[None], hx, cx, w_ih, w_hh, b_ih, b_hh,
                             False)[:, 0]

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return _cell_gradients(ctx, _lstm_backward(ctx, grad[:, None]))


class LSTMSequenceOp(Function):
    """A whole sequence through one LSTM layer in one direction: (2, T, B, H), the h_t and
    the c_t of every step (h_n and c_n are the last step's, in the direction's order).

    Each step as ``lstm_cell``; backward runs the steps in reverse, the gradients reaching
    h_t and c_t being their own plus the carries from the next step.
    """

    name = "lstm_sequence"
    same_dtype = True

    @staticmethod
    def forward(ctx: Context, input: np.ndarray, hx: np.ndarray, cx: np.ndarray,
                w_ih: np.ndarray, w_hh: np.ndarray, b_ih: np.ndarray | None = None,
                b_hh: np.ndarray | None = None, reverse: bool = False) -> np.ndarray:
        return _lstm_forward(ctx, "lstm_sequence", input, hx, cx, w_ih, w_hh, b_ih, b_hh,
                             validate.boolean("lstm_sequence", "reverse", reverse))

    @staticmethod
    def backward(ctx: Context, grad: np.ndarray) -> tuple:
        return _per_input(ctx, _lstm_backward(ctx, grad))


def _cell_input(op: str, x: np.ndarray) -> None:
    if x.ndim != 2:
        raise ValueError(f"{op}: input must be 2-D (B, input_size), got shape {x.shape}")


def _per_input(ctx: Context, grads: list[np.ndarray | None]) -> tuple:
    """One gradient per input passed (the optional biases may have been left out)."""
    return tuple(grads[:len(ctx.needs_input_grad)])


def _cell_gradients(ctx: Context, grads: list[np.ndarray | None]) -> tuple:
    """A one-step sequence's gradients as the cell's: the input's without its T axis."""
    dx = grads[0]
    return _per_input(ctx, [None if dx is None else dx[0], *grads[1:]])


# ----------------------------------------------------------------------------- public forms
def rnn_tanh_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
                  b_hh: Any = None) -> Tensor:
    """One Elman RNN step with tanh: tanh(input W_ih^T + b_ih + hx W_hh^T + b_hh)."""
    return RNNCellOp.apply(input, hx, w_ih, w_hh, b_ih, b_hh, nonlinearity="tanh")


def rnn_relu_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
                  b_hh: Any = None) -> Tensor:
    """One Elman RNN step with relu: relu(input W_ih^T + b_ih + hx W_hh^T + b_hh)."""
    return RNNCellOp.apply(input, hx, w_ih, w_hh, b_ih, b_hh, nonlinearity="relu")


def gru_cell(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
             b_hh: Any = None) -> Tensor:
    """One GRU step (gates r, z, n, as PyTorch's ``torch.gru_cell``): the new hidden state."""
    return GRUCellOp.apply(input, hx, w_ih, w_hh, b_ih, b_hh)


def _pair(op: str, hx: Any) -> tuple[Any, Any]:
    if not isinstance(hx, (tuple, list)) or len(hx) != 2:
        raise TypeError(f"{op}: hx must be a pair (h, c) of hidden and cell states, got "
                        f"{type(hx).__name__}")
    return hx[0], hx[1]


def lstm_cell(input: Any, hx: Sequence[Any], w_ih: Any, w_hh: Any, b_ih: Any = None,
              b_hh: Any = None) -> tuple[Tensor, Tensor]:
    """One LSTM step (gates i, f, g, o, as ``torch.lstm_cell``): the new (h, c)."""
    h, c = _pair("lstm_cell", hx)
    both = LSTMCellOp.apply(input, h, c, w_ih, w_hh, b_ih, b_hh)
    return both[0], both[1]


def rnn_sequence(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
                 b_hh: Any = None, nonlinearity: str = "tanh", reverse: bool = False) -> Tensor:
    """A (T, B, input) sequence through one Elman RNN layer: every step's h, (T, B, H);
    ``reverse`` runs from the last step to the first."""
    return RNNSequenceOp.apply(input, hx, w_ih, w_hh, b_ih, b_hh, nonlinearity=nonlinearity,
                               reverse=reverse)


def gru_sequence(input: Any, hx: Any, w_ih: Any, w_hh: Any, b_ih: Any = None,
                 b_hh: Any = None, reverse: bool = False) -> Tensor:
    """A (T, B, input) sequence through one GRU layer: every step's h, (T, B, H);
    ``reverse`` runs from the last step to the first."""
    return GRUSequenceOp.apply(input, hx, w_ih, w_hh, b_ih, b_hh, reverse=reverse)


def lstm_sequence(input: Any, hx: Sequence[Any], w_ih: Any, w_hh: Any, b_ih: Any = None,
                  b_hh: Any = None, reverse: bool = False) -> tuple[Tensor, Tensor]:
    """A (T, B, input) sequence through one LSTM layer from hx = (h, c): every step's h and
    every step's c, each (T, B, H); ``reverse`` runs from the last step to the first."""
    h, c = _pair("lstm_sequence", hx)
    both = LSTMSequenceOp.apply(input, h, c, w_ih, w_hh, b_ih, b_hh, reverse=reverse)
    return both[0], both[1]
