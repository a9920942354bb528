"""Cross-entropy between the network's output and the label.

The slides write ``H(p, q) = -sum_x p(x) ln q(x)`` with ``p`` the network's
output and ``q`` the one-hot label. With those roles the sum would take the
log of the zeros in the label, so the roles are swapped here, as every
library does: the loss is ``-sum_x label(x) ln output(x)``, averaged over the
batch.

:func:`softmax_cross_entropy` fuses it with the softmax and works on the
logits through log-sum-exp (``ln softmax(z)_i = z_i - max z - ln sum e^{z - max z}``),
which never takes the log of zero; its gradient with respect to the logits is
the famous ``(softmax(z) - label) / N``.

Label smoothing (Keras's ``CategoricalCrossentropy(label_smoothing=s)``, the
same definition as PyTorch's ``cross_entropy(label_smoothing=s)``) replaces
every label row by ``label * (1 - s) + s / K`` for ``K`` classes before the
loss; both losses take it as ``label_smoothing=``, and the gradients are the
same formulas with the smoothed label.
"""

from __future__ import annotations

from typing import Any

from cnnlab.backend import array_module, device_of, to_device
from cnnlab.errors import InvalidArgumentError, ShapeError


def one_hot(labels: Any, num_classes: int, dtype: Any = None) -> Any:
    """Integer labels ``(N,)`` to one-hot ``(N, num_classes)``."""
    xp = array_module(labels)
    out = xp.zeros((labels.shape[0], num_classes), dtype=dtype or xp.float32)
    out[xp.arange(labels.shape[0]), labels.astype(xp.int64)] = 1
    return out


def as_one_hot(labels: Any, num_classes: int, dtype: Any) -> Any:
    """Accept integer labels ``(N,)`` or one-hot/probability rows ``(N, K)``."""
    if labels.ndim == 1:
        return one_hot(labels, num_classes, dtype)
    if labels.ndim == 2 and labels.shape[1] == num_classes:
        return labels.astype(dtype, copy=False)
    raise ShapeError(
        f"labels of shape {tuple(labels.shape)} do not fit {num_classes} classes: "
        f"expected (N,) integers or (N, {num_classes}) one-hot rows"
    )


def smooth_labels(y: Any, label_smoothing: float) -> Any:
    """``y * (1 - s) + s / K`` for rows ``y`` of ``K`` classes (``y`` unchanged when s = 0)."""
    if not label_smoothing:
        return y
    k = y.shape[-1]
    f = y.dtype.type
    return y * f(1.0 - label_smoothing) + f(label_smoothing / k)


def check_label_smoothing(value: Any) -> float:
    """``value`` as a float in ``[0, 1]`` (what Keras accepts), or InvalidArgumentError."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not 0 <= value <= 1:
        raise InvalidArgumentError(f"label_smoothing must be a number in [0, 1], got {value!r}")
    return float(value)


def log_softmax(z: Any) -> Any:
    xp = array_module(z)
    shifted = z - z.max(axis=-1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=-1, keepdims=True))


def softmax_cross_entropy(logits: Any, labels: Any,
                          label_smoothing: float = 0.0) -> tuple[float, Any]:
    """Mean ``-sum y * ln softmax(logits)`` and its gradient ``(softmax(logits) - y) / N``,
    with ``y`` the label rows, smoothed by ``label_smoothing`` (:func:`smooth_labels`)."""
    xp = array_module(logits)
    labels = to_device(labels, device_of(logits))  # host labels meet device logits
    y = smooth_labels(as_one_hot(labels, logits.shape[-1], logits.dtype), label_smoothing)
    logp = log_softmax(logits)
    n = logits.shape[0]
    loss = float(-(y * logp).sum() / n)
    grad = (xp.exp(logp) - y) / n
    return loss, grad.astype(logits.dtype, copy=False)


def categorical_cross_entropy(probs: Any, labels: Any, eps: float = 1e-7,
                              label_smoothing: float = 0.0) -> tuple[float, Any]:
    """Mean ``-sum y * ln p`` on probabilities (clipped to ``[eps, 1 - eps]`` as Keras)
    and its gradient ``-y / p / N`` (zero where the clip is active), with ``y`` the
    label rows smoothed by ``label_smoothing`` (:func:`smooth_labels`)."""
    xp = array_module(probs)
    labels = to_device(labels, device_of(probs))
    y = smooth_labels(as_one_hot(labels, probs.shape[-1], probs.dtype), label_smoothing)
    p = xp.clip(probs, eps, 1 - eps)
    n = probs.shape[0]
    loss = float(-(y * xp.log(p)).sum() / n)
    grad = -(y / p) / n * ((probs > eps) & (probs < 1 - eps))
    return loss, grad.astype(probs.dtype, copy=False)
