"""Splitting memory-bound array work over threads, a cache-sized block at a time.

Matrix products already use every core (BLAS is multithreaded), but NumPy's own loops —
copies, strided adds, comparisons — run on one. They release the GIL, so the same loop over
two halves of a batch on two threads runs nearly twice as fast on a 2-core machine, and
going a cache-sized block at a time keeps a chain of passes' temporaries in cache.

The thread count is ``CHAINRULE_NUM_THREADS`` if set, else the number of usable cores; 1
turns the splitting off. Each scheduler here has a reference that does the same work in one
call: a kernel run through the reference gives the numbers a single thread would.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

# Below this many elements a split costs more (the thread hand-off) than it saves.
MIN_ELEMENTS = 1 << 16

# Bytes per block of the main array: with its temporaries, a block should fit in a core's L2
# cache (see docs/kernels.md for the block sizes that were compared).
BLOCK_BYTES = 1 << 20

_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()
_worker = threading.local()


def num_threads() -> int:
    """How many threads array work is split over (``CHAINRULE_NUM_THREADS`` or the cores)."""
    setting = os.environ.get("CHAINRULE_NUM_THREADS")
    if setting:
        try:
            return max(int(setting), 1)
        except ValueError:
            raise ValueError(f"CHAINRULE_NUM_THREADS must be a whole number, got {setting!r}"
                             ) from None
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _mark_worker() -> None:
    _worker.active = True


def _executor(threads: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < threads:
            # A bigger pool replaces the reference only: another thread may still be
            # submitting to the old one, so it is not shut down (idle threads cost nothing).
            # The caller runs one slice itself, so threads - 1 workers suffice.
            _pool = ThreadPoolExecutor(threads - 1, thread_name_prefix="chainrule",
                                       initializer=_mark_worker)
            _pool_size = threads
        return _pool


def _forget_pool_after_fork() -> None:
    # A forked child inherits the pool object but not its threads: submitting would hang.
    global _pool, _pool_lock, _pool_size
    _pool, _pool_lock, _pool_size = None, threading.Lock(), 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def over_batch(n: int, work: Callable[[int, int], object], elements: int) -> None:
    """Call ``work(lo, hi)`` on slices covering ``range(n)``: in parallel when worth it.

    ``elements`` is the size of the arrays the work touches, to decide. Slices are disjoint,
    so ``work`` may write its slice of a shared output without locks. Every slice finishes
    before this returns or raises; an error is the one of the lowest slice that failed.
    """
    threads = min(num_threads(), n)
    if threads < 2 or elements < MIN_ELEMENTS or getattr(_worker, "active", False):
        work(0, n)
        return
    bounds = [n * k // threads for k in range(threads + 1)]
    pool = _executor(threads)
    # The calling thread takes the first slice itself: one hand-off fewer.
    futures = [pool.submit(work, lo, hi) for lo, hi in zip(bounds[1:-1], bounds[2:])]
    first_error: BaseException | None = None
    try:
        work(bounds[0], bounds[1])
    except BaseException as error:  # noqa: B036 - re-raised below, after the workers finish
        first_error = error
    wait(futures)
    if first_error is None:
        first_error = next((f.exception() for f in futures if f.exception()), None)
    if first_error is not None:
        raise first_error


def over_batch_reference(n: int, work: Callable[[int, int], object], elements: int) -> None:
    """``work`` on the whole range at once."""
    work(0, n)


def block_rows(row_bytes: int) -> int:
    """How many rows of ``row_bytes`` each make one cache-sized block."""
    return max(BLOCK_BYTES // max(row_bytes, 1), 1)


def over_blocks(n: int, work: Callable[[int, int], object], elements: int,
                row_bytes: int) -> None:
    """Call ``work(lo, hi)`` on cache-sized blocks of rows, the blocks split over threads.

    Several passes over one block (multiply, then add, ...) then read main memory once: the
    temporaries live in cache. That is what makes a chain of NumPy calls run near the
    machine's memory bandwidth instead of a multiple of it.
    """
    step = block_rows(row_bytes)

    def run(lo: int, hi: int) -> None:
        for start in range(lo, hi, step):
            work(start, min(start + step, hi))

    over_batch(n, run, elements)


def over_blocks_reference(n: int, work: Callable[[int, int], object], elements: int,
                          row_bytes: int) -> None:
    """``work`` on the whole range at once."""
    work(0, n)


def blocked_sum(n: int, partial: Callable[[int, int], np.ndarray], elements: int,
                row_bytes: int) -> np.ndarray:
    """Sum of ``partial(lo, hi)`` over cache-sized blocks of ``range(n)`` (in float64)."""
    step = block_rows(row_bytes)
    totals: dict[int, np.ndarray] = {}

    def run(lo: int, hi: int) -> None:
        total = None
        for start in range(lo, hi, step):
            part = np.asarray(partial(start, min(start + step, hi)), np.float64)
            total = part if total is None else total + part
        if total is not None:
            totals[lo] = total

    over_batch(n, run, elements)
    if not totals:  # no rows: the partial of nothing, zeros of its shape
        return np.asarray(partial(0, n), np.float64)
    # Added in slice order, not finishing order: the same inputs give the same bits.
    return np.sum([totals[lo] for lo in sorted(totals)], axis=0)


def blocked_sum_reference(n: int, partial: Callable[[int, int], np.ndarray], elements: int,
                          row_bytes: int) -> np.ndarray:
    """``partial`` of the whole range, in float64."""
    return np.asarray(partial(0, n), np.float64)
