"""Saving and loading: weights and checkpoints in safetensors, every write atomic.

A file is written to a temporary name in the same folder, flushed to disk, then renamed over
the target (rename is atomic on POSIX and Windows): a crash leaves either the old file or the
new one, never a half-written file under the real name.

Weights files hold a model's state_dict under PyTorch's names and layout, so
``torch_model.load_state_dict(safetensors.torch.load_file(path))`` works unchanged.
Checkpoints add the optimizer state (tensors named ``optimizer/...``; a slash never occurs in
a parameter name) and JSON metadata (model recipe, hyper-parameters, epoch, history).
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

CHECKPOINT_FORMAT = "chainrule-checkpoint"
CHECKPOINT_VERSION = 1


class CheckpointError(ValueError):
    """A file that is not a valid chainrule checkpoint or weights file."""


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb"
                 ) -> Path:
    """Call ``write(file)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, mode) as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temp_name, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        os.replace(temp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return path


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _save_safetensors(path: str | os.PathLike, tensors: Mapping[str, np.ndarray],
                      metadata: Mapping[str, str] | None = None) -> Path:
    from safetensors.numpy import save

    # (np.ascontiguousarray would turn a 0-d array into shape (1,).)
    arrays = {name: array if array.flags.c_contiguous else np.ascontiguousarray(array)
              for name, array in ((k, np.asarray(v)) for k, v in tensors.items())}
    payload = save(arrays, metadata=dict(metadata) if metadata else None)
    return atomic_write(path, lambda file: file.write(payload))


def _load_safetensors(path: str | os.PathLike) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    try:
        with safe_open(str(path), framework="numpy") as file:
            metadata = file.metadata() or {}
            tensors = {name: file.get_tensor(name) for name in file.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path}: not a readable safetensors file ({error}); it may be truncated or "
            "corrupt. Use an earlier checkpoint or train again."
        ) from None
    return tensors, metadata


def save_weights(model_or_state: Any, path: str | os.PathLike) -> Path:
    """Write a model's state_dict (or a name -> array mapping) as a safetensors file."""
    state = model_or_state.state_dict() if hasattr(model_or_state, "state_dict") \
        else model_or_state
    return _save_safetensors(path, state, {"format": "chainrule-weights"})


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read the model weights from a weights file or a checkpoint."""
    tensors, _ = _load_safetensors(path)
    return {name: array for name, array in tensors.items() if "/" not in name}


def save_checkpoint(path: str | os.PathLike, model_state: Mapping[str, np.ndarray],
                    optimizer_arrays: Mapping[str, np.ndarray] | None = None,
                    info: Mapping[str, Any] | None = None) -> Path:
    """Write weights, optimizer arrays and JSON-able ``info`` into one safetensors file."""
    tensors = dict(model_state)
    for name, array in (optimizer_arrays or {}).items():
        tensors[f"optimizer/{name}"] = np.asarray(array)
    metadata = {"format": CHECKPOINT_FORMAT, "version": str(CHECKPOINT_VERSION),
                "info": json.dumps(info or {})}
    return _save_safetensors(path, tensors, metadata)


def load_checkpoint(path: str | os.PathLike
                    ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """Read (model_state, optimizer_arrays, info) written by ``save_checkpoint``."""
    tensors, metadata = _load_safetensors(path)
    if metadata.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"{path}: not a chainrule checkpoint (format {metadata.get('format')!r}); for a "
            "plain weights file use chainrule.io.load_weights"
        )
    if int(metadata.get("version", 0)) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: checkpoint version {metadata['version']} is newer than "
                              "this chainrule understands; upgrade chainrule")
    model_state = {k: v for k, v in tensors.items() if "/" not in k}
    prefix = "optimizer/"
    optimizer = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    return model_state, optimizer, json.loads(metadata.get("info", "{}"))
