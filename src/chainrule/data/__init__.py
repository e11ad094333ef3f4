"""Data: IDX and safe pickle readers, datasets (the MNIST sample ships inside), loader."""

from chainrule.data import transforms
from chainrule.data.datasets import (
    DATASETS,
    FASHION_CLASSES,
    ArrayDataset,
    DatasetNotFoundError,
    Splits,
    cache_dir,
    load_dataset,
    load_mnist_sample,
    sample_dir,
    search_paths,
)
from chainrule.data.download import DownloadError, Mirror, download_file
from chainrule.data.idx import IDXError, parse_idx, read_idx
from chainrule.data.loader import DataLoader
from chainrule.data.pickled import SafeUnpickler, UnsafePickleError, read_mnist_pkl, safe_loads
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
    "AddChannel", "ArrayDataset", "Compose", "DATASETS", "DataLoader", "DatasetNotFoundError",
    "DownloadError", "FASHION_CLASSES", "Flatten", "IDXError", "Mirror", "Normalize",
    "RandomHorizontalFlip", "RandomShift", "Reshape", "SafeUnpickler", "Splits", "ToFloat",
    "Transform", "UnsafePickleError", "cache_dir", "download_file", "load_dataset",
    "load_mnist_sample", "parse_idx", "read_idx", "read_mnist_pkl", "safe_loads", "sample_dir",
    "search_paths", "transforms"
]
