"""The fast paths (im2col, Winograd, tiled pooling) against the slides' reference formulas."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab.ops import conv as conv_ops
from cnnlab.ops import pooling as pool_ops
from cnnlab.ops import winograd
from cnnlab.ops.padding import resolve_padding

TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}

# (N, H, W, C_in, C_out, kernel, strides, padding)
CONFIGS = [
    (2, 7, 9, 3, 4, (3, 3), (1, 1), "valid"),
    (2, 8, 6, 10, 5, (3, 3), (1, 1), "same"),
    (3, 9, 8, 16, 6, (3, 3), (1, 1), "full"),
    (2, 7, 7, 9, 4, (3, 3), (1, 1), ((0, 1), (2, 0))),  # asymmetric explicit
    (2, 11, 6, 8, 3, (3, 3), (2, 2), "same"),  # 3x3 but stride 2: no Winograd
    (2, 8, 9, 3, 5, (2, 2), (1, 1), "same"),  # even kernel, asymmetric 'same'
    (2, 10, 7, 4, 3, (4, 2), (2, 1), "same"),
    (1, 9, 9, 2, 3, (5, 5), (2, 2), "valid"),
    (2, 6, 10, 3, 2, (1, 3), (1, 2), 1),
    # the seed model's layers (small batch)
    (2, 28, 28, 1, 16, (2, 2), (1, 1), "same"),
    (2, 14, 14, 16, 128, (3, 3), (1, 1), "valid"),
    (2, 12, 12, 128, 256, (3, 3), (1, 1), "valid"),
]


def _case(cfg: tuple, dtype: type, seed: int = 0) -> tuple:
    n, h, w, ci, co, k, s, padding = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, ci)).astype(dtype)
    kern = (rng.standard_normal((*k, ci, co)) / np.sqrt(k[0] * k[1] * ci)).astype(dtype)
    b = rng.standard_normal(co).astype(dtype)
    pads = resolve_padding(padding, k, s, (h, w))
    return x, kern, b, s, pads, rng


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("algorithm", [None, "im2col", "winograd"])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_conv_fast_matches_reference(cfg: tuple, algorithm: str | None, dtype: type) -> None:
    x, k, b, s, pads, rng = _case(cfg, dtype)
    out, cache = conv_ops.conv2d_forward(x, k, b, s, pads, algorithm=algorithm)
    ref = conv_ops.conv2d_forward_reference(x, k, b, s, pads)
    assert out.shape == ref.shape and out.dtype == dtype
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    g = rng.standard_normal(out.shape).astype(dtype)
    dx, dk, db = conv_ops.conv2d_backward(g, cache, k, x.shape, s, pads)
    np.testing.assert_allclose(
        dx, conv_ops.conv2d_backward_input_reference(g, k, x.shape[1:3], s, pads), **TOL[dtype])
    np.testing.assert_allclose(
        dk, conv_ops.conv2d_backward_filter_reference(x, g, k.shape[:2], s, pads), **TOL[dtype])
    np.testing.assert_allclose(db, g.sum(axis=(0, 1, 2)), **TOL[dtype])
    assert dx.dtype == dk.dtype == dtype
    none, dk2, _ = conv_ops.conv2d_backward(g, cache, k, x.shape, s, pads, need_input_grad=False)
    assert none is None
    np.testing.assert_array_equal(dk2, dk)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_winograd_only_where_valid(cfg: tuple) -> None:
    x, k, b, s, pads, _ = _case(cfg, np.float32)
    _, cache = conv_ops.conv2d_forward(x, k, b, s, pads, algorithm="winograd")
    valid = k.shape[:2] == (3, 3) and s == (1, 1)
    assert cache.algorithm == ("winograd" if valid else "im2col")
    assert winograd.winograd_applicable(k.shape[:2], s) == valid
    auto = conv_ops.choose_algorithm(k.shape, s, out_pixels=10**6)
    assert auto == ("winograd" if valid and k.shape[2] >= conv_ops.WINOGRAD_MIN_CHANNELS
                    else "im2col")


def test_winograd_small_batches_use_im2col() -> None:
    assert conv_ops.choose_algorithm((3, 3, 128, 256), (1, 1), out_pixels=100) == "im2col"


def test_winograd_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch) -> None:
    x, k, b, s, pads, rng = _case((9, 12, 12, 8, 5, (3, 3), (1, 1), "same"), np.float64)
    out, cache = winograd.conv3x3_forward(x, k, b, pads)
    g = rng.standard_normal(out.shape)
    dx, dk, _ = winograd.conv3x3_backward(g, cache, x.shape, pads)
    monkeypatch.setattr(winograd, "CHUNK_TILES", 40)  # several chunks, several groups
    out2, cache2 = winograd.conv3x3_forward(x, k, b, pads)
    dx2, dk2, _ = winograd.conv3x3_backward(g, cache2, x.shape, pads)
    np.testing.assert_array_equal(out2, out)  # per-image work is independent of chunking
    np.testing.assert_array_equal(dx2, dx)
    np.testing.assert_allclose(dk2, dk, rtol=1e-12)  # only the summation order differs
    inf, none = winograd.conv3x3_forward(x, k, b, pads, keep=False)
    assert none is None
    np.testing.assert_array_equal(inf, out)


def _max_pool_reference(x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    n, h, w, c = x.shape
    win = x.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 5, 2, 4)
    win = win.reshape(n, h // p, w // p, c, p * p)
    return win.max(axis=-1), win.argmax(axis=-1)  # argmax: first maximum


@pytest.mark.parametrize("shape,p", [((3, 8, 6, 5), 2), ((2, 28, 28, 16), 2), ((2, 9, 6, 3), 3)])
def test_max_pool_tiled_path_ties_and_gradient(shape: tuple, p: int) -> None:
    rng = np.random.default_rng(1)
    x = np.round(rng.standard_normal(shape) * 2) / 2  # many ties
    x[:, :p, :p, :] = 1.0  # a window of equal values: the first must win
    pads = ((0, 0), (0, 0))
    out, arg = pool_ops.max_pool2d_forward(x, (p, p), (p, p), pads)
    ref_out, ref_arg = _max_pool_reference(x, p)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(arg, ref_arg)
    assert (arg[:, 0, 0, :] == 0).all()
    g = rng.standard_normal(out.shape)
    dx = pool_ops.max_pool2d_backward(g, arg, x.shape, (p, p), (p, p), pads)
    onehot = ref_arg[..., None] == np.arange(p * p)
    n, h, w, c = x.shape
    expect = (onehot * g[..., None]).reshape(n, h // p, w // p, c, p, p)
    expect = expect.transpose(0, 1, 4, 2, 5, 3).reshape(x.shape)
    np.testing.assert_array_equal(dx, expect)


def _train(seed: int, steps: int = 2) -> list[np.ndarray]:
    model = cnnlab.seed_model(seed=seed)
    model.compile("adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(seed)
    x = rng.random((16, 28, 28, 1), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    for _ in range(steps):
        model.train_on_batch(x, y)
    return model.get_weights()


def test_seeded_training_is_bit_reproducible() -> None:
    a, b = _train(3), _train(3)
    for wa, wb in zip(a, b, strict=True):
        np.testing.assert_array_equal(wa, wb)


def test_seed_model_layers_use_winograd_in_training() -> None:
    model = cnnlab.seed_model(seed=0)
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    algos = []
    for layer in model.layers:
        x = layer.forward(x, training=True)
        if isinstance(layer, cnnlab.Conv2D):
            algos.append(layer._cache[0].algorithm)  # type: ignore[index]
    assert algos == ["im2col", "winograd", "winograd"]


# --------------------------------------------------------------------------- the transforms
# The plain (N, H, W, C) transforms in ops/winograd.py are the readable statement
# of each formula; the (H, W, N, C) ones that training runs must equal them.


def _to_plain(a, th, tw, n):
    """(16, th*tw*n, C) in (th, tw, n) order -> (16, n*th*tw, C) in (n, th, tw) order."""
    c = a.shape[-1]
    return a.reshape(16, th, tw, n, c).transpose(0, 3, 1, 2, 4).reshape(16, n * th * tw, c)


def _to_fast(a, th, tw, n):
    c = a.shape[-1]
    return np.ascontiguousarray(
        a.reshape(16, n, th, tw, c).transpose(0, 2, 3, 1, 4).reshape(16, th * tw * n, c))


@pytest.mark.parametrize("n, hp, wp, c", [(2, 12, 10, 3), (3, 6, 8, 5), (1, 4, 4, 2)])
def test_hwnc_transforms_equal_the_plain_ones(n, hp, wp, c):
    from cnnlab.ops import winograd as W

    rng = np.random.default_rng(n * 100 + hp)
    th, tw = W._tile_counts(hp, wp)
    xpad = rng.standard_normal((n, hp, wp, c))
    out = np.empty((16, th * tw * n, c))
    fast = W._input_transform_hwnc(np.ascontiguousarray(xpad.transpose(1, 2, 0, 3)), th, tw, out)
    np.testing.assert_allclose(_to_plain(fast, th, tw, n), W.input_transform(xpad, th, tw),
                               rtol=1e-12, atol=1e-12)

    m = rng.standard_normal((16, n * th * tw, c))
    plain = W.output_transform(m, (n, th, tw), np.empty((n, 2 * th, 2 * tw, c)))
    fast = W._output_transform_hwnc(_to_fast(m, th, tw, n), th, tw, n)
    np.testing.assert_allclose(fast.transpose(2, 0, 1, 3), plain, rtol=1e-12, atol=1e-12)

    g = rng.standard_normal((n, 2 * th, 2 * tw, c))
    out = np.empty((16, th * tw * n, c))
    fast = W._grad_transform_hwnc(np.ascontiguousarray(g.transpose(1, 2, 0, 3)), th, tw, out)
    np.testing.assert_allclose(_to_plain(fast, th, tw, n), W.grad_transform(g, (n, th, tw)),
                               rtol=1e-12, atol=1e-12)

    dv = rng.standard_normal((16, n * th * tw, c))
    plain = W.input_grad_transform(dv, (n, th, tw), (hp, wp))
    fast = W._input_grad_transform_hwnc(_to_fast(dv, th, tw, n), th, tw, n, (hp, wp))
    np.testing.assert_allclose(fast.transpose(2, 0, 1, 3), plain, rtol=1e-12, atol=1e-12)
