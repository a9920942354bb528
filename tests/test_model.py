"""Sequential: the slides' summary, shape inference, argument checks, fit/evaluate/predict."""

from __future__ import annotations

import re

import numpy as np
import pytest

import cnnlab
from cnnlab import (
    Activation,
    AveragePooling2D,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    InvalidArgumentError,
    MaxPooling2D,
    NonFiniteError,
    Sequential,
    ShapeError,
)
from cnnlab.ops import categorical_cross_entropy, softmax, softmax_cross_entropy

SLIDES_TABLE = [
    ("conv2d", "Conv2D", "(None, 28, 28, 16)", 80),
    ("max_pooling2d", "MaxPooling2D", "(None, 14, 14, 16)", 0),
    ("conv2d_1", "Conv2D", "(None, 12, 12, 128)", 18560),
    ("conv2d_2", "Conv2D", "(None, 10, 10, 256)", 295168),
    ("max_pooling2d_1", "MaxPooling2D", "(None, 5, 5, 256)", 0),
    ("dropout", "Dropout", "(None, 5, 5, 256)", 0),
    ("flatten", "Flatten", "(None, 6400)", 0),
    ("dense", "Dense", "(None, 128)", 819328),
    ("dropout_1", "Dropout", "(None, 128)", 0),
    ("dense_1", "Dense", "(None, 10)", 1290),
    ("activation", "Activation", "(None, 10)", 0),
]

ROW = re.compile(r"^\s*(\w+) \((\w+)\)\s+(\(None(?:, \d+)+\))\s+(\d+)\s*$")


def small_model(seed=0, last_dense_softmax=False, dtype="float32"):
    layers = [
        Conv2D(4, 3, padding="same", activation="relu", dtype=dtype),
        MaxPooling2D(2, dtype=dtype),
        Conv2D(6, 3, activation="relu", dtype=dtype),
        Dropout(0.25, dtype=dtype),
        Flatten(dtype=dtype),
        Dense(16, activation="relu", dtype=dtype),
        Dropout(0.5, dtype=dtype),
    ]
    if last_dense_softmax:
        layers.append(Dense(3, activation="softmax", dtype=dtype))
    else:
        layers += [Dense(3, dtype=dtype), Activation("softmax", dtype=dtype)]
    return Sequential(layers, input_shape=(10, 10, 1), seed=seed)


def toy_data(n=96, seed=0):
    """Three easy classes: a bright blob top-left, in the centre or bottom-right."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.uniform(0, 0.3, (n, 10, 10, 1)).astype(np.float32)
    for i, c in enumerate(y):
        r = 1 + 3 * int(c)
        x[i, r : r + 3, r : r + 3, 0] += 0.7
    return x, y


# ----------------------------------------------------------------------------- summary


def test_seed_model_summary_matches_the_slides():
    text = cnnlab.seed_model(seed=0).summary(print_fn=None)
    rows = []
    for line in text.splitlines():
        m = ROW.match(line)
        if m:
            rows.append((m.group(1), m.group(2), m.group(3), int(m.group(4))))
    assert rows == SLIDES_TABLE
    assert "Total params: 1,134,426" in text.splitlines()
    assert "Trainable params: 1,134,426" in text
    assert "Non-trainable params: 0" in text
    assert " Layer (type)" in text and "Output Shape" in text and "Param #" in text


def test_summary_prints_by_default(capsys):
    model = cnnlab.seed_model(seed=0)
    text = model.summary()
    assert capsys.readouterr().out.strip() == text.strip()
    assert model.count_params() == 1134426


def test_seed_model_layer_names_and_output_shapes():
    model = cnnlab.seed_model(seed=0)
    assert [la.name for la in model.layers] == [r[0] for r in SLIDES_TABLE]
    assert [la.count_params() for la in model.layers] == [r[3] for r in SLIDES_TABLE]
    assert model.output_shape == (10,)
    assert model.layers[0].pads == ((0, 1), (0, 1))


# ----------------------------------------------------------------------------- shape inference


def test_kernel_larger_than_map_fails_at_construction():
    with pytest.raises(ShapeError) as exc:
        Sequential([Conv2D(8, 3, activation="relu"), MaxPooling2D(2), Conv2D(4, 5)],
                   input_shape=(8, 8, 1))
    msg = str(exc.value)
    assert "conv2d_1" in msg  # the layer
    assert "(None, 3, 3, 8)" in msg  # its input shape
    assert "5x5" in msg and "3x3" in msg  # the kernel and the map


def test_kernel_larger_than_input_names_first_layer():
    with pytest.raises(ShapeError, match=r"conv2d.*\(None, 3, 3, 1\)"):
        Sequential([Conv2D(2, 5)], input_shape=(3, 3, 1))


def test_same_padding_lets_a_large_kernel_fit():
    model = Sequential([Conv2D(2, 5, padding="same")], input_shape=(3, 3, 1), seed=0)
    assert model.output_shape == (3, 3, 2)


def test_dense_without_flatten_fails_at_construction():
    with pytest.raises(ShapeError) as exc:
        Sequential([Conv2D(2, 3), Dense(10)], input_shape=(8, 8, 1))
    msg = str(exc.value)
    assert "dense" in msg and "(None, 6, 6, 2)" in msg and "Flatten" in msg


def test_pool_larger_than_map_fails_at_construction():
    with pytest.raises(ShapeError, match="max_pooling2d"):
        Sequential([MaxPooling2D(4)], input_shape=(3, 3, 1))


def test_conv_after_flatten_fails():
    with pytest.raises(ShapeError, match="conv2d"):
        Sequential([Flatten(), Conv2D(2, 1)], input_shape=(4, 4, 1))


@pytest.mark.parametrize(
    ("make", "argument"),
    [
        (lambda: Conv2D(0, 3), "filters"),
        (lambda: Conv2D(-1, 3), "filters"),
        (lambda: Conv2D(2.5, 3), "filters"),
        (lambda: Conv2D(4, 0), "kernel_size"),
        (lambda: Conv2D(4, (3, -1)), "kernel_size"),
        (lambda: Conv2D(4, 3, strides=0), "strides"),
        (lambda: Conv2D(4, 3, strides=(1, 0)), "strides"),
        (lambda: Conv2D(4, 3, padding="bogus"), "padding"),
        (lambda: Conv2D(4, 3, padding=-1), "padding"),
        (lambda: Conv2D(4, 3, activation="bogus"), "activation"),
        (lambda: Conv2D(4, 3, kernel_initializer="bogus"), "initializer"),
        (lambda: Dense(0), "units"),
        (lambda: Dense(-3), "units"),
        (lambda: Dense(4, activation="swishy"), "activation"),
        (lambda: Dropout(1.0), "rate"),
        (lambda: Dropout(-0.1), "rate"),
        (lambda: Dropout(1.5), "rate"),
        (lambda: MaxPooling2D(0), "pool_size"),
        (lambda: MaxPooling2D(2, strides=0), "strides"),
        (lambda: MaxPooling2D(2, padding="full"), "padding"),
        (lambda: AveragePooling2D(2, padding="bogus"), "padding"),
        (lambda: Activation("bogus"), "activation"),
        (lambda: cnnlab.Adam(learning_rate=0), "learning_rate"),
        (lambda: cnnlab.SGD(learning_rate=-1), "learning_rate"),
        (lambda: cnnlab.SGD(momentum=1.0), "momentum"),
    ],
)
def test_invalid_arguments_name_the_argument(make, argument):
    with pytest.raises(InvalidArgumentError, match=argument):
        make()


def test_compile_rejects_unknown_loss_optimizer_and_metric():
    model = small_model()
    with pytest.raises(InvalidArgumentError, match="loss"):
        model.compile(loss="mse")
    with pytest.raises(InvalidArgumentError, match="optimizer"):
        model.compile(optimizer="nadamax")
    with pytest.raises(InvalidArgumentError, match="metric"):
        model.compile(metrics=["auc"])


def test_fit_requires_compile():
    x, y = toy_data(8)
    with pytest.raises(InvalidArgumentError, match="compile"):
        small_model().fit(x, y, verbose=0)


# ----------------------------------------------------------------------------- data checks


def test_predict_wrong_shape_raises_shape_error():
    model = small_model()
    with pytest.raises(ShapeError, match=r"\(N, 10, 10, 1\)"):
        model.predict(np.zeros((2, 9, 10, 1), np.float32))
    with pytest.raises(ShapeError):
        model.predict(np.zeros((2, 10, 10, 3), np.float32))
    with pytest.raises(ShapeError, match=r"x\[None\]"):  # one example without a batch axis
        model.predict(np.zeros((10, 10, 1), np.float32))


def test_predict_accepts_grayscale_without_channel_axis():
    model = small_model()
    x, _ = toy_data(4)
    np.testing.assert_array_equal(model.predict(x[..., 0]), model.predict(x))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_raises(bad):
    model = small_model()
    model.compile()
    x, y = toy_data(4)
    x[2, 3, 4, 0] = bad
    with pytest.raises(NonFiniteError, match=r"\(2, 3, 4, 0\)"):
        model.predict(x)
    with pytest.raises(NonFiniteError):
        model.evaluate(x, y)
    with pytest.raises(NonFiniteError):
        model.fit(x, y, verbose=0)


@pytest.mark.parametrize("batch_size", [0, -1])
def test_predict_and_evaluate_reject_bad_batch_size(batch_size):
    """fit() validates batch_size; predict() and evaluate() must too (InvalidArgumentError)."""
    model = small_model()
    model.compile()
    x, y = toy_data(4)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        model.predict(x, batch_size=batch_size)
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        model.evaluate(x, y, batch_size=batch_size)


def test_label_errors():
    model = small_model()
    model.compile()
    x, y = toy_data(6)
    with pytest.raises(InvalidArgumentError, match="class label"):
        model.evaluate(x, np.array([0, 1, 2, 3, 0, 1]))
    with pytest.raises(ShapeError):
        model.evaluate(x, y[:5])


# ----------------------------------------------------------------------------- training


def trained_weights(seed, epochs=2):
    x, y = toy_data(64)
    model = small_model(seed=seed)
    model.compile(optimizer=cnnlab.Adam(1e-2))
    model.fit(x, y, epochs=epochs, batch_size=16, verbose=0)
    return model.get_weights()


def test_seeded_fits_are_bit_identical():
    a, b = trained_weights(7), trained_weights(7)
    assert len(a) == len(b) == 8
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_different_seeds_give_different_weights():
    a, b = trained_weights(7, epochs=1), trained_weights(8, epochs=1)
    assert any(not np.array_equal(wa, wb) for wa, wb in zip(a, b, strict=True))


def test_seeded_initialisation_is_reproducible():
    for wa, wb in zip(cnnlab.seed_model(seed=3).get_weights(),
                      cnnlab.seed_model(seed=3).get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(cnnlab.seed_model(seed=3).get_weights()[0],
                              cnnlab.seed_model(seed=4).get_weights()[0])


def test_fit_learns_toy_problem_and_returns_history():
    x, y = toy_data(120)
    model = small_model(seed=1)
    model.compile(optimizer=cnnlab.Adam(1e-2))
    hist = model.fit(x, y, epochs=8, batch_size=16, verbose=0, validation_data=toy_data(30, 9))
    assert hist.epoch == list(range(8))
    assert set(hist.history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    assert hist.history["val_accuracy"][-1] >= 0.9


def test_evaluate_is_consistent_with_predict():
    x, y = toy_data(50, seed=3)
    model = small_model(seed=2)
    model.compile()
    loss, acc = model.evaluate(x, y, batch_size=16)
    probs = model.predict(x, batch_size=7)
    # Batches of 16 and of 7 are different matrix shapes: the probabilities agree
    # only up to float32 rounding, so an argmax may differ only where the top two
    # are that close (no image, unless one is a near-tie).
    top2 = np.sort(probs, axis=1)[:, -2:]
    near_ties = int(np.sum(top2[:, 1] - top2[:, 0] <= 1e-5))
    assert acc == pytest.approx(np.mean(probs.argmax(axis=1) == y), abs=(near_ties + 1e-9) / len(y))
    expected = -np.mean(np.log(probs[np.arange(len(y)), y].astype(np.float64)))
    assert loss == pytest.approx(expected, rel=1e-5)
    # one-hot labels give the same answer
    l2, a2 = model.evaluate(x, np.eye(3)[y])
    assert (l2, a2) == pytest.approx((loss, acc), rel=1e-6)


def test_predict_is_deterministic_and_batch_independent():
    x, _ = toy_data(20)
    model = small_model()
    p1 = model.predict(x, batch_size=20)
    p2 = model.predict(x, batch_size=3)
    np.testing.assert_allclose(p1, p2, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(p1.sum(axis=1), 1.0, rtol=1e-6)
    assert p1.dtype == np.float32 and p1.shape == (20, 3)


def test_save_load_round_trip_predicts_identically(tmp_path):
    x, y = toy_data(40)
    model = small_model(seed=5)
    model.compile(optimizer=cnnlab.Adam(1e-2))
    model.fit(x, y, epochs=1, batch_size=8, verbose=0)
    path = model.save(tmp_path / "m.safetensors")
    loaded = cnnlab.load_model(path)
    assert [la.name for la in loaded.layers] == [la.name for la in model.layers]
    for wa, wb in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(wa, wb)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_save_load_round_trip_keeps_every_layer_argument(tmp_path):
    model = Sequential(
        [Conv2D(3, (2, 3), strides=(1, 2), padding=((0, 1), (2, 0)), activation="tanh"),
         Conv2D(2, 3, padding=(1, 2), use_bias=False), Conv2D(2, 1, padding=1, name="pointwise"),
         AveragePooling2D((2, 3), strides=1, padding="same"), MaxPooling2D(2, padding="same"),
         Flatten(), Dropout(0.3), Dense(4, activation="sigmoid"), Dense(3),
         Activation("softmax")],
        input_shape=(7, 9, 2), seed=11)
    loaded = cnnlab.load_model(model.save(tmp_path / "odd.safetensors"))
    assert loaded.get_config() == model.get_config()
    assert [la.output_shape for la in loaded.layers] == [la.output_shape for la in model.layers]
    x = np.random.default_rng(1).standard_normal((5, 7, 9, 2)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_seed_model_save_load_round_trip(tmp_path):
    model = cnnlab.seed_model(seed=0)
    x = np.random.default_rng(0).uniform(0, 1, (3, 28, 28, 1)).astype(np.float32)
    loaded = cnnlab.load_model(model.save(tmp_path / "seed.safetensors"))
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


# ----------------------------------------------------------------------------- the loss


def test_fused_softmax_loss_equals_categorical_cross_entropy():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((9, 10)) * 2  # no probability below the 1e-7 clip
    y = rng.integers(0, 10, 9)
    fused, g_fused = softmax_cross_entropy(z, y)
    p = softmax(z)
    plain, g_plain = categorical_cross_entropy(p, y)
    assert fused == pytest.approx(plain, rel=1e-12)
    np.testing.assert_allclose(g_fused, p * (g_plain - (g_plain * p).sum(1, keepdims=True)),
                               rtol=1e-9, atol=1e-15)


def test_model_loss_is_cross_entropy_of_its_probabilities():
    """The seed model's (fused) loss is the categorical cross-entropy of predict()."""
    model = cnnlab.seed_model(seed=1)
    model.compile()
    rng = np.random.default_rng(5)
    x = rng.uniform(0, 1, (6, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 6)
    loss, _ = model.evaluate(x, y)
    assert loss == pytest.approx(categorical_cross_entropy(model.predict(x), y)[0], rel=1e-5)


def test_dense_softmax_last_layer_loss_is_cross_entropy_of_probabilities():
    """A model ending in Dense(activation='softmax') must not apply the softmax twice.

    Its outputs are already probabilities; the loss must be -mean log p(label),
    the same number as for the equivalent Dense + Activation('softmax') model.
    """
    x, y = toy_data(12, seed=6)
    dense_sm = small_model(seed=3, last_dense_softmax=True)
    dense_sm.compile()
    probs = dense_sm.predict(x)
    expected = categorical_cross_entropy(probs, y)[0]
    loss, acc = dense_sm.evaluate(x, y)
    assert loss == pytest.approx(expected, rel=1e-5)
    assert acc == pytest.approx(np.mean(probs.argmax(1) == y))


def test_dense_softmax_last_layer_trains_like_separate_activation():
    """The same weights give the same loss and update with Dense(softmax) or Dense + Activation."""
    x, y = toy_data(16, seed=7)
    a = small_model(seed=4, last_dense_softmax=True, dtype="float64")
    b = small_model(seed=4, last_dense_softmax=False, dtype="float64")
    b.set_weights(a.get_weights())
    a.compile(optimizer=cnnlab.SGD(0.1))
    b.compile(optimizer=cnnlab.SGD(0.1))
    la, _ = a.train_on_batch(x.astype(np.float64), y)
    lb, _ = b.train_on_batch(x.astype(np.float64), y)
    assert la == pytest.approx(lb, rel=1e-10)
    for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
        np.testing.assert_allclose(wa, wb, rtol=1e-10, atol=1e-12)
