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
    """A read-only strided view of all windows (``numpy.lib.stride_tricks`` API)."""
    xp = array_module(x)
    return xp.lib.stride_tricks.sliding_window_view(x, window_shape, axis=axis)
