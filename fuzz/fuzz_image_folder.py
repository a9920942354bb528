"""Fuzz the image-folder scanner and loader (:func:`cnnlab.datasets.load_image_folder`).

The input is read as a recipe for a small folder tree (structure-aware, with
:class:`atheris.FuzzedDataProvider`): up to 10 entries, each a path of 1 to 3
components (names from a small list of meaningful ones -- ``train``, ``test``,
class names, hidden names, names with image extensions -- or fuzzed text), and
what it is: a folder, a small valid PNG (grey or colour, various sizes), fuzzed
bytes under an image name, or a symbolic link (to its parent: a loop, or to a file
outside the tree). Then the tree is loaded with fuzzed options (``skip_bad``,
``image_size``, ``color``) into a fresh cache.

Run: ``.venv/bin/python fuzz/fuzz_image_folder.py -max_total_time=5
fuzz/corpus/fuzz_image_folder``. ``MAX_IMAGE_PIXELS`` is lowered to 1 megapixel.
Beyond the exceptions: labels index the class names, ``files`` match the images,
pixels are uint8 (N, H, W, 1 or 3).
"""

from __future__ import annotations

import io
import os
import shutil

import atheris

with atheris.instrument_imports(include=["cnnlab"]):
    import numpy as np
    from PIL import Image

    from cnnlab import imageio
    from cnnlab.datasets import load_image_folder

from _harness import main, scratch_dir

imageio.MAX_IMAGE_PIXELS = 1 << 20
BASE = scratch_dir("folder")
OUTSIDE = BASE / "outside.png"
NAMES = ["train", "test", "cat", "dog", "a", "b", ".hidden", "x.png", "y.JPG", "z.txt",
         "data.npz", "1", "0", "img.jpeg", "..png", " ", "é", "c d"]


def _png(mode: str, size: tuple[int, int], value: int) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, value if mode == "L" else (value, 255 - value, 7)).save(buf, "PNG")
    return buf.getvalue()


PNGS = [_png("L", (4, 4), 200), _png("RGB", (4, 4), 30), _png("L", (6, 3), 90),
        _png("RGB", (2, 5), 255), _png("L", (1, 1), 0)]
OUTSIDE.write_bytes(PNGS[0])


def _name(fdp: atheris.FuzzedDataProvider) -> str:
    if fdp.ConsumeBool():
        return NAMES[fdp.ConsumeIntInRange(0, len(NAMES) - 1)]
    text = fdp.ConsumeUnicodeNoSurrogates(12).replace("/", "_").replace("\0", "_")
    if text in ("", ".", ".."):
        text = "n" + text
    return text[:40]


def build_tree(data: bytes, root: os.PathLike[str]) -> dict[str, object]:
    """Create the tree ``data`` describes under ``root``; the load options it picks."""
    fdp = atheris.FuzzedDataProvider(data)
    os.makedirs(root)
    for _ in range(fdp.ConsumeIntInRange(0, 10)):
        parts = [_name(fdp) for _ in range(fdp.ConsumeIntInRange(1, 3))]
        path = os.path.join(root, *parts)
        kind = fdp.ConsumeIntInRange(0, 4)
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if kind == 0:
                os.makedirs(path, exist_ok=True)
            elif kind == 1:
                with open(path, "wb") as f:
                    f.write(PNGS[fdp.ConsumeIntInRange(0, len(PNGS) - 1)])
            elif kind == 2:
                with open(path, "wb") as f:
                    f.write(fdp.ConsumeBytes(fdp.ConsumeIntInRange(0, 64)))
            elif kind == 3:
                os.symlink(os.path.dirname(path), path)  # a loop
            else:
                os.symlink(OUTSIDE, path)
        except (FileExistsError, NotADirectoryError, IsADirectoryError, OSError):
            continue  # the recipe clashes with itself (a file where a folder goes)
    options: dict[str, object] = {"skip_bad": fdp.ConsumeBool()}
    if fdp.ConsumeBool():
        options["image_size"] = (fdp.ConsumeIntInRange(0, 9), fdp.ConsumeIntInRange(0, 9))
    if fdp.ConsumeBool():
        options["color"] = ("grayscale", "rgb", "cmyk")[fdp.ConsumeIntInRange(0, 2)]
    return options


def check(data: bytes) -> None:
    root, cache = BASE / "tree", BASE / "cache"
    for d in (root, cache):
        shutil.rmtree(d, ignore_errors=True)
    options = build_tree(data, root)
    splits = load_image_folder(root, cache_dir=cache, progress=False, **options)
    for part in (splits.train, splits.test):
        if part is None:
            continue
        assert part.x.dtype == np.uint8 and part.x.ndim == 4 and part.x.shape[3] in (1, 3)
        assert len(part.x) == len(part.y) == len(part.files)
        assert 0 <= int(part.y.min()) and int(part.y.max()) < len(splits.class_names)
        for rel in part.files:
            assert (root / rel).is_file() or (root / rel).is_symlink(), f"{rel} not in tree"


if __name__ == "__main__":
    main(check)
