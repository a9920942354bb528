"""The confusion matrix with its images: which test images fall in each cell, most
confident first.

``matrix[t, p]`` counts the images of true class ``t`` predicted as ``p``;
``cell(t, p)`` lists exactly those images' indices, sorted by the model's
confidence in its prediction (the probability of class ``p``), highest first
(ties: the lower index first). ``len(cell(t, p)) == matrix[t, p]``.

>>> import numpy as np
>>> from cnnlab import zoo
>>> model = zoo.small_cnn(seed=0)
>>> x = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
>>> c = confusion(model, x, np.arange(20) % 10)
>>> int(c.matrix.sum()), all(len(c.cell(t, p)) == c.matrix[t, p]
...                          for t in range(10) for p in range(10))
(20, True)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.validation import check_positive_int


@dataclass
class Confusion:
    """Predictions on a labelled set and the confusion matrix they make.

    ``labels``, ``predicted``, ``confidence`` (probability of the predicted
    class) have one entry per image; ``matrix`` is ``(K, K)`` int64, rows the
    true class, columns the predicted one.
    """

    matrix: np.ndarray
    labels: np.ndarray
    predicted: np.ndarray
    confidence: np.ndarray
    order: np.ndarray
    starts: np.ndarray

    @property
    def num_classes(self) -> int:
        return int(self.matrix.shape[0])

    def cell(self, true: int, predicted: int) -> np.ndarray:
        """Indices of the images of class ``true`` predicted as ``predicted``, most
        confident first."""
        k = self.num_classes
        for v, what in ((true, "true"), (predicted, "predicted")):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v < k:
                raise InvalidArgumentError(f"{what} class must be an int in 0..{k - 1}, got {v!r}")
        j = int(true) * k + int(predicted)
        return self.order[self.starts[j]:self.starts[j + 1]]

    @property
    def accuracy(self) -> float:
        total = int(self.matrix.sum())
        return float(np.trace(self.matrix)) / total if total else 0.0


def confusion_from_probabilities(probs: Any, labels: Any) -> Confusion:
    """A :class:`Confusion` from the model's probabilities ``(N, K)`` and true labels ``(N,)``."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    if p.ndim != 2 or y.shape != (len(p),):
        raise ShapeError(f"probabilities (N, K) and N labels, got {p.shape} and {y.shape}")
    k = p.shape[1]
    if y.dtype.kind not in "iu" or (y.size and (y.min() < 0 or y.max() >= k)):
        raise InvalidArgumentError(f"labels must be integers in 0..{k - 1}")
    y = y.astype(np.int64)
    pred = p.argmax(axis=1)
    conf = p[np.arange(len(p)), pred]
    flat = y * k + pred
    order = np.lexsort((np.arange(len(p)), -conf, flat))
    counts = np.bincount(flat, minlength=k * k)
    starts = np.r_[0, np.cumsum(counts)]
    return Confusion(matrix=counts.reshape(k, k).astype(np.int64), labels=y, predicted=pred,
                     confidence=conf, order=order, starts=starts)


def confusion(model: Any, x: Any, y: Any, batch_size: int = 1000) -> Confusion:
    """Predict ``x`` with ``model`` and sort the images into the confusion matrix's cells.

    ``x`` is a batch the model takes (``uint8`` pixels scaled as ``predict``
    scales them); ``y`` integer or one-hot labels.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    xb = model.check_inputs(x)
    if len(xb) == 0:
        raise InvalidArgumentError("x holds no image")
    labels = model.check_labels(y, len(xb))
    probs = np.asarray(model.predict(xb, batch_size=batch_size)).reshape(len(xb), -1)
    return confusion_from_probabilities(probs, labels)
