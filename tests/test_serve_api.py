"""The demo's JSON API (cnnlab.serve): good requests agree with the model, bad ones get a 4xx."""

from __future__ import annotations

import argparse
import base64
import io
import struct
import threading
import warnings
import zlib
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():  # Starlette's TestClient: "install httpx2 instead"
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from cnnlab.datasets import load_mnist, to_model_input  # noqa: E402
from cnnlab.errors import InvalidArgumentError  # noqa: E402
from cnnlab.layers import Activation, Dense, Flatten  # noqa: E402
from cnnlab.model import Sequential  # noqa: E402
from cnnlab.preprocess import prepare_array, prepare_image  # noqa: E402
from cnnlab.serve import cli as serve_cli  # noqa: E402
from cnnlab.serve.app import MAX_BODY_BYTES, create_app, small_model  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx2")


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def model() -> Sequential:
    """Conv2D(8) -> MaxPooling2D -> Flatten -> Dense(10) -> softmax, 1 epoch on 2,000 images."""
    return small_model(n_train=2000, epochs=1, seed=0)


@pytest.fixture(scope="module")
def client(model: Sequential) -> TestClient:
    return TestClient(create_app(model, source="test"))


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    _, test = load_mnist()
    return test


def png_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode("ascii")


def decode_png_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))) as img:
        return np.asarray(img)


def fake_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (its data is a stub)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def check_prediction(body: dict[str, Any], model: Sequential, prepared: np.ndarray) -> None:
    """The answer is the model's for ``prepared`` (28x28): probabilities, class, maps."""
    expected = model.predict(prepared[None])[0]
    probs = np.array(body["probabilities"])
    assert probs.shape == (10,)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(probs, expected, rtol=1e-5, atol=1e-6)
    assert body["prediction"] == int(np.argmax(expected))
    np.testing.assert_allclose(np.array(body["input"]), prepared, atol=5e-5)
    # The fields added for named classes and any input: the indices as names for MNIST.
    assert body["classes"] == [str(k) for k in range(10)]
    assert body["prediction_name"] == str(body["prediction"])
    np.testing.assert_array_equal(decode_png_url(body["input_image"]),
                                  np.rint(np.clip(prepared, 0.0, 1.0) * 255.0))

    outputs = dict(model.feature_maps(prepared[None]))
    shown = [la for la in model.layers if la.kind in ("Conv2D", "MaxPooling2D")]
    assert [fm["layer"] for fm in body["feature_maps"]] == [la.name for la in shown]
    for fm, layer in zip(body["feature_maps"], shown, strict=True):
        h, w, c = layer.output_shape
        assert fm["type"] == layer.kind
        assert fm["shape"] == [h, w, c]
        strip = decode_png_url(fm["image"])
        assert strip.shape == (c * h, w)
        out = np.moveaxis(outputs[layer.name][0], -1, 0)  # (C, H, W)
        np.testing.assert_allclose(fm["max"], out.max(axis=(1, 2)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fm["min"], out.min(axis=(1, 2)), rtol=1e-5, atol=1e-6)
        for k in range(c):  # each tile is its map scaled to 0..255
            tile = strip[k * h:(k + 1) * h].astype(float)
            lo, hi = min(0.0, out[k].min()), out[k].max()
            if hi > lo:
                np.testing.assert_allclose(tile, (out[k] - lo) / (hi - lo) * 255, atol=1.01)


# ----------------------------------------------------------------------------- good requests


def test_page_static_and_openapi(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert 'id="pad"' in page.text and "Random MNIST digit" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # nothing external
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/api/predict", "/api/model", "/api/random-test-image"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert {"PredictRequest", "Prediction", "FeatureMap", "RandomTestImage"} <= set(schemas)
    assert "422" in spec["paths"]["/api/predict"]["post"]["responses"]


def test_model_info(client: TestClient, model: Sequential) -> None:
    info = client.get("/api/model").json()
    assert info["name"] == model.name and info["source"] == "test"
    assert info["input_shape"] == [28, 28, 1] and info["num_classes"] == 10
    assert info["params"] == model.count_params()
    assert [la["name"] for la in info["layers"]] == [la.name for la in model.layers]
    assert [la["feature_maps"] for la in info["layers"]] == [True, True, False, False, False]
    assert "Total params" in info["summary"]
    assert info["class_names"] == [str(k) for k in range(10)]
    assert info["preprocessing"] == {"mode": "digit", "size": [28, 28], "color": "grayscale"}
    assert (info["drawing"], info["pixels"], info["test_images"]) == (True, True, True)


def test_predict_png_is_prepared_like_cnnlab_predict(
    client: TestClient, model: Sequential, mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    # An MNIST digit as a big dark-on-light RGB photo: the server must prepare it exactly
    # as prepare_image (the code of `cnnlab predict`) does.
    digit = Image.fromarray(255 - mnist_test[0][3]).resize((200, 200), Image.Resampling.BILINEAR)
    data = png_bytes(np.asarray(digit.convert("RGB")))
    res = client.post("/api/predict", json={"image": data_url(data)})
    assert res.status_code == 200, res.text
    check_prediction(res.json(), model, prepare_image(data))


def test_predict_bare_base64_and_jpeg(client: TestClient, model: Sequential) -> None:
    canvas = np.zeros((140, 140), np.uint8)
    canvas[20:120, 62:78] = 255
    buf = io.BytesIO()
    Image.fromarray(canvas).save(buf, format="JPEG", quality=95)
    res = client.post("/api/predict", json={"image": base64.b64encode(buf.getvalue()).decode()})
    assert res.status_code == 200, res.text
    check_prediction(res.json(), model, prepare_image(buf.getvalue()))


def test_predict_pixels(
    client: TestClient, model: Sequential, mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    img = mnist_test[0][7]
    res = client.post("/api/predict", json={"pixels": img.tolist()})
    assert res.status_code == 200, res.text
    check_prediction(res.json(), model, prepare_array(img.astype(np.float64) / 255.0))
    # A canvas of another size, values as floats.
    big = np.kron(img, np.ones((3, 2))).astype(float)
    res = client.post("/api/predict", json={"pixels": big.tolist(), "include_maps": False})
    assert res.status_code == 200
    assert res.json()["feature_maps"] == []


def test_predict_raw_mnist_without_preparation(
    client: TestClient, model: Sequential, mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = mnist_test
    for i in range(5):
        res = client.post("/api/predict", json={"pixels": x[i].tolist(), "prepare": False})
        assert res.status_code == 200
        check_prediction(res.json(), model, to_model_input(x[i])[0, ..., 0])


def test_random_test_image(
    client: TestClient, model: Sequential, mnist_test: tuple[np.ndarray, np.ndarray]
) -> None:
    x, y = mnist_test
    body = client.get("/api/random-test-image", params={"index": 42}).json()
    assert body["index"] == 42 and body["label"] == int(y[42])
    np.testing.assert_array_equal(decode_png_url(body["image"]), x[42])
    check_prediction(body, model, to_model_input(x[42])[0, ..., 0])
    seen = set()
    for _ in range(5):
        res = client.get("/api/random-test-image", params={"include_maps": False})
        assert res.status_code == 200
        body = res.json()
        assert 0 <= body["index"] < len(x) and body["label"] == int(y[body["index"]])
        assert body["feature_maps"] == []
        seen.add(body["index"])
    assert len(seen) > 1


def test_concurrent_requests_agree(client: TestClient, mnist_test: tuple[np.ndarray, Any]) -> None:
    images = [mnist_test[0][i] for i in range(16)]
    payloads = [{"image": data_url(png_bytes(img)), "include_maps": False} for img in images]
    sequential = [client.post("/api/predict", json=p).json()["probabilities"] for p in payloads]
    results: dict[int, list[float]] = {}

    def worker(k: int) -> None:
        for i in range(k, len(payloads), 4):
            results[i] = client.post("/api/predict", json=payloads[i]).json()["probabilities"]

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [results[i] for i in range(len(payloads))] == sequential


# ----------------------------------------------------------------------------- bad requests

JSON = {"content-type": "application/json"}
BLANK = data_url(png_bytes(np.zeros((64, 64), np.uint8)))
WHITE = data_url(png_bytes(np.full((64, 64), 255, np.uint8)))
A_DIGIT = np.zeros((28, 28), int)
A_DIGIT[5:23, 12:16] = 255

BAD: dict[str, tuple[dict[str, Any], int, str]] = {
    "not JSON": ({"content": b"{image: ", "headers": JSON}, 400, "not valid JSON"),
    "text/plain body": ({"content": b"hello", "headers": {"content-type": "text/plain"}},
                        415, "must be JSON"),
    "no content type": ({"content": b'{"image": "x"}'}, 415, "must be JSON"),
    "JSON list": ({"json": [1, 2, 3]}, 422, "JSON object"),
    "JSON string": ({"json": "data:image/png;base64,AAAA"}, 422, "JSON object"),
    "empty object": ({"json": {}}, 422, "exactly one of"),
    "both fields": ({"json": {"image": BLANK, "pixels": [[1]]}}, 422, "exactly one of"),
    "unknown field": ({"json": {"img": BLANK}}, 422, "img"),
    "image not a string": ({"json": {"image": 5}}, 422, "image"),
    "image null": ({"json": {"image": None}}, 422, "exactly one of"),
    "prepare not bool": ({"json": {"pixels": [[1]], "prepare": "maybe"}}, 422, "prepare"),
    "bad base64": ({"json": {"image": "data:image/png;base64,@@@notbase64"}}, 400, "base64"),
    "base64 padding": ({"json": {"image": "data:image/png;base64,AAA"}}, 400, "base64"),
    "empty data": ({"json": {"image": "data:image/png;base64,"}}, 400, "no data"),
    "not a data URL": ({"json": {"image": "data:text/plain,hello"}}, 400, "data URL"),
    "not an image": ({"json": {"image": data_url(b"hello, world" * 10)}}, 400, "not an image"),
    "svg": ({"json": {"image": data_url(b"<svg xmlns='http://www.w3.org/2000/svg'/>",
                                        "image/svg+xml")}}, 400, "not an image"),
    "truncated PNG": ({"json": {"image": data_url(png_bytes(
        np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))[:200])}},
        400, "image"),
    "empty image": ({"json": {"image": BLANK}}, 422, "no digit found"),
    "white image": ({"json": {"image": WHITE}}, 422, "no digit found"),
    "blank pixels": ({"json": {"pixels": [[0] * 10] * 10}}, 422, "no digit found"),
    "image too wide": ({"json": {"image": data_url(png_bytes(np.zeros((4, 2001), np.uint8)))}},
                       413, "too large"),
    "decompression bomb": ({"json": {"image": data_url(fake_png_header(60000, 60000))}},
                           413, "too large"),
    "pixels too tall": ({"json": {"pixels": [[0]] * 2001}}, 413, "too large"),
    "NaN pixel": ({"content": b'{"pixels": [[NaN, 1], [1, 1]]}', "headers": JSON},
                  422, "finite"),
    "infinite pixel": ({"content": b'{"pixels": [[1, -Infinity]]}', "headers": JSON},
                       422, "finite"),
    "overflowing pixel": ({"content": b'{"pixels": [[1e400]]}', "headers": JSON}, 422, "finite"),
    "pixel > 255": ({"json": {"pixels": [[256]]}}, 422, "less than or equal to 255"),
    "negative pixel": ({"json": {"pixels": [[-1]]}}, 422, "greater than or equal to 0"),
    "string pixel": ({"json": {"pixels": [["7"]]}}, 422, "valid number"),
    "bool pixel": ({"json": {"pixels": [[True]]}}, 422, "valid number"),
    "flat pixels": ({"json": {"pixels": [0, 255, 0]}}, 422, "valid list"),
    "3-D pixels": ({"json": {"pixels": [[[0, 0, 0]]]}}, 422, "valid number"),
    "ragged rows": ({"json": {"pixels": [[0, 1, 2], [3, 4]]}}, 422, "differ in length"),
    "no rows": ({"json": {"pixels": []}}, 422, "empty"),
    "empty row": ({"json": {"pixels": [[]]}}, 422, "empty"),
    "unprepared not 28x28": ({"json": {"pixels": [[0] * 27] * 28, "prepare": False}},
                             422, "28x28"),
    "unprepared image": ({"json": {"image": BLANK, "prepare": False}}, 422, "pixels"),
    "oversize body": ({"content": b'{"image": "' + b"A" * (MAX_BODY_BYTES + 10) + b'"}',
                       "headers": JSON}, 413, "too large"),
}


@pytest.mark.parametrize("case", list(BAD), ids=list(BAD))
def test_bad_payload_is_a_4xx_with_a_message(client: TestClient, case: str) -> None:
    kwargs, status, needle = BAD[case]
    res = client.post("/api/predict", **kwargs)
    assert res.status_code == status, res.text
    body = res.json()
    assert isinstance(body["detail"], str) and body["detail"]
    assert needle.lower() in body["detail"].lower(), body["detail"]


def _encoded(img: Image.Image, fmt: str, **kw: Any) -> str:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _stroke() -> Image.Image:
    arr = np.zeros((60, 40), np.uint8)
    arr[10:50, 15:25] = 255
    return Image.fromarray(arr)


IMAGE_KINDS: dict[str, tuple[Any, int]] = {
    "1-bit": (lambda: _encoded(_stroke().convert("1"), "PNG"), 200),
    "16-bit": (lambda: _encoded(Image.fromarray(np.asarray(_stroke(), np.uint16) * 257), "PNG"),
               200),
    "gray+alpha": (lambda: _encoded(Image.merge("LA", [_stroke(), _stroke()]), "PNG"), 200),
    "palette+transparency": (lambda: _encoded(_stroke().convert("P"), "PNG", transparency=0),
                             200),
    "CMYK JPEG": (lambda: _encoded(_stroke().convert("CMYK"), "JPEG"), 200),
    "GIF": (lambda: _encoded(_stroke(), "GIF"), 200),
    "BMP": (lambda: _encoded(_stroke(), "BMP"), 200),
    "WebP": (lambda: _encoded(_stroke(), "WEBP"), 200),
    "transparent": (lambda: _encoded(Image.new("RGBA", (30, 30), (255, 255, 255, 0)), "PNG"),
                    422),
    "1x1": (lambda: _encoded(Image.new("L", (1, 1), 255), "PNG"), 422),
    "flat grey": (lambda: _encoded(Image.new("L", (50, 50), 128), "PNG"), 422),
    "TIFF (refused)": (lambda: _encoded(_stroke(), "TIFF"), 400),
}


@pytest.mark.parametrize("kind", list(IMAGE_KINDS), ids=list(IMAGE_KINDS))
def test_image_kinds(client: TestClient, kind: str) -> None:
    make, status = IMAGE_KINDS[kind]
    res = client.post("/api/predict", json={"image": make(), "include_maps": False})
    assert res.status_code == status, res.text
    if status == 200:
        assert 0 <= res.json()["prediction"] <= 9
    else:
        assert res.json()["detail"]


def test_oversize_chunked_body(client: TestClient) -> None:
    def chunks():
        yield b'{"image": "'
        for _ in range(40):
            yield b"A" * 65536
        yield b'"}'

    res = client.post("/api/predict", content=chunks(), headers=JSON)
    assert res.status_code == 413
    assert "too large" in res.json()["detail"]


def test_ok_body_just_under_the_limit_is_read(client: TestClient) -> None:
    head = '{"pixels": ' + str(A_DIGIT.tolist())
    body = (head + " " * (MAX_BODY_BYTES - len(head) - 1) + "}").encode()
    assert len(body) == MAX_BODY_BYTES
    assert client.post("/api/predict", content=body, headers=JSON).status_code == 200


def test_bad_random_index_and_methods(client: TestClient) -> None:
    for params, status in (({"index": 10000}, 422), ({"index": -1}, 422),
                           ({"index": "x"}, 422), ({"include_maps": "perhaps"}, 422)):
        res = client.get("/api/random-test-image", params=params)
        assert res.status_code == status
        assert res.json()["detail"]
    assert client.get("/api/predict").status_code == 405
    assert client.post("/api/model", json={}).status_code == 405
    assert client.get("/api/nothing").status_code == 404


def test_decode_errors_name_the_field_and_blank_pictures_say_no_digit(client: TestClient) -> None:
    truncated = BAD["truncated PNG"][0]
    res = client.post("/api/predict", **truncated)
    assert res.status_code == 400
    assert res.json()["detail"].startswith("'image': cannot read the image")
    for body in ({"image": BLANK}, {"pixels": [[0] * 10] * 10}):
        res = client.post("/api/predict", json=body)
        assert (res.status_code, res.json()) == (
            422, {"detail": "no digit found: the picture is blank"})


def test_small_model_is_the_zoo_small_cnn(model: Sequential) -> None:
    from cnnlab.zoo import small_cnn

    reference = small_cnn(seed=0)
    assert model.name == reference.name
    assert [la.kind for la in model.layers] == [la.kind for la in reference.layers]
    assert model.count_params() == reference.count_params()


def test_create_app_refuses_models_that_do_not_take_images() -> None:
    def dense(shape: tuple[int, ...]) -> Sequential:
        return Sequential([Flatten(), Dense(3), Activation("softmax")], input_shape=shape, seed=0)

    for shape in ((784,), (8, 8, 2), (8, 8, 4), (2, 8, 8, 1)):
        with pytest.raises(InvalidArgumentError, match=r"\(H, W, 1\).*\(H, W, 3\)"):
            create_app(dense(shape))
    with pytest.raises(InvalidArgumentError, match="not built"):
        create_app(Sequential([Flatten(), Dense(3)]))
    digit_but_colour = dense((32, 32, 3))
    digit_but_colour.preprocessing = {"mode": "digit"}
    with pytest.raises(InvalidArgumentError, match="'digit'.*32x32x3"):
        create_app(digit_but_colour)
    wrong_size = dense((16, 20, 3))
    wrong_size.preprocessing = {"mode": "resize", "size": [20, 16], "color": "rgb"}
    with pytest.raises(InvalidArgumentError, match="16x20x3"):
        create_app(wrong_size)
    wrong_colour = dense((16, 20, 3))
    wrong_colour.preprocessing = {"mode": "resize", "size": [16, 20], "color": "grayscale"}
    with pytest.raises(InvalidArgumentError, match="rgb"):
        create_app(wrong_colour)
    unknown = dense((16, 20, 3))
    unknown.preprocessing = {"mode": "crop"}
    with pytest.raises(InvalidArgumentError, match="'crop'"):
        create_app(unknown)
    create_app(dense((32, 32, 3)))  # any other image model is served


# ----------------------------------------------------------------------------- command line


def test_cli_register_and_missing_model(tmp_path: Any, capsys: pytest.CaptureFixture) -> None:
    parser = argparse.ArgumentParser(prog="cnnlab")
    serve_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve"])
    assert (args.model, args.host, args.port, args.func) == (None, "127.0.0.1", 8000,
                                                               serve_cli.run)
    args = parser.parse_args(["serve", "m.safetensors", "--host", "0.0.0.0", "--port", "9"])
    assert (args.model, args.host, args.port) == ("m.safetensors", "0.0.0.0", 9)
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--port", "99999"])
    capsys.readouterr()
    args = parser.parse_args(["serve", str(tmp_path / "missing.safetensors")])
    assert args.func(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab: error: ") and "\n" not in err
    assert "no such model file" in err


def test_openapi_is_served_and_cdn_pages_are_not(client):
    spec = client.get("/openapi.json").json()
    assert "/api/predict" in spec["paths"]
    assert client.get("/docs").status_code == 404
    assert client.get("/redoc").status_code == 404


# ----------------------------------------------------------------------------- any image model
#
# A model for RGB pictures of 16x20 pixels with named classes: pictures are decoded, resized
# (bilinear) and given to it as they are, by cnnlab.preprocess.model_input.

COLOURS = ["red", "green", "blue"]
COLOUR_PREP = {"mode": "resize", "size": [16, 20], "color": "rgb"}


def resized_like_the_contract(data: bytes, size: tuple[int, int], color: str) -> np.ndarray:
    """model_input's contract with Pillow alone: decode, EXIF-orient, convert, resize bilinear
    to H x W; uint8 (H, W, C)."""
    from PIL import ImageOps

    with Image.open(io.BytesIO(data)) as img:
        img = ImageOps.exif_transpose(img) or img
        img = img.convert("RGB" if color == "rgb" else "L")
        arr = np.asarray(img.resize((size[1], size[0]), Image.Resampling.BILINEAR))
    return arr if arr.ndim == 3 else arr[..., None]


def _fallback_model_input(source: Any, model: Any, *, name: str | None = None) -> np.ndarray:
    """Stands in for cnnlab.preprocess.model_input while it is being written (same contract)."""
    from cnnlab.errors import ImageDecodeError

    h, w, c = model.input_shape
    prep = model.preprocessing or {"size": [h, w], "color": "rgb" if c == 3 else "grayscale"}
    try:
        return resized_like_the_contract(bytes(source), tuple(prep["size"]), prep["color"])
    except OSError as e:
        raise ImageDecodeError(f"{name}: cannot read the image: {e}") from e


@pytest.fixture(autouse=True)
def model_input_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlab.preprocess

    if not hasattr(cnnlab.preprocess, "model_input"):
        monkeypatch.setattr(cnnlab.preprocess, "model_input", _fallback_model_input,
                            raising=False)


def colour_pictures(n: int, seed: int, size: tuple[int, int] = (16, 20)) -> tuple[Any, Any]:
    """Noisy pictures, each brightest in one channel: class 0 red, 1 green, 2 blue."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    x = rng.integers(0, 90, (n, *size, 3))
    x[np.arange(n), :, :, y] += rng.integers(120, 166, (n, 1, 1))
    return x.astype(np.uint8), y


def make_colour_model(train: bool = True) -> Sequential:
    from cnnlab.layers import Conv2D, MaxPooling2D

    m = Sequential([Conv2D(4, 3, activation="relu"), MaxPooling2D(2), Flatten(), Dense(3),
                    Activation("softmax")], input_shape=(16, 20, 3), seed=0)
    m.compile("adam")
    m.class_names = list(COLOURS)
    m.preprocessing = dict(COLOUR_PREP)
    if train:
        x, y = colour_pictures(300, seed=1)
        m.fit(x, y, epochs=10, batch_size=32, verbose=0)
    return m


@pytest.fixture(scope="module")
def colour_model() -> Sequential:
    return make_colour_model()


@pytest.fixture(scope="module")
def colour_client(colour_model: Sequential) -> TestClient:
    return TestClient(create_app(colour_model, source="colours"))


def rgb_png(h: int = 40, w: int = 50, seed: int = 0, dominant: int | None = None) -> bytes:
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, (h, w, 3)).astype(np.uint8)
    if dominant is not None:
        arr = (arr // 3).astype(np.uint8)
        arr[:, :, dominant] += 150
    return png_bytes(arr)


def test_colour_model_info(colour_client: TestClient, colour_model: Sequential) -> None:
    info = colour_client.get("/api/model").json()
    assert info["input_shape"] == [16, 20, 3] and info["output_shape"] == [3]
    assert info["num_classes"] == 3
    assert info["class_names"] == COLOURS
    assert info["preprocessing"] == COLOUR_PREP
    assert (info["drawing"], info["pixels"], info["test_images"]) == (False, False, False)
    assert [la["feature_maps"] for la in info["layers"]] == [True, True, False, False, False]
    assert info["params"] == colour_model.count_params()


def test_colour_predict_equals_model_predict_on_the_resized_picture(
    colour_client: TestClient, colour_model: Sequential
) -> None:
    data = rgb_png(40, 50, seed=3)
    res = colour_client.post("/api/predict", json={"image": data_url(data)})
    assert res.status_code == 200, res.text
    body = res.json()
    pixels = resized_like_the_contract(data, (16, 20), "rgb")
    assert pixels.shape == (16, 20, 3)
    expected = colour_model.predict(pixels[None])[0]
    np.testing.assert_allclose(body["probabilities"], expected, rtol=0, atol=1e-6)
    assert sum(body["probabilities"]) == pytest.approx(1.0, abs=1e-5)
    assert body["classes"] == COLOURS
    assert body["prediction"] == int(np.argmax(expected))
    assert body["prediction_name"] == COLOURS[body["prediction"]]
    # The input as the model saw it: RGB numbers and an RGB PNG of exactly those pixels.
    np.testing.assert_allclose(np.array(body["input"]), pixels / 255.0, atol=5e-5)
    np.testing.assert_array_equal(decode_png_url(body["input_image"]), pixels)
    # Feature maps of a colour, non-28x28 model.
    outputs = dict(colour_model.feature_maps(pixels[None]))
    assert [(fm["layer"], fm["shape"]) for fm in body["feature_maps"]] == [
        ("conv2d", [14, 18, 4]), ("max_pooling2d", [7, 9, 4])]
    for fm in body["feature_maps"]:
        out = outputs[fm["layer"]][0]
        h, w, c = fm["shape"]
        assert decode_png_url(fm["image"]).shape == (c * h, w)
        np.testing.assert_allclose(fm["max"], out.max(axis=(0, 1)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(fm["min"], out.min(axis=(0, 1)), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("colour", range(3), ids=COLOURS)
def test_colour_pictures_get_their_names(colour_client: TestClient, colour: int) -> None:
    res = colour_client.post("/api/predict", json={"image": data_url(rgb_png(33, 47, seed=colour,
                                                                         dominant=colour)),
                                                   "include_maps": False})
    assert res.status_code == 200, res.text
    body = res.json()
    assert body["prediction_name"] == COLOURS[colour]
    assert body["feature_maps"] == []


def test_colour_jpeg_with_exif_orientation(colour_client: TestClient,
                                           colour_model: Sequential) -> None:
    arr = np.zeros((30, 60, 3), np.uint8)
    arr[:, :30, 0] = 255  # left half red, right half blue: rotating moves them
    arr[:, 30:, 2] = 255
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    data = buf.getvalue()
    pixels = resized_like_the_contract(data, (16, 20), "rgb")
    body = colour_client.post("/api/predict", json={"image": data_url(data, "image/jpeg")}).json()
    np.testing.assert_array_equal(decode_png_url(body["input_image"]), pixels)
    np.testing.assert_allclose(body["probabilities"], colour_model.predict(pixels[None])[0],
                               rtol=0, atol=1e-6)


def test_colour_include_input_false(colour_client: TestClient) -> None:
    body = colour_client.post("/api/predict", json={"image": data_url(rgb_png()),
                                                    "include_input": False}).json()
    assert body["input"] == []
    assert decode_png_url(body["input_image"]).shape == (16, 20, 3)


COLOUR_BAD: dict[str, tuple[dict[str, Any], int, str]] = {
    "pixels": ({"pixels": A_DIGIT.tolist()}, 422, "'pixels' is only for digit models"),
    "raw pixels": ({"pixels": A_DIGIT.tolist(), "prepare": False}, 422, "send the picture as"),
    "decompression bomb": ({"image": data_url(fake_png_header(60000, 60000))}, 413, "too large"),
    "too wide": ({"image": data_url(png_bytes(np.zeros((4, 2001, 3), np.uint8)))}, 413,
                 "too large"),
    "not an image": ({"image": data_url(b"hello, world" * 10)}, 400, "not an image"),
    "truncated": ({"image": data_url(rgb_png()[:200])}, 400, "'image'"),
    "bad base64": ({"image": "data:image/png;base64,@@@"}, 400, "base64"),
    "both": ({"image": BLANK, "pixels": [[1]]}, 422, "exactly one of"),
}


@pytest.mark.parametrize("case", list(COLOUR_BAD), ids=list(COLOUR_BAD))
def test_colour_model_bad_requests(colour_client: TestClient, case: str,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import cnnlab.preprocess

    payload, status, needle = COLOUR_BAD[case]
    decoded: list[Any] = []
    real = cnnlab.preprocess.model_input
    monkeypatch.setattr(cnnlab.preprocess, "model_input",
                        lambda *a, **k: decoded.append(1) or real(*a, **k))
    res = colour_client.post("/api/predict", json=payload)
    assert res.status_code == status, res.text
    assert needle.lower() in res.json()["detail"].lower(), res.json()["detail"]
    if status == 413:
        assert decoded == []  # refused from the header, before any decoding


def test_colour_pixels_error_names_the_model_input(colour_client: TestClient) -> None:
    detail = colour_client.post("/api/predict", json={"pixels": [[0, 255]]}).json()["detail"]
    assert detail == ("'pixels' is only for digit models (28x28 grayscale); this model takes "
                      "16x20 RGB pictures, resized: send the picture as 'image' (a PNG or JPEG, "
                      "base64)")


def test_colour_model_has_no_test_images(colour_client: TestClient) -> None:
    res = colour_client.get("/api/random-test-image")
    assert res.status_code == 404
    assert "no test images for this model" in res.json()["detail"]


def test_blank_picture_is_fine_for_a_resize_model(colour_client: TestClient) -> None:
    # "no digit found" belongs to digit models: a black picture is just a picture here.
    res = colour_client.post("/api/predict", json={"image": BLANK})
    assert res.status_code == 200, res.text
    np.testing.assert_array_equal(decode_png_url(res.json()["input_image"]), 0)


def test_grayscale_resize_model_with_names() -> None:
    from cnnlab.layers import Conv2D

    m = Sequential([Conv2D(2, 3, activation="relu"), Flatten(), Dense(4), Activation("softmax")],
                   input_shape=(12, 10, 1), seed=1)
    m.class_names = ["circle", "square", "a rather long class name indeed", "star"]
    client = TestClient(create_app(m))
    info = client.get("/api/model").json()
    assert info["preprocessing"] == {"mode": "resize", "size": [12, 10], "color": "grayscale"}
    assert info["class_names"] == m.class_names
    data = rgb_png(25, 31, seed=9)
    body = client.post("/api/predict", json={"image": data_url(data)}).json()
    pixels = resized_like_the_contract(data, (12, 10), "grayscale")
    np.testing.assert_allclose(body["probabilities"], m.predict(pixels[None])[0], rtol=0,
                               atol=1e-6)
    assert np.array(body["input"]).shape == (12, 10)  # H rows of W values, as for digits
    assert body["prediction_name"] == m.class_names[body["prediction"]]
    assert client.post("/api/predict", json={"pixels": [[0]]}).status_code == 422


def test_a_saved_colour_model_is_served_with_its_names(tmp_path: Any,
                                                      colour_model: Sequential) -> None:
    from cnnlab.saving import load_model

    path = tmp_path / "colours.safetensors"
    colour_model.save(path)
    loaded = load_model(path, compile=False)
    client = TestClient(create_app(loaded, source=str(path)))
    info = client.get("/api/model").json()
    assert (info["class_names"], info["preprocessing"]) == (COLOURS, COLOUR_PREP)
    data = rgb_png(seed=5, dominant=1)
    body = client.post("/api/predict", json={"image": data_url(data)}).json()
    assert body["prediction_name"] == "green"


def test_describe_model() -> None:
    from cnnlab.serve.app import describe_model

    assert describe_model(make_colour_model(train=False)) == (
        "input 16x20x3 (RGB pictures resized to 16x20); 3 classes: red, green, blue")
    m = Sequential([Flatten(), Dense(30), Activation("softmax")], input_shape=(8, 8, 1), seed=0)
    m.class_names = [f"class number {i} with a long name" for i in range(30)]
    line = describe_model(m)
    assert line.startswith("input 8x8x1 (grayscale pictures resized to 8x8); 30 classes: "
                           "class number 0 with a...,")
    assert line.endswith(", ... (20 more)") and len(line) < 400


def test_cli_prints_the_input_shape_and_class_names(
    tmp_path: Any, colour_model: Sequential, capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import uvicorn

    served: list[Any] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: served.append((app, kw)))
    path = tmp_path / "colours.safetensors"
    colour_model.save(path)
    parser = argparse.ArgumentParser(prog="cnnlab")
    serve_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", str(path), "--port", "8123"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"cnnlab serve: {path}",
        "  input 16x20x3 (RGB pictures resized to 16x20); 3 classes: red, green, blue",
        "  on http://localhost:8123/ (Ctrl-C to stop)",
    ]
    assert served and served[0][1]["port"] == 8123
