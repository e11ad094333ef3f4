"""The IDX reader and the bundled MNIST sample."""

from __future__ import annotations

import gzip
import hashlib
import struct

import numpy as np
import pytest

from chainrule.data import IDXError, load_mnist_sample, parse_idx, read_idx, sample_dir

SAMPLE_SHA256 = {  # from the sample's README
    "train-images-idx3-ubyte.gz":
        "4a25577e160b34d9acef12fb1fee3e3dc20a1a51a625712d0812807e373bb4e4",
    "train-labels-idx1-ubyte.gz":
        "861578a25714022dda530c0a9aa5459b8d501fb47ad44038bf1704ec86382bb6",
    "t10k-images-idx3-ubyte.gz":
        "cef1de9cab7553f7d89413c88a23e8a0d0ac4021f8fe146671eb61f6d137629f",
    "t10k-labels-idx1-ubyte.gz":
        "471016732c2596aa42c35893544847ada0eeb0fdfe8ddf87e6e1180f200e45cf",
}


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = bytes([0, 0, code, array.ndim]) + b"".join(struct.pack(">I", n) for n in array.shape)
    return header + array.tobytes()


def test_the_bundled_sample_is_intact_and_attributed() -> None:
    for name, digest in SAMPLE_SHA256.items():
        assert hashlib.sha256((sample_dir() / name).read_bytes()).hexdigest() == digest, name
    assert "CC BY-SA 3.0" in (sample_dir() / "README.md").read_text()


def test_the_bundled_sample_has_the_documented_shapes_and_classes() -> None:
    (x_train, y_train), (x_test, y_test) = load_mnist_sample()
    assert x_train.shape == (8000, 784) and x_test.shape == (2000, 784)
    assert x_train.dtype == np.float32 and 0 <= x_train.min() and x_train.max() <= 1
    assert np.bincount(y_train).tolist() == [808, 885, 800, 794, 780, 684, 815, 875, 775, 784]
    assert np.bincount(y_test).tolist() == [193, 242, 191, 238, 200, 179, 199, 195, 169, 194]
    (raw, _), _ = load_mnist_sample(flatten=False, normalize=False)
    assert raw.shape == (8000, 28, 28) and raw.dtype == np.uint8


@pytest.mark.parametrize("array, code", [
    (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), 0x08),
    (np.array([-1, 2], dtype=np.int8), 0x09),
    (np.array([[1.5, -2.0]], dtype=">f4"), 0x0D),
    (np.array([70000, -3], dtype=">i4"), 0x0C),
])
def test_idx_round_trips_every_type(array: np.ndarray, code: int, tmp_path) -> None:
    raw = idx_bytes(array, code)
    np.testing.assert_array_equal(parse_idx(raw), array)
    (tmp_path / "plain").write_bytes(raw)
    (tmp_path / "packed.gz").write_bytes(gzip.compress(raw))
    np.testing.assert_array_equal(read_idx(tmp_path / "plain"), array)
    np.testing.assert_array_equal(read_idx(tmp_path / "packed.gz"), array)
    assert read_idx(tmp_path / "plain").dtype.isnative


def test_bad_idx_files_get_clear_errors(tmp_path) -> None:
    good = idx_bytes(np.zeros((2, 2), np.uint8))
    with pytest.raises(IDXError, match="magic number .* is not IDX"):
        parse_idx(b"\x1f\x8b\x08\x00" + good[4:], "x")
    with pytest.raises(IDXError, match="truncated"):
        parse_idx(good[:-1], "x")
    with pytest.raises(IDXError, match="trailing bytes"):
        parse_idx(good + b"\x00", "x")
    with pytest.raises(IDXError, match="too short"):
        parse_idx(b"\x00", "x")
    broken = tmp_path / "broken.gz"
    broken.write_bytes(gzip.compress(good)[:-6])
    with pytest.raises(IDXError, match="corrupt gzip"):
        read_idx(broken)
