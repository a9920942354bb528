"""Activation functions, each forward beside its backward.

Every backward here takes the activation's *output* ``y`` (not its input),
which is all these functions need and lets layers keep one array per pass:

* ReLU:    ``y = max(x, 0)``,              ``dx = dy * (y > 0)``
* sigmoid: ``y = 1 / (1 + e^-x)``,         ``dx = dy * y * (1 - y)``
* tanh:    ``y = tanh(x)``,                ``dx = dy * (1 - y^2)``
* softmax: ``y_i = e^{x_i} / sum_k e^{x_k}`` (the slides' formula, computed
  after subtracting the row maximum so it cannot overflow),
  ``dx = y * (dy - sum_i dy_i y_i)``
* linear:  ``y = x``,                      ``dx = dy``
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cnnlab.backend import array_module
from cnnlab.errors import InvalidArgumentError


def relu(x: Any, out: Any | None = None) -> Any:
    """``max(x, 0)``; pass ``out=x`` to work in place."""
    xp = array_module(x)
    return xp.maximum(x, 0, out=out)


def relu_backward(grad: Any, y: Any) -> Any:
    return grad * (y > 0)


def sigmoid(x: Any, out: Any | None = None) -> Any:
    xp = array_module(x)
    # stable on both tails: e^-|x| never overflows
    e = xp.exp(-xp.abs(x))
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


def sigmoid_backward(grad: Any, y: Any) -> Any:
    return grad * y * (1 - y)


def tanh(x: Any, out: Any | None = None) -> Any:
    xp = array_module(x)
    return xp.tanh(x, out=out)


def tanh_backward(grad: Any, y: Any) -> Any:
    return grad * (1 - y * y)


def softmax(x: Any, out: Any | None = None, axis: int = -1) -> Any:
    """``e^{x_i} / sum_k e^{x_k}`` along ``axis``, shifted by the maximum for stability."""
    xp = array_module(x)
    z = x - x.max(axis=axis, keepdims=True)
    e = xp.exp(z)
    return e / e.sum(axis=axis, keepdims=True)


def softmax_backward(grad: Any, y: Any, axis: int = -1) -> Any:
    return y * (grad - (grad * y).sum(axis=axis, keepdims=True))


def linear(x: Any, out: Any | None = None) -> Any:
    return x


def linear_backward(grad: Any, y: Any) -> Any:
    return grad


ACTIVATIONS: dict[str, tuple[Callable[..., Any], Callable[[Any, Any], Any]]] = {
    "relu": (relu, relu_backward),
    "sigmoid": (sigmoid, sigmoid_backward),
    "tanh": (tanh, tanh_backward),
    "softmax": (softmax, softmax_backward),
    "linear": (linear, linear_backward),
}


def get_activation(name: str | None) -> tuple[str, Callable[..., Any], Callable[[Any, Any], Any]]:
    """Look up an activation by name (``None`` means linear)."""
    key = "linear" if name is None else name
    if not isinstance(key, str) or key.lower() not in ACTIVATIONS:
        raise InvalidArgumentError(
            f"unknown activation {name!r}: expected one of {', '.join(sorted(ACTIVATIONS))}"
        )
    key = key.lower()
    fwd, bwd = ACTIVATIONS[key]
    return key, fwd, bwd
