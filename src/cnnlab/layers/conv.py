"""Conv2D: the slides' "convolution with activation" layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.initializers import get_initializer
from cnnlab.layers.base import Layer, check_positive_int
from cnnlab.ops import conv as conv_ops
from cnnlab.ops.activations import get_activation
from cnnlab.ops.padding import normalise_padding_arg, output_hw, pair, resolve_padding


class Conv2D(Layer):
    """2-D convolution over (N, H, W, C_in) inputs, then an activation.

    Args:
        filters: number of output channels (feature maps), ``C_out``.
        kernel_size: ``k`` or ``(kh, kw)``.
        strides: ``s`` or ``(sh, sw)``; default 1.
        padding: ``"valid"`` (default), ``"same"`` (Keras rule), ``"full"``, or
            explicit amounts; see :mod:`cnnlab.ops.padding`.
        activation: ``None``/``"linear"``, ``"relu"``, ``"sigmoid"``, ``"tanh"``, ``"softmax"``.
        use_bias: add one learned bias per filter.
        kernel_initializer, bias_initializer: Keras names (``glorot_uniform``, ``zeros``).
        impl: ``"fast"`` (im2col + GEMM, default) or ``"reference"`` (the
            slides' literal formulas; slower, for teaching and tests).

    Weights: ``kernel (kh, kw, C_in, C_out)`` and ``bias (C_out,)``; parameters
    ``kh * kw * C_in * C_out + C_out``.

    >>> import numpy as np
    >>> layer = Conv2D(16, 2, padding="same", activation="relu")
    >>> layer.build((28, 28, 1), np.random.default_rng(0))
    (28, 28, 16)
    >>> layer.count_params()
    80
    """

    weight_names = ("kernel", "bias")

    def __init__(
        self,
        filters: int,
        kernel_size: int | tuple[int, int],
        strides: int | tuple[int, int] = 1,
        padding: Any = "valid",
        activation: str | None = None,
        use_bias: bool = True,
        kernel_initializer: str = "glorot_uniform",
        bias_initializer: str = "zeros",
        impl: str = "fast",
        name: str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__(name, dtype)
        self.filters = check_positive_int(filters, "filters", "Conv2D")
        self.kernel_size = pair(kernel_size, "Conv2D: kernel_size")
        self.strides = pair(strides, "Conv2D: strides")
        if min(self.kernel_size) <= 0:
            raise InvalidArgumentError(f"Conv2D: kernel_size must be positive, got {kernel_size}")
        if min(self.strides) <= 0:
            raise InvalidArgumentError(f"Conv2D: strides must be positive, got {strides}")
        self.padding = normalise_padding_arg(padding)
        self.activation, self._act, self._act_backward = get_activation(activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = kernel_initializer
        self.bias_initializer = bias_initializer
        get_initializer(kernel_initializer)
        get_initializer(bias_initializer)
        if impl not in ("fast", "reference"):
            raise InvalidArgumentError(f"Conv2D: impl must be 'fast' or 'reference', got {impl!r}")
        self.impl = impl
        self.weight_names = ("kernel", "bias") if self.use_bias else ("kernel",)
        self._cache: tuple[Any, ...] | None = None
        # transformed filters for inference, checked against the kernel on each use
        self._filter_cache: dict = {}

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 3:
            raise ShapeError(
                f"Conv2D expects inputs of shape (H, W, C), got {input_shape}"
            )
        self.pads = resolve_padding(self.padding, self.kernel_size, self.strides, input_shape[:2])
        kh, kw = self.kernel_size
        h, w = input_shape[:2]
        try:
            ho, wo = output_hw((h, w), self.kernel_size, self.strides, self.pads, "kernel")
        except ShapeError:
            raise ShapeError(
                f"a {kh}x{kw} kernel does not fit the {h}x{w} input with padding "
                f"{self.padding!r}"
            ) from None
        return (ho, wo, self.filters)

    def create_weights(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> list:
        kshape = (*self.kernel_size, input_shape[2], self.filters)
        weights = [get_initializer(self.kernel_initializer)(kshape, rng, self.dtype)]
        if self.use_bias:
            weights.append(get_initializer(self.bias_initializer)((self.filters,), rng, self.dtype))
        return weights

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "filters": self.filters,
            "kernel_size": list(self.kernel_size),
            "strides": list(self.strides),
            "padding": self.padding if isinstance(self.padding, (str, int)) else
            [list(p) if isinstance(p, tuple) else p for p in self.padding],
            "activation": self.activation,
            "use_bias": self.use_bias,
            "kernel_initializer": self.kernel_initializer,
            "bias_initializer": self.bias_initializer,
        }

    @property
    def kernel(self) -> Any:
        return self.weights[0]

    @property
    def bias(self) -> Any | None:
        return self.weights[1] if self.use_bias else None

    @property
    def _fused_relu(self) -> bool:
        """The fast path applies ReLU (and its mask) inside the convolution."""
        return self.impl == "fast" and self.activation == "relu"

    def forward(self, x: Any, training: bool = False) -> Any:
        if self.impl == "reference":
            z = conv_ops.conv2d_forward_reference(
                x, self.kernel, self.bias, self.strides, self.pads
            )
            cache = x
        else:
            z, cache = conv_ops.conv2d_forward(
                x, self.kernel, self.bias, self.strides, self.pads, keep=training,
                relu=self._fused_relu, filter_cache=None if training else self._filter_cache,
            )
        if self._fused_relu:
            y = z
        else:
            y = self._act(z, out=z) if self.activation != "softmax" else self._act(z)
        self._cache = (cache, x.shape, y) if training else None
        return y

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        cache, x_shape, y = self._cache
        self._cache = None
        if self.impl == "reference":
            g = self._act_backward(grad_out, y)
            dk = conv_ops.conv2d_backward_filter_reference(
                cache, g, self.kernel_size, self.strides, self.pads
            )
            db = g.sum(axis=(0, 1, 2))
            dx = conv_ops.conv2d_backward_input_reference(
                g, self.kernel, x_shape[1:3], self.strides, self.pads
            )
        elif self._fused_relu:
            dx, dk, db = conv_ops.conv2d_backward(
                grad_out, cache, self.kernel, x_shape, self.strides, self.pads,
                self.need_input_grad, relu_output=y,
            )
        else:
            dx, dk, db = conv_ops.conv2d_backward(
                self._act_backward(grad_out, y), cache, self.kernel, x_shape, self.strides,
                self.pads, self.need_input_grad,
            )
        self.grads[0] = dk
        if self.use_bias:
            self.grads[1] = db
        return dx
