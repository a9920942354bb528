"""The slides' recipe on Fashion-MNIST read from an image folder: cnnlab vs. PyTorch.

Usage::

    python scripts/fashion_mnist_to_folder.py /tmp/fmnist      # 70,000 PNGs
    python benchmarks/fashion_mnist.py [--folder /tmp/fmnist] [--json PATH]
    python benchmarks/fashion_mnist.py --epochs 1 --train-limit 5000 --test-limit 1000  # smoke

The recipe is the README's "slides' recipe": the seed model (``cnnlab.seed_model``
for 28x28x1 and 10 classes), Adam with learning rate 1e-3 constant, batch 128,
10 epochs, seed 0, the test set evaluated after every epoch (it never steers
training) and once more at the end.

1. The folder is decoded once into a fresh decode cache (``$CNNLAB_CACHE``, a
   temporary folder unless ``--cache`` is given) by ``load_dataset``, in a child
   process; its time is reported separately, so neither framework pays it.
2. **cnnlab**: ``cnnlab train --data FOLDER --epochs 10 --batch-size 128
   --optimizer adam --lr 1e-3 --seed 0 --out OUT --overwrite --quiet
   --no-figures``: the command line, as a user runs it; it reads the cache.
3. **PyTorch** (CPU, ``torch.set_num_threads(--threads)``): the seed model's
   twin from ``benchmarks/bench_speed.py`` (``build_torch``: ZeroPad2d for
   Keras's asymmetric 'same', then the same layers), trained with the same
   recipe on **the same arrays**: ``load_dataset(FOLDER)``'s decoded uint8
   pixels (the same cache), scaled by 1/255 and held in memory as one NCHW
   float32 tensor; batches by a seeded NumPy permutation per epoch; test set
   evaluated after each epoch (inference mode, batches of 1000), like the CLI.

The two run one after the other, each in its own process. For each: wall time
of the whole process (start to exit: imports, loading the cached data, 10
epochs, 10 + 1 test evaluations, saving for cnnlab), the time of the training
epochs alone, final test accuracy and loss, and peak resident memory
(``ru_maxrss`` of the child from ``os.wait4``; the parent stays small, and on
Linux a child's ``ru_maxrss`` is at least the parent's at spawn time).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _threads import threads_from_argv  # noqa: E402  (before NumPy loads BLAS)

threads_from_argv()

HERE = Path(__file__).resolve().parent
CLI = Path(sys.executable).with_name("cnnlab")


def loadavg() -> list[float]:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def spawn(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``cmd`` with stdout+stderr to ``log``; wall seconds, status, peak RSS (MiB)."""
    load0 = loadavg()
    t0 = time.perf_counter()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {"command": " ".join(cmd), "returncode": proc.returncode, "wall_s": wall,
            "peak_rss_mib": usage.ru_maxrss / 1024, "cpu_s": usage.ru_utime + usage.ru_stime,
            "loadavg_before": load0, "loadavg_after": loadavg(), "log": str(log)}


# ----------------------------------------------------------------------------- children


def child_warm(folder: str) -> dict[str, Any]:
    from cnnlab.datasets import load_dataset

    t0 = time.perf_counter()
    data = load_dataset(folder, progress=False)
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_dataset(folder, progress=False)
    return {"decode_s": first, "cached_load_s": time.perf_counter() - t0,
            "train": len(data.train), "test": len(data.test) if data.test is not None else 0,
            "image_shape": list(data.train.x.shape[1:]), "class_names": data.class_names}


def child_torch(folder: str, epochs: int, batch_size: int, lr: float, seed: int, threads: int,
                train_limit: int, test_limit: int) -> dict[str, Any]:
    import numpy as np
    import torch

    sys.path.insert(0, str(HERE))
    from bench_speed import build_torch

    from cnnlab.datasets import load_dataset

    torch.set_num_threads(threads)
    data = load_dataset(folder, progress=False)
    assert data.test is not None
    xtr, ytr, xte, yte = data.train.x, data.train.y, data.test.x, data.test.y
    if train_limit:
        xtr, ytr = xtr[:train_limit], ytr[:train_limit]
    if test_limit:
        xte, yte = xte[:test_limit], yte[:test_limit]
    if tuple(xtr.shape[1:]) != (28, 28, 1) or data.num_classes != 10:
        raise SystemExit(f"build_torch is the 28x28x1, 10-class seed model; got "
                         f"{xtr.shape[1:]} and {data.num_classes} classes")

    def tensor(x: Any) -> torch.Tensor:  # uint8 NHWC -> float32 NCHW in [0, 1]
        return torch.from_numpy(
            (np.asarray(x).astype(np.float32) * np.float32(1 / 255)).transpose(0, 3, 1, 2).copy())

    txtr, txte = tensor(xtr), tensor(xte)
    tytr = torch.from_numpy(np.asarray(ytr, dtype=np.int64))
    tyte = torch.from_numpy(np.asarray(yte, dtype=np.int64))
    model, _, loss_fn = build_torch(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)

    def evaluate() -> tuple[float, float]:
        model.eval()
        total, correct = 0.0, 0
        with torch.inference_mode():
            for i in range(0, len(txte), 1000):
                out = model(txte[i : i + 1000])
                total += float(loss_fn(out, tyte[i : i + 1000])) * len(out)
                correct += int((out.argmax(1) == tyte[i : i + 1000]).sum())
        return total / len(txte), correct / len(txte)

    history = []
    t_train = time.perf_counter()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        model.train()
        order = torch.from_numpy(rng.permutation(len(txtr)))
        seen, loss_sum, correct = 0, 0.0, 0
        for i in range(0, len(order), batch_size):
            b = order[i : i + batch_size]
            opt.zero_grad(set_to_none=True)
            out = model(txtr[b])
            loss = loss_fn(out, tytr[b])
            loss.backward()
            opt.step()
            seen += len(b)
            loss_sum += float(loss) * len(b)
            correct += int((out.argmax(1) == tytr[b]).sum())
        val_loss, val_acc = evaluate()
        row = {"epoch": epoch + 1, "loss": loss_sum / seen, "accuracy": correct / seen,
               "val_loss": val_loss, "val_accuracy": val_acc, "time": time.perf_counter() - t0}
        history.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    train_s = time.perf_counter() - t_train
    test_loss, test_acc = evaluate()
    return {"test_loss": test_loss, "test_accuracy": test_acc, "train_and_eval_s": train_s,
            "history": history, "torch": torch.__version__, "threads": torch.get_num_threads()}


# ----------------------------------------------------------------------------- main


def _parse_cli_log(text: str) -> dict[str, float]:
    out = {}
    for key, name in (("Test loss", "test_loss"), ("Test accuracy", "test_accuracy")):
        m = re.search(rf"^{key}: ([0-9.eE+-]+)", text, re.M)
        if m:
            out[name] = float(m.group(1))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--folder", default="/tmp/fmnist")
    p.add_argument("--frameworks", default="cnnlab,torch", help="comma-separated, in run order")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--train-limit", type=int, default=0,
                   help="first N training images (smoke; as cnnlab train --train-limit: the "
                        "folder's order is class by class, so a small N holds few classes)")
    p.add_argument("--test-limit", type=int, default=0,
                   help="first N test images (smoke; same caveat)")
    p.add_argument("--cache", default=None, help="decode cache ($CNNLAB_CACHE; default: temporary)")
    p.add_argument("--out", default=None, help="where runs and logs go (default: temporary, kept)")
    p.add_argument("--json", metavar="PATH")
    p.add_argument("--_child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args._child == "warm":
        print(json.dumps(child_warm(args.folder)))
        return {}
    if args._child == "torch":
        print(json.dumps(child_torch(args.folder, args.epochs, args.batch_size, args.lr,
                                     args.seed, args.threads, args.train_limit,
                                     args.test_limit)))
        return {}

    out = Path(args.out or tempfile.mkdtemp(prefix="cnnlab-fmnist-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(args.cache) if args.cache else out / "cache"
    temp_cache = args.cache is None
    env = os.environ.copy()
    env["CNNLAB_CACHE"] = str(cache)
    result: dict[str, Any] = {"folder": args.folder, "recipe": {
        "model": "seed_model(28x28x1, 10 classes)", "optimizer": "Adam", "lr": args.lr,
        "batch_size": args.batch_size, "epochs": args.epochs, "seed": args.seed,
        "threads": args.threads, "train_limit": args.train_limit,
        "test_limit": args.test_limit}, "cpus": os.cpu_count(), "out": str(out)}
    me = [sys.executable, __file__, "--folder", args.folder, "--threads", str(args.threads)]
    print(f"decoding {args.folder} into {cache} ...", flush=True)
    warm = spawn([*me, "--_child", "warm"], env, out / "warm.log")
    if warm["returncode"] != 0:
        raise SystemExit(f"decoding failed; see {out / 'warm.log'}")
    warm.update(json.loads((out / "warm.log").read_text().strip().splitlines()[-1]))
    result["decode"] = warm
    print(f"  {warm['train']} + {warm['test']} images decoded in {warm['decode_s']:.1f} s; "
          f"cached load {warm['cached_load_s']:.2f} s; classes {warm['class_names']}", flush=True)

    for fw in args.frameworks.split(","):
        print(f"{fw}: training ({args.epochs} epochs) ...", flush=True)
        if fw == "cnnlab":
            run_dir = out / "cnnlab-run"
            cmd = [str(CLI), "train", "--data", args.folder, "--epochs", str(args.epochs),
                   "--batch-size", str(args.batch_size), "--optimizer", "adam", "--lr",
                   str(args.lr), "--seed", str(args.seed), "--out", str(run_dir), "--overwrite",
                   "--quiet", "--no-figures"]
            if args.train_limit:
                cmd += ["--train-limit", str(args.train_limit)]
            if args.test_limit:
                cmd += ["--test-limit", str(args.test_limit)]
            r = spawn(cmd, env, out / "cnnlab.log")
            text = (out / "cnnlab.log").read_text()
            r.update(_parse_cli_log(text))
            hist_path = run_dir / "history.json"
            if hist_path.exists():
                hist = json.loads(hist_path.read_text())
                r["history"] = hist
            if r["returncode"] != 0:
                r["error_tail"] = text[-3000:]
        elif fw == "torch":
            cmd = [*me, "--_child", "torch", "--epochs", str(args.epochs), "--batch-size",
                   str(args.batch_size), "--lr", str(args.lr), "--seed", str(args.seed),
                   "--train-limit", str(args.train_limit), "--test-limit", str(args.test_limit)]
            r = spawn(cmd, env, out / "torch.log")
            lines = (out / "torch.log").read_text().strip().splitlines()
            if r["returncode"] == 0:
                r.update(json.loads(lines[-1]))
            else:
                r["error_tail"] = "\n".join(lines[-40:])
        else:
            raise SystemExit(f"unknown framework {fw!r}")
        result[fw] = r
        acc = r.get("test_accuracy")
        print(f"  {fw}: status {r['returncode']}, test accuracy "
              f"{acc if acc is None else f'{acc:.4f}'}, test loss {r.get('test_loss')}, wall "
              f"{r['wall_s']:.1f} s, peak RSS {r['peak_rss_mib']:.0f} MiB, load "
              f"{r['loadavg_before']} -> {r['loadavg_after']}", flush=True)
    if "cnnlab" in result and "torch" in result:
        ratio = result["torch"]["wall_s"] / result["cnnlab"]["wall_s"]
        result["wall_ratio_torch_over_cnnlab"] = ratio
        print(f"wall time ratio torch/cnnlab: {result['wall_ratio_torch_over_cnnlab']:.2f} "
              "(> 1: cnnlab faster)")
    if temp_cache:
        shutil.rmtree(cache, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str))
    return result


if __name__ == "__main__":
    main()
