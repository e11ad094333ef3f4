"""Datasets as NumPy arrays: the bundled MNIST sample, and MNIST and Fashion-MNIST from IDX files.

``load_dataset`` keeps images as the files store them, uint8 of shape (N, 28, 28), and labels
as int64 (N,). Turn them into what a model wants with the loader's transforms, on each batch:
``Compose([ToFloat(), Flatten()])`` gives an MLP (B, 784) float32 in [0, 1], and
``Compose([ToFloat(), AddChannel()])`` gives a CNN (B, 1, 28, 28). Keeping the raw bytes costs
a quarter of the memory of float32 and leaves the choice of scaling to the model.

Where the files are looked for. A ``root`` that is given is the only place: it must hold the
four files (or, with downloading allowed, receive them), and nothing else is searched, so a
mistyped folder is an error rather than another copy of the data. Without ``root``, in order
(the first folder holding all four files wins):

1. ``$CHAINRULE_DATA/<name>`` (several folders may be given, separated by ``os.pathsep``);
2. the user cache, ``$XDG_CACHE_HOME/chainrule/<name>`` or ``~/.cache/chainrule/<name>``;
3. ``/usr/share/datasets/<name>`` (Debian's ``dataset-fashion-mnist`` fills
   ``/usr/share/datasets/fashion-mnist``);
4. for "mnist-sample" only, the copy inside this package.

Nothing is downloaded unless asked: ``download=True`` or ``$CHAINRULE_DOWNLOAD=1``. Then the
missing files are fetched into ``root`` (or else the user cache) from ``mirror``,
``$CHAINRULE_MIRROR`` or the default mirrors, and each is checked against its published sha256
before it is saved. Scripts and tests therefore never reach the network by accident.

Text datasets are looked up by name here too: ``load_dataset("shakespeare-char")`` returns the
bundled corpus as a ``chainrule.data.text.TextDataset`` (see ``load_text_dataset``, which also
takes the path of any text file).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.data.download import DownloadError, Mirror, download_file
from chainrule.data.idx import IDXError, read_idx
from chainrule.data.text import TEXT_DATASETS, TextDataset, corpus_dir, load_text_dataset

_SAMPLE_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


def sample_dir() -> Path:
    """Folder of the bundled MNIST sample (10,000 real digits; see its README for attribution)."""
    return Path(str(resources.files("chainrule.data") / "mnist_sample"))


def load_mnist_sample(flatten: bool = True, normalize: bool = True
                      ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The bundled MNIST sample: ((x_train, y_train), (x_test, y_test)), 8,000 + 2,000 digits.

    Images are float32 in [0, 1] (``normalize``) or raw uint8, flattened to 784 values
    (``flatten``) or kept 28x28. Labels are int64.
    """
    folder = sample_dir()
    arrays = {key: read_idx(folder / name) for key, name in _SAMPLE_FILES.items()}

    def images(raw: np.ndarray) -> np.ndarray:
        out = raw.reshape(len(raw), -1) if flatten else raw
        return out.astype(np.float32) / 255 if normalize else out

    return ((images(arrays["train_images"]), arrays["train_labels"].astype(np.int64)),
            (images(arrays["test_images"]), arrays["test_labels"].astype(np.int64)))


# ------------------------------------------------------------------------------------------
# Arrays as datasets

class ArrayDataset:
    """Inputs ``x`` and targets ``y`` indexed together: ``ds[idx] -> (x[idx], y[idx])``."""

    def __init__(self, x: Any, y: Any) -> None:
        self.x = np.asarray(x)
        self.y = np.asarray(y)
        if self.x.ndim == 0 or self.y.ndim == 0:
            raise ValueError(f"ArrayDataset: x and y need a sample axis, got shapes "
                             f"{self.x.shape} and {self.y.shape}")
        if len(self.x) != len(self.y):
            raise ValueError(f"ArrayDataset: x has {len(self.x)} samples but y has "
                             f"{len(self.y)}; they must match one to one")

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, index: Any) -> tuple[np.ndarray, np.ndarray]:
        return self.x[index], self.y[index]

    def __repr__(self) -> str:
        return (f"ArrayDataset(x: {self.x.shape} {self.x.dtype}, "
                f"y: {self.y.shape} {self.y.dtype})")


@dataclass(frozen=True)
class Splits:
    """A dataset's train and test splits, its class names and the folder it was read from."""

    name: str
    train: ArrayDataset
    test: ArrayDataset
    classes: tuple[str, ...]
    root: Path


# ------------------------------------------------------------------------------------------
# What each dataset is and where it lives

#: base names of the four IDX files; each may be stored raw or with a .gz suffix
SPLIT_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

DIGITS = tuple(str(d) for d in range(10))
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                   "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

#: system-wide data folders, searched after the user's own; tests replace this tuple
SYSTEM_DATA_DIRS: tuple[Path, ...] = (Path("/usr/share/datasets"),)


@dataclass(frozen=True)
class _Spec:
    classes: tuple[str, ...]
    mirrors: tuple[str, ...] = ()
    # sha256 and byte size of each .gz file as its authors publish it
    sha256: tuple[tuple[str, str, int], ...] = ()
    how_to_get: str = ""
    image_shape: tuple[int, int] = (28, 28)


# MNIST: the digests and sizes of the original LeCun files, as TensorFlow's and PyTorch's
# mirrors serve them (the same sums are pinned by many independent projects).
# Fashion-MNIST: the digests of the files in Zalando's repository and S3 bucket. Debian's
# dataset-fashion-mnist re-packed the gzip headers (24 bytes fewer, the stored file name
# dropped), so its files hold the same data under other digests: local files are therefore
# validated by parsing, and only downloads are held to these sums.
_SPECS = {
    "mnist-sample": _Spec(DIGITS, how_to_get="it ships inside the chainrule package"),
    "mnist": _Spec(
        DIGITS,
        mirrors=("https://storage.googleapis.com/cvdf-datasets/mnist/",
                 "https://ossci-datasets.s3.amazonaws.com/mnist/"),
        sha256=(
            ("train-images-idx3-ubyte.gz",
             "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
            ("train-labels-idx1-ubyte.gz",
             "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
            ("t10k-images-idx3-ubyte.gz",
             "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
            ("t10k-labels-idx1-ubyte.gz",
             "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
        ),
    ),
    "fashion-mnist": _Spec(
        FASHION_CLASSES,
        mirrors=(("https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/"
                  "data/fashion/"),
                 "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"),
        sha256=(
            ("train-images-idx3-ubyte.gz",
             "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
            ("train-labels-idx1-ubyte.gz",
             "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
            ("t10k-images-idx3-ubyte.gz",
             "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
            ("t10k-labels-idx1-ubyte.gz",
             "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
        ),
        how_to_get="on Debian or Ubuntu: sudo apt-get install dataset-fashion-mnist "
                   "(puts the files in /usr/share/datasets/fashion-mnist)",
    ),
}

DATASETS = tuple(_SPECS)


class DatasetNotFoundError(FileNotFoundError):
    """No folder on the search path holds the dataset, and downloading was not allowed."""


def cache_dir() -> Path:
    """chainrule's user cache: ``$XDG_CACHE_HOME/chainrule``, else ``~/.cache/chainrule``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # the XDG spec says a relative value is to be ignored
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "chainrule"


def search_paths(name: str, root: str | os.PathLike | None = None) -> list[tuple[Path, str]]:
    """The folders ``load_dataset(name, root)`` looks in, in order, each with why it is there.

    A given ``root`` is the only one: it is never topped up from other places.
    """
    if isinstance(name, str) and name in TEXT_DATASETS:
        return [(corpus_dir(), "bundled with chainrule")]
    _spec(name)
    if root is not None:
        return [(_root_path(root), "root argument")]
    places: list[tuple[Path, str]] = []
    for entry in os.environ.get("CHAINRULE_DATA", "").split(os.pathsep):
        if entry:
            places.append((Path(entry) / name, "$CHAINRULE_DATA"))
    places.append((cache_dir() / name, "user cache"))
    places.extend((Path(folder) / name, "system data") for folder in SYSTEM_DATA_DIRS)
    if name == "mnist-sample":
        places.append((sample_dir(), "bundled with chainrule"))
    return places


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool | None = None,
                 mirror: str | Mirror | None = None, *,
                 search: Sequence[str | os.PathLike] | None = None) -> Splits | TextDataset:
    """Load "mnist-sample", "mnist" or "fashion-mnist" as uint8 (N, 28, 28) images + int64 labels.

    ``root``, when given, is the one folder used (see the module docstring); ``download=None``
    means "only if ``$CHAINRULE_DOWNLOAD`` says so"; ``search`` replaces the folders of
    ``search_paths`` (for tests and unusual layouts). A text dataset's name
    ("shakespeare-char") gives its ``TextDataset``, which ships inside the package.
    """
    if isinstance(name, str) and name in TEXT_DATASETS:
        if root is not None or search is not None or download or mirror is not None:
            raise ValueError(f"load_dataset: {name!r} ships inside chainrule, so root, search, "
                             "download and mirror do not apply; for your own text, use "
                             "load_text_dataset(path)")
        return load_text_dataset(name)
    spec = _spec(name)
    if download is not None and not isinstance(download, bool):
        raise TypeError(f"load_dataset: download must be True, False or None, got "
                        f"{download!r}")
    if mirror is not None and not isinstance(mirror, (str, Mirror)):
        raise TypeError(f"load_dataset: mirror must be a URL (str) or a Mirror, got "
                        f"{type(mirror).__name__}")
    if root is not None and search is not None:
        raise ValueError("load_dataset: give root (the one folder to use) or search (the "
                         "folders to look in), not both")
    places = (search_paths(name, root) if search is None
              else [(Path(folder), "search argument") for folder in search])
    looked = []
    for folder, why in places:
        files, state = _find_files(folder)
        if files is not None:
            return _read_splits(name, spec, folder, files)
        looked.append((folder, why, state))

    target = places[0][0] if root is not None else cache_dir() / name
    if not _download_wanted(download):
        raise DatasetNotFoundError(_not_found_message(name, spec, looked, target, root))
    if not spec.sha256:
        raise DatasetNotFoundError(_not_found_message(name, spec, looked, target, root)
                                   + f"\n(there is nothing to download for {name!r})")
    if target.exists() and not target.is_dir():
        raise DatasetNotFoundError(f"dataset {name!r}: cannot download into {target}: it is a "
                                   "file, not a folder. Pass as root the folder that is to "
                                   "hold the four IDX files.")
    _download_missing(spec, target, _mirrors(spec, mirror))
    files, state = _find_files(target)
    if files is None:  # only if the folder changed under us
        raise DatasetNotFoundError(f"{name}: downloaded into {target} but {state}")
    return _read_splits(name, spec, target, files)


def _root_path(root: str | os.PathLike) -> Path:
    """``root`` as a Path, refusing what cannot be a folder name."""
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"load_dataset: root must be a folder path (str or os.PathLike), got "
                        f"{type(root).__name__}")
    if not os.fspath(root):
        raise ValueError("load_dataset: root is empty; pass the folder that holds the "
                         "dataset, or None to search the usual places")
    return Path(root)


def class_names(name: str) -> tuple[str, ...]:
    """The class names of dataset ``name``, by label (without reading its files)."""
    return _spec(name).classes


def _spec(name: str) -> _Spec:
    if not isinstance(name, str):
        raise TypeError(f"dataset name must be a str, one of {', '.join(DATASETS)}; got "
                        f"{type(name).__name__}")
    if name not in _SPECS:
        near = name.strip().lower().replace("_", "-")
        hint = f" (did you mean {near!r}?)" if near in (*_SPECS, *TEXT_DATASETS) else ""
        raise ValueError(f"unknown dataset {name!r}{hint}; choose one of {', '.join(DATASETS)} "
                         f"(images) or {', '.join(TEXT_DATASETS)} (text)")
    return _SPECS[name]


def _locate(folder: Path, base: str) -> Path | None:
    """``folder``'s copy of one IDX file: gz or raw, under MNIST's name or its dotted variant."""
    dotted = base.replace("-idx", ".idx")  # as some re-distributions spell them
    for candidate in (base + ".gz", base, dotted + ".gz", dotted):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _find_files(folder: Path) -> tuple[dict[str, Path] | None, str]:
    """The four IDX files in ``folder``, or a phrase saying why not."""
    if not folder.is_dir():
        return None, "a file, not a folder" if folder.exists() else "no such folder"
    located = {base: _locate(folder, base) for base in SPLIT_FILES}
    found = {base: path for base, path in located.items() if path is not None}
    missing = [base + "[.gz]" for base in SPLIT_FILES if base not in found]
    if missing:
        return None, (f"has {len(found)} of the 4 files, missing {', '.join(missing)}"
                      if found else "holds none of the 4 files")
    return found, "complete"


def _read_splits(name: str, spec: _Spec, folder: Path, files: dict[str, Path]) -> Splits:
    """Read and cross-check the four files: 3-D uint8 images, 1-D labels, equal counts.

    The labels are read first: an image file must hold as many images as they say (checked
    from its header), so a crafted one cannot make the reader take more memory than that.
    """
    train_y, test_y = read_idx(files[SPLIT_FILES[1]]), read_idx(files[SPLIT_FILES[3]])
    train_x, test_x = (read_idx(files[base], items=(len(labels), f"{files[label]} (labels)"))
                       for base, label, labels in ((SPLIT_FILES[0], SPLIT_FILES[1], train_y),
                                                   (SPLIT_FILES[2], SPLIT_FILES[3], test_y)))
    splits = []
    for x, y, x_path, y_path in ((train_x, train_y, *(files[b] for b in SPLIT_FILES[:2])),
                                 (test_x, test_y, *(files[b] for b in SPLIT_FILES[2:]))):
        if x.ndim != 3 or x.dtype != np.uint8:
            raise IDXError(f"{x_path}: expected uint8 images of shape (N, rows, cols), got "
                           f"{x.dtype} {x.shape}")
        if x.shape[1:] != spec.image_shape:
            rows, cols = spec.image_shape
            raise IDXError(f"{x_path}: {name} images are {rows}x{cols} pixels, this file "
                           f"holds {x.shape[1]}x{x.shape[2]}; is it another dataset's file?")
        if y.ndim != 1 or y.dtype.kind not in "ui":
            raise IDXError(f"{y_path}: expected integer labels of shape (N,), got "
                           f"{y.dtype} {y.shape}")
        if len(x) != len(y):
            raise IDXError(f"{y_path}: {len(y)} labels for the {len(x)} images of {x_path}")
        if len(y) and (y.min() < 0 or y.max() >= len(spec.classes)):
            raise IDXError(f"{y_path}: labels must lie in 0..{len(spec.classes) - 1}, found "
                           f"{y.min()}..{y.max()}")
        splits.append(ArrayDataset(x, y.astype(np.int64)))
    return Splits(name, splits[0], splits[1], spec.classes, folder)


def _download_wanted(download: bool | None) -> bool:
    if download is not None:
        return bool(download)
    value = os.environ.get("CHAINRULE_DOWNLOAD", "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise ValueError(f"$CHAINRULE_DOWNLOAD={value!r}: use 1 to allow downloads or 0 to refuse")


def _mirrors(spec: _Spec, mirror: str | Mirror | None) -> list[Mirror]:
    if isinstance(mirror, Mirror):
        return [mirror]
    if mirror is not None:
        return [Mirror(mirror)]
    chosen = os.environ.get("CHAINRULE_MIRROR", "")
    if chosen:
        return [Mirror(chosen)]
    return [Mirror(url) for url in spec.mirrors]


def _download_missing(spec: _Spec, target: Path, mirrors: list[Mirror]) -> None:
    """Fetch into ``target`` each of the four .gz files it lacks, trying mirrors in turn."""
    published = {filename: (digest, size) for filename, digest, size in spec.sha256}
    for base in SPLIT_FILES:
        filename = base + ".gz"
        if _locate(target, base) is not None:
            continue
        failures = []
        for source in mirrors:
            if filename in source.sha256:
                digest, size = source.sha256[filename], None
            else:
                digest, size = published[filename]
            url = source.file_url(filename)
            print(f"chainrule: downloading {url} -> {target / filename}", file=sys.stderr)
            try:
                download_file(url, target / filename, digest, size)
                break
            except DownloadError as error:
                failures.append(str(error))
        else:
            raise DownloadError(
                f"could not download {filename} into {target} from "
                + (f"any of the {len(mirrors)} mirrors" if len(mirrors) > 1 else "the mirror")
                + ":\n" + "".join(f"  - {failure}\n" for failure in failures)
                + "Check your network, choose a mirror that works (mirror= or "
                f"$CHAINRULE_MIRROR), or copy the file into {target} yourself.")


def _not_found_message(name: str, spec: _Spec, looked: list[tuple[Path, str, str]],
                       target: Path, root: str | os.PathLike | None = None) -> str:
    files = ", ".join(base + "[.gz]" for base in SPLIT_FILES)
    if root is not None:
        folder, _, state = looked[0]
        lines = [(f"dataset {name!r} not found in root={folder}: {state}. It must hold the "
                  f"four IDX files ({files}); no other place is searched when root is given.")]
    else:
        lines = [f"dataset {name!r} not found: no folder holds its four IDX files ({files}).",
                 "Looked in:"]
        lines += [f"  - {folder} ({why}): {state}" for folder, why, state in looked]
    lines.append("To get it:")
    if root is not None:
        if str(root).startswith("~"):
            lines.append("  - note that ~ is not expanded here: give the full path")
        lines.append(f"  - check the folder's name, or copy the files into {target}")
        if name == "mnist-sample":
            lines.append("  - or leave root out to use the copy bundled with chainrule")
    if spec.how_to_get and (root is None or name != "mnist-sample"):
        lines.append(f"  - {spec.how_to_get}")
    if spec.sha256:
        mirror = os.environ.get("CHAINRULE_MIRROR") or spec.mirrors[0]
        lines.append(f"  - download it: load_dataset({name!r}, download=True) or "
                     f"CHAINRULE_DOWNLOAD=1 (fetches from {mirror} into {target}; "
                     "choose another mirror with mirror= or $CHAINRULE_MIRROR)")
    if root is None:
        lines.append(f"  - or copy the files into a folder F and pass root=F, or put them in "
                     f"D/{name} and set CHAINRULE_DATA=D")
    else:
        lines.append("  - or leave root out to search $CHAINRULE_DATA, the user cache and "
                     "the system data folders")
    return "\n".join(lines)
