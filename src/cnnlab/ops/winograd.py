"""Winograd F(2x2, 3x3) convolution (Lavin and Gray, 2016) for 3x3, stride-1 layers.

A 3x3 correlation producing a 2x2 output tile ``Y`` from a 4x4 input tile ``d``
is computed with 16 multiplications instead of 36::

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* is the element-wise product)

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]

Over channels, the element-wise product becomes one matrix product per
Winograd-domain position ``p`` (16 of them), batched as one ``matmul``::

    M[p] = V[p] @ U[p]     V[p]: (tiles, C_in),  U[p]: (C_in, C_out)

with ``V = B^T d B`` (input tiles) and ``U = G g G^T`` (filters). Tiles of the
padded input start every 2 pixels and overlap by 2.

The backward pass differentiates this exact identity (it is linear in ``d``
and in ``g``), so with ``dM = A dY A^T`` (the output-gradient tiles)::

    dL/dg = G^T [ sum_tiles V * dM ] G          = G^T (V^T @ dM) G   per position
    dL/dd = B [ dM @ U^T ] B^T, scattered back over the overlapping tiles.

This is the full convolution with the 180-degree rotated filter (the slides'
``dL/dX``) and the correlation of the input with ``dL/dO`` (the slides'
``dL/dF``), evaluated in the Winograd domain; the forward's ``V`` and ``U`` are
reused. Each small transform is applied along one spatial axis at a time, as
a handful of additions of strided slices (no tile copies).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.backend import array_module
from cnnlab.ops import parallel
from cnnlab.ops.padding import Pads, pad2d

# F(2x2, 3x3) matrices; every entry is 0, +-1 or +-1/2, so float32 is exact.
BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=np.float64)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]], dtype=np.float64)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=np.float64)
GG = np.kron(G, G)  # (16, 9): vec(G g G^T) = GG @ vec(g)

M_OUT, R = 2, 3  # output tile size, filter size
ALPHA = M_OUT + R - 1  # input tile size, 4


def winograd_applicable(kernel_hw: tuple[int, int], strides: tuple[int, int]) -> bool:
    """Winograd F(2x2, 3x3) applies to 3x3 kernels at stride 1 only."""
    return tuple(kernel_hw) == (R, R) and tuple(strides) == (1, 1)


def _combine(mat: np.ndarray, parts: list[Any], outs: list[Any] | None = None,
             accumulate: bool = False) -> list[Any]:
    """``res[i] = sum_j mat[i, j] * parts[j]`` for a small constant matrix.

    Zero coefficients are skipped and +-1 become additions and subtractions.
    With ``outs`` the results are written into (or, with ``accumulate``, added
    to) those arrays, which may be strided views.
    """
    xp = array_module(parts[0])
    res = []
    for i in range(mat.shape[0]):
        terms = [(float(c), parts[j]) for j, c in enumerate(mat[i]) if c != 0]
        o = None if outs is None else outs[i]
        if accumulate:
            assert o is not None
            for c, p in terms:
                if c == 1:
                    o += p
                elif c == -1:
                    o -= p
                else:
                    o += p * p.dtype.type(c)
            res.append(o)
            continue
        (c0, p0), rest = terms[0], terms[1:]
        if rest and c0 == 1 and rest[0][0] in (1, -1):
            c1, p1 = rest[0]
            o = (xp.add if c1 == 1 else xp.subtract)(p0, p1, out=o)
            rest = rest[1:]
        elif c0 == 1:
            if o is None:
                o = p0.copy()
            else:
                xp.copyto(o, p0)
        elif c0 == -1:
            o = xp.negative(p0, out=o)
        else:
            o = xp.multiply(p0, p0.dtype.type(c0), out=o)
        for c, p in rest:
            if c == 1:
                o += p
            elif c == -1:
                o -= p
            else:
                o += p * p.dtype.type(c)
        res.append(o)
    return res


@dataclass
class WinogradCache:
    """What the backward pass needs from the forward: transformed input and filters."""

    v: Any  # (16, N * th * tw, C_in)
    u: Any  # (16, C_in, C_out)
    tiles: tuple[int, int, int]  # (N, th, tw)
    padded_hw: tuple[int, int]  # padded input size, rounded up to whole tiles
    out_hw: tuple[int, int]


#: Tiles processed together: the batch is cut into chunks of about this many
#: tiles so that the Winograd-domain temporaries stay small (cache-resident,
#: and reused by the allocator instead of freshly mapped each time).
CHUNK_TILES = 512


def _chunks(lo: int, hi: int, tiles_per_image: int) -> list[tuple[int, int]]:
    step = max(1, CHUNK_TILES // tiles_per_image)
    return [(i, min(i + step, hi)) for i in range(lo, hi, step)]


def _groups(xp: Any, n: int, tiles_per_image: int) -> list[tuple[int, int]]:
    """Contiguous batch groups, one per worker thread, unless the batch is small."""
    workers = parallel.workers_for(xp)
    if n * tiles_per_image < 2 * CHUNK_TILES:
        workers = 1
    return parallel.split(n, workers)


def _tile_counts(hp: int, wp: int) -> tuple[int, int]:
    return -(-(hp - R + 1) // M_OUT), -(-(wp - R + 1) // M_OUT)


def filter_transform(kernel: Any) -> Any:
    """``U = G g G^T`` for every (C_in, C_out) pair: ``(16, C_in, C_out)``."""
    xp = array_module(kernel)
    _, _, ci, co = kernel.shape
    gg = xp.asarray(GG, dtype=kernel.dtype)
    return (gg @ kernel.reshape(R * R, ci * co)).reshape(ALPHA * ALPHA, ci, co)


def input_transform(xpad: Any, th: int, tw: int) -> Any:
    """``V = B^T d B`` for every 4x4 tile of ``xpad`` (N, Hp, Wp, C): ``(16, N*th*tw, C)``."""
    xp = array_module(xpad)
    n, _, _, c = xpad.shape
    rows = [xpad[:, a : a + M_OUT * (th - 1) + 1 : M_OUT] for a in range(ALPHA)]
    r = _combine(BT, rows)  # 4 x (N, th, Wp, C)
    v = xp.empty((ALPHA, ALPHA, n, th, tw, c), dtype=xpad.dtype)
    for alpha in range(ALPHA):
        cols = [r[alpha][:, :, b : b + M_OUT * (tw - 1) + 1 : M_OUT] for b in range(ALPHA)]
        _combine(BT, cols, outs=[v[alpha, beta] for beta in range(ALPHA)])
    return v.reshape(ALPHA * ALPHA, n * th * tw, c)


def output_transform(m: Any, tiles: tuple[int, int, int], out: Any) -> Any:
    """``Y = A^T M A`` per tile, written into ``out`` (N, 2*th, 2*tw, C_out)."""
    n, th, tw = tiles
    co = m.shape[-1]
    m = m.reshape(ALPHA, ALPHA, n, th, tw, co)
    p = [_combine(AT, [m[alpha, beta] for beta in range(ALPHA)]) for alpha in range(ALPHA)]
    for j in range(M_OUT):
        _combine(AT, [p[alpha][j] for alpha in range(ALPHA)],
                 outs=[out[:, i::M_OUT, j::M_OUT] for i in range(M_OUT)])
    return out


def grad_transform(grad_out: Any, tiles: tuple[int, int, int]) -> Any:
    """``dM = A dY A^T`` per 2x2 output-gradient tile: ``(16, N*th*tw, C_out)``.

    ``A`` (4x2) is the transpose of ``A^T``: the adjoint of :func:`output_transform`.
    """
    xp = array_module(grad_out)
    n, th, tw = tiles
    co = grad_out.shape[-1]
    ho, wo = grad_out.shape[1:3]
    if (ho, wo) != (M_OUT * th, M_OUT * tw):
        grad_out = xp.pad(grad_out, ((0, 0), (0, M_OUT * th - ho), (0, M_OUT * tw - wo), (0, 0)))
    rows = [grad_out[:, i::M_OUT] for i in range(M_OUT)]
    q = _combine(AT.T, rows)  # 4 x (N, th, 2*tw, Co)
    dm = xp.empty((ALPHA, ALPHA, n, th, tw, co), dtype=grad_out.dtype)
    for alpha in range(ALPHA):
        _combine(AT.T, [q[alpha][:, :, j::M_OUT] for j in range(M_OUT)],
                 outs=[dm[alpha, beta] for beta in range(ALPHA)])
    return dm.reshape(ALPHA * ALPHA, n * th * tw, co)


def input_grad_transform(dv: Any, tiles: tuple[int, int, int], padded_hw: tuple[int, int]) -> Any:
    """``dd = B dV B^T`` per tile, summed over overlapping tiles: ``(N, Hp, Wp, C_in)``.

    The adjoint of :func:`input_transform`.
    """
    xp = array_module(dv)
    n, th, tw = tiles
    hp, wp = padded_hw
    ci = dv.shape[-1]
    dv = dv.reshape(ALPHA, ALPHA, n, th, tw, ci)
    span_h, span_w = M_OUT * (th - 1) + 1, M_OUT * (tw - 1) + 1
    z = xp.zeros((ALPHA, n, th, wp, ci), dtype=dv.dtype)
    for alpha in range(ALPHA):
        e = _combine(BT.T, [dv[alpha, beta] for beta in range(ALPHA)])
        for b in range(ALPHA):
            z[alpha, :, :, b : b + span_w : M_OUT] += e[b]
    dx = xp.zeros((n, hp, wp, ci), dtype=dv.dtype)
    f = _combine(BT.T, [z[alpha] for alpha in range(ALPHA)])
    for a in range(ALPHA):
        dx[:, a : a + span_h : M_OUT] += f[a]
    return dx


def conv3x3_forward(
    x: Any, kernel: Any, bias: Any | None, pads: Pads, keep: bool = True
) -> tuple[Any, WinogradCache | None]:
    """Stride-1 3x3 convolution by Winograd F(2x2, 3x3); returns ``(output, cache)``.

    ``O[n, i, j, co] = b[co] + sum_{a, b, ci} Xp[n, i + a, j + b, ci] * F[a, b, ci, co]``.
    With ``keep=False`` (inference) no cache is kept and ``None`` is returned for it.
    The batch is processed in chunks of images (see ``CHUNK_TILES``); each
    image's result does not depend on the chunking.
    """
    xp = array_module(x, kernel)
    n = x.shape[0]
    _, _, ci, co = kernel.shape
    xpad = pad2d(x, pads)
    hp, wp = xpad.shape[1:3]
    ho, wo = hp - R + 1, wp - R + 1
    th, tw = _tile_counts(hp, wp)
    hp2, wp2 = M_OUT * th + R - 1, M_OUT * tw + R - 1
    if (hp2, wp2) != (hp, wp):  # odd output size: one more row/column of zeros
        xpad = xp.pad(xpad, ((0, 0), (0, hp2 - hp), (0, wp2 - wp), (0, 0)))
    u = filter_transform(kernel)
    t = th * tw
    v_all = xp.empty((ALPHA * ALPHA, n * t, ci), dtype=xpad.dtype) if keep else None
    out = xp.empty((n, M_OUT * th, M_OUT * tw, co), dtype=xpad.dtype)

    def group(lo: int, hi: int) -> None:
        for n0, n1 in _chunks(lo, hi, t):
            v = input_transform(xpad[n0:n1], th, tw)
            if v_all is not None:
                v_all[:, n0 * t : n1 * t] = v
            m = xp.matmul(v, u)  # (16, tiles, Co): one GEMM per Winograd position
            output_transform(m, (n1 - n0, th, tw), out[n0:n1])

    parallel.run_groups(group, _groups(xp, n, t))
    if (M_OUT * th, M_OUT * tw) != (ho, wo):
        out = xp.ascontiguousarray(out[:, :ho, :wo])
    if bias is not None:
        out += bias
    if not keep:
        return out, None
    return out, WinogradCache(v_all, u, (n, th, tw), (hp2, wp2), (ho, wo))


def conv3x3_backward(
    grad_out: Any,
    cache: WinogradCache,
    input_shape: tuple[int, ...],
    pads: Pads,
    need_input_grad: bool = True,
) -> tuple[Any | None, Any, Any]:
    """Backward of :func:`conv3x3_forward`: ``(dX or None, dF, db)``.

    Chunked over the batch like the forward; the filter gradient sums the
    chunks' contributions in a fixed order, so results are reproducible.
    """
    xp = array_module(grad_out)
    ci, co = cache.u.shape[1:]
    n, th, tw = cache.tiles
    t = th * tw
    ho, wo = cache.out_hw
    if (ho, wo) != (M_OUT * th, M_OUT * tw):
        grad_out = xp.pad(grad_out, ((0, 0), (0, M_OUT * th - ho), (0, M_OUT * tw - wo), (0, 0)))
    ut = cache.u.transpose(0, 2, 1)
    hp, wp = cache.padded_hw
    dxp = xp.empty((n, hp, wp, ci), dtype=grad_out.dtype) if need_input_grad else None

    def group(lo: int, hi: int) -> Any:
        du = xp.zeros((ALPHA * ALPHA, ci, co), dtype=grad_out.dtype)
        du_part = xp.empty_like(du)
        for n0, n1 in _chunks(lo, hi, t):
            dm = grad_transform(grad_out[n0:n1], (n1 - n0, th, tw))
            v = cache.v[:, n0 * t : n1 * t]
            # sum over tiles of V^T dM, one 2-D product per position: a stacked
            # matmul with a transposed operand does not reach BLAS in NumPy
            for p in range(ALPHA * ALPHA):
                xp.matmul(v[p].T, dm[p], out=du_part[p])
            du += du_part
            if dxp is not None:
                dv = xp.matmul(dm, ut)  # (16, tiles, Ci)
                dxp[n0:n1] = input_grad_transform(dv, (n1 - n0, th, tw), (hp, wp))
        return du

    parts = parallel.run_groups(group, _groups(xp, n, t))
    du = parts[0]
    for part in parts[1:]:  # fixed order: reproducible
        du += part
    gg = xp.asarray(GG, dtype=du.dtype)
    dkernel = (gg.T @ du.reshape(ALPHA * ALPHA, ci * co)).reshape(R, R, ci, co)
    dbias = grad_out.sum(axis=(0, 1, 2))
    if dxp is None:
        return None, dkernel, dbias
    (top, _), (left, _) = pads
    h, w = input_shape[1], input_shape[2]
    return dxp[:, top : top + h, left : left + w], dkernel, dbias
