"""Where training batches come from: arrays in memory, or any iterable of batches.

:func:`batch_source` turns what the user passed to ``fit`` into one of two
sources with the same interface, so the loop never asks which it has:

* :class:`ArrayBatches`: ``x`` and ``y`` arrays; each epoch draws a shuffled
  order from the model's generator (kept in checkpoints, so a resumed epoch
  continues in the same order).
* :class:`IterableBatches`: any re-iterable object yielding ``(x_batch,
  y_batch)`` pairs (a list, or a dataset object that streams from disk and
  shuffles itself). It is iterated afresh every epoch; if it has
  ``set_epoch(epoch)``, that is called first (for per-epoch shuffling), and
  ``len()``, if it has one, gives the progress bar its total. A resumed run
  skips the batches the interrupted epoch had done.
"""

from __future__ import annotations

import math
import mmap
import os
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from cnnlab.errors import DataFormatError, InvalidArgumentError, ShapeError

#: Bytes read from a memory map that is not read with ``pread`` (a view of one)
#: between two releases of its pages. Each page fault maps up to 64 KiB around
#: it ("fault-around"), so the resident pages can be several times the bytes read.
RELEASE_BYTES = 32 << 20

#: ``transform(batch, rng)``: a new training batch from a prepared one (augmentation).
BatchTransform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


class ArrayBatches:
    """Mini-batches of ``x`` (checked inputs) and integer labels ``y``, shuffled per epoch.

    ``x`` may be a memory-mapped array larger than memory: each batch is read
    (gathered by index), converted by ``cast`` (the model's input dtype; 8-bit
    pixels scaled to [0, 1]) and, for training, passed through ``transform``
    with the model's generator. A memory-mapped ``.npy`` (``np.load(path,
    mmap_mode="r")``, or an :class:`~cnnlab.datasets.IndexedArray` over one) is
    read example by example with ``os.preadv`` into the batch, so none of it
    becomes resident in this process (the operating system's page cache keeps
    what was read); for other memory maps the pages read are released every
    ``RELEASE_BYTES``.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool,
                 cast: Callable[[np.ndarray], np.ndarray] | None = None,
                 transform: BatchTransform | None = None,
                 rng: np.random.Generator | None = None) -> None:
        if len(y) != len(x):
            raise ShapeError(f"x has {len(x)} examples but y has {len(y)} labels")
        if len(x) == 0:
            raise InvalidArgumentError("fit() needs at least one example")
        self.x, self.y, self.batch_size, self.shuffle = x, y, batch_size, shuffle
        self.cast, self.transform, self.rng = cast, transform, rng

    @property
    def steps(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def order(self, rng: np.random.Generator) -> np.ndarray:
        """The order of one epoch's examples (drawn from ``rng`` when shuffling)."""
        return rng.permutation(len(self.x)) if self.shuffle else np.arange(len(self.x))

    def batches(self, epoch: int, perm: np.ndarray | None, start: int
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        assert perm is not None
        bs = self.batch_size
        reader = FileRows.of(self.x)
        mapped = None if reader is not None else _mmap_of(self.x)
        read = 0
        for step in range(start, self.steps):
            idx = perm[step * bs : (step + 1) * bs]
            xb = reader.read(idx) if reader is not None else self.x[idx]
            if mapped is not None:
                read += xb.nbytes
                if read >= RELEASE_BYTES:
                    _release(mapped)
                    read = 0
            if self.cast is not None:
                xb = self.cast(xb)
            if self.transform is not None:
                assert self.rng is not None
                xb = self.transform(xb, self.rng)
            yield xb, self.y[idx]
        if mapped is not None:
            _release(mapped)
        if reader is not None:
            reader.close()


class FileRows:
    """Rows of a C-contiguous ``np.memmap`` read from its file with ``os.preadv``.

    ``rows`` (an :class:`~cnnlab.datasets.IndexedArray`'s indices, if ``x`` is
    one) maps example indices to rows of the file's array.
    """

    def __init__(self, array: np.memmap, rows: np.ndarray | None) -> None:
        self.array, self.rows = array, rows
        self.row_bytes = array[:1].nbytes if len(array) else 0
        self.fd = os.open(array.filename, os.O_RDONLY)

    @classmethod
    def of(cls, x: Any) -> FileRows | None:
        """A reader for ``x``, or None if ``x`` is not a whole mapped ``.npy`` array."""
        rows = None
        if not isinstance(x, np.ndarray) and isinstance(getattr(x, "base", None), np.memmap) \
                and hasattr(x, "indices"):
            x, rows = x.base, np.asarray(x.indices)
        if not (isinstance(x, np.memmap) and x.base is getattr(x, "_mmap", None)
                and x.flags.c_contiguous and getattr(x, "filename", None)):
            return None
        return cls(x, rows)

    def read(self, idx: np.ndarray) -> np.ndarray:
        rows = idx if self.rows is None else self.rows[idx]
        out = np.empty((len(rows), *self.array.shape[1:]), dtype=self.array.dtype)
        flat = memoryview(out.reshape(-1).view(np.uint8))
        start, size = self.array.offset, self.row_bytes
        for j, r in enumerate(rows):
            got = os.preadv(self.fd, [flat[j * size : (j + 1) * size]], start + int(r) * size)
            if got != size:
                raise DataFormatError(f"{self.array.filename}: short read at row {int(r)} "
                                      "(the file changed or was truncated)")
        return out

    def close(self) -> None:
        os.close(self.fd)


def _mmap_of(x: np.ndarray) -> mmap.mmap | None:
    """The ``mmap`` behind a ``np.memmap`` (or a view of one), or None."""
    base: Any = x if isinstance(x, np.ndarray) else getattr(x, "base", None)
    while isinstance(base, np.ndarray):
        if isinstance(base, np.memmap) and isinstance(getattr(base, "_mmap", None), mmap.mmap):
            return base._mmap
        base = base.base
    return base if isinstance(base, mmap.mmap) else None


def _release(m: mmap.mmap) -> None:
    """Drop a read-only mapping's resident pages (they stay in the page cache)."""
    if hasattr(m, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        m.madvise(mmap.MADV_DONTNEED)


class IterableBatches:
    """Batches from a re-iterable object; ``prepare`` checks and converts each batch."""

    def __init__(self, data: Iterable[Any], prepare: Any) -> None:
        if iter(data) is data:
            raise InvalidArgumentError(
                "fit() needs data it can iterate once per epoch: got an iterator "
                f"({type(data).__name__}), which is used up after one pass; pass a list "
                "or an object whose __iter__ starts a new pass"
            )
        self.data, self.prepare = data, prepare

    @property
    def steps(self) -> int | None:
        try:
            return len(self.data)  # type: ignore[arg-type]
        except TypeError:
            return None

    def order(self, rng: np.random.Generator) -> None:
        return None  # the dataset shuffles itself

    def batches(self, epoch: int, perm: None, start: int
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        if hasattr(self.data, "set_epoch"):
            self.data.set_epoch(epoch)
        count = 0
        for i, item in enumerate(self.data):
            count += 1
            if i < start:
                continue
            try:
                xb, yb = item
            except (TypeError, ValueError):
                raise InvalidArgumentError(
                    f"batch {i} of epoch {epoch + 1} is not an (x, y) pair: got "
                    f"{type(item).__name__}"
                ) from None
            yield self.prepare(xb, yb, f"batch {i}")
        if count == 0:
            raise InvalidArgumentError(f"the training data yielded no batches in epoch {epoch + 1}")
