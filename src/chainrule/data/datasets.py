"""Datasets as NumPy arrays."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from chainrule.data.idx import read_idx

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
