"""The demo's "see the math" API (issue 17): every opened number against the model and
against float64 oracles; gradients against finite differences; bad requests get a 4xx."""

from __future__ import annotations

import base64
import io
import json
import queue
import time
import warnings

import numpy as np
import pytest
from conftest import numerical_gradient, tf_same_pads

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

import cnnlab  # noqa: E402
from cnnlab.datasets import load_mnist, to_model_input  # noqa: E402
from cnnlab.explain.conv_grads import conv_gradients  # noqa: E402
from cnnlab.explain.pixel import explain_pixel  # noqa: E402
from cnnlab.pretrained import load_pretrained  # noqa: E402
from cnnlab.serve.app import create_app  # noqa: E402
from cnnlab.serve.explain_routes import MAX_SESSIONS  # noqa: E402
from cnnlab.serve.live_training import LiveRuns, Recipe, build  # noqa: E402
from cnnlab.training.callbacks import Callback  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx2")


@pytest.fixture(scope="module")
def shipped() -> cnnlab.Sequential:
    return load_pretrained()


@pytest.fixture(scope="module")
def client(shipped) -> TestClient:
    return TestClient(create_app(shipped, source="test"))


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    _, (x_test, _) = load_mnist()
    return to_model_input(x_test[0])[0]  # what test_index=0 means


def random_model(dtype: str = "float32", seed: int = 0) -> cnnlab.Sequential:
    """Strides, valid/same/full padding, several channels, every activation kind."""
    return cnnlab.Sequential([
        cnnlab.Conv2D(3, 3, strides=2, padding="same", activation="relu", dtype=dtype),
        cnnlab.Conv2D(4, 2, padding="full", activation="tanh", dtype=dtype),
        cnnlab.MaxPooling2D(3, strides=2, padding="same", dtype=dtype),
        cnnlab.Conv2D(5, (2, 3), strides=(1, 2), padding="valid", activation="sigmoid",
                      dtype=dtype),
        cnnlab.AveragePooling2D(2, strides=1, padding="same", dtype=dtype),
        cnnlab.Conv2D(3, 2, padding="same", activation="softmax", dtype=dtype),
        cnnlab.GlobalMaxPooling2D(dtype=dtype),
        cnnlab.Dense(4, activation="softmax", dtype=dtype),
    ], input_shape=(11, 10, 3), seed=seed)


def oracle_padding(layer, in_hw, y, x):
    """Padding cells of output (y, x)'s window, from TensorFlow's 'same' rule (conftest),
    k - 1 for 'full', none for 'valid': 1 where a ones-image padded with zeros reads 0."""
    kh, kw = layer.kernel_size if layer.kind == "Conv2D" else layer.pool_size
    sh, sw = layer.strides
    mode = layer.padding
    if mode == "same":
        pads = (tf_same_pads(in_hw[0], kh, sh), tf_same_pads(in_hw[1], kw, sw))
    elif mode == "full":
        pads = ((kh - 1, kh - 1), (kw - 1, kw - 1))
    else:
        pads = ((0, 0), (0, 0))
    ones = np.pad(np.ones(in_hw), pads)
    return (ones[y * sh : y * sh + kh, x * sw : x * sw + kw] == 0).tolist()


def check_explanation(model, x, e, outs):
    """The opened number against the model's own forward pass and the oracles."""
    i = [str(la.name) for la in model.layers].index(e["layer"])
    layer = model.layers[i]
    out = np.asarray(outs[i][0], np.float64)
    inp = np.asarray(x if i == 0 else outs[i - 1][0], np.float64)
    y, xc, c = e["y"], e["x"], e["channel"]
    if layer.kind in ("GlobalMaxPooling2D", "GlobalAveragePooling2D"):
        want = out.reshape(-1)[c]
    else:
        want = out[y, xc, c]
        assert e["padded"] == oracle_padding(layer, inp.shape[:2], y, xc)
    assert e["value"] == pytest.approx(want, abs=1e-5)
    assert e["reference"]["value"] == pytest.approx(want, abs=1e-5)
    assert e["reference"]["difference"] == pytest.approx(e["value"] - e["reference"]["value"])
    win = np.array(e["window"], dtype=object)
    mask = np.array(e["padded"])
    if layer.kind == "Conv2D":
        win = win.astype(np.float64)
        prods = np.array(e["products"])
        np.testing.assert_allclose(prods, win * np.array(e["kernel"]), atol=1e-12)
        assert float(prods.sum()) + e["bias"] == pytest.approx(e["preactivation"], abs=1e-6)
        assert e["reference"]["preactivation"] == pytest.approx(e["preactivation"], abs=1e-6)
        assert np.all(win[mask] == 0)
        # the window's real cells are the layer's input pixels
        rows, cols = e["rows"], e["cols"]
        for a, r in enumerate(rows):
            for b, col in enumerate(cols):
                if not mask[a, b]:
                    np.testing.assert_array_equal(win[a, b], inp[r, col])
        kernel = np.asarray(layer.kernel, np.float64)[:, :, :, c]
        np.testing.assert_array_equal(np.array(e["kernel"]), kernel)
        if layer.activation in (None, "linear"):
            assert e["preactivation"] == pytest.approx(want, abs=1e-5)
        elif layer.activation == "relu":
            assert max(e["preactivation"], 0.0) == pytest.approx(want, abs=1e-5)
    elif layer.kind in ("MaxPooling2D", "AveragePooling2D"):
        real = np.array([float(v[0]) for v, m in zip(win.reshape(-1, 1), mask.reshape(-1),
                                                     strict=True) if not m])
        assert all(v[0] is None for v in win.reshape(-1, 1)[mask.reshape(-1)])
        if layer.kind == "MaxPooling2D":
            assert real.max() == pytest.approx(want, abs=1e-6)
            a, b = e["argmax"]["window"]
            assert not mask[a, b] and float(win[a, b][0]) == real.max()
            # the tie rule: no earlier (row-major) real cell holds the maximum
            flat = [float(v[0]) if not m else -np.inf
                    for v, m in zip(win.reshape(-1, 1), mask.reshape(-1), strict=True)]
            assert flat.index(max(flat)) == a * mask.shape[1] + b
        else:
            assert e["count"] == real.size
            assert real.mean() == pytest.approx(want, abs=1e-6)


def test_every_map_layer_of_the_shipped_model_at_random_pixels(shipped, client, digit):
    outs = [o for _, o in shipped.feature_maps(digit[None])]
    rng = np.random.default_rng(17)
    for i, layer in enumerate(shipped.layers):
        if layer.kind not in ("Conv2D", "MaxPooling2D"):
            continue
        h, w, c = outs[i].shape[1:]
        picks = [(h - 1, w - 1, int(rng.integers(c))), (0, 0, 0)]
        picks += [(int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(c)))
                  for _ in range(3)]
        for y, x, ch in picks:
            r = client.post("/api/explain", json={"test_index": 0, "layer": layer.name,
                                                  "y": y, "x": x, "channel": ch})
            assert r.status_code == 200, r.text
            check_explanation(shipped, digit, r.json(), outs)


def test_the_slides_first_layer_reads_zeros_in_its_last_row_and_column(client):
    e = client.post("/api/explain", json={"test_index": 1, "layer": "conv2d", "y": 27,
                                          "x": 10, "channel": 2}).json()
    assert e["padded"] == [[False, False], [True, True]]
    assert e["rows"] == [27, 28] and e["cols"] == [10, 11]
    assert e["pads"] == [[0, 1], [0, 1]]
    e = client.post("/api/explain", json={"test_index": 1, "layer": "conv2d", "y": 3,
                                          "x": 27, "channel": 2}).json()
    assert e["padded"] == [[False, True], [False, True]]


def test_a_random_model_with_strides_and_every_padding(shipped):
    model = random_model()
    rng = np.random.default_rng(3)
    x = rng.random((11, 10, 3), dtype=np.float32)
    outs = [o for _, o in model.feature_maps(x[None])]
    for i, layer in enumerate(model.layers):
        if layer.kind in ("Dense",):
            continue
        shape = outs[i].shape[1:]
        if len(shape) == 1:
            picks = [(0, 0, c) for c in range(shape[0])]
        else:
            h, w, c = shape
            picks = [(0, 0, 0), (h - 1, w - 1, c - 1)]
            picks += [(int(rng.integers(h)), int(rng.integers(w)), int(rng.integers(c)))
                      for _ in range(4)]
        for y, xc, ch in picks:
            check_explanation(model, x, explain_pixel(model, x, layer.name, y, xc, ch), outs)


def test_the_api_serves_a_colour_model_given_a_png(shipped):
    model = random_model(seed=1)
    client = TestClient(create_app(model, source="test"))
    img = (np.random.default_rng(0).random((11, 10, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    pred = client.post("/api/predict", json={"image": url}).json()
    x = np.array(pred["input"], np.float32)
    outs = [o for _, o in model.feature_maps(x[None])]
    for name, (y, xc, ch) in (("conv2d", (5, 4, 2)), ("conv2d_1", (0, 5, 3)),
                              ("max_pooling2d", (3, 0, 1))):
        r = client.post("/api/explain", json={"image": url, "layer": name, "y": y, "x": xc,
                                              "channel": ch})
        assert r.status_code == 200, r.text
        # 'input' is rounded to 4 decimals: compare loosely here, exactly above
        e = r.json()
        i = [str(la.name) for la in model.layers].index(name)
        assert e["value"] == pytest.approx(float(outs[i][0][y, xc, ch]), abs=1e-3)
        if e["type"] == "Conv2D":
            assert float(np.sum(e["products"])) + e["bias"] == pytest.approx(
                e["preactivation"], abs=1e-6)
    r = client.post("/api/explain", json={"test_index": 0, "layer": "conv2d", "y": 0, "x": 0})
    assert r.status_code == 422 and "digit models" in r.json()["detail"]


def loss_of(model, x, label):
    def f():
        p = model.predict(x[None]).astype(np.float64)[0]
        return float(-np.log(p[label]))
    return f


def test_backprop_arrays_match_finite_differences_in_float64():
    model = random_model("float64", seed=2)
    rng = np.random.default_rng(4)
    x = rng.random((11, 10, 3))
    label = 2
    f = loss_of(model, x, label)
    for name, co, ci in (("conv2d", 1, 2), ("conv2d_1", 3, 0), ("conv2d_2", 4, 1)):
        layer = model.get_layer(name)
        g = conv_gradients(model, x, label, name, co, ci)
        assert g["loss"] == pytest.approx(f(), rel=1e-12)
        num_k = numerical_gradient(f, layer.kernel)
        np.testing.assert_allclose(g["dF"], num_k[:, :, ci, co], atol=1e-6, rtol=0)
        num_b = numerical_gradient(f, layer.bias)
        assert g["db"] == pytest.approx(num_b[co], abs=1e-6)
        for key in ("dF", "dX", "db"):
            assert g["check"][key]["max_abs_difference"] < 1e-12
        # dX of this layer's input: perturb the layer's input in a forward from there
        i = model.layers.index(layer)
        inp = x[None].copy()
        for la in model.layers[:i]:
            inp = la.forward(inp, False)
        inp = np.ascontiguousarray(inp)

        def from_layer(inp=inp, i=i):
            out = inp
            for la in model.layers[i:]:
                out = la.forward(out, False)
            return float(-np.log(out[0, label]))

        num_x = numerical_gradient(from_layer, inp)[0, :, :, ci]
        np.testing.assert_allclose(g["dX"], num_x, atol=1e-6, rtol=0)
        # the rotated kernel is the kernel turned by 180 degrees
        np.testing.assert_array_equal(np.array(g["rotated"]), np.array(g["kernel"])[::-1, ::-1])


def test_gradcheck_and_backprop_endpoints(client, shipped, digit):
    r = client.post("/api/backprop", json={"test_index": 0, "layer": "conv2d", "label": 3,
                                           "channel": 5})
    assert r.status_code == 200, r.text
    g = r.json()
    assert np.array(g["dZ"]).shape == (28, 28) and np.array(g["dF"]).shape == (2, 2)
    for key in ("dF", "dX"):  # float64 reference against the float32 library pass
        assert g["check"][key]["max_abs_difference"] <= 1e-5 * max(
            1.0, g["check"][key]["max_abs_value"])
    for param, index in (("kernel", [1, 0, 0, 5]), ("bias", [5]), ("input", [27, 27, 0])):
        r = client.post("/api/gradcheck", json={"test_index": 0, "layer": "conv2d",
                                                "label": 3, "param": param, "index": index})
        assert r.status_code == 200, r.text
        c = r.json()
        assert abs(c["analytic"] - c["numeric"]) < 1e-6, c
    r = client.post("/api/gradcheck", json={"test_index": 0, "layer": "conv2d", "label": 3,
                                            "index": [2, 0, 0, 0]})
    assert r.status_code == 422 and "does not fit" in r.json()["detail"]


def test_one_step_changes_only_the_tabs_copy(client, shipped):
    before = [w.copy() for w in shipped.get_weights()]
    body = {"test_index": 5, "session": "tab-a", "label": 3, "learning_rate": 0.05}
    first = client.post("/api/step", json=body).json()
    second = client.post("/api/step", json=body).json()
    assert (first["steps"], second["steps"]) == (1, 2)
    assert second["probabilities_before"] == first["probabilities"]
    assert second["loss_after"] < first["loss_before"]
    for a, b in zip(before, shipped.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    again = client.post("/api/step", json={**body, "reset": True}).json()
    assert again["steps"] == 1 and again["probabilities"] == first["probabilities"]
    for k in range(MAX_SESSIONS):  # tab-a is the least recently used: dropped
        client.post("/api/step", json={**body, "session": f"other{k}"})
    assert client.post("/api/step", json=body).json()["steps"] == 1


@pytest.mark.parametrize("body, status, words", [
    ({"test_index": 0, "layer": "nope", "y": 0, "x": 0}, 422, "no layer named 'nope'"),
    ({"test_index": 0, "layer": "dense", "y": 0, "x": 0}, 422, "only Conv2D and pooling"),
    ({"test_index": 0, "layer": "conv2d", "y": 28, "x": 0}, 422, "y=28 is out of range"),
    ({"test_index": 0, "layer": "conv2d", "y": 0, "x": 0, "channel": 16}, 422, "channel=16"),
    ({"test_index": 0, "layer": "max_pooling2d", "y": 0, "x": 14}, 422, "x=14"),
    ({"image": "data:image/png;base64,!!", "layer": "conv2d", "y": 0, "x": 0}, 400, "base64"),
    ({"image": base64.b64encode(b"not an image").decode(), "layer": "conv2d", "y": 0,
      "x": 0}, 400, "not an image"),
    ({"pixels": [[0, 0], [0, 0]], "layer": "conv2d", "y": 0, "x": 0}, 422, "no digit"),
    ({"test_index": 0, "image": "x", "layer": "conv2d", "y": 0, "x": 0}, 422, "exactly one"),
    ({"layer": "conv2d", "y": 0, "x": 0}, 422, "exactly one"),
    ({"test_index": 0, "layer": "conv2d", "y": -1, "x": 0}, 422, "y"),
])
def test_bad_explain_requests(client, body, status, words):
    r = client.post("/api/explain", json=body)
    assert r.status_code == status, r.text
    assert words in r.json()["detail"]


def test_bad_gradient_and_live_requests(client):
    r = client.post("/api/backprop", json={"test_index": 0, "layer": "max_pooling2d",
                                           "label": 1})
    assert r.status_code == 422 and "Conv2D" in r.json()["detail"]
    r = client.post("/api/backprop", json={"test_index": 0, "layer": "conv2d", "label": 10})
    assert r.status_code == 422 and "label=10" in r.json()["detail"]
    r = client.post("/api/step", json={"test_index": 0, "session": "s", "label": 12})
    assert r.status_code == 422 and "label=12" in r.json()["detail"]
    r = client.post("/api/step", json={"test_index": 0, "session": "bad id!", "label": 1})
    assert r.status_code == 422
    r = client.post("/api/live/control", json={"tab": "nobody", "action": "step"})
    assert r.status_code == 404 and "no live training run" in r.json()["detail"]
    r = client.get("/api/live/stream", params={"tab": "t", "n": "999999"})
    assert r.status_code == 422 and "n=999999 is out of bounds" in r.json()["detail"]
    r = client.get("/api/live/stream", params={"tab": "t", "optimizer": "lbfgs"})
    assert r.status_code == 422 and "optimizer" in r.json()["detail"]


def test_the_live_stream_equals_fit_exactly(client):
    query = {"tab": "tab1", "seed": "5", "n": "96", "batch": "32", "every": "2",
             "optimizer": "sgd", "lr": "0.1"}
    events = []
    with client.stream("GET", "/api/live/stream", params=query) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                if events[-1]["type"] == "end":
                    break
    assert events[0]["type"] == "start" and events[-1]["reason"] == "done"
    streamed = [e["loss"] for e in events if e["type"] == "step"]
    snaps = [e for e in events if e["type"] == "snapshot"]
    recipe = Recipe.from_query(query)
    model, x, y, probe = build(recipe)
    seen = []

    class Record(Callback):
        def on_batch_end(self, batch, logs=None):
            seen.append(logs["loss"])

    model.fit(x, y, epochs=recipe.epochs, batch_size=recipe.batch, verbose=0,
              callbacks=[Record()])
    assert streamed == seen  # bit for bit
    assert len(streamed) == recipe.steps == 3
    # the last snapshot shows the trained model's filters and its probe probabilities
    np.testing.assert_allclose(snaps[-1]["probabilities"], model.predict(probe)[0], atol=1e-12)
    np.testing.assert_allclose(np.array(snaps[-1]["filters"]),
                               np.moveaxis(model.layers[0].kernel[:, :, 0, :], -1, 0),
                               atol=1e-5)


def drain(run, until, timeout=30.0):
    """Events of ``run`` until one satisfies ``until`` (or the timeout)."""
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ev = run.events.get(timeout=0.1)
        except queue.Empty:
            continue
        out.append(ev)
        if until(ev):
            break
    return out


def test_a_live_run_pauses_steps_once_per_click_and_stops():
    runs = LiveRuns(max_runs=2)
    run = runs.start("a", Recipe(n=64, batch=16, seed=1), paused=True)
    assert drain(run, lambda e: e["type"] == "start")[-1]["state"] == "paused"
    run.single_step()
    run.single_step()
    events = drain(run, lambda e: e["type"] == "step" and e["step"] == 2)
    assert [e["step"] for e in events if e["type"] == "step"] == [1, 2]
    assert drain(run, lambda e: e["type"] == "step", timeout=1.0) == []  # held: paused
    second = runs.start("b", Recipe(n=64, batch=16), paused=True)
    third = runs.start("c", Recipe(n=64, batch=16), paused=True)  # over the bound: 'a' goes
    end = drain(run, lambda e: e["type"] == "end")[-1]
    assert (end["reason"], end["step"]) == ("evicted", 2) and runs.get("a") is None
    runs.start("b", Recipe(n=64, batch=16), paused=True)  # the same tab again: replaced
    assert drain(second, lambda e: e["type"] == "end")[-1]["reason"] == "replaced"
    runs.finish("c", third)
    assert drain(third, lambda e: e["type"] == "end")[-1]["reason"] == "cancelled"
    runs.finish("b", runs.get("b"))
    assert len(runs) == 0
