"""Data: IDX and safe pickle readers, datasets (the MNIST sample and a Shakespeare corpus ship
inside), loader, character-level text."""

from chainrule.data import transforms
from chainrule.data.datasets import (
    DATASETS,
    FASHION_CLASSES,
    ArrayDataset,
    DatasetNotFoundError,
    Splits,
    cache_dir,
    class_names,
    load_dataset,
    load_mnist_sample,
    sample_dir,
    search_paths,
)
from chainrule.data.download import DownloadError, Mirror, download_file
from chainrule.data.idx import IDXError, parse_idx, read_idx
from chainrule.data.loader import DataLoader
from chainrule.data.pickled import SafeUnpickler, UnsafePickleError, read_mnist_pkl, safe_loads
from chainrule.data.text import (
    TEXT_DATASETS,
    CharVocab,
    FixedBlocks,
    RandomBlocks,
    TextDataset,
    corpus_dir,
    load_text_dataset,
    read_text,
)
from chainrule.data.transforms import (
    AddChannel,
    Compose,
    Flatten,
    Normalize,
    RandomHorizontalFlip,
    RandomShift,
    Reshape,
    ToFloat,
    Transform,
)

__all__ = [
    "AddChannel", "ArrayDataset", "CharVocab", "Compose", "DATASETS", "DataLoader",
    "DatasetNotFoundError", "DownloadError", "FASHION_CLASSES", "FixedBlocks", "Flatten",
    "IDXError", "Mirror", "Normalize", "RandomBlocks", "RandomHorizontalFlip", "RandomShift",
    "Reshape", "SafeUnpickler", "Splits", "TEXT_DATASETS", "TextDataset", "ToFloat",
    "Transform", "UnsafePickleError", "cache_dir", "class_names", "corpus_dir", "download_file",
    "load_dataset", "load_mnist_sample", "load_text_dataset", "parse_idx", "read_idx",
    "read_mnist_pkl", "read_text", "safe_loads", "sample_dir", "search_paths", "transforms"
]
