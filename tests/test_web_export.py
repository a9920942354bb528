"""The static demo (``cnnlab export MODEL --web DIR``) in headless Chromium, with no cnnlab server.

The shipped model is exported with onnxruntime-web (the pinned npm tarball, downloaded
once into ``$CNNLAB_CACHE`` or ``~/.cache/cnnlab``; skipped when it cannot be fetched),
the folder is served by Python's plain ``http.server`` in a thread, and Playwright
draws digits on the page's canvas with the mouse. Checked against the Python model:

* the page's probabilities equal ``model.predict`` on the input the page prepared
  (within 1e-4), and the shown class is their argmax;
* the page's prepared input equals :func:`cnnlab.preprocess.prepare_array` of the
  same canvas pixels (the JavaScript port of the preparation);
* every request the page makes goes to the folder's own origin.

Skipped when Chromium, Playwright or onnx is missing, as ``tests/test_browser.py``.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

if not Path(CHROMIUM).is_file() and shutil.which("chromium") is None:
    pytest.skip(f"no Chromium at {CHROMIUM}", allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright (Python) is not installed"
)
pytest.importorskip("onnx", reason="onnx is not installed (cnnlab[onnx])")

from cnnlab.errors import DownloadError  # noqa: E402
from cnnlab.export.web import export_web, onnxruntime_web_files  # noqa: E402
from cnnlab.preprocess import prepare_array  # noqa: E402
from cnnlab.pretrained import load_pretrained  # noqa: E402


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """Python's plain static file server on a free localhost port, in a thread."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def model() -> Any:
    return load_pretrained()


@pytest.fixture(scope="module")
def site(model: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    try:
        onnxruntime_web_files()  # the pinned tarball: cached, or fetched from npm once
    except DownloadError as e:
        pytest.skip(f"onnxruntime-web is not available: {e}")
    folder = export_web(model, tmp_path_factory.mktemp("web") / "demo")
    with static_server(folder) as url:
        yield url


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as e:  # pragma: no cover - depends on the machine
            pytest.skip(f"Chromium does not start under Playwright: {e}")
        yield b
        b.close()


def open_page(browser: Any, url: str) -> Any:
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.errors = []
    page.requests = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.on("request", lambda r: page.requests.append(r.url))
    page.goto(url + "/")
    page.wait_for_function("window.cnnlabDemo && (window.cnnlabDemo.ready || "
                           "window.cnnlabDemo.error)", timeout=60000)
    assert page.evaluate("window.cnnlabDemo.error") is None
    return page


def stroke(page: Any, points: list[tuple[float, float]], steps: int = 10) -> None:
    """Drag the mouse through ``points`` (fractions of the canvas), as a user drawing."""
    box = page.locator("#pad").bounding_box()

    def at(p: tuple[float, float]) -> tuple[float, float]:
        return box["x"] + p[0] * box["width"], box["y"] + p[1] * box["height"]

    page.mouse.move(*at(points[0]))
    page.mouse.down()
    for a, b in zip(points, points[1:], strict=False):
        for t in range(1, steps + 1):
            page.mouse.move(*at((a[0] + (b[0] - a[0]) * t / steps,
                                 a[1] + (b[1] - a[1]) * t / steps)))
    page.mouse.up()


def settled(page: Any, after: int) -> dict[str, Any]:
    """The page's state once it has shown more than ``after`` results and is idle."""
    page.wait_for_function(
        f"window.cnnlabDemo.updates > {after} && !window.cnnlabDemo.busy", timeout=30000)
    return page.evaluate(
        "({input: window.cnnlabDemo.input, probabilities: window.cnnlabDemo.probabilities,"
        " prediction: window.cnnlabDemo.prediction, updates: window.cnnlabDemo.updates,"
        " shown: document.getElementById('prediction').dataset.prediction,"
        " canvas: Array.from(document.getElementById('pad').getContext('2d')"
        "   .getImageData(0, 0, 280, 280).data)})")


SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]
ONE = [(0.5, 0.15), (0.52, 0.85)]
ZERO = [(0.5, 0.15), (0.75, 0.35), (0.72, 0.7), (0.5, 0.85), (0.28, 0.65), (0.3, 0.3),
        (0.5, 0.15)]


@pytest.mark.parametrize("digit, points", [(7, SEVEN), (1, ONE), (0, ZERO)])
def test_the_page_computes_what_the_python_model_computes(
        browser: Any, site: str, model: Any, digit: int, points: list) -> None:
    page = open_page(browser, site)
    try:
        stroke(page, points)
        state = settled(page, 0)
        x = np.asarray(state["input"], dtype=np.float32).reshape(1, 28, 28, 1)
        probs = np.asarray(state["probabilities"], dtype=np.float64)
        expected = model.predict(x)[0]
        assert probs.shape == (10,)
        np.testing.assert_allclose(probs, expected, atol=1e-4, rtol=0)
        assert state["prediction"] == int(np.argmax(expected)) == int(state["shown"])
        # the JavaScript preparation is cnnlab.preprocess's, on the same canvas pixels
        canvas = np.asarray(state["canvas"], dtype=np.uint8).reshape(280, 280, 4)
        python_input = prepare_array(canvas)
        np.testing.assert_allclose(x[0, :, :, 0], python_input, atol=1e-5, rtol=0)
        assert state["prediction"] == digit, f"drew a {digit}, the model read {probs}"
        # nothing outside the folder's origin was asked for, and no script error
        outside = [u for u in page.requests if not u.startswith(site + "/")]
        assert outside == [], outside
        assert any(u.endswith("/ort/ort-wasm-simd-threaded.wasm") for u in page.requests)
        assert page.errors == []
        if digit == 7:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "web-export-demo.png"), full_page=True)
    finally:
        page.close()


def test_feature_maps_are_drawn_for_every_convolution_and_pooling_layer(
        browser: Any, site: str, model: Any) -> None:
    page = open_page(browser, site)
    try:
        stroke(page, SEVEN)
        settled(page, 0)
        shown = page.evaluate(
            "Array.from(document.querySelectorAll('#maps .layer')).map(l => "
            "[l.dataset.layer, l.querySelectorAll('canvas').length])")
        expected = [[la.name, la.output_shape[-1]] for la in model.layers
                    if la.kind in ("Conv2D", "MaxPooling2D", "AveragePooling2D")]
        assert shown == expected
        # the first map of the first layer is not blank
        lit = page.evaluate(
            "(() => { const cv = document.querySelector('#maps .layer canvas');"
            " const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;"
            " let n = 0; for (let i = 0; i < d.length; i += 4) n += d[i] > 0; return n; })()")
        assert lit > 0
    finally:
        page.close()
