"""Shared helpers and fixtures of the core test suite.

* :func:`numerical_gradient`: central finite differences of a scalar function.
* :func:`rel_error`: ``|a - n| / max(|a| + |n|, tiny)`` on whole gradient vectors.
* :func:`tf_same_pads`: the TensorFlow "same" rule, written independently of cnnlab.
* ``mnist_small``: 5,000 training and 1,000 test MNIST images as model inputs.
"""

from __future__ import annotations

import gzip
import math
import struct
from pathlib import Path

import numpy as np
import pytest

MNIST_DIR = Path(__file__).resolve().parents[1] / "src" / "cnnlab" / "datasets" / "data" / "mnist"


def numerical_gradient(f, x, eps=1e-6):
    """Central differences ``(f(x + eps e_i) - f(x - eps e_i)) / 2 eps`` for every entry of ``x``.

    ``x`` (float64) is perturbed in place and restored; ``f`` takes no argument
    and reads ``x`` (or whatever aliases it).
    """
    grad = np.zeros_like(x, dtype=np.float64)
    flat = x.reshape(-1)
    gflat = grad.reshape(-1)
    assert np.shares_memory(flat, x), "x must be contiguous"
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = float(f())
        flat[i] = old - eps
        fm = float(f())
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return grad


def rel_error(a, n, tiny=1e-12):
    """Relative error of two whole gradients: ``||a - n|| / max(||a|| + ||n||, tiny)``."""
    a = np.asarray(a, dtype=np.float64).ravel()
    n = np.asarray(n, dtype=np.float64).ravel()
    return float(np.linalg.norm(a - n) / max(np.linalg.norm(a) + np.linalg.norm(n), tiny))


def assert_grad_close(analytic, numeric, tol=1e-6, what="gradient"):
    assert analytic.shape == numeric.shape, (what, analytic.shape, numeric.shape)
    err = rel_error(analytic, numeric)
    assert err < tol, f"{what}: relative error {err:.3e} >= {tol:g}"


def tf_same_pads(n, k, s):
    """TensorFlow's 'same' padding for one axis: (before, after)."""
    out = math.ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _read_idx_gz(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_mnist_raw():
    """``((x_train, y_train), (x_test, y_test))`` uint8, via cnnlab or the raw IDX files."""
    try:
        from cnnlab.datasets import load_mnist

        return load_mnist()
    except Exception:  # the loader is being written elsewhere: fall back to the raw files
        def split(prefix):
            x = _read_idx_gz(MNIST_DIR / f"{prefix}-images-idx3-ubyte.gz")
            y = _read_idx_gz(MNIST_DIR / f"{prefix}-labels-idx1-ubyte.gz")
            return x, y

        return split("train"), split("t10k")


@pytest.fixture(scope="session")
def mnist_small():
    """``(x_train, y_train, x_test, y_test)``: 5,000 / 1,000 images, float32 (N, 28, 28, 1)."""
    (x_train, y_train), (x_test, y_test) = load_mnist_raw()

    def prep(x):
        return (np.asarray(x, dtype=np.float32) / np.float32(255.0))[..., None]

    return (
        prep(x_train[:5000]),
        np.asarray(y_train[:5000], dtype=np.int64),
        prep(x_test[:1000]),
        np.asarray(y_test[:1000], dtype=np.int64),
    )
