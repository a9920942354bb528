"""BatchNormalization (Keras's name, arguments, defaults and weights)."""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.layers.base import Layer
from cnnlab.ops import normalization as bn_ops


def _check_bool(value: Any, name: str) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise InvalidArgumentError(f"BatchNormalization: {name} must be True or False, "
                                   f"got {value!r}")
    return bool(value)


def _check_real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise InvalidArgumentError(f"BatchNormalization: {name} must be a finite number, "
                                   f"got {value!r}")
    return float(value)


class BatchNormalization(Layer):
    """Normalise each channel with batch statistics in training, moving ones at inference.

    Over inputs ``(N, H, W, C)`` or ``(N, F)``, for each channel ``c`` (the
    ``axis``), as Keras 3:

    * **training** (``forward(x, training=True)``, what ``fit`` and
      ``train_on_batch`` run): ``y = gamma * (x - mean) / sqrt(var + epsilon) + beta``
      with the batch's mean and biased variance over every other axis; then
      ``moving_mean = moving_mean * momentum + mean * (1 - momentum)`` and
      ``moving_variance = moving_variance * momentum + var * (1 - momentum)``,
      with the same biased ``var`` (Keras 3 uses ``ops.moments``, which
      divides by ``m``; PyTorch's ``running_var`` uses ``m - 1``, and its
      ``momentum`` is Keras's ``1 - momentum``);
    * **inference** (``predict``, ``evaluate``): the same formula with
      ``moving_mean`` and ``moving_variance``.

    Args:
        axis: the normalised (channel) axis of the batch, batch axis counted:
            ``-1`` (default: the channels of ``(N, H, W, C)``, the features of
            ``(N, F)``), or any other axis but the batch axis ``0``.
        momentum: weight of the old moving statistics in each update (0.99).
        epsilon: added to the variance before the square root (1e-3).
        center: learn the offset ``beta`` (else 0, and no ``beta`` weight).
        scale: learn the factor ``gamma`` (else 1, and no ``gamma`` weight).

    Weights, in Keras's order: ``gamma (C,)`` (ones), ``beta (C,)`` (zeros),
    ``moving_mean (C,)`` (zeros), ``moving_variance (C,)`` (ones); the last
    two are non-trainable: saved with the model, never given to the optimizer
    (``trainable_weights`` and ``grads`` are ``[gamma, beta]``), updated in
    place by the layer itself in training.

    >>> import numpy as np
    >>> layer = BatchNormalization()
    >>> layer.build((4, 4, 8), np.random.default_rng(0))
    (4, 4, 8)
    >>> layer.weight_names, layer.count_params(), layer.count_trainable_params()
    (('gamma', 'beta', 'moving_mean', 'moving_variance'), 32, 16)
    >>> x = np.random.default_rng(1).normal(5.0, 2.0, (16, 4, 4, 8)).astype(np.float32)
    >>> y = layer.forward(x, training=True)
    >>> bool(abs(y.mean()) < 1e-5), bool(abs(y.std() - 1) < 1e-3)
    (True, True)
    >>> bool(np.allclose(layer.weights[2], 0.01 * x.mean(axis=(0, 1, 2)), rtol=1e-5))
    True
    """

    weight_names = ("gamma", "beta", "moving_mean", "moving_variance")
    non_trainable_names = ("moving_mean", "moving_variance")

    def __init__(
        self,
        axis: int = -1,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        center: bool = True,
        scale: bool = True,
        name: str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__(name, dtype)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise InvalidArgumentError(f"BatchNormalization: axis must be an int, got {axis!r}")
        self.axis = int(axis)
        self.momentum = _check_real(momentum, "momentum")
        if not 0.0 <= self.momentum <= 1.0:
            raise InvalidArgumentError(
                f"BatchNormalization: momentum must be in [0, 1], got {momentum!r}")
        self.epsilon = _check_real(epsilon, "epsilon")
        if self.epsilon <= 0:
            raise InvalidArgumentError(
                f"BatchNormalization: epsilon must be positive, got {epsilon!r}")
        self.center = _check_bool(center, "center")
        self.scale = _check_bool(scale, "scale")
        self.weight_names = tuple(
            n for n, keep in (("gamma", self.scale), ("beta", self.center),
                              ("moving_mean", True), ("moving_variance", True)) if keep
        )
        self._axis: int | None = None  # the axis of the batch, non-negative; set by build()
        self._cache: bn_ops.BatchNormCache | None = None

    # -- construction ------------------------------------------------------
    def _resolve_axis(self, input_shape: tuple[int, ...]) -> int:
        ndim = len(input_shape) + 1  # with the batch axis
        ax = self.axis + ndim if self.axis < 0 else self.axis
        if not 1 <= ax < ndim:
            raise ShapeError(
                f"BatchNormalization: axis {self.axis} does not name a non-batch axis of "
                f"inputs (None, {', '.join(map(str, input_shape))}); expected one of "
                f"{list(range(1, ndim))} or {list(range(1 - ndim, 0))}"
            )
        return ax

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        self._resolve_axis(tuple(input_shape))
        return tuple(input_shape)

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        """Resolve the channel axis, then create the weights."""
        self._axis = self._resolve_axis(tuple(input_shape))
        return super().build(input_shape, rng)

    def weight_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        channels = input_shape[self._resolve_axis(tuple(input_shape)) - 1]
        return [(channels,)] * len(self.weight_names)

    def create_weights(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> list:
        (shape,) = set(self.weight_shapes(input_shape))
        init = {"gamma": np.ones, "beta": np.zeros, "moving_mean": np.zeros,
                "moving_variance": np.ones}
        return [init[n](shape, dtype=self.dtype) for n in self.weight_names]

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "axis": self.axis,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
            "center": self.center,
            "scale": self.scale,
            "dtype": self.dtype.name,
        }

    # -- weights by name -----------------------------------------------------
    def _weight(self, name: str) -> Any | None:
        return self.weights[self.weight_names.index(name)] if name in self.weight_names else None

    @property
    def gamma(self) -> Any | None:
        return self._weight("gamma")

    @property
    def beta(self) -> Any | None:
        return self._weight("beta")

    @property
    def moving_mean(self) -> Any:
        return self._weight("moving_mean")

    @property
    def moving_variance(self) -> Any:
        return self._weight("moving_variance")

    # -- computation -------------------------------------------------------
    def forward(self, x: Any, training: bool = False) -> Any:
        if self._axis is None:
            raise RuntimeError(f"{self.name}: build() the layer before calling it")
        if not training:
            self._cache = None
            return bn_ops.batch_norm_inference(
                x, self.moving_mean, self.moving_variance, self.gamma, self.beta,
                self.epsilon, self._axis)
        y, cache = bn_ops.batch_norm_forward(x, self.gamma, self.beta, self.epsilon, self._axis)
        # Keras's update, in place so the model's weight arrays stay the same objects
        keep = self.dtype.type(self.momentum)
        take = self.dtype.type(1.0 - self.momentum)
        for moving, batch in ((self.moving_mean, cache.mean), (self.moving_variance, cache.var)):
            moving[...] = moving * keep + batch.astype(self.dtype, copy=False) * take
        self._cache = cache
        return y

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        cache, self._cache = self._cache, None
        dx, dgamma, dbeta = bn_ops.batch_norm_backward(grad_out, cache, self.need_input_grad)
        i = 0
        if self.scale:
            self.grads[i] = dgamma.astype(self.dtype, copy=False)
            i += 1
        if self.center:
            self.grads[i] = dbeta.astype(self.dtype, copy=False)
        return dx
