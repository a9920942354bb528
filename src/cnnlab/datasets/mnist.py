"""Load MNIST (and MNIST-shaped data sets such as Fashion-MNIST) from IDX files.

A copy of MNIST ships with the package (``cnnlab/datasets/data/mnist``), so
:func:`load_mnist` works offline; its four files are checked against the
``SHA256SUMS`` beside them. :func:`download_mnist` fetches the same files from
mirrors into a cache directory, verifying each against the known SHA-256.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cnnlab.datasets.idx import atomic_writer, read_idx
from cnnlab.errors import (
    ChecksumError,
    DataFormatError,
    DownloadError,
    InvalidArgumentError,
)
from cnnlab.preprocess import to_model_input  # re-exported: the one pixel scaling

__all__ = [
    "BUNDLED_DIR",
    "DEFAULT_MIRRORS",
    "FASHION_MNIST_DIR",
    "MNIST_FILES",
    "MNIST_SHA256",
    "DownloadError",
    "default_cache_dir",
    "download_mnist",
    "load_data",
    "load_fashion_mnist",
    "load_idx_dir",
    "load_mnist",
    "to_model_input",
    "verify_checksums",
]

Split = tuple[np.ndarray, np.ndarray]

#: Directory of the MNIST copy bundled with the package.
BUNDLED_DIR = Path(__file__).resolve().parent / "data" / "mnist"

#: Where the Debian package ``dataset-fashion-mnist`` installs Fashion-MNIST.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: Role -> standard file name (without ``.gz``) of the four MNIST files.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}

#: SHA-256 of the four gzip files as published by LeCun et al. (and bundled here).
MNIST_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte.gz": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"
    ),
    "train-labels-idx1-ubyte.gz": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"
    ),
    "t10k-images-idx3-ubyte.gz": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"
    ),
    "t10k-labels-idx1-ubyte.gz": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"
    ),
}

#: Mirrors tried in order by :func:`download_mnist`.
DEFAULT_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)

_NUM_CLASSES = 10
_MAX_DOWNLOAD_BYTES = 64 << 20  # the largest MNIST file is 9.9 MB
_CHUNK = 1 << 16


# --------------------------------------------------------------------------- loading


def _find_file(directory: Path, stem: str) -> Path:
    """Find ``stem`` in ``directory`` as ``stem.gz``, ``stem``, or the ``train-images.idx3-ubyte``
    spelling some redistributions use."""
    dotted = stem.replace("-idx", ".idx")
    candidates = [stem + ".gz", stem, dotted + ".gz", dotted]
    for candidate in candidates:
        path = directory / candidate
        if path.is_file():
            return path
    raise DataFormatError(
        f"{directory}: no {stem}[.gz] in this directory (looked for {', '.join(candidates)})"
    )


def _check_images(x: np.ndarray, path: Path) -> None:
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataFormatError(
            f"{path}: expected images as a 3-D uint8 array (N, H, W), "
            f"got {x.ndim}-D {x.dtype} of shape {x.shape}"
        )


def _check_labels(y: np.ndarray, path: Path) -> None:
    if y.ndim != 1 or y.dtype != np.uint8:
        raise DataFormatError(
            f"{path}: expected labels as a 1-D uint8 array (N,), "
            f"got {y.ndim}-D {y.dtype} of shape {y.shape}"
        )
    bad = np.flatnonzero(y >= _NUM_CLASSES)
    if bad.size:
        i = int(bad[0])
        raise DataFormatError(
            f"{path}: label {int(y[i])} at index {i} is outside 0..{_NUM_CLASSES - 1} "
            f"({bad.size} such labels)"
        )


def _load_split(images: Path, labels: Path) -> Split:
    x = read_idx(images)
    _check_images(x, images)
    y = read_idx(labels)
    _check_labels(y, labels)
    if x.shape[0] != y.shape[0]:
        raise DataFormatError(
            f"{images} holds {x.shape[0]} images but {labels} holds {y.shape[0]} labels"
        )
    return x, y


def load_idx_dir(directory: str | os.PathLike[str]) -> tuple[Split, Split]:
    """Load an MNIST-layout directory: the four standard IDX files, gzip or raw.

    Looks for ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
    ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each with or
    without ``.gz`` (the ``.gz`` name is preferred when both exist). Works for
    MNIST, Fashion-MNIST and any other 10-class data set in the same layout.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``: images as uint8 ``(N, H, W)``,
        labels as uint8 ``(N,)`` with values 0..9.

    Raises:
        DataFormatError: a file is missing or malformed (see :func:`read_idx`), the
            images are not 3-D uint8, the labels not 1-D uint8, a label is outside
            0..9 (names the file, the value and its index), a split has different
            numbers of images and labels, or train and test images differ in size.
    """
    root = Path(directory)
    if not root.is_dir():
        raise DataFormatError(f"{root}: not a directory")
    paths = {role: _find_file(root, stem) for role, stem in MNIST_FILES.items()}
    train = _load_split(paths["train_images"], paths["train_labels"])
    test = _load_split(paths["test_images"], paths["test_labels"])
    if train[0].shape[1:] != test[0].shape[1:]:
        raise DataFormatError(
            f"{root}: training images are {train[0].shape[1]}x{train[0].shape[2]} but test "
            f"images are {test[0].shape[1]}x{test[0].shape[2]}"
        )
    return train, test


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_sums(path: Path) -> dict[str, str]:
    sums: dict[str, str] = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split(maxsplit=1)
        digest = parts[0].lower()
        if len(parts) != 2 or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise DataFormatError(f"{path}:{lineno}: not a 'SHA256  filename' line: {line!r}")
        sums[parts[1].strip().lstrip("*")] = digest
    return sums


def verify_checksums(directory: str | os.PathLike[str], sums: dict[str, str] | None = None) -> None:
    """Check files in ``directory`` against SHA-256 sums.

    Args:
        directory: the directory holding the files.
        sums: file name -> hex SHA-256; by default read from ``directory/SHA256SUMS``
            (``sha256sum`` output format).

    Raises:
        ChecksumError: a listed file differs; names the file, the expected and the
            actual hash.
        DataFormatError: a listed file is missing or ``SHA256SUMS`` is malformed or absent.
    """
    root = Path(directory)
    if sums is None:
        sums_file = root / "SHA256SUMS"
        if not sums_file.is_file():
            raise DataFormatError(f"{root}: no SHA256SUMS file to verify against")
        sums = _read_sums(sums_file)
    for name, expected in sums.items():
        path = root / name
        if not path.is_file():
            raise DataFormatError(f"{path}: listed in SHA256SUMS but missing")
        actual = _sha256(path)
        if actual != expected.lower():
            raise ChecksumError(
                f"{path}: SHA-256 mismatch: expected {expected.lower()}, got {actual}"
            )


def load_mnist(
    directory: str | os.PathLike[str] | None = None, *, verify: bool = True
) -> tuple[Split, Split]:
    """Load MNIST: ``((x_train, y_train), (x_test, y_test))``.

    Args:
        directory: a directory in MNIST layout (see :func:`load_idx_dir`); ``None``
            means the copy bundled with the package.
        verify: check the files against the directory's ``SHA256SUMS`` before
            reading them. The bundled copy always has one (its absence is an
            error); another directory is checked only if it has one (the cache
            that :func:`download_mnist` fills does).

    Returns:
        ``x_train`` uint8 (60000, 28, 28), ``y_train`` uint8 (60000,),
        ``x_test`` uint8 (10000, 28, 28), ``y_test`` uint8 (10000,) for real MNIST.

    Where the bundled copy is missing (a repackaged install without its data),
    ``directory=None`` falls back to the download cache, filling it from the
    usual mirrors with every file checked against its known SHA-256.

    Raises:
        ChecksumError: a file does not match ``SHA256SUMS``.
        DataFormatError: as :func:`load_idx_dir`.
        DownloadError: no bundled copy, and no mirror delivered a valid one.
    """
    root = BUNDLED_DIR if directory is None else Path(directory)
    if directory is None and not all((root / name).is_file() for name in MNIST_SHA256):
        root = download_mnist()
    if verify and (directory is None or (root / "SHA256SUMS").is_file()):
        verify_checksums(root)
    return load_idx_dir(root)


def load_data(
    path: str | os.PathLike[str] | None = None, *, verify: bool = True
) -> tuple[Split, Split]:
    """Keras-style alias of :func:`load_mnist`.

    ``(x_train, y_train), (x_test, y_test) = load_data()``
    """
    return load_mnist(path, verify=verify)


def load_fashion_mnist(directory: str | os.PathLike[str] | None = None) -> tuple[Split, Split]:
    """Load Fashion-MNIST (same layout and shapes as MNIST).

    Args:
        directory: where the four IDX files are; ``None`` means
            :data:`FASHION_MNIST_DIR`, where Debian's ``dataset-fashion-mnist`` puts them.

    Raises:
        DataFormatError: the directory or a file is missing or malformed.
    """
    root = FASHION_MNIST_DIR if directory is None else Path(directory)
    if not root.is_dir():
        raise DataFormatError(
            f"{root}: not a directory; install Debian's dataset-fashion-mnist or pass "
            "the directory holding the Fashion-MNIST IDX files"
        )
    return load_idx_dir(root)


# -------------------------------------------------------------------------- download


def default_cache_dir() -> Path:
    """Where :func:`download_mnist` puts MNIST by default.

    ``$CNNLAB_CACHE/mnist`` if ``CNNLAB_CACHE`` is set, else
    ``$XDG_CACHE_HOME/cnnlab/mnist``, else ``~/.cache/cnnlab/mnist``.
    """
    if os.environ.get("CNNLAB_CACHE"):
        return Path(os.environ["CNNLAB_CACHE"]).expanduser() / "mnist"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "cnnlab" / "mnist"


def _fetch(url: str, dest: Path, expected: str, timeout: float) -> None:
    """Download ``url`` into ``dest`` atomically if its SHA-256 is ``expected``."""
    digest = hashlib.sha256()
    size = 0
    with atomic_writer(dest) as out:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            while block := response.read(_CHUNK):
                size += len(block)
                if size > _MAX_DOWNLOAD_BYTES:
                    raise DataFormatError(f"{url}: more than {_MAX_DOWNLOAD_BYTES} bytes")
                digest.update(block)
                out.write(block)
        actual = digest.hexdigest()
        if actual != expected:
            # Raising inside the writer discards the temporary file.
            raise ChecksumError(f"{url}: SHA-256 mismatch: expected {expected}, got {actual}")


def download_mnist(
    cache_dir: str | os.PathLike[str] | None = None,
    mirrors: Sequence[str] | None = None,
    *,
    timeout: float = 30.0,
    force: bool = False,
) -> Path:
    """Download the four MNIST files into ``cache_dir`` and return the directory.

    Each file is fetched with urllib from the first mirror that delivers it
    with the known SHA-256 (:data:`MNIST_SHA256`); a mirror that fails (network
    error, HTTP error, wrong checksum) is skipped for the next. Files are
    written atomically (temporary file, fsync, rename), so the cache never
    holds a partial or unverified file. Files already in the cache with the
    right hash are not downloaded again (unless ``force``). A ``SHA256SUMS`` is
    written too, so ``load_mnist(cache_dir)`` verifies them.

    Args:
        cache_dir: target directory; default :func:`default_cache_dir`.
        mirrors: base URLs (``http(s)://`` or ``file://``) tried in order; default
            :data:`DEFAULT_MIRRORS`.
        timeout: seconds for each connection.
        force: download even files that are already cached and valid.

    Raises:
        DownloadError: no mirror delivered a valid copy of some file; the message
            lists each mirror's failure.
        InvalidArgumentError: ``mirrors`` is empty.
    """
    root = default_cache_dir() if cache_dir is None else Path(cache_dir).expanduser()
    bases = list(DEFAULT_MIRRORS if mirrors is None else mirrors)
    if not bases:
        raise InvalidArgumentError("download_mnist: no mirrors given")
    root.mkdir(parents=True, exist_ok=True)
    for name, expected in MNIST_SHA256.items():
        dest = root / name
        if not force and dest.is_file() and _sha256(dest) == expected:
            continue
        failures: list[str] = []
        for base in bases:
            url = base if base.endswith("/") else base + "/"
            url += name
            try:
                _fetch(url, dest, expected, timeout)
                break
            # URLError, HTTPError, timeouts, broken transfers, wrong checksum, bad URL
            except (OSError, ValueError, http.client.HTTPException) as exc:
                failures.append(f"  {url}: {exc}")
        else:
            raise DownloadError(
                f"could not download {name} from any mirror:\n" + "\n".join(failures)
            )
    with atomic_writer(root / "SHA256SUMS") as f:
        f.write("".join(f"{h}  {n}\n" for n, h in MNIST_SHA256.items()).encode())
    return root
