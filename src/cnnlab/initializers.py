"""Weight initialisers, with Keras's names and defaults.

``glorot_uniform`` draws from ``U(-l, l)`` with ``l = sqrt(6 / (fan_in + fan_out))``;
for a ``(kh, kw, C_in, C_out)`` kernel ``fan_in = kh*kw*C_in`` and
``fan_out = kh*kw*C_out``, as in Keras.

Every initialiser draws on the host, from the model's seeded NumPy generator,
and returns a NumPy array; a model on a GPU (:meth:`cnnlab.Sequential.to`)
moves the weights there once. So a seed gives the same initial weights on
every device, and a GPU run starts exactly where the CPU run does.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from cnnlab.errors import InvalidArgumentError


def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    if len(shape) == 2:
        return shape[0], shape[1]
    receptive = math.prod(shape[:-2])
    return shape[-2] * receptive, shape[-1] * receptive


def glorot_uniform(shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32):
    fan_in, fan_out = _fans(shape)
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def glorot_normal(shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32):
    fan_in, fan_out = _fans(shape)
    std = math.sqrt(2.0 / (fan_in + fan_out))
    return (rng.standard_normal(size=shape) * std).astype(dtype)


def he_uniform(shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32):
    fan_in, _ = _fans(shape)
    limit = math.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def he_normal(shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32):
    fan_in, _ = _fans(shape)
    return (rng.standard_normal(size=shape) * math.sqrt(2.0 / fan_in)).astype(dtype)


def zeros(shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


def ones(shape: tuple[int, ...], rng: np.random.Generator, dtype=np.float32):
    return np.ones(shape, dtype=dtype)


INITIALIZERS: dict[str, Callable] = {
    "glorot_uniform": glorot_uniform,
    "glorot_normal": glorot_normal,
    "he_uniform": he_uniform,
    "he_normal": he_normal,
    "zeros": zeros,
    "ones": ones,
}


def get_initializer(name: str) -> Callable:
    if not isinstance(name, str) or name not in INITIALIZERS:
        raise InvalidArgumentError(
            f"unknown initializer {name!r}: expected one of {', '.join(sorted(INITIALIZERS))}"
        )
    return INITIALIZERS[name]
