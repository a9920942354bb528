"""The demo's error explorer: the confusion matrix on MNIST's test set, each cell's
images, and attributions (saliency, Grad-CAM, occlusion) with Adebayo's sanity check.

Added to the app by :func:`add_explorer_routes` (one call in
:func:`cnnlab.serve.app.create_app`). Every route answers 4xx with
``{"detail": "..."}`` for a bad request:

``GET /api/explorer/confusion``
    :class:`ConfusionInfo`: the confusion matrix of the model on the 10,000
    MNIST test images (computed on the first request, in chunks of
    :data:`CHUNK` images so that predictions interleave, then cached). Digit
    models with the classes 0..9 only; 404 for the others.
``GET /api/explorer/cell?true=T&predicted=P[&offset=O&limit=L]``
    :class:`CellImages`: the images of that cell, most confident first
    (:func:`cnnlab.explain.confusion`), as 28x28 PNG thumbnails with their
    test index; ``count`` equals the matrix's count. 404 for non-digit models,
    422 for a class out of range.
``POST /api/explorer/attributions``
    :class:`AttributionRequest` -> :class:`Attributions`: for a test image
    (``index``) or the model's input as a PNG (``input_image``, exactly the
    model's input size, as ``/api/predict``'s ``input_image``), the maps of
    :func:`cnnlab.explain.saliency` (the class logit's gradient),
    :func:`~cnnlab.explain.grad_cam` (last convolution, bilinear) and
    :func:`~cnnlab.explain.occlusion` (a patch of about a seventh of the
    image, stride half a patch, black fill), each drawn over the image. With
    ``randomize`` the same maps on the model with every layer re-initialised
    (seed 0, :func:`cnnlab.explain.randomized_model`) and Spearman's rank
    correlation with the trained maps.
"""

from __future__ import annotations

import base64
import binascii
import io
import threading
from typing import Any, Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Query
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cnnlab import explain
from cnnlab.errors import CnnlabError
from cnnlab.ops import parallel

__all__ = ["CHUNK", "AttributionRequest", "Attributions", "CellImages", "ConfusionInfo",
           "add_explorer_routes"]

#: Test images predicted per hold of the model's lock while the matrix is computed.
CHUNK = 500
#: Images in MNIST's test set (the largest ``index`` is one less).
TEST_IMAGES = 10000
#: Most thumbnails one /api/explorer/cell answer holds.
MAX_CELL_IMAGES = 200
METHOD_NAMES = ("saliency", "grad_cam", "occlusion")
TITLES = {"saliency": "Saliency (input gradient)", "grad_cam": "Grad-CAM",
          "occlusion": "Occlusion"}


# ----------------------------------------------------------------------------- schemas
class ConfusionInfo(BaseModel):
    """The confusion matrix on the MNIST test set."""

    classes: list[str]
    matrix: list[list[int]] = Field(description="matrix[true][predicted]: image counts.")
    total: int
    correct: int
    accuracy: float
    source: str = Field(description="The images the matrix counts.")


class CellImage(BaseModel):
    index: int = Field(description="The MNIST test-set index (for /api/random-test-image).")
    label: int
    predicted: int
    confidence: float = Field(description="The probability of the predicted class.")
    image: str = Field(description="The 28x28 test image as a grayscale PNG data URL.")


class CellImages(BaseModel):
    """One cell's images, most confident first."""

    true: int
    predicted: int
    count: int = Field(description="All images in the cell (the matrix's count).")
    offset: int
    items: list[CellImage]


class AttributionRequest(BaseModel):
    """Which image to explain, for which class, with which methods."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"index": 0}, {"index": 8, "label": 5, "randomize": True}],
        "oneOf": [{"required": ["index"]}, {"required": ["input_image"]}]})

    # exactly one of index and input_image: absent, not null (the schema's oneOf)
    index: int = Field(None, ge=0,  # type: ignore[assignment]
                       description="An MNIST test-set index (digit models).")
    input_image: str = Field(  # type: ignore[assignment]
        None, min_length=1, description="The model's input as a PNG data URL (or bare "
        "base64), exactly the model's input size, as /api/predict's 'input_image'; used as it "
        "is, scaled to [0, 1].")
    label: int = Field(None, ge=0, description="The class to explain "  # type: ignore[assignment]
                       "(default: the predicted class).")
    methods: list[Literal["saliency", "grad_cam", "occlusion"]] = Field(
        default_factory=lambda: list(METHOD_NAMES), min_length=1, max_length=3)
    randomize: bool = Field(False, description="Also compute the maps on the model with "
                            "re-initialised weights, and their rank correlation.")

    @model_validator(mode="after")
    def _one_source(self) -> AttributionRequest:
        if (self.index is None) == (self.input_image is None):
            raise ValueError("give exactly one of 'index' and 'input_image'")
        return self


class RandomizedMap(BaseModel):
    overlay: str
    heat: str
    spearman: float | None = Field(description="Spearman's rho with the trained map (null "
                                   "when either map is constant).")


class AttributionMap(BaseModel):
    method: str
    title: str
    objective: str
    overlay: str = Field(description="The map drawn over the image: an RGB PNG data URL, H x W.")
    heat: str = Field(description="The map alone: a grayscale PNG, white = its largest value.")
    min: float
    max: float
    note: str
    randomized: RandomizedMap | None = None


class Attributions(BaseModel):
    label: int
    label_name: str
    prediction: int
    probabilities: list[float]
    classes: list[str]
    index: int | None
    image: str = Field(description="The model's input as a PNG data URL.")
    maps: list[AttributionMap]


# ----------------------------------------------------------------------------- helpers
def _png(pixels: np.ndarray) -> str:
    arr = np.ascontiguousarray(pixels, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _heat(m: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The map scaled to [0, 1] by its largest absolute value (negative parts: 0)."""
    m = np.asarray(m, dtype=np.float64)
    lo, hi = float(m.min()), float(m.max())
    top = max(abs(lo), abs(hi))
    h = np.clip(m / top, 0.0, 1.0) if top > 0 else np.zeros_like(m)
    return h, lo, hi


def _overlay(x: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The image in gray with the heat map in the 'inferno' colours over it (alpha 0.75 heat)."""
    from matplotlib import colormaps

    gray = x.mean(axis=-1) if x.shape[-1] == 3 else x[..., 0]
    base = np.repeat(np.clip(gray, 0, 1)[..., None], 3, axis=-1) * 0.8
    color = colormaps["inferno"](heat)[..., :3]
    a = (0.75 * heat)[..., None]
    return np.rint((base * (1 - a) + color * a) * 255)


def _decode_input(text: str, shape: tuple[int, int, int]) -> np.ndarray:
    h, w, c = shape
    payload = text.strip()
    if payload.startswith("data:"):
        header, comma, payload = payload.partition(",")
        if not comma or ";base64" not in header:
            raise HTTPException(400, "'input_image' must be a base64 data URL "
                                     "'data:image/png;base64,...'")
    try:
        data = base64.b64decode("".join(payload.split()), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPException(400, "'input_image' is not valid base64") from None
    try:
        img = Image.open(io.BytesIO(data))
        size = img.size
    except Exception:
        raise HTTPException(400, "'input_image' is not an image Pillow can read") from None
    if size != (w, h):
        raise HTTPException(422, f"'input_image' must be the model's input, {w}x{h} pixels; "
                                 f"got {size[0]}x{size[1]}")
    try:
        arr = np.asarray(img.convert("RGB" if c == 3 else "L"), dtype=np.float32) / 255.0
    except Exception:
        raise HTTPException(400, "'input_image' could not be decoded") from None
    return arr.reshape(h, w, c)


def _occlusion_geometry(h: int, w: int) -> tuple[int, int]:
    patch = max(2, round(min(h, w) / 7))
    return patch, max(1, patch // 2)


# ----------------------------------------------------------------------------- routes
def add_explorer_routes(app: FastAPI, model: Any, spec: Any, lock: Any,
                        errors_doc: dict[int | str, dict[str, Any]], test_images: bool,
                        class_names: list[str]) -> None:
    """Add the explorer's routes to ``app`` (see the module's docstring).

    ``lock`` is the app's model lock (every forward pass holds it);
    ``test_images`` says whether MNIST's test digits fit the model.
    """
    shape = tuple(int(d) for d in model.input_shape)
    error_model = next(iter(errors_doc.values()))["model"]
    with_404 = {**errors_doc, 404: {"model": error_model}}
    state: dict[str, Any] = {}
    compute_lock = threading.Lock()

    def need_test_images() -> None:
        if not test_images:
            raise HTTPException(404, "no test images for this model: the error explorer uses "
                                     "MNIST's test digits, for digit models (28x28 grayscale) "
                                     "with the classes 0..9")

    def test_set() -> tuple[np.ndarray, np.ndarray]:
        if "x" not in state:
            from cnnlab.datasets import load_mnist

            _, (x_test, y_test) = load_mnist()
            state["x"], state["y"] = x_test, y_test
        return state["x"], state["y"]

    def confusion() -> explain.Confusion:
        with compute_lock:  # one computation; later requests wait for it, then read the cache
            if "confusion" not in state:
                x, y = test_set()
                parts = []
                for lo in range(0, len(x), CHUNK):
                    with lock:
                        parts.append(np.asarray(model.predict(x[lo:lo + CHUNK])))
                probs = np.concatenate(parts).reshape(len(x), -1)
                state["confusion"] = explain.confusion_from_probabilities(probs, y)
            return state["confusion"]

    def randomized() -> Any:
        if "random_model" not in state:
            state["random_model"] = explain.randomized_model(model, seed=0)
        return state["random_model"]

    @app.get("/api/explorer/confusion", response_model=ConfusionInfo, responses=with_404,
             tags=["explorer"])
    def explorer_confusion() -> ConfusionInfo:
        """The confusion matrix on the 10,000 MNIST test images (computed once, cached)."""
        need_test_images()
        c = confusion()
        total = int(c.matrix.sum())
        correct = int(np.trace(c.matrix))
        return ConfusionInfo(classes=class_names, matrix=c.matrix.tolist(), total=total,
                             correct=correct, accuracy=correct / total if total else 0.0,
                             source=f"MNIST test set, {total} images")

    k = len(class_names)

    class BoundedAttributionRequest(AttributionRequest):  # this model's bounds, in the schema
        index: int = Field(None, ge=0, le=TEST_IMAGES - 1,  # type: ignore[assignment]
                           description="An MNIST test-set index (digit models).")
        label: int = Field(None, ge=0, le=k - 1,  # type: ignore[assignment]
                           description="The class to explain (default: the predicted class).")

    @app.get("/api/explorer/cell", response_model=CellImages, responses=with_404,
             tags=["explorer"])
    def explorer_cell(
        true: int = Query(ge=0, le=k - 1, description="The true class (row)."),
        predicted: int = Query(ge=0, le=k - 1, description="The predicted class (column)."),
        offset: int = Query(0, ge=0, description="Skip this many images."),
        limit: int = Query(60, ge=1, le=MAX_CELL_IMAGES, description="At most this many."),
    ) -> CellImages:
        """The images of one cell of the confusion matrix, most confident first."""
        need_test_images()
        c = confusion()
        k = c.num_classes
        if true >= k or predicted >= k:
            raise HTTPException(422, f"classes are 0..{k - 1}; got true={true}, "
                                     f"predicted={predicted}")
        idx = c.cell(true, predicted)
        x, _ = test_set()
        items = [CellImage(index=int(i), label=int(c.labels[i]), predicted=int(c.predicted[i]),
                           confidence=round(float(c.confidence[i]), 6), image=_png(x[i]))
                 for i in idx[offset:offset + limit]]
        return CellImages(true=true, predicted=predicted, count=len(idx), offset=offset,
                          items=items)

    def explorer_attributions(req: AttributionRequest) -> Attributions:
        """Saliency, Grad-CAM and occlusion for one image, with the randomisation check."""
        if req.index is not None:
            need_test_images()
            x_test, _ = test_set()
            if req.index >= len(x_test):
                raise HTTPException(422, f"index {req.index} is out of range: the test set has "
                                         f"{len(x_test)} images (0..{len(x_test) - 1})")
            x = (x_test[req.index].astype(np.float32) / 255.0).reshape(shape)
        else:
            assert req.input_image is not None
            x = _decode_input(req.input_image, shape)  # type: ignore[arg-type]
        if req.label is not None and req.label >= k:
            raise HTTPException(422, f"label must be a class 0..{k - 1}, got {req.label}")
        patch, stride = _occlusion_geometry(shape[0], shape[1])
        kwargs: dict[str, dict[str, Any]] = {"occlusion": {"patch": patch, "stride": stride}}
        fns = {"saliency": explain.saliency, "grad_cam": explain.grad_cam,
               "occlusion": explain.occlusion}
        notes = {
            "saliency": "max over channels of |d logit / d pixel|",
            "grad_cam": "last convolution, ReLU(sum_k alpha_k A^k), resized bilinear",
            "occlusion": f"drop in the class probability under a {patch}x{patch} black patch, "
                         f"stride {stride}",
        }
        maps = []
        try:
            with lock, parallel.single_threaded_blas():
                probs = np.asarray(model.predict(x[None]), dtype=np.float64).reshape(-1)
                label = int(np.argmax(probs)) if req.label is None else int(req.label)
                for name in dict.fromkeys(req.methods):
                    a = fns[name](model, x, label, **kwargs.get(name, {}))
                    heat, lo, hi = _heat(a.map)
                    entry = AttributionMap(method=name, title=TITLES[name], objective=a.objective,
                                           overlay=_png(_overlay(x, heat)),
                                           heat=_png(np.rint(heat * 255)), min=lo, max=hi,
                                           note=notes[name])
                    if req.randomize:
                        r = fns[name](randomized(), x, label, **kwargs.get(name, {}))
                        rheat, _, _ = _heat(r.map)
                        rho = explain.spearman(a.map, r.map)
                        entry.randomized = RandomizedMap(
                            overlay=_png(_overlay(x, rheat)), heat=_png(np.rint(rheat * 255)),
                            spearman=None if np.isnan(rho) else round(rho, 6))
                    maps.append(entry)
        except CnnlabError as e:
            raise HTTPException(422, str(e)) from None
        shown = x[..., 0] if shape[2] == 1 else x
        return Attributions(label=label, label_name=class_names[label],
                            prediction=int(np.argmax(probs)),
                            probabilities=[float(p) for p in probs], classes=class_names,
                            index=req.index, image=_png(np.rint(np.clip(shown, 0, 1) * 255)),
                            maps=maps)

    # the body's schema carries this model's bounds (the annotation is a string under
    # "from __future__ import annotations": FastAPI must see the class itself)
    explorer_attributions.__annotations__["req"] = BoundedAttributionRequest
    app.post("/api/explorer/attributions", response_model=Attributions, responses=with_404,
             tags=["explorer"])(explorer_attributions)
