"""Regularization: L2 kernel penalties, AdamW's decoupled weight decay, label smoothing.

Oracles: float64 central finite differences of the whole loss (cross-entropy
plus penalties), PyTorch (``torch.optim.SGD(weight_decay=2 * l2)``,
``torch.optim.AdamW``, ``F.cross_entropy(label_smoothing=s)``), and Keras's
formulas written out directly in float64.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_grad_close, numerical_gradient

import cnnlab
from cnnlab import L2, AdamW, regularizers
from cnnlab.errors import InvalidArgumentError, SpecError
from cnnlab.layers import Activation, Conv2D, Dense, Flatten
from cnnlab.ops.activations import get_activation
from cnnlab.ops.losses import categorical_cross_entropy, softmax_cross_entropy
from cnnlab.optimizers import Adam, Optimizer, get_optimizer
from cnnlab.training import regularization_loss, train_step

torch = pytest.importorskip("torch")
F = torch.nn.functional


class GradientRecorder(Optimizer):
    """An optimizer that only keeps a copy of the gradients it is given."""

    def __init__(self) -> None:
        super().__init__(1.0)
        self.grads: list[np.ndarray] = []

    def step(self, params, grads):
        self.grads = [np.array(g, copy=True) for g in grads]


def small_model(l2_conv=0.05, l2_dense=0.02, dtype="float64", seed=0):
    """Conv2D(tanh) -> Flatten -> Dense -> softmax, both kernels penalised."""
    model = cnnlab.Sequential(
        [Conv2D(3, 3, activation="tanh", kernel_regularizer=L2(l2_conv), dtype=dtype),
         Flatten(dtype=dtype), Dense(4, kernel_regularizer=L2(l2_dense), dtype=dtype),
         Activation("softmax", dtype=dtype)],
        input_shape=(6, 6, 2), seed=seed,
    )
    model.compile(optimizer=GradientRecorder())
    return model


def data(n=5, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 6, 6, 2)).astype(dtype), rng.integers(0, 4, n)


# --------------------------------------------------------------------------- L2
def test_l2_value_gradient_and_names():
    w = np.arange(6, dtype=np.float32).reshape(2, 3)
    reg = L2(0.5)
    assert reg(w) == 0.5 * 55
    np.testing.assert_array_equal(reg.gradient(w), w)  # 2 * 0.5 * w
    assert reg.gradient(w).dtype == np.float32
    assert regularizers.get("l2") == L2(0.01) and L2(None).l2 == 0.01
    assert regularizers.get({"class_name": "L2", "config": {"l2": 0.3}}) == L2(0.3)
    keras_form = {"module": "keras.regularizers", "class_name": "L2",
                  "config": {"l2": 0.3}, "registered_name": None}
    assert regularizers.get(keras_form) == L2(0.3)
    assert L2(0.3).serialize() == {"class_name": "L2", "config": {"l2": 0.3}}
    for bad in ("l1", {"class_name": "L1", "config": {}}, {"class_name": "L2", "config": {"x": 1}},
                3.0):
        with pytest.raises(InvalidArgumentError):
            regularizers.get(bad)
    for bad in (-0.1, float("nan"), True):
        with pytest.raises(InvalidArgumentError, match="l2"):
            L2(bad)
    with pytest.raises(InvalidArgumentError, match="Dense: kernel_regularizer"):
        Dense(3, kernel_regularizer="l3")


def test_the_penalty_enters_the_loss_and_its_gradient_the_kernels():
    """train_step's loss and gradients against float64 finite differences of evaluate()."""
    model = small_model()
    x, y = data()
    loss, _ = train_step(model, x, y)
    grads = model.optimizer.grads
    conv, dense = model.layers[0], model.layers[2]
    penalty = 0.05 * np.sum(conv.weights[0]**2) + 0.02 * np.sum(dense.weights[0]**2)
    assert regularization_loss(model.layers) == pytest.approx(penalty, rel=1e-14)
    ce, _ = softmax_cross_entropy(model._forward(x, model.layers[:-1]), y)
    assert loss == pytest.approx(ce + penalty, rel=1e-14)
    assert model.evaluate(x, y)[0] == pytest.approx(loss, rel=1e-14)  # Keras: evaluate too
    params = [w for layer in model.layers for w in layer.trainable_weights]
    for p, g in zip(params, grads, strict=True):
        numeric = numerical_gradient(lambda: model.evaluate(x, y)[0], p)
        assert_grad_close(g, numeric, tol=1e-7)


def test_the_penalty_gradient_is_exactly_two_l2_kernel():
    model = small_model()
    x, y = data()
    train_step(model, x, y)
    with_reg = model.optimizer.grads
    conv, dense = model.layers[0], model.layers[2]
    conv.kernel_regularizer = dense.kernel_regularizer = None
    train_step(model, x, y)
    without = model.optimizer.grads
    np.testing.assert_allclose(with_reg[0] - without[0], 2 * 0.05 * conv.weights[0],
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(with_reg[2] - without[2], 2 * 0.02 * dense.weights[0],
                               rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(with_reg[1], without[1])  # biases are not penalised


def test_sgd_with_l2_matches_torch_weight_decay():
    """Keras's L2 penalty under SGD is torch's weight_decay = 2 * l2 on the kernel."""
    l2, lr = 0.01, 0.1
    rng = np.random.default_rng(3)
    x = rng.standard_normal((16, 12)).astype(np.float32)
    y = rng.integers(0, 5, 16)
    model = cnnlab.Sequential([Dense(5, kernel_regularizer=L2(l2)), Activation("softmax")],
                              input_shape=(12,), seed=0)
    model.compile(optimizer=cnnlab.SGD(lr))
    kernel, bias = (torch.tensor(w.copy(), requires_grad=True) for w in model.get_weights())
    opt = torch.optim.SGD([{"params": [kernel], "weight_decay": 2 * l2},
                           {"params": [bias], "weight_decay": 0.0}], lr=lr)
    for _ in range(5):
        loss, _ = train_step(model, x, y)
        opt.zero_grad()
        ce = F.cross_entropy(torch.tensor(x) @ kernel + bias, torch.tensor(y))
        total = ce + l2 * (kernel**2).sum()
        total.backward()
        assert loss == pytest.approx(float(total.detach()), abs=2e-6)
        kernel.grad -= 2 * l2 * kernel.detach()  # leave the penalty to weight_decay
        opt.step()
    np.testing.assert_allclose(model.layers[0].weights[0], kernel.detach().numpy(), atol=2e-6)
    np.testing.assert_allclose(model.layers[0].weights[1], bias.detach().numpy(), atol=2e-6)


def test_fit_reports_the_penalty_in_loss_and_val_loss():
    model = small_model(dtype="float64")
    model.compile(optimizer=cnnlab.SGD(0.01))
    x, y = data(8)
    before = model.evaluate(x, y)[0]
    history = model.fit(x, y, epochs=1, batch_size=8, verbose=0, validation_data=(x, y))
    assert history.history["loss"][0] == pytest.approx(before, rel=1e-14)
    assert history.history["val_loss"][0] == pytest.approx(model.evaluate(x, y)[0], rel=1e-14)


def test_regularizers_are_saved_and_restored_by_model_files(tmp_path):
    model = small_model(dtype="float32")
    model.compile(optimizer="adam")
    conv_config = model.layers[0].get_config()
    assert conv_config["kernel_regularizer"] == {"class_name": "L2", "config": {"l2": 0.05}}
    assert model.layers[2].get_config()["kernel_regularizer"] == {
        "class_name": "L2", "config": {"l2": 0.02}}
    assert "kernel_regularizer" not in Dense(3).get_config()  # older files stay identical
    loaded = cnnlab.load_model(model.save(tmp_path / "m.safetensors"))
    assert loaded.get_config() == model.get_config()
    assert loaded.layers[0].kernel_regularizer == L2(0.05)
    x, y = data(4, dtype=np.float32)
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_specs_may_name_the_regularizer():
    model = cnnlab.model_from_json({"input_shape": [4], "layers": [
        {"class_name": "Dense", "config": {"units": 3, "kernel_regularizer": "l2"}}]})
    assert model.layers[0].kernel_regularizer == L2(0.01)
    with pytest.raises(SpecError, match="kernel_regularizer"):
        cnnlab.model_from_json({"input_shape": [4], "layers": [
            {"class_name": "Dense", "config": {"units": 3, "kernel_regularizer": "l7"}}]})


# --------------------------------------------------------------------------- AdamW
def keras_adamw(params, grads_per_step, lr=0.001, wd=0.004, b1=0.9, b2=0.999, eps=1e-7):
    """Keras 3's AdamW in float64: decay first (p -= lr * wd * p), then the Adam step."""
    params = [p.astype(np.float64).copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    for t, grads in enumerate(grads_per_step, start=1):
        alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        for i, g in enumerate(grads):
            params[i] = params[i] - params[i] * wd * lr
            m[i] = m[i] + (g - m[i]) * (1 - b1)
            v[i] = v[i] + (g * g - v[i]) * (1 - b2)
            params[i] = params[i] - m[i] * alpha / (np.sqrt(v[i]) + eps)
    return params


def random_steps(shapes, steps, seed=5):
    rng = np.random.default_rng(seed)
    return [[rng.standard_normal(s) for s in shapes] for _ in range(steps)]


def test_adamw_follows_keras_formula():
    rng = np.random.default_rng(4)
    shapes = [(3, 4), (4,)]
    start = [rng.standard_normal(s) for s in shapes]
    steps = random_steps(shapes, 12)
    opt = AdamW(learning_rate=0.01, weight_decay=0.1, epsilon=1e-3)
    params = [p.copy() for p in start]
    for grads in steps:
        opt.step(params, grads)
    expected = keras_adamw(start, steps, lr=0.01, wd=0.1, eps=1e-3)
    for p, e in zip(params, expected, strict=True):
        np.testing.assert_allclose(p, e, rtol=1e-13, atol=1e-15)


def test_adamw_matches_torch_where_the_formulas_agree():
    """torch puts eps after the bias correction (Keras's eps = torch's * sqrt(1 - b2^t));
    with an eps far below sqrt(v) (1e-15 here) the two are the same algorithm."""
    rng = np.random.default_rng(6)
    shapes = [(5, 3), (3,)]
    start = [rng.standard_normal(s) for s in shapes]
    steps = random_steps(shapes, 15, seed=7)
    lr, wd = 0.01, 0.05
    opt = AdamW(learning_rate=lr, weight_decay=wd, beta_1=0.8, beta_2=0.99, epsilon=1e-15)
    params = [p.copy() for p in start]
    tparams = [torch.tensor(p.copy(), requires_grad=True) for p in start]
    topt = torch.optim.AdamW(tparams, lr=lr, betas=(0.8, 0.99), eps=1e-15, weight_decay=wd)
    for grads in steps:
        opt.step(params, grads)
        for tp, g in zip(tparams, grads, strict=True):
            tp.grad = torch.tensor(g)
        topt.step()
    for p, tp in zip(params, tparams, strict=True):
        np.testing.assert_allclose(p, tp.detach().numpy(), rtol=1e-11, atol=1e-13)


def test_adamw_in_float32_matches_torch():
    rng = np.random.default_rng(8)
    start = [rng.standard_normal((4, 4)).astype(np.float32)]
    steps = [[g.astype(np.float32) for g in s] for s in random_steps([(4, 4)], 10, seed=9)]
    opt = AdamW(learning_rate=0.01, weight_decay=0.004, epsilon=1e-10)
    params = [start[0].copy()]
    tp = torch.tensor(start[0].copy(), requires_grad=True)
    topt = torch.optim.AdamW([tp], lr=0.01, eps=1e-10, weight_decay=0.004)
    for grads in steps:
        opt.step(params, grads)
        tp.grad = torch.tensor(grads[0])
        topt.step()
    assert params[0].dtype == np.float32
    np.testing.assert_allclose(params[0], tp.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_adamw_without_decay_is_adam_and_decay_uses_the_scheduled_rate():
    rng = np.random.default_rng(10)
    start = [rng.standard_normal((3, 3)).astype(np.float32)]
    steps = [[g.astype(np.float32) for g in s] for s in random_steps([(3, 3)], 6)]
    a, b = [start[0].copy()], [start[0].copy()]
    adamw, adam = AdamW(weight_decay=0.0), Adam()
    for grads in steps:
        adamw.step(a, grads)
        adam.step(b, grads)
    np.testing.assert_array_equal(a[0], b[0])
    # with a schedule, step t decays by schedule(t - 1), as Keras reads its rate
    sched = cnnlab.OneCycle(0.05, total_steps=6)
    opt = AdamW(learning_rate=sched, weight_decay=0.5)
    params = [start[0].astype(np.float64)]
    zero = [np.zeros((3, 3))]
    for t in range(3):
        before = params[0].copy()
        opt.step(params, zero)  # zero gradient: only the decay moves the weights
        np.testing.assert_allclose(params[0], before * (1 - sched(t) * 0.5), rtol=1e-14)


def test_adamw_config_registry_and_state():
    opt = AdamW(learning_rate=0.002, weight_decay=0.01)
    assert opt.get_config() == {"name": "AdamW", "learning_rate": 0.002, "beta_1": 0.9,
                                "beta_2": 0.999, "epsilon": 1e-7, "weight_decay": 0.01}
    again = get_optimizer(opt.get_config())
    assert type(again) is AdamW and again.get_config() == opt.get_config()
    assert type(get_optimizer("adamw")) is AdamW and get_optimizer("AdamW").weight_decay == 0.004
    with pytest.raises(InvalidArgumentError, match="weight_decay"):
        AdamW(weight_decay=-1)
    # stop after 4 steps, restore into a fresh optimizer: the runs continue bit for bit
    shapes = [(2, 3), (3,)]
    steps = [[g.astype(np.float32) for g in s] for s in random_steps(shapes, 8)]
    pa = [np.ones(s, np.float32) for s in shapes]
    a = AdamW(0.01, weight_decay=0.1)
    for grads in steps[:4]:
        a.step(pa, grads)
    pb = [p.copy() for p in pa]
    b = get_optimizer(a.get_config())
    b.set_state({k: np.array(v, copy=True) for k, v in a.get_state().items()}, pb)
    for grads in steps[4:]:
        a.step(pa, grads)
        b.step(pb, grads)
    for x, y in zip(pa, pb, strict=True):
        np.testing.assert_array_equal(x, y)


def test_adamw_checkpoints_resume_bit_for_bit(tmp_path):
    x, y = data(12, dtype=np.float32)

    def make():
        model = small_model(dtype="float32")
        model.compile(optimizer=AdamW(0.01, weight_decay=0.05))
        return model

    whole = make()
    whole.fit(x, y, epochs=2, batch_size=4, verbose=0)
    part = make()
    part.fit(x, y, epochs=1, batch_size=4, verbose=0, checkpoint_dir=tmp_path)
    resumed = make()
    resumed.fit(x, y, epochs=2, batch_size=4, verbose=0, checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- label smoothing
@pytest.mark.parametrize("s", [0.0, 0.1, 0.35])
@pytest.mark.parametrize("one_hot", [False, True])
def test_softmax_cross_entropy_smoothing_matches_torch(s, one_hot):
    rng = np.random.default_rng(11)
    z = (3 * rng.standard_normal((8, 6))).astype(np.float32)
    labels = rng.integers(0, 6, 8)
    y = np.eye(6, dtype=np.float32)[labels] if one_hot else labels
    loss, grad = softmax_cross_entropy(z, y, label_smoothing=s)
    zt = torch.tensor(z, requires_grad=True)
    lt = F.cross_entropy(zt, torch.tensor(y), label_smoothing=s)
    lt.backward()
    assert abs(loss - float(lt.detach())) < 1e-6
    assert grad.dtype == np.float32
    np.testing.assert_allclose(grad, zt.grad.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("s", [0.1, 0.35])
def test_probability_head_smoothing_matches_torch(s):
    """The probability head, through softmax's backward, against torch on the logits."""
    rng = np.random.default_rng(12)
    z = (2 * rng.standard_normal((8, 5))).astype(np.float32)
    labels = rng.integers(0, 5, 8)
    _, softmax, softmax_backward = get_activation("softmax")
    p = softmax(z)
    loss, grad_p = categorical_cross_entropy(p, labels, label_smoothing=s)
    grad_z = softmax_backward(grad_p, p)
    zt = torch.tensor(z, requires_grad=True)
    lt = F.cross_entropy(zt, torch.tensor(labels), label_smoothing=s)
    lt.backward()
    assert abs(loss - float(lt.detach())) < 1e-6
    np.testing.assert_allclose(grad_z, zt.grad.numpy(), rtol=0, atol=1e-6)


@pytest.mark.parametrize("s", [0.1, 0.6])
def test_smoothed_losses_by_finite_differences(s):
    rng = np.random.default_rng(13)
    z = rng.standard_normal((4, 5))
    labels = rng.integers(0, 5, 4)
    _, grad = softmax_cross_entropy(z, labels, label_smoothing=s)
    numeric = numerical_gradient(lambda: softmax_cross_entropy(z, labels, label_smoothing=s)[0],
                                 z)
    assert_grad_close(grad, numeric, tol=1e-8)
    p = rng.uniform(0.05, 0.9, (4, 5))
    _, grad = categorical_cross_entropy(p, labels, label_smoothing=s)
    numeric = numerical_gradient(lambda: categorical_cross_entropy(p, labels,
                                                                   label_smoothing=s)[0], p)
    assert_grad_close(grad, numeric, tol=1e-8)


@pytest.mark.parametrize("head", ["logits", "probabilities"])
def test_compiled_smoothing_trains_like_torch(head):
    """Both loss heads, through a model, against torch's Linear + cross_entropy(label_smoothing)."""
    s = 0.2
    rng = np.random.default_rng(14)
    x = rng.standard_normal((10, 7)).astype(np.float32)
    y = rng.integers(0, 4, 10)
    layers = ([Dense(4), Activation("softmax")] if head == "logits"
              else [Dense(4, activation="softmax")])
    model = cnnlab.Sequential(layers, input_shape=(7,), seed=0)
    model.compile(optimizer=GradientRecorder(), label_smoothing=s)
    assert model.loss_head.from_logits is (head == "logits")
    loss, _ = train_step(model, x, y)
    kernel, bias = (torch.tensor(w.copy(), requires_grad=True) for w in model.get_weights())
    lt = F.cross_entropy(torch.tensor(x) @ kernel + bias, torch.tensor(y), label_smoothing=s)
    lt.backward()
    assert abs(loss - float(lt.detach())) < 1e-6
    assert abs(model.evaluate(x, y)[0] - float(lt.detach())) < 1e-6  # evaluate: the smoothed loss
    np.testing.assert_allclose(model.optimizer.grads[0], kernel.grad.numpy(), atol=1e-6)
    np.testing.assert_allclose(model.optimizer.grads[1], bias.grad.numpy(), atol=1e-6)


def test_label_smoothing_is_kept_in_model_files_and_checkpoints(tmp_path):
    model = small_model(dtype="float32")
    model.compile(optimizer="adam", label_smoothing=0.1)
    assert model.loss == {"class_name": "CategoricalCrossentropy",
                          "config": {"label_smoothing": 0.1}}
    path = model.save(tmp_path / "m.safetensors", training_config={"epochs": 3})
    loaded = cnnlab.load_model(path)
    assert loaded.training_config["loss"] == model.loss
    assert loaded.label_smoothing == 0.1 and loaded.loss_head.label_smoothing == 0.1
    x, y = data(6, dtype=np.float32)
    assert loaded.evaluate(x, y) == model.evaluate(x, y)
    model.fit(x, y, epochs=1, batch_size=3, verbose=0, checkpoint_dir=tmp_path / "run")
    model.fit(x, y, epochs=2, batch_size=3, verbose=0, checkpoint_dir=tmp_path / "run",
              resume=True)


def test_compile_label_smoothing_arguments():
    model = small_model(dtype="float32")
    model.compile()
    assert model.loss == "categorical_crossentropy" and model.label_smoothing == 0.0
    model.compile(loss={"class_name": "CategoricalCrossentropy",
                        "config": {"label_smoothing": 0.2}})
    assert model.loss_head.label_smoothing == 0.2
    model.compile(loss={"class_name": "CategoricalCrossentropy", "config": {}})
    assert model.loss == "categorical_crossentropy"
    with pytest.raises(InvalidArgumentError, match="SparseCategoricalCrossentropy"):
        model.compile(loss="sparse_categorical_crossentropy", label_smoothing=0.1)
    with pytest.raises(InvalidArgumentError, match=r"label_smoothing must be a number in \[0, 1\]"):
        model.compile(label_smoothing=1.5)
    with pytest.raises(InvalidArgumentError, match="disagrees"):
        model.compile(loss={"class_name": "CategoricalCrossentropy",
                            "config": {"label_smoothing": 0.2}}, label_smoothing=0.1)
    with pytest.raises(InvalidArgumentError, match="unknown loss"):
        model.compile(loss={"class_name": "Hinge", "config": {}})
