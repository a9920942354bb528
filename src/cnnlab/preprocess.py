"""Turn an arbitrary picture of a digit into a 28x28 input prepared as MNIST's were.

LeCun, Cortes and Burges describe MNIST's preparation: each NIST digit was
"size normalized to fit in a 20x20 pixel box while preserving [its] aspect
ratio", which anti-aliasing turned into grey levels, and then "centered in a
28x28 image by computing the center of mass of the pixels, and translating the
image so as to position this point at the center of the 28x28 field". MNIST
digits are white (255) on black (0); their centre of mass, in pixel-index
coordinates, averages (14.0, 14.0) with the spread of an integer shift.

:func:`prepare_array` repeats those steps on any grayscale, RGB or RGBA array:

1. **Grayscale.** Luminance ``0.299 R + 0.587 G + 0.114 B`` (as Pillow's ``L``).
2. **Transparency.** A picture with an alpha channel that is not fully opaque
   is composited onto white and onto black, and steps 3-4 run on both; the
   composite whose ink is *sparser* (smaller total after step 3) wins, ties
   going to white. Digits are thin strokes, and compositing onto the wrong
   background turns the background into a large blob of "ink", or leaves no
   ink at all. So black strokes on a transparent canvas are put on white, white
   strokes on black, and a picture whose white paper was made transparent (or
   that has a transparent margin) goes back onto white. Fully transparent
   pixels become background whatever colour they hold.
3. **Polarity.** If the border of the picture is bright (median of the outermost
   rows and columns above 0.5), the picture is dark-on-light and is inverted.
   The border's median level is subtracted, so a grey paper background becomes
   0, and so is three times the border's noise (1.4826 x its median absolute
   deviation, a robust sigma), so JPEG artefacts and paper grain vanish; then
   the ink is scaled so its brightest pixel is 1.
4. **No ink** (the brightest pixel after step 3 less than 0.1 above the
   background) raises :class:`~cnnlab.errors.NoDigitError` ``"no digit found"``.
5. **Crop** to the bounding box of the pixels above 0.05 (and above three
   noise sigmas, for noisy pictures).
6. **Fit** the crop into 20x20, preserving aspect ratio (the larger side becomes
   20 pixels), with Pillow's Lanczos filter, which anti-aliases when shrinking.
7. **Centre** it in 28x28 by an integer shift that puts its centre of mass at
   (14, 14) (row, column in pixel indices), as MNIST's; anything shifted past
   the frame is clipped.

:func:`prepare_image` reads a file, bytes, a file object or a Pillow image,
converts it to an array and calls the same code.

:func:`scale_pixels` is the one definition of "pixel values 0..255 -> [0, 1]"
(``value * (1/255)``, computed in the target dtype): :func:`to_model_input`
(MNIST's uint8 images -> the model's float32 input), the figures, the web demo
and step 1 above all call it.
"""

from __future__ import annotations

import io
import os
from typing import IO, TYPE_CHECKING, Any

import numpy as np
from PIL import Image, ImageOps

from cnnlab.errors import (
    ImageDecodeError,
    InvalidArgumentError,
    NoDigitError,
)
from cnnlab.imageio import open_image
from cnnlab.pixels import scale_pixels  # re-exported: the one pixel scaling

if TYPE_CHECKING:
    pass

__all__ = [
    "FIT_SIZE",
    "FRAME_SIZE",
    "ImageSource",
    "prepare_array",
    "prepare_image",
    "scale_pixels",
    "to_model_input",
]

#: Side of the output image.
FRAME_SIZE = 28
#: Side of the box the digit is fitted into.
FIT_SIZE = 20

_BORDER_BRIGHT = 0.5  # border median above this: dark ink on light background
_MIN_INK = 0.1  # weakest contrast that counts as a digit
_BBOX_THRESHOLD = 0.05  # pixels above this (after normalising to peak 1) are ink
_NOISE_SIGMAS = 3.0  # background noise removed, and again required for the bounding box
_LUMA = np.array([0.299, 0.587, 0.114])

ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | Image.Image | np.ndarray


# ------------------------------------------------------------------------ pixel scale


def to_model_input(images: np.ndarray) -> np.ndarray:
    """Convert uint8 images to the model's input: float32 ``(N, H, W, 1)`` in [0, 1].

    Args:
        images: uint8 ``(N, H, W)``, or one image ``(H, W)`` (gets a batch axis).

    Raises:
        InvalidArgumentError: not uint8, or not 2-D/3-D.

    >>> to_model_input(np.full((2, 2), 255, dtype=np.uint8)).shape
    (1, 2, 2, 1)
    """
    arr = np.asarray(images)
    if arr.dtype != np.uint8:
        raise InvalidArgumentError(f"to_model_input: expected uint8 images, got {arr.dtype}")
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise InvalidArgumentError(
            f"to_model_input: expected (N, H, W) or (H, W) images, got shape {arr.shape}"
        )
    return scale_pixels(arr)[..., None]


# ------------------------------------------------------------------------ to grayscale


def _as_unit_float(arr: np.ndarray, name: str) -> np.ndarray:
    """Map an array's values to float64 in [0, 1]."""
    if arr.dtype == np.bool_:
        return arr.astype(np.float64)
    if arr.dtype == np.uint8:
        return scale_pixels(arr, np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise InvalidArgumentError(
                f"{name}: integer pixel values must lie in 0..255, got {lo}..{hi}"
            )
        return scale_pixels(arr, np.float64)
    if np.issubdtype(arr.dtype, np.floating):
        out = arr.astype(np.float64)
        if not np.isfinite(out).all():
            raise InvalidArgumentError(f"{name}: pixel values contain NaN or infinity")
        lo, hi = float(out.min()), float(out.max())
        if lo < 0 or hi > 255:
            raise InvalidArgumentError(
                f"{name}: float pixel values must lie in [0, 1] (or [0, 255]), got {lo}..{hi}"
            )
        return scale_pixels(out, np.float64) if hi > 1.0 else out
    raise InvalidArgumentError(f"{name}: unsupported pixel dtype {arr.dtype}")


def _to_gray(arr: np.ndarray, name: str) -> list[np.ndarray]:
    """(H, W) or (H, W, C) with C in 1..4 -> float64 (H, W) grayscale in [0, 1].

    Returns one picture, or, when some pixels are transparent, two: the picture
    composited onto white and onto black.
    """
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 2, 3, 4):
        raise InvalidArgumentError(
            f"{name}: expected an image array (H, W) or (H, W, C) with C = 1, 2, 3 or 4, "
            f"got shape {arr.shape}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidArgumentError(f"{name}: empty image of shape {arr.shape}")
    unit = _as_unit_float(arr, name)
    channels = unit.shape[2]
    gray = unit[..., :3] @ _LUMA if channels >= 3 else unit[..., 0]
    if channels in (2, 4):
        alpha = unit[..., -1]
        if alpha.min() < 1.0:
            visible = alpha * gray
            return [visible + (1.0 - alpha), visible]  # on white, on black
    return [gray]


# ------------------------------------------------------------------------------ core


def _center_of_mass(img: np.ndarray) -> tuple[float, float]:
    total = img.sum()
    rows = np.arange(img.shape[0])
    cols = np.arange(img.shape[1])
    return float(img.sum(axis=1) @ rows / total), float(img.sum(axis=0) @ cols / total)


def _ink(gray: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Polarity, background and noise removal: ink in [0, 1] (peak 1) and the bounding-box
    threshold; ``None`` if there is no ink."""
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    level = float(np.median(border))
    if level > _BORDER_BRIGHT:
        ink, level = 1.0 - gray, 1.0 - level
    else:
        ink = gray
    # Noise of the background, robustly from the border: 1.4826 * MAD estimates sigma.
    noise = 1.4826 * float(np.median(np.abs(border - np.median(border))))
    ink = np.clip(ink - level - _NOISE_SIGMAS * noise, 0.0, None)
    peak = float(ink.max())
    if peak < _MIN_INK:
        return None
    ink /= peak
    return ink, max(_BBOX_THRESHOLD, _NOISE_SIGMAS * noise / peak)


def _prepare(arr: Any, name: str) -> np.ndarray:
    found = [ink for ink in map(_ink, _to_gray(np.asarray(arr), name)) if ink is not None]
    if not found:
        raise NoDigitError(f"{name}: no digit found (the image is blank)")
    ink, threshold = min(found, key=lambda candidate: float(candidate[0].sum()))

    mask = ink > threshold
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:  # the noise threshold is above the peak: nothing stands out
        raise NoDigitError(f"{name}: no digit found (the ink does not rise above the noise)")
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]

    h, w = crop.shape
    scale = FIT_SIZE / max(h, w)
    new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
    fitted = Image.fromarray(crop.astype(np.float32)).resize(
        (new_w, new_h), Image.Resampling.LANCZOS
    )
    digit = np.clip(np.asarray(fitted, dtype=np.float64), 0.0, 1.0)
    if digit.sum() <= 0:
        raise NoDigitError(f"{name}: no digit found (the ink vanished when scaled)")

    cy, cx = _center_of_mass(digit)
    center = FRAME_SIZE / 2
    top, left = round(center - cy), round(center - cx)
    out = np.zeros((FRAME_SIZE, FRAME_SIZE), dtype=np.float32)
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + new_h, FRAME_SIZE), min(left + new_w, FRAME_SIZE)
    out[r0:r1, c0:c1] = digit[r0 - top : r1 - top, c0 - left : c1 - left]
    return out


def prepare_array(arr: np.ndarray, *, name: str = "array") -> np.ndarray:
    """Prepare a canvas or image array as MNIST's digits were (see the module docstring).

    Args:
        arr: ``(H, W)`` grayscale, or ``(H, W, C)`` with C = 1 (gray), 2 (gray,
            alpha), 3 (RGB) or 4 (RGBA). uint8 and other integers in 0..255,
            bool, or floats in [0, 1] (floats whose maximum exceeds 1 are read
            as 0..255). Dark-on-light and light-on-dark both work.
        name: what error messages call the picture (``"array: ..."``).

    Returns:
        float32 ``(28, 28)`` in [0, 1], white digit on black, its larger side
        20 pixels, centre of mass at (14, 14).

    Raises:
        InvalidArgumentError: the shape, dtype or value range is not an image's.
        NoDigitError: ``"no digit found"``: the image is blank (a
            :class:`~cnnlab.errors.DataFormatError`).
    """
    return _prepare(arr, name)


# ----------------------------------------------------------------------------- files


def _pil_to_array(img: Image.Image, *, upright: bool = False) -> np.ndarray:
    """A Pillow image -> uint8 (H, W) or (H, W, 4), or float (H, W) in [0, 1].

    ``upright``: the EXIF orientation is already applied (by :func:`open_image`);
    applying it again would re-read EXIF that may be malformed.
    """
    if not upright:
        img = ImageOps.exif_transpose(img) or img
    has_alpha = "A" in img.getbands() or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        return np.asarray(img.convert("RGBA"))
    if img.mode.startswith("I"):
        values = np.asarray(img, dtype=np.float64)
        full = 65535.0 if img.mode.startswith("I;16") or values.max() > 255 else 255.0
        return np.clip(values / full, 0.0, 1.0)
    if img.mode == "F":
        return np.asarray(img, dtype=np.float64)
    return np.asarray(img.convert("L"))


def _decode(fp: str | os.PathLike[str] | IO[bytes], name: str) -> np.ndarray:
    """Open through :func:`cnnlab.imageio.open_image` (size checked first, first frame,
    EXIF orientation applied), then convert."""
    img = open_image(fp, name=name)
    try:
        return _pil_to_array(img, upright=True)
    except (OSError, ValueError) as exc:
        raise ImageDecodeError(f"{name}: cannot convert the image: {exc}") from exc


def prepare_image(source: ImageSource | IO[bytes], *, name: str | None = None) -> np.ndarray:
    """Read a digit from a PNG, JPEG (or any format Pillow reads) and prepare it like MNIST.

    The picture can have any size, colour mode and polarity (black on white or
    white on black); transparency and EXIF orientation are handled. See the
    module docstring for the procedure; it is the code of :func:`prepare_array`.

    Args:
        source: a path, the encoded bytes, a binary file object, a Pillow image,
            or an array (as :func:`prepare_array`).
        name: what error messages call the picture; by default its path,
            ``"<bytes>"``, the file object's name, ``"image"`` or ``"array"``.

    Returns:
        float32 ``(28, 28)`` in [0, 1], white digit on black.

    Raises:
        ImageDecodeError: the file is missing, unreadable or not an image (names
            the file).
        NoDigitError: ``"no digit found"``: the image is blank. Both are
            :class:`~cnnlab.errors.DataFormatError`.
        InvalidArgumentError: ``source`` is of an unsupported type, or an
            array source is not an image (see :func:`prepare_array`).
    """
    if isinstance(source, np.ndarray):
        return _prepare(source, name or "array")
    if isinstance(source, Image.Image):
        name = name or "image"
        try:
            arr = _pil_to_array(source)
        except MemoryError:
            raise
        except Exception as exc:  # OSError, ValueError; SyntaxError from malformed EXIF
            raise ImageDecodeError(
                f"{name}: cannot convert the image: {type(exc).__name__}: {exc}"
            ) from exc
    elif isinstance(source, bytes | bytearray | memoryview):
        name = name or "<bytes>"
        arr = _decode(io.BytesIO(bytes(source)), name)
    elif isinstance(source, str | os.PathLike):
        name = name or os.fspath(source)
        arr = _decode(source, name)
    elif hasattr(source, "read"):
        name = name or str(getattr(source, "name", "<stream>"))
        arr = _decode(source, name)
    else:
        raise InvalidArgumentError(
            f"prepare_image: expected a path, bytes, a file object, a PIL image or an array, "
            f"got {type(source).__name__}"
        )
    return _prepare(arr, name)


def model_input(source: ImageSource | IO[bytes], model: Any, *,
                name: str | None = None) -> np.ndarray:
    """One image file as one example for ``model``: shaped ``model.input_shape``.

    Follows ``model.preprocessing`` (kept in model files by training):
    ``{"mode": "digit"}`` prepares a digit as MNIST's were (:func:`prepare_image`,
    float32 in [0, 1]); ``{"mode": "resize", "size": [H, W], "color": ...}``
    decodes, turns upright, converts and resizes exactly as training on an
    image folder did (:func:`cnnlab.imageio.load_image`, uint8 pixels). A model
    without the entry is taken as "digit" if it reads 28x28 grayscale, else
    "resize" to its input.

    Raises:
        ImageDecodeError, ImageTooLargeError, NoDigitError: as the steps do,
            naming the file.
    """
    from cnnlab import imageio

    height, width, channels = model.input_shape
    prep = model.preprocessing or (
        {"mode": "digit"} if (height, width, channels) == (28, 28, 1)
        else {"mode": "resize", "size": [height, width]}
    )
    if prep["mode"] == "digit":
        return prepare_image(source, name=name)[:, :, None]
    color = "rgb" if channels == 3 else "grayscale"
    if isinstance(source, np.ndarray | Image.Image):
        raise InvalidArgumentError("model_input: expected a path, bytes or a file object")
    return imageio.load_image(source, (height, width), color, name=name)
