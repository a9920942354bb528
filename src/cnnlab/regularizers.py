"""Weight penalties, as Keras's ``keras.regularizers``: ``L2(l2=0.01)``.

A regularizer given to a layer (``Conv2D(..., kernel_regularizer=L2(1e-4))``,
``Dense(..., kernel_regularizer="l2")``) adds a penalty on that weight to the
loss the model minimises, as Keras adds ``model.losses``:

    loss = cross-entropy(batch) + sum over regularized kernels of l2 * sum(kernel ** 2)

The training loop (:func:`cnnlab.training.train_step`) adds the penalty to the
reported loss and its gradient ``2 * l2 * kernel`` to the kernel's gradient,
in one place; :meth:`cnnlab.Sequential.evaluate` reports the same total (Keras's
``evaluate`` includes the regularization losses too).

A model file stores the regularizer in the layer's config as Keras serialises
it, ``{"class_name": "L2", "config": {"l2": 0.01}}``; :func:`get` turns that
back into an :class:`L2`.

>>> import numpy as np
>>> L2(2.0)(np.ones((5, 5)))
50.0
>>> get("l2").get_config()
{'l2': 0.01}
"""

from __future__ import annotations

import math
from typing import Any

from cnnlab.backend import array_module
from cnnlab.errors import InvalidArgumentError


class Regularizer:
    """Base class: ``reg(w)`` is the penalty (a float), ``reg.gradient(w)`` its gradient."""

    def __call__(self, w: Any) -> float:
        return 0.0

    def gradient(self, w: Any) -> Any:
        return array_module(w).zeros_like(w)

    def get_config(self) -> dict[str, Any]:
        return {}

    def serialize(self) -> dict[str, Any]:
        """Keras's serialized form: ``{"class_name": ..., "config": {...}}``."""
        return {"class_name": type(self).__name__, "config": self.get_config()}

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.get_config() == self.get_config()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, tuple(sorted(self.get_config().items()))))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class L2(Regularizer):
    """``l2 * sum(w ** 2)``; gradient ``2 * l2 * w``.

    Args:
        l2: the factor, a finite number >= 0 (Keras's default 0.01; ``None``
            also means 0.01, as in Keras).
    """

    def __init__(self, l2: float | None = 0.01) -> None:
        l2 = 0.01 if l2 is None else l2
        ok = isinstance(l2, (int, float)) and not isinstance(l2, bool) and math.isfinite(l2)
        if not ok or l2 < 0:
            raise InvalidArgumentError(f"L2: l2 must be a finite number >= 0, got {l2!r}")
        self.l2 = float(l2)

    def __call__(self, w: Any) -> float:
        """The penalty, summed in float64 whatever the weight's dtype."""
        xp = array_module(w)
        w64 = w.astype(xp.float64, copy=False)
        return self.l2 * float((w64 * w64).sum())

    def gradient(self, w: Any) -> Any:
        """``2 * l2 * w``, in the weight's dtype."""
        return w.dtype.type(2.0 * self.l2) * w

    def get_config(self) -> dict[str, Any]:
        return {"l2": self.l2}


#: Names a layer argument or a model file may use, as Keras's.
REGULARIZERS: dict[str, type[Regularizer]] = {"L2": L2}
_ALIASES = {"l2": "L2"}


def get(spec: str | dict[str, Any] | Regularizer | None) -> Regularizer | None:
    """A regularizer from ``None``, a name (``"l2"``: ``L2(0.01)``, as Keras), Keras's
    serialized dict ``{"class_name": "L2", "config": {"l2": ...}}``, or an instance."""
    if spec is None or isinstance(spec, Regularizer):
        return spec
    if isinstance(spec, str):
        cls = REGULARIZERS.get(_ALIASES.get(spec, spec))
        if cls is None:
            raise InvalidArgumentError(
                f"unknown regularizer {spec!r}: expected one of {sorted(_ALIASES)} "
                f"or {sorted(REGULARIZERS)}"
            )
        return cls()
    if isinstance(spec, dict):
        name = spec.get("class_name")
        config = spec.get("config", {})
        extra = set(spec) - {"class_name", "config", "module", "registered_name"}
        cls = REGULARIZERS.get(_ALIASES.get(name, name)) if isinstance(name, str) else None
        if cls is None or extra or not isinstance(config, dict):
            raise InvalidArgumentError(
                f"a regularizer is {{\"class_name\": \"L2\", \"config\": {{\"l2\": ...}}}}, "
                f"got {spec!r:.120}"
            )
        try:
            return cls(**config)
        except TypeError as e:
            raise InvalidArgumentError(f"regularizer {name}: {e}") from None
    raise InvalidArgumentError(
        f"a regularizer must be None, 'l2', an L2 instance or its config dict, "
        f"got {type(spec).__name__}"
    )


def serialize(reg: Regularizer | None) -> dict[str, Any] | None:
    """``reg`` as Keras's serialized dict (``None`` stays ``None``)."""
    return None if reg is None else reg.serialize()
