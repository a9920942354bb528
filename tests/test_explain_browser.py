"""The "see the math" panels in headless Chromium: the numbers the page shows are Python's.

Runs the real server (uvicorn in a thread) around the shipped model and drives
Debian's Chromium with Playwright (launch flags and skips as tests/test_browser.py).
Clicks a pixel of a convolution map and of a pooling map, reads the panel's
numbers from the DOM and checks them against :func:`cnnlab.explain.pixel.explain_pixel`
and the model's feature maps; opens a gradient entry and its finite-difference
check; steps the live training twice and compares the streamed losses with
``fit()`` on the same recipe, exactly.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
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
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed (cnnlab[serve])")
pytest.importorskip("fastapi", reason="FastAPI is not installed (cnnlab[serve])")

from cnnlab.datasets import load_mnist, to_model_input  # noqa: E402
from cnnlab.explain.conv_grads import conv_gradients  # noqa: E402
from cnnlab.explain.pixel import explain_pixel  # noqa: E402
from cnnlab.pretrained import load_pretrained  # noqa: E402
from cnnlab.serve.app import create_app  # noqa: E402
from cnnlab.serve.live_training import Recipe, build  # noqa: E402
from cnnlab.training.callbacks import Callback  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serve(app: Any) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
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
    return load_pretrained()


@pytest.fixture(scope="module")
def app(model) -> Any:
    return create_app(model)


@pytest.fixture(scope="module")
def url(app) -> Iterator[str]:
    with serve(app) as u:
        yield u


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
    errors: list[str] = []
    # errors thrown by the page's own scripts (other panels' scripts are their tests' business)
    page.on("pageerror", lambda e: errors.append(f"{e} {getattr(e, 'stack', '')}")
            if any(f in f"{getattr(e, 'stack', '')}" for f in ("explain.js", "app.js")) else None)
    page.errors = errors
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=10000)
    page.wait_for_selector("#explain-root[data-ready='1']", timeout=10000)
    return page


def click_map(page: Any, layer: str, channel: int, y: int, x: int) -> None:
    """Click output pixel (y, x) of map ``channel`` of ``layer`` on the page."""
    cv = page.locator(f".layer[data-layer='{layer}'] .tiles canvas").nth(channel)
    box = cv.bounding_box()
    h, w = cv.evaluate("c => [c.height, c.width]")
    page.mouse.click(box["x"] + (x + 0.5) * box["width"] / w,
                     box["y"] + (y + 0.5) * box["height"] / h)


def value(page: Any, selector: str) -> float:
    return float(page.locator(selector).get_attribute("data-value"))


def wait_updates(page: Any, selector: str, after: int) -> None:
    page.wait_for_function(
        f"Number(document.querySelector('{selector}').dataset.updates || 0) > {after}",
        timeout=20000)


def test_click_a_pixel_and_read_the_math(browser, url, model):
    page = open_page(browser, url + "/")
    page.click("#random")
    page.wait_for_function("window.cnnlabDemo.updates > 0 && !window.cnnlabDemo.busy",
                           timeout=15000)
    index = page.evaluate("window.cnnlabDemo.last.index")
    _, (x_test, y_test) = load_mnist()
    x = to_model_input(x_test[index])[0]
    outs = dict(model.feature_maps(x[None]))

    # a convolution pixel in the last row and column: the 'same' padding is there
    click_map(page, "conv2d", 3, 27, 27)
    wait_updates(page, "#xp-pixel", 0)
    want = explain_pixel(model, x, "conv2d", 27, 27, 3)
    assert value(page, "#xp-sum") == pytest.approx(want["sum"], abs=1e-12)
    assert value(page, "#xp-bias") == pytest.approx(want["bias"], abs=1e-12)
    assert value(page, "#xp-pre") == pytest.approx(want["preactivation"], abs=1e-12)
    assert value(page, "#xp-sum") + value(page, "#xp-bias") == pytest.approx(
        value(page, "#xp-pre"), abs=1e-6)
    assert value(page, "#xp-model") == pytest.approx(float(outs["conv2d"][0, 27, 27, 3]),
                                                     abs=1e-7)
    assert value(page, "#xp-refvalue") == pytest.approx(float(outs["conv2d"][0, 27, 27, 3]),
                                                        abs=1e-5)
    assert page.locator("#xp-pixel td.pad").count() == 2 * 3  # window and products
    assert "float64" in page.locator("#xp-ref").inner_text()

    # a max-pooling pixel: the value and the winner
    click_map(page, "max_pooling2d", 5, 7, 6)
    wait_updates(page, "#xp-pixel", 1)
    assert value(page, "#xp-value") == pytest.approx(
        float(outs["max_pooling2d"][0, 7, 6, 5]), abs=1e-6)
    assert page.locator("#xp-pixel td.win").count() == 1

    # backprop: dL/db, one dL/dF entry opened, and its finite-difference check
    page.select_option("#xp-g-layer", "conv2d_1")
    page.fill("#xp-g-co", "7")
    page.fill("#xp-g-ci", "2")
    label = int(y_test[index])
    assert page.input_value("#xp-g-label") == str(label)  # the true label, preselected
    label = (label + 1) % 10  # a wrong one: large gradients, a finite difference that shows
    page.select_option("#xp-g-label", str(label))
    page.click("#xp-g-show")
    wait_updates(page, "#xp-g-out", 0)
    g = conv_gradients(model, x, label, "conv2d_1", 7, 2)
    assert float(page.locator("#xp-g-db").inner_text()) == pytest.approx(g["db"], rel=1e-4,
                                                                          abs=1e-12)
    page.locator("#xp-g-out table").nth(2).locator("td").nth(4).click()  # dF[1, 1]
    page.wait_for_selector("#xp-g-entry")
    # float32 passes on the server and here may round differently (BLAS threads)
    assert value(page, "#xp-g-entry") == pytest.approx(g["dF"][1][1], rel=1e-5)
    page.click("#xp-g-check-btn")
    page.wait_for_selector("#xp-fd-numeric", timeout=30000)
    analytic = value(page, "#xp-fd-analytic")
    assert abs(analytic) > 1e-4  # the check compares something
    assert analytic == pytest.approx(g["dF"][1][1], rel=1e-4)  # float64 twin vs float32 pass
    assert abs(analytic - value(page, "#xp-fd-numeric")) < 1e-6

    # one step on this tab's copy: the served model does not move
    weights = [w.copy() for w in model.get_weights()]
    page.click("#xp-g-onestep")
    page.wait_for_selector("#xp-g-step[data-steps='1']", timeout=20000)
    for a, b in zip(weights, model.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "explain-panels.png"), full_page=True)
    assert page.errors == []
    page.close()


def test_step_the_live_training_twice_equals_fit(browser, url, app):
    query = "seed=4&n=64&batch=16&optimizer=sgd&lr=0.05&every=1"
    page = open_page(browser, f"{url}/?{query}")
    ARTIFACTS.mkdir(exist_ok=True)
    page.click("#xp-live-step")
    page.wait_for_function("window.cnnlabExplain.live.losses.length === 1", timeout=30000)
    page.click("#xp-live-step")
    page.wait_for_function("window.cnnlabExplain.live.losses.length === 2", timeout=30000)
    page.wait_for_timeout(300)
    streamed = page.evaluate("window.cnnlabExplain.live.losses")
    assert len(streamed) == 2  # paused after two single steps

    recipe = Recipe.from_query(dict(p.split("=") for p in query.split("&")))
    fit_model, x, y, _ = build(recipe)
    seen: list[float] = []

    class Record(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])

    fit_model.fit(x, y, epochs=recipe.epochs, batch_size=recipe.batch, verbose=0,
                  callbacks=[Record()])
    assert streamed == seen[:2]  # bit for bit
    page.locator("#xp-live").screenshot(path=str(ARTIFACTS / "explain-live.png"))
    assert len(app.state.live_runs) == 1
    page.close()  # the page goes away: the server stops the run
    deadline = time.monotonic() + 15
    while len(app.state.live_runs) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(app.state.live_runs) == 0
