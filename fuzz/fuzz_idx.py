"""Fuzz the IDX reader (:func:`cnnlab.datasets.idx.read_idx`): raw and gzip files.

Run: ``.venv/bin/python fuzz/fuzz_idx.py -max_total_time=5 fuzz/corpus/fuzz_idx``.
Accepts DataFormatError (a CnnlabError); see ``fuzz/_harness.py``.

Beyond "no other exception", it checks the reader's promise: what it returns has
exactly the element count the header declares and is C-contiguous and writable.
"""

from __future__ import annotations

import math

import atheris

with atheris.instrument_imports(include=["cnnlab", "gzip"]):
    from cnnlab.datasets.idx import read_idx

from _harness import main, scratch_dir

PATH = scratch_dir("idx") / "data.idx"


def check(data: bytes) -> None:
    PATH.write_bytes(data)
    arr = read_idx(PATH)
    assert arr.flags.c_contiguous and arr.flags.writeable, "not a writable C array"
    if data[:2] != b"\x1f\x8b":
        ndim = data[3]
        dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
        assert arr.shape == tuple(dims) and arr.size == math.prod(dims), "shape != header"


if __name__ == "__main__":
    main(check)
