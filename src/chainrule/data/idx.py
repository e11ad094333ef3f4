"""Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).

Layout: two zero bytes, a type code, the number of dimensions; then each dimension as a
big-endian uint32; then the values, big-endian, row-major.

Files are untrusted input. The header's claim (the product of the dimensions times the item
size, computed with Python integers so it cannot overflow) is checked against ``max_bytes``
and, for a raw file, against the file's size before anything is allocated; a gzip stream is
decompressed only up to the claim plus one byte, so a gzip bomb never expands past it.
"""

from __future__ import annotations

import gzip
import io
import math
import os
import stat
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np

_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: default limit on the bytes a file may decompress to (raise it with ``max_bytes=``)
MAX_BYTES = 4 * 2**30
_CHUNK = 4 * 2**20
_FIRST_BUFFER = 16 * 2**20
_GZIP_MAGIC = b"\x1f\x8b"


class IDXError(ValueError):
    """A file that is not valid IDX: bad magic number, truncated, trailing bytes or corrupt."""


def parse_idx(raw: bytes | bytearray | memoryview, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array (native byte order)."""
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise TypeError(f"parse_idx: expected bytes, got {type(raw).__name__}; "
                        "to read a file use read_idx(path)")
    # bytes already in memory cap the allocation themselves: the claim must equal their length
    return _decode(io.BytesIO(raw), source, None, memoryview(raw).nbytes, "data")


def read_idx(path: str | os.PathLike, max_bytes: int = MAX_BYTES, *,
             items: tuple[int, str] | None = None) -> np.ndarray:
    """Read an IDX file; gzip is detected from its first bytes, not its name.

    Raises IDXError (naming the file) for a file that is corrupt, truncated, has trailing
    bytes or claims more than ``max_bytes`` bytes of values. ``items`` = (count, where) says
    how many entries the first axis must have and what says so (e.g. the labels file): a
    header claiming another count is refused before any value is read.
    """
    path = Path(path)
    _check_limit(max_bytes, "read_idx")
    with open(path, "rb") as file, _opened(file, path, IDXError) as (stream, gz):
        if gz:
            return _decode(stream, str(path), max_bytes, None, "decompressed data", items)
        return _decode(stream, str(path), max_bytes, _regular_size(file), "file", items)


def read_bytes_maybe_gzip(path: Path, error: type[Exception], max_bytes: int = MAX_BYTES
                          ) -> bytes:
    """A file's bytes, gunzipped if they start with gzip's magic (whatever the name says).

    ``error`` (called with one message naming the file) is raised for corrupt gzip data and
    for contents larger than ``max_bytes``, which the stream is never expanded past.
    """
    path = Path(path)
    _check_limit(max_bytes, "read_bytes_maybe_gzip")
    with open(path, "rb") as file, _opened(file, path, error) as (stream, gz):
        size = None if gz else _regular_size(file)
        if size is not None and size > max_bytes:
            raise error(f"{path}: has {size} bytes, more than max_bytes={max_bytes}; if the "
                        "file is genuine, pass a larger max_bytes=")
        chunks, total = [], 0
        while chunk := stream.read(min(_CHUNK, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                what = "decompresses to" if gz else "holds"
                raise error(f"{path}: {what} more than max_bytes={max_bytes} bytes (a gzip "
                            "bomb, or not the expected file); if the file is genuine, pass a "
                            "larger max_bytes=")
    return b"".join(chunks)


# ------------------------------------------------------------------------------------------
# Decoding

def _decode(stream: BinaryIO, source: str, max_bytes: int | None, size: int | None,
            what: str, items: tuple[int, str] | None = None) -> np.ndarray:
    """Header, checks of its claim, then exactly the claimed values and a check for more."""
    head = _read_up_to(stream, 4)
    if len(head) < 4:
        raise IDXError(f"{source}: {len(head)} bytes is too short for an IDX header")
    if head[0] != 0 or head[1] != 0 or head[2] not in _TYPES:
        magic = int.from_bytes(head, "big")
        raise IDXError(
            f"{source}: magic number {magic} (0x{magic:08x}) is not IDX; MNIST images start "
            "with 2051 and labels with 2049. Is this the right file, and is it gzip-compressed "
            "only if its name ends in .gz?"
        )
    dtype, ndim = _TYPES[head[2]], head[3]
    dims = _read_up_to(stream, 4 * ndim)
    header = 4 + len(dims)
    if len(dims) < 4 * ndim:
        raise IDXError(f"{source}: truncated header ({header} bytes, {ndim} dims declared)")
    shape = tuple(int.from_bytes(dims[4 * i: 4 * i + 4], "big") for i in range(ndim))
    if items is not None and (shape[0] if shape else 1) != items[0]:
        raise IDXError(f"{source}: holds {shape[0] if shape else 1} entries, but {items[1]} "
                       f"says {items[0]}; the files do not belong together")
    nbytes = math.prod(shape) * dtype.itemsize  # Python ints: no overflow
    expected = header + nbytes
    if size is not None and size != expected:
        kind = "truncated" if size < expected else "has trailing bytes"
        raise _length_error(source, shape, dtype, expected, kind, f"the {what} has {size}")
    if max_bytes is not None and nbytes > max_bytes:
        raise IDXError(
            f"{source}: its header claims shape {shape} of {dtype}, {nbytes} bytes, more than "
            f"max_bytes={max_bytes}. A damaged header is the likely cause (download the file "
            "again); if the file is genuine, pass a larger max_bytes= to read_idx"
        )
    # The buffer grows with the data that arrives, so a short file that claims gigabytes
    # costs no more memory than its real contents.
    try:
        buffer = np.empty(min(nbytes, _FIRST_BUFFER), np.uint8)
        filled = 0
        while filled < nbytes:
            if filled == len(buffer):
                buffer.resize(min(nbytes, 2 * len(buffer)), refcheck=False)
            with memoryview(buffer) as view:
                got = stream.readinto(view[filled: min(len(buffer), filled + _CHUNK)])
            if not got:
                raise _length_error(source, shape, dtype, expected, "truncated",
                                    f"the {what} ends after {header + filled}")
            filled += got
    except MemoryError:
        raise IDXError(f"{source}: not enough memory for the {nbytes} bytes its header "
                       f"claims (shape {shape} of {dtype})") from None
    if stream.read(1):
        raise _length_error(source, shape, dtype, expected, "has trailing bytes",
                            f"the {what} has more")
    if not dtype.isnative:
        buffer.view(dtype).byteswap(inplace=True)
    try:
        return buffer.view(dtype.newbyteorder("=")).reshape(shape)
    except ValueError as cause:  # more dimensions, or a larger shape, than NumPy allows
        raise IDXError(f"{source}: shape {shape} cannot be held in a NumPy array ({cause})"
                       ) from None


def _length_error(source: str, shape: tuple[int, ...], dtype: np.dtype, expected: int,
                  kind: str, found: str) -> IDXError:
    return IDXError(f"{source}: {kind}: shape {shape} of {dtype} needs {expected} bytes, "
                    f"{found}. Download it again.")


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream."""
    pieces, left = [], n
    while left > 0:
        piece = stream.read(left)
        if not piece:
            break
        pieces.append(piece)
        left -= len(piece)
    return b"".join(pieces)


def _regular_size(file: BinaryIO) -> int | None:
    """The size of a regular file; None for a pipe or device, whose size is not known."""
    info = os.fstat(file.fileno())
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def _check_limit(max_bytes: int, caller: str) -> None:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 0:
        raise ValueError(f"{caller}: max_bytes must be a non-negative int, got {max_bytes!r}")


@contextmanager
def _opened(file: BinaryIO, path: Path, error: type[Exception]
            ) -> Iterator[tuple[BinaryIO, bool]]:
    """``file`` or its gunzipped stream, and whether it is gzip; bad data raises ``error``."""
    with _read_errors(path, error):
        gz = file.read(2) == _GZIP_MAGIC
        file.seek(0)
        if not gz:
            yield file, False
            return
    with _gzip_errors(path, error), gzip.GzipFile(fileobj=file) as stream:
        yield stream, True


@contextmanager
def _gzip_errors(path: Path, error: type[Exception]) -> Iterator[None]:
    """Turn what gzip and zlib raise on bad data into ``error`` naming the file."""
    try:
        yield
    except EOFError:
        raise error(f"{path}: corrupt gzip data (truncated: the compressed stream ends "
                    "early). Download it again.") from None
    except (zlib.error, gzip.BadGzipFile) as cause:
        raise error(f"{path}: corrupt gzip data ({cause}). Download it again.") from None
    except MemoryError:
        raise error(f"{path}: not enough memory to decompress it") from None
    except OSError as cause:
        raise error(f"{path}: cannot read it ({cause.strerror or cause})") from None


@contextmanager
def _read_errors(path: Path, error: type[Exception]) -> Iterator[None]:
    """Turn a failed read or allocation into ``error`` naming the file."""
    try:
        yield
    except MemoryError:
        raise error(f"{path}: not enough memory to read it") from None
    except OSError as cause:
        raise error(f"{path}: cannot read it ({cause.strerror or cause})") from None
