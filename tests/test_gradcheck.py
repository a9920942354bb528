"""Finite-difference gradient checks, in float64, of every op and layer.

Each check compares the analytic gradient of ``L = sum(out * R)`` (``R`` a
fixed random array, so ``dL/dout = R``) with central differences; the relative
error on the whole gradient vector must stay below 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_grad_close, numerical_gradient

import cnnlab
from cnnlab import ops
from cnnlab.ops import activations as act
from cnnlab.ops.padding import output_hw, resolve_padding

TOL = 1e-6

# ----------------------------------------------------------------------------- convolution

PADDINGS = ["valid", "same", "full", 1, (1, 2), ((0, 1), (2, 0))]
STRIDES = [(1, 1), (2, 2), (1, 2)]
KERNELS = [(1, 1), (2, 2), (3, 3), (2, 3)]
CHANNELS = [(1, 1), (2, 4), (3, 1), (1, 4), (3, 4), (2, 1)]


def conv_cases():
    cases = []
    i = 0
    for padding in PADDINGS:
        for strides in STRIDES:
            for kernel in KERNELS:
                ci, co = CHANNELS[i % len(CHANNELS)]
                cases.append(pytest.param(padding, strides, kernel, ci, co,
                                          id=f"{padding}-s{strides}-k{kernel}-c{ci}x{co}"))
                i += 1
    return cases


def conv_problem(padding, strides, kernel, ci, co, seed, hw=(5, 6)):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *hw, ci))
    k = rng.standard_normal((*kernel, ci, co))
    b = rng.standard_normal(co)
    pads = resolve_padding(padding, kernel, strides, hw)
    ho, wo = output_hw(hw, kernel, strides, pads)
    r = rng.standard_normal((2, ho, wo, co))
    return x, k, b, pads, r


@pytest.mark.parametrize(("padding", "strides", "kernel", "ci", "co"), conv_cases())
def test_conv_reference_gradients(padding, strides, kernel, ci, co):
    x, k, b, pads, r = conv_problem(padding, strides, kernel, ci, co, seed=1)

    def loss():
        return np.sum(ops.conv2d_forward_reference(x, k, b, strides, pads) * r)

    dk = ops.conv2d_backward_filter_reference(x, r, kernel, strides, pads)
    dx = ops.conv2d_backward_input_reference(r, k, x.shape[1:3], strides, pads)
    assert_grad_close(dx, numerical_gradient(loss, x), TOL, "dL/dX (reference)")
    assert_grad_close(dk, numerical_gradient(loss, k), TOL, "dL/dF (reference)")
    assert_grad_close(r.sum(axis=(0, 1, 2)), numerical_gradient(loss, b), TOL, "dL/db")


@pytest.mark.parametrize("impl", ["auto", "im2col", "winograd", "reference"])
@pytest.mark.parametrize(("padding", "strides", "kernel", "ci", "co"), conv_cases())
def test_conv_op_gradients(padding, strides, kernel, ci, co, impl):
    """Every implementation behind the one conv2d_forward/backward interface."""
    x, k, b, pads, r = conv_problem(padding, strides, kernel, ci, co, seed=2)

    def loss():
        return np.sum(ops.conv2d_forward(x, k, b, strides, pads, impl=impl)[0] * r)

    out, cache = ops.conv2d_forward(x, k, b, strides, pads, impl=impl)
    dx, dk, db = ops.conv2d_backward(r, cache)
    assert_grad_close(dx, numerical_gradient(loss, x), TOL, "dL/dX (fast)")
    assert_grad_close(dk, numerical_gradient(loss, k), TOL, "dL/dF (fast)")
    assert_grad_close(db, numerical_gradient(loss, b), TOL, "dL/db (fast)")
    # and the fast path agrees with the reference (forward and both gradients)
    np.testing.assert_allclose(out, ops.conv2d_forward_reference(x, k, b, strides, pads),
                               rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        dx, ops.conv2d_backward_input_reference(r, k, x.shape[1:3], strides, pads),
        rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        dk, ops.conv2d_backward_filter_reference(x, r, kernel, strides, pads),
        rtol=1e-12, atol=1e-12)
    _, dk2, db2 = ops.conv2d_backward(r, cache, need_input_grad=False)
    np.testing.assert_array_equal(dk2, dk)
    np.testing.assert_array_equal(db2, db)


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize(
    ("padding", "strides", "kernel", "activation", "hw", "ci", "co"),
    [
        ("same", 1, 2, "tanh", (5, 4), 1, 4),
        ("valid", 2, 3, "sigmoid", (7, 6), 2, 1),
        ("full", (1, 2), (2, 3), None, (4, 5), 3, 4),
        (((1, 0), (0, 2)), 1, 3, "relu", (4, 4), 2, 2),
        ("same", 2, 3, "softmax", (5, 6), 1, 3),
    ],
)
def test_conv_layer_gradients(impl, padding, strides, kernel, activation, hw, ci, co):
    rng = np.random.default_rng(3)
    layer = cnnlab.Conv2D(co, kernel, strides=strides, padding=padding, activation=activation,
                          impl=impl, dtype="float64", name="conv")
    out_shape = layer.build((*hw, ci), rng)
    layer.weights[1][...] = rng.standard_normal(co)  # a non-zero bias
    x = rng.standard_normal((2, *hw, ci))
    if activation == "relu":  # keep pre-activations away from the kink
        x = np.abs(x) + 0.5
        layer.weights[0][...] = np.abs(layer.weights[0]) * rng.choice([-1, 1], co)
    r = rng.standard_normal((2, *out_shape))

    def loss():
        return np.sum(layer.forward(x, training=False) * r)

    layer.forward(x, training=True)
    dx = layer.backward(r)
    dk, db = layer.grads
    assert_grad_close(dx, numerical_gradient(loss, x), TOL, "Conv2D dx")
    assert_grad_close(dk, numerical_gradient(loss, layer.weights[0]), TOL, "Conv2D dkernel")
    assert_grad_close(db, numerical_gradient(loss, layer.weights[1]), TOL, "Conv2D dbias")


# ----------------------------------------------------------------------------- pooling


def pool_cases():
    cases = []
    for kind in ("max", "avg"):
        for padding in ("valid", "same"):
            for pool in (2, 3, (2, 3)):
                for stride in (1, 2):
                    for hw in ((5, 7), (4, 6)):
                        cases.append(pytest.param(kind, padding, pool, stride, hw,
                                                  id=f"{kind}-{padding}-p{pool}-s{stride}-{hw}"))
    return cases


@pytest.mark.parametrize(("kind", "padding", "pool", "stride", "hw"), pool_cases())
def test_pooling_op_gradients(kind, padding, pool, stride, hw):
    rng = np.random.default_rng(4)
    pool = pool if isinstance(pool, tuple) else (pool, pool)
    strides = (stride, stride)
    shape = (2, *hw, 3)
    # distinct values, far apart compared to eps: max pooling has no ties
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64) / 10.0
    pads = resolve_padding(padding, pool, strides, hw)
    fwd = ops.max_pool2d_forward if kind == "max" else ops.avg_pool2d_forward
    bwd = ops.max_pool2d_backward if kind == "max" else ops.avg_pool2d_backward
    out, aux = fwd(x, pool, strides, pads)
    r = rng.standard_normal(out.shape)

    def loss():
        return np.sum(fwd(x, pool, strides, pads)[0] * r)

    dx = bwd(r, aux, x.shape, pool, strides, pads)
    assert_grad_close(dx, numerical_gradient(loss, x), TOL, f"{kind} pool dx")


@pytest.mark.parametrize("cls", [cnnlab.MaxPooling2D, cnnlab.AveragePooling2D])
@pytest.mark.parametrize(("pool", "strides", "padding"), [(2, None, "valid"), (3, 2, "same"),
                                                          ((2, 3), 1, "same")])
def test_pooling_layer_gradients(cls, pool, strides, padding):
    rng = np.random.default_rng(5)
    layer = cls(pool, strides=strides, padding=padding, dtype="float64")
    out_shape = layer.build((6, 5, 2), rng)
    x = rng.permutation(2 * 6 * 5 * 2).reshape(2, 6, 5, 2).astype(np.float64) / 7.0
    r = rng.standard_normal((2, *out_shape))

    def loss():
        return np.sum(layer.forward(x) * r)

    layer.forward(x, training=True)
    assert_grad_close(layer.backward(r), numerical_gradient(loss, x), TOL, cls.__name__)


# ----------------------------------------------------------------------------- activations


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "linear"])
def test_activation_gradients(name):
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 7)) * 2
    if name == "relu":  # away from the kink at 0
        x = np.where(np.abs(x) < 0.1, 0.5, x)
    _, fwd, bwd = act.get_activation(name)
    r = rng.standard_normal(x.shape)

    def loss():
        return np.sum(fwd(x.copy()) * r)

    y = fwd(x.copy())
    assert_grad_close(bwd(r, y), numerical_gradient(loss, x), TOL, name)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "tanh", "softmax", "linear"])
def test_activation_layer_gradients(name):
    rng = np.random.default_rng(7)
    layer = cnnlab.Activation(name, dtype="float64")
    layer.build((3, 2, 4), rng)
    x = rng.standard_normal((2, 3, 2, 4))
    if name == "relu":
        x = np.where(np.abs(x) < 0.1, -0.5, x)
    r = rng.standard_normal(x.shape)

    def loss():
        return np.sum(layer.forward(x) * r)

    layer.forward(x, training=True)
    assert_grad_close(layer.backward(r), numerical_gradient(loss, x), TOL, name)


def test_softmax_is_stable_and_sums_to_one():
    x = np.array([[1000.0, 1000.0, -1000.0], [-1e4, 0.0, 1e4]])
    y = act.softmax(x)
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y.sum(axis=1), 1.0)
    np.testing.assert_allclose(y[0], [0.5, 0.5, 0.0])
    assert np.isfinite(act.sigmoid(np.array([-1e4, 1e4]))).all()


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_cross_entropy_gradient(one_hot):
    rng = np.random.default_rng(8)
    z = rng.standard_normal((5, 6)) * 3
    labels = rng.integers(0, 6, 5)
    y = np.eye(6)[labels] if one_hot else labels
    loss, grad = ops.softmax_cross_entropy(z, y)
    assert_grad_close(grad, numerical_gradient(lambda: ops.softmax_cross_entropy(z, y)[0], z),
                      TOL, "softmax CE")
    p = act.softmax(z)
    np.testing.assert_allclose(loss, -np.mean(np.log(p[np.arange(5), labels])), rtol=1e-12)
    np.testing.assert_allclose(grad, (p - np.eye(6)[labels]) / 5, rtol=1e-12, atol=1e-15)


def test_softmax_cross_entropy_soft_labels_gradient():
    rng = np.random.default_rng(9)
    z = rng.standard_normal((4, 3))
    y = rng.dirichlet(np.ones(3), 4)
    _, grad = ops.softmax_cross_entropy(z, y)
    assert_grad_close(grad, numerical_gradient(lambda: ops.softmax_cross_entropy(z, y)[0], z),
                      TOL, "softmax CE, soft labels")


@pytest.mark.parametrize("one_hot", [False, True])
def test_categorical_cross_entropy_gradient(one_hot):
    rng = np.random.default_rng(10)
    p = rng.uniform(0.05, 0.95, (5, 4))  # inside the clip range
    labels = rng.integers(0, 4, 5)
    y = np.eye(4)[labels] if one_hot else labels
    loss, grad = ops.categorical_cross_entropy(p, y)
    assert_grad_close(grad, numerical_gradient(lambda: ops.categorical_cross_entropy(p, y)[0], p),
                      TOL, "categorical CE")
    np.testing.assert_allclose(loss, -np.mean(np.log(p[np.arange(5), labels])), rtol=1e-12)


def test_softmax_then_categorical_equals_fused():
    rng = np.random.default_rng(11)
    z = rng.standard_normal((6, 5))
    labels = rng.integers(0, 5, 6)
    p = act.softmax(z)
    l1, g1 = ops.softmax_cross_entropy(z, labels)
    l2, gp = ops.categorical_cross_entropy(p, labels)
    np.testing.assert_allclose(l1, l2, rtol=1e-12)
    np.testing.assert_allclose(act.softmax_backward(gp, p), g1, rtol=1e-9, atol=1e-15)


# ----------------------------------------------------------------------------- core layers


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "softmax"])
@pytest.mark.parametrize("use_bias", [True, False])
def test_dense_gradients(activation, use_bias):
    rng = np.random.default_rng(12)
    layer = cnnlab.Dense(4, activation=activation, use_bias=use_bias, dtype="float64")
    layer.build((6,), rng)
    if use_bias:
        layer.weights[1][...] = rng.standard_normal(4) * 0.5
    x = rng.standard_normal((3, 6))
    if activation == "relu":
        x = np.abs(x) + 0.5
        layer.weights[0][...] = np.abs(layer.weights[0]) * rng.choice([-1, 1], 4)
    r = rng.standard_normal((3, 4))

    def loss():
        return np.sum(layer.forward(x) * r)

    layer.forward(x, training=True)
    dx = layer.backward(r)
    assert_grad_close(dx, numerical_gradient(loss, x), TOL, "Dense dx")
    for i, w in enumerate(layer.weights):
        assert_grad_close(layer.grads[i], numerical_gradient(loss, w), TOL, f"Dense w{i}")


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.5])
def test_dropout_gradient_with_fixed_mask(rate):
    layer = cnnlab.Dropout(rate, dtype="float64")
    layer.build((4, 5), np.random.default_rng(13))
    x = np.random.default_rng(14).standard_normal((3, 4, 5))
    r = np.random.default_rng(15).standard_normal(x.shape)
    state = layer.rng.bit_generator.state

    def loss():
        layer.rng.bit_generator.state = state  # the same mask every time
        return np.sum(layer.forward(x, training=True) * r)

    loss()
    dx = layer.backward(r)
    assert_grad_close(dx, numerical_gradient(loss, x), TOL, "Dropout")


def test_flatten_gradient():
    rng = np.random.default_rng(16)
    layer = cnnlab.Flatten(dtype="float64")
    assert layer.build((3, 2, 4), rng) == (24,)
    x = rng.standard_normal((2, 3, 2, 4))
    r = rng.standard_normal((2, 24))

    def loss():
        return np.sum(layer.forward(x) * r)

    layer.forward(x, training=True)
    assert_grad_close(layer.backward(r), numerical_gradient(loss, x), TOL, "Flatten")


# ----------------------------------------------------------------------------- whole model


def small_model(last):
    layers = [
        cnnlab.Conv2D(3, 2, padding="same", activation="tanh", dtype="float64"),
        cnnlab.MaxPooling2D(2, dtype="float64"),
        cnnlab.Conv2D(4, (2, 3), strides=(1, 2), padding="full", activation="relu",
                      dtype="float64"),
        cnnlab.AveragePooling2D(2, strides=1, padding="same", dtype="float64"),
        cnnlab.Dropout(0.25, dtype="float64"),
        cnnlab.Flatten(dtype="float64"),
        cnnlab.Dense(5, activation="sigmoid", dtype="float64"),
        cnnlab.Dropout(0.5, dtype="float64"),
    ]
    if last == "activation":
        layers += [cnnlab.Dense(3, dtype="float64"), cnnlab.Activation("softmax", dtype="float64")]
    else:
        layers += [cnnlab.Dense(3, activation="softmax", dtype="float64")]
    model = cnnlab.Sequential(layers, input_shape=(6, 5, 2), seed=3)
    rng = np.random.default_rng(17)
    for layer in model.layers:
        if layer.weights and layer.use_bias:
            layer.weights[1][...] = rng.standard_normal(layer.weights[1].shape) * 0.1
    return model


class GradRecorder(cnnlab.optimizers.Optimizer):
    """An 'optimizer' that records the gradients train_on_batch hands it and changes nothing."""

    def __init__(self):
        super().__init__(1.0)
        self.grads = None

    def step(self, params, grads):
        self.grads = [np.array(g, copy=True) for g in grads]


def trained_layers(model):
    """The layers training runs: all but a final softmax folded into the loss."""
    return model.layers[:-1] if model.loss_head.from_logits else model.layers


def training_forward(model, x):
    for layer in trained_layers(model):
        x = layer.forward(x, training=True)
    return x


def model_loss_fn(model, x, y):
    """The training loss (dropout masks fixed by restoring the model's generator)."""
    state = model.rng.bit_generator.state

    def loss():
        model.rng.bit_generator.state = state
        return model.loss_head(training_forward(model, x), y)[0]

    return loss, state


@pytest.mark.parametrize("last", ["activation", "dense_softmax"])
def test_sequential_gradients_all_weights_and_input(last):
    model = small_model(last)
    recorder = GradRecorder()
    model.compile(optimizer=recorder)
    rng = np.random.default_rng(18)
    x = rng.standard_normal((3, 6, 5, 2))
    y = np.array([0, 2, 1])
    loss, state = model_loss_fn(model, x, y)

    def true_loss():
        """-mean log p(label), computed from predict-style probabilities (the definition)."""
        model.rng.bit_generator.state = state
        p = x
        for layer in model.layers:
            p = layer.forward(p, training=True)
        return -np.mean(np.log(p[np.arange(3), y]))

    # the model's loss is the cross-entropy of its outputs
    np.testing.assert_allclose(loss(), true_loss(), rtol=1e-10)

    model.rng.bit_generator.state = state
    model.train_on_batch(x, y)
    analytic = recorder.grads
    weights = [w for layer in model.layers for w in layer.weights]
    assert len(analytic) == len(weights) == 8
    for i, w in enumerate(weights):
        assert_grad_close(analytic[i], numerical_gradient(true_loss, w), TOL, f"weight {i}")

    # and w.r.t. the input (the first layer normally skips it)
    model.layers[0].need_input_grad = True
    model.rng.bit_generator.state = state
    g = model.loss_head(training_forward(model, x), y)[1]
    for layer in reversed(trained_layers(model)):
        g = layer.backward(g)
    assert_grad_close(g, numerical_gradient(true_loss, x), TOL, "input")
