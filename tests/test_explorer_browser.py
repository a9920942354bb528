"""The error explorer in headless Chromium: compute the confusion matrix, click a cell, click
an image; the page shows that test image, its attributions, and the randomisation check,
with numbers that agree with the Python API.

Runs the real server (uvicorn in a thread) and Debian's Chromium with Playwright, as
tests/test_browser.py does; skipped when either is missing. A screenshot goes to
``test-artifacts/explorer.png``.
"""

from __future__ import annotations

import shutil
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
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright (Python) is not installed")
pytest.importorskip("uvicorn", reason="uvicorn is not installed (cnnlab[serve])")
pytest.importorskip("fastapi", reason="FastAPI is not installed (cnnlab[serve])")

from test_browser import serve  # noqa: E402

from cnnlab import explain  # noqa: E402
from cnnlab.datasets import load_mnist  # noqa: E402
from cnnlab.serve.app import small_model  # noqa: E402


@pytest.fixture(scope="module")
def model() -> Any:
    return small_model(n_train=2000, epochs=1, seed=0)


@pytest.fixture(scope="module")
def browser() -> Any:
    with sync_api.sync_playwright() as p:
        try:
            b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as e:  # pragma: no cover - depends on the machine
            pytest.skip(f"Chromium does not start under Playwright: {e}")
        yield b
        b.close()


def test_click_a_cell_then_an_image(model: Any, browser: Any) -> None:
    _, (x_test, y_test) = load_mnist()
    pred = model.predict(x_test).argmax(axis=1)
    matrix = np.zeros((10, 10), np.int64)
    np.add.at(matrix, (y_test.astype(np.int64), pred), 1)
    off = matrix - np.diag(np.diag(matrix))
    t, p = (int(v) for v in np.unravel_index(off.argmax(), off.shape))

    with serve(model) as url:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready='1']", timeout=10000)
        page.wait_for_selector("body[data-explorer-ready='1']", timeout=10000)

        page.click("#ex-compute")
        page.wait_for_selector("body[data-explorer-matrix='1']", timeout=60000)
        shown = page.evaluate("""() => Array.from(document.querySelectorAll('#ex-matrix .ex-count'))
            .map((b) => [Number(b.dataset.true), Number(b.dataset.predicted),
                         Number(b.textContent)])""")
        got = np.zeros((10, 10), np.int64)
        for ti, pi, n in shown:
            got[ti, pi] = n
        np.testing.assert_array_equal(got, matrix)  # the counts drawn are the model's

        page.click(f"#ex-matrix .ex-count[data-true='{t}'][data-predicted='{p}']")
        page.wait_for_selector("body[data-explorer-cell='1']", timeout=20000)
        indices = page.evaluate("""() => Array.from(document.querySelectorAll('#ex-cell .ex-thumb'))
            .map((b) => Number(b.dataset.index))""")
        want = explain.confusion_from_probabilities(model.predict(x_test), y_test).cell(t, p)
        assert indices == want[:60].tolist()

        # click the most confident image: the page loads it, with its maps and attributions
        page.click(f"#ex-cell .ex-thumb[data-index='{indices[0]}']")
        page.wait_for_selector("body[data-explorer-attr='1']", timeout=30000)
        last = page.evaluate("window.cnnlabDemo.last")
        assert last["index"] == indices[0] and last["label"] == t and last["prediction"] == p
        assert page.locator("#truth").get_attribute("data-label") == str(t)
        assert page.locator("#ex-maps figure[data-method]").count() == 3

        # the sanity check: randomise the weights, read rho, compare with Python
        page.check("#ex-randomize")
        page.wait_for_selector("body[data-explorer-attr='2']", timeout=30000)
        rho = page.locator("#ex-maps figure[data-method='saliency'] .ex-rho").get_attribute(
            "data-rho")
        x = x_test[indices[0]].astype(np.float32) / 255
        trained = explain.saliency(model, x, p).map
        random = explain.saliency(explain.randomized_model(model, seed=0), x, p).map
        assert float(rho) == pytest.approx(explain.spearman(trained, random), abs=1e-5)
        ARTIFACTS.mkdir(exist_ok=True)
        page.locator("#explorer-root").screenshot(path=str(ARTIFACTS / "explorer.png"))
        assert not errors, errors
        page.close()
