"""A cnnlab model as an ONNX graph that ONNX Runtime (and onnxruntime-web) runs.

The graph (opset :data:`OPSET` = 17, IR version :data:`IR_VERSION` = 8, which
every ONNX Runtime since 1.13 reads) keeps cnnlab's interface:

* one input, ``input``, float32 ``(batch, H, W, C)``: channels last, as
  ``model.predict`` takes it, with a named dynamic batch axis ``batch``. It is
  the float input the model computes on: 8-bit pixels must be scaled first,
  ``x * float32(1/255)`` (:func:`cnnlab.pixels.scale_pixels`), as
  ``model.predict`` does for uint8 arrays; or export with
  ``input_dtype="uint8"``, and the graph starts with that same ``Cast`` and
  ``Mul``;
* one output, ``output``, ``(batch, *model.output_shape)``: what
  ``model.predict`` returns (the class probabilities for a classifier).

Inside, the image is transposed once to ONNX's ``(N, C, H, W)``. Layer by layer:

===========================  ===================================================
cnnlab                       ONNX
===========================  ===================================================
Conv2D                       ``Conv`` (kernel ``(kh, kw, Cin, Cout)`` transposed
                             to ``(Cout, Cin, kh, kw)``), explicit ``pads``
                             ``[top, left, bottom, right]`` from the layer's
                             resolved padding (Keras's asymmetric "same", "full",
                             amounts; never ``auto_pad``), then the activation
MaxPooling2D                 ``MaxPool`` with explicit ``pads`` (padded cells
                             never win, as in cnnlab)
AveragePooling2D             ``AveragePool``, ``count_include_pad=0``: padded
                             cells are not counted, as in cnnlab
GlobalAverage/MaxPooling2D   ``GlobalAveragePool`` / ``GlobalMaxPool``, then
                             ``Flatten`` unless ``keepdims``
ZeroPadding2D                ``Pad`` (constant 0)
Flatten                      ``Transpose`` back to ``(N, H, W, C)``, then
                             ``Flatten``: the features keep cnnlab's
                             channels-last order, so Dense kernels are used as
                             they are
Dense                        ``Gemm`` (``MatMul`` without bias), then the activation
Dropout                      nothing (the identity at inference)
Activation                   the activation alone
BatchNormalization           inference form, as cnnlab computes it: ``x * a + b``
                             with ``a = gamma / sqrt(moving_variance + eps)`` and
                             ``b = beta - moving_mean * a`` (formed in float64,
                             stored in float32), on any axis
===========================  ===================================================

Activations: ``relu`` (``Relu``), ``sigmoid``, ``tanh``, ``softmax``
(``Softmax`` over the channels: the last axis in cnnlab's layout),
``leaky_relu`` (``LeakyRelu``, alpha 0.2), ``elu`` (``Elu``, alpha 1), exact
``gelu`` as ``x / 2 * (1 + erf(x / sqrt 2))`` (``Erf``; opset 17 has no
``Gelu``), ``linear`` (nothing). A layer or activation outside these raises
:class:`~cnnlab.errors.InvalidArgumentError` naming it. Weights are stored in
float32 (a float64 model is exported in float32).

With ``layer_outputs=True`` every layer's output is also a graph output, named
``layer:<layer name>``, channels last as cnnlab's ``model.feature_maps`` gives
them (what the static demo page draws as feature maps).

>>> from cnnlab.zoo import seed_model
>>> proto = build_onnx(seed_model(seed=0))          # doctest: +SKIP
>>> [i.name for i in proto.graph.input], [o.name for o in proto.graph.output]  # doctest: +SKIP
(['input'], ['output'])
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.fileio import atomic_write_bytes
from cnnlab.layers import (
    Activation,
    AveragePooling2D,
    BatchNormalization,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    GlobalMaxPooling2D,
    MaxPooling2D,
    ZeroPadding2D,
)

#: The ONNX operator set the graph uses.
OPSET = 17
#: The IR version written: 8 is opset 17's (ONNX 1.12), read by ONNX Runtime >= 1.13.
IR_VERSION = 8
#: Name of the graph's input and output, and of its dynamic batch axis.
INPUT_NAME, OUTPUT_NAME, BATCH_AXIS = "input", "output", "batch"
#: Prefix of the per-layer outputs added by ``layer_outputs=True``.
LAYER_OUTPUT_PREFIX = "layer:"
#: The activations the exporter writes.
EXPORTABLE_ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax", "leaky_relu", "elu",
                          "gelu")
INPUT_DTYPES = ("float32", "uint8")

_NCHW_TO_NHWC = [0, 2, 3, 1]
_NHWC_TO_NCHW = [0, 3, 1, 2]


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the installation
        raise InvalidArgumentError(
            f"exporting to ONNX needs the onnx package ({e}); install it with: "
            "pip install 'cnnlab[onnx]'"
        ) from None
    return onnx


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("cnnlab")
    except Exception:  # pragma: no cover - not installed as a distribution
        return "unknown"


class _Graph:
    """Nodes, initializers and unique names, as the exporter adds them."""

    def __init__(self, onnx: Any) -> None:
        self.onnx = onnx
        self.helper = onnx.helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.names: set[str] = set()

    def unique(self, name: str) -> str:
        base, k = name, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        return name

    def const(self, name: str, value: Any, dtype: Any = np.float32) -> str:
        from onnx import numpy_helper

        name = self.unique(name)
        arr = np.ascontiguousarray(np.asarray(value, dtype=dtype))
        self.initializers.append(numpy_helper.from_array(arr, name))
        return name

    def node(self, op: str, inputs: list[str], output: str, **attrs: Any) -> str:
        output = self.unique(output)
        self.nodes.append(self.helper.make_node(op, inputs, [output], name=output, **attrs))
        return output


class _State:
    """The running tensor: its name and whether it is an image ``(N, C, H, W)``."""

    def __init__(self, name: str, image: bool) -> None:
        self.name, self.image = name, image


def _unexportable(layer: Any, why: str) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"cannot export layer '{layer.name}' ({layer.kind}) to ONNX: {why}"
    )


def _activation(g: _Graph, x: _State, name: str, layer: Any, prefix: str) -> None:
    """Apply activation ``name`` to ``x`` (in place of its tensor name)."""
    if name == "linear":
        return
    out = f"{prefix}/{name}"
    if name == "relu":
        x.name = g.node("Relu", [x.name], out)
    elif name == "sigmoid":
        x.name = g.node("Sigmoid", [x.name], out)
    elif name == "tanh":
        x.name = g.node("Tanh", [x.name], out)
    elif name == "softmax":  # cnnlab's last axis: the channels (axis 1 in N, C, H, W)
        x.name = g.node("Softmax", [x.name], out, axis=1 if x.image else -1)
    elif name == "leaky_relu":
        from cnnlab.ops.activations import LEAKY_RELU_SLOPE

        x.name = g.node("LeakyRelu", [x.name], out, alpha=float(LEAKY_RELU_SLOPE))
    elif name == "elu":
        from cnnlab.ops.activations import ELU_ALPHA

        x.name = g.node("Elu", [x.name], out, alpha=float(ELU_ALPHA))
    elif name == "gelu":  # exact: x / 2 * (1 + erf(x / sqrt 2))
        root2 = g.const(f"{prefix}/sqrt2", math.sqrt(2.0))
        one = g.const(f"{prefix}/one", 1.0)
        half = g.const(f"{prefix}/half", 0.5)
        e = g.node("Erf", [g.node("Div", [x.name, root2], f"{prefix}/gelu_scaled")],
                   f"{prefix}/gelu_erf")
        e = g.node("Add", [e, one], f"{prefix}/gelu_1p")
        e = g.node("Mul", [x.name, e], f"{prefix}/gelu_x")
        x.name = g.node("Mul", [e, half], out)
    else:
        raise _unexportable(layer, f"the activation {name!r} has no ONNX form here "
                                   f"(exportable: {', '.join(EXPORTABLE_ACTIVATIONS)})")


def _pads(pads: Any) -> list[int]:
    """cnnlab's ``((top, bottom), (left, right))`` as ONNX's ``[top, left, bottom, right]``."""
    (t, b), (left, r) = pads
    return [int(t), int(left), int(b), int(r)]


def _add_layer(g: _Graph, x: _State, layer: Any) -> None:
    p = str(layer.name)
    f32 = np.float32
    if isinstance(layer, Conv2D):
        kernel = np.asarray(layer.kernel, dtype=f32).transpose(3, 2, 0, 1)  # (Cout, Cin, kh, kw)
        inputs = [x.name, g.const(f"{p}/kernel", kernel)]
        if layer.use_bias:
            inputs.append(g.const(f"{p}/bias", np.asarray(layer.bias, dtype=f32)))
        x.name = g.node("Conv", inputs, f"{p}/conv", kernel_shape=list(layer.kernel_size),
                        strides=list(layer.strides), pads=_pads(layer.pads),
                        dilations=[1, 1], group=1)
        _activation(g, x, layer.activation, layer, p)
    elif isinstance(layer, MaxPooling2D | AveragePooling2D):
        attrs: dict[str, Any] = {"kernel_shape": list(layer.pool_size),
                                 "strides": list(layer.strides), "pads": _pads(layer.pads)}
        if isinstance(layer, AveragePooling2D):
            attrs["count_include_pad"] = 0  # padded cells are not counted, as in cnnlab
            x.name = g.node("AveragePool", [x.name], f"{p}/avgpool", **attrs)
        else:
            x.name = g.node("MaxPool", [x.name], f"{p}/maxpool", **attrs)
    elif isinstance(layer, GlobalAveragePooling2D | GlobalMaxPooling2D):
        op = "GlobalAveragePool" if isinstance(layer, GlobalAveragePooling2D) else "GlobalMaxPool"
        x.name = g.node(op, [x.name], f"{p}/{op.lower()}")
        if not layer.keepdims:  # (N, C, 1, 1) -> (N, C)
            x.name = g.node("Flatten", [x.name], f"{p}/flatten", axis=1)
            x.image = False
    elif isinstance(layer, ZeroPadding2D):
        (t, b), (left, r) = layer.padding
        pads = g.const(f"{p}/pads", [0, 0, t, left, 0, 0, b, r], np.int64)
        x.name = g.node("Pad", [x.name, pads], f"{p}/pad", mode="constant")
    elif isinstance(layer, Flatten):
        if x.image:  # back to channels last first: cnnlab flattens (H, W, C) row-major
            x.name = g.node("Transpose", [x.name], f"{p}/to_nhwc", perm=_NCHW_TO_NHWC)
        x.name = g.node("Flatten", [x.name], f"{p}/flatten", axis=1)
        x.image = False
    elif isinstance(layer, Dense):
        if x.image:
            raise _unexportable(layer, "Dense needs flat input (a Flatten before it)")
        kernel = g.const(f"{p}/kernel", np.asarray(layer.weights[0], dtype=f32))
        if layer.use_bias:
            bias = g.const(f"{p}/bias", np.asarray(layer.weights[1], dtype=f32))
            x.name = g.node("Gemm", [x.name, kernel, bias], f"{p}/gemm")
        else:
            x.name = g.node("MatMul", [x.name, kernel], f"{p}/matmul")
        _activation(g, x, layer.activation, layer, p)
    elif isinstance(layer, Dropout):
        return  # the identity at inference
    elif isinstance(layer, Activation):
        _activation(g, x, layer.activation, layer, p)
    elif isinstance(layer, BatchNormalization):
        var = np.asarray(layer.moving_variance, dtype=np.float64)
        a = 1.0 / np.sqrt(var + layer.epsilon)  # as cnnlab.ops.normalization computes it
        if layer.gamma is not None:
            a = a * layer.gamma
        b = -np.asarray(layer.moving_mean) * a
        if layer.beta is not None:
            b = b + layer.beta
        ndim = len(layer.input_shape) + 1
        axis = layer.axis % ndim  # the normalised axis of (N, ...), as the layer resolves it
        if x.image:  # the axis of (N, H, W, C) in (N, C, H, W)
            axis = {1: 2, 2: 3, 3: 1}[axis]
        shape = [1] * ndim
        shape[axis] = -1
        a_name = g.const(f"{p}/scale", a.astype(f32).reshape(shape))
        b_name = g.const(f"{p}/offset", b.astype(f32).reshape(shape))
        x.name = g.node("Add", [g.node("Mul", [x.name, a_name], f"{p}/mul"), b_name],
                        f"{p}/batchnorm")
    else:
        raise _unexportable(layer, "this layer type has no ONNX export (exportable: "
                                   "Conv2D, MaxPooling2D, AveragePooling2D, "
                                   "GlobalAveragePooling2D, GlobalMaxPooling2D, ZeroPadding2D, "
                                   "Flatten, Dense, Dropout, Activation, BatchNormalization)")


def build_onnx(model: Any, *, layer_outputs: bool = False, input_dtype: str = "float32") -> Any:
    """The ONNX ``ModelProto`` of a built cnnlab ``Sequential`` (see the module docstring).

    Args:
        model: a built :class:`cnnlab.Sequential` (its weights as they are now).
        layer_outputs: also output every layer's result, ``layer:<name>``,
            channels last.
        input_dtype: ``"float32"`` (default: the model's float input) or
            ``"uint8"`` (8-bit pixels; the graph scales them by ``float32(1/255)``
            as :func:`cnnlab.pixels.scale_pixels` does).

    Raises:
        InvalidArgumentError: the model is not built, a layer or activation has
            no ONNX form (named), or ``input_dtype`` is unknown.
    """
    onnx = _import_onnx()
    helper, TP = onnx.helper, onnx.TensorProto
    if getattr(model, "input_shape", None) is None:
        raise InvalidArgumentError("export: the model is not built (give it an input_shape)")
    if input_dtype not in INPUT_DTYPES:
        raise InvalidArgumentError(f"export: input_dtype must be one of {INPUT_DTYPES}, "
                                   f"got {input_dtype!r}")
    shape = tuple(int(d) for d in model.input_shape)
    if len(shape) not in (1, 3):
        raise InvalidArgumentError(
            f"export: the model's input shape {shape} is neither an image (H, W, C) nor "
            "flat features (F,)")
    g = _Graph(onnx)
    g.names.add(INPUT_NAME)
    name = INPUT_NAME
    if input_dtype == "uint8":
        name = g.node("Cast", [name], "input/float", to=TP.FLOAT)
        name = g.node("Mul", [name, g.const("input/scale", np.float32(1.0 / 255.0))],
                      "input/scaled")
    x = _State(name, image=len(shape) == 3)
    if x.image:
        x.name = g.node("Transpose", [x.name], "input/to_nchw", perm=_NHWC_TO_NCHW)
    extra: list[Any] = []
    for layer in model.layers:
        _add_layer(g, x, layer)
        if layer_outputs:
            out_shape = [BATCH_AXIS, *layer.output_shape]
            src = x.name
            if x.image:
                src = g.node("Transpose", [src], f"{layer.name}/nhwc", perm=_NCHW_TO_NHWC)
            out = g.node("Identity", [src], f"{LAYER_OUTPUT_PREFIX}{layer.name}")
            extra.append(helper.make_tensor_value_info(out, TP.FLOAT, out_shape))
    if x.image:
        x.name = g.node("Transpose", [x.name], "output/to_nhwc", perm=_NCHW_TO_NHWC)
    g.nodes.append(helper.make_node("Identity", [x.name], [OUTPUT_NAME], name=OUTPUT_NAME))
    elem = TP.UINT8 if input_dtype == "uint8" else TP.FLOAT
    graph = helper.make_graph(
        g.nodes, str(model.name),
        [helper.make_tensor_value_info(INPUT_NAME, elem, [BATCH_AXIS, *shape])],
        [helper.make_tensor_value_info(OUTPUT_NAME, TP.FLOAT,
                                       [BATCH_AXIS, *model.output_shape]), *extra],
        initializer=g.initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cnnlab", producer_version=_version())
    proto.ir_version = IR_VERSION
    meta = {
        "class_names": json.dumps(getattr(model, "class_names", None)),
        "preprocessing": json.dumps(getattr(model, "preprocessing", None)),
        "input_layout": "NHWC",
        "input_scale": "float input; 8-bit pixels scaled by float32(1/255) first"
        if input_dtype == "float32" else "uint8 pixels, scaled by float32(1/255) in the graph",
    }
    helper.set_model_props(proto, meta)
    return proto


def export_onnx(model: Any, path: str | Path, *, layer_outputs: bool = False,
                input_dtype: str = "float32") -> Path:
    """Write ``model`` as an ONNX file at ``path``, atomically; returns the path.

    See :func:`build_onnx` for the arguments and the module docstring for the
    graph. The file is checked with ``onnx.checker`` before it is written.

    >>> from cnnlab.zoo import seed_model
    >>> export_onnx(seed_model(seed=0), "seed.onnx")      # doctest: +SKIP
    PosixPath('seed.onnx')
    """
    onnx = _import_onnx()
    proto = build_onnx(model, layer_outputs=layer_outputs, input_dtype=input_dtype)
    onnx.checker.check_model(proto, full_check=True)
    return atomic_write_bytes(path, proto.SerializeToString())
