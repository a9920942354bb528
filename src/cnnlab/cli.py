"""The ``cnnlab`` command: train, evaluate, summary, predict, visualize, serve.

A user's mistake (a missing file, a corrupt model, a bad argument) prints one
line, ``cnnlab: error: ...``, and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.argtypes import positive_float, positive_int
from cnnlab.errors import CnnlabError, InvalidArgumentError

DEFAULT_OUT = "runs/mnist-seed"
OPTIMIZER_CHOICES = ("adam", "sgd", "rmsprop", "adadelta")


# --------------------------------------------------------------------------- helpers
def _load_data(data: str | None, train_limit: int | None = None,
               test_limit: int | None = None) -> tuple[Any, Any, Any, Any]:
    from cnnlab.datasets import load_mnist, to_model_input

    (x_train, y_train), (x_test, y_test) = load_mnist(data)
    if train_limit:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    if test_limit:
        x_test, y_test = x_test[:test_limit], y_test[:test_limit]
    return to_model_input(x_train), y_train, to_model_input(x_test), y_test


def _model_path(arg: str | None) -> Path:
    from cnnlab.pretrained import pretrained_path

    return pretrained_path() if arg in (None, "", "default") else Path(arg)


def write_history(out: Path, history: dict[str, list[float]]) -> None:
    """history.json (Keras's History.history dict) and history.csv, both atomic."""
    from cnnlab.fileio import atomic_write_text

    atomic_write_text(out / "history.json", json.dumps(history, indent=2) + "\n")
    keys = list(history)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["epoch", *keys])
    n = len(next(iter(history.values()), []))
    for i in range(n):
        writer.writerow([i + 1, *(f"{history[k][i]:.6g}" for k in keys)])
    atomic_write_text(out / "history.csv", buf.getvalue())


# --------------------------------------------------------------------------- train
def cmd_train(args: argparse.Namespace) -> int:
    import cnnlab
    from cnnlab.fileio import atomic_write_text
    from cnnlab.training.checkpoint import last_checkpoint, read_training_config

    if args.resume:
        out = Path(args.resume)
        cfg = read_training_config(out)
        if last_checkpoint(out) is None:
            raise InvalidArgumentError(f"{out}: no checkpoint to resume from")
        print(f"Resuming the run in {out}", flush=True)
    else:
        out = Path(args.out)
        cfg = {
            "model": "seed_model",
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": {"name": args.optimizer, "learning_rate": args.learning_rate},
            "schedule": args.schedule,
            "seed": args.seed,
            "data": str(Path(args.data).resolve()) if args.data else None,
            "train_limit": args.train_limit,
            "test_limit": args.test_limit,
            "checkpoint_every": args.checkpoint_every,
            "validation": not args.no_validation,
        }
        if last_checkpoint(out) is not None and not args.overwrite:
            raise InvalidArgumentError(
                f"{out} already holds a run: resume it with `cnnlab train --resume {out}`, "
                "pick another --out, or pass --overwrite"
            )
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "training_config.json", json.dumps(cfg, indent=2) + "\n")

    x_train, y_train, x_test, y_test = _load_data(cfg["data"], cfg["train_limit"],
                                                  cfg["test_limit"])
    model = cnnlab.seed_model(seed=cfg["seed"])
    optimizer = dict(cfg["optimizer"])
    schedule = cfg.get("schedule", "constant")
    rate = f"lr {optimizer['learning_rate']}"
    if schedule == "onecycle":
        steps = cfg["epochs"] * math.ceil(len(x_train) / cfg["batch_size"])
        rate = f"one-cycle lr, peak {optimizer['learning_rate']}, {steps} steps"
        optimizer["learning_rate"] = cnnlab.OneCycle(optimizer["learning_rate"], total_steps=steps)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    if not args.quiet:
        model.summary()
        print(f"Training on {len(x_train):,} images, testing on {len(x_test):,}; "
              f"{cfg['epochs']} epochs of batch {cfg['batch_size']}; "
              f"optimizer {optimizer['name']} ({rate}); "
              f"seed {cfg['seed']}; output {out}", flush=True)
    t0 = time.perf_counter()
    history = model.fit(
        x_train, y_train,
        epochs=cfg["epochs"], batch_size=cfg["batch_size"],
        validation_data=(x_test, y_test) if cfg["validation"] else None,
        verbose=0 if args.quiet else 1,
        checkpoint_dir=out, checkpoint_every=cfg["checkpoint_every"],
        resume=bool(args.resume),
    )
    wall = time.perf_counter() - t0
    loss, acc = model.evaluate(x_test, y_test)
    assert model.optimizer is not None
    training_config = {**cfg, "optimizer": model.optimizer.get_config(), "test_loss": loss,
                       "test_accuracy": acc, "train_seconds_this_session": wall}
    model.save(out / "model.safetensors", training_config=training_config)
    write_history(out, history.history)
    print(f"Test loss: {loss}")
    print(f"Test accuracy: {acc}")
    print(f"Wrote {out / 'model.safetensors'}, {out / 'history.json'}, {out / 'history.csv'}")
    if not args.no_figures:
        try:
            _train_figures(model, out, x_test, y_test, history.history)
        except Exception as e:  # the run is saved; a figure must not turn it into a failure
            print(f"cnnlab: warning: could not draw the figures: {e}", file=sys.stderr)
    return 0


def _train_figures(model: Any, out: Path, x_test: Any, y_test: Any,
                   history: dict[str, list[float]]) -> None:
    try:
        from cnnlab import viz
    except ImportError:  # pragma: no cover - viz ships with the package
        return
    paths = []
    if history:
        paths.append(viz.curves_figure(history, out / "curves.png"))
    matrix = viz.confusion_matrix(model, x_test, y_test)
    paths.append(viz.confusion_figure(matrix, out / "confusion_matrix.png"))
    print("Wrote " + ", ".join(str(p) for p in paths))


# --------------------------------------------------------------------------- others
def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.datasets import load_mnist, to_model_input
    from cnnlab.saving import load_model

    model = load_model(_model_path(args.model))
    _, (x_test, y_test) = load_mnist(args.data)
    loss, acc = model.evaluate(to_model_input(x_test[: args.limit]), y_test[: args.limit])
    print(f"Test loss: {loss}")
    print(f"Test accuracy: {acc}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    import cnnlab

    if args.model is None:
        model = cnnlab.seed_model(seed=0)
    else:
        model = cnnlab.load_model(_model_path(args.model))
    model.summary()
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.preprocess import prepare_image
    from cnnlab.saving import load_model

    model = load_model(_model_path(args.model))
    for image in args.images:
        x = prepare_image(image)[None, :, :, None]
        probs = model.predict(x)[0]
        order = np.argsort(-probs, kind="stable")[: args.top]
        ranked = "  ".join(f"{int(c)}: {probs[c]:.4f}" for c in order)
        print(f"{image}: {int(order[0])}    ({ranked})")
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from cnnlab import __version__

    parser = argparse.ArgumentParser(
        prog="cnnlab",
        description="Convolutional neural networks from first principles: train, inspect and "
        "serve the slides' MNIST model.",
    )
    parser.add_argument("--version", action="version", version=f"cnnlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("train", help="train the slides' model (defaults reproduce the slides)",
                       description="Train the slides' model. Defaults: Adam (lr 1e-3), batch 128, "
                       "10 epochs, the bundled MNIST, the test set as validation data.")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default="adam")
    p.add_argument("--learning-rate", "--lr", type=positive_float, default=1e-3,
                   help="the rate (default 1e-3), or the peak rate with --schedule onecycle")
    p.add_argument("--schedule", choices=("constant", "onecycle"), default="constant",
                   help="learning-rate schedule: constant (the slides; default) or onecycle "
                   "(warm-up to the peak over the first 15%% of steps, then cosine down)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, shuffling and dropout")
    p.add_argument("--data", metavar="DIR", default=None,
                   help="a folder with the four standard IDX files (default: bundled MNIST)")
    p.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                   help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="N",
                   help="also checkpoint every N steps (one is always written per epoch)")
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run in DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an existing --out")
    p.add_argument("--train-limit", type=positive_int, default=None, metavar="N",
                   help="use only the first N training images")
    p.add_argument("--test-limit", type=positive_int, default=None, metavar="N",
                   help="use only the first N test images")
    p.add_argument("--no-validation", action="store_true",
                   help="skip the per-epoch test-set evaluation")
    p.add_argument("--no-figures", action="store_true", help="skip curves and confusion matrix")
    p.add_argument("--quiet", "-q", action="store_true", help="no table and no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test loss and accuracy of a model file")
    p.add_argument("model", nargs="?", default=None, help="model file (default: the shipped one)")
    p.add_argument("--data", metavar="DIR", default=None)
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="only the first N test images")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("summary", help="print a model's layer table (default: the slides' model)")
    p.add_argument("model", nargs="?", default=None)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("predict", help="classify PNG or JPEG digits")
    p.add_argument("model", help="model file ('default' for the shipped one)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=positive_int, default=3, help="classes to show (default 3)")
    p.set_defaults(func=cmd_predict)

    for module in ("cnnlab.viz.cli", "cnnlab.serve.cli"):
        try:
            mod = __import__(module, fromlist=["register"])
        except ImportError:  # an optional extra (serve needs fastapi + uvicorn)
            continue
        mod.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from cnnlab.training import TrainingInterrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except TrainingInterrupted as e:
        where = e.checkpoint.parent if e.checkpoint else None
        hint = f"; resume with: cnnlab train --resume {where}" if where else ""
        print(f"\ncnnlab: {e}; checkpoint saved{hint}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\ncnnlab: interrupted", file=sys.stderr)
        return 130
    except CnnlabError as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 2
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        print(f"cnnlab: error: {e.filename or ''}: {e.strerror}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
