"""Matrix products, and the control of BLAS's thread count that small products need.

BLAS shares every product out over its threads. For a small product (an MLP layer at batch
64) handing half to a second thread and waking it costs more than the thread saves, so
``matmul`` runs those on one thread. The thread count is process-wide: while a small product
runs, products in other Python threads run on one thread too (correct, only slower).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from chainrule.kernels import mkl

# Products below this many FLOPs run on one BLAS thread.
SMALL_MATMUL_FLOPS = 1 << 24

ThreadControl = tuple[Callable[[], int], Callable[[int], Any]]

_blas: Any = None  # ThreadControl once looked up; False when BLAS cannot be driven


def blas_threads() -> ThreadControl | None:
    """(get_num_threads, set_num_threads) of NumPy's BLAS, or None when it cannot be driven."""
    global _blas
    if _blas is None:
        _blas = _find_thread_control() or False
    return _blas or None


def _find_thread_control() -> ThreadControl | None:
    """BLAS's thread-count functions through threadpoolctl, if it finds exactly one BLAS."""
    try:
        from threadpoolctl import ThreadpoolController

        found = ThreadpoolController().select(user_api="blas").lib_controllers
    except Exception:  # no threadpoolctl, or a BLAS it cannot inspect: leave BLAS alone
        return None
    if len(found) > 1:  # MKL loaded beside NumPy's BLAS: drive NumPy's
        found = [lib for lib in found if "numpy" in str(getattr(lib, "filepath", ""))]
    if len(found) != 1:
        return None
    lib = found[0]
    return _openblas_c_functions(lib) or ((lambda: lib.num_threads), lib.set_num_threads)


def _openblas_c_functions(lib: Any) -> ThreadControl | None:
    """OpenBLAS's own C get/set functions behind a threadpoolctl controller, or None.

    threadpoolctl's public ``num_threads``/``set_num_threads`` look the C symbol up again on
    every call, which is a large share of a small MLP step's overhead. Its private
    ``_get_symbol`` finds the symbol once, under whichever prefix and suffix this OpenBLAS
    build uses. Being private it may change or vanish: then this returns None and the caller
    falls back to the public API.
    """
    symbol = getattr(lib, "_get_symbol", None)
    if getattr(lib, "internal_api", None) != "openblas" or not callable(symbol):
        return None
    try:
        get_threads = symbol("openblas_get_num_threads")
        set_threads = symbol("openblas_set_num_threads")
    except Exception:  # the private helper changed its signature or behaviour
        return None
    if not callable(get_threads) or not callable(set_threads):
        return None
    return get_threads, set_threads


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` (into ``out`` where given, as np.matmul's): by MKL where it is installed and
    takes these operands (kernels/mkl.py), else by NumPy, on a single BLAS thread when the
    product is too small to share out."""
    if a.dtype.kind == "f":
        done = mkl.matmul(a, b, out)
        if done is not None:
            return done
    m = a.shape[-2] if a.ndim > 1 else 1
    n = b.shape[-1] if b.ndim > 1 else 1
    flops = 2 * m * n * a.shape[-1]
    if a.ndim > 2 or b.ndim > 2:
        flops *= math.prod(np.broadcast_shapes(a.shape[:-2], b.shape[:-2]))
    if flops >= SMALL_MATMUL_FLOPS:
        return np.matmul(a, b, out=out)
    blas = _blas or blas_threads()
    if not blas:
        return np.matmul(a, b, out=out)
    get_threads, set_threads = blas
    threads = get_threads()
    if threads == 1:
        return np.matmul(a, b, out=out)
    set_threads(1)
    try:
        return np.matmul(a, b, out=out)
    finally:
        set_threads(threads)


def matmul_reference(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None
                     ) -> np.ndarray:
    """``a @ b`` (into ``out`` where given) on whatever threads BLAS chooses."""
    return np.matmul(a, b, out=out)
