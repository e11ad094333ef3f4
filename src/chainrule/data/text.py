"""Character-level text data: a vocabulary, train/validation splits and block batches.

A ``TextDataset`` holds a text as integer ids, its first 90% for training and the last 10% for
validation (nanoGPT's split), and the vocabulary: the sorted distinct characters of the whole
text. Training batches are random blocks, as nanoGPT's ``get_batch``: ``x`` is ``block_size``
characters from a random start and ``y`` the same block shifted by one, the next character at
every position. Validation uses fixed blocks, so that every evaluation looks at the same text
and two evaluations compare::

    ds = load_text_dataset("shakespeare-char")          # or a path to any UTF-8 text file
    train = ds.train_loader(batch_size=12, block_size=64, seed=0)
    valid = ds.valid_loader(batch_size=12, block_size=64)
    xb, yb = next(iter(train))                          # int64 tensors (12, 64)
    ds.vocab.decode(xb.data[0])                         # back to text

``ds.config()`` is a JSON-able dict (vocabulary included) for a checkpoint's config, and
``CharVocab.from_dict`` reads the vocabulary back, so a checkpoint can encode a prompt and
decode samples without the text it was trained on.

The Shakespeare corpus ships gzip-compressed inside the package (``shakespeare_char/``, with
its README: provenance and sha256); loading it reads nothing outside the package.
"""

from __future__ import annotations

import gzip
import hashlib
import math
import os
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import validate
from chainrule.engine.tensor import Tensor

__all__ = [
    "TEXT_DATASETS", "CharVocab", "FixedBlocks", "RandomBlocks", "TextDataset",
    "corpus_dir", "load_text_dataset", "read_text",
]

#: text datasets known by name (any other text: pass the path of its file)
TEXT_DATASETS = ("shakespeare-char",)

_CORPUS_FILE = "input.txt.gz"
#: sha256 of the corpus text (uncompressed), as its README gives it
SHAKESPEARE_SHA256 = "9117a23343c39079fe3d065e8969b02bf9d8df61c95198322cf23bbb0db5970e"

# Tags keep the random streams of training blocks and validation blocks apart from each other
# and from the DataLoader's, whatever the seeds.
_TRAIN_TAG, _VALID_TAG = 0x7E47, 0x7E48

#: a text file is refused above this size (the ids take 2 bytes, the str up to 4 per character)
MAX_TEXT_BYTES = 1 << 30


def corpus_dir() -> Path:
    """Folder of the bundled Shakespeare corpus (``input.txt.gz`` and its README)."""
    return Path(str(resources.files("chainrule.data") / "shakespeare_char"))


def read_text(path: str | os.PathLike) -> str:
    """The UTF-8 text of a file (gzip-compressed or not), refusing what is not text."""
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path):
        raise TypeError(f"text file: expected a file path (str or os.PathLike), got "
                        f"{path!r}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"text file {path}: no such file; pass the path of a UTF-8 "
                                f"text file (or the name of a bundled corpus: "
                                f"{', '.join(TEXT_DATASETS)})")
    if path.is_dir():
        raise IsADirectoryError(f"text file {path}: is a folder; pass the text file inside "
                                "it (e.g. input.txt)")
    with open(path, "rb") as file:
        raw = file.read(MAX_TEXT_BYTES + 1)
    if raw[:2] == b"\x1f\x8b":  # gzip's magic number
        try:
            with gzip.open(path, "rb") as file:
                raw = file.read(MAX_TEXT_BYTES + 1)
        except (OSError, EOFError) as error:
            raise ValueError(f"text file {path}: starts as gzip but cannot be decompressed "
                             f"({error}); is it truncated?") from None
    if len(raw) > MAX_TEXT_BYTES:
        raise ValueError(f"text file {path}: larger than {MAX_TEXT_BYTES >> 20} MiB; "
                         "a character-level dataset holds its text in memory, so split it")
    if not raw:
        raise ValueError(f"text file {path}: is empty; a dataset needs text to learn from")
    if b"\x00" in raw:
        raise ValueError(f"text file {path}: holds NUL bytes, so it is binary, not text "
                         "(an image, an archive, a model?); pass a UTF-8 text file")
    try:
        text = raw.decode("utf-8-sig")  # a leading byte-order mark is encoding, not text
    except UnicodeDecodeError as error:
        raise ValueError(f"text file {path}: is not UTF-8 text (byte {error.start} cannot be "
                         "decoded); re-save it as UTF-8, e.g. iconv -f latin1 -t utf-8") \
            from None
    if not text:
        raise ValueError(f"text file {path}: is empty; a dataset needs text to learn from")
    return text


def _code_points(text: str) -> np.ndarray:
    """The Unicode code points of ``text`` as uint32, without a Python loop."""
    return np.frombuffer(text.encode("utf-32-le"), dtype="<u4")


class CharVocab:
    """The characters of a text, sorted, each one's id its position: encode and decode.

    ``to_dict()`` is JSON-able, for a checkpoint; ``CharVocab.from_dict`` reads it back.
    """

    def __init__(self, chars: str) -> None:
        if not isinstance(chars, str):
            raise TypeError(f"CharVocab: chars must be a str of the distinct characters, got "
                            f"{type(chars).__name__}")
        if not chars:
            raise ValueError("CharVocab: chars is empty; a vocabulary needs a character")
        if list(chars) != sorted(set(chars)):
            raise ValueError("CharVocab: chars must be distinct characters in sorted order "
                             "(as CharVocab.from_text makes them), so that ids are stable")
        self.chars = chars
        self._points = _code_points(chars)

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of ``text``: its distinct characters, sorted by code point."""
        if not isinstance(text, str):
            raise TypeError(f"CharVocab.from_text: expected a str, got {type(text).__name__}")
        if not text:
            raise ValueError("CharVocab.from_text: the text is empty")
        return cls("".join(chr(c) for c in np.unique(_code_points(text))))

    def __len__(self) -> int:
        return len(self.chars)

    @property
    def size(self) -> int:
        """The number of characters, the model's vocabulary size."""
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """``text`` as int64 ids; a character outside the vocabulary is an error naming it."""
        if not isinstance(text, str):
            raise TypeError(f"CharVocab.encode: expected a str, got {type(text).__name__}")
        points = _code_points(text)
        ids = np.searchsorted(self._points, points)
        ids_clipped = np.minimum(ids, len(self._points) - 1)
        unknown = self._points[ids_clipped] != points
        if unknown.any():
            missing = "".join(sorted(set(np.array(list(text))[unknown])))
            raise ValueError(f"CharVocab.encode: {len(missing)} character(s) not in the "
                             f"vocabulary of {len(self)}: {missing[:20]!r}; the model knows "
                             "only the characters of the text it was trained on")
        return ids.astype(np.int64)

    def decode(self, ids: Any) -> str:
        """The text of a sequence of ids (a list, array or tensor)."""
        array = np.asarray(ids.data if isinstance(ids, Tensor) else ids)
        if array.size and array.dtype.kind not in "iu":
            raise TypeError(f"CharVocab.decode: ids must be integers, got {array.dtype}")
        array = array.reshape(-1).astype(np.int64)
        if array.size and (array.min() < 0 or array.max() >= len(self)):
            raise ValueError(f"CharVocab.decode: ids must lie in 0..{len(self) - 1}, got "
                             f"{array.min()}..{array.max()}")
        return self._points[array].astype("<u4").tobytes().decode("utf-32-le")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict: ``{"kind": "char", "chars": ...}``."""
        return {"kind": "char", "chars": self.chars}

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> CharVocab:
        """The vocabulary a ``to_dict()`` describes (from a checkpoint's config)."""
        if not isinstance(state, Mapping) or state.get("kind") != "char" \
                or not isinstance(state.get("chars"), str):
            raise ValueError(f"CharVocab.from_dict: expected {{'kind': 'char', 'chars': "
                             f"str}} as to_dict() writes it, got {str(state)[:80]}")
        return cls(state["chars"])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab({len(self)} characters: {self.chars[:30]!r}{'...' * (len(self) > 30)})"


def _block_size(owner: str, block_size: Any, data: np.ndarray, split: str) -> int:
    """``block_size`` checked against the split: a block and its next character must fit."""
    block_size = validate.integer(owner, "block_size", block_size, low=1)
    if block_size > len(data) - 1:
        raise ValueError(f"{owner}: block_size {block_size} is too large for the {split} "
                         f"split of {len(data)} characters: a block needs block_size + 1 "
                         f"characters (the targets are shifted by one); use a block_size of "
                         f"at most {max(len(data) - 1, 0)}, or more text")
    return block_size


def _gather(data: np.ndarray, starts: np.ndarray, block_size: int) -> tuple[Tensor, Tensor]:
    """Blocks from ``starts``: x = data[s:s+T], y = data[s+1:s+T+1], int64 tensors (B, T)."""
    chunk = data[starts[:, None] + np.arange(block_size + 1)].astype(np.int64)
    return Tensor(chunk[:, :-1]), Tensor(chunk[:, 1:])


class RandomBlocks:
    """Training batches of random blocks, as nanoGPT's ``get_batch``, reproducible by position.

    Batch ``b`` of epoch ``e`` draws its starts from a generator seeded by ``(seed, e, b)``,
    so the batches depend on nothing else: resuming anywhere, or evaluating in between, gives
    the same ones. An "epoch" is ``batches_per_epoch`` batches (default: as many characters as
    the split holds, about one pass). Iterating yields epoch ``epoch`` and moves on by one, as
    DataLoader does; ``set_epoch`` chooses it.
    """

    def __init__(self, data: np.ndarray, batch_size: int, block_size: int, seed: int = 0,
                 batches_per_epoch: int | None = None) -> None:
        owner = "RandomBlocks"
        self.data = data
        self.batch_size = validate.integer(owner, "batch_size", batch_size, low=1)
        self.block_size = _block_size(owner, block_size, data, "training")
        self.seed = validate.integer(owner, "seed", seed, low=0)
        if batches_per_epoch is None:
            batches_per_epoch = max(1, len(data) // (self.batch_size * self.block_size))
        self.batches_per_epoch = validate.integer(owner, "batches_per_epoch",
                                                  batches_per_epoch, low=1)
        self.epoch = 0

    def __len__(self) -> int:
        return self.batches_per_epoch

    def set_epoch(self, epoch: int) -> None:
        """Make the next iteration produce epoch ``epoch`` (to resume a training run)."""
        self.epoch = validate.integer("RandomBlocks", "epoch", epoch, low=0)

    def starts(self, epoch: int, index: int) -> np.ndarray:
        """The block starts of batch ``index`` of ``epoch``: in [0, len - block_size)."""
        rng = np.random.default_rng([_TRAIN_TAG, self.seed, epoch, index])
        return rng.integers(0, len(self.data) - self.block_size, size=self.batch_size)

    def batch(self, epoch: int, index: int) -> tuple[Tensor, Tensor]:
        """Batch ``index`` of ``epoch``: (x, y) int64 tensors (batch_size, block_size)."""
        return _gather(self.data, self.starts(epoch, index), self.block_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        return (self.batch(epoch, b) for b in range(self.batches_per_epoch))

    def __repr__(self) -> str:
        return (f"RandomBlocks({len(self.data)} characters, batch_size={self.batch_size}, "
                f"block_size={self.block_size}, seed={self.seed}, "
                f"batches_per_epoch={self.batches_per_epoch}, epoch={self.epoch})")


class FixedBlocks:
    """Validation batches that are the same at every evaluation, so evaluations compare.

    The split is cut into consecutive blocks of ``block_size`` (each with its next characters
    as targets; a tail too short for a block is left out), served in one fixed shuffled order
    (``seed``) so that any first ``k`` batches are a spread sample of the whole split, and all
    of them predict every character once. ``batches`` keeps only that many.
    """

    def __init__(self, data: np.ndarray, batch_size: int, block_size: int,
                 batches: int | None = None, seed: int = 0) -> None:
        owner = "FixedBlocks"
        self.data = data
        self.batch_size = validate.integer(owner, "batch_size", batch_size, low=1)
        self.block_size = _block_size(owner, block_size, data, "validation")
        self.seed = validate.integer(owner, "seed", seed, low=0)
        blocks = np.arange(0, len(data) - self.block_size, self.block_size)
        order = np.random.default_rng([_VALID_TAG, self.seed]).permutation(len(blocks))
        starts = blocks[order]
        total = math.ceil(len(starts) / self.batch_size)
        batches = validate.integer(owner, "batches", batches, low=1, optional=True)
        self.batches = total if batches is None else min(batches, total)
        self.block_starts = starts[:self.batches * self.batch_size]

    def __len__(self) -> int:
        return self.batches

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        size = self.batch_size
        return (_gather(self.data, self.block_starts[b * size:(b + 1) * size], self.block_size)
                for b in range(self.batches))

    def __repr__(self) -> str:
        return (f"FixedBlocks({len(self.data)} characters, batch_size={self.batch_size}, "
                f"block_size={self.block_size}, batches={self.batches}, seed={self.seed})")


class TextDataset:
    """A text as character ids: ``vocab``, ``train`` (first 90%) and ``valid`` (last 10%).

    ``vocab`` defaults to the text's own characters; pass a checkpoint's to encode new text
    the same way (a character it lacks is an error). ``train``/``valid`` are uint16 (or
    uint32 for a vocabulary over 65,536) arrays of ids.
    """

    def __init__(self, text: str, vocab: CharVocab | None = None, val_fraction: float = 0.1,
                 name: str = "text") -> None:
        owner = "TextDataset"
        if not isinstance(text, str):
            raise TypeError(f"{owner}: text must be a str (read a file with read_text or "
                            f"TextDataset.from_file), got {type(text).__name__}")
        if not text:
            raise ValueError(f"{owner}: the text is empty; a dataset needs text to learn from")
        if vocab is not None and not isinstance(vocab, CharVocab):
            raise TypeError(f"{owner}: vocab must be a CharVocab or None, got "
                            f"{type(vocab).__name__}")
        self.val_fraction = validate.real(owner, "val_fraction", val_fraction, low=0.0,
                                          high=1.0, low_open=True, high_open=True)
        self.name = str(name)
        self.vocab = vocab if vocab is not None else CharVocab.from_text(text)
        dtype = np.uint16 if len(self.vocab) <= 1 << 16 else np.uint32
        ids = self.vocab.encode(text).astype(dtype)
        cut = int(len(ids) * (1 - self.val_fraction))
        if cut < 2 or len(ids) - cut < 2:
            raise ValueError(f"{owner}: {len(ids)} characters is too little text to split "
                             f"into training and validation ({1 - self.val_fraction:.0%} / "
                             f"{self.val_fraction:.0%}) blocks with a next character")
        self.train, self.valid = ids[:cut], ids[cut:]
        self.sha256 = hashlib.sha256(text.encode("utf-8")).hexdigest()

    @classmethod
    def from_file(cls, path: str | os.PathLike, vocab: CharVocab | None = None,
                  val_fraction: float = 0.1) -> TextDataset:
        """The dataset of a UTF-8 text file (gzip-compressed or not)."""
        return cls(read_text(path), vocab=vocab, val_fraction=val_fraction,
                   name=Path(path).name)

    def split(self, split: str) -> np.ndarray:
        """The ids of "train" or "valid" ("val" is accepted, as nanoGPT names it)."""
        if split == "val":
            split = "valid"
        validate.choice("TextDataset", "split", split, ("train", "valid"))
        return self.train if split == "train" else self.valid

    def get_batch(self, split: str, batch_size: int, block_size: int,
                  generator: np.random.Generator) -> tuple[Tensor, Tensor]:
        """Random blocks of ``split`` drawn with ``generator``: (x, y) int64 (B, T), nanoGPT's
        get_batch."""
        data = self.split(split)
        owner = "TextDataset.get_batch"
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"{owner}: generator must be a numpy.random.Generator (e.g. "
                            f"np.random.default_rng(0)), got {type(generator).__name__}")
        batch_size = validate.integer(owner, "batch_size", batch_size, low=1)
        block_size = _block_size(owner, block_size, data, split)
        starts = generator.integers(0, len(data) - block_size, size=batch_size)
        return _gather(data, starts, block_size)

    def train_loader(self, batch_size: int, block_size: int, seed: int = 0,
                     batches_per_epoch: int | None = None) -> RandomBlocks:
        """Random training blocks, reproducible by (seed, epoch, batch): see RandomBlocks."""
        return RandomBlocks(self.train, batch_size, block_size, seed, batches_per_epoch)

    def valid_loader(self, batch_size: int, block_size: int, batches: int | None = None,
                     seed: int = 0) -> FixedBlocks:
        """Fixed validation blocks, the same at every evaluation: see FixedBlocks."""
        return FixedBlocks(self.valid, batch_size, block_size, batches, seed)

    def config(self) -> dict[str, Any]:
        """What a checkpoint keeps of the data: name, vocabulary, split, size and sha256."""
        return {"name": self.name, "vocab": self.vocab.to_dict(),
                "val_fraction": self.val_fraction,
                "characters": len(self.train) + len(self.valid), "sha256": self.sha256}

    def __repr__(self) -> str:
        return (f"TextDataset({self.name!r}: {len(self.train):,} train + {len(self.valid):,} "
                f"valid characters, vocabulary of {len(self.vocab)})")


def load_text_dataset(name: str | os.PathLike, val_fraction: float = 0.1,
                      vocab: CharVocab | None = None) -> TextDataset:
    """A bundled corpus by name ("shakespeare-char") or any UTF-8 text file by path."""
    if isinstance(name, str) and name in TEXT_DATASETS:
        text = read_text(corpus_dir() / _CORPUS_FILE)
        digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        if digest != SHAKESPEARE_SHA256:  # the package's copy was changed: say so, not train
            raise ValueError(f"the bundled corpus {corpus_dir() / _CORPUS_FILE} has sha256 "
                             f"{digest}, not {SHAKESPEARE_SHA256} as its README says; "
                             "reinstall chainrule")
        return TextDataset(text, vocab=vocab, val_fraction=val_fraction, name=name)
    if isinstance(name, (str, os.PathLike)) and not Path(name).exists() \
            and "/" not in os.fspath(name) and not Path(name).suffix:
        raise ValueError(f"unknown text dataset {os.fspath(name)!r}: choose one of "
                         f"{', '.join(TEXT_DATASETS)}, or pass the path of a text file")
    return TextDataset.from_file(name, vocab=vocab, val_fraction=val_fraction)
