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
