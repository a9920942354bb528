"""Keras files both ways, against real Keras 3 (PyTorch backend) as the oracle.

Keras builds and saves models (``.keras`` and legacy ``.h5``); cnnlab loads
them and must predict what Keras predicts. cnnlab writes ``.keras``; Keras
loads it with ``safe_mode=True`` and must predict what cnnlab predicts. Then
the hostile files: unsafe zip member names, a decompression bomb, truncation,
code (Lambda), custom classes, links out of the HDF5 file.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

os.environ["KERAS_BACKEND"] = "torch"  # before Keras is imported anywhere in this process

keras = pytest.importorskip("keras", reason="Keras 3 is the oracle of these tests")
h5py = pytest.importorskip("h5py", reason="Keras files need h5py (cnnlab[keras])")
if keras.backend.backend() != "torch":  # pragma: no cover
    pytest.skip(f"Keras already runs on {keras.backend.backend()!r}; these tests pin torch",
                allow_module_level=True)

from keras import layers as kl  # noqa: E402

import cnnlab  # noqa: E402
from cnnlab import keras_format  # noqa: E402
from cnnlab.cli import main  # noqa: E402
from cnnlab.errors import ModelFileError  # noqa: E402
from cnnlab.keras_format import keras_config, read_keras_file, save_keras  # noqa: E402
from cnnlab.layers import (  # noqa: E402
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
    ZeroPadding2D,
)
from cnnlab.model import Sequential  # noqa: E402

TOL = 1e-5
#: Keras 3.15's PyTorch backend converts tensors with np.array(x) (NumPy 2 deprecation).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


@pytest.fixture(autouse=True)
def _in_process(monkeypatch):
    """Most tests read Keras files in this process: the isolated child runs the same code
    (:func:`cnnlab.keras_format._read_in_process`) and costs about a second each. Tests
    that take the ``isolated`` fixture go through the capped child process."""
    monkeypatch.setattr(keras_format, "_CAN_ISOLATE", False)


@pytest.fixture
def isolated(monkeypatch):
    monkeypatch.setattr(keras_format, "_CAN_ISOLATE", os.name == "posix")
    if os.name != "posix":  # pragma: no cover
        pytest.skip("the isolated reader needs POSIX resource limits")
# AVG_SAME: the average pooling with "same" padding below pads symmetrically:
# Keras's PyTorch backend pads an asymmetric "same" window by replicating the
# border pixels and averages them in, while Keras's other backends (TensorFlow,
# JAX, NumPy) and cnnlab average over the real pixels only.


def _x(shape, seed=0, n=6):
    return np.random.default_rng(seed).random((n, *shape), dtype=np.float32)


def _keras_seed_model():
    """The slides' model (zoo.seed_model), layer for layer, built by Keras."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        kl.Conv2D(16, 2, padding="same", activation="relu"),
        kl.MaxPooling2D(2),
        kl.Conv2D(128, 3, activation="relu"),
        kl.Conv2D(256, 3, activation="relu"),
        kl.MaxPooling2D(2),
        kl.Dropout(0.25),
        kl.Flatten(),
        kl.Dense(128, activation="relu"),
        kl.Dropout(0.5),
        kl.Dense(10),
        kl.Activation("softmax"),
    ])


def _randomize(model, seed=1):
    """Non-trivial weights everywhere (biases, BN statistics), variances positive."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = [rng.normal(0, 0.3, w.shape).astype(np.float32) for w in ws]
        if isinstance(layer, kl.BatchNormalization):
            new[-1] = rng.uniform(0.5, 2.0, ws[-1].shape).astype(np.float32)
        layer.set_weights(new)
    return model


def _keras_every_layer():
    """Every Keras layer cnnlab maps, with strides, 'same' padding and every activation."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((13, 12, 3)),
        kl.Rescaling(1 / 255.0, offset=-0.5),  # folded into the next (valid) convolution
        kl.Conv2D(6, 3, activation="tanh", name="c1"),
        kl.BatchNormalization(momentum=0.9, epsilon=1e-2),
        kl.ZeroPadding2D(((1, 0), (0, 2))),
        kl.Conv2D(8, (3, 2), strides=2, padding="same", activation="gelu", use_bias=False),
        kl.BatchNormalization(center=False),
        kl.LeakyReLU(negative_slope=0.2),
        kl.MaxPooling2D(2, strides=1, padding="same"),
        kl.AveragePooling2D(3, strides=1, padding="same"),  # symmetric: see AVG_SAME
        kl.Conv2D(8, 1, strides=2, activation="elu"),
        kl.BatchNormalization(scale=False),
        kl.Activation("sigmoid"),
        kl.GlobalMaxPooling2D(keepdims=True),
        kl.Flatten(),
        kl.Dense(16, activation="leaky_relu"),
        kl.ReLU(),
        kl.Dropout(0.3),
        kl.Dense(12, activation="linear"),
        kl.ELU(),
        kl.Dense(5, use_bias=False),
        kl.Softmax(),
    ])
    return _randomize(model)


def _keras_functional_chain():
    keras.utils.set_random_seed(0)
    inp = keras.Input((10, 10, 2))
    x = kl.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inp)
    x = kl.BatchNormalization(name="bn")(x)  # called with mask=None in the config
    x = kl.GlobalAveragePooling2D(name="gap")(x)
    out = kl.Dense(3, activation="softmax", name="out")(x)
    return _randomize(keras.Model(inp, out))


def _keras_predict(model, x):
    return np.asarray(model.predict(x, verbose=0))


# --------------------------------------------------------------------------- Keras -> cnnlab
@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_the_slides_model_saved_by_keras_predicts_the_same_in_cnnlab(tmp_path, ext, isolated):
    model = _keras_seed_model()
    path = tmp_path / f"seed{ext}"
    model.save(path)
    x = _x((28, 28, 1))
    want = _keras_predict(model, x)
    ours = cnnlab.load_model(path)
    assert [layer.kind for layer in ours.layers] == \
        [layer.kind for layer in cnnlab.seed_model(seed=0).layers]
    assert ours.count_params() == model.count_params() == 1134426
    got = ours.predict(x)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_every_mappable_keras_layer_predicts_the_same(tmp_path, ext):
    model = _keras_every_layer()
    path = tmp_path / f"all{ext}"
    model.save(path)
    x = _x((13, 12, 3)) * 255  # the Rescaling expects pixels
    ours = cnnlab.load_model(path)
    assert "Rescaling" not in {layer.kind for layer in ours.layers}
    np.testing.assert_allclose(ours.predict(x), _keras_predict(model, x), atol=TOL, rtol=0)


def _keras2_config(obj):
    """A Keras 3 config in tf.keras 2's dialect: no module fields, dtype strings,
    ``batch_input_shape``."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "DTypePolicy":
            return obj["config"]["name"]
        return {"batch_input_shape" if k == "batch_shape" else k: _keras2_config(v)
                for k, v in obj.items()
                if k not in ("module", "registered_name", "build_config", "shared_object_id")}
    if isinstance(obj, list):
        return [_keras2_config(v) for v in obj]
    return obj


def _save_as_keras2_h5(model, path, input_layer=True):
    """The model in tf.keras 2's legacy HDF5 layout: byte-string attributes, and
    per layer ``model_weights/<layer>/<layer>/kernel:0`` listed in ``weight_names``."""
    config = _keras2_config(model.get_config())
    if not input_layer:  # older files: the shape rides on the first layer
        first = config["layers"].pop(0)
        config["layers"][0]["config"]["batch_input_shape"] = first["config"]["batch_input_shape"]
    with h5py.File(path, "w") as f:
        f.attrs["keras_version"] = b"2.13.1"
        f.attrs["backend"] = b"tensorflow"
        f.attrs["model_config"] = json.dumps({"class_name": "Sequential",
                                              "config": config}).encode()
        group = f.create_group("model_weights")
        group.attrs["layer_names"] = np.array([layer.name.encode() for layer in model.layers])
        for layer in model.layers:
            lg = group.create_group(layer.name)
            names = [f"{layer.name}/{v.path.split('/')[-1]}:0" for v in layer.weights]
            lg.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S")
            for name, value in zip(names, layer.get_weights(), strict=True):
                lg.create_dataset(name, data=value)
    return path


@pytest.mark.parametrize("input_layer", [True, False])
def test_a_tf_keras_2_h5_file_loads_as_keras_3_loads_it(tmp_path, input_layer):
    keras.utils.set_random_seed(0)
    model = _randomize(keras.Sequential([
        keras.Input((9, 9, 2)), kl.Conv2D(4, 3, padding="same", activation="relu"),
        kl.BatchNormalization(), kl.MaxPooling2D(2), kl.Flatten(),
        kl.Dense(3, activation="softmax")]))
    path = _save_as_keras2_h5(model, tmp_path / "tf2.h5", input_layer)
    x = _x((9, 9, 2))
    want = _keras_predict(model, x)
    if input_layer:  # the layout is right: Keras 3's legacy loader reads it (it cannot read
        # a batch_input_shape on a first Conv2D: it takes it for the input's shape)
        np.testing.assert_allclose(_keras_predict(keras.saving.load_model(path), x), want,
                                   atol=1e-6, rtol=0)
    np.testing.assert_allclose(cnnlab.load_model(path).predict(x), want, atol=TOL, rtol=0)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_a_functional_model_that_is_a_chain_loads(tmp_path, ext):
    model = _keras_functional_chain()
    model.save(tmp_path / f"f{ext}")
    ours = cnnlab.load_model(tmp_path / f"f{ext}")
    assert [layer.name for layer in ours.layers] == ["conv", "bn", "gap", "out"]
    x = _x((10, 10, 2))
    np.testing.assert_allclose(ours.predict(x), _keras_predict(model, x), atol=TOL, rtol=0)


@pytest.mark.parametrize("ext", [".keras", ".h5"])
def test_the_compiled_optimizer_comes_along_when_cnnlab_has_it(tmp_path, ext):
    def saved(optimizer, name):
        model = keras.Sequential([keras.Input((4,)), kl.Dense(2, activation="softmax")])
        model.compile(optimizer=optimizer, loss="categorical_crossentropy")
        model.save(tmp_path / f"{name}{ext}")
        return cnnlab.load_model(tmp_path / f"{name}{ext}")

    sgd = saved(keras.optimizers.SGD(0.05, momentum=0.9, nesterov=True), "sgd")
    cfg = sgd.optimizer.get_config()
    assert (cfg["name"], cfg["momentum"], cfg["nesterov"]) == ("SGD", 0.9, True)
    assert cfg["learning_rate"] == pytest.approx(0.05, rel=1e-7)  # Keras keeps it in float32
    assert sgd.training_config["optimizer"]["name"] == "SGD"
    rms = saved(keras.optimizers.RMSprop(2e-3, rho=0.8), "rms").optimizer.get_config()
    assert (rms["name"], rms["rho"]) == ("RMSprop", 0.8)
    # AMSGrad (which cnnlab's Adam lacks) is not silently turned into plain Adam
    ams = saved(keras.optimizers.Adam(0.01, amsgrad=True), "ams")
    assert "optimizer" not in ams.training_config
    assert ams.optimizer.get_config()["learning_rate"] == 0.001  # cnnlab's default


def test_a_functional_model_with_a_branch_is_refused(tmp_path):
    inp = keras.Input((6, 6, 2))
    a = kl.Conv2D(2, 3, padding="same", name="a")(inp)
    out = kl.Add(name="add")([a, inp])
    keras.Model(inp, out).save(tmp_path / "res.keras")
    with pytest.raises(ModelFileError, match="not a plain chain"):
        cnnlab.load_model(tmp_path / "res.keras")


# --------------------------------------------------------------------------- cnnlab -> Keras
def _cnnlab_every_layer(seed=3):
    model = Sequential([
        Conv2D(6, 3, padding="same", activation="relu", kernel_regularizer="l2"),
        BatchNormalization(momentum=0.9),
        Conv2D(8, 3, strides=2, padding="same", activation="gelu", use_bias=False),
        BatchNormalization(center=False),
        ZeroPadding2D(((0, 1), (2, 0))),
        MaxPooling2D(2, strides=1, padding="same"),
        AveragePooling2D(3, strides=1, padding="same"),  # symmetric: see AVG_SAME
        Activation("leaky_relu"),
        Conv2D(8, 1, strides=2, activation="elu"),
        GlobalMaxPooling2D(keepdims=True),
        Flatten(),
        Dense(16, activation="tanh"),
        Dropout(0.5),
        Dense(12, activation="sigmoid"),
        Dense(4, use_bias=False),
        Activation("softmax"),
    ], input_shape=(11, 12, 3), name="everything", seed=seed)
    rng = np.random.default_rng(seed)
    for layer in model.layers:  # BN statistics and biases away from their initial values
        for name, w in zip(layer.weight_names, layer.weights, strict=True):
            w[...] = rng.uniform(0.5, 2.0, w.shape) if name == "moving_variance" \
                else rng.normal(0, 0.3, w.shape)
    model.class_names = ["a", "b", "c", "d"]
    model.preprocessing = {"mode": "resize", "size": [11, 12], "color": "rgb"}
    return model


@pytest.mark.parametrize("which", ["seed", "every-layer", "global-average"])
def test_a_cnnlab_model_written_as_keras_loads_in_keras_and_predicts_the_same(tmp_path, which):
    if which == "seed":
        model = cnnlab.seed_model(seed=1)
    elif which == "every-layer":
        model = _cnnlab_every_layer()
    else:
        model = Sequential([Conv2D(4, 3, activation="relu"), GlobalAveragePooling2D(),
                            Dense(3, activation="softmax")], input_shape=(9, 9, 1), seed=2)
    path = model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.count_params() == model.count_params()
    x = _x(model.input_shape)
    want = model.predict(x)
    got = _keras_predict(loaded, x)
    np.testing.assert_allclose(got, want, atol=TOL, rtol=0)
    np.testing.assert_array_equal(got.argmax(1), want.argmax(1))


def test_round_trip_cnnlab_keras_cnnlab_is_exact(tmp_path):
    model = _cnnlab_every_layer()
    model.compile(optimizer=cnnlab.SGD(0.02, momentum=0.5))
    back = cnnlab.load_model(model.save(tmp_path / "m.keras", {"epochs": 3}))
    assert back.get_config() == model.get_config()
    assert back.optimizer.get_config() == model.optimizer.get_config()
    assert back.training_config["epochs"] == 3
    for a, b in zip(model.layers, back.layers, strict=True):
        for wa, wb in zip(a.weights, b.weights, strict=True):
            np.testing.assert_array_equal(wa, wb)
    assert back.class_names == model.class_names
    assert back.preprocessing == model.preprocessing
    x = _x(model.input_shape)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))


def test_a_cnnlab_file_named_h5_still_loads_as_cnnlab(tmp_path):
    model = cnnlab.small_cnn(seed=0)
    path = model.save(tmp_path / "m.h5")  # safetensors bytes, whatever the name
    x = _x(model.input_shape)
    np.testing.assert_array_equal(cnnlab.load_model(path).predict(x), model.predict(x))


def test_convolution_padding_keras_lacks_becomes_zero_padding(tmp_path):
    model = Sequential([Conv2D(3, 3, padding="full", activation="relu"),
                        Conv2D(2, 2, padding=((1, 0), (0, 2))), Flatten(), Dense(2)],
                       input_shape=(5, 6, 1), seed=4)
    kinds = [layer["class_name"] for layer in keras_config(model)["config"]["layers"]]
    assert kinds == ["InputLayer", "ZeroPadding2D", "Conv2D", "ZeroPadding2D", "Conv2D",
                     "Flatten", "Dense"]
    path = save_keras(model, tmp_path / "pad.keras")
    x = _x((5, 6, 1))
    np.testing.assert_allclose(_keras_predict(keras.saving.load_model(path), x),
                               model.predict(x), atol=TOL, rtol=0)
    np.testing.assert_array_equal(cnnlab.load_model(path).predict(x), model.predict(x))


def test_the_written_file_is_what_keras_writes(tmp_path):
    """Same members and the same weight paths as Keras's own file for the same model."""
    path = save_keras(cnnlab.seed_model(seed=0), tmp_path / "ours.keras")
    theirs = tmp_path / "theirs.keras"
    keras.saving.load_model(path).save(theirs)

    def listing(p):
        with zipfile.ZipFile(p) as zf:
            names = sorted(zf.namelist())
            found = []
            with h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as f:
                f["layers"].visititems(
                    lambda n, o: found.append((n, o.shape)) if isinstance(o, h5py.Dataset)
                    else None)
        return names, sorted(found)

    assert listing(path) == listing(theirs)


# --------------------------------------------------------------------------- hostile files
def _rezip(src: Path, dst: Path, replace=None, extra=(), drop=()) -> Path:
    """A copy of the .keras archive ``src`` with members replaced, added or dropped."""
    replace = replace or {}
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            if info.filename in drop:
                continue
            zout.writestr(info.filename, replace.get(info.filename, zin.read(info.filename)))
        for name, data in extra:
            zout.writestr(name, data)
    return dst


@pytest.fixture(scope="module")
def small_keras(tmp_path_factory):
    """A small valid .keras file (written by cnnlab) and its config."""
    model = Sequential([Conv2D(2, 3, activation="relu"), Flatten(), Dense(3)],
                       input_shape=(6, 6, 1), seed=0)
    path = save_keras(model, tmp_path_factory.mktemp("keras") / "small.keras")
    with zipfile.ZipFile(path) as zf:
        config = json.loads(zf.read("config.json"))
    return path, config


def _with_layer(small_keras, tmp_path, spec, index=2):
    path, config = small_keras
    config = json.loads(json.dumps(config))
    config["config"]["layers"].insert(index, spec)
    return _rezip(path, tmp_path / "bad.keras", {"config.json": json.dumps(config)})


@pytest.mark.parametrize("member", ["../evil.txt", "/etc/cron.d/evil", "assets/../../x",
                                    "C:/Windows/x", "a\\..\\b"])
def test_unsafe_member_names_are_refused(small_keras, tmp_path, member):
    bad = _rezip(small_keras[0], tmp_path / "bad.keras", extra=[(member, b"x")])
    with pytest.raises(ModelFileError, match="unsafe path") as e:
        cnnlab.load_model(bad)
    assert repr(member) in str(e.value) and str(bad) in str(e.value)


def test_a_zip_bomb_is_refused_before_it_is_inflated(small_keras, tmp_path):
    bad = tmp_path / "bomb.keras"
    with zipfile.ZipFile(small_keras[0]) as zin, \
            zipfile.ZipFile(bad, "w", compression=zipfile.ZIP_DEFLATED) as zout:
        zout.writestr("config.json", zin.read("config.json"))
        zout.writestr("model.weights.h5", bytes(32 << 20))  # 32 MiB of zeros: ~1000x
    with pytest.raises(ModelFileError, match="decompression bomb") as e:
        cnnlab.load_model(bad)
    assert "'model.weights.h5'" in str(e.value)


def test_a_duplicated_member_is_refused(small_keras, tmp_path):
    bad = tmp_path / "dup.keras"
    with zipfile.ZipFile(small_keras[0]) as zin, zipfile.ZipFile(bad, "w") as zout:
        for name in zin.namelist():
            zout.writestr(name, zin.read(name))
        with pytest.warns(UserWarning):
            zout.writestr("config.json", b"{}")
    with pytest.raises(ModelFileError, match="appears twice"):
        cnnlab.load_model(bad)


@pytest.mark.parametrize("cut", [0.5, 0.97])
def test_a_truncated_keras_file_is_a_model_file_error(small_keras, tmp_path, cut):
    data = small_keras[0].read_bytes()
    bad = tmp_path / "cut.keras"
    bad.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(ModelFileError, match="zip") as e:
        cnnlab.load_model(bad)
    assert str(bad) in str(e.value)


def test_a_truncated_weights_member_names_the_hdf5_problem(small_keras, tmp_path):
    with zipfile.ZipFile(small_keras[0]) as zf:
        h5 = zf.read("model.weights.h5")
    bad = _rezip(small_keras[0], tmp_path / "bad.keras", {"model.weights.h5": h5[:1000]})
    with pytest.raises(ModelFileError, match="model.weights.h5 is not a readable HDF5"):
        cnnlab.load_model(bad)


def test_malformed_config_json_is_named(small_keras, tmp_path):
    bad = _rezip(small_keras[0], tmp_path / "bad.keras", {"config.json": b"{\"class_name\": "})
    with pytest.raises(ModelFileError, match="config.json is not valid JSON"):
        cnnlab.load_model(bad)
    deep = _rezip(small_keras[0], tmp_path / "deep.keras", {"config.json": b"[" * 100_000})
    with pytest.raises(ModelFileError, match="config.json"):
        cnnlab.load_model(deep)


def test_a_missing_weights_member_is_named(small_keras, tmp_path):
    bad = _rezip(small_keras[0], tmp_path / "bad.keras", drop={"model.weights.h5"})
    with pytest.raises(ModelFileError, match="no model.weights.h5"):
        cnnlab.load_model(bad)


def test_a_lambda_layer_saved_by_keras_is_refused_and_never_run(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((4,)), kl.Lambda(lambda t: t * 2, name="double"),
                              kl.Dense(2)])
    model.save(tmp_path / "lambda.keras")
    model.save(tmp_path / "lambda.h5")
    import marshal

    def never(*a, **k):  # a Lambda's code is marshalled bytecode: nothing may load it
        raise AssertionError("model code was unmarshalled")

    monkeypatch.setattr(marshal, "loads", never)
    for ext in (".keras", ".h5"):
        with pytest.raises(ModelFileError, match="layer 'double' \\(Lambda\\) holds Python code"):
            cnnlab.load_model(tmp_path / f"lambda{ext}")


def test_an_unknown_layer_is_named(small_keras, tmp_path):
    spec = {"module": "keras.layers", "class_name": "LSTM",
            "config": {"name": "lstm", "units": 4}, "registered_name": None}
    with pytest.raises(ModelFileError,
                       match="layer 'lstm' \\(LSTM\\) has no cnnlab equivalent"):
        cnnlab.load_model(_with_layer(small_keras, tmp_path, spec))


def test_a_keras_lstm_model_is_named_too(tmp_path):
    keras.Sequential([keras.Input((5, 3)), kl.LSTM(4, name="lstm"), kl.Dense(2)]).save(
        tmp_path / "rnn.keras")
    with pytest.raises(ModelFileError, match="layer 'lstm' \\(LSTM\\) has no cnnlab"):
        cnnlab.load_model(tmp_path / "rnn.keras")


@pytest.mark.parametrize("module, registered", [("os", None), ("keras.layers", "evil>Dense"),
                                                ("builtins", None)])
def test_a_layer_from_outside_keras_layers_is_refused(small_keras, tmp_path, module, registered):
    spec = {"module": module, "class_name": "Dense", "config": {"name": "d", "units": 3},
            "registered_name": registered}
    with pytest.raises(ModelFileError, match="layer 'd' \\(Dense\\)"):
        cnnlab.load_model(_with_layer(small_keras, tmp_path, spec, index=3))


def test_channels_first_is_a_clear_error(tmp_path):
    keras.Sequential([keras.Input((2, 8, 8)), kl.Conv2D(3, 3, data_format="channels_first",
                                                        name="cf")]).save(tmp_path / "cf.keras")
    with pytest.raises(ModelFileError, match="layer 'cf' \\(Conv2D\\): data_format "
                                             "'channels_first'"):
        cnnlab.load_model(tmp_path / "cf.keras")


def test_an_unfoldable_rescaling_is_a_clear_error(tmp_path):
    keras.Sequential([keras.Input((6, 6, 1)), kl.Rescaling(2.0, offset=1.0, name="r"),
                      kl.Conv2D(2, 3, padding="same"), kl.Flatten()]).save(tmp_path / "r.keras")
    with pytest.raises(ModelFileError, match="layer 'r' \\(Rescaling\\).*cannot be folded"):
        cnnlab.load_model(tmp_path / "r.keras")


def _h5_with(small_keras, tmp_path, edit) -> Path:
    with zipfile.ZipFile(small_keras[0]) as zf:
        buf = io.BytesIO(zf.read("model.weights.h5"))
    with h5py.File(buf, "a") as f:
        edit(f)
    return _rezip(small_keras[0], tmp_path / "bad.keras", {"model.weights.h5": buf.getvalue()})


def test_hdf5_links_to_other_files_are_refused(small_keras, tmp_path):
    def link_out(f):
        del f["layers/dense/vars"]
        f["layers/dense/vars"] = h5py.ExternalLink("/etc/passwd", "/")

    with pytest.raises(ModelFileError, match="ExternalLink"):
        cnnlab.load_model(_h5_with(small_keras, tmp_path, link_out))


def test_hdf5_external_datasets_are_refused(small_keras, tmp_path):
    outside = tmp_path / "outside.bin"
    outside.write_bytes(np.ones(2 * 3, np.float32).tobytes())

    def external(f):
        del f["layers/dense/vars/0"]
        f["layers/dense/vars"].create_dataset("0", shape=(32, 3), dtype="f4",
                                              external=[(str(outside), 0, 32 * 3 * 4)])

    with pytest.raises(ModelFileError, match="external or virtual dataset"):
        cnnlab.load_model(_h5_with(small_keras, tmp_path, external))


def test_a_misshapen_weight_is_named(small_keras, tmp_path):
    def reshape(f):
        del f["layers/dense/vars/1"]
        f["layers/dense/vars"].create_dataset("1", data=np.zeros(4, np.float32))

    with pytest.raises(ModelFileError, match="dense/bias has shape \\(4,\\)"):
        cnnlab.load_model(_h5_with(small_keras, tmp_path, reshape))


def test_legacy_h5_problems_are_named(tmp_path):
    model = keras.Sequential([keras.Input((4,)), kl.Dense(2)])
    model.save_weights(tmp_path / "only.weights.h5")
    (tmp_path / "only.h5").write_bytes((tmp_path / "only.weights.h5").read_bytes())
    with pytest.raises(ModelFileError, match="no model_config .*weights-only"):
        cnnlab.load_model(tmp_path / "only.h5")
    model.save(tmp_path / "full.h5")
    data = (tmp_path / "full.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="cut.h5"):
        cnnlab.load_model(tmp_path / "cut.h5")
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(ModelFileError, match="not a readable HDF5 file"):
        cnnlab.load_model(tmp_path / "text.h5")


def _mutations(data: bytes, seed: int, count: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        out = bytearray(data)
        for pos in rng.integers(0, len(out), size=int(rng.integers(1, 8))):
            out[pos] = int(rng.integers(0, 256))
        yield bytes(out)


def _loads_or_model_file_error(path: Path) -> str:
    try:
        model = cnnlab.load_model(path)
    except ModelFileError:
        return "refused"
    model.predict(np.zeros((1, *model.input_shape), np.float32))
    return "loaded"


def test_corrupted_bytes_load_or_raise_model_file_error(small_keras, tmp_path):
    """Random byte flips in the archive, in model.weights.h5 and in config.json: every
    result is a model or a ModelFileError, never another exception."""
    path, _ = small_keras
    with zipfile.ZipFile(path) as zf:
        h5, config = zf.read("model.weights.h5"), zf.read("config.json")
    outcomes = []
    bad = tmp_path / "mutant.keras"
    for mutant in _mutations(path.read_bytes(), 0, 60):
        bad.write_bytes(mutant)
        outcomes.append(_loads_or_model_file_error(bad))
    for member, data in (("model.weights.h5", h5), ("config.json", config)):
        for mutant in _mutations(data, 1, 60):
            _rezip(path, bad, {member: mutant})
            outcomes.append(_loads_or_model_file_error(bad))
    assert "refused" in outcomes  # the mutations did reach the parsers


def test_an_hdf5_file_that_makes_the_parser_allocate_without_bound_is_contained(
        tmp_path, isolated, monkeypatch):
    """One byte of a 20 kB model.weights.h5 (found by mutation fuzzing) makes libhdf5
    allocate until memory runs out; the isolated reader's child hits its cap instead."""
    model = Sequential([Conv2D(2, 3, activation="relu"), BatchNormalization(), MaxPooling2D(2),
                        Flatten(), Dense(3)], input_shape=(6, 6, 1), seed=0)
    path = save_keras(model, tmp_path / "base.keras")
    with zipfile.ZipFile(path) as zf:
        h5 = bytearray(zf.read("model.weights.h5"))
    if len(h5) != 19596 or h5[736] != 1:
        pytest.skip("this h5py writes another HDF5 layout than the one the byte was found in")
    h5[736] = 24
    bad = _rezip(path, tmp_path / "bomb.keras", {"model.weights.h5": bytes(h5)})
    monkeypatch.setattr(keras_format, "ISOLATED_MEMORY_BYTES", 256 << 20)
    with pytest.raises(ModelFileError, match="memory") as e:
        cnnlab.load_model(bad)
    assert str(bad) in str(e.value)


@pytest.mark.parametrize("child, fragment", [
    ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", "killed by signal 11"),
    ("raise MemoryError", "ran out of its"),
    ("import time; time.sleep(30)", "took over 1 s"),
    ("raise SystemExit(3)", "isolated reader failed"),
])
def test_a_child_that_crashes_hangs_or_runs_out_of_memory_is_a_model_file_error(
        small_keras, isolated, monkeypatch, child, fragment):
    """What the parent makes of a child that dies the ways a parser bug would make it die."""
    monkeypatch.setattr(keras_format, "_CHILD_CODE", child)
    monkeypatch.setattr(keras_format, "ISOLATED_TIMEOUT_S", 1.0)
    with pytest.raises(ModelFileError, match=fragment) as e:
        read_keras_file(small_keras[0])
    assert str(e.value).startswith(str(small_keras[0]))


def test_the_isolated_reader_reports_what_the_file_holds(small_keras, tmp_path, isolated):
    spec = {"module": "keras.layers", "class_name": "LSTM",
            "config": {"name": "lstm", "units": 4}, "registered_name": None}
    bad = _with_layer(small_keras, tmp_path, spec)
    with pytest.raises(ModelFileError) as e:
        cnnlab.load_model(bad)
    assert str(e.value).startswith(f"{bad}: layer 'lstm' (LSTM) has no cnnlab equivalent")
    model = _cnnlab_every_layer()
    back = cnnlab.load_model(model.save(tmp_path / "m.keras"))
    x = _x(model.input_shape)
    np.testing.assert_array_equal(back.predict(x), model.predict(x))
    assert back.class_names == model.class_names


@pytest.mark.parametrize("isolate", [False, True])
def test_missing_h5py_names_the_extra(small_keras, monkeypatch, isolate):
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ModelFileError, match=r"pip install cnnlab\[keras\]"):
        read_keras_file(small_keras[0], isolate=isolate)


# --------------------------------------------------------------------------- the CLI
def test_cli_convert_round_trips(tmp_path, capsys):
    model = _keras_every_layer()
    model.save(tmp_path / "k.keras")
    x = _x((13, 12, 3)) * 255
    want = _keras_predict(model, x)
    assert main(["convert", str(tmp_path / "k.keras"), str(tmp_path / "m.safetensors")]) == 0
    assert main(["convert", str(tmp_path / "m.safetensors"), str(tmp_path / "back.keras")]) == 0
    assert "parameters" in capsys.readouterr().out
    ours = cnnlab.load_model(tmp_path / "m.safetensors")
    np.testing.assert_allclose(ours.predict(x), want, atol=TOL, rtol=0)
    np.testing.assert_allclose(_keras_predict(keras.saving.load_model(
        tmp_path / "back.keras", safe_mode=True), x), want, atol=TOL, rtol=0)
    np.testing.assert_array_equal(cnnlab.load_model(tmp_path / "back.keras").predict(x),
                                  ours.predict(x))
    model.save(tmp_path / "k.h5")
    assert main(["convert", str(tmp_path / "k.h5"), str(tmp_path / "h.keras")]) == 0
    np.testing.assert_allclose(cnnlab.load_model(tmp_path / "h.keras").predict(x), want,
                               atol=TOL, rtol=0)


def test_cli_convert_keeps_the_training_config(tmp_path):
    model = cnnlab.small_cnn(seed=0)
    model.compile(optimizer=cnnlab.RMSprop(3e-3))
    model.save(tmp_path / "a.safetensors", {"epochs": 7, "batch_size": 64})
    assert main(["convert", str(tmp_path / "a.safetensors"), str(tmp_path / "b.keras")]) == 0
    assert main(["convert", str(tmp_path / "b.keras"), str(tmp_path / "c.safetensors")]) == 0
    back = cnnlab.load_model(tmp_path / "c.safetensors")
    assert back.training_config["epochs"] == 7 and back.training_config["batch_size"] == 64
    assert back.optimizer.get_config() == model.optimizer.get_config()



@pytest.mark.parametrize("args, fragment", [
    (["bad.keras", "out.keras"], "not a readable .keras file"),
    (["missing.keras", "out.safetensors"], "no such model file"),
    (["in.txt", "out.keras"], "cannot tell the format"),
    (["bad.keras", "out.onnx"], "OUT must end in .keras or .safetensors"),
    (["bad.keras", "bad.keras"], "OUT is IN"),
])
def test_cli_convert_bad_input_exits_2_with_one_line(tmp_path, capsys, monkeypatch, args,
                                                     fragment):
    monkeypatch.chdir(tmp_path)
    Path("bad.keras").write_bytes(b"PK\x03\x04 not really a zip")
    Path("in.txt").write_text("x")
    assert main(["convert", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("cnnlab: error: ")
    assert fragment in err
    assert not Path("out.keras").exists() and not Path("out.safetensors").exists()
