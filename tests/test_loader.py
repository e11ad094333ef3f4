"""DataLoader: batches, seeded and resumable shuffling, and whole-batch transforms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import chainrule as cr
from chainrule.data import (
    AddChannel,
    ArrayDataset,
    Compose,
    DataLoader,
    Flatten,
    Normalize,
    RandomHorizontalFlip,
    Reshape,
    ToFloat,
    Transform,
    load_dataset,
    load_mnist_sample,
    sample_dir,
)


def numbered(n: int = 10) -> ArrayDataset:
    """Sample i is the 2x3 image filled with i, labelled i: every batch shows where it came from."""
    x = np.repeat(np.arange(n, dtype=np.uint8), 6).reshape(n, 2, 3)
    return ArrayDataset(x, np.arange(n, dtype=np.int64))


def labels_of(loader: DataLoader) -> list[list[int]]:
    """One epoch's batches, as lists of labels."""
    return [yb.data.tolist() for _, yb in loader]


def test_batches_are_tensors_of_the_right_shapes() -> None:
    loader = DataLoader(numbered(10), batch_size=4)
    batches = list(loader)
    assert len(loader) == 3 and len(batches) == 3
    assert [xb.shape for xb, _ in batches] == [(4, 2, 3), (4, 2, 3), (2, 2, 3)]
    for xb, yb in batches:
        assert isinstance(xb, cr.Tensor) and isinstance(yb, cr.Tensor)
        assert xb.data.dtype == np.uint8 and yb.data.dtype == np.int64
        assert not xb.requires_grad
        np.testing.assert_array_equal(xb.data[:, 0, 0], yb.data)  # inputs stay with targets
    assert labels_of(DataLoader(numbered(10), batch_size=4)) == [[0, 1, 2, 3], [4, 5, 6, 7],
                                                                 [8, 9]]


def test_drop_last_and_small_or_empty_datasets() -> None:
    loader = DataLoader(numbered(10), batch_size=4, drop_last=True)
    assert len(loader) == 2 and [len(b) for b in labels_of(loader)] == [4, 4]
    assert len(DataLoader(numbered(3), batch_size=4)) == 1
    assert len(DataLoader(numbered(3), batch_size=4, drop_last=True)) == 0
    assert list(DataLoader(numbered(3), batch_size=4, drop_last=True)) == []
    assert len(DataLoader(numbered(8), batch_size=4, drop_last=True)) == 2
    assert list(DataLoader(numbered(0), batch_size=4)) == []


@given(n=st.integers(0, 60), batch_size=st.integers(1, 17), drop_last=st.booleans(),
       seed=st.integers(0, 2**32), epoch=st.integers(0, 1000))
def test_every_sample_is_served_exactly_once_per_epoch(n, batch_size, drop_last, seed,
                                                       epoch) -> None:
    loader = DataLoader(numbered(n), batch_size, shuffle=True, seed=seed, drop_last=drop_last)
    loader.set_epoch(epoch)
    batches = labels_of(loader)
    assert len(batches) == len(loader)
    served = [label for batch in batches for label in batch]
    assert len(served) == len(set(served))
    if drop_last:
        assert len(served) == n - n % batch_size
        assert all(len(batch) == batch_size for batch in batches)
    else:
        assert sorted(served) == list(range(n))


def test_shuffling_is_a_function_of_seed_and_epoch() -> None:
    def run(seed: int, epochs: int = 3) -> list[list[list[int]]]:
        loader = DataLoader(numbered(50), batch_size=8, shuffle=True, seed=seed)
        return [labels_of(loader) for _ in range(epochs)]

    first = run(seed=1)
    assert run(seed=1) == first
    assert run(seed=2) != first
    assert first[0] != first[1] != first[2] != first[0], "each epoch has its own order"
    assert first[0] != [list(range(i, min(i + 8, 50))) for i in range(0, 50, 8)]
    loader = DataLoader(numbered(50), batch_size=8, shuffle=True, seed=1)
    np.testing.assert_array_equal(loader.order(), np.concatenate(first[0]))
    np.testing.assert_array_equal(loader.order(2), np.concatenate(first[2]))
    assert labels_of(DataLoader(numbered(9), batch_size=4, seed=5)) == [[0, 1, 2, 3],
                                                                        [4, 5, 6, 7], [8]]


def test_iterating_advances_the_epoch_even_when_stopped_early() -> None:
    loader = DataLoader(numbered(20), batch_size=4, shuffle=True)
    assert loader.epoch == 0
    for _ in loader:
        break
    assert loader.epoch == 1
    iterator = iter(loader)
    assert loader.epoch == 2, "the epoch is claimed when iteration starts"
    np.testing.assert_array_equal(np.concatenate([yb.data for _, yb in iterator]),
                                  loader.order(1))


def augmenting_loader(seed: int = 3) -> DataLoader:
    x = np.arange(40 * 2 * 3, dtype=np.uint8).reshape(40, 2, 3)
    transform = Compose([ToFloat(), RandomHorizontalFlip(0.5), Flatten()])
    return DataLoader(ArrayDataset(x, np.arange(40)), batch_size=6, shuffle=True, seed=seed,
                      transform=transform)


def snapshot(loader: DataLoader) -> list[tuple[np.ndarray, np.ndarray]]:
    return [(xb.data.copy(), yb.data.copy()) for xb, yb in loader]


def test_a_resumed_run_sees_exactly_the_batches_of_an_uninterrupted_one() -> None:
    full = augmenting_loader()
    uninterrupted = [snapshot(full) for _ in range(5)]
    resumed = augmenting_loader()
    resumed.set_epoch(3)
    for epoch in (3, 4):
        for (x, y), (x0, y0) in zip(snapshot(resumed), uninterrupted[epoch], strict=True):
            np.testing.assert_array_equal(x, x0)
            np.testing.assert_array_equal(y, y0)
    assert resumed.epoch == 5
    flips = [np.concatenate([x for x, _ in epoch]) for epoch in uninterrupted]
    assert not np.array_equal(flips[0], flips[1])


def test_transforms_receive_whole_batches() -> None:
    seen = []

    def record(x: np.ndarray) -> np.ndarray:
        seen.append(x.shape)
        return x * 2

    loader = DataLoader(numbered(10), batch_size=4, transform=record)
    out = [xb.data for xb, _ in loader]
    assert seen == [(4, 2, 3), (4, 2, 3), (2, 2, 3)]
    np.testing.assert_array_equal(out[0][:, 0, 0], [0, 2, 4, 6])


def test_mlp_and_cnn_layouts_from_the_sample() -> None:
    splits = load_dataset("mnist-sample", search=[sample_dir()])
    assert splits.train.x.shape == (8000, 28, 28) and splits.train.x.dtype == np.uint8
    mlp = DataLoader(splits.train, batch_size=64, transform=Compose([ToFloat(), Flatten()]))
    xb, yb = next(iter(mlp))
    assert xb.shape == (64, 784) and xb.data.dtype == np.float32 and yb.data.dtype == np.int64
    (x_train, y_train), _ = load_mnist_sample()
    np.testing.assert_array_equal(xb.data, x_train[:64])  # same values as the lesson's arrays
    np.testing.assert_array_equal(yb.data, y_train[:64])
    cnn = DataLoader(splits.test, batch_size=32, transform=Compose([ToFloat(), AddChannel()]))
    xb, _ = next(iter(cnn))
    assert xb.shape == (32, 1, 28, 28)
    rows = Compose([ToFloat(), Flatten(), Reshape(1, 28, 28)])(splits.test.x[:32])
    np.testing.assert_array_equal(rows, xb.data)


def test_to_float_and_normalize_values() -> None:
    x = np.array([[0, 51, 255]], np.uint8)
    floats = ToFloat()(x)
    assert floats.dtype == np.float32
    np.testing.assert_array_equal(floats, np.float32([[0, 0.2, 1]]))
    assert ToFloat(np.float64)(x).dtype == np.float64
    out = Normalize(0.5, 0.25)(floats)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[-2, -1.2, 2]], rtol=1e-6)
    batch = np.ones((2, 3, 2, 2), np.float32) * np.float32([1, 2, 3]).reshape(1, 3, 1, 1)
    per_channel = Normalize([1, 2, 3], [1, 2, 4])(batch)
    np.testing.assert_allclose(per_channel, np.zeros_like(batch))
    np.testing.assert_allclose(Normalize([1, 2, 3], 2)(batch)[0, :, 0, 0], [0, 0, 0])
    with pytest.raises(TypeError, match="put ToFloat"):
        Normalize(0.5, 0.25)(x)
    with pytest.raises(ValueError, match="std must be positive"):
        Normalize(0.0, 0.0)
    with pytest.raises(ValueError, match="3 channel values"):
        Normalize([1, 2, 3], [1, 2, 3])(np.zeros((2, 4, 5), np.float32))
    with pytest.raises(TypeError, match="uint8"):
        ToFloat()(np.zeros(3, np.int64))


def test_horizontal_flip_mirrors_each_image_or_leaves_it() -> None:
    x = np.arange(200 * 3 * 4, dtype=np.uint8).reshape(200, 3, 4)
    before = x.copy()
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(x), x[..., ::-1])
    np.testing.assert_array_equal(RandomHorizontalFlip(0.0)(x), x)
    out = RandomHorizontalFlip(0.5)(x, np.random.default_rng(0))
    mirrored = np.all(out == x[..., ::-1], axis=(1, 2))
    kept = np.all(out == x, axis=(1, 2))
    assert np.all(mirrored ^ kept), "each image is either mirrored or untouched"
    assert 60 < mirrored.sum() < 140
    np.testing.assert_array_equal(out, RandomHorizontalFlip(0.5)(x, np.random.default_rng(0)))
    np.testing.assert_array_equal(x, before)  # flips work on a copy, never the dataset
    channels = np.arange(2 * 2 * 2 * 3).reshape(2, 2, 2, 3)
    np.testing.assert_array_equal(RandomHorizontalFlip(1.0)(channels), channels[..., ::-1])
    with pytest.raises(ValueError, match="flip before Flatten"):
        RandomHorizontalFlip(0.5)(x.reshape(200, -1))
    with pytest.raises(ValueError, match=r"p must lie in \[0, 1\]"):
        RandomHorizontalFlip(1.5)


def test_random_transforms_in_a_loader_depend_on_seed_epoch_and_batch() -> None:
    x = np.arange(64 * 2 * 2, dtype=np.uint8).reshape(64, 2, 2)
    flip = RandomHorizontalFlip(0.5)

    def flipped(seed: int, epoch: int) -> np.ndarray:
        loader = DataLoader(ArrayDataset(x, np.arange(64)), batch_size=8, seed=seed,
                            transform=flip)
        loader.set_epoch(epoch)
        return np.concatenate([xb.data for xb, _ in loader])

    assert np.array_equal(flipped(0, 0), flipped(0, 0))
    assert not np.array_equal(flipped(0, 0), flipped(0, 1))
    assert not np.array_equal(flipped(0, 0), flipped(1, 0))
    masks = (flipped(0, 0) != x).any(axis=(1, 2)).reshape(8, 8)
    assert len({tuple(row) for row in masks}) > 1, "batches draw different flips"


def test_transform_classes_can_be_written_by_users() -> None:
    class AddNoise(Transform):
        def __call__(self, x, rng=None):
            return x + rng.standard_normal(x.shape).astype(x.dtype)

    data = ArrayDataset(np.zeros((8, 3), np.float32), np.zeros(8))
    a = [xb.data for xb, _ in DataLoader(data, 4, transform=AddNoise())]
    b = [xb.data for xb, _ in DataLoader(data, 4, transform=Compose([AddNoise()]))]
    np.testing.assert_array_equal(np.concatenate(a), np.concatenate(b))
    assert repr(Compose([ToFloat(), Normalize(0.1, 0.3)])).startswith("Compose([ToFloat()")


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1"),
    ({"batch_size": -3}, ValueError, "batch_size must be >= 1, got -3"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be an int"),
    ({"batch_size": True}, TypeError, "batch_size must be an int"),
    ({"seed": -1}, ValueError, "seed must be >= 0"),
    ({"seed": None}, TypeError, "seed must be an int"),
    ({"transform": 3}, TypeError, "not callable"),
])
def test_bad_arguments_get_clear_errors(kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        DataLoader(numbered(4), **kwargs)


def test_bad_datasets_get_clear_errors() -> None:
    x, y = np.zeros((5, 2)), np.zeros(4)
    with pytest.raises(ValueError, match="x has 5 samples but y has 4"):
        ArrayDataset(x, y)
    with pytest.raises(ValueError, match="need a sample axis"):
        ArrayDataset(np.float32(1), np.zeros(1))
    with pytest.raises(TypeError, match="ArrayDataset"):
        DataLoader((x, y))
    with pytest.raises(TypeError, match="ArrayDataset"):
        DataLoader(42)
    loader = DataLoader(numbered(4))
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        loader.set_epoch(-1)
    np.testing.assert_array_equal(np.asarray(ArrayDataset([[1, 2], [3, 4]], [0, 1])[1][0]),
                                  [3, 4])
    assert repr(numbered(4)) == "ArrayDataset(x: (4, 2, 3) uint8, y: (4,) int64)"
