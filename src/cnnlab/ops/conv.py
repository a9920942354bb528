"""2-D convolution (cross-correlation, as every deep-learning library computes it).

Arrays are channels-last: inputs ``(N, H, W, C_in)``, filters
``(kh, kw, C_in, C_out)``, outputs ``(N, H_out, W_out, C_out)``.

Forward, for output pixel ``(i, j)`` and filter ``co``::

    O[n, i, j, co] = b[co] + sum_{a, b, ci} Xp[n, i*s + a, j*s + b, ci] * F[a, b, ci, co]

where ``Xp`` is the padded input and ``s`` the stride.

Backward, exactly as the slides derive it (stride 1; strides are handled by
dilating ``dL/dO`` with ``s - 1`` zeros between its pixels):

* ``dL/dF = correlate(X, dL/dO)``: slide the output gradient over the input.
* ``dL/dX = full_convolution(rot180(F), dL/dO)``: pad the output gradient by
  ``k - 1`` on every side and correlate it with the filter turned by 180
  degrees (and its in/out channels swapped).

Two implementations live here:

* the **reference** functions (``*_reference``) are that literal form, written
  as ``kh * kw`` shifted slices and matrix products, and
* the **fast** ones: im2col (one contiguous copy of a strided window view)
  and one GEMM per pass, with the input gradient gathered back by
  ``kh * kw`` slice-adds; and, for 3x3 stride-1 layers with enough work,
  Winograd F(m x m, 3 x 3) (:mod:`cnnlab.ops.winograd`).

Layers call one interface, whatever the implementation:
``conv2d_forward(x, kernel, bias, strides, pads, impl=..., relu=..., keep=...)``
returns ``(output, cache)`` and ``conv2d_backward(grad, cache, need_input_grad)``
returns ``(dX, dF, db)``; ``impl`` (``"reference"``, ``"im2col"``,
``"winograd"`` or ``"auto"``) is dispatched here.

The tests check the fast path against the reference, the reference against
finite differences, and both against PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cnnlab.backend import array_module, sliding_window_view
from cnnlab.errors import InvalidArgumentError
from cnnlab.ops import parallel, winograd
from cnnlab.ops.padding import Pads, dilate2d, output_hw, pad2d, unpad2d


def correlate2d(x: Any, k: Any, strides: tuple[int, int] = (1, 1)) -> Any:
    """Valid cross-correlation of ``x`` (N, H, W, Ci) with ``k`` (kh, kw, Ci, Co).

    ``O[n, i, j, co] = sum_{a, b, ci} x[n, i*s + a, j*s + b, ci] * k[a, b, ci, co]``,
    computed as one matrix product per filter tap (a, b): the literal sum.
    """
    xp = array_module(x, k)
    n, h, w, _ = x.shape
    kh, kw, _, co = k.shape
    sh, sw = strides
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = xp.zeros((n, ho, wo, co), dtype=xp.result_type(x.dtype, k.dtype))
    for a in range(kh):
        for b in range(kw):
            patch = x[:, a : a + sh * (ho - 1) + 1 : sh, b : b + sw * (wo - 1) + 1 : sw, :]
            out += patch @ k[a, b]
    return out


# ----------------------------------------------------------------------------- reference


def conv2d_forward_reference(
    x: Any, kernel: Any, bias: Any | None, strides: tuple[int, int], pads: Pads
) -> Any:
    """Convolution forward: pad, correlate, add the bias."""
    out = correlate2d(pad2d(x, pads), kernel, strides)
    if bias is not None:
        out = out + bias
    return out


def conv2d_backward_filter_reference(
    x: Any, grad_out: Any, kernel_hw: tuple[int, int], strides: tuple[int, int], pads: Pads
) -> Any:
    """``dL/dF = correlate(X, dL/dO)`` (the slides' first backward formula).

    The input plays the image and the (dilated) output gradient plays the
    filter; the batch axis is the sum that a filter's channel axis would be.
    Returns ``(kh, kw, C_in, C_out)``.
    """
    xp_ = pad2d(x, pads)  # (N, Hp, Wp, Ci)
    g = dilate2d(grad_out, strides)  # (N, Hd, Wd, Co)
    # correlate "images" = input channels, "channels" = batch, "filter" = dL/dO
    images = xp_.transpose(3, 1, 2, 0)  # (Ci, Hp, Wp, N)
    filt = g.transpose(1, 2, 0, 3)  # (Hd, Wd, N, Co)
    full = correlate2d(images, filt)  # (Ci, Hp - Hd + 1, Wp - Wd + 1, Co)
    kh, kw = kernel_hw
    # rows past kh exist only when the stride leaves input pixels unused
    return full[:, :kh, :kw, :].transpose(1, 2, 0, 3)


def conv2d_backward_input_reference(
    grad_out: Any,
    kernel: Any,
    input_hw: tuple[int, int],
    strides: tuple[int, int],
    pads: Pads,
) -> Any:
    """``dL/dX = full_convolution(rot180(F), dL/dO)`` (the slides' second formula).

    Full padding (``k - 1`` zeros on each side) of the dilated output gradient,
    correlated with the filter rotated by 180 degrees and its channel axes
    swapped. Returns ``(N, H, W, C_in)``.
    """
    xp = array_module(grad_out, kernel)
    kh, kw = kernel.shape[:2]
    g = dilate2d(grad_out, strides)
    g_full = pad2d(g, ((kh - 1, kh - 1), (kw - 1, kw - 1)))
    rotated = kernel[::-1, ::-1, :, :].transpose(0, 1, 3, 2)  # (kh, kw, Co, Ci)
    dxp = correlate2d(g_full, rotated)  # (N, (Ho-1)s + kh, (Wo-1)s + kw, Ci)
    (t, b), (left, r) = pads
    hp, wp = input_hw[0] + t + b, input_hw[1] + left + r
    if dxp.shape[1] < hp or dxp.shape[2] < wp:  # pixels the stride never reached
        dxp = xp.pad(dxp, ((0, 0), (0, hp - dxp.shape[1]), (0, wp - dxp.shape[2]), (0, 0)))
    return unpad2d(dxp, pads, input_hw)


# ----------------------------------------------------------------------------- fast path


def im2col(x_padded: Any, kernel_hw: tuple[int, int], strides: tuple[int, int],
           ones: bool = False, out: Any | None = None) -> Any:
    """All receptive fields as rows: ``(N * Ho * Wo, kh * kw * C)``, one contiguous copy.

    Row ``(n, i, j)`` holds ``Xp[n, i*s:i*s+kh, j*s:j*s+kw, :]`` in (a, b, c) order,
    matching ``kernel.reshape(kh * kw * C, C_out)``. With ``ones``, each row ends
    with an extra 1 (``(N * Ho * Wo, kh * kw * C + 1)``): the bias's column, so
    that one GEMM adds the bias (forward) and sums the output gradient (backward).
    ``out``, if given, is the array to fill (of that shape).
    """
    xp = array_module(x_padded)
    kh, kw = kernel_hw
    sh, sw = strides
    n, _, _, c = x_padded.shape
    win = sliding_window_view(x_padded, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    ho, wo = win.shape[1], win.shape[2]
    k = kh * kw * c
    cols = xp.empty((n * ho * wo, k + int(ones)), dtype=x_padded.dtype) if out is None else out
    body = cols[:, :k].reshape(n, ho, wo, kh, kw, c)  # splits axes: a view
    body[...] = win.transpose(0, 1, 2, 4, 5, 3)
    if ones:
        cols[:, k] = 1
    return cols


def col2im(
    dcols: Any,
    padded_shape: tuple[int, int, int, int],
    kernel_hw: tuple[int, int],
    strides: tuple[int, int],
    out_hw: tuple[int, int],
) -> Any:
    """Adjoint of :func:`im2col`: scatter-add rows back with ``kh * kw`` slice-adds."""
    xp = array_module(dcols)
    n, hp, wp, c = padded_shape
    kh, kw = kernel_hw
    sh, sw = strides
    ho, wo = out_hw
    d = dcols.reshape(n, ho, wo, kh, kw, c)
    dx = xp.zeros(padded_shape, dtype=dcols.dtype)
    for a in range(kh):
        for b in range(kw):
            dx[:, a : a + sh * (ho - 1) + 1 : sh, b : b + sw * (wo - 1) + 1 : sw, :] += d[
                :, :, :, a, b, :
            ]
    return dx


def conv2d_forward_im2col(
    x: Any, kernel: Any, bias: Any | None, strides: tuple[int, int], pads: Pads,
    relu: bool = False,
) -> tuple[Any, Any]:
    """im2col forward: ``O = im2col(Xp) @ F.reshape(kh*kw*C_in, C_out) + b``.

    With a bias, and more output rows than weight rows, the rows carry a last
    column of ones and the bias is the matrix's last row:
    ``O = [im2col(Xp), 1] @ [F; b]``, one GEMM and no separate pass over ``O``
    (with fewer, as at batch-1 inference of a wide layer, copying the kernel
    into the longer matrix would cost more than adding the bias to ``O``); with
    ``relu``, ``max(O, 0)`` follows. Inside a batch scope the images are split
    over the worker threads
    (:func:`cnnlab.ops.parallel.image_groups`), each group running pad,
    im2col, GEMM and ReLU on its own rows. Returns ``(output, cols)``; ``cols``
    is what :func:`conv2d_backward_im2col` needs.
    """
    xp = array_module(x, kernel)
    n = x.shape[0]
    kh, kw, ci, co = kernel.shape
    ho, wo = output_hw(x.shape[1:3], (kh, kw), strides, pads, "kernel")
    k = kh * kw * ci
    fold = bias is not None and n * ho * wo > k
    weights = kernel.reshape(k, co)
    if fold:
        weights = xp.concatenate([weights, bias.reshape(1, co).astype(weights.dtype)])
    groups = parallel.image_groups(xp, n, ho * wo * weights.size)
    if len(groups) == 1:
        cols = im2col(pad2d(x, pads), (kh, kw), strides, ones=fold)
        out = cols @ weights
        if bias is not None and not fold:
            out += bias
        if relu:
            xp.maximum(out, 0, out=out)
        return out.reshape(n, ho, wo, co), cols
    rows = ho * wo
    cols = xp.empty((n * rows, weights.shape[0]), dtype=x.dtype)
    out = xp.empty((n * rows, co), dtype=xp.result_type(x.dtype, weights.dtype))

    def part(lo: int, hi: int) -> None:
        c = im2col(pad2d(x[lo:hi], pads), (kh, kw), strides, ones=fold,
                   out=cols[lo * rows : hi * rows])
        o = out[lo * rows : hi * rows]
        xp.matmul(c, weights, out=o)
        if bias is not None and not fold:
            o += bias
        if relu:
            xp.maximum(o, 0, out=o)

    parallel.run_groups(part, groups)
    return out.reshape(n, ho, wo, co), cols


def conv2d_backward_im2col(
    grad_out: Any,
    cols: Any,
    kernel: Any,
    input_shape: tuple[int, ...],
    strides: tuple[int, int],
    pads: Pads,
    need_input_grad: bool = True,
    relu_output: Any | None = None,
) -> tuple[Any | None, Any, Any]:
    """im2col backward from the forward's ``cols``: ``(dX or None, dF, db)``.

    ``dF = cols^T @ dO`` is the correlation of the input with the output
    gradient; ``dX`` scatters ``dO @ F^T`` back over the receptive fields,
    which is the full convolution with the rotated filter, summed tap by tap.
    ``db = sum dO`` is the last row of the same product when ``cols`` ends with
    the ones column (a forward with a bias); otherwise ``1^T dO`` (a GEMV: much
    faster than NumPy's column sums over a tall, narrow matrix). With
    ``relu_output`` (the forward's output after ReLU), ``dO = grad_out *
    (relu_output > 0)``. Split over the images as the forward was; the groups'
    ``dF`` and ``db`` are added in group order (reproducible).
    """
    xp = array_module(grad_out)
    kh, kw, ci, co = kernel.shape
    k = kh * kw * ci
    n, ho, wo, _ = grad_out.shape
    rows = ho * wo
    (t, b), (left, r) = pads
    h, w = input_shape[1], input_shape[2]
    padded_shape = (n, h + t + b, w + left + r, ci)
    groups = parallel.image_groups(xp, n, rows * cols.shape[1] * co)
    dxp = xp.empty(padded_shape, dtype=grad_out.dtype) if need_input_grad else None

    def part(lo: int, hi: int) -> Any:
        g2 = grad_out[lo:hi].reshape((hi - lo) * rows, co)
        if relu_output is not None:
            g2 = g2 * (relu_output[lo:hi].reshape(g2.shape) > 0)
        c = cols[lo * rows : hi * rows]
        dk = c.T @ g2
        if c.shape[1] == k:
            dk = xp.concatenate([dk, (xp.ones(c.shape[0], dtype=g2.dtype) @ g2)[None]])
        if dxp is not None:
            dcols = g2 @ kernel.reshape(k, co).T
            dxp[lo:hi] = col2im(dcols, (hi - lo,) + padded_shape[1:], (kh, kw), strides,
                                (ho, wo))
        return dk

    parts = parallel.run_groups(part, groups)
    dk = parts[0]
    for more in parts[1:]:  # fixed order: reproducible
        dk = dk + more
    dkernel = dk[:k].reshape(kh, kw, ci, co)
    dbias = dk[k]
    if dxp is None:
        return None, dkernel, dbias
    return unpad2d(dxp, pads, (h, w)), dkernel, dbias


#: Smallest ``C_in`` for which the Winograd path beats im2col: measured by
#: ``benchmarks/tune_thresholds.py`` on a 2-core x86-64 machine (Winograd wins
#: for the seed model's C_in = 16 and 128).
WINOGRAD_MIN_CHANNELS = 8

#: Smallest number of output pixels (batch x height x width) for Winograd:
#: below it (batch-1 inference) im2col's single GEMM is faster; Winograd's
#: transformed filters are several times the kernel's size, and reading them
#: costs more than the multiplications they save (``benchmarks/tune_thresholds.py``).
WINOGRAD_MIN_PIXELS = 512

#: Wide layers (at least ``WINOGRAD_WIDE_CHANNELS`` input channels) take Winograd
#: from ``WINOGRAD_WIDE_MIN_PIXELS`` output pixels instead of
#: ``WINOGRAD_MIN_PIXELS``: their products saved outweigh reading the transformed
#: filters at smaller batches. Measured on a 2-core x86-64 machine (inference,
#: BLAS's own threads, best of 300 interleaved calls): 128 -> 256 channels on
#: 12x12 maps (the seed model's conv2d_2), Winograd against im2col 0.78x at batch 3
#: (300 pixels), 0.73x at batch 4, im2col faster at batch 2 (1.09x); 256 -> 256 on
#: 8x8 maps, 0.87x at batch 8 (288 pixels), im2col faster at batch 6 (216 pixels,
#: 1.24x). ``benchmarks/tune_thresholds.py --only wide`` re-measures it.
WINOGRAD_WIDE_CHANNELS = 128
WINOGRAD_WIDE_MIN_PIXELS = 256

#: The implementations :func:`conv2d_forward` dispatches to; ``"auto"`` picks
#: im2col or Winograd with :func:`choose_algorithm`.
IMPLS = ("auto", "reference", "im2col", "winograd")


def choose_algorithm(
    kernel_shape: tuple[int, ...], strides: tuple[int, int], out_pixels: int | None = None
) -> str:
    """``"winograd"`` for 3x3 stride-1 kernels with enough work, else ``"im2col"``.

    Enough work: at least ``WINOGRAD_MIN_CHANNELS`` input channels and
    ``WINOGRAD_MIN_PIXELS`` output pixels (batch x Ho x Wo), or
    ``WINOGRAD_WIDE_MIN_PIXELS`` for a layer with ``WINOGRAD_WIDE_CHANNELS``
    input channels or more.
    """
    kh, kw, ci, _ = kernel_shape
    if not winograd.winograd_applicable((kh, kw), strides) or ci < WINOGRAD_MIN_CHANNELS:
        return "im2col"
    min_pixels = WINOGRAD_WIDE_MIN_PIXELS if ci >= WINOGRAD_WIDE_CHANNELS else WINOGRAD_MIN_PIXELS
    if out_pixels is not None and out_pixels < min_pixels:
        return "im2col"
    return "winograd"


@dataclass
class ConvCache:
    """Everything :func:`conv2d_backward` needs from one forward pass.

    ``impl`` names the implementation that ran (never ``"auto"``); ``data`` is
    its own record: the input (reference), the im2col matrix (im2col) or a
    :class:`~cnnlab.ops.winograd.WinogradCache`. ``relu_output`` is set when
    the forward applied ReLU, whose mask the backward applies first.
    """

    impl: str
    data: Any
    kernel: Any
    input_shape: tuple[int, ...]
    strides: tuple[int, int]
    pads: Pads
    relu_output: Any | None = None


def winograd_filter(kernel: Any, m: int, filter_cache: dict | None) -> Any:
    """:func:`winograd.filter_transform` of ``kernel``, memoised in ``filter_cache``.

    The cache (a dict the caller owns, e.g. one per layer) keeps a copy of the
    kernel it transformed and is used only while the kernel is still equal
    to that copy, element for element; so weights changed in place (by an
    optimizer or by hand) are always seen. Comparing costs a fraction of the
    transform (which matters for small inference batches).
    """
    if filter_cache is None:
        return winograd.filter_transform(kernel, m)
    xp = array_module(kernel)
    hit = filter_cache.get(("winograd", m))
    if hit is not None and hit[0].dtype == kernel.dtype and xp.array_equal(hit[0], kernel):
        return hit[1]
    u = winograd.filter_transform(kernel, m)
    filter_cache[("winograd", m)] = (kernel.copy(), u)
    return u


def resolve_impl(impl: str, kernel_shape: tuple[int, ...], strides: tuple[int, int],
                 out_pixels: int) -> str:
    """The implementation that runs for ``impl``: ``"auto"`` asks
    :func:`choose_algorithm`; ``"winograd"`` where it does not apply (not 3x3
    stride 1) falls back to ``"im2col"``."""
    if impl not in IMPLS:
        raise InvalidArgumentError(f"conv2d: impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        return choose_algorithm(kernel_shape, strides, out_pixels)
    if impl == "winograd" and not winograd.winograd_applicable(kernel_shape[:2], strides):
        return "im2col"
    return impl


def conv2d_forward(
    x: Any,
    kernel: Any,
    bias: Any | None,
    strides: tuple[int, int],
    pads: Pads,
    *,
    impl: str = "auto",
    relu: bool = False,
    keep: bool = True,
    filter_cache: dict | None = None,
) -> tuple[Any, ConvCache | None]:
    """``O = correlate(pad(X), F) + b`` (then ``max(O, 0)`` with ``relu``): ``(output, cache)``.

    ``impl`` is ``"reference"`` (the slides' literal sum), ``"im2col"``,
    ``"winograd"`` (3x3 stride 1; other kernels fall back to im2col) or
    ``"auto"`` (:func:`choose_algorithm`). ``keep=False`` (inference) keeps
    nothing and returns ``None`` for the cache. ``filter_cache`` (see
    :func:`winograd_filter`) saves re-transforming unchanged filters.
    Every implementation gives the same result up to floating-point rounding.
    """
    ho, wo = output_hw(x.shape[1:3], kernel.shape[:2], strides, pads, "kernel")
    impl = resolve_impl(impl, kernel.shape, strides, x.shape[0] * ho * wo)
    if impl == "winograd":
        m = winograd.choose_tile((ho, wo))
        u = winograd_filter(kernel, m, filter_cache)
        out, data = winograd.conv3x3_forward(x, kernel, bias, pads, keep, relu, m=m, u=u)
    else:
        if impl == "reference":
            out, data = conv2d_forward_reference(x, kernel, bias, strides, pads), x
            if relu:
                array_module(out).maximum(out, 0, out=out)
        else:
            out, data = conv2d_forward_im2col(x, kernel, bias, strides, pads, relu)
    if not keep:
        return out, None
    return out, ConvCache(impl, data, kernel, tuple(x.shape), tuple(strides), pads,
                          out if relu else None)


def conv2d_backward(
    grad_out: Any, cache: ConvCache, need_input_grad: bool = True
) -> tuple[Any | None, Any, Any]:
    """Backward of :func:`conv2d_forward` from its cache: ``(dX or None, dF, db)``.

    ``dF = correlate(X, dO)``, ``dX = full_convolution(rot180(F), dO)``, ``db = sum dO``,
    by the implementation the forward used. When the forward applied ReLU,
    ``grad_out`` is the gradient with respect to its output, and
    ``dO = grad_out * (output > 0)``.
    """
    if cache is None:
        raise InvalidArgumentError("conv2d_backward needs the cache of a keep=True forward")
    if cache.impl == "winograd":
        return winograd.conv3x3_backward(grad_out, cache.data, cache.input_shape, cache.pads,
                                         need_input_grad, cache.relu_output)
    if cache.impl == "im2col":
        return conv2d_backward_im2col(grad_out, cache.data, cache.kernel, cache.input_shape,
                                      cache.strides, cache.pads, need_input_grad,
                                      cache.relu_output)
    if cache.relu_output is not None:
        grad_out = grad_out * (cache.relu_output > 0)
    x, kernel = cache.data, cache.kernel
    dk = conv2d_backward_filter_reference(x, grad_out, kernel.shape[:2], cache.strides,
                                          cache.pads)
    db = grad_out.sum(axis=(0, 1, 2))
    if not need_input_grad:
        return None, dk, db
    dx = conv2d_backward_input_reference(grad_out, kernel, x.shape[1:3], cache.strides,
                                         cache.pads)
    return dx, dk, db
