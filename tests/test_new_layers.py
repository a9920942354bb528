"""The layers real CNNs use: BatchNormalization, global pooling, ZeroPadding2D,
and the activations leaky_relu, elu and gelu.

* float64 finite differences of every new layer, op and activation (inputs,
  gamma, beta; BatchNormalization in training mode, the loss through the batch
  statistics);
* PyTorch as an oracle in float32 (BatchNorm2d/1d in training and eval mode,
  adaptive pooling to 1x1, F.pad, the activations);
* Keras's semantics: weight order and shapes, moving statistics updated only
  in training and never by the optimizer, summary, model files, resume.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import assert_grad_close, numerical_gradient

import cnnlab
from cnnlab.errors import InvalidArgumentError, ShapeError, SpecError
from cnnlab.ops import activations as act
from cnnlab.ops import normalization as bn_ops
from cnnlab.ops import pooling as pool_ops

try:  # PyTorch is a test-only oracle: without it, only those tests are skipped
    import torch

    F = torch.nn.functional
except ImportError:  # pragma: no cover
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch (the oracle) is not installed")

TOL = 1e-6


def built(layer, input_shape, seed=0):
    layer.build(input_shape, np.random.default_rng(seed))
    return layer


# ============================================================================ finite differences


BN_CASES = [
    pytest.param((4, 3, 2, 3), -1, True, True, id="NHWC"),
    pytest.param((4, 3, 2, 3), -1, False, True, id="NHWC-no-center"),
    pytest.param((4, 3, 2, 3), -1, True, False, id="NHWC-no-scale"),
    pytest.param((4, 3, 2, 3), -1, False, False, id="NHWC-neither"),
    pytest.param((4, 3, 2, 3), 1, True, True, id="NHWC-axis1"),
    pytest.param((6, 5), -1, True, True, id="NF"),
    pytest.param((6, 5), -1, False, False, id="NF-neither"),
    pytest.param((2, 5), 1, True, True, id="NF-batch2"),
]


@pytest.mark.parametrize(("shape", "axis", "center", "scale"), BN_CASES)
def test_batch_norm_training_gradients(shape, axis, center, scale):
    rng = np.random.default_rng(1)
    layer = built(cnnlab.BatchNormalization(axis=axis, center=center, scale=scale,
                                            dtype="float64"), shape[1:])
    for w in layer.trainable_weights:  # gamma and beta away from their 1 and 0
        w[...] = rng.standard_normal(w.shape)
    x = rng.normal(2.0, 3.0, shape)
    r = rng.standard_normal(shape)

    def loss():
        return np.sum(layer.forward(x, training=True) * r)

    layer.forward(x, training=True)
    dx = layer.backward(r)
    assert len(layer.grads) == len(layer.trainable_weights) == int(center) + int(scale)
    assert_grad_close(dx, numerical_gradient(loss, x), TOL, "BatchNormalization dx")
    for name, w, g in zip([n for n in layer.weight_names if n.startswith(("gamma", "beta"))],
                          layer.trainable_weights, layer.grads, strict=True):
        assert_grad_close(g, numerical_gradient(loss, w), TOL, f"BatchNormalization d{name}")


def test_batch_norm_backward_matches_its_formula():
    """The op's dx against the docstring's formula, written out independently."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3, 4, 2))
    gamma, beta = rng.standard_normal(2), rng.standard_normal(2)
    g = rng.standard_normal(x.shape)
    y, cache = bn_ops.batch_norm_forward(x, gamma, beta, 1e-3)
    dx, dgamma, dbeta = bn_ops.batch_norm_backward(g, cache)
    axes, m = (0, 1, 2), 5 * 3 * 4
    mu, var = x.mean(axis=axes), x.var(axis=axes)
    x_hat = (x - mu) / np.sqrt(var + 1e-3)
    np.testing.assert_allclose(y, gamma * x_hat + beta, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dbeta, g.sum(axis=axes), rtol=1e-12)
    np.testing.assert_allclose(dgamma, (g * x_hat).sum(axis=axes), rtol=1e-12)
    dx_hat = g * gamma
    expected = (m * dx_hat - dx_hat.sum(axis=axes) - x_hat * (dx_hat * x_hat).sum(axis=axes)) / (
        m * np.sqrt(var + 1e-3))
    np.testing.assert_allclose(dx, expected, rtol=1e-10, atol=1e-12)
    assert bn_ops.batch_norm_backward(g, cache, need_input_grad=False)[0] is None


@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("cls", [cnnlab.GlobalAveragePooling2D, cnnlab.GlobalMaxPooling2D])
def test_global_pooling_gradients(cls, keepdims):
    rng = np.random.default_rng(3)
    layer = built(cls(keepdims=keepdims, dtype="float64"), (4, 3, 5))
    x = rng.standard_normal((2, 4, 3, 5))
    r = rng.standard_normal((2, 1, 1, 5) if keepdims else (2, 5))

    def loss():
        return np.sum(layer.forward(x) * r)

    layer.forward(x, training=True)
    assert_grad_close(layer.backward(r), numerical_gradient(loss, x), TOL, cls.__name__)


def test_global_pooling_ops_inference_paths_agree():
    x = np.random.default_rng(8).standard_normal((3, 4, 5, 6)).astype(np.float32)
    out, arg = pool_ops.global_max_pool2d_forward(x)
    fast, none = pool_ops.global_max_pool2d_forward(x, need_argmax=False)
    assert none is None and np.array_equal(out, fast) and np.array_equal(out, x.max(axis=(1, 2)))
    assert np.array_equal(arg, x.reshape(3, 20, 6).argmax(axis=1))
    mean, shape = pool_ops.global_avg_pool2d_forward(x)
    assert mean.dtype == np.float32 and shape == x.shape
    np.testing.assert_allclose(mean, x.astype(np.float64).mean(axis=(1, 2)), rtol=1e-6)


@pytest.mark.parametrize("padding", [1, 0, (2, 1), ((0, 2), (3, 1)), [[1, 0], [0, 0]]])
def test_zero_padding_gradients(padding):
    rng = np.random.default_rng(4)
    layer = built(cnnlab.ZeroPadding2D(padding, dtype="float64"), (3, 4, 2))
    x = rng.standard_normal((2, 3, 4, 2))
    r = rng.standard_normal((2, *layer.output_shape))

    def loss():
        return np.sum(layer.forward(x) * r)

    layer.forward(x, training=True)
    assert_grad_close(layer.backward(r), numerical_gradient(loss, x), TOL, "ZeroPadding2D")


ACTIVATION_OPS = [
    pytest.param(act.leaky_relu, act.leaky_relu_backward, id="leaky_relu"),
    pytest.param(act.elu, act.elu_backward, id="elu"),
    pytest.param(act.gelu, act.gelu_backward, id="gelu"),
    pytest.param(lambda x, out=None: act.gelu(x, approximate=True),
                 lambda g, y, x: act.gelu_backward(g, y, x, approximate=True), id="gelu-tanh"),
    pytest.param(lambda x, out=None: act.leaky_relu(x, negative_slope=0.7),
                 lambda g, y, x: act.leaky_relu_backward(g, y, x, negative_slope=0.7),
                 id="leaky-0.7"),
    pytest.param(lambda x, out=None: act.elu(x, alpha=0.5),
                 lambda g, y, x: act.elu_backward(g, y, x, alpha=0.5), id="elu-0.5"),
]


@pytest.mark.parametrize(("fwd", "bwd"), ACTIVATION_OPS)
def test_new_activation_op_gradients(fwd, bwd):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 7)) * 3
    x[0, :3] = [-8.0, 8.0, -30.0]  # the tails
    r = rng.standard_normal(x.shape)

    def loss():
        return np.sum(fwd(x) * r)

    assert_grad_close(bwd(r, fwd(x), x), numerical_gradient(loss, x), TOL, "activation")


@pytest.mark.parametrize("name", ["leaky_relu", "elu", "gelu"])
def test_new_activations_in_every_layer_that_takes_one(name):
    """Activation(name), Dense(activation=name) and Conv2D(activation=name), float64."""
    rng = np.random.default_rng(6)
    cases = [
        (cnnlab.Activation(name, dtype="float64"), (3, 2, 4)),
        (cnnlab.Dense(4, activation=name, dtype="float64"), (6,)),
        (cnnlab.Conv2D(3, 2, padding="same", activation=name, dtype="float64"), (4, 3, 2)),
        (cnnlab.Conv2D(3, 2, activation=name, impl="reference", dtype="float64"), (4, 3, 2)),
    ]
    for layer, shape in cases:
        built(layer, shape)
        assert layer.activation == name
        if layer.weights:
            layer.weights[-1][...] = rng.standard_normal(layer.weights[-1].shape) * 0.3
        x = rng.standard_normal((2, *shape))
        r = rng.standard_normal((2, *layer.output_shape))

        def loss(layer=layer, x=x, r=r):
            return np.sum(layer.forward(x) * r)

        layer.forward(x, training=True)
        dx = layer.backward(r)
        assert_grad_close(dx, numerical_gradient(loss, x), TOL, f"{layer.kind} dx")
        for i, w in enumerate(layer.trainable_weights):
            assert_grad_close(layer.grads[i], numerical_gradient(loss, w), TOL,
                              f"{layer.kind} weight {i}")


class GradRecorder(cnnlab.optimizers.Optimizer):
    """An 'optimizer' that records the gradients it is handed and changes nothing."""

    def __init__(self):
        super().__init__(1.0)
        self.grads = None

    def step(self, params, grads):
        self.grads = [np.array(g, copy=True) for g in grads]


def test_whole_model_gradients_through_every_new_layer():
    """train_on_batch's gradients of every trainable weight, against finite differences
    of the training loss (BatchNormalization with batch statistics)."""
    f64 = {"dtype": "float64"}
    model = cnnlab.Sequential([
        cnnlab.ZeroPadding2D(((1, 0), (0, 1)), **f64),
        cnnlab.Conv2D(3, 2, activation="gelu", **f64),
        cnnlab.BatchNormalization(**f64),
        cnnlab.Conv2D(4, 2, padding="same", activation="elu", **f64),
        cnnlab.BatchNormalization(center=False, momentum=0.5, **f64),
        cnnlab.GlobalMaxPooling2D(keepdims=True, **f64),
        cnnlab.GlobalAveragePooling2D(**f64),
        cnnlab.Dense(5, activation="leaky_relu", **f64),
        cnnlab.BatchNormalization(scale=False, **f64),
        cnnlab.Dense(3, **f64),
        cnnlab.Activation("softmax", **f64),
    ], input_shape=(5, 4, 2), seed=3)
    recorder = GradRecorder()
    model.compile(optimizer=recorder)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((6, 5, 4, 2))
    y = np.array([0, 2, 1, 1, 0, 2])

    def loss():
        p = x
        for layer in model.layers:
            p = layer.forward(p, training=True)
        return -np.mean(np.log(p[np.arange(len(y)), y]))

    model.train_on_batch(x, y)
    params = [w for layer in model.layers for w in layer.trainable_weights]
    assert len(recorder.grads) == len(params) == 2 + 2 + 2 + 1 + 2 + 1 + 2
    for i, w in enumerate(params):
        assert_grad_close(recorder.grads[i], numerical_gradient(loss, w), TOL, f"weight {i}")


# ============================================================================ GELU's erf


def test_normal_cdf_against_math_erfc():
    x = np.concatenate([np.linspace(-40, 40, 8001), np.linspace(-4, 4, 8001),
                        [-1e-300, 0.0, 1e-8, 38.5, -38.5]])
    exact = np.array([0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    full = act.normal_cdf(x)
    assert np.abs(full - exact).max() < 5e-16
    left = (x < -1) & (exact > 1e-300)  # the left tail keeps its relative accuracy
    assert (np.abs(full - exact)[left] / exact[left]).max() < 1e-12
    float32_terms = act.normal_cdf(x, terms=14)
    assert np.abs(float32_terms - exact).max() < 1e-10
    # float32 inputs use the shorter expansion, still far below float32's resolution
    assert np.abs(act.normal_cdf(x.astype(np.float32)) - act.normal_cdf(
        x.astype(np.float32).astype(np.float64))).max() < 1e-10


def test_gelu_values_and_derivative():
    x = np.array([-3.0, -0.5, 0.0, 1.0, 6.0])
    y = act.gelu(x)
    exact = np.array([v * 0.5 * math.erfc(-v / math.sqrt(2)) for v in x])
    np.testing.assert_allclose(y, exact, rtol=1e-14, atol=1e-300)
    assert y.flags.c_contiguous and y.dtype == x.dtype
    deriv = [0.5 * math.erfc(-v / math.sqrt(2)) + v * math.exp(-v * v / 2) / math.sqrt(2 * math.pi)
             for v in x]
    np.testing.assert_allclose(act.gelu_backward(np.ones(5), y, x), deriv, rtol=1e-14)
    with pytest.raises(InvalidArgumentError, match="needs the activation's input"):
        act.gelu_backward(np.ones(5), y)
    # blocks (GELU_BLOCK elements) and strided inputs give the same numbers
    big = np.random.default_rng(9).standard_normal((3 * act.GELU_BLOCK + 5, 2)).T[:, ::3]
    yb = act.gelu(big)
    assert yb.shape == big.shape and yb.flags.c_contiguous
    np.testing.assert_array_equal(yb.ravel(), act.gelu(big.ravel().copy()))
    np.testing.assert_array_equal(act.gelu_backward(np.ones_like(big), yb, big).ravel(),
                                  act.gelu_backward(np.ones(big.size), None, big.ravel()))
    # the input is left alone even when asked to work in place
    z = np.linspace(-2, 2, 6, dtype=np.float32)
    before = z.copy()
    act.gelu(z, out=z)
    assert np.array_equal(z, before)


def test_unknown_activation_lists_the_new_names():
    with pytest.raises(InvalidArgumentError, match="elu, gelu, leaky_relu, linear"):
        cnnlab.Dense(3, activation="swish")


# ============================================================================ PyTorch oracle


def close(actual, expected, what="", rtol=1e-5):
    """``|a - e| <= rtol * max|e| + rtol * |e|`` elementwise (``rtol`` of the scale)."""
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-12)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def to_torch_layout(x):
    """NHWC -> NCHW (and (N, F) unchanged)."""
    return x.permute(0, 3, 1, 2) if x.dim() == 4 else x


def from_torch_layout(x):
    return x.permute(0, 2, 3, 1) if x.dim() == 4 else x


BN_TORCH_CASES = [
    pytest.param((8, 5, 6, 4), True, True, id="BatchNorm2d"),
    pytest.param((8, 5, 6, 4), False, False, id="BatchNorm2d-affine-off"),
    pytest.param((3, 7, 7, 16), True, False, id="BatchNorm2d-no-scale"),
    pytest.param((32, 10), True, True, id="BatchNorm1d"),
    pytest.param((5, 3), False, True, id="BatchNorm1d-no-center"),
]


@needs_torch
@pytest.mark.parametrize(("shape", "center", "scale"), BN_TORCH_CASES)
def test_batch_norm_training_matches_torch(shape, center, scale):
    rng = np.random.default_rng(11)
    c = shape[-1]
    layer = built(cnnlab.BatchNormalization(momentum=0.9, epsilon=1e-3, center=center,
                                            scale=scale), shape[1:])
    gamma = rng.uniform(0.5, 2.0, c).astype(np.float32)
    beta = rng.standard_normal(c).astype(np.float32)
    mean0 = rng.standard_normal(c).astype(np.float32)
    var0 = rng.uniform(0.5, 2.0, c).astype(np.float32)
    values = {"gamma": gamma, "beta": beta, "moving_mean": mean0, "moving_variance": var0}
    layer.set_weights([values[n] for n in layer.weight_names])
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    g = rng.standard_normal(shape).astype(np.float32)

    y = layer.forward(x, training=True)
    dx = layer.backward(g)

    xt = t64(x, grad=True)
    wt = t64(gamma, grad=True) if scale else None
    bt = t64(beta, grad=True) if center else None
    running_mean, running_var = t64(mean0), t64(var0)
    yt = F.batch_norm(to_torch_layout(xt), running_mean, running_var, wt, bt, training=True,
                      momentum=1 - 0.9, eps=1e-3)  # torch's momentum is 1 - Keras's
    yt = from_torch_layout(yt)
    yt.backward(t64(g))
    close(y, yt, "y")
    close(dx, xt.grad, "dx")
    grads = dict(zip([n for n in layer.weight_names if n in ("gamma", "beta")], layer.grads,
                     strict=True))
    if scale:
        close(grads["gamma"], wt.grad, "dgamma")
    if center:
        close(grads["beta"], bt.grad, "dbeta")
    # moving mean: the same exponential average in both
    close(layer.moving_mean, running_mean, "moving_mean")
    # moving variance: torch averages the unbiased variance (m - 1), Keras the biased one (m)
    m = x.size // c
    torch_biased = (running_var.numpy() - 0.9 * var0) * (m - 1) / m + 0.9 * var0
    close(layer.moving_variance, torch_biased, "moving_variance")
    # and directly: the documented formula with the biased batch variance
    axes = tuple(range(x.ndim - 1))
    x64 = x.astype(np.float64)
    close(layer.moving_variance, 0.9 * var0 + 0.1 * x64.var(axis=axes), "moving_variance formula")
    close(layer.moving_mean, 0.9 * mean0 + 0.1 * x64.mean(axis=axes), "moving_mean formula")


@needs_torch
@pytest.mark.parametrize(("shape", "center", "scale"), BN_TORCH_CASES)
def test_batch_norm_inference_matches_torch_eval(shape, center, scale):
    rng = np.random.default_rng(12)
    c = shape[-1]
    layer = built(cnnlab.BatchNormalization(center=center, scale=scale), shape[1:])
    values = {"gamma": rng.uniform(0.5, 2.0, c), "beta": rng.standard_normal(c),
              "moving_mean": rng.standard_normal(c), "moving_variance": rng.uniform(0.1, 3.0, c)}
    layer.set_weights([values[n].astype(np.float32) for n in layer.weight_names])
    stored = [w.copy() for w in layer.weights]
    x = (rng.standard_normal(shape) * 2).astype(np.float32)
    y = layer.forward(x, training=False)
    w = {n: t64(v) for n, v in zip(layer.weight_names, layer.weights, strict=True)}
    yt = F.batch_norm(to_torch_layout(t64(x)), w["moving_mean"], w["moving_variance"],
                      w.get("gamma"), w.get("beta"), training=False, eps=1e-3)
    close(y, from_torch_layout(yt), "y")
    for a, b in zip(stored, layer.weights, strict=True):
        assert np.array_equal(a, b)  # inference leaves the moving statistics alone


def test_batch_norm_large_float32_batch_statistics_stay_accurate():
    """A float32 batch of 2 * 10^5 values per channel, with a large mean: the sums
    accumulate in float64, so the statistics keep float32's precision."""
    rng = np.random.default_rng(13)
    x = (rng.standard_normal((128, 40, 40, 3)) * 0.01 + 1000).astype(np.float32)
    _, cache = bn_ops.batch_norm_forward(x, None, None, 1e-3)
    x64 = x.astype(np.float64)
    np.testing.assert_allclose(cache.mean, x64.mean(axis=(0, 1, 2)), rtol=1e-7)
    np.testing.assert_allclose(cache.var, x64.var(axis=(0, 1, 2)), rtol=1e-3)


@needs_torch
@pytest.mark.parametrize("shape", [(3, 5, 7, 4), (2, 1, 1, 3), (1, 8, 3, 2)])
def test_global_pooling_matches_torch_adaptive_pooling(shape):
    rng = np.random.default_rng(14)
    x = rng.standard_normal(shape).astype(np.float32)
    g = rng.standard_normal((shape[0], shape[-1])).astype(np.float32)
    for cls, torch_pool in [(cnnlab.GlobalAveragePooling2D, F.adaptive_avg_pool2d),
                            (cnnlab.GlobalMaxPooling2D, F.adaptive_max_pool2d)]:
        layer = built(cls(), shape[1:])
        y = layer.forward(x, training=True)
        dx = layer.backward(g)
        xt = t64(x, grad=True)
        yt = torch_pool(to_torch_layout(xt), 1)[:, :, 0, 0]
        yt.backward(t64(g))
        assert y.dtype == np.float32 and dx.dtype == np.float32
        close(y, yt, cls.__name__, rtol=1e-6)
        close(dx, xt.grad, cls.__name__ + " dx", rtol=1e-6)


def test_global_max_pooling_ties_go_to_the_first_maximum_row_major():
    """The documented rule of MaxPooling2D: the first maximum in row-major order."""
    x = np.zeros((1, 3, 3, 2), np.float32)
    x[0, 1, 0, 0] = x[0, 2, 2, 0] = x[0, 0, 2, 0] = 5.0  # channel 0: three tied maxima
    layer = built(cnnlab.GlobalMaxPooling2D(), (3, 3, 2))  # channel 1: all zero, all tied
    assert layer.forward(x, training=True).tolist() == [[5.0, 0.0]]
    dx = layer.backward(np.array([[1.0, 2.0]], np.float32))
    expected = np.zeros_like(x)
    expected[0, 0, 2, 0] = 1.0  # row 0 comes first
    expected[0, 0, 0, 1] = 2.0  # the top-left pixel
    assert np.array_equal(dx, expected)
    # the same rule as MaxPooling2D with one window over the map
    pool = built(cnnlab.MaxPooling2D(3), (3, 3, 2))
    pool.forward(x, training=True)
    assert np.array_equal(pool.backward(np.array([[[[1.0, 2.0]]]], np.float32)), expected)


@needs_torch
@pytest.mark.parametrize("padding", [1, (2, 0), ((0, 3), (1, 2))])
def test_zero_padding_matches_torch_pad(padding):
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 4, 5, 3)).astype(np.float32)
    layer = built(cnnlab.ZeroPadding2D(padding), (4, 5, 3))
    y = layer.forward(x, training=True)
    g = rng.standard_normal(y.shape).astype(np.float32)
    dx = layer.backward(g)
    (t, b), (left, r) = layer.padding
    xt = t64(x, grad=True)
    yt = from_torch_layout(F.pad(to_torch_layout(xt), (left, r, t, b)))
    yt.backward(t64(g))
    assert np.array_equal(y, yt.detach().numpy().astype(np.float32))
    assert np.array_equal(dx, xt.grad.numpy().astype(np.float32))


ACTIVATION_TORCH = [
    pytest.param("leaky_relu", lambda t: F.leaky_relu(t, negative_slope=0.2), id="leaky_relu"),
    pytest.param("elu", lambda t: F.elu(t), id="elu"),
    pytest.param("gelu", lambda t: F.gelu(t, approximate="none"), id="gelu"),
]


@needs_torch
@pytest.mark.parametrize(("name", "torch_fn"), ACTIVATION_TORCH)
def test_new_activations_match_torch_float32(name, torch_fn):
    """Forward and backward within 1e-6 of PyTorch, both in float32 and against
    PyTorch in float64 (from the same float32 numbers)."""
    rng = np.random.default_rng(16)
    x = (rng.standard_normal(20000) * 3).astype(np.float32)
    x[:6] = [0.0, -0.0, 1e-30, -1e-30, -12.0, 9.0]
    g = rng.uniform(-1, 1, x.shape).astype(np.float32)
    _, fwd, bwd = act.get_activation(name)
    y = fwd(x)
    dx = bwd(g, y, x)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    for dtype in (torch.float32, torch.float64):
        xt = torch.tensor(x, dtype=dtype, requires_grad=True)
        yt = torch_fn(xt)
        yt.backward(torch.tensor(g, dtype=dtype))
        np.testing.assert_allclose(y, yt.detach().double().numpy(), rtol=1e-6, atol=1e-6,
                                   err_msg=f"{name} vs torch {dtype}")
        np.testing.assert_allclose(dx, xt.grad.double().numpy(), rtol=1e-6, atol=1e-6,
                                   err_msg=f"{name} backward vs torch {dtype}")


@needs_torch
def test_gelu_tanh_approximation_matches_torch():
    rng = np.random.default_rng(17)
    x = (rng.standard_normal(5000) * 3).astype(np.float32)
    g = rng.uniform(-1, 1, x.shape).astype(np.float32)
    y = act.gelu(x, approximate=True)
    xt = torch.tensor(x, requires_grad=True)
    yt = F.gelu(xt, approximate="tanh")
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(act.gelu_backward(g, y, x, approximate=True), xt.grad.numpy(),
                               rtol=1e-6, atol=1e-6)


# ============================================================================ Keras semantics


def test_batch_norm_weights_in_keras_order_and_shapes():
    layer = built(cnnlab.BatchNormalization(), (5, 5, 7))
    assert layer.weight_names == ("gamma", "beta", "moving_mean", "moving_variance")
    assert [w.shape for w in layer.weights] == [(7,)] * 4
    assert [w.dtype for w in layer.weights] == [np.float32] * 4
    for w, v in zip(layer.weights, [1, 0, 0, 1], strict=True):
        assert np.array_equal(w, np.full(7, v, np.float32))
    assert layer.trainable_weights[0] is layer.weights[0]
    assert layer.trainable_weights[1] is layer.weights[1]
    assert len(layer.trainable_weights) == len(layer.grads) == 2
    assert (layer.count_params(), layer.count_trainable_params()) == (28, 14)
    expected = {(True, True): ("gamma", "beta", "moving_mean", "moving_variance"),
                (False, True): ("gamma", "moving_mean", "moving_variance"),
                (True, False): ("beta", "moving_mean", "moving_variance"),
                (False, False): ("moving_mean", "moving_variance")}
    for (center, scale), names in expected.items():
        layer = built(cnnlab.BatchNormalization(center=center, scale=scale), (9,))
        assert layer.weight_names == names
        assert len(layer.grads) == len(layer.trainable_weights) == int(center) + int(scale)
    # another axis: the channels are that axis's length
    assert built(cnnlab.BatchNormalization(axis=1), (5, 4, 3)).weights[0].shape == (5,)
    assert built(cnnlab.BatchNormalization(axis=-2), (5, 4, 3)).weights[0].shape == (4,)


def test_batch_norm_keras_defaults_and_config_round_trip():
    layer = cnnlab.BatchNormalization()
    assert (layer.axis, layer.momentum, layer.epsilon, layer.center, layer.scale) == (
        -1, 0.99, 1e-3, True, True)
    for layer in [cnnlab.BatchNormalization(axis=1, momentum=0.9, epsilon=1e-5, center=False,
                                            scale=False, name="bn", dtype="float64"),
                  cnnlab.GlobalAveragePooling2D(keepdims=True, name="gap"),
                  cnnlab.GlobalMaxPooling2D(data_format="channels_last"),
                  cnnlab.ZeroPadding2D(((1, 2), (3, 4)), name="pad")]:
        config = layer.get_config()
        again = type(layer)(**config)
        assert again.get_config() == config
        assert again.dtype == layer.dtype


@pytest.mark.parametrize(("make", "match"), [
    (lambda: cnnlab.BatchNormalization(momentum=1.5), "momentum must be in"),
    (lambda: cnnlab.BatchNormalization(momentum="0.9"), "momentum must be a finite number"),
    (lambda: cnnlab.BatchNormalization(epsilon=0), "epsilon must be positive"),
    (lambda: cnnlab.BatchNormalization(epsilon=float("nan")), "epsilon must be a finite"),
    (lambda: cnnlab.BatchNormalization(axis=1.0), "axis must be an int"),
    (lambda: cnnlab.BatchNormalization(axis=True), "axis must be an int"),
    (lambda: cnnlab.BatchNormalization(center="yes"), "center must be True or False"),
    (lambda: cnnlab.BatchNormalization(scale=None), "scale must be True or False"),
    (lambda: cnnlab.ZeroPadding2D(-1), "non-negative ints"),
    (lambda: cnnlab.ZeroPadding2D((1, 2, 3)), "padding must be an int, a pair"),
    (lambda: cnnlab.ZeroPadding2D(((1, 2), 3)), "padding must be an int, a pair"),
    (lambda: cnnlab.ZeroPadding2D(((1, 2), (3,))), "padding must be an int, a pair"),
    (lambda: cnnlab.ZeroPadding2D(1.5), "padding must be an int, a pair"),
    (lambda: cnnlab.ZeroPadding2D(data_format="channels_first"), "data_format must be"),
    (lambda: cnnlab.GlobalAveragePooling2D(data_format="channels_first"), "data_format must"),
    (lambda: cnnlab.GlobalMaxPooling2D(keepdims=1), "keepdims must be True or False"),
])
def test_bad_arguments_fail_early_naming_the_argument(make, match):
    with pytest.raises(InvalidArgumentError, match=match):
        make()


def test_bad_axes_and_shapes_name_the_layer():
    with pytest.raises(ShapeError, match="axis 0 does not name a non-batch axis"):
        cnnlab.Sequential([cnnlab.BatchNormalization(axis=0)], input_shape=(4, 4, 2))
    with pytest.raises(ShapeError, match="axis 4 does not name"):
        cnnlab.Sequential([cnnlab.BatchNormalization(axis=4)], input_shape=(4, 4, 2))
    with pytest.raises(ShapeError, match="axis -3 does not name"):
        cnnlab.Sequential([cnnlab.BatchNormalization(axis=-3)], input_shape=(4,))
    for layer in [cnnlab.GlobalMaxPooling2D(), cnnlab.ZeroPadding2D()]:
        with pytest.raises(ShapeError, match=r"expects inputs of shape \(H, W, C\)"):
            cnnlab.Sequential([cnnlab.Flatten(), layer], input_shape=(4, 4, 2))


def test_output_shapes():
    model = cnnlab.Sequential([
        cnnlab.ZeroPadding2D((1, 2)), cnnlab.Conv2D(6, 3), cnnlab.BatchNormalization(),
        cnnlab.GlobalAveragePooling2D(keepdims=True), cnnlab.GlobalMaxPooling2D(),
        cnnlab.BatchNormalization(), cnnlab.Dense(3), cnnlab.Activation("softmax")],
        input_shape=(5, 4, 1), seed=0)
    assert [layer.output_shape for layer in model.layers] == [
        (7, 8, 1), (5, 6, 6), (5, 6, 6), (1, 1, 6), (6,), (6,), (3,), (3,)]
    assert model.predict(np.zeros((2, 5, 4, 1), np.float32)).shape == (2, 3)


def bn_model(seed=0, optimizer=None):
    model = cnnlab.Sequential([
        cnnlab.Conv2D(4, 3, padding="same"),
        cnnlab.BatchNormalization(momentum=0.9),
        cnnlab.Activation("gelu"),
        cnnlab.ZeroPadding2D(1),
        cnnlab.Conv2D(5, 3, activation="leaky_relu"),
        cnnlab.GlobalAveragePooling2D(),
        cnnlab.BatchNormalization(),
        cnnlab.Dense(10, activation="elu"),
        cnnlab.Dense(10),
        cnnlab.Activation("softmax"),
    ], input_shape=(8, 8, 1), seed=seed)
    model.compile(optimizer or "adam")
    return model


def small_data(n=64):
    rng = np.random.default_rng(1)
    return rng.random((n, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, n)


def test_one_sgd_step_moving_stats_follow_keras_and_the_optimizer_skips_them():
    model = bn_model(optimizer=cnnlab.SGD(0.1))
    bn = model.layers[1]
    x, y = small_data(16)
    before = {n: w.copy() for n, w in zip(bn.weight_names, bn.weights, strict=True)}
    ids = [id(w) for w in bn.weights]
    z = model.layers[0].forward(x, training=False).astype(np.float64)  # the BN input
    model.train_on_batch(x, y)
    assert [id(w) for w in bn.weights] == ids  # updated in place
    mean, var = z.mean(axis=(0, 1, 2)), z.var(axis=(0, 1, 2))  # biased variance
    np.testing.assert_allclose(bn.moving_mean, 0.9 * before["moving_mean"] + 0.1 * mean,
                               rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(bn.moving_variance,
                               0.9 * before["moving_variance"] + 0.1 * var, rtol=1e-5)
    dgamma, dbeta = bn.grads
    assert np.abs(dgamma).max() > 0 and np.abs(dbeta).max() > 0
    lr = np.float32(0.1)
    assert np.array_equal(bn.gamma, before["gamma"] - lr * dgamma)
    assert np.array_equal(bn.beta, before["beta"] - lr * dbeta)


def test_moving_stats_change_only_in_training():
    model = bn_model()
    x, y = small_data(32)
    snapshot = [w.copy() for w in model.get_weights()]
    model.predict(x)
    model.evaluate(x, y)
    model.feature_maps(x[:2])
    for a, b in zip(snapshot, model.get_weights(), strict=True):
        assert np.array_equal(a, b)
    model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    for layer in (model.layers[1], model.layers[6]):
        assert not np.array_equal(layer.moving_mean, 0)
        assert not np.array_equal(layer.moving_variance, 1)


def test_summary_counts_the_moving_statistics_as_non_trainable():
    model = bn_model()
    text = model.summary(print_fn=None)
    assert "batch_normalization (BatchNormalization)" in text
    assert "batch_normalization_1 (BatchNormalization)" in text
    total = model.count_params()
    non_trainable = 2 * 4 + 2 * 5
    assert f"Total params: {total:,}" in text
    assert f"Trainable params: {total - non_trainable:,}" in text
    assert f"Non-trainable params: {non_trainable:,}" in text
    assert "zero_padding2d (ZeroPadding2D)" in text
    assert "global_average_pooling2d (GlobalAveragePooling2D)" in text


def test_model_file_round_trip_predicts_bit_for_bit(tmp_path):
    model = bn_model()
    x, y = small_data()
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)
    path = cnnlab.save_model(model, tmp_path / "bn.safetensors")
    loaded = cnnlab.load_model(path)
    assert loaded.get_config() == model.get_config()
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert np.array_equal(loaded.predict(x), model.predict(x))
    # and from the JSON architecture alone, every new layer type is known
    again = cnnlab.model_from_json(model.to_json())
    assert [layer.kind for layer in again.layers] == [layer.kind for layer in model.layers]


def test_model_spec_with_an_unknown_key_names_it():
    spec = {"input_shape": [4, 4, 1], "layers": [
        {"class_name": "BatchNormalization", "config": {"momentom": 0.9}}]}
    with pytest.raises(SpecError, match="did you mean 'momentum'"):
        cnnlab.model_from_json(spec)


def test_checkpointed_resume_matches_an_uninterrupted_run(tmp_path):
    x, y = small_data()
    ref = bn_model()
    ref.fit(x, y, epochs=3, batch_size=16, verbose=0)

    class Crash(Exception):
        pass

    class CrashAt(cnnlab.Callback):
        def on_batch_end(self, batch, logs=None):
            if self.model.optimizer.iterations == 7:  # in the middle of the second epoch
                raise Crash

    first = bn_model()
    with pytest.raises(Crash):
        first.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[CrashAt()],
                  checkpoint_dir=tmp_path, checkpoint_every=1)
    # a different initialisation and untouched moving statistics: all must come
    # from the checkpoint
    second = bn_model(seed=123)
    second.fit(x, y, epochs=3, batch_size=16, verbose=0, checkpoint_dir=tmp_path, resume=True)
    names = [f"{layer.name}/{n}" for layer in ref.layers for n in layer.weight_names]
    assert any(n.endswith("moving_variance") for n in names)
    for name, a, b in zip(names, ref.get_weights(), second.get_weights(), strict=True):
        assert np.array_equal(a, b), f"{name} differs after resume"


def test_batch_norm_first_layer_trains_and_backward_needs_a_training_forward():
    model = cnnlab.Sequential([cnnlab.BatchNormalization(), cnnlab.Flatten(), cnnlab.Dense(10),
                               cnnlab.Activation("softmax")], input_shape=(8, 8, 1), seed=0)
    model.compile(cnnlab.SGD(0.1))
    x, y = small_data(16)
    model.train_on_batch(x, y)  # the first layer skips its input gradient
    bn = model.layers[0]
    assert bn.need_input_grad is False and not np.array_equal(bn.gamma, 1)
    np.testing.assert_allclose(bn.moving_mean, 0.01 * x.astype(np.float64).mean(), rtol=1e-5)
    for layer in [bn, built(cnnlab.GlobalMaxPooling2D(), (2, 2, 1)),
                  built(cnnlab.GlobalAveragePooling2D(), (2, 2, 1)),
                  built(cnnlab.ZeroPadding2D(), (2, 2, 1))]:
        layer.forward(np.zeros((1, *layer.input_shape), np.float32), training=False)
        with pytest.raises(RuntimeError, match="needs a forward"):
            layer.backward(np.zeros((1, *layer.output_shape), np.float32))
