"""Weights and checkpoints as untrusted input: leftovers, damage, other formats, crafted files."""

from __future__ import annotations

import copy
import errno
import gzip
import hashlib
import json
import os
import re
import signal
import struct
import subprocess
import sys
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save_file as safetensors_save_file
from safetensors.torch import load_file as torch_load_file
from safetensors.torch import save_file as torch_save_file

import chainrule as cr
from chainrule import io, nn, optim
from chainrule.train import Learner

HEX12 = "0123456789ab"


def mlp() -> nn.Sequential:
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def folder_names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def quiet(function, *args):
    """Call function with UnverifiedFileWarning silenced (for crafted files without checksum)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", io.UnverifiedFileWarning)
        return function(*args)


# ---------------------------------------------------------------------- the checksum format
CODES = {np.dtype("float32"): "F32", np.dtype("float64"): "F64", np.dtype("int64"): "I64"}


def framed(digest, data: bytes) -> None:
    digest.update(struct.pack("<Q", len(data)) + data)


def documented_checksum(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> str:
    """The checksum as io's docs describe it, written independently of io."""
    tensor_part = hashlib.sha256()
    for name in sorted(tensors):
        array = np.asarray(tensors[name])
        framed(tensor_part, name.encode())
        framed(tensor_part, CODES[array.dtype].encode())
        framed(tensor_part, struct.pack(f"<{array.ndim}Q", *array.shape))
        framed(tensor_part, array.astype(array.dtype.newbyteorder("<")).tobytes())
    meta_part = hashlib.sha256()
    for key in sorted(k for k in metadata if k != "checksum"):
        framed(meta_part, key.encode())
        framed(meta_part, metadata[key].encode())
    return f"sha256:{tensor_part.hexdigest()}:{meta_part.hexdigest()}"


def write_checkpoint(path: Path, tensors: dict[str, np.ndarray], metadata: dict[str, str],
                     checksum: bool = True) -> Path:
    """A file as an attacker would write it: any metadata, with a valid checksum or none."""
    metadata = dict(metadata)
    if checksum:
        metadata["checksum"] = documented_checksum(tensors, metadata)
    safetensors_save_file(tensors, str(path), metadata=metadata)
    return path


def test_the_checksum_is_the_documented_one(tmp_path) -> None:
    state = mlp().state_dict()
    path = io.save_checkpoint(tmp_path / "c.safetensors", state,
                              {"state.0.exp_avg": np.ones(2)}, {"epoch": 1})
    tensors, metadata = read_raw(path)
    assert metadata["checksum"] == documented_checksum(tensors, metadata)


# ---------------------------------------------------------------------- temporary files
CHILD = r"""
import sys, time
from chainrule import io

def write(file):
    file.write(b"\x01" * 4_000_000)
    file.flush()
    print("writing", flush=True)
    time.sleep(60)

io.atomic_write(sys.argv[1], write)
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT])
def test_a_writer_killed_mid_write_leaves_the_old_file_and_the_next_write_cleans_up(
        tmp_path, how) -> None:
    target = tmp_path / "checkpoint.safetensors"
    target.write_bytes(b"the old checkpoint")
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(target)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "writing\n"
        temps = [p for p in tmp_path.iterdir() if p != target]
        assert len(temps) == 1 and re.fullmatch(
            rf"\.checkpoint\.safetensors\.{child.pid}\.[0-9a-f]{{12}}\.tmp", temps[0].name)
        assert temps[0].stat().st_size == 4_000_000
        child.send_signal(how)
        child.wait(timeout=20)
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert target.read_bytes() == b"the old checkpoint"  # never a half-written real file
    if how == signal.SIGINT:  # Python ran the clean-up itself
        assert folder_names(tmp_path) == ["checkpoint.safetensors"]
    else:
        assert len(folder_names(tmp_path)) == 2
    io.atomic_write(target, lambda file: file.write(b"new"))
    assert folder_names(tmp_path) == ["checkpoint.safetensors"]
    assert target.read_bytes() == b"new"


def test_leftovers_of_many_dead_writers_and_of_old_versions_go(tmp_path) -> None:
    target = tmp_path / "model.safetensors"
    gone = [dead_pid() for _ in range(3)]
    for i, pid in enumerate(gone):
        (tmp_path / f".model.safetensors.{pid}.{HEX12[:-1]}{i}.tmp").write_bytes(b"x" * 1000)
    old = tmp_path / ".model.safetensors.k2_9qzab.tmp"  # mkstemp naming of earlier versions
    old.write_bytes(b"old")
    hour_ago = time.time() - 3600
    os.utime(old, (hour_ago, hour_ago))
    young = tmp_path / ".model.safetensors.a1b2c3d4.tmp"  # may be an old version writing now
    young.write_bytes(b"young")
    io.save_weights(mlp(), target)
    assert folder_names(tmp_path) == [".model.safetensors.a1b2c3d4.tmp", "model.safetensors"]


def test_a_live_writers_temp_file_is_kept(tmp_path) -> None:
    target = tmp_path / "w.safetensors"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        live = [tmp_path / f".w.safetensors.{sleeper.pid}.{HEX12}.tmp",
                tmp_path / f".w.safetensors.{os.getppid()}.{HEX12}.tmp"]
        for path in live:
            path.write_bytes(b"being written")
        io.save_weights(mlp(), target)
        assert io.remove_stale_temp_files(target) == []
        assert all(path.read_bytes() == b"being written" for path in live)
    finally:
        sleeper.kill()
        sleeper.wait()
    assert io.remove_stale_temp_files(target) == [live[0]]  # once its writer is gone


def test_our_own_live_temp_file_is_kept_but_one_of_an_earlier_run_with_our_pid_goes(
        tmp_path) -> None:
    target = tmp_path / "w.safetensors"
    # A container restarts with the same pids: an earlier run's leftover has ours.
    earlier = tmp_path / f".w.safetensors.{os.getpid()}.{HEX12}.tmp"
    earlier.write_bytes(b"left by an earlier run")
    seen = []

    def write(file) -> None:
        file.write(b"data")
        seen.append(io.remove_stale_temp_files(target))  # a second writer's clean-up, now

    io.atomic_write(target, write)
    assert seen == [[]]  # it spared our temp file (the earlier one was gone already)
    assert not earlier.exists()
    assert target.read_bytes() == b"data"
    assert folder_names(tmp_path) == ["w.safetensors"]


def test_files_that_only_look_like_our_temp_files_are_kept(tmp_path) -> None:
    target = tmp_path / "m.safetensors"
    pid = dead_pid()
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "precious").write_text("keep me")
    lookalikes = [
        f".m.safetensors.{pid}.{HEX12}.tmp.bak", f".m.safetensors.{pid}.{HEX12[:-1]}.tmp",
        f".m.safetensors.{pid}.{HEX12.upper()}.tmp", f".m.safetensors.{pid}.{HEX12}0.tmp",
        f".m.safetensors.0.{HEX12}.tmp", f".m.safetensors.-{pid}.{HEX12}.tmp",
        f".m.safetensors.x{pid}.{HEX12}.tmp", f"m.safetensors.{pid}.{HEX12}.tmp",
        f".n.safetensors.{pid}.{HEX12}.tmp", f".m.safetensors.{pid}.{HEX12}.part",
        ".m.safetensors.abc.tmp", ".m.safetensors.ABCDEFGH.tmp", ".m.safetensors.tmp",
        f".m.safetensors.{pid}.{HEX12}.tmp.d", "notes.txt",
    ]
    hour_ago = time.time() - 3600
    for name in lookalikes:
        (tmp_path / name).write_text("not ours")
        os.utime(tmp_path / name, (hour_ago, hour_ago))
    link = tmp_path / f".m.safetensors.{pid}.{HEX12[::-1]}.tmp"
    link.symlink_to(outside / "precious")  # our pattern, but a link: not a file we made
    folder = tmp_path / f".m.safetensors.{pid}.{'c' * 12}.tmp"
    folder.mkdir()
    before = folder_names(tmp_path)
    io.save_weights(mlp(), target)
    assert folder_names(tmp_path) == sorted([*before, "m.safetensors"])
    assert (outside / "precious").read_text() == "keep me"


def test_the_temp_file_helpers_take_the_suffix_for_other_writers(tmp_path) -> None:
    target = tmp_path / "train-images.gz"
    pid = dead_pid()
    stale_part = tmp_path / f".train-images.gz.{pid}.{HEX12}.part"
    stale_tmp = tmp_path / f".train-images.gz.{pid}.{HEX12}.tmp"
    stale_part.write_bytes(b"half a download")
    stale_tmp.write_bytes(b"half a write")
    with io.temp_file(target, ".part") as (file, part):
        assert re.fullmatch(rf"\.train-images\.gz\.{os.getpid()}\.[0-9a-f]{{12}}\.part",
                            part.name)
        assert not stale_part.exists() and stale_tmp.exists()  # only its own suffix
        file.write(b"the download")
        file.close()
        os.replace(part, target)
    assert target.read_bytes() == b"the download"
    with pytest.raises(RuntimeError, match="failed"), io.temp_file(target, ".part") as (_, part):
        raise RuntimeError("failed")
    assert not part.exists()  # removed on the way out
    assert folder_names(tmp_path) == [stale_tmp.name, "train-images.gz"]
    for suffix in ("", "tmp", "./x", ".t/x", ".a b"):
        with pytest.raises(ValueError, match="suffix must look like '.tmp'"):
            io.remove_stale_temp_files(target, suffix)


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path) -> None:
    target = tmp_path / "c.safetensors"
    target.write_bytes(b"old")

    def full(file) -> None:
        file.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError, match=rf"{target}: not written \(No space left on device\); "
                                      r"the file already there, if any, is unchanged") as caught:
        io.atomic_write(target, full)
    assert caught.value.errno == errno.ENOSPC
    assert folder_names(tmp_path) == ["c.safetensors"] and target.read_bytes() == b"old"


def test_atomic_write_refuses_a_folder_and_odd_modes(tmp_path) -> None:
    with pytest.raises(IsADirectoryError, match=f"{tmp_path}: is a folder"):
        io.atomic_write(tmp_path, lambda file: file.write(b"x"))
    with pytest.raises(ValueError, match="mode must be 'wb' or 'w'"):
        io.atomic_write(tmp_path / "f", lambda file: None, mode="a")
    assert list(tmp_path.iterdir()) == []
    io.atomic_write(tmp_path / "t.json", lambda file: file.write('{"é": 1}'), mode="w")
    assert json.loads((tmp_path / "t.json").read_text("utf-8")) == {"é": 1}


# ---------------------------------------------------------------------- damage
def small_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    state = mlp().state_dict()
    arrays = {"state.0.exp_avg": np.full((3, 4), 0.5, np.float32),
              "state.0.step": np.asarray(3)}
    info = {"config": {"model": "mlp"}, "note": "ünïcode"}
    io.save_checkpoint(path, state, arrays, info)
    return state, arrays, info


def overwrite(path: Path, data: bytes) -> None:
    """Replace a file's bytes in place (far quicker than a new file, in a loop of thousands)."""
    handle = os.open(path, os.O_WRONLY)
    try:
        os.ftruncate(handle, len(data))
        os.pwrite(handle, data, 0)
    finally:
        os.close(handle)


def equal_tensors(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(
        a[k].dtype == b[k].dtype and a[k].shape == b[k].shape and np.array_equal(a[k], b[k])
        for k in a)


def test_a_flipped_byte_anywhere_is_refused_or_harmless(tmp_path) -> None:
    path = tmp_path / "c.safetensors"
    state, arrays, info = small_checkpoint(path)
    original = path.read_bytes()
    header_end = 8 + struct.unpack("<Q", original[:8])[0]
    outcomes = {"damaged": 0, "corrupt": 0, "harmless": 0}
    for position in range(len(original)):
        damaged = bytearray(original)
        damaged[position] ^= 1 << (position % 8)
        overwrite(path, damaged)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                loaded_state, loaded_arrays, loaded_info = io.load_checkpoint(path)
            except io.ChecksumError as error:
                assert str(path) in str(error) and "damaged" in str(error)
                assert "earlier copy" in str(error) and "not loaded" in str(error)
                outcomes["damaged"] += 1
                continue
            except io.CheckpointError as error:
                assert str(path) in str(error)
                assert position < header_end  # a damaged payload always fails the checksum
                outcomes["corrupt"] += 1
                continue
        # Loaded: only if the flip hit something that changes nothing, and said so.
        assert [w.category for w in caught] == [io.UnverifiedFileWarning]
        assert position < header_end
        assert equal_tensors(loaded_state, state) and equal_tensors(loaded_arrays, arrays)
        assert loaded_info == info
        outcomes["harmless"] += 1
    assert outcomes["damaged"] > len(original) - header_end
    assert outcomes["harmless"] <= 8  # at most the flips that rename the checksum entry


def test_a_flipped_byte_in_the_info_is_refused_but_the_weights_stay_readable(tmp_path) -> None:
    path = tmp_path / "c.safetensors"
    state, _, _ = small_checkpoint(path)
    data = path.read_bytes()
    position = data.index(b"note") + 1  # the info stays valid JSON: {"nite": ...}
    path.write_bytes(data[:position] + b"i" + data[position + 1:])
    with pytest.raises(io.ChecksumError, match=r"does not match its metadata \(format, "
                                               r"version, info JSON\).*load_weights can "
                                               r"still read them"):
        io.load_checkpoint(path)
    with pytest.warns(io.UnverifiedFileWarning, match="metadata is damaged.*weights.*verify"):
        weights = io.load_weights(path)
    assert equal_tensors(weights, state)


def test_a_flipped_byte_in_the_weights_is_refused_by_every_loader(tmp_path) -> None:
    path = io.save_weights(mlp(), tmp_path / "w.safetensors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10
    path.write_bytes(data)
    with pytest.raises(io.ChecksumError, match=rf"{path}: damaged: the checksum stored in it "
                                               r"does not match its tensors.*earlier copy"):
        io.load_weights(path)
    with pytest.raises(io.CheckpointError, match="damaged"):
        io.load_checkpoint(path)


def test_a_damaged_checkpoint_changes_nothing_in_the_learner(tmp_path) -> None:
    learner = tiny_learner()
    learner.fit(1)
    path = tmp_path / "c.safetensors"
    learner.save_checkpoint(path)
    fresh = tiny_learner(seed=5)
    before = {k: v.copy() for k, v in fresh.model.state_dict().items()}
    data = bytearray(path.read_bytes())
    # A byte in the middle of the tensors (past the JSON header, whose length leads the file):
    # the file still parses, and only the checksum can tell.
    start = 8 + int.from_bytes(data[:8], "little")
    data[(start + len(data)) // 2] ^= 0x04
    path.write_bytes(data)
    with pytest.raises(io.ChecksumError, match="not loaded and nothing was changed"):
        fresh.load_checkpoint(path)
    assert equal_tensors(fresh.model.state_dict(), before)
    assert fresh.next_epoch == 0 and fresh.history == []


def test_truncated_at_any_length_is_refused(tmp_path) -> None:
    path = tmp_path / "c.safetensors"
    small_checkpoint(path)
    original = path.read_bytes()
    for cut in range(len(original)):
        overwrite(path, original[:cut])
        with pytest.raises(io.CheckpointError, match=re.escape(str(path))):
            io.load_checkpoint(path)
    path.write_bytes(original + b"\x00")  # one byte too many is damage too
    with pytest.raises(io.CheckpointError, match="truncated or corrupt"):
        io.load_checkpoint(path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=4)),
                      min_size=1, max_size=4))
def test_random_edits_never_give_a_traceback_or_an_unannounced_change(tmp_path_factory,
                                                                      edits) -> None:
    path = tmp_path_factory.mktemp("edits") / "c.safetensors"
    state, arrays, info = small_checkpoint(path)
    data = bytearray(path.read_bytes())
    for position, replacement in edits:
        position %= len(data)
        data[position:position + len(replacement)] = replacement
    path.write_bytes(data)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = io.load_checkpoint(path)
        except io.CheckpointError as error:
            assert str(path) in str(error)
            return
    unchanged = (equal_tensors(loaded[0], state) and equal_tensors(loaded[1], arrays)
                 and loaded[2] == info)
    assert unchanged or [w.category for w in caught] == [io.UnverifiedFileWarning]


# ---------------------------------------------------------------------- files without checksum
def test_a_file_without_a_checksum_loads_with_one_warning(tmp_path) -> None:
    model = mlp()
    older = tmp_path / "older.safetensors"  # as chainrule wrote weights before checksums
    safetensors_save_file(model.state_dict(), str(older), metadata={"format": "chainrule-weights"})
    by_torch = tmp_path / "torch.safetensors"
    torch_save_file({k: torch.from_numpy(v) for k, v in model.state_dict().items()},
                    str(by_torch))
    for path in (older, by_torch):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            weights = io.load_weights(path)
        assert equal_tensors(weights, model.state_dict())
        assert len(caught) == 1 and caught[0].category is io.UnverifiedFileWarning
        message = str(caught[0].message)
        assert str(path) in message and "no chainrule checksum" in message
        assert "older chainrule" in message and "Saving it again" in message
        assert caught[0].filename == __file__  # points at the caller's line


def test_an_older_checkpoint_without_a_checksum_still_resumes(tmp_path) -> None:
    learner = tiny_learner()
    learner.fit(1)
    path = tmp_path / "c.safetensors"
    learner.save_checkpoint(path)
    tensors, metadata = read_raw(path)
    del metadata["checksum"]
    write_checkpoint(path, tensors, metadata, checksum=False)
    resumed = tiny_learner(seed=3)
    with pytest.warns(io.UnverifiedFileWarning, match="no chainrule checksum") as caught:
        resumed.load_checkpoint(path)
    assert len(caught) == 1
    assert resumed.next_epoch == 1 and resumed.history == learner.history
    assert equal_tensors(resumed.model.state_dict(), learner.model.state_dict())


def test_files_we_write_stay_readable_by_safetensors_and_torch(tmp_path) -> None:
    model = mlp()
    path = io.save_weights(model, tmp_path / "w.safetensors")
    twin = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    twin.load_state_dict(torch_load_file(str(path)))  # strict
    checkpoint = io.save_checkpoint(tmp_path / "c.safetensors", model.state_dict(), {}, {})
    assert set(torch_load_file(str(checkpoint))) == set(model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # our own files load without any note
        io.load_weights(path)
        io.load_checkpoint(checkpoint)


# ---------------------------------------------------------------------- other formats
def exec_command(message: str) -> None:
    """Run the python -c one-liner a message suggests (torch and numpy are imported here)."""
    code = re.search(r'python -c "(.*?)"', message)[1]
    exec(code, {})  # noqa: S102 - our own message, on our own test file


def test_a_torch_save_file_says_what_it_is_and_the_conversion_works(tmp_path, monkeypatch
                                                                    ) -> None:
    monkeypatch.chdir(tmp_path)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 2))
    model[0].weight.data = model[0].weight.data.t().contiguous().t()  # not contiguous
    torch.save(model.state_dict(), "model.pt")
    with pytest.raises(io.CheckpointError) as caught:
        io.load_weights("model.pt")
    message = str(caught.value)
    assert message.startswith("model.pt: a PyTorch file written by torch.save, not safetensors")
    exec_command(message)
    ours = mlp()
    ours.load_state_dict(quiet(io.load_weights, "model.safetensors"))
    np.testing.assert_array_equal(ours[0].weight.data, model[0].weight.detach().numpy())
    # The same file renamed to .safetensors: the suggestion must not overwrite it.
    os.replace("model.pt", "model.safetensors")
    with pytest.raises(io.CheckpointError, match="'model.converted.safetensors'"):
        io.load_checkpoint("model.safetensors")


def test_legacy_torch_save_and_pickles_are_named_and_never_unpickled(tmp_path, monkeypatch
                                                                      ) -> None:
    monkeypatch.chdir(tmp_path)
    torch.save({"w": torch.ones(2)}, "old.pt", _use_new_zipfile_serialization=False)
    Path("evil.pkl").write_bytes(b"\x80\x04cos\nsystem\n(S'touch pwned'\ntR.")
    for name in ("old.pt", "evil.pkl"):
        with pytest.raises(io.CheckpointError, match=rf"{name}: a Python pickle .*does not "
                                                     r"unpickle.*weights_only=True"):
            io.load_weights(name)
    assert not Path("pwned").exists()
    with pytest.raises(io.CheckpointError) as caught:
        io.load_weights("old.pt")
    exec_command(str(caught.value))
    assert np.array_equal(quiet(io.load_weights, "old.safetensors")["w"], np.ones(2))


@pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")
def test_torchscript_npz_and_other_zips_are_named(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), "script.pt")
    with pytest.raises(io.CheckpointError, match="script.pt: a TorchScript file") as caught:
        io.load_weights("script.pt")
    exec_command(str(caught.value))
    assert set(quiet(io.load_weights, "script.safetensors")) == {"weight", "bias"}
    np.savez("arrays.npz", w=np.arange(3.0))
    with pytest.raises(io.CheckpointError, match=r"arrays.npz: a NumPy .npz archive") as caught:
        io.load_weights("arrays.npz")
    exec_command(str(caught.value))
    assert np.array_equal(quiet(io.load_weights, "arrays.safetensors")["w"], np.arange(3.0))
    with zipfile.ZipFile("other.zip", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(io.CheckpointError, match=r"other.zip: a zip archive \('readme.txt'\), "
                                                 "not a safetensors file"):
        io.load_weights("other.zip")
    Path("broken.zip").write_bytes(b"PK\x03\x04" + b"\x00" * 40)
    with pytest.raises(io.CheckpointError, match="broken.zip: a zip archive that cannot be "
                                                 "read"):
        io.load_weights("broken.zip")


@pytest.mark.parametrize(("content", "expected"), [
    (b"", r"is empty \(0 bytes\)"),
    (b"\x89HDF\r\n\x1a\n" + b"\x00" * 100, "an HDF5 file"),
    (b"\x93NUMPY\x01\x00" + b"\x00" * 100, "a single NumPy array"),
    (gzip.compress(b"x" * 100), "gzip-compressed"),
    (b"GGUF\x03\x00\x00\x00" + b"\x00" * 32, "a GGUF file"),
    (b"version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n",
     "a Git LFS pointer.*git lfs pull"),
    (b"<!DOCTYPE html><html><body>Not Found</body></html>", "an HTML page"),
    (b'{"config": {"model": 1}, "history": []}', "a JSON file .*give the .safetensors file"),
    (b'{"a": {"b": 1}}\n' * 3, "a JSON file"),  # its ninth byte is '{'
    (b"epoch,loss\n1,0.5\n", "a text file"),
    (b"\x01\x02", "truncated or corrupt"),
    (struct.pack("<Q", 5000) + b'{"x": 1}', r"truncated or corrupt.*says 5,000 bytes"),
    (struct.pack("<Q", 2**40) + b"{" + b"\x00" * 20, "truncated or corrupt"),
    (bytes(range(256)) * 2, "not a safetensors file, or a truncated or corrupt one"),
])
def test_a_file_that_is_not_safetensors_says_what_it_is(tmp_path, content, expected) -> None:
    path = tmp_path / "c.safetensors"
    path.write_bytes(content)
    for load in (io.load_weights, io.load_checkpoint):
        with pytest.raises(io.CheckpointError, match=rf"^{re.escape(str(path))}: .*{expected}"):
            load(path)


def test_paths_that_are_not_files(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    io.save_weights(mlp(), run / "model.safetensors")
    with pytest.raises(io.CheckpointError, match=rf"{run}: is a folder, not a file \(it holds "
                                                 r"model.safetensors\)"):
        io.load_weights(run)
    with pytest.raises(FileNotFoundError, match="no such file"):
        io.load_weights(tmp_path / "missing.safetensors")
    with pytest.raises(io.CheckpointError, match="not a regular file"):
        io.load_weights("/dev/null")
    with pytest.raises(io.CheckpointError, match="cannot be read"):
        io.load_weights("a\0b")


# ---------------------------------------------------------------------- crafted headers
def raw_file(path: Path, header: dict | bytes, data: bytes = b"") -> Path:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(text)) + text + data)
    return path


@pytest.mark.parametrize(("header", "data", "expected"), ids=lambda v: repr(v)[:40], argvalues=[
    (b"{not json", b"", "header is not valid JSON"),
    (b"{\xff\xfe}", b"", "header is not valid JSON"),
    (b'{"a": 1, "a": 2}', b"", "duplicate key"),
    (b"[" * 2 + b"]" * 2, b"", "not a safetensors file, or a truncated or corrupt one"),
    (b"{" + b'"a":[' * 50_000 + b"]" * 50_000 + b"}", b"", "JSON"),
    ({"__metadata__": {"format": 1}}, b"", "__metadata__ is not an object of strings"),
    ({"__metadata__": ["x"]}, b"", "__metadata__ is not an object of strings"),
    ({"w": [1, 2]}, b"", "lacks dtype, shape or data_offsets"),
    ({"w": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4,
     "unknown dtype 'F99'"),
    ({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
    ({"w": {"dtype": "F32", "shape": "4", "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
    ({"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
    ({"w": {"dtype": "F32", "shape": [1] * 40, "data_offsets": [0, 4]}}, b"\0" * 4, "shape"),
    ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4,
     "does not take the 4 bytes"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, b"\0" * 4, "data_offsets"),
    ({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"", "ends at byte 4"),
    ({"w": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 4]}}, b"\0" * 4,
     "does not take"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8,
     "do not follow on"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, b"\0" * 8,
     "do not follow on"),
    ({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 8,
     "take 4 bytes after the header, but 8 are there"),
])
def test_a_crafted_header_is_refused_with_a_clear_error(tmp_path, header, data, expected
                                                        ) -> None:
    path = raw_file(tmp_path / "c.safetensors", header, data)
    with pytest.raises(io.CheckpointError, match=rf"^{re.escape(str(path))}: .*{expected}"):
        io.load_weights(path)


@pytest.mark.parametrize(("dtype", "expected"), [
    (torch.bfloat16, "dtype BF16, which NumPy cannot hold; convert the file to float32"),
    (torch.float8_e4m3fn, "dtype F8_E4M3, which NumPy cannot hold"),
    (torch.complex64, "is complex; a model's weights are real"),
])
def test_tensors_numpy_or_a_model_cannot_hold_are_refused(tmp_path, dtype, expected) -> None:
    path = tmp_path / "w.safetensors"
    torch_save_file({"w": torch.zeros(2, dtype=dtype)}, str(path))
    with pytest.raises(io.CheckpointError, match=rf"{path}: tensor 'w' .*{expected}"):
        io.load_weights(path)


def test_integer_bool_and_half_tensors_load_as_they_are(tmp_path) -> None:
    arrays = {"h": np.ones(2, np.float16), "b": np.array([True, False]),
              "u": np.array([2**64 - 1], np.uint64), "i": np.array([-3], np.int8)}
    path = io.save_weights(arrays, tmp_path / "w.safetensors")
    assert equal_tensors(io.load_weights(path), arrays)


# ---------------------------------------------------------------------- crafted metadata
def read_raw(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    from safetensors import safe_open
    with safe_open(str(path), framework="numpy") as file:
        return ({name: file.get_tensor(name) for name in file.keys()},  # noqa: SIM118
                dict(file.metadata()))


def tiny_learner(seed: int = 0) -> Learner:
    cr.manual_seed(seed)
    model = nn.Sequential(nn.Linear(3, 2))
    rng = np.random.default_rng(0)
    batches = [(rng.standard_normal((4, 3)).astype(np.float32), np.array([0, 1, 0, 1]))]
    scheduler_optimizer = optim.Adam(model.parameters(), lr=0.01)
    scheduler = optim.StepLR(scheduler_optimizer, step_size=1)
    return Learner(model, batches, scheduler_optimizer, scheduler=scheduler,
                   config={"model": "tiny"})


@pytest.fixture(scope="module")
def learner_file(tmp_path_factory) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    learner = tiny_learner()
    learner.fit(1)
    path = tmp_path_factory.mktemp("learner") / "c.safetensors"
    learner.save_checkpoint(path)
    return read_raw(path)


def crafted(tmp_path: Path, learner_file, change) -> Path:
    """The Learner's checkpoint with ``change(metadata, info)`` applied, checksum valid."""
    tensors, metadata = copy.deepcopy(learner_file)
    info = json.loads(metadata["info"])
    change(metadata, info)
    return write_checkpoint(tmp_path / "c.safetensors", tensors, metadata)


def set_info(key_path: str, value):
    def change(metadata, info):
        target = info
        *parents, last = key_path.split(".")
        for key in parents:
            target = target[key]
        if value is DELETE:
            del target[last]
        else:
            target[last] = value
        metadata["info"] = json.dumps(info)
    return change


def set_meta(key: str, value):
    def change(metadata, info):
        if value is DELETE:
            del metadata[key]
        else:
            metadata[key] = value
    return change


DELETE = object()


@pytest.mark.parametrize(("change", "expected"), [
    (set_meta("format", DELETE), "not a chainrule checkpoint \\(format None\\)"),
    (set_meta("format", "chainrule-weights"), "not a chainrule checkpoint.*load_weights"),
    (set_meta("format", "x" * 10_000), "not a chainrule checkpoint \\(format 'xxx"),
    (set_meta("version", "abc"), "checkpoint version 'abc' is not one chainrule writes"),
    (set_meta("version", "-1"), "checkpoint version '-1' is not one"),
    (set_meta("version", "1e9"), "checkpoint version '1e9' is not one"),
    (set_meta("version", "0"), "checkpoint version '0' is not one"),
    (set_meta("version", "١"), "checkpoint version '١' is not one"),
    (set_meta("version", DELETE), "checkpoint version None is not one"),
    (set_meta("version", "2"), "version 2 is newer than this chainrule understands; upgrade"),
    (set_meta("info", DELETE), "no 'info' metadata entry"),
    (set_meta("info", "{not json"), "info is not valid JSON"),
    (set_meta("info", "[" * 100_000), "info is not valid JSON"),
    (set_meta("info", '{"a": 1, "a": 2}'), "info is not valid JSON \\(duplicate key 'a'\\)"),
    (set_meta("info", "1" * 5000), "info is not valid JSON"),
    (set_meta("info", "[1, 2]"), "checkpoint info: expected a JSON object, got \\[1, 2\\]"),
    (set_meta("info", "null"), "checkpoint info: expected a JSON object, got None"),
    (set_info("config", ["mlp"]), "checkpoint info config: expected an object"),
    (set_info("next_epoch", -1), "next_epoch: expected a whole number >= 0, got -1"),
    (set_info("next_epoch", "3"), "next_epoch: expected a whole number >= 0, got '3'"),
    (set_info("next_epoch", 1.5), "next_epoch: expected a whole number"),
    (set_info("next_epoch", True), "next_epoch: expected a whole number"),
    (set_info("next_epoch", DELETE), "info lacks next_epoch, which a Learner needs"),
    (set_info("step", None), "step: expected a whole number >= 0, got None"),
    (set_info("optimizer", DELETE), "info lacks optimizer"),
    (set_info("history", {}), "history: expected a list of objects"),
    (set_info("history", [1]), "history\\[0\\]: expected an object, got 1"),
    (set_info("history", [{"epoch": [0]}]), "history\\[0\\].epoch: expected a number or string"),
    (set_info("recorder", []), "recorder: expected an object with lists losses, lrs and steps"),
    (set_info("recorder.losses", "0.5"), "recorder.losses: expected a list of numbers"),
    (set_info("recorder.lrs", DELETE), "recorder.lrs: expected a list of numbers, got None"),
    (set_info("recorder.losses", ["x"]), "recorder.losses\\[0\\]: expected one of the numbers"),
    (set_info("recorder.steps", [-1]), "recorder.steps\\[0\\]: expected one of the whole"),
    (set_info("recorder.steps", []), "lists losses, lrs and steps of one length"),
    (set_info("optimizer", []), "optimizer: expected an object with a list param_groups"),
    (set_info("optimizer.param_groups", {}), "optimizer: expected an object with a list"),
    (set_info("optimizer.param_groups", [5]), "optimizer.param_groups\\[0\\]: expected an "
                                              "object"),
    (set_info("optimizer.param_groups", [{"lr": 1}]), "param_groups\\[0\\].params: expected a "
                                                      "list of parameter indices"),
    (set_info("optimizer.param_groups", [{"params": ["a"]}]), "params: expected a list"),
    (set_info("scheduler", []), "scheduler: expected an object or null"),
    (set_info("scheduler.base_lrs", "x"), "scheduler.base_lrs: expected a list of numbers"),
    (set_info("scheduler.last_epoch", -2), "scheduler.last_epoch: expected a whole number"),
    (set_info("generator", "seed"), "generator: expected a PCG64 state object or null"),
    (set_info("generator", {}), "generator: expected a PCG64 state object"),
    (set_info("generator.bit_generator", "MT19937"), "generator: expected a PCG64 state"),
    (set_info("generator.state", {"state": "x", "inc": 1}), "generator: expected a PCG64"),
])
def test_crafted_metadata_is_refused_naming_the_key(tmp_path, learner_file, change, expected
                                                    ) -> None:
    path = crafted(tmp_path, learner_file, change)
    with pytest.raises(io.CheckpointError, match=rf"^{re.escape(str(path))}: .*{expected}"):
        io.load_checkpoint(path)
    learner = tiny_learner(seed=4)
    with pytest.raises(io.CheckpointError, match=expected):
        learner.load_checkpoint(path)
    assert learner.next_epoch == 0 and learner.history == []


def test_the_learners_own_checkpoint_passes_and_resumes(tmp_path, learner_file) -> None:
    path = crafted(tmp_path, learner_file, lambda metadata, info: None)
    learner = tiny_learner(seed=4)
    info = learner.load_checkpoint(path)
    assert learner.next_epoch == 1 and info["config"] == {"model": "tiny"}
    assert io.validate_checkpoint_info(info, path) is info


def test_validate_checkpoint_info_requires_what_it_is_told(tmp_path) -> None:
    assert io.validate_checkpoint_info({"epoch": 2}) == {"epoch": 2}
    with pytest.raises(io.CheckpointError, match="x.safetensors: checkpoint info lacks "
                                                 "history, next_epoch, optimizer, recorder, "
                                                 "step"):
        io.validate_checkpoint_info({"epoch": 2}, "x.safetensors", io.RESUME_KEYS)
    path = io.save_checkpoint(tmp_path / "c.safetensors", {}, {}, {"epoch": 2})
    with pytest.raises(io.CheckpointError, match="lacks next_epoch"):
        io.load_checkpoint(path, require=["next_epoch"])


@pytest.mark.parametrize("name", [
    "optimizer/state.x.exp_avg", "optimizer/state.01.exp_avg", "optimizer/state.1.exp-avg",
    "optimizer/state.1", "optimizer/foo", "optimizer/state.١.m", "encoder/layer.weight",
    "optimizer/state.1.m/x",
])
def test_unexpected_tensor_names_are_refused(tmp_path, learner_file, name) -> None:
    tensors, metadata = copy.deepcopy(learner_file)
    tensors[name] = np.zeros(1, np.float32)
    path = write_checkpoint(tmp_path / "c.safetensors", tensors, metadata)
    with pytest.raises(io.CheckpointError, match=rf"{path}: unexpected tensor "
                                                 rf"{re.escape(repr(name))}.*'optimizer/state"
                                                 r"\.<index>\.<name>'"):
        io.load_checkpoint(path)


def test_a_foreign_file_keeps_its_names_for_load_state_dict_to_report(tmp_path) -> None:
    path = tmp_path / "w.safetensors"
    safetensors_save_file({"encoder/w": np.zeros(2, np.float32)}, str(path))
    assert set(quiet(io.load_weights, path)) == {"encoder/w"}  # not silently dropped
    with pytest.raises(ValueError, match="unexpected keys: encoder/w"):
        mlp().load_state_dict(quiet(io.load_weights, path))


# ---------------------------------------------------------------------- what is written
def test_what_a_file_cannot_hold_is_refused_before_anything_is_written(tmp_path) -> None:
    path = tmp_path / "c.safetensors"
    with pytest.raises(TypeError, match="info must be JSON-able"):
        io.save_checkpoint(path, {}, {}, {"x": object()})
    with pytest.raises(ValueError, match="optimizer array name 'exp_avg' is not of the form"):
        io.save_checkpoint(path, {}, {"exp_avg": np.zeros(1)}, {})
    with pytest.raises(ValueError, match="tensor name 'a/b' has a '/'"):
        io.save_weights({"a/b": np.zeros(1)}, path)
    with pytest.raises(TypeError, match="tensor 'c' has dtype complex64"):
        io.save_weights({"c": np.zeros(1, np.complex64)}, path)
    with pytest.raises(TypeError, match="tensor 'o' has dtype object"):
        io.save_weights({"o": np.array([None])}, path)
    with pytest.raises(TypeError, match="expected a model or a name -> array mapping"):
        io.save_weights([np.zeros(1)], path)
    assert list(tmp_path.iterdir()) == []


def test_big_endian_arrays_round_trip(tmp_path) -> None:
    array = np.arange(6, dtype=">f4").reshape(2, 3)
    path = io.save_weights({"w": array}, tmp_path / "w.safetensors")
    loaded = io.load_weights(path)["w"]
    assert loaded.dtype == np.float32 and np.array_equal(loaded, array)
    assert np.array_equal(torch_load_file(str(path))["w"].numpy(), array)


def test_a_big_file_round_trips_verified_and_one_changed_byte_in_it_is_caught(tmp_path
                                                                              ) -> None:
    arrays = {f"layer{i}": np.random.default_rng(i).standard_normal(250_000).astype(np.float32)
              for i in range(4)}
    path = io.save_weights(arrays, tmp_path / "big.safetensors")
    assert equal_tensors(io.load_weights(path), arrays)
    data = bytearray(path.read_bytes())
    data[len(data) - 123_457] ^= 0x01  # the lowest bit of one number
    overwrite(path, data)
    with pytest.raises(io.ChecksumError, match="does not match its tensors"):
        io.load_weights(path)
