"""Write the seed corpus of every harness to ``fuzz/corpus/<harness>/`` (small files).

Run once from the repository root: ``.venv/bin/python fuzz/make_corpus.py``. The
seeds are deterministic, so re-running rewrites the same bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CORPUS = HERE / "corpus"


def _save(harness: str, data: bytes) -> None:
    folder = CORPUS / harness
    folder.mkdir(parents=True, exist_ok=True)
    (folder / hashlib.sha1(data).hexdigest()[:16]).write_bytes(data)


def idx_seeds() -> None:
    from cnnlab.datasets.idx import _idx_bytes

    arrays = [np.arange(6, dtype=np.uint8), np.arange(24, dtype=np.uint8).reshape(2, 3, 4),
              np.array([-1, 2], np.int8), np.array([[1, -2]], np.int16),
              np.array([7], np.int32), np.array([0.5, -1.0], np.float32),
              np.array([[1e300]], np.float64)]
    for arr in arrays:
        raw = _idx_bytes(arr)
        _save("fuzz_idx", raw)
        _save("fuzz_idx", gzip.compress(raw, mtime=0))
    _save("fuzz_idx", _idx_bytes(arrays[1])[:-3])  # truncated


def _image(fmt: str, img: Image.Image, **kw: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def image_seeds() -> None:
    digit = Image.new("L", (12, 10), 0)
    digit.paste(255, (4, 2, 7, 9))
    rgba = Image.new("RGBA", (6, 5), (0, 0, 0, 0))
    rgba.paste((200, 10, 10, 255), (1, 1, 4, 4))
    pal = digit.convert("P")
    pal.info["transparency"] = 0
    exif = Image.Exif()
    exif[0x0112] = 6
    seeds = [
        _image("PNG", digit), _image("PNG", rgba), _image("PNG", pal, transparency=0),
        _image("PNG", digit.convert("I;16")), _image("PNG", digit.convert("1")),
        _image("PNG", digit.convert("LA")),
        _image("JPEG", digit.convert("RGB"), quality=50),
        _image("JPEG", digit.convert("RGB"), exif=exif.tobytes()),
        _image("JPEG", digit.convert("CMYK")),
        _image("GIF", pal), _image("BMP", digit), _image("BMP", rgba.convert("RGB")),
        _image("WEBP", rgba, lossless=True), _image("TIFF", digit.convert("F")),
        _image("TIFF", digit, compression="tiff_lzw"), _image("PPM", digit),
        _image("PPM", digit.convert("I;16")),
    ]
    for s in seeds:
        _save("fuzz_image", s)


def model_seeds() -> None:
    import fuzz_model_file as h

    raw = h.serialization.encode(h._TENSORS, h._META)
    _save("fuzz_model_file", b"\x00" + raw)
    for i, key in enumerate(h.KEYS):
        value = h._META[key]
        text = value if isinstance(value, str) else json.dumps(value)
        _save("fuzz_model_file", bytes([2 * i + 1]) + text.encode())


def spec_seeds() -> None:
    from cnnlab import zoo

    for model in (zoo.seed_model(), zoo.small_cnn(seed=0)):
        _save("fuzz_spec", json.dumps(model.get_config()).encode())
    specs = [
        {"input_shape": [8, 8, 1], "layers": [
            {"class_name": "ZeroPadding2D", "config": {"padding": [[1, 0], [0, 1]]}},
            {"class_name": "Conv2D", "config": {"filters": 2, "kernel_size": [3, 3],
                                                "strides": [2, 1], "padding": "same"}},
            {"class_name": "BatchNormalization", "config": {}},
            {"class_name": "AveragePooling2D", "config": {"pool_size": 2}},
            {"class_name": "GlobalMaxPooling2D", "config": {}},
            {"class_name": "Dropout", "config": {"rate": 0.5}},
            {"class_name": "Dense", "config": {"units": 3}},
            {"class_name": "Activation", "config": {"activation": "softmax"}}]},
        {"input_shape": [5, 5, 3], "layers": [
            {"class_name": "Conv2D", "config": {"filters": 1, "kernel_size": 2,
                                                "padding": "full", "activation": "gelu"}},
            {"class_name": "GlobalAveragePooling2D", "config": {}},
            {"class_name": "Dense", "config": {"units": 2, "activation": "softmax"}}]},
    ]
    for spec in specs:
        _save("fuzz_spec", json.dumps(spec).encode())
    _save("fuzz_spec", b"[[[[[[[[[[1]]]]]]]]]]")


def npz_seeds() -> None:
    x = np.arange(4 * 3 * 3, dtype=np.uint8).reshape(4, 3, 3)
    y = np.array([0, 1, 1, 0])
    for save in (np.savez, np.savez_compressed):
        for kw in ({"x": x, "y": y},
                   {"x": x[..., None].repeat(3, -1), "y": y, "class_names": np.array(["a", "b"])},
                   {"x": x.astype(np.float32), "y": y, "x_test": x[:2].astype(np.float32),
                    "y_test": y[:2]}):
            buf = io.BytesIO()
            save(buf, **kw)
            _save("fuzz_npz", buf.getvalue())


def folder_seeds() -> None:
    for seed in range(6):
        _save("fuzz_image_folder", np.random.default_rng(seed).bytes(48 + 16 * seed))


if __name__ == "__main__":
    idx_seeds()
    image_seeds()
    model_seeds()
    spec_seeds()
    npz_seeds()
    folder_seeds()
    for folder in sorted(CORPUS.iterdir()):
        files = list(folder.iterdir())
        print(f"{folder.name}: {len(files)} seeds, {sum(f.stat().st_size for f in files)} bytes")
