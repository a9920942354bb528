"""`cnnlab train | evaluate | predict` on your own images: generated folders and .npz files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cnnlab
from cnnlab.cli import main
from cnnlab.datasets import load_dataset

COLORS = {"blue": (30, 60, 220), "green": (40, 200, 60), "red": (220, 40, 40)}


def _write_folder(root: Path, per_class: int, seed: int, sizes=((14, 18), (20, 15))) -> None:
    """Three colour classes, pictures of odd sizes with noise, PNG and JPEG."""
    rng = np.random.default_rng(seed)
    for name, rgb in COLORS.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            h, w = sizes[i % len(sizes)]
            pic = np.clip(np.array(rgb) + rng.normal(0, 25, (h, w, 3)), 0, 255).astype(np.uint8)
            ext = "png" if i % 2 else "jpg"
            Image.fromarray(pic).save(root / name / f"{i}.{ext}")


@pytest.fixture(scope="module")
def colour_data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colours")
    _write_folder(root / "train", 24, seed=0)
    _write_folder(root / "test", 8, seed=1)
    (root / "train" / "red" / "notes.txt").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def colour_run(colour_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run")
    rc = main(["train", "--data", str(colour_data), "--image-size", "12", "12",
               "--epochs", "3", "--batch-size", "16", "--validation-split", "0.25",
               "--augment", "flip", "--out", str(out), "--quiet", "--seed", "1"])
    assert rc == 0
    return out


def test_train_on_a_colour_folder_learns_and_records_the_data(colour_run, capsys):
    model = cnnlab.load_model(colour_run / "model.safetensors")
    assert model.input_shape == (12, 12, 3)
    assert model.class_names == ["blue", "green", "red"]  # sorted folder names
    assert model.preprocessing == {"mode": "resize", "size": [12, 12], "color": "rgb"}
    cfg = model.training_config
    assert cfg["validation_split"] == 0.25 and cfg["augment"]["flip"] is True
    assert cfg["test_accuracy"] == 1.0  # colours this different are learned at once
    history = json.loads((colour_run / "history.json").read_text())
    assert len(history["val_accuracy"]) == 3  # validation on the held-out 18 images


def test_evaluate_a_folder_matches_the_python_api(colour_run, colour_data, capsys):
    capsys.readouterr()
    assert main(["evaluate", str(colour_run / "model.safetensors"),
                 "--data", str(colour_data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    loss, acc = (float(line.split(": ")[1]) for line in lines[:2])
    model = cnnlab.load_model(colour_run / "model.safetensors")
    test = load_dataset(colour_data, image_size=(12, 12), color="rgb", progress=False).test
    assert (loss, acc) == model.evaluate(test.x, test.y)


def test_evaluate_maps_classes_by_name_and_names_a_mismatch(colour_run, tmp_path, capsys):
    model_path = str(colour_run / "model.safetensors")
    # a folder with only two of the classes, in another order of indices
    sub = tmp_path / "two"
    _write_folder(sub, 4, seed=5)
    import shutil

    shutil.rmtree(sub / "blue")
    assert main(["evaluate", model_path, "--data", str(sub)]) == 0
    acc = float(capsys.readouterr().out.splitlines()[1].split(": ")[1])
    assert acc == 1.0  # green is the model's class 1, red its class 2, not 0 and 1
    (sub / "purple").mkdir()
    Image.new("RGB", (12, 12), (128, 0, 128)).save(sub / "purple" / "0.png")
    assert main(["evaluate", model_path, "--data", str(sub)]) == 2
    err = capsys.readouterr().err
    assert "['green', 'purple', 'red']" in err and "['blue', 'green', 'red']" in err


def test_predict_prints_class_names(colour_run, tmp_path, capsys):
    pic = tmp_path / "big_green.png"
    Image.new("RGB", (40, 30), COLORS["green"]).save(pic)
    capsys.readouterr()
    assert main(["predict", str(colour_run / "model.safetensors"), str(pic)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{pic}: green ")


def test_unreadable_images_are_named_or_skipped(colour_data, tmp_path, capsys):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(colour_data / "train", data)
    (data / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    args = ["train", "--data", str(data), "--image-size", "12", "12", "--epochs", "1",
            "--out", str(tmp_path / "run"), "--quiet", "--no-figures"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "broken.png" in err and err.startswith("cnnlab: error:")
    assert not (tmp_path / "run").exists()  # nothing half-written
    assert main([*args, "--skip-bad", "--overwrite"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 unreadable images: red/broken.png" in err


def test_train_on_an_npz_file(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 120)
    x = np.where(y[:, None, None] == 1, 200, 30).astype(np.uint8) + rng.integers(
        0, 40, (120, 12, 12), dtype=np.uint8)
    path = tmp_path / "d.npz"
    np.savez(path, x=x[:90], y=y[:90], x_test=x[90:], y_test=y[90:],
             class_names=np.array(["dark", "light"]))
    out = tmp_path / "run"
    assert main(["train", "--data", str(path), "--epochs", "4", "--batch-size", "10",
                 "--out", str(out), "--quiet", "--no-figures"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Test loss: ") and lines[1] == "Test accuracy: 1.0"
    model = cnnlab.load_model(out / "model.safetensors")
    assert model.class_names == ["dark", "light"] and model.input_shape == (12, 12, 1)


def test_seed_model_follows_the_data_and_names_a_layer_that_cannot_fit():
    model = cnnlab.seed_model(seed=0, input_shape=(32, 24, 3), num_classes=7)
    assert model.output_shape == (7,)
    assert model.layers[0].kernel.shape == (2, 2, 3, 16)
    with pytest.raises(cnnlab.ShapeError, match="layer 3 'conv2d_2'"):
        cnnlab.seed_model(seed=0, input_shape=(8, 8, 1))


def test_vgg_small_learns_the_colour_folder(colour_data, tmp_path, capsys):
    out = tmp_path / "vgg"
    assert main(["train", "--model", "vgg-small", "--data", str(colour_data), "--image-size",
                 "8", "8", "--epochs", "10", "--batch-size", "4", "--out", str(out),
                 "--quiet", "--no-figures", "--seed", "2"]) == 0
    acc = float(capsys.readouterr().out.splitlines()[1].split(": ")[1])
    model = cnnlab.load_model(out / "model.safetensors")
    assert model.name == "vgg_small" and model.input_shape == (8, 8, 3)
    bn = model.get_layer("batch_normalization")
    assert not np.array_equal(bn.weights[2], 0)  # the moving mean learned the data's
    assert acc >= 0.9


def test_limits_on_an_image_folder_draw_from_every_class(colour_data, tmp_path, capsys):
    out = tmp_path / "lim"
    assert main(["train", "--data", str(colour_data), "--image-size", "12", "12",
                 "--epochs", "1", "--train-limit", "30", "--test-limit", "9", "--out", str(out),
                 "--quiet", "--no-figures"]) == 0
    from cnnlab.cli import _limit

    train = load_dataset(colour_data, image_size=(12, 12), progress=False).train
    part = _limit(train, 30, seed=0)
    assert len(part) == 30 and set(np.unique(part.y)) == {0, 1, 2}  # not the first 30: all blue
    assert np.all(np.diff(part.x.indices) > 0)
