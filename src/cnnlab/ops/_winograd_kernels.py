"""Winograd transforms for Numba, unrolled per tile size: GENERATED, do not edit.

Written by ``python -m cnnlab.ops.winograd_codegen`` (see that module for why
and how); loaded and compiled by :mod:`cnnlab.ops.winograd_jit`, which passes
``coef`` (the matrices' distinct entries, :func:`winograd_codegen.coefficients`)
in the arrays' dtype, and compiles :func:`act` and :func:`gate` to be inlined.
"""

# ruff: noqa: E501
# mypy: ignore-errors

import numpy as np


def act(y, relu, zero):
    """ReLU (NaN stays NaN, as with np.maximum) or the identity."""
    return (zero if y <= zero else y) if relu else y


def gate(g, r, zero):
    """The gradient times [the ReLU's output > 0] (NaN stays NaN, as in the NumPy path)."""
    return g if r > zero else g * zero

# ---------------------------------------------------------------- F(2 x 2, 3 x 3)
COEFFICIENTS_2 = (1.0,)


def input_transform_2(xpad, coef, th, tw, v, t0):
    # v[i * 4 + j, t0 + tile, c] = sum_(k, l) B^T[i, k] B^T[j, l] xpad[n, 2 ty + k, 2 tx + l, c]
    nc, ch = xpad.shape[0], xpad.shape[3]
    ub = np.empty((4, 4, ch), dtype=xpad.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = t0 + (n * th + ty) * tw + tx
                y0 = ty * 2
                x0 = tx * 2
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 0, c]
                    e1 = xpad[n, y0 + 1, x0 + 0, c]
                    e2 = xpad[n, y0 + 2, x0 + 0, c]
                    e3 = xpad[n, y0 + 3, x0 + 0, c]
                    ub[0, 0, c] = -e0 + e2
                    ub[1, 0, c] = e1 + e2
                    ub[2, 0, c] = -e1 + e2
                    ub[3, 0, c] = -e1 + e3
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 1, c]
                    e1 = xpad[n, y0 + 1, x0 + 1, c]
                    e2 = xpad[n, y0 + 2, x0 + 1, c]
                    e3 = xpad[n, y0 + 3, x0 + 1, c]
                    ub[0, 1, c] = -e0 + e2
                    ub[1, 1, c] = e1 + e2
                    ub[2, 1, c] = -e1 + e2
                    ub[3, 1, c] = -e1 + e3
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 2, c]
                    e1 = xpad[n, y0 + 1, x0 + 2, c]
                    e2 = xpad[n, y0 + 2, x0 + 2, c]
                    e3 = xpad[n, y0 + 3, x0 + 2, c]
                    ub[0, 2, c] = -e0 + e2
                    ub[1, 2, c] = e1 + e2
                    ub[2, 2, c] = -e1 + e2
                    ub[3, 2, c] = -e1 + e3
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 3, c]
                    e1 = xpad[n, y0 + 1, x0 + 3, c]
                    e2 = xpad[n, y0 + 2, x0 + 3, c]
                    e3 = xpad[n, y0 + 3, x0 + 3, c]
                    ub[0, 3, c] = -e0 + e2
                    ub[1, 3, c] = e1 + e2
                    ub[2, 3, c] = -e1 + e2
                    ub[3, 3, c] = -e1 + e3
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    v[0, tile, c] = -e0 + e2
                    v[1, tile, c] = e1 + e2
                    v[2, tile, c] = -e1 + e2
                    v[3, tile, c] = -e1 + e3
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    v[4, tile, c] = -e0 + e2
                    v[5, tile, c] = e1 + e2
                    v[6, tile, c] = -e1 + e2
                    v[7, tile, c] = -e1 + e3
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    v[8, tile, c] = -e0 + e2
                    v[9, tile, c] = e1 + e2
                    v[10, tile, c] = -e1 + e2
                    v[11, tile, c] = -e1 + e3
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    v[12, tile, c] = -e0 + e2
                    v[13, tile, c] = e1 + e2
                    v[14, tile, c] = -e1 + e2
                    v[15, tile, c] = -e1 + e3


def output_transform_2(mm, coef, bias, relu, th, tw, out, part):
    # out[n, 2 ty + i, 2 tx + j, c] = [ReLU of] bias[c] + sum_(k, l) A^T[i, k] A^T[j, l] mm[k * 4 + l, tile, c];
    # a tile that sticks out of the map is written to part (1, 2, 2, C) and cropped
    zero = coef[0] * 0
    nc, ho, wo, ch = out.shape
    ub = np.empty((2, 4, ch), dtype=mm.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 2
                x0 = tx * 2
                inside = y0 + 2 <= ho and x0 + 2 <= wo
                dst, k, i0, j0 = (out, n, y0, x0) if inside else (part, 0, 0, 0)
                for c in range(ch):
                    e0 = mm[0, tile, c]
                    e1 = mm[4, tile, c]
                    e2 = mm[8, tile, c]
                    e3 = mm[12, tile, c]
                    ub[0, 0, c] = e0 + e1 + e2
                    ub[1, 0, c] = e1 - e2 + e3
                for c in range(ch):
                    e0 = mm[1, tile, c]
                    e1 = mm[5, tile, c]
                    e2 = mm[9, tile, c]
                    e3 = mm[13, tile, c]
                    ub[0, 1, c] = e0 + e1 + e2
                    ub[1, 1, c] = e1 - e2 + e3
                for c in range(ch):
                    e0 = mm[2, tile, c]
                    e1 = mm[6, tile, c]
                    e2 = mm[10, tile, c]
                    e3 = mm[14, tile, c]
                    ub[0, 2, c] = e0 + e1 + e2
                    ub[1, 2, c] = e1 - e2 + e3
                for c in range(ch):
                    e0 = mm[3, tile, c]
                    e1 = mm[7, tile, c]
                    e2 = mm[11, tile, c]
                    e3 = mm[15, tile, c]
                    ub[0, 3, c] = e0 + e1 + e2
                    ub[1, 3, c] = e1 - e2 + e3
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    b = bias[c]
                    dst[k, i0 + 0, j0 + 0, c] = act(e0 + e1 + e2 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 1, c] = act(e1 - e2 + e3 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    b = bias[c]
                    dst[k, i0 + 1, j0 + 0, c] = act(e0 + e1 + e2 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 1, c] = act(e1 - e2 + e3 + b, relu, zero)
                if not inside:
                    for i in range(min(2, ho - y0)):
                        for j in range(min(2, wo - x0)):
                            for c in range(ch):
                                out[n, y0 + i, x0 + j, c] = part[0, i, j, c]


def grad_transform_2(grad, relu_out, masked, coef, th, tw, dm, db, part):
    # g = grad * [relu_out > 0] if masked else grad (zero beyond the map); dm[k * 4 + l, tile, c] =
    # sum_(i, j) A^T[i, k] A^T[j, l] g[n, m ty + i, m tx + j, c]; db[c] += sum of g.
    # Tiles that are masked or stick out of the map are first copied to part (1, 2, 2, C).
    zero = coef[0] * 0
    nc, ho, wo, ch = grad.shape
    ub = np.empty((4, 2, ch), dtype=grad.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 2
                x0 = tx * 2
                inside = y0 + 2 <= ho and x0 + 2 <= wo
                if inside and not masked:
                    src, k, i0, j0 = grad, n, y0, x0
                elif inside:
                    for i in range(2):
                        for j in range(2):
                            for c in range(ch):
                                part[0, i, j, c] = gate(grad[n, y0 + i, x0 + j, c], relu_out[n, y0 + i, x0 + j, c], zero)
                    src, k, i0, j0 = part, 0, 0, 0
                else:
                    for i in range(2):
                        for j in range(2):
                            real = y0 + i < ho and x0 + j < wo
                            for c in range(ch):
                                g = grad[n, y0 + i, x0 + j, c] if real else zero
                                part[0, i, j, c] = gate(g, relu_out[n, y0 + i, x0 + j, c], zero) if real and masked else g
                    src, k, i0, j0 = part, 0, 0, 0
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 0, c]
                    e1 = src[k, i0 + 1, j0 + 0, c]
                    ub[0, 0, c] = e0
                    ub[1, 0, c] = e0 + e1
                    ub[2, 0, c] = e0 - e1
                    ub[3, 0, c] = e1
                    db[c] += e0 + e1
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 1, c]
                    e1 = src[k, i0 + 1, j0 + 1, c]
                    ub[0, 1, c] = e0
                    ub[1, 1, c] = e0 + e1
                    ub[2, 1, c] = e0 - e1
                    ub[3, 1, c] = e1
                    db[c] += e0 + e1
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    dm[0, tile, c] = e0
                    dm[1, tile, c] = e0 + e1
                    dm[2, tile, c] = e0 - e1
                    dm[3, tile, c] = e1
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    dm[4, tile, c] = e0
                    dm[5, tile, c] = e0 + e1
                    dm[6, tile, c] = e0 - e1
                    dm[7, tile, c] = e1
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    dm[8, tile, c] = e0
                    dm[9, tile, c] = e0 + e1
                    dm[10, tile, c] = e0 - e1
                    dm[11, tile, c] = e1
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    dm[12, tile, c] = e0
                    dm[13, tile, c] = e0 + e1
                    dm[14, tile, c] = e0 - e1
                    dm[15, tile, c] = e1


def input_grad_transform_2(dv, coef, th, tw, dx):
    # dx[n, 2 ty + k, 2 tx + l, c] += sum_(i, j) B^T[i, k] B^T[j, l] dv[i * 4 + j, tile, c],
    # summed over the overlapping tiles (dx is zeroed first)
    nc, ch = dx.shape[0], dx.shape[3]
    ub = np.empty((4, 4, ch), dtype=dv.dtype)
    dd = np.empty((4, 4, ch), dtype=dv.dtype)
    dx[...] = 0
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 2
                x0 = tx * 2
                for c in range(ch):
                    e0 = dv[0, tile, c]
                    e1 = dv[4, tile, c]
                    e2 = dv[8, tile, c]
                    e3 = dv[12, tile, c]
                    ub[0, 0, c] = -e0
                    ub[1, 0, c] = e1 - e2 - e3
                    ub[2, 0, c] = e0 + e1 + e2
                    ub[3, 0, c] = e3
                for c in range(ch):
                    e0 = dv[1, tile, c]
                    e1 = dv[5, tile, c]
                    e2 = dv[9, tile, c]
                    e3 = dv[13, tile, c]
                    ub[0, 1, c] = -e0
                    ub[1, 1, c] = e1 - e2 - e3
                    ub[2, 1, c] = e0 + e1 + e2
                    ub[3, 1, c] = e3
                for c in range(ch):
                    e0 = dv[2, tile, c]
                    e1 = dv[6, tile, c]
                    e2 = dv[10, tile, c]
                    e3 = dv[14, tile, c]
                    ub[0, 2, c] = -e0
                    ub[1, 2, c] = e1 - e2 - e3
                    ub[2, 2, c] = e0 + e1 + e2
                    ub[3, 2, c] = e3
                for c in range(ch):
                    e0 = dv[3, tile, c]
                    e1 = dv[7, tile, c]
                    e2 = dv[11, tile, c]
                    e3 = dv[15, tile, c]
                    ub[0, 3, c] = -e0
                    ub[1, 3, c] = e1 - e2 - e3
                    ub[2, 3, c] = e0 + e1 + e2
                    ub[3, 3, c] = e3
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    dd[0, 0, c] = -e0
                    dd[0, 1, c] = e1 - e2 - e3
                    dd[0, 2, c] = e0 + e1 + e2
                    dd[0, 3, c] = e3
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    dd[1, 0, c] = -e0
                    dd[1, 1, c] = e1 - e2 - e3
                    dd[1, 2, c] = e0 + e1 + e2
                    dd[1, 3, c] = e3
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    dd[2, 0, c] = -e0
                    dd[2, 1, c] = e1 - e2 - e3
                    dd[2, 2, c] = e0 + e1 + e2
                    dd[2, 3, c] = e3
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    dd[3, 0, c] = -e0
                    dd[3, 1, c] = e1 - e2 - e3
                    dd[3, 2, c] = e0 + e1 + e2
                    dd[3, 3, c] = e3
                for i in range(4):
                    for j in range(4):
                        for c in range(ch):
                            dx[n, y0 + i, x0 + j, c] += dd[i, j, c]

# ---------------------------------------------------------------- F(3 x 3, 3 x 3)
COEFFICIENTS_3 = (1.0, 2.0, 3.0, 4.0)


def input_transform_3(xpad, coef, th, tw, v, t0):
    # v[i * 5 + j, t0 + tile, c] = sum_(k, l) B^T[i, k] B^T[j, l] xpad[n, 3 ty + k, 3 tx + l, c]
    k1 = coef[1]
    k2 = coef[2]
    nc, ch = xpad.shape[0], xpad.shape[3]
    ub = np.empty((5, 5, ch), dtype=xpad.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = t0 + (n * th + ty) * tw + tx
                y0 = ty * 3
                x0 = tx * 3
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 0, c]
                    e1 = xpad[n, y0 + 1, x0 + 0, c]
                    e2 = xpad[n, y0 + 2, x0 + 0, c]
                    e3 = xpad[n, y0 + 3, x0 + 0, c]
                    e4 = xpad[n, y0 + 4, x0 + 0, c]
                    ub[0, 0, c] = k1 * e0 - e1 - k1 * e2 + e3
                    ub[1, 0, c] = -k1 * e1 - e2 + e3
                    ub[2, 0, c] = k1 * e1 - k2 * e2 + e3
                    ub[3, 0, c] = -e1 + e3
                    ub[4, 0, c] = k1 * e1 - e2 - k1 * e3 + e4
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 1, c]
                    e1 = xpad[n, y0 + 1, x0 + 1, c]
                    e2 = xpad[n, y0 + 2, x0 + 1, c]
                    e3 = xpad[n, y0 + 3, x0 + 1, c]
                    e4 = xpad[n, y0 + 4, x0 + 1, c]
                    ub[0, 1, c] = k1 * e0 - e1 - k1 * e2 + e3
                    ub[1, 1, c] = -k1 * e1 - e2 + e3
                    ub[2, 1, c] = k1 * e1 - k2 * e2 + e3
                    ub[3, 1, c] = -e1 + e3
                    ub[4, 1, c] = k1 * e1 - e2 - k1 * e3 + e4
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 2, c]
                    e1 = xpad[n, y0 + 1, x0 + 2, c]
                    e2 = xpad[n, y0 + 2, x0 + 2, c]
                    e3 = xpad[n, y0 + 3, x0 + 2, c]
                    e4 = xpad[n, y0 + 4, x0 + 2, c]
                    ub[0, 2, c] = k1 * e0 - e1 - k1 * e2 + e3
                    ub[1, 2, c] = -k1 * e1 - e2 + e3
                    ub[2, 2, c] = k1 * e1 - k2 * e2 + e3
                    ub[3, 2, c] = -e1 + e3
                    ub[4, 2, c] = k1 * e1 - e2 - k1 * e3 + e4
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 3, c]
                    e1 = xpad[n, y0 + 1, x0 + 3, c]
                    e2 = xpad[n, y0 + 2, x0 + 3, c]
                    e3 = xpad[n, y0 + 3, x0 + 3, c]
                    e4 = xpad[n, y0 + 4, x0 + 3, c]
                    ub[0, 3, c] = k1 * e0 - e1 - k1 * e2 + e3
                    ub[1, 3, c] = -k1 * e1 - e2 + e3
                    ub[2, 3, c] = k1 * e1 - k2 * e2 + e3
                    ub[3, 3, c] = -e1 + e3
                    ub[4, 3, c] = k1 * e1 - e2 - k1 * e3 + e4
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 4, c]
                    e1 = xpad[n, y0 + 1, x0 + 4, c]
                    e2 = xpad[n, y0 + 2, x0 + 4, c]
                    e3 = xpad[n, y0 + 3, x0 + 4, c]
                    e4 = xpad[n, y0 + 4, x0 + 4, c]
                    ub[0, 4, c] = k1 * e0 - e1 - k1 * e2 + e3
                    ub[1, 4, c] = -k1 * e1 - e2 + e3
                    ub[2, 4, c] = k1 * e1 - k2 * e2 + e3
                    ub[3, 4, c] = -e1 + e3
                    ub[4, 4, c] = k1 * e1 - e2 - k1 * e3 + e4
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    v[0, tile, c] = k1 * e0 - e1 - k1 * e2 + e3
                    v[1, tile, c] = -k1 * e1 - e2 + e3
                    v[2, tile, c] = k1 * e1 - k2 * e2 + e3
                    v[3, tile, c] = -e1 + e3
                    v[4, tile, c] = k1 * e1 - e2 - k1 * e3 + e4
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    v[5, tile, c] = k1 * e0 - e1 - k1 * e2 + e3
                    v[6, tile, c] = -k1 * e1 - e2 + e3
                    v[7, tile, c] = k1 * e1 - k2 * e2 + e3
                    v[8, tile, c] = -e1 + e3
                    v[9, tile, c] = k1 * e1 - e2 - k1 * e3 + e4
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    v[10, tile, c] = k1 * e0 - e1 - k1 * e2 + e3
                    v[11, tile, c] = -k1 * e1 - e2 + e3
                    v[12, tile, c] = k1 * e1 - k2 * e2 + e3
                    v[13, tile, c] = -e1 + e3
                    v[14, tile, c] = k1 * e1 - e2 - k1 * e3 + e4
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    v[15, tile, c] = k1 * e0 - e1 - k1 * e2 + e3
                    v[16, tile, c] = -k1 * e1 - e2 + e3
                    v[17, tile, c] = k1 * e1 - k2 * e2 + e3
                    v[18, tile, c] = -e1 + e3
                    v[19, tile, c] = k1 * e1 - e2 - k1 * e3 + e4
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    v[20, tile, c] = k1 * e0 - e1 - k1 * e2 + e3
                    v[21, tile, c] = -k1 * e1 - e2 + e3
                    v[22, tile, c] = k1 * e1 - k2 * e2 + e3
                    v[23, tile, c] = -e1 + e3
                    v[24, tile, c] = k1 * e1 - e2 - k1 * e3 + e4


def output_transform_3(mm, coef, bias, relu, th, tw, out, part):
    # out[n, 3 ty + i, 3 tx + j, c] = [ReLU of] bias[c] + sum_(k, l) A^T[i, k] A^T[j, l] mm[k * 5 + l, tile, c];
    # a tile that sticks out of the map is written to part (1, 3, 3, C) and cropped
    k1 = coef[1]
    k3 = coef[3]
    zero = coef[0] * 0
    nc, ho, wo, ch = out.shape
    ub = np.empty((3, 5, ch), dtype=mm.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 3
                x0 = tx * 3
                inside = y0 + 3 <= ho and x0 + 3 <= wo
                dst, k, i0, j0 = (out, n, y0, x0) if inside else (part, 0, 0, 0)
                for c in range(ch):
                    e0 = mm[0, tile, c]
                    e1 = mm[5, tile, c]
                    e2 = mm[10, tile, c]
                    e3 = mm[15, tile, c]
                    e4 = mm[20, tile, c]
                    ub[0, 0, c] = e0 + e1 + e2 + e3
                    ub[1, 0, c] = e1 - e2 + k1 * e3
                    ub[2, 0, c] = e1 + e2 + k3 * e3 + e4
                for c in range(ch):
                    e0 = mm[1, tile, c]
                    e1 = mm[6, tile, c]
                    e2 = mm[11, tile, c]
                    e3 = mm[16, tile, c]
                    e4 = mm[21, tile, c]
                    ub[0, 1, c] = e0 + e1 + e2 + e3
                    ub[1, 1, c] = e1 - e2 + k1 * e3
                    ub[2, 1, c] = e1 + e2 + k3 * e3 + e4
                for c in range(ch):
                    e0 = mm[2, tile, c]
                    e1 = mm[7, tile, c]
                    e2 = mm[12, tile, c]
                    e3 = mm[17, tile, c]
                    e4 = mm[22, tile, c]
                    ub[0, 2, c] = e0 + e1 + e2 + e3
                    ub[1, 2, c] = e1 - e2 + k1 * e3
                    ub[2, 2, c] = e1 + e2 + k3 * e3 + e4
                for c in range(ch):
                    e0 = mm[3, tile, c]
                    e1 = mm[8, tile, c]
                    e2 = mm[13, tile, c]
                    e3 = mm[18, tile, c]
                    e4 = mm[23, tile, c]
                    ub[0, 3, c] = e0 + e1 + e2 + e3
                    ub[1, 3, c] = e1 - e2 + k1 * e3
                    ub[2, 3, c] = e1 + e2 + k3 * e3 + e4
                for c in range(ch):
                    e0 = mm[4, tile, c]
                    e1 = mm[9, tile, c]
                    e2 = mm[14, tile, c]
                    e3 = mm[19, tile, c]
                    e4 = mm[24, tile, c]
                    ub[0, 4, c] = e0 + e1 + e2 + e3
                    ub[1, 4, c] = e1 - e2 + k1 * e3
                    ub[2, 4, c] = e1 + e2 + k3 * e3 + e4
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    b = bias[c]
                    dst[k, i0 + 0, j0 + 0, c] = act(e0 + e1 + e2 + e3 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 1, c] = act(e1 - e2 + k1 * e3 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 2, c] = act(e1 + e2 + k3 * e3 + e4 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    b = bias[c]
                    dst[k, i0 + 1, j0 + 0, c] = act(e0 + e1 + e2 + e3 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 1, c] = act(e1 - e2 + k1 * e3 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 2, c] = act(e1 + e2 + k3 * e3 + e4 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    b = bias[c]
                    dst[k, i0 + 2, j0 + 0, c] = act(e0 + e1 + e2 + e3 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 1, c] = act(e1 - e2 + k1 * e3 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 2, c] = act(e1 + e2 + k3 * e3 + e4 + b, relu, zero)
                if not inside:
                    for i in range(min(3, ho - y0)):
                        for j in range(min(3, wo - x0)):
                            for c in range(ch):
                                out[n, y0 + i, x0 + j, c] = part[0, i, j, c]


def grad_transform_3(grad, relu_out, masked, coef, th, tw, dm, db, part):
    # g = grad * [relu_out > 0] if masked else grad (zero beyond the map); dm[k * 5 + l, tile, c] =
    # sum_(i, j) A^T[i, k] A^T[j, l] g[n, m ty + i, m tx + j, c]; db[c] += sum of g.
    # Tiles that are masked or stick out of the map are first copied to part (1, 3, 3, C).
    k1 = coef[1]
    k3 = coef[3]
    zero = coef[0] * 0
    nc, ho, wo, ch = grad.shape
    ub = np.empty((5, 3, ch), dtype=grad.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 3
                x0 = tx * 3
                inside = y0 + 3 <= ho and x0 + 3 <= wo
                if inside and not masked:
                    src, k, i0, j0 = grad, n, y0, x0
                elif inside:
                    for i in range(3):
                        for j in range(3):
                            for c in range(ch):
                                part[0, i, j, c] = gate(grad[n, y0 + i, x0 + j, c], relu_out[n, y0 + i, x0 + j, c], zero)
                    src, k, i0, j0 = part, 0, 0, 0
                else:
                    for i in range(3):
                        for j in range(3):
                            real = y0 + i < ho and x0 + j < wo
                            for c in range(ch):
                                g = grad[n, y0 + i, x0 + j, c] if real else zero
                                part[0, i, j, c] = gate(g, relu_out[n, y0 + i, x0 + j, c], zero) if real and masked else g
                    src, k, i0, j0 = part, 0, 0, 0
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 0, c]
                    e1 = src[k, i0 + 1, j0 + 0, c]
                    e2 = src[k, i0 + 2, j0 + 0, c]
                    ub[0, 0, c] = e0
                    ub[1, 0, c] = e0 + e1 + e2
                    ub[2, 0, c] = e0 - e1 + e2
                    ub[3, 0, c] = e0 + k1 * e1 + k3 * e2
                    ub[4, 0, c] = e2
                    db[c] += e0 + e1 + e2
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 1, c]
                    e1 = src[k, i0 + 1, j0 + 1, c]
                    e2 = src[k, i0 + 2, j0 + 1, c]
                    ub[0, 1, c] = e0
                    ub[1, 1, c] = e0 + e1 + e2
                    ub[2, 1, c] = e0 - e1 + e2
                    ub[3, 1, c] = e0 + k1 * e1 + k3 * e2
                    ub[4, 1, c] = e2
                    db[c] += e0 + e1 + e2
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 2, c]
                    e1 = src[k, i0 + 1, j0 + 2, c]
                    e2 = src[k, i0 + 2, j0 + 2, c]
                    ub[0, 2, c] = e0
                    ub[1, 2, c] = e0 + e1 + e2
                    ub[2, 2, c] = e0 - e1 + e2
                    ub[3, 2, c] = e0 + k1 * e1 + k3 * e2
                    ub[4, 2, c] = e2
                    db[c] += e0 + e1 + e2
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    dm[0, tile, c] = e0
                    dm[1, tile, c] = e0 + e1 + e2
                    dm[2, tile, c] = e0 - e1 + e2
                    dm[3, tile, c] = e0 + k1 * e1 + k3 * e2
                    dm[4, tile, c] = e2
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    dm[5, tile, c] = e0
                    dm[6, tile, c] = e0 + e1 + e2
                    dm[7, tile, c] = e0 - e1 + e2
                    dm[8, tile, c] = e0 + k1 * e1 + k3 * e2
                    dm[9, tile, c] = e2
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    dm[10, tile, c] = e0
                    dm[11, tile, c] = e0 + e1 + e2
                    dm[12, tile, c] = e0 - e1 + e2
                    dm[13, tile, c] = e0 + k1 * e1 + k3 * e2
                    dm[14, tile, c] = e2
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    dm[15, tile, c] = e0
                    dm[16, tile, c] = e0 + e1 + e2
                    dm[17, tile, c] = e0 - e1 + e2
                    dm[18, tile, c] = e0 + k1 * e1 + k3 * e2
                    dm[19, tile, c] = e2
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    dm[20, tile, c] = e0
                    dm[21, tile, c] = e0 + e1 + e2
                    dm[22, tile, c] = e0 - e1 + e2
                    dm[23, tile, c] = e0 + k1 * e1 + k3 * e2
                    dm[24, tile, c] = e2


def input_grad_transform_3(dv, coef, th, tw, dx):
    # dx[n, 3 ty + k, 3 tx + l, c] += sum_(i, j) B^T[i, k] B^T[j, l] dv[i * 5 + j, tile, c],
    # summed over the overlapping tiles (dx is zeroed first)
    k1 = coef[1]
    k2 = coef[2]
    nc, ch = dx.shape[0], dx.shape[3]
    ub = np.empty((5, 5, ch), dtype=dv.dtype)
    dd = np.empty((5, 5, ch), dtype=dv.dtype)
    dx[...] = 0
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 3
                x0 = tx * 3
                for c in range(ch):
                    e0 = dv[0, tile, c]
                    e1 = dv[5, tile, c]
                    e2 = dv[10, tile, c]
                    e3 = dv[15, tile, c]
                    e4 = dv[20, tile, c]
                    ub[0, 0, c] = k1 * e0
                    ub[1, 0, c] = -e0 - k1 * e1 + k1 * e2 - e3 + k1 * e4
                    ub[2, 0, c] = -k1 * e0 - e1 - k2 * e2 - e4
                    ub[3, 0, c] = e0 + e1 + e2 + e3 - k1 * e4
                    ub[4, 0, c] = e4
                for c in range(ch):
                    e0 = dv[1, tile, c]
                    e1 = dv[6, tile, c]
                    e2 = dv[11, tile, c]
                    e3 = dv[16, tile, c]
                    e4 = dv[21, tile, c]
                    ub[0, 1, c] = k1 * e0
                    ub[1, 1, c] = -e0 - k1 * e1 + k1 * e2 - e3 + k1 * e4
                    ub[2, 1, c] = -k1 * e0 - e1 - k2 * e2 - e4
                    ub[3, 1, c] = e0 + e1 + e2 + e3 - k1 * e4
                    ub[4, 1, c] = e4
                for c in range(ch):
                    e0 = dv[2, tile, c]
                    e1 = dv[7, tile, c]
                    e2 = dv[12, tile, c]
                    e3 = dv[17, tile, c]
                    e4 = dv[22, tile, c]
                    ub[0, 2, c] = k1 * e0
                    ub[1, 2, c] = -e0 - k1 * e1 + k1 * e2 - e3 + k1 * e4
                    ub[2, 2, c] = -k1 * e0 - e1 - k2 * e2 - e4
                    ub[3, 2, c] = e0 + e1 + e2 + e3 - k1 * e4
                    ub[4, 2, c] = e4
                for c in range(ch):
                    e0 = dv[3, tile, c]
                    e1 = dv[8, tile, c]
                    e2 = dv[13, tile, c]
                    e3 = dv[18, tile, c]
                    e4 = dv[23, tile, c]
                    ub[0, 3, c] = k1 * e0
                    ub[1, 3, c] = -e0 - k1 * e1 + k1 * e2 - e3 + k1 * e4
                    ub[2, 3, c] = -k1 * e0 - e1 - k2 * e2 - e4
                    ub[3, 3, c] = e0 + e1 + e2 + e3 - k1 * e4
                    ub[4, 3, c] = e4
                for c in range(ch):
                    e0 = dv[4, tile, c]
                    e1 = dv[9, tile, c]
                    e2 = dv[14, tile, c]
                    e3 = dv[19, tile, c]
                    e4 = dv[24, tile, c]
                    ub[0, 4, c] = k1 * e0
                    ub[1, 4, c] = -e0 - k1 * e1 + k1 * e2 - e3 + k1 * e4
                    ub[2, 4, c] = -k1 * e0 - e1 - k2 * e2 - e4
                    ub[3, 4, c] = e0 + e1 + e2 + e3 - k1 * e4
                    ub[4, 4, c] = e4
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    dd[0, 0, c] = k1 * e0
                    dd[0, 1, c] = -e0 - k1 * e1 + k1 * e2 - e3 + k1 * e4
                    dd[0, 2, c] = -k1 * e0 - e1 - k2 * e2 - e4
                    dd[0, 3, c] = e0 + e1 + e2 + e3 - k1 * e4
                    dd[0, 4, c] = e4
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    dd[1, 0, c] = k1 * e0
                    dd[1, 1, c] = -e0 - k1 * e1 + k1 * e2 - e3 + k1 * e4
                    dd[1, 2, c] = -k1 * e0 - e1 - k2 * e2 - e4
                    dd[1, 3, c] = e0 + e1 + e2 + e3 - k1 * e4
                    dd[1, 4, c] = e4
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    dd[2, 0, c] = k1 * e0
                    dd[2, 1, c] = -e0 - k1 * e1 + k1 * e2 - e3 + k1 * e4
                    dd[2, 2, c] = -k1 * e0 - e1 - k2 * e2 - e4
                    dd[2, 3, c] = e0 + e1 + e2 + e3 - k1 * e4
                    dd[2, 4, c] = e4
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    dd[3, 0, c] = k1 * e0
                    dd[3, 1, c] = -e0 - k1 * e1 + k1 * e2 - e3 + k1 * e4
                    dd[3, 2, c] = -k1 * e0 - e1 - k2 * e2 - e4
                    dd[3, 3, c] = e0 + e1 + e2 + e3 - k1 * e4
                    dd[3, 4, c] = e4
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    dd[4, 0, c] = k1 * e0
                    dd[4, 1, c] = -e0 - k1 * e1 + k1 * e2 - e3 + k1 * e4
                    dd[4, 2, c] = -k1 * e0 - e1 - k2 * e2 - e4
                    dd[4, 3, c] = e0 + e1 + e2 + e3 - k1 * e4
                    dd[4, 4, c] = e4
                for i in range(5):
                    for j in range(5):
                        for c in range(ch):
                            dx[n, y0 + i, x0 + j, c] += dd[i, j, c]

# ---------------------------------------------------------------- F(4 x 4, 3 x 3)
COEFFICIENTS_4 = (1.0, 2.0, 4.0, 5.0, 8.0)


def input_transform_4(xpad, coef, th, tw, v, t0):
    # v[i * 6 + j, t0 + tile, c] = sum_(k, l) B^T[i, k] B^T[j, l] xpad[n, 4 ty + k, 4 tx + l, c]
    k1 = coef[1]
    k2 = coef[2]
    k3 = coef[3]
    nc, ch = xpad.shape[0], xpad.shape[3]
    ub = np.empty((6, 6, ch), dtype=xpad.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = t0 + (n * th + ty) * tw + tx
                y0 = ty * 4
                x0 = tx * 4
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 0, c]
                    e1 = xpad[n, y0 + 1, x0 + 0, c]
                    e2 = xpad[n, y0 + 2, x0 + 0, c]
                    e3 = xpad[n, y0 + 3, x0 + 0, c]
                    e4 = xpad[n, y0 + 4, x0 + 0, c]
                    e5 = xpad[n, y0 + 5, x0 + 0, c]
                    ub[0, 0, c] = k2 * e0 - k3 * e2 + e4
                    ub[1, 0, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    ub[2, 0, c] = k2 * e1 - k2 * e2 - e3 + e4
                    ub[3, 0, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    ub[4, 0, c] = k1 * e1 - e2 - k1 * e3 + e4
                    ub[5, 0, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 1, c]
                    e1 = xpad[n, y0 + 1, x0 + 1, c]
                    e2 = xpad[n, y0 + 2, x0 + 1, c]
                    e3 = xpad[n, y0 + 3, x0 + 1, c]
                    e4 = xpad[n, y0 + 4, x0 + 1, c]
                    e5 = xpad[n, y0 + 5, x0 + 1, c]
                    ub[0, 1, c] = k2 * e0 - k3 * e2 + e4
                    ub[1, 1, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    ub[2, 1, c] = k2 * e1 - k2 * e2 - e3 + e4
                    ub[3, 1, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    ub[4, 1, c] = k1 * e1 - e2 - k1 * e3 + e4
                    ub[5, 1, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 2, c]
                    e1 = xpad[n, y0 + 1, x0 + 2, c]
                    e2 = xpad[n, y0 + 2, x0 + 2, c]
                    e3 = xpad[n, y0 + 3, x0 + 2, c]
                    e4 = xpad[n, y0 + 4, x0 + 2, c]
                    e5 = xpad[n, y0 + 5, x0 + 2, c]
                    ub[0, 2, c] = k2 * e0 - k3 * e2 + e4
                    ub[1, 2, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    ub[2, 2, c] = k2 * e1 - k2 * e2 - e3 + e4
                    ub[3, 2, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    ub[4, 2, c] = k1 * e1 - e2 - k1 * e3 + e4
                    ub[5, 2, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 3, c]
                    e1 = xpad[n, y0 + 1, x0 + 3, c]
                    e2 = xpad[n, y0 + 2, x0 + 3, c]
                    e3 = xpad[n, y0 + 3, x0 + 3, c]
                    e4 = xpad[n, y0 + 4, x0 + 3, c]
                    e5 = xpad[n, y0 + 5, x0 + 3, c]
                    ub[0, 3, c] = k2 * e0 - k3 * e2 + e4
                    ub[1, 3, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    ub[2, 3, c] = k2 * e1 - k2 * e2 - e3 + e4
                    ub[3, 3, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    ub[4, 3, c] = k1 * e1 - e2 - k1 * e3 + e4
                    ub[5, 3, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 4, c]
                    e1 = xpad[n, y0 + 1, x0 + 4, c]
                    e2 = xpad[n, y0 + 2, x0 + 4, c]
                    e3 = xpad[n, y0 + 3, x0 + 4, c]
                    e4 = xpad[n, y0 + 4, x0 + 4, c]
                    e5 = xpad[n, y0 + 5, x0 + 4, c]
                    ub[0, 4, c] = k2 * e0 - k3 * e2 + e4
                    ub[1, 4, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    ub[2, 4, c] = k2 * e1 - k2 * e2 - e3 + e4
                    ub[3, 4, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    ub[4, 4, c] = k1 * e1 - e2 - k1 * e3 + e4
                    ub[5, 4, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 5, c]
                    e1 = xpad[n, y0 + 1, x0 + 5, c]
                    e2 = xpad[n, y0 + 2, x0 + 5, c]
                    e3 = xpad[n, y0 + 3, x0 + 5, c]
                    e4 = xpad[n, y0 + 4, x0 + 5, c]
                    e5 = xpad[n, y0 + 5, x0 + 5, c]
                    ub[0, 5, c] = k2 * e0 - k3 * e2 + e4
                    ub[1, 5, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    ub[2, 5, c] = k2 * e1 - k2 * e2 - e3 + e4
                    ub[3, 5, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    ub[4, 5, c] = k1 * e1 - e2 - k1 * e3 + e4
                    ub[5, 5, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    e5 = ub[0, 5, c]
                    v[0, tile, c] = k2 * e0 - k3 * e2 + e4
                    v[1, tile, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    v[2, tile, c] = k2 * e1 - k2 * e2 - e3 + e4
                    v[3, tile, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    v[4, tile, c] = k1 * e1 - e2 - k1 * e3 + e4
                    v[5, tile, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    e5 = ub[1, 5, c]
                    v[6, tile, c] = k2 * e0 - k3 * e2 + e4
                    v[7, tile, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    v[8, tile, c] = k2 * e1 - k2 * e2 - e3 + e4
                    v[9, tile, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    v[10, tile, c] = k1 * e1 - e2 - k1 * e3 + e4
                    v[11, tile, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    e5 = ub[2, 5, c]
                    v[12, tile, c] = k2 * e0 - k3 * e2 + e4
                    v[13, tile, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    v[14, tile, c] = k2 * e1 - k2 * e2 - e3 + e4
                    v[15, tile, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    v[16, tile, c] = k1 * e1 - e2 - k1 * e3 + e4
                    v[17, tile, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    e5 = ub[3, 5, c]
                    v[18, tile, c] = k2 * e0 - k3 * e2 + e4
                    v[19, tile, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    v[20, tile, c] = k2 * e1 - k2 * e2 - e3 + e4
                    v[21, tile, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    v[22, tile, c] = k1 * e1 - e2 - k1 * e3 + e4
                    v[23, tile, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    e5 = ub[4, 5, c]
                    v[24, tile, c] = k2 * e0 - k3 * e2 + e4
                    v[25, tile, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    v[26, tile, c] = k2 * e1 - k2 * e2 - e3 + e4
                    v[27, tile, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    v[28, tile, c] = k1 * e1 - e2 - k1 * e3 + e4
                    v[29, tile, c] = k2 * e1 - k3 * e3 + e5
                for c in range(ch):
                    e0 = ub[5, 0, c]
                    e1 = ub[5, 1, c]
                    e2 = ub[5, 2, c]
                    e3 = ub[5, 3, c]
                    e4 = ub[5, 4, c]
                    e5 = ub[5, 5, c]
                    v[30, tile, c] = k2 * e0 - k3 * e2 + e4
                    v[31, tile, c] = -k2 * e1 - k2 * e2 + e3 + e4
                    v[32, tile, c] = k2 * e1 - k2 * e2 - e3 + e4
                    v[33, tile, c] = -k1 * e1 - e2 + k1 * e3 + e4
                    v[34, tile, c] = k1 * e1 - e2 - k1 * e3 + e4
                    v[35, tile, c] = k2 * e1 - k3 * e3 + e5


def output_transform_4(mm, coef, bias, relu, th, tw, out, part):
    # out[n, 4 ty + i, 4 tx + j, c] = [ReLU of] bias[c] + sum_(k, l) A^T[i, k] A^T[j, l] mm[k * 6 + l, tile, c];
    # a tile that sticks out of the map is written to part (1, 4, 4, C) and cropped
    k1 = coef[1]
    k2 = coef[2]
    k4 = coef[4]
    zero = coef[0] * 0
    nc, ho, wo, ch = out.shape
    ub = np.empty((4, 6, ch), dtype=mm.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 4
                x0 = tx * 4
                inside = y0 + 4 <= ho and x0 + 4 <= wo
                dst, k, i0, j0 = (out, n, y0, x0) if inside else (part, 0, 0, 0)
                for c in range(ch):
                    e0 = mm[0, tile, c]
                    e1 = mm[6, tile, c]
                    e2 = mm[12, tile, c]
                    e3 = mm[18, tile, c]
                    e4 = mm[24, tile, c]
                    e5 = mm[30, tile, c]
                    ub[0, 0, c] = e0 + e1 + e2 + e3 + e4
                    ub[1, 0, c] = e1 - e2 + k1 * e3 - k1 * e4
                    ub[2, 0, c] = e1 + e2 + k2 * e3 + k2 * e4
                    ub[3, 0, c] = e1 - e2 + k4 * e3 - k4 * e4 + e5
                for c in range(ch):
                    e0 = mm[1, tile, c]
                    e1 = mm[7, tile, c]
                    e2 = mm[13, tile, c]
                    e3 = mm[19, tile, c]
                    e4 = mm[25, tile, c]
                    e5 = mm[31, tile, c]
                    ub[0, 1, c] = e0 + e1 + e2 + e3 + e4
                    ub[1, 1, c] = e1 - e2 + k1 * e3 - k1 * e4
                    ub[2, 1, c] = e1 + e2 + k2 * e3 + k2 * e4
                    ub[3, 1, c] = e1 - e2 + k4 * e3 - k4 * e4 + e5
                for c in range(ch):
                    e0 = mm[2, tile, c]
                    e1 = mm[8, tile, c]
                    e2 = mm[14, tile, c]
                    e3 = mm[20, tile, c]
                    e4 = mm[26, tile, c]
                    e5 = mm[32, tile, c]
                    ub[0, 2, c] = e0 + e1 + e2 + e3 + e4
                    ub[1, 2, c] = e1 - e2 + k1 * e3 - k1 * e4
                    ub[2, 2, c] = e1 + e2 + k2 * e3 + k2 * e4
                    ub[3, 2, c] = e1 - e2 + k4 * e3 - k4 * e4 + e5
                for c in range(ch):
                    e0 = mm[3, tile, c]
                    e1 = mm[9, tile, c]
                    e2 = mm[15, tile, c]
                    e3 = mm[21, tile, c]
                    e4 = mm[27, tile, c]
                    e5 = mm[33, tile, c]
                    ub[0, 3, c] = e0 + e1 + e2 + e3 + e4
                    ub[1, 3, c] = e1 - e2 + k1 * e3 - k1 * e4
                    ub[2, 3, c] = e1 + e2 + k2 * e3 + k2 * e4
                    ub[3, 3, c] = e1 - e2 + k4 * e3 - k4 * e4 + e5
                for c in range(ch):
                    e0 = mm[4, tile, c]
                    e1 = mm[10, tile, c]
                    e2 = mm[16, tile, c]
                    e3 = mm[22, tile, c]
                    e4 = mm[28, tile, c]
                    e5 = mm[34, tile, c]
                    ub[0, 4, c] = e0 + e1 + e2 + e3 + e4
                    ub[1, 4, c] = e1 - e2 + k1 * e3 - k1 * e4
                    ub[2, 4, c] = e1 + e2 + k2 * e3 + k2 * e4
                    ub[3, 4, c] = e1 - e2 + k4 * e3 - k4 * e4 + e5
                for c in range(ch):
                    e0 = mm[5, tile, c]
                    e1 = mm[11, tile, c]
                    e2 = mm[17, tile, c]
                    e3 = mm[23, tile, c]
                    e4 = mm[29, tile, c]
                    e5 = mm[35, tile, c]
                    ub[0, 5, c] = e0 + e1 + e2 + e3 + e4
                    ub[1, 5, c] = e1 - e2 + k1 * e3 - k1 * e4
                    ub[2, 5, c] = e1 + e2 + k2 * e3 + k2 * e4
                    ub[3, 5, c] = e1 - e2 + k4 * e3 - k4 * e4 + e5
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    e5 = ub[0, 5, c]
                    b = bias[c]
                    dst[k, i0 + 0, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 1, c] = act(e1 - e2 + k1 * e3 - k1 * e4 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 2, c] = act(e1 + e2 + k2 * e3 + k2 * e4 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 3, c] = act(e1 - e2 + k4 * e3 - k4 * e4 + e5 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    e5 = ub[1, 5, c]
                    b = bias[c]
                    dst[k, i0 + 1, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 1, c] = act(e1 - e2 + k1 * e3 - k1 * e4 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 2, c] = act(e1 + e2 + k2 * e3 + k2 * e4 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 3, c] = act(e1 - e2 + k4 * e3 - k4 * e4 + e5 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    e5 = ub[2, 5, c]
                    b = bias[c]
                    dst[k, i0 + 2, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 1, c] = act(e1 - e2 + k1 * e3 - k1 * e4 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 2, c] = act(e1 + e2 + k2 * e3 + k2 * e4 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 3, c] = act(e1 - e2 + k4 * e3 - k4 * e4 + e5 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    e5 = ub[3, 5, c]
                    b = bias[c]
                    dst[k, i0 + 3, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 1, c] = act(e1 - e2 + k1 * e3 - k1 * e4 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 2, c] = act(e1 + e2 + k2 * e3 + k2 * e4 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 3, c] = act(e1 - e2 + k4 * e3 - k4 * e4 + e5 + b, relu, zero)
                if not inside:
                    for i in range(min(4, ho - y0)):
                        for j in range(min(4, wo - x0)):
                            for c in range(ch):
                                out[n, y0 + i, x0 + j, c] = part[0, i, j, c]


def grad_transform_4(grad, relu_out, masked, coef, th, tw, dm, db, part):
    # g = grad * [relu_out > 0] if masked else grad (zero beyond the map); dm[k * 6 + l, tile, c] =
    # sum_(i, j) A^T[i, k] A^T[j, l] g[n, m ty + i, m tx + j, c]; db[c] += sum of g.
    # Tiles that are masked or stick out of the map are first copied to part (1, 4, 4, C).
    k1 = coef[1]
    k2 = coef[2]
    k4 = coef[4]
    zero = coef[0] * 0
    nc, ho, wo, ch = grad.shape
    ub = np.empty((6, 4, ch), dtype=grad.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 4
                x0 = tx * 4
                inside = y0 + 4 <= ho and x0 + 4 <= wo
                if inside and not masked:
                    src, k, i0, j0 = grad, n, y0, x0
                elif inside:
                    for i in range(4):
                        for j in range(4):
                            for c in range(ch):
                                part[0, i, j, c] = gate(grad[n, y0 + i, x0 + j, c], relu_out[n, y0 + i, x0 + j, c], zero)
                    src, k, i0, j0 = part, 0, 0, 0
                else:
                    for i in range(4):
                        for j in range(4):
                            real = y0 + i < ho and x0 + j < wo
                            for c in range(ch):
                                g = grad[n, y0 + i, x0 + j, c] if real else zero
                                part[0, i, j, c] = gate(g, relu_out[n, y0 + i, x0 + j, c], zero) if real and masked else g
                    src, k, i0, j0 = part, 0, 0, 0
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 0, c]
                    e1 = src[k, i0 + 1, j0 + 0, c]
                    e2 = src[k, i0 + 2, j0 + 0, c]
                    e3 = src[k, i0 + 3, j0 + 0, c]
                    ub[0, 0, c] = e0
                    ub[1, 0, c] = e0 + e1 + e2 + e3
                    ub[2, 0, c] = e0 - e1 + e2 - e3
                    ub[3, 0, c] = e0 + k1 * e1 + k2 * e2 + k4 * e3
                    ub[4, 0, c] = e0 - k1 * e1 + k2 * e2 - k4 * e3
                    ub[5, 0, c] = e3
                    db[c] += e0 + e1 + e2 + e3
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 1, c]
                    e1 = src[k, i0 + 1, j0 + 1, c]
                    e2 = src[k, i0 + 2, j0 + 1, c]
                    e3 = src[k, i0 + 3, j0 + 1, c]
                    ub[0, 1, c] = e0
                    ub[1, 1, c] = e0 + e1 + e2 + e3
                    ub[2, 1, c] = e0 - e1 + e2 - e3
                    ub[3, 1, c] = e0 + k1 * e1 + k2 * e2 + k4 * e3
                    ub[4, 1, c] = e0 - k1 * e1 + k2 * e2 - k4 * e3
                    ub[5, 1, c] = e3
                    db[c] += e0 + e1 + e2 + e3
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 2, c]
                    e1 = src[k, i0 + 1, j0 + 2, c]
                    e2 = src[k, i0 + 2, j0 + 2, c]
                    e3 = src[k, i0 + 3, j0 + 2, c]
                    ub[0, 2, c] = e0
                    ub[1, 2, c] = e0 + e1 + e2 + e3
                    ub[2, 2, c] = e0 - e1 + e2 - e3
                    ub[3, 2, c] = e0 + k1 * e1 + k2 * e2 + k4 * e3
                    ub[4, 2, c] = e0 - k1 * e1 + k2 * e2 - k4 * e3
                    ub[5, 2, c] = e3
                    db[c] += e0 + e1 + e2 + e3
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 3, c]
                    e1 = src[k, i0 + 1, j0 + 3, c]
                    e2 = src[k, i0 + 2, j0 + 3, c]
                    e3 = src[k, i0 + 3, j0 + 3, c]
                    ub[0, 3, c] = e0
                    ub[1, 3, c] = e0 + e1 + e2 + e3
                    ub[2, 3, c] = e0 - e1 + e2 - e3
                    ub[3, 3, c] = e0 + k1 * e1 + k2 * e2 + k4 * e3
                    ub[4, 3, c] = e0 - k1 * e1 + k2 * e2 - k4 * e3
                    ub[5, 3, c] = e3
                    db[c] += e0 + e1 + e2 + e3
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    dm[0, tile, c] = e0
                    dm[1, tile, c] = e0 + e1 + e2 + e3
                    dm[2, tile, c] = e0 - e1 + e2 - e3
                    dm[3, tile, c] = e0 + k1 * e1 + k2 * e2 + k4 * e3
                    dm[4, tile, c] = e0 - k1 * e1 + k2 * e2 - k4 * e3
                    dm[5, tile, c] = e3
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    dm[6, tile, c] = e0
                    dm[7, tile, c] = e0 + e1 + e2 + e3
                    dm[8, tile, c] = e0 - e1 + e2 - e3
                    dm[9, tile, c] = e0 + k1 * e1 + k2 * e2 + k4 * e3
                    dm[10, tile, c] = e0 - k1 * e1 + k2 * e2 - k4 * e3
                    dm[11, tile, c] = e3
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    dm[12, tile, c] = e0
                    dm[13, tile, c] = e0 + e1 + e2 + e3
                    dm[14, tile, c] = e0 - e1 + e2 - e3
                    dm[15, tile, c] = e0 + k1 * e1 + k2 * e2 + k4 * e3
                    dm[16, tile, c] = e0 - k1 * e1 + k2 * e2 - k4 * e3
                    dm[17, tile, c] = e3
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    dm[18, tile, c] = e0
                    dm[19, tile, c] = e0 + e1 + e2 + e3
                    dm[20, tile, c] = e0 - e1 + e2 - e3
                    dm[21, tile, c] = e0 + k1 * e1 + k2 * e2 + k4 * e3
                    dm[22, tile, c] = e0 - k1 * e1 + k2 * e2 - k4 * e3
                    dm[23, tile, c] = e3
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    dm[24, tile, c] = e0
                    dm[25, tile, c] = e0 + e1 + e2 + e3
                    dm[26, tile, c] = e0 - e1 + e2 - e3
                    dm[27, tile, c] = e0 + k1 * e1 + k2 * e2 + k4 * e3
                    dm[28, tile, c] = e0 - k1 * e1 + k2 * e2 - k4 * e3
                    dm[29, tile, c] = e3
                for c in range(ch):
                    e0 = ub[5, 0, c]
                    e1 = ub[5, 1, c]
                    e2 = ub[5, 2, c]
                    e3 = ub[5, 3, c]
                    dm[30, tile, c] = e0
                    dm[31, tile, c] = e0 + e1 + e2 + e3
                    dm[32, tile, c] = e0 - e1 + e2 - e3
                    dm[33, tile, c] = e0 + k1 * e1 + k2 * e2 + k4 * e3
                    dm[34, tile, c] = e0 - k1 * e1 + k2 * e2 - k4 * e3
                    dm[35, tile, c] = e3


def input_grad_transform_4(dv, coef, th, tw, dx):
    # dx[n, 4 ty + k, 4 tx + l, c] += sum_(i, j) B^T[i, k] B^T[j, l] dv[i * 6 + j, tile, c],
    # summed over the overlapping tiles (dx is zeroed first)
    k1 = coef[1]
    k2 = coef[2]
    k3 = coef[3]
    nc, ch = dx.shape[0], dx.shape[3]
    ub = np.empty((6, 6, ch), dtype=dv.dtype)
    dd = np.empty((6, 6, ch), dtype=dv.dtype)
    dx[...] = 0
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 4
                x0 = tx * 4
                for c in range(ch):
                    e0 = dv[0, tile, c]
                    e1 = dv[6, tile, c]
                    e2 = dv[12, tile, c]
                    e3 = dv[18, tile, c]
                    e4 = dv[24, tile, c]
                    e5 = dv[30, tile, c]
                    ub[0, 0, c] = k2 * e0
                    ub[1, 0, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    ub[2, 0, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    ub[3, 0, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    ub[4, 0, c] = e0 + e1 + e2 + e3 + e4
                    ub[5, 0, c] = e5
                for c in range(ch):
                    e0 = dv[1, tile, c]
                    e1 = dv[7, tile, c]
                    e2 = dv[13, tile, c]
                    e3 = dv[19, tile, c]
                    e4 = dv[25, tile, c]
                    e5 = dv[31, tile, c]
                    ub[0, 1, c] = k2 * e0
                    ub[1, 1, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    ub[2, 1, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    ub[3, 1, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    ub[4, 1, c] = e0 + e1 + e2 + e3 + e4
                    ub[5, 1, c] = e5
                for c in range(ch):
                    e0 = dv[2, tile, c]
                    e1 = dv[8, tile, c]
                    e2 = dv[14, tile, c]
                    e3 = dv[20, tile, c]
                    e4 = dv[26, tile, c]
                    e5 = dv[32, tile, c]
                    ub[0, 2, c] = k2 * e0
                    ub[1, 2, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    ub[2, 2, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    ub[3, 2, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    ub[4, 2, c] = e0 + e1 + e2 + e3 + e4
                    ub[5, 2, c] = e5
                for c in range(ch):
                    e0 = dv[3, tile, c]
                    e1 = dv[9, tile, c]
                    e2 = dv[15, tile, c]
                    e3 = dv[21, tile, c]
                    e4 = dv[27, tile, c]
                    e5 = dv[33, tile, c]
                    ub[0, 3, c] = k2 * e0
                    ub[1, 3, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    ub[2, 3, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    ub[3, 3, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    ub[4, 3, c] = e0 + e1 + e2 + e3 + e4
                    ub[5, 3, c] = e5
                for c in range(ch):
                    e0 = dv[4, tile, c]
                    e1 = dv[10, tile, c]
                    e2 = dv[16, tile, c]
                    e3 = dv[22, tile, c]
                    e4 = dv[28, tile, c]
                    e5 = dv[34, tile, c]
                    ub[0, 4, c] = k2 * e0
                    ub[1, 4, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    ub[2, 4, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    ub[3, 4, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    ub[4, 4, c] = e0 + e1 + e2 + e3 + e4
                    ub[5, 4, c] = e5
                for c in range(ch):
                    e0 = dv[5, tile, c]
                    e1 = dv[11, tile, c]
                    e2 = dv[17, tile, c]
                    e3 = dv[23, tile, c]
                    e4 = dv[29, tile, c]
                    e5 = dv[35, tile, c]
                    ub[0, 5, c] = k2 * e0
                    ub[1, 5, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    ub[2, 5, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    ub[3, 5, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    ub[4, 5, c] = e0 + e1 + e2 + e3 + e4
                    ub[5, 5, c] = e5
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    e5 = ub[0, 5, c]
                    dd[0, 0, c] = k2 * e0
                    dd[0, 1, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    dd[0, 2, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    dd[0, 3, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    dd[0, 4, c] = e0 + e1 + e2 + e3 + e4
                    dd[0, 5, c] = e5
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    e5 = ub[1, 5, c]
                    dd[1, 0, c] = k2 * e0
                    dd[1, 1, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    dd[1, 2, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    dd[1, 3, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    dd[1, 4, c] = e0 + e1 + e2 + e3 + e4
                    dd[1, 5, c] = e5
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    e5 = ub[2, 5, c]
                    dd[2, 0, c] = k2 * e0
                    dd[2, 1, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    dd[2, 2, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    dd[2, 3, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    dd[2, 4, c] = e0 + e1 + e2 + e3 + e4
                    dd[2, 5, c] = e5
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    e5 = ub[3, 5, c]
                    dd[3, 0, c] = k2 * e0
                    dd[3, 1, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    dd[3, 2, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    dd[3, 3, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    dd[3, 4, c] = e0 + e1 + e2 + e3 + e4
                    dd[3, 5, c] = e5
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    e5 = ub[4, 5, c]
                    dd[4, 0, c] = k2 * e0
                    dd[4, 1, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    dd[4, 2, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    dd[4, 3, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    dd[4, 4, c] = e0 + e1 + e2 + e3 + e4
                    dd[4, 5, c] = e5
                for c in range(ch):
                    e0 = ub[5, 0, c]
                    e1 = ub[5, 1, c]
                    e2 = ub[5, 2, c]
                    e3 = ub[5, 3, c]
                    e4 = ub[5, 4, c]
                    e5 = ub[5, 5, c]
                    dd[5, 0, c] = k2 * e0
                    dd[5, 1, c] = -k2 * e1 + k2 * e2 - k1 * e3 + k1 * e4 + k2 * e5
                    dd[5, 2, c] = -k3 * e0 - k2 * e1 - k2 * e2 - e3 - e4
                    dd[5, 3, c] = e1 - e2 + k1 * e3 - k1 * e4 - k3 * e5
                    dd[5, 4, c] = e0 + e1 + e2 + e3 + e4
                    dd[5, 5, c] = e5
                for i in range(6):
                    for j in range(6):
                        for c in range(ch):
                            dx[n, y0 + i, x0 + j, c] += dd[i, j, c]

# ---------------------------------------------------------------- F(5 x 5, 3 x 3)
COEFFICIENTS_5 = (1.0, 0.0625, 0.125, 0.25, 0.5, 1.5, 2.0, 2.5, 3.5, 4.0, 4.5, 5.0, 6.0, 8.0, 16.0)


def input_transform_5(xpad, coef, th, tw, v, t0):
    # v[i * 7 + j, t0 + tile, c] = sum_(k, l) B^T[i, k] B^T[j, l] xpad[n, 5 ty + k, 5 tx + l, c]
    k4 = coef[4]
    k5 = coef[5]
    k6 = coef[6]
    k7 = coef[7]
    k8 = coef[8]
    k9 = coef[9]
    k10 = coef[10]
    k11 = coef[11]
    k12 = coef[12]
    nc, ch = xpad.shape[0], xpad.shape[3]
    ub = np.empty((7, 7, ch), dtype=xpad.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = t0 + (n * th + ty) * tw + tx
                y0 = ty * 5
                x0 = tx * 5
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 0, c]
                    e1 = xpad[n, y0 + 1, x0 + 0, c]
                    e2 = xpad[n, y0 + 2, x0 + 0, c]
                    e3 = xpad[n, y0 + 3, x0 + 0, c]
                    e4 = xpad[n, y0 + 4, x0 + 0, c]
                    e5 = xpad[n, y0 + 5, x0 + 0, c]
                    e6 = xpad[n, y0 + 6, x0 + 0, c]
                    ub[0, 0, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    ub[1, 0, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    ub[2, 0, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    ub[3, 0, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    ub[4, 0, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    ub[5, 0, c] = k9 * e1 - k11 * e3 + e5
                    ub[6, 0, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 1, c]
                    e1 = xpad[n, y0 + 1, x0 + 1, c]
                    e2 = xpad[n, y0 + 2, x0 + 1, c]
                    e3 = xpad[n, y0 + 3, x0 + 1, c]
                    e4 = xpad[n, y0 + 4, x0 + 1, c]
                    e5 = xpad[n, y0 + 5, x0 + 1, c]
                    e6 = xpad[n, y0 + 6, x0 + 1, c]
                    ub[0, 1, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    ub[1, 1, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    ub[2, 1, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    ub[3, 1, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    ub[4, 1, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    ub[5, 1, c] = k9 * e1 - k11 * e3 + e5
                    ub[6, 1, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 2, c]
                    e1 = xpad[n, y0 + 1, x0 + 2, c]
                    e2 = xpad[n, y0 + 2, x0 + 2, c]
                    e3 = xpad[n, y0 + 3, x0 + 2, c]
                    e4 = xpad[n, y0 + 4, x0 + 2, c]
                    e5 = xpad[n, y0 + 5, x0 + 2, c]
                    e6 = xpad[n, y0 + 6, x0 + 2, c]
                    ub[0, 2, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    ub[1, 2, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    ub[2, 2, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    ub[3, 2, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    ub[4, 2, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    ub[5, 2, c] = k9 * e1 - k11 * e3 + e5
                    ub[6, 2, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 3, c]
                    e1 = xpad[n, y0 + 1, x0 + 3, c]
                    e2 = xpad[n, y0 + 2, x0 + 3, c]
                    e3 = xpad[n, y0 + 3, x0 + 3, c]
                    e4 = xpad[n, y0 + 4, x0 + 3, c]
                    e5 = xpad[n, y0 + 5, x0 + 3, c]
                    e6 = xpad[n, y0 + 6, x0 + 3, c]
                    ub[0, 3, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    ub[1, 3, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    ub[2, 3, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    ub[3, 3, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    ub[4, 3, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    ub[5, 3, c] = k9 * e1 - k11 * e3 + e5
                    ub[6, 3, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 4, c]
                    e1 = xpad[n, y0 + 1, x0 + 4, c]
                    e2 = xpad[n, y0 + 2, x0 + 4, c]
                    e3 = xpad[n, y0 + 3, x0 + 4, c]
                    e4 = xpad[n, y0 + 4, x0 + 4, c]
                    e5 = xpad[n, y0 + 5, x0 + 4, c]
                    e6 = xpad[n, y0 + 6, x0 + 4, c]
                    ub[0, 4, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    ub[1, 4, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    ub[2, 4, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    ub[3, 4, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    ub[4, 4, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    ub[5, 4, c] = k9 * e1 - k11 * e3 + e5
                    ub[6, 4, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 5, c]
                    e1 = xpad[n, y0 + 1, x0 + 5, c]
                    e2 = xpad[n, y0 + 2, x0 + 5, c]
                    e3 = xpad[n, y0 + 3, x0 + 5, c]
                    e4 = xpad[n, y0 + 4, x0 + 5, c]
                    e5 = xpad[n, y0 + 5, x0 + 5, c]
                    e6 = xpad[n, y0 + 6, x0 + 5, c]
                    ub[0, 5, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    ub[1, 5, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    ub[2, 5, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    ub[3, 5, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    ub[4, 5, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    ub[5, 5, c] = k9 * e1 - k11 * e3 + e5
                    ub[6, 5, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 6, c]
                    e1 = xpad[n, y0 + 1, x0 + 6, c]
                    e2 = xpad[n, y0 + 2, x0 + 6, c]
                    e3 = xpad[n, y0 + 3, x0 + 6, c]
                    e4 = xpad[n, y0 + 4, x0 + 6, c]
                    e5 = xpad[n, y0 + 5, x0 + 6, c]
                    e6 = xpad[n, y0 + 6, x0 + 6, c]
                    ub[0, 6, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    ub[1, 6, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    ub[2, 6, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    ub[3, 6, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    ub[4, 6, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    ub[5, 6, c] = k9 * e1 - k11 * e3 + e5
                    ub[6, 6, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    e5 = ub[0, 5, c]
                    e6 = ub[0, 6, c]
                    v[0, tile, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    v[1, tile, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    v[2, tile, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    v[3, tile, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    v[4, tile, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    v[5, tile, c] = k9 * e1 - k11 * e3 + e5
                    v[6, tile, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    e5 = ub[1, 5, c]
                    e6 = ub[1, 6, c]
                    v[7, tile, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    v[8, tile, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    v[9, tile, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    v[10, tile, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    v[11, tile, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    v[12, tile, c] = k9 * e1 - k11 * e3 + e5
                    v[13, tile, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    e5 = ub[2, 5, c]
                    e6 = ub[2, 6, c]
                    v[14, tile, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    v[15, tile, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    v[16, tile, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    v[17, tile, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    v[18, tile, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    v[19, tile, c] = k9 * e1 - k11 * e3 + e5
                    v[20, tile, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    e5 = ub[3, 5, c]
                    e6 = ub[3, 6, c]
                    v[21, tile, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    v[22, tile, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    v[23, tile, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    v[24, tile, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    v[25, tile, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    v[26, tile, c] = k9 * e1 - k11 * e3 + e5
                    v[27, tile, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    e5 = ub[4, 5, c]
                    e6 = ub[4, 6, c]
                    v[28, tile, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    v[29, tile, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    v[30, tile, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    v[31, tile, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    v[32, tile, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    v[33, tile, c] = k9 * e1 - k11 * e3 + e5
                    v[34, tile, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = ub[5, 0, c]
                    e1 = ub[5, 1, c]
                    e2 = ub[5, 2, c]
                    e3 = ub[5, 3, c]
                    e4 = ub[5, 4, c]
                    e5 = ub[5, 5, c]
                    e6 = ub[5, 6, c]
                    v[35, tile, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    v[36, tile, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    v[37, tile, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    v[38, tile, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    v[39, tile, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    v[40, tile, c] = k9 * e1 - k11 * e3 + e5
                    v[41, tile, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6
                for c in range(ch):
                    e0 = ub[6, 0, c]
                    e1 = ub[6, 1, c]
                    e2 = ub[6, 2, c]
                    e3 = ub[6, 3, c]
                    e4 = ub[6, 4, c]
                    e5 = ub[6, 5, c]
                    e6 = ub[6, 6, c]
                    v[42, tile, c] = -k6 * e0 + k9 * e1 + k7 * e2 - k11 * e3 - k4 * e4 + e5
                    v[43, tile, c] = k6 * e1 - k6 * e2 - k10 * e3 + k4 * e4 + e5
                    v[44, tile, c] = -k6 * e1 + k12 * e2 - k8 * e3 - k5 * e4 + e5
                    v[45, tile, c] = e1 - k5 * e2 - k6 * e3 + k5 * e4 + e5
                    v[46, tile, c] = -e1 + k7 * e2 - k7 * e4 + e5
                    v[47, tile, c] = k9 * e1 - k11 * e3 + e5
                    v[48, tile, c] = -k6 * e1 + k9 * e2 + k7 * e3 - k11 * e4 - k4 * e5 + e6


def output_transform_5(mm, coef, bias, relu, th, tw, out, part):
    # out[n, 5 ty + i, 5 tx + j, c] = [ReLU of] bias[c] + sum_(k, l) A^T[i, k] A^T[j, l] mm[k * 7 + l, tile, c];
    # a tile that sticks out of the map is written to part (1, 5, 5, C) and cropped
    k1 = coef[1]
    k2 = coef[2]
    k3 = coef[3]
    k4 = coef[4]
    k6 = coef[6]
    k9 = coef[9]
    k13 = coef[13]
    k14 = coef[14]
    zero = coef[0] * 0
    nc, ho, wo, ch = out.shape
    ub = np.empty((5, 7, ch), dtype=mm.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 5
                x0 = tx * 5
                inside = y0 + 5 <= ho and x0 + 5 <= wo
                dst, k, i0, j0 = (out, n, y0, x0) if inside else (part, 0, 0, 0)
                for c in range(ch):
                    e0 = mm[0, tile, c]
                    e1 = mm[7, tile, c]
                    e2 = mm[14, tile, c]
                    e3 = mm[21, tile, c]
                    e4 = mm[28, tile, c]
                    e5 = mm[35, tile, c]
                    e6 = mm[42, tile, c]
                    ub[0, 0, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[1, 0, c] = e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5
                    ub[2, 0, c] = e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5
                    ub[3, 0, c] = e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5
                    ub[4, 0, c] = e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6
                for c in range(ch):
                    e0 = mm[1, tile, c]
                    e1 = mm[8, tile, c]
                    e2 = mm[15, tile, c]
                    e3 = mm[22, tile, c]
                    e4 = mm[29, tile, c]
                    e5 = mm[36, tile, c]
                    e6 = mm[43, tile, c]
                    ub[0, 1, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[1, 1, c] = e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5
                    ub[2, 1, c] = e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5
                    ub[3, 1, c] = e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5
                    ub[4, 1, c] = e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6
                for c in range(ch):
                    e0 = mm[2, tile, c]
                    e1 = mm[9, tile, c]
                    e2 = mm[16, tile, c]
                    e3 = mm[23, tile, c]
                    e4 = mm[30, tile, c]
                    e5 = mm[37, tile, c]
                    e6 = mm[44, tile, c]
                    ub[0, 2, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[1, 2, c] = e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5
                    ub[2, 2, c] = e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5
                    ub[3, 2, c] = e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5
                    ub[4, 2, c] = e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6
                for c in range(ch):
                    e0 = mm[3, tile, c]
                    e1 = mm[10, tile, c]
                    e2 = mm[17, tile, c]
                    e3 = mm[24, tile, c]
                    e4 = mm[31, tile, c]
                    e5 = mm[38, tile, c]
                    e6 = mm[45, tile, c]
                    ub[0, 3, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[1, 3, c] = e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5
                    ub[2, 3, c] = e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5
                    ub[3, 3, c] = e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5
                    ub[4, 3, c] = e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6
                for c in range(ch):
                    e0 = mm[4, tile, c]
                    e1 = mm[11, tile, c]
                    e2 = mm[18, tile, c]
                    e3 = mm[25, tile, c]
                    e4 = mm[32, tile, c]
                    e5 = mm[39, tile, c]
                    e6 = mm[46, tile, c]
                    ub[0, 4, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[1, 4, c] = e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5
                    ub[2, 4, c] = e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5
                    ub[3, 4, c] = e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5
                    ub[4, 4, c] = e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6
                for c in range(ch):
                    e0 = mm[5, tile, c]
                    e1 = mm[12, tile, c]
                    e2 = mm[19, tile, c]
                    e3 = mm[26, tile, c]
                    e4 = mm[33, tile, c]
                    e5 = mm[40, tile, c]
                    e6 = mm[47, tile, c]
                    ub[0, 5, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[1, 5, c] = e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5
                    ub[2, 5, c] = e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5
                    ub[3, 5, c] = e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5
                    ub[4, 5, c] = e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6
                for c in range(ch):
                    e0 = mm[6, tile, c]
                    e1 = mm[13, tile, c]
                    e2 = mm[20, tile, c]
                    e3 = mm[27, tile, c]
                    e4 = mm[34, tile, c]
                    e5 = mm[41, tile, c]
                    e6 = mm[48, tile, c]
                    ub[0, 6, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[1, 6, c] = e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5
                    ub[2, 6, c] = e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5
                    ub[3, 6, c] = e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5
                    ub[4, 6, c] = e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    e5 = ub[0, 5, c]
                    e6 = ub[0, 6, c]
                    b = bias[c]
                    dst[k, i0 + 0, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 1, c] = act(e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    e5 = ub[1, 5, c]
                    e6 = ub[1, 6, c]
                    b = bias[c]
                    dst[k, i0 + 1, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 1, c] = act(e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    e5 = ub[2, 5, c]
                    e6 = ub[2, 6, c]
                    b = bias[c]
                    dst[k, i0 + 2, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 1, c] = act(e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    e5 = ub[3, 5, c]
                    e6 = ub[3, 6, c]
                    b = bias[c]
                    dst[k, i0 + 3, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 1, c] = act(e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    e5 = ub[4, 5, c]
                    e6 = ub[4, 6, c]
                    b = bias[c]
                    dst[k, i0 + 4, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + b, relu, zero)
                    dst[k, i0 + 4, j0 + 1, c] = act(e1 - e2 + k6 * e3 - k6 * e4 + k4 * e5 + b, relu, zero)
                    dst[k, i0 + 4, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k3 * e5 + b, relu, zero)
                    dst[k, i0 + 4, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k2 * e5 + b, relu, zero)
                    dst[k, i0 + 4, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k1 * e5 + e6 + b, relu, zero)
                if not inside:
                    for i in range(min(5, ho - y0)):
                        for j in range(min(5, wo - x0)):
                            for c in range(ch):
                                out[n, y0 + i, x0 + j, c] = part[0, i, j, c]


def grad_transform_5(grad, relu_out, masked, coef, th, tw, dm, db, part):
    # g = grad * [relu_out > 0] if masked else grad (zero beyond the map); dm[k * 7 + l, tile, c] =
    # sum_(i, j) A^T[i, k] A^T[j, l] g[n, m ty + i, m tx + j, c]; db[c] += sum of g.
    # Tiles that are masked or stick out of the map are first copied to part (1, 5, 5, C).
    k1 = coef[1]
    k2 = coef[2]
    k3 = coef[3]
    k4 = coef[4]
    k6 = coef[6]
    k9 = coef[9]
    k13 = coef[13]
    k14 = coef[14]
    zero = coef[0] * 0
    nc, ho, wo, ch = grad.shape
    ub = np.empty((7, 5, ch), dtype=grad.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 5
                x0 = tx * 5
                inside = y0 + 5 <= ho and x0 + 5 <= wo
                if inside and not masked:
                    src, k, i0, j0 = grad, n, y0, x0
                elif inside:
                    for i in range(5):
                        for j in range(5):
                            for c in range(ch):
                                part[0, i, j, c] = gate(grad[n, y0 + i, x0 + j, c], relu_out[n, y0 + i, x0 + j, c], zero)
                    src, k, i0, j0 = part, 0, 0, 0
                else:
                    for i in range(5):
                        for j in range(5):
                            real = y0 + i < ho and x0 + j < wo
                            for c in range(ch):
                                g = grad[n, y0 + i, x0 + j, c] if real else zero
                                part[0, i, j, c] = gate(g, relu_out[n, y0 + i, x0 + j, c], zero) if real and masked else g
                    src, k, i0, j0 = part, 0, 0, 0
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 0, c]
                    e1 = src[k, i0 + 1, j0 + 0, c]
                    e2 = src[k, i0 + 2, j0 + 0, c]
                    e3 = src[k, i0 + 3, j0 + 0, c]
                    e4 = src[k, i0 + 4, j0 + 0, c]
                    ub[0, 0, c] = e0
                    ub[1, 0, c] = e0 + e1 + e2 + e3 + e4
                    ub[2, 0, c] = e0 - e1 + e2 - e3 + e4
                    ub[3, 0, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    ub[4, 0, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    ub[5, 0, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    ub[6, 0, c] = e4
                    db[c] += e0 + e1 + e2 + e3 + e4
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 1, c]
                    e1 = src[k, i0 + 1, j0 + 1, c]
                    e2 = src[k, i0 + 2, j0 + 1, c]
                    e3 = src[k, i0 + 3, j0 + 1, c]
                    e4 = src[k, i0 + 4, j0 + 1, c]
                    ub[0, 1, c] = e0
                    ub[1, 1, c] = e0 + e1 + e2 + e3 + e4
                    ub[2, 1, c] = e0 - e1 + e2 - e3 + e4
                    ub[3, 1, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    ub[4, 1, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    ub[5, 1, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    ub[6, 1, c] = e4
                    db[c] += e0 + e1 + e2 + e3 + e4
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 2, c]
                    e1 = src[k, i0 + 1, j0 + 2, c]
                    e2 = src[k, i0 + 2, j0 + 2, c]
                    e3 = src[k, i0 + 3, j0 + 2, c]
                    e4 = src[k, i0 + 4, j0 + 2, c]
                    ub[0, 2, c] = e0
                    ub[1, 2, c] = e0 + e1 + e2 + e3 + e4
                    ub[2, 2, c] = e0 - e1 + e2 - e3 + e4
                    ub[3, 2, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    ub[4, 2, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    ub[5, 2, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    ub[6, 2, c] = e4
                    db[c] += e0 + e1 + e2 + e3 + e4
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 3, c]
                    e1 = src[k, i0 + 1, j0 + 3, c]
                    e2 = src[k, i0 + 2, j0 + 3, c]
                    e3 = src[k, i0 + 3, j0 + 3, c]
                    e4 = src[k, i0 + 4, j0 + 3, c]
                    ub[0, 3, c] = e0
                    ub[1, 3, c] = e0 + e1 + e2 + e3 + e4
                    ub[2, 3, c] = e0 - e1 + e2 - e3 + e4
                    ub[3, 3, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    ub[4, 3, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    ub[5, 3, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    ub[6, 3, c] = e4
                    db[c] += e0 + e1 + e2 + e3 + e4
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 4, c]
                    e1 = src[k, i0 + 1, j0 + 4, c]
                    e2 = src[k, i0 + 2, j0 + 4, c]
                    e3 = src[k, i0 + 3, j0 + 4, c]
                    e4 = src[k, i0 + 4, j0 + 4, c]
                    ub[0, 4, c] = e0
                    ub[1, 4, c] = e0 + e1 + e2 + e3 + e4
                    ub[2, 4, c] = e0 - e1 + e2 - e3 + e4
                    ub[3, 4, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    ub[4, 4, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    ub[5, 4, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    ub[6, 4, c] = e4
                    db[c] += e0 + e1 + e2 + e3 + e4
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    dm[0, tile, c] = e0
                    dm[1, tile, c] = e0 + e1 + e2 + e3 + e4
                    dm[2, tile, c] = e0 - e1 + e2 - e3 + e4
                    dm[3, tile, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    dm[4, tile, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    dm[5, tile, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    dm[6, tile, c] = e4
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    dm[7, tile, c] = e0
                    dm[8, tile, c] = e0 + e1 + e2 + e3 + e4
                    dm[9, tile, c] = e0 - e1 + e2 - e3 + e4
                    dm[10, tile, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    dm[11, tile, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    dm[12, tile, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    dm[13, tile, c] = e4
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    dm[14, tile, c] = e0
                    dm[15, tile, c] = e0 + e1 + e2 + e3 + e4
                    dm[16, tile, c] = e0 - e1 + e2 - e3 + e4
                    dm[17, tile, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    dm[18, tile, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    dm[19, tile, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    dm[20, tile, c] = e4
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    dm[21, tile, c] = e0
                    dm[22, tile, c] = e0 + e1 + e2 + e3 + e4
                    dm[23, tile, c] = e0 - e1 + e2 - e3 + e4
                    dm[24, tile, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    dm[25, tile, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    dm[26, tile, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    dm[27, tile, c] = e4
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    dm[28, tile, c] = e0
                    dm[29, tile, c] = e0 + e1 + e2 + e3 + e4
                    dm[30, tile, c] = e0 - e1 + e2 - e3 + e4
                    dm[31, tile, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    dm[32, tile, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    dm[33, tile, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    dm[34, tile, c] = e4
                for c in range(ch):
                    e0 = ub[5, 0, c]
                    e1 = ub[5, 1, c]
                    e2 = ub[5, 2, c]
                    e3 = ub[5, 3, c]
                    e4 = ub[5, 4, c]
                    dm[35, tile, c] = e0
                    dm[36, tile, c] = e0 + e1 + e2 + e3 + e4
                    dm[37, tile, c] = e0 - e1 + e2 - e3 + e4
                    dm[38, tile, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    dm[39, tile, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    dm[40, tile, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    dm[41, tile, c] = e4
                for c in range(ch):
                    e0 = ub[6, 0, c]
                    e1 = ub[6, 1, c]
                    e2 = ub[6, 2, c]
                    e3 = ub[6, 3, c]
                    e4 = ub[6, 4, c]
                    dm[42, tile, c] = e0
                    dm[43, tile, c] = e0 + e1 + e2 + e3 + e4
                    dm[44, tile, c] = e0 - e1 + e2 - e3 + e4
                    dm[45, tile, c] = e0 + k6 * e1 + k9 * e2 + k13 * e3 + k14 * e4
                    dm[46, tile, c] = e0 - k6 * e1 + k9 * e2 - k13 * e3 + k14 * e4
                    dm[47, tile, c] = e0 + k4 * e1 + k3 * e2 + k2 * e3 + k1 * e4
                    dm[48, tile, c] = e4


def input_grad_transform_5(dv, coef, th, tw, dx):
    # dx[n, 5 ty + k, 5 tx + l, c] += sum_(i, j) B^T[i, k] B^T[j, l] dv[i * 7 + j, tile, c],
    # summed over the overlapping tiles (dx is zeroed first)
    k4 = coef[4]
    k5 = coef[5]
    k6 = coef[6]
    k7 = coef[7]
    k8 = coef[8]
    k9 = coef[9]
    k10 = coef[10]
    k11 = coef[11]
    k12 = coef[12]
    nc, ch = dx.shape[0], dx.shape[3]
    ub = np.empty((7, 7, ch), dtype=dv.dtype)
    dd = np.empty((7, 7, ch), dtype=dv.dtype)
    dx[...] = 0
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 5
                x0 = tx * 5
                for c in range(ch):
                    e0 = dv[0, tile, c]
                    e1 = dv[7, tile, c]
                    e2 = dv[14, tile, c]
                    e3 = dv[21, tile, c]
                    e4 = dv[28, tile, c]
                    e5 = dv[35, tile, c]
                    e6 = dv[42, tile, c]
                    ub[0, 0, c] = -k6 * e0
                    ub[1, 0, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    ub[2, 0, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    ub[3, 0, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    ub[4, 0, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    ub[5, 0, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    ub[6, 0, c] = e6
                for c in range(ch):
                    e0 = dv[1, tile, c]
                    e1 = dv[8, tile, c]
                    e2 = dv[15, tile, c]
                    e3 = dv[22, tile, c]
                    e4 = dv[29, tile, c]
                    e5 = dv[36, tile, c]
                    e6 = dv[43, tile, c]
                    ub[0, 1, c] = -k6 * e0
                    ub[1, 1, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    ub[2, 1, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    ub[3, 1, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    ub[4, 1, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    ub[5, 1, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    ub[6, 1, c] = e6
                for c in range(ch):
                    e0 = dv[2, tile, c]
                    e1 = dv[9, tile, c]
                    e2 = dv[16, tile, c]
                    e3 = dv[23, tile, c]
                    e4 = dv[30, tile, c]
                    e5 = dv[37, tile, c]
                    e6 = dv[44, tile, c]
                    ub[0, 2, c] = -k6 * e0
                    ub[1, 2, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    ub[2, 2, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    ub[3, 2, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    ub[4, 2, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    ub[5, 2, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    ub[6, 2, c] = e6
                for c in range(ch):
                    e0 = dv[3, tile, c]
                    e1 = dv[10, tile, c]
                    e2 = dv[17, tile, c]
                    e3 = dv[24, tile, c]
                    e4 = dv[31, tile, c]
                    e5 = dv[38, tile, c]
                    e6 = dv[45, tile, c]
                    ub[0, 3, c] = -k6 * e0
                    ub[1, 3, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    ub[2, 3, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    ub[3, 3, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    ub[4, 3, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    ub[5, 3, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    ub[6, 3, c] = e6
                for c in range(ch):
                    e0 = dv[4, tile, c]
                    e1 = dv[11, tile, c]
                    e2 = dv[18, tile, c]
                    e3 = dv[25, tile, c]
                    e4 = dv[32, tile, c]
                    e5 = dv[39, tile, c]
                    e6 = dv[46, tile, c]
                    ub[0, 4, c] = -k6 * e0
                    ub[1, 4, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    ub[2, 4, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    ub[3, 4, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    ub[4, 4, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    ub[5, 4, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    ub[6, 4, c] = e6
                for c in range(ch):
                    e0 = dv[5, tile, c]
                    e1 = dv[12, tile, c]
                    e2 = dv[19, tile, c]
                    e3 = dv[26, tile, c]
                    e4 = dv[33, tile, c]
                    e5 = dv[40, tile, c]
                    e6 = dv[47, tile, c]
                    ub[0, 5, c] = -k6 * e0
                    ub[1, 5, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    ub[2, 5, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    ub[3, 5, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    ub[4, 5, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    ub[5, 5, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    ub[6, 5, c] = e6
                for c in range(ch):
                    e0 = dv[6, tile, c]
                    e1 = dv[13, tile, c]
                    e2 = dv[20, tile, c]
                    e3 = dv[27, tile, c]
                    e4 = dv[34, tile, c]
                    e5 = dv[41, tile, c]
                    e6 = dv[48, tile, c]
                    ub[0, 6, c] = -k6 * e0
                    ub[1, 6, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    ub[2, 6, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    ub[3, 6, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    ub[4, 6, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    ub[5, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    ub[6, 6, c] = e6
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    e5 = ub[0, 5, c]
                    e6 = ub[0, 6, c]
                    dd[0, 0, c] = -k6 * e0
                    dd[0, 1, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    dd[0, 2, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    dd[0, 3, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    dd[0, 4, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    dd[0, 5, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    dd[0, 6, c] = e6
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    e5 = ub[1, 5, c]
                    e6 = ub[1, 6, c]
                    dd[1, 0, c] = -k6 * e0
                    dd[1, 1, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    dd[1, 2, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    dd[1, 3, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    dd[1, 4, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    dd[1, 5, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    dd[1, 6, c] = e6
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    e5 = ub[2, 5, c]
                    e6 = ub[2, 6, c]
                    dd[2, 0, c] = -k6 * e0
                    dd[2, 1, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    dd[2, 2, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    dd[2, 3, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    dd[2, 4, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    dd[2, 5, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    dd[2, 6, c] = e6
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    e5 = ub[3, 5, c]
                    e6 = ub[3, 6, c]
                    dd[3, 0, c] = -k6 * e0
                    dd[3, 1, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    dd[3, 2, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    dd[3, 3, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    dd[3, 4, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    dd[3, 5, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    dd[3, 6, c] = e6
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    e5 = ub[4, 5, c]
                    e6 = ub[4, 6, c]
                    dd[4, 0, c] = -k6 * e0
                    dd[4, 1, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    dd[4, 2, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    dd[4, 3, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    dd[4, 4, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    dd[4, 5, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    dd[4, 6, c] = e6
                for c in range(ch):
                    e0 = ub[5, 0, c]
                    e1 = ub[5, 1, c]
                    e2 = ub[5, 2, c]
                    e3 = ub[5, 3, c]
                    e4 = ub[5, 4, c]
                    e5 = ub[5, 5, c]
                    e6 = ub[5, 6, c]
                    dd[5, 0, c] = -k6 * e0
                    dd[5, 1, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    dd[5, 2, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    dd[5, 3, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    dd[5, 4, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    dd[5, 5, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    dd[5, 6, c] = e6
                for c in range(ch):
                    e0 = ub[6, 0, c]
                    e1 = ub[6, 1, c]
                    e2 = ub[6, 2, c]
                    e3 = ub[6, 3, c]
                    e4 = ub[6, 4, c]
                    e5 = ub[6, 5, c]
                    e6 = ub[6, 6, c]
                    dd[6, 0, c] = -k6 * e0
                    dd[6, 1, c] = k9 * e0 + k6 * e1 - k6 * e2 + e3 - e4 + k9 * e5 - k6 * e6
                    dd[6, 2, c] = k7 * e0 - k6 * e1 + k12 * e2 - k5 * e3 + k7 * e4 + k9 * e6
                    dd[6, 3, c] = -k11 * e0 - k10 * e1 - k8 * e2 - k6 * e3 - k11 * e5 + k7 * e6
                    dd[6, 4, c] = -k4 * e0 + k4 * e1 - k5 * e2 + k5 * e3 - k7 * e4 - k11 * e6
                    dd[6, 5, c] = e0 + e1 + e2 + e3 + e4 + e5 - k4 * e6
                    dd[6, 6, c] = e6
                for i in range(7):
                    for j in range(7):
                        for c in range(ch):
                            dx[n, y0 + i, x0 + j, c] += dd[i, j, c]

# ---------------------------------------------------------------- F(6 x 6, 3 x 3)
COEFFICIENTS_6 = (1.0, 0.03125, 0.0625, 0.125, 0.25, 0.5, 1.25, 2.0, 2.5, 4.0, 4.25, 5.0, 5.25, 8.0, 16.0, 32.0)


def input_transform_6(xpad, coef, th, tw, v, t0):
    # v[i * 8 + j, t0 + tile, c] = sum_(k, l) B^T[i, k] B^T[j, l] xpad[n, 6 ty + k, 6 tx + l, c]
    k4 = coef[4]
    k5 = coef[5]
    k6 = coef[6]
    k7 = coef[7]
    k8 = coef[8]
    k9 = coef[9]
    k10 = coef[10]
    k11 = coef[11]
    k12 = coef[12]
    nc, ch = xpad.shape[0], xpad.shape[3]
    ub = np.empty((8, 8, ch), dtype=xpad.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = t0 + (n * th + ty) * tw + tx
                y0 = ty * 6
                x0 = tx * 6
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 0, c]
                    e1 = xpad[n, y0 + 1, x0 + 0, c]
                    e2 = xpad[n, y0 + 2, x0 + 0, c]
                    e3 = xpad[n, y0 + 3, x0 + 0, c]
                    e4 = xpad[n, y0 + 4, x0 + 0, c]
                    e5 = xpad[n, y0 + 5, x0 + 0, c]
                    e6 = xpad[n, y0 + 6, x0 + 0, c]
                    e7 = xpad[n, y0 + 7, x0 + 0, c]
                    ub[0, 0, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    ub[1, 0, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    ub[2, 0, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    ub[3, 0, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    ub[4, 0, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    ub[5, 0, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    ub[6, 0, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    ub[7, 0, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 1, c]
                    e1 = xpad[n, y0 + 1, x0 + 1, c]
                    e2 = xpad[n, y0 + 2, x0 + 1, c]
                    e3 = xpad[n, y0 + 3, x0 + 1, c]
                    e4 = xpad[n, y0 + 4, x0 + 1, c]
                    e5 = xpad[n, y0 + 5, x0 + 1, c]
                    e6 = xpad[n, y0 + 6, x0 + 1, c]
                    e7 = xpad[n, y0 + 7, x0 + 1, c]
                    ub[0, 1, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    ub[1, 1, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    ub[2, 1, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    ub[3, 1, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    ub[4, 1, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    ub[5, 1, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    ub[6, 1, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    ub[7, 1, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 2, c]
                    e1 = xpad[n, y0 + 1, x0 + 2, c]
                    e2 = xpad[n, y0 + 2, x0 + 2, c]
                    e3 = xpad[n, y0 + 3, x0 + 2, c]
                    e4 = xpad[n, y0 + 4, x0 + 2, c]
                    e5 = xpad[n, y0 + 5, x0 + 2, c]
                    e6 = xpad[n, y0 + 6, x0 + 2, c]
                    e7 = xpad[n, y0 + 7, x0 + 2, c]
                    ub[0, 2, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    ub[1, 2, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    ub[2, 2, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    ub[3, 2, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    ub[4, 2, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    ub[5, 2, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    ub[6, 2, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    ub[7, 2, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 3, c]
                    e1 = xpad[n, y0 + 1, x0 + 3, c]
                    e2 = xpad[n, y0 + 2, x0 + 3, c]
                    e3 = xpad[n, y0 + 3, x0 + 3, c]
                    e4 = xpad[n, y0 + 4, x0 + 3, c]
                    e5 = xpad[n, y0 + 5, x0 + 3, c]
                    e6 = xpad[n, y0 + 6, x0 + 3, c]
                    e7 = xpad[n, y0 + 7, x0 + 3, c]
                    ub[0, 3, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    ub[1, 3, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    ub[2, 3, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    ub[3, 3, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    ub[4, 3, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    ub[5, 3, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    ub[6, 3, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    ub[7, 3, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 4, c]
                    e1 = xpad[n, y0 + 1, x0 + 4, c]
                    e2 = xpad[n, y0 + 2, x0 + 4, c]
                    e3 = xpad[n, y0 + 3, x0 + 4, c]
                    e4 = xpad[n, y0 + 4, x0 + 4, c]
                    e5 = xpad[n, y0 + 5, x0 + 4, c]
                    e6 = xpad[n, y0 + 6, x0 + 4, c]
                    e7 = xpad[n, y0 + 7, x0 + 4, c]
                    ub[0, 4, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    ub[1, 4, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    ub[2, 4, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    ub[3, 4, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    ub[4, 4, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    ub[5, 4, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    ub[6, 4, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    ub[7, 4, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 5, c]
                    e1 = xpad[n, y0 + 1, x0 + 5, c]
                    e2 = xpad[n, y0 + 2, x0 + 5, c]
                    e3 = xpad[n, y0 + 3, x0 + 5, c]
                    e4 = xpad[n, y0 + 4, x0 + 5, c]
                    e5 = xpad[n, y0 + 5, x0 + 5, c]
                    e6 = xpad[n, y0 + 6, x0 + 5, c]
                    e7 = xpad[n, y0 + 7, x0 + 5, c]
                    ub[0, 5, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    ub[1, 5, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    ub[2, 5, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    ub[3, 5, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    ub[4, 5, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    ub[5, 5, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    ub[6, 5, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    ub[7, 5, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 6, c]
                    e1 = xpad[n, y0 + 1, x0 + 6, c]
                    e2 = xpad[n, y0 + 2, x0 + 6, c]
                    e3 = xpad[n, y0 + 3, x0 + 6, c]
                    e4 = xpad[n, y0 + 4, x0 + 6, c]
                    e5 = xpad[n, y0 + 5, x0 + 6, c]
                    e6 = xpad[n, y0 + 6, x0 + 6, c]
                    e7 = xpad[n, y0 + 7, x0 + 6, c]
                    ub[0, 6, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    ub[1, 6, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    ub[2, 6, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    ub[3, 6, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    ub[4, 6, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    ub[5, 6, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    ub[6, 6, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    ub[7, 6, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = xpad[n, y0 + 0, x0 + 7, c]
                    e1 = xpad[n, y0 + 1, x0 + 7, c]
                    e2 = xpad[n, y0 + 2, x0 + 7, c]
                    e3 = xpad[n, y0 + 3, x0 + 7, c]
                    e4 = xpad[n, y0 + 4, x0 + 7, c]
                    e5 = xpad[n, y0 + 5, x0 + 7, c]
                    e6 = xpad[n, y0 + 6, x0 + 7, c]
                    e7 = xpad[n, y0 + 7, x0 + 7, c]
                    ub[0, 7, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    ub[1, 7, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    ub[2, 7, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    ub[3, 7, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    ub[4, 7, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    ub[5, 7, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    ub[6, 7, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    ub[7, 7, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    e5 = ub[0, 5, c]
                    e6 = ub[0, 6, c]
                    e7 = ub[0, 7, c]
                    v[0, tile, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    v[1, tile, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    v[2, tile, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    v[3, tile, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    v[4, tile, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    v[5, tile, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    v[6, tile, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    v[7, tile, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    e5 = ub[1, 5, c]
                    e6 = ub[1, 6, c]
                    e7 = ub[1, 7, c]
                    v[8, tile, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    v[9, tile, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    v[10, tile, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    v[11, tile, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    v[12, tile, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    v[13, tile, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    v[14, tile, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    v[15, tile, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    e5 = ub[2, 5, c]
                    e6 = ub[2, 6, c]
                    e7 = ub[2, 7, c]
                    v[16, tile, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    v[17, tile, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    v[18, tile, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    v[19, tile, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    v[20, tile, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    v[21, tile, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    v[22, tile, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    v[23, tile, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    e5 = ub[3, 5, c]
                    e6 = ub[3, 6, c]
                    e7 = ub[3, 7, c]
                    v[24, tile, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    v[25, tile, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    v[26, tile, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    v[27, tile, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    v[28, tile, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    v[29, tile, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    v[30, tile, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    v[31, tile, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    e5 = ub[4, 5, c]
                    e6 = ub[4, 6, c]
                    e7 = ub[4, 7, c]
                    v[32, tile, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    v[33, tile, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    v[34, tile, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    v[35, tile, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    v[36, tile, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    v[37, tile, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    v[38, tile, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    v[39, tile, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = ub[5, 0, c]
                    e1 = ub[5, 1, c]
                    e2 = ub[5, 2, c]
                    e3 = ub[5, 3, c]
                    e4 = ub[5, 4, c]
                    e5 = ub[5, 5, c]
                    e6 = ub[5, 6, c]
                    e7 = ub[5, 7, c]
                    v[40, tile, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    v[41, tile, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    v[42, tile, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    v[43, tile, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    v[44, tile, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    v[45, tile, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    v[46, tile, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    v[47, tile, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = ub[6, 0, c]
                    e1 = ub[6, 1, c]
                    e2 = ub[6, 2, c]
                    e3 = ub[6, 3, c]
                    e4 = ub[6, 4, c]
                    e5 = ub[6, 5, c]
                    e6 = ub[6, 6, c]
                    e7 = ub[6, 7, c]
                    v[48, tile, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    v[49, tile, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    v[50, tile, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    v[51, tile, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    v[52, tile, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    v[53, tile, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    v[54, tile, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    v[55, tile, c] = -e1 + k12 * e3 - k12 * e5 + e7
                for c in range(ch):
                    e0 = ub[7, 0, c]
                    e1 = ub[7, 1, c]
                    e2 = ub[7, 2, c]
                    e3 = ub[7, 3, c]
                    e4 = ub[7, 4, c]
                    e5 = ub[7, 5, c]
                    e6 = ub[7, 6, c]
                    e7 = ub[7, 7, c]
                    v[56, tile, c] = -e0 + k12 * e2 - k12 * e4 + e6
                    v[57, tile, c] = e1 + e2 - k10 * e3 - k10 * e4 + e5 + e6
                    v[58, tile, c] = -e1 + e2 + k10 * e3 - k10 * e4 - e5 + e6
                    v[59, tile, c] = k5 * e1 + k4 * e2 - k8 * e3 - k6 * e4 + k7 * e5 + e6
                    v[60, tile, c] = -k5 * e1 + k4 * e2 + k8 * e3 - k6 * e4 - k7 * e5 + e6
                    v[61, tile, c] = k7 * e1 + k9 * e2 - k8 * e3 - k11 * e4 + k5 * e5 + e6
                    v[62, tile, c] = -k7 * e1 + k9 * e2 + k8 * e3 - k11 * e4 - k5 * e5 + e6
                    v[63, tile, c] = -e1 + k12 * e3 - k12 * e5 + e7


def output_transform_6(mm, coef, bias, relu, th, tw, out, part):
    # out[n, 6 ty + i, 6 tx + j, c] = [ReLU of] bias[c] + sum_(k, l) A^T[i, k] A^T[j, l] mm[k * 8 + l, tile, c];
    # a tile that sticks out of the map is written to part (1, 6, 6, C) and cropped
    k1 = coef[1]
    k2 = coef[2]
    k3 = coef[3]
    k4 = coef[4]
    k5 = coef[5]
    k7 = coef[7]
    k9 = coef[9]
    k13 = coef[13]
    k14 = coef[14]
    k15 = coef[15]
    zero = coef[0] * 0
    nc, ho, wo, ch = out.shape
    ub = np.empty((6, 8, ch), dtype=mm.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 6
                x0 = tx * 6
                inside = y0 + 6 <= ho and x0 + 6 <= wo
                dst, k, i0, j0 = (out, n, y0, x0) if inside else (part, 0, 0, 0)
                for c in range(ch):
                    e0 = mm[0, tile, c]
                    e1 = mm[8, tile, c]
                    e2 = mm[16, tile, c]
                    e3 = mm[24, tile, c]
                    e4 = mm[32, tile, c]
                    e5 = mm[40, tile, c]
                    e6 = mm[48, tile, c]
                    e7 = mm[56, tile, c]
                    ub[0, 0, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[1, 0, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6
                    ub[2, 0, c] = e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6
                    ub[3, 0, c] = e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6
                    ub[4, 0, c] = e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6
                    ub[5, 0, c] = e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7
                for c in range(ch):
                    e0 = mm[1, tile, c]
                    e1 = mm[9, tile, c]
                    e2 = mm[17, tile, c]
                    e3 = mm[25, tile, c]
                    e4 = mm[33, tile, c]
                    e5 = mm[41, tile, c]
                    e6 = mm[49, tile, c]
                    e7 = mm[57, tile, c]
                    ub[0, 1, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[1, 1, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6
                    ub[2, 1, c] = e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6
                    ub[3, 1, c] = e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6
                    ub[4, 1, c] = e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6
                    ub[5, 1, c] = e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7
                for c in range(ch):
                    e0 = mm[2, tile, c]
                    e1 = mm[10, tile, c]
                    e2 = mm[18, tile, c]
                    e3 = mm[26, tile, c]
                    e4 = mm[34, tile, c]
                    e5 = mm[42, tile, c]
                    e6 = mm[50, tile, c]
                    e7 = mm[58, tile, c]
                    ub[0, 2, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[1, 2, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6
                    ub[2, 2, c] = e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6
                    ub[3, 2, c] = e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6
                    ub[4, 2, c] = e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6
                    ub[5, 2, c] = e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7
                for c in range(ch):
                    e0 = mm[3, tile, c]
                    e1 = mm[11, tile, c]
                    e2 = mm[19, tile, c]
                    e3 = mm[27, tile, c]
                    e4 = mm[35, tile, c]
                    e5 = mm[43, tile, c]
                    e6 = mm[51, tile, c]
                    e7 = mm[59, tile, c]
                    ub[0, 3, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[1, 3, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6
                    ub[2, 3, c] = e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6
                    ub[3, 3, c] = e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6
                    ub[4, 3, c] = e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6
                    ub[5, 3, c] = e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7
                for c in range(ch):
                    e0 = mm[4, tile, c]
                    e1 = mm[12, tile, c]
                    e2 = mm[20, tile, c]
                    e3 = mm[28, tile, c]
                    e4 = mm[36, tile, c]
                    e5 = mm[44, tile, c]
                    e6 = mm[52, tile, c]
                    e7 = mm[60, tile, c]
                    ub[0, 4, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[1, 4, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6
                    ub[2, 4, c] = e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6
                    ub[3, 4, c] = e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6
                    ub[4, 4, c] = e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6
                    ub[5, 4, c] = e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7
                for c in range(ch):
                    e0 = mm[5, tile, c]
                    e1 = mm[13, tile, c]
                    e2 = mm[21, tile, c]
                    e3 = mm[29, tile, c]
                    e4 = mm[37, tile, c]
                    e5 = mm[45, tile, c]
                    e6 = mm[53, tile, c]
                    e7 = mm[61, tile, c]
                    ub[0, 5, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[1, 5, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6
                    ub[2, 5, c] = e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6
                    ub[3, 5, c] = e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6
                    ub[4, 5, c] = e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6
                    ub[5, 5, c] = e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7
                for c in range(ch):
                    e0 = mm[6, tile, c]
                    e1 = mm[14, tile, c]
                    e2 = mm[22, tile, c]
                    e3 = mm[30, tile, c]
                    e4 = mm[38, tile, c]
                    e5 = mm[46, tile, c]
                    e6 = mm[54, tile, c]
                    e7 = mm[62, tile, c]
                    ub[0, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[1, 6, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6
                    ub[2, 6, c] = e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6
                    ub[3, 6, c] = e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6
                    ub[4, 6, c] = e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6
                    ub[5, 6, c] = e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7
                for c in range(ch):
                    e0 = mm[7, tile, c]
                    e1 = mm[15, tile, c]
                    e2 = mm[23, tile, c]
                    e3 = mm[31, tile, c]
                    e4 = mm[39, tile, c]
                    e5 = mm[47, tile, c]
                    e6 = mm[55, tile, c]
                    e7 = mm[63, tile, c]
                    ub[0, 7, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[1, 7, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6
                    ub[2, 7, c] = e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6
                    ub[3, 7, c] = e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6
                    ub[4, 7, c] = e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6
                    ub[5, 7, c] = e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    e5 = ub[0, 5, c]
                    e6 = ub[0, 6, c]
                    e7 = ub[0, 7, c]
                    b = bias[c]
                    dst[k, i0 + 0, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + e6 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 1, c] = act(e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6 + b, relu, zero)
                    dst[k, i0 + 0, j0 + 5, c] = act(e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    e5 = ub[1, 5, c]
                    e6 = ub[1, 6, c]
                    e7 = ub[1, 7, c]
                    b = bias[c]
                    dst[k, i0 + 1, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + e6 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 1, c] = act(e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6 + b, relu, zero)
                    dst[k, i0 + 1, j0 + 5, c] = act(e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    e5 = ub[2, 5, c]
                    e6 = ub[2, 6, c]
                    e7 = ub[2, 7, c]
                    b = bias[c]
                    dst[k, i0 + 2, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + e6 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 1, c] = act(e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6 + b, relu, zero)
                    dst[k, i0 + 2, j0 + 5, c] = act(e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    e5 = ub[3, 5, c]
                    e6 = ub[3, 6, c]
                    e7 = ub[3, 7, c]
                    b = bias[c]
                    dst[k, i0 + 3, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + e6 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 1, c] = act(e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6 + b, relu, zero)
                    dst[k, i0 + 3, j0 + 5, c] = act(e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    e5 = ub[4, 5, c]
                    e6 = ub[4, 6, c]
                    e7 = ub[4, 7, c]
                    b = bias[c]
                    dst[k, i0 + 4, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + e6 + b, relu, zero)
                    dst[k, i0 + 4, j0 + 1, c] = act(e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 + b, relu, zero)
                    dst[k, i0 + 4, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6 + b, relu, zero)
                    dst[k, i0 + 4, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6 + b, relu, zero)
                    dst[k, i0 + 4, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6 + b, relu, zero)
                    dst[k, i0 + 4, j0 + 5, c] = act(e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7 + b, relu, zero)
                for c in range(ch):
                    e0 = ub[5, 0, c]
                    e1 = ub[5, 1, c]
                    e2 = ub[5, 2, c]
                    e3 = ub[5, 3, c]
                    e4 = ub[5, 4, c]
                    e5 = ub[5, 5, c]
                    e6 = ub[5, 6, c]
                    e7 = ub[5, 7, c]
                    b = bias[c]
                    dst[k, i0 + 5, j0 + 0, c] = act(e0 + e1 + e2 + e3 + e4 + e5 + e6 + b, relu, zero)
                    dst[k, i0 + 5, j0 + 1, c] = act(e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 + b, relu, zero)
                    dst[k, i0 + 5, j0 + 2, c] = act(e1 + e2 + k9 * e3 + k9 * e4 + k4 * e5 + k4 * e6 + b, relu, zero)
                    dst[k, i0 + 5, j0 + 3, c] = act(e1 - e2 + k13 * e3 - k13 * e4 + k3 * e5 - k3 * e6 + b, relu, zero)
                    dst[k, i0 + 5, j0 + 4, c] = act(e1 + e2 + k14 * e3 + k14 * e4 + k2 * e5 + k2 * e6 + b, relu, zero)
                    dst[k, i0 + 5, j0 + 5, c] = act(e1 - e2 + k15 * e3 - k15 * e4 + k1 * e5 - k1 * e6 + e7 + b, relu, zero)
                if not inside:
                    for i in range(min(6, ho - y0)):
                        for j in range(min(6, wo - x0)):
                            for c in range(ch):
                                out[n, y0 + i, x0 + j, c] = part[0, i, j, c]


def grad_transform_6(grad, relu_out, masked, coef, th, tw, dm, db, part):
    # g = grad * [relu_out > 0] if masked else grad (zero beyond the map); dm[k * 8 + l, tile, c] =
    # sum_(i, j) A^T[i, k] A^T[j, l] g[n, m ty + i, m tx + j, c]; db[c] += sum of g.
    # Tiles that are masked or stick out of the map are first copied to part (1, 6, 6, C).
    k1 = coef[1]
    k2 = coef[2]
    k3 = coef[3]
    k4 = coef[4]
    k5 = coef[5]
    k7 = coef[7]
    k9 = coef[9]
    k13 = coef[13]
    k14 = coef[14]
    k15 = coef[15]
    zero = coef[0] * 0
    nc, ho, wo, ch = grad.shape
    ub = np.empty((8, 6, ch), dtype=grad.dtype)
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 6
                x0 = tx * 6
                inside = y0 + 6 <= ho and x0 + 6 <= wo
                if inside and not masked:
                    src, k, i0, j0 = grad, n, y0, x0
                elif inside:
                    for i in range(6):
                        for j in range(6):
                            for c in range(ch):
                                part[0, i, j, c] = gate(grad[n, y0 + i, x0 + j, c], relu_out[n, y0 + i, x0 + j, c], zero)
                    src, k, i0, j0 = part, 0, 0, 0
                else:
                    for i in range(6):
                        for j in range(6):
                            real = y0 + i < ho and x0 + j < wo
                            for c in range(ch):
                                g = grad[n, y0 + i, x0 + j, c] if real else zero
                                part[0, i, j, c] = gate(g, relu_out[n, y0 + i, x0 + j, c], zero) if real and masked else g
                    src, k, i0, j0 = part, 0, 0, 0
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 0, c]
                    e1 = src[k, i0 + 1, j0 + 0, c]
                    e2 = src[k, i0 + 2, j0 + 0, c]
                    e3 = src[k, i0 + 3, j0 + 0, c]
                    e4 = src[k, i0 + 4, j0 + 0, c]
                    e5 = src[k, i0 + 5, j0 + 0, c]
                    ub[0, 0, c] = e0
                    ub[1, 0, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[2, 0, c] = e0 - e1 + e2 - e3 + e4 - e5
                    ub[3, 0, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    ub[4, 0, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    ub[5, 0, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    ub[6, 0, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    ub[7, 0, c] = e5
                    db[c] += e0 + e1 + e2 + e3 + e4 + e5
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 1, c]
                    e1 = src[k, i0 + 1, j0 + 1, c]
                    e2 = src[k, i0 + 2, j0 + 1, c]
                    e3 = src[k, i0 + 3, j0 + 1, c]
                    e4 = src[k, i0 + 4, j0 + 1, c]
                    e5 = src[k, i0 + 5, j0 + 1, c]
                    ub[0, 1, c] = e0
                    ub[1, 1, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[2, 1, c] = e0 - e1 + e2 - e3 + e4 - e5
                    ub[3, 1, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    ub[4, 1, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    ub[5, 1, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    ub[6, 1, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    ub[7, 1, c] = e5
                    db[c] += e0 + e1 + e2 + e3 + e4 + e5
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 2, c]
                    e1 = src[k, i0 + 1, j0 + 2, c]
                    e2 = src[k, i0 + 2, j0 + 2, c]
                    e3 = src[k, i0 + 3, j0 + 2, c]
                    e4 = src[k, i0 + 4, j0 + 2, c]
                    e5 = src[k, i0 + 5, j0 + 2, c]
                    ub[0, 2, c] = e0
                    ub[1, 2, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[2, 2, c] = e0 - e1 + e2 - e3 + e4 - e5
                    ub[3, 2, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    ub[4, 2, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    ub[5, 2, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    ub[6, 2, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    ub[7, 2, c] = e5
                    db[c] += e0 + e1 + e2 + e3 + e4 + e5
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 3, c]
                    e1 = src[k, i0 + 1, j0 + 3, c]
                    e2 = src[k, i0 + 2, j0 + 3, c]
                    e3 = src[k, i0 + 3, j0 + 3, c]
                    e4 = src[k, i0 + 4, j0 + 3, c]
                    e5 = src[k, i0 + 5, j0 + 3, c]
                    ub[0, 3, c] = e0
                    ub[1, 3, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[2, 3, c] = e0 - e1 + e2 - e3 + e4 - e5
                    ub[3, 3, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    ub[4, 3, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    ub[5, 3, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    ub[6, 3, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    ub[7, 3, c] = e5
                    db[c] += e0 + e1 + e2 + e3 + e4 + e5
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 4, c]
                    e1 = src[k, i0 + 1, j0 + 4, c]
                    e2 = src[k, i0 + 2, j0 + 4, c]
                    e3 = src[k, i0 + 3, j0 + 4, c]
                    e4 = src[k, i0 + 4, j0 + 4, c]
                    e5 = src[k, i0 + 5, j0 + 4, c]
                    ub[0, 4, c] = e0
                    ub[1, 4, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[2, 4, c] = e0 - e1 + e2 - e3 + e4 - e5
                    ub[3, 4, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    ub[4, 4, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    ub[5, 4, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    ub[6, 4, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    ub[7, 4, c] = e5
                    db[c] += e0 + e1 + e2 + e3 + e4 + e5
                for c in range(ch):
                    e0 = src[k, i0 + 0, j0 + 5, c]
                    e1 = src[k, i0 + 1, j0 + 5, c]
                    e2 = src[k, i0 + 2, j0 + 5, c]
                    e3 = src[k, i0 + 3, j0 + 5, c]
                    e4 = src[k, i0 + 4, j0 + 5, c]
                    e5 = src[k, i0 + 5, j0 + 5, c]
                    ub[0, 5, c] = e0
                    ub[1, 5, c] = e0 + e1 + e2 + e3 + e4 + e5
                    ub[2, 5, c] = e0 - e1 + e2 - e3 + e4 - e5
                    ub[3, 5, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    ub[4, 5, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    ub[5, 5, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    ub[6, 5, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    ub[7, 5, c] = e5
                    db[c] += e0 + e1 + e2 + e3 + e4 + e5
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    e5 = ub[0, 5, c]
                    dm[0, tile, c] = e0
                    dm[1, tile, c] = e0 + e1 + e2 + e3 + e4 + e5
                    dm[2, tile, c] = e0 - e1 + e2 - e3 + e4 - e5
                    dm[3, tile, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    dm[4, tile, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    dm[5, tile, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    dm[6, tile, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    dm[7, tile, c] = e5
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    e5 = ub[1, 5, c]
                    dm[8, tile, c] = e0
                    dm[9, tile, c] = e0 + e1 + e2 + e3 + e4 + e5
                    dm[10, tile, c] = e0 - e1 + e2 - e3 + e4 - e5
                    dm[11, tile, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    dm[12, tile, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    dm[13, tile, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    dm[14, tile, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    dm[15, tile, c] = e5
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    e5 = ub[2, 5, c]
                    dm[16, tile, c] = e0
                    dm[17, tile, c] = e0 + e1 + e2 + e3 + e4 + e5
                    dm[18, tile, c] = e0 - e1 + e2 - e3 + e4 - e5
                    dm[19, tile, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    dm[20, tile, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    dm[21, tile, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    dm[22, tile, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    dm[23, tile, c] = e5
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    e5 = ub[3, 5, c]
                    dm[24, tile, c] = e0
                    dm[25, tile, c] = e0 + e1 + e2 + e3 + e4 + e5
                    dm[26, tile, c] = e0 - e1 + e2 - e3 + e4 - e5
                    dm[27, tile, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    dm[28, tile, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    dm[29, tile, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    dm[30, tile, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    dm[31, tile, c] = e5
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    e5 = ub[4, 5, c]
                    dm[32, tile, c] = e0
                    dm[33, tile, c] = e0 + e1 + e2 + e3 + e4 + e5
                    dm[34, tile, c] = e0 - e1 + e2 - e3 + e4 - e5
                    dm[35, tile, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    dm[36, tile, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    dm[37, tile, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    dm[38, tile, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    dm[39, tile, c] = e5
                for c in range(ch):
                    e0 = ub[5, 0, c]
                    e1 = ub[5, 1, c]
                    e2 = ub[5, 2, c]
                    e3 = ub[5, 3, c]
                    e4 = ub[5, 4, c]
                    e5 = ub[5, 5, c]
                    dm[40, tile, c] = e0
                    dm[41, tile, c] = e0 + e1 + e2 + e3 + e4 + e5
                    dm[42, tile, c] = e0 - e1 + e2 - e3 + e4 - e5
                    dm[43, tile, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    dm[44, tile, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    dm[45, tile, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    dm[46, tile, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    dm[47, tile, c] = e5
                for c in range(ch):
                    e0 = ub[6, 0, c]
                    e1 = ub[6, 1, c]
                    e2 = ub[6, 2, c]
                    e3 = ub[6, 3, c]
                    e4 = ub[6, 4, c]
                    e5 = ub[6, 5, c]
                    dm[48, tile, c] = e0
                    dm[49, tile, c] = e0 + e1 + e2 + e3 + e4 + e5
                    dm[50, tile, c] = e0 - e1 + e2 - e3 + e4 - e5
                    dm[51, tile, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    dm[52, tile, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    dm[53, tile, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    dm[54, tile, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    dm[55, tile, c] = e5
                for c in range(ch):
                    e0 = ub[7, 0, c]
                    e1 = ub[7, 1, c]
                    e2 = ub[7, 2, c]
                    e3 = ub[7, 3, c]
                    e4 = ub[7, 4, c]
                    e5 = ub[7, 5, c]
                    dm[56, tile, c] = e0
                    dm[57, tile, c] = e0 + e1 + e2 + e3 + e4 + e5
                    dm[58, tile, c] = e0 - e1 + e2 - e3 + e4 - e5
                    dm[59, tile, c] = e0 + k7 * e1 + k9 * e2 + k13 * e3 + k14 * e4 + k15 * e5
                    dm[60, tile, c] = e0 - k7 * e1 + k9 * e2 - k13 * e3 + k14 * e4 - k15 * e5
                    dm[61, tile, c] = e0 + k5 * e1 + k4 * e2 + k3 * e3 + k2 * e4 + k1 * e5
                    dm[62, tile, c] = e0 - k5 * e1 + k4 * e2 - k3 * e3 + k2 * e4 - k1 * e5
                    dm[63, tile, c] = e5


def input_grad_transform_6(dv, coef, th, tw, dx):
    # dx[n, 6 ty + k, 6 tx + l, c] += sum_(i, j) B^T[i, k] B^T[j, l] dv[i * 8 + j, tile, c],
    # summed over the overlapping tiles (dx is zeroed first)
    k4 = coef[4]
    k5 = coef[5]
    k6 = coef[6]
    k7 = coef[7]
    k8 = coef[8]
    k9 = coef[9]
    k10 = coef[10]
    k11 = coef[11]
    k12 = coef[12]
    nc, ch = dx.shape[0], dx.shape[3]
    ub = np.empty((8, 8, ch), dtype=dv.dtype)
    dd = np.empty((8, 8, ch), dtype=dv.dtype)
    dx[...] = 0
    for n in range(nc):
        for ty in range(th):
            for tx in range(tw):
                tile = (n * th + ty) * tw + tx
                y0 = ty * 6
                x0 = tx * 6
                for c in range(ch):
                    e0 = dv[0, tile, c]
                    e1 = dv[8, tile, c]
                    e2 = dv[16, tile, c]
                    e3 = dv[24, tile, c]
                    e4 = dv[32, tile, c]
                    e5 = dv[40, tile, c]
                    e6 = dv[48, tile, c]
                    e7 = dv[56, tile, c]
                    ub[0, 0, c] = -e0
                    ub[1, 0, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    ub[2, 0, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    ub[3, 0, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    ub[4, 0, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    ub[5, 0, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    ub[6, 0, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[7, 0, c] = e7
                for c in range(ch):
                    e0 = dv[1, tile, c]
                    e1 = dv[9, tile, c]
                    e2 = dv[17, tile, c]
                    e3 = dv[25, tile, c]
                    e4 = dv[33, tile, c]
                    e5 = dv[41, tile, c]
                    e6 = dv[49, tile, c]
                    e7 = dv[57, tile, c]
                    ub[0, 1, c] = -e0
                    ub[1, 1, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    ub[2, 1, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    ub[3, 1, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    ub[4, 1, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    ub[5, 1, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    ub[6, 1, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[7, 1, c] = e7
                for c in range(ch):
                    e0 = dv[2, tile, c]
                    e1 = dv[10, tile, c]
                    e2 = dv[18, tile, c]
                    e3 = dv[26, tile, c]
                    e4 = dv[34, tile, c]
                    e5 = dv[42, tile, c]
                    e6 = dv[50, tile, c]
                    e7 = dv[58, tile, c]
                    ub[0, 2, c] = -e0
                    ub[1, 2, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    ub[2, 2, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    ub[3, 2, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    ub[4, 2, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    ub[5, 2, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    ub[6, 2, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[7, 2, c] = e7
                for c in range(ch):
                    e0 = dv[3, tile, c]
                    e1 = dv[11, tile, c]
                    e2 = dv[19, tile, c]
                    e3 = dv[27, tile, c]
                    e4 = dv[35, tile, c]
                    e5 = dv[43, tile, c]
                    e6 = dv[51, tile, c]
                    e7 = dv[59, tile, c]
                    ub[0, 3, c] = -e0
                    ub[1, 3, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    ub[2, 3, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    ub[3, 3, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    ub[4, 3, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    ub[5, 3, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    ub[6, 3, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[7, 3, c] = e7
                for c in range(ch):
                    e0 = dv[4, tile, c]
                    e1 = dv[12, tile, c]
                    e2 = dv[20, tile, c]
                    e3 = dv[28, tile, c]
                    e4 = dv[36, tile, c]
                    e5 = dv[44, tile, c]
                    e6 = dv[52, tile, c]
                    e7 = dv[60, tile, c]
                    ub[0, 4, c] = -e0
                    ub[1, 4, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    ub[2, 4, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    ub[3, 4, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    ub[4, 4, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    ub[5, 4, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    ub[6, 4, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[7, 4, c] = e7
                for c in range(ch):
                    e0 = dv[5, tile, c]
                    e1 = dv[13, tile, c]
                    e2 = dv[21, tile, c]
                    e3 = dv[29, tile, c]
                    e4 = dv[37, tile, c]
                    e5 = dv[45, tile, c]
                    e6 = dv[53, tile, c]
                    e7 = dv[61, tile, c]
                    ub[0, 5, c] = -e0
                    ub[1, 5, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    ub[2, 5, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    ub[3, 5, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    ub[4, 5, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    ub[5, 5, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    ub[6, 5, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[7, 5, c] = e7
                for c in range(ch):
                    e0 = dv[6, tile, c]
                    e1 = dv[14, tile, c]
                    e2 = dv[22, tile, c]
                    e3 = dv[30, tile, c]
                    e4 = dv[38, tile, c]
                    e5 = dv[46, tile, c]
                    e6 = dv[54, tile, c]
                    e7 = dv[62, tile, c]
                    ub[0, 6, c] = -e0
                    ub[1, 6, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    ub[2, 6, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    ub[3, 6, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    ub[4, 6, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    ub[5, 6, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    ub[6, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[7, 6, c] = e7
                for c in range(ch):
                    e0 = dv[7, tile, c]
                    e1 = dv[15, tile, c]
                    e2 = dv[23, tile, c]
                    e3 = dv[31, tile, c]
                    e4 = dv[39, tile, c]
                    e5 = dv[47, tile, c]
                    e6 = dv[55, tile, c]
                    e7 = dv[63, tile, c]
                    ub[0, 7, c] = -e0
                    ub[1, 7, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    ub[2, 7, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    ub[3, 7, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    ub[4, 7, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    ub[5, 7, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    ub[6, 7, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    ub[7, 7, c] = e7
                for c in range(ch):
                    e0 = ub[0, 0, c]
                    e1 = ub[0, 1, c]
                    e2 = ub[0, 2, c]
                    e3 = ub[0, 3, c]
                    e4 = ub[0, 4, c]
                    e5 = ub[0, 5, c]
                    e6 = ub[0, 6, c]
                    e7 = ub[0, 7, c]
                    dd[0, 0, c] = -e0
                    dd[0, 1, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    dd[0, 2, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    dd[0, 3, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    dd[0, 4, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    dd[0, 5, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    dd[0, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    dd[0, 7, c] = e7
                for c in range(ch):
                    e0 = ub[1, 0, c]
                    e1 = ub[1, 1, c]
                    e2 = ub[1, 2, c]
                    e3 = ub[1, 3, c]
                    e4 = ub[1, 4, c]
                    e5 = ub[1, 5, c]
                    e6 = ub[1, 6, c]
                    e7 = ub[1, 7, c]
                    dd[1, 0, c] = -e0
                    dd[1, 1, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    dd[1, 2, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    dd[1, 3, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    dd[1, 4, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    dd[1, 5, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    dd[1, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    dd[1, 7, c] = e7
                for c in range(ch):
                    e0 = ub[2, 0, c]
                    e1 = ub[2, 1, c]
                    e2 = ub[2, 2, c]
                    e3 = ub[2, 3, c]
                    e4 = ub[2, 4, c]
                    e5 = ub[2, 5, c]
                    e6 = ub[2, 6, c]
                    e7 = ub[2, 7, c]
                    dd[2, 0, c] = -e0
                    dd[2, 1, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    dd[2, 2, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    dd[2, 3, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    dd[2, 4, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    dd[2, 5, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    dd[2, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    dd[2, 7, c] = e7
                for c in range(ch):
                    e0 = ub[3, 0, c]
                    e1 = ub[3, 1, c]
                    e2 = ub[3, 2, c]
                    e3 = ub[3, 3, c]
                    e4 = ub[3, 4, c]
                    e5 = ub[3, 5, c]
                    e6 = ub[3, 6, c]
                    e7 = ub[3, 7, c]
                    dd[3, 0, c] = -e0
                    dd[3, 1, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    dd[3, 2, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    dd[3, 3, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    dd[3, 4, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    dd[3, 5, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    dd[3, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    dd[3, 7, c] = e7
                for c in range(ch):
                    e0 = ub[4, 0, c]
                    e1 = ub[4, 1, c]
                    e2 = ub[4, 2, c]
                    e3 = ub[4, 3, c]
                    e4 = ub[4, 4, c]
                    e5 = ub[4, 5, c]
                    e6 = ub[4, 6, c]
                    e7 = ub[4, 7, c]
                    dd[4, 0, c] = -e0
                    dd[4, 1, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    dd[4, 2, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    dd[4, 3, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    dd[4, 4, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    dd[4, 5, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    dd[4, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    dd[4, 7, c] = e7
                for c in range(ch):
                    e0 = ub[5, 0, c]
                    e1 = ub[5, 1, c]
                    e2 = ub[5, 2, c]
                    e3 = ub[5, 3, c]
                    e4 = ub[5, 4, c]
                    e5 = ub[5, 5, c]
                    e6 = ub[5, 6, c]
                    e7 = ub[5, 7, c]
                    dd[5, 0, c] = -e0
                    dd[5, 1, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    dd[5, 2, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    dd[5, 3, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    dd[5, 4, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    dd[5, 5, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    dd[5, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    dd[5, 7, c] = e7
                for c in range(ch):
                    e0 = ub[6, 0, c]
                    e1 = ub[6, 1, c]
                    e2 = ub[6, 2, c]
                    e3 = ub[6, 3, c]
                    e4 = ub[6, 4, c]
                    e5 = ub[6, 5, c]
                    e6 = ub[6, 6, c]
                    e7 = ub[6, 7, c]
                    dd[6, 0, c] = -e0
                    dd[6, 1, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    dd[6, 2, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    dd[6, 3, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    dd[6, 4, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    dd[6, 5, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    dd[6, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    dd[6, 7, c] = e7
                for c in range(ch):
                    e0 = ub[7, 0, c]
                    e1 = ub[7, 1, c]
                    e2 = ub[7, 2, c]
                    e3 = ub[7, 3, c]
                    e4 = ub[7, 4, c]
                    e5 = ub[7, 5, c]
                    e6 = ub[7, 6, c]
                    e7 = ub[7, 7, c]
                    dd[7, 0, c] = -e0
                    dd[7, 1, c] = e1 - e2 + k5 * e3 - k5 * e4 + k7 * e5 - k7 * e6 - e7
                    dd[7, 2, c] = k12 * e0 + e1 + e2 + k4 * e3 + k4 * e4 + k9 * e5 + k9 * e6
                    dd[7, 3, c] = -k10 * e1 + k10 * e2 - k8 * e3 + k8 * e4 - k8 * e5 + k8 * e6 + k12 * e7
                    dd[7, 4, c] = -k12 * e0 - k10 * e1 - k10 * e2 - k6 * e3 - k6 * e4 - k11 * e5 - k11 * e6
                    dd[7, 5, c] = e1 - e2 + k7 * e3 - k7 * e4 + k5 * e5 - k5 * e6 - k12 * e7
                    dd[7, 6, c] = e0 + e1 + e2 + e3 + e4 + e5 + e6
                    dd[7, 7, c] = e7
                for i in range(8):
                    for j in range(8):
                        for c in range(ch):
                            dx[n, y0 + i, x0 + j, c] += dd[i, j, c]
