"""Data sets: the IDX format, MNIST (bundled, offline) and Fashion-MNIST."""

from cnnlab.datasets.idx import read_idx, write_idx
from cnnlab.datasets.mnist import (
    DownloadError,
    default_cache_dir,
    download_mnist,
    load_data,
    load_fashion_mnist,
    load_idx_dir,
    load_mnist,
    to_model_input,
    verify_checksums,
)

__all__ = [
    "DownloadError",
    "default_cache_dir",
    "download_mnist",
    "load_data",
    "load_fashion_mnist",
    "load_idx_dir",
    "load_mnist",
    "read_idx",
    "to_model_input",
    "verify_checksums",
    "write_idx",
]
