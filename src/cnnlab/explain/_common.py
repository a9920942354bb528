"""What the attribution methods share: the batch an image becomes, the class to explain,
the objective, rank statistics, bilinear resizing, and a model with other weights.

None of it changes a model: :func:`with_weights` returns a view that shares
nothing writable with the original.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.explain.backprop import _is_softmax_end


@dataclass
class Attribution:
    """One attribution method's answer for a batch (or one image).

    ``map`` holds one non-negative or signed score per input pixel, ``(N, H, W)``
    (``(H, W)`` when one image was given). What ``raw`` holds depends on the
    method (its docstring says): the input gradient for saliency, the
    low-resolution map for Grad-CAM, the grid of probability drops for
    occlusion. ``labels`` are the classes explained, ``probabilities`` the
    model's output for the unchanged input ``(N, K)``.
    """

    method: str
    map: np.ndarray
    raw: np.ndarray
    labels: np.ndarray
    probabilities: np.ndarray
    objective: str
    details: dict[str, Any] = field(default_factory=dict)


def as_batch(model: Any, x: Any) -> tuple[np.ndarray, bool]:
    """``x`` as the model's float input batch ``(N, H, W, C)`` and whether it was one image.

    One image is ``model.input_shape`` (or ``(H, W)`` for a one-channel model);
    anything else goes through ``model.check_inputs`` as a batch. ``uint8``
    pixels are scaled to [0, 1] as ``model.predict`` scales them.
    """
    if not getattr(model, "built", False):
        raise InvalidArgumentError("build the model before explaining it")
    shape = tuple(int(d) for d in model.input_shape)
    if len(shape) != 3:
        raise InvalidArgumentError(
            f"the model takes inputs of shape {shape}; attributions need images (H, W, C)")
    arr = np.asarray(x)
    single = arr.shape == shape or (shape[2] == 1 and arr.shape == shape[:2])
    if single:
        arr = arr.reshape(1, *shape)
    if arr.ndim not in (3, 4):
        raise ShapeError(
            f"x has shape {arr.shape}; expected one image {shape} or a batch (N, {shape[0]}, "
            f"{shape[1]}, {shape[2]})")
    xb = model.cast_inputs(model.check_inputs(arr))
    if len(xb) == 0:
        raise InvalidArgumentError("x holds no image")
    return np.ascontiguousarray(xb), single


def class_labels(model: Any, xb: np.ndarray, label: Any) -> tuple[np.ndarray, np.ndarray]:
    """The class to explain per image (``None``: the model's prediction) and the
    model's probabilities ``(N, K)`` for ``xb``."""
    probs = np.asarray(model.predict(xb)).reshape(len(xb), -1)
    k = probs.shape[1]
    if label is None:
        return probs.argmax(axis=1).astype(np.int64), probs
    lab = np.asarray(label)
    if lab.ndim == 0:
        lab = np.full(len(xb), lab)
    if lab.shape != (len(xb),) or lab.dtype.kind not in "iu":
        raise InvalidArgumentError(
            f"label must be one class (an int) or {len(xb)} ints, got {np.asarray(label)!r}")
    if lab.size and (lab.min() < 0 or lab.max() >= k):
        raise InvalidArgumentError(f"label must lie in 0..{k - 1}, got {lab.tolist()}")
    return lab.astype(np.int64), probs


def default_objective(model: Any) -> str:
    """``"logit"`` (the class score before the softmax) for a model that ends in
    softmax, ``"probability"`` otherwise."""
    return "logit" if _is_softmax_end(model.layers[-1]) else "probability"


def unbatch(a: np.ndarray, single: bool) -> np.ndarray:
    return a[0] if single else a


# --------------------------------------------------------------------------- ranks
def rankdata(a: Any) -> np.ndarray:
    """Ranks 1..n of the values of ``a`` (flattened), ties given their average rank.

    >>> rankdata([10, 30, 20, 20]).tolist()
    [1.0, 4.0, 2.5, 2.5]
    """
    v = np.ravel(np.asarray(a, dtype=np.float64))
    order = np.argsort(v, kind="mergesort")
    s = v[order]
    first = np.r_[True, s[1:] != s[:-1]] if len(s) else np.zeros(0, bool)
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], len(s)]
    average = (starts + ends + 1) / 2.0  # mean of the 1-based ranks starts+1 .. ends
    ranks = np.empty(len(v))
    ranks[order] = average[group]
    return ranks


def spearman(a: Any, b: Any) -> float:
    """Spearman's rank correlation of two equally sized arrays (flattened): the
    Pearson correlation of their ranks (:func:`rankdata`, ties averaged).

    ``nan`` when either array is constant (its ranks have no spread).

    >>> spearman([1, 2, 3, 4], [10, 20, 30, 40])
    1.0
    >>> spearman([1, 2, 3, 4], [4, 3, 2, 1])
    -1.0
    """
    ra, rb = rankdata(a), rankdata(b)
    if ra.shape != rb.shape:
        raise ShapeError(f"spearman: {ra.size} values against {rb.size}")
    ra -= ra.mean()
    rb -= rb.mean()
    den = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    if den == 0.0:
        return float("nan")
    return float(np.clip((ra * rb).sum() / den, -1.0, 1.0))


# --------------------------------------------------------------------------- resizing
def _bilinear_axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of half-pixel-centre bilinear resizing on one axis:
    ``src = (i + 0.5) * n_in / n_out - 0.5`` clamped to ``[0, n_in - 1]``."""
    src = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    src = np.clip(src, 0.0, n_in - 1)
    lo = np.floor(src).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    return lo, hi, src - lo


def resize_bilinear(maps: Any, size: Sequence[int]) -> np.ndarray:
    """Resize ``(N, h, w)`` maps to ``(N, H, W)`` bilinearly with half-pixel centres.

    Output pixel ``i`` samples the input at ``(i + 0.5) * h / H - 0.5``
    (clamped to the edge), interpolating the two nearest input pixels on each
    axis: PyTorch's ``interpolate(mode="bilinear", align_corners=False)``,
    OpenCV's ``resize`` and Pillow's bilinear upsampling.

    >>> resize_bilinear(np.array([[[0.0, 1.0]]]), (1, 4)).round(2).tolist()
    [[[0.0, 0.25, 0.75, 1.0]]]
    """
    m = np.asarray(maps, dtype=np.float64)
    if m.ndim != 3:
        raise ShapeError(f"resize_bilinear expects (N, h, w) maps, got shape {m.shape}")
    big_h, big_w = int(size[0]), int(size[1])
    r0, r1, fr = _bilinear_axis(m.shape[1], big_h)
    c0, c1, fc = _bilinear_axis(m.shape[2], big_w)
    rows = m[:, r0, :] * (1 - fr)[None, :, None] + m[:, r1, :] * fr[None, :, None]
    return rows[:, :, c0] * (1 - fc)[None, None, :] + rows[:, :, c1] * fc[None, None, :]


# --------------------------------------------------------------------------- other weights
def with_weights(model: Any, new_weights: Sequence[Sequence[Any] | None]) -> Any:
    """A view of ``model`` whose layer ``i`` uses ``new_weights[i]`` (``None``: the
    model's own arrays, shared read-only in practice).

    The view is a shallow copy of the model and of each layer, with fresh
    caches; the original model and its arrays are never written.
    """
    if len(new_weights) != len(model.layers):
        raise InvalidArgumentError(
            f"{len(new_weights)} weight lists for {len(model.layers)} layers")
    view = copy.copy(model)
    layers = []
    for layer, ws in zip(model.layers, new_weights, strict=True):
        c = copy.copy(layer)
        if ws is not None:
            c.weights = [np.asarray(w, dtype=w0.dtype).copy()
                         for w, w0 in zip(ws, layer.weights, strict=True)]
        c.grads = [np.zeros_like(w) for w in c.trainable_weights]
        for attr in ("_cache", "_mask"):
            if hasattr(c, attr):
                setattr(c, attr, None)
        if isinstance(getattr(c, "_filter_cache", None), dict):
            c._filter_cache = {}
        layers.append(c)
    view.layers = layers
    return view
