"""Hostile input to the demo server (issue 18): huge and slow bodies, slow heads, idle
connections, decompression bombs on every upload route, path traversal, CORS, the bind
address.

The streaming and slow-client tests run a real uvicorn (``cnnlab serve``'s options,
:func:`cnnlab.serve.cli.uvicorn_options`) in a subprocess on a free localhost port,
with short timeouts (body 1 s, head 1 s, keep-alive 1 s) so that they finish quickly,
and talk to it over raw sockets: an HTTP client library would normalise the very
requests under test. What a test asserts is always the server's answer (a status, a
closed connection, bytes not served), never a duration.
"""

from __future__ import annotations

import base64
import os
import re
import select
import socket
import struct
import subprocess
import sys
import time
import warnings
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx2")
    from fastapi.testclient import TestClient  # noqa: E402

from cnnlab.preprocess import to_model_input  # noqa: E402
from cnnlab.serve import cli as serve_cli  # noqa: E402
from cnnlab.serve.app import MAX_BODY_BYTES, STATIC_DIR, create_app  # noqa: E402
from cnnlab.zoo import small_cnn  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*httpx2")

SERVER = r"""
import sys, uvicorn
from cnnlab.serve import cli
from cnnlab.serve.app import create_app
from cnnlab.zoo import small_cnn
port, body_timeout, head_timeout = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
model = small_cnn(seed=0)
model.class_names = [str(i) for i in range(10)]
options = cli.uvicorn_options("127.0.0.1", port)
options.update(http=cli.head_timeout_protocol(head_timeout), timeout_keep_alive=1)
uvicorn.run(create_app(model, body_timeout=body_timeout), **options)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes(pid: int) -> int:
    """Resident memory of a process (Linux /proc), in bytes."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) * 1024


def request(port: int, raw: bytes, timeout: float = 20) -> bytes:
    """Send raw bytes, read until the server closes (or the answer is complete)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(raw)
        return read_answer(s)


def read_answer(s: socket.socket) -> bytes:
    data = b""
    while True:
        try:
            chunk = s.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?i)content-length: (\d+)", head)
        if sep and length and len(body) >= int(length.group(1)):
            break
    return data


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split()[1])


@pytest.fixture(scope="module")
def server() -> Iterator[dict[str, Any]]:
    if not Path("/proc/self/status").exists():
        pytest.skip("needs Linux /proc to read the server's memory")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), "1.0", "1.0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.communicate()[1][-3000:]
        try:
            answer = request(port, b"GET /api/model HTTP/1.1\r\nHost: t\r\n"
                                   b"Connection: close\r\n\r\n", timeout=5)
            if status_of(answer) == 200:
                break
        except OSError:
            pass
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.2)
    yield {"port": port, "pid": proc.pid}
    proc.terminate()
    proc.wait(timeout=30)


def still_answers(port: int) -> None:
    answer = request(port, b"GET /api/model HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status_of(answer) == 200


# ---------------------------------------------------------------- bodies: size and speed


def test_a_1gb_chunked_body_is_cut_off_after_the_limit(server):
    port, before = server["port"], rss_bytes(server["pid"])
    chunk = b"x" * (1 << 20)
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        try:
            while sent < (1 << 30):
                s.sendall(frame)
                sent += len(chunk)
                if select.select([s], [], [], 0)[0]:  # the server has answered
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass  # it closed the connection on us: the rest is not read
        answer = read_answer(s)
    assert status_of(answer) == 413, answer[:300]
    assert b"request body too large" in answer
    # Sent before the answer: the limit plus what socket buffers held, far from 1 GB.
    assert sent < 64 * (1 << 20), f"{sent} bytes were accepted"
    assert rss_bytes(server["pid"]) - before < 50 * (1 << 20)
    still_answers(port)


def test_a_declared_content_length_over_the_limit_is_refused_before_the_body(server):
    # No body is sent: if the server waited for it, the answer would be 408, not 413.
    answer = request(server["port"], b"POST /api/predict HTTP/1.1\r\nHost: t\r\n"
                                     b"Content-Type: application/json\r\n"
                                     b"Content-Length: 1000000000\r\n\r\n")
    assert status_of(answer) == 413 and b"at most 2097152 bytes" in answer


@pytest.mark.parametrize("length", [b"-5", b"12abc"])
def test_a_malformed_content_length_is_a_400(server, length):
    answer = request(server["port"], b"POST /api/predict HTTP/1.1\r\nHost: t\r\n"
                                     b"Content-Length: " + length + b"\r\n\r\n")
    assert status_of(answer) == 400


def test_a_body_that_stalls_gets_408_and_the_connection_closes(server):
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=20) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"pixels\": [[")
        answer = read_answer(s)  # nothing more is sent
        assert status_of(answer) == 408, answer[:300]
        assert b"request body not received within 1 seconds" in answer
        assert s.recv(1) == b""  # closed


def test_a_trickled_body_gets_408_too(server):
    # One byte every 0.2 s: each receive() is quick, the whole body is not.
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=20) as s:
        s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n")
        answer = b""
        for _ in range(100):
            try:
                s.sendall(b" ")
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([s], [], [], 0.2)[0]:
                break
        answer = read_answer(s)
    assert status_of(answer) == 408, answer[:300]


# ------------------------------------------------------------------ heads and idle links


def test_a_trickled_request_head_is_cut_off(server):
    # "Slowloris": a header line a byte at a time, never finished.
    closed = False
    with socket.create_connection(("127.0.0.1", server["port"]), timeout=20) as s:
        s.sendall(b"GET /api/model HTTP/1.1\r\nHost: t\r\n")
        for _ in range(100):  # up to 20 s of trickling; the head timeout is 1 s
            try:
                s.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            if select.select([s], [], [], 0.2)[0]:
                try:
                    closed = s.recv(1) == b""
                except ConnectionResetError:
                    closed = True
                break
    assert closed, "the server kept a connection whose head never ended"


def test_a_silent_connection_and_an_idle_keep_alive_one_are_closed(server):
    port = server["port"]
    with socket.create_connection(("127.0.0.1", port), timeout=20) as silent:
        assert silent.recv(1) == b""  # never sent a byte: closed after the head timeout
    with socket.create_connection(("127.0.0.1", port), timeout=20) as idle:
        idle.sendall(b"GET /api/model HTTP/1.1\r\nHost: t\r\n\r\n")
        assert status_of(read_answer(idle)) == 200
        assert idle.recv(1) == b""  # keep-alive, then idle: closed


def test_an_oversized_unfinished_request_head_is_refused(server):
    # h11 buffers at most MAX_HEAD_BYTES of a head that has not ended (uvicorn_options);
    # the head never ends here, and the answer comes before the 1 s head timeout would.
    answer = request(server["port"], b"GET /api/model HTTP/1.1\r\nHost: t\r\nX-Big: "
                                     + b"a" * (4 * serve_cli.MAX_HEAD_BYTES))
    assert status_of(answer) == 400, answer[:200]
    still_answers(server["port"])


def test_many_slow_clients_do_not_hold_the_server(server):
    port = server["port"]
    slow = []
    try:
        for _ in range(40):
            s = socket.create_connection(("127.0.0.1", port), timeout=20)
            s.sendall(b"POST /api/predict HTTP/1.1\r\nHost: t\r\n")  # and no more
            slow.append(s)
        raw = np.zeros((28, 28), np.uint8)
        raw[5:23, 13:15] = 255
        body = ('{"prepare": false, "include_maps": false, "pixels": '
                + str(raw.tolist()) + "}").encode()
        answer = request(port, b"POST /api/predict HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
                               b"Content-Type: application/json\r\nContent-Length: "
                               + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert status_of(answer) == 200
        model = small_cnn(seed=0)
        expected = int(np.argmax(model.predict(to_model_input(raw))[0]))
        assert f'"prediction":{expected},'.encode() in answer
    finally:
        for s in slow:
            s.close()


# ------------------------------------------------------------------ static files


TRAVERSALS = [
    "/static/../app.py", "/static/%2e%2e/app.py", "/static/%2e%2e%2fapp.py",
    "/static/..%2fapp.py", "/static/..%2F..%2Fserve%2Fapp.py", "/static/....//app.py",
    "/static/%252e%252e/app.py", "/static/..\\app.py", "/static/..%5capp.py",
    "/static//etc/passwd", "/static/%2fetc%2fpasswd", "/static/%2Fetc/passwd",
    "/static/../../../../../../etc/passwd", "/static/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "/static/%c0%ae%c0%ae/app.py", "/static/.%2e/app.py", "/../../etc/passwd",
    "/static/%00../app.py", "//etc/passwd", "/static/index.html/../../app.py",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_static_files_cannot_be_read_outside_their_folder(server, path):
    answer = request(server["port"], f"GET {path} HTTP/1.1\r\nHost: t\r\n"
                                     "Connection: close\r\n\r\n".encode())
    status = status_of(answer)
    assert status in (400, 404, 405), (status, answer[:300])
    assert b"root:" not in answer and b"class BodySizeLimit" not in answer


def test_static_files_inside_the_folder_are_served(server):
    name = sorted(p.name for p in STATIC_DIR.iterdir() if p.suffix in (".js", ".css"))[0]
    answer = request(server["port"], f"GET /static/{name} HTTP/1.1\r\nHost: t\r\n"
                                     "Connection: close\r\n\r\n".encode())
    assert status_of(answer) == 200
    assert answer.partition(b"\r\n\r\n")[2] == (STATIC_DIR / name).read_bytes()


# ------------------------------------------------------------------ decompression bombs


def bomb_png(width: int, height: int) -> bytes:
    """A grayscale PNG of ``width`` x ``height`` black pixels: tiny compressed, huge decoded."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    raw_size = (width + 1) * height  # a filter byte and the pixels, all zero
    comp = zlib.compressobj(9)
    block = bytes(1 << 22)
    parts = [comp.compress(block) for _ in range(raw_size // len(block))]
    parts += [comp.compress(bytes(raw_size % len(block))), comp.flush()]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0,
                                                              0, 0, 0))
            + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b""))


@pytest.fixture(scope="module")
def bomb_url() -> str:
    data = bomb_png(10_000, 10_000)  # 100 megapixels in about 100 kB
    assert len(data) < MAX_BODY_BYTES // 2
    return "data:image/png;base64," + base64.b64encode(data).decode()


def upload_routes(app: Any) -> list[tuple[str, str, list[str]]]:
    """(path, image field, required fields) for every POST body with an image field."""
    schema = app.openapi()
    out = []
    for path, ops in schema["paths"].items():
        body = ops.get("post", {}).get("requestBody")
        if not body:
            continue
        ref = body["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        component = schema["components"]["schemas"][ref]
        for field, prop in component["properties"].items():
            kinds = {prop.get("type")} | {p.get("type") for p in prop.get("anyOf", [])}
            if "image" in field and "string" in kinds:
                out.append((path, field, component.get("required", [])))
    return out


# Pillow warns on opening a header of 1e8 pixels; cnnlab then refuses it undecoded
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("shape", [(28, 28, 1), (32, 32, 3)])
def test_a_bomb_is_refused_on_every_upload_route_without_decoding(bomb_url, monkeypatch,
                                                                  shape):
    from PIL import ImageFile

    model = small_cnn(input_shape=shape, seed=0) if shape != (28, 28, 1) else small_cnn(seed=0)
    model.class_names = [str(i) for i in range(model.num_classes)]
    app = create_app(model)
    decoded = []
    real_load = ImageFile.ImageFile.load

    def load(self: Any) -> Any:
        decoded.append(self.size)
        return real_load(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    client = TestClient(app)
    fill = {"layer": model.layers[0].name, "y": 0, "x": 0, "label": 0, "index": [0, 0, 0, 0],
            "session": "bomb"}
    routes = upload_routes(app)
    assert ("/api/predict", "image", []) in routes
    for path, field, required in routes:
        body = {key: fill.get(key, 0) for key in required}
        body[field] = bomb_url
        r = client.post(path, json=body)
        too_large = r.status_code == 413 or (r.status_code == 422
                                             and "10000x10000" in r.json()["detail"])
        assert too_large, (path, r.status_code, r.text[:300])
        assert decoded == [], f"{path} decoded {decoded}"


# ------------------------------------------------------------------ CORS and bind address


def test_no_cors_headers_unless_asked():
    model = small_cnn(seed=0)
    client = TestClient(create_app(model))
    r = client.get("/api/model", headers={"Origin": "http://evil.example"})
    assert r.status_code == 200 and "access-control-allow-origin" not in r.headers
    pre = client.options("/api/predict", headers={
        "Origin": "http://evil.example", "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in pre.headers

    allowed = TestClient(create_app(model, cors_origins=["http://good.example"]))
    r = allowed.get("/api/model", headers={"Origin": "http://good.example"})
    assert r.headers["access-control-allow-origin"] == "http://good.example"
    r = allowed.get("/api/model", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    pre = allowed.options("/api/predict", headers={
        "Origin": "http://good.example", "Access-Control-Request-Method": "POST"})
    assert pre.status_code == 200
    assert pre.headers["access-control-allow-origin"] == "http://good.example"


def test_serve_defaults_to_loopback_and_takes_cors_origins():
    import argparse

    parser = argparse.ArgumentParser()
    serve_cli.register(parser.add_subparsers())
    args = parser.parse_args(["serve"])
    assert args.host == "127.0.0.1" and args.cors_origin == []
    args = parser.parse_args(["serve", "--cors-origin", "https://a.example",
                              "--cors-origin", "https://b.example"])
    assert args.cors_origin == ["https://a.example", "https://b.example"]
    assert [serve_cli.is_public(h) for h in ("127.0.0.1", "::1", "localhost", "127.0.0.2")] \
        == [False] * 4
    assert [serve_cli.is_public(h) for h in ("0.0.0.0", "::", "192.168.1.5", "example.org")] \
        == [True] * 4
    options = serve_cli.uvicorn_options("127.0.0.1", 8000)
    assert options["timeout_keep_alive"] == serve_cli.KEEP_ALIVE_S
    assert options["h11_max_incomplete_event_size"] == serve_cli.MAX_HEAD_BYTES


@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("127.0.0.1", False)])
def test_serve_warns_when_listening_on_every_interface(host, warned):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "cnnlab", "serve", "--host", host,
                             "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:  # until it answers on loopback
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            try:
                if status_of(request(port, b"GET /api/model HTTP/1.1\r\nHost: t\r\n"
                                           b"Connection: close\r\n\r\n", timeout=5)) == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert ("warning: listening on 0.0.0.0: other machines can reach" in err) == warned, err


# ------------------------------------------------------------------ a small soak


def test_small_soak_mixed_requests_all_answered_correctly(tmp_path, monkeypatch):
    """benchmarks/soak_serve.py, small: 500 mixed requests at concurrency 16 against
    ``cnnlab serve``'s own options; every answer as documented, memory bounded."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "benchmarks" / "soak_serve.py"
    spec = importlib.util.spec_from_file_location("soak_serve", path)
    soak = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "soak_serve", soak)  # dataclasses look it up
    spec.loader.exec_module(soak)
    model = small_cnn(seed=0)
    model_file = model.save(tmp_path / "small.safetensors")
    report = tmp_path / "soak.json"
    status = soak.main(["-n", "500", "-c", "16", "--model", str(model_file),
                        "--json", str(report)])
    numbers = json_load(report)
    assert numbers["failures"] == [], numbers["failures"][:5]
    assert status == 0
    assert numbers["rss_growth_mb"] < 50
    kinds = {key.rsplit(" ", 1)[0] for key in numbers["outcomes"]}
    assert kinds >= {"valid_image", "valid_pixels", *soak.MALFORMED}


def json_load(path: Path) -> dict[str, Any]:
    import json

    return json.loads(path.read_text())
