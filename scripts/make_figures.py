#!/usr/bin/env python
"""Regenerate the README's figures into docs/figures/ with one command.

    python scripts/make_figures.py [HISTORY] [--model FILE] [--out DIR] [--data DIR]

HISTORY is a training history (``history.json`` or ``history.csv``, as
``cnnlab train`` writes) for ``curves.png``. The model defaults to the shipped
one (``cnnlab.pretrained.pretrained_path()``); while it is missing, only the
figures that need no model are written (padding, pooling, and curves with a
history). Figures come from :func:`cnnlab.viz.make_all`, under its standard names.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cnnlab.errors import CnnlabError, ModelFileError

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("history", nargs="?", default=None,
                        help="history.json or history.csv for curves.png")
    parser.add_argument("--model", default=None, help="model file (default: the shipped model)")
    parser.add_argument("--out", default=str(ROOT / "docs" / "figures"),
                        help="output folder (default: docs/figures)")
    parser.add_argument("--data", default=None, help="MNIST IDX folder (default: bundled)")
    parser.add_argument("--index", type=int, nargs="+", default=None,
                        help="test images of the outputs figure (default: the first 8)")
    args = parser.parse_args(argv)

    from cnnlab import pretrained, viz
    from cnnlab.datasets import load_idx_dir, load_mnist
    from cnnlab.saving import load_model

    try:
        model_path = Path(args.model) if args.model else pretrained.PRETRAINED_PATH
        model = x_test = y_test = None
        which = ["padding", "pooling"]
        if args.history:
            which.append("curves")
        if model_path.is_file():
            model = load_model(model_path)
            _, (x_test, y_test) = load_mnist() if args.data is None else load_idx_dir(args.data)
            which = list(viz.FIGURES) if args.history else [
                w for w in viz.FIGURES if w != "curves"]
        elif args.model:
            raise ModelFileError(f"{model_path}: no such model file")
        else:
            print(f"note: {model_path} is missing; writing only {', '.join(which)}",
                  file=sys.stderr)
        written = viz.make_all(model, args.out, x_test, y_test, args.history,
                               indices=args.index, which=which)
    except CnnlabError as e:
        print(f"make_figures: error: {e}", file=sys.stderr)
        return 2
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
