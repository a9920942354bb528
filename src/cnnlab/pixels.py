"""8-bit pixels to model input: the one place the scale is defined.

>>> import numpy as np
>>> scale_pixels(np.array([0, 51, 255], dtype=np.uint8))  # 51 * float32(1/255)
array([0.        , 0.20000002, 1.        ], dtype=float32)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def scale_pixels(pixels: Any, dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Pixel values on the 0..255 scale as a new ``dtype`` array in [0, 1].

    The values are converted to ``dtype`` and multiplied by ``1/255`` rounded to
    ``dtype``: in float32 exactly what MNIST's training inputs got. Any shape;
    the values are not checked (callers validate their range).
    """
    out = np.array(pixels, dtype=dtype)  # always a copy, so scaling in place is safe
    out *= out.dtype.type(1.0 / 255.0)
    return out
