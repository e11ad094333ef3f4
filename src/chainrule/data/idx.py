"""Reader for the IDX format of MNIST and Fashion-MNIST (raw or gzip-compressed).

Layout: two zero bytes, a type code, the number of dimensions; then each dimension as a
big-endian uint32; then the values, big-endian, row-major.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np

_TYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}


class IDXError(ValueError):
    """A file that is not valid IDX: bad magic number, truncated or with trailing bytes."""


def parse_idx(raw: bytes, source: str = "<bytes>") -> np.ndarray:
    """Decode IDX bytes into an array (native byte order)."""
    if len(raw) < 4:
        raise IDXError(f"{source}: {len(raw)} bytes is too short for an IDX header")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _TYPES:
        magic = int.from_bytes(raw[:4], "big")
        raise IDXError(
            f"{source}: magic number {magic} (0x{magic:08x}) is not IDX; MNIST images start "
            "with 2051 and labels with 2049. Is this the right file, and is it gzip-compressed "
            "only if its name ends in .gz?"
        )
    dtype, ndim = _TYPES[raw[2]], raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IDXError(f"{source}: truncated header ({len(raw)} bytes, {ndim} dims declared)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected:
        kind = "truncated" if len(raw) < expected else "has trailing bytes"
        raise IDXError(
            f"{source}: {kind}: shape {shape} of {dtype} needs {expected} bytes, the file "
            f"has {len(raw)}. Download it again."
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)
    return data.astype(dtype.newbyteorder("="))


def read_bytes_maybe_gzip(path: Path, error: type[Exception]) -> bytes:
    """A file's bytes, gunzipped if they start with gzip's magic (whatever the name says)."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as cause:
            raise error(f"{path}: corrupt gzip data ({cause}). Download it again.") from None
    return raw


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read an IDX file; gzip is detected from its first bytes, not its name."""
    path = Path(path)
    return parse_idx(read_bytes_maybe_gzip(path, IDXError), str(path))
