"""Keras model files, both ways: read ``.keras`` (Keras 3) and legacy ``.h5``; write ``.keras``.

A codec, like :mod:`cnnlab.serialization`: it turns a Keras file into cnnlab's
architecture (the :meth:`~cnnlab.Sequential.get_config` schema) plus tensors
named ``<layer>/<weight>``, and a model into a ``.keras`` file; it never
imports the model class (:func:`cnnlab.saving.load_model` builds the model).

The two Keras layouts read:

* ``.keras`` (Keras 3): a zip holding ``config.json`` (the model, serialized
  by ``keras.saving.serialize_keras_object``), ``metadata.json`` and
  ``model.weights.h5``, whose variables sit at ``layers/<class>/vars/<i>``:
  ``<class>`` is the layer's class in snake case, numbered in order
  (``conv2d``, ``conv2d_1``, ...), and ``<i>`` counts the layer's variables in
  creation order (Conv2D/Dense: kernel, bias; BatchNormalization: gamma, beta,
  moving_mean, moving_variance).
* legacy ``.h5`` (Keras 2, tf.keras, or Keras 3's ``model.save("x.h5")``): an
  HDF5 file with the JSON ``model_config`` attribute and, per layer, the group
  ``model_weights/<layer>`` whose ``weight_names`` attribute lists its datasets
  (``conv2d/kernel:0`` in Keras 2, ``sequential/conv2d/kernel`` in Keras 3).

Both hold the same weights as cnnlab, in the same layout: a Conv2D kernel is
``(kh, kw, C_in, C_out)`` and a Dense kernel ``(in, out)``, channels last.

A model file is untrusted input. Nothing in it is executed or unpickled: the
JSON is read as data (Keras's own deserializer is never called), a ``Lambda``
layer, a custom (registered) class or a ``module`` outside ``keras.layers`` is
refused, and so is any layer cnnlab has no equivalent for, by name. The zip is
read in memory, never extracted; member names that could climb out of a
folder are refused, and a member's declared size is checked against caps and
against its stored size (a decompression bomb) before a byte is inflated. In
HDF5, links to other files, external and virtual datasets are refused, and a
dataset is read only if its size is plausible for what the file stores. And as
the HDF5 library (C) can be driven by a malformed file to allocate without
bound, :func:`read_keras_file` parses in a child process with capped memory
and time (on POSIX; ``isolate=False`` reads in-process).

>>> import tempfile, pathlib, numpy as np
>>> from cnnlab.zoo import small_cnn
>>> model = small_cnn(seed=0)
>>> path = save_keras(model, pathlib.Path(tempfile.mkdtemp()) / "m.keras")
>>> read = read_keras_file(path)
>>> [layer["class_name"] for layer in read.architecture["layers"]]
['Conv2D', 'MaxPooling2D', 'Flatten', 'Dense', 'Activation']
>>> bool((read.tensors["conv2d/kernel"] == model.layers[0].kernel).all())
True
"""

from __future__ import annotations

import io
import json
import os
import re
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError, ModelFileError
from cnnlab.fileio import atomic_write_bytes
from cnnlab.initializers import INITIALIZERS

__all__ = [
    "KERAS_SUFFIXES",
    "KerasFile",
    "keras_config",
    "read_keras_file",
    "save_keras",
]

#: File name endings read as Keras files: ``.keras`` (Keras 3) and legacy HDF5.
KERAS_SUFFIXES = (".keras", ".h5", ".hdf5")
INSTALL_HINT = "pip install cnnlab[keras]"

#: Caps on what a ``.keras`` archive may declare before anything is read.
MAX_MEMBERS = 10_000
MAX_JSON_BYTES = 64 << 20  # config.json / metadata.json
MAX_WEIGHTS_BYTES = 4 << 30  # model.weights.h5, and all the weights read from any file
#: A member (or HDF5 dataset) larger than this ...
BOMB_FLOOR_BYTES = 1 << 20
#: ... may hold at most this many bytes per stored byte. Keras stores members
#: uncompressed (ratio 1) and float weights barely deflate; DEFLATE itself
#: cannot exceed about 1032. Keras's own loader uses the same ratio.
MAX_EXPANSION = 100

CONFIG_NAME = "config.json"
METADATA_NAME = "metadata.json"
WEIGHTS_NAME = "model.weights.h5"
#: What ``metadata.json`` says for files cnnlab writes: the oldest Keras that reads them.
WRITTEN_KERAS_VERSION = "3.0.0"

_ACTIVATIONS = ("relu", "sigmoid", "tanh", "softmax", "linear", "leaky_relu", "elu", "gelu")
_KERAS_LAYER_MODULES = ("keras.layers", "keras.src.layers")
#: Keras layers that become a cnnlab layer (others are named in the error).
MAPPED_LAYERS = (
    "InputLayer", "Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
    "GlobalMaxPooling2D", "ZeroPadding2D", "Flatten", "Dense", "Dropout", "Activation",
    "BatchNormalization", "Rescaling", "ReLU", "LeakyReLU", "ELU", "Softmax",
)
_ALIASES = {"Convolution2D": "Conv2D", "MaxPool2D": "MaxPooling2D",
            "AvgPool2D": "AveragePooling2D", "GlobalAvgPool2D": "GlobalAveragePooling2D",
            "GlobalMaxPool2D": "GlobalMaxPooling2D"}


@dataclass
class KerasFile:
    """What a Keras file holds, in cnnlab's terms.

    Attributes:
        architecture: ``{"class_name": "Sequential", "name", "input_shape", "layers"}``,
            the schema of :func:`cnnlab.saving.model_from_config`.
        tensors: the weights, named ``<layer>/<weight>`` (``conv2d/kernel``).
        class_names, preprocessing: kept by files cnnlab wrote (``metadata.json``).
        keras_version: the Keras that wrote the file, when it says.
        training_config: ``{"optimizer": {...}, "loss": ...}`` from the model's compile
            settings, when cnnlab has the same optimizer (else empty).
    """

    architecture: dict[str, Any]
    tensors: dict[str, np.ndarray] = field(default_factory=dict)
    class_names: Any = None
    preprocessing: Any = None
    keras_version: str | None = None
    training_config: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers
def _h5py() -> Any:
    try:
        import h5py
    except ImportError as e:
        raise ModelFileError(
            f"Keras files need h5py, which is not installed ({e}): {INSTALL_HINT}"
        ) from None
    return h5py


def keras_snake_case(name: str) -> str:
    """Keras's ``to_snake_case``: ``MaxPooling2D`` -> ``max_pooling2d`` (its weight paths).

    >>> keras_snake_case("GlobalAveragePooling2D"), keras_snake_case("Conv2D")
    ('global_average_pooling2d', 'conv2d')
    """
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _unique(name: str, used: dict[str, int]) -> str:
    """``name``, then ``name_1``, ``name_2`` ... (Keras's ``_get_unique_name``)."""
    if name in used:
        used[name] += 1
        return f"{name}_{used[name]}"
    used[name] = 0
    return name


def _parse_json(data: bytes | str, what: str, source: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelFileError(f"{source}: {what} is not valid JSON ({e})") from None
    except RecursionError:
        raise ModelFileError(f"{source}: {what} is nested too deeply to be a model") from None


@dataclass
class _KLayer:
    """One Keras layer of the file: its class, name and config (JSON data)."""

    class_name: str
    name: str
    config: dict[str, Any]
    where: str  # "layer 'conv2d' (Conv2D)", for messages

    def fail(self, source: str, problem: str) -> ModelFileError:
        return ModelFileError(f"{source}: {self.where}: {problem}")


def _klayer(spec: Any, index: int, source: str) -> _KLayer:
    """A layer entry of a Keras config, checked to be a built-in Keras layer."""
    if not isinstance(spec, dict) or not isinstance(spec.get("class_name"), str):
        raise ModelFileError(f"{source}: layer {index} of the config is not a Keras layer "
                             f"(no class_name): {spec!r:.80}")
    cls = spec["class_name"]
    config = spec.get("config")
    if not isinstance(config, dict):
        raise ModelFileError(f"{source}: layer {index} ({cls}) has no config object")
    name = config.get("name", spec.get("name"))
    if not isinstance(name, str) or not name:
        name = f"layer_{index}"
    where = f"layer {name!r} ({cls})"
    if cls in ("Lambda", "TFOpLambda", "SlicingOpLambda"):
        raise ModelFileError(f"{source}: {where} holds Python code; cnnlab never runs code "
                             "from a model file")
    module = spec.get("module")
    if module is not None and (not isinstance(module, str) or not (
            module in _KERAS_LAYER_MODULES
            or module.startswith(tuple(m + "." for m in _KERAS_LAYER_MODULES)))):
        raise ModelFileError(f"{source}: {where} comes from module {module!r}, not keras.layers; "
                             "custom layers are not loaded (no code from a model file runs)")
    registered = spec.get("registered_name")
    if registered is not None and registered != cls:
        raise ModelFileError(f"{source}: {where} is a custom registered class "
                             f"{registered!r}; cnnlab reads built-in Keras layers only")
    if "/" in name:
        raise ModelFileError(f"{source}: {where}: a layer name cannot contain '/'")
    return _KLayer(_ALIASES.get(cls, cls), name, config, where)


# --------------------------------------------------------------------------- the model's layers
def _batch_shape(value: Any) -> tuple[int, ...] | None:
    if not isinstance(value, list) or len(value) < 2:
        return None
    dims = value[1:]
    if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in dims):
        return None
    return tuple(dims)


def _input_shape_of(layer: _KLayer, source: str) -> tuple[int, ...]:
    c = layer.config
    for key in ("batch_shape", "batch_input_shape"):
        if key in c:
            shape = _batch_shape(c[key])
            if shape is None:
                raise layer.fail(source, f"{key} {c[key]!r} is not (None, H, W, C) with known "
                                 "sizes; cnnlab needs a fixed input shape")
            return shape
    if isinstance(c.get("shape"), list):  # InputLayer(shape=...) in some versions
        return _input_shape_of(_KLayer(layer.class_name, layer.name,
                                       {"batch_shape": [None, *c["shape"]]}, layer.where),
                               source)
    raise layer.fail(source, "no batch_shape: the input's size is unknown")


def _model_layers(root: Any, source: str) -> tuple[str, tuple[int, ...], list[_KLayer]]:
    """The model's name, input shape and layers (InputLayer removed) from a Keras config."""
    if not isinstance(root, dict) or not isinstance(root.get("class_name"), str):
        raise ModelFileError(f"{source}: the model config is not a serialized Keras model")
    kind = root["class_name"]
    registered = root.get("registered_name")
    module = root.get("module")
    models = ("Sequential", "Functional", "Model")
    keras_module = module is None or (isinstance(module, str) and (
        module == "keras" or module.startswith("keras.")))
    if kind not in models or (registered is not None and registered not in models) \
            or not keras_module:
        raise ModelFileError(f"{source}: the model is a {registered or kind!r}"
                             f"{f' from {module!r}' if module else ''}; cnnlab reads Keras "
                             "Sequential models (and Functional ones that are a plain chain)")
    config = root.get("config")
    if isinstance(config, list):  # Keras 2.0-2.2: Sequential's config was the layer list
        config = {"layers": config}
    if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
        raise ModelFileError(f"{source}: the {kind} model's config has no layer list")
    name = config.get("name") if isinstance(config.get("name"), str) else "sequential"
    raw = config["layers"]
    layers = [_klayer(spec, i, source) for i, spec in enumerate(raw)]
    if kind != "Sequential":
        _check_chain(raw, layers, config, source)
    for layer in layers:
        if layer.class_name in ("Sequential", "Functional", "Model"):
            raise layer.fail(source, "a model nested inside the model; cnnlab reads one flat "
                             "chain of layers")
    shape: tuple[int, ...] | None = None
    inputs = [layer for layer in layers if layer.class_name == "InputLayer"]
    if len(inputs) > 1 or (inputs and layers[0] is not inputs[0]):
        raise inputs[-1].fail(source, "an InputLayer after the first layer")
    if inputs:
        shape = _input_shape_of(inputs[0], source)
        layers = layers[1:]
    elif _batch_shape(config.get("build_input_shape")) is not None:
        shape = _batch_shape(config["build_input_shape"])
    elif layers:
        first = layers[0].config
        for key in ("batch_input_shape", "batch_shape"):
            if key in first:
                shape = _input_shape_of(layers[0], source)
                break
        else:
            build = root.get("build_config") or {}
            shape = _batch_shape(build.get("input_shape") if isinstance(build, dict) else None)
    if not layers:
        raise ModelFileError(f"{source}: the model has no layers")
    if shape is None:
        raise ModelFileError(f"{source}: the model's input shape is not in the file "
                             "(an unbuilt model?); cnnlab needs (H, W, C)")
    return name, shape, layers


def _inbound(spec: dict[str, Any]) -> list[str] | None:
    """The names of the layers whose outputs feed this layer (Keras 2 and 3 forms)."""
    nodes = spec.get("inbound_nodes")
    if not isinstance(nodes, list):
        return None
    if not nodes:
        return []
    if len(nodes) != 1:
        return None  # a shared layer, called more than once
    node = nodes[0]
    names: list[str] = []
    if isinstance(node, dict):  # Keras 3: {"args": [keras tensors], "kwargs": {}}
        args, kwargs = node.get("args"), node.get("kwargs") or {}
        # BatchNormalization is called with mask=None; any real keyword is not a plain call
        if not isinstance(args, list) or not isinstance(kwargs, dict) or \
                any(v is not None for v in kwargs.values()):
            return None
        for arg in args:
            inner = arg.get("config") if isinstance(arg, dict) else None
            hist = inner.get("keras_history") if isinstance(inner, dict) else None
            if not isinstance(hist, list) or not hist or not isinstance(hist[0], str):
                return None
            names.append(hist[0])
    elif isinstance(node, list):  # Keras 2: [[name, node_index, tensor_index, kwargs], ...]
        for item in node:
            if not isinstance(item, list) or not item or not isinstance(item[0], str):
                return None
            kwargs = item[3] if len(item) > 3 else {}
            if not isinstance(kwargs, dict) or any(v is not None for v in kwargs.values()):
                return None
            names.append(item[0])
    else:
        return None
    return names


def _endpoint(value: Any) -> list[str] | None:
    """Names in ``input_layers`` / ``output_layers``: ``[name, 0, 0]`` or a list of those."""
    if isinstance(value, list) and value and isinstance(value[0], str):
        return [value[0]]
    if isinstance(value, list) and all(isinstance(v, list) and v and isinstance(v[0], str)
                                       for v in value):
        return [v[0] for v in value]
    return None


def _check_chain(raw: list[Any], layers: list[_KLayer], config: dict[str, Any],
                 source: str) -> None:
    """A Functional model is read only when it is a Sequential in disguise."""
    def fail(why: str) -> ModelFileError:
        return ModelFileError(f"{source}: the Functional model is not a plain chain of layers "
                              f"({why}); cnnlab reads Sequential models and chains only")

    if not layers or layers[0].class_name != "InputLayer":
        raise fail("it does not start with an InputLayer")
    if _endpoint(config.get("input_layers")) != [layers[0].name]:
        raise fail("it has more than one input")
    if _endpoint(config.get("output_layers")) != [layers[-1].name]:
        raise fail("its output is not its last layer, or it has more than one")
    for i, (spec, layer) in enumerate(zip(raw, layers, strict=True)):
        feeds = _inbound(spec)
        want = [] if i == 0 else [layers[i - 1].name]
        if feeds != want:
            raise fail(f"{layer.where} takes {feeds if feeds is not None else 'several calls'}, "
                       f"not {want or 'nothing'}")


# --------------------------------------------------------------------------- layer mapping
def _channels_last(layer: _KLayer, source: str) -> None:
    fmt = layer.config.get("data_format")
    if fmt not in (None, "channels_last"):
        raise layer.fail(source, f"data_format {fmt!r}; cnnlab lays images out as (N, H, W, C) "
                         "(channels_last) only")


def _dtype(layer: _KLayer, source: str) -> None:
    """Only float32 layers: Keras 3's DTypePolicy object, Keras 2's string or Policy."""
    d = layer.config.get("dtype")
    if isinstance(d, dict):
        inner = d.get("config")
        d = inner.get("name") if isinstance(inner, dict) else None
    if d not in (None, "float32"):
        raise layer.fail(source, f"dtype {d!r}; cnnlab converts float32 models only")


def _activation(layer: _KLayer, value: Any, source: str) -> str:
    if isinstance(value, dict) and value.get("module") == "keras.activations" and \
            isinstance(value.get("config"), str):
        value = value["config"]
    if value is None:
        return "linear"
    if not isinstance(value, str):
        raise layer.fail(source, f"a custom activation {value!r:.80}; cnnlab knows "
                         f"{', '.join(_ACTIVATIONS)}")
    if value not in _ACTIVATIONS:
        raise layer.fail(source, f"activation {value!r} has no cnnlab equivalent; cnnlab knows "
                         f"{', '.join(_ACTIVATIONS)}")
    return value


def _initializer(value: Any, default: str) -> str:
    """The cnnlab name of a Keras initializer (only untrained weights use it)."""
    if isinstance(value, dict):
        value = value.get("class_name")
    if isinstance(value, str):
        snake = keras_snake_case(value)
        if snake in INITIALIZERS:
            return snake
    return default


def _regularizer(value: Any) -> dict[str, Any] | None:
    """Keras's L2 (or L1L2 without L1) as cnnlab's; other penalties are training-only: dropped."""
    if isinstance(value, str) and value.lower() == "l2":
        return {"class_name": "L2", "config": {"l2": 0.01}}
    if isinstance(value, dict) and isinstance(value.get("config"), dict):
        cfg = value["config"]
        l2 = cfg.get("l2")
        if value.get("class_name") in ("L2", "L1L2") and isinstance(l2, int | float) and \
                not cfg.get("l1") and l2 > 0:
            return {"class_name": "L2", "config": {"l2": float(l2)}}
    return None


def _require(layer: _KLayer, key: str, ok: Callable[[Any], bool], want: str,
             source: str) -> None:
    if key in layer.config and not ok(layer.config[key]):
        raise layer.fail(source, f"{key} {layer.config[key]!r}; cnnlab supports {want}")


def _ones(value: Any) -> bool:
    return value in (1, [1, 1], (1, 1))


@dataclass
class _Mapped:
    """A Keras layer as cnnlab specs; ``weights[i]`` names the Keras variable ``i``."""

    specs: list[dict[str, Any]]
    weights: list[str] = field(default_factory=list)  # "<layer>/<weight>", Keras's order


def _map_layer(layer: _KLayer, source: str) -> _Mapped:
    """The cnnlab spec(s) for one Keras layer (Rescaling is :func:`_convert`'s job)."""
    c, cls, name = layer.config, layer.class_name, layer.name
    _dtype(layer, source)
    if cls in ("Conv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
               "GlobalMaxPooling2D", "ZeroPadding2D", "Flatten"):
        _channels_last(layer, source)
    spec: dict[str, Any]
    if cls in ("Conv2D", "Dense"):
        _require(layer, "use_bias", lambda b: isinstance(b, bool), "use_bias True or False",
                 source)
        use_bias = c.get("use_bias", True)
        spec = {"name": name}
        if cls == "Conv2D":
            _require(layer, "dilation_rate", _ones, "dilation_rate 1", source)
            _require(layer, "groups", lambda g: g == 1, "groups 1", source)
            _require(layer, "padding", lambda p: p in ("valid", "same"),
                     "padding 'valid' or 'same'", source)
            spec.update(filters=c.get("filters"), kernel_size=c.get("kernel_size"),
                        strides=c.get("strides", 1), padding=c.get("padding", "valid"))
        else:
            spec["units"] = c.get("units")
        spec.update(activation=_activation(layer, c.get("activation"), source),
                    use_bias=use_bias,
                    kernel_initializer=_initializer(c.get("kernel_initializer"),
                                                    "glorot_uniform"),
                    bias_initializer=_initializer(c.get("bias_initializer"), "zeros"))
        reg = _regularizer(c.get("kernel_regularizer"))
        if reg is not None:
            spec["kernel_regularizer"] = reg
        names = ["kernel", "bias"] if use_bias else ["kernel"]
        return _Mapped([{"class_name": cls, "config": spec}], [f"{name}/{n}" for n in names])
    if cls in ("MaxPooling2D", "AveragePooling2D"):
        strides = c.get("strides")
        spec = {"name": name, "pool_size": c.get("pool_size", 2),
                "strides": c.get("pool_size", 2) if strides is None else strides,
                "padding": c.get("padding", "valid")}
        return _Mapped([{"class_name": cls, "config": spec}])
    if cls in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
        spec = {"name": name, "keepdims": c.get("keepdims", False)}
        return _Mapped([{"class_name": cls, "config": spec}])
    if cls == "ZeroPadding2D":
        return _Mapped([{"class_name": cls, "config": {"name": name,
                                                       "padding": c.get("padding", 1)}}])
    if cls == "Flatten":
        return _Mapped([{"class_name": cls, "config": {"name": name}}])
    if cls == "Dropout":
        return _Mapped([{"class_name": cls, "config": {"name": name, "rate": c.get("rate")}}])
    if cls == "Activation":
        act = _activation(layer, c.get("activation"), source)
        return _Mapped([{"class_name": cls, "config": {"name": name, "activation": act}}])
    if cls == "BatchNormalization":
        axis = c.get("axis", -1)
        if isinstance(axis, list) and len(axis) == 1:
            axis = axis[0]
        for flag in ("renorm", "virtual_batch_size", "adjustment"):
            if c.get(flag):
                raise layer.fail(source, f"{flag}={c[flag]!r} has no cnnlab equivalent")
        center, scale = c.get("center", True), c.get("scale", True)
        spec = {"name": name, "axis": axis, "momentum": c.get("momentum", 0.99),
                "epsilon": c.get("epsilon", 1e-3), "center": center, "scale": scale}
        names = [n for n, keep in (("gamma", scale is True), ("beta", center is True),
                                   ("moving_mean", True), ("moving_variance", True)) if keep]
        return _Mapped([{"class_name": cls, "config": spec}], [f"{name}/{n}" for n in names])
    if cls in ("ReLU", "LeakyReLU", "ELU", "Softmax"):
        act = _activation_layer(layer, source)
        return _Mapped([{"class_name": "Activation", "config": {"name": name,
                                                                 "activation": act}}])
    raise ModelFileError(
        f"{source}: {layer.where} has no cnnlab equivalent; cnnlab maps "
        f"{', '.join(MAPPED_LAYERS)}"
    )


def _activation_layer(layer: _KLayer, source: str) -> str:
    """Keras's activation layers, when their arguments match a cnnlab activation."""
    c, cls = layer.config, layer.class_name
    if cls == "ReLU":
        if c.get("max_value") is None and not c.get("negative_slope") and not c.get("threshold"):
            return "relu"
        raise layer.fail(source, "a ReLU with max_value, negative_slope or threshold has no "
                         "cnnlab equivalent")
    if cls == "LeakyReLU":
        slope = c.get("negative_slope", c.get("alpha", 0.3))
        if slope == 0.2:
            return "leaky_relu"
        raise layer.fail(source, f"negative_slope {slope!r}; cnnlab's leaky_relu has 0.2")
    if cls == "ELU":
        if c.get("alpha", 1.0) == 1.0:
            return "elu"
        raise layer.fail(source, f"alpha {c.get('alpha')!r}; cnnlab's elu has 1.0")
    axis = c.get("axis", -1)
    if axis in (-1, [-1]):
        return "softmax"
    raise layer.fail(source, f"softmax over axis {axis!r}; cnnlab's is over the last axis")


def _rescaling(layer: _KLayer, source: str) -> tuple[float, float]:
    scale, offset = layer.config.get("scale", 1.0), layer.config.get("offset", 0.0)
    if not all(isinstance(v, int | float) and not isinstance(v, bool) and np.isfinite(v)
               for v in (scale, offset)):
        raise layer.fail(source, f"scale {scale!r} and offset {offset!r}: only a single number "
                         "each can be folded into the next layer (cnnlab has no Rescaling layer)")
    return float(scale), float(offset)


def _fold_rescaling(scale: float, offset: float, rescale: _KLayer, target: _Mapped,
                    tensors: dict[str, np.ndarray], source: str) -> None:
    """Fold ``x * scale + offset`` into the next Conv2D/Dense: ``W' = scale W``,
    ``b' = b + offset * sum(W over all but the output axis)``. Exact for the offset
    only without padding (padding adds zeros, not ``offset``)."""
    spec = target.specs[0]["config"]
    name = spec["name"]
    kernel = tensors[f"{name}/kernel"].astype(np.float64)
    if offset and target.specs[0]["class_name"] == "Conv2D" and spec.get("padding") != "valid":
        raise rescale.fail(source, f"an offset ({offset}) before the 'same'-padded "
                           f"convolution {name!r} cannot be folded into it (cnnlab has no "
                           "Rescaling layer)")
    bias = tensors.get(f"{name}/bias")
    if kernel.ndim < 2 or (bias is not None and bias.shape != kernel.shape[-1:]):
        raise ModelFileError(f"{source}: layer {name!r}: kernel {kernel.shape} and bias "
                             f"{None if bias is None else bias.shape} do not fit together")
    shift = offset * kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)
    tensors[f"{name}/kernel"] = (kernel * scale).astype(np.float32)
    if bias is not None:
        tensors[f"{name}/bias"] = (bias.astype(np.float64) + shift).astype(np.float32)
    elif offset:
        spec["use_bias"] = True
        target.weights.append(f"{name}/bias")
        tensors[f"{name}/bias"] = shift.astype(np.float32)


def _convert(layers: list[_KLayer], read_weights: Callable[[_KLayer, int], list[np.ndarray]],
             source: str) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """cnnlab layer specs and tensors for the Keras layers, Rescaling folded away."""
    specs: list[dict[str, Any]] = []
    tensors: dict[str, np.ndarray] = {}
    pending: tuple[_KLayer, float, float] | None = None
    for layer in layers:
        if layer.class_name == "Rescaling":
            if pending is not None:
                raise layer.fail(source, "two Rescaling layers in a row cannot be folded")
            scale, offset = _rescaling(layer, source)
            if (scale, offset) != (1.0, 0.0):
                pending = (layer, scale, offset)
            continue
        mapped = _map_layer(layer, source)
        arrays = read_weights(layer, len(mapped.weights))
        tensors.update(zip(mapped.weights, arrays, strict=True))
        if pending is not None:
            kind = mapped.specs[0]["class_name"]
            if kind in ("Conv2D", "Dense"):
                _fold_rescaling(pending[1], pending[2], pending[0], mapped, tensors, source)
                pending = None
            elif kind not in ("Dropout", "Flatten"):
                raise pending[0].fail(source, f"a Rescaling before {layer.where} cannot be "
                                      "folded: cnnlab has no Rescaling layer, and folds one "
                                      "only into the Conv2D or Dense after it")
        specs.extend(mapped.specs)
    if pending is not None:
        raise pending[0].fail(source, "a Rescaling with no Conv2D or Dense after it to fold into "
                              "(cnnlab has no Rescaling layer)")
    return specs, tensors


#: Keras optimizer -> the hyperparameters cnnlab's optimizer of the same name takes.
_OPTIMIZER_KEYS = {
    "SGD": ("momentum", "nesterov"), "Adam": ("beta_1", "beta_2", "epsilon"),
    "AdamW": ("weight_decay", "beta_1", "beta_2", "epsilon"),
    "RMSprop": ("rho", "momentum", "epsilon"), "Adadelta": ("rho", "epsilon"),
}
#: Keras optimizer options cnnlab lacks: set to anything but these, the optimizer is not kept.
_OPTIMIZER_OFF = {"amsgrad": False, "centered": False, "use_ema": False, "clipnorm": None,
                  "clipvalue": None, "global_clipnorm": None}


def _training_config(optimizer: Any, loss: Any) -> dict[str, Any]:
    """cnnlab's ``training_config`` from Keras's compile settings: the optimizer only when
    cnnlab's does the same thing (a constant learning rate, no clipping, no EMA ...)."""
    out: dict[str, Any] = {}
    if isinstance(loss, str) and loss in ("categorical_crossentropy",
                                          "sparse_categorical_crossentropy"):
        out["loss"] = "categorical_crossentropy"  # cnnlab takes integer or one-hot labels
    if not isinstance(optimizer, dict) or not isinstance(optimizer.get("config"), dict):
        return out
    cls, cfg = optimizer.get("class_name"), optimizer["config"]
    rate = cfg.get("learning_rate", cfg.get("lr"))
    keys = _OPTIMIZER_KEYS.get(cls) if isinstance(cls, str) else None
    if keys is None or isinstance(rate, bool) or not isinstance(rate, int | float):
        return out
    if any(cfg.get(k, off) != off for k, off in _OPTIMIZER_OFF.items()) or (
            cls != "AdamW" and cfg.get("weight_decay") not in (None, 0, 0.0)):
        return out
    opt = {"name": cls, "learning_rate": float(rate)}
    for key in keys:
        value = cfg.get(key)
        if isinstance(value, int | float) and (key == "nesterov") == isinstance(value, bool):
            opt[key] = value
    out["optimizer"] = opt
    return out


# --------------------------------------------------------------------------- HDF5, safely
#: What h5py raises on a malformed file (its C parser's errors surface as these).
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, RuntimeError, OverflowError,
              IndexError)

def _h5_get(h5py: Any, group: Any, path: str, source: str) -> Any:
    """``group[path]``, following hard links only (no soft or external links); None if absent."""
    node = group
    for part in [p for p in path.split("/") if p]:
        if not isinstance(node, h5py.Group):
            return None
        link = node.get(part, getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise ModelFileError(f"{source}: HDF5 entry {path!r} is a {type(link).__name__}; "
                                 "links to other objects or files are refused")
        node = node[part]
    return node


def _h5_array(h5py: Any, ds: Any, what: str, source: str, budget: list[int]) -> np.ndarray:
    """A float dataset's values, after checking it is plain, plausible and within budget."""
    if not isinstance(ds, h5py.Dataset):
        raise ModelFileError(f"{source}: {what} is not an HDF5 dataset")
    if ds.dtype.kind != "f" or ds.dtype.itemsize not in (2, 4, 8):
        raise ModelFileError(f"{source}: {what} holds {ds.dtype}, not floats")
    if ds.is_virtual or ds.external:
        raise ModelFileError(f"{source}: {what} is an external or virtual dataset; refused "
                             "(it would read other files)")
    nbytes = int(ds.size) * ds.dtype.itemsize
    if nbytes > budget[0]:
        raise ModelFileError(f"{source}: {what} declares {nbytes} bytes, more than the "
                             f"{MAX_WEIGHTS_BYTES} bytes of weights cnnlab reads")
    stored = int(ds.id.get_storage_size())
    if nbytes > BOMB_FLOOR_BYTES and nbytes > MAX_EXPANSION * stored:
        raise ModelFileError(f"{source}: {what} declares {nbytes} bytes but stores {stored}; "
                             "refusing a decompression bomb")
    budget[0] -= nbytes
    out = np.empty(ds.shape, dtype=ds.dtype)
    if ds.size:
        ds.read_direct(out)
    return out.astype(np.float32) if out.dtype == np.float16 else out


def _h5_text(value: Any) -> str | None:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return None
    return value if isinstance(value, str) else None


def _check_count(layer: _KLayer, found: int, want: int, source: str) -> None:
    if found != want:
        raise layer.fail(source, f"the file holds {found} weight arrays, the layer's config "
                         f"needs {want}")


def _keras3_weights(h5py: Any, f: Any, layers: list[_KLayer], source: str
                    ) -> Callable[[_KLayer, int], list[np.ndarray]]:
    """Reader for model.weights.h5: ``layers/<snake class>[_k]/vars/<i>``."""
    used: dict[str, int] = {}
    paths = {id(layer): _unique(keras_snake_case(layer.class_name), used) for layer in layers}
    root = "layers"
    if _h5_get(h5py, f, "layers", source) is None and \
            _h5_get(h5py, f, "_layer_checkpoint_dependencies", source) is not None:
        root = "_layer_checkpoint_dependencies"  # files from Keras 2.13's .keras format
    budget = [MAX_WEIGHTS_BYTES]

    def read(layer: _KLayer, want: int) -> list[np.ndarray]:
        if want == 0:
            return []
        path = f"{root}/{paths[id(layer)]}/vars"
        group = _h5_get(h5py, f, path, source)
        if not isinstance(group, h5py.Group):
            raise layer.fail(source, f"no weights at {path!r} in {WEIGHTS_NAME}")
        _check_count(layer, len(group), want, source)
        return [_h5_array(h5py, _h5_get(h5py, group, str(i), source), f"{path}/{i}", source,
                          budget) for i in range(want)]

    return read


def _legacy_weights(h5py: Any, f: Any, source: str
                    ) -> Callable[[_KLayer, int], list[np.ndarray]]:
    """Reader for legacy .h5: ``model_weights/<layer>`` lists its datasets in ``weight_names``."""
    top = _h5_get(h5py, f, "model_weights", source)
    if not isinstance(top, h5py.Group):
        raise ModelFileError(f"{source}: no model_weights group (saved without weights?)")
    budget = [MAX_WEIGHTS_BYTES]

    def read(layer: _KLayer, want: int) -> list[np.ndarray]:
        group = _h5_get(h5py, top, layer.name, source)
        if want == 0:
            return []
        if not isinstance(group, h5py.Group):
            raise layer.fail(source, f"no weights at 'model_weights/{layer.name}'")
        names = group.attrs.get("weight_names")
        names = [] if names is None else [_h5_text(n) for n in np.asarray(names).ravel()]
        if not all(isinstance(n, str) for n in names):
            raise layer.fail(source, "its weight_names attribute is not a list of strings")
        _check_count(layer, len(names), want, source)
        return [_h5_array(h5py, _h5_get(h5py, group, n, source),
                          f"model_weights/{layer.name}/{n}", source, budget) for n in names]

    return read


# --------------------------------------------------------------------------- reading
def _read_keras_zip(path: Path, source: str) -> KerasFile:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError,
            NotImplementedError) as e:
        raise ModelFileError(f"{source}: not a readable .keras file: not a zip archive, or a "
                             f"truncated one ({e})") from None
    with zf:
        members = _checked_members(zf, source)
        if CONFIG_NAME not in members:
            raise ModelFileError(f"{source}: the archive has no {CONFIG_NAME} (not a .keras "
                                 "model file?)")
        if WEIGHTS_NAME not in members:
            other = [n for n in members if n.startswith("model.weights")]
            found = f" (found {other}: only HDF5 weights are read)" if other else ""
            raise ModelFileError(f"{source}: the archive has no {WEIGHTS_NAME}{found}")
        config = _parse_json(_read_member(zf, members[CONFIG_NAME], MAX_JSON_BYTES, source),
                             CONFIG_NAME, source)
        meta: Any = {}
        if METADATA_NAME in members:
            meta = _parse_json(_read_member(zf, members[METADATA_NAME], MAX_JSON_BYTES, source),
                               METADATA_NAME, source)
            if not isinstance(meta, dict):
                raise ModelFileError(f"{source}: {METADATA_NAME} is not a JSON object")
        name, shape, layers = _model_layers(config, source)
        for layer in layers:  # every layer checked before the weights are inflated
            if layer.class_name != "Rescaling":
                _map_layer(layer, source)
        weights = _read_member(zf, members[WEIGHTS_NAME], MAX_WEIGHTS_BYTES, source)
    h5py = _h5py()
    try:
        with h5py.File(io.BytesIO(weights), "r") as f:
            specs, tensors = _convert(layers, _keras3_weights(h5py, f, layers, source), source)
    except ModelFileError:
        raise
    except _H5_ERRORS as e:
        raise ModelFileError(f"{source}: {WEIGHTS_NAME} is not a readable HDF5 file ({e})"
                             ) from None
    extra = meta.get("cnnlab") if isinstance(meta.get("cnnlab"), dict) else {}
    version = meta.get("keras_version")
    compiled = config.get("compile_config")
    compiled = compiled if isinstance(compiled, dict) else {}
    return KerasFile(
        architecture={"class_name": "Sequential", "name": name, "input_shape": list(shape),
                      "layers": specs},
        tensors=tensors, class_names=extra.get("class_names"),
        preprocessing=extra.get("preprocessing"),
        keras_version=version if isinstance(version, str) else None,
        training_config=extra["training_config"] if isinstance(
            extra.get("training_config"), dict) else _training_config(
            compiled.get("optimizer"), compiled.get("loss")),
    )


def _unsafe_member_name(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return (name.startswith(("/", "\\")) or "\\" in name or "\x00" in name
            or ".." in parts or (len(parts[0]) >= 2 and parts[0][1] == ":"))


def _checked_members(zf: zipfile.ZipFile, source: str) -> dict[str, zipfile.ZipInfo]:
    """Every member's name and declared sizes checked before anything is inflated."""
    infos = zf.infolist()
    if len(infos) > MAX_MEMBERS:
        raise ModelFileError(f"{source}: the archive has {len(infos)} members, more than "
                             f"{MAX_MEMBERS}; not a .keras model")
    members: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = info.filename
        if _unsafe_member_name(name):
            raise ModelFileError(f"{source}: archive member {name!r} has an unsafe path "
                                 "(absolute, or climbing out with '..'); refusing the archive")
        if name in members:
            raise ModelFileError(f"{source}: archive member {name!r} appears twice; refusing "
                                 "an ambiguous archive")
        if info.flag_bits & 0x1:
            raise ModelFileError(f"{source}: archive member {name!r} is encrypted")
        if info.file_size > BOMB_FLOOR_BYTES and \
                info.file_size > MAX_EXPANSION * max(info.compress_size, 1):
            raise ModelFileError(
                f"{source}: archive member {name!r} declares {info.file_size} bytes but stores "
                f"{info.compress_size} (over {MAX_EXPANSION}x); refusing a decompression bomb")
        members[name] = info
    return members


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int, source: str) -> bytes:
    """One member, in memory, at most ``limit`` bytes (declared and actual)."""
    if info.file_size > limit:
        raise ModelFileError(f"{source}: archive member {info.filename!r} declares "
                             f"{info.file_size} bytes, more than the {limit} allowed")
    try:
        with zf.open(info) as f:
            data = f.read(info.file_size + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError,
            NotImplementedError, RuntimeError) as e:
        raise ModelFileError(f"{source}: archive member {info.filename!r} is corrupt or "
                             f"truncated ({e})") from None
    if len(data) != info.file_size:
        raise ModelFileError(f"{source}: archive member {info.filename!r} holds {len(data)} "
                             f"bytes, not the {info.file_size} it declares")
    return data


def _read_legacy_h5(path: Path, source: str) -> KerasFile:
    h5py = _h5py()
    try:
        f = h5py.File(path, "r")
    except _H5_ERRORS as e:
        raise ModelFileError(f"{source}: not a readable HDF5 file, or a truncated one ({e})"
                             ) from None
    try:
        with f:
            raw = f.attrs.get("model_config")
            text = _h5_text(raw if not isinstance(raw, np.ndarray) else raw.item())
            if text is None:
                hint = (" (a weights-only file: save the whole model, model.save('x.h5'), "
                        "or use .keras)")
                raise ModelFileError(f"{source}: the HDF5 file has no model_config attribute"
                                     f"{hint}")
            if len(text) > MAX_JSON_BYTES:
                raise ModelFileError(f"{source}: model_config is over {MAX_JSON_BYTES} bytes")
            name, shape, layers = _model_layers(_parse_json(text, "model_config", source),
                                                source)
            specs, tensors = _convert(layers, _legacy_weights(h5py, f, source), source)
            version = _h5_text(f.attrs.get("keras_version"))
            text = _h5_text(f.attrs.get("training_config"))
            compiled = _parse_json(text, "training_config", source) if text else {}
            compiled = compiled if isinstance(compiled, dict) else {}
    except ModelFileError:
        raise
    except _H5_ERRORS as e:
        raise ModelFileError(f"{source}: unreadable HDF5 content ({e})") from None
    return KerasFile(
        architecture={"class_name": "Sequential", "name": name, "input_shape": list(shape),
                      "layers": specs},
        tensors=tensors, keras_version=version,
        training_config=_training_config(compiled.get("optimizer_config"), compiled.get("loss")),
    )


def read_keras_file(path: str | Path, *, isolate: bool | None = None) -> KerasFile:
    """Read a Keras model file (``.keras``, or legacy ``.h5`` / ``.hdf5``) as cnnlab data.

    The format comes from the file's first bytes (a zip, or HDF5), the
    extension only names what was expected.

    Args:
        isolate: parse the file in a child process whose memory is capped
            (:data:`ISOLATED_MEMORY_BYTES` plus 4x the file's size) and time
            limited (:data:`ISOLATED_TIMEOUT_S`). The HDF5 library is C code, and a
            malformed file can make it allocate without bound (a one-byte change
            to a 20 kB file took it past 2 GB); the child dies, not the caller.
            Default: on where the platform can cap a process (Linux, macOS).

    Raises:
        ModelFileError: naming the file and the problem: not a zip / HDF5 file, an
            unsafe or oversized member, a layer cnnlab has no equivalent for, a
            missing or misshapen weight, a parser that ran out of its memory.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise ModelFileError(f"{source}: no such model file")
    if isolate is None:
        isolate = _CAN_ISOLATE
    if isolate:
        _h5py()  # a missing h5py is named here, not in the child
        return _read_isolated(path, source)
    return _read_in_process(path, source)


def _read_in_process(path: Path, source: str) -> KerasFile:
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return _read_legacy_h5(path, source)
    if head.startswith(b"PK") or path.suffix.lower() == ".keras":
        return _read_keras_zip(path, source)
    return _read_legacy_h5(path, source)


# --------------------------------------------------------------------------- isolation
#: Memory cap of the child process that parses a Keras file, on top of 4x the file's size
#: (the interpreter with NumPy and h5py needs about 150 MB of address space).
ISOLATED_MEMORY_BYTES = 512 << 20
#: Seconds the child may take (a malformed HDF5 file could also make the parser loop).
ISOLATED_TIMEOUT_S = 600.0
_CAN_ISOLATE = os.name == "posix"
_CHILD_CODE = ("import sys; from cnnlab.keras_format import _isolated_main; "
               "_isolated_main(sys.argv[1], sys.argv[2])")


def _read_isolated(path: Path, source: str) -> KerasFile:
    """:func:`_read_in_process` in a child process with capped memory and time; the
    result comes back as safetensors bytes (tensors + the rest as JSON metadata)."""
    import resource
    import subprocess
    import sys

    size = path.stat().st_size
    if zipfile.is_zipfile(path):  # a deflated member inflates: count what it declares
        try:
            with zipfile.ZipFile(path) as zf:
                size = max(size, sum(i.file_size for i in zf.infolist()))
        except (zipfile.BadZipFile, OSError, ValueError, EOFError):
            pass  # the child names the problem
    cap = ISOLATED_MEMORY_BYTES + 4 * min(size, MAX_WEIGHTS_BYTES + 2 * MAX_JSON_BYTES)
    src = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(
                   [src, *filter(None, [os.environ.get("PYTHONPATH")])]))

    def limit() -> None:  # pragma: no cover (runs in the child, where prlimit is missing)
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    use_prlimit = hasattr(resource, "prlimit")
    proc = subprocess.Popen(
        [sys.executable, "-P", "-c", _CHILD_CODE, str(path), source],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        preexec_fn=None if use_prlimit else limit)
    try:
        if use_prlimit:
            resource.prlimit(proc.pid, resource.RLIMIT_AS, (cap, cap))
        out, err = proc.communicate(timeout=ISOLATED_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise ModelFileError(f"{source}: reading it took over {ISOLATED_TIMEOUT_S:.0f} s; "
                             "a malformed file?") from None
    except BaseException:
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode != 0:
        lines = err.decode("utf-8", "replace").strip().splitlines()
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        if proc.returncode < 0:
            raise ModelFileError(f"{source}: the file's parser was killed by signal "
                                 f"{-proc.returncode} (memory cap {cap:,} bytes): a malformed "
                                 "or hostile HDF5/zip file")
        if "MemoryError" in last:
            raise ModelFileError(f"{source}: the file's parser ran out of its {cap:,}-byte "
                                 "memory cap: a malformed or hostile HDF5/zip file")
        raise ModelFileError(f"{source}: the isolated reader failed: {last}")
    return _decode_isolated(out, source)


def _isolated_main(path: str, source: str) -> None:
    """The child's side of :func:`_read_isolated`: read, and write the result to stdout."""
    import sys

    from safetensors.numpy import save

    try:
        read = _read_in_process(Path(path), source)
    except ModelFileError as e:
        sys.stdout.buffer.write(save({}, metadata={"error": str(e)}))
        return
    result = {"architecture": read.architecture, "class_names": read.class_names,
              "preprocessing": read.preprocessing, "keras_version": read.keras_version,
              "training_config": read.training_config}
    tensors = {k: np.ascontiguousarray(v) for k, v in read.tensors.items()}
    sys.stdout.buffer.write(save(tensors, metadata={"result": json.dumps(result)}))


def _decode_isolated(data: bytes, source: str) -> KerasFile:
    from safetensors.numpy import load

    try:
        header_len = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + header_len]).get("__metadata__") or {}
        if "error" in meta:
            raise ModelFileError(meta["error"])
        result = json.loads(meta["result"])
        tensors = load(data)
    except ModelFileError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelFileError(f"{source}: the isolated reader's answer is unreadable ({e})"
                             ) from None
    return KerasFile(tensors=tensors, **result)


# --------------------------------------------------------------------------- writing
def _host(w: Any) -> np.ndarray:
    get = getattr(w, "get", None)  # a CuPy array: copy it to the host
    return np.ascontiguousarray(get() if callable(get) and not isinstance(w, np.ndarray) else w)


def _keras_layer(class_name: str, config: dict[str, Any], input_shape: tuple[int, ...] | None
                 ) -> dict[str, Any]:
    out: dict[str, Any] = {"module": "keras.layers", "class_name": class_name,
                           "config": {"trainable": True, "dtype": "float32", **config},
                           "registered_name": None}
    if input_shape is not None:
        out["build_config"] = {"input_shape": [None, *input_shape]}
    return out


def _keras_layers(model: Any) -> list[tuple[dict[str, Any], list[np.ndarray]]]:
    """Each cnnlab layer as Keras layer configs, with the weights in Keras's order."""
    out: list[tuple[dict[str, Any], list[np.ndarray]]] = []
    names = {layer.name for layer in model.layers}
    for layer in model.layers:
        kind, name = layer.kind, layer.name
        if "/" in name:
            raise InvalidArgumentError(f"layer {name!r}: Keras layer names cannot contain '/'")
        if getattr(layer, "dtype", np.dtype("float32")) != np.float32:
            raise InvalidArgumentError(f"layer {name!r} ({kind}) is {layer.dtype}; Keras files "
                                       "are written from float32 models only")
        weights = [_host(w) for w in layer.weights]
        cfg = layer.get_config()
        if kind == "Conv2D":
            padding = cfg["padding"]
            if padding not in ("valid", "same"):
                pads = [list(p) for p in layer.pads]
                if any(any(p) for p in pads):
                    pad_name = f"{name}_pad"
                    while pad_name in names:
                        pad_name += "_"
                    names.add(pad_name)
                    out.append((_keras_layer("ZeroPadding2D", {
                        "name": pad_name, "padding": pads, "data_format": "channels_last"},
                        None), []))
                padding = "valid"
            conf = {"name": name, "filters": cfg["filters"], "kernel_size": cfg["kernel_size"],
                    "strides": cfg["strides"], "padding": padding,
                    "data_format": "channels_last", "dilation_rate": [1, 1], "groups": 1,
                    "activation": cfg["activation"], "use_bias": cfg["use_bias"],
                    "kernel_initializer": cfg["kernel_initializer"],
                    "bias_initializer": cfg["bias_initializer"]}
            conf["kernel_regularizer"] = _keras_regularizer(cfg.get("kernel_regularizer"))
            out.append((_keras_layer(kind, conf, layer.input_shape), weights))
        elif kind == "Dense":
            conf = {"name": name, "units": cfg["units"], "activation": cfg["activation"],
                    "use_bias": cfg["use_bias"],
                    "kernel_initializer": cfg["kernel_initializer"],
                    "bias_initializer": cfg["bias_initializer"],
                    "kernel_regularizer": _keras_regularizer(cfg.get("kernel_regularizer"))}
            out.append((_keras_layer(kind, conf, layer.input_shape), weights))
        elif kind in ("MaxPooling2D", "AveragePooling2D"):
            conf = {"name": name, "pool_size": cfg["pool_size"], "strides": cfg["strides"],
                    "padding": cfg["padding"], "data_format": "channels_last"}
            out.append((_keras_layer(kind, conf, None), []))
        elif kind in ("GlobalAveragePooling2D", "GlobalMaxPooling2D"):
            conf = {"name": name, "data_format": "channels_last", "keepdims": cfg["keepdims"]}
            out.append((_keras_layer(kind, conf, None), []))
        elif kind == "ZeroPadding2D":
            conf = {"name": name, "padding": cfg["padding"], "data_format": "channels_last"}
            out.append((_keras_layer(kind, conf, None), []))
        elif kind == "Flatten":
            out.append((_keras_layer(kind, {"name": name, "data_format": "channels_last"},
                                     None), []))
        elif kind == "Dropout":
            out.append((_keras_layer(kind, {"name": name, "rate": cfg["rate"], "seed": None,
                                            "noise_shape": None}, None), []))
        elif kind == "Activation":
            out.append((_keras_layer(kind, {"name": name, "activation": cfg["activation"]},
                                     None), []))
        elif kind == "BatchNormalization":
            conf = {"name": name, "axis": cfg["axis"], "momentum": cfg["momentum"],
                    "epsilon": cfg["epsilon"], "center": cfg["center"], "scale": cfg["scale"]}
            out.append((_keras_layer(kind, conf, layer.input_shape), weights))
        else:
            raise InvalidArgumentError(f"layer {name!r} ({kind}) has no Keras equivalent that "
                                       "cnnlab writes")
    return out


def _keras_regularizer(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, dict) and value.get("class_name") == "L2":
        return {"module": "keras.regularizers", "class_name": "L2",
                "config": {"l2": float(value["config"]["l2"])}, "registered_name": None}
    raise InvalidArgumentError(f"regularizer {value!r} has no Keras form that cnnlab writes")


def keras_config(model: Any) -> dict[str, Any]:
    """``config.json`` of the ``.keras`` file for ``model``: a Keras Sequential.

    >>> from cnnlab.zoo import small_cnn
    >>> config = keras_config(small_cnn(seed=0))
    >>> config["class_name"], [layer["class_name"] for layer in config["config"]["layers"]][:3]
    ('Sequential', ['InputLayer', 'Conv2D', 'MaxPooling2D'])
    """
    return _config_and_weights(model)[0]


def _config_and_weights(model: Any) -> tuple[dict[str, Any], list[tuple[str, str, list]]]:
    if getattr(model, "input_shape", None) is None:
        raise InvalidArgumentError("build the model (give it an input_shape) before saving it")
    batch_shape = [None, *model.input_shape]
    pairs = _keras_layers(model)
    layers = [{"module": "keras.layers", "class_name": "InputLayer",
               "config": {"batch_shape": batch_shape, "dtype": "float32", "sparse": False,
                          "name": "input_layer"}, "registered_name": None}]
    layers += [cfg for cfg, _ in pairs]
    used: dict[str, int] = {}
    weights = [(_unique(keras_snake_case(cfg["class_name"]), used), cfg["config"]["name"], ws)
               for cfg, ws in pairs]
    config = {"module": "keras", "class_name": "Sequential",
              "config": {"name": str(model.name), "trainable": True, "dtype": "float32",
                         "layers": layers, "build_input_shape": batch_shape},
              "registered_name": None, "build_config": {"input_shape": batch_shape}}
    return config, weights


def _weights_h5(model_name: str, weights: list[tuple[str, str, list]]) -> bytes:
    """model.weights.h5 as Keras's saving_lib lays it out."""
    h5py = _h5py()
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f.create_group("vars").attrs["name"] = model_name
        f.create_group("layers")
        for path, name, arrays in weights:
            group = f.create_group(f"layers/{path}/vars")
            group.attrs["name"] = name
            for i, w in enumerate(arrays):
                group.create_dataset(str(i), data=w)
    return buf.getvalue()


def save_keras(model: Any, path: str | Path,
               training_config: dict[str, Any] | None = None) -> Path:
    """Write ``model`` as a Keras 3 ``.keras`` file, atomically.

    ``keras.saving.load_model(path)`` (``safe_mode=True``) then predicts what
    ``model.predict`` does. A convolution with padding other than
    ``"valid"``/``"same"`` is written as a ZeroPadding2D then a "valid"
    Conv2D. The class names, preprocessing and training config (optimizer,
    loss, epochs ...) go into ``metadata.json`` (Keras ignores them, cnnlab
    reads them back); Keras gets no ``compile_config`` (it would look for
    optimizer variables the file does not hold).
    """
    config, weights = _config_and_weights(model)
    extra: dict[str, Any] = {}
    if getattr(model, "class_names", None) is not None:
        extra["class_names"] = list(model.class_names)
    if getattr(model, "preprocessing", None) is not None:
        extra["preprocessing"] = dict(model.preprocessing)
    training = dict(training_config or getattr(model, "training_config", None) or {})
    if getattr(model, "compiled", False) and getattr(model, "optimizer", None) is not None:
        training.setdefault("optimizer", model.optimizer.get_config())
        training.setdefault("loss", model.loss)
    if training:
        extra["training_config"] = training
    meta: dict[str, Any] = {"keras_version": WRITTEN_KERAS_VERSION, "producer": "cnnlab"}
    if extra:
        meta["cnnlab"] = extra
    h5 = _weights_h5(str(model.name), weights)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in ((METADATA_NAME, json.dumps(meta).encode()),
                           (CONFIG_NAME, json.dumps(config).encode()), (WEIGHTS_NAME, h5)):
            zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return atomic_write_bytes(path, buf.getvalue())
