"""cnnlab.viz: every figure is a PNG of the documented size, drawing the model's own numbers."""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnlab
from cnnlab import viz
from cnnlab.errors import DataFormatError, InvalidArgumentError, ShapeError
from cnnlab.ops.padding import output_hw, resolve_padding
from cnnlab.viz import cli as viz_cli
from cnnlab.viz import figures as F

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
N_TEST = 300


def _mnist() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    try:
        from cnnlab.datasets import load_mnist
    except ImportError:  # pragma: no cover - fallback while datasets is being written
        import gzip

        root = Path(cnnlab.__file__).parent / "datasets" / "data" / "mnist"

        def read(name: str, header: int) -> np.ndarray:
            with gzip.open(root / name, "rb") as f:
                return np.frombuffer(f.read(), np.uint8, offset=header)

        x = read("t10k-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
        y = read("t10k-labels-idx1-ubyte.gz", 8)
        return (x[5000:], y[5000:]), (x[:5000], y[:5000])
    return load_mnist()


def _to_input(images: np.ndarray) -> np.ndarray:
    """What cnnlab.datasets.to_model_input does (the figures scale uint8 images the same way)."""
    try:
        from cnnlab.datasets import to_model_input
    except ImportError:  # pragma: no cover
        return images.astype(np.float32)[..., None] * np.float32(1.0 / 255.0)
    return to_model_input(images)


@pytest.fixture(scope="module")
def mnist() -> dict[str, np.ndarray]:
    (x_train, y_train), (x_test, y_test) = _mnist()
    return {"x_train": x_train[:2000], "y_train": y_train[:2000],
            "x_test": x_test[:N_TEST], "y_test": y_test[:N_TEST]}


@pytest.fixture(scope="module")
def trained(mnist: dict[str, np.ndarray]) -> tuple[cnnlab.Sequential, cnnlab.History]:
    model = cnnlab.Sequential(
        [cnnlab.Conv2D(8, 3, activation="relu"), cnnlab.MaxPooling2D(2), cnnlab.Flatten(),
         cnnlab.Dense(10), cnnlab.Activation("softmax")],
        input_shape=(28, 28, 1), seed=0,
    )
    model.compile("adam")
    history = model.fit(_to_input(mnist["x_train"]), mnist["y_train"], epochs=1, verbose=0,
                        validation_data=(_to_input(mnist["x_test"][:100]),
                                         mnist["y_test"][:100]))
    return model, history


@pytest.fixture(scope="module")
def model(trained: tuple[cnnlab.Sequential, cnnlab.History]) -> cnnlab.Sequential:
    return trained[0]


def png_size(path: Path) -> tuple[int, int]:
    """Check the PNG signature and return (width, height)."""
    assert path.is_file()
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def px(inches: float) -> int:
    return round(inches * viz.DPI)


def bar_heights(fig) -> list[np.ndarray]:
    return [np.array([p.get_height() for p in ax.patches]) for ax in fig.axes if ax.patches]


# --------------------------------------------------------------------------- feature maps
def test_feature_maps_figure_draws_model_feature_maps(model, mnist, tmp_path: Path) -> None:
    image = mnist["x_test"][0]
    path = viz.feature_maps_figure(model, image, path=tmp_path / "fm.png")
    assert path == tmp_path / "fm.png"
    assert png_size(path) == (px(2.4 + 3.8 * 2), px(4.4))

    expected = dict(model.feature_maps(_to_input(image[None])))
    data = viz.feature_maps_data(model, image)
    assert list(data) == ["conv2d", "max_pooling2d"]
    for name, maps in data.items():
        np.testing.assert_array_equal(maps, expected[name][0])

    fig, _ = F._build_feature_maps(model, image, ("conv2d", "max_pooling2d"))
    subfigs = fig.subfigs
    np.testing.assert_allclose(subfigs[0].axes[0].images[0].get_array(), image / 255.0,
                               rtol=1e-6)
    for sub, name in zip(subfigs[1:], data, strict=True):
        drawn = [ax.images[0].get_array() for ax in sub.axes if ax.images]
        assert len(drawn) == expected[name].shape[-1]
        for c, arr in enumerate(drawn):
            np.testing.assert_array_equal(np.asarray(arr), expected[name][0, :, :, c])


def test_feature_maps_one_layer_and_input_forms(model, mnist, tmp_path: Path) -> None:
    image = mnist["x_test"][1]
    path = viz.feature_maps_figure(model, _to_input(image[None]), "max_pooling2d",
                                   tmp_path / "one.png")
    assert png_size(path) == (px(2.4 + 3.8), px(4.4))
    a = viz.feature_maps_data(model, image, ["conv2d"])["conv2d"]
    b = viz.feature_maps_data(model, _to_input(image[None])[0], ["conv2d"])["conv2d"]
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("layers", ["dense", "nope", ["conv2d", "flatten"], []])
def test_feature_maps_bad_layer_names_valid_choices(model, mnist, layers) -> None:
    with pytest.raises(InvalidArgumentError) as e:
        viz.feature_maps_data(model, mnist["x_test"][0], layers)
    assert "conv2d" in str(e.value) and "max_pooling2d" in str(e.value)


@pytest.mark.parametrize("shape", [(27, 28), (28, 28, 3), (2, 28, 28), (784,)])
def test_feature_maps_bad_image_shape(model, shape, tmp_path: Path) -> None:
    with pytest.raises(ShapeError):
        viz.feature_maps_figure(model, np.zeros(shape, np.float32), path=tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


# --------------------------------------------------------------------------- outputs
def test_outputs_bars_equal_predict(model, mnist, tmp_path: Path) -> None:
    x, y = mnist["x_test"][:5], mnist["y_test"][:5]
    path = viz.outputs_figure(model, x, y, tmp_path / "outputs.png")
    assert png_size(path) == (px(5.6 * 2), px(2.0 * 3))

    probs = model.predict(_to_input(x))
    data = viz.outputs_data(model, x, y)
    np.testing.assert_array_equal(data["probabilities"], probs)
    np.testing.assert_array_equal(data["predicted"], probs.argmax(axis=1))

    fig, _ = F._build_outputs(model, x, y, columns=2)
    heights = bar_heights(fig)
    assert len(heights) == 5
    for i, h in enumerate(heights):
        np.testing.assert_allclose(h, probs[i], rtol=1e-6)
    bar_axes = [ax for ax in fig.axes if ax.patches]
    for i, ax in enumerate(bar_axes):
        colors = [tuple(p.get_facecolor()) for p in ax.patches]
        pred = int(probs[i].argmax())
        assert sum(c == colors[pred] for c in colors) == 1  # only the predicted bar stands out
        title = ax.get_title()
        assert f"predicted {pred}" in title and f"true {y[i]}" in title


def test_outputs_one_column_one_hot_labels(model, mnist, tmp_path: Path) -> None:
    x, y = mnist["x_test"][:3], mnist["y_test"][:3]
    path = viz.outputs_figure(model, _to_input(x), np.eye(10)[y], tmp_path / "o.png",
                              columns=1)
    assert png_size(path) == (px(5.6), px(2.0 * 3))
    with pytest.raises(ShapeError):
        viz.outputs_figure(model, x, y[:2], tmp_path / "bad.png")
    with pytest.raises(ShapeError):
        viz.outputs_figure(model, np.zeros((3, 28, 27)), None, tmp_path / "bad.png")


# --------------------------------------------------------------------------- filters
def test_filters_figure_draws_the_kernel(model, tmp_path: Path) -> None:
    path = viz.filters_figure(model, tmp_path / "filters.png")
    assert png_size(path) == (px(1.1 * 8 + 0.9), px(1.25 * 1 + 0.7))
    kernel = model.get_layer("conv2d").kernel
    data = viz.filters_data(model)
    np.testing.assert_array_equal(data["kernel"], kernel)
    assert data["kernel"].shape == (3, 3, 1, 8)

    fig, _ = F._build_filters(model, "conv2d", 32, 3)
    drawn = [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images
             and ax.get_title().startswith("filter")]
    assert len(drawn) == 8
    for f, arr in enumerate(drawn):
        np.testing.assert_array_equal(arr, kernel[:, :, 0, f])
    with pytest.raises(InvalidArgumentError, match="conv2d"):
        viz.filters_figure(model, tmp_path / "f.png", layer="max_pooling2d")


def test_filters_of_a_deeper_layer_are_capped(tmp_path: Path) -> None:
    seed = cnnlab.seed_model(seed=0)  # conv2d_1: 3x3 kernels, 16 inputs, 128 filters
    path = viz.filters_figure(seed, tmp_path / "f1.png", layer="conv2d_1", max_filters=4,
                              max_channels=2)
    assert png_size(path) == (px(1.1 * 4 + 0.9), px(1.25 * 2 + 0.7))


# --------------------------------------------------------------------------- curves
def test_curves_from_history_dict_json_csv(trained, tmp_path: Path) -> None:
    _, history = trained
    hist = {"loss": [0.9, 0.4, 0.2], "accuracy": [0.7, 0.88, 0.93],
            "val_loss": [0.5, 0.3, 0.25], "val_accuracy": [0.85, 0.9, 0.92], "time": [1, 2, 3]}
    (tmp_path / "h.json").write_text(json.dumps(hist))
    rows = ["epoch,loss,accuracy,val_loss,val_accuracy"] + [
        f"{i + 1},{hist['loss'][i]},{hist['accuracy'][i]},{hist['val_loss'][i]},"
        f"{hist['val_accuracy'][i]}" for i in range(3)]
    (tmp_path / "h.csv").write_text("\n".join(rows) + "\n")
    expected = {k: v for k, v in hist.items() if k != "time"}
    for source in (hist, tmp_path / "h.json", str(tmp_path / "h.csv")):
        assert viz.load_history(source) == expected
    path = viz.curves_figure(tmp_path / "h.csv", tmp_path / "curves.png")
    assert png_size(path) == (px(11.0), px(4.2))

    fig, _ = F._build_curves(hist)
    loss_ax, acc_ax = fig.axes
    assert [list(line.get_ydata()) for line in loss_ax.lines] == [hist["loss"], hist["val_loss"]]
    assert [list(line.get_xdata()) for line in acc_ax.lines] == [[1, 2, 3]] * 2

    # a real History object from fit()
    assert viz.load_history(history) == {k: v for k, v in history.history.items()
                                         if k != "time"}
    assert png_size(viz.curves_figure(history, tmp_path / "c2.png")) == (px(11.0), px(4.2))


def test_curves_bad_history(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError):
        viz.load_history(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DataFormatError):
        viz.load_history(tmp_path / "bad.json")
    with pytest.raises(InvalidArgumentError):
        viz.load_history({"time": [1.0]})
    with pytest.raises(InvalidArgumentError):
        viz.load_history({"loss": [1.0, 0.5], "val_loss": [1.0]})
    with pytest.raises(InvalidArgumentError):
        viz.load_history({"loss": ["a"]})


# --------------------------------------------------------------------------- confusion
def test_confusion_matrix_matches_evaluate(model, mnist, tmp_path: Path) -> None:
    x, y = mnist["x_test"], mnist["y_test"]
    m = viz.confusion_matrix(model, x, y)
    assert m.shape == (10, 10) and m.dtype.kind == "i"
    assert m.sum() == len(x)
    _, acc = model.evaluate(_to_input(x), y)
    assert np.trace(m) == round(acc * len(x))
    np.testing.assert_array_equal(m.sum(axis=1), np.bincount(y, minlength=10))
    pred = model.predict(_to_input(x)).argmax(axis=1)
    np.testing.assert_array_equal(m.sum(axis=0), np.bincount(pred, minlength=10))

    path = viz.confusion_figure(m, tmp_path / "cm.png")
    assert png_size(path) == (px(7.0), px(6.2))
    fig = F._build_confusion(m, None)
    texts = {t.get_text() for t in fig.axes[0].texts}
    assert {str(v) for v in np.diag(m)} <= texts

    with pytest.raises(ShapeError):
        viz.confusion_figure(np.zeros((3, 4), int), tmp_path / "x.png")
    with pytest.raises(InvalidArgumentError):
        viz.confusion_figure(-np.ones((3, 3), int), tmp_path / "x.png")
    with pytest.raises(ShapeError):
        viz.confusion_matrix(model, x, y[:-1])


# --------------------------------------------------------------------------- mistakes
def test_mistakes_are_the_most_confident_errors(model, mnist, tmp_path: Path) -> None:
    x, y = mnist["x_test"], mnist["y_test"]
    probs = model.predict(_to_input(x))
    pred = probs.argmax(axis=1)
    wrong = np.flatnonzero(pred != y)
    data = viz.mistakes_data(model, x, y, n=8)
    assert int(data["mistakes"]) == len(wrong)
    assert len(data["indices"]) == min(8, len(wrong))
    assert set(data["indices"]) <= set(wrong)
    np.testing.assert_array_equal(data["predicted"], pred[data["indices"]])
    np.testing.assert_array_equal(data["labels"], y[data["indices"]])
    conf = probs[data["indices"], data["predicted"]]
    np.testing.assert_allclose(data["probability"], conf)
    assert np.all(np.diff(conf) <= 0)
    if len(wrong) > 8:
        rest = np.setdiff1d(wrong, data["indices"])
        assert probs[rest, pred[rest]].max() <= conf.min()

    path = viz.mistakes_figure(model, x, y, tmp_path / "mistakes.png", n=5)
    assert png_size(path) == (px(1.5 * 5), px(1.85 + 0.5))


# --------------------------------------------------------------------------- padding/pooling
def test_padding_figure_sizes_come_from_resolve_padding(tmp_path: Path) -> None:
    data = viz.padding_data()
    expected = {"valid": (3, 1, 5), "same": (5, 3, 7), "full": (7, 5, 9)}
    x = np.arange(1, 26, dtype=np.float64).reshape(5, 5)
    for mode, (out, _, padded) in expected.items():
        d = data[mode]
        pads = resolve_padding(mode, (3, 3), (1, 1), (5, 5))
        assert d["pads"] == pads
        assert d["output"].shape == (out, out) == output_hw((5, 5), (3, 3), (1, 1), pads)
        assert d["padded"].shape == (padded, padded)
        assert d["is_padding"].sum() == padded * padded - 25
        assert np.all(d["padded"][d["is_padding"]] == 0)
        np.testing.assert_array_equal(d["padded"][~d["is_padding"]].reshape(5, 5), x)
        win = np.lib.stride_tricks.sliding_window_view(d["padded"], (3, 3))
        np.testing.assert_allclose(d["output"], win.sum(axis=(2, 3)))
    path = viz.padding_figure(tmp_path / "padding.png")
    assert png_size(path) == (px(13.0), px(8.6))


def test_pooling_figure_values(tmp_path: Path) -> None:
    data = viz.pooling_data()
    np.testing.assert_array_equal(data["max"], [[6, 5], [8, 4]])
    np.testing.assert_allclose(data["average"], [[3.5, 2.0], [3.5, 1.75]])
    fig, _ = F._build_pooling(None, 2)
    assert sorted(t.get_text() for t in fig.axes[1].texts) == ["4", "5", "6", "8"]
    assert sorted(t.get_text() for t in fig.axes[2].texts) == ["1.75", "2", "3.5", "3.5"]
    path = viz.pooling_figure(tmp_path / "pooling.png")
    assert png_size(path) == (px(11.0), px(4.4))
    with pytest.raises(ShapeError):
        viz.pooling_data(np.zeros((2, 2, 2)))


@pytest.mark.parametrize("bad", [0, -2, 2.0, True, "2", np.int64(0)])
def test_counts_must_be_positive_ints_numpy_ones_included(bad) -> None:
    np.testing.assert_array_equal(viz.pooling_data(pool=np.int64(2))["max"], [[6, 5], [8, 4]])
    assert viz.padding_data(size=np.int32(5), kernel=np.int64(3))["same"]["output"].shape == (5, 5)
    with pytest.raises(InvalidArgumentError, match=r"^pool must be a positive int, got "):
        viz.pooling_data(pool=bad)
    with pytest.raises(InvalidArgumentError, match="kernel must be a positive int"):
        viz.padding_data(kernel=bad)


def test_uint8_images_get_the_training_inputs_scaling(model, mnist) -> None:
    x = mnist["x_test"][:8]
    np.testing.assert_array_equal(F.as_model_batch(model, x), _to_input(x))
    np.testing.assert_array_equal(F.as_model_batch(model, x[0]), _to_input(x[:1]))


def test_figures_are_thread_safe_and_deterministic(tmp_path: Path) -> None:
    paths = [tmp_path / f"p{i}.png" for i in range(4)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda p: viz.pooling_figure(p), paths))
    blobs = {p.read_bytes() for p in paths}
    assert len(blobs) == 1


def test_no_pyplot_no_backend_change(tmp_path: Path) -> None:
    # (matplotlib.get_backend() itself imports pyplot: read the raw rcParams entry instead)
    code = (
        "import matplotlib, sys; raw = lambda: dict.__getitem__(matplotlib.rcParams, 'backend'); "
        "before = raw(); import cnnlab.viz as v; "
        f"v.pooling_figure({str(tmp_path / 'p.png')!r}); "
        "print('matplotlib.pyplot' in sys.modules, raw() == before)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["False", "True"]


# --------------------------------------------------------------------------- make_all, CLI
def test_make_all_writes_standard_names(trained, mnist, tmp_path: Path) -> None:
    model, history = trained
    out = tmp_path / "all"
    written = viz.make_all(model, out, mnist["x_test"][:100], mnist["y_test"][:100],
                           indices=[0, 1, 2])
    # without a history there is no curves figure; with one, it is written too
    assert list(written) == [name for name in viz.FIGURES if name != "curves"]
    assert not (out / "curves.png").exists()
    written.update(viz.make_all(model, out, mnist["x_test"][:100], mnist["y_test"][:100],
                                history, which=["curves"]))
    assert set(written) == set(viz.FIGURES)
    for name, path in written.items():
        assert path == out / viz.FIGURE_NAMES[name]
        png_size(path)
    assert png_size(written["outputs"]) == (px(5.6 * 2), px(2.0 * 2))
    assert png_size(written["mistakes"]) == (px(1.5 * 8), px(1.85 * 2 + 0.5))
    with pytest.raises(InvalidArgumentError):
        viz.make_all(model, tmp_path, mnist["x_test"][:5], mnist["y_test"][:5], which=["curves"])
    with pytest.raises(InvalidArgumentError):
        viz.make_all(model, tmp_path, mnist["x_test"][:5], mnist["y_test"][:5], indices=[5])
    with pytest.raises(InvalidArgumentError, match="unknown figure"):
        viz.make_all(model, tmp_path, mnist["x_test"][:5], mnist["y_test"][:5], which=["x"])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cnnlab")
    viz_cli.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_cli_visualize(trained, tmp_path: Path, capsys) -> None:
    model, history = trained
    run_dir = tmp_path / "run"
    model.save(run_dir / "model.safetensors")
    (run_dir / "history.json").write_text(json.dumps(history.history))
    out = tmp_path / "figs"
    args = _parser().parse_args(
        ["visualize", str(run_dir / "model.safetensors"), "--out", str(out), "--index", "4", "7",
         "--which", "outputs", "feature_maps", "curves", "--layers", "conv2d"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.split()
    names = ["feature_maps.png", "outputs.png", "curves.png"]
    assert printed == [str(out / n) for n in names]
    assert png_size(out / "outputs.png") == (px(5.6 * 2), px(2.0))
    assert png_size(out / "feature_maps.png") == (px(2.4 + 3.8), px(4.4))

    args = _parser().parse_args(["visualize", str(run_dir / "model.safetensors"), "--out",
                                 str(out), "--layers", "dense", "--which", "feature_maps"])
    with pytest.raises(InvalidArgumentError, match="max_pooling2d"):
        args.func(args)
    args = _parser().parse_args(["visualize", "--which", "curves", "--out", str(out)])
    with pytest.raises(InvalidArgumentError, match="--history"):
        args.func(args)
    with pytest.raises(SystemExit):
        _parser().parse_args(["visualize", "--which", "bogus"])
    with pytest.raises(SystemExit):
        _parser().parse_args(["visualize", "--images", "0"])


def test_cli_without_model_draws_diagrams(tmp_path: Path, capsys) -> None:
    args = _parser().parse_args(["visualize", "--which", "pooling", "--out", str(tmp_path)])
    assert args.func(args) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "pooling.png")]


def test_sizes_are_documented_formulas() -> None:
    rows, cols, w, h = F._mistakes_size(16)
    assert (rows, cols) == (2, 8) and (w, h) == (1.5 * 8, 1.85 * 2 + 0.5)
    assert F._grid(16) == (4, 4) and F._grid(8) == (3, 3) and F._grid(128) == (11, 12)


# --------------------------------------------------------------------------- colour, names
COLOURS = ["red", "green", "blue"]


def colour_pictures(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Noisy 16x20 RGB pictures, each brightest in one channel: 0 red, 1 green, 2 blue."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 90, (n, 16, 20, 3))
    x[np.arange(n), :, :, y] += rng.integers(120, 166, (n, 1, 1))
    return x.astype(np.uint8), y


@pytest.fixture(scope="module")
def colour_model() -> cnnlab.Sequential:
    m = cnnlab.Sequential(
        [cnnlab.Conv2D(4, 3, activation="relu"), cnnlab.MaxPooling2D(2), cnnlab.Flatten(),
         cnnlab.Dense(3), cnnlab.Activation("softmax")],
        input_shape=(16, 20, 3), seed=0,
    )
    m.compile("adam")
    m.class_names = list(COLOURS)
    m.preprocessing = {"mode": "resize", "size": [16, 20], "color": "rgb"}
    x, y = colour_pictures(300, seed=1)
    m.fit(x, y, epochs=10, batch_size=32, verbose=0)
    return m


@pytest.fixture(scope="module")
def colour_data() -> tuple[np.ndarray, np.ndarray]:
    x, y = colour_pictures(60, seed=2)
    x[:3] = 255 - x[:3]  # a few odd pictures, for some mistakes
    return x, y


def test_rgb_input_is_drawn_in_colour(colour_model, colour_data, tmp_path: Path) -> None:
    x, _ = colour_data
    path = viz.feature_maps_figure(colour_model, x[0], path=tmp_path / "fm.png")
    assert png_size(path) == (px(2.4 + 3.8 * 2), px(4.4))
    fig, data = F._build_feature_maps(colour_model, x[0], ("conv2d", "max_pooling2d"))
    drawn = np.asarray(fig.subfigs[0].axes[0].images[0].get_array())
    assert drawn.shape == (16, 20, 3)  # one colour picture, not three channel maps
    np.testing.assert_allclose(drawn, x[0] / 255.0, rtol=1e-6)
    assert fig.subfigs[0].axes[0].get_title() == "input 16×20 RGB"
    expected = dict(colour_model.feature_maps(x[:1]))
    for name, maps in data.items():
        np.testing.assert_array_equal(maps, expected[name][0])
    # outputs and mistakes draw their pictures in colour too
    fig, _ = F._build_outputs(colour_model, x[:2], None, columns=2)
    pictures = [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]
    np.testing.assert_allclose(pictures[1], x[1] / 255.0, rtol=1e-6)


def test_rgb_first_layer_filters_are_colour_images(colour_model, tmp_path: Path) -> None:
    kernel = colour_model.get_layer("conv2d").kernel  # (3, 3, 3, 4)
    data = viz.filters_data(colour_model)
    np.testing.assert_array_equal(data["kernel"], kernel)
    rgb = data["rgb"]
    assert rgb.shape == (4, 3, 3, 3)
    for f in range(4):
        w = kernel[:, :, :, f].astype(np.float64)
        np.testing.assert_allclose(rgb[f], (w - w.min()) / (w.max() - w.min()), rtol=1e-12)
        assert rgb[f].min() == 0.0 and rgb[f].max() == 1.0
    np.testing.assert_array_equal(viz.filter_images(kernel), rgb)

    fig, _ = F._build_filters(colour_model, "conv2d", 32, 3)
    drawn = [np.asarray(ax.images[0].get_array()) for ax in fig.axes if ax.images]
    assert len(drawn) == 4  # one colour image per filter, no per-channel grid
    for f, arr in enumerate(drawn):
        np.testing.assert_array_equal(arr, rgb[f])
    path = viz.filters_figure(colour_model, tmp_path / "filters.png")
    assert png_size(path) == (px(1.1 * 4 + 0.3), px(1.25 + 0.7))
    # the per-channel drawing stays available
    path = viz.filters_figure(colour_model, tmp_path / "channels.png", rgb=False)
    assert png_size(path) == (px(1.1 * 4 + 0.9), px(1.25 * 3 + 0.7))


def test_filter_images_edge_cases(model) -> None:
    flat = np.zeros((2, 2, 3, 2))
    flat[..., 1] = np.arange(12).reshape(2, 2, 3)
    images = viz.filter_images(flat)
    np.testing.assert_array_equal(images[0], 0.5)  # a constant filter is grey
    np.testing.assert_allclose(images[1], np.arange(12).reshape(2, 2, 3) / 11)
    with pytest.raises(ShapeError, match=r"\(kh, kw, 3, C_out\)"):
        viz.filter_images(np.zeros((3, 3, 1, 8)))
    assert viz.filters_data(model)["rgb"] is None  # grayscale model: per-channel images
    with pytest.raises(InvalidArgumentError, match="colour"):
        viz.filters_figure(model, "never.png", rgb=True)
    seed = cnnlab.seed_model(seed=0, input_shape=(12, 12, 3))
    assert viz.filters_data(seed, "conv2d")["rgb"].shape == (16, 2, 2, 3)
    assert viz.filters_data(seed, "conv2d_1")["rgb"] is None  # deeper layers: not RGB


def test_short_names_and_class_names_for(model, colour_model) -> None:
    assert viz.short_name("cat") == "cat"
    assert viz.short_name("a" * 16) == "a" * 16
    assert viz.short_name("golden retriever, long-haired") == "golden retrieve…"
    assert len(viz.short_name("x" * 100)) == viz.NAME_CHARS
    assert viz.short_name("long name", 5) == "long…"
    assert viz.class_names_for(colour_model, 3) == COLOURS
    assert viz.class_names_for(model, 10) == [str(i) for i in range(10)]
    assert viz.class_names_for(model, 2, ["a", "b"]) == ["a", "b"]
    with pytest.raises(InvalidArgumentError, match="2 class names for 3 classes"):
        viz.class_names_for(colour_model, 3, ["a", "b"])


def test_outputs_name_the_classes(colour_model, colour_data) -> None:
    x, y = colour_data
    fig, data = F._build_outputs(colour_model, x[:4], y[:4], columns=2)
    bar_axes = [ax for ax in fig.axes if ax.patches]
    probs = colour_model.predict(x[:4])
    for i, ax in enumerate(bar_axes):
        assert [t.get_text() for t in ax.get_xticklabels()] == COLOURS
        np.testing.assert_allclose([p.get_height() for p in ax.patches], probs[i], rtol=1e-6)
        title = ax.get_title()
        assert f"predicted {COLOURS[probs[i].argmax()]} (" in title
        assert title.endswith(f"true {COLOURS[y[i]]}")
        assert ax.get_xticklabels()[y[i]].get_fontweight() == "bold"


def test_outputs_shorten_long_names(colour_model, colour_data) -> None:
    x, y = colour_data
    names = ["a very long first class name", "second", "third class, also long"]
    fig, _ = F._build_outputs(colour_model, x[:1], y[:1], columns=1, class_names=names)
    ax = next(ax for ax in fig.axes if ax.patches)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["a very lo…", "second", "third cla…"]
    assert all(t.get_rotation() == 45 for t in ax.get_xticklabels())
    assert "\n" in ax.get_title()  # a long title goes on two lines
    # beyond 20 classes the names stand upright
    assert F._bar_tick_labels([f"class {i}" for i in range(21)])[1] == 90.0
    assert F._bar_tick_labels([str(i) for i in range(10)]) == ([str(i) for i in range(10)], 0.0)


def test_confusion_matrix_axes_carry_the_class_names(colour_model, colour_data,
                                                     tmp_path: Path) -> None:
    x, y = colour_data
    m = viz.confusion_matrix(colour_model, x, y)
    pred = colour_model.predict(x).argmax(axis=1)
    np.testing.assert_array_equal(m, np.bincount(y * 3 + pred, minlength=9).reshape(3, 3))
    assert viz.confusion_labels(COLOURS, 3) == COLOURS
    assert viz.confusion_labels(None, 3) == ["0", "1", "2"]
    assert viz.confusion_labels(["x" * 30, "b", "c"], 3) == ["x" * 15 + "…", "b", "c"]
    with pytest.raises(InvalidArgumentError, match="2 class names for a 3x3 matrix"):
        viz.confusion_labels(["a", "b"], 3)
    fig = F._build_confusion(m, COLOURS)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == COLOURS
    assert [t.get_text() for t in ax.get_yticklabels()] == COLOURS
    path = viz.confusion_figure(m, tmp_path / "cm.png", class_names=COLOURS)
    assert png_size(path) == (px(7.0), px(6.2))


def test_mistakes_titles_use_the_names(colour_model, colour_data, tmp_path: Path) -> None:
    x, y = colour_data
    data = viz.mistakes_data(colour_model, x, y, n=4)
    assert len(data["indices"]) > 0  # the inverted pictures
    fig = F._draw_mistakes(data, 4, COLOURS)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    for i, title in enumerate(titles):
        assert title.startswith(f"pred {COLOURS[data['predicted'][i]]} (")
        assert f"true {COLOURS[data['labels'][i]]} · #{data['indices'][i]}" in title
    path = viz.mistakes_figure(colour_model, x, y, tmp_path / "m.png", n=4)
    assert path.stat().st_size > 0


def test_make_all_for_a_colour_model(colour_model, colour_data, tmp_path: Path) -> None:
    x, y = colour_data
    written = viz.make_all(colour_model, tmp_path / "all", x, y,
                           {"loss": [1.0, 0.5], "accuracy": [0.5, 0.9]})
    assert set(written) == set(viz.FIGURES)
    for path in written.values():
        png_size(path)
        assert path.stat().st_size > 0
    assert png_size(written["filters"]) == (px(1.1 * 4 + 0.3), px(1.25 + 0.7))


def _write_image_folder(root: Path, seed: int, per_class: int,
                        size: tuple[int, int] = (24, 30)) -> None:
    """PATH/train/<class>/*.png and PATH/test/<class>/*.png, pictures of another size."""
    rng = np.random.default_rng(seed)
    for part in ("train", "test"):
        for k, name in enumerate(COLOURS):
            folder = root / part / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 90, (*size, 3))
                arr[:, :, k] += 150
                Image.fromarray(arr.astype(np.uint8)).save(folder / f"{i}.png")


def test_cli_visualize_an_image_folder(colour_model, tmp_path: Path, capsys,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "colours"
    _write_image_folder(data, seed=3, per_class=4)
    model_path = tmp_path / "run" / "model.safetensors"
    colour_model.save(model_path)
    out = tmp_path / "figs"
    args = _parser().parse_args(["visualize", str(model_path), "--data", str(data),
                                 "--out", str(out), "--images", "4"])
    assert args.func(args) == 0
    printed = capsys.readouterr().out.split()
    names = [viz.FIGURE_NAMES[n] for n in viz.FIGURES if n != "curves"]
    assert printed == [str(out / n) for n in names]
    for name in names:
        png_size(out / name)
        assert (out / name).stat().st_size > 0

    # The folder's classes (sorted: blue, green, red) are matched to the model's by name.
    loaded = cnnlab.load_model(model_path)
    x, y, class_names = viz_cli._test_data(str(data), loaded)
    assert x.shape == (12, 16, 20, 3) and x.dtype == np.uint8
    assert class_names == COLOURS
    brightest = x.reshape(12, -1, 3).mean(axis=1).argmax(axis=1)
    np.testing.assert_array_equal(y, brightest)  # label k: the picture is brightest in k


def test_cli_visualize_needs_data_for_a_non_mnist_model(colour_model, tmp_path: Path) -> None:
    model_path = tmp_path / "model.safetensors"
    colour_model.save(model_path)
    args = _parser().parse_args(["visualize", str(model_path), "--out", str(tmp_path),
                                 "--which", "outputs"])
    with pytest.raises(InvalidArgumentError, match="16x20x3.*--data"):
        args.func(args)


def test_cli_data_with_unknown_classes(colour_model, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    data = tmp_path / "other"
    for name in ("cat", "dog", "red"):
        (data / name).mkdir(parents=True)
        Image.new("RGB", (20, 16), (200, 10, 10)).save(data / name / "a.png")
    with pytest.raises(InvalidArgumentError, match="classes the model does not know: cat, dog"):
        viz_cli._test_data(str(data), colour_model)


def test_cli_numbered_classes_keep_the_model_names(model) -> None:
    fashion = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
    model.class_names = fashion
    try:
        y = np.array([3, 1, 4])
        got, names = viz_cli._match_classes(model, [str(i) for i in range(10)], y, "idx")
        np.testing.assert_array_equal(got, y)
        assert names == fashion
        assert viz.class_names_for(model, 10) == fashion
        fig = F._build_confusion(np.eye(10, dtype=int), names)
        assert [t.get_text() for t in fig.axes[0].get_xticklabels()][:3] == [
            "T-shirt/top", "Trouser", "Pullover"]
    finally:
        model.class_names = None
