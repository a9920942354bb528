"""Names shared by the figures and the command line (no matplotlib import here, so that
``cnnlab --help`` and the other subcommands start fast)."""

from __future__ import annotations

DEFAULT_LAYERS = ("conv2d", "max_pooling2d")
"""The feature-map figure's default layers: the slides' first convolution and max pooling."""

FIGURE_NAMES = {
    "feature_maps": "feature_maps.png",
    "outputs": "outputs.png",
    "filters": "filters.png",
    "curves": "curves.png",
    "confusion": "confusion_matrix.png",
    "mistakes": "mistakes.png",
    "padding": "padding.png",
    "pooling": "pooling.png",
}
"""The standard file name of each figure (what :func:`cnnlab.viz.make_all` writes)."""

FIGURES = tuple(FIGURE_NAMES)
"""The figure names, in the order :func:`cnnlab.viz.make_all` writes them."""

EXPLAIN_FIGURE_NAMES = {
    "attributions": "attributions.png",
    "sanity": "sanity_check.png",
    "parameter_sharing": "parameter_sharing.png",
    "receptive_fields": "receptive_fields.png",
    "equivariance": "equivariance.png",
}
"""The explain figures (:func:`cnnlab.viz.figures.make_explain`): why the model decided, and
the slides' conclusion measured. Asked for by name or all at once with ``--which explain``;
not part of ``all`` (they take seconds: gradients, occlusion, randomised models)."""

EXPLAIN_FIGURES = tuple(EXPLAIN_FIGURE_NAMES)
"""The explain figure names, in the order :func:`cnnlab.viz.figures.make_explain` writes them."""
