"""The ``cnnlab`` command: train, evaluate, summary, predict, visualize, serve, export, convert.

A user's mistake (a missing file, a corrupt model, a bad argument) prints one
line, ``cnnlab: error: ...``, and exits with status 2; no traceback.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.argtypes import fraction, positive_float, positive_int
from cnnlab.errors import CnnlabError, InvalidArgumentError

DEFAULT_OUT = "runs/mnist-seed"
OPTIMIZER_CHOICES = ("adam", "sgd", "rmsprop", "adadelta")


# --------------------------------------------------------------------------- helpers
def _limit(part: Any, n: int | None, seed: int = 0) -> Any:
    """The first ``n`` examples; for an image folder (stored class by class, so its
    first ``n`` may hold one class only) ``n`` drawn at random with ``seed``."""
    if not n or n >= len(part.y):
        return part
    if part.files is None:
        return part.head(n)
    keep = np.sort(np.random.default_rng(seed).choice(len(part.y), size=n, replace=False))
    return part.subset(keep)


def _load_splits(cfg: dict[str, Any], quiet: bool) -> Any:
    """The run's data (:func:`cnnlab.datasets.load_dataset`) with its limits applied."""
    from cnnlab.datasets import load_dataset

    size = cfg.get("image_size")
    splits = load_dataset(cfg["data"], image_size=tuple(size) if size else None,
                          color=cfg.get("color"), skip_bad=bool(cfg.get("skip_bad")),
                          progress=not quiet)
    if splits.skipped_files and not quiet:
        print(f"Skipped {splits.skipped_files} files that are not images", flush=True)
    if splits.skipped_bad:
        shown = ", ".join(splits.skipped_bad[:5])
        more = f" and {len(splits.skipped_bad) - 5} more" if len(splits.skipped_bad) > 5 else ""
        print(f"cnnlab: warning: skipped {len(splits.skipped_bad)} unreadable images: "
              f"{shown}{more}", file=sys.stderr, flush=True)
    splits.train = _limit(splits.train, cfg.get("train_limit"), cfg["seed"])
    if splits.test is not None:
        splits.test = _limit(splits.test, cfg.get("test_limit"), cfg["seed"])
    return splits


def _augment_config(spec: str | None) -> dict[str, Any] | None:
    if not spec:
        return None
    from cnnlab.datasets.augment import Augment

    aug = Augment.parse(spec)
    return aug.get_config() if aug else None


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
def _without_workers(argv: list[str]) -> list[str]:
    """``argv`` less its ``--workers N`` (the ranks must not launch ranks again)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--workers":
            skip = True
        elif not arg.startswith("--workers="):
            out.append(arg)
    return out


def cmd_train(args: argparse.Namespace) -> int:
    """Train; under an MPI launcher, as one rank of a data-parallel run (rank 0 reports
    and writes); with ``--workers N``, launch ``mpiexec -n N`` on this machine."""
    from cnnlab.distributed import launch, launched_by_mpi, world
    from cnnlab.training import TrainingInterrupted

    if not launched_by_mpi():
        if args.workers > 1:
            return launch(args.workers, _without_workers(args.argv))
        return _train(args, None)
    group = world(deterministic=args.deterministic)
    if group is None:
        return _train(args, None)
    if group.rank != 0:
        args.quiet, args.no_figures = True, True
    with group.abort_on_error():
        try:
            return _train(args, group)
        except TrainingInterrupted:  # a Ctrl-C all ranks agreed on: rank 0 says so, once
            if group.rank == 0:
                raise
            return 130


def _train(args: argparse.Namespace, group: Any) -> int:
    import cnnlab
    from cnnlab.backend import get_device
    from cnnlab.fileio import atomic_write_text, check_output_dir
    from cnnlab.training.checkpoint import last_checkpoint, read_training_config
    from cnnlab.zoo import get_model

    device = get_device(args.device)  # before any data is read: a missing GPU fails at once
    root = group is None or group.rank == 0  # rank 0 alone prints and writes
    if root:  # a file in the way, a read-only folder: said now, not after the data loads
        check_output_dir(args.resume or args.out, "--resume" if args.resume else "--out")
    if args.resume:
        out = Path(args.resume)
        cfg = None
        if root:
            cfg = read_training_config(out)
            if last_checkpoint(out) is None:
                raise InvalidArgumentError(f"{out}: no checkpoint to resume from")
            print(f"Resuming the run in {out}", flush=True)
        if group is not None:  # the run folder need only be on rank 0's machine
            cfg = group.comm.bcast(cfg, root=0)
    else:
        out = Path(args.out)
        cfg = {
            "model": args.model,
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": {"name": args.optimizer, "learning_rate": args.learning_rate},
            "schedule": args.schedule,
            "seed": args.seed,
            "data": str(Path(args.data).resolve()) if args.data else None,
            "image_size": list(args.image_size) if args.image_size else None,
            "color": args.color,
            "skip_bad": args.skip_bad,
            "validation_split": args.validation_split,
            "augment": _augment_config(args.augment),
            "train_limit": args.train_limit,
            "test_limit": args.test_limit,
            "checkpoint_every": args.checkpoint_every,
            "validation": not args.no_validation,
            "early_stopping": args.early_stopping,
            "deterministic": args.deterministic,
        }
        if root and last_checkpoint(out) is not None and not args.overwrite:
            raise InvalidArgumentError(
                f"{out} already holds a run: resume it with `cnnlab train --resume {out}`, "
                "pick another --out, or pass --overwrite"
            )

    if group is not None and cfg.get("deterministic"):  # a resumed run keeps its summation
        group.deterministic = True
    splits = _load_splits(cfg, args.quiet)
    train, test = splits.train, splits.test
    validation = None
    if cfg.get("validation_split"):
        train, held_out = train.split(cfg["validation_split"], seed=cfg["seed"])
        validation = (held_out.x, held_out.y)
    elif cfg["validation"] and test is not None:
        validation = (test.x, test.y)  # the slides: the test set after every epoch
    callbacks = []
    if cfg.get("early_stopping"):
        if validation is None:
            raise InvalidArgumentError(
                "--early-stopping watches val_loss and needs validation data: give "
                "--validation-split F, or data with a test part (and no --no-validation)"
            )
        callbacks.append(cnnlab.EarlyStopping(
            monitor="val_loss", patience=cfg["early_stopping"], restore_best_weights=True,
            verbose=0 if args.quiet else 1))
    input_shape = tuple(int(d) for d in train.x.shape[1:])
    model = get_model(cfg.get("model", "seed"), input_shape=input_shape,
                      num_classes=len(splits.class_names), seed=cfg["seed"])
    model.to(device)
    model.class_names = list(splits.class_names)
    model.preprocessing = splits.preprocessing
    if not args.resume and root:  # the data loaded and the model fits it: the run folder starts
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / "training_config.json", json.dumps(cfg, indent=2) + "\n")
    optimizer = dict(cfg["optimizer"])
    schedule = cfg.get("schedule", "constant")
    rate = f"lr {optimizer['learning_rate']}"
    if schedule == "onecycle":
        steps = cfg["epochs"] * math.ceil(len(train.y) / cfg["batch_size"])
        rate = f"one-cycle lr, peak {optimizer['learning_rate']}, {steps} steps"
        optimizer["learning_rate"] = cnnlab.OneCycle(optimizer["learning_rate"], total_steps=steps)
    model.compile(optimizer=optimizer, loss="categorical_crossentropy", metrics=["accuracy"])
    augment = None
    if cfg.get("augment"):
        from cnnlab.datasets.augment import Augment

        augment = Augment.from_config(cfg["augment"])
    if not args.quiet:
        model.summary()
        testing = f"testing on {len(test.y):,}" if test is not None else "no test part"
        held = f", validating on {len(validation[1]):,}" if cfg.get("validation_split") else ""
        classes = "" if "classes" in splits.source else f"; {len(splits.class_names)} classes"
        print(f"Data: {splits.source}{classes}.", flush=True)
        print(f"Training on {len(train.y):,} images{held}, {testing}; "
              f"{cfg['epochs']} epochs of batch {cfg['batch_size']}; "
              f"optimizer {optimizer['name']} ({rate}); "
              f"seed {cfg['seed']}; output {out}", flush=True)
        if group is not None:
            print(f"Data-parallel on {group.size} MPI ranks: each computes a shard of every "
                  f"batch of {cfg['batch_size']}"
                  f"{'; gradients summed in rank order' if group.deterministic else ''}",
                  flush=True)
    t0 = time.perf_counter()
    history = model.fit(
        train.x, train.y,
        epochs=cfg["epochs"], batch_size=cfg["batch_size"],
        validation_data=validation,
        verbose=0 if args.quiet else 1,
        checkpoint_dir=out, checkpoint_every=cfg["checkpoint_every"],
        resume=bool(args.resume), augment=augment, callbacks=callbacks,
        **({} if group is None else {"reduce_gradients": group}),
    )
    wall = time.perf_counter() - t0
    assert model.optimizer is not None
    training_config = {**cfg, "optimizer": model.optimizer.get_config(),
                       "train_seconds_this_session": wall}
    if test is not None:
        loss, acc = (model.evaluate(test.x, test.y) if group is None
                     else group.evaluate(model, test.x, test.y))
        training_config.update(test_loss=loss, test_accuracy=acc)
    if not root:
        return 0
    model.save(out / "model.safetensors", training_config=training_config)
    write_history(out, history.history)
    if test is not None:
        print(f"Test loss: {loss}")
        print(f"Test accuracy: {acc}")
    print(f"Wrote {out / 'model.safetensors'}, {out / 'history.json'}, {out / 'history.csv'}")
    if not args.no_figures:
        try:
            figure_data = test if test is not None else train
            _train_figures(model, out, figure_data.x, figure_data.y, history.history)
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
    names = [model.class_name(i) for i in range(model.num_classes)]
    paths.append(viz.confusion_figure(matrix, out / "confusion_matrix.png", class_names=names))
    print("Wrote " + ", ".join(str(p) for p in paths))


# --------------------------------------------------------------------------- others
def cmd_evaluate(args: argparse.Namespace) -> int:
    from cnnlab.datasets import load_dataset
    from cnnlab.saving import load_model

    model = load_model(_model_path(args.model))
    height, width, channels = model.input_shape
    size = None if args.data is None else (height, width)
    color = None if args.data is None else "rgb" if channels == 3 else "grayscale"
    splits = load_dataset(args.data, image_size=size, color=color, skip_bad=args.skip_bad,
                          progress=False)
    part = splits.test if splits.test is not None else splits.train
    part = _limit(part, args.limit)
    labels = _labels_for_model(model, splits.class_names, part.y, args.data)
    loss, acc = model.evaluate(part.x, labels)
    print(f"Test loss: {loss}")
    print(f"Test accuracy: {acc}")
    return 0


def _labels_for_model(model: Any, data_names: list[str], y: np.ndarray,
                      source: str | None) -> np.ndarray:
    """The data's labels as the model's class indices, matched by class name."""
    model_names = model.class_names or [str(i) for i in range(model.num_classes)]
    if list(data_names) == list(model_names):
        return y
    missing = [n for n in data_names if n not in model_names]
    if missing:
        raise InvalidArgumentError(
            f"the data's classes do not match the model's: {source or 'the data'} has "
            f"{list(data_names)}, the model knows {list(model_names)} "
            f"(not known: {missing})"
        )
    mapping = np.array([model_names.index(n) for n in data_names], dtype=np.int64)
    return mapping[y]


def cmd_summary(args: argparse.Namespace) -> int:
    """The layer table of a zoo name, a JSON spec file or a model file; --json prints the spec."""
    from cnnlab.saving import load_model
    from cnnlab.zoo import ZOO, get_model

    what = args.model or "seed"
    if what in ZOO or what == "seed_model" or what.endswith(".json"):
        shape = tuple(args.input_shape) if args.input_shape else None
        if shape is None and what.endswith(".json"):
            from cnnlab.saving import load_spec

            spec_shape = load_spec(what).get("input_shape")
            shape = tuple(spec_shape) if spec_shape else None
        classes = args.classes or (None if what.endswith(".json") else 10)
        model = get_model(what, input_shape=shape or (28, 28, 1), num_classes=classes, seed=0)
    else:
        model = load_model(_model_path(what))
    if args.json:
        print(model.to_json())
    else:
        model.summary()
    return 0


def cmd_convert(args: argparse.Namespace) -> int:
    """Convert a model file between cnnlab (.safetensors) and Keras (.keras, legacy .h5 in)."""
    from cnnlab.saving import load_model

    src, dst = Path(args.input), Path(args.output)
    readable = (".safetensors", ".keras", ".h5", ".hdf5")
    if src.suffix.lower() not in readable:
        raise InvalidArgumentError(f"{src}: cannot tell the format from {src.suffix or 'no'!r} "
                                   f"extension; IN must end in {', '.join(readable)}")
    if dst.suffix.lower() not in (".safetensors", ".keras"):
        raise InvalidArgumentError(f"{dst}: cannot write {dst.suffix or 'no'!r} extension; OUT "
                                   "must end in .keras or .safetensors")
    if dst.exists() and src.exists() and dst.resolve() == src.resolve():
        raise InvalidArgumentError(f"{dst}: OUT is IN; write the conversion to another file")
    model = load_model(src)
    # .keras: a Keras 3 file; .safetensors: cnnlab's; the training config travels along
    model.save(dst, getattr(model, "training_config", None) or None)
    print(f"{src} -> {dst}: {len(model.layers)} layers, {model.count_params():,} parameters")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from cnnlab.preprocess import model_input
    from cnnlab.saving import load_model

    model = load_model(_model_path(args.model))
    for image in args.images:
        probs = model.predict(model_input(image, model)[None])[0]
        order = np.argsort(-probs, kind="stable")[: args.top]
        ranked = "  ".join(f"{model.class_name(int(c))}: {probs[c]:.4f}" for c in order)
        print(f"{image}: {model.class_name(int(order[0]))}    ({ranked})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """An ONNX file (OUT.onnx) and/or a static demo folder (--web DIR) from a model file."""
    from cnnlab.saving import load_model

    if args.out is None and args.web is None:
        raise InvalidArgumentError("export: give OUT.onnx, --web DIR, or both")
    if args.out is not None and not args.out.lower().endswith(".onnx"):
        raise InvalidArgumentError(
            f"export: OUT must end in .onnx, got {args.out!r} (for a demo folder: --web DIR)")
    model = load_model(_model_path(args.model), compile=False)
    if args.out is not None:
        path = model.export_onnx(args.out, input_dtype=args.input_dtype)
        print(f"wrote {path} (ONNX opset 17; input (batch, "
              f"{', '.join(map(str, model.input_shape))}) {args.input_dtype})")
    if args.web is not None:
        from cnnlab.export.web import ORT_WEB_VERSION, export_web, pinned_tarball_path

        if args.onnxruntime_web is None and not pinned_tarball_path().is_file():
            print(f"fetching onnxruntime-web {ORT_WEB_VERSION} from registry.npmjs.org "
                  f"(33 MB, once; cached in {pinned_tarball_path().parent})", flush=True)
        folder = export_web(model, args.web, onnxruntime_web=args.onnxruntime_web)
        print(f"wrote {folder}/ (open index.html through any static file server, e.g. "
              f"python -m http.server -d {folder})")
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
    p.add_argument("--model", metavar="NAME|SPEC.json", default="seed",
                   help="the architecture: seed (the slides' model, default), lenet5, "
                   "vgg-small, or a JSON spec file (cnnlab summary NAME prints one); built "
                   "for the data's input shape and classes")
    p.add_argument("--epochs", type=positive_int, default=10)
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--optimizer", choices=OPTIMIZER_CHOICES, default="adam")
    p.add_argument("--learning-rate", "--lr", type=positive_float, default=1e-3,
                   help="the rate (default 1e-3), or the peak rate with --schedule onecycle")
    p.add_argument("--schedule", choices=("constant", "onecycle"), default="constant",
                   help="learning-rate schedule: constant (the slides; default) or onecycle "
                   "(warm-up to the peak over the first 15%% of steps, then cosine down)")
    p.add_argument("--seed", type=int, default=0, help="seeds weights, shuffling and dropout")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                   help="where to train: cpu (NumPy, default) or gpu (CuPy on a CUDA device; "
                   "pip install 'cnnlab[gpu]'); a run may resume on either")
    p.add_argument("--data", metavar="PATH", default=None,
                   help="the data: a folder of class folders of images (with train/ and test/ "
                   "parts, or not), a folder with the four IDX files (MNIST, Fashion-MNIST), "
                   "or a .npz file with x and y (default: the bundled MNIST)")
    p.add_argument("--image-size", type=positive_int, nargs=2, metavar=("H", "W"),
                   default=None, help="resize every image to H x W, bilinear (default: the "
                   "most common size in the folder)")
    p.add_argument("--color", choices=("grayscale", "rgb"), default=None,
                   help="the model's input channels (default: rgb if any image has colour)")
    p.add_argument("--skip-bad", action="store_true",
                   help="skip unreadable images (and list them) instead of stopping")
    p.add_argument("--validation-split", type=fraction, default=None, metavar="F",
                   help="hold out a seeded, stratified share F of the training part for "
                   "per-epoch validation (the test part is then evaluated once, at the end)")
    p.add_argument("--augment", metavar="SPEC", default=None,
                   help="on-the-fly random transforms of training images, e.g. "
                   "'shift,rotate,flip' or 'shift=0.1,rotate=10' (seeded; never applied to "
                   "validation or test data)")
    p.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                   help=f"output folder (default: {DEFAULT_OUT})")
    p.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="N",
                   help="also checkpoint every N steps (one is always written per epoch)")
    p.add_argument("--early-stopping", type=positive_int, default=None, metavar="PATIENCE",
                   help="stop when val_loss has not improved for PATIENCE epochs, and keep "
                   "the best epoch's weights (Keras's EarlyStopping; needs validation data)")
    p.add_argument("--resume", metavar="DIR", default=None,
                   help="continue the run in DIR from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start afresh in an existing --out")
    p.add_argument("--train-limit", type=positive_int, default=None, metavar="N",
                   help="use only the first N training images (from an image folder, N drawn "
                   "at random with --seed: its files are stored class by class)")
    p.add_argument("--test-limit", type=positive_int, default=None, metavar="N",
                   help="use only the first N test images (from an image folder: N at random)")
    p.add_argument("--no-validation", action="store_true",
                   help="skip the per-epoch test-set evaluation")
    p.add_argument("--no-figures", action="store_true", help="skip curves and confusion matrix")
    p.add_argument("--quiet", "-q", action="store_true", help="no table and no progress bars")
    p.add_argument("--workers", type=positive_int, default=1, metavar="N",
                   help="train on N MPI ranks of this machine (runs mpiexec -n N cnnlab train "
                   "...; --batch-size stays the global batch); for several machines run "
                   "mpiexec yourself (pip install 'cnnlab[mpi]')")
    p.add_argument("--deterministic", action="store_true",
                   help="with MPI: sum the ranks' gradients in rank order, so a run is bit "
                   "for bit the same every time (an all-gather instead of an all-reduce)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="test loss and accuracy of a model file")
    p.add_argument("model", nargs="?", default=None, help="model file (default: the shipped one)")
    p.add_argument("--data", metavar="PATH", default=None,
                   help="as for train (default: the bundled MNIST); its test part, or all of "
                   "it when it has no test part, resized to the model's input; classes are "
                   "matched to the model's by name")
    p.add_argument("--skip-bad", action="store_true", help="skip unreadable images")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N",
                   help="only the first N test images (from an image folder: N at random, seeded)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("summary", help="print a model's layer table (default: the slides' model)")
    p.add_argument("model", nargs="?", default=None, metavar="NAME|SPEC.json|MODEL",
                   help="a zoo name (seed, lenet5, vgg-small), a JSON spec or a model file")
    p.add_argument("--input-shape", type=positive_int, nargs=3, metavar=("H", "W", "C"),
                   default=None, help="for a zoo name or spec: the input (default 28 28 1)")
    p.add_argument("--classes", type=positive_int, default=None,
                   help="for a zoo name or spec: the number of classes (default 10)")
    p.add_argument("--json", action="store_true",
                   help="print the architecture as a JSON spec instead of the table")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("convert", help="convert a model file: Keras (.keras, .h5) <-> cnnlab",
                       description="Convert a model file; the formats come from the extensions. "
                       "IN: .safetensors (cnnlab), .keras (Keras 3) or .h5/.hdf5 (legacy Keras "
                       "full-model files). OUT: .keras or .safetensors. Keras files are read as "
                       "data (no code in them runs); a layer cnnlab has no equivalent for is "
                       "named in the error.")
    p.add_argument("input", metavar="IN", help="the model file to read")
    p.add_argument("output", metavar="OUT", help="the file to write (.keras or .safetensors)")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("predict", help="classify image files (PNG, JPEG, ...)")
    p.add_argument("model", help="model file ('default' for the shipped one)")
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument("--top", type=positive_int, default=3, help="classes to show (default 3)")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("export", help="write a model as ONNX, or as a static browser demo",
                       description="Write a model file as ONNX (opset 17, input (batch, H, W, "
                       "C) float32, output the class probabilities) and/or as a folder that "
                       "runs it in a browser with onnxruntime-web, from any static server.")
    p.add_argument("model", metavar="MODEL", help="model file ('default' for the shipped one)")
    p.add_argument("out", nargs="?", default=None, metavar="OUT.onnx",
                   help="the ONNX file to write")
    p.add_argument("--web", metavar="DIR", default=None,
                   help="write the demo page, the model and onnxruntime-web into DIR")
    p.add_argument("--onnxruntime-web", metavar="PATH", default=None,
                   help="for --web: onnxruntime-web's npm tarball (.tgz) or its package folder "
                   "(node_modules/onnxruntime-web) instead of the cached download")
    p.add_argument("--input-dtype", choices=("float32", "uint8"), default="float32",
                   help="the ONNX file's input: float32 (default; 8-bit pixels scaled by 1/255 "
                   "first, as cnnlab does) or uint8 (the graph scales them)")
    p.set_defaults(func=cmd_export)

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
    args.argv = list(sys.argv[1:] if argv is None else argv)  # `train --workers` relaunches
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
    except BrokenPipeError:  # `cnnlab ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CnnlabError as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a missing file, no permission, a full disk: named by fileio
        print(f"cnnlab: error: {e.filename}: {e.strerror}" if e.filename and e.strerror
              else f"cnnlab: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
