"""cnnlab against PyTorch (CPU, fp32) on the slides' model, interleaved in one run.

Usage::

    python benchmarks/bench_speed.py [--model seed|vgg-small] [--repeats 7] [--threads 2]
                                     [--json results.json]

Both frameworks get the same thread count (``OMP_NUM_THREADS``,
``OPENBLAS_NUM_THREADS``, ``MKL_NUM_THREADS`` and ``torch.set_num_threads``),
the same model (``--model seed``, the default: ``cnnlab.seed_model()`` on 28x28x1;
``--model vgg-small``: ``cnnlab.zoo.vgg_small()`` on 32x32x3, a BatchNormalization
after every convolution; each with an equivalent ``torch.nn.Sequential``),
the same batches and Adam(lr=1e-3). Warm-up iterations are excluded; each
repetition times cnnlab then PyTorch back to back, so a busy machine slows both
alike, and the table reports medians over the repetitions:

* training step, batch 128 (forward, loss, backward, Adam update): images/s;
* inference, batch 1000: images/s;
* inference, batch 1: latency in ms (ratio = torch_ms / cnnlab_ms, > 1 means
  cnnlab is faster);
* peak resident memory (``ru_maxrss``) of a short training run of each
  framework, each in a fresh subprocess.

With ``--keras`` (or when TensorFlow and Keras 3 are importable and
``--no-keras`` is not given), Keras 3 on TensorFlow, the slides' own
framework, joins as a third column, timed in the same interleaved blocks:
``train_on_batch`` and ``predict_on_batch`` (both run a compiled
``tf.function``), with TensorFlow's intra- and inter-op pools set to
``--threads``. Without TensorFlow the column is skipped with a message
(``pip install tensorflow-cpu keras``).

PyTorch and TensorFlow are benchmark-only dependencies; cnnlab never imports them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

from _threads import blas_kernels, set_threads, threads_from_argv  # noqa: E402  (before NumPy)

threads_from_argv()
os.environ.setdefault("KERAS_BACKEND", "tensorflow")  # before anything imports keras
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

BATCH_TRAIN = 128
BATCH_INFER = 1000

#: --model choices -> input shape (H, W, C) of the random batches.
MODELS: dict[str, tuple[int, int, int]] = {"seed": (28, 28, 1), "vgg-small": (32, 32, 3)}


# ----------------------------------------------------------------------------- models


def build_cnnlab(seed: int = 0, model_name: str = "seed") -> Any:
    import cnnlab

    if model_name == "vgg-small":
        model = cnnlab.zoo.vgg_small(seed=seed)
    else:
        model = cnnlab.seed_model(seed=seed)
    model.compile(optimizer=cnnlab.Adam(learning_rate=1e-3),
                  loss="sparse_categorical_crossentropy")
    return model


def build_torch(seed: int = 0, model_name: str = "seed") -> tuple[Any, Any, Any]:
    """The seed model in PyTorch (NCHW). Keras's 'same' for a 2x2 kernel pads 0 before
    and 1 after, hence the explicit ZeroPad2d.

    ``model_name="vgg-small"``: :func:`build_torch_vgg_small` instead."""
    import torch
    from torch import nn

    if model_name == "vgg-small":
        return build_torch_vgg_small(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.ZeroPad2d((0, 1, 0, 1)),
        nn.Conv2d(1, 16, 2),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 128, 3),
        nn.ReLU(),
        nn.Conv2d(128, 256, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(256 * 5 * 5, 128),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, opt, nn.CrossEntropyLoss()


def build_torch_vgg_small(seed: int = 0, num_classes: int = 10) -> tuple[Any, Any, Any]:
    """``cnnlab.zoo.vgg_small`` in PyTorch (NCHW, like the seed twin).

    Three blocks of [Conv2d(3x3, padding=1 = Keras's 'same' for an odd kernel,
    no bias) -> BatchNorm2d -> ReLU] x 2 -> MaxPool2d(2), for 32, 64, 128
    filters; then global average pooling, Dropout(0.3), Linear. BatchNorm2d
    gets Keras's defaults: ``eps=1e-3`` and ``momentum=0.01`` (PyTorch's
    momentum is the weight of the *new* batch statistic, Keras's 0.99 that of
    the old moving one). The softmax lives in the loss (training) and in the
    inference workloads, as for the seed twin.
    """
    import torch
    from torch import nn

    torch.manual_seed(seed)
    layers: list[nn.Module] = []
    cin = 3
    for filters in (32, 64, 128):
        for _ in range(2):
            layers += [nn.Conv2d(cin, filters, 3, padding=1, bias=False),
                       nn.BatchNorm2d(filters, eps=1e-3, momentum=0.01),
                       nn.ReLU()]
            cin = filters
        layers.append(nn.MaxPool2d(2))
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.3),
               nn.Linear(cin, num_classes)]
    model = nn.Sequential(*layers)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    return model, opt, nn.CrossEntropyLoss()


def keras_available() -> str | None:
    """None if Keras 3 on TensorFlow can run here, else why not."""
    try:
        import keras
        import tensorflow  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed (pip install tensorflow-cpu keras)"
    if keras.backend.backend() != "tensorflow":
        return f"Keras runs on {keras.backend.backend()!r}, not TensorFlow (KERAS_BACKEND)"
    return None


def build_keras(threads: int, seed: int = 0, model_name: str = "seed") -> Any:
    """The seed model as the slides wrote it, in Keras 3 on TensorFlow (NHWC, like cnnlab)."""
    import keras
    import tensorflow as tf

    if model_name != "seed":
        raise SystemExit("--keras runs with --model seed only")
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)
    layers = keras.layers
    model = keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(16, 2, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(128, 3, activation="relu"),
        layers.Conv2D(256, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.5),
        layers.Dense(10, activation="softmax"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss="sparse_categorical_crossentropy")
    return model


# ----------------------------------------------------------------------------- workloads


def make_data(n: int, seed: int = 0, model_name: str = "seed") -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.random((n, *MODELS[model_name]), dtype=np.float32)
    y = rng.integers(0, 10, n).astype(np.int64)
    return x, y


class Workloads:
    """Callables doing identical work in each framework."""

    def __init__(self, threads: int, model_name: str = "seed",
                 channels_last: bool = False, keras: bool = False) -> None:
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.cl_model = build_cnnlab(model_name=model_name)
        self.t_model, self.t_opt, self.t_loss = build_torch(model_name=model_name)
        x, y = make_data(BATCH_INFER, model_name=model_name)
        self.x_train, self.y_train = x[:BATCH_TRAIN], y[:BATCH_TRAIN]
        self.x_infer, self.x_one = x, x[:1]
        self.tx_train = torch.from_numpy(self.x_train.transpose(0, 3, 1, 2).copy())
        self.ty_train = torch.from_numpy(self.y_train)
        self.tx_infer = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        self.tx_one = self.tx_infer[:1].clone()
        if channels_last:  # torch's NHWC memory format: often faster for convolutions on CPUs
            fmt = torch.channels_last
            self.t_model = self.t_model.to(memory_format=fmt)
            self.tx_train = self.tx_train.contiguous(memory_format=fmt)
            self.tx_infer = self.tx_infer.contiguous(memory_format=fmt)
            self.tx_one = self.tx_one.contiguous(memory_format=fmt)
        self.k_model = build_keras(threads, model_name=model_name) if keras else None

    def k_train(self) -> None:
        self.k_model.train_on_batch(self.x_train, self.y_train)

    def k_infer(self) -> None:
        self.k_model.predict_on_batch(self.x_infer)

    def k_one(self) -> None:
        self.k_model.predict_on_batch(self.x_one)

    def cl_train(self) -> None:
        self.cl_model.train_on_batch(self.x_train, self.y_train)

    def t_train(self) -> None:
        self.t_model.train()  # BatchNorm2d: batch statistics, running ones updated
        self.t_opt.zero_grad(set_to_none=True)
        loss = self.t_loss(self.t_model(self.tx_train), self.ty_train)
        loss.backward()
        self.t_opt.step()

    def cl_infer(self) -> None:
        self.cl_model.predict(self.x_infer, batch_size=BATCH_INFER)

    def t_infer(self) -> None:
        self.t_model.eval()  # BatchNorm2d: running statistics (cnnlab's predict: moving ones)
        with self.torch.inference_mode():
            self.torch.softmax(self.t_model(self.tx_infer), dim=1)

    def cl_one(self) -> None:
        self.cl_model.predict(self.x_one, batch_size=1)

    def t_one(self) -> None:
        self.t_model.eval()
        with self.torch.inference_mode():
            self.torch.softmax(self.t_model(self.tx_one), dim=1)


#: Seconds of idleness before each timed block. Both libraries keep their
#: worker threads spinning for a while after a parallel call (OpenBLAS's and
#: PyTorch's OpenMP pools); on 2 cores, the other framework's spinning threads
#: would compete with the block being timed. Measured: PyTorch's batch-1 latency
#: went from 0.68 ms alone to 2.0 ms interleaved with cnnlab without a pause.
SETTLE_S = 0.3


def _time(fn: Callable[[], None], calls: int, settle: float = SETTLE_S) -> float:
    """Seconds per call, averaged over ``calls`` back-to-back calls.

    Pauses ``settle`` seconds first, then makes two untimed calls to wake
    this framework's threads and caches.
    """
    time.sleep(settle)
    fn()
    fn()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls


def interleaved(*fns: Callable[[], None], repeats: int, calls: int,
                warmup: int) -> list[list[float]]:
    """Per-repetition seconds per call of each of ``fns``, rotating which goes first."""
    for _ in range(warmup):
        for fn in fns:
            fn()
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeats):
        order = list(range(len(fns)))
        order = order[r % len(fns):] + order[: r % len(fns)]
        for i in order:
            times[i].append(_time(fns[i], calls))
    return times


# ----------------------------------------------------------------------------- memory


def memory_child(framework: str, steps: int, model_name: str = "seed") -> None:
    """Train ``steps`` batches of 128 in this (fresh) process, print peak RSS in MiB."""
    import resource

    w_threads = int(os.environ.get("OMP_NUM_THREADS", "2"))
    x, y = make_data(BATCH_TRAIN * 4, model_name=model_name)
    if framework == "cnnlab":
        model = build_cnnlab(model_name=model_name)
        for s in range(steps):
            i = (s % 4) * BATCH_TRAIN
            model.train_on_batch(x[i : i + BATCH_TRAIN], y[i : i + BATCH_TRAIN])
        model.predict(x[:BATCH_INFER], batch_size=BATCH_INFER)
    else:
        import torch

        torch.set_num_threads(w_threads)
        model, opt, loss_fn = build_torch(model_name=model_name)
        model.train()
        tx = torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
        ty = torch.from_numpy(y)
        for s in range(steps):
            i = (s % 4) * BATCH_TRAIN
            opt.zero_grad(set_to_none=True)
            loss_fn(model(tx[i : i + BATCH_TRAIN]), ty[i : i + BATCH_TRAIN]).backward()
            opt.step()
    print(json.dumps({"framework": framework, "peak_rss_mib": _peak_rss_mib(resource)}))


def _peak_rss_mib(resource: Any) -> float:
    """Peak resident memory of this process in MiB.

    ``VmHWM`` from ``/proc/self/status`` where it exists: Linux's ``ru_maxrss``
    survives ``exec`` and so would report the parent's peak in a fresh child.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def measure_memory(framework: str, steps: int, model_name: str = "seed") -> float:
    out = subprocess.run(
        [sys.executable, __file__, "--_memory-child", framework, "--steps", str(steps),
         "--model", model_name],
        capture_output=True, text=True, check=True, env=os.environ.copy(),
    )
    return float(json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"])


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=tuple(MODELS), default="seed",
                   help="seed: the slides' model on 28x28x1 (default); vgg-small: "
                        "cnnlab.zoo.vgg_small, BatchNormalization after every conv, 32x32x3")
    p.add_argument("--torch-channels-last", action="store_true",
                   help="run PyTorch in its channels_last memory format (default: NCHW)")
    p.add_argument("--repeats", type=int, default=7, help="timed repetitions (median reported)")
    p.add_argument("--threads", type=int, default=2, help="threads for both frameworks")
    p.add_argument("--train-calls", type=int, default=2, help="training steps per repetition")
    p.add_argument("--infer-calls", type=int, default=1, help="batch-1000 passes per repetition")
    p.add_argument("--one-calls", type=int, default=30, help="batch-1 calls per repetition")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--memory-steps", type=int, default=10, help="0 skips the memory runs")
    p.add_argument("--only", choices=("train", "infer", "one"), action="append",
                   help="run only these timings (repeatable)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    kg = p.add_mutually_exclusive_group()
    kg.add_argument("--keras", action="store_true",
                    help="require the Keras 3 / TensorFlow column (error if not installed)")
    kg.add_argument("--no-keras", action="store_true", help="skip the Keras column")
    p.add_argument("--_memory-child", dest="memory_child", help=argparse.SUPPRESS)
    p.add_argument("--steps", type=int, default=10, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    set_threads(args.threads)
    if args.memory_child:
        memory_child(args.memory_child, args.steps, args.model)
        return {}

    import torch

    memory: tuple[float, float] | None = None
    if args.memory_steps:  # first, while this process is still small
        memory = (measure_memory("cnnlab", args.memory_steps, args.model),
                  measure_memory("torch", args.memory_steps, args.model))
    keras_missing = "--no-keras given" if args.no_keras else keras_available()
    if args.keras and keras_missing:
        raise SystemExit(f"--keras: {keras_missing}")
    if keras_missing is None and args.model != "seed":
        keras_missing = "the Keras twin exists for --model seed only"
    use_keras = keras_missing is None
    w = Workloads(args.threads, args.model, args.torch_channels_last, keras=use_keras)
    only = set(args.only or ("train", "infer", "one"))
    rows: list[dict[str, Any]] = []

    def row(name: str, unit: str, fns: list[Callable[[], None]], calls: int, warmup: int,
            per_call: Callable[[float], float], better_low: bool) -> None:
        times = interleaved(*fns, repeats=args.repeats, calls=calls, warmup=warmup)
        vals = [per_call(statistics.median(t)) for t in times]
        r = {"name": name, "unit": unit, "cnnlab": vals[0], "torch": vals[1]}
        r["ratio"] = vals[1] / vals[0] if better_low else vals[0] / vals[1]
        if use_keras:
            r["keras"] = vals[2]
            r["ratio_keras"] = vals[2] / vals[0] if better_low else vals[0] / vals[2]
        rows.append(r)

    # batch 1 first: PyTorch's batch-1 latency was measured slower after the
    # training runs in the same process (0.8 -> 1.2 ms), cnnlab's was not
    k = use_keras
    if "one" in only:
        row("inference, batch 1 latency", "ms", [w.cl_one, w.t_one] + ([w.k_one] if k else []),
            args.one_calls, args.warmup * 5, lambda t: t * 1e3, True)
    if "infer" in only:
        row("inference, batch 1000", "img/s",
            [w.cl_infer, w.t_infer] + ([w.k_infer] if k else []),
            args.infer_calls, args.warmup, lambda t: BATCH_INFER / t, False)
    if "train" in only:
        row("train step, batch 128", "img/s",
            [w.cl_train, w.t_train] + ([w.k_train] if k else []),
            args.train_calls, args.warmup, lambda t: BATCH_TRAIN / t, False)
    if memory is not None:
        mc, mt = memory
        rows.append({"name": f"peak RSS, {args.memory_steps} train steps", "unit": "MiB",
                     "cnnlab": mc, "torch": mt, "ratio": mt / mc})

    if args.model != "seed":  # the seed model's output stays as it always was
        h, wd, c = MODELS[args.model]
        layout = "channels_last" if args.torch_channels_last else "NCHW"
        print(f"model={args.model} (cnnlab.zoo.vgg_small(seed=0), {h}x{wd}x{c} random data, "
              f"10 classes; torch twin {layout} with BatchNorm2d(eps=1e-3, momentum=0.01))")
    if args.torch_channels_last and args.model == "seed":
        print("torch layout: channels_last")
    print(f"threads={args.threads} repeats={args.repeats} numpy={np.__version__} "
          f"torch={torch.__version__} (median of repeats; ratio > 1 means cnnlab is better)")
    blas = blas_kernels()
    print(f"NumPy's BLAS: {blas}")
    if use_keras:
        import keras
        import tensorflow as tf
        print(f"keras={keras.__version__} tensorflow={tf.__version__}")
    else:
        print(f"Keras/TensorFlow column skipped: {keras_missing}")
    head = f"{'benchmark':32s} {'unit':>6s} {'cnnlab':>10s} {'torch':>10s} {'ratio':>7s}"
    print(head + (f" {'keras':>10s} {'ratio':>7s}" if use_keras else ""))
    for r in rows:
        line = (f"{r['name']:32s} {r['unit']:>6s} {r['cnnlab']:10.2f} {r['torch']:10.2f} "
                f"{r['ratio']:7.2f}")
        if "keras" in r:
            line += f" {r['keras']:10.2f} {r['ratio_keras']:7.2f}"
        print(line)
    try:
        load = os.getloadavg()[0]
        print(f"load average (1 min) at the end: {load:.2f} on {os.cpu_count()} CPUs")
    except OSError:
        load = float("nan")
    result = {"threads": args.threads, "repeats": args.repeats, "numpy": np.__version__,
              "torch": torch.__version__, "blas": blas, "loadavg_1min": load, "rows": rows}
    if use_keras:
        result["keras"] = keras.__version__
        result["tensorflow"] = tf.__version__
    if args.model != "seed":
        result["model"] = args.model
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
