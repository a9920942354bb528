"""Figures of the slides and of the documentation, drawn from the library itself.

* :func:`feature_maps_figure`: the input beside the maps of chosen layers.
* :func:`outputs_figure`: images beside their softmax outputs.
* :func:`filters_figure`: the first convolution's learned filters (in colour
  for an RGB model: :func:`filter_images`).
* :func:`curves_figure`: loss and accuracy per epoch.
* :func:`confusion_matrix`, :func:`confusion_figure`, :func:`mistakes_figure`.
* :func:`padding_figure`, :func:`pooling_figure`: the padding modes and pooling
  computed by :mod:`cnnlab.ops` on small arrays.
* :func:`make_all`: all of them into one folder.
* Why the model decided, and the slides' conclusion measured (:mod:`cnnlab.explain`):
  :func:`attributions_figure`, :func:`sanity_figure`, :func:`parameter_sharing_figure`,
  :func:`receptive_fields_figure`, :func:`equivariance_figure`; :func:`make_explain`
  writes them under :data:`EXPLAIN_FIGURE_NAMES`.

Grayscale and RGB models of any input size work; classes are named with the
model's class names (:func:`class_names_for`, shortened by :func:`short_name`).

Each ``*_figure`` writes a PNG and returns its path; the ``*_data`` functions
return the numbers drawn. No global matplotlib state is touched (no pyplot).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cnnlab.viz.names import (
    DEFAULT_LAYERS,
    EXPLAIN_FIGURE_NAMES,
    EXPLAIN_FIGURES,
    FIGURE_NAMES,
    FIGURES,
)

if TYPE_CHECKING:  # matplotlib is imported on first use, not with the package
    from cnnlab.viz.figures import (
        DPI,
        NAME_CHARS,
        as_model_batch,
        attributions_data,
        attributions_figure,
        class_names_for,
        confusion_figure,
        confusion_labels,
        confusion_matrix,
        curves_figure,
        equivariance_figure,
        feature_maps_data,
        feature_maps_figure,
        filter_images,
        filters_data,
        filters_figure,
        load_history,
        make_all,
        make_explain,
        mistakes_data,
        mistakes_figure,
        outputs_data,
        outputs_figure,
        padding_data,
        padding_figure,
        parameter_sharing_figure,
        pooling_data,
        pooling_figure,
        receptive_fields_figure,
        sanity_figure,
        short_name,
    )

__all__ = [
    "DEFAULT_LAYERS",
    "DPI",
    "EXPLAIN_FIGURES",
    "EXPLAIN_FIGURE_NAMES",
    "FIGURES",
    "FIGURE_NAMES",
    "NAME_CHARS",
    "as_model_batch",
    "attributions_data",
    "attributions_figure",
    "class_names_for",
    "confusion_figure",
    "confusion_labels",
    "confusion_matrix",
    "curves_figure",
    "equivariance_figure",
    "feature_maps_data",
    "feature_maps_figure",
    "filter_images",
    "filters_data",
    "filters_figure",
    "load_history",
    "make_all",
    "make_explain",
    "mistakes_data",
    "mistakes_figure",
    "outputs_data",
    "outputs_figure",
    "padding_data",
    "padding_figure",
    "parameter_sharing_figure",
    "pooling_data",
    "pooling_figure",
    "receptive_fields_figure",
    "sanity_figure",
    "short_name",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cnnlab.viz import figures

        return getattr(figures, name)
    raise AttributeError(f"module 'cnnlab.viz' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
