"""The fast paths (im2col, Winograd, tiled pooling) against the slides' reference formulas."""

from __future__ import annotations

import numpy as np
import pytest

import cnnlab
from cnnlab.ops import conv as conv_ops
from cnnlab.ops import pooling as pool_ops
from cnnlab.ops import schedule, winograd
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


@pytest.fixture(params=["numpy", "jit"])
def jit_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Runs a test with the NumPy paths and with the compiled kernels (cnnlab.ops.jit)."""
    monkeypatch.setenv("CNNLAB_JIT", "1" if request.param == "jit" else "0")
    monkeypatch.setattr(pool_ops, "JIT_MIN_ELEMENTS", 0)  # the small test arrays too
    on = request.param == "jit"
    # Numba is a dependency: the compiled path must be there
    assert winograd.use_jit(np) == on and pool_ops._jit_2x2(np, (2, 2), 1) == on
    return str(request.param)


def _case(cfg: tuple, dtype: type, seed: int = 0) -> tuple:
    n, h, w, ci, co, k, s, padding = cfg
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, ci)).astype(dtype)
    kern = (rng.standard_normal((*k, ci, co)) / np.sqrt(k[0] * k[1] * ci)).astype(dtype)
    b = rng.standard_normal(co).astype(dtype)
    pads = resolve_padding(padding, k, s, (h, w))
    return x, kern, b, s, pads, rng


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("impl", ["auto", "im2col", "winograd"])
@pytest.mark.parametrize("cfg", CONFIGS)
def test_conv_fast_matches_reference(cfg: tuple, impl: str, dtype: type, jit_path: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Winograd with F(2x2, 3x3) tiles here; the larger tiles, whose float32
    # rounding grows with the tile, have their own test below.
    monkeypatch.setattr(winograd, "TILE_SIZES", (2,))
    x, k, b, s, pads, rng = _case(cfg, dtype)
    out, cache = conv_ops.conv2d_forward(x, k, b, s, pads, impl=impl)
    ref = conv_ops.conv2d_forward_reference(x, k, b, s, pads)
    assert out.shape == ref.shape and out.dtype == dtype
    np.testing.assert_allclose(out, ref, **TOL[dtype])
    g = rng.standard_normal(out.shape).astype(dtype)
    dx, dk, db = conv_ops.conv2d_backward(g, cache)
    np.testing.assert_allclose(
        dx, conv_ops.conv2d_backward_input_reference(g, k, x.shape[1:3], s, pads), **TOL[dtype])
    np.testing.assert_allclose(
        dk, conv_ops.conv2d_backward_filter_reference(x, g, k.shape[:2], s, pads), **TOL[dtype])
    np.testing.assert_allclose(db, g.sum(axis=(0, 1, 2)), **TOL[dtype])
    assert dx.dtype == dk.dtype == dtype
    none, dk2, _ = conv_ops.conv2d_backward(g, cache, need_input_grad=False)
    assert none is None
    np.testing.assert_array_equal(dk2, dk)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_winograd_only_where_valid(cfg: tuple) -> None:
    x, k, b, s, pads, _ = _case(cfg, np.float32)
    _, cache = conv_ops.conv2d_forward(x, k, b, s, pads, impl="winograd")
    valid = k.shape[:2] == (3, 3) and s == (1, 1)
    assert cache.impl == ("winograd" if valid else "im2col")
    assert winograd.winograd_applicable(k.shape[:2], s) == valid
    auto = conv_ops.choose_algorithm(k.shape, s, out_pixels=10**6)
    assert auto == ("winograd" if valid and k.shape[2] >= conv_ops.WINOGRAD_MIN_CHANNELS
                    else "im2col")


def test_winograd_small_batches_use_im2col() -> None:
    assert conv_ops.choose_algorithm((3, 3, 128, 256), (1, 1), out_pixels=100) == "im2col"
    # narrow layers need WINOGRAD_MIN_PIXELS, wide ones WINOGRAD_WIDE_MIN_PIXELS
    assert conv_ops.choose_algorithm((3, 3, 16, 128), (1, 1), out_pixels=300) == "im2col"
    assert conv_ops.choose_algorithm((3, 3, 128, 256), (1, 1), out_pixels=300) == "winograd"
    assert conv_ops.choose_algorithm((3, 3, 16, 128), (1, 1), out_pixels=600) == "winograd"


def _close_f64(want: np.ndarray) -> dict:
    """float64 agreement up to rounding: 1e-12 relative, and 1e-12 of the array's
    largest magnitude for entries near zero (whose relative error rounding can blow up)."""
    return dict(rtol=1e-12, atol=1e-12 * float(np.abs(want).max()))


def test_winograd_chunking_does_not_change_results(monkeypatch: pytest.MonkeyPatch,
                                                   jit_path: str) -> None:
    """More, smaller chunks give the same results, up to float64 rounding.

    Not bit for bit: a chunk's GEMMs have as many rows as its tiles, and BLAS
    picks its kernels, and so their rounding, by matrix shape (on an AMD Zen 3
    without AVX-512, 114 of the 6,480 outputs differed by up to 5.8e-15; dk and
    db also sum the chunks in another order). A misplaced chunk boundary (an
    image skipped, shifted or counted twice) is off by O(1), about 1e11 times
    the tolerance.
    """
    x, k, b, s, pads, rng = _case((9, 12, 12, 8, 5, (3, 3), (1, 1), "same"), np.float64)
    gathers: list[int] = []  # the images of each chunk the forward transforms
    name = "forward_tiles_jit" if jit_path == "jit" else "forward_tiles"
    chunk_fn = getattr(winograd, name)

    def counting_chunk(xpad: np.ndarray, *args: object) -> None:
        gathers.append(len(xpad))
        chunk_fn(xpad, *args)

    monkeypatch.setattr(winograd, name, counting_chunk)
    out, cache = winograd.conv3x3_forward(x, k, b, pads)
    g = rng.standard_normal(out.shape)
    dx, dk, db = winograd.conv3x3_backward(g, cache, x.shape, pads)
    chunks, gathers[:] = len(gathers), []
    monkeypatch.setattr(schedule, "CHUNK_ROWS", 40 * 16)  # several chunks, several groups
    out2, cache2 = winograd.conv3x3_forward(x, k, b, pads)
    dx2, dk2, db2 = winograd.conv3x3_backward(g, cache2, x.shape, pads)
    assert len(gathers) > chunks and sum(gathers) == len(x)  # re-chunked, every image once
    for got, want in ((out2, out), (dx2, dx), (dk2, dk), (db2, db)):
        np.testing.assert_allclose(got, want, **_close_f64(want))
    # inference (no cache kept) with the same chunking is the same computation: bit for bit
    inf, none = winograd.conv3x3_forward(x, k, b, pads, keep=False)
    assert none is None
    np.testing.assert_array_equal(inf, out2)


def _max_pool_reference(x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    n, h, w, c = x.shape
    win = x.reshape(n, h // p, p, w // p, p, c).transpose(0, 1, 3, 5, 2, 4)
    win = win.reshape(n, h // p, w // p, c, p * p)
    return win.max(axis=-1), win.argmax(axis=-1)  # argmax: first maximum


@pytest.mark.parametrize("shape,p", [((3, 8, 6, 5), 2), ((2, 28, 28, 16), 2), ((2, 9, 6, 3), 3)])
def test_max_pool_tiled_path_ties_and_gradient(shape: tuple, p: int, jit_path: str) -> None:
    rng = np.random.default_rng(1)
    x = np.round(rng.standard_normal(shape) * 2) / 2  # many ties
    x[:, :p, :p, :] = 1.0  # a window of equal values: the first must win
    pads = ((0, 0), (0, 0))
    out, arg = pool_ops.max_pool2d_forward(x, (p, p), (p, p), pads)
    ref_out, ref_arg = _max_pool_reference(x, p)
    np.testing.assert_array_equal(out, ref_out)
    np.testing.assert_array_equal(arg, ref_arg)
    assert (arg[:, 0, 0, :] == 0).all()
    only, none = pool_ops.max_pool2d_forward(x, (p, p), (p, p), pads, need_argmax=False)
    assert none is None
    np.testing.assert_array_equal(only, out)
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
            algos.append(layer._cache[0].impl)  # type: ignore[index]
    assert algos == ["im2col", "winograd", "winograd"]


# --------------------------------------------------------------------------- Winograd tiles


@pytest.mark.parametrize("m", winograd.TILE_SIZES)
def test_transform_matrices_are_exact(m: int) -> None:
    """A^T [(G g) * (B^T d)] equals the correlation of d with g, in exact rationals."""
    from fractions import Fraction

    at, g, bt = winograd.exact_transform_matrices(m)
    a = m + 2
    assert (len(at), len(at[0]), len(g), len(g[0]), len(bt), len(bt[0])) == (m, a, a, 3, a, a)
    for k in range(a):  # d = e_k
        for s in range(3):  # g = e_s
            gg = [g[j][s] for j in range(a)]
            bd = [bt[j][k] for j in range(a)]
            y = [sum((at[i][j] * gg[j] * bd[j] for j in range(a)), Fraction(0)) for i in range(m)]
            assert y == [Fraction(int(k == i + s)) for i in range(m)], (k, s)
    f_at, f_g, f_bt = winograd.transform_matrices(m)
    assert np.array_equal(f_at, np.array(at, dtype=float))
    assert np.array_equal(f_g, np.array(g, dtype=float))
    assert np.array_equal(f_bt, np.array(bt, dtype=float))


def test_f2_matrices_are_small_and_exact_in_float32() -> None:
    for mat in winograd.transform_matrices(2):  # entries 0, +-1, +-1/2
        assert set(np.abs(mat).ravel()) <= {0.0, 0.5, 1.0}
        assert np.array_equal(mat.astype(np.float32), mat)


def test_choose_tile() -> None:
    assert winograd.choose_tile((10, 10)) == 5  # 2x2 tiles of 5: 196 products, F(2x2): 400
    assert winograd.choose_tile((12, 12)) == 4  # 3x3 tiles of 4: 324, F(2x2): 576
    assert winograd.choose_tile((1, 1)) == 2
    for hw in [(3, 7), (26, 26), (9, 4)]:
        assert winograd.choose_tile(hw) in winograd.TILE_SIZES


def test_gather_and_scatter_tiles_are_adjoint() -> None:
    rng = np.random.default_rng(5)
    m, th, tw = 3, 2, 3
    x = rng.standard_normal((2, m * th + 2, m * tw + 2, 4))
    d = winograd.gather_tiles(x, m, th, tw, np.empty((m + 2, m + 2, 2, th, tw, 4)))
    # image 1, tile row 1, tile column 2: the 5x5 window starting at (m, 2m)
    assert np.array_equal(d[:, :, 1, 1, 2], x[1, m : m + 5, 2 * m : 2 * m + 5])
    y = rng.standard_normal(d.shape)
    back = winograd.scatter_tiles(y, m, np.zeros_like(x))
    np.testing.assert_allclose(np.vdot(d, y), np.vdot(x, back), rtol=1e-12)


#: float32 error bound for Winograd tiles, relative to the largest magnitude of
#: each result. Bigger tiles round more (the transforms' entries grow with the
#: interpolation points): measured about 1e-6 for m = 2 and 1e-5 for m = 6,
#: where im2col gives a few 1e-7. float64 shows the algorithm itself is exact.
WINOGRAD_F32_BOUND = 3e-5


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", winograd.TILE_SIZES)
@pytest.mark.parametrize("cfg", [
    (2, 7, 9, 3, 4, "valid"),  # output 5x7: partial tiles for most m
    (3, 9, 8, 16, 6, "full"),
    (2, 14, 14, 16, 128, "valid"),  # the seed model's conv2d_1
    (2, 12, 12, 128, 256, "valid"),  # and conv2d_2
])
def test_winograd_every_tile_matches_reference(cfg: tuple, m: int, dtype: type,
                                               jit_path: str) -> None:
    n, h, w, ci, co, padding = cfg
    x, k, b, _, pads, rng = _case((n, h, w, ci, co, (3, 3), (1, 1), padding), dtype)
    x64, k64, b64 = (a.astype(np.float64) for a in (x, k, b))
    out, cache = winograd.conv3x3_forward(x, k, b, pads, m=m, relu=False)
    assert cache is not None and cache.m == m and out.dtype == dtype
    ref = conv_ops.conv2d_forward_reference(x64, k64, b64, (1, 1), pads)
    g = rng.standard_normal(out.shape).astype(dtype)
    dx, dk, db = winograd.conv3x3_backward(g, cache, x.shape, pads)
    g64 = g.astype(np.float64)
    expect = [
        (out, ref),
        (dx, conv_ops.conv2d_backward_input_reference(g64, k64, x.shape[1:3], (1, 1), pads)),
        (dk, conv_ops.conv2d_backward_filter_reference(x64, g64, (3, 3), (1, 1), pads)),
        (db, g64.sum(axis=(0, 1, 2))),
    ]
    bound = 1e-10 if dtype == np.float64 else WINOGRAD_F32_BOUND
    for got, want in expect:
        assert got.shape == want.shape and got.dtype == dtype
        err = np.abs(got - want).max() / np.abs(want).max()
        assert err <= bound, (m, err)


def test_winograd_relu_fused_forward_and_backward(jit_path: str) -> None:
    x, k, b, _, pads, rng = _case((3, 12, 12, 16, 8, (3, 3), (1, 1), "valid"), np.float64)
    out, cache = winograd.conv3x3_forward(x, k, b, pads, relu=True)
    plain, cache2 = winograd.conv3x3_forward(x, k, b, pads)
    np.testing.assert_array_equal(out, np.maximum(plain, 0))
    g = rng.standard_normal(out.shape)
    got = winograd.conv3x3_backward(g, cache, x.shape, pads, relu_output=out)
    want = winograd.conv3x3_backward(g * (out > 0), cache2, x.shape, pads)
    for a, e in zip(got, want, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-12, atol=1e-12)


def test_inference_filter_cache_sees_changed_weights() -> None:
    """Predictions reuse transformed filters only while the kernel is unchanged."""
    model = cnnlab.seed_model(seed=0)
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    layer = model.layers[3]  # conv2d_2: Winograd, m = 5
    first = model.predict(x)
    assert ("winograd", 5) in layer._filter_cache
    np.testing.assert_array_equal(model.predict(x), first)  # a cache hit
    layer.weights[0][...] *= 1.5  # an in-place edit, as an optimizer makes
    changed = model.predict(x)
    fresh = cnnlab.seed_model(seed=0)
    fresh.set_weights(model.get_weights())
    np.testing.assert_array_equal(changed, fresh.predict(x))
    assert not np.array_equal(changed, first)


def test_run_groups_restores_the_blas_thread_count() -> None:
    """Groups run with single-threaded BLAS; other BLAS calls keep every thread."""
    from cnnlab.ops import parallel

    if parallel.WORKERS < 2 or parallel._SET_THREADS is None:
        pytest.skip("needs OpenBLAS and at least two workers")
    before = parallel.blas_threads()
    inside = parallel.run_groups(lambda lo, hi: parallel.blas_threads(), [(0, 1), (1, 2)])
    assert inside == [1, 1]
    assert parallel.blas_threads() == before

    def boom(lo: int, hi: int) -> None:
        raise ValueError("group failed")

    with pytest.raises(ValueError, match="group failed"):
        parallel.run_groups(boom, [(0, 1), (1, 2)])
    assert parallel.blas_threads() == before


def test_training_step_leaves_blas_threads_as_it_found_them() -> None:
    from cnnlab.ops import parallel

    before = parallel.blas_threads()
    model = cnnlab.seed_model(seed=0)
    model.compile("adam", loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    model.train_on_batch(rng.random((32, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, 32))
    model.predict(rng.random((40, 28, 28, 1), dtype=np.float32))
    assert parallel.blas_threads() == before
    assert parallel._running == 0
