"""Where datasets come from: the search path, verified downloads, and the safe pickle reader.

Every test runs with HOME, XDG_CACHE_HOME and the system data folder moved into tmp_path, the
chainrule variables cleared, and name resolution limited to the loopback address: nothing here
can reach the real network or the real ~/.cache.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import os
import pickle
import re
import socket
import struct
import subprocess
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from chainrule.data import (
    FASHION_CLASSES,
    DatasetNotFoundError,
    DownloadError,
    IDXError,
    Mirror,
    SafeUnpickler,
    UnsafePickleError,
    download_file,
    load_dataset,
    load_mnist_sample,
    read_mnist_pkl,
    sample_dir,
    search_paths,
)
from chainrule.data import datasets as datasets_module
from chainrule.data import download as download_module

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SAMPLE = {name: (sample_dir() / name).read_bytes() for name in FILES}
SAMPLE_SHA256 = {name: hashlib.sha256(raw).hexdigest() for name, raw in SAMPLE.items()}


# ------------------------------------------------------------------------------------------
# Isolation and a local mirror

@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private HOME, cache and system folder; no chainrule or proxy variables; loopback only."""
    for var in ("CHAINRULE_DATA", "CHAINRULE_DOWNLOAD", "CHAINRULE_MIRROR", "http_proxy",
                "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets_module, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(download_module, "TIMEOUT_S", 5.0)
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            raise OSError(f"test isolation: refused to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return tmp_path


class _Handler(http.server.BaseHTTPRequestHandler):
    """/good/<file> serves it; /truncated/<file> stops halfway; anything else is a 404."""

    timeout = 5
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        _, mode, name = [*self.path.split("/", 2), "", ""][:3]
        body = SAMPLE.get(name)
        if body is None or mode not in ("good", "truncated"):
            self.send_error(404, "no such file")
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body if mode == "good" else body[: len(body) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture()
def server() -> Iterator[tuple[str, list[str]]]:
    """A mirror on 127.0.0.1 (ephemeral port), with the log of request paths it received."""
    requests: list[str] = []
    handler = type("Handler", (_Handler,), {"requests": requests})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def cache_of(tmp_path: Path, name: str = "mnist") -> Path:
    return tmp_path / "cache" / "chainrule" / name


def listing(folder: Path) -> list[str]:
    """Every entry in ``folder``, hidden ones too (a stray .part file must show up)."""
    return sorted(os.listdir(folder)) if folder.exists() else []


# ------------------------------------------------------------------------------------------
# Downloads

def test_download_verifies_and_saves_into_the_cache(server, tmp_path) -> None:
    url, requests = server
    splits = load_dataset("mnist", download=True, mirror=Mirror(url + "/good", SAMPLE_SHA256))
    target = cache_of(tmp_path)
    assert listing(target) == sorted(FILES)
    for name in FILES:
        assert (target / name).read_bytes() == SAMPLE[name]
    assert splits.root == target and splits.classes == tuple("0123456789")
    (x_train, y_train), (x_test, y_test) = load_mnist_sample(flatten=False, normalize=False)
    for got, want in ((splits.train.x, x_train), (splits.train.y, y_train),
                      (splits.test.x, x_test), (splits.test.y, y_test)):
        np.testing.assert_array_equal(got, want)
    assert splits.train.x.dtype == np.uint8 and splits.train.y.dtype == np.int64
    assert len(requests) == 4
    load_dataset("mnist", download=True, mirror=Mirror(url + "/good", SAMPLE_SHA256))
    assert len(requests) == 4, "the cached copy is used, nothing is fetched again"


def test_download_goes_into_root_when_one_is_given(server, tmp_path) -> None:
    url, _ = server
    root = tmp_path / "mine"
    splits = load_dataset("mnist", root=root, download=True,
                          mirror=Mirror(url + "/good", SAMPLE_SHA256))
    assert splits.root == root and listing(root) == sorted(FILES)
    assert listing(cache_of(tmp_path)) == []


def test_published_checksums_reject_a_mirror_serving_other_files(server, tmp_path,
                                                                  monkeypatch) -> None:
    url, requests = server
    monkeypatch.setenv("CHAINRULE_DOWNLOAD", "1")
    monkeypatch.setenv("CHAINRULE_MIRROR", url + "/good")
    with pytest.raises(DownloadError, match="sha256 mismatch") as caught:
        load_dataset("mnist")
    assert "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609" in str(caught.value)
    assert requests == ["/good/train-images-idx3-ubyte.gz"]
    assert listing(cache_of(tmp_path)) == []


def test_a_checksum_mismatch_keeps_only_verified_files(server, tmp_path) -> None:
    url, requests = server
    wrong = dict(SAMPLE_SHA256, **{"t10k-images-idx3-ubyte.gz": "0" * 64})
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        load_dataset("mnist", download=True, mirror=Mirror(url + "/good", wrong))
    target = cache_of(tmp_path)
    assert listing(target) == sorted(FILES[:2]), "the verified files stay, the bad one is gone"
    requests.clear()
    load_dataset("mnist", download=True, mirror=Mirror(url + "/good", SAMPLE_SHA256))
    assert requests == ["/good/" + name for name in FILES[2:]]


def test_a_404_leaves_nothing_behind(server, tmp_path) -> None:
    url, _ = server
    with pytest.raises(DownloadError, match="HTTP 404"):
        load_dataset("mnist", download=True, mirror=Mirror(url + "/gone", SAMPLE_SHA256))
    assert listing(cache_of(tmp_path)) == []


def test_a_truncated_transfer_leaves_nothing_behind(server, tmp_path) -> None:
    url, _ = server
    with pytest.raises(DownloadError, match="truncated"):
        load_dataset("mnist", download=True, mirror=Mirror(url + "/truncated", SAMPLE_SHA256))
    assert listing(cache_of(tmp_path)) == []


def test_download_file_enforces_the_expected_size(server, tmp_path) -> None:
    url, _ = server
    name = "train-labels-idx1-ubyte.gz"
    with pytest.raises(DownloadError, match="announces"):
        download_file(f"{url}/good/{name}", tmp_path / name, SAMPLE_SHA256[name], size=100)
    with pytest.raises(DownloadError, match="cannot connect"):
        download_file(f"http://example.invalid/{name}", tmp_path / name, SAMPLE_SHA256[name])
    assert listing(tmp_path) == []
    download_file(f"{url}/good/{name}", tmp_path / name, SAMPLE_SHA256[name].upper(),
                  size=len(SAMPLE[name]))
    assert (tmp_path / name).read_bytes() == SAMPLE[name]


def test_nothing_is_downloaded_unless_asked(server, tmp_path, monkeypatch) -> None:
    url, requests = server
    monkeypatch.setenv("CHAINRULE_MIRROR", url + "/good")
    with pytest.raises(DatasetNotFoundError):
        load_dataset("mnist", mirror=Mirror(url + "/good", SAMPLE_SHA256))
    monkeypatch.setenv("CHAINRULE_DOWNLOAD", "0")
    with pytest.raises(DatasetNotFoundError):
        load_dataset("mnist")
    with pytest.raises(DatasetNotFoundError):  # the argument overrides the variable
        monkeypatch.setenv("CHAINRULE_DOWNLOAD", "1")
        load_dataset("mnist", download=False)
    assert requests == []
    monkeypatch.setenv("CHAINRULE_DOWNLOAD", "maybe")
    with pytest.raises(ValueError, match="CHAINRULE_DOWNLOAD"):
        load_dataset("mnist")


# ------------------------------------------------------------------------------------------
# The search path

def write_idx(folder: Path, n: int, gz: bool = True, dotted: bool = False) -> None:
    """A tiny dataset of ``n`` train and ``n`` test images whose first label is ``n``."""
    folder.mkdir(parents=True, exist_ok=True)
    images = np.full((n, 28, 28), n, np.uint8)
    labels = np.full(n, n % 10, np.uint8)
    for base, array, magic in (("train-images-idx3-ubyte", images, 2051),
                               ("train-labels-idx1-ubyte", labels, 2049),
                               ("t10k-images-idx3-ubyte", images, 2051),
                               ("t10k-labels-idx1-ubyte", labels, 2049)):
        raw = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
        raw += array.tobytes()
        name = base.replace("-idx", ".idx") if dotted else base
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (folder / name).write_bytes(raw)


def test_root_beats_env_beats_cache_beats_system(tmp_path, monkeypatch) -> None:
    root, env = tmp_path / "root", tmp_path / "env"
    write_idx(root, 1)
    write_idx(env / "mnist", 2)
    write_idx(cache_of(tmp_path), 3)
    write_idx(tmp_path / "system" / "mnist", 4, gz=False, dotted=True)
    monkeypatch.setenv("CHAINRULE_DATA", str(env))
    assert len(load_dataset("mnist", root=root).train) == 1
    assert load_dataset("mnist").root == env / "mnist"
    monkeypatch.delenv("CHAINRULE_DATA")
    assert load_dataset("mnist").root == cache_of(tmp_path)
    for name in os.listdir(cache_of(tmp_path)):
        os.unlink(cache_of(tmp_path) / name)
    splits = load_dataset("mnist")
    assert splits.root == tmp_path / "system" / "mnist" and len(splits.test) == 4
    assert splits.train.y.tolist() == [4] * 4 and splits.train.x.shape == (4, 28, 28)


def test_search_paths_lists_every_place_in_order(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CHAINRULE_DATA", os.pathsep.join([str(tmp_path / "a"),
                                                         str(tmp_path / "b")]))
    # a root that is given is the only place: nothing tops it up
    assert search_paths("fashion-mnist", root=tmp_path / "r") == [(tmp_path / "r",
                                                                   "root argument")]
    places = search_paths("fashion-mnist")
    assert places == [(tmp_path / "a" / "fashion-mnist", "$CHAINRULE_DATA"),
                      (tmp_path / "b" / "fashion-mnist", "$CHAINRULE_DATA"),
                      (cache_of(tmp_path, "fashion-mnist"), "user cache"),
                      (tmp_path / "system" / "fashion-mnist", "system data")]
    assert search_paths("mnist-sample")[-1] == (sample_dir(), "bundled with chainrule")


def test_the_cache_follows_xdg_only_when_it_is_absolute(tmp_path, monkeypatch) -> None:
    assert search_paths("mnist")[0][0] == cache_of(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")
    assert search_paths("mnist")[0][0] == tmp_path / "home" / ".cache" / "chainrule" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert search_paths("mnist")[0][0] == tmp_path / "home" / ".cache" / "chainrule" / "mnist"


def test_the_search_list_can_be_replaced(tmp_path) -> None:
    write_idx(tmp_path / "x", 5)
    splits = load_dataset("fashion-mnist", search=[tmp_path / "nowhere", tmp_path / "x"])
    assert splits.root == tmp_path / "x" and splits.classes == FASHION_CLASSES


def test_not_found_lists_every_place_and_how_to_get_the_data(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CHAINRULE_DATA", os.pathsep.join([str(tmp_path / "partial"),
                                                         str(tmp_path / "env")]))
    partial = tmp_path / "partial" / "fashion-mnist"
    write_idx(partial, 2)
    os.unlink(partial / "t10k-images-idx3-ubyte.gz")
    os.unlink(partial / "t10k-labels-idx1-ubyte.gz")
    (tmp_path / "system" / "fashion-mnist").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset("fashion-mnist")
    message = str(caught.value)
    for folder, why in search_paths("fashion-mnist"):
        assert f"{folder} ({why})" in message
    assert "has 2 of the 4 files, missing t10k-images-idx3-ubyte[.gz]" in message
    assert "holds none of the 4 files" in message and "no such folder" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "download=True" in message and "CHAINRULE_DOWNLOAD=1" in message
    assert "CHAINRULE_DATA" in message and "CHAINRULE_MIRROR" in message
    assert isinstance(caught.value, FileNotFoundError)


def test_bundled_sample_and_unknown_names() -> None:
    splits = load_dataset("mnist-sample")
    assert splits.root == sample_dir()
    (x_train, y_train), _ = load_mnist_sample(flatten=False, normalize=False)
    np.testing.assert_array_equal(splits.train.x, x_train)
    np.testing.assert_array_equal(splits.train.y, y_train)
    with pytest.raises(ValueError, match=r"unknown dataset 'cifar'.*fashion-mnist"):
        load_dataset("cifar")


def test_bad_files_name_their_path(tmp_path) -> None:
    folder = tmp_path / "bad"
    write_idx(folder, 3)
    labels = folder / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x02\x01\x02"))
    images = folder / "train-images-idx3-ubyte.gz"
    with pytest.raises(IDXError, match=re.escape(f"{images}: holds 3 entries, but {labels} "
                                                 "(labels) says 2")):
        load_dataset("mnist", root=folder)
    write_idx(folder, 3)  # whole again, but for one file:
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(gzip.compress(b"PK\x03\x04 not idx"))
    write_idx(tmp_path / "bad2", 3)
    with pytest.raises(IDXError, match=re.escape(f"{images}: magic number")):
        load_dataset("mnist", root=folder)
    truncated = tmp_path / "bad2" / "train-images-idx3-ubyte.gz"
    truncated.write_bytes(truncated.read_bytes()[:-8])
    with pytest.raises(IDXError, match=re.escape(f"{truncated}: corrupt gzip")):
        load_dataset("mnist", root=tmp_path / "bad2")
    write_idx(tmp_path / "bad3", 3)
    (tmp_path / "bad3" / "t10k-labels-idx1-ubyte.gz").write_bytes(
        gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x03\x01\x02\x0c"))
    with pytest.raises(IDXError, match=r"labels must lie in 0\.\.9, found 1\.\.12"):
        load_dataset("mnist", root=tmp_path / "bad3")


DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").exists(),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_debians_fashion_mnist_reads_whole() -> None:
    splits = load_dataset("fashion-mnist", search=[DEBIAN_FASHION])
    assert splits.train.x.shape == (60000, 28, 28) and splits.test.x.shape == (10000, 28, 28)
    assert np.bincount(splits.train.y).tolist() == [6000] * 10
    assert np.bincount(splits.test.y).tolist() == [1000] * 10
    assert splits.classes[0] == "T-shirt/top" and splits.classes[9] == "Ankle boot"


# ------------------------------------------------------------------------------------------
# The safe pickle reader

def splits_of_arrays() -> tuple:
    rng = np.random.default_rng(0)
    x = rng.random((6, 784), dtype=np.float32)
    y = np.arange(6, dtype=np.int64)
    return ((x, y), (x[:, ::7].T[:4], y[:4]), (np.zeros((0, 784), np.float32),
                                                np.array([], np.int64)))


def assert_same_splits(got: tuple, want: tuple) -> None:
    for (gx, gy), (wx, wy) in zip(got, want, strict=True):
        np.testing.assert_array_equal(gx, wx)
        np.testing.assert_array_equal(gy, wy)
        assert gx.dtype == wx.dtype and gy.dtype == wy.dtype


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_array_pickles_of_every_protocol_round_trip(protocol, tmp_path) -> None:
    want = splits_of_arrays()
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(want, protocol=protocol)))
    assert_same_splits(read_mnist_pkl(path), want)
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps(want, protocol=protocol))
    assert_same_splits(read_mnist_pkl(tmp_path / "plain.pkl"), want)


class _Python2Pickler(pickle._Pickler):  # the pure-Python pickler, so dispatch can change
    """Writes bytes and str as Python 2 did (BINSTRING), like the lesson's mnist.pkl.gz."""

    dispatch = pickle._Pickler.dispatch.copy()

    def save_py2_string(self, obj: bytes | str) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = save_py2_string
    dispatch[str] = save_py2_string


def test_a_python2_numpy1_pickle_like_the_lessons_reads(tmp_path) -> None:
    want = splits_of_arrays()
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump(want)
    # NumPy 1 named the module numpy.core.multiarray; the lesson's file says so
    data = buffer.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"cnumpy.core.multiarray\n_reconstruct\n" in data and b"_codecs" not in data
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(data))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # NumPy 2 warns if the numpy.core shim is touched
        assert_same_splits(read_mnist_pkl(path), want)


class _Payload:
    """Pickles as a call of ``func(*args)``: what an attacker's file looks like."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


@pytest.mark.parametrize("protocol", [0, 2, 4])
@pytest.mark.parametrize("make, refused", [
    (lambda marker: _Payload(os.system, f"touch {marker}"), f"{os.system.__module__}.system"),
    (lambda marker: _Payload(eval, f"open({str(marker)!r}, 'w').close()"), "builtins.eval"),
    (lambda marker: _Payload(subprocess.call, ["touch", str(marker)]), "subprocess.call"),
])
def test_code_in_a_pickle_is_refused_and_never_runs(make, refused, protocol, tmp_path) -> None:
    marker = tmp_path / "pwned"
    x, y = np.zeros((2, 3), np.float32), np.zeros(2, np.int64)
    path = tmp_path / "mnist.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(((x, y), (x, make(marker)), (x, y)),
                                                protocol=protocol)))
    with pytest.raises(UnsafePickleError, match=re.escape(f"{path}: refused to load global ")
                       + ".*" + re.escape(refused)):
        read_mnist_pkl(path)
    assert not marker.exists()


@pytest.mark.parametrize("module, name", [
    ("numpy", "load"), ("numpy", "ndarray.tofile"), ("builtins", "getattr"),
    ("numpy.core.multiarray", "scalar"), ("os", "system"), ("copyreg", "_reconstructor"),
])
def test_only_the_allowlist_resolves(module, name) -> None:
    unpickler = SafeUnpickler(io.BytesIO(b""))
    with pytest.raises(UnsafePickleError, match=f"{module}.{name}"):
        unpickler.find_class(module, name)
    assert unpickler.find_class("numpy", "ndarray") is np.ndarray


def test_the_allowed_helpers_only_do_what_array_pickles_need() -> None:
    unpickler = SafeUnpickler(io.BytesIO(b""))
    encode, make_bytes = unpickler.find_class("_codecs", "encode"), \
        unpickler.find_class("__builtin__", "bytes")
    assert encode("\xff\x00", "latin1") == b"\xff\x00" and make_bytes() == b""
    with pytest.raises(UnsafePickleError, match="rot13"):
        encode("text", "rot13")
    with pytest.raises(UnsafePickleError, match="only bytes"):
        make_bytes(10**12)


def test_pickles_of_the_wrong_shape_or_corrupt_are_refused(tmp_path) -> None:
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps({"x": np.zeros(3)}, protocol=2))
    with pytest.raises(ValueError, match=r"expected a tuple of 3 \(x, y\) pairs"):
        read_mnist_pkl(path)
    path.write_bytes(pickle.dumps(((np.zeros(3), np.zeros(2)),) * 3, protocol=2))
    with pytest.raises(ValueError, match=r"shapes \(3,\) and \(2,\)"):
        read_mnist_pkl(path)
    path.write_bytes(gzip.compress(pickle.dumps(splits_of_arrays(), protocol=2))[:-10])
    with pytest.raises(pickle.UnpicklingError, match="corrupt gzip"):
        read_mnist_pkl(path)
    path.write_bytes(pickle.dumps(splits_of_arrays(), protocol=2)[:-10])
    with pytest.raises(pickle.UnpicklingError, match="not a readable pickle"):
        read_mnist_pkl(path)
