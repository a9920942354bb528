"""Seeded, on-the-fly data augmentation for training batches.

:class:`Augment` turns a channels-last float batch ``(N, H, W, C)`` (values in
[0, 1]) into a new float32 batch of the same shape, each image transformed
independently by up to three opt-in transforms, applied in this order:

1. **flip**: a horizontal flip (the width axis reversed, ``x[:, ::-1]`` per
   image) with probability 1/2;
2. **rotation**: a rotation by an angle drawn uniformly from ``[-r, r]``
   degrees about the image centre ``((H - 1) / 2, (W - 1) / 2)``, by bilinear
   interpolation (:func:`rotate`). A **positive angle turns the picture
   counter-clockwise as displayed** (row 0 at the top), as :func:`numpy.rot90`
   does: ``rotate(x, [90.0])`` equals ``np.rot90(x, 1, axes=(1, 2))`` for a
   square image;
3. **shift**: a translation by whole pixels ``(dy, dx)``, each drawn uniformly
   from the integers in ``[-s, s]`` with ``s = floor(shift * H)`` (rows) or
   ``floor(shift * W)`` (columns); positive ``dy`` moves the picture down,
   positive ``dx`` to the right (:func:`translate`).

Pixels that come from outside the image (a shift's uncovered border, a
rotation's corners) are 0, the background of MNIST-like data. When rotation is
on, the flip is folded into the rotation's sampling coordinates (no extra pass;
the same result up to float rounding), and the shift moves the rotated images
in place.

**Draw order.** :meth:`Augment.draw` takes every random number for the batch up
front from the ``numpy.random.Generator`` it is given, in this fixed order and
only for the enabled transforms:

1. flip: ``flips = rng.random(N) < 0.5`` (N uniforms);
2. rotation: ``angles = rng.uniform(-r, r, N)`` (N uniforms, degrees);
3. shift: ``offsets = rng.integers([-sy, -sx], [sy + 1, sx + 1], (N, 2))``
   (columns ``dy, dx``).

So the numbers drawn depend only on the configuration and the batch's shape: a
seeded run is reproducible, and a resumed run that restores the generator's
state continues exactly as the uninterrupted one would. Enabling only flips
draws exactly N uniforms.

Augmentation is for training batches only: never apply it to validation or
test data (the evaluation must see the data as it is).

>>> import numpy as np
>>> aug = Augment.parse("shift=0.1,rotate=10,flip")
>>> aug
Augment(shift=0.1, rotation=10.0, flip=True)
>>> batch = np.random.default_rng(0).random((4, 28, 28, 1), dtype=np.float32)
>>> out = aug(batch, np.random.default_rng(42))
>>> out.shape, out.dtype
((4, 28, 28, 1), dtype('float32'))
>>> np.array_equal(out, aug(batch, np.random.default_rng(42)))  # same seed, same output
True
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from cnnlab.errors import InvalidArgumentError

__all__ = [
    "DEFAULT_ROTATION",
    "DEFAULT_SHIFT",
    "MAX_ROTATION",
    "MAX_SHIFT",
    "BLOCK_PIXELS",
    "Augment",
    "AugmentParams",
    "bilinear_sample",
    "flip_horizontal",
    "rotate",
    "translate",
]

#: Shift (fraction of the height/width) that ``Augment.parse("shift")`` uses.
DEFAULT_SHIFT = 0.1
#: Largest angle (degrees) that ``Augment.parse("rotate")`` uses.
DEFAULT_ROTATION = 10.0
#: ``shift`` must be below this (a shift of half the image or more leaves little of it).
MAX_SHIFT = 0.5
#: ``rotation`` must be at most this many degrees.
MAX_ROTATION = 45.0

# Command-line names -> Augment field names.
_PARSE_NAMES = {"shift": "shift", "rotate": "rotation", "flip": "flip"}
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def _check_batch(batch: Any, name: str = "batch") -> np.ndarray:
    """``batch`` as an array if it is a 4-D ``(N, H, W, C)`` array of floats."""
    x = np.asarray(batch)
    if x.ndim != 4:
        raise InvalidArgumentError(
            f"{name} must be a 4-D (N, H, W, C) array, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise InvalidArgumentError(
            f"{name} must hold floats (pixel values in [0, 1]), got dtype {x.dtype}")
    return x


def _check_per_image(values: Any, n: int, name: str, dtype: Any, shape: tuple[int, ...]) -> Any:
    """``values`` as an array of ``dtype`` if its shape is ``(n, *shape)``."""
    arr = np.asarray(values)
    if arr.shape != (n, *shape):
        raise InvalidArgumentError(
            f"{name} must have shape {(n, *shape)} (one entry per image), got {arr.shape}")
    return arr.astype(dtype, copy=False)


def flip_horizontal(batch: Any, mask: Any) -> np.ndarray:
    """A new float32 batch: image ``i`` reversed along its width where ``mask[i]``.

    ``out[i] = batch[i, :, ::-1]`` if ``mask[i]`` else ``batch[i]``.

    >>> x = np.arange(6, dtype=np.float32).reshape(2, 1, 3, 1)
    >>> flip_horizontal(x, [True, False])[..., 0]
    array([[[2., 1., 0.]],
    <BLANKLINE>
           [[3., 4., 5.]]], dtype=float32)
    """
    x = _check_batch(batch)
    flips = _check_per_image(mask, x.shape[0], "mask", bool, ())
    out = np.empty(x.shape, np.float32)
    for i, flipped in enumerate(flips.tolist()):
        out[i] = x[i, :, ::-1] if flipped else x[i]
    return out


def translate(batch: Any, offsets: Any) -> np.ndarray:
    """A new float32 batch: image ``i`` moved by ``offsets[i] = (dy, dx)`` whole pixels.

    ``out[i, y + dy, x + dx] = batch[i, y, x]`` where both sides lie in the image;
    every other output pixel is 0. Positive ``dy`` moves the picture down,
    positive ``dx`` to the right. Done by slicing, one image at a time.

    >>> x = np.zeros((1, 3, 3, 1), np.float32); x[0, 0, 0, 0] = 1.0
    >>> translate(x, [[1, 2]])[0, :, :, 0]
    array([[0., 0., 0.],
           [0., 0., 1.],
           [0., 0., 0.]], dtype=float32)
    """
    x = _check_batch(batch)
    moves = _check_per_image(offsets, x.shape[0], "offsets", np.int64, (2,))
    out = np.array(x, np.float32)
    _translate_in_place(out, moves)
    return out


def _translate_in_place(out: np.ndarray, moves: np.ndarray) -> None:
    """:func:`translate` of ``out`` (float32, owned) onto itself."""
    _, h, w, _ = out.shape
    for img, (dy, dx) in zip(out, moves.tolist(), strict=True):
        if abs(dy) >= h or abs(dx) >= w:
            img[...] = 0.0  # moved out of the frame entirely
            continue
        # NumPy copies overlapping slices as if through a temporary.
        img[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
            img[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)])
        if dy > 0:
            img[:dy] = 0.0
        elif dy < 0:
            img[h + dy:] = 0.0
        if dx > 0:
            img[:, :dx] = 0.0
        elif dx < 0:
            img[:, w + dx:] = 0.0


#: Pixels per block of images in :func:`bilinear_sample` and :func:`rotate`: one
#: block's temporaries (a few arrays of this many elements) stay in the CPU's
#: cache and are reused by the allocator. Measured on a 2-core VM (128 images of
#: 32x32x3): 6.9 ms in one block, 3.1 ms in blocks of 16 images.
BLOCK_PIXELS = 1 << 14


def _block_size(pixels_per_image: int) -> int:
    """Images per block for images of ``pixels_per_image`` output pixels."""
    return max(1, BLOCK_PIXELS // max(1, pixels_per_image))


def _value_range(x: np.ndarray) -> tuple[float, float]:
    """``[min(0, x.min()), max(0, x.max())]``: where a bilinear sample of ``x`` can land."""
    if x.size == 0:
        return 0.0, 0.0
    return min(0.0, float(x.min())), max(0.0, float(x.max()))


def bilinear_sample(batch: Any, rows: Any, cols: Any) -> np.ndarray:
    """Sample each image at real-valued pixel coordinates by bilinear interpolation.

    ``out[i, p, q] = value of image i at (rows[i, p, q], cols[i, p, q])``, with
    pixel ``(y, x)`` at integer coordinates (row 0 at the top). With
    ``y0 = floor(r)``, ``x0 = floor(c)``, ``a = r - y0``, ``b = c - x0``::

        out = (1 - a) * (1 - b) * I[y0, x0]     + (1 - a) * b * I[y0, x0 + 1]
            +      a  * (1 - b) * I[y0 + 1, x0] +      a  * b * I[y0 + 1, x0 + 1]

    where ``I`` is 0 outside the image. ``rows`` and ``cols`` have shape
    ``(N, Ho, Wo)``; the result is float32 ``(N, Ho, Wo, C)``. Being a convex
    combination of pixel values and 0, the result is clipped to
    ``[min(0, batch.min()), max(0, batch.max())]``, which removes only float
    rounding overshoot. Integer coordinates return the pixels bit for bit.
    Vectorised: one gather per neighbour over the flattened, zero-bordered
    images, in blocks of :data:`BLOCK_PIXELS` output pixels.

    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(1, 2, 2, 1)
    >>> bilinear_sample(x, [[[0.5, -0.5]]], [[[0.5, 0.0]]])[..., 0]  # centre; half outside
    array([[[2.5, 0.5]]], dtype=float32)
    """
    x = _check_batch(batch)
    r = np.asarray(rows, np.float64)
    q = np.asarray(cols, np.float64)
    if r.ndim != 3 or r.shape[0] != x.shape[0] or q.shape != r.shape:
        raise InvalidArgumentError(
            f"rows and cols must both have shape (N={x.shape[0]}, Ho, Wo), "
            f"got {r.shape} and {q.shape}")
    if not (np.isfinite(r).all() and np.isfinite(q).all()):
        raise InvalidArgumentError("rows and cols must be finite coordinates")
    out = np.zeros((*r.shape, x.shape[3]), np.float32)
    if out.size == 0 or x.size == 0:
        return out
    lo, hi = _value_range(x)
    k = _block_size(r.shape[1] * r.shape[2])
    for s in range(0, x.shape[0], k):
        _bilinear_block(x[s:s + k], r[s:s + k].copy(), q[s:s + k].copy(), out[s:s + k], lo, hi)
    return out


def _bilinear_block(x: np.ndarray, r: np.ndarray, q: np.ndarray, out: np.ndarray,
                    lo: float, hi: float) -> None:
    """:func:`bilinear_sample` of one block into ``out``, clipped to ``[lo, hi]``.

    ``r`` and ``q`` (float64, owned) are overwritten. ``x`` is non-empty.
    """
    n, h, w, c = x.shape
    hp, wp = h + 2, w + 2  # a border of zeros: every neighbour index stays in range
    padded = np.zeros((n, hp, wp, c), np.float32)
    padded[:, 1:-1, 1:-1] = x
    flat = padded.reshape(n * hp * wp, c)
    # Padded coordinates; anything beyond the border reads only border zeros.
    r += 1.0
    q += 1.0
    np.clip(r, 0.0, hp - 1.0, out=r)
    np.clip(q, 0.0, wp - 1.0, out=q)
    y0 = r.astype(np.intp)  # floor, as r >= 0
    x0 = q.astype(np.intp)
    np.minimum(y0, hp - 2, out=y0)
    np.minimum(x0, wp - 2, out=x0)
    r -= y0
    q -= x0
    a = r.astype(np.float32)
    b = q.astype(np.float32)
    # The four weights: w11 = ab, w10 = a(1 - b), w01 = (1 - a)b, w00 = (1 - a)(1 - b).
    w11 = a * b
    w10 = np.subtract(a, w11, out=a)
    w01 = np.subtract(b, w11, out=b)
    w00 = w10 + w01
    w00 += w11
    np.subtract(1.0, w00, out=w00)
    index = y0  # flat row of the top-left neighbour
    index *= wp
    index += x0
    index += (np.arange(n, dtype=np.intp) * (hp * wp))[:, None, None]
    np.take(flat, index, axis=0, out=out, mode="clip")  # indices are in range: no check
    out *= w00[..., None]
    part = np.empty_like(out)
    for offset, weight in ((1, w01), (wp, w10), (wp + 1, w11)):
        np.take(flat[offset:], index, axis=0, out=part, mode="clip")
        part *= weight[..., None]
        out += part
    np.clip(out, lo, hi, out=out)


def rotate(batch: Any, angles: Any, flips: Any = None) -> np.ndarray:
    """A new float32 batch: image ``i`` rotated by ``angles[i]`` degrees about its centre.

    Positive angles turn the picture counter-clockwise as displayed (row 0 at
    the top), as :func:`numpy.rot90` does. Inverse mapping: output pixel
    ``(y, x)``, at offset ``(v, u) = (y - cy, x - cx)`` from the centre
    ``(cy, cx) = ((H - 1) / 2, (W - 1) / 2)``, takes the input's value at::

        row = cy + u * sin(t) + v * cos(t)
        col = cx + u * cos(t) - v * sin(t)

    by :func:`bilinear_sample` (0 outside the image). An angle of 0 returns the
    image bit for bit; 90 on a square image gives ``np.rot90`` (to rounding).

    ``flips`` (optional, ``(N,)`` bool) flips image ``i`` horizontally first,
    folded into the sampling (``col -> W - 1 - col``) so it costs no extra pass:
    the same as ``rotate(flip_horizontal(batch, flips), angles)`` up to rounding.

    >>> x = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32).reshape(1, 2, 2, 1)
    >>> np.round(rotate(x, [90.0])[0, :, :, 0], 6)  # 2 was top right, now top left
    array([[2., 4.],
           [1., 3.]], dtype=float32)
    """
    x = _check_batch(batch)
    n, h, w, _ = x.shape
    theta = np.deg2rad(_check_per_image(angles, n, "angles", np.float64, ()))
    if not np.isfinite(theta).all():
        raise InvalidArgumentError("angles must be finite numbers of degrees")
    sin = np.sin(theta)[:, None, None]
    cos = np.cos(theta)[:, None, None]
    # A flipped image samples column W - 1 - col: its offset u from cx changes sign.
    sign = np.ones(n) if flips is None else np.where(
        _check_per_image(flips, n, "flips", bool, ()), -1.0, 1.0)
    sign = sign[:, None, None]
    out = np.empty(x.shape, np.float32)
    if x.size == 0:
        return out
    lo, hi = _value_range(x)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    v = (np.arange(h) - cy)[None, :, None]
    u = (np.arange(w) - cx)[None, None, :]
    k = _block_size(h * w)
    for s in range(0, n, k):
        blk = slice(s, s + k)
        rows = u * sin[blk] + v * cos[blk]
        rows += cy
        cols = u * cos[blk] - v * sin[blk]
        cols *= sign[blk]
        cols += cx
        _bilinear_block(x[blk], rows, cols, out[blk], lo, hi)
    return out


class AugmentParams(NamedTuple):
    """One batch's random parameters; ``None`` for a transform that is off."""

    #: ``(N,)`` bool: which images are flipped.
    flips: np.ndarray | None
    #: ``(N,)`` float64: each image's rotation in degrees (positive: counter-clockwise).
    angles: np.ndarray | None
    #: ``(N, 2)`` int64: each image's shift ``(dy, dx)`` in pixels.
    offsets: np.ndarray | None


def _check_real(value: Any, name: str, lo: float, hi: float, hi_open: bool, what: str) -> float:
    """``value`` as a float if it is a finite real number in ``[lo, hi]`` (or ``[lo, hi)``)."""
    ok = (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
          and math.isfinite(value) and lo <= value and (value < hi if hi_open else value <= hi))
    if not ok:
        interval = f"[{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise InvalidArgumentError(
            f"Augment: {name} must be {what} in {interval}, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class Augment:
    """Random flips, rotations and shifts of training images, each opt-in.

    Args:
        shift: the largest shift, as a fraction of the image's height (for the
            rows) and width (for the columns), in ``[0, 0.5)``: 0.1 moves a
            28x28 image by up to ``floor(2.8) = 2`` pixels each way, each
            whole-pixel offset in ``[-2, 2]`` equally likely. 0 turns it off.
        rotation: the largest angle in degrees, in ``[0, 45]``; angles are
            uniform in ``[-rotation, rotation]``. 0 turns it off.
        flip: flip each image horizontally with probability 1/2.

    Call it as ``aug(batch, rng)`` on a float ``(N, H, W, C)`` batch with a
    ``numpy.random.Generator``: the result is a new float32 array of the same
    shape (the input is never written to and may be read-only); the order of
    the transforms (flip, rotate, shift) and of the random draws is in the
    module's docstring. ``bool(aug)`` is false when nothing is enabled, and
    then ``aug(batch, rng)`` draws nothing and returns a float32 copy.

    >>> Augment(shift=0.1, flip=True)
    Augment(shift=0.1, rotation=0.0, flip=True)
    >>> bool(Augment()), str(Augment(rotation=10)), Augment.parse("none") == Augment()
    (False, 'rotate=10.0', True)
    >>> Augment(shift=0.5)
    Traceback (most recent call last):
    ...
    cnnlab.errors.InvalidArgumentError: Augment: shift must be a fraction ... in [0, 0.5), got 0.5
    """

    shift: float = 0.0
    rotation: float = 0.0
    flip: bool = False

    def __post_init__(self) -> None:
        shift = _check_real(self.shift, "shift", 0.0, MAX_SHIFT, True,
                            "a fraction of the image size")
        rotation = _check_real(self.rotation, "rotation", 0.0, MAX_ROTATION, False,
                               "a number of degrees")
        if not isinstance(self.flip, (bool, np.bool_)):
            raise InvalidArgumentError(f"Augment: flip must be True or False, got {self.flip!r}")
        object.__setattr__(self, "shift", shift)
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "flip", bool(self.flip))

    def __bool__(self) -> bool:
        return self.shift > 0 or self.rotation > 0 or self.flip

    def __str__(self) -> str:
        """The command-line form, which :meth:`parse` reads back: ``"shift=0.1,flip"``."""
        parts = []
        if self.shift > 0:
            parts.append(f"shift={self.shift!r}")
        if self.rotation > 0:
            parts.append(f"rotate={self.rotation!r}")
        if self.flip:
            parts.append("flip")
        return ",".join(parts) or "none"

    # -- the command line and configs ------------------------------------------------

    @classmethod
    def parse(cls, text: str) -> Augment:
        """An :class:`Augment` from the ``--augment`` text.

        A comma-separated list of ``shift[=fraction]``, ``rotate[=degrees]`` and
        ``flip`` (``flip=false`` also accepted), case and spaces ignored; a name
        without a value takes its default (``shift=0.1``, ``rotate=10``).
        ``"none"`` or ``""`` turns augmentation off.

        >>> Augment.parse("shift,rotate,flip")
        Augment(shift=0.1, rotation=10.0, flip=True)
        >>> Augment.parse("shift=0.2, rotate=5")
        Augment(shift=0.2, rotation=5.0, flip=False)
        >>> Augment.parse("blur")
        Traceback (most recent call last):
        ...
        cnnlab.errors.InvalidArgumentError: augment: unknown transform 'blur' in 'blur'; known: ...
        """
        if not isinstance(text, str):
            raise InvalidArgumentError(f"augment must be a string, got {type(text).__name__}")
        spec = text.strip().lower()
        if spec in ("", "none"):
            return cls()
        known = "known: shift, rotate, flip (or none)"
        kwargs: dict[str, Any] = {}
        for item in spec.split(","):
            name, has_value, value = (s.strip() for s in item.partition("="))
            if not name:
                raise InvalidArgumentError(
                    f"augment: empty transform in {text!r}; expected a comma-separated list, "
                    f"{known}")
            if name == "none":
                raise InvalidArgumentError(
                    f"augment: 'none' cannot be combined with other transforms, got {text!r}")
            if name not in _PARSE_NAMES:
                raise InvalidArgumentError(
                    f"augment: unknown transform {name!r} in {text!r}; {known}")
            field = _PARSE_NAMES[name]
            if field in kwargs:
                raise InvalidArgumentError(f"augment: {name} given twice in {text!r}")
            if field == "flip":
                if has_value and value not in _TRUE | _FALSE:
                    raise InvalidArgumentError(
                        f"augment: flip takes no value (or true/false), got flip={value!r}")
                kwargs[field] = not has_value or value in _TRUE
            elif not has_value:
                kwargs[field] = DEFAULT_SHIFT if field == "shift" else DEFAULT_ROTATION
            else:
                try:
                    kwargs[field] = float(value)
                except ValueError:
                    raise InvalidArgumentError(
                        f"augment: {name} needs a number, got {name}={value!r}") from None
        return cls(**kwargs)

    def get_config(self) -> dict[str, Any]:
        """A JSON-ready dict that :meth:`from_config` turns back into this object.

        >>> Augment(shift=0.1, flip=True).get_config()
        {'shift': 0.1, 'rotation': 0.0, 'flip': True}
        """
        return {"shift": self.shift, "rotation": self.rotation, "flip": self.flip}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Augment:
        """The :class:`Augment` a :meth:`get_config` dict describes (missing keys: off)."""
        if not isinstance(config, Mapping):
            raise InvalidArgumentError(
                f"Augment config must be a dict, got {type(config).__name__}")
        unknown = sorted(set(config) - {"shift", "rotation", "flip"})
        if unknown:
            raise InvalidArgumentError(
                f"Augment config has unknown keys {unknown}; known: shift, rotation, flip")
        return cls(**config)

    # -- applying it ------------------------------------------------------------------

    def max_shift(self, height: int, width: int) -> tuple[int, int]:
        """The largest shift in whole pixels, ``(floor(shift * H), floor(shift * W))``.

        >>> Augment(shift=0.1).max_shift(28, 32)
        (2, 3)
        """
        # The 1e-9 keeps 0.3 * 10 = 2.9999999999999996 from flooring to 2.
        return math.floor(self.shift * height + 1e-9), math.floor(self.shift * width + 1e-9)

    def draw(self, rng: np.random.Generator, n: int, height: int, width: int) -> AugmentParams:
        """Draw the random parameters for ``n`` images of ``height x width``.

        In this order, each only if its transform is on: ``rng.random(n) < 0.5``
        (flips), ``rng.uniform(-rotation, rotation, n)`` (angles), then
        ``rng.integers([-sy, -sx], [sy + 1, sx + 1], (n, 2))`` (shifts, with
        ``(sy, sx) = max_shift(height, width)``).
        """
        if not isinstance(rng, np.random.Generator):
            raise InvalidArgumentError(
                f"rng must be a numpy.random.Generator (np.random.default_rng(seed)), "
                f"got {type(rng).__name__}")
        flips = rng.random(n) < 0.5 if self.flip else None
        angles = rng.uniform(-self.rotation, self.rotation, n) if self.rotation > 0 else None
        offsets = None
        if self.shift > 0:
            sy, sx = self.max_shift(height, width)
            offsets = rng.integers([-sy, -sx], [sy + 1, sx + 1], (n, 2), dtype=np.int64)
        return AugmentParams(flips, angles, offsets)

    def apply(self, batch: Any, params: AugmentParams) -> np.ndarray:
        """Apply drawn parameters: flip, then rotate, then shift; a new float32 array.

        ``translate(rotate(flip_horizontal(x, flips), angles), offsets)``, each
        step skipped when its parameters are ``None``; the flip is folded into
        :func:`rotate` when both are on.
        """
        x = _check_batch(batch)
        out = None
        if params.angles is not None:  # the flip is folded into the rotation
            out = rotate(x, params.angles, params.flips)
        elif params.flips is not None:
            out = flip_horizontal(x, params.flips)
        if params.offsets is not None:
            if out is None:
                out = translate(x, params.offsets)
            else:  # out is this call's own array: shift it where it is
                _translate_in_place(out, params.offsets)
        return np.array(x, np.float32) if out is None else out

    def __call__(self, batch: Any, rng: np.random.Generator) -> np.ndarray:
        """Augment a training batch ``(N, H, W, C)``: ``apply(batch, draw(rng, N, H, W))``."""
        x = _check_batch(batch)
        n, h, w, _ = x.shape
        return self.apply(x, self.draw(rng, n, h, w))
