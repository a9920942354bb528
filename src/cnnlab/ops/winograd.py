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

import math
import threading
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


def _combine(mat: np.ndarray, parts: list[Any], outs: list[Any] | None = None) -> list[Any]:
    """``res[i] = sum_j mat[i, j] * parts[j]`` for a small constant matrix.

    Zero coefficients are skipped and +-1 become additions and subtractions.
    With ``outs`` the results are written into those arrays, which may be
    strided views.
    """
    xp = array_module(parts[0])
    res = []
    for i in range(mat.shape[0]):
        terms = [(float(c), parts[j]) for j, c in enumerate(mat[i]) if c != 0]
        o = None if outs is None else outs[i]
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

    v: Any  # (16, N * th * tw, C_in); within each chunk, tiles in (th, tw, n) order
    u: Any  # (16, C_in, C_out)
    tiles: tuple[int, int, int]  # (N, th, tw)
    padded_hw: tuple[int, int]  # padded input size, rounded up to whole tiles
    out_hw: tuple[int, int]
    chunks: tuple[tuple[tuple[int, int], ...], ...] = ()  # per group, the forward's chunks


#: Tiles processed together: each worker's images are cut into near-equal
#: chunks of at most about this many tiles, which bounds the Winograd-domain
#: temporaries (kept per thread and reused, see ``_scratch``). Larger chunks
#: mean fewer, longer element-wise operations and larger GEMMs.
CHUNK_TILES = 1024

#: Fewest tiles for which a layer's batch is split across worker threads.
PARALLEL_MIN_TILES = 1024


def _chunks(lo: int, hi: int, tiles_per_image: int) -> list[tuple[int, int]]:
    count = max(1, -(-(hi - lo) * tiles_per_image // CHUNK_TILES))
    return [(lo + a, lo + b) for a, b in parallel.split(hi - lo, count)]


def _groups(xp: Any, n: int, tiles_per_image: int) -> list[tuple[int, int]]:
    """Contiguous batch groups, one per worker thread, unless the batch is small."""
    workers = parallel.workers_for(xp)
    if n * tiles_per_image < min(PARALLEL_MIN_TILES, 2 * CHUNK_TILES):
        workers = 1
    return parallel.split(n, workers)


_scratch_local = threading.local()


def _scratch(xp: Any, name: str, shape: tuple[int, ...], dtype: Any) -> Any:
    """A reusable per-thread work array (uninitialised) for an intermediate result.

    Reusing the same memory chunk after chunk and step after step saves mapping
    and faulting in fresh pages for every temporary. Never handed to callers:
    the next use of ``name`` in the same thread overwrites it. The names are
    shared by intermediates that are never alive at the same time.
    """
    if xp.__name__ != "numpy":
        return xp.empty(shape, dtype=dtype)
    bufs = getattr(_scratch_local, "bufs", None)
    if bufs is None:
        bufs = _scratch_local.bufs = {}
    dtype = np.dtype(dtype)
    size = math.prod(shape)
    buf = bufs.get((name, dtype))
    if buf is None or buf.size < size:
        buf = bufs[(name, dtype)] = np.empty(size, dtype=dtype)
    return buf[:size].reshape(shape)


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


# The fast path runs the transforms on chunks transposed to (H, W, N, C):
# there every strided tile view keeps a long contiguous inner run (images x
# channels), which NumPy's element-wise loops process several times faster
# than the channel-only runs of (N, H, W, C) views. The tiles of a chunk are
# ordered (th, tw, n); each chunk's GEMMs do not depend on the tile order.
# Each row of a transform is finished (its column combinations included)
# before the next starts, so its intermediate stays in cache.
# Work arrays come from ``_scratch``: "co"/"ci" hold Winograd-domain arrays,
# "a", "b", "c" the transforms' intermediates.


def _input_transform_hwnc(xh: Any, th: int, tw: int, out: Any) -> Any:
    """:func:`input_transform` of ``xh`` (Hp, Wp, n, C) into ``out`` (16, th*tw*n, C)."""
    xp = array_module(xh)
    _, wp, n, c = xh.shape
    rows = [xh[a : a + M_OUT * (th - 1) + 1 : M_OUT] for a in range(ALPHA)]
    r = _scratch(xp, "a", (th, wp, n, c), xh.dtype)
    v = out.reshape(ALPHA, ALPHA, th, tw, n, c)  # splits axes: always a view
    for alpha in range(ALPHA):
        _combine(BT[alpha : alpha + 1], rows, outs=[r])  # (th, Wp, n, C)
        cols = [r[:, b : b + M_OUT * (tw - 1) + 1 : M_OUT] for b in range(ALPHA)]
        _combine(BT, cols, outs=[v[alpha, beta] for beta in range(ALPHA)])
    return out


def _output_transform_hwnc(m: Any, th: int, tw: int, n: int) -> Any:
    """:func:`output_transform` of ``m`` (16, th*tw*n, Co): ``(2*th, 2*tw, n, Co)`` scratch."""
    xp = array_module(m)
    co = m.shape[-1]
    m = m.reshape(ALPHA, ALPHA, th, tw, n, co)
    pbuf = _scratch(xp, "a", (ALPHA, M_OUT, th, tw, n, co), m.dtype)
    p = [_combine(AT, [m[alpha, beta] for beta in range(ALPHA)], outs=list(pbuf[alpha]))
         for alpha in range(ALPHA)]
    oh = _scratch(xp, "b", (M_OUT * th, M_OUT * tw, n, co), m.dtype)
    for j in range(M_OUT):
        _combine(AT, [p[alpha][j] for alpha in range(ALPHA)],
                 outs=[oh[i::M_OUT, j::M_OUT] for i in range(M_OUT)])
    return oh


def _grad_transform_hwnc(gh: Any, th: int, tw: int, out: Any) -> Any:
    """:func:`grad_transform` of ``gh`` (2*th, 2*tw, n, Co) into ``out`` (16, th*tw*n, Co)."""
    xp = array_module(gh)
    n, co = gh.shape[2:]
    rows = [gh[i::M_OUT] for i in range(M_OUT)]
    q = _scratch(xp, "a", (th, M_OUT * tw, n, co), gh.dtype)
    dm = out.reshape(ALPHA, ALPHA, th, tw, n, co)
    for alpha in range(ALPHA):
        _combine(AT.T[alpha : alpha + 1], rows, outs=[q])  # (th, 2*tw, n, Co)
        _combine(AT.T, [q[:, j::M_OUT] for j in range(M_OUT)],
                 outs=[dm[alpha, beta] for beta in range(ALPHA)])
    return out


def _input_grad_transform_hwnc(dv: Any, th: int, tw: int, n: int,
                               padded_hw: tuple[int, int]) -> Any:
    """:func:`input_grad_transform` of ``dv`` (16, th*tw*n, Ci): ``(Hp, Wp, n, Ci)`` scratch."""
    xp = array_module(dv)
    hp, wp = padded_hw
    ci = dv.shape[-1]
    dv = dv.reshape(ALPHA, ALPHA, th, tw, n, ci)
    span_h, span_w = M_OUT * (th - 1) + 1, M_OUT * (tw - 1) + 1
    z = _scratch(xp, "a", (ALPHA, th, wp, n, ci), dv.dtype)
    z.fill(0)
    ebuf = _scratch(xp, "b", (ALPHA, th, tw, n, ci), dv.dtype)
    for alpha in range(ALPHA):
        e = _combine(BT.T, [dv[alpha, beta] for beta in range(ALPHA)], outs=list(ebuf))
        for b in range(ALPHA):
            z[alpha, :, b : b + span_w : M_OUT] += e[b]
    dxh = _scratch(xp, "c", (hp, wp, n, ci), dv.dtype)
    dxh.fill(0)
    f = _scratch(xp, "b", (th, wp, n, ci), dv.dtype)
    for a in range(ALPHA):
        _combine(BT.T[a : a + 1], list(z), outs=[f])
        dxh[a : a + span_h : M_OUT] += f
    return dxh


def conv3x3_forward(
    x: Any, kernel: Any, bias: Any | None, pads: Pads, keep: bool = True, relu: bool = False
) -> tuple[Any, WinogradCache | None]:
    """Stride-1 3x3 convolution by Winograd F(2x2, 3x3); returns ``(output, cache)``.

    ``O[n, i, j, co] = b[co] + sum_{a, b, ci} Xp[n, i + a, j + b, ci] * F[a, b, ci, co]``,
    followed by ``max(O, 0)`` with ``relu`` (applied chunk by chunk, in the workers).
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
    groups = _groups(xp, n, t)
    plan = tuple(tuple(_chunks(lo, hi, t)) for lo, hi in groups)

    def group(lo: int, hi: int) -> None:
        for n0, n1 in _chunks(lo, hi, t):
            nc, nt = n1 - n0, (n1 - n0) * t
            if v_all is not None:  # transformed tiles land where the backward wants them
                v = v_all[:, n0 * t : n1 * t]
            else:
                v = _scratch(xp, "ci", (ALPHA * ALPHA, nt, ci), xpad.dtype)
            xh = _scratch(xp, "c", (hp2, wp2, nc, ci), xpad.dtype)
            xp.copyto(xh, xpad[n0:n1].transpose(1, 2, 0, 3))
            _input_transform_hwnc(xh, th, tw, v)
            m = _scratch(xp, "co", (ALPHA * ALPHA, nt, co), xpad.dtype)
            xp.matmul(v, u, out=m)  # (16, tiles, Co): one GEMM per Winograd position
            oh = _output_transform_hwnc(m, th, tw, nc).transpose(2, 0, 1, 3)
            if bias is not None:
                xp.add(oh, bias, out=out[n0:n1])
            else:
                xp.copyto(out[n0:n1], oh)
            if relu:
                xp.maximum(out[n0:n1], 0, out=out[n0:n1])

    parallel.run_groups(group, groups)
    if (M_OUT * th, M_OUT * tw) != (ho, wo):
        out = xp.ascontiguousarray(out[:, :ho, :wo])
    if not keep:
        return out, None
    return out, WinogradCache(v_all, u, (n, th, tw), (hp2, wp2), (ho, wo), plan)


def conv3x3_backward(
    grad_out: Any,
    cache: WinogradCache,
    input_shape: tuple[int, ...],
    pads: Pads,
    need_input_grad: bool = True,
    relu_output: Any | None = None,
) -> tuple[Any | None, Any, Any]:
    """Backward of :func:`conv3x3_forward`: ``(dX or None, dF, db)``.

    With ``relu_output`` (the forward's output after ReLU), ``grad_out`` is the
    gradient with respect to that output and is first multiplied by
    ``relu_output > 0``, chunk by chunk in the workers.

    Chunked over the batch exactly like the forward (whose tile order the
    cached ``V`` has); the filter gradient sums the chunks' contributions in a
    fixed order, so results are reproducible.
    """
    xp = array_module(grad_out)
    ci, co = cache.u.shape[1:]
    n, th, tw = cache.tiles
    t = th * tw
    ho, wo = cache.out_hw
    if (ho, wo) != (M_OUT * th, M_OUT * tw):
        if relu_output is not None:
            grad_out = grad_out * (relu_output > 0)
            relu_output = None
        grad_out = xp.pad(grad_out, ((0, 0), (0, M_OUT * th - ho), (0, M_OUT * tw - wo), (0, 0)))
    ut = xp.ascontiguousarray(cache.u.transpose(0, 2, 1))
    hp, wp = cache.padded_hw
    dxp = xp.empty((n, hp, wp, ci), dtype=grad_out.dtype) if need_input_grad else None
    plan = cache.chunks or tuple(tuple(_chunks(lo, hi, t)) for lo, hi in _groups(xp, n, t))
    chunks_of = {(c[0][0], c[-1][1]): c for c in plan}

    def group(lo: int, hi: int) -> Any:
        du = xp.empty((ALPHA * ALPHA, ci, co), dtype=grad_out.dtype)
        db = xp.zeros((co,), dtype=grad_out.dtype)
        du_part = _scratch(xp, "du", (ALPHA * ALPHA, ci, co), grad_out.dtype)
        for i, (n0, n1) in enumerate(chunks_of[(lo, hi)]):
            nc, nt = n1 - n0, (n1 - n0) * t
            gh = _scratch(xp, "c", (M_OUT * th, M_OUT * tw, nc, co), grad_out.dtype)
            if relu_output is None:
                xp.copyto(gh, grad_out[n0:n1].transpose(1, 2, 0, 3))
            else:
                xp.multiply(grad_out[n0:n1].transpose(1, 2, 0, 3),
                            relu_output[n0:n1].transpose(1, 2, 0, 3) > 0, out=gh)
            db += gh.sum(axis=(0, 1, 2))
            dm = _scratch(xp, "co", (ALPHA * ALPHA, nt, co), grad_out.dtype)
            _grad_transform_hwnc(gh, th, tw, dm)
            v = cache.v[:, n0 * t : n1 * t]
            # sum over tiles of V^T dM, one 2-D product per position: a stacked
            # matmul with a transposed operand does not reach BLAS in NumPy
            dst = du if i == 0 else du_part
            for p in range(ALPHA * ALPHA):
                xp.matmul(v[p].T, dm[p], out=dst[p])
            if i > 0:
                du += du_part
            if dxp is not None:
                dv = _scratch(xp, "ci", (ALPHA * ALPHA, nt, ci), grad_out.dtype)
                xp.matmul(dm, ut, out=dv)  # (16, tiles, Ci)
                dxh = _input_grad_transform_hwnc(dv, th, tw, nc, (hp, wp))
                xp.copyto(dxp[n0:n1], dxh.transpose(2, 0, 1, 3))
        return du, db

    parts = parallel.run_groups(group, list(chunks_of))
    du, dbias = parts[0]
    for du_part, db_part in parts[1:]:  # fixed order: reproducible
        du += du_part
        dbias += db_part
    gg = xp.asarray(GG, dtype=du.dtype)
    dkernel = (gg.T @ du.reshape(ALPHA * ALPHA, ci * co)).reshape(R, R, ci, co)
    if dxp is None:
        return None, dkernel, dbias
    (top, _), (left, _) = pads
    h, w = input_shape[1], input_shape[2]
    return dxp[:, top : top + h, left : left + w], dkernel, dbias
