"""How chainrule uses the machine's cores, caches and memory allocator.

- ``over_batch``/``over_blocks``/``blocked_sum``: matrix products already use every core
  (BLAS is multithreaded), but NumPy's own loops — copies, strided adds, comparisons — run on
  one. They release the GIL, so the same loop over two halves of a batch on two threads runs
  nearly twice as fast on a 2-core machine, and going a cache-sized block at a time keeps the
  temporaries in cache. The conv, pooling and BatchNorm ops use them.
- ``matmul``: small matrix products on one BLAS thread, where a second costs more than it
  brings.
- ``keep_freed_memory``: big buffers stay in the heap between training steps.

The thread count is ``CHAINRULE_NUM_THREADS`` if set, else the number of usable cores; 1
turns the splitting off.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import numpy as np

# Below this many elements a split costs more (thread hand-off, ~20 us) than it saves.
MIN_ELEMENTS = 1 << 16

_pool: ThreadPoolExecutor | None = None
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


_pool_size = 0


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


# Bytes per block of the main array: with its temporaries, a block should fit in a core's L2
# cache (measured on the 2 MiB L2 here: 1 MiB blocks beat 128 KiB ones by 1.5-2.5x).
BLOCK_BYTES = 1 << 20


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
    # Added in slice order, not finishing order: the same inputs give the same bits.
    return np.sum([totals[lo] for lo in sorted(totals)], axis=0)


def keep_freed_memory() -> bool:
    """Ask glibc to keep large freed buffers for reuse instead of unmapping them.

    A training step allocates the same big arrays every time. By default glibc hands each one
    over 32 MiB (or its adaptive threshold) back to the kernel when freed, and the next step
    pays a page fault per 4 KiB page to get it again: about 8% of a small CNN's step here.
    Returns whether the setting took (glibc only); ``CHAINRULE_KEEP_MEMORY=0`` skips it.
    """
    if os.environ.get("CHAINRULE_KEEP_MEMORY", "1") == "0":
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)
                    and libc.mallopt(m_trim_threshold, (1 << 31) - 1))
    except (OSError, AttributeError):  # not glibc (macOS, musl, Windows): nothing to do
        return False


# Matrix products below this many FLOPs run on one BLAS thread: handing a small product to a
# second thread (and waking it) costs more than the thread saves. Measured here on an MLP
# 784-50-10 at batch 64: 68 ms per 10,000 samples with two threads, 42 ms with one
# (interleaved in one process; about 47 ms in the full training loop).
SMALL_MATMUL_FLOPS = 1 << 24

_blas: Any = None  # (get, set) thread-count functions of NumPy's BLAS; False if unavailable


def _blas_threads() -> Any:
    """(get_num_threads, set_num_threads) for NumPy's BLAS, or None when it cannot be driven."""
    global _blas
    if _blas is None:
        _blas = False
        try:
            from threadpoolctl import ThreadpoolController

            found = ThreadpoolController().select(user_api="blas").lib_controllers
            if len(found) == 1:
                lib = found[0]
                _blas = (lambda: lib.num_threads), lib.set_num_threads
                symbol = getattr(lib, "_get_symbol", None)
                if lib.internal_api == "openblas" and symbol is not None:
                    # The C functions themselves: threadpoolctl's wrappers look the symbol
                    # up on every call, a quarter of a small MLP step's overhead.
                    raw_get = symbol("openblas_get_num_threads")
                    raw_set = symbol("openblas_set_num_threads")
                    if raw_get is not None and raw_set is not None:
                        _blas = raw_get, raw_set
        except Exception:  # no threadpoolctl, or a BLAS it cannot drive: leave BLAS alone
            _blas = False
    return _blas or None


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b``, on a single BLAS thread when the product is too small to share out.

    The BLAS thread count is process-wide: while a small product runs, matrix products in
    other Python threads run on one thread too (correct, only slower).
    """
    m = a.shape[-2] if a.ndim > 1 else 1
    n = b.shape[-1] if b.ndim > 1 else 1
    flops = 2 * m * n * a.shape[-1]
    if a.ndim > 2 or b.ndim > 2:
        flops *= math.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    if flops >= SMALL_MATMUL_FLOPS:
        return a @ b
    blas = _blas or _blas_threads()
    if not blas:
        return a @ b
    get_threads, set_threads = blas
    threads = get_threads()
    if threads == 1:
        return a @ b
    set_threads(1)
    try:
        return a @ b
    finally:
        set_threads(threads)
