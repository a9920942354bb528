"""Property-based tests of the ops over random shapes, strides and paddings (issue 6).

Convolution and pooling are linear (max pooling piecewise), so their backward
passes are adjoints: <forward(x), g> == <x, backward(g)> for every x and g.
That identity, the output-shape formula and agreement between the fast path
and the slides' reference must hold for whatever hypothesis draws.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.ops import conv, padding, pooling

PROPERTY_CASES = 150


@st.composite
def conv_case(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["valid", "same", "full", "int", "asym"]))
    if mode == "int":
        pad = draw(st.integers(0, 2))
    elif mode == "asym":
        pad = tuple((draw(st.integers(0, 2)), draw(st.integers(0, 2))) for _ in range(2))
    else:
        pad = mode
    h = draw(st.integers(kh if mode == "valid" else 1, 9))
    w = draw(st.integers(kw if mode == "valid" else 1, 9))
    n, ci, co = draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**31))
    return (n, h, w, ci, co), (kh, kw), (sh, sw), pad, seed


def _valid(shape, k, s, pad):
    pads = padding.resolve_padding(pad, k, s, shape[1:3])
    (t, b), (left, r) = pads
    return shape[1] + t + b >= k[0] and shape[2] + left + r >= k[1], pads


@settings(max_examples=PROPERTY_CASES, deadline=None)
@given(conv_case())
def test_conv_shapes_adjoint_and_fast_equals_reference(case):
    (n, h, w, ci, co), k, s, pad, seed = case
    ok, pads = _valid((n, h, w), k, s, pad)
    if not ok:
        return
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, h, w, ci))
    f = rng.standard_normal((*k, ci, co))
    out, cols = conv.conv2d_forward(x, f, None, s, pads)
    ref = conv.conv2d_forward_reference(x, f, None, s, pads)
    (t, b), (left, r) = pads
    assert out.shape == (n, (h + t + b - k[0]) // s[0] + 1, (w + left + r - k[1]) // s[1] + 1, co)
    np.testing.assert_allclose(out, ref, rtol=1e-10, atol=1e-10)
    g = rng.standard_normal(out.shape)
    dx, df, db = conv.conv2d_backward(g, cols)
    dx_ref = conv.conv2d_backward_input_reference(g, f, (h, w), s, pads)
    df_ref = conv.conv2d_backward_filter_reference(x, g, k, s, pads)
    assert dx.shape == x.shape and df.shape == f.shape and db.shape == (co,)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(df, df_ref, rtol=1e-10, atol=1e-10)
    # adjoint identities: <conv(x, f), g> = <x, dX(g)> = <f, dF(g)>
    lhs = float((ref * g).sum())
    assert np.isclose(lhs, float((x * dx_ref).sum()), rtol=1e-9, atol=1e-9)
    assert np.isclose(lhs, float((f * df_ref).sum()), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(db, g.sum(axis=(0, 1, 2)), rtol=1e-12)


@st.composite
def pool_case(draw):
    ph, pw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    mode = draw(st.sampled_from(["valid", "same"]))
    h = draw(st.integers(ph if mode == "valid" else 1, 8))
    w = draw(st.integers(pw if mode == "valid" else 1, 8))
    return (draw(st.integers(1, 2)), h, w, draw(st.integers(1, 3))), (ph, pw), (sh, sw), mode, \
        draw(st.integers(0, 2**31))


@settings(max_examples=PROPERTY_CASES, deadline=None)
@given(pool_case())
def test_pooling_shapes_and_adjoint(case):
    shape, p, s, mode, seed = case
    ok, pads = _valid(shape, p, s, mode)
    if not ok:
        return
    rng = np.random.default_rng(seed)
    # distinct values: no ties, so max pooling is linear around x
    x = rng.permutation(np.prod(shape)).reshape(shape).astype(np.float64)
    out, arg = pooling.max_pool2d_forward(x, p, s, pads)
    np.testing.assert_array_equal(pooling.max_pool2d_forward(x, p, s, pads, False)[0], out)
    expected_hw = padding.output_hw(shape[1:3], p, s, pads)
    assert out.shape == (shape[0], *expected_hw, shape[3])
    g = rng.standard_normal(out.shape)
    dx = pooling.max_pool2d_backward(g, arg, shape, p, s, pads)
    assert dx.shape == shape
    assert np.isclose((out * g).sum(), (x * dx).sum(), rtol=1e-9, atol=1e-9)
    # each window's maximum really is the maximum of that window
    (t, _), (left, _) = pads
    i, j = rng.integers(0, expected_hw[0]), rng.integers(0, expected_hw[1])
    r0, c0 = i * s[0] - t, j * s[1] - left
    window = x[0, max(r0, 0): r0 + p[0], max(c0, 0): c0 + p[1], 0]
    assert out[0, i, j, 0] == window.max()
    avg, counts = pooling.avg_pool2d_forward(x, p, s, pads)
    assert avg[0, i, j, 0] == np.float64(window.mean()) or np.isclose(avg[0, i, j, 0],
                                                                        window.mean())
    dxa = pooling.avg_pool2d_backward(g, counts, shape, p, s, pads)
    assert np.isclose((avg * g).sum(), (x * dxa).sum(), rtol=1e-9, atol=1e-9)
    # gradient mass is conserved: every output sends all of its gradient somewhere
    assert np.isclose(dx.sum(), g.sum()) and np.isclose(dxa.sum(), g.sum())


@settings(max_examples=PROPERTY_CASES, deadline=None)
@given(st.integers(1, 40), st.integers(1, 7), st.integers(1, 5))
def test_same_padding_rule(n, k, s):
    (before, after), _ = padding.resolve_padding("same", (k, 1), (s, 1), (n, 1))
    out = padding.output_size(n, k, s, before, after)
    assert out == -(-n // s)  # ceil(n / s) outputs, as Keras and TensorFlow
    assert after - before in (0, 1)  # the odd pixel goes after
