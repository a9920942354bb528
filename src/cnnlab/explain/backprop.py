"""Backpropagation through a trained model in inference mode, every number kept.

Training's backward pass leaves nothing to look at: each layer drops its
cache once it has used it, and Dropout and BatchNormalization behave as in
training. :func:`backprop` runs the model as ``predict`` does (Dropout is the
identity, BatchNormalization uses its moving statistics) and returns, for
every layer, its input, its output, and the gradients of one objective with
respect to both and to its trainable weights. Saliency, Grad-CAM, the demo's
"explain a gradient" panel and the finite-difference checks all start here.

Objectives, for labels ``c`` (one per example):

* ``"loss"``: the mean cross-entropy ``L = -(1/N) sum_n ln p[n, c_n]`` (no
  label smoothing, no weight penalty). For a model that ends in softmax its
  gradient with respect to the softmax's input is ``(p - onehot(c)) / N``.
* ``"logit"``: ``S = sum_n z[n, c_n]``, the sum of each example's class score
  before the final softmax (Grad-CAM's ``y^c``); needs a model that ends in
  softmax (an ``Activation("softmax")`` layer or a ``Dense`` with
  ``activation="softmax"``).
* ``"probability"``: ``P = sum_n p[n, c_n]``, the model's output itself.

The model is not changed: the pass runs on shallow copies of the layers
(sharing the weight arrays, never writing them), so it is safe beside a
server's predictions.

>>> import numpy as np
>>> from cnnlab import zoo
>>> model = zoo.seed_model(seed=0)
>>> trace = backprop(model, np.zeros((1, 28, 28, 1), np.float32), [3])
>>> trace.input_grad.shape
(1, 28, 28, 1)
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.ops.activations import softmax

OBJECTIVES = ("loss", "logit", "probability")


@dataclass
class Trace:
    """Everything one inference-mode forward and backward pass computed.

    Lists are indexed by layer, in model order: ``inputs[i]`` is what layer
    ``i`` read (``inputs[0]`` is the prepared batch), ``outputs[i]`` what it
    wrote, ``output_grads[i]`` / ``input_grads[i]`` the objective's gradient
    with respect to them, and ``weight_grads[i]`` its gradients with respect
    to the layer's ``trainable_weights`` (empty for layers without).
    """

    names: list[str]
    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    output_grads: list[np.ndarray]
    input_grads: list[np.ndarray]
    weight_grads: list[list[np.ndarray]]
    probabilities: np.ndarray
    objective: str
    value: float
    logits: np.ndarray | None = field(default=None)

    @property
    def input_grad(self) -> np.ndarray:
        """The objective's gradient with respect to the model's input (saliency's raw map)."""
        return self.input_grads[0]

    def index(self, name: str) -> int:
        """The position of the layer called ``name``."""
        try:
            return self.names.index(name)
        except ValueError:
            raise InvalidArgumentError(
                f"no layer named {name!r}; the layers are {', '.join(self.names)}") from None


def _is_softmax_end(layer: Any) -> bool:
    return getattr(layer, "activation", None) == "softmax"


def _labels(labels: Any, n: int, classes: int) -> np.ndarray:
    lab = np.asarray(labels)
    if lab.ndim == 0:
        lab = np.full(n, int(lab))
    if lab.shape != (n,) or not np.issubdtype(lab.dtype, np.integer):
        raise InvalidArgumentError(f"labels must be {n} integer class labels, got {lab!r}")
    if lab.size and (lab.min() < 0 or lab.max() >= classes):
        raise InvalidArgumentError(f"labels must lie in 0..{classes - 1}, got {lab.tolist()}")
    return lab.astype(np.int64)


def _inference_copy(layer: Any) -> Any:
    """A shallow copy that shares the weights but owns its cache and its gradient list."""
    c = copy.copy(layer)
    c.grads = list(layer.grads)
    c.need_input_grad = True
    c._cache = None
    return c


def _bn_forward(layer: Any, x: np.ndarray) -> tuple[np.ndarray, tuple[Any, ...]]:
    """BatchNormalization with its moving statistics: ``y = gamma * xhat + beta``."""
    inv = 1.0 / np.sqrt(layer.moving_variance.astype(np.float64) + layer.epsilon)
    xhat = (x - layer.moving_mean) * inv.astype(x.dtype)
    gamma = layer.gamma if layer.gamma is not None else 1
    y = xhat * gamma + (layer.beta if layer.beta is not None else 0)
    return y.astype(x.dtype, copy=False), (xhat, inv.astype(x.dtype))


def _bn_backward(layer: Any, g: np.ndarray, saved: tuple[Any, ...]) -> tuple[Any, list[Any]]:
    xhat, inv = saved
    axes = tuple(range(g.ndim - 1))
    grads = []
    if layer.scale:
        grads.append((g * xhat).sum(axis=axes))
    if layer.center:
        grads.append(g.sum(axis=axes))
    gamma = layer.gamma if layer.gamma is not None else 1
    return g * (gamma * inv), grads


def backprop(model: Any, x: Any, labels: Any, objective: str = "loss") -> Trace:
    """One inference-mode forward and backward pass of ``model`` on ``x``.

    ``x`` is anything ``model.predict`` accepts (uint8 pixels are scaled as it
    scales them); ``labels`` holds one class per example (or one int for all).
    Returns a :class:`Trace`. Raises :class:`~cnnlab.errors.InvalidArgumentError`
    for an unknown objective, a label out of range, or ``"logit"`` on a model
    that does not end in softmax.
    """
    if objective not in OBJECTIVES:
        raise InvalidArgumentError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if not model.built:
        raise InvalidArgumentError("build the model before explaining it")
    x = model.cast_inputs(model.check_inputs(x))
    layers: Sequence[Any] = [_inference_copy(layer) for layer in model.layers]
    n = len(x)
    last = layers[-1]
    ends_in_softmax = _is_softmax_end(last)
    if objective == "logit" and not ends_in_softmax:
        raise InvalidArgumentError(
            f"the 'logit' objective needs a model that ends in softmax; its last layer "
            f"'{last.name}' ({last.kind}) has activation {getattr(last, 'activation', None)!r}")

    inputs, outputs, saved = [], [], []
    out = x
    for i, layer in enumerate(layers):
        inputs.append(out)
        is_final_softmax = ends_in_softmax and i == len(layers) - 1
        if layer.kind == "Dropout":
            saved.append(None)
        elif layer.kind == "BatchNormalization":
            out, s = _bn_forward(layer, out)
            saved.append(s)
        elif is_final_softmax:
            # keep the logits: the final softmax's gradient is written from them
            z = out if layer.kind == "Activation" else _dense_logits(layer, out)
            saved.append(z)
            out = softmax(z.astype(np.float64)).astype(z.dtype)
        else:
            out = layer.forward(out, True)
            saved.append(None)
        outputs.append(out)

    probs = outputs[-1]
    lab = _labels(labels, n, probs.shape[-1])
    rows = np.arange(n)
    logits = saved[-1] if ends_in_softmax else None
    p64 = probs.astype(np.float64)
    if objective == "loss":
        value = float(-np.log(np.maximum(p64[rows, lab], np.finfo(np.float64).tiny)).mean())
    elif objective == "logit":
        value = float(logits[rows, lab].astype(np.float64).sum())
    else:
        value = float(p64[rows, lab].sum())

    # the gradient with respect to the last output (and, at a softmax end, its logits)
    onehot = np.zeros_like(p64)
    onehot[rows, lab] = 1.0
    if objective == "loss":
        dz = (p64 - onehot) / n
        dout = -onehot / np.maximum(p64, np.finfo(np.float64).tiny) / n
    elif objective == "logit":
        dz = onehot
        dout = None  # S does not depend on p once z is given; no gradient is defined
    else:
        dz = p64 * (onehot - p64[rows, lab][:, None])
        dout = onehot
    output_grads: list[Any] = [None] * len(layers)
    input_grads: list[Any] = [None] * len(layers)
    weight_grads: list[list[Any]] = [[] for _ in layers]
    dtype = probs.dtype
    output_grads[-1] = (dout if dout is not None else np.zeros_like(p64)).astype(dtype)

    for i in range(len(layers) - 1, -1, -1):
        layer = layers[i]
        is_final_softmax = ends_in_softmax and i == len(layers) - 1
        if is_final_softmax:
            g = dz.astype(dtype)
            if layer.kind == "Activation":
                grad_in = g
            else:
                grad_in, weight_grads[i] = _dense_backward(layer, inputs[i], g)
        else:
            g = output_grads[i]
            if layer.kind == "Dropout":
                grad_in = g
            elif layer.kind == "BatchNormalization":
                grad_in, weight_grads[i] = _bn_backward(layer, g, saved[i])
            else:
                grad_in = layer.backward(g)
                weight_grads[i] = list(layer.grads)
        input_grads[i] = grad_in
        if i > 0:
            output_grads[i - 1] = grad_in

    return Trace(
        names=[str(layer.name) for layer in layers],
        inputs=inputs, outputs=outputs, output_grads=output_grads, input_grads=input_grads,
        weight_grads=weight_grads, probabilities=probs, objective=objective, value=value,
        logits=logits,
    )


def _dense_logits(layer: Any, x: np.ndarray) -> np.ndarray:
    z = x @ layer.weights[0]
    if layer.use_bias:
        z = z + layer.weights[1]
    return z


def _dense_backward(layer: Any, x: np.ndarray, dz: np.ndarray) -> tuple[Any, list[Any]]:
    grads = [x.T @ dz]
    if layer.use_bias:
        grads.append(dz.sum(axis=0))
    return dz @ layer.weights[0].T, grads
