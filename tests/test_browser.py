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
