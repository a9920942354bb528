"""Fuzz JSON model specs: :func:`cnnlab.saving.load_spec` (a file's bytes) and
:func:`cnnlab.saving.model_from_json` (the parsed spec built into a model).

Run: ``.venv/bin/python fuzz/fuzz_spec.py -max_total_time=5 fuzz/corpus/fuzz_spec``.
``cnnlab.model.MAX_WEIGHT_BYTES`` is lowered to 16 MiB (the same refusal, sooner).
A spec that builds must run one forward pass on a zero input (inputs of at most
16,384 values, models of at most 65,536 parameters) and give finite outputs of the
model's output shape.
"""

from __future__ import annotations

import math

import atheris

with atheris.instrument_imports(include=["cnnlab"]):
    import numpy as np

    import cnnlab.model
    from cnnlab.saving import load_spec, model_from_json

from _harness import main, scratch_dir

cnnlab.model.MAX_WEIGHT_BYTES = 16 << 20
PATH = scratch_dir("spec") / "spec.json"


def check(data: bytes) -> None:
    PATH.write_bytes(data)
    spec = load_spec(PATH)
    model = model_from_json(spec)
    # Small models only: a forward pass must stay well under libFuzzer's timeout on a
    # loaded machine (a big valid model is slow, not a finding).
    # Also small activations: under atheris's import hook a forward pass with outputs of
    # millions of values leaves ~2 MB behind each time (measured: +97 MB for 40 passes
    # instrumented, +3 MB without atheris), which the RSS limit then reports.
    largest = max(math.prod(layer.output_shape) for layer in model.layers)
    if (math.prod(model.input_shape) <= 1 << 14 and model.count_params() <= 1 << 16
            and largest <= 1 << 16):
        x = np.zeros((1, *model.input_shape), np.float32)
        out = model.predict(x)
        assert out.shape == (1, *model.output_shape), f"{out.shape} vs {model.output_shape}"
        assert np.isfinite(out).all(), "a zero input gives non-finite outputs"


if __name__ == "__main__":
    main(check)
