"""ONNX Runtime on the exported seed model against cnnlab's own inference, interleaved in one run.

Usage::

    python benchmarks/bench_onnx.py [--model default|seed] [--repeats 7] [--threads 2]
                                    [--json results.json]

The model (``default``: the shipped trained MNIST model; ``seed``: an untrained
``cnnlab.zoo.seed_model(seed=0)``, the same shapes) is exported with
:func:`cnnlab.export.onnx.build_onnx` and run by ONNX Runtime's CPU provider
with ``intra_op_num_threads = --threads`` (one inter-op thread, sequential
execution), beside ``model.predict`` with BLAS given the same thread count
(``OMP_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS``, set before
NumPy loads). Both take the same float32 batches of real MNIST test images:

* inference, batch 1,000: images/s (ratio = onnxruntime / cnnlab);
* inference, batch 1: images/s, i.e. 1 / latency (same ratio);
* batch 1, median call: the median of every single call's time, in ms (ratio =
  cnnlab_ms / onnxruntime_ms, > 1 means ONNX Runtime is faster): unlike the block
  means above, robust to the stalls a loaded machine adds.

Each repetition times cnnlab and ONNX Runtime back to back (which goes first
alternates), after a pause for the other's worker threads to settle, so a busy
machine slows both alike; the table reports the medians. Before timing, the
outputs are checked to agree within 1e-5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from _threads import set_threads, threads_from_argv  # noqa: E402  (before NumPy)

threads_from_argv()

import numpy as np  # noqa: E402

#: Seconds of idleness before each timed block (worker pools spin for a while).
SETTLE_S = 0.3


def _time(fn: Callable[[], Any], calls: int) -> float:
    """Seconds per call over ``calls`` back-to-back calls, after a pause and two untimed calls."""
    time.sleep(SETTLE_S)
    fn()
    fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=("default", "seed"), default="default")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--threads", type=int, default=2, help="threads for both (default 2)")
    p.add_argument("--calls-1", type=int, default=200, help="batch-1 calls per timed block")
    p.add_argument("--calls-1000", type=int, default=3, help="batch-1000 calls per timed block")
    p.add_argument("--json", default=None, help="write the results here too")
    args = p.parse_args(argv)
    set_threads(args.threads)

    import onnxruntime as ort

    from cnnlab.datasets.mnist import load_mnist
    from cnnlab.export.onnx import build_onnx
    from cnnlab.pretrained import load_pretrained
    from cnnlab.zoo import seed_model

    model = load_pretrained() if args.model == "default" else seed_model(seed=0)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(build_onnx(model).SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    (_, _), (x_test, _) = load_mnist()
    x = model.cast_inputs(np.asarray(x_test[:1000])[..., None])  # float32, * (1/255)
    one = x[:1]
    got, want = sess.run(None, {"input": x})[0], model.predict(x)
    assert np.abs(got - want).max() <= 1e-5, np.abs(got - want).max()

    cases = [("inference, batch 1000", x, args.calls_1000),
             ("inference, batch 1", one, args.calls_1)]
    rows = []
    for name, batch, calls in cases:
        def run_cnnlab(b: np.ndarray = batch) -> Any:
            return model.predict(b)

        def run_ort(b: np.ndarray = batch) -> Any:
            return sess.run(None, {"input": b})

        fns = [run_cnnlab, run_ort]
        times: list[list[float]] = [[], []]
        for r in range(args.repeats):
            for i in ([0, 1] if r % 2 == 0 else [1, 0]):
                times[i].append(_time(fns[i], calls))
        n = len(batch)
        c_ips = n / statistics.median(times[0])
        o_ips = n / statistics.median(times[1])
        rows.append({"name": name, "unit": "img/s", "cnnlab": c_ips, "onnxruntime": o_ips,
                     "ratio": o_ips / c_ips,
                     "cnnlab_ms": 1e3 * statistics.median(times[0]),
                     "onnxruntime_ms": 1e3 * statistics.median(times[1])})

    # batch 1 call by call: the median is robust to the stalls a loaded machine adds
    per_call: list[list[float]] = [[], []]
    calls_one = [lambda: model.predict(one), lambda: sess.run(None, {"input": one})]
    for r in range(args.repeats):
        for i in ([0, 1] if r % 2 == 0 else [1, 0]):
            fn = calls_one[i]
            time.sleep(SETTLE_S)
            fn()
            for _ in range(args.calls_1):
                t0 = time.perf_counter()
                fn()
                per_call[i].append(time.perf_counter() - t0)
    c_ms, o_ms = (1e3 * statistics.median(t) for t in per_call)
    rows.append({"name": "batch 1, median call", "unit": "ms", "cnnlab": c_ms,
                 "onnxruntime": o_ms, "ratio": c_ms / o_ms})

    print(f"model={args.model} threads={args.threads} repeats={args.repeats} "
          f"numpy={np.__version__} onnxruntime={ort.__version__} "
          "(median of repeats; ratio > 1: onnxruntime is faster)")
    print(f"{'benchmark':24s} {'unit':>6s} {'cnnlab':>10s} {'onnxruntime':>12s} {'ratio':>7s}")
    for r in rows:
        print(f"{r['name']:24s} {r['unit']:>6s} {r['cnnlab']:10.2f} {r['onnxruntime']:12.2f} "
              f"{r['ratio']:7.2f}")
    try:
        load = os.getloadavg()[0]
        print(f"load average (1 min) at the end: {load:.2f} on {os.cpu_count()} CPUs")
    except OSError:
        load = float("nan")
    result = {"model": args.model, "threads": args.threads, "repeats": args.repeats,
              "numpy": np.__version__, "onnxruntime": ort.__version__, "loadavg_1min": load,
              "rows": rows}
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
