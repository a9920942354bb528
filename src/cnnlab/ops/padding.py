"""Padding: how many zeros go around a feature map before a window slides over it.

The slides name three modes; cnnlab also takes explicit amounts.

* ``"valid"``: no padding; the window stays inside the input, so the output
  shrinks by ``k - 1`` (stride 1).
* ``"same"``: the Keras/TensorFlow convention. The output has ``ceil(n / s)``
  positions; the total padding is ``max((out - 1) * s + k - n, 0)`` and, when it
  is odd, the extra pixel goes at the bottom/right. A 2x2 kernel at stride 1
  therefore pads 0 before and 1 after (the slides' first layer).
* ``"full"``: ``k - 1`` on every side, so every input pixel meets every filter
  tap; at stride 1 the output grows by ``k - 1``. The slides' backward pass uses
  it: the input gradient is a *full* convolution.
* an int ``p`` (``p`` on every side), a pair ``(ph, pw)``, or
  ``((top, bottom), (left, right))``.
"""

from __future__ import annotations

from typing import Any

from cnnlab.backend import array_module
from cnnlab.errors import InvalidArgumentError, ShapeError

Pads = tuple[tuple[int, int], tuple[int, int]]
PaddingArg = str | int | tuple[int, int] | tuple[tuple[int, int], tuple[int, int]]

PADDING_MODES = ("valid", "same", "full")


def pair(value: int | tuple[int, int] | list[int], name: str) -> tuple[int, int]:
    """Normalise an int or a 2-sequence of ints to ``(h, w)``, validating it."""
    if isinstance(value, bool):
        raise InvalidArgumentError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        out = (value, value)
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        out = (int(value[0]), int(value[1]))
    else:
        raise InvalidArgumentError(f"{name} must be an int or a pair of ints, got {value!r}")
    return out


def normalise_padding_arg(padding: Any) -> PaddingArg:
    """Validate a padding argument and return it in canonical form."""
    if isinstance(padding, str):
        mode = padding.lower()
        if mode not in PADDING_MODES:
            raise InvalidArgumentError(
                f"unknown padding {padding!r}: expected one of 'valid', 'same', 'full', "
                "an int, (ph, pw) or ((top, bottom), (left, right))"
            )
        return mode
    if isinstance(padding, bool):
        raise InvalidArgumentError(f"padding must be a mode name or ints, got {padding!r}")
    if isinstance(padding, int):
        if padding < 0:
            raise InvalidArgumentError(f"padding must be >= 0, got {padding}")
        return padding
    if isinstance(padding, (tuple, list)) and len(padding) == 2:
        if all(isinstance(p, int) and not isinstance(p, bool) for p in padding):
            if min(padding) < 0:
                raise InvalidArgumentError(f"padding must be >= 0, got {padding}")
            return (int(padding[0]), int(padding[1]))
        if all(isinstance(p, (tuple, list)) and len(p) == 2 for p in padding):
            flat = [q for p in padding for q in p]
            if all(isinstance(q, int) and not isinstance(q, bool) and q >= 0 for q in flat):
                return ((int(flat[0]), int(flat[1])), (int(flat[2]), int(flat[3])))
    raise InvalidArgumentError(
        f"invalid padding {padding!r}: expected 'valid', 'same', 'full', a non-negative int, "
        "(ph, pw) or ((top, bottom), (left, right))"
    )


def _same_1d(n: int, k: int, s: int) -> tuple[int, int]:
    out = -(-n // s)  # ceil(n / s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def resolve_padding(
    padding: PaddingArg,
    kernel_size: tuple[int, int],
    strides: tuple[int, int],
    input_hw: tuple[int, int],
) -> Pads:
    """Turn a padding argument into explicit ``((top, bottom), (left, right))``.

    >>> resolve_padding("same", (2, 2), (1, 1), (28, 28))
    ((0, 1), (0, 1))
    >>> resolve_padding("full", (3, 3), (1, 1), (5, 5))
    ((2, 2), (2, 2))
    """
    p = normalise_padding_arg(padding)
    (kh, kw), (sh, sw), (h, w) = kernel_size, strides, input_hw
    if p == "valid":
        return ((0, 0), (0, 0))
    if p == "same":
        return (_same_1d(h, kh, sh), _same_1d(w, kw, sw))
    if p == "full":
        return ((kh - 1, kh - 1), (kw - 1, kw - 1))
    if isinstance(p, int):
        return ((p, p), (p, p))
    if isinstance(p[0], int):
        return ((p[0], p[0]), (p[1], p[1]))  # type: ignore[return-value]
    return p  # type: ignore[return-value]


def output_size(n: int, k: int, s: int, before: int, after: int) -> int:
    """Positions a window of size ``k`` and stride ``s`` takes on ``n + before + after``."""
    return (n + before + after - k) // s + 1


def output_hw(
    input_hw: tuple[int, int],
    kernel_size: tuple[int, int],
    strides: tuple[int, int],
    pads: Pads,
    what: str = "window",
) -> tuple[int, int]:
    """Spatial output size, or :class:`ShapeError` if the window does not fit."""
    (h, w), (kh, kw), (sh, sw), ((t, b), (left, r)) = input_hw, kernel_size, strides, pads
    if h + t + b < kh or w + left + r < kw:
        raise ShapeError(
            f"a {kh}x{kw} {what} does not fit a {h}x{w} input padded to "
            f"{h + t + b}x{w + left + r}"
        )
    return output_size(h, kh, sh, t, b), output_size(w, kw, sw, left, r)


def pad2d(x: Any, pads: Pads, value: float = 0.0) -> Any:
    """Pad the two spatial axes of an (N, H, W, C) array with ``value``.

    Returns ``x`` itself when nothing is added. (Written out rather than
    ``np.pad``, whose general argument handling costs more than the copy
    for small arrays.)
    """
    (t, b), (left, r) = pads
    if t == b == left == r == 0:
        return x
    xp = array_module(x)
    n, h, w, c = x.shape
    out = xp.empty((n, h + t + b, w + left + r, c), dtype=x.dtype)
    out[:, :t] = value
    out[:, t + h :] = value
    out[:, t : t + h, :left] = value
    out[:, t : t + h, left + w :] = value
    out[:, t : t + h, left : left + w] = x
    return out


def unpad2d(x: Any, pads: Pads, hw: tuple[int, int]) -> Any:
    """Crop what :func:`pad2d` added, returning the original ``hw`` region."""
    (t, _), (left, _) = pads
    return x[:, t : t + hw[0], left : left + hw[1], :]


def dilate2d(x: Any, strides: tuple[int, int]) -> Any:
    """Insert ``s - 1`` zeros between neighbouring pixels of an (N, H, W, C) array.

    A strided convolution's output gradient, dilated this way, lines up with
    the stride-1 formulas of the slides.
    """
    sh, sw = strides
    if sh == sw == 1:
        return x
    xp = array_module(x)
    n, h, w, c = x.shape
    out = xp.zeros((n, (h - 1) * sh + 1, (w - 1) * sw + 1, c), dtype=x.dtype)
    out[:, ::sh, ::sw, :] = x
    return out
