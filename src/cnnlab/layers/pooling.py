"""Max and average pooling layers, local and global (Keras names and arguments)."""

from __future__ import annotations

from typing import Any

from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.layers.base import Layer
from cnnlab.ops import pooling as pool_ops
from cnnlab.ops.padding import output_hw, pair, resolve_padding


class _Pooling2D(Layer):
    def __init__(
        self,
        pool_size: int | tuple[int, int] = 2,
        strides: int | tuple[int, int] | None = None,
        padding: str = "valid",
        name: str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__(name, dtype)
        self.pool_size = pair(pool_size, f"{self.kind}: pool_size")
        self.strides = self.pool_size if strides is None else pair(strides, f"{self.kind}: strides")
        if min(self.pool_size) <= 0:
            raise InvalidArgumentError(f"{self.kind}: pool_size must be positive, got {pool_size}")
        if min(self.strides) <= 0:
            raise InvalidArgumentError(f"{self.kind}: strides must be positive, got {strides}")
        if not isinstance(padding, str) or padding.lower() not in ("valid", "same"):
            raise InvalidArgumentError(
                f"{self.kind}: unknown padding {padding!r}: expected 'valid' or 'same'"
            )
        self.padding = padding.lower()
        self._cache: tuple[Any, ...] | None = None

    def build(self, input_shape: tuple[int, ...], rng: Any) -> tuple[int, ...]:
        """Resolve the padding amounts for this input size."""
        self.pads = self._pads_for(tuple(input_shape))
        return super().build(input_shape, rng)

    def _pads_for(self, input_shape: tuple[int, ...]) -> Any:
        if len(input_shape) != 3:
            raise ShapeError(f"{self.kind} expects inputs of shape (H, W, C), got {input_shape}")
        return resolve_padding(self.padding, self.pool_size, self.strides, input_shape[:2])

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        ho, wo = output_hw(input_shape[:2], self.pool_size, self.strides,
                           self._pads_for(input_shape), "pooling window")
        return (ho, wo, input_shape[2])

    def get_config(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


class MaxPooling2D(_Pooling2D):
    """Keep the largest value of each ``pool_size`` window (stride defaults to the pool).

    The gradient flows to one arg-max per window; on ties, the first in
    row-major order within the window (top-left first).
    """

    def forward(self, x: Any, training: bool = False) -> Any:
        out, arg = pool_ops.max_pool2d_forward(x, self.pool_size, self.strides, self.pads,
                                               need_argmax=training)
        self._cache = (arg, x.shape) if training else None
        return out

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        arg, shape = self._cache
        self._cache = None
        return pool_ops.max_pool2d_backward(
            grad_out, arg, shape, self.pool_size, self.strides, self.pads
        )


class AveragePooling2D(_Pooling2D):
    """Mean of each window; padded cells (``padding="same"``) are not counted."""

    def forward(self, x: Any, training: bool = False) -> Any:
        out, counts = pool_ops.avg_pool2d_forward(x, self.pool_size, self.strides, self.pads)
        self._cache = (counts, x.shape) if training else None
        return out.astype(x.dtype, copy=False)

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        counts, shape = self._cache
        self._cache = None
        return pool_ops.avg_pool2d_backward(
            grad_out, counts, shape, self.pool_size, self.strides, self.pads
        ).astype(grad_out.dtype, copy=False)


def check_data_format(data_format: Any, owner: str) -> str:
    """Keras's ``data_format``: ``None`` or ``"channels_last"`` (cnnlab's only layout)."""
    if data_format is None or data_format == "channels_last":
        return "channels_last"
    raise InvalidArgumentError(
        f"{owner}: data_format must be 'channels_last' (or None), got {data_format!r}; "
        "cnnlab lays images out as (N, H, W, C)"
    )


class _GlobalPooling2D(Layer):
    def __init__(
        self,
        data_format: str | None = None,
        keepdims: bool = False,
        name: str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__(name, dtype)
        self.data_format = check_data_format(data_format, self.kind)
        if not isinstance(keepdims, bool):
            raise InvalidArgumentError(f"{self.kind}: keepdims must be True or False, "
                                       f"got {keepdims!r}")
        self.keepdims = keepdims
        self._cache: tuple[Any, ...] | None = None

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 3:
            raise ShapeError(f"{self.kind} expects inputs of shape (H, W, C), got {input_shape}")
        return (1, 1, input_shape[2]) if self.keepdims else (input_shape[2],)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "data_format": self.data_format, "keepdims": self.keepdims,
                "dtype": self.dtype.name}

    def _shape_out(self, out: Any) -> Any:
        return out[:, None, None, :] if self.keepdims else out

    def _shape_grad(self, grad_out: Any) -> Any:
        return grad_out.reshape(grad_out.shape[0], -1) if self.keepdims else grad_out


class GlobalAveragePooling2D(_GlobalPooling2D):
    """The mean of each channel over the whole map: ``(N, H, W, C) -> (N, C)``.

    Args:
        data_format: ``None`` or ``"channels_last"`` (the only layout).
        keepdims: keep the spatial axes, ``(N, 1, 1, C)`` (default ``False``).

    Backward spreads ``dO[n, c] / (H W)`` over every pixel of channel ``c``.

    >>> import numpy as np
    >>> layer = GlobalAveragePooling2D()
    >>> layer.build((2, 2, 3), np.random.default_rng(0))
    (3,)
    >>> layer.forward(np.arange(12.0).reshape(1, 2, 2, 3))
    array([[4.5, 5.5, 6.5]])
    """

    def forward(self, x: Any, training: bool = False) -> Any:
        out, shape = pool_ops.global_avg_pool2d_forward(x)
        self._cache = (shape,) if training else None
        return self._shape_out(out)

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        (shape,), self._cache = self._cache, None
        return pool_ops.global_avg_pool2d_backward(self._shape_grad(grad_out), shape)


class GlobalMaxPooling2D(_GlobalPooling2D):
    """The largest value of each channel over the whole map: ``(N, H, W, C) -> (N, C)``.

    Args:
        data_format: ``None`` or ``"channels_last"`` (the only layout).
        keepdims: keep the spatial axes, ``(N, 1, 1, C)`` (default ``False``).

    The gradient goes to one pixel per channel: on ties, the first maximum in
    row-major order (top-left first), as :class:`MaxPooling2D`.

    >>> import numpy as np
    >>> layer = GlobalMaxPooling2D()
    >>> layer.build((2, 2, 3), np.random.default_rng(0))
    (3,)
    >>> layer.forward(np.arange(12.0).reshape(1, 2, 2, 3))
    array([[ 9., 10., 11.]])
    """

    def forward(self, x: Any, training: bool = False) -> Any:
        out, arg = pool_ops.global_max_pool2d_forward(x, need_argmax=training)
        self._cache = (arg, tuple(x.shape)) if training else None
        return self._shape_out(out)

    def backward(self, grad_out: Any) -> Any:
        if self._cache is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        (arg, shape), self._cache = self._cache, None
        return pool_ops.global_max_pool2d_backward(self._shape_grad(grad_out), arg, shape)
