"""Downloads that are verified before they are visible.

A file is streamed to a hidden ``.<name>.<pid>.<random>.part`` file in the target folder
(``chainrule.io.temp_file``, which also clears what killed downloads left) while its sha256 is
computed; only when the byte count and the digest match is it renamed into place with
``os.replace`` (atomic on one file system). Any failure removes the partial file, so a file
under its real name is always a complete, verified one.

A mirror is untrusted, and so is the network: every failure raises DownloadError naming the
URL, the cause and what to do, and the time a download may take is bounded four ways. The
connection must open within ``connect_timeout``; no read may wait longer than ``timeout``;
a mirror that trickles is dropped once it sends less than ``min_rate`` bytes a second over a
window of RATE_WINDOW_S seconds; and the whole file, headers included, must arrive within
``deadline``.
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import re
import socket
import ssl
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chainrule.io import temp_file

#: seconds a connection may stall (no byte arriving) before the download is abandoned
TIMEOUT_S = 60.0
#: seconds to wait for the server to accept the connection
CONNECT_TIMEOUT_S = 30.0
#: seconds one file may take in all, from connecting to the last byte
DEADLINE_S = 1800.0
#: bytes per second a mirror must sustain, averaged over each RATE_WINDOW_S seconds
MIN_RATE = 1024.0
RATE_WINDOW_S = 30.0
#: refuse bodies larger than this when the expected size is not known
MAX_BYTES = 512 * 2**20
_CHUNK = 2**20
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")

#: ``progress(received, total)``: bytes so far and the expected total, None if not known
Progress = Callable[[int, int | None], None]


class DownloadError(OSError):
    """A download that failed or did not match its checksum (nothing was left behind)."""


@dataclass(frozen=True)
class Mirror:
    """A base URL serving the dataset's files, with its own sha256 table if it has one.

    ``sha256`` maps file names to hex digests that take precedence over the published ones
    for this mirror: use it for a private mirror that re-compressed the files. Files it does
    not name are held to the published digests.
    """

    url: str
    sha256: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.url, str):
            raise TypeError(f"Mirror: url must be a str such as 'https://host/path/', got "
                            f"{type(self.url).__name__}")
        if not isinstance(self.sha256, Mapping):
            raise TypeError(f"Mirror: sha256 must map file names to hex digests, got "
                            f"{type(self.sha256).__name__}")
        for name, digest in self.sha256.items():
            _check_sha256(digest, f"Mirror: sha256[{name!r}]")

    def file_url(self, filename: str) -> str:
        """The URL of ``filename`` on this mirror."""
        return self.url.rstrip("/") + "/" + filename


def download_file(url: str, dest: str | os.PathLike, sha256: str, size: int | None = None,
                  timeout: float | None = None, *, connect_timeout: float | None = None,
                  deadline: float | None = None, min_rate: float | None = None,
                  progress: Progress | None = None) -> Path:
    """Fetch ``url`` into ``dest`` if its sha256 (and size, when given) match; else raise.

    ``timeout`` (stall), ``connect_timeout``, ``deadline`` (whole file; ``math.inf`` for
    none) and ``min_rate`` (bytes/s; 0 for none) default to the module's constants.
    ``progress(received, total)`` is called as bytes arrive; by default a progress line is
    drawn on stderr (redrawn in place on a terminal, at most every 30 s elsewhere). Every
    failure raises DownloadError and leaves nothing behind.
    """
    _check_url(url)
    sha256 = _check_sha256(sha256, "download_file: sha256")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise ValueError(f"download_file: size must be a byte count or None, got {size!r}")
    limits = _Limits(stall=_seconds(timeout, TIMEOUT_S, "timeout"),
                     connect=_seconds(connect_timeout, CONNECT_TIMEOUT_S, "connect_timeout"),
                     deadline=_seconds(deadline, DEADLINE_S, "deadline", infinite=True),
                     min_rate=_rate(min_rate))
    if progress is not None and not callable(progress):
        raise TypeError(f"download_file: progress must be a callable(received, total), got "
                        f"{type(progress).__name__}")
    dest = Path(dest)
    try:
        return _fetch(url, dest, sha256, size, limits, progress)
    except DownloadError:
        raise
    except OSError as error:  # making the folder or the .part file, before any transfer
        raise _cannot_save(url, dest, error) from None


@dataclass(frozen=True)
class _Limits:
    stall: float
    connect: float
    deadline: float
    min_rate: float


def _fetch(url: str, dest: Path, sha256: str, size: int | None, limits: _Limits,
           progress: Progress | None) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    # chainrule's one naming of temporary files: a killed download's .part is cleared by the
    # next one, and whatever is left at `part` when the block ends is removed.
    with temp_file(dest, ".part") as (out, part):
        return _transfer(url, dest, out, part, sha256, size, limits, progress)


def _transfer(url: str, dest: Path, out: Any, part: Path, sha256: str, size: int | None,
              limits: _Limits, progress: Progress | None) -> Path:
    limit = size if size is not None else MAX_BYTES
    watchdog = _Watchdog(limits.deadline)
    reporter = _StderrProgress(dest.name) if progress is None else None
    report = progress if progress is not None else reporter
    received, announced = 0, None
    try:
        digest = hashlib.sha256()
        opener = _opener(watchdog, limits.stall)
        watchdog.start()
        with _open(opener, url, limits.connect) as resp:
            announced = resp.headers.get("Content-Length")
            announced = int(announced) if announced and announced.isdigit() else None
            if announced is not None and announced > limit:
                raise DownloadError(f"{url}: the server announces {announced} bytes, "
                                    f"more than the {limit} expected. The mirror serves a "
                                    "different file; use another mirror.")
            total = announced if announced is not None else size
            report(0, total)
            window_start, window_bytes = time.monotonic(), 0
            while chunk := resp.read1(_CHUNK):
                received += len(chunk)
                window_bytes += len(chunk)
                if received > limit:
                    raise DownloadError(f"{url}: more than the {limit} bytes expected. The "
                                        "mirror serves a different file; use another mirror.")
                digest.update(chunk)
                _on_disk(out.write, chunk)
                report(received, total)
                now = time.monotonic()
                if now - window_start >= RATE_WINDOW_S:
                    if window_bytes < limits.min_rate * (now - window_start):
                        raise _too_slow(url, window_bytes, now - window_start, limits)
                    window_start, window_bytes = now, 0
            if watchdog.expired:
                raise _past_deadline(url, received, total, limits)
            if announced is not None and received != announced:
                raise DownloadError(f"{url}: truncated transfer, got {received} of the "
                                    f"{announced} bytes announced. Try again, or use "
                                    "another mirror.")
            _on_disk(out.flush)
            _on_disk(os.fsync, out.fileno())
        if digest.hexdigest() != sha256 or size not in (None, received):
            expected = sha256 + (f" ({size} bytes)" if size is not None else "")
            raise DownloadError(f"{url}: sha256 mismatch: expected {expected}, got "
                                f"{digest.hexdigest()} ({received} bytes). The mirror serves "
                                "a different file; nothing was saved. Use another mirror, or "
                                "give Mirror(url, sha256={...}) the digests of a mirror you "
                                "trust.")
        out.close()
        _on_disk(os.replace, part, dest)
        return dest
    except DownloadError:
        raise
    except _DiskError as failed:
        raise _cannot_save(url, dest, failed.error) from None
    except urllib.error.HTTPError as error:
        error.close()
        raise _http_error(url, error) from None
    except urllib.error.URLError as error:
        if watchdog.expired:
            raise _past_deadline(url, received, announced, limits) from None
        raise _connect_error(url, error.reason, limits) from None
    except (http.client.HTTPException, OSError) as error:
        if watchdog.expired:
            raise _past_deadline(url, received, announced, limits) from None
        if isinstance(error, TimeoutError):
            raise DownloadError(f"{url}: the server sent nothing for {limits.stall:g} s "
                                f"(after {received} bytes); try again later, or use another "
                                "mirror.") from None
        if isinstance(error, http.client.IncompleteRead):
            why = "truncated transfer: the connection broke off"
        elif isinstance(error, http.client.RemoteDisconnected):
            why = "the server closed the connection without a reply"
        elif isinstance(error, http.client.HTTPException):
            why = f"the reply is not valid HTTP ({type(error).__name__}: {error})"
        else:
            why = f"the connection failed ({type(error).__name__}: {error})"
        raise DownloadError(f"{url}: {why} after {received} bytes; try again, or use "
                            "another mirror.") from None
    finally:
        watchdog.cancel()
        if reporter is not None:
            reporter.finish()


class _DiskError(Exception):
    """An OSError of the disk, kept apart from the network's, which share its type."""

    def __init__(self, error: OSError) -> None:
        super().__init__(error)
        self.error = error


def _on_disk(action: Callable[..., Any], *args: Any) -> Any:
    try:
        return action(*args)
    except OSError as error:
        raise _DiskError(error) from None


# ------------------------------------------------------------------------------------------
# What a failure says

def _cannot_save(url: str, dest: Path, error: OSError) -> DownloadError:
    return DownloadError(f"{url}: cannot save it as {dest} ({error.strerror or error}). "
                         "Choose a writable folder with room for it (root= or "
                         "$XDG_CACHE_HOME).")


def _http_error(url: str, error: urllib.error.HTTPError) -> DownloadError:
    status = f"HTTP {error.code} {error.reason}"
    if error.code == 404:
        fix = "the mirror does not have this file; check the mirror URL, or use another mirror"
    elif error.code >= 500:
        fix = "the server failed; try again later, or use another mirror"
    elif 300 <= error.code < 400:
        fix = "the mirror redirects in a loop or to a place it may not; use another mirror"
    else:
        fix = "the server refused the request; check the mirror URL, or use another mirror"
    return DownloadError(f"{url}: {status}: {fix}.")


def _connect_error(url: str, reason: Any, limits: _Limits) -> DownloadError:
    host = urllib.parse.urlsplit(url).hostname
    if isinstance(reason, socket.gaierror):
        why = (f"cannot resolve the host name {host!r} ({reason.strerror or reason}); check "
               "its spelling and your network")
    elif isinstance(reason, ConnectionRefusedError):
        why = (f"connection refused by {host!r}: nothing listens there; check the host and "
               "port of the mirror URL")
    elif isinstance(reason, ssl.SSLCertVerificationError):
        why = (f"the certificate of {host!r} cannot be verified ({reason.verify_message}); "
               "check the host name, or the system's CA certificates")
    elif isinstance(reason, ssl.SSLError):
        why = (f"the TLS handshake with {host!r} failed ({reason.reason or reason}); is it an "
               "https:// server?")
    elif isinstance(reason, TimeoutError):
        why = (f"no connection to {host!r} within {limits.connect:g} s; check your network, "
               "or use another mirror")
    elif isinstance(reason, str) and reason.startswith("unknown url type"):
        why = "redirected to a URL that is neither http:// nor https://; use another mirror"
    else:
        detail = reason.strerror if isinstance(reason, OSError) and reason.strerror else reason
        why = f"cannot connect to {host!r} ({detail}); check your network and the mirror URL"
    return DownloadError(f"{url}: {why}.")


def _too_slow(url: str, got: int, seconds: float, limits: _Limits) -> DownloadError:
    return DownloadError(f"{url}: too slow: {got} bytes in the last {seconds:.1f} s, less than "
                         f"the minimum of {limits.min_rate:g} bytes/s; use another mirror, or "
                         "lower download_file's min_rate=.")


def _past_deadline(url: str, received: int, total: int | None, limits: _Limits
                   ) -> DownloadError:
    of = f" of {total}" if total is not None else ""
    return DownloadError(f"{url}: not finished within the deadline of {limits.deadline:g} s "
                         f"({received}{of} bytes received); use a faster mirror, or raise "
                         "download_file's deadline=.")


# ------------------------------------------------------------------------------------------
# Checks of the arguments

def _check_url(url: str) -> None:
    """Refuse, before any connection, a URL that is not plain http(s)://host/..."""
    if not isinstance(url, str):
        raise TypeError(f"download_file: url must be a str, got {type(url).__name__}")
    fix = ("A mirror URL looks like https://host/path/ (check mirror= or $CHAINRULE_MIRROR)."
           )
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise DownloadError(f"{url!r}: not a download URL: it contains spaces or control "
                            f"characters. {fix}")
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 -- parsing the port is what raises for a bad one
    except ValueError as error:
        raise DownloadError(f"{url!r}: not a download URL ({error}). {fix}") from None
    if not parts.scheme or "://" not in url:
        raise DownloadError(f"{url!r}: not a download URL: it does not start with https:// "
                            f"or http://. {fix}")
    if parts.scheme.lower() not in ("http", "https"):
        raise DownloadError(f"{url!r}: {parts.scheme}:// is not supported, only https:// and "
                            f"http://. {fix}")
    if not parts.hostname:
        raise DownloadError(f"{url!r}: not a download URL: it names no host. {fix}")


def _check_sha256(digest: Any, what: str) -> str:
    if not isinstance(digest, str) or not _HEX64.fullmatch(digest):
        raise ValueError(f"{what} must be 64 hex digits, got {digest!r}")
    return digest.lower()


def _seconds(value: float | None, default: float, name: str, infinite: bool = False) -> float:
    value = default if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
            or value <= 0 or (math.isinf(value) and not infinite):
        allowed = "a positive number of seconds" + (" (math.inf for none)" if infinite else "")
        raise ValueError(f"download_file: {name} must be {allowed}, got {value!r}")
    return float(value)


def _rate(value: float | None) -> float:
    value = MIN_RATE if value is None else value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0 \
            or math.isinf(value):
        raise ValueError(f"download_file: min_rate must be bytes per second >= 0 (0 for no "
                         f"minimum), got {value!r}")
    return float(value)


# ------------------------------------------------------------------------------------------
# The connection

def _open(opener: urllib.request.OpenerDirector, url: str, connect: float) -> Any:
    """``opener.open(url)``, with what urllib raises for a URL it cannot send as DownloadError."""
    try:
        return opener.open(url, timeout=connect)
    except (ValueError, http.client.InvalidURL) as error:
        raise DownloadError(f"{url}: malformed URL ({error}); check the mirror URL (mirror= "
                            "or $CHAINRULE_MIRROR), percent-encoding anything that is not "
                            "ASCII.") from None


class _Watchdog:
    """Shuts the download's sockets when the deadline passes, so a blocked read returns."""

    def __init__(self, seconds: float) -> None:
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = None if math.isinf(seconds) else threading.Timer(seconds, self._expire)
        if self._timer is not None:
            self._timer.daemon = True

    def start(self) -> None:
        if self._timer is not None:
            self._timer.start()

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.append(sock)
            if self.expired:
                _shut(sock)

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    try:
        # the plain socket's shutdown: SSLSocket's own would drop its state under the reader
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass


def _opener(watchdog: _Watchdog, stall: float) -> urllib.request.OpenerDirector:
    """http(s) only (no ftp:, file: or data:, even by redirect), each socket watched."""

    class Watched:
        def do_open(self, http_class: Any, req: Any, **kwargs: Any) -> Any:
            class Connection(http_class):  # type: ignore[misc, valid-type]
                def connect(self) -> None:
                    super().connect()  # within the connect timeout given to open()
                    self.sock.settimeout(stall)
                    watchdog.watch(self.sock)

            return super().do_open(Connection, req, **kwargs)  # type: ignore[misc]

    class HTTP(Watched, urllib.request.HTTPHandler):
        pass

    class HTTPS(Watched, urllib.request.HTTPSHandler):
        pass

    opener = urllib.request.OpenerDirector()
    # ProxyHandler() reads the proxy settings of the environment as it is now
    for handler in (urllib.request.ProxyHandler(), urllib.request.UnknownHandler(), HTTP(),
                    HTTPS(), urllib.request.HTTPDefaultErrorHandler(),
                    urllib.request.HTTPRedirectHandler(), urllib.request.HTTPErrorProcessor()):
        opener.add_handler(handler)
    return opener


class _StderrProgress:
    """The default progress report: a line on stderr, redrawn in place only on a terminal."""

    def __init__(self, label: str) -> None:
        self.label = label
        stream = sys.stderr
        try:
            self.tty = stream is not None and stream.isatty()
        except (AttributeError, ValueError, OSError):
            self.tty = False
        # elsewhere (a log, a CI job) only a long download says how it is going
        self.interval = 0.5 if self.tty else 30.0
        self.last = time.monotonic()
        self.state: tuple[int, int | None] = (0, None)
        self.drawn = False

    def __call__(self, received: int, total: int | None) -> None:
        self.state = (received, total)
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._draw()

    def finish(self) -> None:
        if self.drawn and self.tty:
            self._draw()
            self._write("\n")

    def _draw(self) -> None:
        received, total = self.state
        text = f"chainrule: {self.label}: {received / 2**20:.1f}"
        text += f" of {total / 2**20:.1f} MiB" if total else " MiB"
        if total:
            text += f" ({100 * received // total}%)"
        self._write(f"\r{text:<72}" if self.tty else text + "\n")
        self.drawn = True

    @staticmethod
    def _write(text: str) -> None:
        try:
            sys.stderr.write(text)
            sys.stderr.flush()
        except (AttributeError, ValueError, OSError):
            pass  # no usable stderr: the report is a courtesy, not the download
