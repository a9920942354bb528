"""The IDX reader must accept valid files of every type and reject every malformed one."""

from __future__ import annotations

import gzip
import os
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cnnlab.datasets.idx import IDX_DTYPES, atomic_writer, read_idx, write_idx
from cnnlab.errors import CnnlabError, DataFormatError, InvalidArgumentError

FUZZ_EXAMPLES = 300


def header(code: int, dims: list[int], ndim: int | None = None) -> bytes:
    """Magic number (with the given type code) and big-endian dimension sizes."""
    n = len(dims) if ndim is None else ndim
    return bytes([0, 0, code, n]) + b"".join(struct.pack(">I", d) for d in dims)


def put(path: Path, data: bytes, compress: bool = False) -> Path:
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


def valid_uint8() -> bytes:
    return header(0x08, [2, 3]) + bytes(range(6))


# ------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("dtype", ["uint8", "int8", "int16", "int32", "float32", "float64"])
@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("shape", [(7,), (3, 5), (2, 3, 4), (2, 1, 3, 2)])
def test_round_trip(tmp_path: Path, dtype: str, compress: bool, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype) if dtype.startswith(("u", "i")) else None
    if info is not None:
        arr = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)
    else:
        arr = rng.standard_normal(shape).astype(dtype)
    path = tmp_path / ("a.idx.gz" if compress else "a.idx")
    write_idx(path, arr, gzip=compress)
    assert (path.read_bytes()[:2] == b"\x1f\x8b") == compress
    back = read_idx(path)
    assert back.dtype == np.dtype(dtype)  # native byte order
    assert back.shape == shape
    assert back.flags.writeable and back.flags.c_contiguous
    np.testing.assert_array_equal(back, arr)


def test_round_trip_big_endian_input_and_special_floats(tmp_path: Path) -> None:
    arr = np.array([[1.5, -np.inf], [np.nan, 0.0]], dtype=">f8")
    write_idx(tmp_path / "f.idx", arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), arr.astype(np.float64))


def test_exact_bytes_of_written_file(tmp_path: Path) -> None:
    write_idx(tmp_path / "a", np.array([[1, 2, 3], [4, 5, 6]], dtype=np.int16))
    assert (tmp_path / "a").read_bytes() == (
        b"\x00\x00\x0b\x02\x00\x00\x00\x02\x00\x00\x00\x03"
        b"\x00\x01\x00\x02\x00\x03\x00\x04\x00\x05\x00\x06"
    )


def test_gzip_is_detected_by_magic_not_name(tmp_path: Path) -> None:
    raw_named_gz = put(tmp_path / "raw.gz", valid_uint8())
    gz_named_raw = put(tmp_path / "gz-idx1-ubyte", valid_uint8(), compress=True)
    expected = np.arange(6, dtype=np.uint8).reshape(2, 3)
    np.testing.assert_array_equal(read_idx(raw_named_gz), expected)
    np.testing.assert_array_equal(read_idx(gz_named_raw), expected)


def test_gzip_output_is_deterministic(tmp_path: Path) -> None:
    arr = np.arange(10, dtype=np.uint8)
    write_idx(tmp_path / "a.gz", arr, gzip=True)
    write_idx(tmp_path / "b.gz", arr, gzip=True)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_multimember_gzip_is_one_stream(tmp_path: Path) -> None:
    data = valid_uint8()
    path = tmp_path / "m.gz"
    path.write_bytes(gzip.compress(data[:5]) + gzip.compress(data[5:]))
    assert read_idx(path).shape == (2, 3)


# ------------------------------------------------------------------- malformed files

U8 = 0x08
# (id, file content, message when stored raw, message when stored gzip-compressed)
MALFORMED: list[tuple[str, bytes, str, str]] = [
    ("empty", b"", "the file is empty", "the decompressed stream is empty"),
    ("one byte", b"\x00", "truncated header", "truncated header"),
    ("three bytes", b"\x00\x00\x08", "truncated header", "truncated header"),
    ("wrong magic", b"\x01\x02\x08\x01\x00\x00\x00\x01\x00", "not an IDX file", ""),
    ("text", b"hello, world, this is not IDX", "not an IDX file", ""),
    ("unknown type 0x07", header(0x07, [2]) + b"\x00\x00", "unknown IDX type code 0x07", ""),
    ("unknown type 0x0A", header(0x0A, [2]) + b"\x00\x00", "unknown IDX type code 0x0A", ""),
    ("unknown type 0xFF", header(0xFF, [2]) + b"\x00\x00", "unknown IDX type code 0xFF", ""),
    ("zero dimensions", header(U8, []), "declares 0 dimensions", ""),
    ("255 dimensions", header(U8, [1] * 255), "declares 255 dimensions", ""),
    ("dims cut short", header(U8, [2, 3], ndim=3), "before the 3 dimension sizes", ""),
    ("header only", header(U8, [7, 28, 28]), "but the file holds 0 bytes", "holds 0 bytes"),
    ("zero dim", header(U8, [0, 28, 28]), "dimension 0 is 0", ""),
    ("zero inner dim", header(U8, [5, 0]), "dimension 1 is 0", ""),
    (
        "absurd 2**31 x 2**31",
        header(U8, [2**31, 2**31]) + bytes(16),
        "declares 2147483648x2147483648 = 4611686018427387904 bytes of uint8",
        "more than a gzip file of",
    ),
    (
        "absurd 4 x 0xFFFFFFFF",
        header(0x0E, [2**32 - 1] * 4) + bytes(8),
        "bytes of float64 but the file holds 8 bytes",
        "more than a gzip file of",
    ),
    ("truncated payload", header(U8, [2, 3]) + bytes(5), "holds 5 bytes after the header", ""),
    ("trailing bytes", header(U8, [2, 3]) + bytes(7), "(1 trailing bytes)", "trailing bytes"),
    ("int16 odd payload", header(0x0B, [3]) + bytes(5), "= 6 bytes of int16", ""),
    ("float32 short", header(0x0D, [2, 2]) + bytes(15), "= 16 bytes of float32", ""),
]


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    ("data", "raw_message", "gzip_message"),
    [m[1:] for m in MALFORMED],
    ids=[m[0] for m in MALFORMED],
)
def test_malformed_file_is_rejected(
    tmp_path: Path, data: bytes, raw_message: str, gzip_message: str, compress: bool
) -> None:
    path = put(tmp_path / "bad-idx3-ubyte", data, compress=compress)
    with pytest.raises(DataFormatError) as info:
        read_idx(path)
    text = str(info.value)
    assert text.startswith(f"{path}: ")
    message = (gzip_message or raw_message) if compress else raw_message
    assert message in text, text


def test_message_states_declared_and_actual_sizes(tmp_path: Path) -> None:
    path = put(tmp_path / "train-images-idx3-ubyte", header(U8, [60000, 28, 28]) + bytes(1000))
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte") as info:
        read_idx(path)
    assert (
        "header declares 60000x28x28 = 47040000 bytes of uint8 but the file holds 1000 bytes"
        in str(info.value)
    )


def test_errors_are_value_errors_and_cnnlab_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        read_idx(put(tmp_path / "e", b""))
    with pytest.raises(CnnlabError):
        read_idx(put(tmp_path / "e", b""))


def good_gzip() -> bytes:
    return gzip.compress(header(U8, [4, 8]) + bytes(range(32)) * 1, mtime=0)


def test_truncated_gzip(tmp_path: Path) -> None:
    data = good_gzip()
    for cut in (3, 10, len(data) // 2, len(data) - 8, len(data) - 1):
        path = put(tmp_path / f"cut{cut}.gz", data[:cut])
        with pytest.raises(DataFormatError, match=f"cut{cut}.gz"):
            read_idx(path)


def test_corrupt_gzip_crc(tmp_path: Path) -> None:
    data = bytearray(good_gzip())
    data[-8] ^= 0xFF  # CRC32 of the trailer
    with pytest.raises(DataFormatError, match="corrupt or truncated gzip.*CRC"):
        read_idx(put(tmp_path / "crc.gz", bytes(data)))


def test_corrupt_gzip_length_field(tmp_path: Path) -> None:
    data = bytearray(good_gzip())
    data[-1] ^= 0x01  # ISIZE of the trailer
    with pytest.raises(DataFormatError, match="gzip"):
        read_idx(put(tmp_path / "isize.gz", bytes(data)))


def test_corrupt_deflate_data(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    payload = rng.integers(0, 256, 4000, dtype=np.uint8).tobytes()
    data = bytearray(gzip.compress(header(U8, [4000]) + payload, mtime=0))
    data[len(data) // 2] ^= 0x55
    with pytest.raises(DataFormatError, match="gzip"):
        read_idx(put(tmp_path / "flip.gz", bytes(data)))


def test_gzip_magic_followed_by_garbage(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="gzip"):
        read_idx(put(tmp_path / "garbage.gz", b"\x1f\x8b" + os.urandom(100)))


def test_gzip_with_trailing_garbage(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="gzip"):
        read_idx(put(tmp_path / "tail.gz", good_gzip() + b"garbage!"))


def test_gzip_header_larger_than_the_file_could_expand_to(tmp_path: Path) -> None:
    path = put(tmp_path / "absurd.gz", header(U8, [60000, 28, 28]) + bytes(100), compress=True)
    with pytest.raises(DataFormatError, match="more than a gzip file of"):
        read_idx(path)


def test_gzip_bomb_is_read_with_bounded_memory(tmp_path: Path) -> None:
    # A 10x10 header followed by 32 MB of zeros: the reader must stop at 101 bytes.
    bomb = gzip.compress(header(U8, [10, 10]) + bytes(32 << 20), compresslevel=9, mtime=0)
    path = put(tmp_path / "bomb.gz", bomb)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match="trailing bytes"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, peak


def test_gzip_bomb_with_matching_header_is_not_needed_to_fit_in_memory_twice(
    tmp_path: Path,
) -> None:
    # A header declaring a large but plausible size whose stream is short: memory grows
    # only with what is really decompressed, not with the declared size.
    data = gzip.compress(header(U8, [1000, 1000, 1000]) + bytes(1 << 20), mtime=0)
    path = put(tmp_path / "short.gz", data)
    tracemalloc.start()
    try:
        with pytest.raises(DataFormatError, match="truncated|more than a gzip"):
            read_idx(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, peak


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope")


# ---------------------------------------------------------------------------- writer


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros(3, dtype=np.int64),
        np.zeros(3, dtype=np.uint16),
        np.zeros(3, dtype=bool),
        np.zeros(3, dtype=np.complex64),
        np.array(5, dtype=np.uint8),
        np.zeros((0, 3), dtype=np.uint8),
        np.zeros((1,) * 9, dtype=np.uint8),
    ],
    ids=["int64", "uint16", "bool", "complex", "0-d", "empty", "9-d"],
)
def test_write_rejects_what_idx_cannot_hold(tmp_path: Path, arr: np.ndarray) -> None:
    with pytest.raises(InvalidArgumentError, match="write_idx"):
        write_idx(tmp_path / "x", arr)
    assert list(tmp_path.iterdir()) == []


def test_write_replaces_atomically_and_leaves_no_temp_files(tmp_path: Path) -> None:
    path = tmp_path / "a.idx"
    write_idx(path, np.zeros(3, dtype=np.uint8))
    write_idx(path, np.ones(4, dtype=np.uint8))
    np.testing.assert_array_equal(read_idx(path), np.ones(4, dtype=np.uint8))
    assert [p.name for p in tmp_path.iterdir()] == ["a.idx"]


def test_atomic_writer_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "keep"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_writer(path) as f:
            f.write(b"new, half written")
            raise RuntimeError("interrupted")
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep"]


# ------------------------------------------------------------------------------ fuzz

FUZZ_SETTINGS = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "case-idx-ubyte"


def read_or_format_error(path: Path, data: bytes) -> np.ndarray | None:
    """Reading must give an array or a DataFormatError, never anything else."""
    path.write_bytes(data)
    try:
        arr = read_idx(path)
    except DataFormatError:
        return None
    assert isinstance(arr, np.ndarray)
    return arr


@FUZZ_SETTINGS
@given(data=st.binary(max_size=300))
def test_fuzz_random_bytes(fuzz_file: Path, data: bytes) -> None:
    read_or_format_error(fuzz_file, data)


@FUZZ_SETTINGS
@given(
    code=st.sampled_from([*IDX_DTYPES, 0x00, 0x07, 0x0A, 0x0F, 0xFF]),
    dims=st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)), min_size=0, max_size=6),
    ndim_delta=st.sampled_from([0, 0, 0, -1, 1]),
    payload=st.binary(max_size=200),
    compress=st.booleans(),
)
def test_fuzz_plausible_headers(
    fuzz_file: Path, code: int, dims: list[int], ndim_delta: int, payload: bytes, compress: bool
) -> None:
    ndim = max(0, min(255, len(dims) + ndim_delta))
    data = header(code, dims, ndim=ndim) + payload
    arr = read_or_format_error(fuzz_file, gzip.compress(data, mtime=0) if compress else data)
    if arr is not None:  # then the header was right: the payload is exactly what it declares
        assert arr.ndim == ndim
        assert arr.nbytes == len(data) - 4 - 4 * ndim
        assert code in IDX_DTYPES and 0 not in arr.shape


def _valid_files() -> list[bytes]:
    rng = np.random.default_rng(2)
    images = header(U8, [3, 4, 5]) + rng.integers(0, 256, 60, dtype=np.uint8).tobytes()
    labels = header(U8, [6]) + bytes([5, 0, 4, 1, 9, 2])
    floats = header(0x0E, [2, 3]) + np.arange(6, dtype=">f8").tobytes()
    raws = [images, labels, floats]
    return raws + [gzip.compress(r, mtime=0) for r in raws]


VALID_FILES = _valid_files()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10_000), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("insert"), st.integers(0, 10_000), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10_000), st.just(0)),
    st.tuples(st.just("append"), st.integers(1, 16), st.integers(0, 255)),
)


@FUZZ_SETTINGS
@given(
    which=st.integers(0, len(VALID_FILES) - 1),
    mutations=st.lists(mutation, min_size=1, max_size=4),
)
def test_fuzz_mutated_valid_files(
    fuzz_file: Path, which: int, mutations: list[tuple[str, int, int]]
) -> None:
    data = bytearray(VALID_FILES[which])
    for op, pos, value in mutations:
        i = pos % (len(data) + 1)
        if op == "flip" and data:
            data[i % len(data)] ^= value
        elif op == "cut":
            del data[i:]
        elif op == "insert":
            data.insert(i, value)
        elif op == "delete" and data:
            del data[i % len(data)]
        elif op == "append":
            data += bytes([value]) * pos
    read_or_format_error(fuzz_file, bytes(data))
