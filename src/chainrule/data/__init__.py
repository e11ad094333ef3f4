"""Data: the IDX reader and datasets (the MNIST sample ships inside the package)."""

from chainrule.data.datasets import load_mnist_sample, sample_dir
from chainrule.data.idx import IDXError, parse_idx, read_idx

__all__ = ["IDXError", "load_mnist_sample", "parse_idx", "read_idx", "sample_dir"]
