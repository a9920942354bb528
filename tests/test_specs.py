"""Architectures as data: JSON specs, their errors, the zoo, `--model` and `summary`."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest

import cnnlab
from cnnlab.cli import main
from cnnlab.errors import SpecError
from cnnlab.zoo import ZOO, get_model, lenet5


def _spec(*layers, input_shape=(8, 8, 1)):
    spec = {"class_name": "Sequential", "name": "tiny",
            "layers": [{"class_name": c, "config": cfg} for c, cfg in layers]}
    if input_shape is not None:
        spec["input_shape"] = list(input_shape)
    return spec


TINY = _spec(("Conv2D", {"filters": 4, "kernel_size": 3, "activation": "relu"}),
             ("Flatten", {}), ("Dense", {"units": 3}), ("Activation", {"activation": "softmax"}))


def test_to_json_and_back_builds_the_same_model_and_predicts_the_same():
    model = cnnlab.seed_model(seed=4)
    again = cnnlab.model_from_json(model.to_json())
    assert again.get_config() == model.get_config()
    again.set_weights(model.get_weights())
    x = np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32)
    np.testing.assert_array_equal(again.predict(x), model.predict(x))


def test_the_data_fills_in_the_input_shape_and_checks_the_classes():
    spec = dict(TINY)
    del spec["input_shape"]
    model = cnnlab.model_from_json(json.dumps(spec), input_shape=(10, 12, 3), num_classes=3)
    assert model.input_shape == (10, 12, 3) and model.layers[0].kernel.shape == (3, 3, 3, 4)
    with pytest.raises(SpecError, match="ends in 3 outputs .* but the data has 5 classes"):
        cnnlab.model_from_json(spec, input_shape=(10, 12, 3), num_classes=5)
    with pytest.raises(SpecError, match="no input_shape in the spec"):
        cnnlab.model_from_json(spec)
    with pytest.raises(SpecError, match=r"input_shape \(8, 8, 1\) does not match the data's"):
        cnnlab.model_from_json(TINY, input_shape=(9, 9, 1))


@pytest.mark.parametrize(("spec", "message"), [
    ("{not json", "not valid JSON"),
    ("[]", "expected a JSON object"),
    (_spec(("Conv2d", {"filters": 1, "kernel_size": 3})),
     "layer 0: unknown layer type 'Conv2d' \\(did you mean 'Conv2D'\\?\\)"),
    (_spec(("Conv2D", {"filter": 1, "kernel_size": 3})),
     "layer 0 \\(Conv2D\\): unknown config key 'filter' \\(did you mean 'filters'\\?\\); "
     "valid keys: filters, kernel_size"),
    (_spec(("Conv2D", {"kernel_size": 3})), "layer 0 \\(Conv2D\\): .*filters"),
    (_spec(("Conv2D", {"filters": "8", "kernel_size": 3})),
     "layer 0 \\(Conv2D\\): Conv2D: filters must be a positive int, got '8'"),
    (_spec(("Dense", {"units": 3})),
     "layer 0 'dense' \\(Dense\\) cannot take input of shape \\(None, 8, 8, 1\\)"),
    (_spec(("Flatten", {}), ("Dense", {"units": 2}), ("Conv2D", {"filters": 1, "kernel_size": 1})),
     "layer 2 'conv2d' \\(Conv2D\\) cannot take input of shape \\(None, 2\\)"),
    ({"class_name": "Functional", "layers": []}, "not a Sequential model"),
    ({"input_shape": [8, 8, 1], "layers": [], "extra": 1}, "unknown keys \\['extra'\\]"),
    ({"input_shape": [8, 8, 1], "layers": []}, "'layers' must be a non-empty list"),
    (_spec(("Flatten", {"name": "x"}), input_shape=("8", 8, 1)), "input_shape must be a list"),
])
def test_bad_specs_get_one_clear_error(spec, message):
    with pytest.raises(SpecError, match=message):
        cnnlab.model_from_json(spec if isinstance(spec, str) else json.dumps(spec))


def test_a_model_too_big_for_memory_is_refused_before_allocating():
    spec = _spec(("Flatten", {}), ("Dense", {"units": 50_000}), ("Dense", {"units": 50_000}),
                 input_shape=(128, 128, 3))
    tracemalloc.start()
    try:
        with pytest.raises(SpecError, match="layer 1 'dense' \\(Dense\\) would need "
                                            "9,375.2 MiB of weights"):
            cnnlab.model_from_json(spec)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 2**20  # nothing near the 3 GB of the first layer was allocated


def test_lenet5_is_the_papers_shape():
    model = lenet5(seed=0)
    assert [layer.output_shape for layer in model.layers[:5]] == [
        (28, 28, 6), (14, 14, 6), (10, 10, 16), (5, 5, 16), (400,)]
    assert model.count_params() == 61_706
    assert sorted(ZOO) == ["lenet5", "seed", "vgg-small"]


def test_get_model_names_what_it_knows(tmp_path):
    with pytest.raises(SpecError, match="unknown model 'alexnet': expected one of"):
        get_model("alexnet", input_shape=(28, 28, 1), num_classes=10)
    with pytest.raises(SpecError, match="model 'seed' does not fit the data: layer 3"):
        get_model("seed", input_shape=(8, 8, 1), num_classes=10)
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps(TINY))
    assert get_model(path, input_shape=(8, 8, 1), num_classes=3).count_params() == 40 + 435


def test_cli_summary_and_train_with_a_spec(tmp_path, capsys):
    assert main(["summary", "lenet5", "--json"]) == 0
    spec = tmp_path / "lenet.json"
    spec.write_text(capsys.readouterr().out)
    assert main(["summary", str(spec)]) == 0
    assert "Total params: 61,706" in capsys.readouterr().out
    out = tmp_path / "run"
    assert main(["train", "--model", str(spec), "--epochs", "1", "--train-limit", "500",
                 "--test-limit", "100", "--out", str(out), "--quiet", "--no-figures"]) == 0
    model = cnnlab.load_model(out / "model.safetensors")
    assert model.name == "lenet5" and model.count_params() == 61_706
    assert main(["train", "--model", "nope", "--out", str(tmp_path / "x"), "--quiet"]) == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_cli_early_stopping_keeps_the_best_epoch(tmp_path, capsys):
    out = tmp_path / "es"
    assert main(["train", "--model", "lenet5", "--epochs", "6", "--train-limit", "300",
                 "--test-limit", "200", "--lr", "0.03", "--early-stopping", "1",
                 "--out", str(out), "--quiet", "--no-figures"]) == 0
    lines = capsys.readouterr().out.splitlines()
    history = json.loads((out / "history.json").read_text())
    test_loss = float(lines[0].split(": ")[1])
    # the reported test loss is the best epoch's val_loss (the test part validated each epoch)
    assert test_loss == pytest.approx(min(history["val_loss"]), rel=1e-6)
    assert main(["train", "--early-stopping", "2", "--no-validation", "--out",
                 str(tmp_path / "x"), "--quiet"]) == 2
    assert "needs validation data" in capsys.readouterr().err
