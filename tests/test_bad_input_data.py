"""Data files and downloads are untrusted input: each bad one is a named error, never a number.

Three classes, each tested with the neighbours an attacker would try next:

* IDX and pickle files whose header lies (dimensions past int64, a claim past ``max_bytes``),
  that are truncated or have more after them, or whose gzip layer is corrupt or a bomb;
* downloads that fail in every way a mirror or a network can (HTTP errors, refused, unknown
  host, a URL that is not one, a wrong digest, a stall, a trickle, a deadline);
* ``load_dataset`` with a ``root`` that is given but wrong: it never falls back elsewhere.

As in test_data_sources.py, HOME, the cache and the system folder live in tmp_path and name
resolution is limited to the loopback address.
"""

from __future__ import annotations

import errno
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
import sys
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from chainrule.data import (
    DatasetNotFoundError,
    DownloadError,
    IDXError,
    Mirror,
    download_file,
    load_dataset,
    parse_idx,
    read_idx,
    read_mnist_pkl,
    sample_dir,
)
from chainrule.data import datasets as datasets_module
from chainrule.data import download as download_module

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
SAMPLE = {name: (sample_dir() / name).read_bytes() for name in FILES}
SAMPLE_SHA256 = {name: hashlib.sha256(raw).hexdigest() for name, raw in SAMPLE.items()}
LABELS = "t10k-labels-idx1-ubyte.gz"  # the smallest sample file
MiB = 2**20


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Private HOME, cache and system folder; no chainrule or proxy variables; loopback only."""
    for var in ("CHAINRULE_DATA", "CHAINRULE_DOWNLOAD", "CHAINRULE_MIRROR", "http_proxy",
                "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY",
                "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(datasets_module, "SYSTEM_DATA_DIRS", (tmp_path / "system",))
    monkeypatch.setattr(download_module, "TIMEOUT_S", 5.0)
    real_getaddrinfo = socket.getaddrinfo

    def loopback_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost"):
            # what the resolver says for a name that does not exist
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", loopback_only)
    return tmp_path


def listing(folder: Path) -> list[str]:
    """Every entry in ``folder``, hidden ones too (a stray .part file must show up)."""
    return sorted(os.listdir(folder)) if folder.exists() else []


# ------------------------------------------------------------------------------------------
# IDX files

def idx_header(code: int, dims: list[int]) -> bytes:
    return bytes([0, 0, code, len(dims)]) + b"".join(struct.pack(">I", d) for d in dims)


def good_idx() -> bytes:
    return idx_header(0x08, [2, 3]) + bytes(range(6))


def write(path: Path, raw: bytes) -> Path:
    path.write_bytes(raw)
    return path


def bomb(claim: bytes, expands_to: int) -> bytes:
    """A small .gz whose data starts with ``claim`` and then decompresses to ``expands_to``
    zero bytes more, built without ever holding those bytes."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: gzip wrapper
    zeros = bytes(MiB)
    out = [packer.compress(claim)]
    for _ in range(expands_to // MiB):
        out.append(packer.compress(zeros))
    out.append(packer.flush())
    return b"".join(out)


@pytest.mark.parametrize("dims", [[2**32 - 1] * 3, [2**32 - 1] * 2 + [2**31], [65536] * 4])
@pytest.mark.parametrize("gz", [False, True])
def test_dimensions_whose_product_overflows_int64_are_refused(dims, gz, tmp_path) -> None:
    raw = idx_header(0x0E, dims) + bytes(64)
    path = write(tmp_path / ("over.gz" if gz else "over"), gzip.compress(raw) if gz else raw)
    values = int(np.prod(dims, dtype=object)) * 8  # the exact claim, not a wrapped one
    with pytest.raises(IDXError) as caught:
        read_idx(path)
    message = str(caught.value)
    if gz:  # only the header is decompressed: its claim is refused by max_bytes
        assert message.startswith(f"{path}: its header claims shape {tuple(dims)} of >f8, "
                                  f"{values} bytes, more than max_bytes=")
    else:  # the file's size gives it away before anything is read
        assert message.startswith(f"{path}: truncated: shape {tuple(dims)} of >f8 needs "
                                  f"{4 + 4 * len(dims) + values} bytes, the file has "
                                  f"{len(raw)}. Download it again.")
    with pytest.raises(IDXError, match="truncated: shape"):
        parse_idx(raw, "bytes")


def test_a_claim_past_max_bytes_is_refused_before_any_allocation(tmp_path) -> None:
    path = write(tmp_path / "big.gz", gzip.compress(idx_header(0x08, [2**31, 4]) + bytes(8)))
    tracemalloc.start()
    try:
        with pytest.raises(IDXError) as caught:
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert str(path) in message and "8589934592 bytes" in message
    assert "max_bytes=4294967296" in message and "pass a larger max_bytes=" in message
    assert peak < MiB
    # the limit is a parameter, for raw files too; a genuine file reads once it is raised
    genuine = write(tmp_path / "genuine", idx_header(0x08, [100, 10]) + bytes(1000))
    with pytest.raises(IDXError, match=r"1000 bytes, more than max_bytes=999\."):
        read_idx(genuine, max_bytes=999)
    assert read_idx(genuine, max_bytes=1000).shape == (100, 10)
    with pytest.raises(ValueError, match="max_bytes must be a non-negative int"):
        read_idx(genuine, max_bytes=-1)


def test_a_short_file_that_claims_gigabytes_costs_little_memory(tmp_path) -> None:
    path = write(tmp_path / "liar.gz", gzip.compress(idx_header(0x08, [3 * 2**30]) + bytes(99)))
    tracemalloc.start()
    try:
        with pytest.raises(IDXError, match=re.escape(f"{path}: truncated")):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * MiB


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("change, kind", [
    (lambda raw: raw[:-1], "truncated"),
    (lambda raw: raw[:13], "truncated"),
    (lambda raw: raw + b"\x00", "has trailing bytes"),
    (lambda raw: raw + good_idx(), "has trailing bytes"),
])
def test_truncated_and_trailing_data_name_the_file(change, kind, gz, tmp_path) -> None:
    raw = change(good_idx())
    path = write(tmp_path / ("f.gz" if gz else "f"), gzip.compress(raw) if gz else raw)
    with pytest.raises(IDXError, match=re.escape(f"{path}: {kind}: shape (2, 3) of uint8 "
                                                 "needs 18 bytes")) as caught:
        read_idx(path)
    assert str(caught.value).endswith("Download it again.")


@pytest.mark.parametrize("raw, says", [
    (b"", "0 bytes is too short for an IDX header"),
    (b"\x00\x00\x08", "3 bytes is too short"),
    (idx_header(0x08, [1, 2, 3])[:9], "truncated header (9 bytes, 3 dims declared)"),
    (idx_header(0x08, [1] * 100) + b"x", "cannot be held in a NumPy array"),
    (idx_header(0x08, [2**32 - 1, 2**32 - 1, 0]), "cannot be held in a NumPy array"),
    (b"PK\x03\x04rest", "magic number"),
])
def test_malformed_headers_name_the_file(raw, says, tmp_path) -> None:
    for path in (write(tmp_path / "h", raw), write(tmp_path / "h.gz", gzip.compress(raw))):
        with pytest.raises(IDXError, match=re.escape(f"{path}: ") + ".*" + re.escape(says)):
            read_idx(path)


def flip_crc(gz: bytes) -> bytes:
    return gz[:-8] + bytes([gz[-8] ^ 0xFF]) + gz[-7:]


@pytest.mark.parametrize("make, says", [
    (lambda: flip_crc(gzip.compress(good_idx())), "CRC check failed"),
    (lambda: gzip.compress(good_idx())[:-3], "truncated"),
    (lambda: gzip.compress(good_idx())[:15], "truncated"),
    (lambda: b"\x1f\x8b", "truncated"),
    (lambda: b"\x1f\x8bgarbage after the magic", "Unknown compression method"),
    (lambda: gzip.compress(good_idx())[:10] + b"\xff" * 40, "invalid block type"),
    (lambda: gzip.compress(good_idx()) + b"junk", "Not a gzipped file"),
])
def test_corrupt_gzip_is_an_idx_error_naming_the_file(make, says, tmp_path) -> None:
    path = write(tmp_path / "c.gz", make())
    with pytest.raises(IDXError) as caught:
        read_idx(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: corrupt gzip data") and says in message
    assert message.endswith("Download it again.")


def test_a_gzip_bomb_never_expands_past_the_claim(tmp_path) -> None:
    path = write(tmp_path / "bomb.gz", bomb(good_idx(), 64 * MiB))
    assert path.stat().st_size < 128 * 1024
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(IDXError, match=re.escape(f"{path}: has trailing bytes")):
            read_idx(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < MiB, "only the claim and one more byte were decompressed"
    assert time.perf_counter() - start < 1.0


def test_parse_idx_keeps_working_and_refuses_what_is_not_bytes() -> None:
    np.testing.assert_array_equal(parse_idx(good_idx()), np.arange(6, dtype=np.uint8)
                                  .reshape(2, 3))
    np.testing.assert_array_equal(parse_idx(bytearray(good_idx())).ravel(), np.arange(6))
    big_endian = idx_header(0x0B, [2]) + struct.pack(">hh", -2, 300)
    assert parse_idx(memoryview(big_endian)).tolist() == [-2, 300]
    with pytest.raises(TypeError, match="read_idx"):
        parse_idx("train-images-idx3-ubyte")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# The pickle reader's gzip layer

def test_the_pickle_reader_refuses_a_gzip_bomb(tmp_path) -> None:
    path = write(tmp_path / "mnist.pkl.gz", bomb(b"", 64 * MiB))
    tracemalloc.start()
    try:
        with pytest.raises(pickle.UnpicklingError) as caught:
            read_mnist_pkl(path, max_bytes=MiB)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    message = str(caught.value)
    assert message.startswith(f"{path}: decompresses to more than max_bytes=1048576")
    assert "gzip bomb" in message and "pass a larger max_bytes=" in message
    assert peak < 8 * MiB
    raw = write(tmp_path / "raw.pkl", bytes(2 * MiB))
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"{raw}: has 2097152 bytes")):
        read_mnist_pkl(raw, max_bytes=MiB)


@pytest.mark.parametrize("make, says", [
    (lambda data: flip_crc(gzip.compress(data)), "CRC check failed"),
    (lambda data: gzip.compress(data)[:-20], "corrupt gzip data (truncated"),
    (lambda data: b"\x1f\x8bnot deflate at all", "corrupt gzip data"),
])
def test_the_pickle_reader_names_a_corrupt_gzip(make, says, tmp_path) -> None:
    data = pickle.dumps(((np.zeros(2), np.zeros(2)),) * 3, protocol=2)
    path = write(tmp_path / "mnist.pkl.gz", make(data))
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"{path}: ") + ".*"
                       + re.escape(says)):
        read_mnist_pkl(path)


def test_a_pickle_length_field_past_memory_is_named(tmp_path) -> None:
    # BINBYTES8 claiming a petabyte
    path = write(tmp_path / "huge.pkl", b"\x80\x04\x8e" + (2**50).to_bytes(8, "little") + b"x")
    with pytest.raises(pickle.UnpicklingError, match=re.escape(f"{path}: not a readable")):
        read_mnist_pkl(path)


# ------------------------------------------------------------------------------------------
# Downloads

class _Handler(http.server.BaseHTTPRequestHandler):
    """A mirror that misbehaves on request; the path says how (see do_GET)."""

    timeout = 5
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        _, mode, arg = [*self.path.split("/", 2), "", ""][:3]
        try:
            getattr(self, "serve_" + mode.replace("-", "_"), self.serve_missing)(arg)
        except OSError:
            pass  # the client gave up, as it should

    def serve_missing(self, arg: str) -> None:
        self.send_error(404, "no such file")

    def serve_good(self, name: str) -> None:
        self.body(SAMPLE[name])

    def serve_status(self, code: str) -> None:
        self.send_error(int(code.split("/")[0]))

    def serve_slow(self, name: str) -> None:
        """The file in 8 pieces 0.08 s apart."""
        body = SAMPLE[name]
        step = len(body) // 8 + 1
        self.body(b"", len(body))
        for at in range(0, len(body), step):
            time.sleep(0.08)
            self.wfile.write(body[at: at + step])

    def serve_trickle(self, arg: str) -> None:
        """Headers at once, then one byte every 50 ms, forever (well, for 10 s)."""
        self.body(b"", 10_000)
        for _ in range(200):
            self.wfile.write(b"\x00")
            time.sleep(0.05)

    def serve_trickle_head(self, arg: str) -> None:
        """Even the status line arrives a byte at a time."""
        for byte in b"HTTP/1.1 200 OK\r\nX-Padding: " + b"p" * 200:
            self.wfile.write(bytes([byte]))
            time.sleep(0.05)

    def serve_stall(self, arg: str) -> None:
        self.body(b"\x00" * 10, 1000)
        time.sleep(3)

    def serve_garbage(self, arg: str) -> None:
        self.wfile.write(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        self.close_connection = True

    def serve_redirect(self, target: str) -> None:
        self.send_response(302)
        self.send_header("Location", target.replace("_", "/"))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def body(self, data: bytes, length: int | None = None) -> None:
        self.send_response(200)
        self.send_header("Content-Length", str(len(data) if length is None else length))
        self.end_headers()
        self.wfile.write(data)
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


def fails(url: str, tmp_path: Path, **kwargs) -> str:
    """The message of the DownloadError that fetching ``url`` raises; nothing is left."""
    dest = tmp_path / "out" / LABELS
    with pytest.raises(DownloadError) as caught:
        download_file(url, dest, SAMPLE_SHA256[LABELS], **kwargs)
    assert listing(dest.parent) == [], "nothing is left behind"
    assert isinstance(caught.value, OSError)
    return str(caught.value)


@pytest.mark.parametrize("code, says", [
    (404, "HTTP 404 Not Found: the mirror does not have this file"),
    (403, "HTTP 403 Forbidden: the server refused the request"),
    (500, "HTTP 500 Internal Server Error: the server failed; try again later"),
    (503, "HTTP 503 Service Unavailable: the server failed"),
])
def test_http_errors_name_the_url_and_the_fix(code, says, server, tmp_path) -> None:
    url = f"{server[0]}/status/{code}"
    message = fails(url, tmp_path)
    assert message.startswith(f"{url}: {says}") and "another mirror" in message


def test_a_wrong_sha256_names_both_digests(server, tmp_path) -> None:
    url = f"{server[0]}/good/{LABELS}"
    dest = tmp_path / "out" / LABELS
    with pytest.raises(DownloadError) as caught:
        download_file(url, dest, "ab" * 32)
    message = str(caught.value)
    assert message.startswith(f"{url}: sha256 mismatch: expected {'ab' * 32}, got "
                              f"{SAMPLE_SHA256[LABELS]}")
    assert "nothing was saved" in message and "Use another mirror" in message
    assert listing(dest.parent) == []


def test_a_refused_connection_and_an_unknown_host(tmp_path) -> None:
    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    message = fails(f"http://127.0.0.1:{port}/x.gz", tmp_path)
    assert f"http://127.0.0.1:{port}/x.gz: connection refused by '127.0.0.1'" in message
    assert "check the host and port" in message
    message = fails("https://no-such-mirror.invalid/x.gz", tmp_path)
    assert message.startswith("https://no-such-mirror.invalid/x.gz: cannot resolve the host "
                              "name 'no-such-mirror.invalid'")
    assert "check its spelling" in message


@pytest.mark.skipif(sys.platform != "linux", reason="relies on Linux dropping SYNs to a "
                    "listener whose queue is full")
def test_a_connection_that_never_opens_times_out(tmp_path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)):  # fills the queue
            start = time.monotonic()
            message = fails(f"http://127.0.0.1:{port}/x.gz", tmp_path, connect_timeout=0.3)
            assert time.monotonic() - start < 2
    assert "no connection to '127.0.0.1' within 0.3 s" in message


@pytest.mark.parametrize("url, says", [
    ("not a url", "not a download URL: it contains spaces"),
    ("ftp://x/file.gz", "ftp:// is not supported"),
    ("file:///etc/passwd", "file:// is not supported"),
    ("data:,hello", "not a download URL: it does not start with https://"),
    ("localhost:8000/file.gz", "does not start with https:// or http://"),
    ("//host/file.gz", "does not start with https://"),
    ("", "does not start with https://"),
    ("http://", "names no host"),
    ("http:///file.gz", "names no host"),
    ("http://[::1/file.gz", "Invalid IPv6 URL"),
    ("http://host:99999/file.gz", "Port out of range"),
    ("http://host:port/file.gz", "Port could not be cast"),
    ("http://host/a\nHost: evil", "control characters"),
])
def test_urls_that_are_not_http_are_refused_before_connecting(url, says, tmp_path) -> None:
    message = fails(url, tmp_path)
    assert message.startswith(f"{url!r}: ") and says in message
    assert "https://host/path/" in message and "CHAINRULE_MIRROR" in message


def test_a_url_that_http_cannot_send_is_a_download_error(server, tmp_path) -> None:
    url = f"{server[0]}/good/caf\u00e9.gz"
    message = fails(url, tmp_path)
    assert message.startswith(f"{url}: malformed URL") and "percent-encoding" in message


def test_redirects_and_replies_that_are_not_http(server, tmp_path) -> None:
    message = fails(f"{server[0]}/redirect/ftp:__127.0.0.1_x.gz", tmp_path)
    assert "redirect" in message and "another mirror" in message
    message = fails(f"{server[0]}/garbage/", tmp_path)
    assert message.startswith(f"{server[0]}/garbage/: the reply is not valid HTTP")


def test_a_stalled_mirror_fails_after_the_read_timeout(server, tmp_path) -> None:
    start = time.monotonic()
    message = fails(f"{server[0]}/stall/", tmp_path, timeout=0.3)
    assert time.monotonic() - start < 1.5
    assert "the server sent nothing for 0.3 s (after 10 bytes)" in message


def test_a_trickling_mirror_is_dropped_by_the_minimum_rate(server, tmp_path,
                                                          monkeypatch) -> None:
    monkeypatch.setattr(download_module, "RATE_WINDOW_S", 0.3)
    start = time.monotonic()
    message = fails(f"{server[0]}/trickle/", tmp_path, min_rate=100)
    assert time.monotonic() - start < 1.5
    assert re.search(r"too slow: \d+ bytes in the last 0\.\d s, less than the minimum of "
                     r"100 bytes/s; use another mirror", message)


@pytest.mark.parametrize("mode", ["trickle", "trickle-head"])
def test_the_deadline_bounds_a_trickle_even_of_headers(mode, server, tmp_path) -> None:
    start = time.monotonic()
    message = fails(f"{server[0]}/{mode}/", tmp_path, deadline=0.5, min_rate=0)
    assert time.monotonic() - start < 1.5
    assert "not finished within the deadline of 0.5 s" in message
    assert "raise download_file's deadline=" in message


def test_the_progress_callback_sees_every_byte(server, tmp_path) -> None:
    calls: list[tuple[int, int | None]] = []
    dest = download_file(f"{server[0]}/slow/{LABELS}", tmp_path / LABELS,
                         SAMPLE_SHA256[LABELS], progress=lambda got, total: calls.append(
                             (got, total)))
    size = len(SAMPLE[LABELS])
    assert dest.read_bytes() == SAMPLE[LABELS]
    assert calls[0] == (0, size) and calls[-1] == (size, size) and len(calls) >= 3
    assert [got for got, _ in calls] == sorted(got for got, _ in calls)


def test_the_default_progress_line_redraws_on_a_terminal_only(server, tmp_path,
                                                              monkeypatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for stream, expect_drawn in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        download_file(f"{server[0]}/slow/{LABELS}", tmp_path / LABELS, SAMPLE_SHA256[LABELS])
        text = stream.getvalue()
        if expect_drawn:
            assert "\r" in text and f"{LABELS}: " in text and text.endswith("\n")
            assert "(100%)" in text
        else:
            assert text == "", "a log is not filled with progress lines"


def test_bad_arguments_are_refused_before_connecting(tmp_path) -> None:
    url = "http://127.0.0.1:9/x.gz"
    with pytest.raises(ValueError, match="sha256 must be 64 hex digits"):
        download_file(url, tmp_path / "x", "abc")
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        download_file(url, tmp_path / "x", "0" * 64, timeout=0)
    with pytest.raises(ValueError, match="deadline must be a positive"):
        download_file(url, tmp_path / "x", "0" * 64, deadline=float("nan"))
    with pytest.raises(ValueError, match="min_rate must be"):
        download_file(url, tmp_path / "x", "0" * 64, min_rate=-1)
    with pytest.raises(ValueError, match="size must be a byte count"):
        download_file(url, tmp_path / "x", "0" * 64, size=-5)
    with pytest.raises(TypeError, match="url must be a str"):
        download_file(Path("x"), tmp_path / "x", "0" * 64)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Mirror: url must be a str"):
        Mirror(Path("/srv/mirror"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"Mirror: sha256\['a.gz'\] must be 64 hex"):
        Mirror("https://host/", {"a.gz": "not a digest"})
    assert listing(tmp_path) == []


def test_a_folder_that_cannot_be_written_is_a_download_error(server, tmp_path) -> None:
    blocker = write(tmp_path / "blocker", b"a file where a folder should be")
    dest = blocker / "sub" / LABELS
    with pytest.raises(DownloadError) as caught:
        download_file(f"{server[0]}/good/{LABELS}", dest, SAMPLE_SHA256[LABELS])
    assert str(caught.value).startswith(f"{server[0]}/good/{LABELS}: cannot save it as {dest}")
    assert "writable folder" in str(caught.value)


def test_a_full_disk_is_a_download_error_and_leaves_nothing(server, tmp_path,
                                                             monkeypatch) -> None:
    def no_space(fd: int) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    message = fails(f"{server[0]}/good/{LABELS}", tmp_path)
    assert f"cannot save it as {tmp_path / 'out' / LABELS} (No space left on device)" in message


def test_https_to_a_server_that_is_not_tls(server, tmp_path) -> None:
    url = server[0].replace("http://", "https://") + f"/good/{LABELS}"
    message = fails(url, tmp_path)
    assert message.startswith(f"{url}: the TLS handshake with '127.0.0.1' failed")
    assert "is it an https:// server?" in message


@pytest.mark.parametrize("mirror, says", [
    ("not a url", "'not a url/train-images-idx3-ubyte.gz': not a download URL"),
    ("ftp://x", "'ftp://x/train-images-idx3-ubyte.gz': ftp:// is not supported"),
    ("", "'/train-images-idx3-ubyte.gz': not a download URL"),
])
def test_load_dataset_with_a_bad_mirror_names_it(mirror, says, tmp_path) -> None:
    with pytest.raises(DownloadError) as caught:
        load_dataset("mnist", download=True, mirror=mirror)
    message = str(caught.value)
    assert message.startswith("could not download train-images-idx3-ubyte.gz into ")
    assert says in message and "copy the file into" in message
    assert listing(tmp_path / "cache" / "chainrule" / "mnist") == []


def test_every_mirror_is_tried_and_each_failure_reported(server, tmp_path,
                                                         monkeypatch) -> None:
    url, requests = server
    spec = datasets_module._SPECS["mnist"]
    monkeypatch.setitem(datasets_module._SPECS, "mnist", datasets_module._Spec(
        spec.classes, mirrors=(url + "/status/500", url + "/missing", "gopher://x/"),
        sha256=spec.sha256))
    with pytest.raises(DownloadError) as caught:
        load_dataset("mnist", download=True)
    message = str(caught.value)
    assert "from any of the 3 mirrors:" in message
    assert "HTTP 500" in message and "HTTP 404" in message and "gopher:// is not" in message
    assert len(requests) == 2


# ------------------------------------------------------------------------------------------
# load_dataset with an explicit root

def write_split_files(folder: Path, n: int = 2, rows: int = 28, cols: int = 28) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    images = idx_header(0x08, [n, rows, cols]) + bytes(n * rows * cols)
    labels = idx_header(0x08, [n]) + bytes(n)
    for name, raw in zip(FILES, (images, labels, images, labels), strict=True):
        (folder / name).write_bytes(gzip.compress(raw))


@pytest.fixture()
def copies_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Complete copies in every other place a fallback could find one."""
    for name in ("mnist", "fashion-mnist", "mnist-sample"):
        write_split_files(tmp_path / "env" / name)
        write_split_files(tmp_path / "cache" / "chainrule" / name)
        write_split_files(tmp_path / "system" / name)
    monkeypatch.setenv("CHAINRULE_DATA", str(tmp_path / "env"))


@pytest.mark.usefixtures("copies_elsewhere")
@pytest.mark.parametrize("name", ["mnist", "fashion-mnist", "mnist-sample"])
@pytest.mark.parametrize("make, state", [
    (lambda root: None, "no such folder"),
    (lambda root: root.mkdir(), "holds none of the 4 files"),
    (lambda root: (write_split_files(root), os.unlink(root / FILES[3])),
     "has 3 of the 4 files, missing t10k-labels-idx1-ubyte[.gz]"),
    (lambda root: write(root, b"not a folder"), "a file, not a folder"),
])
def test_an_explicit_root_is_the_only_place_looked(name, make, state, tmp_path) -> None:
    root = tmp_path / "given"
    make(root)
    with pytest.raises(DatasetNotFoundError) as caught:
        load_dataset(name, root=root)
    message = str(caught.value)
    assert message.startswith(f"dataset {name!r} not found in root={root}: {state}.")
    assert "no other place is searched when root is given" in message
    assert "leave root out" in message
    for elsewhere in ("env", "cache", "system"):
        assert str(tmp_path / elsewhere) not in message
    if name == "mnist-sample":
        assert "the copy bundled with chainrule" in message
        assert str(sample_dir()) not in message
    # a relative root, or one given as a str, is held to the same rule
    with pytest.raises(DatasetNotFoundError, match="no other place is searched"):
        load_dataset(name, root=str(root))


def test_the_bundled_sample_is_read_only_without_root_or_at_its_own_path() -> None:
    assert load_dataset("mnist-sample").root == sample_dir()
    assert load_dataset("mnist-sample", root=sample_dir()).root == sample_dir()


def test_a_root_that_is_a_file_is_not_downloaded_into(server, tmp_path) -> None:
    url, requests = server
    root = write(tmp_path / "given", b"a file")
    with pytest.raises(DatasetNotFoundError, match=re.escape(
            f"cannot download into {root}: it is a file, not a folder")):
        load_dataset("mnist", root=root, download=True, mirror=Mirror(url + "/good",
                                                                       SAMPLE_SHA256))
    assert requests == [] and root.read_bytes() == b"a file"


@pytest.mark.usefixtures("copies_elsewhere")
def test_a_missing_root_receives_the_download_and_ignores_other_copies(server,
                                                                       tmp_path) -> None:
    url, requests = server
    root = tmp_path / "new" / "mnist"
    splits = load_dataset("mnist", root=root, download=True,
                          mirror=Mirror(url + "/good", SAMPLE_SHA256))
    assert splits.root == root and listing(root) == sorted(FILES) and len(requests) == 4
    assert len(splits.train) == 8000


@pytest.mark.parametrize("call, error, says", [
    (lambda: load_dataset(None), TypeError, "dataset name must be a str, one of mnist-sample"),
    (lambda: load_dataset(["mnist"]), TypeError, "got list"),
    (lambda: load_dataset(Path("mnist")), TypeError, "got PosixPath"
     if os.name == "posix" else "got WindowsPath"),
    (lambda: load_dataset("MNIST"), ValueError, "unknown dataset 'MNIST' (did you mean 'mnist'?)"),
    (lambda: load_dataset("fashion_mnist"), ValueError, "did you mean 'fashion-mnist'?"),
    (lambda: load_dataset("mnist", root=3), TypeError, "root must be a folder path"),
    (lambda: load_dataset("mnist", root=""), ValueError, "root is empty"),
    (lambda: load_dataset("mnist", download="no"), TypeError,
     "download must be True, False or None, got 'no'"),
    (lambda: load_dataset("mnist", mirror=3), TypeError, "mirror must be a URL"),
    (lambda: load_dataset("mnist", root="a", search=["b"]), ValueError, "not both"),
])
def test_arguments_of_the_wrong_kind_are_named(call, error, says) -> None:
    with pytest.raises(error) as caught:
        call()
    assert says in str(caught.value)


def test_images_of_another_size_are_refused_not_reshaped(tmp_path) -> None:
    root = tmp_path / "odd"
    write_split_files(root, rows=14, cols=56)  # 784 pixels, so flattening would "work"
    with pytest.raises(IDXError, match=re.escape(f"{root / FILES[0]}: mnist images are 28x28 "
                                                 "pixels, this file holds 14x56")):
        load_dataset("mnist", root=root)


def test_a_tilde_in_root_is_pointed_out(tmp_path) -> None:
    with pytest.raises(DatasetNotFoundError, match="~ is not expanded"):
        load_dataset("mnist", root="~/no-such-chainrule-folder")


def test_a_killed_downloads_part_file_is_cleared_by_the_next_download(server, tmp_path
                                                                      ) -> None:
    dest = tmp_path / "out" / LABELS
    dest.parent.mkdir(parents=True)
    # A child that dies at once gives a pid that no process holds any more.
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    leftover = dest.parent / f".{LABELS}.{dead.stdout.strip()}.{'0' * 12}.part"
    leftover.write_bytes(b"half a download")
    alive = dest.parent / f".{LABELS}.{os.getppid()}.{'1' * 12}.part"  # a live writer's
    alive.write_bytes(b"someone else's")
    download_file(f"{server[0]}/good/{LABELS}", dest, SAMPLE_SHA256[LABELS])
    assert listing(dest.parent) == sorted([LABELS, alive.name])


def test_an_image_file_claiming_more_images_than_its_labels_is_refused_from_its_header(
        tmp_path) -> None:
    folder = tmp_path / "d"
    folder.mkdir()
    labels = idx_header(0x08, [3]) + bytes(3)
    # a small bomb: the header claims 2,000,000 images, and the stream would deliver them
    claim = idx_header(0x08, [2_000_000, 28, 28])
    for split in ("train", "t10k"):
        write(folder / f"{split}-labels-idx1-ubyte.gz", gzip.compress(labels))
        write(folder / f"{split}-images-idx3-ubyte.gz", bomb(claim, 64 * MiB))
    tracemalloc.start()
    try:
        with pytest.raises(IDXError, match=r"holds 2000000 entries, but .*labels.* says 3"):
            load_dataset("mnist", root=folder)
        assert tracemalloc.get_traced_memory()[1] < 8 * MiB
    finally:
        tracemalloc.stop()
