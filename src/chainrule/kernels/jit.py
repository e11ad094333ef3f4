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
NaN, infinities and signed zeros keep their IEEE meaning. ``contract=True`` lets a multiply
and an add become one fused multiply-add (LLVM's ``contract``): one rounding instead of two,
for the polynomials of ``exp_float32``.

Loops call small scalar functions marked ``@jit.scalar`` (``exp_float32`` below) as they
call any Python function; when the loops are compiled, numba compiles the scalar function
into them, inlined, so that a loop calling it still runs in SIMD.

Threads: the loops run on one thread by default. A loop written over ``prange`` (this
module's name for ``range``) may also run with numba's ``parallel=True``, the prange's
iterations split over threads, each of them independent (no shared scratch, no sums across
them), so both forms give the same bits. That form is chosen with
``CHAINRULE_PARALLEL_KERNELS=1`` or ``use_parallel(True)``; by default (``None``) it runs
when chainrule's thread setting (``kernels.num_threads()``) is at least
``PARALLEL_MIN_THREADS``. On the 2 shared cores this was developed on, numba's threads were
slower than one for some loops and faster for others (docs/kernels.md). The parallel form
is cached under a name of its own.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
import types
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

#: The values ``CHAINRULE_KERNELS`` and ``use`` take.
BACKENDS = ("numba", "numpy")
#: dtypes the loops are compiled for: anything else goes to the reference.
DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: Threads from which the prange loops run in parallel unless chosen otherwise.
PARALLEL_MIN_THREADS = 4
#: Calls whose largest array is smaller than this stay on one thread even then.
PARALLEL_MIN_ELEMENTS = 1 << 16

F = TypeVar("F", bound=Callable[..., Any])

#: ``range`` to Python and to the serial compile; numba's prange in the parallel one.
prange = range

_lock = threading.RLock()  # _compile imports numba while it holds the lock
_numba: Any = None  # the module, once imported
_failed = False  # numba could not be imported: the references run
_chosen: str | None = None
_parallel: bool | None = None  # use_parallel's choice; None: the environment or the threads
_parallel_default: bool | None = None  # that default, once worked out


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


def use_parallel(choice: bool | None) -> None:
    """Run the prange loops on numba's threads (True), on one thread (False), or by the
    thread setting (None, the default; see the module)."""
    global _parallel
    if choice not in (True, False, None):
        raise ValueError(f"kernels.use_parallel: choose True, False or None, got {choice!r}")
    _parallel = choice


def parallel() -> bool:
    """Whether the prange loops run in parallel now (see the module)."""
    if _parallel is not None:
        return _parallel
    global _parallel_default
    if _parallel_default is None:  # read once: a loop may ask this thousands of times a second
        value = os.environ.get("CHAINRULE_PARALLEL_KERNELS", "").strip()
        if value in ("0", "1"):
            _parallel_default = value == "1"
        else:
            from chainrule.kernels.threads import num_threads

            _parallel_default = num_threads() >= PARALLEL_MIN_THREADS
    return _parallel_default


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

    def __init__(self, function: Callable[..., Any], reassociate: bool = False,
                 threads: bool = False, contract: bool = False) -> None:
        self.function = function
        self.reassociate = reassociate
        self.contract = contract
        self.threads = threads  # written over prange: may run in parallel
        self.__name__ = function.__name__
        self.__doc__ = function.__doc__
        self._compiled: Any = None
        self._compiled_parallel: Any = None
        self._broken = False

    def ready(self, arrays: tuple[Any, ...]) -> bool:
        """Whether these arguments can take the compiled loops: compiling is on, numba
        works and compiled this, and the float arrays among them share float32 or float64."""
        if self._broken or not _compiling():
            return False
        dtype = None
        for a in arrays:
            if isinstance(a, np.ndarray) and a.dtype.kind in "fc":
                if dtype is None:
                    dtype = a.dtype
                elif a.dtype != dtype:
                    return False
        return dtype in DTYPES

    def __call__(self, *args: Any) -> Any:
        if self.threads and parallel() and _large(args):
            compiled = self._compiled_parallel
            if compiled is None:
                compiled = self._compile_parallel()
            return compiled(*args)
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
                self._compiled = numba.njit(cache=True, nogil=True, error_model="numpy",
                                            fastmath=self._fastmath())(self._source(numba))
        return self._compiled

    def _compile_parallel(self) -> Any:
        with _lock:
            if self._compiled_parallel is None:
                numba = _import_numba()
                from chainrule.kernels.threads import num_threads

                numba.set_num_threads(max(1, min(num_threads(), numba.config.NUMBA_NUM_THREADS)))
                self._compiled_parallel = numba.njit(
                    parallel=True, cache=True, nogil=True, error_model="numpy",
                    fastmath=self._fastmath())(self._source(numba, parallel=True))
        return self._compiled_parallel

    def _fastmath(self) -> Any:
        """reassoc and contract (see the module) are the only fast-math flags ever set."""
        flags = {name for name, on in (("reassoc", self.reassociate),
                                       ("contract", self.contract)) if on}
        return flags or False

    def _source(self, numba: Any, parallel: bool = False) -> Callable[..., Any]:
        """The function numba compiles: the loops themselves, or a twin of them whose
        globals give the compiled form of each ``@jit.scalar`` they call and, when
        ``parallel``, numba's prange."""
        source = self.function
        scalars = _compiled_scalars(source, numba)
        if not scalars and not parallel:
            return source
        twin = _twin(source, {**scalars, **({"prange": numba.prange} if parallel else {})})
        # numba's cache files are named after the function: the parallel form gets a name
        # of its own, or the serial form's files would answer for it
        twin.__qualname__ = source.__qualname__ + ("_parallel" if parallel else "")
        if scalars:  # their code is compiled into the loops' cache files: a change renames them
            twin.__qualname__ += "_" + _code_digest(scalars[name] for name in sorted(scalars))
        return twin

    def broken(self, error: BaseException) -> None:
        """Stop using these loops after numba failed on them (the caller runs the reference)."""
        self._broken = True
        _notice(f"numba failed on {self.__name__} ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''})")


def _large(args: tuple[Any, ...]) -> bool:
    """Whether the call's largest array is worth numba's threads (their start costs µs), on
    the main thread: numba's default threading layer may not be entered from two threads at
    once (it stops the process), so a call from any other thread runs the serial form."""
    return (max((a.size for a in args if isinstance(a, np.ndarray)), default=0)
            >= PARALLEL_MIN_ELEMENTS and threading.current_thread() is threading.main_thread())


def _code_digest(scalars: Any) -> str:
    """A short digest of the scalar functions' code, constants and the numbers they read
    from their module (numba freezes those into the machine code), and of the scalars they
    call in turn."""
    digest = hashlib.sha256()
    seen: set[int] = set()

    def add(function: Any) -> None:
        function = getattr(function, "py_func", function)
        if id(function) in seen:
            return
        seen.add(id(function))
        code, names = function.__code__, function.__globals__
        digest.update(code.co_code)
        digest.update(repr(code.co_consts).encode())
        for name in code.co_names:
            value = names.get(name)
            if isinstance(value, (int, float, np.number)) and not isinstance(value, bool):
                digest.update(f"{name}={value!r}".encode())
            elif isinstance(value, Scalar):
                add(value.function)

    for compiled in scalars:
        add(compiled)
    return digest.hexdigest()[:10]


def loops(function: Callable[..., Any] | None = None, *, reassociate: bool = False,
          threads: bool = False, contract: bool = False) -> Any:
    """Mark ``function`` (plain loops over arrays) for compiling with numba on first use;
    ``@loops(reassociate=True)`` lets its sums be reordered into SIMD lanes, ``threads=True``
    says its outer loop is a ``prange`` of independent iterations, ``contract=True`` allows
    fused multiply-adds (see the module)."""
    if function is None:
        return lambda inner: Loops(inner, reassociate, threads, contract)
    return Loops(function, reassociate, threads, contract)


class Scalar:
    """A scalar function for loops to call: plain Python when called from Python, compiled
    and inlined into the loops that call it when they are compiled."""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function
        self.__name__ = function.__name__
        self.__doc__ = function.__doc__
        self._compiled: Any = None

    def __call__(self, *args: Any) -> Any:
        return self.function(*args)

    def compiled(self, numba: Any) -> Any:
        """numba's form of the function, inlined where it is called (and the scalars it
        calls in turn inlined into it)."""
        if self._compiled is None:
            nested = _compiled_scalars(self.function, numba)
            source = _twin(self.function, nested) if nested else self.function
            self._compiled = numba.njit(inline="always", error_model="numpy",
                                        fastmath={"contract"})(source)
        return self._compiled


def _compiled_scalars(function: Callable[..., Any], numba: Any) -> dict[str, Any]:
    """The compiled form of each ``@jit.scalar`` that ``function`` calls, by global name."""
    names = function.__globals__
    return {name: names[name].compiled(numba) for name in function.__code__.co_names
            if isinstance(names.get(name), Scalar)}


def _twin(function: Callable[..., Any], replaced: dict[str, Any]) -> Callable[..., Any]:
    """``function``'s code with some of its globals replaced (for numba to compile)."""
    twin = types.FunctionType(function.__code__, dict(function.__globals__, **replaced),
                              function.__name__, function.__defaults__, function.__closure__)
    twin.__qualname__, twin.__module__ = function.__qualname__, function.__module__
    return twin


def scalar(function: Callable[..., Any]) -> Scalar:
    """Mark ``function`` as a scalar helper of compiled loops (see the module)."""
    return Scalar(function)


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
