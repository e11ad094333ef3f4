"""A bias added to every row of a layer's output, in place: the last pass of a Linear.

``out += bias`` on a (rows, n) array broadcasts the bias through NumPy's generic strided
loop, about half the speed of a loop that streams each row past the bias it adds
(docs/kernels.md has the figures). Each element gets the same single addition, so the
compiled loop gives the reference's bits. Small outputs stay with NumPy: the loop would
only save microseconds there, not worth its compile on a fresh machine.
"""

from __future__ import annotations

import numpy as np

from chainrule.kernels import jit

#: Outputs with fewer elements than this are added by NumPy.
MIN_SIZE = 1 << 16


@jit.loops
def _add_bias_loops(out, bias):
    """out[r, j] += bias[j] for every row r."""
    rows, n = out.shape
    for r in range(rows):
        for j in range(n):
            out[r, j] += bias[j]


def add_bias_reference(out: np.ndarray, bias: np.ndarray) -> None:
    """out += bias in place, bias (n,) broadcast along out's last axis (n)."""
    np.add(out, bias, out=out)


@jit.kernel(_add_bias_loops, add_bias_reference)
def add_bias(out: np.ndarray, bias: np.ndarray) -> None:
    """add_bias_reference in one compiled pass over a C-contiguous out: the same bits."""
    if (out.size < max(MIN_SIZE, 1) or bias.ndim != 1 or out.ndim == 0 or out.dtype != bias.dtype
            or out.shape[-1] != bias.shape[0] or not out.flags.c_contiguous
            or not out.flags.writeable):
        return add_bias_reference(out, bias)
    _add_bias_loops(out.reshape(-1, out.shape[-1]), bias)
    return None
