"""Soak test of the demo server: many mixed requests, valid and malformed, at once.

Starts ``cnnlab serve`` (its :func:`cnnlab.serve.cli.run`, so uvicorn runs with the
hardened options) in a subprocess on a free localhost port, as
``benchmarks/load_serve.py`` does, and sends ``-n`` requests with ``-c`` in flight
(httpx, async). About 60 % are valid predictions of MNIST test images, checked
against the model's offline prediction for the same input (``image``: a PNG data URL
prepared as ``cnnlab predict`` prepares a file; ``pixels`` with ``prepare: false``:
the raw image), a quarter of them asking for the feature maps; the rest are
malformed, each kind with the status the API documents:

=====================  ======  =================================================
kind                   status  what
=====================  ======  =================================================
``invalid_json``       400     a body that is not JSON
``not_json``           415     a ``text/plain`` body
``bad_base64``         400     ``image`` that is not base64
``not_an_image``       400     base64 of bytes that are no image
``bomb_header``        413     a PNG header claiming 30000 x 30000 pixels
``too_large``          413     a 2.2 MB body (over the 2 MB limit): refused from its
                              Content-Length before the body is read, and the
                              connection closed; a client still sending may see
                              the connection reset instead of the 413 (counted
                              as ``closed_early``, not as a wrong answer)
``ragged_pixels``      422     ``pixels`` rows of different lengths
``both_sources``       422     ``image`` and ``pixels`` together
``blank``              422     a blank picture: "no digit found"
``unknown_path``       404     ``GET /api/nope``
``wrong_method``       405     ``GET /api/predict``
``traversal``          404     ``GET /static/%2e%2e/app.py``
=====================  ======  =================================================

A request whose kept-alive connection the server closed just as it went out (its
keep-alive time passed: a race every HTTP/1.1 client knows) is sent once more, as
browsers do, and counted under ``retried after a closed connection``; a second
failure is a wrong answer.

It samples the server's resident memory (``/proc/PID/status``) after a warm-up and
every 0.5 s, and reports the growth over the run, throughput, latency percentiles
(all requests, and valid ones) and every wrong answer. Exit status 1 if any answer
was wrong or the memory grew by ``--max-growth-mb`` (default 50) or more.

Usage::

    python benchmarks/soak_serve.py [-n 10000] [-c 32] [--model PATH] [--seed 0]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import shlex
import struct
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_serve import free_port, pick_model, png_data_url, start_server, wait_ready  # noqa: E402

MALFORMED = {
    "invalid_json": 400, "not_json": 415, "bad_base64": 400, "not_an_image": 400,
    "bomb_header": 413, "too_large": 413, "ragged_pixels": 422, "both_sources": 422,
    "blank": 422, "unknown_path": 404, "wrong_method": 405, "traversal": 404,
}


@dataclass
class Request:
    """One request and what its answer must be."""

    kind: str
    method: str
    path: str
    body: bytes | None = None
    content_type: str = "application/json"
    status: int = 200
    prediction: int | None = None  # for valid predictions: the offline answer


def fake_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` (its data is a stub)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def malformed(kind: str, rng: np.random.Generator) -> Request:
    """A request of a malformed ``kind`` (see the module docstring)."""
    status = MALFORMED[kind]
    post = "/api/predict"
    if kind == "invalid_json":
        return Request(kind, "POST", post, b'{"pixels": [[1, 2', status=status)
    if kind == "not_json":
        return Request(kind, "POST", post, b"hello", "text/plain", status=status)
    if kind == "bad_base64":
        return Request(kind, "POST", post, _json({"image": "data:image/png;base64,@@@"}),
                       status=status)
    if kind == "not_an_image":
        junk = base64.b64encode(rng.bytes(300)).decode()
        return Request(kind, "POST", post, _json({"image": junk}), status=status)
    if kind == "bomb_header":
        url = "data:image/png;base64," + base64.b64encode(fake_png_header(30000, 30000)).decode()
        return Request(kind, "POST", post, _json({"image": url}), status=status)
    if kind == "too_large":
        return Request(kind, "POST", post, _json({"image": "A" * 2_200_000}), status=status)
    if kind == "ragged_pixels":
        return Request(kind, "POST", post, _json({"pixels": [[0, 1, 2], [3]]}), status=status)
    if kind == "both_sources":
        return Request(kind, "POST", post, _json({"image": "AAAA", "pixels": [[1]]}),
                       status=status)
    if kind == "blank":
        return Request(kind, "POST", post, _json({"pixels": [[0] * 20 for _ in range(20)]}),
                       status=status)
    if kind == "unknown_path":
        return Request(kind, "GET", "/api/nope", status=status)
    if kind == "wrong_method":
        return Request(kind, "GET", post, status=status)
    return Request(kind, "GET", "/static/%2e%2e/app.py", status=status)


def build_work(model: Any, n: int, seed: int) -> list[Request]:
    """``n`` requests, valid ones with the model's offline prediction, in random order."""
    from cnnlab.datasets import load_mnist, to_model_input
    from cnnlab.preprocess import prepare_image

    _, (x_test, _) = load_mnist()
    rng = np.random.default_rng(seed)
    kinds = rng.random(n) < 0.6
    valid_idx = rng.choice(len(x_test), size=int(kinds.sum()), replace=True)
    work: list[Request] = []
    inputs: list[np.ndarray] = []
    malformed_kinds = sorted(MALFORMED)
    v = 0
    for k in range(n):
        if not kinds[k]:
            work.append(malformed(malformed_kinds[k % len(malformed_kinds)], rng))
            continue
        img = x_test[valid_idx[v]]
        maps = v % 4 == 0
        if v % 2 == 0:
            url, data = png_data_url(img)
            work.append(Request("valid_image", "POST", "/api/predict",
                                _json({"image": url, "include_maps": maps})))
            inputs.append(prepare_image(data))
        else:
            work.append(Request("valid_pixels", "POST", "/api/predict",
                                _json({"pixels": img.tolist(), "prepare": False,
                                       "include_maps": maps})))
            inputs.append(to_model_input(img)[0, ..., 0])
        v += 1
    expected = model.predict(np.stack(inputs)[..., None]).argmax(axis=1) if inputs else []
    valid = (r for r in work if r.kind.startswith("valid"))
    for r, e in zip(valid, expected, strict=True):
        r.prediction = int(e)
    return work


def rss_mb(pid: int) -> float:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


class MemorySampler:
    """The server's RSS every ``interval`` seconds, in a thread."""

    def __init__(self, pid: int, interval: float = 0.5) -> None:
        self.pid, self.interval, self.samples = pid, interval, [rss_mb(pid)]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.samples.append(rss_mb(self.pid))

    def stop(self) -> list[float]:
        self._stop.set()
        self._thread.join()
        self.samples.append(rss_mb(self.pid))
        return self.samples


async def send_all(base: str, work: list[Request], concurrency: int,
                   outcomes: dict[str, int] | None = None,
                   ) -> tuple[list[tuple[str, float]], list[str], float]:
    """Every request, ``concurrency`` at a time: (kind, latency s) pairs, failures, wall s.

    ``outcomes`` counts ``"<kind> <status>"`` (or ``"<kind> closed_early"``)."""
    import httpx

    outcomes = {} if outcomes is None else outcomes
    results: list[tuple[str, float]] = []
    failures: list[str] = []
    queue: asyncio.Queue[tuple[int, Request]] = asyncio.Queue()
    for k, req in enumerate(work):
        queue.put_nowait((k, req))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=120) as client:

        def count(key: str) -> None:
            outcomes[key] = outcomes.get(key, 0) + 1

        async def answer(req: Request) -> httpx.Response | Exception:
            """The response, or the connection error. A kept-alive connection that the
            server closed (idle past its keep-alive time) as a request went out gets the
            request sent once more, as browsers do; counted as a retry."""
            closed = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
            for attempt in (1, 2):
                try:
                    return await client.request(req.method, req.path, content=req.body,
                                                headers={"content-type": req.content_type})
                except closed as e:
                    if req.kind == "too_large" or attempt == 2:
                        return e
                    count("retried after a closed connection")
                except httpx.HTTPError as e:
                    return e
            raise AssertionError("unreachable")

        async def worker() -> None:
            while True:
                try:
                    k, req = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                res = await answer(req)
                if isinstance(res, Exception):
                    if req.kind == "too_large":  # refused up front, closed while sending
                        count("too_large closed_early")
                    else:
                        failures.append(f"request {k} ({req.kind}): {type(res).__name__}: "
                                        f"{res}")
                    continue
                results.append((req.kind, time.perf_counter() - t0))
                count(f"{req.kind} {res.status_code}")
                if res.status_code != req.status:
                    failures.append(f"request {k} ({req.kind}): HTTP {res.status_code}, "
                                    f"expected {req.status}: {res.text[:160]}")
                elif req.prediction is not None and res.json()["prediction"] != req.prediction:
                    failures.append(f"request {k}: predicted {res.json()['prediction']}, "
                                    f"offline {req.prediction}")
                elif res.status_code >= 400 and "detail" not in res.json():
                    failures.append(f"request {k} ({req.kind}): no 'detail' in {res.text[:100]}")

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return results, failures, wall


def soak(base: str, pid: int, work: list[Request], concurrency: int) -> dict[str, Any]:
    """Warm up, then send ``work`` while sampling the server's memory; the numbers."""
    asyncio.run(send_all(base, work[: 4 * concurrency], concurrency))  # warm-up
    sampler = MemorySampler(pid)
    outcomes: dict[str, int] = {}
    results, failures, wall = asyncio.run(send_all(base, work, concurrency, outcomes))
    samples = sampler.stop()
    lat = np.array([t for _, t in results]) * 1000
    valid = np.array([t for kind, t in results if kind.startswith("valid")]) * 1000

    def pct(a: np.ndarray) -> dict[str, float]:
        if not a.size:
            return {}
        values = np.percentile(a, [50, 90, 99])
        return {k: round(float(v), 1) for k, v in zip(("p50", "p90", "p99"), values, strict=True)}

    return {
        "requests": len(work), "valid": sum(r.kind.startswith("valid") for r in work),
        "concurrency": concurrency, "wall_s": round(wall, 2),
        "requests_per_s": round(len(work) / wall, 1),
        "latency_ms": {**pct(lat), "max": round(float(lat.max()), 1) if lat.size else None},
        "valid_latency_ms": pct(valid),
        "rss_mb": {"start": round(samples[0], 1), "end": round(samples[-1], 1),
                   "peak": round(max(samples), 1)},
        "rss_growth_mb": round(samples[-1] - samples[0], 1),
        "outcomes": dict(sorted(outcomes.items())),
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=None,
                   help="model file; default: the shipped model, else a quickly trained one")
    p.add_argument("-n", "--requests", type=int, default=10_000)
    p.add_argument("-c", "--concurrency", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-growth-mb", type=float, default=50.0)
    p.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = p.parse_args(argv)
    from cnnlab.saving import load_model

    print("$ " + shlex.join([sys.executable, *sys.argv]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_path, how = pick_model(args.model, Path(tmp))
        model = load_model(model_path, compile=False)
        print(f"model: {model_path} ({how}), {model.count_params():,} parameters", flush=True)
        work = build_work(model, args.requests, args.seed)
        port = free_port()
        proc, cmd = start_server(model_path, port)
        base = f"http://127.0.0.1:{port}"
        print(f"server: {shlex.join(cmd)}  -> {base}", flush=True)
        try:
            wait_ready(base, proc)
            out = soak(base, proc.pid, work, args.concurrency)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    out.update(cpus=os.cpu_count(), load_average=os.getloadavg())
    failures = out.pop("failures")
    print(json.dumps(out, indent=2))
    for line in failures[:20]:
        print("FAIL", line)
    print(f"wrong answers: {len(failures)}")
    if args.json:
        args.json.write_text(json.dumps({**out, "failures": failures}, indent=2))
    grew = out["rss_growth_mb"] >= args.max_growth_mb
    if grew:
        print(f"FAIL: resident memory grew by {out['rss_growth_mb']} MB "
              f"(limit {args.max_growth_mb} MB)")
    return 1 if failures or grew else 0


if __name__ == "__main__":
    sys.exit(main())
