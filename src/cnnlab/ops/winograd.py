"""Winograd F(m x m, 3 x 3) convolution (Lavin and Gray, 2016) for 3x3, stride-1 layers.

A 3x3 correlation producing an ``m x m`` output tile ``Y`` from an
``a x a`` input tile ``d`` (``a = m + 2``) is computed with ``a^2``
multiplications instead of ``9 m^2``::

    Y = A^T [ (G g G^T) * (B^T d B) ] A          (* is the element-wise product)

with ``A^T`` (m x a), ``G`` (a x 3) and ``B^T`` (a x a) the Toom-Cook matrices
of :func:`transform_matrices`. For m = 2 they are the paper's::

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]   (up to row signs)

Over channels, the element-wise product becomes one matrix product per
Winograd-domain position ``p`` (``a^2`` of them), batched as one ``matmul``::

    M[p] = V[p] @ U[p]     V[p]: (tiles, C_in),  U[p]: (C_in, C_out)

with ``V = B^T d B`` (input tiles) and ``U = G g G^T`` (filters). Tiles of the
padded input start every ``m`` pixels and overlap by 2.

Larger tiles need fewer multiplications per output pixel (``a^2 / m^2``: 4 for
m = 2, 1.96 for m = 5) but round the output up to whole tiles and add
floating-point error (in float32, about 1e-6 of the output's scale for m = 2
and 1e-5 for m = 6); :func:`choose_tile` picks m in 2..6 from the layer's
output size (m = 5 for the seed model's 10x10 maps, m = 4 for its 12x12 ones).

The backward pass differentiates this exact identity (it is linear in ``d``
and in ``g``), so with ``dM = A dY A^T`` (the output-gradient tiles)::

    dL/dg = G^T [ sum_tiles V * dM ] G          = G^T (V^T @ dM) G   per position
    dL/dd = B [ dM @ U^T ] B^T, added back over the overlapping tiles.

This is the full convolution with the 180-degree rotated filter (the slides'
``dL/dX``) and the correlation of the input with ``dL/dO`` (the slides'
``dL/dF``), evaluated in the Winograd domain; the forward's ``V`` and ``U``
are reused.

Every transform has the form ``out[i, j] = sum_{a, b} L[i, a] L[j, b] d[a, b]``
over an array of tiles stored position-major, ``(p, p, tiles x channels)``,
and runs as two small matrix products (:func:`sandwich`): one along each
tile axis. Tiles are gathered once from a strided window view.

On NumPy arrays, with Numba (a dependency) importable and ``CNNLAB_JIT`` not
``0``, the transforms run compiled instead (:mod:`cnnlab.ops.winograd_jit`,
:func:`forward_tiles_jit`, :func:`backward_tiles_jit`): each fused with the
memory pass around it (gathering, untiling with bias and ReLU, the ReLU mask,
the scatter-add), the GEMMs between them unchanged. That path is about
twice as fast at inference; the NumPy one is the reference the tests hold it to,
and what CuPy runs.

The math is written for one chunk of images (:func:`forward_tiles`,
:func:`backward_tiles`); how a batch is cut into chunks and worker threads,
and where the temporaries live, is :mod:`cnnlab.ops.schedule`'s business.
:func:`conv3x3_forward` and :func:`conv3x3_backward` join the two.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from typing import Any

import numpy as np

from cnnlab.backend import array_module, sliding_window_view
from cnnlab.ops import parallel, schedule, winograd_jit
from cnnlab.ops.padding import Pads, pad2d

R = 3  # filter size
#: Interpolation points of the Toom-Cook construction, in the order used
#: (m + 1 finite points for F(m, 3), plus the point at infinity). Small
#: integers and their reciprocals keep the matrices' entries, and the
#: float32 error, small.
POINTS = (Fraction(0), Fraction(1), Fraction(-1), Fraction(2), Fraction(-2),
          Fraction(1, 2), Fraction(-1, 2))
#: Output tile sizes :func:`choose_tile` considers.
TILE_SIZES = (2, 3, 4, 5, 6)


def winograd_applicable(kernel_hw: tuple[int, int], strides: tuple[int, int]) -> bool:
    """Winograd F(m x m, 3 x 3) applies to 3x3 kernels at stride 1 only."""
    return tuple(kernel_hw) == (R, R) and tuple(strides) == (1, 1)


def _poly_coefficients(roots: list[Fraction]) -> list[Fraction]:
    """Coefficients, lowest power first, of ``prod (x - r)``."""
    coef = [Fraction(1)]
    for r in roots:
        nxt = [Fraction(0)] * (len(coef) + 1)
        for k, c in enumerate(coef):
            nxt[k + 1] += c
            nxt[k] -= r * c
        coef = nxt
    return coef


def exact_transform_matrices(m: int) -> tuple[list[list[Fraction]], ...]:
    """Toom-Cook ``(A^T, G, B^T)`` for F(m, 3) in exact rational arithmetic.

    With finite points ``p_0 .. p_{a-2}`` and the point at infinity:

    * ``A^T[i, j] = p_j^i`` (evaluate the product polynomial), last column ``e_{m-1}``;
    * ``G[j, k] = p_j^k / f_j`` with ``f_j = prod_{l != j} (p_j - p_l)`` (evaluate
      the filter polynomial, with the Lagrange denominators), last row ``e_2``;
    * ``B^T[j]`` = coefficients of ``prod_{l != j} (x - p_l)``, last row those of
      ``prod_l (x - p_l)`` (the Lagrange numerators, and the term of the
      point at infinity).

    Then ``A^T [(G g) * (B^T d)] = correlate(d, g)`` for every ``d`` (length
    ``a``) and ``g`` (length 3); the tests check it exactly.
    """
    if m not in TILE_SIZES:
        raise ValueError(f"Winograd output tile size must be one of {TILE_SIZES}, got {m}")
    a = m + R - 1
    pts = list(POINTS[: a - 1])
    at = [[p**i for p in pts] + [Fraction(int(i == m - 1))] for i in range(m)]
    g = []
    for j, p in enumerate(pts):
        f = math.prod((p - q for q in pts[:j] + pts[j + 1:]), start=Fraction(1))
        g.append([p**k / f for k in range(R)])
    g.append([Fraction(int(k == R - 1)) for k in range(R)])
    bt = [_poly_coefficients(pts[:j] + pts[j + 1:]) + [Fraction(0)] for j in range(a - 1)]
    bt.append(_poly_coefficients(pts))
    return at, g, bt


#: Index of the interpolation point 1 in :data:`POINTS`: ``A^T``'s column
#: there is all ones (``1^i``), so position ``(ONES, ONES)`` of the Winograd
#: domain maps to a constant over the output tile (used for the bias).
ONES = POINTS.index(Fraction(1))


@cache
def transform_matrices(m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A^T, G, B^T)`` for F(m, 3) as float64 arrays (read-only)."""
    out = []
    for mat in exact_transform_matrices(m):
        arr = np.array([[float(v) for v in row] for row in mat])
        arr.flags.writeable = False
        out.append(arr)
    return out[0], out[1], out[2]


#: :func:`choose_tile` takes the smallest m whose product count is within this
#: factor of the fewest: bigger tiles also cost bigger transforms and more
#: rounding, so a small saving in products is not worth them
#: (``benchmarks/tune_thresholds.py`` times every m on the seed model's layers:
#: m = 4 for 12x12 maps and m = 5 for 10x10 ones are the fastest).
TILE_SLACK = 1.3


def choose_tile(out_hw: tuple[int, int]) -> int:
    """The output tile size m for a layer with output size ``out_hw``.

    Counts the Winograd-domain products per channel pair,
    ``(m + 2)^2 * ceil(Ho / m) * ceil(Wo / m)``, and returns the smallest m
    within ``TILE_SLACK`` of the fewest (m = 5 for 10x10 maps: 196 against
    400 for m = 2; m = 4 for 12x12 maps: 324 against 576).
    """
    ho, wo = out_hw
    cost = {m: (m + R - 1) ** 2 * -(-ho // m) * -(-wo // m) for m in TILE_SIZES}
    best = min(cost.values())
    return min(m for m in TILE_SIZES if cost[m] <= TILE_SLACK * best)


def sandwich(mat: Any, d: Any, out: Any, tmp: Any) -> Any:
    """``out[i, j, :] = sum_{a, b} mat[i, a] * mat[j, b] * d[a, b, :]``.

    ``d`` is ``(p, p, X)``, ``mat`` ``(q, p)``, ``out`` ``(q, q, X)`` and
    ``tmp`` a ``(q, p, X)`` work array: two matrix products, one per tile axis.
    """
    xp = array_module(d)
    p, x = d.shape[0], d.shape[2]
    q = mat.shape[0]
    xp.matmul(mat, d.reshape(p, p * x), out=tmp.reshape(q, p * x))
    xp.matmul(mat, tmp, out=out)  # mat broadcast over tmp's first axis
    return out


def _mats(m: int, dtype: Any, xp: Any) -> tuple[Any, Any, Any]:
    """``(A^T, G, B^T)`` in ``dtype`` on ``xp``'s device. NumPy converts on each call
    (as it always has); a device gets them moved once and cached (:func:`_device_mats`)."""
    if xp is np:
        return tuple(xp.asarray(t, dtype=dtype) for t in transform_matrices(m))  # type: ignore
    return _device_mats(m, np.dtype(dtype).str, xp, int(xp.cuda.Device().id))


@cache
def _device_mats(m: int, dtype: str, xp: Any, device_id: int) -> tuple[Any, Any, Any]:
    """The transform matrices moved to device ``device_id`` once (per tile size and dtype)."""
    return tuple(xp.asarray(t, dtype=dtype) for t in transform_matrices(m))  # type: ignore


def filter_transform(kernel: Any, m: int, work: Work | None = None) -> Any:
    """``U = G g G^T`` for every (C_in, C_out) pair: ``(a^2, C_in, C_out)``.

    With ``work`` (see :func:`schedule.scratch`) the result lives in the
    scratch buffer ``"u"``: valid until the calling thread's next use of it."""
    xp = array_module(kernel)
    _, g, _ = _mats(m, kernel.dtype, xp)
    a = m + R - 1
    _, _, ci, co = kernel.shape
    d = kernel.reshape(R, R, ci * co)
    if work is None:
        u = xp.empty((a, a, ci * co), dtype=kernel.dtype)
        tmp = xp.empty((a, R, ci * co), dtype=kernel.dtype)
    else:
        u, tmp = work("u", (a, a, ci * co)), work("u_tmp", (a, R, ci * co))
    sandwich(g, d, u, tmp)
    return u.reshape(a * a, ci, co)


@dataclass
class WinogradCache:
    """What the backward pass needs from the forward: transformed input and filters."""

    m: int  # output tile size
    v: Any  # (a^2, N * th * tw, C_in), tiles in (n, th, tw) order
    u: Any  # (a^2, C_in, C_out)
    tiles: tuple[int, int, int]  # (N, th, tw)
    padded_hw: tuple[int, int]  # padded input size, rounded up to whole tiles
    out_hw: tuple[int, int]
    plan: schedule.BatchPlan | None = None  # the forward's groups and chunks
    kernel: Any = None  # the forward's filters (N.B. a reference: not to be changed in place)


#: ``work(name, shape)``: a temporary array of the chunk's dtype (see :func:`schedule.scratch`).
Work = Callable[[str, tuple[int, ...]], Any]


def _tile_counts(out_hw: tuple[int, int], m: int) -> tuple[int, int]:
    return -(-out_hw[0] // m), -(-out_hw[1] // m)


def gather_tiles(xpad: Any, m: int, th: int, tw: int, out: Any) -> Any:
    """The ``a x a`` input tiles (every ``m`` pixels) of ``xpad`` (N, Hp, Wp, C),
    position-major into ``out`` ``(a, a, N, th, tw, C)``."""
    xp = array_module(xpad)
    a = m + R - 1
    win = sliding_window_view(xpad, (a, a), axis=(1, 2))[:, : m * th : m, : m * tw : m]
    xp.copyto(out, win.transpose(4, 5, 0, 1, 2, 3))
    return out


def scatter_tiles(dd: Any, m: int, out: Any) -> Any:
    """Adjoint of :func:`gather_tiles`: ``out`` (N, Hp, Wp, C) receives the sum of
    ``dd`` ``(a, a, N, th, tw, C)`` over the overlapping tiles (its contents are
    overwritten).

    The tiles' first ``m x m`` pixels cover the map without overlap: they are
    written with one copy; the other ``a^2 - m^2`` positions are then added
    (in the same order as adding all ``a^2`` positions to zeros: the same sums).
    """
    a, _, n, th, tw, c = dd.shape
    hc, wc = m * th, m * tw
    out[:, hc:] = 0
    out[:, :hc, wc:] = 0
    core = out[:, :hc, :wc].reshape(n, th, m, tw, m, c)  # splits axes: a view
    core[...] = dd[:m, :m].transpose(2, 3, 0, 4, 1, 5)
    for i in range(a):
        for j in range(m if i < m else 0, a):
            out[:, i : i + m * (th - 1) + 1 : m, j : j + m * (tw - 1) + 1 : m] += dd[i, j]
    return out


def forward_tiles(xpad: Any, u: Any, bias: Any | None, relu: bool, m: int,
                  tiles: tuple[int, int], out: Any, v: Any | None, work: Work) -> None:
    """``out = [max(.., 0) of] A^T [U * (B^T d B)] A + b`` for one chunk of images.

    ``xpad`` (nc, Hp, Wp, Ci) is the padded chunk, ``out`` its output
    (nc, m * th, m * tw, Co); ``v`` (a^2, nc * th * tw, Ci), if given,
    receives the transformed input tiles for the backward pass.
    """
    xp = array_module(xpad)
    a = m + R - 1
    th, tw = tiles
    nc, ci, co = xpad.shape[0], xpad.shape[3], u.shape[2]
    nt = nc * th * tw
    at, _, bt = _mats(m, xpad.dtype, xp)
    d = gather_tiles(xpad, m, th, tw, work("d", (a, a, nc, th, tw, ci)))
    if v is None:
        v = work("ci", (a * a, nt, ci))
    sandwich(bt, d.reshape(a, a, nt * ci), v.reshape(a, a, nt * ci),
             work("tmp", (a, a, nt * ci)))
    mm = work("co", (a * a, nt, co))
    xp.matmul(v, u, out=mm)  # (a^2, tiles, Co): one GEMM per Winograd position
    if bias is not None:
        # A^T's column for the point 1 is all ones, so b at that position of
        # M adds b to every pixel of the tile: 1/a^2 of a pass instead of one
        mm[ONES * a + ONES] += bias
    y = work("y", (m, m, nc, th, tw, co))
    sandwich(at, mm.reshape(a, a, nt * co), y.reshape(m, m, nt * co),
             work("tmp", (m, a, nt * co)))
    o = out.reshape(nc, th, m, tw, m, co)
    y = y.transpose(2, 3, 0, 4, 1, 5)
    if relu:  # untile and ReLU in one pass
        xp.maximum(y, 0, out=o)
    else:
        xp.copyto(o, y)


def backward_tiles(grad_out: Any, relu_output: Any | None, v: Any, ut: Any, m: int,
                   tiles: tuple[int, int], du: Any, db: Any, dx: Any | None,
                   work: Work) -> None:
    """One chunk's share of the backward pass.

    ``grad_out`` (nc, m * th, m * tw, Co) is the chunk's output gradient (times
    ``relu_output > 0`` when that is given), ``v`` its transformed input tiles
    and ``ut`` the transformed filters with their channel axes swapped.
    Writes the chunk's ``sum_tiles V^T dM`` into ``du`` (a^2, Ci, Co), adds its
    bias gradient to ``db`` and, if ``dx`` is given, writes the gradient of
    the padded input chunk into it.
    """
    xp = array_module(grad_out)
    a = m + R - 1
    th, tw = tiles
    nc, co, ci = grad_out.shape[0], grad_out.shape[3], ut.shape[2]
    nt = nc * th * tw
    at, _, bt = _mats(m, grad_out.dtype, xp)
    dy = work("y", (m, m, nc, th, tw, co))
    src = grad_out.reshape(nc, th, m, tw, m, co).transpose(2, 4, 0, 1, 3, 5)
    if relu_output is None:
        xp.copyto(dy, src)
    else:
        mask = relu_output.reshape(nc, th, m, tw, m, co).transpose(2, 4, 0, 1, 3, 5)
        xp.multiply(src, mask > 0, out=dy)
    dm = work("co", (a * a, nt, co))
    sandwich(at.T, dy.reshape(m, m, nt * co), dm.reshape(a, a, nt * co),
             work("tmp", (a, m, nt * co)))
    # dM at the point 1's position is the sum of the tile's dY (A's row there is
    # all ones): the bias gradient from 1/m^2 of the data
    db += dm[ONES * a + ONES].sum(axis=0)
    # sum over tiles of V^T dM: NumPy hands each position's transposed
    # operand to BLAS as a transposed GEMM (no copy)
    xp.matmul(v.transpose(0, 2, 1), dm, out=du)
    if dx is not None:
        dv = work("ci", (a * a, nt, ci))
        xp.matmul(dm, ut, out=dv)  # (a^2, tiles, Ci)
        dd = work("d", (a, a, nc, th, tw, ci))
        sandwich(bt.T, dv.reshape(a, a, nt * ci), dd.reshape(a, a, nt * ci),
                 work("tmp", (a, a, nt * ci)))
        scatter_tiles(dd, m, dx)


def forward_tiles_jit(xpad: np.ndarray, u: np.ndarray, bias: np.ndarray | None, relu: bool,
                      m: int, tiles: tuple[int, int], out: np.ndarray, v: np.ndarray | None,
                      t0: int, work: Work) -> None:
    """:func:`forward_tiles` with the compiled transforms (:mod:`cnnlab.ops.winograd_jit`).

    The input tiles are transformed straight from ``xpad`` (no gathered copy);
    ``v``, if given, is the whole batch's ``(a^2, tiles, C_in)`` array and this
    chunk's tiles start at ``t0``. ``out`` is the chunk's output cropped to
    the valid pixels, (nc, Ho, Wo, Co): the output transform adds the bias,
    applies the ReLU and writes each pixel there.
    """
    a = m + R - 1
    th, tw = tiles
    nc, ci, co = xpad.shape[0], xpad.shape[3], u.shape[2]
    nt = nc * th * tw
    if v is None:
        v, t0 = work("ci", (a * a, nt, ci)), 0
    winograd_jit.input_transform(xpad, m, th, tw, v, t0)
    mm = work("co", (a * a, nt, co))
    np.matmul(v[:, t0 : t0 + nt], u, out=mm)  # (a^2, tiles, Co): one GEMM per position
    winograd_jit.output_transform(mm, m, bias, relu, th, tw, out, work("part", (1, m, m, co)))


def backward_tiles_jit(grad_out: np.ndarray, relu_output: np.ndarray | None, v: np.ndarray,
                       ut: np.ndarray, m: int, tiles: tuple[int, int], du: np.ndarray,
                       db: np.ndarray, dx: np.ndarray | None, work: Work) -> None:
    """:func:`backward_tiles` with the compiled transforms (:mod:`cnnlab.ops.winograd_jit`).

    ``grad_out`` and ``relu_output`` are the chunk's (nc, Ho, Wo, Co) arrays
    (not padded to whole tiles: the transform reads zeros beyond them); the
    ReLU mask and the bias gradient are taken in the same pass, and the input
    gradient's tiles are added straight into ``dx`` (the padded chunk).
    """
    a = m + R - 1
    th, tw = tiles
    nc, co, ci = grad_out.shape[0], grad_out.shape[3], ut.shape[2]
    nt = nc * th * tw
    dm = work("co", (a * a, nt, co))
    part = work("part", (1, m, m, co))
    winograd_jit.grad_transform(grad_out, relu_output, m, th, tw, dm, db, part)
    np.matmul(v.transpose(0, 2, 1), dm, out=du)  # sum over tiles of V^T dM
    if dx is not None:
        dv = work("ci", (a * a, nt, ci))
        np.matmul(dm, ut, out=dv)  # (a^2, tiles, Ci)
        winograd_jit.input_grad_transform(dv, m, th, tw, dx)


def use_jit(xp: Any) -> bool:
    """Whether NumPy arrays take the compiled transforms (:func:`winograd_jit.available`)."""
    return xp is np and winograd_jit.available()


def _work(xp: Any, dtype: Any) -> Work:
    return lambda name, shape: schedule.scratch(xp, name, shape, dtype)


def conv3x3_forward(
    x: Any,
    kernel: Any,
    bias: Any | None,
    pads: Pads,
    keep: bool = True,
    relu: bool = False,
    m: int | None = None,
    u: Any | None = None,
) -> tuple[Any, WinogradCache | None]:
    """Stride-1 3x3 convolution by Winograd F(m x m, 3 x 3); returns ``(output, cache)``.

    ``O[n, i, j, co] = b[co] + sum_{a, b, ci} Xp[n, i + a, j + b, ci] * F[a, b, ci, co]``,
    followed by ``max(O, 0)`` with ``relu`` (applied chunk by chunk, in the workers).
    ``m`` is the output tile size (default :func:`choose_tile`); ``u`` may
    pass a precomputed :func:`filter_transform` of ``kernel`` for that ``m``.
    With ``keep=False`` (inference) no cache is kept and ``None`` is returned for it.
    The batch is processed in the chunks :func:`schedule.plan_batch` picks.
    """
    xp = array_module(x, kernel)
    n, h, w, _ = x.shape
    _, _, ci, co = kernel.shape
    (top, bottom), (left, right) = pads
    ho, wo = h + top + bottom - R + 1, w + left + right - R + 1
    if m is None:
        m = choose_tile((ho, wo))
    a = m + R - 1
    th, tw = _tile_counts((ho, wo), m)
    hp, wp = m * th + R - 1, m * tw + R - 1  # round the output up to whole tiles
    xpad = pad2d(x, ((top, hp - h - top), (left, wp - w - left)))
    if u is None:
        u = filter_transform(kernel, m)
    t = th * tw
    v_all = xp.empty((a * a, n * t, ci), dtype=xpad.dtype) if keep else None
    jit = use_jit(xp)
    full = jit or (m * th, m * tw) == (ho, wo)  # the compiled output transform crops
    out = xp.empty((n, m * th, m * tw, co) if not full else (n, ho, wo, co), dtype=xpad.dtype)
    plan = schedule.plan_batch(xp, n, t, a * a)
    if jit:
        xpad = np.ascontiguousarray(xpad)
        u = np.ascontiguousarray(u)
        bias = None if bias is None else np.ascontiguousarray(bias)

    def group(lo: int, hi: int) -> None:
        work = _work(xp, xpad.dtype)
        for n0, n1 in plan.chunks_of((lo, hi)):
            if jit:
                forward_tiles_jit(xpad[n0:n1], u, bias, relu, m, (th, tw), out[n0:n1],
                                  v_all, n0 * t, work)
                continue
            # transformed tiles land where the backward wants them
            v = v_all[:, n0 * t : n1 * t] if v_all is not None else None
            forward_tiles(xpad[n0:n1], u, bias, relu, m, (th, tw), out[n0:n1], v, work)

    parallel.run_groups(group, plan.groups)
    if not full:
        out = xp.ascontiguousarray(out[:, :ho, :wo])
    if not keep:
        return out, None
    return out, WinogradCache(m, v_all, u, (n, th, tw), (hp, wp), (ho, wo), plan, kernel)


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
    m = cache.m
    a = m + R - 1
    ci, co = cache.u.shape[1:]
    n, th, tw = cache.tiles
    t = th * tw
    ho, wo = cache.out_hw
    dtype = grad_out.dtype
    jit = use_jit(xp)
    if jit:  # the compiled transforms read the unpadded arrays
        grad_out = np.ascontiguousarray(grad_out)
        if relu_output is not None:
            relu_output = np.ascontiguousarray(relu_output)
    elif (ho, wo) != (m * th, m * tw):
        if relu_output is not None:
            grad_out = grad_out * (relu_output > 0)
            relu_output = None
        grad_out = xp.pad(grad_out, ((0, 0), (0, m * th - ho), (0, m * tw - wo), (0, 0)))
    _, g, _ = _mats(m, dtype, xp)
    if xp is np and cache.kernel is not None:
        # U^T contiguous: OpenBLAS's GEMMs with it run about 1.4x faster than with a
        # transposed view of U (seed model, batch 128), and transforming the
        # transposed filters (the same products: the same values) costs about
        # a third of copying U transposed
        ut = filter_transform(xp.ascontiguousarray(cache.kernel.transpose(0, 1, 3, 2)), m,
                              _work(xp, dtype))
    else:  # a transposed view: cuBLAS takes it as a transposed GEMM
        ut = cache.u.transpose(0, 2, 1)
    hp, wp = cache.padded_hw
    dxp = xp.empty((n, hp, wp, ci), dtype=dtype) if need_input_grad else None
    plan = cache.plan or schedule.plan_batch(xp, n, t, a * a)

    def group(lo: int, hi: int) -> Any:
        work = _work(xp, dtype)
        du = xp.empty((a * a, ci, co), dtype=dtype)
        db = xp.zeros((co,), dtype=dtype)
        du_part = work("du", (a * a, ci, co))
        chunk = backward_tiles_jit if jit else backward_tiles
        for i, (n0, n1) in enumerate(plan.chunks_of((lo, hi))):
            chunk(
                grad_out[n0:n1], None if relu_output is None else relu_output[n0:n1],
                cache.v[:, n0 * t : n1 * t], ut, m, (th, tw), du if i == 0 else du_part, db,
                None if dxp is None else dxp[n0:n1], work,
            )
            if i > 0:
                du += du_part
        return du, db

    parts = parallel.run_groups(group, plan.groups)
    du, dbias = parts[0]
    for du_part, db_part in parts[1:]:  # fixed order: reproducible
        du += du_part
        dbias += db_part
    dk = xp.empty((R, R, ci * co), dtype=dtype)
    sandwich(g.T, du.reshape(a, a, ci * co), dk, xp.empty((R, a, ci * co), dtype=dtype))
    dkernel = dk.reshape(R, R, ci, co)
    if dxp is None:
        return None, dkernel, dbias
    (top, _), (left, _) = pads
    h, w = input_shape[1], input_shape[2]
    return dxp[:, top : top + h, left : left + w], dkernel, dbias
