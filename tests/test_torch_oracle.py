"""PyTorch as an oracle: cnnlab in float32 against torch, within 1e-4 of the scale.

Layouts: cnnlab is NHWC with kernels ``(kh, kw, C_in, C_out)``; torch is NCHW with
``(C_out, C_in, kh, kw)``. Keras-style asymmetric padding is given to torch
explicitly with ``F.pad`` (``(left, right, top, bottom)``). The torch side runs
in float64 from the same float32 numbers, so the only error measured is cnnlab's.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import cnnlab  # noqa: E402
from cnnlab import ops  # noqa: E402
from cnnlab.ops.padding import output_hw, resolve_padding  # noqa: E402

RTOL = 1e-4


def close(actual, expected, what="", rtol=RTOL):
    """``|a - e| <= rtol * max|e| + rtol * |e|`` elementwise (1e-4 of the scale)."""
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    scale = max(float(np.abs(expected).max(initial=0.0)), 1e-12)
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, err_msg=what)


def t64(a, grad=False):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def nchw(x):
    return x.permute(0, 3, 1, 2)


def nhwc(x):
    return x.permute(0, 2, 3, 1)


def torch_pad(x, pads, value=0.0):
    (t, b), (left, r) = pads
    return F.pad(x, (left, r, t, b), value=value)


# ----------------------------------------------------------------------------- convolution


def conv_configs(n=24, seed=2024):
    rng = np.random.default_rng(seed)
    paddings = ["valid", "same", "full", 2, (0, 1), ((1, 0), (0, 2)), ((2, 1), (1, 0))]
    configs = []
    for i in range(n):
        kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        h, w = int(rng.integers(max(kh, 3), 12)), int(rng.integers(max(kw, 3), 12))
        ci, co = int(rng.integers(1, 6)), int(rng.integers(1, 9))
        padding = paddings[i % len(paddings)]
        if i % 5 == 0:
            padding, kh, kw, sh, sw = "same", 2, 2, 1, 1  # the slides' first layer
        configs.append(pytest.param(padding, (kh, kw), (sh, sw), (h, w), ci, co, i,
                                    id=f"{i}-{padding}-k{kh}x{kw}-s{sh}x{sw}-{h}x{w}-{ci}to{co}"))
    return configs


@pytest.mark.parametrize("impl", ["fast", "reference"])
@pytest.mark.parametrize(("padding", "kernel", "strides", "hw", "ci", "co", "seed"),
                         conv_configs())
def test_conv_matches_torch(impl, padding, kernel, strides, hw, ci, co, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3, *hw, ci)).astype(np.float32)
    k = rng.standard_normal((*kernel, ci, co)).astype(np.float32)
    b = rng.standard_normal(co).astype(np.float32)
    pads = resolve_padding(padding, kernel, strides, hw)
    ho, wo = output_hw(hw, kernel, strides, pads)
    g = rng.standard_normal((3, ho, wo, co)).astype(np.float32)

    if impl == "fast":
        out, cols = ops.conv2d_forward(x, k, b, strides, pads)
        dx, dk, db = ops.conv2d_backward(g, cols)
    else:
        out = ops.conv2d_forward_reference(x, k, b, strides, pads)
        dk = ops.conv2d_backward_filter_reference(x, g, kernel, strides, pads)
        dx = ops.conv2d_backward_input_reference(g, k, hw, strides, pads)
        db = g.sum(axis=(0, 1, 2))
    assert out.dtype == np.float32

    tx, tk, tb = t64(x, True), t64(k, True), t64(b, True)
    tout = nhwc(F.conv2d(torch_pad(nchw(tx), pads), tk.permute(3, 2, 0, 1).contiguous(), tb,
                             stride=strides))
    tout.backward(t64(g))
    if padding == "same":
        assert out.shape[1:3] == (-(-hw[0] // strides[0]), -(-hw[1] // strides[1]))
    close(out, tout, "forward")
    close(dx, tx.grad, "dL/dX")
    close(dk, tk.grad, "dL/dF")
    close(db, tb.grad, "dL/db")


@pytest.mark.parametrize("padding", ["same", "full"])
def test_symmetric_padding_matches_torch_builtin_padding(padding):
    """'same' with an odd kernel at stride 1, and 'full', are torch's own padding argument."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 7, 6, 3)).astype(np.float32)
    k = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    pads = resolve_padding(padding, (3, 3), (1, 1), (7, 6))
    out, _ = ops.conv2d_forward(x, k, None, (1, 1), pads)
    p = 1 if padding == "same" else 2
    tout = nhwc(F.conv2d(nchw(t64(x)), t64(k).permute(3, 2, 0, 1), padding=p))
    close(out, tout, padding)


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
def test_conv_layer_with_activation_matches_torch(activation):
    rng = np.random.default_rng(6)
    layer = cnnlab.Conv2D(5, (3, 2), strides=(2, 1), padding="same", activation=activation)
    out_shape = layer.build((9, 8, 2), rng)
    layer.weights[1][...] = rng.standard_normal(5).astype(np.float32)
    x = rng.standard_normal((4, 9, 8, 2)).astype(np.float32)
    g = rng.standard_normal((4, *out_shape)).astype(np.float32)
    y = layer.forward(x, training=True)
    dx = layer.backward(g)

    tx, tk, tb = t64(x, True), t64(layer.weights[0], True), t64(layer.weights[1], True)
    z = F.conv2d(torch_pad(nchw(tx), layer.pads), tk.permute(3, 2, 0, 1).contiguous(), tb,
                 stride=(2, 1))
    ty = nhwc(getattr(torch, activation)(z))
    ty.backward(t64(g))
    close(y, ty, "forward")
    close(dx, tx.grad, "dx")
    close(layer.grads[0], tk.grad, "dkernel")
    close(layer.grads[1], tb.grad, "dbias")


# ----------------------------------------------------------------------------- pooling


def pool_configs():
    cfgs = []
    rng = np.random.default_rng(77)
    for i in range(20):
        ph, pw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        sh, sw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        h, w = int(rng.integers(max(ph, 2), 10)), int(rng.integers(max(pw, 2), 10))
        padding = "same" if i % 2 else "valid"
        cfgs.append(pytest.param((ph, pw), (sh, sw), padding, (h, w), i,
                                 id=f"{i}-p{ph}x{pw}-s{sh}x{sw}-{padding}-{h}x{w}"))
    cfgs.append(pytest.param((2, 2), (2, 2), "valid", (28, 28), 100, id="slides-28"))
    cfgs.append(pytest.param((2, 2), (2, 2), "valid", (11, 11), 101, id="slides-odd-11"))
    cfgs.append(pytest.param((2, 2), (2, 2), "same", (5, 7), 102, id="same-odd"))
    cfgs.append(pytest.param((3, 3), (1, 1), "same", (6, 5), 103, id="same-3-s1"))
    return cfgs


def distinct(shape, rng):
    """Distinct float32 values (no ties), well separated."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape).astype(np.float32) * 0.01 - 1)


@pytest.mark.parametrize(("pool", "strides", "padding", "hw", "seed"), pool_configs())
def test_max_pool_matches_torch(pool, strides, padding, hw, seed):
    rng = np.random.default_rng(seed)
    x = distinct((2, *hw, 3), rng)
    pads = resolve_padding(padding, pool, strides, hw)
    out, arg = ops.max_pool2d_forward(x, pool, strides, pads)
    g = rng.standard_normal(out.shape).astype(np.float32)
    dx = ops.max_pool2d_backward(g, arg, x.shape, pool, strides, pads)

    tx = t64(x, True)
    tout = nhwc(F.max_pool2d(torch_pad(nchw(tx), pads, -np.inf), pool, strides))
    tout.backward(t64(g))
    close(out, tout, "max forward")
    close(dx, tx.grad, "max backward")


@pytest.mark.parametrize(("pool", "strides", "padding", "hw", "seed"), pool_configs())
def test_avg_pool_matches_torch(pool, strides, padding, hw, seed):
    """Padded cells are not counted: torch's window sums over its window counts of real pixels.

    That is exactly ``count_include_pad=False``, written so that it also holds
    for Keras's asymmetric 'same' padding, which torch's avg_pool2d cannot express.
    """
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, *hw, 3)).astype(np.float32)
    pads = resolve_padding(padding, pool, strides, hw)
    out, counts = ops.avg_pool2d_forward(x, pool, strides, pads)
    g = rng.standard_normal(out.shape).astype(np.float32)
    dx = ops.avg_pool2d_backward(g, counts, x.shape, pool, strides, pads)

    tx = t64(x, True)
    ones = torch.ones((1, 1, *hw), dtype=torch.float64)
    n_real = F.avg_pool2d(torch_pad(ones, pads), pool, strides, divisor_override=1)
    sums = F.avg_pool2d(torch_pad(nchw(tx), pads), pool, strides, divisor_override=1)
    tout = nhwc(sums / n_real)
    tout.backward(t64(g))
    close(out, tout, "avg forward")
    close(dx, tx.grad, "avg backward")
    (t, b), (left, r) = pads
    if t == b and left == r and t <= pool[0] // 2 and left <= pool[1] // 2:
        # symmetric: torch's own count_include_pad=False gives the same numbers
        builtin = nhwc(F.avg_pool2d(nchw(t64(x)), pool, strides, padding=(t, left),
                                    count_include_pad=False))
        close(out, builtin, "avg forward (torch builtin)")


@pytest.mark.parametrize("cls", [cnnlab.MaxPooling2D, cnnlab.AveragePooling2D])
def test_pooling_layers_match_torch(cls):
    rng = np.random.default_rng(8)
    layer = cls(3, strides=2, padding="valid")
    out_shape = layer.build((9, 7, 4), rng)
    x = distinct((2, 9, 7, 4), rng)
    g = rng.standard_normal((2, *out_shape)).astype(np.float32)
    y = layer.forward(x, training=True)
    dx = layer.backward(g)
    tx = t64(x, True)
    fn = F.max_pool2d if cls is cnnlab.MaxPooling2D else F.avg_pool2d
    ty = nhwc(fn(nchw(tx), 3, 2))
    ty.backward(t64(g))
    assert y.dtype == np.float32 and dx.dtype == np.float32
    close(y, ty, "forward")
    close(dx, tx.grad, "backward")


# ----------------------------------------------------------------------------- dense, loss


@pytest.mark.parametrize("activation", [None, "relu", "sigmoid", "tanh", "softmax"])
def test_dense_matches_torch(activation):
    rng = np.random.default_rng(9)
    layer = cnnlab.Dense(7, activation=activation)
    layer.build((13,), rng)
    layer.weights[1][...] = rng.standard_normal(7).astype(np.float32)
    x = rng.standard_normal((5, 13)).astype(np.float32)
    g = rng.standard_normal((5, 7)).astype(np.float32)
    y = layer.forward(x, training=True)
    dx = layer.backward(g)
    tx, tw, tb = t64(x, True), t64(layer.weights[0], True), t64(layer.weights[1], True)
    z = F.linear(tx, tw.T, tb)
    acts = {None: lambda v: v, "relu": torch.relu, "sigmoid": torch.sigmoid,
            "tanh": torch.tanh, "softmax": lambda v: torch.softmax(v, dim=-1)}
    ty = acts[activation](z)
    ty.backward(t64(g))
    close(y, ty, "forward")
    close(dx, tx.grad, "dx")
    close(layer.grads[0], tw.grad, "dkernel")
    close(layer.grads[1], tb.grad, "dbias")


@pytest.mark.parametrize("seed", range(5))
def test_softmax_cross_entropy_matches_torch(seed):
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 40)), int(rng.integers(2, 12))
    z = (rng.standard_normal((n, k)) * rng.uniform(0.1, 20)).astype(np.float32)
    labels = rng.integers(0, k, n)
    loss, grad = ops.softmax_cross_entropy(z, labels)
    tz = t64(z, True)
    tloss = F.cross_entropy(tz, torch.tensor(labels), reduction="mean")
    tloss.backward()
    np.testing.assert_allclose(loss, tloss.item(), rtol=RTOL, atol=RTOL)
    close(grad, tz.grad, "dL/dlogits")
    # one-hot labels give the same
    loss2, grad2 = ops.softmax_cross_entropy(z, np.eye(k, dtype=np.float32)[labels])
    np.testing.assert_allclose(loss2, loss, rtol=1e-6)
    np.testing.assert_allclose(grad2, grad, rtol=1e-6, atol=1e-9)


def test_categorical_cross_entropy_matches_torch_nll():
    rng = np.random.default_rng(10)
    p = rng.dirichlet(np.ones(6), 8).astype(np.float32)
    p = np.clip(p, 1e-3, None)
    p /= p.sum(axis=1, keepdims=True)
    labels = rng.integers(0, 6, 8)
    loss, grad = ops.categorical_cross_entropy(p, labels)
    tp = t64(p, True)
    tloss = F.nll_loss(torch.log(tp), torch.tensor(labels))
    tloss.backward()
    np.testing.assert_allclose(loss, tloss.item(), rtol=RTOL)
    close(grad, tp.grad, "dL/dp")


# ----------------------------------------------------------------------------- the seed model


class GradRecorder(cnnlab.optimizers.Optimizer):
    """Records the gradients train_on_batch computes; leaves the weights alone."""

    def __init__(self):
        super().__init__(1.0)
        self.grads = None

    def step(self, params, grads):
        self.grads = [np.array(g, copy=True) for g in grads]


class TorchSeedModel(torch.nn.Module):
    """The slides' model in torch, with cnnlab's weights (NHWC flatten order kept)."""

    def __init__(self, model):
        super().__init__()
        convs = [la for la in model.layers if isinstance(la, cnnlab.Conv2D)]
        denses = [la for la in model.layers if isinstance(la, cnnlab.Dense)]
        self.pads = convs[0].pads
        self.conv = torch.nn.ParameterList()
        for la in convs:
            kernel = t64(la.weights[0]).permute(3, 2, 0, 1).contiguous()
            self.conv.append(torch.nn.Parameter(kernel))
            self.conv.append(torch.nn.Parameter(t64(la.weights[1])))
        self.dense = torch.nn.ParameterList()
        for la in denses:
            self.dense.append(torch.nn.Parameter(t64(la.weights[0]).T.contiguous()))
            self.dense.append(torch.nn.Parameter(t64(la.weights[1])))

    def logits(self, x_nhwc):
        c = self.conv
        h = nchw(x_nhwc)
        h = F.relu(F.conv2d(torch_pad(h, self.pads), c[0], c[1]))
        h = F.max_pool2d(h, 2)
        h = F.relu(F.conv2d(h, c[2], c[3]))
        h = F.relu(F.conv2d(h, c[4], c[5]))
        h = F.max_pool2d(h, 2)
        h = nhwc(h).flatten(1)  # Keras flattens channels-last
        h = F.relu(F.linear(h, self.dense[0], self.dense[1]))
        return F.linear(h, self.dense[2], self.dense[3])

    def grads_in_cnnlab_layout(self):
        out = []
        for i, p in enumerate(self.conv):
            out.append(p.grad.permute(2, 3, 1, 0) if i % 2 == 0 else p.grad)
        for i, p in enumerate(self.dense):
            out.append(p.grad.T if i % 2 == 0 else p.grad)
        return [g.detach().numpy() for g in out]


@pytest.fixture(scope="module")
def seed_batch():
    rng = np.random.default_rng(11)
    model = cnnlab.seed_model(seed=0)
    for layer in model.layers:  # non-zero biases make the comparison stricter
        if layer.weights:
            layer.weights[1][...] = rng.normal(0, 0.05, layer.weights[1].shape)
    x = rng.uniform(0, 1, (8, 28, 28, 1)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    return model, x, y


def test_seed_model_forward_matches_torch(seed_batch):
    model, x, y = seed_batch
    probs = model.predict(x)
    tm = TorchSeedModel(model)
    with torch.no_grad():
        tprobs = torch.softmax(tm.logits(t64(x)), dim=-1)
    close(probs, tprobs, "probabilities")
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_seed_model_gradients_match_torch(seed_batch):
    model, x, y = seed_batch
    saved = [la.rate for la in model.layers if isinstance(la, cnnlab.Dropout)]
    for la in model.layers:  # eval-mode gradients: no dropout
        if isinstance(la, cnnlab.Dropout):
            la.rate = 0.0
    try:
        recorder = GradRecorder()
        model.compile(optimizer=recorder)
        before = model.get_weights()
        loss, _ = model.train_on_batch(x, y)
    finally:
        for la, rate in zip([la for la in model.layers if isinstance(la, cnnlab.Dropout)], saved,
                            strict=True):
            la.rate = rate
    for w0, w1 in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(w0, w1)

    tm = TorchSeedModel(model)
    tloss = F.cross_entropy(tm.logits(t64(x)), torch.tensor(y))
    tloss.backward()
    np.testing.assert_allclose(loss, tloss.item(), rtol=RTOL)
    expected = tm.grads_in_cnnlab_layout()
    assert len(recorder.grads) == len(expected) == 10
    names = [f"{la.name}/{wn}" for la in model.layers for wn in la.weight_names]
    for name, g, e in zip(names, recorder.grads, expected, strict=True):
        close(g, e, name)


# ----------------------------------------------------------------------------- optimizers


def run_pair(make_ours, make_torch, steps, shape=(4, 5), seed=12, grad_scale=1.0):
    """Same float64 parameters and gradient sequence through cnnlab and torch."""
    rng = np.random.default_rng(seed)
    p0 = rng.standard_normal(shape)
    b0 = rng.standard_normal(shape[-1])
    grads = [(rng.standard_normal(shape) * grad_scale, rng.standard_normal(shape[-1]) * grad_scale)
             for _ in range(steps)]
    ours = make_ours()
    params = [p0.copy(), b0.copy()]
    tparams = [torch.nn.Parameter(t64(p0)), torch.nn.Parameter(t64(b0))]
    topt = make_torch(tparams)
    for gp, gb in grads:
        ours.step(params, [gp, gb])
        tparams[0].grad, tparams[1].grad = t64(gp), t64(gb)
        topt.step()
    return params, [p.detach().numpy() for p in tparams]


def assert_params_close(ours, theirs, rtol):
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=rtol)


def test_adam_single_step_matches_torch_exactly():
    """At t=1, Keras's eps equals torch's eps / sqrt(1 - beta_2): identical updates."""
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-7
    ours, theirs = run_pair(
        lambda: cnnlab.Adam(lr, b1, b2, eps),
        lambda ps: torch.optim.Adam(ps, lr=lr, betas=(b1, b2), eps=eps / np.sqrt(1 - b2)),
        steps=1, grad_scale=1e-5)  # tiny gradients: eps matters, and still agrees
    assert_params_close(ours, theirs, 1e-12)


def test_adam_many_steps_matches_torch():
    """Over many steps the eps placements differ by O(eps / |g|) ~ 1e-7 relative."""
    lr = 1e-3
    ours, theirs = run_pair(lambda: cnnlab.Adam(lr),
                            lambda ps: torch.optim.Adam(ps, lr=lr, eps=1e-7), steps=25)
    assert_params_close(ours, theirs, 1e-6)


@pytest.mark.parametrize(("momentum", "nesterov"),
                         [(0.0, False), (0.5, False), (0.9, False), (0.5, True), (0.9, True)])
def test_sgd_matches_torch(momentum, nesterov):
    lr = 0.05
    ours, theirs = run_pair(lambda: cnnlab.SGD(lr, momentum=momentum, nesterov=nesterov),
                            lambda ps: torch.optim.SGD(ps, lr=lr, momentum=momentum,
                                                       nesterov=nesterov), steps=15)
    assert_params_close(ours, theirs, 1e-12)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
def test_rmsprop_matches_torch(momentum):
    lr, rho, eps = 1e-2, 0.9, 1e-7
    ours, theirs = run_pair(lambda: cnnlab.RMSprop(lr, rho=rho, momentum=momentum, epsilon=eps),
                            lambda ps: torch.optim.RMSprop(ps, lr=lr, alpha=rho, eps=eps,
                                                           momentum=momentum), steps=15)
    assert_params_close(ours, theirs, 1e-12)


def test_adadelta_matches_torch():
    lr, rho, eps = 1.0, 0.95, 1e-7
    ours, theirs = run_pair(lambda: cnnlab.Adadelta(lr, rho=rho, epsilon=eps),
                            lambda ps: torch.optim.Adadelta(ps, lr=lr, rho=rho, eps=eps),
                            steps=15)
    assert_params_close(ours, theirs, 1e-12)


def test_adam_float32_step_on_seed_model_matches_torch(seed_batch):
    """One Adam step on real seed-model gradients, in float32."""
    model, x, y = seed_batch
    weights = [w.copy() for w in model.get_weights()]
    rng = np.random.default_rng(13)
    grads = [rng.standard_normal(w.shape).astype(np.float32) * 0.01 for w in weights]
    opt = cnnlab.Adam(1e-3)
    params = [w.copy() for w in weights]
    opt.step(params, grads)
    tparams = [torch.nn.Parameter(torch.tensor(w)) for w in weights]
    topt = torch.optim.Adam(tparams, lr=1e-3, eps=1e-7 / np.sqrt(1 - 0.999))
    for tp, g in zip(tparams, grads, strict=True):
        tp.grad = torch.tensor(g)
    topt.step()
    for p, tp, w in zip(params, tparams, weights, strict=True):
        assert p.dtype == np.float32
        # the step itself is lr-sized: compare it to 1e-4 of lr
        np.testing.assert_allclose(p - w, tp.detach().numpy() - w, rtol=1e-4, atol=1e-7)
