"""Model files: round trips and every broken file we can make (issue 3 and 6)."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.numpy import save

import cnnlab
from cnnlab.errors import ModelFileError
from cnnlab.saving import load_model


def _tiny(seed: int = 0, filters: int = 4) -> cnnlab.Sequential:
    m = cnnlab.Sequential(
        [cnnlab.Conv2D(filters, 3, padding="same", activation="relu"), cnnlab.MaxPooling2D(2),
         cnnlab.Flatten(), cnnlab.Dropout(0.5), cnnlab.Dense(10), cnnlab.Activation("softmax")],
        input_shape=(8, 8, 1), seed=seed)
    m.compile(cnnlab.SGD(0.1, momentum=0.9, nesterov=True))
    return m


@pytest.fixture
def saved(tmp_path):
    model = _tiny()
    x = np.random.default_rng(0).random((32, 8, 8, 1), dtype=np.float32)
    model.fit(x, np.arange(32) % 10, epochs=1, batch_size=8, verbose=0)
    path = model.save(tmp_path / "m.safetensors")
    return model, path, x


def test_round_trip_predicts_exactly_the_same(saved):
    model, path, x = saved
    loaded = load_model(path)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.get_config() == model.get_config()
    assert loaded.optimizer.get_config() == model.optimizer.get_config()


def test_seed_model_round_trip(tmp_path):
    model = cnnlab.seed_model(seed=1)
    model.compile("adam")
    path = model.save(tmp_path / "seed.safetensors")
    loaded = load_model(path)
    x = np.random.default_rng(2).random((3, 28, 28, 1), dtype=np.float32)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    assert loaded.count_params() == 1_134_426


def test_save_is_atomic_and_leaves_no_temporaries(saved):
    _, path, _ = saved
    assert [p.name for p in path.parent.iterdir()] == ["m.safetensors"]


def _rewrite(path, tensors=None, meta_update=None, drop_meta=()):
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
        data = {k: f.get_tensor(k) for k in f.keys()}
    if tensors is not None:
        data = tensors(data)
    meta.update(meta_update or {})
    for k in drop_meta:
        meta.pop(k)
    path.write_bytes(save(data, metadata=meta))


@pytest.mark.parametrize("cut", [0, 4, 8, 20, 100, -1000, -1])
def test_truncated_files(saved, cut):
    _, path, _ = saved
    blob = path.read_bytes()
    path.write_bytes(blob[:cut] if cut >= 0 else blob[:cut])
    with pytest.raises(ModelFileError, match="m.safetensors"):
        load_model(path)


def test_not_a_safetensors_file(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_bytes(b"PK\x03\x04 this is a zip, or a pickle, or anything else" * 10)
    with pytest.raises(ModelFileError, match="x.safetensors"):
        load_model(p)


def test_absurd_header_length(tmp_path):
    p = tmp_path / "x.safetensors"
    p.write_bytes(struct.pack("<Q", 2**62) + b"{}")
    with pytest.raises(ModelFileError, match="header claims"):
        load_model(p)


def test_missing_tensor(saved):
    _, path, _ = saved
    _rewrite(path, tensors=lambda d: {k: v for k, v in d.items() if k != "dense/bias"})
    with pytest.raises(ModelFileError, match=r"missing tensors \['dense/bias'\]"):
        load_model(path)


def test_extra_tensor(saved):
    _, path, _ = saved
    _rewrite(path, tensors=lambda d: {**d, "dense_9/kernel": np.zeros(3, np.float32)})
    with pytest.raises(ModelFileError, match=r"unexpected tensors \['dense_9/kernel'\]"):
        load_model(path)


def test_mismatched_shape(saved):
    _, path, _ = saved
    _rewrite(path, tensors=lambda d: {**d, "conv2d/kernel": np.zeros((3, 3, 1, 5), np.float32)})
    with pytest.raises(ModelFileError, match=r"conv2d/kernel has shape \(3, 3, 1, 5\)"):
        load_model(path)


def test_other_architecture(saved, tmp_path):
    _, path, _ = saved
    other = _tiny(filters=6)
    # weights of a 6-filter model under the 4-filter architecture
    other_path = other.save(tmp_path / "other.safetensors")
    from safetensors.numpy import load_file

    arch = _tiny().get_config()
    other_path.write_bytes(save(load_file(str(other_path)), metadata={
        "cnnlab_format": "1", "architecture": json.dumps(arch), "training_config": "{}"}))
    with pytest.raises(ModelFileError, match="conv2d/kernel has shape"):
        load_model(other_path)


def test_nan_weights(saved):
    _, path, _ = saved
    def poison(d):
        d = dict(d)
        k = d["dense/kernel"].copy()
        k[0, 0] = np.nan
        d["dense/kernel"] = k
        return d
    _rewrite(path, tensors=poison)
    with pytest.raises(ModelFileError, match="NaN or infinity"):
        load_model(path)


@pytest.mark.parametrize(
    "meta, fragment",
    [
        ({"cnnlab_format": "99"}, "not a cnnlab model file"),
        ({"architecture": "{not json"}, "not valid JSON"),
        ({"architecture": json.dumps({"class_name": "Functional"})}, "not a Sequential"),
        ({"architecture": json.dumps({"class_name": "Sequential", "input_shape": [8, 8, 1],
                                      "layers": [{"class_name": "Lambda", "config": {}}]})},
         "unknown layer type 'Lambda'"),
        ({"architecture": json.dumps({"class_name": "Sequential", "input_shape": [8, 8, 1],
                                      "layers": [{"class_name": "Conv2D",
                                                  "config": {"filters": 0, "kernel_size": 3}}]})},
         "filters must be a positive int"),
        ({"architecture": json.dumps({"class_name": "Sequential", "input_shape": [2, 2, 1],
                                      "layers": [{"class_name": "Conv2D",
                                                  "config": {"filters": 1, "kernel_size": 5}}]})},
         "5x5 kernel does not fit"),
    ],
)
def test_bad_metadata(saved, meta, fragment):
    _, path, _ = saved
    _rewrite(path, meta_update=meta)
    with pytest.raises(ModelFileError, match=fragment):
        load_model(path)


def test_missing_architecture(saved):
    _, path, _ = saved
    _rewrite(path, drop_meta=("architecture",))
    with pytest.raises(ModelFileError, match="no 'architecture'"):
        load_model(path)


FUZZ_CASES = 300


@settings(max_examples=FUZZ_CASES, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_loader_raises_only_model_file_errors(saved, data):
    """Random byte flips, truncations and insertions: only the documented error."""
    _, path, _ = saved
    original = getattr(test_fuzz_loader_raises_only_model_file_errors, "_blob", None)
    if original is None:
        original = path.read_bytes()
        test_fuzz_loader_raises_only_model_file_errors._blob = original
    blob = bytearray(original)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert", "header"]))
        if op == "flip" and blob:
            i = data.draw(st.integers(0, len(blob) - 1))
            blob[i] = data.draw(st.integers(0, 255))
        elif op == "cut" and blob:
            blob = blob[: data.draw(st.integers(0, len(blob) - 1))]
        elif op == "insert":
            i = data.draw(st.integers(0, len(blob)))
            blob[i:i] = data.draw(st.binary(min_size=1, max_size=16))
        elif op == "header" and len(blob) > 8:
            i = data.draw(st.integers(8, min(len(blob) - 1, 400)))
            blob[i] = data.draw(st.sampled_from(list(b'{}[]":,0123456789-eE.ntf ')))
    path.write_bytes(bytes(blob))
    try:
        model = load_model(path)
    except ModelFileError:
        return
    # a mutation that still loads must give a working model
    out = model.predict(np.zeros((1, 8, 8, 1), np.float32))
    assert out.shape == (1, 10)


def test_class_names_and_preprocessing_travel_in_the_model_file(tmp_path):
    import json

    from safetensors import safe_open

    model = cnnlab.small_cnn(seed=0, num_classes=3)
    model.class_names = ["cat", "dog", "eel"]
    model.preprocessing = {"mode": "resize", "size": [28, 28], "color": "grayscale"}
    path = model.save(tmp_path / "m.safetensors")
    back = load_model(path)
    assert back.class_names == ["cat", "dog", "eel"] and back.class_name(2) == "eel"
    assert back.preprocessing == model.preprocessing
    # a file whose names do not fit the outputs is refused, naming the problem
    with safe_open(str(path), framework="numpy") as f:
        meta = dict(f.metadata())
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    from safetensors.numpy import save_file

    meta["class_names"] = json.dumps(["cat", "dog"])
    save_file(tensors, str(tmp_path / "bad.safetensors"), metadata=meta)
    with pytest.raises(cnnlab.ModelFileError, match="2 class names for a model with 3 outputs"):
        load_model(tmp_path / "bad.safetensors")
    assert cnnlab.small_cnn(seed=0).class_name(4) == "4"
