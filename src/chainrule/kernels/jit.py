"""Compiled loops: numba where it is installed and chosen, the NumPy reference everywhere else.

A compiled kernel is three pieces side by side in its module: the loops (plain Python over
indices, decorated ``@jit.loops``), the public kernel (a short function that checks the
arrays can take the loops, else calls the reference) and the reference in NumPy. The loops
are compiled by numba on their first call, not on import, so ``import chainrule`` stays
quick and a model that never reaches them never pays for them; the compiled machine code is
cached on disk (``cache=True``), so a later process loads it in milliseconds.

``CHAINRULE_KERNELS=numpy`` in the environment, or ``kernels.use("numpy")``, makes every
compiled kernel call its reference; ``numba`` (the default) compiles them. Without numba, or
where it fails to import or to compile a kernel, chainrule says so once and runs the
references: slower, never wrong. ``NUMBA_DISABLE_JIT=1`` (numba's own switch) runs the loops
as the plain Python they are, to step through with a debugger.

A loop that sums along a row runs one addition after another unless the compiler may
reorder the additions: ``@jit.loops(reassociate=True)`` allows that (LLVM's ``reassoc``
flag alone, nothing else of fast-math), so the sum runs over SIMD lanes and adds them at the
end, as NumPy's own pairwise sums reorder theirs. The result is the same within rounding;
NaN, infinities and signed zeros keep their IEEE meaning.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

#: The values ``CHAINRULE_KERNELS`` and ``use`` take.
BACKENDS = ("numba", "numpy")
#: dtypes the loops are compiled for: anything else goes to the reference.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

F = TypeVar("F", bound=Callable[..., Any])

_lock = threading.RLock()  # _compile imports numba while it holds the lock
_numba: Any = None  # the module, once imported
_failed = False  # numba could not be imported: the references run
_chosen: str | None = None


def _from_environment() -> str:
    value = os.environ.get("CHAINRULE_KERNELS", "").strip().lower()
    if value in ("", *BACKENDS):
        return value or "numba"
    warnings.warn(f"chainrule: CHAINRULE_KERNELS={value!r} is not one of {BACKENDS}; using "
                  "'numba'. Set it to 'numpy' for the reference kernels.", RuntimeWarning,
                  stacklevel=3)
    return "numba"


def use(backend: str) -> None:
    """Run the compiled kernels with ``'numba'`` or their NumPy references (``'numpy'``)."""
    global _chosen
    if backend not in BACKENDS:
        raise ValueError(f"kernels.use: backend must be one of {BACKENDS}, got {backend!r}")
    _chosen = backend


def backend() -> str:
    """``'numba'`` when compiled kernels run, else ``'numpy'`` (chosen, or numba missing)."""
    return "numba" if _compiling() else "numpy"


def _compiling() -> bool:
    global _chosen
    if _chosen is None:
        _chosen = _from_environment()
    return _chosen == "numba" and _import_numba() is not None


def _import_numba() -> Any:
    global _numba, _failed
    if _numba is not None or _failed:
        return _numba
    with _lock:
        if _numba is None and not _failed:
            try:
                import numba
            except Exception as error:  # ImportError, or a broken install's own errors
                _failed = True
                _notice(f"numba could not be imported ({type(error).__name__}: {error})")
            else:
                _numba = numba
    return _numba


def _notice(why: str) -> None:
    warnings.warn(f"chainrule: {why}; the NumPy reference kernels run instead (slower, same "
                  "results). `pip install numba` for the compiled ones, or set "
                  "CHAINRULE_KERNELS=numpy to choose the references and silence this.",
                  RuntimeWarning, stacklevel=4)


class Loops:
    """A function of plain loops, compiled by numba on its first call (see the module)."""

    def __init__(self, function: Callable[..., Any], reassociate: bool = False) -> None:
        self.function = function
        self.reassociate = reassociate
        self.__name__ = function.__name__
        self.__doc__ = function.__doc__
        self._compiled: Any = None
        self._broken = False

    def ready(self, arrays: tuple[Any, ...]) -> bool:
        """Whether these arguments can take the compiled loops: compiling is on, numba
        works and compiled this, and the float arrays among them share float32 or float64."""
        if self._broken or not _compiling():
            return False
        floats = {a.dtype for a in arrays if isinstance(a, np.ndarray) and a.dtype.kind in "fc"}
        return len(floats) == 1 and floats.pop() in DTYPES

    def __call__(self, *args: Any) -> Any:
        compiled = self._compiled
        if compiled is None:
            compiled = self._compile()
        return compiled(*args)

    def _compile(self) -> Any:
        with _lock:
            if self._compiled is None:
                numba = _import_numba()
                # nogil: the over_batch threads can run a kernel on two halves at once;
                # error_model numpy: x / 0 gives inf as in NumPy, not an exception.
                # reassoc (see the module) is the only fast-math flag ever set.
                flags = {"reassoc"} if self.reassociate else False
                self._compiled = numba.njit(cache=True, nogil=True, error_model="numpy",
                                            fastmath=flags)(self.function)
        return self._compiled

    def broken(self, error: BaseException) -> None:
        """Stop using these loops after numba failed on them (the caller runs the reference)."""
        self._broken = True
        _notice(f"numba failed on {self.__name__} ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''})")


def loops(function: Callable[..., Any] | None = None, *, reassociate: bool = False
          ) -> Any:
    """Mark ``function`` (plain loops over arrays) for compiling with numba on first use;
    ``@loops(reassociate=True)`` lets its sums be reordered into SIMD lanes (see the module)."""
    if function is None:
        return lambda inner: Loops(inner, reassociate)
    return Loops(function, reassociate)


def kernel(compiled: Loops, reference: Callable[..., Any]) -> Callable[[F], F]:
    """Make the decorated function a kernel: it runs (with ``compiled`` inside) when the
    arguments can take the loops, and ``reference`` with the same arguments otherwise.

    A numba error while compiling (an unsupported platform, a broken cache) switches the
    loops off with one notice; the reference answers that call and every later one. The
    loops fail before they write anything, so a kernel that updates arrays in place is safe.
    """
    def decorate(fast: F) -> F:
        @functools.wraps(fast)
        def run(*args: Any, **kwargs: Any) -> Any:
            if not compiled.ready(args):
                return reference(*args, **kwargs)
            try:
                return fast(*args, **kwargs)
            except Exception as error:
                if _numba is None or not isinstance(error, _numba.core.errors.NumbaError):
                    raise
                compiled.broken(error)
                return reference(*args, **kwargs)

        run.loops, run.reference = compiled, reference  # type: ignore[attr-defined]
        return run  # type: ignore[return-value]

    return decorate
