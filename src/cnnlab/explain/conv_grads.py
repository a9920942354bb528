"""A convolution layer's backward pass as the slides write it, checked three ways.

For a Conv2D layer with input ``X``, filter ``F``, pre-activation ``Z`` and
output ``O = activation(Z)``, given the loss's gradient ``dL/dO``::

    dL/dZ = dL/dO * activation'(Z)                 (element-wise)
    dL/dF = correlate(X, dL/dZ)                    (valid; dL/dZ dilated by the stride)
    dL/db = sum over i, j of dL/dZ
    dL/dX = full_convolution(rot180(F), dL/dZ)     (dL/dZ padded by k - 1 on every side)

:func:`conv_gradients` recomputes these in float64 with the reference
implementations (:func:`cnnlab.ops.conv.conv2d_backward_filter_reference`,
:func:`~cnnlab.ops.conv.conv2d_backward_input_reference`) from the numbers of
:func:`cnnlab.explain.backprop` (an inference-mode pass on the model itself)
and reports how far the two agree. :func:`finite_difference` checks one entry
against a central difference of the loss computed by a float64 copy of the
model.

>>> import numpy as np
>>> from cnnlab import zoo
>>> model = zoo.small_cnn(seed=0)
>>> x = np.random.default_rng(0).random((28, 28, 1), dtype=np.float32)
>>> g = conv_gradients(model, x, 3, "conv2d", channel=0, in_channel=0)
>>> g["check"]["dF"]["max_abs_difference"] < 1e-5
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.explain.backprop import backprop
from cnnlab.ops.activations import get_activation
from cnnlab.ops.conv import (
    conv2d_backward_filter_reference,
    conv2d_backward_input_reference,
    conv2d_forward_reference,
)
from cnnlab.ops.padding import dilate2d, pad2d

__all__ = ["FORMULAS", "conv_gradients", "finite_difference", "float64_copy"]

FORMULAS = {
    "dZ": "dL/dZ = dL/dO * activation'(Z)",
    "dF": "dL/dF[a, b, ci, co] = sum over i, j of Xp[i*s + a, j*s + b, ci] * dL/dZ[i, j, co]"
          "  (correlate(X, dL/dZ))",
    "db": "dL/db[co] = sum over i, j of dL/dZ[i, j, co]",
    "dX": "dL/dX = full_convolution(rot180(F), dL/dZ): pad dL/dZ by k - 1, correlate with "
          "the filter turned by 180 degrees, summed over the filters co",
}


def _conv_index(model: Any, name: str) -> int:
    for i, layer in enumerate(model.layers):
        if str(layer.name) == name:
            if layer.kind != "Conv2D":
                raise InvalidArgumentError(
                    f"layer '{name}' is a {layer.kind}: the backward view is for Conv2D layers ("
                    + ", ".join(str(la.name) for la in model.layers if la.kind == "Conv2D") + ")")
            return i
    raise InvalidArgumentError(
        f"no layer named {name!r}; the Conv2D layers are: "
        + ", ".join(str(la.name) for la in model.layers if la.kind == "Conv2D"))


def _check_label(model: Any, label: int) -> None:
    classes = int(np.prod(model.output_shape))
    if not 0 <= label < classes:
        raise InvalidArgumentError(f"label={label} is out of range: the model has {classes} "
                                   f"classes (0..{classes - 1})")


def _diff(ours: np.ndarray, theirs: np.ndarray) -> dict[str, float]:
    d = np.abs(np.asarray(ours, np.float64) - np.asarray(theirs, np.float64))
    scale = float(np.abs(ours).max()) if np.size(ours) else 0.0
    return {"max_abs_difference": float(d.max()) if d.size else 0.0, "max_abs_value": scale}


def conv_gradients(model: Any, x: np.ndarray, label: int, layer: str, channel: int = 0,
                   in_channel: int = 0) -> dict[str, Any]:
    """The backward pass of Conv2D ``layer`` for one example and its true ``label``.

    The loss is the cross-entropy ``L = -ln p[label]``. Returns, for filter
    ``channel`` (``co``) and input channel ``in_channel`` (``ci``), as float64
    nested lists: ``X`` (the padded input's channel ``ci``) and ``padded``,
    ``dO`` and ``dZ`` (``co``'s maps), ``dZ_dilated`` (what the stride turns it
    into), ``kernel`` ``F[:, :, ci, co]`` and ``rotated`` (turned 180
    degrees), ``dF`` ``(kh, kw)``, ``db``, ``dX_filter`` (this filter's share of
    ``dL/dX[:, :, ci]``) and ``dX`` (the whole ``dL/dX[:, :, ci]``); ``check``:
    the largest difference between the float64 reference and
    :func:`~cnnlab.explain.backprop`'s gradients over the whole layer.
    """
    i = _conv_index(model, layer)
    _check_label(model, label)
    la = model.layers[i]
    kh, kw, cin, cout = la.kernel.shape
    for what, v, n in (("channel", channel, cout), ("in_channel", in_channel, cin)):
        if not 0 <= v < n:
            raise InvalidArgumentError(f"{what}={v} is out of range for layer '{layer}' "
                                       f"(0..{n - 1})")
    trace = backprop(model, np.asarray(x).reshape(1, *model.input_shape), [label])
    x64 = trace.inputs[i].astype(np.float64)
    k64 = np.asarray(la.kernel, np.float64)
    b64 = np.asarray(la.bias, np.float64) if la.bias is not None else None
    d_out = trace.output_grads[i].astype(np.float64)
    z = conv2d_forward_reference(x64, k64, b64, la.strides, la.pads)
    _, act, act_backward = get_activation(la.activation)
    o = act(z.copy())
    d_z = act_backward(d_out, o, z)
    d_f = conv2d_backward_filter_reference(x64, d_z, (kh, kw), la.strides, la.pads)
    d_b = d_z.sum(axis=(0, 1, 2))
    d_x = conv2d_backward_input_reference(d_z, k64, x64.shape[1:3], la.strides, la.pads)
    one = conv2d_backward_input_reference(
        d_z[..., channel : channel + 1], k64[:, :, in_channel : in_channel + 1,
                                             channel : channel + 1],
        x64.shape[1:3], la.strides, la.pads)
    check = {
        "dF": _diff(d_f, trace.weight_grads[i][0]),
        "dX": _diff(d_x, trace.input_grads[i]),
        "O": _diff(o, trace.outputs[i]),
    }
    if b64 is not None:
        check["db"] = _diff(d_b, trace.weight_grads[i][1])
    xpad = pad2d(x64, la.pads)[0, :, :, in_channel]
    (t, _), (left, _) = la.pads
    h, w = x64.shape[1:3]
    padded = np.ones(xpad.shape, bool)
    padded[t : t + h, left : left + w] = False
    kernel = k64[:, :, in_channel, channel]
    return {
        "layer": str(la.name), "label": int(label), "channel": int(channel),
        "in_channel": int(in_channel), "loss": float(trace.value),
        "probabilities": trace.probabilities[0].astype(np.float64).tolist(),
        "kernel_size": [kh, kw], "strides": list(la.strides),
        "pads": [list(p) for p in la.pads], "activation": la.activation or "linear",
        "channels": [int(cin), int(cout)],
        "X": xpad.tolist(), "padded": padded.tolist(),
        "Z": z[0, :, :, channel].tolist(),
        "dO": d_out[0, :, :, channel].tolist(),
        "dZ": d_z[0, :, :, channel].tolist(),
        "dZ_dilated": dilate2d(d_z[..., channel : channel + 1], la.strides)[0, :, :, 0].tolist(),
        "kernel": kernel.tolist(),
        "rotated": kernel[::-1, ::-1].tolist(),
        "dF": d_f[:, :, in_channel, channel].tolist(),
        "db": float(d_b[channel]),
        "dX_filter": one[0, :, :, 0].tolist(),
        "dX": d_x[0, :, :, in_channel].tolist(),
        "formulas": FORMULAS,
        "check": check,
    }


def float64_copy(model: Any) -> Any:
    """A float64 twin of ``model`` with the same weights (for finite differences)."""
    from cnnlab.saving import model_from_config

    config = model.get_config()
    for spec in config["layers"]:
        spec["config"]["dtype"] = "float64"
    twin = model_from_config(config)
    twin.set_weights(model.get_weights())
    return twin


def _loss_from(model: Any, start: int, inp: np.ndarray, label: int) -> float:
    out = inp
    for layer in model.layers[start:]:
        out = layer.forward(out, False)
    p = float(np.asarray(out, np.float64).reshape(-1)[label])
    return -float(np.log(max(p, np.finfo(np.float64).tiny)))


def finite_difference(model64: Any, x: np.ndarray, label: int, layer: str, param: str,
                      index: list[int], eps: float = 1e-6) -> dict[str, Any]:
    """One gradient entry of ``L = -ln p[label]``: analytic (backprop on the float64
    twin) against the central difference ``(L(t + eps) - L(t - eps)) / (2 eps)``.

    ``param`` is ``"kernel"`` (``index`` = [a, b, ci, co]), ``"bias"`` ([co]) or
    ``"input"`` (the layer's input, [row, col, ci]).
    """
    i = _conv_index(model64, layer)
    _check_label(model64, label)
    la = model64.layers[i]
    x = np.asarray(x, np.float64).reshape(1, *model64.input_shape)
    ins = [x]
    for layer_ in model64.layers[:i]:
        ins.append(layer_.forward(ins[-1], False))
    inp = ins[-1]
    if param == "kernel":
        target = la.kernel
    elif param == "bias":
        if la.bias is None:
            raise InvalidArgumentError(f"layer '{layer}' has no bias")
        target = la.bias
    elif param == "input":
        target = inp[0]
    else:
        raise InvalidArgumentError(f"param must be 'kernel', 'bias' or 'input', got {param!r}")
    idx = tuple(int(v) for v in index)
    if len(idx) != target.ndim or any(not 0 <= v < n for v, n in zip(idx, target.shape,
                                                                       strict=False)):
        raise InvalidArgumentError(
            f"index {list(index)} does not fit the {param} of shape {list(target.shape)}")
    trace = backprop(model64, x, [label])
    if param == "kernel":
        analytic = float(trace.weight_grads[i][0][idx])
    elif param == "bias":
        analytic = float(trace.weight_grads[i][1][idx])
    else:
        analytic = float(trace.input_grads[i][0][idx])
    saved = float(target[idx])
    try:
        target[idx] = saved + eps
        plus = _loss_from(model64, i, inp, label)
        target[idx] = saved - eps
        minus = _loss_from(model64, i, inp, label)
    finally:
        target[idx] = saved
    numeric = (plus - minus) / (2 * eps)
    return {
        "layer": str(la.name), "param": param, "index": list(idx), "label": int(label),
        "eps": eps, "analytic": analytic, "numeric": numeric,
        "difference": analytic - numeric, "loss_plus": plus, "loss_minus": minus,
        "dtype": "float64",
        "formula": "numeric = (L(t + eps) - L(t - eps)) / (2 eps), every number float64",
    }
