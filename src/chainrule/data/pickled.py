"""A pickle reader that rebuilds NumPy arrays and nothing else.

``pickle.load`` runs whatever callables a file names, so a downloaded pickle can run code on
the reader's machine. ``SafeUnpickler`` resolves only the few globals that NumPy's own array
pickles use (checked against protocols 0 to 5, NumPy 1.x and 2.x module names, and the
Python 2 layout of the lesson's file) and refuses every other global before it is imported.
"""

from __future__ import annotations

import _compat_pickle  # the stdlib table pickle uses to map Python 2 names
import importlib
import io
import os
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.data.idx import read_bytes_maybe_gzip

#: default limit on the bytes a pickle may decompress to (generous for the lesson's file)
MAX_BYTES = 2**30


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle that names a global outside the NumPy-array allowlist."""


def _numpy_core(module: str, name: str) -> Callable[[], Any]:
    """Look ``name`` up in numpy._core.<module> (NumPy 2) or numpy.core.<module> (NumPy 1)."""
    def resolve() -> Any:
        try:
            found = importlib.import_module(f"numpy._core.{module}")
        except ImportError:
            found = importlib.import_module(f"numpy.core.{module}")
        return getattr(found, name)
    return resolve


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as Python 3 pickles bytes, limited to that use (latin-1)."""
    spelled = encoding.lower().replace("-", "").replace("_", "") if isinstance(
        encoding, str) else None
    if not isinstance(text, str) or spelled not in ("latin1", "iso88591"):
        raise UnsafePickleError(f"refused _codecs.encode with encoding {encoding!r}: only "
                                "latin-1 text-to-bytes is part of a NumPy array pickle")
    return text.encode("latin-1")


def _empty_bytes(*args: Any) -> bytes:
    """``bytes()``, as Python 3 pickles b''; refuses arguments (bytes(10**12) allocates)."""
    if args:
        raise UnsafePickleError("refused bytes(...) with arguments: only bytes() is expected")
    return b""


# (module, name) as written in the pickle -> how to get the object. Resolving them ourselves
# means no module outside this table is ever imported, and numpy.core's deprecation shim in
# NumPy 2 is never touched.
_ALLOWED: dict[tuple[str, str], Callable[[], Any]] = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_core("multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): _numpy_core("multiarray", "_reconstruct"),
    # protocol 5 pickles contiguous arrays as a buffer handed to _frombuffer
    ("numpy.core.numeric", "_frombuffer"): _numpy_core("numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"): _numpy_core("numeric", "_frombuffer"),
    # protocols 0-2 written by Python 3 spell bytes as _codecs.encode(text, 'latin1'), and an
    # empty bytes object as bytes(); stand-ins allow exactly those two uses
    ("_codecs", "encode"): lambda: _latin1_encode,
    ("__builtin__", "bytes"): lambda: _empty_bytes,
    ("builtins", "bytes"): lambda: _empty_bytes,
}


class SafeUnpickler(pickle.Unpickler):
    """An Unpickler whose ``find_class`` admits only what NumPy arrays need."""

    def find_class(self, module: str, name: str) -> Any:
        """Resolve an allowlisted global, or raise UnsafePickleError naming the refused one."""
        resolve = _ALLOWED.get((module, name))
        if resolve is None:
            raise UnsafePickleError(
                f"refused to load global {_describe(module, name)}: this reader only rebuilds "
                "NumPy arrays, and a pickle that names anything else could run code"
            )
        return resolve()


def _describe(module: str, name: str) -> str:
    """``module.name``, with its Python 3 spelling when the pickle used a Python 2 one."""
    py3_module, py3_name = _compat_pickle.NAME_MAPPING.get(
        (module, name), (_compat_pickle.IMPORT_MAPPING.get(module, module), name))
    if (py3_module, py3_name) == (module, name):
        return f"{module}.{name}"
    return f"{module}.{name} (Python 3: {py3_module}.{py3_name})"


def safe_loads(data: bytes, encoding: str = "latin-1") -> Any:
    """Unpickle ``data`` with SafeUnpickler (latin-1 reads Python 2 array pickles)."""
    return SafeUnpickler(io.BytesIO(data), encoding=encoding).load()


Pair = tuple[np.ndarray, np.ndarray]


def read_mnist_pkl(path: str | os.PathLike, max_bytes: int = MAX_BYTES
                   ) -> tuple[Pair, Pair, Pair]:
    """The lesson's ``mnist.pkl.gz``: ((x_train, y_train), (x_valid, y_valid), (x_test, y_test)).

    The file is a (usually gzip-compressed) protocol-2 pickle written by Python 2; only NumPy
    arrays are rebuilt, anything else raises UnsafePickleError before it runs. A file that
    decompresses to more than ``max_bytes`` (a gzip bomb) raises UnpicklingError unread.
    """
    path = Path(path)
    raw = read_bytes_maybe_gzip(path, pickle.UnpicklingError, max_bytes)
    try:
        obj = safe_loads(raw)
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as error:
        raise pickle.UnpicklingError(f"{path}: not a readable pickle ({error})") from None
    except MemoryError:  # a length field claiming more than the machine has
        raise pickle.UnpicklingError(f"{path}: not a readable pickle (it asks for more "
                                     "memory than there is; the file is damaged)") from None
    _check_splits(obj, path)
    return obj


def _check_splits(obj: Any, path: Path) -> None:
    """Refuse anything but three (x, y) pairs of numeric arrays with matching lengths."""
    def bad(what: str) -> ValueError:
        return ValueError(f"{path}: expected a tuple of 3 (x, y) pairs of NumPy arrays; {what}")

    if not isinstance(obj, tuple) or len(obj) != 3:
        raise bad(f"got {type(obj).__name__} of length {_length(obj)}")
    for i, pair in enumerate(obj):
        if not isinstance(pair, tuple) or len(pair) != 2:
            raise bad(f"split {i} is {type(pair).__name__} of length {_length(pair)}")
        x, y = pair
        if not isinstance(x, np.ndarray) or not isinstance(y, np.ndarray):
            raise bad(f"split {i} holds {type(x).__name__} and {type(y).__name__}")
        if x.dtype.kind not in "fiub" or y.dtype.kind not in "fiub":
            raise bad(f"split {i} has dtypes {x.dtype} and {y.dtype}")
        if x.ndim == 0 or y.ndim == 0 or len(x) != len(y):
            raise bad(f"split {i} has shapes {x.shape} and {y.shape}")


def _length(obj: Any) -> str:
    try:
        return str(len(obj))
    except TypeError:
        return "n/a"
