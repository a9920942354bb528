"""The demo's "see the math" API: open any number, check any gradient, train live.

Added to the app by :func:`add_explain_routes` (one call in
:func:`cnnlab.serve.app.create_app`). Every request that needs a picture takes
it as ``/api/predict`` does (``image``, or ``pixels`` with ``prepare``), or
``test_index`` (MNIST test image N, exactly as ``/api/random-test-image``
feeds it to a digit model).

``POST /api/explain``
    :class:`ExplainRequest` -> :class:`PixelExplanation`: output pixel
    ``(y, x)`` of map ``channel`` of a Conv2D or pooling layer, term by term
    (:mod:`cnnlab.explain.pixel`): the window on the layer's input with its
    padding cells, the kernel, the products, their sum, the bias, the
    pre-activation, the value, and the float64 reference recomputation.
``POST /api/backprop``
    :class:`BackpropRequest` -> :class:`ConvGradients`: for a Conv2D layer and
    the true ``label``, dL/dO, dL/dZ, dL/dF = correlate(X, dL/dZ), dL/dX =
    full_convolution(rot180(F), dL/dZ), in float64 with the reference formulas,
    and their largest difference from :func:`cnnlab.explain.backprop`'s
    gradients (:mod:`cnnlab.explain.conv_grads`).
``POST /api/gradcheck``
    :class:`GradcheckRequest` -> :class:`GradientCheck`: one gradient entry,
    analytic against a central finite difference, both in float64.
``POST /api/step``
    :class:`StepRequest` -> :class:`StepResult`: one SGD step on the picture
    and its label, applied to this browser tab's copy of the model (``session``;
    at most :data:`MAX_SESSIONS` copies, the least recently used dropped); the
    served model never changes.
``GET /api/live/stream?tab=...&seed=...``
    Server-Sent Events of a live training run
    (:mod:`cnnlab.serve.live_training`), one per tab; closing the page (the
    connection) stops it. Not in the OpenAPI description: a stream that runs
    for minutes is not a request a schema fuzzer can wait for.
``POST /api/live/control``
    :class:`LiveControl`: ``pause``, ``resume``, ``step`` (one step, then
    paused) or ``stop`` the tab's run.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import queue
import threading
from collections.abc import Callable
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cnnlab.errors import CnnlabError
from cnnlab.explain.conv_grads import conv_gradients, finite_difference, float64_copy
from cnnlab.explain.pixel import explain_pixel, layer_io
from cnnlab.ops import parallel
from cnnlab.serve.live_training import LIMITS, LiveRuns, Recipe

__all__ = [
    "MAX_SESSIONS",
    "BackpropRequest",
    "ConvGradients",
    "ExplainRequest",
    "GradcheckRequest",
    "GradientCheck",
    "LiveControl",
    "PixelExplanation",
    "StepRequest",
    "StepResult",
    "add_explain_routes",
]

#: Model copies kept for the "one step" button (one per browser tab).
MAX_SESSIONS = 8
#: Live training runs at once (one per tab; a new one stops the oldest).
MAX_LIVE_RUNS = 2

Pixel = Annotated[float, Field(strict=True, ge=0, le=255, allow_inf_nan=False)]
Index = Annotated[int, Field(ge=0, le=100_000)]
TabId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$",
                             description="An id the page makes up for its tab.")]


# ----------------------------------------------------------------------------- requests


class PictureRequest(BaseModel):
    """A picture, in any form ``/api/predict`` takes, or an MNIST test image by number.

    The fields mirror :class:`cnnlab.serve.app.PredictRequest`'s: exactly one of
    ``image``, ``pixels`` and ``test_index``.
    """

    model_config = ConfigDict(extra="forbid")

    image: str | None = Field(None, description="As in /api/predict: a base64 data URL or "
                              "bare base64 of a PNG, JPEG, GIF, BMP or WebP.")
    pixels: list[list[Pixel]] | None = Field(
        None, description="As in /api/predict (digit models): H rows of W numbers in [0, 255].")
    prepare: bool = Field(True, description="As in /api/predict.")
    test_index: int | None = Field(
        None, ge=0, le=9999,
        description="Digit models: MNIST test image N, as /api/random-test-image gives it.")

    @model_validator(mode="after")
    def _one_source(self) -> PictureRequest:
        given = [k for k in ("image", "pixels", "test_index") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'image', 'pixels' and 'test_index'")
        if self.pixels is not None:
            rows = self.pixels
            if not rows or not rows[0]:
                raise ValueError("'pixels' is empty: expected H rows of W numbers")
            width = len(rows[0])
            ragged = next((i for i, r in enumerate(rows) if len(r) != width), None)
            if ragged is not None:
                raise ValueError(f"'pixels' rows differ in length: row 0 has {width} values, "
                                 f"row {ragged} has {len(rows[ragged])}")
        if not self.prepare and self.pixels is None:
            raise ValueError("'prepare': false needs 'pixels' (a 28x28 image)")
        return self


class ExplainRequest(PictureRequest):
    """One output pixel of a Conv2D or pooling layer."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"test_index": 0, "layer": "conv2d", "y": 27, "x": 27, "channel": 0}]})

    layer: str = Field(max_length=200, description="The layer's name, e.g. 'conv2d'.")
    y: Index = Field(description="Output row.")
    x: Index = Field(description="Output column.")
    channel: Index = Field(0, description="Output channel (map).")


class BackpropRequest(PictureRequest):
    """The backward pass of one Conv2D layer for the picture and its true label."""

    layer: str = Field(max_length=200)
    label: Index = Field(description="The true class.")
    channel: Index = Field(0, description="The filter (output channel) to show.")
    in_channel: Index = Field(0, description="The input channel to show.")


class GradcheckRequest(PictureRequest):
    """One gradient entry of the loss against a central finite difference."""

    layer: str = Field(max_length=200)
    label: Index
    param: Literal["kernel", "bias", "input"] = Field(
        "kernel", description="kernel: index [a, b, ci, co]; bias: [co]; input (the layer's "
        "input): [row, col, ci].")
    index: list[Index] = Field(min_length=1, max_length=4)


class StepRequest(PictureRequest):
    """One optimizer step on this tab's copy of the model."""

    session: TabId
    label: Index
    learning_rate: float = Field(0.01, gt=0, le=10, allow_inf_nan=False)
    reset: bool = Field(False, description="Start again from the served model's weights.")


class LiveControl(BaseModel):
    """Control the tab's live training run."""

    model_config = ConfigDict(extra="forbid")
    tab: TabId
    action: Literal["pause", "resume", "step", "stop"]


# ----------------------------------------------------------------------------- responses


class Reference(BaseModel):
    """The float64 recomputation beside the model's own number."""

    dtype: str
    method: str
    value: float
    model_value: float
    difference: float = Field(description="model_value - value.")
    preactivation: float | None = None
    model_dtype: str | None = None


class PixelExplanation(BaseModel):
    """One output number, every term of it (see cnnlab.explain.pixel)."""

    layer: str
    type: str
    y: int
    x: int
    channel: int
    kernel_size: list[int]
    strides: list[int]
    padding: str
    pads: list[list[int]]
    input_shape: list[int]
    rows: list[int] = Field(description="The window's rows in input coordinates.")
    cols: list[int]
    window: list[Any] = Field(description="(kh, kw, C_in) input values, 0 where padded "
                              "(pooling: (ph, pw, 1), null where padded).")
    padded: list[list[bool]] = Field(description="(kh, kw): true for a padding cell.")
    value: float = Field(description="The model's output (after the activation).")
    kernel: list[Any] | None = None
    products: list[Any] | None = None
    channel_sums: list[float] | None = None
    sum: float | None = None
    bias: float | None = None
    preactivation: float | None = None
    activation: str | None = None
    count: int | None = None
    argmax: dict[str, Any] | None = None
    formula: str | None = None
    reference: Reference


class ConvGradients(BaseModel):
    """A Conv2D layer's backward pass (see cnnlab.explain.conv_grads)."""

    layer: str
    label: int
    channel: int
    in_channel: int
    loss: float
    probabilities: list[float]
    kernel_size: list[int]
    strides: list[int]
    pads: list[list[int]]
    activation: str
    channels: list[int]
    X: list[list[float]]
    padded: list[list[bool]]
    Z: list[list[float]]
    dO: list[list[float]]
    dZ: list[list[float]]
    dZ_dilated: list[list[float]]
    kernel: list[list[float]]
    rotated: list[list[float]]
    dF: list[list[float]]
    db: float
    dX_filter: list[list[float]]
    dX: list[list[float]]
    formulas: dict[str, str]
    check: dict[str, dict[str, float]]


class GradientCheck(BaseModel):
    """Analytic gradient entry against a central finite difference, both float64."""

    layer: str
    param: str
    index: list[int]
    label: int
    eps: float
    analytic: float
    numeric: float
    difference: float
    loss_plus: float
    loss_minus: float
    dtype: str
    formula: str


class StepResult(BaseModel):
    """The tab's model copy after one more step."""

    session: str
    steps: int = Field(description="Steps this copy has taken.")
    label: int
    learning_rate: float
    loss_before: float = Field(description="-ln p[label] before the step (inference).")
    loss_after: float
    probabilities_before: list[float]
    probabilities: list[float]
    prediction: int


class LiveState(BaseModel):
    tab: str
    state: str
    step: int


# ----------------------------------------------------------------------------- routes


def _unprocessable(e: Exception) -> HTTPException:
    return HTTPException(status_code=422, detail=str(e))


def add_explain_routes(
    app: FastAPI,
    model: Any,
    spec: Any,
    lock: threading.Lock,
    errors_doc: dict[int | str, dict[str, Any]],
    *,
    request_base: type[BaseModel],
    prepare: Callable[[Any, Any, Any], np.ndarray],
) -> None:
    """Add ``/api/explain``, ``/api/backprop``, ``/api/gradcheck``, ``/api/step`` and
    ``/api/live/*`` to ``app`` for ``model``.

    Args:
        app, model, spec, lock: the app, its model, its :class:`InputSpec` and the
            lock every use of the model's layers runs under.
        errors_doc: the OpenAPI description of the 4xx answers.
        request_base: ``PredictRequest``; ``prepare``: ``prepared_input``
            (passed in so that this module does not import the app module).
    """
    error_model = next(iter(errors_doc.values()))["model"]
    docs = {**errors_doc, 404: {"model": error_model}}
    shape = tuple(int(d) for d in model.input_shape)
    digit = spec.mode == "digit" and shape == (28, 28, 1)
    cache: dict[str, Any] = {}
    cache_lock = threading.Lock()
    twin_lock = threading.Lock()  # the float64 twin's weights are perturbed in place
    sessions: collections.OrderedDict[str, dict[str, Any]] = collections.OrderedDict()
    sessions_lock = threading.Lock()
    runs = LiveRuns(MAX_LIVE_RUNS)
    app.state.live_runs = runs

    def picture(req: PictureRequest) -> np.ndarray:
        if req.test_index is not None:
            if not digit:
                raise HTTPException(422, "'test_index' is for digit models (28x28 grayscale "
                                         "MNIST); send the picture as 'image'")
            from cnnlab.datasets import load_mnist
            from cnnlab.preprocess import to_model_input

            with cache_lock:
                if "x_test" not in cache:
                    cache["x_test"] = load_mnist()[1][0]
            return to_model_input(cache["x_test"][req.test_index])[0]
        base = request_base.model_construct(image=req.image, pixels=req.pixels,
                                            prepare=req.prepare)
        return prepare(base, model, spec)

    def twin() -> Any:
        with cache_lock:
            if "float64" not in cache:
                with lock:
                    cache["float64"] = float64_copy(model)
            return cache["float64"]

    @app.post("/api/explain", response_model=PixelExplanation, responses=errors_doc,
              tags=["explain"])
    def explain(req: ExplainRequest) -> dict[str, Any]:
        """Open one number of a feature map: window, padding, kernel, products, sum, bias,
        pre-activation, activation, and its float64 reference recomputation."""
        x = picture(req)
        try:
            with lock, parallel.single_threaded_blas():
                io = layer_io(model, x)
            return explain_pixel(model, x, req.layer, req.y, req.x, req.channel, io=io)
        except CnnlabError as e:
            raise _unprocessable(e) from None

    @app.post("/api/backprop", response_model=ConvGradients, responses=errors_doc,
              tags=["explain"])
    def backprop_view(req: BackpropRequest) -> dict[str, Any]:
        """A Conv2D layer's backward pass for the picture and its true label, with the
        slides' formulas in float64, checked against the library's backward pass."""
        x = picture(req)
        try:
            with parallel.single_threaded_blas():
                return conv_gradients(model, x, req.label, req.layer, req.channel,
                                      req.in_channel)
        except CnnlabError as e:
            raise _unprocessable(e) from None

    @app.post("/api/gradcheck", response_model=GradientCheck, responses=errors_doc,
              tags=["explain"])
    def gradcheck(req: GradcheckRequest) -> dict[str, Any]:
        """One gradient entry: analytic against (L(t + eps) - L(t - eps)) / (2 eps), float64."""
        x = picture(req)
        m64 = twin()
        try:
            with twin_lock:
                return finite_difference(m64, x, req.label, req.layer, req.param, req.index)
        except CnnlabError as e:
            raise _unprocessable(e) from None

    @app.post("/api/step", response_model=StepResult, responses=errors_doc,
              tags=["explain"])
    def one_step(req: StepRequest) -> dict[str, Any]:
        """One SGD step on this tab's copy of the model; the served model never changes."""
        from cnnlab.optimizers import SGD
        from cnnlab.training.loop import train_step

        classes = int(np.prod(model.output_shape))
        if req.label >= classes:
            raise HTTPException(422, f"label={req.label} is out of range: the model has "
                                     f"{classes} classes (0..{classes - 1})")
        x = picture(req)
        with sessions_lock:
            entry = sessions.pop(req.session, None)
            if entry is None or req.reset:
                with lock:
                    copied = copy.deepcopy(model)
                entry = {"model": copied, "steps": 0, "lock": threading.Lock()}
            sessions[req.session] = entry
            while len(sessions) > MAX_SESSIONS:
                sessions.popitem(last=False)
        m = entry["model"]
        batch = x.reshape(1, *shape).astype(m.layers[0].dtype)
        with entry["lock"], parallel.single_threaded_blas():
            m.compile(SGD(req.learning_rate))
            before = np.asarray(m.predict(batch), np.float64)[0]
            train_step(m, batch, np.array([req.label]), entry["steps"])
            entry["steps"] += 1
            after = np.asarray(m.predict(batch), np.float64)[0]
        tiny = np.finfo(np.float64).tiny
        return {
            "session": req.session, "steps": entry["steps"], "label": req.label,
            "learning_rate": req.learning_rate,
            "loss_before": float(-np.log(max(before[req.label], tiny))) + 0.0,
            "loss_after": float(-np.log(max(after[req.label], tiny))) + 0.0,
            "probabilities_before": before.tolist(), "probabilities": after.tolist(),
            "prediction": int(np.argmax(after)),
        }

    @app.get("/api/live/stream", include_in_schema=False)
    async def live_stream(
        request: Request,
        tab: Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")],
        paused: bool = False,
    ) -> StreamingResponse:
        try:
            recipe = Recipe.from_query(dict(request.query_params))
        except CnnlabError as e:
            raise _unprocessable(e) from None
        run = runs.start(tab, recipe, paused)

        async def events() -> Any:
            quiet = 0.0
            try:
                while True:
                    try:
                        ev = run.events.get_nowait()
                    except queue.Empty:
                        if await request.is_disconnected():
                            break
                        await asyncio.sleep(0.05)
                        quiet += 0.05
                        if quiet >= 10:  # a comment line: a closed page shows up as an error
                            quiet = 0.0
                            yield ": keep-alive\n\n"
                        continue
                    quiet = 0.0
                    yield f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n"
                    if ev["type"] == "end":
                        break
            finally:
                runs.finish(tab, run)

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store",
                                          "X-Accel-Buffering": "no"})

    @app.post("/api/live/control", response_model=LiveState, responses=docs, tags=["live"])
    def live_control(req: LiveControl) -> dict[str, Any]:
        """Pause, resume, single-step or stop the tab's live run (404 if it has none)."""
        run = runs.get(req.tab)
        if run is None:
            raise HTTPException(404, f"no live training run for tab {req.tab!r}: open "
                                     "/api/live/stream first")
        if req.action == "pause":
            run.pause()
        elif req.action == "resume":
            run.resume()
        elif req.action == "step":
            run.single_step()
        else:
            runs.finish(req.tab, run)
        state = "stopped" if req.action == "stop" else ("paused" if run.paused else "running")
        return {"tab": req.tab, "state": state, "step": run.step}

    @app.get("/api/live/limits", tags=["live"])
    def live_limits() -> dict[str, Any]:
        """The bounds of a live run's recipe and its defaults."""
        return {"limits": {k: list(v) for k, v in LIMITS.items()},
                "defaults": Recipe().query(), "optimizers": ["sgd", "adam"],
                "max_runs": MAX_LIVE_RUNS}
