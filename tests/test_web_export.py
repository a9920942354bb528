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

The browser tests (marker ``browser``) skip when Chromium or Playwright is missing, as
``tests/test_browser.py``; the others check the folder and where onnxruntime-web comes
from (a tarball, a package folder, the checked download and its errors) with a small
fake package and a local server, offline. All skip without onnx.
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

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
HAVE_CHROMIUM = Path(CHROMIUM).is_file() or shutil.which("chromium") is not None

pytest.importorskip("onnx", reason="onnx is not installed (cnnlab[onnx])")
ort = pytest.importorskip("onnxruntime", reason="onnxruntime is not installed")

from cnnlab import Sequential  # noqa: E402
from cnnlab.cli import main  # noqa: E402
from cnnlab.errors import (  # noqa: E402
    ChecksumError,
    DownloadError,
    InvalidArgumentError,
    ModelFileError,
)
from cnnlab.export import web  # noqa: E402
from cnnlab.export.web import ORT_FILES, export_web, onnxruntime_web_files  # noqa: E402
from cnnlab.layers import Dense  # noqa: E402
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
    if not HAVE_CHROMIUM:
        pytest.skip(f"no Chromium at {CHROMIUM}")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright (Python) is not installed")
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


def outside(page: Any, origin: str) -> list[str]:
    """The page's requests that did not go to ``origin`` (its own ``blob:`` URLs, for a
    chosen file, and inline ``data:`` ones are local)."""
    return [u for u in page.requests
            if not u.startswith((origin + "/", f"blob:{origin}/", "data:"))]


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


@pytest.fixture(scope="module")
def page(browser: Any, site: str) -> Iterator[Any]:
    """One page for the module's tests (loading the 14 MB wasm once); each test clears it."""
    pg = open_page(browser, site)
    yield pg
    pg.close()


def draw(page: Any, points: list[tuple[float, float]]) -> dict[str, Any]:
    """Clear the pad, draw ``points``, and return the page's state once it is idle."""
    page.click("#clear")
    before = page.evaluate("window.cnnlabDemo.updates")
    stroke(page, points)
    return settled(page, before)


@pytest.mark.browser
@pytest.mark.parametrize("digit, points", [(7, SEVEN), (1, ONE), (0, ZERO)])
def test_the_page_computes_what_the_python_model_computes(
        page: Any, site: str, model: Any, digit: int, points: list) -> None:
    state = draw(page, points)
    x = np.asarray(state["input"], dtype=np.float32).reshape(1, 28, 28, 1)
    probs = np.asarray(state["probabilities"], dtype=np.float64)
    expected = model.predict(x)[0]
    assert probs.shape == (10,)
    np.testing.assert_allclose(probs, expected, atol=1e-4, rtol=0)
    assert state["prediction"] == int(np.argmax(expected)) == int(state["shown"])
    # the JavaScript preparation is cnnlab.preprocess's, on the same canvas pixels
    canvas = np.asarray(state["canvas"], dtype=np.uint8).reshape(280, 280, 4)
    np.testing.assert_allclose(x[0, :, :, 0], prepare_array(canvas), atol=1e-5, rtol=0)
    assert state["prediction"] == digit, f"drew a {digit}, the model read {probs}"
    # nothing outside the folder's origin was asked for, and no script error
    assert outside(page, site) == []
    assert any(u.endswith("/ort/ort-wasm-simd-threaded.wasm") for u in page.requests)
    assert page.errors == []
    if digit == 7:
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "web-export-demo.png"), full_page=True)


@pytest.mark.browser
def test_feature_maps_are_drawn_for_every_convolution_and_pooling_layer(
        page: Any, model: Any) -> None:
    draw(page, SEVEN)
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


@pytest.mark.browser
def test_a_chosen_picture_with_transparency_is_prepared_as_python_does(
        page: Any, site: str, model: Any, tmp_path: Path) -> None:
    """Black ink on a transparent background (composited on white, as in Python), from a
    file: the page's input is ``cnnlab.preprocess.prepare_image`` of the same file."""
    from PIL import Image, ImageDraw

    from cnnlab.preprocess import prepare_image

    img = Image.new("RGBA", (90, 120), (0, 0, 0, 0))
    ImageDraw.Draw(img).line([(20, 20), (70, 20), (35, 105)], fill=(0, 0, 0, 255), width=9)
    path = tmp_path / "seven.png"
    img.save(path)
    page.click("#clear")
    before = page.evaluate("window.cnnlabDemo.updates")
    page.set_input_files("#file", str(path))
    state = settled(page, before)
    x = np.asarray(state["input"], dtype=np.float32).reshape(28, 28)
    np.testing.assert_allclose(x, prepare_image(path), atol=1e-5, rtol=0)
    expected = model.predict(x[None, :, :, None])[0]
    np.testing.assert_allclose(state["probabilities"], expected, atol=1e-4, rtol=0)
    assert state["prediction"] == int(np.argmax(expected)) == 7
    assert outside(page, site) == [] and page.errors == []


@pytest.mark.browser
def test_a_colour_model_classifies_a_chosen_picture(browser: Any, site: str, tmp_path: Path):
    """A resize model (32x32 RGB, named classes): a PNG chosen with the file input, resized
    by the browser; the page's probabilities are the Python model's on the page's input."""
    from PIL import Image

    from cnnlab.zoo import vgg_small

    model = vgg_small(seed=1, num_classes=3)
    model.class_names = ["red_square", "green_circle", "blue_triangle"]
    model.preprocessing = {"mode": "resize", "size": [32, 32], "color": "rgb"}
    rng = np.random.default_rng(0)
    for layer in model.layers:  # moving statistics that do something
        if layer.kind == "BatchNormalization":
            layer.moving_mean[...] = rng.normal(0, 0.1, layer.moving_mean.shape)
            layer.moving_variance[...] = rng.uniform(0.5, 2.0, layer.moving_variance.shape)
    folder = export_web(model, tmp_path / "colour", onnxruntime_web=web.pinned_tarball())
    picture = tmp_path / "shape.png"
    Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(picture)
    with static_server(folder) as url:
        page = open_page(browser, url)
        try:
            assert page.evaluate("window.cnnlabDemo.model.drawing") is False
            page.set_input_files("#file", str(picture))
            state = settled(page, 0)
            x = np.asarray(state["input"], dtype=np.float32).reshape(1, 32, 32, 3)
            assert 0.0 <= x.min() and x.max() <= 1.0 and x.std() > 0.05
            expected = model.predict(x)[0]
            np.testing.assert_allclose(state["probabilities"], expected, atol=1e-4, rtol=0)
            assert int(state["shown"]) == int(np.argmax(expected))
            names = page.evaluate(
                "Array.from(document.querySelectorAll('#bars .bar')).map(b => b.dataset.name)")
            assert names == model.class_names
            assert outside(page, url) == []
            assert page.errors == []
        finally:
            page.close()


# ------------------------------------------------------------------ the folder, without a browser

FAKE_FILES = {rel: f"// fake {rel}\n".encode() for rel in ORT_FILES}


def fake_tarball(path: Path, files: dict[str, bytes] = FAKE_FILES) -> Path:
    """An npm-style tarball (``package/...``) holding ``files``."""
    import io
    import tarfile

    with tarfile.open(path, "w:gz") as tar:
        for rel, data in files.items():
            info = tarfile.TarInfo(f"package/{rel}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_the_folder_holds_the_page_the_model_and_onnxruntime_web(tmp_path: Path, capsys):
    model = load_pretrained()
    tgz = fake_tarball(tmp_path / "ort.tgz")
    out = tmp_path / "site"
    assert main(["export", "default", "--web", str(out), "--onnxruntime-web", str(tgz)]) == 0
    assert str(out) in capsys.readouterr().out
    names = sorted(str(f.relative_to(out)) for f in out.rglob("*") if f.is_file())
    assert names == ["app.js", "index.html", "model.json", "model.onnx", "ort/NOTICE.txt",
                     "ort/ort-wasm-simd-threaded.mjs", "ort/ort-wasm-simd-threaded.wasm",
                     "ort/ort.wasm.min.mjs", "style.css"]
    for rel, data in FAKE_FILES.items():
        assert (out / "ort" / Path(rel).name).read_bytes() == data
    html = (out / "index.html").read_text() + (out / "app.js").read_text()
    assert "http://" not in html and "https://" not in html  # nothing from elsewhere
    spec = __import__("json").loads((out / "model.json").read_text())
    assert spec["class_names"] == [str(k) for k in range(10)] and spec["drawing"] is True
    maps = [la["name"] for la in spec["layers"] if la["feature_maps"]]
    assert maps == ["conv2d", "max_pooling2d", "conv2d_1", "conv2d_2", "max_pooling2d_1"]
    # the model: the probabilities and every layer's output, as cnnlab computes them
    sess = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((2, 28, 28, 1), dtype=np.float32)
    outs = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x}),
                    strict=True))
    np.testing.assert_allclose(outs["output"], model.predict(x), atol=1e-5, rtol=0)
    for name, fmap in model.feature_maps(x):
        np.testing.assert_allclose(outs[f"layer:{name}"], fmap, atol=1e-5, rtol=1e-5)


def test_onnxruntime_web_from_a_package_folder(tmp_path: Path):
    for rel, data in FAKE_FILES.items():
        (tmp_path / "pkg" / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "pkg" / rel).write_bytes(data)
    assert onnxruntime_web_files(tmp_path / "pkg") == FAKE_FILES
    assert onnxruntime_web_files(tmp_path / "pkg" / "dist") == FAKE_FILES
    (tmp_path / "pkg" / ORT_FILES[2]).unlink()
    with pytest.raises(InvalidArgumentError, match="ort-wasm-simd-threaded.wasm"):
        onnxruntime_web_files(tmp_path / "pkg")


def test_bad_onnxruntime_web_sources_are_named(tmp_path: Path):
    with pytest.raises(InvalidArgumentError, match="no such file or folder"):
        onnxruntime_web_files(tmp_path / "missing.tgz")
    (tmp_path / "junk.tgz").write_bytes(b"not a tarball")
    with pytest.raises(ModelFileError, match="not a readable npm tarball"):
        onnxruntime_web_files(tmp_path / "junk.tgz")
    partial = dict(list(FAKE_FILES.items())[:2])
    with pytest.raises(ModelFileError, match="package/dist/ort-wasm-simd-threaded.wasm"):
        onnxruntime_web_files(fake_tarball(tmp_path / "partial.tgz", partial))


def test_offline_the_error_says_how_to_give_a_local_copy(tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setenv("CNNLAB_CACHE", str(tmp_path / "cache"))
    with socket_closed_port() as port:
        monkeypatch.setattr(web, "ORT_WEB_URL", f"http://127.0.0.1:{port}/ort.tgz")
        with pytest.raises(DownloadError, match="--onnxruntime-web PATH"):
            onnxruntime_web_files()
        assert main(["export", "default", "--web", str(tmp_path / "site")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: cannot download onnxruntime-web") and "npm pack" in err
    assert not list((tmp_path / "cache").rglob("*.tgz"))


@contextlib.contextmanager
def socket_closed_port() -> Iterator[int]:
    """A localhost port nothing listens on (bound, never listening)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def test_the_download_is_checked_against_the_pinned_sha512(tmp_path: Path, monkeypatch):
    served = tmp_path / "served"
    served.mkdir()
    tgz = fake_tarball(served / "ort.tgz")
    cache = tmp_path / "cache"
    monkeypatch.setenv("CNNLAB_CACHE", str(cache))
    with static_server(served) as url:
        monkeypatch.setattr(web, "ORT_WEB_URL", f"{url}/ort.tgz")
        with pytest.raises(ChecksumError, match="nothing was cached"):
            onnxruntime_web_files()
        assert not list(cache.rglob("*.tgz")) and not list(cache.rglob("*.tmp"))
        # the same file under its real hash is accepted, cached, and used from the cache
        import base64
        import hashlib

        digest = base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
        monkeypatch.setattr(web, "ORT_WEB_INTEGRITY", f"sha512-{digest}")
        assert onnxruntime_web_files() == FAKE_FILES
    assert len(list(cache.rglob("*.tgz"))) == 1
    assert onnxruntime_web_files() == FAKE_FILES  # the server is gone: from the cache
    # a damaged cache file is not used: fetched again (here: offline, so an error)
    cached = next(cache.rglob("*.tgz"))
    cached.write_bytes(b"damaged")
    with socket_closed_port() as port:
        monkeypatch.setattr(web, "ORT_WEB_URL", f"http://127.0.0.1:{port}/ort.tgz")
        with pytest.raises(DownloadError):
            onnxruntime_web_files()
    assert not cached.exists()


def test_a_model_that_takes_no_pictures_is_refused(tmp_path: Path):
    model = Sequential([Dense(3)], input_shape=(4,), seed=0)
    with pytest.raises(InvalidArgumentError, match=r"input must be \(H, W, 1\) or \(H, W, 3\)"):
        export_web(model, tmp_path / "site", onnxruntime_web=fake_tarball(tmp_path / "o.tgz"))
