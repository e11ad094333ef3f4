"""Saving and loading: weights and checkpoints in safetensors, every write atomic.

A file is written to a temporary name in the same folder, flushed to disk, then renamed over
the target (rename is atomic on POSIX and Windows): a crash leaves either the old file or the
new one, never a half-written file under the real name. Temporary files are named
``.<target>.<pid>.<random><suffix>`` (see ``temp_file``), so a later write can tell a dead
writer's leftovers from a live writer's file and removes the dead ones.

Weights files hold a model's state_dict under PyTorch's names and layout, so
``torch_model.load_state_dict(safetensors.torch.load_file(path))`` works unchanged.
Checkpoints add the optimizer state (tensors named ``optimizer/...``; a slash never occurs in
a parameter name) and JSON metadata (model recipe, hyper-parameters, epoch, history).

Every file chainrule writes carries a ``checksum`` metadata entry,
``sha256:<tensors>:<metadata>``: the first digest over the tensors in name order (for each:
name, dtype code, shape as little-endian u64s, raw bytes; every field preceded by its length
as a little-endian u64), the second over the other metadata entries in key order (key,
value, framed the same way). Every load checks it; a file without one (an older chainrule's,
or one that torch or safetensors wrote) loads with an UnverifiedFileWarning.

Files are untrusted input: a file that is damaged, crafted, or of another format is refused
with a CheckpointError that says what it is and what to do; nothing in it is unpickled or
executed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import re
import secrets
import stat
import struct
import threading
import time
import warnings
import zipfile
from collections.abc import Callable, Collection, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

CHECKPOINT_FORMAT = "chainrule-checkpoint"
CHECKPOINT_VERSION = 1
WEIGHTS_FORMAT = "chainrule-weights"

#: info keys that Learner.load_checkpoint reads; a Learner-written info holds them all
RESUME_KEYS = ("next_epoch", "step", "history", "recorder", "optimizer")
# Keys only a Learner writes ("config" is not one: `chainrule evaluate` needs no more than it)
_LEARNER_KEYS = (*RESUME_KEYS, "scheduler", "generator")

#: seconds after which a temporary file of the old mkstemp naming (no pid) counts as stale
LEGACY_TEMP_AGE_S = 15 * 60.0


class CheckpointError(ValueError):
    """A file that is not a valid chainrule checkpoint or weights file."""


class ChecksumError(CheckpointError):
    """A file whose contents do not match the checksum stored in it: damaged since written."""


class UnverifiedFileWarning(UserWarning):
    """A file loaded without a full checksum check (no checksum in it, or damaged metadata)."""


# ---------------------------------------------------------------------- temporary files
_TEMP_RANDOM_HEX = 12  # not 8: never mistaken for the old mkstemp names (8 characters)
_live_temps: set[str] = set()  # names of temp files this process made and still owns
_live_lock = threading.Lock()


@contextlib.contextmanager
def temp_file(target: str | os.PathLike, suffix: str = ".tmp", mode: str = "wb"
              ) -> Iterator[tuple[IO[Any], Path]]:
    """Yield ``(file, path)``: a new file ``.<target>.<pid>.<random><suffix>`` beside target.

    Stale temporary files of the same target and suffix are removed first
    (``remove_stale_temp_files``). Move the file into place with ``os.replace(path, target)``
    inside the block; whatever is still at ``path`` on leaving the block is deleted.
    """
    target = Path(target)
    _check_suffix(suffix)
    if mode not in ("wb", "w"):
        raise ValueError(f"temp_file: mode must be 'wb' or 'w', got {mode!r}")
    remove_stale_temp_files(target, suffix)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        name = f".{target.name}.{os.getpid()}.{secrets.token_hex(_TEMP_RANDOM_HEX // 2)}{suffix}"
        temp = target.parent / name
        with _live_lock:  # registered before it exists, so no clean-up ever sees it unowned
            _live_temps.add(name)
        try:
            handle = os.open(temp, flags, 0o666)  # the umask gives ordinary permissions
            break
        except FileExistsError:
            _forget(name)
        except OSError as error:
            _forget(name)
            raise _named(error, target, f"cannot create a file in {target.parent}") from None
        except BaseException:
            _forget(name)
            raise
    else:
        raise FileExistsError(f"{target}: could not make a temporary file beside it")
    try:
        try:
            file = os.fdopen(handle, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
        except BaseException:
            os.close(handle)
            raise
        with file:
            yield file, temp
    finally:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        _forget(name)


def remove_stale_temp_files(target: str | os.PathLike, suffix: str = ".tmp") -> list[Path]:
    """Delete the leftovers of dead writers of ``target``; returns the paths removed.

    Only regular files named exactly as ``temp_file`` names them, ``.<target>.<pid>.<12 hex>
    <suffix>``, whose writer process is gone, and files of the older mkstemp naming
    ``.<target>.<8 characters><suffix>`` untouched for LEGACY_TEMP_AGE_S. Best effort: a
    folder that cannot be listed or a file that cannot be removed is left as it is.
    """
    target = Path(target)
    _check_suffix(suffix)
    folder = target.parent
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    prefix = re.escape(f".{target.name}.")
    ours = re.compile(prefix + rf"([1-9][0-9]{{0,9}})\.[0-9a-f]{{{_TEMP_RANDOM_HEX}}}"
                      + re.escape(suffix))
    legacy = re.compile(prefix + r"[a-z0-9_]{8}" + re.escape(suffix))
    removed = []
    for name in names:
        match = ours.fullmatch(name)
        if match is None and legacy.fullmatch(name) is None:
            continue
        path = folder / name
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode):
            continue
        if match is not None:
            if _writer_alive(int(match[1]), name):
                continue
        elif time.time() - info.st_mtime < LEGACY_TEMP_AGE_S:
            continue
        try:
            os.unlink(path)
        except OSError:
            continue
        removed.append(path)
    return removed


def _check_suffix(suffix: str) -> None:
    if not isinstance(suffix, str) or re.fullmatch(r"\.[A-Za-z0-9_]{1,16}", suffix) is None:
        raise ValueError(f"temporary file suffix must look like '.tmp' or '.part', got "
                         f"{suffix!r}")


def _forget(name: str) -> None:
    with _live_lock:
        _live_temps.discard(name)


def _writer_alive(pid: int, name: str) -> bool:
    """Whether the process that made temp file ``name`` may still be writing it."""
    if pid == os.getpid():
        # Our own pid: a run before ours (a container restarts with the same pids) or us.
        with _live_lock:
            return name in _live_temps
    return process_alive(pid)


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` (not this one) may still be running: False only when it is
    surely gone, so a caller that removes what it left never removes a live process's file."""
    if os.name != "posix":
        return True  # no safe liveness probe here (os.kill would terminate the process)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True  # PermissionError: it exists, run by another user
    with contextlib.suppress(OSError, ValueError):
        # A killed writer that nobody has reaped yet is a zombie: gone, all the same.
        status = Path(f"/proc/{pid}/stat").read_bytes()
        if status[status.rindex(b")") + 2:][:1] in (b"Z", b"X"):
            return False
    return True


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb"
                 ) -> Path:
    """Call ``write(file)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder; give the name of a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _named(error, path, f"cannot make its folder {path.parent}") from None
    with temp_file(path, ".tmp", mode) as (file, temp):
        try:
            write(file)
            file.flush()
            os.fsync(file.fileno())
            file.close()  # Windows cannot rename an open file
        except OSError as error:
            if error.errno is None:  # raised by the caller's write, not by the system
                raise
            raise _named(error, path, "not written") from None
        try:
            os.replace(temp, path)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{path}: its temporary file {temp.name} vanished before it could be renamed "
                "into place (was the folder removed, or is another program writing the same "
                "file?); nothing was written") from None
        except OSError as error:
            raise _named(error, path, "not written") from None
    _sync_folder(path.parent)
    return path


def _named(error: OSError, path: Path, what: str) -> OSError:
    """The same kind of OSError, saying which file and that the old one is untouched."""
    reason = error.strerror or str(error)
    return type(error)(error.errno, f"{path}: {what} ({reason}); the file already there, if "
                                    "any, is unchanged")


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX; elsewhere the rename is as durable as it gets)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        handle = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(handle)
        finally:
            os.close(handle)


# ---------------------------------------------------------------------- safetensors files
_DTYPES = {"BOOL": np.dtype("?"), "U8": np.dtype("u1"), "I8": np.dtype("i1"),
           "U16": np.dtype("<u2"), "I16": np.dtype("<i2"), "F16": np.dtype("<f2"),
           "U32": np.dtype("<u4"), "I32": np.dtype("<i4"), "F32": np.dtype("<f4"),
           "U64": np.dtype("<u8"), "I64": np.dtype("<i8"), "F64": np.dtype("<f8")}
_CODES = {dtype.newbyteorder("="): code for code, dtype in _DTYPES.items()}
_MAX_HEADER = 100_000_000  # safetensors' own limit
_OPTIMIZER_NAME = re.compile(r"state\.(0|[1-9][0-9]*)\.([A-Za-z_][A-Za-z0-9_]*)")
_CHECKSUM = re.compile(r"sha256:([0-9a-f]{64}):([0-9a-f]{64})")
_AGAIN = "Use an earlier copy of it (or train again)"


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _frame(digest: Any, data: bytes | memoryview) -> None:
    digest.update(struct.pack("<Q", len(data)))
    digest.update(data)


def _text(value: str) -> bytes:
    return value.encode("utf-8", "surrogatepass")


def _tensor_digest(entries: Mapping[str, tuple[str, list[int], bytes | memoryview]]) -> str:
    """sha256 over the tensors in name order: name, dtype, shape and bytes of each."""
    digest = hashlib.sha256()
    for name in sorted(entries):
        code, shape, data = entries[name]
        _frame(digest, _text(name))
        _frame(digest, code.encode("ascii"))
        _frame(digest, struct.pack(f"<{len(shape)}Q", *shape))
        _frame(digest, data)
    return digest.hexdigest()


def _metadata_digest(metadata: Mapping[str, str]) -> str:
    """sha256 over every metadata entry but the checksum itself, in key order."""
    digest = hashlib.sha256()
    for key in sorted(metadata):
        if key != "checksum":
            _frame(digest, _text(key))
            _frame(digest, _text(metadata[key]))
    return digest.hexdigest()


def _save_safetensors(path: str | os.PathLike, tensors: Mapping[str, Any],
                      metadata: Mapping[str, str], owner: str) -> Path:
    from safetensors.numpy import save

    arrays = {}
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"{owner}: tensor names must be str, got {_short(name)}")
        array = np.asarray(value)
        if array.dtype.newbyteorder("=") not in _CODES:
            raise TypeError(f"{owner}: tensor {name!r} has dtype {array.dtype}, which a "
                            "chainrule file cannot hold; convert it to a float or integer "
                            "dtype first")
        if array.dtype.byteorder == ">":  # safetensors stores little-endian bytes
            array = array.astype(array.dtype.newbyteorder("<"))
        # (np.ascontiguousarray would turn a 0-d array into shape (1,).)
        arrays[name] = array if array.flags.c_contiguous else np.ascontiguousarray(array)
    metadata = dict(metadata)
    # Hashed from the arrays as the file will hold them (little-endian, C order), which is
    # what a load hashes from the file's bytes.
    entries = {name: (_CODES[array.dtype.newbyteorder("=")], list(array.shape),
                      array.reshape(-1).view(np.uint8)) for name, array in arrays.items()}
    metadata["checksum"] = f"sha256:{_tensor_digest(entries)}:{_metadata_digest(metadata)}"
    del entries
    payload = save(arrays, metadata=metadata)
    return atomic_write(path, lambda file: file.write(payload))


def _read_exact(file: Any, offset: int, size: int) -> bytearray:
    buffer = bytearray(size)
    file.seek(offset)
    view, done = memoryview(buffer), 0
    while done < size:
        count = file.readinto(view[done:])
        if not count:
            raise EOFError
        done += count
    return buffer


def _load_safetensors(path: str | os.PathLike
                      ) -> tuple[dict[str, np.ndarray], dict[str, str], tuple[bool, bool] | None]:
    """(tensors, metadata, (tensors match, metadata matches) or None without a checksum)."""
    path = Path(path)
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: no such file") from None
    except (OSError, ValueError) as error:
        raise CheckpointError(f"{path}: cannot be read ({error})") from None
    if stat.S_ISDIR(info.st_mode):
        inside = [p.name for p in (path / "checkpoint.safetensors", path / "model.safetensors")
                  if p.is_file()]
        hint = f" (it holds {' and '.join(inside)})" if inside else ""
        raise CheckpointError(f"{path}: is a folder, not a file{hint}; give the path of the "
                              ".safetensors file")
    if not stat.S_ISREG(info.st_mode):
        raise CheckpointError(f"{path}: not a regular file; give the path of a .safetensors "
                              "file")
    try:
        with open(path, "rb", buffering=0) as file:
            return _parse(path, file, os.fstat(file.fileno()).st_size)
    except EOFError:
        raise CheckpointError(f"{path}: truncated or corrupt: it ended while being read (was "
                              f"it being changed?). {_AGAIN}.") from None
    except OSError as error:
        raise CheckpointError(f"{path}: cannot be read ({error})") from None


def _unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {_short(key)}")
        result[key] = value
    return result


def _parse(path: Path, file: Any, size: int
           ) -> tuple[dict[str, np.ndarray], dict[str, str], tuple[bool, bool] | None]:
    head = file.read(512)
    length = struct.unpack("<Q", head[:8])[0] if len(head) >= 8 else None
    if length is None or head[8:9] != b"{":
        raise CheckpointError(_describe(path, file, head, size))
    corrupt = f"{path}: truncated or corrupt safetensors file"
    if length > min(size - 8, _MAX_HEADER):
        if _as_text(head) is not None:  # a text file whose ninth character is '{'
            raise CheckpointError(_describe(path, file, head, size))
        raise CheckpointError(f"{corrupt}: its header says {length:,} bytes of metadata follow, "
                              f"but the file has {size:,} bytes in all. {_AGAIN}.")
    try:
        header = json.loads(_read_exact(file, 8, length).decode("utf-8"),
                            object_pairs_hook=_unique_object)
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{corrupt}: its header is not valid JSON ({error}). "
                              f"{_AGAIN}.") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{corrupt}: its header is not a JSON object. {_AGAIN}.")
    metadata = header.pop("__metadata__", None)
    metadata = {} if metadata is None else metadata
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{corrupt}: its __metadata__ is not an object of strings. "
                              f"{_AGAIN}.")
    available = size - 8 - length
    spans = []
    for name, entry in header.items():
        spans.append((*_check_entry(path, name, entry, corrupt, available), name))
    spans.sort(key=lambda span: span[:2])
    end = 0
    for begin, stop, _, _, name in spans:
        if begin != end:
            raise CheckpointError(f"{corrupt}: the bytes of tensor {_short(name)} do not "
                                  f"follow on from the tensor before them. {_AGAIN}.")
        end = stop
    if end != available:
        raise CheckpointError(f"{corrupt}: the tensors take {end:,} bytes after the header, "
                              f"but {available:,} are there. {_AGAIN}.")
    tensors, buffers = {}, {}
    for begin, stop, dtype, shape, name in spans:
        data = _read_exact(file, 8 + length + begin, stop - begin)
        buffers[name] = (header[name]["dtype"], shape, data)
        tensors[name] = np.frombuffer(data, dtype).reshape(shape).astype(
            dtype.newbyteorder("="), copy=False)
    stored = metadata.get("checksum")
    if stored is None:
        return tensors, metadata, None
    match = _CHECKSUM.fullmatch(stored)
    if match is None:
        return tensors, metadata, (False, False)
    return tensors, metadata, (_tensor_digest(buffers) == match[1],
                               _metadata_digest(metadata) == match[2])


def _check_entry(path: Path, name: str, entry: Any, corrupt: str, available: int
                 ) -> tuple[int, int, np.dtype, list[int]]:
    """(begin, end, dtype, shape) of one header entry, each checked."""
    if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
        raise CheckpointError(f"{corrupt}: the entry of tensor {_short(name)} lacks dtype, "
                              f"shape or data_offsets. {_AGAIN}.")
    code, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if code == "C64":
        raise CheckpointError(f"{path}: tensor {_short(name)} is complex; a model's weights are "
                              "real, and casting would drop the imaginary part. Save real "
                              "arrays (e.g. the real part) instead")
    if isinstance(code, str) and re.fullmatch(r"BF16|F8_\w+|F6_\w+|F4|E8M0|F8", code):
        raise CheckpointError(
            f"{path}: tensor {_short(name)} has dtype {code}, which NumPy cannot hold; "
            "convert the file to float32 first: python -c \"import safetensors.torch as s; "
            "s.save_file({k: v.float() for k, v in s.load_file('in.safetensors').items()}, "
            "'out.safetensors')\"")
    if code not in _DTYPES:
        raise CheckpointError(f"{corrupt}: tensor {_short(name)} has unknown dtype "
                              f"{_short(code)}. {_AGAIN}.")
    if not (isinstance(shape, list) and len(shape) <= 32
            and all(type(n) is int and n >= 0 for n in shape)):
        raise CheckpointError(f"{corrupt}: tensor {_short(name)} has shape {_short(shape)}, "
                              f"not a list of sizes. {_AGAIN}.")
    if not (isinstance(offsets, list) and len(offsets) == 2
            and all(type(n) is int for n in offsets) and 0 <= offsets[0] <= offsets[1]):
        raise CheckpointError(f"{corrupt}: tensor {_short(name)} has data_offsets "
                              f"{_short(offsets)}. {_AGAIN}.")
    dtype = _DTYPES[code]
    if offsets[1] - offsets[0] != math.prod(shape) * dtype.itemsize:
        raise CheckpointError(f"{corrupt}: tensor {_short(name)} of shape {shape} and dtype "
                              f"{code} does not take the {offsets[1] - offsets[0]:,} bytes its "
                              f"offsets give. {_AGAIN}.")
    if offsets[1] > available:
        raise CheckpointError(f"{corrupt}: tensor {_short(name)} ends at byte {offsets[1]:,} "
                              f"of the data, but only {available:,} bytes are there. "
                              f"{_AGAIN}.")
    return offsets[0], offsets[1], dtype, shape


# ---------------------------------------------------------------------- other formats
def _describe(path: Path, file: Any, head: bytes, size: int) -> str:
    """Say what a file that is not safetensors is, and how to get a safetensors file."""
    if size == 0:
        return (f"{path}: is empty (0 bytes): nothing was ever written to it, so it is not a "
                f"weights file. {_AGAIN}.")
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _describe_zip(path, file)
    if head[:1] == b"\x80" and head[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        return (f"{path}: a Python pickle (torch.save of PyTorch before 1.6, or pickle.dump), "
                "not safetensors. chainrule does not unpickle files, since loading a pickle "
                "can run code. If it holds a state_dict, convert it where you trust it: "
                + _torch_command(path))
    if head[:8] == b"\x89HDF\r\n\x1a\n":
        return (f"{path}: an HDF5 file (such as Keras .h5 weights), not safetensors; export "
                "the weights as safetensors from the program that wrote it")
    if head[:6] == b"\x93NUMPY":
        return (f"{path}: a single NumPy array (.npy, np.save), not a weights file of named "
                "arrays; save a dict of arrays with safetensors.numpy.save_file({'name': "
                "array}, 'out.safetensors')")
    if head[:2] == b"\x1f\x8b":
        return f"{path}: gzip-compressed; decompress it first (gunzip)"
    if head[:4] == b"GGUF":
        return f"{path}: a GGUF file (llama.cpp), not safetensors"
    text = _as_text(head)
    if text is not None:
        start = text.lstrip()
        if start.startswith("version https://git-lfs"):
            return (f"{path}: a Git LFS pointer, not the file itself; fetch the file with "
                    "'git lfs pull'")
        if start[:15].lower().startswith(("<!doctype html", "<html")):
            return (f"{path}: an HTML page (a failed download?), not a weights file; "
                    "download it again")
        kind = "a JSON file" if start[:1] in ("{", "[") else "a text file"
        first = start.splitlines()[0] if start else ""
        return (f"{path}: {kind} (it starts {_short(first, 40)}), not a safetensors "
                "weights file or checkpoint; give the .safetensors file")
    return (f"{path}: not a safetensors file, or a truncated or corrupt one (it starts with "
            f"bytes {head[:8].hex(' ')}). {_AGAIN}.")


def _describe_zip(path: Path, file: Any) -> str:
    try:
        file.seek(0)
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
    except Exception:  # noqa: BLE001 - any failure of a crafted zip means the same thing
        return (f"{path}: a zip archive that cannot be read (damaged?), not safetensors. "
                f"{_AGAIN}.")
    leaves = [name.rsplit("/", 1)[-1] for name in names]
    if "constants.pkl" in leaves or any("/code/" in f"/{name}" for name in names):
        return (f"{path}: a TorchScript file written by torch.jit.save, not safetensors; "
                "convert its weights with: python -c \"import torch, safetensors.torch as s; "
                "s.save_file({k: v.contiguous().clone() for k, v in torch.jit.load(%s)"
                ".state_dict().items()}, %s)\"" % _literals(path, "in.pt"))
    if "data.pkl" in leaves:
        return (f"{path}: a PyTorch file written by torch.save, not safetensors; convert it "
                "with: " + _torch_command(path) + " (if it holds a dict around the "
                "state_dict, index it first, e.g. torch.load(...)['model'])")
    if names and all(name.endswith(".npy") for name in names):
        return (f"{path}: a NumPy .npz archive (np.savez), not safetensors; convert it with: "
                "python -c \"import numpy as np, safetensors.numpy as s; "
                "s.save_file(dict(np.load(%s)), %s)\"" % _literals(path, "in.npz"))
    if "model.weights.h5" in leaves:
        return (f"{path}: a Keras .keras archive, not safetensors; export the weights as "
                "safetensors from Keras")
    listed = ", ".join(_short(name, 30) for name in names[:3]) + (", ..." if names[3:] else "")
    return f"{path}: a zip archive ({listed or 'empty'}), not a safetensors file"


def _torch_command(path: Path) -> str:
    return ("python -c \"import torch, safetensors.torch as s; s.save_file({k: "
            "v.contiguous().clone() for k, v in torch.load(%s, weights_only=True).items()}, "
            "%s)\"" % _literals(path, "in.pt"))


def _literals(path: Path, example: str) -> tuple[str, str]:
    """Python literals of the file and of its converted copy, safe in a double-quoted word."""
    out = (path.with_suffix(".safetensors") if path.suffix != ".safetensors"
           else path.with_name(path.stem + ".converted.safetensors"))
    if re.fullmatch(r"[\w./@:+,= -]+", str(path)) is None:  # quotes, $, ...: spell it out
        return f"'{example}'", "'out.safetensors'"
    return f"'{path}'", f"'{out}'"


def _as_text(head: bytes) -> str | None:
    if b"\x00" in head:
        return None
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as error:
        if error.start < len(head) - 3:  # not just a character cut at the end of the sample
            return None
        text = head[:error.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\t\r\n" for ch in text)
    return text if text and printable >= 0.95 * len(text) else None


# ---------------------------------------------------------------------- weights files
def _checked_names(state: Mapping[str, Any], owner: str) -> None:
    for name in state:
        if isinstance(name, str) and "/" in name:
            raise ValueError(f"{owner}: tensor name {name!r} has a '/', which chainrule "
                             "files keep for optimizer state; rename it")


def _warn_unverified(path: Any, reason: str) -> None:
    warnings.warn(f"{path}: {reason}", UnverifiedFileWarning, stacklevel=3)


_NO_CHECKSUM = ("has no chainrule checksum (written by an older chainrule or another "
                "program), so damage cannot be detected; loaded unverified. Saving it again "
                "with chainrule adds one")


def _damaged(path: Any, part: str, extra: str = "") -> ChecksumError:
    return ChecksumError(f"{path}: damaged: the checksum stored in it does not match its "
                         f"{part} (changed on disk or in a copy). It was not loaded and "
                         f"nothing was changed{extra}. {_AGAIN}.")


def save_weights(model_or_state: Any, path: str | os.PathLike) -> Path:
    """Write a model's state_dict (or a name -> array mapping) as a safetensors file."""
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") \
        else model_or_state
    if not isinstance(state, Mapping):
        raise TypeError(f"save_weights: expected a model or a name -> array mapping, got "
                        f"{type(state).__name__}")
    _checked_names(state, "save_weights")
    return _save_safetensors(path, state, {"format": WEIGHTS_FORMAT}, "save_weights")


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the model weights from a weights file or a checkpoint (checksum verified)."""
    tensors, metadata, verified = _load_safetensors(path)
    if verified is not None and not verified[0]:
        raise _damaged(path, "tensors" if verified[1] else "tensors and metadata")
    if verified is None:
        _warn_unverified(path, _NO_CHECKSUM)
    elif not verified[1]:
        _warn_unverified(path, "its metadata is damaged (it does not match the checksum); "
                               "the weights themselves verify and were loaded")
    if metadata.get("format") == CHECKPOINT_FORMAT:
        return {k: v for k, v in tensors.items() if not k.startswith("optimizer/")}
    return tensors


# ---------------------------------------------------------------------- checkpoints
def save_checkpoint(path: str | os.PathLike, model_state: Mapping[str, np.ndarray],
                    optimizer_arrays: Mapping[str, np.ndarray] | None = None,
                    info: Mapping[str, Any] | None = None) -> Path:
    """Write weights, optimizer arrays and JSON-able ``info`` into one safetensors file."""
    _checked_names(model_state, "save_checkpoint")
    tensors = dict(model_state)
    for name, array in (optimizer_arrays or {}).items():
        if not isinstance(name, str) or _OPTIMIZER_NAME.fullmatch(name) is None:
            raise ValueError(f"save_checkpoint: optimizer array name {_short(name)} is not "
                             "of the form 'state.<index>.<name>'")
        tensors[f"optimizer/{name}"] = np.asarray(array)
    try:
        text = json.dumps(dict(info or {}))
    except (TypeError, ValueError) as error:
        raise TypeError(f"save_checkpoint: info must be JSON-able ({error})") from None
    metadata = {"format": CHECKPOINT_FORMAT, "version": str(CHECKPOINT_VERSION), "info": text}
    return _save_safetensors(path, tensors, metadata, "save_checkpoint")


def load_checkpoint(path: str | os.PathLike, *, require: Collection[str] = ()
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Read (model_state, optimizer_arrays, info) written by ``save_checkpoint``.

    The checksum is verified and the info checked (``validate_checkpoint_info``, with the
    keys in ``require`` required); anything wrong raises CheckpointError naming the file.
    """
    tensors, metadata, verified = _load_safetensors(path)
    if verified is not None and not all(verified):
        if verified[0]:
            raise _damaged(path, "metadata (format, version, info JSON)", "; its weights "
                           "verify, so "
                           "chainrule.io.load_weights can still read them")
        raise _damaged(path, "tensors" if verified[1] else "tensors and metadata")
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a chainrule checkpoint (format {_short(metadata.get('format'))}); "
            "for a plain weights file use chainrule.io.load_weights"
        )
    version = metadata.get("version")
    if version is None or re.fullmatch(r"[1-9][0-9]{0,8}", version) is None:
        raise CheckpointError(f"{path}: checkpoint version {_short(version)} is not one "
                              "chainrule writes (a whole number such as '1'); the file was "
                              f"changed or not written by chainrule. {_AGAIN}.")
    if int(version) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {version} is newer than "
                              "this chainrule understands; upgrade chainrule")
    if "info" not in metadata:
        raise CheckpointError(f"{path}: the checkpoint has no 'info' metadata entry; it was "
                              f"changed or not written by chainrule. {_AGAIN}.")
    try:
        info = json.loads(metadata["info"], object_pairs_hook=_unique_object)
    except (ValueError, RecursionError) as error:
        raise CheckpointError(f"{path}: the checkpoint's info is not valid JSON ({error}). "
                              f"{_AGAIN}.") from None
    info = validate_checkpoint_info(info, path, require)  # only well-formed info leaves
    model_state, optimizer = {}, {}
    for name, array in tensors.items():
        if "/" not in name:
            model_state[name] = array
        elif name.startswith("optimizer/") and _OPTIMIZER_NAME.fullmatch(name[10:]):
            optimizer[name[10:]] = array
        else:
            raise CheckpointError(f"{path}: unexpected tensor {_short(name)}: a checkpoint "
                                  "holds model tensors (names without '/') and optimizer "
                                  "tensors named 'optimizer/state.<index>.<name>'")
    if verified is None:
        _warn_unverified(path, _NO_CHECKSUM)
    return model_state, optimizer, info


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def validate_checkpoint_info(info: Any, path: str | os.PathLike = "checkpoint",
                             require: Collection[str] = ()) -> dict[str, Any]:
    """Return ``info`` if it is well-formed checkpoint info; else raise CheckpointError.

    Checks the structure of the keys a Learner reads back (those present; an info holding
    any key a Learner writes must hold all of RESUME_KEYS), plus the keys in ``require``.
    """
    advice = f"; the file was changed or not written by chainrule. {_AGAIN}."

    def bad(key: str, expected: str, value: Any) -> CheckpointError:
        return CheckpointError(f"{path}: checkpoint info {key}: expected {expected}, got "
                               f"{_short(value)}{advice}")

    if not isinstance(info, dict):
        raise CheckpointError(f"{path}: checkpoint info: expected a JSON object, got "
                              f"{_short(info)}{advice}")
    required = {require} if isinstance(require, str) else set(require)
    if any(key in info for key in _LEARNER_KEYS):
        required.update(RESUME_KEYS)
    missing = sorted(key for key in required if key not in info)
    if missing:
        raise CheckpointError(f"{path}: checkpoint info lacks {', '.join(missing)}, which "
                              f"a Learner needs to resume{advice}")
    if "config" in info and not isinstance(info["config"], dict):
        raise bad("config", "an object", info["config"])
    for key in ("next_epoch", "step"):
        if key in info and not _is_count(info[key]):
            raise bad(key, "a whole number >= 0", info[key])
    if "history" in info:
        history = info["history"]
        if not isinstance(history, list):
            raise bad("history", "a list of objects", history)
        for i, row in enumerate(history):
            if not isinstance(row, dict):
                raise bad(f"history[{i}]", "an object", row)
            for key, value in row.items():
                if not (value is None or isinstance(value, (int, float, str))):
                    raise bad(f"history[{i}].{key}", "a number or string", value)
    if "recorder" in info:
        _check_recorder(info["recorder"], bad)
    if "optimizer" in info:
        _check_optimizer(info["optimizer"], bad)
    if info.get("scheduler") is not None:
        scheduler = info["scheduler"]
        if not isinstance(scheduler, dict):
            raise bad("scheduler", "an object or null", scheduler)
        if "last_epoch" in scheduler and not _is_count(scheduler["last_epoch"]):
            raise bad("scheduler.last_epoch", "a whole number >= 0", scheduler["last_epoch"])
        for key in ("base_lrs", "last_lr"):
            if key in scheduler and not (isinstance(scheduler[key], list)
                                         and all(map(_is_number, scheduler[key]))):
                raise bad(f"scheduler.{key}", "a list of numbers", scheduler[key])
    if info.get("generator") is not None:
        _check_generator(info["generator"], bad)
    return info


def _check_recorder(recorder: Any, bad: Callable[..., CheckpointError]) -> None:
    if not isinstance(recorder, dict):
        raise bad("recorder", "an object with lists losses, lrs and steps", recorder)
    for key, check, expected in (("losses", _is_number, "numbers"),
                                 ("lrs", _is_number, "numbers"),
                                 ("steps", _is_count, "whole numbers >= 0")):
        values = recorder.get(key)
        if not isinstance(values, list):
            raise bad(f"recorder.{key}", f"a list of {expected}", values)
        for i, value in enumerate(values):
            if not check(value):
                raise bad(f"recorder.{key}[{i}]", f"one of the {expected}", value)
    lengths = {len(recorder[key]) for key in ("losses", "lrs", "steps")}
    if len(lengths) > 1:
        raise bad("recorder", "lists losses, lrs and steps of one length",
                  {key: len(recorder[key]) for key in ("losses", "lrs", "steps")})


def _check_optimizer(optimizer: Any, bad: Callable[..., CheckpointError]) -> None:
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("param_groups"), list):
        raise bad("optimizer", "an object with a list param_groups", optimizer)
    for g, group in enumerate(optimizer["param_groups"]):
        if not isinstance(group, dict):
            raise bad(f"optimizer.param_groups[{g}]", "an object", group)
        params = group.get("params")
        if not isinstance(params, list) or not all(map(_is_count, params)):
            raise bad(f"optimizer.param_groups[{g}].params",
                      "a list of parameter indices (whole numbers >= 0)", params)


def _check_generator(state: Any, bad: Callable[..., CheckpointError]) -> None:
    from chainrule.engine import backend

    kind = type(backend.default_generator().bit_generator)
    if not isinstance(state, dict):
        raise bad("generator", f"a {kind.__name__} state object or null", state)
    try:
        kind().state = state  # a scratch generator: numpy checks the state, nothing changes
    except (TypeError, ValueError, KeyError, OverflowError):
        raise bad("generator", f"a {kind.__name__} state object or null", state) from None
