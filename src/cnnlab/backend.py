"""The array-module seam.

Every op asks :func:`array_module` for the module that owns its inputs instead
of importing NumPy directly, so the same code runs on any array library with
the NumPy API (CuPy on a GPU): ``xp = array_module(x); xp.zeros(...)``.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np


def array_module(*arrays: Any) -> ModuleType:
    """Return the array module (``numpy``, or ``cupy``) that owns ``arrays``.

    >>> import numpy as np
    >>> array_module(np.zeros(3)) is np
    True
    """
    for a in arrays:
        mod = type(a).__module__
        if mod.startswith("cupy"):
            import cupy  # type: ignore[import-not-found]

            return cupy
    return np


def sliding_window_view(x: Any, window_shape: tuple[int, ...], axis: tuple[int, ...]) -> Any:
    """A read-only strided view of all windows, as ``numpy.lib.stride_tricks``'s.

    ``x.shape`` with each axis in ``axis`` shortened to its number of window
    positions, then the window axes appended. Built directly with
    ``as_strided``: NumPy's general version spends tens of microseconds
    checking its arguments, which shows in batch-1 inference.
    """
    xp = array_module(x)
    shape = list(x.shape)
    for ax, size in zip(axis, window_shape, strict=True):
        if not 0 < size <= shape[ax]:
            raise ValueError(f"window size {size} does not fit axis {ax} of length {shape[ax]}")
        shape[ax] -= size - 1
    strides = tuple(x.strides) + tuple(x.strides[ax] for ax in axis)
    return xp.lib.stride_tricks.as_strided(
        x, tuple(shape) + tuple(window_shape), strides, writeable=False
    )
