"""Loading models: from a model file (or its architecture) back to a :class:`Sequential`.

Sits above :mod:`cnnlab.model`; the bytes are :mod:`cnnlab.serialization`'s job.

>>> import tempfile, pathlib, numpy as np
>>> from cnnlab.zoo import small_cnn
>>> model = small_cnn(seed=0)
>>> path = model.save(pathlib.Path(tempfile.mkdtemp()) / "m.safetensors")
>>> x = np.zeros((1, 28, 28, 1), np.float32)
>>> bool((load_model(path).predict(x) == model.predict(x)).all())
True
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError, InvalidArgumentError, ModelFileError
from cnnlab.layers import LAYER_TYPES
from cnnlab.model import Sequential
from cnnlab.serialization import (
    FORMAT_VERSION,
    assign_tensors,
    parse_json_meta,
    read_file,
    save_model,
)

__all__ = ["load_model", "model_from_config", "save_model"]


def _class_names(names: Any, count: int, source: str) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelFileError(f"{source}: metadata 'class_names' must be a list of strings")
    if len(names) != count:
        raise ModelFileError(
            f"{source}: {len(names)} class names for a model with {count} outputs"
        )
    return names


def model_from_config(config: Any, source: str = "model file") -> Sequential:
    """Rebuild an (untrained) Sequential from :meth:`get_config` data."""
    try:
        if not isinstance(config, dict) or config.get("class_name") != "Sequential":
            raise ModelFileError(f"{source}: architecture is not a Sequential model")
        layers = []
        for spec in config["layers"]:
            cls = LAYER_TYPES.get(spec["class_name"])
            if cls is None:
                raise ModelFileError(f"{source}: unknown layer type {spec['class_name']!r}")
            kwargs = dict(spec["config"])
            for key in ("kernel_size", "strides", "pool_size"):
                if isinstance(kwargs.get(key), list):
                    kwargs[key] = tuple(kwargs[key])
            if isinstance(kwargs.get("padding"), list):
                kwargs["padding"] = tuple(
                    tuple(p) if isinstance(p, list) else p for p in kwargs["padding"]
                )
            layers.append(cls(**kwargs))
        return Sequential(layers, input_shape=tuple(config["input_shape"]),
                          name=str(config.get("name", "sequential")), seed=0)
    except ModelFileError:
        raise
    except CnnlabError as e:
        raise ModelFileError(f"{source}: invalid architecture: {e}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ModelFileError(
            f"{source}: malformed architecture ({type(e).__name__}: {e})"
        ) from None


def load_model(path: str | Path, compile: bool = True) -> Sequential:
    """Load a model saved by :meth:`Sequential.save`; it predicts exactly as before saving."""
    source = str(path)
    meta, tensors = read_file(path)
    fmt = meta.get("cnnlab_format")
    if fmt != FORMAT_VERSION:
        raise ModelFileError(
            f"{source}: not a cnnlab model file (format {fmt!r}, expected {FORMAT_VERSION!r})"
        )
    model = model_from_config(parse_json_meta(meta, "architecture", source), source)
    assign_tensors(model, tensors, source)
    if "class_names" in meta:
        model.class_names = _class_names(parse_json_meta(meta, "class_names", source),
                                         model.num_classes, source)
    if "preprocessing" in meta:
        prep = parse_json_meta(meta, "preprocessing", source)
        if not isinstance(prep, dict) or prep.get("mode") not in ("digit", "resize"):
            raise ModelFileError(f"{source}: metadata 'preprocessing' is malformed: {prep!r}")
        model.preprocessing = prep
    training = parse_json_meta(meta, "training_config", source) if "training_config" in meta else {}
    model.training_config = training if isinstance(training, dict) else {}
    if compile and isinstance(training, dict) and "optimizer" in training:
        try:
            model.compile(optimizer=training["optimizer"], loss=training.get(
                "loss", "categorical_crossentropy"))
        except (InvalidArgumentError, TypeError):
            model.compile()
    elif compile:
        model.compile()
    return model
