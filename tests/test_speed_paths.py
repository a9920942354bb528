"""The speed paths of issue 19 against the slides' reference formulas.

Each fused or reordered step is checked against the literal computation it
replaces: the convolution sums of :mod:`cnnlab.ops.conv`'s reference functions
(float64, so any algebraic slip shows), and plain loops for the tile scatter.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from cnnlab.ops import conv as conv_ops
from cnnlab.ops import parallel, winograd
from cnnlab.ops.padding import output_hw, resolve_padding


def _conv_case(n: int, h: int, w: int, ci: int, co: int, padding: str, seed: int = 0,
               dtype: type = np.float64) -> tuple:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, ci)).astype(dtype)
    k = (rng.standard_normal((3, 3, ci, co)) / np.sqrt(9 * ci)).astype(dtype)
    b = rng.standard_normal(co).astype(dtype)
    return x, k, b, resolve_padding(padding, (3, 3), (1, 1), (h, w)), rng


@pytest.mark.parametrize("m", winograd.TILE_SIZES)
def test_point_one_maps_to_a_constant_tile(m: int) -> None:
    """The bias goes into the Winograd domain at the point 1: exact, for every tile size.

    ``A^T e_ONES`` is all ones, so ``A^T (b e_ONES e_ONES^T) A = b`` on the whole tile,
    and ``(A dY A^T)[ONES, ONES] = sum(dY)`` (the bias gradient)."""
    at, _, _ = winograd.exact_transform_matrices(m)
    assert [row[winograd.ONES] for row in at] == [Fraction(1)] * m
    f_at = winograd.transform_matrices(m)[0]
    e = np.zeros(m + 2)
    e[winograd.ONES] = 1.0
    np.testing.assert_array_equal(f_at @ np.outer(e, e) @ f_at.T, np.ones((m, m)))


@pytest.mark.parametrize("m", winograd.TILE_SIZES)
@pytest.mark.parametrize("relu,use_bias", [(False, True), (True, True), (True, False),
                                           (False, False)])
@pytest.mark.parametrize("cfg", [
    (2, 7, 9, 3, 4, "valid"),  # partial tiles for most m
    (3, 9, 8, 5, 6, "same"),
])
def test_bias_in_winograd_domain_matches_reference(cfg: tuple, relu: bool, use_bias: bool,
                                                   m: int) -> None:
    """Forward with the bias added at the point 1 (and ReLU fused into the untile copy)
    against ``max(correlate(pad(X), F) + b, 0)``; backward's bias gradient, read from
    the Winograd domain, against ``sum dL/dO``."""
    x, k, b, pads, rng = _conv_case(*cfg)
    if not use_bias:
        b = None
    out, cache = winograd.conv3x3_forward(x, k, b, pads, relu=relu, m=m)
    ref = conv_ops.conv2d_forward_reference(x, k, b, (1, 1), pads)
    if relu:
        ref = np.maximum(ref, 0)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(out.shape)
    dx, dk, db = winograd.conv3x3_backward(g, cache, x.shape, pads,
                                           relu_output=out if relu else None)
    dout = g * (out > 0) if relu else g
    np.testing.assert_allclose(db, dout.sum(axis=(0, 1, 2)), rtol=1e-10, atol=1e-10)
    want_dx = conv_ops.conv2d_backward_input_reference(dout, k, x.shape[1:3], (1, 1), pads)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-10, atol=1e-10)
    want_dk = conv_ops.conv2d_backward_filter_reference(x, dout, (3, 3), (1, 1), pads)
    np.testing.assert_allclose(dk, want_dk, rtol=1e-10, atol=1e-10)


def _scatter_literal(dd: np.ndarray, m: int, shape: tuple[int, ...]) -> np.ndarray:
    """Every tile added at its place, one pixel at a time."""
    a, _, n, th, tw, c = dd.shape
    out = np.zeros(shape)
    for ti in range(th):
        for tj in range(tw):
            for i in range(a):
                for j in range(a):
                    out[:, ti * m + i, tj * m + j] += dd[i, j, :, ti, tj]
    return out


@pytest.mark.parametrize("m", winograd.TILE_SIZES)
@pytest.mark.parametrize("tiles", [(1, 1), (2, 3), (3, 1)])
def test_scatter_overwrites_with_the_tile_sums(m: int, tiles: tuple[int, int]) -> None:
    """:func:`scatter_tiles` writes the overlap sums over whatever ``out`` held, and
    adds in the order of adding every position to zeros (so the float32 sums are
    the same as the literal loop's, bit for bit)."""
    th, tw = tiles
    a = m + 2
    rng = np.random.default_rng(m)
    dd = rng.standard_normal((a, a, 2, th, tw, 3))
    shape = (2, m * th + 2, m * tw + 2, 3)
    out = np.full(shape, np.nan)
    got = winograd.scatter_tiles(dd, m, out)
    assert got is out
    np.testing.assert_allclose(got, _scatter_literal(dd, m, shape), rtol=1e-13, atol=1e-13)
    d32 = dd.astype(np.float32)
    zeros = np.zeros(shape, np.float32)
    for i in range(a):  # the previous implementation: every position added to zeros
        for j in range(a):
            zeros[:, i : i + m * (th - 1) + 1 : m, j : j + m * (tw - 1) + 1 : m] += d32[i, j]
    np.testing.assert_array_equal(winograd.scatter_tiles(d32, m, np.empty(shape, np.float32)),
                                  zeros)


@pytest.mark.parametrize("use_bias", [True, False])
@pytest.mark.parametrize("cfg", [
    (3, 28, 28, 1, 16, (2, 2), (1, 1), ((0, 1), (0, 1))),  # the seed model's first layer
    (2, 9, 8, 3, 5, (3, 3), (2, 2), ((1, 1), (1, 1))),
    (1, 4, 5, 8, 3, (3, 3), (1, 1), ((0, 0), (0, 0))),  # 6 rows, 72 weights: bias added after
])
def test_im2col_bias_column_matches_reference(cfg: tuple, use_bias: bool) -> None:
    """im2col with the bias as a last row of the weights (rows end with a 1) where the
    output has more rows than the weights, and the bias gradient from the same GEMM (or
    a GEMV), against the slides' formulas in float64."""
    n, h, w, ci, co, k_hw, s, pads = cfg
    rng = np.random.default_rng(1)
    x = rng.standard_normal((n, h, w, ci))
    k = rng.standard_normal((*k_hw, ci, co))
    b = rng.standard_normal(co) if use_bias else None
    out, cols = conv_ops.conv2d_forward_im2col(x, k, b, s, pads)
    kk = k_hw[0] * k_hw[1] * ci
    fold = use_bias and out.shape[0] * out.shape[1] * out.shape[2] > kk
    assert cols.shape[1] == kk + int(fold)
    if fold:
        np.testing.assert_array_equal(cols[:, kk], 1.0)
    np.testing.assert_allclose(out, conv_ops.conv2d_forward_reference(x, k, b, s, pads),
                               rtol=1e-12, atol=1e-12)
    g = rng.standard_normal(out.shape)
    dx, dk, db = conv_ops.conv2d_backward_im2col(g, cols, k, x.shape, s, pads)
    np.testing.assert_allclose(db, g.sum(axis=(0, 1, 2)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(
        dk, conv_ops.conv2d_backward_filter_reference(x, g, k_hw, s, pads), rtol=1e-12,
        atol=1e-12)
    np.testing.assert_allclose(
        dx, conv_ops.conv2d_backward_input_reference(g, k, x.shape[1:3], s, pads), rtol=1e-12,
        atol=1e-12)


def test_im2col_float32_bias_gradient_is_accurate() -> None:
    """The bias gradient of the first layer sums 128 x 28 x 28 float32 values per
    channel: by BLAS (blocked dot products) it stays within 2e-6 of the float64 sum,
    relative to its largest entry (column sums in order drifted to about 1e-5)."""
    rng = np.random.default_rng(2)
    x = rng.standard_normal((128, 28, 28, 1)).astype(np.float32)
    k = rng.standard_normal((2, 2, 1, 16)).astype(np.float32)
    b = rng.standard_normal(16).astype(np.float32)
    pads = ((0, 1), (0, 1))
    out, cols = conv_ops.conv2d_forward_im2col(x, k, b, (1, 1), pads)
    g = (rng.standard_normal(out.shape) + 0.3).astype(np.float32)
    _, _, db = conv_ops.conv2d_backward_im2col(g, cols, k, x.shape, (1, 1), pads, False)
    want = g.astype(np.float64).sum(axis=(0, 1, 2))
    assert db.dtype == np.float32
    assert np.abs(db - want).max() / np.abs(want).max() < 2e-6


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("cfg", [
    (7, 28, 28, 1, 16, (2, 2), (1, 1), ((0, 1), (0, 1)), True),  # the seed model's first layer
    (5, 9, 8, 3, 5, (3, 3), (2, 2), ((1, 1), (1, 1)), False),  # no bias, input gradient
])
def test_im2col_split_over_workers_matches_reference(cfg: tuple, relu: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """In a batch scope the images are split over the workers (here forced to 3
    groups of an odd batch): the same sums as the slides' formulas, and the same
    results (to rounding) as one group."""
    n, h, w, ci, co, k_hw, s, pads, use_bias = cfg
    rng = np.random.default_rng(3)
    x = rng.standard_normal((n, h, w, ci))
    k = rng.standard_normal((*k_hw, ci, co))
    b = rng.standard_normal(co) if use_bias else None
    g = rng.standard_normal((n, *output_hw((h, w), k_hw, s, pads, "kernel"), co))

    def run() -> tuple:
        out, cache = conv_ops.conv2d_forward(x, k, b, s, pads, impl="im2col", relu=relu)
        return (out, *conv_ops.conv2d_backward(g, cache))

    one = run()
    monkeypatch.setattr(parallel, "WORKERS", 3)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_BATCH_MACS", 0)
    with parallel.single_threaded_blas():
        assert len(parallel.image_groups(np, n, 1)) == 3
        split = run()
    ref = conv_ops.conv2d_forward_reference(x, k, b, s, pads)
    dout = g
    if relu:
        ref = np.maximum(ref, 0)
        dout = g * (ref > 0)
    want = (ref,
            conv_ops.conv2d_backward_input_reference(dout, k, (h, w), s, pads),
            conv_ops.conv2d_backward_filter_reference(x, dout, k_hw, s, pads),
            dout.sum(axis=(0, 1, 2)))
    for got1, got3, expect in zip(one, split, want, strict=True):
        np.testing.assert_allclose(got3, expect, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(got3, got1, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape", [(50, 7, 9), (2, 6, 11)])  # rows split; columns split
def test_parallel_matmul_matches_the_product(shape: tuple[int, int, int],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`parallel.matmul` cut over (forced) 3 workers in a batch scope: every
    output element is the same dot product as in ``a @ b``."""
    m, k, n = shape
    rng = np.random.default_rng(4)
    a, b = rng.standard_normal((m, k)), rng.standard_normal((k, n))
    monkeypatch.setattr(parallel, "WORKERS", 3)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_MACS", 0)
    assert np.array_equal(parallel.matmul(a, b), a @ b)  # outside a scope: plain
    with parallel.single_threaded_blas():
        got = parallel.matmul(a, b)
        got_t = parallel.matmul(a.T.copy().T, b)  # a transposed (Fortran-order) operand
    np.testing.assert_allclose(got, np.einsum("ik,kj->ij", a, b), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got_t, got, rtol=1e-12, atol=1e-12)


def test_dense_split_over_workers_matches_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dense forward and backward with the products split over the workers, against
    ``relu(x W + b)``, ``dW = x^T dZ``, ``db = sum dZ``, ``dX = dZ W^T`` in float64."""
    from cnnlab.layers import Dense

    rng = np.random.default_rng(5)
    layer = Dense(12, activation="relu", dtype="float64")
    layer.build((30,), rng)
    layer.need_input_grad = True
    x = rng.standard_normal((40, 30))
    g = rng.standard_normal((40, 12))
    monkeypatch.setattr(parallel, "WORKERS", 3)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_MACS", 0)
    with parallel.single_threaded_blas():
        y = layer.forward(x, training=True)
        dx = layer.backward(g)
    w, b = layer.weights
    z = x @ w + b
    dz = g * (z > 0)
    np.testing.assert_allclose(y, np.maximum(z, 0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads[0], x.T @ dz, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.grads[1], dz.sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dx, dz @ w.T, rtol=1e-12, atol=1e-12)


def test_parallel_matmuls_are_the_plain_products(monkeypatch: pytest.MonkeyPatch) -> None:
    """:func:`parallel.matmuls` runs each whole product on its own worker in a batch
    scope: the same GEMM calls as without workers, so the same bits."""
    rng = np.random.default_rng(6)
    a, b = rng.standard_normal((40, 30)), rng.standard_normal((30, 12))
    c, d = rng.standard_normal((40, 12)), rng.standard_normal((12, 30))
    monkeypatch.setattr(parallel, "PARALLEL_MIN_MACS", 0)
    with parallel.single_threaded_blas():
        got = parallel.matmuls((a.T.copy().T, b), (c, d))
    assert np.array_equal(got[0], a @ b) and np.array_equal(got[1], c @ d)
