"""cnnlab on a GPU (CuPy) against PyTorch with CUDA, on the slides' model, in one run.

Usage::

    python benchmarks/bench_gpu.py [--repeats 5] [--steps 20] [--json results.json]

Needs an NVIDIA GPU, ``pip install 'cnnlab[gpu]'`` and, for the comparison,
PyTorch built with CUDA. Without a GPU it prints why and exits with status 0
(nothing measured); without a CUDA PyTorch it measures cnnlab alone.

Measured, each as images/s (median of ``--repeats`` interleaved blocks: cnnlab
then PyTorch, back to back, on the same GPU, after warm-up):

* training step of the seed model (forward, loss, backward, Adam update) at
  batch 128 and 1,024, from host (NumPy) batches as ``fit`` feeds them: the
  batch is copied to the device every step in both frameworks. cnnlab's step
  is :func:`cnnlab.training.train_step` (what ``fit`` runs per batch; it
  brings the loss and correct count back to the host every step), PyTorch's is
  the usual ``zero_grad/forward/backward/step`` without ``.item()``;
* inference at batch 1,000 (``model.predict``; PyTorch ``no_grad`` + ``.cpu()``).

It also prints the ratio cnnlab / PyTorch and the training time the slides'
experiment (10 epochs of 60,000 images at batch 128) would take at the
measured batch-128 rate (a projection from the rate, not a timed run).

Where a profile should look (``nsys profile -t cuda,nvtx python
benchmarks/bench_gpu.py --steps 50 --nvtx``; each step is an NVTX range, or
CuPy's ``cupyx.profiler.benchmark`` for single ops). At this model's size
kernel launches and host synchronisation are expected to dominate, not GEMMs:

* host syncs per training step: the loss (``float`` in the loss head), the
  correct count (``int``), the NaN guard (one transfer for all gradients,
  :func:`cnnlab.backend.first_nonfinite_sum`), each ``kernel_regularizer``
  penalty (``float``); in inference, the Winograd filter cache's
  ``array_equal`` (one per convolution per batch). Folding loss, count and
  guard into one transfer at the end of the step would leave one;
* launches: Adam's update is about eight element-wise kernels per parameter
  array (``cupy.fuse`` or one ``ElementwiseKernel`` per slot update); dropout
  (random, compare, cast, scale, multiply); the ReLU mask multiply; the
  softmax cross-entropy; Winograd's transforms are many small matmuls per
  chunk, and ``cnnlab.ops.schedule`` cuts the batch into chunks of
  ``CHUNK_ROWS`` rows (a CPU cache choice: on a GPU one chunk per batch means
  fewer launches); the thresholds choosing Winograd over im2col were tuned on
  a CPU (``benchmarks/tune_thresholds.py``);
* the per-step host work: ``prepare_batch`` checks and the copy of each batch
  (pinned memory and a second stream would overlap it with compute).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

TRAIN_BATCHES = (128, 1024)
INFER_BATCH = 1000
SLIDES_IMAGES = 60_000 * 10  # the slides' experiment: 10 epochs of MNIST's training set


def gpu_or_reason() -> tuple[Any | None, str | None]:
    """``(cupy, None)`` when cnnlab can use a GPU, else ``(None, why not)``."""
    from cnnlab.backend import _require_gpu
    from cnnlab.errors import DeviceError

    try:
        return _require_gpu(), None
    except DeviceError as e:
        return None, str(e)


def torch_cuda_or_reason() -> tuple[Any | None, str | None]:
    try:
        import torch
    except ImportError as e:
        return None, f"PyTorch is not installed ({e})"
    if not torch.cuda.is_available():
        return None, f"PyTorch {torch.__version__} has no CUDA device (a CPU build?)"
    return torch, None


def build_torch(torch: Any, seed: int = 0) -> tuple[Any, Any, Any]:
    """The seed model in PyTorch (NCHW) on CUDA; Keras's 'same' for a 2x2 kernel pads
    0 before and 1 after, hence the ZeroPad2d (as ``benchmarks/bench_speed.py``)."""
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.ZeroPad2d((0, 1, 0, 1)), nn.Conv2d(1, 16, 2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 128, 3), nn.ReLU(), nn.Conv2d(128, 256, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Dropout(0.25), nn.Flatten(), nn.Linear(256 * 5 * 5, 128), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(128, 10),
    ).cuda()
    return model, torch.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()


def make_data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.random((n, 28, 28, 1), dtype=np.float32), rng.integers(0, 10, n)


def median_rate(fn: Callable[[], None], sync: Callable[[], None], images: int,
                steps: int) -> float:
    """Images/s of ``steps`` calls of ``fn`` (each handling ``images``), synchronised."""
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return images * steps / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="timed calls per block")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--nvtx", action="store_true", help="mark each step as an NVTX range")
    parser.add_argument("--json", default=None, help="also write the results here")
    args = parser.parse_args(argv)

    cupy, why = gpu_or_reason()
    if cupy is None:
        print(f"bench_gpu: skipped, no GPU: {why}")
        return {"skipped": why}
    torch, why_torch = torch_cuda_or_reason()
    if torch is None:
        print(f"bench_gpu: PyTorch column skipped: {why_torch}")

    import cnnlab
    from cnnlab.training import train_step

    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    print(f"GPU: {name}; CuPy {cupy.__version__}"
          + (f"; PyTorch {torch.__version__} (CUDA {torch.version.cuda})" if torch else ""))

    def cupy_sync() -> None:
        cupy.cuda.Device().synchronize()

    def torch_sync() -> None:
        if torch is not None:
            torch.cuda.synchronize()

    def nvtx(label: str, fn: Callable[[], None]) -> Callable[[], None]:
        if not args.nvtx:
            return fn
        from cupyx.profiler import time_range

        def wrapped() -> None:
            with time_range(label):
                fn()
        return wrapped

    results: dict[str, Any] = {"gpu": name, "rows": []}
    rows: list[tuple[str, int, Callable[[], None], Callable[[], None] | None]] = []
    for batch in TRAIN_BATCHES:
        x, y = make_data(batch)
        model = cnnlab.seed_model(seed=0).to("gpu")
        model.compile(cnnlab.Adam(1e-3))
        xb, yb = model.prepare_batch(x, y)  # checked once, as fit does

        def cl_train(model: Any = model, xb: np.ndarray = xb, yb: np.ndarray = yb) -> None:
            train_step(model, xb, yb)

        t_train = None
        if torch is not None:
            tm, opt, loss_fn = build_torch(torch)
            tm.train()
            x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))

            def t_train(tm: Any = tm, opt: Any = opt, loss_fn: Any = loss_fn,
                        x_nchw: np.ndarray = x_nchw, y: np.ndarray = y) -> None:
                xt = torch.from_numpy(x_nchw).cuda(non_blocking=False)
                yt = torch.from_numpy(y).cuda()
                opt.zero_grad(set_to_none=True)
                loss_fn(tm(xt), yt).backward()
                opt.step()

        rows.append((f"train, batch {batch}", batch, nvtx(f"cnnlab step {batch}", cl_train),
                     t_train))

    x, _ = make_data(INFER_BATCH, seed=1)
    infer_model = cnnlab.seed_model(seed=0).to("gpu")

    def cl_infer() -> None:
        infer_model.predict(x, batch_size=INFER_BATCH)

    t_infer = None
    if torch is not None:
        tmi, _, _ = build_torch(torch)
        tmi.eval()
        x_nchw = np.ascontiguousarray(x.transpose(0, 3, 1, 2))

        def t_infer() -> None:
            with torch.no_grad():
                torch.softmax(tmi(torch.from_numpy(x_nchw).cuda()), dim=1).cpu()

    rows.append((f"inference, batch {INFER_BATCH}", INFER_BATCH, cl_infer, t_infer))

    print(f"\n{'':24}{'cnnlab img/s':>14}{'PyTorch img/s':>15}{'ratio':>8}")
    for label, images, cl, tt in rows:
        for _ in range(args.warmup):
            cl()
            if tt is not None:
                tt()
        cupy_sync()
        torch_sync()
        cl_rates, t_rates = [], []
        for _ in range(args.repeats):
            cl_rates.append(median_rate(cl, cupy_sync, images, args.steps))
            if tt is not None:
                t_rates.append(median_rate(tt, torch_sync, images, args.steps))
        c = statistics.median(cl_rates)
        t = statistics.median(t_rates) if t_rates else None
        ratio = c / t if t else None
        results["rows"].append({"what": label, "cnnlab": c, "torch": t, "ratio": ratio})
        print(f"{label:24}{c:14,.0f}" + (f"{t:15,.0f}{ratio:8.2f}" if t else f"{'-':>15}"))
    rate128 = results["rows"][0]["cnnlab"]
    results["slides_10_epochs_s_projected"] = SLIDES_IMAGES / rate128
    print(f"\nThe slides' 10 epochs (600,000 images at batch 128) at this rate: "
          f"{SLIDES_IMAGES / rate128:,.0f} s of training (projected from the rate, "
          "validation excluded)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
