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

import difflib
import inspect
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cnnlab.errors import CnnlabError, InvalidArgumentError, ModelFileError, SpecError
from cnnlab.layers import LAYER_TYPES
from cnnlab.model import Sequential
from cnnlab.serialization import (
    FORMAT_VERSION,
    assign_tensors,
    parse_json_meta,
    read_file,
    save_model,
)

__all__ = ["load_model", "load_spec", "model_from_config", "model_from_json", "save_model"]

#: The most values one example may have, at the input or at any layer's output, in a
#: model spec or file: a spec asking for more (an input of 2**40 pixels, a padding of
#: 2**40 rows) is refused before anything runs, instead of failing in NumPy.
MAX_EXAMPLE_VALUES = 1 << 28


def _class_names(names: Any, count: int, source: str) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ModelFileError(f"{source}: metadata 'class_names' must be a list of strings")
    if len(names) != count:
        raise ModelFileError(
            f"{source}: {len(names)} class names for a model with {count} outputs"
        )
    return names


def _layer(index: int, spec: Any, source: str) -> Any:
    """One layer from ``{"class_name": ..., "config": {...}}``, every key checked."""
    where = f"{source}: layer {index}"
    if not isinstance(spec, dict) or "class_name" not in spec:
        raise SpecError(f'{where}: expected {{"class_name": ..., "config": {{...}}}}, '
                        f"got {spec!r:.80}")
    extra = sorted(set(spec) - {"class_name", "config"})
    if extra:
        raise SpecError(f"{where}: unknown keys {extra}; a layer has 'class_name' and 'config'")
    name = spec["class_name"]
    cls = LAYER_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        close = difflib.get_close_matches(str(name), LAYER_TYPES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpecError(f"{where}: unknown layer type {name!r}{hint}; known: "
                        f"{', '.join(sorted(LAYER_TYPES))}")
    config = spec.get("config", {})
    if not isinstance(config, dict):
        raise SpecError(f"{where} ({name}): 'config' must be an object, got {config!r:.80}")
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in config:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise SpecError(f"{where} ({name}): unknown config key {key!r}{hint}; valid keys: "
                            f"{', '.join(valid)}")
    kwargs = dict(config)
    for key in ("kernel_size", "strides", "pool_size"):
        if isinstance(kwargs.get(key), list):
            kwargs[key] = tuple(kwargs[key])
    if isinstance(kwargs.get("padding"), list):
        kwargs["padding"] = tuple(tuple(p) if isinstance(p, list) else p
                                  for p in kwargs["padding"])
    try:
        return cls(**kwargs)
    except TypeError as e:  # a required argument missing
        raise SpecError(f"{where} ({name}): {e}") from None
    except CnnlabError as e:
        raise SpecError(f"{where} ({name}): {e}") from None


def model_from_config(config: Any, source: str = "model spec", *,
                      input_shape: Sequence[int] | None = None,
                      num_classes: int | None = None, seed: int | None = 0) -> Sequential:
    """Build an (untrained) Sequential from :meth:`~cnnlab.Sequential.get_config` data.

    The schema is what model files store: ``{"class_name": "Sequential",
    "name": ..., "input_shape": [H, W, C], "layers": [{"class_name": ...,
    "config": {...}}, ...]}``. ``input_shape`` (from the data) fills in or must
    agree with the spec's; ``num_classes``, if given, must equal the model's
    output size. Every layer's class name and config keys are checked, and
    every shape and the weights' memory (``cnnlab.model.MAX_WEIGHT_BYTES``)
    before anything is allocated.

    Raises:
        SpecError: naming the layer and the problem.
    """
    if not isinstance(config, dict):
        raise SpecError(f"{source}: expected a JSON object, got {type(config).__name__}")
    if config.get("class_name", "Sequential") != "Sequential":
        raise SpecError(f"{source}: the architecture is not a Sequential model "
                        f"(class_name {config.get('class_name')!r}); only Sequential is supported")
    extra = sorted(set(config) - {"class_name", "name", "input_shape", "layers"})
    if extra:
        raise SpecError(f"{source}: unknown keys {extra}; a model has 'class_name', 'name', "
                        "'input_shape' and 'layers'")
    specs = config.get("layers")
    if not isinstance(specs, list) or not specs:
        raise SpecError(f"{source}: 'layers' must be a non-empty list of layers")
    shape = config.get("input_shape")
    if input_shape is not None:
        given = tuple(int(d) for d in input_shape)
        if shape is not None and tuple(shape) != given:
            raise SpecError(f"{source}: the spec's input_shape {tuple(shape)} does not match "
                            f"the data's {given}")
        shape = given
    if shape is None:
        raise SpecError(f"{source}: no input_shape in the spec, and no data to take it from")
    if not isinstance(shape, list | tuple) or not all(
            isinstance(d, int) and not isinstance(d, bool) for d in shape):
        raise SpecError(f"{source}: input_shape must be a list of ints, got {shape!r}")
    values = math.prod(shape)
    if values > MAX_EXAMPLE_VALUES:
        raise SpecError(f"{source}: input_shape {tuple(shape)} is {values:,} values per "
                        f"example, more than {MAX_EXAMPLE_VALUES:,} "
                        "(cnnlab.saving.MAX_EXAMPLE_VALUES)")
    layers = [_layer(i, spec, source) for i, spec in enumerate(specs)]
    name = config.get("name", "sequential")
    try:
        model = Sequential(layers, input_shape=tuple(shape), name=str(name), seed=seed)
    except CnnlabError as e:
        raise SpecError(f"{source}: {e}") from None
    for i, layer in enumerate(model.layers):  # e.g. a ZeroPadding2D of 2**40 rows
        out = tuple(int(d) for d in layer.output_shape)
        if math.prod(out) > MAX_EXAMPLE_VALUES:
            raise SpecError(f"{source}: layer {i} '{layer.name}' ({layer.kind}) outputs {out} "
                            f"= {math.prod(out):,} values per example, more than "
                            f"{MAX_EXAMPLE_VALUES:,} (cnnlab.saving.MAX_EXAMPLE_VALUES)")
    if num_classes is not None and model.num_classes != num_classes:
        last = model.layers[-1]
        raise SpecError(
            f"{source}: the model ends in {model.num_classes} outputs (layer "
            f"'{last.name}', {last.kind}) but the data has {num_classes} classes"
        )
    return model


def _parse_json(text: str, source: str) -> Any:
    """``json.loads``, its errors as :class:`SpecError` (nesting deeper than Python's
    recursion limit too, which ``json`` reports as ``RecursionError``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise SpecError(f"{source}: not valid JSON ({e})") from None
    except RecursionError:
        raise SpecError(f"{source}: not valid JSON (nested too deeply)") from None


def model_from_json(spec: str | dict[str, Any], *, input_shape: Sequence[int] | None = None,
                    num_classes: int | None = None, seed: int | None = 0,
                    source: str = "model spec") -> Sequential:
    """:func:`model_from_config` from JSON text (or already parsed data).

    >>> model = model_from_json('{"input_shape": [8, 8, 1], "layers": ['
    ...     '{"class_name": "Flatten", "config": {}},'
    ...     '{"class_name": "Dense", "config": {"units": 3, "activation": "softmax"}}]}')
    >>> model.count_params()
    195
    """
    if isinstance(spec, str):
        spec = _parse_json(spec, source)
    return model_from_config(spec, source, input_shape=input_shape, num_classes=num_classes,
                             seed=seed)


def load_spec(path: str | Path) -> dict[str, Any]:
    """A JSON model spec file, parsed (not yet built)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise SpecError(f"{path}: cannot read the model spec ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    spec = _parse_json(text, str(path))
    if not isinstance(spec, dict):
        raise SpecError(f"{path}: expected a JSON object, got {type(spec).__name__}")
    return spec


def _meta_json(meta: dict[str, str], key: str, source: str) -> Any:
    """:func:`cnnlab.serialization.parse_json_meta`, with JSON nested deeper than
    Python's recursion limit a :class:`ModelFileError` too."""
    try:
        return parse_json_meta(meta, key, source)
    except RecursionError:
        raise ModelFileError(f"{source}: metadata {key!r} is not valid JSON (nested too "
                             "deeply)") from None


def _model_file_architecture(config: Any, source: str) -> Sequential:
    try:
        return model_from_config(config, source)
    except SpecError as e:
        raise ModelFileError(f"invalid architecture: {e}") from None


def _is_keras_file(path: str | Path) -> bool:
    """``.keras``, or ``.h5`` / ``.hdf5`` unless it is a cnnlab file under that name
    (``model.save("m.h5")`` writes safetensors: 8 length bytes, then its JSON header)."""
    suffix = Path(path).suffix.lower()
    if suffix not in (".keras", ".h5", ".hdf5"):
        return False
    if suffix == ".keras":
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(9)
    except OSError:
        return True  # the Keras reader names the problem
    return not (len(head) == 9 and head[8:9] == b"{")


def _load_keras_model(path: str | Path, compile: bool) -> Sequential:
    """A Keras ``.keras`` / legacy ``.h5`` file as a cnnlab model (:mod:`cnnlab.keras_format`)."""
    from cnnlab.keras_format import read_keras_file

    source = str(path)
    read = read_keras_file(path)
    try:
        model = model_from_config(read.architecture, source)
    except SpecError as e:
        raise ModelFileError(f"{source}: the Keras model does not fit cnnlab: {e}") from None
    assign_tensors(model, read.tensors, source)
    if read.class_names is not None:
        model.class_names = _class_names(read.class_names, model.num_classes, source)
    prep = read.preprocessing
    if prep is not None:
        if not isinstance(prep, dict) or prep.get("mode") not in ("digit", "resize"):
            raise ModelFileError(f"{source}: metadata 'preprocessing' is malformed: {prep!r}")
        model.preprocessing = prep
    model.training_config = dict(read.training_config)
    if compile and "optimizer" in read.training_config:
        try:
            model.compile(optimizer=read.training_config["optimizer"],
                          loss=read.training_config.get("loss", "categorical_crossentropy"))
        except (InvalidArgumentError, TypeError):
            model.compile()
    elif compile:
        model.compile()
    return model


def load_model(path: str | Path, compile: bool = True) -> Sequential:
    """Load a model saved by :meth:`Sequential.save` (``.safetensors``); it predicts exactly
    as before saving. A ``.keras`` (Keras 3) or legacy ``.h5`` / ``.hdf5`` Keras file is
    converted on the way in (:func:`cnnlab.keras_format.read_keras_file`)."""
    source = str(path)
    if _is_keras_file(path):
        return _load_keras_model(path, compile)
    meta, tensors = read_file(path)
    fmt = meta.get("cnnlab_format")
    if fmt != FORMAT_VERSION:
        raise ModelFileError(
            f"{source}: not a cnnlab model file (format {fmt!r}, expected {FORMAT_VERSION!r})"
        )
    model = _model_file_architecture(_meta_json(meta, "architecture", source), source)
    assign_tensors(model, tensors, source)
    if "class_names" in meta:
        model.class_names = _class_names(_meta_json(meta, "class_names", source),
                                         model.num_classes, source)
    if "preprocessing" in meta:
        prep = _meta_json(meta, "preprocessing", source)
        if not isinstance(prep, dict) or prep.get("mode") not in ("digit", "resize"):
            raise ModelFileError(f"{source}: metadata 'preprocessing' is malformed: {prep!r}")
        model.preprocessing = prep
    training = _meta_json(meta, "training_config", source) if "training_config" in meta else {}
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
