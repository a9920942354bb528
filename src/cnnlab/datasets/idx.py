"""A strict reader and an atomic writer for the IDX file format.

IDX is the format LeCun, Cortes and Burges used for MNIST: a 4-byte magic
number (two zero bytes, a type code, the number of dimensions), one big-endian
``uint32`` per dimension, then the values in C order, big-endian. Files are
often gzip-compressed; :func:`read_idx` recognises gzip by its magic bytes
(``1f 8b``), not by the file name.

The reader trusts nothing in the header. Before it allocates anything it checks
the declared size against what the file can actually hold: the file size for a
raw file, and for a gzip file both the most a deflate stream of that size can
expand to and the bytes that really come out, which it decompresses in bounded
chunks, never more than the declared payload plus one byte. A gzip bomb or an
absurd header therefore costs no more memory than the file's honest content.

Every defect of the file is reported as :class:`~cnnlab.errors.DataFormatError`
with a message that names the file and the problem.
"""

from __future__ import annotations

import gzip as _gzip
import io
import math
import os
import zlib
from typing import BinaryIO

import numpy as np

from cnnlab.errors import DataFormatError, InvalidArgumentError
from cnnlab.fileio import atomic_writer

__all__ = ["IDX_DTYPES", "MAX_NDIM", "atomic_writer", "read_idx", "write_idx"]

#: IDX type code -> NumPy dtype of the stored (big-endian) values.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

#: The most dimensions :func:`read_idx` and :func:`write_idx` accept.
MAX_NDIM = 8

_GZIP_MAGIC = b"\x1f\x8b"
# Deflate cannot expand its input more than 1032-fold; a little slack on top.
_MAX_GZIP_RATIO = 1100
_CHUNK = 1 << 20
_MAX_DIM = 2**32 - 1


def _type_name(code: int) -> str:
    return IDX_DTYPES[code].newbyteorder("=").name


def _known_types() -> str:
    return ", ".join(f"0x{code:02X} {_type_name(code)}" for code in IDX_DTYPES)


def _plural(n: int, word: str = "byte") -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _parse_header(read: _Reader, name: str) -> tuple[np.dtype, tuple[int, ...], int]:
    """Read and check the magic number and the dimensions.

    Returns the stored dtype, the shape and the payload size in bytes.
    """
    magic = read.exact(4, "the 4-byte magic number")
    if magic[:2] != b"\x00\x00":
        raise DataFormatError(
            f"{name}: not an IDX file: it starts with bytes {magic[:2].hex(' ')}, "
            "an IDX file starts with 00 00"
        )
    code, ndim = magic[2], magic[3]
    if code not in IDX_DTYPES:
        raise DataFormatError(
            f"{name}: unknown IDX type code 0x{code:02X} (known: {_known_types()})"
        )
    if not 1 <= ndim <= MAX_NDIM:
        raise DataFormatError(
            f"{name}: header declares {ndim} dimensions; this reader accepts 1 to {MAX_NDIM}"
        )
    raw_dims = read.exact(4 * ndim, f"the {ndim} dimension sizes")
    shape = tuple(int.from_bytes(raw_dims[4 * i : 4 * i + 4], "big") for i in range(ndim))
    for axis, size in enumerate(shape):
        if size == 0:
            raise DataFormatError(
                f"{name}: header declares shape {'x'.join(map(str, shape))}: dimension "
                f"{axis} is 0, and an IDX data file must not be empty"
            )
    dtype = IDX_DTYPES[code]
    nbytes = math.prod(shape) * dtype.itemsize
    return dtype, shape, nbytes


def _describe(shape: tuple[int, ...], nbytes: int, dtype: np.dtype) -> str:
    return f"{'x'.join(map(str, shape))} = {nbytes} bytes of {dtype.newbyteorder('=').name}"


class _Reader:
    """Reads exact byte counts from a stream, reporting short reads as format errors."""

    def __init__(self, stream: BinaryIO, name: str, what: str) -> None:
        self.stream = stream
        self.name = name
        self.what = what  # "the file" or "the decompressed stream"
        self.consumed = 0

    def exact(self, n: int, purpose: str) -> bytes:
        data = self.stream.read(n)
        self.consumed += len(data)
        if len(data) != n:
            if self.consumed == 0:
                raise DataFormatError(f"{self.name}: {self.what} is empty")
            raise DataFormatError(
                f"{self.name}: truncated header: {self.what} ends after "
                f"{_plural(self.consumed)}, before {purpose}"
            )
        return data


def _read_raw(stream: BinaryIO, name: str, file_size: int) -> np.ndarray:
    reader = _Reader(stream, name, "the file")
    dtype, shape, nbytes = _parse_header(reader, name)
    available = file_size - reader.consumed
    if available != nbytes:
        problem = "too short" if available < nbytes else f"{available - nbytes} trailing bytes"
        raise DataFormatError(
            f"{name}: header declares {_describe(shape, nbytes, dtype)} but the file holds "
            f"{_plural(available)} after the header ({problem})"
        )
    buf = bytearray(nbytes)
    got = stream.readinto(buf)
    if got != nbytes:  # the file shrank while we read it
        raise DataFormatError(
            f"{name}: truncated payload: expected {nbytes} bytes, read {got or 0}"
        )
    if stream.read(1):
        raise DataFormatError(f"{name}: the file grew while it was read (trailing bytes)")
    return _finish(buf, dtype, shape)


def _read_gzip(stream: BinaryIO, name: str, file_size: int) -> np.ndarray:
    try:
        with _gzip.GzipFile(fileobj=stream, mode="rb") as gz:
            reader = _Reader(gz, name, "the decompressed stream")
            dtype, shape, nbytes = _parse_header(reader, name)
            limit = file_size * _MAX_GZIP_RATIO + 1024
            if nbytes > limit:
                raise DataFormatError(
                    f"{name}: header declares {_describe(shape, nbytes, dtype)}, more than "
                    f"a gzip file of {_plural(file_size)} can hold (at most about {limit})"
                )
            # Bounded decompression: grow the buffer only with what really comes out,
            # and never ask for more than the declared payload plus one byte.
            buf = bytearray()
            while len(buf) <= nbytes:
                chunk = gz.read(min(_CHUNK, nbytes + 1 - len(buf)))
                if not chunk:
                    break
                buf += chunk
            if len(buf) < nbytes:
                raise DataFormatError(
                    f"{name}: header declares {_describe(shape, nbytes, dtype)} but the "
                    f"decompressed file holds {_plural(len(buf))} after the header (truncated)"
                )
            if len(buf) > nbytes:
                raise DataFormatError(
                    f"{name}: header declares {_describe(shape, nbytes, dtype)} but the "
                    "decompressed file has trailing bytes after them"
                )
    except DataFormatError:
        raise
    except (EOFError, zlib.error, _gzip.BadGzipFile) as exc:
        raise DataFormatError(f"{name}: corrupt or truncated gzip stream: {exc}") from exc
    return _finish(buf, dtype, shape)


def _finish(buf: bytearray, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    arr = np.frombuffer(buf, dtype=dtype).reshape(shape)
    if dtype.byteorder == ">" and dtype.itemsize > 1:
        arr = arr.astype(dtype.newbyteorder("="))
    return arr


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file (raw or gzip-compressed) into a NumPy array.

    Gzip is detected from the magic bytes ``1f 8b``, whatever the file is called.
    Supported type codes: 0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64; 1 to :data:`MAX_NDIM` dimensions, each at least 1.

    Args:
        path: the file to read.

    Returns:
        A writable, C-contiguous array in native byte order with the declared shape.

    Raises:
        DataFormatError: the file is empty, is not IDX, has an unknown type code or
            a bad number of dimensions, a zero dimension, a payload shorter or longer
            than the header declares, or is a corrupt or truncated gzip stream. The
            message names the file and the problem.
        OSError: the file cannot be opened (missing, a directory, no permission).
    """
    name = os.fspath(path)
    with open(path, "rb") as stream:
        file_size = os.fstat(stream.fileno()).st_size
        head = stream.read(2)
        stream.seek(0)
        if head == _GZIP_MAGIC:
            return _read_gzip(stream, name, file_size)
        return _read_raw(stream, name, file_size)


def _idx_bytes(array: np.ndarray) -> bytes:
    arr = np.asarray(array)
    native = arr.dtype.newbyteorder("=") if arr.dtype.byteorder in "<>" else arr.dtype
    code = next((c for c, dt in IDX_DTYPES.items() if dt.newbyteorder("=") == native), None)
    if code is None:
        raise InvalidArgumentError(
            f"write_idx: IDX cannot store dtype {arr.dtype}; use one of "
            f"{', '.join(_type_name(c) for c in IDX_DTYPES)}"
        )
    if not 1 <= arr.ndim <= MAX_NDIM:
        raise InvalidArgumentError(
            f"write_idx: array has {arr.ndim} dimensions; IDX files here hold 1 to {MAX_NDIM}"
        )
    if any(not 1 <= n <= _MAX_DIM for n in arr.shape):
        raise InvalidArgumentError(
            f"write_idx: shape {arr.shape} has a dimension outside 1..{_MAX_DIM}"
        )
    out = io.BytesIO()
    out.write(bytes([0, 0, code, arr.ndim]))
    for n in arr.shape:
        out.write(int(n).to_bytes(4, "big"))
    out.write(np.ascontiguousarray(arr, dtype=IDX_DTYPES[code]).tobytes())
    return out.getvalue()


def write_idx(path: str | os.PathLike[str], array: np.ndarray, gzip: bool = False) -> None:
    """Write ``array`` to ``path`` as an IDX file, atomically.

    The data go to a temporary file in the same directory, which is flushed,
    fsynced and renamed over ``path`` (``os.replace``), so an interrupted write
    never leaves a partial file behind.

    Args:
        path: destination file.
        array: uint8, int8, int16, int32, float32 or float64 values (any byte
            order), 1 to :data:`MAX_NDIM` dimensions, none of them 0.
        gzip: compress the file with gzip (deterministic: no name, mtime 0).

    Raises:
        InvalidArgumentError: the dtype, number of dimensions or a dimension size
            cannot be stored in IDX.
    """
    data = _idx_bytes(array)
    with atomic_writer(path) as f:
        if gzip:
            with _gzip.GzipFile(filename="", mode="wb", fileobj=f, mtime=0) as gz:
                gz.write(data)
        else:
            f.write(data)
