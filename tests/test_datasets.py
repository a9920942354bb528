"""MNIST loading, validation, checksums and the (local-only) download path."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cnnlab.datasets import (
    DownloadError,
    default_cache_dir,
    download_mnist,
    load_data,
    load_fashion_mnist,
    load_idx_dir,
    load_mnist,
    read_idx,
    to_model_input,
    verify_checksums,
    write_idx,
)
from cnnlab.datasets import mnist as mnist_module
from cnnlab.errors import ChecksumError, DataFormatError, InvalidArgumentError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
FIRST_TRAIN = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
FIRST_TEST = [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------- bundled MNIST


@pytest.fixture(scope="module")
def mnist() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    return load_mnist()


def test_bundled_mnist_shapes_and_dtypes(mnist) -> None:
    (x_train, y_train), (x_test, y_test) = mnist
    assert x_train.shape == (60000, 28, 28) and x_train.dtype == np.uint8
    assert y_train.shape == (60000,) and y_train.dtype == np.uint8
    assert x_test.shape == (10000, 28, 28) and x_test.dtype == np.uint8
    assert y_test.shape == (10000,) and y_test.dtype == np.uint8
    assert x_train.max() == 255 and x_train.min() == 0


def test_bundled_mnist_labels(mnist) -> None:
    (_, y_train), (_, y_test) = mnist
    assert np.bincount(y_train, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == TEST_COUNTS
    assert y_train[:10].tolist() == FIRST_TRAIN
    assert y_test[:10].tolist() == FIRST_TEST


def test_bundled_mnist_digits_are_centred_like_lecun_says(mnist) -> None:
    (x_train, _), _ = mnist
    x = x_train[:2000].astype(np.float64)
    idx = np.arange(28)
    mass = x.sum(axis=(1, 2))
    cy = (x.sum(axis=2) @ idx) / mass
    cx = (x.sum(axis=1) @ idx) / mass
    assert abs(cy.mean() - 14) < 0.05 and abs(cx.mean() - 14) < 0.05


def test_load_data_is_a_keras_style_alias() -> None:
    (x_train, y_train), (x_test, y_test) = load_data(verify=False)
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train[:10].tolist() == FIRST_TRAIN and y_test[:10].tolist() == FIRST_TEST


def test_bundled_checksums_verify() -> None:
    verify_checksums(mnist_module.BUNDLED_DIR)


def test_to_model_input() -> None:
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    out = to_model_input(images)
    assert out.shape == (1, 2, 2, 1) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, :, :, 0], [[0, 1], [0.2, 0.4]], rtol=1e-6)
    assert to_model_input(images[0]).shape == (1, 2, 2, 1)
    with pytest.raises(InvalidArgumentError, match="uint8"):
        to_model_input(images.astype(np.float32))
    with pytest.raises(InvalidArgumentError, match="shape"):
        to_model_input(images[..., None])


# ------------------------------------------------------------- synthetic directories


def make_dir(
    root: Path,
    *,
    n_train: int = 12,
    n_test: int = 6,
    size: tuple[int, int] = (28, 28),
    compress: bool = True,
    sums: bool = False,
) -> dict[str, np.ndarray]:
    """Write a small MNIST-layout directory; return the arrays written, by role."""
    rng = np.random.default_rng(3)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, *size), dtype=np.uint8),
        "train_labels": (np.arange(n_train) % 10).astype(np.uint8),
        "test_images": rng.integers(0, 256, (n_test, *size), dtype=np.uint8),
        "test_labels": (np.arange(n_test) % 10).astype(np.uint8)[::-1].copy(),
    }
    root.mkdir(parents=True, exist_ok=True)
    for role, arr in arrays.items():
        write_idx(root / (NAMES[role] + (".gz" if compress else "")), arr, gzip=compress)
    if sums:
        lines = [f"{sha256(p)}  {p.name}\n" for p in sorted(root.iterdir())]
        (root / "SHA256SUMS").write_text("".join(lines))
    return arrays


def test_load_idx_dir_gzip(tmp_path: Path) -> None:
    arrays = make_dir(tmp_path)
    (x_train, y_train), (x_test, y_test) = load_idx_dir(tmp_path)
    np.testing.assert_array_equal(x_train, arrays["train_images"])
    np.testing.assert_array_equal(y_train, arrays["train_labels"])
    np.testing.assert_array_equal(x_test, arrays["test_images"])
    np.testing.assert_array_equal(y_test, arrays["test_labels"])


def test_load_idx_dir_raw_names(tmp_path: Path) -> None:
    arrays = make_dir(tmp_path, compress=False)
    (_, y_train), _ = load_idx_dir(tmp_path)
    np.testing.assert_array_equal(y_train, arrays["train_labels"])


def test_load_idx_dir_dotted_names(tmp_path: Path) -> None:
    make_dir(tmp_path, compress=False)
    for path in list(tmp_path.iterdir()):
        path.rename(path.with_name(path.name.replace("-idx", ".idx")))
    (x_train, _), _ = load_idx_dir(tmp_path)
    assert x_train.shape == (12, 28, 28)


def test_load_idx_dir_other_image_size(tmp_path: Path) -> None:
    make_dir(tmp_path, size=(16, 12))
    (x_train, _), (x_test, _) = load_idx_dir(tmp_path)
    assert x_train.shape == (12, 16, 12) and x_test.shape == (6, 16, 12)


def test_missing_file(tmp_path: Path) -> None:
    make_dir(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataFormatError, match=r"no t10k-labels-idx1-ubyte\[\.gz\]"):
        load_idx_dir(tmp_path)


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="not a directory"):
        load_idx_dir(tmp_path / "nowhere")
    with pytest.raises(DataFormatError, match="not a directory"):
        load_fashion_mnist(tmp_path / "nowhere")


def test_label_out_of_range(tmp_path: Path) -> None:
    make_dir(tmp_path)
    labels = (np.arange(12) % 10).astype(np.uint8)
    labels[3] = 10
    labels[7] = 200
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, gzip=True)
    with pytest.raises(DataFormatError) as info:
        load_idx_dir(tmp_path)
    message = str(info.value)
    assert "train-labels-idx1-ubyte.gz" in message
    assert "label 10 at index 3" in message and "2 such labels" in message


def test_count_mismatch(tmp_path: Path) -> None:
    make_dir(tmp_path)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.zeros(5, np.uint8), gzip=True)
    with pytest.raises(DataFormatError, match="holds 6 images but .* holds 5 labels"):
        load_idx_dir(tmp_path)


def test_train_and_test_image_sizes_differ(tmp_path: Path) -> None:
    make_dir(tmp_path)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", np.zeros((6, 28, 27), np.uint8), gzip=True)
    with pytest.raises(
        DataFormatError, match="training images are 28x28 but test images are 28x27"
    ):
        load_idx_dir(tmp_path)


@pytest.mark.parametrize(
    ("role", "arr", "message"),
    [
        ("train_images", np.zeros((12, 784), np.uint8), "3-D uint8"),
        ("train_images", np.zeros((12, 28, 28), np.float32), "3-D uint8"),
        ("train_labels", np.zeros((12, 1), np.uint8), "1-D uint8"),
        ("train_labels", np.zeros(12, np.int32), "1-D uint8"),
    ],
)
def test_wrong_rank_or_type(tmp_path: Path, role: str, arr: np.ndarray, message: str) -> None:
    make_dir(tmp_path)
    write_idx(tmp_path / (NAMES[role] + ".gz"), arr, gzip=True)
    with pytest.raises(DataFormatError, match=message):
        load_idx_dir(tmp_path)


def test_malformed_file_propagates_reader_error(tmp_path: Path) -> None:
    make_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataFormatError, match="train-images-idx3-ubyte.gz: corrupt or truncated"):
        load_idx_dir(tmp_path)


# ------------------------------------------------------------------------ checksums


def test_load_mnist_verifies_sha256sums(tmp_path: Path) -> None:
    make_dir(tmp_path, sums=True)
    load_mnist(tmp_path)
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    expected = sha256(path)
    write_idx(path, np.ones(6, np.uint8), gzip=True)  # valid IDX, other content
    with pytest.raises(ChecksumError) as info:
        load_mnist(tmp_path)
    message = str(info.value)
    assert "t10k-labels-idx1-ubyte.gz" in message
    assert expected in message and sha256(path) in message
    # verify=False trusts the files; a directory without SHA256SUMS is not checked
    load_mnist(tmp_path, verify=False)
    (tmp_path / "SHA256SUMS").unlink()
    load_mnist(tmp_path)


def test_bundled_copy_is_verified(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_dir(tmp_path, sums=True)
    monkeypatch.setattr(mnist_module, "BUNDLED_DIR", tmp_path)
    assert load_mnist()[0][0].shape == (12, 28, 28)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(b"tampered")
    with pytest.raises(ChecksumError, match="train-images-idx3-ubyte.gz: SHA-256 mismatch"):
        load_mnist()
    (tmp_path / "SHA256SUMS").unlink()
    with pytest.raises(DataFormatError, match="no SHA256SUMS"):
        load_mnist()


def test_sha256sums_problems(tmp_path: Path) -> None:
    make_dir(tmp_path)
    (tmp_path / "SHA256SUMS").write_text("0" * 64 + "  missing-file.gz\n")
    with pytest.raises(DataFormatError, match="missing-file.gz: listed in SHA256SUMS but missing"):
        verify_checksums(tmp_path)
    (tmp_path / "SHA256SUMS").write_text("not a checksum line\n")
    with pytest.raises(DataFormatError, match="SHA256SUMS:1"):
        verify_checksums(tmp_path)


# ------------------------------------------------------------------- Fashion-MNIST


@pytest.mark.skipif(
    not mnist_module.FASHION_MNIST_DIR.is_dir(), reason="dataset-fashion-mnist not installed"
)
def test_fashion_mnist_from_debian_package() -> None:
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert np.bincount(y_train, minlength=10).tolist() == [6000] * 10
    assert np.bincount(y_test, minlength=10).tolist() == [1000] * 10


# ------------------------------------------------------------------------- download


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (an ephemeral port); yield its base URL."""
    handler = functools.partial(QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make sure urllib talks to 127.0.0.1 directly, never through a proxy."""
    for var in ("http_proxy", "https_proxy", "all_proxy", "ftp_proxy"):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.upper(), raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


@pytest.fixture
def mirrors(tmp_path: Path) -> Iterator[str]:
    """A local server with a good mirror (good/), a corrupt one (bad/) and none at missing/."""
    root = tmp_path / "www"
    good, bad = root / "good", root / "bad"
    good.mkdir(parents=True)
    bad.mkdir()
    for name in mnist_module.MNIST_SHA256:
        source = mnist_module.BUNDLED_DIR / name
        (good / name).symlink_to(source)
        corrupt = bytearray(source.read_bytes()[:4096])
        corrupt[100] ^= 0xFF
        (bad / name).write_bytes(bytes(corrupt))
    with serve(root) as base:
        yield base


def cache_listing(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir())


@pytest.mark.usefixtures("no_proxy")
def test_download_skips_corrupt_and_missing_mirrors(mirrors: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    out = download_mnist(cache, mirrors=[mirrors + "bad/", mirrors + "missing", mirrors + "good"])
    assert out == cache
    assert cache_listing(cache) == sorted([*mnist_module.MNIST_SHA256, "SHA256SUMS"])
    for name, digest in mnist_module.MNIST_SHA256.items():
        assert sha256(cache / name) == digest
    verify_checksums(cache)
    assert read_idx(cache / "t10k-labels-idx1-ubyte.gz")[:10].tolist() == FIRST_TEST

    # Cached and valid: nothing is fetched, so even an unreachable mirror is fine.
    download_mnist(cache, mirrors=["http://127.0.0.1:9/"], timeout=2)

    # A damaged cached file is fetched again.
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"damaged")
    download_mnist(cache, mirrors=[mirrors + "good/"])
    verify_checksums(cache)


@pytest.mark.usefixtures("no_proxy")
def test_download_fails_clearly_when_no_mirror_works(mirrors: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as info:
        download_mnist(cache, mirrors=[mirrors + "bad/", mirrors + "missing/"])
    message = str(info.value)
    assert "could not download train-images-idx3-ubyte.gz from any mirror" in message
    assert mirrors + "bad/train-images-idx3-ubyte.gz: " in message and "SHA-256 mismatch" in message
    assert mirrors + "missing/train-images-idx3-ubyte.gz: HTTP Error 404" in message
    assert isinstance(info.value, OSError)
    assert cache_listing(cache) == []  # no partial or unverified file is left behind


def test_download_from_file_urls(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    download_mnist(
        cache, mirrors=[(tmp_path / "nothing").as_uri(), mnist_module.BUNDLED_DIR.as_uri()]
    )
    load_mnist(cache)  # verifies against the SHA256SUMS written there


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c" / "mnist"
    download_mnist(mirrors=[mnist_module.BUNDLED_DIR.as_uri() + "/"])
    assert (tmp_path / "c" / "mnist" / "SHA256SUMS").is_file()
    monkeypatch.delenv("CNNLAB_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" / "cnnlab" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "cnnlab" / "mnist"


def test_download_needs_a_mirror(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError):
        download_mnist(tmp_path, mirrors=[])


def test_bundled_sums_match_the_known_sums() -> None:
    listed = {}
    for line in (mnist_module.BUNDLED_DIR / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        listed[name] = digest
    assert listed == mnist_module.MNIST_SHA256


def test_load_mnist_without_bundled_copy_downloads_into_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No bundled files: load_mnist() fills the cache from a mirror (a file:// URL here)."""
    real = mnist_module.BUNDLED_DIR
    monkeypatch.setattr(mnist_module, "BUNDLED_DIR", tmp_path / "not-shipped")
    monkeypatch.setattr(mnist_module, "DEFAULT_MIRRORS", (real.as_uri() + "/",))
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    (x_train, y_train), (x_test, y_test) = mnist_module.load_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert list(y_test[:10]) == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    cached = sorted(p.name for p in (tmp_path / "cache").rglob("*.gz"))
    assert cached == sorted(mnist_module.MNIST_SHA256)
