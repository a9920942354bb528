"""Conv2D: the slides' "convolution with activation" layer."""

from __future__ import annotations

from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.initializers import get_initializer
from cnnlab.layers.base import Layer
from cnnlab.ops import conv as conv_ops
from cnnlab.ops.activations import get_activation, reads_input
from cnnlab.ops.padding import normalise_padding_arg, output_hw, pair, resolve_padding
from cnnlab.regularizers import Regularizer
from cnnlab.regularizers import get as get_regularizer
from cnnlab.regularizers import serialize as serialize_regularizer
from cnnlab.validation import check_positive_int

#: ``Conv2D(impl=...)``: ``"fast"`` lets the op choose im2col or Winograd.
IMPL_CHOICES = ("fast", "reference", "im2col", "winograd")


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
        kernel_regularizer: a penalty on the kernel added to the loss (Keras's):
            ``None`` (default), ``"l2"`` (``L2(0.01)``), a
            :class:`cnnlab.regularizers.L2`, or its config
            ``{"class_name": "L2", "config": {"l2": ...}}``.
        impl: ``"fast"`` (default: im2col + GEMM, or Winograd for 3x3 stride-1
            layers with enough work), ``"reference"`` (the slides' literal
            formulas; slower, for teaching and tests), or ``"im2col"`` /
            ``"winograd"`` to force one fast path.

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
        kernel_regularizer: str | dict[str, Any] | Regularizer | None = None,
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
        try:
            self.kernel_regularizer = get_regularizer(kernel_regularizer)
        except InvalidArgumentError as e:
            raise InvalidArgumentError(f"Conv2D: kernel_regularizer: {e}") from None
        if impl not in IMPL_CHOICES:
            raise InvalidArgumentError(f"Conv2D: impl must be one of {IMPL_CHOICES}, got {impl!r}")
        self.impl = impl
        self._op_impl = "auto" if impl == "fast" else impl
        self.weight_names = ("kernel", "bias") if self.use_bias else ("kernel",)
        self.pads: tuple[tuple[int, int], tuple[int, int]] | None = None  # set by build()
        self._cache: tuple[Any, ...] | None = None
        # transformed filters for inference, checked against the kernel on each use
        self._filter_cache: dict = {}

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        """Resolve the padding amounts for this input size, then create the weights."""
        self.pads = self._pads_for(tuple(input_shape))
        return super().build(input_shape, rng)

    def _pads_for(self, input_shape: tuple[int, ...]) -> Any:
        if len(input_shape) != 3:
            raise ShapeError(
                f"Conv2D expects inputs of shape (H, W, C), got {input_shape}"
            )
        return resolve_padding(self.padding, self.kernel_size, self.strides, input_shape[:2])

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        pads = self._pads_for(input_shape)
        kh, kw = self.kernel_size
        h, w = input_shape[:2]
        try:
            ho, wo = output_hw((h, w), self.kernel_size, self.strides, pads, "kernel")
        except ShapeError:
            raise ShapeError(
                f"a {kh}x{kw} kernel does not fit the {h}x{w} input with padding "
                f"{self.padding!r}"
            ) from None
        return (ho, wo, self.filters)

    def weight_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        kernel = (*self.kernel_size, input_shape[2], self.filters)
        return [kernel, (self.filters,)] if self.use_bias else [kernel]

    def create_weights(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> list:
        kshape = (*self.kernel_size, input_shape[2], self.filters)
        weights = [get_initializer(self.kernel_initializer)(kshape, rng, self.dtype)]
        if self.use_bias:
            weights.append(get_initializer(self.bias_initializer)((self.filters,), rng, self.dtype))
        return weights

    def get_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
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
        if self.kernel_regularizer is not None:  # absent when None: older files stay equal
            config["kernel_regularizer"] = serialize_regularizer(self.kernel_regularizer)
        return config

    @property
    def kernel(self) -> Any:
        return self.weights[0]

    @property
    def bias(self) -> Any | None:
        return self.weights[1] if self.use_bias else None

    def forward(self, x: Any, training: bool = False) -> Any:
        fuse_relu = self.activation == "relu"  # the op applies ReLU and its mask
        z, cache = conv_ops.conv2d_forward(
            x, self.kernel, self.bias, self.strides, self.pads, impl=self._op_impl,
            relu=fuse_relu, keep=training,
            filter_cache=None if training else self._filter_cache,
        )
        if fuse_relu:
            y = z
        elif reads_input(self.activation):
            y = self._act(z)  # its backward needs z
        else:
            y = self._act(z, out=z)  # in place: the backward needs only y
        self._cache = (cache, y, z, fuse_relu) if training else None
        return y

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        cache, y, z, fuse_relu = self._cache
        self._cache = None
        grad = grad_out if fuse_relu else self._act_backward(grad_out, y, z)
        dx, self.grads[0], db = conv_ops.conv2d_backward(grad, cache, self.need_input_grad)
        if self.use_bias:
            self.grads[1] = db
        return dx
