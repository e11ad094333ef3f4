"""Weights and checkpoints: safetensors that PyTorch reads, and writes that are atomic."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from chainrule import io, nn


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))


def test_pytorch_loads_saved_weights_into_the_equivalent_model(tmp_path) -> None:
    model = mlp()
    io.save_weights(model, tmp_path / "model.safetensors")
    twin = torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 3))
    twin.load_state_dict(load_file(tmp_path / "model.safetensors"))  # strict: every key fits
    x = np.random.default_rng(0).standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(twin(torch.from_numpy(x)).detach().numpy(),
                               model(x).data, rtol=1e-6, atol=1e-6)


def test_checkpoints_round_trip_weights_optimizer_arrays_and_info(tmp_path) -> None:
    model = mlp()
    arrays = {"state.0.exp_avg": np.arange(3.0)}
    io.save_checkpoint(tmp_path / "c.safetensors", model.state_dict(), arrays, {"epoch": 2})
    state, optimizer, info = io.load_checkpoint(tmp_path / "c.safetensors")
    assert info == {"epoch": 2}
    np.testing.assert_array_equal(optimizer["state.0.exp_avg"], np.arange(3.0))
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(state[key], value)
    assert set(io.load_weights(tmp_path / "c.safetensors")) == set(model.state_dict())


def test_a_crash_mid_write_leaves_the_old_file_and_no_debris(tmp_path, monkeypatch) -> None:
    path = tmp_path / "model.safetensors"
    io.save_weights(mlp(), path)
    before = path.read_bytes()

    def crash(file) -> None:
        file.write(b"half a file")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        io.atomic_write(path, crash)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


def test_an_interrupted_first_write_leaves_nothing(tmp_path) -> None:
    def interrupted(file) -> None:
        file.write(b"\x00" * 100)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        io.atomic_write(tmp_path / "c.safetensors", interrupted)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("cut", [4, 40, -3])
def test_truncated_files_are_refused_with_a_clear_error(tmp_path, cut: int) -> None:
    path = tmp_path / "c.safetensors"
    io.save_checkpoint(path, mlp().state_dict(), {}, {})
    path.write_bytes(path.read_bytes()[:cut])
    with pytest.raises(io.CheckpointError, match="truncated or corrupt"):
        io.load_checkpoint(path)


def test_a_weights_file_is_not_taken_for_a_checkpoint(tmp_path) -> None:
    io.save_weights(mlp(), tmp_path / "w.safetensors")
    with pytest.raises(io.CheckpointError, match="not a chainrule checkpoint"):
        io.load_checkpoint(tmp_path / "w.safetensors")
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load_checkpoint(tmp_path / "missing.safetensors")


def test_weights_of_another_architecture_name_the_mismatch(tmp_path) -> None:
    io.save_weights(mlp(), tmp_path / "w.safetensors")
    other = nn.Sequential(nn.Linear(6, 7), nn.ReLU(), nn.Linear(7, 3))
    with pytest.raises(ValueError, match=r"0.weight: checkpoint has shape \(5, 6\), model has "
                                         r"\(7, 6\)"):
        other.load_state_dict(io.load_weights(tmp_path / "w.safetensors"))


def test_written_files_get_ordinary_permissions(tmp_path) -> None:
    path = io.save_weights(mlp(), tmp_path / "w.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
