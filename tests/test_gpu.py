"""The same ops, layers and models on a GPU (CuPy), against NumPy: needs an NVIDIA GPU.

Every test is marked ``gpu`` and skipped, saying why, where CuPy is missing or
cannot reach a CUDA device (``cupy.cuda.runtime.getDeviceCount()`` fails or
finds none). The NumPy result is the oracle: a CuPy result agrees within
``1e-4`` of the result's scale in float32 and ``1e-10`` in float64 (scale: the
largest magnitude of the NumPy result, at least 1e-6 for float32 results near 0).

Run them with ``pytest -m gpu tests/test_gpu.py`` on a machine with a GPU and
``pip install 'cnnlab[gpu]'``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import cnnlab
from cnnlab import backend
from cnnlab.ops import activations as act_ops
from cnnlab.ops import conv as conv_ops
from cnnlab.ops import losses as loss_ops
from cnnlab.ops import normalization as bn_ops
from cnnlab.ops import padding as pad_ops
from cnnlab.ops import pooling as pool_ops


def _gpu_unavailable() -> str | None:
    """Why the GPU tests cannot run here, or None when they can."""
    try:
        import cupy  # type: ignore[import-not-found]
    except ImportError as e:
        return f"CuPy is not installed ({e}): pip install 'cnnlab[gpu]'"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, or a driver too old
        return f"CuPy cannot reach a CUDA device ({type(e).__name__}: {e})"
    if count == 0:
        return "CuPy finds no CUDA device"
    return None


REASON = _gpu_unavailable()
if REASON is not None:  # one line in the report, not one per test
    pytest.skip(REASON, allow_module_level=True)
pytestmark = pytest.mark.gpu

TOL = {np.float32: 1e-4, np.float64: 1e-10}


def cp() -> Any:
    import cupy  # type: ignore[import-not-found]

    return cupy


def dev(a: Any) -> Any:
    """A NumPy array (or a tuple/list of them) on the GPU."""
    if isinstance(a, (tuple, list)):
        return type(a)(dev(v) for v in a)
    return cp().asarray(a) if isinstance(a, np.ndarray) else a


def assert_agree(host: Any, device: Any, dtype: Any, what: str = "result") -> None:
    """``device`` (CuPy) equals ``host`` (NumPy) within the dtype's tolerance of its scale.

    Walks tuples and lists; integer arrays (arg-max indices) must be equal;
    anything that is not an array (caches) is skipped.
    """
    if isinstance(host, (tuple, list)):
        assert len(host) == len(device), what
        for i, (h, d) in enumerate(zip(host, device, strict=True)):
            assert_agree(h, d, dtype, f"{what}[{i}]")
        return
    if host is None or not isinstance(host, (np.ndarray, np.generic, float, int)):
        return
    if isinstance(host, (float, int)) and not isinstance(host, bool):
        host, device = np.asarray(host), np.asarray(device)
    assert backend.device_of(device) == "gpu" or np.ndim(device) == 0, \
        f"{what} came back on the host"
    got = backend.to_numpy(device)
    assert got.shape == np.shape(host), f"{what}: shape {got.shape} != {np.shape(host)}"
    if np.asarray(host).dtype.kind in "iub":
        np.testing.assert_array_equal(got, host, err_msg=what)
        return
    assert got.dtype == np.asarray(host).dtype, f"{what}: dtype {got.dtype}"
    floor = 1e-6 if dtype is np.float32 else 1e-12
    scale = max(float(np.max(np.abs(host))) if np.size(host) else 0.0, floor)
    np.testing.assert_allclose(got, host, rtol=0, atol=TOL[dtype] * scale, err_msg=what)


def rand(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    return rng.standard_normal(shape).astype(dtype)


# ----------------------------------------------------------------------------- ops

CONV_CASES = [  # (N, H, W, Ci, kh, kw, Co, strides, padding)
    (2, 9, 9, 3, 3, 3, 4, (1, 1), "valid"),
    (2, 10, 10, 8, 3, 3, 6, (1, 1), "same"),  # Winograd-sized
    (3, 12, 12, 16, 3, 3, 8, (1, 1), "valid"),
    (2, 8, 7, 2, 2, 2, 5, (1, 1), "same"),  # the slides' 2x2 "same"
    (2, 11, 9, 3, 3, 2, 4, (2, 3), "valid"),
    (1, 7, 7, 2, 3, 3, 3, (2, 2), "full"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("impl", ["reference", "im2col", "winograd"])
@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_conv2d_forward_backward(case: tuple, impl: str, dtype: Any, relu: bool) -> None:
    n, h, w, ci, kh, kw, co, s, padding = case
    rng = np.random.default_rng(0)
    x, k, b = rand(rng, (n, h, w, ci), dtype), rand(rng, (kh, kw, ci, co), dtype), \
        rand(rng, (co,), dtype)
    pads = pad_ops.resolve_padding(padding, (kh, kw), s, (h, w))
    out_h, cache_h = conv_ops.conv2d_forward(x, k, b, s, pads, impl=impl, relu=relu)
    out_d, cache_d = conv_ops.conv2d_forward(dev(x), dev(k), dev(b), s, pads, impl=impl,
                                             relu=relu)
    assert cache_h.impl == cache_d.impl
    assert_agree(out_h, out_d, dtype, "output")
    g = rand(rng, out_h.shape, dtype)
    assert_agree(conv_ops.conv2d_backward(g, cache_h), conv_ops.conv2d_backward(dev(g), cache_d),
                 dtype, "(dX, dF, db)")


def test_inference_filter_cache_on_the_device() -> None:
    rng = np.random.default_rng(1)
    x, k = dev(rand(rng, (4, 12, 12, 16), np.float32)), dev(rand(rng, (3, 3, 16, 8), np.float32))
    cache: dict = {}
    a, _ = conv_ops.conv2d_forward(x, k, None, (1, 1), ((1, 1), (1, 1)), impl="winograd",
                                   keep=False, filter_cache=cache)
    k *= 2  # in place: the cache must see it
    b, _ = conv_ops.conv2d_forward(x, k, None, (1, 1), ((1, 1), (1, 1)), impl="winograd",
                                   keep=False, filter_cache=cache)
    np.testing.assert_allclose(backend.to_numpy(b), 2 * backend.to_numpy(a), rtol=1e-5,
                               atol=1e-5)


POOL_CASES = [  # (shape, pool, strides, padding)
    ((2, 8, 8, 3), (2, 2), (2, 2), "valid"),  # tiled fast path
    ((2, 7, 9, 3), (3, 3), (2, 2), "same"),
    ((2, 6, 6, 2), (2, 3), (1, 1), "valid"),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", POOL_CASES)
def test_pooling(case: tuple, dtype: Any) -> None:
    shape, pool, s, padding = case
    rng = np.random.default_rng(2)
    x = rand(rng, shape, dtype)
    pads = pad_ops.resolve_padding(padding, pool, s, shape[1:3])
    out_h, arg_h = pool_ops.max_pool2d_forward(x, pool, s, pads)
    out_d, arg_d = pool_ops.max_pool2d_forward(dev(x), pool, s, pads)
    assert_agree((out_h, arg_h), (out_d, arg_d), dtype, "max pool")
    g = rand(rng, out_h.shape, dtype)
    assert_agree(pool_ops.max_pool2d_backward(g, arg_h, shape, pool, s, pads),
                 pool_ops.max_pool2d_backward(dev(g), arg_d, shape, pool, s, pads), dtype,
                 "max pool dX")
    out_h, cnt_h = pool_ops.avg_pool2d_forward(x, pool, s, pads)
    out_d, cnt_d = pool_ops.avg_pool2d_forward(dev(x), pool, s, pads)
    assert_agree(out_h, out_d, dtype, "avg pool")
    assert_agree(pool_ops.avg_pool2d_backward(g, cnt_h, shape, pool, s, pads),
                 pool_ops.avg_pool2d_backward(dev(g), cnt_d, shape, pool, s, pads), dtype,
                 "avg pool dX")
    for fwd, bwd in ((pool_ops.global_avg_pool2d_forward, pool_ops.global_avg_pool2d_backward),
                     (pool_ops.global_max_pool2d_forward, None)):
        oh, ch = fwd(x)
        od, cd = fwd(dev(x))
        assert_agree(oh, od, dtype, fwd.__name__)
        gg = rand(rng, oh.shape, dtype)
        if bwd is not None:
            assert_agree(bwd(gg, ch), bwd(dev(gg), cd), dtype, "global avg dX")
        else:
            assert_agree(pool_ops.global_max_pool2d_backward(gg, ch, shape),
                         pool_ops.global_max_pool2d_backward(dev(gg), cd, shape), dtype,
                         "global max dX")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", sorted(act_ops.ACTIVATIONS))
def test_activations(name: str, dtype: Any) -> None:
    rng = np.random.default_rng(3)
    x = rand(rng, (5, 7), dtype) * 3
    _, fwd, bwd = act_ops.get_activation(name)
    y_h, y_d = fwd(x.copy()), fwd(dev(x))
    assert_agree(y_h, y_d, dtype, f"{name}")
    g = rand(rng, x.shape, dtype)
    assert_agree(bwd(g, y_h, x), bwd(dev(g), y_d, dev(x)), dtype, f"{name} backward")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_losses(dtype: Any, smoothing: float) -> None:
    rng = np.random.default_rng(4)
    z = rand(rng, (6, 5), dtype) * 2
    labels = rng.integers(0, 5, 6)
    for host_labels in (True, False):  # host labels are moved to the logits' device
        lab_d = labels if host_labels else dev(labels)
        lh, gh = loss_ops.softmax_cross_entropy(z, labels, smoothing)
        ld, gd = loss_ops.softmax_cross_entropy(dev(z), lab_d, smoothing)
        assert isinstance(ld, float)
        assert_agree((lh, gh), (ld, gd), dtype, "softmax cross-entropy")
        p = act_ops.softmax(z)
        lh, gh = loss_ops.categorical_cross_entropy(p, labels, label_smoothing=smoothing)
        ld, gd = loss_ops.categorical_cross_entropy(dev(p), lab_d, label_smoothing=smoothing)
        assert_agree((lh, gh), (ld, gd), dtype, "categorical cross-entropy")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_batch_norm(dtype: Any) -> None:
    rng = np.random.default_rng(5)
    x = rand(rng, (4, 5, 5, 6), dtype) * 3 + 1
    gamma, beta = rand(rng, (6,), dtype), rand(rng, (6,), dtype)
    yh, ch = bn_ops.batch_norm_forward(x, gamma, beta, 1e-3)
    yd, cd = bn_ops.batch_norm_forward(dev(x), dev(gamma), dev(beta), 1e-3)
    assert_agree((yh, ch.mean, ch.var), (yd, cd.mean, cd.var), dtype, "batch norm")
    g = rand(rng, x.shape, dtype)
    assert_agree(bn_ops.batch_norm_backward(g, ch), bn_ops.batch_norm_backward(dev(g), cd),
                 dtype, "batch norm backward")
    assert_agree(bn_ops.batch_norm_inference(x, ch.mean, ch.var, gamma, beta, 1e-3),
                 bn_ops.batch_norm_inference(dev(x), cd.mean, cd.var, dev(gamma), dev(beta),
                                             1e-3), dtype, "batch norm inference")


def test_padding_ops() -> None:
    x = rand(np.random.default_rng(6), (2, 4, 5, 3), np.float64)
    pads = ((1, 2), (0, 3))
    assert_agree(pad_ops.pad2d(x, pads, -1.0), pad_ops.pad2d(dev(x), pads, -1.0), np.float64)
    assert_agree(pad_ops.dilate2d(x, (2, 3)), pad_ops.dilate2d(dev(x), (2, 3)), np.float64)


# ----------------------------------------------------------------------------- layers

LAYERS: list[tuple[Callable[[str], cnnlab.Layer], tuple[int, ...]]] = [
    (lambda dt: cnnlab.Conv2D(8, 3, padding="same", activation="relu", dtype=dt), (10, 10, 8)),
    (lambda dt: cnnlab.Conv2D(4, 2, strides=2, activation="tanh", dtype=dt), (9, 9, 3)),
    (lambda dt: cnnlab.Conv2D(6, 3, activation="gelu", dtype=dt), (8, 8, 4)),
    (lambda dt: cnnlab.Dense(7, activation="sigmoid", dtype=dt), (12,)),
    (lambda dt: cnnlab.Dense(5, activation="elu", dtype=dt), (12,)),
    (lambda dt: cnnlab.MaxPooling2D(2, dtype=dt), (8, 8, 3)),
    (lambda dt: cnnlab.AveragePooling2D(3, strides=2, padding="same", dtype=dt), (7, 7, 3)),
    (lambda dt: cnnlab.GlobalAveragePooling2D(dtype=dt), (5, 5, 4)),
    (lambda dt: cnnlab.GlobalMaxPooling2D(keepdims=True, dtype=dt), (5, 5, 4)),
    (lambda dt: cnnlab.BatchNormalization(dtype=dt), (4, 4, 6)),
    (lambda dt: cnnlab.ZeroPadding2D(((1, 0), (2, 1)), dtype=dt), (4, 4, 2)),
    (lambda dt: cnnlab.Flatten(dtype=dt), (3, 3, 2)),
    (lambda dt: cnnlab.Activation("softmax", dtype=dt), (6,)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("index", range(len(LAYERS)))
def test_layers_forward_backward(index: int, dtype: str) -> None:
    make, shape = LAYERS[index]
    npdtype = np.float32 if dtype == "float32" else np.float64
    host, device = make(dtype), make(dtype)
    host.build(shape, np.random.default_rng(7))
    device.build(shape, np.random.default_rng(7))  # the same seed: the same weights
    device.to_device("gpu")
    rng = np.random.default_rng(8)
    x = rand(rng, (3, *shape), npdtype)
    yh, yd = host.forward(x.copy(), training=True), device.forward(dev(x), training=True)
    assert_agree(yh, yd, npdtype, f"{host.kind} forward")
    g = rand(rng, yh.shape, npdtype)
    assert_agree(host.backward(g), device.backward(dev(g)), npdtype, f"{host.kind} dX")
    assert_agree(host.grads, device.grads, npdtype, f"{host.kind} grads")
    assert_agree(host.weights, device.weights, npdtype, f"{host.kind} weights (BN stats)")
    assert_agree(host.forward(x.copy()), device.forward(dev(x)), npdtype, "inference")


def test_dropout_mask_is_drawn_on_the_device_and_seeded() -> None:
    outs = []
    for _ in range(2):
        layer = cnnlab.Dropout(0.5)
        layer.build((1000,), np.random.default_rng(9))
        y = layer.forward(dev(np.ones((8, 1000), np.float32)), training=True)
        assert backend.device_of(y) == "gpu" and backend.device_of(layer._mask) == "gpu"
        outs.append(backend.to_numpy(y))
    np.testing.assert_array_equal(outs[0], outs[1])
    kept = outs[0] != 0
    assert abs(kept.mean() - 0.5) < 0.02 and np.all(outs[0][kept] == 2.0)


# ----------------------------------------------------------------------------- models


def test_model_steps_agree_with_the_cpu() -> None:
    x = np.random.default_rng(10).random((64, 28, 28, 1), dtype=np.float32)
    y = np.arange(64) % 10
    cpu, gpu = cnnlab.seed_model(seed=0), cnnlab.seed_model(seed=0).to("gpu")
    for layer in (*cpu.layers, *gpu.layers):  # dropout masks differ by device: switch them off
        if isinstance(layer, cnnlab.Dropout):
            layer.rate = 0.0
    for m in (cpu, gpu):
        m.compile({"name": "sgd", "learning_rate": 0.05, "momentum": 0.9})
    for i in range(3):
        lc, cc = cpu.train_on_batch(x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16])
        lg, cg = gpu.train_on_batch(x[i * 16:(i + 1) * 16], y[i * 16:(i + 1) * 16])
        assert abs(lc - lg) <= 1e-4 * max(1.0, abs(lc))
    for layer in gpu.layers:
        assert all(backend.device_of(a) == "gpu" for a in layer.weights + layer.grads)
    assert all(backend.device_of(a) == "gpu"
               for arrays in gpu.optimizer.slots.values() for a in arrays)
    for wc, wg in zip(cpu.get_weights(), gpu.get_weights(), strict=True):
        assert_agree(wc, dev(wg), np.float32, "weights after 3 steps")
    assert_agree(cpu.predict(x), dev(gpu.predict(x)), np.float32, "predict")


def test_short_mnist_run_reaches_the_cpu_accuracy(mnist_small: tuple) -> None:
    x_train, y_train, x_test, y_test = mnist_small
    accuracy = {}
    for device in ("cpu", "gpu"):
        model = cnnlab.seed_model(seed=0).to(device)
        model.compile("adam")
        model.fit(x_train, y_train, epochs=1, batch_size=128, verbose=0)
        accuracy[device] = model.evaluate(x_test, y_test)[1]
    # the dropout masks differ by device, so the runs are not identical: the same
    # accuracy within 3 points on 1,000 test images (about 0.93 after this epoch)
    assert abs(accuracy["gpu"] - accuracy["cpu"]) <= 0.03, accuracy


def test_saved_on_the_gpu_loaded_on_the_cpu_predicts_the_same(tmp_path: Path,
                                                              mnist_small: tuple) -> None:
    x_train, y_train, x_test, _ = mnist_small
    model = cnnlab.seed_model(seed=1).to("gpu")
    model.compile("adam")
    model.fit(x_train[:1024], y_train[:1024], epochs=1, batch_size=128, verbose=0)
    on_gpu = model.predict(x_test)
    assert isinstance(on_gpu, np.ndarray)
    loaded = cnnlab.load_model(model.save(tmp_path / "m.safetensors"))
    assert loaded.device == "cpu"
    np.testing.assert_allclose(loaded.predict(x_test), on_gpu, rtol=0, atol=1e-5)
    again = loaded.to("gpu")  # and back: the same weights on the device
    np.testing.assert_allclose(again.predict(x_test), on_gpu, rtol=0, atol=1e-6)


def test_gpu_resume_continues_as_if_never_interrupted(tmp_path: Path,
                                                      mnist_small: tuple) -> None:
    """Dropout masks are seeded per step from the checkpointed generator: a resumed run
    draws the same masks (a different mask would move the weights far more than 1e-5)."""
    x, y = mnist_small[0][:1024], mnist_small[1][:1024]
    straight = cnnlab.seed_model(seed=2).to("gpu")
    straight.compile("adam")
    straight.fit(x, y, epochs=2, batch_size=128, verbose=0)
    first = cnnlab.seed_model(seed=2).to("gpu")
    first.compile("adam")
    first.fit(x, y, epochs=1, batch_size=128, verbose=0, checkpoint_dir=tmp_path)
    resumed = cnnlab.seed_model(seed=2).to("gpu")
    resumed.compile("adam")
    resumed.fit(x, y, epochs=2, batch_size=128, verbose=0, checkpoint_dir=tmp_path, resume=True)
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)


def test_cli_trains_on_the_gpu(tmp_path: Path) -> None:
    from cnnlab.cli import main

    out = tmp_path / "run"
    rc = main(["train", "--device", "gpu", "--epochs", "1", "--train-limit", "2000",
               "--test-limit", "500", "--out", str(out), "--quiet", "--no-figures"])
    assert rc == 0
    model = cnnlab.load_model(out / "model.safetensors")
    assert model.device == "cpu" and model.count_params() == 1134426
