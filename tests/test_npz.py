"""Labelled images from .npz archives (cnnlab.datasets.npz) and the one entry point for
every source (cnnlab.datasets.load_dataset): what is accepted, what each error names."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cnnlab.datasets import DataSplits, load_dataset, load_npz, write_idx
from cnnlab.datasets.mnist import MNIST_FILES
from cnnlab.errors import DataFormatError, InvalidArgumentError


def npz(tmp_path: Path, name: str = "data.npz", **arrays: object) -> Path:
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def pixels(n: int = 6, h: int = 4, w: int = 5, c: int | None = None,
           value: int = 100) -> np.ndarray:
    shape = (n, h, w) if c is None else (n, h, w, c)
    return np.full(shape, value, dtype=np.uint8)


LABELS = np.array([0, 1, 2, 0, 1, 2])


# ------------------------------------------------------------------------ load_npz


def test_uint8_images_get_a_channel_axis_and_default_class_names(tmp_path: Path) -> None:
    data = load_npz(npz(tmp_path, x=pixels(), y=LABELS))
    assert isinstance(data, DataSplits) and data.test is None
    assert data.train.x.shape == (6, 4, 5, 1) and data.train.x.dtype == np.uint8
    assert (data.train.x == 100).all()
    assert data.train.y.tolist() == LABELS.tolist() and data.train.y.dtype == np.int64
    assert data.class_names == ["0", "1", "2"] and data.train.files is None
    assert "data.npz" in data.source and "6 training" in data.source
    assert data.skipped_files == 0 and data.skipped_bad == []


def test_rgb_images_class_names_and_a_test_part(tmp_path: Path) -> None:
    data = load_npz(npz(
        tmp_path, x=pixels(c=3), y=LABELS, class_names=np.array(["cat", "dog", "eel"]),
        x_test=pixels(n=2, c=3, value=7), y_test=np.array([2, 0], dtype=np.uint8),
    ))
    assert data.train.x.shape == (6, 4, 5, 3) and data.class_names == ["cat", "dog", "eel"]
    assert data.test is not None and data.test.x.shape == (2, 4, 5, 3)
    assert (data.test.x == 7).all() and data.test.y.tolist() == [2, 0]
    assert data.test.y.dtype == np.int64


def test_bytes_class_names_are_decoded(tmp_path: Path) -> None:
    data = load_npz(npz(tmp_path, x=pixels(), y=LABELS, class_names=np.array([b"a", b"b", b"c"])))
    assert data.class_names == ["a", "b", "c"]


def test_floats_are_model_input_as_they_are(tmp_path: Path) -> None:
    x = np.linspace(-2.5, 3.5, 6 * 4 * 5).reshape(6, 4, 5, 1)  # standardised: any range
    data = load_npz(npz(tmp_path, x=x, y=LABELS))
    assert data.train.x.dtype == np.float32
    assert np.array_equal(data.train.x, x.astype(np.float32))
    assert "float32 model input" in data.source


def test_integer_pixels_in_range_become_uint8(tmp_path: Path) -> None:
    data = load_npz(npz(tmp_path, x=pixels().astype(np.int64) + 155, y=LABELS))
    assert data.train.x.dtype == np.uint8 and (data.train.x == 255).all()


def test_load_npz_reads_a_file_object(tmp_path: Path) -> None:
    buf = io.BytesIO()
    np.savez_compressed(buf, x=pixels(), y=LABELS)
    buf.seek(0)
    assert load_npz(buf).train.x.shape == (6, 4, 5, 1)


@pytest.mark.parametrize("arrays,message", [
    ({"y": LABELS}, r"no 'x' array"),
    ({"x": pixels()}, r"no 'y' array"),
    ({"x": pixels(), "y": LABELS, "labels": LABELS}, r"unknown key \['labels'\]"),
    ({"x": pixels(), "y": LABELS, "x_test": pixels()}, r"has 'x_test' but no 'y_test'"),
    ({"x": pixels()[:, :, 0], "y": LABELS}, r"'x' has shape \(6, 4\): expected images"),
    ({"x": pixels(c=2), "y": LABELS}, r"'x' has shape \(6, 4, 5, 2\).*C = 1 or 3"),
    ({"x": pixels(n=0), "y": LABELS[:0]}, r"'x' has shape \(0, 4, 5, 1\): no images"),
    ({"x": pixels(), "y": LABELS[:5]}, r"'x' holds 6 images but 'y' holds 5 labels"),
    ({"x": pixels(), "y": LABELS[:, None]}, r"'y' has shape \(6, 1\): expected \(N,\)"),
    ({"x": pixels(), "y": LABELS.astype(float)}, r"'y' has dtype float64: labels must be int"),
    ({"x": pixels(), "y": LABELS - 1}, r"'y' holds a negative label, -1 at index 0"),
    ({"x": pixels().astype(np.int16) * 3, "y": LABELS}, r"int16 values 300..300.*0..255"),
    ({"x": pixels() > 0, "y": LABELS}, r"'x' has dtype bool"),
    ({"x": pixels(), "y": LABELS, "class_names": np.array(["a", "b"])},
     r"'y' holds label 2 at index 2, but 'class_names' names only 2 classes \(0..1\)"),
    ({"x": pixels(), "y": LABELS, "class_names": np.array(["a", "b", "a"])},
     r"'class_names' repeats \['a'\]"),
    ({"x": pixels(), "y": LABELS, "class_names": np.array([1, 2, 3])},
     r"'class_names' is int64 .*strings"),
    ({"x": pixels(), "y": np.zeros(6, int)}, r"a single class \('0'\)"),
    ({"x": pixels(), "y": LABELS, "x_test": pixels(h=3), "y_test": LABELS},
     r"'x_test' images are uint8 \(3, 5, 1\) but 'x' images are uint8 \(4, 5, 1\)"),
    ({"x": pixels(), "y": LABELS, "x_test": pixels().astype(np.float32), "y_test": LABELS},
     r"'x_test' images are float32"),
    ({"x": pixels(), "y": LABELS, "x_test": pixels(n=2), "y_test": np.array([0, 3]),
      "class_names": np.array(["a", "b", "c"])}, r"'y_test' holds label 3 at index 1"),
])
def test_malformed_archives_name_the_file_and_the_problem(tmp_path: Path, arrays: dict,
                                                          message: str) -> None:
    path = npz(tmp_path, **arrays)
    with pytest.raises(DataFormatError, match=message) as info:
        load_npz(path)
    assert str(info.value).startswith(f"{path}: ")


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_floats_are_refused_with_their_index(tmp_path: Path, bad: float) -> None:
    x = np.zeros((6, 4, 5, 1), np.float32)
    x[3, 2, 1, 0] = bad
    x[4, 0, 0, 0] = bad
    with pytest.raises(DataFormatError, match=r"'x' holds 2 non-finite values .* at index "
                                              r"\(3, 2, 1, 0\)"):
        load_npz(npz(tmp_path, x=x, y=LABELS))


def test_object_arrays_are_refused_without_unpickling(tmp_path: Path) -> None:
    names = np.array(["cat", "dog", None], dtype=object)
    path = npz(tmp_path, x=pixels(), y=LABELS, class_names=names)
    with pytest.raises(DataFormatError, match=r"'class_names' holds Python objects .*pickle"):
        load_npz(path)


def test_files_that_are_not_archives(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"missing\.npz: no such file"):
        load_npz(tmp_path / "missing.npz")
    text = tmp_path / "text.npz"
    text.write_text("hello")
    with pytest.raises(DataFormatError, match=r"text\.npz: not a readable \.npz archive"):
        load_npz(text)
    single = tmp_path / "single.npz"
    with open(single, "wb") as f:
        np.save(f, pixels())
    with pytest.raises(DataFormatError, match=r"single\.npz: holds a single array"):
        load_npz(single)
    whole = npz(tmp_path, "whole.npz", x=pixels(), y=LABELS).read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(whole[: len(whole) - 300])
    with pytest.raises(DataFormatError, match=r"cut\.npz: "):
        load_npz(cut)


# -------------------------------------------------------------------- load_dataset


def idx_folder(root: Path, n_train: int = 8, n_test: int = 4) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    parts = {"train": n_train, "test": n_test}
    for role, stem in MNIST_FILES.items():
        n = parts[role.split("_")[0]]
        if role.endswith("images"):
            write_idx(root / (stem + ".gz"), rng.integers(0, 256, (n, 28, 28), np.uint8),
                      gzip=True)
        else:
            write_idx(root / stem, (np.arange(n) % 10).astype(np.uint8))
    return root


def test_load_dataset_reads_an_npz(tmp_path: Path) -> None:
    path = npz(tmp_path, x=pixels(), y=LABELS)
    data = load_dataset(path)
    assert data.train.x.shape == (6, 4, 5, 1) and data.source == load_npz(path).source


def test_load_dataset_reads_an_idx_folder(tmp_path: Path) -> None:
    root = idx_folder(tmp_path / "idx")
    data = load_dataset(root)
    assert data.train.x.shape == (8, 28, 28, 1) and data.train.x.dtype == np.uint8
    assert data.test is not None and data.test.x.shape == (4, 28, 28, 1)
    assert data.class_names == [str(i) for i in range(10)]
    assert data.train.y.tolist() == [0, 1, 2, 3, 4, 5, 6, 7] and data.train.y.dtype == np.int64
    assert "IDX folder" in data.source


def test_load_dataset_without_a_path_is_the_bundled_mnist() -> None:
    data = load_dataset()
    assert data.train.x.shape == (60000, 28, 28, 1) and data.test is not None
    assert data.test.x.shape == (10000, 28, 28, 1) and data.num_classes == 10
    assert np.bincount(data.test.y).tolist()[:3] == [980, 1135, 1032]


def test_load_dataset_reads_an_image_folder(tmp_path: Path) -> None:
    for name, value in [("a", 30), ("b", 90)]:
        (tmp_path / "pics" / name).mkdir(parents=True)
        Image.new("L", (6, 4), value).save(tmp_path / "pics" / name / "0.png")
    data = load_dataset(tmp_path / "pics", cache_dir=tmp_path / "cache", progress=False,
                        image_size=(2, 3), color="rgb")
    assert data.class_names == ["a", "b"] and data.train.x.shape == (2, 2, 3, 3)
    assert (data.train.x[0] == 30).all() and (data.train.x[1] == 90).all()
    assert isinstance(data.train.x, np.memmap)


def test_load_dataset_resizes_and_converts_in_memory(tmp_path: Path) -> None:
    rgb = np.zeros((6, 4, 4, 3), np.uint8)
    rgb[..., 0] = 200  # pure red
    data = load_dataset(npz(tmp_path, x=rgb, y=LABELS), image_size=(8, 6), color="grayscale")
    assert data.train.x.shape == (6, 8, 6, 1)
    assert (data.train.x == (200 * 19595 + 0x8000) >> 16).all()  # Pillow's L: 60
    assert "converted to 8x6x1" in data.source
    floats = np.ones((6, 4, 4, 3), np.float32) * np.array([1.0, 0.5, 0.0], np.float32)
    data = load_dataset(npz(tmp_path, "f.npz", x=floats, y=LABELS), color="grayscale")
    assert data.train.x.dtype == np.float32
    assert np.allclose(data.train.x, 0.299 + 0.587 * 0.5)
    data = load_dataset(npz(tmp_path, "g.npz", x=floats[..., :1], y=LABELS), image_size=(2, 3),
                        color="rgb")
    assert data.train.x.shape == (6, 2, 3, 3) and np.allclose(data.train.x, 1.0)
    mnist = load_dataset(idx_folder(tmp_path / "idx"), image_size=(32, 32), color="rgb")
    assert mnist.train.x.shape == (8, 32, 32, 3) and mnist.test.x.shape == (4, 32, 32, 3)


def test_load_dataset_errors_say_what_is_accepted(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match=r"nothing: no such file or folder.*\.npz"):
        load_dataset(tmp_path / "nothing")
    text = tmp_path / "data.csv"
    text.write_text("1,2,3")
    with pytest.raises(DataFormatError, match=r"data\.csv: not a data set .* a \.npz file.*"
                                              r"MNIST IDX.*class folders"):
        load_dataset(text)
    partial = idx_folder(tmp_path / "partial")
    (partial / (MNIST_FILES["test_labels"])).unlink()
    with pytest.raises(DataFormatError, match=r"holds MNIST IDX files .* but not "
                                              r"t10k-labels-idx1-ubyte"):
        load_dataset(partial)
    with pytest.raises(InvalidArgumentError, match=r"image_size"):
        load_dataset(None, image_size=(0, 28))
    with pytest.raises(InvalidArgumentError, match=r"color"):
        load_dataset(None, color="cmyk")  # type: ignore[arg-type]
