"""Fuzz the ``.npz`` reader (:func:`cnnlab.datasets.npz.load_npz`), from a file object.

Run: ``.venv/bin/python fuzz/fuzz_npz.py -max_total_time=5 fuzz/corpus/fuzz_npz``.
Beyond the exceptions: a loaded archive has as many labels as images, every label
names a class, and images are uint8 or float32 (N, H, W, 1 or 3).
"""

from __future__ import annotations

import io

import atheris

with atheris.instrument_imports(include=["cnnlab", "numpy.lib", "zipfile"]):
    import numpy as np

    from cnnlab.datasets.npz import load_npz

from _harness import main


def check(data: bytes) -> None:
    splits = load_npz(io.BytesIO(data))
    for part in (splits.train, splits.test):
        if part is None:
            continue
        assert part.x.dtype in (np.uint8, np.float32) and part.x.ndim == 4
        assert part.x.shape[3] in (1, 3) and len(part.x) == len(part.y)
        assert 0 <= int(part.y.min()) and int(part.y.max()) < len(splits.class_names)


if __name__ == "__main__":
    main(check)
