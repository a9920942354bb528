"""One entry point for every kind of labelled image data: :func:`load_dataset`.

- ``None``: MNIST, bundled with cnnlab (:func:`~cnnlab.datasets.mnist.load_mnist`);
- a ``.npz`` file: :func:`~cnnlab.datasets.npz.load_npz`;
- a folder holding the four MNIST IDX files (MNIST, Fashion-MNIST, any data set
  in that layout): :func:`~cnnlab.datasets.mnist.load_idx_dir`, classes
  ``"0"`` .. ``"9"``;
- a folder of class folders: :func:`~cnnlab.datasets.images.load_image_folder`.

Each gives a :class:`DataSplits` (defined in :mod:`cnnlab.datasets.images`,
which the readers share, so that this module can import them without a cycle;
re-exported here): ``train`` and
``test`` :class:`LabelledImages` with ``(N, H, W, C)`` images and int64
labels, the class names and a one-line ``source``.

``image_size`` and ``color`` work for every source. An image folder is
resized and converted as it is decoded (and cached); MNIST, IDX and ``.npz``
data are resized and converted in memory, with the same rules: Pillow's
bilinear filter, grey repeated into RGB, colour to Pillow's ``L`` luminance
(for float model input: ``0.299 R + 0.587 G + 0.114 B``, resized in float32).
The cache options (``cache_dir``, ``skip_bad``, ``progress``) matter to image
folders only.

>>> data = load_dataset()  # MNIST, bundled with cnnlab
>>> data.train.x.shape, data.test.x.shape, data.class_names[:3]
((60000, 28, 28, 1), (10000, 28, 28, 1), ['0', '1', '2'])
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab import imageio
from cnnlab.datasets.images import (
    DataSplits,
    IndexedArray,
    LabelledImages,
    check_color,
    check_image_size,
    load_image_folder,
)
from cnnlab.datasets.mnist import MNIST_FILES, load_idx_dir, load_mnist
from cnnlab.datasets.npz import load_npz
from cnnlab.errors import DataFormatError

__all__ = ["DataSplits", "IndexedArray", "LabelledImages", "load_dataset"]

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
_DIGITS = [str(i) for i in range(10)]
_ACCEPTED = (
    "a .npz file (keys x, y), a folder holding the four MNIST IDX files, or a folder of "
    "class folders (PATH/<class>/<images>, or PATH/train/<class>/... and PATH/test/<class>/...)"
)


def _idx_files(folder: Path) -> tuple[list[str], list[str]]:
    """The MNIST IDX files ``folder`` has and lacks (each with or without ``.gz``)."""
    have, lack = [], []
    for stem in MNIST_FILES.values():
        dotted = stem.replace("-idx", ".idx")
        names = [stem + ".gz", stem, dotted + ".gz", dotted]
        (have if any((folder / n).is_file() for n in names) else lack).append(stem)
    return have, lack


def _convert_pixels(x: np.ndarray, size: tuple[int, int], color: imageio.Color) -> np.ndarray:
    channels = 3 if color == "rgb" else 1
    out = np.empty((len(x), *size, channels), dtype=np.uint8)
    for i, image in enumerate(x):
        if channels == 3 and image.shape[2] == 1:
            image = np.repeat(image, 3, axis=2)
        elif channels == 1 and image.shape[2] == 3:
            image = imageio.to_uint8_array(Image.fromarray(image, "RGB"), "grayscale")
        out[i] = imageio.resize_uint8(image, size)
    return out


def _convert_floats(x: np.ndarray, size: tuple[int, int], color: imageio.Color) -> np.ndarray:
    if color == "grayscale" and x.shape[3] == 3:
        x = (x @ _LUMA)[..., None]
    elif color == "rgb" and x.shape[3] == 1:
        x = np.repeat(x, 3, axis=3)
    if x.shape[1:3] == size:
        return np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty((len(x), *size, x.shape[3]), dtype=np.float32)
    for i, image in enumerate(x):
        for c in range(image.shape[2]):
            plane = Image.fromarray(np.ascontiguousarray(image[..., c], dtype=np.float32), "F")
            out[i, ..., c] = np.asarray(plane.resize(size[::-1], Image.Resampling.BILINEAR))
    return out


def _convert(
    part: LabelledImages | None, size: tuple[int, int] | None, color: imageio.Color | None
) -> LabelledImages | None:
    """``part`` resized to ``size`` and converted to ``color`` (in memory), where asked."""
    if part is None:
        return None
    x = np.asarray(part.x)
    target = size or x.shape[1:3]
    channels = x.shape[3] if color is None else 3 if color == "rgb" else 1
    mode: imageio.Color = "rgb" if channels == 3 else "grayscale"
    if target == x.shape[1:3] and channels == x.shape[3]:
        return part
    if x.dtype == np.uint8:
        return LabelledImages(_convert_pixels(x, target, mode), part.y, part.files)
    return LabelledImages(_convert_floats(x, target, mode), part.y, part.files)


def _in_memory(
    data: DataSplits, size: tuple[int, int] | None, color: imageio.Color | None
) -> DataSplits:
    if size is None and color is None:
        return data
    train = _convert(data.train, size, color)
    assert train is not None
    data.train, data.test = train, _convert(data.test, size, color)
    height, width, channels = train.x.shape[1:]
    data.source += f", converted to {height}x{width}x{channels}"
    return data


def _from_idx(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray],
              source: str) -> DataSplits:
    return DataSplits(
        train=LabelledImages(train[0][..., None], train[1]),
        test=LabelledImages(test[0][..., None], test[1]),
        class_names=list(_DIGITS),
        source=f"{source}: {len(train[0])} training + {len(test[0])} test images, 10 classes, "
        f"{train[0].shape[1]}x{train[0].shape[2]} grayscale",
    )


def load_dataset(
    path: str | os.PathLike[str] | None = None,
    *,
    image_size: tuple[int, int] | None = None,
    color: imageio.Color | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> DataSplits:
    """Load labelled images from whatever ``path`` is (see the module docstring).

    Args:
        path: a ``.npz`` file, a folder of MNIST IDX files, a folder of class
            folders, or ``None`` for the bundled MNIST.
        image_size: ``(height, width)`` to resize every image to (bilinear);
            by default the source's size (for an image folder: the most common).
        color: ``"grayscale"`` or ``"rgb"``; by default the source's (for an
            image folder: ``"rgb"`` if any image is in colour).
        cache_dir, skip_bad, progress: as :func:`load_image_folder` (image
            folders only).

    Returns:
        :class:`DataSplits`.

    Raises:
        InvalidArgumentError: a bad ``image_size`` or ``color``.
        DataFormatError: ``path`` does not exist, is none of the kinds above
            (the message lists them), or its data is malformed (see each reader).
    """
    size = check_image_size(image_size)
    mode = check_color(color)
    if path is None:
        train, test = load_mnist()
        data = _from_idx(train, test, "MNIST (bundled with cnnlab)")
        data.digit_preparation = size in (None, (28, 28)) and mode in (None, "grayscale")
        return _in_memory(data, size, mode)
    where = Path(path).expanduser()
    if where.is_file():
        if where.suffix.lower() != ".npz":
            raise DataFormatError(f"{where}: not a data set cnnlab reads; it accepts {_ACCEPTED}")
        return _in_memory(load_npz(where), size, mode)
    if where.is_dir():
        have, lack = _idx_files(where)
        if have and not lack:
            train, test = load_idx_dir(where)
            return _in_memory(_from_idx(train, test, f"IDX folder {where}"), size, mode)
        if have:
            raise DataFormatError(
                f"{where}: holds MNIST IDX files ({', '.join(have)}) but not "
                f"{', '.join(lack)} (with or without .gz): an IDX data set needs all four"
            )
        return load_image_folder(where, image_size=size, color=mode, cache_dir=cache_dir,
                                 skip_bad=skip_bad, progress=progress)
    raise DataFormatError(f"{where}: no such file or folder; cnnlab reads {_ACCEPTED}")
