"""ONNX export against real peers: ONNX's checker, ONNX Runtime (CPU), ONNX's reference evaluator.

For the shipped model on real MNIST test images, and for seeded random models that
cover every layer type, every padding mode, strides, every activation and
BatchNormalization on every axis: the exported graph passes
``onnx.checker.check_model(full_check=True)``, and ONNX Runtime's outputs equal
``model.predict`` within 1e-5 (and the argmax exactly); ``onnx.reference`` gives
a second opinion on the smaller models. Skipped without onnx or onnxruntime.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="onnx is not installed (cnnlab[onnx])")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from conftest import load_mnist_raw  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from cnnlab import Sequential  # noqa: E402
from cnnlab.cli import main  # noqa: E402
from cnnlab.errors import InvalidArgumentError  # noqa: E402
from cnnlab.export.onnx import IR_VERSION, OPSET, build_onnx  # noqa: E402
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
    Layer,
    MaxPooling2D,
    ZeroPadding2D,
)
from cnnlab.ops.activations import ACTIVATIONS  # noqa: E402
from cnnlab.pretrained import load_pretrained  # noqa: E402


def session(proto: Any) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1  # a shared machine
    return ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def run_ort(proto: Any, x: np.ndarray) -> list[np.ndarray]:
    return session(proto).run(None, {"input": x})


def has_asymmetric_max_pool(model: Sequential) -> bool:
    """onnx.reference (1.23) reads MaxPool's ``pads`` ``[top, left, bottom, right]`` as
    ``[h_begin, h_end, w_begin, w_end]`` (the spec, ONNX Runtime and its own AveragePool
    read ``[h_begin, w_begin, h_end, w_end]``), which is the same only when bottom ==
    left: models with another MaxPool are compared with ONNX Runtime only."""
    return any(isinstance(la, MaxPooling2D) and la.pads[0][1] != la.pads[1][0]
               for la in model.layers)


def check_agrees(model: Sequential, x: np.ndarray, reference: bool = False) -> np.ndarray:
    """Export ``model``; assert the checker, ONNX Runtime (and the reference evaluator)
    agree with ``model.predict`` on ``x``. Returns ONNX Runtime's output."""
    proto = build_onnx(model)
    onnx.checker.check_model(proto, full_check=True)
    expected = model.predict(x)
    (got,) = run_ort(proto, x)
    assert got.shape == expected.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5,
                               err_msg=f"onnxruntime vs predict: {model.layers}")
    if expected.ndim == 2 and expected.shape[1] > 1:
        top2 = np.sort(expected, axis=1)[:, -2:]
        # rows whose top two are not a (near-)tie: a dead ReLU layer gives exact ties
        clear = top2[:, 1] - top2[:, 0] > 1e-5
        np.testing.assert_array_equal(got.argmax(1)[clear], expected.argmax(1)[clear])
    if reference and not has_asymmetric_max_pool(model):
        (ref,) = ReferenceEvaluator(proto).run(None, {"input": x})
        np.testing.assert_allclose(ref, expected, atol=1e-5, rtol=1e-5,
                                   err_msg=f"onnx.reference vs predict: {model.layers}")
    return got


def randomise_batchnorm(model: Sequential, rng: np.random.Generator) -> None:
    """Non-trivial moving statistics, gamma and beta (the defaults make BN near identity)."""
    for layer in model.layers:
        if isinstance(layer, BatchNormalization):
            for name, w in zip(layer.weight_names, layer.weights, strict=True):
                if name == "moving_variance":
                    w[...] = rng.uniform(0.2, 3.0, w.shape)
                else:
                    w[...] = rng.normal(0.0, 1.0 if name != "gamma" else 0.5, w.shape) + (
                        1.0 if name == "gamma" else 0.0)


# ------------------------------------------------------------------ the shipped model


@pytest.fixture(scope="module")
def pretrained() -> Sequential:
    return load_pretrained()


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    (_, _), (x, y) = load_mnist_raw()
    return np.asarray(x[:1000]), np.asarray(y[:1000], dtype=np.int64)


def test_the_shipped_model_agrees_on_real_mnist_test_images(pretrained, mnist_test):
    x_u8, y = mnist_test
    x = pretrained.cast_inputs(x_u8[..., None])  # cnnlab's scaling: * float32(1/255)
    proto = build_onnx(pretrained)
    onnx.checker.check_model(proto, full_check=True)
    expected = pretrained.predict(x)
    (got,) = run_ort(proto, x)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_array_equal(got.argmax(1), expected.argmax(1))
    assert (got.argmax(1) == y).mean() > 0.97  # it is the trained model
    # what the file says about itself
    assert proto.opset_import[0].domain == "" and proto.opset_import[0].version == OPSET >= 17
    assert proto.ir_version == IR_VERSION
    (inp,) = proto.graph.input
    dims = inp.type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 28, 28, 1]
    assert [o.name for o in proto.graph.output] == ["output"]
    ops = {n.op_type for n in proto.graph.node}
    assert "Dropout" not in ops
    for node in proto.graph.node:
        assert all(a.name != "auto_pad" for a in node.attribute)
    conv = next(n for n in proto.graph.node if n.op_type == "Conv")  # 2x2 "same": (0, 1)
    assert list(next(a for a in conv.attribute if a.name == "pads").ints) == [0, 0, 1, 1]
    softmax = [n for n in proto.graph.node if n.op_type == "Softmax"]
    assert [a.i for a in softmax[0].attribute if a.name == "axis"] == [-1]


def test_uint8_input_scales_as_cnnlab_does(pretrained, mnist_test):
    x_u8 = mnist_test[0][:64, :, :, None]
    proto = build_onnx(pretrained, input_dtype="uint8")
    onnx.checker.check_model(proto, full_check=True)
    (got,) = run_ort(proto, x_u8)
    np.testing.assert_allclose(got, pretrained.predict(x_u8), atol=1e-5, rtol=0)


def test_the_reference_evaluator_agrees_on_the_shipped_model(pretrained, mnist_test):
    x = pretrained.cast_inputs(mnist_test[0][:8, :, :, None])
    (ref,) = ReferenceEvaluator(build_onnx(pretrained)).run(None, {"input": x})
    np.testing.assert_allclose(ref, pretrained.predict(x), atol=1e-5, rtol=0)


def test_the_batch_axis_is_dynamic(pretrained, mnist_test):
    sess = session(build_onnx(pretrained))
    x = pretrained.cast_inputs(mnist_test[0][:5, :, :, None])
    for n in (1, 2, 5):
        (got,) = sess.run(None, {"input": x[:n]})
        np.testing.assert_allclose(got, pretrained.predict(x[:n]), atol=1e-5, rtol=0)


# ------------------------------------------------------------------ every layer, seeded


CONV_PADDINGS = ["valid", "same", "full", 1, (2, 0), ((0, 2), (1, 0))]
STRIDES = [1, 2, (2, 1), (1, 3)]
KERNELS = [1, 2, 3, (2, 3)]


def conv_cases() -> list[tuple[str, list[Layer], tuple[int, ...]]]:
    """Each padding mode with each stride, the kernels, every activation, no bias."""
    cases = []
    k = 0
    for padding in CONV_PADDINGS:
        for strides in STRIDES:
            kernel = KERNELS[k % len(KERNELS)]
            k += 1
            cases.append((f"conv-{padding}-{strides}-{kernel}",
                          [Conv2D(4, kernel, strides=strides, padding=padding, activation="relu"),
                           Flatten(), Dense(5), Activation("softmax")], (9, 11, 2)))
    for act in sorted(ACTIVATIONS):
        cases.append((f"conv-act-{act}", [Conv2D(3, 3, padding="same", activation=act),
                                          Flatten(), Dense(4, activation=act),
                                          Dense(6), Activation("softmax")], (7, 8, 3)))
        cases.append((f"activation-{act}", [Conv2D(3, 2), Activation(act), Flatten(), Dense(4),
                                            Activation(act)], (6, 6, 1)))
    cases.append(("conv-no-bias", [Conv2D(3, 3, use_bias=False), Flatten(),
                                   Dense(4, use_bias=False), Activation("softmax")], (6, 7, 2)))
    return cases


def pooling_cases() -> list[tuple[str, list[Layer], tuple[int, ...]]]:
    cases = []
    for cls in (MaxPooling2D, AveragePooling2D):
        for padding in ("valid", "same"):
            for pool, strides in ((2, None), (3, 2), ((2, 3), 1), (3, (1, 2)), (2, 3)):
                cases.append((f"{cls.__name__}-{padding}-{pool}-{strides}",
                              [Conv2D(3, 2, padding="same", activation="tanh"),
                               cls(pool, strides=strides, padding=padding),
                               Flatten(), Dense(5), Activation("softmax")], (9, 10, 1)))
    for cls in (GlobalAveragePooling2D, GlobalMaxPooling2D):
        cases.append((f"{cls.__name__}", [Conv2D(6, 3, activation="elu"), cls(), Dense(4),
                                          Activation("softmax")], (8, 8, 2)))
        cases.append((f"{cls.__name__}-keepdims", [Conv2D(6, 3), cls(keepdims=True), Flatten(),
                                                   Dense(4), Activation("softmax")], (8, 8, 2)))
    return cases


def other_cases() -> list[tuple[str, list[Layer], tuple[int, ...]]]:
    return [
        ("zero-padding", [ZeroPadding2D(((1, 2), (0, 3))), Conv2D(3, 3, strides=2),
                          ZeroPadding2D(1), MaxPooling2D(2), Flatten(), Dense(4),
                          Activation("softmax")], (7, 6, 2)),
        ("batchnorm-channels", [Conv2D(4, 3), BatchNormalization(), Activation("relu"),
                                Flatten(), Dense(8), BatchNormalization(), Dense(3),
                                Activation("softmax")], (7, 7, 2)),
        ("batchnorm-h-w-axes", [Conv2D(4, 2), BatchNormalization(axis=1),
                                BatchNormalization(axis=2, center=False),
                                BatchNormalization(axis=-1, scale=False), Flatten(), Dense(3),
                                Activation("softmax")], (6, 5, 1)),
        ("dropout", [Conv2D(4, 3), Dropout(0.5), MaxPooling2D(2), Dropout(0.25), Flatten(),
                     Dense(6, activation="relu"), Dropout(0.5), Dense(3),
                     Activation("softmax")], (8, 8, 1)),
        ("dense-only", [Dense(7, activation="gelu"), BatchNormalization(), Dense(3),
                        Activation("softmax")], (5,)),
        ("conv-output-softmax-over-channels", [Conv2D(5, 3, padding="same"),
                                               Activation("softmax")], (4, 6, 2)),
        ("flatten-after-global", [Conv2D(3, 2), GlobalMaxPooling2D(), Flatten(), Dense(2),
                                  Activation("sigmoid")], (5, 5, 1)),
        ("seed-like", [Conv2D(8, 2, padding="same", activation="relu"), MaxPooling2D(2),
                       Conv2D(8, 3, activation="relu"), MaxPooling2D(2), Dropout(0.25),
                       Flatten(), Dense(16, activation="relu"), Dropout(0.5), Dense(10),
                       Activation("softmax")], (14, 14, 1)),
    ]


CASES = conv_cases() + pooling_cases() + other_cases()


@pytest.mark.parametrize("name, layers, shape", CASES, ids=[c[0] for c in CASES])
def test_random_models_agree_with_onnxruntime(name, layers, shape):
    seed = sum(map(ord, name))
    model = Sequential(layers, input_shape=shape, seed=seed)
    rng = np.random.default_rng(seed)
    randomise_batchnorm(model, rng)
    x = rng.normal(0.0, 1.0, (16, *shape)).astype(np.float32)
    small = sum(la.count_params() for la in model.layers) < 5000
    check_agrees(model, x, reference=small)


def test_the_layer_kinds_covered_are_all_of_cnnlab():
    from cnnlab.layers import LAYER_TYPES

    covered = {type(la).__name__ for _, layers, _ in CASES for la in layers}
    assert covered == set(LAYER_TYPES)
    acts = {la.activation for _, layers, _ in CASES for la in layers if hasattr(la, "activation")}
    assert acts == set(ACTIVATIONS)


def test_random_stacks_agree_with_onnxruntime_and_the_reference():
    """Seeded random stacks: conv/pool/pad/BN blocks with random paddings and strides."""
    rng = np.random.default_rng(16)
    acts = sorted(ACTIVATIONS)
    for trial in range(12):
        layers: list[Layer] = []
        h, w = int(rng.integers(8, 15)), int(rng.integers(8, 15))
        for _ in range(int(rng.integers(1, 4))):
            kind = rng.choice(["conv", "conv", "max", "avg", "pad", "bn"])
            if kind == "conv":
                layers.append(Conv2D(int(rng.integers(1, 5)), int(rng.integers(1, 4)),
                                     strides=int(rng.integers(1, 3)),
                                     padding=str(rng.choice(["valid", "same", "full"])),
                                     activation=str(rng.choice(acts[:-1] + ["linear"]))))
            elif kind in ("max", "avg"):
                cls = MaxPooling2D if kind == "max" else AveragePooling2D
                layers.append(cls(int(rng.integers(1, 3)), strides=int(rng.integers(1, 3)),
                                  padding="same"))
            elif kind == "pad":
                layers.append(ZeroPadding2D(int(rng.integers(0, 2))))
            else:
                layers.append(BatchNormalization())
        layers += [Flatten(), Dense(6), Activation("softmax")]
        shape = (h, w, int(rng.integers(1, 4)))
        model = Sequential(layers, input_shape=shape, seed=trial)
        randomise_batchnorm(model, rng)
        x = rng.normal(0.0, 1.0, (8, *shape)).astype(np.float32)
        check_agrees(model, x, reference=trial % 4 == 0)


def test_layer_outputs_are_the_feature_maps():
    model = Sequential([Conv2D(3, 3, padding="same", activation="relu"), MaxPooling2D(2),
                        BatchNormalization(), Dropout(0.3), Flatten(), Dense(4),
                        Activation("softmax")], input_shape=(6, 6, 2), seed=3)
    randomise_batchnorm(model, np.random.default_rng(0))
    x = np.random.default_rng(1).random((3, 6, 6, 2), dtype=np.float32)
    proto = build_onnx(model, layer_outputs=True)
    onnx.checker.check_model(proto, full_check=True)
    outs = run_ort(proto, x)
    names = [o.name for o in proto.graph.output]
    assert names == ["output"] + [f"layer:{la.name}" for la in model.layers]
    for (name, expected), got in zip(model.feature_maps(x), outs[1:], strict=True):
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-5, err_msg=name)


# ------------------------------------------------------------------ errors, files, the CLI


class Squash(Layer):
    """A layer cnnlab's exporter does not know."""

    def forward(self, x: Any, training: bool = False) -> Any:
        return x / (1 + np.abs(x))


def test_an_unknown_layer_is_named_in_the_error():
    model = Sequential([Flatten(), Squash(name="squash_1"), Dense(2)], input_shape=(3, 3, 1),
                       seed=0)
    with pytest.raises(InvalidArgumentError, match=r"layer 'squash_1' \(Squash\)"):
        build_onnx(model)


def test_an_unknown_activation_is_named_in_the_error():
    model = Sequential([Flatten(), Dense(2), Activation("relu")], input_shape=(2, 2, 1), seed=0)
    model.layers[-1].activation = "swish"  # one cnnlab may learn later, without an exporter
    with pytest.raises(InvalidArgumentError, match=r"'activation' \(Activation\).*'swish'"):
        build_onnx(model)


def test_bad_arguments_are_clear_errors(pretrained):
    with pytest.raises(InvalidArgumentError, match="input_dtype"):
        build_onnx(pretrained, input_dtype="int8")
    with pytest.raises(InvalidArgumentError, match="not built"):
        build_onnx(Sequential([Dense(2)]))


def test_export_onnx_writes_the_file_atomically(tmp_path: Path, pretrained, mnist_test):
    path = pretrained.export_onnx(tmp_path / "m.onnx")
    assert path == tmp_path / "m.onnx" and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    x = pretrained.cast_inputs(mnist_test[0][:4, :, :, None])
    (got,) = run_ort(loaded, x)
    np.testing.assert_allclose(got, pretrained.predict(x), atol=1e-5, rtol=0)


def test_cli_export(tmp_path: Path, capsys, pretrained, mnist_test):
    out = tmp_path / "seed.onnx"
    assert main(["export", "default", str(out)]) == 0
    assert "seed.onnx" in capsys.readouterr().out
    x = pretrained.cast_inputs(mnist_test[0][:4, :, :, None])
    (got,) = run_ort(onnx.load(str(out)), x)
    np.testing.assert_allclose(got, pretrained.predict(x), atol=1e-5, rtol=0)
    # a model file by path, with uint8 input
    saved = pretrained.save(tmp_path / "m.safetensors")
    assert main(["export", str(saved), str(tmp_path / "u8.onnx"), "--input-dtype", "uint8"]) == 0
    (got,) = run_ort(onnx.load(str(tmp_path / "u8.onnx")), mnist_test[0][:4, :, :, None])
    np.testing.assert_allclose(got, pretrained.predict(x), atol=1e-5, rtol=0)


@pytest.mark.parametrize("argv, message", [
    (["export", "default"], "give OUT.onnx, --web DIR"),
    (["export", "default", "out.txt"], "must end in .onnx"),
    (["export", "no/such/model.safetensors", "x.onnx"], "no/such/model.safetensors"),
])
def test_cli_export_user_errors_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error:") and message in err and err.count("\n") == 1
