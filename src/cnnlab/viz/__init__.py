"""Figures of the slides and of the documentation, drawn from the library itself.

* :func:`feature_maps_figure`: the input beside the maps of chosen layers.
* :func:`outputs_figure`: images beside their softmax outputs.
* :func:`filters_figure`: the first convolution's learned filters.
* :func:`curves_figure`: loss and accuracy per epoch.
* :func:`confusion_matrix`, :func:`confusion_figure`, :func:`mistakes_figure`.
* :func:`padding_figure`, :func:`pooling_figure`: the padding modes and pooling
  computed by :mod:`cnnlab.ops` on small arrays.
* :func:`make_all`: all of them into one folder.

Each ``*_figure`` writes a PNG and returns its path; the ``*_data`` functions
return the numbers drawn. No global matplotlib state is touched (no pyplot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnlab.viz.names import DEFAULT_LAYERS, FIGURE_NAMES, FIGURES

if TYPE_CHECKING:  # matplotlib is imported on first use, not with the package
    from cnnlab.viz.figures import (
        DPI,
        as_model_batch,
        confusion_figure,
        confusion_matrix,
        curves_figure,
        feature_maps_data,
        feature_maps_figure,
        filters_data,
        filters_figure,
        load_history,
        make_all,
        mistakes_data,
        mistakes_figure,
        outputs_data,
        outputs_figure,
        padding_data,
        padding_figure,
        pooling_data,
        pooling_figure,
    )

__all__ = [
    "DEFAULT_LAYERS",
    "DPI",
    "FIGURES",
    "FIGURE_NAMES",
    "as_model_batch",
    "confusion_figure",
    "confusion_matrix",
    "curves_figure",
    "feature_maps_data",
    "feature_maps_figure",
    "filters_data",
    "filters_figure",
    "load_history",
    "make_all",
    "mistakes_data",
    "mistakes_figure",
    "outputs_data",
    "outputs_figure",
    "padding_data",
    "padding_figure",
    "pooling_data",
    "pooling_figure",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cnnlab.viz import figures

        return getattr(figures, name)
    raise AttributeError(f"module 'cnnlab.viz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
