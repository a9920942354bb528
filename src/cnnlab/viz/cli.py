"""``cnnlab visualize``: write the slides' figures (and the documentation's) as PNGs.

Usage::

    cnnlab visualize [MODEL] [--out DIR] [--data DIR] [--history FILE] [--images N]
                     [--index I ...] [--layers NAME ...] [--which FIGURE ...] [--limit N]

``MODEL`` defaults to the shipped trained model. ``--data`` is any data
source :func:`cnnlab.datasets.load_dataset` reads (a folder of class folders
of images, a folder of IDX files, a ``.npz`` file), loaded at the model's
input size and colour; its test part is drawn (its training part when it has
none). Without ``--data``: the data the model was trained on, when its model
file names a path that exists, else the bundled MNIST test set (for models
taking 28x28 grayscale images). The main CLI (:mod:`cnnlab.cli`) adds the
subcommand with :func:`register`; errors are raised as
:class:`~cnnlab.errors.CnnlabError` for it to report.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.argtypes import non_negative_int, positive_int
from cnnlab.viz.names import DEFAULT_LAYERS, EXPLAIN_FIGURES, FIGURES

WHICH_CHOICES = ("all", *FIGURES, "explain", *EXPLAIN_FIGURES)
_NO_MODEL = {"padding", "pooling", "curves"}


def register(subparsers: Any) -> None:
    """Add the ``visualize`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "visualize",
        help="draw the slides' figures (feature maps, outputs, filters, ...) as PNGs",
        description=(
            "Write PNG figures of a trained model on a test set (MNIST's, or --data): feature "
            "maps, softmax outputs, filters, training curves, confusion matrix, most confident "
            "mistakes, and the padding and pooling diagrams. Any image model: grayscale or "
            "RGB, any size, its classes named."
        ),
    )
    p.add_argument("model", nargs="?", default=None,
                   help="model file (default: the shipped trained model)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument("--data", default=None, metavar="PATH",
                   help="the images to draw: a folder of class folders of images (its test/ "
                   "part if it has one), a folder with the four IDX files, or a .npz file; "
                   "resized to the model's input (default: the data the model was trained "
                   "on, or the bundled MNIST)")
    p.add_argument("--history", default=None,
                   help="history.json or history.csv for the curves figure (default: the "
                        "history.json beside MODEL, if there is one)")
    p.add_argument("--images", type=positive_int, default=8,
                   help="test images in the outputs figure (default 8)")
    p.add_argument("--index", type=non_negative_int, nargs="+", default=None, metavar="I",
                   help="test images to draw (outputs figure; the first one also for the "
                        "feature maps); default: the first --images")
    p.add_argument("--layers", nargs="+", default=list(DEFAULT_LAYERS), metavar="NAME",
                   help="layers of the feature-map figure (default: conv2d max_pooling2d)")
    p.add_argument("--which", nargs="+", choices=WHICH_CHOICES, default=["all"],
                   metavar="FIGURE",
                   help=f"figures to write: {', '.join(WHICH_CHOICES)} (default: all; "
                        "'explain' is the five explain figures: attributions, the "
                        "randomisation sanity check, and the slides' conclusion measured, "
                        "drawn for the first of --index / the first --images, up to 4 "
                        "images for attributions; not in 'all': they take seconds)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="use the first N test images for the confusion matrix and the "
                        "mistakes (default: all of them)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Do the work of ``cnnlab visualize``; prints each path written. Returns 0."""
    from cnnlab.errors import InvalidArgumentError
    from cnnlab.viz.figures import make_all

    asked = list(dict.fromkeys(args.which))
    explain_which = list(EXPLAIN_FIGURES) if "explain" in asked else [
        w for w in asked if w in EXPLAIN_FIGURES]
    which = list(FIGURES) if "all" in asked else [w for w in asked if w in FIGURES]
    need_model = any(w not in _NO_MODEL for w in which) or bool(explain_which)
    model_path = _model_path(args.model) if need_model or args.model else None
    history: str | Path | None = args.history
    if history is None and model_path is not None:
        beside = model_path.parent / "history.json"
        if beside.is_file():
            history = beside
    if "all" in args.which and history is None:
        which.remove("curves")
    if "curves" in which and history is None:
        raise InvalidArgumentError(
            "the curves figure needs --history FILE (a history.json or history.csv)"
        )
    written: dict[str, Path] = {}
    if need_model:
        from cnnlab.saving import load_model

        assert model_path is not None
        model = load_model(model_path)
        x_test, y_test, class_names = _test_data(args.data, model)
        n = len(x_test)
        if n == 0:
            raise InvalidArgumentError("the data holds no test images to draw")
        for i in args.index or []:
            if i >= n:
                raise InvalidArgumentError(
                    f"--index {i} is out of range: the test set has {n} images"
                )
        picks = list(args.index) if args.index else list(range(min(args.images, n)))
        small = [w for w in which if w in ("feature_maps", "outputs", "filters")]
        large = [w for w in which if w in ("confusion", "mistakes")]
        if small:
            written.update(make_all(model, args.out, x_test[picks], y_test[picks], which=small,
                                    indices=list(range(len(picks))), layers=args.layers,
                                    class_names=class_names))
        if large:
            limit = n if args.limit is None else min(args.limit, n)
            written.update(make_all(model, args.out, x_test[:limit], y_test[:limit],
                                    which=large, class_names=class_names))
        if explain_which:
            from cnnlab.viz.figures import make_explain

            some = picks[:4]
            written.update(make_explain(model, args.out, x_test[some], y_test[some],
                                        which=explain_which, class_names=class_names))
    rest = [w for w in which if w in _NO_MODEL]
    if rest:
        written.update(make_all(None, args.out, None, None, history, which=rest))
    for name in (*FIGURES, *EXPLAIN_FIGURES):
        if name in written:
            print(written[name])
    return 0


def _model_path(arg: str | None) -> Path:
    from cnnlab.pretrained import pretrained_path

    return pretrained_path() if arg in (None, "", "default") else Path(arg)


def _image_shape(model: Any) -> tuple[int, int, int]:
    from cnnlab.errors import InvalidArgumentError

    shape = tuple(int(d) for d in (getattr(model, "input_shape", None) or ()))
    if len(shape) != 3 or shape[2] not in (1, 3):
        raise InvalidArgumentError(
            f"the model takes inputs of shape {shape}; the figures need images (H, W, 1 or 3)"
        )
    return shape  # type: ignore[return-value]


def _is_idx_dir(path: Path) -> bool:
    """Whether ``path`` is a folder of IDX files (MNIST's layout)."""
    return path.is_dir() and any(path.glob("*-idx3-ubyte*"))


def _default_data(model: Any) -> str | None:
    """The data the model was trained on, if its model file names a path that exists."""
    config = getattr(model, "training_config", None) or {}
    data = config.get("data") if isinstance(config, dict) else None
    return str(data) if isinstance(data, str) and Path(data).exists() else None


def _match_classes(model: Any, data_names: list[str] | None, y: np.ndarray,
                   source: str) -> tuple[np.ndarray, list[str] | None]:
    """The labels in the model's class order, and the names to draw.

    The data's classes are matched to the model's by name (a folder of images
    may list them in another order); data whose classes are only numbers (IDX
    files: "0".."9") keep their labels; a model without names takes the data's.
    """
    from cnnlab.errors import InvalidArgumentError

    k = int(np.prod(model.output_shape))
    if data_names is None:
        return y, None
    data_names = [str(n) for n in data_names]
    own = getattr(model, "class_names", None)
    if own is None:
        if len(data_names) != k:
            raise InvalidArgumentError(
                f"{source} has {len(data_names)} classes, the model has {k} outputs"
            )
        return y, data_names
    own = [str(n) for n in own]
    if own == data_names or data_names == [str(i) for i in range(k)]:
        return y, own  # the same classes, or data labelled by number only (IDX files)
    missing = [n for n in data_names if n not in own]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InvalidArgumentError(
            f"{source} has classes the model does not know: {shown} (the model's classes: "
            f"{', '.join(own[:10])}{' ...' if len(own) > 10 else ''})"
        )
    order = np.array([own.index(n) for n in data_names], dtype=np.int64)
    return order[np.asarray(y, dtype=np.int64)], own


def _test_data(data: str | None, model: Any) -> tuple[Any, Any, list[str] | None]:
    """The images to draw, ``(x, y, class names or None)``: x uint8 (N, H, W, C) at the
    model's input size and colour (or MNIST's (N, 28, 28))."""
    from cnnlab.errors import InvalidArgumentError

    h, w, c = _image_shape(model)
    if data is None:
        data = _default_data(model)
    if data is None:
        if (h, w, c) != (28, 28, 1):
            raise InvalidArgumentError(
                f"the model takes {h}x{w}x{c} images, not MNIST's 28x28x1: give the images "
                "to draw with --data PATH (a folder of class folders, IDX files or a .npz file)"
            )
        from cnnlab.datasets import load_mnist

        _, (x_test, y_test) = load_mnist()
        return x_test, y_test, None
    from cnnlab.datasets import load_dataset

    path = Path(data)
    if _is_idx_dir(path) and (h, w, c) == (28, 28, 1):
        splits = load_dataset(path)
    else:
        splits = load_dataset(path, image_size=(h, w), color="rgb" if c == 3 else "grayscale")
    part = splits.test
    if part is None:
        part = splits.train
        print(f"cnnlab visualize: {data} has no test part; drawing its training images",
              file=sys.stderr, flush=True)
    x, y = np.asarray(part.x), np.asarray(part.y)
    if x.ndim == 3 and c == 1:
        x = x[..., None]
    if x.shape[1:] != (h, w, c):
        raise InvalidArgumentError(
            f"{data}: its images are {'x'.join(map(str, x.shape[1:]))}, the model takes "
            f"{h}x{w}x{c}"
        )
    names = getattr(splits, "class_names", None)
    y, names = _match_classes(model, None if names is None else list(names), y, str(data))
    return x, y, names
