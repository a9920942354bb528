"""Grad-CAM (Selvaraju et al., "Grad-CAM: Visual Explanations from Deep Networks via
Gradient-based Localization", 2017).

For class ``c`` with score ``y^c`` (the logit before the softmax) and the
``K`` maps ``A^k`` (``h x w``) of a convolution layer (the last one by
default, after its activation):

    alpha_k^c = (1 / (h w)) sum_ij d y^c / d A^k_ij      (global-average-pooled gradients)
    L^c       = ReLU( sum_k alpha_k^c A^k )               (h x w)

``L^c`` is then resized to the input's ``H x W`` bilinearly with half-pixel
centres (:func:`cnnlab.explain.resize_bilinear`, PyTorch's
``interpolate(mode="bilinear", align_corners=False)``), as the paper's code
resizes it. The stretch spans the whole image: for a network of ``valid``
convolutions the last layer's map covers a centred part of the input, so the
map is an approximate location (Grad-CAM's, not cnnlab's, approximation).

>>> import numpy as np
>>> from cnnlab import zoo
>>> model = zoo.small_cnn(seed=0)
>>> g = grad_cam(model, np.zeros((28, 28), np.uint8), 3)
>>> g.map.shape, g.raw.shape, g.details["layer"]
((28, 28), (26, 26), 'conv2d')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.explain._common import (
    Attribution,
    as_batch,
    class_labels,
    default_objective,
    resize_bilinear,
    unbatch,
)
from cnnlab.explain.backprop import backprop


def last_conv_layer(model: Any) -> str:
    """The name of the model's last ``Conv2D`` layer (Grad-CAM's default)."""
    names = [str(layer.name) for layer in model.layers if layer.kind == "Conv2D"]
    if not names:
        raise InvalidArgumentError("the model has no Conv2D layer for Grad-CAM")
    return names[-1]


def grad_cam(model: Any, x: Any, label: Any = None, layer: str | None = None,
             objective: str | None = None) -> Attribution:
    """Grad-CAM of class ``label`` on ``layer`` (default: the last ``Conv2D``).

    Args:
        model: a built model taking images.
        x: one image or a batch (as :func:`cnnlab.explain.saliency`).
        label: one int, one per image, or ``None`` for the predicted class.
        layer: the name of a layer with ``(h, w, K)`` maps (a convolution or pooling).
        objective: ``y^c``: ``"logit"`` (default for a softmax end, the paper's
            choice) or ``"probability"`` (default otherwise).

    Returns:
        An :class:`~cnnlab.explain.Attribution`: ``map`` the resized map
        ``(N, H, W)``; ``raw`` ``L^c`` at the layer's resolution ``(N, h, w)``;
        ``details`` holds ``layer`` and ``weights`` (``alpha``, ``(N, K)``).
    """
    xb, single = as_batch(model, x)
    labels, probs = class_labels(model, xb, label)
    name = last_conv_layer(model) if layer is None else layer
    objective = objective or default_objective(model)
    trace = backprop(model, xb, labels, objective)
    i = trace.index(name)
    maps = np.asarray(trace.outputs[i], dtype=np.float64)
    if maps.ndim != 4:
        raise InvalidArgumentError(
            f"layer {name!r} has outputs of shape {maps.shape[1:]}; Grad-CAM needs (h, w, K) maps")
    grads = np.asarray(trace.output_grads[i], dtype=np.float64)
    alpha = grads.mean(axis=(1, 2))  # (N, K)
    cam = np.maximum(np.einsum("nhwk,nk->nhw", maps, alpha), 0.0)
    big = resize_bilinear(cam, xb.shape[1:3])
    return Attribution(method="grad_cam", map=unbatch(big, single), raw=unbatch(cam, single),
                       labels=labels, probabilities=probs, objective=objective,
                       details={"layer": name, "weights": unbatch(alpha, single)})
