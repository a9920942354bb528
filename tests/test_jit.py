"""The compiled kernels (cnnlab.ops.jit): Winograd transforms and 2x2 max pooling.

Each Winograd kernel is checked against the transform written out with the
exact Toom-Cook matrices in float64 (``einsum``), for every tile size, both
dtypes and maps whose tiles stick out; the pooling kernels against the NumPy
path, bit for bit, NaN and ties included. The whole convolution and pooling
through both paths are checked against the slides' formulas in
tests/test_fast_paths.py (its ``jit_path`` fixture).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

from cnnlab.ops import jit, pooling, pooling_jit, winograd, winograd_codegen, winograd_jit

TILE_SIZES = winograd.TILE_SIZES
BOUND = {np.float64: 1e-13, np.float32: 3e-6}  # relative to the reference's largest magnitude


def _mats(m: int) -> tuple[np.ndarray, np.ndarray]:
    at, _, bt = winograd.transform_matrices(m)
    return np.asarray(at), np.asarray(bt)


def _close(got: np.ndarray, want: np.ndarray, dtype: type) -> None:
    assert got.shape == want.shape
    scale = max(float(np.abs(want).max()), 1e-300)
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale
    assert err <= BOUND[dtype], err


def test_generated_kernels_are_up_to_date() -> None:
    """The committed module is what the generator writes (regenerate with
    ``python -m cnnlab.ops.winograd_codegen``)."""
    assert winograd_codegen.TARGET.read_text(encoding="utf-8") == winograd_codegen.generate()


def test_coefficients_hold_every_matrix_entry() -> None:
    for m in TILE_SIZES:
        coef = winograd_codegen.coefficients(m)
        at, _, bt = winograd.exact_transform_matrices(m)
        assert {abs(v) for row in at + bt for v in row} - {0} <= set(coef)
        assert coef[0] == 1


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", TILE_SIZES)
def test_input_transform(m: int, dtype: type) -> None:
    a, (th, tw) = m + 2, (2, 3)
    rng = np.random.default_rng(m)
    xpad = rng.standard_normal((3, m * th + 2, m * tw + 2, 5)).astype(dtype)
    _, bt = _mats(m)
    t0 = 4  # this chunk's tiles start at t0 of a larger array
    v = np.full((a * a, t0 + 3 * th * tw + 2, 5), np.nan, dtype=dtype)
    winograd_jit.input_transform(xpad, m, th, tw, v, t0)
    x64 = xpad.astype(np.float64)
    tiles = np.stack([x64[:, i * m : i * m + a, j * m : j * m + a] for i in range(th)
                      for j in range(tw)], axis=1)  # (n, tiles, a, a, c)
    want = np.einsum("ik,jl,ntklc->ijntc", bt, bt, tiles).reshape(a * a, -1, 5)
    _close(v[:, t0 : t0 + 3 * th * tw], want, dtype)
    assert np.isnan(v[:, :t0]).all() and np.isnan(v[:, t0 + 3 * th * tw :]).all()


def _untile(y: np.ndarray, n: int, th: int, tw: int) -> np.ndarray:
    """(m, m, n * th * tw, c) tiles -> (n, m * th, m * tw, c) map."""
    m, _, _, c = y.shape
    return y.reshape(m, m, n, th, tw, c).transpose(2, 3, 0, 4, 1, 5).reshape(n, th * m, tw * m, c)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", TILE_SIZES)
@pytest.mark.parametrize("relu,bias", [(True, True), (False, False)])
@pytest.mark.parametrize("out_hw", [None, (-1, -2)])  # whole tiles; tiles sticking out
def test_output_transform(m: int, dtype: type, relu: bool, bias: bool,
                          out_hw: tuple[int, int] | None) -> None:
    a, n, th, tw, c = m + 2, 2, 2, 3, 7
    rng = np.random.default_rng(m)
    mm = rng.standard_normal((a * a, n * th * tw, c)).astype(dtype)
    b = rng.standard_normal(c).astype(dtype) if bias else None
    ho, wo = (m * th, m * tw) if out_hw is None else (m * th + out_hw[0], m * tw + out_hw[1])
    out = np.full((n, ho, wo, c), np.nan, dtype=dtype)
    winograd_jit.output_transform(mm, m, b, relu, th, tw, out, np.empty((1, m, m, c), dtype))
    at, _ = _mats(m)
    y = np.einsum("ik,jl,kltc->ijtc", at, at, mm.astype(np.float64).reshape(a, a, -1, c))
    want = _untile(y, n, th, tw)[:, :ho, :wo] + (0 if b is None else b.astype(np.float64))
    if relu:
        want = np.maximum(want, 0)
    _close(out, want, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", TILE_SIZES)
@pytest.mark.parametrize("masked", [True, False])
@pytest.mark.parametrize("out_hw", [None, (-2, -1)])
def test_grad_transform(m: int, dtype: type, masked: bool, out_hw: tuple[int, int] | None) -> None:
    a, n, th, tw, c = m + 2, 2, 3, 2, 6
    rng = np.random.default_rng(m)
    ho, wo = (m * th, m * tw) if out_hw is None else (m * th + out_hw[0], m * tw + out_hw[1])
    grad = rng.standard_normal((n, ho, wo, c)).astype(dtype)
    relu_out = np.maximum(rng.standard_normal((n, ho, wo, c)), 0).astype(dtype)
    dm = np.empty((a * a, n * th * tw, c), dtype=dtype)
    db = np.ones(c, dtype=dtype)  # the kernel adds to it
    winograd_jit.grad_transform(grad, relu_out if masked else None, m, th, tw, dm, db,
                                np.empty((1, m, m, c), dtype))
    g = grad.astype(np.float64) * ((relu_out > 0) if masked else 1)
    gp = np.zeros((n, m * th, m * tw, c))
    gp[:, :ho, :wo] = g
    tiles = gp.reshape(n, th, m, tw, m, c).transpose(2, 4, 0, 1, 3, 5).reshape(m, m, -1, c)
    at, _ = _mats(m)
    want = np.einsum("ik,jl,ijtc->kltc", at, at, tiles).reshape(a * a, -1, c)
    _close(dm, want, dtype)
    _close(db, 1 + g.sum(axis=(0, 1, 2)), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("m", TILE_SIZES)
def test_input_grad_transform_adds_over_overlapping_tiles(m: int, dtype: type) -> None:
    a, n, th, tw, c = m + 2, 2, 3, 2, 4
    rng = np.random.default_rng(m)
    dv = rng.standard_normal((a * a, n * th * tw, c)).astype(dtype)
    dx = np.full((n, m * th + 2, m * tw + 2, c), np.nan, dtype=dtype)  # overwritten
    winograd_jit.input_grad_transform(dv, m, th, tw, dx)
    _, bt = _mats(m)
    dd = np.einsum("ik,jl,ijtc->kltc", bt, bt, dv.astype(np.float64).reshape(a, a, -1, c))
    dd = dd.reshape(a, a, n, th, tw, c)
    want = np.zeros(dx.shape)
    for i in range(th):
        for j in range(tw):
            want[:, i * m : i * m + a, j * m : j * m + a] += dd[:, :, :, i, j].transpose(2, 0, 1, 3)
    _close(dx, want, dtype)


def test_relu_keeps_nan_as_the_numpy_path_does() -> None:
    x = np.random.default_rng(0).standard_normal((2, 12, 12, 16))
    x[1, 5, 5, 3] = np.nan
    k = np.random.default_rng(1).standard_normal((3, 3, 16, 8))
    out, _ = winograd.conv3x3_forward(x, k, None, ((0, 0), (0, 0)), relu=True, keep=False)
    assert winograd.use_jit(np)
    assert np.isnan(out[1]).any() and not np.isnan(out[0]).any()


def test_non_contiguous_inputs(monkeypatch: pytest.MonkeyPatch) -> None:
    """Views (a transposed batch, a strided gradient) give the contiguous arrays' results."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((12, 12, 3, 8)).transpose(2, 0, 1, 3)  # (3, 12, 12, 8), a view
    k = rng.standard_normal((3, 3, 8, 5))
    pads = ((1, 1), (1, 1))
    out, cache = winograd.conv3x3_forward(x, k, None, pads, relu=True)
    g = rng.standard_normal((12, 12, 3, 5)).transpose(2, 0, 1, 3)
    got = winograd.conv3x3_backward(g, cache, x.shape, pads, relu_output=out)
    monkeypatch.setenv("CNNLAB_JIT", "0")
    out2, cache2 = winograd.conv3x3_forward(np.ascontiguousarray(x), k, None, pads, relu=True)
    want = winograd.conv3x3_backward(np.ascontiguousarray(g), cache2, x.shape, pads,
                                     relu_output=out2)
    np.testing.assert_allclose(out, out2, rtol=1e-12, atol=1e-12)
    for a, b in zip(got, want, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("value", ["0", "false", "OFF", "no"])
def test_cnnlab_jit_env_turns_the_kernels_off(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_JIT", value)
    assert not winograd_jit.available() and not winograd.use_jit(np)

    def refuse(*args: object) -> None:
        raise AssertionError("the compiled path ran with CNNLAB_JIT off")

    monkeypatch.setattr(winograd, "forward_tiles_jit", refuse)
    x = np.random.default_rng(0).standard_normal((2, 8, 8, 4))
    winograd.conv3x3_forward(x, np.ones((3, 3, 4, 2)), None, ((0, 0), (0, 0)))


def _clear_caches() -> None:
    for fn in (jit.numba_module, jit.compiles, winograd_jit._compiled, pooling_jit._compiled):
        fn.cache_clear()


def test_without_numba_the_numpy_paths_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """An environment where Numba cannot be imported still trains: the NumPy paths."""
    monkeypatch.setitem(sys.modules, "numba", None)  # import numba -> ImportError
    _clear_caches()
    try:
        assert not jit.available() and not winograd_jit.available()
        assert not pooling_jit.available() and not winograd.use_jit(np)
        x = np.random.default_rng(0).standard_normal((2, 8, 8, 4))
        k = np.random.default_rng(1).standard_normal((3, 3, 4, 2))
        out, _ = winograd.conv3x3_forward(x, k, None, ((0, 0), (0, 0)), m=2)
        from cnnlab.ops import conv as conv_ops
        ref = conv_ops.conv2d_forward_reference(x, k, None, (1, 1), ((0, 0), (0, 0)))
        np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
        pooled, _ = pooling.max_pool2d_forward(x, (2, 2), (2, 2), ((0, 0), (0, 0)))
        np.testing.assert_array_equal(pooled, x.reshape(2, 4, 2, 4, 2, 4).max(axis=(2, 4)))
    finally:
        _clear_caches()  # the next caller imports Numba again
    monkeypatch.undo()
    assert jit.available() and winograd_jit.available() and pooling_jit.available()


def test_a_numba_that_cannot_compile_means_the_numpy_paths(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """If the probe kernel fails to compile (as under atheris's bytecode rewriting), a
    warning names the reason and the NumPy paths run."""
    def broken(fn: object) -> object:
        raise RuntimeError("no LLVM here")

    monkeypatch.setattr(jit, "njit", broken)
    _clear_caches()
    try:
        with pytest.warns(RuntimeWarning, match="Numba cannot compile here.*no LLVM here"):
            assert not jit.available()
        assert not winograd.use_jit(np) and not pooling._jit_2x2(np, (2, 2), 1 << 30)
        x = np.random.default_rng(0).standard_normal((2, 4, 4, 3))
        pooled, _ = pooling.max_pool2d_forward(x, (2, 2), (2, 2), ((0, 0), (0, 0)))
        np.testing.assert_array_equal(pooled, x.reshape(2, 2, 2, 2, 2, 3).max(axis=(2, 4)))
    finally:
        monkeypatch.undo()
        _clear_caches()
    assert jit.available()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(3, 8, 6, 5), (2, 10, 10, 256), (4, 28, 28, 16), (1, 2, 2, 1)])
def test_max_pool_kernels_equal_the_numpy_path(shape: tuple, dtype: type,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Bit for bit: maxima, arg-maxima (first of equal values; 3 for a NaN window, as the
    NumPy formula gives) and gradients, NaN and infinities included."""
    rng = np.random.default_rng(shape[-1])
    x = (np.round(rng.standard_normal(shape) * 2) / 2).astype(dtype)  # many ties
    x[0, 0, 0, 0] = np.nan
    if shape[1] > 2:
        x[0, 2, 3, 0] = np.inf
        x[-1, -1, -1, -1] = -np.inf
    pads = ((0, 0), (0, 0))
    g = rng.standard_normal((shape[0], shape[1] // 2, shape[2] // 2, shape[3])).astype(dtype)
    g.flat[g.size // 2] = np.nan
    monkeypatch.setattr(pooling, "JIT_MIN_ELEMENTS", 0)  # these small arrays too
    got = {}
    for value in ("1", "0"):
        monkeypatch.setenv("CNNLAB_JIT", value)
        assert pooling._jit_2x2(np, (2, 2), x.size) == (value == "1")
        out, arg = pooling.max_pool2d_forward(x, (2, 2), (2, 2), pads)
        only, _ = pooling.max_pool2d_forward(x, (2, 2), (2, 2), pads, need_argmax=False)
        dx = pooling.max_pool2d_backward(g, arg, x.shape, (2, 2), (2, 2), pads)
        got[value] = (out, arg, only, dx)
    for fast, slow in zip(got["1"], got["0"], strict=True):
        assert fast.dtype == slow.dtype
        np.testing.assert_array_equal(fast, slow)  # NaN equals NaN here
    assert np.isnan(got["1"][0][0, 0, 0, 0]) and got["1"][1][0, 0, 0, 0] == 3


def test_small_batches_do_not_import_numba(tmp_path: object) -> None:
    """Predicting one image (the CLI's and the demo's case) stays on the NumPy paths, so a
    process that only does that never pays for importing Numba."""
    import subprocess
    import textwrap

    code = textwrap.dedent("""
        import sys, numpy as np
        from cnnlab.pretrained import load_pretrained
        model = load_pretrained()
        model.predict(np.zeros((1, 28, 28, 1), np.float32))
        print("numba" in sys.modules)
        model.predict(np.zeros((64, 28, 28, 1), np.float32))
        print("numba" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    assert out == ["False", "True"]


def test_shipped_model_predicts_the_same_on_both_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """The MNIST model's probabilities through the compiled transforms and through NumPy's."""
    from cnnlab.pretrained import load_pretrained

    model = load_pretrained()
    x = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    fast = model.predict(x)
    monkeypatch.setenv("CNNLAB_JIT", "0")
    slow = model.predict(x)
    assert np.abs(fast - slow).max() < 1e-5
    assert (fast.argmax(1) == slow.argmax(1)).all()
