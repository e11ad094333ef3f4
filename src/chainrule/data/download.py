"""Downloads that are verified before they are visible.

A file is streamed to a hidden ``.<name>.*.part`` file in the target folder while its sha256
is computed; only when the byte count and the digest match is it renamed into place with
``os.replace`` (atomic on one file system). Any failure removes the partial file, so a file
under its real name is always a complete, verified one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from http.client import HTTPException
from pathlib import Path

#: seconds a connection may stall before the download is abandoned
TIMEOUT_S = 60.0
#: refuse bodies larger than this when the expected size is not known
MAX_BYTES = 512 * 2**20
_CHUNK = 2**20


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

    def file_url(self, filename: str) -> str:
        """The URL of ``filename`` on this mirror."""
        return self.url.rstrip("/") + "/" + filename


def download_file(url: str, dest: str | os.PathLike, sha256: str, size: int | None = None,
                  timeout: float | None = None) -> Path:
    """Fetch ``url`` into ``dest`` if its sha256 (and size, when given) match; else raise."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    limit = size if size is not None else MAX_BYTES
    fd, part = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    done = False
    try:
        digest = hashlib.sha256()
        received = 0
        # A fresh opener reads the proxy settings of the environment as it is now.
        opener = urllib.request.build_opener()
        with os.fdopen(fd, "wb") as out, opener.open(url, timeout=timeout or TIMEOUT_S) as resp:
            announced = resp.headers.get("Content-Length")
            announced = int(announced) if announced and announced.isdigit() else None
            if announced is not None and announced > limit:
                raise DownloadError(f"{url}: the server announces {announced} bytes, "
                                    f"more than the {limit} expected")
            while chunk := resp.read(_CHUNK):
                received += len(chunk)
                if received > limit:
                    raise DownloadError(f"{url}: more than the {limit} bytes expected")
                digest.update(chunk)
                out.write(chunk)
            if announced is not None and received != announced:
                raise DownloadError(f"{url}: truncated transfer, got {received} of the "
                                    f"{announced} bytes announced")
            out.flush()
            os.fsync(out.fileno())
        if digest.hexdigest() != sha256.lower() or size not in (None, received):
            expected = f"{sha256.lower()}" + (f" ({size} bytes)" if size is not None else "")
            raise DownloadError(f"{url}: sha256 mismatch: expected {expected}, got "
                                f"{digest.hexdigest()} ({received} bytes). The mirror serves "
                                "a different file; nothing was saved.")
        os.replace(part, dest)
        done = True
        return dest
    except urllib.error.HTTPError as error:
        error.close()
        raise DownloadError(f"{url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise DownloadError(f"{url}: cannot connect ({error.reason})") from None
    except (HTTPException, TimeoutError, ConnectionError) as error:
        raise DownloadError(f"{url}: transfer failed ({type(error).__name__}: {error})") from None
    finally:
        if not done:
            try:
                os.unlink(part)
            except FileNotFoundError:
                pass
