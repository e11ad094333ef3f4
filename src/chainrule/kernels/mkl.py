"""Matrix products through Intel's MKL, where the ``mkl`` wheel is installed (an extra).

NumPy's wheels multiply with OpenBLAS. On the shapes a small GPT or GRU multiplies (a few
hundred rows by 128 to 512), PyTorch's MKL products were measured 1.2 to 1.45x faster than
OpenBLAS's on the same machine, on one thread and on two (docs/kernels.md has the table). So
where ``pip install "chainrule[mkl]"`` put MKL beside Python, ``kernels.matmul`` hands it
float32 and float64 products: 2-D, a stack times a matrix, or two stacks of one batch shape,
each operand contiguous or a transposed view of a contiguous matrix (BLAS's own layouts; a
stack also by a strided batch call; a stack BLAS cannot read in place is copied first).
Anything else stays with NumPy, as does everything
when MKL is absent or ``CHAINRULE_BLAS=numpy``. The library is looked up on the first
product, not on import.

MKL runs on its GNU OpenMP layer (the ``libgomp`` every gcc-built Linux has; Intel's own
runtime would spin its idle threads for 200 ms after each product and take the cores from
anything running between products), with chainrule's thread count. Sums come out in another
order than OpenBLAS's: the same within rounding, not the same bits.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_GNU_THREADING = 3
_INT_MAX = 2**31 - 1
#: Products under this many FLOPs stay with NumPy: a ctypes call costs a few microseconds.
MIN_FLOPS = 1 << 15

_lock = threading.Lock()
_gemm: dict[Any, Any] | None = None  # dtype -> (gemm, batched gemm), {} where MKL is absent
_lib: Any = None
#: The byte offsets of a stack's matrices, by (leading shape, leading strides).
_OFFSETS: dict[tuple, np.ndarray] = {}


def library_path() -> Path | None:
    """Where libmkl_rt is (the ``mkl`` wheel's, beside this Python), or None."""
    choice = os.environ.get("CHAINRULE_BLAS", "").strip()
    if choice.lower() == "numpy":
        return None
    if choice and choice.lower() not in ("", "auto", "mkl"):
        path = Path(choice)
        return path if path.is_file() else None
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix)):
        for name in ("libmkl_rt.so.2", "libmkl_rt.so", "libmkl_rt.2.dylib", "mkl_rt.2.dll"):
            candidate = Path(prefix) / "lib" / name
            if candidate.is_file():
                return candidate
    return None


def _load() -> dict[Any, Any]:
    global _gemm, _lib
    with _lock:
        if _gemm is not None:
            return _gemm
        found: dict[Any, Any] = {}
        path = library_path()
        if path is not None and ctypes.util.find_library("gomp"):
            try:
                lib = ctypes.CDLL(str(path))
                lib.MKL_Set_Threading_Layer.argtypes = [ctypes.c_int]
                lib.MKL_Set_Threading_Layer(_GNU_THREADING)
                found = _functions(lib)
                _lib = lib
                from chainrule.kernels.threads import num_threads

                lib.MKL_Set_Num_Threads(num_threads())
            except (OSError, AttributeError):  # a broken install: NumPy multiplies
                found = {}
        _gemm = found
        return found


def _functions(lib: Any) -> dict[Any, Any]:
    i, p = ctypes.c_int, ctypes.c_void_p
    found = {}
    for dtype, scalar, prefix in ((np.dtype(np.float32), ctypes.c_float, "s"),
                                  (np.dtype(np.float64), ctypes.c_double, "d")):
        gemm = getattr(lib, f"cblas_{prefix}gemm")
        gemm.restype = None
        gemm.argtypes = [i, i, i, i, i, i, scalar, p, i, p, i, scalar, p, i]
        batched = getattr(lib, f"cblas_{prefix}gemm_batch_strided")
        batched.restype = None
        batched.argtypes = [i, i, i, i, i, i, scalar, p, i, i, p, i, i, scalar, p, i, i, i]
        # the pointer-array form: one group, each argument passed by address
        pointers = getattr(lib, f"cblas_{prefix}gemm_batch")
        pointers.restype = None
        pointers.argtypes = [i, p, p, p, p, p, p, p, p, p, p, p, p, p, i, p]
        found[dtype] = (gemm, batched, pointers)
    lib.MKL_Set_Num_Threads.argtypes = [i]
    return found


def available() -> bool:
    """Whether MKL was found and loaded (looked up once)."""
    return bool(_gemm if _gemm is not None else _load())


def set_threads(count: int) -> None:
    """MKL's thread count for the products that follow (a no-op without MKL)."""
    if available():
        _lib.MKL_Set_Num_Threads(int(count))


def _layout(matrix: np.ndarray) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) of a 2-D array BLAS can read in place, or None.
    Strides are in elements: (ld, 1) is row-major, (1, ld) a transposed row-major matrix."""
    rows, cols = matrix.shape[-2:]
    size = matrix.itemsize
    s0, s1 = matrix.strides[-2] // size, matrix.strides[-1] // size
    if s1 == 1 and s0 >= max(cols, 1):
        return _NO_TRANS, s0
    if s0 == 1 and s1 >= max(rows, 1):
        return _TRANS, s1
    if rows == 1 and s1 == 1:
        return _NO_TRANS, max(cols, 1)
    if cols == 1 and s0 == 1:
        return _TRANS, max(rows, 1)
    return None


def _batch_stride(stack: np.ndarray) -> int | None:
    """The element stride between the matrices of a (..., r, c) stack whose leading axes
    step evenly (they merge into one), or None."""
    lead_shape, lead_strides = stack.shape[:-2], stack.strides[:-2]
    if any(s % stack.itemsize for s in lead_strides):
        return None
    stride = None
    for n, s in zip(reversed(lead_shape), reversed(lead_strides)):
        if s < 0:
            return None
        if n == 1:
            continue
        if stride is None:
            stride, span = s, s * n
        elif s != span:
            return None
        else:
            span = s * n
    return 0 if stride is None else stride // stack.itemsize


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None
           ) -> np.ndarray | None:
    """``a @ b`` by MKL, or None where this product is NumPy's (see the module). ``out``,
    where given, must have the product's shape and dtype; it may be any view whose matrices
    are row-major (a row stride, then 1), such as the heads of a (B, T, H, D) array."""
    gemm = (_gemm if _gemm is not None else _load()).get(a.dtype)
    if gemm is None or b.dtype != a.dtype or a.ndim < 2 or b.ndim < 2:
        return None
    m, k = a.shape[-2:]
    n = b.shape[-1]
    if b.shape[-2] != k or min(m, n, k) == 0 or max(m, n, k) > _INT_MAX // 8:
        return None
    lead = a.shape[:-2] if a.ndim >= b.ndim else b.shape[:-2]
    if out is not None and (out.shape != (*lead, m, n) or out.dtype != a.dtype
                            or not out.flags.writeable or _rows(out) is None
                            or np.may_share_memory(out, a) or np.may_share_memory(out, b)):
        return None
    if a.ndim == 2 and b.ndim == 2:
        if 2 * m * n * k < MIN_FLOPS:
            return None
        return _product(gemm[0], a, b, np.empty((m, n), a.dtype) if out is None else out)
    if b.ndim == 2 and a.flags.c_contiguous and (out is None or out.flags.c_contiguous):
        # a stack times one matrix: one tall product
        if 2 * a.size * n < MIN_FLOPS:
            return None
        tall = np.empty((a.size // k, n), a.dtype) if out is None else out.reshape(-1, n)
        done = _product(gemm[0], a.reshape(-1, k), b, tall)
        return None if done is None else done.reshape(*a.shape[:-1], n)
    if a.shape[:-2] == b.shape[:-2] or a.ndim == 2 or b.ndim == 2:
        count = int(np.prod(lead))
        if 2 * m * n * k * count < MIN_FLOPS or count > _INT_MAX:
            return None
        if out is None:
            out = np.empty((*lead, m, n), a.dtype)
        elif not out.flags.c_contiguous:
            return _pointer_batched(gemm[2], a, b, out, count)
        if _strided_batch(a) and _strided_batch(b):
            return _batched(gemm[1], a, b, out, count)
        return _pointer_batched(gemm[2], a, b, out, count)
    return None


def _rows(out: np.ndarray) -> int | None:
    """The row stride (in elements) of out's row-major matrices, or None."""
    size = out.itemsize
    if out.strides[-1] != size and out.shape[-1] > 1:
        return None
    row = out.strides[-2] // size if out.shape[-2] > 1 else out.shape[-1]
    if out.strides[-2] % size or row < out.shape[-1] or any(s < 0 for s in out.strides):
        return None
    return row


def _product(gemm: Any, a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray | None:
    la, lb = _layout(a), _layout(b)
    if la is None or lb is None:
        return None
    (m, k), n = a.shape, b.shape[1]
    gemm(_ROW_MAJOR, la[0], lb[0], m, n, k, 1.0, a.ctypes.data, la[1], b.ctypes.data, lb[1],
         0.0, out.ctypes.data, _rows(out))
    return out


def _readable(x: np.ndarray) -> tuple[np.ndarray, tuple[int, int], int]:
    """x, its matrices' layout and its batch stride (0 for one matrix); a C-contiguous copy
    of x where BLAS cannot read it in place (heads split out of a (B, T, 3C) projection
    are such a stack: copying it costs less than NumPy's product per matrix)."""
    layout = _layout(x)
    stride = 0 if x.ndim == 2 else _batch_stride(x)
    if layout is None or stride is None:
        x = np.ascontiguousarray(x)
        layout, stride = _layout(x), (0 if x.ndim == 2 else x.shape[-1] * x.shape[-2])
    return x, layout, stride  # type: ignore[return-value]


def _strided_batch(x: np.ndarray) -> bool:
    """Whether the strided batch call reads x as it is, or after one copy (_readable)."""
    return x.ndim == 2 or _layout(x) is None or _batch_stride(x) is not None


def _addresses(x: np.ndarray, count: int) -> np.ndarray:
    """The address of each matrix of stack x (C order over its leading axes), or of the one
    matrix x, ``count`` times."""
    if x.ndim == 2:
        return np.full(count, x.ctypes.data, np.int64)
    key = (x.shape[:-2], x.strides[:-2])
    offsets = _OFFSETS.get(key)
    if offsets is None:
        offsets = np.zeros((), np.int64)
        for size, stride in zip(*key):
            offsets = np.add.outer(offsets, np.arange(size, dtype=np.int64) * stride)
        offsets = offsets.reshape(-1)
        if len(_OFFSETS) < 256:  # a bound, for programs that see many shapes
            _OFFSETS[key] = offsets
    return offsets + x.ctypes.data


def _pointer_batched(pointers: Any, a: np.ndarray, b: np.ndarray, out: np.ndarray,
                     count: int) -> np.ndarray:
    """A stack whose matrices BLAS reads in place but whose leading axes do not step evenly
    (the heads of a (B, T, 3C) projection: (B, H) strides (T 3C, D)), by one pointer-array
    call instead of a copy (an operand whose matrices BLAS cannot read is still copied)."""
    a, b = (x if _layout(x) is not None else np.ascontiguousarray(x) for x in (a, b))
    la, lb = _layout(a), _layout(b)
    m, k = a.shape[-2:]
    n = b.shape[-1]
    ints = np.array([la[0], lb[0], m, n, k, la[1], lb[1], _rows(out), count], np.intc)
    scalars = np.array([1.0, 0.0], a.dtype)
    where = [ints.ctypes.data + ints.itemsize * j for j in range(len(ints))]
    addresses = [_addresses(x, count) for x in (a, b, out)]
    alpha, beta = scalars.ctypes.data, scalars.ctypes.data + scalars.itemsize
    pointers(_ROW_MAJOR, where[0], where[1], where[2], where[3], where[4], alpha,
             addresses[0].ctypes.data, where[5], addresses[1].ctypes.data, where[6], beta,
             addresses[2].ctypes.data, where[7], 1, where[8])
    return out


def _batched(batched: Any, a: np.ndarray, b: np.ndarray, out: np.ndarray,
             count: int) -> np.ndarray | None:
    a, la, sa = _readable(a)
    b, lb, sb = _readable(b)
    m, k = a.shape[-2:]
    n = b.shape[-1]
    batched(_ROW_MAJOR, la[0], lb[0], m, n, k, 1.0, a.ctypes.data, la[1], sa, b.ctypes.data,
            lb[1], sb, 0.0, out.ctypes.data, n, m * n, count)
    return out
