"""Labelled image folders, decoded once into a memory-mapped cache.

The layout is that of Keras's ``image_dataset_from_directory`` and
torchvision's ``ImageFolder``: one subfolder per class, named after it::

    PATH/                        PATH/
      cat/ 001.jpg 002.png ...     train/ cat/ ...  dog/ ...
      dog/ a.jpg sub/b.jpg ...     test/  cat/ ...  dog/ ...

* **Classes** are the subfolders, indexed in sorted name order (Python's string
  order, as Keras and torchvision sort them). Images in a class's subfolders
  count for the class. A class folder without images, a single class, and a
  folder without class subfolders are errors.
* **Train and test**: if PATH holds ``train/`` and ``test/`` (and no other
  folder with images), those are the training and the test part; both must
  have the same class folders.
* **Images**: files ending in :data:`IMAGE_EXTENSIONS` (any case). Hidden
  files and folders (``.DS_Store``, ``.git``) are ignored; every other file
  (text, a ``.psd``, a file lying beside the class folders) is skipped and
  counted in :attr:`DataSplits.skipped_files`.
* **Size**: ``image_size=(H, W)``, or by default the most common size among the
  images (after EXIF orientation; ties go to the larger area), read from their
  headers only. Every image is resized to it with Pillow's bilinear filter.
* **Colour**: ``"grayscale"`` or ``"rgb"``, or by default ``"rgb"`` if any image is
  in colour (:func:`cnnlab.imageio.is_color_mode`), else ``"grayscale"``.
  Transparent pixels are composited onto black (:mod:`cnnlab.imageio`).
* **Bad images**: a corrupt, truncated or oversized (decompression bomb) image
  is an error naming the file, or, with ``skip_bad=True``, left out and listed
  in :attr:`DataSplits.skipped_bad`.

**The cache.** Decoding happens once. The pixels go to ``<key>.npy`` (uint8
``(N, H, W, C)``, training images then test images) in the cache folder
(``cache_dir``, else ``$CNNLAB_CACHE/images``, ``$XDG_CACHE_HOME/cnnlab/images``
or ``~/.cache/cnnlab/images``), beside ``<key>.json`` (labels, class names, the
file list, what was skipped). The key is a SHA-256 of the folder's absolute
path, every image's relative path, size and modification time (ns), the
options (``image_size``, ``color``, ``skip_bad``), the pixel limit, Pillow's
version and :data:`CACHE_VERSION`: touch a file, change an option, and the
images are decoded again. The ``.npy`` is written to a temporary file,
flushed, synced and renamed; the ``.json`` is written the same way, after it,
so a cache missing its ``.json`` (a crash) is never used. Old entries are not
removed: the folder can be emptied at any time. The images come back as a
read-only ``np.memmap`` of the ``.npy``, so a data set larger than memory works.

Decoding runs on :data:`DECODE_THREADS` threads (Pillow releases the GIL while
it decodes and resizes), each writing its image straight into the memory map,
with a progress bar unless ``progress=False``.

>>> import tempfile
>>> from pathlib import Path
>>> from PIL import Image
>>> with tempfile.TemporaryDirectory() as tmp:
...     for name, value in [("dark", 10), ("light", 250)]:
...         (Path(tmp) / "pics" / name).mkdir(parents=True)
...         for i in range(3):
...             Image.new("L", (8, 6), value).save(Path(tmp) / "pics" / name / f"{i}.png")
...     data = load_image_folder(Path(tmp) / "pics", cache_dir=Path(tmp) / "cache",
...                              progress=False)
...     print(data.class_names, data.train.x.shape, data.train.y.tolist())
...     print(int(data.train.x[0, 0, 0, 0]), int(data.train.x[-1, 0, 0, 0]), data.test)
['dark', 'light'] (6, 6, 8, 1) [0, 0, 0, 1, 1, 1]
10 250 None
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import numbers
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL

from cnnlab import imageio
from cnnlab.errors import DataFormatError, ImageDecodeError, InvalidArgumentError
from cnnlab.fileio import atomic_write_text, fsync_dir

__all__ = [
    "CACHE_VERSION",
    "DECODE_THREADS",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_SIDE",
    "DataSplits",
    "IndexedArray",
    "LabelledImages",
    "check_color",
    "check_image_size",
    "default_image_cache_dir",
    "load_image_folder",
]

#: File name endings taken as images (compared in lower case).
IMAGE_EXTENSIONS: tuple[str, ...] = (
    ".bmp", ".gif", ".jpeg", ".jpg", ".png", ".tif", ".tiff", ".webp",
)

#: The largest ``image_size`` side accepted: 4096 x 4096 RGB is 48 MiB per image.
MAX_IMAGE_SIDE = 4096

#: Bumped whenever the cache's content or decoding changes, so old entries are ignored.
CACHE_VERSION = 1

#: Threads decoding images. Pillow releases the GIL in its decoders and in
#: resizing, so threads scale with the cores; a few more than the cores hide
#: file-system latency, and more than 8 only add memory (one image each).
DECODE_THREADS = min(8, (os.cpu_count() or 1) + 1)

_CHUNK = 512  # images submitted to the pool at once (bounds the futures held)
_BLOCK = 16  # images per task


# --------------------------------------------------------------------------- the data


class IndexedArray:
    """Rows ``indices`` of ``base``, read only when asked for: a lazy ``base[indices]``.

    What :meth:`LabelledImages.split` gives as ``x``, so splitting a memory-mapped
    data set copies nothing. It has ``len()``, ``shape``, ``dtype`` and ``ndim``,
    and indexing reads from ``base``: ``a[i]`` is one example, ``a[idx]`` (an
    integer array, a boolean mask or a slice) a new array of examples, and
    ``np.asarray(a)`` all of them (a copy, read in index order).

    >>> a = IndexedArray(np.arange(10) * 10, [1, 4, 7])
    >>> len(a), a.shape, a[2], a[np.array([0, 2])]
    (3, (3,), np.int64(70), array([10, 70]))
    >>> np.asarray(a)
    array([10, 40, 70])
    """

    def __init__(self, base: Any, indices: Sequence[int] | np.ndarray) -> None:
        idx = np.asarray(indices)
        if idx.ndim != 1 or (idx.size and idx.dtype.kind not in "iu"):
            raise InvalidArgumentError(
                f"IndexedArray: indices must be a 1-D integer array, got {idx.dtype} "
                f"of shape {idx.shape}"
            )
        idx = idx.astype(np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(base)):
            raise InvalidArgumentError(
                f"IndexedArray: indices must lie in 0..{len(base) - 1}, got "
                f"{int(idx.min())}..{int(idx.max())}"
            )
        self.base, self.indices = base, idx

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.indices), *self.base.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.base.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, key: Any) -> Any:
        rest: tuple[Any, ...] = ()
        if isinstance(key, tuple):
            key, rest = (key[0], key[1:]) if key else (slice(None), ())
        picked = self.indices[key]
        rows = self.base[picked] if np.ndim(picked) else self.base[int(picked)]
        if not rest:
            return rows
        return rows[rest] if not np.ndim(picked) else rows[(slice(None), *rest)]

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("IndexedArray: reading the rows always makes a copy")
        out = np.asarray(self.base[self.indices])
        return out if dtype is None else out.astype(dtype, copy=False)

    def __repr__(self) -> str:
        base = type(self.base).__name__
        return f"IndexedArray(shape={self.shape}, dtype={self.dtype}, base={base})"


@dataclass
class LabelledImages:
    """Images and their integer labels: one part (training or test) of a data set.

    Attributes:
        x: ``(N, H, W, C)`` images: uint8 pixels (an array or a read-only
            ``np.memmap``), or float32 model input (from an ``.npz`` holding
            floats), or an :class:`IndexedArray` over either (after :meth:`split`).
        y: ``(N,)`` int64 labels, indices into :attr:`DataSplits.class_names`.
        files: for images read from files, each one's path relative to the
            data set's folder; ``None`` otherwise.
    """

    x: Any
    y: np.ndarray
    files: list[str] | None = None

    def __post_init__(self) -> None:
        self.y = np.asarray(self.y, dtype=np.int64)
        if self.y.ndim != 1 or len(self.y) != len(self.x):
            raise InvalidArgumentError(
                f"LabelledImages: {len(self.x)} images but labels of shape {self.y.shape}"
            )
        if self.files is not None and len(self.files) != len(self.y):
            raise InvalidArgumentError(
                f"LabelledImages: {len(self.y)} images but {len(self.files)} file names"
            )

    def __len__(self) -> int:
        return len(self.y)

    def head(self, n: int) -> LabelledImages:
        """The first ``n`` examples (a view: nothing is read)."""
        if isinstance(self.x, np.ndarray):
            files = None if self.files is None else self.files[:n]
            return LabelledImages(self.x[:n], self.y[:n], files)
        return self._subset(np.arange(min(n, len(self.y))))

    def subset(self, idx: np.ndarray) -> LabelledImages:
        """The examples ``idx`` (sorted, for sequential reads), read lazily."""
        return self._subset(np.asarray(idx))

    def _subset(self, idx: np.ndarray) -> LabelledImages:
        if isinstance(self.x, IndexedArray):
            x = IndexedArray(self.x.base, self.x.indices[idx])
        else:
            x = IndexedArray(self.x, idx)
        files = None if self.files is None else [self.files[i] for i in idx]
        return LabelledImages(x, self.y[idx], files)

    def split(self, fraction: float, seed: int) -> tuple[LabelledImages, LabelledImages]:
        """A seeded, stratified split: ``(kept, held_out)``, e.g. training and validation.

        Each class puts ``round(fraction * count)`` of its examples (rounded
        half up) in ``held_out``, drawn at random from ``seed``; a class with
        at least two examples puts at least one on each side, a class with one
        keeps it. Both parts list their examples in their original order (so
        reads from a memory map stay sequential), and their ``x`` is an
        :class:`IndexedArray` over this part's images: nothing is copied until
        a batch is read.

        Args:
            fraction: the share held out, strictly between 0 and 1.
            seed: the random generator's seed; the same seed, the same split.

        Raises:
            InvalidArgumentError: ``fraction`` is not in (0, 1), or ``seed`` not an int.

        >>> part = LabelledImages(np.zeros((10, 2, 2, 1), np.uint8), [0] * 6 + [1] * 4)
        >>> kept, held = part.split(0.25, seed=0)
        >>> len(kept), len(held), np.bincount(held.y).tolist()
        (7, 3, [2, 1])
        """
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (
            0.0 < float(fraction) < 1.0
        ):
            raise InvalidArgumentError(
                f"split: fraction must be a number strictly between 0 and 1, got {fraction!r}"
            )
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise InvalidArgumentError(f"split: seed must be an int, got {seed!r}")
        rng = np.random.default_rng(int(seed))
        held: list[np.ndarray] = []
        for label in np.unique(self.y):
            members = np.flatnonzero(self.y == label)
            count = len(members)
            take = int(np.floor(float(fraction) * count + 0.5))
            take = 0 if count < 2 else min(max(take, 1), count - 1)
            held.append(rng.choice(members, size=take, replace=False))
        held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, np.int64)
        mask = np.ones(len(self.y), dtype=bool)
        mask[held_idx] = False
        return self._subset(np.flatnonzero(mask)), self._subset(held_idx)


@dataclass
class DataSplits:
    """A labelled data set: a training part, an optional test part, the class names.

    Attributes:
        train: the training images.
        test: the test images, where the source has a test part, else ``None``.
        class_names: label ``i`` is ``class_names[i]``.
        source: one line saying where the data came from.
        skipped_files: files left out as not images (see :func:`load_image_folder`).
        skipped_bad: images left out as unreadable (``skip_bad=True``), as paths
            relative to the folder.
    """

    train: LabelledImages
    test: LabelledImages | None
    class_names: list[str]
    source: str
    skipped_files: int = 0
    skipped_bad: list[str] = field(default_factory=list)
    #: How a new image becomes input like this data (what model files keep):
    #: ``None`` means resizing to :attr:`image_shape`; the bundled MNIST sets
    #: ``{"mode": "digit"}`` (the slides' MNIST preparation of a digit).
    digit_preparation: bool = False

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def preprocessing(self) -> dict[str, Any]:
        """``{"mode": "digit"}``, or ``{"mode": "resize", "size": [H, W], "color": ...}``."""
        if self.digit_preparation:
            return {"mode": "digit"}
        height, width, channels = self.image_shape
        return {"mode": "resize", "size": [int(height), int(width)],
                "color": "rgb" if channels == 3 else "grayscale"}

    @property
    def image_shape(self) -> tuple[int, ...]:
        """``(H, W, C)`` of one image."""
        return tuple(self.train.x.shape[1:])


# ---------------------------------------------------------------------- arguments


def check_image_size(value: Any) -> tuple[int, int] | None:
    """``image_size`` as ``(height, width)`` ints, or ``None``.

    >>> check_image_size([32, 48])
    (32, 48)
    >>> check_image_size((0, 5))
    Traceback (most recent call last):
    ...
    cnnlab.errors.InvalidArgumentError: image_size must be two positive ints ..., got (0, 5)
    """
    if value is None:
        return None
    pair = tuple(value) if isinstance(value, list | tuple) else None
    if pair is None or len(pair) != 2 or any(
        isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0 for v in pair
    ):
        raise InvalidArgumentError(
            f"image_size must be two positive ints (height, width), got {value!r}"
        )
    height, width = int(pair[0]), int(pair[1])
    if max(height, width) > MAX_IMAGE_SIDE:
        raise InvalidArgumentError(
            f"image_size {value!r} is absurd: each side must be at most {MAX_IMAGE_SIDE} "
            "pixels (cnnlab.datasets.images.MAX_IMAGE_SIDE)"
        )
    return height, width


def check_color(value: Any) -> imageio.Color | None:
    """``color`` if it is ``"grayscale"``, ``"rgb"`` or ``None``."""
    if value is not None and value not in ("grayscale", "rgb"):
        raise InvalidArgumentError(
            f"color must be 'grayscale', 'rgb' or None (inferred), got {value!r}"
        )
    return value


def default_image_cache_dir() -> Path:
    """Where decoded image folders are cached by default.

    ``$CNNLAB_CACHE/images`` if ``CNNLAB_CACHE`` is set, else
    ``$XDG_CACHE_HOME/cnnlab/images``, else ``~/.cache/cnnlab/images``.
    """
    if os.environ.get("CNNLAB_CACHE"):
        return Path(os.environ["CNNLAB_CACHE"]).expanduser() / "images"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cnnlab" / "images"


# ------------------------------------------------------------------------- layout


@dataclass
class _Part:
    """One part (training or test) of a folder: its classes and image files."""

    name: str  # "train", "test", or "" for a folder without parts
    class_names: list[str]
    files: list[str]  # relative to the data set's folder, in label order
    labels: list[int]


def _visible(name: str) -> bool:
    return not name.startswith(".")


def _is_image(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _walk(folder: Path) -> Iterator[tuple[str, list[str]]]:
    """``(dirpath, visible file names)`` under ``folder``, sorted, symlinks followed once."""
    seen: set[tuple[int, int]] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        st = os.stat(dirpath)
        if (st.st_dev, st.st_ino) in seen:  # a symlink loop
            dirnames[:] = []
            continue
        seen.add((st.st_dev, st.st_ino))
        dirnames[:] = sorted(d for d in dirnames if _visible(d))
        yield dirpath, sorted(f for f in filenames if _visible(f))


def _has_images(folder: Path) -> bool:
    return any(any(map(_is_image, names)) for _, names in _walk(folder))


def _count_files(folder: Path) -> int:
    return sum(len(names) for _, names in _walk(folder))


def _entries(folder: Path) -> tuple[list[str], int]:
    """Visible subfolder names (sorted) and the number of visible files in ``folder``."""
    dirs, files = [], 0
    for entry in os.scandir(folder):
        if not _visible(entry.name):
            continue
        if entry.is_dir():
            dirs.append(entry.name)
        else:
            files += 1
    return sorted(dirs), files


def _scan_part(root: Path, folder: Path, name: str) -> tuple[_Part, int]:
    """The classes and images of one part, and how many files it skips."""
    classes, skipped = _entries(folder)
    if not classes:
        raise DataFormatError(
            f"{folder}: no class subfolders: expected one folder per class, "
            f"{folder}{os.sep}<class name>{os.sep}<images> (found {skipped} files and no folders)"
        )
    files: list[str] = []
    labels: list[int] = []
    empty: list[str] = []
    for label, class_name in enumerate(classes):
        count = 0
        for dirpath, names in _walk(folder / class_name):
            for fname in names:
                if _is_image(fname):
                    files.append(Path(dirpath, fname).relative_to(root).as_posix())
                    labels.append(label)
                    count += 1
                else:
                    skipped += 1
        if count == 0:
            empty.append(class_name)
    accepted = " ".join(IMAGE_EXTENSIONS)
    if not files:
        raise DataFormatError(
            f"{folder}: no images in its class folders ({', '.join(classes)}); "
            f"image files end in {accepted} (any case)"
        )
    if empty:
        raise DataFormatError(
            f"{folder}: empty class folder{'s' if len(empty) > 1 else ''} "
            f"{', '.join(str(folder / c) for c in empty)}: every class needs at least one "
            f"image ({accepted})"
        )
    if len(classes) < 2:
        raise DataFormatError(
            f"{folder}: only one class folder ({classes[0]}); a classifier needs at least "
            "two classes, each a subfolder of images"
        )
    return _Part(name, classes, files, labels), skipped


def _scan(root: Path) -> tuple[list[_Part], int]:
    """The parts of a folder (one, or train and test) and the files they skip."""
    if not root.exists():
        raise DataFormatError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataFormatError(f"{root}: not a folder of class subfolders")
    dirs, loose = _entries(root)
    if "train" not in dirs or "test" not in dirs:
        part, skipped = _scan_part(root, root, "")
        return [part], skipped
    others = [d for d in dirs if d not in ("train", "test")]
    with_images = [d for d in others if _has_images(root / d)]
    if with_images:
        raise DataFormatError(
            f"{root}: holds train/ and test/ but also {', '.join(with_images)} with images: "
            "keep only train/ and test/ (each holding one folder per class), or load one "
            "part's folder on its own"
        )
    train, skipped_train = _scan_part(root, root / "train", "train")
    test, skipped_test = _scan_part(root, root / "test", "test")
    if train.class_names != test.class_names:
        only_train = sorted(set(train.class_names) - set(test.class_names))
        only_test = sorted(set(test.class_names) - set(train.class_names))
        raise DataFormatError(
            f"{root}: train/ and test/ have different class folders: train/ has "
            f"{train.class_names}, test/ has {test.class_names} (only in train/: "
            f"{only_train}, only in test/: {only_test})"
        )
    skipped = skipped_train + skipped_test + loose + sum(_count_files(root / d) for d in others)
    return [train, test], skipped


# -------------------------------------------------------------------------- cache


def _cache_key(root: Path, parts: list[_Part], options: dict[str, Any]) -> str:
    listing = []
    for part in parts:
        stats = []
        for rel in part.files:
            try:
                st = os.stat(root / rel)
            except OSError as exc:
                raise DataFormatError(f"{root / rel}: cannot read the file: {exc}") from exc
            stats.append([rel, st.st_size, st.st_mtime_ns])
        listing.append({"name": part.name, "classes": part.class_names, "files": stats})
    payload = {
        "version": CACHE_VERSION,
        "root": str(root.resolve()),
        "options": options,
        "max_pixels": imageio.MAX_IMAGE_PIXELS,
        "pillow": PIL.__version__,
        "parts": listing,
    }
    blob = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def _read_cache(npy: Path, sidecar: Path, key: str) -> tuple[np.memmap, dict[str, Any]] | None:
    """The cached pixels and their description, or ``None`` if absent or not whole."""
    try:
        meta = json.loads(sidecar.read_text(encoding="utf-8"))
        if meta.get("version") != CACHE_VERSION or meta.get("key") != key:
            return None
        x = np.load(npy, mmap_mode="r", allow_pickle=False)
        counts = [len(part["labels"]) for part in meta["parts"]]
        if (
            not isinstance(x, np.memmap)
            or x.dtype != np.uint8
            or list(x.shape) != meta["shape"]
            or sum(counts) != x.shape[0]
        ):
            return None
        return x, meta
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _new_memmap(folder: Path, key: str, shape: tuple[int, ...]) -> tuple[Path, np.memmap]:
    """A uint8 ``.npy`` memory map of ``shape`` in a new temporary file in ``folder``."""
    fd, name = tempfile.mkstemp(prefix=f".{key}.", suffix=".npy.tmp", dir=folder)
    os.close(fd)
    path = Path(name)
    os.chmod(path, 0o666 & ~_umask())  # mkstemp makes 0600
    return path, np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)


def _sync(path: Path, x: np.memmap) -> None:
    x.flush()
    with open(path, "rb+") as f:
        os.fsync(f.fileno())


def _parallel(
    work: Callable[[int], None], count: int, desc: str, progress: bool, skip_bad: bool
) -> dict[int, ImageDecodeError]:
    """Run ``work(i)`` for ``i < count`` on threads; the images that failed, by index.

    Each task runs ``_BLOCK`` consecutive images (fewer futures, less overhead);
    ``_CHUNK`` images are in flight at most. Without ``skip_bad`` the first
    failure (in index order) is raised.
    """
    from tqdm.auto import tqdm

    def block(lo: int, hi: int) -> dict[int, ImageDecodeError]:
        errors: dict[int, ImageDecodeError] = {}
        for i in range(lo, hi):
            try:
                work(i)
            except ImageDecodeError as exc:
                errors[i] = exc
        return errors

    failed: dict[int, ImageDecodeError] = {}
    pool = ThreadPoolExecutor(max_workers=DECODE_THREADS, thread_name_prefix="cnnlab-decode")
    try:
        with tqdm(total=count, desc=desc, unit="img", disable=not progress,
                  dynamic_ncols=True) as bar:
            for start in range(0, count, _CHUNK):
                stop = min(start + _CHUNK, count)
                futures = {pool.submit(block, lo, min(lo + _BLOCK, stop)): min(_BLOCK, stop - lo)
                           for lo in range(start, stop, _BLOCK)}
                for future in as_completed(futures):
                    failed.update(future.result())
                    bar.update(futures[future])
                if failed and not skip_bad:
                    raise failed[min(failed)]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return failed


def _decode(path: Path, name: str, size: tuple[int, int], color: imageio.Color) -> np.ndarray:
    """One image file as uint8 ``(H, W, C)`` pixels of ``size``."""
    return imageio.load_image(path, size, color, name=name)


def _default_size(headers: list[imageio.ImageHeader], root: Path) -> tuple[int, int]:
    counts = Counter((h.height, h.width) for h in headers)
    (height, width), n = max(counts.items(), key=lambda kv: (kv[1], kv[0][0] * kv[0][1], kv[0]))
    if max(height, width) > MAX_IMAGE_SIDE:
        raise DataFormatError(
            f"{root}: the images' most common size, {height}x{width} (height x width, "
            f"{n} images), is larger than {MAX_IMAGE_SIDE} pixels a side: pass "
            "image_size=(height, width)"
        )
    return height, width


def _build(
    root: Path,
    parts: list[_Part],
    skipped_files: int,
    *,
    key: str,
    folder: Path,
    image_size: tuple[int, int] | None,
    color: imageio.Color | None,
    skip_bad: bool,
    progress: bool,
) -> None:
    """Decode every image into ``folder/<key>.npy`` and describe it in ``<key>.json``."""
    files = [rel for part in parts for rel in part.files]
    paths = [root / rel for rel in files]
    bad: dict[int, ImageDecodeError] = {}

    if image_size is None or color is None:
        headers: list[imageio.ImageHeader | None] = [None] * len(files)

        def probe(i: int) -> None:
            headers[i] = imageio.probe_image(paths[i], name=str(paths[i]))

        bad.update(_parallel(probe, len(files), "Reading image headers", progress, skip_bad))
        good = [h for h in headers if h is not None]
        if not good:
            raise DataFormatError(f"{root}: none of its {len(files)} images can be read")
        if image_size is None:
            image_size = _default_size(good, root)
        if color is None:
            color = "rgb" if any(h.color for h in good) else "grayscale"

    size, mode = image_size, color
    channels = 3 if mode == "rgb" else 1
    todo = [i for i in range(len(files)) if i not in bad]
    tmp, x = _new_memmap(folder, key, (len(todo), *size, channels))
    try:
        def decode(row: int, out: np.memmap = x) -> None:
            i = todo[row]
            out[row] = _decode(paths[i], str(paths[i]), size, mode)

        failed = _parallel(decode, len(todo), "Decoding images", progress, skip_bad)
        bad.update({todo[row]: exc for row, exc in failed.items()})
        if failed:  # copy the good rows into a file of the right length
            rows = [row for row in range(len(todo)) if row not in failed]
            first, decoded = tmp, x
            try:
                tmp, x = _new_memmap(folder, key, (len(rows), *size, channels))
                for start in range(0, len(rows), _CHUNK):
                    x[start : start + _CHUNK] = decoded[rows[start : start + _CHUNK]]
            finally:
                first.unlink(missing_ok=True)

        kept = [i for i in range(len(files)) if i not in bad]
        meta_parts = []
        offset = 0
        for part in parts:
            idx = [i - offset for i in kept if offset <= i < offset + len(part.files)]
            labels = [part.labels[i] for i in idx]
            missing = sorted(set(range(len(part.class_names))) - set(labels))
            if missing:
                names = ", ".join(part.class_names[c] for c in missing)
                raise DataFormatError(
                    f"{root}: every image of class {names}"
                    f"{' in ' + part.name + '/' if part.name else ''} is unreadable "
                    "(see the skipped files)"
                )
            meta_parts.append({
                "name": part.name,
                "labels": labels,
                "files": [part.files[i] for i in idx],
            })
            offset += len(part.files)
        _sync(tmp, x)
        del x
        os.replace(tmp, folder / f"{key}.npy")
        fsync_dir(folder)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    meta = {
        "format": "cnnlab image cache",
        "version": CACHE_VERSION,
        "key": key,
        "root": str(root.resolve()),
        "shape": [len(kept), *size, channels],
        "color": mode,
        "class_names": parts[0].class_names,
        "parts": meta_parts,
        "skipped_files": skipped_files,
        "skipped_bad": [files[i] for i in sorted(bad)],
    }
    atomic_write_text(folder / f"{key}.json", json.dumps(meta, indent=1) + "\n")


def load_image_folder(
    path: str | os.PathLike[str],
    *,
    image_size: tuple[int, int] | None = None,
    color: imageio.Color | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
    progress: bool = True,
) -> DataSplits:
    """Load a folder of labelled images (one subfolder per class), decoding them once.

    See the module docstring for the layout, the defaults and the cache.

    Args:
        path: the folder: ``PATH/<class>/<images>``, or ``PATH/train/<class>/...``
            and ``PATH/test/<class>/...``.
        image_size: ``(height, width)`` every image is resized to (bilinear);
            by default the most common size among the images (ties: the larger).
        color: ``"grayscale"`` (one channel) or ``"rgb"`` (three); by default
            ``"rgb"`` if any image is in colour.
        cache_dir: where the decoded pixels are kept (see
            :func:`default_image_cache_dir`).
        skip_bad: leave out unreadable images (corrupt, truncated, not an image
            despite the name, or too large) and list them in ``skipped_bad``,
            instead of raising.
        progress: show progress bars while reading and decoding.

    Returns:
        :class:`DataSplits`: ``train`` (and ``test``, if the folder has the two
        parts) with ``x`` a read-only ``np.memmap`` of uint8 ``(N, H, W, C)``,
        ``y`` int64 labels and ``files`` (paths relative to ``path``, in the
        order of the images: class by class, sorted).

    Raises:
        InvalidArgumentError: a bad ``image_size`` (not two positive ints, or a
            side above :data:`MAX_IMAGE_SIDE`), ``color`` or ``cache_dir``.
        DataFormatError: the folder is missing, has no class subfolders, no
            images, an empty class folder, a single class, ``train/`` and
            ``test/`` with different classes, or (without ``image_size``)
            images whose most common size is above :data:`MAX_IMAGE_SIDE`;
            each named in the message.
        ImageDecodeError: an image is corrupt, truncated or not an image
            (:class:`~cnnlab.errors.ImageTooLargeError`: too many pixels), unless
            ``skip_bad``; names the file.
    """
    size = check_image_size(image_size)
    mode = check_color(color)
    root = Path(path).expanduser()
    parts, skipped_files = _scan(root)
    folder = default_image_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"cache_dir {folder} is a file, not a folder")
    folder.mkdir(parents=True, exist_ok=True)
    options = {"image_size": None if size is None else list(size), "color": mode,
               "skip_bad": bool(skip_bad)}
    key = _cache_key(root, parts, options)
    npy, sidecar = folder / f"{key}.npy", folder / f"{key}.json"
    cached = _read_cache(npy, sidecar, key)
    if cached is None:
        _build(root, parts, skipped_files, key=key, folder=folder, image_size=size,
               color=mode, skip_bad=bool(skip_bad), progress=progress)
        cached = _read_cache(npy, sidecar, key)
        if cached is None:  # pragma: no cover - another process removed it meanwhile
            raise DataFormatError(f"{npy}: the image cache vanished as it was written")
    x, meta = cached
    results = []
    offset = 0
    for part in meta["parts"]:
        n = len(part["labels"])
        results.append(LabelledImages(x[offset : offset + n], part["labels"], part["files"]))
        offset += n
    train = results[0]
    test = results[1] if len(results) > 1 else None
    height, width, channels = x.shape[1:]
    counts = f"{len(train)} training" + (f" + {len(test)} test" if test is not None else "")
    return DataSplits(
        train=train,
        test=test,
        class_names=list(meta["class_names"]),
        source=(
            f"image folder {root.resolve()}: {counts} images, "
            f"{len(meta['class_names'])} classes, "
            f"{height}x{width} {meta['color']}"
        ),
        skipped_files=int(meta["skipped_files"]),
        skipped_bad=list(meta["skipped_bad"]),
    )
