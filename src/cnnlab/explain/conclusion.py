"""The slides' conclusion, measured on a model: parameter sharing, sparse interactions,
equivariance to shifts.

* :func:`parameter_sharing`: each layer's parameter count beside that of a
  dense layer connecting the same input and output maps,
  ``(H_in W_in C_in) (H_out W_out C_out) + H_out W_out C_out``.
* :func:`receptive_fields`: the input pixels one unit of each convolution or
  pooling layer can see (the "receptive field"), computed from the kernel
  sizes, strides and paddings: a unit at ``o`` of a layer with kernel ``k``,
  stride ``s`` and leading padding ``p`` reads inputs ``o s - p .. o s - p + k - 1``;
  composed down to the input. :func:`influence` gives the pixels whose
  gradient is non-zero for one image (a subset: ReLU and max pooling switch
  paths off).
* :func:`equivariance`: shift the input by ``k`` pixels (zero fill). A
  stride-1 convolution's maps shift by exactly ``k`` wherever the receptive
  fields stay inside the image; after pooling with total stride ``J`` the maps
  shift by ``k / J`` when ``J`` divides ``k``, and only approximately
  otherwise. :func:`shift_predictions` measures the network's prediction
  under shifts.

>>> from cnnlab import zoo
>>> rows = parameter_sharing(zoo.seed_model(seed=0))
>>> rows[0]["layer"], rows[0]["params"], rows[0]["dense_params"]
('conv2d', 80, 9847040)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.explain._common import as_batch, with_weights

SPATIAL = ("Conv2D", "MaxPooling2D", "AveragePooling2D")


def parameter_sharing(model: Any) -> list[dict[str, Any]]:
    """One row per layer with weights: ``layer``, ``kind``, ``input_shape``,
    ``output_shape``, ``params`` (its own) and ``dense_params``: a dense layer
    from every input value to every output value, with one bias per output
    (for a ``Dense`` layer, its own count). ``ratio = dense_params / params``.
    """
    rows = []
    for layer in model.layers:
        if not layer.weights:
            continue
        n_in = int(np.prod(layer.input_shape))
        n_out = int(np.prod(layer.output_shape))
        params = int(layer.count_params())
        dense = params if layer.kind == "Dense" else n_in * n_out + n_out
        rows.append({"layer": str(layer.name), "kind": layer.kind,
                     "input_shape": tuple(int(d) for d in layer.input_shape),
                     "output_shape": tuple(int(d) for d in layer.output_shape),
                     "params": params, "dense_params": dense, "ratio": dense / params})
    return rows


def _geometry(layer: Any) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel, strides, leading pads) of a spatial layer, per axis."""
    if layer.kind == "Conv2D":
        kernel = tuple(layer.kernel_size)
        pads = (layer.pads[0][0], layer.pads[1][0])
    else:
        kernel = tuple(layer.pool_size)
        if getattr(layer, "padding", "valid") == "same":
            from cnnlab.ops.padding import resolve_padding

            p = resolve_padding("same", kernel, tuple(layer.strides), layer.input_shape[:2])
            pads = (p[0][0], p[1][0])
        else:
            pads = (0, 0)
    return kernel, tuple(layer.strides), pads  # type: ignore[return-value]


def _check_supported(model: Any) -> None:
    for layer in model.layers:
        if layer.kind in SPATIAL:
            continue
        if len(getattr(layer, "output_shape", ())) == 3 and layer.kind not in (
                "Dropout", "Activation", "BatchNormalization"):
            raise InvalidArgumentError(
                f"layer {layer.name!r} ({layer.kind}) changes the image's geometry in a way the "
                "receptive-field computation does not model")


def unit_box(model: Any, layer: str, position: Sequence[int]) -> tuple[int, int, int, int]:
    """The input rows ``r0..r1`` and columns ``c0..c1`` (inclusive, unclipped: they may
    lie outside the image, in the padding) that unit ``position = (i, j)`` of ``layer`` reads.
    """
    _check_supported(model)
    names = [str(la.name) for la in model.layers]
    if layer not in names:
        raise InvalidArgumentError(f"no layer named {layer!r}; the layers are {', '.join(names)}")
    stop = names.index(layer)
    if model.layers[stop].kind not in SPATIAL:
        raise InvalidArgumentError(f"layer {layer!r} is not a convolution or pooling layer")
    (r0, r1), (c0, c1) = (position[0], position[0]), (position[1], position[1])
    for la in model.layers[stop::-1]:
        if la.kind not in SPATIAL:
            continue
        (kh, kw), (sh, sw), (ph, pw) = _geometry(la)
        r0, r1 = r0 * sh - ph, r1 * sh - ph + kh - 1
        c0, c1 = c0 * sw - pw, c1 * sw - pw + kw - 1
    return int(r0), int(r1), int(c0), int(c1)


def receptive_fields(model: Any, position: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """The receptive field of one unit of every convolution and pooling layer.

    The unit is the one nearest ``position`` (in input pixels; default the
    image's centre) in each layer's grid. Each row holds ``layer``, ``kind``,
    ``unit`` (its ``(i, j)``), ``box`` ``(r0, r1, c0, c1)`` clipped to the
    image, ``size`` ``(rows, cols)`` unclipped, and ``jump`` (the layer's total
    stride: neighbouring units' fields are this many input pixels apart).
    """
    _check_supported(model)
    h, w = int(model.input_shape[0]), int(model.input_shape[1])
    py, px = (h / 2, w / 2) if position is None else (float(position[0]), float(position[1]))
    rows = []
    jump = [1, 1]
    for la in model.layers:
        if la.kind not in SPATIAL:
            continue
        _, strides, _ = _geometry(la)
        jump = [jump[0] * strides[0], jump[1] * strides[1]]
        oh, ow = int(la.output_shape[0]), int(la.output_shape[1])
        # the unit whose field's centre is nearest the position
        best = None
        for i in range(oh):
            r0, r1, _, _ = unit_box(model, str(la.name), (i, 0))
            d = abs((r0 + r1) / 2 - (py - 0.5))
            if best is None or d < best[0]:
                best = (d, i)
        bi = best[1] if best else 0
        best = None
        for j in range(ow):
            _, _, c0, c1 = unit_box(model, str(la.name), (0, j))
            d = abs((c0 + c1) / 2 - (px - 0.5))
            if best is None or d < best[0]:
                best = (d, j)
        bj = best[1] if best else 0
        r0, r1, c0, c1 = unit_box(model, str(la.name), (bi, bj))
        rows.append({"layer": str(la.name), "kind": la.kind, "unit": (bi, bj),
                     "box": (max(r0, 0), min(r1, h - 1), max(c0, 0), min(c1, w - 1)),
                     "size": (r1 - r0 + 1, c1 - c0 + 1), "jump": tuple(jump)})
    return rows


def influence(model: Any, x: Any, layer: str, position: Sequence[int]) -> np.ndarray:
    """``|d (sum over channels of unit position of layer) / d x|`` summed over the
    input's channels, ``(H, W)``: the pixels that move that unit for this image.

    The gradient is taken on the model cut after ``layer`` (the objective is
    the sum of that unit's channels), so it is zero outside :func:`unit_box`.
    """
    xb, _ = as_batch(model, x)
    if len(xb) != 1:
        raise InvalidArgumentError("influence takes one image")
    names = [str(la.name) for la in model.layers]
    stop = names.index(layer) if layer in names else -1
    if stop < 0:
        raise InvalidArgumentError(f"no layer named {layer!r}")
    layers = with_weights(model, [None] * len(model.layers)).layers[: stop + 1]
    out = xb
    for la in layers:
        out = la.forward(out, True)
    g = np.zeros_like(out)
    g[0, int(position[0]), int(position[1]), :] = 1  # the unit's channel sum
    for la in reversed(layers):
        la.need_input_grad = True
        g = la.backward(g)
    return np.abs(np.asarray(g[0], dtype=np.float64)).sum(axis=-1)


# --------------------------------------------------------------------------- equivariance
def shift_image(x: np.ndarray, dy: int, dx: int, fill: float = 0.0) -> np.ndarray:
    """Images ``(N, H, W, C)`` moved down by ``dy`` and right by ``dx`` pixels
    (negative: up, left); the uncovered border is ``fill``.

    >>> shift_image(np.arange(4.0).reshape(1, 1, 4, 1), 0, 1)[0, 0, :, 0].tolist()
    [0.0, 0.0, 1.0, 2.0]
    """
    out = np.full_like(x, fill)
    h, w = x.shape[1:3]
    src_r = slice(max(0, -dy), min(h, h - dy))
    dst_r = slice(max(0, dy), min(h, h + dy))
    src_c = slice(max(0, -dx), min(w, w - dx))
    dst_c = slice(max(0, dx), min(w, w + dx))
    out[:, dst_r, dst_c] = x[:, src_r, src_c]
    return out


def _layer_outputs(model: Any, xb: np.ndarray) -> list[np.ndarray]:
    out, outs = xb, []
    for la in model.layers:
        out = la.forward(out, False)
        outs.append(out)
    return outs


def equivariance(model: Any, x: Any, shifts: Iterable[int] = range(1, 5),
                 axis: str = "x") -> list[dict[str, Any]]:
    """How each convolution and pooling layer's maps move when the image moves.

    For each layer (total stride ``J``) and shift ``k`` (pixels right for
    ``axis="x"``, down for ``"y"``; zero fill), the maps of the shifted image
    ``y'`` are compared with the maps of the image ``y`` moved by ``m = round(k / J)``
    units, on the units whose receptive field lies inside the image in both
    (away from the borders): ``error = max |y'[o] - y[o - m]| / max |y|``.

    Returns one row per (layer, shift): ``layer``, ``kind``, ``jump`` (J),
    ``shift`` (k), ``moved`` (m), ``exact`` (``k % J == 0``: equivariance is
    exact there, the error is rounding), ``units`` compared, ``error``.
    """
    xb, _ = as_batch(model, x)
    if axis not in ("x", "y"):
        raise InvalidArgumentError(f"axis must be 'x' or 'y', got {axis!r}")
    _check_supported(model)
    base = _layer_outputs(model, xb)
    h, w = xb.shape[1:3]
    size = w if axis == "x" else h
    rows = []
    jump = 1
    shift_list = [int(k) for k in shifts]
    moved_outs = {k: _layer_outputs(model, shift_image(xb, 0 if axis == "x" else k,
                                                       k if axis == "x" else 0))
                  for k in shift_list}
    for li, la in enumerate(model.layers):
        if la.kind not in SPATIAL:
            continue
        _, strides, _ = _geometry(la)
        jump *= strides[1] if axis == "x" else strides[0]
        y = base[li]
        n_units = y.shape[2] if axis == "x" else y.shape[1]
        # each unit's field along the axis (unclipped)
        fields = []
        for o in range(n_units):
            r0, r1, c0, c1 = unit_box(model, str(la.name), (0, o) if axis == "x" else (o, 0))
            fields.append((c0, c1) if axis == "x" else (r0, r1))
        scale = float(np.abs(y).max()) or 1.0
        for k in shift_list:
            m = int(round(k / jump))
            lo, hi = max(k, 0), size - 1 + min(k, 0)
            ok = [o for o in range(n_units)
                  if lo <= fields[o][0] and fields[o][1] <= hi and 0 <= o - m < n_units
                  and 0 <= fields[o - m][0] and fields[o - m][1] <= size - 1]
            y2 = moved_outs[k][li]
            if ok:
                idx = np.array(ok)
                if axis == "x":
                    diff = y2[:, :, idx] - y[:, :, idx - m]
                else:
                    diff = y2[:, idx] - y[:, idx - m]
                err = float(np.abs(diff).max()) / scale
            else:
                err = float("nan")
            rows.append({"layer": str(la.name), "kind": la.kind, "jump": jump, "shift": k,
                         "moved": m, "exact": k % jump == 0, "units": len(ok), "error": err})
    return rows


def shift_predictions(model: Any, x: Any, label: int,
                      shifts: Iterable[int] = range(-6, 7)) -> dict[str, np.ndarray]:
    """The model's answer for one image moved by every ``(dy, dx)`` in ``shifts x shifts``.

    Returns ``shifts`` (S,), ``probability`` (S, S) of class ``label`` and
    ``predicted`` (S, S) classes, rows ``dy``, columns ``dx``; one batched
    ``predict`` call.
    """
    xb, _ = as_batch(model, x)
    if len(xb) != 1:
        raise InvalidArgumentError("shift_predictions takes one image")
    s = [int(k) for k in shifts]
    batch = np.concatenate([shift_image(xb, dy, dx) for dy in s for dx in s])
    probs = np.asarray(model.predict(batch)).reshape(len(s), len(s), -1)
    return {"shifts": np.array(s), "probability": probs[:, :, int(label)],
            "predicted": probs.argmax(axis=-1)}
