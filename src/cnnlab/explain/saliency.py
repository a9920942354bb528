"""Input-gradient saliency (Simonyan, Vedaldi and Zisserman, 2014).

The gradient of one class's score with respect to the input pixels, computed
by :func:`cnnlab.explain.backprop` (the first layer's ``dL/dX``, asked for on
purpose: training never needs it):

    raw[n, i, j, c] = d objective(x_n) / d x_n[i, j, c]
    map[n, i, j]    = max_c |raw[n, i, j, c]|

The objective is the class score before the softmax, ``z_c`` (``"logit"``),
for a model that ends in softmax, as in the paper: the probability ``p_c``
also falls when another class's score rises, which mixes in every other
class. A model without a softmax end uses ``p_c`` (``"probability"``). Pass
``objective=`` to choose (``"loss"`` is the cross-entropy of the label).

>>> import numpy as np
>>> from cnnlab import zoo
>>> model = zoo.small_cnn(seed=0)
>>> s = saliency(model, np.zeros((28, 28), np.uint8), 3)
>>> s.map.shape, s.raw.shape, s.objective
((28, 28), (28, 28, 1), 'logit')
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.explain._common import (
    Attribution,
    as_batch,
    class_labels,
    default_objective,
    unbatch,
)
from cnnlab.explain.backprop import backprop


def saliency(model: Any, x: Any, label: Any = None, objective: str | None = None) -> Attribution:
    """Input-gradient saliency of class ``label`` for one image or a batch.

    Args:
        model: a built model taking images ``(H, W, C)``.
        x: one image (``model.input_shape``, or ``(H, W)`` for one channel) or a
            batch ``(N, H, W[, C])``; ``uint8`` pixels are scaled to [0, 1].
        label: the class to explain: one int, one per image, or ``None`` for
            each image's predicted class.
        objective: ``"logit"`` (default for a softmax end), ``"probability"``
            (default otherwise) or ``"loss"``.

    Returns:
        An :class:`~cnnlab.explain.Attribution`: ``map`` is ``max_c |raw|``
        ``(N, H, W)``; ``raw`` the signed gradient ``(N, H, W, C)`` (without the
        batch axis for one image).
    """
    xb, single = as_batch(model, x)
    labels, probs = class_labels(model, xb, label)
    objective = objective or default_objective(model)
    trace = backprop(model, xb, labels, objective)
    raw = np.asarray(trace.input_grad, dtype=np.float64)
    smap = np.abs(raw).max(axis=-1)
    return Attribution(method="saliency", map=unbatch(smap, single), raw=unbatch(raw, single),
                       labels=labels, probabilities=probs, objective=objective)
