"""The one safe way to open an image file, and to turn it into 8-bit pixels.

Every picture cnnlab reads (a data set's images, a digit for
:func:`cnnlab.preprocess.prepare_image`) is opened by :func:`open_image`:

1. **Header first.** Pillow reads the header only; an image claiming more than
   :data:`MAX_IMAGE_PIXELS` pixels is refused with
   :class:`~cnnlab.errors.ImageTooLargeError` before a single pixel is decoded
   (a "decompression bomb": a small file that decodes to gigabytes). Pillow's
   own ``DecompressionBombWarning`` / ``DecompressionBombError`` become the
   same error.
2. **Formats.** Only :data:`IMAGE_FORMATS` are tried (no EPS, which would run
   Ghostscript, nor any other of Pillow's rarer plugins).
3. **Decode** the first frame (of an animated GIF, WebP or PNG, or a
   multi-page TIFF) and apply the EXIF orientation
   (:func:`PIL.ImageOps.exif_transpose`), so a phone's portrait photo comes
   out upright.
4. A missing, corrupt or truncated file, or one that is not an image, raises
   :class:`~cnnlab.errors.ImageDecodeError` naming the file and the problem.

:func:`to_uint8_array` turns the image into ``(H, W, C)`` uint8 pixels, C = 1
("grayscale") or 3 ("rgb"), whatever Pillow's mode:

- ``L``, ``RGB``: as they are; ``1``: 0 or 255; ``P`` (palette): the
  palette's colours.
- ``LA``, ``RGBA``, ``PA``, and ``L``/``RGB``/``P`` with a transparent colour
  (``info["transparency"]``): alpha composited onto **black**, ``round(value *
  alpha / 255)``; a fully transparent pixel becomes 0. (Black, not white: it
  is the background of MNIST-like data, and a cut-out object on black keeps
  its own colours.)
- ``CMYK`` (a CMYK JPEG too), ``YCbCr``, ``LAB``, ``HSV``: converted to RGB by
  Pillow.
- ``I;16`` (16-bit) and ``I`` (32-bit integers, as Pillow opens 16-bit PGMs):
  clipped to 0..65535, then ``round(value / 257)``, so 65535 -> 255.
- ``F`` (floats): Pillow's own 0..255 scale, clipped and rounded; NaN -> 0.

Grayscale from colour is Pillow's ``L``: ``(19595 R + 38470 G + 7471 B +
32768) >> 16``, i.e. ``0.299 R + 0.587 G + 0.114 B`` rounded; RGB from
grayscale repeats the channel. :func:`is_color_mode` says which of the two an
image is, for a data set's default colour.

>>> import io
>>> from PIL import Image
>>> buf = io.BytesIO()
>>> Image.new("RGBA", (3, 2), (200, 100, 50, 128)).save(buf, "PNG")
>>> img = open_image(buf.getvalue(), name="half-transparent.png")
>>> img.size, is_color_mode(img)
((3, 2), True)
>>> to_uint8_array(img, "rgb")[0, 0]  # composited onto black: value * 128 / 255
array([100,  50,  25], dtype=uint8)
>>> to_uint8_array(img, "grayscale").shape
(2, 3, 1)
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Literal

import numpy as np
from PIL import ExifTags, Image, ImageOps

from cnnlab.errors import ImageDecodeError, ImageTooLargeError, InvalidArgumentError

__all__ = [
    "IMAGE_FORMATS",
    "MAX_IMAGE_PIXELS",
    "Color",
    "ImageHeader",
    "ImageSource",
    "is_color_mode",
    "open_image",
    "probe_image",
    "resize_uint8",
    "to_uint8_array",
]

#: The most pixels (width x height) an image may claim before it is refused
#: undecoded. 64 megapixels (8000 x 8000) decode to 192 MB of RGB; Pillow's own
#: warning comes at 89 megapixels and its error at twice that.
MAX_IMAGE_PIXELS = 64_000_000

#: Pillow's names of the formats :func:`open_image` tries (``PPM`` covers
#: PBM/PGM/PPM). Anything else is "not an image in a supported format".
IMAGE_FORMATS: tuple[str, ...] = ("PNG", "JPEG", "BMP", "GIF", "WEBP", "TIFF", "PPM")

#: What :func:`to_uint8_array` produces: one channel or three.
Color = Literal["grayscale", "rgb"]

#: What :func:`open_image` reads: a path, the encoded bytes, or a binary file object.
ImageSource = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]

_COLOR_MODES = frozenset({"RGB", "RGBA", "RGBa", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"})
_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})
_TRANSPOSED = frozenset({5, 6, 7, 8})  # EXIF orientations that swap width and height
# What ImageOps.exif_transpose does for each EXIF orientation.
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
            4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
            6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}
_ORIENTATION = ExifTags.Base.Orientation
_HEADER_BYTES = 1 << 16  # read before the lock: enough for nearly every header

# Image.open runs under this lock, because turning Pillow's bomb warning into an
# exception changes the process-wide warning filters for a moment; the open
# reads the header only (the pixels are decoded outside the lock, in parallel).
_OPEN_LOCK = threading.Lock()


def _source_and_name(source: ImageSource, name: str | None) -> tuple[str | IO[bytes], str]:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source)), name or "<bytes>"
    if isinstance(source, str | os.PathLike):
        return os.fspath(source), name or os.fspath(source)
    if hasattr(source, "read"):
        return source, name or str(getattr(source, "name", "<stream>"))
    raise InvalidArgumentError(
        f"open_image: expected a path, bytes or a binary file object, got {type(source).__name__}"
    )


def _check_size(width: int, height: int, name: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise ImageTooLargeError(
            f"{name}: the image claims {width}x{height} pixels ({width * height / 1e6:.1f} "
            f"megapixels), more than the limit of {MAX_IMAGE_PIXELS / 1e6:g} megapixels "
            "(cnnlab.imageio.MAX_IMAGE_PIXELS); refused undecoded, as a possible "
            "decompression bomb"
        )


def _open_header(fp: IO[bytes], name: str, formats: Sequence[str] | None) -> Image.Image:
    """``Image.open`` (header only) with the size checked; errors named."""
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fp, formats=None if formats is None else list(formats))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(
            f"{name}: refused undecoded, as a possible decompression bomb: {exc}"
        ) from exc
    except Image.UnidentifiedImageError as exc:
        accepted = ", ".join(formats) if formats is not None else "any Pillow reads"
        raise ImageDecodeError(
            f"{name}: cannot read the image: not an image in a supported format ({accepted})"
        ) from exc
    except OSError as exc:  # an I/O error
        raise ImageDecodeError(f"{name}: cannot read the image: {exc}") from exc
    except MemoryError:
        raise
    except Exception as exc:  # plugins raise many types on a malformed header
        raise ImageDecodeError(
            f"{name}: cannot read the image: malformed header: {type(exc).__name__}: {exc}"
        ) from exc
    try:
        _check_size(*img.size, name)
    except ImageTooLargeError:
        img.__exit__(None, None, None)
        raise
    return img


@contextlib.contextmanager
def _header(
    source: ImageSource, name: str | None, formats: Sequence[str] | None
) -> Iterator[tuple[Image.Image, str]]:
    """The image with its header read and its size checked, and its name; files that
    this opened are closed on exit (a caller's file object stays open)."""
    fp, name = _source_and_name(source, name)
    own: IO[bytes] | None = None
    if isinstance(fp, str):
        try:
            own = open(fp, "rb", buffering=_HEADER_BYTES)  # closed below
            own.peek(1)  # read the first block here, outside the lock
        except FileNotFoundError as exc:
            raise ImageDecodeError(f"{name}: cannot read the image: no such file") from exc
        except OSError as exc:  # a folder, no permission, an I/O error
            if own is not None:
                own.close()
            raise ImageDecodeError(f"{name}: cannot read the image: {exc}") from exc
        fp = own
    try:
        img = _open_header(fp, name, formats)
        try:
            yield img, name
        finally:
            img.__exit__(None, None, None)
    finally:
        if own is not None:
            own.close()


def open_image(
    source: ImageSource,
    *,
    name: str | None = None,
    formats: Sequence[str] | None = IMAGE_FORMATS,
) -> Image.Image:
    """Open and decode an image safely: the size checked first, the first frame, upright.

    Args:
        source: a path, the encoded bytes, or a binary file object (read from
            its current position; not closed).
        name: what error messages call the image; by default its path,
            ``"<bytes>"`` or the file object's name.
        formats: Pillow's format names to try; ``None`` tries every format
            Pillow knows (not recommended for files from strangers).

    Returns:
        A decoded Pillow image, detached from the file (which is closed): the
        first frame, EXIF orientation applied, its mode as stored (``L``,
        ``RGB``, ``P``, ``I;16``, ...; see :func:`to_uint8_array`).

    Raises:
        ImageTooLargeError: the header claims more than :data:`MAX_IMAGE_PIXELS`
            pixels (names the file and its size).
        ImageDecodeError: the file is missing, not an image in ``formats``,
            corrupt or truncated (names the file and the problem).
        InvalidArgumentError: ``source`` is of an unsupported type.

    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("L", (4, 3), 7).save(buf, "PNG")
    >>> open_image(buf.getvalue()).size
    (4, 3)
    >>> open_image(b"not an image", name="notes.png")
    Traceback (most recent call last):
    ...
    cnnlab.errors.ImageDecodeError: notes.png: cannot read the image: not an image in a ...
    """
    with _header(source, name, formats) as (img, name):
        try:
            # The orientation as probe_image reads it, from the header: a TIFF whose
            # EXIF is malformed can lose it once decoded (found by fuzzing), and the
            # size must be the one probe_image announced.
            orientation = None if img.format == "PNG" else _orientation(img)
            img.load()  # the first frame; "image file is truncated" and the like raise here
            if orientation is None:  # a PNG's eXIf may follow the pixels: seen once decoded
                return ImageOps.exif_transpose(img)  # a copy, detached from the file
            method = _UPRIGHT.get(orientation)
            return img.transpose(method) if method is not None else img.copy()
        except MemoryError:
            raise
        except Exception as exc:  # decoders raise OSError, SyntaxError, zlib.error...
            raise ImageDecodeError(
                f"{name}: cannot read the image: corrupt or truncated data: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


# ----------------------------------------------------------------------------- header


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says: size after EXIF orientation, mode, colour."""

    height: int
    width: int
    mode: str
    color: bool
    format: str | None


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation, read without decoding the pixels where the format allows.

    A PNG's EXIF may follow its pixel data, so only an ``eXIf`` chunk that comes
    before it is seen here (the decoder, which reads the whole file, sees both).
    """
    if img.format == "PNG":
        raw = img.info.get("exif")
        if raw is None:
            return 1
        exif = Image.Exif()
        exif.load(raw)
    else:
        exif = img.getexif()
    value = exif.get(_ORIENTATION, 1)
    return value if isinstance(value, int) else 1


def probe_image(
    source: ImageSource,
    *,
    name: str | None = None,
    formats: Sequence[str] | None = IMAGE_FORMATS,
) -> ImageHeader:
    """Read an image's header only: its size (as :func:`open_image` will return it), mode
    and colour, refusing a decompression bomb as :func:`open_image` does.

    Cheap: no pixel is decoded, except for a palette image whose palette is
    stored after its header (then the image is decoded to see the palette).

    Raises:
        ImageTooLargeError, ImageDecodeError: as :func:`open_image`.

    >>> import io
    >>> from PIL import Image
    >>> buf = io.BytesIO()
    >>> Image.new("RGB", (20, 9), (255, 0, 0)).save(buf, "JPEG")
    >>> probe_image(buf.getvalue())
    ImageHeader(height=9, width=20, mode='RGB', color=True, format='JPEG')
    """
    with _header(source, name, formats) as (img, name):
        try:
            width, height = img.size
            if _orientation(img) in _TRANSPOSED:
                width, height = height, width
            return ImageHeader(height, width, img.mode, is_color_mode(img), img.format)
        except MemoryError:
            raise
        except Exception as exc:
            raise ImageDecodeError(
                f"{name}: cannot read the image: malformed metadata: "
                f"{type(exc).__name__}: {exc}"
            ) from exc


def _palette_entries(img: Image.Image) -> np.ndarray:
    """The palette of a ``P``/``PA`` image as (K, 3) RGB, without decoding where possible."""
    pal = img.palette
    if pal is not None and not pal.rawmode and pal.mode in ("RGB", "RGBA"):
        data = np.frombuffer(bytes(pal.palette), dtype=np.uint8)
        n = len(pal.mode)
        return data[: len(data) // n * n].reshape(-1, n)[:, :3]
    values = img.getpalette("RGB") or []  # decodes the image if it must
    return np.asarray(values, dtype=np.uint8).reshape(-1, 3)


def is_color_mode(img: Image.Image) -> bool:
    """Whether an image is in colour (for a data set's default, see :func:`to_uint8_array`).

    ``RGB``, ``RGBA``, ``CMYK``, ``YCbCr``, ``LAB``, ``HSV`` and a palette with
    any non-grey entry are colour; ``L``, ``LA``, ``1``, ``I``, ``I;16``, ``F``
    and a grey palette are not. Only the mode (and the palette) is read, not
    the pixels: an RGB photo of a grey scene still counts as colour.

    >>> from PIL import Image
    >>> is_color_mode(Image.new("RGB", (1, 1))), is_color_mode(Image.new("LA", (1, 1)))
    (True, False)
    >>> is_color_mode(Image.new("L", (1, 1)).convert("P"))  # a grey palette
    False
    """
    if img.mode in _COLOR_MODES:
        return True
    if img.mode in ("P", "PA"):
        entries = _palette_entries(img)
        return bool(((entries != entries[:, :1]).any()) if entries.size else False)
    return False


# ----------------------------------------------------------------------------- pixels


def _composite_on_black(values: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """``round(values * alpha / 255)``: straight alpha composited onto black, in uint8."""
    wide = values.astype(np.uint16) * alpha.astype(np.uint16)[..., None]
    return ((wide + 127) // 255).astype(np.uint8)


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W, 1): Pillow's ``L`` conversion, bit for bit."""
    r, g, b = (rgb[..., i].astype(np.uint32) for i in range(3))
    return ((r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16).astype(np.uint8)[..., None]


def _gray_or_rgb(img: Image.Image) -> np.ndarray:
    """An image's pixels as uint8 (H, W, 1) or (H, W, 3), alpha composited onto black."""
    mode = img.mode
    if mode in _SIXTEEN_BIT:
        values = np.clip(np.asarray(img).astype(np.int64), 0, 65535)
        return ((values + 128) // 257).astype(np.uint8)[..., None]
    if mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
        return np.rint(np.clip(values, 0.0, 255.0)).astype(np.uint8)[..., None]
    transparent = "transparency" in img.info
    if mode in ("LA", "La") or (mode == "L" and transparent):
        la = np.asarray(img if mode == "LA" else img.convert("LA"))
        return _composite_on_black(la[..., :1], la[..., 1])
    if mode in ("RGBA", "RGBa", "PA") or (mode in ("RGB", "P") and transparent):
        rgba = np.asarray(img if mode == "RGBA" else img.convert("RGBA"))
        return _composite_on_black(rgba[..., :3], rgba[..., 3])
    if mode == "L":
        return np.asarray(img)[..., None]
    if mode == "1":
        return np.asarray(img.convert("L"))[..., None]
    return np.asarray(img if mode == "RGB" else img.convert("RGB"))


def to_uint8_array(img: Image.Image, color: Color, *, name: str = "image") -> np.ndarray:
    """An image's pixels as a new uint8 ``(H, W, C)`` array, C = 1 or 3.

    Args:
        img: a decoded Pillow image in any mode (see the module docstring's
            table: 16-bit is scaled to 8, alpha composited onto black, CMYK and
            palettes converted).
        color: ``"grayscale"`` (C = 1; colour becomes Pillow's ``L``
            luminance) or ``"rgb"`` (C = 3; grey is repeated).
        name: what error messages call the image.

    Raises:
        InvalidArgumentError: ``color`` is neither ``"grayscale"`` nor ``"rgb"``.
        ImageDecodeError: Pillow cannot convert the image's mode.

    >>> from PIL import Image
    >>> to_uint8_array(Image.new("LA", (2, 1), (200, 128)), "grayscale")[..., 0]
    array([[100, 100]], dtype=uint8)
    >>> to_uint8_array(Image.new("L", (1, 1), 9), "rgb")
    array([[[9, 9, 9]]], dtype=uint8)
    """
    if color not in ("grayscale", "rgb"):
        raise InvalidArgumentError(f"color must be 'grayscale' or 'rgb', got {color!r}")
    try:
        pixels = _gray_or_rgb(img)
    except (OSError, ValueError) as exc:
        raise ImageDecodeError(f"{name}: cannot convert mode {img.mode}: {exc}") from exc
    if color == "rgb" and pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    if color == "grayscale" and pixels.shape[2] == 3:
        return _luminance(pixels)
    return pixels if pixels.flags.writeable else pixels.copy()


def resize_uint8(pixels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize uint8 ``(H, W, C)`` pixels (C = 1 or 3) to ``size = (height, width)``
    with Pillow's bilinear filter (which anti-aliases when shrinking).

    Returns ``pixels`` itself when it already has that size.

    >>> resize_uint8(np.full((4, 6, 1), 80, dtype=np.uint8), (2, 3))[..., 0]
    array([[80, 80, 80],
           [80, 80, 80]], dtype=uint8)
    """
    height, width = size
    if pixels.shape[:2] == (height, width):
        return pixels
    channels = pixels.shape[2]
    img = Image.fromarray(pixels[..., 0] if channels == 1 else pixels)
    out = np.asarray(img.resize((width, height), Image.Resampling.BILINEAR))
    return out[..., None] if channels == 1 else out


def load_image(source: ImageSource, size: tuple[int, int], color: Color, *,
               name: str | None = None) -> np.ndarray:
    """An image file as uint8 ``(H, W, C)`` pixels of ``size`` ``(H, W)``: what
    training on an image folder sees, and what prediction must see too.

    :func:`open_image`, then :func:`to_uint8_array` in ``color``, then
    :func:`resize_uint8` (Pillow's bilinear filter).
    """
    img = open_image(source, name=name)
    label = name or (os.fspath(source) if isinstance(source, str | os.PathLike) else "image")
    return resize_uint8(to_uint8_array(img, color, name=label), size)
