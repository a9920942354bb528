"""Fuzz image preparation: the Pillow decode path of ``cnnlab predict`` and the server.

Every input goes through :func:`cnnlab.imageio.probe_image` (the header check the
server does first), then :func:`~cnnlab.imageio.open_image`,
:func:`~cnnlab.imageio.to_uint8_array` in both colours,
:func:`~cnnlab.imageio.load_image` (what a resize model sees) and
:func:`cnnlab.preprocess.prepare_image` (what a digit model sees).

Run: ``.venv/bin/python fuzz/fuzz_image.py -max_total_time=5 fuzz/corpus/fuzz_image``.

``cnnlab.imageio.MAX_IMAGE_PIXELS`` is lowered to 1 megapixel here so that a
kilobyte that claims 8000x8000 pixels is refused (the same code path as the real
limit) instead of spending seconds decoding; the refusal itself is what is tested.
Checked beyond the exceptions: decoded arrays are uint8 (H, W, C) with the size
the header announced (formats other than PNG, whose EXIF may follow the pixels),
and a prepared digit is float32 28x28 in [0, 1].
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["cnnlab", "PIL"]):
    import numpy as np

    from cnnlab import imageio, preprocess

from _harness import main

imageio.MAX_IMAGE_PIXELS = 1 << 20


def check(data: bytes) -> None:
    header = imageio.probe_image(data)
    img = imageio.open_image(data)
    for color, channels in (("grayscale", 1), ("rgb", 3)):
        pixels = imageio.to_uint8_array(img, color)
        assert pixels.dtype == np.uint8 and pixels.ndim == 3 and pixels.shape[2] == channels
        if header.format != "PNG":
            assert pixels.shape[:2] == (header.height, header.width), (
                f"probe said {header.height}x{header.width}, decoded {pixels.shape[:2]}")
    small = imageio.load_image(data, (7, 5), "rgb")
    assert small.shape == (7, 5, 3) and small.dtype == np.uint8
    digit = preprocess.prepare_image(data)
    assert digit.shape == (28, 28) and digit.dtype == np.float32
    assert np.isfinite(digit).all() and digit.min() >= 0.0 and digit.max() <= 1.0


if __name__ == "__main__":
    main(check)
