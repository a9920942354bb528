"""Fuzz the model loader (:func:`cnnlab.saving.load_model`): the safetensors header and
the JSON metadata (architecture, class names, preprocessing, training config).

The first byte picks the mode:

- even: the rest is the whole file (the 8-byte header length, the JSON header,
  the tensor bytes);
- odd: a valid file of a tiny model whose metadata entry ``KEYS[byte // 2 % 5]``
  is replaced by the rest (as UTF-8 text, errors replaced), so the fuzzer reaches
  the JSON checks without first having to forge a safetensors header.

Run: ``.venv/bin/python fuzz/fuzz_model_file.py -max_total_time=5 fuzz/corpus/fuzz_model_file``.
``cnnlab.model.MAX_WEIGHT_BYTES`` is lowered to 16 MiB (the same refusal, sooner).
A model that loads must predict finite probabilities for a zero input.
"""

from __future__ import annotations

import atheris

with atheris.instrument_imports(include=["cnnlab"]):
    import numpy as np

    import cnnlab.model
    from cnnlab import serialization
    from cnnlab.layers import Conv2D, Dense, Flatten, MaxPooling2D
    from cnnlab.model import Sequential
    from cnnlab.saving import load_model

from _harness import main, scratch_dir

cnnlab.model.MAX_WEIGHT_BYTES = 16 << 20
KEYS = ("architecture", "class_names", "preprocessing", "training_config", "cnnlab_format")
PATH = scratch_dir("model") / "m.safetensors"


def tiny_model() -> Sequential:
    """Conv2D(2, 3) -> MaxPooling2D(2) -> Flatten -> Dense(3, softmax) on 6x6x1."""
    model = Sequential([Conv2D(2, 3, activation="relu"), MaxPooling2D(2), Flatten(),
                        Dense(3, activation="softmax")], input_shape=(6, 6, 1), seed=0)
    model.class_names = ["a", "b", "c"]
    return model


_MODEL = tiny_model()
_TENSORS = serialization.tensors_of(_MODEL)
_META = {"cnnlab_format": serialization.FORMAT_VERSION, "architecture": _MODEL.get_config(),
         "training_config": {"optimizer": {"name": "adam"}, "loss": "categorical_crossentropy"},
         "class_names": ["a", "b", "c"], "preprocessing": {"mode": "resize", "size": [6, 6]}}


@atheris.instrument_func  # so that each mode and key is a branch the fuzzer sees
def file_bytes(data: bytes) -> bytes:
    """The file the harness writes for ``data`` (see the module docstring)."""
    if not data or data[0] % 2 == 0:
        return data[1:]
    meta = dict(_META)
    key = KEYS[data[0] // 2 % len(KEYS)]
    text = data[1:].decode("utf-8", "replace")
    if key == "architecture":
        meta["architecture"] = text
    elif key == "class_names":
        meta["class_names"] = text
    elif key == "preprocessing":
        meta["preprocessing"] = text
    elif key == "training_config":
        meta["training_config"] = text
    else:
        meta["cnnlab_format"] = text
    return serialization.encode(_TENSORS, meta)


def check(data: bytes) -> None:
    PATH.write_bytes(file_bytes(data))
    model = load_model(PATH)
    x = np.zeros((1, *model.input_shape), np.float32)
    if x.size <= 1 << 16:
        probs = model.predict(x)
        assert np.isfinite(probs).all(), "a loaded model predicts non-finite values"


if __name__ == "__main__":
    main(check)
