"""Per-layer behaviour: Keras names and defaults, weights, dropout, flatten order, padding."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import tf_same_pads

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
    Sequential,
    ShapeError,
    ops,
)
from cnnlab.ops.padding import output_hw, resolve_padding

# ----------------------------------------------------------------------------- names, defaults


def test_keras_layer_names():
    model = Sequential(
        [Conv2D(2, 3, padding="same"), Conv2D(2, 3, padding="same"), MaxPooling2D(),
         AveragePooling2D(), Dropout(0.1), Flatten(), Dense(4), Dense(3), Activation("softmax"),
         Dropout(0.2)],
        input_shape=(8, 8, 1), seed=0)
    assert [la.name for la in model.layers] == [
        "conv2d", "conv2d_1", "max_pooling2d", "average_pooling2d", "dropout", "flatten",
        "dense", "dense_1", "activation", "dropout_1"]


def test_user_names_are_kept_and_auto_names_avoid_them():
    model = Sequential([Conv2D(2, 1), Conv2D(2, 1, name="conv2d"), Flatten(name="flat")],
                       input_shape=(3, 3, 1), seed=0)
    assert [la.name for la in model.layers] == ["conv2d_1", "conv2d", "flat"]
    with pytest.raises(InvalidArgumentError, match="unique"):
        Sequential([Flatten(name="x"), Dense(2, name="x")], input_shape=(3,))


def test_default_arguments_match_keras():
    c = Conv2D(8, 3)
    assert c.strides == (1, 1) and c.padding == "valid" and c.activation == "linear"
    assert c.use_bias and c.kernel_initializer == "glorot_uniform"
    assert c.bias_initializer == "zeros"
    p = MaxPooling2D()
    assert p.pool_size == (2, 2) and p.strides == (2, 2) and p.padding == "valid"
    assert MaxPooling2D(3).strides == (3, 3)
    assert AveragePooling2D((2, 3)).strides == (2, 3)
    d = Dense(5)
    assert d.activation == "linear" and d.use_bias and d.kernel_initializer == "glorot_uniform"


@pytest.mark.parametrize(("kernel", "cin", "cout"), [((3, 3), 16, 128), ((2, 2), 1, 16),
                                                     ((5, 1), 4, 4)])
def test_conv_glorot_uniform_limits_and_zero_bias(kernel, cin, cout):
    layer = Conv2D(cout, kernel)
    layer.build((9, 9, cin), np.random.default_rng(0))
    k, b = layer.get_weights()
    assert k.shape == (*kernel, cin, cout) and k.dtype == np.float32
    assert b.shape == (cout,) and not b.any()
    receptive = kernel[0] * kernel[1]
    limit = math.sqrt(6 / (receptive * cin + receptive * cout))
    assert np.abs(k).max() <= limit
    assert np.abs(k).max() > 0.9 * limit  # uses the whole range
    assert abs(k.mean()) < 0.1 * limit
    # variance of U(-l, l) is l^2 / 3
    assert k.var() == pytest.approx(limit**2 / 3, rel=0.35 if k.size < 100 else 0.1)


def test_dense_glorot_uniform_limits_and_zero_bias():
    layer = Dense(128)
    layer.build((6400,), np.random.default_rng(0))
    w, b = layer.get_weights()
    limit = math.sqrt(6 / (6400 + 128))
    assert w.shape == (6400, 128) and b.shape == (128,)
    assert np.abs(w).max() <= limit and np.abs(w).max() > 0.99 * limit
    assert w.var() == pytest.approx(limit**2 / 3, rel=0.02)
    assert not b.any()


def test_parameter_counts():
    c = Conv2D(256, 3)
    c.build((12, 12, 128), np.random.default_rng(0))
    assert c.count_params() == 3 * 3 * 128 * 256 + 256 == 295168
    c = Conv2D(4, 3, use_bias=False)
    c.build((5, 5, 2), np.random.default_rng(0))
    assert c.count_params() == 72 and len(c.get_weights()) == 1
    d = Dense(10)
    d.build((128,), np.random.default_rng(0))
    assert d.count_params() == 1290


# ----------------------------------------------------------------------------- weights


def test_get_weights_order_shapes_and_copies():
    model = cnnlab.seed_model(seed=0)
    shapes = [w.shape for w in model.get_weights()]
    assert shapes == [(2, 2, 1, 16), (16,), (3, 3, 16, 128), (128,), (3, 3, 128, 256), (256,),
                      (6400, 128), (128,), (128, 10), (10,)]
    conv = model.layers[0]
    k = conv.get_weights()[0]
    k[...] = 99.0  # a copy: the layer is unchanged
    assert not np.any(conv.get_weights()[0] == 99.0)
    assert conv.weight_names == ("kernel", "bias")


def test_set_weights_round_trip_and_validation():
    layer = Conv2D(3, (2, 3))
    layer.build((5, 5, 2), np.random.default_rng(0))
    new = [np.arange(36, dtype=np.float64).reshape(2, 3, 2, 3), np.ones(3)]
    layer.set_weights(new)
    got = layer.get_weights()
    np.testing.assert_array_equal(got[0], new[0])
    assert got[0].dtype == np.float32  # kept in the layer's dtype
    with pytest.raises(InvalidArgumentError, match="kernel"):
        layer.set_weights([np.zeros((3, 2, 2, 3)), np.zeros(3)])
    with pytest.raises(InvalidArgumentError, match="bias"):
        layer.set_weights([np.zeros((2, 3, 2, 3)) + 5, np.zeros(4)])
    with pytest.raises(InvalidArgumentError, match="2 arrays"):
        layer.set_weights([np.zeros((2, 3, 2, 3))])


def test_failed_set_weights_leaves_the_layer_unchanged():
    """Keras checks every array before assigning any: a rejected call changes nothing."""
    layer = Conv2D(3, (2, 3))
    layer.build((5, 5, 2), np.random.default_rng(0))
    before = layer.get_weights()
    with pytest.raises(InvalidArgumentError, match="bias"):
        layer.set_weights([np.full((2, 3, 2, 3), 5.0), np.zeros(4)])  # kernel fits, bias not
    for a, b in zip(layer.get_weights(), before, strict=True):
        np.testing.assert_array_equal(a, b)


def test_model_set_weights_validation():
    model = cnnlab.seed_model(seed=0)
    weights = model.get_weights()
    with pytest.raises(InvalidArgumentError, match="10"):
        model.set_weights(weights[:-1])
    other = cnnlab.seed_model(seed=1)
    other.set_weights(weights)
    for a, b in zip(other.get_weights(), weights, strict=True):
        np.testing.assert_array_equal(a, b)


def test_layers_without_weights():
    for layer in (MaxPooling2D(), Flatten(), Dropout(0.5), Activation("relu")):
        layer.build((4, 4, 2), np.random.default_rng(0))
        assert layer.get_weights() == [] and layer.count_params() == 0
        layer.set_weights([])
        with pytest.raises(InvalidArgumentError):
            layer.set_weights([np.zeros(1)])


def test_float64_layers():
    layer = Conv2D(2, 3, dtype="float64")
    layer.build((5, 5, 1), np.random.default_rng(0))
    assert all(w.dtype == np.float64 for w in layer.get_weights())
    assert layer.forward(np.zeros((1, 5, 5, 1))).dtype == np.float64
    with pytest.raises(InvalidArgumentError, match="dtype"):
        Dense(2, dtype="float16")


@pytest.mark.parametrize("make", [lambda: Conv2D(2, 1), lambda: Dense(2), MaxPooling2D,
                                  AveragePooling2D, lambda: Activation("relu"), Flatten],
                         ids=["Conv2D", "Dense", "MaxPooling2D", "AveragePooling2D",
                              "Activation", "Flatten"])
def test_backward_without_training_forward_is_a_clear_error(make):
    """Every layer says backward() needs forward(x, training=True), as Conv2D and Dense do."""
    layer = make()
    shape = (3,) if isinstance(layer, Dense) else (4, 4, 1)
    out_shape = layer.build(shape, np.random.default_rng(0))
    x = np.ones((1, *shape), np.float32)
    g = np.ones((1, *out_shape), np.float32)
    if not isinstance(layer, Flatten):  # Flatten: no forward at all
        layer.forward(x, training=False)  # inference keeps no cache
    with pytest.raises(RuntimeError, match="forward"):
        layer.backward(g)


# ----------------------------------------------------------------------------- forward values


def test_conv_layer_forward_matches_direct_sum():
    rng = np.random.default_rng(1)
    layer = Conv2D(3, (2, 3), strides=(2, 1), padding="same", activation="relu")
    layer.build((5, 6, 2), rng)
    layer.weights[1][...] = [0.1, -0.2, 0.3]
    x = rng.standard_normal((2, 5, 6, 2)).astype(np.float32)
    y = layer.forward(x)
    (t, b), (left, r) = layer.pads
    assert layer.pads == ((0, 1), (1, 1))
    xp = np.pad(x, ((0, 0), (t, b), (left, r), (0, 0)))
    k, bias = layer.get_weights()
    expected = np.zeros((2, 3, 6, 3))
    for n in range(2):
        for i in range(3):
            for j in range(6):
                for co in range(3):
                    patch = xp[n, 2 * i : 2 * i + 2, j : j + 3, :]
                    expected[n, i, j, co] = (patch * k[..., co]).sum() + bias[co]
    np.testing.assert_allclose(y, np.maximum(expected, 0), rtol=1e-5, atol=1e-6)


def test_conv_impls_agree():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    a = Conv2D(4, 3, strides=2, padding="same", activation="tanh", impl="fast")
    b = Conv2D(4, 3, strides=2, padding="same", activation="tanh", impl="reference")
    a.build((7, 6, 3), np.random.default_rng(0))
    b.build((7, 6, 3), np.random.default_rng(0))
    np.testing.assert_allclose(a.forward(x, True), b.forward(x, True), rtol=1e-5, atol=1e-6)
    g = rng.standard_normal((2, 4, 3, 4)).astype(np.float32)
    np.testing.assert_allclose(a.backward(g), b.backward(g), rtol=1e-5, atol=1e-5)
    for ga, gb in zip(a.grads, b.grads, strict=True):
        np.testing.assert_allclose(ga, gb, rtol=1e-5, atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="impl"):
        Conv2D(4, 3, impl="fft")


@pytest.mark.parametrize("impl", ["reference", "im2col", "winograd"])
def test_conv_layer_forces_each_implementation(impl):
    """Conv2D(impl=...) picks the op's implementation; all agree with the reference."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 9, 8, 8)).astype(np.float32)
    layer = Conv2D(6, 3, padding="same", activation="relu", impl=impl)
    ref = Conv2D(6, 3, padding="same", activation="relu", impl="reference")
    layer.build((9, 8, 8), np.random.default_rng(0))
    ref.build((9, 8, 8), np.random.default_rng(0))
    y = layer.forward(x, True)
    assert layer._cache[0].impl == impl
    np.testing.assert_allclose(y, ref.forward(x, True), rtol=1e-5, atol=1e-5)
    g = rng.standard_normal(y.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(g), ref.backward(g), rtol=1e-4, atol=1e-4)
    for ga, gb in zip(layer.grads, ref.grads, strict=True):
        np.testing.assert_allclose(ga, gb, rtol=1e-4, atol=1e-4)


def test_max_pooling_ties_route_gradient_to_first_max():
    x = np.array([[1.0, 3.0, 3.0, 0.0], [3.0, 2.0, 0.0, 0.0],
                  [5.0, 5.0, 1.0, 2.0], [5.0, 5.0, 2.0, 1.0]])[None, :, :, None]
    for strides in ((2, 2), (1, 1)):
        pads = ((0, 0), (0, 0))
        out, arg = ops.max_pool2d_forward(x, (2, 2), strides, pads)
        dx = ops.max_pool2d_backward(np.ones_like(out), arg, x.shape, (2, 2), strides, pads)
        if strides == (2, 2):
            np.testing.assert_array_equal(out[0, :, :, 0], [[3, 3], [5, 2]])
            # ties: 3 at (0,1) beats (1,0); four 5s: (2,0); 2 at (2,3) beats (3,2)
            np.testing.assert_array_equal(dx[0, :, :, 0], [[0, 1, 1, 0], [0, 0, 0, 0],
                                                           [1, 0, 0, 1], [0, 0, 0, 0]])
        else:
            # windows at (0,0),(0,1): the (0,1) 3 is first in both; (0,2): first 3 at (0,2)
            assert dx[0, 0, 1, 0] == 2 and dx[0, 0, 2, 0] == 1 and dx[0, 1, 0, 0] == 0
            assert dx.sum() == out.size


def test_max_pooling_same_padding_never_picks_padding():
    x = -np.arange(1, 1 + 3 * 3, dtype=np.float32).reshape(1, 3, 3, 1)  # all negative
    layer = MaxPooling2D(2, padding="same")
    assert layer.build((3, 3, 1), np.random.default_rng(0)) == (2, 2, 1)
    out = layer.forward(x)
    np.testing.assert_array_equal(out[0, :, :, 0], [[-1, -3], [-7, -9]])


def test_average_pooling_same_padding_counts_real_pixels_only():
    x = np.ones((1, 3, 3, 1), np.float32)
    layer = AveragePooling2D(2, padding="same")
    layer.build((3, 3, 1), np.random.default_rng(0))
    np.testing.assert_array_equal(layer.forward(x), np.ones((1, 2, 2, 1)))
    x = np.arange(9, dtype=np.float32).reshape(1, 3, 3, 1)
    np.testing.assert_allclose(layer.forward(x)[0, :, :, 0], [[2, 3.5], [6.5, 8]])


def test_dense_forward():
    layer = Dense(2, activation="relu")
    layer.build((3,), np.random.default_rng(0))
    layer.set_weights([np.array([[1, -1], [2, 0], [0, 3]]), np.array([0.5, -10])])
    np.testing.assert_allclose(layer.forward(np.array([[1, 1, 1]], np.float32)), [[3.5, 0]])


# ----------------------------------------------------------------------------- dropout


def test_dropout_is_identity_at_inference():
    layer = Dropout(0.5)
    layer.build((10,), np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 10)).astype(np.float32)
    np.testing.assert_array_equal(layer.forward(x, training=False), x)
    np.testing.assert_array_equal(layer.backward(np.ones_like(x)), np.ones_like(x))


@pytest.mark.parametrize("rate", [0.25, 0.5, 0.8])
def test_dropout_inverted_scaling_preserves_mean(rate):
    layer = Dropout(rate)
    layer.build((1000,), np.random.default_rng(0))
    x = np.full((200, 1000), 2.0, np.float32)
    y = layer.forward(x, training=True)
    kept = y != 0
    assert kept.mean() == pytest.approx(1 - rate, abs=0.01)
    np.testing.assert_allclose(y[kept], 2.0 / (1 - rate), rtol=1e-6)
    assert y.mean() == pytest.approx(2.0, rel=0.03)
    assert y.dtype == np.float32
    g = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(g != 0, kept)
    np.testing.assert_allclose(g[kept], 1 / (1 - rate), rtol=1e-6)


def test_dropout_masks_change_between_steps_and_rate_zero_is_identity():
    layer = Dropout(0.5)
    layer.build((50,), np.random.default_rng(0))
    x = np.ones((2, 50), np.float32)
    assert not np.array_equal(layer.forward(x, True), layer.forward(x, True))
    zero = Dropout(0.0)
    zero.build((50,), np.random.default_rng(0))
    np.testing.assert_array_equal(zero.forward(x, True), x)


# ----------------------------------------------------------------------------- flatten


def test_flatten_is_row_major_nhwc_like_keras():
    x = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(2, 3, 4, 5)
    layer = Flatten()
    assert layer.build((3, 4, 5), np.random.default_rng(0)) == (60,)
    y = layer.forward(x, training=True)
    assert y.shape == (2, 60)
    for n in range(2):
        flat = [x[n, h, w, c] for h in range(3) for w in range(4) for c in range(5)]
        np.testing.assert_array_equal(y[n], flat)
    np.testing.assert_array_equal(layer.backward(y), x)


# ----------------------------------------------------------------------------- activation


def test_activation_layer_values():
    x = np.array([[-1.0, 0.0, 2.0]], np.float32)
    for name, expected in [("relu", [[0, 0, 2]]), ("linear", x),
                           ("tanh", np.tanh(x)), ("sigmoid", 1 / (1 + np.exp(-x))),
                           ("softmax", np.exp(x) / np.exp(x).sum())]:
        layer = Activation(name)
        layer.build((3,), np.random.default_rng(0))
        np.testing.assert_allclose(layer.forward(x.copy()), expected, rtol=1e-6, err_msg=name)
    assert Activation("ReLU").activation == "relu"


# ----------------------------------------------------------------------------- padding


@pytest.mark.parametrize(
    ("padding", "kernel", "strides", "hw", "expected"),
    [
        ("same", (2, 2), (1, 1), (28, 28), ((0, 1), (0, 1))),  # the slides' first layer
        ("same", (3, 3), (1, 1), (28, 28), ((1, 1), (1, 1))),
        ("same", (3, 3), (2, 2), (5, 5), ((1, 1), (1, 1))),
        ("same", (3, 3), (2, 2), (6, 6), ((0, 1), (0, 1))),
        ("same", (1, 1), (2, 2), (7, 7), ((0, 0), (0, 0))),
        ("same", (4, 4), (1, 1), (4, 4), ((1, 2), (1, 2))),
        ("same", (2, 2), (3, 3), (5, 5), ((0, 0), (0, 0))),
        ("same", (5, 5), (3, 3), (10, 10), ((2, 2), (2, 2))),
        ("same", (2, 3), (2, 1), (5, 6), ((0, 1), (1, 1))),
        ("same", (2, 2), (2, 2), (5, 7), ((0, 1), (0, 1))),
        ("same", (2, 2), (2, 2), (4, 6), ((0, 0), (0, 0))),
        ("valid", (3, 3), (2, 2), (9, 9), ((0, 0), (0, 0))),
        ("full", (3, 3), (1, 1), (5, 5), ((2, 2), (2, 2))),
        ("full", (2, 3), (2, 1), (5, 5), ((1, 1), (2, 2))),
        (2, (3, 3), (1, 1), (5, 5), ((2, 2), (2, 2))),
        ((1, 2), (3, 3), (1, 1), (5, 5), ((1, 1), (2, 2))),
        (((0, 1), (2, 3)), (3, 3), (1, 1), (5, 5), ((0, 1), (2, 3))),
        ("SAME", (2, 2), (1, 1), (28, 28), ((0, 1), (0, 1))),
    ],
)
def test_padding_table(padding, kernel, strides, hw, expected):
    assert resolve_padding(padding, kernel, strides, hw) == expected


def test_same_padding_follows_tf_rule_and_gives_ceil_output():
    for n in range(1, 12):
        for k in range(1, 6):
            for s in range(1, 5):
                pads = resolve_padding("same", (k, 1), (s, 1), (n, 1))
                assert pads[0] == tf_same_pads(n, k, s), (n, k, s)
                assert output_hw((n, 1), (k, 1), (s, 1), pads)[0] == math.ceil(n / s)


def test_full_padding_grows_output_by_k_minus_one():
    for n, k in [(5, 3), (4, 2), (3, 3), (6, 1)]:
        pads = resolve_padding("full", (k, k), (1, 1), (n, n))
        assert output_hw((n, n), (k, k), (1, 1), pads) == (n + k - 1, n + k - 1)


@pytest.mark.parametrize("bad", ["bogus", -1, (1, -1), ((0, 1), (2, -3)), (1, 2, 3), True, 1.5,
                                 ((0, 1), 2)])
def test_invalid_padding_arguments(bad):
    with pytest.raises(InvalidArgumentError):
        resolve_padding(bad, (3, 3), (1, 1), (5, 5))


def test_output_hw_rejects_windows_that_do_not_fit():
    with pytest.raises(ShapeError, match="5x5"):
        output_hw((3, 3), (5, 5), (1, 1), ((0, 0), (0, 0)))
    assert output_hw((3, 3), (5, 5), (1, 1), ((1, 1), (1, 1))) == (1, 1)


def test_dilate2d():
    x = np.arange(6, dtype=np.float32).reshape(1, 2, 3, 1)
    d = ops.dilate2d(x, (2, 3))
    assert d.shape == (1, 3, 7, 1)
    np.testing.assert_array_equal(d[0, :, :, 0], [[0, 0, 0, 1, 0, 0, 2], [0] * 7,
                                                  [3, 0, 0, 4, 0, 0, 5]])
    assert ops.dilate2d(x, (1, 1)) is x
