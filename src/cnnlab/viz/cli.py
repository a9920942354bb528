"""``cnnlab visualize``: write the slides' figures (and the documentation's) as PNGs.

Usage::

    cnnlab visualize [MODEL] [--out DIR] [--data DIR] [--history FILE] [--images N]
                     [--index I ...] [--layers NAME ...] [--which FIGURE ...] [--limit N]

``MODEL`` defaults to the shipped trained model. The main CLI
(:mod:`cnnlab.cli`) adds the subcommand with :func:`register`; errors are
raised as :class:`~cnnlab.errors.CnnlabError` for it to report.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cnnlab.argtypes import non_negative_int, positive_int
from cnnlab.viz.names import DEFAULT_LAYERS, FIGURES

WHICH_CHOICES = ("all", *FIGURES)
_NO_MODEL = {"padding", "pooling", "curves"}


def register(subparsers: Any) -> None:
    """Add the ``visualize`` subcommand to an ``argparse`` subparsers object."""
    p = subparsers.add_parser(
        "visualize",
        help="draw the slides' figures (feature maps, outputs, filters, ...) as PNGs",
        description=(
            "Write PNG figures of a trained model on the MNIST test set: feature maps, "
            "softmax outputs, filters, training curves, confusion matrix, most confident "
            "mistakes, and the padding and pooling diagrams."
        ),
    )
    p.add_argument("model", nargs="?", default=None,
                   help="model file (default: the shipped trained model)")
    p.add_argument("--out", default="figures", help="output folder (default: figures)")
    p.add_argument("--data", default=None,
                   help="folder with the MNIST IDX files (default: the bundled copy)")
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
                   help=f"figures to write: {', '.join(WHICH_CHOICES)} (default: all)")
    p.add_argument("--limit", type=positive_int, default=None,
                   help="use the first N test images for the confusion matrix and the "
                        "mistakes (default: all 10,000)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Do the work of ``cnnlab visualize``; prints each path written. Returns 0."""
    from cnnlab.errors import InvalidArgumentError
    from cnnlab.viz.figures import make_all

    which = list(FIGURES) if "all" in args.which else list(dict.fromkeys(args.which))
    need_model = any(w not in _NO_MODEL for w in which)
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
        x_test, y_test = _test_data(args.data)
        n = len(x_test)
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
                                    indices=list(range(len(picks))), layers=args.layers))
        if large:
            limit = n if args.limit is None else min(args.limit, n)
            written.update(make_all(model, args.out, x_test[:limit], y_test[:limit],
                                    which=large))
    rest = [w for w in which if w in _NO_MODEL]
    if rest:
        written.update(make_all(None, args.out, None, None, history, which=rest))
    for name in FIGURES:
        if name in written:
            print(written[name])
    return 0


def _model_path(arg: str | None) -> Path:
    from cnnlab.pretrained import pretrained_path

    return pretrained_path() if arg in (None, "", "default") else Path(arg)


def _test_data(data: str | None) -> tuple[Any, Any]:
    from cnnlab.datasets import load_mnist

    _, (x_test, y_test) = load_mnist(data)
    return x_test, y_test
