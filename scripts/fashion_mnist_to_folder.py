"""Write Fashion-MNIST out as an image folder: OUT/{train,test}/<class name>/<index>.png.

Usage::

    apt-get install -y dataset-fashion-mnist          # the four IDX files
    python scripts/fashion_mnist_to_folder.py /tmp/fmnist [--source DIR] [--force]

The IDX files are read with :func:`cnnlab.datasets.load_fashion_mnist` (the
default, Debian's ``/usr/share/datasets/fashion-mnist``) or, with ``--source``,
:func:`cnnlab.datasets.load_idx_dir`. Each image becomes an 8-bit grayscale
PNG named after its index in its IDX file (``train/Coat/00019.png`` is
training image 19), in a folder named after its class:

    0 T-shirt_top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat,
    5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle_boot

(the official names, with ``/`` and spaces made file-system safe). Note that an
image-folder reader (cnnlab's, Keras's, torchvision's) numbers classes in
*sorted name* order, so label 0 of the folder is ``Ankle_boot``, not
``T-shirt_top``; the images and their classes are the same.

Idempotent and atomic-ish: everything is written to ``OUT.tmp`` and renamed to
``OUT`` at the end, with a hidden ``OUT/.fashion_mnist_to_folder.json``
manifest (counts, source); if ``OUT`` already holds a complete conversion
(same manifest), nothing is done. ``--force`` rebuilds it. A half-written
``OUT.tmp`` from an interrupted run is removed and started over.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from cnnlab.datasets import load_fashion_mnist, load_idx_dir

CLASS_NAMES = ("T-shirt_top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle_boot")
MANIFEST = ".fashion_mnist_to_folder.json"
FORMAT_VERSION = 1


def _write_part(root: Path, x: np.ndarray, y: np.ndarray, threads: int) -> None:
    for name in CLASS_NAMES:
        (root / name).mkdir(parents=True, exist_ok=True)
    width = len(str(len(x) - 1))

    def save(lo_hi: tuple[int, int]) -> None:
        for i in range(*lo_hi):
            Image.fromarray(x[i], "L").save(
                root / CLASS_NAMES[int(y[i])] / f"{i:0{width}d}.png", optimize=False)

    blocks = [(lo, min(lo + 1000, len(x))) for lo in range(0, len(x), 1000)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(save, blocks))


def _manifest(source: str, train: tuple[np.ndarray, np.ndarray],
              test: tuple[np.ndarray, np.ndarray]) -> dict[str, object]:
    def counts(y: np.ndarray) -> dict[str, int]:
        return {CLASS_NAMES[k]: int(v) for k, v in enumerate(np.bincount(y, minlength=10))}

    return {"format_version": FORMAT_VERSION, "source": source,
            "class_names": list(CLASS_NAMES),
            "train": counts(train[1]), "test": counts(test[1])}


def convert(out: Path, source: Path | None = None, force: bool = False,
            threads: int = 4) -> Path:
    """Convert Fashion-MNIST into the image folder ``out``; return ``out``."""
    train, test = load_fashion_mnist() if source is None else load_idx_dir(source)
    for part in (train, test):
        if part[0].ndim != 3 or int(part[1].max()) >= len(CLASS_NAMES):
            raise SystemExit(f"unexpected data: images {part[0].shape}, labels up to "
                             f"{int(part[1].max())}")
    src = str(source or "load_fashion_mnist() default directory")
    manifest = _manifest(src, train, test)
    done = out / MANIFEST
    if out.exists() and not force:
        try:
            if json.loads(done.read_text()) == manifest:
                print(f"{out}: already complete ({sum(manifest['train'].values())} train + "
                      f"{sum(manifest['test'].values())} test images); nothing to do")
                return out
        except (OSError, ValueError):
            pass
        raise SystemExit(f"{out}: exists but is not a complete conversion of this data; "
                         "use --force to replace it")
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    t0 = time.perf_counter()
    _write_part(tmp / "train", train[0], train[1], threads)
    _write_part(tmp / "test", test[0], test[1], threads)
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
    if out.exists():  # --force
        old = out.with_name(out.name + ".old")
        if old.exists():
            shutil.rmtree(old)
        os.rename(out, old)
        os.rename(tmp, out)
        shutil.rmtree(old)
    else:
        os.rename(tmp, out)
    n = len(train[0]) + len(test[0])
    print(f"{out}: wrote {len(train[0])} train + {len(test[0])} test PNGs in "
          f"{time.perf_counter() - t0:.1f} s ({n / (time.perf_counter() - t0):.0f} images/s)")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", type=Path, help="output folder (e.g. /tmp/fmnist)")
    p.add_argument("--source", type=Path, default=None,
                   help="folder of the four IDX files (default: Debian's dataset-fashion-mnist)")
    p.add_argument("--force", action="store_true", help="rebuild even if OUT is complete")
    p.add_argument("--threads", type=int, default=4, help="PNG-writing threads (default 4)")
    args = p.parse_args(argv)
    convert(args.out.expanduser().resolve(), args.source, args.force, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
