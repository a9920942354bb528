"""Max and average pooling over (N, H, W, C) arrays.

Each output pixel summarises one window of the input (the slides' "receptive
field"): its largest value (max) or its mean (average).

* Padding follows the convolution rules (``"valid"``, ``"same"``, ...), but
  padded cells never win a max (they hold ``-inf``) and never count in an
  average (the divisor is the number of real pixels in the window), as in
  TensorFlow/Keras.
* Max pooling's gradient goes to exactly one input per window: the first
  maximum in row-major window order (top-left first) when several pixels tie.
  Overlapping windows (stride < pool size) add their gradients.
* Global pooling (one window over the whole map, ``(N, H, W, C) -> (N, C)``)
  follows the same rules.
"""

from __future__ import annotations

from typing import Any

from cnnlab.backend import array_module, sliding_window_view
from cnnlab.ops import parallel, pooling_jit
from cnnlab.ops.padding import Pads, output_hw, pad2d, unpad2d


def _tiles(x: Any, pool: tuple[int, int], strides: tuple[int, int], pads: Pads) -> bool:
    """True when windows tile the map exactly, so a reshape replaces the window view."""
    (t, b), (left, r) = pads
    return (
        pool == strides
        and t == b == left == r == 0
        and x.shape[1] % pool[0] == 0
        and x.shape[2] % pool[1] == 0
    )


def _windows(xpad: Any, pool: tuple[int, int], strides: tuple[int, int]) -> Any:
    """(N, Ho, Wo, C, ph * pw) copy of every window, row-major within the window."""
    ph, pw = pool
    win = sliding_window_view(xpad, pool, axis=(1, 2))[:, :: strides[0], :: strides[1]]
    n, ho, wo, c = win.shape[:4]
    return win.reshape(n, ho, wo, c, ph * pw)


#: Fewest elements for which the tiled max-pooling paths split the batch over
#: the worker threads (see :mod:`cnnlab.ops.parallel`); each image's result is
#: computed exactly as it would be on one thread, so this is a speed setting
#: only. ``benchmarks/tune_thresholds.py`` measures the crossover (on a 2-core
#: x86-64 machine: about 0.8M elements for training, 1.6M for inference; below
#: them the thread hand-off costs more, up to 3x at 0.3M).
PARALLEL_MIN_ELEMENTS = 1 << 20


def _batch_groups(xp: Any, x: Any) -> list[tuple[int, int]]:
    workers = parallel.workers_for(xp) if x.size >= PARALLEL_MIN_ELEMENTS else 1
    return parallel.split(x.shape[0], workers)


#: Fewest input elements for which 2x2 max pooling takes the compiled kernels. Below
#: it the NumPy path is as fast, and a process that only ever pools small batches
#: (``cnnlab predict`` on one image, the demo) never imports Numba (about 0.5 s).
JIT_MIN_ELEMENTS = 1 << 16


def _jit_2x2(xp: Any, pool: tuple[int, int], size: int) -> bool:
    """Whether 2x2 tiled max pooling of ``size`` input elements takes
    :mod:`cnnlab.ops.pooling_jit` (NumPy arrays, compiled kernels available; see
    :mod:`cnnlab.ops.jit`)."""
    return (tuple(pool) == (2, 2) and xp.__name__ == "numpy" and size >= JIT_MIN_ELEMENTS
            and pooling_jit.available())


def _tile_views(x: Any, pool: tuple[int, int]) -> list[Any]:
    """The ``ph * pw`` strided views ``x[:, a::ph, b::pw]``, row-major window order."""
    ph, pw = pool
    return [x[:, a::ph, b::pw] for a in range(ph) for b in range(pw)]


def max_pool2d_forward(
    x: Any, pool: tuple[int, int], strides: tuple[int, int], pads: Pads,
    need_argmax: bool = True,
) -> tuple[Any, Any]:
    """``O[n, i, j, c] = max over the window of Xp``; returns ``(O, argmax)``.

    ``argmax`` holds, for each output, the flat index ``a * pw + b`` of the
    winning pixel inside its window (first maximum on ties); it is ``None``
    with ``need_argmax=False`` (inference: no backward pass will need it).

    When the windows tile the map (pool == strides, no padding), the window
    elements are ``ph * pw`` strided views of ``x``: the max is a chain of
    element-wise maxima and the arg-max is found by comparing each view, last
    to first, with the max (so the first tied position wins).
    """
    xp = array_module(x)
    output_hw(x.shape[1:3], pool, strides, pads, "pooling window")
    ph, pw = pool
    idx_dtype = xp.int8 if ph * pw < 128 else xp.int32
    if _tiles(x, pool, strides, pads):
        n, h, w, c = x.shape
        out = xp.empty((n, h // ph, w // pw, c), dtype=x.dtype)
        arg = xp.empty(out.shape, dtype=idx_dtype) if need_argmax else None
        jit = _jit_2x2(xp, pool, x.size)
        if jit:
            x = xp.ascontiguousarray(x)

        def part(lo: int, hi: int) -> None:  # images lo:hi, independent of the others
            if jit:  # the same results in one pass (see cnnlab.ops.pooling_jit)
                pooling_jit.forward(x[lo:hi], out[lo:hi], None if arg is None else arg[lo:hi])
                return
            views = _tile_views(x[lo:hi], pool)
            o = out[lo:hi]
            if len(views) == 1:
                xp.copyto(o, views[0])
            else:
                xp.maximum(views[0], views[1], out=o)
            for v in views[2:]:
                xp.maximum(o, v, out=o)
            if arg is None:
                return
            a = arg[lo:hi]
            # first tie wins: arg = nf0 * (1 + nf1 * (1 + nf2 * (...))), nf_k = (view_k != max)
            a.fill(0)
            for k in range(len(views) - 2, -1, -1):
                a += 1
                a *= views[k] != o

        parallel.run_groups(part, _batch_groups(xp, x))
        return out, arg
    win = _windows(pad2d(x, pads, -xp.inf), pool, strides)
    if not need_argmax:
        return win.max(axis=-1), None
    arg = win.argmax(axis=-1)
    out = xp.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
    return out, arg.astype(idx_dtype)


def max_pool2d_backward(
    grad_out: Any,
    argmax: Any,
    input_shape: tuple[int, ...],
    pool: tuple[int, int],
    strides: tuple[int, int],
    pads: Pads,
) -> Any:
    """Route each output gradient to its window's arg-max input."""
    xp = array_module(grad_out)
    n, h, w, c = input_shape
    ph, pw = pool
    sh, sw = strides
    ho, wo = grad_out.shape[1:3]
    if pool == strides and pads == ((0, 0), (0, 0)) and h % ph == 0 and w % pw == 0:
        dx = xp.empty((n, h, w, c), dtype=grad_out.dtype)
        jit = _jit_2x2(xp, pool, n * h * w * c)
        if jit:
            grad_out, argmax = xp.ascontiguousarray(grad_out), xp.ascontiguousarray(argmax)

        def part(lo: int, hi: int) -> None:
            if jit:
                pooling_jit.backward(grad_out[lo:hi], argmax[lo:hi], dx[lo:hi])
                return
            for k, view in enumerate(_tile_views(dx[lo:hi], pool)):
                xp.multiply(grad_out[lo:hi], argmax[lo:hi] == k, out=view)

        parallel.run_groups(part, _batch_groups(xp, dx))
        return dx
    (t, b), (left, r) = pads
    dxp = xp.zeros((n, h + t + b, w + left + r, c), dtype=grad_out.dtype)
    for a in range(ph):
        for bb in range(pw):
            hit = argmax == a * pw + bb
            dxp[:, a : a + sh * (ho - 1) + 1 : sh, bb : bb + sw * (wo - 1) + 1 : sw, :] += (
                grad_out * hit
            )
    return unpad2d(dxp, pads, (h, w))


def avg_pool2d_forward(
    x: Any, pool: tuple[int, int], strides: tuple[int, int], pads: Pads
) -> tuple[Any, Any]:
    """``O = sum over the window / number of real (unpadded) pixels``; returns ``(O, counts)``."""
    xp = array_module(x)
    output_hw(x.shape[1:3], pool, strides, pads, "pooling window")
    ones = xp.ones((1,) + tuple(x.shape[1:3]) + (1,), dtype=x.dtype)
    counts = _windows(pad2d(ones, pads), pool, strides).sum(axis=-1)  # (1, Ho, Wo, 1)
    sums = _windows(pad2d(x, pads), pool, strides).sum(axis=-1)
    return sums / counts, counts


def avg_pool2d_backward(
    grad_out: Any,
    counts: Any,
    input_shape: tuple[int, ...],
    pool: tuple[int, int],
    strides: tuple[int, int],
    pads: Pads,
) -> Any:
    """Spread each output gradient evenly over the real pixels of its window."""
    xp = array_module(grad_out)
    n, h, w, c = input_shape
    ph, pw = pool
    sh, sw = strides
    ho, wo = grad_out.shape[1:3]
    share = grad_out / counts
    (t, b), (left, r) = pads
    dxp = xp.zeros((n, h + t + b, w + left + r, c), dtype=grad_out.dtype)
    for a in range(ph):
        for bb in range(pw):
            dxp[:, a : a + sh * (ho - 1) + 1 : sh, bb : bb + sw * (wo - 1) + 1 : sw, :] += share
    return unpad2d(dxp, pads, (h, w))


# ----------------------------------------------------------------------------- global pooling
# One window covering the whole map: (N, H, W, C) -> (N, C), Keras's
# GlobalAveragePooling2D and GlobalMaxPooling2D (PyTorch's adaptive pooling to 1x1).


def global_avg_pool2d_forward(x: Any) -> tuple[Any, tuple[int, ...]]:
    """``O[n, c] = (1 / (H W)) sum_{i, j} X[n, i, j, c]``; returns ``(O, input shape)``.

    The sum accumulates in float64 (the result has ``x``'s dtype).
    """
    xp = array_module(x)
    return x.mean(axis=(1, 2), dtype=xp.float64).astype(x.dtype, copy=False), tuple(x.shape)


def global_avg_pool2d_backward(grad_out: Any, input_shape: tuple[int, ...]) -> Any:
    """``dX[n, i, j, c] = dO[n, c] / (H W)``: the gradient spread evenly over the map."""
    xp = array_module(grad_out)
    n, h, w, c = input_shape
    dx = xp.empty((n, h, w, c), dtype=grad_out.dtype)
    dx[...] = (grad_out / grad_out.dtype.type(h * w))[:, None, None, :]
    return dx


def global_max_pool2d_forward(x: Any, need_argmax: bool = True) -> tuple[Any, Any]:
    """``O[n, c] = max_{i, j} X[n, i, j, c]``; returns ``(O, argmax)``.

    ``argmax[n, c]`` is the flat index ``i * W + j`` of the winner: the first
    maximum in row-major order on ties, as :func:`max_pool2d_forward`. It is
    ``None`` with ``need_argmax=False``.
    """
    xp = array_module(x)
    n, h, w, c = x.shape
    if not need_argmax:
        return x.max(axis=(1, 2)), None
    flat = x.reshape(n, h * w, c)
    arg = flat.argmax(axis=1)  # the first maximum
    out = xp.take_along_axis(flat, arg[:, None, :], axis=1)[:, 0, :]
    return out, arg


def global_max_pool2d_backward(grad_out: Any, argmax: Any, input_shape: tuple[int, ...]) -> Any:
    """Route ``dO[n, c]`` to the arg-max pixel of channel ``c``; zero elsewhere."""
    xp = array_module(grad_out)
    n, h, w, c = input_shape
    dx = xp.zeros((n, h * w, c), dtype=grad_out.dtype)
    dx[xp.arange(n)[:, None], argmax, xp.arange(c)[None, :]] = grad_out
    return dx.reshape(n, h, w, c)
