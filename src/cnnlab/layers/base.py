"""The layer protocol (CS231n style): forward keeps a cache, backward uses it.

A layer is built once for an input shape (batch axis excluded), which creates
its weights and returns its output shape. Then, per batch:

* ``forward(x, training)`` returns the output and keeps what backward needs;
* ``backward(grad_out)`` returns ``dL/dx`` and fills ``self.grads`` (same
  order and shapes as :attr:`Layer.trainable_weights`: ``[kernel, bias]`` for
  Conv2D/Dense).

Weights named in ``non_trainable_names`` (BatchNormalization's moving mean
and variance) are saved and loaded with the others but have no gradient and
are not updated by the optimizer.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from cnnlab.backend import array_module, copy_into, to_device, to_numpy
from cnnlab.errors import InvalidArgumentError


def snake_case(name: str) -> str:
    """``MaxPooling2D`` -> ``max_pooling2d``, as Keras names its layers."""
    s = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub(r"([a-z])([A-Z])", r"\1_\2", s).lower()


class Layer:
    """Base class. Subclasses set ``weight_names`` and implement the methods."""

    weight_names: tuple[str, ...] = ()
    #: Weights the optimizer leaves alone (the layer updates them itself).
    non_trainable_names: tuple[str, ...] = ()

    def __init__(self, name: str | None = None, dtype: str = "float32") -> None:
        if name is not None and (not isinstance(name, str) or not name):
            raise InvalidArgumentError(f"layer name must be a non-empty string, got {name!r}")
        if dtype not in ("float32", "float64"):
            raise InvalidArgumentError(f"dtype must be 'float32' or 'float64', got {dtype!r}")
        self.name = name
        self.dtype = np.dtype(dtype)
        self.built = False
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None
        self.weights: list[Any] = []
        self.grads: list[Any] = []
        self.need_input_grad = True
        self.rng: np.random.Generator | None = None

    # -- construction ------------------------------------------------------
    @property
    def kind(self) -> str:
        return type(self).__name__

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        """Create the weights for ``input_shape`` and return the output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.compute_output_shape(self.input_shape)
        self.rng = rng
        self.weights = self.create_weights(self.input_shape, rng)
        self.grads = [array_module(w).zeros_like(w) for w in self.trainable_weights]
        self.built = True
        return self.output_shape

    def compute_output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def create_weights(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> list:
        return []

    def weight_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The shapes :meth:`create_weights` will make, computed without allocating
        (the model checks its memory before building). Layers with weights override it."""
        return []

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, JSON-serialisable (used by model files)."""
        return {"name": self.name}

    # -- weights -----------------------------------------------------------
    def get_weights(self) -> list[np.ndarray]:
        """Copies of the weights as NumPy arrays (from whichever device holds them)."""
        return [np.array(to_numpy(w), copy=True) for w in self.weights]

    def check_weights(self, weights: list[Any]) -> None:
        """Raise :class:`InvalidArgumentError` unless ``weights`` fit this layer."""
        if len(weights) != len(self.weights):
            raise InvalidArgumentError(
                f"{self.name}: expected {len(self.weights)} arrays "
                f"({', '.join(self.weight_names) or 'none'}), got {len(weights)}"
            )
        for i, (cur, new) in enumerate(zip(self.weights, weights, strict=True)):
            shape = np.shape(new)
            if shape != cur.shape:
                raise InvalidArgumentError(
                    f"{self.name}: {self.weight_names[i]} must have shape {cur.shape}, "
                    f"got {shape}"
                )

    def set_weights(self, weights: list[Any]) -> None:
        """Replace the weights (Keras order); all are checked before any is changed."""
        self.check_weights(weights)
        for cur, new in zip(self.weights, weights, strict=True):
            if array_module(cur, new) is np:
                cur[...] = np.asarray(new).astype(cur.dtype, copy=False)
            else:  # a NumPy array into device weights, or the other way round
                copy_into(cur, new)

    def to_device(self, device: str) -> None:
        """Move the weights and gradients to ``device`` (``"cpu"`` or ``"gpu"``, already
        checked by the caller), and drop what a forward pass kept (caches, transformed
        filters) from the old device. Used by :meth:`cnnlab.Sequential.to`."""
        self.weights = [to_device(w, device) for w in self.weights]
        self.grads = [to_device(g, device) for g in self.grads]
        for attr in ("_cache", "_mask"):
            if hasattr(self, attr):
                setattr(self, attr, None)
        if isinstance(getattr(self, "_filter_cache", None), dict):
            self._filter_cache.clear()  # type: ignore[attr-defined]

    @property
    def trainable_weights(self) -> list[Any]:
        """The weights the optimizer updates, in order (``self.grads`` matches them)."""
        return [w for n, w in zip(self.weight_names, self.weights, strict=True)
                if n not in self.non_trainable_names]

    def count_params(self) -> int:
        return int(sum(w.size for w in self.weights))

    def count_trainable_params(self) -> int:
        return int(sum(w.size for w in self.trainable_weights))

    # -- computation -------------------------------------------------------
    def forward(self, x: Any, training: bool = False) -> Any:
        raise NotImplementedError

    def backward(self, grad_out: Any) -> Any:
        raise NotImplementedError

    def __call__(self, x: Any, training: bool = False) -> Any:
        return self.forward(x, training)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items() if k != "name")
        return f"{self.kind}({args})"
