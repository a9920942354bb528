"""A sanity check for attributions (Adebayo et al., "Sanity Checks for Saliency Maps",
NeurIPS 2018): does the map change when the model forgets what it learned?

The model's weights are re-initialised, the attribution is computed again for
the same image and class, and Spearman's rank correlation (:func:`spearman`,
ties averaged) between the trained model's map and the randomised model's map
is reported. A method whose maps depend on the learned weights gives a low
correlation; one that mostly reflects the input (an edge detector) stays high.

Randomisation, two modes:

* ``"all"`` (default): every layer at once.
* ``"cascade"``: the paper's cascading randomisation, from the top (output)
  layer down, one layer more at each step; a correlation per step.

A re-initialised layer gets fresh weights from its own initialisers, as at
construction (Glorot-uniform kernels, zero biases; BatchNormalization's
``gamma = 1, beta = 0`` and moving statistics ``0, 1``), drawn from a
generator seeded by ``seed``. The model itself is never changed: the check
runs on a view with other weight arrays (:func:`with_weights`).

>>> import numpy as np
>>> from cnnlab import zoo
>>> model = zoo.small_cnn(seed=0)
>>> x = np.random.default_rng(0).integers(0, 256, (28, 28), dtype=np.uint8)
>>> check = randomization_check(model, x, 3, "saliency")
>>> check.correlation.shape, -1.0 <= float(check.correlation[0]) <= 1.0
((1,), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cnnlab.errors import InvalidArgumentError
from cnnlab.explain._common import (
    Attribution,
    as_batch,
    class_labels,
    spearman,
    with_weights,
)
from cnnlab.explain.gradcam import grad_cam
from cnnlab.explain.occlusion import occlusion
from cnnlab.explain.saliency import saliency

METHODS: dict[str, Callable[..., Attribution]] = {
    "saliency": saliency,
    "grad_cam": grad_cam,
    "occlusion": occlusion,
}
MODES = ("all", "cascade")


@dataclass
class RandomizationCheck:
    """The result of :func:`randomization_check`.

    ``correlation`` is Spearman's rho per image ``(N,)`` against the fully
    randomised model (the last step). ``steps`` lists, per step, the layers
    randomised so far and the correlations ``(N,)``; ``trained`` and
    ``randomized`` are the two maps ``(N, H, W)`` of the last step, ``step_maps``
    the randomised maps of every step.
    """

    method: str
    mode: str
    seed: int
    correlation: np.ndarray
    trained: np.ndarray
    randomized: np.ndarray
    labels: np.ndarray
    steps: list[tuple[list[str], np.ndarray]] = field(default_factory=list)
    step_maps: list[np.ndarray] = field(default_factory=list)


def reinitialized_weights(model: Any, layer_indices: Any, seed: int = 0) -> list[Any]:
    """New weight lists for the layers in ``layer_indices`` (their initialisers, seeded),
    ``None`` for the others: the argument :func:`with_weights` takes."""
    chosen = set(int(i) for i in layer_indices)
    out: list[Any] = []
    for i, layer in enumerate(model.layers):
        if i in chosen and layer.weights:
            rng = np.random.default_rng([int(seed), i])
            out.append(layer.create_weights(tuple(layer.input_shape), rng))
        else:
            out.append(None)
    return out


def randomized_model(model: Any, seed: int = 0) -> Any:
    """A view of ``model`` with every layer's weights re-initialised (``"all"`` mode)."""
    return with_weights(model, reinitialized_weights(model, range(len(model.layers)), seed))


def _per_image(a: Attribution, n: int) -> np.ndarray:
    m = np.asarray(a.map, dtype=np.float64)
    return m.reshape(n, -1)


def randomization_check(model: Any, x: Any, label: Any = None,
                        method: str | Callable[..., Attribution] = "saliency",
                        mode: str = "all", seed: int = 0, **kwargs: Any) -> RandomizationCheck:
    """Compare ``method``'s map on the trained and on a re-initialised model.

    Args:
        model: a built model taking images.
        x: one image or a batch.
        label: the class to explain (one int, one per image, or ``None``: the
            trained model's prediction, kept for the randomised model).
        method: ``"saliency"``, ``"grad_cam"``, ``"occlusion"``, or a function
            ``f(model, x, label, **kwargs) -> Attribution``.
        mode: ``"all"`` (every layer at once) or ``"cascade"`` (top layer first,
            one more layer per step; only layers with weights count).
        seed: seeds the new weights.
        kwargs: passed to the method (``layer=``, ``patch=``, ...).
    """
    fn = METHODS.get(method) if isinstance(method, str) else method
    if fn is None:
        raise InvalidArgumentError(
            f"method must be one of {', '.join(METHODS)} or a function, got {method!r}")
    if mode not in MODES:
        raise InvalidArgumentError(f"mode must be one of {MODES}, got {mode!r}")
    xb, _ = as_batch(model, x)
    n = len(xb)
    labels, _ = class_labels(model, xb, label)
    trained = fn(model, xb, labels, **kwargs)
    base = _per_image(trained, n)
    with_params = [i for i, layer in enumerate(model.layers) if layer.weights]
    if mode == "all":
        schedule = [with_params]
    else:
        top_down = with_params[::-1]
        schedule = [top_down[:k] for k in range(1, len(top_down) + 1)]
    steps: list[tuple[list[str], np.ndarray]] = []
    step_maps: list[np.ndarray] = []
    rand = base
    for chosen in schedule:
        view = with_weights(model, reinitialized_weights(model, chosen, seed))
        rand = _per_image(fn(view, xb, labels, **kwargs), n)
        rho = np.array([spearman(base[k], rand[k]) for k in range(n)])
        steps.append(([str(model.layers[i].name) for i in chosen], rho))
        step_maps.append(rand.reshape(n, *xb.shape[1:3]))
    shape = (n, *xb.shape[1:3])
    name = method if isinstance(method, str) else getattr(method, "__name__", "method")
    return RandomizationCheck(method=name, mode=mode, seed=int(seed), correlation=steps[-1][1],
                              trained=base.reshape(shape), randomized=rand.reshape(shape),
                              labels=labels, steps=steps, step_maps=step_maps)
