"""cnnlab.explain.backprop: every gradient it keeps, against float64 finite differences
and PyTorch autograd on the same weights."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_grad_close, numerical_gradient

import cnnlab
from cnnlab.errors import InvalidArgumentError
from cnnlab.explain import backprop


def small_model(end: str = "dense-softmax", dtype: str = "float64", seed: int = 0):
    layers = [
        cnnlab.Conv2D(3, 2, padding="same", activation="relu", dtype=dtype),
        cnnlab.BatchNormalization(dtype=dtype),
        cnnlab.MaxPooling2D(2, dtype=dtype),
        cnnlab.Conv2D(4, 3, padding="valid", activation="tanh", dtype=dtype),
        cnnlab.Dropout(0.5, dtype=dtype),
        cnnlab.Flatten(dtype=dtype),
    ]
    if end == "dense-softmax":
        layers.append(cnnlab.Dense(5, activation="softmax", dtype=dtype))
    elif end == "activation-softmax":
        layers += [cnnlab.Dense(5, dtype=dtype), cnnlab.Activation("softmax", dtype=dtype)]
    else:
        layers.append(cnnlab.Dense(5, activation="sigmoid", dtype=dtype))
    model = cnnlab.Sequential(layers, input_shape=(8, 8, 2), seed=seed)
    rng = np.random.default_rng(seed + 1)
    bn = model.layers[1]
    bn.moving_mean[...] = rng.normal(size=bn.moving_mean.shape)
    bn.moving_variance[...] = rng.uniform(0.5, 2.0, size=bn.moving_variance.shape)
    bn.gamma[...] = rng.normal(size=bn.gamma.shape)
    bn.beta[...] = rng.normal(size=bn.beta.shape)
    return model


def objective_fn(model, x, labels, objective):
    def f():
        p = model.predict(x).astype(np.float64)
        rows = np.arange(len(x))
        if objective == "loss":
            return float(-np.log(p[rows, labels]).mean())
        if objective == "probability":
            return float(p[rows, labels].sum())
    return f


@pytest.mark.parametrize("end", ["dense-softmax", "activation-softmax", "sigmoid"])
@pytest.mark.parametrize("objective", ["loss", "probability"])
def test_input_and_weight_gradients_match_finite_differences(end, objective):
    model = small_model(end)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 8, 8, 2))
    labels = np.array([0, 3, 4])
    trace = backprop(model, x, labels, objective)
    f = objective_fn(model, x, labels, objective)
    assert trace.value == pytest.approx(f(), rel=1e-12)
    assert_grad_close(trace.input_grad, numerical_gradient(f, x), what="dx")
    for i, layer in enumerate(model.layers):
        for w, g in zip(layer.trainable_weights, trace.weight_grads[i], strict=True):
            assert_grad_close(g, numerical_gradient(f, w), what=f"{layer.name} weight")
    # the model itself is untouched: the pass ran on copies of its layers
    # (rounding differs: BatchNormalization's inference op and the fused softmax)
    np.testing.assert_allclose(model.predict(x), trace.probabilities, rtol=1e-12, atol=1e-14)


def test_the_logit_objective_matches_pytorch_and_needs_a_softmax_end():
    torch = pytest.importorskip("torch")
    model = small_model("dense-softmax")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2, 8, 8, 2))
    labels = np.array([1, 2])
    trace = backprop(model, x, labels, "logit")

    conv1, bn, _, conv2, _, _, dense = model.layers
    t = lambda a: torch.tensor(np.asarray(a), dtype=torch.float64)  # noqa: E731
    xt = t(x).permute(0, 3, 1, 2).requires_grad_(True)
    h = torch.nn.functional.pad(xt, (0, 1, 0, 1))  # Keras 'same' for a 2x2 kernel
    h = torch.relu(torch.nn.functional.conv2d(h, t(conv1.kernel).permute(3, 2, 0, 1),
                                              t(conv1.bias)))
    h = (h - t(bn.moving_mean)[:, None, None]) / torch.sqrt(
        t(bn.moving_variance)[:, None, None] + bn.epsilon)
    h = h * t(bn.gamma)[:, None, None] + t(bn.beta)[:, None, None]
    h = torch.nn.functional.max_pool2d(h, 2)
    h = torch.tanh(torch.nn.functional.conv2d(h, t(conv2.kernel).permute(3, 2, 0, 1),
                                              t(conv2.bias)))
    h = h.permute(0, 2, 3, 1).reshape(2, -1)
    z = h @ t(dense.weights[0]) + t(dense.weights[1])
    score = z[torch.arange(2), torch.tensor(labels)].sum()
    score.backward()
    assert trace.value == pytest.approx(float(score.detach()), rel=1e-12)
    np.testing.assert_allclose(trace.logits, z.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(trace.input_grad, xt.grad.permute(0, 2, 3, 1).numpy(),
                               rtol=1e-10, atol=1e-12)
    with pytest.raises(InvalidArgumentError, match="ends in softmax"):
        backprop(small_model("sigmoid"), x, labels, "logit")


def test_layer_by_layer_gradients_chain():
    model = small_model("activation-softmax")
    x = np.random.default_rng(3).normal(size=(2, 8, 8, 2))
    trace = backprop(model, x, 1)
    assert trace.names == [layer.name for layer in model.layers]
    for i in range(1, len(model.layers)):
        np.testing.assert_array_equal(trace.input_grads[i], trace.output_grads[i - 1])
        np.testing.assert_array_equal(trace.outputs[i - 1], trace.inputs[i])
        assert trace.output_grads[i].shape == trace.outputs[i].shape
    assert trace.index(model.layers[3].name) == 3
    with pytest.raises(InvalidArgumentError, match="no layer named"):
        trace.index("nope")


def test_bad_arguments_are_named():
    model = small_model()
    x = np.zeros((2, 8, 8, 2))
    with pytest.raises(InvalidArgumentError, match="objective"):
        backprop(model, x, 0, "margin")
    with pytest.raises(InvalidArgumentError, match="0..4"):
        backprop(model, x, [0, 5])
    with pytest.raises(InvalidArgumentError, match="2 integer"):
        backprop(model, x, [0, 1, 2])


def test_the_shipped_model_saliency_is_finite_and_does_not_touch_it():
    from cnnlab.pretrained import load_pretrained
    model = load_pretrained()
    before = [w.copy() for w in model.get_weights()]
    x = np.random.default_rng(0).integers(0, 256, size=(2, 28, 28, 1), dtype=np.uint8)
    trace = backprop(model, x, [3, 8])
    assert np.isfinite(trace.input_grad).all() and np.abs(trace.input_grad).sum() > 0
    for a, b in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
