"""Labelled images from a NumPy ``.npz`` archive, read strictly and without pickle.

The archive (``np.savez`` or ``np.savez_compressed``) holds:

==============  ===============================================================
key             what
==============  ===============================================================
``x``           images, ``(N, H, W)`` or ``(N, H, W, C)`` with C = 1 or 3
``y``           ``(N,)`` integer labels, 0 .. number of classes - 1
``class_names`` optional: one string per class (label ``i`` is ``class_names[i]``)
``x_test``,     optional, together: a test part, images of the same size and
``y_test``      kind as ``x``
==============  ===============================================================

**Pixels or model input.** Integer images are 8-bit pixels: ``uint8``, or any
integer type whose values lie in 0..255 (converted to ``uint8``); they are
scaled to [0, 1] when batches are made, as every image source's are. Float
images (``float16/32/64``) are taken as **model input as they are** (converted
to ``float32``): already scaled, normalised or standardised, any range, but
finite. So a float image is never rescaled behind the user's back, and data
prepared for another framework loads unchanged.

Without ``class_names`` the classes are named ``"0"``, ``"1"``, ... up to the
largest label. The archive is read with ``allow_pickle=False`` always: an
array of Python objects is refused, since unpickling can run code. It is read
into memory (an ``.npz`` cannot be memory-mapped; an image folder can, see
:mod:`cnnlab.datasets.images`). Anything else in the archive is an error
naming the key, so a misspelt ``x_tset`` is not silently ignored.

>>> import io
>>> buf = io.BytesIO()
>>> np.savez(buf, x=np.zeros((4, 5, 5), np.uint8), y=np.array([0, 1, 1, 2]))
>>> _ = buf.seek(0)
>>> data = load_npz(buf)
>>> data.train.x.shape, data.train.y.dtype, data.class_names, data.test
((4, 5, 5, 1), dtype('int64'), ['0', '1', '2'], None)
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import IO, Any

import numpy as np

from cnnlab.datasets.images import DataSplits, LabelledImages
from cnnlab.errors import DataFormatError

__all__ = ["NPZ_KEYS", "load_npz"]

#: The most classes an archive without ``class_names`` may imply by its largest label.
MAX_CLASSES = 100_000

#: The keys an archive may hold.
NPZ_KEYS: tuple[str, ...] = ("x", "y", "class_names", "x_test", "y_test")


_NPY_MAGIC = b"\x93NUMPY"


def _head(path: str | os.PathLike[str] | IO[bytes], name: str) -> bytes:
    """The first six bytes of the file (a file object is put back where it was)."""
    try:
        if isinstance(path, str | os.PathLike):
            with open(path, "rb") as f:
                return f.read(len(_NPY_MAGIC))
        where = path.tell()
        head = path.read(len(_NPY_MAGIC))
        path.seek(where)
        return head
    except OSError as exc:
        raise DataFormatError(f"{name}: cannot read the file: {exc}") from exc


def _read(archive: Any, key: str, name: str) -> np.ndarray:
    try:
        array = archive[key]
        if not isinstance(array, np.ndarray):  # np.load hands back a non-.npy member's bytes
            raise DataFormatError(f"{name}: {key!r} is not a NumPy array (.npy) in the archive")
        return array
    except DataFormatError:
        raise
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataFormatError(
                f"{name}: array {key!r} holds Python objects (dtype=object), which cnnlab "
                "does not load: reading them would need pickle, which can run code; save "
                "numbers (and class names as a string array, e.g. np.array(names, dtype=str))"
            ) from None
        raise DataFormatError(f"{name}: array {key!r} is unreadable: {exc}") from exc
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataFormatError(f"{name}: array {key!r} is unreadable: {exc}") from exc
    except Exception as exc:  # zlib.error and other decompression failures
        raise DataFormatError(
            f"{name}: array {key!r} is unreadable: {type(exc).__name__}: {exc}"
        ) from exc


def _images(x: np.ndarray, key: str, name: str) -> np.ndarray:
    """``x`` checked: (N, H, W[, C]) with C 1 or 3; uint8 pixels or float32 model input."""
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4 or x.shape[3] not in (1, 3):
        raise DataFormatError(
            f"{name}: {key!r} has shape {x.shape}: expected images (N, H, W) or "
            "(N, H, W, C) with C = 1 or 3 channels"
        )
    if 0 in x.shape:
        raise DataFormatError(f"{name}: {key!r} has shape {x.shape}: no images, or empty ones")
    if x.dtype == np.uint8:
        return x
    if x.dtype.kind in "iu":
        lo, hi = int(x.min()), int(x.max())
        if lo < 0 or hi > 255:
            raise DataFormatError(
                f"{name}: {key!r} holds {x.dtype} values {lo}..{hi}: integer images are "
                "8-bit pixels, 0..255 (floats are taken as model input as they are)"
            )
        return x.astype(np.uint8)
    if x.dtype.kind == "f":
        finite = np.isfinite(x)
        if not finite.all():
            bad = tuple(int(i) for i in np.argwhere(~finite)[0])
            raise DataFormatError(
                f"{name}: {key!r} holds {int((~finite).sum())} non-finite values "
                f"(NaN or infinity), the first {x[bad]} at index {bad}"
            )
        return x.astype(np.float32)
    raise DataFormatError(
        f"{name}: {key!r} has dtype {x.dtype}: expected uint8 pixels (or integers in 0..255), "
        "or floats (model input)"
    )


def _labels(y: np.ndarray, key: str, count: int, x_key: str, name: str) -> np.ndarray:
    if y.ndim != 1:
        raise DataFormatError(f"{name}: {key!r} has shape {y.shape}: expected (N,) labels")
    if y.dtype.kind not in "iu":
        raise DataFormatError(
            f"{name}: {key!r} has dtype {y.dtype}: labels must be integers (class indices); "
            "for one-hot rows use y.argmax(axis=1), for whole floats y.astype(int)"
        )
    if len(y) != count:
        raise DataFormatError(
            f"{name}: {x_key!r} holds {count} images but {key!r} holds {len(y)} labels"
        )
    if y.size and int(y.min()) < 0:
        i = int(np.argmin(y))
        raise DataFormatError(f"{name}: {key!r} holds a negative label, {int(y[i])} at index {i}")
    if y.size and int(y.max()) > np.iinfo(np.int64).max:  # uint64 would wrap negative
        i = int(np.argmax(y))
        raise DataFormatError(f"{name}: {key!r} holds label {int(y[i])} at index {i}: not a "
                              "class index")
    return y.astype(np.int64)


def _class_names(names: np.ndarray, name: str) -> list[str]:
    if names.ndim != 1 or names.dtype.kind not in "US":
        raise DataFormatError(
            f"{name}: 'class_names' is {names.dtype} of shape {names.shape}: expected a "
            "1-D array of strings"
        )
    if names.dtype.kind == "U" and names.size:  # UTF-32 code units NumPy cannot turn into str
        units = names.view(np.uint32)
        if int(units.max()) > 0x10FFFF or bool(((units >= 0xD800) & (units <= 0xDFFF)).any()):
            raise DataFormatError(f"{name}: 'class_names' holds invalid Unicode code points")
    try:
        out = [n.decode("utf-8") if isinstance(n, bytes) else str(n) for n in names.tolist()]
    except UnicodeDecodeError as exc:
        raise DataFormatError(f"{name}: 'class_names' is not UTF-8 text: {exc}") from exc
    repeated = sorted({n for n in out if out.count(n) > 1})
    if repeated:
        raise DataFormatError(f"{name}: 'class_names' repeats {repeated}")
    return out


def load_npz(path: str | os.PathLike[str] | IO[bytes]) -> DataSplits:
    """Load labelled images from an ``.npz`` archive (see the module docstring).

    Args:
        path: the archive's path, or a binary file object holding one.

    Returns:
        :class:`~cnnlab.datasets.images.DataSplits`: ``train`` (and ``test``
        when the archive has ``x_test``/``y_test``) with ``x`` uint8 pixels or
        float32 model input, ``(N, H, W, C)``, ``y`` int64; ``files`` is ``None``.

    Raises:
        DataFormatError: the file is missing or not an ``.npz`` archive; a key
            is missing or unknown; an array holds Python objects; a shape,
            dtype or count is wrong; a float is NaN or infinite; a label is
            negative or has no class name; a single class. The message names
            the file, the key and the problem.
    """
    name = os.fspath(path) if isinstance(path, str | os.PathLike) else str(
        getattr(path, "name", "<npz stream>")
    )
    if isinstance(path, str | os.PathLike) and not Path(path).is_file():
        raise DataFormatError(f"{name}: no such file")
    if _head(path, name) == _NPY_MAGIC:  # refused from its magic, the array never parsed
        raise DataFormatError(
            f"{name}: holds a single array, not an .npz archive: save the images and labels "
            "with np.savez(path, x=images, y=labels)"
        )
    try:
        archive = np.load(path, allow_pickle=False)
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - zipfile raises many types on a bad archive
        # NotImplementedError (an unsupported zip version), BadZipFile, ValueError,
        # tokenize.TokenError (a malformed .npy header) ...
        raise DataFormatError(f"{name}: not a readable .npz archive: {exc}") from exc
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataFormatError(f"{name}: not an .npz archive (np.load returned "
                              f"{type(archive).__name__})")
    with archive:
        keys = set(archive.files)
        unknown = sorted(keys - set(NPZ_KEYS))
        if unknown:
            raise DataFormatError(
                f"{name}: unknown key{'s' if len(unknown) > 1 else ''} {unknown}; an archive "
                f"holds {', '.join(NPZ_KEYS)} (x and y required)"
            )
        missing = [k for k in ("x", "y") if k not in keys]
        if missing:
            raise DataFormatError(
                f"{name}: no {' or '.join(repr(k) for k in missing)} array (found "
                f"{sorted(keys) or 'none'}); save with np.savez(path, x=images, y=labels)"
            )
        if ("x_test" in keys) != ("y_test" in keys):
            have, lack = ("x_test", "y_test") if "x_test" in keys else ("y_test", "x_test")
            raise DataFormatError(f"{name}: has {have!r} but no {lack!r}: give both or neither")
        arrays = {key: _read(archive, key, name) for key in sorted(keys)}

    x = _images(arrays["x"], "x", name)
    y = _labels(arrays["y"], "y", len(x), "x", name)
    test = None
    if "x_test" in arrays:
        x_test = _images(arrays["x_test"], "x_test", name)
        if x_test.shape[1:] != x.shape[1:] or x_test.dtype != x.dtype:
            raise DataFormatError(
                f"{name}: 'x_test' images are {x_test.dtype} {x_test.shape[1:]} but 'x' "
                f"images are {x.dtype} {x.shape[1:]}: the two parts must match"
            )
        test = (x_test, _labels(arrays["y_test"], "y_test", len(x_test), "x_test", name))

    top = max(int(y.max()), int(test[1].max()) if test is not None else 0)
    if "class_names" in arrays:
        class_names = _class_names(arrays["class_names"], name)
        for key, labels in [("y", y)] + ([("y_test", test[1])] if test is not None else []):
            over = np.flatnonzero(labels >= len(class_names))
            if over.size:
                i = int(over[0])
                raise DataFormatError(
                    f"{name}: {key!r} holds label {int(labels[i])} at index {i}, but "
                    f"'class_names' names only {len(class_names)} classes "
                    f"(0..{len(class_names) - 1})"
                )
    else:
        if top >= MAX_CLASSES:  # e.g. a hash or an id where a class index belongs
            raise DataFormatError(
                f"{name}: labels go up to {top}, which would make {top + 1} classes named "
                f"'0'..'{top}' (at most {MAX_CLASSES}); labels are class indices 0..K-1"
            )
        class_names = [str(i) for i in range(top + 1)]
    if len(class_names) < 2:
        raise DataFormatError(
            f"{name}: a single class ({class_names[0]!r}): a classifier needs at least two"
        )

    height, width, channels = x.shape[1:]
    kind = "pixels" if x.dtype == np.uint8 else "float32 model input"
    counts = f"{len(x)} training" + (f" + {len(test[0])} test" if test is not None else "")
    return DataSplits(
        train=LabelledImages(x, y),
        test=None if test is None else LabelledImages(*test),
        class_names=class_names,
        source=(
            f"npz file {name}: {counts} images, {len(class_names)} classes, "
            f"{height}x{width}x{channels} {kind}"
        ),
    )
