"""Process-wide settings that make training faster, applied only when asked for.

Importing chainrule changes nothing in the host process, and neither does the Learner. The
``chainrule`` command calls ``tune_process()`` for its own process, and a training script of
your own may too; docs/kernels.md says what each setting costs and buys.

- Freed memory kept (glibc ``mallopt``): a training step allocates the same big arrays every
  time. By default glibc hands each one above its mmap threshold (adaptive, at most 32 MiB)
  back to the kernel when it is freed, and the next step pays a page fault per 4 KiB page to
  get it again. Kept, the memory stays in the heap: the process's resident size no longer
  shrinks after a step. ``CHAINRULE_KEEP_MEMORY=0`` refuses it.
- OpenBLAS's spin (``OPENBLAS_THREAD_TIMEOUT``): after each product OpenBLAS's threads spin
  a long while, holding the cores that chainrule's own threads need next; a short spin gives
  them back, but makes a loop of small matrix products wake the threads each time. OpenBLAS
  reads the variable once, when NumPy loads it, so it cannot be changed from inside a
  running process: it is set in the environment that starts Python, and reported here.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_kept: bool | None = None  # the outcome of keep_freed_memory, once tried


def _is_glibc() -> bool:
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):  # no confstr, or not glibc
        return False


def keep_freed_memory() -> bool:
    """Ask glibc to keep large freed buffers for reuse instead of unmapping them.

    Returns whether the setting is in effect (glibc only; ``CHAINRULE_KEEP_MEMORY=0`` skips
    it). Idempotent: the first call that applies it is the only one that calls mallopt.
    """
    global _kept
    if os.environ.get("CHAINRULE_KEEP_MEMORY", "1") == "0":
        return bool(_kept)
    with _lock:
        if _kept is None:
            _kept = _mallopt_keep()
        return _kept


def _mallopt_keep() -> bool:
    if not _is_glibc():
        return False
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)
                    and libc.mallopt(m_trim_threshold, (1 << 31) - 1))
    except (OSError, AttributeError):  # no libc.so.6 to load, or no mallopt in it
        return False


def blas_spin() -> str | None:
    """``OPENBLAS_THREAD_TIMEOUT`` as the environment holds it (None: OpenBLAS's default)."""
    return os.environ.get("OPENBLAS_THREAD_TIMEOUT") or None


def tune_process() -> dict[str, object]:
    """Apply chainrule's opt-in process settings; return what is in effect afterwards.

    ``{"keep_freed_memory": bool, "openblas_thread_timeout": str | None}``: whether glibc now
    keeps freed buffers (see ``keep_freed_memory``), and the OpenBLAS spin this process was
    started with, which cannot be changed from here (start Python with
    ``OPENBLAS_THREAD_TIMEOUT=4`` for conv training). Safe to call any number of times, from
    any thread, on any platform.
    """
    return {"keep_freed_memory": keep_freed_memory(), "openblas_thread_timeout": blas_spin()}
