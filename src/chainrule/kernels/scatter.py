"""Adding rows into a table at given indices: an embedding's backward.

An embedding looks rows up by index; its gradient adds each position's gradient row back
into the row it came from, several times where an index repeats. NumPy's ``np.add.at``
does this unbuffered, one element at a time through a generic ufunc loop, many times
slower than a loop that adds a whole row at once (docs/kernels.md has the figures); the
compiled loop below adds the rows in the same order, so it gives the reference's bits.
"""

from __future__ import annotations

import numpy as np

from chainrule.kernels import jit


@jit.loops
def _scatter_add_loops(target, index, rows):
    """target[index[i]] += rows[i] for each i in turn (index already in range)."""
    n, width = rows.shape
    size = target.shape[0]
    for i in range(n):
        r = index[i]
        if r < 0:
            r += size
        for j in range(width):
            target[r, j] += rows[i, j]


def scatter_add_rows_reference(target: np.ndarray, index: np.ndarray, rows: np.ndarray
                               ) -> None:
    """target[index[i]] += rows[i] for every i, repeats adding up (``np.add.at``), in place:
    target (R, W), index (N,) integers in [-R, R), rows (N, W)."""
    np.add.at(target, index, rows)


@jit.kernel(_scatter_add_loops, scatter_add_rows_reference)
def scatter_add_rows(target: np.ndarray, index: np.ndarray, rows: np.ndarray) -> None:
    """scatter_add_rows_reference in one compiled loop over the rows: the same bits."""
    size = target.shape[0] if target.ndim else 0
    if (target.ndim != 2 or rows.ndim != 2 or index.ndim != 1 or index.dtype.kind not in "iu"
            or rows.shape != (index.shape[0], target.shape[1]) or not target.flags.writeable
            or target.dtype != rows.dtype or not index.size):
        return scatter_add_rows_reference(target, index, rows)
    if index.min() < -size or index.max() >= size:  # the reference's IndexError
        return scatter_add_rows_reference(target, index, rows)
    _scatter_add_loops(target, index, rows)
    return None
