"""Wall time until the seed model first reaches a test accuracy on MNIST.

Usage::

    python benchmarks/time_to_accuracy.py [--schedule onecycle --lr 3e-3 --epochs 6]
    python benchmarks/time_to_accuracy.py --framework torch     # the slides' recipe

The architecture is always ``cnnlab.seed_model()`` (or its PyTorch twin). The
model is evaluated on the 10,000 test images every ``--eval-every`` epochs
(0.5 = twice per epoch); the clock runs through evaluation too, and stops the
first time test accuracy >= ``--target`` (default 0.9935), or after
``--epochs``. Learning-rate schedules (``lr(t)`` for ``t`` = fraction of the
whole run done, ``T`` = ``--epochs``):

* ``constant``: ``lr``;
* ``cosine``: ``lr * (1 + cos(pi t)) / 2`` after a linear warm-up;
* ``onecycle``: linear warm-up from ``lr / 25`` to ``lr`` over ``--warmup``
  of the run, then cosine down to ``lr / 1e4`` (Smith and Topin 2019);
* ``step``: ``lr * 0.1 ** floor(epoch / --step-epochs)``.

``--framework torch`` runs PyTorch (benchmark-only dependency) with the slides'
recipe: Adam(1e-3), batch 128, constant rate, up to 10 epochs, same evaluation
cadence and stopping rule.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _threads import threads_from_argv  # noqa: E402  (before NumPy loads BLAS)

threads_from_argv()

import numpy as np  # noqa: E402

import cnnlab  # noqa: E402

DATA_DIR = Path(__file__).resolve().parents[1] / "src" / "cnnlab" / "datasets" / "data" / "mnist"


# ----------------------------------------------------------------------------- data


def _read_idx(path: Path) -> np.ndarray:
    """Minimal IDX reader (big-endian header: magic, then one uint32 per dimension)."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_data() -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """MNIST as uint8 ``((x_train, y_train), (x_test, y_test))``."""
    try:
        from cnnlab.datasets import load_mnist

        return load_mnist()  # type: ignore[no-any-return]
    except ImportError:
        pass
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    xtr, ytr, xte, yte = (_read_idx(DATA_DIR / n) for n in names)
    return (xtr, ytr), (xte, yte)


def prepare(x: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1], as the slides do."""
    return (x.astype(np.float32) / np.float32(255.0))[..., None]


# ----------------------------------------------------------------------------- schedules


def make_schedule(name: str, lr: float, epochs: float, warmup: float,
                  step_epochs: float) -> Callable[[float], float]:
    """``lr(epoch_progress)`` where ``epoch_progress`` is in epochs (float).

    (``onecycle`` is not here: the cnnlab runs use the library's
    :class:`cnnlab.OneCycle`, the schedule of ``cnnlab train --schedule onecycle``.)
    """

    def schedule(e: float) -> float:
        t = min(e / epochs, 1.0)
        if name == "constant":
            return lr
        if name == "step":
            return lr * 0.1 ** math.floor(e / step_epochs)
        if name == "cosine":
            if t < warmup:
                return lr * t / warmup
            return lr * 0.5 * (1 + math.cos(math.pi * (t - warmup) / (1 - warmup)))
        raise ValueError(f"unknown schedule {name!r}")

    return schedule


# ----------------------------------------------------------------------------- runs


def run_cnnlab(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    (xtr, ytr), (xte, yte) = data
    model = cnnlab.seed_model(seed=args.seed)
    steps_per_epoch = math.ceil(len(xtr) / args.batch_size)
    schedule: Callable[[float], float] | None = None
    rate: Any = args.lr
    if args.schedule == "onecycle":  # set by the optimizer itself, step by step
        rate = cnnlab.OneCycle(args.lr, total_steps=math.ceil(args.epochs * steps_per_epoch),
                               warmup=args.warmup)
    else:
        schedule = make_schedule(args.schedule, args.lr, args.epochs, args.warmup,
                                 args.step_epochs)
    opt: Any
    if args.optimizer == "adam":
        opt = cnnlab.Adam(learning_rate=rate)
    elif args.optimizer == "sgd":
        opt = cnnlab.SGD(learning_rate=rate, momentum=0.9, nesterov=True)
    else:
        opt = cnnlab.RMSprop(learning_rate=rate)
    model.compile(optimizer=opt, loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(args.seed)
    seen = 0

    def train(idx: np.ndarray) -> None:
        nonlocal seen
        for i in range(0, len(idx), args.batch_size):
            b = idx[i : i + args.batch_size]
            if schedule is not None:
                opt.learning_rate = schedule(seen / steps_per_epoch)
            model.train_on_batch(xtr[b], ytr[b])
            seen += 1

    def evaluate() -> float:
        return model.evaluate(xte, yte, batch_size=1000)[1]

    return _loop(args, len(xtr), rng, train, evaluate)


def run_torch(args: argparse.Namespace, data: Any) -> dict[str, Any]:
    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_speed import build_torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    (xtr, ytr), (xte, yte) = data
    model, _, loss_fn = build_torch(args.seed)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    txtr = torch.from_numpy(xtr.transpose(0, 3, 1, 2).copy())
    tytr = torch.from_numpy(ytr.astype(np.int64))
    txte = torch.from_numpy(xte.transpose(0, 3, 1, 2).copy())
    tyte = torch.from_numpy(yte.astype(np.int64))
    rng = np.random.default_rng(args.seed)

    def train(idx: np.ndarray) -> None:
        model.train()
        for i in range(0, len(idx), args.batch_size):
            b = torch.from_numpy(idx[i : i + args.batch_size])
            opt.zero_grad(set_to_none=True)
            loss_fn(model(txtr[b]), tytr[b]).backward()
            opt.step()

    def evaluate() -> float:
        model.eval()
        with torch.inference_mode():
            correct = sum(int((model(txte[i : i + 1000]).argmax(1) == tyte[i : i + 1000]).sum())
                          for i in range(0, len(txte), 1000))
        return correct / len(txte)

    return _loop(args, len(xtr), rng, train, evaluate)


def _loop(args: argparse.Namespace, n: int, rng: np.random.Generator,
          train: Callable[[np.ndarray], None], evaluate: Callable[[], float]) -> dict[str, Any]:
    per_epoch = max(1, round(1 / args.eval_every))
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    reached: float | None = None
    acc = 0.0
    epoch = 0
    while epoch < math.ceil(args.epochs) and reached is None:
        order = rng.permutation(n)
        for part in np.array_split(order, per_epoch):
            train(part)
            acc = evaluate()
            elapsed = time.perf_counter() - t0
            done = epoch + (len(history) % per_epoch + 1) / per_epoch
            history.append({"epochs": done, "test_accuracy": acc, "wall_s": elapsed})
            print(f"epoch {done:5.2f}  test accuracy {acc:.4f}  wall {elapsed:7.1f} s", flush=True)
            if acc >= args.target:
                reached = elapsed
                break
        epoch += 1
    return {"framework": args.framework, "target": args.target, "reached": reached is not None,
            "wall_s_to_target": reached, "final_test_accuracy": acc,
            "wall_s_total": time.perf_counter() - t0, "history": history,
            "recipe": {k: v for k, v in vars(args).items() if k not in ("json",)}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--framework", choices=("cnnlab", "torch"), default="cnnlab")
    p.add_argument("--target", type=float, default=0.9935)
    p.add_argument("--epochs", type=float, default=None,
                   help="maximum epochs (default 10; the schedule spans this many)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--optimizer", choices=("adam", "sgd", "rmsprop"), default="adam")
    p.add_argument("--schedule", choices=("constant", "cosine", "onecycle", "step"),
                   default="constant")
    p.add_argument("--warmup", type=float, default=0.15, help="warm-up fraction of the run")
    p.add_argument("--step-epochs", type=float, default=3.0, help="'step': epochs per decay")
    p.add_argument("--eval-every", type=float, default=0.5, help="evaluate every this many epochs")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--limit-train", type=int, default=0, help="use only N training images (smoke)")
    p.add_argument("--limit-test", type=int, default=0, help="use only N test images (smoke)")
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 10.0
    if args.framework == "torch" and (args.schedule != "constant" or args.optimizer != "adam"):
        p.error("--framework torch runs the slides' recipe: Adam, constant learning rate")
    (xtr, ytr), (xte, yte) = load_data()
    if args.limit_train:
        xtr, ytr = xtr[: args.limit_train], ytr[: args.limit_train]
    if args.limit_test:
        xte, yte = xte[: args.limit_test], yte[: args.limit_test]
    data = ((prepare(xtr), ytr.astype(np.int64)), (prepare(xte), yte.astype(np.int64)))
    result = run_cnnlab(args, data) if args.framework == "cnnlab" else run_torch(args, data)
    status = (f"reached {args.target} in {result['wall_s_to_target']:.1f} s"
              if result["reached"] else f"did not reach {args.target}")
    print(f"{args.framework}: {status}; final test accuracy {result['final_test_accuracy']:.4f}; "
          f"total wall {result['wall_s_total']:.1f} s")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
