"""Writes :mod:`cnnlab.ops._winograd_kernels`: the Winograd transforms unrolled, one per tile size.

Run ``python -m cnnlab.ops.winograd_codegen`` after changing the transform
matrices (:func:`cnnlab.ops.winograd.exact_transform_matrices`) or this
generator; ``tests/test_winograd_jit.py`` fails while the committed file
differs from what this writes.

Why generated code: every transform is a "sandwich" of a small constant
matrix ``L`` applied along both tile axes,
``out[p, q] = sum_{r, s} L[p, r] L[q, s] in[r, s]``. Unrolled, with the
matrix entries as constants (zeros dropped, +-1 as an addition or a
subtraction), one tile's whole transform is straight-line code in a loop
over channels. LLVM (through Numba) vectorises that loop across channels
and keeps the tile in registers: each input value is read once and each
output value written once, where a loop over ``L``'s entries re-read and
re-wrote partial sums for every entry.

The sums are taken in the NumPy path's order: along the first tile axis,
then along the second.
"""

# ruff: noqa: E501  (lines of the generated code, as they will read)

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

from cnnlab.ops.winograd import TILE_SIZES, exact_transform_matrices

TARGET = Path(__file__).with_name("_winograd_kernels.py")

Matrix = list[list[Fraction]]


def _transpose(mat: Matrix) -> Matrix:
    return [list(col) for col in zip(*mat, strict=True)]


def coefficients(m: int) -> list[Fraction]:
    """1, then the distinct magnitudes other than 0 and 1 among F(m, 3)'s ``A^T`` and
    ``B^T`` entries in increasing order: the kernels' ``coef`` argument holds them."""
    at, _, bt = exact_transform_matrices(m)
    vals = {abs(v) for mat in (at, bt) for row in mat for v in row}
    return [Fraction(1), *sorted(vals - {Fraction(0), Fraction(1)})]


def _combination(row: list[Fraction], names: list[str], coef: list[Fraction]) -> str:
    """``sum_k row[k] * names[k]`` as source text (zero terms dropped)."""
    out = ""
    for w, name in zip(row, names, strict=True):
        if w == 0:
            continue
        mag = abs(w)
        term = name if mag == 1 else f"k{coef.index(mag)} * {name}"
        if not out:
            out = f"-{term}" if w < 0 else term
        else:
            out += f" - {term}" if w < 0 else f" + {term}"
    return out or "zero"


def _separable(mat: Matrix, load: Callable[[int, int], str], store: Callable[[int, int, str], str],
               coef: list[Fraction], stage1_extra: Callable[[list[str]], list[str]] | None = None,
               stage2_first: list[str] | None = None) -> list[str]:
    """Loops for ``out[p, q] = sum_{r, s} mat[p, r] mat[q, s] in[r, s]`` over channels ``c``.

    First along r, one loop per column s (into ``ub[p, s, c]``, a stage
    buffer), then along s, one loop per row p. Each loop reads a handful of
    values and writes a handful: few enough memory streams for LLVM to
    vectorise it across channels. ``load(r, s)`` is the source expression
    of ``in[r, s]``, ``store(p, q, expr)`` the statement that stores
    ``out[p, q]``.
    """
    rows, cols = len(mat), len(mat[0])
    lines = []
    for s in range(cols):
        xs = [f"e{r}" for r in range(cols)]
        body = [f"{x} = {load(r, s)}" for r, x in enumerate(xs)]
        body += [f"ub[{p}, {s}, c] = " + _combination(mat[p], xs, coef) for p in range(rows)]
        body += stage1_extra(xs) if stage1_extra else []
        lines += ["for c in range(ch):", *_indent(body, 1)]
    for p in range(rows):
        xs = [f"e{s}" for s in range(cols)]
        body = [f"{x} = ub[{p}, {s}, c]" for s, x in enumerate(xs)] + (stage2_first or [])
        body += [store(p, q, _combination(mat[q], xs, coef)) for q in range(rows)]
        lines += ["for c in range(ch):", *_indent(body, 1)]
    return lines


def _with_prologue(m: int, lines: list[str]) -> list[str]:
    """``lines`` (a function: its ``def`` line, then the body) with the coefficients
    and the dtype's zero it uses read from ``coef`` first."""
    text = "\n".join(lines)
    used = [f"k{i} = coef[{i}]" for i in range(1, len(coefficients(m)))
            if re.search(rf"\bk{i}\b", text)]
    if re.search(r"\bzero\b", text):
        used.append("zero = coef[0] * 0")
    comments = [line for line in lines[1:] if line.lstrip().startswith("#")]
    return [lines[0], *comments, *_indent(used, 1), *lines[1 + len(comments):]]


def _indent(lines: list[str], level: int) -> list[str]:
    return ["    " * level + line for line in lines]


def _tile_loops(m: int, t0: str = "") -> list[str]:
    return [
        "    for n in range(nc):",
        "        for ty in range(th):",
        "            for tx in range(tw):",
        f"                tile = {t0}(n * th + ty) * tw + tx",
        f"                y0 = ty * {m}",
        f"                x0 = tx * {m}",
    ]


def _input_transform(m: int) -> list[str]:
    a = m + 2
    _, _, bt = exact_transform_matrices(m)
    loops = _separable(bt, lambda r, s: f"xpad[n, y0 + {r}, x0 + {s}, c]",
                       lambda p, q, e: f"v[{p * a + q}, tile, c] = {e}", coefficients(m))
    return _with_prologue(m, [
        f"def input_transform_{m}(xpad, coef, th, tw, v, t0):",
        f"    # v[i * {a} + j, t0 + tile, c] = sum_(k, l) B^T[i, k] B^T[j, l] xpad[n, {m} ty + k, {m} tx + l, c]",
        "    nc, ch = xpad.shape[0], xpad.shape[3]",
        f"    ub = np.empty(({a}, {a}, ch), dtype=xpad.dtype)",
        *_tile_loops(m, "t0 + "),
        *_indent(loops, 4),
    ])


def _output_transform(m: int) -> list[str]:
    a = m + 2
    at, _, _ = exact_transform_matrices(m)
    loops = _separable(at, lambda r, s: f"mm[{r * a + s}, tile, c]",
                       lambda p, q, e: f"dst[k, i0 + {p}, j0 + {q}, c] = act({e} + b, relu, zero)",
                       coefficients(m), stage2_first=["b = bias[c]"])
    return _with_prologue(m, [
        f"def output_transform_{m}(mm, coef, bias, relu, th, tw, out, part):",
        f"    # out[n, {m} ty + i, {m} tx + j, c] = [ReLU of] bias[c] + sum_(k, l) A^T[i, k] A^T[j, l] mm[k * {a} + l, tile, c];",
        f"    # a tile that sticks out of the map is written to part (1, {m}, {m}, C) and cropped",
        "    nc, ho, wo, ch = out.shape",
        f"    ub = np.empty(({m}, {a}, ch), dtype=mm.dtype)",
        *_tile_loops(m),
        f"                inside = y0 + {m} <= ho and x0 + {m} <= wo",
        "                dst, k, i0, j0 = (out, n, y0, x0) if inside else (part, 0, 0, 0)",
        *_indent(loops, 4),
        "                if not inside:",
        f"                    for i in range(min({m}, ho - y0)):",
        f"                        for j in range(min({m}, wo - x0)):",
        "                            for c in range(ch):",
        "                                out[n, y0 + i, x0 + j, c] = part[0, i, j, c]",
    ])


def _grad_transform(m: int) -> list[str]:
    a = m + 2
    at, _, _ = exact_transform_matrices(m)
    loops = _separable(
        _transpose(at), lambda r, s: f"src[k, i0 + {r}, j0 + {s}, c]",
        lambda p, q, e: f"dm[{p * a + q}, tile, c] = {e}", coefficients(m),
        stage1_extra=lambda xs: ["db[c] += " + " + ".join(xs)])
    # The mask is applied by a copy of the tile into part (in the L1 cache) in loops of
    # their own: reading the mask inside the transform's loops kept LLVM from
    # vectorising them (measured: 1.35 ms against 0.5 ms per chunk of the seed model's
    # conv2d_2)
    return _with_prologue(m, [
        f"def grad_transform_{m}(grad, relu_out, masked, coef, th, tw, dm, db, part):",
        f"    # g = grad * [relu_out > 0] if masked else grad (zero beyond the map); dm[k * {a} + l, tile, c] =",
        "    # sum_(i, j) A^T[i, k] A^T[j, l] g[n, m ty + i, m tx + j, c]; db[c] += sum of g.",
        f"    # Tiles that are masked or stick out of the map are first copied to part (1, {m}, {m}, C).",
        "    nc, ho, wo, ch = grad.shape",
        f"    ub = np.empty(({a}, {m}, ch), dtype=grad.dtype)",
        *_tile_loops(m),
        f"                inside = y0 + {m} <= ho and x0 + {m} <= wo",
        "                if inside and not masked:",
        "                    src, k, i0, j0 = grad, n, y0, x0",
        "                elif inside:",
        f"                    for i in range({m}):",
        f"                        for j in range({m}):",
        "                            for c in range(ch):",
        "                                part[0, i, j, c] = gate(grad[n, y0 + i, x0 + j, c], relu_out[n, y0 + i, x0 + j, c], zero)",
        "                    src, k, i0, j0 = part, 0, 0, 0",
        "                else:",
        f"                    for i in range({m}):",
        f"                        for j in range({m}):",
        "                            real = y0 + i < ho and x0 + j < wo",
        "                            for c in range(ch):",
        "                                g = grad[n, y0 + i, x0 + j, c] if real else zero",
        "                                part[0, i, j, c] = gate(g, relu_out[n, y0 + i, x0 + j, c], zero) if real and masked else g",
        "                    src, k, i0, j0 = part, 0, 0, 0",
        *_indent(loops, 4),
    ])


def _input_grad_transform(m: int) -> list[str]:
    a = m + 2
    _, _, bt = exact_transform_matrices(m)
    loops = _separable(_transpose(bt), lambda r, s: f"dv[{r * a + s}, tile, c]",
                       lambda p, q, e: f"dd[{p}, {q}, c] = {e}", coefficients(m))
    return _with_prologue(m, [
        f"def input_grad_transform_{m}(dv, coef, th, tw, dx):",
        f"    # dx[n, {m} ty + k, {m} tx + l, c] += sum_(i, j) B^T[i, k] B^T[j, l] dv[i * {a} + j, tile, c],",
        "    # summed over the overlapping tiles (dx is zeroed first)",
        "    nc, ch = dx.shape[0], dx.shape[3]",
        f"    ub = np.empty(({a}, {a}, ch), dtype=dv.dtype)",
        f"    dd = np.empty(({a}, {a}, ch), dtype=dv.dtype)",
        "    dx[...] = 0",
        *_tile_loops(m),
        *_indent(loops, 4),
        f"                for i in range({a}):",
        f"                    for j in range({a}):",
        "                        for c in range(ch):",
        "                            dx[n, y0 + i, x0 + j, c] += dd[i, j, c]",
    ])


HEADER = '''"""Winograd transforms for Numba, unrolled per tile size: GENERATED, do not edit.

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
'''

KINDS = (_input_transform, _output_transform, _grad_transform, _input_grad_transform)


def generate() -> str:
    """The source text of :mod:`cnnlab.ops._winograd_kernels`."""
    parts = [HEADER]
    for m in TILE_SIZES:
        parts.append(f"\n# ---------------------------------------------------------------- F({m} x {m}, 3 x 3)\n")
        parts.append(f"COEFFICIENTS_{m} = {tuple(float(c) for c in coefficients(m))!r}\n")
        for kind in KINDS:
            parts.append("\n\n" + "\n".join(kind(m)) + "\n")
    return "".join(parts)


def main() -> int:
    TARGET.write_text(generate(), encoding="utf-8")
    print(f"wrote {TARGET}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
