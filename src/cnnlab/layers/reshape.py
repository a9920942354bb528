"""Layers that only move values around: ZeroPadding2D (Keras's name and arguments)."""

from __future__ import annotations

import numbers
from typing import Any

from cnnlab.errors import InvalidArgumentError, ShapeError
from cnnlab.layers.base import Layer
from cnnlab.layers.pooling import check_data_format
from cnnlab.ops.padding import Pads, pad2d, unpad2d


def _amount(value: Any, padding: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidArgumentError(
            f"ZeroPadding2D: padding amounts must be non-negative ints, got {padding!r}")
    return int(value)


def normalise_zero_padding(padding: Any) -> Pads:
    """Keras's three forms to ``((top, bottom), (left, right))``.

    ``p`` (every side), ``(sym_h, sym_w)`` (top and bottom, left and right),
    or ``((top, bottom), (left, right))``.

    >>> normalise_zero_padding(1)
    ((1, 1), (1, 1))
    >>> normalise_zero_padding((1, 2))
    ((1, 1), (2, 2))
    >>> normalise_zero_padding(((0, 1), (2, 3)))
    ((0, 1), (2, 3))
    """
    if isinstance(padding, numbers.Integral) and not isinstance(padding, bool):
        p = _amount(padding, padding)
        return ((p, p), (p, p))
    if isinstance(padding, tuple | list) and len(padding) == 2:
        if all(isinstance(p, tuple | list) for p in padding):
            if all(len(p) == 2 for p in padding):
                (t, b), (left, r) = padding
                return ((_amount(t, padding), _amount(b, padding)),
                        (_amount(left, padding), _amount(r, padding)))
        elif not any(isinstance(p, tuple | list) for p in padding):
            h, w = (_amount(p, padding) for p in padding)
            return ((h, h), (w, w))
    raise InvalidArgumentError(
        "ZeroPadding2D: padding must be an int, a pair (sym_h, sym_w) or "
        f"((top, bottom), (left, right)), got {padding!r}"
    )


class ZeroPadding2D(Layer):
    """Add rows and columns of zeros around each image: ``(N, H, W, C) -> (N, H', W', C)``.

    Args:
        padding: ``p`` (the same on every side; default 1), ``(sym_h, sym_w)``,
            or ``((top, bottom), (left, right))``, as Keras.
        data_format: ``None`` or ``"channels_last"`` (the only layout).

    ``H' = top + H + bottom`` and ``W' = left + W + right``; backward crops the
    gradient back to ``(H, W)``.

    >>> import numpy as np
    >>> layer = ZeroPadding2D(((1, 0), (0, 2)))
    >>> layer.build((2, 2, 1), np.random.default_rng(0))
    (3, 4, 1)
    >>> layer.forward(np.ones((1, 2, 2, 1)))[0, :, :, 0]
    array([[0., 0., 0., 0.],
           [1., 1., 0., 0.],
           [1., 1., 0., 0.]])
    """

    def __init__(
        self,
        padding: Any = 1,
        data_format: str | None = None,
        name: str | None = None,
        dtype: str = "float32",
    ) -> None:
        super().__init__(name, dtype)
        self.padding = normalise_zero_padding(padding)
        self.data_format = check_data_format(data_format, "ZeroPadding2D")
        self._hw: tuple[int, int] | None = None

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 3:
            raise ShapeError(f"ZeroPadding2D expects inputs of shape (H, W, C), got {input_shape}")
        (t, b), (left, r) = self.padding
        h, w, c = input_shape
        return (t + h + b, left + w + r, c)

    def get_config(self) -> dict[str, Any]:
        return {"name": self.name, "padding": [list(p) for p in self.padding],
                "data_format": self.data_format, "dtype": self.dtype.name}

    def forward(self, x: Any, training: bool = False) -> Any:
        self._hw = (x.shape[1], x.shape[2]) if training else None
        return pad2d(x, self.padding)

    def backward(self, grad_out: Any) -> Any:
        if self._hw is None:
            raise RuntimeError(f"{self.name}: backward() needs a forward(x, training=True) first")
        hw, self._hw = self._hw, None
        return unpad2d(grad_out, self.padding, hw)
