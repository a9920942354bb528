"""Data sets: the IDX format, MNIST (bundled, offline) and Fashion-MNIST, image folders,
``.npz`` archives, and :func:`load_dataset`, which reads any of them."""

from cnnlab.datasets.idx import read_idx, write_idx
from cnnlab.datasets.images import DataSplits, LabelledImages, load_image_folder
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
from cnnlab.datasets.npz import load_npz
from cnnlab.datasets.sources import load_dataset

__all__ = [
    "DataSplits",
    "DownloadError",
    "LabelledImages",
    "default_cache_dir",
    "download_mnist",
    "load_data",
    "load_dataset",
    "load_fashion_mnist",
    "load_idx_dir",
    "load_image_folder",
    "load_mnist",
    "load_npz",
    "read_idx",
    "to_model_input",
    "verify_checksums",
    "write_idx",
]
