"""The demo page in headless Chromium: draw a digit with the mouse, read the prediction.

Runs the real server (uvicorn, on a free localhost port, in a thread) and drives
Debian's Chromium (``/usr/bin/chromium``) with Playwright's sync API. Skipped
when Chromium, Playwright, FastAPI or uvicorn is missing. A screenshot goes to
``test-artifacts/browser-demo.png``.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (cnnlab[serve])")
pytest.importorskip("fastapi", reason="FastAPI is not installed (cnnlab[serve])")

from cnnlab.serve.app import create_app, small_model  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(model: Any) -> Iterator[str]:
    """Run the demo for ``model`` with uvicorn in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(model), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def model() -> Any:
    """The small test CNN, trained enough (87 %) to read a drawn 1 and 7."""
    return small_model(n_train=10000, epochs=1, seed=0)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as e:  # pragma: no cover - depends on the machine
            pytest.skip(f"Chromium does not start under Playwright: {e}")
        yield b
        b.close()


def open_page(browser: Any, url: str, width: int = 1200, height: int = 900) -> Any:
    page = browser.new_page(viewport={"width": width, "height": height})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.errors = errors
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']", timeout=10000)
    return page


def stroke(page: Any, points: list[tuple[float, float]], steps: int = 12) -> None:
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
            page.wait_for_timeout(8)
    page.mouse.up()


def wait_settled(page: Any, after: int) -> dict[str, Any]:
    """Wait until the page has shown more than ``after`` results and sent everything."""
    page.wait_for_function(
        f"window.cnnlabDemo.updates > {after} && !window.cnnlabDemo.busy", timeout=15000
    )
    page.wait_for_timeout(300)  # a last throttled request may follow
    page.wait_for_function("!window.cnnlabDemo.busy", timeout=15000)
    return page.evaluate("window.cnnlabDemo.last")


def shown(page: Any) -> int:
    return int(page.get_attribute("#prediction", "data-prediction"))


def api_prediction(page: Any, url: str) -> dict[str, Any]:
    """What the API answers for the canvas as it is now (the same PNG the page sends)."""
    import httpx

    canvas = page.evaluate("document.getElementById('pad').toDataURL('image/png')")
    res = httpx.post(url + "/api/predict", json={"image": canvas}, timeout=30)
    assert res.status_code == 200, res.text
    return res.json()


ONE = [(0.5, 0.15), (0.5, 0.85)]
SEVEN = [(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]


def test_draw_predict_random_clear(browser: Any, model: Any) -> None:
    with serve(model) as url:
        page = open_page(browser, url)
        tiles = page.locator("#maps .layer canvas").count()
        assert tiles == 8 + 8  # conv2d and max_pooling2d: 8 maps each
        assert page.locator("#bars .bar").count() == 10

        # A "1": one vertical stroke.
        stroke(page, ONE)
        result = wait_settled(page, 0)
        assert shown(page) == 1 == result["prediction"]
        assert page.text_content("#prediction").strip() == "1"
        assert api_prediction(page, url)["probabilities"] == result["probabilities"]
        top = page.locator("#bars .bar.top")
        assert top.count() == 1 and top.get_attribute("data-class") == "1"
        assert [layer["layer"] for layer in result["feature_maps"]] == ["conv2d", "max_pooling2d"]

        # Clear, then a "7".
        page.click("#clear")
        assert page.text_content("#prediction").strip() == "–"
        before = page.evaluate("window.cnnlabDemo.updates")
        stroke(page, SEVEN)
        result = wait_settled(page, before)
        assert shown(page) == 7
        assert api_prediction(page, url)["prediction"] == 7
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser-demo.png"), full_page=True)

        # Random MNIST digit: bars, true label and prediction come from the API's answer.
        before = page.evaluate("window.cnnlabDemo.updates")
        page.click("#random")
        result = wait_settled(page, before)
        page.wait_for_selector("#truth:not([hidden])")
        assert "label" in result
        assert page.get_attribute("#truth", "data-label") == str(result["label"])
        assert f"True label: {result['label']}" in page.text_content("#truth")
        assert shown(page) == result["prediction"]
        probs = [float(page.get_attribute(f"#bars .bar[data-class='{k}']", "data-prob"))
                 for k in range(10)]
        assert probs == pytest.approx(result["probabilities"])
        assert page.errors == []
        page.close()


def test_narrow_window(browser: Any, model: Any) -> None:
    with serve(model) as url:
        page = open_page(browser, url, width=360, height=740)
        stroke(page, ONE)
        wait_settled(page, 0)
        assert shown(page) == 1
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than a 360px window"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser-demo-narrow.png"), full_page=True)
        page.close()


def test_shipped_model_reads_a_drawn_one(browser: Any) -> None:
    from cnnlab.errors import ModelFileError
    from cnnlab.pretrained import load_pretrained

    try:
        shipped = load_pretrained()
    except ModelFileError as e:
        pytest.skip(f"no shipped model yet: {e}")
    with serve(shipped) as url:
        page = open_page(browser, url)
        stroke(page, ONE)
        result = wait_settled(page, 0)
        assert shown(page) == 1, json.dumps(result["probabilities"])
        assert len(result["feature_maps"]) == sum(
            layer.kind in ("Conv2D", "MaxPooling2D") for layer in shipped.layers)
        page.close()


# ----------------------------------------------------------------------------- image files
#
# Any image model: a colour model with named classes gets pictures from a file chosen or
# dropped on the page; a digit model keeps its drawing canvas and takes files as well.

COLOURS = ["red", "green", "blue"]


def _resized(data: bytes, size: tuple[int, int], color: str) -> Any:
    """cnnlab.preprocess.model_input's contract with Pillow alone (decode, EXIF-orient,
    convert, resize bilinear to H x W): uint8 (H, W, C)."""
    import io

    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img) or img
        img = img.convert("RGB" if color == "rgb" else "L")
        arr = np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return arr if arr.ndim == 3 else arr[..., None]


@pytest.fixture(autouse=True)
def model_input_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand in for cnnlab.preprocess.model_input while it is being written (same contract)."""
    import cnnlab.preprocess
    from cnnlab.errors import ImageDecodeError

    if hasattr(cnnlab.preprocess, "model_input"):
        return

    def fallback(source: Any, model: Any, *, name: str | None = None) -> Any:
        prep = model.preprocessing
        try:
            return _resized(bytes(source), tuple(prep["size"]), prep["color"])
        except OSError as e:
            raise ImageDecodeError(f"{name}: cannot read the image: {e}") from e

    monkeypatch.setattr(cnnlab.preprocess, "model_input", fallback, raising=False)


def png_bytes(arr: Any) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def colour_png(dominant: int, h: int = 37, w: int = 52, seed: int = 0) -> bytes:
    """A noisy picture of another size than the model's, brightest in one channel."""
    import numpy as np

    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 90, (h, w, 3))
    arr[:, :, dominant] += 150
    return png_bytes(arr.astype(np.uint8))


@pytest.fixture(scope="module")
def colour_model() -> Any:
    """A 16x20 RGB model with classes red, green, blue, trained on noisy colour pictures."""
    import numpy as np

    import cnnlab

    m = cnnlab.Sequential(
        [cnnlab.Conv2D(4, 3, activation="relu"), cnnlab.MaxPooling2D(2), cnnlab.Flatten(),
         cnnlab.Dense(3), cnnlab.Activation("softmax")],
        input_shape=(16, 20, 3), seed=0,
    )
    m.compile("adam")
    m.class_names = list(COLOURS)
    m.preprocessing = {"mode": "resize", "size": [16, 20], "color": "rgb"}
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    x = rng.integers(0, 90, (300, 16, 20, 3))
    x[np.arange(300), :, :, y] += rng.integers(120, 166, (300, 1, 1))
    m.fit(x.astype(np.uint8), y, epochs=10, batch_size=32, verbose=0)
    return m


DROP = """async ([b64, name, type]) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const dt = new DataTransfer();
  dt.items.add(new File([bytes], name, { type }));
  const target = document.querySelector(".maps-card");
  for (const kind of ["dragenter", "dragover", "drop"]) {
    const init = { bubbles: true, cancelable: true, dataTransfer: dt };
    target.dispatchEvent(new DragEvent(kind, init));
  }
}"""


def drop_file(page: Any, data: bytes, name: str, mime: str = "image/png") -> None:
    """Drop a file on the page as a user dragging it from the desktop would."""
    import base64

    page.evaluate(DROP, [base64.b64encode(data).decode("ascii"), name, mime])


def input_pixels(page: Any) -> Any:
    """The page's "model input" canvas as uint8 (H, W, 3)."""
    import numpy as np

    w, h = page.evaluate("[document.getElementById('input').width, "
                         "document.getElementById('input').height]")
    rgba = page.evaluate(
        "Array.from(document.getElementById('input').getContext('2d')"
        f".getImageData(0, 0, {w}, {h}).data)")
    return np.array(rgba, dtype=np.uint8).reshape(h, w, 4)[..., :3]


def test_colour_model_file_upload_and_drop(browser: Any, colour_model: Any) -> None:
    import httpx
    import numpy as np

    with serve(colour_model) as url:
        page = open_page(browser, url)
        # No canvas and no MNIST button for a colour model; bars named after the classes.
        assert page.is_hidden("#draw-area") and page.is_visible("#drop-zone")
        assert page.is_hidden("#random")
        assert page.locator("#bars .bar").count() == 3
        assert page.locator("#bars .bar .name").all_text_contents() == COLOURS
        assert page.locator("#maps .layer canvas").count() == 4 + 4
        assert "16×20 RGB input, 3 classes" in page.text_content("#model-name")

        # Choose a file with the file input.
        red = colour_png(0, seed=1)
        page.set_input_files("#file", files=[
            {"name": "red.png", "mimeType": "image/png", "buffer": red}])
        result = wait_settled(page, 0)
        assert result["prediction_name"] == "red"
        assert page.text_content("#prediction").strip() == "red"
        assert page.get_attribute("#prediction", "data-name") == "red"
        assert page.get_attribute("#prediction", "data-prediction") == "0"
        assert page.locator("#bars .bar.top").get_attribute("data-name") == "red"
        probs = [float(page.get_attribute(f"#bars .bar[data-class='{k}']", "data-prob"))
                 for k in range(3)]
        assert probs == pytest.approx(result["probabilities"])
        direct = httpx.post(url + "/api/predict", json={
            "image": "data:image/png;base64," + __import__("base64").b64encode(red).decode()},
            timeout=30).json()
        assert direct["probabilities"] == result["probabilities"]  # the file went as it is
        np.testing.assert_array_equal(input_pixels(page), _resized(red, (16, 20), "rgb"))
        assert page.is_visible("#photo")
        assert page.text_content("#status").startswith("red.png")

        # Drop another one on the page.
        before = page.evaluate("window.cnnlabDemo.updates")
        drop_file(page, colour_png(2, h=61, w=23, seed=2), "blue.png")
        result = wait_settled(page, before)
        assert page.text_content("#prediction").strip() == "blue" == result["prediction_name"]
        assert page.locator("#bars .bar.top").get_attribute("data-class") == "2"
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "browser-demo-colour.png"), full_page=True)

        # A file that is not an image: a message, the last answer stays.
        page.set_input_files("#file", files=[
            {"name": "notes.txt", "mimeType": "text/plain", "buffer": b"hello"}])
        page.wait_for_selector("#status.error")
        assert "notes.txt is not an image" in page.text_content("#status")
        # A file the browser cannot show is sent as it is: the server names the problem.
        drop_file(page, b"\x89PNG\r\n\x1a\n not really", "broken.png")
        page.wait_for_function("/broken.png: Error: 'image'/.test("
                               "document.getElementById('status').textContent)")

        page.click("#clear")
        assert page.text_content("#prediction").strip() == "–"
        assert page.is_visible("#drop-zone") and page.is_hidden("#photo")
        assert page.errors == []
        page.close()


def test_large_photo_is_scaled_in_the_browser(browser: Any, colour_model: Any) -> None:
    import numpy as np

    # 2400x1800: over the server's 2000-pixel side; a smooth picture keeps the PNG small.
    ramp = np.linspace(0, 255, 2400, dtype=np.float64)
    arr = np.zeros((1800, 2400, 3), np.uint8)
    arr[:, :, 1] = 200
    arr[:, :, 0] = (ramp[None, :] * 0.2).astype(np.uint8)
    with serve(colour_model) as url:
        page = open_page(browser, url)
        page.set_input_files("#file", files=[
            {"name": "big.png", "mimeType": "image/png", "buffer": png_bytes(arr)}])
        result = wait_settled(page, 0)
        assert result["prediction_name"] == "green"
        assert "scaled from 2400×1800 to 2000×1500" in page.text_content("#status")
        assert page.errors == []
        page.close()


def test_colour_page_in_a_narrow_window(browser: Any, colour_model: Any) -> None:
    with serve(colour_model) as url:
        page = open_page(browser, url, width=360, height=740)
        page.set_input_files("#file", files=[
            {"name": "a-picture-with-a-rather-long-file-name.png", "mimeType": "image/png",
             "buffer": colour_png(1, seed=4)}])
        wait_settled(page, 0)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"the page is {overflow}px wider than a 360px window"
        page.close()


def test_digit_model_takes_a_picture_file_too(browser: Any, model: Any) -> None:
    import numpy as np

    one = np.full((120, 90), 255, np.uint8)  # a dark "1" on white paper
    one[15:105, 40:52] = 20
    with serve(model) as url:
        page = open_page(browser, url)
        assert page.is_visible("#pad") and page.is_visible("#random")
        page.set_input_files("#file", files=[
            {"name": "one.png", "mimeType": "image/png", "buffer": png_bytes(one)}])
        result = wait_settled(page, 0)
        assert shown(page) == 1 == result["prediction"]
        assert result["prediction_name"] == "1"
        assert page.is_hidden("#draw-area") and page.is_visible("#photo")
        assert "MNIST" in page.text_content("#input-hint")
        page.click("#clear")
        assert page.is_visible("#pad") and page.is_hidden("#photo")
        # drawing works again after a picture
        stroke(page, ONE)
        before = page.evaluate("window.cnnlabDemo.updates")
        result = wait_settled(page, before - 1)
        assert shown(page) == 1
        assert page.errors == []
        page.close()
