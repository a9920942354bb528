"""Is the demo still responsive while a live training runs? ``/api/predict`` latency, alone
and beside a live run, measured in the same session.

Starts ``cnnlab serve`` (``python -m cnnlab.cli serve MODEL``; the request
builder and the load loop are ``benchmarks/load_serve.py``'s), then:

1. opens a live training run as the page does (``GET /api/live/stream``, read
   by a client thread that consumes the events, as the page's EventSource
   does), paused, with a recipe large enough to outlast the load;
2. ``--rounds`` times: the load test (``-n`` predictions, ``-c`` in flight,
   feature maps on) with the run paused, then again with it training
   (``POST /api/live/control``), so that the machine's other load hits both
   phases alike; then stops the run.

Reports throughput and p50/p90/p99 per phase and round, the medians, their
ratio, and how many training steps the live run took. Every answer is checked as
in ``load_serve.py``; exits 1 on a wrong one.

Usage::

    python benchmarks/load_serve_live.py [-n 400] [-c 8] [--rounds 3] [--recipe "n=4000&epochs=5"]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import load_serve  # noqa: E402


def stats(latencies: list[float], wall: float, n: int) -> dict[str, float]:
    ms = np.array(latencies) * 1000
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return {"rps": n / wall, "p50": p50, "p90": p90, "p99": p99, "max": float(ms.max())}


def line(name: str, s: dict[str, float]) -> str:
    return (f"{name}: {s['rps']:.1f} requests/s, latency ms p50 {s['p50']:.1f}  "
            f"p90 {s['p90']:.1f}  p99 {s['p99']:.1f}  max {s['max']:.1f}")


class LiveClient(threading.Thread):
    """Reads a live run's event stream like the page does; counts its steps."""

    def __init__(self, base: str, recipe: str) -> None:
        super().__init__(daemon=True)
        self.url = f"{base}/api/live/stream?tab=bench&{recipe}"
        self.steps = 0
        self.last_loss: float | None = None
        self.started = threading.Event()
        self.stop = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        import httpx

        try:
            with httpx.stream("GET", self.url, timeout=None) as r:
                for raw in r.iter_lines():
                    if self.stop.is_set():
                        break  # closing the stream stops the run on the server
                    if not raw.startswith("data: "):
                        continue
                    ev = json.loads(raw[6:])
                    if ev["type"] == "start":
                        self.started.set()
                    elif ev["type"] == "step":
                        self.steps = ev["step"]
                        self.last_loss = ev["loss"]
                    elif ev["type"] == "end":
                        break
        except Exception as e:  # reported, not raised: the load numbers still count
            self.error = f"{type(e).__name__}: {e}"
            self.started.set()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-n", "--requests", type=int, default=400)
    p.add_argument("-c", "--concurrency", type=int, default=8)
    p.add_argument("--rounds", type=int, default=3, help="alone/live pairs (default 3)")
    p.add_argument("--recipe", default="n=4000&epochs=5&batch=16&every=5",
                   help="the live run's query string (default: long enough to outlast the load)")
    args = p.parse_args(argv)
    from cnnlab.saving import load_model

    print("$ " + shlex.join([sys.executable, *sys.argv]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        model_path, how = load_serve.pick_model(None, Path(tmp))
        model = load_model(model_path, compile=False)
        print(f"model: {model_path} ({how}), {model.count_params():,} parameters", flush=True)
        work = load_serve.build_requests(model, args.requests, 0, True)
        port = load_serve.free_port()
        # `cnnlab serve` itself, as a user starts it
        cmd = [sys.executable, "-m", "cnnlab.cli", "serve", str(model_path), "--host",
               "127.0.0.1", "--port", str(port)]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        print(f"server: {shlex.join(cmd)}", flush=True)
        base = f"http://127.0.0.1:{port}"
        results: dict[str, list[dict[str, float]]] = {}
        steps: dict[str, list[int]] = {}
        failures: list[str] = []
        try:
            import httpx

            load_serve.wait_ready(base, proc)
            asyncio.run(load_serve.run_load(base, work[: 2 * args.concurrency],
                                            args.concurrency))  # warm-up
            live = LiveClient(base, args.recipe + "&paused=1")
            live.start()
            live.started.wait(60)

            def control(action: str) -> None:
                r = httpx.post(f"{base}/api/live/control",
                               json={"tab": "bench", "action": action}, timeout=30)
                if r.status_code == 404:
                    raise RuntimeError("the live run ended before the measurement did: "
                                       "give a longer --recipe")
                r.raise_for_status()

            # alternate the phases, so that the other load on the machine hits both alike
            for _ in range(args.rounds):
                for phase in ("alone", "live"):
                    control("resume" if phase == "live" else "pause")
                    time.sleep(0.5)
                    before = live.steps
                    lat, fail, wall = asyncio.run(load_serve.run_load(base, work,
                                                                      args.concurrency))
                    results.setdefault(phase, []).append(stats(lat, wall, len(work)))
                    steps.setdefault(phase, []).append(live.steps - before)
                    failures += fail
            control("stop")
            live.stop.set()
            live.join(timeout=30)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except Exception:
                proc.kill()
                proc.wait()
    print(f"requests: {len(work)} per phase (with feature maps), concurrency "
          f"{args.concurrency}, CPUs {os.cpu_count()}, {args.rounds} rounds of: alone, "
          f"beside the live run (recipe {args.recipe}; paused while alone)")
    for k in range(args.rounds):
        a, b = results["alone"][k], results["live"][k]
        print(line(f"round {k + 1} alone", a))
        print(line(f"round {k + 1} live ", b) + f"  ({steps['live'][k]} training steps; "
              f"p99 ratio {b['p99'] / a['p99']:.2f})")
    med = {ph: {key: float(np.median([r[key] for r in rs])) for key in rs[0]}
           for ph, rs in results.items()}
    print(line("median alone", med["alone"]))
    print(line("median live ", med["live"]))
    print(f"median p99 ratio (live / alone): {med['live']['p99'] / med['alone']['p99']:.2f}; "
          f"throughput ratio: {med['live']['rps'] / med['alone']['rps']:.2f}; training steps "
          f"while alone (paused): {sum(steps['alone'])}"
          + (f"; stream error {live.error}" if live.error else ""))
    for f in failures[:10]:
        print("FAIL", f)
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())
