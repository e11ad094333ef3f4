"""One time step of a GRU or an LSTM, the elementwise part, compiled beside its NumPy passes.

A recurrent step is a small product (h W_hh^T, or in backward d gh W_hh) and then a dozen
elementwise passes over (batch, hidden) arrays. At a GRU's (100, 128) each NumPy pass costs
a few microseconds, mostly call overhead, and a step takes a dozen of them, forty steps a
sequence: the loops here do a step's arithmetic in one to three passes. tanh stays NumPy's
(SIMD, see activation.py); the sigmoids are 0.5 (1 + tanh(a / 2)), as ops/recurrent.py's.

Layouts, as ops/recurrent.py keeps them: a step's gates ``a`` is a (gates, B, H) view of the
gate-major pre-activations (each gate contiguous); ``gh`` and the gradients ``d_*`` are a
step's (B, gates * H) rows of the step-major arrays that go into products. The loops see
each gate and each (B, H) array as a flat contiguous run and the rows as (B, gates * H): an
element's neighbours are its neighbours in memory, so the compiler can use SIMD over them
(strided views it cannot, which measured three times slower).
"""

from __future__ import annotations

import numpy as np

from chainrule.kernels import jit


def _halves(a: np.ndarray, gates: slice) -> None:
    """a[gates] <- sigmoid(a[gates]) in place, in the tanh form that never overflows."""
    a[gates] *= 0.5
    np.tanh(a[gates], out=a[gates])
    a[gates] *= 0.5
    a[gates] += 0.5


def _split(step: np.ndarray, gates: int) -> np.ndarray:
    batch, width = step.shape
    return step.reshape(batch, gates, width // gates).transpose(1, 0, 2)


def _flat(x: np.ndarray) -> np.ndarray:
    """x as a 1-D C-contiguous array: a view where x is contiguous, else a copy."""
    return np.ascontiguousarray(x).reshape(-1)


def _writable(*arrays: np.ndarray) -> bool:
    """Whether the loops can write these in place: C-contiguous (the ops' own arrays are)."""
    return all(a.flags.c_contiguous for a in arrays)


# ----------------------------------------------------------------------------- GRU
@jit.loops
def _gru_pre_loops(ar, az, gh, b_hn, hn):
    """a_r, a_z <- (a + gh) / 2 (the sigmoids' tanh arguments); hn <- gh_n + b_hn."""
    batch, width = gh.shape
    hidden = width // 3
    half = ar.dtype.type(0.5)
    for b in range(batch):
        for j in range(hidden):
            k = b * hidden + j
            ar[k] = (ar[k] + gh[b, j]) * half
            az[k] = (az[k] + gh[b, hidden + j]) * half
            hn[k] = gh[b, 2 * hidden + j] + b_hn[j]


@jit.loops
def _gru_mid_loops(ar, az, an, hn):
    """r, z <- (1 + tanh) / 2 in place; a_n <- a_n + r hn (n's tanh argument)."""
    half = ar.dtype.type(0.5)
    for k in range(ar.size):
        r = ar[k] * half + half
        ar[k] = r
        az[k] = az[k] * half + half
        an[k] += r * hn[k]


@jit.loops
def _gru_out_loops(z, n, h, out):
    """out = (1 - z) n + z h, as n + z (h - n)."""
    for k in range(out.size):
        out[k] = (h[k] - n[k]) * z[k] + n[k]


def gru_step_reference(a: np.ndarray, gh: np.ndarray, b_hn: np.ndarray, hn: np.ndarray,
                       h: np.ndarray, out: np.ndarray) -> None:
    """One GRU step in place: ``a`` (3, B, H) holds gi + the outright biases and becomes
    (r, z, n); ``gh`` (B, 3H) is h W_hh^T; hn <- gh_n + b_hn; out <- h'. With
    r = sigmoid(a_r + gh_r), z = sigmoid(a_z + gh_z), n = tanh(a_n + r hn),
    h' = (1 - z) n + z h."""
    g = _split(gh, 3)
    a[:2] += g[:2]
    _halves(a, slice(0, 2))
    np.add(g[2], b_hn, out=hn)
    a[2] += a[0] * hn
    np.tanh(a[2], out=a[2])
    np.subtract(h, a[2], out=out)
    out *= a[1]
    out += a[2]


@jit.kernel(_gru_pre_loops, gru_step_reference)
def gru_step(a: np.ndarray, gh: np.ndarray, b_hn: np.ndarray, hn: np.ndarray,
             h: np.ndarray, out: np.ndarray) -> None:
    """One GRU step in place (gru_step_reference says what), in three compiled passes."""
    if not _writable(a[0], a[1], a[2], hn, out):
        return gru_step_reference(a, gh, b_hn, hn, h, out)
    r, z, n = (a[k].reshape(-1) for k in range(3))
    flat_hn = hn.reshape(-1)
    _gru_pre_loops(r, z, np.ascontiguousarray(gh), _flat(b_hn), flat_hn)
    np.tanh(a[:2], out=a[:2])
    _gru_mid_loops(r, z, n, flat_hn)
    np.tanh(n, out=n)
    _gru_out_loops(z, n, _flat(h), out.reshape(-1))
    return None


@jit.loops
def _gru_grad_loops(grad, carry, carry_z, r, z, n, h_prev, hn, d_gi,
                    d_gh):
    """The GRU step's backward, one pass (gru_step_grad_reference gives the maths)."""
    batch, width = d_gi.shape
    hidden = width // 3
    one = r.dtype.type(1)
    for b in range(batch):
        for j in range(hidden):
            k = b * hidden + j
            rk, zk, nk = r[k], z[k], n[k]
            dh = grad[k] + carry[k] + carry_z[k]
            dn = dh * (one - zk) * (one - nk * nk)
            dz = dh * (h_prev[k] - nk) * (zk * (one - zk))
            dr = dn * hn[k] * (rk * (one - rk))
            d_gi[b, j] = dr
            d_gi[b, hidden + j] = dz
            d_gi[b, 2 * hidden + j] = dn
            d_gh[b, j] = dr
            d_gh[b, hidden + j] = dz
            d_gh[b, 2 * hidden + j] = dn * rk
            carry_z[k] = dh * zk


def gru_step_grad_reference(grad: np.ndarray, carry: np.ndarray, carry_z: np.ndarray,
                            a: np.ndarray, h_prev: np.ndarray, hn: np.ndarray,
                            d_gi: np.ndarray, d_gh: np.ndarray) -> None:
    """A GRU step's backward in place. With dh = grad + carry + carry_z (the product
    d gh_next W_hh and the straight path dh_next z_next), a = (r, z, n), hn = gh_n + b_hn:
    dn = dh (1 - z)(1 - n^2), dz = dh (h_prev - n) z (1 - z), dr = dn hn r (1 - r);
    d_gi <- (dr, dz, dn), d_gh <- (dr, dz, dn r), carry_z <- dh z."""
    r, z, n = a[0], a[1], a[2]
    dh = grad + carry + carry_z
    dn = dh * (1 - z) * (1 - n * n)
    dz = dh * (h_prev - n) * (z * (1 - z))
    dr = dn * hn * (r * (1 - r))
    gi, gh = _split(d_gi, 3), _split(d_gh, 3)
    gi[0], gi[1], gi[2] = dr, dz, dn
    gh[0], gh[1] = dr, dz
    np.multiply(dn, r, out=gh[2])
    np.multiply(dh, z, out=carry_z)


@jit.kernel(_gru_grad_loops, gru_step_grad_reference)
def gru_step_grad(grad: np.ndarray, carry: np.ndarray, carry_z: np.ndarray, a: np.ndarray,
                  h_prev: np.ndarray, hn: np.ndarray, d_gi: np.ndarray,
                  d_gh: np.ndarray) -> None:
    """A GRU step's backward in place (gru_step_grad_reference says what), one pass."""
    if not _writable(carry_z, d_gi, d_gh):
        return gru_step_grad_reference(grad, carry, carry_z, a, h_prev, hn, d_gi, d_gh)
    r, z, n = (_flat(a[k]) for k in range(3))
    _gru_grad_loops(_flat(grad), _flat(carry), carry_z.reshape(-1), r, z, n, _flat(h_prev),
                    _flat(hn), d_gi, d_gh)
    return None


# ----------------------------------------------------------------------------- LSTM
@jit.loops
def _lstm_pre_loops(ai, af, ag, ao, gh):
    """a <- a + gh, halved on the sigmoid gates i, f, o (their tanh arguments)."""
    batch, width = gh.shape
    hidden = width // 4
    half = ai.dtype.type(0.5)
    for b in range(batch):
        for j in range(hidden):
            k = b * hidden + j
            ai[k] = (ai[k] + gh[b, j]) * half
            af[k] = (af[k] + gh[b, hidden + j]) * half
            ag[k] = ag[k] + gh[b, 2 * hidden + j]
            ao[k] = (ao[k] + gh[b, 3 * hidden + j]) * half


@jit.loops
def _lstm_cell_loops(ai, af, ag, ao, c, c_out):
    """i, f, o <- (1 + tanh) / 2 in place (g is tanh already); c' = f c + i g."""
    half = ai.dtype.type(0.5)
    for k in range(c_out.size):
        i = ai[k] * half + half
        f = af[k] * half + half
        ai[k], af[k] = i, f
        ao[k] = ao[k] * half + half
        c_out[k] = f * c[k] + i * ag[k]


def lstm_step_reference(a: np.ndarray, gh: np.ndarray, c: np.ndarray, c_out: np.ndarray,
                        tanh_c: np.ndarray, h_out: np.ndarray) -> None:
    """One LSTM step in place: ``a`` (4, B, H) holds gi + both biases and becomes
    (i, f, g, o); ``gh`` (B, 4H) is h W_hh^T. i, f, o = sigmoid, g = tanh of a + gh;
    c_out <- f c + i g, tanh_c <- tanh(c_out), h_out <- o tanh_c."""
    a += _split(gh, 4)
    _halves(a, slice(0, 2))
    np.tanh(a[2], out=a[2])
    _halves(a, slice(3, 4))
    np.multiply(a[1], c, out=c_out)
    c_out += a[0] * a[2]
    np.tanh(c_out, out=tanh_c)
    np.multiply(a[3], tanh_c, out=h_out)


@jit.kernel(_lstm_pre_loops, lstm_step_reference)
def lstm_step(a: np.ndarray, gh: np.ndarray, c: np.ndarray, c_out: np.ndarray,
              tanh_c: np.ndarray, h_out: np.ndarray) -> None:
    """One LSTM step in place (lstm_step_reference says what), in two compiled passes."""
    if not _writable(a[0], a[1], a[2], a[3], c_out):
        return lstm_step_reference(a, gh, c, c_out, tanh_c, h_out)
    gates = [a[k].reshape(-1) for k in range(4)]
    _lstm_pre_loops(*gates, np.ascontiguousarray(gh))
    np.tanh(a, out=a)
    _lstm_cell_loops(*gates, _flat(c), c_out.reshape(-1))
    np.tanh(c_out, out=tanh_c)
    np.multiply(a[3], tanh_c, out=h_out)
    return None


@jit.loops
def _lstm_grad_loops(grad_h, grad_c, carry_h, carry_c, ai, af, ag, ao,
                     tanh_c, c_prev, d):
    """The LSTM step's backward, one pass (lstm_step_grad_reference gives the maths)."""
    batch, width = d.shape
    hidden = width // 4
    one = ai.dtype.type(1)
    for b in range(batch):
        for j in range(hidden):
            k = b * hidden + j
            i, f, g, o, tc = ai[k], af[k], ag[k], ao[k], tanh_c[k]
            dh = grad_h[k] + carry_h[k]
            dc = grad_c[k] + carry_c[k] + dh * o * (one - tc * tc)
            d[b, j] = dc * g * (i * (one - i))
            d[b, hidden + j] = dc * c_prev[k] * (f * (one - f))
            d[b, 2 * hidden + j] = dc * i * (one - g * g)
            d[b, 3 * hidden + j] = dh * tc * (o * (one - o))
            carry_c[k] = dc * f


def lstm_step_grad_reference(grad_h: np.ndarray, grad_c: np.ndarray, carry_h: np.ndarray,
                             carry_c: np.ndarray, a: np.ndarray, tanh_c: np.ndarray,
                             c_prev: np.ndarray, d: np.ndarray) -> None:
    """An LSTM step's backward in place. dh = grad_h + carry_h,
    dc = grad_c + carry_c + dh o (1 - tanh_c^2); d <- (dc g i(1-i), dc c_prev f(1-f),
    dc i (1-g^2), dh tanh_c o(1-o)), the pre-activations' gradients; carry_c <- dc f."""
    i, f, g, o = a[0], a[1], a[2], a[3]
    dh = grad_h + carry_h
    dc = grad_c + carry_c + dh * o * (1 - tanh_c * tanh_c)
    out = _split(d, 4)
    out[0] = dc * g * (i * (1 - i))
    out[1] = dc * c_prev * (f * (1 - f))
    out[2] = dc * i * (1 - g * g)
    out[3] = dh * tanh_c * (o * (1 - o))
    np.multiply(dc, f, out=carry_c)


@jit.kernel(_lstm_grad_loops, lstm_step_grad_reference)
def lstm_step_grad(grad_h: np.ndarray, grad_c: np.ndarray, carry_h: np.ndarray,
                   carry_c: np.ndarray, a: np.ndarray, tanh_c: np.ndarray, c_prev: np.ndarray,
                   d: np.ndarray) -> None:
    """An LSTM step's backward in place (lstm_step_grad_reference says what), one pass."""
    if not _writable(carry_c, d):
        return lstm_step_grad_reference(grad_h, grad_c, carry_h, carry_c, a, tanh_c, c_prev,
                                        d)
    gates = [_flat(a[k]) for k in range(4)]
    _lstm_grad_loops(_flat(grad_h), _flat(grad_c), _flat(carry_h), carry_c.reshape(-1),
                     *gates, _flat(tanh_c), _flat(c_prev), d)
    return None
