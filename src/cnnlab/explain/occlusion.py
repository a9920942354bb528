"""Occlusion (Zeiler and Fergus, "Visualizing and Understanding Convolutional
Networks", 2014): cover part of the image, see how much the class's
probability falls.

A ``patch x patch`` square filled with ``fill`` slides over the image with
step ``stride``, top-left corners at ``(r * stride, s * stride)`` for every
position where the square fits. For each position

    raw[r, s] = p_c(x) - p_c(x with the square at (r, s) covered)

(positive: covering that part hurts class ``c``). All covered copies of an
image go through ``model.predict`` in batches of ``batch_size``. The per-pixel
``map`` averages ``raw`` over the squares that cover each pixel (0 where none
does).

>>> import numpy as np
>>> from cnnlab import zoo
>>> model = zoo.small_cnn(seed=0)
>>> o = occlusion(model, np.zeros((28, 28), np.uint8), 3, patch=4, stride=4)
>>> o.raw.shape, o.map.shape
((7, 7), (28, 28))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.explain._common import Attribution, as_batch, class_labels, unbatch
from cnnlab.validation import check_positive_int


def occlusion_positions(size: tuple[int, int], patch: int, stride: int) -> tuple[list[int], ...]:
    """The top-left rows and columns of the patches: ``0, stride, ...`` while the patch fits."""
    h, w = size
    if patch > min(h, w):
        raise InvalidArgumentError(f"patch {patch} is larger than the {h}x{w} image")
    return list(range(0, h - patch + 1, stride)), list(range(0, w - patch + 1, stride))


def occlusion(model: Any, x: Any, label: Any = None, patch: int = 4, stride: int = 2,
              fill: float = 0.0, batch_size: int = 256) -> Attribution:
    """The drop in class ``label``'s probability when a square patch hides each part.

    Args:
        model: a built model taking images.
        x: one image or a batch (as :func:`cnnlab.explain.saliency`).
        label: one int, one per image, or ``None`` for the predicted class.
        patch: the square's side in pixels.
        stride: the step between squares.
        fill: the value put under the square, in the model's input units (0.0:
            black, MNIST's background, after uint8 pixels are scaled to [0, 1]).
        batch_size: covered images per ``model.predict`` call.

    Returns:
        An :class:`~cnnlab.explain.Attribution` (objective ``"probability"``):
        ``raw`` the drops ``(N, rows, cols)``, ``map`` their per-pixel average
        ``(N, H, W)``; ``details`` holds ``rows`` and ``cols`` (the corners),
        ``patch``, ``stride``, ``fill``.
    """
    patch = check_positive_int(patch, "patch")
    stride = check_positive_int(stride, "stride")
    batch_size = check_positive_int(batch_size, "batch_size")
    if not np.isfinite(fill):
        raise InvalidArgumentError(f"fill must be a finite number, got {fill!r}")
    xb, single = as_batch(model, x)
    labels, probs = class_labels(model, xb, label)
    n, h, w, _ = xb.shape
    rows, cols = occlusion_positions((h, w), patch, stride)
    corners = [(r, c) for r in rows for c in cols]
    drops = np.empty((n, len(rows), len(cols)))
    maps = np.zeros((n, h, w))
    cover = np.zeros((h, w))
    for r, c in corners:
        cover[r:r + patch, c:c + patch] += 1
    for k in range(n):
        base = probs[k, labels[k]]
        got = np.empty(len(corners))
        for lo in range(0, len(corners), batch_size):
            chunk = corners[lo:lo + batch_size]
            batch = np.repeat(xb[k:k + 1], len(chunk), axis=0)
            for j, (r, c) in enumerate(chunk):
                batch[j, r:r + patch, c:c + patch, :] = fill
            p = np.asarray(model.predict(batch, batch_size=batch_size)).reshape(len(chunk), -1)
            got[lo:lo + len(chunk)] = p[:, labels[k]]
        drops[k] = (base - got).reshape(len(rows), len(cols))
        for (r, c), d in zip(corners, base - got, strict=True):
            maps[k, r:r + patch, c:c + patch] += d
    maps = np.divide(maps, cover, out=np.zeros_like(maps), where=cover > 0)
    return Attribution(method="occlusion", map=unbatch(maps, single), raw=unbatch(drops, single),
                       labels=labels, probabilities=probs, objective="probability",
                       details={"rows": rows, "cols": cols, "patch": patch, "stride": stride,
                                "fill": float(fill)})
