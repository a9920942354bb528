"""Bounded load test of the demo server (``cnnlab serve``) on 127.0.0.1.

Starts the server in a subprocess on a free localhost port, sends ``-n``
requests to ``POST /api/predict`` with ``-c`` in flight at a time (httpx,
async), each a real MNIST test image, and checks every answer: status 200 and
the same class as the model predicts offline for that image. Requests
alternate between the two ways the page and API clients send pictures:

* ``image``: the test image as a PNG data URL, prepared by the server as
  ``cnnlab predict`` prepares a file (expected: ``model.predict(prepare_image(png))``);
* ``pixels`` with ``prepare: false``: the raw 28x28 image (expected:
  ``model.predict(to_model_input(image))``).

Feature maps are requested as the page does (``--no-maps`` to leave them out).
Reports requests/s and latency percentiles, stops the server, and exits 1 if
any answer was wrong.

Usage::

    python benchmarks/load_serve.py [--model PATH] [-n 500] [-c 8] [--no-maps]

The model is ``--model``, else the shipped model if present, else a small CNN
trained here in a few seconds (``cnnlab.serve.app.small_model``).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import os
import shlex
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

MAX_REQUESTS = 100_000
MAX_CONCURRENCY = 256


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None,
                   help="model file; default: the shipped model, else a quickly trained one")
    p.add_argument("-n", "--requests", type=int, default=500, help="requests (default 500)")
    p.add_argument("-c", "--concurrency", type=int, default=8,
                   help="requests in flight at once (default 8)")
    p.add_argument("--no-maps", action="store_true", help="do not ask for feature maps")
    p.add_argument("--seed", type=int, default=0, help="picks the test images")
    args = p.parse_args(argv)
    if not 1 <= args.requests <= MAX_REQUESTS:
        p.error(f"--requests must be in 1..{MAX_REQUESTS}")
    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        p.error(f"--concurrency must be in 1..{MAX_CONCURRENCY}")
    return args


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pick_model(given: Path | None, workdir: Path) -> tuple[Path, str]:
    """The model file to serve, and how it was chosen."""
    if given is not None:
        return given, "given"
    from cnnlab.errors import ModelFileError
    from cnnlab.pretrained import pretrained_path

    try:
        return pretrained_path(), "shipped"
    except ModelFileError:
        from cnnlab.serve.app import small_model

        t0 = time.perf_counter()
        model = small_model(n_train=10000, epochs=1, seed=0)
        path = workdir / "small_cnn.safetensors"
        model.save(path)
        return path, f"small CNN trained here in {time.perf_counter() - t0:.1f}s"


def png_data_url(img: np.ndarray) -> tuple[str, bytes]:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    data = buf.getvalue()
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii"), data


def build_requests(model: Any, n: int, seed: int, maps: bool) -> list[tuple[dict[str, Any], int]]:
    """``n`` payloads from MNIST test images, each with the offline prediction."""
    from cnnlab.datasets import load_mnist, to_model_input
    from cnnlab.preprocess import prepare_image

    _, (x_test, _) = load_mnist()
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(x_test), size=min(n, len(x_test)), replace=n > len(x_test))
    payloads, inputs = [], []
    for k, i in enumerate(idx):
        if k % 2 == 0:
            url, data = png_data_url(x_test[i])
            payloads.append({"image": url, "include_maps": maps})
            inputs.append(prepare_image(data))
        else:
            payloads.append({"pixels": x_test[i].tolist(), "prepare": False, "include_maps": maps})
            inputs.append(to_model_input(x_test[i])[0, ..., 0])
    expected = model.predict(np.stack(inputs)).argmax(axis=1)
    return list(zip(payloads, (int(e) for e in expected), strict=True))


def start_server(model_path: Path, port: int) -> tuple[subprocess.Popen[bytes], list[str]]:
    code = (
        "import argparse, sys; from cnnlab.serve.cli import run; "
        f"sys.exit(run(argparse.Namespace(model={str(model_path)!r}, host='127.0.0.1', "
        f"port={port})))"
    )
    cmd = [sys.executable, "-c", code]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return proc, cmd


def wait_ready(base: str, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise RuntimeError(f"the server exited with {proc.returncode}:\n{out}")
        try:
            if httpx.get(base + "/api/model", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within {timeout:.0f}s")


async def run_load(base: str, work: list[tuple[dict[str, Any], int]],
                   concurrency: int) -> tuple[list[float], list[str], float]:
    """Send every request, ``concurrency`` at a time; latencies (s), failures, wall time."""
    import httpx

    latencies: list[float] = []
    failures: list[str] = []
    queue: asyncio.Queue[tuple[int, dict[str, Any], int]] = asyncio.Queue()
    for k, (payload, want) in enumerate(work):
        queue.put_nowait((k, payload, want))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as client:

        async def worker() -> None:
            while True:
                try:
                    k, payload, want = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                try:
                    res = await client.post("/api/predict", json=payload)
                except httpx.HTTPError as e:
                    failures.append(f"request {k}: {type(e).__name__}: {e}")
                    continue
                latencies.append(time.perf_counter() - t0)
                if res.status_code != 200:
                    failures.append(f"request {k}: HTTP {res.status_code} {res.text[:200]}")
                elif res.json()["prediction"] != want:
                    failures.append(f"request {k}: predicted {res.json()['prediction']}, "
                                    f"offline {want}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return latencies, failures, wall


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from cnnlab.saving import load_model

    print("$ " + shlex.join([sys.executable, *sys.argv]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_path, how = pick_model(args.model, Path(tmp))
        model = load_model(model_path, compile=False)
        print(f"model: {model_path} ({how}), {model.count_params():,} parameters", flush=True)
        work = build_requests(model, args.requests, args.seed, not args.no_maps)
        port = free_port()
        proc, cmd = start_server(model_path, port)
        base = f"http://127.0.0.1:{port}"
        print(f"server: {shlex.join(cmd)}  -> {base}", flush=True)
        try:
            wait_ready(base, proc)
            asyncio.run(run_load(base, work[: min(len(work), 2 * args.concurrency)],
                                 args.concurrency))  # warm-up
            latencies, failures, wall = asyncio.run(run_load(base, work, args.concurrency))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    lat_ms = np.array(latencies) * 1000
    ok = len(work) - len(failures)
    print(f"requests: {len(work)} ({'with' if not args.no_maps else 'without'} feature maps), "
          f"concurrency {args.concurrency}, CPUs {os.cpu_count()}")
    print(f"correct: {ok}/{len(work)}")
    print(f"throughput: {len(work) / wall:.1f} requests/s ({wall:.2f} s)")
    if lat_ms.size:
        p50, p90, p99 = np.percentile(lat_ms, [50, 90, 99])
        print(f"latency ms: p50 {p50:.1f}  p90 {p90:.1f}  p99 {p99:.1f}  max {lat_ms.max():.1f}")
    for line in failures[:10]:
        print("FAIL", line)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
