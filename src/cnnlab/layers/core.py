"""Dense, Dropout, Flatten and Activation layers."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cnnlab.backend import array_module, device_generator
from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.initializers import get_initializer
from cnnlab.layers.base import Layer
from cnnlab.ops import parallel
from cnnlab.ops.activations import get_activation, reads_input
from cnnlab.regularizers import Regularizer
from cnnlab.regularizers import get as get_regularizer
from cnnlab.regularizers import serialize as serialize_regularizer
from cnnlab.validation import check_positive_int


class Dense(Layer):
    """Fully connected: ``y = activation(x @ W + b)`` for inputs ``(N, in)``.

    Weights ``kernel (in, units)`` and ``bias (units,)``. Backward:
    ``dW = x^T dz``, ``db = sum_n dz``, ``dx = dz W^T``.

    ``kernel_regularizer``: a penalty on the kernel added to the loss (Keras's):
    ``None`` (default), ``"l2"`` (``L2(0.01)``), a :class:`cnnlab.regularizers.L2`,
    or its config ``{"class_name": "L2", "config": {"l2": ...}}``.
    """

    weight_names = ("kernel", "bias")

    def __init__(
        self,
        units: int,
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        kernel_regularizer: str | dict[str, Any] | Regularizer | None = None,
        name: str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__(name, dtype)
        self.units = check_positive_int(units, "units", "Dense")
        self.activation, self._act, self._act_backward = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        get_initializer(kernel_initializer)
        get_initializer(bias_initializer)
        try:
            self.kernel_regularizer = get_regularizer(kernel_regularizer)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"Dense: kernel_regularizer: {e}") from None
        self.weight_names = ("kernel", "bias") if self.use_bias else ("kernel",)
        self._cache: tuple[Any, Any] | None = None

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 1:
            raise ShapeError(
                f"Dense expects flat inputs (features,), got {input_shape}; "
                "put a Flatten layer before it"
            )
        return (self.units,)

    def weight_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        kernel = (input_shape[0], self.units)
        return [kernel, (self.units,)] if self.use_bias else [kernel]

    def create_weights(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> list:
        weights = [
            get_initializer(self.kernel_initializer)((input_shape[0], self.units), rng, self.dtype)
        ]
        if self.use_bias:
            weights.append(get_initializer(self.bias_initializer)((self.units,), rng, self.dtype))
        return weights

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "name": self.name,
            "units": self.units,
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }
        if self.kernel_regularizer is not None:  # absent when None: older files stay equal
            config["kernel_regularizer"] = serialize_regularizer(self.kernel_regularizer)
        return config

    def forward(self, x: Any, training: bool = False) -> Any:
        z = parallel.matmul(x, self.weights[0])  # split over the workers in a batch scope
        if self.use_bias:
            z += self.weights[1]
        # in place unless the activation's backward needs z
        y = self._act(z) if reads_input(self.activation) else self._act(z, out=z)
        self._cache = (x, y, z) if training else None
        return y

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        x, y, z = self._cache
        g = self._act_backward(grad_out, y, z)
        if self.use_bias:
            self.grads[1] = g.sum(axis=0)
        self._cache = None
        if not self.need_input_grad:
            self.grads[0] = parallel.matmul(x.T, g)
            return None
        # dW = x^T dZ and dX = dZ W^T: in a batch scope, one on each worker
        self.grads[0], dx = parallel.matmuls((x.T, g), (g, self.weights[0].T))
        return dx


class Dropout(Layer):
    """Inverted dropout: in training, zero each value with probability ``rate``
    and scale the survivors by ``1 / (1 - rate)``; at inference, the identity.

    The mask is drawn where ``x`` lives: on the CPU from the model's seeded
    generator; on a GPU from a device generator seeded, each step, from the
    model's generator (:func:`cnnlab.backend.device_generator`), so the mask
    never crosses to the device and a seeded GPU run is reproducible too.
    """

    def __init__(self, rate: float, name: str | None = None, dtype: str = "float32") -> None:
        super().__init__(name, dtype)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise InvalidArgumentError(f"Dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self._mask: Any = None

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "rate": self.rate}

    def forward(self, x: Any, training: bool = False) -> Any:
        if not training or self.rate == 0:
            self._mask = None
            return x
        assert self.rng is not None, "Dropout needs build() (it takes the model's generator)"
        rng = device_generator(self.rng, array_module(x))
        keep = rng.random(x.shape, dtype=np.float32) >= self.rate
        self._mask = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - self.rate))
        return x * self._mask

    def backward(self, grad_out: Any) -> Any:
        return grad_out if self._mask is None else grad_out * self._mask


class Flatten(Layer):
    """Reshape ``(N, H, W, C)`` to ``(N, H * W * C)`` (row-major, channels last, as Keras)."""

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def forward(self, x: Any, training: bool = False) -> Any:
        if training:
            self._shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_out: Any) -> Any:
        shape = getattr(self, "_shape", None)
        if shape is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        return grad_out.reshape(shape)


class Activation(Layer):
    """Apply an activation on its own (the slides' final ``softmax``)."""

    def __init__(self, activation: str, name: str | None = None, dtype: str = "float32") -> None:
        super().__init__(name, dtype)
        self.activation, self._act, self._act_backward = get_activation(activation)
        self._cache: tuple[Any, Any] | None = None

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "activation": self.activation}

    def forward(self, x: Any, training: bool = False) -> Any:
        y = self._act(x)
        self._cache = (x, y) if training else None
        return y

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        x, y = self._cache
        return self._act_backward(grad_out, y, x)


