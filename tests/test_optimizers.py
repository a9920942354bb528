"""Optimizers: Keras update rules, minimising a quadratic, state save/restore."""

from __future__ import annotations

import math

import numpy as np
import pytest

import cnnlab
from cnnlab import SGD, Adadelta, Adam, InvalidArgumentError, RMSprop
from cnnlab.optimizers import get_optimizer

# f(p) = 1/2 sum a_i (p_i - c_i)^2, an ill-conditioned bowl with minimum at c
A = np.array([1.0, 3.0, 0.5, 2.0, 1.5, 0.8])
C = np.array([1.0, -2.0, 0.5, 3.0, -1.0, 0.0])


def quadratic_grads(params):
    p, b = params
    return [A * (p - C), 2.0 * (b - 1.5)]


def quadratic_loss(params):
    p, b = params
    return 0.5 * float(np.sum(A * (p - C) ** 2)) + float(np.sum((b - 1.5) ** 2))


OPTIMIZERS = [
    pytest.param(lambda: SGD(0.1), 300, id="sgd"),
    pytest.param(lambda: SGD(0.05, momentum=0.9), 300, id="sgd-momentum"),
    pytest.param(lambda: SGD(0.05, momentum=0.9, nesterov=True), 300, id="sgd-nesterov"),
    pytest.param(lambda: Adam(0.05), 600, id="adam"),
    pytest.param(lambda: RMSprop(0.01), 800, id="rmsprop"),
    pytest.param(lambda: RMSprop(0.005, momentum=0.5), 800, id="rmsprop-momentum"),
    pytest.param(lambda: Adadelta(1.0), 3000, id="adadelta"),
]


@pytest.mark.parametrize(("make", "steps"), OPTIMIZERS)
def test_minimises_quadratic(make, steps):
    opt = make()
    params = [np.zeros(6), np.zeros((2, 2))]
    start = quadratic_loss(params)
    for _ in range(steps):
        opt.step(params, quadratic_grads(params))
    assert quadratic_loss(params) < 1e-3 * start
    np.testing.assert_allclose(params[0], C, atol=0.05)
    np.testing.assert_allclose(params[1], 1.5, atol=0.05)
    assert opt.iterations == steps


@pytest.mark.parametrize(("make", "steps"), OPTIMIZERS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_state_round_trip_continues_identically(make, steps, dtype):
    """Stop after k steps, restore the state into a fresh optimizer: the runs agree bit for bit."""
    a = make()
    params_a = [np.zeros(6, dtype), np.zeros((2, 2), dtype)]
    for _ in range(7):
        a.step(params_a, [g.astype(dtype) for g in quadratic_grads(params_a)])
    state = {k: np.array(v, copy=True) for k, v in a.get_state().items()}
    params_b = [p.copy() for p in params_a]
    b = make()
    b.set_state(state, params_b)
    assert b.iterations == a.iterations == 7
    for _ in range(9):
        a.step(params_a, [g.astype(dtype) for g in quadratic_grads(params_a)])
        b.step(params_b, [g.astype(dtype) for g in quadratic_grads(params_b)])
    for pa, pb in zip(params_a, params_b, strict=True):
        assert pa.dtype == dtype
        np.testing.assert_array_equal(pa, pb)


def test_state_is_a_snapshot_not_shared():
    """Restored slots are copies: stepping the restored optimizer leaves the saved state intact."""
    a = Adam(0.1)
    params = [np.ones(3)]
    a.step(params, [np.ones(3)])
    state = a.get_state()
    saved_m = np.array(state["m/0"], copy=True)
    b = Adam(0.1)
    b.set_state(state, [params[0].copy()])
    b.step([params[0].copy()], [np.ones(3)])
    np.testing.assert_array_equal(state["m/0"], saved_m)


def test_state_keys():
    opt = Adam()
    opt.step([np.zeros(2), np.zeros(3)], [np.ones(2), np.ones(3)])
    assert set(opt.get_state()) == {"iterations", "m/0", "m/1", "v/0", "v/1"}
    opt = SGD(0.1)
    opt.step([np.zeros(2)], [np.ones(2)])
    assert set(opt.get_state()) == {"iterations"}


# ----------------------------------------------------------------------------- exact formulas


def test_sgd_formulas():
    p = np.array([1.0])
    SGD(0.1).step([p], [np.array([2.0])])
    assert p[0] == pytest.approx(0.8)
    opt, p = SGD(0.1, momentum=0.9), np.array([0.0])
    opt.step([p], [np.array([1.0])])  # v = -0.1
    opt.step([p], [np.array([1.0])])  # v = -0.09 - 0.1
    assert p[0] == pytest.approx(-0.1 - 0.19)
    opt, p = SGD(0.1, momentum=0.9, nesterov=True), np.array([0.0])
    opt.step([p], [np.array([1.0])])  # v = -0.1; p += 0.9 v - 0.1 g
    assert p[0] == pytest.approx(-0.19)


def test_adam_first_steps_follow_keras_formula():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    opt, p = Adam(lr, b1, b2, eps), np.array([0.5, -0.3])
    m = v = np.zeros(2)
    expected = p.copy()
    for t, g in enumerate([np.array([0.2, -1.0]), np.array([0.1, 0.4]), np.array([-3.0, 0.0])],
                          start=1):
        opt.step([p], [g])
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        expected = expected - lr * math.sqrt(1 - b2**t) / (1 - b1**t) * m / (np.sqrt(v) + eps)
        np.testing.assert_allclose(p, expected, rtol=1e-12, atol=1e-15)
    # the first step moves every coordinate by about lr, whatever the gradient's size
    opt, p = Adam(lr), np.zeros(3)
    opt.step([p], [np.array([1e-2, 1.0, 1e3])])
    np.testing.assert_allclose(p, -lr, rtol=1e-3)


def test_rmsprop_and_adadelta_formulas():
    opt, p = RMSprop(0.01, rho=0.9, epsilon=1e-7), np.array([1.0])
    opt.step([p], [np.array([2.0])])
    a = 0.1 * 4.0
    assert p[0] == pytest.approx(1.0 - 0.01 * 2.0 / (math.sqrt(a) + 1e-7), rel=1e-12)
    opt, p = Adadelta(1.0, rho=0.95, epsilon=1e-7), np.array([1.0])
    opt.step([p], [np.array([2.0])])
    a = 0.05 * 4.0
    d = math.sqrt(1e-7) / math.sqrt(a + 1e-7) * 2.0
    assert p[0] == pytest.approx(1.0 - d, rel=1e-12)


def test_keras_defaults():
    assert Adam().get_config() == {"name": "Adam", "learning_rate": 0.001, "beta_1": 0.9,
                                   "beta_2": 0.999, "epsilon": 1e-7}
    assert SGD().get_config() == {"name": "SGD", "learning_rate": 0.01, "momentum": 0.0,
                                  "nesterov": False}
    assert RMSprop().get_config() == {"name": "RMSprop", "learning_rate": 0.001, "rho": 0.9,
                                      "momentum": 0.0, "epsilon": 1e-7}
    assert Adadelta().get_config() == {"name": "Adadelta", "learning_rate": 0.001, "rho": 0.95,
                                       "epsilon": 1e-7}


@pytest.mark.parametrize("make", [lambda: Adam(3e-4), lambda: SGD(0.2, momentum=0.5),
                                  lambda: RMSprop(0.01, rho=0.8), lambda: Adadelta(0.5)])
def test_get_optimizer_from_config_and_name(make):
    opt = make()
    again = get_optimizer(opt.get_config())
    assert type(again) is type(opt) and again.get_config() == opt.get_config()
    assert get_optimizer(opt) is opt
    assert isinstance(get_optimizer(type(opt).__name__.lower()), type(opt))


@pytest.mark.parametrize("make", [
    lambda: Adam(beta_1=1.0), lambda: Adam(beta_2=-0.1), lambda: Adam(epsilon=0),
    lambda: RMSprop(rho=1.0), lambda: Adadelta(rho=2), lambda: SGD(learning_rate=float("nan")),
    lambda: SGD(learning_rate="fast"), lambda: get_optimizer("lbfgs"),
])
def test_invalid_optimizer_arguments(make):
    with pytest.raises(InvalidArgumentError):
        make()


@pytest.mark.parametrize("momentum", [-0.5, 1.0, 3.0])
def test_rmsprop_rejects_momentum_outside_unit_interval(momentum):
    """As SGD does: a negative or >= 1 momentum makes RMSprop diverge silently."""
    with pytest.raises(InvalidArgumentError, match="momentum"):
        RMSprop(momentum=momentum)


def test_float32_updates_stay_float32():
    for opt in (SGD(0.1, momentum=0.9), Adam(), RMSprop(), Adadelta()):
        p = np.ones(4, np.float32)
        opt.step([p], [np.full(4, 0.5, np.float32)])
        assert p.dtype == np.float32
        assert all(a.dtype == np.float32 for arrays in opt.slots.values() for a in arrays)


def test_model_optimizer_trains_in_place():
    model = cnnlab.Sequential([cnnlab.Flatten(), cnnlab.Dense(3), cnnlab.Activation("softmax")],
                              input_shape=(2, 2, 1), seed=0)
    model.compile(optimizer=Adam(0.05))
    x = np.random.default_rng(0).standard_normal((30, 2, 2, 1)).astype(np.float32)
    y = (x.reshape(30, 4).sum(1) > 0).astype(np.int64) * 2
    first, _ = model.train_on_batch(x, y)
    for _ in range(60):
        last, _ = model.train_on_batch(x, y)
    assert last < 0.5 * first
    assert model.optimizer.iterations == 61
