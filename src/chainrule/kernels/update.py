"""Optimizer updates in cache-sized blocks, the blocks split over threads.

An update is a chain of elementwise passes (Adam's is nine). Over a whole large parameter
each pass reads and writes main memory; over a block that fits in cache the arrays and the
temporaries stay there between passes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from chainrule.kernels import threads

# Elements per block of a blocked update (see docs/kernels.md for the sizes compared).
UPDATE_BLOCK = 1 << 18


def blocked_update(update: Callable[..., None], *arrays: np.ndarray) -> None:
    """Call ``update(*views)`` so that together the views cover ``arrays`` (of one shape).

    Large C-contiguous arrays go in flat cache-sized blocks, the blocks split over threads;
    anything else in one call with the arrays themselves. ``update`` must work elementwise
    and in place, so that blocks give the same bits as one call.
    """
    size = arrays[0].size
    if size < threads.MIN_ELEMENTS or not all(a.flags.c_contiguous for a in arrays):
        update(*arrays)
        return
    flat = [a.reshape(-1) for a in arrays]  # views: the arrays are contiguous

    def run(lo: int, hi: int) -> None:
        for start in range(lo, hi, UPDATE_BLOCK):
            stop = min(start + UPDATE_BLOCK, hi)
            update(*[f[start:stop] for f in flat])

    threads.over_batch(size, run, size)


def blocked_update_reference(update: Callable[..., None], *arrays: np.ndarray) -> None:
    """Call ``update(*arrays)`` once, on the whole arrays."""
    update(*arrays)
