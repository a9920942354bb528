"""Compiled (Numba) Winograd transforms, each fused with the memory pass around it.

The NumPy path of :mod:`cnnlab.ops.winograd` makes several passes over each
chunk's tile arrays: gather the tiles, two small matrix products per
transform (one per tile axis), untile with the ReLU, the ReLU mask of the
gradient, scatter-add the input gradient's tiles. Those passes are
memory-bound, and on the seed model they took about as long as the GEMMs
between them. Here each transform is one compiled loop over the tiles that
reads its input where it lies and writes its result where the next step
wants it:

* :func:`input_transform`: ``V = B^T d B`` read straight from the padded
  input (no gathered copy of the tiles);
* :func:`output_transform`: ``Y = A^T M A + b`` with the ReLU, written
  straight into the (N, H, W, C) output, cropped to the valid pixels;
* :func:`grad_transform`: ``dM = A (dY * [O > 0]) A^T`` read straight from
  the output gradient and the layer's output, with the bias gradient;
* :func:`input_grad_transform`: ``dd = B dV B^T`` added straight into the
  padded input gradient over the overlapping tiles.

The kernels are generated source, unrolled per tile size
(:mod:`cnnlab.ops.winograd_codegen` says why; :mod:`cnnlab.ops._winograd_kernels`
is the result). The GEMMs between transforms stay in NumPy/BLAS.

They compute the same sums of products as the NumPy path, in the same order
along each tile axis; results agree to floating-point rounding (BLAS may
order a row's products differently, and the kernels may fuse a multiply and
an add). The tests compare both paths with each other and with the slides'
formulas.

When they are used, and when NumPy's path runs instead, is
:mod:`cnnlab.ops.jit`'s business (``CNNLAB_JIT=0`` turns them off).
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np

from cnnlab.ops import jit

#: The kernels' names in :mod:`cnnlab.ops._winograd_kernels`, with ``_{m}`` appended.
KINDS = ("input_transform", "output_transform", "grad_transform", "input_grad_transform")


@cache
def _compiled() -> dict[str, Any] | None:
    """Every kernel, wrapped for Numba (each compiles on its first call), or None
    when Numba cannot be imported."""
    if jit.numba_module() is None:
        return None
    from cnnlab.ops import _winograd_kernels as src

    # the kernels call these by their module-global names: compiled, they are inlined
    src.act = jit.inline(src.act)
    src.gate = jit.inline(src.gate)
    return {name: jit.njit(fn) for name, fn in vars(src).items()
            if name.startswith(KINDS) and callable(fn)}


def available() -> bool:
    """True when the compiled transforms will be used for NumPy arrays."""
    return jit.available()  # Numba importable, compiling here, not turned off


def _kernel(kind: str, m: int) -> Any:
    kernels = _compiled()
    if kernels is None:  # pragma: no cover - callers check available() first
        raise RuntimeError("the compiled Winograd transforms need Numba (pip install numba)")
    return kernels[f"{kind}_{m}"]


@cache
def _coef(m: int, dtype: str) -> np.ndarray:
    from cnnlab.ops import _winograd_kernels as src

    # float64 values of the exact fractions, rounded to dtype: as the NumPy path's matrices
    arr = np.array(getattr(src, f"COEFFICIENTS_{m}"), dtype=dtype)
    arr.flags.writeable = False
    return arr


def input_transform(xpad: np.ndarray, m: int, th: int, tw: int, v: np.ndarray, t0: int) -> None:
    """``v[:, t0 : t0 + tiles]`` = the transformed ``a x a`` tiles of ``xpad`` (nc, Hp, Wp, C),
    tiles in (image, tile row, tile column) order."""
    _kernel("input_transform", m)(xpad, _coef(m, xpad.dtype.str), th, tw, v, t0)


def output_transform(mm: np.ndarray, m: int, bias: np.ndarray | None, relu: bool, th: int,
                     tw: int, out: np.ndarray, part: np.ndarray) -> None:
    """``out`` (nc, Ho, Wo, Co) = [ReLU of] ``A^T M A + bias`` for every tile of ``mm``;
    ``part`` is a (1, m, m, Co) work array for tiles that stick out of the map."""
    if bias is None:
        bias = np.zeros(out.shape[3], dtype=mm.dtype)
    _kernel("output_transform", m)(mm, _coef(m, mm.dtype.str), bias, relu, th, tw, out, part)


def grad_transform(grad: np.ndarray, relu_output: np.ndarray | None, m: int, th: int, tw: int,
                   dm: np.ndarray, db: np.ndarray, part: np.ndarray) -> None:
    """``dm`` = ``A (grad * [relu_output > 0]) A^T`` for every tile (zero beyond the map);
    adds the masked gradient's sum over pixels to ``db``; ``part`` as for
    :func:`output_transform`."""
    masked = relu_output is not None
    _kernel("grad_transform", m)(grad, relu_output if masked else grad, masked,
                                 _coef(m, grad.dtype.str), th, tw, dm, db, part)


def input_grad_transform(dv: np.ndarray, m: int, th: int, tw: int, dx: np.ndarray) -> None:
    """``dx`` (nc, Hp, Wp, Ci) = the sum over overlapping tiles of ``B dV B^T``."""
    _kernel("input_grad_transform", m)(dv, _coef(m, dv.dtype.str), th, tw, dx)
