"""The browser demo's web application: a JSON API around a model, and the page.

:func:`create_app` wraps any built :class:`~cnnlab.Sequential` that takes
images, ``input_shape`` ``(H, W, 1)`` or ``(H, W, 3)``, in a FastAPI app. How a
picture becomes the model's input follows ``model.preprocessing``
(:func:`input_spec`): ``"digit"`` (the slides' MNIST preparation, for 28x28
grayscale digit models; the default for ``(28, 28, 1)``) or ``"resize"``
(decoded, EXIF-oriented, resized bilinear to H x W, grayscale or RGB, by
:func:`cnnlab.preprocess.model_input`; the default for every other shape).

``GET /``
    The page (``static/index.html``; no external resources): drop or choose an
    image file for any model; a drawing canvas for digit models.
``GET /api/model``
    :class:`ModelInfo`: name, shapes, parameter count, class names, the
    preparation of pictures, what the page offers (``drawing``, ``pixels``,
    ``test_images``), the layer list, the Keras-style summary, and which layers
    have feature maps shown.
``POST /api/predict``
    :class:`PredictRequest` -> :class:`Prediction`. Give exactly one of
    ``image`` (a base64 ``data:image/png;base64,...`` URL, or bare base64, of a
    PNG/JPEG/GIF/BMP/WebP at most 2000x2000 pixels) or ``pixels`` (digit models
    only: an HxW list of rows of numbers in [0, 255], H and W at most 2000).
    For a digit model, with ``prepare`` true (the default) the picture is
    prepared as MNIST's digits were by :func:`cnnlab.preprocess.prepare_image` /
    :func:`~cnnlab.preprocess.prepare_array`, the code ``cnnlab predict`` uses;
    with ``prepare`` false, ``pixels`` must already be a 28x28 MNIST-style image
    (white digit on black) and is only scaled to [0, 1]
    (:func:`cnnlab.preprocess.scale_pixels`). For a resize model, ``image`` goes
    through :func:`cnnlab.preprocess.model_input`. The answer holds the class
    probabilities with the class names (``classes``, ``prediction_name``), the
    input the model saw (``input``, ``input_image``) and the feature maps.
``GET /api/random-test-image[?index=N]``
    :class:`RandomTestImage`: an MNIST test image (random, or number ``N``),
    its true label, and the model's prediction for it as it is (MNIST's
    images are already prepared). Digit models with 10 classes named 0..9 only
    (``ModelInfo.test_images``); 404 for the others.

Every response to a bad request is a 4xx with a JSON body ``{"detail": "..."}``
(a human-readable message; schema errors add ``errors``, a list of
``{"loc", "msg", "type"}``): 400 malformed data (invalid JSON, bad base64, not an image),
404 no test images for this model, 413 too large (body over 2 MB, image over
2000x2000, a decompression bomb: refused from its header, before decoding),
415 a body that is not JSON, 422 a request that does not fit the schema or the
model (``pixels`` for a model that is not a digit model), or a picture without a
digit (``"no digit found"``).

The model is shared by FastAPI's worker threads; its layers keep per-call
state (caches, shapes), so every forward pass runs under one lock. Decoding and
preparing images run outside it, in parallel.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import json
import random
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cnnlab import imageio, preprocess
from cnnlab.errors import (
    CnnlabError,
    DataFormatError,
    ImageDecodeError,
    ImageTooLargeError,
    InvalidArgumentError,
    NoDigitError,
)
from cnnlab.layers import AveragePooling2D, Conv2D, MaxPooling2D
from cnnlab.ops import parallel
from cnnlab.preprocess import prepare_array, prepare_image, scale_pixels, to_model_input
from cnnlab.zoo import small_cnn

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_IMAGE_SIDE",
    "FeatureMap",
    "InputSpec",
    "LayerInfo",
    "ModelInfo",
    "PredictRequest",
    "Prediction",
    "RandomTestImage",
    "class_names_of",
    "create_app",
    "describe_model",
    "input_spec",
    "small_model",
]

#: Largest request body accepted, in bytes (413 beyond).
MAX_BODY_BYTES = 2 * 1024 * 1024
#: Seconds a client has to send a whole request body (408 beyond): a client that
#: trickles its upload, or stops half-way, does not hold a request for ever.
BODY_TIMEOUT_S = 30.0
#: Largest image side accepted, in pixels, for ``image`` and ``pixels`` (413 beyond).
MAX_IMAGE_SIDE = 2000
#: Image formats ``image`` may hold.
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
#: Layer types whose outputs are returned as feature maps.
MAP_LAYERS = (Conv2D, MaxPooling2D, AveragePooling2D)

STATIC_DIR = Path(__file__).parent / "static"
_DATA_URL = re.compile(r"data:image/[a-z0-9.+-]+;base64", re.IGNORECASE)

Pixel = Annotated[float, Field(strict=True, ge=0, le=255, allow_inf_nan=False)]


# ----------------------------------------------------------------------------- schemas


class PredictRequest(BaseModel):
    """One picture: exactly one of ``image`` and ``pixels`` (``pixels``: digit models only)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"image": "data:image/png;base64,iVBORw0KGgo..."},
                {"pixels": [[0, 0, 255], [0, 255, 0], [0, 255, 0]]},
            ]
        },
    )

    image: str | None = Field(
        None,
        description=(
            "A PNG (or JPEG, GIF, BMP, WebP) as a data URL 'data:image/png;base64,...' or "
            f"bare base64; at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels, any size and "
            "colour mode. A digit model prepares it as MNIST's digits were (any polarity); "
            "other models resize it to their input size (model.preprocessing)."
        ),
    )
    pixels: list[list[Pixel]] | None = Field(
        None,
        description=(
            "Digit models only: a grayscale image as H rows of W numbers in [0, 255] "
            f"(H, W at most {MAX_IMAGE_SIDE}). Light-on-dark or dark-on-light."
        ),
    )
    prepare: bool = Field(
        True,
        description=(
            "Prepare the picture as MNIST's digits were (crop, fit in 20x20, centre by mass "
            "in 28x28), as `cnnlab predict` does. false: `pixels` is already a 28x28 "
            "MNIST-style image (white digit on black) and is only scaled to [0, 1]."
        ),
    )
    include_maps: bool = Field(
        True, description="Return the feature maps of the convolution and pooling layers."
    )
    include_input: bool = Field(
        True,
        description=(
            "Return the model's input as numbers ('input'); false leaves it empty (large "
            "inputs make large answers). 'input_image' is always returned."
        ),
    )

    @model_validator(mode="after")
    def _one_source(self) -> PredictRequest:
        if (self.image is None) == (self.pixels is None):
            raise ValueError("give exactly one of 'image' and 'pixels'")
        if self.pixels is not None:
            rows = self.pixels
            if not rows or not rows[0]:
                raise ValueError("'pixels' is empty: expected H rows of W numbers")
            width = len(rows[0])
            ragged = next((i for i, r in enumerate(rows) if len(r) != width), None)
            if ragged is not None:
                raise ValueError(
                    f"'pixels' rows differ in length: row 0 has {width} values, "
                    f"row {ragged} has {len(rows[ragged])}"
                )
        if not self.prepare and self.image is not None:
            raise ValueError("'prepare': false needs 'pixels' (a 28x28 image), not 'image'")
        return self


class FeatureMap(BaseModel):
    """The output of one convolution or pooling layer for the input image."""

    layer: str = Field(description="The layer's name, e.g. 'conv2d'.")
    type: str = Field(description="The layer's type, e.g. 'Conv2D' or 'MaxPooling2D'.")
    shape: list[int] = Field(description="[H, W, C]: C maps of H x W.")
    image: str = Field(
        description=(
            "A grayscale PNG data URL, W wide and C*H high: map c is the H rows starting at "
            "row c*H. Each map is scaled on its own: black = min(0, lo), white = hi."
        )
    )
    min: list[float] = Field(description="Per map: its smallest value (lo).")
    max: list[float] = Field(description="Per map: its largest value (hi).")


class Prediction(BaseModel):
    """The model's answer for one image."""

    prediction: int = Field(description="The most probable class (its index).")
    prediction_name: str = Field(
        description="The most probable class's name ('7' for a model without class names)."
    )
    probabilities: list[float] = Field(description="One probability per class; they sum to 1.")
    classes: list[str] = Field(
        description="The class names, in the order of 'probabilities' (the indices as "
        "strings for a model without names)."
    )
    input: list[list[float]] | list[list[list[float]]] = Field(
        description=(
            "The image the model saw, values in [0, 1]: H rows of W values for a grayscale "
            "model (a digit model: 28x28, white digit on black), H rows of W [R, G, B] for a "
            "colour model. Empty when 'include_input' is false."
        )
    )
    input_image: str = Field(
        description="The image the model saw as a PNG data URL, W x H (grayscale or RGB)."
    )
    feature_maps: list[FeatureMap] = Field(
        description="One entry per Conv2D and pooling layer, in order (empty if not asked)."
    )


class RandomTestImage(Prediction):
    """An MNIST test image, its label, and the model's prediction for it."""

    index: int = Field(description="Its index in the MNIST test set.")
    label: int = Field(description="Its true class.")
    image: str = Field(description="The 28x28 test image as a grayscale PNG data URL.")


class LayerInfo(BaseModel):
    """One layer of the model."""

    name: str
    type: str
    output_shape: list[int]
    params: int
    feature_maps: bool = Field(description="Whether /api/predict returns its feature maps.")


class InputSpec(BaseModel):
    """How a picture becomes the model's input."""

    mode: str = Field(
        description="'digit': prepared as MNIST's digits were (crop, fit in 20x20, centre "
        "by mass in 28x28, white on black); 'resize': resized bilinear to size, as is."
    )
    size: list[int] = Field(description="[H, W]: the input's size.")
    color: str = Field(description="'grayscale' or 'rgb'.")


class ModelInfo(BaseModel):
    """What the server runs."""

    name: str
    source: str | None = Field(description="The model file, if loaded from one.")
    input_shape: list[int]
    output_shape: list[int]
    num_classes: int
    class_names: list[str] = Field(
        description="One name per class (the indices as strings for a model without names)."
    )
    preprocessing: InputSpec
    drawing: bool = Field(description="Whether the page offers the drawing canvas (digit models).")
    pixels: bool = Field(description="Whether /api/predict accepts 'pixels' (digit models).")
    test_images: bool = Field(
        description="Whether /api/random-test-image serves MNIST test digits for this model."
    )
    params: int
    layers: list[LayerInfo]
    summary: str = Field(description="Keras-style summary table.")


class ErrorResponse(BaseModel):
    """The body of every 4xx answer."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class ApiError(Exception):
    """A request the API refuses: ``status`` and a message for the client."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# ---------------------------------------------------------------------- body size limit


class BodySizeLimit:
    """ASGI middleware: answer 413 to any request whose body exceeds ``max_bytes``,
    and 408 to one whose body takes longer than ``timeout`` seconds to arrive.

    Checks ``Content-Length`` first (a declared size over the limit is refused
    before a byte of the body is read), then counts the bytes actually received
    from ``receive()`` (chunked uploads have no length), buffering at most
    ``max_bytes``: a 1 GB upload is cut off after ``max_bytes``, never read whole.
    The answer closes the connection, so the rest is never read either.
    """

    def __init__(self, app: ASGIApp, max_bytes: int,
                 timeout: float = BODY_TIMEOUT_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                declared = -1
            if declared < 0:
                await self._reply(send, 400, "invalid Content-Length header")
                return
            if declared > self.max_bytes:
                await self._too_large(send)
                return
        if scope.get("method") not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout
        while True:
            try:
                message = await asyncio.wait_for(receive(), max(deadline - loop.time(), 0))
            except TimeoutError:
                await self._reply(send, 408, f"request body not received within "
                                             f"{self.timeout:g} seconds")
                return
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await self._too_large(send)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _too_large(self, send: Send) -> None:
        await self._reply(
            send, 413, f"request body too large: at most {self.max_bytes} bytes are accepted"
        )

    @staticmethod
    async def _reply(send: Send, status: int, detail: str) -> None:
        body = json.dumps({"detail": detail}).encode()
        await send({
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        })
        await send({"type": "http.response.body", "body": body})


# ----------------------------------------------------------------------------- helpers


def png_data_url(pixels: np.ndarray) -> str:
    """A uint8 array as a PNG data URL: ``(H, W)`` grayscale, ``(H, W, 3)`` RGB."""
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def image_shape(model: Any) -> tuple[int, int, int]:
    """The model's input as ``(H, W, C)``, C = 1 or 3, or InvalidArgumentError."""
    shape = tuple(getattr(model, "input_shape", None) or ())
    full = (*shape, 1) if len(shape) == 2 else shape
    if len(full) != 3 or full[2] not in (1, 3) or min(full) < 1:
        raise InvalidArgumentError(
            "the demo needs a model taking images, input_shape (H, W, 1) (grayscale) or "
            f"(H, W, 3) (RGB); this one takes {shape or 'nothing (not built)'}"
        )
    return int(full[0]), int(full[1]), int(full[2])


def input_spec(model: Any) -> InputSpec:
    """How a picture becomes ``model``'s input, from ``model.preprocessing``.

    ``None`` means ``"digit"`` for a ``(28, 28, 1)`` model and a resize to the
    model's input size and channels otherwise.

    Raises:
        InvalidArgumentError: the model does not take images, or its
            ``preprocessing`` is malformed or does not produce its input shape.
    """
    h, w, c = image_shape(model)
    color = "rgb" if c == 3 else "grayscale"
    prep = getattr(model, "preprocessing", None)
    if prep is None:
        prep = {"mode": "digit" if (h, w, c) == (28, 28, 1) else "resize"}
    if not isinstance(prep, dict) or prep.get("mode") not in ("digit", "resize"):
        raise InvalidArgumentError(
            f"model.preprocessing must be {{'mode': 'digit'}} or {{'mode': 'resize', "
            f"'size': [H, W], 'color': 'grayscale' | 'rgb'}}, got {prep!r}"
        )
    if prep["mode"] == "digit":
        if (h, w, c) != (28, 28, 1):
            raise InvalidArgumentError(
                "model.preprocessing is 'digit' (28x28 grayscale, prepared as MNIST's "
                f"digits), but the model takes {h}x{w}x{c} images"
            )
        return InputSpec(mode="digit", size=[28, 28], color="grayscale")
    size = prep.get("size", [h, w])
    want = prep.get("color", color)
    if not isinstance(size, (list, tuple)) or [*size] != [h, w] or want != color:
        raise InvalidArgumentError(
            f"model.preprocessing resizes pictures to {size!r} {want!r}, but the model "
            f"takes {h}x{w}x{c} images ({color})"
        )
    return InputSpec(mode="resize", size=[h, w], color=color)


def class_names_of(model: Any) -> list[str]:
    """One name per output class: ``model.class_names``, or the indices as strings."""
    k = int(np.prod(model.output_shape))
    names = getattr(model, "class_names", None)
    if names is not None and len(names) == k:
        return [str(n) for n in names]
    return [str(i) for i in range(k)]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_model(model: Any, max_names: int = 10, max_chars: int = 24) -> str:
    """One line for a terminal: the input and the classes (ASCII; long lists shortened).

    >>> from cnnlab.zoo import small_cnn
    >>> describe_model(small_cnn(seed=0))
    'input 28x28x1 (grayscale digits, prepared as MNIST); 10 classes: 0, 1, 2, 3, 4, 5, 6, 7, 8, 9'
    """
    h, w, c = image_shape(model)
    spec = input_spec(model)
    how = ("grayscale digits, prepared as MNIST" if spec.mode == "digit"
           else f"{'RGB' if spec.color == 'rgb' else 'grayscale'} pictures resized to {h}x{w}")
    names = class_names_of(model)
    shown = ", ".join(_short(n, max_chars) for n in names[:max_names])
    if len(names) > max_names:
        shown += f", ... ({len(names) - max_names} more)"
    return f"input {h}x{w}x{c} ({how}); {len(names)} classes: {shown}"


def has_test_images(model: Any, spec: InputSpec) -> bool:
    """Whether MNIST's test digits fit ``model``: a digit model whose 10 classes are 0..9."""
    return spec.mode == "digit" and class_names_of(model) == [str(i) for i in range(10)]


def decode_image_field(text: str) -> bytes:
    """The bytes of a base64 data URL (or bare base64), or :class:`ApiError` 400."""
    text = text.strip()
    if text.startswith("data:"):
        header, comma, payload = text.partition(",")
        if not comma or not _DATA_URL.fullmatch(header):
            raise ApiError(
                400, "'image' must be a base64 data URL such as 'data:image/png;base64,...'"
            )
    else:
        payload = text
    payload = "".join(payload.split())
    if not payload:
        raise ApiError(400, "'image' holds no data")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, "'image' is not valid base64") from None
    if not data:
        raise ApiError(400, "'image' holds no data")
    return data


def check_image_bytes(data: bytes) -> None:
    """Refuse non-images (400) and images over the size limit (413) before decoding,
    from the header (:func:`cnnlab.imageio.probe_image`)."""
    try:
        header = imageio.probe_image(data, name="'image'", formats=IMAGE_FORMATS)
    except ImageTooLargeError:
        raise ApiError(
            413, f"image too large: at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels"
        ) from None
    except ImageDecodeError:
        raise ApiError(
            400, "'image' is not an image Pillow can read (" + ", ".join(IMAGE_FORMATS) + ")"
        ) from None
    if header.width > MAX_IMAGE_SIDE or header.height > MAX_IMAGE_SIDE:
        raise ApiError(
            413,
            f"image too large: {header.width}x{header.height} pixels, at most "
            f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}",
        )


def _unit_input(arr: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """An example from :func:`cnnlab.preprocess.model_input` as float32 ``(H, W, C)`` in [0, 1]."""
    x = np.asarray(arr)
    if x.size != int(np.prod(shape)):
        raise ValueError(f"model_input returned shape {x.shape}, expected {shape}")
    x = x.reshape(shape)
    return scale_pixels(x) if x.dtype == np.uint8 else x.astype(np.float32)


def prepared_input(req: PredictRequest, model: Any, spec: InputSpec) -> np.ndarray:
    """The model's input for a validated request: float32 ``(H, W, C)`` in [0, 1], or ApiError."""
    h, w, c = spec.size[0], spec.size[1], 3 if spec.color == "rgb" else 1
    try:
        if req.image is not None:
            data = decode_image_field(req.image)
            check_image_bytes(data)  # bombs and oversize pictures: refused before decoding
            if spec.mode == "digit":
                return prepare_image(data, name="'image'")[..., None]
            return _unit_input(preprocess.model_input(data, model, name="'image'"), (h, w, c))
        if spec.mode != "digit":
            raise ApiError(
                422,
                f"'pixels' is only for digit models (28x28 grayscale); this model takes "
                f"{h}x{w} {'RGB' if c == 3 else 'grayscale'} pictures, resized: send the "
                "picture as 'image' (a PNG or JPEG, base64)",
            )
        arr = np.asarray(req.pixels, dtype=np.float64)
        ph, pw = arr.shape
        if not req.prepare:
            if (ph, pw) != (h, w):
                raise ApiError(
                    422, f"'prepare': false needs a {h}x{w} 'pixels' image, got {ph}x{pw}"
                )
            return scale_pixels(arr)[..., None]
        if ph > MAX_IMAGE_SIDE or pw > MAX_IMAGE_SIDE:
            raise ApiError(
                413, f"'pixels' too large: {ph}x{pw}, at most {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"
            )
        # Values in [0, 255]; as floats in [0, 1] prepare_array never guesses the range.
        return prepare_array(scale_pixels(arr, np.float64), name="'pixels'")[..., None]
    except NoDigitError:
        raise ApiError(422, "no digit found: the picture is blank") from None
    except ImageTooLargeError as e:  # a decompression bomb that got past the header check
        raise ApiError(413, str(e)) from None
    except DataFormatError as e:  # ImageDecodeError: bytes Pillow cannot decode
        raise ApiError(400, str(e)) from None
    except CnnlabError as e:  # InvalidArgumentError: not an image's shape or values
        raise ApiError(422, str(e)) from None


def is_map_layer(layer: Any) -> bool:
    """Whether ``layer``'s output is shown as feature maps (convolution or pooling)."""
    return isinstance(layer, MAP_LAYERS)


def encode_maps(layer: Any, out: np.ndarray) -> FeatureMap:
    """One layer's output ``(1, H, W, C)`` as a vertical strip of C grayscale tiles."""
    maps = np.moveaxis(np.asarray(out[0], dtype=np.float64), -1, 0)  # (C, H, W)
    c, h, w = maps.shape
    lo = maps.min(axis=(1, 2))
    hi = maps.max(axis=(1, 2))
    base = np.minimum(lo, 0.0)
    span = hi - base
    scale = np.divide(255.0, span, out=np.zeros_like(span), where=span > 0)
    tiles = np.clip((maps - base[:, None, None]) * scale[:, None, None], 0, 255)
    strip = np.rint(tiles).astype(np.uint8).reshape(c * h, w)
    return FeatureMap(
        layer=str(layer.name),
        type=layer.kind,
        shape=[h, w, c],
        image=png_data_url(strip),
        min=[round(float(v), 6) for v in lo],
        max=[round(float(v), 6) for v in hi],
    )


def validation_message(errors: list[dict[str, Any]]) -> str:
    """One line from pydantic's errors: ``"body.pixels.0.3: Input should be ..."``."""
    parts = []
    for err in errors[:3]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        kind = err.get("type")
        if kind == "json_invalid":
            loc, msg = "", "the body is not valid JSON"
            if err.get("ctx", {}).get("error"):
                msg += f" ({err['ctx']['error']})"
        elif kind in ("model_attributes_type", "dict_type") and not loc:
            msg = "the body must be a JSON object with 'image' or 'pixels'"
        parts.append(f"{loc}: {msg}" if loc else msg)
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "; ".join(parts) + more


def small_model(n_train: int = 2000, epochs: int = 1, seed: int = 0) -> Any:
    """A small CNN trained in seconds on MNIST: for tests, benchmarks and a model-less demo.

    :func:`cnnlab.zoo.small_cnn` (``Conv2D(8, 3, relu) -> MaxPooling2D(2) ->
    Flatten -> Dense(10) -> softmax``), trained with Adam on the first
    ``n_train`` training images (about 75 % accuracy for 2,000 images and one
    epoch, 87 % for 10,000).
    """
    from cnnlab.datasets import load_mnist

    (x_train, y_train), _ = load_mnist()
    model = small_cnn(seed=seed)
    model.compile("adam")
    model.fit(to_model_input(x_train[:n_train]), y_train[:n_train], epochs=epochs, verbose=0)
    return model


# --------------------------------------------------------------------------------- app


def create_app(model: Any, source: str | None = None, *, cors_origins: Sequence[str] = (),
               body_timeout: float = BODY_TIMEOUT_S) -> FastAPI:
    """The demo's FastAPI application around ``model``.

    Args:
        model: a built :class:`~cnnlab.Sequential` taking images, ``(H, W, 1)``
            or ``(H, W, 3)`` (``(H, W)`` also works), and returning class
            probabilities. Its ``class_names`` and ``preprocessing`` (see
            :func:`input_spec`) say what the classes are called and how a
            picture becomes its input.
        source: where the model came from (shown by ``/api/model``).
        cors_origins: origins (``https://example.org``) whose pages may call the API
            from a browser (CORS); none by default, so only the served page can.
        body_timeout: seconds a client has to send a request body (408 beyond).

    Raises:
        InvalidArgumentError: the model is not built, does not take images, or
            its ``preprocessing`` does not fit its input shape.
    """
    spec = input_spec(model)
    names = class_names_of(model)
    test_images = has_test_images(model, spec)
    model_shape = tuple(int(d) for d in model.input_shape)
    lock = threading.Lock()
    rng = random.Random()
    test_set: dict[str, np.ndarray] = {}

    app = FastAPI(
        title="cnnlab demo",
        version="1",
        description=(
            "Give a picture (or, for a digit model, draw a digit), see what a convolutional "
            "network makes of it: class probabilities and the feature maps of every "
            "convolution and pooling layer. "
            f"Bodies up to {MAX_BODY_BYTES} bytes, images up to "
            f"{MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE} pixels. Errors are 4xx with a JSON "
            "'detail' message."
        ),
        # Swagger UI and ReDoc load their scripts from a CDN: blank pages offline.
        # The machine-readable description stays at /openapi.json.
        docs_url=None,
        redoc_url=None,
    )
    app.state.model = model
    app.state.lock = lock
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES, timeout=body_timeout)
    if cors_origins:  # off unless asked for (cnnlab serve --cors-origin ORIGIN)
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Content-Type"])
    # What BodySizeLimit may answer to any request (a bad or too large Content-Length),
    # and what a body that is read may get: every answer is declared in /openapi.json.
    any_request_doc: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (400, 413)
    }
    errors_doc: dict[int | str, dict[str, Any]] = {
        code: {"model": ErrorResponse} for code in (400, 408, 413, 415, 422)
    }

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse({"detail": exc.detail}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        raw = list(exc.errors())
        content_type = request.headers.get("content-type", "")
        if request.method == "POST" and "json" not in content_type.lower():
            got = f"got {content_type[:100]!r}" if content_type else "got none"
            return JSONResponse(
                {"detail": f"the body must be JSON (Content-Type: application/json), {got}"},
                status_code=415,
            )
        status = 400 if any(e.get("type") == "json_invalid" for e in raw) else 422
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())],
             "msg": str(e.get("msg", "")).removeprefix("Value error, "),
             "type": str(e.get("type", ""))}
            for e in raw[:20]
        ]
        return JSONResponse(
            {"detail": validation_message(raw) or "invalid request", "errors": errors},
            status_code=status,
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {"detail": f"internal error: {type(exc).__name__}"}, status_code=500
        )

    def run_model(x: np.ndarray, include_maps: bool, include_input: bool = True) -> dict[str, Any]:
        batch = x.reshape(1, *model_shape)
        # One request at a time runs the model; BLAS on one thread, so the
        # other requests' decoding and encoding get the other core (measured
        # on 2 cores, 8 requests in flight, no feature maps: 227-282 against
        # 157-216 requests/s, p99 48-62 against 96-146 ms)
        with lock, parallel.single_threaded_blas():
            outputs = model.feature_maps(batch)
        probs = np.asarray(outputs[-1][1], dtype=np.float64).reshape(-1)
        maps = []
        if include_maps:
            maps = [encode_maps(layer, out) for layer, (_, out)
                    in zip(model.layers, outputs, strict=True) if is_map_layer(layer)]
        top = int(np.argmax(probs))
        shown = x[:, :, 0] if x.shape[2] == 1 else x
        return {
            "prediction": top,
            "prediction_name": names[top],
            "probabilities": [float(p) for p in probs],
            "classes": names,
            "input": np.round(shown.astype(np.float64), 4).tolist() if include_input else [],
            "input_image": png_data_url(np.rint(np.clip(shown, 0.0, 1.0) * 255.0)),
            "feature_maps": maps,
        }

    def load_test_set() -> tuple[np.ndarray, np.ndarray]:
        if not test_set:
            from cnnlab.datasets import load_mnist

            _, (x_test, y_test) = load_mnist()
            test_set["x"], test_set["y"] = x_test, y_test
        return test_set["x"], test_set["y"]

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/api/model", response_model=ModelInfo, responses=any_request_doc,
             tags=["model"])
    def model_info() -> ModelInfo:
        """The model: shapes, parameters, layers, summary."""
        return ModelInfo(
            name=str(model.name),
            source=source,
            input_shape=list(model.input_shape),
            output_shape=list(model.output_shape),
            num_classes=int(np.prod(model.output_shape)),
            class_names=names,
            preprocessing=spec,
            drawing=spec.mode == "digit",
            pixels=spec.mode == "digit",
            test_images=test_images,
            params=int(model.count_params()),
            layers=[
                LayerInfo(name=str(la.name), type=la.kind, output_shape=list(la.output_shape),
                          params=int(la.count_params()), feature_maps=is_map_layer(la))
                for la in model.layers
            ],
            summary=model.summary(print_fn=None),
        )

    @app.post("/api/predict", response_model=Prediction, responses=errors_doc,
              tags=["predict"])
    def predict(req: PredictRequest) -> dict[str, Any]:
        """Classify one picture; return probabilities, class names and feature maps."""
        x = prepared_input(req, model, spec)
        return run_model(x, req.include_maps, req.include_input)

    @app.get("/api/random-test-image", response_model=RandomTestImage,
             responses={**errors_doc, 404: {"model": ErrorResponse}}, tags=["predict"])
    def random_test_image(
        index: Annotated[int | None, Query(ge=0, description="A test-set index.")] = None,
        include_maps: bool = True,
    ) -> dict[str, Any]:
        """An MNIST test image (random unless ``index`` is given), its label and prediction.

        Only for digit models whose 10 classes are 0..9 (404 for the others).
        """
        if not test_images:
            raise ApiError(
                404, "no test images for this model: /api/random-test-image serves MNIST "
                     "digits, for digit models (28x28 grayscale) with the classes 0..9")
        x_test, y_test = load_test_set()
        if index is None:
            index = rng.randrange(len(x_test))
        elif index >= len(x_test):
            raise ApiError(422, f"index {index} is out of range: the test set has "
                                f"{len(x_test)} images (0..{len(x_test) - 1})")
        raw = x_test[index]
        x = to_model_input(raw)[0]  # exactly the training input
        result = run_model(x, include_maps)
        result.update(index=int(index), label=int(y_test[index]), image=png_data_url(raw))
        return result

    from cnnlab.serve.explain_routes import add_explain_routes  # issue 17: see the math

    add_explain_routes(app, model, spec, lock, errors_doc, request_base=PredictRequest,
                       prepare=prepared_input)
    from cnnlab.serve.explorer_routes import add_explorer_routes  # issue 20: error explorer

    add_explorer_routes(app, model, spec, lock, errors_doc, test_images, names)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app
