"""Open one number of a feature map: the window, the kernel, the products, the sum.

The demo's "explain a pixel" panel. For an output pixel ``(i, j)`` of filter
``co`` of a :class:`~cnnlab.layers.Conv2D` layer (the slides' formula, as
:func:`cnnlab.ops.conv.conv2d_forward_reference` computes it)::

    Z[i, j, co] = b[co] + sum_{a, b, ci} Xp[i*s_h + a, j*s_w + b, ci] * F[a, b, ci, co]
    O[i, j, co] = activation(Z[i, j, ...])

where ``Xp`` is the layer's input padded by the layer's rule
(:func:`cnnlab.ops.padding.resolve_padding`; Keras's "same" puts the odd pad
at the bottom/right, so the slides' 2x2 "same" layer reads zeros in its last
row and column). Every term is recomputed in float64 from the model's own
(float32) numbers, and the float64 result of the reference implementation is
returned beside the value the model computed, with their difference.

For pooling, the window of one channel and its maximum (the first maximum in
row-major window order wins a tie, as :mod:`cnnlab.ops.pooling` routes the
gradient) or its mean over the real (unpadded) pixels.

>>> import numpy as np
>>> from cnnlab import zoo
>>> model = zoo.seed_model(seed=0)
>>> x = np.random.default_rng(0).random((28, 28, 1), dtype=np.float32)
>>> e = explain_pixel(model, x, "conv2d", 27, 27, 0)
>>> e["padded"]          # the last row and column of a 2x2 'same' window are padding
[[False, True], [True, True]]
>>> abs(e["reference"]["difference"]) < 1e-6
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.ops.activations import get_activation
from cnnlab.ops.conv import conv2d_forward_reference
from cnnlab.ops.padding import pad2d

__all__ = [
    "CONV_FORMULA",
    "POOL_TIE_RULE",
    "explain_pixel",
    "explainable",
    "layer_io",
]

CONV_FORMULA = (
    "Z[i, j, co] = b[co] + sum over a, b, ci of Xp[i*sh + a, j*sw + b, ci] * F[a, b, ci, co]; "
    "O = activation(Z)"
)
POOL_TIE_RULE = (
    "the first maximum in row-major window order (top-left first) wins a tie; it is the "
    "pixel the gradient goes to"
)
REFERENCE_NOTE = (
    "recomputed in float64 from the model's numbers with the slides' reference formula "
    "(cnnlab.ops.conv.conv2d_forward_reference)"
)

_POOL_KINDS = ("MaxPooling2D", "AveragePooling2D")
_GLOBAL_KINDS = ("GlobalMaxPooling2D", "GlobalAveragePooling2D")


def explainable(layer: Any) -> bool:
    """Whether :func:`explain_pixel` opens this layer's outputs (Conv2D and every pooling)."""
    return layer.kind in ("Conv2D", *_POOL_KINDS, *_GLOBAL_KINDS)


def layer_io(model: Any, x: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Every layer's input and output for one example ``x`` ``(H, W, C)``, batch axis kept.

    One inference pass (:meth:`~cnnlab.Sequential.feature_maps`): ``inputs[i]``
    is what layer ``i`` read, ``outputs[i]`` what it wrote.
    """
    batch = np.asarray(x).reshape(1, *model.input_shape)
    outs = [o for _, o in model.feature_maps(batch)]
    ins = [model.cast_inputs(batch)] + outs[:-1]
    return ins, outs


def _find(model: Any, name: str) -> int:
    for i, layer in enumerate(model.layers):
        if str(layer.name) == name:
            return i
    names = ", ".join(str(la.name) for la in model.layers if explainable(la))
    raise InvalidArgumentError(f"no layer named {name!r}; the layers with maps are: {names}")


def _check_position(shape: tuple[int, ...], y: int, x: int, channel: int, name: str) -> None:
    h, w, c = shape
    for what, v, n in (("y", y, h), ("x", x, w), ("channel", channel, c)):
        if not 0 <= v < n:
            raise InvalidArgumentError(
                f"{what}={v} is out of range for layer '{name}': its output is {h}x{w} with "
                f"{c} channels (y in 0..{h - 1}, x in 0..{w - 1}, channel in 0..{c - 1})"
            )


def _f(v: Any) -> float:
    return float(v)


def explain_pixel(model: Any, x: np.ndarray, layer: str, y: int, xcol: int, channel: int,
                  io: tuple[list[np.ndarray], list[np.ndarray]] | None = None) -> dict[str, Any]:
    """Everything that made output pixel ``(y, xcol)`` of ``channel`` of layer ``layer``.

    Args:
        model: a built Sequential taking ``x``.
        x: one prepared example ``(H, W, C)`` (the model's input).
        layer: the layer's name (a Conv2D or a pooling layer).
        y, xcol, channel: the output pixel (row, column, map); global pooling
            layers have one pixel, ``y = xcol = 0``.
        io: :func:`layer_io`'s result for ``x``, if already computed.

    Returns a JSON-ready dict; see :func:`explain_conv` and :func:`explain_pool`.

    Raises:
        InvalidArgumentError: an unknown layer, a layer without maps, or a
            position outside the layer's output.
    """
    i = _find(model, layer)
    la = model.layers[i]
    if not explainable(la):
        names = ", ".join(str(m.name) for m in model.layers if explainable(m))
        raise InvalidArgumentError(
            f"layer '{layer}' is a {la.kind}: only Conv2D and pooling layers can be opened "
            f"({names})")
    ins, outs = io if io is not None else layer_io(model, x)
    inp, out = ins[i][0], outs[i][0]
    if la.kind in _GLOBAL_KINDS:
        _check_position((1, 1, inp.shape[-1]), y, xcol, channel, layer)
        return explain_global_pool(la, inp, float(np.asarray(out).reshape(-1)[channel]),
                                   channel)
    _check_position(tuple(out.shape), y, xcol, channel, layer)
    if la.kind == "Conv2D":
        return explain_conv(la, inp, out, y, xcol, channel)
    return explain_pool(la, inp, out, y, xcol, channel)


def _window(layer: Any, inp: np.ndarray, y: int, x: int, size: tuple[int, int],
            strides: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, list[int], list[int]]:
    """The window of ``inp`` (H, W, C) read by output ``(y, x)``, zeros where padded,
    its padding mask ``(kh, kw)``, and its rows and columns in input coordinates."""
    (t, _), (left, _) = layer.pads
    kh, kw = size
    h, w = inp.shape[:2]
    rows = [y * strides[0] + a - t for a in range(kh)]
    cols = [x * strides[1] + b - left for b in range(kw)]
    padded = np.array([[not (0 <= r < h and 0 <= c < w) for c in cols] for r in rows])
    xp = pad2d(np.asarray(inp, np.float64)[None], layer.pads)[0]
    r0, c0 = y * strides[0], x * strides[1]
    win = xp[r0 : r0 + kh, c0 : c0 + kw, :]
    return win, padded, rows, cols


def explain_conv(layer: Any, inp: np.ndarray, out: np.ndarray, y: int, x: int,
                 channel: int) -> dict[str, Any]:
    """One Conv2D output pixel, term by term (see the module's formula).

    Keys: ``window`` (kh, kw, C_in) input values (0 where padded), ``padded``
    (kh, kw) booleans, ``rows``/``cols`` (the window's input coordinates,
    outside ``0..H-1`` / ``0..W-1`` where padded), ``kernel`` (kh, kw, C_in),
    ``products`` (kh, kw, C_in), ``channel_sums`` (C_in,), ``sum``, ``bias``,
    ``preactivation`` (= sum + bias), ``activation``, ``value`` (what the model
    computed, after the activation) and ``reference`` (the float64 reference
    recomputation: ``preactivation``, ``value``, ``difference`` = value minus
    reference value).
    """
    kh, kw = layer.kernel_size
    win, padded, rows, cols = _window(layer, inp, y, x, (kh, kw), layer.strides)
    k64 = np.asarray(layer.kernel, np.float64)
    b64 = (np.asarray(layer.bias, np.float64) if layer.bias is not None
           else np.zeros(k64.shape[-1]))
    kernel = k64[:, :, :, channel]
    products = win * kernel
    channel_sums = products.sum(axis=(0, 1))
    total = float(channel_sums.sum())
    pre = total + float(b64[channel])
    # the reference implementation on this window, every filter (softmax needs them all)
    z_all = conv2d_forward_reference(win[None], k64, b64, (1, 1), ((0, 0), (0, 0)))[0, 0, 0]
    name, act, _ = get_activation(layer.activation)
    y_all = act(z_all.copy()[None])[0]
    value = _f(out[y, x, channel])
    ref_value = float(y_all[channel])
    return {
        "layer": str(layer.name),
        "type": layer.kind,
        "y": y, "x": x, "channel": channel,
        "kernel_size": [kh, kw],
        "strides": list(layer.strides),
        "padding": layer.padding if isinstance(layer.padding, str) else str(layer.padding),
        "pads": [list(p) for p in layer.pads],
        "input_shape": list(inp.shape),
        "rows": rows, "cols": cols,
        "window": win.tolist(),
        "padded": padded.tolist(),
        "kernel": kernel.tolist(),
        "products": products.tolist(),
        "channel_sums": channel_sums.tolist(),
        "sum": total,
        "bias": float(b64[channel]),
        "preactivation": pre,
        "activation": name,
        "value": value,
        "argmax": None,
        "formula": CONV_FORMULA,
        "reference": {
            "dtype": "float64",
            "method": REFERENCE_NOTE,
            "preactivation": float(z_all[channel]),
            "value": ref_value,
            "model_value": value,
            "model_dtype": str(np.asarray(out).dtype),
            "difference": value - ref_value,
        },
    }


def explain_pool(layer: Any, inp: np.ndarray, out: np.ndarray, y: int, x: int,
                 channel: int) -> dict[str, Any]:
    """One MaxPooling2D / AveragePooling2D output pixel.

    Keys: ``window`` (ph, pw, 1), the channel's values (``None`` where padded:
    padding never wins a max and never counts in a mean), ``padded``,
    ``rows``/``cols``, ``value`` (the model's), ``argmax`` (max pooling: the
    winner's ``window`` position, ``input`` position, ``value``, ``ties`` and
    the ``rule``), ``count`` (average pooling: the divisor) and ``reference``.
    """
    ph, pw = layer.pool_size
    win, padded, rows, cols = _window(layer, inp, y, x, (ph, pw), layer.strides)
    vals = win[:, :, channel]
    real = vals[~padded]
    value = _f(out[y, x, channel])
    result: dict[str, Any] = {
        "layer": str(layer.name), "type": layer.kind, "y": y, "x": x, "channel": channel,
        "kernel_size": [ph, pw], "strides": list(layer.strides), "padding": layer.padding,
        "pads": [list(p) for p in layer.pads], "input_shape": list(inp.shape),
        "rows": rows, "cols": cols,
        "window": [[[None if padded[a, b] else float(vals[a, b])] for b in range(pw)]
                   for a in range(ph)],
        "padded": padded.tolist(),
        "value": value,
        "argmax": None,
    }
    if layer.kind == "MaxPooling2D":
        masked = np.where(padded, -np.inf, vals).reshape(-1)
        k = int(np.argmax(masked))  # the first maximum in row-major order
        a, b = divmod(k, pw)
        ref = float(masked[k])
        result["argmax"] = {
            "window": [a, b], "input": [rows[a], cols[b]], "value": ref,
            "ties": int((masked == ref).sum()), "rule": POOL_TIE_RULE,
        }
        result["formula"] = "O[i, j, c] = max over the window of X (padding excluded)"
    else:
        ref = float(real.sum() / real.size)
        result["count"] = int(real.size)
        result["sum"] = float(real.sum())
        result["formula"] = ("O[i, j, c] = (sum over the window's real pixels of X) / "
                             "(their count)")
    result["reference"] = {
        "dtype": "float64", "method": "recomputed in float64 from the model's numbers",
        "value": ref, "model_value": value, "model_dtype": str(np.asarray(out).dtype),
        "difference": value - ref,
    }
    return result


def explain_global_pool(layer: Any, inp: np.ndarray, value: float,
                        channel: int) -> dict[str, Any]:
    """One channel of a GlobalMaxPooling2D / GlobalAveragePooling2D: the whole map is the
    window, ``(H, W, 1)``."""
    vals = np.asarray(inp, np.float64)[:, :, channel]
    h, w = vals.shape
    result: dict[str, Any] = {
        "layer": str(layer.name), "type": layer.kind, "y": 0, "x": 0, "channel": channel,
        "kernel_size": [h, w], "strides": [h, w], "padding": "valid", "pads": [[0, 0], [0, 0]],
        "input_shape": list(inp.shape), "rows": list(range(h)), "cols": list(range(w)),
        "window": vals[:, :, None].tolist(), "padded": np.zeros((h, w), bool).tolist(),
        "value": float(value), "argmax": None,
    }
    if layer.kind == "GlobalMaxPooling2D":
        k = int(np.argmax(vals.reshape(-1)))
        a, b = divmod(k, w)
        ref = float(vals[a, b])
        result["argmax"] = {"window": [a, b], "input": [a, b], "value": ref,
                            "ties": int((vals == ref).sum()), "rule": POOL_TIE_RULE}
    else:
        ref = float(vals.sum() / vals.size)
        result["count"] = int(vals.size)
        result["sum"] = float(vals.sum())
    result["reference"] = {"dtype": "float64", "value": ref, "model_value": float(value),
                           "method": "recomputed in float64 from the model's numbers",
                           "difference": float(value) - ref}
    return result
