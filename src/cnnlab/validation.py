"""Argument checks shared by the whole package: one rule, one message.

>>> check_positive_int(3, "epochs")
3
>>> check_positive_int(True, "epochs")
Traceback (most recent call last):
...
cnnlab.errors.InvalidArgumentError: epochs must be a positive int, got True
"""

from __future__ import annotations

import numbers
from typing import Any

from cnnlab.errors import InvalidArgumentError


def check_positive_int(value: Any, name: str, owner: str | None = None) -> int:
    """``value`` as an ``int`` if it is an integer (Python or NumPy, not ``bool``) above 0.

    ``owner`` (a class or function name) prefixes the message: ``"Conv2D: filters ..."``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        prefix = f"{owner}: " if owner else ""
        raise InvalidArgumentError(f"{prefix}{name} must be a positive int, got {value!r}")
    return int(value)
